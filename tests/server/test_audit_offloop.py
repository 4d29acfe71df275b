"""The audit log is written off the event loop: one API call whose audit entry waits for the
database's write lock does not hold up the fleet's check-ins (real uvicorn server on loopback)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models.core import AuditEntry
from tests.server.conftest import device_headers, make_tenant
from tests.web.conftest import ThreadedServer, free_port

LOCK_HELD = 6.0  # seconds the audit table stays locked


@pytest.fixture
def served(store: Store, tmp_path: Any) -> Iterator[tuple[str, Store]]:
    load_services()
    settings = ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=False)
    server = ThreadedServer(create_app(settings, store), free_port())
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server.config.port}", store
    finally:
        server.stop()


class AuditLock:
    """Another client holding the lock an audit INSERT needs: SQLite's write lock, or the table on PostgreSQL."""

    def __init__(self, store: Store) -> None:
        url = store.engine.url
        if url.get_backend_name() == "sqlite":
            self.conn: Any = sqlite3.connect(str(url.database), isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = psycopg.connect(plain)
            self.conn.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        self.released = threading.Event()

    def release(self) -> None:
        if not self.released.is_set():
            self.released.set()
            self.conn.rollback() if not isinstance(self.conn, sqlite3.Connection) else self.conn.execute("ROLLBACK")
            self.conn.close()


def test_a_checkin_is_not_delayed_while_an_audit_write_waits_for_the_lock(served: tuple[str, Store]) -> None:
    url, store = served
    tenant = make_tenant(store, "alpha")
    with httpx.Client(base_url=url, timeout=30) as client:
        enrolled = client.post("/agent/v1/enroll", json={"secret": tenant.enroll_secret, "machine_key": "m" * 16,
                                                         "hostname": "host-1", "agent_version": "0.1.0"}).json()
        checkin = {"agent_version": "0.1.0"}
        assert client.post("/agent/v1/checkin", headers=device_headers(enrolled), json=checkin).status_code == 200

        lock = AuditLock(store)
        timer = threading.Timer(LOCK_HELD, lock.release)  # the old code waits this long, then goes on
        timer.start()
        try:
            # A state-changing call: refused (no such machine) but audited; its entry now waits for the lock.
            r = client.post("/api/machines/" + "0" * 40 + "/tags", headers=tenant.headers("admin"),
                            json={"Value": "x", "Action": "Add"})
            assert r.status_code == 404
            time.sleep(0.3)
            started = time.monotonic()
            r = client.post("/agent/v1/checkin", headers=device_headers(enrolled), json=checkin)
            took = time.monotonic() - started
            assert r.status_code == 200
            assert not lock.released.is_set()
            assert took < 2.0, f"a check-in waited {took:.1f}s behind an audit write"
        finally:
            timer.cancel()
            lock.release()
    # ... and the entry is written once the lock is free.
    deadline = time.monotonic() + 20
    while True:
        with store.system() as s:
            rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "add_machine_tag")).all() or \
                s.scalars(select(AuditEntry).where(AuditEntry.status_code == 404)).all()
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows and rows[0].status_code == 404 and rows[0].tenant_id == tenant.id
