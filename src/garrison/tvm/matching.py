"""Matching: which vulnerabilities each distinct package version has.

Work is per *distinct* package version (``package_versions``), never per device: the result
(``package_version_vulns``) is joined with the devices' package lists at read time. See
docs/matching.md for the rules; in short:

* A package is looked up by (ecosystem, name) with string equality on the ecosystem — a device on
  ``Ubuntu:20.04:LTS`` is matched against advisories for exactly that release, never another release,
  never ``Ubuntu:Pro:…``, and never by NVD/CPE: only software no distro or package database tracks has
  the ``CPE`` ecosystem (garrison.tvm.software). Debian/Ubuntu/Alpine advisories name the *source*
  package, so a binary is matched through its source package (Debian/Ubuntu: at the source version).
* Versions are ordered by the ecosystem's own scheme (dpkg, apk, rpm, PEP 440, SemVer…).
* OSV ranges are evaluated exactly as the OSV schema's ``IsVulnerable`` pseudocode says (events
  sorted, ``introduced``/``fixed``/``last_affected``, ``limit``), plus the explicit ``versions`` list.
* Withdrawn advisories and the statuses ``not_affected``, ``unimportant`` and ``undetermined`` give
  no finding; ``no_dsa`` and ``end_of_life`` do (the finding carries that status).
* The fixed version of a finding is the smallest ``fixed`` event above the installed version over
  all advisories that report it; NULL when none has a fix.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, false, insert, select, update
from sqlalchemy.orm import Session

from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.kb import Advisory, AdvisoryVulnerability, AffectedPackage
from garrison.store.models.tvm import DevicePackage, PackageVersion, PackageVersionVuln, ResolvedFinding
from garrison.tvm import findings
from garrison.tvm.software import BOTH_NAMES, ecosystem_base
from garrison.tvm.versions import (
    InvalidVersion,
    UnknownEcosystemError,
    VersionScheme,
    get_scheme,
    scheme_for_ecosystem,
)

log = logging.getLogger("garrison.tvm.matching")

# Statuses of affected_packages rows that describe a vulnerable package (see store/models/kb.py).
VULNERABLE_STATUSES = ("affected", "no_dsa", "end_of_life")
_STATUS_RANK = {"affected": 0, "no_dsa": 1, "end_of_life": 2}
CHUNK = 500  # bound parameters per IN (...) list
WRITE_BATCH = 5000

PV = PackageVersion.__table__
PVV = PackageVersionVuln.__table__
AP = AffectedPackage.__table__
A = Advisory.__table__
AV = AdvisoryVulnerability.__table__
DP = DevicePackage.__table__

_ZERO = (0, ())  # sort key of introduced "0": before every version
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


# --- OSV range evaluation -----------------------------------------------------------------

@dataclass
class _Range:
    scheme: VersionScheme
    events: list[tuple[Any, str, str]]  # (sort key, kind, raw version), sorted as the spec says
    limits: list[Any]  # keys of limit events ("*" = infinity is dropped: it never limits)
    has_limit: bool
    excluded: Any = None  # key of an exclusive start (NVD versionStartExcluding), which is not affected
    epoch: str = ""  # rpm: the epoch the range's versions carry (lent to an installed version without one)
    module_stream: str = ""  # rpm: the module stream (upstream major.minor) of a module build's fix


@dataclass
class Entry:
    """One affected_packages row, prepared once and evaluated against many versions."""

    advisory_id: str
    source: str
    status: str
    versions: frozenset[str]
    ranges: list[_Range]
    warnings: list[str] = field(default_factory=list)


def _scheme(ecosystem: str) -> VersionScheme | None:
    try:
        return scheme_for_ecosystem(ecosystem)
    except UnknownEcosystemError:
        return None


def prepare_entry(ecosystem: str, advisory_id: str, source: str, status: str, ranges: Any,
                  versions: Any) -> Entry:
    """Parse and sort the events of an affected entry with the ecosystem's version scheme.

    Unparseable bounds are handled conservatively (a missed vulnerability is worse than a false
    alarm): an unreadable ``introduced`` counts as "0", an unreadable ``fixed``/``last_affected``/
    ``limit`` is ignored, which keeps the range open.
    """
    entry = Entry(advisory_id, source, status,
                  frozenset(v for v in (versions or []) if isinstance(v, str)), [])
    eco_scheme = _scheme(ecosystem)
    for rng in ranges or []:
        if not isinstance(rng, dict):
            continue
        kind = rng.get("type")
        scheme = get_scheme("semver") if kind == "SEMVER" else eco_scheme if kind == "ECOSYSTEM" else None
        if scheme is None:
            continue  # GIT ranges need the repository; the versions list covers them
        events: list[tuple[Any, str, str]] = []
        limits: list[Any] = []
        has_limit = False
        for ev in rng.get("events") or []:
            if not isinstance(ev, dict) or len(ev) != 1:
                continue
            (ev_kind, raw), = ev.items()
            if ev_kind not in _EVENT_KINDS or not isinstance(raw, str):
                continue
            if ev_kind == "limit":
                has_limit = True
                if "*" in raw:
                    limits.append(None)  # infinity
                    continue
            if ev_kind == "introduced" and raw == "0":
                events.append((_ZERO, ev_kind, raw))
                continue
            try:
                key = (1, scheme.key(raw))
            except InvalidVersion as exc:
                entry.warnings.append(f"{advisory_id}: {exc}")
                if ev_kind == "introduced":
                    events.append((_ZERO, ev_kind, raw))
                elif ev_kind == "limit":
                    limits.append(None)
                continue
            if ev_kind == "limit":
                limits.append(key)
            else:
                events.append((key, ev_kind, raw))
        events.sort(key=lambda e: e[0])  # stable: events at the same version keep the record's order
        excluded = None
        if rng.get("start_excluded") is True:
            excluded = next((key for key, kind, _raw in events if kind == "introduced"), None)
        prepared = _Range(scheme, events, limits, has_limit, excluded)
        if scheme.name == "rpm":
            raws = [raw for _key, kind, raw in events if raw != "0"]
            prepared.epoch = next((e for e in (_rpm_epoch(r) for r in raws) if e), "")
            prepared.module_stream = next((_module_stream(r) for r in raws if _is_module_build(r)), "")
        entry.ranges.append(prepared)
    return entry


@dataclass
class Verdict:
    affected: bool
    fixes: list[str]  # fixed events above the version, in the range(s) that matched


def evaluate(entry: Entry, version: str) -> Verdict:
    """OSV ``IsVulnerable`` for one affected entry, plus the fixes that lie above ``version``."""
    affected = version in entry.versions
    fixes: list[str] = []
    matched_ranges: list[tuple[_Range, Any]] = []
    vulnerable_ranges: list[tuple[_Range, Any]] = []
    for rng in entry.ranges:
        if rng.module_stream and rng.module_stream != _installed_stream(version):
            continue  # a module stream's build (ruby:3.3) says nothing about another stream's package
        try:
            vkey = (1, rng.scheme.key(_with_epoch(version, rng.epoch)))
        except InvalidVersion:
            continue  # the range cannot order this version; only the versions list can match it
        if rng.has_limit and not any(lim is None or vkey < lim for lim in rng.limits):
            continue  # not before any limit
        if rng.excluded is not None and vkey == rng.excluded:
            continue
        vulnerable = False
        for key, kind, _raw in rng.events:  # the spec's loop, word for word
            if kind == "introduced" and vkey >= key:
                vulnerable = True
            elif kind == "fixed" and vkey >= key or kind == "last_affected" and vkey > key:
                vulnerable = False
        if vulnerable:
            affected = True
            vulnerable_ranges.append((rng, vkey))
        matched_ranges.append((rng, vkey))
    if affected:
        # The fixes of the ranges that found the version vulnerable (another range's fix may lie in a
        # vulnerable stretch); affected through the versions list only: any fix above the version.
        for rng, vkey in vulnerable_ranges or matched_ranges:
            fixes.extend(raw for key, kind, raw in rng.events if kind == "fixed" and key > vkey)
    return Verdict(affected, fixes)


_RPM_EPOCH = re.compile(r"^(\d+):")
_MODULE_BUILD = re.compile(r"\.module[+_]")


def _rpm_epoch(version: str) -> str:
    m = _RPM_EPOCH.match(version)
    return m.group(1) if m else ""


def _with_epoch(version: str, epoch: str) -> str:
    """An rpm version without an epoch (plain ``rpm -qa`` does not print it) takes the advisory's:
    ``mariadb-server-10.3.39-1.module_el8…`` is ALSA's ``3:10.3.39-1.module_el8…``, not older than it."""
    return f"{epoch}:{version}" if epoch and not _RPM_EPOCH.match(version) else version


