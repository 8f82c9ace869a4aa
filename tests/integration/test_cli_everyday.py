"""Everyday commands through the installed `cronium` executable: ps, logs, inspect, doctor (issue 14)."""
from __future__ import annotations

import json
import re

import pytest
from integration_util import REPO
from queue_util import wait_for

pytestmark = pytest.mark.integration

SLEEPER = REPO / "tests" / "integration" / "jobs" / "sleeper.py"


def _wait_for(predicate, timeout: float = 60.0):
    return wait_for(predicate, timeout, "the condition", interval=0.1)


def _run(cli, tmp_path, name: str, body: str, *args: str) -> dict:
    script = tmp_path / name
    script.write_text(body)
    proc = cli("run", "--json", *args, str(script))
    return json.loads(proc.stdout)


def _scans(redis_client) -> int:
    """How many SCAN and KEYS commands the server has executed."""
    stats = redis_client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("scan", "keys"))


def test_ps_shows_a_running_job_then_only_with_a_once_it_ended(cli, popen_cli, redis_client):
    proc = popen_cli("run", str(SLEEPER))
    rows = _wait_for(lambda: [r for r in json.loads(cli("ps", "--json").stdout)
                              if r["job_id"] == "adhoc-sleeper" and r["status"] == "running"])
    execution = rows[0]["id"]
    assert redis_client.zscore("cronium:executions", execution) is not None
    table = cli("ps").stdout.decode()
    assert execution in table and "running" in table and "STATUS" in table
    assert cli("cancel", execution, "--wait").returncode == 0
    proc.wait(60)
    assert execution not in cli("ps", "-q").stdout.decode().split()
    ended = {r["id"]: r for r in json.loads(cli("ps", "-a", "--json").stdout)}
    assert ended[execution]["status"] == "cancelled"


def test_ps_filters_read_the_index_without_scanning_keys(cli, tmp_path, redis_client):
    ok = _run(cli, tmp_path, "psok.py", "print('ok')\n", "--namespace", "ps-a")
    bad = _run(cli, tmp_path, "psbad.py", "raise SystemExit(3)\n", "--namespace", "ps-b")
    before = _scans(redis_client)
    assert cli("ps", "-a", "-q", "--namespace", "ps-a").stdout.decode().split()[0] == ok["execution_id"]
    assert bad["execution_id"] not in cli("ps", "-a", "-q", "--namespace", "ps-a").stdout.decode()
    failed = cli("ps", "-q", "--status", "failed", "--job", "adhoc-psbad").stdout.decode().split()
    assert failed[0] == bad["execution_id"]
    assert ok["execution_id"] not in cli("ps", "-aq", "--status", "failed").stdout.decode()
    assert ok["execution_id"] in cli("ps", "-aq", "--since", "1h").stdout.decode()
    assert cli("ps", "-aq", "--since", "2999-01-01T00:00Z").stdout.decode() == ""
    assert _scans(redis_client) == before, "ps must read the executions index, never SCAN or KEYS"


def test_ps_bad_since_is_a_clear_usage_error(cli):
    proc = cli("ps", "--since", "yesterday-ish")
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert "--since 'yesterday-ish'" in err and "1h" in err and "Traceback" not in err


LINES = "import sys\nfor i in range(5):\n    print(f'out {i}', flush=True)\nprint('oops', file=sys.stderr)\n"


def test_logs_tail_timestamps_and_json(cli, tmp_path):
    execution = _run(cli, tmp_path, "lines.py", LINES)["execution_id"]
    tail = cli("logs", execution, "--tail", "2", "--stream", "stdout")
    assert tail.stdout.decode().splitlines() == ["out 3", "out 4"]
    stamped = cli("logs", execution, "-t", "--stream", "stdout").stdout.decode().splitlines()
    assert len(stamped) == 5
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z out \d", line) for line in stamped), stamped
    docs = [json.loads(line) for line in cli("logs", execution, "--json").stdout.decode().splitlines()]
    assert [d["text"] for d in docs if d["stream"] == "stdout"] == [f"out {i}" for i in range(5)]
    assert [d["text"] for d in docs if d["stream"] == "stderr"] == ["oops"]
    assert all(d["time"].endswith("Z") for d in docs)
    assert cli("logs", execution, "--since", "2999-01-01T00:00Z", "--json").stdout == b""


def test_logs_fall_back_to_the_file_once_the_stream_expired(cli, tmp_path, redis_client):
    execution = _run(cli, tmp_path, "expire.py", LINES)["execution_id"]
    redis_client.delete(f"cronium:logs:{execution}")  # what the stream's expiry does
    proc = cli("logs", execution, "--tail", "3")
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines()[-1] in ("out 4", "oops")
    assert len(proc.stdout.decode().splitlines()) == 3
    assert "expired" in proc.stderr.decode() and f"{execution}.log" in proc.stderr.decode()
    (tmp_path / "logs" / f"{execution}.log").unlink()
    gone = cli("logs", execution)
    assert gone.returncode == 1
    assert "no log lines" in gone.stderr.decode() and "Traceback" not in gone.stderr.decode()


