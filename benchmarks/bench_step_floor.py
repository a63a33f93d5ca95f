"""Batch-1 decoding step against the float32 memory floor, one thread, in one process.

    python benchmarks/bench_step_floor.py [--model default] [--mems 512,896] [--steps 300] [--no-torch] [--isa avx512,avx2]
    python benchmarks/bench_step_floor.py --check 2000 [--mems 512,896]

``--check N``: equivalence instead of speed: the first N tokens of the fixture song through torch (a
prime of 300 tokens fed in tgt_len chunks, then ``CachedSteps``) and through the numpy runtime (both
caches, and the compiled kernel where it runs the model): the largest absolute logit difference over all
N - 299 positions, per memory length.

For each memory length M it prints, in ms (best and median of ``--steps``):
- ``floor``: the time numpy needs to read the model's float32 weights plus M tokens' keys and values
  (2 x d_model floats per token and layer) once: a BLAS vector-matrix product over every array (and,
  for comparison, ``.sum()``), the faster of the two per pass; best and median of ``--steps`` passes;
- ``numpy hidden``: :class:`lakhnes.models.txl_numpy.NumpySteps` (cache="hidden", the default: each
  layer caches its M inputs, d_model floats per token, and one sinusoid table serves every layer);
- ``numpy kv``: the same runtime with cache="kv" (a port of ``CachedSteps``: keys, values and position
  projections cached per layer);
- ``kernel``: :class:`lakhnes.models.txl_kernel.KernelSteps`, the compiled step (float16 weight panels
  widened in registers, each layer's M inputs cached as float32, one sinusoid table for every layer),
  with the MiB it reads per step (weights + inputs + the table once per layer) and its instruction set;
- ``torch CachedSteps``: :class:`lakhnes.models.txl_step.CachedSteps` (skipped without torch);
- ``f16 -> f32 widening``: what numpy takes just to widen float16 weights to float32 (``np.copyto``),
  the cost a half-precision-weights variant would pay before reading anything.
Every step runs after a full memory of M real tokens (the NES-MDB fixture song, repeated), so each
attends over M + 1 positions. Threads: OMP/OPENBLAS/MKL set to 1 before numpy is imported (torch:
``set_num_threads(1)``). The dev machine is shared: compare rows of one run, not across runs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from lakhnes.models import txl_kernel  # noqa: E402
from lakhnes.models.files import load_numpy_state  # noqa: E402
from lakhnes.models.txl_numpy import NumpySteps, NumpyTXL  # noqa: E402

SONG = Path(__file__).resolve().parent.parent / "tests/fixtures/nesmdb/079_DoubleDragonIII_TheSacredStones_13_14GiulianosThemeBoss4.mid"


def song_tokens(n: int) -> np.ndarray:
    from lakhnes.core import tx1
    from lakhnes.formats.midi import read_midi

    ids = tx1.song_ids(tx1.score_to_events(read_midi(SONG))).astype(np.int64)
    return np.resize(ids, n)


def timings(fn, n: int, warm: int = 10) -> tuple[float, float]:
    """Best and median ms of ``n`` calls of ``fn`` (after ``warm`` untimed ones)."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * min(ts), 1e3 * float(np.median(ts))


def floor(weights: list[np.ndarray], kv: list[np.ndarray], n: int) -> tuple[float, float, int]:
    arrays = [a.reshape(a.shape[0], -1) if a.ndim > 1 else a[None] for a in [*weights, *kv]]
    ones = [np.ones(a.shape[0], np.float32) for a in arrays]

    def gemv():
        for x, a in zip(ones, arrays, strict=True):
            x @ a

    def sums():
        for a in arrays:
            a.sum()

    g, s = timings(gemv, n), timings(sums, n)
    return min(g[0], s[0]), min(g[1], s[1]), sum(a.nbytes for a in arrays)


