"""Re-matching after feed updates touches only what changed; distro statuses decide what is a finding."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import insert, select

from garrison.store.models.kb import Advisory, AdvisoryVulnerability, AffectedPackage, Vulnerability
from garrison.store.models.tvm import PackageVersion
from garrison.tvm import inventory, matching
from garrison.tvm.kb import import_bytes, import_paths
from garrison.tvm.software import identity_of
from tests.tvm.matching.conftest import DATA, FOCAL, INVENTORIES, Fleet, findings, focal_sources, resolved
from tests.tvm.matching.test_ubuntu_focal import expected_findings


def _ga(fleet: Fleet) -> str:
    os_ident = inventory.read_os_release((INVENTORIES / "ubuntu-20.04-ga.os-release").read_bytes())
    data = (INVENTORIES / "ubuntu-20.04-ga.dpkg-status").read_bytes()
    return inventory.import_agentless(fleet.store, fleet.tenant_id, "focal-ga", data, os_ident=os_ident)["machineId"]


def test_feed_import_after_inventory_rematches_only_changed_packages(fleet: Fleet) -> None:
    device = _ga(fleet)
    assert findings(fleet, device) == []  # empty knowledge base
    result = import_paths(fleet.store, [FOCAL])
    stats = matching.rematch_changed(fleet.store, result.changed_packages)
    got = {(f.package, f.vulnerability_id, f.fixed_version) for f in findings(fleet, device)}
    assert got == expected_findings()
    # Only binaries of the 27 focal source packages named by the USNs were evaluated, not all 221.
    sources = {r["source_package"] for r in focal_sources()}
    with fleet.store.system() as s:
        rows = s.execute(select(PackageVersion.match_name)).scalars().all()
    assert stats.package_versions == sum(1 for name in rows if name in sources) < len(rows)

    # Importing the same feed again changes nothing, so nothing is re-matched.
    again = import_paths(fleet.store, [FOCAL])
    assert again.changed_packages == set()
    assert matching.rematch_changed(fleet.store, again.changed_packages).package_versions == 0


def test_withdrawn_advisory_resolves_its_findings(fleet: Fleet) -> None:
    import_paths(fleet.store, [FOCAL])
    device = _ga(fleet)
    assert {f.vulnerability_id for f in findings(fleet, device) if f.package == "sudo"} == \
        {"CVE-2021-3156", "CVE-2021-23239"}

    record = json.loads((FOCAL / "USN-4705-1.json").read_text())
    record["withdrawn"] = "2026-05-01T00:00:00Z"
    record["modified"] = "2026-05-01T00:00:00Z"
    result = import_bytes(fleet.store, json.dumps(record).encode(), "USN-4705-1.json")
    assert ("Ubuntu:20.04:LTS", "sudo") in result.changed_packages
    stats = matching.rematch_changed(fleet.store, result.changed_packages)
    assert stats.removed == 2 and stats.resolved == 2

    assert not any(f.package == "sudo" for f in findings(fleet, device))
    gone = {(f.vulnerability_id, f.status) for f in resolved(fleet, device)}
    assert gone == {("CVE-2021-3156", "knowledge_base"), ("CVE-2021-23239", "knowledge_base")}


def _debian_kb(fleet: Fleet) -> None:
    """Debian tracker verdicts for one release, as the knowledge base stores them (kb.py statuses)."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        # (advisory, CVE, package, status, fixed version or None)
        ("DEBIAN-CVE-2022-0456", "CVE-2022-0456", "chromium", "end_of_life", None),
        ("DEBIAN-CVE-2007-2383", "CVE-2007-2383", "prototypejs", "unimportant", None),
        ("DEBIAN-CVE-2021-0001", "CVE-2021-0001", "bash", "no_dsa", None),
        ("DEBIAN-CVE-2021-0002", "CVE-2021-0002", "bash", "not_affected", None),
        ("DEBIAN-CVE-2021-0003", "CVE-2021-0003", "bash", "undetermined", None),
        ("DEBIAN-CVE-2021-0004", "CVE-2021-0004", "bash", "affected", "5.0-4+deb10u1"),
    ]
    with fleet.store.system() as s:
        for adv, cve, pkg, status, fixed in rows:
            s.execute(insert(Vulnerability), {"id": cve, "severity": "Medium", "created_at": now, "modified_at": now})
            s.execute(insert(Advisory), {"id": adv, "source": "debian-tracker", "withdrawn": False, "summary": ""})
            s.execute(insert(AdvisoryVulnerability), {"advisory_id": adv, "vulnerability_id": cve})
            events = [{"introduced": "0"}] + ([{"fixed": fixed}] if fixed else [])
            s.execute(insert(AffectedPackage), {"advisory_id": adv, "ecosystem": "Debian:10", "package": pkg,
                                                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                                                "versions": [], "status": status})


