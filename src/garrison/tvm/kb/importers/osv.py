"""OSV records (https://ossf.github.io/osv-schema/), JSON or YAML, one per file or in lists.

Covers every ecosystem OSV publishes: distro advisories (USN, UBUNTU-CVE, DSA/DLA, DEBIAN-CVE, Alpine,
Red Hat/Rocky/Alma, SUSE, Chainguard/Wolfi) and package databases (GHSA, PYSEC, Go, RustSec, npm, Maven…).
For Debian/Ubuntu the package name is the source package, as OSV gives it; PyPI names are PEP 503
normalised. CVSS v3 base scores are computed from the vectors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import yaml

from garrison.tvm.kb.cvss import (
    CvssError,
    base_score_v3,
    base_score_v4,
    severity_from_score,
    severity_from_text,
)
from garrison.tvm.kb.records import (
    ADVISORY_ID_RE,
    CVE_RE,
    MAX_LIST,
    MAX_TEXT,
    MAX_VERSIONS,
    RANK_DISTRO,
    RANK_PACKAGE_DB,
    AdvisoryRecord,
    Affected,
    FieldError,
    Record,
    RecordError,
    VulnInfo,
    bounded_raw,
    canonical_json,
    cve_of,
    normalise_pypi,
    opt_dict,
    opt_list,
    opt_str,
    parse_time,
    req_str,
    str_list,
)
from garrison.tvm.kb.registry import Importer, register_importer

DISTROS = {
    "AlmaLinux", "Alpine", "Amazon Linux", "Azure Linux", "Bitnami", "CBL-Mariner", "Chainguard", "Debian",
    "Echo", "Mageia", "MinimOS", "openEuler", "openSUSE", "Photon OS", "Red Hat", "Rocky Linux", "SUSE",
    "Ubuntu", "Wolfi",
}
# Distro errata whose ``related`` field lists the CVEs they fix.
_FIX_ADVISORY_RE = re.compile(r"^(RLSA|RLBA|ALSA|ALBA|ALEA|RHSA|RHBA|RHEA|ELSA|SUSE-SU|openSUSE-SU|MGASA)-")
_EVENT_KEYS = ("introduced", "fixed", "last_affected", "limit")
_RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")
_PRIORITY_ORDER = ["negligible", "low", "medium", "high", "critical"]
# Red Hat files advisories under product streams ("Red Hat:enterprise_linux:9::appstream",
# "…:9::baseos", RHEL 10: "…:10.1"), hosts know only their release ("Red Hat:9", from os-release).
# The main RHEL streams of a major release become that release; EUS/AUS/E4S/TUS/ELS streams
# ("Red Hat:rhel_eus:9.2::baseos") and other products stay as they are: they apply only to hosts
# with that subscription, which an inventory cannot tell.
_RHEL_STREAM_RE = re.compile(r"^Red Hat:enterprise_linux:(\d+)(?:\.\d+)?(?:::?[A-Za-z0-9_.-]*)*$")

ECOSYSTEMS = (
    "AlmaLinux", "Alpine", "Bitnami", "Chainguard", "crates.io", "Debian", "Go", "Hex", "Mageia", "Maven", "npm",
    "NuGet", "openSUSE", "Packagist", "Pub", "PyPI", "Red Hat", "Rocky Linux", "RubyGems", "SUSE", "Ubuntu", "Wolfi",
)


def _yaml_load(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C build of safe_load
    return yaml.load(text, Loader=loader)


@register_importer
class OsvImporter(Importer):
    name = "osv"
    priority = 50
    default_urls: ClassVar[dict[str, str]] = {
        f"{eco}/all.zip": f"https://osv-vulnerabilities.storage.googleapis.com/{eco}/all.zip" for eco in ECOSYSTEMS
    }

    def sniff(self, head: bytes) -> bool:
        stripped = head.lstrip()
        if stripped[:1] in (b"{", b"["):
            if any(m in head for m in (b'"sourceIdentifier"', b'"catalogVersion"', b'"distroversion"')):
                return False
            return b'"id"' in head and (b'"modified"' in head or b'"affected"' in head)
        return (
            re.search(rb"(?m)^id:\s*['\"]?[A-Za-z0-9]", head) is not None
            and re.search(rb"(?m)^(modified|affected):", head) is not None
        )

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield RecordError(f"{origin}: not UTF-8 text: {exc}")
            return
        try:
            stripped = text.lstrip()
            doc = json.loads(text) if stripped[:1] in ("{", "[") else _yaml_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            yield RecordError(f"{origin}: not valid JSON/YAML: {str(exc)[:200]}")
            return
        if isinstance(doc, dict) and isinstance(doc.get("vulns"), list):
            doc = doc["vulns"]  # an OSV API query response
        items = doc if isinstance(doc, list) else [doc]
        for i, obj in enumerate(items):
            where = origin if len(items) == 1 else f"{origin}[{i}]"
            if not isinstance(obj, dict):
                yield RecordError(f"{where}: record is not an object")
                continue
            rid = obj.get("id") if isinstance(obj.get("id"), str) else "?"
            try:
                yield parse_record(obj, where)
            except FieldError as exc:
                yield RecordError(f"{where}: {str(rid)[:128]}: {exc}")


def _severity_entries(entries: list[Any], path: str, info: VulnInfo, warnings: list[str]) -> str | None:
    """Fill CVSS fields of ``info`` from OSV severity entries; returns a distro priority if one is given."""
    priority = None
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FieldError(f"{path}[{i}]", "not an object")
        kind = entry.get("type")
        score = entry.get("score")
        if not isinstance(kind, str) or not isinstance(score, str) or len(score) > 512:
            raise FieldError(f"{path}[{i}]", "type and score must be strings")
        if kind == "CVSS_V3":
            try:
                value = base_score_v3(score)
            except CvssError as exc:
                warnings.append(f"{path}[{i}].score: ignored: {exc}")
                continue
            if info.cvss_v3_score is None or value > info.cvss_v3_score:
                info.cvss_v3_vector, info.cvss_v3_score = score, value
        elif kind == "CVSS_V4":
            try:
                value = base_score_v4(score)
            except CvssError as exc:
                warnings.append(f"{path}[{i}].score: ignored: {exc}")
                continue
            if info.cvss_v4_score is None or value > info.cvss_v4_score:
                info.cvss_v4_vector, info.cvss_v4_score = score, value
        elif kind == "Ubuntu":
            priority = score.lower()
            info.severity = info.severity or severity_from_text(score)
    return priority


def _max_priority(values: list[str]) -> str | None:
    known = [v for v in values if v in _PRIORITY_ORDER]
    if known:
        return max(known, key=_PRIORITY_ORDER.index)
    return values[0] if values else None


def _ranges(raw: list[Any], path: str) -> list[dict[str, Any]]:
    out = []
    for i, rng in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(rng, dict):
            raise FieldError(p, "not an object")
        kind = rng.get("type")
        if kind not in _RANGE_TYPES:
            raise FieldError(f"{p}.type", f"must be one of {', '.join(_RANGE_TYPES)}")
        events = []
        for j, ev in enumerate(opt_list(rng, "events", f"{p}.")):
            if not isinstance(ev, dict) or len(ev) != 1:
                raise FieldError(f"{p}.events[{j}]", "must be an object with exactly one key")
            (key, value), = ev.items()
            if key not in _EVENT_KEYS:
                raise FieldError(f"{p}.events[{j}]", f"unknown event {str(key)[:32]!r}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not value or len(value) > 256:
                raise FieldError(f"{p}.events[{j}].{key}", "not a version string")
            events.append({key: value})
        item: dict[str, Any] = {"type": kind, "events": events}
        if kind == "GIT":
            repo = opt_str(rng, "repo", f"{p}.", max_len=1024)
            if repo:
                item["repo"] = repo
        out.append(item)
    return out


def host_ecosystem(ecosystem: str) -> str:
    """The ecosystem a host reports for the packages an advisory's ``affected`` entry names."""
    m = _RHEL_STREAM_RE.match(ecosystem)
    return f"Red Hat:{m.group(1)}" if m else ecosystem


