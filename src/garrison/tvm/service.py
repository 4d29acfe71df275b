"""Vulnerability management's hooks into the server: upload handlers and background jobs.

The server discovers this module at start (every ``service`` module: ``garrison.server.runner.load_services``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from garrison.core.ingest import IngestContext, register_upload
from garrison.core.jobs import system_job, tenant_job
from garrison.protocol import InventoryReport, RuntimeReport
from garrison.store.db import Store
from garrison.store.models.core import Device
from garrison.tvm import findings, inventory, matching

log = logging.getLogger("garrison.tvm")


@register_upload("inventory", InventoryReport)
def ingest_inventory(s: Session, device: Device, report: InventoryReport, ctx: IngestContext) -> dict[str, Any] | None:
    return inventory.apply_inventory(s, device, report, source="agent")


@register_upload("runtime", RuntimeReport)
def ingest_runtime(s: Session, device: Device, report: RuntimeReport, ctx: IngestContext) -> dict[str, Any] | None:
    return inventory.apply_runtime(s, device, report)


@system_job("tvm.match_pending", interval=60)
def match_pending_job(store: Store) -> None:
    """Safety net: ingest matches new package versions in its own transaction, but rows written by
    other paths (bulk loads, a future importer) are matched here within a minute."""
    with store.system() as s:
        stats = matching.match_pending(s, summaries=True)
    if stats.package_versions:
        log.info("matched %d pending package versions: %d findings", stats.package_versions, stats.findings)


_last_rebuild: dict[int, float] = {}  # tenant → when its counts were last rebuilt (this process)
REBUILD_EVERY = 6 * 3600  # seconds; also ages the "in use in the last 30 days" counts


# Matching books new findings into the per-group counts that a rebuild recounts from scratch.
@tenant_job("tvm.summaries", interval=600, conflicts=("tvm.match_pending",))
def summaries_job(store: Store, tenant_id: int) -> None:
    """Book devices that changed device group since they were counted; every few hours recount
    the tenant from scratch (repairs any drift and ages the in-use counts)."""
    last = _last_rebuild.get(tenant_id)
    if last is None or time.monotonic() - last > REBUILD_EVERY:
        findings.rebuild_summaries(store, tenant_id)
        _last_rebuild[tenant_id] = time.monotonic()
    else:
        findings.rebook_moved_devices(store, tenant_id)


# --- feeds: the knowledge base's functions followed by re-matching ---------------------------

def import_feeds(store: Store, paths: list[str], progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Import feed files into the knowledge base, then re-match what they changed."""
    from garrison.tvm.kb import import_paths

    result = import_paths(store, paths, progress)
    stats = matching.rematch_changed(store, result.changed_packages)
    return {**import_summary(result), "rematch": stats.as_dict()}


def sync_feeds(store: Store, sources: list[str] | None, mirrors: dict[str, str],
               progress: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Online sync (the knowledge base's ``sync``: conditional downloads, then import), then re-match."""
    from garrison.tvm.kb import sync

    result = sync(store, sources=sources, mirrors=mirrors or None, progress=progress)
    stats = matching.rematch_changed(store, result.total.changed_packages)
    feeds = [{"feed": f.feed, "url": f.url, "status": f.status, "httpStatus": f.http_status,
              "records": f.result.records if f.result else 0, "error": f.error} for f in result.feeds]
    return {"feeds": feeds, "total": import_summary(result.total), "rematch": stats.as_dict()}


def import_summary(result: Any) -> dict[str, Any]:
    if not hasattr(result, "records"):
        return {"result": str(result)}
    return {"files": result.files, "records": result.records, "unchanged": result.unchanged,
            "vulnerabilities": result.vulnerabilities, "changedPackages": len(result.changed_packages),
            "changedVulnerabilities": len(result.changed_vulnerabilities), "errors": result.error_count,
            "firstErrors": result.errors[:20], "skipped": result.skipped[:20], "byImporter": result.by_importer}


def feeds_status(store: Store) -> list[dict[str, Any]]:
    """One entry per feed (the knowledge base's status), with camelCase keys as the API uses."""
    from garrison.tvm.kb import feeds_status as kb_status

    return [{_camel(k): v for k, v in row.items()} for row in kb_status(store)]


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.capitalize() for w in rest)
