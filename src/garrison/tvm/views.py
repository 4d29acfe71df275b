"""Hunting-style tables of vulnerability management, as SQL views over the inventory and findings:

* ``DeviceTvmSoftwareInventory`` — TenantId, DeviceId, DeviceName, OSPlatform, OSVersion, OSArchitecture,
  SoftwareVendor, SoftwareName, SoftwareVersion, EndOfSupportStatus, ProductCodeCpe
* ``DeviceTvmSoftwareVulnerabilities`` — the same device and software columns, plus CveId,
  VulnerabilitySeverityLevel, RecommendedSecurityUpdate (the advisory with the fix, e.g. USN-4705-1) and
  RecommendedSecurityUpdateId (the fixed version; NULL when there is no fix yet)

The views are plain SQL that SQLite and PostgreSQL both run; they carry ``TenantId`` so that every query
over them is scoped by tenant (:func:`rows` reads them through ``garrison.store.db.run_sql``, which refuses
SQL that does not filter them on the session's tenant; advanced hunting must too). They are defined in
:mod:`garrison.store.models.tvm` (the storage layer, so that the migration can create them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from garrison.store.db import run_sql
from garrison.store.models.tvm import HUNTING_VIEWS, create_hunting_views, drop_hunting_views

VIEWS = tuple(HUNTING_VIEWS)
MAX_ROWS = 100_000


def create_views(bind: Connection) -> None:
    create_hunting_views(bind)


def drop_views(bind: Connection) -> None:
    drop_hunting_views(bind)


def rows(s: Session, view: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Rows of one view for the session's tenant (a tenant session), as dicts keyed by the Defender
    column names. Through run_sql: the tenant is the session's, bound by the storage layer."""
    if view not in HUNTING_VIEWS:
        raise ValueError(f"unknown view {view!r}; views: {', '.join(VIEWS)}")
    limit = max(0, min(limit, MAX_ROWS))
    result = run_sql(s, f'SELECT * FROM "{view}" WHERE "TenantId" = :tenant ORDER BY "DeviceId", '
                        f'"SoftwareName", "SoftwareVersion" LIMIT :limit', {"limit": limit})
    return [dict(r._mapping) for r in result]