def _is_module_build(version: str) -> bool:
    return _MODULE_BUILD.search(version) is not None


def _module_stream(version: str) -> str:
    """``3:10.3.39-1.module_el8.8.0+…`` → ``10.3`` (modules are streams of an upstream major.minor)."""
    upstream = _RPM_EPOCH.sub("", version).split("-", 1)[0]
    return ".".join(upstream.split(".")[:2])


def _installed_stream(version: str) -> str:
    return _module_stream(version) if _is_module_build(version) else ""


def _first_fix(ecosystem: str, fixes: Iterable[str], entries: list[Entry]) -> str | None:
    """The lowest fixed version that every advisory reporting the vulnerability agrees is fixed (a DSA's
    early fix that the tracker says is still affected is not the fix); the lowest one when none is."""
    candidates = list(fixes)
    while candidates:
        best = smallest_version(ecosystem, candidates)
        if best is None or not any(evaluate(e, best).affected for e in entries):
            return best
        candidates.remove(best)
    return smallest_version(ecosystem, fixes)


def smallest_version(ecosystem: str, versions: Iterable[str]) -> str | None:
    """The lowest of ``versions`` in the ecosystem's order (unorderable ones only as a last resort)."""
    scheme = _scheme(ecosystem) or get_scheme("semver")
    best: tuple[Any, str] | None = None
    fallback: str | None = None
    for v in versions:
        try:
            k = scheme.key(v)
        except InvalidVersion:
            fallback = v if fallback is None else min(fallback, v)
            continue
        if best is None or k < best[0]:
            best = (k, v)
    return best[1] if best else fallback


