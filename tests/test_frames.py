"""Waits back on whole NES frames: what the TX1 rounding moved off the grid comes back, the text stays."""

import numpy as np

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.frames import FRAME, FRAME_OF, frame_wait, on_frames
from lakhnes.formats.midi import read_midi


def frames(k: int) -> int:
    return int(round(k * FRAME))


def test_each_frame_length_stands_behind_the_wait_it_rounds_to():
    assert abs(FRAME - 44100 / 60.0988) < 0.01
    for k in range(1, int(V.MAX_WAIT / FRAME) + 1):
        i = int(V.snap_wait(frames(k)))
        assert FRAME_OF[i] > 0 and int(V.snap_wait(FRAME_OF[i])) == i
    assert FRAME_OF[V.snap_wait(frames(16))] == 11741  # 16 frames: written WT_12000, read back as 16 frames
    assert FRAME_OF[list(V.WAITS).index(740)] == 0  # one frame (734) is written WT_730: WT_740 is never one
    assert FRAME_OF[list(V.WAITS).index(5500)] == 0  # 7.5 frames: no whole number of frames rounds to it


def test_on_frames_moves_only_waits_a_frame_explains():
    ev = np.array([V.noteon_id("P1", 60), -12000, V.noteon_id("P1", 62), -5500, -1500, V.START, -123457])
    out = on_frames(ev)
    assert out.tolist() == [ev[0], -frames(16), ev[2], -5500, -1500, V.START, -123457]
    assert ev[1] == -12000  # the input is not touched
    assert frame_wait(100_000 + 2000) == frames(139)  # 101997: written WT_100000 WT_2000
    assert frame_wait(100_000 + 2200) == 100_000 + 2200  # 139 and 140 frames are written with WT_2000, WT_2700
    assert frame_wait(100_000 + 12000) == frames(153)  # written 100000 + WT_12000; 152 frames also are, farther
    long = on_frames(np.array([V.noteon_id("TR", 40), -100_000, -12000, V.noteon_id("TR", 41)]))
    assert long.tolist()[1:3] == [-100_000, -(frames(153) - 100_000)]


def _grid_share(ev) -> tuple[int, int]:
    """Within-voice inter-onset intervals within 0.1 frame of a whole number of frames, and all of them."""
    t = np.cumsum(np.where(ev < 0, -ev, 0))
    code = np.clip(ev, 0, None)
    ioi = np.concatenate([np.diff(t[(ev >= 0) & V.IS_NOTEON[code] & (V.VOICE_OF[code] == k)]) for k in range(4)])
    f = ioi / FRAME
    return int(((np.abs(f - np.round(f)) <= 0.1) & (np.round(f) >= 1)).sum()), len(f)


def test_text_is_unchanged_and_real_timing_comes_back(nesmdb_fixture_files):
    count = np.zeros((3, 2))
    for f in nesmdb_fixture_files:
        real = tx1.score_to_events(read_midi(f))
        ids = tx1.events_to_ids(real)
        ev = tx1.ids_to_events(ids)
        framed = on_frames(ev)
        assert np.array_equal(tx1.events_to_ids(framed), ids)  # the same TX1 text
        count += [_grid_share(e) for e in (real, ev, framed)]
    real, through, back = count[:, 0] / count[:, 1]
    assert through < back <= real and back - through > 0.05, (real, through, back)
