"""Every value the agent protocol accepts fits the column it is stored in: the wire models and the columns
take their lengths from garrison.protocol.limits, and this file holds them to it. On a state store built by
the migrations (what a server runs on), SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import Column, select

from garrison.core.heartbeats import HeartbeatBuffer
from garrison.protocol import CheckinRequest, DeviceReport, EnrollRequest, OsIdentity, SoftwarePackage
from garrison.protocol.assessment import AssessmentReport
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store import migrate
from garrison.store.db import Store
from garrison.store.models.assessment import DeviceAssessmentState
from garrison.store.models.core import Device
from garrison.store.models.tvm import DeviceInventoryState, DevicePackage, PackageVersion
from tests.server.conftest import device_headers, enroll, make_tenant, upload

D, P, I = Device.__table__.c, PackageVersion.__table__.c, DeviceInventoryState.__table__.c

# (wire model, field) -> the column its value is stored in as it is.
STORED: dict[tuple[type[BaseModel], str], Column[Any]] = {
    (EnrollRequest, "machine_key"): D.machine_key,
    (EnrollRequest, "hostname"): D.computer_dns_name,
    (EnrollRequest, "agent_version"): D.agent_version,
    (CheckinRequest, "agent_version"): D.agent_version,
    (DeviceReport, "hostname"): D.computer_dns_name,
    (DeviceReport, "fqdn"): D.computer_dns_name,
    (DeviceReport, "machine_key"): D.machine_key,
    (DeviceReport, "os_platform"): D.os_platform,
    (DeviceReport, "os_version"): D.os_version,
    (DeviceReport, "os_build"): D.os_build,
    (DeviceReport, "os_id"): D.os_id,
    (DeviceReport, "os_codename"): D.os_codename,
    (DeviceReport, "kernel"): D.kernel,
    (DeviceReport, "architecture"): D.os_processor,
    (DeviceReport, "processor"): D.os_processor,
    (DeviceReport, "agent_version"): D.agent_version,
    (AssessmentReport, "checks_version"): DeviceAssessmentState.__table__.c.checks_version,
    (AssessmentReport, "os_family"): DeviceAssessmentState.__table__.c.os_family,
    (OsIdentity, "id"): I.os_id,
    (OsIdentity, "version_id"): I.os_version_id,
    (OsIdentity, "codename"): I.os_codename,
    (SoftwarePackage, "name"): P.name,
    (SoftwarePackage, "version"): P.version,
    (SoftwarePackage, "source_name"): P.source_name,
    (SoftwarePackage, "source_version"): P.source_version,
    (SoftwarePackage, "arch"): P.arch,
}
# String fields of those models that reach no sized column as they are, and why.
NOT_SIZED = {
    (EnrollRequest, "secret"): "compared with a hash, never stored",
    (DeviceReport, "os_version_id"): "not stored on the device (the inventory's OsIdentity is)",
    (OsIdentity, "name"): "not stored",
    (OsIdentity, "pretty_name"): "agentless imports only, cut to os_build's size there",
    (OsIdentity, "id_like"): "not stored",
    (SoftwarePackage, "manager"): "pattern of at most 32 = package_versions.manager",
    (SoftwarePackage, "ecosystem"): "an input to the derived ecosystem",
    (SoftwarePackage, "epoch"): "not stored",
    (SoftwarePackage, "vendor"): "not stored",
    (SoftwarePackage, "purl"): "Text column",
    (SoftwarePackage, "path"): f"cut to device_packages.path ({DevicePackage.__table__.c.path.type.length}) by the handler",
    (SoftwarePackage, "cpe"): "parsed, not stored",
}


def max_length(model: type[BaseModel], name: str) -> int | None:
    for meta in model.model_fields[name].metadata:
        if getattr(meta, "max_length", None) is not None:
            return int(meta.max_length)
    return None


def test_every_stored_wire_field_has_its_columns_length() -> None:
    for (model, name), column in STORED.items():
        assert max_length(model, name) == column.type.length, f"{model.__name__}.{name} vs {column}"
    models = {model for model, _ in STORED}
    for model in models:
        for name, info in model.model_fields.items():
            if info.annotation is str:
                assert (model, name) in STORED or (model, name) in NOT_SIZED, \
                    f"{model.__name__}.{name}: say which column it is stored in (or that none is sized)"


@pytest.fixture
def migrated(db_url: str, tmp_path: Any) -> Iterator[tuple[Store, TestClient, Any]]:
    """The app on a store built by the migrations, batches applied in the request (no worker)."""
    store = Store(db_url)
    migrate.upgrade(store.engine)
    load_services()
    settings = ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=False, heartbeat_interval=0)
    tenant = make_tenant(store, "alpha")
    try:
        with TestClient(create_app(settings, store), base_url="https://testserver") as client:
            yield store, client, tenant
    finally:
        store.dispose()


def longest(model: type[BaseModel], name: str, extra: int = 0) -> str:
    return "v" * (max_length(model, name) or 0) + "x" * extra


def test_the_longest_values_the_protocol_accepts_are_stored(migrated: tuple[Store, TestClient, Any]) -> None:
    store, client, tenant = migrated
    r = client.post("/agent/v1/enroll", json={
        "secret": tenant.enroll_secret, "machine_key": longest(EnrollRequest, "machine_key"),
        "hostname": longest(EnrollRequest, "hostname"), "agent_version": longest(EnrollRequest, "agent_version")})
    assert r.status_code == 200, r.text  # was a 500 on PostgreSQL (agent_version 128 > 32)
    dev = r.json()
    r = client.post("/agent/v1/checkin", headers=device_headers(dev),
                    json={"agent_version": longest(CheckinRequest, "agent_version")})
    assert r.status_code == 200
    report = {name: longest(DeviceReport, name) for model, name in STORED if model is DeviceReport}
    r = upload(client, dev, "device", report)
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    r = upload(client, dev, "assessment", {
        "mode": "full", "generation": 1, "assessed_at": "2026-11-24T00:00:00Z",
        "checks_version": longest(AssessmentReport, "checks_version"), "os_family": longest(AssessmentReport, "os_family")})
    assert r.status_code == 200, r.text
    with store.system() as s:
        device = s.get(Device, dev["device_id"])
        assert device is not None and device.os_platform == report["os_platform"]
        assert device.agent_version == report["agent_version"] and device.os_processor == report["architecture"]
        assert s.scalar(select(DeviceAssessmentState.os_family)) == longest(AssessmentReport, "os_family")


def test_one_character_more_is_refused_at_the_edge(migrated: tuple[Store, TestClient, Any]) -> None:
    _store, client, tenant = migrated
    r = client.post("/agent/v1/enroll", json={
        "secret": tenant.enroll_secret, "machine_key": "m" * 16, "hostname": "h",
        "agent_version": longest(EnrollRequest, "agent_version", 1)})
    assert r.status_code == 422 and "agent_version" in r.text
    dev = enroll(client, tenant.enroll_secret)
    r = client.post("/agent/v1/checkin", headers=device_headers(dev),
                    json={"agent_version": longest(CheckinRequest, "agent_version", 1)})
    assert r.status_code == 422
    for model, name in STORED:
        if model is DeviceReport:
            r = upload(client, dev, "device", {"hostname": "h", name: longest(DeviceReport, name, 1)})
            assert r.status_code == 422 and name in r.text, name  # not acknowledged and then parked


def test_one_bad_heartbeat_does_not_cost_the_fleet_its_heartbeats(migrated: tuple[Store, TestClient, Any]) -> None:
    """A row the database refuses (here an over-long version slipped past the wire model, which PostgreSQL
    refuses) is dropped alone; the other devices' heartbeats of the same flush are written."""
    store, client, tenant = migrated
    fleet = [enroll(client, tenant.enroll_secret, f"machine-{i:04d}", f"host-{i}")["device_id"] for i in range(6)]
    buffer = HeartbeatBuffer(store, interval=60)  # flushed by hand below
    at = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    for i, device_id in enumerate(fleet):
        version = "v" * 200 if i == 2 else "2.0.0"
        buffer.note(device_id, CheckinRequest.model_construct(agent_version=version, health={}, drops={},
                                                              spool_pending=0, transport_errors=1), "10.0.0.1", at)
    written = buffer.flush()
    with store.system() as s:
        rows = {d.id: d for d in s.scalars(select(Device))}
    healthy = [d for i, d in enumerate(fleet) if i != 2]
    assert all(rows[d].last_seen is not None and rows[d].agent_version == "2.0.0" for d in healthy)
    assert all(rows[d].last_error_at is not None for d in healthy)
    if store.dialect == "postgresql":
        assert written == 5 and rows[fleet[2]].last_seen is None
