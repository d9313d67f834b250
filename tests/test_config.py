"""Settings: explicit > environment > config file > defaults, and clear errors."""

import pytest
from click.testing import CliRunner

from overnight.cli.main import cli
from overnight.config import CommonSettings, load_settings
from overnight.errors import ConfigError


class ServiceSettings(CommonSettings):
    config_section = "svc"
    interval_s: float = 30.0


def test_defaults(monkeypatch):
    monkeypatch.delenv("OVERNIGHT_STORAGE_URL", raising=False)
    monkeypatch.delenv("OVERNIGHT_CONFIG", raising=False)
    s = load_settings(ServiceSettings)
    assert s.storage_url == "file://./overnight-data" and s.interval_s == 30.0


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "overnight.yaml"
    cfg.write_text(
        "storage_url: s3://from-file\ninterval_s: 5\nsvc:\n  interval_s: 7\nlog_level: DEBUG\n"
    )
    monkeypatch.setenv("OVERNIGHT_STORAGE_URL", "s3://from-env")
    s = load_settings(ServiceSettings, cfg)
    assert s.storage_url == "s3://from-env"  # env beats file
    assert s.interval_s == 7  # the service's section beats the top level
    assert s.log_level == "DEBUG"
    assert load_settings(ServiceSettings, cfg, interval_s=1).interval_s == 1  # explicit wins


def test_config_file_from_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"redis_url": "redis://example:6380/1"}')
    monkeypatch.setenv("OVERNIGHT_CONFIG", str(cfg))
    assert load_settings(CommonSettings).redis_url == "redis://example:6380/1"


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("OVERNIGHT_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="OVERNIGHT_LOG_LEVEL"):
        load_settings(CommonSettings)


def test_unreadable_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_settings(CommonSettings, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(CommonSettings, bad)


def test_secret_is_not_printed(monkeypatch):
    monkeypatch.setenv("OVERNIGHT_API_TOKEN", "hunter2")
    s = load_settings(CommonSettings)
    assert s.api_token is not None and s.api_token.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)


def test_config_command_lists_settings():
    result = CliRunner().invoke(cli, ["config", "--markdown"])
    assert result.exit_code == 0, result.output
    assert "`OVERNIGHT_STORAGE_URL`" in result.output and "`OVERNIGHT_API_TOKEN`" in result.output


def test_empty_variables_count_as_unset(monkeypatch):
    # docker-compose passes unset optional variables as empty strings
    monkeypatch.setenv("OVERNIGHT_REDIS_URL", "")
    assert load_settings(CommonSettings).redis_url == "redis://127.0.0.1:6379/0"
