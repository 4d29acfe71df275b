"""Security recommendations: one per remediable thing, materialised per tenant.

A *software* recommendation covers one remediation unit: the package that an update replaces.
For distributions whose advisories name source packages (Debian, Ubuntu, Alpine…) that is the
source package — ``libssl1.1`` and ``openssl`` are fixed by one ``openssl`` update — elsewhere it
is the package itself (a PyPI or npm package). Its id is ``va-_-<vendor>-_-<name>`` (Defender's
``va-_-`` prefix and ``vendor-_-name`` product ids). A *configuration* recommendation covers one
failed configuration check: ``scid-<check id>``.

Remediation types: ``Update`` (a fixed version exists: "Update openssl to 1.1.1f-1ubuntu2.16"),
``Upgrade`` (the installed release is end of life: move to a supported one), ``Uninstall`` (end of
life, no fix and not seen running on any exposed device: remove it), ``AttentionRequired`` (no
fix exists yet — a zero-day; no due date), ``ConfigurationChange``.

Ranking: ``priorityScore`` = Σ over exposed devices of threat × breach likelihood × business value
(see :func:`priority`), explained in ``explanation`` ("why is this first?").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, column, exists, select, table
from sqlalchemy.orm import Session

from garrison.store.models.core import Device
from garrison.store.models.kb import Vulnerability
from garrison.store.models.prioritisation import Recommendation
from garrison.store.models.tvm import DevicePackage, PackageVersion, PackageVersionVuln
from garrison.tvm import findings
from garrison.tvm.prioritisation import config, exposure
from garrison.tvm.software import CPE_ECOSYSTEM, product_of, vendor_of
from garrison.tvm.versions import InvalidVersion, UnknownEcosystemError, scheme_for_ecosystem

SOFTWARE_PREFIX = "va-_-"
CONFIG_PREFIX = "scid-"
IN_USE_LIKELIHOOD = 1.0
NOT_IN_USE_LIKELIHOOD = 0.5
BUSINESS_VALUE = {"Low": 0.5, "Normal": 1.0, "High": 2.0}
TOP_VULNS = 5
_ID_UNSAFE = re.compile(r"[^a-z0-9._+\-]+")


# --- identities -------------------------------------------------------------------------------

def _id_part(text: str) -> str:
    return _ID_UNSAFE.sub("_", text.strip().lower()).strip("_") or "unknown"


def unit_of(ecosystem: str, manager: str, match_name: str) -> tuple[str, str, str]:
    """(unit id ``vendor-_-name``, vendor, name) of a package version."""
    vendor = vendor_of(ecosystem, manager, match_name)
    name = product_of(match_name) if ecosystem == CPE_ECOSYSTEM else _id_part(match_name)
    return f"{vendor}-_-{name}"[:280], vendor, name


def software_rec_id(unit_id: str) -> str:
    return SOFTWARE_PREFIX + unit_id


def config_rec_id(check_id: str) -> str:
    return CONFIG_PREFIX + check_id


# --- priority ---------------------------------------------------------------------------------

def breach_likelihood(in_use: bool, internet_facing: bool) -> float:
    b = IN_USE_LIKELIHOOD if in_use else NOT_IN_USE_LIKELIHOOD
    return b * (exposure.INTERNET_FACING_MULTIPLIER if internet_facing else 1.0)


def priority(threat: float, in_use: bool, internet_facing: bool, device_value: str) -> float:
    """One exposed device's share of a recommendation's rank."""
    return threat * breach_likelihood(in_use, internet_facing) * BUSINESS_VALUE.get(device_value, 1.0)


# --- what the refresh accumulates per recommendation -------------------------------------------

@dataclass
class GroupAcc:
    exposed: int = 0
    installed: int = 0
    in_use: int = 0
    nl_delta: float = 0.0
    high_delta: float = 0.0
    priority: float = 0.0


@dataclass
class RecAcc:
    rec_id: str
    kind: str
    groups: dict[int, GroupAcc] = field(default_factory=dict)
    threat: float = 0.0
    in_use: int = 0
    internet_facing: int = 0
    high_value: int = 0
    low_value: int = 0
    active_alert: bool = False

    def group(self, gid: int) -> GroupAcc:
        g = self.groups.get(gid)
        if g is None:
            g = self.groups[gid] = GroupAcc()
        return g

    @property
    def exposed(self) -> int:
        return sum(g.exposed for g in self.groups.values())

    @property
    def priority(self) -> float:
        return sum(g.priority for g in self.groups.values())


# --- software metadata ------------------------------------------------------------------------

@dataclass
class VulnInfo:
    id: str
    severity: str
    cvss: float | None
    impact: float
    likelihood: float
    hazard: float
    epss: float | None
    epss_percentile: float | None
    kev: bool
    kev_ransomware: bool
    public_exploit: bool
    exploit_verified: bool
    exploit_in_kit: bool
    reason: str


@dataclass
class UnitMeta:
    unit_id: str
    vendor: str
    name: str
    software_ids: set[str] = field(default_factory=set)
    ecosystems: set[str] = field(default_factory=set)
    managers: set[str] = field(default_factory=set)
    match_names: set[str] = field(default_factory=set)
    vulns: dict[str, VulnInfo] = field(default_factory=dict)
    fixed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # ecosystem → fixed versions
    unfixed: set[str] = field(default_factory=set)  # vulnerabilities with no fixed version anywhere
    fixed_vulns: set[str] = field(default_factory=set)
    end_of_life: set[str] = field(default_factory=set)


def vuln_info(v: Any) -> VulnInfo:
    cvss = v.cvss_v3_score if v.cvss_v3_score is not None else v.cvss_v4_score
    return VulnInfo(v.id, v.severity, cvss, exposure.impact(v), exposure.likelihood(v), exposure.hazard(v), v.epss,
                    v.epss_percentile, bool(v.kev), (v.kev_ransomware or "") == "Known", bool(v.public_exploit),
                    bool(v.exploit_verified), bool(v.exploit_in_kit), exposure.threat_reason(v))


def unit_metadata(s: Session, tenant_id: int, staged: bool = False) -> dict[str, UnitMeta]:
    """Per remediation unit in the tenant: its vulnerabilities, fixed versions, statuses, binaries.

    ``staged``: the refresh's staging table ``prio_pv`` lists the tenant's vulnerable package versions.
    """
    stmt = (select(PackageVersion.ecosystem, PackageVersion.manager, PackageVersion.match_name,
                   PackageVersion.software_id, PackageVersionVuln.vulnerability_id, PackageVersionVuln.fixed_version,
                   PackageVersionVuln.status)
            .select_from(PackageVersionVuln)
            .join(PackageVersion, PackageVersion.id == PackageVersionVuln.package_version_id))
    if staged:
        staging = table("prio_pv", column("pv_id"))
        stmt = stmt.join(staging, staging.c.pv_id == PackageVersionVuln.package_version_id)
    else:
        DP = DevicePackage.__table__
        stmt = stmt.where(exists().where(DP.c.package_version_id == PackageVersionVuln.package_version_id,
                                         DP.c.tenant_id == tenant_id))
    stmt = stmt.distinct()
    units: dict[str, UnitMeta] = {}
    vuln_ids: set[str] = set()
    rows = s.execute(stmt).all()
    for eco, manager, match_name, software_id, vid, fixed, status in rows:
        unit_id, vendor, name = unit_of(eco, manager, match_name)
        meta = units.get(unit_id)
        if meta is None:
            meta = units[unit_id] = UnitMeta(unit_id, vendor, name)
        meta.software_ids.add(software_id)
        meta.ecosystems.add(eco)
        meta.managers.add(manager)
        meta.match_names.add(match_name)
        vuln_ids.add(vid)
        if fixed:
            meta.fixed[eco].add(fixed)
            meta.fixed_vulns.add(vid)
        if status == "end_of_life":
            meta.end_of_life.add(vid)
        meta.vulns.setdefault(vid, None)  # type: ignore[arg-type]
    infos = _vuln_infos(s, vuln_ids)
    for meta in units.values():
        meta.vulns = {vid: infos[vid] for vid in meta.vulns if vid in infos}
        meta.unfixed = set(meta.vulns) - meta.fixed_vulns
    return units


_VULN_COLUMNS = (Vulnerability.id, Vulnerability.severity, Vulnerability.cvss_v3_score, Vulnerability.cvss_v4_score,
                 Vulnerability.epss, Vulnerability.epss_percentile, Vulnerability.kev, Vulnerability.kev_ransomware,
                 Vulnerability.public_exploit, Vulnerability.exploit_verified, Vulnerability.exploit_in_kit)


def _vuln_infos(s: Session, ids: Iterable[str]) -> dict[str, VulnInfo]:
    out: dict[str, VulnInfo] = {}
    id_list = sorted(ids)
    for i in range(0, len(id_list), 5000):
        for v in s.execute(select(*_VULN_COLUMNS).where(Vulnerability.id.in_(id_list[i : i + 5000]))):
            out[v.id] = vuln_info(v)
    return out


def max_version(ecosystem: str, versions: Iterable[str]) -> str:
    vs = sorted(set(versions))
    if not vs:
        return ""
    try:
        scheme = scheme_for_ecosystem(ecosystem)
        return max(vs, key=scheme.key)
    except (UnknownEcosystemError, InvalidVersion, ValueError, TypeError):
        return vs[-1]


# --- building the rows ------------------------------------------------------------------------

def software_recommendation(meta: UnitMeta, acc: RecAcc, now: dt.datetime) -> dict[str, Any]:
    recommended = {eco: max_version(eco, vs) for eco, vs in sorted(meta.fixed.items()) if vs}
    main_version = ""
    if recommended:
        distinct = sorted(set(recommended.values()))
        main_version = distinct[0] if len(distinct) == 1 else ""
    has_fix = bool(meta.fixed_vulns)
    zero_day = bool(meta.unfixed - meta.end_of_life)
    name = meta.name
    tags: list[str] = []
    if has_fix:
        rtype = "Update"
        title = f"Update {name} to {main_version}" if main_version else f"Update {name}"
        if meta.end_of_life:
            tags.append("EOS versions")
    elif meta.end_of_life:
        rtype = "Upgrade" if acc.in_use else "Uninstall"
        title = (f"Upgrade {name}: its release is no longer supported" if rtype == "Upgrade"
                 else f"Uninstall {name}: no longer supported and not in use")
        tags.append("EOS software")
    else:
        rtype = "AttentionRequired"
        title = f"Attention required: {name} has vulnerabilities with no fix yet"
    if zero_day:
        tags.append("zero-day")
    vulns = list(meta.vulns.values())
    threats = _threat_labels(vulns, acc.active_alert, zero_day)
    top = sorted(vulns, key=lambda v: (-v.hazard, v.id))[:TOP_VULNS]
    severity = max((v.impact * 10 for v in vulns), default=0.0)
    category = "OS" if meta.managers & {"kernel"} else "Application"
    return {
        "id": software_rec_id(meta.unit_id), "kind": "software", "product_id": meta.unit_id, "config_id": None,
        "product_name": name, "vendor": meta.vendor, "name": title[:512], "recommended_version": main_version,
        "recommended_versions": recommended, "recommended_program": "", "recommended_vendor": "",
        "category": category, "sub_category": ", ".join(sorted(meta.managers)),
        "severity_score": round(severity, 1), "weaknesses": len(vulns),
        "public_exploit": any(v.public_exploit or v.exploit_verified or v.exploit_in_kit or v.kev for v in vulns),
        "exploit_verified": any(v.exploit_verified or v.kev for v in vulns),
        "exploit_in_kit": any(v.exploit_in_kit for v in vulns), "kev": any(v.kev for v in vulns),
        "active_alert": acc.active_alert, "associated_threats": threats, "remediation_type": rtype,
        "config_score_impact": 0.0, "related_component": name, "tags": tags, "zero_day": zero_day,
        "end_of_life": bool(meta.end_of_life),
        "details": {"softwareIds": sorted(meta.software_ids), "ecosystems": sorted(meta.ecosystems),
                    "matchNames": sorted(meta.match_names)},
        "top": [{"id": v.id, "hazard": round(v.hazard, 4), "reason": v.reason, "severity": v.severity,
                 "cvss": v.cvss, "epss": v.epss, "kev": v.kev} for v in top],
    }


def config_recommendation(check_id: str, info: Mapping[str, Any], acc: RecAcc) -> dict[str, Any]:
    name = str(info.get("name") or check_id)
    impact = float(info.get("impact") or 0)
    return {
        "id": config_rec_id(check_id), "kind": "configuration", "product_id": None, "config_id": check_id,
        "product_name": str(info.get("component") or info.get("category") or ""), "vendor": "",
        "name": name[:512], "recommended_version": "", "recommended_versions": {}, "recommended_program": "",
        "recommended_vendor": "", "category": str(info.get("category") or "SecurityControls")[:32],
        "sub_category": str(info.get("subcategory") or "")[:128], "severity_score": round(impact, 1),
        "weaknesses": 0, "public_exploit": False, "exploit_verified": False, "exploit_in_kit": False,
        "kev": False, "active_alert": False, "associated_threats": [], "remediation_type": "ConfigurationChange",
        "config_score_impact": float(info.get("scoreImpact") or 0.0),
        "related_component": str(info.get("component") or info.get("subcategory") or info.get("category") or "")[:256],
        "tags": [], "zero_day": False, "end_of_life": False,
        "details": {"remediation": info.get("remediation") or ""}, "top": [],
    }


def _threat_labels(vulns: list[VulnInfo], active_alert: bool, zero_day: bool) -> list[str]:
    out = []
    if active_alert:
        out.append("ActiveAlert")
    if any(v.kev for v in vulns):
        out.append("KnownExploited")
    if any(v.kev_ransomware for v in vulns):
        out.append("Ransomware")
    if any(v.exploit_in_kit for v in vulns):
        out.append("ExploitKit")
    if any(v.exploit_verified for v in vulns):
        out.append("VerifiedExploit")
    if any(v.public_exploit for v in vulns):
        out.append("PublicExploit")
    if any((v.epss or 0) >= 0.1 for v in vulns):
        out.append("HighEpss")
    if zero_day:
        out.append("ZeroDay")
    return out


def explanation(row: Mapping[str, Any], acc: RecAcc) -> dict[str, Any]:
    exposed = acc.exposed
    parts = []
    top = row.get("top") or []
    if row["kind"] == "software" and top:
        first = top[0]
        parts.append(f"{first['id']}: {first['reason']}")
        if row["weaknesses"] > 1:
            parts.append(f"{row['weaknesses']} weaknesses in all")
    elif row["kind"] == "configuration":
        parts.append(f"configuration impact {row['severity_score']}/10")
    parts.append(f"exposed on {exposed} device{'s' if exposed != 1 else ''}")
    if acc.in_use:
        parts.append(f"in use on {acc.in_use}")
    if acc.internet_facing:
        parts.append(f"{acc.internet_facing} internet-facing")
    if acc.high_value:
        parts.append(f"{acc.high_value} high-value")
    if acc.active_alert:
        parts.append("an active alert")
    return {
        "summary": "; ".join(parts),
        "formula": "Σ over exposed devices of threat × breach likelihood × business value",
        "threat": {"total": round(acc.threat, 4), "perDevice": round(acc.threat / exposed, 4) if exposed else 0.0,
                   "topVulnerabilities": top},
        "breachLikelihood": {"exposedDevices": exposed, "inUseDevices": acc.in_use,
                             "internetFacingDevices": acc.internet_facing,
                             "inUseFactor": IN_USE_LIKELIHOOD, "notInUseFactor": NOT_IN_USE_LIKELIHOOD,
                             "internetFacingFactor": exposure.INTERNET_FACING_MULTIPLIER},
        "businessValue": {"highValueDevices": acc.high_value, "lowValueDevices": acc.low_value,
                          "factors": BUSINESS_VALUE},
        "activeAlert": acc.active_alert,
    }


# --- the API view ------------------------------------------------------------------------------

def trend(now_exposed: int, week_ago: int | None) -> str:
    if week_ago is None:
        return "New"
    if now_exposed > week_ago:
        return "Rising"
    if now_exposed < week_ago:
        return "Falling"
    return "Stable"


def _iso(t: Any) -> Any:
    return t.isoformat() if isinstance(t, (dt.datetime, dt.date)) else t


def static_api(m: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a recommendation (Defender's names) that do not depend on the caller's groups;
    ``m``: the row's columns by name."""
    return {
        "id": m["id"], "productName": m["product_name"], "recommendationName": m["name"],
        "weaknesses": m["weaknesses"], "vendor": m["vendor"], "recommendedVersion": m["recommended_version"] or None,
        "recommendedVersions": m["recommended_versions"], "recommendedProgram": m["recommended_program"] or None,
        "recommendedVendor": m["recommended_vendor"] or None, "recommendationCategory": m["category"],
        "subCategory": m["sub_category"], "severityScore": m["severity_score"], "publicExploit": m["public_exploit"],
        "exploitVerified": m["exploit_verified"], "exploitInKit": m["exploit_in_kit"], "knownExploited": m["kev"],
        "activeAlert": m["active_alert"], "associatedThreats": m["associated_threats"],
        "remediationType": m["remediation_type"], "configScoreImpact": m["config_score_impact"],
        "nonProductivityImpactedAssets": 0,
        "exposedMachinesTrend": trend(m["exposed_machines_count"], m["exposed_machines_week_ago"]),
        "relatedComponent": m["related_component"], "tags": m["tags"], "zeroDay": m["zero_day"],
        "endOfSupport": m["end_of_life"], "priorityExplanation": m["priority_reason"],
        "firstSeen": _iso(m["first_seen"]), "lastUpdated": _iso(m["updated_at"]),
    }


