"""The agent endpoints (``/agent/v1/…``): enroll, check-in, batches, action results."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from garrison.core import access, actions, audit, devices, sensor_exclusions
from garrison.core.errors import GarrisonError, Invalid, Unauthorized
from garrison.core.ingest import IngestContext, inflate, ingest, take_resync, validate
from garrison.core.security import secret_matches
from garrison.edr.events import BatchIn
from garrison.edr.events.ingest import WriterBusy
from garrison.protocol import (
    ActionOut,
    ActionResult,
    Batch,
    BatchAck,
    CheckinRequest,
    CheckinResponse,
    EnrollRequest,
    EnrollResponse,
)
from garrison.protocol.bounds import json_has_nul
from garrison.protocol.events import EventAck, parse_batch_rows
from garrison.protocol.models import SensorExclusion
from garrison.server.auth import RateLimited, client_ip, public
from garrison.store.base import utcnow
from garrison.store.models.core import AgentBatch, AgentUpload, Device, MachineAction, Tenant

WRITERS = 4
_MA = MachineAction.__table__
_OPEN_ACTION = (select(_MA.c.id).where(_MA.c.tenant_id == bindparam("t"), _MA.c.device_id == bindparam("d"),
                                       _MA.c.status.in_(("Pending", "InProgress"))).limit(1))

router = APIRouter(prefix="/agent/v1", tags=["agent"], include_in_schema=True)
EXCLUSIONS_TTL = 30.0  # seconds a device's sensor exclusions are served from memory at check-in


@dataclass(frozen=True)
class DeviceAuth:
    device_id: str
    tenant_id: int
    offboarded: bool = False


async def _device(request: Request) -> DeviceAuth:
    """The device a request comes from: the declared dependency of every device route (``DEVICE``).
    ``check_routes`` refuses to start with an /agent/v1 route that does not declare it — this very
    dependency (``auth.route_device_auth`` compares identity, not a marker another function could copy)."""
    return authenticate_device(request)


DEVICE: Any = Depends(_device)


async def _json_body(request: Request, model: Any) -> Any:
    """Read (optionally gzip) JSON and validate it; decompression is bounded like the raw body."""
    return _validated(model, _no_nul(_inflate(request, await request.body())))


def _inflate(request: Request, raw: bytes) -> bytes:
    if request.headers.get("content-encoding", "").lower() == "gzip":
        return inflate(raw, request.app.state.settings.agent_max_body_bytes)
    return raw


def _no_nul(raw: bytes) -> bytes:
    """The body, unless a string in it holds U+0000 (PostgreSQL text cannot; see NulGuard)."""
    if json_has_nul(raw):
        raise _Unprocessable("invalid body: a string contains a NUL character (U+0000)")
    return raw


def _validated(model: Any, raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise _Unprocessable(f"invalid body at {where or '(root)'}: {first.get('msg')}") from None


class _Unprocessable(GarrisonError):
    status = 422
    code = "InvalidRequestBody"


def authenticate_device(request: Request) -> DeviceAuth:
    header = request.headers.get("authorization", "")
    if not header.startswith("Device ") or ":" not in header:
        raise Unauthorized("device authentication required")
    device_id, _, credential = header[7:].strip().partition(":")
    cache: dict[str, tuple[str, int, bool]] = request.app.state.device_cache
    entry = cache.get(device_id)
    if entry is None:
        with request.app.state.store.system() as s:
            row = s.execute(select(Device.credential_hash, Device.tenant_id, Device.offboarded_at)
                            .where(Device.id == device_id[:64])).first()
        if row is None or row[0] is None:
            raise Unauthorized("unknown device")
        entry = (row[0], row[1], row[2] is not None)
        if len(cache) > 500_000:
            cache.clear()
        cache[device_id] = entry
    if not secret_matches(entry[0], credential):
        raise Unauthorized("bad device credential")
    wait = request.app.state.device_limiter.hit(device_id)
    if wait > 0:
        raise RateLimited(wait)
    return DeviceAuth(device_id, entry[1], entry[2])


def forget_device(request_app: Any, device_id: str) -> None:
    request_app.state.device_cache.pop(device_id, None)


@router.post("/enroll", response_model=EnrollResponse)
@public  # no credentials yet: the enrollment secret in the body is checked by the handler
async def enroll(request: Request, response: Response) -> EnrollResponse:
    response.headers["Cache-Control"] = "no-store"  # the answer carries the device credential
    ip = client_ip(request)
    wait = request.app.state.auth_fail_limiter.hit("enroll:" + ip, cost=0.2)
    if wait > 0:
        raise RateLimited(wait)
    body: EnrollRequest = await _json_body(request, EnrollRequest)
    return await run_in_threadpool(_enroll, request, body, ip)


def _enroll(request: Request, body: EnrollRequest, ip: str) -> EnrollResponse:
    with request.app.state.writers:
        return _enroll_device(request, body, ip)


def _enroll_device(request: Request, body: EnrollRequest, ip: str) -> EnrollResponse:
    store = request.app.state.store
    with store.system() as s:
        secret = access.consume_enrollment_secret(s, body.secret)
        tenant_id = secret.tenant_id
        tenant_name = s.get(Tenant, tenant_id).name
    with store.tenant(tenant_id) as s:
        device, credential = devices.enroll(s, tenant_id, body.machine_key, body.hostname, body.agent_version)
        audit.record(s, tenant_id, f"device:{device.id}", "device", "enroll_device", target=device.id,
                     method="POST", path=request.url.path, status_code=200, source_ip=ip,
                     details={"hostname": body.hostname})
        device_id = device.id
    forget_device(request.app, device_id)
    settings = request.app.state.settings
    return EnrollResponse(device_id=device_id, credential=credential, tenant=tenant_name,
                          server_fingerprint=request.app.state.fingerprint,
                          server_certificate=request.app.state.cert_pem,
                          config_version=request.app.state.config_version,
                          checkin_interval=settings.checkin_interval)


@router.post("/checkin", response_model=CheckinResponse)
async def checkin(request: Request, who: DeviceAuth = DEVICE) -> CheckinResponse:
    body: CheckinRequest = await _json_body(request, CheckinRequest)
    now = utcnow()
    # The fast path of the whole fleet: one indexed read, no write (heartbeats are buffered).
    # Most devices have no open action: a plain Core read says so at a fraction of the cost of
    # an ORM session; only a device that has one goes through actions.pending_for_device.
    out: list[ActionOut] = []
    store = request.app.state.store
    # Sensor exclusions change rarely: read per device at most every EXCLUSIONS_TTL seconds (a change
    # through the settings API clears the cache at once; another server process sees it within the TTL).
    cached = request.app.state.exclusions_cache.get(who.device_id)
    with store.connection(who.tenant_id) as conn:  # tenant-bound: _OPEN_ACTION must name the tenant
        has_open = conn.execute(_OPEN_ACTION, {"t": who.tenant_id, "d": who.device_id}).first() is not None
        if cached is None or cached[0] < time.monotonic():
            items = sensor_exclusions.for_device(conn, who.tenant_id, who.device_id)
            cached = (time.monotonic() + EXCLUSIONS_TTL, items, sensor_exclusions.config_version(items))
            request.app.state.exclusions_cache[who.device_id] = cached
    _expires, exclusions, version = cached
    if has_open:
        with store.tenant(who.tenant_id) as s:
            pending = actions.pending_for_device(s, who.device_id, now)
            out = [ActionOut(id=a.id, type=a.type, params=a.params) for a in pending]
    request.app.state.heartbeats.note(who.device_id, body, client_ip(request), now, who.tenant_id)
    offboard = who.offboarded
    resync = request.app.state.resync.pop(who.device_id, [])
    # The configuration is sent only when the agent's version is not the current one.
    return CheckinResponse(actions=out, config_version=version,
                           checkin_interval=request.app.state.settings.checkin_interval,
                           resync=resync, offboard=offboard,
                           sensor_exclusions=None if body.config_version == version else
                           [SensorExclusion(**e) for e in exclusions])


@router.post("/batches", response_model=BatchAck)
async def upload_batch(request: Request, who: DeviceAuth = DEVICE) -> BatchAck:
    received = await request.body()
    batch: Batch = _validated(Batch, _no_nul(_inflate(request, received)))
    # An offboarded device's credential must not keep writing (a stolen one could rename the device or
    # poison its inventory): its reports are dropped, and the agent stops at its next check-in. (The
    # offboard route drops the device from the credential cache, so ``who`` knows.)
    if who.offboarded:
        return BatchAck(seq=batch.seq, status="discarded")
    # Off the event loop, so that check-ins of the rest of the fleet are not held up.
    if request.app.state.upload_queue:
        return await run_in_threadpool(_queue_batch, request, who, batch, received)
    return await run_in_threadpool(_ingest_batch, request, who, batch)


def _queue_batch(request: Request, who: DeviceAuth, batch: Batch, received: bytes) -> BatchAck:
    """Validate and store the batch for the worker; the ack means it is committed (see core.ingest)."""
    try:
        validate(batch.kind, batch.payload)
    except Invalid as exc:
        raise _Unprocessable(str(exc)) from None
    try:
        with request.app.state.writers, request.app.state.store.tenant(who.tenant_id) as s:
            if s.get(AgentBatch, (who.device_id, batch.seq)) is not None:
                return BatchAck(seq=batch.seq, status="duplicate")
            # The body is kept as it came (gzip or not): no second serialisation on the hot path.
            s.add(AgentUpload(device_id=who.device_id, seq=batch.seq, kind=batch.kind, body=received,
                              source_ip=client_ip(request)[:64], tenant_id=who.tenant_id))
            s.add(AgentBatch(device_id=who.device_id, seq=batch.seq, kind=batch.kind, tenant_id=who.tenant_id))
            s.flush()
    except IntegrityError:
        return BatchAck(seq=batch.seq, status="duplicate")  # the same batch raced in twice
    return BatchAck(seq=batch.seq, status="accepted")


def _ingest_batch(request: Request, who: DeviceAuth, batch: Batch) -> BatchAck:
    """Without a worker process (``--no-jobs``, tests): the batch is applied in the request."""
    store = request.app.state.store
    ctx = IngestContext(source_ip=client_ip(request), received_at=None, seq=batch.seq)
    try:
        with request.app.state.writers, store.tenant(who.tenant_id) as s:
            if s.get(AgentBatch, (who.device_id, batch.seq)) is not None:
                return BatchAck(seq=batch.seq, status="duplicate")
            device = devices.get_device(s, who.device_id)
            reply = ingest(s, device, batch.kind, batch.payload, ctx)
            s.add(AgentBatch(device_id=who.device_id, seq=batch.seq, kind=batch.kind, tenant_id=who.tenant_id))
            s.flush()
    except IntegrityError:
        # The same batch raced in twice: the first one won, this one is a duplicate.
        return BatchAck(seq=batch.seq, status="duplicate")
    except Invalid as exc:
        raise _Unprocessable(str(exc)) from None
    if reply and reply.get("resync"):
        request.app.state.resync.setdefault(who.device_id, []).extend(reply["resync"])
    return BatchAck(seq=batch.seq, status="accepted")


class _StoreBusy(GarrisonError):
    status = 503
    code = "ServiceUnavailable"


MAX_FUTURE = dt.timedelta(days=1)  # a sensor clock further ahead than this is wrong: the batch is refused
NAME_TTL = 300.0


@router.post("/events", response_model=EventAck)
async def upload_events(request: Request, who: DeviceAuth = DEVICE) -> EventAck:
    """Behaviour telemetry (garrison.protocol.events): acknowledged once durable in the event store,
    idempotent on (device, seq). It does not touch the state store's upload queue."""
    received = await request.body()
    batch, rows = await run_in_threadpool(_event_rows, request, received)
    seq: int = batch["seq"]
    if batch.get("device_id") is not None and batch["device_id"] != who.device_id:
        raise _Unprocessable("device_id in the body is not the authenticated device")
    if who.offboarded:
        return EventAck(seq=seq, status="discarded")
    name = await run_in_threadpool(_device_name, request, who)
    try:
        fut = request.app.state.events.writer.submit(BatchIn(
            who.tenant_id, who.device_id, name, seq, rows, drops=sum((batch.get("drops") or {}).values())))
    except WriterBusy as exc:
        raise _StoreBusy(str(exc)) from None
    stored = await asyncio.wrap_future(fut)
    return EventAck(seq=seq, status=stored.status, stored=stored.stored)


