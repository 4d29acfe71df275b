"""Agent configuration: TOML file, GARRISON_AGENT_* environment, explicit options, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from garrison.config import AgentConfig, ConfigError, default_state_dir, load_agent_config

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "garrison" / "agent" / "data" / "agent.toml"


def test_defaults_follow_the_user() -> None:
    cfg = load_agent_config(env={})
    assert cfg.server == "" and cfg.fingerprint is None and cfg.checkin_interval is None
    assert cfg.spool_max_bytes == 64 * 1024 * 1024 and cfg.log_level == "info"
    # The suite runs as root here, where the agent keeps its state in /var/lib.
    expected = Path("/var/lib/garrison-agent") if os.geteuid() == 0 else Path.home() / ".local/state/garrison-agent"
    assert cfg.state_dir == default_state_dir() == expected


def test_shipped_agent_toml_is_valid_and_documented() -> None:
    cfg = load_agent_config(SHIPPED, env={})
    assert cfg.server == "https://garrison.example.org:8443"
    assert cfg.collectors_enabled == [] and cfg.collectors_disabled == []
    text = SHIPPED.read_text()
    for key in ("server", "enroll_secret", "fingerprint", "state_dir", "checkin_interval", "spool_max_bytes",
                "log_level", "[collectors]", "disabled"):
        assert key in text


def test_file_then_environment_then_options(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text('server = "https://a.example:8443/"\ncheckin_interval = 30\nlog_level = "DEBUG"\n'
                 '[collectors]\ndisabled = ["runtime"]\n[collectors.intervals]\ndevice = 60\n')
    env = {"GARRISON_AGENT_CHECKIN_INTERVAL": "45", "GARRISON_AGENT_COLLECTORS_DISABLED": "runtime, assessment",
           "GARRISON_AGENT_SPOOL_MAX_BYTES": "1048576", "UNRELATED": "x"}
    cfg = load_agent_config(f, env=env, overrides={"state_dir": tmp_path / "st", "server": None})
    assert cfg.server == "https://a.example:8443"  # trailing slash removed, None option ignored
    assert cfg.checkin_interval == 45  # environment over file
    assert cfg.collectors_disabled == ["runtime", "assessment"]
    assert cfg.collector_intervals == {"device": 60}
    assert cfg.spool_max_bytes == 1048576 and cfg.log_level == "debug" and cfg.state_dir == tmp_path / "st"
    assert not cfg.collector_enabled("runtime") and cfg.collector_enabled("device")
    cfg = load_agent_config(f, env=env, overrides={"checkin_interval": 5})
    assert cfg.checkin_interval == 5  # options over environment


def test_enabled_list_restricts_collectors() -> None:
    cfg = AgentConfig(collectors_enabled=["device"], collectors_disabled=["device"])
    assert not cfg.collector_enabled("device") and not cfg.collector_enabled("inventory")
    assert AgentConfig(collectors_enabled=["device"]).collector_enabled("device")


def test_fingerprint_is_normalised() -> None:
    fp = "AB:" * 31 + "CD"
    cfg = load_agent_config(env={"GARRISON_AGENT_FINGERPRINT": fp})
    assert cfg.fingerprint == ("ab" * 31 + "cd")


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('server = "ftp://x"\n', {}, "https://"),
        ('colour = "blue"\n', {}, "unknown key 'colour'"),
        ("checkin_interval = 0\n", {}, "checkin_interval"),
        ('checkin_interval = "soon"\n', {}, "invalid value for checkin_interval"),
        ("spool_max_bytes = 10\n", {}, "spool_max_bytes"),
        ('log_level = "loud"\n', {}, "log_level"),
        ("server = \n", {}, "not valid TOML"),
        ("", {"GARRISON_AGENT_FINGERPRINT": "abc"}, "64 hex digits"),
        ("", {"GARRISON_AGENT_SPOOL_MAX_BYTES": "lots"}, "GARRISON_AGENT_SPOOL_MAX_BYTES"),
        ("[collectors]\nenabled = 3\n", {}, "collectors_enabled"),
        ("[collectors]\nsometimes = []\n", {}, "collectors.sometimes"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    f = tmp_path / "agent.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_agent_config(f, env=env)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_agent_config(tmp_path / "nope.toml", env={})
