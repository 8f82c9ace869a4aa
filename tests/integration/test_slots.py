"""Pooled slots: network + booted sidecar + started job container, bound at claim
(docs/architecture.md, "Pooled slots"; plugins/slots.py, plugins/_slots.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import docker
import pytest
from cronium.core import JobSpec, Resources, hookimpl
from cronium.core.model import Secret
from queue_util import wait_for

pytestmark = pytest.mark.integration

#: What a job sees of itself, probed from inside: env, helper round trip, its cgroup limits (v1 and v2).
PROBE = b"""import json, os, cronium
def read(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
cronium.set_variable('mine', os.environ['MY_VAR'])
cronium.output({'env': {k: os.environ.get(k) for k in ('MY_VAR', 'SECRET_X', 'CRONIUM_EXECUTION_ID', 'HOME')},
                'token': os.environ['CRONIUM_EXECUTION_TOKEN'], 'var': cronium.get_variable('mine'),
                'memory': read('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max'),
                'pids': read('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max'),
                'cpu_quota': read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu.max'),
                'file': __file__, 'uid': os.getuid()})
"""


class _Seen:
    """Records, while each job runs, what the engine holds for its containers."""

    def __init__(self, client):
        self.client = client
        self.job: dict[str, dict] = {}
        self.sidecar: dict[str, dict] = {}

    @hookimpl
    def sidecar_started(self, execution, sidecar):
        self.sidecar[execution.execution_id] = self.client.api.inspect_container(sidecar.container_id)

    @hookimpl
    def job_started(self, execution, container_id):
        self.job[execution.execution_id] = self.client.api.inspect_container(container_id)


def _slot_objects(engine, owner: str) -> list[str]:
    mine = {"label": [f"cronium.owner={owner}", "cronium.role=slot"]}
    return [c["Names"][0] for c in engine.api.containers(all=True, filters=mine)] + \
        [n["Name"] for n in engine.api.networks(filters=mine)]


def _idle_slot(rt) -> bool:
    pool = rt.extension_if_present("slot-pool")
    return pool is not None and pool.idle_count() >= 1


@pytest.fixture
def warm(cronium_config, engine):
    """A long-lived runtime with an orchestrator, a recorder of what the engine holds, and a first
    job run so that a slot of the default python kind is being made."""
    from cronium.core.lifecycle import Orchestrator
    from cronium.core.runtime import Runtime

    rt = Runtime(cronium_config, warm_pool=True)
    seen = _Seen(engine)
    rt.pm.register(seen, name="slot-seen")
    orchestrator = Orchestrator(rt)
    rt.seen, rt.orchestrator = seen, orchestrator
    try:
        yield rt
    finally:
        orchestrator.close()
        rt.close()
    assert _slot_objects(engine, rt.owner) == []  # closing removed the idle slots


def _prime(rt, engine, **fields) -> None:
    first = rt.orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="w.py", **fields))
    assert first.status == "succeeded", first
    assert "slot" in first.timings and "network" in first.timings  # asked, none idle yet: the normal path
    wait_for(lambda: _idle_slot(rt), 60, "an idle slot")


def test_a_job_claims_a_slot_with_its_own_env_limits_and_nothing_in_the_config(warm, engine):
    _prime(warm, engine)
    spec = JobSpec(job_type="python", script=PROBE, script_name="probe.py", env={"MY_VAR": "mine-2"},
                   secret_env={"SECRET_X": Secret("s3cr3t-value")}, namespace="slot-a",
                   resources=Resources(memory=200 * 1024 * 1024, cpus=0.5, pids=50))
    result = warm.orchestrator.run(spec)
    assert result.status == "succeeded", result
    eid = result.execution_id
    # The timings show the claim: one `slot` phase, no network or sidecar set-up on the job's path.
    assert "slot" in result.timings and "network" not in result.timings and "sidecar" not in result.timings
    out = result.output
    assert out["env"] == {"MY_VAR": "mine-2", "SECRET_X": "s3cr3t-value", "CRONIUM_EXECUTION_ID": eid, "HOME": "/work"}
    assert out["var"] == "mine-2" and out["file"] == "/work/probe.py"
    # Limits from the spec, as the kernel holds them inside the job and the engine after the claim.
    assert (out["memory"], out["pids"]) == (str(200 * 1024 * 1024), "50"), out
    assert out["cpu_quota"].split()[0] == "50000", out  # 0.5 CPU of a 100 ms period
    job = warm.seen.job[eid]
    assert job["Name"] == f"/cronium-job-{eid}" and job["Config"]["Labels"]["cronium.role"] == "slot"
    held = job["HostConfig"]
    assert (held["Memory"], held["NanoCpus"], held["PidsLimit"]) == (200 * 1024 * 1024, 500_000_000, 50)
    # Env, secrets and the token went over stdin: the pooled container's config holds none of them.
    config_env = "\n".join(job["Config"]["Env"] or [])
    for value in ("mine-2", "s3cr3t-value", eid, out["token"], "CRONIUM_EXECUTION_TOKEN"):
        assert value not in config_env
    assert warm.seen.sidecar[eid]["Name"] == f"/cronium-runtime-{eid}"
    # Removed with its job; the claim record after it.
    assert engine.api.containers(all=True, filters={"name": eid}) == []
    assert warm.store.pool_claims.all("slot") == {}


def test_a_claim_with_the_limits_the_slot_was_made_with_updates_nothing_and_the_kernel_holds_them(warm, engine):
    first = warm.orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="w.py"))
    assert first.status == "succeeded" and "network" in first.timings, first  # the normal path: made a slot
    wait_for(lambda: _idle_slot(warm), 60, "an idle slot")
    api, updates = warm.docker.api, []
    request = api.request

    def counting(method, url, *args, **kwargs):  # the engine still answers every call
        if method.upper() == "POST" and url.rstrip("/").endswith("/update"):
            updates.append(url)
        return request(method, url, *args, **kwargs)

    api.request = counting
    try:
        result = warm.orchestrator.run(JobSpec(job_type="python", script=PROBE, script_name="probe.py",
                                               env={"MY_VAR": "same-limits"}))
    finally:
        api.request = request
    assert result.status == "succeeded" and "network" not in result.timings, result  # a claimed slot
    assert updates == []  # created with these limits: no update call
    created = warm.seen.job[first.execution_id]["HostConfig"]  # the normal path's container, as created
    held = warm.seen.job[result.execution_id]["HostConfig"]
    assert [held[k] for k in ("Memory", "MemorySwap", "NanoCpus", "PidsLimit")] == \
        [created[k] for k in ("Memory", "MemorySwap", "NanoCpus", "PidsLimit")]
    out = result.output  # and the kernel holds them inside the job
    assert (int(out["memory"]), int(out["pids"])) == (created["Memory"], created["PidsLimit"]), out
    assert int(out["cpu_quota"].split()[0]) == created["NanoCpus"] // 10_000, out  # of a 100 ms period


def test_a_second_execution_slot_never_sees_the_first_ones_token_or_variables(warm, engine):
    first_script = (b"import os, cronium\ncronium.set_variable('secret', 'ns-a-only')\n"
                    b"cronium.output({'token': os.environ['CRONIUM_EXECUTION_TOKEN']})\n")
    second_script = b"""import os, urllib.request, urllib.error, cronium
def status(token):
    req = urllib.request.Request(os.environ['CRONIUM_RUNTIME_API'] + '/executions/' + os.environ['CRONIUM_EXECUTION_ID']
                                 + '/variables/secret', headers={'Authorization': 'Bearer ' + token})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code
cronium.output({'first_token': status(cronium.input()['token']), 'own_token': status(os.environ['CRONIUM_EXECUTION_TOKEN']),
                'secret': cronium.get_variable('secret'), 'leftover': os.environ.get('FIRST_ONLY')})
"""
    _prime(warm, engine)
    first = warm.orchestrator.run(JobSpec(job_type="python", script=first_script, script_name="a.py",
                                          namespace="ns-a", env={"FIRST_ONLY": "x"}))
    assert first.status == "succeeded" and "network" not in first.timings, first
    wait_for(lambda: _idle_slot(warm), 60, "another idle slot")
    second = warm.orchestrator.run(JobSpec(job_type="python", script=second_script, script_name="b.py",
                                           namespace="ns-b", input={"token": first.output["token"]}))
    assert second.status == "succeeded" and "network" not in second.timings, second
    ids = [warm.seen.job[r.execution_id]["Id"] for r in (first, second)]
    assert ids[0] != ids[1]  # never one slot for two executions
    assert second.output["first_token"] in (401, 403), second.output
    assert (second.output["own_token"], second.output["secret"], second.output["leftover"]) == (404, None, None)


def test_a_spec_a_held_container_cannot_take_runs_the_normal_path(warm, engine):
    _prime(warm, engine)
    pool = warm.extension_if_present("slot-pool")
    asked = pool.counts["hits"] + pool.counts["misses"]
    image = warm.config["images.python"]
    for spec in (JobSpec(job_type="container", image=image, command=("python3", "-c", "print(1)")),
                 JobSpec(job_type="python", script=b"print(1)", script_name="s.py", env={"TWO": "lines\nof it"})):
        result = warm.orchestrator.run(spec)
        assert result.status == "succeeded", result
        assert "network" in result.timings and "sidecar" in result.timings, result.timings
        assert warm.seen.job[result.execution_id]["Config"]["Labels"]["cronium.role"] == "job"
    assert pool.counts["hits"] + pool.counts["misses"] == asked  # not even asked for


#: What a job's kernel holds of its profile, probed from inside: a FIFO (mknodat: Docker's default
#: seccomp allows it, the strict allowlist leaves it out), its /work tmpfs size, its capabilities.
PROFILE_PROBE = b"""import os, cronium
try:
    os.mkfifo('/tmp/f')
    fifo = 'made'
except OSError as exc:
    fifo = exc.strerror
st = os.statvfs('/work')
caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]
cronium.output({'fifo': fifo, 'work': st.f_blocks * st.f_frsize, 'caps': caps, 'uid': os.getuid()})
"""


def _on_a_slot(warm, result) -> dict:
    """The engine's view of the job container of `result`, which must have run on a claimed slot."""
    assert result.status == "succeeded", result
    assert "slot" in result.timings and "network" not in result.timings and "sidecar" not in result.timings, result
    job = warm.seen.job[result.execution_id]
    assert job["Config"]["Labels"]["cronium.role"] == "slot" and job["Name"] == f"/cronium-job-{result.execution_id}"
    return job


