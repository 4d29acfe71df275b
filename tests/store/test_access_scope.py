"""AccessScope: the one device-group scope, and the handle it gives the event store."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from garrison.core import access
from garrison.core.errors import NotFound
from garrison.core.scope import AccessScope
from garrison.edr.events import open_event_store
from garrison.store.db import Store
from garrison.store.models.core import Device


def test_scope_narrows_a_tenant_to_groups_and_binds_the_event_store(store: Store) -> None:
    with store.system() as s:
        a = access.create_tenant(s, "a").id
    with store.tenant(a) as s:
        web = access.create_group(s, "web", 1, {"name": "web-*"})
        for name in ("web-1", "db-1"):
            d = Device(computer_dns_name=name)
            s.add(d)
            s.flush()
            access.assign_group(s, d)
        ids = {d.computer_dns_name: d.id for d in s.scalars(select(Device))}
    limited, everyone = AccessScope(a, frozenset({web.id})), AccessScope(a, None)
    events = open_event_store("duckdb:///:memory:")
    try:
        with store.tenant(a) as s:
            assert limited.device_ids(s) == {ids["web-1"]} and everyone.device_ids(s) is None
            assert [d.computer_dns_name for d in s.scalars(select(Device).where(limited.devices()))] == ["web-1"]
            assert limited.device(s, ids["web-1"]).computer_dns_name == "web-1"
            with pytest.raises(NotFound):
                limited.device(s, ids["db-1"])
            handle = limited.events(s, events)
            assert handle.tenant_id == a and handle.device_ids == {ids["web-1"]}
            assert handle.sees(ids["web-1"]) and not handle.sees(ids["db-1"])
            assert everyone.events(s, events).device_ids is None
        with store.tenant(a + 1) as s, pytest.raises(NotFound):  # another tenant's session: not found either
            AccessScope(a + 1, None).device(s, ids["web-1"])
    finally:
        events.close()
