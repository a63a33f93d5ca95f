"""Seeded mutations of real music files, and a runner that feeds them to ``lakhnes`` commands.

Used by the fuzz test (``tests/test_fuzz.py``, a few hundred inputs) and the large run
(``benchmarks/fuzz.py``, 10,000). Each *case* is one mutated file and one target:

- ``encode``: ``lakhnes encode FILE -o OUT``   (mutated NES-MDB MIDI)
- ``decode``: ``lakhnes decode FILE -o OUT``   (mutated TX1 text)
- ``synth``:  ``lakhnes synth FILE -o OUT.wav`` (mutated NES-MDB MIDI or TX1)
- ``prime``:  ``lakhnes generate -m MODEL --prime FILE ... -o OUT.mid`` (mutated MIDI of any kind, or TX1)
- ``lakh``:   ``lakhnes prepare lakh FOLDER -o OUT`` (a folder of mutated MIDI files)
- ``options``: ``lakhnes generate -m MODEL --prime/--rhythm/--keep FILE OPTIONS -o OUT.mid``: a real (or
  mutated) MIDI of any kind with options drawn from their valid and hostile ranges: ``--map``, ``--from``/
  ``--to``, ``--max-rest``, ``--temperature``, ``--prime-seconds``, ``--seed``, ``--device``, ``--num``,
  ``--tokens``, ``--seconds`` (inf, nan, 1e308, 1e-300, 2**70, bogus names ...)

:func:`run_case` calls the command in this process (``lakhnes.cli.main``) and judges it:
exit status, a traceback (an exception escaping ``main``, or printed), a stray ``RuntimeWarning``,
an empty output counted as converted, a half-written output, the growth of peak memory, and a
per-case time limit (a hang).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import signal
import time
import tracemalloc
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

TARGETS = ("encode", "decode", "synth", "prime", "lakh", "options")
#: growth of peak memory allowed for one case (the 59-minute synth stays under it)
MAX_PEAK_MB = 300.0

# ------------------------------------------------------------------------------------ mutations

_HUGE_VLQ = (b"\xff\xff\xff\x7f", b"\x8f\xff\xff\x7f", b"\x81\x80\x80\x00", b"\x7f")


def _flip(d: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        d[rng.randrange(len(d))] = rng.randrange(256)
    return d


def _header(d: bytearray, rng: random.Random) -> bytearray:
    if len(d) < 14:
        return d
    field = rng.choice([(4, 8), (8, 10), (10, 12), (12, 14)])  # length, format, ntracks, division
    size = field[1] - field[0]
    value = rng.choice([0, 1, 2, 5, 0x7FFF, 0x8000 | rng.randrange(1 << 15), rng.randrange(1 << (8 * size))])
    d[field[0]:field[1]] = (value % (1 << (8 * size))).to_bytes(size, "big")
    return d


def _tempo(d: bytearray, rng: random.Random) -> bytearray:
    at = [m.start() for m in re.finditer(rb"\xff\x51\x03", bytes(d))]
    if not at:
        return _flip(d, rng)
    i = rng.choice(at) + 3
    d[i:i + 3] = rng.choice([0, 1, 0xFFFFFF, rng.randrange(1 << 24)]).to_bytes(3, "big")
    return d


def _delta(d: bytearray, rng: random.Random) -> bytearray:
    """Overwrite a few bytes inside a track with a long variable-length quantity (a huge wait)."""
    if len(d) < 30:
        return _flip(d, rng)
    i = rng.randrange(22, len(d) - 4)
    v = rng.choice(_HUGE_VLQ)
    d[i:i + len(v)] = v
    return d


def _truncate(d: bytearray, rng: random.Random) -> bytearray:
    return d[: rng.randrange(len(d) + 1)]


def _splice(d: bytearray, rng: random.Random) -> bytearray:
    a = rng.randrange(len(d) + 1)
    b = min(len(d), a + rng.randint(1, 64))
    at = rng.randrange(len(d) + 1)
    return d[:at] + d[a:b] + d[at:]


def _chunk(d: bytearray, rng: random.Random) -> bytearray:
    """Change a track chunk's length, or drop a whole track chunk."""
    at = [m.start() for m in re.finditer(rb"MTrk", bytes(d))]
    if not at:
        return _flip(d, rng)
    i = rng.choice(at)
    size = int.from_bytes(d[i + 4:i + 8], "big")
    if rng.random() < 0.5:
        return d[:i] + d[i + 8 + size:]
    d[i + 4:i + 8] = rng.choice([0, (size + 1) & 0xFFFFFFFF, max(0, size - 1), 0xFFFFFFFF]).to_bytes(4, "big")
    return d


