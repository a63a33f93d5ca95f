"""Time per song: `lakhnes generate -q -m MODEL --seed S -o x.EXT` (30 s of music) for seeds 0..N-1,
per model, models alternated per seed. CPU seconds (the child's, from getrusage: robust to other
load), wall seconds (meaningful on a quiet machine) and the song's tokens.

Usage: python benchmarks/bench_song_cpu.py MODEL [MODEL ...] [--seeds 5] [--ext tx1.txt|wav|mid] [--isa avx2]
(``--isa``: the compiled step forced to that instruction set, e.g. AVX2 on an AVX-512 CPU)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ext", default="tx1.txt", help="output format (tx1.txt, wav, mid)")
    ap.add_argument("--isa", help="force the compiled step's instruction set (avx2, avx512, c)")
    a = ap.parse_args()
    rows: dict[str, list[tuple[float, float, int]]] = {m: [] for m in a.models}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cli = ["lakhnes"] if not a.isa else [sys.executable, "-c", "import sys; from lakhnes.models import txl_kernel as K; "
                                          f"K.isa({a.isa!r}); from lakhnes.cli import main; sys.exit(main(sys.argv[1:]))"]
    for seed in range(a.seeds):
        for m in a.models:
            with tempfile.TemporaryDirectory() as t:
                before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                subprocess.run([*cli, "generate", "-q", "-m", m, "--seed", str(seed), "-o", f"{t}/x.{a.ext}"],
                               check=True, env=env)
                wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                tokens = -1
                if a.ext == "tx1.txt":
                    tokens = len(Path(f"{t}/x.tx1.txt").read_text().split())
            rows[m].append((cpu, wall, tokens))
            print(f"{m} seed {seed}: {cpu:.2f} CPU s, {wall:.2f} s wall, {tokens} tokens", flush=True)
    for m, v in rows.items():
        cpu, wall = [r[0] for r in v], [r[1] for r in v]
        print(f"{m}: median {statistics.median(cpu):.2f} CPU s, {statistics.median(wall):.2f} s wall over seeds "
              f"0-{a.seeds - 1}; CPU {[round(x, 2) for x in cpu]}; wall {[round(x, 2) for x in wall]}; "
              f"tokens {[r[2] for r in v]}; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
