"""Realism benchmark: how far generated songs are from real NES-MDB songs (independent of the model code).

    python benchmarks/bench_realism.py [--songs DIR | -m MODEL --num 100 --seconds 30 --seed 0
        [--temperature T] [--top-k K] [--top-p P] [--gen-args "..."] [--gen-batch B]]
        [--real nesmdb_midi.tar.gz] [--real-voices P1,P2,TR] [--json R.json] [--md R.md] [--png R.png] [--name NAME]
    python benchmarks/bench_realism.py --compare A.json B.json ...

It reads songs itself (MIDI through ``symusic``; TX1 text parsed here) and never imports
``lakhnes``; songs are generated, if asked, through the ``lakhnes generate`` command line.

Three sets are compared, each cropped to the generated length:

- *real*: NES-MDB test songs of at least 20 s (with ``--real-voices``: only those whose cropped
  part plays exactly these voices, to judge songs written for fewer voices);
- *real through the vocabulary* (``vocab``): the same songs with their event times re-quantised
  as the TX1 vocabulary does (the waits between distinct event times snapped to the nearest of
  the 370 vocabulary waits, times rebuilt by summing them): what a perfect model could at best write;
- *generated* (``gen``).

Measures per song (melodic voices = p1, p2, tr; a note is (start, end, pitch); times in samples
at 44.1 kHz, one 60 Hz frame = 735 samples):

1. Yang & Lerch (2018) feature families (pitch count and range, pitch-class / interval /
   note-length / inter-onset histograms), note density and occupancy per voice, noise types,
   triangle range, share of notes in the best major/minor scale, same-pitch re-attacks;
2. repetition: share of melodic notes inside a transposition-invariant 8- (and 4-) interval
   pattern with >= 4 distinct pitches that occurs at least twice, non-overlapping, in the song;
3. standing still: longest run of one melodic voice on one pitch (s); buzz: most notes/s of one
   melodic voice on one pitch in a 2-s window; cycling: a melodic voice going round a cycle of 2-4
   notes (each note the pitch 2, 3 or 4 notes before; two pitches or more: a trill, a short riff),
   its longest stretch (s) and the share of melodic notes in such stretches of 8 notes or more;
4. pulse (inter-onset intervals within each of the 4 voices): share within 0.1 frame of a
   whole number (>= 1) of frames, distinct IOIs (whole frames), share covered by the 3 commonest;
5. originality against the train split: share of melodic notes inside a 13-note window
   (12 intervals, transposition-invariant, >= 4 distinct pitches) found in a training song, and
   share of songs with a 32-note run found in a training song;
6. overlapping area (Gaussian KDE, Scott's bandwidth) of each scalar feature, real vs the others;
7. a classifier two-sample test: L2 logistic regression (numpy, Newton) on standardised
   key-independent features, 5-fold stratified cross-validation accuracy on balanced sets, the
   mean over ``--cv-repeats`` (default 10) subsamples and splits (one split alone moves it by a few points);
   calibrated with real train vs real test and real-through-vocabulary vs real.

Reading the numbers: compare generated with *both* real columns. In NES-MDB's MIDI a same-pitch
re-attack always leaves a gap of at least one sample (no gap-free one in 600 songs checked), so the
real gap-free share is 0; ``reattack_near`` (gap <= half a frame) is the fairer comparison.
The frame grid is 735 samples (60 Hz), while NTSC game drivers tick at 60.1 Hz: long real IOIs
drift off that grid, so real songs score about 0.75, not 1. Real songs of 20 s up to the crop
length are kept whole; the JSON counts how many reach it (``real_at_full_length``). Classifier
accuracies from 100 + 100 songs spread about +-0.05 by chance (0.5 = indistinguishable).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small matrices; leave the shared cores alone

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

SR = 44100  # samples per second
FRAME = SR // 60  # 735 samples: one 60 Hz frame
VOICES = ("p1", "p2", "tr", "no")
MELODIC = ("p1", "p2", "tr")
DEFAULT_REAL = "/work/shared/data/nesmdb_midi.tar.gz"

#: The 370 TX1 wait lengths (samples).
WAITS = np.concatenate(
    [np.arange(1, 101), np.arange(110, 1001, 10), np.arange(1100, 10001, 100), np.arange(11000, 100001, 1000)]
).astype(np.int64)
MAX_WAIT = int(WAITS[-1])

#: note-length / IOI histogram bins in frames (labels: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32+)
LEN_EDGES = np.array([0, 1.5, 2.5, 3.5, 5, 7, 10, 14, 20, 28, np.inf])
LEN_LABELS = ["1", "2", "3", "4", "6", "8", "12", "16", "24", "32+"]
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
# Krumhansl-Kessler key profiles, to find a song's tonic (for the tonic-transposed pitch-class histogram)
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


# --------------------------------------------------------------------------------------------- songs


@dataclass
class Song:
    """A song: per voice, note starts, ends (samples) and pitches; ``length`` in samples."""

    name: str
    length: int
    notes: dict = field(default_factory=dict)  # voice -> (start, end, pitch) int64 arrays

    def voice(self, v: str):
        e = np.zeros(0, dtype=np.int64)
        return self.notes.get(v, (e, e, e))


def make_song(name: str, length: int, raw: dict) -> Song:
    """Build a song from per-voice lists/arrays of (start, end, pitch): each voice made monophonic
    (sorted by start; a note that overlaps the next is cut at the next start; empty notes dropped)."""
    notes = {}
    for v in VOICES:
        if v not in raw:
            continue
        s, e, p = (np.asarray(x, dtype=np.int64) for x in raw[v])
        if not len(s):
            continue
        o = np.lexsort((p, s))
        s, e, p = s[o], e[o], p[o]
        keep = np.ones(len(s), bool)
        keep[:-1] = s[:-1] != s[1:]  # two notes at one instant: the higher one wins
        s, e, p = s[keep], e[keep], p[keep]
        e = e.copy()
        e[:-1] = np.minimum(e[:-1], s[1:])
        ok = e > s
        if ok.any():
            notes[v] = (s[ok], e[ok], p[ok])
    return Song(name, int(length), notes)


def crop(song: Song, seconds: float | None) -> Song:
    """The song's first ``seconds``."""
    if not seconds:
        return song
    lim = int(round(seconds * SR))
    out = {}
    for v, (s, e, p) in song.notes.items():
        k = s < lim
        out[v] = (s[k], np.minimum(e[k], lim), p[k])
    return Song(song.name, min(song.length, lim), {v: x for v, x in out.items() if len(x[0])})