MIDI_OPS = (_flip, _header, _tempo, _delta, _truncate, _splice, _chunk)


def mutate_midi(data: bytes, rng: random.Random) -> bytes:
    """One to three random byte-level mutations of a MIDI file."""
    d = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not d:
            break
        d = rng.choice(MIDI_OPS)(d, rng)
    return bytes(d)


def mutate_tx1(text: str, rng: random.Random) -> bytes:
    """A random token-level mutation of TX1 text (or a degenerate file)."""
    from lakhnes.core import vocab

    lines = text.splitlines()
    kind = rng.randrange(11)
    if kind == 0 or not lines:
        return rng.choice([b"", b"<S>", b"<S>\n<S>\n", b"P1_NOTEOFF\nP2_NOTEOFF", b"\xff\xfe\x00garbage",
                           b"WT_" + b"9" * rng.randint(10, 6000), b"\n\n  \n"])
    i = rng.randrange(len(lines))
    if kind == 1:
        del lines[i:i + rng.randint(1, 20)]
    elif kind == 2:
        lines[i:i] = lines[i:i + rng.randint(1, 50)] * rng.randint(1, 30)
    elif kind == 3:
        window = lines[i:i + 12]
        rng.shuffle(window)
        lines[i:i + 12] = window
    elif kind == 4:
        lines[i] = rng.choice(vocab.TOKENS)
    elif kind == 5:
        lines[i] = "WT_" + "".join(rng.choice("0123456789") for _ in range(rng.choice([6, 9, 12, 40, 5000])))
    elif kind == 6:
        lines.insert(i, rng.choice(["XX", "P1_NOTEON_200", "TR_NOTEON_12", "NO_NOTEON_17", "WT_-5", "WT_1.5",
                                    "WT_", "P1_NOTEON_x", "p1_noteon_60", "WT_0", "\x00"]))
    elif kind == 7:
        for _ in range(rng.randint(1, 10)):
            lines.insert(rng.randrange(len(lines) + 1), f"{rng.choice(['P1', 'P2', 'TR', 'NO'])}_NOTEOFF")
    elif kind == 8:
        lines.insert(i, "<S>")
    elif kind == 9:
        lines = [ln for ln in lines if not ln.startswith("WT_")]
    else:
        return mutate_midi("\n".join(lines).encode(), rng)
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def mutate_vgm(data: bytes, rng: random.Random) -> bytes:
    """A corrupt, truncated or garbage VGM: header fields (EOF offset, version, data offset, clock,
    GD3 offset), byte flips, cuts, splices, a gzip wrapper around any of these, or noise."""
    import gzip
    import struct

    d = bytearray(data)
    kind = rng.randrange(8)
    if kind == 0 and len(d) >= 0x88:
        off = rng.choice([0x04, 0x08, 0x14, 0x18, 0x34, 0x84])
        val = rng.choice([0, 1, 0x150, 0x161, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000 | 1789772, rng.randrange(1 << 32)])
        struct.pack_into("<I", d, off, val)
    elif kind == 1:
        d = _flip(d, rng)
    elif kind == 2:
        d = _truncate(d, rng)
    elif kind == 3:
        d = _splice(d, rng)
    elif kind == 4:  # an unknown or cut command, or a data block with a huge size
        at = rng.randrange(0xC0, max(0xC1, len(d)))
        d[at:at] = rng.choice([b"\x01", b"\x67\x66\xc2\xff\xff\xff\x7f", b"\xb4", b"\x61\xff", b"\x66"])
    elif kind == 5:
        return b"Vgm " + bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    elif kind == 6:
        return gzip.compress(mutate_vgm(data, rng), mtime=0)[: rng.choice([None, 10, 40])]
    else:
        d = _flip(_truncate(d, rng), rng) if d else d
    return bytes(d)


