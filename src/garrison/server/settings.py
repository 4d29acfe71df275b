"""Server settings: command-line flags over environment (GARRISON_<SETTING>, every setting, read with
pydantic-settings; the table is docs/configuration.md) over defaults.

Integrations (see docs/integrations.md): ``GARRISON_INTEGRATIONS_ALLOWED_NETWORKS`` (comma-separated
CIDRs of internal ticket systems, mail or webhook receivers the server may reach) and
``GARRISON_SECRETS_KEY`` (key of the connection secrets; default ``<data-dir>/secrets.key``).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    hunting_calls_per_minute: int = 45  # per tenant (Defender's limits)
    hunting_calls_per_hour: int = 1500
    # Sigma rules evaluated at ingest: "shipped" (the SigmaHQ release in the package), "none", or
    # comma-separated rule directories / zip archives
    detection_rules: str = "shipped"

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
        """Defaults, then every ``GARRISON_<FIELD>`` set in the environment (docs/configuration.md),
        then ``overrides`` (command-line options; ``None`` = not given). Raises ValueError naming the
        variable for a value of the wrong type."""
        s = cls()
        try:
            from_environment = _environment_model()().model_dump(exclude_unset=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first.get("loc") else "GARRISON_*"
            raise ValueError(f"{name}: {first['msg']}") from None
        for key, value in from_environment.items():
            setattr(s, key, value)
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, value)
        s.data_dir = Path(s.data_dir).expanduser()
        return s


# Environment names that differ from GARRISON_<FIELD> (kept from before every setting was readable).
ENV_ALIASES = {"rate_limit_per_minute": "GARRISON_RATE_LIMIT"}


class _Environment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GARRISON_", env_ignore_empty=True, extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str) and info.field_name in _LIST_FIELDS:
            return [p.strip() for p in value.split(",") if p.strip()]
        return value


_LIST_FIELDS = {f.name for f in dataclasses.fields(ServerSettings) if "list[" in str(f.type)}


@functools.cache
def _environment_model() -> type[BaseSettings]:
    """A pydantic-settings model with one optional field per ServerSettings field (same types)."""
    hints = typing.get_type_hints(ServerSettings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(ServerSettings):
        typ: Any = hints[f.name]
        if f.name in _LIST_FIELDS:
            typ = Annotated[typ, NoDecode]
        names = [f"GARRISON_{f.name.upper()}"] + ([ENV_ALIASES[f.name]] if f.name in ENV_ALIASES else [])
        fields[f.name] = (typ | None, Field(None, validation_alias=AliasChoices(*names)))
    model: type[BaseSettings] = create_model("ServerEnvironment", __base__=_Environment, **fields)
    return model


def environment_variables() -> dict[str, str]:
    """Setting name → the environment variable(s) that set it (for docs/configuration.md)."""
    return {f.name: ", ".join([f"GARRISON_{f.name.upper()}"] + ([ENV_ALIASES[f.name]] if f.name in ENV_ALIASES
                                                                 else []))
            for f in dataclasses.fields(ServerSettings)}
