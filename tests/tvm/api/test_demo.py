"""Demo content: the starter knowledge base and the demo fleet, offline, idempotent."""

from __future__ import annotations

from typing import Any

from garrison.core import access
from garrison.store.db import Store
from garrison.tvm import demo
from garrison.tvm.findings import open_findings


def test_demo_loads_real_findings_and_is_idempotent(store: Store) -> None:
    with store.system() as s:
        tenant_id = access.create_tenant(s, "default").id
    first = demo.load(store, "default", quiet=True)
    assert first["demoDevices"] == first["demoDevicesCreated"] == 6
    assert first["knowledgeBase"]["records"] > 1000
    assert first["findings"] > 0 and first["vulnerabilities"] > 0
    with store.tenant(tenant_id) as s:
        found = open_findings(s)
    baron = [f for f in found if f.vulnerability_id == "CVE-2021-3156"]
    assert {(f.package, f.version, f.fixed_version) for f in baron} >= {("sudo", "1.8.31-1ubuntu1", "1.8.31-1ubuntu1.2")}
    # A Red Hat-family host matched through Red Hat's product streams, and a server binary by its CPE.
    got = {(f.package, f.vulnerability_id, f.source) for f in found}
    assert {("openssl-libs", "CVE-2019-1559", "osv"), ("postgresql", "CVE-2022-1552", "nvd")} <= got

    second = demo.load(store, "default", quiet=True)
    assert second["demoDevicesCreated"] == 0 and second["demoDevices"] == 6
    assert (second["findings"], second["vulnerabilities"]) == (first["findings"], first["vulnerabilities"])
    with store.tenant(tenant_id) as s:
        assert len(open_findings(s)) == len(found)


def test_demo_gives_every_cve_a_severity_and_its_source(store: Store) -> None:
    """The starter knowledge base rates every CVE the demo fleet is exposed to (the issue: 38 of 64 were
    "Unknown", CVE-2022-1292 among them) and its feeds import without error (Alpine v3.6's heimdal)."""
    from garrison.store.models.kb import Vulnerability
    from garrison.tvm.kb import feeds_status
    from garrison.tvm.kb.cvss import severity_source

    with store.system() as s:
        tenant_id = access.create_tenant(s, "default").id
    loaded = demo.load(store, "default", quiet=True)
    assert loaded["knowledgeBase"]["errors"] == 0 and loaded["feedErrors"] == []
    assert [f["name"] for f in feeds_status(store) if f["error"]] == []
    alpine = next(f for f in feeds_status(store) if f["name"] == "alpine-secdb")
    assert "Alpine:v3.6" in alpine["releases"] and "Alpine:v3.14" not in alpine["releases"]
    with store.tenant(tenant_id) as s:
        cves = {f.vulnerability_id for f in open_findings(s) if f.vulnerability_id.startswith("CVE-")}
    assert len(cves) > 50
    with store.system() as s:
        rated = {v.id: (v.severity, severity_source({c: getattr(v, c) for c in (
            "severity", "cvss_v3_score", "cvss_v3_vector", "cvss_v4_score", "cvss_v4_vector", "info_ranks")}))
            for v in s.query(Vulnerability).filter(Vulnerability.id.in_(sorted(cves)))}
    assert [c for c, (sev, _src) in rated.items() if sev == "Unknown"] == []
    assert rated["CVE-2022-1292"] == ("High", "NVD CVSS v3.1")


def test_demo_reports_feed_errors_when_it_starts(store: Store) -> None:
    from garrison.store.models.kb import FeedSource

    with store.system() as s:
        access.create_tenant(s, "default")
        s.add(FeedSource(name="osv:broken", stats={}, error="osv:broken: HTTP 503 from the mirror\nretry later"))
    loaded = demo.load(store, "default", quiet=True)
    assert loaded["feedErrors"] == ["osv:broken: osv:broken: HTTP 503 from the mirror"]


def test_a_fresh_demo_replays_a_history_from_the_bundled_data_s_own_dates(env: Any) -> None:
    """A fresh demo has a history a user can follow (the issue: one event, one trend point), built from the
    dates the bundled data carries: the fleet scored with the records known on 2025-07-16 (the older snapshot
    of the Ubuntu notices), the notices modified 2026-04-27 applied as a feed update after that run (their
    CVEs on the Event timeline as new vulnerabilities), scored again, then today's sync and the Ubuntu host's
    real gzip update (USN-5378-1). API: three exposure-score points and the events; a second load adds nothing."""
    import datetime as dt

    from sqlalchemy import select

    from garrison.store.models.prioritisation import TimelineEvent
    from garrison.store.models.tvm import SoftwareHistory
    from tests.tvm.api.conftest import get

    first = demo.load(env.store, "alpha", quiet=True)
    today = dt.date.today().isoformat()
    history = first["history"]
    assert history["trend"] == ["2025-07-16", "2026-04-27", today]
    assert history["update"] == "gzip 1.10-0ubuntu4.1"
    update = history["feedUpdates"][0]
    assert update["at"].startswith("2026-04-27") and update["records"] > 0
    # the whole starter set is in at the end, as a plain load has it, and no feed is left failing or stale
    assert first["knowledgeBase"]["records"] > 39_000 and first["feedErrors"] == []

    points = get(env, "/api/exposureScore/history", days=731).json()["value"]
    assert [p["date"] for p in points] == history["trend"]
    assert all(p["devices"] == 6 for p in points)
    assert len({p["score"] for p in points}) == 3  # each run scored what was known then

    events = get(env, "/api/eventTimeline", fromDate="2025-01-01T00:00:00Z").json()["value"]
    new = [e for e in events if e["eventType"] == "NewVulnerability"]
    assert new and all(e["date"].startswith("2026-04-27") for e in new)  # the feed update, after the first run
    # the notices of that update name these CVEs (not in the older snapshot), on the Ubuntu host and one more
    assert {e["vulnerabilityId"] for e in new} >= {"CVE-2020-13529", "CVE-2021-33560"}
    assert all(e["originallyImpactedDevices"] >= 1 and e["scoreImpact"] > 0 for e in new)
    # the first load of every feed is a baseline: no event dated on the first day (KEV's sudo entry included)
    assert not [e for e in events if e["date"].startswith("2025-07-16")]
    updated = [e for e in events if e["eventType"] == "SoftwareUpdated"]
    assert [(e["relatedComponent"], e["date"][:10]) for e in updated] == [("gzip", today)]
    assert updated[0]["scoreImpact"] < 0  # the update removed CVE-2022-1271's share of the score
    with env.store.tenant(env.a.id) as s:
        assert s.execute(select(SoftwareHistory.software_id, SoftwareHistory.old_version,
                                SoftwareHistory.new_version)).all() == [
            ("ubuntu-_-gzip", "1.10-0ubuntu4", "1.10-0ubuntu4.1")]
        n_events = len(list(s.scalars(select(TimelineEvent))))
    assert n_events == len(events) >= 3

    second = demo.load(env.store, "alpha", quiet=True)
    assert second["history"] == {} and second["demoDevicesCreated"] == 0
    assert len(get(env, "/api/exposureScore/history", days=731).json()["value"]) == 3
    with env.store.tenant(env.a.id) as s:
        assert len(list(s.scalars(select(TimelineEvent)))) == n_events
