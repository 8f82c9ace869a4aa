"""Fault injection: nothing lost, nothing leaked (docs/faults.md lists each fault and its test)."""
from __future__ import annotations

import json
import sys
import signal
import time
from pathlib import Path

import pytest
from integration_util import REPO, acl_user_of, acl_users

pytestmark = pytest.mark.integration

SLEEPER = REPO / "tests" / "integration" / "jobs" / "sleeper.py"


def _wait_for(predicate, timeout: float = 60.0, pause: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"condition not met within {timeout}s")


def _job_running(engine):
    return [c for c in engine.api.containers(filters={"label": "cronium.role=job"})]


def _managed(engine) -> list[str]:
    label = {"label": "cronium.managed=true"}
    return ([c["Names"][0] for c in engine.api.containers(all=True, filters=label)]
            + [n["Name"] for n in engine.api.networks(filters=label)])


def test_sigkill_of_cronium_run_is_reaped_and_marked_lost(popen_cli, cli, engine, redis_client):
    proc = popen_cli("run", str(SLEEPER))
    running = _wait_for(lambda: _job_running(engine))
    execution = running[0]["Labels"]["cronium.execution"]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _managed(engine), "the killed run should have left its containers (that's the fault)"
    gc = cli("gc", "--json")
    assert gc.returncode == 0, gc.stderr.decode()
    report = json.loads(gc.stdout)
    assert f"container cronium-job-{execution}" in report["removed"]
    assert f"network cronium-net-{execution}" in report["removed"]
    assert execution in report["lost"]
    assert _managed(engine) == []
    assert redis_client.hget(f"cronium:exec:{execution}", "status") == b"lost"
    assert not [u for u in acl_users(redis_client) if execution in u]


def test_next_start_reaps_a_killed_run(popen_cli, cli, engine, redis_client, tmp_path):
    proc = popen_cli("run", str(SLEEPER))
    execution = _wait_for(lambda: _job_running(engine))[0]["Labels"]["cronium.execution"]
    proc.kill()
    proc.wait(10)
    script = tmp_path / "quick.py"
    script.write_text("print('next')\n")
    # The next `cronium run` reaps in the background as it starts (and waits for that before exiting).
    nxt = cli("run", str(script))
    assert nxt.returncode == 0, nxt.stderr.decode()
    assert _managed(engine) == []
    assert redis_client.hget(f"cronium:exec:{execution}", "status") == b"lost"


def test_gc_never_touches_a_live_job_of_another_process(popen_cli, cli, engine):
    proc = popen_cli("run", "--json", str(SLEEPER))
    execution = _wait_for(lambda: _job_running(engine))[0]["Labels"]["cronium.execution"]
    report = json.loads(cli("gc", "--json").stdout)
    assert not [r for r in report["removed"] if execution in r]
    assert any(execution in k for k in report["kept"])
    assert _job_running(engine)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert json.loads(out)["status"] == "cancelled"


def test_sigterm_cancels_within_the_grace_period(popen_cli, engine):
    proc = popen_cli("run", "--json", str(SLEEPER))
    _wait_for(lambda: _job_running(engine))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    result = json.loads(out)
    assert result["status"] == "cancelled"
    assert _managed(engine) == []


def test_redis_down_at_start_creates_nothing(cli, engine, tmp_path, redis_client):
    before = redis_client.zcard("cronium:executions")
    script = tmp_path / "x.py"
    script.write_text("print('never')\n")
    proc = cli("--set", 'redis.url="redis://127.0.0.1:1/0"', "run", str(script))
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "Redis store is not reachable" in err and "fix:" in err and "Traceback" not in err
    assert _managed(engine) == []
    assert redis_client.zcard("cronium:executions") == before


