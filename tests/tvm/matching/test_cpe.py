"""NVD CPE matching: only for software no distro or package database tracks, on real records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.inventory import InventoryParseError, parse_inventory
from garrison.inventory.cpe import CpeError, parse_cpe
from garrison.tvm import inventory
from garrison.tvm.kb import import_paths
from garrison.tvm.kb.importers.nvd import cpe_affected
from garrison.tvm.matching import evaluate, prepare_entry
from garrison.tvm.versions import get_scheme
from tests.tvm.matching.conftest import DATA, Fleet, findings

NVD = DATA / "nvd"
POSTGRES_SBOM = Path(__file__).resolve().parents[2] / "data" / "inventories" / "postgres-stretch.cdx.xml"
PG_CPE = "cpe:2.3:a:postgresql:postgresql:11.15:*:*:*:*:*:*:*"


def test_postgres_binary_in_a_real_sbom_is_matched_by_cpe(fleet: Fleet) -> None:
    result = import_paths(fleet.store, [NVD])
    assert result.errors == [] and result.by_importer["nvd"] == 2
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "pg", POSTGRES_SBOM.read_bytes())
    got = {(f.package, f.software_id, f.vulnerability_id, f.fixed_version, tuple(f.advisory_ids))
           for f in findings(fleet, out["machineId"])}
    # The SBOM's binary-cataloger component pkg:generic/postgresql@11.15 is in 11.0-11.16 of
    # CVE-2022-1552; CVE-2021-23214 ends at 11.14 (and names 14.0 exactly). The deb packages
    # postgresql-11 (11.15-1.pgdg90+1) carry CPEs too, but a distro package is never matched by CPE.
    assert got == {("postgresql", "postgresql-_-postgresql", "CVE-2022-1552", "11.16", ("NVD-CVE-2022-1552",))}


def _cdx(components: list[dict]) -> bytes:
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
                       "metadata": {"component": {"type": "operating-system", "name": "debian", "version": "12"}},
                       "components": components}).encode()


def test_distro_and_language_packages_are_never_matched_by_cpe(fleet: Fleet) -> None:
    import_paths(fleet.store, [NVD])
    # Made for the test: the same vulnerable CPE on a Debian package, a Go module and a generic binary.
    data = _cdx([
        {"type": "library", "name": "postgresql-11", "version": "11.15-1", "cpe": PG_CPE,
         "purl": "pkg:deb/debian/postgresql-11@11.15-1?arch=amd64"},
        {"type": "library", "name": "github.com/postgres/pgx", "version": "11.15.0", "cpe": PG_CPE,
         "purl": "pkg:golang/github.com/postgres/pgx@11.15.0"},
        {"type": "application", "name": "postgres", "version": "11.15", "cpe": PG_CPE},
    ])
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "mixed", data)
    got = {(f.package, f.vulnerability_id) for f in findings(fleet, out["machineId"])}
    assert got == {("postgres", "CVE-2022-1552")}


def test_a_component_without_cpe_is_matched_by_nothing(fleet: Fleet) -> None:
    import_paths(fleet.store, [NVD])
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "nocpe",
                                     _cdx([{"type": "application", "name": "postgresql", "version": "11.15"}]))
    assert findings(fleet, out["machineId"]) == []


def test_malformed_cpe_in_an_sbom_names_the_field() -> None:
    with pytest.raises(InventoryParseError, match=r"components\[0\]\.cpe"):
        parse_inventory(_cdx([{"type": "application", "name": "x", "version": "1", "cpe": "cpe:2.3:a:x"}]))


@pytest.mark.parametrize(("text", "expected"), [
    (PG_CPE, ("a", "postgresql", "postgresql", "11.15", "11.15")),
    (r"cpe:2.3:a:base-files:base-files:9.9\+deb9u13:*:*:*:*:*:*:*", ("a", "base-files", "base-files", "9.9+deb9u13", "9.9+deb9u13")),
    ("cpe:/a:openbsd:openssh:8.5:p1", ("a", "openbsd", "openssh", "8.5", "8.5p1")),
    ("cpe:2.3:o:Fedoraproject:Fedora:35:*:*:*:*:*:*:*", ("o", "fedoraproject", "fedora", "35", "35")),
])
def test_cpe_names(text: str, expected: tuple[str, ...]) -> None:
    c = parse_cpe(text)
    assert (c.part, c.vendor, c.product, c.version, c.full_version) == expected


@pytest.mark.parametrize("text", ["", "cpe:2.3:a:x", "cpe:2.3:x:v:p:1:*:*:*:*:*:*:*", "cpe:2.3:a:*:p:1:*:*:*:*:*:*:*",
                                  "cpe:2.3:a:v:p:1 2:*:*:*:*:*:*:*", "pkg:generic/x@1", "cpe:" + "a" * 600])
def test_not_cpe_names(text: str) -> None:
    with pytest.raises(CpeError):
        parse_cpe(text)


@pytest.mark.parametrize(("a", "b", "order"), [
    ("11.15", "11.2", 1), ("1.0", "1.0.0", 0), ("1.0rc1", "1.0", -1), ("1.0.0rc1", "1.0rc1", 0),
    ("1.0.2k", "1.0.2", 1), ("1.0.2k", "1.0.2l", -1), ("8.5p1", "8.5", 1), ("v1.0.1", "1.0.1", 0),
    ("9.6.24", "11.0", -1), ("2.0-beta2", "2.0-beta10", -1), ("2.0.1", "2.0.0.1", 1), ("10", "10.0", 0),
])
def test_generic_version_order(a: str, b: str, order: int) -> None:
    assert get_scheme("generic").compare(a, b) == order


def _nvd_match(**bounds: str) -> dict:
    match = {"vulnerable": True, "criteria": "cpe:2.3:a:acme:tool:*:*:*:*:*:*:*:*", **bounds}
    return {"id": "CVE-2099-0001", "configurations": [{"nodes": [{"operator": "OR", "negate": False,
                                                                  "cpeMatch": [match]}]}]}


@pytest.mark.parametrize(("bounds", "affected", "not_affected", "fixed"), [
    ({"versionStartExcluding": "2.0", "versionEndExcluding": "2.4"}, ["2.0.1", "2.3.9"], ["2.0", "2.4", "1.9"], "2.4"),
    ({"versionStartIncluding": "2.0", "versionEndIncluding": "2.4"}, ["2.0", "2.4"], ["1.9", "2.4.1"], None),
    ({"versionEndExcluding": "3.1"}, ["0.1", "3.0.9"], ["3.1", "4"], "3.1"),
])
def test_nvd_bounds(bounds: dict, affected: list[str], not_affected: list[str], fixed: str | None) -> None:
    [entry], warnings = cpe_affected(_nvd_match(**bounds))
    assert warnings == [] and entry.ecosystem == "CPE" and entry.package == "acme:tool"
    prepared = prepare_entry("CPE", "NVD-CVE-2099-0001", "nvd", "affected", entry.ranges, entry.versions)
    assert [v for v in affected + not_affected if evaluate(prepared, v).affected] == affected
    assert (evaluate(prepared, affected[0]).fixes or [None])[0] == fixed


def test_nvd_platforms_and_exact_versions() -> None:
    cve = json.loads((NVD / "CVE-2021-23214.json").read_text())
    entries = {e.package: e for e in cpe_affected(cve)[0]}
    assert set(entries) == {"postgresql:postgresql", "redhat:software_collections"}  # Fedora/RHEL: part o
    pg = prepare_entry("CPE", "NVD-CVE-2021-23214", "nvd", "affected", entries["postgresql:postgresql"].ranges, [])
    assert {v: evaluate(pg, v).affected for v in ("9.6.23", "9.6.24", "11.13", "11.14", "14.0", "14.1")} == {
        "9.6.23": True, "9.6.24": False, "11.13": True, "11.14": False, "14.0": True, "14.1": False}


def test_a_bad_nvd_bound_costs_that_match_not_the_record() -> None:
    cve = _nvd_match(versionEndExcluding="2.4")
    cve["configurations"][0]["nodes"][0]["cpeMatch"].append(
        {"vulnerable": True, "criteria": "cpe:2.3:a:acme:other:*:*:*:*:*:*:*:*", "versionEndExcluding": 5})
    entries, warnings = cpe_affected(cve)
    assert [e.package for e in entries] == ["acme:tool"]
    assert len(warnings) == 1 and "versionEndExcluding" in warnings[0]