# ------------------------------------------------------------------------------------- seeds


def seed_files(fixtures: Path, shared: Path | None = None, max_shared: int = 0, rng: random.Random | None = None):
    """Real files to mutate: ``{"nes": [bytes], "tx1": [str], "any": [bytes]}``. NES-MDB MIDI and
    TX1 from ``fixtures``; any-MIDI seeds are the same songs as General MIDI (drums included) plus,
    with ``shared`` data and ``max_shared`` > 0, that many NES-MDB and multitrack (Lakh/POP909/JS)
    files from its archives."""
    import tarfile

    from lakhnes.formats.midi import read_midi

    nes = [p.read_bytes() for p in sorted((fixtures / "nesmdb").glob("*.mid"))]
    tx1 = [p.read_text() for p in sorted((fixtures / "tx1").glob("*.tx1.txt"))]
    any_midi = [general_midi(d) for d in nes]
    if shared is not None and max_shared > 0:
        rng = rng or random.Random(0)
        for name, dst, pattern in (("nesmdb_midi.tar.gz", nes, r"\.mid$"),
                                   ("multitrack_midi.tar.gz", any_midi, r"\.midi?\d*$")):
            with tarfile.open(shared / name) as t:
                members = [m for m in t.getmembers() if m.isfile() and re.search(pattern, m.name)]
                for m in rng.sample(members, min(max_shared, len(members))):
                    dst.append(t.extractfile(m).read())
        from lakhnes.core.tx1 import score_to_text

        for d in nes[len(tx1):len(tx1) + max_shared]:
            with contextlib.suppress(Exception):
                tx1.append(score_to_text(read_midi(d)))
    return {"nes": nes, "tx1": tx1, "any": any_midi}


def general_midi(nes_midi: bytes) -> bytes:
    """An NES-MDB song as a General MIDI file with instrument track names (lead, bass, drums): any
    MIDI to ``lakhnes``, which maps it onto the NES voices (NES track names would be read as NES)."""
    from lakhnes.formats.files import to_general_midi
    from lakhnes.formats.midi import read_midi

    sm = to_general_midi(read_midi(nes_midi))
    names = {"p1": "Square Lead", "p2": "Lead 2", "tr": "Synth Bass", "no": "Drums"}
    for t in sm.tracks:
        t.name = names.get(t.name, t.name)
    return sm.dumps_midi()


MIX = {"encode": 0.3, "decode": 0.2, "synth": 0.2, "prime": 0.2, "lakh": 0.1, "options": 0.15}

#: option values the ``options`` target draws from: (valid ones, edges and hostile ones)
OPTION_VALUES = {
    "--map": (("0=P1", "1=TR,0=P2", "Square Lead=P1", "Drums=NO", "0=-", "Lead 2=TR,Synth Bass=-"),
              ("0=P9", "9=P1", "X", "=P1", "0=P1,1=P1", ",", "0=P1,0=TR", "1=-,2=-,3=-,0=-")),
    "--from": (("0", "0.5", "1", "2"), ("-1", "1e9", "1e308", "inf", "nan", "1e-300")),
    "--to": (("2", "3", "4"), ("0", "-1", "1e9", "inf", "nan")),
    "--prime-seconds": (("0.5", "1", "3"), ("0", "-1", "1e308", "inf", "nan", "1e-300")),
    "--max-rest": (("0.1", "2", "8.4", "3600"), ("0.05", "3601", "1e308", "inf", "nan")),
    "--temperature": (("0", "0.5", "0.95", "10"), ("11", "1e308", "inf", "nan", "1e-300", "-1")),
    "--seed": (("0", "7", str(2**63 - 1)), (str(2**63), str(2**70), "-1")),
    "--device": (("cpu",), ("bogus", "cuda:99", "meta")),
    "--num": (("1", "2"), ("0", "1001", "10000")),
    "--tokens": (("16", "24"), ("0", "-5", "1")),
    "--seconds": (("1", "2"), ("0", "-1", "1e9", "1e308", "inf", "nan", "1e-300")),
    "--top-p": (("0.9", "1"), ("0", "nan")), "--top-k": (("0", "8"), ("-1",)),
}


