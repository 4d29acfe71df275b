"""Upload handlers: one per batch kind, registered by the service that owns the data.

The server's agent endpoint looks the kind up here; the spine registers ``device``,
vulnerability management registers ``inventory`` and ``runtime``, configuration
assessment registers ``assessment``, EDR will register its telemetry kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from garrison.core.errors import Invalid
from garrison.store.models.core import Device


@dataclass
class IngestContext:
    source_ip: str = ""
    received_at: Any = None
    seq: int = 0


Handler = Callable[[Session, Device, Any, IngestContext], dict[str, Any] | None]


@dataclass
class UploadKind:
    kind: str
    model: type[BaseModel]
    handler: Handler


UPLOAD_KINDS: dict[str, UploadKind] = {}


def register_upload(kind: str, model: type[BaseModel]) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        if kind in UPLOAD_KINDS:
            raise ValueError(f"upload kind {kind!r} registered twice")
        UPLOAD_KINDS[kind] = UploadKind(kind, model, fn)
        return fn

    return deco


def ingest(session: Session, device: Device, kind: str, payload: dict[str, Any], ctx: IngestContext) -> dict[str, Any] | None:
    entry = UPLOAD_KINDS.get(kind)
    if entry is None:
        raise Invalid(f"unknown upload kind {kind!r}")
    try:
        parsed = entry.model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise Invalid(f"invalid {kind} payload at {where or '(root)'}: {first.get('msg')}") from None
    return entry.handler(session, device, parsed, ctx)
