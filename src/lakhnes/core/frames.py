"""Whole NES video frames back from TX1 waits.

NES sound drivers update the APU once a video frame (60.0988 Hz on NTSC machines: 733.8 samples at
44100 Hz), so the note times of NES music sit on that grid. The TX1 vocabulary rounds every wait to
one of its 370 values and moves them off it, by up to half a frame: 2 frames (1468 samples) are
written ``WT_1500``, 16 frames (11741) ``WT_12000``, 24 frames (17611) ``WT_18000``.

:func:`on_frames` undoes the rounding where a whole number of frames explains a wait: a wait that
some whole number of frames rounds to becomes that number of frames (the nearest one when two do);
any other wait is kept as written. Long waits, which TX1 writes as ``WT_100000`` tokens and a
rest, are treated as one. The TX1 text of the events is unchanged (each frame length rounds to the
wait it replaces). Music off the frame grid keeps most of its waits; songs sampled as TX1 tokens get
the timing of the music the tokens were learned from.
"""

from __future__ import annotations

import numpy as np

from lakhnes.core.vocab import MAX_WAIT, WAITS, snap_wait

#: samples (44.1 kHz) in one NTSC video frame: 29780.5 CPU cycles of the 1.7897725 MHz clock
FRAME = 44100 * 29780.5 / 1789772.5


def frame_table(frame: float = FRAME) -> np.ndarray:
    """For each vocabulary wait, the whole-frame length nearest to it that rounds to it (else 0)."""
    length = np.round(np.arange(1, int(MAX_WAIT / frame) + 1) * frame).astype(np.int64)
    table = np.zeros(len(WAITS), dtype=np.int64)
    for i, t in zip(snap_wait(length), length, strict=True):
        if not table[i] or abs(t - WAITS[i]) < abs(table[i] - WAITS[i]):
            table[i] = t
    return table


#: vocabulary wait index -> the whole-frame length it stands for (0: none rounds to it)
FRAME_OF = frame_table()
_ratio = (FRAME_OF - WAITS)[FRAME_OF > 0] / WAITS[FRAME_OF > 0]
#: the most any stretch of time shrinks (0.0216) or grows (0.0273) on frames, as a share of its length
SHRINK, STRETCH = float(-_ratio.min()), float(_ratio.max())


def frame_wait(total: int) -> int:
    """A wait of ``total`` samples as TX1 writes it (``WT_100000`` tokens and a rest) -> the whole
    number of frames that TX1 writes the same way, the nearest if two; ``total`` if none does."""
    q = max(total - 1, 0) // MAX_WAIT
    rest = total - q * MAX_WAIT
    i = int(snap_wait(rest))
    if int(WAITS[i]) != rest:  # not written by the vocabulary: leave it
        return total
    k = int(total / FRAME)
    lengths = [int(round(j * FRAME)) for j in range(k - 2, k + 3)]
    cands = [t for t in lengths if 1 <= t - q * MAX_WAIT <= MAX_WAIT and int(snap_wait(t - q * MAX_WAIT)) == i]
    return min(cands, key=lambda t: abs(t - total)) if cands else total


def on_frames(events) -> np.ndarray:
    """TX1 events (waits negative) with each wait moved onto whole frames where the vocabulary's
    rounding explains it (see the module docstring)."""
    ev = np.asarray(events, dtype=np.int64).copy()
    is_wait = ev < 0
    prev = np.concatenate([[False], is_wait[:-1]])
    nxt = np.concatenate([is_wait[1:], [False]])
    single = np.flatnonzero(is_wait & ~prev & ~nxt)
    w = -ev[single]
    idx = snap_wait(w)
    t = np.where(WAITS[idx] == w, FRAME_OF[idx], 0)
    ev[single] = np.where(t > 0, -t, ev[single])
    for a in np.flatnonzero(is_wait & ~prev & nxt):  # runs of waits: WT_100000 tokens and a rest
        b = a + 1
        while b < len(ev) and is_wait[b]:
            b += 1
        run = -ev[a:b]
        if (run[:-1] == MAX_WAIT).all():
            ev[b - 1] = -(frame_wait(int(run.sum())) - (b - a - 1) * MAX_WAIT)
    return ev
