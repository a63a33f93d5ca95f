"""Where does off-grid timing come from? The frame-grid share of the training data as the model sees it.

For NES-MDB train songs (TX1 ids from a prepared folder), the share of within-voice inter-onset
intervals that lie within 0.1 frame of a whole number of 60 Hz frames (735 samples), for the songs
as they are, and after each speed augmentation: LakhNES' ("free": every tick scaled by a factor in
[0.95, 1.05]) and lakhnes' default ("grid": whole frames scaled, offsets kept). The other
augmentations (voice swap, transposition, voice dropping) leave times alone and are off here.

Usage: python experiments/pulse_arms.py data/nesmdb [--songs 400] [--json results/pulse_arms.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from lakhnes.core import tx1
from lakhnes.core.score import VOICES
from lakhnes.data.augment import FRAME, AugmentConfig, augment_ids
from lakhnes.data.shards import load_split


def grid_share(ids_list) -> tuple[float, int]:
    """Share of within-voice IOIs (>= 1 frame) within 0.1 frame of a whole number of frames."""
    on, n = 0, 0
    for ids in ids_list:
        score = tx1.events_to_score(tx1.ids_to_events(ids))
        for v in VOICES:
            ioi = np.diff(score.notes[v]["start"]) / FRAME
            ioi = ioi[ioi >= 0.9]
            on += int((np.abs(ioi - np.round(ioi)) <= 0.1).sum())
            n += len(ioi)
    return on / max(n, 1), n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="prepared NES-MDB folder (lakhnes prepare nesmdb)")
    p.add_argument("--songs", type=int, default=400, help="train songs, evenly spaced (default 400)")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    split = load_split(a.data, "train")
    pick = np.linspace(0, len(split) - 1, min(a.songs, len(split))).astype(int)
    songs = [split.song(int(k)) for k in pick]
    off = dict(swap_voices=False, transpose=False, drop_voices=False)
    rows = {"as is": songs}
    for mode in ("free", "grid"):
        cfg = AugmentConfig(**off, speed=True, speed_mode=mode)
        rows[f"speed {mode}"] = [augment_ids(s, np.random.default_rng([7, k]), cfg) for k, s in enumerate(songs)]
    out = {"command": " ".join(["python", "experiments/pulse_arms.py", *(argv or sys.argv[1:])]),
           "date": time.strftime("%Y-%m-%d"), "songs": len(songs), "frame_grid_share": {}}
    print(f"{'training data':<16} {'on grid':>8} {'IOIs':>9}")
    for name, ids in rows.items():
        share, n = grid_share(ids)
        out["frame_grid_share"][name] = round(share, 4)
        print(f"{name:<16} {share:8.3f} {n:9d}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
