"""The real app (``env``: two tenants, keys of every role, SQLite and PostgreSQL) with findings made
the real way: knowledge-base import of real records, then agent inventory uploads or agentless
import of the real Ubuntu 20.04 GA dpkg status."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from garrison.inventory import parse_dpkg_status, parse_os_release
from garrison.protocol import OsIdentity, SoftwarePackage
from garrison.tvm import service as tvm_service
from garrison.tvm.prioritisation import derive_events, refresh
from tests.server.conftest import Env, device_report, enroll, env, upload  # noqa: F401

ROOT = Path(__file__).resolve().parents[2] / "data"
HERE = Path(__file__).resolve().parent / "data"
FOCAL = ROOT / "tvm" / "ubuntu-focal"
GA_STATUS = ROOT / "tvm" / "inventories" / "ubuntu-20.04-ga.dpkg-status"
GA_OS = ROOT / "tvm" / "inventories" / "ubuntu-20.04-ga.os-release"
KEV = ROOT / "kb" / "kev" / "known_exploited_vulnerabilities.json"
EPSS = ROOT / "kb" / "epss" / "epss_scores.csv.gz"
DEBIAN_JSON = ROOT / "kb" / "debian-tracker" / "debian.json"
NO_FIX = HERE / "UBUNTU-CVE-2016-20013.json"
OS = parse_os_release(GA_OS.read_bytes())
BUSTER = OsIdentity(id="debian", version_id="10", codename="buster", name="Debian GNU/Linux",
                    pretty_name="Debian GNU/Linux 10 (buster)")

SUDO_FIXED = "1.8.31-1ubuntu1.2"  # USN-4705-1 (CVE-2021-3156, KEV)
OPENSSL_FIXED = "1.1.1f-1ubuntu2.12"  # the highest focal fix of openssl among the USNs here


def load_kb(env: Env, *paths: Path) -> dict[str, Any]:
    """Import real feed files and re-match what they changed (the `garrison feeds import` path)."""
    return tvm_service.import_feeds(env.store, [str(p) for p in paths])


def focal_kb(env: Env) -> None:
    load_kb(env, FOCAL, KEV, EPSS)


def ga_packages() -> list[dict[str, Any]]:
    return [p.model_dump() for p in parse_dpkg_status(GA_STATUS.read_bytes(), OS)]


def package(name: str, version: str, source: str, ecosystem: str = "Ubuntu:20.04:LTS") -> dict[str, Any]:
    """One more dpkg package as the agent reports it (a real package and version of that release)."""
    return SoftwarePackage(manager="dpkg", name=name, version=version, ecosystem=ecosystem, arch="armhf",
                           source_name=source, source_version=version).model_dump()


def bump(pkgs: list[dict[str, Any]], source: str, version: str) -> list[dict[str, Any]]:
    """The package list with every binary of ``source`` at ``version`` (an apt upgrade of that source)."""
    return [{**p, "version": version, "source_version": version} if p["source_name"] == source else p for p in pkgs]


class Agent:
    """An enrolled device that uploads the way the agent does."""

    def __init__(self, env: Env, name: str, tenant: str = "a", os: OsIdentity = OS) -> None:
        keys = env.a if tenant == "a" else env.b
        self.env, self.name, self.os = env, name, os
        self.enrolled = enroll(env.client, keys.enroll_secret, (name + "-key-" * 4)[:32], name)
        self.id: str = self.enrolled["device_id"]
        self.generation = 0
        report = device_report(name, os_id=os.id, os_version=os.version_id, os_version_id=os.version_id,
                               os_codename=os.codename, os_build=os.pretty_name or os.name)
        assert upload(env.client, self.enrolled, "device", report).status_code == 200

    def inventory(self, packages: list[dict[str, Any]]) -> dict[str, Any]:
        self.generation += 1
        r = upload(self.env.client, self.enrolled, "inventory",
                   {"mode": "snapshot", "generation": self.generation, "os": self.os.model_dump(), "packages": packages})
        assert r.status_code == 200, r.text
        return r.json()

    def runtime(self, names: list[str], at: dt.datetime | None = None) -> None:
        at = at or dt.datetime.now(dt.UTC)
        r = upload(self.env.client, self.enrolled, "runtime",
                   {"packages": [{"manager": "dpkg", "name": n, "last_seen": at.isoformat()} for n in names]})
        assert r.status_code == 200, r.text


def import_ga(env: Env, name: str, tenant: str = "a") -> str:
    """The Ubuntu 20.04 GA host as an agentless device (the import API); returns its machine id."""
    keys = env.a if tenant == "a" else env.b
    r = env.client.post("/api/machines/import", headers=keys.headers("security_operator"),
                        files={"file": ("status", GA_STATUS.read_bytes()), "osRelease": ("os-release", GA_OS.read_bytes())},
                        data={"deviceName": name})
    assert r.status_code == 200, r.text
    return str(r.json()["machineId"])


def recompute(env: Env, tenant: str = "a") -> dict[str, Any]:
    keys = env.a if tenant == "a" else env.b
    r = env.client.post("/api/exposureScore/recompute", headers=keys.headers("security_operator"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def api(env: Env, method: str, path: str, role: str = "analyst", tenant: str = "a", expect: int | None = 200,
        **kw: Any) -> Any:
    keys = env.a if tenant == "a" else env.b
    r = env.client.request(method, path, headers=keys.headers(role), **kw)
    if expect is not None:
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text[:500]}"
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r


def tenant_id(env: Env, tenant: str = "a") -> int:
    return (env.a if tenant == "a" else env.b).id


__all__ = ["Agent", "api", "bump", "derive_events", "focal_kb", "import_ga", "load_kb", "package", "recompute",
           "refresh", "tenant_id"]


def make_group(env: Env, name: str, pattern: str, rank: int = 10) -> int:
    r = env.client.post("/api/deviceGroups", headers=env.a.headers("admin"),
                        json={"name": name, "rank": rank, "rules": {"name": pattern}})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def scoped_headers(env: Env, role: str, group_ids: list[int]) -> dict[str, str]:
    r = env.client.post("/api/apiKeys", headers=env.a.headers("admin"),
                        json={"role": role, "name": f"{role} scoped", "deviceGroupIds": group_ids})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def set_value(env: Env, machine_id: str, value: str) -> None:
    r = env.client.post(f"/api/machines/{machine_id}/setDeviceValue", headers=env.a.headers("security_operator"),
                        json={"DeviceValue": value})
    assert r.status_code == 200, r.text