def _event_rows(request: Request, received: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate (CPU work: off the event loop) straight into rows of their tables (garrison.protocol.events)."""
    try:
        batch = parse_batch_rows(_inflate(request, received))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise _Unprocessable(f"invalid body at {where or '(root)'}: {first.get('msg')}") from None
    latest = dt.datetime.now(dt.UTC) + MAX_FUTURE
    rows: list[dict[str, Any]] = batch["events"]
    for i, row in enumerate(rows):
        ts = row["Timestamp"]
        if ts.tzinfo is None:
            row["Timestamp"] = ts = ts.replace(tzinfo=dt.UTC)
        if ts > latest:
            raise _Unprocessable(f"invalid body at events.{i}.Timestamp: more than a day in the future")
    return batch, rows


def _device_name(request: Request, who: DeviceAuth) -> str:
    """``DeviceName`` of the events: the device record's name (cached for a few minutes)."""
    cache: dict[str, tuple[float, str]] = request.app.state.event_device_names
    hit = cache.get(who.device_id)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1]
    with request.app.state.store.tenant(who.tenant_id) as s:
        device = s.get(Device, who.device_id)
        name = (device.computer_dns_name if device else "") or ""
    if len(cache) > 500_000:
        cache.clear()
    cache[who.device_id] = (now + NAME_TTL, name)
    return name


