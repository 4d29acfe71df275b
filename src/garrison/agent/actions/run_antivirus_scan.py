"""RunAntiVirusScan: start a scan in the background (``garrison.agent.protection``)."""

from garrison.agent.actions import ActionHost, Outcome, register_action
from garrison.protocol import ActionOut


@register_action("RunAntiVirusScan")
def run_antivirus_scan(action: ActionOut, host: ActionHost) -> Outcome:
    # The scanner (libyara, rule packs) is imported when a scan runs, not when the agent starts.
    from garrison.agent.protection.action import run_antivirus_scan as run

    return run(action, host)
