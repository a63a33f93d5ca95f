import numpy as np

from lakhnes.core import tx1, vocab


def test_631_tokens_match_lakhnes_vocab_file(fixtures):
    lines = (fixtures / "tx1_vocab.txt").read_text().splitlines()
    assert len(lines) == 630
    assert vocab.TOKENS == ["<S>"] + lines
    assert vocab.VOCAB_SIZE == 631 and vocab.TOKENS[vocab.START] == "<S>"


def test_waits_layout():
    w = vocab.WAITS
    assert len(w) == 370 and w[0] == 1 and w[99] == 100 and w[100] == 110 and w[-1] == 100000
    assert np.all(np.diff(w) > 0)


def test_snap_to_nearest_wait():
    assert vocab.WAITS[vocab.snap_wait(1)] == 1
    assert vocab.WAITS[vocab.snap_wait(104)] == 100  # 104 is nearer 100 than 110
    assert vocab.WAITS[vocab.snap_wait(106)] == 110
    assert vocab.WAITS[vocab.snap_wait(105)] == 100  # a tie goes to the shorter wait
    assert vocab.WAITS[vocab.snap_wait(4777)] == 4800
    assert vocab.WAITS[vocab.snap_wait(100000)] == 100000


def test_ids_text_both_ways():
    ids = np.arange(vocab.VOCAB_SIZE)
    assert [vocab.TOKEN_TO_ID[t] for t in vocab.decode_ids(ids)] == ids.tolist()


def test_noteon_ids_and_tables():
    assert vocab.TOKENS[vocab.noteon_id("TR", 21)] == "TR_NOTEON_21"
    assert vocab.TOKENS[vocab.noteon_id("NO", 16)] == "NO_NOTEON_16"
    for vi, v in enumerate(("P1", "P2", "TR", "NO")):
        ids = vocab.noteon_ids(v)
        assert np.all(vocab.VOICE_OF[ids] == vi) and np.all(vocab.IS_NOTEON[ids])
        assert vocab.IS_NOTEOFF[vocab.VOICE_OFF[v]]


def test_long_waits_split_into_several_tokens():
    ids = tx1.events_to_ids(np.array([-250000, vocab.noteon_id("P1", 60)]))
    assert vocab.WAIT_OF[ids[:-1]].tolist() == [100000, 100000, 50000]


def test_vocab_is_the_reference_archives(tx1_reference_dir):
    lines = (tx1_reference_dir / "tx1_vocab.txt").read_text().splitlines()
    assert vocab.TOKENS == ["<S>"] + lines
