"""scripts/setup.sh on Debian, Ubuntu and other systems: a fake /etc/os-release (CRONIUM_OS_RELEASE)
and a PATH without the tools it needs. Only `--check` and the refusal on other systems run here:
both stop before anything is installed or started."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "setup.sh"
ALL_DEBIAN = ["docker.io", "docker-compose", "debootstrap", "curl", "jq", "nodejs", "python3-venv",
              "docker-registry"]  # the swarm tests' private registry

OS_RELEASES = {
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "ubuntu": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
    "mint": 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n',
    "fedora": 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\n',
}


def run_setup(tmp_path, os_name: str, *args: str, bare: bool = True, **env_vars: str) -> subprocess.CompletedProcess:
    """setup.sh with a fake os-release; `bare`: on a PATH that has none of the tools it checks for."""
    release = tmp_path / "os-release"
    release.write_text(OS_RELEASES[os_name])
    env = {**os.environ, "CRONIUM_OS_RELEASE": str(release)}
    env.pop("CRONIUM_SWARM_TESTS", None)  # =0 would leave docker-registry out
    env.pop("CRONIUM_BROWSER_TESTS", None)  # =0 would leave the browser out
    env.update(env_vars)
    if bare:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in ("dirname", "id"):
            if not (bin_dir / tool).exists():
                (bin_dir / tool).symlink_to(shutil.which(tool))
        env.update(PATH=str(bin_dir), PYTHON=str(tmp_path / "no-python3"))
    return subprocess.run([shutil.which("bash"), str(SETUP), *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("os_name", ["debian", "ubuntu", "mint"])
def test_debian_and_ubuntu_get_their_package_names(tmp_path, os_name):
    result = run_setup(tmp_path, os_name, "--check")
    assert result.returncode == 0, result.stderr
    browser = ["chromium", "chromium-driver"] if os_name == "debian" else ["chromium-browser", "chromium-chromedriver"]
    extra = [] if os_name == "debian" else ["debian-archive-keyring"]  # Ubuntu's debootstrap needs Debian's keys
    assert result.stdout.split() == ALL_DEBIAN + browser + extra
    family = "debian" if os_name == "debian" else "ubuntu"
    assert f"{family}: missing system packages: " in result.stderr


def test_the_browser_is_left_out_with_cronium_browser_tests_0(tmp_path):
    result = run_setup(tmp_path, "debian", "--check", CRONIUM_BROWSER_TESTS="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ALL_DEBIAN


@pytest.mark.parametrize("args", [("--check",), ()])
def test_another_system_exits_2_with_what_to_install(tmp_path, args):
    result = run_setup(tmp_path, "fedora", *args)
    assert result.returncode == 2
    assert "this system (fedora) is neither Debian nor Ubuntu" in result.stderr
    for what in ("the Docker engine (20.10 or later)", "Docker Compose v1", "debootstrap", "curl", "jq",
                 "Node.js 18 or later", "Python 3.11 or later with venv"):
        assert f"  - {what}" in result.stderr, what
    assert result.stdout == ""


def test_another_system_with_everything_installed_goes_on(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dockerd", "docker-compose", "debootstrap", "curl", "jq", "node"):  # stubs: present, never run
        (bin_dir / tool).write_text("#!/bin/false\n")
        (bin_dir / tool).chmod(0o755)
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    release = tmp_path / "os-release"
    release.write_text(OS_RELEASES["fedora"])
    env = {**os.environ, "CRONIUM_OS_RELEASE": str(release), "PATH": str(bin_dir), "PYTHON": sys.executable,
           "VENV": str(tmp_path / "venv")}
    result = subprocess.run([shutil.which("bash"), str(SETUP), "--check"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "fedora: every system package setup needs is there" in result.stderr


def test_a_missing_os_release_counts_as_another_system(tmp_path):
    env = {**os.environ, "CRONIUM_OS_RELEASE": str(tmp_path / "none"), "PATH": str(tmp_path)}
    (tmp_path / "dirname").symlink_to(shutil.which("dirname"))
    result = subprocess.run([shutil.which("bash"), str(SETUP), "--check"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "this system (unknown)" in result.stderr