def test_a_strict_job_takes_a_slot_of_its_own_kind_that_holds_the_strict_profile(warm, engine):
    from cronium.plugins.security import load_seccomp

    spec = JobSpec(job_type="python", script=PROFILE_PROBE, script_name="p.py", profile="strict")
    _prime(warm, engine, profile="strict")
    result = warm.orchestrator.run(spec)
    job = _on_a_slot(warm, result)
    # The engine holds the strict profile on the claimed container, and the job's kernel applies it.
    held = job["HostConfig"]
    assert f"seccomp={load_seccomp('builtin:strict')}" in held["SecurityOpt"], held["SecurityOpt"]
    assert held["CapDrop"] == ["ALL"] and held["ReadonlyRootfs"] and "size=16777216" in held["Tmpfs"]["/work"]
    assert (held["Memory"], held["NanoCpus"], held["PidsLimit"]) == (128 * 1024 * 1024, 500_000_000, 64)
    assert f"seccomp={load_seccomp('builtin:strict')}" in warm.seen.sidecar[result.execution_id]["HostConfig"]["SecurityOpt"]
    assert result.output == {"fifo": "Operation not permitted", "work": 16 * 1024 * 1024,
                             "caps": "0000000000000000", "uid": 10001}, result.output
    # A default-profile job finds no slot of its kind among the strict ones: the normal path.
    plain = warm.orchestrator.run(JobSpec(job_type="python", script=PROFILE_PROBE, script_name="p.py"))
    assert plain.status == "succeeded" and "network" in plain.timings, plain
    assert plain.output["fifo"] == "made" and plain.output["work"] == 64 * 1024 * 1024, plain.output


