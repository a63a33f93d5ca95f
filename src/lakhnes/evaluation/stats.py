"""Music statistics of NES scores (numpy only), to compare generated songs with real ones.

Per song, per voice where it applies (``P1``, ``P2``, ``TR``, ``NO``) and over the song
(``all``). Definitions follow muspy's metrics (the reference), adapted to four monophonic
NES voices; the noise voice (``NO``, whose "pitch" is a noise type) counts like muspy's drum
tracks: left out of every pitch metric.

- ``note_density``: notes per second of song (``end``).
- ``pitch_class_entropy``: Shannon entropy in bits of the normalised 12-bin histogram of note
  pitch classes (each note counts once): 0 for one pitch class, log2(12) = 3.585 at most.
  ``all`` pools P1, P2, TR.
- ``pitch_range``: highest minus lowest pitch, in semitones (P1, P2, TR; ``all`` pools them).
- ``polyphony``: mean number of voices sounding, over the time at least one sounds (1-4).
- ``empty_time``: fraction of the song where nothing sounds (``all``); per voice, where that
  voice is silent.
- ``scale_consistency``: the largest fraction of notes inside one of the 24 major/minor scales.
- ``groove_consistency``: ``1 - mean_i d(G_i, G_i+1) / R`` with ``G_i`` the binary onset vector
  of measure i on an R-step grid and d the Hamming distance. NES-MDB stores no tempo, so
  measures are the files' nominal 4/4 bars at 120 bpm (2 s) on a 16-step grid by default.

A metric with nothing to measure (no notes, fewer than two measures) is NaN and is left
out of means and histograms.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore

METRICS = ("note_density", "pitch_class_entropy", "pitch_range", "polyphony", "empty_time",
           "scale_consistency", "groove_consistency")
#: the columns each metric is measured for
COLUMNS = {
    "note_density": ("all", *VOICES),
    "pitch_class_entropy": ("all", "P1", "P2", "TR"),
    "pitch_range": ("all", "P1", "P2", "TR"),
    "polyphony": ("all",),
    "empty_time": ("all", *VOICES),
    "scale_consistency": ("all", "P1", "P2", "TR"),
    "groove_consistency": ("all", *VOICES),
}
MELODIC = ("P1", "P2", "TR")
MEASURE_S, GRID_STEPS = 2.0, 16

_MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)  # C major from C
_SCALES = np.array([np.roll(_MAJOR, r) for r in range(12)] + [np.roll(np.roll(_MAJOR, -9), r) for r in range(12)])


def keys() -> list[str]:
    """All statistic names, ``metric/column``."""
    return [f"{m}/{c}" for m in METRICS for c in COLUMNS[m]]


def pitch_class_entropy(pitches) -> float:
    p = np.asarray(pitches, dtype=np.int64)
    if not len(p):
        return math.nan
    h = np.bincount(p % 12, minlength=12) / len(p)
    h = h[h > 0]
    return float(-(h * np.log2(h)).sum()) + 0.0


def pitch_range(pitches) -> float:
    p = np.asarray(pitches)
    return float(p.max() - p.min()) if len(p) else math.nan


def scale_consistency(pitches) -> float:
    p = np.asarray(pitches, dtype=np.int64)
    if not len(p):
        return math.nan
    hist = np.bincount(p % 12, minlength=12)
    return float((_SCALES @ hist).max() / len(p))


def groove_consistency(onsets, end: int, measure: int, steps: int = GRID_STEPS) -> float:
    """``onsets`` in samples; ``measure`` samples per measure, cut into ``steps`` grid cells."""
    n_measures = -(-int(end) // measure) if end > 0 else 0
    if n_measures < 2 or not len(onsets):
        return math.nan
    grid = np.zeros((n_measures, steps), dtype=bool)
    t = np.asarray(onsets, dtype=np.int64)
    t = t[(t >= 0) & (t < n_measures * measure)]
    cell = t * steps // measure
    grid[cell // steps, cell % steps] = True
    return float(1 - np.count_nonzero(grid[1:] != grid[:-1]) / (steps * (n_measures - 1)))


def _intervals(score: NesScore, v: str) -> tuple[np.ndarray, np.ndarray]:
    n = score.notes[v]
    s = np.clip(n["start"], 0, score.end)
    e = np.clip(n["end"], 0, score.end)
    keep = e > s
    return s[keep], e[keep]


def voices_sounding(score: NesScore) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant count of sounding voices: durations [K] and counts [K] covering [0, end)."""
    starts, ends = zip(*(_intervals(score, v) for v in VOICES), strict=True)
    t = np.concatenate([*starts, *ends, [0, score.end]])
    d = np.concatenate([np.ones(sum(map(len, starts)), np.int64), -np.ones(sum(map(len, ends)), np.int64), [0, 0]])
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    count = np.cumsum(d)
    dur = np.diff(t)  # the count after event i holds until event i+1
    return dur, count[:-1]