def option_args(rng: random.Random) -> list[str]:
    """A ``generate`` command line for the ``options`` target (``{file}``: the source file)."""
    mode = rng.choice(["--prime", "--rhythm", "--keep"])
    args = [mode, rng.choice(["P1", "NO", "P1,TR", "TR", "P1,P2,TR,NO", "X"]), "{file}"] if mode == "--keep" \
        else [mode, "{file}"]
    for name in rng.sample(list(OPTION_VALUES), rng.randint(1, 3)):
        valid, hostile = OPTION_VALUES[name]
        args += [name, rng.choice(hostile if rng.random() < 0.3 else valid)]
    if not any(a in args for a in ("--tokens", "--seconds", "--to")):  # keep a valid case short
        args += ["--tokens", "16"] if mode == "--prime" else ["--to", "3"]
    return args


def make_case(seeds: dict, k: int, seed: int, mix: dict[str, float] | None = None) -> dict:
    """Case ``k`` of the run ``seed``: its target and its files (name, mutated bytes as latin-1 text),
    a function of (``seed``, ``k``) and the seed files only, so any worker can make any case. A
    ``lakh`` case is a folder of 2-20 mutated files."""
    rng = random.Random(f"{seed}:{k}")
    mix = mix or MIX
    target = rng.choices(list(mix), weights=list(mix.values()))[0]
    if target == "encode":
        files = [(f"c{k}.mid", mutate_midi(rng.choice(seeds["nes"]), rng))]
    elif target == "decode":
        files = [(f"c{k}.tx1.txt", mutate_tx1(rng.choice(seeds["tx1"]), rng))]
    elif target == "synth":
        if rng.random() < 0.5:
            files = [(f"c{k}.mid", mutate_midi(rng.choice(seeds["nes"]), rng))]
        else:
            files = [(f"c{k}.tx1.txt", mutate_tx1(rng.choice(seeds["tx1"]), rng))]
    elif target == "prime":
        r = rng.random()
        if r < 0.4:
            files = [(f"c{k}.mid", mutate_midi(rng.choice(seeds["any"]), rng))]
        elif r < 0.6:  # Lakh's names: MIDI known by its content
            files = [(f"c{k}.mid{rng.randrange(14)}", mutate_midi(rng.choice(seeds["any"]), rng))]
        elif r < 0.8:
            files = [(f"c{k}.mid", mutate_midi(rng.choice(seeds["nes"]), rng))]
        else:
            files = [(f"c{k}.tx1.txt", mutate_tx1(rng.choice(seeds["tx1"]), rng))]
    elif target == "options":
        seed_file = rng.choice(seeds["any"] + seeds["nes"])
        data = mutate_midi(seed_file, rng) if rng.random() < 0.3 else seed_file
        files = [(f"c{k}.mid", data)]
        return {"id": k, "target": target, "files": [(n, d.decode("latin-1")) for n, d in files],
                "args": option_args(rng)}
    else:
        files = [(f"c{k}_{j}.mid{rng.choice(['', '', '0', '7'])}",
                  mutate_midi(rng.choice(seeds["any"] + seeds["nes"]), rng)) for j in range(rng.randint(2, 20))]
    return {"id": k, "target": target, "files": [(name, data.decode("latin-1")) for name, data in files]}


def make_cases(seeds: dict, n: int, seed: int, mix: dict[str, float] | None = None) -> list[dict]:
    """Cases 0 .. n-1 of the run ``seed`` (see :func:`make_case`)."""
    return [make_case(seeds, k, seed, mix) for k in range(n)]


# -------------------------------------------------------------------------------------- runner


class Hang(BaseException):
    """A case ran past its time limit (a BaseException: no ``except Exception`` swallows it)."""


