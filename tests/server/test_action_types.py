"""Machine action types: declared once in garrison.protocol.actions, their parameters typed and
validated by the server when an action is created (and by the agent before it runs one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.agent.actions import run_action
from garrison.agent.runner import Agent
from garrison.config import AgentConfig
from garrison.core import access, actions
from garrison.core.errors import Invalid
from garrison.protocol import ActionOut
from garrison.protocol.actions import ACTION_TYPES
from garrison.store.db import Store
from garrison.store.models.core import Device


def test_the_server_refuses_unknown_types_and_parameters_the_type_does_not_take(store: Store) -> None:
    with store.system() as s:
        tid = access.create_tenant(s, "t").id
    with store.tenant(tid) as s:
        device = Device(computer_dns_name="host")
        s.add(device)
        s.flush()
        with pytest.raises(Invalid, match="unknown machine action type 'IsolateMachine'; known: CollectInventory"):
            actions.create(s, device, "IsolateMachine", "tester")
        with pytest.raises(Invalid, match=r"invalid CollectInventory parameters at mode: Extra inputs"):
            actions.create(s, device, "CollectInventory", "tester", params={"mode": "Full"})
        ok = actions.create(s, device, "CollectInventory", "tester")
        assert ok.type == "CollectInventory" and ok.params == {}


def test_every_action_type_has_an_agent_handler_and_the_api_routes_follow_the_types(tmp_path: Path) -> None:
    from garrison.agent.actions import ACTION_HANDLERS
    from garrison.server.api.machines import router

    assert set(ACTION_TYPES) <= set(ACTION_HANDLERS)
    paths = {getattr(r, "path", "") for r in router.routes}
    for spec in ACTION_TYPES.values():
        if spec.api_path:
            assert f"/api/machines/{{machine_id}}/{spec.api_path}" in paths
    # the agent checks the parameters too: a server that sent bad ones gets a Failed action, not a crash
    agent = Agent(AgentConfig(state_dir=tmp_path, collectors_enabled=["device"]))
    agent.setup_collectors()
    result = run_action(ActionOut(id="x", type="Offboard", params={"wipe": True}), agent)
    assert result.status == "Failed" and "invalid Offboard parameters at wipe" in result.result["error"]
    assert not agent._stop_requested
