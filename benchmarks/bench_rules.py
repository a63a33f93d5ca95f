"""What the decoding rules cost per token: the same decoding with every rule (the default), with
validity only (``rules=[]``), and optionally with the code before them (another checkout's src).

    python benchmarks/bench_rules.py [-m MODEL] [--tokens 1000] [--repeat 5] [--before SRC_DIR]
        [--songs 10]

Each arm runs in its own process (one torch thread, batch 1), the arms alternating ``--repeat``
times, so that a shared machine's load drifts over all of them alike; each run decodes ``--tokens``
tokens after ``<S>`` (seed 0; fixed work per token) and reports the CPU seconds of the decoding
alone. Prints the best and the median per arm, in ms per token. ``--songs K``: also 30 s of music
for seeds 0..K-1 per arm (``sample_tokens``, what ``lakhnes generate`` runs): the tokens per song
and the median CPU and wall seconds (what the "30 s of music in 3 s" target reads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from lakhnes import generate as G
arm, model, tokens, songs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = G.load_model(model) if model else G.load_default_model()
kw = {"rules": []} if arm == "validity" else {}
G.sample_tokens(m, tokens=64, seed=0, **kw)  # warm-up
c = time.process_time()
(ids,) = G.sample_tokens(m, tokens=tokens, seed=0, **kw)
out = {"ms_per_token": 1e3 * (time.process_time() - c) / len(ids)}
if songs:
    walls, cpus, counts = [], [], []
    for seed in range(songs):
        w, c = time.perf_counter(), time.process_time()
        (ids,) = G.sample_tokens(m, seconds=30.0, seed=seed, **kw)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        counts.append(len(ids))
    out.update(walls=walls, cpus=cpus, tokens=counts)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default="", help="run or checkpoint folder (default: the shipped model)")
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", default=None, help="src folder of the code before the rules (e.g. a git archive)")
    ap.add_argument("--songs", type=int, default=0, help="also time 30 s of music for this many seeds")
    a = ap.parse_args()
    arms = {"all rules (default)": ("rules", None), "validity only (rules=[])": ("validity", None)}
    if a.before:
        arms = {f"before ({a.before})": ("before", a.before), **arms}
    results: dict[str, list[dict]] = {k: [] for k in arms}
    for rep in range(a.repeat):
        for name, (arm, src) in arms.items():
            env = dict(os.environ)
            if src:
                env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
            songs = a.songs if rep == 0 else 0
            out = subprocess.run([sys.executable, "-c", WORKER, arm, a.model, str(a.tokens), str(songs)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{a.tokens} tokens after <S>, seed 0, batch 1, one thread; {a.repeat} alternating runs per arm; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| arm | ms/token CPU, best | median | 30 s songs: tokens (median) | CPU s (median) | wall s (median) |")
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        ms = np.array([r["ms_per_token"] for r in rows])
        first = rows[0]
        songs = (f"{np.median(first['tokens']):.0f} | {np.median(first['cpus']):.2f} | "
                 f"{np.median(first['walls']):.2f}" if "walls" in first else "— | — | —")
        print(f"| {name} | {ms.min():.3f} | {np.median(ms):.3f} | {songs} |")


if __name__ == "__main__":
    main()
