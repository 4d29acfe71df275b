"""Software inventory of devices: snapshots and deltas from agents, files from agentless import.

Both paths end in :func:`apply_inventory`, in one transaction: the device's package set is
replaced (snapshot) or patched (delta), software history and resolved findings are written from
the difference, and package versions never seen before are matched at once.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, true, update
from sqlalchemy.orm import Session

from garrison.core import access, audit
from garrison.core.errors import Conflict, Forbidden, Invalid
from garrison.inventory import InventoryParseError, ecosystem_for, parse_inventory, parse_os_release
from garrison.inventory.common import MAX_INPUT_BYTES
from garrison.protocol import InventoryReport, OsIdentity, RuntimeReport, SoftwarePackage
from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.tvm import (
    DeviceInventoryState,
    DevicePackage,
    PackageVersion,
    PackageVersionVuln,
    ResolvedFinding,
    SoftwareHistory,
    SoftwareProduct,
)
from garrison.tvm import findings, matching
from garrison.tvm.software import DISTRO_MANAGERS, PackageIdentity, identity_of

CHUNK = 500
MAX_PATH = 1024
MAX_PURL = 4096
FUTURE_SKEW = dt.timedelta(minutes=10)  # runtime timestamps further ahead than this are clamped

PV = PackageVersion.__table__
SP = SoftwareProduct.__table__
PVV = PackageVersionVuln.__table__


@dataclass
class InventoryResult:
    device_id: str
    generation: int
    packages: int
    added: int
    removed: int
    new_package_versions: int
    findings_matched: int

    def as_dict(self) -> dict[str, Any]:
        return {"deviceId": self.device_id, "generation": self.generation, "packages": self.packages,
                "added": self.added, "removed": self.removed, "newPackageVersions": self.new_package_versions,
                "findingsMatched": self.findings_matched}


# --- global package versions ---------------------------------------------------------------

def _dialect_insert(s: Session, table: Any) -> Any:
    name = s.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    return insert(table)


def ensure_package_versions(s: Session, idents: dict[str, tuple[PackageIdentity, str]]) -> tuple[dict[str, int], int]:
    """Ids of these package versions (by key), creating the missing rows; returns (ids, created).

    Rows are global: concurrent uploads may insert the same key, so inserts ignore conflicts and
    the ids are read back.
    """
    keys = sorted(idents)
    ids: dict[str, int] = {}
    for i in range(0, len(keys), CHUNK):
        ids.update(s.execute(select(PV.c.key, PV.c.id).where(PV.c.key.in_(keys[i : i + CHUNK]))).all())
    missing = [k for k in keys if k not in ids]
    if not missing:
        return ids, 0
    now = utcnow()
    products = {idents[k][0].software_id: idents[k][0] for k in missing}
    s.execute(_dialect_insert(s, SP), [{"id": sid, "vendor": ident.vendor, "name": ident.software_name,
                                        "created_at": now} for sid, ident in products.items()])
    rows = []
    for k in missing:
        ident, purl = idents[k]
        rows.append({"key": k, "ecosystem": ident.ecosystem, "manager": ident.manager, "name": ident.name,
                     "version": ident.version, "source_name": ident.source_name,
                     "source_version": ident.source_version, "arch": ident.arch, "match_name": ident.match_name,
                     "software_id": ident.software_id, "purl": purl[:MAX_PURL], "created_at": now,
                     "matched_at": None})
    stmt = _dialect_insert(s, PV)
    for i in range(0, len(rows), CHUNK):
        s.execute(stmt, rows[i : i + CHUNK])
    for i in range(0, len(missing), CHUNK):
        ids.update(s.execute(select(PV.c.key, PV.c.id).where(PV.c.key.in_(missing[i : i + CHUNK]))).all())
    return ids, len(missing)


def _identities(pkgs: list[SoftwarePackage], distro_eco: str) -> tuple[dict[str, tuple[PackageIdentity, str]], dict[str, str]]:
    """(key -> (identity, purl), key -> evidence path); a package listed twice counts once."""
    idents: dict[str, tuple[PackageIdentity, str]] = {}
    paths: dict[str, str] = {}
    for p in pkgs:
        ident = identity_of(p, distro_eco)
        k = ident.key
        if k not in idents:
            idents[k] = (ident, p.purl)
            paths[k] = p.path[:MAX_PATH]
    return idents, paths


# --- applying an inventory -----------------------------------------------------------------

def apply_inventory(s: Session, device: Device, report: InventoryReport, *, source: str = "agent",
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """Store an inventory report for ``device`` (tenant session). A delta whose base generation is
    not the stored one changes nothing and asks the agent for a snapshot (``{"resync": [...]}``).
    ``now``: when the report was taken (a replayed history), else the clock."""
    now = now or utcnow()
    state = s.get(DeviceInventoryState, device.id)
    os_ident = report.os if (report.os.id or report.os.name) else None
    distro_eco = ecosystem_for(os_ident) if os_ident else (state.ecosystem if state else "")

    if report.mode == "delta":
        if state is None or report.base_generation is None or state.generation != report.base_generation:
            return {"resync": ["inventory"]}
        gone_idents, _ = _identities(report.removed, distro_eco)
        gone: dict[int, str] = {}  # pv id -> software id
        keys = sorted(gone_idents)
        for i in range(0, len(keys), CHUNK):
            gone.update(s.execute(select(PV.c.id, PV.c.software_id).where(PV.c.key.in_(keys[i : i + CHUNK]))).all())
        idents, paths = _identities(report.added, distro_eco)
        ids, created = ensure_package_versions(s, idents)
        # A delta only needs the device's packages of the software it touches, not all of them.
        touched = set(gone.values()) | {idents[k][0].software_id for k in ids}
        current = _device_packages(s, device.id, touched)
        old_ids = set(current)
        new_ids = (old_ids - set(gone)) | set(ids.values())
    else:
        idents, paths = _identities(report.packages, distro_eco)
        ids, created = ensure_package_versions(s, idents)
        current = _device_packages(s, device.id)
        old_ids = set(current)
        new_ids = set(ids.values())

    removed = old_ids - new_ids
    added = new_ids - old_ids
    path_of = {ids[k]: paths[k] for k in ids}
    group = _counted_group(s, device, state)
    # Package versions never seen before are matched first, so that their findings are counted.
    stats = matching.match_pending(s, sorted(added)) if added else matching.MatchStats()
    if added or removed:
        delta = report.mode == "delta"
        info = _pv_info(s, added)
        touched_sw = {current[pv][0] for pv in removed} | {info[pv][0] for pv in added} if delta else None
        touched_v = _vulns_of(s, removed | added) if delta else None
        before = findings.contribution(s, device.id, touched_sw, touched_v, now)
        if state is not None:  # the first inventory is the baseline, not a stream of installs
            _write_history(s, device, current, info, removed, added, now)
        _resolve(s, device, current, info, removed, new_ids, now)
        _delete_packages(s, device.id, removed)
        rows = [{"tenant_id": device.tenant_id, "device_id": device.id, "package_version_id": pv_id,
                 "path": path_of.get(pv_id, ""), "first_seen": now, "last_used": None} for pv_id in sorted(added)]
        # Core executemany: the ORM's bulk insert path cost ~3x as much for a full snapshot. The rows
        # carry the device's tenant, so the session's tenant stamping is not needed.
        for i in range(0, len(rows), CHUNK):
            s.execute(insert(DevicePackage.__table__), rows[i : i + CHUNK])
        after = findings.contribution(s, device.id, touched_sw, touched_v, now)
        findings.book(s, device.tenant_id, group, before, after)

    if state is None:
        state = DeviceInventoryState(device_id=device.id, tenant_id=device.tenant_id, counted_group=group)
        s.add(state)
    state.generation = report.generation
    if os_ident is not None:
        state.os_id, state.os_version_id, state.os_codename = os_ident.id, os_ident.version_id, os_ident.codename
        state.ecosystem = distro_eco
    count = len(new_ids) if report.mode == "snapshot" else state.package_count + len(added) - len(removed)
    state.package_count = count
    state.source = source
    state.updated_at = now
    result = InventoryResult(device.id, report.generation, count, len(added), len(removed), created, stats.findings)
    return {"inventory": result.as_dict()}


def _device_packages(s: Session, device_id: str, software_ids: set[str] | None = None,
                     ) -> dict[int, tuple[str, str, dt.datetime]]:
    """pv id -> (software id, version, first seen) of the device (only of ``software_ids`` if given)."""
    stmt = (select(DevicePackage.package_version_id, PackageVersion.software_id, PackageVersion.version,
                   DevicePackage.first_seen)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .where(DevicePackage.device_id == device_id))
    if software_ids is None:
        return {pv: (sw, ver, first) for pv, sw, ver, first in s.execute(stmt)}
    out: dict[int, tuple[str, str, dt.datetime]] = {}
    sw_list = sorted(software_ids)
    for i in range(0, len(sw_list), CHUNK):
        for pv, sw, ver, first in s.execute(stmt.where(PackageVersion.software_id.in_(sw_list[i : i + CHUNK]))):
            out[pv] = (sw, ver, first)
    return out


def _vulns_of(s: Session, ids: set[int]) -> set[str]:
    out: set[str] = set()
    id_list = sorted(ids)
    for i in range(0, len(id_list), CHUNK):
        out.update(s.execute(select(PVV.c.vulnerability_id).where(PVV.c.package_version_id.in_(id_list[i : i + CHUNK])))
                   .scalars())
    return out


def _pv_info(s: Session, ids: set[int]) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    id_list = sorted(ids)
    for i in range(0, len(id_list), CHUNK):
        for pv, sw, ver in s.execute(select(PV.c.id, PV.c.software_id, PV.c.version)
                                     .where(PV.c.id.in_(id_list[i : i + CHUNK]))):
            out[pv] = (sw, ver)
    return out


def _write_history(s: Session, device: Device, current: dict[int, tuple[str, str, dt.datetime]],
                   info: dict[int, tuple[str, str]], removed: set[int], added: set[int], now: dt.datetime) -> None:
    old: dict[str, list[str]] = defaultdict(list)
    new: dict[str, list[str]] = defaultdict(list)
    for pv in removed:
        old[current[pv][0]].append(current[pv][1])
    for pv in added:
        new[info[pv][0]].append(info[pv][1])
    rows: list[dict[str, Any]] = []
    for sw in sorted(set(old) | set(new)):
        olds, news = sorted(old.get(sw, [])), sorted(new.get(sw, []))
        for o, n in zip(olds, news):
            if o != n:  # same version, other arch or path: not an update worth a timeline entry
                rows.append(_history(device, sw, o, n, "updated", now))
        rows.extend(_history(device, sw, None, n, "installed", now) for n in news[len(olds):])
        rows.extend(_history(device, sw, o, None, "uninstalled", now) for o in olds[len(news):])
    for i in range(0, len(rows), CHUNK):
        s.execute(insert(SoftwareHistory), rows[i : i + CHUNK])


def _history(device: Device, sw: str, old: str | None, new: str | None, event: str, at: dt.datetime) -> dict[str, Any]:
    return {"tenant_id": device.tenant_id, "device_id": device.id, "software_id": sw, "old_version": old,
            "new_version": new, "event": event, "at": at}


def _resolve(s: Session, device: Device, current: dict[int, tuple[str, str, dt.datetime]],
             added: dict[int, tuple[str, str]], removed: set[int], remaining: set[int], now: dt.datetime) -> None:
    """A vulnerable package version that leaves the device resolves its findings."""
    if not removed:
        return
    still_there = {current[pv][0] if pv in current else added[pv][0] for pv in remaining}
    id_list = sorted(removed)
    rows: list[dict[str, Any]] = []
    for i in range(0, len(id_list), CHUNK):
        for r in s.execute(select(PVV.c.package_version_id, PVV.c.vulnerability_id, PVV.c.fixed_version,
                                  PVV.c.first_seen).where(PVV.c.package_version_id.in_(id_list[i : i + CHUNK]))):
            sw, version, dp_first = current[r.package_version_id]
            rows.append({"tenant_id": device.tenant_id, "device_id": device.id,
                         "vulnerability_id": r.vulnerability_id, "package_version_id": r.package_version_id,
                         "software_id": sw, "version": version, "fixed_version": r.fixed_version,
                         "first_seen": max(dp_first, r.first_seen), "resolved_at": now,
                         "reason": "updated" if sw in still_there else "uninstalled"})
    for i in range(0, len(rows), CHUNK):
        s.execute(insert(ResolvedFinding), rows[i : i + CHUNK])


def _delete_packages(s: Session, device_id: str, ids: set[int]) -> None:
    id_list = sorted(ids)
    for i in range(0, len(id_list), CHUNK):
        s.execute(delete(DevicePackage).where(DevicePackage.device_id == device_id,
                                              DevicePackage.package_version_id.in_(id_list[i : i + CHUNK])))


# --- runtime context -----------------------------------------------------------------------

def apply_runtime(s: Session, device: Device, report: RuntimeReport) -> dict[str, Any]:
    """Record when each package last had running code (the newest time wins; future times clamped)."""
    now = utcnow()
    seen: dict[tuple[str, str], dt.datetime] = {}
    for use in report.packages:
        at = use.last_seen if use.last_seen.tzinfo else use.last_seen.replace(tzinfo=dt.UTC)
        at = min(at, now + FUTURE_SKEW)
        key = (use.manager, use.name)
        if key not in seen or at > seen[key]:
            seen[key] = at
    if not seen:
        return {"runtime": {"updated": 0}}
    rows = s.execute(select(DevicePackage.package_version_id, PackageVersion.manager, PackageVersion.name,
                            DevicePackage.last_used)
                     .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
                     .where(DevicePackage.device_id == device.id)).all()
    updates: list[tuple[int, dt.datetime]] = []
    for pv, manager, name, last_used in rows:
        used = seen.get((manager, name))
        if used is None and manager == "python":
            used = seen.get((manager, re.sub(r"[-_.]+", "-", name).lower()))
        if used is not None and (last_used is None or used > last_used):
            updates.append((pv, used))
    if not updates:
        return {"runtime": {"updated": 0}}
    info = _pv_info(s, {pv for pv, _ in updates})
    software = {sw for sw, _version in info.values()}
    group = _counted_group(s, device, s.get(DeviceInventoryState, device.id))
    before = findings.contribution(s, device.id, software, set(), now)
    for pv, at in updates:
        s.execute(update(DevicePackage).where(DevicePackage.device_id == device.id,
                                              DevicePackage.package_version_id == pv).values(last_used=at))
    after = findings.contribution(s, device.id, software, set(), now)
    findings.book(s, device.tenant_id, group, before, after)
    return {"runtime": {"updated": len(updates)}}


def _counted_group(s: Session, device: Device, state: DeviceInventoryState | None) -> int:
    """The device's group for the summaries; a device that changed group since it was last counted
    first moves its whole contribution to the new group."""
    group = findings.group_key(device)
    if state is not None and state.counted_group != group:
        findings.move_device(s, device, state.counted_group)
        state.counted_group = group
    return group


# --- agentless import ------------------------------------------------------------------------

_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_OS_ARG = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63}):([0-9A-Za-z][0-9A-Za-z._-]{0,63})$")


def parse_os_arg(text: str) -> OsIdentity:
    """``ubuntu:20.04`` -> the OS identity an os-release with ID=ubuntu, VERSION_ID=20.04 would give."""
    m = _OS_ARG.match(text.strip().lower())
    if not m:
        raise Invalid(f"invalid OS {text[:80]!r}: use ID:VERSION as in os-release, e.g. ubuntu:20.04 or alpine:3.14")
    return OsIdentity(id=m.group(1), version_id=m.group(2))


def read_os_release(data: bytes) -> OsIdentity:
    try:
        return parse_os_release(data)
    except InventoryParseError as exc:
        raise Invalid(f"os-release: {exc}") from None


def decompress(data: bytes) -> bytes:
    """Inventory files may come gzip-compressed (detected by magic); decompression is bounded."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(data, MAX_INPUT_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise Invalid(f"bad gzip data: {exc}") from None
    if len(out) > MAX_INPUT_BYTES or d.unconsumed_tail:
        raise Invalid(f"inventory larger than {MAX_INPUT_BYTES} bytes once decompressed")
    return out


