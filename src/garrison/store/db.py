"""Engine and session factory; tenant isolation enforced for every statement a session runs.

Two kinds of session exist and nothing else:

* ``store.tenant(tenant_id)`` — every ORM SELECT/UPDATE/DELETE on a :class:`TenantScoped` table
  gets ``tenant_id = :tenant_id`` added, and new rows are stamped with the tenant.
* ``store.system()`` — for work that spans tenants (admin CLI, knowledge-base import,
  background jobs). It must be asked for by name.

What a tenant session guarantees (tests/store/test_tenancy.py proves each point):

* ORM statements (``select(Device)``, relationship loads, ``session.get``, ORM bulk UPDATE/DELETE)
  see and change only the tenant's rows; flushed objects are stamped with the tenant, and another
  tenant's row is refused.
* Core statements — on the session or on ``session.connection()`` alike — that use a tenant table
  as a plain table (``Device.__table__``, ``table("devices")``, an alias of either) must say
  ``tenant_id = <this tenant>`` for that table themselves, as a bound value (in the statement or in
  the execute parameters); a Core INSERT must give every row ``tenant_id = <this tenant>``. Otherwise
  the statement is refused with :class:`TenantScopeError`. (The check is syntactic: the predicate
  must be present; putting it under an OR is the author's own bug.)
* Hand-written SQL (``text()``) is refused, except through :func:`tenant_query` / :func:`run_sql`:
  the one helper that checks that every tenant table or view the SQL names is filtered on
  ``<alias>.tenant_id = :tenant`` (views: ``"TenantId" = :tenant``) and binds ``:tenant`` to the
  session's tenant itself — a caller cannot pass another.
* :meth:`Store.connection` gives a bare connection (no ORM) under the same Core and SQL rules, for
  hot paths that cannot afford a session.

Outside the guarantee, by construction: ``store.system()`` sessions (cross-tenant on purpose),
``store.engine`` used directly, ``exec_driver_sql`` and raw DB-API connections. A test
(``test_raw_database_access_is_confined``) lists the few modules allowed to use those.

A session of neither kind refuses to run ORM statements on tenant tables.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Delete, Engine, Insert, Update, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria
from sqlalchemy.orm.util import LoaderCriteriaOption
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ClauseElement, operators, visitors
from sqlalchemy.sql import util as sql_util
from sqlalchemy.sql.elements import TextClause

from garrison.store import groups as group_scope
from garrison.store.base import TENANT_VIEWS, Base, TenantScoped

SYSTEM = "system"


# Transient contention on PostgreSQL: serialization failure, deadlock detected, lock not available.
_CONTENTION_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_contention(exc: BaseException) -> bool:
    """The statement lost a race for a lock (SQLite "database is locked" once its busy timeout ran
    out; PostgreSQL serialization failure, deadlock or lock timeout): trying again later succeeds."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _CONTENTION_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)


class TenantScopeError(RuntimeError):
    """A query on tenant data was attempted without a tenant scope."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            private_sqlite_files(Path(parsed.database))
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg"))
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    event.listen(engine, "before_execute", _before_execute)
    return engine


def private_dir(path: Path) -> None:
    """Create ``path`` for this user only (0700): the data directory holds the state store, the TLS key
    and the secrets key. An existing one of this user's is made so too — unless it is a shared sticky
    directory such as /tmp, whose mode belongs to every user of the machine."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.stat().st_mode & stat.S_ISVTX:
        _owner_only(path, 0o700)


def private_sqlite_files(db: Path) -> None:
    """The SQLite database created 0600 before SQLite opens it (its -wal and -shm files take the
    database's mode); its directory is created 0700 when missing, but an existing one is not ours to
    change (``--database-url sqlite:////tmp/x.db`` must not close /tmp to other users); an existing
    database and its WAL/SHM files are made 0600."""
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        _owner_only(path, 0o600)


def _owner_only(path: Path, mode: int) -> None:
    try:
        st = path.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != mode:
            path.chmod(mode)
    except FileNotFoundError:
        pass


def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'garrison.db'}"


# --- the guard -------------------------------------------------------------------------------------

