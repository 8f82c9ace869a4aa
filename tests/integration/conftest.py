"""Helpers for integration tests: the installed `cronium` executable with the test Redis."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# `cronium run` runs one-shot in the integration tests (every process they start inherits this):
# they check the job path itself, some check which process owns a job, and an agent per test's
# configuration would outlive the test. test_agent.py sets CRONIUM_AGENT_ENABLED=true for its own.
os.environ["CRONIUM_AGENT_ENABLED"] = "false"

from integration_util import assert_test_redis_serves, cronium_executable
from queue_util import container_starts, processes, qcli, qconfig, qruntime  # noqa: F401 - queue test fixtures


@pytest.fixture
def cli_config(test_redis, tmp_path) -> Path:
    """A cronium.toml pointing at the test Redis, with logs in tmp_path."""
    path = tmp_path / "cronium.toml"
    path.write_text(
        f'[redis]\nurl = "{test_redis["url"]}"\nsidecar_url = "{test_redis["sidecar_url"]}"\n'
        f'[services]\nnetwork = "{test_redis["network"]}"\n'
        f'[logs]\ndir = "{tmp_path / "logs"}"\n'
    )
    return path


@pytest.fixture
def cli(cli_config, tmp_path):
    """Run the installed `cronium` executable end to end: cli(*args, **popen_kwargs) -> CompletedProcess."""

    def run(*args: str, env: dict | None = None, timeout: float = 120, measure_with: list[str] = (),
            **kwargs) -> subprocess.CompletedProcess:
        """`measure_with`: a command line put before cronium's (a wrapper that measures it)."""
        full_env = {**os.environ, "CRONIUM_CONFIG": str(cli_config), **(env or {})}
        return subprocess.run([*measure_with, cronium_executable(), *args], env=full_env, capture_output=True,
                              timeout=timeout, cwd=kwargs.pop("cwd", tmp_path), **kwargs)

    run.config = cli_config
    return run


