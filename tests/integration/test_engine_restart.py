"""The Docker engine restarted in the middle of a job (docs/faults.md).

This test stops and restarts `dockerd` itself, so it runs only where cronium's setup started the
engine as a plain background process (no systemd), which is how `make setup` and CI run it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.integration


def _dockerd_pid() -> int | None:
    found = subprocess.run(["pgrep", "-xo", "dockerd"], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.returncode == 0 else None


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def restart_dockerd() -> None:
    pid = _dockerd_pid()
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    with open("/var/log/cronium-dockerd.log", "ab") as log:
        subprocess.Popen(cmdline, stdout=log, stderr=log, start_new_session=True)
    while not _engine_answers() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def restartable_engine():
    pid = _dockerd_pid()
    if pid is None or os.getuid() != 0:
        pytest.skip("dockerd is not a process this test may restart (needs root and a dockerd we can see)")
    if os.path.exists("/run/systemd/system"):
        pytest.skip("dockerd is managed by systemd here; restart it with systemctl instead")
    yield
    deadline = time.monotonic() + 60
    while not _engine_answers() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_engine_restart_mid_job(restartable_engine, cronium_run, test_redis, engine):
    restarter = {}

    def events(phase, state):
        if phase == "job" and state == "start":
            restarter["thread"] = threading.Thread(target=restart_dockerd)
            restarter["thread"].start()

    script = "import time\nprint('started', flush=True)\ntime.sleep(120)\nprint('never')\n"
    result = cronium_run(script, events=events)
    restarter["thread"].join(120)
    assert _engine_answers()
    assert result.status == "error", result
    assert result.error_phase == "job"
    assert "Docker engine" in result.error
    # Cleanup waited for the engine to come back and removed everything of this execution.
    label = {"label": f"cronium.execution={result.execution_id}"}
    assert engine.api.containers(all=True, filters=label) == []
    assert engine.api.networks(filters=label) == []
    assert engine.api.containers(all=True, filters={"name": result.execution_id}) == []
