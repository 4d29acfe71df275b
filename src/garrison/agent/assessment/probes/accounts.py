"""Facts of the user and group databases (/etc/passwd, /etc/group, /etc/shadow, login.defs)."""

from __future__ import annotations

import stat
from collections import Counter
from typing import Literal

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome, mode_str
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

Fact = Literal[
    "uid0_only_root",  # only root has UID 0
    "no_empty_passwords",  # no account has an empty password field (shadow, or passwd if unshadowed)
    "all_shadowed",  # every passwd entry points to the shadow file ('x')
    "unique_uids",
    "unique_usernames",
    "unique_gids",
    "unique_group_names",
    "passwd_groups_exist",  # every primary GID in passwd exists in group
    "root_gid_0",
    "shadow_group_empty",  # the 'shadow' group has no members
    "no_legacy_plus",  # no NIS '+' entries
    "system_accounts_nologin",  # accounts below UID_MIN have no login shell
    "password_max_days",  # accounts with a password: max days set and <= threshold
    "password_min_days",  # >= threshold
    "password_warn_days",  # >= threshold
    "home_dir_mode",  # home directories of users (UID >= UID_MIN) at most ``mode``
]
NOLOGIN_SHELLS = {
    "/usr/sbin/nologin",
    "/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
    "/bin/nologin",
    "/usr/bin/nologin",
}
# Accounts that ship with a real "shell" that is not an interactive login.
SPECIAL_SYSTEM = {"root", "sync", "shutdown", "halt"}


class AccountsParams(ProbeParams):
    fact: Fact
    threshold: int | None = None
    mode: str | None = Field(default=None, pattern=r"^[0-7]{3,4}$")
    exempt: list[str] = Field(default_factory=list, max_length=64)


def _no_duplicates(what: str, values: list[tuple[object, int]], file: str, ok: str) -> Outcome:
    """Fail on the first value (with the line of its last occurrence) that ``values`` repeats."""
    counts = Counter(v for v, _ in values)
    d = [(v, n) for v, n in values if counts[v] > 1]
    if d:
        return Outcome.bad(f"duplicate {what} {d[0][0]}", value=str(d[0][0]), file=file, line=d[-1][1])
    return Outcome.ok(ok, file=file)


