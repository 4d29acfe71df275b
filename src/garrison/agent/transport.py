"""Talking to the server: enrollment with TLS pinning, check-in, batches, action results.

Trust model. Enrollment connects over HTTPS trusting nothing yet (trust on first use),
unless a fingerprint was configured up front — then the certificate presented on that
connection must hash to it *before* the enrollment secret is sent. The server answers
with its certificate and fingerprint; the agent checks that the certificate it saw on
the enrollment connection is that certificate, saves it, and from then on uses an
``ssl.SSLContext`` whose only trust anchor is that certificate (no system CAs, no host
name check): a handshake with any other certificate fails before a byte is sent.

Enrollment uses :mod:`http.client` because it lets us read the peer certificate after
the handshake and before the request is written, on the same connection. Everything
else goes through one keep-alive ``httpx.Client``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import http.client
import json
import os
import random
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from garrison import __version__
from garrison.agent.spool import EVENTS_KIND, SpooledBatch
from garrison.protocol import (
    ActionResult,
    BatchAck,
    CheckinRequest,
    CheckinResponse,
    EnrollRequest,
    EnrollResponse,
)

M = TypeVar("M", bound=BaseModel)

API = "/agent/v1"
GZIP_ABOVE = 16 * 1024  # request bodies larger than this are sent gzip-compressed
# Answers after which sending the same thing again can never succeed: drop it and go on.
BATCH_REFUSED = (400, 413, 415, 422)
RESULT_REFUSED = (400, 404, 409, 410, 413, 422)  # e.g. the action was deleted meanwhile
USER_AGENT = f"garrison-agent/{__version__}"
IDENTITY_FILE = "identity.json"
CERT_FILE = "server.pem"


# --- errors -----------------------------------------------------------------------------

class TransportError(Exception):
    """A call did not succeed; ``retryable`` says whether trying again later can help."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Unauthorized(TransportError):
    """401: the device credential was revoked or the device offboarded. The agent stops."""

    retryable = False


class Rejected(TransportError):
    """413/422 (and 400/415): this batch (or action result) can never be accepted; drop it and go on."""

    retryable = False


class PinMismatch(TransportError):
    """The server presented a certificate other than the pinned one."""


class EnrollError(Exception):
    """Enrollment failed; the message is meant for the person running the agent.

    ``retryable``: the server could not be reached or was busy; trying later may work.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


# --- certificates -----------------------------------------------------------------------

def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pem_to_der(pem: str) -> bytes:
    try:
        return ssl.PEM_cert_to_DER_cert(pem.strip() + "\n")
    except ValueError as exc:
        raise EnrollError(f"the server sent an unreadable certificate: {exc}") from None


def tofu_context() -> ssl.SSLContext:
    """No verification: used only for the enrollment connection, which is checked by hand."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pinned_context(pem: str) -> ssl.SSLContext:
    """A client context whose one and only trust anchor is the pinned server certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # starts with an empty trust store
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # the pin identifies the server, not its name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=pem)
    # Accept the pinned certificate as an anchor even when it is not self-signed.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


# --- identity ---------------------------------------------------------------------------

@dataclass
class Identity:
    device_id: str
    credential: str
    server: str
    fingerprint: str | None  # None for plain http://
    tenant: str = ""
    enrolled_at: str = ""

    @property
    def authorization(self) -> str:
        return f"Device {self.device_id}:{self.credential}"


def ensure_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if state_dir.stat().st_uid == os.geteuid():
            state_dir.chmod(0o700)
    except OSError:
        pass


def write_private(path: Path, data: str, mode: int = 0o600) -> None:
    """Write atomically, readable by the owner only from the first byte on."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_identity(state_dir: Path) -> Identity | None:
    path = state_dir / IDENTITY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(Identity)}
        return Identity(**{k: v for k, v in data.items() if k in fields})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise EnrollError(f"{path} is unreadable ({exc}); remove it and enroll again") from None


def save_identity(state_dir: Path, identity: Identity, pem: str | None) -> None:
    ensure_state_dir(state_dir)
    if pem is not None:
        write_private(state_dir / CERT_FILE, pem)
    write_private(state_dir / IDENTITY_FILE, json.dumps(dataclasses.asdict(identity), indent=2) + "\n")


