"""Input hashing and build planning of cronium.core.host.images, without Docker."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cronium.core.errors import CroniumError
from cronium.core.host import images
from cronium.core.host.images import build, debootstrap, engine, inputs


def _copy_images_tree(tmp_path: Path) -> Path:
    """A private copy of the cronium.images package data to modify."""
    src = Path(str(inputs.images_root()))
    dst = tmp_path / "images"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


# --- compute_inputs_hash -----------------------------------------------------------------------

def test_same_inputs_same_hash():
    files = {"Dockerfile": b"FROM x\nRUN true\n", "common/a.sh": b"echo a\n"}
    assert images.compute_inputs_hash("python", files, {"parent": "sha256:1"}) == \
        images.compute_inputs_hash("python", dict(reversed(list(files.items()))), {"parent": "sha256:1"})


def test_one_dockerfile_byte_changes_the_hash():
    a = images.compute_inputs_hash("python", {"Dockerfile": b"FROM x\nRUN true\n"}, {"parent": "sha256:1"})
    b = images.compute_inputs_hash("python", {"Dockerfile": b"FROM x\nRUN truE\n"}, {"parent": "sha256:1"})
    assert a != b


def test_parent_id_changes_the_hash():
    files = {"Dockerfile": b"FROM x\n"}
    assert images.compute_inputs_hash("python", files, {"parent": "sha256:1"}) != \
        images.compute_inputs_hash("python", files, {"parent": "sha256:2"})


def test_name_path_and_boundaries_are_part_of_the_hash():
    files = {"Dockerfile": b"FROM x\n"}
    assert images.compute_inputs_hash("python", files) != images.compute_inputs_hash("bash", files)
    # moving a file or shifting bytes between path and content must not collide
    assert images.compute_inputs_hash("n", {"a/b": b"c"}) != images.compute_inputs_hash("n", {"a/bc": b""})
    assert images.compute_inputs_hash("n", {"a": b"x"}) != images.compute_inputs_hash("n", {"b": b"x"})
    assert images.compute_inputs_hash("n", {}, {"k": "v"}) != images.compute_inputs_hash("n", {}, {"kv": ""})


# --- plans over the real package data -----------------------------------------------------------

def test_every_image_has_its_build_inputs_in_the_package():
    root = Path(str(inputs.images_root()))
    assert (root / "base" / "debootstrap.sh").is_file()
    for name in images.IMAGE_NAMES:
        assert (root / name / "Dockerfile").is_file(), name
        text = (root / name / "Dockerfile").read_text()
        assert "ARG BASE" in text and "FROM ${BASE}" in text, name


def test_base_id_cascades_to_every_child_image():
    for name in images.IMAGE_NAMES[1:]:
        if name == "sidecar" and not _sidecar_available():
            continue
        a = inputs.make_plan(name, "t", parent_id="sha256:aaa", base=None, base_ref_id=None).inputs
        b = inputs.make_plan(name, "t", parent_id="sha256:bbb", base=None, base_ref_id=None).inputs
        assert a != b, name


def test_base_hash_depends_on_recipe_and_on_the_external_base(tmp_path, monkeypatch):
    deboot = inputs.make_plan("base", "t", parent_id=None, base=None, base_ref_id=None)
    assert deboot.debootstrap and "debootstrap.sh" in deboot.files
    ext1 = inputs.make_plan("base", "t", parent_id=None, base="python:3.12-slim", base_ref_id="sha256:1")
    ext2 = inputs.make_plan("base", "t", parent_id=None, base="python:3.12-slim", base_ref_id="sha256:2")
    ext3 = inputs.make_plan("base", "t", parent_id=None, base="debian:12", base_ref_id="sha256:1")
    assert not ext1.debootstrap and ext1.parent == "sha256:1"
    assert len({deboot.inputs, ext1.inputs, ext2.inputs, ext3.inputs}) == 4

    root = _copy_images_tree(tmp_path)
    monkeypatch.setattr(inputs, "images_root", lambda: root)
    assert inputs.make_plan("base", "t", parent_id=None, base=None, base_ref_id=None).inputs == deboot.inputs
    recipe = root / "base" / "debootstrap.sh"
    recipe.write_text(recipe.read_text().replace("minbase", "buildd"))
    assert inputs.make_plan("base", "t", parent_id=None, base=None, base_ref_id=None).inputs != deboot.inputs


def test_changing_a_packaged_dockerfile_or_script_changes_only_affected_images(tmp_path, monkeypatch):
    names = [n for n in images.IMAGE_NAMES[1:] if n != "sidecar" or _sidecar_available()]
    before = {n: inputs.make_plan(n, "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs for n in names}
    root = _copy_images_tree(tmp_path)
    monkeypatch.setattr(inputs, "images_root", lambda: root)
    same = {n: inputs.make_plan(n, "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs for n in names}
    assert same == before

    dockerfile = root / "python" / "Dockerfile"
    dockerfile.write_bytes(dockerfile.read_bytes() + b"#")
    after = {n: inputs.make_plan(n, "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs for n in names}
    assert after["python"] != before["python"]
    assert all(after[n] == before[n] for n in names if n != "python")

    script = root / "common" / "harden.sh"
    script.write_bytes(script.read_bytes() + b"\n")
    again = {n: inputs.make_plan(n, "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs for n in names}
    assert all(again[n] != after[n] for n in names)  # every child copies common/


def test_helper_files_go_into_the_right_images(tmp_path, monkeypatch):
    root = _copy_images_tree(tmp_path)
    monkeypatch.setattr(inputs, "images_root", lambda: root)
    for sub, rel in (("python", "cronium.py"), ("bash", "cronium.sh"), ("node", "cronium/index.js")):
        path = root / "helpers" / sub / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text("// placeholder\n")
    plans = {n: inputs.make_plan(n, "t", parent_id="sha256:p", base=None, base_ref_id=None) for n in images.JOB_IMAGES}
    for name in images.JOB_IMAGES:
        assert "helpers/python/cronium.py" in plans[name].files
        assert "helpers/bash/cronium.sh" in plans[name].files
    assert "helpers/node/cronium/index.js" in plans["node"].files
    assert "helpers/node/cronium/index.js" not in plans["python"].files
    redis_plan = inputs.make_plan("redis", "t", parent_id="sha256:p", base=None, base_ref_id=None)
    assert not any(p.startswith("helpers/") for p in redis_plan.files)

    before = plans["node"].inputs
    (root / "helpers" / "node" / "cronium" / "index.js").write_text("// changed\n")
    assert inputs.make_plan("node", "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs != before
    assert inputs.make_plan("python", "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs == plans["python"].inputs
    # byte caches never count
    pycache = root / "helpers" / "python" / "__pycache__"
    pycache.mkdir(exist_ok=True)
    (pycache / "cronium.cpython-311.pyc").write_bytes(b"junk")
    assert inputs.make_plan("python", "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs == plans["python"].inputs


def _sidecar_available() -> bool:
    try:
        images.sidecar_source_dir()
    except CroniumError:
        return False
    return True


def test_sidecar_plan_has_sources_as_a_package_and_the_pins(tmp_path, monkeypatch):
    if not _sidecar_available():
        pytest.skip("the cronium.sidecar package is not there yet")
    plan = inputs.make_plan("sidecar", "t", parent_id="sha256:p", base=None, base_ref_id=None)
    assert plan.files["lib/cronium/__init__.py"] == b""
    assert "lib/cronium/sidecar/__init__.py" in plan.files
    assert all(p.endswith(".py") for p in plan.files if p.startswith("lib/"))
    assert "requirements.txt" in plan.files

    root = _copy_images_tree(tmp_path)
    monkeypatch.setattr(inputs, "images_root", lambda: root)
    pins = root / "constraints.txt"  # the sidecar's pins come from the constraints file
    pins.write_text(pins.read_text().replace("pluggy==", "pluggy==0.0.1\n# was "))
    assert inputs.make_plan("sidecar", "t", parent_id="sha256:p", base=None, base_ref_id=None).inputs != plan.inputs


def test_sidecar_requirements_cover_what_the_image_imports():
    plan = inputs.make_plan("sidecar", "t", parent_id="sha256:p", base=None, base_ref_id=None)
    text = plan.files["requirements.txt"].decode()
    pins = {line.split("==")[0].strip().lower().replace("_", "-")
            for line in text.splitlines() if "==" in line and not line.lstrip().startswith("#")}
    for needed in ("sanic", "cryptography", "cffi", "pluggy", "sanic-routing"):
        assert needed in pins, needed
    assert all("==" in line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


# --- helpers -------------------------------------------------------------------------------------

def test_default_tags():
    tags = images.default_tags()
    assert set(tags) == set(images.IMAGE_NAMES)
    assert tags["sidecar"] == "cronium/sidecar:latest"
    assert images.default_tags("acme", "v1")["base"] == "acme/base:v1"


def test_wheel_platforms_follow_the_base_libc():
    tags = images.wheel_platforms(("glibc", "2.36"), "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags
    assert images.wheel_platforms(("glibc", "2.31"), "aarch64")[0] == "manylinux_2_31_aarch64"
    with pytest.raises(images.ImageBuildError, match="glibc"):
        images.wheel_platforms(("", ""), "x86_64")


def test_unknown_image_name_is_a_usage_error():
    with pytest.raises(CroniumError, match="unknown image"):
        images.build_images(object(), names=["pyhton"])


# --- the skip/rebuild decision, with a fake engine ----------------------------------------------

class _FakeImage:
    def __init__(self, image_id: str, labels: dict[str, str]):
        self.id = image_id
        self.attrs = {"Config": {"Labels": labels}, "Size": 1, "Created": "now"}


class _FakeImages:
    def __init__(self):
        self.by_tag: dict[str, _FakeImage] = {}

    def get(self, ref):
        import docker.errors

        if ref not in self.by_tag:
            raise docker.errors.ImageNotFound(ref)
        return self.by_tag[ref]

    def remove(self, image_id, noprune=False):
        pass


class _FakeClient:
    def __init__(self):
        self.images = _FakeImages()


def test_build_skips_current_images_and_rebuilds_changed_ones(monkeypatch):
    client = _FakeClient()
    tags = images.default_tags("cronium-fake", "t")
    names = ["base", "python", "bash"]
    built: list[str] = []
    counter = iter(range(1000))

    def fake_build(client_, plan, progress, *, nocache=False):
        built.append(plan.name)
        image = _FakeImage(f"sha256:{plan.name}{next(counter)}",
                           {images.LABEL_NAME: plan.name, images.LABEL_INPUTS: plan.inputs})
        client_.images.by_tag[plan.tag] = image
        return image.id

    monkeypatch.setattr(build, "_docker_build", fake_build)
    monkeypatch.setattr(build, "build_debootstrap_base", lambda c, plan, p: fake_build(c, plan, p))

    first = images.build_images(client, tags=tags, names=names)
    assert [r.action for r in first] == ["built"] * 3 and built == names

    built.clear()
    second = images.build_images(client, tags=tags, names=names)
    assert [r.action for r in second] == ["up-to-date"] * 3 and built == []
    assert [r.image_id for r in second] == [r.image_id for r in first]

    # python alone: base is included as its parent but not rebuilt
    built.clear()
    only = images.build_images(client, tags=tags, names=["python"])
    assert [(r.name, r.action) for r in only] == [("base", "up-to-date"), ("python", "up-to-date")]

    # force rebuilds what was asked for; a new base id cascades to the children
    built.clear()
    forced = images.build_images(client, tags=tags, names=["python"], force=True)
    assert built == ["python"] and forced[1].action == "built"
    built.clear()
    images.build_images(client, tags=tags, names=["base"], force=True)
    assert built == ["base"]
    built.clear()
    cascade = images.build_images(client, tags=tags, names=names)
    assert built == ["python", "bash"] and cascade[0].action == "up-to-date"

    # an image with the tag but without cronium's labels is rebuilt
    client.images.by_tag[tags["bash"]] = _FakeImage("sha256:foreign", {})
    built.clear()
    images.build_images(client, tags=tags, names=["bash"])
    assert built == ["bash"]


def test_progress_reporter_condenses_and_keeps_a_tail():
    seen = []
    rep = engine.Reporter("x", lambda n, m: seen.append((n, m)), every=3600, tail=3)
    for i in range(10):
        rep.line(f"noise {i}")
    rep.line("Step 2/5 : RUN x", important=True)
    assert ("x", "Step 2/5 : RUN x") in seen
    assert len(seen) == 2  # the first line and the important one
    assert list(rep.tail) == ["noise 8", "noise 9", "Step 2/5 : RUN x"]
    err = images.ImageBuildError("x", "boom", tail=list(rep.tail))
    assert "boom" in str(err) and "noise 9" in str(err)


def test_missing_debootstrap_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(debootstrap.shutil, "which", lambda name: None)
    plan = inputs.make_plan("base", "t", parent_id=None, base=None, base_ref_id=None)
    with pytest.raises(images.ImageBuildError, match="apt-get install debootstrap"):
        debootstrap.build_debootstrap_base(object(), plan, None)


def test_a_failing_docker_build_reports_the_failing_step_output(tmp_path):
    class Api:
        def build(self, **kwargs):
            assert kwargs["buildargs"] == {"BASE": "sha256:p"} and kwargs["pull"] is False
            yield {"stream": "Step 5/9 : RUN apt-get install nodejs\n"}
            yield {"stream": "E: Unable to locate package nodejs\n"}
            yield {"error": "The command returned a non-zero code: 100",
                   "errorDetail": {"message": "The command '/bin/sh -c apt-get install nodejs' returned a non-zero code: 100"}}

    class Client:
        api = Api()

    plan = inputs.make_plan("node", "cronium-fake/node:t", parent_id="sha256:p", base=None, base_ref_id=None)
    seen = []
    reporter = engine.Reporter("node", lambda n, m: seen.append(m))
    with pytest.raises(images.ImageBuildError) as info:
        build._run_build(Client(), tmp_path, plan, {}, reporter, nocache=False)
    text = str(info.value)
    assert "building image 'node' failed" in text and "non-zero code: 100" in text
    assert "Unable to locate package nodejs" in text and "Step 5/9" in text
    assert "Step 5/9 : RUN apt-get install nodejs" in seen
