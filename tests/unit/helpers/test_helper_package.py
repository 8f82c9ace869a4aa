"""The helper as a pip-installable package (packaging/cronium-helper): `import cronium` and
cronium.testing.runtime() on a job author's machine, alone and beside the orchestrator.

Everything is built and installed from the local checkout, offline (`--no-index`,
`--no-build-isolation`), into fresh virtual environments under tmp_path.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from docs_examples import python_example
from helper_harness import PY_HELPER, ROOT

PACKAGE = ROOT / "packaging" / "cronium-helper"
EXAMPLE_TEST = ROOT / "examples" / "test_hello.py"
# Run the example's test functions without pytest (the helper package needs nothing else).
RUN_TESTS = ("import runpy, sys; names = runpy.run_path(sys.argv[1]); "
             "tests = [f for n, f in names.items() if n.startswith('test_')]; [f() for f in tests]; "
             "print(len(tests), 'passed')")


def _run(*cmd, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _pip(*args) -> None:
    _run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args, "--no-index", "--no-deps", "-q")


def _venv(where: Path, with_test_deps: bool) -> Path:
    """A fresh venv (no pip); with_test_deps makes this project's dependencies (pytest, pluggy, …)
    importable through a .pth line, without this checkout's own (editable) cronium."""
    _run(sys.executable, "-m", "venv", "--without-pip", where)
    python = where / "bin" / "python"
    if with_test_deps:
        site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
        (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict:
    """Wheels of the helper and of the orchestrator, built from copies (the checkout stays clean)."""
    work = tmp_path_factory.mktemp("helper-package")
    helper_src = work / "cronium-helper"
    shutil.copytree(PACKAGE, helper_src, symlinks=False, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    orchestrator_src = work / "orchestrator"
    shutil.copytree(ROOT, orchestrator_src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "packaging"))
    out = work / "dist"
    for src in (helper_src, orchestrator_src):
        _pip("wheel", "--no-build-isolation", "-w", out, src)
    return {"helper": next(out.glob("cronium_helper-*.whl")), "orchestrator": next(out.glob("cronium-*.whl")),
            "orchestrator_src": orchestrator_src}


def test_the_package_ships_the_helper_of_the_job_images():
    assert (PACKAGE / "cronium" / "__init__.py").resolve() == PY_HELPER.resolve()


def test_the_runtime_tests_the_example_and_the_documented_test_pass_from_the_checkout(tmp_path):
    documented = tmp_path / "test_my_job.py"
    documented.write_text(python_example("test_my_job.py", page="runtime-api.md"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", ROOT,
                           PACKAGE / "tests", EXAMPLE_TEST, documented], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(PACKAGE)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "11 passed" in proc.stdout  # 8 of packaging/cronium-helper/tests, 2 of the example, 1 documented


@pytest.mark.slow
def test_installed_alone_a_job_script_is_unit_tested_without_docker(wheels, tmp_path):
    python = _venv(tmp_path / "venv", with_test_deps=False)
    _pip("--python", python, "install", wheels["helper"])
    probe = _run(python, "-c", "import cronium, importlib.util; "
                 "print(cronium.__file__, importlib.util.find_spec('cronium.core') is None)", cwd=tmp_path).stdout
    assert "site-packages/cronium/__init__.py True" in probe  # the helper, and no orchestrator
    proc = _run(python, "-c", RUN_TESTS, EXAMPLE_TEST, cwd=tmp_path)
    assert "2 passed" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["orchestrator-wheel", "orchestrator-editable"])
def test_installed_beside_the_orchestrator_both_import(wheels, tmp_path, editable):
    python = _venv(tmp_path / "venv", with_test_deps=True)
    if editable:
        _pip("--python", python, "install", "--no-build-isolation", "-e", wheels["orchestrator_src"])
    else:
        _pip("--python", python, "install", wheels["orchestrator"])
    _pip("--python", python, "install", wheels["helper"])
    probe = _run(python, "-c", "import cronium, cronium.testing, cronium.core.cli, cronium.sidecar.app; "
                 "print(cronium.__file__, callable(cronium.get_variable))", cwd=tmp_path).stdout
    assert "site-packages/cronium/__init__.py True" in probe  # the helper API at `import cronium`
    assert "Usage: cronium" in _run(tmp_path / "venv" / "bin" / "cronium", "--help", cwd=tmp_path).stdout
    proc = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE_TEST, cwd=tmp_path)
    assert "2 passed" in proc.stdout
