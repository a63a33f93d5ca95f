"""What the TX1 vocabulary's wait rounding does to the 60 Hz frame grid, and what putting waits back on
whole frames (``lakhnes.core.frames.on_frames``) restores.

Real NES-MDB songs of the split (at least 20 s, their first ``--seconds``) are measured as written,
through the vocabulary (MIDI -> TX1 ids -> times, as LakhNES reads them) and through the vocabulary
and back onto frames; each folder of generated MIDI given is measured as written and re-timed onto
frames (its waits are vocabulary waits already). The measures and the classifier are the realism
benchmark's (``benchmarks/bench_realism.py``); the classifier tells each set from the real songs.

    python experiments/frame_waits.py --real ../data/nesmdb_midi.tar.gz [FOLDER ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_realism as br  # noqa: E402

from lakhnes.core import tx1  # noqa: E402
from lakhnes.core.frames import FRAME_OF, frame_table, on_frames  # noqa: E402
from lakhnes.formats.midi import read_midi  # noqa: E402

MEASURES = ("grid_share", "distinct_iois", "top3_ioi", "ioi_entropy", "note_len_entropy")


def as_song(score, name: str) -> br.Song:
    raw = {v.lower(): (n["start"], n["end"], n["pitch"]) for v, n in score.notes.items() if len(n)}
    return br.make_song(name, score.end, raw)


def through(score, frames: bool):
    """The score through TX1 ids (waits rounded as LakhNES rounds them), optionally back onto frames."""
    ev = tx1.ids_to_events(tx1.events_to_ids(tx1.score_to_events(score)))
    if frames:
        ev = on_frames(ev)
    return tx1.events_to_score(ev, name=score.name)


def ioi_error(true: list[br.Song], new: list[br.Song]) -> tuple[float, float]:
    """Median and mean distance (samples) of each within-voice inter-onset interval from the real one."""
    err = []
    for a, b in zip(true, new, strict=True):
        for v in br.VOICES:
            sa, sb = a.voice(v)[0], b.voice(v)[0]
            if len(sa) == len(sb):
                err.append(np.abs(np.diff(sb) - np.diff(sa)))
    err = np.concatenate(err)
    return float(np.median(err)), float(err.mean())


def measure(songs: list[br.Song], real_X: np.ndarray | None, names, paired: bool) -> dict:
    feats = [br.song_features(s) for s in songs]
    out = {k: float(np.mean([f["scalars"][k] for f in feats])) for k in MEASURES}
    X, names = br.feature_matrix(feats)
    if real_X is not None:
        t = br.two_sample_test(real_X, X, names, paired=paired)
        out["classifier"], out["classifier_std"] = t["accuracy"], t["accuracy_std"]
    return out, X, names


def song_args(doc: str) -> argparse.ArgumentParser:
    """The options these song-set experiments share: generated folders, the real split, the length."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", help="folders of generated NES-MDB MIDI")
    ap.add_argument("--real", default="data/nesmdb_midi.tar.gz", help="NES-MDB MIDI tarball or folder")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--json", help="write the table here too")
    return ap


def real_scores(path: str, split: str, skips: br.Skips) -> list:
    """The split's real NES-MDB songs of at least 20 s (unreadable ones counted in ``skips``)."""
    scores = []
    for name, data in br.iter_real(path, split):
        try:
            s = read_midi(data, name)
        except Exception as e:  # noqa: BLE001 - unreadable real songs are counted and skipped
            skips(split, name, e)
            continue
        if s.end >= 20 * br.SR:
            scores.append(s)
    return scores


def main(argv=None) -> None:
    ap = song_args(__doc__)
    ap.add_argument("--frame", type=float, help="frame length in samples (default: the NTSC frame, 733.8)")
    a = ap.parse_args(argv)
    if a.frame:
        FRAME_OF[:] = frame_table(a.frame)  # on_frames reads this table
    skips = br.Skips()
    scores = real_scores(a.real, a.split, skips)
    crop = lambda songs: [br.crop(s, a.seconds) for s in songs]  # noqa: E731
    rows = {}
    real_songs = crop([as_song(s, s.name) for s in scores])
    real, real_X, names = measure(real_songs, None, None, False)
    rows[f"real {a.split} songs ({len(scores)})"] = real
    for label, frames in (("through the vocabulary", False), ("through the vocabulary, back on frames", True)):
        songs = crop([as_song(through(s, frames), s.name) for s in scores])
        rows[label] = measure(songs, real_X, names, True)[0]
        rows[label]["ioi_error_median"], rows[label]["ioi_error_mean"] = ioi_error(real_songs, songs)
    for folder in a.folders:
        files = sorted(Path(folder).rglob("*.mid"))
        written = [read_midi(f) for f in files]
        for label, frames in (("as written", False), ("on frames", True)):
            ss = [tx1.events_to_score(on_frames(tx1.score_to_events(s)), end=s.end, name=s.name) if frames else s
                  for s in written]
            rows[f"{folder} ({len(files)}), {label}"] = measure(crop([as_song(s, s.name) for s in ss]),
                                                                real_X, names, False)[0]
    print("| songs | classifier vs real | " + " | ".join(MEASURES) + " | IOI off the real one, median / mean |")
    print("|---|---|" + "---|" * (len(MEASURES) + 1))
    for label, r in rows.items():
        c = f"{r['classifier']:.3f} ± {r['classifier_std']:.3f}" if "classifier" in r else ""
        e = f"{r['ioi_error_median']:.0f} / {r['ioi_error_mean']:.1f}" if "ioi_error_mean" in r else ""
        print(f"| {label} | {c} | " + " | ".join(f"{r[k]:.3f}" for k in MEASURES) + f" | {e} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