def load_pinned_pem(state_dir: Path) -> str:
    try:
        return (state_dir / CERT_FILE).read_text(encoding="ascii")
    except OSError as exc:
        raise EnrollError(f"the pinned server certificate {state_dir / CERT_FILE} is missing ({exc}); "
                          "remove identity.json and enroll again") from None


def forget_identity(state_dir: Path) -> None:
    for name in (IDENTITY_FILE, CERT_FILE):
        (state_dir / name).unlink(missing_ok=True)


# --- enrollment -------------------------------------------------------------------------

def _error_text(status: int, body: bytes) -> str:
    try:
        err = json.loads(body)["error"]
        return f"{err.get('message') or err.get('code')} (HTTP {status})"
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return f"HTTP {status}" + (f": {text}" if text else "")


def enroll(
    server: str,
    request: EnrollRequest,
    *,
    fingerprint: str | None = None,
    timeout: float = 30.0,
) -> tuple[Identity, str | None]:
    """Enroll with the server; returns the identity and the PEM to pin (None for http://).

    Raises :class:`EnrollError` with a message for people on every failure.
    """
    url = urllib.parse.urlsplit(server)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise EnrollError(f"server must be an https:// URL, got {server!r}")
    path = url.path.rstrip("/") + API + "/enroll"
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=timeout, context=tofu_context())
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    seen_der: bytes | None = None
    try:
        conn.connect()
        if isinstance(conn.sock, ssl.SSLSocket):
            seen_der = conn.sock.getpeercert(binary_form=True)
            if not seen_der:
                raise EnrollError(f"{server} presented no certificate")
            if fingerprint and fingerprint_der(seen_der) != fingerprint:
                raise EnrollError(
                    f"{server} presented a certificate with fingerprint {fingerprint_der(seen_der)}, "
                    f"not the configured {fingerprint}; the enrollment secret was not sent"
                )
        conn.request(
            "POST", path, body=request.model_dump_json().encode(),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        resp = conn.getresponse()
        body = resp.read()
    except EnrollError:
        raise
    except ssl.SSLError as exc:
        raise EnrollError(f"TLS handshake with {server} failed: {exc}", retryable=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise EnrollError(f"cannot reach {server}: {exc}", retryable=True) from None
    finally:
        conn.close()

    if resp.status != 200:
        busy = resp.status == 429 or resp.status >= 500
        raise EnrollError(f"enrollment {'failed' if busy else 'refused'}: {_error_text(resp.status, body)}",
                          retryable=busy)
    try:
        answer = EnrollResponse.model_validate_json(body)
    except ValidationError as exc:
        raise EnrollError(f"the server sent an invalid enrollment answer: {exc.errors()[0]['msg']}") from None

    pem: str | None = None
    pinned: str | None = None
    if seen_der is not None:
        pinned = fingerprint_der(seen_der)
        # The answer must describe the very certificate this connection was made with.
        if answer.server_fingerprint and answer.server_fingerprint.lower() != pinned:
            raise EnrollError(
                "the server's certificate does not match the fingerprint it announced "
                f"({pinned} seen, {answer.server_fingerprint} announced): refusing to pin it"
            )
        if answer.server_certificate and fingerprint_der(pem_to_der(answer.server_certificate)) != pinned:
            raise EnrollError("the certificate the server sent is not the one it presented: refusing to pin it")
        pem = ssl.DER_cert_to_PEM_cert(seen_der)
    identity = Identity(
        device_id=answer.device_id,
        credential=answer.credential,
        server=server.rstrip("/"),
        fingerprint=pinned,
        tenant=answer.tenant,
        enrolled_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return identity, pem


# --- the authenticated channel ----------------------------------------------------------

class Transport:
    """Authenticated calls of an enrolled agent over one pinned keep-alive connection."""

    def __init__(self, identity: Identity, pem: str | None, *, timeout: float = 30.0) -> None:
        self.identity = identity
        https = identity.server.startswith("https://")
        if https and not pem:
            raise EnrollError("no pinned certificate for an https:// server; enroll again")
        self._client = httpx.Client(
            base_url=identity.server + API,
            verify=pinned_context(pem) if https and pem else False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": identity.authorization, "User-Agent": USER_AGENT},
            trust_env=False,  # the same route as enrollment: no proxies from the environment
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        )

    def close(self) -> None:
        self._client.close()

    def checkin(self, request: CheckinRequest) -> CheckinResponse:
        resp = self._post("/checkin", request.model_dump_json().encode())
        return self._parse(resp, CheckinResponse)

    def send_batch(self, batch: SpooledBatch) -> BatchAck:
        if batch.kind == EVENTS_KIND:
            return self._send_events(batch)
        if batch.raw_size > GZIP_ABOVE:
            resp = self._post("/batches", batch.body, gzipped=True, permanent=BATCH_REFUSED)
        else:
            resp = self._post("/batches", batch.json_bytes(), permanent=BATCH_REFUSED)
        ack = self._parse(resp, BatchAck)
        if ack.seq != batch.seq:
            raise TransportError(f"server acknowledged batch {ack.seq} for batch {batch.seq}")
        return ack

    def _send_events(self, batch: SpooledBatch) -> BatchAck:
        """Telemetry goes to ``/events`` as an ``EventBatch`` (garrison.protocol.events), same seq."""
        from garrison.protocol.events import EventAck  # only agents with sensors pay for the table models

        doc = batch.document()
        body = json.dumps({"seq": batch.seq, "sent_at": doc["created_at"],
                           "events": doc["payload"].get("events", [])}, separators=(",", ":")).encode()
        ack = self._parse(self._post("/events", body, permanent=BATCH_REFUSED), EventAck)
        if ack.seq != batch.seq:
            raise TransportError(f"server acknowledged event batch {ack.seq} for batch {batch.seq}")
        return BatchAck(seq=ack.seq, status=ack.status)

    def post_result(self, result: ActionResult) -> None:
        action_id = urllib.parse.quote(result.id, safe="")
        self._post(f"/actions/{action_id}/result", result.model_dump_json().encode(), permanent=RESULT_REFUSED)

    # --- internals ----------------------------------------------------------------------

    def _post(self, path: str, body: bytes, *, gzipped: bool = False,
              permanent: tuple[int, ...] = ()) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        elif len(body) > GZIP_ABOVE:
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        try:
            try:
                resp = self._client.post(path, content=body, headers=headers)
            except httpx.RemoteProtocolError:
                # The server closed the kept-alive connection as we reused it. Every call of the
                # protocol is idempotent (batches by sequence number), so one immediate retry is safe.
                resp = self._client.post(path, content=body, headers=headers)
        except httpx.ConnectError as exc:
            if _is_verify_failure(exc):
                raise PinMismatch(
                    f"{self.identity.server} presented a certificate other than the pinned one "
                    f"({self.identity.fingerprint}); refusing to talk to it"
                ) from None
            raise TransportError(f"cannot reach {self.identity.server}: {_reason(exc)}") from None
        except httpx.TransportError as exc:
            raise TransportError(f"connection to {self.identity.server} failed: {_reason(exc)}") from None
        if resp.status_code < 300:
            return resp
        text = _error_text(resp.status_code, resp.content)
        status = resp.status_code
        if status == 401:
            raise Unauthorized(f"the server rejected the device credential: {text}", status=status)
        if status in permanent:
            raise Rejected(f"the server refused it for good: {text}", status=status)
        raise TransportError(f"{path}: {text}", status=status, retry_after=_retry_after(resp))

    @staticmethod
    def _parse(resp: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(resp.content)
        except ValidationError as exc:
            raise TransportError(f"the server sent an invalid answer: {exc.errors()[0]['msg']}") from None


def _is_verify_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# --- retry pacing -----------------------------------------------------------------------

class Backoff:
    """Exponential backoff with full jitter: wait uniform(0, min(cap, base·2^attempt))."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 32))
        self.attempts += 1
        delay = self._rng.uniform(0, ceiling)
        if retry_after is not None:  # the server asked for at least this long (within our cap)
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def reset(self) -> None:
        self.attempts = 0
