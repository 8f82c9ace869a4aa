"""`cronium run` end to end against the real engine and a real Redis (issue: run a job end to end)."""
from __future__ import annotations

import json
import signal
import time

import pytest
from integration_util import REPO, acl_users, execution_id_from

pytestmark = pytest.mark.integration


def test_hello_runs_live_and_leaves_nothing(cli, docker_leftovers, redis_client):
    proc = cli("run", str(REPO / "examples" / "hello.py"), "--input", '{"name": "tests"}')
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().splitlines()
    assert out == ["hello, tests!", "tick 0", "tick 1", "tick 2", "done"]
    err = proc.stderr.decode()
    assert "status: succeeded" in err and '"greeting": "hello, tests"' in err and "condition: true" in err
    execution = execution_id_from(proc.stderr)
    assert docker_leftovers(execution) == []
    # No per-execution Redis credential survives the job, and the token never reached the output.
    assert not [u for u in acl_users(redis_client) if execution in u]
    assert "eyJ" not in proc.stdout.decode() + err


def test_exit_code_is_the_jobs(cli):
    script = cli.config.parent / "exit3.sh"
    script.write_text("echo before; exit 3\n")
    proc = cli("run", "--json", str(script))
    assert proc.returncode == 3
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and result["exit_code"] == 3


def test_sigint_cancels_and_cleans_up(popen_cli, docker_leftovers):
    script = REPO / "tests" / "integration" / "jobs" / "sleeper.py"
    proc = popen_cli("run", "--json", str(script))
    # Wait for the job to be running (its first line) before interrupting.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not docker_leftovers():
        time.sleep(0.05)
    containers = []
    while time.monotonic() < deadline:
        containers = [x for x in docker_leftovers() if x.startswith("container cronium-job-")]
        if containers:
            break
        time.sleep(0.05)
    assert containers, "the job container never appeared"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    assert json.loads(stdout)["status"] == "cancelled"
    assert docker_leftovers() == []


def test_missing_sidecar_image_names_phase_and_fix(cli):
    script = cli.config.parent / "ok.sh"
    script.write_text("echo never\n")
    proc = cli("--set", "images.sidecar=cronium/no-such-sidecar:latest", "run", "--json", str(script))
    assert proc.returncode == 125
    result = json.loads(proc.stdout)
    assert result["status"] == "error" and result["error_phase"] == "sidecar"
    assert "cronium/no-such-sidecar:latest" in result["error"] and "cronium images build" in result["error"]


@pytest.mark.parametrize("hook", ["token_issued", "network_created", "container_options", "sidecar_started",
                                  "log_sinks", "job_started", "job_finished", "cleanup"])
def test_plugin_raising_in_any_phase_leaves_nothing(hook, cronium_run, docker_leftovers, redis_client, tmp_path,
                                                    monkeypatch):
    monkeypatch.setenv("CRONIUM_RECORDER_FILE", str(tmp_path / "hooks.jsonl"))
    monkeypatch.setenv("CRONIUM_RECORDER_RAISE", hook)
    result = cronium_run("print('hi')")
    assert docker_leftovers(result.execution_id) == []
    assert not [u for u in acl_users(redis_client) if result.execution_id in u]
    if hook in ("job_finished", "cleanup"):
        # The job itself succeeded; the plugin failure is reported, not swallowed.
        assert result.status == "succeeded"
        assert any("recorder" in w and hook in w for w in result.warnings), result.warnings
    else:
        assert result.status == "error"
        assert "recorder" in result.error and f"recorder was told to fail in {hook}" in result.error