def of_voices(songs: list[Song], voices: str, seconds: float | None) -> list[Song]:
    """The songs whose first ``seconds`` play exactly ``voices`` (e.g. "P1,P2,TR")."""
    want = {v.strip().lower() for v in voices.split(",")}
    if not want <= set(VOICES):
        raise ValueError(f"--real-voices {voices}: unknown voice {sorted(want - set(VOICES))[0]!r} "
                         f"(voices are {', '.join(v.upper() for v in VOICES)})")
    return [s for s in songs if set(crop(s, seconds).notes) == want]


def song_seconds(song: Song) -> float:
    return song.length / SR


def read_midi(data: bytes, name: str) -> Song:
    """An NES-MDB-layout MIDI (tracks p1, p2, tr, no; velocity = volume). Song end = the last
    time-signature event (else the last note end)."""
    import symusic

    sc = symusic.Score.from_midi(data)
    exact = sc.ticks_per_quarter * 2 == SR and all(t.mspq == 500000 for t in sc.tempos)
    scs = sc if exact else sc.to("second")
    conv = (
        (lambda a: np.asarray(a, dtype=np.int64))
        if exact
        else (lambda a: np.round(np.asarray(a, dtype=np.float64) * SR).astype(np.int64))
    )
    raw = {}
    tracks = list(scs.tracks)
    names = [t.name.strip().lower() for t in tracks]
    if not any(n in VOICES for n in names):  # unnamed tracks: take them in order
        names = list(VOICES[: len(tracks)]) + [""] * max(0, len(tracks) - 4)
    end = 0
    for n, t in zip(names, tracks, strict=False):
        if n not in VOICES or not len(t.notes):
            continue
        a = t.notes.numpy()
        s = conv(a["time"])
        e = s + np.maximum(conv(a["duration"]), 0)
        keep = a["velocity"] > 0
        raw[n] = (s[keep], e[keep], np.asarray(a["pitch"], dtype=np.int64)[keep])
        if keep.any():
            end = max(end, int(e[keep].max()))
    ts = list(scs.time_signatures)
    length = int(conv([max(x.time for x in ts)])[0]) if ts else end
    if length <= 0:
        length = end
    return make_song(name, length, raw)


def read_tx1(text: str, name: str) -> Song:
    """LakhNES TX1 text (``WT_n``, ``P1_NOTEON_60``, ``P1_NOTEOFF``, ``<S>`` / START / END skipped).
    A NOTEON while the voice sounds ends the sounding note there; a NOTEOFF of a silent voice does nothing."""
    t = 0
    sounding: dict[str, tuple[int, int]] = {}
    raw: dict[str, list] = {v: ([], [], []) for v in VOICES}
    for tok in text.split():
        if tok.startswith("WT_"):
            t += int(tok[3:])
            continue
        parts = tok.split("_")
        if len(parts) < 2 or parts[0].lower() not in VOICES:
            continue
        v = parts[0].lower()
        if v in sounding:
            s0, p0 = sounding.pop(v)
            if t > s0:
                raw[v][0].append(s0)
                raw[v][1].append(t)
                raw[v][2].append(p0)
        if parts[1] == "NOTEON" and len(parts) == 3:
            sounding[v] = (t, int(parts[2]))
        elif parts[1] != "NOTEOFF":
            raise ValueError(f"bad TX1 token {tok!r}")
    for v, (s0, p0) in sounding.items():
        if t > s0:
            raw[v][0].append(s0)
            raw[v][1].append(t)
            raw[v][2].append(p0)
    return make_song(name, t, raw)


def read_song_bytes(data: bytes, name: str) -> Song:
    if name.endswith(".txt"):
        return read_tx1(data.decode("utf-8"), name)
    return read_midi(data, name)


def read_real(path: str, split: str, skips, desc: str):
    """The readable songs of a real split, in order; unreadable ones are counted in ``skips``."""
    for nm, data in tqdm(list(iter_real(path, split)), desc=desc):
        try:
            yield read_midi(data, nm)
        except Exception as e:  # noqa: BLE001
            skips(split, nm, e)


def iter_real(path: str, split: str):
    """(name, bytes) of the split's .mid files, from the tarball or an extracted folder, sorted by name."""
    p = Path(path)
    if p.is_dir():
        root = p / "nesmdb_midi" if (p / "nesmdb_midi").is_dir() else p
        for f in sorted((root / split).glob("*.mid")):
            yield f.name, f.read_bytes()
        return
    found = []
    with tarfile.open(p) as tf:  # stream in archive order (seeking back in a .gz re-reads it)
        for m in tf:
            if m.isfile() and m.name.endswith(".mid") and Path(m.name).parent.name == split:
                f = tf.extractfile(m)
                if f is not None:
                    found.append((Path(m.name).name, f.read()))
    yield from sorted(found)


