"""Two attempts of one execution (issue 13, item 5): a worker that was fenced but is still alive
finishes its cleanup after another worker took the execution over and created the new attempt's
objects under the same names. That stale cleanup must leave the new attempt's network, job
container and Redis ACL user alone — checked in the engine and in Redis, not in a plan."""
from __future__ import annotations

import pytest
from cronium.core.model import ContainerOptions, JobLaunch, JobSpec, new_execution_id

pytestmark = pytest.mark.integration


def set_up_attempt(runtime, execution_id: str):
    """What an attempt creates before its sidecar boots: network, ACL user, held job container."""
    from cronium.core.lifecycle import ResourceRegistry
    from cronium.core.spec import resolve
    from cronium.plugins.sidecar import create_acl_user

    spec = JobSpec(job_type="bash", script=b"true", execution_id=execution_id)
    execution = resolve(spec, runtime.config, owner=runtime.owner, installation=runtime.installation).execution
    resources = ResourceRegistry()
    network = runtime.hooks.create_network(execution=execution, runtime=runtime, resources=resources)
    create_acl_user(runtime, execution, resources)
    launch = JobLaunch(image=execution.image, command=("sleep", "60"), env={}, secret_env={},
                       options=ContainerOptions(user="10001"), script=None, name=f"cronium-job-{execution_id}")
    runtime.hooks.start_job(execution=execution, network=network, launch=launch, runtime=runtime,
                            resources=resources)
    return execution, resources


def acl_users_of(redis_client, execution_id: str) -> list[str]:
    return sorted(u.decode() if isinstance(u, bytes) else u for u in redis_client.acl_users() if execution_id in str(u))


def test_cleanup_of_attempt_1_leaves_attempt_2_alone(cronium_config, engine, redis_client):
    from cronium.core.reaper import remove_execution_resources
    from cronium.core.runtime import Runtime

    first, second = Runtime(cronium_config), Runtime(cronium_config)
    execution_id = new_execution_id()
    network, job = f"cronium-net-{execution_id}", f"cronium-job-{execution_id}"
    second_resources = None
    try:
        _, first_resources = set_up_attempt(first, execution_id)
        # The second worker takes over: it removes what the first attempt left, then sets up its own.
        remove_execution_resources(second, execution_id)
        attempt_2, second_resources = set_up_attempt(second, execution_id)
        users_2 = acl_users_of(redis_client, execution_id)
        assert len(users_2) == 1

        failures = first_resources.release_all()  # the fenced first worker's cleanup, late
        assert failures == [], failures
        assert engine.api.inspect_network(network)["Labels"]["cronium.owner"] == second.owner
        assert engine.api.inspect_container(job)["Config"]["Labels"]["cronium.owner"] == second.owner
        assert acl_users_of(redis_client, execution_id) == users_2
        assert users_2[0].endswith(attempt_2.attempt_tag)  # a user per attempt

        assert second_resources.release_all() == []
        assert engine.api.containers(all=True, filters={"name": job}) == []
        assert engine.api.networks(filters={"name": network}) == []
        assert acl_users_of(redis_client, execution_id) == []
    finally:
        if second_resources is not None:
            second_resources.release_all()
        remove_execution_resources(second, execution_id)
        first.close()
        second.close()