# --- what to look up for a package version ------------------------------------------------

@dataclass(frozen=True)
class Target:
    id: int
    ecosystem: str
    names: tuple[str, ...]
    version: str


def target_of(row: Any) -> Target | None:
    """Names and version to match a package_versions row with; None when nothing can apply."""
    eco = row.ecosystem
    if not eco:
        return None  # a distro package of an unknown release: no advisory can be chosen honestly
    base = ecosystem_base(eco)
    if base in ("Debian", "Ubuntu"):
        return Target(row.id, eco, (row.match_name,), row.source_version or row.version)
    names = [row.match_name]
    if base in BOTH_NAMES and row.source_name and row.source_name not in names:
        names.append(row.source_name)
    if row.name not in names and base in BOTH_NAMES:
        names.append(row.name)
    return Target(row.id, eco, tuple(names), row.version)


# --- the engine ---------------------------------------------------------------------------

@dataclass
class Finding:
    vulnerability_id: str
    fixed_version: str | None
    fix_advisory: str
    advisory_ids: list[str]
    source: str
    status: str


@dataclass
class MatchStats:
    package_versions: int = 0
    findings: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    resolved: int = 0
    warnings: list[str] = field(default_factory=list)
    # Package versions that gained or lost a vulnerability, and those vulnerabilities (for the summaries).
    changed_pvs: set[int] = field(default_factory=set)
    changed_vulns: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"packageVersions": self.package_versions, "findings": self.findings, "added": self.added,
                "removed": self.removed, "changed": self.changed, "resolved": self.resolved,
                "warnings": len(self.warnings)}


