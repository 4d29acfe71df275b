"""Findings: a device's package versions JOIN what matching found for them.

A finding is (device, vulnerability, software, installed version) with the fixed version (None:
no fix yet), the advisories that report it, their feed, the distro status, when it was first seen
and — once the vulnerable version left the device — when it was resolved (``resolved_findings``).

``first_seen`` of an open finding is the later of "the version appeared on the device" and "the
knowledge base first reported the version vulnerable". Findings are keyed by installed version: an
update that does not fix a vulnerability resolves the finding of the old version and opens one
for the new version.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.tvm import (
    DeviceInventoryState,
    DevicePackage,
    GroupPackageCount,
    GroupSoftwareCount,
    GroupVulnerabilityCount,
    PackageVersion,
    PackageVersionVuln,
    ResolvedFinding,
)

IN_USE_WINDOW = dt.timedelta(days=30)  # runtime context: "in use" = running code seen within this
# Weight of a finding in the impact score when its vulnerability has no CVSS v3 score.
SEVERITY_WEIGHT = {"Critical": 9.0, "High": 7.0, "Medium": 5.0, "Low": 2.0, "None": 0.0}
UNKNOWN_WEIGHT = 5.0


def first_seen_expr() -> ColumnElement[Any]:
    return case((DevicePackage.first_seen > PackageVersionVuln.first_seen, DevicePackage.first_seen),
                else_=PackageVersionVuln.first_seen)


def cvss_weight_expr() -> ColumnElement[Any]:
    """CVSS v3 base score, else a score for the severity word: what one finding weighs."""
    by_severity = case(*[(Vulnerability.severity == k, v) for k, v in SEVERITY_WEIGHT.items()],
                       else_=UNKNOWN_WEIGHT)
    return case((Vulnerability.cvss_v3_score.is_not(None), Vulnerability.cvss_v3_score), else_=by_severity)


def findings_select(*columns: Any) -> Select[Any]:
    """Open findings of the session's tenant; add the columns you need (device, vulnerability…)."""
    return (select(*columns)
            .select_from(DevicePackage)
            .join(PackageVersionVuln, PackageVersionVuln.package_version_id == DevicePackage.package_version_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id))


@dataclass
class Finding:
    device_id: str
    vulnerability_id: str
    software_id: str
    package: str
    version: str
    fixed_version: str | None
    advisory_ids: list[str]
    source: str
    status: str
    first_seen: dt.datetime
    resolved_at: dt.datetime | None = None
    last_used: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_findings(s: Session, device_id: str | None = None) -> list[Finding]:
    stmt = findings_select(DevicePackage.device_id, PackageVersionVuln.vulnerability_id, PackageVersion.software_id,
                           PackageVersion.name, PackageVersion.version, PackageVersionVuln.fixed_version,
                           PackageVersionVuln.advisory_ids, PackageVersionVuln.source, PackageVersionVuln.status,
                           first_seen_expr(), DevicePackage.last_used)
    if device_id is not None:
        stmt = stmt.where(DevicePackage.device_id == device_id)
    stmt = stmt.order_by(DevicePackage.device_id, PackageVersion.software_id, PackageVersionVuln.vulnerability_id)
    return [Finding(r[0], r[1], r[2], r[3], r[4], r[5], list(r[6] or []), r[7], r[8], r[9], None, r[10])
            for r in s.execute(stmt)]


def resolved_findings(s: Session, device_id: str | None = None) -> list[Finding]:
    stmt = select(ResolvedFinding).order_by(ResolvedFinding.resolved_at, ResolvedFinding.id)
    if device_id is not None:
        stmt = stmt.where(ResolvedFinding.device_id == device_id)
    out = []
    for r in s.scalars(stmt):
        out.append(Finding(r.device_id, r.vulnerability_id, r.software_id, r.software_id.split("-_-", 1)[-1],
                           r.version, r.fixed_version, [], "", r.reason, r.first_seen, r.resolved_at))
    return out


