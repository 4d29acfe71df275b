"""World-writable, SUID/SGID and unowned files in system directories.

The walk is bounded: only the given roots, a depth per root, no symlink is followed, no other
file system is entered, and at most ``max_entries`` entries are examined. A walk that hits the
cap without finding a violation is an error, never a pass. Checks over the same roots share
one walk per evaluation.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome, ProbeError
from garrison.agent.assessment.probes.base import DevicePath, Probe, ProbeParams, register_probe

WALK_CAP = 1_000_000


class Root(ProbeParams):
    path: DevicePath
    max_depth: int = Field(default=32, ge=0, le=64)


class SystemFilesParams(ProbeParams):
    roots: list[Root] = Field(min_length=1, max_length=32)
    find: Literal["world_writable", "suid", "sgid", "unowned"]
    allow: list[str] = Field(default_factory=list, max_length=256)  # device path globs
    max_entries: int = Field(default=300_000, ge=1, le=WALK_CAP)


@dataclass(frozen=True)
class Hit:
    path: str
    mode: int
    uid: int
    gid: int
    is_dir: bool


@dataclass(frozen=True)
class Walk:
    hits: list[Hit]  # entries with a special bit, world-writable, or any owner (kept for 'unowned')
    owners: set[tuple[int, int]]
    examined: int
    truncated: bool


def _walk(env: Env, roots: tuple[tuple[str, int], ...], cap: int) -> Walk:
    hits: list[Hit] = []
    owners: set[tuple[int, int]] = set()
    examined = 0
    truncated = False
    root_prefix = str(env.ctx.root).rstrip("/")

    def rel(p: str) -> str:
        return p[len(root_prefix) :] if root_prefix else p

    for root, max_depth in roots:
        host = env.path(root)
        if host.is_symlink() or not host.is_dir():
            continue  # /bin -> usr/bin on merged-/usr systems: walked through its target
        env.touch(root)
        dev = host.stat().st_dev
        stack: list[tuple[str, int]] = [(str(host), 0)]
        while stack and not truncated:
            d, depth = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            with it:
                for e in it:
                    examined += 1
                    if examined > cap:
                        truncated = True
                        break
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    m = st.st_mode
                    owners.add((st.st_uid, st.st_gid))
                    if stat.S_ISDIR(m):
                        if m & 0o002 and not m & stat.S_ISVTX:
                            hits.append(Hit(rel(e.path), m, st.st_uid, st.st_gid, True))
                        if depth < max_depth and st.st_dev == dev:
                            stack.append((e.path, depth + 1))
                    elif stat.S_ISREG(m) and m & (stat.S_ISUID | stat.S_ISGID | 0o002):
                        hits.append(Hit(rel(e.path), m, st.st_uid, st.st_gid, False))
    return Walk(hits, owners, examined, truncated)


def _first_unowned(
    env: Env, roots: tuple[tuple[str, int], ...], cap: int, uids: set[int], gids: set[int]
) -> str | None:
    """First file whose owner or group has no name; a second walk only when the first saw one."""
    root_prefix = str(env.ctx.root).rstrip("/")
    examined = 0
    for root, max_depth in roots:
        host = env.path(root)
        if host.is_symlink() or not host.is_dir():
            continue
        stack = [(str(host), 0)]
        while stack:
            d, depth = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            with it:
                for e in it:
                    examined += 1
                    if examined > cap:
                        return None
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_uid not in uids or st.st_gid not in gids:
                        return e.path[len(root_prefix) :] if root_prefix else e.path
                    if stat.S_ISDIR(st.st_mode) and depth < max_depth:
                        stack.append((e.path, depth + 1))
    return None


@register_probe
class SystemFiles(Probe[SystemFilesParams]):
    name = "system_files"
    Params = SystemFilesParams

    def run(self, env: Env, p: SystemFilesParams) -> Outcome:
        roots = tuple((r.path.rstrip("/") or "/", r.max_depth) for r in p.roots)
        walk = env.cached(("walk", roots, p.max_entries), lambda: _walk(env, roots, p.max_entries))
        where = ", ".join(r for r, _ in roots)
        if p.find == "unowned":
            uids = {u.uid for u in facts.passwd(env)}
            gids = {g.gid for g in facts.group(env)}
            if all(u in uids and g in gids for u, g in walk.owners):
                return self._clean(walk, where, "unowned files")
            path = _first_unowned(env, roots, p.max_entries, uids, gids)
            if path is None:
                raise ProbeError("the walk stopped at its cap before locating the unowned file")
            return Outcome.bad(f"{path} has an owner or group without a name", file=path, value=path)
        bits = {"suid": stat.S_ISUID, "sgid": stat.S_ISGID}.get(p.find)
        found = []
        for h in walk.hits:
            if bits is not None:
                if h.is_dir or not h.mode & bits:
                    continue
            elif not h.mode & 0o002:
                continue
            if any(fnmatch.fnmatchcase(h.path, pat) for pat in p.allow):
                continue
            found.append(h)
        label = {"world_writable": "world-writable", "suid": "unexpected SUID", "sgid": "unexpected SGID"}[
            p.find
        ]
        if found:
            shown = ", ".join(h.path for h in found[:10]) + (
                f" (+{len(found) - 10} more)" if len(found) > 10 else ""
            )
            return Outcome.bad(
                f"{len(found)} {label} file(s): {shown}", value=shown[:1024], file=found[0].path
            )
        return self._clean(walk, where, f"{label} files")

    @staticmethod
    def _clean(walk: Walk, where: str, what: str) -> Outcome:
        if walk.truncated:
            return Outcome.err(
                f"the walk of {where} stopped after {walk.examined - 1} entries (cap); "
                f"{what} may have been missed"
            )
        # No entry count in the evidence: it changes with every unrelated file and would make deltas noisy.
        return Outcome.ok(f"no {what} under {where}", value="0")
