"""Starting an agent in the background (as build daemons do) and waiting until it answers.

The child is `python -m cronium.core.agent SETTINGS`: the same interpreter, environment and
working folder as the client, the client's `--config` file and `--set` overrides, in its own
session (Ctrl-C in the client's terminal never reaches it), stdin on /dev/null, stdout and stderr
appended to `<state dir>/agent/agent-<fingerprint>.log` (0600).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import AgentUnavailable
from . import protocol
from .client import answers


def log_path(socket_path: Path) -> Path:
    return socket_path.with_suffix(".log")


def start_agent(*, state: Path, fingerprint: str, config_file: str | None, overrides: dict[str, Any],
                wait: float) -> int:
    """Start an agent for this configuration unless one answers; return when its socket answers
    (the child's pid, or 0 when one already ran). `AgentUnavailable` when it does not within `wait`."""
    path = protocol.socket_path(state, fingerprint)
    if answers(path):
        return 0
    protocol.private_folder(path.parent)
    settings = {"config_file": config_file, "overrides": overrides, "fingerprint": fingerprint}
    log_fd = os.open(log_path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        child = subprocess.Popen([sys.executable, "-m", "cronium.core.agent", json.dumps(settings)],
                                 stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, start_new_session=True,
                                 close_fds=True, env={**os.environ, "CRONIUM_STATE_DIR": str(state)})
    finally:
        os.close(log_fd)
    deadline, exited = time.monotonic() + wait, False
    while time.monotonic() < deadline:
        if answers(path):
            return child.pid
        if child.poll() is not None:  # it failed, or another client's agent won the race: wait a little
            deadline = min(deadline, time.monotonic() + 2.0) if not exited else deadline
            exited = True
        time.sleep(0.02)
    if exited:
        raise AgentUnavailable(f"the cronium agent exited at start (status {child.returncode})",
                               hint=f"see its log {log_path(path)}")
    raise AgentUnavailable(f"the cronium agent did not answer within {wait:g}s",
                           hint=f"see its log {log_path(path)}; raise agent.start_timeout")
