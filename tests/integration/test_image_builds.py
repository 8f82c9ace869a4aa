"""Build the real images on the local Docker engine and check what jobs and the orchestrator rely on.

The first build takes a few minutes (debootstrap + apt); later runs find everything up to date.
The default tags are used (the project's own images); tests that need a rebuild use test tags.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from cronium.core.host import images
from cronium.core.host.images import inputs

pytestmark = pytest.mark.integration

HELPERS = Path(str(inputs.images_root())) / "helpers"
HARDENED = dict(read_only=True, tmpfs={"/tmp": "", "/work": ""}, cap_drop=["ALL"],
                security_opt=["no-new-privileges"], network_disabled=True)


@pytest.fixture(scope="module")
def built(engine):
    tags = images.default_tags()
    results = images.build_images(engine, tags=tags)
    return tags, {r.name: r for r in results}


def run(engine, image: str, command, **kwargs) -> str:
    """Run a command to completion and return its output; the container and any anonymous volume
    are removed whatever happens."""
    options = dict(HARDENED)
    options.update(kwargs)
    container = engine.containers.create(image, command, **options)
    try:
        container.start()
        status = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode().strip()
        assert status == 0, f"{command} exited with {status}: {out}"
        return out
    finally:
        container.remove(force=True, v=True)


def test_every_image_is_built_and_labelled(engine, built):
    tags, results = built
    assert [r for r in images.IMAGE_NAMES] == list(results)
    for name, tag in tags.items():
        image = engine.images.get(tag)
        labels = image.attrs["Config"]["Labels"]
        assert labels[images.LABEL_NAME] == name
        assert len(labels[images.LABEL_INPUTS]) == 64
        assert "cronium.managed" not in labels
        assert image.id == results[name].image_id


def test_second_build_finds_everything_up_to_date(engine, built):
    tags, first = built
    progress = []
    again = images.build_images(engine, tags=tags, progress=lambda n, m: progress.append((n, m)))
    assert [(r.name, r.action) for r in again] == [(n, "up-to-date") for n in images.IMAGE_NAMES]
    assert [r.image_id for r in again] == [first[n].image_id for n in images.IMAGE_NAMES]
    assert {n for n, _ in progress} == set(images.IMAGE_NAMES)
    statuses = images.image_status(engine, tags)
    assert all(s.present and s.up_to_date for s in statuses), statuses
    assert all(s.size and s.size > 0 for s in statuses)


@pytest.mark.parametrize("name", images.JOB_IMAGES)
def test_job_image_runs_as_10001_with_its_env(engine, built, name):
    tags, _ = built
    out = run(engine, tags[name], ["sh", "-c", 'echo "$(id -u):$(id -g) $(id -un) $HOME $(pwd) '
                                               '$PYTHONDONTWRITEBYTECODE$PYTHONUNBUFFERED"'])
    assert out == "10001:10001 cronium /work /work 11"
    config = engine.images.get(tags[name]).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/work"


@pytest.mark.parametrize("name", images.IMAGE_NAMES)
def test_no_setuid_or_setgid_files(engine, built, name):
    tags, _ = built
    # as root with the default capabilities, so that find can read every folder
    out = run(engine, tags[name], ["find", "/", "-xdev", "-type", "f", "-perm", "/6000"],
              entrypoint=[], user="0", cap_drop=None, working_dir="/")
    assert out == ""


def test_job_images_have_their_tools(engine, built):
    tags, _ = built
    assert run(engine, tags["python"], ["python3", "-c", "import sys; print(sys.version_info[0])"]) == "3"
    out = run(engine, tags["bash"], ["bash", "-c", "command -v curl jq bash | wc -l; echo '{\"a\": 2}' | jq .a"])
    assert out.split() == ["3", "2"]
    assert run(engine, tags["node"], ["node", "-e", "console.log(1 + 1)"]) == "2"


def test_python_helper_imports(engine, built):
    if not (HELPERS / "python" / "cronium.py").is_file():
        pytest.skip("images/helpers/python/cronium.py is not written yet")
    tags, _ = built
    for name in images.JOB_IMAGES:
        out = run(engine, tags[name], ["python3", "-c", "import cronium; print(cronium.__file__)"])
        assert out == "/opt/cronium/helpers/python/cronium.py", name


def test_node_helper_requires(engine, built):
    if not (HELPERS / "node" / "cronium" / "index.js").is_file():
        pytest.skip("images/helpers/node/cronium/index.js is not written yet")
    tags, _ = built
    out = run(engine, tags["node"], ["node", "-e", "console.log(require.resolve('cronium'))"])
    assert out == "/opt/cronium/helpers/node/cronium/index.js"


def test_bash_helper_sources_from_path(engine, built):
    if not (HELPERS / "bash" / "cronium.sh").is_file():
        pytest.skip("images/helpers/bash/cronium.sh is not written yet")
    tags, _ = built
    out = run(engine, tags["bash"], ["bash", "-c", "source cronium.sh && type -t cronium_output"])
    assert out == "function"


def test_sidecar_image_imports_its_dependencies(engine, built):
    tags, _ = built
    out = run(engine, tags["sidecar"], ["python3", "-c",
              "import sanic, cryptography, pluggy, cronium.sidecar, cronium.sidecar.resp, cronium.sidecar.tokens, os; "
              "print(os.getuid(), cronium.sidecar.__file__)"], entrypoint=[])
    assert out == "10001 /opt/cronium/lib/cronium/sidecar/__init__.py"
    config = engine.images.get(tags["sidecar"]).attrs["Config"]
    assert config["Entrypoint"] == ["python3", "-m", "cronium.sidecar"]
    assert config["User"] == "10001:10001"
    assert "PYTHONPATH=/opt/cronium/lib:/opt/cronium/site" in config["Env"]


def test_sidecar_bytecode_is_precompiled(engine, built):
    tags, _ = built
    # with a read-only root nothing can be compiled at start-up: every module must load from a .pyc
    out = run(engine, tags["sidecar"], ["sh", "-c", "python3 -v -c 'import cronium.sidecar, sanic, redis.asyncio, jwt' "
                                                    "2>&1 | grep -c '^# code object from .*\\.py$' || true"],
              entrypoint=[])
    assert out == "0"


def test_redis_image_runs_as_redis_with_data_dir(engine, built):
    tags, _ = built
    out = run(engine, tags["redis"], ["sh", "-c", "id -un; stat -c %U /data; redis-server --version | cut -d' ' -f1-2"],
              entrypoint=[])
    assert out.splitlines() == ["redis", "redis", "Redis server"]


def test_changed_input_rebuilds_that_image_only(engine, built, tmp_path, monkeypatch):
    tags, first = built
    root = tmp_path / "images"
    shutil.copytree(Path(str(inputs.images_root())), root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(inputs, "images_root", lambda: root)
    marker = uuid.uuid4().hex[:8]
    test_tag = f"cronium-test/python:{marker}"
    test_tags = {**tags, "python": test_tag}
    dockerfile = root / "python" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"# test {marker}\n")  # an image of its own
    try:
        one = images.build_images(engine, tags=test_tags, names=["python"])
        assert [(r.name, r.action) for r in one] == [("base", "up-to-date"), ("python", "built")]
        dockerfile.write_text(dockerfile.read_text() + "# one more byte\n")
        two = images.build_images(engine, tags=test_tags, names=["python"])
        assert [(r.name, r.action) for r in two] == [("base", "up-to-date"), ("python", "built")]
        assert two[1].image_id != one[1].image_id
        three = images.build_images(engine, tags=test_tags, names=["python"])
        assert three[1].action == "up-to-date" and three[1].image_id == two[1].image_id
        # the image the rebuild replaced was removed
        import docker.errors

        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(one[1].image_id)
    finally:
        try:
            engine.images.remove(test_tag, force=True)
        except Exception:  # noqa: BLE001
            pass
    # the project's own python image was not touched
    assert engine.images.get(tags["python"]).id == first["python"].image_id


def test_base_from_an_existing_image(engine, built):
    """`--base IMAGE`: a thin image FROM it (here the local debootstrap base stands in for python:3.12-slim)."""
    tags, first = built
    test_tag = f"cronium-test/base:{uuid.uuid4().hex[:8]}"
    try:
        out = images.build_images(engine, tags={**tags, "base": test_tag}, names=["base"], base=tags["base"])
        assert [(r.name, r.action) for r in out] == [("base", "built")]
        image = engine.images.get(test_tag)
        assert image.attrs["Config"]["Labels"][images.LABEL_SOURCE] == tags["base"]
        assert run(engine, test_tag, ["python3", "-c", "print('ok')"]) == "ok"
        again = images.build_images(engine, tags={**tags, "base": test_tag}, names=["base"], base=tags["base"])
        assert again[0].action == "up-to-date"
        status = {s.name: s for s in images.image_status(engine, {**tags, "base": test_tag}, base=tags["base"])}
        assert status["base"].up_to_date
        # the same image judged against the debootstrap recipe is not up to date
        status = {s.name: s for s in images.image_status(engine, {**tags, "base": test_tag})}
        assert not status["base"].up_to_date
    finally:
        try:
            engine.images.remove(test_tag, force=True)
        except Exception:  # noqa: BLE001
            pass
