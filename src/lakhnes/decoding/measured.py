"""Bounds and priors measured on NES-MDB's train split, which the decoding rules
(:mod:`lakhnes.decoding.rules`) keep generated songs to. ``python benchmarks/rule_bounds.py`` measures them
again (4,502 songs, 15,285 voice parts: the voices that play in each song); "p99" = the 99th percentile over
voice parts."""

from __future__ import annotations

from lakhnes.core.score import SAMPLE_RATE

#: named voices enter within this many seconds (90th percentile of a voice part's first note: 0.80 s)
ENTRY_S = 1.0
#: the longest rest of a named voice (p99 of a voice part's longest rest between two notes: 8.37 s)
MAX_REST_S = 8.4
#: the longest note (p99 of a voice part's longest note: 7.21 s)
MAX_HOLD_S = 7.5
#: note starts per voice in any RATE_WINDOW samples (p99 of a voice part's most in one second: 61)
MAX_ONSETS = 64
RATE_WINDOW = SAMPLE_RATE
#: notes shorter than 1 ms in a row, per voice (p99 of a voice part's longest such run: 2)
MAX_SUB_MS_RUN = 2
#: the largest share of a voice's notes (ended since decoding began) that may be shorter than 1 ms
#: (p99 of a NES-MDB train voice part's share: 0.505; 98.9 % of voice parts have at most 0.5)
MAX_SUB_MS_SHARE = 0.5
#: a rule's deadline is due this many samples before it: a wait cut for it lands at most 999 short
DUE_WINDOW = 1000

#: ages (s) of the survival curves below
SURVIVAL_AGES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: share of notes longer than each age (P1/P2/TR, NO), and of rests between two notes of a voice
NOTE_SURVIVAL = {  # 2,207,401 melodic notes (median 0.094 s), 837,902 noise notes (median 0.017 s)
    "mel": (0.84140, 0.73221, 0.65517, 0.42195, 0.16526, 0.09601, 0.04605, 0.02838, 0.01666, 0.00811, 0.00349,
            0.00132, 0.00049, 0.00020, 0.00012),
    "NO": (0.85959, 0.49171, 0.31376, 0.09604, 0.02318, 0.01104, 0.00385, 0.00178, 0.00085, 0.00038, 0.00027,
           0.00019, 0.00015, 0.00008, 0.00004),
}
REST_SURVIVAL = {  # 748,892 melodic rests (median 0.050 s), 423,954 noise rests (median 0.083 s)
    "mel": (0.92982, 0.72870, 0.47774, 0.28202, 0.10952, 0.05506, 0.02448, 0.01359, 0.00893, 0.00468, 0.00245,
            0.00133, 0.00082, 0.00045, 0.00023),
    "NO": (0.96813, 0.90912, 0.73933, 0.39357, 0.15381, 0.07353, 0.02428, 0.01098, 0.00627, 0.00253, 0.00117,
           0.00056, 0.00030, 0.00021, 0.00014),
}
#: lengths (notes) of the cycle survival curves below
CYCLE_LENGTHS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128)
#: per period P (1-4 notes): the share of real cycles (a melodic voice's maximal stretch of notes each
#: repeating the pitch P notes before: P + 1 notes or more, two pitches or more where P > 1) at least as
#: long as each length; 2,207,397 melodic notes (178,142 / 192,014 / 133,994 / 171,941 such stretches)
CYCLE_SURVIVAL = {
    1: (1.0, 0.24473, 0.1271, 0.07893, 0.06096, 0.04028, 0.02355, 0.01869, 0.0102, 0.00552, 0.00438, 0.00239,
        0.00096, 0.00057, 0.00023, 0.00016),
    2: (1.0, 1.0, 0.24298, 0.11265, 0.06731, 0.03741, 0.01991, 0.01557, 0.00935, 0.00474, 0.004, 0.00212, 0.00084,
        0.00044, 0.00014, 0.00005),
    3: (1.0, 1.0, 1.0, 0.31564, 0.14946, 0.05944, 0.02844, 0.02107, 0.00902, 0.00683, 0.00481, 0.00183, 0.00102,
        0.0006, 0.00055, 0.0004),
    4: (1.0, 1.0, 1.0, 1.0, 0.3738, 0.1214, 0.05842, 0.04276, 0.02557, 0.01277, 0.00998, 0.00588, 0.00223, 0.00117,
        0.00035, 0.0002),
}
#: counts of a song's earlier inter-onset intervals from which each share of the table below holds
NOVELTY_COUNTS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
#: the share of a song's inter-onset intervals (IOIs: whole 60 Hz frames from a voice's note-on to its next,
#: under ``IOI_MAX``) that are new to it (no earlier IOI of any of its voices as long), after at least each
#: count of earlier IOIs, for melodic voices' and noise IOIs; 2,185,237 melodic IOIs (47,342 new), 834,456
#: noise IOIs (8,822 new)
IOI_NOVELTY = {
    "mel": [1.0, 0.4168, 0.38557, 0.23778, 0.13721, 0.08239, 0.05037, 0.0305, 0.02073, 0.0134, 0.00895, 0.0055,
            0.00158],
    "NO": [1.0, 0.49446, 0.41667, 0.29142, 0.15336, 0.07595, 0.03454, 0.01952, 0.00978, 0.00501, 0.00303, 0.00221,
           0.00064],
}
