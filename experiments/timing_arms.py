"""Quick timing arms: N songs of 30 s from the shipped model with the sampling changed as a JSON object
says (keys of ``sample_tokens``: temperature, top_k, wait_temperature; ``no_cache``: song cache off,
so the network alone; ``no_rhythm_cache``; ``rhythm_boost``; ``voice``: a mu table file; ``class_temp``:
:mod:`class_calibrated` sampling; ``opening`` and ``opening_waits``: :mod:`opening`), and per song the noise voice's note-ons a second, the distinct
inter-onset intervals (whole 60 Hz frames, the 4 voices pooled) and the melodic notes a second.

    python experiments/timing_arms.py '{"temperature": 1.0, "top_k": null}' 12
    python experiments/timing_arms.py real 0      # the NES-MDB test songs of at least 20 s
"""

from __future__ import annotations

import json
import sys

import numpy as np

from lakhnes.core import vocab as V

FRAME, RATE = 735, 44100


def measures(ids, limit_s: float = 30.0) -> tuple[float, int, float, float]:
    """(noise note-ons a second, distinct IOIs in frames, melodic note-ons a second, share of IOIs within
    0.1 frame of a whole number of frames) of the first ``limit_s`` seconds of a token sequence."""
    t, onsets = 0, {v: [] for v in range(4)}
    for i in ids:
        if V.IS_WAIT[i]:
            t += int(V.WAIT_OF[i])
        elif t > limit_s * RATE:
            break
        elif V.IS_NOTEON[i]:
            onsets[int(V.VOICE_OF[i])].append(t)
    secs = min(t, limit_s * RATE) / RATE
    iois: set[int] = set()
    for times in onsets.values():
        d = np.diff(times) / FRAME
        iois |= set(np.round(d[d > 0.5]).astype(int).tolist())
    d = np.concatenate([np.diff(times) for times in onsets.values()]) / FRAME
    grid = float(((np.abs(d - np.round(d)) <= 0.1) & (np.round(d) >= 1)).mean()) if len(d) else 0.0
    return len(onsets[3]) / secs, len(iois), sum(len(onsets[v]) for v in (0, 1, 2)) / secs, grid


def main() -> None:
    if sys.argv[1] == "real":
        from lakhnes.data.shards import load_split

        split = load_split("data/nesmdb", "test")
        songs = [s for s in np.split(np.asarray(split.tokens), np.asarray(split.offsets)[1:-1])
                 if V.WAIT_OF[s].sum() >= 20 * RATE]
        rows = [measures(s.tolist()) for s in songs]
    else:
        from lakhnes.decoding.sampler import WAIT_TEMPERATURE
        from lakhnes.generate import load_default_model, sample_tokens

        arm, n = json.loads(sys.argv[1]), int(sys.argv[2])
        if "class_temp" in arm:
            from class_calibrated import install

            install(arm.pop("class_temp"))
        if "opening" in arm:
            import opening

            opening.install(arm.pop("opening"), arm.pop("opening_waits", None), arm.pop("opening_top_k", None))
        model = load_default_model(runtime="numpy")
        if arm.pop("no_cache", False):
            model.song_cache = None
        if arm.pop("no_rhythm_cache", False):
            model.rhythm_cache = None
        if "rhythm_boost" in arm:
            model.rhythm_boost = arm.pop("rhythm_boost")
        if "voice" in arm:
            model.voice_cache = np.array(json.load(open(arm.pop("voice"))))
        if "rhythm" in arm:
            model.rhythm_cache = np.load(arm.pop("rhythm"))
        kw = {"temperature": 0.95, "top_k": 32, "wait_temperature": WAIT_TEMPERATURE, **arm}
        rows = [measures(list(ids)) for first in range(0, n, 4)
                for ids in sample_tokens(model, seconds=30, seed=first, num=4, **kw)]
    r = np.array(rows)
    print(f"{sys.argv[1]}: noise/s median {np.median(r[:, 0]):.2f} mean {r[:, 0].mean():.2f} (songs at >= 20: "
          f"{(r[:, 0] >= 20).mean():.2f}) | distinct IOIs median {np.median(r[:, 1]):.1f} mean {r[:, 1].mean():.1f} | "
          f"melodic notes/s {np.median(r[:, 2]):.2f} | frame grid {r[:, 3].mean():.3f} ({len(r)} songs)", flush=True)


if __name__ == "__main__":
    main()
