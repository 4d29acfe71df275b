"""Agent configuration: a TOML file, then ``GARRISON_AGENT_<KEY>`` environment overrides.

Precedence (lowest first): defaults → TOML file → environment → explicit overrides
(command-line options). The file layout is the one of ``garrison/agent/data/agent.toml``::

    server = "https://garrison.example.org:8443"
    enroll_secret = "…"
    state_dir = "/var/lib/garrison-agent"
    checkin_interval = 60
    spool_max_bytes = 67108864
    fingerprint = ""
    log_level = "info"
    backoff_cap = 300

    [collectors]
    enabled = []        # empty: every collector
    disabled = []

    [collectors.intervals]
    device = 300

    [sensors]           # behaviour telemetry (garrison.agent.sensors)
    enabled = true
    rate_limit = 2000   # events/s per device; bursts up to `burst`; the excess is dropped and counted
    file_paths = ["/etc", "/tmp"]
    exclusions = [{column = "FolderPath", op = "startswith", value = "/var/cache/"}]

Environment variables use the upper-cased key: ``GARRISON_AGENT_SERVER``,
``GARRISON_AGENT_CHECKIN_INTERVAL``, ``GARRISON_AGENT_COLLECTORS_DISABLED=runtime,assessment``,
``GARRISON_AGENT_COLLECTOR_INTERVALS=device=60,inventory=3600``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "GARRISON_AGENT_"
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/garrison-agent")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "garrison-agent"


@dataclass
class AgentConfig:
    server: str = ""
    enroll_secret: str = ""
    state_dir: Path = field(default_factory=default_state_dir)
    # None: follow the interval the server sends (60 s unless the server says otherwise).
    checkin_interval: int | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    collectors_enabled: list[str] = field(default_factory=list)  # empty: all
    collectors_disabled: list[str] = field(default_factory=list)
    collector_intervals: dict[str, int] = field(default_factory=dict)  # name → seconds
    fingerprint: str | None = None  # SHA-256 hex of the server certificate, pinned before enrollment
    log_level: str = "info"
    backoff_base: float = 1.0  # seconds; retries wait uniform(0, min(cap, base·2^n))
    backoff_cap: float = 300.0
    request_timeout: float = 30.0
    # Behaviour sensors: enabled, rate_limit, burst, queue_size, file_paths, exclusions ([sensors]).
    sensors: dict[str, Any] = field(default_factory=lambda: {"enabled": True})

    @property
    def sensors_enabled(self) -> bool:
        return bool(self.sensors.get("enabled", True))

    def collector_enabled(self, name: str) -> bool:
        if name in self.collectors_disabled:
            return False
        return not self.collectors_enabled or name in self.collectors_enabled

    def validate(self) -> AgentConfig:
        if self.server and not self.server.startswith(("https://", "http://")):
            raise ConfigError(f"server must be an https:// (or http://) URL, got {self.server!r}")
        self.server = self.server.rstrip("/")
        if self.fingerprint:
            fp = self.fingerprint.replace(":", "").strip().lower()
            if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
                raise ConfigError("fingerprint must be the SHA-256 of the server certificate (64 hex digits)")
            self.fingerprint = fp
        else:
            self.fingerprint = None
        if self.checkin_interval is not None and self.checkin_interval < 1:
            raise ConfigError("checkin_interval must be at least 1 second")
        if self.spool_max_bytes < 64 * 1024:
            raise ConfigError("spool_max_bytes must be at least 65536")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        self.log_level = self.log_level.lower()
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ConfigError("backoff_base must be > 0 and backoff_cap >= backoff_base")
        for name, seconds in self.collector_intervals.items():
            if seconds < 1:
                raise ConfigError(f"collector interval of {name!r} must be at least 1 second")
        self.state_dir = Path(self.state_dir).expanduser()
        self.sensors = _sensor_settings(self.sensors)
        return self


_SENSOR_KEYS: dict[str, type | tuple[type, ...]] = {
    "enabled": bool, "rate_limit": (int, float), "burst": int, "queue_size": int, "file_paths": list,
    "exclusions": list, "audit_backlog": int, "persistence_paths": dict, "peeks_per_second": int,
    "network_coalesce_seconds": (int, float)}


def _sensor_settings(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError("[sensors] must be a table")
    out: dict[str, Any] = {"enabled": True}
    for key, value in raw.items():
        kind = _SENSOR_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"unknown key sensors.{key}")
        typed = isinstance(value, kind)  # (not narrowed: value keeps its type below)
        if not typed or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"sensors.{key}: invalid value {value!r}")
        if key in ("rate_limit", "burst", "queue_size", "audit_backlog") and value < 1:
            raise ConfigError(f"sensors.{key} must be at least 1")
        if key == "file_paths" and not all(isinstance(p, str) and p.startswith("/") for p in value):
            raise ConfigError("sensors.file_paths must be absolute paths")
        if key == "exclusions":
            for ex in value:
                if not (isinstance(ex, dict) and isinstance(ex.get("column"), str)
                        and isinstance(ex.get("value"), str)
                        and ex.get("op", "equals") in ("equals", "startswith", "contains")):
                    raise ConfigError(f"sensors.exclusions: invalid exclusion {ex!r} "
                                      "(column, value, op = equals|startswith|contains, table)")
        out[key] = value
    return out


_FIELDS = {f.name: f for f in dataclasses.fields(AgentConfig)}
_INT = {"checkin_interval", "spool_max_bytes"}
_FLOAT = {"backoff_base", "backoff_cap", "request_timeout"}
_LIST = {"collectors_enabled", "collectors_disabled"}


def _coerce(key: str, value: Any, source: str) -> Any:
    try:
        if key in _INT:
            if isinstance(value, bool):
                raise ValueError
            return None if value in ("", None) and key == "checkin_interval" else int(value)
        if key in _FLOAT:
            return float(value)
        if key in _LIST:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            return list(value)
        if key == "collector_intervals":
            if isinstance(value, str):
                pairs = (p.split("=", 1) for p in value.split(",") if p.strip())
                value = {k.strip(): v for k, v in pairs}
            if not isinstance(value, dict):
                raise ValueError
            return {str(k): int(v) for k, v in value.items()}
        if key == "sensors":
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        if key == "state_dir":
            return Path(str(value))
        if key == "fingerprint":
            return str(value) or None
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: invalid value for {key}: {value!r}") from None


def _from_toml(data: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "collectors":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [collectors] must be a table")
            for sub, subval in value.items():
                name = {"enabled": "collectors_enabled", "disabled": "collectors_disabled",
                        "intervals": "collector_intervals"}.get(sub)
                if name is None:
                    raise ConfigError(f"{source}: unknown key collectors.{sub}")
                flat[name] = _coerce(name, subval, source)
        elif key == "sensors":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [sensors] must be a table")
            flat["sensors"] = dict(value)
        elif key in _FIELDS:
            flat[key] = _coerce(key, value, source)
        else:
            raise ConfigError(f"{source}: unknown key {key!r}")
    return flat


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key in _FIELDS:
        if key == "sensors":
            continue
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None:
            flat[key] = _coerce(key, raw, ENV_PREFIX + key.upper())
    return flat


def load_agent_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Build the agent configuration; ``overrides`` (e.g. CLI options) win, ``None`` values are ignored."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {p} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {p}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}") from None
        values.update(_from_toml(data, str(p)))
    values.update(_from_env(os.environ if env is None else env))
    switch = (os.environ if env is None else env).get(ENV_PREFIX + "SENSORS")
    if switch is not None:  # GARRISON_AGENT_SENSORS=off: no behaviour telemetry
        values["sensors"] = {**values.get("sensors", {}), "enabled": switch.strip().lower() not in
                             ("0", "off", "false", "no")}
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None:
            values[key] = _coerce(key, value, "option")
    return AgentConfig(**values).validate()
