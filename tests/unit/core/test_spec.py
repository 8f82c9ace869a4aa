"""core/spec.py: one set of rules for every job spec (CLI, API, deployment files), resolved once."""
from __future__ import annotations

import re

import pytest
from cronium.core.config import parse_size
from cronium.core.deploy.files import parse_deployment
from cronium.core.errors import ConfigError, DeploymentInvalid, UsageError
from cronium.core.model import JobSpec, Resources, Secret
from cronium.core.spec import Problems, reserved_env, resolve, script_file_name

MIB = 1024 * 1024
OWNER = "testhost.4242.abcdef"


def validate_spec(spec: JobSpec, config) -> JobSpec:
    return resolve(spec, config, owner=OWNER).spec


def build_execution(spec: JobSpec, rt):
    return resolve(spec, rt.config, owner=rt.owner).execution


def py(**fields) -> JobSpec:
    return JobSpec(job_type="python", script=b"print('hi')\n", script_name="hi.py", **fields)


# --- validate_spec -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, fragment", [
    (JobSpec(job_type="ruby", script=b"puts 1"), "unknown job type 'ruby'"),
    (JobSpec(job_type="container", command=("echo",)), "needs an image"),
    (JobSpec(job_type="container", image="alpine"), "needs a command"),
    (JobSpec(job_type="bash"), "needs a script"),
    (py(timeout=0), "invalid timeout"),
    (py(timeout=-5), "invalid timeout"),
    (py(timeout=True), "invalid timeout"),
    (py(timeout=86401), "above the maximum"),
    (py(namespace="has space"), "invalid namespace"),
    (py(namespace="x" * 65), "invalid namespace"),
    (py(env={"1BAD": "x"}), "invalid environment variable name '1BAD'"),
    (py(env={"A-B": "x"}), "invalid environment variable name"),
    (py(secret_env={"bad name": Secret("x")}), "invalid environment variable name"),
    (py(env={"CRONIUM_EXECUTION_TOKEN": "forged"}), "reserved"),
    (py(secret_env={"CRONIUM_JOB_ID": Secret("x")}), "reserved"),
    (py(resources=Resources(memory=5 * MIB)), "too small"),
    (py(resources=Resources(cpus=0)), "invalid CPU limit"),
    (py(resources=Resources(pids=2)), "pids limit"),
    (py(egress=True), "egress"),
    (py(input={"when": object()}), "not JSON-serialisable"),
    (py(input=[b"bytes"]), "not JSON-serialisable"),
])
def test_validate_spec_rejects_with_exit_code_2(make_config, spec, fragment):
    with pytest.raises(UsageError) as info:
        validate_spec(spec, make_config())
    assert info.value.exit_code == 2
    assert fragment in str(info.value)


def test_unknown_profile_is_a_config_error(make_config):
    with pytest.raises(ConfigError) as info:
        validate_spec(py(profile="nope"), make_config())
    assert info.value.exit_code == 2 and "nope" in str(info.value)


def test_timeout_max_comes_from_config(make_config):
    cfg = make_config({"limits.max_timeout": 100, "timeout": 50})
    with pytest.raises(UsageError) as info:
        validate_spec(py(timeout=101), cfg)
    assert "100" in str(info.value)
    assert validate_spec(py(timeout=100), cfg).timeout == 100.0


def test_egress_allowed_by_config(make_config):
    assert validate_spec(py(egress=True), make_config({"network.egress_allowed": True})).egress is True


def test_validate_spec_fills_in_defaults(make_config):
    cfg = make_config({"timeout": 42, "namespace": "team-a", "profile": "strict"})
    spec = validate_spec(py(), cfg)
    assert (spec.timeout, spec.namespace, spec.profile) == (42.0, "team-a", "strict")
    assert isinstance(spec.timeout, float)
    explicit = validate_spec(py(timeout=5, namespace="mine", profile="default"), cfg)
    assert (explicit.timeout, explicit.namespace, explicit.profile) == (5.0, "mine", "default")


def test_container_job_with_image_and_command_is_valid(make_config):
    spec = validate_spec(JobSpec(job_type="container", image="alpine:3", command=("echo", "hi"),
                                 input={"a": [1, 2]}, env={"MY_VAR": "1"}), make_config())
    assert spec.image == "alpine:3"


# --- build_execution -----------------------------------------------------------------------------

def execution_for(rt, **fields):
    return build_execution(validate_spec(py(**fields), rt.config), rt)


def test_resources_are_clamped_to_limits(stand_in_runtime):
    rt = stand_in_runtime({"limits.max_memory": "512m", "limits.max_cpus": 1.5, "limits.max_pids": 300})
    ex = execution_for(rt, resources=Resources(memory=4096 * MIB, cpus=8.0, pids=100000))
    assert ex.resources == Resources(memory=512 * MIB, cpus=1.5, pids=300)


def test_requests_below_limits_are_kept(stand_in_runtime):
    rt = stand_in_runtime()
    ex = execution_for(rt, resources=Resources(memory=100 * MIB, cpus=0.25, pids=32))
    assert ex.resources == Resources(memory=100 * MIB, cpus=0.25, pids=32)


def test_cpu_only_request_still_gets_profile_memory_and_pids(stand_in_runtime):
    rt = stand_in_runtime()
    profile = rt.config.profile("default")
    ex = execution_for(rt, resources=Resources(cpus=0.5))
    assert ex.resources.cpus == 0.5
    assert ex.resources.memory == parse_size(profile["memory"])
    assert ex.resources.pids == profile["pids"]
    strict = execution_for(rt, profile="strict", resources=Resources(cpus=0.1))
    assert strict.resources.memory == parse_size(rt.config.profile("strict")["memory"])
    assert strict.resources.pids == rt.config.profile("strict")["pids"]


