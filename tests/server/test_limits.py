"""Rate limiting per key, and forwarding headers believed only from configured proxies."""

from __future__ import annotations

from fastapi.testclient import TestClient

from garrison.server.app import create_app
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from tests.server.conftest import make_tenant


def test_rate_limit_per_key(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(ServerSettings(data_dir=tmp_path, rate_limit_per_minute=60, run_jobs=False), store)
    a = make_tenant(store, "alpha")
    with TestClient(app) as client:
        codes = [client.get("/api/deviceGroups", headers=a.headers("analyst")).status_code for _ in range(15)]
        assert codes[:10] == [200] * 10 and 429 in codes
        r = client.get("/api/deviceGroups", headers=a.headers("analyst"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        # another key has its own bucket
        assert client.get("/api/deviceGroups", headers=a.headers("admin")).status_code == 200


def test_forwarded_for_only_from_trusted_proxies(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = make_tenant(store, "alpha")
    spoof = {"X-Forwarded-For": "203.0.113.9", **a.headers("admin")}
    body = {"name": "g1", "rules": {"name": "x*"}}
    untrusted = create_app(ServerSettings(data_dir=tmp_path, run_jobs=False), store)
    with TestClient(untrusted) as client:
        client.post("/api/deviceGroups", json=body, headers=spoof)
        entry = client.get("/api/auditLogs", headers=a.headers("admin")).json()["value"][0]
        assert entry["sourceIp"] == "testclient"
    trusted = create_app(ServerSettings(data_dir=tmp_path, run_jobs=False, trusted_proxies=["0.0.0.0/0"]), store)
    with TestClient(trusted, client=("10.0.0.5", 50000)) as client:
        client.post("/api/deviceGroups", json={**body, "name": "g2"}, headers=spoof)
        entries = client.get("/api/auditLogs", headers=a.headers("admin")).json()["value"]
        assert entries[0]["sourceIp"] == "203.0.113.9"
