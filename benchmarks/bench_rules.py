"""What the decoding rules cost per token: the same decoding with every rule (the default), with
validity only (``rules=[]``), and optionally with the code before them (another checkout's src).

    python benchmarks/bench_rules.py [-m MODEL] [--tokens 1000] [--repeat 5] [--before SRC_DIR]
        [--songs 10]

Each arm runs in its own process (one torch thread, batch 1), the arms alternating ``--repeat``
times, so that a shared machine's load drifts over all of them alike; each run decodes ``--tokens``
tokens after ``<S>`` (seed 0; fixed work per token) and reports the CPU seconds of the decoding
alone; then the same decoding again with each part of a step timed (the constraint's own code, the
sampling, the model step): the rules' own cost per token, free of the drift between processes.
Prints the best and the median per arm, in ms per token. ``--songs K``: also 30 s of music for
seeds 0..K-1 per arm (``sample_tokens``, what ``lakhnes generate`` runs): the tokens per song
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
import collections, json, sys, time
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
if arm != "before":  # the same decoding again, each part of a step timed (the constraint's own code apart)
    from lakhnes.decoding import constraint, sampler
    from lakhnes.models import txl_step
    spent = collections.Counter()
    def timed(owner, name, key):
        f = getattr(owner, name)
        def w(*a, **k):
            t = time.perf_counter(); r = f(*a, **k); spent[key] += time.perf_counter() - t; return r
        setattr(owner, name, w)
    for name in ("mask", "adjust", "update"):
        timed(constraint.Constraint, name, "constraint")
    timed(sampler, "pick", "pick")
    timed(txl_step.Stepper, "step", "model")
    t = time.perf_counter()
    (ids,) = G.sample_tokens(m, tokens=tokens, seed=0, **kw)
    spent["all"] = time.perf_counter() - t
    out["us_per_token"] = {k: 1e6 * v / len(ids) for k, v in spent.items()}
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
    parts = {name: {k: float(np.median([r["us_per_token"][k] for r in rows])) for k in rows[0]["us_per_token"]}
             for name, rows in results.items() if "us_per_token" in rows[0]}
    if len(parts) == 2:
        (ra, pa), (rv, pv) = parts.items()
        print("\nInside one decoding (wall µs per token, median over the runs): the constraint's own code "
              "(mask + adjust + update) beside the model step and sampling:")
        print("| arm | constraint | sampling (pick) | model step | whole step |")
        print("|---|---|---|---|---|")
        for name, p in parts.items():
            print(f"| {name} | {p['constraint']:.1f} | {p['pick']:.1f} | {p['model']:.1f} | {p['all']:.1f} |")
        extra = pa["constraint"] - pv["constraint"]
        print(f"\nThe rules' own cost: {extra:.1f} µs per token = {100 * extra / pv['all']:.1f} % of a "
              f"validity-only step ({pv['all']:.1f} µs)")


if __name__ == "__main__":
    main()
