"""The agent installs and runs without the server: no FastAPI, SQLAlchemy, uvicorn or Alembic.

The agent process below cannot import the server's packages at all (an import hook refuses them, as
an install without the ``[server]`` extra would), yet it enrolls, collects, uploads and exits cleanly
against a real server; and the command-line index is checked against the command modules.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

from garrison.cli import commands
from garrison.cli import main as cli_main
from tests.agent.harness import REPO, Server, cli_env

SERVER_PACKAGES = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "duckdb", "pyarrow", "jinja2",
                   "argon2", "psycopg")

# Runs an entry point in a process where the server's packages cannot be imported; prints the
# modules of those packages that were loaded (none may be) after the command ran.
RUNNER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))
class NoServer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed)", name=name)
        return None
sys.meta_path.insert(0, NoServer())
from garrison.cli import main
code = 0
try:
    getattr(main, sys.argv[2])(sys.argv[3:])
except SystemExit as exc:
    code = exc.code or 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"loaded": loaded}), file=sys.stderr)
sys.exit(code)
"""


def run_without_server(entry: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUNNER, json.dumps(SERVER_PACKAGES), entry, *args],
                          capture_output=True, text=True, timeout=120, check=False, env=cli_env(), cwd=REPO)


def loaded(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return list(json.loads(proc.stderr.strip().splitlines()[-1])["loaded"])


def test_importing_the_entry_points_loads_no_server_package() -> None:
    code = ("import sys, json; import garrison.cli.main, garrison.cli.commands.agent, garrison.agent.runner; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_PACKAGES!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=cli_env(),
                         cwd=REPO).stdout
    assert json.loads(out) == []


def test_agent_runs_once_against_a_server_without_the_server_packages(shared_server: Server,
                                                                      tmp_path: Path) -> None:
    args = ("--server", shared_server.url, "--enroll", shared_server.secret, "--fingerprint",
            shared_server.fingerprint, "--state-dir", str(tmp_path / "a"), "--once", "--json")
    devices = []
    for n, (entry, argv) in enumerate((("agent_main", ("run", *args)), ("main", ("agent", "run", *args)))):
        proc = run_without_server(entry, *(a.replace(str(tmp_path / "a"), str(tmp_path / f"a{n}")) for a in argv))
        assert proc.returncode == 0, proc.stderr
        assert loaded(proc) == []
        report = json.loads(proc.stdout)
        assert report["ok"] and report["enrolled_now"] and report["sent"] > 0 and report["pending"] == 0
        devices.append(report["device_id"])
    assert {m["id"] for m in shared_server.machines()} >= set(devices)  # both devices are on the server


def test_a_server_command_without_the_server_packages_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_without_server("main", "tenant", "create", "acme", "--data-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "pip install 'garrison[server]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_command_index_matches_the_command_modules() -> None:
    defined = {}
    for info in pkgutil.iter_modules(commands.__path__):
        module_name = info.name
        module = importlib.import_module(f"garrison.cli.commands.{module_name}")
        defined.update({c.name: module_name for c in module.COMMANDS})
    assert defined == cli_main.COMMAND_MODULES
