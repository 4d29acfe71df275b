"""NVD CVE API 2.0 (https://services.nvd.nist.gov/rest/json/cves/2.0): a response page
``{"resultsPerPage", "format": "NVD_CVE", "vulnerabilities": [{"cve": {...}}]}``, or one bare CVE
object as the API nests it (as mirrors such as fkie-cad/nvd-json-data-feeds store them).

NVD is the best-ranked source for a CVE's description, CVSS (v3.1/v3.0 and v4.0, Primary NVD metric
first), CWEs and dates. Each CVE is also kept as an advisory ``NVD-CVE-…`` (its CPE configurations are
evidence, and the CPE-matched entries for software no distro tracks: ``cpe_affected``); rejected CVEs are
withdrawn advisories.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from garrison.inventory.cpe import ANY, CpeError, parse_cpe
from garrison.tvm.kb.cvss import CvssError, base_score_v3
from garrison.tvm.kb.records import (
    CVE_RE,
    MAX_LIST,
    MAX_TEXT,
    RANK_NVD,
    AdvisoryRecord,
    Affected,
    FieldError,
    Record,
    RecordError,
    VulnInfo,
    bounded_raw,
    json_object,
    opt_dict,
    opt_list,
    parse_time,
    req_str,
)
from garrison.tvm.kb.registry import Importer, register_importer
from garrison.tvm.software import CPE_ECOSYSTEM

MAX_PAGE = 100_000


@register_importer
class NvdImporter(Importer):
    name = "nvd"
    priority = 20
    # Paged API, not a file: sync pages through it (garrison.tvm.kb.online).
    default_urls: ClassVar[dict[str, str]] = {"cves/2.0": "https://services.nvd.nist.gov/rest/json/cves/2.0"}

    def sniff(self, head: bytes) -> bool:
        if head.lstrip()[:1] != b"{":
            return False
        page = b'"NVD_CVE"' in head or (b'"resultsPerPage"' in head and b'"vulnerabilities"' in head)
        bare = b'"sourceIdentifier"' in head and b'"vulnStatus"' in head
        return page or bare

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        doc = json_object(data, origin)
        if isinstance(doc, RecordError):
            yield doc
            return
        if "vulnerabilities" in doc:
            items = doc["vulnerabilities"]
            if not isinstance(items, list) or len(items) > MAX_PAGE:
                yield RecordError(f"{origin}: vulnerabilities: not a list or too long")
                return
        else:
            items = [{"cve": doc}]
        for i, item in enumerate(items):
            cve = item.get("cve") if isinstance(item, dict) else None
            if not isinstance(cve, dict):
                yield RecordError(f"{origin}: vulnerabilities[{i}].cve: missing or not an object")
                continue
            try:
                yield parse_cve(cve)
            except FieldError as exc:
                yield RecordError(f"{origin}: vulnerabilities[{i}].cve.{exc}")


def _metric(metrics: dict[str, Any], keys: tuple[str, ...], path: str) -> tuple[str | None, float | None]:
    """Vector and score of the best metric: NVD's Primary one, else the first."""
    for key in keys:
        entries = opt_list(metrics, key, path)
        if not entries:
            continue
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("cvssData"), dict):
                raise FieldError(f"{path}{key}", "entry without cvssData")
        best = next((e for e in entries if e.get("type") == "Primary"), entries[0])
        data = best["cvssData"]
        vector, score = data.get("vectorString"), data.get("baseScore")
        if not isinstance(vector, str) or len(vector) > 512:
            raise FieldError(f"{path}{key}.cvssData.vectorString", "not a string")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0 <= score <= 10:
            raise FieldError(f"{path}{key}.cvssData.baseScore", "not a score between 0 and 10")
        return vector, float(score)
    return None, None