# Marks a statement the session-level hook (or tenant_query) has already checked, so the connection-level
# hook lets it through. A private object, not a flag anyone could set by accident.
_CHECKED = object()
_SQL = "garrison_checked"
# The scope of each connection a scoped session (or Store.connection) is using, by connection object.
_CONNECTIONS: weakref.WeakKeyDictionary[Connection, Any] = weakref.WeakKeyDictionary()


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    scope = state.session.info.get("tenant")
    if scope == SYSTEM:
        return
    stmt = state.statement
    if scope is None:
        if not isinstance(stmt, TextClause) and _touches_tenant_tables(state):
            raise TenantScopeError("query on tenant data outside a tenant or system scope")
        return
    if state.execution_options.get(_SQL) is _CHECKED:
        _check_bound_tenant(state.parameters, scope)  # tenant_query's SQL: checked, :tenant is ours
        return
    groups = state.session.info.get("groups")
    _check_statement(stmt, scope, _rows(state.parameters), orm=True, state=state, groups=groups)
    state.update_execution_options(**{_SQL: _CHECKED})
    if state.is_select or state.is_update or state.is_delete:
        options = [with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == scope, include_aliases=True)]
        if groups is not None:
            # The predicates depend on the caller's groups, which no statement cache key carries: the
            # criteria read them when the statement is compiled, and a group-scoped statement is never
            # taken from (or put in) the compiled cache.
            options += [_GroupCriteria(entity, scope, groups) for entity in group_scope.rules()]
            state.update_execution_options(compiled_cache=None)
        state.statement = stmt.options(*options)


class _GroupCriteria(LoaderCriteriaOption):
    """``with_loader_criteria`` for one group-scoped entity, resolved for each occurrence of the entity
    in the statement (the entity itself or an alias of it) from the registry's predicate. The
    predicate's values are the caller's groups, which no statement cache key carries: a statement with
    these criteria is never taken from (or put in) the compiled cache (see _scope_to_tenant)."""

    def __init__(self, entity: Any, tenant: int, groups: group_scope.Groups) -> None:
        self._group_args = (group_scope.rules()[entity], tenant, groups)
        super().__init__(entity, self._group_args[0](entity, tenant, groups), include_aliases=True)

    def _resolve_where_criteria(self, ext_info: Any) -> Any:
        predicate, tenant, groups = self._group_args
        return sql_util._deep_annotate(predicate(ext_info.entity, tenant, groups), {"for_loader_criteria": self},
                                       detect_subquery_cols=True, ind_cols_on_fromclause=True)


@event.listens_for(Session, "after_begin")
def _remember_connection(session: Session, _transaction: Any, connection: Connection) -> None:
    _CONNECTIONS[connection] = weakref.ref(session)


def _connection_scope(conn: Connection) -> tuple[Any, bool, group_scope.Groups | None]:
    """(tenant scope, flushing, groups) of a connection: a session's (through a weak reference) or a
    fixed one (Store.connection: a tenant, every group)."""
    held = _CONNECTIONS.get(conn)
    if held is None:
        return SYSTEM, False, None  # store.engine used directly: outside the guarantee (see the module doc)
    if isinstance(held, weakref.ref):
        session = held()
        if session is None:
            return SYSTEM, False, None
        return session.info.get("tenant"), bool(session._flushing), session.info.get("groups")
    return held, False, None


