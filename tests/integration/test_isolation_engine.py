"""What the engine, the kernel and Redis actually hold for a running job — not the planned options.

Each test runs real jobs. The engine's view (`docker inspect` of the network and both containers)
and Redis's (`ACL GETUSER` of the sidecar's user) are read while the job runs: the job waits for a
variable that the test sets once it has looked. The kernel's view is probed from inside the job
(and the sidecar): IPv6 addresses, a link-local multicast send, name resolution, forbidden syscalls.
"""
from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from cronium.core import hookimpl
from cronium.core.config import parse_size

pytestmark = pytest.mark.integration

#: Waits until the test has inspected it (the test creates /tmp/inspected in the job container),
#: then probes IPv6 and DNS from inside the job and prints the result as one JSON line.
PROBE_JOB = """
import json, os, socket, time, urllib.request, cronium
inp = cronium.input()
while not os.path.exists('/tmp/inspected'):
    time.sleep(0.1)
def resolve(name, family=0):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 80, family)})
    except OSError:
        return []
res = {'inet6': open('/proc/net/if_inet6').read()}
try:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(b'x', ('ff02::1', 9, 0, socket.if_nametoindex('eth0')))
    res['ff02::1'] = 'sent'
except OSError as exc:
    res['ff02::1'] = 'blocked'
res['runtime-api v4'] = resolve('runtime-api', socket.AF_INET)
res['runtime-api v6'] = resolve('runtime-api', socket.AF_INET6)
res['outside'] = {name: resolve(name) for name in inp['outside']}
res['health'] = json.load(urllib.request.urlopen('http://runtime-api:8081/health', timeout=10))['status']
print(json.dumps(res))
"""


class Inspector:
    """On job_started: reads the engine's and Redis's view of the execution, then lets the job go
    on (creates the file it waits for)."""

    def __init__(self, runtime, redis_client):
        self.runtime, self.redis = runtime, redis_client
        self.seen: dict = {}

    @hookimpl
    def job_started(self, execution):
        api, eid = self.runtime.docker.api, execution.execution_id
        try:
            self.seen["network"] = api.inspect_network(f"cronium-net-{eid}")
            self.seen["job"] = api.inspect_container(f"cronium-job-{eid}")
            self.seen["sidecar"] = api.inspect_container(f"cronium-runtime-{eid}")
            self.seen["sidecar inet6"] = _exec(api, f"cronium-runtime-{eid}", ["cat", "/proc/net/if_inet6"])
            self.seen["acl"] = self.redis.acl_getuser(self.runtime.store.keys.acl_user(eid, execution.attempt_tag))
        finally:
            _exec(api, f"cronium-job-{eid}", ["touch", "/tmp/inspected"])


def _exec(api, container: str, command: list[str]) -> str:
    exec_id = api.exec_create(container, command)["Id"]
    return api.exec_start(exec_id).decode()


@pytest.fixture
def inspector(cronium_runtime, redis_client):
    plugin = Inspector(cronium_runtime, redis_client)
    cronium_runtime.pm.register(plugin, name="isolation-inspector")
    yield plugin
    cronium_runtime.pm.unregister(plugin)


def probe_input(inspector, cronium_redis) -> dict:
    """Names outside the job's network: the services network's Redis, by the name sidecars use
    and by its container name."""
    from urllib.parse import urlsplit

    api = inspector.runtime.docker.api
    containers = [c["Names"][0].lstrip("/") for c in api.containers(filters={"network": cronium_redis["network"]})
                  if "cronium.managed" not in (c.get("Labels") or {})]
    return {"outside": [urlsplit(cronium_redis["sidecar_url"]).hostname, *containers]}


def probe_output(cronium_runtime, result) -> dict:
    """The probe job's JSON line, from the file sink."""
    import json
    from pathlib import Path

    log = Path(cronium_runtime.config["logs.dir"]) / f"{result.execution_id}.log"
    return json.loads(log.read_text().strip().splitlines()[-1])


IPV6_OFF = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
#: Commands that reach beyond the sidecar's own keys or administer the server.
ADMIN_COMMANDS = {f"+{c}" for c in ("keys", "scan", "flushall", "flushdb", "config", "acl", "debug", "shutdown",
                                    "module", "script", "client", "migrate", "restore", "dump",
                                    "rename", "copy", "move", "swapdb", "monitor", "replicaof", "slaveof", "save")}


def assert_hardened(container: dict, *, memory: int, pids: int) -> None:
    hc = container["HostConfig"]
    assert container["State"]["Running"] is True
    assert hc["CapDrop"] == ["ALL"] and not hc.get("CapAdd")
    assert hc["ReadonlyRootfs"] is True and hc["Privileged"] is False
    assert "no-new-privileges:true" in hc["SecurityOpt"]
    assert hc["Memory"] == memory and hc["MemorySwap"] == memory  # no swap
    assert hc["PidsLimit"] == pids
    assert {k: hc["Sysctls"].get(k) for k in IPV6_OFF} == IPV6_OFF
    assert container["Config"]["User"] == "10001:10001"


