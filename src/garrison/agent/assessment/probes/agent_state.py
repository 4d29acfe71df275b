"""The Garrison sensor's own protection state.

Reads ``ctx.state_dir`` and what the agent loop records in ``ctx.memory``:

* ``collector_health``: {collector name: {"ok": bool, "error": str|None}}
* ``protection``: {"realtime": bool, ...} from the protection component
* ``drops``: {upload kind: dropped count} from the spool
"""

from __future__ import annotations

import os
import stat
from typing import Literal

from garrison.agent.assessment.env import Env, Outcome, mode_str
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

Fact = Literal[
    "state_dir_private",
    "running_as_root",
    "collectors_healthy",
    "realtime_protection",
    "no_dropped_telemetry",
]


class AgentParams(ProbeParams):
    fact: Fact


@register_probe
class AgentState(Probe[AgentParams]):
    name = "agent"
    Params = AgentParams

    def run(self, env: Env, p: AgentParams) -> Outcome:
        ctx, mem = env.ctx, env.ctx.memory
        if p.fact == "state_dir_private":
            d = str(ctx.state_dir)
            try:
                st = os.stat(ctx.state_dir)
            except OSError as exc:
                return Outcome.err(f"cannot examine the state directory {d}: {exc.strerror}", file=d)
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                return Outcome.bad(
                    f"state directory {d} has mode {mode_str(mode)}; others can read the device credential",
                    value=mode_str(mode),
                    file=d,
                )
            return Outcome.ok(f"state directory {d} is private", value=mode_str(mode), file=d)
        if p.fact == "running_as_root":
            if ctx.is_root:
                return Outcome.ok("the agent runs as root", value="root")
            return Outcome.bad(
                "the agent runs unprivileged: root-only files (shadow, sudoers) are not "
                "assessed and response actions are limited",
                value=str(os.geteuid()),
            )
        if p.fact == "collectors_healthy":
            health = mem.get("collector_health")
            if not isinstance(health, dict) or not health:
                return Outcome.err("no collector health has been recorded yet")
            broken = sorted(n for n, h in health.items() if isinstance(h, dict) and not h.get("ok", False))
            if broken:
                first = health[broken[0]]
                return Outcome.bad(
                    f"collector(s) failing: {', '.join(broken)} ({first.get('error') or 'no detail'})",
                    value=",".join(broken),
                )
            return Outcome.ok(f"{len(health)} collectors healthy", value=str(len(health)))
        if p.fact == "realtime_protection":
            prot = mem.get("protection")
            if not isinstance(prot, dict):
                return Outcome.bad("no protection component reports real-time protection", value="off")
            on = bool(prot.get("realtime"))
            return Outcome.verdict(
                on, value="on" if on else "off", message=f"real-time protection is {'on' if on else 'off'}"
            )
        if p.fact == "no_dropped_telemetry":
            drops = mem.get("drops")
            if not isinstance(drops, dict):
                return Outcome.err("the spool has not reported its counters yet")
            lost = {k: v for k, v in drops.items() if isinstance(v, int) and v > 0}
            if lost:
                return Outcome.bad(
                    f"uploads dropped: {', '.join(f'{k}={v}' for k, v in sorted(lost.items()))}",
                    value=str(sum(lost.values())),
                )
            return Outcome.ok("nothing was dropped", value="0")
        raise AssertionError(p.fact)  # pragma: no cover