def song_stats(score: NesScore, measure_s: float = MEASURE_S, steps: int = GRID_STEPS) -> dict[str, float]:
    """Every statistic of one score, keyed ``metric/column``."""
    out: dict[str, float] = {}
    secs = score.end / SAMPLE_RATE
    notes = {v: score.notes[v] for v in VOICES}
    mel = np.concatenate([notes[v]["pitch"] for v in MELODIC]).astype(np.int64)
    pitches = {"all": mel, **{v: notes[v]["pitch"].astype(np.int64) for v in MELODIC}}
    for c in COLUMNS["note_density"]:
        n = sum(len(notes[v]) for v in VOICES) if c == "all" else len(notes[c])
        out[f"note_density/{c}"] = n / secs if secs > 0 else math.nan
    for metric, f in (("pitch_class_entropy", pitch_class_entropy), ("pitch_range", pitch_range),
                      ("scale_consistency", scale_consistency)):
        for c in COLUMNS[metric]:
            out[f"{metric}/{c}"] = f(pitches[c])
    dur, count = voices_sounding(score)
    sounding = dur[count > 0].sum()
    out["polyphony/all"] = float((dur * count)[count > 0].sum() / sounding) if sounding else math.nan
    out["empty_time/all"] = float(1 - sounding / score.end) if score.end > 0 else math.nan
    for v in VOICES:
        s, e = _intervals(score, v)
        out[f"empty_time/{v}"] = float(1 - (e - s).sum() / score.end) if score.end > 0 else math.nan
    measure = max(1, round(measure_s * SAMPLE_RATE))
    for c in COLUMNS["groove_consistency"]:
        on = np.concatenate([notes[v]["start"] for v in VOICES]) if c == "all" else notes[c]["start"]
        out[f"groove_consistency/{c}"] = groove_consistency(np.unique(on), score.end, measure, steps)
    return out


# --------------------------------------------------------------------------- ensemble health

#: a note shorter than this is a "sub-millisecond" note (1 ms = 44.1 samples)
SUB_MS = SAMPLE_RATE / 1000
#: a song is degenerate when fewer than 2 voices play, or one voice (or silence) is alone longer
DEGENERATE_ALONE_S = 10.0


def longest_alone(score: NesScore) -> float:
    """The longest stretch (seconds) in which at most one voice sounds."""
    dur, count = voices_sounding(score)
    if not len(dur):
        return score.end / SAMPLE_RATE
    alone = count <= 1
    # running sums of durations over runs of consecutive "alone" segments
    run_id = np.cumsum(~alone)
    sums = np.bincount(run_id[alone], weights=dur[alone], minlength=int(run_id.max()) + 1) if alone.any() else [0]
    return float(np.max(sums)) / SAMPLE_RATE


