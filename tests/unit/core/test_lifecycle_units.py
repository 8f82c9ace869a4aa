"""Pure parts of the lifecycle: spec validation, execution building, cleanup registry, option merging."""
from __future__ import annotations

import re

import pytest
from cronium.core.config import parse_size
from cronium.core.errors import ConfigError, SecurityNotApplied, UsageError
from cronium.core.executor import (
    REQUIRED_SETTINGS,
    check_engine_warnings,
    merge_options,
    require_security,
)
from cronium.core.lifecycle import (
    ResourceRegistry,
    build_execution,
    script_file_name,
    validate_spec,
)
from cronium.core.model import ContainerOptions, JobSpec, Resources, Secret

MIB = 1024 * 1024


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


# --- ResourceRegistry ----------------------------------------------------------------------------

def test_release_all_runs_in_reverse_order_and_continues_past_failures():
    order = []
    reg = ResourceRegistry()

    def remover(name, fail=False):
        def remove():
            order.append(name)
            if fail:
                raise RuntimeError(f"{name} is stuck")
        return remove

    reg.add("network", "net", remover("net"))
    reg.add("container", "sidecar", remover("sidecar", fail=True))
    reg.add("redis-acl-user", "acl", remover("acl"))
    reg.add("container", "job", remover("job", fail=True))
    assert len(reg) == 4
    failures = reg.release_all()
    assert order == ["job", "acl", "sidecar", "net"]
    assert [what for what, _ in failures] == ["container job", "container sidecar"]
    assert all(isinstance(exc, RuntimeError) for _, exc in failures)
    assert len(reg) == 0
    assert reg.release_all() == []  # nothing is removed twice
    assert order == ["job", "acl", "sidecar", "net"]


def test_resource_added_during_release_is_released_too():
    reg, order = ResourceRegistry(), []
    reg.add("container", "first", lambda: order.append("first"))
    reg.add("container", "adds", lambda: (order.append("adds"), reg.add("volume", "late", lambda: order.append("late"))))
    reg.release_all()
    # The two containers go together (in parallel); what one adds while going is released after it.
    assert sorted(order) == ["adds", "first", "late"]
    assert order.index("late") > order.index("adds")


def test_release_groups_same_kind_and_keeps_reverse_order_between_kinds():
    reg, order = ResourceRegistry(), []
    reg.add("network", "net", lambda: order.append("net"))
    reg.add("container", "a", lambda: order.append("a"))
    reg.add("container", "b", lambda: order.append("b"))
    assert reg.release_all() == []
    assert set(order[:2]) == {"a", "b"} and order[2] == "net"


# --- merge_options / require_security / check_engine_warnings ------------------------------------

def secure(**overrides) -> ContainerOptions:
    host = {"ReadonlyRootfs": True, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges:true"],
            "Memory": 256 * MIB, "MemorySwap": 256 * MIB, "PidsLimit": 64, "NanoCpus": 10**9}
    host.update(overrides.pop("host_config", {}))
    return ContainerOptions(host_config=host, user=overrides.pop("user", "10001:10001"), **overrides)


def test_merge_options():
    a = ContainerOptions(host_config={"CapDrop": ["ALL"], "Memory": 1, "Tmpfs": {"/tmp": "size=1"},
                                      "SecurityOpt": ["no-new-privileges:true"]},
                         env={"A": "1", "B": "1"}, labels={"x": "1"}, user="10001", working_dir="/work",
                         applied=("memory limit", "cap-drop ALL"))
    b = ContainerOptions(host_config={"CapDrop": ["ALL", "NET_RAW"], "Memory": 2, "Tmpfs": {"/data": "size=2"},
                                      "SecurityOpt": ["seccomp=x"]},
                         env={"B": "2"}, labels={"y": "2"}, applied=("memory limit", "seccomp profile"))
    merged = merge_options([a, b])
    assert merged.host_config["Memory"] == 2  # later scalar wins
    assert merged.host_config["CapDrop"] == ["ALL", "NET_RAW"]  # lists concatenate without duplicates
    assert merged.host_config["SecurityOpt"] == ["no-new-privileges:true", "seccomp=x"]
    assert merged.host_config["Tmpfs"] == {"/tmp": "size=1", "/data": "size=2"}  # dicts merge
    assert merged.env == {"A": "1", "B": "2"} and merged.labels == {"x": "1", "y": "2"}
    assert merged.user == "10001" and merged.working_dir == "/work"  # None does not reset
    assert merged.applied == ("memory limit", "cap-drop ALL", "seccomp profile")
    assert merge_options([a, ContainerOptions(user="20002")]).user == "20002"
    # inputs are not mutated
    assert a.host_config["CapDrop"] == ["ALL"]


def test_require_security_accepts_a_complete_profile():
    require_security(secure(), "job")


@pytest.mark.parametrize("broken, setting", [
    ({"user": None}, "non-root user"),
    ({"user": "0"}, "non-root user"),
    ({"user": "root:root"}, "non-root user"),
    ({"host_config": {"ReadonlyRootfs": False}}, "read-only root filesystem"),
    ({"host_config": {"CapDrop": ["NET_RAW"]}}, "cap-drop ALL"),
    ({"host_config": {"SecurityOpt": []}}, "no-new-privileges"),
    ({"host_config": {"Memory": 0}}, "memory limit"),
    ({"host_config": {"MemorySwap": -1}}, "swap limit"),
    ({"host_config": {"PidsLimit": None}}, "pids limit"),
    ({"host_config": {"NanoCpus": 0}}, "CPU limit"),
])
def test_missing_security_setting_refuses(broken, setting):
    with pytest.raises(SecurityNotApplied) as info:
        require_security(secure(**broken), "sidecar")
    assert setting in str(info.value) and "sidecar" in str(info.value)
    assert info.value.phase == "security"


def test_require_security_with_no_contribution_at_all():
    with pytest.raises(SecurityNotApplied) as info:
        require_security(merge_options([]), "job")
    assert "security" in str(info.value)  # hints at the disabled plugin
    assert set(REQUIRED_SETTINGS) >= {"non-root user", "read-only root filesystem", "cap-drop ALL",
                                      "no-new-privileges", "memory limit", "swap limit", "pids limit",
                                      "CPU limit"}


def test_check_engine_warnings():
    check_engine_warnings(None, "job")
    check_engine_warnings([], "job")
    check_engine_warnings(["The requested image's platform does not match"], "job")
    for warning in ("Your kernel does not support pids limit capabilities or the cgroup is not mounted. "
                    "PIDs limit discarded.",
                    "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                    "Memory limited without swap.",
                    "Kernel memory limit: limitation applies"):
        with pytest.raises(SecurityNotApplied) as info:
            check_engine_warnings([warning], "sidecar")
        assert "sidecar" in str(info.value) and warning in str(info.value)


def test_helper_knobs_are_the_jobs_own_env(make_config):
    spec = validate_spec(JobSpec(job_type="python", script=b"pass", env={"CRONIUM_HELPER_TIMEOUT": "2"}), make_config())
    assert spec.env["CRONIUM_HELPER_TIMEOUT"] == "2"