class Matcher:
    """Loads the advisories for a set of package versions once and evaluates each version.

    Prepared entries (events parsed and sorted) are cached per (ecosystem, package) for the
    lifetime of the matcher, and version keys are memoised by the version schemes.
    """

    def __init__(self, s: Session) -> None:
        self.s = s
        self.entries: dict[tuple[str, str], list[Entry]] = {}
        self.vulns_of: dict[str, list[str]] = {}
        self.warnings: list[str] = []

    def load(self, keys: Iterable[tuple[str, str]]) -> None:
        missing = sorted({k for k in keys if k not in self.entries})
        by_eco: dict[str, list[str]] = defaultdict(list)
        for eco, name in missing:
            by_eco[eco].append(name)
            self.entries[(eco, name)] = []
        new_advisories: set[str] = set()
        for eco, names in by_eco.items():
            for i in range(0, len(names), CHUNK):
                rows = self.s.execute(
                    select(AP.c.advisory_id, AP.c.package, AP.c.ranges, AP.c.versions, AP.c.status, A.c.source)
                    .join(A, A.c.id == AP.c.advisory_id)
                    .where(AP.c.ecosystem == eco, AP.c.package.in_(names[i : i + CHUNK]),
                           A.c.withdrawn == false(), AP.c.status.in_(VULNERABLE_STATUSES))
                )
                for adv, pkg, ranges, versions, status, source in rows:
                    entry = prepare_entry(eco, adv, source, status, ranges, versions)
                    self.warnings.extend(entry.warnings)
                    self.entries[(eco, pkg)].append(entry)
                    if adv not in self.vulns_of:
                        new_advisories.add(adv)
        ids = sorted(new_advisories)
        for adv in ids:
            self.vulns_of[adv] = []
        for i in range(0, len(ids), CHUNK):
            for adv, vid in self.s.execute(
                select(AV.c.advisory_id, AV.c.vulnerability_id).where(AV.c.advisory_id.in_(ids[i : i + CHUNK]))
            ):
                self.vulns_of[adv].append(vid)

    def match(self, target: Target) -> dict[str, Finding]:
        per_vuln: dict[str, dict[str, Any]] = {}
        for name in target.names:
            for entry in self.entries.get((target.ecosystem, name), ()):
                verdict = evaluate(entry, target.version)
                if not verdict.affected:
                    continue
                for vid in self.vulns_of.get(entry.advisory_id, ()):
                    acc = per_vuln.setdefault(vid, {"fixes": {}, "advisories": [], "sources": set(),
                                                    "status": entry.status, "entries": []})
                    acc["entries"].append(entry)
                    if entry.advisory_id not in acc["advisories"]:
                        acc["advisories"].append(entry.advisory_id)
                    acc["sources"].add(entry.source)
                    for fix in verdict.fixes:
                        acc["fixes"].setdefault(fix, entry.advisory_id)
                    if _STATUS_RANK.get(entry.status, 9) < _STATUS_RANK.get(acc["status"], 9):
                        acc["status"] = entry.status
        out: dict[str, Finding] = {}
        for vid, acc in per_vuln.items():
            fixed = _first_fix(target.ecosystem, acc["fixes"], acc["entries"]) if acc["fixes"] else None
            advisories = sorted(acc["advisories"])
            out[vid] = Finding(vid, fixed, acc["fixes"][fixed] if fixed else advisories[0], advisories,
                               ",".join(sorted(acc["sources"])), acc["status"])
        return out


def _pv_rows(s: Session, ids: Sequence[int]) -> list[Any]:
    cols = (PV.c.id, PV.c.ecosystem, PV.c.name, PV.c.match_name, PV.c.source_name, PV.c.version,
            PV.c.source_version, PV.c.software_id)
    rows: list[Any] = []
    for i in range(0, len(ids), CHUNK):
        rows.extend(s.execute(select(*cols).where(PV.c.id.in_(ids[i : i + CHUNK]))).all())
    return rows


