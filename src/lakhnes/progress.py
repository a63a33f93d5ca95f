"""Progress bars: tqdm when it is installed, else a silent stand-in with the same few methods.

The training, evaluation and model code import this instead of tqdm, so they run where tqdm
is missing (a GPU machine's image, say); messages passed to ``write`` are printed either way.
"""

from __future__ import annotations

import sys
import time


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Silent:
    """What the loops use of a tqdm bar: iteration, update, set_postfix, write, close."""

    def __init__(self, iterable=None, **_):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def write(self, msg, *args, **kwargs):
        print(msg, flush=True)

    def close(self):
        pass


class _Lines(_Silent):
    """A bar for a log file: a plain line on stderr at most every ``every`` seconds (``desc: 120/900
    seg (13%), 1.2 min, about 7.9 min left``) and one at the end."""

    def __init__(self, iterable=None, *, desc="progress", unit="it", total=None, every: float = 30.0, initial=0,
                 **_):
        super().__init__(iterable)
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.desc, self.unit, self.total, self.every, self.n = desc, unit, total, float(every), int(initial or 0)
        self.start = self.last = time.monotonic()
        self.first = self.n

    def __iter__(self):
        for x in super().__iter__():
            yield x
            self.update()
        self.close()

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def _line(self, now) -> None:
        spent = now - self.start
        msg = f"{self.desc}: {self.n}"
        if self.total:
            msg += f"/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%), {spent / 60:.1f} min"
            done = self.n - self.first
            if 0 < done and self.n < self.total:
                msg += f", about {spent / done * (self.total - self.n) / 60:.1f} min left"
        else:
            msg += f" {self.unit}, {spent / 60:.1f} min"
        print(msg, file=sys.stderr, flush=True)

    def close(self):
        if self.n > self.first:
            self._line(time.monotonic())
            self.first = self.n


def progress_bar(iterable=None, *, plain: bool = False, every: float = 30.0, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, or a silent bar when tqdm is not installed. With
    ``plain``, a bar left to decide (``disable=None``) prints plain lines every ``every`` seconds when
    stderr is not a terminal (a log file), where tqdm would print nothing."""
    if plain and kwargs.get("disable", False) is None and not _tty():
        return _Lines(iterable, every=every, **{k: v for k, v in kwargs.items() if k != "disable"})
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent(iterable, **kwargs)
    return tqdm(iterable, **kwargs)
