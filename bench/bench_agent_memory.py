"""The agent's resident memory: peak RSS of a full ``agent run --once`` against a real server.

    python bench/bench_agent_memory.py [--agent-cmd garrison-agent] [--runs 3] [--json]

Starts ``garrison server`` (HTTPS, its own certificate) on a fresh data directory, creates a tenant and
an enrollment secret, then runs the agent command in a child process ``--runs`` times (each with a fresh
state directory: enroll, collect everything, upload, run pending actions) and reads the child's peak RSS
from ``wait4``. It also reports where the memory goes: the peak RSS of a bare interpreter, of importing
the agent's entry point (and of ``garrison.cli.main``), and which heavy packages each one loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report

BIN = Path(sys.executable).parent
HEAVY = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "pydantic", "httpx", "rich", "click",
         "yaml", "cryptography", "psycopg", "jinja2", "argon2", "packaging")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run ``cmd``; return (peak RSS in KiB, stdout, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-2000:]}")
    return usage.ru_maxrss, out, time.monotonic() - start


def import_probe(module: str) -> dict[str, Any]:
    code = (f"import sys, resource, time; t=time.monotonic(); import {module}; d=time.monotonic()-t; "
            f"print(__import__('json').dumps({{'seconds': d, 'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules),"
            f" 'modules': len(sys.modules)}}))")
    rss, out, _ = peak_rss([sys.executable, "-c", code])
    return {"peak_rss_mib": round(rss / 1024, 1), **json.loads(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--agent-cmd", default=str(BIN / "garrison-agent") if (BIN / "garrison-agent").exists()
                    else str(BIN / "garrison"), help="the agent's command (garrison-agent, or garrison)")
    ap.add_argument("--entry-module", default=None, help="module of the agent's entry point (import probe)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    garrison = str(BIN / "garrison")
    entry = args.entry_module or "garrison.cli.main, garrison.cli.commands.agent"

    work = Path(tempfile.mkdtemp(prefix="garrison-agentmem-"))
    data = work / "data"
    port = free_port()
    server = None
    try:
        subprocess.run([garrison, "tenant", "create", "acme", "--data-dir", str(data)], check=True,
                       capture_output=True)
        secret = json.loads(subprocess.run(
            [garrison, "enrollment", "create", "--tenant", "acme", "--data-dir", str(data), "--json"],
            check=True, capture_output=True, text=True).stdout)["secret"]
        server = subprocess.Popen([garrison, "server", "--data-dir", str(data), "--port", str(port), "--no-jobs",
                                   "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        url, fp = info["url"], info["fingerprint"]

        runs = []
        for i in range(args.runs):
            state = work / f"agent{i}"
            sub = [] if args.agent_cmd.endswith("garrison-agent") else ["agent"]
            rss, out, secs = peak_rss([args.agent_cmd, *sub, "run", "--once", "--json", "--server", url,
                                       "--enroll", secret, "--fingerprint", fp, "--state-dir", str(state)])
            result = json.loads(out)
            runs.append({"peak_rss_mib": round(rss / 1024, 1), "seconds": round(secs, 2),
                         "sent": result["sent"], "pending": result["pending"]})
        bare = import_probe("sys")
        agent_entry = import_probe(entry)
        runner = import_probe("garrison.agent.runner")
        full_cli = import_probe("garrison.cli.main")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    peaks = sorted(r["peak_rss_mib"] for r in runs)
    results = {"agent_cmd": args.agent_cmd, "runs": runs, "bare_python": bare, "import_entry": agent_entry,
               "import_agent_runner": runner, "import_garrison_cli_main": full_cli}
    rows = [
        ("agent run --once, peak RSS (median)", (f"{peaks[len(peaks) // 2]} MiB  (runs: {peaks}, command "
                                                 f"{Path(args.agent_cmd).name})")),
        ("bare python, peak RSS", f"{bare['peak_rss_mib']} MiB"),
        (f"import {entry}", (f"{agent_entry['peak_rss_mib']} MiB, {agent_entry['seconds']:.2f} s, "
                            f"{agent_entry['modules']} modules, heavy: {', '.join(agent_entry['heavy']) or '-'}")),
        ("import garrison.agent.runner", (f"{runner['peak_rss_mib']} MiB, {runner['seconds']:.2f} s, "
                                         f"heavy: {', '.join(runner['heavy']) or '-'}")),
        ("import garrison.cli.main", (f"{full_cli['peak_rss_mib']} MiB, {full_cli['seconds']:.2f} s, "
                                     f"{full_cli['modules']} modules, heavy: {', '.join(full_cli['heavy']) or '-'}")),
    ]
    report("Agent resident memory", results, rows, args.json)


if __name__ == "__main__":
    main()
