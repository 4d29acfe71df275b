"""``garrison agent run|status|collect`` and ``garrison simulate``."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from garrison.cli.output import UserError, console, emit, fail, json_option, table
from garrison.config import AgentConfig, ConfigError, load_agent_config


def _config(config_file: Path | None, as_json: bool, **overrides: Any) -> AgentConfig:
    try:
        return load_agent_config(config_file, overrides=overrides)
    except ConfigError as exc:
        raise UserError(str(exc), as_json=as_json) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group("agent")
def agent_group() -> None:
    """The endpoint agent: enroll, collect, send, and run the server's actions."""


@agent_group.command("run")
@click.option("--server", help="Server URL, e.g. https://garrison.example.org:8443 (needed to enroll).")
@click.option("--enroll", "enroll_secret", help="Enrollment secret (needed only until the device is enrolled).")
@click.option("--fingerprint", help="SHA-256 of the server certificate, checked before the secret is sent.")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where identity and spool live.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="agent.toml")
@click.option("--once", is_flag=True, help="Collect and send everything once, run pending actions, then exit.")
@json_option
def run_command(server: str | None, enroll_secret: str | None, fingerprint: str | None, state_dir: Path | None,
                config_file: Path | None, once: bool, as_json: bool) -> None:
    """Run the agent (until SIGTERM/SIGINT, or one cycle with --once)."""
    from garrison.agent.runner import Agent, report_dict

    cfg = _config(config_file, as_json, server=server, enroll_secret=enroll_secret, fingerprint=fingerprint,
                  state_dir=state_dir)
    agent = Agent(cfg, explicit_enroll=enroll_secret is not None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop())
    if not once:
        _logging(cfg.log_level)
        sys.exit(agent.run_forever())
    # One cycle: retries are expected and not worth a line each; the outcome is.
    _logging("debug" if cfg.log_level == "debug" else "error")
    report = agent.run_once()
    data = report_dict(report)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        sys.exit(report.exit_code)
    if report.ok:
        collected = ", ".join(f"{n} {k}" for k, n in sorted(report.collected.items())) or "nothing"
        console.print(f"device {report.device_id} ({report.server}): collected {collected}; "
                      f"sent {report.sent} batches; {len(report.actions)} actions run"
                      + ("; enrolled now" if report.enrolled_now else "")
                      + ("; OFFBOARDED" if report.offboarded else ""), highlight=False)
        return
    fail(report.error or "not everything was sent", False, code=report.exit_code or 1)


