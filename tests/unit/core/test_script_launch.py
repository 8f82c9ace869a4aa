"""Script jobs in an image of the user's own (`cronium.core.script_launch`): the helper delivered over
stdin. The shell command runs here with the host's /bin/sh, the work dir moved to tmp_path; the
integration tests in `tests/integration/test_job_images.py` run it in containers."""
from __future__ import annotations

import hashlib
import subprocess

import pytest
from cronium.core.model import JobSpec
from cronium.core.script_launch import HELPER_DIR, HELPERS, script_command, script_in_image, script_stdin
from cronium.core.host.images.inputs import images_root
from cronium.plugins.docker_executor import job_argv, secret_block


def run_here(spec: JobSpec, tmp_path, interpreter: str | None = None) -> subprocess.CompletedProcess:
    """The job's argv (secret prelude included) with /work moved to tmp_path, fed the job's stdin."""
    argv = job_argv(spec.job_type, script_command(spec), None)
    argv = [a.replace(HELPER_DIR, str(tmp_path / ".cronium")).replace("/work/", f"{tmp_path}/") for a in argv]
    if interpreter:
        argv[3] = interpreter
    stdin = secret_block({}) + script_stdin(spec)
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=30)


def test_the_configured_image_gets_the_plain_script_command():
    spec = JobSpec(job_type="python", script=b"print(1)", script_name="a.py")
    assert script_command(spec) == ("/bin/sh", "-c", 'cat > "$1" && exec "$0" "$1"', "python3", "/work/a.py")
    assert script_stdin(spec) == b"print(1)"


def test_a_python_script_in_another_image_imports_the_delivered_helper(tmp_path):
    script = b"import cronium, sys\nprint(cronium.__file__)\nprint(sys.stdin.read() == '')"  # no newline at end
    result = run_here(JobSpec(job_type="python", script=script, script_name="a.py", image="mine"), tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == [f"{tmp_path}/.cronium/python/cronium.py", "True"]
    assert (tmp_path / "a.py").read_bytes() == script


@pytest.mark.parametrize("job_type", sorted(HELPERS))
def test_delivered_helper_files_are_byte_identical(tmp_path, job_type):
    spec = JobSpec(job_type=job_type, script=b"", image="mine")
    result = run_here(spec, tmp_path, interpreter="true")
    assert result.returncode == 0, result.stderr.decode()
    for rel in HELPERS[job_type][0]:
        want = images_root().joinpath("helpers", *rel.split("/")).read_bytes()
        got = (tmp_path / ".cronium" / rel).read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), rel


def test_a_bash_script_sources_the_delivered_helper_from_path(tmp_path):
    spec = JobSpec(job_type="bash", script=b"source cronium.sh && type -t cronium_output\n", image="mine")
    result = run_here(spec, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "function"


def test_a_missing_interpreter_is_named(tmp_path):
    spec = JobSpec(job_type="node", script=b"console.log(1)", image="mine")
    result = run_here(spec, tmp_path, interpreter="no-such-node-here")
    assert result.returncode == 127
    assert "this image has no node on its PATH, and a node script needs it" in result.stderr.decode()
    assert "docs/job-images.md" in result.stderr.decode()


def test_run_image_with_a_script_file_or_type_is_a_script_job(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print(1)")
    assert script_in_image([str(script)], None)
    assert script_in_image(["-"], "python")
    assert not script_in_image(["python3", "-c", "print(1)"], None)
    assert not script_in_image([str(tmp_path / "missing.py")], None)
    assert not script_in_image([], None)
