"""Background jobs: registered by the services, run by the server (or ``garrison worker``)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, text

from garrison.store.db import Store
from garrison.store.models.core import Tenant

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


@dataclass
class TenantPass:
    """What :func:`for_each_tenant` did: tenants done, skipped (another process held their lock),
    failed (logged) and deferred (the time budget ran out before their turn)."""

    done: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)


def _lock_key(name: str, tenant_id: int) -> int:
    digest = hashlib.sha256(f"{name}:{tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def tenant_lock(store: Store, name: str, tenant_id: int) -> Iterator[bool]:
    """A lock on (job, tenant) across processes and threads, not waited for: yields whether it was
    taken. PostgreSQL: a session advisory lock (released with its connection if the holder dies);
    SQLite: ``flock`` on a file beside the database (one host, like the database)."""
    if store.dialect == "postgresql":
        with store.system() as s:
            key = _lock_key(name, tenant_id)
            got = bool(s.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            try:
                yield got
            finally:
                if got:
                    s.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    database = store.engine.url.database or ""
    base = Path(database) if database and database != ":memory:" else Path("/tmp/garrison-memory-db")
    path = base.with_name(f"{base.name}.job-{hashlib.sha256(name.encode()).hexdigest()[:16]}-{tenant_id}.lock")
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def for_each_tenant(store: Store, name: str, fn: Callable[[Store, int], None], *, budget: float) -> TenantPass:
    """Run ``fn(store, tenant_id)`` for every tenant, each under :func:`tenant_lock` (a tenant another
    worker is already doing is skipped, not waited for), one failing tenant logged without stopping
    the others, and no tenant started after ``budget`` seconds (the rest wait for the next run)."""
    with store.system() as s:
        tenants = list(s.scalars(select(Tenant.id).order_by(Tenant.id)))
    out = TenantPass()
    deadline = time.monotonic() + budget
    for i, tenant_id in enumerate(tenants):
        if time.monotonic() >= deadline:
            out.deferred = tenants[i:]
            break
        with tenant_lock(store, name, tenant_id) as got:
            if not got:
                out.busy.append(tenant_id)
                continue
            try:
                fn(store, tenant_id)
                out.done.append(tenant_id)
            except Exception:
                log.exception("job %s failed for tenant %s", name, tenant_id)
                out.failed.append(tenant_id)
    return out
