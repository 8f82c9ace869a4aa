"""Storage limits against the real engine and real Redis: the per-execution log byte cap, log
stream expiry from the first write, a full Redis (maxmemory + noeviction), and retention
(`cronium prune`, a worker's bounded pass)."""
from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path

import pytest
from ports import free_port
from queue_util import wait_for

pytestmark = pytest.mark.integration

CAP = 64 * 1024
MARKER = f"[cronium] output truncated after {CAP} bytes (logs.max_bytes)\n".encode()


@pytest.fixture
def cronium_overrides():
    return {"logs.max_bytes": "64k"}


# --- the log byte cap -------------------------------------------------------------------------------

def test_a_flood_is_cut_at_logs_max_bytes_with_one_marker_and_the_job_goes_on(cronium_run, cronium_config,
                                                                                redis_client, cli):
    # 1 MB of output, then the job still reaches its sidecar: it was never blocked on its pipe.
    script = ("import sys, cronium\nw = sys.stdout.write\nfor i in range(16384):\n    w('%063d\\n' % i)\n"
              "sys.stdout.flush()\ncronium.output({'after_flood': True})\n")
    result = cronium_run(script)
    assert result.status == "succeeded", result.error
    assert result.output == {"after_flood": True}
    assert result.logs_truncated is True
    expected = b"".join(b"%063d\n" % i for i in range(16384))[:CAP] + MARKER
    log_file = Path(cronium_config["logs.dir"]) / f"{result.execution_id}.log"
    assert log_file.read_bytes() == expected
    entries = redis_client.xrange(f"cronium:logs:{result.execution_id}")
    assert b"".join(f[b"data"] for _, f in entries if b"data" in f) == expected
    assert b"eof" in entries[-1][1]
    assert redis_client.hget(f"cronium:exec:{result.execution_id}", "logs_truncated") == b"true"
    shown = cli("inspect", result.execution_id)
    assert shown.returncode == 0, shown.stderr.decode()
    assert "logs_truncated" in shown.stdout.decode() and "logs.max_bytes" in shown.stdout.decode()
    as_json = json.loads(cli("inspect", "--json", result.execution_id).stdout)
    assert as_json["logs_truncated"] is True


def test_output_below_the_cap_is_whole_and_not_flagged(cronium_run, cronium_config, redis_client):
    result = cronium_run("print('small')")
    assert result.status == "succeeded" and result.logs_truncated is False
    assert (Path(cronium_config["logs.dir"]) / f"{result.execution_id}.log").read_bytes() == b"small\n"
    assert redis_client.hget(f"cronium:exec:{result.execution_id}", "logs_truncated") == b"false"


# --- stream expiry ----------------------------------------------------------------------------------

def test_the_stream_of_a_killed_run_still_expires(popen_cli, cli, redis_client, tmp_path, engine):
    script = tmp_path / "talk_then_sleep.py"
    script.write_text("import time\nprint('first line', flush=True)\ntime.sleep(120)\n")
    proc = popen_cli("run", str(script))
    running = wait_for(lambda: engine.api.containers(filters={"label": "cronium.role=job"}), 60, "the job container",
                       interval=0.05)
    execution = running[0]["Labels"]["cronium.execution"]
    key = f"cronium:logs:{execution}"
    wait_for(lambda: redis_client.exists(key), 60, "the log stream", interval=0.05)
    proc.send_signal(signal.SIGKILL)  # no sink close, no eof: only the first write set an expiry
    proc.wait(10)
    try:
        assert b"eof" not in b"".join(k for _, f in redis_client.xrange(key) for k in f)
        assert redis_client.ttl(key) > 0
    finally:
        gc = cli("gc", "--json")
        assert gc.returncode == 0, gc.stderr.decode()


# --- a full Redis -----------------------------------------------------------------------------------

