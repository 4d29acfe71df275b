"""The real app (``env``: two tenants, keys of every role) with the real knowledge base and inventories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.server import conftest as server_conftest
from tests.server.conftest import Env, device_headers, device_report, enroll, upload  # noqa: F401

env = server_conftest.env  # the fixture, shared with tests/server

DATA = Path(__file__).resolve().parents[2] / "data" / "tvm"
INVENTORIES = DATA / "inventories"
FOCAL = DATA / "ubuntu-focal"
GA_STATUS = INVENTORIES / "ubuntu-20.04-ga.dpkg-status"
GA_OS = INVENTORIES / "ubuntu-20.04-ga.os-release"


def import_ga(env: Env, name: str = "focal-ga", tenant: str = "a", role: str = "security_operator") -> dict[str, Any]:
    """The Ubuntu 20.04 GA host, imported through the API as an agentless device (multipart)."""
    keys = env.a if tenant == "a" else env.b
    r = env.client.post("/api/machines/import", headers=keys.headers(role),
                        files={"file": ("status", GA_STATUS.read_bytes()), "osRelease": ("os-release", GA_OS.read_bytes())},
                        data={"deviceName": name})
    assert r.status_code == 200, r.text
    return r.json()


def get(env: Env, path: str, role: str = "analyst", tenant: str = "a", **params: Any) -> Any:
    keys = env.a if tenant == "a" else env.b
    return env.client.get(path, headers=keys.headers(role), params=params or None)
