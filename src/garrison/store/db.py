"""Engine and session factory; tenant isolation enforced for every ORM statement.

Two kinds of session exist and nothing else:

* ``store.tenant(tenant_id)`` — every SELECT/UPDATE/DELETE on a :class:`TenantScoped`
  table gets ``tenant_id = :tenant_id`` added, and new rows are stamped with the tenant.
* ``store.system()`` — for work that spans tenants (admin CLI, knowledge-base import,
  background jobs). It must be asked for by name.

A session of neither kind refuses to run ORM statements on tenant tables.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import operators, visitors

from garrison.store.base import Base, TenantScoped

SYSTEM = "system"


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
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def private_dir(path: Path) -> None:
    """Create ``path`` for this user only (0700): the data directory holds the state store, the TLS key
    and the secrets key. An existing one of this user's is made so too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owner_only(path, 0o700)


def private_sqlite_files(db: Path) -> None:
    """The SQLite database created 0600 before SQLite opens it (its -wal and -shm files take the
    database's mode), in a private directory; an existing database and its WAL/SHM files made 0600."""
    private_dir(db.parent)
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


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    scope = state.session.info.get("tenant")
    if scope == SYSTEM:
        return
    if scope is None:
        if _touches_tenant_tables(state):
            raise TenantScopeError("query on tenant data outside a tenant or system scope")
        return
    _refuse_unscoped_tables(state, scope)
    state.statement = state.statement.options(
        with_loader_criteria(TenantScoped, lambda cls: cls.tenant_id == scope, include_aliases=True)
    )


def _tenant_tables() -> dict[Any, str]:
    if not _TENANT_TABLES:
        for mapper in Base.registry.mappers:
            if issubclass(mapper.class_, TenantScoped):
                _TENANT_TABLES.update({t: t.name for t in mapper.tables})
    return _TENANT_TABLES


_TENANT_TABLES: dict[Any, str] = {}


def _refuse_unscoped_tables(state: ORMExecuteState, scope: int) -> None:
    """The tenant criteria reach tables only through their ORM entities. A statement that uses a tenant
    table's plain columns (``Model.__table__.c``) or updates/deletes the plain table must say
    ``tenant_id = <this session's tenant>`` for that table itself; otherwise it is refused, as it would
    see every tenant's rows. (System sessions may do anything on purpose.)"""
    tables = _tenant_tables()
    stmt: Any = state.statement
    el: Any  # visited clause elements: columns, binary expressions, bind parameters
    plain: set[Any] = set()
    scoped: set[Any] = set()
    target = getattr(stmt, "table", None) if (state.is_update or state.is_delete) else None
    if target is not None and target in tables and "parententity" not in target._annotations:
        plain.add(target)
    for el in visitors.iterate(stmt):
        kind = el.__visit_name__
        if kind == "column" and "parententity" not in el._annotations:
            table = getattr(el, "table", None)
            if table is not None and table in tables:
                plain.add(table)
        elif kind == "binary" and el.operator is operators.eq:
            for col, other in ((el.left, el.right), (el.right, el.left)):
                if (getattr(col, "key", None) == "tenant_id" and getattr(col, "table", None) in tables
                        and getattr(other, "__visit_name__", "") == "bindparam" and other.effective_value == scope):
                    scoped.add(col.table)
    loose = plain - scoped
    if loose and state.is_select:
        # Plain key columns of an entity the statement loads are fine (session.get builds those): the
        # criteria filter that entity's rows. An entity only in ORDER BY/WHERE filters nothing.
        for desc in stmt.column_descriptions:
            entity = desc.get("entity")
            if entity is not None and desc.get("expr") is entity:
                loose -= set(inspect(entity).tables)
    if loose:
        raise TenantScopeError(f"tenant table(s) {', '.join(sorted(tables[t] for t in loose))} used as plain "
                               "tables in a tenant session without tenant_id = this tenant: use the ORM entity")


def _touches_tenant_tables(state: ORMExecuteState) -> bool:
    for desc in state.all_mappers:
        if issubclass(desc.class_, TenantScoped):
            return True
    return False


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
    def tenant(self, tenant_id: int) -> Iterator[Session]:
        with self._session(tenant_id) as s:
            yield s

    @contextlib.contextmanager
    def system(self) -> Iterator[Session]:
        with self._session(SYSTEM) as s:
            yield s

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
