"""Demo content: the starter knowledge base and the demo fleet, offline, idempotent."""

from __future__ import annotations

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


def test_a_fresh_demo_has_history_from_a_real_security_update(store: Store) -> None:
    """The demo's Ubuntu host is scored as imported, then takes the real gzip update of USN-5378-1 (the
    fixed version the advisory names) and is scored again: the timeline has that update, with the
    exposure it removed, and the exposure score has its history. A second load adds nothing."""
    from sqlalchemy import select

    from garrison.store.models.core import Device
    from garrison.store.models.prioritisation import ExposureScoreHistory, TimelineEvent
    from garrison.store.models.tvm import SoftwareHistory

    with store.system() as s:
        tenant_id = access.create_tenant(s, "default").id
    first = demo.load(store, "default", quiet=True)
    assert first["history"] == {"events": 1, "update": "gzip 1.10-0ubuntu4.1"}
    with store.tenant(tenant_id) as s:
        events = list(s.scalars(select(TimelineEvent)))
        assert [(e.kind, e.related_component) for e in events] == [("SoftwareUpdated", "gzip")]
        assert events[0].score_impact < 0  # the update removed CVE-2022-1271's share of the score
        assert s.execute(select(SoftwareHistory.software_id, SoftwareHistory.event, SoftwareHistory.old_version,
                                SoftwareHistory.new_version)).all() == [
            ("ubuntu-_-gzip", "updated", "1.10-0ubuntu4", "1.10-0ubuntu4.1")]
        assert s.scalar(select(ExposureScoreHistory.score).where(ExposureScoreHistory.group_id == 0)) > 0
        focal = s.scalar(select(Device.id).where(Device.computer_dns_name == "demo-ubuntu-focal"))
        assert not [f for f in open_findings(s) if f.vulnerability_id == "CVE-2022-1271" and f.device_id == focal
                    and f.software_id == "ubuntu-_-gzip"]
    second = demo.load(store, "default", quiet=True)
    assert second["history"] == {}
    with store.tenant(tenant_id) as s:
        assert len(list(s.scalars(select(TimelineEvent)))) == 1
