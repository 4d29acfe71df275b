"""Whether a package is installed (dpkg status, rpmdb)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

PackageName = str


class PackageParams(ProbeParams):
    names: list[PackageName] = Field(min_length=1, max_length=32)  # any of them (distro spellings)
    expect: Literal["installed", "absent"] = "installed"


@register_probe
class Package(Probe[PackageParams]):
    name = "package"
    Params = PackageParams

    def run(self, env: Env, params: PackageParams) -> Outcome:
        db = facts.packages(env)
        for n in params.names:
            if n in db.versions:
                version = db.versions[n]
                shown = f"{n} {version}".strip()
                return Outcome.verdict(
                    params.expect == "installed",
                    value=shown,
                    file=db.source,
                    line=db.lines.get(n),
                    message=f"{shown} is installed",
                )
        return Outcome.verdict(
            params.expect != "installed",
            value="not installed",
            file=db.source,
            message=f"none of {', '.join(params.names)} is installed",
        )
