"""LakhNES augmentations: always valid TX1, each one does what it says, seeded."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lakhnes.core import tx1
from lakhnes.core import vocab as V
from lakhnes.core.score import PITCH_RANGE, VOICES
from lakhnes.data.augment import AugmentConfig, augment_ids
from lakhnes.formats.midi import read_midi

OFF = dict(swap_voices=False, transpose=False, speed=False, drop_voices=False)


@pytest.fixture(scope="module")
def songs(nesmdb_fixture_files):
    out = [tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files]
    return [s for s in out if len(s) > 2]


def notes_of(ids):
    return tx1.events_to_score(tx1.ids_to_events(ids)).notes


def test_random_augmentations_stay_valid_tx1(songs):
    rng = np.random.default_rng(0)
    random_songs = []
    for _ in range(6):  # random but valid songs: random notes per voice, random gaps
        events = []
        for _ in range(rng.integers(20, 80)):
            v = VOICES[rng.integers(4)]
            events.append(int(V.noteon_id(v, rng.integers(*PITCH_RANGE[v]))))
            events.append(-int(rng.integers(1, 3000)))
        random_songs.append(tx1.song_ids(np.array(events)))
    for song in songs + random_songs:
        for seed in range(12):
            out = augment_ids(song, np.random.default_rng(seed))
            assert out.dtype == np.uint16 and out[0] == V.START and out[-1] == V.START
            tx1.check_ids(out)
            tx1.events_to_score(tx1.ids_to_events(out)).check()


def test_identity_settings_round_trip_exactly(songs):
    same = AugmentConfig(transpose_range=(0, 0), speed_range=(1.0, 1.0), p_swap=0.0, p_drop=0.0)
    for s in songs:
        assert np.array_equal(augment_ids(s, np.random.default_rng(1), same), s)
        assert np.array_equal(augment_ids(s, np.random.default_rng(1), AugmentConfig(**OFF)), s)


def test_voice_swap_moves_parts_only_when_asked(songs):
    s = songs[1]  # all four voices, each with its own part
    before = notes_of(s)
    swap = dict(OFF, swap_voices=True)
    moved = 0
    for seed in range(8):
        out = notes_of(augment_ids(s, np.random.default_rng(seed), AugmentConfig(**swap, p_swap=1.0)))
        moved += not np.array_equal(out["P1"], before["P1"])
        assert np.array_equal(out["NO"], before["NO"])
        kept = notes_of(augment_ids(s, np.random.default_rng(seed), AugmentConfig(**swap, p_swap=0.0)))
        assert all(np.array_equal(kept[v], before[v]) for v in VOICES)
    assert moved >= 4  # 2 of the 3! orders keep P1 on P1


def test_seeded_and_varied(songs):
    s = songs[1]
    a = augment_ids(s, np.random.default_rng(7))
    b = augment_ids(s, np.random.default_rng(7))
    assert np.array_equal(a, b)
    outs = {augment_ids(s, np.random.default_rng(k)).tobytes() for k in range(8)}
    assert len(outs) > 4


def test_transpose_shifts_melodic_voices_only(songs):
    s = songs[1]  # Double Dragon III: all four voices
    before = notes_of(s)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        shift = int(np.random.default_rng(seed).integers(-6, 6))
        out = notes_of(augment_ids(s, rng, AugmentConfig(**{**OFF, "transpose": True})))
        assert np.array_equal(out["NO"], before["NO"])
        for v in ("P1", "P2", "TR"):
            lo, hi = PITCH_RANGE[v]
            p = before[v]["pitch"].astype(int) + shift
            kept = before[v][(p >= lo) & (p <= hi)]
            assert np.array_equal(out[v]["start"], kept["start"])
            assert np.array_equal(out[v]["pitch"], kept["pitch"] + shift)


def test_speed_rescales_time(songs):
    s = songs[1]
    dur = tx1.ids_to_events(s)
    total = -dur[dur < 0].sum()
    factors, ratios = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        factors.append(np.random.default_rng(seed).uniform(0.95, 1.05))
        out = tx1.ids_to_events(augment_ids(s, rng, AugmentConfig(**{**OFF, "speed": True})))
        ratios.append(-out[out < 0].sum() / total)
        assert set(out[out < 0].tolist()) <= set((-V.WAITS).tolist())  # re-quantised
    # each wait snaps to the vocabulary on its own, so the length is off by up to ~1-2 %
    assert np.allclose(ratios, factors, atol=0.02)
    assert np.array_equal(np.argsort(ratios), np.argsort(factors))


def test_voice_subset_and_swap(songs):
    s = songs[1]
    before = notes_of(s)
    kept_sets = set()
    for seed in range(20):
        out = notes_of(augment_ids(s, np.random.default_rng(seed), AugmentConfig(**{**OFF, "drop_voices": True})))
        playing = frozenset(v for v in VOICES if len(out[v]))
        assert playing
        t0 = min(int(before[v]["start"][0]) for v in playing)  # leading silence is trimmed
        for v in playing:
            assert np.array_equal(out[v]["pitch"], before[v]["pitch"])
            # merged waits snap to the vocabulary again: onsets move by a little
            assert np.allclose(out[v]["start"], before[v]["start"] - t0, atol=0.01 * before[v]["end"][-1])
        kept_sets.add(playing)
    assert frozenset(VOICES) in kept_sets and len(kept_sets) >= 4  # p = 0.5 of keeping all, varied subsets
    swapped = 0
    for seed in range(12):
        out = notes_of(augment_ids(s, np.random.default_rng(seed), AugmentConfig(**{**OFF, "swap_voices": True})))
        assert np.array_equal(out["NO"], before["NO"])
        starts = {v: out[v]["start"].tobytes() for v in ("P1", "P2", "TR")}
        if starts["P1"] != before["P1"]["start"].tobytes():
            swapped += 1
        for v in ("P1", "P2", "TR"):  # every part now comes from some melodic voice (out-of-range notes dropped)
            lo, hi = PITCH_RANGE[v]
            assert np.all((out[v]["pitch"] >= lo) & (out[v]["pitch"] <= hi))
    assert swapped >= 2


def test_core_modules_do_not_import_torch():
    code = "import sys, lakhnes.data.augment, lakhnes.data.streams; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_grid_speed_keeps_onsets_on_the_frame_grid():
    from lakhnes.core.score import NesScore, make_notes
    from lakhnes.data.augment import FRAME, augment_score, scale_times

    t = np.array([0, FRAME, 7 * FRAME, 7 * FRAME + 50, 300 * FRAME])
    for factor in (0.95, 0.987, 1.03, 1.05):
        g = scale_times(t, factor, "grid")
        assert np.all(g[[0, 1, 2, 4]] % FRAME == 0)  # on-grid times stay on the grid
        assert g[3] - g[2] == 50  # an off-grid time keeps its offset
        assert abs(g[4] - 300 * FRAME * factor) <= FRAME / 2  # the tempo still changes
    assert np.any(scale_times(t, 1.03, "free") % FRAME)  # LakhNES' speed-up leaves the grid
    starts = np.arange(40) * 8 * FRAME
    notes = {v: make_notes([], [], []) for v in VOICES} | {"P1": make_notes(starts, starts + 4 * FRAME, 60)}
    score = NesScore(notes=notes, end=int(starts[-1] + 8 * FRAME))
    cfg = AugmentConfig(**{**OFF, "speed": True})
    for seed in range(5):
        out = augment_score(score, np.random.default_rng(seed), cfg).notes["P1"]
        assert len(out) == 40 and np.all(out["start"] % FRAME == 0) and np.all(out["end"] % FRAME == 0)
    cfg = AugmentConfig(**{**OFF, "speed": True, "speed_mode": "off"})
    assert np.array_equal(augment_score(score, np.random.default_rng(0), cfg).notes["P1"], score.notes["P1"])
