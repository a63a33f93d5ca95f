"""Facts of the NES 2A03 APU (NTSC): clock, waveform tables, timers, the noise LFSR.

Reference: the NESdev wiki pages "APU", "APU Pulse", "APU Triangle", "APU Noise", "APU Mixer".
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: NTSC CPU clock (Hz); the pulse timers tick at half of it, triangle and noise at the full rate.
CPU_HZ = 1789773.0

#: Pulse duty sequences as the sequencer outputs them (timbre 0-3: 12.5, 25, 50, 75 %).
DUTY_TABLES = np.array(
    [
        [0, 1, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 0, 0, 0],
        [1, 0, 0, 1, 1, 1, 1, 1],
    ],
    dtype=np.float64,
)
#: The triangle's 32-step sequence 15 ... 0, 0 ... 15.
TRIANGLE_TABLE = np.concatenate([np.arange(15, -1, -1), np.arange(16)]).astype(np.float64)
#: Noise timer periods in CPU cycles (NTSC), period index 0-15.
NOISE_PERIODS = np.array(
    [4, 8, 16, 32, 64, 96, 128, 160, 202, 254, 380, 508, 762, 1016, 2034, 4068], dtype=np.float64
)
#: Timers below this value silence a pulse channel (the sweep unit's mute).
PULSE_MIN_TIMER = 8
MAX_TIMER = 0x7FF


def midi_hz(pitch) -> np.ndarray:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def pulse_timer(pitch) -> np.ndarray:
    """The 11-bit pulse timer for a MIDI pitch: ``round(CPU / (16 f) - 1)``."""
    return np.clip(np.round(CPU_HZ / (16.0 * midi_hz(pitch)) - 1.0), 0, MAX_TIMER).astype(np.int64)


def triangle_timer(pitch) -> np.ndarray:
    """The 11-bit triangle timer for a MIDI pitch: ``round(CPU / (32 f) - 1)``."""
    return np.clip(np.round(CPU_HZ / (32.0 * midi_hz(pitch)) - 1.0), 0, MAX_TIMER).astype(np.int64)


def pulse_hz(timer) -> np.ndarray:
    """Frequency the chip plays for a pulse timer value."""
    return CPU_HZ / (16.0 * (np.asarray(timer, dtype=np.float64) + 1.0))


def triangle_hz(timer) -> np.ndarray:
    """Frequency the chip plays for a triangle timer value."""
    return CPU_HZ / (32.0 * (np.asarray(timer, dtype=np.float64) + 1.0))


def noise_period(noise_pitch) -> np.ndarray:
    """CPU cycles per LFSR step for an NES-MDB noise "pitch" 1-16 (period index ``16 - n``)."""
    return NOISE_PERIODS[16 - np.asarray(noise_pitch, dtype=np.int64)]


@cache
def lfsr_sequence(mode: int) -> np.ndarray:
    """One full period of the noise shift register's output bit (1 = sound), from seed 1.

    Feedback is bit 0 XOR bit 1 (mode 0, period 32767) or bit 0 XOR bit 6 (mode 1, period 93);
    the channel sounds while bit 0 is clear.
    """
    tap = 6 if mode else 1
    reg, start, out = 1, 1, []
    while True:
        out.append(1 - (reg & 1))
        fb = (reg ^ (reg >> tap)) & 1
        reg = (reg >> 1) | (fb << 14)
        if reg == start:
            break
    seq = np.array(out, dtype=np.float64)
    seq.setflags(write=False)
    return seq
