"""The event timeline, derived from real feed changes (kb_changes) and inventory changes
(software_history): new vulnerabilities, exploits, software installed / updated / uninstalled."""

from __future__ import annotations

import csv
import datetime as dt

from garrison.tvm.prioritisation import derive_events
from tests.tvm.prioritisation.conftest import (
    FOCAL,
    KEV,
    NO_FIX,
    Agent,
    Env,
    api,
    bump,
    ga_packages,
    load_kb,
    make_group,
    package,
    scoped_headers,
)


def affected_cves() -> set[str]:
    with open(FOCAL / "SOURCES.csv", newline="") as fh:
        return {c for r in csv.DictReader(fh) if r["ga_host_status"] == "affected" for c in r["cves"].split(";")}


def events(env: Env, **params: str) -> list[dict]:
    return list(api(env, "GET", "/api/eventTimeline", params=params or None)["value"])


def derive(env: Env) -> dict[str, int]:
    return derive_events(env.store, env.a.id)


def test_feed_changes_become_events_for_the_devices_that_had_the_software(env: Env) -> None:
    load_kb(env, FOCAL / "USN-4359-1.json")  # the feed's first load is a baseline, not news
    web = Agent(env, "web-1")
    web.inventory(ga_packages())
    assert derive(env)["events"] == 0
    load_kb(env, FOCAL)  # the other USNs arrive with a later feed update
    assert derive(env)["events"] == len(affected_cves())
    new = {e["vulnerabilityId"]: e for e in events(env, eventType="NewVulnerability")}
    assert set(new) == affected_cves()
    baron = new["CVE-2021-3156"]
    assert baron["relatedComponent"] == "sudo" and baron["recommendationId"] == "va-_-ubuntu-_-sudo"
    assert baron["originallyImpactedDevices"] == 1 and baron["originallyImpactedPercentage"] == 100.0
    assert baron["currentlyImpactedDevices"] == 1 and baron["severity"] == "High"
    assert baron["scoreTrend"] == "Raised" and baron["scoreImpact"] > 0
    assert baron["title"] == "New vulnerability CVE-2021-3156 in sudo on 1 device"

    # a device onboarded after the news brings its findings as a baseline
    db = Agent(env, "db-1")
    db.inventory(ga_packages())
    assert derive(env)["events"] == 0
    # KEV adds CVE-2021-3156: 'exploit verified' for both devices that have sudo now
    load_kb(env, KEV)
    derive(env)
    verified = events(env, eventType="ExploitVerified")
    assert [e["vulnerabilityId"] for e in verified] == ["CVE-2021-3156"]
    assert verified[0]["originallyImpactedDevices"] == 2 and "ExploitVerified" in verified[0]["types"]
    assert verified[0]["details"]["kevDateAdded"] == "2022-04-06"
    assert derive(env)["events"] == 0  # idempotent

    # drill-down: the devices and the vulnerability
    one = api(env, "GET", f"/api/eventTimeline/{verified[0]['id']}")
    assert {d["computerDnsName"] for d in one["devices"]} == {"web-1.corp.example", "db-1.corp.example"}
    assert one["vulnerability"]["kev"]

    # sudo is updated on web-1: a 'software updated' event that lowered the score
    web.inventory(bump(ga_packages(), "sudo", "1.8.31-1ubuntu1.2"))
    derive(env)
    updated = events(env, eventType="SoftwareUpdated")
    assert [(e["softwareId"], e["originallyImpactedDevices"], e["scoreTrend"]) for e in updated] == \
        [("ubuntu-_-sudo", 1, "Lowered")]
    assert updated[0]["details"]["versions"] == ["1.8.31-1ubuntu1 -> 1.8.31-1ubuntu1.2"]
    assert updated[0]["severity"] == "High"  # the worst finding the update removed
    baron_now = next(e for e in events(env, eventType="NewVulnerability") if e["vulnerabilityId"] == "CVE-2021-3156")
    assert baron_now["originallyImpactedDevices"] == 1 and baron_now["currentlyImpactedDevices"] == 1

    # filters
    assert events(env, fromDate=(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()) == []
    assert len(events(env, eventType="NewVulnerability,ExploitVerified")) == len(affected_cves()) + 1
    # shares of the organisation at the time: 1 of 1, 2 of 2, 1 of 2
    assert {e["eventType"] for e in events(env, minImpactedPercentage="75")} == {"NewVulnerability", "ExploitVerified"}
    assert [e["eventType"] for e in events(env, minImpactedPercentage="50") if e["eventType"].startswith("Software")] \
        == ["SoftwareUpdated"]
    assert len(events(env, **{"$top": "3"})) == 3
    body = api(env, "GET", "/api/eventTimeline")
    assert body["summary"]["newVulnerabilitiesLast30Days"] == len(affected_cves())
    assert body["summary"]["exploitableVulnerabilitiesLast30Days"] == 1
    api(env, "GET", "/api/eventTimeline", params={"eventType": "Nope"}, expect=400)


def test_software_installed_and_uninstalled(env: Env) -> None:
    load_kb(env, FOCAL, NO_FIX)
    host = Agent(env, "ldap-1")
    host.inventory(ga_packages())
    derive(env)
    sssd = package("sssd-common", "2.2.3-3ubuntu0.13", "sssd")
    host.inventory([*ga_packages(), sssd])
    derive(env)
    inst = events(env, eventType="SoftwareInstalled")
    assert [(e["softwareId"], e["scoreTrend"]) for e in inst] == [("ubuntu-_-sssd-common", "Raised")]
    assert inst[0]["currentlyImpactedDevices"] == 1 and inst[0]["severity"] == "High"
    host.inventory(ga_packages())
    derive(env)
    gone = events(env, eventType="SoftwareUninstalled")
    assert [(e["softwareId"], e["scoreTrend"]) for e in gone] == [("ubuntu-_-sssd-common", "Lowered")]
    assert gone[0]["title"] == "sssd-common uninstalled from 1 device"


def test_events_are_scoped_by_device_group(env: Env) -> None:
    load_kb(env, FOCAL / "USN-4359-1.json")
    web = make_group(env, "web", "web-*")
    db = make_group(env, "db", "db-*", rank=20)
    Agent(env, "web-1").inventory(ga_packages())
    Agent(env, "db-1").inventory([p for p in ga_packages() if p["source_name"] != "sudo"])
    load_kb(env, FOCAL / "USN-4705-1.json")
    derive(env)
    web_only = scoped_headers(env, "analyst", [web])
    db_only = scoped_headers(env, "analyst", [db])
    seen = env.client.get("/api/eventTimeline", headers=web_only).json()["value"]
    assert {e["vulnerabilityId"] for e in seen} == {"CVE-2021-3156", "CVE-2021-23239"}
    assert seen[0]["originallyImpactedPercentage"] is None  # the organisation's share is not theirs to see
    assert env.client.get("/api/eventTimeline", headers=db_only).json()["value"] == []
    assert env.client.get(f"/api/eventTimeline/{seen[0]['id']}", headers=db_only).status_code == 404


def test_event_impact_uses_fresh_scores_even_after_a_slow_refresh(env: Env) -> None:
    from garrison.tvm.prioritisation import service, timeline

    load_kb(env, FOCAL / "USN-4359-1.json")
    Agent(env, "web-1").inventory(ga_packages())
    assert derive(env)["events"] == 0
    with env.store.tenant(env.a.id) as s:  # as if the last refresh had taken 10 s on a busy machine
        timeline.set_cursor(s, env.a.id, service.DURATION, "10")
    load_kb(env, FOCAL)
    derive(env)
    baron = {e["vulnerabilityId"]: e for e in events(env, eventType="NewVulnerability")}["CVE-2021-3156"]
    assert baron["scoreTrend"] == "Raised" and baron["scoreImpact"] > 0
