"""Run a per-file conversion over many files in parallel, collecting failures as one-liners."""

from __future__ import annotations

import os
import sys
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


def die_with_parent(parent: int) -> None:
    """A worker's initializer: the worker ends when its parent does (killed with -9 too), instead of
    going on writing files. On Linux the kernel sends SIGTERM (``prctl(PR_SET_PDEATHSIG)``); elsewhere,
    and for a parent that died before this ran, a watcher thread checks ``os.getppid()`` every second."""
    import signal
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent is gone already
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="lakhnes-parent-watch", daemon=True).start()


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
            with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
                chunk = max(1, min(256, len(items) // (workers * 8)))
                for out in pool.map(_safe, [(func, it) for it in items], chunksize=chunk):
                    yield out
                    if bar:
                        bar.update()
    finally:
        if bar:
            bar.close()
