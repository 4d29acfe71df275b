"""Parallel agents against a real server (uvicorn on loopback, the real app) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from garrison.core import access
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models.core import Device, EnrollmentSecret
from tests.server.conftest import make_tenant
from tests.web.conftest import ThreadedServer, free_port

PARALLEL = 8


@pytest.fixture
def served(store: Store, tmp_path: Any) -> Iterator[tuple[str, Store]]:
    load_services()
    settings = ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=False, heartbeat_interval=0)
    server = ThreadedServer(create_app(settings, store), free_port())
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server.config.port}", store
    finally:
        server.stop()


def test_a_one_use_secret_admits_one_device_of_many_parallel_enrollments(served: tuple[str, Store]) -> None:
    url, store = served
    tenant = make_tenant(store, "alpha")
    for trial in range(6):
        with store.system() as s:
            _row, secret = access.create_enrollment_secret(s, tenant.id, uses=1)
        start = threading.Barrier(PARALLEL)

        def enroll(i: int, secret: str = secret, trial: int = trial, start: threading.Barrier = start) -> int:
            with httpx.Client(base_url=url, timeout=30) as client:
                start.wait()
                return client.post("/agent/v1/enroll", json={
                    "secret": secret, "machine_key": f"machine-{trial}-{i:04d}", "hostname": f"h{trial}-{i}",
                    "agent_version": "0.1.0"}).status_code

        with ThreadPoolExecutor(PARALLEL) as pool:
            codes = sorted(pool.map(enroll, range(PARALLEL)))
        assert codes == [200] + [401] * (PARALLEL - 1), f"trial {trial}: {codes}"
    with store.system() as s:
        assert s.scalar(select(func.count()).select_from(Device)) == 6
        assert set(s.scalars(select(EnrollmentSecret.uses).where(EnrollmentSecret.max_uses == 1))) == {1}
