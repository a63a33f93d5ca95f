"""Foundation benchmarks: `lakhnes encode` over all NES-MDB MIDI, and `lakhnes prepare nesmdb`.

Run:  python benchmarks/bench_foundation.py [--data ../shared/data] [--workers 2]
Prints wall time, files/s and peak RSS (children) for each, as Markdown rows.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MB) of the command's process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tar = Path(a.data) / "nesmdb_midi.tar.gz"
    exe = [sys.executable, "-m", "lakhnes"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with tarfile.open(tar) as t:
            t.extractall(tmp, filter="data")
        n = len(list((tmp / "nesmdb_midi").rglob("*.mid")))
        best = None
        for _ in range(a.repeat):
            shutil.rmtree(tmp / "tx1", ignore_errors=True)
            wall, rss = timed(exe + ["encode", str(tmp / "nesmdb_midi"), "-o", str(tmp / "tx1"), "-j", str(a.workers)])
            best = wall if best is None else min(best, wall)
        print(f"| encode {n} NES-MDB MIDI -> TX1 (-j {a.workers}) | {best:.2f} s | {n / best:.0f} files/s |")
        best = None
        for _ in range(a.repeat):
            wall, rss = timed(exe + ["prepare", "nesmdb", str(tar), "-o", str(tmp / "prep"), "-j", str(a.workers)])
            best = wall if best is None else min(best, wall)
        print(f"| prepare nesmdb (tarball, -j {a.workers}) | {best:.2f} s | peak RSS {rss:.0f} MB |")


if __name__ == "__main__":
    main()
