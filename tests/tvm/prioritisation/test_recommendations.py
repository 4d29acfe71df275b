"""Security recommendations: one per remediation unit, Defender's fields, ranking by threat × breach
likelihood (runtime context) × business value, remediation types, sub-resources, trends."""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

import pytest

from garrison.tvm.prioritisation import refresh
from garrison.tvm.versions import get_scheme
from tests.tvm.prioritisation.conftest import (
    BUSTER,
    DEBIAN_JSON,
    FOCAL,
    NO_FIX,
    Agent,
    Env,
    api,
    bump,
    focal_kb,
    ga_packages,
    import_ga,
    load_kb,
    package,
    recompute,
)

DPKG = get_scheme("dpkg")


def focal_expectations() -> dict[str, tuple[str, set[str]]]:
    """Per affected source package of SOURCES.csv (dpkg --compare-versions, independent of Garrison):
    the highest focal fixed version and the CVEs."""
    out: dict[str, tuple[str, set[str]]] = {}
    with open(FOCAL / "SOURCES.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["ga_host_status"] != "affected":
                continue
            src, fixed = row["source_package"], row["focal_fixed_version"]
            best, cves = out.get(src, (fixed, set()))
            if DPKG.compare(fixed, best) > 0:
                best = fixed
            out[src] = (best, cves | set(row["cves"].split(";")))
    return out


def recs(env: Env, **params: str) -> list[dict]:
    return list(api(env, "GET", "/api/recommendations", params=params or None)["value"])


def test_one_recommendation_per_source_package_with_defender_fields(env: Env) -> None:
    focal_kb(env)
    import_ga(env, "focal-ga")
    Agent(env, "agent-1").inventory(ga_packages())
    recompute(env)
    got = {r["id"]: r for r in recs(env)}
    want = focal_expectations()
    assert set(got) == {f"va-_-ubuntu-_-{src}" for src in want}
    for src, (fixed, cves) in want.items():
        r = got[f"va-_-ubuntu-_-{src}"]
        assert r["recommendedVersion"] == fixed, src
        assert r["recommendationName"] == f"Update {src} to {fixed}"
        assert r["remediationType"] == "Update" and r["status"] == "Active"
        assert r["weaknesses"] == len(cves), src
        assert r["vendor"] == "ubuntu" and r["relatedComponent"] == src and r["productName"] == src
        assert r["exposedMachinesCount"] == 2 and r["totalMachineCount"] == 2
        assert r["recommendationCategory"] == "Application" and r["configScoreImpact"] == 0
        assert r["exposureImpact"] > 0
    # Another tenant sees none of them (the list reads plain rows; the tenant filter must still apply).
    assert api(env, "GET", "/api/recommendations", tenant="b")["value"] == []
    assert api(env, "GET", "/api/recommendations?$count=true&$select=id", tenant="b")["@odata.count"] == 0
    sudo = got["va-_-ubuntu-_-sudo"]
    assert sudo["publicExploit"] and sudo["knownExploited"] and sudo["exploitVerified"]
    assert sudo["associatedThreats"][:2] == ["KnownExploited", "VerifiedExploit"]
    assert sudo["severityScore"] == 7.8
    # ranking: the known-exploited sudo first, and the list is sorted by priorityScore
    ordered = recs(env)
    assert ordered[0]["id"] == "va-_-ubuntu-_-sudo"
    assert [r["priorityScore"] for r in ordered] == sorted((r["priorityScore"] for r in ordered), reverse=True)
    one = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo")
    ex = one["explanation"]
    assert ex["summary"].startswith("CVE-2021-3156: known exploited (KEV)")
    assert ex["threat"]["topVulnerabilities"][0]["id"] == "CVE-2021-3156"
    assert ex["breachLikelihood"]["exposedDevices"] == 2
    assert one["softwareIds"] == ["ubuntu-_-sudo"]


def test_exposure_impact_predicts_the_drop_of_the_organisation_score(env: Env) -> None:
    focal_kb(env)
    agents = [Agent(env, f"agent-{i}") for i in range(2)]
    for a in agents:
        a.inventory(ga_packages())
    import_ga(env, "other")  # a device not remediated
    recompute(env)
    before = api(env, "GET", "/api/exposureScore")["score"]
    sudo = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo")
    predicted = sudo["exposureImpact"]
    part = {}
    for a in agents:  # remediating only the agents' sudo: the rest of the impact stays
        a.inventory(bump(ga_packages(), "sudo", "1.8.31-1ubuntu1.2"))
    recompute(env)
    after = api(env, "GET", "/api/exposureScore")["score"]
    part = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo")
    assert part["exposedMachinesCount"] == 1
    # two of three exposed devices fixed: the drop is what they contributed to the prediction
    assert before - after == pytest.approx(predicted * 2 / 3, abs=0.02)


def test_runtime_context_raises_the_rank(env: Env) -> None:
    focal_kb(env)
    agent = Agent(env, "agent-1")
    agent.inventory(ga_packages())
    recompute(env)
    order = [r["id"] for r in recs(env)]
    assert order.index("va-_-ubuntu-_-ncurses") > order.index("va-_-ubuntu-_-libzstd")
    agent.runtime(["ncurses-bin"])
    recompute(env)
    order = [r["id"] for r in recs(env)]
    assert order.index("va-_-ubuntu-_-ncurses") < order.index("va-_-ubuntu-_-libzstd")
    nc = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-ncurses")
    assert nc["inUseMachinesCount"] == 1
    assert nc["explanation"]["breachLikelihood"]["inUseDevices"] == 1
    assert "in use on 1" in nc["priorityExplanation"]
    # a high-value device weighs more too
    api(env, "POST", f"/api/machines/{agent.id}/setDeviceValue", role="security_operator",
        json={"DeviceValue": "High"})
    recompute(env)
    assert api(env, "GET", "/api/recommendations/va-_-ubuntu-_-ncurses")["priorityScore"] == \
        pytest.approx(2 * nc["priorityScore"])


def test_no_fix_yet_is_attention_required(env: Env) -> None:
    load_kb(env, FOCAL, NO_FIX)
    agent = Agent(env, "ldap-1")
    agent.inventory(ga_packages() + [package("sssd-common", "2.2.3-3ubuntu0.13", "sssd")])
    recompute(env)
    r = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sssd")
    assert r["remediationType"] == "AttentionRequired" and r["zeroDay"]
    assert "zero-day" in r["tags"] and "ZeroDay" in r["associatedThreats"]
    assert r["recommendedVersion"] is None
    assert r["recommendationName"] == "Attention required: sssd has vulnerabilities with no fix yet"
    zero = recs(env, **{"$filter": "tags/any(t: t eq 'zero-day')"})
    assert [x["id"] for x in zero] == ["va-_-ubuntu-_-sssd"]
    # the ticket for it has no due date
    bad = api(env, "POST", "/api/remediationTasks", role="security_operator", expect=400,
              json={"recommendationId": r["id"], "dueOn": "2030-01-01T00:00:00Z"})
    assert "no due date" in bad["error"]["message"]
    task = api(env, "POST", "/api/remediationTasks", role="security_operator", expect=201,
               json={"recommendationId": r["id"], "priority": "High"})
    assert task["dueOn"] is None and task["targetDevices"] is None and task["type"] == "AttentionRequired"


def test_end_of_life_software_is_upgrade_or_uninstall(env: Env) -> None:
    load_kb(env, DEBIAN_JSON)
    agent = Agent(env, "buster-1", os=BUSTER)
    agent.inventory([package("chromium", "90.0.4430.212-1~deb10u1", "chromium", "Debian:10")])
    recompute(env)
    r = api(env, "GET", "/api/recommendations/va-_-debian-_-chromium")
    assert r["remediationType"] == "Uninstall" and r["endOfSupport"] and "EOS software" in r["tags"]
    assert not r["zeroDay"]  # no fix because the release is no longer supported, not a zero-day
    agent.runtime(["chromium"])
    recompute(env)
    r = api(env, "GET", "/api/recommendations/va-_-debian-_-chromium")
    assert r["remediationType"] == "Upgrade"
    assert r["recommendationName"] == "Upgrade chromium: its release is no longer supported"


def test_sub_resources_and_odata(env: Env) -> None:
    focal_kb(env)
    ga = import_ga(env, "focal-ga")
    agent = Agent(env, "agent-1")
    agent.inventory(bump(ga_packages(), "openssl", "1.1.1f-1ubuntu2.12"))
    recompute(env)
    machines = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo/machineReferences")["value"]
    assert {m["id"] for m in machines} == {ga, agent.id}
    only_ga = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-openssl/machineReferences")["value"]
    assert [m["id"] for m in only_ga] == [ga]
    software = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-openssl/software")["value"]
    assert {s["id"] for s in software} == {"ubuntu-_-libssl1.1", "ubuntu-_-openssl"}
    assert all(s["exposedMachines"] == 1 for s in software)
    vulns = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo/vulnerabilities")["value"]
    assert [v["id"] for v in vulns] == ["CVE-2021-3156", "CVE-2021-23239"]
    assert vulns[0]["kev"] and vulns[0]["exposedMachines"] == 2 and vulns[0]["fixAvailable"]
    assert vulns[0]["epss"] == pytest.approx(0.99295)
    # One shape per entity: a recommendation's vulnerability is /api/vulnerabilities/{id} plus the
    # ranking fields (it used to be a second shape: knownExploited, no cvssVector, severitySource, cwes…)
    same = api(env, "GET", "/api/vulnerabilities/CVE-2021-3156")
    assert set(vulns[0]) == set(same) | {"threatScore", "threatReason", "fixAvailable"}
    assert {k: vulns[0][k] for k in same} == same
    per_device = {r["id"] for r in api(env, "GET", f"/api/machines/{agent.id}/recommendations")["value"]}
    assert "va-_-ubuntu-_-sudo" in per_device and "va-_-ubuntu-_-openssl" not in per_device
    assert len(per_device) == len(focal_expectations()) - 1
    kev = recs(env, **{"$filter": "knownExploited eq true and remediationType eq 'Update'"})
    assert [r["id"] for r in kev] == ["va-_-ubuntu-_-sudo"]
    by_count = recs(env, **{"$orderby": "exposedMachinesCount asc", "$top": "1", "$select": "id,exposedMachinesCount"})
    assert by_count == [{"id": "va-_-ubuntu-_-openssl", "exposedMachinesCount": 1}]
    assert api(env, "GET", "/api/recommendations", params={"$filter": "nope eq 1"}, expect=400)
    assert api(env, "GET", "/api/recommendations/va-_-ubuntu-_-nothing", expect=404)


def test_exposed_devices_trend(env: Env) -> None:
    focal_kb(env)
    first = Agent(env, "agent-1")
    first.inventory(ga_packages())
    now = dt.datetime.now(dt.UTC)
    refresh(env.store, env.a.id, now=now - dt.timedelta(days=7))
    assert api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo")["exposedMachinesTrend"] == "New"
    Agent(env, "agent-2").inventory(ga_packages())
    refresh(env.store, env.a.id, now=now)
    sudo = api(env, "GET", "/api/recommendations/va-_-ubuntu-_-sudo")
    assert sudo["exposedMachinesTrend"] == "Rising"
    points = [(p["date"], p["exposedMachines"]) for p in sudo["exposedMachinesHistory"]]
    assert points == [((now - dt.timedelta(days=7)).date().isoformat(), 1), (now.date().isoformat(), 2)]


def test_two_copies_of_one_package_on_a_device_count_one_device(env: Env) -> None:
    """pip (here requests) installed twice on one host, both vulnerable: one exposed, one installed device on
    the recommendation, the software and the vulnerability (the issue: "Update pip" counted the device twice)."""
    from garrison.protocol import SoftwarePackage
    from tests.tvm.prioritisation.conftest import ROOT, load_kb

    load_kb(env, ROOT / "tvm" / "pypa" / "requests")
    host = Agent(env, "two-pythons")
    copies = [SoftwarePackage(manager="python", name="requests", version=v, ecosystem="PyPI", path=p).model_dump()
              for v, p in (("2.19.1", "/usr/lib/python3/dist-packages"), ("2.22.0", "/opt/app/venv/lib"))]
    host.inventory(copies)
    recompute(env)
    recs = [r for r in api(env, "GET", "/api/recommendations")["value"] if r["productName"] == "requests"]
    assert [(r["exposedMachinesCount"], r["totalMachineCount"]) for r in recs] == [(1, 1)]
    sw = api(env, "GET", f"/api/Software/{recs[0]['id'].removeprefix('va-_-')}")
    assert (sw["exposedMachines"], sw["installedMachines"]) == (1, 1)
    vulns = api(env, "GET", f"/api/Software/{sw['id']}/vulnerabilities")["value"]
    assert vulns and all(v["exposedMachines"] == 1 for v in vulns)
    assert all(v["exposedMachines"] == 1 for v in api(env, "GET", "/api/vulnerabilities")["value"])


def test_a_device_with_a_vulnerable_and_a_fixed_copy_counts_once_installed(env: Env) -> None:
    """"Installed on" is one definition for the recommendation and its software: devices with any version.
    A host with a vulnerable and a fixed requests is exposed and installed once (it was counted twice: once
    exposed, once more for its fixed copy); a host with only the fixed one is installed, not exposed."""
    from garrison.protocol import SoftwarePackage
    from tests.tvm.prioritisation.conftest import ROOT, load_kb

    load_kb(env, ROOT / "tvm" / "pypa" / "requests")

    def requests(*copies: tuple[str, str]) -> list[dict[str, Any]]:
        return [SoftwarePackage(manager="python", name="requests", version=v, ecosystem="PyPI", path=p).model_dump()
                for v, p in copies]

    Agent(env, "mixed").inventory(requests(("2.19.1", "/usr/lib/python3/dist-packages"), ("2.31.0", "/opt/venv/lib")))
    Agent(env, "fixed-only").inventory(requests(("2.31.0", "/opt/venv/lib")))
    recompute(env)
    recs = [r for r in api(env, "GET", "/api/recommendations")["value"] if r["productName"] == "requests"]
    assert [(r["exposedMachinesCount"], r["totalMachineCount"]) for r in recs] == [(1, 2)]
    sw = api(env, "GET", f"/api/Software/{recs[0]['id'].removeprefix('va-_-')}")
    assert (sw["exposedMachines"], sw["installedMachines"]) == (1, 2)
