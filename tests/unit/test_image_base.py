"""`images.build_base`: debootstrap (the offline default), registry (official image, falling back to
debootstrap when no registry is reachable) or an image. No network: the registry is a fake client
whose pull fails the way the engine's does without a registry."""
from __future__ import annotations

import docker.errors
import pytest
from click.testing import CliRunner
from cronium.core.errors import UsageError
from cronium.core.host.images import base_source, build, status
from cronium.core.host.images.base_source import REGISTRY_IMAGE, choose_base, resolve_base


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


def test_registry_uses_the_official_image_when_present_without_pulling():
    assert choose_base("registry", present=lambda ref: ref == REGISTRY_IMAGE, pull=never).ref == REGISTRY_IMAGE


def test_registry_pulls_when_a_registry_answers():
    client = FakeClient(reachable=True)
    choice = resolve_base(client, "registry")
    assert choice == base_source.BaseChoice(REGISTRY_IMAGE) and client.images.pulled == [REGISTRY_IMAGE]


def test_registry_falls_back_to_debootstrap_with_a_message_when_unreachable():
    client = FakeClient(reachable=False)
    progress = []
    choice = resolve_base(client, "registry", lambda name, msg: progress.append(msg))
    assert choice.ref is None
    assert client.images.pulled == [REGISTRY_IMAGE]
    assert f"{REGISTRY_IMAGE} could not be pulled" in choice.note and "no such host" in choice.note
    assert "local Debian bootstrap instead" in choice.note
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
    assert seen == [None]  # debootstrap
    assert f"warning: images.build_base = \"registry\": {REGISTRY_IMAGE} could not be pulled" in result.output


def test_status_of_a_registry_setting_needs_no_registry(monkeypatch):
    client = FakeClient(reachable=True)
    monkeypatch.setattr(status, "get_image", lambda c, tag: None)
    statuses = status.image_status(client, base="registry")
    assert statuses[0].name == "base" and not statuses[0].present
    assert client.images.pulled == []
