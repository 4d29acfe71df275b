"""The event store's tables: Defender's advanced-hunting tables (``garrison.protocol.events``) plus
``TenantId``, and the batch ledger that makes ingest idempotent.

Reads never name a table directly: :func:`source` gives each table as a :class:`Scoped` whose every
SELECT starts with ``TenantId = :_tenant`` and (for a caller limited to some device groups)
``DeviceId IN :_devices``. Only the tenant-bound handle (:class:`garrison.edr.events.store.EventScope`)
supplies those values, and it refuses a statement that reads an event table in a SELECT without that
predicate (:func:`unscoped_tables`). That is how no read path can forget the tenant.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from garrison.protocol.events import EVENT_TABLES, SNAPSHOT_TABLES, TABLES, columns

metadata = sa.MetaData()

SA_TYPES: dict[str, Any] = {"string": sa.String, "long": sa.BigInteger, "int": sa.Integer, "bool": sa.Boolean,
                             "datetime": sa.DateTime}
_ARROW_TYPES: dict[str, pa.DataType] = {"string": pa.string(), "long": pa.int64(), "int": pa.int32(),
                                        "bool": pa.bool_(), "datetime": pa.timestamp("us", tz="UTC")}
# Engine column types, exactly the MDE types (datetime: UTC, microseconds).
DUCKDB_TYPES = {"string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "bool": "BOOLEAN", "datetime": "TIMESTAMP"}
CLICKHOUSE_TYPES = {"string": "String", "long": "Int64", "int": "Int32", "bool": "Bool",
                    "datetime": "DateTime64(6, 'UTC')"}


def store_columns(table: str) -> list[tuple[str, str]]:
    """``[(column, mde_type)]`` as stored: ``TenantId`` first, then the MDE columns."""
    return [("TenantId", "long"), *columns(table)]


TABLE_OBJECTS: dict[str, sa.Table] = {
    t: sa.Table(t, metadata, *(sa.Column(c, SA_TYPES[typ]) for c, typ in store_columns(t))) for t in TABLES
}
# One row per stored batch: the idempotency key (device, seq) and the counts device health shows.
# Agent batches have seq >= 1; an import takes the next negative seq of its device.
BATCHES = sa.Table("EventBatches", metadata, sa.Column("TenantId", sa.BigInteger), sa.Column("DeviceId", sa.String),
                   sa.Column("Seq", sa.BigInteger), sa.Column("ReceivedAt", sa.DateTime),
                   sa.Column("Events", sa.BigInteger), sa.Column("Drops", sa.BigInteger),
                   sa.Column("FirstEvent", sa.DateTime), sa.Column("LastEvent", sa.DateTime))
BATCH_COLUMNS = [("TenantId", "long"), ("DeviceId", "string"), ("Seq", "long"), ("ReceivedAt", "datetime"),
                 ("Events", "long"), ("Drops", "long"), ("FirstEvent", "datetime"), ("LastEvent", "datetime")]


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    cols = BATCH_COLUMNS if table == BATCHES.name else store_columns(table)
    return pa.schema([(c, _ARROW_TYPES[typ]) for c, typ in cols])


def _scope_predicate(t: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(t.c.TenantId == sa.bindparam("_tenant", type_=sa.BigInteger),
                   sa.or_(sa.bindparam("_all_devices", type_=sa.Boolean),
                          t.c.DeviceId.in_(sa.bindparam("_devices", expanding=True, type_=sa.String))))


class Scoped:
    """A table as a scope may read it: every ``select`` starts with the scope predicate."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.c = table.c

    def select(self, *cols: Any) -> sa.Select[Any]:
        return sa.select(*(cols or self.table.c)).select_from(self.table).where(_scope_predicate(self.table))


@functools.cache
def source(table: str) -> Scoped:
    """Table ``table`` as this scope may see it (the only way reads reach event rows)."""
    return Scoped(BATCHES if table == BATCHES.name else TABLE_OBJECTS[table])


_GUARDED = {*TABLE_OBJECTS.values(), BATCHES}


