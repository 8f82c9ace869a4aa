"""Shared by every unit test: no Docker, no Redis, and nothing of this machine's own setup.

The process environment and the user's own config must never leak into these tests, so every
test runs with the `CRONIUM_*` variables removed, `XDG_CONFIG_HOME`/`XDG_STATE_HOME` and
`CRONIUM_SYSTEM_CONFIG` (the /etc/cronium/config.toml layer) pointing into its temporary directory and the working directory set to it.
"""
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
    monkeypatch.setenv("CRONIUM_SYSTEM_CONFIG", str(tmp_path / "etc-cronium" / "config.toml"))
    monkeypatch.chdir(tmp_path)
