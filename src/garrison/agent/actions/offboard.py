"""Offboard: stop after this cycle and forget the device credential."""

from garrison.agent.actions import ActionHost, Outcome, register_action
from garrison.protocol import ActionOut


@register_action("Offboard")
def offboard(action: ActionOut, host: ActionHost) -> Outcome:
    host.request_stop(offboard=True)
    return Outcome("Succeeded", {"offboarded": True})
