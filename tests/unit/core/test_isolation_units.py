"""Isolation defences that can be checked without an engine: IPv6 off in what we ask the engine
for (and refusal of what it holds otherwise), the strict seccomp allowlist, the log file's opening
(symlinks, hard links, a folder of another user), the bounded container wait and the key prefix
that goes into ACL patterns. The engine's and the kernel's own view is checked by
tests/integration/test_isolation_engine.py."""
from __future__ import annotations

import json
import os
from importlib import resources

import pytest
from cronium.core.config import load_config
from cronium.core.errors import ConfigError, PhaseError, SecurityNotApplied
from cronium.plugins import _docker, network
from cronium.plugins.docker_executor import DockerJobHandle
from cronium.plugins.logs import FileSink

# --- IPv6 ----------------------------------------------------------------------------------------


class RecordingApi:
    """Records what would be posted to the engine; answers `inspect_network` with `held`."""

    def __init__(self, held=None):
        self.posted, self.held = [], held or {}
        self.api = self

    def _url(self, path):
        return path

    def _post_json(self, url, data):
        self.posted.append((url, data))
        return {"Id": "n1"}

    def _result(self, response, json=False):
        return response

    def inspect_network(self, network_id):
        return self.held


def test_networks_are_created_saying_ipv6_off_and_internal_explicitly():
    client = RecordingApi()
    _docker.create_network(client, "cronium-net-exec_a", internal=True, ipam={}, labels={}, options={})
    _docker.create_network(client, "cronium-net-exec_b", internal=False, ipam={}, labels={}, options={})
    (_, internal), (_, egress) = client.posted
    assert internal["EnableIPv6"] is False and internal["Internal"] is True
    assert egress["EnableIPv6"] is False and egress["Internal"] is False


@pytest.mark.parametrize("held, internal, what", [
    ({"EnableIPv6": True, "Internal": True}, True, "IPv6"),
    ({"EnableIPv6": False, "Internal": False}, True, "internal"),
    ({"EnableIPv6": False, "Internal": True}, False, "egress"),
])
def test_a_network_the_engine_holds_otherwise_is_refused(held, internal, what):
    with pytest.raises(SecurityNotApplied) as info:
        network.check_engine_view(RecordingApi(held), "n1", internal=internal)
    assert what in str(info.value)


def test_a_network_held_as_asked_passes():
    network.check_engine_view(RecordingApi({"EnableIPv6": False, "Internal": True}), "n1", internal=True)


class Execution:
    def __init__(self, egress: bool):
        self.egress = egress


@pytest.mark.parametrize("egress", [False, True])
@pytest.mark.parametrize("role", ["job", "sidecar"])
def test_every_container_gets_the_ipv6_off_sysctls(role, egress):
    options = network.container_options(execution=Execution(egress), role=role)
    assert options.host_config["Sysctls"] == {"net.ipv6.conf.all.disable_ipv6": "1",
                                              "net.ipv6.conf.default.disable_ipv6": "1"}
    assert "IPv6 off" in options.applied
    assert ("DnsOptions" in options.host_config) is (not egress)
    assert _docker.host_config_kwargs(dict(options.host_config))["sysctls"] == options.host_config["Sysctls"]


# --- strict seccomp ------------------------------------------------------------------------------

def strict_profile() -> dict:
    return json.loads(resources.files("cronium.config").joinpath("seccomp", "strict.json").read_text())


def allowed(profile: dict) -> set[str]:
    return {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}


def test_strict_seccomp_is_an_allowlist():
    profile = strict_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {"read", "write", "execve", "clone", "socket", "epoll_wait", "futex", "getrandom"} <= allowed(profile)


@pytest.mark.parametrize("syscall", ["keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "mount",
                                     "umount2", "unshare", "setns", "bpf", "perf_event_open", "userfaultfd",
                                     "io_uring_setup", "chroot", "pivot_root", "init_module", "kexec_load",
                                     "open_by_handle_at", "fsopen", "mknod", "syslog", "reboot", "clock_settime"])
def test_strict_seccomp_does_not_allow(syscall):
    assert syscall not in allowed(strict_profile())


