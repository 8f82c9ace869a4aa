"""core/deploy/files.py: deployment files are validated completely; every problem names the file and the key."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cronium.core.deploy.definition import Edge, JobDefinition, RetryPolicy
from cronium.core.deploy.files import load_deployment
from cronium.core.errors import DeploymentInvalid, SecretUnavailable

EXAMPLES = Path(__file__).resolve().parents[3] / "config" / "deployments"


def write(tmp_path, text: str, name: str = "deploy.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path, config, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(DeploymentInvalid) as info:
        load_deployment(path, config)
    assert info.value.exit_code == 2
    for problem in info.value.problems:
        assert problem.startswith(str(path)), problem
    return info.value.problems


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_shipped_examples_are_valid(example, config):
    deployment = load_deployment(EXAMPLES / example, config)
    assert deployment.jobs


def test_full_job(tmp_path, config):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "job.py").write_text("print('hi')\n")
    path = write(tmp_path, """
        [deployment]
        name = "full"
        namespace = "team-a"

        [jobs.first]
        script = "scripts/job.py"
        schedule = "*/5 * * * *"
        timezone = "Europe/Berlin"
        input = { a = 1, b = [1, 2] }
        env = { LEVEL = "info", PORT = 8080, DEBUG = false }
        secret_env = { TOKEN = "env:MY_TOKEN" }
        timeout = "2m"
        resources = { memory = "64m", cpus = 0.5, pids = 32 }
        profile = "strict"
        concurrency = "forbid"
        retries = { limit = 2, backoff = "5s", factor = 3, max_backoff = "1m", on = ["failed"] }

        [jobs.first.plugins.audit]
        channel = "#ops"

        [jobs.second]
        type = "bash"
        inline = "echo two"
        after = [{ job = "first", when = "condition_true" }, "first"]

        [jobs.third]
        image = "cronium/base:latest"
        command = "echo 'hello world'"
        after = { job = "second", when = "failed" }
    """)
    d = load_deployment(path, config)
    assert d.name == "full" and sorted(d.jobs) == ["first", "second", "third"]
    first = d.jobs["first"]
    assert first.job_type == "python" and first.script_name == "job.py" and first.namespace == "team-a"
    assert d.scripts[first.script_digest] == b"print('hi')\n"
    assert first.env == {"LEVEL": "info", "PORT": "8080", "DEBUG": "false"}
    assert first.secret_env == {"TOKEN": "env:MY_TOKEN"}
    assert first.timeout == 120 and first.resources.memory == 64 * 1024 * 1024 and first.resources.pids == 32
    assert first.retries == RetryPolicy(limit=2, backoff=5, factor=3, max_backoff=60, on=("failed",))
    assert first.plugins == {"audit": {"channel": "#ops"}}
    second = d.jobs["second"]
    assert second.script_name == "second.sh"
    assert second.after == (Edge("first", "condition_true"), Edge("first", "succeeded"))
    third = d.jobs["third"]
    assert third.job_type == "container" and third.command == ("echo", "hello world")
    assert d.successors("first") == [("second", Edge("first", "condition_true")), ("second", Edge("first", "succeeded"))]
    # The definition survives its JSON round trip (that is how it is stored in Redis).
    assert JobDefinition.from_json(first.to_json()) == first
    assert JobDefinition.from_json(third.to_json()) == third


def test_name_defaults_to_file_stem(tmp_path, config):
    path = write(tmp_path, '[jobs.a]\ntype = "bash"\ninline = "true"\n', name="night-jobs.toml")
    assert load_deployment(path, config).name == "night-jobs"


def test_every_problem_is_reported_with_its_key(tmp_path, config):
    problems = problems_of(tmp_path, config, """
        [deployment]
        name = "bad"
        colour = "blue"

        [jobs.a]
        type = "python"
        script = "missing.py"
        schedul = "* * * * *"

        [jobs.b]
        type = "bash"
        inline = "true"
        schedule = "*/0 * * * *"
        timezone = "Mars/Base"
        concurrency = "sometimes"
        secret_env = { TOKEN = "hunter2" }
        after = { job = "nope", when = "succeeded" }

        [jobs.c]
        type = "bash"
        inline = "true"
        resources = { memory = "lots", gpus = 1 }
        retries = { limit = -1, factor = 50 }
        timeout = "soon"
        profile = "paranoid"
        after = { job = "b", when = "sometimes" }
    """)
    text = "\n".join(problems)
    for key, words in [
        ("deployment.colour", "unknown key"),
        ("jobs.a.script", "not found"),
        ("jobs.a.schedul", "did you mean 'schedule'"),
        ("jobs.b.schedule", "step"),
        ("jobs.b.timezone", "unknown time zone"),
        ("jobs.b.concurrency", "allow, forbid, replace"),
        ("jobs.b.secret_env.TOKEN", "env:MY_TOKEN"),
        ("jobs.b.after", "no job 'nope'"),
        ("jobs.c.resources.memory", "not a size"),
        ("jobs.c.resources.gpus", "unknown key"),
        ("jobs.c.retries.limit", "0-100"),
        ("jobs.c.retries.factor", "between 1 and 10"),
        ("jobs.c.timeout", "not a duration"),
        ("jobs.c.profile", "unknown security profile"),
        ("jobs.c.after.when", "unknown condition"),
    ]:
        assert any(f"key '{key}'" in p and words in p for p in problems), f"{key} / {words} not in:\n{text}"
    assert "hunter2" not in text  # a secret written in clear is not echoed back


def test_literal_secret_is_refused(tmp_path, config):
    problems = problems_of(tmp_path, config, '[jobs.a]\ntype = "bash"\ninline = "true"\n'
                                             'secret_env = { TOKEN = "s3cr3t-value" }\n')
    assert "key 'jobs.a.secret_env.TOKEN'" in problems[0] and "never written in deployment files" in problems[0]
    assert "s3cr3t-value" not in problems[0]


@pytest.mark.parametrize("body, key, words", [
    ('[jobs.a]\nscript = "x.py"\ninline = "print()"', "jobs.a.inline", "not both"),
    ('[jobs.a]\ninline = "echo"', "jobs.a.type", "needs type"),
    ('[jobs.a]\ntype = "container"\ncommand = ["true"]', "jobs.a.image", "needs an image"),
    ('[jobs.a]\nimage = "x"\ntype = "container"', "jobs.a.command", "needs a command"),
    ('[jobs.a]\ntype = "bash"\ninline = "true"\ncommand = ["x"]', "jobs.a.command", "for type = \"container\""),
    ('[jobs.a]\ntype = "cobol"\ninline = "x"', "jobs.a.type", "unknown job type"),
    ('[jobs.a]\ndescription = "nothing"', "jobs.a", "nothing to run"),
    ('[jobs."bad name!"]\ntype = "bash"\ninline = "x"', 'jobs.bad name!', "invalid job name"),
    ('[jobs.a]\ntype = "bash"\ninline = "x"\nenv = { CRONIUM_X = "1" }', "jobs.a.env.CRONIUM_X", "reserved"),
    ('[jobs.a]\ntype = "bash"\ninline = "x"\ntimeout = 999999', "jobs.a.timeout", "max_timeout"),
    ('[jobs.a]\ntype = "bash"\ninline = "x"\ninput = 1979-05-27', "jobs.a.input", "JSON-serialisable"),
    ('[jobs.a]\ntype = "bash"\ninline = "x"\nsuspend = "yes"', "jobs.a.suspend", "true or false"),
    ('[jobs.a]\ntype = "bash"\ninline = "x"\nafter = "a"', "jobs.a.after", "after itself"),
    ('[jobs.a]\ntype = "bash"\ninline = "x"\nplugins = { audit = 3 }', "jobs.a.plugins.audit", "table"),
    ('jobs = 3', "jobs", "at least one job"),
    ('[deployment]\nname = "has space"\n[jobs.a]\ntype = "bash"\ninline = "x"', "deployment.name", "invalid"),
])
def test_single_problems(tmp_path, config, body, key, words):
    problems = problems_of(tmp_path, config, body)
    assert any(f"key '{key}'" in p and words in p for p in problems), problems


def test_cycles_are_refused(tmp_path, config):
    problems = problems_of(tmp_path, config, """
        [jobs.a]
        type = "bash"
        inline = "true"
        after = "c"
        [jobs.b]
        type = "bash"
        inline = "true"
        after = "a"
        [jobs.c]
        type = "bash"
        inline = "true"
        after = "b"
    """)
    assert any("cycle" in p for p in problems), problems


def test_bad_toml_and_missing_file(tmp_path, config):
    path = write(tmp_path, "[jobs.a\n")
    with pytest.raises(DeploymentInvalid, match="not valid TOML"):
        load_deployment(path, config)
    with pytest.raises(DeploymentInvalid, match="file not found"):
        load_deployment(tmp_path / "nope.toml", config)


def test_script_size_limit(tmp_path):
    from cronium.core.config import load_config

    small = load_config(flags={"deploy.max_script_bytes": 10}, use_user_config=False, environ={}, cwd=tmp_path)
    problems = problems_of(tmp_path, small, '[jobs.a]\ntype = "bash"\ninline = "echo this is too long"\n')
    assert "key 'jobs.a.inline'" in problems[0] and "max_script_bytes" in problems[0]


def test_secrets_resolve_on_the_worker_only(tmp_path, config):
    d = load_deployment(write(tmp_path, '[jobs.a]\ntype = "bash"\ninline = "true"\n'
                                        'secret_env = { TOKEN = "env:WORKER_TOKEN" }\n'), config)
    job = d.jobs["a"]
    assert "WORKER_TOKEN" in job.to_json() and "value" not in job.to_json()
    spec = job.job_spec(b"true", execution_id="exec_0123456789abcdef", input=None, environ={"WORKER_TOKEN": "value"})
    assert spec.secret_env["TOKEN"].reveal() == "value" and "value" not in repr(spec)
    assert spec.describe()["secret_env"] == ["TOKEN"]
    with pytest.raises(SecretUnavailable, match=r"\$WORKER_TOKEN"):
        job.job_spec(b"true", execution_id="exec_0123456789abcdef", input=None, environ={})


def test_edges_and_retry_policy():
    assert Edge("a", "succeeded").matches("succeeded", None)
    assert not Edge("a", "succeeded").matches("failed", None)
    assert Edge("a", "failed").matches("timed_out", None)
    assert Edge("a", "condition_true").matches("succeeded", True)
    assert not Edge("a", "condition_true").matches("succeeded", None)
    assert not Edge("a", "condition_true").matches("failed", True)
    assert Edge("a", "condition_false").matches("succeeded", False)
    assert Edge("a", "always").matches("error", None)
    policy = RetryPolicy(limit=5, backoff=10, factor=2, max_backoff=50)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 50]


def test_digest_changes_with_content(tmp_path, config):
    a = load_deployment(write(tmp_path, '[jobs.a]\ntype = "bash"\ninline = "echo 1"\n'), config)
    b = load_deployment(write(tmp_path, '[jobs.a]\ntype = "bash"\ninline = "echo 2"\n'), config)
    assert a.digest != b.digest
    assert json.loads(a.jobs["a"].to_json())["script_digest"] != json.loads(b.jobs["a"].to_json())["script_digest"]
