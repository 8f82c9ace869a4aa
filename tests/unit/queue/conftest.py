"""Unit tests of the queue's pure parts (cron, deployment files, metrics format, the cancel watcher):
no Docker, no Redis."""
from __future__ import annotations

import pytest


#: The worker variables the deployment files of these tests refer to (worker.secret_env_allow).
ALLOWED_SECRETS = ["MY_TOKEN", "WORKER_TOKEN", "SYNC_API_TOKEN"]


@pytest.fixture
def config(tmp_path):
    from cronium.core.config import load_config

    return load_config(flags={"worker.secret_env_allow": ALLOWED_SECRETS}, use_user_config=False, environ={},
                       cwd=tmp_path)
