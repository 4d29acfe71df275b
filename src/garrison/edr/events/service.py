"""The event store of a running server: opened on first use, with its writer thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from garrison.edr.events import open_event_store
from garrison.edr.events.ingest import EventWriter
from garrison.edr.events.store import EventStore


class EventService:
    def __init__(self, url: str, retention_days: int, hunting_days: int) -> None:
        self.url = url
        self.retention_days = retention_days
        self.hunting_days = hunting_days
        self._store: EventStore | None = None
        self._writer: EventWriter | None = None
        self._lock = threading.Lock()
        # added to the store's listeners when it opens (the detection engine: garrison.server.api.alerts)
        self.listeners: list[Callable[[Mapping[str, Sequence[dict[str, Any]]]], None]] = []

    @property
    def store(self) -> EventStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    store = open_event_store(self.url, self.retention_days, self.hunting_days)
                    store.listeners.extend(self.listeners)
                    self._store = store
        return self._store

    @property
    def writer(self) -> EventWriter:
        if self._writer is None:
            store = self.store
            with self._lock:
                if self._writer is None:
                    writer = EventWriter(store)
                    writer.start()
                    self._writer = writer
        return self._writer

    @property
    def running_writer(self) -> EventWriter | None:
        """The writer when one runs (never starts one)."""
        return self._writer

    @property
    def opened(self) -> bool:
        return self._store is not None

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
            if self._store is not None:
                self._store.close()
                self._store = None
