"""Behaviour telemetry: the event store (DuckDB | ClickHouse), ingest, Windows log import, timeline."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from garrison.edr.events.store import (
    DEFAULT_HUNTING_DAYS,
    DEFAULT_RETENTION_DAYS,
    ENGINES,
    BatchIn,
    EventScope,
    EventStore,
    EventStoreError,
    Stored,
)

__all__ = ["BatchIn", "EventScope", "EventStore", "EventStoreError", "Stored", "default_url", "open_event_store"]


def default_url(data_dir: str | Path) -> str:
    return f"duckdb:///{Path(data_dir).expanduser().resolve() / 'events.duckdb'}"


def open_event_store(url: str, retention_days: int = DEFAULT_RETENTION_DAYS,
                     hunting_days: int = DEFAULT_HUNTING_DAYS) -> EventStore:
    """``duckdb:///path/events.duckdb`` (default), ``duckdb:///:memory:``, ``clickhouse://user:pw@host:8123/db``
    (the HTTP interface) or ``chdb:///path`` (ClickHouse's engine embedded, for tests and one-box trials)."""
    opener = ENGINES.get(urlparse(url).scheme)
    if opener is None:
        raise EventStoreError(f"unsupported event store URL {url!r} (schemes: {', '.join(ENGINES)})")
    return EventStore(opener(url), retention_days, hunting_days)
