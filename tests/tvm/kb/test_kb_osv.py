import json
import shutil
from pathlib import Path

from garrison.tvm.kb import import_paths
from tests.tvm.kb.kbutil import advisory, affected, changes, counts, links, vuln


def _fixed(row) -> str | None:
    for rng in row.ranges:
        for ev in rng["events"]:
            if "fixed" in ev:
                return ev["fixed"]
    return None


def test_usn_attaches_to_its_cves_with_focal_source_package(store, data) -> None:
    result = import_paths(store, data / "osv" / "ubuntu-focal")
    assert result.errors == []
    assert result.records == 5
    adv = advisory(store, "USN-4705-1")
    assert adv is not None and adv.source == "osv" and not adv.withdrawn
    assert adv.summary == "sudo vulnerabilities"
    assert links(store, "USN-4705-1") == {"CVE-2021-3156", "CVE-2021-23239"}
    focal = [r for r in affected(store, "USN-4705-1") if r.ecosystem == "Ubuntu:20.04:LTS"]
    assert len(focal) == 1
    assert focal[0].package == "sudo"
    assert _fixed(focal[0]) == "1.8.31-1ubuntu1.2"
    assert focal[0].ranges == [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.8.31-1ubuntu1.2"}]}]
    assert "1.8.31-1ubuntu1.1" in focal[0].versions
    assert focal[0].status == "affected" and focal[0].severity == "high"
    assert ("Ubuntu:20.04:LTS", "sudo") in result.changed_packages
    assert {"CVE-2021-3156", "CVE-2021-23239"} <= result.changed_vulnerabilities

    # Per-CVE CVSS from the USN's cves_map: each CVE gets its own score, not the advisory's maximum.
    baron = vuln(store, "CVE-2021-3156")
    assert baron.cvss_v3_vector == "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"
    assert baron.cvss_v3_score == 7.8 and baron.severity == "High"
    assert baron.sources == ["USN-4705-1"]
    other = vuln(store, "CVE-2021-23239")
    assert other.cvss_v3_score == 2.5 and other.severity == "Low"
    added = {c["vid"] for c in changes(store, "vulnerability_added")}
    assert {"CVE-2021-3156", "CVE-2021-23239"} <= added


def test_two_usns_for_one_cve_and_two_source_packages_in_one_release(store, data) -> None:
    import_paths(store, data / "osv" / "ubuntu-focal")
    # USN-5378-1 (gzip) and USN-5378-2 (xz-utils) both fix CVE-2022-1271.
    assert vuln(store, "CVE-2022-1271").sources == ["USN-5378-1", "USN-5378-2"]
    # USN-5328-1 lists two 18.04 source packages (openssl and openssl1.0): both rows are kept.
    bionic = sorted(r.package for r in affected(store, "USN-5328-1") if r.ecosystem == "Ubuntu:18.04:LTS")
    assert bionic == ["openssl", "openssl1.0"]


def test_reimport_is_idempotent(store, data) -> None:
    first = import_paths(store, data / "osv")
    before = counts(store)
    second = import_paths(store, data / "osv")
    assert second.records == first.records
    assert second.vulnerabilities == first.vulnerabilities
    assert second.unchanged == second.records
    assert second.changed_packages == set() and second.changed_vulnerabilities == set()
    assert counts(store) == before  # no duplicate rows, no new change events


def test_changed_record_reports_packages_and_an_update_event(store, data, tmp_path) -> None:
    src = tmp_path / "USN-4705-1.json"
    shutil.copy(data / "osv" / "ubuntu-focal" / "USN-4705-1.json", src)
    import_paths(store, src)
    record = json.loads(src.read_text())
    record["modified"] = "2026-05-01T00:00:00Z"
    for aff in record["affected"]:
        if aff["package"]["ecosystem"] == "Ubuntu:20.04:LTS":
            aff["ranges"][0]["events"][1]["fixed"] = "1.8.31-1ubuntu1.3"
    src.write_text(json.dumps(record))
    result = import_paths(store, src)
    assert result.changed_packages == {("Ubuntu:20.04:LTS", "sudo")}  # only the row that changed
    assert result.changed_vulnerabilities == {"CVE-2021-3156", "CVE-2021-23239"}
    focal = [r for r in affected(store, "USN-4705-1") if r.ecosystem == "Ubuntu:20.04:LTS"]
    assert [_fixed(r) for r in focal] == ["1.8.31-1ubuntu1.3"]
    updates = changes(store, "vulnerability_updated", "CVE-2021-3156")
    assert updates and updates[-1]["details"]["advisories_updated"] == ["USN-4705-1"]

    # A change that does not touch packages (only the timestamp) needs no re-matching.
    record["modified"] = "2026-05-02T00:00:00Z"
    src.write_text(json.dumps(record))
    again = import_paths(store, src)
    assert again.changed_packages == set()
    assert again.unchanged == 0


def test_withdrawn_pysec_records_are_marked_and_are_not_evidence(store, data) -> None:
    result = import_paths(store, data / "osv" / "pypa")
    assert result.errors == []
    redis = advisory(store, "PYSEC-2023-73")
    assert redis.withdrawn is True
    assert links(store, "PYSEC-2023-73") == {"CVE-2023-31655"}
    assert vuln(store, "CVE-2023-31655").sources == []  # a withdrawn record is no evidence
    assert advisory(store, "PYSEC-2023-101").withdrawn is True
    assert advisory(store, "PYSEC-2021-5").withdrawn is False
    # Packages of a withdrawn record are kept (evidence) but matching has nothing to redo.
    assert ("PyPI", "redis") not in result.changed_packages
    assert [r.package for r in affected(store, "PYSEC-2023-73")] == ["redis"]


def test_withdrawing_an_active_advisory_is_an_event(store, data, tmp_path) -> None:
    src = tmp_path / "PYSEC-2021-5.yaml"
    shutil.copy(data / "osv" / "pypa" / "vulns" / "cairosvg" / "PYSEC-2021-5.yaml", src)
    import_paths(store, src)
    assert vuln(store, "CVE-2021-21236").sources == ["PYSEC-2021-5"]
    src.write_text(src.read_text() + "withdrawn: '2024-01-01T00:00:00Z'\n")
    result = import_paths(store, src)
    assert advisory(store, "PYSEC-2021-5").withdrawn
    assert vuln(store, "CVE-2021-21236").sources == []
    assert ("PyPI", "cairosvg") in result.changed_packages
    assert [c["details"] for c in changes(store, "advisory_withdrawn")] == [{"advisory": "PYSEC-2021-5"}]


def test_ghsa_and_pysec_for_one_cve_merge_into_one_vulnerability(store, data) -> None:
    import_paths(store, [data / "osv" / "ghsa", data / "osv" / "pypa"])
    v = vuln(store, "CVE-2021-21236")
    assert sorted(v.sources) == ["GHSA-hq37-853p-g5cf", "PYSEC-2021-5"]
    assert links(store, "GHSA-hq37-853p-g5cf") == links(store, "PYSEC-2021-5") == {"CVE-2021-21236"}
    assert vuln(store, "GHSA-hq37-853p-g5cf") is None and vuln(store, "PYSEC-2021-5") is None
    # GHSA names the project "CairoSVG", PyPA "cairosvg": both are stored PEP 503-normalised.
    assert [(r.ecosystem, r.package) for r in affected(store, "GHSA-hq37-853p-g5cf")] == [("PyPI", "cairosvg")]
    assert [(r.ecosystem, r.package) for r in affected(store, "PYSEC-2021-5")] == [("PyPI", "cairosvg")]
    assert v.cwes == ["CWE-400"] and v.severity == "Medium"  # GHSA's MODERATE, no CVSS given
    # PYSEC's GIT range is kept next to the ECOSYSTEM one, exactly as OSV gives it.
    types = [r["type"] for r in affected(store, "PYSEC-2021-5")[0].ranges]
    assert types == ["GIT", "ECOSYSTEM"]


def test_records_without_a_cve_resolve_through_aliases(store, data, tmp_path) -> None:
    # Two real records' shapes with the CVE alias removed: they must still meet on one vulnerability.
    ghsa = json.loads((data / "osv" / "ghsa" / "GHSA-hq37-853p-g5cf.json").read_text())
    ghsa["aliases"] = []
    pysec = data / "osv" / "pypa" / "vulns" / "cairosvg" / "PYSEC-2021-5.yaml"
    text = pysec.read_text().replace("- CVE-2021-21236\n", "")
    (tmp_path / "a.json").write_text(json.dumps(ghsa))
    import_paths(store, tmp_path / "a.json")
    (tmp_path / "b.yaml").write_text(text)
    import_paths(store, tmp_path / "b.yaml")
    assert links(store, "PYSEC-2021-5") == {"GHSA-hq37-853p-g5cf"}
    assert sorted(vuln(store, "GHSA-hq37-853p-g5cf").sources) == ["GHSA-hq37-853p-g5cf", "PYSEC-2021-5"]


def test_distro_and_package_database_samples(store, data) -> None:
    result = import_paths(store, data / "osv" / "samples")
    assert result.errors == []
    # A bare CVE id as record id (old Alpine OSV) is stored as ALPINE-CVE-…, attached to the CVE.
    assert links(store, "ALPINE-CVE-2022-27449") == {"CVE-2022-27449"}
    assert {r.ecosystem for r in affected(store, "ALPINE-CVE-2022-27449")} >= {"Alpine:v3.14", "Alpine:v3.16"}
    # Rocky errata list the CVEs they fix in "related".
    assert "CVE-2021-35550" in links(store, "RLSA-2021:3891")
    rocky = affected(store, "RLSA-2021:3891")[0]
    assert (rocky.ecosystem, rocky.package, _fixed(rocky)) == ("Rocky Linux:8", "java-11-openjdk", "1:11.0.13.0.8-1.el8_4")
    # UBUNTU-CVE records name their CVE in "upstream"; their "related" USNs are not CVEs.
    assert links(store, "UBUNTU-CVE-2021-3782") == {"CVE-2021-3782"}
    assert vuln(store, "CVE-2021-3782").cvss_v3_score == 6.6
    assert advisory(store, "UBUNTU-CVE-2013-2208").withdrawn
    assert links(store, "GO-2023-1989") == {"CVE-2023-29408"}
    assert links(store, "DSA-3029-1") == {"CVE-2014-3616"}
    assert [(r.ecosystem, r.package) for r in affected(store, "DSA-3029-1")] == [("Debian:7", "nginx")]
    assert links(store, "CGA-224q-ccj5-2p53") == {"CVE-2025-32464"}
    assert vuln(store, "CVE-2020-8927").cvss_v3_score == 5.3  # Bitnami, per-package severity


def test_malformed_record_names_file_and_field_and_others_still_import(store, data, tmp_path) -> None:
    tmp_path = tmp_path / "feed"
    tmp_path.mkdir()
    good = data / "osv" / "ubuntu-focal" / "USN-4705-1.json"
    shutil.copy(good, tmp_path / "USN-4705-1.json")
    bad = json.loads((data / "osv" / "ubuntu-focal" / "USN-4359-1.json").read_text())
    del bad["affected"][1]["package"]["ecosystem"]
    (tmp_path / "USN-4359-1.json").write_text(json.dumps(bad))
    (tmp_path / "broken.json").write_text('{"id": "X-1", "modified": ')
    result = import_paths(store, tmp_path)
    assert advisory(store, "USN-4705-1") is not None
    assert advisory(store, "USN-4359-1") is None
    assert any("USN-4359-1.json" in e and "affected[1].package.ecosystem" in e for e in result.errors), result.errors
    assert any("broken.json" in e and "not valid JSON" in e for e in result.errors), result.errors
    assert result.error_count == 2


def test_yaml_is_loaded_safely(store, tmp_path) -> None:
    tmp_path = tmp_path / "feed"
    tmp_path.mkdir()
    marker = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(
        "id: PYSEC-0000-1\nmodified: '2024-01-01T00:00:00Z'\n"
        f"details: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    result = import_paths(store, tmp_path)
    assert not marker.exists()
    assert result.records == 0 and "evil.yaml" in result.errors[0]


def test_format_is_detected_from_content_not_name(store, data, tmp_path) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    shutil.copy(data / "osv" / "ubuntu-focal" / "USN-4705-1.json", feed / "notes.txt")
    (feed / "readme.json").write_text('{"hello": "world"}')
    result = import_paths(store, feed)
    assert advisory(store, "USN-4705-1") is not None
    assert result.skipped == [str(Path(feed) / "readme.json")]
    assert result.errors == []
