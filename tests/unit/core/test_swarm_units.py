"""Executor selection and the swarm executor's mapping of the security profile (no engine)."""
from __future__ import annotations

import pytest
from cronium.core import hookimpl
from cronium.core.config import load_config
from cronium.core.errors import SecurityNotApplied, UsageError
from cronium.core.executor import hooks_for_executor
from cronium.core.model import ContainerOptions, JobSpec, Resources
from cronium.core.plugins import Hooks, create_plugin_manager
from cronium.core.spec import resolve, validate
from cronium.plugins import _swarm
from cronium.plugins.security import build_options


@pytest.fixture
def config(tmp_path):
    return load_config(use_user_config=False, environ={}, cwd=tmp_path)


def impl_names(hooks: Hooks, hook: str) -> list[str]:
    return sorted(impl.plugin_name for impl in hooks._caller(hook).get_hookimpls())


def test_each_executor_runs_only_its_own_plugins_and_the_shared_ones():
    hooks = Hooks(create_plugin_manager())
    swarm, docker = hooks_for_executor(hooks, "swarm"), hooks_for_executor(hooks, "docker")
    assert impl_names(swarm, "create_network") == ["swarm_network"]
    assert impl_names(swarm, "launch_sidecar") == ["swarm_sidecar"]
    assert impl_names(swarm, "start_job") == ["swarm_executor"]
    assert impl_names(docker, "start_job") == ["docker_executor"]
    assert impl_names(docker, "create_network") == ["network"]
    # Plugins of no executor take part in both; the Docker sidecar's notifications stay with Docker.
    assert "security" in impl_names(swarm, "container_options") and "logs" in impl_names(swarm, "log_sinks")
    assert "sidecar" not in impl_names(swarm, "job_finished") and "sidecar" in impl_names(docker, "job_finished")
    assert impl_names(swarm.strict, "network_created") == impl_names(swarm, "network_created")
    # Reaping goes to every plugin.
    assert {"swarm_executor", "docker_executor"} <= set(impl_names(hooks, "reap_orphans"))


def test_a_third_party_plugin_declaring_an_executor_is_selected_the_same_way():
    class Nomad:
        EXECUTOR = "nomad"

        @hookimpl
        def start_job(self, execution, network, launch, runtime, resources):
            return "nomad-handle"

    pm = create_plugin_manager()
    pm.register(Nomad(), name="nomad")
    assert impl_names(hooks_for_executor(Hooks(pm), "nomad"), "start_job") == ["nomad"]
    assert "nomad" not in impl_names(hooks_for_executor(Hooks(pm), "swarm"), "start_job")


def test_an_unknown_executor_is_a_usage_error_naming_the_installed_ones():
    with pytest.raises(UsageError) as info:
        hooks_for_executor(Hooks(create_plugin_manager()), "kubernetes")
    assert "'kubernetes'" in info.value.message and "docker, swarm" in info.value.message


def test_a_disabled_executor_is_unknown():
    pm = create_plugin_manager(["swarm_network", "swarm_sidecar", "swarm_executor"])
    with pytest.raises(UsageError, match="installed executors: docker"):
        hooks_for_executor(Hooks(pm), "swarm")


def test_executor_and_placement_are_validated_and_resolved(config):
    spec = JobSpec(job_type="python", script=b"", executor="swarm", placement=("node.labels.gpu==true",))
    _, execution = resolve(spec, config, owner="o")
    assert (execution.executor, execution.placement) == ("swarm", ("node.labels.gpu==true",))
    assert resolve(JobSpec(job_type="python", script=b""), config, owner="o").execution.executor == "docker"
    for bad, words in (({"executor": "Swarm!"}, "invalid executor name"),
                       ({"executor": "swarm", "placement": ("gpu=true",)}, "invalid placement constraint"),
                       ({"executor": "swarm", "placement": ("node.labels.a==b; rm -rf /",)}, "invalid placement"),
                       ({"placement": ("node.role!=manager",)}, "need a cluster executor")):
        with pytest.raises(UsageError, match=words):
            validate(JobSpec(job_type="python", script=b"", resources=Resources(), **bad), config)


