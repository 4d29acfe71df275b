"""A tenant with a real remediation activity (real KB records, real Ubuntu 20.04 inventory) and the
local servers each connector talks to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.server.conftest import Env, env  # noqa: F401
from tests.tvm.prioritisation.conftest import Agent, api, focal_kb, ga_packages, recompute

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
