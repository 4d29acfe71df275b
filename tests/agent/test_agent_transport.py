"""Transport: backoff, TLS pinning on real sockets, and how each HTTP answer is treated.

The status-code cases run against a small real HTTPS server (stdlib ``http.server`` on
loopback) that answers what the protocol allows the real server to answer — 429 with
Retry-After, 503, 413, 422, 401 — which a healthy Garrison server cannot be made to do
on demand.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from garrison.agent.spool import Spool
from garrison.agent.transport import (
    GZIP_ABOVE,
    Backoff,
    EnrollError,
    Identity,
    PinMismatch,
    Rejected,
    Transport,
    TransportError,
    Unauthorized,
    enroll,
    load_identity,
    pinned_context,
    save_identity,
)
from garrison.protocol import ActionResult, CheckinRequest, EnrollRequest

# --- backoff ----------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    for attempt, ceiling in enumerate(ceilings):
        delays = []
        for i in range(200):
            b = Backoff(base=1.0, cap=300.0, rng=random.Random(i))
            b.attempts = attempt
            delays.append(b.next_delay())
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # jitter over the whole range
    b = Backoff(base=1.0, cap=300.0)
    for _ in range(40):
        assert b.next_delay() <= 300.0
    b.reset()
    assert b.attempts == 0 and b.next_delay() <= 1.0


def test_backoff_honours_retry_after_within_the_cap() -> None:
    b = Backoff(base=0.1, cap=10.0, rng=random.Random(3))
    assert b.next_delay(retry_after=5.0) >= 5.0
    assert b.next_delay(retry_after=3600.0) == 10.0


# --- certificates and a real HTTPS endpoint ---------------------------------------------


def make_cert(tmp: Path, name: str) -> tuple[Path, Path, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert_path, key_path, cert_path.read_text(), hashlib.sha256(der).hexdigest()


class Stub(ThreadingHTTPServer):
    """Answers each POST with the next scripted (status, headers, body); records what it got."""

    daemon_threads = True

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.received: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        body = gzip.decompress(raw) if encoding == "gzip" else raw
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "wire_bytes": len(raw),
                                     "json": json.loads(body)})
        status, headers, answer = self.server.script.pop(0)
        data = json.dumps(answer).encode()
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **headers}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, tuple[Path, Path, str, str]]:
    return {n: make_cert(tmp_path, n) for n in ("alpha", "beta")}


@pytest.fixture
def stub(certs: dict[str, tuple[Path, Path, str, str]]) -> Iterator[Stub]:
    cert, key, _pem, _fp = certs["alpha"]
    srv = Stub(cert, key)
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_pinned_context_trusts_exactly_the_pinned_certificate(stub: Stub, certs: dict[str, Any]) -> None:
    import socket

    port = stub.server_address[1]
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            pinned_context(certs["alpha"][2]).wrap_socket(raw) as tls:  # no host name check, pin only
        assert hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest() == certs["alpha"][3]
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
        pinned_context(certs["beta"][2]).wrap_socket(raw)
    # The system's CAs are not trusted either: a pinned context starts from an empty store.
    assert pinned_context(certs["beta"][2]).cert_store_stats()["x509_ca"] == 1


def identity_for(stub: Stub, fingerprint: str) -> Identity:
    return Identity(device_id="dev1", credential="cred1", server=stub.url, fingerprint=fingerprint)


def test_transport_refuses_another_certificate_before_sending(stub: Stub, certs: dict[str, Any]) -> None:
    t = Transport(identity_for(stub, certs["beta"][3]), certs["beta"][2])
    with pytest.raises(PinMismatch, match="pinned"):
        t.checkin(CheckinRequest(agent_version="0.1.0"))
    assert stub.received == []  # not one byte of the request reached the impostor
    t.close()


def test_checkin_sends_the_device_credential(stub: Stub, certs: dict[str, Any]) -> None:
    stub.script.append((200, {}, {"actions": [{"id": "a1", "type": "CollectInventory", "params": {}}],
                                  "checkin_interval": 30, "resync": ["inventory"]}))
    t = Transport(identity_for(stub, certs["alpha"][3]), certs["alpha"][2])
    resp = t.checkin(CheckinRequest(agent_version="0.1.0", drops={"device": 2}, spool_pending=3))
    assert resp.checkin_interval == 30 and resp.resync == ["inventory"] and resp.actions[0].id == "a1"
    got = stub.received[0]
    assert got["path"] == "/agent/v1/checkin"
    assert got["headers"]["Authorization"] == "Device dev1:cred1"
    assert got["json"]["drops"] == {"device": 2} and got["json"]["spool_pending"] == 3
    t.close()


def test_batches_above_16k_are_gzipped_and_acks_checked(stub: Stub, certs: dict[str, Any], tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    small = spool.put("device", {"hostname": "h"})
    large = spool.put("inventory", {"blob": "x" * (GZIP_ABOVE * 2)})
    t = Transport(identity_for(stub, certs["alpha"][3]), certs["alpha"][2])
    stub.script += [(200, {}, {"seq": small, "status": "accepted"}), (200, {}, {"seq": large, "status": "duplicate"}),
                    (200, {}, {"seq": 99, "status": "accepted"})]
    b_small, b_large = spool.pending()
    assert t.send_batch(b_small).status == "accepted"
    assert t.send_batch(b_large).status == "duplicate"
    assert "Content-Encoding" not in stub.received[0]["headers"]
    assert stub.received[1]["headers"]["Content-Encoding"] == "gzip"
    assert stub.received[1]["wire_bytes"] < GZIP_ABOVE  # what went over the wire was compressed
    assert stub.received[1]["json"]["seq"] == large and stub.received[1]["json"]["kind"] == "inventory"
    with pytest.raises(TransportError, match="acknowledged batch 99"):
        t.send_batch(b_small)  # an ack for another batch is not an ack
    t.close()
    spool.close()


@pytest.mark.parametrize(
    ("status", "headers", "error", "retryable"),
    [
        (413, {}, Rejected, False),
        (422, {}, Rejected, False),
        (401, {}, Unauthorized, False),
        (429, {"Retry-After": "7"}, TransportError, True),
        (503, {}, TransportError, True),
        (500, {}, TransportError, True),
    ],
)
def test_status_codes_of_batch_uploads(stub: Stub, certs: dict[str, Any], tmp_path: Path, status: int,
                                       headers: dict[str, str], error: type[Exception], retryable: bool) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.put("device", {})
    stub.script.append((status, headers, {"error": {"code": "X", "message": f"said {status}"}}))
    t = Transport(identity_for(stub, certs["alpha"][3]), certs["alpha"][2])
    with pytest.raises(error, match=f"said {status}") as exc:
        t.send_batch(spool.pending()[0])
    assert type(exc.value) is error and exc.value.retryable is retryable and exc.value.status == status
    if "Retry-After" in headers:
        assert exc.value.retry_after == 7.0
    t.close()
    spool.close()


def test_action_result_goes_to_its_url(stub: Stub, certs: dict[str, Any]) -> None:
    stub.script.append((200, {}, {"status": "recorded"}))
    t = Transport(identity_for(stub, certs["alpha"][3]), certs["alpha"][2])
    t.post_result(ActionResult(id="a/1", status="Succeeded", result={"ok": True}))
    assert stub.received[0]["path"] == "/agent/v1/actions/a%2F1/result"
    assert stub.received[0]["json"] == {"id": "a/1", "status": "Succeeded", "result": {"ok": True}}
    t.close()


def test_unreachable_server_is_a_retryable_error(certs: dict[str, Any]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    t = Transport(Identity("d", "c", f"https://127.0.0.1:{port}", certs["alpha"][3]), certs["alpha"][2])
    with pytest.raises(TransportError, match="cannot reach") as exc:
        t.checkin(CheckinRequest(agent_version="0.1.0"))
    assert exc.value.retryable
    t.close()


# --- enrollment against the stub --------------------------------------------------------

def enroll_answer(fp: str | None, pem: str | None) -> dict[str, Any]:
    return {"device_id": "dev9", "credential": "secret-cred", "tenant": "default", "server_fingerprint": fp,
            "server_certificate": pem, "config_version": 1, "checkin_interval": 60}


REQUEST = EnrollRequest(secret="enroll-secret-123", machine_key="k" * 64, hostname="h", agent_version="0.1.0")


def test_enroll_pins_the_certificate_of_the_enrollment_connection(stub: Stub, certs: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    _c, _k, pem, fp = certs["alpha"]
    stub.script.append((200, {}, enroll_answer(fp, pem)))
    identity, pinned_pem = enroll(stub.url, REQUEST)
    assert identity.fingerprint == fp and pinned_pem is not None
    assert ssl.PEM_cert_to_DER_cert(pinned_pem) == ssl.PEM_cert_to_DER_cert(pem)
    save_identity(tmp_path / "state", identity, pinned_pem)
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state" / "identity.json").stat().st_mode & 0o777 == 0o600
    assert load_identity(tmp_path / "state") == identity


def test_enroll_refuses_an_announced_fingerprint_that_was_not_presented(stub: Stub, certs: dict[str, Any]) -> None:
    # A man in the middle relays the real server's answer but presents its own certificate.
    stub.script.append((200, {}, enroll_answer(certs["beta"][3], certs["beta"][2])))
    with pytest.raises(EnrollError, match="refusing to pin"):
        enroll(stub.url, REQUEST)


def test_enroll_with_a_configured_fingerprint_never_sends_the_secret_elsewhere(stub: Stub,
                                                                               certs: dict[str, Any]) -> None:
    with pytest.raises(EnrollError, match="secret was not sent"):
        enroll(stub.url, REQUEST, fingerprint=certs["beta"][3])
    assert stub.received == []
    stub.script.append((200, {}, enroll_answer(certs["alpha"][3], certs["alpha"][2])))
    identity, _pem = enroll(stub.url, REQUEST, fingerprint=certs["alpha"][3])
    assert identity.device_id == "dev9"


def test_enroll_errors_carry_the_server_message(stub: Stub) -> None:
    stub.script.append((401, {}, {"error": {"code": "Unauthorized", "message": "enrollment secret expired"}}))
    with pytest.raises(EnrollError, match="enrollment refused: enrollment secret expired \\(HTTP 401\\)"):
        enroll(stub.url, REQUEST)
