"""Alpine (secdb, by origin package, apk order, exact release) and PyPI (PYSEC records) on real data."""

from __future__ import annotations

from garrison.tvm import inventory
from garrison.tvm.kb import import_paths
from tests.tvm.matching.conftest import INVENTORIES, PYPA, SECDB, Fleet, findings

V315 = [SECDB / "v3.15" / "main.yaml", SECDB / "v3.15" / "community.yaml"]
V311 = [SECDB / "v3.11" / "main.yaml", SECDB / "v3.11" / "community.yaml"]


def _alpine(fleet: Fleet, name: str, release: str) -> dict:
    os_ident = inventory.read_os_release((INVENTORIES / f"{release}.os-release").read_bytes())
    data = (INVENTORIES / f"{release}.apk-installed").read_bytes()
    return inventory.import_agentless(fleet.store, fleet.tenant_id, name, data, os_ident=os_ident)


def test_alpine_315_by_origin_package(fleet: Fleet) -> None:
    result = import_paths(fleet.store, V315 + V311)
    assert result.errors == [] and result.by_importer["alpine-secdb"] > 0
    out = _alpine(fleet, "alpine-315", "alpine-3.15-test")
    assert out["ecosystem"] == "Alpine:v3.15"
    got = {(f.package, f.vulnerability_id, f.fixed_version) for f in findings(fleet, out["machineId"])}
    assert got == {
        ("zlib", "CVE-2018-25032", "1.2.12-r0"),
        ("zlib", "CVE-2022-37434", "1.2.12-r2"),
        ("xz-libs", "CVE-2022-1271", "5.2.5-r1"),  # a subpackage, matched through its origin "xz"
    }
    # zstd-libs 1.5.0-r0 is past every zstd fix; zsh 5.8.1-r0 is exactly the last fix; musl has no entry.


def test_alpine_release_is_matched_exactly(fleet: Fleet) -> None:
    # The real Alpine 3.14.0 rootfs: no 3.14 secdb exists, and 3.11/3.15 fixes must not leak onto it
    # (zlib 1.2.11-r3 is "vulnerable" under both of those releases' records).
    import_paths(fleet.store, V315 + V311)
    out = _alpine(fleet, "alpine-314", "alpine-3.14.0")
    assert out["ecosystem"] == "Alpine:v3.14"
    assert out["packages"] == 26
    assert findings(fleet, out["machineId"]) == []


def test_pypi_packages_against_pysec(fleet: Fleet) -> None:
    result = import_paths(fleet.store, [PYPA])
    assert result.errors == []
    data = (INVENTORIES / "python-app.cdx.json").read_bytes()
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "python-app", data)
    got = {(f.package, f.vulnerability_id, f.fixed_version, tuple(f.advisory_ids))
           for f in findings(fleet, out["machineId"])}
    assert got == {
        # PyYAML 5.3.1: PYSEC-2020-96 was fixed in exactly 5.3.1; PYSEC-2021-142 is open until 5.4.
        ("pyyaml", "CVE-2020-14343", "5.4", ("PYSEC-2021-142",)),
        ("jinja2", "CVE-2019-10906", "2.10.1", ("PYSEC-2019-217",)),
        ("jinja2", "CVE-2020-28493", "2.11.3", ("PYSEC-2021-66",)),
        ("urllib3", "CVE-2020-26137", "1.25.9", ("PYSEC-2020-148",)),
        ("urllib3", "CVE-2021-33503", "1.26.5", ("PYSEC-2021-108",)),
        ("urllib3", "CVE-2023-43804", "1.26.17", ("PYSEC-2023-192",)),  # events out of order in the record
        ("urllib3", "CVE-2023-45803", "1.26.18", ("PYSEC-2023-212",)),
        ("requests", "CVE-2023-32681", "2.31.0", ("PYSEC-2023-74",)),
        # redis 3.5.3: PYSEC-2023-73 (every version, no fix) is withdrawn and gives nothing.
    }
    assert {f.software_id for f in findings(fleet, out["machineId"])} >= {"python-_-pyyaml", "python-_-urllib3"}
