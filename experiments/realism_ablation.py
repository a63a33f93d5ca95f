"""Which feature families give generated songs away: the realism benchmark's classifier two-sample
test (generated vs real NES-MDB test songs of at least 20 s, both cropped to 30 s) on all features,
with each family dropped, and on each family alone.

    python experiments/realism_ablation.py SONGS_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_realism as B  # noqa: E402

FAMILIES = {
    "timing (IOI histogram, grid, distinct IOIs, top-3)": lambda n: n.startswith("ioi")
    or n in ("grid_share", "distinct_iois", "top3_ioi"),
    "pitch (count, range, pitch classes, scale)": lambda n: n in ("pitch_count", "pitch_range", "pc_entropy",
                                                                  "scale_share") or n.startswith("pc_tonic"),
    "intervals": lambda n: n.startswith("interval"),
    "note lengths": lambda n: n.startswith("note_len"),
    "voices (density, occupancy, noise, triangle)": lambda n: n.startswith(
        ("density", "occupancy", "voices_", "noise_", "tri_")),
    "standing still, buzz, cycling": lambda n: n in ("still_max_s", "buzz_per_s", "cycle_max_s", "cycle_share"),
    "repetition": lambda n: n.startswith("rep"),
    "re-attacks": lambda n: n.startswith("reattack"),
}


def main() -> None:
    sk = B.Skips()
    real = [B.crop(s, 30.0) for s in B.read_real(B.DEFAULT_REAL, "test", sk, "real") if B.song_seconds(s) >= 20]
    gen = [B.crop(s, 30.0) for s in B.load_folder(Path(sys.argv[1]), sk)]
    Xr, names = B.feature_matrix([B.song_features(x, None) for x in real])
    Xg, _ = B.feature_matrix([B.song_features(x, None) for x in gen])

    def acc(cols):
        return B.two_sample_test(Xr[:, cols], Xg[:, cols], [names[c] for c in cols], seed=0, repeats=10)["accuracy"]

    every = list(range(len(names)))
    print(f"all features: {acc(every):.3f} ({len(gen)} generated, {len(real)} real songs)")
    for family, inside in FAMILIES.items():
        cols = [i for i, n in enumerate(names) if inside(n)]
        print(f"{family:55s} dropped {acc([c for c in every if c not in cols]):.3f}   alone {acc(cols):.3f}")


if __name__ == "__main__":
    main()
