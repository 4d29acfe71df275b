"""Uploads queued for the worker: acknowledged only once stored, applied exactly once, in order per device,
and kept across a server restart. Real app, real state store (SQLite and PostgreSQL), the worker's own code."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from garrison.core.ingest import process_queue
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models import metadata
from garrison.store.models.core import AgentBatch, AgentUpload
from garrison.store.models.tvm import DeviceInventoryState, DevicePackage, SoftwareHistory
from tests.server.conftest import device_headers, enroll, make_tenant, upload

OS = {"id": "debian", "version_id": "12", "codename": "bookworm"}


def pkg(name: str, version: str) -> dict[str, Any]:
    return {"manager": "dpkg", "name": name, "version": version, "ecosystem": "Debian:12", "arch": "amd64"}


def snapshot(gen: int, *packages: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "snapshot", "generation": gen, "os": OS, "packages": list(packages)}


def delta(gen: int, base: int, added: list[dict[str, Any]], removed: list[dict[str, Any]]) -> dict[str, Any]:
    return {"mode": "delta", "generation": gen, "base_generation": base, "os": OS, "added": added, "removed": removed}


def queue_app(store: Store, tmp_path: Any) -> Any:
    # run_jobs: the server has a worker process, so uploads are queued (the worker is not started
    # here: the tests run its queue code themselves, at the moments they choose).
    load_services()
    settings = ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=True, heartbeat_interval=0.1)
    return create_app(settings, store)


@pytest.fixture
def queued(store: Store, tmp_path: Any) -> Iterator[tuple[TestClient, Any]]:
    tenant = make_tenant(store, "alpha")
    with TestClient(queue_app(store, tmp_path), base_url="https://testserver") as client:
        yield client, tenant


def packages_of(store: Store, device_id: str) -> set[tuple[str, str]]:
    from garrison.store.models.tvm import PackageVersion

    with store.system() as s:
        return set(s.execute(select(PackageVersion.name, PackageVersion.version)
                             .join(DevicePackage, DevicePackage.package_version_id == PackageVersion.id)
                             .where(DevicePackage.device_id == device_id)).all())


def generation(store: Store, device_id: str) -> int | None:
    with store.system() as s:
        return s.scalar(select(DeviceInventoryState.generation).where(DeviceInventoryState.device_id == device_id))


def queue_states(store: Store) -> list[str]:
    with store.system() as s:
        return list(s.scalars(select(AgentUpload.state).order_by(AgentUpload.id)))


def test_accepted_batch_survives_a_restart_and_is_applied_exactly_once(db_url: str, tmp_path: Any) -> None:
    store = Store(db_url)
    metadata.create_all(store.engine)
    tenant = make_tenant(store, "alpha")
    with TestClient(queue_app(store, tmp_path), base_url="https://testserver") as client:
        dev = enroll(client, tenant.enroll_secret)
        r = upload(client, dev, "inventory", snapshot(1, pkg("bash", "5.2-1"), pkg("curl", "7.88-1")), seq=1)
        assert r.status_code == 200 and r.json()["status"] == "accepted"
    # The acknowledgement came before the batch was applied: it is in the queue, not yet in the inventory.
    assert packages_of(store, dev["device_id"]) == set()
    store.dispose()

    store = Store(db_url)  # the server restarts: a new process, a new engine
    try:
        assert queue_states(store) == ["queued"]
        with TestClient(queue_app(store, tmp_path / "again"), base_url="https://testserver") as client:
            again = upload(client, dev, "inventory", snapshot(1, pkg("bash", "5.2-1"), pkg("curl", "7.88-1")), seq=1)
            assert again.json()["status"] == "duplicate"  # idempotence outlives the restart
        assert process_queue(store) == 1
        assert packages_of(store, dev["device_id"]) == {("bash", "5.2-1"), ("curl", "7.88-1")}
        assert generation(store, dev["device_id"]) == 1
        assert queue_states(store) == []
        with store.system() as s:
            history = s.scalar(select(func.count()).select_from(SoftwareHistory))
        assert process_queue(store) == 0  # nothing applied twice
        with store.system() as s:
            assert s.scalar(select(func.count()).select_from(SoftwareHistory)) == history
            assert s.scalar(select(func.count()).select_from(AgentBatch)) == 1
    finally:
        store.dispose()


def test_uploads_of_a_device_are_applied_in_order(store: Store, queued: tuple[TestClient, Any]) -> None:
    client, tenant = queued
    one = enroll(client, tenant.enroll_secret, "a" * 16, "one")
    two = enroll(client, tenant.enroll_secret, "b" * 16, "two")
    assert upload(client, one, "inventory", snapshot(1, pkg("bash", "5.2-1"), pkg("curl", "7.88-1")), seq=1).status_code == 200
    assert upload(client, two, "inventory", snapshot(1, pkg("zsh", "5.9-4")), seq=1).status_code == 200
    # The delta is based on the snapshot: applied first, it would be refused (base generation unknown).
    assert upload(client, one, "inventory", delta(2, 1, [pkg("curl", "7.88-2")], [pkg("curl", "7.88-1")]),
                  seq=2).status_code == 200
    assert upload(client, one, "inventory", delta(3, 2, [pkg("vim", "9.0-1")], []), seq=3).status_code == 200
    while process_queue(store, limit=1):  # one at a time, as slowly as it gets
        pass
    assert packages_of(store, one["device_id"]) == {("bash", "5.2-1"), ("curl", "7.88-2"), ("vim", "9.0-1")}
    assert generation(store, one["device_id"]) == 3
    assert packages_of(store, two["device_id"]) == {("zsh", "5.9-4")}
    assert queue_states(store) == []  # no re-send asked for: nothing came out of order


def test_a_failing_upload_holds_back_the_later_ones_of_its_device(store: Store, queued: tuple[TestClient, Any]) -> None:
    client, tenant = queued
    one = enroll(client, tenant.enroll_secret, "a" * 16, "one")
    two = enroll(client, tenant.enroll_secret, "b" * 16, "two")
    assert upload(client, one, "inventory", snapshot(1, pkg("bash", "5.2-1")), seq=1).status_code == 200
    with store.tenant(tenant.id) as s:  # an upload the worker cannot apply (it lacks the kind's plugin)
        body = b'{"seq": 2, "kind": "no_such_kind", "created_at": "2026-11-24T00:00:00Z", "payload": {}}'
        s.add(AgentUpload(device_id=one["device_id"], seq=2, kind="no_such_kind", body=body, tenant_id=tenant.id))
    assert upload(client, one, "inventory", delta(2, 1, [pkg("vim", "9.0-1")], []), seq=3).status_code == 200
    assert upload(client, two, "inventory", snapshot(1, pkg("zsh", "5.9-4")), seq=1).status_code == 200
    process_queue(store)
    assert generation(store, one["device_id"]) == 1  # the delta waits behind the failing upload
    assert packages_of(store, two["device_id"]) == {("zsh", "5.9-4")}  # other devices go on
    for _ in range(10):
        process_queue(store)
    with store.system() as s:
        parked = s.execute(select(AgentUpload.kind, AgentUpload.state, AgentUpload.attempts)).all()
    assert parked == [("no_such_kind", "failed", 5)]  # kept for the operator, not dropped
    assert generation(store, one["device_id"]) == 2
    assert packages_of(store, one["device_id"]) == {("bash", "5.2-1"), ("vim", "9.0-1")}


def test_a_resync_found_by_the_worker_reaches_the_agent(store: Store, queued: tuple[TestClient, Any]) -> None:
    client, tenant = queued
    dev = enroll(client, tenant.enroll_secret)
    assert upload(client, dev, "inventory", delta(5, 4, [pkg("vim", "9.0-1")], []), seq=1).status_code == 200
    process_queue(store)  # no snapshot to base it on: the agent must send one
    deadline = time.monotonic() + 10
    resync: list[str] = []
    while time.monotonic() < deadline and not resync:
        r = client.post("/agent/v1/checkin", headers=device_headers(dev),
                        json={"agent_version": "0.1.0", "health": {}, "drops": {}, "spool_pending": 0,
                              "transport_errors": 0})
        assert r.status_code == 200
        resync = r.json()["resync"]
        time.sleep(0.05)
    assert resync == ["inventory"]
    assert queue_states(store) == []


def test_invalid_uploads_are_refused_before_they_are_queued(store: Store, queued: tuple[TestClient, Any]) -> None:
    client, tenant = queued
    dev = enroll(client, tenant.enroll_secret)
    r = upload(client, dev, "inventory", {"mode": "sideways", "generation": 1}, seq=1)
    assert r.status_code == 422 and "inventory payload at mode" in r.json()["error"]["message"]
    assert upload(client, dev, "no_such_kind", {}, seq=2).status_code == 422
    assert queue_states(store) == []
    with store.system() as s:
        assert s.scalar(select(func.count()).select_from(AgentBatch)) == 0


def test_the_worker_inflates_a_queued_body_under_the_same_limit(store: Store, queued: tuple[TestClient, Any]) -> None:
    """A multi-member gzip bomb is refused before it is queued; one queued before that fix is parked by the
    worker after inflating no more than the limit."""
    import gzip
    import json
    import tracemalloc

    from garrison.protocol import MAX_BATCH_BYTES
    from tests.server.test_agent_protocol import spaces_member

    client, tenant = queued
    dev = enroll(client, tenant.enroll_secret)
    body = json.dumps({"seq": 1, "kind": "inventory", "created_at": "2026-11-24T00:00:00Z",
                       "payload": snapshot(1, pkg("bash", "5.2-1"))}).encode()
    bomb = gzip.compress(body) + spaces_member(100 << 20)
    r = client.post("/agent/v1/batches", content=bomb, headers={**device_headers(dev), "Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert queue_states(store) == []
    with store.tenant(tenant.id) as s:  # as the old server queued it
        s.add(AgentUpload(device_id=dev["device_id"], seq=1, kind="inventory", body=bomb, tenant_id=tenant.id))
    tracemalloc.start()
    try:
        assert process_queue(store) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_BATCH_BYTES + (16 << 20)
    with store.system() as s:
        parked = s.execute(select(AgentUpload.state, AgentUpload.error)).one()
    assert parked[0] == "failed" and "over" in parked[1]
    assert packages_of(store, dev["device_id"]) == set()


def test_lock_contention_is_one_warning_line_and_the_upload_is_applied_later(
        store: Store, queued: tuple[TestClient, Any], caplog: pytest.LogCaptureFixture) -> None:
    """Another writer holds the state store while the worker applies an upload (SQLite: its write lock
    beyond the busy timeout; PostgreSQL: a table lock beyond the lock timeout): one warning line, no
    traceback, no attempt counted, and the next pass applies it."""
    client, tenant = queued
    dev = enroll(client, tenant.enroll_secret)
    assert upload(client, dev, "inventory", snapshot(1, pkg("bash", "5.2-1")), seq=1).status_code == 200
    sqlite = store.engine.dialect.name == "sqlite"
    short_wait = "PRAGMA busy_timeout=200" if sqlite else "SET lock_timeout = '200ms'"

    def wait_briefly(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(short_wait)
        cur.close()
        dbapi_conn.commit()

    store.engine.dispose()
    event.listen(store.engine, "connect", wait_briefly)
    holder = store.engine.raw_connection()
    cur = holder.cursor()
    cur.execute("BEGIN IMMEDIATE" if sqlite else "LOCK TABLE devices IN ACCESS EXCLUSIVE MODE")
    try:
        with caplog.at_level(logging.DEBUG, logger="garrison.ingest"):
            assert process_queue(store) == 0
    finally:
        holder.rollback()
        holder.close()
    records = [r for r in caplog.records if r.name == "garrison.ingest" and r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    line = records[0]
    assert line.levelno == logging.WARNING and line.exc_info is None and "\n" not in line.getMessage()
    assert line.getMessage().startswith("upload ") and "state store is busy" in line.getMessage()
    with store.system() as s:
        assert s.execute(select(AgentUpload.state, AgentUpload.attempts)).all() == [("queued", 0)]
    assert process_queue(store) == 1
    assert packages_of(store, dev["device_id"]) == {("bash", "5.2-1")}


def test_a_failure_is_one_error_line_with_the_traceback_at_debug(
        store: Store, queued: tuple[TestClient, Any], caplog: pytest.LogCaptureFixture) -> None:
    client, tenant = queued
    dev = enroll(client, tenant.enroll_secret)
    with store.tenant(tenant.id) as s:  # an upload the worker cannot apply (it lacks the kind's plugin)
        body = b'{"seq": 1, "kind": "no_such_kind", "created_at": "2026-11-24T00:00:00Z", "payload": {}}'
        s.add(AgentUpload(device_id=dev["device_id"], seq=1, kind="no_such_kind", body=body, tenant_id=tenant.id))
    with caplog.at_level(logging.DEBUG, logger="garrison.ingest"):
        process_queue(store)
    ours = [r for r in caplog.records if r.name == "garrison.ingest"]
    errors = [r for r in ours if r.levelno >= logging.WARNING]
    assert [(r.levelno, r.exc_info) for r in errors] == [(logging.ERROR, None)]
    assert errors[0].getMessage().endswith("failed: LookupError: upload kind 'no_such_kind' is not registered in "
                                           "the worker")
    assert "\n" not in errors[0].getMessage()
    assert [r.exc_info is not None for r in ours if r.levelno == logging.DEBUG] == [True]
