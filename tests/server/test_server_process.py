"""A real `garrison server` process: HTTPS with its generated certificate, the pinned fingerprint,
plain HTTP only when asked, clean shutdown."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "garrison.cli.main", *args, "--json"], capture_output=True, text=True,
                       timeout=120, check=True)
    return json.loads(r.stdout)


def start_server(data_dir: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "garrison.cli.main", "server", "--data-dir", str(data_dir),
                             "--port", str(port), "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line, proc.stderr.read()  # type: ignore[union-attr]
    return proc


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    cli("tenant", "create", "acme", "--data-dir", str(d))
    return d


def test_https_with_pinned_fingerprint(data_dir: Path) -> None:
    port = free_port()
    enrollment = cli("enrollment", "create", "--tenant", "acme", "--data-dir", str(data_dir))
    proc = start_server(data_dir, port)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == enrollment["serverFingerprint"]
        # the certificate itself verifies as the only trust anchor (what the agent pins)
        pinned = ssl.create_default_context(cafile=str(data_dir / "tls" / "server.crt"))
        pinned.check_hostname = False
        r = httpx.post(f"https://127.0.0.1:{port}/agent/v1/enroll", verify=pinned, json={
            "secret": enrollment["secret"], "machine_key": "p" * 16, "hostname": "h", "agent_version": "0.1.0"})
        assert r.status_code == 200
        assert r.json()["server_fingerprint"] == enrollment["serverFingerprint"]
        assert "BEGIN CERTIFICATE" in r.json()["server_certificate"]
        # plain HTTP on the TLS port does not work
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).raise_for_status()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def test_plain_http_only_when_asked(data_dir: Path) -> None:
    port = free_port()
    proc = start_server(data_dir, port, "--insecure-http")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        spec = httpx.get(f"http://127.0.0.1:{port}/api/openapi.json").json()
        assert "/api/machines" in spec["paths"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_port_in_use_is_a_clear_error(data_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "garrison.cli.main", "server", "--data-dir", str(data_dir),
                            "--port", str(port)], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0 and "in use" in r.stderr and "Traceback" not in r.stderr
    time.sleep(0)
