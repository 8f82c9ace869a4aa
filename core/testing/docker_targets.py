"""Addresses a job must not reach, on the Docker engine (the conformance kit's default targets).

Everything here is created by the test itself: a listening socket on this host (on every address)
and a listening container on Docker's default bridge (an "outside" address: another network). A
positive control — a plain container on the default bridge — first proves that both answer, so
that "blocked" from a job means the executor blocked it. The services network's own containers
(Redis) and the peer execution's sidecar come from the session's set-up.
"""
from __future__ import annotations

import ipaddress
import socket
import uuid
from typing import Any

LISTENER = ("import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 8080))\ns.listen(64)\n"
            "while True:\n    s.accept()[0].close()\n")
CONTROL = ("import socket, sys\nfor host, port in {targets}:\n    for attempt in range(600):\n        try:\n"
           "            socket.create_connection((host, port), timeout=2).close(); break\n"
           "        except OSError:\n            import time; time.sleep(0.1)\n"
           "    else:\n        sys.exit('unreachable: %s:%d' % (host, port))\nprint('open')\n")


def gateway(client, network: str) -> str:
    """The host's address on a Docker network."""
    config = client.api.inspect_network(network)["IPAM"]["Config"][0]
    return config.get("Gateway") or str(ipaddress.ip_network(config["Subnet"])[1])


class DockerTargets:
    """`targets(peer_sidecar)` -> {name: (address, port)}; `close()` removes what it created."""

    def __init__(self, client, config, services_network: str):
        self.client, self.config, self.services_network = client, config, services_network
        self._listener: socket.socket | None = None
        self._container: str | None = None

    def __call__(self, peer_sidecar: Any) -> dict[str, tuple[str, int]]:
        client = self.client
        self._listener = socket.socket()
        self._listener.bind(("0.0.0.0", 0))
        self._listener.listen(64)
        host_port = self._listener.getsockname()[1]
        outside = self._start_listener_container()
        targets = {"host_via_docker0": (gateway(client, "bridge"), host_port),
                   "host_via_services_gateway": (gateway(client, self.services_network), host_port),
                   "outside_container": (outside, 8080)}
        self._control([targets["host_via_docker0"], targets["outside_container"]])
        for c in client.api.containers(filters={"network": self.services_network}):
            if "cronium.managed" not in (c.get("Labels") or {}):
                ip = c["NetworkSettings"]["Networks"][self.services_network]["IPAddress"]
                targets[f"service_{c['Names'][0].lstrip('/')}"] = (ip, 6379)
        peer = client.api.inspect_container(peer_sidecar.container_id)["NetworkSettings"]["Networks"]
        for i, (name, net) in enumerate(sorted(peer.items())):
            targets[f"peer_sidecar_{i}"] = (net["IPAddress"], 8081)
        return targets

    def _start_listener_container(self) -> str:
        name = f"cronium-conformance-listener-{uuid.uuid4().hex[:8]}"
        created = self.client.api.create_container(self.config["images.python"], name=name,
                                                   command=["python3", "-c", LISTENER])
        self._container = created["Id"]
        self.client.api.start(self._container)
        return self.client.api.inspect_container(self._container)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]

    def _control(self, targets: list[tuple[str, int]]) -> None:
        """A plain container on the default bridge reaches both listeners (they do answer)."""
        out = self.client.containers.run(self.config["images.python"], remove=True, command=[
            "python3", "-c", CONTROL.format(targets=[list(t) for t in targets])])
        assert b"open" in out, out

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._container is not None:
            self.client.api.remove_container(self._container, force=True)
