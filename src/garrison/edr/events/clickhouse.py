"""The ClickHouse engine: MergeTree tables partitioned by day and ordered by (tenant, device, time), a TTL
for retention. Two transports run the same SQL: the HTTP interface of a ClickHouse server
(``clickhouse://user:password@host:8123/database``) and chdb, ClickHouse's engine embedded in this
process (``chdb:///path``) — the tests run the engine on the latter (docs/architecture.md says what
that does and does not prove).

Statements are the store's SQLAlchemy statements compiled for PostgreSQL (ClickHouse reads that SQL),
with every value passed as a typed query parameter (``{p:Int64}``), never spliced into the text.
ClickHouse has no multi-table transactions: rows are inserted table by table, then the ledger. A crash
in between leaves rows without their ledger row; the re-sent batch inserts them again with the same
``ReportId``s, and the tables (ReplacingMergeTree on … ReportId) keep one of each: reads use ``FINAL``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa
import sqlalchemy as sa
from pyarrow import ipc
from sqlalchemy.dialects import postgresql

from garrison.edr.events import schema
from garrison.edr.events.store import ENGINES, EventStoreError
from garrison.protocol.events import TABLES

_DIALECT = postgresql.psycopg2.dialect(paramstyle="pyformat")
_PARAM = re.compile(r"%\((\w+)\)s")
_NULL_CAST = re.compile(r"CAST\(NULL AS ([A-Z ]+)\)")
_CH_NAMES = {"VARCHAR": "String", "BIGINT": "Int64", "INTEGER": "Int32", "BOOLEAN": "Bool",
             "TIMESTAMP WITHOUT TIME ZONE": "DateTime64(6, 'UTC')"}
_FROM_TABLE = re.compile(r'FROM "(' + "|".join(TABLES) + r')"')


def _param_type(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "Bool", "true" if value else "false"
    if isinstance(value, int):
        return "Int64", str(value)
    if isinstance(value, float):
        return "Float64", repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return "DateTime64(6, 'UTC')", value.isoformat(sep=" ")
    if value is None:
        return "Nullable(String)", None
    # ClickHouse reads a parameter's text in its escaped format: a backslash, tab or newline must be escaped
    return "String", str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def compile_statement(stmt: sa.Executable) -> tuple[str, dict[str, Any]]:
    compiled: Any = cast(sa.ClauseElement, stmt).compile(dialect=_DIALECT)
    state = compiled.construct_expanded_state()
    params: dict[str, Any] = {}

    def placeholder(m: re.Match[str]) -> str:
        name = m.group(1)
        typ, text = _param_type(state.parameters[name])
        if text is None:
            return "NULL"
        params[name] = text
        return "{" + name + ":" + typ + "}"

    sql = _PARAM.sub(placeholder, state.statement)
    sql = _NULL_CAST.sub(lambda m: f"CAST(NULL AS Nullable({_CH_NAMES.get(m.group(1).strip(), 'String')}))", sql)
    sql = sql.replace(" ESCAPE '\\'", "")  # ClickHouse's LIKE escapes with a backslash already
    sql = _FROM_TABLE.sub(lambda m: f'FROM "{m.group(1)}" FINAL', sql)
    return sql, params


class Transport(Protocol):
    def run(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table: ...
    def insert(self, table: str, data: pa.Table, token: str = "") -> None: ...
    def close(self) -> None: ...


class ChdbTransport:
    """ClickHouse's engine in this process (chdb)."""

    def __init__(self, path: str) -> None:
        from chdb import session

        Path(path).mkdir(parents=True, exist_ok=True)
        self._session = session.Session(path)
        self._lock = threading.Lock()

    def run(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        with self._lock:
            try:
                res = self._session.query(sql, "ArrowTable", params=params or None)
            except Exception as exc:  # noqa: BLE001 (chdb raises plain RuntimeErrors and its own types)
                self._drain()
                raise EventStoreError(f"ClickHouse: {str(exc)[:500]}") from None
        return res if isinstance(res, pa.Table) else pa.table({})

    def _drain(self) -> None:
        """After a failed query (e.g. a timeout) chdb 4.4 answers the next Arrow query with the rest of the
        failed one's stream ("Invalid flatbuffers message"): one throw-away query clears it."""
        try:
            self._session.query("SELECT 1", "ArrowTable")
        except Exception:  # noqa: BLE001, S110 (that answer is the garbage being cleared)
            pass

    def insert(self, table: str, data: pa.Table, token: str = "") -> None:
        cols = ", ".join(f"`{c}`" for c in data.column_names)
        _in = data
        with self._lock:
            self._session.query(f"INSERT INTO `{table}` ({cols}) SELECT {cols} FROM Python(_in)")

    def close(self) -> None:
        with self._lock:
            self._session.close()


class HttpTransport:
    """A ClickHouse server over its HTTP interface (Arrow in and out)."""

    def __init__(self, base: str, database: str, user: str, password: str) -> None:
        import httpx

        self._client = httpx.Client(base_url=base, timeout=60.0,
                                    headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password})
        self.database = database

    def run(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        q = {"database": self.database, "default_format": "ArrowStream"}
        q.update({f"param_{k}": v for k, v in (params or {}).items()})
        r = self._client.post("/", params=q, content=sql.encode())
        if r.status_code != 200:
            raise EventStoreError(f"ClickHouse: {r.text[:500]}")
        if not r.content:
            return pa.table({})
        return ipc.open_stream(io.BytesIO(r.content)).read_all()

    def insert(self, table: str, data: pa.Table, token: str = "") -> None:
        sink = io.BytesIO()
        with ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        cols = ", ".join(f"`{c}`" for c in data.column_names)
        q = {"database": self.database, "query": f"INSERT INTO `{table}` ({cols}) FORMAT ArrowStream"}
        r = self._client.post("/", params=q, content=sink.getvalue())
        if r.status_code != 200:
            raise EventStoreError(f"ClickHouse insert: {r.text[:500]}")

    def close(self) -> None:
        self._client.close()


class ClickHouseEngine:
    name = "clickhouse"

    def __init__(self, transport: Transport) -> None:
        self.t = transport

    @classmethod
    def from_url(cls, url: str) -> ClickHouseEngine:
        p = urlparse(url)
        if p.scheme == "chdb":
            return cls(ChdbTransport(unquote(p.path) or "/tmp/garrison-chdb"))
        secure = parse_qs(p.query).get("secure", ["0"])[0] in ("1", "true")
        base = f"{'https' if secure else 'http'}://{p.hostname or 'localhost'}:{p.port or 8123}"
        return cls(HttpTransport(base, (p.path or "/default").lstrip("/") or "default", unquote(p.username or "default"),
                                 unquote(p.password or "")))

    def setup(self, retention_days: int) -> None:
        for ddl in schema.ddl_clickhouse(retention_days):
            self.t.run(ddl)

    def query(self, stmt: sa.Executable, timeout_s: float | None = None) -> list[dict[str, Any]]:
        """Run a read; ``timeout_s``: ClickHouse stops it after that long (max_execution_time)."""
        sql, params = compile_statement(stmt)
        if timeout_s:  # a statement may carry its own SETTINGS clause already (values are never in the text)
            sql += (", " if " SETTINGS " in sql else " SETTINGS ") + f"max_execution_time = {max(1, round(timeout_s))}"
        return self.t.run(sql, params).to_pylist()

    def stored_keys(self, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        devices = sorted({k[0] for k in keys})
        params = {f"d{i}": d for i, d in enumerate(devices)}
        marks = ", ".join(f"{{d{i}:String}}" for i in range(len(devices)))
        lo, hi = min(k[1] for k in keys), max(k[1] for k in keys)
        rows = self.t.run(f"SELECT DeviceId, Seq FROM EventBatches WHERE DeviceId IN ({marks}) "
                          "AND Seq BETWEEN {lo:Int64} AND {hi:Int64}", {**params, "lo": str(lo), "hi": str(hi)})
        wanted = set(keys)
        return {(d, s) for d, s in zip(rows.column("DeviceId").to_pylist(), rows.column("Seq").to_pylist(),
                                      strict=True) if (d, s) in wanted} if rows.num_rows else set()

    def min_seq(self, device_id: str) -> int:
        rows = self.t.run("SELECT min(Seq) AS m FROM EventBatches WHERE DeviceId = {d:String}", {"d": device_id})
        value = rows.column("m").to_pylist()[0] if rows.num_rows else None
        return int(value) if value is not None else 0

    def insert(self, tables: dict[str, pa.Table], batches: pa.Table) -> None:
        for name, data in tables.items():
            if name not in TABLES:
                raise ValueError(name)
            self.t.insert(name, data)
        self.t.insert("EventBatches", batches)

    def prune(self, before: dt.datetime) -> int:
        """The tables' TTL drops old rows at merges; this forces the merge (``before`` is the TTL's)."""
        for name in (*TABLES, "EventBatches"):
            self.t.run(f"OPTIMIZE TABLE `{name}` FINAL")
        return 0

    def close(self) -> None:
        self.t.close()


ENGINES.add("clickhouse", ClickHouseEngine.from_url)  # the HTTP interface
ENGINES.add("chdb", ClickHouseEngine.from_url)  # ClickHouse's engine embedded (tests, one-box trials)
