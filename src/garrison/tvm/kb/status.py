"""Feed status: per feed, when it last synced and succeeded, what it holds and its last error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.store.db import Store
from garrison.store.models.kb import Advisory, AffectedPackage, FeedSource, Vulnerability

MAX_RELEASES = 200  # listed per feed


def covered_releases(s: Session) -> set[str]:
    """Every ecosystem (distro release or package ecosystem) some imported advisory covers: a device whose
    release is not among them has no data, not "no vulnerabilities"."""
    return set(s.scalars(select(AffectedPackage.ecosystem).distinct()))


def feeds_status(store: Store) -> list[dict[str, Any]]:
    """One dict per feed: name, url, last_sync, last_success, record_count (records in its last import),
    error, stats, what the knowledge base holds from it (``advisories`` for advisory feeds,
    ``vulnerabilities`` flagged for enrichment feeds) and, for advisory feeds, the ``releases`` (OSV
    ecosystems: ``Ubuntu:20.04:LTS``, ``Alpine:v3.11``, ``PyPI``…) its records cover."""
    with store.system() as s:
        releases: dict[str, list[str]] = {}
        for source, eco in s.execute(select(Advisory.source, AffectedPackage.ecosystem).distinct()
                                     .join(AffectedPackage, AffectedPackage.advisory_id == Advisory.id)):
            releases.setdefault(source, []).append(eco)
        feeds = s.execute(select(FeedSource).order_by(FeedSource.name)).scalars().all()
        advisories = {
            source: count
            for source, count in s.execute(select(Advisory.source, func.count()).group_by(Advisory.source))
        }
        flags = {
            "kev": s.scalar(select(func.count()).where(Vulnerability.kev.is_(True))),
            "epss": s.scalar(select(func.count()).where(Vulnerability.epss.is_not(None))),
            "exploitdb": s.scalar(select(func.count()).where(Vulnerability.public_exploit.is_(True))),
            "metasploit": s.scalar(select(func.count()).where(Vulnerability.exploit_in_kit.is_(True))),
        }
        out: list[dict[str, Any]] = []
        for f in feeds:
            importer = f.name.split(":", 1)[0]
            held: dict[str, Any] = {}
            if importer in advisories:
                held["advisories"] = advisories[importer]
                held["releases"] = sorted(releases.get(importer, []))[:MAX_RELEASES]
            if importer in flags:
                held["vulnerabilities"] = flags[importer]
            out.append({
                "name": f.name,
                "importer": importer,
                "url": f.url,
                "last_sync": f.last_sync,
                "last_success": f.last_success,
                "record_count": f.record_count,
                "error": f.error,
                "stats": dict(f.stats or {}),
                "etag": f.etag,
                "last_modified": f.last_modified,
                **held,
            })
        return out
