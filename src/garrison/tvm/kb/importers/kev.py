"""CISA Known Exploited Vulnerabilities catalog (JSON).

KEV means exploited in the wild: a listed CVE gets kev, its dates and ransomware use, and
public_exploit/exploit_verified. The catalog is the complete list, so a CVE that left it loses the flag.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from garrison.tvm.kb.records import (
    CVE_RE,
    RANK_KEV,
    Enrichment,
    FieldError,
    FullState,
    Record,
    RecordError,
    VulnInfo,
    opt_str,
    parse_date,
    req_str,
    str_list,
)
from garrison.tvm.kb.registry import Importer, register_importer

MAX_ENTRIES = 100_000


@register_importer
class KevImporter(Importer):
    name = "kev"
    priority = 10
    default_urls: ClassVar[dict[str, str]] = {
        "known_exploited_vulnerabilities.json":
            "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json",
    }

    def sniff(self, head: bytes) -> bool:
        # The catalog's JSON Schema names the same properties; it is not a catalog.
        return (
            head.lstrip()[:1] == b"{" and b'"catalogVersion"' in head and b'"vulnerabilities"' in head
            and b'"$schema"' not in head
        )

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            yield RecordError(f"{origin}: not valid JSON: {str(exc)[:200]}")
            return
        entries = doc.get("vulnerabilities") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
            yield RecordError(f"{origin}: vulnerabilities: missing, not a list or too long")
            return
        ids: set[str] = set()
        clean = True
        for i, entry in enumerate(entries):
            try:
                rec = _entry(entry, i)
            except FieldError as exc:
                clean = False
                yield RecordError(f"{origin}: vulnerabilities[{i}].{exc}")
                continue
            ids.add(rec.vulnerability_id)
            yield rec
        if clean:
            yield FullState("kev", ids)


def _entry(entry: Any, i: int) -> Enrichment:
    if not isinstance(entry, dict):
        raise FieldError("", "not an object")
    cve = req_str(entry, "cveID", "", max_len=32)
    if not CVE_RE.match(cve):
        raise FieldError("cveID", f"not a CVE id: {cve[:32]!r}")
    added = parse_date(entry.get("dateAdded"), "dateAdded")
    if added is None:
        raise FieldError("dateAdded", "missing")
    due = parse_date(entry.get("dueDate"), "dueDate")
    ransomware = opt_str(entry, "knownRansomwareCampaignUse", "", max_len=16) or ""
    description = opt_str(entry, "shortDescription", "", cut=True)
    name = opt_str(entry, "vulnerabilityName", "", max_len=512, cut=True)
    return Enrichment(
        vulnerability_id=cve,
        values={
            "kev": True, "kev_date_added": added, "kev_due_date": due, "kev_ransomware": ransomware,
            "public_exploit": True, "exploit_verified": True,
        },
        info=VulnInfo(description=description or name, cwes=str_list(entry, "cwes", "", item_len=32)),
        rank=RANK_KEV,
    )
