"""Debian testing/sid hosts are matched against the tracker's sid data, not the stable release."""

from __future__ import annotations

from pathlib import Path

from garrison.tvm import inventory
from garrison.tvm.kb import import_paths
from tests.tvm.matching.conftest import DATA, Fleet, findings

INVENTORIES = Path(__file__).resolve().parents[2] / "data" / "inventories"
TRACKER = DATA / "debian-tracker" / "debian.json"

# The real sid image, plus one package of the tracker sample in the same stanza format. The tracker
# says CVE-2025-53603 in sope is fixed in 5.8.0-1+deb12u1 for bookworm but only in 5.12.1-2 for sid.
SOPE = b"""
Package: sope4.9-libxmlsaxdriver
Status: install ok installed
Architecture: riscv64
Source: sope
Version: 5.10.0-2
Description: SOPE libxmlsaxdriver
"""


def _sid_with_sope() -> bytes:
    status = (INVENTORIES / "debian-sid-riscv64.dpkg-status").read_bytes()
    return status.rstrip(b"\n") + b"\n" + SOPE


def test_sid_host_gets_sid_fixes(fleet: Fleet) -> None:
    assert import_paths(fleet.store, [TRACKER]).errors == []
    os_ident = inventory.read_os_release((INVENTORIES / "debian-sid-riscv64.os-release").read_bytes())
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "sid", _sid_with_sope(), os_ident=os_ident)
    assert out["ecosystem"] == "Debian:unstable"
    got = {(f.package, f.vulnerability_id, f.fixed_version) for f in findings(fleet, out["machineId"])}
    # 5.10.0-2 is above bookworm's fix, so matching it as bookworm would have reported nothing.
    assert got == {("sope4.9-libxmlsaxdriver", "CVE-2025-53603", "5.12.1-2")}


def test_same_package_on_bookworm_is_fixed(fleet: Fleet) -> None:
    import_paths(fleet.store, [TRACKER])
    os_ident = inventory.read_os_release(b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    out = inventory.import_agentless(fleet.store, fleet.tenant_id, "bookworm", _sid_with_sope(), os_ident=os_ident)
    assert out["ecosystem"] == "Debian:12"
    assert findings(fleet, out["machineId"]) == []
