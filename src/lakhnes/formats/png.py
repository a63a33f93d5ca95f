"""Piano rolls of NES scores: four lanes (P1, P2, TR, NO), time in seconds, pitch names.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display needed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from lakhnes.core.score import PITCH_RANGE, SAMPLE_RATE, VOICES, NesScore

#: One colour per voice.
COLORS = {"P1": "#d1495b", "P2": "#e8a33d", "TR": "#00798c", "NO": "#5b5f97"}
LABELS = {"P1": "Pulse 1", "P2": "Pulse 2", "TR": "Triangle", "NO": "Noise"}
NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def pitch_name(p: int) -> str:
    """MIDI pitch as a note name, middle C = C4 (60)."""
    return f"{NAMES[p % 12]}{p // 12 - 1}"


def _lane_range(voice: str, pitches: np.ndarray) -> tuple[int, int]:
    if voice == "NO":
        return PITCH_RANGE["NO"]
    if not len(pitches):
        return (48, 72) if voice == "TR" else (60, 84)
    lo, hi = int(pitches.min()) - 2, int(pitches.max()) + 2
    if hi - lo < 12:
        mid = (lo + hi) // 2
        lo, hi = mid - 6, mid + 6
    return lo, hi


def _pitch_ticks(lo: int, hi: int) -> tuple[list[int], list[str]]:
    span = hi - lo
    step = 12 if span > 30 else 6 if span > 14 else 2
    ticks = [p for p in range(lo, hi + 1) if p % step == 0]
    return ticks, [pitch_name(p) if p % 12 == 0 else NAMES[p % 12] + str(p // 12 - 1) for p in ticks]


def piano_roll(
    score: NesScore,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    highlight: tuple[float, float] | Iterable[str] | None = None,
):
    """Draw the score as a four-lane piano roll and return the matplotlib ``Figure``.

    Note opacity follows the note's volume (velocity). ``highlight`` shades either a time span
    ``(start_s, end_s)`` (e.g. the prime of a continuation) or the named voices (e.g. the
    voices kept from the source in an accompaniment). With ``path`` the figure is also saved
    as PNG (atomically).
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    end_s = max(score.end, max((int(n["end"].max()) for n in score.notes.values() if len(n)), default=0))
    end_s = max(end_s / SAMPLE_RATE, 1e-3)
    span = voices_hl = None
    if highlight is not None:
        hl = list(highlight)
        if len(hl) == 2 and all(isinstance(x, (int, float, np.number)) for x in hl):
            span = (float(hl[0]), float(hl[1]))
        else:
            voices_hl = {str(v).upper() for v in hl}
            bad = voices_hl - set(VOICES)
            if bad:
                from lakhnes.errors import InvalidInputError

                raise InvalidInputError(f"cannot highlight {sorted(bad)}: voices are {', '.join(VOICES)}")

    width = float(np.clip(6 + end_s * 0.12, 10, 24))
    fig = Figure(figsize=(width, 7.5), dpi=110, layout="constrained")
    axes = fig.subplots(4, 1, sharex=True, height_ratios=[1.2, 1.2, 1.2, 0.7])
    for ax, v in zip(axes, VOICES, strict=True):
        n = score.notes[v]
        lo, hi = _lane_range(v, n["pitch"])
        ax.set_ylim(lo - 0.5, hi + 0.5)
        ax.set_facecolor("#fbfbfb")
        if voices_hl and v in voices_hl:
            ax.set_facecolor("#fff4d6")
        if span:
            ax.axvspan(span[0], span[1], color="#ffe9a8", alpha=0.6, lw=0, zorder=0)
        if len(n):
            t0, t1 = n["start"] / SAMPLE_RATE, n["end"] / SAMPLE_RATE
            p = n["pitch"].astype(np.float64)
            h = 0.42
            verts = np.stack(
                [np.stack([t0, p - h], 1), np.stack([t1, p - h], 1), np.stack([t1, p + h], 1), np.stack([t0, p + h], 1)],
                axis=1,
            )
            rgba = np.tile(to_rgba(COLORS[v]), (len(n), 1))
            if v != "TR":
                rgba[:, 3] = 0.3 + 0.7 * np.clip(n["velocity"], 0, 15) / 15
            ax.add_collection(PolyCollection(verts, facecolors=rgba, edgecolors="none", zorder=2))
        else:
            ax.text(0.5, 0.5, "(silent)", transform=ax.transAxes, ha="center", va="center", color="#999999")
        if v == "NO":
            ax.set_yticks([1, 4, 8, 12, 16])
            ax.set_ylabel("Noise\n(1-16)", color=COLORS[v], fontweight="bold")
        else:
            ticks, names = _pitch_ticks(lo, hi)
            ax.set_yticks(ticks, names)
            ax.set_ylabel(LABELS[v], color=COLORS[v], fontweight="bold")
            for p in range(lo, hi + 1):
                if p % 12 == 0:
                    ax.axhline(p - 0.5, color="#dddddd", lw=0.6, zorder=1)
        ax.grid(axis="x", color="#e6e6e6", lw=0.6, zorder=1)
        ax.tick_params(labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[-1].set_xlim(0, end_s)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    if path is not None:
        from lakhnes.io import atomic_path

        with atomic_path(path) as tmp:
            fig.savefig(str(tmp), format="png")
    return fig
