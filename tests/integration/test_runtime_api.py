"""The runtime API through the real sidecar, from real job containers (issue: runtime API + helpers)."""
from __future__ import annotations

import json
import threading

import pytest
from integration_util import acl_user_of

pytestmark = pytest.mark.integration

ALL_TYPES = {
    "string": "hello", "unicode": "héllo wörld ✓ 日本", "number": 42.5, "zero": 0, "false": False, "empty": "",
    "null": None, "nested": {"a": {"b": [1, 2, {"c": None}]}}, "list": [1, "two", False, 0, ""],
}

PYTHON_JOB = """
import json, cronium
data = cronium.input()
values = data["values"]
for key, value in values.items():
    cronium.set_variable("v_" + key, value)
back = {key: cronium.get_variable("v_" + key) for key in values}
assert back == values, (back, values)
assert cronium.get_variable("never_set_" + data["tag"]) is None
cronium.output({"read": back, "tag": data["tag"], "event": cronium.event()["executionId"]})
cronium.set_condition(True)
print("python ok")
"""

NODE_JOB = """
const cronium = require('cronium');
(async () => {
  const data = await cronium.input();
  const back = {};
  for (const [key, value] of Object.entries(data.values)) {
    await cronium.setVariable('v_' + key, value);
  }
  for (const key of Object.keys(data.values)) back[key] = await cronium.getVariable('v_' + key);
  if (JSON.stringify(back) !== JSON.stringify(data.values)) throw new Error('mismatch ' + JSON.stringify(back));
  if ((await cronium.getVariable('never_set_' + data.tag)) !== null) throw new Error('missing should be null');
  const ev = await cronium.event();
  await cronium.output({ read: back, tag: data.tag, event: ev.executionId });
  await cronium.setCondition(true);
  console.log('node ok');
})().catch((e) => { console.error(e.stack || e.message); process.exit(1); });
"""

BASH_JOB = r"""
set -euo pipefail
source cronium.sh
input="$(cronium_input)"
tag="$(jq -r .tag <<<"$input")"
for key in $(jq -r '.values | keys[]' <<<"$input"); do
  cronium_set_variable "v_$key" "$(jq -c --arg k "$key" '.values[$k]' <<<"$input")"
done
read_back='{}'
for key in $(jq -r '.values | keys[]' <<<"$input"); do
  value="$(cronium_get_variable "v_$key")"
  read_back="$(jq -c --arg k "$key" --argjson v "$value" '. + {($k): $v}' <<<"$read_back")"
done
[ "$(cronium_get_variable "never_set_$tag")" = "null" ]
event_id="$(cronium_event_field executionId)"
cronium_output "$(jq -c --arg t "$tag" --arg e "$event_id" '{read: ., tag: $t, event: $e}' <<<"$read_back")"
cronium_set_condition true
echo "bash ok"
"""

JOBS = {"python": PYTHON_JOB, "node": NODE_JOB, "bash": BASH_JOB}


@pytest.mark.parametrize("language", ["python", "node", "bash"])
def test_helper_reads_input_and_round_trips_every_json_type(language, cronium_run, tmp_path):
    namespace = f"ns-{language}-{tmp_path.name[-8:]}"
    result = cronium_run(JOBS[language], job_type=language, namespace=namespace,
                         input={"values": ALL_TYPES, "tag": language})
    assert result.status == "succeeded", result
    assert result.output["read"] == ALL_TYPES
    assert result.output["tag"] == language
    assert result.output["event"] == result.execution_id
    assert result.condition is True
    # A second execution in the same namespace reads what the first one wrote.
    second = cronium_run(
        "import cronium\ncronium.output({k: cronium.get_variable('v_' + k) for k in cronium.input()})\n",
        namespace=namespace, input=list(ALL_TYPES))
    assert second.status == "succeeded", second
    assert second.output == ALL_TYPES


def test_run_summary_shows_output_and_condition(cli, tmp_path):
    script = tmp_path / "out.py"
    script.write_text("import cronium\ncronium.output({'answer': 42, 'falsy': 0})\ncronium.set_condition(False)\n")
    proc = cli("run", str(script))
    assert proc.returncode == 0, proc.stderr.decode()
    err = proc.stderr.decode()
    assert 'output: {"answer": 42, "falsy": 0}' in err
    assert "condition: false" in err


