"""Issue 14: no silent empty outputs, bounded inputs, no tracebacks, outputs checked before the work,
length caps, a flat-memory synth, MIDI known by its content, TX1 read alike everywhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import symusic

from lakhnes.cli import build_parser, main
from lakhnes.core import tx1, vocab
from lakhnes.core.score import MAX_SAMPLES, SAMPLE_RATE, VOICES, NesScore
from lakhnes.errors import InvalidInputError
from lakhnes.formats.files import load, load_source
from lakhnes.formats.midi import read_midi, write_midi

SMB3 = "324_SuperMarioBros_3_00_01World1Map"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A real (untrained) tiny Transformer-XL: the CLI's generation paths without the shipped model's cost."""
    import torch

    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return str(save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("tiny")))


def _writable(d: Path) -> bool:
    try:
        (d / ".probe").write_text("x")
    except OSError:
        return False
    (d / ".probe").unlink()
    return True


@pytest.fixture
def locked(tmp_path):
    """A folder nothing can be written into: read-only bits, or (root ignores them) immutable."""
    d = tmp_path / "locked"
    d.mkdir()
    d.chmod(0o555)
    immutable = False
    if _writable(d):
        immutable = subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0
        if not immutable or _writable(d):
            d.chmod(0o755)
            pytest.skip("cannot make an unwritable folder here (root without chattr)")
    yield d
    if immutable:
        subprocess.run(["chattr", "-i", str(d)], check=True)
    d.chmod(0o755)