def parse_cve(cve: dict[str, Any]) -> AdvisoryRecord:
    cid = req_str(cve, "id", "", max_len=32)
    if not CVE_RE.match(cid):
        raise FieldError("id", f"not a CVE id: {cid[:32]!r}")
    published = parse_time(cve.get("published"), "published")
    modified = parse_time(cve.get("lastModified"), "lastModified")
    status = cve.get("vulnStatus")
    description = None
    for d in opt_list(cve, "descriptions", ""):
        if isinstance(d, dict) and d.get("lang") == "en" and isinstance(d.get("value"), str):
            description = d["value"][:MAX_TEXT]
            break
    metrics = opt_dict(cve, "metrics", "")
    v3_vector, v3_score = _metric(metrics, ("cvssMetricV31", "cvssMetricV30"), "metrics.")
    if v3_vector is not None:
        try:
            base_score_v3(v3_vector)
        except CvssError as exc:
            raise FieldError("metrics.cvssMetricV31.cvssData.vectorString", str(exc)) from None
    v4_vector, v4_score = _metric(metrics, ("cvssMetricV40",), "metrics.")
    cwes: list[str] = []
    for w in opt_list(cve, "weaknesses", ""):
        for d in (w.get("description") or []) if isinstance(w, dict) else []:
            value = d.get("value") if isinstance(d, dict) else None
            if isinstance(value, str) and value.startswith("CWE-") and value not in cwes:
                cwes.append(value)
    refs: list[str] = []
    for r in opt_list(cve, "references", ""):
        url = r.get("url") if isinstance(r, dict) else None
        if isinstance(url, str) and len(url) <= 2048 and url not in refs:
            refs.append(url)
    info = VulnInfo(
        description=description, cvss_v3_vector=v3_vector, cvss_v3_score=v3_score, cvss_v4_vector=v4_vector,
        cvss_v4_score=v4_score, cwes=cwes[:50], published=published, modified=modified, references=refs[:200],
    )
    affected, cpe_warnings = cpe_affected(cve)
    return AdvisoryRecord(
        id=f"NVD-{cid}",
        source="nvd",
        summary=(description or "")[:1000],
        modified=modified,
        published=published,
        withdrawn=status == "Rejected",
        aliases=[cid],
        raw=bounded_raw(cve),
        vulnerabilities=[cid],
        info={cid: info},
        affected=affected,
        rank=RANK_NVD,
        warnings=[f"{cid}: {w}" for w in cpe_warnings],
    )


_BOUNDS = ("versionStartIncluding", "versionStartExcluding", "versionEndExcluding", "versionEndIncluding")


def _bound(match: dict[str, Any], key: str, path: str) -> str | None:
    value = match.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise FieldError(f"{path}.{key}", "not a version string")
    return value


def cpe_affected(cve: dict[str, Any]) -> tuple[list[Affected], list[str]]:
    """NVD's vulnerable CPE matches for applications, as affected entries of the ``CPE`` ecosystem.

    Only these are ever matched, and only for software no distro or package database tracks
    (garrison.tvm.software). ``versionStart/End{In,Ex}cluding`` become introduced/fixed/last_affected
    events (``start_excluded`` marks an exclusive start, which OSV events cannot say); a criteria with a
    version and no bounds is that exact version; operating systems and hardware (parts o/h) are ignored,
    and so is the platform half of "application on platform" configurations (its matches are not
    vulnerable), as NVD's own matching for an application does.
    """
    by_product: dict[str, Affected] = {}
    warnings: list[str] = []
    seen = 0
    for ci, config in enumerate(opt_list(cve, "configurations", "")):
        nodes = config.get("nodes") if isinstance(config, dict) else None
        for ni, node in enumerate(nodes if isinstance(nodes, list) else []):
            if not isinstance(node, dict) or node.get("negate") is True:
                continue
            matches = node.get("cpeMatch")
            for mi, match in enumerate(matches if isinstance(matches, list) else []):
                path = f"configurations[{ci}].nodes[{ni}].cpeMatch[{mi}]"
                if not isinstance(match, dict) or match.get("vulnerable") is not True:
                    continue
                seen += 1
                if seen > MAX_LIST:
                    warnings.append(f"more than {MAX_LIST} CPE matches: the rest ignored")
                    return list(by_product.values()), warnings
                try:
                    cpe = parse_cpe(str(match.get("criteria", "")))
                except CpeError as exc:
                    warnings.append(f"{path}.criteria: ignored: {exc}")
                    continue
                if cpe.part != "a":
                    continue
                try:
                    start_in, start_ex, end_ex, end_in = (_bound(match, k, path) for k in _BOUNDS)
                except FieldError as exc:  # one bad match costs that match, not the CVE's record
                    warnings.append(f"ignored: {exc}")
                    continue
                rng: dict[str, Any] = {"type": "ECOSYSTEM", "events": []}
                if start_in or start_ex or end_ex or end_in:
                    rng["events"].append({"introduced": start_in or start_ex or "0"})
                    if start_ex:
                        rng["start_excluded"] = True
                    if end_ex:
                        rng["events"].append({"fixed": end_ex})
                    elif end_in:
                        rng["events"].append({"last_affected": end_in})
                elif cpe.version == ANY:
                    rng["events"].append({"introduced": "0"})  # every version
                elif cpe.full_version:
                    exact = cpe.full_version
                    rng["events"] += [{"introduced": exact}, {"last_affected": exact}]
                else:
                    continue  # NA: the product has no versions
                entry = by_product.setdefault(cpe.product_key, Affected(ecosystem=CPE_ECOSYSTEM, package=cpe.product_key))
                if rng not in entry.ranges:
                    entry.ranges.append(rng)
    return list(by_product.values()), warnings
