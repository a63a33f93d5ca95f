"""A/B of the hot paths between a git revision and the working tree, passes alternated.

Times, in CPU seconds of a fresh single-threaded process (robust to other load on the machine):
- encode: NES-MDB MIDI -> TX1 ids for the fixture songs, 30 times (read_midi, score_to_events, events_to_ids);
- synth: render those songs to audio, 8 times;
- decode step: 300 one-token Transformer-XL steps of the shipped model with the key/value cache;
- train step: 6 optimizer steps of the ``small`` preset, batch 8 x 128 tokens (after 2 warm-up steps).
Each side imports its own source tree (PYTHONPATH); module paths are looked up in either layout.
Each path runs once untimed first (lazy imports and caches are not what is compared).

Usage: python benchmarks/ab_hot_paths.py REV [--passes 3] [--json results/ab_hot_paths.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = r'''
import importlib, json, sys, time
from pathlib import Path

def first(*names):
    for n in names:
        try:
            return importlib.import_module(n)
        except ModuleNotFoundError:
            pass
    raise ModuleNotFoundError(names)

midi = first("lakhnes.formats.midi", "lakhnes.score")
tx1 = first("lakhnes.core.tx1", "lakhnes.tx1")
files = sorted(Path(sys.argv[2]).rglob("*.mid"))
what = sys.argv[1]
if what == "encode":
    tx1.events_to_ids(tx1.score_to_events(midi.read_midi(files[0])))  # warm: lazy imports (symusic)
    t = time.process_time()
    for _ in range(30):
        for f in files:
            tx1.events_to_ids(tx1.score_to_events(midi.read_midi(f)))
elif what == "synth":
    from lakhnes.synth import render
    scores = [midi.read_midi(f) for f in files]
    render(scores[0])  # warm: lazy imports (scipy.signal) and caches
    t = time.process_time()
    for _ in range(8):
        for s in scores:
            render(s)
else:
    import torch
    torch.set_num_threads(1)
    models = first("lakhnes.models")
    if what == "decode":
        step_mod = first("lakhnes.models.txl_step", "lakhnes.txl_cache")
        m = models.load_model(models.default_model_path()).eval()
        with torch.no_grad():
            _, state = m(torch.zeros(1, 64, dtype=torch.long))
            c = step_mod.CachedSteps(m, state)
            x = torch.zeros(1, dtype=torch.long)
            for _ in range(20):
                c.step(x)
            t = time.process_time()
            for _ in range(300):
                c.step(x)
    else:
        m = models.build_model("transformer_xl", "small")
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 631, (8, 129), generator=g)
        def one(state):
            logits, state = m(x[:, :-1], state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
            opt.zero_grad(); loss.backward(); opt.step()
            return [s.detach() for s in state]
        state = None
        for _ in range(2):
            state = one(state)
        t = time.process_time()
        for _ in range(6):
            state = one(state)
print(json.dumps(time.process_time() - t))
'''

PATHS = ("encode", "synth", "decode", "train")


def run(src: Path, what: str, fixtures: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", SNIPPET, what, str(fixtures)], env=env, capture_output=True,
                         text=True, check=False, cwd=tempfile.gettempdir())
    if out.returncode:
        sys.exit(f"{what} on {src} failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="git revision to compare the working tree with")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--fixtures", default=str(ROOT / "tests" / "fixtures" / "nesmdb"), help="folder of NES-MDB MIDI")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), a.rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            sides = {"before": before / "src", "after": ROOT / "src"}
            times = {s: {w: [] for w in PATHS} for s in sides}
            for _ in range(a.passes):
                for w in PATHS:
                    for s, src in sides.items():
                        times[s][w].append(run(src, w, Path(a.fixtures)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    rev = subprocess.run(["git", "rev-parse", "--short", a.rev], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; before = {rev.strip()}, after = working tree; median CPU s of "
          f"{a.passes} alternated passes")
    print("| hot path | before (s) | after (s) | after / before |\n|---|---|---|---|")
    res = {}
    for w in PATHS:
        b, f = statistics.median(times["before"][w]), statistics.median(times["after"][w])
        res[w] = {"before": times["before"][w], "after": times["after"][w], "ratio": f / b}
        print(f"| {w} | {b:.3f} | {f:.3f} | {f / b:.3f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
                                            "rev": rev.strip(), "results": res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