def _err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def _midi_52() -> bytes:
    """The issue's tiny MIDI: division 1, tempo 0xFFFFFF, one note of 2**28 - 1 ticks (~4.5e9 s)."""
    track = bytes([0x00, 0xFF, 0x51, 0x03, 0xFF, 0xFF, 0xFF, 0x00, 0x90, 60, 100,
                   0xFF, 0xFF, 0xFF, 0x7F, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    return (b"MThd" + (6).to_bytes(4, "big") + b"\x00\x00\x00\x01\x00\x01"
            + b"MTrk" + len(track).to_bytes(4, "big") + track)


# ------------------------------------------------------------------ 1. no silent empty outputs


def test_broken_nes_headers_are_recovered_or_fail_one_line(fixtures, tmp_path, capsys):
    good = (fixtures / "nesmdb" / f"{SMB3}.mid").read_bytes()
    at = good.find(b"\xff\x51\x03")
    src = tmp_path / "in"
    src.mkdir()
    tempo0 = bytearray(good)
    tempo0[at + 3:at + 6] = b"\0\0\0"  # a tempo of 0 is invalid: skipped, NES-MDB's own 120 bpm holds
    (src / "tempo0.mid").write_bytes(tempo0)
    (src / "ntracks0.mid").write_bytes(good[:10] + b"\0\0" + good[12:])  # the chunks are all there
    (src / "division0.mid").write_bytes(good[:12] + b"\0\0" + good[14:])
    (src / "ntracks0_no_chunks.mid").write_bytes(good[:10] + b"\0\0" + good[12:14])
    empty = symusic.Score(22050)
    for v in VOICES:
        empty.tracks.append(symusic.Track(name=v.lower()))
    (src / "no_notes.mid").write_bytes(empty.dumps_midi())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the division-0 cast warned, naming no file
        assert main(["encode", str(src), "-o", str(tmp_path / "out")]) == 1
    err = _err_lines(capsys)
    assert err[-1] == "2 converted, 3 failed"
    assert sorted(err[:-1]) == sorted([
        f"{src / 'division0.mid'}: corrupt MIDI header: 0 ticks per quarter note (no timing)",
        f"{src / 'ntracks0_no_chunks.mid'}: no NES tracks (expected p1, p2, tr, no; found none)",
        f"{src / 'no_notes.mid'}: empty song: no notes and no length",
    ])
    ref = (fixtures / "tx1" / f"{SMB3}.tx1.txt").read_bytes()
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["ntracks0.tx1.txt", "tempo0.tx1.txt"]  # nothing for the failures, nothing empty
    assert all((tmp_path / "out" / n).read_bytes() == ref for n in written)


def test_zero_tempo_is_skipped_in_any_midi():
    def song(tempos) -> bytes:
        sm = symusic.Score(480)
        for t, qpm in tempos:
            sm.tempos.append(symusic.Tempo(t, qpm=qpm))
        track = symusic.Track(name="p1")
        track.notes.extend([symusic.Note(0, 480, 60, 15), symusic.Note(960, 480, 62, 15)])
        sm.tracks.append(track)
        return sm.dumps_midi()

    plain = read_midi(song([(0, 60.0)]))  # a beat a second
    data = bytearray(song([(0, 60.0), (480, 120.0)]))
    at = data.rfind(b"\xff\x51\x03")
    data[at + 3:at + 6] = b"\0\0\0"  # the second tempo becomes 0: the first stays in force
    assert read_midi(bytes(data)).notes["P1"].tolist() == plain.notes["P1"].tolist()
    assert plain.notes["P1"]["start"].tolist() == [0, 2 * SAMPLE_RATE]


# --------------------------------------------------------------------- 2. one-hour cap everywhere


def test_one_hour_cap_on_every_reader(tmp_path):
    cases = {}
    (tmp_path / "tiny52.mid").write_bytes(_midi_52())
    shutil.copy(tmp_path / "tiny52.mid", tmp_path / "tiny52.mid0")
    cases["tiny52.mid"] = cases["tiny52.mid0"] = load_source
    pop = symusic.Score(480)  # a POP909-like piano file whose second note comes after ~31 hours
    for name, pitch in (("MELODY", 72), ("PIANO", 48)):
        t = symusic.Track(name=name, program=0)
        t.notes.extend([symusic.Note(0, 480, pitch, 80), symusic.Note(2**27, 480, pitch, 80)])
        pop.tracks.append(t)
    pop.dump_midi(str(tmp_path / "pop.mid"))
    cases["pop.mid"] = load_source
    nes = NesScore(end=MAX_SAMPLES + SAMPLE_RATE)  # an NES-MDB file whose end marker is past the hour
    nes.notes["P1"] = np.array([(0, 100, 60, 15)], dtype=nes.notes["P1"].dtype)
    write_midi(nes, tmp_path / "nes.mid")
    cases["nes.mid"] = load
    (tmp_path / "long.tx1.txt").write_text("P1_NOTEON_60\n" + "WT_100000\n" * 1600)
    cases["long.tx1.txt"] = load
    np.save(tmp_path / "long.npy", np.array([vocab.noteon_id("P1", 60)] + [vocab.WAIT_BASE + 369] * 1600,
                                            dtype=np.uint16))
    cases["long.npy"] = load
    for name, reader in cases.items():
        tracemalloc.start()
        t0 = time.perf_counter()
        with pytest.raises(InvalidInputError) as e:
            reader(tmp_path / name)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert str(e.value).startswith(f"{tmp_path / name}: ") and "the limit is 3600 s" in str(e.value), name
        assert peak < 50 * 2**20, (name, peak)  # refused before any per-sample or per-token array
        assert seconds < 10, name


def test_generate_refuses_a_long_prime_before_loading_the_model(tmp_path, capsys, monkeypatch):
    import lakhnes.generate

    def no(*a, **k):
        raise AssertionError("the model was loaded before the prime was checked")

    monkeypatch.setattr(lakhnes.generate, "load_default_model", no)
    (tmp_path / "tiny52.mid").write_bytes(_midi_52())
    assert main(["generate", "--prime", str(tmp_path / "tiny52.mid"), "-o", str(tmp_path / "x.wav")]) == 1
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"{tmp_path / 'tiny52.mid'}: song too long (")
    assert not (tmp_path / "x.wav").exists()


# ------------------------------------------------------------------ 3. one line, never a traceback


def test_a_wait_of_5000_digits_is_one_line_everywhere(tmp_path, capsys, tiny_model):
    f = tmp_path / "huge.tx1.txt"
    f.write_text("P1_NOTEON_60\nWT_" + "9" * 5000 + "\nP1_NOTEOFF\n")
    runs = [["synth", str(f), "-o", str(tmp_path / "x.wav")],
            ["generate", "-m", tiny_model, "--prime", str(f), "--tokens", "4", "-q", "-o", str(tmp_path / "x.mid")],
            ["decode", str(f), "-o", str(tmp_path / "midi")],
            ["plot", str(f), "-o", str(tmp_path / "x.png")]]
    for argv in runs:
        assert main(argv) == 1, argv
        err = _err_lines(capsys)
        assert err[0] == (f"{f}: line 2: song too long: wait 'WT_999999999999999999999...(5003 characters)' "
                          "has 5000 digits (the limit is 3600 s)"), argv
        assert len(err) == (2 if argv[0] == "decode" else 1), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.tx1.txt"]


def test_unwritable_outputs_fail_before_the_work(fixtures, tmp_path, locked, capsys, monkeypatch):
    import lakhnes.generate
    from lakhnes.io import write_text_atomic

    song = fixtures / "nesmdb" / f"{SMB3}.mid"
    monkeypatch.setattr(lakhnes.generate, "load_default_model",
                        lambda *a, **k: pytest.fail("generation started although its output cannot be written"))
    for argv, out in (
        (["generate", "-o", str(tmp_path / "ok.mid"), "-o", str(locked / "x.wav")], locked / "x.wav"),
        (["synth", str(song), "-o", str(locked / "x.wav")], locked / "x.wav"),
        (["plot", str(song), "-o", str(locked / "sub" / "x.png")], locked / "sub" / "x.png"),
    ):
        assert main(argv) == 1
        err = _err_lines(capsys)
        assert len(err) == 1 and err[0].startswith(f"{out}: cannot write ("), err
    # encode / decode into an unwritable folder: the folder is named, never the input or a temporary name
    assert main(["encode", str(fixtures / "nesmdb"), "-o", str(locked)]) == 1
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"{locked}: cannot write into this folder (")
    assert main(["decode", str(fixtures / "tx1"), "-o", str(locked / "midi")]) == 1
    assert _err_lines(capsys)[0].startswith(f"{locked / 'midi'}: cannot write into this folder (")
    # one unwritable sub-folder of a writable output: that file fails, naming its output; the rest convert
    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    shutil.copy(song, src / "locked" / "a.mid")
    shutil.copy(song, src / "b.mid")
    assert main(["encode", str(src), "-o", str(tmp_path)]) == 1
    err = _err_lines(capsys)
    assert err[0].startswith(f"{locked / 'a.tx1.txt'}: cannot write (") and ".tmp" not in err[0]
    assert err[-1] == "1 converted, 1 failed" and (tmp_path / "b.tx1.txt").stat().st_size > 0
    with pytest.raises(OSError) as e:  # an atomic write names the file asked for, not its temporary name
        write_text_atomic(locked / "x.txt", "x")
    assert e.value.filename == str(locked / "x.txt")
    assert not any(".tmp" in p.name for p in tmp_path.rglob("*"))


