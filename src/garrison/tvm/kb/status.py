"""Feed status: per feed, when it last synced and succeeded, what it holds and its last error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from garrison.store.db import Store
from garrison.store.models.kb import Advisory, FeedSource, Vulnerability


def feeds_status(store: Store) -> list[dict[str, Any]]:
    """One dict per feed: name, url, last_sync, last_success, record_count (records in its last import),
    error, stats, and what the knowledge base holds from it (``advisories`` for advisory feeds,
    ``vulnerabilities`` flagged for enrichment feeds)."""
    with store.system() as s:
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