ORIGINAL_STYLE_SCRIPT = """
# Written against the original Cronium Python helper API, unchanged.
import cronium
from cronium import Cronium, CroniumError, CroniumAPIError, CroniumTimeoutError

input_data = cronium.input()
counter = cronium.get_variable("original_counter") or 0
cronium.set_variable("original_counter", counter + 1)
event = cronium.event()
client = Cronium()
assert client.get_variable("original_counter") == counter + 1
try:
    cronium.execute_tool_action("no-such-tool", "send", {"to": "x"})
except CroniumAPIError as e:
    assert e.status_code == 404
result = cronium.execute_tool_action("echo", "echo", {"hello": "world"})
cronium.set_condition(counter >= 0)
cronium.output({"input": input_data, "counter": counter + 1, "event_id": event["executionId"], "tool": result})
"""


def test_original_cronium_python_script_runs_unchanged(cronium_run):
    result = cronium_run(ORIGINAL_STYLE_SCRIPT, input={"x": 1})
    assert result.status == "succeeded", result
    assert result.output["input"] == {"x": 1}
    assert result.output["event_id"] == result.execution_id
    assert result.output["counter"] >= 1
    assert result.output["tool"] == {"hello": "world"}
    assert result.condition is True


def test_cli_vars_set_is_visible_to_the_job(cli, tmp_path):
    proc = cli("vars", "set", "greeting", '"hi"', "--namespace", "cli-vars")
    assert proc.returncode == 0, proc.stderr.decode()
    script = tmp_path / "greet.py"
    script.write_text("import cronium\ncronium.output(cronium.get_variable('greeting'))\n")
    proc = cli("run", "--json", "--namespace", "cli-vars", str(script))
    assert json.loads(proc.stdout)["output"] == "hi"
    # and what the job writes, the CLI reads
    proc = cli("vars", "get", "greeting", "--namespace", "cli-vars")
    assert json.loads(proc.stdout) == "hi"


#: Run inside a job container (the sidecar listens on the job network only): argv[1] = a JSON list of
#: [method, path, token or null]; prints a JSON list of [status, body].
REQUESTS_FROM_THE_JOB = """
import json, sys, urllib.error, urllib.request
out = []
for method, path, token in json.loads(sys.argv[1]):
    req = urllib.request.Request('http://runtime-api:8081' + path, method=method,
                                 headers={'Authorization': 'Bearer ' + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            out.append([resp.status, json.loads(resp.read())])
    except urllib.error.HTTPError as exc:
        out.append([exc.code, json.loads(exc.read() or b'{}')])
print(json.dumps(out))
"""


def _requests_from_the_job(runtime, execution_id: str, requests: list[tuple[str, str, str | None]]) -> list:
    api = runtime.docker.api
    command = ["python3", "-c", REQUESTS_FROM_THE_JOB, json.dumps(requests)]
    output = api.exec_start(api.exec_create(f"cronium-job-{execution_id}", command, user="10001:10001")["Id"])
    return json.loads(output.decode().strip().splitlines()[-1])


TOKEN_LEAK_JOB = "import os\nprint(os.environ['CRONIUM_EXECUTION_TOKEN'])\n"


@pytest.fixture(params=["EdDSA", "HS256"])
def token_mode(request, cronium_overrides):
    if request.param == "HS256":
        cronium_overrides.update({"token.algorithm": "HS256", "token.secret": "s" * 40})
    # EdDSA: A's signature does not verify with B's public key (401). HS256: the signature verifies
    # (shared secret) but the execution id is not B's (403).
    return request.param, (401 if request.param == "EdDSA" else 403)


def test_token_of_one_execution_is_refused_by_another_sidecar(token_mode, cronium_run, cronium_runtime,
                                                              cronium_config):
    algorithm, expected = token_mode
    # Execution A prints its own token (a test job may: the token is its own).
    result_a = cronium_run(TOKEN_LEAK_JOB)
    assert result_a.status == "succeeded"
    from pathlib import Path

    token_a = (Path(cronium_config["logs.dir"]) / f"{result_a.execution_id}.log").read_text().strip()
    # Execution B runs; its sidecar is called with A's token from inside B's job container.
    seen = {}
    ready = threading.Event()

    def events(phase, state):
        if phase == "job" and state == "start":
            ready.set()

    def run_b():
        seen["b"] = cronium_run("import time\ntime.sleep(6)\n", events=events)

    t = threading.Thread(target=run_b)
    t.start()
    assert ready.wait(60)
    rows = cronium_runtime.docker.api.containers(filters={"name": "cronium-runtime-exec_"})
    b_id = rows[0]["Names"][0].split("cronium-runtime-")[1]
    own, other, health = _requests_from_the_job(cronium_runtime, b_id, [
        ("GET", f"/executions/{b_id}/input", token_a), ("GET", f"/executions/{result_a.execution_id}/input", token_a),
        ("GET", "/health", None)])
    assert own[0] == expected and own[1]["success"] is False, own
    assert other[0] == expected, other
    assert health == [200, {"status": "healthy", "store": "ok"}]
    # A's token is useless once A ended: its sidecar (the only one that knew its key) is gone.
    assert not cronium_runtime.docker.api.containers(all=True, filters={"name": f"cronium-runtime-{result_a.execution_id}"})
    t.join(60)
    assert seen["b"].status == "succeeded"