def parse_agentless(data: bytes, os_ident: OsIdentity | None, fmt: str | None = None,
                    path: str = "") -> tuple[list[SoftwarePackage], OsIdentity | None]:
    """Parse an uploaded inventory file; errors name the format, line and field."""
    try:
        pkgs, found_os = parse_inventory(decompress(data), os=os_ident, fmt=fmt, path=path)
    except InventoryParseError as exc:
        raise Invalid(f"{path + ': ' if path else ''}{exc}") from None
    if not pkgs:
        raise Invalid(f"{path or 'the file'}: no installed packages found")
    return pkgs, found_os or os_ident


def import_agentless(store: Store, tenant_id: int, device_name: str, data: bytes, *,
                     os_ident: OsIdentity | None = None, fmt: str | None = None, path: str = "",
                     actor: str = "cli", actor_type: str = "cli",
                     group_ids: tuple[int, ...] | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Create or update the agentless device ``device_name`` and store its inventory as a snapshot.

    The file is parsed completely before anything is written; the device and its inventory are
    written in one transaction, so a malformed file stores nothing. ``group_ids`` (a caller limited
    to some device groups) may not overwrite a device of another group. ``now``: when the inventory
    was taken (the demo replays a dated history), else the clock.
    """
    name = device_name.strip().lower()
    if not _DEVICE_NAME.match(name):
        raise Invalid(f"invalid device name {device_name[:80]!r}: use letters, digits, '.', '_' and '-'")
    pkgs, found_os = parse_agentless(data, os_ident, fmt, path)
    warnings: list[str] = []
    if found_os is None:
        warnings.append("no OS identity given (--os-release or --os): distro packages cannot be matched "
                        "against their distro's advisories")
    elif not ecosystem_for(found_os) and any(p.manager in DISTRO_MANAGERS for p in pkgs):
        warnings.append(f"no vulnerability data source is known for {found_os.id} {found_os.version_id}: its distro "
                        "packages are listed but matched against nothing")
    rpms = [p for p in pkgs if p.manager == "rpm"]
    if len(rpms) >= 20 and all(p.source_name == p.name for p in rpms):  # no binary names another source
        warnings.append("plain `rpm -qa` output names no source packages or epochs: advisories that name the "
                        "source rpm are missed; use `rpm -qa --queryformat` (see garrison.inventory.RPM_QUERYFORMAT)")
    with store.tenant(tenant_id) as s:
        device = s.scalar(select(Device).where(Device.agentless == true(), Device.computer_dns_name == name))
        if device is not None and group_ids is not None and device.group_id not in group_ids:
            raise Conflict(f"device name {name!r} belongs to a device outside your device groups")
        created = device is None
        if device is None:
            device = Device(tenant_id=tenant_id, machine_key=None, computer_dns_name=name, agentless=True,
                            onboarding_status="CanBeOnboarded", first_seen=now or utcnow())
            s.add(device)
        now = now or utcnow()
        device.last_seen = now
        if found_os is not None:
            device.os_platform = "Linux"
            device.os_id = found_os.id
            device.os_version = found_os.version_id
            device.os_codename = found_os.codename
            device.os_build = found_os.pretty_name[:128]
        s.flush()
        access.assign_group(s, device)
        if group_ids is not None and device.group_id not in group_ids:
            # The group rules put it (new, or moved by its new OS) where the caller cannot see: refused,
            # and the transaction with it, so nothing is created in a group the caller does not hold.
            raise Forbidden(f"device {name!r} would be in a device group outside yours")
        state = s.get(DeviceInventoryState, device.id)
        generation = (state.generation if state else 0) + 1
        report = InventoryReport(mode="snapshot", generation=generation, os=found_os or OsIdentity(),
                                 packages=pkgs)
        reply = apply_inventory(s, device, report, source="import", now=now)
        audit.record(s, tenant_id, actor, actor_type, "import_inventory", target=device.id,
                     details={"device": name, "packages": len(pkgs), "created": created})
        out = {"machineId": device.id, "computerDnsName": name, "created": created,
               "osDistribution": found_os.id if found_os else "", "osVersion": found_os.version_id if found_os else "",
               "ecosystem": ecosystem_for(found_os) if found_os else "", **reply["inventory"],
               "warnings": warnings}
    return out
