"""Permission bits of files: no bit beyond ``max_mode``, every bit of ``require`` set."""

from __future__ import annotations

import stat

from pydantic import Field

from garrison.agent.assessment.env import Env, Outcome, mode_str
from garrison.agent.assessment.probes.base import (
    DevicePath,
    IfMissing,
    Probe,
    ProbeParams,
    glob_files,
    register_probe,
    stat_file,
)

Octal = str


def _octal(s: str) -> int:
    return int(s, 8)


class FileModeParams(ProbeParams):
    path: DevicePath | list[DevicePath] = Field(description="file, glob, or list of them; all must comply")
    max_mode: Octal | None = Field(default=None, pattern=r"^[0-7]{3,4}$")
    require: Octal | None = Field(default=None, pattern=r"^[0-7]{3,4}$")
    missing: IfMissing = "error"


@register_probe
class FileMode(Probe[FileModeParams]):
    name = "file_mode"
    Params = FileModeParams

    def run(self, env: Env, params: FileModeParams) -> Outcome:
        files = glob_files(env, params.path, params.missing)
        if isinstance(files, Outcome):
            return files
        allowed = _octal(params.max_mode) if params.max_mode else 0o7777
        required = _octal(params.require) if params.require else 0
        bad: list[tuple[str, int]] = []
        last_mode = 0
        for f in files:
            st = stat_file(env, f, params.missing)
            if isinstance(st, Outcome):
                return st
            mode = stat.S_IMODE(st.st_mode)
            last_mode = mode
            if mode & ~allowed or mode & required != required:
                bad.append((f, mode))
        want = []
        if params.max_mode:
            want.append(f"at most {params.max_mode}")
        if params.require:
            want.append(f"bits {params.require} set")
        if bad:
            f, mode = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            return Outcome.bad(
                f"{f} has mode {mode_str(mode)}, expected {' and '.join(want)}{more}",
                value=mode_str(mode),
                file=f,
            )
        return Outcome.ok(
            f"{len(files)} file(s) with mode {' and '.join(want)}", value=mode_str(last_mode), file=files[-1]
        )
