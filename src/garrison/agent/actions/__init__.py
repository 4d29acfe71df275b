"""The action channel: handlers for the machine actions a check-in delivers.

A handler is a function registered by action type, one module per type in this package (the action
types and their typed parameters are declared in :mod:`garrison.protocol.actions`); it gets the action and an
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
from garrison.protocol.actions import ACTION_TYPES, InvalidActionParams
from garrison.registry import Registry


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
ACTION_HANDLERS: Registry[Handler] = Registry("action handler", package=__name__)
"""Action type → handler; every module of this package is discovered (one file per action type)."""


def register_action(action_type: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        return ACTION_HANDLERS.add(action_type, fn)

    return deco


def run_action(action: ActionOut, host: ActionHost) -> ActionResult:
    handler = ACTION_HANDLERS.get(action.type)
    if handler is None:
        supported = ", ".join(ACTION_HANDLERS)
        return ActionResult(
            id=action.id,
            status="Failed",
            result={"error": f"action type {action.type!r} is not supported by this agent "
                             f"(version {host.ctx.agent_version}; supported: {supported})"},
        )
    spec = ACTION_TYPES.get(action.type)
    try:
        if spec is not None:
            spec.parse(action.params)  # the server validated them too; a handler reads them typed
        outcome = handler(action, host)
    except InvalidActionParams as exc:
        return ActionResult(id=action.id, status="Failed", result={"error": str(exc)[:4000]})
    except Exception as exc:  # noqa: BLE001 - a failing handler must not take the agent down
        return ActionResult(id=action.id, status="Failed",
                            result={"error": f"{type(exc).__name__}: {exc}"[:4000]})
    return ActionResult(id=action.id, status=outcome.status, result=outcome.result)


def resync(kind: str) -> Handler:
    """A handler that has the collectors of ``kind`` send it in full on their next (immediate) run."""

    def handler(action: ActionOut, host: ActionHost) -> Outcome:
        collectors = host.request_resync(kind)
        if not collectors:
            return Outcome("Failed", {"error": f"no enabled collector on this device sends {kind!r}"})
        return Outcome("Succeeded", {"resync": kind, "collectors": collectors})

    return handler
