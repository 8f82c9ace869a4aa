"""The executor conformance kit: the contract every executor plugin passes, as a pytest class.

Subclass `ExecutorConformance` in a test module of your plugin; pytest then runs every `test_*`
below against your executor, through the whole lifecycle, with the fixtures of
`cronium.core.testing` (`cronium_redis`, `cronium_config`, `cronium_runtime`, `cronium_run`):

    from cronium.core.testing import ExecutorConformance

    class TestSwarmExecutor(ExecutorConformance):
        @pytest.fixture
        def cronium_overrides(self):            # config: disable the built-in executor
            return {"plugins.disabled": ["docker_executor"]}

        @pytest.fixture
        def executor_plugins(self):             # plugins to register: name -> import path
            return {"swarm": "cronium_swarm.plugin"}

        @pytest.fixture
        def executor_inspect(self):             # the engine's own view of an execution's objects
            return lambda execution_id: json.dumps(swarm.inspect_everything(execution_id))

Fixtures to override (see each one's docstring): `executor_plugins`, `executor_inspect` (required),
`executor_leftovers` (default: what a dry-run `reap_orphans` selecting the execution still finds),
`unreachable_targets` (default: Docker addresses the job must not reach). Jobs are Python scripts
on the configured `images.python`. The tests never send traffic anywhere but to containers and a
listening socket they created themselves.
"""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import uuid
from typing import Any, Callable

import pytest

from ..plugins import hookimpl

#: Python job scripts of the kit.
OUTPUT_ORDER_JOB = """
import os, time, cronium
key = cronium.input()['key']
for block in range(20):
    os.write(1 if block % 2 == 0 else 2, b''.join(b'%d %d\\n' % (block, i) for i in range(500)))
    while cronium.get_variable(key) != block:  # until the orchestrator has received the whole block
        time.sleep(0.05)
os.write(1, b'no newline at the end')
"""
SLEEP_JOB = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
print('started', flush=True)
time.sleep(600)
"""
OOM_JOB = "x = []\nwhile True:\n    x.append(bytearray(8 * 1024 * 1024))\n"
PROBE_JOB = """
import json, socket, urllib.request, cronium
from concurrent.futures import ThreadPoolExecutor
def connect(target):
    try:
        socket.create_connection(tuple(target), timeout=2).close(); return 'open'
    except OSError:
        return 'blocked'
def resolve(name):
    try:
        socket.getaddrinfo(name, 80); return 'resolved'
    except OSError:
        return 'blocked'
targets, names = cronium.input()['targets'], cronium.input()['names']
with ThreadPoolExecutor(len(targets) + len(names)) as pool:
    res = dict(zip(targets, pool.map(connect, targets.values())))
    res.update(zip(['dns ' + n for n in names], pool.map(resolve, names)))
res['runtime_api'] = json.load(urllib.request.urlopen('http://runtime-api:8081/health', timeout=10))['status']
res['dns runtime-api'] = resolve('runtime-api')  # the positive control of the DNS probes
def ipv6_link_local():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.sendto(b'x', ('ff02::1', 9, 0, socket.if_nameindex()[-1][0])); return 'open'
    except (OSError, IndexError):
        return 'blocked'
res['ipv6 ff02::1'] = ipv6_link_local()
cronium.set_variable(cronium.input()['done'], True)
cronium.output(res)
"""
PEER_JOB = """
import time, cronium
while not cronium.get_variable(cronium.input()['done']):
    time.sleep(0.1)
