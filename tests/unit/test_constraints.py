"""One constraints file pins the tested version of every dependency (images/constraints.txt, linked
from the repository root): the image inputs, the host install and CI must agree with it."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from cronium.core.errors import UsageError
from cronium.core.host.images import inputs

REPO = Path(__file__).resolve().parents[2]
IMAGES = Path(str(inputs.images_root()))
#: `name==version` wherever it is written: requirements lines, `pip install x==1` in Dockerfiles.
PIN_RE = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!-]*)")


def image_input_pins(root: Path) -> list[tuple[str, str, str]]:
    """(file, name, version) of every pin written in an image input (not in the constraints file)."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == inputs.CONSTRAINTS_FILE or "__pycache__" in path.parts:
            continue
        if path.name == "Dockerfile" or path.suffix == ".txt":
            for line in path.read_text().splitlines():
                if line.lstrip().startswith("#"):
                    continue
                found += [(str(path.relative_to(root)), n, v) for n, v in PIN_RE.findall(line)]
    return found


def mismatches(root: Path) -> list[str]:
    pins = inputs.constraints(root)
    return [f"images/{f}: {n}=={v}, constraints: {pins.get(inputs.normalize_name(n))}"
            for f, n, v in image_input_pins(root) if pins.get(inputs.normalize_name(n)) != v]


def test_every_pin_in_an_image_input_is_the_constraints_pin():
    assert mismatches(IMAGES) == []


def test_a_differing_pin_in_an_image_input_is_found(tmp_path):
    (tmp_path / "serve").mkdir()
    (tmp_path / inputs.CONSTRAINTS_FILE).write_text("click==8.5.1\n")
    (tmp_path / "serve" / "Dockerfile").write_text("FROM x\nRUN pip install click==8.1.0 && true\n")
    assert mismatches(tmp_path) == ["images/serve/Dockerfile: click==8.1.0, constraints: 8.5.1"]


def test_the_sidecar_plan_pins_every_requirement_from_the_constraints():
    plan = inputs.make_plan("sidecar", "t", parent_id="sha256:p", base=None, base_ref_id=None)
    pins = inputs.constraints()
    lines = plan.files["requirements.txt"].decode().splitlines()
    names = inputs.parse_pins((IMAGES / "sidecar" / "requirements.txt").read_text(), "req")
    assert len(lines) == len(names) > 10
    for line in lines:
        name, version = line.split("==")
        assert pins[inputs.normalize_name(name)] == version


def test_a_requirement_without_a_pin_or_with_another_pin_is_refused():
    with pytest.raises(UsageError, match="sanic has no pin in images/constraints.txt"):
        inputs.pinned_requirements("redis\nsanic\n", {"redis": "8.1.0"}, "images/sidecar/requirements.txt")
    with pytest.raises(UsageError, match=r"redis is pinned to 8.1.0, not 7.0"):
        inputs.pinned_requirements("redis==7.0\n", {"redis": "8.1.0"}, "images/sidecar/requirements.txt")
    with pytest.raises(UsageError, match="line 2"):
        inputs.parse_pins("ok\nredis>=5\n", "images/sidecar/requirements.txt")


def _requirements_of(dist: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every distribution `dist` needs here (with `extras`; markers evaluated), recursively."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(dist, extras)]
    while todo:
        name, want = todo.pop()
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (*want, "")):
                continue
            child = inputs.normalize_name(req.name)
            if child not in seen:
                seen.add(child)
                todo.append((child, tuple(req.extras)))
    return seen


def test_every_installed_dependency_of_cronium_is_pinned_at_its_tested_version():
    pins = inputs.constraints()
    needed = _requirements_of("cronium", ("test",))
    assert {"click", "docker", "sanic", "pytest", "cryptography"} <= needed
    assert sorted(n for n in needed if n not in pins) == []
    assert {n: metadata.version(n) for n in needed if metadata.version(n) != pins[n]} == {}


def test_the_root_constraints_file_is_the_packaged_one_and_the_installs_use_it():
    assert (REPO / "constraints.txt").resolve() == (REPO / "images" / "constraints.txt").resolve()
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt -e '.[test]'" in setup and "-c constraints.txt ./tests/plugin_dist" in setup
    assert '-c "$root/constraints.txt"' in (REPO / "scripts" / "serve-site.sh").read_text()  # cronium/serve
