"""Transformer-XL batches: parallel continuous streams, seeded epochs, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from lakhnes.data.augment import AugmentConfig
from lakhnes.data.shards import Split
from lakhnes.data.streams import SongStreams
from lakhnes.errors import InvalidInputError


def make_split(lengths=(30, 45, 20, 60, 25)) -> Split:
    songs, names = [], []
    for k, n in enumerate(lengths):  # distinct contents: <S>, n-2 waits, <S>
        songs.append(np.concatenate([[0], 1 + (np.arange(n - 2) + 7 * k) % 300, [0]]).astype(np.uint16))
        names.append(f"song{k}")
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in songs])]).astype(np.int64)
    return Split(np.concatenate(songs), offsets, names)


def test_segments_are_consecutive_and_shifted():
    split = make_split()
    s = SongStreams(split, batch_size=3, tgt_len=8, seed=1)
    rows = s.epoch_rows(0)
    assert rows.shape == (3, sum((30, 45, 20, 60, 25)) // 3)
    n = s.segments_per_epoch()
    xs, ys = zip(*[s.next_batch() for _ in range(n)], strict=True)
    x, y = np.concatenate(xs, 1), np.concatenate(ys, 1)
    assert np.array_equal(x, rows[:, : n * 8]) and np.array_equal(y, rows[:, 1 : n * 8 + 1])
    # one epoch = all songs, in the seeded order, back to back (no padding)
    order = s.epoch_order(0)
    whole = np.concatenate([split.song(int(k)) for k in order])
    assert np.array_equal(rows.reshape(-1), whole[: rows.size])
    assert sorted(order.tolist()) == list(range(len(split)))
    # then the next epoch starts, in another order
    s.next_batch()
    assert (s.epoch, s.segment) == (1, 1)
    assert not np.array_equal(s.epoch_order(1), order)


def test_deterministic_and_augmented_per_epoch(songs_split):
    a = SongStreams(songs_split, 2, 16, seed=3, augment=AugmentConfig())
    b = SongStreams(songs_split, 2, 16, seed=3, augment=AugmentConfig())
    assert np.array_equal(a.epoch_rows(0), b.epoch_rows(0))
    assert not np.array_equal(a.epoch_rows(0), a.epoch_rows(1)[:, : a.epoch_rows(0).shape[1]])
    plain = SongStreams(songs_split, 2, 16, seed=3)
    assert not np.array_equal(plain.epoch_rows(0), a.epoch_rows(0))


def test_resume_from_state():
    split = make_split()
    a = SongStreams(split, 2, 8, seed=5)
    for _ in range(11):
        a.next_batch()
    b = SongStreams(split, 2, 8, seed=5)
    b.load_state_dict(a.state_dict())
    for _ in range(15):
        xa, ya = a.next_batch()
        xb, yb = b.next_batch()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_ranks_split_the_global_streams():
    split = make_split()
    whole = SongStreams(split, 4, 8, seed=2).epoch_rows(0)
    parts = [SongStreams(split, 2, 8, seed=2, rank=r, world_size=2).epoch_rows(0) for r in range(2)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_one_pass_covers_every_target_once():
    split = make_split()
    s = SongStreams(split, 3, 8, shuffle=False)
    rows = s.epoch_rows(0)
    ys = [y for _, y in s.one_pass()]
    assert np.array_equal(np.concatenate(ys, 1), rows[:, 1:])


def test_too_little_data():
    with pytest.raises(InvalidInputError, match="too little data"):
        SongStreams(make_split((12,)), 4, 8).next_batch()


@pytest.fixture(scope="module")
def songs_split(nesmdb_fixture_files):
    from lakhnes.core import tx1
    from lakhnes.formats.midi import read_midi

    songs = [tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files]
    songs = [s for s in songs if len(s) > 10]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in songs])]).astype(np.int64)
    return Split(np.concatenate(songs), offsets, [str(k) for k in range(len(songs))])


def test_prefetch_gives_the_same_batches(songs_split):
    """The next epoch built in a helper process (as training on a GPU does) is the same epoch;
    if the helper dies, the rows are built in-process, still the same."""
    import os
    import signal

    plain = SongStreams(songs_split, 2, 64, seed=4, augment=AugmentConfig())
    fetched = SongStreams(songs_split, 2, 64, seed=4, augment=AugmentConfig(), prefetch=True)
    try:
        n = plain.segments_per_epoch()
        for k in range(3 * n + 2):
            if k == 2 * n:  # during the third epoch: kill the helper (its fourth epoch is lost)
                os.kill(fetched._prefetcher.proc.pid, signal.SIGKILL)
                fetched._prefetcher.proc.join(5)
            xa, ya = plain.next_batch()
            xb, yb = fetched.next_batch()
            assert xb.dtype == np.int64 and np.array_equal(xa, xb) and np.array_equal(ya, yb)
        assert fetched.epoch == 3
    finally:
        fetched.close()
    assert fetched._prefetcher is None