@pytest.fixture
def own_image(engine):
    """A test-only tag of the python job image (a script job's own `--image`). Listed before `warm`
    in a test's arguments, it is removed after the runtime closed (its slots used it), with any
    image the test committed to the tag (`made`)."""
    tag = f"cronium/python:slot-test-{os.getpid()}"
    engine.images.get("cronium/python:latest").tag(tag)
    made: list[str] = []
    try:
        yield tag, made
    finally:
        for ref in (tag, *made):
            try:
                engine.api.remove_image(ref)
            except docker.errors.NotFound:
                pass


def test_a_job_of_its_own_image_takes_a_slot_and_a_rebuilt_tag_never_gets_a_stale_one(own_image, warm, engine):
    tag, made = own_image
    spec = JobSpec(job_type="python", script=b"import cronium, os\ncronium.output({'helper': cronium.__file__})\n",
                   script_name="i.py", image=tag)
    _prime(warm, engine, image=tag)
    result = warm.orchestrator.run(spec)
    job = _on_a_slot(warm, result)
    assert job["Config"]["Image"] == tag and job["Image"] == engine.images.get(tag).id
    assert result.output == {"helper": "/work/.cronium/python/cronium.py"}  # delivered over stdin, as normally
    # The tag now names another image (rebuilt): the idle slots of the old one must not serve it.
    wait_for(lambda: _idle_slot(warm), 60, "an idle slot of the image")
    holder = engine.api.create_container("cronium/python:latest", command=["true"])
    try:
        made.append(engine.api.commit(holder["Id"], repository=tag.split(":")[0], tag=tag.split(":")[1],
                                      conf={"Labels": {"cronium.test": "rebuilt"}})["Id"])
    finally:
        engine.api.remove_container(holder["Id"])
    again = warm.orchestrator.run(spec)
    assert again.status == "succeeded" and "network" in again.timings, again  # the normal path
    assert warm.seen.job[again.execution_id]["Image"] == made[0]