def test_distro_statuses(fleet: Fleet) -> None:
    _debian_kb(fleet)
    status = (b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.0-4\n\n"
              b"Package: chromium\nStatus: install ok installed\nArchitecture: amd64\nVersion: 89.0.4389.114-1~deb10u1\n\n"
              b"Package: libjs-prototype\nStatus: install ok installed\nArchitecture: all\n"
              b"Source: prototypejs\nVersion: 1.7.1-3\n")
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "buster", status,
                                     os_ident=inventory.parse_os_arg("debian:10"))
    got = {(f.package, f.vulnerability_id, f.fixed_version, f.status) for f in findings(fleet, out["machineId"])}
    assert got == {
        ("bash", "CVE-2021-0004", "5.0-4+deb10u1", "affected"),
        ("bash", "CVE-2021-0001", None, "no_dsa"),  # open, no advisory planned
        ("chromium", "CVE-2022-0456", None, "end_of_life"),  # open, no longer supported
        # unimportant (prototypejs), not_affected and undetermined (bash) give nothing
    }


def test_package_identity_is_global_and_keyed_by_source_for_debian() -> None:
    from garrison.protocol import SoftwarePackage

    p = SoftwarePackage(manager="dpkg", name="libc6", version="2.31-0ubuntu9", arch="armhf",
                        source_name="glibc", source_version="2.31-0ubuntu9")
    ident = identity_of(p, "Ubuntu:20.04:LTS")
    assert (ident.ecosystem, ident.match_name, ident.software_id) == ("Ubuntu:20.04:LTS", "glibc", "ubuntu-_-libc6")
    other = identity_of(p, "Ubuntu:22.04:LTS")
    assert ident.key != other.key  # another release is another package version


def test_debian_tracker_records(fleet: Fleet) -> None:
    """Real tracker entries (debian.json sample): chromium in buster is open and end-of-life; sope in
    bookworm is fixed in a point release; the installed versions are those the tracker lists for
    each release's repository."""
    result = import_paths(fleet.store, [DATA / "debian-tracker" / "debian.json"])
    assert result.errors == []
    buster = (b"Package: chromium\nStatus: install ok installed\nArchitecture: amd64\n"
              b"Version: 89.0.4389.114-1~deb10u1\n\n"
              b"Package: libjs-prototype\nStatus: install ok installed\nArchitecture: all\n"
              b"Source: prototypejs\nVersion: 1.7.1-3\n")
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "buster", buster,
                                     os_ident=inventory.parse_os_arg("debian:10"))
    assert {(f.package, f.vulnerability_id, f.fixed_version, f.status) for f in findings(fleet, out["machineId"])} \
        == {("chromium", "CVE-2022-0456", None, "end_of_life")}  # prototypejs 1.7.1-3 is past both fixes

    bookworm = b"Package: libsope1\nStatus: install ok installed\nArchitecture: amd64\nSource: sope\nVersion: 5.8.0-1\n"
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "bookworm", bookworm,
                                     os_ident=inventory.parse_os_arg("debian:12"))
    assert {(f.package, f.vulnerability_id, f.fixed_version) for f in findings(fleet, out["machineId"])} == \
        {("libsope1", "CVE-2025-53603", "5.8.0-1+deb12u1")}


def test_an_advisory_that_names_another_cve_is_rematched(fleet: Fleet) -> None:
    # USN-4705-1 (sudo) re-published naming only one of its two CVEs, then as published: the packages
    # are the same both times, the findings are not.
    record = json.loads((FOCAL / "USN-4705-1.json").read_text())
    first = {**record, "upstream": [c for c in record["upstream"] if not c.endswith("CVE-2021-23239")]}
    import_bytes(fleet.store, json.dumps(first).encode(), "USN-4705-1.json")
    device = _ga(fleet)
    assert {f.vulnerability_id for f in findings(fleet, device) if f.package == "sudo"} == {"CVE-2021-3156"}

    record["modified"] = "2026-05-01T00:00:00Z"
    result = import_bytes(fleet.store, json.dumps(record).encode(), "USN-4705-1.json")
    assert ("Ubuntu:20.04:LTS", "sudo") in result.changed_packages
    matching.rematch_changed(fleet.store, result.changed_packages)
    assert {f.vulnerability_id for f in findings(fleet, device) if f.package == "sudo"} == \
        {"CVE-2021-3156", "CVE-2021-23239"}
