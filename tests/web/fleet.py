"""A small fleet seeded through the real paths: devices enroll and upload through ``/agent/v1``,
device groups are made through the API, the knowledge base is imported from ``tests/data/kb``,
inventories are real package databases from ``tests/data/inventories``."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from garrison.core import access
from garrison.store.db import Store

DATA = Path(__file__).resolve().parents[1] / "data"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def find_csrf(text: str) -> str:
    m = _CSRF.search(text)
    assert m, "no CSRF token in the page"
    return html.unescape(m.group(1))


@dataclass
class Device:
    hostname: str
    device_id: str
    credential: str
    seq: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Device {self.device_id}:{self.credential}"}


@dataclass
class Fleet:
    devices: dict[str, Device] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    api_key: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)


TVM = DATA / "tvm"
KB = DATA / "kb"
FOCAL = ("ubuntu-20.04-ga.dpkg-status", "ubuntu-20.04-ga.os-release")
ALPINE = ("alpine-3.15-test.apk-installed", "alpine-3.15-test.os-release")

# hostname → (os-release id, version id, codename, pretty name, inventory files)
HOSTS: dict[str, tuple[str, str, str, str, tuple[str, str] | None]] = {
    "web-01": ("ubuntu", "20.04", "focal", "Ubuntu 20.04 LTS", FOCAL),
    "web-02": ("ubuntu", "20.04", "focal", "Ubuntu 20.04 LTS", FOCAL),
    "web-03": ("ubuntu", "20.04", "focal", "Ubuntu 20.04 LTS", FOCAL),
    "db-01": ("ubuntu", "20.04", "focal", "Ubuntu 20.04 LTS", FOCAL),
    "db-02": ("ubuntu", "20.04", "focal", "Ubuntu 20.04 LTS", FOCAL),
    "app-01": ("alpine", "3.15.0", "", "Alpine Linux v3.15", ALPINE),
    "app-02": ("alpine", "3.15.0", "", "Alpine Linux v3.15", ALPINE),
    "ws-01": ("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)", None),
}
KB_PATHS = [TVM / "ubuntu-focal", TVM / "pypa", TVM / "alpine-secdb" / "v3.15", KB / "nvd", KB / "kev", KB / "epss",
            KB / "exploitdb", KB / "metasploit"]


def device_report(hostname: str, n: int) -> dict[str, Any]:
    os_id, version, codename, pretty, _inv = HOSTS[hostname]
    return {"hostname": hostname, "fqdn": f"{hostname}.corp.example", "os_platform": "Linux",
            "os_version": version, "os_build": pretty, "os_id": os_id, "os_version_id": version,
            "os_codename": codename, "kernel": "5.15.0-91-generic", "architecture": "x86_64",
            "ip_addresses": ["127.0.0.1", f"10.0.{n // 250}.{n % 250 + 1}"], "mac_addresses": [f"02:42:ac:11:00:{n:02x}"],
            "boot_time": "2026-11-20T08:00:00Z",
            "logged_on_users": [{"user": "ops", "terminal": "pts/0", "host": "10.9.9.9"}], "agent_version": "0.1.0"}


def upload(client: httpx.Client, dev: Device, kind: str, payload: dict[str, Any]) -> httpx.Response:
    dev.seq += 1
    now = dt.datetime.now(dt.UTC).isoformat()
    r = client.post("/agent/v1/batches", headers=dev.headers,
                    json={"seq": dev.seq, "kind": kind, "created_at": now, "payload": payload})
    return r


def seed(url: str, store: Store, tenant_id: int) -> Fleet:
    fleet = Fleet()
    with store.system() as s:
        _row, secret = access.create_enrollment_secret(s, tenant_id)
        _key, fleet.api_key = access.create_api_key(s, tenant_id, "admin", "console tests", "tests")
    api = {"Authorization": f"Bearer {fleet.api_key}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, rules in (("Web servers", {"name": "web-*"}), ("Databases", {"name": "db-*"})):
            r = client.post("/api/deviceGroups", json={"name": name, "rules": rules, "rank": 10}, headers=api)
            assert r.status_code == 201, r.text
            fleet.groups[name] = r.json()["id"]
        for n, hostname in enumerate(HOSTS, start=1):
            r = client.post("/agent/v1/enroll", json={"secret": secret, "machine_key": f"{hostname:0<16}"[:64],
                                                      "hostname": hostname, "agent_version": "0.1.0"})
            assert r.status_code == 200, r.text
            body = r.json()
            dev = Device(hostname, body["device_id"], body["credential"])
            fleet.devices[hostname] = dev
            r = upload(client, dev, "device", device_report(hostname, n))
            assert r.status_code == 200, r.text
            r = client.post("/agent/v1/checkin", headers=dev.headers,
                            json={"agent_version": "0.1.0", "health": {}, "drops": {}})
            assert r.status_code == 200, r.text
        # tags through the API, as an operator would set them
        for hostname in ("web-01", "web-02"):
            r = client.post(f"/api/machines/{fleet.devices[hostname].device_id}/tags",
                            json={"Value": "internet-facing", "Action": "Add"}, headers=api)
            assert r.status_code == 200, r.text
        r = client.post(f"/api/machines/{fleet.devices['db-01'].device_id}/setDeviceValue",
                        json={"DeviceValue": "High"}, headers=api)
        assert r.status_code == 200, r.text
        seed_vulnerability_data(client, store, tenant_id, fleet)
    return fleet


def inventory_report(files: tuple[str, str], generation: int = 1) -> dict[str, Any]:
    """What the agent's inventory collector sends: the package database parsed, as a snapshot."""
    from garrison.inventory import parse_inventory, parse_os_release
    from garrison.protocol import InventoryReport

    data = (TVM / "inventories" / files[0]).read_bytes()
    os_ident = parse_os_release((TVM / "inventories" / files[1]).read_bytes())
    pkgs, _os = parse_inventory(data, os=os_ident, path=files[0])
    return InventoryReport(mode="snapshot", generation=generation, os=os_ident, packages=pkgs).model_dump(mode="json")


