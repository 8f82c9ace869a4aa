"""The sidecar listens on its job network only (issue 13, item 9).

The sidecar is also on the services network, to reach Redis. Were it listening there, anything else
on that network — another execution's sidecar, which in HS256 mode holds the shared token secret and
can sign tokens for any execution — could drive it. The attack runs from a plain container on the
services network while the job runs; the job itself must still reach `runtime-api`, and the
sidecar's own socket table shows one listener on 8081: its job-network address.
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from cronium.core import hookimpl

pytestmark = pytest.mark.integration

#: Waits until the attack has run (the test creates /tmp/attacked), then uses the runtime API.
JOB = """
import os, time, cronium
while not os.path.exists('/tmp/attacked'):
    time.sleep(0.1)
cronium.output({'echo': cronium.input()})
"""

#: Runs on the services network: tries a TCP connection to each target, prints one JSON line.
PROBE = """
import json, socket, sys
res = {}
for name, (host, port) in json.loads(sys.argv[1]).items():
    try:
        socket.create_connection((host, port), timeout=3).close()
        res[name] = 'open'
    except ConnectionRefusedError:
        res[name] = 'refused'
    except OSError as exc:
        res[name] = type(exc).__name__
print(json.dumps(res))
"""


class Attacker:
    """On job_started: probes the execution's sidecar from a container on the services network."""

    def __init__(self, runtime, services_network: str, redis_target: tuple[str, int]):
        self.runtime, self.services_network, self.redis_target = runtime, services_network, redis_target
        self.seen: dict = {}

    @hookimpl
    def job_started(self, execution):
        api, eid = self.runtime.docker.api, execution.execution_id
        try:
            networks = api.inspect_container(f"cronium-runtime-{eid}")["NetworkSettings"]["Networks"]
            self.seen["job network address"] = networks[f"cronium-net-{eid}"]["IPAddress"]
            # Only the services-network address: the job network is internal, and a packet for it
            # sent from elsewhere must not be routed off this host.
            self.seen["probe"] = self._probe({
                "redis (positive control)": self.redis_target,
                "sidecar via services network": (networks[self.services_network]["IPAddress"], 8081)})
            self.seen["listening"] = listening_addresses(_exec(api, f"cronium-runtime-{eid}", ["cat", "/proc/net/tcp"]),
                                                         8081)
        finally:
            _exec(api, f"cronium-job-{eid}", ["touch", "/tmp/attacked"])

    def _probe(self, targets: dict) -> dict:
        api = self.runtime.docker.api
        container = api.create_container(self.runtime.config["images.python"],
                                         ["python3", "-c", PROBE, json.dumps(targets)],
                                         host_config=api.create_host_config(network_mode=self.services_network))
        try:
            api.start(container)
            api.wait(container, timeout=60)
            return json.loads(api.logs(container, stderr=False).decode().strip().splitlines()[-1])
        finally:
            api.remove_container(container, force=True)


def _exec(api, container: str, command: list[str]) -> str:
    return api.exec_start(api.exec_create(container, command)["Id"]).decode()


def listening_addresses(proc_net_tcp: str, port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, from the kernel's /proc/net/tcp table."""
    found = set()
    for row in proc_net_tcp.splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.fixture
def attacker(cronium_runtime, cronium_redis):
    url = urlsplit(cronium_redis["sidecar_url"])
    plugin = Attacker(cronium_runtime, cronium_redis["network"], (url.hostname, url.port or 6379))
    cronium_runtime.pm.register(plugin, name="sidecar-binding-attacker")
    yield plugin
    cronium_runtime.pm.unregister(plugin)


@pytest.fixture
def hs256(cronium_overrides):
    """The mode in which a sidecar holds a secret that signs tokens for every execution."""
    cronium_overrides.update({"token.algorithm": "HS256", "token.secret": "s" * 40})


def test_the_services_network_cannot_reach_a_sidecars_port_and_the_job_still_can(hs256, attacker, cronium_run,
                                                                                 docker_leftovers):
    result = cronium_run(JOB, input={"x": 1}, timeout=120)
    assert result.status == "succeeded", result
    assert result.output == {"echo": {"x": 1}}  # the job reached runtime-api on its network
    seen = attacker.seen
    assert seen["probe"]["redis (positive control)"] == "open", seen  # the probe does reach the services network
    assert seen["probe"]["sidecar via services network"] == "refused", seen
    # The kernel's view from inside the sidecar: one listener on 8081, on the job-network address.
    assert seen["listening"] == {seen["job network address"]}, seen
    assert docker_leftovers(result.execution_id) == []
