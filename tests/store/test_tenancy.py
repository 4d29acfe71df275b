"""Tenant isolation is enforced by the storage layer, not by each query's author."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from garrison.core import access
from garrison.store.db import Store, TenantScopeError
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