def test_hooks_fire_in_documented_order_with_payloads(cronium_run, tmp_path, monkeypatch):
    record = tmp_path / "hooks.jsonl"
    monkeypatch.setenv("CRONIUM_RECORDER_FILE", str(record))
    result = cronium_run("print('hi')")
    assert result.status == "succeeded"
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    names = [c["hook"] for c in calls]
    notifications = [n for n in names if n not in ("container_options", "log_sinks", "startup")]
    assert notifications == ["token_issued", "network_created", "sidecar_started", "job_started", "job_finished",
                             "cleanup"]
    assert names.index("container_options") < names.index("sidecar_started") < names.index("log_sinks") \
        < names.index("job_started")
    by_name = {c["hook"]: c["args"] for c in calls}
    ex = by_name["token_issued"]["execution"]
    assert ex["execution_id"] == result.execution_id and ex["labels"]["cronium.managed"] == "true"
    claims = by_name["token_issued"]["claims"]
    assert claims["execution_id"] == result.execution_id and claims["audience"] == "runtime-api"
    assert by_name["network_created"]["network"]["internal"] is True
    assert by_name["sidecar_started"]["sidecar"]["alias"] == "runtime-api"
    assert by_name["job_finished"]["result"]["status"] == "succeeded"
    # No hook ever saw the token: no JWT text anywhere in the recorded payloads.
    assert "eyJ" not in record.read_text()


def test_million_lines_arrive_in_order(cronium_run, cronium_config, redis_client):
    script = "import sys\nw = sys.stdout.write\nfor i in range(1_000_000):\n    w(f'line {i}\\n')\n"
    result = cronium_run(script)
    assert result.status == "succeeded" and result.log_lines == 1_000_000
    from pathlib import Path

    expected = "".join(f"line {i}\n" for i in range(1_000_000)).encode()
    log_file = Path(cronium_config["logs.dir"]) / f"{result.execution_id}.log"
    assert log_file.read_bytes() == expected
    entries = redis_client.xrange(f"cronium:logs:{result.execution_id}")
    data = b"".join(f[b"data"] for _, f in entries if b"data" in f)
    assert data == expected
    seqs = [int(f[b"seq"]) for _, f in entries if b"seq" in f]
    assert seqs == sorted(seqs) and seqs[0] == 0
    assert b"eof" in entries[-1][1]


def test_sidecar_is_non_root_on_read_only_root(cronium_run, cronium_runtime):
    client = cronium_runtime.docker
    seen = {}

    def events(phase, state):
        if phase == "job" and state == "start":
            for c in client.api.containers(filters={"name": "cronium-runtime-exec_"}):
                info = client.api.inspect_container(c["Id"])
                seen[c["Id"]] = (info["Config"]["User"], info["HostConfig"]["ReadonlyRootfs"],
                                 info["HostConfig"]["CapDrop"], info["HostConfig"]["PortBindings"],
                                 " ".join(info["Config"]["Env"]))

    result = cronium_run("print('x')", events=events)
    assert result.status == "succeeded"
    assert seen
    for user, read_only, cap_drop, ports, env in seen.values():
        assert user == "10001:10001" and read_only is True and cap_drop == ["ALL"] and not ports
        assert "eyJ" not in env and "PRIVATE KEY" not in env and "cronium-test-admin" not in env


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_sixty_jobs_at_once(cronium_runtime, docker_leftovers):
    from concurrent.futures import ThreadPoolExecutor

    from cronium.core.lifecycle import Orchestrator
    from cronium.core.model import JobSpec

    orchestrator = Orchestrator(cronium_runtime)
    spec = JobSpec(job_type="python", script=b"import time\ntime.sleep(3)\nprint('ok')\n", script_name="j.py")
    try:
        with ThreadPoolExecutor(max_workers=60) as pool:
            results = list(pool.map(lambda _: orchestrator.run(spec), range(60)))
    finally:
        orchestrator.close()
    statuses = [r.status for r in results]
    assert statuses == ["succeeded"] * 60, [(r.status, r.exit_code, r.error, r.warnings)
                                            for r in results if r.status != "succeeded"][:3]
    assert len({r.execution_id for r in results}) == 60
    assert docker_leftovers() == []
