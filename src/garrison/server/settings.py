"""Server settings: command-line flags over environment (GARRISON_*) over defaults.

Integrations (see docs/integrations.md): ``GARRISON_INTEGRATIONS_ALLOWED_NETWORKS`` (comma-separated
CIDRs of internal ticket systems, mail or webhook receivers the server may reach) and
``GARRISON_SECRETS_KEY`` (key of the connection secrets; default ``<data-dir>/secrets.key``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from garrison.integrations.settings import IntegrationSettings
from garrison.protocol import MAX_BATCH_BYTES
from garrison.store.db import sqlite_url

DEFAULT_DATA_DIR = Path(os.environ.get("GARRISON_DATA_DIR", "~/.local/share/garrison")).expanduser()


@dataclass
class ServerSettings:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8443
    insecure_http: bool = False  # plain HTTP only when asked for by name
    tls_cert: Path | None = None  # admin-provided certificate (else generated in data_dir/tls)
    tls_key: Path | None = None
    trusted_proxies: list[str] = field(default_factory=list)  # CIDRs whose X-Forwarded-For we believe
    rate_limit_per_minute: int = 1200  # per API key / user / device
    max_body_bytes: int = 1 * 1024 * 1024  # API requests
    agent_max_body_bytes: int = MAX_BATCH_BYTES  # agent uploads, after gzip decoding too (the worker's bound)
    import_max_body_bytes: int = 64 * 1024 * 1024  # POST /api/machines/{id}/events/import (event log files)
    checkin_interval: int = 60
    heartbeat_interval: float = 2.0  # seconds between buffered heartbeat writes (0 = write through)
    run_jobs: bool = True
    session_secret: str | None = None
    # non-public networks integrations may reach (internal Jira, mail relay…); others are refused
    integrations_allowed_networks: list[str] = field(default_factory=list)
    secrets_key: str | None = None  # connection secrets key(s), base64; else data_dir/secrets.key
    # Behaviour telemetry: duckdb:///<data-dir>/events.duckdb by default, or clickhouse://… (see edr.events)
    events_url: str | None = None
    events_retention_days: int = 180  # the timeline's reach
    hunting_days: int = 30  # advanced hunting's window

    @property
    def db_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def events_db_url(self) -> str:
        return self.events_url or f"duckdb:///{Path(self.data_dir).expanduser().resolve() / 'events.duckdb'}"

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies]

    def integrations(self) -> IntegrationSettings:
        """Raises ValueError for a malformed network or key (the server does not start)."""
        return IntegrationSettings.build(self.integrations_allowed_networks, self.secrets_key,
                                         Path(self.data_dir).expanduser() / "secrets.key")

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        s = cls()
        env = os.environ
        if "GARRISON_DATABASE_URL" in env:
            s.database_url = env["GARRISON_DATABASE_URL"]
        if "GARRISON_TRUSTED_PROXIES" in env:
            s.trusted_proxies = [p.strip() for p in env["GARRISON_TRUSTED_PROXIES"].split(",") if p.strip()]
        if "GARRISON_INTEGRATIONS_ALLOWED_NETWORKS" in env:
            s.integrations_allowed_networks = [p.strip() for p in env["GARRISON_INTEGRATIONS_ALLOWED_NETWORKS"]
                                               .split(",") if p.strip()]
        if env.get("GARRISON_SECRETS_KEY"):
            s.secrets_key = env["GARRISON_SECRETS_KEY"]
        if env.get("GARRISON_EVENTS_URL"):
            s.events_url = env["GARRISON_EVENTS_URL"]
        if "GARRISON_RATE_LIMIT" in env:
            s.rate_limit_per_minute = int(env["GARRISON_RATE_LIMIT"])
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, value)
        s.data_dir = Path(s.data_dir).expanduser()
        return s
