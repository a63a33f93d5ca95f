"""CPU seconds of `lakhnes generate -q -m MODEL --seed S -o x.tx1.txt` (30 s of music) for seeds 0-4,
per model, models alternated per seed; the child's CPU time from getrusage (robust to other load).

Usage: python benchmarks/bench_song_cpu.py MODEL [MODEL ...]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile


def main() -> int:
    models = sys.argv[1:]
    if not models:
        sys.exit(__doc__)
    res: dict[str, list[float]] = {m: [] for m in models}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for seed in range(5):
        for m in models:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            with tempfile.TemporaryDirectory() as t:
                subprocess.run(["lakhnes", "generate", "-q", "-m", m, "--seed", str(seed), "-o", f"{t}/x.tx1.txt"],
                               check=True, env=env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            res[m].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    for m, v in res.items():
        print(f"{m}: median {statistics.median(v):.2f} CPU s, seeds 0-4: {[round(x, 2) for x in v]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
