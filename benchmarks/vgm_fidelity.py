"""How close lakhnes' VGM output, played by a real NES APU emulator, comes to the game's own music.

The emulator is jsnes' APU (npm ``jsnes`` 3.0.0: clocked per CPU cycle, frame counter at its
cycle timings, the nonlinear mixer), driven from the VGM's register writes by
``benchmarks/vgm_play.mjs``::

    mkdir -p /tmp/jsnes && npm install --prefix /tmp/jsnes jsnes@3.0.0
    python benchmarks/vgm_fidelity.py --jsnes /tmp/jsnes/node_modules/jsnes [--valid 20]

Two comparisons, each through synth_fidelity.py's pipeline (NES output filters, RMS-envelope
alignment, same RMS, 2048-point STFT hop 512 to 14 kHz, frames within 50 dB of the loudest):

1. ``shared/data/apu_reference``: the reference .flac (a cycle-level emulator playing the
   game's register log) against (a) jsnes playing lakhnes' VGM of the NES-MDB MIDI (what
   ``lakhnes generate/synth -o song.vgm`` writes) and (b) lakhnes' synthesizer (``render``).
2. NES-MDB's valid split: jsnes playing the game's own VGM against (a) jsnes playing lakhnes'
   VGM of the NES-MDB MIDI of the same song and (b) lakhnes' synthesizer of that MIDI.

Measures: ``cos`` the frame-wise cosine of the magnitude spectra (mean over frames), and
synth_fidelity's ``lsc`` (Pearson correlation of the dB spectra) and ``lsd`` (dB).
Writes results/vgm_fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth_fidelity import align, compare, nes_filters, shift, stft_mag  # noqa: E402

from lakhnes.core.score import SAMPLE_RATE  # noqa: E402
from lakhnes.formats.midi import read_midi  # noqa: E402
from lakhnes.formats.vgm import parse, unpack, write_vgm  # noqa: E402
from lakhnes.synth import render  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared/data"


def emulate(vgm: bytes, jsnes: str, tmp: Path) -> np.ndarray:
    """The VGM's NES APU writes played by jsnes (mono, 44.1 kHz)."""
    samples, regs, vals, nsamps, _ = parse(unpack(vgm))
    rec = np.zeros(len(samples) + 1, dtype=[("t", "<i4"), ("r", "u1"), ("v", "u1")])
    rec["t"][:-1], rec["r"][:-1], rec["v"][:-1] = samples, regs, vals
    rec[-1] = (nsamps, 0xFF, 0)
    ev, out = tmp / "events.bin", tmp / "out.f32"
    rec.tofile(ev)
    subprocess.run(["node", str(HERE / "vgm_play.mjs"), jsnes, str(ev), str(out)], check=True)
    return np.fromfile(out, dtype=np.float32).astype(np.float64)


def lakhnes_vgm(score, tmp: Path) -> bytes:
    path = tmp / "song.vgm"
    write_vgm(score, path)  # what `-o song.vgm` writes
    return path.read_bytes()


def cosine(ref: np.ndarray, mine: np.ndarray) -> float:
    r, m = stft_mag(ref), stft_mag(mine)
    energy = (r**2).sum(0)
    keep = energy > energy.max() * 1e-5
    r, m = r[:, keep], m[:, keep]
    return float(((r * m).sum(0) / (np.linalg.norm(r, axis=0) * np.linalg.norm(m, axis=0) + 1e-12)).mean())


def measure(ref: np.ndarray, mine: np.ndarray) -> dict:
    ref, mine = nes_filters(ref), nes_filters(mine)
    lag = align(ref, mine)
    mine = shift(mine, lag, len(ref))
    mine = mine * np.std(ref) / max(np.std(mine), 1e-12)
    row = compare(ref, mine)
    return {"cos": cosine(ref, mine), "lsc": row["lsc"], "lsd": row["lsd"], "lag": lag}