def in_use(last_used: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    return last_used is not None and last_used >= (now or utcnow()) - IN_USE_WINDOW


# --- summaries per device group -------------------------------------------------------------
# The org-wide lists (Software, vulnerabilities) need distinct device counts over
# device_packages ⨝ package_version_vulns, which for 10,000 devices is tens of millions of rows:
# minutes per request. So the counts live in tvm_group_* tables, kept exact incrementally — each
# change of a device's packages books the difference of its contribution — and rebuilt from
# scratch by a job (and after a full re-match), which also corrects in-use counts as they age.

GPC = GroupPackageCount.__table__
GSC = GroupSoftwareCount.__table__
GVC = GroupVulnerabilityCount.__table__
_CHUNK = 500
_GROUP = func.coalesce(Device.group_id, literal_column("0"))  # one SQL text, so GROUP BY matches it


@dataclass
class Contribution:
    """What one device adds to its group's counts (possibly restricted to some keys)."""

    pvs: dict[int, bool] = field(default_factory=dict)  # package version -> in use
    software: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # software -> (exposed, in use)
    vulns: set[str] = field(default_factory=set)


def group_key(device: Device) -> int:
    return device.group_id or 0


def contribution(s: Session, device_id: str, software: set[str] | None = None, vulns: set[str] | None = None,
                 now: dt.datetime | None = None) -> Contribution:
    """The device's contribution; ``software``/``vulns`` restrict it to those keys (None: all).
    With ``software`` given, package versions are those of that software."""
    cutoff = (now or utcnow()) - IN_USE_WINDOW
    out = Contribution()
    stmt = (select(DevicePackage.package_version_id, PackageVersion.software_id, DevicePackage.last_used)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .where(DevicePackage.device_id == device_id))
    rows: list[Any] = []
    if software is None:
        rows = list(s.execute(stmt))
    else:
        sw = sorted(software)
        for i in range(0, len(sw), _CHUNK):
            rows.extend(s.execute(stmt.where(PackageVersion.software_id.in_(sw[i : i + _CHUNK]))))
    vulnerable = _vulnerable_pvs(s, [r[0] for r in rows])
    for pv, sw_id, last_used in rows:
        used = last_used is not None and last_used >= cutoff
        out.pvs[pv] = used
        exp, use = out.software.get(sw_id, (False, False))
        out.software[sw_id] = (exp or pv in vulnerable, use or used)
    vstmt = (select(PackageVersionVuln.vulnerability_id).distinct()
             .join(DevicePackage, DevicePackage.package_version_id == PackageVersionVuln.package_version_id)
             .where(DevicePackage.device_id == device_id))
    if vulns is None:
        out.vulns = set(s.execute(vstmt).scalars())
    else:
        vl = sorted(vulns)
        for i in range(0, len(vl), _CHUNK):
            out.vulns.update(s.execute(vstmt.where(PackageVersionVuln.vulnerability_id.in_(vl[i : i + _CHUNK])))
                             .scalars())
    return out


def _vulnerable_pvs(s: Session, pv_ids: list[int]) -> set[int]:
    out: set[int] = set()
    ids = sorted(set(pv_ids))
    for i in range(0, len(ids), _CHUNK):
        out.update(s.execute(select(PackageVersionVuln.package_version_id).distinct()
                             .where(PackageVersionVuln.package_version_id.in_(ids[i : i + _CHUNK]))).scalars())
    return out


def book(s: Session, tenant_id: int, group: int, before: Contribution, after: Contribution,
         sign: int = 1) -> None:
    """Add ``after - before`` (times ``sign``) to the group's counts."""
    pv_rows = []
    for pv in before.pvs.keys() | after.pvs.keys():
        d = (pv in after.pvs) - (pv in before.pvs)
        u = int(after.pvs.get(pv, False)) - int(before.pvs.get(pv, False))
        if d or u:
            pv_rows.append({"tenant_id": tenant_id, "group_id": group, "package_version_id": pv,
                            "devices": d * sign, "in_use": u * sign})
    sw_rows = []
    for sw in before.software.keys() | after.software.keys():
        b, a = before.software.get(sw), after.software.get(sw)
        i = (a is not None) - (b is not None)
        e = int(bool(a and a[0])) - int(bool(b and b[0]))
        u = int(bool(a and a[1])) - int(bool(b and b[1]))
        if i or e or u:
            sw_rows.append({"tenant_id": tenant_id, "group_id": group, "software_id": sw, "installed": i * sign,
                            "exposed": e * sign, "in_use": u * sign})
    v_rows = [{"tenant_id": tenant_id, "group_id": group, "vulnerability_id": v, "exposed": sign}
              for v in after.vulns - before.vulns]
    v_rows += [{"tenant_id": tenant_id, "group_id": group, "vulnerability_id": v, "exposed": -sign}
               for v in before.vulns - after.vulns]
    _add(s, GPC, ("tenant_id", "group_id", "package_version_id"), ("devices", "in_use"), pv_rows)
    _add(s, GSC, ("tenant_id", "group_id", "software_id"), ("installed", "exposed", "in_use"), sw_rows)
    _add(s, GVC, ("tenant_id", "group_id", "vulnerability_id"), ("exposed",), v_rows)


def _add(s: Session, table: Any, keys: tuple[str, ...], counters: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Increment counters, creating rows as needed (one upsert statement per batch)."""
    if not rows:
        return
    dialect = s.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: table.c[c] + stmt.excluded[c] for c in counters})
    for i in range(0, len(rows), 2000):
        s.execute(stmt, rows[i : i + 2000])


def move_device(s: Session, device: Device, old_group: int) -> None:
    """The device changed group: its whole contribution moves from ``old_group`` to its group now."""
    full = contribution(s, device.id)
    book(s, device.tenant_id, old_group, Contribution(), full, sign=-1)
    book(s, device.tenant_id, group_key(device), Contribution(), full)


def refresh_after_rematch(s: Session, pv_ids: set[int], vulns: set[str]) -> None:
    """Matching changed the findings of ``pv_ids`` (adding or removing ``vulns``): recount, in every
    tenant, the devices exposed to those vulnerabilities and to the software of those package versions.

    System session. The cost follows the devices that have the package versions concerned: device
    lists come per package version from one covering index, as text, and are united in Python.
    """
    if not pv_ids and not vulns:
        return
    conn = s.connection()
    dp, pvv, pvt = DevicePackage.__table__, PackageVersionVuln.__table__, PackageVersion.__table__
    index: dict[str, int] = {}
    owner: list[tuple[int, int]] = []  # device index -> (tenant, group)
    for device_id, tenant_id, group_id in conn.execute(select(Device.__table__.c.id, Device.__table__.c.tenant_id,
                                                              Device.__table__.c.group_id)):
        index[device_id] = len(owner)
        owner.append((tenant_id, group_id or 0))

    def devices_of(pvs: list[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(0, len(pvs), _CHUNK):
            for pv, ids in conn.execute(select(dp.c.package_version_id, _id_list(conn, dp.c.device_id))
                                        .where(dp.c.package_version_id.in_(pvs[i : i + _CHUNK]))
                                        .group_by(dp.c.package_version_id)):
                out[pv] = [index[d] for d in ids.split(",") if d in index]
        return out

    def counts(devices: set[int]) -> Counter[tuple[int, int]]:
        return Counter(owner[d] for d in devices)

    vl = sorted(vulns)
    for i in range(0, len(vl), 200):
        chunk = vl[i : i + 200]
        carriers: dict[str, list[int]] = defaultdict(list)
        for pv, vid in conn.execute(select(pvv.c.package_version_id, pvv.c.vulnerability_id)
                                    .where(pvv.c.vulnerability_id.in_(chunk))):
            carriers[vid].append(pv)
        devs = devices_of(sorted({pv for pvs in carriers.values() for pv in pvs}))
        rows = []
        for vid in chunk:
            exposed = counts(set().union(*(devs.get(pv, ()) for pv in carriers.get(vid, ()))))
            rows += [{"tenant_id": t, "group_id": g, "vulnerability_id": vid, "exposed": n}
                     for (t, g), n in exposed.items()]
        s.execute(delete(GVC).where(GVC.c.vulnerability_id.in_(chunk)))
        for j in range(0, len(rows), 5000):
            s.execute(insert(GVC), rows[j : j + 5000])

    ids = sorted(pv_ids)
    software: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        software.update(conn.execute(select(pvt.c.software_id).where(pvt.c.id.in_(ids[i : i + _CHUNK]))).scalars())
    sl = sorted(software)
    for i in range(0, len(sl), 200):
        chunk = sl[i : i + 200]
        vulnerable: dict[str, list[int]] = defaultdict(list)
        for pv, sw in conn.execute(select(pvt.c.id, pvt.c.software_id).where(
                pvt.c.software_id.in_(chunk), pvt.c.id.in_(select(pvv.c.package_version_id)))):
            vulnerable[sw].append(pv)
        devs = devices_of(sorted({pv for pvs in vulnerable.values() for pv in pvs}))
        updates = []
        for sw in chunk:
            exposed = counts(set().union(*(devs.get(pv, ()) for pv in vulnerable.get(sw, ()))))
            updates += [{"t": t, "g": g, "sw": sw, "n": n} for (t, g), n in exposed.items()]
        s.execute(update(GSC).where(GSC.c.software_id.in_(chunk)).values(exposed=0))
        if updates:
            s.execute(update(GSC).where(GSC.c.tenant_id == bindparam("t"), GSC.c.group_id == bindparam("g"),
                                        GSC.c.software_id == bindparam("sw")).values(exposed=bindparam("n")),
                      updates)


def rebuild_summaries(store: Store, tenant_id: int, now: dt.datetime | None = None) -> dict[str, int]:
    """Recount one tenant from scratch, streaming its device packages once, device by device.

    Per device the work is set unions of precomputed frozensets and Counter updates (both in C):
    package versions with the same vulnerabilities (the binaries of one source) share one set.
    """
    cutoff = (now or utcnow()) - IN_USE_WINDOW
    dp = DevicePackage.__table__
    with store.tenant(tenant_id) as s:
        conn = s.connection()
        group_of = {d: g or 0 for d, g in s.execute(select(Device.id, Device.group_id))}
        tenant_pvs = select(dp.c.package_version_id).where(dp.c.tenant_id == tenant_id).distinct().scalar_subquery()
        software_of: dict[int, str] = dict(conn.execute(
            select(PackageVersion.__table__.c.id, PackageVersion.__table__.c.software_id)
            .where(PackageVersion.__table__.c.id.in_(tenant_pvs))).all())
        by_pv: dict[int, set[str]] = defaultdict(set)
        pvv = PackageVersionVuln.__table__
        for pv, vid in conn.execute(select(pvv.c.package_version_id, pvv.c.vulnerability_id)
                                    .where(pvv.c.package_version_id.in_(tenant_pvs))):
            by_pv[pv].add(vid)
        interned: dict[frozenset[str], frozenset[str]] = {}
        vset_of = {pv: interned.setdefault(frozenset(v), frozenset(v)) for pv, v in by_pv.items()}

        pv_devices: dict[int, Counter[int]] = defaultdict(Counter)
        pv_in_use: dict[int, Counter[int]] = defaultdict(Counter)
        sw_installed: dict[int, Counter[str]] = defaultdict(Counter)
        sw_exposed: dict[int, Counter[str]] = defaultdict(Counter)
        sw_in_use: dict[int, Counter[str]] = defaultdict(Counter)
        v_exposed: dict[int, Counter[str]] = defaultdict(Counter)

        def flush(device: str | None, pvs: list[int], used: list[int]) -> None:
            if device is None:
                return
            g = group_of.get(device, 0)
            pv_devices[g].update(pvs)
            pv_in_use[g].update(used)
            sw_installed[g].update({software_of[pv] for pv in pvs})
            sw_in_use[g].update({software_of[pv] for pv in used})
            sets = {vset_of[pv] for pv in pvs if pv in vset_of}
            sw_exposed[g].update({software_of[pv] for pv in pvs if pv in vset_of})
            if sets:
                v_exposed[g].update(frozenset().union(*sets))

        # One row per device with its package version ids as text: the per-row cost of fetching
        # millions of rows into Python was most of a rebuild.
        used_pv = case((dp.c.last_used >= cutoff, dp.c.package_version_id))
        result = conn.execute(
            select(dp.c.device_id, _id_list(conn, dp.c.package_version_id), _id_list(conn, used_pv))
            .where(dp.c.tenant_id == tenant_id).group_by(dp.c.device_id).execution_options(yield_per=2000))
        for device, all_ids, used_ids in result:
            flush(device, _ints(all_ids), _ints(used_ids))

        for model in (GroupPackageCount, GroupSoftwareCount, GroupVulnerabilityCount):
            s.execute(delete(model))
        rows_pv = [{"tenant_id": tenant_id, "group_id": g, "package_version_id": pv, "devices": n,
                    "in_use": pv_in_use[g][pv]} for g, counts in pv_devices.items() for pv, n in counts.items()]
        rows_sw = [{"tenant_id": tenant_id, "group_id": g, "software_id": sw, "installed": n,
                    "exposed": sw_exposed[g][sw], "in_use": sw_in_use[g][sw]}
                   for g, counts in sw_installed.items() for sw, n in counts.items()]
        rows_v = [{"tenant_id": tenant_id, "group_id": g, "vulnerability_id": v, "exposed": n}
                  for g, counts in v_exposed.items() for v, n in counts.items()]
        for table, rows in ((GPC, rows_pv), (GSC, rows_sw), (GVC, rows_v)):
            for i in range(0, len(rows), 5000):
                s.execute(insert(table), rows[i : i + 5000])
        s.execute(update(DeviceInventoryState).values(counted_group=func.coalesce(
            select(Device.group_id).where(Device.id == DeviceInventoryState.device_id).scalar_subquery(), 0)))
        return {"packageVersions": len(rows_pv), "software": len(rows_sw), "vulnerabilities": len(rows_v)}


def _id_list(conn: Any, column: Any) -> Any:
    """Comma-separated integers of a group (NULLs skipped), on SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return func.string_agg(cast(column, Text), literal_column("','"))
    return func.group_concat(column)


def _ints(text: str | None) -> list[int]:
    return list(map(int, text.split(","))) if text else []


def rebook_moved_devices(store: Store, tenant_id: int) -> int:
    """Move devices whose group changed since they were counted; returns how many moved."""
    with store.tenant(tenant_id) as s:
        return rebook_moved(s)


def rebook_moved(s: Session) -> int:
    """:func:`rebook_moved_devices` in the caller's tenant session. Pages that read the per-group counts
    call it first, so that a device-group change shows at once (one indexed query when nothing moved)."""
    global _moves
    candidates = s.execute(select(Device, DeviceInventoryState.counted_group)
                           .join(DeviceInventoryState, DeviceInventoryState.device_id == Device.id)
                           .where(_GROUP != DeviceInventoryState.counted_group)).all()
    moved = 0
    for device, old in candidates:
        # Claim the move first: of two sessions booking the same move at once, the second finds the
        # row already changed (PostgreSQL re-reads it after the first commits) and books nothing.
        claimed = s.execute(update(DeviceInventoryState)
                            .where(DeviceInventoryState.device_id == device.id,
                                   DeviceInventoryState.counted_group == old)
                            .values(counted_group=group_key(device))).rowcount  # type: ignore[attr-defined]
        if claimed:
            move_device(s, device, old)
            moved += 1
    if moved:
        s.flush()
        _moves += 1
    return moved


_moves = 0  # how many times this process booked moves: readers that cache per-group counts key on it


def moves_booked() -> int:
    """Changes whenever this process booked a device-group move (see :func:`rebook_moved`)."""
    return _moves
