"""Rules of sudo: /etc/sudoers and the files it includes (@include, @includedir, #include…)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Literal

from garrison.agent.assessment.env import Env, Outcome, ProbeError
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

Fact = Literal["use_pty", "logfile", "no_nopasswd", "no_unauthenticated", "timestamp_timeout"]
MAX_DEPTH = 8
DEFAULT_TIMESTAMP_TIMEOUT = 15  # minutes, sudo's built-in default
_INCLUDE = re.compile(r"^[@#](include|includedir)\s+(.+)$")
_DEFAULTS = re.compile(r"^Defaults([:@>!]\S+)?\s+(.*)$")


class SudoersParams(ProbeParams):
    fact: Fact
    threshold: int | None = None


@dataclass(frozen=True)
class Line:
    text: str
    file: str
    line: int


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        out.append((start, (buf + raw).strip()))
        buf = ""
    if buf:
        out.append((start, buf.strip()))
    return out


def sudoers_lines(env: Env, path: str = "/etc/sudoers", depth: int = 0) -> list[Line]:
    if depth > MAX_DEPTH:
        raise ProbeError(f"sudoers includes nested deeper than {MAX_DEPTH} at {path}")
    text = env.read_text(path)
    if text is None:
        if depth == 0:
            raise ProbeError(f"{path} does not exist")
        return []
    out: list[Line] = []
    for n, line in _logical_lines(text):
        m = _INCLUDE.match(line)
        if m:
            target = m.group(2).strip().strip('"')
            if not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(path), target)
            if m.group(1) == "include":
                out.extend(sudoers_lines(env, target, depth + 1))
            else:
                # sudo skips names ending in '~' or containing '.' in an includedir.
                for name in env.listdir(target) or []:
                    if name.endswith("~") or "." in name:
                        continue
                    out.extend(sudoers_lines(env, f"{target}/{name}", depth + 1))
            continue
        if not line or line.startswith("#"):
            continue
        out.append(Line(line, path, n))
    return out


def _split_params(s: str) -> list[str]:
    """Comma-separated Defaults parameters; commas inside quotes do not split."""
    return [p.strip() for p in re.findall(r'(?:[^,"]|"[^"]*")+', s) if p.strip()]


def global_defaults(lines: list[Line]) -> dict[str, tuple[str | bool, Line]]:
    """Effective global Defaults: name -> (value, where); later lines override earlier ones."""
    out: dict[str, tuple[str | bool, Line]] = {}
    for ln in lines:
        m = _DEFAULTS.match(ln.text)
        if not m or m.group(1):
            continue
        for param in _split_params(m.group(2)):
            if param.startswith("!"):
                out[param[1:].strip()] = (False, ln)
            elif "=" in param:
                k, v = param.split("=", 1)
                out[k.strip().rstrip("+-")] = (v.strip().strip('"'), ln)
            else:
                out[param] = (True, ln)
    return out


@register_probe
class Sudoers(Probe[SudoersParams]):
    name = "sudoers"
    Params = SudoersParams

    def run(self, env: Env, p: SudoersParams) -> Outcome:
        lines = env.cached("sudoers", lambda: sudoers_lines(env))
        defaults = global_defaults(lines)
        if p.fact in ("use_pty", "logfile"):
            hit = defaults.get(p.fact)
            if hit and hit[0] not in (False, ""):
                where = hit[1]
                return Outcome.ok(
                    f"Defaults {p.fact} is set", value=str(hit[0]), file=where.file, line=where.line
                )
            where_kw = {"file": hit[1].file, "line": hit[1].line} if hit else {"file": "/etc/sudoers"}
            return Outcome.bad(f"Defaults {p.fact} is not set", value="unset", **where_kw)
        if p.fact == "no_nopasswd":
            for ln in lines:
                if not ln.text.startswith("Defaults") and re.search(r"\bNOPASSWD\s*:", ln.text):
                    return Outcome.bad(
                        "a rule lets commands run without a password",
                        value=ln.text[:256],
                        file=ln.file,
                        line=ln.line,
                    )
            return Outcome.ok("every sudo rule asks for a password", file="/etc/sudoers")
        if p.fact == "no_unauthenticated":
            for ln in lines:
                m = _DEFAULTS.match(ln.text)
                if m and "!authenticate" in (x.replace(" ", "") for x in _split_params(m.group(2))):
                    return Outcome.bad(
                        "Defaults !authenticate turns off authentication",
                        value=ln.text[:256],
                        file=ln.file,
                        line=ln.line,
                    )
            return Outcome.ok("authentication is not turned off", file="/etc/sudoers")
        if p.fact == "timestamp_timeout":
            limit = DEFAULT_TIMESTAMP_TIMEOUT if p.threshold is None else p.threshold
            hit = defaults.get("timestamp_timeout")
            if hit is None:
                return Outcome.verdict(
                    DEFAULT_TIMESTAMP_TIMEOUT <= limit,
                    value=str(DEFAULT_TIMESTAMP_TIMEOUT),
                    file="/etc/sudoers",
                    message=f"timestamp_timeout not set; sudo's default {DEFAULT_TIMESTAMP_TIMEOUT} applies",
                )
            try:
                minutes = float(str(hit[0]))
            except ValueError:
                return Outcome.bad(
                    f"timestamp_timeout is not a number: {hit[0]}",
                    value=str(hit[0]),
                    file=hit[1].file,
                    line=hit[1].line,
                )
            ok = 0 <= minutes <= limit
            return Outcome.verdict(
                ok,
                value=str(hit[0]),
                file=hit[1].file,
                line=hit[1].line,
                message=f"timestamp_timeout={hit[0]} (expected 0..{limit} minutes)",
            )
        raise AssertionError(p.fact)  # pragma: no cover
