"""A tenant with a real remediation activity (real KB records, real Ubuntu 20.04 inventory) and the
local servers each connector talks to.

The fake services listen on 127.0.0.1, which integrations refuse by default: the app here is made
with the operator's setting that allows it (``integrations_allowed_networks``), as a site with an
internal Jira would be.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from garrison.integrations import settings as integration_settings
from garrison.server.app import create_app
from garrison.server.runner import load_services
from garrison.server.settings import ServerSettings
from garrison.store.db import Store
from tests.server.conftest import Env, make_tenant
from tests.tvm.prioritisation.conftest import Agent, api, focal_kb, ga_packages, recompute

LOCAL = ["127.0.0.0/8"]


def make_env(store: Store, settings: ServerSettings) -> Iterator[Env]:
    load_services()
    app = create_app(settings, store)
    a, b = make_tenant(store, "alpha"), make_tenant(store, "bravo")
    try:
        with TestClient(app, base_url="https://testserver") as client:
            yield Env(store, client, a, b, app)
    finally:
        integration_settings.configure(integration_settings.IntegrationSettings())  # back to the defaults


def settings_for(tmp_path: Any, allowed: list[str] | None = None, **extra: Any) -> ServerSettings:
    return ServerSettings(data_dir=tmp_path, rate_limit_per_minute=100_000, run_jobs=False, heartbeat_interval=0,
                          integrations_allowed_networks=LOCAL if allowed is None else allowed, **extra)


@pytest.fixture
def env(store: Store, tmp_path: Any) -> Iterator[Env]:
    yield from make_env(store, settings_for(tmp_path))


@pytest.fixture
def local_integrations(tmp_path: Any) -> Iterator[None]:
    """For tests that call senders directly (no app): this process configured as the server would be."""
    integration_settings.configure(settings_for(tmp_path).integrations())
    yield
    integration_settings.configure(integration_settings.IntegrationSettings())

SUDO = "va-_-ubuntu-_-sudo"


def fleet(env: Env, devices: int = 1) -> list[Agent]:
    focal_kb(env)
    agents = [Agent(env, f"web-{i}") for i in range(devices)]
    for a in agents:
        a.inventory(ga_packages())
    recompute(env)
    return agents


def connection(env: Env, kind: str, config: dict[str, Any], secrets: dict[str, str], name: str | None = None) -> int:
    out = api(env, "POST", "/api/integrationConnections", role="admin", expect=201,
              json={"name": name or kind, "kind": kind, "config": config, "secrets": secrets})
    assert "secrets" not in out and set(out["secretsSet"]) == set(secrets)
    return int(out["id"])


def task(env: Env, connection_id: int | None = None, **body: Any) -> dict[str, Any]:
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).isoformat()
    payload = {"recommendationId": SUDO, "dueOn": due, "priority": "High", "requesterNotes": "patch window Friday",
               **body}
    if connection_id is not None:
        payload["ticketConnectionId"] = connection_id
    return dict(api(env, "POST", "/api/remediationTasks", role="security_operator", expect=201, json=payload))
