"""The built-in `security` plugin: the hardening every container gets (cronium.plugins.security)."""
from __future__ import annotations

import json

import pytest
from cronium.core.config import parse_size
from cronium.core.errors import SecurityNotApplied
from cronium.core.executor import REQUIRED_SETTINGS, merge_options, require_security
from cronium.core.model import JobSpec, Resources
from cronium.core.spec import resolve
from cronium.plugins import security
from cronium.plugins.security import build_options, container_options, load_seccomp

MIB = 1024 * 1024


def options(**overrides):
    kwargs = dict(user="10001:10001", memory=256 * MIB, swap=0, cpus=0.5, pids=128,
                  tmpfs={"/tmp": "rw,size=1m", "/work": "rw,size=1m"}, seccomp=None, working_dir="/work",
                  env={"HOME": "/work"})
    kwargs.update(overrides)
    return build_options(**kwargs)


def test_build_options_hardening():
    opts = options()
    hc = opts.host_config
    assert opts.user == "10001:10001"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in hc["SecurityOpt"]
    assert hc["Memory"] == 256 * MIB
    assert hc["MemorySwap"] == hc["Memory"]  # no swap
    assert hc["NanoCpus"] == 500_000_000
    assert hc["PidsLimit"] == 128
    assert hc["Privileged"] is False
    assert set(hc["Tmpfs"]) == {"/tmp", "/work"}
    assert opts.working_dir == "/work" and opts.env == {"HOME": "/work"}
    # it guarantees every setting the core requires, and the core agrees
    assert set(REQUIRED_SETTINGS) <= set(opts.applied)
    require_security(merge_options([opts]), "job")


def test_build_options_swap_and_seccomp():
    opts = options(swap=64 * MIB, seccomp='{"defaultAction":"SCMP_ACT_ERRNO"}')
    assert opts.host_config["MemorySwap"] == 256 * MIB + 64 * MIB
    assert 'seccomp={"defaultAction":"SCMP_ACT_ERRNO"}' in opts.host_config["SecurityOpt"]
    assert "seccomp profile" in opts.applied
    assert not any(o.startswith("seccomp=") for o in options().host_config["SecurityOpt"])


# --- seccomp -------------------------------------------------------------------------------------

def test_builtin_strict_seccomp_is_compact_json():
    text = load_seccomp("builtin:strict")
    parsed = json.loads(text)
    assert "defaultAction" in parsed
    assert text == json.dumps(parsed, separators=(",", ":"))
    assert "\n" not in text


def test_default_seccomp_means_the_engines_own():
    assert load_seccomp("default") is None


def test_seccomp_from_a_file_sends_its_content(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}, indent=4))
    text = load_seccomp(str(path))
    assert json.loads(text) == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    assert str(path) not in text


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '{"syscalls": []}'])
def test_bad_seccomp_file_refuses_to_run(tmp_path, content):
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SecurityNotApplied) as info:
        load_seccomp(str(path))
    assert str(path) in str(info.value)
    assert info.value.phase == "security"


def test_unknown_builtin_seccomp_refuses():
    with pytest.raises(SecurityNotApplied):
        load_seccomp("builtin:no-such-profile")


# --- the hook ------------------------------------------------------------------------------------

class FakeEngine:
    """Answers `info()` like a Docker engine with (or without) seccomp support."""

    def __init__(self, seccomp: bool):
        self.seccomp = seccomp

    def info(self):
        return {"SecurityOptions": ["name=seccomp,profile=builtin"] if self.seccomp else []}


@pytest.fixture
def runtime_for(stand_in_runtime, monkeypatch):
    monkeypatch.setattr(security, "_engine_seccomp", {})

    def make(flags=None, engine=None):
        rt = stand_in_runtime(flags)
        rt.docker = engine
        return rt

    return make


def execution(rt, **fields):
    spec = JobSpec(job_type="python", script=b"print(1)", **fields)
    return resolve(spec, rt.config, owner=rt.owner).execution


def test_job_container_options_from_the_strict_profile(runtime_for):
    rt = runtime_for()  # no engine needed: the strict profile ships its own seccomp profile
    ex = execution(rt, profile="strict", resources=Resources(cpus=0.25))
    opts = container_options(execution=ex, role="job", runtime=rt)
    profile = rt.config.profile("strict")
    hc = opts.host_config
    assert opts.user == profile["user"]
    assert hc["Memory"] == parse_size(profile["memory"]) == hc["MemorySwap"]
    assert hc["NanoCpus"] == 250_000_000
    assert hc["PidsLimit"] == profile["pids"]
    assert hc["ReadonlyRootfs"] is True and hc["CapDrop"] == ["ALL"]
    assert any(o.startswith("seccomp={") for o in hc["SecurityOpt"])
    assert "/tmp" in hc["Tmpfs"] and "/work" in hc["Tmpfs"]
    assert "uid=10001" in hc["Tmpfs"]["/work"] and "mode=0700" in hc["Tmpfs"]["/work"]
    assert f"size={parse_size(profile['tmpfs_size'])}" in hc["Tmpfs"]["/tmp"]
    assert opts.working_dir == "/work" and opts.env["HOME"] == "/work"
    require_security(merge_options([opts]), "job")


def test_sidecar_container_options_use_sidecar_limits(runtime_for):
    rt = runtime_for({"sidecar.memory": "80m", "sidecar.pids": 40, "sidecar.cpus": 0.75})
    ex = execution(rt, profile="strict")
    opts = container_options(execution=ex, role="sidecar", runtime=rt)
    hc = opts.host_config
    assert hc["Memory"] == 80 * MIB == hc["MemorySwap"]
    assert hc["PidsLimit"] == 40 and hc["NanoCpus"] == 750_000_000
    assert set(hc["Tmpfs"]) == {"/tmp"}
    assert "noexec" in hc["Tmpfs"]["/tmp"]
    require_security(merge_options([opts]), "sidecar")


def test_default_profile_needs_engine_seccomp_support(runtime_for):
    rt = runtime_for(engine=FakeEngine(seccomp=True))
    ex = execution(rt)
    opts = container_options(execution=ex, role="job", runtime=rt)
    assert not any(o.startswith("seccomp=") for o in opts.host_config["SecurityOpt"])
    assert "seccomp (engine default)" in opts.applied

    rt = runtime_for(engine=FakeEngine(seccomp=False))
    with pytest.raises(SecurityNotApplied) as info:
        container_options(execution=execution(rt), role="job", runtime=rt)
    assert "seccomp" in str(info.value)


def test_profile_with_missing_seccomp_file_refuses(runtime_for, tmp_path):
    missing = tmp_path / "gone.json"
    rt = runtime_for({"profiles.default.seccomp": str(missing)})
    with pytest.raises(SecurityNotApplied) as info:
        container_options(execution=execution(rt), role="job", runtime=rt)
    assert str(missing) in str(info.value)
