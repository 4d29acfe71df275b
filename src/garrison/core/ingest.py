"""Upload handlers: one per batch kind, registered by the service that owns the data.

The server's agent endpoint looks the kind up here; the spine registers ``device``,
vulnerability management registers ``inventory`` and ``runtime``, configuration
assessment registers ``assessment``, EDR will register its telemetry kinds.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session

from garrison.core.errors import Invalid
from garrison.protocol import MAX_BATCH_BYTES, Batch
from garrison.registry import Registry
from garrison.store.db import Store, is_contention
from garrison.store.models.core import AgentUpload, Device

log = logging.getLogger("garrison.ingest")


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


UPLOAD_KINDS: Registry[UploadKind] = Registry("upload kind", name_of=lambda k: k.kind,
                                              unknown=lambda msg: Invalid(msg))
"""Registered by the service modules (``garrison.core.services.load_services`` discovers them)."""


def register_upload(kind: str, model: type[BaseModel]) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        UPLOAD_KINDS.register(UploadKind(kind, model, fn))
        return fn

    return deco


def validate(kind: str, payload: dict[str, Any]) -> BaseModel:
    """The payload parsed by its kind's model; ``Invalid`` names the kind and the first bad field."""
    entry = UPLOAD_KINDS[kind]
    try:
        return entry.model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise Invalid(f"invalid {kind} payload at {where or '(root)'}: {first.get('msg')}") from None


def ingest(session: Session, device: Device, kind: str, payload: dict[str, Any] | BaseModel,
           ctx: IngestContext) -> dict[str, Any] | None:
    parsed = payload if isinstance(payload, BaseModel) else validate(kind, payload)
    return UPLOAD_KINDS[kind].handler(session, device, parsed, ctx)


# --- the upload queue ----------------------------------------------------------------------
# The agent endpoint stores an accepted batch here (committed before the acknowledgement) and
# the worker process applies it: heavy uploads (an inventory snapshot) then cost the server a
# single short insert, and their SQL runs outside the process that answers the fleet.

MAX_ATTEMPTS = 5  # a batch failing this often is parked (state "failed"), not dropped
MAX_GZIP_MEMBERS = 16  # a gzip stream may be several members; an agent sends one


class BodyTooLarge(Invalid):
    status = 413
    code = "RequestTooLarge"


def inflate(raw: bytes, limit: int) -> bytes:
    """A gzip body inflated: every member, under ONE limit for all of them together.

    At most ``limit + 1`` bytes are ever produced: past the limit ``BodyTooLarge``, for a
    truncated or corrupt stream (or data after the last member that is not gzip) ``Invalid``.
    The agent endpoint accepts a body only through this, and the worker reads a queued body
    through it again, so the worker uses exactly the bytes that were validated.
    """
    parts: list[bytes] = []
    total = 0
    rest = raw
    try:
        for _ in range(MAX_GZIP_MEMBERS):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            part = d.decompress(rest, limit - total + 1)
            total += len(part)
            if total > limit:
                raise BodyTooLarge(f"decompressed body over {limit} bytes")
            if not d.eof:
                raise Invalid("bad gzip body: truncated stream")
            parts.append(part)
            rest = d.unused_data
            if not rest:
                return parts[0] if len(parts) == 1 else b"".join(parts)
    except zlib.error as exc:
        raise Invalid(f"bad gzip body: {exc}") from None
    raise Invalid(f"bad gzip body: more than {MAX_GZIP_MEMBERS} members")


def read_body(raw: bytes) -> bytes:
    """A queued body as JSON (bodies are stored as received, gzip-compressed or not)."""
    return inflate(raw, MAX_BATCH_BYTES) if raw[:2] == b"\x1f\x8b" else raw


def process_queue(store: Store, limit: int = 200, pause: Callable[[float], None] | None = None) -> int:
    """Apply up to ``limit`` queued uploads, oldest first; returns how many were taken off the queue.

    Safe with any number of workers on one state store (the server's own and ``garrison worker``
    processes): each upload is claimed, applied and deleted in ONE transaction that holds it
    exclusively (see ``_claim``), so a crash at any point leaves it queued (applied again from
    scratch) or done - never half applied, never twice. A device's uploads are applied in order
    and by one worker at a time: only a device's oldest queued upload can be claimed, so after a
    failure its later uploads wait for the next pass. ``pause(seconds)`` is called after each
    upload with the time it took (the SQLite worker gives the server's writers a turn at the
    single write lock).
    """
    with store.system() as s:
        heads = s.execute(select(AgentUpload.id, AgentUpload.tenant_id, AgentUpload.device_id)
                          .where(AgentUpload.state == "queued").order_by(AgentUpload.id).limit(limit)).all()
    blocked: set[str] = set()
    done = 0
    for upload_id, tenant_id, device_id in heads:
        if device_id in blocked:
            continue
        started = time.monotonic()
        try:
            applied = _apply_one(store, tenant_id, upload_id)
            if not applied:  # another worker has it, or an earlier upload of the device: leave it the rest
                blocked.add(device_id)
            done += applied
        except _Rejected as exc:
            done += 1
            _failed(store, tenant_id, upload_id, exc, park=True)
        except Exception as exc:  # noqa: BLE001 - one bad upload must not stop the others
            blocked.add(device_id)
            if is_contention(exc):  # another writer held the store: not the upload's fault, not counted
                log.warning("upload %s: the state store is busy (%s); applied at the next pass",
                            upload_id, _first_line(exc))
            else:
                _failed(store, tenant_id, upload_id, exc)
        if pause is not None:
            pause(time.monotonic() - started)
    return done


