"""Acceptance: the real Ubuntu 20.04 GA host against the real Ubuntu 20.04 USNs.

Every expected finding comes from SOURCES.csv (computed with ``dpkg --compare-versions``, independent
of Garrison): each USN marked ``affected`` yields, for every installed binary package built from its
source package, one finding per CVE the USN names, fixed in the USN's focal version. The 3 USNs marked
``not-affected`` must yield nothing, and nothing else may appear.
"""

from __future__ import annotations

import re

from garrison.inventory import parse_dpkg_status
from garrison.tvm import inventory
from garrison.tvm.kb import import_paths
from tests.tvm.matching.conftest import FOCAL, INVENTORIES, Fleet, findings, focal_sources, resolved

GA_STATUS = INVENTORIES / "ubuntu-20.04-ga.dpkg-status"
GA_OS = INVENTORIES / "ubuntu-20.04-ga.os-release"


def _import(fleet: Fleet, data: bytes, name: str = "focal-ga") -> dict:
    os_ident = inventory.read_os_release(GA_OS.read_bytes())
    return inventory.import_agentless(fleet.store, fleet.tenant_id, name, data, os_ident=os_ident)


def _binaries_by_source() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for p in parse_dpkg_status(GA_STATUS.read_bytes()):
        out.setdefault(p.source_name, []).append((p.name, p.source_version))
    return out


def expected_findings() -> set[tuple[str, str, str]]:
    """(binary package, CVE, fixed version) for every affected USN of SOURCES.csv."""
    binaries = _binaries_by_source()
    want = set()
    for row in focal_sources():
        if row["ga_host_status"] != "affected":
            continue
        for binary, source_version in binaries[row["source_package"]]:
            assert source_version == row["ga_host_source_version"]
            for cve in row["cves"].split(";"):
                want.add((binary, cve, row["focal_fixed_version"]))
    return want


def test_sources_csv_is_what_the_data_says() -> None:
    rows = focal_sources()
    assert sum(r["ga_host_status"] == "affected" for r in rows) == 25
    assert sum(r["ga_host_status"].startswith("not-affected") for r in rows) == 3


def test_ga_host_findings_are_exactly_the_affected_usns(fleet: Fleet) -> None:
    result = import_paths(fleet.store, [FOCAL])
    assert result.errors == []
    out = _import(fleet, GA_STATUS.read_bytes())
    assert out["ecosystem"] == "Ubuntu:20.04:LTS"
    assert out["packages"] == 221

    found = findings(fleet, out["machineId"])
    got = {(f.package, f.vulnerability_id, f.fixed_version) for f in found}
    assert got == expected_findings()

    sudo = {f.vulnerability_id: f for f in found if f.package == "sudo"}
    assert sudo["CVE-2021-3156"].version == "1.8.31-1ubuntu1"
    assert sudo["CVE-2021-3156"].fixed_version == "1.8.31-1ubuntu1.2"
    assert sudo["CVE-2021-3156"].advisory_ids == ["USN-4705-1"]
    assert sudo["CVE-2021-3156"].software_id == "ubuntu-_-sudo"

    # The not-affected USNs (host already at or above their fix) give nothing.
    quiet = {r["id"] for r in focal_sources() if r["ga_host_status"] != "affected"}
    assert not any(set(f.advisory_ids) & quiet for f in found)


def _patched_status() -> bytes:
    """The GA status file with every affected source package's binaries raised to the USN fix."""
    fixed: dict[str, str] = {}
    scheme_rows = [r for r in focal_sources() if r["ga_host_status"] == "affected"]
    from garrison.tvm.versions import get_scheme

    dpkg = get_scheme("dpkg")
    for r in scheme_rows:
        cur = fixed.get(r["source_package"])
        if cur is None or dpkg.compare(r["focal_fixed_version"], cur) > 0:
            fixed[r["source_package"]] = r["focal_fixed_version"]
    out = []
    for stanza in GA_STATUS.read_text().split("\n\n"):
        pkg = re.search(r"(?m)^Package: (\S+)$", stanza)
        src = re.search(r"(?m)^Source: (\S+)(?: \((\S+)\))?$", stanza)
        source = src.group(1) if src else (pkg.group(1) if pkg else "")
        if source in fixed:
            stanza = re.sub(r"(?m)^Version: .*$", f"Version: {fixed[source]}", stanza)
            if src:
                stanza = re.sub(r"(?m)^Source: .*$", f"Source: {source}", stanza)
        out.append(stanza)
    return "\n\n".join(out).encode()


def test_patched_host_has_no_findings_and_old_ones_are_resolved(fleet: Fleet) -> None:
    import_paths(fleet.store, [FOCAL])
    first = _import(fleet, GA_STATUS.read_bytes())
    before = findings(fleet, first["machineId"])
    assert len(before) == len(expected_findings())

    second = _import(fleet, _patched_status())
    assert second["machineId"] == first["machineId"] and not second["created"]
    assert findings(fleet, first["machineId"]) == []

    done = resolved(fleet, first["machineId"])
    assert {(f.vulnerability_id, f.software_id, f.version) for f in done} == \
        {(f.vulnerability_id, f.software_id, f.version) for f in before}
    assert all(f.status == "updated" and f.resolved_at is not None for f in done)


def test_a_patched_host_alone_matches_nothing(fleet: Fleet) -> None:
    import_paths(fleet.store, [FOCAL])
    out = _import(fleet, _patched_status(), "focal-patched")
    assert out["findingsMatched"] == 0
    assert findings(fleet, out["machineId"]) == []
