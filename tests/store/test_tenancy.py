"""Tenant isolation is enforced by the storage layer, not by each query's author."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import bindparam, delete, insert, literal_column, select, table, text, update

from garrison.core import access
from garrison.store.db import Store, TenantScopeError, run_sql, tenant_query
from garrison.store.models.core import Device, DeviceGroup


def _two_tenants(store: Store) -> tuple[int, int]:
    with store.system() as s:
        a = access.create_tenant(s, "a").id
        b = access.create_tenant(s, "b").id
    with store.tenant(a) as s:
        s.add(Device(computer_dns_name="a-host"))
    with store.tenant(b) as s:
        s.add(Device(computer_dns_name="b-host"))
    return a, b


def test_tenant_session_sees_only_its_rows(store: Store) -> None:
    a, b = _two_tenants(store)
    with store.tenant(a) as s:
        assert [d.computer_dns_name for d in s.scalars(select(Device))] == ["a-host"]
        # joins and subqueries are filtered too
        rows = s.execute(select(Device.computer_dns_name, DeviceGroup.name)
                         .join(DeviceGroup, DeviceGroup.id == Device.group_id, isouter=True)).all()
        assert [r[0] for r in rows] == ["a-host"]
        # a bulk update cannot reach another tenant's rows
        s.execute(update(Device).values(device_value="High"))
    with store.tenant(b) as s:
        assert s.scalar(select(Device.device_value)) == "Normal"


def test_new_rows_are_stamped_and_foreign_rows_refused(store: Store) -> None:
    a, b = _two_tenants(store)
    with store.tenant(a) as s:
        d = Device(computer_dns_name="stamped")
        s.add(d)
        s.flush()
        assert d.tenant_id == a
    with pytest.raises(TenantScopeError), store.tenant(a) as s:
        s.add(Device(computer_dns_name="sneaky", tenant_id=b))


def test_unscoped_sessions_refuse_tenant_data(store: Store) -> None:
    _two_tenants(store)
    s = store._factory()  # a session nobody scoped
    try:
        with pytest.raises(TenantScopeError):
            s.scalars(select(Device)).all()
    finally:
        s.close()


def test_plain_tables_in_a_tenant_session_must_name_the_tenant(store: Store) -> None:
    # The criteria reach tables only through ORM entities: Device.__table__ columns would see every
    # tenant's rows, so a tenant session refuses them unless the statement filters on its own tenant.
    a, b = _two_tenants(store)
    t = Device.__table__
    with store.tenant(a) as s:
        for stmt in (select(t.c.computer_dns_name),
                     select(t.c.computer_dns_name).order_by(Device.computer_dns_name),
                     select(t.c.computer_dns_name).where(t.c.tenant_id == b),
                     update(t).values(device_value="High")):
            with pytest.raises(TenantScopeError, match="devices"):
                s.execute(stmt)
        assert s.execute(select(t.c.computer_dns_name).where(t.c.tenant_id == a)).scalars().all() == ["a-host"]
        assert s.get(Device, "no-such-id") is None  # get() builds plain key columns of a loaded entity: fine
    with store.system() as s:  # system sessions span tenants on purpose
        assert sorted(s.execute(select(t.c.computer_dns_name)).scalars()) == ["a-host", "b-host"]


# --- what the ORM criteria do not reach: Core, text() and the session's connection ------------------

def _ids(store: Store) -> dict[str, str]:
    with store.system() as s:
        return {d.computer_dns_name: d.id for d in s.scalars(select(Device))}


def test_core_statements_on_the_sessions_connection_are_guarded_too(store: Store) -> None:
    # Before: s.connection().execute(...) bypassed the session entirely and saw every tenant.
    a, b = _two_tenants(store)
    t = Device.__table__
    with store.tenant(a) as s:
        conn = s.connection()
        for stmt in (select(t.c.computer_dns_name), select(Device.computer_dns_name), select(Device),
                     select(t.c.computer_dns_name).where(t.c.tenant_id == b),
                     select(t.alias("x").c.computer_dns_name),
                     select(literal_column("computer_dns_name")).select_from(table("devices")),
                     update(t).values(device_value="High"), delete(t)):
            with pytest.raises(TenantScopeError, match="devices"):
                conn.execute(stmt)
        assert conn.execute(select(t.c.computer_dns_name).where(t.c.tenant_id == a)).scalars().all() == ["a-host"]
        named = select(t.c.computer_dns_name).where(t.c.tenant_id == bindparam("t"))
        assert conn.execute(named, {"t": a}).scalars().all() == ["a-host"]
        with pytest.raises(TenantScopeError):
            conn.execute(named, {"t": b})


def test_text_is_refused_in_a_tenant_session(store: Store) -> None:
    # Before: s.execute(text("SELECT … FROM devices")) returned every tenant's rows.
    a, _b = _two_tenants(store)
    with store.tenant(a) as s:
        for run in (s.execute, s.connection().execute):
            with pytest.raises(TenantScopeError, match="run_sql"):
                run(text("SELECT computer_dns_name FROM devices"))
        with pytest.raises(TenantScopeError, match="run_sql"):
            s.execute(select(Device.id).where(text("1 = 1")))
    with store.system() as s:
        assert len(s.execute(text("SELECT computer_dns_name FROM devices")).all()) == 2


def test_core_inserts_must_carry_the_sessions_tenant(store: Store) -> None:
    # Before: insert(Device.__table__).values(tenant_id=<other>) succeeded in a tenant session.
    a, b = _two_tenants(store)
    t = Device.__table__
    with store.tenant(a) as s:
        for run in (s.execute, s.connection().execute):
            for stmt, rows in ((insert(t).values(id="x1", computer_dns_name="evil", tenant_id=b), None),
                               (insert(Device).values(id="x2", computer_dns_name="evil", tenant_id=b), None),
                               (insert(t).values(id="x3", computer_dns_name="evil"), None),
                               (insert(t), [{"id": "x4", "computer_dns_name": "evil", "tenant_id": b}]),
                               (insert(t), [{"id": "x5", "computer_dns_name": "ok", "tenant_id": a},
                                            {"id": "x6", "computer_dns_name": "evil", "tenant_id": b}]),
                               (insert(t).values([{"id": "x7", "computer_dns_name": "evil", "tenant_id": b}]),
                                None)):
                with pytest.raises(TenantScopeError):
                    run(stmt, rows)
        s.execute(insert(t), [{"id": "ok1", "computer_dns_name": "own", "tenant_id": a}])
    with store.system() as s:
        assert sorted(s.scalars(select(Device.computer_dns_name))) == ["a-host", "b-host", "own"]


def test_orm_bulk_update_by_primary_key_cannot_reach_another_tenant(store: Store) -> None:
    a, _b = _two_tenants(store)
    other = _ids(store)["b-host"]
    with pytest.raises(TenantScopeError), store.tenant(a) as s:
        s.execute(update(Device), [{"id": other, "device_value": "High"}])
    with store.system() as s:
        assert s.scalar(select(Device.device_value).where(Device.id == other)) == "Normal"


def test_run_sql_is_the_one_way_for_hand_written_sql(store: Store) -> None:
    a, b = _two_tenants(store)
    with store.tenant(a) as s:
        got = run_sql(s, "SELECT d.computer_dns_name FROM devices d WHERE d.tenant_id = :tenant").scalars().all()
        assert got == ["a-host"]
        # a tenant table without its filter, a second table unfiltered, a view without TenantId: refused
        for sql in ("SELECT computer_dns_name FROM devices",
                    "SELECT d.computer_dns_name FROM devices d WHERE d.tenant_id = :other",
                    "SELECT d.id FROM devices d JOIN device_tags t ON t.device_id = d.id WHERE d.tenant_id = :tenant",
                    "SELECT d.id FROM devices d, device_tags t WHERE d.tenant_id = :tenant",
                    'SELECT * FROM "DeviceTvmSoftwareInventory" LIMIT 1'):
            with pytest.raises(TenantScopeError):
                run_sql(s, sql, {"other": b})
        # the caller cannot bind :tenant itself
        with pytest.raises(TenantScopeError, match="session's"):
            run_sql(s, "SELECT d.id FROM devices d WHERE d.tenant_id = :tenant", {"tenant": b})
        assert run_sql(s, 'SELECT count(*) FROM "DeviceTvmSoftwareInventory" WHERE "TenantId" = :tenant').scalar() == 0
        sql, params = tenant_query(s, "SELECT d.id FROM devices d WHERE d.tenant_id = :tenant")
        assert params == {"tenant": a}
    with store.system() as s, pytest.raises(TenantScopeError, match="tenant session"):
        run_sql(s, "SELECT 1")


def test_store_connection_is_bound_to_its_tenant(store: Store) -> None:
    a, _b = _two_tenants(store)
    t = Device.__table__
    with store.connection(a) as conn:
        assert conn.execute(select(t.c.computer_dns_name).where(t.c.tenant_id == a)).scalars().all() == ["a-host"]
        with pytest.raises(TenantScopeError):
            conn.execute(select(t.c.computer_dns_name))
        with pytest.raises(TenantScopeError):
            conn.execute(text("SELECT computer_dns_name FROM devices"))
        assert run_sql(conn, "SELECT computer_dns_name FROM devices WHERE tenant_id = :tenant").scalars().all() \
            == ["a-host"]


# Modules allowed to reach the database around the guard (store.engine, exec_driver_sql, raw DB-API):
# each is system work by nature or feeds only checked SQL to the raw connection.
RAW_ACCESS_ALLOWED = {
    "store/db.py",  # the guard itself
    "tvm/kb/pipeline.py",  # knowledge-base import: tables shared by all tenants
    "core/ingest.py",  # BEGIN IMMEDIATE (transaction control on SQLite, no data)
    "core/maintenance.py",  # ANALYZE / VACUUM of the whole database
    "tvm/prioritisation/engine.py",  # parallel SQLite readers; their SQL comes from tenant_query
}
_RAW = re.compile(r"\.engine\.(connect|begin|raw_connection)\(|exec_driver_sql|dbapi_connection|sqlite3\.connect")


def test_raw_database_access_is_confined() -> None:
    import garrison

    root = Path(garrison.__file__).parent
    found = {str(p.relative_to(root)) for p in root.rglob("*.py")
             if not str(p.relative_to(root)).startswith("agent/") and _RAW.search(p.read_text())}
    assert found <= RAW_ACCESS_ALLOWED, f"raw database access outside the guard in {sorted(found - RAW_ACCESS_ALLOWED)}"
