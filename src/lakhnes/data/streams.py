"""Training batches as Transformer-XL wants them: B parallel token streams, cut into
consecutive segments so each stream's memory carries over from one batch to the next.

Every epoch the songs are shuffled and freshly augmented (seeded by ``seed`` and the epoch),
concatenated into one token stream (no padding) and split into ``batch_size × world_size``
equal rows; a process of a data-parallel job takes its own ``batch_size`` rows. The position
(epoch, segment) is the whole iterator state, so a checkpoint resumes it exactly.

With ``prefetch``, the next epoch's rows (the augmentation of every song: seconds of numpy)
are built in a helper process while this one is used, so a GPU does not wait for them; the
rows are the same either way.
"""

from __future__ import annotations

import weakref

import numpy as np

from lakhnes.data.augment import AugmentConfig, augment_ids
from lakhnes.data.shards import Split
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
        prefetch: bool = False,
    ):
        if len(split) == 0:
            raise InvalidInputError("no songs to train on")
        self.split, self.batch_size, self.tgt_len = split, batch_size, tgt_len
        self.seed, self.augment, self.shuffle = seed, augment, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.segment = 0, 0
        self._cache: tuple[int, np.ndarray] | None = None
        self.prefetch = prefetch
        self._prefetcher: _Prefetcher | None = None

    # ------------------------------------------------------------------ epoch layout
    def epoch_order(self, epoch: int) -> np.ndarray:
        return _epoch_order(len(self.split), self.seed, epoch, self.shuffle)

    def _layout(self) -> dict:
        return dict(seed=self.seed, augment=self.augment, shuffle=self.shuffle, batch_size=self.batch_size,
                    world_size=self.world_size, rank=self.rank, tgt_len=self.tgt_len)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """This process' rows of the epoch's token stream: [batch_size, row_len] int64."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rows = self._prefetcher.get(epoch) if self._prefetcher is not None else None
        if rows is None:
            rows = _epoch_rows(self.split, epoch, **self._layout())
        self._cache = (epoch, rows.astype(np.int64, copy=False))
        if self.prefetch:
            if self._prefetcher is None:
                self._prefetcher = _Prefetcher(self.split, self._layout())
                weakref.finalize(self, self._prefetcher.close)
            self._prefetcher.submit(epoch + 1)
        return self._cache[1]

    def close(self) -> None:
        """Stop the prefetching helper process, if any."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

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


# ---------------------------------------------------------------------- epoch layout (pure)


def _epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def _epoch_rows(split: Split, epoch: int, *, seed: int, augment: AugmentConfig | None, shuffle: bool,
                batch_size: int, world_size: int, rank: int, tgt_len: int) -> np.ndarray:
    """The rows of ``SongStreams.epoch_rows``, as a function of the split, the epoch and the layout."""
    songs = []
    for k in _epoch_order(len(split), seed, epoch, shuffle):
        ids = split.song(int(k))
        if augment is not None and augment.active:
            ids = augment_ids(ids, np.random.default_rng([seed, epoch, int(k)]), augment)
        songs.append(ids)
    stream = np.concatenate(songs).astype(np.int64)
    n_rows = batch_size * world_size
    row_len = len(stream) // n_rows
    if row_len < tgt_len + 1:
        raise InvalidInputError(f"too little data: {len(stream)} tokens cannot fill {n_rows} streams of {tgt_len + 1}")
    rows = stream[: n_rows * row_len].reshape(n_rows, row_len)
    return rows[rank * batch_size : (rank + 1) * batch_size]


class _Prefetcher:
    """One helper process that builds an epoch's rows on request. If it dies (killed with its
    process group, say), ``get`` returns None and the caller builds the rows itself."""

    def __init__(self, split: Split, layout: dict):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a clean child: no copy of the parent's threads or CUDA state
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_prefetch_loop, args=(child,), daemon=True, name="lakhnes-prefetch")
        self.proc.start()
        child.close()
        self.pending: int | None = None
        try:  # the data goes through the pipe, not the start arguments: a child that fails to start
            self.conn.send((split, layout))  # then breaks the pipe instead of blocking the start
            self.alive = True
        except (OSError, ValueError):
            self.alive = False

    def submit(self, epoch: int) -> None:
        if not self.alive:
            return

        try:
            self.conn.send(epoch)
            self.pending = epoch
        except (OSError, ValueError):  # the helper is gone
            self.pending = None

    def get(self, epoch: int) -> np.ndarray | None:
        if self.pending != epoch:
            return None
        self.pending = None
        try:
            out = self.conn.recv()
        except (EOFError, OSError):
            return None
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


def _prefetch_loop(conn) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the training process; it stops us
    try:
        split, layout = conn.recv()
    except (EOFError, OSError):
        return
    while True:
        try:
            epoch = conn.recv()
        except (EOFError, OSError):
            return
        try:
            out = _epoch_rows(split, epoch, **layout).astype(np.uint16)  # ids < 65536: exact, 1/4 the bytes
        except Exception as e:  # raised again in the training process, where the rows are needed
            out = e
        conn.send(out)
