"""Floods: songs whose four voices together strike more than 60 notes a second, and when the flood
starts (the first 2-s window with more than 120 onsets). Real NES-MDB songs: 2.5 % of the test split's
songs of 20 s or more (first 30 s), 2.3 % of train's.

Usage: python experiments/floods.py DIR [DIR ...]   (folders of .mid / .tx1.txt songs, searched recursively)
       python experiments/floods.py --data data/nesmdb --split test   (real songs of 20 s or more, first 30 s)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lakhnes.core import tx1
from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore
from lakhnes.data.shards import load_split
from lakhnes.evaluation.stats import load_score

RATE = 60  # notes per second, all voices together
WINDOW = 2.0  # seconds


def flood_start(score) -> float | None:
    """When a flood starts (s), or None when the song is not one."""
    onsets = np.sort(np.concatenate([score.notes[v]["start"] for v in VOICES])) / SAMPLE_RATE
    if len(onsets) <= RATE * score.end / SAMPLE_RATE:
        return None
    in_window = np.searchsorted(onsets, onsets + WINDOW) - np.arange(len(onsets))
    dense = in_window > RATE * WINDOW
    return float(onsets[np.argmax(dense)]) if dense.any() else float(onsets[0])


def real_songs(data: str, split: str, min_s: float = 20.0, crop_s: float = 30.0):
    """A prepared split's songs of at least ``min_s`` seconds, cut to their first ``crop_s``."""
    for ids in load_split(data, split).songs():
        score = tx1.events_to_score(tx1.ids_to_events(np.asarray(ids)))
        if score.end < min_s * SAMPLE_RATE:
            continue
        cut = int(crop_s * SAMPLE_RATE)
        notes = {v: score.notes[v][score.notes[v]["start"] < cut] for v in VOICES}
        yield NesScore(notes=notes, end=min(score.end, cut), name=score.name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="*")
    p.add_argument("--data", help="a prepared NES-MDB folder: count its real songs instead")
    p.add_argument("--split", default="test")
    a = p.parse_args(argv)
    if a.data:
        starts = [flood_start(s) for s in real_songs(a.data, a.split)]
        n = sum(s is not None for s in starts)
        print(f"{a.data} {a.split}: {len(starts)} songs of 20 s or more, {n} floods in their first 30 s ({n / len(starts):.1%})")
    for d in a.dirs:
        files = sorted(f for f in Path(d).rglob("*") if f.name.endswith((".mid", ".tx1.txt")))
        starts = [s for s in (flood_start(load_score(f)) for f in files) if s is not None]
        print(f"{d}: {len(files)} songs, {len(starts)} floods; they start at (s): {sorted(round(s, 1) for s in starts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
