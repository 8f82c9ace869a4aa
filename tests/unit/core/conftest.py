"""Shared fixtures for the core unit tests: no Docker, no Redis (the environment is isolated by
tests/unit/conftest.py)."""
from __future__ import annotations

import pytest


@pytest.fixture
def make_config(tmp_path):
    """`make_config(**flags)` -> a `Config` from the defaults plus flags (no files, no env)."""
    from cronium.core.config import load_config

    def make(flags=None, **kwargs):
        kwargs.setdefault("use_user_config", False)
        kwargs.setdefault("environ", {})
        kwargs.setdefault("cwd", tmp_path)
        return load_config(flags=flags or {}, **kwargs)

    return make


class StandInRuntime:
    """The two attributes of `Runtime` that pure lifecycle logic reads."""

    def __init__(self, config, owner: str = "testhost.4242.abcdef"):
        self.config = config
        self.owner = owner


@pytest.fixture
def stand_in_runtime(make_config):
    """`stand_in_runtime(**flags)` -> an object with `.config` and `.owner`."""

    def make(flags=None, owner: str = "testhost.4242.abcdef"):
        return StandInRuntime(make_config(flags), owner)

    return make