@dataclass
class Outcome:
    id: int
    target: str
    rc: int | None = None
    converted: int = 0  # outputs the command counted (encode/decode: "N converted"; else 1 on success)
    traceback: bool = False
    warning: bool = False  # a RuntimeWarning reached the user
    empty_counted: bool = False  # an empty or missing output counted as converted
    half_written: bool = False  # a failed command left an output (or a temporary file) behind
    unclear: bool = False  # a failure without a one-line "path: reason"
    hang: bool = False
    peak_mb: float = 0.0
    seconds: float = 0.0
    message: str = ""

    @property
    def ok(self) -> bool:
        return (self.rc in (0, 1, 2) and not (self.traceback or self.warning or self.empty_counted
                                              or self.half_written or self.unclear or self.hang)
                and self.peak_mb <= MAX_PEAK_MB)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def run_case(case: dict, work: Path, model: str, timeout: float = 30.0) -> Outcome:
    """Write the case's files under ``work`` (emptied first), run its command in this process, judge it."""
    import shutil

    from lakhnes.cli import main

    shutil.rmtree(work, ignore_errors=True)
    src = work / "in"
    src.mkdir(parents=True)
    for name, text in case["files"]:
        (src / name).write_bytes(text.encode("latin-1"))
    first = src / case["files"][0][0]
    out = work / "out"
    target = case["target"]
    argv = {
        "encode": ["encode", str(first), "-o", str(out), "-j", "1"],
        "decode": ["decode", str(first), "-o", str(out), "-j", "1"],
        "synth": ["synth", str(first), "-o", str(out / "song.wav")],
        "prime": ["generate", "-m", model, "--prime", str(first), "--prime-seconds", "2", "--tokens", "4",
                  "--seed", "0", "-q", "-o", str(out / "song.mid")],
        "lakh": ["prepare", "lakh", str(src), "-o", str(out), "-j", "1", "--quiet"],
        "options": ["generate", "-m", model, *[a.replace("{file}", str(first)) for a in case.get("args", [])],
                    "-q", "-o", str(out / "song.mid")],
    }[target]
    res = Outcome(case["id"], target)
    err, stdout = io.StringIO(), io.StringIO()
    use_rss = _rss_reset()
    base = _status_kb("VmRSS") if use_rss else 0
    if not use_rss:
        tracemalloc.start()

    def on_alarm(signum, frame):
        raise Hang

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(stdout):
            warnings.simplefilter("always", RuntimeWarning)
            try:
                res.rc = main(argv)
            except SystemExit as e:  # argparse: bad usage
                res.rc = e.code if isinstance(e.code, int) else 2
            except Hang:
                res.hang = True
            except Exception as e:  # noqa: BLE001 - exactly what the fuzzing looks for
                res.traceback = True
                res.message = f"{type(e).__name__}: {e}"[:300]
        res.warning = any(issubclass(w.category, RuntimeWarning) for w in caught)
    except Hang:
        res.hang = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        res.seconds = round(time.perf_counter() - t0, 3)
        if use_rss:
            res.peak_mb = round(max(0, _status_kb("VmHWM") - base) / 1024, 1)
        else:
            res.peak_mb = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            tracemalloc.stop()
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if "Traceback (most recent call last)" in text:
        res.traceback = True
    if not res.message:
        res.message = lines[0][:300] if lines else ""
    _judge(res, target, out, work, lines)
    return res


def _judge(res: Outcome, target: str, out: Path, work: Path, lines: list[str]) -> None:
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    temps = [p for p in work.rglob("*") if ".tmp" in p.name]
    if temps:
        res.half_written = True
    if target in ("encode", "decode"):
        m = re.fullmatch(r"(\d+) converted, (\d+) failed", lines[-1]) if lines else None
        res.converted = int(m.group(1)) if m else 0
        good = [p for p in written if p.stat().st_size > 0]
        res.empty_counted = res.converted > len(good) or len(good) < len(written)
        if res.rc == 1 and (not m or not any(": " in ln for ln in lines[:-1])):
            res.unclear = True
    elif target in ("synth", "prime", "options"):
        if res.rc == 0:
            res.converted = 1
            res.empty_counted = not written or any(p.stat().st_size == 0 for p in written)
        else:
            res.half_written = res.half_written or bool(written)
            res.unclear = res.rc == 1 and (len(lines) != 1 or ": " not in lines[0])
    else:  # lakh: the manifest adds up
        man = out / "manifest.json"
        if res.rc in (0, 1) and man.exists():
            m = json.loads(man.read_text())
            res.converted = int(m.get("files_used", 0))
            if m.get("files_read") != m.get("files_used", 0) + m.get("files_skipped", 0):
                res.empty_counted = True
        elif res.rc == 0:
            res.empty_counted = True
