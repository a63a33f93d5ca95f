"""Speed and memory of ``lakhnes prepare lakh`` on the Lakh stand-in corpus.

Runs the whole preparation (read, map, tokenise, write shards) with one worker in a fresh
process, once on a quarter of the files and once on all of them, and reports files per
second per core (files / CPU seconds of that process), wall time and peak resident memory
(equal peaks for a quarter and for all files: memory does not grow with the corpus).

    python benchmarks/bench_lakh.py [../shared/data/multitrack_midi.tar.gz] [--limit N]

``--limit N`` uses the first N files only (a quick check that the benchmark runs).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from lakhnes.data.prepare_lakh import is_midi_name

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "multitrack_midi.tar.gz"

CHILD = """
import json, resource, sys, time
from lakhnes.data.prepare_lakh import prepare_lakh
t0, c0 = time.perf_counter(), time.process_time()
m = prepare_lakh(sys.argv[1], sys.argv[2], workers=1, progress=False)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "manifest": m}))
"""


def run(src: Path, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out)], check=True, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tar", nargs="?", type=Path, default=DEFAULT, help="the Lakh stand-in corpus")
    ap.add_argument("--limit", type=int, default=0, help="use the first N files only (0: all)")
    a = ap.parse_args()
    tar = a.tar
    if not tar.exists():
        sys.exit(f"{tar}: not found (the Lakh stand-in corpus)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with tarfile.open(tar) as t:
            t.extractall(tmp / "src", filter="data")
        src = tmp / "src"
        files = sorted(p for p in src.rglob("*") if p.is_file() and is_midi_name(p.name))
        if a.limit > 0:
            for p in files[a.limit :]:
                p.unlink()
            files = files[: a.limit]
        quarter = tmp / "quarter"
        for p in files[::4]:
            q = quarter / p.relative_to(src)
            q.parent.mkdir(parents=True, exist_ok=True)
            q.symlink_to(p)
        print(f"corpus: {tar.name}, {len(files)} MIDI files; one worker, fresh process each\n")
        print("| input | files | files used | examples | CPU s | wall s | files/s per core | peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|")
        for name, d in (("quarter", quarter), ("all", src)):
            r = run(d, tmp / f"out_{name}")
            m = r["manifest"]
            ex = m["examples"]["train"] + m["examples"]["valid"]
            print(f"| {name} | {m['files_read']} | {m['files_used']} | {ex} | {r['cpu']:.1f} | {r['wall']:.1f} "
                  f"| {m['files_read'] / r['cpu']:.0f} | {r['rss_mb']:.0f} |")
        print(f"\nskipped (all files): {json.dumps({k: v for k, v in m['skipped'].items() if v})}")
        print(f"splits: {json.dumps(m['splits'])}")
        print(f"examples too short (< 10 tokens, dropped): {m['examples_too_short']}")
    print(f"\nthis process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"finished {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    main()
