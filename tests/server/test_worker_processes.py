"""The upload queue and the worker under real processes: ``garrison server`` (with its supervised worker
process) plus ``garrison worker`` on one state store, SIGKILLs included. Every upload must be applied
exactly once and in its device's order; a dead worker is restarted and reported; nothing hangs.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from garrison.server.app import create_app
from garrison.server.runner import WorkerProcess, load_services
from garrison.server.settings import ServerSettings
from garrison.store import migrate
from garrison.store.db import Store
from garrison.store.models.core import AgentUpload
from garrison.store.models.tvm import DeviceInventoryState, SoftwareHistory
from tests.agent.harness import REPO, cli_env, free_port, wait_for
from tests.server.conftest import make_tenant
from tests.server.crashing_worker import crash
from tests.server.test_upload_queue import delta, packages_of, pkg, snapshot

DEVICES = 3
ROUNDS = 10  # uploads per device: a snapshot, then deltas that each install one package


class Proc:
    """A garrison CLI process with its output in files (a pipe nobody reads would stall it)."""

    def __init__(self, name: str, tmp: Path, *args: str) -> None:
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "garrison.cli.main", *args, "--json"], stdout=out,
                                         stderr=err, env=cli_env(), cwd=REPO)
        wait_for(lambda: self.out.read_text().startswith("{") or self.proc.poll() is not None, 90, f"{name} to start")
        assert self.proc.poll() is None, self.err.read_text()[-3000:]

    def children(self) -> list[int]:
        """The server's worker processes (multiprocessing spawn children)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == \
                        self.proc.pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def terminate(self, within: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"did not stop within {within}s after SIGTERM") from None


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def provision(db_url: str) -> tuple[Store, str]:
    """The schema as the server makes it (migrations), a tenant and its enrollment secret."""
    store = Store(db_url)
    migrate.upgrade(store.engine)
    return store, make_tenant(store, "default").enroll_secret


