"""A plugin from a plugins directory, end to end through the installed `cronium` executable: the
documented `wrapper=True` implementation of `job_finished` (docs/plugins.md, job_marker.py) runs on
every job, also when another plugin's `job_finished` fails."""
from __future__ import annotations

import json

import pytest
from docs_examples import python_example

pytestmark = pytest.mark.integration


@pytest.fixture
def marker_plugin(cli, tmp_path):
    """A plugins directory holding the documented job_marker.py; its markers go to tmp_path/markers."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "job_marker.py").write_text(python_example("job_marker.py"))
    markers = tmp_path / "markers"
    with open(cli.config, "a") as fh:
        fh.write(f'[plugin.job_marker]\ndir = "{markers}"\n')
    return folder, markers


def run_json(cli, script, *global_args, env=None) -> tuple[int, dict]:
    proc = cli(*global_args, "run", "--json", str(script), env=env)
    return proc.returncode, json.loads(proc.stdout)


def test_wrapper_on_job_finished_from_plugins_dir_runs_on_every_job(cli, marker_plugin, tmp_path):
    folder, markers = marker_plugin
    ok = tmp_path / "ok.py"
    ok.write_text("print('fine')\n")
    failing = tmp_path / "exit3.sh"
    failing.write_text("echo failing; exit 3\n")

    code, succeeded = run_json(cli, ok, "--plugins-dir", str(folder))
    assert code == 0 and succeeded["status"] == "succeeded"
    # the installed test plugin `recorder` fails in job_finished: the wrapper still writes its marker
    code, failed = run_json(cli, failing, "--plugins-dir", str(folder),
                            env={"CRONIUM_RECORDER_FILE": str(tmp_path / "recorder.jsonl"),
                                 "CRONIUM_RECORDER_RAISE": "job_finished"})
    assert code == 3 and failed["status"] == "failed"
    assert any("plugin recorder failed in job_finished" in w for w in failed["warnings"]), failed["warnings"]

    assert (markers / succeeded["execution_id"]).read_text() == "succeeded 0\n"
    assert (markers / failed["execution_id"]).read_text() == "failed 3\n"
    assert sorted(p.name for p in markers.iterdir()) == sorted([succeeded["execution_id"], failed["execution_id"]])


def test_plugins_dir_from_the_environment(cli, marker_plugin, tmp_path):
    folder, markers = marker_plugin
    ok = tmp_path / "ok.sh"
    ok.write_text("echo fine\n")
    code, result = run_json(cli, ok, env={"CRONIUM_PLUGINS_DIR": str(folder)})
    assert code == 0 and (markers / result["execution_id"]).read_text() == "succeeded 0\n"


def test_cronium_plugins_lists_the_file_with_source_directory(cli, marker_plugin):
    folder, _ = marker_plugin
    for args, env in ((["--plugins-dir", str(folder)], None), ([], {"CRONIUM_PLUGINS_DIR": str(folder)})):
        proc = cli(*args, "plugins", "--json", env=env)
        assert proc.returncode == 0, proc.stderr.decode()
        listed = {p["name"]: p for p in json.loads(proc.stdout)}
        marker = listed["job_marker"]
        assert (marker["source"], marker["path"], marker["enabled"], marker["hooks"]) == \
            ("directory", str(folder / "job_marker.py"), True, ["job_finished"])
        assert listed["token"]["source"] == "builtin"
    text = cli("--plugins-dir", str(folder), "plugins").stdout.decode()
    assert f"job_marker         enabled   directory  {folder / 'job_marker.py'}" in text.splitlines()
