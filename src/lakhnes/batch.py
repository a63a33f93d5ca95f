"""Run a per-file conversion over many files in parallel, collecting failures as one-liners."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

from lakhnes.errors import InvalidInputError

#: Fewer items than this run in this process (starting workers would cost more than it saves).
MIN_PARALLEL = 64


def _safe(job):
    func, item = job
    try:
        return item, func(item), None
    except InvalidInputError as e:
        return item, None, str(e.with_path(item[0] if isinstance(item, tuple) else item))
    except Exception as e:  # an unexpected failure on one file must not stop the batch
        where = item[0] if isinstance(item, tuple) else item
        return item, None, f"{where}: {type(e).__name__}: {e}".splitlines()[0]


def run_batch(func: Callable, items: Iterable, workers: int | None = None, progress: bool = True,
              desc: str = "files"):
    """Yield ``(item, result, error)`` for each item in input order; ``error`` is ``"path: reason"``.

    ``func`` must be a picklable top-level function when ``workers > 1``.
    """
    items = list(items)
    workers = workers or min(os.cpu_count() or 1, 8)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="file", leave=False, disable=None)
    try:
        if workers <= 1 or len(items) < MIN_PARALLEL:
            for it in items:
                yield _safe((func, it))
                if bar:
                    bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                chunk = max(1, min(256, len(items) // (workers * 8)))
                for out in pool.map(_safe, [(func, it) for it in items], chunksize=chunk):
                    yield out
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()