def match_package_versions(s: Session, ids: Sequence[int], *, matcher: Matcher | None = None,
                           resolve_removed: bool = True) -> MatchStats:
    """(Re)compute package_version_vulns for these package versions and mark them matched.

    Rows that stay keep their ``first_seen``; rows that go are written as resolved findings for
    every device that has the package version (``resolve_removed``), so this must run in a
    system session when existing rows can go away.
    """
    stats = MatchStats(package_versions=len(ids))
    if not ids:
        return stats
    now = utcnow()
    rows = _pv_rows(s, ids)
    targets = [t for t in (target_of(r) for r in rows) if t is not None]
    m = matcher or Matcher(s)
    m.load((t.ecosystem, n) for t in targets for n in t.names)
    results = {t.id: m.match(t) for t in targets}
    stats.warnings = m.warnings[:100]

    existing: dict[int, dict[str, Any]] = defaultdict(dict)
    id_list = list(ids)
    for i in range(0, len(id_list), CHUNK):
        for r in s.execute(select(PVV).where(PVV.c.package_version_id.in_(id_list[i : i + CHUNK]))):
            existing[r.package_version_id][r.vulnerability_id] = r

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    gone: list[Any] = []
    for pv_id in id_list:
        new = results.get(pv_id, {})
        old = existing.get(pv_id, {})
        stats.findings += len(new)
        for vid, f in new.items():
            row = {"package_version_id": pv_id, "vulnerability_id": vid, "fixed_version": f.fixed_version,
                   "fix_advisory": f.fix_advisory, "advisory_ids": f.advisory_ids, "source": f.source,
                   "status": f.status}
            was = old.get(vid)
            if was is None:
                inserts.append({**row, "first_seen": now})
            elif (was.fixed_version, was.fix_advisory, list(was.advisory_ids or []), was.source, was.status) != (
                    f.fixed_version, f.fix_advisory, f.advisory_ids, f.source, f.status):
                updates.append(row)
        gone.extend(r for vid, r in old.items() if vid not in new)
    stats.added, stats.changed, stats.removed = len(inserts), len(updates), len(gone)
    for ins in inserts:
        stats.changed_pvs.add(ins["package_version_id"])
        stats.changed_vulns.add(ins["vulnerability_id"])
    for g in gone:
        stats.changed_pvs.add(g.package_version_id)
        stats.changed_vulns.add(g.vulnerability_id)

    if gone:
        if resolve_removed:
            stats.resolved = _resolve_for_all_devices(s, gone, now)
        for r in gone:
            s.execute(delete(PVV).where(PVV.c.package_version_id == r.package_version_id,
                                        PVV.c.vulnerability_id == r.vulnerability_id))
    _insert_ignore(s, inserts)
    if updates:
        stmt = (update(PVV).where(PVV.c.package_version_id == bindparam("b_pv"),
                                  PVV.c.vulnerability_id == bindparam("b_vid"))
                .values(fixed_version=bindparam("b_fixed"), fix_advisory=bindparam("b_fa"),
                        advisory_ids=bindparam("b_adv"), source=bindparam("b_src"), status=bindparam("b_st")))
        s.execute(stmt, [{"b_pv": u["package_version_id"], "b_vid": u["vulnerability_id"],
                          "b_fixed": u["fixed_version"], "b_fa": u["fix_advisory"], "b_adv": u["advisory_ids"],
                          "b_src": u["source"], "b_st": u["status"]} for u in updates])
    for i in range(0, len(id_list), CHUNK):
        s.execute(update(PV).where(PV.c.id.in_(id_list[i : i + CHUNK])).values(matched_at=now))
    return stats


def _insert_ignore(s: Session, rows: list[dict[str, Any]]) -> None:
    """Insert finding rows; a row another transaction matched at the same time is left as it is."""
    if not rows:
        return
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(PVV).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(PVV).on_conflict_do_nothing()
    else:
        stmt = insert(PVV)
    for i in range(0, len(rows), WRITE_BATCH):
        s.execute(stmt, rows[i : i + WRITE_BATCH])


def _resolve_for_all_devices(s: Session, gone: list[Any], now: Any) -> int:
    """Findings the knowledge base no longer reports: resolved on every device that had them."""
    by_pv: dict[int, list[Any]] = defaultdict(list)
    for r in gone:
        by_pv[r.package_version_id].append(r)
    pv_ids = sorted(by_pv)
    versions = {r.id: r for r in _pv_rows(s, pv_ids)}
    out: list[dict[str, Any]] = []
    for i in range(0, len(pv_ids), CHUNK):
        for dp in s.execute(select(DP.c.tenant_id, DP.c.device_id, DP.c.package_version_id, DP.c.first_seen)
                            .where(DP.c.package_version_id.in_(pv_ids[i : i + CHUNK]))):
            pv = versions[dp.package_version_id]
            for r in by_pv[dp.package_version_id]:
                out.append({"tenant_id": dp.tenant_id, "device_id": dp.device_id,
                            "vulnerability_id": r.vulnerability_id, "package_version_id": dp.package_version_id,
                            "software_id": pv.software_id, "version": pv.version, "fixed_version": r.fixed_version,
                            "first_seen": max(dp.first_seen, r.first_seen), "resolved_at": now,
                            "reason": "knowledge_base"})
    for i in range(0, len(out), WRITE_BATCH):
        s.execute(insert(ResolvedFinding.__table__), out[i : i + WRITE_BATCH])
    return len(out)


