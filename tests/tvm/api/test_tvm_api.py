"""The Software, Vulnerability and machine TVM APIs on the real Ubuntu 20.04 host and real USNs."""

from __future__ import annotations

import gzip

from garrison.tvm import matching
from garrison.tvm.kb import import_paths
from tests.tvm.api.conftest import FOCAL, GA_OS, GA_STATUS, Env, get, import_ga


def _kb(env: Env) -> None:
    result = import_paths(env.store, [FOCAL])
    matching.rematch_changed(env.store, result.changed_packages)


def test_software_list_and_detail(env: Env) -> None:
    _kb(env)
    dev = import_ga(env)
    assert dev["packages"] == 221 and dev["created"] is True

    body = get(env, "/api/Software").json()
    by_id = {s["id"]: s for s in body["value"]}
    assert len(by_id) == 221  # one product per binary package
    sudo = by_id["ubuntu-_-sudo"]
    assert sudo == {"id": "ubuntu-_-sudo", "name": "sudo", "vendor": "ubuntu", "weaknesses": 2,
                    "publicExploit": False, "activeAlert": False, "exposedMachines": 1,
                    "impactScore": sudo["impactScore"], "installedMachines": 1, "inUseMachines": 0, "inUse": False}
    # CVSS 7.8 (CVE-2021-3156) + 2.5 (CVE-2021-23239), over 10.
    assert sudo["impactScore"] == 1.03
    assert by_id["ubuntu-_-libc6"]["weaknesses"] == 12
    assert by_id["ubuntu-_-adduser"]["weaknesses"] == 0

    assert get(env, "/api/Software/ubuntu-_-sudo").json()["weaknesses"] == 2
    assert get(env, "/api/Software/ubuntu-_-nothing").status_code == 404

    vulnerable = get(env, "/api/Software", **{"$filter": "weaknesses gt 0", "$orderby": "impactScore desc"}).json()
    names = [s["name"] for s in vulnerable["value"]]
    assert "sudo" in names and "adduser" not in names
    impacts = [s["impactScore"] for s in vulnerable["value"]]
    assert impacts == sorted(impacts, reverse=True)

    refs = get(env, "/api/Software/ubuntu-_-sudo/machineReferences").json()["value"]
    assert [(m["id"], m["computerDnsName"]) for m in refs] == [(dev["machineId"], "focal-ga")]
    assert refs[0]["software"][0]["productVersion"] == "1.8.31-1ubuntu1"
    assert refs[0]["rbacGroupName"] == "Ungrouped devices"

    vulns = get(env, "/api/Software/ubuntu-_-sudo/vulnerabilities").json()["value"]
    assert {v["id"] for v in vulns} == {"CVE-2021-3156", "CVE-2021-23239"}

    dist = get(env, "/api/Software/ubuntu-_-sudo/distributions").json()["value"]
    assert dist == [{"version": "1.8.31-1ubuntu1", "installations": 1, "vulnerabilities": 2, "inUseMachines": 0}]


def test_vulnerabilities_tenant_scope_and_knowledge_base(env: Env) -> None:
    _kb(env)
    import_ga(env)
    mine = get(env, "/api/vulnerabilities", **{"$count": "true"}).json()
    ids = {v["id"] for v in mine["value"]}
    assert mine["@odata.count"] == len(ids) == 49  # of the 60 CVEs, 11 are only in the 3 USNs the host is past
    assert "CVE-2020-3810" not in ids  # USN-4359-1: host already at the fixed apt

    baron = get(env, "/api/vulnerabilities/CVE-2021-3156").json()
    assert baron["exposedMachines"] == 1 and baron["name"] == "CVE-2021-3156"
    assert baron["severity"] == "High" and baron["cvssV3"] == 7.8
    assert baron["cvssVector"] == "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"
    assert "Sudo" in baron["description"]

    assert get(env, "/api/vulnerabilities/CVE-2020-3810").status_code == 404
    kb = get(env, "/api/vulnerabilities/CVE-2020-3810", scope="all").json()
    assert kb["exposedMachines"] == 0
    everything = get(env, "/api/vulnerabilities", scope="all", **{"$top": "1000"}).json()["value"]
    assert len(everything) == 60
    assert get(env, "/api/vulnerabilities", scope="bogus").status_code == 400

    high = get(env, "/api/vulnerabilities", **{"$filter": "severity eq 'High' and exposedMachines ge 1"}).json()
    assert "CVE-2021-3156" in {v["id"] for v in high["value"]}
    assert all(v["severity"] == "High" for v in high["value"])

    refs = get(env, "/api/vulnerabilities/CVE-2021-3156/machineReferences").json()["value"]
    assert [m["computerDnsName"] for m in refs] == ["focal-ga"]
    assert refs[0]["software"][0]["softwareId"] == "ubuntu-_-sudo"