def test_profile_defaults_above_limits_are_clamped_too(stand_in_runtime):
    rt = stand_in_runtime({"limits.max_memory": "64m", "limits.max_pids": 50})
    ex = execution_for(rt)
    assert ex.resources.memory == 64 * MIB and ex.resources.pids == 50


def test_labels_and_deadline(stand_in_runtime):
    rt = stand_in_runtime(owner="host-a.99.feedbe")
    ex = execution_for(rt, timeout=600, job_id="nightly")
    assert re.fullmatch(r"exec_[0-9a-f]{16}", ex.execution_id)
    assert ex.labels["cronium.managed"] == "true"
    assert ex.labels["cronium.execution"] == ex.execution_id
    assert ex.labels["cronium.owner"] == "host-a.99.feedbe" == ex.owner
    assert ex.labels["cronium.deadline"] == str(int(ex.deadline))
    assert ex.deadline > ex.created_at + 600
    assert ex.job_id == "nightly" and ex.timeout == 600.0
    assert ex.image == rt.config["images.python"]
    assert all(isinstance(v, str) for v in ex.labels.values())


def test_deadline_grows_with_the_timeout(stand_in_runtime):
    rt = stand_in_runtime()
    short, long = execution_for(rt, timeout=10), execution_for(rt, timeout=5000)
    assert long.deadline - long.created_at > short.deadline - short.created_at + 4000


def test_execution_id_from_spec_is_kept(stand_in_runtime):
    rt = stand_in_runtime()
    ex = execution_for(rt, execution_id="exec_00112233445566ff")
    assert ex.execution_id == "exec_00112233445566ff" == ex.labels["cronium.execution"]
    assert execution_for(rt).execution_id != execution_for(rt).execution_id


def test_execution_info_holds_no_secret(stand_in_runtime):
    rt = stand_in_runtime()
    ex = execution_for(rt, secret_env={"API_KEY": Secret("sk-live-very-secret")})
    assert "sk-live-very-secret" not in repr(ex)


def test_script_file_name_is_sanitised():
    assert script_file_name(py()) == "hi.py"
    assert script_file_name(JobSpec(job_type="bash", script=b"", script_name="../../etc/pa ss.sh")) == ".._.._etc_pa_ss.sh"
    assert script_file_name(JobSpec(job_type="node", script=b"")) == "script.js"


def test_helper_knobs_are_the_jobs_own_env(make_config):
    spec = validate_spec(JobSpec(job_type="python", script=b"pass", env={"CRONIUM_HELPER_TIMEOUT": "2"}), make_config())
    assert spec.env["CRONIUM_HELPER_TIMEOUT"] == "2"


def test_reserved_names_are_cronium_s_own_except_helper_knobs():
    assert reserved_env("CRONIUM_EXECUTION_TOKEN") and reserved_env("CRONIUM_SOMETHING_LATER")
    assert not reserved_env("CRONIUM_HELPER_TIMEOUT") and not reserved_env("MY_CRONIUM_X")


def test_problems_collect_every_problem_with_file_and_key():
    problems = Problems("d.toml").at("jobs.a.")
    problems.add("timeout", "bad")
    problems.add("", "worse")
    problems.warn("egress", "careful")
    assert problems.items == ["d.toml: key 'jobs.a.timeout': bad", "d.toml: key 'jobs.a': worse"]
    assert problems.warnings == ["d.toml: key 'jobs.a.egress': careful"]
    with pytest.raises(UsageError, match="^bad$"):
        Problems(raise_first=True).add("timeout", "bad")


# The same value is refused with the same words by `cronium run` (raise-first) and in a deployment
# file (collected, with the key): there is one rule, not two.
@pytest.mark.parametrize("spec_fields, toml, key", [
    ({"timeout": 999999}, "timeout = 999999", "timeout"),
    ({"resources": Resources(memory=5 * MIB)}, 'resources = { memory = "5m" }', "resources.memory"),
    ({"resources": Resources(pids=2)}, "resources = { pids = 2 }", "resources.pids"),
    ({"resources": Resources(cpus=0.0)}, "resources = { cpus = 0 }", "resources.cpus"),
    ({"namespace": "has space"}, 'namespace = "has space"', "namespace"),
    ({"env": {"CRONIUM_X": "1"}}, 'env = { CRONIUM_X = "1" }', "env.CRONIUM_X"),
    ({"env": {"1BAD": "1"}}, 'env = { 1BAD = "1" }', "env.1BAD"),
    ({"profile": "paranoid"}, 'profile = "paranoid"', "profile"),
])
def test_cli_and_deployment_files_share_the_rules(make_config, tmp_path, spec_fields, toml, key):
    cfg = make_config()
    with pytest.raises(UsageError) as cli_error:
        validate_spec(py(**spec_fields), cfg)
    with pytest.raises(DeploymentInvalid) as file_error:
        parse_deployment(__import__("tomllib").loads(f'[jobs.a]\ntype = "python"\ninline = "pass"\n{toml}\n'),
                         source="d.toml", base_dir=tmp_path, config=cfg)
    [problem] = file_error.value.problems
    assert problem.startswith(f"d.toml: key 'jobs.a.{key}': ")
    assert cli_error.value.message in problem


def test_helper_knobs_are_allowed_in_deployment_files_too(make_config, tmp_path):
    d = parse_deployment({"jobs": {"a": {"type": "bash", "inline": "true", "env": {"CRONIUM_HELPER_TIMEOUT": "2"}}}},
                         source="d.toml", base_dir=tmp_path, config=make_config())
    assert d.jobs["a"].env == {"CRONIUM_HELPER_TIMEOUT": "2"}
