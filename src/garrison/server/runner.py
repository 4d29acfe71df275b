"""Run the server: TLS certificate, migrations, jobs and uvicorn in one process."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from garrison.core import ingest
from garrison.core.jobs import JobRunner
from garrison.integrations import settings as integration_settings
from garrison.server.app import create_app
from garrison.server.settings import ServerSettings
from garrison.server.tls import ensure_certificate
from garrison.store import migrate
from garrison.store.db import Store, private_dir

# Services that register upload kinds and jobs; imported for their side effects.
SERVICE_MODULES = ("garrison.core.devices", "garrison.core.actions", "garrison.core.maintenance", "garrison.tvm.service",
                   "garrison.tvm.assessment", "garrison.tvm.prioritisation", "garrison.integrations.service")


def load_services() -> None:
    for name in SERVICE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


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
               integrations: integration_settings.IntegrationSettings | None = None) -> None:
    """The job loop of ``garrison worker`` (and of the server's own worker process)."""
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
    """The server's background jobs in a child process; stopped with the server."""

    def __init__(self, db_url: str, integrations: integration_settings.IntegrationSettings | None = None) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._proc = self._ctx.Process(target=run_worker, args=(db_url, self._stop, integrations),
                                       name="garrison-worker", daemon=True)

    def start(self) -> None:
        self._proc.start()

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)


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
        """Serve until Ctrl-C / SIGTERM (uvicorn installs the handlers in the main thread)."""
        # Long-lived start-up objects (the app, routes, models) need no collecting; full
        # collections over them were the main source of check-in latency spikes.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        if self.jobs:
            self.jobs.start()
        if on_ready:
            threading.Thread(target=self._wait_ready, args=(on_ready,), daemon=True).start()
        try:
            self.server.run()
        finally:
            if self.jobs:
                self.jobs.stop()
            self.store.dispose()

    def _wait_ready(self, on_ready: Callable[[], None]) -> None:
        import time

        while not self.server.started and not self.server.should_exit:
            time.sleep(0.05)
        if self.server.started:
            try:
                on_ready()
            except Exception:
                logging.getLogger("garrison").exception("start-up step failed")

    def stop(self) -> None:
        self.server.should_exit = True