@agent_group.command("status")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where identity and spool live.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="agent.toml")
@json_option
def status_command(state_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """Whether this device is enrolled, with whom, and what waits in the spool."""
    from garrison.agent.runner import status

    cfg = _config(config_file, as_json, state_dir=state_dir)
    try:
        data = status(cfg.state_dir)
    except Exception as exc:  # noqa: BLE001 - unreadable state: one line, not a traceback
        raise UserError(f"cannot read the agent state in {cfg.state_dir}: {exc}", as_json=as_json) from None

    def human() -> None:
        rows = [("enrolled", "yes" if data["enrolled"] else "no"), ("device id", data["device_id"]),
                ("server", data["server"]), ("tenant", data["tenant"]), ("state dir", data["state_dir"]),
                ("spool pending", f"{data['spool_pending']} batches, {data['spool_bytes']} bytes"),
                ("drops", ", ".join(f"{k}={v}" for k, v in data["drops"].items()) or "none"),
                ("last check-in", data["last"].get("last_checkin", "never")),
                ("last error", data["last"].get("last_error") or "none")]
        if data["offboarded"]:
            rows.append(("offboarded", "yes"))
        table("Garrison agent", ["", ""], rows)

    emit(data, as_json, human=human)


@agent_group.command("collect")
@click.argument("names", nargs=-1)
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where identity and spool live.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="agent.toml")
@json_option
def collect_command(names: tuple[str, ...], state_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """Run collectors here and print what they would send (nothing is spooled or sent)."""
    from garrison import __version__
    from garrison.agent.collectors.base import AgentContext
    from garrison.agent.runner import load_collectors

    cfg = _config(config_file, as_json, state_dir=state_dir)
    classes, failed = load_collectors()
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise UserError(f"unknown collector {', '.join(unknown)}; known: {', '.join(sorted(classes))}",
                        as_json=as_json)
    ctx = AgentContext(state_dir=cfg.state_dir, agent_version=__version__)
    out: dict[str, Any] = {}
    for name in names or sorted(classes):
        cls = classes[name]
        if cls.needs_root and not ctx.is_root:
            out[name] = {"disabled": "needs root"}
            continue
        try:
            out[name] = {"uploads": [{"kind": k, "payload": p} for k, p in cls().collect(ctx)]}
        except Exception as exc:  # noqa: BLE001 - one collector's failure is part of the output
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    for name, reason in failed.items():
        if not names or name in names:
            out[name] = {"error": reason}
    emit(out, as_json, human=lambda: print(json.dumps(out, indent=2, default=str)))


@click.command("simulate")
@click.option("--server", required=True, help="Server URL.")
@click.option("--enroll", "secret", required=True, help="Enrollment secret (with enough uses for every agent).")
@click.option("--agents", type=click.IntRange(1, 100_000), required=True, help="Number of simulated agents.")
@click.option("--interval", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="Seconds between check-ins of each agent.")
@click.option("--duration", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds to keep checking in after the ramp.")
@click.option("--ramp", type=click.FloatRange(0), default=None,
              help="Seconds over which agents start (default: one interval).")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=128, show_default=True,
              help="Requests in flight at once (= connections in the shared pool).")
@click.option("--seed", type=int, default=None, help="Reuse the machine keys of an earlier run.")
@click.option("--inventory", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Package database to build inventories from (default: /var/lib/dpkg/status).")
@click.option("--state", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep the agents' credentials here; a later run with it skips enrollment and uploads.")
@click.option("--forwarded-for", is_flag=True,
              help="Give each agent its own X-Forwarded-For address (the server must trust this host as a proxy).")
@json_option
def simulate_command(server: str, secret: str, agents: int, interval: float, duration: float, ramp: float | None,
                     concurrency: int, seed: int | None, inventory: Path | None, state: Path | None,
                     forwarded_for: bool, as_json: bool) -> None:
    """Drive a server with many simulated agents and report latency (load testing)."""
    from garrison.agent.simulate import SimConfig, simulate

    if not server.startswith(("https://", "http://")):
        raise UserError("--server must be an https:// (or http://) URL", as_json=as_json)
    cfg = SimConfig(server=server, secret=secret, agents=agents, interval=interval, duration=duration, ramp=ramp,
                    concurrency=concurrency, seed=seed, inventory=inventory, forwarded_for=forwarded_for, state=state,
                    progress=None if as_json else sys.stderr)
    try:
        result = simulate(cfg)
    except OSError as exc:
        raise UserError(f"cannot reach {server}: {exc}", as_json=as_json) from None

    def human() -> None:
        console.print(f"{result['agents']} agents, {result['enrolled']} enrolled, {result['reused']} reused, "
                      f"{result['checkins']} check-ins ({result['checkins_per_second']}/s), "
                      f"{result['error_count']} errors", highlight=False)
        table("latency (ms)", ["call", "count", "p50", "p95", "p99", "max"],
              [(k, v["count"], v["p50"], v["p95"], v["p99"], v["max"]) for k, v in result["latency_ms"].items()])
        if result["errors"]:
            table("errors", ["error", "count"], result["errors"].items())

    emit(result, as_json, human=human)
    if result["enrolled"] + result["reused"] == 0:
        if as_json:
            sys.exit(1)
        fail("no agent could enroll: " + next(iter(result["errors"]), "unknown error"), False, code=1)


COMMANDS = [agent_group, simulate_command]
