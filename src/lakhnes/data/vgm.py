"""VGM rips of NES games as a corpus (``lakhnes prepare vgm``), and the note-level comparison of
two scores used to check the VGM reader against NES-MDB's own MIDI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lakhnes.core import tx1
from lakhnes.core.score import VOICES, NesScore
from lakhnes.data.shards import SPLITS
from lakhnes.errors import InvalidInputError

VGM_SUFFIXES = (".vgm", ".vgz")


def iter_vgm_sources(src: str | os.PathLike, valid_percent: float = 5.0) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(split, relative name, bytes)`` for every ``.vgm``/``.vgz`` under the folder ``src``
    (sorted). A file under a ``train``/``valid``/``test`` folder keeps that split (NES-MDB's layout);
    the others go to ``valid`` for about ``valid_percent`` % of them (a hash of the name), else ``train``."""
    from lakhnes.data.prepare_lakh import split_of

    src = Path(src)
    if not src.is_dir():
        raise InvalidInputError("no such folder" if not src.exists() else "expected a folder of .vgm/.vgz files",
                                str(src))
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name.lower().endswith(VGM_SUFFIXES))
    if not files:
        raise InvalidInputError("no .vgm or .vgz files in this folder", str(src))
    for f in files:
        rel = f.relative_to(src).as_posix()
        parts = f.relative_to(src).parts[:-1]
        split = next((p for p in reversed(parts) if p in SPLITS), None) or split_of(rel, valid_percent)
        try:
            data = f.read_bytes()
        except OSError:
            data = b""  # refused below as an empty file
        yield split, rel, data


def _convert(item: tuple[str, str, bytes]):
    from lakhnes.formats.vgm import read_vgm

    _, rel, data = item
    try:
        score, info = read_vgm(data, name=Path(rel).name.split(".")[0], with_info=True)
    except InvalidInputError as e:
        raise e.with_path(rel) from None
    ids = tx1.song_ids(tx1.score_to_events(score))
    return ids, score.end, sorted(info.left_out)


def prepare_vgm(src, out, workers: int | None = None, progress: bool = True, valid_percent: float = 5.0) -> dict:
    """Token shards of a folder of NES VGM rips in ``out`` (as ``prepare_nesmdb``); the manifest
    lists each file refused (``skipped``: corrupt, not NES, empty) and, under ``left_out``, how many
    files had sound the score leaves out (DPCM, Famicom Disk System, a second APU, other chips)."""
    from lakhnes.data.nesmdb import write_corpus

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError("output must be a folder", str(out))
    items = list(iter_vgm_sources(src, valid_percent))
    return write_corpus(items, _convert, out, "vgm", Path(src).name, workers, progress)


def note_f1(mine: NesScore, ref: NesScore, tolerance: int = 735) -> float:
    """F1 of ``mine``'s notes against ``ref``'s: a note matches one of the same voice and pitch
    starting within ``tolerance`` samples (one 60 Hz frame), each matched once (1.0 if both are empty)."""
    hits = n_mine = n_ref = 0
    for v in VOICES:
        a, b = mine.notes[v], ref.notes[v]
        n_mine, n_ref = n_mine + len(a), n_ref + len(b)
        for p in np.intersect1d(a["pitch"], b["pitch"]):
            x, y = np.sort(a["start"][a["pitch"] == p]), np.sort(b["start"][b["pitch"] == p])
            i = j = 0
            while i < len(x) and j < len(y):
                if abs(int(x[i]) - int(y[j])) <= tolerance:
                    hits, i, j = hits + 1, i + 1, j + 1
                elif x[i] < y[j]:
                    i += 1
                else:
                    j += 1
    if not n_mine and not n_ref:
        return 1.0
    return 2 * hits / (n_mine + n_ref)
