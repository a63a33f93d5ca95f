"""Token corpora on disk: per split a uint16 token shard, song offsets and names, and a manifest.

Layout of a prepared folder (``lakhnes prepare ...``)::

    manifest.json           counts, skipped files with reasons, vocabulary version and hash
    train.npy               uint16 token ids, songs back to back, each wrapped in <S> ... <S>
    train.offsets.npy       int64, n+1 offsets: song k is tokens[offsets[k]:offsets[k+1]]
    train.names.txt         one song name per line
    (the same for valid, test)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakhnes.core import vocab
from lakhnes.errors import InvalidInputError
from lakhnes.io import atomic_path

SPLITS = ("train", "valid", "test")
MIN_SONG_TOKENS = 10


@dataclass
class Split:
    """One split of a prepared corpus."""

    tokens: np.ndarray
    offsets: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def song(self, k: int) -> np.ndarray:
        return self.tokens[self.offsets[k] : self.offsets[k + 1]]

    def songs(self):
        for k in range(len(self)):
            yield self.song(k)


def load_split(data_dir: str | os.PathLike, split: str, mmap: bool = True) -> Split:
    """Load a split written by ``prepare`` (memory-mapped by default)."""
    d = Path(data_dir)
    f = d / f"{split}.npy"
    if not f.exists():
        raise InvalidInputError(f"no {split} split here (missing {f.name}; run `lakhnes prepare` first)", str(d))
    tokens = np.load(f, mmap_mode="r" if mmap else None)
    offsets = np.load(d / f"{split}.offsets.npy")
    names = (d / f"{split}.names.txt").read_text().splitlines()
    return Split(tokens, offsets, names)


def load_manifest(data_dir: str | os.PathLike) -> dict:
    p = Path(data_dir) / "manifest.json"
    if not p.exists():
        raise InvalidInputError("no manifest.json (not a prepared data folder)", str(data_dir))
    m = json.loads(p.read_text())
    if m.get("vocab_hash") != vocab.VOCAB_HASH:
        raise InvalidInputError(
            f"prepared with another vocabulary ({m.get('vocab_hash')} != {vocab.VOCAB_HASH})", str(data_dir)
        )
    return m


class ShardWriter:
    """Streams songs of one split into ``{split}.npy`` + offsets + names.

    Tokens go to a temporary raw file as they come (memory does not grow with the corpus);
    ``close()`` turns it into the final ``.npy`` files under temporary names, then renames.
    """

    def __init__(self, out_dir: str | os.PathLike, split: str):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split = split
        self._raw_path = self.dir / f".{split}.raw.tmp{os.getpid()}"
        self._raw = open(self._raw_path, "wb")
        self.offsets = [0]
        self.names: list[str] = []

    def add(self, name: str, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.uint16)
        self._raw.write(ids.tobytes())
        self.offsets.append(self.offsets[-1] + len(ids))
        self.names.append(name.replace("\n", " "))

    @property
    def num_tokens(self) -> int:
        return self.offsets[-1]

    def close(self) -> None:
        self._raw.close()
        try:
            tokens = np.fromfile(self._raw_path, dtype=np.uint16)
            with atomic_path(self.dir / f"{self.split}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, tokens)
            with atomic_path(self.dir / f"{self.split}.offsets.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.asarray(self.offsets, dtype=np.int64))
            with atomic_path(self.dir / f"{self.split}.names.txt") as tmp:
                Path(tmp).write_text("".join(n + "\n" for n in self.names))
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file (on error or interruption)."""
        if not self._raw.closed:
            self._raw.close()
        if self._raw_path.exists():
            self._raw_path.unlink()


def write_manifest(out_dir: str | os.PathLike, manifest: dict) -> None:
    manifest = {"vocab_version": vocab.VOCAB_VERSION, "vocab_hash": vocab.VOCAB_HASH,
                "vocab_size": vocab.VOCAB_SIZE, **manifest}
    with atomic_path(Path(out_dir) / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
