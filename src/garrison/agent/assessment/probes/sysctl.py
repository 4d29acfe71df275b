"""A kernel parameter's running value, read from /proc/sys."""

from __future__ import annotations

from pydantic import Field

from garrison.agent.assessment.compare import BadValue, Expected, Op, compare, describe
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import IfMissing, Probe, ProbeParams, if_missing, register_probe


class SysctlParams(ProbeParams):
    key: str = Field(pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$", max_length=128)
    op: Op = "eq"
    value: Expected
    missing: IfMissing = "error"


@register_probe
class Sysctl(Probe[SysctlParams]):
    name = "sysctl"
    Params = SysctlParams

    def run(self, env: Env, params: SysctlParams) -> Outcome:
        path = "/proc/sys/" + params.key.replace(".", "/")
        text = env.read_text(path)
        if text is None:
            return if_missing(params.missing, f"{params.key} does not exist in this kernel", path)
        value = " ".join(text.split())
        want = describe(params.op, params.value)
        try:
            ok = compare(value, params.op, params.value)
        except BadValue as exc:
            return Outcome.bad(f"{params.key} = {value!r}: {exc}", value=value, file=path)
        return Outcome.verdict(
            ok, value=value, file=path, message=f"{params.key} = {value} (expected {want})"
        )