@router.post("/actions/{action_id}/result")
async def action_result(action_id: str, request: Request, who: DeviceAuth = DEVICE) -> dict[str, str]:
    body: ActionResult = await _json_body(request, ActionResult)
    if body.id != action_id:
        raise _Unprocessable("action id in the body does not match the URL")
    with request.app.state.store.tenant(who.tenant_id) as s:
        actions.record_result(s, who.device_id, action_id, body.status, body.result)
    return {"status": "recorded"}


def pass_on_resync(app: Any) -> None:
    """Full re-sends the worker asked for, handed to the devices at their next check-in."""
    for device_id, kinds in take_resync(app.state.store).items():
        pending = app.state.resync.setdefault(device_id, [])
        pending.extend(k for k in kinds if k not in pending)


def setup_state(app: Any) -> None:
    from garrison.core.heartbeats import HeartbeatBuffer
    from garrison.server.ratelimit import RateLimiter

    app.state.heartbeats = HeartbeatBuffer(app.state.store, app.state.settings.heartbeat_interval)
    app.state.device_cache = {}
    app.state.exclusions_cache = {}  # device id → (expires, sensor exclusions, config version); cleared on change
    app.state.event_device_names = {}
    app.state.resync = {}
    # Writes (enrollments, uploads) wait here rather than in the connection pool: waiting for the
    # database's write lock they would hold every pooled connection, and the check-ins, which read
    # on the event loop, would stall the whole loop waiting for one. More concurrent writers than
    # this buy nothing (SQLite has one write lock).
    app.state.writers = threading.BoundedSemaphore(WRITERS)
    # With a worker process, uploads are queued and applied there; without one, in the request.
    app.state.upload_queue = app.state.settings.run_jobs
    if app.state.upload_queue:
        app.state.heartbeats.hooks.append(lambda: pass_on_resync(app))
    app.state.config_version = 1
    # an agent checks in every minute and uploads a few batches; 120/min leaves room for catching up
    app.state.device_limiter = RateLimiter(600, burst=300)

