"""The action handler registry: known types, unknown types, failing handlers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from garrison.agent.actions import ACTION_HANDLERS, Outcome, register_action, run_action
from garrison.agent.collectors.base import COLLECTORS, AgentContext, Collector
from garrison.agent.runner import Agent
from garrison.config import AgentConfig
from garrison.protocol import ActionOut


class Assessment(Collector):
    """A collector plugin that sends kind ``assessment`` (the real one lives elsewhere)."""

    name = "test_assessment"
    kinds: ClassVar[tuple[str, ...]] = ("assessment",)

    def collect(self, ctx: AgentContext) -> list[tuple[str, dict[str, Any]]]:
        return []


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Agent]:
    """A real agent with its collectors set up (no server needed: handlers act locally)."""
    COLLECTORS.add(Assessment.name, Assessment)
    try:
        agent = Agent(AgentConfig(state_dir=tmp_path, collectors_enabled=["device", "inventory", Assessment.name]))
        agent.setup_collectors()
    finally:
        COLLECTORS.remove(Assessment.name)
    yield agent


def test_the_required_handlers_exist() -> None:
    assert {"CollectInventory", "RunConfigurationAssessment", "Offboard"} <= set(ACTION_HANDLERS)


def test_collect_inventory_asks_for_a_full_inventory_now(host: Agent) -> None:
    host.collectors["inventory"].next_due = 1e12
    result = run_action(ActionOut(id="a1", type="CollectInventory"), host)
    assert result.id == "a1" and result.status == "Succeeded"
    assert result.result == {"resync": "inventory", "collectors": ["inventory"]}
    assert host.ctx.memory["resync_inventory"] is True
    assert host.collectors["inventory"].next_due == 0.0  # runs on the next turn of the loop


def test_assessment_runs_again(host: Agent) -> None:
    result = run_action(ActionOut(id="a2", type="RunConfigurationAssessment"), host)
    assert result.status == "Succeeded" and result.result["collectors"] == [Assessment.name]
    assert host.ctx.memory["resync_assessment"] is True


def test_resync_without_a_collector_fails_clearly(host: Agent) -> None:
    host.collectors[Assessment.name].enabled = False
    result = run_action(ActionOut(id="a3", type="RunConfigurationAssessment"), host)
    assert result.status == "Failed" and "no enabled collector" in result.result["error"]


def test_offboard_stops_and_forgets(host: Agent) -> None:
    result = run_action(ActionOut(id="a4", type="Offboard"), host)
    assert result.status == "Succeeded" and host._stop_requested and host._offboard


def test_unknown_types_fail_with_a_clear_message(host: Agent) -> None:
    result = run_action(ActionOut(id="a5", type="IsolateMachine", params={"mode": "Full"}), host)
    assert result.status == "Failed"
    msg = result.result["error"]
    assert "'IsolateMachine' is not supported" in msg and host.ctx.agent_version in msg and "CollectInventory" in msg


def test_a_failing_handler_is_a_failed_action(host: Agent) -> None:
    @register_action("TestExplodes")
    def explode(action: ActionOut, h: Agent) -> Outcome:  # type: ignore[misc]
        raise PermissionError("no access to /root")

    try:
        result = run_action(ActionOut(id="a6", type="TestExplodes"), host)
    finally:
        ACTION_HANDLERS.remove("TestExplodes")
    assert result.status == "Failed" and result.result == {"error": "PermissionError: no access to /root"}


def test_a_type_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_action("Offboard")(lambda a, h: Outcome("Succeeded"))
