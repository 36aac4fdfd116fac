"""Settings the service refuses to start with."""

from __future__ import annotations

import pytest
from conftest import app_config

from duesflow import create_app
from duesflow.config import ConfigurationError


@pytest.mark.parametrize("key", ["abc", "x" * 31])
def test_a_secret_key_shorter_than_32_characters_is_refused_at_start(database_url, key):
    with pytest.raises(ConfigurationError, match="DUESFLOW_SECRET_KEY"):
        create_app({**app_config(database_url), "SECRET_KEY": key})


def test_a_short_secret_key_from_the_environment_stops_the_command_with_the_message(monkeypatch, tmp_path):
    monkeypatch.setenv("DUESFLOW_SECRET_KEY", "abc")
    monkeypatch.setenv("DUESFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")

    with pytest.raises(ConfigurationError, match="至少需要 32 个字符"):
        create_app()
