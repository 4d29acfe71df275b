"""Every server setting is readable from the environment (GARRISON_*), typed, and documented in one table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from garrison.server.settings import ServerSettings, environment_variables

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {"GARRISON_DATA_DIR": str(tmp_path), "GARRISON_PORT": "9443", "GARRISON_HOST": "0.0.0.0",
              "GARRISON_INSECURE_HTTP": "true", "GARRISON_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
              "GARRISON_RATE_LIMIT": "77", "GARRISON_MAX_BODY_BYTES": "2048", "GARRISON_CHECKIN_INTERVAL": "30",
              "GARRISON_HEARTBEAT_INTERVAL": "0.5", "GARRISON_RUN_JOBS": "false", "GARRISON_SESSION_SECRET": "s",
              "GARRISON_HUNTING_DAYS": "7", "GARRISON_SECRETS_KEY": ""}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    s = ServerSettings.from_env(port=None)
    assert (s.data_dir, s.port, s.host, s.insecure_http) == (tmp_path, 9443, "0.0.0.0", True)
    assert s.trusted_proxies == ["10.0.0.0/8", "192.168.0.0/16"]
    assert (s.rate_limit_per_minute, s.max_body_bytes, s.checkin_interval) == (77, 2048, 30)
    assert (s.heartbeat_interval, s.run_jobs, s.session_secret, s.hunting_days) == (0.5, False, "s", 7)
    assert s.secrets_key is None  # empty = unset
    assert ServerSettings.from_env(port=8000, run_jobs=None).port == 8000  # a command-line option wins


def test_a_wrong_type_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GARRISON_CHECKIN_INTERVAL", "soon")
    with pytest.raises(ValueError, match="GARRISON_CHECKIN_INTERVAL"):
        ServerSettings.from_env()


def test_the_table_lists_every_setting() -> None:
    text = DOC.read_text()
    env = environment_variables()
    for f in dataclasses.fields(ServerSettings):
        assert f"| `{env[f.name]}` | `{f.name}` |" in text, f.name
