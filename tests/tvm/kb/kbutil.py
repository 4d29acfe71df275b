"""Query helpers for the knowledge-base tests (plain SQLAlchemy, no code under test)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from garrison.store.db import Store
from garrison.store.models.kb import (
    Advisory,
    AdvisoryVulnerability,
    AffectedPackage,
    KbChange,
    Vulnerability,
)


def vuln(store: Store, vid: str) -> Vulnerability | None:
    with store.system() as s:
        return s.get(Vulnerability, vid)


def advisory(store: Store, aid: str) -> Advisory | None:
    with store.system() as s:
        return s.get(Advisory, aid)


def links(store: Store, aid: str) -> set[str]:
    with store.system() as s:
        return set(s.scalars(select(AdvisoryVulnerability.vulnerability_id)
                             .where(AdvisoryVulnerability.advisory_id == aid)))


def affected(store: Store, aid: str) -> list[AffectedPackage]:
    with store.system() as s:
        return list(s.scalars(select(AffectedPackage).where(AffectedPackage.advisory_id == aid)
                              .order_by(AffectedPackage.id)))


def counts(store: Store) -> dict[str, int]:
    with store.system() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in
                (Vulnerability, Advisory, AdvisoryVulnerability, AffectedPackage, KbChange)}


def changes(store: Store, kind: str | None = None, vid: str | None = None) -> list[dict[str, Any]]:
    with store.system() as s:
        q = select(KbChange)
        if kind:
            q = q.where(KbChange.kind == kind)
        if vid:
            q = q.where(KbChange.vulnerability_id == vid)
        return [{"kind": c.kind, "vid": c.vulnerability_id, "source": c.source, "details": c.details}
                for c in s.scalars(q.order_by(KbChange.id))]
