"""The shipped SigmaHQ ruleset on real logs: it compiles, each regression sample fires its own rule when
imported through the Windows import into the event store (evaluated in the store's write), and OTRF's
recorded attacks raise the detections they should."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from garrison.edr.detection import rules
from garrison.edr.detection.engine import Match
from garrison.edr.detection.stream import DetectionService
from garrison.edr.events import open_event_store
from garrison.edr.events.imports import import_windows, parse_files

DATA = Path(__file__).resolve().parents[2] / "data"
REGRESSION = DATA / "detection" / "regression"
OTRF = DATA / "edr" / "windows" / "otrf"


@pytest.fixture(scope="module")
def shipped() -> rules.RuleSet:
    return rules.load(rules.shipped_texts())


@pytest.fixture(scope="module")
def service(shipped: rules.RuleSet) -> DetectionService:
    return DetectionService(lambda: shipped)


@pytest.fixture()
def store_with_detection(service: DetectionService) -> Iterator[tuple[Any, list[Match]]]:
    found: list[Match] = []
    service.sinks[:] = [found.extend]
    events = open_event_store("duckdb:///:memory:")
    events.listeners.append(service.on_write)
    yield events, found
    events.close()


def test_the_shipped_ruleset_compiles_and_says_why_the_rest_cannot_run(shipped: rules.RuleSet) -> None:
    status = shipped.status()
    assert status["total"] == 3754  # every rule file of the SigmaHQ release, none dropped
    assert status["compiled"] >= 2500
    assert status["compiled"] + status["notRunnable"] == status["total"]
    assert status["byTable"]["DeviceProcessEvents"] > 1500
    assert all(u["reason"] for u in status["notRunnableRules"])
    # the reasons are the telemetry Garrison lacks, not compiler gaps
    assert status["reasons"]["no Garrison telemetry for logsource windows/ps_script/*"] > 100
    compiler_gaps = {r: n for r, n in status["reasons"].items() if not r.startswith("no Garrison telemetry")}
    assert compiler_gaps == {"placeholder %known_cdcs% has no configured values": 2}
    assert status["indexed"] >= 0.95 * status["compiled"]


def _cases() -> list[Path]:
    return sorted(p for p in REGRESSION.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_regression_sample_fires_its_rule(case: Path, store_with_detection: tuple[Any, list[Match]]) -> None:
    events, found = store_with_detection
    info = yaml.safe_load((case / "info.yml").read_text())
    rule_id = info["rule_metadata"][0]["id"]
    samples = [(p.name, p.read_bytes()) for p in case.glob("*.json")]
    out = import_windows(events.write, 1, "dev-1", "win-1", parse_files(samples))
    assert out["stored"] > 0
    fired = {m.rule.id for m in found}
    assert rule_id in fired, f"{case.name}: {sorted(m.rule.title for m in found)}"
    hit = next(m for m in found if m.rule.id == rule_id)
    assert hit.row["DeviceId"] == "dev-1" and hit.row["TenantId"] == 1 and hit.row["ReportId"]  # the stored row


def test_otrf_attack_recordings_raise_their_detections(store_with_detection: tuple[Any, list[Match]]) -> None:
    events, found = store_with_detection
    files = [(p.name, p.read_bytes()) for p in sorted(OTRF.glob("*.zip"))]
    out = import_windows(events.write, 1, "dev-2", "win-2", parse_files(files))
    titles = {m.rule.title for m in found}
    assert "HackTool - SharpView Execution" in titles  # cmd_sharpview_pcre_net: SharpView run from cmd
    assert "PCRE.NET Package Image Load" in titles
    assert len(found) < out["stored"] / 10  # no alert storm
