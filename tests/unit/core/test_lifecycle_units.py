"""Pure parts of the lifecycle: the cleanup registry, option merging, engine warnings."""
from __future__ import annotations

import pytest
from cronium.core.errors import SecurityNotApplied
from cronium.core.executor import (
    REQUIRED_SETTINGS,
    check_engine_warnings,
    merge_options,
    require_security,
)
from cronium.core.lifecycle import ResourceRegistry
from cronium.core.model import ContainerOptions

MIB = 1024 * 1024


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


def test_branches_are_released_at_the_same_time_each_in_reverse_order_before_what_came_first():
    import threading

    reg, order = ResourceRegistry(), []
    both_removing = threading.Barrier(2, timeout=10)  # broken unless the two branches overlap
    reg.add("network", "net", lambda: order.append("net"))
    sidecar, job = reg.branches(2)
    sidecar.add("redis-acl-user", "acl", lambda: order.append("acl"))
    sidecar.add("container", "sidecar", lambda: (both_removing.wait(), order.append("sidecar")))
    job.add("container", "job", lambda: (both_removing.wait(), order.append("job")))
    job.add("pool-claim", "late", lambda: order.append("claim"))  # registered last in its branch
    assert reg.release_all() == []
    assert order.index("claim") < order.index("job") and order.index("sidecar") < order.index("acl")
    assert order[-1] == "net" and sorted(order) == ["acl", "claim", "job", "net", "sidecar"]


def test_a_failure_inside_a_branch_is_reported_and_the_rest_still_goes():
    reg, order = ResourceRegistry(), []
    reg.add("network", "net", lambda: order.append("net"))
    first, second = reg.branches(2)
    first.add("container", "stuck", lambda: (_ for _ in ()).throw(RuntimeError("stuck")))
    second.add("container", "job", lambda: order.append("job"))
    failures = reg.release_all()
    assert [what for what, _ in failures] == ["container stuck"]
    assert order == ["job", "net"]


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
