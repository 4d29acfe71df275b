"""Audit log of every state-changing call."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from garrison.store.models.core import AuditEntry


def record(s: Session, tenant_id: int, actor: str, actor_type: str, action: str, *, target: str = "",
           method: str = "", path: str = "", status_code: int = 0, source_ip: str = "",
           details: dict[str, Any] | None = None) -> None:
    s.add(AuditEntry(tenant_id=tenant_id, actor=actor[:128], actor_type=actor_type, action=action[:128],
                     target=target[:256], method=method, path=path[:512], status_code=status_code,
                     source_ip=source_ip[:64], details=details or {}))


def to_api(e: AuditEntry) -> dict[str, Any]:
    return {"id": e.id, "timestamp": e.at, "actor": e.actor, "actorType": e.actor_type, "action": e.action,
            "target": e.target, "method": e.method, "path": e.path, "statusCode": e.status_code,
            "sourceIp": e.source_ip, "details": e.details}
