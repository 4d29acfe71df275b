"""The per-group summaries that the org-wide lists read stay equal to a brute-force recount through
every kind of change: snapshots, deltas, runtime reports, device-group moves, feed updates."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from sqlalchemy import distinct, func, select

from garrison.core import access
from garrison.protocol import InventoryReport, PackageUse, RuntimeReport
from garrison.store.models.core import Device
from garrison.store.models.tvm import (
    DevicePackage,
    GroupPackageCount,
    GroupSoftwareCount,
    GroupVulnerabilityCount,
    PackageVersion,
    PackageVersionVuln,
)
from garrison.tvm import findings, inventory, matching
from garrison.tvm.findings import IN_USE_WINDOW
from garrison.tvm.kb import import_bytes, import_paths
from tests.tvm.matching.conftest import FOCAL, INVENTORIES, Fleet


def _stored(fleet: Fleet) -> dict[str, Counter[Any]]:
    with fleet.store.tenant(fleet.tenant_id) as s:
        pv = Counter({(r.group_id, r.package_version_id): (r.devices, r.in_use)
                      for r in s.scalars(select(GroupPackageCount)) if r.devices})
        sw = Counter({(r.group_id, r.software_id): (r.installed, r.exposed, r.in_use)
                      for r in s.scalars(select(GroupSoftwareCount)) if r.installed})
        vu = Counter({(r.group_id, r.vulnerability_id): r.exposed
                      for r in s.scalars(select(GroupVulnerabilityCount)) if r.exposed})
    return {"packages": pv, "software": sw, "vulnerabilities": vu}


def _recount(fleet: Fleet) -> dict[str, Counter[Any]]:
    """The same figures, counted the slow and obvious way."""
    cutoff = dt.datetime.now(dt.UTC) - IN_USE_WINDOW
    with fleet.store.tenant(fleet.tenant_id) as s:
        rows = s.execute(select(func.coalesce(Device.group_id, 0), DevicePackage.device_id,
                                DevicePackage.package_version_id, PackageVersion.software_id, DevicePackage.last_used)
                         .join(Device, Device.id == DevicePackage.device_id)
                         .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)).all()
        vulns: dict[int, set[str]] = {}
        for pv, vid in s.execute(select(PackageVersionVuln.package_version_id, PackageVersionVuln.vulnerability_id)):
            vulns.setdefault(pv, set()).add(vid)
    pv: Counter[Any] = Counter()
    per_sw: dict[tuple[int, str], dict[str, list[bool]]] = {}
    per_v: dict[tuple[int, str], set[str]] = {}
    for g, device, pvid, sw, last_used in rows:
        used = last_used is not None and last_used >= cutoff
        d, u = pv.get((g, pvid), (0, 0))
        pv[(g, pvid)] = (d + 1, u + used)
        st = per_sw.setdefault((g, sw), {}).setdefault(device, [False, False])
        st[0] = st[0] or pvid in vulns
        st[1] = st[1] or used
        for v in vulns.get(pvid, ()):
            per_v.setdefault((g, v), set()).add(device)
    sw_counts = Counter({k: (len(devs), sum(e for e, _ in devs.values()), sum(u for _, u in devs.values()))
                         for k, devs in per_sw.items()})
    return {"packages": pv, "software": sw_counts, "vulnerabilities": Counter({k: len(v) for k, v in per_v.items()})}


def _check(fleet: Fleet) -> None:
    stored, truth = _stored(fleet), _recount(fleet)
    for kind in truth:
        assert stored[kind] == truth[kind], kind


def _import(fleet: Fleet, name: str, data: bytes | None = None) -> str:
    os_ident = inventory.read_os_release((INVENTORIES / "ubuntu-20.04-ga.os-release").read_bytes())
    data = data or (INVENTORIES / "ubuntu-20.04-ga.dpkg-status").read_bytes()
    return inventory.import_agentless(fleet.store, fleet.tenant_id, name, data, os_ident=os_ident)["machineId"]


def test_summaries_follow_every_change(fleet: Fleet) -> None:
    result = import_paths(fleet.store, [FOCAL])
    matching.rematch_changed(fleet.store, result.changed_packages)
    web = _import(fleet, "web-1")
    db = _import(fleet, "db-1")
    _check(fleet)
    assert _stored(fleet)["vulnerabilities"][(_group(fleet, web), "CVE-2021-3156")] == 2

    # A delta: sudo updated on one device, tar removed, a new package version arrives.
    with fleet.store.tenant(fleet.tenant_id) as s:
        device = s.get(Device, web)
        pkgs = {p.name: p for p in inventory.parse_agentless(
            (INVENTORIES / "ubuntu-20.04-ga.dpkg-status").read_bytes(), inventory.parse_os_arg("ubuntu:20.04"))[0]}
        report = InventoryReport(mode="delta", generation=2, base_generation=1, os=inventory.parse_os_arg("ubuntu:20.04"),
                                 added=[pkgs["sudo"].model_copy(update={"version": "1.8.31-1ubuntu1.2",
                                                                       "source_version": "1.8.31-1ubuntu1.2"})],
                                 removed=[pkgs["sudo"], pkgs["tar"]])
        assert "inventory" in inventory.apply_inventory(s, device, report)
    _check(fleet)

    # Runtime: two packages in use on db-1.
    with fleet.store.tenant(fleet.tenant_id) as s:
        device = s.get(Device, db)
        now = dt.datetime.now(dt.UTC)
        inventory.apply_runtime(s, device, RuntimeReport(packages=[
            PackageUse(manager="dpkg", name="sudo", last_seen=now), PackageUse(manager="dpkg", name="bash", last_seen=now)]))
    _check(fleet)

    # db-1 moves to a new device group (a rule matching its name): counted under the new group
    # by its next inventory, or by the job.
    with fleet.store.tenant(fleet.tenant_id) as s:
        access.create_group(s, "databases", 10, {"name": "db-*"})
    assert findings.rebook_moved_devices(fleet.store, fleet.tenant_id) == 1
    _check(fleet)

    # A feed update: the sudo USN withdrawn, a new advisory for bash.
    record = json.loads((FOCAL / "USN-4705-1.json").read_text())
    record.update(withdrawn="2026-05-01T00:00:00Z", modified="2026-05-01T00:00:00Z")
    new = {"id": "UBUNTU-CVE-2099-0001", "modified": "2026-05-01T00:00:00Z",
           "affected": [{"package": {"ecosystem": "Ubuntu:20.04:LTS", "name": "bash"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}
    update = import_bytes(fleet.store, json.dumps([record, new]).encode(), "update.json")
    matching.rematch_changed(fleet.store, update.changed_packages)
    _check(fleet)
    assert _stored(fleet)["vulnerabilities"][(0, "CVE-2021-3156")] == 0

    # A full rebuild gives the same figures as the incremental bookkeeping.
    before = _stored(fleet)
    findings.rebuild_summaries(fleet.store, fleet.tenant_id)
    assert _stored(fleet) == before

    # And a re-import of the unchanged host changes nothing.
    _import(fleet, "web-1")
    _import(fleet, "web-1", (INVENTORIES / "ubuntu-20.04-ga.dpkg-status").read_bytes())
    _check(fleet)


def _group(fleet: Fleet, device_id: str) -> int:
    with fleet.store.tenant(fleet.tenant_id) as s:
        return s.get(Device, device_id).group_id or 0


def test_exposure_counts_devices_not_packages(fleet: Fleet) -> None:
    # glibc's CVEs are on three binaries of the host (libc6, libc-bin, locales): one device.
    import_paths(fleet.store, [FOCAL])
    device = _import(fleet, "web-1")
    g = _group(fleet, device)
    stored = _stored(fleet)
    assert stored["vulnerabilities"][(g, "CVE-2021-3326")] == 1
    with fleet.store.tenant(fleet.tenant_id) as s:
        n = s.scalar(select(func.count(distinct(PackageVersion.name)))
                     .join(PackageVersionVuln, PackageVersionVuln.package_version_id == PackageVersion.id)
                     .where(PackageVersionVuln.vulnerability_id == "CVE-2021-3326"))
    assert n == 3
