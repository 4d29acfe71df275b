"""Service modules are loaded or the server does not start: a missing one is not skipped silently."""

from __future__ import annotations

import pytest

from garrison.core.jobs import JOBS
from garrison.server import runner


def test_a_missing_service_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "SERVICE_MODULES", (*runner.SERVICE_MODULES, "garrison.tvm.no_such_service"))
    with pytest.raises(ModuleNotFoundError, match="no_such_service"):
        runner.load_services()


def test_every_service_registers_its_jobs() -> None:
    runner.load_services()
    assert {"tvm.match_pending", "tvm.prioritisation.refresh", "integrations.notifications"} <= set(JOBS)
