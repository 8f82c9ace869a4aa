"""Fixtures and helpers for the queue, scheduler and deploy integration tests.

Every test gets its own Redis key prefix (so streams, records and leases of one test never meet
another's), short heartbeat/lease/claim intervals (so take-overs happen within seconds), and
long-running `cronium` processes whose output goes to files (a full pipe would block them).
The fixtures are made available to every integration test by conftest.py; import the helpers.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from integration_util import cronium_executable

#: Settings that make fail-over quick in tests (the defaults are for production).
FAST = """
[heartbeat]
ttl = 5.0
interval = 1.0
[queue]
claim_interval = 1.0
claim_min_idle = 0.5
max_deliveries = 5
[scheduler]
lease_ttl = 3.0
starting_deadline = 60.0
[worker]
reap_interval = 5.0
shutdown_grace = 2.0
"""


@pytest.fixture
def qconfig(test_redis, tmp_path) -> Path:
    """A cronium.toml: the test Redis under a fresh key prefix, fast fail-over settings."""
    path = tmp_path / "cronium.toml"
    prefix = f"cronium:t{secrets.token_hex(4)}:"
    path.write_text(
        f'[redis]\nurl = "{test_redis["url"]}"\nsidecar_url = "{test_redis["sidecar_url"]}"\nkey_prefix = "{prefix}"\n'
        f'[services]\nnetwork = "{test_redis["network"]}"\n'
        f'[logs]\ndir = "{tmp_path / "logs"}"\n' + FAST)
    return path


@pytest.fixture
def qcli(qconfig, tmp_path):
    """Run `cronium` with that config: qcli(*args, env=None, timeout=120) -> CompletedProcess."""

    def run(*args: str, env: dict | None = None, timeout: float = 120, input: bytes | None = None):
        full_env = {**os.environ, "CRONIUM_CONFIG": str(qconfig), **(env or {})}
        return subprocess.run([cronium_executable(), *args], env=full_env, capture_output=True, timeout=timeout,
                              cwd=tmp_path, input=input)

    return run


class Processes:
    """Long-running `cronium` processes (worker, scheduler, serve); logs in files."""

    def __init__(self, config: Path, tmp_path: Path):
        self.config, self.dir = config, tmp_path
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = self.dir / f"proc-{len(self.procs)}-{args[0]}.log"
        full_env = {**os.environ, "CRONIUM_CONFIG": str(self.config), **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen([cronium_executable(), *args], env=full_env, cwd=self.dir, stdout=out,
                                    stderr=subprocess.STDOUT)
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {log.name} (exit {p.poll()})\n{log.read_text(errors='replace')[-4000:]}"
                         for p, log in self.procs)

    def stop(self, proc: subprocess.Popen, timeout: float = 60) -> int:
        """SIGTERM (graceful), then SIGKILL if it does not end in time."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            self.stop(proc)


@pytest.fixture
def processes(qconfig, tmp_path):
    procs = Processes(qconfig, tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def qruntime(qconfig):
    """A Runtime on the test's config, for reading Redis and using the Python API directly."""
    from cronium.core.config import load_config
    from cronium.core.runtime import Runtime

    runtime = Runtime(load_config(config_file=qconfig, use_user_config=False, environ={}))
    yield runtime
    runtime.close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2,
             logs: Callable[[], str] | None = None) -> Any:
    """Poll until `predicate()` is truthy (returns it); fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f"\n{logs()}" if logs else ""))
        time.sleep(interval)


def deploy_text(qcli, tmp_path: Path, text: str, name: str = "deploy.toml", **files: str) -> Path:
    """Write a deployment file (plus script files) and deploy it; fails the test on error."""
    for file_name, body in files.items():
        (tmp_path / file_name).write_text(body)
    path = tmp_path / name
    path.write_text(text)
    proc = qcli("deploy", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    return path


def job_records(runtime, job: str) -> list[dict]:
    """Every execution record of `job` (any status), oldest first."""
    return sorted((r for r in runtime.store.records.latest(100000) if r.get("job_id") == job),
                  key=lambda r: r.get("queued_at") or r.get("created_at") or 0)


def owner_pid(owner: str) -> int:
    from cronium.core.owners import parse_owner

    return parse_owner(owner).pid


class ContainerStarts:
    """Records the job containers the engine starts while it is open (the engine keeps only its last
    256 events, so they are streamed live): `starts` is a list of execution ids, one per start. A
    pooled slot's job container was started before its execution existed: it counts when it is
    claimed (renamed `cronium-job-<execution>`), so each execution's job shows once either way."""

    def __init__(self, engine, role: str = "job"):
        import threading

        self.role = role
        self.starts: list[str] = []
        self._stream = engine.events(decode=True, filters={"type": "container", "event": ["start", "rename"]})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                attributes = event["Actor"]["Attributes"]
                if event.get("Action") == "start" and attributes.get("cronium.role") == self.role:
                    self.starts.append(attributes.get("cronium.execution"))
                elif (event.get("Action") == "rename" and self.role == "job"
                      and attributes.get("cronium.role") == "slot"
                      and attributes.get("name", "").lstrip("/").startswith("cronium-job-")):
                    self.starts.append(attributes["name"].lstrip("/").removeprefix("cronium-job-"))
        except Exception:
            pass  # closed

    def close(self) -> list[str]:
        time.sleep(0.5)  # let the last events arrive
        self._stream.close()
        return self.starts


@pytest.fixture
def container_starts(engine):
    """`container_starts()` -> a ContainerStarts recorder (closed at the end of the test)."""
    recorders = []

    def start(role: str = "job") -> ContainerStarts:
        recorders.append(ContainerStarts(engine, role))
        return recorders[-1]

    yield start
    for r in recorders:
        r._stream.close()
