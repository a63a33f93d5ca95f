"""Why the generated triangle plays like a lead: two checks on real NES-MDB songs.

1. ``swap``: real test songs (at least 20 s, first 30 s, through TX1) after the voice-swap augmentation alone
   at p = 0, 0.5 and 1 (seed 0): each voice's occupancy, the triangle's range and notes per second.
2. ``survival``: every train song's note and rest survival curves per voice (P1, P2, TR, NO), at the ages of
   ``lakhnes.decoding.measured.SURVIVAL_AGES``, against the pooled curves the ``Activity`` prior uses.

    python experiments/triangle_role.py swap [--real ../data/nesmdb_midi.tar.gz]
    python experiments/triangle_role.py survival [--real ...]     # reads the whole train split (minutes)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_realism as br  # noqa: E402
from frame_waits import as_song, real_scores, through  # noqa: E402

from lakhnes.core.score import SAMPLE_RATE, VOICES  # noqa: E402
from lakhnes.data.augment import AugmentConfig, augment_score  # noqa: E402
from lakhnes.decoding.measured import SURVIVAL_AGES  # noqa: E402

SWAP_KEYS = ("occupancy_p1", "occupancy_p2", "occupancy_tr", "tri_range", "density_tr", "density_p1")


def swap(real: str) -> None:
    scores = real_scores(real, "test", br.Skips())
    print("| voice swap p | " + " | ".join(SWAP_KEYS) + " |")
    print("|---|" + "---|" * len(SWAP_KEYS))
    for p in (0.0, 0.5, 1.0):
        rng = np.random.default_rng(0)
        cfg = AugmentConfig(swap_voices=p > 0, transpose=False, speed=False, drop_voices=False, p_swap=p)
        aug = [augment_score(s, rng, cfg) if p > 0 else s for s in scores]
        feats = [br.song_features(br.crop(as_song(through(s, False), s.name), 30))["scalars"] for s in aug]
        print(f"| {p:g} | " + " | ".join(f"{np.mean([f[k] for f in feats]):.3f}" for k in SWAP_KEYS) + " |")


def survival(real: str) -> None:
    from rule_bounds import songs  # every train song, as the pooled curves were measured

    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.midi import read_midi

    lengths = {kind: {v: [] for v in VOICES} for kind in ("note", "rest")}
    for name, data in songs(Path(real), "train"):
        try:
            s = read_midi(data, name=name)
        except InvalidInputError:
            continue
        for v in VOICES:
            n = s.notes[v]
            if len(n):
                gaps = n["start"][1:] - n["end"][:-1]
                lengths["note"][v].append((n["end"] - n["start"]) / SAMPLE_RATE)
                lengths["rest"][v].append(gaps[gaps > 0] / SAMPLE_RATE)
    print("ages (s):", list(SURVIVAL_AGES))
    for kind, per in lengths.items():
        for v, parts in per.items():
            x = np.concatenate(parts)
            surv = [round(float((x > a).mean()), 5) for a in SURVIVAL_AGES]
            print(f"{kind} {v} ({len(x)}, median {np.median(x):.3f} s): {surv}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("check", choices=("swap", "survival"))
    ap.add_argument("--real", default="data/nesmdb_midi.tar.gz", help="NES-MDB MIDI tarball or folder")
    a = ap.parse_args(argv)
    (swap if a.check == "swap" else survival)(a.real)


if __name__ == "__main__":
    main()