class Skips:
    """Counts unreadable inputs per set; prints one line each."""

    def __init__(self):
        self.count: Counter = Counter()

    def __call__(self, where: str, name: str, err: Exception) -> None:
        self.count[where] += 1
        tqdm.write(
            f"skip {where}/{name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        )


def load_folder(folder: Path, skips: Skips, where: str = "gen") -> list[Song]:
    files = sorted(
        [*folder.rglob("*.mid"), *folder.rglob("*.midi"), *folder.rglob("*.tx1.txt")],
        key=lambda f: (str(f.parent), len(f.name), f.name),
    )
    songs = []
    for f in tqdm(files, desc=f"read {where}", leave=False):
        try:
            songs.append(read_song_bytes(f.read_bytes(), str(f.relative_to(folder))))
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped
            skips(where, str(f.relative_to(folder)), e)
    return songs


# --------------------------------------------------------------------------------------------- vocabulary


def snap_waits(w) -> np.ndarray:
    """Each wait (samples, >= 1) as the TX1 vocabulary writes it: waits longer than 100000 become
    several (100000, ..., rest), each snapped to the nearest vocabulary wait (ties go to the shorter)."""
    w = np.asarray(w, dtype=np.int64)
    q = np.maximum(w - 1, 0) // MAX_WAIT  # full 100000 waits before the rest
    rest = w - q * MAX_WAIT
    hi = np.clip(np.searchsorted(WAITS, rest), 1, len(WAITS) - 1)
    lo = hi - 1
    snapped = np.where(rest - WAITS[lo] <= WAITS[hi] - rest, WAITS[lo], WAITS[hi])
    return q * MAX_WAIT + snapped


def through_vocab(song: Song) -> Song:
    """The song with its event times re-quantised as TX1 does: all note-on/off times of the 4 voices
    (and the song end) sorted, the waits between distinct times snapped, times rebuilt by summing."""
    ts = [np.array([0, song.length], dtype=np.int64)]
    for s, e, _ in song.notes.values():
        ts += [s, e]
    times = np.unique(np.concatenate(ts))
    new = np.concatenate([[0], np.cumsum(snap_waits(np.diff(times)))]) + times[0]

    def m(x):
        return new[np.searchsorted(times, x)]

    notes = {v: (m(s), m(e), p.copy()) for v, (s, e, p) in song.notes.items()}
    return Song(song.name, int(m(np.array([song.length]))[0]), notes)


# --------------------------------------------------------------------------------------------- measures


def _div(a, b) -> float:
    return float(a) / float(b) if b else 0.0


def _entropy(h) -> float:
    h = np.asarray(h, dtype=np.float64)
    t = h.sum()
    if t <= 0:
        return 0.0
    q = h[h > 0] / t
    return float(-(q * np.log2(q)).sum())


def _norm(h) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    t = h.sum()
    return h / t if t > 0 else h


def _windows(p: np.ndarray, k: int):
    """Sliding windows of k intervals (k + 1 notes) of a pitch sequence, transposition-invariant
    (relative to the first note); rows with >= 4 distinct pitches flagged."""
    if len(p) < k + 1:
        return np.zeros((0, k + 1), np.int64), np.zeros(0, bool)
    w = np.lib.stride_tricks.sliding_window_view(p, k + 1)
    rel = w - w[:, :1]
    srt = np.sort(w, axis=1)
    distinct = 1 + (np.diff(srt, axis=1) != 0).sum(axis=1)
    return rel, distinct >= 4


def repetition_share(seqs: list[np.ndarray], k: int) -> float:
    """Share of notes (of all the sequences) inside a k-interval pattern (>= 4 distinct pitches,
    transposition-invariant) that occurs at least twice without overlap, in any of the sequences."""
    total = sum(len(p) for p in seqs)
    if not total:
        return 0.0
    rels, vs, starts = [], [], []
    for vi, p in enumerate(seqs):
        rel, ok = _windows(np.asarray(p, np.int64), k)
        idx = np.flatnonzero(ok)
        rels.append(rel[idx])
        vs.append(np.full(len(idx), vi))
        starts.append(idx)
    rel = np.concatenate(rels)
    if not len(rel):
        return 0.0
    v = np.concatenate(vs)
    st = np.concatenate(starts)
    _, inv, cnt = np.unique(rel, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    cand = np.flatnonzero(cnt[inv] >= 2)
    marks = [np.zeros(len(p), bool) for p in seqs]
    order = cand[np.lexsort((st[cand], v[cand], inv[cand]))]
    i = 0
    while i < len(order):
        j = i
        g = inv[order[i]]
        while j < len(order) and inv[order[j]] == g:
            j += 1
        occ = order[i:j]
        n_sel, last_v, last_s = 0, -1, -(10**9)
        for o in occ:  # greedy non-overlapping occurrences (sorted by voice, start)
            if v[o] != last_v or st[o] >= last_s + k + 1:
                n_sel += 1
                last_v, last_s = v[o], st[o]
        if n_sel >= 2:
            for o in occ:
                marks[v[o]][st[o] : st[o] + k + 1] = True
        i = j
    return _div(sum(int(m.sum()) for m in marks), total)


def cycling(mel, periods=(2, 3, 4), min_notes: int = 8) -> tuple[float, float]:
    """(longest stretch in seconds, share of the notes in stretches of ``min_notes`` or more) in which a
    melodic voice goes round a cycle: each note the pitch ``P`` notes before, for a P of ``periods``,
    two pitches or more."""
    longest, total = 0.0, sum(len(x[2]) for x in mel)
    marks = [np.zeros(len(x[2]), bool) for x in mel]
    for (s, e, p), m in zip(mel, marks, strict=True):
        for q in periods:
            if len(p) <= q:
                continue
            d = np.diff(np.concatenate([[0], (p[q:] == p[:-q]).astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
                if len(np.unique(p[a : b + q])) < 2:
                    continue
                longest = max(longest, float(e[b + q - 1] - s[a]) / SR)
                if b - a + q >= min_notes:
                    m[a : b + q] = True
    return longest, _div(sum(int(m.sum()) for m in marks), total)


def window_hashes(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the k-interval windows (>= 4 distinct pitches) of a pitch sequence, and their
    starts."""
    rel, ok = _windows(np.asarray(p, np.int64), k)
    idx = np.flatnonzero(ok)
    iv = np.diff(rel[idx], axis=1).astype(np.uint64) + np.uint64(256)
    h = np.full(len(idx), 1469598103934665603, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * np.uint64(1099511628211) + iv[:, j]
            h ^= h >> np.uint64(29)
    return h, idx


class TrainIndex:
    """Hashes of all windows of 12 and 31 intervals of the melodic voices of the train songs."""

    def __init__(self, k_short: int = 12, k_long: int = 31):
        self.k = (k_short, k_long)
        self._parts: dict[int, list] = {k: [] for k in self.k}
        self.sets: dict[int, np.ndarray] = {}

    def add(self, song: Song) -> None:
        for v in MELODIC:
            p = song.voice(v)[2]
            for k in self.k:
                self._parts[k].append(window_hashes(p, k)[0])

    def freeze(self) -> None:
        for k in self.k:
            self.sets[k] = np.unique(np.concatenate(self._parts[k] or [np.zeros(0, np.uint64)]))
        self._parts = {}

    def _has(self, h: np.ndarray, k: int) -> np.ndarray:
        s = self.sets[k]
        if not len(s):
            return np.zeros(len(h), bool)
        pos = np.minimum(np.searchsorted(s, h), len(s) - 1)
        return s[pos] == h

    def originality(self, song: Song) -> tuple[float, float]:
        """(share of melodic notes inside a 13-note window found in the index,
        1 if a 32-note run is found)."""
        total, marked, long_hit = 0, 0, False
        ks, kl = self.k
        for v in MELODIC:
            p = song.voice(v)[2]
            total += len(p)
            h, idx = window_hashes(p, ks)
            hit = idx[self._has(h, ks)]
            if len(hit):
                m = np.zeros(len(p), bool)
                for s in hit:
                    m[s : s + ks + 1] = True
                marked += int(m.sum())
            h, _ = window_hashes(p, kl)
            long_hit = long_hit or bool(self._has(h, kl).any())
        return _div(marked, total), float(long_hit)


def key_of(pc_counts: np.ndarray) -> tuple[int, int]:
    """(tonic, mode 0 major / 1 minor) by Krumhansl-Kessler profile correlation."""
    if pc_counts.sum() <= 0 or np.all(pc_counts == pc_counts[0]):
        return 0, 0
    best, arg = -2.0, (0, 0)
    for mode, prof in enumerate((KK_MAJOR, KK_MINOR)):
        for t in range(12):
            c = float(np.corrcoef(pc_counts, np.roll(prof, t))[0, 1])
            if c > best:
                best, arg = c, (t, mode)
    return arg


def scale_share(pc_counts: np.ndarray) -> float:
    """The share of notes in the major scale (or its relative minor) that holds the most of them."""
    member = np.zeros(12, bool)
    member[MAJOR] = True
    return max(_div(pc_counts[np.roll(member, t)].sum(), pc_counts.sum()) for t in range(12))


def song_features(song: Song, index: TrainIndex | None = None) -> dict:
    """All per-song measures: ``scalars`` (name -> float) and ``hists`` (name -> normalised array)."""
    L = max(song.length, 1)
    sec = L / SR
    f: dict[str, float] = {}
    mel = [song.voice(v) for v in MELODIC]
    pitches = np.concatenate([x[2] for x in mel])
    # 1. Yang & Lerch families
    f["pitch_count"] = float(len(np.unique(pitches)))
    f["pitch_range"] = float(pitches.max() - pitches.min()) if len(pitches) else 0.0
    pc = np.bincount(pitches % 12, minlength=12).astype(np.float64) if len(pitches) else np.zeros(12)
    f["pc_entropy"] = _entropy(pc)
    tonic, mode = key_of(pc)
    pc_tonic = _norm(np.roll(pc, -tonic))
    f["minor_key"] = float(mode)
    f["scale_share"] = scale_share(pc)
    ivs = np.concatenate([np.diff(x[2]) for x in mel]) if len(pitches) else np.zeros(0, np.int64)
    ivc = np.clip(ivs, -12, 12)
    iv_hist = _norm(np.bincount(ivc + 12, minlength=25))
    f["interval_abs_mean"] = float(np.abs(ivc).mean()) if len(ivc) else 0.0
    f["interval_repeat"] = float((ivc == 0).mean()) if len(ivc) else 0.0
    f["interval_step"] = float(((np.abs(ivc) >= 1) & (np.abs(ivc) <= 2)).mean()) if len(ivc) else 0.0
    f["interval_leap"] = float((np.abs(ivc) >= 5).mean()) if len(ivc) else 0.0
    f["interval_entropy"] = _entropy(iv_hist)
    lens = np.concatenate([(x[1] - x[0]) for x in mel]) / FRAME
    len_hist = _norm(np.histogram(lens, LEN_EDGES)[0]) if len(lens) else np.zeros(10)
    f["note_len_median_s"] = float(np.median(lens) * FRAME / SR) if len(lens) else 0.0
    f["note_len_entropy"] = _entropy(len_hist)
    iois = [np.diff(song.voice(v)[0]) for v in VOICES]
    ioi = np.concatenate(iois) if iois else np.zeros(0, np.int64)
    ioi_f = ioi / FRAME
    ioi_hist = _norm(np.histogram(ioi_f, LEN_EDGES)[0]) if len(ioi) else np.zeros(10)
    f["ioi_mean_s"] = float(ioi.mean() / SR) if len(ioi) else 0.0
    f["ioi_entropy"] = _entropy(ioi_hist)
    occ_sum = 0.0
    for v in VOICES:
        s, e, _ = song.voice(v)
        f[f"density_{v}"] = len(s) / sec
        f[f"occupancy_{v}"] = float((e - s).sum()) / L
        occ_sum += f[f"occupancy_{v}"]
    f["voices_sounding"] = occ_sum
    f["noise_types"] = float(len(np.unique(song.voice("no")[2])))
    tp = song.voice("tr")[2]
    f["tri_range"] = float(tp.max() - tp.min()) if len(tp) else 0.0
    re_att, re_near = 0, 0
    for s, e, p in mel:
        same = p[1:] == p[:-1]
        re_att += int((same & (s[1:] - e[:-1] <= 0)).sum())  # no gap
        re_near += int((same & (s[1:] - e[:-1] <= FRAME // 2)).sum())  # gap of at most half a frame
    f["reattack_share"] = _div(re_att, len(pitches))
    f["reattack_near"] = _div(re_near, len(pitches))
    # 2. repetition
    seqs = [x[2] for x in mel]
    f["rep8"] = repetition_share(seqs, 8)
    f["rep4"] = repetition_share(seqs, 4)
    # 3. standing still, buzz
    still, buzz = 0.0, 0.0
    for s, e, p in mel:
        if not len(p):
            continue
        brk = np.flatnonzero(np.diff(p) != 0) + 1
        first = np.concatenate([[0], brk])
        last = np.concatenate([brk - 1, [len(p) - 1]])
        still = max(still, float((e[last] - s[first]).max()) / SR)
        for q in np.unique(p):
            t = s[p == q]
            n = np.searchsorted(t, t + 2 * SR, side="left") - np.arange(len(t))
            buzz = max(buzz, float(n.max()) / 2.0)
    f["still_max_s"] = still
    f["buzz_per_s"] = buzz
    f["cycle_max_s"], f["cycle_share"] = cycling(mel)
    # 4. pulse
    if len(ioi):
        r = np.round(ioi_f)
        f["grid_share"] = float(((np.abs(ioi_f - r) <= 0.1) & (r >= 1)).mean())
        vals, cnt = np.unique(r, return_counts=True)
        f["distinct_iois"] = float(len(vals))
        f["top3_ioi"] = float(np.sort(cnt)[::-1][:3].sum() / len(r))
    else:
        f["grid_share"] = f["distinct_iois"] = f["top3_ioi"] = 0.0
    # 5. originality
    if index is not None:
        f["orig13"], f["run32"] = index.originality(song)
    hists = {"pc_tonic": pc_tonic, "interval": iv_hist, "note_len": len_hist, "ioi": ioi_hist}
    return {"scalars": f, "hists": hists, "seconds": sec}


#: table rows: (family, feature, label)
FAMILIES = [
    ("1 pitch", "pitch_count", "pitch count"),
    ("1 pitch", "pitch_range", "pitch range"),
    ("1 pitch", "pc_entropy", "pitch-class entropy (bits)"),
    ("1 pitch", "scale_share", "share in best major/minor scale"),
    ("1 pitch", "minor_key", "minor key (share of songs)"),
    ("1 interval", "interval_abs_mean", "mean abs interval (clipped to 12)"),
    ("1 interval", "interval_repeat", "interval 0 share"),
    ("1 interval", "interval_step", "interval 1-2 share"),
    ("1 interval", "interval_leap", "interval >=5 share"),
    ("1 interval", "interval_entropy", "interval entropy (bits)"),
    ("1 rhythm", "note_len_median_s", "note length median (s)"),
    ("1 rhythm", "note_len_entropy", "note-length entropy (bits)"),
    ("1 rhythm", "ioi_mean_s", "IOI mean (s)"),
    ("1 rhythm", "ioi_entropy", "IOI entropy (bits)"),
    *[("1 voices", f"density_{v}", f"notes/s {v}") for v in VOICES],
    *[("1 voices", f"occupancy_{v}", f"occupancy {v}") for v in VOICES],
    ("1 voices", "voices_sounding", "voices sounding (mean)"),
    ("1 voices", "noise_types", "noise types used"),
    ("1 voices", "tri_range", "triangle pitch range"),
    ("1 voices", "reattack_share", "same-pitch re-attack share"),
    ("1 voices", "reattack_near", "re-attack, gap <= 1/2 frame"),
    ("2 repetition", "rep8", "repetition share, 8 intervals"),
    ("2 repetition", "rep4", "repetition share, 4 intervals"),
    ("3 standing still", "still_max_s", "standing still (s)"),
    ("3 standing still", "buzz_per_s", "buzz (notes/s one pitch, 2 s)"),
    ("3 standing still", "cycle_max_s", "cycling, longest (s)"),
    ("3 standing still", "cycle_share", "cycling share (cycles of 8+ notes)"),
    ("4 pulse", "grid_share", "IOI on the frame grid"),
    ("4 pulse", "distinct_iois", "distinct IOIs (frames)"),
    ("4 pulse", "top3_ioi", "top-3 IOI coverage"),
    ("5 originality", "orig13", "13-note windows found in train"),
    ("5 originality", "run32", "songs with a 32-note train run"),
]
#: features left out of the classifier (originality is measured against train, so train songs would be
#: trivially told apart; the key is not a property of realism)
NOT_CLASSIFIED = {"orig13", "run32", "minor_key"}
HIST_BINS = {
    "pc_tonic": [f"pc+{i}" for i in range(12)],
    "interval": [f"iv{i:+d}" for i in range(-12, 13)],
    "note_len": [f"len{x}" for x in LEN_LABELS],
    "ioi": [f"ioi{x}" for x in LEN_LABELS],
}


def feature_matrix(feats: list[dict]) -> tuple[np.ndarray, list[str]]:
    """Key-independent feature vectors (scalars + tonic-transposed pitch-class, interval, note-length
    and IOI histograms), for the classifier."""
    names = [k for _, k, _ in FAMILIES if k not in NOT_CLASSIFIED]
    cols = [f"{h}:{b}" for h, bins in HIST_BINS.items() for b in bins]
    rows = []
    for ft in feats:
        r = [ft["scalars"].get(k, 0.0) for k in names]
        for h in HIST_BINS:
            r += list(ft["hists"][h])
        rows.append(r)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names) + len(cols)), names + cols


# --------------------------------------------------------------------------------------------- statistics


def kde_oa(a, b, grid: int = 2000) -> float:
    """Overlapping area of two 1-D samples: Gaussian KDE of each (Scott's bandwidth), integral of the
    minimum of the two densities."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return float("nan")
    pooled = np.concatenate([a, b])
    span = pooled.max() - pooled.min()
    if span == 0:
        return 1.0
    floor = 1e-3 * span

    def bw(x):
        return max(float(np.std(x, ddof=1)) * len(x) ** (-1 / 5) if len(x) > 1 else 0.0, floor)

    ba, bb = bw(a), bw(b)
    lo = pooled.min() - 4 * max(ba, bb)
    hi = pooled.max() + 4 * max(ba, bb)
    x = np.linspace(lo, hi, grid)

    def dens(s, h):
        out = np.zeros_like(x)
        for c in np.array_split(s, max(1, len(s) // 256)):
            out += np.exp(-0.5 * ((x[None, :] - c[:, None]) / h) ** 2).sum(axis=0)
        return out / (len(s) * h * np.sqrt(2 * np.pi))

    da, db = dens(a, ba), dens(b, bb)
    return float(min(1.0, np.trapezoid(np.minimum(da, db), x)))


def logreg_fit(X: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (IRLS); returns weights, bias last
    (the bias is not penalised)."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        z = A @ w
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        g = A.T @ (p - y) + reg * w
        H = (A * (p * (1 - p))[:, None]).T @ A + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def logreg_predict(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    return (X @ w[:-1] + w[-1] > 0).astype(np.float64)


def standardize(Xtr: np.ndarray, Xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = Xtr.mean(axis=0)
    sd = Xtr.std(axis=0)
    sd[sd < 1e-12] = 1.0
    return (Xtr - mu) / sd, (Xte - mu) / sd


def two_sample_test(
    Xa: np.ndarray,
    Xb: np.ndarray,
    names: list[str],
    seed: int = 0,
    folds: int = 5,
    l2: float = 1.0,
    paired: bool = False,
    top: int = 8,
    repeats: int = 1,
) -> dict:
    """Classifier two-sample test: balanced sets (min(na, nb) each, subsampled with the seed), k-fold
    stratified cross-validation accuracy of L2 logistic regression on standardised features. With
    ``paired`` row i of Xa and of Xb are the same song (kept in one fold). 0.5 = indistinguishable.
    ``repeats`` > 1: the mean over that many subsamples and fold splits (seeds ``seed``, ``seed + 1``, ...);
    ``accuracy_std`` is the spread of all their folds, ``repeat_acc`` each repeat's accuracy."""
    n = min(len(Xa), len(Xb))
    if n < folds:
        return {
            "n_per_class": n,
            "accuracy": float("nan"),
            "accuracy_std": float("nan"),
            "fold_acc": [],
            "repeat_acc": [],
            "repeats": repeats,
            "top_features": [],
        }
    subsamples = [_balanced(Xa, Xb, seed + r, folds, paired) for r in range(max(1, int(repeats)))]
    runs = [_cv_accuracy(*sub, folds, l2) for sub in subsamples]
    fold_acc = [a for run in runs for a in run]
    X, y, _ = subsamples[0]  # the weights: fitted on the first subsample
    Xs, _ = standardize(X, X)
    w = logreg_fit(Xs, y, l2)[:-1]
    order = np.argsort(-np.abs(w))[:top]
    return {
        "n_per_class": int(n),
        "accuracy": float(np.mean(fold_acc)),
        "accuracy_std": float(np.std(fold_acc)),
        "fold_acc": fold_acc,
        "repeat_acc": [float(np.mean(run)) for run in runs],
        "repeats": len(runs),
        "top_features": [[names[i], float(w[i])] for i in order],  # + = more like the second set
    }


def _balanced(Xa, Xb, seed: int, folds: int, paired: bool):
    """One balanced subsample (features, labels) and its stratified fold numbers (seed ``seed``)."""
    rng = np.random.default_rng(seed)
    n = min(len(Xa), len(Xb))
    if paired:
        ia = ib = np.sort(rng.choice(len(Xa), n, replace=False))
    else:
        ia = np.sort(rng.choice(len(Xa), n, replace=False))
        ib = np.sort(rng.choice(len(Xb), n, replace=False))
    A, B = Xa[ia], Xb[ib]
    fa = np.empty(n, int)
    fa[rng.permutation(n)] = np.arange(n) % folds
    fb = fa.copy() if paired else np.empty(n, int)
    if not paired:
        fb[rng.permutation(n)] = np.arange(n) % folds
    X = np.vstack([A, B])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    return X, y, np.concatenate([fa, fb])


def _cv_accuracy(X, y, fold, folds: int, l2: float) -> list[float]:
    """Each fold's accuracy of L2 logistic regression trained on the other folds."""
    accs = []
    for k in range(folds):
        te = fold == k
        Xtr, Xte = standardize(X[~te], X[te])
        w = logreg_fit(Xtr, y[~te], l2)
        accs.append(float((logreg_predict(w, Xte) == y[te]).mean()))
    return accs


# --------------------------------------------------------------------------------------------- generation


def gen_folder(a) -> Path:
    """Generate the songs with ``lakhnes generate`` (or find them cached) and return their folder.
    With ``--gen-batch B`` < N they are written in batches of B songs (batch c, seed + c, in
    sub-folder ``b<c>``): a big batch of long songs needs much memory."""
    extra = [
        *(["-m", a.model] if a.model else []),
        *(["--temperature", str(a.temperature)] if a.temperature is not None else []),
        *(["--top-k", str(a.top_k)] if a.top_k is not None else []),
        *(["--top-p", str(a.top_p)] if a.top_p is not None else []),
        *shlex.split(a.gen_args or ""),
    ]
    batch = a.gen_batch if a.gen_batch and a.gen_batch < a.num else a.num
    tag = f"gen-{a.seconds:g}s-n{a.num}-seed{a.seed}" + (f"-b{batch}" if batch < a.num else "")
    if extra:
        tag += "-" + hashlib.sha1(" ".join(extra).encode()).hexdigest()[:8]
    root = Path(a.out) / tag
    for c, first in enumerate(range(0, a.num, batch)):
        n = min(batch, a.num - first)
        folder = root / f"b{c}" if batch < a.num else root
        args = [
            "generate",
            "--num",
            str(n),
            "--seconds",
            f"{a.seconds:g}",
            "--seed",
            str(a.seed + c),
            "-o",
            str(folder / "song.mid"),
            *extra,
        ]
        want = [folder / f"song_{i}.mid" for i in range(1, n + 1)] if n > 1 else [folder / "song.mid"]
        meta = folder / "gen.json"
        if (
            meta.exists()
            and json.loads(meta.read_text()).get("args") == args
            and all(f.exists() for f in want)
        ):
            print(f"generated songs cached in {folder}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [*shlex.split(a.lakhnes), *args]
        print("generating:", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        meta.write_text(
            json.dumps(
                {
                    "args": args,
                    "command": shlex.join(cmd),
                    "date": _dt.datetime.now().isoformat(timespec="seconds"),
                },
                indent=1,
            )
        )
    return root


# --------------------------------------------------------------------------------------------- report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summarize(vals) -> dict:
    v = np.asarray(vals, np.float64)
    if not len(v):
        return {"mean": float("nan"), "median": float("nan"), "std": float("nan")}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std())}


HEADLINE = [
    ("rep8", "mean", "repetition share, 8 intervals"),
    ("rep4", "mean", "repetition share, 4 intervals"),
    ("still_max_s", "median", "standing still, median (s)"),
    ("buzz_per_s", "median", "buzz, median (notes/s)"),
    ("cycle_max_s", "median", "cycling, longest, median (s)"),
    ("cycle_share", "mean", "cycling share (cycles of 8+ notes)"),
    ("grid_share", "mean", "IOI frame-grid share"),
    ("distinct_iois", "mean", "distinct IOIs per song"),
    ("top3_ioi", "mean", "top-3 IOI coverage"),
    ("reattack_share", "mean", "same-pitch re-attack share"),
    ("reattack_near", "mean", "re-attack, gap <= 1/2 frame"),
    ("orig13", "mean", "originality: 13-note windows in train"),
    ("run32", "mean", "originality: songs with 32-note train run"),
]
SETS = ("real", "vocab", "gen")
SET_LABEL = {"real": "real", "vocab": "real through vocabulary", "gen": "generated"}


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    ax = abs(x)
    return f"{x:.0f}" if ax >= 100 else f"{x:.2f}" if ax >= 10 else f"{x:.3f}"


def markdown(res: dict) -> str:
    name = res["name"]
    out = [
        f"## Realism: {name}, {res['seconds']:g} s songs\n",
        f"`{res['command']}`  \n{res['date']}, {res['cpu']}\n",
        f"Songs: real {res['n']['real']} ({res['n'].get('real_at_full_length', '?')} of them at least "
        f"{res['seconds']:g} s long), real through vocabulary {res['n']['vocab']}, "
        f"generated {res['n']['gen']} (skipped: {res['skipped'] or 'none'}).\n",
        "| measure | real | real through vocabulary | generated |",
        "|---|---|---|---|",
    ]
    c = res["classifier"]
    for key, lab in (
        ("gen_vs_real", "classifier accuracy, generated vs real"),
        ("real_train_vs_test", "classifier accuracy, real train vs real test"),
        ("vocab_vs_real", "classifier accuracy, real through vocabulary vs real"),
    ):
        r = c[key]
        cv = f", {r['repeats']}x{len(r['fold_acc']) // r['repeats']}-fold" if r.get("repeats", 1) > 1 else ""
        cell = f"{fmt(r['accuracy'])} ± {fmt(r['accuracy_std'])} (n={r['n_per_class']}+{r['n_per_class']}{cv})"
        out.append(
            f"| {lab} | {cell if key == 'real_train_vs_test' else ''} | "
            f"{cell if key == 'vocab_vs_real' else ''} | {cell if key == 'gen_vs_real' else ''} |"
        )
    for k, stat, lab in HEADLINE:
        out.append(f"| {lab} | " + " | ".join(fmt(res["features"][s][k][stat]) for s in SETS) + " |")
    out.append(
        f"| mean OA over {len(res['oa']['gen'])} features (vs real) | 1 | {fmt(res['oa_mean']['vocab'])} | "
        f"{fmt(res['oa_mean']['gen'])} |"
    )
    out += [
        "",
        "Top classifier features, generated vs real (+ = more in generated songs): "
        + ", ".join(f"{n} {w:+.2f}" for n, w in c["gen_vs_real"]["top_features"]),
        "",
    ]
    out += [
        "| family | feature (mean over songs) | real | real through vocabulary | generated "
        "| OA vocab | OA gen |",
        "|---|---|---|---|---|---|---|",
    ]
    for fam, k, lab in FAMILIES:
        vals = " | ".join(fmt(res["features"][s][k]["mean"]) for s in SETS)
        out.append(
            f"| {fam} | {lab} | {vals} | {fmt(res['oa']['vocab'].get(k))} | {fmt(res['oa']['gen'].get(k))} |"
        )
    out += [
        "",
        "| histogram | L1 distance of mean histograms to real: vocabulary | generated |",
        "|---|---|---|",
    ]
    for h in HIST_BINS:
        out.append(f"| {h} | {fmt(res['hist_l1']['vocab'][h])} | {fmt(res['hist_l1']['gen'][h])} |")
    return "\n".join(out) + "\n"


def print_table(res: dict) -> None:
    print(f"\n{'family':<17}{'feature':<34}{'real':>9}{'vocab':>9}{'gen':>9}{'OA':>7}")
    for fam, k, lab in FAMILIES:
        vals = "".join(f"{fmt(res['features'][s][k]['mean']):>9}" for s in SETS)
        print(f"{fam:<17}{lab:<34}{vals}{fmt(res['oa']['gen'].get(k)):>7}")
    print(
        f"\nHeadline ({res['name']}, {res['seconds']:g} s; n real {res['n']['real']}, gen {res['n']['gen']}):"
    )
    c = res["classifier"]
    for key, lab in (
        ("gen_vs_real", "classifier acc, generated vs real"),
        ("real_train_vs_test", "classifier acc, real train vs test"),
        ("vocab_vs_real", "classifier acc, vocab vs real"),
    ):
        print(f"  {lab:<44}{c[key]['accuracy']:.3f} ± {c[key]['accuracy_std']:.3f}")
    print(f"  {'':<44}{'real':>9}{'vocab':>9}{'gen':>9}")
    for k, stat, lab in HEADLINE:
        print(f"  {lab:<44}" + "".join(f"{fmt(res['features'][s][k][stat]):>9}" for s in SETS))
    print(f"  {'mean OA vs real':<44}{'':>9}{fmt(res['oa_mean']['vocab']):>9}{fmt(res['oa_mean']['gen']):>9}")
    print(
        "  top features gen vs real: "
        + ", ".join(f"{n} {w:+.2f}" for n, w in c["gen_vs_real"]["top_features"])
    )


PNG_FEATURES = [
    ("rep8", "repetition share (8 intervals)"),
    ("still_max_s", "standing still (s)"),
    ("grid_share", "IOI frame-grid share"),
    ("distinct_iois", "distinct IOIs"),
    ("pitch_count", "pitch count"),
    ("tri_range", "triangle pitch range"),
    ("noise_types", "noise types used"),
    ("cycle_share", "cycling share (2-4-note cycles)"),
]


def write_png(res: dict, values: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    colors = {"real": "tab:blue", "vocab": "tab:green", "gen": "tab:red"}
    for ax, (k, lab) in zip(axes.ravel(), PNG_FEATURES, strict=True):
        allv = np.concatenate([values[s][k] for s in SETS])
        lo, hi = float(allv.min()), float(allv.max())
        discrete = np.allclose(allv, np.round(allv)) and hi - lo <= 60
        bins = np.arange(lo - 0.5, hi + 1.5) if discrete else np.linspace(lo, hi if hi > lo else lo + 1, 25)
        for s in ("vocab", "gen", "real"):  # real on top; vocab dashed (it mostly lies under real)
            ax.hist(
                values[s][k],
                bins=bins,
                density=True,
                histtype="step",
                color=colors[s],
                lw=2.2 if s == "real" else 1.4,
                ls="--" if s == "vocab" else "-",
                label=f"{SET_LABEL[s]} (n={len(values[s][k])})",
            )
        ax.set_title(f"{lab}\nOA gen {fmt(res['oa']['gen'][k])}", fontsize=10)
        ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=7)
    c = res["classifier"]["gen_vs_real"]
    fig.suptitle(
        f"Realism: {res['name']}, {res['seconds']:g} s songs; classifier accuracy gen vs real "
        f"{c['accuracy']:.2f}, real train vs test {res['classifier']['real_train_vs_test']['accuracy']:.2f}",
        fontsize=11,
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(paths: list[str]) -> None:
    """Earlier runs side by side: each run's generated value, and its real value where the real sets
    differ (another crop length or real split)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    keys = []  # one real column per distinct real set
    for r in runs:
        key = (r["seconds"], r.get("real_split"), r.get("real"))
        if key not in keys:
            keys.append(key)
    cols = []
    for r in runs:
        key = (r["seconds"], r.get("real_split"), r.get("real"))
        if all(c[0] != "real" or c[1] != key for c in cols):
            cols.append(("real", key, r, f"real {r['seconds']:g}s"))
        cols.append(("gen", key, r, f"{r['name']} {r['seconds']:g}s"))
    w = max(12, *(len(c[3]) + 2 for c in cols))
    rows = [
        (
            "classifier accuracy vs real",
            lambda r, s: r["classifier"]["gen_vs_real" if s == "gen" else "real_train_vs_test"]["accuracy"],
        ),
        ("mean OA vs real", lambda r, s: r["oa_mean"]["gen"] if s == "gen" else 1.0),
    ]
    rows += [(lab, lambda r, s, k=k, st=st: r["features"][s][k][st]) for k, st, lab in HEADLINE]
    rows += [
        (lab, lambda r, s, k=k: r["features"][s][k]["mean"])
        for _, k, lab in FAMILIES
        if k not in {h[0] for h in HEADLINE}
    ]
    print(f"{'measure':<44}" + "".join(f"{c[3]:>{w}}" for c in cols))
    for lab, get in rows:
        print(f"{lab:<44}" + "".join(f"{fmt(get(c[2], c[0])):>{w}}" for c in cols))
    print("(real columns: classifier row = real train vs real test accuracy)")


# --------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=DEFAULT_REAL, help="NES-MDB MIDI tarball or extracted folder")
    ap.add_argument("--real-split", default="test")
    ap.add_argument("--train-split", default="train", help="split for originality and real-vs-real")
    ap.add_argument("--real-voices", default=None,
                    help="only real songs whose first SECONDS use exactly these voices, e.g. P1,P2,TR")
    ap.add_argument("--min-real-seconds", type=float, default=20.0)
    ap.add_argument("--songs", help="folder of generated .mid / .tx1.txt songs (else generate them)")
    ap.add_argument("-m", "--model", help="passed to lakhnes generate")
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="song length (default 30; with --songs: the median length of the songs, rounded)",
    )
    ap.add_argument("--seed", type=int, default=0, help="generation, subsampling and cross-validation seed")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--top-k", type=int)
    ap.add_argument("--top-p", type=float)
    ap.add_argument(
        "--gen-batch",
        type=int,
        default=0,
        help="generate in batches of this many songs (batch c uses seed + c; default: all at once)",
    )
    ap.add_argument("--gen-args", default="", help="more lakhnes generate arguments, one string")
    ap.add_argument(
        "--lakhnes", default="lakhnes", help="the command that runs lakhnes (e.g. 'python -m lakhnes')"
    )
    ap.add_argument("--name", default=None, help="label of the generated set (default: model name or folder)")
    ap.add_argument(
        "--out", default=None, help="cache of generated songs (default lakhnes-results/realism/<name>)"
    )
    ap.add_argument("--l2", type=float, default=1.0, help="logistic regression L2 penalty")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--cv-repeats", type=int, default=10,
                    help="classifier accuracy: mean over this many subsamples and fold splits (1: one, as before)")
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--png")
    ap.add_argument("--compare", nargs="+", metavar="JSON", help="print earlier runs side by side and exit")
    a = ap.parse_args(argv)
    if a.cv_repeats < 1 or a.folds < 2:
        ap.error(f"--cv-repeats must be >= 1 and --folds >= 2 (got {a.cv_repeats}, {a.folds})")
    return a


def main(argv=None) -> dict | None:
    a = parse_args(argv)
    if a.compare:
        compare(a.compare)
        return None
    name = a.name or (Path(a.songs).name if a.songs else Path(a.model).stem if a.model else "default")
    a.out = a.out or f"lakhnes-results/realism/{name}"
    skips = Skips()
    if a.songs:
        gen_dir = Path(a.songs)
    else:
        a.seconds = a.seconds or 30.0
        gen_dir = gen_folder(a)
    gen_full = load_folder(gen_dir, skips)
    if not gen_full:
        sys.exit(f"no readable songs in {gen_dir}")
    if a.seconds is None:
        a.seconds = float(max(1, round(float(np.median([song_seconds(s) for s in gen_full])))))
    sec = a.seconds

    # real songs: test split (>= min length), and train split (originality index, real-vs-real sample)
    index = TrainIndex()
    train_long = []
    for s in read_real(a.real, a.train_split, skips, f"index {a.train_split}"):
        index.add(s)
        if song_seconds(s) >= a.min_real_seconds:
            train_long.append(crop(s, sec))
    index.freeze()
    real_full = []
    for s in read_real(a.real, a.real_split, skips, f"read {a.real_split}"):
        if song_seconds(s) >= a.min_real_seconds:
            real_full.append(s)
    if a.real_voices:  # real songs of one voice set (to judge songs asked for with those voices)
        try:
            of_voices([], a.real_voices, sec)
        except ValueError as e:
            sys.exit(str(e))
        real_full = of_voices(real_full, a.real_voices, sec)
        train_long = of_voices(train_long, a.real_voices, sec)
        if not real_full or not train_long:
            sys.exit(f"--real-voices {a.real_voices}: no real song of at least {a.min_real_seconds} s uses exactly these voices")
    sets = {
        "real": [crop(s, sec) for s in real_full],
        "vocab": [crop(through_vocab(s), sec) for s in real_full],
        "gen": [crop(s, sec) for s in gen_full],
    }
    rng = np.random.default_rng(a.seed)
    n_rr = min(len(train_long), len(sets["real"]))
    train_sample = [train_long[i] for i in np.sort(rng.choice(len(train_long), n_rr, replace=False))]

    feats = {}
    for s, songs in sets.items():
        feats[s] = [song_features(x, index) for x in tqdm(songs, desc=f"measure {s}")]
    feats_train = [song_features(x, None) for x in tqdm(train_sample, desc="measure train sample")]

    values = {s: {k: np.array([f["scalars"][k] for f in feats[s]]) for _, k, _ in FAMILIES} for s in SETS}
    res: dict = {
        "name": name,
        "seconds": sec,
        "seed": a.seed,
        "command": shlex.join([sys.executable, *sys.argv])
        if argv is None
        else shlex.join(["bench_realism", *argv]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "real": a.real,
        "real_split": a.real_split,
        "real_voices": a.real_voices,
        "generated": str(gen_dir),
        "n": {s: len(v) for s, v in sets.items()}
        | {
            "train_sample": len(train_sample),
            "real_at_full_length": sum(x.length >= sec * SR - 1 for x in sets["real"]),
        },
        "skipped": dict(skips.count),
        "features": {s: {k: summarize(values[s][k]) for _, k, _ in FAMILIES} for s in SETS},
        "hists_mean": {
            s: {h: np.mean([f["hists"][h] for f in feats[s]], axis=0).tolist() for h in HIST_BINS}
            for s in SETS
        },
    }
    res["hist_l1"] = {
        s: {
            h: float(np.abs(np.array(res["hists_mean"][s][h]) - np.array(res["hists_mean"]["real"][h])).sum())
            for h in HIST_BINS
        }
        for s in ("vocab", "gen")
    }
    res["oa"] = {
        s: {k: kde_oa(values["real"][k], values[s][k]) for _, k, _ in FAMILIES} for s in ("vocab", "gen")
    }
    res["oa_mean"] = {s: float(np.nanmean(list(res["oa"][s].values()))) for s in ("vocab", "gen")}

    X = {s: feature_matrix(feats[s])[0] for s in SETS}
    Xtr, names = feature_matrix(feats_train)
    kw = {"names": names, "seed": a.seed, "folds": a.folds, "l2": a.l2, "repeats": a.cv_repeats}
    res["classifier"] = {
        "gen_vs_real": two_sample_test(X["real"], X["gen"], **kw),
        "real_train_vs_test": two_sample_test(Xtr, X["real"], **kw),
        "vocab_vs_real": two_sample_test(X["real"], X["vocab"], paired=True, **kw),
    }
    print_table(res)
    if skips.count:
        print(f"skipped unreadable inputs: {dict(skips.count)}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1))
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        Path(a.md).write_text(markdown(res))
    if a.png:
        write_png(res, values, a.png)
    return res


if __name__ == "__main__":
    main()
