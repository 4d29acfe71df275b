"""A tenant with device groups and devices in a real state store (``store`` from tests/conftest.py
runs every test on SQLite and on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from garrison.protocol.assessment import AssessmentReport
from garrison.store.db import Store
from garrison.store.models.core import Device, DeviceGroup, Tenant

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@dataclass
class Fleet:
    store: Store
    tenant: int
    groups: dict[str, int]
    devices: dict[str, str]  # name -> device id


def make_tenant(store: Store, name: str) -> int:
    with store.system() as s:
        t = Tenant(name=name)
        s.add(t)
        s.flush()
        return t.id


def make_fleet(store: Store, name: str = "acme") -> Fleet:
    tenant = make_tenant(store, name)
    with store.tenant(tenant) as s:
        web = DeviceGroup(name="web", rank=1)
        db = DeviceGroup(name="db", rank=2)
        s.add_all([web, db])
        s.flush()
        groups = {"web": web.id, "db": db.id}
        devices = {
            "web1": Device(computer_dns_name="web1.acme.test", os_platform="Debian", group_id=web.id),
            "db1": Device(computer_dns_name="db1.acme.test", os_platform="RockyLinux", group_id=db.id),
            "lab1": Device(computer_dns_name="lab1.acme.test", os_platform="Ubuntu"),
            "gone": Device(
                computer_dns_name="gone.acme.test",
                os_platform="Debian",
                group_id=web.id,
                offboarded_at=NOW - dt.timedelta(days=2),
            ),
            "stale": Device(computer_dns_name="stale.acme.test", os_platform="Debian", group_id=web.id),
        }
        s.add_all(devices.values())
        s.flush()
        ids = {k: d.id for k, d in devices.items()}
    return Fleet(store, tenant, groups, ids)


def report(
    results: dict[str, str],
    *,
    mode: str = "full",
    generation: int = 1,
    base: int | None = None,
    at: dt.datetime = NOW,
    removed: list[str] | None = None,
    evidence: dict[str, dict[str, Any]] | None = None,
) -> AssessmentReport:
    evidence = evidence or {}
    return AssessmentReport(
        mode=mode,
        generation=generation,
        base_generation=base,
        assessed_at=at,
        checks_version="test",
        os_family="debian",
        removed=removed or [],
        results=[
            {"check_id": cid, "status": st, "evidence": evidence.get(cid, {"message": f"{cid}: {st}"})}
            for cid, st in results.items()
        ],
    )


@pytest.fixture
def fleet(store: Store) -> Fleet:
    return make_fleet(store)
