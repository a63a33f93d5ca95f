"""How close lakhnes' synthesizer comes to a cycle-level NES emulator (shared/data/apu_reference).

    python benchmarks/synth_fidelity.py [../shared/data/apu_reference] [--duty N] [--plot DIR]

For each ``.mid``/``.flac`` pair: render the MIDI without filters, run both signals through the
same NES output filters (which also removes the emulator's DC), align them by their RMS
envelopes, scale them to the same RMS, then compare frame by frame (2048-point STFT, hop 512,
bins up to 14 kHz, frames where the reference is within 50 dB of its loudest):

- ``lsc``: log-spectral correlation (Pearson, dB spectra), mean over frames (1 = identical);
- ``sc``: spectral convergence ``||S_ref - S|| / ||S_ref||`` on magnitudes (0 = identical);
- ``lsd``: log-spectral distance in dB, mean over frames;
- ``env``: correlation of the frame RMS envelopes;
- ``P1 P2 TR NO``: each voice's level in the reference relative to ours, in dB, measured in
  the time-frequency bins where that voice alone makes 90 % of our power (0 = balanced);
- ``pitch``: median |cents| between each pulse/triangle note's spectral peak in the reference
  and the chip frequency lakhnes plays for it (notes >= 100 ms).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.formats.midi import read_midi
from lakhnes.synth import apu, mixer, render

NFFT, HOP = 2048, 512


def nes_filters(x: np.ndarray) -> np.ndarray:
    return np.asarray(mixer.output_filters(np.asarray(x, dtype=np.float64), SAMPLE_RATE)[0])


def frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1))


def align(ref: np.ndarray, mine: np.ndarray, max_lag: int = 2048) -> int:
    """Lag (samples) that best aligns ``mine`` to ``ref`` by their 64-sample RMS envelopes."""
    hop = 64
    a, b = np.log(frame_rms(ref, hop) + 1e-4), np.log(frame_rms(mine, hop) + 1e-4)
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    c = signal.correlate(a, b, mode="full", method="fft")
    lags = np.arange(-n + 1, n)
    ok = np.abs(lags) <= max_lag // hop
    return int(lags[ok][np.argmax(c[ok])] * hop)


def shift(x: np.ndarray, lag: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    if lag >= 0:
        seg = x[: max(0, n - lag)]
        out[lag : lag + len(seg)] = seg
    else:
        seg = x[-lag : -lag + n]
        out[: len(seg)] = seg
    return out


def stft_mag(x: np.ndarray) -> np.ndarray:
    _, _, z = signal.stft(x, fs=SAMPLE_RATE, nperseg=NFFT, noverlap=NFFT - HOP, boundary=None, padded=False)
    return np.abs(z[: int(14000 / SAMPLE_RATE * NFFT) + 1])


def compare(ref: np.ndarray, mine: np.ndarray) -> dict:
    r, m = stft_mag(ref), stft_mag(mine)
    energy = (r**2).sum(0)
    keep = energy > energy.max() * 1e-5
    r, m = r[:, keep], m[:, keep]
    lr, lm = 20 * np.log10(r + 1e-6), 20 * np.log10(m + 1e-6)
    zr = (lr - lr.mean(0)) / (lr.std(0) + 1e-12)
    zm = (lm - lm.mean(0)) / (lm.std(0) + 1e-12)
    env_r, env_m = frame_rms(ref, HOP), frame_rms(mine, HOP)
    return {
        "lsc": float((zr * zm).mean(0).mean()),
        "sc": float(np.linalg.norm(r - m) / np.linalg.norm(r)),
        "lsd": float(np.sqrt(((lr - lm) ** 2).mean(0)).mean()),
        "env": float(np.corrcoef(env_r, env_m)[0, 1]),
    }


def voice_levels(ref: np.ndarray, solos: dict[str, np.ndarray]) -> dict[str, float]:
    """Each voice's level in ``ref`` relative to ours (dB): reference power over our power in
    the time-frequency bins where that voice makes at least 90 % of our power."""
    r = stft_mag(ref) ** 2
    power = {v: stft_mag(x) ** 2 for v, x in solos.items() if np.any(x)}
    total = sum(power.values())
    out = {}
    for v, p in power.items():
        mask = (p > 0.9 * total) & (p > 1e-6 * p.max())
        if mask.sum() > 50:
            out[v] = float(10 * np.log10(r[mask].sum() / total[mask].sum()))
    return out


def pitch_cents(ref: np.ndarray, score, lag: int) -> list[float]:
    """|cents| between the reference's spectral peak near each long pulse/triangle note's chip
    frequency and that frequency."""
    out = []
    for v in ("P1", "P2", "TR"):
        notes = score.notes[v]
        for n in notes[(notes["end"] - notes["start"]) >= SAMPLE_RATE // 10]:
            timer = apu.triangle_timer(n["pitch"]) if v == "TR" else apu.pulse_timer(n["pitch"])
            f0 = float(apu.triangle_hz(timer) if v == "TR" else apu.pulse_hz(timer))
            a, b = int(n["start"]) + lag, int(n["end"]) + lag
            mid, half = (a + b) // 2, min(8192, (b - a) // 2)
            seg = ref[max(0, mid - half) : mid + half]
            if len(seg) < 2048 or f0 < 40:
                continue
            pad = 1 << 17
            spec = np.abs(np.fft.rfft((seg - seg.mean()) * np.hanning(len(seg)), pad))
            f = np.fft.rfftfreq(pad, 1 / SAMPLE_RATE)
            win = (f > f0 * 0.96) & (f < f0 * 1.04)
            if not win.any():
                continue
            peak = f[win][np.argmax(spec[win])]
            out.append(abs(1200 * np.log2(peak / f0)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/apu_reference"))
    ap.add_argument("--duty", type=int, default=None, help="force a pulse duty (default: the MIDI's CC12)")
    args = ap.parse_args()
    rows = []
    print(f"{'song':34s} {'lag':>5s} {'lsc':>5s} {'sc':>5s} {'lsd':>5s} {'env':>5s} "
          f"{'P1':>6s} {'P2':>6s} {'TR':>6s} {'NO':>6s} {'pitch':>6s}")
    for mid in sorted(Path(args.folder).glob("*.mid")):
        score = read_midi(mid)
        ref, sr = sf.read(str(mid.with_suffix(".flac")), dtype="float64")
        assert sr == SAMPLE_RATE
        ref = nes_filters(ref)
        mine = nes_filters(render(score, filters=False, duty=args.duty))
        lag = align(ref, mine)
        n = len(ref)
        mine = shift(mine, lag, n)
        scale = np.std(ref) / np.std(mine)
        row = compare(ref, mine * scale)
        solos = {v: shift(nes_filters(render(score, filters=False, duty=args.duty,
                                             mute=[u for u in VOICES if u != v])), lag, n) * scale
                 for v in VOICES if len(score.notes[v])}
        row["levels"] = voice_levels(ref, solos)
        cents = pitch_cents(ref, score, lag)
        row["pitch"] = float(np.median(cents)) if cents else float("nan")
        row["scale"] = scale
        rows.append(row)
        lv = " ".join(f"{row['levels'].get(v, float('nan')):+6.1f}" for v in VOICES)
        print(f"{mid.stem[:34]:34s} {lag:5d} {row['lsc']:5.3f} {row['sc']:5.3f} {row['lsd']:5.1f} "
              f"{row['env']:5.3f} {lv} {row['pitch']:6.1f}")
    keys = ("lsc", "sc", "lsd", "env", "pitch")
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    lv = " ".join(f"{np.nanmean([r['levels'].get(v, np.nan) for r in rows]):+6.1f}" for v in VOICES)
    print(f"{'mean':34s} {'':5s} {mean['lsc']:5.3f} {mean['sc']:5.3f} {mean['lsd']:5.1f} {mean['env']:5.3f} "
          f"{lv} {mean['pitch']:6.1f}")
    print(f"reference RMS / ours (before scaling): {np.mean([r['scale'] for r in rows]):.3f}")


if __name__ == "__main__":
    main()
