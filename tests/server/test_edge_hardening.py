"""The server's edges (issue 11, items 13, 14 and 18): private files in the data directory, answers
that carry secrets never cached, API docs from bundled assets under a Content-Security-Policy."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import httpx
from sqlalchemy import text

from garrison.store.db import Store, private_dir
from tests.server.conftest import Env
from tests.server.test_server_process import cli, free_port, start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- 13: file modes ---------------------------------------------------------------------------

def test_a_new_state_store_and_its_wal_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)  # the usual umask, which made them 0644
    try:
        store = Store(f"sqlite:///{data / 'garrison.db'}")
        with store.engine.begin() as conn:  # WAL and SHM exist while a connection is open
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            files = {p.name: _mode(p) for p in data.iterdir()}
        store.dispose()
    finally:
        os.umask(old)
    assert _mode(data) == 0o700
    assert files == {"garrison.db": 0o600, "garrison.db-wal": 0o600, "garrison.db-shm": 0o600}


def test_an_existing_world_readable_store_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in ("garrison.db", "garrison.db-wal"):
        (data / name).touch()
        (data / name).chmod(0o644)
    Store(f"sqlite:///{data / 'garrison.db'}").dispose()
    assert _mode(data / "garrison.db") == 0o600 and _mode(data / "garrison.db-wal") == 0o600
    assert _mode(data) == 0o755  # a directory the store did not create is not the store's to change
    private_dir(data)  # the data directory is: server, worker and demo make it private at start
    assert _mode(data) == 0o700


def test_a_store_in_a_shared_sticky_directory_leaves_it_open(tmp_path: Path) -> None:
    """``--database-url sqlite:////tmp/x.db`` once made /tmp 0700 and broke every other user's work."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    Store(f"sqlite:///{shared / 'x.db'}").dispose()
    private_dir(shared)  # not even when named as the data directory
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert _mode(shared / "x.db") == 0o600


def test_the_servers_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli("tenant", "create", "acme", "--data-dir", str(data))
    port = free_port()
    proc = start_server(data, port, "--no-jobs")  # HTTPS: generates the TLS key
    try:
        assert httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False).status_code == 200
        seen = {str(p.relative_to(data)): _mode(p) for p in data.rglob("*")}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert _mode(data) == 0o700
    assert seen["garrison.db"] == 0o600 and seen["tls/server.key"] == 0o600 and seen["tls"] == 0o700
    for name, mode in seen.items():  # nothing in it readable by others
        assert mode & 0o077 == 0 or name == "tls/server.crt", (name, oct(mode))


# --- 18: answers that carry secrets -----------------------------------------------------------

def test_answers_with_secrets_are_not_cached(env: Env) -> None:
    r = env.client.post("/api/apiKeys", json={"role": "analyst", "name": "script"}, headers=env.a.headers())
    assert r.status_code == 201 and r.json()["key"].startswith("gk_")
    assert r.headers["cache-control"] == "no-store"
    r = env.client.post("/api/enrollmentSecrets", json={"uses": 1}, headers=env.a.headers())
    assert r.status_code == 201 and r.json()["secret"].startswith("ge_")
    assert r.headers["cache-control"] == "no-store"
    r = env.client.post("/agent/v1/enroll", json={"secret": r.json()["secret"], "machine_key": "k" * 32,
                                                  "hostname": "h1", "agent_version": "1.0"})
    assert r.status_code == 200 and r.json()["credential"]  # the device credential, shown once
    assert r.headers["cache-control"] == "no-store"


# --- 8: an XML entity bomb behind megabytes of comment, gzip-compressed, through the API --------

def test_an_entity_bomb_behind_a_comment_is_refused_by_the_api(env: Env) -> None:
    import gzip

    from tests.inventory.test_sbom import entity_bomb_behind_a_comment

    body = gzip.compress(entity_bomb_behind_a_comment(), 9)
    assert len(body) < 16 * 1024  # a few kilobytes on the wire
    r = env.client.post("/api/machines/import?deviceName=bomb&format=cyclonedx-xml", content=body,
                        headers={**env.a.headers("security_operator"), "Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "DOCTYPE" in r.json()["error"]["message"], r.text[:300]
    assert env.client.get("/api/machines", headers=env.a.headers()).json()["value"] == []


# --- 14: API docs from bundled, pinned assets ------------------------------------------------

def test_api_docs_load_nothing_from_outside(env: Env) -> None:
    import re

    from garrison.server import apidocs

    r = env.client.get("/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-eval" not in csp
    assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text
    assert "<script>" not in r.text  # no inline script (the CSP would refuse it)
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert len(refs) == 3
    for ref in refs:
        asset = env.client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.headers["content-type"].startswith(("text/css", "text/javascript", "application/javascript"))
    bundle = env.client.get(f"/api/docs/assets/swagger-ui-bundle.js?v={apidocs.SWAGGER_UI_VERSION}")
    assert b"SwaggerUIBundle" in bundle.content and len(bundle.content) > 1_000_000
    assert env.client.get("/api/docs/assets/LICENSE").status_code == 404  # only the listed files
    assert env.client.get("/api/docs/assets/..%2Fapidocs.py").status_code == 404
    init = env.client.get("/api/docs/assets/garrison-docs.js").text
    assert "validatorUrl: null" in init  # Swagger UI's default validator is an outside service
    assert "Apache License" in (Path(apidocs.__file__).parent / "data" / "swagger-ui" / "LICENSE").read_text()
