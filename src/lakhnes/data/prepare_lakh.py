"""``lakhnes prepare lakh``: a folder (or .tar.gz) of any MIDI → NES token shards for pre-training.

Every MIDI file (``.mid``, ``.midi``, ``.mid0`` ...; found recursively, sorted) goes through
:func:`lakhnes.data.lakh.midi_to_nes`; its examples become songs of the ``train`` or ``valid``
split (chosen by a hash of the file's relative path). Files are processed in order by a
worker pool, each with a random generator seeded from (seed, relative path), so the output
is the same whatever the number of workers.

Work is done in chunks under ``OUT.partial/``; each finished chunk is kept, so running the
same command again after an interruption resumes. ``OUT`` only receives its files (shards,
``manifest.json``, ``skipped.tsv``) once everything is done.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np

from lakhnes.core import tx1, vocab
from lakhnes.core.score import SAMPLE_RATE
from lakhnes.data import lakh
from lakhnes.data.shards import MIN_SONG_TOKENS, ShardWriter, write_manifest
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import write_midi
from lakhnes.io import atomic_path

MIDI_NAME = re.compile(r"\.midi?\d*$", re.IGNORECASE)
SPLITS = ("train", "valid")
CHUNK_FILES = 500


def is_midi_name(name: str) -> bool:
    return bool(MIDI_NAME.search(name))


def split_of(rel: str, valid_percent: float) -> str:
    """``valid`` for about ``valid_percent`` % of files, by a hash of the relative path."""
    h = int.from_bytes(hashlib.sha256(rel.encode("utf-8", "surrogateescape")).digest()[:8], "little")
    return "valid" if (h % 10000) < valid_percent * 100 else "train"


# ------------------------------------------------------------------------------ sources


def _is_tar(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))


def list_sources(src: Path) -> list[tuple[str, int]]:
    """(relative path, size in bytes) of every MIDI file: sorted for a folder, archive order
    for a tar archive."""
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and is_midi_name(p.name))
        return [(p.relative_to(src).as_posix(), p.stat().st_size) for p in files]
    if _is_tar(src):
        try:
            with tarfile.open(src) as t:
                return [(m.name, m.size) for m in t if m.isfile() and is_midi_name(m.name)]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InvalidInputError(f"cannot read archive ({e})", str(src)) from None
    raise InvalidInputError("not a folder or a .tar(.gz) archive of MIDI files", str(src))


def _payloads(src: Path, items: list[tuple[str, int]], wanted: set[str]):
    """(rel, path-or-bytes-or-None) for the wanted items, in order, lazily (one pass over an
    archive). Archive members are read here (at most ``MAX_BYTES`` each); ``None`` means too
    large to read."""
    if src.is_dir():
        for rel, _ in items:
            if rel in wanted:
                yield rel, str(src / rel)
        return
    with tarfile.open(src) as t:
        for m in t:
            if m.isfile() and m.name in wanted:
                if m.size > lakh.MAX_BYTES:
                    yield m.name, None
                else:
                    f = t.extractfile(m)
                    yield m.name, f.read() if f else b""


# ------------------------------------------------------------------------------ one file


def _map_one(job):
    """Worker: one file → (rel, split, [ids], examples too short, skip kind, message)."""
    rel, payload, seed, max_per_file, valid_percent, midi_dir = job
    split = split_of(rel, valid_percent)
    try:
        if payload is None:
            raise lakh.SkippedFile("too_large", f"file too large (> {lakh.MAX_BYTES // 1024} KB)")
        scores = lakh.midi_to_nes(payload, max_examples=max_per_file, seed=seed, key=rel)
        songs, short = [], 0
        for k, score in enumerate(scores):
            ids = tx1.song_ids(tx1.score_to_events(score))
            if len(ids) < MIN_SONG_TOKENS:
                short += 1
                continue
            songs.append(ids)
            if midi_dir:
                write_midi(score, Path(midi_dir) / f"{MIDI_NAME.sub('', rel)}.{k:02d}.mid")
        if not songs:
            raise lakh.SkippedFile("no_examples", f"no example with {MIN_SONG_TOKENS}+ tokens")
        return rel, split, songs, short, None, ""
    except lakh.SkippedFile as e:
        return rel, split, [], 0, e.kind, e.reason
    except InvalidInputError as e:
        return rel, split, [], 0, "corrupt", e.reason
    except Exception as e:  # noqa: BLE001 - a bad file is a counted skip, never a crash
        return rel, split, [], 0, "error", f"{type(e).__name__}: {e}"


# ------------------------------------------------------------------------------ chunks


def _run_chunk(pool, jobs, tmp: Path, bar) -> dict:
    """Map one chunk of files into ``tmp`` (token shards + ``done.json``)."""
    writers = {s: ShardWriter(tmp, s) for s in SPLITS}
    counts: Counter = Counter()
    skipped = []
    try:
        results = pool.imap(_map_one, jobs, chunksize=4) if pool else map(_map_one, jobs)
        for rel, split, songs, short, kind, msg in results:
            counts["files_read"] += 1
            counts["examples_too_short"] += short
            if kind:
                counts[f"skip_{kind}"] += 1
                skipped.append((rel, kind, msg))
            else:
                counts["files_used"] += 1
                for k, ids in enumerate(songs):
                    writers[split].add(f"{rel}#{k}", ids)
                    counts[f"samples_{split}"] += int(vocab.WAIT_OF[ids].sum())
                counts[f"examples_{split}"] += len(songs)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(examples=counts["examples_train"] + counts["examples_valid"], refresh=False)
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    done = {"counts": dict(counts), "skipped": skipped}
    with atomic_path(tmp / "done.json") as t:
        Path(t).write_text(json.dumps(done))
    return done


def _npy_header(fh, dtype, n: int) -> None:
    np.lib.format.write_array_header_1_0(fh, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (n,)})


def _merge(chunk_dirs: list[Path], out: Path) -> dict:
    """Concatenate the chunks' shards into ``out``, one chunk in memory at a time (the same
    layout as ``ShardWriter``); return songs and tokens per split."""
    stats = {}
    for split in SPLITS:
        songs = tokens = 0
        for d in chunk_dirs:
            o = np.load(d / f"{split}.offsets.npy", mmap_mode="r")
            songs, tokens = songs + len(o) - 1, tokens + int(o[-1])
        with atomic_path(out / f"{split}.npy") as t, open(t, "wb") as fh:
            _npy_header(fh, np.uint16, tokens)
            for d in chunk_dirs:
                fh.write(np.load(d / f"{split}.npy").astype(np.uint16, copy=False).tobytes())
        with atomic_path(out / f"{split}.offsets.npy") as t, open(t, "wb") as fh:
            _npy_header(fh, np.int64, songs + 1)
            base = 0
            fh.write(np.zeros(1, dtype=np.int64).tobytes())
            for d in chunk_dirs:
                o = np.load(d / f"{split}.offsets.npy")
                fh.write((o[1:].astype(np.int64) + base).tobytes())
                base += int(o[-1])
        with atomic_path(out / f"{split}.names.txt") as t, open(t, "w") as fh:
            for d in chunk_dirs:
                with open(d / f"{split}.names.txt") as src:
                    shutil.copyfileobj(src, fh)
        stats[split] = {"songs": songs, "tokens": tokens}
    return stats


def _move_tree(src: Path, dst: Path) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file():
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)
    shutil.rmtree(src, ignore_errors=True)


def _read_json(path: Path):
    """A JSON file's value, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare_lakh(src_dir, out_dir, max_per_file: int = 16, seed: int = 0, workers: int | None = None,
                 midi_out=None, progress: bool = True, valid_percent: float = 5.0,
                 chunk_files: int = CHUNK_FILES) -> dict:
    """Map every MIDI file under ``src_dir`` (folder or tar archive) to NES token shards in
    ``out_dir``; optionally write the examples as NES MIDI under ``midi_out``. Returns the
    manifest. Resumes the chunks an interrupted run with the same settings finished."""
    from tqdm import tqdm

    src, out = Path(src_dir), Path(out_dir)
    if not src.exists():
        raise InvalidInputError("no such file or folder", str(src))
    if max_per_file < 1:
        raise InvalidInputError(f"--max-per-file must be at least 1 (got {max_per_file})")
    if not 0 <= valid_percent <= 100:
        raise InvalidInputError(f"--valid-percent must be within 0-100 (got {valid_percent})")
    items = list_sources(src)
    if not items:
        raise InvalidInputError("no MIDI files (.mid, .midi, .mid0 ...) found", str(src))

    settings = {"source": str(src.resolve()), "files": len(items), "max_per_file": max_per_file,
                "seed": seed, "valid_percent": valid_percent, "chunk_files": chunk_files,
                "midi_out": str(Path(midi_out).resolve()) if midi_out else None,
                "list_hash": hashlib.sha256("\n".join(r for r, _ in items).encode()).hexdigest()[:16]}
    staging = out.with_name(out.name + ".partial")
    cfg = staging / "settings.json"
    if staging.exists() and _read_json(cfg) != settings:
        shutil.rmtree(staging)  # left by a run with other settings (or cut short): start afresh
    staging.mkdir(parents=True, exist_ok=True)
    with atomic_path(cfg) as t:
        Path(t).write_text(json.dumps(settings))
    midi_stage = staging / "midi" if midi_out else None

    chunks = [items[i : i + chunk_files] for i in range(0, len(items), chunk_files)]
    names = [staging / f"chunk-{k:05d}" for k in range(len(chunks))]
    todo = [k for k in range(len(chunks)) if not (names[k] / "done.json").exists()]
    resumed = sum(len(chunks[k]) for k in range(len(chunks)) if k not in todo)

    workers = max(1, workers if workers else (os.cpu_count() or 1))
    pool = None
    if workers > 1 and todo:
        import multiprocessing as mp

        pool = mp.get_context("fork" if sys.platform == "linux" else "spawn").Pool(workers)
    bar = tqdm(total=len(items), initial=resumed, unit="file", desc="lakh", disable=None if progress else True)
    midi_dir = str(midi_stage) if midi_stage else None
    payloads = _payloads(src, items, {r for k in todo for r, _ in chunks[k]})
    try:
        for k in todo:
            tmp = names[k].with_name(names[k].name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            jobs = ((rel, payload, seed, max_per_file, valid_percent, midi_dir)
                    for rel, payload in itertools.islice(payloads, len(chunks[k])))
            _run_chunk(pool, jobs, tmp, bar)
            os.replace(tmp, names[k])
    except BaseException:
        if pool is not None:
            pool.terminate()
        bar.close()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    bar.close()

    # all chunks done: totals, merged shards, then move into OUT
    counts: Counter = Counter()
    final = staging / "final"
    shutil.rmtree(final, ignore_errors=True)
    final.mkdir()
    with open(final / "skipped.tsv", "w") as fh:
        for d in names:
            done = json.loads((d / "done.json").read_text())
            counts.update(done["counts"])
            for rel, kind, msg in done["skipped"]:
                fh.write(f"{rel}\t{kind}\t{msg}\n")
    split_stats = _merge(names, final)
    for split in SPLITS:
        split_stats[split]["seconds"] = round(counts.get(f"samples_{split}", 0) / SAMPLE_RATE, 1)
    skipped = {r: counts.get(f"skip_{r}", 0) for r in (*lakh.SKIP_REASONS, "error")}
    manifest = {
        "corpus": "lakh",
        "source": str(src),
        "files_read": counts["files_read"],
        "files_used": counts["files_used"],
        "files_skipped": sum(skipped.values()),
        "skipped": skipped,
        "examples": {s: counts.get(f"examples_{s}", 0) for s in SPLITS},
        "examples_too_short": counts["examples_too_short"],
        "splits": split_stats,
        "settings": {"max_per_file": max_per_file, "seed": seed, "valid_percent": valid_percent,
                     "max_bytes": lakh.MAX_BYTES, "min_seconds": lakh.MIN_SECONDS,
                     "max_seconds": lakh.MAX_SECONDS, "clip_seconds": lakh.CLIP_SECONDS,
                     "min_song_tokens": MIN_SONG_TOKENS},
        "skipped_list": "skipped.tsv",
    }
    write_manifest(final, manifest)
    _move_tree(final, out)
    if midi_stage is not None and midi_stage.exists():
        _move_tree(midi_stage, Path(midi_out))
    shutil.rmtree(staging, ignore_errors=True)
    return json.loads((out / "manifest.json").read_text())


# ------------------------------------------------------------------------------ CLI
