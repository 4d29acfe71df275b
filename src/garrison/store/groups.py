"""Device-group scope, applied by the storage layer the way the tenant is.

A user or API key may be limited to some device groups. A session opened for such a caller
(``store.tenant(principal)`` — anything with ``tenant_id`` and ``group_ids``) carries those groups in
``session.info["groups"]``, and the session guard (``garrison.store.db``) then adds each entity's *group
predicate* to every ORM statement, next to the tenant filter. The predicates live in one registry:

* derived, so that a new table is covered by existing: ``devices`` (``group_id IN groups``) and every
  tenant table with a ``device_id`` column referencing ``devices.id`` (``device_id IN <devices of
  those groups>``);
* declared by the model (:func:`group_scoped`) for tables bound to groups otherwise: per-group summary
  rows (``group_id IN groups``), remediation activities (their ``group_ids`` list), risk acceptances
  (global, or one of their groups), timeline events (impact in one of the groups).

Hand-written SQL gets the same scope through the same helper that binds the tenant
(:func:`scope_sql`, called by ``garrison.store.db.tenant_query``): each device-bound table or view the
SQL reads (``FROM``/``JOIN``) is replaced by a derived table holding only the rows of the groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, false, or_, select

from garrison.store.base import TENANT_VIEWS, Base, TenantScoped

Groups = tuple[int, ...]
# (entity class, tenant id, the caller's groups) → condition on that entity's rows
Predicate = Callable[[Any, int, Groups], ColumnElement[bool]]

_DECLARED: dict[type, Predicate] = {}
_RULES: dict[type, Predicate] = {}


def group_scoped(predicate: Predicate) -> Callable[[type], type]:
    """Class decorator: rows of this model belong to device groups by ``predicate``."""
    def register(cls: type) -> type:
        if cls in _DECLARED:
            raise ValueError(f"{cls.__name__} already has a group predicate")
        _DECLARED[cls] = predicate
        _RULES.clear()
        return cls
    return register


def groups_of(value: Any) -> Groups | None:
    """A caller's groups as a sorted tuple of ints (None: every group). Refuses anything else."""
    if value is None:
        return None
    out = tuple(sorted({int(g) for g in value}))
    if any(isinstance(g, bool) for g in value):
        raise TypeError("device group ids are integers")
    return out


def by_group_id(cls: Any, _tenant: int, groups: Groups) -> ColumnElement[bool]:
    return cls.group_id.in_(groups) if groups else false()


def _devices_table() -> Any:
    return Base.metadata.tables["devices"]


def devices_in(tenant: int, groups: Groups) -> Any:
    """SELECT of the ids of the tenant's devices in ``groups`` (Core: no ORM criteria re-enter it)."""
    t = _devices_table()
    return select(t.c.id).where(t.c.tenant_id == tenant, t.c.group_id.in_(groups))


def by_device_id(cls: Any, tenant: int, groups: Groups) -> ColumnElement[bool]:
    return cls.device_id.in_(devices_in(tenant, groups)) if groups else false()


def json_list_has(column: Any, groups: Groups) -> ColumnElement[bool]:
    """``column`` (a JSON list of ints) holds one of ``groups``. JSON lists cannot be intersected
    portably in SQL: a LIKE on each id as a JSON number, at every position and spacing."""
    text = cast(column, Text)
    return or_(false(), *[or_(text.like(f"[{g}]"), text.like(f"[{g},%"), text.like(f"%, {g},%"),
                              text.like(f"%,{g},%"), text.like(f"%, {g}]"), text.like(f"%,{g}]")) for g in groups])


def json_keys_have(column: Any, groups: Groups) -> ColumnElement[bool]:
    """``column`` (a JSON object keyed by group id as a string) has one of ``groups`` as a key."""
    text = cast(column, Text)
    return or_(false(), *[text.contains(f'"{g}"') for g in groups])


def rules() -> dict[type, Predicate]:
    """Every group-scoped entity and its predicate (derived ones first, declared ones override)."""
    if not _RULES:
        devices = _devices_table()
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            if not issubclass(cls, TenantScoped):
                continue
            table = mapper.local_table
            if table is devices:
                _RULES[cls] = by_group_id
            elif "device_id" in table.c and any(fk.column.table is devices for fk in table.c.device_id.foreign_keys):
                _RULES[cls] = by_device_id
        _RULES.update(_DECLARED)
    return _RULES


