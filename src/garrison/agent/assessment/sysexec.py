"""The only system commands the assessment may run: a fixed table of argv lists.

Nothing in a check can name a command: probes ask for an entry of this table by key. Commands
run only when the agent looks at the real root (never for a prepared tree), with a minimal
environment, a timeout and bounded output; the binary is looked up in fixed system directories.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from garrison.agent.assessment.env import Env

COMMANDS: dict[str, tuple[str, ...]] = {
    "nft_ruleset": ("nft", "list", "ruleset"),
    "iptables_save": ("iptables-save",),
    "ip6tables_save": ("ip6tables-save",),
    "rpm_names": ("rpm", "-qa", "--qf", "%{NAME}\\n"),
}
BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
TIMEOUT = 10.0
MAX_OUTPUT = 4 * 1024 * 1024


def find_binary(name: str) -> str | None:
    for d in BIN_DIRS:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def run(env: Env, key: str) -> str | None:
    """stdout of the command, or None when it cannot run here (not live root, missing, failed)."""
    argv = COMMANDS[key]
    if not env.live:
        return None

    def call() -> str | None:
        binary = find_binary(argv[0])
        if binary is None:
            return None
        try:
            proc = subprocess.run(
                [binary, *argv[1:]],
                capture_output=True,
                timeout=TIMEOUT,
                env={"PATH": ":".join(BIN_DIRS), "LC_ALL": "C"},
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode != 0:
            return None
        return proc.stdout[:MAX_OUTPUT].decode("utf-8", errors="replace")

    return env.cached(("exec", key), call)
