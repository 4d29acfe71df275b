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
        # When each device's last agent batch was stored (the heartbeat flush's NoSensorData rule asks
        # every 2 s): kept here as batches are written, seeded once per tenant from the store's ledger.
        self._received: dict[tuple[int, str], dt.datetime] = {}  # (tenant, device) -> time
        self._seeded: set[int] = set()
        self._received_lock = threading.Lock()

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

    def last_received(self, tenant_id: int, device_ids: list[str]) -> dict[str, dt.datetime]:
        """When each of ``device_ids`` (of ``tenant_id``) last had an agent batch stored; a device that
        never had one is absent. Read from the store once per tenant (after a restart), then from memory."""
        with self._received_lock:
            seeded = tenant_id in self._seeded
        if not seeded:
            stats = self.store.scope(tenant_id, None).sensor_stats(dt.datetime.now(dt.UTC))
            stored = {d: _utc(st["lastReceived"]) for d, st in stats.items() if st.get("lastReceived") is not None}
            with self._received_lock:
                for d, at in stored.items():  # a batch written meanwhile is newer than the ledger read
                    self._newer((tenant_id, d), at)
                self._seeded.add(tenant_id)
        with self._received_lock:
            return {d: self._received[(tenant_id, d)] for d in device_ids if (tenant_id, d) in self._received}

    def _newer(self, key: tuple[int, str], at: dt.datetime) -> None:
        if key not in self._received or self._received[key] < at:
            self._received[key] = at

    def _note_received(self, batches: list[BatchIn], results: list[Stored]) -> None:
        with self._received_lock:
            for b, res in zip(batches, results, strict=True):
                if b.seq > 0 and res.status == "accepted":
                    self._newer((b.tenant_id, b.device_id), _utc(b.received_at))

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
                    self._note_received([batch], [res])
                    self.stored_events += res.stored
                    fut.set_result(res)
            return
        self._note_received([b for b, _ in taken], results)
        for (_, fut), res in zip(taken, results, strict=True):
            self.stored_events += res.stored
            fut.set_result(res)


def _utc(value: dt.datetime) -> dt.datetime:
    """Engines store UTC without a zone."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