@pytest.fixture
def tight_limits(cronium_overrides):
    cronium_overrides.update({"sidecar.rate_limit_per_minute": 60, "sidecar.rate_limit_burst": 20,
                              "sidecar.max_body_bytes": 4096})
    return cronium_overrides


LIMITS_JOB = """
import json, os, urllib.request, urllib.error
api, eid, tok = os.environ['CRONIUM_RUNTIME_API'], os.environ['CRONIUM_EXECUTION_ID'], os.environ['CRONIUM_EXECUTION_TOKEN']
def call(method, path, body=None, token=tok):
    req = urllib.request.Request(api + path, data=body, method=method, headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)
res = {}
res['oversized'] = call('PUT', f'/executions/{eid}/variables/big', json.dumps({'value': 'x' * 10000}).encode())[0]
res['alg_none'] = call('GET', f'/executions/{eid}/input', token='eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.' + tok.split('.')[1] + '.')[0]
statuses = []
retry_after = None
for i in range(40):
    s, h = call('GET', f'/executions/{eid}/input')
    statuses.append(s)
    if s == 429:
        retry_after = h.get('Retry-After')
        break
res['loop'] = statuses
res['retry_after'] = retry_after
print(json.dumps(res))
"""


def test_sidecar_limits_413_429_and_alg_none(tight_limits, cronium_run, cronium_config):
    result = cronium_run(LIMITS_JOB)
    assert result.status == "succeeded", result
    from pathlib import Path

    res = json.loads((Path(cronium_config["logs.dir"]) / f"{result.execution_id}.log").read_text())
    assert res["oversized"] == 413
    assert res["alg_none"] == 401
    assert res["loop"][-1] == 429 and 200 in res["loop"]
    assert res["retry_after"] and int(res["retry_after"]) >= 1


def test_helper_call_after_sidecar_stopped_fails_clearly(cronium_run, cronium_runtime, docker_leftovers):
    client = cronium_runtime.docker

    def events(phase, state):
        if phase == "job" and state == "start":
            for c in client.api.containers(filters={"name": "cronium-runtime-exec_"}):
                client.api.kill(c["Id"])

    script = ("import time, cronium\ntime.sleep(1.5)\n"
              "try:\n    cronium.get_variable('x')\nexcept cronium.CroniumError as e:\n"
              "    print('helper error:', e)\n    raise SystemExit(7)\n")
    # Short helper timeouts: a stopped sidecar's address no longer answers at all.
    result = cronium_run(script, events=events, env={"CRONIUM_HELPER_TIMEOUT": "2", "CRONIUM_HELPER_BACKOFF": "0.2"})
    assert result.status == "failed" and result.exit_code == 7
    record = cronium_runtime.store.records.get(result.execution_id)
    assert "sidecar" in record.get("sidecar_state", "") and "exited" in record["sidecar_state"]
    assert docker_leftovers(result.execution_id) == []


# --- atomic updates, /health bounds (issue 13, items 7 and 10) ---------------------------------------

