"""Run the server: TLS certificate, migrations, jobs and uvicorn in one process."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from garrison.core import ingest
from garrison.core.jobs import JobRunner
from garrison.integrations import settings as integration_settings
from garrison.registry import modules_named
from garrison.server.app import create_app
from garrison.server.settings import ServerSettings
from garrison.server.tls import ensure_certificate
from garrison.store import migrate
from garrison.store.db import Store, private_dir

log = logging.getLogger("garrison")

# The packages of the core and service layers (pyproject.toml's layers contract).
SERVICE_LAYERS = ("core", "tvm", "edr", "response", "intel", "integrations")


def load_services() -> list[str]:
    """Import every module named ``service`` in the core and service layers (they register upload kinds
    and jobs): a pillar joins the server by having one. Returns their names."""
    return [m.__name__ for m in modules_named("garrison", "service", under=SERVICE_LAYERS)]


class _Uvicorn(uvicorn.Server):
    """Ctrl-C / SIGTERM stop the server cleanly with exit status 0 (uvicorn would re-raise them)."""

    before_shutdown: list[Callable[[], None]]

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def shutdown(self, sockets: Any = None) -> None:
        # Let in-process clients (the demo's agent) hang up first, so that the graceful
        # shutdown does not wait for their keep-alive connections.
        for hook in getattr(self, "before_shutdown", []):
            hook()
        await super().shutdown(sockets)


def run_worker(db_url: str, stop: Any = None,
               integrations: integration_settings.IntegrationSettings | None = None,
               parent_pid: int | None = None) -> None:
    """The job loop of ``garrison worker`` (and of the server's own worker process).

    ``parent_pid``: the server that started this worker; when it dies (even by SIGKILL) the worker
    stops too, instead of running on beside the next server's worker.
    """
    import signal

    load_services()
    if integrations is not None:  # the jobs send tickets and notifications
        integration_settings.configure(integrations)
    store = Store(db_url)
    runner = JobRunner(store)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid, stop), name="garrison-parent-watch",
                         daemon=True).start()
    # Queued agent uploads have a thread of their own, so a long job does not hold them up.
    uploads = threading.Thread(target=drain_uploads, args=(store, stop), name="garrison-uploads", daemon=True)
    uploads.start()
    try:
        while not stop.is_set():
            runner.run_due()
            stop.wait(1.0)
    finally:
        uploads.join(timeout=30)
        store.dispose()


PARENT_GRACE = 10.0  # seconds an orphaned worker gets to finish its transaction before it exits


def _exit_with_parent(parent_pid: int, stop: Any) -> None:
    while not stop.wait(0.5):
        if os.getppid() != parent_pid:
            log.error("the server (pid %d) is gone: the worker stops", parent_pid)
            stop.set()
            time.sleep(PARENT_GRACE)  # a job that does not finish by then is rolled back by the database
            os._exit(1)


def drain_uploads(store: Store, stop: Any, idle: float = 0.5) -> None:
    """Apply queued agent uploads until ``stop`` is set."""
    # SQLite has one write lock: after each upload the worker leaves it to the server (enrollments,
    # new uploads, heartbeats) for as long as it held it, so that their waits stay short.
    share = (lambda took: stop.wait(min(took, 0.25))) if store.dialect == "sqlite" else None
    while not stop.is_set():
        try:
            done = ingest.process_queue(store, pause=share)
        except Exception:
            logging.getLogger("garrison.ingest").exception("upload queue pass failed")
            done = 0
        if not done:
            stop.wait(idle)


class WorkerProcess:
    """The server's background jobs in a supervised child process.

    ``check()`` (called every second by the server) restarts a worker that died, at most
    ``max_restarts`` times within ``window`` seconds; past that it gives up and the server exits
    non-zero, so that its service manager sees the failure. ``stop()`` never waits on a dead child,
    and the child stops by itself if the server dies (``run_worker``'s ``parent_pid``).
    """

    max_restarts = 5
    window = 600.0

    def __init__(self, db_url: str, integrations: integration_settings.IntegrationSettings | None = None,
                 target: Callable[..., None] = run_worker) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._target = target
        self._args = (db_url, None, integrations, os.getpid())
        self._proc: Any = None
        self._deaths: list[float] = []
        self._lock = threading.Lock()
        self.restarts = 0
        self.failed = False
        self.stopping = False

    def start(self) -> None:
        # No shared Event or lock with the child: a child killed while holding one would block the server.
        # It is told to stop by SIGTERM.
        self._proc = self._ctx.Process(target=self._target, args=self._args, name="garrison-worker", daemon=True)
        self._proc.start()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def health(self) -> dict[str, Any]:
        state = "running" if self.alive else ("failed" if self.failed else "stopped" if self.stopping else "restarting")
        return {"state": state, "restarts": self.restarts}

    def check(self) -> bool:
        """Restart the worker if it died; False once it died too often (the caller then stops the server)."""
        with self._lock:
            if self.stopping or self.failed or self._proc is None or self._proc.is_alive():
                return not self.failed
            now = time.monotonic()
            self._deaths = [d for d in self._deaths if now - d < self.window] + [now]
            log.error("the worker process exited (code %s)", self._proc.exitcode)
            if len(self._deaths) > self.max_restarts:
                log.error("the worker died %d times in %.0f s: giving up", len(self._deaths), self.window)
                self.failed = True
                return False
            self.restarts += 1
            self.start()
            return True

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            proc = self._proc
        if proc is None or not proc.is_alive():
            return
        proc.terminate()  # SIGTERM: the worker finishes the upload in hand and exits
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)


class GarrisonServer:
    def __init__(self, settings: ServerSettings, store: Store | None = None) -> None:
        self.settings = settings
        private_dir(settings.data_dir)
        self.store = store or Store(settings.db_url)
        migrate.upgrade(self.store.engine)
        load_services()
        cert: Path | None = None
        key: Path | None = None
        if not settings.insecure_http:
            cert, key = ensure_certificate(settings.data_dir, settings.tls_cert, settings.tls_key)
        self.app = create_app(settings, self.store, cert_path=cert)
        # Jobs (matching, scores) are CPU-heavy Python: in a thread of this process they would
        # hold the GIL against the fleet's check-ins, so they run in a worker process of their own.
        self.jobs = WorkerProcess(settings.db_url, settings.integrations()) if settings.run_jobs else None
        self.app.state.worker = self.jobs  # /healthz reports it
        config = uvicorn.Config(self.app, host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, ssl_certfile=str(cert) if cert else None,
                                ssl_keyfile=str(key) if key and cert else None, server_header=False,
                                timeout_graceful_shutdown=5, backlog=4096,
                                # X-Forwarded-* only from --trusted-proxy networks: server.auth.client_ip
                                proxy_headers=False)
        self.server = _Uvicorn(config)
        self.server.before_shutdown = []

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C / SIGTERM (uvicorn installs the handlers in the main thread).

        Raises ``SystemExit(1)`` after a clean shutdown if the worker process kept dying."""
        # Long-lived start-up objects (the app, routes, models) need no collecting; full
        # collections over them were the main source of check-in latency spikes.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        if self.jobs:
            self.jobs.start()
            threading.Thread(target=self._supervise, args=(self.jobs,), name="garrison-supervisor",
                             daemon=True).start()
        if on_ready:
            threading.Thread(target=self._wait_ready, args=(on_ready,), daemon=True).start()
        try:
            self.server.run()
        finally:
            if self.jobs:
                self.jobs.stop()
            self.store.dispose()
        if self.jobs and self.jobs.failed:
            raise SystemExit(1)

    def _supervise(self, jobs: WorkerProcess) -> None:
        while True:
            time.sleep(1.0)
            if self.server.should_exit:  # shutting down (Ctrl-C reaches the worker too): no restart
                return
            if not jobs.check():
                self.server.should_exit = True  # the worker keeps dying: stop, and exit non-zero
                return

    def _wait_ready(self, on_ready: Callable[[], None]) -> None:
        while not self.server.started and not self.server.should_exit:
            time.sleep(0.05)
        if self.server.started:
            try:
                on_ready()
            except Exception:
                logging.getLogger("garrison").exception("start-up step failed")

    def stop(self) -> None:
        self.server.should_exit = True
