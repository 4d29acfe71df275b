"""The event store's conformance suite: the same tests on DuckDB and on ClickHouse's engine (chdb).

Every read path of the tenant-bound handle is run against two tenants and device groups: no read
returns another tenant's (or another group's) rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from garrison.edr.events import BatchIn, EventStore, EventStoreError, open_event_store, schema

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=123456)


@pytest.fixture(params=["duckdb", "chdb"])
def event_store(request: pytest.FixtureRequest, tmp_path) -> Iterator[EventStore]:  # type: ignore[no-untyped-def]
    url = f"duckdb:///{tmp_path / 'events.duckdb'}" if request.param == "duckdb" else f"chdb://{tmp_path / 'ch'}"
    store = open_event_store(url)
    yield store
    store.close()


def ts(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def proc(t: dt.datetime, pid: int, name: str, ppid: int | None = None, **more: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"Table": "DeviceProcessEvents", "Timestamp": t, "ActionType": "ProcessCreated",
                          "ProcessId": pid, "FileName": name, "FolderPath": f"/usr/bin/{name}",
                          "ProcessCommandLine": f"{name} --run", "ProcessCreationTime": t, **more}
    if ppid is not None:
        ev["InitiatingProcessId"] = ppid
    return ev


def fill(store: EventStore) -> None:
    """Tenant 1: devices d1 (group A) and d2 (group B); tenant 2: device x1 — same pids, same names."""
    for tenant, device in ((1, "d1"), (1, "d2"), (2, "x1")):
        events = [proc(ts(50), 100, "bash", 1), proc(ts(40), 101, "curl", 100, AccountName=f"user-{device}"),
                  {"Table": "DeviceNetworkEvents", "Timestamp": ts(30), "ActionType": "ConnectionSuccess",
                   "RemoteIP": "8.8.8.8", "RemotePort": 53, "InitiatingProcessId": 101},
                  {"Table": "DeviceFileEvents", "Timestamp": ts(20), "ActionType": "FileCreated",
                   "FileName": f"secret-{device}", "FolderPath": "/tmp", "FileSize": 10},
                  {"Table": "DeviceLogonEvents", "Timestamp": ts(10), "ActionType": "LogonSuccess",
                   "AccountName": "root", "LogonType": "RemoteInteractive", "RemoteIP": "192.168.1.5",
                   "IsLocalAdmin": True},
                  {"Table": "DeviceInfo", "Timestamp": ts(5), "OSPlatform": "Linux", "OSBuild": 12}]
        assert store.write([BatchIn(tenant, device, f"host-{device}", 1, events, drops=3)])[0].status == "accepted"


def test_batches_are_stored_once_per_device_and_seq(event_store: EventStore) -> None:
    ev = [proc(ts(1), 1, "a")]
    out = event_store.write([BatchIn(1, "d", "h", 7, ev), BatchIn(1, "d", "h", 7, ev), BatchIn(1, "e", "h", 7, ev)])
    assert [o.status for o in out] == ["accepted", "duplicate", "accepted"]
    assert event_store.write([BatchIn(1, "d", "h", 7, ev)])[0].status == "duplicate"
    imports = [event_store.write([BatchIn(1, "d", "h", 0, ev)])[0].seq for _ in range(2)]
    assert imports == [-1, -2]
    rows = event_store.scope(1).timeline("d", ts(60), NOW + dt.timedelta(1))
    assert len(rows) == 3 and len({r["ReportId"] for r in rows}) == 3


def test_every_mde_type_round_trips(event_store: EventStore) -> None:
    ev = {"Table": "DeviceNetworkEvents", "Timestamp": NOW, "ActionType": "ConnectionFailed", "RemoteIP": "2001:db8::1",
          "RemotePort": 65535, "LocalIP": "::1", "LocalPort": 1, "Protocol": "Tcp", "InitiatingProcessId": 2**40,
          "IsInitiatingProcessRemoteSession": False, "InitiatingProcessCreationTime": ts(3600),
          "InitiatingProcessCommandLine": "q'uote \\ back%slash_ \u00e9\u4e2d", "AdditionalFields": {"k": [1, "v"]}}
    event_store.write([BatchIn(1, "d", "host", 1, [ev])])
    (row,) = event_store.scope(1).timeline("d", ts(10), NOW + dt.timedelta(seconds=1))
    assert row["Timestamp"] == NOW and row["InitiatingProcessCreationTime"] == ts(3600)
    assert row["RemotePort"] == 65535 and row["InitiatingProcessId"] == 2**40
    assert row["IsInitiatingProcessRemoteSession"] is False
    assert row["InitiatingProcessCommandLine"] == ev["InitiatingProcessCommandLine"]
    assert row["AdditionalFields"] == '{"k":[1,"v"]}'
    assert row["RemoteIPType"] == "Reserved" or row["RemoteIPType"] == "Private"  # documentation range
    assert row["LocalIPType"] == "Loopback" and row["DeviceName"] == "host"
    assert row["ReportId"] == (1 << 16)


def test_timeline_orders_filters_searches_and_pages(event_store: EventStore) -> None:
    fill(event_store)
    sc = event_store.scope(1)
    end = NOW + dt.timedelta(seconds=1)
    rows = sc.timeline("d1", ts(3600), end)
    assert [r["Table"] for r in rows] == ["DeviceLogonEvents", "DeviceFileEvents", "DeviceNetworkEvents",
                                          "DeviceProcessEvents", "DeviceProcessEvents"]  # no DeviceInfo: not an event
    assert [r["Timestamp"] for r in rows] == sorted((r["Timestamp"] for r in rows), reverse=True)
    assert sc.timeline("d1", ts(3600), end, ascending=True, top=1)[0]["Table"] == "DeviceProcessEvents"
    assert [r["ActionType"] for r in sc.timeline("d1", ts(35), ts(15))] == ["FileCreated", "ConnectionSuccess"]
    assert [r["Table"] for r in sc.timeline("d1", ts(3600), end, tables=["DeviceNetworkEvents"])] == [
        "DeviceNetworkEvents"]
    # the connection matches too: its initiating process (linked at ingest) is curl
    assert [(r["Table"], r.get("FileName")) for r in sc.timeline("d1", ts(3600), end, search="CURL --")] == [
        ("DeviceNetworkEvents", None), ("DeviceProcessEvents", "curl")]
    assert sc.timeline("d1", ts(3600), end, search="100%") == []  # LIKE wildcards are literal
    assert [r["FileName"] for r in sc.timeline("d1", ts(3600), end, where=lambda c: c["ProcessId"] == 100)] == ["bash"]
    # a column some tables lack is NULL there: "ne" keeps their rows, as OData's null semantics ask
    assert len(sc.timeline("d1", ts(3600), end, where=lambda c: sa.or_(c["RemotePort"].is_(None),
                                                                          c["RemotePort"] != 53))) == 4
    assert [r["Table"] for r in sc.timeline("d1", ts(3600), end, top=2, skip=1)] == ["DeviceFileEvents",
                                                                                      "DeviceNetworkEvents"]
    assert sc.timeline_count("d1", ts(3600), end) == 5
    assert sc.timeline_count("d1", ts(3600), end, search="curl") == 2  # curl and its connection


def test_process_tree_and_single_event(event_store: EventStore) -> None:
    fill(event_store)
    sc = event_store.scope(1)
    tree = sc.process_tree("d1", 101)
    assert tree["process"]["FileName"] == "curl"
    assert [a["FileName"] for a in tree["ancestors"]] == [None, "bash"]  # pid 1 was never recorded
    assert sc.process_tree("d1", 100)["children"][0]["FileName"] == "curl"
    row = sc.timeline("d1", ts(3600), NOW + dt.timedelta(1), tables=["DeviceFileEvents"])[0]
    assert sc.event("DeviceFileEvents", "d1", row["ReportId"])["FileName"] == "secret-d1"


def _every_read(sc: Any, device: str) -> list[Any]:
    end = NOW + dt.timedelta(seconds=1)
    report = 1 << 16 | 3
    return [sc.timeline(device, ts(3600), end), sc.timeline_count(device, ts(3600), end) or [],
            sc.event("DeviceFileEvents", device, report) or [], sc.process_tree(device, 101)["process"] or [],
            sc.process_tree(device, 100)["children"],
            *[[r for r in sc.rows(t) if r["DeviceId"] == device] for t in schema.TABLES],
            {k: v for k, v in sc.sensor_stats(ts(3600)).items() if k == device}]


def test_no_read_path_returns_another_tenants_or_groups_rows(event_store: EventStore) -> None:
    fill(event_store)
    # tenant 1 sees its devices on every path...
    assert all(_every_read(event_store.scope(1), "d1")[i] for i in (0, 1, 2, 3, 4))
    # ...tenant 2 sees nothing of tenant 1's device, on every path, and the reverse
    assert not any(_every_read(event_store.scope(2), "d1"))
    assert not any(_every_read(event_store.scope(1), "x1"))
    assert all(r["DeviceId"] == "x1" for t in schema.TABLES for r in event_store.scope(2).rows(t))
    assert set(event_store.scope(2).sensor_stats(ts(3600))) == {"x1"}
    # a caller limited to group A (device d1) sees nothing of d2
    limited = event_store.scope(1, device_ids=["d1"])
    assert not any(_every_read(limited, "d2"))
    assert all(_every_read(limited, "d1")[i] for i in (0, 1, 2, 3))
    assert set(limited.sensor_stats(ts(3600))) == {"d1"}
    assert {r["DeviceId"] for t in schema.TABLES for r in limited.rows(t)} == {"d1"}
    assert not any(_every_read(event_store.scope(1, device_ids=[]), "d1"))


def test_a_statement_without_the_scope_is_refused(event_store: EventStore) -> None:
    fill(event_store)
    sc = event_store.scope(2)
    raw = schema.TABLE_OBJECTS["DeviceProcessEvents"]
    src = schema.source("DeviceProcessEvents")
    # a raw table, a scoped select joined to a raw table, a raw table in a sub-select: all refused
    other = raw.alias("other")
    for stmt in (sa.select(raw), sa.select(other), src.select().join(other, other.c.ProcessId == src.c.ProcessId),
                 src.select().where(src.c.ProcessId.in_(sa.select(raw.c.ProcessId)))):
        with pytest.raises(EventStoreError, match="without the tenant scope"):
            sc._run(stmt)
    # a scoped sub-select is fine, and sees only this tenant
    assert {r["TenantId"] for r in sc._run(sa.select(src.select().subquery()))} == {2}


def test_retention_drops_old_events(event_store: EventStore) -> None:
    old = NOW - dt.timedelta(days=200)
    event_store.write([BatchIn(1, "d", "h", 1, [proc(old, 1, "old"), proc(ts(1), 2, "new")])])
    event_store.prune(NOW)
    names = [r["FileName"] for r in event_store.scope(1).timeline("d", NOW - dt.timedelta(days=365),
                                                                  NOW + dt.timedelta(1))]
    assert names == ["new"]