def _claim(s: Session, upload_id: int) -> bool:
    """Hold the upload for this transaction if it is still queued and its device's oldest queued one.

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock before the first read, so no other worker can
    apply or delete anything until this transaction ends. PostgreSQL: the row is locked ``FOR UPDATE
    SKIP LOCKED`` (a row another worker holds is skipped, not waited for); an earlier upload of the
    device that another worker is applying is still visible as queued, so this one waits its turn.
    """
    q = AgentUpload
    locked = select(q.device_id).where(q.id == upload_id, q.state == "queued")
    if s.get_bind().dialect.name == "sqlite":
        s.connection().exec_driver_sql("BEGIN IMMEDIATE")
    else:
        locked = locked.with_for_update(skip_locked=True)
    device_id = s.scalar(locked)
    if device_id is None:
        return False
    earlier = s.scalar(select(q.id).where(q.device_id == device_id, q.state == "queued", q.id < upload_id).limit(1))
    return earlier is None


def _apply_one(store: Store, tenant_id: int, upload_id: int) -> int:
    try:
        with store.tenant(tenant_id) as s:
            if not _claim(s, upload_id):
                return 0
            row = s.get(AgentUpload, upload_id)
            assert row is not None  # claimed above, in this transaction
            if row.kind not in UPLOAD_KINDS:
                # Accepted by a server that knew the kind: this worker runs other code. Retried, then parked.
                raise LookupError(f"upload kind {row.kind!r} is not registered in the worker")
            device = s.get(Device, row.device_id)
            reply = None
            if device is not None:
                try:
                    batch = Batch.model_validate_json(read_body(row.body))
                    reply = ingest(s, device, row.kind, batch.payload, IngestContext(
                        source_ip=row.source_ip, received_at=row.received_at, seq=row.seq))
                except (Invalid, ValidationError, OSError) as exc:
                    # Checked when accepted, so only a handler's own verdict lands here: retrying will
                    # not change it. Raised so that the session rolls back whatever the handler wrote.
                    raise _Rejected(str(exc)) from None
            this = (AgentUpload.id == upload_id, AgentUpload.state == "queued")
            if reply and reply.get("resync"):
                # The server passes this on at the device's next check-in (see take_resync).
                done = s.execute(update(AgentUpload).where(*this).values(state="resync", body=b"",
                                                                         error=",".join(reply["resync"]))
                                 .execution_options(synchronize_session=False))
            else:
                done = s.execute(delete(AgentUpload).where(*this).execution_options(synchronize_session=False))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise _Lost()  # not ours after all: roll back everything the handler wrote
    except _Lost:
        log.warning("upload %s was taken off the queue by another worker; its application was rolled back",
                    upload_id)
        return 0
    return 1


class _Rejected(Exception):
    pass


class _Lost(Exception):
    pass


def _failed(store: Store, tenant_id: int, upload_id: int, exc: Exception, park: bool = False) -> None:
    """Count the attempt; a rejected upload, or one failing too often, is parked (kept, not retried)."""
    if park:
        log.warning("upload %s rejected: %s", upload_id, exc)
    else:
        log.error("applying upload %s failed: %s", upload_id, _first_line(exc))
        log.debug("applying upload %s failed", upload_id, exc_info=exc)
    q = AgentUpload
    try:
        with store.tenant(tenant_id) as s:  # one statement: workers counting at once lose no attempt
            s.execute(update(q).where(q.id == upload_id, q.state == "queued")
                      .values(attempts=q.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:2000],
                              state="failed" if park else case((q.attempts + 1 >= MAX_ATTEMPTS, "failed"),
                                                               else_=q.state))
                      .execution_options(synchronize_session=False))
    except Exception:  # the store itself is failing: the next pass tries again
        log.exception("could not record the failure of upload %s", upload_id)


def _first_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (SQLAlchemy appends the SQL and a link)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:500]


def take_resync(store: Store) -> dict[str, list[str]]:
    """Device id -> kinds the worker found out of step (to be sent in full); taken off the queue."""
    out: dict[str, list[str]] = {}
    with store.system() as s:
        rows = s.execute(select(AgentUpload.id, AgentUpload.device_id, AgentUpload.error)
                         .where(AgentUpload.state == "resync")).all()
        if not rows:
            return out
        for _id, device_id, kinds in rows:
            for kind in (kinds or "").split(","):
                if kind and kind not in out.setdefault(device_id, []):
                    out[device_id].append(kind)
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            s.execute(delete(AgentUpload).where(AgentUpload.id.in_(ids[i : i + 500])))
    return out
