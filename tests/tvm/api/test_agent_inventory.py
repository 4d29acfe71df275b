"""Inventory and runtime uploads through the agent protocol: snapshot, delta, resync, history, findings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from garrison.inventory import parse_dpkg_status, parse_os_release
from garrison.store.models.tvm import DeviceInventoryState, SoftwareHistory
from garrison.tvm import matching
from garrison.tvm.findings import open_findings, resolved_findings
from garrison.tvm.kb import import_paths
from tests.tvm.api.conftest import FOCAL, GA_OS, GA_STATUS, Env, device_headers, enroll, get, upload

OS = parse_os_release(GA_OS.read_bytes())


def _packages() -> list[dict[str, Any]]:
    return [p.model_dump() for p in parse_dpkg_status(GA_STATUS.read_bytes(), OS)]


def _snapshot(gen: int, packages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"mode": "snapshot", "generation": gen, "os": OS.model_dump(), "packages": packages}


def _delta(gen: int, base: int, added: list[dict[str, Any]], removed: list[dict[str, Any]]) -> dict[str, Any]:
    return {"mode": "delta", "generation": gen, "base_generation": base, "os": OS.model_dump(),
            "added": added, "removed": removed}


def _bump(pkg: dict[str, Any], version: str) -> dict[str, Any]:
    return {**pkg, "version": version, "source_version": version}


def _history(env: Env, device_id: str) -> list[tuple[str, str | None, str | None, str]]:
    with env.store.tenant(env.a.id) as s:
        rows = s.scalars(select(SoftwareHistory).where(SoftwareHistory.device_id == device_id)
                         .order_by(SoftwareHistory.id))
        return [(r.software_id, r.old_version, r.new_version, r.event) for r in rows]


def test_snapshot_then_delta_updates_findings_and_history(env: Env) -> None:
    result = import_paths(env.store, [FOCAL])
    matching.rematch_changed(env.store, result.changed_packages)
    dev = enroll(env.client, env.a.enroll_secret)
    pkgs = _packages()
    assert upload(env.client, dev, "inventory", _snapshot(1, pkgs)).status_code == 200
    with env.store.tenant(env.a.id) as s:
        before = {f.vulnerability_id for f in open_findings(s, dev["device_id"]) if f.package == "sudo"}
    assert before == {"CVE-2021-3156", "CVE-2021-23239"}
    assert _history(env, dev["device_id"]) == []  # the first inventory is the baseline

    sudo = next(p for p in pkgs if p["name"] == "sudo")
    tar = next(p for p in pkgs if p["name"] == "tar")
    new_pkg = {**sudo, "name": "sudo-extra", "source_name": "sudo-extra", "purl": ""}
    r = upload(env.client, dev, "inventory",
               _delta(2, 1, added=[_bump(sudo, "1.8.31-1ubuntu1.2"), new_pkg], removed=[sudo, tar]))
    assert r.status_code == 200, r.text
    with env.store.tenant(env.a.id) as s:
        now_open = open_findings(s, dev["device_id"])
        done = resolved_findings(s, dev["device_id"])
        state = s.get(DeviceInventoryState, dev["device_id"])
    assert not any(f.package == "sudo" for f in now_open)
    assert not any(f.software_id == "ubuntu-_-tar" for f in now_open)
    assert {(f.vulnerability_id, f.status) for f in done if f.software_id == "ubuntu-_-sudo"} == \
        {("CVE-2021-3156", "updated"), ("CVE-2021-23239", "updated")}
    assert {f.status for f in done if f.software_id == "ubuntu-_-tar"} == {"uninstalled"}
    assert state.generation == 2 and state.package_count == len(pkgs)
    assert sorted(_history(env, dev["device_id"])) == sorted([
        ("ubuntu-_-sudo", "1.8.31-1ubuntu1", "1.8.31-1ubuntu1.2", "updated"),
        ("ubuntu-_-sudo-extra", None, "1.8.31-1ubuntu1", "installed"),
        ("ubuntu-_-tar", tar["version"], None, "uninstalled"),
    ])


def test_delta_on_a_stale_base_asks_for_a_snapshot_and_changes_nothing(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    pkgs = _packages()
    assert upload(env.client, dev, "inventory", _snapshot(5, pkgs)).status_code == 200
    sudo = next(p for p in pkgs if p["name"] == "sudo")
    r = upload(env.client, dev, "inventory", _delta(7, 6, added=[], removed=[sudo]))
    assert r.status_code == 200
    checkin = env.client.post("/agent/v1/checkin", headers=device_headers(dev), json={"agent_version": "0.1.0"})
    assert checkin.json()["resync"] == ["inventory"]
    with env.store.tenant(env.a.id) as s:
        state = s.get(DeviceInventoryState, dev["device_id"])
    assert state.generation == 5 and state.package_count == len(pkgs)
    soft = get(env, f"/api/machines/{dev['device_id']}/software", **{"$filter": "name eq 'sudo'"}).json()["value"]
    assert len(soft) == 1

    # A delta before any snapshot is refused the same way.
    other = enroll(env.client, env.a.enroll_secret, machine_key="o" * 16, hostname="host-2")
    upload(env.client, other, "inventory", _delta(2, 1, added=[sudo], removed=[]))
    again = env.client.post("/agent/v1/checkin", headers=device_headers(other), json={"agent_version": "0.1.0"})
    assert again.json()["resync"] == ["inventory"]


def test_runtime_context(env: Env) -> None:
    result = import_paths(env.store, [FOCAL])
    matching.rematch_changed(env.store, result.changed_packages)
    dev = enroll(env.client, env.a.enroll_secret)
    upload(env.client, dev, "inventory", _snapshot(1, _packages()))
    seen = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    r = upload(env.client, dev, "runtime", {"packages": [
        {"manager": "dpkg", "name": "sudo", "last_seen": seen.isoformat()},
        {"manager": "dpkg", "name": "bash", "last_seen": future.isoformat()},  # a wrong clock is clamped
        {"manager": "dpkg", "name": "not-installed", "last_seen": seen.isoformat()},
    ]})
    assert r.status_code == 200, r.text
    mid = dev["device_id"]
    sudo = get(env, f"/api/machines/{mid}/software", **{"$filter": "name eq 'sudo'"}).json()["value"][0]
    assert sudo["inUse"] is True and sudo["lastUsed"].startswith(seen.date().isoformat())
    bash = get(env, f"/api/machines/{mid}/software", **{"$filter": "name eq 'bash'"}).json()["value"][0]
    assert dt.datetime.fromisoformat(bash["lastUsed"]) < dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert get(env, "/api/Software/ubuntu-_-sudo").json()["inUseMachines"] == 1
    baron = next(v for v in get(env, f"/api/machines/{mid}/vulnerabilities").json()["value"]
                 if v["id"] == "CVE-2021-3156")
    assert baron["inUse"] is True

    # An older report does not move lastUsed back.
    upload(env.client, dev, "runtime", {"packages": [
        {"manager": "dpkg", "name": "sudo", "last_seen": (seen - dt.timedelta(days=3)).isoformat()}]})
    again = get(env, f"/api/machines/{mid}/software", **{"$filter": "name eq 'sudo'"}).json()["value"][0]
    assert again["lastUsed"] == sudo["lastUsed"]


def test_invalid_inventory_payload_is_refused(env: Env) -> None:
    dev = enroll(env.client, env.a.enroll_secret)
    r = upload(env.client, dev, "inventory", {"mode": "snapshot", "generation": 1,
                                               "packages": [{"manager": "DPKG!", "name": "x", "version": "1"}]})
    assert r.status_code == 422
    assert "packages.0.manager" in r.json()["error"]["message"]
    with env.store.tenant(env.a.id) as s:
        assert s.get(DeviceInventoryState, dev["device_id"]) is None