def test_concurrent_jobs_incrementing_one_counter_lose_no_update(cronium_runtime, redis_client):
    """Four jobs (Python, Bash, Node, Python) each add 1 twenty times to one variable, at the same time."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from cronium.core.lifecycle import Orchestrator
    from cronium.core.model import JobSpec

    namespace = f"count-{uuid.uuid4().hex[:8]}"
    python = JobSpec(job_type="python", script_name="inc.py", namespace=namespace,
                     script=b"import cronium\nfor _ in range(20):\n    cronium.increment_variable('counter')\n")
    bash = JobSpec(job_type="bash", script_name="inc.sh", namespace=namespace,
                   script=b"source cronium.sh\nfor i in $(seq 20); do cronium_increment_variable counter >/dev/null; done\n")
    node = JobSpec(job_type="node", script_name="inc.js", namespace=namespace,
                   script=b"const c = require('cronium');\n"
                          b"(async () => { for (let i = 0; i < 20; i++) await c.incrementVariable('counter'); })()"
                          b".catch((e) => { console.error(e.message); process.exit(1); });\n")
    orchestrator = Orchestrator(cronium_runtime)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(orchestrator.run, [python, bash, node, python]))
    finally:
        orchestrator.close()
    assert [r.status for r in results] == ["succeeded"] * 4, [(r.error, r.warnings) for r in results]
    try:
        assert cronium_runtime.store.variables.get(namespace, "counter") == 80
    finally:
        redis_client.delete(*cronium_runtime.store.keys.variable_hashes(namespace))


def test_a_job_flooding_health_is_limited_and_its_sidecar_holds_few_redis_connections(cronium_run, cronium_runtime,
                                                                                       redis_client):
    script = (
        "import os, json, urllib.request, urllib.error, threading, cronium\n"
        "api = os.environ['CRONIUM_RUNTIME_API']\n"
        "codes = []\n"
        "def flood():\n"
        "    for _ in range(25):\n"
        "        try:\n"
        "            with urllib.request.urlopen(api + '/health', timeout=10) as r: codes.append(r.status)\n"
        "        except urllib.error.HTTPError as e: codes.append(e.code)\n"
        "        cronium.increment_variable('hits')\n"
        "threads = [threading.Thread(target=flood) for _ in range(12)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "cronium.output({'ok': codes.count(200), 'limited': codes.count(429), 'other': len(codes) - codes.count(200) - codes.count(429)})\n")
    seen = {}

    def on_result(result):  # before cleanup: the sidecar and its connections are still there
        user = acl_user_of(cronium_runtime, result.execution_id)
        clients = redis_client.execute_command("CLIENT", "LIST").decode().splitlines()
        seen["connections"] = [c for c in clients if f" user={user} " in f" {c} "]

    result = cronium_run(script, on_result=on_result, namespace="health-flood")
    redis_client.delete(*cronium_runtime.store.keys.variable_hashes("health-flood"))
    assert result.status == "succeeded", result
    # 300 calls: the first ones (the burst) answered, the rest refused before the store is asked.
    assert result.output["limited"] > 0 and result.output["other"] == 0
    assert result.output["ok"] + result.output["limited"] == 300
    assert 1 <= len(seen["connections"]) <= 4


LEAN_PROBE_JOB = """
import cronium, json, os, urllib.error, urllib.request
upgrade = {'Connection': 'Upgrade', 'Upgrade': 'websocket', 'Sec-WebSocket-Version': '13',
           'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Accept': 'text/html'}
seen = []
for method, path in (('GET', '/ws'), ('DELETE', '/health'), ('GET', '/')):
    try:
        urllib.request.urlopen(urllib.request.Request(os.environ['CRONIUM_RUNTIME_API'] + path, method=method,
                                                      headers=upgrade), timeout=10)
        seen.append([method, path, 200, ''])
    except urllib.error.HTTPError as exc:
        seen.append([method, path, exc.code, exc.headers['Content-Type'], json.loads(exc.read())['success']])
cronium.output(seen)
"""


def test_the_sidecar_process_runs_without_websockets_and_answers_upgrades_and_html_clients_in_json(
        cronium_run, cronium_runtime):
    """The sidecar leaves websockets/tracerite out of its process (cronium.sidecar.lean): what the kernel
    maps for it has no websockets C module, and a job trying a websocket upgrade or asking for HTML
    error pages gets the runtime API's JSON errors."""
    seen = {}

    def on_result(result):  # the sidecar is still running
        name = f"cronium-runtime-{result.execution_id}"
        pid = cronium_runtime.docker.api.inspect_container(name)["State"]["Pid"]
        with open(f"/proc/{pid}/maps") as maps:
            seen["maps"] = maps.read()
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            seen["cmdline"] = cmdline.read().split(b"\0")

    result = cronium_run(LEAN_PROBE_JOB, on_result=on_result)
    assert result.status == "succeeded", result
    assert b"cronium.sidecar" in seen["cmdline"], seen["cmdline"]
    assert "/opt/cronium/site/" in seen["maps"], "not the sidecar's process"
    assert "websockets/speedups" not in seen["maps"], "the real websockets package is loaded in the sidecar"
    assert result.output == [["GET", "/ws", 404, "application/json", False],
                             ["DELETE", "/health", 405, "application/json", False],
                             ["GET", "/", 404, "application/json", False]], result.output
