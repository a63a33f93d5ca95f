"""The NES synthesizer: pitch, duty, noise LFSR, mixer, dynamics, continuity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lakhnes.core import tx1
from lakhnes.core.score import CTRL_DTYPE, NesScore, make_notes
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi
from lakhnes.synth import apu, channels, mixer, render, write_wav

SR = 44100


def one_note(voice: str, pitch: int, seconds: float = 1.0, velocity: int = 15, end: int | None = None) -> NesScore:
    n = int(seconds * SR)
    s = NesScore(end=end or n)
    s.notes[voice] = make_notes([0], [n], [pitch], velocity)
    return s


def peak_hz(audio: np.ndarray) -> float:
    a = audio.astype(np.float64) - audio.mean()
    pad = 16 * len(a)
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a)), pad))
    return float(np.fft.rfftfreq(pad, 1 / SR)[np.argmax(spec)])


@pytest.mark.parametrize("pitch", [45, 69, 96])
def test_pulse_pitch_is_the_chips(pitch):
    hz = peak_hz(render(one_note("P1", pitch), filters=False, duty=2))
    chip = float(apu.pulse_hz(apu.pulse_timer(pitch)))
    assert abs(hz - chip) / chip < 0.005
    assert apu.pulse_timer(69) == 253  # round(1789773 / (16 * 440) - 1)


@pytest.mark.parametrize("pitch", [33, 57, 84])
def test_triangle_pitch_is_the_chips(pitch):
    hz = peak_hz(render(one_note("TR", pitch), filters=False))
    chip = float(apu.triangle_hz(apu.triangle_timer(pitch)))
    assert abs(hz - chip) / chip < 0.005
    assert apu.triangle_timer(57) == 253


def test_chip_tuning_is_off_where_the_timer_rounds():
    # high notes are audibly out of tune on the chip: pitch 108 is 4186 Hz, timer 26 gives 4143 Hz
    assert apu.pulse_timer(108) == 26
    assert abs(apu.pulse_hz(26) - 4142.99) < 0.01


@pytest.mark.parametrize("duty,fraction", [(0, 0.125), (1, 0.25), (2, 0.5), (3, 0.75)])
def test_duty_cycles(duty, fraction):
    s = one_note("P1", 40)  # low note: many samples per step, few edge samples
    audio = render(s, duty=duty, filters=False, mute="TR")
    high = audio > audio.max() / 2
    assert abs(high.mean() - fraction) < 0.005


def test_timbre_curve_sets_duty_and_duty_option_overrides():
    s = one_note("P1", 40)
    t = np.zeros(2, dtype=CTRL_DTYPE)
    t["time"], t["value"] = [0, SR // 2], [0, 3]
    s.timbre["P1"] = t
    a = render(s, filters=False, mute="TR")
    first, second = a[: SR // 2] > a.max() / 2, a[SR // 2 :] > a.max() / 2
    assert abs(first.mean() - 0.125) < 0.01 and abs(second.mean() - 0.75) < 0.01
    forced = render(s, filters=False, mute="TR", duty=1)
    assert abs((forced > forced.max() / 2).mean() - 0.25) < 0.01


def _period(seq: np.ndarray) -> int:
    for p in range(1, len(seq)):
        if np.array_equal(seq[p:], seq[:-p]):
            return p
    return len(seq)


def test_noise_lfsr_periods():
    s0, s1 = apu.lfsr_sequence(0), apu.lfsr_sequence(1)
    assert len(s0) == 32767 and len(s1) == 93
    # an independent step-by-step run shows these are the true periods from seed 1
    for mode, n in ((0, 32767), (1, 93)):
        reg, bits = 1, []
        for _ in range(2 * n + 5):
            bits.append(1 - (reg & 1))
            fb = (reg & 1) ^ ((reg >> (6 if mode else 1)) & 1)
            reg = (reg >> 1) | (fb << 14)
        bits = np.array(bits)
        assert np.array_equal(bits[: n], (s0, s1)[mode])
        assert _period(bits[:200]) == n if n < 100 else np.array_equal(bits[n : 2 * n], bits[:n])
    assert s0.sum() == 16383  # a maximal-length sequence has one more 1-state than 0-state in its bit 0


def test_noise_periods_and_pitch_mapping():
    assert apu.noise_period(16) == 4 and apu.noise_period(1) == 4068
    assert list(apu.NOISE_PERIODS[:4]) == [4, 8, 16, 32]
    # a slower noise has less high-frequency energy
    hi = render(one_note("NO", 16), filters=False)
    lo = render(one_note("NO", 4), filters=False)

    def centroid(a):
        spec = np.abs(np.fft.rfft(a - a.mean()))
        return (spec * np.arange(len(spec))).sum() / spec.sum()

    assert centroid(hi) > 2 * centroid(lo)


def test_mixer_matches_the_formulas():
    rng = np.random.default_rng(0)
    p1, p2, t, n = (rng.integers(0, 16, 200).astype(np.float64) for _ in range(4))
    got = mixer.mix(p1, p2, t, n)
    with np.errstate(divide="ignore"):
        pulse = np.where(p1 + p2 > 0, 95.88 / (8128 / (p1 + p2) + 100), 0.0)
        u = t / 8227 + n / 12241
        tnd = np.where(u > 0, 159.79 / (1 / u + 100), 0.0)
    assert np.allclose(got, pulse + tnd, atol=1e-12)
    assert mixer.mix(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))[0] == 0


def test_volume_comes_from_velocity_then_cc11():
    s = one_note("P1", 40, velocity=15)
    v = np.zeros(1, dtype=CTRL_DTYPE)
    v["time"], v["value"] = SR // 2, 5
    s.volume["P1"] = v
    a = render(s, filters=False, mute="TR", duty=2)
    assert np.isclose(a[: SR // 2].max(), mixer.mix(15, 0, 0, 0), rtol=1e-5)
    assert np.isclose(a[SR // 2 :].max(), mixer.mix(5, 0, 0, 0), rtol=1e-5)
    quiet = render(one_note("P1", 40, velocity=7), filters=False, mute="TR", duty=2)
    assert np.isclose(quiet.max(), mixer.mix(7, 0, 0, 0), rtol=1e-5)


def test_phase_is_continuous_across_notes():
    n = SR // 2
    split = NesScore(end=n)
    split.notes["P1"] = make_notes([0, 1000, 7777], [1000, 7777, n], 60)
    whole = one_note("P1", 60, seconds=0.5)
    assert np.allclose(render(split), render(whole), atol=1e-6)
    # a legato pitch change: the sequencer runs on (a restarted phase would jump several steps)
    legato = NesScore(end=n)
    legato.notes["TR"] = make_notes([0, 12345], [12345, n], [45, 52])
    d = np.abs(np.diff(render(legato, filters=False)))
    assert d.max() < 159.79 / 8227 * 1.01  # never more than one triangle step per sample


def test_triangle_holds_its_step_between_notes():
    s = NesScore(end=SR)
    s.notes["TR"] = make_notes([0], [1000], [45])
    a = render(s, filters=False)
    assert np.all(a[1100:] == a[1100])  # the sequencer stops, the output holds
    osc = channels.triangle(channels.segments(s.notes["TR"], channels.triangle_rates(s.notes["TR"]["pitch"], SR),
                                              SR, gated=False))
    assert osc.render(SR)[-1] == osc.render(SR)[1001]


def test_filters_remove_dc_and_unfiltered_is_unipolar():
    s = one_note("P1", 60)
    raw = render(s, filters=False)
    assert raw.min() >= 0
    filtered = render(s)
    assert abs(filtered[SR // 2 :].mean()) < 2e-3
    assert np.abs(filtered).max() < 0.5


def test_each_output_filter_is_switchable():
    from scipy import signal

    for name, (kind, hz) in mixer.FILTERS.items():  # -3 dB at the cutoff, pass band far from it
        b, a = mixer.filter_coefficients(SR, (name,))
        _, h = signal.freqz(b, a, worN=[hz, hz / 50 if kind == "lowpass" else min(hz * 30, 20000)], fs=SR)
        assert abs(abs(h[0]) - 2**-0.5) < 1e-3 and abs(abs(h[1]) - 1) < 2e-3, name
    s = one_note("P1", 60)
    full = render(s)
    assert np.array_equal(render(s, filters="hp90,hp440,lp14k"), full)
    assert np.array_equal(render(s, filters=["LP14K", "hp440", "hp90"]), full)
    assert np.array_equal(render(s, filters=""), render(s, filters=False))
    low_only = render(s, filters="lp14k")
    assert low_only[SR // 2 :].mean() > 0.05  # no high-pass: the DC level stays
    assert abs(render(s, filters="hp90")[SR // 2 :].mean()) < 2e-3
    assert not np.allclose(render(s, filters="hp90"), render(s, filters="hp90,hp440"), atol=1e-3)
    with pytest.raises(InvalidInputError, match="unknown filter 'hp100': filters are hp90, hp440, lp14k"):
        render(s, filters="hp90,hp100")


def test_pulse_is_silent_below_timer_8():
    # no MIDI pitch in P1/P2's range gets there; the rule still holds for the timer
    assert apu.pulse_timer(127) >= 8 > apu.pulse_timer(130)
    rates = channels.pulse_rates(np.array([108, 127, 130]), SR)
    assert rates[0] > 0 and rates[1] > 0 and rates[2] == 0


def test_deterministic_and_wav_length(tmp_path, nesmdb_fixture_files):
    score = read_midi(nesmdb_fixture_files[0])
    a, b = render(score), render(score)
    assert a.tobytes() == b.tobytes()
    write_wav(a, tmp_path / "a.wav")
    write_wav(b, tmp_path / "b.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    info = sf.info(str(tmp_path / "a.wav"))
    assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
    assert abs(info.frames - score.end) <= 1
    assert not list(tmp_path.glob(".*tmp*"))


def test_block_boundaries_do_not_show(monkeypatch, nesmdb_fixture_files):
    import lakhnes.synth as synth

    score = read_midi(nesmdb_fixture_files[1])
    whole = render(score)
    monkeypatch.setattr(synth, "BLOCK", 4099)
    assert np.allclose(render(score), whole, atol=1e-5)


def test_edge_and_sample_paths_agree(monkeypatch, nesmdb_fixture_files):
    # blocks with few waveform steps are integrated edge by edge, others sample by sample
    score = read_midi(nesmdb_fixture_files[4])
    out = []
    for limit in (0.0, 1e9):
        monkeypatch.setattr(channels.Oscillator, "edge_limit", limit)
        out.append(render(score, filters=False))
    assert np.abs(out[0] - out[1]).max() < 1e-6


def test_noise_mode_1_is_periodic_and_paths_agree(monkeypatch):
    n = SR
    s = NesScore(end=n)
    s.notes["NO"] = make_notes([0, n // 2], [n // 2 - 100, n], [8, 8], 15)
    t = np.zeros(2, dtype=CTRL_DTYPE)
    t["time"], t["value"] = [0, n // 2], [0, 1]
    s.timbre["NO"] = t
    s.notes["TR"] = make_notes([0, 30000], [20000, n], [45, 47])
    s.notes["P1"] = make_notes([0, 5000], [4000, n], [60, 72], 9)
    s.timbre["P1"] = t  # duty 12.5 % then 25 %
    out = []
    for limit in (0.0, 1e9):
        monkeypatch.setattr(channels.Oscillator, "edge_limit", limit)
        out.append(render(s, filters=False))
    assert np.abs(out[0] - out[1]).max() < 1e-6
    noise = render(s, filters=False, mute="P1,TR").astype(np.float64)
    lag = round(93 * 202 / apu.CPU_HZ * SR)  # mode 1 repeats every 93 steps of 202 cycles

    def corr(a):
        a = a - a.mean()
        return (a[:-lag] * a[lag:]).sum() / (a * a).sum()

    assert corr(noise[n // 2 + 1000 :]) > 0.8 > 0.2 > corr(noise[1000 : n // 2 - 1000])


def test_box_filter_is_the_mean_over_each_sample():
    # a fast noise (10 LFSR steps a sample): each output sample is the mean of the steps it covers
    n = 400
    notes = make_notes([0], [n], [16], 15)
    seg = channels.segments(notes, channels.noise_rates(notes["pitch"], SR), n)
    got = channels.noise(seg).render(n)
    rate = apu.CPU_HZ / (4 * SR)
    fine = 500  # sub-steps per LFSR step
    t = np.arange(int(n * rate * fine)) / fine
    wave = 15 * apu.lfsr_sequence(0)[np.floor(t).astype(int) % 32767]
    per = (np.arange(len(t)) / (rate * fine)).astype(int)
    want = np.bincount(per, wave)[:n] / np.bincount(per)[:n]
    assert np.abs(got[:-1] - want[:-1]).max() < 0.02


def test_other_sample_rate():
    s = one_note("P1", 69)
    a = render(s, sample_rate=22050, filters=False)
    assert len(a) == SR // 2
    chip = float(apu.pulse_hz(apu.pulse_timer(69)))
    hz = peak_hz(a) / 2  # peak_hz assumes 44.1 kHz
    assert abs(hz - chip) / chip < 0.005


def test_mute():
    s = one_note("P1", 60)
    s.notes["P2"] = make_notes([0], [SR], [64])
    only_p1 = one_note("P1", 60)
    assert np.array_equal(render(s, mute="P2,no"), render(only_p1, mute=["NO"]))
    with pytest.raises(InvalidInputError, match="cannot mute 'XX'"):
        render(s, mute="XX")


def test_fixture_midi_and_tx1_render(nesmdb_fixture_files, fixtures):
    for f in nesmdb_fixture_files:
        score = read_midi(f)
        audio = render(score)
        assert len(audio) == score.end and np.isfinite(audio).all() and np.abs(audio).max() < 1
        ref = tx1.read_tx1(fixtures / "tx1" / f.name.replace(".mid", ".tx1.txt"))
        assert len(render(ref)) == ref.end
    ids = tx1.song_ids(tx1.score_to_events(read_midi(nesmdb_fixture_files[0])))
    assert len(render(tx1.events_to_score(tx1.ids_to_events(ids)))) > 0


def test_bad_input():
    s = one_note("P1", 60)
    s.notes["P1"]["pitch"] = 20
    with pytest.raises(InvalidInputError, match=r"voice P1: pitch 20 at 0.000 s is outside 33-108"):
        render(s)
    noise = one_note("NO", 17)
    with pytest.raises(InvalidInputError, match="voice NO: pitch 17"):
        render(noise)
    with pytest.raises(InvalidInputError, match="empty score"):
        render(NesScore())
    silence = render(NesScore(end=1234))
    assert len(silence) == 1234 and np.abs(silence).max() < 1e-9
    with pytest.raises(InvalidInputError, match="duty must be 0-3"):
        render(one_note("P1", 60), duty=4)
    with pytest.raises(InvalidInputError, match="sample rate"):
        render(one_note("P1", 60), sample_rate=100)


@pytest.mark.slow
def test_every_test_split_file_renders(nesmdb_midi_dir):
    files = sorted((nesmdb_midi_dir / "test").glob("*.mid"))
    assert len(files) == 373
    for f in files:
        score = read_midi(f)
        audio = render(score)
        assert len(audio) == score.end, f
        assert np.isfinite(audio).all(), f
