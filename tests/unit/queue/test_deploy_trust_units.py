"""Deployment files come from a less trusted user than the operator (issue 13, item 3): they may
read only the worker variables the operator allows, only script files inside their own folder, and
only finite numbers. Each test attacks one defence; the refusal names the file and the key."""
from __future__ import annotations

import textwrap

import pytest
from cronium.core.config import load_config
from cronium.core.deploy.files import load_deployment
from cronium.core.errors import DeploymentInvalid, SecretUnavailable, UsageError
from cronium.core.model import JobSpec, Resources
from cronium.core.spec import validate

#: What the worker's CRONIUM_REDIS_URL holds in these tests: it must never show up anywhere.
REDIS_URL_VALUE = "redis://admin:very-secret-admin-password@10.0.0.1:6379/0"
EXECUTION = "exec_0123456789abcdef"


def config_allowing(tmp_path, *allow: str):
    return load_config(flags={"worker.secret_env_allow": list(allow)}, use_user_config=False, environ={},
                       cwd=tmp_path)


def refused(tmp_path, config, text: str, name: str = "deploy.toml") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    with pytest.raises(DeploymentInvalid) as info:
        load_deployment(path, config)
    assert info.value.exit_code == 2
    return info.value.problems


# --- secret references: an allowlist, CRONIUM_* never ----------------------------------------------

@pytest.mark.parametrize("allow", [(), ("*",), ("CRONIUM_REDIS_URL",), ("CRONIUM_*",)])
def test_a_deployment_cannot_read_cronium_s_own_settings(tmp_path, monkeypatch, allow):
    monkeypatch.setenv("CRONIUM_REDIS_URL", REDIS_URL_VALUE)
    problems = refused(tmp_path, config_allowing(tmp_path, *allow),
                       '[jobs.a]\ntype = "bash"\ninline = "true"\nsecret_env = { R = "env:CRONIUM_REDIS_URL" }\n')
    assert len(problems) == 1
    assert "key 'jobs.a.secret_env.R'" in problems[0] and "CRONIUM_* variables" in problems[0]
    assert REDIS_URL_VALUE not in "".join(problems)


def test_a_deployment_reads_only_allowed_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-value")
    text = ('[jobs.a]\ntype = "bash"\ninline = "true"\n'
            'secret_env = { K = "env:AWS_SECRET_ACCESS_KEY", T = "env:SYNC_TOKEN" }\n')
    problems = refused(tmp_path, config_allowing(tmp_path, "SYNC_*"), text)
    assert len(problems) == 1 and "key 'jobs.a.secret_env.K'" in problems[0]
    assert "not in worker.secret_env_allow" in problems[0] and "aws-value" not in problems[0]
    # Allowed by name or by glob: accepted (the value is read on the worker, not here).
    d = load_deployment(tmp_path / "deploy.toml", config_allowing(tmp_path, "SYNC_*", "AWS_SECRET_ACCESS_KEY"))
    assert d.jobs["a"].secret_env == {"K": "env:AWS_SECRET_ACCESS_KEY", "T": "env:SYNC_TOKEN"}


def test_the_worker_checks_the_allowlist_again_before_reading_a_value(tmp_path):
    """A definition registered by a host with a looser config: the worker's own allowlist decides,
    and refuses before it reads (the value is in no message)."""
    d = load_deployment(_file(tmp_path, 'secret_env = { K = "env:DB_PASSWORD" }\n'), config_allowing(tmp_path, "*"))
    job = d.jobs["a"]
    environ = {"DB_PASSWORD": "db-value", "CRONIUM_REDIS_URL": REDIS_URL_VALUE}
    with pytest.raises(SecretUnavailable, match="not in worker.secret_env_allow") as info:
        job.job_spec(b"true", execution_id=EXECUTION, input=None, environ=environ, allow=["SYNC_*"])
    assert "db-value" not in str(info.value) + (info.value.hint or "")
    assert job.job_spec(b"true", execution_id=EXECUTION, input=None, environ=environ,
                        allow=["DB_*"]).secret_env["K"].reveal() == "db-value"
    # A definition rewritten in Redis to name a CRONIUM_* variable: refused even with "*".
    stolen = type(job).from_json(job.to_json().replace("env:DB_PASSWORD", "env:CRONIUM_REDIS_URL"))
    with pytest.raises(SecretUnavailable, match="CRONIUM_") as info:
        stolen.job_spec(b"true", execution_id=EXECUTION, input=None, environ=environ, allow=["*"])
    assert REDIS_URL_VALUE not in str(info.value)


# --- script paths: confined to the deployment's folder ----------------------------------------------

