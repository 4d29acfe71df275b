"""Background jobs: registered by the services, run by the server (or ``garrison worker``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from garrison.store.db import Store

log = logging.getLogger("garrison.jobs")


@dataclass
class Job:
    name: str
    interval: float  # seconds
    run: Callable[[Store], None]


JOBS: dict[str, Job] = {}


def register_job(name: str, interval: float) -> Callable[[Callable[[Store], None]], Callable[[Store], None]]:
    def deco(fn: Callable[[Store], None]) -> Callable[[Store], None]:
        JOBS[name] = Job(name, interval, fn)
        return fn

    return deco


class JobRunner:
    """One thread that runs every job when due; a failing job is logged and retried next time."""

    def __init__(self, store: Store, tick: float = 1.0) -> None:
        self.store, self.tick = store, tick
        self._stop = threading.Event()
        self._next: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="garrison-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def run_due(self) -> None:
        now = time.monotonic()
        for job in list(JOBS.values()):
            if self._stop.is_set():
                return
            if self._next.get(job.name, 0) <= now:
                try:
                    job.run(self.store)
                except Exception:
                    log.exception("job %s failed", job.name)
                self._next[job.name] = time.monotonic() + job.interval

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.run_due()
