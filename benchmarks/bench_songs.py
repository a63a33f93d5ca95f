"""Songs a listener would call music? Generate N songs of 30 s per mode and measure them beside
real NES-MDB music.

    python benchmarks/bench_songs.py [-m MODEL] [-n 100] [--seconds 30] [-j 2] [--modes new,keep_P1,...]
        [--out results/bench_songs] [--png docs/bench_songs.png] [--code SRC_DIR]

Modes (each N songs, seed k for song k): ``new`` (from scratch); ``continue`` (10 NES-MDB
test-split songs, each primed with its first 8 s, 30 s of new music measured); ``rhythm``,
``keep_P1``, ``keep_P1_NO`` (the first 30 s of the same 10 songs as the source); ``continue_pop909``,
``keep_pop909`` and ``continue_lakh``, ``keep_lakh`` (10 POP909 files and 10 Lakh files of
``multitrack_midi.tar.gz``, mapped onto the NES voices; keep: P1, their top melodic line). Song k
uses source k mod 10.

Per song (:func:`lakhnes.evaluation.stats.ensemble_stats`, on the new music: the continuation alone; the
whole song in the other modes): ``degenerate`` (fewer than 2 voices, or one voice or silence alone
for more than 10 s), mean voices sounding, and over the voices the model wrote (all four; P1/P2/TR
in rhythm mode, whose timing is the source's; the others in keep modes): notes per second per
voice, the share of notes shorter than 1 ms, the longest note, plus pitch-class entropy (P1, P2,
TR). Beside them, the same figures on the real songs: the first 30 s of every NES-MDB test song
that lasts at least 30 s. Writes ``OUT.json`` (every song's figures), ``OUT.md`` (the table) and a
picture of the distributions (``--png``).

``--code SRC_DIR`` generates with another checkout's ``lakhnes`` (e.g. a ``git archive`` of an
older commit, for before/after figures) while measuring with this one: the songs are made in
worker processes that import from SRC_DIR, through the public API only (``sample``,
``continue_song``, ``accompany_rhythm``, ``accompany_voices``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MODES = ("new", "continue", "rhythm", "keep_P1", "keep_P1_NO", "continue_pop909", "keep_pop909",
         "continue_lakh", "keep_lakh")
SOURCES_PER_MODE = 10
PRIME_SECONDS = 8.0
VOICES = ("P1", "P2", "TR", "NO")

# ----------------------------------------------------------------------------- sources


def _extract(tar_path: Path, want, out: Path) -> list[Path]:
    """Extract the members ``want(name)`` accepts (sorted by name) into ``out``."""
    with tarfile.open(tar_path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and want(m.name)), key=lambda m: m.name)
        for m in members:
            tar.extract(m, out, filter="data")
    return [out / m.name for m in members]


def real_songs(nesmdb: Path, seconds: float, tmp: Path):
    """The NES-MDB test songs lasting at least ``seconds``: (path, score) sorted by name."""
    from lakhnes.core.score import SAMPLE_RATE
    from lakhnes.formats.midi import read_midi

    if nesmdb.is_dir():
        files = sorted((nesmdb / "test").glob("*.mid"))
    else:
        files = _extract(nesmdb, lambda n: "/test/" in n and n.endswith(".mid"), tmp / "nesmdb")
    out = []
    for f in files:
        s = read_midi(f)
        if s.end >= seconds * SAMPLE_RATE:
            out.append((f, s))
    return out


def mapped_sources(multitrack: Path, corpus: str, seconds: float, tmp: Path, k: int) -> list[Path]:
    """The first ``k`` files of ``corpus`` (pop909 or lmd_beatles) that map onto at least two NES
    voices and last ``seconds`` + the prime, copied to ``.mid`` names."""
    from lakhnes.core.score import SAMPLE_RATE
    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.any_midi import general_midi_to_nes

    files = _extract(multitrack, lambda n: f"/{corpus}/" in n, tmp / corpus)
    picked = []
    for f in files:
        dst = tmp / f"{corpus}_{len(picked):02d}.mid"
        dst.write_bytes(f.read_bytes())
        try:
            s = general_midi_to_nes(dst)
        except (InvalidInputError, ValueError, OSError):
            continue
        used = sum(1 for v in VOICES if len(s.notes[v]))
        if used >= 2 and len(s.notes["P1"]) and s.end >= (seconds + PRIME_SECONDS) * SAMPLE_RATE:
            picked.append(dst)
            if len(picked) == k:
                break
    return picked


# ----------------------------------------------------------------------------- generation (workers)

_MODEL = None


def _init(code: str | None, model: str | None) -> None:
    global _MODEL
    if code:
        sys.path.insert(0, code)
    import torch

    torch.set_num_threads(1)
    from lakhnes import generate as G

    _MODEL = G.load_model(model) if model else G.load_default_model()


def _make(task: dict) -> dict:
    """One song: its notes (plain arrays), end, the written voices, the wall seconds."""
    from lakhnes import generate as G
    from lakhnes.core.score import SAMPLE_RATE

    mode, seed, seconds = task["mode"], task["seed"], task["seconds"]
    t0 = time.perf_counter()
    written = list(VOICES)
    if mode == "new":
        (score,) = G.sample(_MODEL, seconds=seconds, seed=seed)
    else:
        src = G.load_source(task["source"])
        if mode.startswith("continue"):
            (score,) = G.continue_song(_MODEL, src, prime_seconds=PRIME_SECONDS, seconds=seconds, seed=seed,
                                       only_new=True)
        else:
            src = src.slice(0, min(src.end, int(round(seconds * SAMPLE_RATE))))
            if mode == "rhythm":
                (score,) = G.accompany_rhythm(_MODEL, src, seed=seed)
                written = ["P1", "P2", "TR"]
            else:
                keep = ["P1", "NO"] if mode == "keep_P1_NO" else ["P1"]
                (score,) = G.accompany_voices(_MODEL, src, ",".join(keep), seed=seed)
                written = [v for v in VOICES if v not in keep]
    wall = time.perf_counter() - t0
    return {"notes": {v: score.notes[v] for v in VOICES}, "end": int(score.end), "written": written,
            "wall_s": wall, **{k: task[k] for k in ("mode", "seed", "source")}}


# ----------------------------------------------------------------------------- figures


def song_row(score, written, source_longest: float | None = None) -> dict:
    from lakhnes.evaluation.stats import ensemble_stats

    st = ensemble_stats(score)
    row = {"degenerate": bool(st["degenerate"]), "voices_sounding": st["voices_sounding"],
           "voices_used": int(st["voices_used"]), "longest_alone_s": st["longest_alone_s"],
           "pitch_class_entropy": st["pitch_class_entropy"], "written": list(written)}
    for v in written:
        row[f"notes_per_s/{v}"] = st[f"notes_per_s/{v}"]
        row[f"sub_ms/{v}"] = st[f"sub_ms/{v}"]
        row[f"longest_note_s/{v}"] = st[f"longest_note_s/{v}"]
    row["max_notes_per_s"] = max(st[f"notes_per_s/{v}"] for v in written)
    subs = [st[f"sub_ms/{v}"] for v in written if not math.isnan(st[f"sub_ms/{v}"])]
    row["max_sub_ms"] = max(subs) if subs else 0.0
    n = sum(len(score.notes[v]) for v in written)
    short = sum(int(np.sum((score.notes[v]["end"] - score.notes[v]["start"]) < 44.1)) for v in written)
    row["notes_written"], row["sub_ms_written"] = n, short
    row["longest_note_s"] = max(st[f"longest_note_s/{v}"] for v in written)
    if source_longest is not None:
        row["source_longest_note_s"] = source_longest
    return row


def summarize(rows: list[dict]) -> dict:
    def arr(key):
        return np.array([r[key] for r in rows], dtype=float)

    per_voice = np.array([r[f"notes_per_s/{v}"] for r in rows for v in r["written"]], dtype=float)
    notes = sum(r["notes_written"] for r in rows)
    out = {
        "songs": len(rows),
        "degenerate": int(sum(r["degenerate"] for r in rows)),
        "voices_sounding": float(arr("voices_sounding").mean()),
        "notes_per_s_voice_mean": float(per_voice.mean()),
        "notes_per_s_voice_max": float(per_voice.max()),
        "sub_ms_share": sum(r["sub_ms_written"] for r in rows) / notes if notes else math.nan,
        "sub_ms_max": float(arr("max_sub_ms").max()),
        "longest_note_median": float(np.median(arr("longest_note_s"))),
        "longest_note_max": float(arr("longest_note_s").max()),
        "pitch_class_entropy": float(np.nanmean(arr("pitch_class_entropy"))),
    }
    if all("wall_s" in r for r in rows):
        out["wall_s_median"] = float(np.median(arr("wall_s")))
    if all("source_longest_note_s" in r for r in rows):
        out["source_longest_note_max"] = float(arr("source_longest_note_s").max())
    return out


def markdown(summary: dict[str, dict]) -> str:
    lines = ["| mode | songs | degenerate | voices sounding (mean) | notes/s per written voice (mean / max) | "
             "notes < 1 ms (all / worst song-voice) | longest note, s (median / max) | pitch-class entropy | "
             "s per song (median) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        wall = f"{s['wall_s_median']:.2f}" if "wall_s_median" in s else "—"
        lines.append(
            f"| {name} | {s['songs']} | {s['degenerate']} | {s['voices_sounding']:.2f} | "
            f"{s['notes_per_s_voice_mean']:.1f} / {s['notes_per_s_voice_max']:.1f} | "
            f"{100 * s['sub_ms_share']:.1f} % / {100 * s['sub_ms_max']:.0f} % | "
            f"{s['longest_note_median']:.2f} / {s['longest_note_max']:.1f} | {s['pitch_class_entropy']:.2f} | {wall} |")
    return "\n".join(lines) + "\n"


def compare(before: dict[str, dict], after: dict[str, dict]) -> str:
    """A before -> after table of the modes both runs have."""
    lines = ["| mode | songs | degenerate | voices sounding | notes/s per written voice (max) | "
             "notes < 1 ms (all) | worst song-voice < 1 ms | longest note, s (max) | pitch-class entropy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, a in after.items():
        b = before.get(name)
        if b is None or name.startswith("real"):
            continue
        lines.append(
            f"| {name} | {b['songs']} → {a['songs']} | {b['degenerate']} → {a['degenerate']} | "
            f"{b['voices_sounding']:.2f} → {a['voices_sounding']:.2f} | "
            f"{b['notes_per_s_voice_max']:.1f} → {a['notes_per_s_voice_max']:.1f} | "
            f"{100 * b['sub_ms_share']:.1f} % → {100 * a['sub_ms_share']:.1f} % | "
            f"{100 * b['sub_ms_max']:.0f} % → {100 * a['sub_ms_max']:.0f} % | "
            f"{b['longest_note_max']:.1f} → {a['longest_note_max']:.1f} | "
            f"{b['pitch_class_entropy']:.2f} → {a['pitch_class_entropy']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(rows_by_mode: dict[str, list[dict]], path: Path, before: dict[str, list[dict]] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lakhnes.io import atomic_path

    panels = (("voices_sounding", "voices sounding (mean over the song)", None),
              ("per_voice_rate", "notes/s per written voice", "log"),
              ("max_sub_ms", "share of notes < 1 ms (worst written voice)", None),
              ("longest_note_s", "longest note of the written voices (s)", "log"),
              ("pitch_class_entropy", "pitch-class entropy (bits)", None))
    names = list(rows_by_mode)
    if before:  # each mode's "before" just above it
        rows_by_mode = dict(rows_by_mode)
        order = []
        for n in names:
            if n in before and not n.startswith("real"):
                rows_by_mode[f"{n} (before)"] = before[n]
                order.append(f"{n} (before)")
            order.append(n)
        names = order
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 0.42 * len(names) + 1.6), sharey=True)
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        data = []
        for n in names:
            if key == "per_voice_rate":
                x = [r[f"notes_per_s/{v}"] for r in rows_by_mode[n] for v in r["written"]]
            else:
                x = [r[key] for r in rows_by_mode[n]]
            x = np.asarray(x, dtype=float)
            x = x[np.isfinite(x)]
            if scale == "log":
                x = np.maximum(x, 0.01)
            data.append(x if len(x) else np.array([np.nan]))
        bp = ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=True, flierprops={"markersize": 2},
                        patch_artist=True)
        for k, patch in enumerate(bp["boxes"]):
            patch.set_facecolor("#cccccc" if names[k].startswith("real") else
                                "#e8a9a0" if names[k].endswith("(before)") else "#8fb3d9")
        if scale:
            ax.set_xscale(scale)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(range(1, len(names) + 1), names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=None, help="run or checkpoint folder (default: the shipped model)")
    ap.add_argument("-n", "--num", type=int, default=100, help="songs per mode (default 100)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("-j", "--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--nesmdb", default=str(SHARED / "nesmdb_midi.tar.gz"), help="NES-MDB MIDI .tar.gz or folder")
    ap.add_argument("--multitrack", default=str(SHARED / "multitrack_midi.tar.gz"))
    ap.add_argument("--out", default="results/bench_songs", help="writes OUT.json and OUT.md")
    ap.add_argument("--png", default=None, help="write the picture here, e.g. docs/bench_songs.png (default: none, "
                    "so that measuring a candidate leaves the shipped model's picture alone)")
    ap.add_argument("--code", default=None, help="generate with the lakhnes under this src folder")
    ap.add_argument("--label", default=None, help="model label in the outputs")
    ap.add_argument("--replot", action="store_true", help="generate nothing: read OUT.json and write the table "
                    "and the picture again (with --before: beside that run)")
    ap.add_argument("--before", default=None, help="an earlier run's OUT.json: a before -> after table, and its "
                    "distributions beside these in the picture")
    a = ap.parse_args()
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"--modes: unknown mode {bad[0]!r} (modes: {', '.join(MODES)})")
    if a.num < 1 or a.jobs < 1 or not a.seconds > 0:
        ap.error("--num and --jobs must be at least 1, --seconds positive")
    from lakhnes.core.score import SAMPLE_RATE, NesScore

    out = Path(a.out)
    if a.replot:
        run = json.loads(out.with_suffix(".json").read_text())
        report(run["meta"], run["summary"], run["songs"], out, a)
        return
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-songs-") as tmpdir:
        tmp = Path(tmpdir)
        real = real_songs(Path(a.nesmdb), a.seconds, tmp)
        cut = int(round(a.seconds * SAMPLE_RATE))
        pick = np.linspace(0, len(real) - 1, SOURCES_PER_MODE).round().astype(int)
        nes_sources = [real[i][0] for i in pick]
        sources = {"nesmdb": nes_sources}
        if any(m.endswith("pop909") for m in modes):
            sources["pop909"] = mapped_sources(Path(a.multitrack), "pop909", a.seconds, tmp, SOURCES_PER_MODE)
        if any(m.endswith("lakh") for m in modes):
            sources["lakh"] = mapped_sources(Path(a.multitrack), "lmd_beatles", a.seconds, tmp, SOURCES_PER_MODE)
        tasks = []
        for mode in modes:
            corpus = "pop909" if mode.endswith("pop909") else "lakh" if mode.endswith("lakh") else "nesmdb"
            for k in range(a.num):
                src = None if mode == "new" else str(sources[corpus][k % len(sources[corpus])])
                tasks.append({"mode": mode, "seed": k, "seconds": a.seconds, "source": src})
        print(f"{len(tasks)} songs ({', '.join(modes)}), {a.jobs} job(s); sources: "
              + ", ".join(f"{k} {len(v)}" for k, v in sources.items()), flush=True)
        results = []
        if a.jobs == 1 and not a.code:
            _init(None, a.model)
            for k, t in enumerate(tasks):
                results.append(_make(t))
                if (k + 1) % 25 == 0:
                    print(f"  {k + 1}/{len(tasks)} ({time.time() - t_start:.0f} s)", flush=True)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(a.jobs, initializer=_init, initargs=(a.code, a.model)) as pool:
                for k, r in enumerate(pool.imap(_make, tasks, chunksize=1)):
                    results.append(r)
                    if (k + 1) % 25 == 0:
                        print(f"  {k + 1}/{len(tasks)} ({time.time() - t_start:.0f} s)", flush=True)
        # the source's longest note, for "no note over 12 s unless the source holds one"
        from lakhnes.evaluation.stats import ensemble_stats
        from lakhnes.generate import load_source

        src_longest: dict[str, float] = {}
        rows_by_mode: dict[str, list[dict]] = {m: [] for m in modes}
        for r in results:
            score = NesScore(end=r["end"])
            for v in VOICES:
                score.notes[v] = r["notes"][v]
            longest = None
            if r["source"] is not None:
                if r["source"] not in src_longest:
                    s = load_source(r["source"])
                    s = s.slice(0, min(s.end, cut if not r["mode"].startswith("continue")
                                       else int(PRIME_SECONDS * SAMPLE_RATE)))
                    src_longest[r["source"]] = max(ensemble_stats(s)[f"longest_note_s/{v}"] for v in VOICES)
                longest = src_longest[r["source"]]
            row = song_row(score, r["written"], longest)
            row.update(mode=r["mode"], seed=r["seed"], source=Path(r["source"]).name if r["source"] else None,
                       wall_s=r["wall_s"])
            rows_by_mode[r["mode"]].append(row)
        real_rows = [song_row(s.slice(0, cut), VOICES) | {"source": Path(f).name} for f, s in real]
        label = f"real: NES-MDB test, first {a.seconds:g} s"
        rows_by_mode[label] = real_rows
    summary = {m: summarize(rows) for m, rows in rows_by_mode.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    model = a.label or (a.model or "shipped model")
    meta = {"model": model, "code": a.code, "num": a.num, "seconds": a.seconds, "jobs": a.jobs,
            "wall_s_total": round(time.time() - t_start, 1), "load_average": os.getloadavg()[0]}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "songs": rows_by_mode},
                                                   default=float))
    report(meta, summary, rows_by_mode, out, a)


def report(meta: dict, summary: dict, rows_by_mode: dict, out: Path, a) -> None:
    """Write OUT.md (and the before -> after table with ``--before``) and the picture."""
    table = markdown(summary)
    text = f"Model: {meta['model']}; {meta['num']} songs of {meta['seconds']:g} s per mode.\n\n" + table
    before = json.loads(Path(a.before).read_text()) if a.before else None
    if before:
        text += (f"\nBefore ({before['meta']['model']}, {before['meta']['num']} songs per mode) → after:\n\n"
                 + compare(before["summary"], summary))
    out.with_suffix(".md").write_text(text)
    print(text)
    if a.png:
        plot(rows_by_mode, Path(a.png), before["songs"] if before else None)
    print(f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')}" + (f", {a.png}" if a.png else ""))


if __name__ == "__main__":
    main()
