"""Owner and group of files, resolved with the device's own user and group databases."""

from __future__ import annotations

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome, ProbeError
from garrison.agent.assessment.probes.base import (
    DevicePath,
    IfMissing,
    Probe,
    ProbeParams,
    glob_files,
    register_probe,
    stat_file,
)


class FileOwnerParams(ProbeParams):
    path: DevicePath | list[DevicePath]
    user: list[str | int] = Field(default=["root"], min_length=1)
    group: list[str | int] | None = None
    missing: IfMissing = "error"


def _names(env: Env) -> tuple[dict[int, str], dict[int, str]]:
    try:
        users = {e.uid: e.name for e in facts.passwd(env)}
    except ProbeError:
        users = {}
    try:
        groups = {e.gid: e.name for e in facts.group(env)}
    except ProbeError:
        groups = {}
    return users, groups


@register_probe
class FileOwner(Probe[FileOwnerParams]):
    name = "file_owner"
    Params = FileOwnerParams

    def run(self, env: Env, params: FileOwnerParams) -> Outcome:
        files = glob_files(env, params.path, params.missing)
        if isinstance(files, Outcome):
            return files
        users, groups = _names(env)
        ok_users = {str(u) for u in params.user}
        ok_groups = {str(g) for g in params.group} if params.group else None
        seen = ""
        for f in files:
            st = stat_file(env, f, params.missing)
            if isinstance(st, Outcome):
                return st
            user = users.get(st.st_uid, str(st.st_uid))
            grp = groups.get(st.st_gid, str(st.st_gid))
            seen = f"{user}:{grp}"
            if not ({user, str(st.st_uid)} & ok_users):
                return Outcome.bad(
                    f"{f} is owned by {user}, expected {'/'.join(sorted(ok_users))}", value=seen, file=f
                )
            if ok_groups is not None and not ({grp, str(st.st_gid)} & ok_groups):
                return Outcome.bad(
                    f"{f} has group {grp}, expected {'/'.join(sorted(ok_groups))}", value=seen, file=f
                )
        return Outcome.ok(f"{len(files)} file(s) owned as expected", value=seen, file=files[-1])