def _file(tmp_path, extra: str = "", job: str = 'type = "bash"\ninline = "true"\n'):
    folder = tmp_path / "deploy"
    folder.mkdir(exist_ok=True)
    path = folder / "deploy.toml"
    path.write_text(f"[jobs.a]\n{job}{extra}")
    return path


@pytest.mark.parametrize("script", ["/etc/passwd", "../outside.sh", "sub/../../outside.sh"])
def test_script_paths_may_not_leave_the_folder(tmp_path, config, script):
    (tmp_path / "outside.sh").write_text("echo stolen\n")
    path = _file(tmp_path, job=f'type = "bash"\nscript = "{script}"\n')
    with pytest.raises(DeploymentInvalid) as info:
        load_deployment(path, config)
    assert "key 'jobs.a.script'" in info.value.problems[0] and "leaves the deployment's folder" in info.value.problems[0]


def test_a_symlink_out_of_the_folder_is_refused_one_inside_is_fine(tmp_path, config):
    (tmp_path / "secret.sh").write_text("echo the operator's secret\n")
    path = _file(tmp_path, job='type = "bash"\nscript = "link.sh"\n')
    (path.parent / "link.sh").symlink_to(tmp_path / "secret.sh")
    with pytest.raises(DeploymentInvalid) as info:
        load_deployment(path, config)
    assert "key 'jobs.a.script'" in info.value.problems[0] and "outside the deployment's folder" in info.value.problems[0]
    (path.parent / "link.sh").unlink()
    (path.parent / "real.sh").write_text("echo mine\n")
    (path.parent / "link.sh").symlink_to(path.parent / "real.sh")
    assert load_deployment(path, config).scripts == {load_deployment(path, config).jobs["a"].script_digest:
                                                     b"echo mine\n"}


# --- finite numbers only ------------------------------------------------------------------------------

@pytest.mark.parametrize("line, key", [
    ("timeout = nan", "jobs.a.timeout"),
    ("timeout = inf", "jobs.a.timeout"),
    ("timeout = -inf", "jobs.a.timeout"),
    ('timeout = "1e400s"', "jobs.a.timeout"),
    ("resources = { cpus = inf }", "jobs.a.resources.cpus"),
    ("resources = { cpus = nan }", "jobs.a.resources.cpus"),
    ('retries = { limit = 1, backoff = nan }', "jobs.a.retries.backoff"),
    ('retries = { limit = 1, max_backoff = inf }', "jobs.a.retries.max_backoff"),
])
def test_non_finite_numbers_are_refused_in_deployment_files(tmp_path, config, line, key):
    problems = refused(tmp_path, config, f'[jobs.a]\ntype = "bash"\ninline = "true"\n{line}\n')
    assert f"key '{key}'" in problems[0] and "finite" in problems[0], problems


@pytest.mark.parametrize("spec", [
    JobSpec(job_type="bash", script=b"true", timeout=float("nan")),
    JobSpec(job_type="bash", script=b"true", timeout=float("inf")),
    JobSpec(job_type="bash", script=b"true", resources=Resources(cpus=float("inf"))),
    JobSpec(job_type="bash", script=b"true", resources=Resources(cpus=float("nan"))),
])
def test_non_finite_numbers_are_refused_by_the_one_validator(config, spec):
    with pytest.raises(UsageError, match="finite"):
        validate(spec, config)


# --- names and namespaces belong to the file that registered them -------------------------------------

def test_a_file_takes_neither_another_file_s_deployment_nor_its_namespace(tmp_path, config):
    """The rule the store applies inside its transaction (the end-to-end test is
    tests/integration/test_deploy_trust.py)."""
    from cronium.core.store.deployments import _refuse_takeover

    path = _file(tmp_path, 'namespace = "payments-ns"\n')
    d = load_deployment(path, config)
    origin = str(path.resolve())
    assert d.origin == origin and d.namespaces(shared="default") == ["payments-ns"]
    mine = {"name": "deploy", "origin": origin, "namespaces": ["payments-ns"]}
    theirs = {"name": "payments", "origin": "/elsewhere/deploy.toml", "namespaces": ["payments-ns"]}
    _refuse_takeover("f", "deploy", origin, ["payments-ns"], mine, [])  # the same file again: fine
    with pytest.raises(UsageError, match="was registered from /elsewhere/deploy.toml") as info:
        _refuse_takeover("f", "deploy", origin, [], {**theirs, "name": "deploy"}, [])
    assert "--replace" in info.value.hint
    with pytest.raises(UsageError, match="namespace 'payments-ns' belongs to deployment 'payments'"):
        _refuse_takeover("f", "deploy", origin, ["payments-ns"], {}, [theirs])
    shared = _file(tmp_path, 'namespace = "default"\n')
    assert load_deployment(shared, config).namespaces(shared="default") == []
