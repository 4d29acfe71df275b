"""Background jobs: registered by the services, run by the server (or ``garrison worker``).

Every job is a :class:`Job` in ``JOBS``: per tenant (``tenant_job``, run by :func:`for_each_tenant`) or
over the whole system (``system_job``); both under a cross-process lock and a time budget. Jobs run
concurrently unless one declares a conflict with the other."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, text

from garrison.registry import Registry
from garrison.store.db import Store
from garrison.store.models.core import Tenant

log = logging.getLogger("garrison.jobs")


SYSTEM = 0
"""The lock id of a job that works on the whole system (not per tenant): no tenant has id 0."""


@dataclass(frozen=True)
class Job:
    """A scheduled job. ``per_tenant``: ``fn(store, tenant_id)`` run by :func:`for_each_tenant`; else
    ``fn(store)`` once for the whole system, under the same cross-process lock (tenant id 0).
    ``conflicts``: names of jobs that must never run at the same time as this one (either side may
    declare it); every other pair of jobs may run concurrently. ``budget``: no tenant is started after
    this many seconds (the rest wait for the next run)."""

    name: str
    interval: float  # seconds
    fn: Callable[..., None]
    per_tenant: bool = True
    conflicts: frozenset[str] = frozenset()
    budget: float = 600.0

    def conflicts_with(self, other: Job) -> bool:
        return other.name in self.conflicts or self.name in other.conflicts

    def locks(self, jobs: Mapping[str, Job] | None = None) -> list[str]:
        """The lock names this job takes per tenant: its own, and one per conflicting pair (so two
        conflicting jobs exclude each other in any process, and jobs that share no pair never wait).
        ``jobs``: where to look for jobs that declared a conflict with this one (default ``JOBS``)."""
        others = set(self.conflicts) | {j.name for j in (JOBS if jobs is None else jobs).values()
                                        if self.name in j.conflicts}
        return [self.name, *(f"conflict:{'|'.join(sorted((self.name, o)))}" for o in sorted(others))]

    def run(self, store: Store, jobs: Mapping[str, Job] | None = None) -> TenantPass:
        locks = self.locks(jobs)
        if self.per_tenant:
            return for_each_tenant(store, self.name, self.fn, budget=self.budget, locks=locks)
        out = TenantPass()
        with tenant_locks(store, locks, SYSTEM) as got:
            if not got:
                out.busy.append(SYSTEM)
            else:
                self.fn(store)
                out.done.append(SYSTEM)
        return out


JOBS: Registry[Job] = Registry("job", name_of=lambda j: j.name)
"""Registered by the service modules (the server discovers them: ``garrison.server.runner.load_services``)."""


def tenant_job(name: str, interval: float, *, conflicts: tuple[str, ...] = (), budget: float = 600.0,
               ) -> Callable[[Callable[[Store, int], None]], Callable[[Store, int], None]]:
    """Register ``fn(store, tenant_id)`` as a job run for each tenant (:func:`for_each_tenant`)."""
    def deco(fn: Callable[[Store, int], None]) -> Callable[[Store, int], None]:
        JOBS.register(Job(name, interval, fn, True, frozenset(conflicts), budget))
        return fn

    return deco


def system_job(name: str, interval: float, *, conflicts: tuple[str, ...] = (),
               ) -> Callable[[Callable[[Store], None]], Callable[[Store], None]]:
    """Register ``fn(store)`` as a job over the whole system (knowledge base, database upkeep)."""
    def deco(fn: Callable[[Store], None]) -> Callable[[Store], None]:
        JOBS.register(Job(name, interval, fn, False, frozenset(conflicts)))
        return fn

    return deco


class JobRunner:
    """Runs every job when due, each in a thread of a pool: jobs run concurrently except those that
    conflict (a due job waits while a conflicting one runs here; other processes are kept apart by the
    jobs' locks). A failing job is logged and retried at its next interval."""

    def __init__(self, store: Store, tick: float = 1.0, workers: int = 4, jobs: Mapping[str, Job] | None = None) -> None:
        self.store, self.tick = store, tick
        self.jobs: Mapping[str, Job] = JOBS if jobs is None else jobs
        self._stop = threading.Event()
        self._next: dict[str, float] = {}
        self._running: dict[str, Future[TenantPass]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="garrison-job")
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="garrison-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.wait(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run_due(self) -> list[str]:
        """Start the jobs that are due and conflict with none running; returns their names."""
        for name, fut in list(self._running.items()):
            if fut.done():
                del self._running[name]
        started = []
        now = time.monotonic()
        for job in self.jobs.values():
            if self._stop.is_set():
                break
            if job.name in self._running or self._next.get(job.name, 0) > now:
                continue
            if any(job.conflicts_with(self.jobs[r]) for r in self._running):
                continue  # due: starts once the conflicting job is done
            self._running[job.name] = self._pool.submit(self._run, job)
            started.append(job.name)
        return started

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running jobs (tests, shutdown)."""
        futures_wait(list(self._running.values()), timeout=timeout)

    def _run(self, job: Job) -> TenantPass:
        try:
            return job.run(self.store, self.jobs)
        except Exception:
            log.exception("job %s failed", job.name)
            return TenantPass()
        finally:
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
    with tenant_locks(store, [name], tenant_id) as got:
        yield got


@contextlib.contextmanager
def tenant_locks(store: Store, names: list[str], tenant_id: int) -> Iterator[bool]:
    """:func:`tenant_lock` on several names at once: all taken, or none (yields False)."""
    if store.dialect == "postgresql":
        with store.system() as s:
            taken: list[int] = []
            try:
                for name in names:
                    key = _lock_key(name, tenant_id)
                    if not s.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                        break
                    taken.append(key)
                yield len(taken) == len(names)
            finally:
                for key in reversed(taken):
                    s.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    database = store.engine.url.database or ""
    base = Path(database) if database and database != ":memory:" else Path("/tmp/garrison-memory-db")
    with contextlib.ExitStack() as stack:
        for name in names:
            path = base.with_name(f"{base.name}.job-{hashlib.sha256(name.encode()).hexdigest()[:16]}-{tenant_id}.lock")
            fh = stack.enter_context(path.open("a"))
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                break
            stack.callback(fcntl.flock, fh, fcntl.LOCK_UN)
        else:
            yield True
            return
        yield False


def for_each_tenant(store: Store, name: str, fn: Callable[[Store, int], None], *, budget: float,
                    locks: list[str] | None = None) -> TenantPass:
    """Run ``fn(store, tenant_id)`` for every tenant, each under :func:`tenant_locks` (``locks``, default
    ``[name]``: a tenant another worker is already doing is skipped, not waited for), one failing tenant
    logged without stopping the others, and no tenant started after ``budget`` seconds (the rest wait
    for the next run)."""
    with store.system() as s:
        tenants = list(s.scalars(select(Tenant.id).order_by(Tenant.id)))
    out = TenantPass()
    deadline = time.monotonic() + budget
    for i, tenant_id in enumerate(tenants):
        if time.monotonic() >= deadline:
            out.deferred = tenants[i:]
            break
        with tenant_locks(store, locks or [name], tenant_id) as got:
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
