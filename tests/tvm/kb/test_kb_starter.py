import time

from garrison.tvm.kb import feeds_status, load_starter
from garrison.tvm.kb.starter import starter_dir
from tests.tvm.kb.kbutil import affected, counts, links, vuln


def test_starter_files_are_compact_and_documented() -> None:
    files = list(starter_dir().iterdir())
    assert sum(f.stat().st_size for f in files) < 4 * 1024 * 1024
    assert (starter_dir() / "PROVENANCE.md").read_text().count("CC BY-SA 4.0") >= 1


def test_load_starter_gives_real_findings_offline_and_is_idempotent(store) -> None:
    result = load_starter(store)
    assert result.error_count == 0 and result.errors == []  # every bundled file imports (heimdal: no fix)
    assert links(store, "USN-4705-1") == {"CVE-2021-3156", "CVE-2021-23239"}
    focal = [r for r in affected(store, "USN-4705-1") if r.ecosystem == "Ubuntu:20.04:LTS"]
    assert focal[0].package == "sudo"
    baron = vuln(store, "CVE-2021-3156")
    assert baron.kev and baron.epss == 0.99295 and baron.severity == "High"
    assert sorted(baron.sources) == ["DLA-2534-1", "DSA-4839-1", "USN-4705-1"]
    assert affected(store, "ALPINE-v3.11-openssl-1.1.1d-r3")  # Alpine secdb
    assert affected(store, "DEBIAN-CVE-2022-0456")  # Debian tracker sample
    assert vuln(store, "CVE-2021-21236").sources == ["PYSEC-2021-5"]  # PyPA
    status = feeds_status(store)
    assert [f["name"] for f in status if f.get("error")] == []
    names = {f["name"] for f in status}
    assert {"osv", "kev", "epss", "alpine-secdb", "debian-tracker", "debian-advisories", "starter"} <= names

    before = counts(store)
    start = time.monotonic()
    again = load_starter(store)
    assert time.monotonic() - start < 1.0
    assert again.records == 0 and again.changed_vulnerabilities == set()
    forced = load_starter(store, force=True)
    assert forced.changed_vulnerabilities == set() and forced.changed_packages == set()
    assert counts(store) == before



def test_every_bundled_file_parses_without_error() -> None:
    """Each starter file through the importer that recognises it: real feed data must import (no store
    needed: the parse step is where a record is accepted or refused)."""
    import gzip

    from garrison.tvm.kb.records import RecordError
    from garrison.tvm.kb.registry import detect

    files = sorted(p for p in starter_dir().iterdir() if p.suffix == ".gz")
    assert len(files) >= 27
    for path in files:
        data = gzip.decompress(path.read_bytes())
        importer = detect(data)
        assert importer is not None, path.name
        errors = [r.message for r in importer.parse(data, path.name) if isinstance(r, RecordError)]
        assert errors == [], (path.name, errors[:3])