@pytest.fixture
def popen_cli(cli_config, tmp_path):
    """Start `cronium` without waiting (for signals)."""
    procs = []

    def start(*args: str, env: dict | None = None) -> subprocess.Popen:
        full_env = {**os.environ, "CRONIUM_CONFIG": str(cli_config), **(env or {})}
        proc = subprocess.Popen([cronium_executable(), *args], env=full_env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def engine():
    """A Docker client of the tests' own (independent of any cronium config under test); its
    timeout allows for image builds."""
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the Docker engine is not reachable ({exc}): start it (`make setup`) before the integration tests")
    yield client
    client.close()


@pytest.fixture(scope="session")
def _host_installation() -> str | None:
    """The installation id of this machine's own configuration (what `cronium` uses here without
    CRONIUM_CONFIG, e.g. a developer's agent with its warm pool): the leftover check neither counts
    nor removes its objects — they are not the tests' to touch."""
    from cronium.core.config import load_config
    from cronium.core.runtime import Runtime

    environ = {k: v for k, v in os.environ.items() if k != "CRONIUM_CONFIG"}
    try:
        return Runtime(load_config(environ=environ)).installation
    except Exception:  # noqa: BLE001 - no usable own configuration: nothing to spare
        return None


@pytest.fixture(autouse=True)
def _no_leftovers_after_each_test(engine, request, _host_installation):
    """After every integration test, nothing labelled cronium.managed may remain (objects of this
    machine's own installation excepted)."""
    yield
    label = {"label": "cronium.managed=true"}

    def ours(labels) -> bool:
        return not _host_installation or (labels or {}).get("cronium.installation") != _host_installation

    containers = [c for c in engine.api.containers(all=True, filters=label) if ours(c.get("Labels"))]
    networks = [n for n in engine.api.networks(filters=label) if ours(n.get("Labels"))]
    left = [(c.get("Names") or [c["Id"][:12]])[0] for c in containers] + [n["Name"] for n in networks]
    if left:
        _remove_leftovers(engine, containers, networks)  # so only the test that leaked fails
    assert left == [], f"{request.node.name} left Docker resources behind"


def _remove_leftovers(engine, containers, networks) -> None:
    """Force-remove what a test left (containers first: they hold the networks)."""
    import docker

    for container in containers:
        try:
            engine.api.remove_container(container["Id"], force=True)
        except docker.errors.APIError:
            pass  # the assertion below names it either way
    for network in networks:
        try:
            engine.api.remove_network(network["Id"])
        except docker.errors.APIError:
            pass  # the assertion below names it either way


@pytest.fixture(scope="module")
def swarm_rig(engine):
    """A two-node swarm (`cronium.core.testing.swarm_rig.SwarmRig`) for one test module: this
    engine as manager, a second dockerd in a network namespace as worker (hostname
    cronium-rig-worker, node label cronium.rig=worker) and a TLS registry on 10.214.0.1
    (`rig.push(tags, names)`). Put the tests that share it in one module: at the module's end it is
    torn down on every path (a failed start too) and the engine is left as found, so the rest of the
    session runs in no swarm (`_swarm_module` checks that and the test Redis). Needs root
    and Debian's docker-registry (`make setup` installs it): see `swarm_tests_unavailable`."""
    from cronium.core.testing.swarm_rig import SwarmRig

    require_swarm_tests()
    rig = SwarmRig(engine)
    try:
        yield rig.start()  # start() stops what it made when it fails
    finally:
        rig.stop()


#: Test modules that make this engine a swarm manager (or break and heal the managed Redis' name
#: with a swarm init + leave). Each makes and leaves its own swarm (module fixtures), and each
#: checks at its end that the test Redis still serves the tests after it.
SWARM_MODULES = {"test_sidecar_path.py", "test_swarm_executor.py", "test_swarm_rig.py", "test_swarm_rig_teardown.py",
                 "test_swarm_two_node.py"}


def swarm_tests_unavailable() -> str:
    """Why the swarm tests cannot run on this machine ("" when they can): they need root, the tools
    of the rig and Debian's docker-registry (`make setup` installs it)."""
    from cronium.core.testing.swarm_rig import rig_unavailable

    return rig_unavailable()


def require_swarm_tests() -> None:
    """Skip (a developer's machine without root or the package) or, with CRONIUM_SWARM_TESTS=1
    (CI: `.ci/run` sets it), fail when the swarm tests cannot run here; CRONIUM_SWARM_TESTS=0
    skips them on purpose."""
    missing = swarm_tests_unavailable()
    if missing and os.environ.get("CRONIUM_SWARM_TESTS") == "1":
        pytest.fail(f"the swarm tests cannot run here: {missing} (run `make setup` as root)")
    if missing:
        pytest.skip(f"swarm tests: {missing} (run `make setup` as root; CI fails instead of skipping)")


def pytest_collection_modifyitems(config, items):
    """The swarm modules run by default; CRONIUM_SWARM_TESTS=0 leaves them out on purpose (an
    engine that must not change its swarm state)."""
    if os.environ.get("CRONIUM_SWARM_TESTS") != "0":
        return
    skip = pytest.mark.skip(reason="swarm tests left out: CRONIUM_SWARM_TESTS=0")
    for item in items:
        if item.path.name in SWARM_MODULES:
            item.add_marker(skip)


@pytest.fixture(scope="module", autouse=True)
def _swarm_module(request, engine):
    """Around each swarm module (before its own fixtures, after their teardown): skip it, or fail
    in CI, when this machine cannot run it; at its end, the engine is in the swarm state it was
    found in and the test Redis still serves the tests that follow (a swarm leave on Docker 20.10
    broke it: docs/swarm-setup.md)."""
    if request.node.path.name not in SWARM_MODULES:
        yield
        return
    from cronium.core.testing.swarm_host import GWBRIDGE, swarm_state

    require_swarm_tests()
    test_redis = request.getfixturevalue("test_redis")
    before = swarm_state(engine)
    had_gwbridge = bool(engine.networks.list(names=[GWBRIDGE]))
    yield
    assert swarm_state(engine) == before, f"{request.node.path.name} left the engine's swarm state {swarm_state(engine)!r}, found {before!r}"
    # A swarm init makes docker_gwbridge; whoever left the swarm it made removes it too.
    assert bool(engine.networks.list(names=[GWBRIDGE])) == had_gwbridge, \
        f"{request.node.path.name} left the {GWBRIDGE} network its swarm made"
    assert_test_redis_serves(engine, test_redis)