def test_the_engine_and_redis_hold_what_was_planned_while_the_job_runs(cronium_run, cronium_runtime, inspector,
                                                                        cronium_redis):
    cfg = cronium_runtime.config
    result = cronium_run(PROBE_JOB, input=probe_input(inspector, cronium_redis), timeout=120)
    assert result.status == "succeeded", result
    eid, seen = result.execution_id, inspector.seen
    net_name = f"cronium-net-{eid}"

    assert seen["network"]["Internal"] is True and seen["network"]["EnableIPv6"] is False
    assert seen["network"]["Options"].get("com.docker.network.bridge.inhibit_ipv4") == "true"
    profile = cfg.profile("default")
    assert_hardened(seen["job"], memory=parse_size(profile["memory"]), pids=profile["pids"])
    assert_hardened(seen["sidecar"], memory=parse_size(cfg["sidecar.memory"]), pids=cfg["sidecar.pids"])
    # The job is on its own network only; the sidecar on that one (as runtime-api) and the
    # services network, from which it reaches Redis.
    assert set(seen["job"]["NetworkSettings"]["Networks"]) == {net_name}
    sidecar_nets = seen["sidecar"]["NetworkSettings"]["Networks"]
    assert set(sidecar_nets) == {net_name, cronium_redis["network"]}
    assert "runtime-api" in sidecar_nets[net_name]["Aliases"]
    assert seen["sidecar inet6"] == ""  # the kernel's view from inside the sidecar

    acl = seen["acl"]
    keys = acl["keys"].split() if isinstance(acl["keys"], str) else list(acl["keys"])
    keys = [k.decode() if isinstance(k, bytes) else k for k in keys]
    flags = [f.decode() if isinstance(f, bytes) else f for f in acl["flags"]]
    assert "allkeys" not in flags and "on" in flags
    assert keys and all("*" not in k and "?" not in k and "[" not in k for k in keys), keys
    prefix = cfg["redis.key_prefix"]
    assert all(k.lstrip("%RW~").startswith(prefix) for k in keys), keys
    assert any(eid in k for k in keys), keys
    commands = acl["commands"].split() if isinstance(acl["commands"], (str, bytes)) else acl["commands"]
    commands = [c.decode() if isinstance(c, bytes) else c for c in commands]
    # Single commands only: no category (`+@all`, `+@write`, ...) and not every command.
    assert "allcommands" not in flags and not [c for c in commands if c.startswith("+@")], commands
    assert not {c.lower() for c in commands} & ADMIN_COMMANDS, commands

    out = probe_output(cronium_runtime, result)
    assert out["inet6"] == "" and out["ff02::1"] == "blocked"
    assert out["runtime-api v4"] and out["runtime-api v6"] == []  # the positive control: runtime-api resolves
    assert len(out["outside"]) >= 2 and out["outside"] == {name: [] for name in out["outside"]}
    assert out["health"] == "healthy"


# --- an engine that gives the job network IPv6 -----------------------------------------------

@pytest.fixture
def engine_with_ipv6(monkeypatch):
    """Every job network the engine creates gets IPv6 (as an engine with IPv6 in its default
    network options would): a ULA subnet of a random /64, nothing routable."""
    from cronium.plugins import _docker

    create = _docker.create_network

    def with_ipv6(client, name, *, internal, ipam, labels, options):
        api = client.api
        ipam = {**ipam, "Config": [*ipam.get("Config", []), {"Subnet": f"fd5e:c0de:{random.randrange(1, 65535):x}::/64"}]}
        data = {"Name": name, "Driver": "bridge", "Options": options, "IPAM": ipam, "Labels": labels,
                "CheckDuplicate": True, "Internal": internal, "EnableIPv6": True}
        return api._result(api._post_json(api._url("/networks/create"), data=data), json=True)

    monkeypatch.setattr(_docker, "create_network", with_ipv6)
    return create


def test_a_job_network_the_engine_gives_ipv6_is_refused(cronium_run, engine_with_ipv6, docker_leftovers):
    result = cronium_run("print('never runs')")
    assert (result.status, result.error_phase) == ("error", "security"), result
    assert "IPv6 off on the job network" in result.error
    assert docker_leftovers(result.execution_id) == []