def unscoped_tables(stmt: sa.Select[Any]) -> list[str]:
    """Event tables a statement reads in a SELECT that does not carry the scope predicate on them."""
    bad: list[str] = []
    for el in visitors.iterate(stmt):
        if not isinstance(el, sa.Select):
            continue
        scoped = set()
        for crit in visitors.iterate(el.whereclause) if el.whereclause is not None else ():
            if (isinstance(crit, BinaryExpression) and isinstance(crit.right, BindParameter)
                    and crit.right.key == "_tenant" and getattr(crit.left, "key", None) == "TenantId"):
                scoped.add(crit.left.table)
        bad.extend(t.name for t in _direct_froms(el) if getattr(t, "element", t) in _GUARDED and t not in scoped)
    return bad


def _direct_froms(el: sa.Select[Any]) -> list[Any]:
    """Every table or alias a SELECT itself reads — in its FROM list, joins, columns, WHERE — without entering
    nested SELECTs (each is checked on its own). A superset of ``get_final_froms()``, which builds a compile
    state (~30 ms for a timeline page)."""
    out: list[Any] = []
    stack = list(el.get_children())
    while stack:
        node = stack.pop()
        if isinstance(node, sa.Select | sa.CompoundSelect):
            continue
        if isinstance(node, sa.Table | sa.Alias):
            out.append(node)
        elif isinstance(node, sa.ColumnClause) and node.table is not None:
            out.append(node.table)
        stack.extend(node.get_children())
    return out


# --- the timeline: every event table as one time-ordered stream (EventScope.timeline) -------------

def _timeline_columns() -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for t in EVENT_TABLES:
        for c, typ in columns(t):
            seen.setdefault(c, typ)
    return list(seen.items())


TIMELINE_COLUMNS: list[tuple[str, str]] = [("Table", "string"), *_timeline_columns()]
TIMELINE_TYPES: dict[str, str] = dict(TIMELINE_COLUMNS)


def ddl_duckdb() -> list[str]:
    out = []
    for t in TABLES:
        cols = ", ".join(f'"{c}" {DUCKDB_TYPES[typ]}' for c, typ in store_columns(t))
        out.append(f'CREATE TABLE IF NOT EXISTS "{t}" ({cols})')
    out.append('CREATE TABLE IF NOT EXISTS "EventBatches" ("TenantId" BIGINT NOT NULL, "DeviceId" VARCHAR NOT NULL, '
               '"Seq" BIGINT NOT NULL, "ReceivedAt" TIMESTAMP, "Events" BIGINT, "Drops" BIGINT, '
               '"FirstEvent" TIMESTAMP, "LastEvent" TIMESTAMP, PRIMARY KEY ("DeviceId", "Seq"))')
    return out


def ddl_clickhouse(retention_days: int) -> list[str]:
    """MergeTree tables partitioned by day, ordered by tenant, device and time, with a TTL."""
    out = []
    for t in TABLES:
        cols = ", ".join(f"`{c}` {_ch_type(c, typ)}" for c, typ in store_columns(t))
        out.append(f"CREATE TABLE IF NOT EXISTS `{t}` ({cols}) ENGINE = ReplacingMergeTree "
                   "PARTITION BY toYYYYMMDD(Timestamp) ORDER BY (TenantId, DeviceId, Timestamp, ReportId) "
                   f"TTL toDateTime(Timestamp) + INTERVAL {int(retention_days)} DAY")
    out.append("CREATE TABLE IF NOT EXISTS `EventBatches` (`TenantId` Int64, `DeviceId` String, `Seq` Int64, "
               "`ReceivedAt` DateTime64(6, 'UTC'), `Events` Nullable(Int64), `Drops` Nullable(Int64), "
               "`FirstEvent` Nullable(DateTime64(6, 'UTC')), `LastEvent` Nullable(DateTime64(6, 'UTC'))) "
               "ENGINE = ReplacingMergeTree ORDER BY (TenantId, DeviceId, Seq) "
               f"TTL toDateTime(ReceivedAt) + INTERVAL {int(retention_days)} DAY")
    return out


_CH_KEYS = {"TenantId": "Int64", "DeviceId": "String", "Timestamp": "DateTime64(6, 'UTC')", "ReportId": "Int64"}


def _ch_type(column: str, typ: str) -> str:
    return _CH_KEYS.get(column) or f"Nullable({CLICKHOUSE_TYPES[typ]})"


__all__ = ["BATCHES", "EVENT_TABLES", "SNAPSHOT_TABLES", "TABLES", "TIMELINE_COLUMNS", "arrow_schema", "source",
           "store_columns"]
