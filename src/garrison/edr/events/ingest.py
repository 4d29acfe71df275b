"""Ingest of agent telemetry: a group-committing writer in front of the event store.

Request threads :meth:`EventWriter.submit` a batch and wait; one writer thread takes everything
queued, stores it in ONE engine write (one DuckDB transaction: the rows and their ledger rows) and
then answers every waiter. So an agent's batch is acknowledged only once it is durable, and a
thousand agents cost one commit, not a thousand. A batch that makes the combined write fail is
retried alone, so one bad batch fails only its own request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import Future

from garrison.edr.events.store import BatchIn, EventStore, Stored

log = logging.getLogger("garrison.events")
MAX_GROUP_EVENTS = 200_000
MAX_PENDING_EVENTS = 1_000_000
PRUNE_EVERY = 3600.0


class WriterBusy(RuntimeError):
    """More events are waiting than the writer keeps in memory: the sender should retry later."""


class EventWriter:
    def __init__(self, store: EventStore, max_pending: int = MAX_PENDING_EVENTS) -> None:
        self.store = store
        self.max_pending = max_pending
        self._queue: list[tuple[BatchIn, Future[Stored]]] = []
        self._pending = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_prune = time.monotonic()
        self.stored_events = 0

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="garrison-events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, batch: BatchIn) -> Future[Stored]:
        fut: Future[Stored] = Future()
        with self._cond:
            if self._pending + len(batch.events) > self.max_pending and self._queue:
                raise WriterBusy(f"{self._pending} events are waiting to be stored")
            self._queue.append((batch, fut))
            self._pending += len(batch.events)
            self._cond.notify()
        if self._thread is None:  # not started (a one-shot import, a test): store it here
            self._drain_once()
        return fut

    def _take(self) -> list[tuple[BatchIn, Future[Stored]]]:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait(timeout=1.0)
                if not self._queue and time.monotonic() - self._last_prune > PRUNE_EVERY:
                    return []
            taken: list[tuple[BatchIn, Future[Stored]]] = []
            n = 0
            while self._queue and (not taken or n + len(self._queue[0][0].events) <= MAX_GROUP_EVENTS):
                item = self._queue.pop(0)
                taken.append(item)
                n += len(item[0].events)
            self._pending -= n
            return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop and not self._queue:
                    return
            self._drain_once()
            if time.monotonic() - self._last_prune > PRUNE_EVERY:
                self._last_prune = time.monotonic()
                try:
                    self.store.prune(dt.datetime.now(dt.UTC))
                except Exception:
                    log.exception("event retention pass failed")

    def _drain_once(self) -> None:
        taken = self._take()
        if not taken:
            return
        try:
            results = self.store.write([b for b, _ in taken])
        except Exception as exc:
            if len(taken) == 1:
                log.exception("storing an event batch failed")
                taken[0][1].set_exception(exc)
                return
            for batch, fut in taken:  # find the one that fails; the others are stored
                try:
                    res = self.store.write([batch])[0]
                except Exception as one:
                    log.exception("storing an event batch failed")
                    fut.set_exception(one)
                else:
                    self.stored_events += res.stored
                    fut.set_result(res)
            return
        for (_, fut), res in zip(taken, results, strict=True):
            self.stored_events += res.stored
            fut.set_result(res)
