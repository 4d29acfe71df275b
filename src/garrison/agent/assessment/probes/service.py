"""Service state from systemd's own files, no systemctl needed.

* enabled: a symlink to the unit in a ``*.wants``/``*.requires`` directory (admin or vendor),
  or a SysV ``S??name`` link in rc2/3/5.d; an alias link in /etc/systemd/system counts for its
  target; a unit masked to /dev/null is never enabled.
* active: when systemd is PID 1, a running unit has ``/run/systemd/units/invocation:<unit>``;
  without systemd (containers, other inits) the check's process names are looked up in /proc.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

Unit = str


class ServiceParams(ProbeParams):
    units: list[Unit] = Field(min_length=1, max_length=16)
    expect: Literal["enabled", "not_enabled", "active", "inactive", "masked"]
    processes: list[str] = Field(default_factory=list, max_length=16)  # comm names, for "active"


def enabled_by(env: Env, unit: str) -> str | None:
    """The link that enables ``unit``, or None."""
    if facts.unit_masked(env, unit):
        return None
    links = facts.wants_links(env)
    if unit in links:
        return links[unit]
    # An alias (sshd.service -> ssh.service) is enabled when its target is.
    target = env.readlink(f"/etc/systemd/system/{unit}")
    if target and target != "/dev/null":
        name = os.path.basename(target)
        if name != unit and name in links:
            return links[name]
    if unit.endswith(".service"):
        return facts.sysv_enabled(env, unit[: -len(".service")])
    return None


def active_state(env: Env, unit: str, processes: list[str]) -> tuple[bool | None, str]:
    """(active?, how it was decided); None when it cannot be told."""
    if facts.systemd_running(env):
        return facts.unit_active(env, unit), f"/run/systemd/units/invocation:{unit}"
    if processes:
        running = facts.process_names(env)
        for p in processes:
            if p[:15] in running:
                return True, f"process {p}"
        return False, "no process " + "/".join(processes)
    return None, "systemd is not running and the check names no process"


@register_probe
class Service(Probe[ServiceParams]):
    name = "service"
    Params = ServiceParams

    def run(self, env: Env, params: ServiceParams) -> Outcome:
        names = ", ".join(params.units)
        if params.expect in ("enabled", "not_enabled"):
            for u in params.units:
                link = enabled_by(env, u)
                if link:
                    return Outcome.verdict(
                        params.expect == "enabled",
                        value="enabled",
                        file=link,
                        message=f"{u} is enabled ({link})",
                    )
            return Outcome.verdict(
                params.expect != "enabled", value="not enabled", message=f"{names}: not enabled"
            )
        if params.expect == "masked":
            for u in params.units:
                link = facts.unit_masked(env, u)
                if link:
                    return Outcome.ok(f"{u} is masked", value="masked", file=link)
            return Outcome.bad(f"{names}: not masked", value="not masked")
        unknown = []
        for u in params.units:
            active, how = active_state(env, u, params.processes)
            if active:
                return Outcome.verdict(
                    params.expect == "active", value="active", message=f"{u} is active ({how})"
                )
            if active is None:
                unknown.append(how)
        if unknown:
            return Outcome.err(f"cannot tell whether {names} is active: {unknown[0]}")
        return Outcome.verdict(params.expect != "active", value="inactive", message=f"{names}: not active")
