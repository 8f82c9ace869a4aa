"""`cronium deploy` and `cronium deployments` end to end with a real Redis (and, for secrets, a real
worker): clear errors with file and key, nothing registered on error, replace on re-deploy,
script contents stored for other hosts, secrets by reference only."""
from __future__ import annotations

import hashlib
import json

import pytest
from integration_util import REPO
from queue_util import wait_for

pytestmark = pytest.mark.integration

GOOD = """
[deployment]
name = "good"

[jobs.alpha]
script = "alpha.py"
schedule = "*/10 * * * *"
timezone = "Europe/Berlin"

[jobs.beta]
type = "bash"
inline = "echo beta"
after = { job = "alpha", when = "succeeded" }
"""

BAD_FILES = {
    "unknown-key.toml": ('[jobs.a]\ntype = "bash"\ninline = "x"\nschedul = "* * * * *"\n',
                         "key 'jobs.a.schedul'", "did you mean 'schedule'"),
    "bad-cron.toml": ('[jobs.a]\ntype = "bash"\ninline = "x"\nschedule = "61 * * * *"\n',
                      "key 'jobs.a.schedule'", "out of range 0-59"),
    "bad-zone.toml": ('[jobs.a]\ntype = "bash"\ninline = "x"\nschedule = "@hourly"\ntimezone = "Europe/Atlantis"\n',
                      "key 'jobs.a.timezone'", "unknown time zone"),
    "no-script.toml": ('[jobs.a]\nscript = "missing.py"\n', "key 'jobs.a.script'", "not found"),
    "clear-secret.toml": ('[jobs.a]\ntype = "bash"\ninline = "x"\nsecret_env = { T = "hunter2" }\n',
                          "key 'jobs.a.secret_env.T'", "env:MY_TOKEN"),
    "bad-edge.toml": ('[jobs.a]\ntype = "bash"\ninline = "x"\nafter = { job = "b", when = "succeeded" }\n',
                      "key 'jobs.a.after'", "no job 'b'"),
    "bad-policy.toml": ('[jobs.a]\ntype = "bash"\ninline = "x"\nconcurrency = "queue"\n',
                        "key 'jobs.a.concurrency'", "allow, forbid, replace"),
    "bad-toml.toml": ('[jobs.a\ntype = "bash"\n', "bad-toml.toml: not valid TOML", ""),
}


def registered_keys(qruntime) -> list[bytes]:
    store = qruntime.store
    return sorted(store.redis.scan_iter(match=store.keys.prefix + "*"))


def everything_stored(qruntime) -> bytes:
    """The plain content of every key of this test, whatever its type."""
    r = qruntime.store.redis
    parts = []
    for key in registered_keys(qruntime):
        kind = r.type(key).decode()
        if kind == "string":
            parts.append(r.get(key) or b"")
        elif kind == "hash":
            parts += [k + b"=" + v for k, v in r.hgetall(key).items()]
        elif kind == "stream":
            parts += [k + b"=" + v for _, fields in r.xrange(key) for k, v in fields.items()]
        elif kind == "set":
            parts += list(r.smembers(key))
        elif kind == "zset":
            parts += r.zrange(key, 0, -1)
        elif kind == "list":
            parts += r.lrange(key, 0, -1)
    return b"\n".join(parts)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_names_file_and_key_and_registers_nothing(qcli, qruntime, tmp_path, name):
    text, key, words = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    for args in (("deploy", "--dry-run", str(path)), ("deploy", str(path))):
        proc = qcli(*args)
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert f"{path}" in err and key in err and words in err, err
        assert "nothing was registered" in err and "hunter2" not in err
    assert registered_keys(qruntime) == []


def test_one_bad_file_blocks_the_good_ones(qcli, qruntime, tmp_path):
    (tmp_path / "alpha.py").write_text("print('alpha')\n")
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_FILES["bad-cron.toml"][0])
    proc = qcli("deploy", str(good), str(bad))
    assert proc.returncode == 2 and "bad.toml: key 'jobs.a.schedule'" in proc.stderr.decode()
    assert registered_keys(qruntime) == []
    assert "no deployments" in qcli("deployments", "list").stdout.decode()


