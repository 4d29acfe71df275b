"""Service modules are discovered (no list to keep up to date) and a broken one stops the server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from garrison.core.ingest import UPLOAD_KINDS
from garrison.core.jobs import JOBS
from garrison.registry import modules_named
from garrison.server import runner


def test_every_service_module_is_discovered_and_registers_its_kinds_and_jobs() -> None:
    loaded = runner.load_services()
    assert {"garrison.core.service", "garrison.tvm.service", "garrison.tvm.assessment.service",
            "garrison.tvm.prioritisation.service", "garrison.integrations.service"} <= set(loaded)
    assert {"tvm.match_pending", "tvm.prioritisation.refresh", "integrations.notifications",
            "machine_action_timeouts", "sqlite_analyze", "secure_score_daily_history"} <= set(JOBS)
    assert {"device", "inventory", "runtime", "assessment"} <= set(UPLOAD_KINDS)


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_new_pillar_joins_by_having_a_service_module_and_a_broken_one_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _package(tmp_path, {"fakegarrison/__init__.py": "", "fakegarrison/pillar/__init__.py": "",
                        "fakegarrison/pillar/deep/__init__.py": "", "fakegarrison/pillar/deep/service.py": "X = 1\n",
                        "fakegarrison/pillar/other.py": "raise RuntimeError('never imported')\n",
                        "fakegarrison/agent/__init__.py": "", "fakegarrison/agent/service.py": "raise RuntimeError\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    found = modules_named("fakegarrison", "service", under=("pillar",))
    assert [m.__name__ for m in found] == ["fakegarrison.pillar.deep.service"]  # other layers, other names: untouched
    (tmp_path / "fakegarrison/pillar/deep/service.py").write_text("import fakegarrison.no_such_module\n")
    sys.modules.pop("fakegarrison.pillar.deep.service")
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        modules_named("fakegarrison", "service", under=("pillar",))
    for name in [n for n in sys.modules if n.startswith("fakegarrison")]:
        sys.modules.pop(name)
