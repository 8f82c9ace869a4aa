"""`security.per_execution_uid`: each execution's job runs as a uid of its own, claimed in Redis.

The attack: two jobs run at the same time; from the host kernel's point of view (the one thing
jobs share: a process on the host, or an escaped one, acting as job B's uid), job B must not be
able to signal job A's processes nor read A's files through /proc/<pid>/root. With one uid for
every job (the option off, the profile's user), both attacks succeed."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading

import pytest
from cronium.core.lifecycle import Cancellation
from cronium.core.reaper import reap
from cronium.core.testing.conformance import SLEEP_JOB
from queue_util import wait_for

pytestmark = pytest.mark.integration

LOW, HIGH = 200000, 200063
HOLD_JOB = """
import os, pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
secret = pathlib.Path('/work/secret')
secret.write_text('secret of ' + os.environ['CRONIUM_EXECUTION_ID'])
os.chmod(secret, 0o600)
print('uid', os.getuid(), os.getgid(), flush=True)
time.sleep(600)
"""


@pytest.fixture
def cronium_overrides():
    return {"security.per_execution_uid": True, "security.uid_range": f"{LOW}-{HIGH}"}


def running_jobs(engine) -> dict[str, dict]:
    """execution id -> `docker inspect` of its running job container."""
    found = engine.api.containers(filters={"label": ["cronium.managed=true", "cronium.role=job"], "status": "running"})
    out = {}
    for c in found:
        inspected = engine.api.inspect_container(c["Id"])
        out[inspected["Config"]["Labels"]["cronium.execution"]] = inspected
    return out


def as_uid(uid: int, pid: int) -> str:
    """On the host, as uid:gid `uid` (no groups, no capabilities): signal `pid` and read its
    /work/secret through /proc/<pid>/root. What happened, one line each."""
    def drop():
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    probe = ('if kill -0 "$1" 2>/dev/null; then echo "signal: allowed"; else echo "signal: denied"; fi; '
             'if s=$(cat "/proc/$1/root/work/secret" 2>/dev/null); then echo "read: $s"; else echo "read: denied"; fi')
    done = subprocess.run(["/bin/sh", "-c", probe, "probe", str(pid)], preexec_fn=drop, capture_output=True,
                          text=True, timeout=30, cwd="/")
    return (done.stdout + done.stderr).strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="the host-side probe changes uid: needs root")
def test_concurrent_jobs_get_their_own_uids_and_cannot_reach_each_other(cronium_run, cronium_runtime, engine):
    cancels = [Cancellation(), Cancellation()]
    results: list = [None, None]

    def run(i):
        results[i] = cronium_run(HOLD_JOB, cancel=cancels[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        jobs = wait_for(lambda: (lambda j: j if len(j) == 2 else None)(running_jobs(engine)), 120,
                        "both jobs to run")
        (a, job_a), (b, job_b) = sorted(jobs.items())
        uid_a, uid_b = (int(j["Config"]["User"].partition(":")[0]) for j in (job_a, job_b))
        assert uid_a != uid_b and LOW <= uid_a <= HIGH and LOW <= uid_b <= HIGH, (uid_a, uid_b)
        pid_a = job_a["State"]["Pid"]
        with open(f"/proc/{pid_a}/status") as fh:  # what the kernel holds, not the planned option
            assert f"Uid:\t{uid_a}\t{uid_a}\t{uid_a}\t{uid_a}" in fh.read()
        claims = {c["execution"]: c["uid"] for c in cronium_runtime.store.uids.claims()}
        assert claims.get(a) == uid_a and claims.get(b) == uid_b
        # Positive control: A's own uid reaches A's process and its file once the job wrote it.
        own = wait_for(lambda: (lambda out: out if "read: secret of" in out else None)(
            as_uid(uid_a, pid_a)), 60, "job A's secret, read as A's own uid")
        assert "signal: allowed" in own and f"secret of {a}" in own
        # The attack: B's uid against A's process and files.
        attack = as_uid(uid_b, pid_a)
        assert attack == "signal: denied\nread: denied", attack
    finally:
        for c in cancels:
            c.cancel("the test is done")
        for t in threads:
            t.join(120)
    assert [r.status for r in results] == ["cancelled", "cancelled"], results
    left = {c["execution"] for c in cronium_runtime.store.uids.claims()}
    assert not left & {a, b}, "the uids were not released at cleanup"


def test_the_job_prints_its_own_uid_and_works_in_its_files(cronium_run, cronium_runtime):
    result = cronium_run("import os, pathlib, subprocess\n"
                         "pathlib.Path('/work/f').write_text('x'); pathlib.Path('/tmp/g').write_text('y')\n"
                         "import cronium\n"
                         "cronium.output({'id': subprocess.run(['id', '-u'], capture_output=True, text=True).stdout,"
                         " 'home': os.environ['HOME'], 'owner': os.stat('/work').st_uid})\n")
    assert result.status == "succeeded", result
    uid = int(result.output["id"])
    assert LOW <= uid <= HIGH and result.output["owner"] == uid and result.output["home"] == "/work"
    assert all(c["execution"] != result.execution_id for c in cronium_runtime.store.uids.claims())


def test_the_reaper_frees_a_dead_owners_claim(cronium_runtime, cronium_flags):
    proc = subprocess.Popen([sys.executable, "-m", "cronium.core.testing.crash"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        proc.stdin.write(json.dumps({"flags": cronium_flags, "plugins": {}, "script": SLEEP_JOB}).encode())
        proc.stdin.close()
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        execution = proc.stdout.readline().decode().strip() if ready else ""
    finally:
        proc.send_signal(signal.SIGKILL)  # the orchestrating process dies mid-job, holding its uid
        proc.wait()
    assert execution.startswith("exec_"), proc.stderr.read().decode()[-2000:]
    held = [c for c in cronium_runtime.store.uids.claims() if c["execution"] == execution]
    assert len(held) == 1 and LOW <= held[0]["uid"] <= HIGH, held
    report = reap(cronium_runtime)
    assert f"uid-claim {held[0]['uid']} ({execution})" in report.removed, report
    assert [c for c in cronium_runtime.store.uids.claims() if c["execution"] == execution] == []
    assert execution in report.lost


@pytest.mark.parametrize("job_type, script", [
    ("bash", 'source cronium.sh\necho x > /work/f\ncronium_output "{\\"id\\": $(id -u), \\"home\\": \\"$HOME\\"}"\n'),
    ("node", "const c = require('cronium'); const fs = require('fs'); fs.writeFileSync('/work/f', 'x');\n"
             "c.output({ id: process.getuid(), home: process.env.HOME })"
             ".catch((e) => { console.error(e.message); process.exit(1); });\n"),
])
def test_bash_and_node_jobs_work_under_their_own_uid(cronium_run, job_type, script):
    result = cronium_run(script, job_type)
    assert result.status == "succeeded", result
    assert LOW <= int(result.output["id"]) <= HIGH and result.output["home"] == "/work"


def test_claims_are_atomic_exclusive_and_released_only_by_their_holder(cronium_runtime):
    from concurrent.futures import ThreadPoolExecutor

    from cronium.core.errors import UidRangeFull

    uids, low, high = cronium_runtime.store.uids, 300000, 300031
    names = [f"exec_{i:016x}.attempt" for i in range(32)]
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            got = list(pool.map(lambda n: uids.claim(n, low=low, high=high, info={}, ttl=60), names))
        assert sorted(got) == list(range(low, high + 1))  # 32 claims at once, 32 different uids
        assert uids.claim(names[0], low=low, high=high, info={}, ttl=60) == got[0]  # claiming again: the same
        with pytest.raises(UidRangeFull, match="widen security.uid_range"):
            uids.claim("exec_other.attempt", low=low, high=high, info={}, ttl=60)
        assert uids.release("exec_other.attempt", got[0]) is False  # not its uid: kept
        assert uids.release(names[0]) is True and uids.release(names[0]) is False
        assert uids.claim("exec_other.attempt", low=low, high=high, info={}, ttl=60) == got[0]
        names[0] = "exec_other.attempt"
    finally:
        for name in names:
            uids.release(name)
    assert [c for c in uids.claims() if low <= c["uid"] <= high] == []