@pytest.fixture
def tiny_managed_redis(engine, tmp_path):
    """A managed Redis of its own (own name, port, volume, network; the shared one is never
    touched), created by `ensure_redis` with maxmemory 3mb."""
    from cronium.core.host import services

    tag = secrets.token_hex(4)
    names = dict(name=f"cronium-test-redis-{tag}", volume=f"cronium-test-redis-{tag}",
                 network=f"cronium-test-services-{tag}")
    redis = services.ensure_redis(engine, image="cronium/redis:latest", port=free_port(), state_dir=tmp_path / "state",
                                  maxmemory="3mb", **names)
    try:
        yield redis
    finally:
        services.remove_redis(engine, **names)


def test_a_changed_limit_applies_when_the_managed_redis_is_recreated(tiny_managed_redis, engine, tmp_path):
    from cronium.core.host import services
    from cronium.core.store import Store

    names = dict(name=tiny_managed_redis.name, network=tiny_managed_redis.network, port=tiny_managed_redis.port,
                 volume=f"cronium-test-redis-{tiny_managed_redis.name.rsplit('-', 1)[1]}", state_dir=tmp_path / "state")
    running = services.ensure_redis(engine, image="cronium/redis:latest", maxmemory="4mb", **names)
    assert running.action == "reused"  # a running server is never restarted under its jobs
    services.stop_redis(engine, name=tiny_managed_redis.name)
    again = services.ensure_redis(engine, image="cronium/redis:latest", maxmemory="4mb", **names)
    assert again.action == "created"
    store = Store(again.url)
    try:
        assert store.memory_limits()["maxmemory"] == 4 * 1024 * 1024
    finally:
        store.close()


def test_a_full_redis_is_a_clear_error_naming_the_key(tiny_managed_redis, cli, engine, tmp_path):
    from cronium.core.errors import StoreFull
    from cronium.core.store import Store

    store = Store(tiny_managed_redis.url)
    try:
        limits = store.memory_limits()  # what the server holds, not what we planned
        assert limits["maxmemory"] == 3 * 1024 * 1024 and limits["maxmemory_policy"] == "noeviction"
        with pytest.raises(StoreFull) as caught:
            for i in range(400):  # 400 x 64 KiB: far past 3 MB unless the server refuses
                store.records.create(f"exec_{i:016x}", {"status": "succeeded", "error": "x" * 65536},
                                     created_at=time.time())
        assert f"cronium:exec:exec_{i:016x}" in str(caught.value)
        assert "cronium prune" in str(caught.value) and "maxmemory" in str(caught.value)
        # Freed client buffers bring the server just under its limit again; keep it full for the run
        # below (this test's own server: the limit below what it holds, still noeviction).
        store.redis.config_set("maxmemory", str(1024 * 1024))
    finally:
        store.close()
    script = tmp_path / "hello.py"
    script.write_text("print('hello')\n")
    run = cli("run", str(script), env={"CRONIUM_REDIS_URL": tiny_managed_redis.url,
                                       "XDG_STATE_HOME": str(tmp_path / "state-home")})
    err = run.stderr.decode()
    assert run.returncode == 1, err
    assert "the Redis store is full" in err and "cronium:" in err and "cronium prune" in err
    assert "Traceback" not in err and tiny_managed_redis.password not in err
    label = {"label": "cronium.managed=true"}
    assert engine.api.containers(all=True, filters=label) == [] and engine.api.networks(filters=label) == []
    # The fix the message names works on the full server: prune frees it (deleting is allowed).
    pruned = cli("prune", "--keep", "0", "--json", env={"CRONIUM_REDIS_URL": tiny_managed_redis.url,
                                                         "XDG_STATE_HOME": str(tmp_path / "state-home")})
    assert pruned.returncode == 0, pruned.stderr.decode()
    assert len(json.loads(pruned.stdout)["removed"]) == i
    store = Store(tiny_managed_redis.url)
    try:
        store.redis.config_set("maxmemory", str(3 * 1024 * 1024))
        store.records.create("exec_ffffffffffffffff", {"status": "succeeded"}, created_at=time.time())
    finally:
        store.close()


# --- retention --------------------------------------------------------------------------------------

