"""The studio's job queue: one worker thread runs jobs one at a time, in order.

A job is a call ``run(job, report)`` made off the request thread; ``report(progress, stage)``
updates what ``GET /api/jobs/{id}`` shows. Finished jobs are kept (newest ``keep``) so a
page can still ask for them.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakhnes.errors import InvalidInputError


class QueueFull(Exception):
    """Too many jobs are waiting."""


@dataclass
class Job:
    id: str
    mode: str
    params: dict
    payload: Any = None  # the uploaded score, if any (not shown)
    source: str | None = None  # the uploaded file's name
    status: str = "queued"  # queued, running, done, failed
    stage: str = "waiting"
    progress: float = 0.0
    error: str | None = None
    songs: list = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def public(self, position: int = 0) -> dict:
        return {
            "id": self.id, "mode": self.mode, "params": self.params, "source": self.source,
            "status": self.status, "stage": self.stage, "progress": round(self.progress, 4),
            "position": position, "error": self.error, "songs": self.songs,
        }


class JobQueue:
    """A FIFO of jobs served by one daemon worker thread."""

    def __init__(self, run: Callable[[Job, Callable[[float, str], None]], list], max_waiting: int = 16,
                 keep: int = 200):
        self._run = run
        self._queue: queue.Queue = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._waiting: list[str] = []
        self._lock = threading.Lock()
        self.max_waiting = max_waiting
        self.keep = keep
        self._worker = threading.Thread(target=self._work, name="lakhnes-studio-worker", daemon=True)
        self._worker.start()

    def submit(self, mode: str, params: dict, payload=None, source: str | None = None) -> Job:
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} jobs are already waiting; try again later")
            job = Job(uuid.uuid4().hex[:12], mode, params, payload, source)
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._forget_old()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run before this one (0 when it runs now or has finished)."""
        with self._lock:
            return self._waiting.index(job.id) + 1 if job.id in self._waiting else 0

    def public(self, job: Job) -> dict:
        return job.public(self.position(job))

    def join(self, timeout: float | None = None) -> None:
        """Wait until every submitted job has finished (for scripts and tests)."""
        end = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if end is not None and time.monotonic() > end:
                raise TimeoutError("jobs still running")
            time.sleep(0.02)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            with self._lock:
                self._waiting.remove(job.id)
                job.status, job.stage = "running", "starting"

            def report(progress: float, stage: str | None = None, job=job) -> None:
                job.progress = min(1.0, max(job.progress, float(progress)))
                if stage:
                    job.stage = stage

            try:
                job.songs = self._run(job, report)
                job.status, job.stage, job.progress = "done", "done", 1.0
            except InvalidInputError as e:
                job.status, job.error = "failed", str(e)
            except Exception as e:  # a failed job must not stop the worker
                job.status, job.error = "failed", f"{type(e).__name__}: {e}".splitlines()[0]
                traceback.print_exc()
            finally:
                job.payload = None
                job.finished = time.time()
                self._queue.task_done()

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.finished is not None]
        for j in sorted(done, key=lambda j: j.finished)[: max(0, len(done) - self.keep)]:
            del self._jobs[j.id]