# --- entry points ---------------------------------------------------------------------------

def match_pending(s: Session, ids: Sequence[int] | None = None, *, summaries: bool = False) -> MatchStats:
    """Match package versions that have never been matched (all of them, or those of ``ids``).
    ``summaries``: also recount the devices that already have them (system session)."""
    stmt = select(PV.c.id).where(PV.c.matched_at.is_(None))
    if ids is not None:
        pending: list[int] = []
        id_list = list(ids)
        for i in range(0, len(id_list), CHUNK):
            pending.extend(s.execute(stmt.where(PV.c.id.in_(id_list[i : i + CHUNK]))).scalars())
    else:
        pending = list(s.execute(stmt).scalars())
    stats = match_package_versions(s, pending, resolve_removed=False)
    if summaries:
        findings.refresh_after_rematch(s, stats.changed_pvs, stats.changed_vulns)
    return stats


def match_all(store: Store, batch: int = 20_000, *, summaries: bool = True) -> MatchStats:
    """Re-match every package version (after a first import of the knowledge base, or to repair),
    then rebuild every tenant's summaries."""
    total = MatchStats()
    with store.system() as s:
        ids = list(s.execute(select(PV.c.id).order_by(PV.c.id)).scalars())
    for i in range(0, len(ids), batch):
        with store.system() as s:
            _merge(total, match_package_versions(s, ids[i : i + batch]))
    if summaries and total.changed_pvs:
        rebuild_all_summaries(store)
    return total


def rebuild_all_summaries(store: Store) -> None:
    from garrison.store.models.core import Tenant

    with store.system() as s:
        tenants = list(s.execute(select(Tenant.id)).scalars())
    for tenant_id in tenants:
        findings.rebuild_summaries(store, tenant_id)


def rematch_changed(store: Store, changed_packages: Iterable[tuple[str, str]]) -> MatchStats:
    """Re-match the package versions a knowledge-base import touched (``ImportResult.changed_packages``).

    Only package versions whose (ecosystem, advisory package name) is in ``changed_packages`` are
    evaluated again; with an unchanged fleet and a small feed update this is a handful of rows.
    """
    pairs = sorted(set(changed_packages))
    if not pairs:
        return MatchStats()
    by_eco: dict[str, list[str]] = defaultdict(list)
    for eco, name in pairs:
        by_eco[eco].append(name)
    ids: set[int] = set()
    with store.system() as s:
        for eco, names in by_eco.items():
            for i in range(0, len(names), CHUNK):
                chunk = names[i : i + CHUNK]
                ids.update(s.execute(select(PV.c.id).where(PV.c.ecosystem == eco, PV.c.match_name.in_(chunk))).scalars())
                if ecosystem_base(eco) in BOTH_NAMES:
                    ids.update(s.execute(select(PV.c.id).where(
                        PV.c.ecosystem == eco, (PV.c.source_name.in_(chunk)) | (PV.c.name.in_(chunk)))).scalars())
        stats = match_package_versions(s, sorted(ids))
        findings.refresh_after_rematch(s, stats.changed_pvs, stats.changed_vulns)
        return stats


def _merge(total: MatchStats, part: MatchStats) -> None:
    for name in ("package_versions", "findings", "added", "removed", "changed", "resolved"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.changed_pvs |= part.changed_pvs
    total.changed_vulns |= part.changed_vulns
    total.warnings.extend(part.warnings[: max(0, 100 - len(total.warnings))])


__all__ = [
    "Entry",
    "MatchStats",
    "Matcher",
    "Target",
    "evaluate",
    "match_all",
    "match_package_versions",
    "match_pending",
    "prepare_entry",
    "rematch_changed",
    "smallest_version",
]
