"""Helpers of the agent tests: real Garrison server processes on loopback and real agent processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
    env.update(PYTHONPATH=str(SRC), PYTHONUNBUFFERED="1", **extra)
    return env


def garrison(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "garrison.cli.main", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=env or cli_env(), cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"garrison {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def garrison_json(*args: str, **kw: Any) -> Any:
    return json.loads(garrison(*args, "--json", **kw).stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Server:
    """A ``garrison server`` process with a tenant, an enrollment secret and an admin API key."""

    data_dir: Path
    port: int
    insecure: bool = False
    secret: str = ""
    api_key: str = ""
    fingerprint: str = ""
    proc: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{'http' if self.insecure else 'https'}://127.0.0.1:{self.port}"

    def provision(self) -> None:
        garrison("tenant", "create", "default", "--data-dir", str(self.data_dir))
        out = garrison_json("enrollment", "create", "--data-dir", str(self.data_dir), "--tenant", "default")
        self.secret, self.fingerprint = out["secret"], out["serverFingerprint"]
        key = garrison_json("apikey", "create", "--data-dir", str(self.data_dir), "--tenant", "default",
                            "--role", "admin")
        self.api_key = key["key"]

    def start(self, timeout: float = 60) -> Server:
        args = [sys.executable, "-m", "garrison.cli.main", "server", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--no-jobs", "--json"]
        if self.insecure:
            args.append("--insecure-http")
        # Output goes to files: a pipe nobody reads fills up and stalls the server mid-request.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out_path = self.data_dir.parent / f"{self.data_dir.name}.stdout"
        err_path = self.data_dir.parent / f"{self.data_dir.name}.stderr"
        with out_path.open("w") as out, err_path.open("a") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=cli_env(), cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = out_path.read_text().split("\n", 1)[0]
            if line.startswith("{") and line.endswith("}"):
                info = json.loads(line)
                if not self.insecure:
                    assert info["fingerprint"] == self.fingerprint
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {err_path.read_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye — a crash or a pulled cable."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def _verify(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        return ssl.create_default_context(cafile=str(self.data_dir / "tls" / "server.crt"))

    def api(self, method: str, path: str, **kw: Any) -> Any:
        with httpx.Client(base_url=self.url, verify=self._verify(), timeout=30) as c:
            r = c.request(method, path, headers={"Authorization": f"Bearer {self.api_key}"}, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def machines(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/machines")["value"])


def write_agent_config(path: Path, server: Server, state_dir: Path, **extra: Any) -> Path:
    """An agent.toml for tests: only the device collector, no sensors unless told otherwise, fast retries."""
    values: dict[str, Any] = {"server": server.url, "enroll_secret": server.secret, "state_dir": str(state_dir),
                              "backoff_base": 0.2, "backoff_cap": 1.0, "log_level": "info"}
    collectors = {"enabled": extra.pop("enabled", ["device"]), "intervals": extra.pop("intervals", {})}
    sensors = extra.pop("sensors", {"enabled": False})
    values.update(extra)
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    lines.append("[collectors]")
    lines.append(f"enabled = {json.dumps(collectors['enabled'])}")
    lines.append("[collectors.intervals]")
    lines += [f"{k} = {v}" for k, v in collectors["intervals"].items()]
    lines.append("[sensors]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in sensors.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_agent(config: Path, log_path: Path) -> subprocess.Popen[str]:
    with log_path.open("a") as log:
        return subprocess.Popen([sys.executable, "-m", "garrison.cli.main", "agent", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, text=True, env=cli_env(), cwd=REPO)