def test_machines_vulnerabilities_rows(env: Env) -> None:
    _kb(env)
    dev = import_ga(env)
    rows = get(env, "/api/vulnerabilities/machinesVulnerabilities",
               **{"$filter": "cveId eq 'CVE-2021-3156'"}).json()["value"]
    assert len(rows) == 1
    row = rows[0]
    assert row["machineId"] == dev["machineId"] and row["productName"] == "sudo"
    assert row["productVendor"] == "ubuntu" and row["productVersion"] == "1.8.31-1ubuntu1"
    assert row["fixingKbId"] == "1.8.31-1ubuntu1.2" and row["severity"] == "High"
    assert row["id"] == f"{dev['machineId']}_ubuntu_sudo_1.8.31-1ubuntu1_CVE-2021-3156"
    assert row["advisoryIds"] == ["USN-4705-1"]

    # glibc's 12 CVEs on its 3 binaries: paging is stable and complete.
    pages = []
    for skip in range(0, 40, 7):
        page = get(env, "/api/vulnerabilities/machinesVulnerabilities",
                   **{"$filter": "fixingKbId eq '2.31-0ubuntu9.7'", "$top": "7", "$skip": str(skip)}).json()
        pages += [r["id"] for r in page["value"]]
    assert len(pages) == len(set(pages)) == 36


def test_machine_software_and_vulnerabilities(env: Env) -> None:
    _kb(env)
    dev = import_ga(env)
    mid = dev["machineId"]
    software = get(env, f"/api/machines/{mid}/software", **{"$filter": "name eq 'libc6'"}).json()["value"]
    assert len(software) == 1
    libc = software[0]
    assert libc["version"] == "2.31-0ubuntu9" and libc["weaknesses"] == 12
    assert libc["evidence"]["packageManager"] == "dpkg" and libc["evidence"]["sourcePackage"] == "glibc"
    assert libc["inUse"] is False

    vulns = get(env, f"/api/machines/{mid}/vulnerabilities").json()["value"]
    assert len(vulns) == 49
    baron = next(v for v in vulns if v["id"] == "CVE-2021-3156")
    assert baron["software"][0]["fixedVersion"] == "1.8.31-1ubuntu1.2"
    assert baron["exposedMachines"] == 1
    assert get(env, "/api/machines/nope/vulnerabilities").status_code == 404


def test_device_group_scoping(env: Env) -> None:
    _kb(env)
    import_ga(env, "db-1")
    h = env.a.headers()
    group = env.client.post("/api/deviceGroups", json={"name": "web", "rules": {"name": "web-*"}}, headers=h).json()
    key = env.client.post("/api/apiKeys", json={"role": "analyst", "deviceGroupIds": [group["id"]]}, headers=h)
    assert key.status_code in (200, 201), key.text
    limited = {"Authorization": f"Bearer {key.json()['key']}"}
    assert env.client.get("/api/Software", headers=limited).json()["value"] == []
    assert env.client.get("/api/vulnerabilities", headers=limited).json()["value"] == []
    assert env.client.get("/api/Software/ubuntu-_-sudo", headers=limited).status_code == 404
    assert env.client.get("/api/vulnerabilities/machinesVulnerabilities", headers=limited).json()["value"] == []

    web = import_ga(env, "web-1")
    assert [m["id"] for m in env.client.get("/api/Software/ubuntu-_-sudo/machineReferences",
                                            headers=limited).json()["value"]] == [web["machineId"]]
    # A limited operator may not overwrite a device of another group by importing under its name.
    op = env.client.post("/api/apiKeys", json={"role": "security_operator", "deviceGroupIds": [group["id"]]},
                         headers=h).json()
    r = env.client.post("/api/machines/import", params={"deviceName": "db-1", "os": "ubuntu:20.04"},
                        content=GA_STATUS.read_bytes(), headers={"Authorization": f"Bearer {op['key']}"})
    assert r.status_code == 409


def test_other_tenant_sees_nothing(env: Env) -> None:
    _kb(env)
    import_ga(env)
    assert get(env, "/api/Software", tenant="b").json()["value"] == []
    assert get(env, "/api/vulnerabilities", tenant="b").json()["value"] == []
    assert get(env, "/api/vulnerabilities/machinesVulnerabilities", tenant="b").json()["value"] == []
    assert get(env, "/api/Software/ubuntu-_-sudo", tenant="b").status_code == 404
    # The knowledge base itself is shared: the CVE exists, with nothing exposed for tenant B.
    assert get(env, "/api/vulnerabilities/CVE-2021-3156", tenant="b", scope="all").json()["exposedMachines"] == 0


