"""The detection service at ingest: while the ruleset compiles in the background, writes return at once and
their rows are evaluated once it is ready (none skipped); past the backlog bound they are counted."""

from __future__ import annotations

import threading

from garrison.edr.detection import rules, stream
from garrison.edr.detection.engine import Match

RULE = """title: Whoami
id: 5f0b8c63-3c0e-4d4e-9d0b-000000000020
logsource: {product: linux, category: process_creation}
detection:
    selection:
        Image|endswith: '/whoami'
    condition: selection
"""


def _rows(n: int) -> dict[str, list[dict[str, object]]]:
    return {"DeviceProcessEvents": [{"ActionType": "ProcessCreated", "FolderPath": "/usr/bin/whoami",
                                     "TenantId": 1, "DeviceId": "d"} for _ in range(n)]}


def test_writes_during_the_compile_are_kept_and_evaluated_after() -> None:
    release = threading.Event()
    ruleset = rules.load([("w.yml", RULE)])

    def slow_load() -> rules.RuleSet:
        assert release.wait(30)
        return ruleset

    found: list[Match] = []
    service = stream.DetectionService(slow_load, found.extend, background=True)
    service.on_write(_rows(2))  # returns although the ruleset is not compiled yet
    service.on_write(_rows(1))
    assert found == [] and service._loader is not None
    release.set()
    service._loader.join(30)
    assert len(found) == 3 and service.unevaluated == 0
    service.on_write(_rows(1))  # ready: evaluated in the write's own pass
    assert len(found) == 4


def test_past_the_backlog_bound_events_are_counted_not_kept(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(stream, "MAX_BACKLOG_EVENTS", 2)
    release = threading.Event()
    ruleset = rules.load([("w.yml", RULE)])
    found: list[Match] = []
    service = stream.DetectionService(lambda: (release.wait(30), ruleset)[1], found.extend, background=True)
    service.on_write(_rows(2))
    service.on_write(_rows(3))
    assert service.unevaluated == 3
    release.set()
    assert service._loader is not None
    service._loader.join(30)
    assert len(found) == 2
