"""The fast read paths of the Software list and a machine's software and vulnerabilities give what the
findings say, for every caller's device groups, with the same JSON as the plain FastAPI routes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import select, update

from garrison.server.api import tvm as tvm_api
from garrison.store.models.kb import Vulnerability
from garrison.store.models.tvm import DevicePackage, PackageVersion
from garrison.tvm import findings as tvm_findings
from garrison.tvm import matching
from garrison.tvm.kb import import_paths
from tests.tvm.api.conftest import FOCAL, GA_STATUS, Env, get

FIXED_SUDO = "1.8.31-1ubuntu1.2"  # fixes CVE-2021-3156 and CVE-2021-23239
OTHER_SUDO = "1.8.31-1ubuntu1.1"  # another build, still vulnerable to both


def _status_with_sudo(version: str) -> bytes:
    text = GA_STATUS.read_text()
    head, sep, tail = text.partition("Package: sudo\n")
    stanza, rest = tail.split("\n\n", 1)
    assert "Version: 1.8.31-1ubuntu1\n" in stanza
    return (head + sep + stanza.replace("Version: 1.8.31-1ubuntu1\n", f"Version: {version}\n") + "\n\n"
            + rest).encode()


def _import(env: Env, name: str, status: bytes) -> str:
    r = env.client.post("/api/machines/import", params={"deviceName": name, "os": "ubuntu:20.04"}, content=status,
                        headers=env.a.headers("security_operator"))
    assert r.status_code == 200, r.text
    return r.json()["machineId"]


def _fleet(env: Env) -> tuple[dict[str, str], dict[str, str]]:
    """Four hosts: web-1 and web-2 in group "web" with two vulnerable builds of sudo, db-1 (vulnerable)
    and db-2 (sudo fixed) ungrouped; returns the machine ids and the headers of an analyst limited to
    "web"."""
    result = import_paths(env.store, [FOCAL])
    matching.rematch_changed(env.store, result.changed_packages)
    h = env.a.headers()
    group = env.client.post("/api/deviceGroups", json={"name": "web", "rules": {"name": "web-*"}}, headers=h).json()
    key = env.client.post("/api/apiKeys", json={"role": "analyst", "deviceGroupIds": [group["id"]]}, headers=h)
    assert key.status_code in (200, 201), key.text
    ids = {"web-1": _import(env, "web-1", GA_STATUS.read_bytes()),
           "web-2": _import(env, "web-2", _status_with_sudo(OTHER_SUDO)),
           "db-1": _import(env, "db-1", GA_STATUS.read_bytes()),
           "db-2": _import(env, "db-2", _status_with_sudo(FIXED_SUDO))}
    # Some vulnerabilities with exploits and long lists, so that those paths carry data.
    with env.store.system() as s:
        s.execute(update(Vulnerability).where(Vulnerability.id == "CVE-2021-3156").values(
            kev=True, cwes=["CWE-193"], exploit_types=["PrivilegeEscalation"], sources=["USN-4705-1", "NVD"],
            references=[f"https://example.org/ref/{i}" for i in range(60)]))
    return ids, {"Authorization": f"Bearer {key.json()['key']}"}


def _weight(v: Vulnerability) -> float:
    if v.cvss_v3_score is not None:
        return v.cvss_v3_score
    return tvm_findings.SEVERITY_WEIGHT.get(v.severity, tvm_findings.UNKNOWN_WEIGHT)


def _expected_software(env: Env, devices: set[str]) -> dict[str, dict[str, Any]]:
    """Software counts recomputed from the findings and device packages of ``devices``."""
    tenant = env.a.id
    with env.store.tenant(tenant) as s:
        found = [f for f in tvm_findings.open_findings(s) if f.device_id in devices]
        vulns = {v.id: v for v in s.scalars(select(Vulnerability).where(
            Vulnerability.id.in_({f.vulnerability_id for f in found})))}
        installed: dict[str, set[str]] = defaultdict(set)
        for device, sw in s.execute(select(DevicePackage.device_id, PackageVersion.software_id)
                                    .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)):
            if device in devices:
                installed[sw].add(device)
    out: dict[str, dict[str, Any]] = {}
    for sw, on in installed.items():
        mine = [f for f in found if f.software_id == sw]
        out[sw] = {"weaknesses": len({f.vulnerability_id for f in mine}),
                   "exposedMachines": len({f.device_id for f in mine}), "installedMachines": len(on),
                   "impactScore": round(sum(_weight(vulns[f.vulnerability_id]) for f in mine) / 10.0, 2),
                   "publicExploit": any(vulns[f.vulnerability_id].kev for f in mine)}
    return out


def test_software_list_counts_follow_the_findings_per_group(env: Env) -> None:
    ids, limited = _fleet(env)
    for headers, devices in ((env.a.headers("analyst"), set(ids.values())), (limited, {ids["web-1"], ids["web-2"]})):
        expected = _expected_software(env, devices)
        body = env.client.get("/api/Software", headers=headers).json()
        got = {s["id"]: {k: s[k] for k in ("weaknesses", "exposedMachines", "installedMachines", "impactScore",
                                           "publicExploit")} for s in body["value"]}
        assert got == expected
        # The list's entries are what the single-software route (FastAPI's own rendering) gives.
        for sw in ("ubuntu-_-sudo", "ubuntu-_-libc6", "ubuntu-_-adduser"):
            entry = next(s for s in body["value"] if s["id"] == sw)
            assert entry == env.client.get(f"/api/Software/{sw}", headers=headers).json()
    sudo = get(env, "/api/Software/ubuntu-_-sudo").json()
    assert (sudo["installedMachines"], sudo["exposedMachines"], sudo["weaknesses"]) == (4, 3, 2)
    assert sudo["publicExploit"] is True

    # $top/$skip/$orderby/$count/$select on the list: pages of the ordered whole.
    whole = get(env, "/api/Software", **{"$orderby": "impactScore desc,id"}).json()["value"]
    pages = []
    for skip in range(0, len(whole), 40):
        page = get(env, "/api/Software", **{"$orderby": "impactScore desc,id", "$top": "40", "$skip": str(skip),
                                            "$count": "true"}).json()
        assert page["@odata.count"] == len(whole)
        pages += page["value"]
    assert pages == whole
    vulnerable = get(env, "/api/Software", **{"$filter": "weaknesses gt 0", "$select": "id,weaknesses"}).json()
    assert vulnerable["value"] == [{"id": s["id"], "weaknesses": s["weaknesses"]}
                                   for s in sorted(whole, key=lambda s: s["id"]) if s["weaknesses"] > 0]


@pytest.mark.parametrize("few_ids", [tvm_api.FEW_IDS, 10])  # details by ids, or all the machine's findings
def test_machine_vulnerabilities_are_complete_and_rendered_like_the_detail_route(
        env: Env, few_ids: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tvm_api, "FEW_IDS", few_ids)
    ids, limited = _fleet(env)
    mid = ids["web-1"]
    with env.store.tenant(env.a.id) as s:
        mine = tvm_findings.open_findings(s, mid)
        exposed: dict[str, set[str]] = defaultdict(set)
        for f in tvm_findings.open_findings(s):
            exposed[f.vulnerability_id].add(f.device_id)
    by_vuln: dict[str, list[Any]] = defaultdict(list)
    for f in mine:
        by_vuln[f.vulnerability_id].append(f)

    body = get(env, f"/api/machines/{mid}/vulnerabilities").json()
    vulns = body["value"]
    assert [v["id"] for v in vulns] == sorted(by_vuln)  # everything, without $top
    for v in vulns:
        found = sorted(by_vuln[v["id"]], key=lambda f: (f.software_id, f.version))
        assert [(x["softwareId"], x["productVersion"], x["fixedVersion"], x["advisoryIds"], x["status"])
                for x in v["software"]] == [(f.software_id, f.version, f.fixed_version, f.advisory_ids, f.status)
                                            for f in found]
        assert v["exposedMachines"] == len(exposed[v["id"]])
        assert v["inUse"] is False
        # Same fields and JSON (dates, lists, truncated references) as GET /api/vulnerabilities/{id}.
        detail = get(env, f"/api/vulnerabilities/{v['id']}").json()
        assert {k: v[k] for k in detail} == detail
        assert v["firstSeen"] == min(x["firstSeen"] for x in v["software"])
        assert v["firstSeen"].endswith("Z")
    baron = next(v for v in vulns if v["id"] == "CVE-2021-3156")
    assert baron["cwes"] == ["CWE-193"] and baron["kev"] is True and len(baron["references"]) == 50
    assert baron["exposedMachines"] == 3  # web-1, web-2 and db-1; db-2 has the fixed sudo

    # The limited analyst sees web-1 with exposure counted in its group only, and not db-1.
    scoped = env.client.get(f"/api/machines/{mid}/vulnerabilities", headers=limited).json()["value"]
    assert next(v for v in scoped if v["id"] == "CVE-2021-3156")["exposedMachines"] == 2
    assert [v["id"] for v in scoped] == [v["id"] for v in vulns]
    assert env.client.get(f"/api/machines/{ids['db-1']}/vulnerabilities", headers=limited).status_code == 404

    # Paging, ordering, filtering, counting and projection still apply to the list and its details.
    pages = []
    for skip in range(0, len(vulns), 7):
        page = get(env, f"/api/machines/{mid}/vulnerabilities",
                   **{"$top": "7", "$skip": str(skip), "$count": "true"}).json()
        assert page["@odata.count"] == len(vulns)
        pages += page["value"]
    assert pages == vulns
    high = get(env, f"/api/machines/{mid}/vulnerabilities", **{"$filter": "severity eq 'High'"}).json()["value"]
    assert high == [v for v in vulns if v["severity"] == "High"] and high
    top = get(env, f"/api/machines/{mid}/vulnerabilities",
              **{"$orderby": "exposedMachines desc,id", "$top": "3", "$select": "id,exposedMachines"}).json()
    ordered = sorted(vulns, key=lambda v: (-v["exposedMachines"], v["id"]))[:3]
    assert [(v["id"], v["exposedMachines"]) for v in top["value"]] == [(v["id"], v["exposedMachines"])
                                                                      for v in ordered]


def test_machine_software_counts_only_its_own_findings(env: Env) -> None:
    ids, _limited = _fleet(env)
    for name, sudo_weaknesses in (("web-2", 2), ("db-2", 0)):  # the two hosts with a sudo of their own
        mid = ids[name]
        with env.store.tenant(env.a.id) as s:
            per_sw: dict[str, int] = defaultdict(int)
            for f in tvm_findings.open_findings(s, mid):
                per_sw[f.software_id] += 1
        body = get(env, f"/api/machines/{mid}/software", **{"$count": "true"}).json()
        assert body["@odata.count"] == len(body["value"]) == 221
        assert {s["id"]: s["weaknesses"] for s in body["value"] if s["weaknesses"]} == dict(per_sw)
        sudo = next(s for s in body["value"] if s["id"] == "ubuntu-_-sudo")
        assert sudo["weaknesses"] == sudo_weaknesses and sudo["publicExploit"] is (sudo_weaknesses > 0)
        assert sudo["firstSeen"].endswith("Z")
        page = get(env, f"/api/machines/{mid}/software",
                   **{"$orderby": "name desc,id", "$top": "5", "$skip": "2", "$select": "id,version"}).json()
        ordered = sorted(body["value"], key=lambda s: s["id"])
        ordered = sorted(ordered, key=lambda s: s["name"], reverse=True)[2:7]
        assert page["value"] == [{"id": s["id"], "version": s["version"]} for s in ordered]
