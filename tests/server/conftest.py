"""A real app on a real state store (SQLite and PostgreSQL), with two tenants and keys of every role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.core import access
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store


@dataclass
class TenantKeys:
    id: int
    name: str
    keys: dict[str, str] = field(default_factory=dict)
    enroll_secret: str = ""

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Env:
    store: Store
    client: TestClient
    a: TenantKeys
    b: TenantKeys
    app: Any


def make_tenant(store: Store, name: str) -> TenantKeys:
    with store.system() as s:
        t = access.create_tenant(s, name)
        tk = TenantKeys(t.id, name)
        for role in ("admin", "security_operator", "analyst"):
            _row, key = access.create_api_key(s, t.id, role, f"{role} key", "test")
            tk.keys[role] = key
        _row, tk.enroll_secret = access.create_enrollment_secret(s, t.id)
    return tk


@pytest.fixture
def env(store: Store, tmp_path) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    load_services()
    settings = ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=False, heartbeat_interval=0)
    app = create_app(settings, store)
    a, b = make_tenant(store, "alpha"), make_tenant(store, "bravo")
    with TestClient(app, base_url="https://testserver") as client:
        yield Env(store, client, a, b, app)


def enroll(client: TestClient, secret: str, machine_key: str = "m" * 16, hostname: str = "host-1") -> dict[str, Any]:
    r = client.post("/agent/v1/enroll", json={"secret": secret, "machine_key": machine_key, "hostname": hostname,
                                              "agent_version": "0.1.0"})
    assert r.status_code == 200, r.text
    return r.json()


def device_headers(enrolled: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Device {enrolled['device_id']}:{enrolled['credential']}"}


_seq: dict[str, int] = {}


def upload(client: TestClient, enrolled: dict[str, Any], kind: str, payload: dict[str, Any], seq: int | None = None) -> Any:
    dev = enrolled["device_id"]
    if seq is None:
        seq = _seq.get(dev, 0) + 1
    _seq[dev] = max(seq, _seq.get(dev, 0))
    return client.post("/agent/v1/batches", headers=device_headers(enrolled),
                       json={"seq": seq, "kind": kind, "created_at": "2026-11-24T00:00:00Z", "payload": payload})


def device_report(hostname: str = "host-1", **extra: Any) -> dict[str, Any]:
    report = {"hostname": hostname, "fqdn": f"{hostname}.corp.example", "os_platform": "Linux",
              "os_version": "12", "os_build": "Debian GNU/Linux 12 (bookworm)", "os_id": "debian",
              "os_version_id": "12", "os_codename": "bookworm", "kernel": "6.1.0-18-amd64",
              "architecture": "x86_64", "ip_addresses": ["127.0.0.1", "10.20.30.40", "fe80::1"],
              "mac_addresses": ["02:42:ac:11:00:02"], "boot_time": "2026-11-20T08:00:00Z",
              "logged_on_users": [{"user": "alice", "terminal": "tty1", "host": ""}], "agent_version": "0.1.0"}
    report.update(extra)
    return report