def fmt(name: str, a: dict, b: dict) -> str:
    return (f"{name[:40]:40s} {a['cos']:6.3f} {a['lsc']:6.3f} {a['lsd']:6.1f} {a['lag']:6d}   "
            f"{b['cos']:6.3f} {b['lsc']:6.3f} {b['lsd']:6.1f} {b['lag']:6d}")


def table(title: str, rows: list[tuple[str, dict, dict]]) -> dict:
    print(f"\n{title}\n{'song':40s} {'VGM in jsnes':>27s}   {'lakhnes synth':>27s}")
    print(f"{'':40s} {'cos':>6s} {'lsc':>6s} {'lsd':>6s} {'lag':>6s}   {'cos':>6s} {'lsc':>6s} {'lsd':>6s} {'lag':>6s}")
    for name, a, b in rows:
        print(fmt(name, a, b))
    mean = {side: {k: float(np.mean([r[i][k] for r in rows])) for k in ("cos", "lsc", "lsd")}
            for i, side in ((1, "vgm_jsnes"), (2, "synth"))}
    print(f"{'mean':40s} {mean['vgm_jsnes']['cos']:6.3f} {mean['vgm_jsnes']['lsc']:6.3f} "
          f"{mean['vgm_jsnes']['lsd']:6.1f} {'':6s}   {mean['synth']['cos']:6.3f} {mean['synth']['lsc']:6.3f} "
          f"{mean['synth']['lsd']:6.1f}")
    return {"songs": {n: {"vgm_jsnes": a, "synth": b} for n, a, b in rows}, "mean": mean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsnes", required=True, help="jsnes package folder (npm install jsnes@3.0.0)")
    ap.add_argument("--reference", default=str(DATA / "apu_reference"))
    ap.add_argument("--vgm-tar", default=str(DATA / "nesmdb_vgm_valid.tar.gz"))
    ap.add_argument("--midi-tar", default=str(DATA / "nesmdb_midi.tar.gz"))
    ap.add_argument("--valid", type=int, default=20, help="valid-split songs to compare (first N by name)")
    ap.add_argument("--out", default=str(HERE.parent / "results/vgm_fidelity.json"))
    args = ap.parse_args()
    result = {"emulator": "jsnes 3.0.0 APU (npm), benchmarks/vgm_play.mjs"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = []
        for mid in sorted(Path(args.reference).glob("*.mid")):
            score = read_midi(mid)
            ref, sr = sf.read(str(mid.with_suffix(".flac")), dtype="float64")
            assert sr == SAMPLE_RATE
            ours = emulate(lakhnes_vgm(score, tmp), args.jsnes, tmp)
            rows.append((mid.stem, measure(ref, ours), measure(ref, render(score, filters=False))))
        result["apu_reference"] = table("1. reference .flac vs lakhnes' VGM in jsnes / lakhnes' synthesizer", rows)

        with tarfile.open(args.vgm_tar) as vt, tarfile.open(args.midi_tar) as mt:
            vgms = sorted((m for m in vt.getmembers() if m.name.endswith(".vgm")), key=lambda m: m.name)
            midis = {Path(m.name).stem: m for m in mt.getmembers() if "/valid/" in m.name and m.name.endswith(".mid")}
            rows = []
            for m in vgms:
                stem = Path(m.name).stem
                if stem not in midis:
                    continue
                (tmp / "song.mid").write_bytes(mt.extractfile(midis[stem]).read())
                score = read_midi(tmp / "song.mid")
                ref = emulate(vt.extractfile(m).read(), args.jsnes, tmp)
                ours = emulate(lakhnes_vgm(score, tmp), args.jsnes, tmp)
                rows.append((stem, measure(ref, ours), measure(ref, render(score, filters=False))))
                if len(rows) == args.valid:
                    break
        result["valid"] = table("2. game's VGM in jsnes vs lakhnes' VGM (NES-MDB MIDI) in jsnes / lakhnes' synthesizer",
                                rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