def test_redis_down_mid_job_spools_the_record(cronium_run, cronium_runtime, cronium_config, engine, test_redis,
                                              redis_client, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    redis_container = [c for c in engine.api.containers(filters={"network": test_redis["network"]})
                       if "redis" in c["Names"][0]][0]["Id"]
    paused = {}

    def events(phase, state):
        if phase == "job" and state == "start":
            engine.api.pause(redis_container)
            paused["at"] = time.monotonic()

    script = "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.3)\n"
    import threading

    def unpause_later():
        _wait_for(lambda: paused.get("at"), timeout=120)
        time.sleep(8)  # the job has ended and its final record has nowhere to go
        engine.api.unpause(redis_container)

    t = threading.Thread(target=unpause_later)
    t.start()
    try:
        result = cronium_run(script, events=events)
    finally:
        t.join(60)
        if engine.api.inspect_container(redis_container)["State"]["Paused"]:
            engine.api.unpause(redis_container)
    assert result.status == "succeeded", result
    assert any("spooled" in w for w in result.warnings), result.warnings
    # Every log line is in the file sink, and the final record reached Redis once it was back.
    log = (Path(cronium_config["logs.dir"]) / f"{result.execution_id}.log").read_text()
    assert log.splitlines() == [f"line {i}" for i in range(5)]
    record = redis_client.hgetall(f"cronium:exec:{result.execution_id}")
    assert record[b"status"] == b"succeeded"
    assert not list((tmp_path / "state" / "cronium" / "spool").glob("*.json"))


def test_fork_bomb_is_held_by_the_pids_limit(cronium_run):
    from cronium.core.model import Resources

    bomb = ("import os, time\nn = 0\nwhile True:\n    try:\n        if os.fork() == 0:\n            time.sleep(30)\n"
            "            os._exit(0)\n        n += 1\n    except OSError:\n        print('fork refused after', n, flush=True)\n"
            "        break\nimport cronium\ncronium.output(n)\n")
    result = cronium_run(bomb, resources=Resources(pids=32), timeout=60)
    assert result.status == "succeeded", result
    assert 0 < result.output < 32
    # The machine stays responsive: another job runs fine right after.
    assert cronium_run("print('still here')").status == "succeeded"


def test_filling_tmp_hits_the_tmpfs_limit(cronium_run, cronium_overrides):
    script = ("import cronium\nwritten = 0\ntry:\n    with open('/tmp/fill', 'wb') as f:\n        while True:\n"
              "            f.write(b'x' * 1048576); f.flush(); written += 1\nexcept OSError as e:\n"
              "    cronium.output({'mb': written, 'error': e.errno})\n")
    result = cronium_run(script, profile="strict")  # strict: 16 MB tmpfs
    assert result.status == "succeeded", result
    assert result.output["error"] == 28  # ENOSPC
    assert result.output["mb"] <= 16


def test_huge_line_binary_and_invalid_utf8_are_preserved_with_bounded_memory(cli, cli_config, tmp_path):
    script = tmp_path / "noisy.py"
    script.write_text(
        "import sys, os\nout = sys.stdout.buffer\n"
        "out.write(b'A' * (10 * 1024 * 1024))\n"          # one 10 MB line without a newline...
        "out.write(b'\\n')\nout.write(bytes(range(256)) + b'\\n')\n"   # binary
        "out.write(b'bad utf8: \\xff\\xfe\\xc3\\x28 end\\n')\n"      # invalid UTF-8
        "out.write(b'no newline at the end')\nout.flush()\n")
    # The peak RSS of this `cronium run` alone: measured by a fresh Python whose only child it is
    # (RUSAGE_CHILDREN of the test process counts every child it ever reaped — a browser of the
    # dashboard's tests, say).
    measure = ("import resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE)\n"
               "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
               "sys.stdout.buffer.write(p.stdout)\n")
    peak_file = tmp_path / "peak-kb"
    proc = cli("run", "--json", str(script), measure_with=[sys.executable, "-c", measure, str(peak_file)])
    peak_kb = int(peak_file.read_text())
    result = json.loads(proc.stdout)
    assert result["status"] == "succeeded", result
    expected = (b"A" * (10 * 1024 * 1024) + b"\n" + bytes(range(256)) + b"\n" + b"bad utf8: \xff\xfe\xc3\x28 end\n"
                + b"no newline at the end")
    log_file = tmp_path / "logs" / f"{result['execution_id']}.log"
    assert log_file.read_bytes() == expected
    # The 10 MB line went through in bounded fragments: the CLI never held it all at once.
    assert 0 < peak_kb < 200 * 1024, f"peak RSS {peak_kb} KiB"


def test_sidecar_and_job_hold_no_orchestrator_secret(cronium_run, cronium_runtime, test_redis):
    client = cronium_runtime.docker
    seen = {}

    def events(phase, state):
        if phase == "job" and state == "start":
            for role, prefix in (("sidecar", "cronium-runtime-exec_"), ("job", "cronium-job-exec_")):
                for c in client.api.containers(filters={"name": prefix}):
                    seen[role] = client.api.inspect_container(c["Id"])

    probe = ("import os, json, cronium\n"
             "cronium.output({'sock': os.path.exists('/var/run/docker.sock'), 'uid': os.getuid(),"
             " 'env': sorted(k for k in os.environ if 'PASS' in k or 'SECRET' in k or 'KEY' in k)})\n")
    result = cronium_run(probe, events=events)
    assert result.status == "succeeded", result
    assert result.output == {"sock": False, "uid": 10001, "env": []}
    admin_password = test_redis["url"].split(":")[2].split("@")[0]
    for role, info in seen.items():
        text = json.dumps(info)
        assert "PRIVATE KEY" not in text and "PUBLIC KEY" not in text
        assert admin_password not in text
        assert "eyJ" not in text  # no JWT in env, cmd, labels: the token went over stdin
        assert info["Mounts"] == []
        assert not any("docker.sock" in b for b in info["HostConfig"].get("Binds") or [])
    assert set(seen) == {"sidecar", "job"}


def test_sidecar_acl_user_touches_only_its_own_keys(cronium_runtime, redis_client):
    import redis as redis_lib
    from cronium.plugins.sidecar import acl_rules

    keys = cronium_runtime.store.keys
    own, other = "exec_00000000000000aa", "exec_00000000000000bb"
    redis_client.hset(keys.execution(own), "input", "1")
    redis_client.hset(keys.execution(other), "input", "2")
    redis_client.hset(keys.variables("ns-own"), "k", "1")
    redis_client.hset(keys.variables("ns-other"), "k", "2")
    redis_client.execute_command("ACL", "SETUSER", "cronium-acl-test", *acl_rules(keys, own, "ns-own", "pw-test-123"))
    try:
        port = redis_client.connection_pool.connection_kwargs["port"]
        limited = redis_lib.Redis(host="127.0.0.1", port=port, username="cronium-acl-test", password="pw-test-123")
        assert limited.hget(keys.execution(own), "input") == b"1"
        limited.hset(keys.variables("ns-own"), "k", "3")
        limited.hset(keys.sidecar_results(own), "output", "1")
        for forbidden in (lambda: limited.hget(keys.execution(other), "input"),
                          lambda: limited.hget(keys.variables("ns-other"), "k"),
                          lambda: limited.hset(keys.sidecar_results(other), "output", "1"),
                          lambda: limited.keys("*"), lambda: limited.flushall(),
                          lambda: limited.config_get("requirepass"), lambda: limited.get(keys.execution(own))):
            with pytest.raises(redis_lib.exceptions.NoPermissionError):
                forbidden()
        limited.close()
    finally:
        redis_client.execute_command("ACL", "DELUSER", "cronium-acl-test")
    for key in (keys.execution(own), keys.execution(other), keys.sidecar_results(own), keys.variables("ns-own"),
                keys.variables("ns-other")):
        redis_client.delete(key)


def _text(value) -> str:
    """An ACL GETUSER field as one text (redis-py gives str, bytes or a list of either)."""
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return value.decode() if isinstance(value, bytes) else str(value)


def _attack_as(redis_client, user: str, record: str) -> dict[str, str]:
    """Log in as `user` (the admin adds a password of ours; its permissions stay as they are) and try to
    rewrite the record and to leave database 0. What each attempt got, by name."""
    import redis as redis_lib

    redis_client.execute_command("ACL", "SETUSER", user, ">attacker-pw-123")
    port = redis_client.connection_pool.connection_kwargs["port"]
    attacker = redis_lib.Redis(host="127.0.0.1", port=port, username=user, password="attacker-pw-123")
    attempts = {
        "hset definition": lambda: attacker.hset(record, "definition", '{"command": ["evil"]}'),
        "hset status": lambda: attacker.hset(record, "status", "queued"),
        "hdel owner": lambda: attacker.hdel(record, "owner"),
        "eval hset": lambda: attacker.eval("return redis.call('HSET', KEYS[1], 'attempt', '9')", 1, record),
        "select 1": lambda: attacker.execute_command("SELECT", "1"),
    }
    seen = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            seen[name] = "allowed"
        except redis_lib.exceptions.NoPermissionError:
            seen[name] = "NOPERM"
        except redis_lib.exceptions.ResponseError as exc:
            seen[name] = "NOPERM" if "permission" in str(exc).lower() else f"error: {exc}"
    attacker.close()
    return seen


def test_the_live_sidecars_redis_user_cannot_rewrite_the_record_or_select(cronium_run, cronium_runtime,
                                                                          redis_client):
    keys = cronium_runtime.store.keys
    seen = {}

    def events(phase, state):
        if phase == "job" and state == "start":
            execution_id = next(c["Names"][0].removeprefix("/cronium-runtime-")
                                for c in cronium_runtime.docker.api.containers(filters={"name": "cronium-runtime-exec_"}))
            user = acl_user_of(cronium_runtime, execution_id)
            seen["rules"] = redis_client.acl_getuser(user)
            seen["record_before"] = redis_client.hgetall(keys.execution(execution_id))
            seen["attacks"] = _attack_as(redis_client, user, keys.execution(execution_id))
            seen["record_after"] = redis_client.hgetall(keys.execution(execution_id))
            seen["execution_id"] = execution_id

    result = cronium_run("import cronium\ncronium.output({'ok': 1})\ncronium.set_condition(True)\n", events=events)
    assert result.status == "succeeded", result
    assert seen["attacks"] == {name: "NOPERM" for name in seen["attacks"]}
    assert seen["record_after"] == seen["record_before"]
    record = keys.execution(seen["execution_id"])
    key_rules, commands = _text(seen["rules"]["keys"]).split(), _text(seen["rules"]["commands"]).split()
    assert f"%R~{record}" in key_rules and f"~{record}" not in key_rules and "~*" not in key_rules
    allowed = {c[1:] for c in commands if c.startswith("+")}
    assert "select" not in allowed and not any(c.startswith("@") for c in allowed)
    assert allowed <= {"ping", "hget", "hset", "eval", "hexists", "hdel", "hlen", "hkeys", "hstrlen", "hsetnx", "hincrby"}
    # What the sidecar wrote reached the orchestrator through the results hash, which is then gone.
    assert result.output == {"ok": 1} and result.condition is True
    record_now = cronium_runtime.store.records.get(seen["execution_id"])
    assert record_now["output"] == {"ok": 1} and record_now["condition"] is True
    assert not redis_client.exists(keys.sidecar_results(seen["execution_id"]))


def test_failed_auth_attempts_are_rate_limited(cronium_run, cronium_config):
    script = (
        "import os, urllib.request, urllib.error\n"
        "api, eid = os.environ['CRONIUM_RUNTIME_API'], os.environ['CRONIUM_EXECUTION_ID']\n"
        "codes = []\n"
        "for i in range(40):\n"
        "    req = urllib.request.Request(f'{api}/executions/{eid}/input', headers={'Authorization': 'Bearer nope'})\n"
        "    try:\n        urllib.request.urlopen(req, timeout=5)\n        codes.append(200)\n"
        "    except urllib.error.HTTPError as e:\n        codes.append(e.code)\n"
        "print(' '.join(map(str, codes)))\n")
    result = cronium_run(script)
    assert result.status == "succeeded", result
    codes = [int(c) for c in (Path(cronium_config["logs.dir"]) / f"{result.execution_id}.log").read_text().split()]
    # 401s up to the failure burst (20 by default), then 429 before the token is even looked at.
    assert codes[0] == 401 and codes[-1] == 429
    assert codes.index(429) <= 21 and set(codes[codes.index(429):]) == {429}


BAD_INPUTS = [
    (["run", "missing.py"], "does not exist"),
    (["run", "script.txt"], "cannot tell the job type"),
    (["run", "--type", "ruby", "ok.py"], "Invalid value for '--type'"),
    (["run", "--input", "{not json", "ok.py"], "--input is not valid JSON"),
    (["run", "--input", "@nofile.json", "ok.py"], "cannot read --input file"),
    (["run", "--timeout", "-5", "ok.py"], "timeout"),
    (["run", "--timeout", "99999999", "ok.py"], "timeout"),
    (["run", "--memory", "lots", "ok.py"], "--memory 'lots' is not a size"),
    (["run", "--profile", "nosuch", "ok.py"], "unknown security profile 'nosuch'"),
    (["run", "--env", "NOEQUALS", "ok.py"], "expected NAME=VALUE"),
    (["--config", "typo.toml", "run", "ok.py"], "unknown key"),
    (["run", "--cpus", "0", "ok.py"], "CPU limit"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_a_clear_error_that_creates_nothing(args, message, cli, engine, redis_client, tmp_path):
    (tmp_path / "ok.py").write_text("print('ok')\n")
    (tmp_path / "script.txt").write_text("print('ok')\n")
    (tmp_path / "typo.toml").write_text(
        cli.config.read_text() + '\n[sidecar]\nrate_limit_per_minnute = 5\n')
    before = redis_client.zcard("cronium:executions")
    proc = cli(*args)
    err = proc.stderr.decode()
    assert proc.returncode == 2, (proc.returncode, err)
    assert message in err, err
    assert "Traceback" not in err
    assert _managed(engine) == []
    assert redis_client.zcard("cronium:executions") == before


@pytest.fixture
def egress_allowed(cronium_overrides):
    cronium_overrides["network.egress_allowed"] = True


def test_egress_job_gets_only_egress(egress_allowed, cronium_run, cronium_runtime, test_redis):
    import ipaddress
    import socket as socket_lib

    from cronium.plugins import _egress

    client = cronium_runtime.docker
    redis_ip = [c for c in client.api.containers(filters={"network": test_redis["network"]})
                if "redis" in c["Names"][0]][0]["NetworkSettings"]["Networks"][test_redis["network"]]["IPAddress"]

    def gateway(network: str) -> str:
        config = client.api.inspect_network(network)["IPAM"]["Config"][0]
        return config.get("Gateway") or str(ipaddress.ip_network(config["Subnet"])[1])

    listener = socket_lib.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    seen = {}

    def events(phase, state):
        if phase == "job" and state == "start":
            for n in client.api.networks(filters={"name": "cronium-net-exec_"}):
                info = client.api.inspect_network(n["Id"])
                seen["internal"] = info["Internal"]

    targets = {"redis": [redis_ip, 6379], "host_docker0": [gateway("bridge"), port],
               "host_services": [gateway(test_redis["network"]), port]}
    probe = (
        "import json, socket, sys, urllib.request, cronium\n"
        f"targets = {json.dumps(targets)}\n"
        "gw = [l.split() for l in open('/proc/net/route') if l.split()[1] == '00000000'][0][2]\n"
        "targets['host_own_gateway'] = [socket.inet_ntoa(bytes.fromhex(gw)[::-1]), %d]\n"
        "res = {}\n"
        "for name, (host, port) in targets.items():\n"
        "    try:\n        socket.create_connection((host, port), timeout=1.5).close(); res[name] = 'open'\n"
        "    except OSError:\n        res[name] = 'blocked'\n"
        "res['runtime_api'] = json.load(urllib.request.urlopen('http://runtime-api:8081/health', timeout=5))['status']\n"
        "cronium.output(res)\n") % port
    try:
        result = cronium_run(probe, egress=True, events=events)
    finally:
        listener.close()
    assert result.status == "succeeded", result
    assert seen["internal"] is False  # it has a route out...
    assert result.output.pop("runtime_api") == "healthy"
    assert result.output == {name: "blocked" for name in result.output}  # ...and nothing else
    assert set(result.output) == {"redis", "host_docker0", "host_services", "host_own_gateway"}
    assert _egress.tagged("INPUT", result.execution_id) == []  # rules removed with the job
    assert _egress.tagged("DOCKER-USER", result.execution_id) == []


def test_egress_is_refused_unless_allowed(cronium_run):
    from cronium.core.errors import UsageError

    with pytest.raises(UsageError, match="egress_allowed"):
        cronium_run("print('x')", egress=True)
