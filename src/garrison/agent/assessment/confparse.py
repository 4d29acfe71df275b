"""Readers of configuration-file dialects: each yields (key, value, file, line) in file order.

* ``sshd``: OpenSSH server syntax. Keys are case-insensitive, ``Key value`` or ``Key=value``;
  ``Include`` takes globs (relative ones are under /etc/ssh) read in place; settings inside a
  ``Match`` block are not global and are skipped, and a Match block ends with the file it is in.
* ``keyvalue``: ``KEY value`` (login.defs, limits-like files).
* ``equals``: ``key = value`` with optional ``[section]`` headers (auditd.conf, pwquality.conf,
  /etc/selinux/config, dnf.conf, journald.conf, ufw.conf).
* ``apt``: ``A::B::C "value";`` (apt.conf.d).
"""

from __future__ import annotations

import glob as _glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from garrison.agent.assessment.env import Env, ProbeError

Format = Literal["sshd", "keyvalue", "equals", "apt"]
MAX_INCLUDE_DEPTH = 16

_SSHD_LINE = re.compile(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$")


@dataclass(frozen=True)
class Setting:
    key: str
    value: str
    file: str
    line: int
    section: str = ""


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


def read_sshd(env: Env, path: str, depth: int = 0) -> Iterator[Setting]:
    if depth > MAX_INCLUDE_DEPTH:
        raise ProbeError(f"Include nested deeper than {MAX_INCLUDE_DEPTH} at {path}")
    text = env.read_text(path)
    if text is None:
        if depth == 0:
            raise ProbeError(f"{path} does not exist")
        return
    in_match = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SSHD_LINE.match(line)
        if not m:
            continue  # a bare keyword without argument: sshd rejects it, nothing to read
        key, value = m.group(1).lower(), m.group(2).strip()
        if key == "match":
            in_match = value.strip().lower() != "all"
            continue
        if key == "include":
            if in_match:
                continue  # included inside a Match block: conditional, not global
            for pattern in value.split():
                pattern = _unquote(pattern)
                if not pattern.startswith("/"):
                    pattern = "/etc/ssh/" + pattern
                for hit in env.glob(pattern):
                    yield from read_sshd(env, hit, depth + 1)
            continue
        if in_match:
            continue
        # Inline comments are not part of sshd syntax, but values never contain '#'.
        yield Setting(key, _unquote(value.split(" #", 1)[0]), path, n)


def read_simple(env: Env, path: str, fmt: Format) -> Iterator[Setting]:
    text = env.read_text(path)
    if text is None:
        return
    section = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if fmt == "equals":
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
                continue
            if "=" not in line:
                continue
            key, value = line.split("=", 1)
            yield Setting(key.strip(), _unquote(value), path, n, section)
        elif fmt == "apt":
            if line.startswith("//"):
                continue
            parts = line.split(None, 1)
            if len(parts) == 2:
                yield Setting(parts[0], _unquote(parts[1].rstrip().rstrip(";")), path, n)
        else:
            parts = line.split(None, 1)
            if len(parts) == 2:
                yield Setting(parts[0], _unquote(parts[1]), path, n)
            elif len(parts) == 1:
                yield Setting(parts[0], "", path, n)


def expand(env: Env, patterns: list[str]) -> list[str]:
    """Files named by the patterns, in the given order, each glob sorted."""
    out: list[str] = []
    for p in patterns:
        if _glob.has_magic(p):
            out.extend(env.glob(p))
        else:
            env.touch(p)
            out.append(p)
    return out
