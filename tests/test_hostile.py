"""Hostile options and requests (a probe's findings): one line and no traceback for every out-of-range
value, memory that does not grow with --num, no near-empty or half-written outputs."""

from __future__ import annotations

import pytest

from lakhnes.cli import main
from lakhnes.core.score import NesScore, make_notes
from lakhnes.formats.midi import write_midi


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    import torch

    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return str(save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def only_p1(tmp_path):
    s = NesScore(end=4 * 44100)
    s.notes["P1"] = make_notes([0, 44100], [22050, 66150], [60, 62], [10, 10])
    write_midi(s, tmp_path / "only_p1.mid")
    return tmp_path / "only_p1.mid"


HOSTILE = [
    (["--max-rest", "inf"], "--max-rest inf is outside"), (["--max-rest", "1e308"], "--max-rest 1e+308 is outside"),
    (["--temperature", "inf"], "--temperature inf"), (["--temperature", "1e308"], "--temperature 1e+308"),
    (["--temperature", "1e-300"], "--temperature 1e-300"), (["--temperature", "nan"], "--temperature nan"),
    (["--prime", "{only_p1}", "--prime-seconds", "inf"], "--prime-seconds inf"),
    (["--seed", "1180591620717411303424"], "--seed 1180591620717411303424 is outside"),
    (["--seed", "-1"], "--seed -1 is outside"), (["--device", "bogus"], "--device bogus: not a torch device"),
    (["--device", "cuda:99"], "--device cuda:99"), (["--num", "10000"], "--num 10000 is outside 1-1000"),
    (["--tokens", "1"], "--tokens 1: ask for at least"), (["--seconds", "1e-9"], "--seconds 1e-09: ask for at least"),
    (["--map", "A=P1"], "--map applies to the file of"),
]


def test_hostile_options_are_one_line_before_the_model(tmp_path, only_p1, capsys):
    out = [str(tmp_path / "o.wav"), str(tmp_path / "o.mid")]
    for extra, msg in HOSTILE:
        extra = [a.format(only_p1=only_p1) for a in extra]
        rc = main(["generate", "-m", str(tmp_path / "no-model"), *extra, "-q", "-o", out[0], "-o", out[1]])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and "\n" not in err, (extra, err)
    assert not list(tmp_path.glob("o.*"))


def test_keep_of_a_silent_voice_is_one_line(tmp_path, only_p1, tiny_model, capsys):
    assert main(["generate", "-m", tiny_model, "--keep", "TR", str(only_p1), "-q", "-o", str(tmp_path / "o.mid")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"{only_p1}: --keep TR keeps nothing: the song has no TR notes (its voices: P1)"
    assert not (tmp_path / "o.mid").exists()


def test_num_is_sampled_in_batches_and_written_as_it_goes(tmp_path, tiny_model, monkeypatch, capsys,
                                                         one_torch_thread):
    import lakhnes.cli.generate as cli
    from lakhnes import generate as G

    sizes, real = [], G.sample

    def sample(model, **kw):
        sizes.append(kw["num"])
        written = sorted(p.name for p in tmp_path.glob("s_*.mid"))
        assert len(written) == sum(sizes[:-1])  # the batches before this one are on disk already
        return real(model, **kw)

    monkeypatch.setattr(G, "sample", sample)
    monkeypatch.setattr(cli, "BATCH", 2)
    assert main(["generate", "-m", tiny_model, "--num", "5", "--tokens", "64", "--seed", "3", "-q",
                 "-o", str(tmp_path / "s.mid")]) == 0
    assert sizes == [2, 2, 1]
    assert sorted(p.name for p in tmp_path.glob("s_*.mid")) == [f"s_{k}.mid" for k in range(1, 6)]
    capsys.readouterr()


def test_a_failed_output_leaves_none_and_an_empty_song_is_refused(tmp_path, tiny_model, monkeypatch, capsys):
    import lakhnes.cli.generate as cli
    from lakhnes import generate as G
    from lakhnes.errors import InvalidInputError

    real = cli.save

    def save(score, path, peak_db=-1.0):
        if str(path).endswith(".wav"):
            raise InvalidInputError("cannot render", str(path))
        real(score, path, peak_db)

    monkeypatch.setattr(cli, "save", save)
    args = ["generate", "-m", tiny_model, "--tokens", "32", "--seed", "0", "-q",
            "-o", str(tmp_path / "o.mid"), "-o", str(tmp_path / "o.wav"), "-o", str(tmp_path / "o.tx1.txt")]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'o.wav'}: cannot render"
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))
    monkeypatch.setattr(G, "sample", lambda model, **kw: [NesScore(end=44100, name="sample")])
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "the model wrote no notes" in err and "\n" not in err
    assert not list(tmp_path.glob("o.*"))

