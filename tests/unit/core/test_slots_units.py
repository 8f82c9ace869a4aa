"""Pooled slots without Docker: which plugins switch them off, which specs a held container takes
(plugins/slots.py, plugins/_slots.py; the engine side is tests/integration/test_slots.py)."""
from __future__ import annotations

import pytest
from cronium.core import JobSpec, hookimpl
from cronium.core.config import load_config
from cronium.core.model import ContainerOptions, DeferredSecret, JobLaunch, Secret
from cronium.core.plugins import create_plugin_manager
from cronium.core.script_launch import script_command, script_stdin
from cronium.core.spec import resolve
from cronium.plugins import _slots, slots


class _Network:
    @hookimpl
    def create_network(self, execution, runtime, resources):
        return None


class _JobWrapper:
    @hookimpl(wrapper=True)
    def start_job(self, execution, network, launch, runtime, resources):
        return (yield)


class _SwarmLike:
    EXECUTOR = "swarm"

    @hookimpl
    def start_job(self, execution, network, launch, runtime, resources):
        return None


def test_only_the_builtin_network_sidecar_and_executor_leave_slots_on():
    pm = create_plugin_manager()
    assert slots.builtins_only(pm)
    pm.register(_SwarmLike(), name="another-executor")  # never takes part in a Docker run
    assert slots.builtins_only(pm)
    for plugin in (_Network(), _JobWrapper()):
        name = pm.register(plugin, name=f"third-party-{type(plugin).__name__}")
        assert not slots.builtins_only(pm), f"{name} must switch slots off"
        pm.unregister(name=name)
    assert slots.builtins_only(pm)


def test_claim_slot_declines_when_a_third_party_plugin_replaces_the_network():
    """The hook itself, before anything is pooled: declined (the normal path, through the plugin)."""
    pm = create_plugin_manager()
    pm.register(_Network(), name="third-party-network")

    config = load_config(flags={"redis.sidecar_url": "redis://redis:6379/0"}, use_user_config=False, environ={})

    class _Runtime:
        warm_pool = True

        def __init__(self):
            self.pm, self.config = pm, config

        def extension(self, name, factory):
            raise AssertionError("no pool is made when slots are off")

    execution, launch = _launch(config, JobSpec(job_type="python", script=b"print(1)", script_name="a.py"))
    assert _slots.refusal(execution, launch, config) is None  # the spec alone would take a slot
    assert slots.claim_slot(execution=execution, token=None, sidecar_options=ContainerOptions(), launch=launch,
                            runtime=_Runtime(), resources=None) is None


def _launch(config, spec, env=None):
    spec, execution = resolve(spec, config, owner="host.1-ns.abcdef")

    def never() -> str:
        raise AssertionError("the token must not be signed before the job's release")

    command = script_command(spec) if spec.job_type != "container" else tuple(spec.command)
    launch = JobLaunch(image=execution.image, command=command, env={"CRONIUM_EXECUTION_ID": "x", **(env or {})},
                       secret_env={**spec.secret_env, "CRONIUM_EXECUTION_TOKEN": DeferredSecret(never)},
                       options=ContainerOptions(), script=script_stdin(spec) if spec.script else None, name="n")
    return execution, launch


@pytest.mark.parametrize("spec, overrides, env, reason", [
    (JobSpec(job_type="container", image="cronium/python:latest", command=("true",)), {}, None, "not a script job"),
    (JobSpec(job_type="python", script=b"1", script_name="a.py"), {"security.per_execution_uid": True}, None,
     "a uid of its own"),
    (JobSpec(job_type="python", script=b"1", script_name="a.py"), {}, {"A": "two\nlines"}, "an environment value with a newline"),
    (JobSpec(job_type="python", script=b"1", script_name="a.py", secret_env={"S": Secret("x\ny")}), {}, None,
     "a secret value with a newline"),
])
def test_a_spec_a_held_container_cannot_take_is_refused_with_the_reason(spec, overrides, env, reason):
    config = load_config(flags=overrides, use_user_config=False, environ={})
    execution, launch = _launch(config, spec, env)
    assert (_slots.refusal(execution, launch, config) or "").startswith(reason)


def test_a_script_job_of_any_image_and_profile_may_take_a_slot_and_the_token_is_not_signed_to_check_it():
    config = load_config(flags={}, use_user_config=False, environ={})
    for job_type, name in (("python", "a.py"), ("bash", "a.sh"), ("node", "a.js")):
        for extra in ({}, {"profile": "strict"}, {"image": "my/own:1"}):
            execution, launch = _launch(config, JobSpec(job_type=job_type, script=b"1", script_name=name,
                                                        secret_env={"S": Secret("fine")}, **extra))
            assert _slots.refusal(execution, launch, config) is None, extra


def test_the_slot_kind_ignores_limits_but_not_the_rest_of_the_options():
    base = {"ReadonlyRootfs": True, "Memory": 1, "MemorySwap": 1, "NanoCpus": 1, "PidsLimit": 1}
    launch = JobLaunch(image="i", command=("/bin/sh", "-c", "x", "python3", "/work/a.py"), env={}, secret_env={},
                       options=ContainerOptions(host_config=base, user="10001"), script=None, name="n")

    def key(host_config=None, user="10001", image_id="sha256:1", sidecar=ContainerOptions()):
        options = ContainerOptions(host_config=host_config or base, user=user)
        return _slots.slot_kind(JobLaunch(**{**launch.__dict__, "options": options}), image_id, sidecar, "s").key

    assert key() == key({**base, "Memory": 2, "NanoCpus": 5, "PidsLimit": 9, "MemorySwap": 3})
    assert key() != key({**base, "ReadonlyRootfs": False})
    assert key() != key(user="10002")
    # What a profile changes besides limits (seccomp, tmpfs size, caps …), on the job or the sidecar.
    assert key() != key({**base, "SecurityOpt": ["no-new-privileges:true", "seccomp={}"]})
    assert key() != key({**base, "Tmpfs": {"/work": "size=16m"}})
    assert key() != key(sidecar=ContainerOptions(host_config={"SecurityOpt": ["seccomp={}"]}))
    assert key() != key(image_id="sha256:2")  # the same tag, rebuilt


def test_an_image_the_engine_lacks_or_an_engine_that_does_not_answer_asks_for_no_slot():
    import requests
    from docker.errors import ImageNotFound

    class _Api:
        def __init__(self, exc):
            self.exc = exc

        def inspect_image(self, image):
            if self.exc is None:
                return {"Id": "sha256:abc"}
            raise self.exc

    class _Client:
        def __init__(self, exc=None):
            self.api = _Api(exc)

    assert _slots.image_id(_Client(), "cronium/python:latest") == "sha256:abc"
    assert _slots.image_id(_Client(ImageNotFound("no such image: my/own:1")), "my/own:1") is None
    assert _slots.image_id(_Client(requests.exceptions.ConnectionError("connection refused")), "my/own:1") is None
    with pytest.raises(KeyError):  # a bug of ours is not hidden as a missing image
        _slots.image_id(_Client(KeyError("Id")), "my/own:1")
