"""The Vulnerability entity: the columns its lists read and its one JSON shape (Defender's
Vulnerability API names, plus Garrison's EPSS, KEV, CWE and source fields).

Every route that answers vulnerabilities — ``/api/vulnerabilities…``, a software's, a machine's, a
recommendation's, a timeline event's — builds them with :func:`to_api`; the documented model is
``garrison.server.api.models.Vulnerability``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Select, Text, cast, literal, select
from sqlalchemy.orm import Session

from garrison.store.models.kb import Vulnerability as V
from garrison.tvm.kb.cvss import severity_source
from garrison.tvm.prioritisation import exposure


def _json_text(column: Any) -> Any:
    return cast(column, Text).label(column.key)


def json_list(text: str | None) -> list[Any]:
    """A JSON list column read as text (see COLUMNS); most are empty."""
    if not text or text == "[]":
        return []
    return json.loads(text) or []  # 'null' -> []


# The columns to_api reads: plain rows instead of ORM objects, no unused columns, and the JSON lists
# as text, parsed only when not empty — a dense machine has thousands of vulnerabilities and parsing
# 20,000 mostly empty lists was a fifth of building its page.
COLUMNS = (V.id, V.description, V.severity, V.cvss_v3_score, V.cvss_v3_vector, V.cvss_v4_score,
           V.cvss_v4_vector, _json_text(V.cwes), V.published_on, V.updated_on, V.public_exploit,
           V.exploit_verified, V.exploit_in_kit, _json_text(V.exploit_types), _json_text(V.exploit_uris),
           V.epss, V.epss_percentile, V.kev, V.kev_date_added, V.kev_due_date, V.kev_ransomware,
           _json_text(V.references), _json_text(V.sources), _json_text(V.info_ranks))


def to_api(r: Any) -> dict[str, Any]:
    """A row of COLUMNS + the exposed-device count (unpacked by position: thousands per page)."""
    (vid, description, severity, cvss_v3, cvss_v3_vector, cvss_v4, cvss_v4_vector, cwes, published_on, updated_on,
     public_exploit, exploit_verified, exploit_in_kit, exploit_types, exploit_uris, epss, epss_percentile, kev,
     kev_date_added, kev_due_date, kev_ransomware, references, sources, info_ranks, exposed) = r[:25]
    source = severity_source({"severity": severity, "cvss_v3_score": cvss_v3, "cvss_v3_vector": cvss_v3_vector,
                              "cvss_v4_score": cvss_v4, "cvss_v4_vector": cvss_v4_vector,
                              "info_ranks": json.loads(info_ranks) if info_ranks else {}})
    return {
        "id": vid, "name": vid, "description": description, "severity": severity, "severitySource": source,
        "cvssV3": cvss_v3, "cvssVector": cvss_v3_vector, "cvssV4": cvss_v4,
        "cvssV4Vector": cvss_v4_vector, "cwes": json_list(cwes), "exposedMachines": int(exposed or 0),
        "publishedOn": published_on, "updatedOn": updated_on,
        "publicExploit": public_exploit, "exploitVerified": exploit_verified, "exploitInKit": exploit_in_kit,
        "exploitTypes": json_list(exploit_types), "exploitUris": json_list(exploit_uris),
        "epss": epss, "epssPercentile": epss_percentile,
        "kev": kev, "kevDateAdded": kev_date_added, "kevDueDate": kev_due_date,
        "kevRansomware": kev_ransomware or None, "references": json_list(references)[:50],
        "sources": json_list(sources),
    }


def with_threat(r: Any) -> dict[str, Any]:
    """:func:`to_api` plus what drives the vulnerability's likelihood (``threatScore``, ``threatReason``:
    the prioritisation engine's hazard), for the lists that rank by it."""
    return {**to_api(r), "threatScore": round(exposure.hazard(r), 4), "threatReason": exposure.threat_reason(r)}


def by_id(s: Session, vulnerability_id: str, exposed: int) -> dict[str, Any] | None:
    row = s.execute(select(*COLUMNS, literal(exposed).label("exposed")).where(V.id == vulnerability_id)).first()
    return with_threat(row) if row is not None else None


def with_counts(sub: Any) -> Select[Any]:
    """COLUMNS followed by the columns of ``sub`` (a subquery with ``vulnerability_id`` first)."""
    return select(*COLUMNS, *list(sub.c)[1:]).join(sub, sub.c[0] == V.id)
