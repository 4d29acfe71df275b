"""The DuckDB engine: one file in the data directory, owned by one process (DuckDB allows one writing
process). In the server that process is the API server itself: its writer thread appends, its request
threads read through cursors of the same database (MVCC: readers see committed batches only)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from garrison.edr.events import schema
from garrison.edr.events.store import ENGINES, EventStoreError
from garrison.protocol.events import TABLES

# DuckDB speaks PostgreSQL's SQL for everything the store builds; $1-style parameters.
_DIALECT = postgresql.psycopg.dialect(paramstyle="numeric_dollar")


def compile_statement(stmt: sa.Executable) -> tuple[str, list[Any]]:
    compiled: Any = cast(sa.ClauseElement, stmt).compile(dialect=_DIALECT)
    state = compiled.construct_expanded_state()
    return state.statement, [state.parameters[k] for k in (state.positiontup or ())]


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, path: str | Path, memory_limit: str = "2GB", threads: int = 2) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(self.path, config={"memory_limit": memory_limit, "threads": threads})
        except duckdb.IOException as exc:
            raise EventStoreError(
                f"cannot open the event store {self.path}: {exc}. Another process (the server?) owns it; "
                "stop it, or send the events through the server's API") from None
        self._writer = self._db.cursor()
        self._lock = threading.Lock()

    def setup(self, retention_days: int) -> None:
        for ddl in schema.ddl_duckdb():
            self._writer.execute(ddl)

    def query(self, stmt: sa.Executable, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """Run a read; ``timeout_s``: interrupt it after that long (EventStoreError)."""
        sql, params = compile_statement(stmt)
        cur = self._db.cursor()
        timer = threading.Timer(timeout_s, cur.interrupt) if timeout_s else None
        try:
            if timer:
                timer.start()
            cur.execute(sql, params)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except duckdb.InterruptException:
            raise EventStoreError(f"the query ran longer than {timeout_s:g} s and was stopped") from None
        finally:
            if timer:
                timer.cancel()
            cur.close()

    def stored_keys(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        probe = pa.table({"d": [k[0] for k in keys], "s": pa.array([k[1] for k in keys], pa.int64())})
        with self._lock:
            self._writer.register("_probe", probe)
            try:
                rows = self._writer.execute('SELECT b."DeviceId", b."Seq" FROM "EventBatches" b '
                                            'JOIN _probe p ON b."DeviceId" = p.d AND b."Seq" = p.s').fetchall()
            finally:
                self._writer.unregister("_probe")
        return {(r[0], r[1]) for r in rows}

    def min_seq(self, device_id: str) -> int:
        with self._lock:
            row = self._writer.execute('SELECT min("Seq") FROM "EventBatches" WHERE "DeviceId" = ?',
                                       [device_id]).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def insert(self, tables: dict[str, pa.Table], batches: pa.Table) -> None:
        """All of it in one transaction: the events and their ledger rows, or nothing."""
        with self._lock:
            cur = self._writer
            cur.begin()
            try:
                for name, data in tables.items():
                    if name not in TABLES:
                        raise ValueError(name)
                    cur.register("_in", data)
                    cur.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _in')
                    cur.unregister("_in")
                cur.register("_in", batches)
                cur.execute('INSERT INTO "EventBatches" BY NAME SELECT * FROM _in')
                cur.unregister("_in")
                cur.commit()
            except BaseException:
                cur.rollback()
                raise

    def prune(self, before: dt.datetime) -> int:
        cut = before.astimezone(dt.UTC).replace(tzinfo=None)
        gone = 0
        with self._lock:
            for name in TABLES:
                row = self._writer.execute(f'DELETE FROM "{name}" WHERE "Timestamp" < ?', [cut]).fetchone()
                gone += int(row[0]) if row else 0
            self._writer.execute('DELETE FROM "EventBatches" WHERE "ReceivedAt" < ?', [cut])
        return gone

    def checkpoint(self) -> None:
        with self._lock:
            self._writer.execute("CHECKPOINT")

    def close(self) -> None:
        with self._lock:
            self._writer.close()
            self._db.close()


def open_duckdb(url: str) -> DuckDBEngine:
    """``duckdb:///path/events.duckdb`` or ``duckdb:///:memory:``."""
    path = url[len("duckdb:///"):] if url.startswith("duckdb:///") else urlparse(url).path
    return DuckDBEngine(path or ":memory:")


ENGINES.add("duckdb", open_duckdb)
