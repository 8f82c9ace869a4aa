"""The swarm rig leaves nothing behind even when the process that started it is SIGKILLed: the next
rig's start removes the stale dockerd, namespace, veth, registry and folder, leaves the swarm the
killed rig made, and its own stop leaves the engine as it was found."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cronium.core.testing import swarm_rig as rig_module
from cronium.core.testing.swarm_rig import SwarmRig, rig_unavailable
from cronium.core.testing.swarm_host import GWBRIDGE, _service_attachments, reconnect_service_containers, swarm_state

pytestmark = pytest.mark.integration

_START_AND_HANG = """
import sys, time, docker
from cronium.core.testing.swarm_rig import SwarmRig
rig = SwarmRig(docker.from_env(timeout=300)).start()
print("ready", flush=True)
time.sleep(600)
"""


def _leftovers() -> list[str]:
    left = []
    if Path(f"/var/run/netns/{rig_module.NETNS}").exists():
        left.append("netns")
    if subprocess.run(["ip", "link", "show", rig_module.HOST_IF], capture_output=True).returncode == 0:
        left.append("veth")
    if rig_module.ROOT.exists():
        left.append(str(rig_module.ROOT))
    if rig_module._rig_processes(rig_module.ROOT):
        left.append("processes")
    if (Path("/etc/docker/certs.d") / f"{rig_module.HOST_ADDR}:{rig_module.REGISTRY_PORT}").exists():
        left.append("registry CA")
    return left


def test_a_killed_rig_is_cleaned_by_the_next_one(engine):
    missing = rig_unavailable()
    if missing:
        pytest.skip(f"swarm rig: {missing}")
    if swarm_state(engine) != "inactive":
        pytest.skip("the engine is already in a swarm: the killed rig would not have made it")
    attached = _service_attachments(engine, frozenset())  # the killed rig's record of them dies with it
    had_gwbridge = bool(engine.networks.list(names=[GWBRIDGE]))
    proc = subprocess.Popen([sys.executable, "-c", _START_AND_HANG], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()[-800:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert swarm_state(engine) == "active" and "netns" in _leftovers() and "processes" in _leftovers()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rig = SwarmRig(engine, registry=False)
        try:
            rig.start()
            assert len(engine.api.nodes()) == 2  # the stale swarm (with its stale worker node) was left
        finally:
            rig.stop()
            reconnect_service_containers(engine, known=attached)  # what the killed rig's init detached
    assert swarm_state(engine) == "inactive"
    assert _leftovers() == []
    # The killed rig's swarm init made a docker_gwbridge; the rig that left its swarm removes it.
    assert bool(engine.networks.list(names=[GWBRIDGE])) == had_gwbridge
