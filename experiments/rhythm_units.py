"""Does a song keep one rhythmic unit? Inter-onset intervals (whole frames, all voices) per song: how many
distinct ones, the share that are whole multiples of the song's unit (the shortest of its three commonest
intervals), how many distinct odd intervals of 5 frames or more it plays, and each voice's distinct intervals.

Real NES-MDB songs (at least 20 s, first ``--seconds``) are measured through the TX1 vocabulary as the model
is trained on them: as they are, and after each speed augmentation (``lakhnes.data.augment``, speed only);
each folder of generated MIDI as written.

    python experiments/rhythm_units.py --real ../data/nesmdb_midi.tar.gz [FOLDER ...]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_realism as br  # noqa: E402
from frame_waits import as_song, real_scores, song_args, through  # noqa: E402

from lakhnes.data.augment import AugmentConfig, augment_score  # noqa: E402


def units(songs: list[br.Song]) -> dict:
    """Mean over songs (with at least 10 intervals) of the three measures, and of each voice's distinct
    intervals (0 for a silent voice)."""
    rows = []
    for s in songs:
        per = [np.round(np.diff(s.voice(v)[0]) / br.FRAME).astype(int) for v in br.VOICES]
        per = [x[x >= 1] for x in per]
        ioi = np.concatenate(per)
        if len(ioi) < 10:
            continue
        count = Counter(ioi.tolist())
        unit = min(k for k, _ in count.most_common(3))
        rows.append((len(count), float(np.mean(ioi % unit == 0)), sum(1 for k in count if k >= 5 and k % 2),
                     *(len(np.unique(x)) for x in per)))
    m = np.mean(rows, axis=0)
    return {"songs": len(rows), "distinct_iois": m[0], "multiple_of_unit": m[1], "odd_iois_5plus": m[2],
            "distinct_per_voice": dict(zip(br.VOICES, m[3:].tolist(), strict=True))}


def main(argv=None) -> None:
    ap = song_args(__doc__)
    ap.add_argument("--seed", type=int, default=0, help="seeds the speed factors")
    a = ap.parse_args(argv)
    skips = br.Skips()
    scores = real_scores(a.real, a.split, skips)
    speed_only = dict(swap_voices=False, transpose=False, drop_voices=False, speed=True)
    rows = {}
    for label, mode in (("as they are", None), ("speed augmentation, grid (whole frames scaled)", "grid"),
                        ("speed augmentation, free (every tick scaled, LakhNES)", "free")):
        rng = np.random.default_rng(a.seed)
        aug = [s if mode is None else augment_score(s, rng, AugmentConfig(**speed_only, speed_mode=mode))
               for s in scores]
        rows[f"real {a.split} songs through TX1, {label}"] = units(
            [br.crop(as_song(through(s, False), s.name), a.seconds) for s in aug])
    for folder in a.folders:
        rows[folder] = units([br.crop(s, a.seconds) for s in br.load_folder(Path(folder), skips)])
    print("| songs | n | distinct IOIs | multiple of the unit | distinct odd IOIs >= 5 frames | distinct IOIs per voice |")
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        per = " / ".join(f"{x:.1f}" for x in r["distinct_per_voice"].values())
        print(f"| {label} | {r['songs']} | {r['distinct_iois']:.1f} | {r['multiple_of_unit']:.3f} | "
              f"{r['odd_iois_5plus']:.1f} | {per} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