def test_deploy_list_show_redeploy_remove(qcli, qruntime, tmp_path):
    from cronium.core.deploy.registry import DeploymentRegistry

    (tmp_path / "alpha.py").write_text("print('alpha')\n")
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    dry = qcli("deploy", "--dry-run", str(path))
    assert dry.returncode == 0 and "valid" in dry.stdout.decode() and registered_keys(qruntime) == []

    proc = qcli("deploy", str(path))
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "deployed good (version 1)" in out and "*/10 * * * *, next" in out and "after alpha succeeded" in out
    registry = DeploymentRegistry(qruntime.store)
    alpha = registry.job("alpha")
    # The script's content is in Redis, so a worker on another host can run it.
    assert registry.script(alpha.script_digest) == b"print('alpha')\n"
    assert alpha.script_digest == hashlib.sha256(b"print('alpha')\n").hexdigest()
    assert [e.job for e in registry.successors("alpha")] == ["beta"]
    listing = qcli("deployments", "list").stdout.decode()
    assert "good" in listing and "alpha, beta" in listing
    shown = qcli("deployments", "show", "good").stdout.decode()
    assert "job alpha" in shown and "schedule   */10 * * * * (Europe/Berlin), next" in shown and "CE" in shown
    assert qcli("deployments", "show", "good", "--source").stdout.decode() == GOOD
    as_json = json.loads(qcli("deployments", "show", "good", "--json").stdout)
    assert as_json["version"] == 1 and {j["name"] for j in as_json["jobs"]} == {"alpha", "beta"}

    # Re-deploy: beta is gone from the file, alpha's script changed -> replaced.
    (tmp_path / "alpha.py").write_text("print('alpha v2')\n")
    path.write_text(GOOD.split("[jobs.beta]")[0])
    proc = qcli("deploy", str(path))
    assert "replaced good (version 2)" in proc.stdout.decode() and "removed job beta" in proc.stdout.decode()
    assert registry.job_names() == {"alpha": "good"}
    assert registry.script(registry.job("alpha").script_digest) == b"print('alpha v2')\n"
    assert qcli("jobs", "show", "beta").returncode == 1

    # A job name belongs to one deployment.
    other = tmp_path / "other.toml"
    other.write_text('[deployment]\nname = "other"\n[jobs.alpha]\ntype = "bash"\ninline = "true"\n')
    proc = qcli("deploy", str(other))
    assert proc.returncode == 2 and "key 'jobs.alpha'" in proc.stderr.decode() and "deployment 'good'" in proc.stderr.decode()

    proc = qcli("deployments", "remove", "good")
    assert proc.returncode == 0 and "removed good" in proc.stdout.decode()
    assert registry.names() == [] and registry.job_names() == {}
    assert qcli("deployments", "show", "good").returncode == 1
    assert qcli("submit", "alpha").returncode == 1


def test_secret_by_reference_reaches_the_job_and_nothing_else(qcli, qruntime, processes):
    secret = "s3cr3t-token-value-1234567890"
    example = REPO / "config" / "deployments" / "with-secrets.toml"
    allow = {"CRONIUM_WORKER_SECRET_ENV_ALLOW": "SYNC_API_TOKEN"}  # deploying and running both need it
    proc = qcli("deploy", str(example), env=allow)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "SYNC_API_TOKEN" in proc.stderr.decode()  # warned: not set where it was deployed
    store = qruntime.store
    assert b"env:SYNC_API_TOKEN" in everything_stored(qruntime)

    processes.start("worker", env={"SYNC_API_TOKEN": secret, **allow})
    execution = qcli("submit", "sync").stdout.decode().strip()
    rec = wait_for(lambda: (r := store.records.get(execution))["status"] not in ("queued", "pending", "running")
                   and r, 90, "the sync job", logs=processes.logs)
    assert rec["status"] == "succeeded", rec
    assert rec["output"] == {"token_sha256_prefix": hashlib.sha256(secret.encode()).hexdigest()[:12],
                             "token_length": len(secret)}
    assert rec["spec"]["secret_env"] == ["API_TOKEN"]
    assert rec["spec"]["plugin_settings"] == {"audit": {"channel": "#ops-sync"}}
    # The value is nowhere: not in Redis (records, logs, definitions), not in any CLI output.
    stored = everything_stored(qruntime)
    assert b"token_length" in stored and secret.encode() not in stored
    for args in (("jobs", "show", execution), ("jobs", "show", execution, "--json"), ("inspect", execution),
                 ("logs", execution), ("jobs", "list", "--json"), ("deployments", "show", "sync", "--json")):
        out = qcli(*args)
        assert out.returncode == 0 and secret not in (out.stdout + out.stderr).decode(), args
    assert secret not in processes.logs()

    # A worker without the variable fails the execution with a message that says what is missing.
    store.redis.delete(store.keys.active("sync"))
    processes.stop_all()
    processes.start("worker", env=allow)
    missing = qcli("submit", "sync").stdout.decode().strip()
    rec = wait_for(lambda: (r := store.records.get(missing))["status"] == "error" and r, 60,
                   "the execution without its secret", logs=processes.logs)
    assert "$SYNC_API_TOKEN, which is not set on worker host" in rec["error"]