def test_inspect_is_readable_and_formats_fields(cli, tmp_path):
    execution = _run(cli, tmp_path, "insp.py", "raise SystemExit(4)\n")["execution_id"]
    text = cli("inspect", execution).stdout.decode()
    shown = "\n".join(line for line in text.splitlines() if not line.startswith(("id ", "owner ")))
    assert not re.search(r"\d+\.\d{3,}", shown), text  # no raw floats (ids and owners aside)
    assert re.search(r"^finished_at +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((.* ago|just now)\)$", text, re.M), text
    assert re.search(r"^duration +\d", text, re.M) and re.search(r"^timings +prepare \d+ms, token ", text, re.M), text
    assert cli("inspect", execution, "--format", "{{.status}} {{.exit_code}}").stdout == b"failed 4\n"
    bad = cli("inspect", execution, "--format", "{{.status | upper}}")
    assert bad.returncode == 2 and "--format" in bad.stderr.decode()


@pytest.fixture
def managed_config(tmp_path, engine):
    """A config with no redis.url (cronium would manage its Redis) under test-only names, and a
    fresh state dir; whatever a command created under those names is removed afterwards."""
    import os
    import uuid

    from cronium.core.host import services
    from ports import free_port

    suffix = uuid.uuid4().hex[:8]
    names = dict(name=f"cronium-test-redis-{suffix}", network=f"cronium-test-services-{suffix}",
                 volume=f"cronium-test-redis-data-{suffix}")
    path = tmp_path / "managed.toml"
    path.write_text(f'[services]\nredis_container = "{names["name"]}"\nnetwork = "{names["network"]}"\n'
                    f'redis_volume = "{names["volume"]}"\nredis_port = {free_port()}\n')
    env = {"CRONIUM_CONFIG": str(path), "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": os.environ["HOME"]}
    yield names, env
    services.remove_redis(engine, **names)


