"""AccessScope: the one device-group scope, and the handle it gives the event store."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import aliased

from garrison.core import access
from garrison.core.access import Principal
from garrison.core.errors import NotFound
from garrison.core.scope import AccessScope
from garrison.edr.events import open_event_store
from garrison.store.db import Store, TenantScopeError, run_sql, tenant_query
from garrison.store.models.core import Device, MachineAction
from garrison.store.models.prioritisation import TimelineEvent
from garrison.store.models.tvm import GroupVulnerabilityCount


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


# --- the group scope applied by the storage layer (garrison.store.groups) ---------------------------

def _two_groups(store: Store) -> tuple[int, dict[str, int], dict[str, str]]:
    """Tenant a: web-1 in "web", db-1 in "db", and one machine action and one summary row each."""
    with store.system() as s:
        a = access.create_tenant(s, "a").id
    with store.tenant(a) as s:
        groups = {name: access.create_group(s, name, rank, {"name": f"{name}-*"}).id
                  for rank, name in enumerate(("web", "db"), 1)}
        for name in ("web-1", "db-1"):
            d = Device(computer_dns_name=name)
            s.add(d)
            s.flush()
            access.assign_group(s, d)
            s.add(MachineAction(id=f"act-{name}", device_id=d.id, type="RunAntiVirusScan"))
            s.add(GroupVulnerabilityCount(group_id=d.group_id, vulnerability_id="CVE-2024-1", exposed=1))
            s.add(TimelineEvent(kind="NewVulnerability", source_key=name, impacted_by_group={str(d.group_id): 1}))
        ids = {d.computer_dns_name: d.id for d in s.scalars(select(Device))}
    return a, groups, ids


def test_a_group_scoped_session_reads_only_its_groups_rows(store: Store) -> None:
    a, groups, ids = _two_groups(store)
    with store.tenant(a, groups=[groups["web"]]) as s:
        assert [d.computer_dns_name for d in s.scalars(select(Device))] == ["web-1"]
        assert s.scalar(select(func.count()).select_from(Device)) == 1
        # device-bound tables, joins, aliases, subqueries and aggregates alike
        assert [m.id for m in s.scalars(select(MachineAction))] == ["act-web-1"]
        other = aliased(Device)
        assert s.execute(select(MachineAction.id, other.computer_dns_name)
                         .join(other, other.id == MachineAction.device_id)).all() == [("act-web-1", "web-1")]
        assert s.scalar(select(func.count()).select_from(
            select(MachineAction.id).where(MachineAction.device_id.in_(list(ids.values()))).subquery())) == 1
        assert s.scalar(select(func.sum(GroupVulnerabilityCount.exposed))) == 1
        assert s.scalar(select(func.count(TimelineEvent.id))) == 1
        assert s.get(Device, ids["db-1"]) is None
        # bulk writes reach only the groups' rows
        s.execute(update(MachineAction).values(status="Cancelled"))
        s.execute(delete(GroupVulnerabilityCount))
    with store.tenant(a) as s:  # every group: the other group's rows are untouched
        assert dict(s.execute(select(MachineAction.id, MachineAction.status)).all()) == {
            "act-web-1": "Cancelled", "act-db-1": "Pending"}
        assert s.scalar(select(func.count()).select_from(GroupVulnerabilityCount)) == 1
        assert s.scalar(select(func.count()).select_from(Device)) == 2


def test_a_caller_opens_its_own_scope_and_no_groups_means_no_rows(store: Store) -> None:
    a, groups, _ids = _two_groups(store)
    db_user = Principal(tenant_id=a, actor="u", actor_type="user", role="analyst", group_ids=(groups["db"],))
    with store.tenant(db_user) as s:
        assert [d.computer_dns_name for d in s.scalars(select(Device))] == ["db-1"]
    with store.tenant(Principal(tenant_id=a, actor="u", actor_type="user", role="analyst", group_ids=())) as s:
        assert s.scalars(select(Device)).all() == [] and s.scalars(select(MachineAction)).all() == []
    with store.tenant(Principal(tenant_id=a, actor="u", actor_type="user", role="analyst")) as s:
        assert s.scalar(select(func.count()).select_from(Device)) == 2


def test_a_group_scoped_session_writes_only_its_groups_rows(store: Store) -> None:
    a, groups, ids = _two_groups(store)
    with pytest.raises(TenantScopeError), store.tenant(a, groups=[groups["web"]]) as s:
        s.add(MachineAction(id="sneaky", device_id=ids["db-1"], type="IsolateMachine"))
    with pytest.raises(TenantScopeError), store.tenant(a, groups=[groups["web"]]) as s:
        web = s.scalars(select(Device)).one()
        web.group_id = groups["db"]  # moving a device out of the caller's groups
    with store.tenant(a, groups=[groups["web"]]) as s:
        s.add(MachineAction(id="fine", device_id=ids["web-1"], type="RunAntiVirusScan"))
    with store.tenant(a) as s:
        assert sorted(s.scalars(select(MachineAction.id))) == ["act-db-1", "act-web-1", "fine"]
        assert s.get(Device, ids["web-1"]).group_id == groups["web"]


def test_core_statements_on_group_scoped_tables_are_refused_in_a_group_scoped_session(store: Store) -> None:
    # The group criteria reach ORM entities only: Core on a device-bound table would see every group.
    a, groups, _ids = _two_groups(store)
    t = Device.__table__
    named = select(t.c.computer_dns_name).where(t.c.tenant_id == a)
    with store.tenant(a, groups=[groups["web"]]) as s:
        for run in (s.execute, s.connection().execute):
            with pytest.raises(TenantScopeError, match="group-scoped"):
                run(named)
            with pytest.raises(TenantScopeError, match="group-scoped"):
                run(update(t).where(t.c.tenant_id == a).values(device_value="High"))
    with store.tenant(a) as s:  # every group: the tenant rule alone, as before
        assert sorted(s.execute(named).scalars()) == ["db-1", "web-1"]


def test_hand_written_sql_is_narrowed_to_the_groups_by_the_same_helper(store: Store) -> None:
    a, groups, _ids = _two_groups(store)
    reads = {
        "SELECT d.computer_dns_name FROM devices d WHERE d.tenant_id = :tenant": ["web-1"],
        "SELECT computer_dns_name FROM devices WHERE tenant_id = :tenant ORDER BY 1": ["web-1"],
        "SELECT devices.computer_dns_name FROM devices WHERE devices.tenant_id = :tenant": ["web-1"],
        "SELECT m.id FROM machine_actions m JOIN devices d ON d.id = m.device_id AND d.tenant_id = :tenant "
        "WHERE m.tenant_id = :tenant": ["act-web-1"],
        "SELECT m.id FROM machine_actions AS m WHERE m.tenant_id = :tenant": ["act-web-1"],
        "SELECT count(*) FROM machine_actions m WHERE m.tenant_id = :tenant": [1],
        'SELECT count(*) FROM "DeviceTvmSoftwareInventory" WHERE "TenantId" = :tenant': [0],
    }
    with store.tenant(a, groups=[groups["web"]]) as s:
        for sql, expected in reads.items():
            assert run_sql(s, sql).scalars().all() == expected, sql
        sql, params = tenant_query(s, "SELECT d.id FROM devices d WHERE d.tenant_id = :tenant")
        assert "group_id IN" in sql and params == {"tenant": a}  # what the raw sqlite3 readers get
        for sql in ("UPDATE devices SET device_value = 'High' WHERE tenant_id = :tenant",
                    "DELETE FROM machine_actions WHERE tenant_id = :tenant",
                    "SELECT g.exposed FROM tvm_group_vulnerabilities g WHERE g.tenant_id = :tenant"):
            with pytest.raises(TenantScopeError):
                run_sql(s, sql)
    with store.tenant(a) as s:
        assert run_sql(s, "SELECT count(*) FROM devices d WHERE d.tenant_id = :tenant").scalar() == 2
