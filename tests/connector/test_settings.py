from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from connector.errors import ConfigurationError
from connector.settings import Settings, documented_defaults, load

CONFIG = Path(__file__).resolve().parents[2] / "config" / "calsync.toml"


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load(environ={})
    assert settings == Settings()
    assert settings.database.url == "sqlite:///calsync.db"
    assert settings.server.port == 8000


def test_the_shipped_file_lists_every_setting_with_its_default():
    shipped = tomllib.loads(CONFIG.read_text())
    assert shipped == documented_defaults()


def test_every_setting_in_the_shipped_file_has_a_comment():
    lines = CONFIG.read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            above = lines[index - 1].lstrip()
            assert above.startswith("#") or "=" in above, f"undocumented setting: {line}"


def test_the_file_then_the_environment_override(tmp_path):
    path = tmp_path / "calsync.toml"
    path.write_text('[database]\nurl = "sqlite:///from-file.db"\n[worker]\nconcurrency = 2\n')
    settings = load(path, environ={"CALSYNC_WORKER_CONCURRENCY": "7"})
    assert settings.database.url == "sqlite:///from-file.db"
    assert settings.worker.concurrency == 7


def test_required_environment_names(tmp_path):
    other = tmp_path / "other.toml"
    other.write_text('[server]\nport = 9001\n')
    settings = load(environ={
        "CALSYNC_CONFIG": str(other),
        "CALSYNC_DATABASE_URL": "postgresql://u@127.0.0.1:5432/x",
        "CALSYNC_SECRET_KEY": "s3cret",
        "CALSYNC_SCHEDULER_ENABLED": "false",
        "CALSYNC_WORKER_POLL_INTERVAL_SECONDS": "0.25",
    })
    assert settings.server.port == 9001
    assert settings.database.url.startswith("postgresql://")
    assert settings.security.secret_key == "s3cret"
    assert settings.scheduler.enabled is False
    assert settings.worker.poll_interval_seconds == 0.25


def test_one_message_names_every_bad_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "eighty"\ncolour = "blue"\n[bogus]\nx = 1\n'
                    '[sandbox]\ntime_zone = "Mars/Olympus"\n')
    with pytest.raises(ConfigurationError) as caught:
        load(path, environ={"CALSYNC_DATABASE_URL": "mysql://nope", "CALSYNC_WORKER_CONCURRENCY": "0"})
    message = caught.value.message
    for key in ("server.port", "server.colour", "[bogus]", "sandbox.time_zone", "database.url",
                "worker.concurrency"):
        assert key in message


def test_an_invalid_choice_is_named():
    with pytest.raises(ConfigurationError) as caught:
        Settings().replace(log={"level": "loud"})
    assert "log.level" in caught.value.message


def test_missing_or_broken_files_are_named(tmp_path):
    with pytest.raises(ConfigurationError, match="not found"):
        load(tmp_path / "absent.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load(broken, environ={})


@pytest.mark.parametrize("hours", ["", "Funday 09:00-17:00", "Mon-Fri 9-17", "Mon 17:00-09:00"])
def test_bad_weekly_hours_are_refused(hours):
    with pytest.raises(ConfigurationError, match="sandbox.weekly_hours"):
        Settings().replace(sandbox={"weekly_hours": hours})