def test_doctor_never_starts_the_managed_redis(cli, engine, managed_config):
    names, env = managed_config
    proc = cli("doctor", "--json", env=env)
    checks = {c["check"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert not checks["redis"]["ok"] and "not running" in checks["redis"]["detail"]
    assert "cronium services start" in checks["redis"]["fix"]
    assert engine.containers.list(all=True, filters={"name": names["name"]}) == []
    assert engine.networks.list(names=[names["network"]]) == []
    assert engine.volumes.list(filters={"name": names["volume"]}) == []


def test_read_only_commands_leave_a_stopped_managed_redis_stopped(cli, engine, managed_config):
    names, env = managed_config
    assert cli("services", "start", env=env).returncode == 0
    status = cli("services", "status", env=env).stdout.decode()
    assert re.search(rf"^networks +(bridge, )?{names['network']}$", status, re.M) and "running      yes" in status
    assert not re.search(r"None|True|False|\(|'", status), status  # no Python reprs
    assert cli("services", "stop", env=env).returncode == 0
    for args in (("doctor",), ("ps",), ("logs", "exec_none"), ("inspect", "exec_none")):
        proc = cli(*args, env=env)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr.decode(), args
        assert engine.containers.get(names["name"]).status == "exited", args


def test_run_reads_the_script_from_stdin_with_its_type(cli):
    proc = cli("run", "--type", "python", "-", input=b"import os\nprint('from stdin', os.environ['CRONIUM_JOB_TYPE'])\n")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "from stdin python"
    untyped = cli("run", "-", input=b"print(1)\n")
    assert untyped.returncode == 2 and "needs --type" in untyped.stderr.decode()


def test_run_env_file_in_dockers_format(cli, tmp_path):
    env_file = tmp_path / "job.env"
    env_file.write_text("# settings\n\nGREETING=hello=world\nQUOTED=\"kept\"\nFROM_HERE\nUNSET_HERE\n")
    script = tmp_path / "envs.py"
    script.write_text("import os\nfor k in ('GREETING', 'QUOTED', 'FROM_HERE', 'UNSET_HERE'):\n"
                      "    print(k, os.environ.get(k))\n")
    proc = cli("run", "--env-file", str(env_file), "--env", "QUOTED=over", str(script), env={"FROM_HERE": "x1"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == ["GREETING hello=world", "QUOTED over", "FROM_HERE x1",
                                                 "UNSET_HERE None"]
    env_file.write_text("A=1\n# fine\nBAD KEY=2\n")
    bad = cli("run", "--env-file", str(env_file), str(script))
    assert bad.returncode == 2
    assert f"--env-file {env_file} line 3" in bad.stderr.decode() and "Traceback" not in bad.stderr.decode()


def test_run_detach_prints_the_id_and_the_job_runs_on(cli, tmp_path, engine):
    script = tmp_path / "detached.py"
    script.write_text("print('detached says hi', flush=True)\n")
    proc = cli("run", "--detach", str(script))
    assert proc.returncode == 0, proc.stderr.decode()
    execution = proc.stdout.decode().strip()
    assert re.fullmatch(r"exec_[0-9a-f]+", execution), execution
    logs = cli("logs", "-f", execution)
    assert logs.stdout.decode() == "detached says hi\n", logs.stderr.decode()
    assert _wait_for(lambda: cli("inspect", execution, "--format", "{{.status}}").stdout == b"succeeded\n")
    _wait_for(lambda: not engine.containers.list(all=True, filters={"label": f"cronium.execution={execution}"})
              and not engine.networks.list(filters={"label": f"cronium.execution={execution}"}))


def _run_on_a_terminal(cli, args, env) -> bytes:
    """Run the installed `cronium` with stdout and stderr on a pseudo-terminal; everything it wrote."""
    import os
    import pty
    import subprocess

    from integration_util import cronium_executable

    leader, follower = pty.openpty()
    full_env = {**os.environ, "CRONIUM_CONFIG": str(cli.config), **env}
    proc = subprocess.Popen([cronium_executable(), *args], stdout=follower, stderr=follower,
                            stdin=subprocess.DEVNULL, env=full_env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(120)
    os.close(leader)
    return b"".join(chunks)


@pytest.mark.parametrize("how", [{"NO_COLOR": "1"}, {"TERM": "dumb"}, "--no-color"])
def test_no_color_means_no_escape_sequences_on_a_terminal(cli, tmp_path, how):
    script = tmp_path / "colors.py"
    script.write_text("import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n")
    control = _run_on_a_terminal(cli, ["run", str(script)], {"TERM": "xterm"})
    assert b"\x1b[31m" in control and b"\x1b[2K" in control  # red stderr, the status line rewritten
    flag = ["--no-color"] if how == "--no-color" else []
    env = {"TERM": "xterm", **(how if isinstance(how, dict) else {})}
    plain = _run_on_a_terminal(cli, [*flag, "run", str(script)], env)
    assert b"to err" in plain and b"status: succeeded" in plain and b"cronium: token ok" in plain
    assert b"\x1b" not in plain, plain


def test_completion_offers_commands_and_execution_ids(cli, tmp_path):
    script = cli("completion", "bash")
    assert script.returncode == 0 and b"_CRONIUM_COMPLETE=bash_complete" in script.stdout
    for shell in ("zsh", "fish"):
        assert b"_CRONIUM_COMPLETE" in cli("completion", shell).stdout
    execution = _run(cli, tmp_path, "compl.py", "print(1)\n")["execution_id"]
    env = {"_CRONIUM_COMPLETE": "bash_complete", "COMP_WORDS": f"cronium logs {execution[:-3]}", "COMP_CWORD": "2"}
    offered = cli(env=env).stdout.decode().splitlines()
    assert f"plain,{execution}" in offered
    commands = cli(env={**env, "COMP_WORDS": "cronium p", "COMP_CWORD": "1"}).stdout.decode().splitlines()
    assert "plain,ps" in commands
    unreachable = tmp_path / "down.toml"
    unreachable.write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    down = cli(env={**env, "CRONIUM_CONFIG": str(unreachable)})  # no Redis: nothing offered, no error
    assert down.returncode == 0 and down.stdout.strip() == b"" and b"Traceback" not in down.stderr


def test_dead_letter_requeue_and_retry_make_linked_new_executions(qcli, qruntime, tmp_path):
    from cronium.core.deploy.registry import DeploymentRegistry
    from cronium.core.fleet.queue import Queue
    from queue_util import deploy_text

    deploy_text(qcli, tmp_path, '[jobs.again]\ntype = "bash"\ninline = "echo again"\n')
    store = qruntime.store
    queue = Queue(store, qruntime.config)
    queue.ensure_group()
    old = queue.enqueue(DeploymentRegistry(store).job("again"), input={"n": 1}).execution_id
    [(_, [(entry, fields)])] = store.redis.xreadgroup(queue.group, "ghost.1.x", {store.keys.queue: ">"}, count=1)
    queue.dead_letter(entry.decode(), {k.decode(): v.decode() for k, v in fields.items()}, "test poison", 6)
    assert store.records.get(old)["status"] == "error"
    usage = qcli("queue", "dead", "requeue")
    assert usage.returncode == 2 and "--all" in usage.stderr.decode()
    out = qcli("queue", "dead", "requeue", old)
    assert out.returncode == 0, out.stderr.decode()
    [(shown_old, new)] = [line.split(" -> ") for line in out.stdout.decode().splitlines()]
    assert shown_old == old and store.redis.xlen(store.keys.dead_letters) == 0
    rec = store.records.get(new)
    assert rec["status"] == "queued" and rec["retry_of"] == old and rec["input"] == {"n": 1}
    assert store.records.get(old)["retried_by"] == new
    busy = qcli("retry", new)  # still queued: not retried
    assert busy.returncode == 1 and "only an ended execution" in busy.stderr.decode()
    store.records.update(new, {"status": "failed"})
    again = qcli("retry", new)
    assert again.returncode == 0, again.stderr.decode()
    assert store.records.get(again.stdout.decode().strip())["retry_of"] == new


def test_retry_of_a_local_run_says_why_not(cli, tmp_path):
    execution = _run(cli, tmp_path, "local.py", "print(1)\n")["execution_id"]
    proc = cli("retry", execution)
    assert proc.returncode == 1 and "not stored" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