def start_server(tmp: Path, name: str, db_url: str, data_dir: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(name, tmp, "server", "--insecure-http", "--port", str(port), "--data-dir", str(data_dir),
                "--database-url", db_url)
    return proc, f"http://127.0.0.1:{port}"


def batch(seq: int) -> dict[str, Any]:
    payload = snapshot(1, pkg("base", "1.0-1")) if seq == 1 else delta(seq, seq - 1, [pkg(f"p{seq}", "1.0-1")], [])
    return {"seq": seq, "kind": "inventory", "created_at": "2026-11-24T00:00:00Z", "payload": payload}


def send(url: str, devices: list[dict[str, Any]], seqs: range) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for seq in seqs:
            for dev in devices:  # interleaved, as a fleet sends them
                r = client.post("/agent/v1/batches", json=batch(seq),
                                headers={"Authorization": f"Device {dev['device_id']}:{dev['credential']}"})
                assert r.status_code == 200 and r.json()["status"] == "accepted", r.text


def assert_each_applied_once_in_order(store: Store, devices: list[dict[str, Any]], last: int) -> None:
    def drained() -> bool:
        with store.system() as s:
            gens = s.scalars(select(DeviceInventoryState.generation)).all()
            queued = s.scalar(select(func.count()).select_from(AgentUpload).where(AgentUpload.state == "queued"))
        return queued == 0 and len(gens) == len(devices) and min(gens) == last

    try:
        wait_for(drained, 180, "the queue to drain", interval=0.5)
    finally:
        with store.system() as s:
            left = s.execute(select(AgentUpload.state, AgentUpload.error)).all()
    assert left == []  # nothing parked, nothing sent back for a resync (out of order)
    for dev in devices:
        assert packages_of(store, dev["device_id"]) == {("base", "1.0-1")} | {(f"p{n}", "1.0-1")
                                                                              for n in range(2, last + 1)}
        with store.system() as s:
            installs = s.scalars(select(SoftwareHistory.software_id).where(
                SoftwareHistory.device_id == dev["device_id"], SoftwareHistory.event == "installed")).all()
        assert len(installs) == last - 1 == len(set(installs))  # each delta applied once


def assert_no_resync_asked(url: str, devices: list[dict[str, Any]]) -> None:
    """A delta applied out of order, or twice, is refused by the inventory and a snapshot asked for
    at the device's next check-in (the server keeps the request until then)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for dev in devices:
            r = client.post("/agent/v1/checkin", json={"agent_version": "1"},
                            headers={"Authorization": f"Device {dev['device_id']}:{dev['credential']}"})
            assert r.status_code == 200 and r.json()["resync"] == [], r.text


@pytest.mark.slow
def test_two_workers_and_a_killed_server_apply_each_upload_once_in_order(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store, secret = provision(db_url)
    server, url = start_server(tmp_path, "server-1", db_url, data_dir)
    # a second worker on the same state store
    extra = Proc("worker", tmp_path, "worker", "--data-dir", str(data_dir), "--database-url", db_url)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            devices = [client.post("/agent/v1/enroll", json={"secret": secret, "machine_key": f"machine-{i:04d}",
                                                             "hostname": f"h{i}", "agent_version": "1"}).json()
                       for i in range(DEVICES)]
        half = ROUNDS // 2
        send(url, devices, range(1, half + 1))
        orphans = wait_for(server.children, 30, "the server's worker process")
        server.proc.kill()  # SIGKILL: no shutdown
        server.proc.wait(10)
        # its worker notices and stops by itself, rather than running on beside the next server's
        wait_for(lambda: not any(pid_alive(p) for p in orphans), 20, "the orphaned worker to exit")
        server, url = start_server(tmp_path, "server-2", db_url, data_dir)
        send(url, devices, range(half + 1, ROUNDS + 1))
        assert_each_applied_once_in_order(store, devices, ROUNDS)
        assert_no_resync_asked(url, devices)
        assert httpx.get(url + "/healthz").json()["worker"] == {"state": "running", "restarts": 0}
        assert server.terminate() == 0 and extra.terminate() == 0
        for log in tmp_path.glob("*.err"):  # no upload failed, none was applied and then rolled back
            assert "upload" not in log.read_text(), log.read_text()[-3000:]
    finally:
        for p in (server, extra):
            if p.proc.poll() is None:
                p.proc.kill()
        store.dispose()


@pytest.mark.slow
def test_a_dead_worker_is_restarted_reported_and_never_blocks_shutdown(db_url: str, tmp_path: Path) -> None:
    store, secret = provision(db_url)
    server, url = start_server(tmp_path, "server", db_url, tmp_path / "data")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            devices = [client.post("/agent/v1/enroll", json={"secret": secret, "machine_key": "machine-0001",
                                                             "hostname": "h", "agent_version": "1"}).json()]
        first = wait_for(server.children, 30, "the worker process")
        os.kill(first[0], signal.SIGKILL)
        restarted = wait_for(lambda: [p for p in server.children() if p not in first], 30, "a new worker process")
        health = wait_for(lambda: httpx.get(url + "/healthz").json(), 10, "/healthz")
        assert health["status"] == "ok" and health["worker"] == {"state": "running", "restarts": 1}
        send(url, devices, range(1, 4))  # the new worker applies uploads
        assert_each_applied_once_in_order(store, devices, 3)
        os.kill(restarted[0], signal.SIGKILL)  # and once more, right before the server is told to stop
        started = time.monotonic()
        assert server.terminate(within=20) == 0
        assert time.monotonic() - started < 20
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        store.dispose()


def test_a_worker_that_keeps_dying_is_given_up_and_reported(store: Store, tmp_path: Path) -> None:
    load_services()
    worker = WorkerProcess(store.url, target=crash)  # a real child process that exits at once
    worker.max_restarts = 1
    settings = ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=False, heartbeat_interval=0)
    app = create_app(settings, store)
    app.state.worker = worker
    worker.start()
    with TestClient(app, base_url="https://testserver") as client:
        verdicts = []
        for _ in range(2):
            wait_for(lambda: not worker.alive, 30, "the worker to exit")
            r = client.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "degraded"
            verdicts.append(worker.check())
        assert verdicts == [True, False]  # restarted once, then given up
        assert client.get("/healthz").json()["worker"] == {"state": "failed", "restarts": 1}
    worker.stop()  # returns at once: nothing to wait for
    assert json.dumps(worker.health())


def test_the_server_exits_non_zero_when_its_worker_keeps_dying(db_url: str, tmp_path: Path) -> None:
    """Past the restart bound the server shuts down by itself and exits 1, for its service manager to see."""
    import threading

    from garrison.server.runner import GarrisonServer

    settings = ServerSettings(data_dir=tmp_path, database_url=db_url, insecure_http=True, port=free_port())
    server = GarrisonServer(settings)
    server.jobs = server.app.state.worker = WorkerProcess(db_url, target=crash)
    server.jobs.max_restarts = 1
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            server.run()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is tested
            outcome.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(90)
    assert not thread.is_alive(), "the server kept running with a worker that keeps dying"
    assert isinstance(outcome[0], SystemExit) and outcome[0].code == 1
    assert server.jobs.health() == {"state": "failed", "restarts": 1}