def test_import_raw_body_gzip_and_errors(env: Env) -> None:
    _kb(env)
    h = env.a.headers("security_operator")
    r = env.client.post("/api/machines/import", params={"deviceName": "raw-1", "os": "ubuntu:20.04"},
                        content=gzip.compress(GA_STATUS.read_bytes()), headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["ecosystem"] == "Ubuntu:20.04:LTS" and r.json()["packages"] == 221

    bad = GA_STATUS.read_bytes().replace(b"Package: sudo\nStatus: install ok installed",
                                         b"Package: sudo\nStatus: broken", 1)
    r = env.client.post("/api/machines/import", params={"deviceName": "bad-1", "os": "ubuntu:20.04"},
                        content=bad, headers=h)
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "line" in msg and "Status" in msg
    machines = env.client.get("/api/machines", headers=h).json()["value"]
    assert "bad-1" not in [m["computerDnsName"] for m in machines]  # nothing partial stored

    assert env.client.post("/api/machines/import", params={"os": "ubuntu:20.04"}, content=b"x",
                           headers=h).status_code == 400  # no deviceName
    assert env.client.post("/api/machines/import", params={"deviceName": "x", "os": "nope"}, content=b"x",
                           headers=h).status_code == 400
    r = env.client.post("/api/machines/import", headers=h, data={"deviceName": "x"},
                        files={"file": ("status", b"Package: a\n"), "osRelease": ("os-release", b"garbage line\n")})
    assert r.status_code == 400 and "os-release" in r.json()["error"]["message"]
    r = env.client.post("/api/machines/import", headers=h, params={"deviceName": "x"}, content=b"\x1f\x8bnot gzip")
    assert r.status_code == 400
    assert env.client.post("/api/machines/import", params={"deviceName": "x"}, content=b"x",
                           headers=env.a.headers("analyst")).status_code == 403


def test_reimport_updates_the_same_agentless_device(env: Env) -> None:
    first = import_ga(env)
    second = import_ga(env)
    assert second["machineId"] == first["machineId"] and second["created"] is False
    assert second["added"] == 0 and second["removed"] == 0 and second["generation"] == 2
    m = get(env, f"/api/machines/{first['machineId']}").json()
    assert m["isAgentless"] is True and m["osDistribution"] == "ubuntu" and m["osVersion"] == "20.04"
    assert GA_OS.exists()


def test_feeds_status(env: Env) -> None:
    _kb(env)
    feeds = get(env, "/api/feeds/status").json()["value"]
    osv = next(f for f in feeds if f["name"] == "osv")
    assert osv["recordCount"] == 28 and osv["lastSuccess"] is not None
    assert "Ubuntu:20.04:LTS" in osv["releases"]  # which releases the feed covers


def test_vulnerabilities_name_the_source_of_their_severity(env: Env) -> None:
    """Severity order (garrison.tvm.kb.cvss): NVD's CVSS beats the OSV record's, which beats the distro's words."""
    from tests.tvm.api.conftest import DATA

    _kb(env)
    result = import_paths(env.store, [DATA / "nvd-severity" / "nvd-severity.json"])
    matching.rematch_changed(env.store, result.changed_packages)
    import_ga(env)
    ncurses = get(env, "/api/vulnerabilities/CVE-2019-17594").json()  # USN-6099-1 rates nothing; NVD does
    assert (ncurses["severity"], ncurses["cvssV3"], ncurses["severitySource"]) == ("Medium", 5.3, "NVD CVSS v3.1")
    everything = get(env, "/api/vulnerabilities", **{"$top": "1000"}).json()["value"]
    sources = {v["severitySource"] for v in everything}
    assert sources <= {"NVD CVSS v3.1", "NVD CVSS v3.0", "OSV CVSS v3.1", "OSV CVSS v3.0", "NVD CVSS v4.0",
                       "OSV CVSS v4.0", "Advisory rating", "Distribution priority", "None"}, sources
    assert all((v["severity"] == "Unknown") == (v["severitySource"] == "None") for v in everything)


def test_counts_are_right_at_once_after_a_device_group_change(env: Env) -> None:
    """A new device group takes web-1 from the ungrouped devices: the Software and vulnerability
    counts of a key limited to that group include it at once, not after the summary job."""
    _kb(env)
    import_ga(env, "db-1")
    web = import_ga(env, "web-1")
    h = env.a.headers()
    group = env.client.post("/api/deviceGroups", json={"name": "web", "rules": {"name": "web-*"}}, headers=h).json()
    key = env.client.post("/api/apiKeys", json={"role": "analyst", "deviceGroupIds": [group["id"]]}, headers=h)
    limited = {"Authorization": f"Bearer {key.json()['key']}"}

    software = {s["id"]: s for s in env.client.get("/api/Software", headers=limited).json()["value"]}
    assert len(software) == 221
    assert (software["ubuntu-_-sudo"]["installedMachines"], software["ubuntu-_-sudo"]["exposedMachines"]) == (1, 1)
    sudo = env.client.get("/api/Software/ubuntu-_-sudo", headers=limited).json()
    assert sudo["installedMachines"] == 1
    assert env.client.get("/api/Software/ubuntu-_-sudo/distributions", headers=limited).json()["value"] == [
        {"version": "1.8.31-1ubuntu1", "installations": 1, "vulnerabilities": 2, "inUseMachines": 0}]
    vulns = {v["id"]: v for v in env.client.get("/api/vulnerabilities", headers=limited).json()["value"]}
    assert len(vulns) == 49 and vulns["CVE-2021-3156"]["exposedMachines"] == 1
    assert env.client.get("/api/vulnerabilities/CVE-2021-3156", headers=limited).json()["exposedMachines"] == 1
    # The whole tenant still counts each device once.
    everything = {s["id"]: s for s in get(env, "/api/Software").json()["value"]}
    assert everything["ubuntu-_-sudo"]["installedMachines"] == 2
    assert web["machineId"]