# -------------------------------------------------------------------------------- 4. limits


def test_generate_length_caps(capsys):
    assert main(["generate", "--seconds", "100000", "-o", "x.wav"]) == 2
    assert _err_lines(capsys) == ["lakhnes: error: --seconds 100000: a song holds at most 3600 s of new music"]
    assert main(["generate", "--seconds", "1000", "-o", "x.wav"]) == 2
    assert "add --long to allow up to 3600 s" in _err_lines(capsys)[0]
    assert main(["generate", "--tokens", "50000", "-o", "x.wav"]) == 2
    assert "add --long to allow up to 250000 tokens" in _err_lines(capsys)[0]
    from lakhnes.cli.generate import _check

    parser = build_parser()
    assert _check(parser.parse_args(["generate", "--long", "--seconds", "1000", "-o", "x.wav"])) is None
    assert _check(parser.parse_args(["generate", "--long", "--tokens", "50000", "-o", "x.wav"])) is None
    assert _check(parser.parse_args(["generate", "--seconds", "600", "-o", "x.wav"])) is None


def test_streamed_wav_is_the_whole_song_render_bit_for_bit(nesmdb_fixture_files, tmp_path):
    from lakhnes.synth import render, render_blocks, render_wav, write_wav

    for f in nesmdb_fixture_files:
        score = read_midi(f)
        write_wav(render(score), tmp_path / "whole.wav")
        assert render_wav(score, tmp_path / "streamed.wav") == len(render(score))
        assert (tmp_path / "streamed.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes(), f.name
    score = max((read_midi(f) for f in nesmdb_fixture_files), key=lambda s: s.end)
    opts = dict(sample_rate=22050, duty=1, filters="hp90,lp14k", mute="P2")
    n, blocks = render_blocks(score, **opts)
    blocks = list(blocks)
    assert len(blocks) > 1 and sum(map(len, blocks)) == n  # several blocks: the seams are covered
    assert np.array_equal(np.concatenate(blocks), render(score, **opts))
    write_wav(render(score, **opts), tmp_path / "whole.wav", 22050)
    render_wav(score, tmp_path / "streamed.wav", **opts)
    assert (tmp_path / "streamed.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()


def test_wav_at_a_peak_is_the_same_rendered_once_or_twice(nesmdb_fixture_files, tmp_path, monkeypatch):
    """A short song is rendered once and held for its peak; a long one twice (streamed): same bytes."""
    import lakhnes.synth as synth

    score = read_midi(nesmdb_fixture_files[0])
    synth.render_wav(score, tmp_path / "held.wav", peak_db=-1.0)
    monkeypatch.setattr(synth, "HOLD_SAMPLES", 0)
    synth.render_wav(score, tmp_path / "twice.wav", peak_db=-1.0)
    assert (tmp_path / "held.wav").read_bytes() == (tmp_path / "twice.wav").read_bytes()
    audio = synth.render(score) * synth.peak_gain(score, -1.0)
    assert abs(float(np.abs(audio).max()) - 10 ** (-1 / 20)) < 1e-6  # render() is float32


def test_synth_memory_stays_flat_for_a_long_song(fixtures, tmp_path):
    """A 10-minute song: rendered whole, then written, it peaked at about 0.6 GB (the float32 song and
    float64 copies of it); streamed to the file, the process stays under 300 MB."""
    song = read_midi(fixtures / "nesmdb" / f"{SMB3}.mid")
    reps = int(np.ceil(10 * 60 * SAMPLE_RATE / song.end))
    long = NesScore(end=song.end * reps)
    for v in VOICES:
        parts = []
        for r in range(reps):
            a = song.notes[v].copy()
            a["start"] += r * song.end
            a["end"] += r * song.end
            parts.append(a)
        long.notes[v] = np.concatenate(parts)
    write_midi(long, tmp_path / "long.mid")
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the child's peak memory from /proc")
    child = subprocess.Popen([sys.executable, "-m", "lakhnes", "synth", str(tmp_path / "long.mid"), "-o",
                              str(tmp_path / "long.wav")], stderr=subprocess.PIPE, text=True)
    peak_kb = 0
    while child.poll() is None:  # VmHWM: the child's own peak (ru_maxrss would count this big process too)
        try:
            with open(f"/proc/{child.pid}/status") as fh:
                peak_kb = max([peak_kb] + [int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM")])
        except OSError:
            pass
        time.sleep(0.02)
    err = child.stderr.read()
    assert child.returncode == 0, err
    assert err.strip() == f"{tmp_path / 'long.wav'}  ({long.seconds:.1f} s)"
    assert (tmp_path / "long.wav").stat().st_size == 44 + 2 * long.end
    assert 0 < peak_kb / 1024 < 300, peak_kb


# ------------------------------------------------------------------------------ 5. the README


README = Path(__file__).resolve().parents[1] / "README.md"
CI = Path(__file__).resolve().parents[1] / ".ci" / "run"


def _blocks(text: str) -> list[list[str]]:
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if cur is None and line.strip() == "```bash":
                cur = []
            elif cur is not None:
                out.append(cur)
                cur = None
        elif cur is not None:
            cur.append(line)
    return out


def test_readme_top_commands_set_up_generate_and_test_and_ci_runs_exactly_them():
    top = _blocks(README.read_text())[0]
    assert len(top) == 3
    assert top[0].startswith("pip install torch==2.13.0 && pip install -e \".[dev")  # pytest comes with dev
    assert top[1].startswith("lakhnes generate -o tune.wav")
    assert top[2].split("#")[0].strip() == "python -m pytest -q"
    import tomllib

    opts = tomllib.loads((README.parent / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-q" not in str(opts.get("addopts", ""))  # with the README's -q, the "N passed" line still shows
    # .ci/run runs the README's first block word for word, and checks it against the README
    script = CI.read_text()
    awk = next(ln for ln in script.splitlines() if "awk" in ln and "README.md" in ln)
    prog = awk.split("awk '", 1)[1].split("' README.md", 1)[0]
    got = subprocess.run(["awk", prog, str(README)], capture_output=True, text=True, check=True).stdout
    assert got.splitlines() == top
    code = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert [ln for ln in code if ln.startswith(("pip", "python", "lakhnes", "pytest"))] == \
        [ln.split("#")[0].strip() for ln in top]


def test_pytest_q_prints_the_summary_line(tmp_path):
    """``python -m pytest -q`` under the project's configuration ends with ``N passed in ...``."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", str(README.parent / "pyproject.toml"),
                        "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_one.py")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    assert r.stdout.splitlines()[-1].startswith("1 passed in "), r.stdout


def test_every_lakhnes_command_in_the_readme_parses():
    import re
    import shlex

    parser = build_parser()
    seen = 0
    for block in _blocks(README.read_text()):
        joined = "\n".join(block).replace("\\\n", " ")  # continuation lines
        for line in joined.splitlines():
            line = line.split("  #")[0]
            for part in re.split(r"&&|\s{2,}(?=lakhnes )", line):
                words = shlex.split(part)
                if words[:1] == ["lakhnes"]:
                    parser.parse_args(words[1:])  # exits (failing the test) on an unknown option
                    seen += 1
    assert seen >= 25


def test_readme_stats_step_finds_its_reference(shared_data, fixtures, tmp_path):
    """The README's own lines, word for word: the step that puts NES-MDB in data/nesmdb_midi, then stats."""
    text = README.read_text()
    tar = next(ln for b in _blocks(text) for ln in b if "tar -xzf data/nesmdb_midi.tar.gz" in ln)
    stats = next(ln for b in _blocks(text) for ln in b if ln.startswith("lakhnes stats generated/ --vs"))
    work = tmp_path / "work"
    (work / "generated").mkdir(parents=True)
    (work / "data").mkdir()
    (work / "data" / "nesmdb_midi.tar.gz").symlink_to(shared_data / "nesmdb_midi.tar.gz")  # as downloaded
    for f in sorted((fixtures / "nesmdb").glob("*.mid"))[:3]:
        shutil.copy(f, work / "generated")
    subprocess.run(["bash", "-euo", "pipefail", "-c", tar], cwd=work, check=True, timeout=300)
    test = sorted((work / "data" / "nesmdb_midi" / "test").glob("*.mid"))
    assert len(test) == 373
    for f in test[8:]:  # 8 reference songs keep the test quick; the command and its paths are the README's
        f.unlink()
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", stats], cwd=work, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-500:]
    assert (work / "stats.png").stat().st_size > 0 and r.stdout.startswith("|")
    assert r.stderr.splitlines()[-1] == "11 measured, 0 failed"


# --------------------------------------------------------------------- 6. what users trip on


def test_eval_and_report_default_to_the_users_folder(nesmdb_fixture_files, tmp_path, monkeypatch, capsys):
    from lakhnes.data.shards import ShardWriter, write_manifest

    data = tmp_path / "data"
    ids = [s for s in (tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files) if len(s) >= 10]
    for split, songs in (("train", ids[:-1]), ("test", ids[-1:])):
        w = ShardWriter(data, split)
        for k, s in enumerate(songs):
            w.add(f"s{k}", s)
        w.close()
    write_manifest(data, {})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["eval", "unigram", "--data", str(data)]) == 0
    assert main(["report"]) == 0
    capsys.readouterr()
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()) == [
        "lakhnes-results/evals/unigram.test.json", "lakhnes-results/table.json", "lakhnes-results/table.md"]


def test_lakh_names_work_as_prime_and_in_synth(fixtures, tmp_path, tiny_model, capsys):
    song = fixtures / "nesmdb" / f"{SMB3}.mid"
    lakh = tmp_path / "song.mid0"
    shutil.copy(song, lakh)
    assert load_source(lakh) == read_midi(song)
    gm = tmp_path / "general.mid13"  # any MIDI, mapped onto the NES voices
    from tests.fuzzing import general_midi

    gm.write_bytes(general_midi(song.read_bytes()))
    assert load_source(gm).num_notes > 0
    assert main(["generate", "-m", tiny_model, "--prime", str(gm), "--prime-seconds", "2", "--tokens", "8", "-q",
                 "--seed", "0", "-o", str(tmp_path / "cont.mid")]) == 0
    assert main(["synth", str(lakh), "-o", str(tmp_path / "a.wav")]) == 0
    err = _err_lines(capsys)
    assert err[-1] == f"{tmp_path / 'a.wav'}  ({read_midi(song).seconds:.1f} s)"


def test_synth_and_plot_print_one_line_each(fixtures, tmp_path, capsys):
    song = fixtures / "nesmdb" / f"{SMB3}.mid"
    secs = read_midi(song).seconds
    assert main(["synth", str(song), "-o", str(tmp_path / "a.wav"), "-o", str(tmp_path / "a.tx1.txt")]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err.splitlines() == [f"{tmp_path / 'a.wav'}  ({secs:.1f} s)",
                                                      f"{tmp_path / 'a.tx1.txt'}  ({secs:.1f} s)"]
    assert main(["plot", str(song), "-o", str(tmp_path / "roll.png")]) == 0
    assert capsys.readouterr().err.splitlines() == [f"{tmp_path / 'roll.png'}  ({secs:.1f} s)"]


@pytest.mark.slow
def test_under_torchrun_only_rank_0_speaks(nesmdb_fixture_files, tmp_path):
    import os
    import socket

    from lakhnes.data.shards import ShardWriter, write_manifest

    data = tmp_path / "data"
    ids = [s for s in (tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files) if len(s) > 100]
    for split in ("train", "valid"):
        w = ShardWriter(data, split)
        for k, s in enumerate(ids):
            w.add(f"s{k}", s)
        w.close()
    write_manifest(data, {})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "lakhnes", "train", "--config", "tiny", "--data", str(data), "-o",
            str(tmp_path / "run"), "--steps", "2", "--eval-every", "2", "--eval-segments", "1", "--batch", "2",
            "--threads", "1"]
    procs = [subprocess.Popen(argv, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = [(o + e).splitlines() for o, e in outs]
    assert any("valid ppl" in ln for ln in said[0]) and any(ln.startswith(f"{tmp_path / 'run'}: step 2") for ln in said[0])
    assert not [ln for ln in said[1] if "step" in ln or "ppl" in ln or "resuming" in ln], said[1]


# ----------------------------------------------------------------------- 7. TX1 read alike


def test_tx1_is_read_alike_by_every_command(tmp_path, tiny_model, capsys):
    """LakhNES' tx1_to_midi ignores a NOTEOFF for a silent voice (valid), and a file of only <S> has
    no music (refused): decode, synth, plot, generate --prime and the studio's upload all agree."""
    from lakhnes.studio.modes import Limits, load_upload

    stray = tmp_path / "stray_off.tx1.txt"
    stray.write_text("P2_NOTEOFF\nP1_NOTEON_60\nWT_22050\nTR_NOTEOFF\nP1_NOTEOFF\nWT_100\n")
    only_s = tmp_path / "only_s.tx1.txt"
    only_s.write_text("<S>\n")
    np.save(tmp_path / "stray_off.npy", np.array([0, vocab.VOICE_OFF["P2"], vocab.noteon_id("P1", 60),
                                                  vocab.WAIT_BASE + 369, 0], dtype=np.uint16))
    np.save(tmp_path / "only_s.npy", np.array([0, 0], dtype=np.uint16))

    def verdicts(f: Path) -> list:
        out = tmp_path / f"out_{f.name.replace('.', '_')}"
        got = [main(["synth", str(f), "-o", str(out / "a.wav")]),
               main(["plot", str(f), "-o", str(out / "a.png")]),
               main(["generate", "-m", tiny_model, "--prime", str(f), "--tokens", "4", "-q", "-o", str(out / "c.mid")])]
        if f.name.endswith(".tx1.txt"):
            got.append(main(["decode", str(f), "-o", str(out)]))
            try:
                load_upload(f.read_bytes(), f.name, Limits())
                got.append(0)
            except InvalidInputError as e:
                assert e.path == f.name
                got.append(1)
        return got

    assert verdicts(stray) == [0, 0, 0, 0, 0]
    assert verdicts(tmp_path / "stray_off.npy") == [0, 0, 0]
    capsys.readouterr()
    assert verdicts(only_s) == [1, 1, 1, 1, 1]
    err = _err_lines(capsys)
    assert all("empty song" in ln for ln in err if not ln.endswith("failed")), err
    assert verdicts(tmp_path / "only_s.npy") == [1, 1, 1]
    score = tx1.read_tx1(stray)
    assert score.notes["P1"].tolist() == [(0, 22050, 60, 15)] and not len(score.notes["P2"])