def test_strict_seccomp_allows_clone_only_without_namespace_flags():
    rules = [r for r in strict_profile()["syscalls"] if "clone" in r["names"]]
    assert len(rules) == 1 and rules[0]["action"] == "SCMP_ACT_ALLOW"
    (arg,) = rules[0]["args"]
    assert arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["valueTwo"] == 0
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        assert arg["value"] & flag, hex(flag)  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET


# --- the log file --------------------------------------------------------------------------------

def test_a_symlink_planted_at_the_log_path_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "exec_a.log").symlink_to(target)
    with pytest.raises(PhaseError) as info:
        FileSink(logs / "exec_a.log")
    assert "symlink" in str(info.value)
    assert target.read_bytes() == b"precious"


def test_a_hard_link_planted_at_the_log_path_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    logs = tmp_path / "logs"
    logs.mkdir()
    os.link(target, logs / "exec_a.log")
    with pytest.raises(PhaseError):
        FileSink(logs / "exec_a.log")
    assert target.read_bytes() == b"precious"


def test_an_existing_log_file_of_our_own_is_truncated_and_made_private(tmp_path):
    path = tmp_path / "logs" / "exec_a.log"
    path.parent.mkdir()
    path.write_bytes(b"old contents")
    path.chmod(0o644)
    sink = FileSink(path)
    sink.close(True)
    assert path.read_bytes() == b"" and path.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_log_folder_of_another_user_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    os.chown(shared, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        FileSink(shared / "exec_a.log")
    assert info.value.key == "logs.dir" and "65534" in str(info.value)
    assert not (shared / "exec_a.log").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_configured_log_folder_of_another_user_is_refused_when_the_config_loads(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    os.chown(shared, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        load_config(flags={"logs.dir": str(shared)}, use_user_config=False, environ={}, cwd=tmp_path)
    assert info.value.key == "logs.dir" and info.value.exit_code == 2
    load_config(flags={"logs.dir": str(shared), "logs.file": False}, use_user_config=False, environ={}, cwd=tmp_path)


def test_a_log_folder_of_another_user_is_refused_as_any_user(tmp_path, monkeypatch):
    folder = tmp_path / "logs"
    folder.mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: folder.stat().st_uid + 1)
    with pytest.raises(ConfigError):
        FileSink(folder / "exec_a.log")


# --- the container wait --------------------------------------------------------------------------

class StuckEngine:
    """A container that stays running: `wait` times out like a real HTTP read timeout until the
    handle stops the container."""

    def __init__(self):
        self.api, self.calls, self.running = self, [], True

    def inspect_container(self, container_id):
        return {"State": {"Running": self.running, "ExitCode": 137 if not self.running else 0}}

    def wait(self, container_id, timeout=None, condition=None):
        import requests

        self.calls.append(("wait", timeout))
        assert timeout is not None, "an unbounded wait"
        if self.running:
            raise requests.exceptions.ReadTimeout("Read timed out.")

    def stop(self, container_id, timeout):
        self.calls.append(("stop", timeout))
        self.running = False


def test_the_wait_for_a_job_that_closed_its_output_ends_at_its_deadline():
    engine = StuckEngine()
    handle = DockerJobHandle(engine, "c1", None, {}, b"", timeout=3, grace=2)
    status = handle.exit_status()
    assert [c[0] for c in engine.calls] == ["wait", "stop", "wait"]
    assert 0 < engine.calls[0][1] <= 3
    assert status.exit_code == 137


# --- redis.key_prefix ----------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["*", "cronium*", "a?", "[ab]", "has space", "", "x" * 65, "ok\n"])
def test_a_key_prefix_that_would_change_acl_patterns_is_a_config_error(tmp_path, prefix):
    with pytest.raises(ConfigError) as info:
        load_config(flags={"redis.key_prefix": prefix}, use_user_config=False, environ={}, cwd=tmp_path)
    assert info.value.key == "redis.key_prefix" and "ACL" in info.value.expected


@pytest.mark.parametrize("prefix", ["cronium:", "team-a.cronium:", "x_1:"])
def test_plain_key_prefixes_are_accepted(tmp_path, prefix):
    cfg = load_config(flags={"redis.key_prefix": prefix}, use_user_config=False, environ={}, cwd=tmp_path)
    assert cfg["redis.key_prefix"] == prefix