def dynamic_api(status: str, impact: float, impact_after: float, total: int, exposed: int, exposed_after: int,
                in_use: int, priority: float) -> dict[str, Any]:
    """The fields that depend on the device groups counted (the whole tenant, or the caller's)."""
    return {"status": status, "exposureImpact": round(float(impact), 4),
            "exposureImpactAfterExceptions": round(float(impact_after), 4), "totalMachineCount": int(total),
            "exposedMachinesCount": int(exposed), "exposedMachinesAfterExceptions": int(exposed_after),
            "inUseMachinesCount": int(in_use), "priorityScore": round(float(priority), 6)}


def api_fragment(m: Mapping[str, Any]) -> str:
    """:func:`static_api` as JSON without its closing brace (see ``Recommendation.api_json``)."""
    return json.dumps(static_api(m), separators=(",", ":"), default=str)[:-1]


# --- exposed devices of one recommendation ----------------------------------------------------

def exposed_devices_stmt(rec: Recommendation) -> Select[Any] | None:
    """SELECT of (device id, last_used) of the devices exposed to ``rec`` (tenant session)."""
    if rec.kind == "configuration":
        stmt = config.failing_devices_stmt(rec.config_id or "")
        return stmt
    d = rec.details or {}
    match_names = d.get("matchNames") or []
    ecosystems = d.get("ecosystems") or []
    if not match_names or not ecosystems:
        return None
    return (select(DevicePackage.device_id)
            .join(PackageVersion, PackageVersion.id == DevicePackage.package_version_id)
            .where(PackageVersion.match_name.in_(match_names), PackageVersion.ecosystem.in_(ecosystems),
                   exists().where(PackageVersionVuln.package_version_id == DevicePackage.package_version_id))
            .distinct())


def exposed_device_ids(s: Session, rec: Recommendation) -> set[str]:
    stmt = exposed_devices_stmt(rec)
    if stmt is None:
        return set()
    return {str(r[0]) for r in s.execute(stmt)}


def unit_findings_stmt(rec: Recommendation) -> Select[Any] | None:
    """Open findings of a software recommendation: device, vulnerability, software, version, fix, last used."""
    d = rec.details or {}
    if rec.kind != "software" or not d.get("matchNames"):
        return None
    return (findings.findings_select(DevicePackage.device_id, PackageVersionVuln.vulnerability_id,
                                     PackageVersion.software_id, PackageVersion.name, PackageVersion.version,
                                     PackageVersionVuln.fixed_version, DevicePackage.last_used)
            .where(PackageVersion.match_name.in_(d["matchNames"]), PackageVersion.ecosystem.in_(d["ecosystems"])))


def active_device_ids(s: Session, now: dt.datetime) -> set[str]:
    return set(s.scalars(select(Device.id).where(exposure.is_active_expr(now))))