def ensemble_stats(score: NesScore) -> dict[str, float]:
    """What a listener first hears of a song: ``voices_used`` (voices with a note),
    ``voices_sounding`` (mean number of voices sounding over the whole song, silence counting 0),
    ``longest_alone_s`` (longest stretch with at most one voice sounding), ``degenerate`` (1.0 if
    fewer than 2 voices play or ``longest_alone_s`` > ``DEGENERATE_ALONE_S``), per voice
    ``notes_per_s/V``, ``sub_ms/V`` (share of its notes shorter than 1 ms; NaN without notes) and
    ``longest_note_s/V``, and ``pitch_class_entropy`` (P1, P2, TR pooled)."""
    secs = score.end / SAMPLE_RATE
    dur, count = voices_sounding(score)
    used = sum(1 for v in VOICES if len(score.notes[v]))
    alone = longest_alone(score)
    out = {"voices_used": float(used),
           "voices_sounding": float((dur * count).sum() / score.end) if score.end > 0 else math.nan,
           "longest_alone_s": alone,
           "degenerate": float(used < 2 or alone > DEGENERATE_ALONE_S)}
    for v in VOICES:
        n = score.notes[v]
        d = n["end"] - n["start"]
        out[f"notes_per_s/{v}"] = len(n) / secs if secs > 0 else math.nan
        out[f"sub_ms/{v}"] = float(np.mean(d < SUB_MS)) if len(n) else math.nan
        out[f"longest_note_s/{v}"] = float(d.max()) / SAMPLE_RATE if len(n) else 0.0
    out["pitch_class_entropy"] = pitch_class_entropy(np.concatenate([score.notes[v]["pitch"] for v in MELODIC]))
    return out


def voice_bounds(score: NesScore, window_s: float = 1.0) -> dict[str, dict[str, float]]:
    """Per voice that plays, the figures the decoding rules bound (see :mod:`lakhnes.decoding.rules`):
    ``entry_s`` (its first note's start), ``longest_rest_s`` (longest silence between two of its
    notes), ``longest_note_s``, ``max_onsets`` (most note starts in any ``window_s`` window) and
    ``sub_ms_run`` (most consecutive notes shorter than 1 ms) and ``sub_ms_share`` (the share of its
    notes shorter than 1 ms)."""
    out = {}
    win = round(window_s * SAMPLE_RATE)
    for v in VOICES:
        n = score.notes[v]
        if not len(n):
            continue
        st, d = n["start"], n["end"] - n["start"]
        gaps = st[1:] - n["end"][:-1]
        sub = np.concatenate([[False], d < SUB_MS, [False]])
        edges = np.flatnonzero(np.diff(sub.astype(np.int8)))  # run starts and ends, alternating
        out[v] = {
            "entry_s": float(st[0]) / SAMPLE_RATE,
            "longest_rest_s": float(gaps.max()) / SAMPLE_RATE if len(gaps) else 0.0,
            "longest_note_s": float(d.max()) / SAMPLE_RATE,
            "max_onsets": float((np.searchsorted(st, st + win) - np.arange(len(st))).max()),
            "sub_ms_run": float((edges[1::2] - edges[::2]).max()) if len(edges) else 0.0,
            "sub_ms_share": float(np.mean(d < SUB_MS)),
        }
    return out


# --------------------------------------------------------------------------- files and tables

SUFFIXES = (".mid", ".midi", ".tx1.txt", ".vgm", ".vgz", ".famitracker.txt")