LATE_ADVISORY = TVM / "ubuntu-focal" / "USN-4705-1.json"  # sudo, CVE-2021-3156: imported last


def seed_vulnerability_data(client: httpx.Client, store: Store, tenant_id: int, fleet: Fleet) -> None:
    """Knowledge base from real feed files, inventories from agents and one agentless import, then
    the jobs that matching and prioritisation run on the server.

    To give the trend charts a history, the fleet is brought in over three earlier "days": the
    prioritisation job is run as of those days (its ``now``), as the daily job would have. Then an
    advisory arrives (a timeline event) and web-03 patches sudo (another one).
    """
    try:
        from garrison.tvm import service
    except ModuleNotFoundError:
        return
    first = [p for p in sorted((TVM / "ubuntu-focal").glob("*.json")) if p != LATE_ADVISORY]
    first += [p for p in KB_PATHS if p != TVM / "ubuntu-focal"]
    fleet.capabilities["kb"] = service.import_feeds(store, [str(p) for p in first])
    now = dt.datetime.now(dt.UTC)
    waves = [("web-01", "web-02", "db-01"), ("web-03", "db-02", "app-01"), ("app-02", "ws-01")]
    for days_ago, wave in zip((20, 10, 4), waves, strict=True):
        for hostname in wave:
            files = HOSTS[hostname][4]
            if files is not None:
                r = upload(client, fleet.devices[hostname], "inventory", inventory_report(files))
                assert r.status_code == 200, r.text
        if days_ago == 4:
            # an agentless import of an application's SBOM (the path of `garrison inventory import`)
            from garrison.tvm import inventory

            out = inventory.import_agentless(store, tenant_id, "build-01.corp.example",
                                             (TVM / "inventories" / "python-app.cdx.json").read_bytes())
            fleet.capabilities["agentless"] = out["machineId"]
            seed_assessments(client, fleet)
        refresh(store, tenant_id, now - dt.timedelta(days=days_ago))
    fleet.capabilities["late"] = service.import_feeds(store, [str(LATE_ADVISORY)])
    refresh(store, tenant_id, now - dt.timedelta(days=1))
    # web-03 patches sudo (CVE-2021-3156): software history, a timeline event, a lower score
    update_package(client, fleet.devices["web-03"], FOCAL, "sudo", "1.8.31-1ubuntu1.2", 2)
    refresh(store, tenant_id)


def refresh(store: Store, tenant_id: int, now: dt.datetime | None = None) -> None:
    """What the prioritisation jobs do for a tenant: scores, recommendations, timeline events."""
    try:
        from garrison.tvm import prioritisation
    except ModuleNotFoundError:
        return
    prioritisation.refresh(store, tenant_id, now)
    prioritisation.derive_events(store, tenant_id)


def update_package(client: httpx.Client, dev: Device, files: tuple[str, str], name: str, version: str,
                   generation: int) -> None:
    """The agent's delta after ``apt-get install --only-upgrade <name>``: one package replaced."""
    full = inventory_report(files)
    old = next(p for p in full["packages"] if p["name"] == name)
    new = {**old, "version": version, "source_version": version}
    delta = {"mode": "delta", "generation": generation, "base_generation": generation - 1, "os": full["os"],
             "added": [new], "removed": [old]}
    r = upload(client, dev, "inventory", delta)
    assert r.status_code == 200, r.text


def seed_assessments(client: httpx.Client, fleet: Fleet) -> None:
    """Configuration assessment results as the agent uploads them (kind ``assessment``), when the
    server has configuration assessment."""
    from garrison.core.ingest import UPLOAD_KINDS

    if "assessment" not in UPLOAD_KINDS:
        return
    from garrison.checks import builtin_checks

    checks = [c for c in builtin_checks() if any(p.family == "linux" for p in c.applies_to)][:40]
    now = dt.datetime.now(dt.UTC).isoformat()
    for n, (hostname, dev) in enumerate(sorted(fleet.devices.items())):
        results = []
        for i, c in enumerate(checks):
            failing = (i + n) % 5 == 0 or (hostname.startswith("web") and i % 7 == 0)
            results.append({"check_id": c.id, "status": "fail" if failing else "pass",
                            "evidence": {"message": "seen by the test fleet", "value": "0" if failing else "1"}})
        payload = {"mode": "full", "generation": 1, "assessed_at": now, "os_family": "linux", "results": results}
        r = upload(client, dev, "assessment", payload)
        assert r.status_code == 200, r.text
