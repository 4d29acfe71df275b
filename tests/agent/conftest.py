"""Fixtures of the agent tests: real Garrison servers on loopback (see harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.harness import Server, free_port


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(name: str = "server", port: int | None = None, insecure: bool = False, start: bool = True) -> Server:
        srv = Server(tmp_path / name, port or free_port(), insecure=insecure)
        srv.provision()
        servers.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in servers:
        srv.kill()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that do not stop it."""
    srv = Server(tmp_path_factory.mktemp("shared") / "server", free_port())
    srv.provision()
    srv.start()
    yield srv
    srv.kill()
