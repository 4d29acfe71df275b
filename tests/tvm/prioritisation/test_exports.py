"""Export assessment APIs: software inventory, software vulnerabilities (full and delta) per device,
as JSON lines (``…Export``) and as Defender's JSON pages (``…ByMachine``), scoped to the caller's groups."""

from __future__ import annotations

import datetime as dt
import json
import time

from garrison.tvm.findings import open_findings
from tests.tvm.prioritisation.conftest import (
    Agent,
    Env,
    bump,
    focal_kb,
    ga_packages,
    make_group,
    scoped_headers,
)


def lines(env: Env, path: str, headers: dict[str, str] | None = None, **params: str) -> list[dict]:
    r = env.client.get(path, headers=headers or env.a.headers("analyst"), params=params or None)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(x) for x in r.text.splitlines() if x]


def test_inventory_and_vulnerabilities_full_and_delta(env: Env) -> None:
    focal_kb(env)
    web = make_group(env, "web", "web-*")
    a = Agent(env, "web-1")
    a.inventory(ga_packages())
    Agent(env, "db-1").inventory(ga_packages()[:10])
    inv = lines(env, "/api/machines/SoftwareInventoryExport")
    mine = [r for r in inv if r["deviceId"] == a.id]
    assert len(mine) == 221
    sudo = next(r for r in mine if r["softwareName"] == "sudo")
    assert (sudo["softwareVendor"], sudo["softwareVersion"], sudo["numberOfWeaknesses"]) == ("ubuntu", "1.8.31-1ubuntu1", 2)
    assert sudo["rbacGroupName"] == "web" and sudo["id"] == f"{a.id}_ubuntu_sudo_1.8.31-1ubuntu1"

    vulns = [r for r in lines(env, "/api/machines/SoftwareVulnerabilitiesExport") if r["deviceId"] == a.id]
    with env.store.tenant(env.a.id) as s:
        assert len(vulns) == len(open_findings(s, a.id))
    baron = next(r for r in vulns if r["cveId"] == "CVE-2021-3156")
    assert baron["recommendedSecurityUpdateId"] == "1.8.31-1ubuntu1.2" and baron["recommendedSecurityUpdate"] == "USN-4705-1"
    assert baron["exploitabilityLevel"] == "ExploitIsVerified" and baron["recommendationReference"] == "va-_-ubuntu-_-sudo"
    assert baron["vulnerabilitySeverityLevel"] == "High" and baron["securityUpdateAvailable"]

    since = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    a.inventory(bump(ga_packages(), "sudo", "1.8.31-1ubuntu1.2"))
    delta = lines(env, "/api/machines/SoftwareVulnerabilityChangesExport", sinceTime=since.isoformat())
    assert sorted((r["cveId"], r["status"]) for r in delta) == [("CVE-2021-23239", "Fixed"), ("CVE-2021-3156", "Fixed")]
    assert all(r["reason"] == "updated" for r in delta)
    old = (since - dt.timedelta(days=15)).isoformat()
    r = env.client.get("/api/machines/SoftwareVulnerabilityChangesByMachine", headers=env.a.headers(),
                       params={"sinceTime": old})
    assert r.status_code == 400

    scoped = scoped_headers(env, "analyst", [web])
    assert {r["deviceId"] for r in lines(env, "/api/machines/SoftwareInventoryExport", scoped)} == {a.id}
    assert lines(env, "/api/machines/SoftwareInventoryExport", env.b.headers("analyst")) == []


def test_json_pages(env: Env) -> None:
    focal_kb(env)
    a = Agent(env, "web-1")
    a.inventory(ga_packages())
    h = env.a.headers("analyst")
    first = env.client.get("/api/machines/SoftwareInventoryByMachine", headers=h, params={"pageSize": 200}).json()
    assert len(first["value"]) == 200 and "pageIndex=2" in first["@odata.nextLink"]
    second = env.client.get(first["@odata.nextLink"].replace("https://testserver", ""), headers=h).json()
    assert len(second["value"]) == 21 and "@odata.nextLink" not in second
    names = {r["softwareName"] for r in first["value"] + second["value"]}
    assert len(names) == 221
    vulns = env.client.get("/api/machines/SoftwareVulnerabilitiesByMachine", headers=h).json()["value"]
    assert {r["cveId"] for r in vulns} >= {"CVE-2021-3156", "CVE-2021-23239"}
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    changes = env.client.get("/api/machines/SoftwareVulnerabilityChangesByMachine", headers=h,
                             params={"sinceTime": since}).json()["value"]
    assert len(changes) == len(vulns) and {r["status"] for r in changes} == {"New"}
    assert env.client.get("/api/machines/SoftwareInventoryByMachine", headers=h,
                          params={"pageSize": 0}).status_code == 400
