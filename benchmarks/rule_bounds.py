"""The NES-MDB figures behind the decoding rules' defaults (:mod:`lakhnes.decoding.rules`).

    python benchmarks/rule_bounds.py [NESMDB_MIDI_DIR_OR_TAR] [--split train] [--json out.json]

For every song of the split and every voice that plays in it (a "voice part"), the figures of
:func:`lakhnes.evaluation.stats.voice_bounds`: when the voice enters, its longest rest between two notes, its
longest note, the most note starts in any 1-second window, the longest run of consecutive notes
shorter than 1 ms and the share of such notes. Prints the percentiles of each over all voice parts
(melodic voices and noise apart and together), the share of voice parts each rule's default lets through, and the
survival curves of note lengths and of rests between notes (``decoding.rules.NOTE_SURVIVAL``,
``REST_SURVIVAL``: the share of notes / rests longer than each age) and of melodic cycles
(``CYCLE_SURVIVAL``: per period P of 1-4 notes, the share of cycles spanning at least each number of notes),
and how often a voice's inter-onset interval is one it has not used before (``IOI_NOVELTY``).
Default source: ``../shared/data/nesmdb_midi.tar.gz`` (read straight from the archive).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import numpy as np

from lakhnes.core.score import SAMPLE_RATE, VOICES
from lakhnes.decoding import rules as C
from lakhnes.decoding import state as S
from lakhnes.errors import InvalidInputError
from lakhnes.evaluation.stats import voice_bounds
from lakhnes.formats.midi import read_midi

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nesmdb_midi.tar.gz"
FIGURES = ("entry_s", "longest_rest_s", "longest_note_s", "max_onsets", "sub_ms_run", "sub_ms_share")
PERCENTILES = (50, 90, 95, 99, 99.9, 100)


def songs(source: Path, split: str):
    """(name, bytes) of every MIDI file of ``split`` in a folder or a tar archive."""
    if source.is_dir():
        for p in sorted((source / split).glob("*.mid")):
            yield p.name, p.read_bytes()
        return
    with tarfile.open(source) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = Path(m.name).parts
            if m.isfile() and m.name.endswith(".mid") and len(parts) >= 2 and parts[-2] == split:
                yield Path(m.name).name, tar.extractfile(m).read()


def cycle_lengths(pitches: np.ndarray, period: int) -> list[int]:
    """The notes spanned by each cycle of ``period`` in a voice's pitch sequence: each maximal stretch in
    which every note repeats the pitch ``period`` notes before (``period`` + 1 notes or more; two
    pitches or more where ``period`` > 1), as :class:`lakhnes.decoding.rules.Cycles` counts them."""
    p = np.asarray(pitches, dtype=np.int64)
    if len(p) <= period:
        return []
    d = np.diff(np.concatenate([[0], (p[period:] == p[:-period]).astype(np.int8), [0]]))
    return [int(b - a + period) for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True)
            if period == 1 or len(np.unique(p[a : b + period])) >= 2]


def ioi_novelty(score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The song's inter-onset intervals (IOIs: from a voice's note-on to its next) under ``IOI_MAX`` whole
    frames, in the order their second notes start (voices in order at one instant): for each, its voice,
    how many IOIs the song made before it, and whether it is new to the song (no earlier IOI rounds to
    the same frames), as :class:`lakhnes.decoding.rules.Pulse` and :class:`lakhnes.decoding.state.Stream`
    count them."""
    at, voice, r = [], [], []
    for v, name in enumerate(VOICES):
        st = np.asarray(score.notes[name]["start"], dtype=np.int64)
        at.append(st[1:])
        voice.append(np.full(max(len(st) - 1, 0), v))
        r.append((np.diff(st) + S.IOI_FRAME // 2) // S.IOI_FRAME)
    at, voice, r = np.concatenate(at), np.concatenate(voice), np.concatenate(r)
    order = np.lexsort((voice, at))
    voice, r = voice[order], r[order]
    keep = np.flatnonzero(r < S.IOI_MAX)
    _, first = np.unique(r[keep], return_index=True)
    new = np.zeros(len(keep), dtype=bool)
    new[first] = True
    return voice[keep], keep, new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=str(DEFAULT), help="NES-MDB MIDI folder or .tar.gz")
    ap.add_argument("--split", default="train")
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args()
    rows, n_songs, failed = [], 0, 0
    lengths = {"note": {"mel": [], "NO": []}, "rest": {"mel": [], "NO": []}}
    cycles: dict[int, list[int]] = {q: [] for q in C.CYCLE_SURVIVAL}
    novelty = {"mel": ([], []), "NO": ([], [])}
    for name, data in songs(Path(a.source), a.split):
        try:
            score = read_midi(data, name=name)
        except InvalidInputError:
            failed += 1
            continue
        if score.end <= 0:
            continue
        n_songs += 1
        voice, count, new = ioi_novelty(score)
        for group, pick in (("mel", voice < 3), ("NO", voice == 3)):
            novelty[group][0].append(count[pick])
            novelty[group][1].append(new[pick])
        for v, fig in voice_bounds(score).items():
            rows.append((v, fig))
            n = score.notes[v]
            gaps = n["start"][1:] - n["end"][:-1]
            group = "NO" if v == "NO" else "mel"
            lengths["note"][group].append((n["end"] - n["start"]) / SAMPLE_RATE)
            lengths["rest"][group].append(gaps[gaps > 0] / SAMPLE_RATE)
            if v != "NO":
                for q in cycles:
                    cycles[q] += cycle_lengths(n["pitch"], q)
    print(f"{a.split}: {n_songs} songs ({failed} unreadable), {len(rows)} voice parts")
    out = {"split": a.split, "songs": n_songs, "voice_parts": len(rows), "figures": {}}
    print("| figure | voices | " + " | ".join(f"p{q:g}" for q in PERCENTILES) + " |")
    print("|---|---|" + "---|" * len(PERCENTILES))
    for f in FIGURES:
        for label, pick in (("P1/P2/TR", ("P1", "P2", "TR")), ("NO", ("NO",)), ("all", ("P1", "P2", "TR", "NO"))):
            x = np.array([fig[f] for v, fig in rows if v in pick])
            qs = np.percentile(x, PERCENTILES)
            out["figures"][f"{f}/{label}"] = dict(zip([f"p{q:g}" for q in PERCENTILES], qs.tolist(), strict=True))
            print(f"| {f} | {label} | " + " | ".join(f"{q:.3g}" for q in qs) + " |")
    # what each default lets through (all voice parts)
    ok = {
        f"entry_s <= ENTRY_S ({C.ENTRY_S:g} s)": [fig["entry_s"] <= C.ENTRY_S for _, fig in rows],
        f"longest_rest_s <= MAX_REST_S ({C.MAX_REST_S:g} s)": [fig["longest_rest_s"] <= C.MAX_REST_S for _, fig in rows],
        f"longest_note_s <= MAX_HOLD_S ({C.MAX_HOLD_S:g} s)": [fig["longest_note_s"] <= C.MAX_HOLD_S for _, fig in rows],
        f"max_onsets <= MAX_ONSETS ({C.MAX_ONSETS} per {C.RATE_WINDOW / SAMPLE_RATE:g} s)":
            [fig["max_onsets"] <= C.MAX_ONSETS for _, fig in rows],
        f"sub_ms_run <= MAX_SUB_MS_RUN ({C.MAX_SUB_MS_RUN})": [fig["sub_ms_run"] <= C.MAX_SUB_MS_RUN for _, fig in rows],
        f"sub_ms_share <= MAX_SUB_MS_SHARE ({C.MAX_SUB_MS_SHARE:g})":
            [fig["sub_ms_share"] <= C.MAX_SUB_MS_SHARE for _, fig in rows],
    }
    print()
    for k, v in ok.items():
        share = float(np.mean(v))
        out[k] = share
        print(f"{k}: {100 * share:.1f} % of voice parts")
    print("\nsurvival: share of notes / rests (between two notes of a voice) longer than each age")
    print("ages (s):", list(C.SURVIVAL_AGES))
    for kind in ("note", "rest"):
        for group in ("mel", "NO"):
            x = np.concatenate(lengths[kind][group])
            surv = [round(float((x > age).mean()), 5) for age in C.SURVIVAL_AGES]
            out[f"survival/{kind}/{group}"] = surv
            print(f"{kind} {group} ({len(x)}, median {np.median(x):.3f} s): {surv}")
    print("\ncycles: share of melodic cycles of each period spanning at least each number of notes")
    print("notes:", list(C.CYCLE_LENGTHS))
    for q, x in cycles.items():
        x = np.asarray(x)
        surv = [round(float((x >= n).mean()), 5) for n in C.CYCLE_LENGTHS]
        out[f"cycles/{q}"] = surv
        print(f"period {q} ({len(x)} cycles, median {np.median(x):g} notes): {surv}")
    print("\nIOI novelty: share of IOIs (under IOI_MAX frames) new to their song, after n earlier IOIs of it")
    print("n from:", list(C.NOVELTY_COUNTS))
    for group, (count, new) in novelty.items():
        count, new = np.concatenate(count), np.concatenate(new)
        k = np.searchsorted(C.NOVELTY_COUNTS, count, side="right") - 1
        share = [round(float(new[k == j].mean()), 5) for j in range(len(C.NOVELTY_COUNTS))]
        out[f"ioi_novelty/{group}"] = share
        print(f"{group} ({len(new)} IOIs, {int(new.sum())} new): {share}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
