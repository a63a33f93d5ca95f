"""VGM in and out over NES-MDB's valid split (../shared/data/nesmdb_vgm_valid.tar.gz).

    python benchmarks/bench_vgm.py [--data ../shared/data] [--limit N] [--out results/bench_vgm.json]

- TX1: each rip -> score -> TX1 text, byte-identical to LakhNES' reference (nesmdb_tx1/valid);
- note F1 against NES-MDB's MIDI of the same rip (voice, pitch, onset within 735 samples);
- score equality with NES-MDB's MIDI (notes, CC11; CC12 of voices with notes);
- read speed (VGM bytes -> score) and write speed (score -> VGM bytes), files/s and MB/s;
- FamiTracker: per-voice notes read back from the text vs the MIDI's notes of at least a frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from lakhnes.core import tx1
from lakhnes.core.score import VOICES
from lakhnes.data.vgm import note_f1
from lakhnes.formats.apu_driver import register_writes
from lakhnes.formats.famitracker import FRAME, _parse, famitracker_text
from lakhnes.formats.midi import read_midi
from lakhnes.formats.vgm import read_vgm, vgm_bytes


def _members(tar: Path, part: str, suffix: str) -> dict[str, bytes]:
    out = {}
    with tarfile.open(tar) as t:
        for m in t:
            if m.isfile() and part in m.name and m.name.endswith(suffix):
                out[m.name.rsplit("/", 1)[-1][: -len(suffix)]] = t.extractfile(m).read()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default="results/bench_vgm.json")
    args = ap.parse_args()
    data = Path(args.data)
    vgms = _members(data / "nesmdb_vgm_valid.tar.gz", "/valid/", ".vgm")
    mids = _members(data / "nesmdb_midi.tar.gz", "/valid/", ".mid")
    refs = _members(data / "nesmdb_tx1_valid_reference.tar.gz", "/valid/", ".tx1.txt")
    names = sorted(vgms)[: args.limit or None]
    same_tx1 = same_score = 0
    f1, failed, ft_ok, ft_ratio = [], [], {v: 0 for v in VOICES}, {v: [] for v in VOICES}
    read_s = write_s = 0.0
    read_bytes = write_bytes = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            score = read_vgm(vgms[name], name=name)
        except Exception as e:  # noqa: BLE001 - counted and reported
            failed.append(f"{name}: {e}")
            continue
        read_s += time.perf_counter() - t0
        read_bytes += len(vgms[name])
        ref = read_midi(mids[name])
        same_tx1 += tx1.score_to_text(score).strip() == refs[name].decode().strip()
        f1.append(note_f1(score, ref))
        for v in VOICES:
            if not len(ref.notes[v]):
                score.timbre[v] = ref.timbre[v]  # symusic drops a track without notes, and its CC12
        same_score += score == ref
        t0 = time.perf_counter()
        w, n = register_writes(ref)
        out = vgm_bytes(w, n, name)
        write_s += time.perf_counter() - t0
        write_bytes += len(out)
        back = _parse(famitracker_text(ref), name)
        for v in VOICES:
            long_notes = int((ref.notes[v]["end"] - ref.notes[v]["start"] >= FRAME).sum())
            got = len(back.notes[v])
            ft_ok[v] += abs(got - long_notes) <= 0.1 * long_notes
            if long_notes:
                ft_ratio[v].append(got / long_notes)
    n = len(names)
    res = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"python {platform.python_version()}",
        "files": n, "failed": failed,
        "tx1_identical": same_tx1, "tx1_identical_pct": round(100 * same_tx1 / n, 2),
        "score_identical": same_score,
        "note_f1_mean": round(float(np.mean(f1)), 5), "note_f1_min": round(float(np.min(f1)), 5),
        "read_files_per_s": round(n / read_s, 2), "read_mb_per_s": round(read_bytes / 1e6 / read_s, 3),
        "write_files_per_s": round(n / write_s, 2), "write_mb_per_s": round(write_bytes / 1e6 / write_s, 3),
        "famitracker_counts_within_10pct": {v: ft_ok[v] for v in VOICES},
        "famitracker_count_ratio_mean": {v: round(float(np.mean(r)), 4) for v, r in ft_ratio.items()},
    }
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
