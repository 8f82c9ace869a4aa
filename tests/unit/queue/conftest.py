"""Unit tests of the queue's pure parts (cron, deployment files, metrics format): no Docker, no Redis."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("CRONIUM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config(tmp_path):
    from cronium.core.config import load_config

    return load_config(flags={}, use_user_config=False, environ={}, cwd=tmp_path)
