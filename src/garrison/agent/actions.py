"""The action channel: handlers for the machine actions a check-in delivers.

A handler is a function registered by action type; it gets the action and an
:class:`ActionHost` (the running agent) and returns the final status and a result
document. A handler that raises, and an action type this agent does not know, end
as ``Failed`` with a message that says why — the server always gets an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from garrison.agent.collectors.base import AgentContext
from garrison.protocol import ActionOut, ActionResult, ActionStatus


class ActionHost(Protocol):
    """What a handler may ask of the running agent."""

    ctx: AgentContext

    def request_resync(self, kind: str) -> list[str]:
        """Have the collectors of ``kind`` send it in full on their next (immediate) run."""
        ...

    def request_stop(self, *, offboard: bool) -> None:
        """Stop after the current cycle; with ``offboard`` also forget the device credential."""
        ...


@dataclass
class Outcome:
    status: ActionStatus
    result: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[ActionOut, ActionHost], Outcome]
ACTION_HANDLERS: dict[str, Handler] = {}


def register_action(action_type: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        if action_type in ACTION_HANDLERS:
            raise ValueError(f"action handler {action_type!r} registered twice")
        ACTION_HANDLERS[action_type] = fn
        return fn

    return deco


def run_action(action: ActionOut, host: ActionHost) -> ActionResult:
    handler = ACTION_HANDLERS.get(action.type)
    if handler is None:
        supported = ", ".join(sorted(ACTION_HANDLERS))
        return ActionResult(
            id=action.id,
            status="Failed",
            result={"error": f"action type {action.type!r} is not supported by this agent "
                             f"(version {host.ctx.agent_version}; supported: {supported})"},
        )
    try:
        outcome = handler(action, host)
    except Exception as exc:  # noqa: BLE001 - a failing handler must not take the agent down
        return ActionResult(id=action.id, status="Failed",
                            result={"error": f"{type(exc).__name__}: {exc}"[:4000]})
    return ActionResult(id=action.id, status=outcome.status, result=outcome.result)


def _resync(kind: str) -> Handler:
    def handler(action: ActionOut, host: ActionHost) -> Outcome:
        collectors = host.request_resync(kind)
        if not collectors:
            return Outcome("Failed", {"error": f"no enabled collector on this device sends {kind!r}"})
        return Outcome("Succeeded", {"resync": kind, "collectors": collectors})

    return handler


register_action("CollectInventory")(_resync("inventory"))
register_action("RunConfigurationAssessment")(_resync("assessment"))


@register_action("Offboard")
def _offboard(action: ActionOut, host: ActionHost) -> Outcome:
    host.request_stop(offboard=True)
    return Outcome("Succeeded", {"offboarded": True})


@register_action("RunAntiVirusScan")
def _run_antivirus_scan(action: ActionOut, host: ActionHost) -> Outcome:
    # The scanner (libyara, rule packs) is imported when a scan runs, not when the agent starts.
    from garrison.agent.protection.action import run_antivirus_scan

    return run_antivirus_scan(action, host)