"""


class _Probe:
    """A plugin the kit registers for each test: captures output records and sidecars, and runs
    callbacks when a job starts."""

    def __init__(self) -> None:
        self.records: list = []
        self.sidecars: dict[str, Any] = {}
        self.on_job_started: list[Callable[[Any], None]] = []
        self.on_record: list[Callable[[Any], None]] = []

    @hookimpl
    def log_sinks(self, execution):
        probe = self

        class Sink:
            name = "conformance"

            def write(self, batches):
                for batch in batches:
                    for record in batch.records():
                        probe.records.append(record)
                        for callback in probe.on_record:
                            callback(record)

            def close(self, ok):
                pass

        return Sink()

    @hookimpl
    def sidecar_started(self, execution, sidecar):
        self.sidecars[execution.execution_id] = sidecar

    @hookimpl
    def job_started(self, execution):
        for callback in self.on_job_started:
            callback(execution)


def load_object(path: str) -> Any:
    """`module` or `module:attribute` -> the object."""
    module, _, attribute = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attribute) if attribute else obj


class ExecutorConformance:
    """The executor contract (module docstring). Every test runs real jobs on the real engine."""

    # --- what the executor under test says about itself (override) ---------------------------
    @pytest.fixture
    def executor_plugins(self) -> dict[str, str]:
        """Plugins to register on the runtime besides the installed ones: name -> import path
        (`module` or `module:attribute`). They are also loaded by the crashed process of
        `test_every_resource_is_reaped_after_a_crash`. Default: none (the installed executor)."""
        return {}

    @pytest.fixture
    def executor_inspect(self) -> Callable[[str], str]:
        """`inspect(execution_id) -> str`: everything the engine shows about the execution's job
        objects (Docker: `docker inspect` of its containers). Called while the job runs."""
        pytest.fail("override the `executor_inspect` fixture: how to read the engine's view of a job")

    @pytest.fixture
    def executor_leftovers(self, cronium_runtime) -> Callable[[str], list[str]]:
        """`leftovers(execution_id) -> list[str]`: what of the execution still exists. Default: what
        a dry run of `reap_orphans` selecting the execution finds (override with an independent
        listing of your engine's objects: it is a stronger check)."""
        from ..owners import ExecutionJudgement
        from ..reaper import reap_through_plugins

        def leftovers(execution_id: str) -> list[str]:
            report = reap_through_plugins(cronium_runtime, ExecutionJudgement(execution_id), dry_run=True)
            return sorted(report.removed + report.errors)

        return leftovers

    @pytest.fixture
    def unreachable_targets(self, cronium_runtime, cronium_redis) -> Callable[[Any], dict[str, tuple[str, int]]]:
        """`targets(peer_sidecar) -> {name: (address, port)}`: what a job must not reach, given the
        `SidecarInfo` of another execution that runs at the same time. Default (Docker): the
        services network's containers (Redis), every address of the peer's sidecar, and a
        listening container on Docker's default bridge."""
        from .docker_targets import DockerTargets

        targets = DockerTargets(cronium_runtime.docker, cronium_runtime.config, cronium_redis["network"])
        yield targets
        targets.close()

    # --- the kit's own fixtures -----------------------------------------------------------------
    @pytest.fixture
    def probe(self, cronium_runtime, executor_plugins):
        """Registers the executor's plugins and the kit's probe on the runtime for one test."""
        registered = []
        for name, path in executor_plugins.items():
            plugin = load_object(path)
            if cronium_runtime.pm.get_plugin(name) is None:
                cronium_runtime.pm.register(plugin, name=name)
                registered.append(plugin)
        probe = _Probe()
        cronium_runtime.pm.register(probe, name="conformance-probe")
        registered.append(probe)
        yield probe
        for plugin in registered:
            cronium_runtime.pm.unregister(plugin)

    # --- the contract -----------------------------------------------------------------------
    def test_job_runs_and_exits_with_its_code(self, probe, cronium_run, executor_leftovers):
        script = ("import os, sys\nprint(os.environ['CRONIUM_EXECUTION_ID'], os.environ['CRONIUM_RUNTIME_API'],"
                  " 'token' if os.environ.get('CRONIUM_EXECUTION_TOKEN') else 'no token')\nsys.exit(3)\n")
        result = cronium_run(script)
        assert (result.status, result.exit_code, result.cli_exit_code) == ("failed", 3, 3), result
        assert b"".join(r.data for r in probe.records).decode() == \
            f"{result.execution_id} http://runtime-api:8081 token\n"
        assert executor_leftovers(result.execution_id) == []

    def test_output_keeps_its_order_and_its_partial_last_line(self, probe, cronium_run, cronium_runtime):
        # The job switches streams only once the orchestrator has received its previous block (a
        # variable the kit sets when the block's last line arrives): the order is then defined.
        key = f"conformance_seen_{uuid.uuid4().hex[:8]}"

        def block_received(record) -> None:
            if record.text.endswith(" 499\n"):
                cronium_runtime.store.variables.set("conformance", key, int(record.text.split()[0]))

        probe.on_record.append(block_received)
        result = cronium_run(OUTPUT_ORDER_JOB, namespace="conformance", input={"key": key})
        assert result.status == "succeeded", result
        expected = [("stdout" if block % 2 == 0 else "stderr", f"{block} {i}\n") for block in range(20)
                    for i in range(500)]
        expected.append(("stdout", "no newline at the end"))
        assert [(r.stream, r.text) for r in probe.records] == expected
        assert [r.seq for r in probe.records] == list(range(len(expected)))
        assert [r.partial for r in probe.records] == [False] * (len(expected) - 1) + [True]
        assert result.log_lines == len(expected)

    def test_timeout_stops_the_job(self, probe, cronium_run, executor_leftovers):
        result = cronium_run(SLEEP_JOB, timeout=2)
        assert (result.status, result.cli_exit_code) == ("timed_out", 124), result
        assert [r.text for r in probe.records] == ["started\n"]
        assert executor_leftovers(result.execution_id) == []

    def test_cancel_stops_the_job(self, probe, cronium_run, executor_leftovers):
        from ..lifecycle import Cancellation

        cancel = Cancellation()
        probe.on_job_started.append(lambda execution: cancel.cancel("the conformance kit cancels it"))
        result = cronium_run(SLEEP_JOB, cancel=cancel)
        assert (result.status, result.cli_exit_code) == ("cancelled", 130), result
        assert "the conformance kit cancels it" in result.error
        assert executor_leftovers(result.execution_id) == []

    def test_memory_limit_gives_oom_killed(self, probe, cronium_run):
        from ..model import Resources

        result = cronium_run(OOM_JOB, resources=Resources(memory=48 * 1024 * 1024))
        assert (result.status, result.cli_exit_code) == ("oom_killed", 137), result

    def test_sidecar_is_reachable_by_its_alias(self, probe, cronium_run):
        key = f"conformance_{uuid.uuid4().hex[:8]}"
        script = ("import json, urllib.request, cronium\n"
                  "health = json.load(urllib.request.urlopen('http://runtime-api:8081/health', timeout=10))\n"
                  f"cronium.set_variable('{key}', cronium.input())\n"
                  f"cronium.output({{'health': health['status'], 'read': cronium.get_variable('{key}')}})\n")
        result = cronium_run(script, input={"n": [1, "two"]})
        assert result.status == "succeeded", result
        assert result.output == {"health": "healthy", "read": {"n": [1, "two"]}}

    def test_nothing_else_is_reachable(self, probe, cronium_run, unreachable_targets, cronium_redis):
        from concurrent.futures import ThreadPoolExecutor
        from threading import Event
        from urllib.parse import urlsplit

        done = f"conformance_done_{uuid.uuid4().hex[:8]}"
        peer_running = Event()
        probe.on_job_started.append(lambda execution: peer_running.set())
        with ThreadPoolExecutor(1) as pool:
            # A peer execution, alive (waiting for the probe's signal) while the probe runs.
            peer = pool.submit(cronium_run, PEER_JOB, input={"done": done}, timeout=300)
            assert peer_running.wait(120), "the peer job did not start"
            probe.on_job_started.clear()
            targets = unreachable_targets(next(iter(probe.sidecars.values())))
            names = [urlsplit(cronium_redis["sidecar_url"]).hostname]
            result = cronium_run(PROBE_JOB, input={"targets": targets, "names": names, "done": done})
            peer_result = peer.result()
        assert_reached_only_its_sidecar(result, peer_result, targets, names)

    def test_every_resource_is_reaped_after_a_crash(self, probe, cronium_runtime, cronium_flags, executor_plugins,
                                                     executor_leftovers):
        from ..reaper import reap

        proc = subprocess.Popen([sys.executable, "-m", "cronium.core.testing.crash"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        try:
            proc.stdin.write(json.dumps({"flags": cronium_flags, "plugins": executor_plugins,
                                         "script": SLEEP_JOB}).encode())
            proc.stdin.close()
            ready, _, _ = select.select([proc.stdout], [], [], 300)
            execution = proc.stdout.readline().decode().strip() if ready else ""
        finally:
            proc.send_signal(signal.SIGKILL)  # the orchestrating process dies mid-job
            proc.wait()
        assert execution.startswith("exec_"), f"the job never started: {proc.stderr.read().decode()[-2000:]}"
        assert executor_leftovers(execution), "the crash should have left the job's resources behind"
        report = reap(cronium_runtime)
        assert executor_leftovers(execution) == [], report
        assert execution in report.lost, report
        assert cronium_runtime.store.records.status(execution) == "lost"

    def test_secrets_are_absent_from_the_engines_view(self, probe, cronium_run, executor_inspect):
        from ..model import Secret

        secret = f"conformance-secret-{uuid.uuid4().hex}"
        seen: list[str] = []
        probe.on_job_started.append(lambda execution: seen.append(executor_inspect(execution.execution_id)))
        script = ("import os, cronium\ncronium.output({'token': os.environ['CRONIUM_EXECUTION_TOKEN'],"
                  " 'secret': os.environ['CONFORMANCE_SECRET']})\n")
        result = cronium_run(script, secret_env={"CONFORMANCE_SECRET": Secret(secret)})
        assert result.status == "succeeded", result
        token = result.output["token"]
        assert result.output["secret"] == secret and len(token) > 20  # both reached the job...
        assert len(seen) == 1 and result.execution_id in seen[0]
        assert secret not in seen[0] and token not in seen[0]  # ...and neither shows in the engine


def assert_reached_only_its_sidecar(result, peer_result, targets, names) -> None:
    """The isolation probe's verdict (PROBE_JOB): its sidecar answered and resolved, every other
    target and name blocked, IPv6 multicast blocked; the peer execution ran too."""
    assert result.status == "succeeded", result
    assert result.output.pop("runtime_api") == "healthy"
    assert result.output.pop("dns runtime-api") == "resolved"
    assert result.output == {**{name: "blocked" for name in targets}, **{f"dns {n}": "blocked" for n in names},
                             "ipv6 ff02::1": "blocked"}
    assert peer_result.status == "succeeded", peer_result