def load_score(path, mapping=None, on_mapping=None) -> NesScore:
    """Read NES-MDB MIDI, any other MIDI (mapped onto the NES voices; ``mapping``: a ``--map`` value,
    ``on_mapping(path, MidiMapping)`` called with the mapping used), TX1 text, an NES VGM/VGZ rip or
    FamiTracker text (``InvalidInputError`` naming the file otherwise)."""
    from lakhnes.errors import InvalidInputError

    p = Path(path)
    low = p.name.lower()
    if low.endswith(".tx1.txt"):
        from lakhnes.core.tx1 import read_tx1

        return read_tx1(p)
    if low.endswith((".mid", ".midi")):
        from lakhnes.formats.files import load_any

        try:
            score, used = load_any(p, mapping=mapping)
        except InvalidInputError as e:
            raise e.with_path(p) from None
        if used is not None and on_mapping is not None:
            on_mapping(p, used)
        return score
    from lakhnes.formats.files import file_kind, load

    if low.endswith((".vgm", ".vgz", ".famitracker.txt")) or (p.is_file() and file_kind(p) == "vgm"):
        return load(p)  # --map is for MIDI: VGM and FamiTracker text hold the NES voices already
    raise InvalidInputError("not a .mid/.midi, .tx1.txt, .vgm/.vgz or .famitracker.txt file", str(p))


def collect(paths, measure_s: float = MEASURE_S, steps: int = GRID_STEPS, on_error=None, progress=False,
            mapping=None, on_mapping=None):
    """Statistics of every file: a list of dicts (with ``file``), and the number that failed.
    ``mapping``, ``on_mapping``: for MIDI files without NES tracks (see :func:`load_score`)."""
    from tqdm import tqdm

    from lakhnes.errors import InvalidInputError

    rows, failed = [], 0
    for p in tqdm(list(paths), desc="stats", unit="song", disable=None if progress else True, leave=False):
        try:
            score = load_score(p, mapping, on_mapping)
            if score.end <= 0:
                raise InvalidInputError("empty song (no duration)", str(p))
            rows.append({"file": str(p), **song_stats(score, measure_s, steps)})
        except InvalidInputError as e:
            failed += 1
            if on_error:
                on_error(str(e.with_path(p)))
    return rows, failed


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per statistic: songs measured, mean and standard deviation (NaNs left out)."""
    out = {}
    for k in keys():
        x = np.array([r[k] for r in rows], dtype=np.float64)
        x = x[np.isfinite(x)]
        out[k] = {"n": int(len(x)), "mean": float(x.mean()) if len(x) else math.nan,
                  "std": float(x.std()) if len(x) else math.nan}
    return out


def markdown_table(sets: dict[str, list[dict]]) -> str:
    """One row per statistic, one ``mean ± std`` column per set of songs."""
    names = list(sets)
    summ = {n: summarize(rows) for n, rows in sets.items()}
    head = "| statistic | " + " | ".join(f"{n} ({len(sets[n])} songs)" for n in names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    for k in keys():
        cells = []
        for n in names:
            s = summ[n][k]
            cells.append("—" if not s["n"] else f"{s['mean']:.3f} ± {s['std']:.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_histograms(sets: dict[str, list[dict]], path=None):
    """A grid of histograms (rows: metrics, columns: all/P1/P2/TR/NO), the sets overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ("all", *VOICES)
    fig, axes = plt.subplots(len(METRICS), len(cols), figsize=(3.2 * len(cols), 2.2 * len(METRICS)),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(METRICS):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            if c not in COLUMNS[m]:
                ax.axis("off")
                continue
            data = {n: np.array([r[f"{m}/{c}"] for r in rows], dtype=float) for n, rows in sets.items()}
            data = {n: x[np.isfinite(x)] for n, x in data.items()}
            allx = np.concatenate(list(data.values())) if data else np.zeros(0)
            if not len(allx):
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            else:
                lo, hi = float(allx.min()), float(allx.max())
                bins = np.linspace(lo, hi if hi > lo else lo + 1, 21)
                for k, (n, x) in enumerate(data.items()):
                    if len(x):
                        ax.hist(x, bins=bins, density=True, alpha=0.45, color=colors[k % len(colors)],
                                label=n, histtype="stepfilled", edgecolor=colors[k % len(colors)])
            ax.set_title(f"{m} / {c}", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.97, 0.98))
    if path is not None:
        from lakhnes.io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=80)
        plt.close(fig)
    return fig