@pytest.fixture
def prefix_runtime(test_redis, tmp_path):
    """A Runtime on the test Redis with a key prefix of its own (other tests' records stay out)."""
    from cronium.core.config import load_config
    from cronium.core.runtime import Runtime

    prefix = f"cronium-retention-{secrets.token_hex(4)}:"
    flags = {"redis.url": test_redis["url"], "redis.key_prefix": prefix, "logs.dir": str(tmp_path / "logs"),
             "services.network": test_redis["network"]}
    rt = Runtime(load_config(flags=flags, use_user_config=False, environ={}, cwd=tmp_path))
    rt.flags = flags
    yield rt
    keys = rt.store.redis.keys(f"{prefix}*")  # noqa: the test's own cleanup
    if keys:
        rt.store.redis.delete(*keys)
    rt.close()


def _execution(rt, n: int, status: str, age_days: float, **extra) -> str:
    from cronium.core.logs import log_file

    execution_id = f"exec_{n:016x}"
    created = time.time() - age_days * 86400
    rt.store.records.create(execution_id, {"id": execution_id, "status": status, "created_at": created, **extra},
                            created_at=created)
    rt.store.logs.append(execution_id, [{"seq": 0, "stream": "stdout", "data": b"out\n", "partial": 0}],
                         max_entries=100, ttl=3600)
    path = log_file(rt.config, execution_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"out\n")
    return execution_id


def _left(rt, ids):
    from cronium.core.logs import log_file

    keys = rt.store.keys
    r = rt.store.redis
    return {i: (bool(r.exists(keys.execution(i))), bool(r.exists(keys.logs(i))),
                r.zscore(keys.executions, i) is not None, log_file(rt.config, i).exists()) for i in ids}


def test_prune_removes_old_finished_executions_and_nothing_live(prefix_runtime, tmp_path):
    import os
    import subprocess

    from cronium.core.config import env_name
    from integration_util import cronium_executable

    rt = prefix_runtime
    old_done = [_execution(rt, 1, "succeeded", 10), _execution(rt, 2, "failed", 9),
                _execution(rt, 3, "lost", 8)]
    old_live = [_execution(rt, 4, "running", 10), _execution(rt, 5, "queued", 10),
                _execution(rt, 6, "pending", 10), _execution(rt, 7, "lost", 10, definition={"name": "x"})]
    recent = [_execution(rt, 8, "succeeded", 1)]
    env = {**os.environ, **{env_name(k): v for k, v in rt.flags.items()}}

    def prune(*args):
        out = subprocess.run([cronium_executable(), "prune", "--json", *args], env=env, capture_output=True,
                             timeout=60, cwd=tmp_path)
        assert out.returncode == 0, out.stderr.decode()
        return json.loads(out.stdout)

    dry = prune("--older-than", "7d", "--dry-run")
    assert sorted(dry["removed"]) == old_done and dry["dry_run"]
    assert all(all(v) for v in _left(rt, old_done).values())
    report = prune("--older-than", "7d")
    assert sorted(report["removed"]) == old_done and len(report["files"]) == 3
    left = _left(rt, old_done + old_live + recent)
    assert all(left[i] == (False, False, False, False) for i in old_done)
    assert all(left[i] == (True, True, True, True) for i in old_live + recent)
    assert rt.store.records.status(old_live[0]) == "running"


def test_a_worker_pass_applies_retention_by_count_bounded(prefix_runtime):
    from cronium.core.fleet.worker import Worker

    rt = prefix_runtime
    done = [_execution(rt, i, "succeeded", 5 - i * 0.01) for i in range(1, 7)]  # oldest first
    running = _execution(rt, 9, "running", 6)
    rt.config = rt.config.with_overrides({"retention.max_count": 2, "retention.batch": 3, "retention.max_age": ""})
    worker = Worker(rt)
    try:
        # 7 executions, keep the newest 2: the 5 oldest are candidates, 3 per pass.
        assert worker.apply_retention() == done[:2]  # the running one (oldest) stays
        assert worker.apply_retention() == done[2:4]  # on after the running one, not from the start
        assert worker.apply_retention() == []
    finally:
        worker.orchestrator.close()
    left = _left(rt, done + [running])
    assert [i for i in done if any(left[i])] == done[4:]
    assert left[running] == (True, True, True, True)
