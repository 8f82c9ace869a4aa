"""`cronium stats` and the peak figures on the record, through the installed `cronium` executable."""
from __future__ import annotations

import json
import secrets

import pytest
from queue_util import wait_for

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
HOG_MIB = 48

# Holds HOG_MIB of memory (touched page by page) until the variable named by argv-less KEY is set.
SCRIPT = f"""
import time, cronium
hog = bytearray({HOG_MIB} * 1024 * 1024)
for i in range(0, len(hog), 4096):
    hog[i] = 1
deadline = time.time() + 90
while cronium.get_variable("KEY") is None and time.time() < deadline:
    time.sleep(0.2)
print("done", flush=True)
"""


def _stats(cli, execution: str) -> list[dict]:
    proc = cli("stats", "--json", execution)
    return json.loads(proc.stdout) if proc.returncode == 0 else []


def test_a_running_job_shows_in_stats_and_its_record_keeps_the_peaks(cli, tmp_path, engine):
    key = "stats_stop_" + secrets.token_hex(4)
    script = tmp_path / "hog.py"
    script.write_text(SCRIPT.replace("KEY", key))
    proc = cli("run", "--detach", str(script))
    assert proc.returncode == 0, proc.stderr.decode()
    execution = proc.stdout.decode().strip()
    try:
        # What the engine measures for the running job: the memory it holds, and its sidecar.
        rows = wait_for(lambda: [r for r in _stats(cli, execution)
                                 if r["role"] == "job" and r["memory_bytes"] >= HOG_MIB * MiB],
                        60, "the job in `cronium stats` holding its memory")
        assert rows[0]["execution"] == execution and rows[0]["job"] == "adhoc-hog" and rows[0]["pids"] >= 1
        both = {r["role"]: r for r in _stats(cli, execution)}
        assert both["sidecar"]["memory_bytes"] > 0 and both["sidecar"]["container"] == f"cronium-runtime-{execution}"
        table = cli("stats", "adhoc-hog").stdout.decode()
        assert table.splitlines()[0].split()[:3] == ["EXECUTION", "JOB", "ROLE"] and execution in table
    finally:
        assert cli("vars", "set", key, "true").returncode == 0
    wait_for(lambda: cli("inspect", execution, "--format", "{{.status}}").stdout == b"succeeded\n", 60,
             "the job to end")
    record = json.loads(cli("inspect", "--json", execution).stdout)
    assert record["memory_peak"] >= HOG_MIB * MiB, record
    assert record["cpu_seconds"] > 0, record
    shown = cli("inspect", execution).stdout.decode()
    assert "memory_peak" in shown and "MiB" in shown and "cpu_seconds" in shown
    cli("vars", "delete", key)
    wait_for(lambda: not engine.containers.list(all=True, filters={"label": f"cronium.execution={execution}"}),
             60, "the job's containers to be removed")
    assert _stats(cli, execution) == [] and cli("stats", execution).returncode == 1


def test_stats_names_what_it_did_not_find(cli):
    proc = cli("stats", "exec_0000000000000000")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "no running execution matches exec_0000000000000000" in err and "cronium ps" in err
    assert "Traceback" not in err