def profile(seccomp=None) -> ContainerOptions:
    return build_options(user="10001:10001", memory=64 << 20, swap=0, cpus=0.5, pids=64,
                         tmpfs={"/work": "rw,nosuid,nodev,size=1024,uid=10001,gid=10001,mode=0700"},
                         seccomp=seccomp, working_dir="/work", env={})


def test_the_profile_maps_onto_a_service_spec():
    spec, resources = _swarm.container_spec("img", ["/bin/sh", "-c", "true"], profile(), env={"A": "1"},
                                            labels={"l": "v"}, secrets=[], role="job", init=True)
    assert spec["Command"][:3] == ["setpriv", "--no-new-privs", "--"]  # no field for it in API 1.41
    assert (spec["User"], spec["ReadOnly"], spec["CapabilityDrop"], spec["Init"]) == ("10001:10001", True, ["ALL"], True)
    assert resources == {"Limits": {"MemoryBytes": 64 << 20, "NanoCPUs": 500_000_000, "Pids": 64}}
    mount = spec["Mounts"][0]
    assert mount["Target"] == "/work" and mount["Type"] == "volume"
    assert mount["VolumeOptions"]["DriverConfig"]["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "rw,nosuid,nodev,size=1024,uid=10001,gid=10001,mode=0700"}
    assert spec["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 4096}]


def test_what_a_service_spec_cannot_hold_is_refused_never_skipped():
    with pytest.raises(SecurityNotApplied, match="seccomp"):
        _swarm.container_spec("img", ["x"], profile(seccomp='{"defaultAction": "SCMP_ACT_ERRNO"}'), env={},
                              labels={}, secrets=[], role="job", init=True)
    options = profile()
    for extra, words in (({"Privileged": True}, "cannot be privileged"), ({"BlkioWeight": 10}, "BlkioWeight"),
                         ({"SecurityOpt": ["apparmor=x"]}, "apparmor")):
        changed = ContainerOptions(host_config={**options.host_config, **extra}, user=options.user)
        with pytest.raises(SecurityNotApplied, match=words):
            _swarm.container_spec("img", ["x"], changed, env={}, labels={}, secrets=[], role="job", init=True)


def test_swap_that_a_service_cannot_limit_is_refused_on_a_node_with_swap():
    _swarm.check_swap(64 << 20, 64 << 20, "job", has_swap=lambda: False)  # no swap: nothing to limit
    _swarm.check_swap(64 << 20, 128 << 20, "job", has_swap=lambda: True)  # the profile allows that much
    with pytest.raises(SecurityNotApplied, match="swap"):
        _swarm.check_swap(64 << 20, 64 << 20, "job", has_swap=lambda: True)


def test_the_stdin_secret_is_read_by_the_task_user_only():
    ref = _swarm.secret_ref("id1", "cronium-stdin-x", "f", "10001:10002")
    assert ref["File"] == {"Name": "f", "UID": "10001", "GID": "10002", "Mode": 0o400}


def test_a_deployment_job_names_its_executor_and_placement(tmp_path, config):
    from cronium.core.deploy.files import load_deployment

    (tmp_path / "job.py").write_text("print(1)\n")
    path = tmp_path / "d.toml"
    path.write_text('[deployment]\nname = "d"\n[jobs.a]\nscript = "job.py"\nexecutor = "swarm"\nplacement = ["node.labels.x==y"]\n'
                    '[jobs.b]\nscript = "job.py"\nplacement = ["node.labels.x==y"]\n')
    with pytest.raises(UsageError) as info:
        load_deployment(path, config)
    assert "jobs.b.placement" in str(info.value) and "jobs.a" not in str(info.value)
    path.write_text('[deployment]\nname = "d"\n[jobs.a]\nscript = "job.py"\nexecutor = "swarm"\nplacement = ["node.labels.x==y"]\n')
    job = load_deployment(path, config).jobs["a"]
    spec = type(job).from_json(job.to_json()).job_spec(b"", execution_id="exec_0000000000000000", input=None)
    assert (spec.executor, spec.placement) == ("swarm", ("node.labels.x==y",))
