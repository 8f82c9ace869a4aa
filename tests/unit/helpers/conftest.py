"""Fixtures for the helper-library tests; the harness itself is in helper_harness.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helper_harness  # noqa: E402


@pytest.fixture
def api():
    """A scripted runtime API on 127.0.0.1 (see helper_harness.FakeRuntimeAPI)."""
    yield from helper_harness._api_fixture()


@pytest.fixture(params=["python", "node", "bash"])
def helper(request, monkeypatch):
    """Runs (op, *args) lists through the helper of one language (see helper_harness)."""
    return helper_harness._helper_fixture(request, monkeypatch)


@pytest.fixture
def dropper():
    """A server that closes every connection without answering (see helper_harness.DroppingServer)."""
    yield from helper_harness._dropper_fixture()