def bound_tables() -> dict[str, str]:
    """Hand-written SQL: device-bound table or view name → its device-id column."""
    out = {_table(cls): "device_id" for cls, p in rules().items() if p is by_device_id}
    out["devices"] = "id"
    out.update({view: '"DeviceId"' for view in TENANT_VIEWS})
    return out


def group_tables() -> set[str]:
    """Hand-written SQL cannot apply a declared predicate other than by group id: the tables it
    refuses to read in a group-scoped session."""
    return {_table(cls) for cls, p in rules().items() if p is not by_device_id and _table(cls) != "devices"}


def _table(cls: Any) -> str:
    return str(cls.__tablename__)


_FROM = re.compile(r'\b(FROM|JOIN)\s+("?)([A-Za-z_][A-Za-z0-9_]*)\2(?=[\s,)]|$)', re.IGNORECASE)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|REPLACE)\b", re.IGNORECASE)


class GroupScopeError(RuntimeError):
    """Hand-written SQL that the group scope cannot narrow (a write, or a table it cannot filter)."""


def scope_sql(sql: str, tenant: int, groups: Groups) -> str:
    """``sql`` with each device-bound table or view it reads replaced by the rows of ``groups``.

    ``FROM devices d`` becomes ``FROM (SELECT * FROM devices WHERE tenant_id = <t> AND group_id IN
    (<groups>)) d`` (an unaliased name keeps its name as alias); a device-bound table is narrowed by
    its device id. The ids are integers, written as literals (the SQL is also handed to raw DB-API
    connections). Writes to these tables, and reads of tables whose predicate SQL cannot express, are
    refused with :class:`GroupScopeError`."""
    bound, grouped = bound_tables(), group_tables()
    in_groups = ", ".join(str(int(g)) for g in groups) or "NULL"
    devices = f"SELECT id FROM devices WHERE tenant_id = {int(tenant)} AND group_id IN ({in_groups})"
    words = set(re.findall(r'[A-Za-z_][A-Za-z0-9_]*', sql))
    if _WRITE.match(sql) and words & set(bound):
        raise GroupScopeError("hand-written SQL may not write device-bound tables in a group-scoped session")
    if words & grouped:
        raise GroupScopeError(f"hand-written SQL reads {', '.join(sorted(words & grouped))} in a group-scoped "
                              "session: use the ORM entity")

    def narrowed(m: re.Match[str]) -> str:
        keyword, quote, name = m.group(1), m.group(2), m.group(3)
        column = bound.get(name)
        if column is None:
            return m.group(0)
        source = f"{quote}{name}{quote}"
        rest = sql[m.end():]
        alias = re.match(r'\s+(?:AS\s+)?([A-Za-z_][A-Za-z0-9_]*)', rest, re.IGNORECASE)
        aliased_ = alias is not None and alias.group(1).lower() not in _KEYWORDS
        cond = f"{column} IN ({devices})" if column != "id" else f"tenant_id = {int(tenant)} AND group_id IN ({in_groups})"
        derived = f"{keyword} (SELECT * FROM {source} WHERE {cond})"
        return derived if aliased_ else f"{derived} {source}"

    if not _read_or_qualified(sql, words & set(bound)):
        raise GroupScopeError("hand-written SQL names a device-bound table outside FROM/JOIN in a "
                              "group-scoped session")
    return _FROM.sub(narrowed, sql)


def _read_or_qualified(sql: str, names: Iterable[str]) -> bool:
    """Every mention of ``names`` is read after FROM/JOIN (and so narrowed) or is a qualifier
    (``devices.x``: a column of the narrowed derived table, which keeps the name as its alias)."""
    for name in names:
        for m in re.finditer(rf'(?<![\w."])"?{re.escape(name)}"?(?![\w"])', sql):
            before = sql[:m.start()].rstrip()
            if re.search(r"\b(FROM|JOIN)$", before, re.IGNORECASE):
                continue
            if not sql[m.end():].startswith("."):
                return False
    return True


_KEYWORDS = {"where", "on", "join", "cross", "inner", "left", "right", "full", "outer", "group", "order",
             "limit", "union", "using", "natural", "set", "values", "having", "window", "offset", "returning"}