def test_an_image_the_engine_lacks_asks_no_slot_and_fails_with_the_normal_error(warm, engine):
    _prime(warm, engine)
    pool = warm.extension_if_present("slot-pool")
    asked = pool.counts["hits"] + pool.counts["misses"]
    result = warm.orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="m.py",
                                           image="cronium/python:slot-missing-image"))
    assert result.status == "error" and "cronium/python:slot-missing-image" in (result.error or ""), result
    assert pool.counts["hits"] + pool.counts["misses"] == asked  # not asked for: no slot of it is ever made


class _ThirdPartyNetwork:
    """A third-party network plugin (here it only watches and declines, so the built-in answers)."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def create_network(self, execution, runtime, resources):
        self.calls += 1


def test_a_third_party_network_plugin_switches_slots_off(warm, engine):
    other = _ThirdPartyNetwork()
    warm.pm.register(other, name="third-party-network")
    for _ in range(2):
        result = warm.orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="n.py"))
        assert result.status == "succeeded" and "network" in result.timings, result
    assert other.calls == 2  # never bypassed
    assert warm.extension_if_present("slot-pool") is None and _slot_objects(engine, warm.owner) == []


def test_a_live_claimed_slot_survives_a_concurrent_reaper(warm, engine, cronium_config, cli):
    from cronium.core.engine_objects import Claims, execution_objects
    from cronium.core.lifecycle import Cancellation
    from cronium.core.reaper import reap, remove_execution_resources
    from cronium.core.runtime import Runtime

    _prime(warm, engine)
    spec = JobSpec(job_type="python", script=b"import time; time.sleep(600)", script_name="job.py", timeout=900)
    cancel, results = Cancellation(), []
    worker = threading.Thread(target=lambda: results.append(warm.orchestrator.run(spec, cancel=cancel)))
    worker.start()
    try:
        store = warm.store
        (slot, claim), = wait_for(lambda: [(n, c) for n, c in store.pool_claims.all("slot").items()
                                           if store.records.values(c["execution"], ("status",)).get("status")
                                           == "running"], 60, "the job to run on a claimed slot")
        execution = claim["execution"]
        # The slot's objects keep the slot's labels; the claim record makes them this execution's:
        # for `cronium stats` (another process) and for the one lookup of an execution's objects.
        proc = cli("stats", execution, "--json")
        assert proc.returncode == 0, proc.stderr.decode()
        rows = {(r["role"], r["container"]) for r in json.loads(proc.stdout) if r["execution"] == execution}
        assert rows == {("job", f"cronium-job-{execution}"), ("sidecar", f"cronium-runtime-{execution}")}, proc.stdout
        claims = Claims.read(store)
        assert {c["Names"][0] for c in execution_objects(engine, claims, "container", execution)} == \
            {f"/cronium-job-{execution}", f"/cronium-runtime-{execution}"}
        assert [n["Name"] for n in execution_objects(engine, claims, "network", execution)] == [slot]
        other = Runtime(cronium_config)  # another process's sweep (`cronium gc`, a worker's reaper)
        try:
            report = reap(other)
            assert {f"container cronium-job-{execution}", f"container cronium-runtime-{execution}",
                    f"network {slot}"} <= set(report.kept), report
            assert engine.api.inspect_container(f"cronium-job-{execution}")["State"]["Running"]
            assert store.pool_claims.all("slot")[slot]["execution"] == execution
            # The claim binds the slot to its execution (its labels name the slot): a worker taking
            # the execution over removes exactly this slot's objects, not the idle slots beside it.
            wait_for(lambda: _idle_slot(warm), 60, "an idle slot beside the claimed one")
            # The job's own cleanup starts as soon as its container is killed and races this
            # removal for the sidecar and the network: both end with them gone, neither errs.
            taken_report = remove_execution_resources(other, execution)
            taken = taken_report.removed
            assert taken_report.errors == [], taken_report
        finally:
            other.close()
        # What the engine holds afterwards (the report may name an object under another plugin's entry).
        names = {c["Names"][0].lstrip("/") for c in engine.api.containers(all=True)}
        assert not {f"cronium-job-{execution}", f"cronium-runtime-{execution}"} & names, taken
        assert not engine.api.networks(names=[slot]), taken
        assert not [r for r in taken if "cronium-slot-" in r and slot not in r], taken
        assert _idle_slot(warm)
    finally:
        cancel.cancel("test over")
        worker.join(60)
    assert results and results[0].status != "succeeded"
    assert store.pool_claims.all("slot") == {}


_HOLDER = """
from cronium.core import JobSpec
from cronium.core.lifecycle import Orchestrator
from cronium.core.runtime import Runtime
import time

