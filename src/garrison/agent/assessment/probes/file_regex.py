"""Whether a line of some files matches a regular expression (comments ignored by default)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from garrison.agent.assessment import confparse
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import DevicePath, Probe, ProbeParams, register_probe


class FileRegexParams(ProbeParams):
    path: DevicePath | list[DevicePath]
    pattern: str = Field(min_length=1, max_length=512)
    expect: Literal["match", "no_match"] = "match"
    ignore_comments: bool = True
    ignore_case: bool = False
    # When no file exists: "empty" treats it as having no lines (so nothing matches).
    missing: Literal["empty", "error", "fail", "pass", "not_applicable"] = "empty"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        re.compile(v)
        return v


@register_probe
class FileRegex(Probe[FileRegexParams]):
    name = "file_regex"
    Params = FileRegexParams

    def run(self, env: Env, params: FileRegexParams) -> Outcome:
        patterns = params.path if isinstance(params.path, list) else [params.path]
        files = [f for f in confparse.expand(env, patterns) if env.read_text(f) is not None]
        if not files and params.missing != "empty":
            return Outcome(
                params.missing,
                file=patterns[0],  # "empty" handled above
                message=f"{', '.join(patterns)} does not exist",
            )
        rx = re.compile(params.pattern, re.IGNORECASE if params.ignore_case else 0)
        for f in files:
            for n, line in enumerate((env.read_text(f) or "").splitlines(), 1):
                if params.ignore_comments and line.lstrip().startswith("#"):
                    continue
                if rx.search(line):
                    return Outcome.verdict(
                        params.expect == "match",
                        value=line.strip()[:512],
                        file=f,
                        line=n,
                        message=f"{f}:{n} matches /{params.pattern}/",
                    )
        where = ", ".join(files) if files else ", ".join(patterns)
        return Outcome.verdict(
            params.expect == "no_match",
            file=files[0] if files else patterns[0],
            message=f"no line of {where} matches /{params.pattern}/",
        )
