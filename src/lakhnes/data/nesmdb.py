"""NES-MDB as a corpus: read the official ``nesmdb_midi`` archive or folder and prepare token shards."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lakhnes.core import tx1
from lakhnes.data.shards import MIN_SONG_TOKENS, SPLITS, ShardWriter, write_manifest
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi


def iter_sources(src: str | os.PathLike) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(split, relative name, bytes)`` for every ``{train,valid,test}/*.mid`` in a
    ``nesmdb_midi.tar.gz`` or an extracted folder, sorted by split then name."""
    src = Path(src)
    if src.is_dir():
        root = src / "nesmdb_midi" if (src / "nesmdb_midi").is_dir() else src
        found = False
        for split in SPLITS:
            for f in sorted((root / split).glob("*.mid")) if (root / split).is_dir() else []:
                found = True
                yield split, f"{split}/{f.name}", f.read_bytes()
        if not found:
            raise InvalidInputError("no train/valid/test folders of .mid files (expected NES-MDB's nesmdb_midi)",
                                    str(src))
        return
    if not src.is_file():
        raise InvalidInputError("no such file or folder", str(src))
    try:
        tar = tarfile.open(src)
    except (tarfile.TarError, OSError) as e:
        raise InvalidInputError(f"not a readable tar archive ({e})", str(src)) from None
    with tar:
        found = {}
        for m in tar:  # archive order: a gzip stream cannot seek back cheaply
            parts = Path(m.name).parts
            if m.isfile() and len(parts) >= 2 and parts[-2] in SPLITS and m.name.lower().endswith(".mid"):
                fh = tar.extractfile(m)
                found[(SPLITS.index(parts[-2]), parts[-1])] = fh.read() if fh else b""
    if not found:
        raise InvalidInputError("archive holds no {train,valid,test}/*.mid (not nesmdb_midi.tar.gz?)", str(src))
    for (si, name), data in sorted(found.items()):
        yield SPLITS[si], f"{SPLITS[si]}/{name}", data


def _convert(item: tuple[str, str, bytes]):
    split, rel, data = item
    score = read_midi(data, name=Path(rel).stem)
    ids = tx1.song_ids(tx1.score_to_events(score))
    return ids, score.end


def prepare_nesmdb(src, out, workers: int | None = None, progress: bool = True) -> dict:
    """Write NES-MDB token shards for the official split to ``out``; return the manifest.

    Output is built in a temporary sibling folder and swapped in at the end, so an
    interrupted run leaves ``out`` as it was. Same input → identical bytes.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError("output must be a folder", str(out))
    return write_corpus(list(iter_sources(src)), _convert, out, "nesmdb", Path(src).name, workers, progress)


def write_corpus(items: list[tuple[str, str, bytes]], convert, out, corpus: str, source: str,
                 workers: int | None = None, progress: bool = True) -> dict:
    """Token shards of ``items`` (``(split, relative name, bytes)``) in ``out``, and the manifest.

    ``convert(item)`` gives ``(ids, samples)`` or ``(ids, samples, left_out)`` (a dict of what the
    song's file held that the score leaves out: summed over the corpus in ``manifest["left_out"]``).
    """
    from lakhnes.batch import run_batch

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    left_out: dict[str, int] = {}
    writers = {s: ShardWriter(tmp, s) for s in SPLITS}
    stats = {s: {"songs": 0, "tokens": 0, "seconds": 0.0, "skipped": 0} for s in SPLITS}
    skipped = []
    digest = hashlib.sha256()
    try:
        for (split, rel, data), res, err in run_batch(convert, items, workers=workers, progress=progress,
                                                      desc=f"prepare {corpus}"):
            digest.update(rel.encode() + hashlib.sha256(data).digest())
            if err:
                reason = err.split(": ", 1)[1] if ": " in err else err
            elif len(res[0]) < MIN_SONG_TOKENS:
                reason = f"fewer than {MIN_SONG_TOKENS} tokens ({len(res[0])})"
            else:
                ids, end = res[:2]
                for what in (res[2] if len(res) > 2 else {}):
                    left_out[what] = left_out.get(what, 0) + 1
                writers[split].add(Path(rel).stem, ids)
                st = stats[split]
                st["songs"] += 1
                st["tokens"] += int(len(ids))
                st["seconds"] += end / 44100
                continue
            stats[split]["skipped"] += 1
            skipped.append({"file": rel, "reason": reason})
        for w in writers.values():
            w.close()
        for st in stats.values():
            st["seconds"] = round(st["seconds"], 3)
        manifest = {
            "corpus": corpus,
            "source": source,
            "source_sha256": digest.hexdigest(),
            "files": len(items),
            "splits": stats,
            "skipped": skipped,
            "min_song_tokens": MIN_SONG_TOKENS,
        }
        if left_out:
            manifest["left_out"] = {k: {"files": n} for k, n in sorted(left_out.items())}
        write_manifest(tmp, manifest)
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
        return manifest
    finally:
        for w in writers.values():
            w.abort()
        shutil.rmtree(tmp, ignore_errors=True)


def token_count_check(data_dir) -> dict[str, int]:
    """Tokens per split of a prepared folder (for reports)."""
    return {s: int(np.load(Path(data_dir) / f"{s}.offsets.npy")[-1]) for s in SPLITS}
