"""Real feeds and real inventories (tests/data/tvm, see PROVENANCE.md) on a real state store."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from garrison.core import access
from garrison.store.db import Store
from garrison.tvm.findings import Finding, open_findings, resolved_findings

DATA = Path(__file__).resolve().parents[2] / "data" / "tvm"
INVENTORIES = DATA / "inventories"
FOCAL = DATA / "ubuntu-focal"
PYPA = DATA / "pypa"
SECDB = DATA / "alpine-secdb"


@dataclass
class Fleet:
    store: Store
    tenant_id: int


@pytest.fixture
def fleet(store: Store) -> Fleet:
    with store.system() as s:
        tenant = access.create_tenant(s, "alpha")
        return Fleet(store, tenant.id)


def findings(fleet: Fleet, device_id: str) -> list[Finding]:
    with fleet.store.tenant(fleet.tenant_id) as s:
        return open_findings(s, device_id)


def resolved(fleet: Fleet, device_id: str) -> list[Finding]:
    with fleet.store.tenant(fleet.tenant_id) as s:
        return resolved_findings(s, device_id)


def focal_sources() -> list[dict[str, str]]:
    with open(FOCAL / "SOURCES.csv", newline="") as fh:
        return list(csv.DictReader(fh))