def _before_execute(conn: Connection, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
    """Statements run on a scoped session's connection (``session.connection().execute``) or on
    Store.connection: those the session hook checked pass; the rest are checked here."""
    if options.get(_SQL) is _CHECKED:
        return
    scope, flushing, groups = _connection_scope(conn)
    if scope == SYSTEM or flushing:  # a flush writes the session's objects, stamped by _stamp_tenant
        return
    if scope is None:
        if _tenant_tables_in(clause):
            raise TenantScopeError("query on tenant data outside a tenant or system scope")
        return
    _check_statement(clause, scope, list(multiparams) or [params], orm=False, groups=groups)


def _rows(parameters: Any) -> list[dict[str, Any]]:
    if not parameters:
        return [{}]
    return list(parameters) if isinstance(parameters, list | tuple) else [parameters]


def _check_bound_tenant(parameters: Any, scope: int) -> None:
    for row in _rows(parameters):
        if "tenant" in row and row["tenant"] != scope:
            raise TenantScopeError("hand-written SQL bound to another tenant")


def _group_tables() -> set[str]:
    return {getattr(cls, "__tablename__", "") for cls in group_scope.rules()}


def _tenant_tables() -> dict[str, Any]:
    """Tenant tables by name (plus the tenant views)."""
    if not _TENANT_TABLES:
        for mapper in Base.registry.mappers:
            if issubclass(mapper.class_, TenantScoped):
                _TENANT_TABLES.update({t.name: t for t in mapper.tables})
    return _TENANT_TABLES


_TENANT_TABLES: dict[str, Any] = {}


def _base_name(from_: Any) -> str | None:
    """The table a FROM element stands for, through aliases (``t.alias()``, ``aliased``)."""
    while from_ is not None and getattr(from_, "__visit_name__", "") in ("alias", "subquery", "annotated"):
        from_ = getattr(from_, "element", None)
    return getattr(from_, "name", None) if getattr(from_, "__visit_name__", "") == "table" else None


def _tenant_tables_in(clause: Any) -> bool:
    if not isinstance(clause, ClauseElement):
        return False
    if isinstance(clause, TextClause):
        return True
    names = _tenant_tables()
    el: Any  # visited elements: tables, columns, text
    for el in visitors.iterate(clause):
        if el.__visit_name__ == "textclause":
            return True
        if el.__visit_name__ == "table" and el.name in names:
            return True
    return False


def _check_statement(stmt: Any, scope: int, rows: list[dict[str, Any]], *, orm: bool,
                     state: ORMExecuteState | None = None, groups: group_scope.Groups | None = None) -> None:
    """Refuse a statement that could reach another tenant's rows (rules in the module doc), or, in a
    group-scoped session, any plain (Core) use of a group-scoped table: only ORM entities get the
    group criteria.

    ``orm``: the ORM criteria will be added to this statement, so tables reached through ORM
    entities are covered; on a connection nothing is added, so every tenant table must be named."""
    if not isinstance(stmt, ClauseElement):
        return
    if isinstance(stmt, TextClause):
        raise TenantScopeError("hand-written SQL in a tenant session: use garrison.store.db.run_sql")
    el: Any
    names = _tenant_tables()
    plain: set[str] = set()
    scoped: set[str] = set()
    through_orm: set[str] = set()
    bare: set[str] = set()

    def bound_to_scope(bind: Any) -> bool:
        if getattr(bind, "__visit_name__", "") != "bindparam":
            return False
        if bind.value is not None or bind.callable is not None:
            return bool(bind.effective_value == scope)
        return all(row.get(bind.key) == scope for row in rows) and rows != [{}]

    for el in visitors.iterate(stmt):
        kind = el.__visit_name__
        if kind == "textclause":
            raise TenantScopeError("hand-written SQL in a tenant session: use garrison.store.db.run_sql")
        if kind == "table" and el.name in names:
            if not orm:
                plain.add(el.name)
            elif "parententity" in el._annotations:
                through_orm.add(el.name)
            elif el is names[el.name]:
                bare.add(el.name)  # the mapped table: an ORM join lists it too; plain if nothing ORM names it
            else:
                plain.add(el.name)  # a lightweight table("…") of the same name
        elif kind == "column":
            name = _base_name(getattr(el, "table", None))
            if name in names:
                if orm and "parententity" in el._annotations:
                    through_orm.add(name)
                else:
                    plain.add(name)
        elif kind == "binary" and el.operator is operators.eq:
            for col, other in ((el.left, el.right), (el.right, el.left)):
                if getattr(col, "key", None) == "tenant_id" and bound_to_scope(other):
                    name = _base_name(getattr(col, "table", None))
                    if name in names:
                        scoped.add(name)
    if isinstance(stmt, Insert):
        target = getattr(stmt.table, "name", "")
        if target in names:
            _check_insert(stmt, scope, rows)
            plain.discard(target)
            bare.discard(target)
    elif isinstance(stmt, Update | Delete) and getattr(stmt.table, "name", "") in names \
            and stmt.whereclause is None and rows != [{}]:
        # an ORM bulk UPDATE by primary key: the keys come in the parameters, where no criteria reach
        plain.add(getattr(stmt.table, "name", ""))
    loose = plain | (bare - through_orm)
    if loose and state is not None and state.is_select:
        # Plain key columns of an entity the statement loads are fine (session.get builds those): the
        # criteria filter that entity's rows. An entity only in ORDER BY/WHERE filters nothing.
        for desc in getattr(stmt, "column_descriptions", ()):
            entity = desc.get("entity")
            if entity is not None and desc.get("expr") is entity:
                loose -= {t.name for t in inspect(entity).tables}
    if groups is not None:
        outside_orm = loose & _group_tables()
        if isinstance(stmt, Insert | Update | Delete) and getattr(stmt.table, "name", "") in _group_tables() \
                and not (orm and "parententity" in getattr(stmt.table, "_annotations", {})):
            outside_orm.add(getattr(stmt.table, "name", ""))
        if outside_orm:
            raise TenantScopeError(f"group-scoped table(s) {', '.join(sorted(outside_orm))} used outside the ORM "
                                   "in a group-scoped session: use the ORM entity")
    loose -= scoped
    if loose:
        raise TenantScopeError(f"tenant table(s) {', '.join(sorted(loose))} used in a tenant session without "
                               "tenant_id = this tenant: use the ORM entity, or name the tenant")


def _check_insert(stmt: Insert, scope: int, rows: list[dict[str, Any]]) -> None:
    """Every row a Core or ORM INSERT writes must carry this tenant (nothing stamps them)."""
    if stmt._multi_values:
        multi = [row for batch in stmt._multi_values for row in batch]
        values = [v for row in multi for k, v in _items(row) if k == "tenant_id"]
        if len(values) != len(multi):
            raise TenantScopeError("INSERT into a tenant table without tenant_id in every row")
    elif stmt._values and "tenant_id" in {_key(k) for k in stmt._values}:
        values = [v for k, v in stmt._values.items() if _key(k) == "tenant_id"]
    elif getattr(stmt, "_select_names", None) is not None:
        raise TenantScopeError("INSERT … SELECT into a tenant table in a tenant session")
    else:
        if rows == [{}] or any("tenant_id" not in row for row in rows):
            raise TenantScopeError("INSERT into a tenant table without tenant_id = this tenant in every row")
        values = [row["tenant_id"] for row in rows]
    for v in values:
        v = getattr(v, "effective_value", v)
        if v != scope:
            raise TenantScopeError("INSERT of another tenant's row")


def _items(row: Any) -> list[tuple[str, Any]]:
    if isinstance(row, dict):
        return [(_key(k), v) for k, v in row.items()]
    return []


def _key(k: Any) -> str:
    return k if isinstance(k, str) else getattr(k, "key", str(k))


def _touches_tenant_tables(state: ORMExecuteState) -> bool:
    for desc in state.all_mappers:
        if issubclass(desc.class_, TenantScoped):
            return True
    return False


# --- hand-written SQL: the one way in ---------------------------------------------------------------

_KEYWORDS = {"where", "on", "join", "cross", "inner", "left", "right", "full", "outer", "group", "order",
             "limit", "union", "using", "natural", "set", "values", "having", "window", "offset", "returning"}
_WORD = re.compile(r'(?<![.\w"])"?([A-Za-z_][A-Za-z0-9_]*)"?')
_ALIAS = re.compile(r'\s+(?:AS\s+)?([A-Za-z_][A-Za-z0-9_]*)', re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def check_tenant_sql(sql: str) -> str:
    """Hand-written SQL, checked: every tenant table or view it names is filtered on this tenant.

    Each tenant table (``devices``, ``device_packages d``…) must be followed somewhere by
    ``<alias or name>.tenant_id = :tenant`` (a view: ``"TenantId" = :tenant``). Returns the SQL;
    raises :class:`TenantScopeError` otherwise. Cached: the statements are constants of the code."""
    names = set(_tenant_tables()) | TENANT_VIEWS
    for m in _WORD.finditer(sql):
        table = m.group(1)
        if table not in names:
            continue
        after = _ALIAS.match(sql, m.end())
        alias = after.group(1) if after and after.group(1).lower() not in _KEYWORDS else table
        column = "TenantId" if table in TENANT_VIEWS else "tenant_id"
        own = rf'(?:\b{re.escape(alias)}\.|"{re.escape(alias)}"\.)?"?{column}"?' if alias == table \
            else rf'\b{re.escape(alias)}\."?{column}"?'
        if not re.search(rf"{own}\s*=\s*:tenant\b|:tenant\s*=\s*{own}", sql):
            raise TenantScopeError(f"hand-written SQL reads {table} ({alias}) without {alias}.{column} = :tenant")
    return sql


def tenant_query(where: Session | Connection, sql: str | TextClause,
                 params: dict[str, Any] | list[dict[str, Any]] | None = None) -> tuple[str, Any]:
    """The checked SQL and its parameters with ``:tenant`` bound to the tenant of ``where`` (a tenant
    session or Store.connection). For raw DB-API connections (the prioritisation engine's parallel
    SQLite readers); everything else calls :func:`run_sql`."""
    if isinstance(where, Session):
        scope, groups = where.info.get("tenant"), where.info.get("groups")
    else:
        scope, _, groups = _connection_scope(where)
    if not isinstance(scope, int) or isinstance(scope, bool):
        raise TenantScopeError("hand-written tenant SQL needs a tenant session")
    text_ = sql.text if isinstance(sql, TextClause) else sql
    check_tenant_sql(text_)
    if groups is not None:
        try:
            text_ = group_scope.scope_sql(text_, scope, groups)
        except group_scope.GroupScopeError as exc:
            raise TenantScopeError(str(exc)) from None
    if ":tenant" not in text_:
        return text_, params if params is not None else {}
    for row in _rows(params):
        if "tenant" in row:
            raise TenantScopeError("the tenant of hand-written SQL is the session's; do not pass one")
    if isinstance(params, list):
        return text_, [{**row, "tenant": scope} for row in params]
    return text_, {**(params or {}), "tenant": scope}


def run_sql(where: Session | Connection, sql: str | TextClause,
            params: dict[str, Any] | list[dict[str, Any]] | None = None) -> Any:
    """Run hand-written SQL in a tenant session (or on Store.connection) — the only way a tenant
    session accepts ``text()``. ``sql`` may be a TextClause to carry bindparams (expanding lists)."""
    checked, bound = tenant_query(where, sql, params)
    clause = text(checked)
    if isinstance(sql, TextClause):
        clause = clause.bindparams(*sql._bindparams.values()) if sql._bindparams else clause
    return where.execute(clause.execution_options(**{_SQL: _CHECKED}), bound)


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    scope = session.info.get("tenant")
    if scope == SYSTEM:
        return
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantScoped):
            continue
        if scope is None:
            raise TenantScopeError("write of tenant data outside a tenant or system scope")
        if obj.tenant_id is None:
            obj.tenant_id = scope
        elif obj.tenant_id != scope:
            raise TenantScopeError("write of another tenant's row")
    groups = session.info.get("groups")
    if groups is not None and isinstance(scope, int):
        _check_group_writes(session, scope, groups)


def _check_group_writes(session: Session, tenant: int, groups: group_scope.Groups) -> None:
    """A group-scoped session writes (adds, changes, deletes) only devices of its groups and rows
    bound to those devices; other group-scoped rows it may change only if it can read them."""
    rules = group_scope.rules()
    device_ids: set[Any] = set()
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        rule = rules.get(type(obj))
        if rule is group_scope.by_group_id and getattr(obj, "__tablename__", "") == "devices":
            history = inspect(obj).attrs.group_id.history
            before = [g for g in (history.deleted or ()) if g is not None]
            if getattr(obj, "group_id", None) not in groups or any(g not in groups for g in before):
                raise TenantScopeError("write of a device outside the session's device groups")
        elif rule is group_scope.by_device_id:
            device_ids.add(getattr(obj, "device_id", None))
    if device_ids:
        t = group_scope._devices_table()
        seen = set(session.connection().execute(
            select(t.c.id).where(t.c.tenant_id == tenant, t.c.group_id.in_(groups), t.c.id.in_(sorted(device_ids,
                                                                                                  key=str)))
            .execution_options(**{_SQL: _CHECKED})).scalars())
        if device_ids - seen:
            raise TenantScopeError("write of a row of a device outside the session's device groups")


class Caller(Protocol):
    """Who a session is for: a tenant and the device groups it is limited to (None: every group)."""

    @property
    def tenant_id(self) -> int: ...

    @property
    def group_ids(self) -> Iterable[int] | None: ...


class Store:
    """The state store: one engine, scoped sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def tenant(self, tenant: int | Caller, groups: Iterable[int] | None = None) -> Iterator[Session]:
        """A session of one tenant; with ``groups`` (or given a caller — a principal — whose
        ``group_ids`` are not None) narrowed to those device groups (garrison.store.groups)."""
        tenant_id = tenant if isinstance(tenant, int) else tenant.tenant_id
        if not isinstance(tenant, int):
            groups = tenant.group_ids
        with self._session(tenant_id) as s:
            s.info["groups"] = group_scope.groups_of(groups)
            yield s

    @contextlib.contextmanager
    def system(self) -> Iterator[Session]:
        with self._session(SYSTEM) as s:
            yield s

    @contextlib.contextmanager
    def connection(self, tenant_id: int) -> Iterator[Connection]:
        """A bare connection bound to one tenant, for hot paths that cannot afford an ORM session:
        Core statements must name the tenant, hand-written SQL goes through run_sql (module doc).
        Read-only use; nothing is committed."""
        with self.engine.connect() as conn:
            _CONNECTIONS[conn] = tenant_id
            yield conn

    @contextlib.contextmanager
    def _session(self, scope: int | str) -> Iterator[Session]:
        session = self._factory()
        session.info["tenant"] = scope
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