def parse_record(obj: dict[str, Any], origin: str) -> AdvisoryRecord:
    rid = req_str(obj, "id", "", max_len=128)
    if not ADVISORY_ID_RE.match(rid):
        raise FieldError("id", f"not an advisory id: {rid[:64]!r}")
    warnings: list[str] = []
    aliases = str_list(obj, "aliases", "")
    upstream = str_list(obj, "upstream", "")
    related = str_list(obj, "related", "")
    modified = parse_time(obj.get("modified"), "modified")
    published = parse_time(obj.get("published"), "published")
    withdrawn = parse_time(obj.get("withdrawn"), "withdrawn") is not None
    summary = opt_str(obj, "summary", "", cut=True) or ""
    details = opt_str(obj, "details", "", cut=True) or ""

    record_info = VulnInfo(
        description=(details or summary)[:MAX_TEXT] or None, published=published, modified=modified
    )
    _severity_entries(opt_list(obj, "severity", ""), "severity", record_info, warnings)
    top_db = opt_dict(obj, "database_specific", "")
    if isinstance(top_db.get("cwe_ids"), list):
        record_info.cwes = [c for c in top_db["cwe_ids"] if isinstance(c, str) and len(c) < 32][:50]
    record_info.severity = record_info.severity or severity_from_text(top_db.get("severity"))
    refs = []
    for i, ref in enumerate(opt_list(obj, "references", "")):
        if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
            raise FieldError(f"references[{i}]", "not an object with a url")
        if len(ref["url"]) <= 2048 and ref["url"] not in refs:
            refs.append(ref["url"])
    record_info.references = refs[:200]

    affected: list[Affected] = []
    per_cve: dict[str, VulnInfo] = {}
    ecosystems: list[str] = []
    for i, aff in enumerate(opt_list(obj, "affected", "", max_len=MAX_LIST)):
        p = f"affected[{i}]"
        if not isinstance(aff, dict):
            raise FieldError(p, "not an object")
        pkg = aff.get("package")
        if pkg is None:
            continue  # GIT-only entries name no package
        if not isinstance(pkg, dict):
            raise FieldError(f"{p}.package", "not an object")
        ecosystem = host_ecosystem(req_str(pkg, "ecosystem", f"{p}.package.", max_len=128))
        name = req_str(pkg, "name", f"{p}.package.", max_len=512)
        base = ecosystem.split(":", 1)[0]
        ecosystems.append(base)
        if base == "PyPI":
            name = normalise_pypi(name)
        ranges = _ranges(opt_list(aff, "ranges", f"{p}."), f"{p}.ranges")
        versions = str_list(aff, "versions", f"{p}.", max_len=MAX_VERSIONS)
        eco_specific = opt_dict(aff, "ecosystem_specific", f"{p}.")
        db_specific = opt_dict(aff, "database_specific", f"{p}.")
        # Per-package severities: Ubuntu's cves_map carries each CVE's CVSS and priority.
        priorities: list[str] = []
        cves_map = db_specific.get("cves_map")
        if isinstance(cves_map, dict) and isinstance(cves_map.get("cves"), list):
            for j, entry in enumerate(cves_map["cves"][:MAX_LIST]):
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    raise FieldError(f"{p}.database_specific.cves_map.cves[{j}]", "not an object with an id")
                cve = cve_of(entry["id"])
                if not cve:
                    continue
                info = per_cve.setdefault(cve, VulnInfo())
                sev = entry.get("severity")
                prio = _severity_entries(
                    sev if isinstance(sev, list) else [], f"{p}.database_specific.cves_map.cves[{j}].severity",
                    info, warnings,
                )
                if prio:
                    priorities.append(prio)
        pkg_sev: str | None = None
        if base == "Ubuntu":
            if not priorities:
                for entry in opt_list(obj, "severity", ""):
                    if isinstance(entry, dict) and entry.get("type") == "Ubuntu" and isinstance(entry.get("score"), str):
                        priorities.append(entry["score"].lower())
            pkg_sev = _max_priority(priorities)
        elif base == "Debian":
            urgency = eco_specific.get("urgency")
            pkg_sev = urgency[:32] if isinstance(urgency, str) else None
        entry = Affected(ecosystem=ecosystem, package=name, ranges=ranges, versions=versions, severity=pkg_sev)
        if entry not in affected:  # Red Hat repeats a package per stream (appstream, baseos…)
            affected.append(entry)
        for j, entry in enumerate(opt_list(aff, "severity", f"{p}.")):
            _severity_entries([entry], f"{p}.severity", record_info, warnings)

    # The CVEs this record is about.
    named = [rid, *aliases, *upstream]
    if _FIX_ADVISORY_RE.match(rid):
        named += related
    cves = list(dict.fromkeys(c for c in (cve_of(x) for x in named) if c))

    advisory_id = rid
    if CVE_RE.match(rid):
        # Old Alpine/Debian OSV records use the bare CVE id; OSV now names them ALPINE-CVE-…, and a
        # bare CVE id is kept free for the NVD record of the CVE.
        prefix = re.sub(r"[^A-Z0-9]+", "-", (ecosystems[0] if ecosystems else "OSV").upper()).strip("-")
        advisory_id = f"{prefix}-{rid}"

    rank = RANK_DISTRO if ecosystems and all(e in DISTROS for e in ecosystems) else RANK_PACKAGE_DB
    infos: dict[str, VulnInfo] = {"*": record_info}
    for cve, cinfo in per_cve.items():
        if cve in cves:
            infos[cve] = cinfo
    if record_info.cvss_v3_score is not None and record_info.severity is None:
        record_info.severity = severity_from_score(record_info.cvss_v3_score)

    dumped = canonical_json(obj)
    return AdvisoryRecord(
        id=advisory_id,
        source="osv",
        summary=(summary or details)[:1000],
        modified=modified,
        published=published,
        withdrawn=withdrawn,
        aliases=list(dict.fromkeys(aliases + upstream + ([rid] if advisory_id != rid else []))),
        raw=bounded_raw(obj, dumped),
        vulnerabilities=cves,
        affected=affected,
        info=infos,
        rank=rank,
        warnings=[f"{origin}: {rid}: {w}" for w in warnings],
    )
