"""Behaviour telemetry: the event store (DuckDB | ClickHouse), ingest, Windows log import, timeline."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from garrison.edr.events.store import (
    DEFAULT_HUNTING_DAYS,
    DEFAULT_RETENTION_DAYS,
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
    parsed = urlparse(url)
    if parsed.scheme == "duckdb":
        from garrison.edr.events.duck import DuckDBEngine

        path = url[len("duckdb:///"):] if url.startswith("duckdb:///") else parsed.path
        return EventStore(DuckDBEngine(path or ":memory:"), retention_days, hunting_days)
    if parsed.scheme in ("clickhouse", "chdb"):
        from garrison.edr.events.clickhouse import ClickHouseEngine

        return EventStore(ClickHouseEngine.from_url(url), retention_days, hunting_days)
    raise EventStoreError(f"unsupported event store URL {url!r} (duckdb:///…, clickhouse://…, chdb:///…)")
