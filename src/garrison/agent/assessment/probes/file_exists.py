"""Whether a file (or any file matching a glob) exists."""

from __future__ import annotations

from typing import Literal

from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import DevicePath, Probe, ProbeParams, register_probe


class FileExistsParams(ProbeParams):
    path: DevicePath
    expect: Literal["present", "absent"] = "present"


@register_probe
class FileExists(Probe[FileExistsParams]):
    name = "file_exists"
    Params = FileExistsParams

    def run(self, env: Env, params: FileExistsParams) -> Outcome:
        hits = env.glob(params.path)
        if hits:
            return Outcome.verdict(
                params.expect == "present", value="present", file=hits[0], message=f"{hits[0]} exists"
            )
        return Outcome.verdict(
            params.expect != "present",
            value="absent",
            file=params.path,
            message=f"{params.path} does not exist",
        )
