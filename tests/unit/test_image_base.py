"""`images.build_base`: debootstrap (the offline default), registry (official image, falling back to
debootstrap when no registry is reachable) or an image. No network: the registry is a fake client
whose pull fails the way the engine's does without a registry."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker.errors
import pytest
from click.testing import CliRunner
from cronium.core.errors import UsageError
from cronium.core.host.images import base_source, build, inputs, status
from cronium.core.host.images.base_source import REGISTRY_BASES, REGISTRY_IMAGE, choose_base, resolve_base
from cronium.core.host.images.inputs import IMAGE_NAMES, make_plan


class FakeImages:
    def __init__(self, present=(), reachable=False):
        self.present, self.reachable, self.pulled = set(present), reachable, []

    def get(self, ref):
        if ref not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return type("Image", (), {"id": "sha256:" + ref, "attrs": {}})()

    def pull(self, ref):
        self.pulled.append(ref)
        if not self.reachable:
            raise docker.errors.APIError("500 Server Error", explanation="Get \"https://registry-1.docker.io/v2/\": "
                                         "dial tcp: lookup registry-1.docker.io: no such host")
        self.present.add(ref)


class FakeClient:
    def __init__(self, **kwargs):
        self.images = FakeImages(**kwargs)


def never(ref):
    raise AssertionError(f"pulled {ref}")


@pytest.mark.parametrize("setting", [None, "", "debootstrap"])
def test_debootstrap_is_the_default_and_never_pulls(setting):
    assert choose_base(setting, present=lambda ref: True, pull=never) == base_source.BaseChoice(None)


OFFICIAL = set(REGISTRY_BASES.values())


def test_registry_uses_the_official_images_when_present_without_pulling():
    choice = choose_base("registry", present=lambda ref: ref in OFFICIAL, pull=never)
    assert choice.ref == REGISTRY_IMAGE
    assert {name: choice.upstream(name) for name in IMAGE_NAMES} == REGISTRY_BASES


def test_registry_bases_are_official_debian_python_and_node_images():
    assert set(REGISTRY_BASES) == set(IMAGE_NAMES)
    assert REGISTRY_BASES["python"] == REGISTRY_BASES["sidecar"] == "python:3.11-slim-bookworm"
    assert REGISTRY_BASES["node"].startswith("node:") and REGISTRY_BASES["node"].endswith("-bookworm-slim")
    assert REGISTRY_BASES["redis"] == "debian:bookworm-slim"


def test_registry_pulls_each_official_image_once_when_a_registry_answers():
    client = FakeClient(reachable=True)
    choice = resolve_base(client, "registry")
    assert choice == base_source.registry_choice()
    assert sorted(client.images.pulled) == sorted(OFFICIAL)


def test_registry_falls_back_when_one_official_image_cannot_be_pulled():
    client = FakeClient(present=OFFICIAL - {REGISTRY_BASES["node"]}, reachable=False)
    choice = resolve_base(client, "registry")
    assert choice.ref is None and choice.upstreams == ()
    assert f"{REGISTRY_BASES['node']} could not be pulled" in choice.note


def test_registry_falls_back_to_debootstrap_with_a_message_when_unreachable():
    client = FakeClient(reachable=False)
    progress = []
    choice = resolve_base(client, "registry", lambda name, msg: progress.append(msg))
    assert choice.ref is None
    assert client.images.pulled == [REGISTRY_IMAGE]
    assert f"{REGISTRY_IMAGE} could not be pulled" in choice.note and "no such host" in choice.note
    assert "every image on a local Debian bootstrap instead" in choice.note
    assert progress == [f"pulling {REGISTRY_IMAGE} (images.build_base = registry)"]


def test_status_never_pulls_and_compares_with_debootstrap_then():
    client = FakeClient(reachable=True)
    assert resolve_base(client, "registry", may_pull=False).ref is None
    assert client.images.pulled == []


def test_an_image_reference_is_used_as_is_without_fallback():
    assert choose_base("debian:bookworm-slim", present=lambda ref: False, pull=never).ref == "debian:bookworm-slim"
    assert choose_base("debian", present=lambda ref: False, pull=never).ref == "debian"


def test_the_fallback_is_only_for_an_unreachable_registry():
    def broken(ref):
        raise RuntimeError("not a registry problem")

    with pytest.raises(RuntimeError):
        choose_base("registry", present=lambda ref: False, pull=broken)


def test_a_misspelled_word_is_refused_naming_the_fix():
    with pytest.raises(UsageError) as info:
        base_source.parse_setting("regsitry")
    assert "did you mean 'registry'" in info.value.hint


def test_build_images_falls_back_to_the_debootstrap_plan(monkeypatch):
    """build_images with `registry` and no registry: the base is built by debootstrap (stubbed)."""
    client = FakeClient(reachable=False)
    built, progress = [], []
    monkeypatch.setattr(build, "get_image", lambda c, tag: None)
    monkeypatch.setattr(build, "build_debootstrap_base", lambda c, plan, p: built.append(plan) or "sha256:new")
    results = build.build_images(client, names=["base"], base="registry", progress=lambda n, m: progress.append(m),
                                 prune=False)
    assert [r.action for r in results] == ["built"]
    assert built[0].debootstrap and built[0].extra["source"] == "debootstrap"
    assert any("could not be pulled" in m for m in progress)


def test_images_build_cli_warns_about_the_fallback(monkeypatch):
    from cronium.core.cli.main import cli

    client = FakeClient(reachable=False)
    monkeypatch.setattr("cronium.core.runtime.connect_docker", lambda cfg: client)
    seen = []
    monkeypatch.setattr("cronium.core.host.images.build_images", lambda c, **kw: seen.append(kw["base"]) or [])
    result = CliRunner().invoke(cli, ["images", "build", "-q", "--base", "registry"])
    assert result.exit_code == 0, result.output
    assert seen[0].ref is None and seen[0].upstreams == ()  # debootstrap
    assert f"warning: images.build_base = \"registry\": {REGISTRY_IMAGE} could not be pulled" in result.output


def test_status_of_a_registry_setting_needs_no_registry(monkeypatch):
    client = FakeClient(reachable=True)
    monkeypatch.setattr(status, "get_image", lambda c, tag: None)
    statuses = status.image_status(client, base="registry")
    assert statuses[0].name == "base" and not statuses[0].present
    assert client.images.pulled == []


def test_a_debootstrap_choice_has_no_upstream():
    assert all(base_source.BaseChoice(None).upstream(name) is None for name in IMAGE_NAMES)
    assert base_source.BaseChoice("debian:bookworm-slim").upstream("node") is None


def _built_plans(monkeypatch, base):
    """build_images with every image missing and every official image present: the plans it builds."""
    client = FakeClient(present=OFFICIAL, reachable=False)
    plans = []
    monkeypatch.setattr(build, "get_image", lambda c, ref: client.images.get(ref) if ref in OFFICIAL else None)
    monkeypatch.setattr(build, "build_debootstrap_base", lambda c, plan, p: plans.append(plan) or "sha256:boot")
    monkeypatch.setattr(build, "_docker_build", lambda c, plan, p, nocache: plans.append(plan) or f"sha256:{plan.name}")
    build.build_images(client, base=base, prune=False)
    return {plan.name: plan for plan in plans}


def test_registry_builds_each_image_from_its_official_image(monkeypatch):
    plans = _built_plans(monkeypatch, "registry")
    assert set(plans) == set(IMAGE_NAMES)
    assert plans["base"].parent == "sha256:" + REGISTRY_IMAGE and plans["base"].extra["ref"] == REGISTRY_IMAGE
    for name in set(IMAGE_NAMES) - {"base"}:
        # the build arg BASE (plan.parent) is the official image's id, not cronium/base
        assert plans[name].parent == "sha256:" + REGISTRY_BASES[name], name
        assert plans[name].extra["upstream"] == REGISTRY_BASES[name]
        assert plans[name].files["Dockerfile"].startswith(b"#") and b"FROM ${BASE}" in plans[name].files["Dockerfile"]


def test_debootstrap_builds_every_image_on_cronium_base(monkeypatch):
    plans = _built_plans(monkeypatch, "debootstrap")
    assert plans["base"].debootstrap
    for name in set(IMAGE_NAMES) - {"base"}:
        assert plans[name].parent == "sha256:boot" and "upstream" not in plans[name].extra, name


@pytest.mark.parametrize("name", [n for n in IMAGE_NAMES if n != "base"])
def test_the_inputs_hash_changes_with_the_base_choice(name):
    on_base = make_plan(name, "t", parent_id="sha256:boot", base=None, base_ref_id=None)
    upstream = REGISTRY_BASES[name]
    official = make_plan(name, "t", parent_id="sha256:official", base=REGISTRY_IMAGE, base_ref_id=None,
                         upstream=upstream)
    other = make_plan(name, "t", parent_id="sha256:official", base=REGISTRY_IMAGE, base_ref_id=None,
                      upstream=upstream + "-other")
    assert len({on_base.inputs, official.inputs, other.inputs}) == 3
    assert official.files == on_base.files  # the same Dockerfile and job-image script either way


def test_status_of_registry_compares_with_the_official_plans(monkeypatch):
    """images list with `registry` and the official images present: the job images are compared
    with the plans on their official images, without pulling."""
    client = FakeClient(present=OFFICIAL, reachable=True)
    monkeypatch.setattr(status, "get_image", lambda c, ref: client.images.get(ref) if ref in OFFICIAL else None)
    seen = []
    real = status.make_plan
    monkeypatch.setattr(status, "make_plan", lambda *a, **kw: seen.append(kw.get("upstream")) or real(*a, **kw))
    status.image_status(client, base="registry")
    assert seen == [None] + [REGISTRY_BASES[n] for n in IMAGE_NAMES[1:]] and client.images.pulled == []


def _node_package_step() -> str:
    """The node Dockerfile's RUN that installs what the base lacks, as a shell script."""
    text = (Path(str(inputs.images_root())) / "node" / "Dockerfile").read_text().replace("\\\n", "")
    runs = [line[4:] for line in text.splitlines() if line.startswith("RUN ") and "apt-install.sh" in line]
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("has, installed", [(("python3",), "nodejs"), (("python3", "node"), None),
                                            (("node",), "python3")])
def test_the_node_image_installs_only_what_its_base_lacks(tmp_path, has, installed):
    """On the bootstrap (python3, no node) Debian's nodejs; on the official Node image (node, no
    python3) Debian's python3 and never a second node."""
    bin_dir, build_dir = tmp_path / "bin", tmp_path / "build"
    bin_dir.mkdir()
    build_dir.mkdir()
    (bin_dir / "sh").symlink_to(shutil.which("sh"))
    for command in has:
        (bin_dir / command).write_text("#!/bin/sh\n")
        (bin_dir / command).chmod(0o755)
    record = tmp_path / "installed"
    (build_dir / "apt-install.sh").write_text(f'echo "$@" > {record}\n')
    script = _node_package_step().replace("/tmp/cronium-build", str(build_dir))
    subprocess.run(["/bin/sh", "-c", script], check=True, env={"PATH": str(bin_dir)})
    assert (record.read_text().split() if record.exists() else None) == (installed.split() if installed else None)
