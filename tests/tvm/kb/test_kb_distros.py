import datetime as dt

from garrison.tvm.kb import import_paths
from tests.tvm.kb.kbutil import advisory, affected, links, vuln


def _rows(store, aid):
    return {(r.ecosystem, r.package): r for r in affected(store, aid)}


def _fixed(row):
    return next((ev["fixed"] for rng in row.ranges for ev in rng["events"] if "fixed" in ev), None)


def test_debian_tracker_json_per_release_verdicts(store, data) -> None:
    result = import_paths(store, data / "debian-tracker" / "debian.json")
    assert result.errors == [] and result.records == 7
    chromium = _rows(store, "DEBIAN-CVE-2022-0456")
    assert links(store, "DEBIAN-CVE-2022-0456") == {"CVE-2022-0456"}
    bullseye = chromium[("Debian:11", "chromium")]
    assert bullseye.status == "affected" and _fixed(bullseye) == "98.0.4758.80-1~deb11u1"
    assert chromium[("Debian:10", "chromium")].status == "end_of_life"
    assert _fixed(chromium[("Debian:10", "chromium")]) is None
    assert _fixed(chromium[("Debian:unstable", "chromium")]) == "98.0.4758.80-1"  # sid
    # fixed_version "0": never affected, whatever the urgency ("unimportant") says.
    proto = _rows(store, "DEBIAN-CVE-2007-2383")
    assert {r.status for r in proto.values()} == {"not_affected"}
    assert all(r.ranges == [] for r in proto.values())
    txt2man = _rows(store, "DEBIAN-CVE-2013-1444")[("Debian:10", "txt2man")]
    assert txt2man.severity == "low"  # urgency "low**" without the NVD-derived marker
    assert vuln(store, "CVE-2025-53603").description.startswith("In Alinto SOPE SOGo")
    # A CVE listed with no releases yields an advisory without packages.
    assert affected(store, "DEBIAN-CVE-2022-0358") == []


def test_debian_dsa_and_dla_lists(store, data) -> None:
    result = import_paths(store, data / "debian-tracker")
    assert result.errors == []
    assert result.by_importer["debian-advisories"] == 69
    dsa = advisory(store, "DSA-4839-1")
    assert dsa.source == "debian-advisories" and dsa.summary == "sudo - security update"
    assert dsa.published == dt.datetime(2021, 1, 26, tzinfo=dt.UTC)
    assert links(store, "DSA-4839-1") == {"CVE-2021-3156"}
    row = _rows(store, "DSA-4839-1")[("Debian:10", "sudo")]
    assert _fixed(row) == "1.8.27-1+deb10u3" and row.status == "affected"
    dla = _rows(store, "DLA-2534-1")[("Debian:9", "sudo")]
    assert _fixed(dla) == "1.8.19p1-2.1+deb9u3"
    assert vuln(store, "CVE-2021-3156").sources == ["DLA-2534-1", "DSA-4839-1"]
    ooo = _rows(store, "DSA-2275-1")
    assert ooo[("Debian:5", "openoffice.org")].status == "not_affected"
    assert _fixed(ooo[("Debian:6", "openoffice.org")]) == "1:3.2.1-11+squeeze3"
    eol = _rows(store, "DSA-3699-1")[("Debian:8", "virtualbox")]
    assert eol.status == "end_of_life" and _fixed(eol) is None
    # An advisory naming no CVE (a regression update) is its own vulnerability.
    assert links(store, "DSA-3699-1") == {"DSA-3699-1"}


def test_alpine_secdb(store, data) -> None:
    result = import_paths(store, data / "alpine-secdb")
    assert result.errors == []
    zlib = affected(store, "ALPINE-v3.15-zlib-1.2.12-r0")
    assert [(r.ecosystem, r.package, _fixed(r), r.status) for r in zlib] == [
        ("Alpine:v3.15", "zlib", "1.2.12-r0", "affected")]
    assert links(store, "ALPINE-v3.15-zlib-1.2.12-r0") == {"CVE-2018-25032"}
    # Fixed version "0": the package in that release was never affected.
    db = affected(store, "ALPINE-v3.8-db-0")
    assert [(r.status, r.ranges) for r in db] == [("not_affected", [])]
    assert "CVE-2016-0682" in links(store, "ALPINE-v3.8-db-0")
    # Xen fixes known by XSA id only, and "CVE-… XSA-…" entries that name both.
    xen = {vid for aid in [a for a in _all_ids(store) if a.startswith("ALPINE-v3.8-xen-")] for vid in links(store, aid)}
    assert "CVE-2016-9932" in xen


def _all_ids(store):
    from sqlalchemy import select

    from garrison.store.models.kb import Advisory

    with store.system() as s:
        return list(s.scalars(select(Advisory.id)))


def test_alpine_malformed_entries_are_named(store, tmp_path) -> None:
    (tmp_path / "main.yaml").write_text(
        "distroversion: v3.12\nreponame: main\npackages:\n"
        "  - pkg:\n      name: good\n      secfixes:\n        1.0-r1:\n          - CVE-2020-0001\n"
        "  - pkg:\n      name: heimdal\n      secfixes:\n        7.4.0-r0:\n"
        "  - pkg:\n      secfixes: {}\n"
    )
    result = import_paths(store, tmp_path / "main.yaml")
    assert result.records == 1 and links(store, "ALPINE-v3.12-good-1.0-r1") == {"CVE-2020-0001"}
    # A version with an empty list of ids (heimdal in the real v3.6 secdb) fixes nothing: no record, no error.
    assert not any("heimdal" in e for e in result.errors)
    assert len(result.errors) == 1 and "packages[2].pkg.name" in result.errors[0]