rt = Runtime(warm_pool=True)
orchestrator = Orchestrator(rt)
first = orchestrator.run(JobSpec(job_type="python", script=b"print(1)", script_name="a.py"))
print("owner", rt.owner, first.status, flush=True)
while rt.extension_if_present("slot-pool").idle_count() < 1:
    time.sleep(0.1)
orchestrator.run(JobSpec(job_type="python", script=b"import time; time.sleep(600)", script_name="b.py", timeout=900))
"""


def test_killing_the_process_holding_slots_then_gc_removes_everything(cli, cronium_runtime, engine, redis_client):
    from integration_util import acl_users

    store = cronium_runtime.store
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], env={**os.environ, "CRONIUM_CONFIG": str(cli.config)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = holder.stdout.readline().decode().split()
        assert line[:1] == ["owner"] and line[2] == "succeeded", (line, holder.stderr.read1().decode())
        owner = line[1]
        mine = {"label": f"cronium.owner={owner}"}

        def mid_job():  # the second job runs on a claimed slot, and idle slots wait beside it
            claims = {n: c for n, c in store.pool_claims.all("slot").items() if c["owner"] == owner}
            running = [c["execution"] for c in claims.values()
                       if store.records.values(c["execution"], ("status",)).get("status") == "running"]
            idle = engine.api.containers(filters={**mine, "name": "cronium-slot-"})
            return running and idle and (claims, running[0])

        claims, execution = wait_for(mid_job, 90, "the job to run on a claimed slot")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert engine.api.containers(all=True, filters=mine) != []  # left behind until someone reaps
    proc = cli("gc", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert {f"container cronium-job-{execution}", f"container cronium-runtime-{execution}"} <= set(report["removed"])
    assert execution in report["lost"]
    assert engine.api.containers(all=True, filters=mine) == [] and engine.api.networks(filters=mine) == []
    assert set(claims) & set(store.pool_claims.all("slot")) == set()
    assert not [u for u in acl_users(redis_client) if execution in u]
