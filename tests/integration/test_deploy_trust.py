"""Deployment files from a less trusted user, end to end with a real Redis (issue 13, item 3): a
deployment cannot read cronium's own settings or any worker variable the operator did not allow
(refused at `cronium deploy`, and again by the worker), and cannot take another file's deployment
or namespace without `--replace`."""
from __future__ import annotations

import pytest
from queue_util import wait_for

pytestmark = pytest.mark.integration

STEAL = """
[deployment]
name = "innocent"

[jobs.steal]
type = "bash"
inline = "echo $R"
secret_env = { R = "env:CRONIUM_REDIS_URL" }
"""


def test_a_deployment_reading_cronium_redis_url_is_refused_at_deploy(qcli, qconfig, qruntime, tmp_path):
    from cronium.core.config import load_config

    redis_url = load_config(config_file=qconfig, use_user_config=False, environ={})["redis.url"]
    path = tmp_path / "steal.toml"
    path.write_text(STEAL)
    # Even an operator who allows every variable never hands CRONIUM_* to a job.
    env = {"CRONIUM_REDIS_URL": redis_url, "CRONIUM_WORKER_SECRET_ENV_ALLOW": "*,CRONIUM_REDIS_URL"}
    for args in (("deploy", "--dry-run", str(path)), ("deploy", str(path))):
        proc = qcli(*args, env=env)
        out = (proc.stdout + proc.stderr).decode()
        assert proc.returncode == 2, out
        assert "key 'jobs.steal.secret_env.R'" in out and "CRONIUM_* variables" in out, out
        assert redis_url not in out
    store = qruntime.store
    assert store.deployments.names() == [] and store.deployments.job_names() == {}


def test_the_worker_refuses_a_variable_its_own_allowlist_does_not_name(qcli, qruntime, tmp_path, processes):
    """Deployed from a host that allows DB_*; the worker allows nothing: the execution ends in
    error before the value is read, and the value is nowhere."""
    value = "db-password-value-31337"
    path = tmp_path / "db.toml"
    path.write_text('[jobs.dbjob]\ntype = "bash"\ninline = "echo $P"\nsecret_env = { P = "env:DB_PASSWORD" }\n')
    proc = qcli("deploy", str(path), env={"CRONIUM_WORKER_SECRET_ENV_ALLOW": "DB_*"})
    assert proc.returncode == 0, proc.stderr.decode()
    processes.start("worker", env={"DB_PASSWORD": value, "CRONIUM_WORKER_SECRET_ENV_ALLOW": ""})
    execution = qcli("submit", "dbjob").stdout.decode().strip()
    store = qruntime.store
    rec = wait_for(lambda: (r := store.records.get(execution))["status"] not in ("queued", "pending", "running")
                   and r, 60, "the refused job", logs=processes.logs)
    assert rec["status"] == "error" and "not in worker.secret_env_allow" in rec["error"], rec
    assert value not in str(rec) and value not in processes.logs()


def _file(tmp_path, folder: str, name: str, namespace: str):
    (tmp_path / folder).mkdir(exist_ok=True)
    path = tmp_path / folder / "deploy.toml"
    path.write_text(f'[deployment]\nname = "{name}"\nnamespace = "{namespace}"\n'
                    f'[jobs.{folder}-job]\ntype = "bash"\ninline = "true"\n')
    return path


def test_another_file_takes_neither_a_deployment_nor_a_namespace_without_replace(qcli, qruntime, tmp_path):
    store = qruntime.store
    owner_file = _file(tmp_path, "team", "payments", "payments-ns")
    assert qcli("deploy", str(owner_file)).returncode == 0
    assert qcli("deploy", str(owner_file)).returncode == 0  # the same file again: an update

    same_name = _file(tmp_path, "intruder", "payments", "intruder-ns")
    proc = qcli("deploy", str(same_name))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "deployment 'payments' was registered from" in err and "--replace" in err, err
    same_namespace = _file(tmp_path, "squatter", "squatter", "payments-ns")
    proc = qcli("deploy", str(same_namespace))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "namespace 'payments-ns' belongs to deployment 'payments'" in err, err
    # Nothing changed: the owner's deployment is intact, the intruders registered nothing.
    meta = store.deployments.meta("payments")
    assert meta["version"] == 2 and meta["origin"] == str(owner_file.resolve())
    assert store.deployments.names() == ["payments"] and list(store.deployments.job_names()) == ["team-job"]

    # The default namespace is shared; an explicit --replace takes over.
    shared = _file(tmp_path, "adhoc", "adhoc", "default")
    assert qcli("deploy", str(shared)).returncode == 0
    proc = qcli("deploy", "--replace", str(same_name))
    assert proc.returncode == 0 and "replaced payments" in proc.stdout.decode(), proc.stderr.decode()
    assert store.deployments.meta("payments")["origin"] == str(same_name.resolve())
