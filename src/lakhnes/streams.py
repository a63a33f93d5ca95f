"""Training batches as Transformer-XL wants them: B parallel token streams, cut into
consecutive segments so each stream's memory carries over from one batch to the next.

Every epoch the songs are shuffled and freshly augmented (seeded by ``seed`` and the epoch),
concatenated into one token stream (no padding) and split into ``batch_size × world_size``
equal rows; a process of a data-parallel job takes its own ``batch_size`` rows. The position
(epoch, segment) is the whole iterator state, so a checkpoint resumes it exactly.
"""

from __future__ import annotations

import numpy as np

from lakhnes.augment import AugmentConfig, augment_ids
from lakhnes.datasets import Split
from lakhnes.errors import InvalidInputError


class SongStreams:
    """Iterate ``(x, y)`` int64 arrays of shape [batch_size, tgt_len]; y is x shifted by one."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        tgt_len: int,
        *,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if len(split) == 0:
            raise InvalidInputError("no songs to train on")
        self.split, self.batch_size, self.tgt_len = split, batch_size, tgt_len
        self.seed, self.augment, self.shuffle = seed, augment, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.segment = 0, 0
        self._cache: tuple[int, np.ndarray] | None = None

    # ------------------------------------------------------------------ epoch layout
    def epoch_order(self, epoch: int) -> np.ndarray:
        n = len(self.split)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """This process' rows of the epoch's token stream: [batch_size, row_len] int64."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        songs = []
        for k in self.epoch_order(epoch):
            ids = self.split.song(int(k))
            if self.augment is not None and self.augment.active:
                ids = augment_ids(ids, np.random.default_rng([self.seed, epoch, int(k)]), self.augment)
            songs.append(ids)
        stream = np.concatenate(songs).astype(np.int64)
        n_rows = self.batch_size * self.world_size
        row_len = len(stream) // n_rows
        if row_len < self.tgt_len + 1:
            raise InvalidInputError(
                f"too little data: {len(stream)} tokens cannot fill {n_rows} streams of {self.tgt_len + 1}"
            )
        rows = stream[: n_rows * row_len].reshape(n_rows, row_len)
        rows = rows[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        self._cache = (epoch, rows)
        return rows

    def segments_per_epoch(self, epoch: int | None = None) -> int:
        rows = self.epoch_rows(self.epoch if epoch is None else epoch)
        return (rows.shape[1] - 1) // self.tgt_len

    # ------------------------------------------------------------------ iteration
    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next segment (moves to the next epoch when this one is used up)."""
        if self.segment >= self.segments_per_epoch():
            self.epoch, self.segment = self.epoch + 1, 0
        rows = self.epoch_rows(self.epoch)
        a = self.segment * self.tgt_len
        self.segment += 1
        return rows[:, a : a + self.tgt_len], rows[:, a + 1 : a + 1 + self.tgt_len]

    def __iter__(self):
        while True:
            yield self.next_batch()

    def one_pass(self, max_segments: int | None = None):
        """The segments of the current epoch once, from the start, the last one possibly
        shorter (for evaluation: every token but each row's first is a target once)."""
        rows = self.epoch_rows(self.epoch)
        n = -(-(rows.shape[1] - 1) // self.tgt_len)
        for s in range(n if max_segments is None else min(n, max_segments)):
            a = s * self.tgt_len
            yield rows[:, a : a + self.tgt_len], rows[:, a + 1 : a + 1 + self.tgt_len]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "segment": self.segment, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.segment = int(state["epoch"]), int(state["segment"])
