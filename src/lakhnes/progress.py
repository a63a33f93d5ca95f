"""Progress bars: tqdm when it is installed, else a silent stand-in with the same few methods.

The training, evaluation and model code import this instead of tqdm, so they run where tqdm
is missing (a GPU machine's image, say); messages passed to ``write`` are printed either way.
"""

from __future__ import annotations


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


def progress_bar(iterable=None, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, or a silent bar when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent(iterable, **kwargs)
    return tqdm(iterable, **kwargs)