def check(model: str, mems, n: int, n_prime: int = 300) -> None:
    import torch

    from lakhnes.models import load_model
    from lakhnes.models.txl_numpy import prime
    from lakhnes.models.txl_step import CachedSteps

    torch.set_num_threads(1)
    ids = song_tokens(n)
    print("| M | tokens | cache | max abs logit difference (numpy - torch) |\n|---|---|---|---|")
    for mem in mems:
        tm = load_model(model)
        tm.config.mem_len = mem
        x = torch.as_tensor(ids)[None]
        with torch.inference_mode():
            state = tm.init_state(1)
            for a in range(0, n_prime, tm.config.tgt_len):
                out, state = tm(x[:, a : min(n_prime, a + tm.config.tgt_len)], state)
            steps = CachedSteps(tm, state)
            ref = np.stack([out[0, -1].numpy()] + [steps.step(x[:, t])[0].numpy() for t in range(n_prime, n)])
        nm = NumpyTXL.load(model, mem_len=mem)
        for cache in ("kv", "hidden", "kernel"):
            if cache == "kernel" and not txl_kernel.usable(nm):
                continue
            first, st = prime(nm, ids[None, :n_prime], cache=cache)
            got = np.stack([first[0]] + [st.step(ids[None, t])[0] for t in range(n_prime, n)])
            print(f"| {mem} | {n} | {cache} | {np.abs(got - ref).max():.2e} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--mems", default="512,896")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--isa", default="", help="kernel instruction sets to time, e.g. avx512,avx2 (default: the best)")
    ap.add_argument("--check", type=int, default=0, help="equivalence with torch over this many tokens")
    a = ap.parse_args()
    if a.check:
        return check(a.model, list(map(int, a.mems.split(","))), a.check)
    _, state = load_numpy_state(a.model)
    weights = list(state.values())
    wbytes = sum(w.nbytes for w in weights)
    print(f"numpy {np.__version__}, 1 thread, load avg {os.getloadavg()[0]:.1f}, model {a.model}: "
          f"{sum(w.size for w in weights) / 1e6:.2f} M parameters, {wbytes / 2**20:.1f} MiB float32")
    w16 = [w.astype(np.float16) for w in weights]
    buf = [np.empty_like(w) for w in weights]

    def widen():
        for d, s in zip(buf, w16, strict=True):
            np.copyto(d, s)

    wb, wm = timings(widen, max(5, a.steps // 10), warm=2)
    print(f"f16 -> f32 widening of all weights (np.copyto): best {wb:.3f} ms, median {wm:.3f} ms")
    print("| M | variant | MiB read (float32 floor) | best ms | median ms |")
    print("|---|---|---|---|---|")
    torch = None
    if not a.no_torch:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            torch = None
    for mem in map(int, a.mems.split(",")):
        nm = NumpyTXL.load(a.model, mem_len=mem)
        c = nm.config
        ids = song_tokens(mem + 1)
        _, st = nm.feed(ids[None, :mem])
        kv = [np.zeros((mem, c.d_model), np.float32) + i for i in range(2 * c.n_layer)]
        fb, fm, nbytes = floor(weights, kv, a.steps)
        print(f"| {mem} | float32 floor (weights + keys/values) | {nbytes / 2**20:.1f} | {fb:.3f} | {fm:.3f} |",
              flush=True)
        for mode in ("hidden", "kv"):
            steps = NumpySteps(nm, st, cache=mode)
            tok = ids[None, mem:]
            steps.step(tok)
            b, m = timings(lambda s=steps, t=tok: s.step(t), a.steps)  # the memory stays full: M + 1 positions
            print(f"| {mem} | numpy {mode} | | {b:.3f} | {m:.3f} |", flush=True)
        if txl_kernel.usable(nm):
            best = txl_kernel.isa()
            for isa in (a.isa.split(",") if a.isa else [best]):
                txl_kernel.isa(isa)
                steps = txl_kernel.KernelSteps(nm, st)
                tok = ids[None, mem:]
                steps.step(tok)
                b, m = timings(lambda s=steps, t=tok: s.step(t), a.steps)
                f16 = sum(w.size for k, w in nm.w.items() if w.ndim == 2 and k not in ("u", "v")) * 2
                read = f16 + sum(w.nbytes for k, w in nm.w.items() if w.ndim < 2 or k in ("u", "v"))
                read += 2 * c.n_layer * (mem + 1) * c.d_model * 4  # each layer: its inputs, the sinusoid table
                print(f"| {mem} | kernel ({isa}) | {read / 2**20:.1f} | {b:.3f} | {m:.3f} |", flush=True)
            txl_kernel.isa(best)
        else:
            print(f"| {mem} | kernel: not run (available: {txl_kernel.available()}) | | | |", flush=True)
        if torch is not None:
            from lakhnes.models import load_model
            from lakhnes.models.txl_step import CachedSteps

            tm = load_model(a.model)
            tm.config.mem_len = mem
            with torch.inference_mode():
                x = torch.as_tensor(ids)[None]
                state = tm.init_state(1)
                for s0 in range(0, mem, c.tgt_len):
                    _, state = tm(x[:, s0 : min(mem, s0 + c.tgt_len)], state)
                cs = CachedSteps(tm, state)
                t1 = x[:, mem]
                b, m = timings(lambda s=cs, t=t1: s.step(t), a.steps)
            print(f"| {mem} | torch CachedSteps | | {b:.3f} | {m:.3f} |", flush=True)


if __name__ == "__main__":
    main()