@register_probe
class Accounts(Probe[AccountsParams]):
    name = "accounts"
    Params = AccountsParams

    def run(self, env: Env, p: AccountsParams) -> Outcome:
        fact = p.fact
        if fact in (
            "uid0_only_root",
            "all_shadowed",
            "unique_uids",
            "unique_usernames",
            "root_gid_0",
            "passwd_groups_exist",
            "system_accounts_nologin",
            "home_dir_mode",
        ):
            users = [u for u in facts.passwd(env) if not u.name.startswith(("+", "-"))]
        if fact == "uid0_only_root":
            others = [u for u in users if u.uid == 0 and u.name != "root"]
            if others:
                u = others[0]
                return Outcome.bad(f"{u.name} has UID 0", value=u.name, file="/etc/passwd", line=u.line)
            return Outcome.ok("only root has UID 0", value="root", file="/etc/passwd")
        if fact == "no_empty_passwords":
            for u in facts.passwd(env):
                if u.password == "" and not u.name.startswith(("+", "-")):
                    return Outcome.bad(
                        f"{u.name} has an empty password field in /etc/passwd",
                        value=u.name,
                        file="/etc/passwd",
                        line=u.line,
                    )
            for s in facts.shadow(env):
                if s.hash == "":
                    return Outcome.bad(
                        f"{s.name} has an empty password", value=s.name, file="/etc/shadow", line=s.line
                    )
            return Outcome.ok("no account has an empty password", file="/etc/shadow")
        if fact == "all_shadowed":
            for u in users:
                if u.password not in ("x", "*", "!"):
                    return Outcome.bad(
                        f"{u.name} keeps its password hash in /etc/passwd",
                        value=u.name,
                        file="/etc/passwd",
                        line=u.line,
                    )
            return Outcome.ok("every account uses the shadow file", file="/etc/passwd")
        if fact in ("unique_uids", "unique_usernames"):
            by_uid = fact == "unique_uids"
            return _no_duplicates(
                "UID" if by_uid else "user name",
                [(u.uid if by_uid else u.name, u.line) for u in users],
                "/etc/passwd",
                f"{len(users)} accounts, no duplicates",
            )
        if fact in ("unique_gids", "unique_group_names"):
            groups = [g for g in facts.group(env) if not g.name.startswith(("+", "-"))]
            by_gid = fact == "unique_gids"
            return _no_duplicates(
                "GID" if by_gid else "group name",
                [(g.gid if by_gid else g.name, g.line) for g in groups],
                "/etc/group",
                f"{len(groups)} groups, no duplicates",
            )
        if fact == "passwd_groups_exist":
            gids = {g.gid for g in facts.group(env)}
            for u in users:
                if u.gid not in gids:
                    return Outcome.bad(
                        f"{u.name}'s primary group {u.gid} does not exist",
                        value=str(u.gid),
                        file="/etc/passwd",
                        line=u.line,
                    )
            return Outcome.ok("every primary group exists", file="/etc/passwd")
        if fact == "root_gid_0":
            root = next((u for u in users if u.name == "root"), None)
            if root is None:
                return Outcome.bad("there is no root account", file="/etc/passwd")
            return Outcome.verdict(
                root.gid == 0,
                value=str(root.gid),
                file="/etc/passwd",
                line=root.line,
                message=f"root's primary GID is {root.gid}",
            )
        if fact == "shadow_group_empty":
            sg = next((g for g in facts.group(env) if g.name == "shadow"), None)
            if sg is None:
                return Outcome.ok("there is no shadow group", file="/etc/group")
            if sg.members:
                return Outcome.bad(
                    f"the shadow group has members: {', '.join(sg.members)}",
                    value=",".join(sg.members),
                    file="/etc/group",
                    line=sg.line,
                )
            prim = [u for u in facts.passwd(env) if u.gid == sg.gid]
            if prim:
                return Outcome.bad(
                    f"{prim[0].name} has shadow as primary group",
                    value=prim[0].name,
                    file="/etc/passwd",
                    line=prim[0].line,
                )
            return Outcome.ok("the shadow group is empty", value="", file="/etc/group", line=sg.line)
        if fact == "no_legacy_plus":
            for path, entries in (("/etc/passwd", facts.passwd(env)), ("/etc/group", facts.group(env))):
                for e in entries:
                    if e.name.startswith("+"):
                        return Outcome.bad(
                            f"legacy NIS entry {e.name!r}", value=e.name, file=path, line=e.line
                        )
            return Outcome.ok("no legacy '+' entries", file="/etc/passwd")
        if fact == "system_accounts_nologin":
            limit = facts.uid_min(env)
            for u in users:
                if (
                    u.uid < limit
                    and u.name not in SPECIAL_SYSTEM
                    and u.name not in p.exempt
                    and u.shell not in NOLOGIN_SHELLS
                    and u.shell
                ):
                    return Outcome.bad(
                        f"system account {u.name} (UID {u.uid}) has login shell {u.shell}",
                        value=f"{u.name}:{u.shell}",
                        file="/etc/passwd",
                        line=u.line,
                    )
            return Outcome.ok(f"system accounts (UID < {limit}) cannot log in", file="/etc/passwd")
        if fact in ("password_max_days", "password_min_days", "password_warn_days"):
            return self._ageing(env, p)
        if fact == "home_dir_mode":
            limit = facts.uid_min(env)
            allowed = int(p.mode or "0750", 8)
            for u in users:
                if u.uid < limit or u.uid == 65534 or u.name in p.exempt or u.shell in NOLOGIN_SHELLS:
                    continue
                st = env.stat(u.home)
                if st is None or not stat.S_ISDIR(st.st_mode):
                    continue
                if stat.S_IMODE(st.st_mode) & ~allowed:
                    return Outcome.bad(
                        f"{u.name}'s home {u.home} has mode {mode_str(st.st_mode)}",
                        value=mode_str(st.st_mode),
                        file=u.home,
                    )
            return Outcome.ok(f"home directories are at most {p.mode or '0750'}", file="/etc/passwd")
        raise AssertionError(fact)  # pragma: no cover - Literal exhausts the facts

    @staticmethod
    def _ageing(env: Env, p: AccountsParams) -> Outcome:
        if p.threshold is None:
            raise ValueError("threshold is required")
        field = {
            "password_max_days": "max_days",
            "password_min_days": "min_days",
            "password_warn_days": "warn_days",
        }[p.fact]
        checked = 0
        for s in facts.shadow(env):
            if not s.has_usable_password or s.name in p.exempt:
                continue
            checked += 1
            v = getattr(s, field)
            if p.fact == "password_max_days":
                bad = v is None or v < 0 or v > p.threshold
            else:
                bad = v is None or v < p.threshold
            if bad:
                shown = "unset" if v is None else str(v)
                return Outcome.bad(
                    f"{s.name}: {field} is {shown} (expected "
                    f"{'<=' if p.fact == 'password_max_days' else '>='} {p.threshold})",
                    value=f"{s.name}:{shown}",
                    file="/etc/shadow",
                    line=s.line,
                )
        return Outcome.ok(
            f"{checked} account(s) with a password comply", file="/etc/shadow", value=str(checked)
        )
