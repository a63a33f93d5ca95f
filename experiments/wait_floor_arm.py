"""Arm: the wait temperature reshapes only the waits of at least FLOOR samples (the rhythm), leaving the
shorter ones (offsets between events of one moment, sub-millisecond notes) at the base temperature.

At waits 0.7 the model's likeliest wait, WT_1, takes over (35 % of one 30-s song's tokens, seed 3): songs
grow dense with 1-sample notes. This generates N songs with the shipped model at the default settings,
the reshaping limited to waits >= FLOOR, into a folder for ``benchmarks/bench_realism.py --songs DIR``.

    python experiments/wait_floor_arm.py --floor 44 --num 40 --out runs/wait_floor/f44
    python benchmarks/bench_realism.py --songs runs/wait_floor/f44 --json results/realism/arms/wait_floor_44.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lakhnes.core.vocab import IS_WAIT, WAIT_OF
from lakhnes.decoding import sampler as S


def rescale_long_waits(floor: int):
    def _rescale(x: np.ndarray, factor: float) -> np.ndarray:
        longw = IS_WAIT[: x.shape[-1]] & (WAIT_OF[: x.shape[-1]] >= floor)
        x = x - S._logsumexp(x)
        w = x[:, longw]
        mass = S._logsumexp(w)
        sharp = w * factor
        with np.errstate(invalid="ignore"):
            x[:, longw] = np.where(np.isfinite(mass), mass + sharp - S._logsumexp(sharp), -np.inf)
        return x

    return _rescale


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--floor", type=int, default=44)
    ap.add_argument("--num", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    S._rescale_waits = rescale_long_waits(a.floor)
    from lakhnes.formats.midi import write_midi
    from lakhnes.generate import load_default_model, sample

    model = load_default_model(runtime="numpy")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for first in range(0, a.num, 8):
        n = min(8, a.num - first)
        for k, song in enumerate(sample(model, seconds=a.seconds, seed=a.seed + first, num=n)):
            write_midi(song, out / f"song_{first + k + 1:03d}.mid")
        print(f"{first + n}/{a.num}", flush=True)


if __name__ == "__main__":
    main()
