"""Fixtures of the console tests: a real server (uvicorn in a thread, the real app) on a SQLite
state store, a fleet seeded through the real agent endpoints, and Debian's Chromium driven by
Playwright. Browser tests use SQLite only, to stay fast."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from garrison.core import access
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from garrison.store.models import metadata
from tests.web import fleet

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
USERS = {"admin": "ada", "security_operator": "sam", "analyst": "ann"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Console:
    """A running server with a seeded tenant."""

    url: str
    store: Store
    app: Any
    tenant_id: int
    other_tenant_id: int
    data_dir: Path
    fleet: fleet.Fleet
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    def console(self, path: str = "/") -> str:
        return self.url + "/console" + path


def make_store(path: Path, url: str | None = None) -> Store:
    store = Store(url or f"sqlite:///{path / 'state.db'}")
    metadata.create_all(store.engine)
    return store


def seed_identities(store: Store) -> tuple[int, int]:
    with store.system() as s:
        t = access.create_tenant(s, "acme")
        other = access.create_tenant(s, "umbrella")
        for role, name in USERS.items():
            access.create_user(s, t.id, name, PASSWORD, role, email=f"{name}@acme.example")
        access.create_user(s, other.id, "otto", PASSWORD, "admin")
        return t.id, other.id


class ThreadedServer:
    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="console-test-server", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_console(tmp: Path, seed: bool = True, db_url: str | None = None) -> tuple[Console, ThreadedServer]:
    load_services()
    store = make_store(tmp, db_url)
    tenant_id, other_id = seed_identities(store)
    port = free_port()
    settings = ServerSettings(data_dir=tmp, host="127.0.0.1", port=port, insecure_http=True,
                              rate_limit_per_minute=100_000, run_jobs=False)
    app = create_app(settings, store)
    srv = ThreadedServer(app, port)
    srv.start()
    url = f"http://127.0.0.1:{port}"
    seeded = fleet.seed(url, store, tenant_id) if seed else fleet.Fleet()
    return Console(url, store, app, tenant_id, other_id, tmp, seeded), srv


@pytest.fixture(scope="module")
def console_pg(tmp_path_factory: pytest.TempPathFactory, pg_base_url: str) -> Iterator[Console]:
    """The same seeded server on PostgreSQL (for the tests that are not browser tests)."""
    from tests.pg import create_database

    env, srv = start_console(tmp_path_factory.mktemp("console-pg"), db_url=create_database(pg_base_url))
    yield env
    srv.stop()
    env.store.dispose()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One seeded server for the whole session (tests that change data clean up after themselves
    or work on their own objects)."""
    env, srv = start_console(tmp_path_factory.mktemp("console"))
    yield env
    srv.stop()
    env.store.dispose()


# --- the browser ------------------------------------------------------------------------

# ``browser`` (one per process) is in tests/browser.py, shared through the root conftest.


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=console.url)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # JavaScript errors and failed sub-resources; a page answered 401/403/404 on purpose is no error
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not
          msg.text.startswith("Failed to load resource: the server responded with a status of 4") else None)
    pg.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} {req.failure}")
          if req.failure != "net::ERR_ABORTED" else None)
    yield pg
    context.close()
    assert not errors, f"errors in the browser console: {errors}"


def sign_in(pg: Any, console: Console, role: str = "admin", next_path: str = "") -> None:
    pg.goto(console.console("/login") + (f"?next=/console{next_path}" if next_path else ""))
    pg.get_by_label("User name").fill(console.users[role])
    pg.get_by_label("Password").fill(PASSWORD)
    pg.get_by_role("button", name="Sign in").click()
    pg.wait_for_url(lambda u: "/console/login" not in u)


def shot(pg: Any, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=full_page)
    return path


# --- plain HTTP clients with a console session -------------------------------------------

def http_session(console: Console, role: str = "admin") -> httpx.Client:
    """An HTTP client signed in to the console like a browser (cookie + CSRF token)."""
    client = httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)
    r = client.get("/console/login")
    token = fleet.find_csrf(r.text)
    r = client.post("/console/login", data={"username": console.users[role], "password": PASSWORD,
                                            "csrf_token": token, "next": "/console/"})
    assert r.status_code == 303, r.text[:500]
    return client


def csrf_of(client: httpx.Client, path: str = "/console/devices") -> str:
    r = client.get(path)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return fleet.find_csrf(r.text)