def test_no_ipv6_in_job_or_sidecar_even_on_a_network_with_ipv6(cronium_run, cronium_runtime, inspector, cronium_redis,
                                                                engine_with_ipv6, monkeypatch):
    """Defence in depth: were the network check bypassed, the sysctls still keep IPv6 off."""
    from cronium.plugins import network

    monkeypatch.setattr(network, "check_engine_view", lambda *args, **kwargs: None)
    result = cronium_run(PROBE_JOB, input=probe_input(inspector, cronium_redis), timeout=120)
    assert result.status == "succeeded", result
    assert inspector.seen["network"]["EnableIPv6"] is True  # the engine did give the network IPv6
    # The engine's DNS still answers AAAA for runtime-api (its IPAM assigned an address), but
    # neither kernel has an IPv6 address or can send a link-local packet.
    out = probe_output(cronium_runtime, result)
    assert out["inet6"] == "" and out["ff02::1"] == "blocked"
    assert inspector.seen["sidecar inet6"] == ""


# --- the strict seccomp profile ---------------------------------------------------------------

STRICT_ATTACKS = """
import ctypes, os, platform, cronium
libc = ctypes.CDLL(None, use_errno=True)
def attempt(call, *args):
    ctypes.set_errno(0)
    return 'allowed' if call(*args) != -1 else os.strerror(ctypes.get_errno())
keyctl = {'x86_64': 250, 'aarch64': 219}[platform.machine()]
cronium.output({
    'unshare(CLONE_NEWUSER)': attempt(libc.unshare, 0x10000000),
    'keyctl(GET_KEYRING_ID)': attempt(libc.syscall, keyctl, 0, -3, 0),
    'personality(ADDR_NO_RANDOMIZE)': attempt(libc.personality, 0x0040000),
})
"""


def test_a_job_under_strict_cannot_call_what_the_allowlist_leaves_out(cronium_run):
    result = cronium_run(STRICT_ATTACKS, profile="strict")
    assert result.status == "succeeded", result
    assert result.output == {"unshare(CLONE_NEWUSER)": "Operation not permitted",
                             "keyctl(GET_KEYRING_ID)": "Operation not permitted",
                             "personality(ADDR_NO_RANDOMIZE)": "Operation not permitted"}


HELPER_JOBS = {
    "python": ("import cronium, subprocess\n"
               "cronium.set_variable('strict_py', subprocess.run(['echo', 'forked'], capture_output=True, text=True).stdout)\n"
               "cronium.output({'read': cronium.get_variable('strict_py')})\n"),
    "bash": ('source cronium.sh\n'
             'word=$(echo forked)\n'
             'cronium_set_variable strict_sh "\\"$word\\\\n\\""\n'
             'cronium_output "{\\"read\\": $(cronium_get_variable strict_sh)}"\n'),
    "node": ("const cronium = require('cronium');\n"
             "const out = require('child_process').execSync('echo forked').toString();\n"
             "(async () => {\n  await cronium.setVariable('strict_js', out);\n"
             "  await cronium.output({ read: await cronium.getVariable('strict_js') });\n"
             "})().catch((err) => { console.error(err.message); process.exit(1); });\n"),
}


@pytest.mark.parametrize("job_type", sorted(HELPER_JOBS))
def test_python_bash_and_node_jobs_run_under_strict(cronium_run, job_type):
    result = cronium_run(HELPER_JOBS[job_type], job_type, profile="strict", namespace="strict-seccomp")
    assert (result.status, result.output) == ("succeeded", {"read": "forked\n"}), result


# --- the wait for a job that closed its output --------------------------------------------------

CLOSES_OUTPUT_JOB = "import os, time\nprint('closing', flush=True)\nos.close(1)\nos.close(2)\ntime.sleep(600)\n"


def test_a_job_that_closes_its_output_is_still_stopped_at_its_timeout(cronium_run, cronium_runtime):
    """On this engine the attach stream stays open until the container exits, so the lifecycle's
    own timeout stops such a job; the executor's bounded wait (for an engine that ends the stream
    earlier) is proved by tests/unit/core/test_isolation_units.py."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(cronium_run, CLOSES_OUTPUT_JOB, timeout=3)
        try:
            result = future.result(timeout=90)  # a hang guard, not a timing: the wait was unbounded
        finally:
            if not future.done():  # unblock the stuck run (only this runtime's job) so that it cleans up
                api = cronium_runtime.docker.api
                for c in api.containers(filters={"label": [f"cronium.owner={cronium_runtime.owner}",
                                                           "cronium.role=job"]}):
                    api.kill(c["Id"])
    assert result.status in ("failed", "timed_out"), result
    assert result.exit_code in (137, 143), result


# --- the log folder ------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_shared_log_folder_of_another_user_is_a_clear_error(cli, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    os.chown(shared, 65534, 65534)
    (tmp_path / "job.py").write_text("print('never logged')\n")
    done = cli("run", "job.py", env={"CRONIUM_LOGS_DIR": str(shared)})
    err = done.stderr.decode()
    assert done.returncode == 2 and "logs.dir" in err and "65534" in err, err
    assert "Traceback" not in err and "execution:" not in err  # refused before any job existed
    assert list(shared.iterdir()) == []
