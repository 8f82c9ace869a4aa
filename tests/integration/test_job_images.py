"""Job images through the installed `cronium` executable (issue 14): scripts written for the original
Cronium images (their helper paths), scripts in a user's own image (`run --image IMAGE script`)."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
from docs_examples import example_block
from integration_util import cronium_executable

pytestmark = pytest.mark.integration

#: Scripts in the original Cronium images' style: the helper at the paths those images installed it.
ORIGINAL_STYLE = {
    "orig.sh": "#!/bin/bash\nsource /usr/local/bin/cronium.sh\n"
               "cronium_output \"{\\\"lang\\\": \\\"bash\\\", \\\"in\\\": $(cronium_input)}\"\n",
    "orig.py": "import importlib.util\n"
               "spec = importlib.util.spec_from_file_location(\n"
               "    'cronium', '/usr/local/lib/python3.12/site-packages/cronium.py')\n"
               "cronium = importlib.util.module_from_spec(spec)\n"
               "spec.loader.exec_module(cronium)\n"
               "cronium.output({'lang': 'python', 'in': cronium.input()})\n",
    "orig.js": "const cronium = require('/usr/local/lib/cronium.js');\n"
               "(async () => { await cronium.output({lang: 'node', in: await cronium.input()}); })()\n"
               "  .catch((e) => { console.error(e.message); process.exit(1); });\n",
}


def run_json(cli, tmp_path, name: str, body: str, *args: str) -> dict:
    script = tmp_path / name
    script.write_text(body)
    proc = cli("run", "--json", *args, str(script))
    assert proc.stdout, proc.stderr.decode()
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", sorted(ORIGINAL_STYLE))
def test_original_style_script_finds_the_helper_at_the_original_path(cli, tmp_path, name):
    result = run_json(cli, tmp_path, name, ORIGINAL_STYLE[name], "--input", '{"n": 1}')
    assert result["status"] == "succeeded", result
    assert result["output"]["in"] == {"n": 1}


# --- a script in an image of the user's own: the helper is delivered with the script ---------------

#: An image of "the user's own": Debian with python3 and bash, but no cronium helper in it.
PLAIN_IMAGE = "cronium/base:latest"


def test_python_script_in_an_image_without_the_helper_uses_the_runtime_api(cli, tmp_path):
    probe = cli("run", "--image", PLAIN_IMAGE, "--", "python3", "-c", "import cronium")
    assert probe.returncode == 1 and b"No module named 'cronium'" in probe.stderr
    result = run_json(cli, tmp_path, "mine.py", "import cronium\ncronium.output({'file': cronium.__file__, "
                      "'in': cronium.input()})\n", "--image", PLAIN_IMAGE, "--input", '{"n": 2}')
    assert result["status"] == "succeeded", result
    assert result["output"] == {"file": "/work/.cronium/python/cronium.py", "in": {"n": 2}}


def test_bash_script_from_stdin_in_an_image_without_the_helper_sources_it(cli):
    proc = cli("run", "-q", "--image", PLAIN_IMAGE, "--type", "bash", "-",
               input=b"source cronium.sh && type -t cronium_output\n")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "function"


def test_node_script_in_another_image_gets_the_delivered_helper(cli, tmp_path):
    node_image = os.environ.get("CRONIUM_IMAGES_NODE") or "cronium/node:latest"
    script = tmp_path / "mine.js"
    script.write_text("console.log(require.resolve('cronium'))\n")
    proc = cli("run", "-q", "--image", node_image, str(script))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "/work/.cronium/node/cronium/index.js"


def test_an_image_without_the_interpreter_fails_with_a_clear_message(cli, tmp_path):
    script = tmp_path / "mine.js"
    script.write_text("console.log(1)\n")
    proc = cli("run", "--image", PLAIN_IMAGE, str(script))
    assert proc.returncode == 127
    assert b"this image has no node on its PATH, and a node script needs it" in proc.stderr


def test_the_documented_from_cronium_python_image_runs_a_job(cli, tmp_path, engine):
    """docs/job-images.md: its Dockerfile, report.py and build commands, under a test-unique tag."""
    python_image = os.environ.get("CRONIUM_IMAGES_PYTHON") or "cronium/python:latest"
    tag = f"cronium-test/report:{uuid.uuid4().hex[:12]}"
    for name, lang in (("Dockerfile", "dockerfile"), ("report.py", "python")):
        (tmp_path / name).write_text(example_block(name, "job-images.md", lang).replace(
            "cronium/python:latest", python_image))
    commands = example_block("build-and-run.sh", "job-images.md", "sh")
    commands = commands.replace("cronium/python:latest", python_image).replace("myteam/report:1", tag)
    env = {**os.environ, "CRONIUM_CONFIG": str(cli.config),
           "PATH": f"{Path(cronium_executable()).parent}:{os.environ['PATH']}"}
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=tmp_path, env=env,
                              capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        assert "report ready" in proc.stdout.decode()
        assert engine.images.get(tag).attrs["Config"]["User"] == "10001:10001"
    finally:
        try:
            engine.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_a_missing_image_of_ones_own_is_named_with_the_fix(cli, tmp_path):
    script = tmp_path / "mine.py"
    script.write_text("print(1)\n")
    image = "cronium-test/never-built:1"
    proc = cli("run", "--image", image, str(script))
    err = proc.stderr.decode()
    assert proc.returncode != 0 and f"image '{image}' is not present on the Docker engine" in err
    assert f"docker build -t {image}" in err and "cronium never pulls" in err
    assert "cronium images build" not in err
