"""Unit tests of the queue's pure parts (cron, deployment files, metrics format, the cancel watcher):
no Docker, no Redis."""
from __future__ import annotations

import pytest


@pytest.fixture
def config(tmp_path):
    from cronium.core.config import load_config

    return load_config(flags={}, use_user_config=False, environ={}, cwd=tmp_path)
