"""The dashboard's pages, access rules and escaping, with Sanic's test client against the test Redis
(records written with the store's own functions), and `cronium dashboard` as a process (issue 15)."""
from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest
from integration_util import cronium_executable
from ports import free_port

from cronium.core.config import load_config
from cronium.core.dashboard.app import create_app
from cronium.core.model import JobSpec, Secret
from cronium.core.record import new_record
from cronium.core.store import Store

pytestmark = pytest.mark.integration

ADMIN = "admin-token-" + "a" * 20
READONLY = "readonly-token-" + "r" * 20
SECRET_VALUE = "sekrit-value-9f8e7d6c"
HOSTILE = "<script>alert('pwned')</script>\x1b]0;owned-title\x07\x1b[31m"


@pytest.fixture(scope="module")
def dash_prefix(test_redis):
    prefix = f"dashtest{uuid.uuid4().hex[:8]}:"
    yield prefix
    import redis

    client = redis.Redis.from_url(test_redis["url"])
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def dash_store(test_redis, dash_prefix):
    store = Store(test_redis["url"], prefix=dash_prefix)
    yield store
    store.close()


def _config(test_redis, prefix, **flags):
    return load_config(flags={"redis.url": test_redis["url"], "redis.key_prefix": prefix, **flags},
                       use_user_config=False, environ={})


@pytest.fixture
def dash_app(test_redis, dash_prefix, dash_store):
    """make(**config flags) -> a fresh dashboard app over the module's store."""

    def make(**flags):
        return create_app(_config(test_redis, dash_prefix, **flags), store=dash_store)

    return make


def _record(store, *, job="nightly", status="succeeded", namespace="default", created=None, logs=(), **extra):
    """Write an execution record (and log entries) the way the lifecycle does; returns its id."""
    execution_id = f"exec_{uuid.uuid4().hex[:16]}"
    created = created or time.time()
    spec = JobSpec(job_type="python", script=b"print(1)", secret_env={"API_KEY": Secret(SECRET_VALUE)},
                   env={"MODE": "fast"})
    rec = new_record(execution_id=execution_id, job_id=job, job_name=job, job_type="python", namespace=namespace,
                     status=status, created_at=created, spec=spec.describe(), attempt=1, **extra)
    store.records.create(execution_id, rec, created_at=created)
    if logs:
        store.logs.append(execution_id, logs, max_entries=1000, ttl=600)
    return execution_id


def _get(app, path, **kwargs):
    kwargs.setdefault("headers", {}).setdefault("accept", "text/html")
    request, response = app.test_client.get(path, **kwargs)
    return response


def _session(app, token=None) -> dict:
    """Cookies of a browser session: the open dashboard's, or after logging in with `token`."""
    if token is None:
        return dict(_get(app, "/").cookies)
    _, response = app.test_client.post("/login", data={"token": token}, allow_redirects=False)
    assert response.status == 303
    return dict(response.cookies)


def _csrf(app, path, cookies) -> str:
    import re

    body = _get(app, path, cookies=cookies).text
    return re.search(r'name="csrf" value="([0-9a-f]+)"', body).group(1)


# --- pages --------------------------------------------------------------------------------------

def test_list_shows_executions_and_filters_them(dash_app, dash_store):
    job = f"lister-{uuid.uuid4().hex[:6]}"
    ok = _record(dash_store, job=job, status="succeeded", namespace="team-a", exit_code=0)
    bad = _record(dash_store, job=job, status="failed", namespace="team-b", exit_code=3)
    other = _record(dash_store, job="someone-else", status="failed", namespace="team-b")
    app = dash_app()
    page = _get(app, f"/?job={job}")
    assert page.status == 200 and ok in page.text and bad in page.text and other not in page.text
    assert "team-a" in page.text and "Duration" in page.text
    failed = _get(app, f"/?job={job}&status=failed").text
    assert bad in failed and ok not in failed
    assert ok in _get(app, "/?namespace=team-a").text and bad not in _get(app, "/?namespace=team-a").text
    assert ok not in _get(app, f"/?job={job}&since=2999-01-01T00:00Z").text
    assert bad in _get(app, f"/partials/executions?job={job}").text
    refused = _get(app, "/?since=yesterday-ish")
    assert refused.status == 400 and "since" in refused.text and "Traceback" not in refused.text


def test_list_pages_backwards_without_overlap(dash_app, dash_store):
    job = f"pager-{uuid.uuid4().hex[:6]}"
    now = time.time()
    ids = [_record(dash_store, job=job, created=now - i) for i in range(60)]  # ids[0] is the newest
    app = dash_app()
    first = _get(app, f"/?job={job}").text
    assert ids[0] in first and ids[49] in first and ids[50] not in first
    import re

    older = html.unescape(re.search(r'rel="next" href="([^"]+)"', first).group(1))
    second = _get(app, older).text
    assert ids[50] in second and ids[59] in second and ids[49] not in second
    assert 'rel="next"' not in second


def test_unknown_execution_is_a_clear_404(dash_app):
    page = _get(dash_app(), "/executions/exec_doesnotexist00")
    assert page.status == 404
    assert "no execution 'exec_doesnotexist00'" in html.unescape(page.text) and "Traceback" not in page.text


def test_execution_page_shows_record_timeline_log_and_links(dash_app, dash_store):
    parent = _record(dash_store, job="first")
    execution = _record(dash_store, job="second", status="failed", exit_code=2, error="the job failed",
                        error_phase="job", started_at=time.time() - 3, finished_at=time.time(),
                        timings={"token": 0.01, "network": 0.2, "sidecar": 0.4, "job": 2.0, "cleanup": 0.3},
                        output={"rows": 12}, metadata={"parent_execution": parent}, retried_by="exec_next0000000000",
                        logs=[{"seq": 1, "stream": "stdout", "data": b"hello out\n", "partial": 0},
                              {"seq": 2, "stream": "stderr", "data": b"oops err\n", "partial": 0}])
    from cronium.core.fleet.queue import derived_execution_id

    automatic = derived_execution_id(execution, "retry")  # what the retry policy enqueues
    dash_store.records.create(automatic, {"id": automatic, "job_id": "second", "status": "queued"},
                              created_at=time.time())
    page = _get(dash_app(), f"/executions/{execution}")
    assert page.status == 200
    text = page.text
    assert f'href="/executions/{automatic}"' in text
    assert '<span class="stdout">hello out' in text and '<span class="stderr">oops err' in text
    assert 'class="phase phase-job"' in text and 'class="phase phase-cleanup"' in text
    assert f'href="/executions/{parent}"' in text and 'href="/executions/exec_next0000000000"' in text
    assert "in phase job" in text and "&#34;rows&#34;: 12" in text
    assert "API_KEY" in text  # secrets are named, never valued


def test_log_events_stream_the_rest_and_end(dash_app, dash_store):
    execution = _record(dash_store, job="streamer", status="succeeded",
                        logs=[{"seq": 1, "stream": "stdout", "data": b"one\n", "partial": 0},
                              {"seq": 2, "stream": "stderr", "data": b"<b>two</b>\x1b[2J\n", "partial": 0}])
    dash_store.logs.end(execution, max_entries=1000, ttl=600)
    first_id = dash_store.logs.read(execution, "0-0")[0][0]
    response = _get(dash_app(), f"/executions/{execution}/log/events?after={first_id}",
                    headers={"accept": "text/event-stream"})
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.text
    assert '"one' not in body, "the stream starts after the given entry"
    assert '"stream": "stderr"' in body and "<b>two</b>\\\\x1b[2J" in body
    assert body.rstrip().endswith("event: end\ndata: eof")


# --- hostile text -------------------------------------------------------------------------------

def test_hostile_job_name_error_output_and_log_render_as_text(dash_app, dash_store):
    execution = _record(dash_store, job=HOSTILE, status="failed", error=HOSTILE, output={"html": HOSTILE},
                        logs=[{"seq": 1, "stream": "stdout", "data": HOSTILE.encode() + b"\n", "partial": 0}])
    app = dash_app()
    for path in (f"/executions/{execution}", "/", f"/partials/executions?status=failed"):
        body = _get(app, path).text
        assert "<script>alert" not in body, path
        assert "\x1b" not in body and "\x07" not in body, path
        assert "&lt;script&gt;alert(" in body, path
    page = _get(app, f"/executions/{execution}").text
    assert "\\x1b]0;owned-title\\x07" in page, "an OSC escape is shown, visibly, not obeyed"


# --- access -------------------------------------------------------------------------------------

def _tokens() -> dict:
    return {"dashboard.admin_token": ADMIN, "dashboard.readonly_token": READONLY}


def test_cancel_without_the_csrf_token_is_refused(dash_app, dash_store):
    execution = _record(dash_store, job="victim", status="queued")
    app = dash_app()
    cookies = _session(app)
    _, refused = app.test_client.post(f"/executions/{execution}/cancel", data={}, cookies=cookies,
                                      allow_redirects=False)
    assert refused.status == 403 and "CSRF" in refused.text
    _, wrong = app.test_client.post(f"/executions/{execution}/cancel", data={"csrf": "0" * 64}, cookies=cookies,
                                    allow_redirects=False)
    assert wrong.status == 403
    assert dash_store.records.status(execution) == "queued"
    token = _csrf(app, f"/executions/{execution}", cookies)
    _, foreign = app.test_client.post(f"/executions/{execution}/cancel", data={"csrf": token}, cookies=cookies,
                                      headers={"origin": "http://evil.example"}, allow_redirects=False)
    assert foreign.status == 403 and dash_store.records.status(execution) == "queued"
    _, done = app.test_client.post(f"/executions/{execution}/cancel", data={"csrf": token}, cookies=cookies,
                                   allow_redirects=False)
    assert done.status == 303 and dash_store.records.status(execution) == "cancelled"


def test_readonly_role_sees_everything_but_may_not_cancel(dash_app, dash_store):
    execution = _record(dash_store, job="guarded", status="queued")
    app = dash_app(**_tokens())
    cookies = _session(app, READONLY)
    page = _get(app, f"/executions/{execution}", cookies=cookies)
    assert page.status == 200 and execution in page.text and "/cancel" not in page.text
    token = _csrf(app, "/", cookies)
    _, refused = app.test_client.post(f"/executions/{execution}/cancel", data={"csrf": token}, cookies=cookies,
                                      allow_redirects=False)
    assert refused.status == 403
    _, bearer = app.test_client.post(f"/executions/{execution}/cancel",
                                     headers={"authorization": f"Bearer {READONLY}"}, allow_redirects=False)
    assert bearer.status == 403
    assert dash_store.records.status(execution) == "queued"
    _, admin = app.test_client.post(f"/executions/{execution}/cancel",
                                    headers={"authorization": f"Bearer {ADMIN}"}, allow_redirects=False)
    assert admin.status == 303 and dash_store.records.status(execution) == "cancelled"


def test_with_tokens_every_page_needs_a_login(dash_app):
    app = dash_app(**_tokens())
    redirected = _get(app, "/", allow_redirects=False)
    assert redirected.status == 302 and redirected.headers["location"] == "/login"
    assert _get(app, "/", headers={"accept": "application/json"}).status == 401
    assert _get(app, "/", headers={"authorization": "Bearer wrong-token-0123456789"}).status == 401
    assert _get(app, "/partials/executions", headers={"authorization": f"Bearer {READONLY}"}).status == 200
    _, bad_login = app.test_client.post("/login", data={"token": "not-the-token-0123"})
    assert bad_login.status == 401
    _, login = app.test_client.post("/login", data={"token": ADMIN}, allow_redirects=False)
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert _get(app, "/", cookies=dict(login.cookies)).status == 200
    forged = dict(login.cookies)
    forged["cronium_session"] = forged["cronium_session"][:-4] + "0000"
    assert _get(app, "/", cookies=forged, allow_redirects=False).status == 302


def test_a_token_in_the_query_string_is_refused(dash_app):
    app = dash_app(**_tokens())
    for name in ("token", "access_token"):
        page = _get(app, f"/?{name}={ADMIN}", allow_redirects=False)
        assert page.status == 400 and "Authorization: Bearer" in page.text
        assert "set-cookie" not in page.headers


def test_secrets_and_tokens_never_appear_in_a_page(dash_app, dash_store):
    execution = _record(dash_store, job="secretive", status="failed",
                        definition={"name": "secretive", "inline": f"KEY = '{SECRET_VALUE}'",
                                    "secret_env": {"API_KEY": "env:MY_KEY"}, "env": {"MODE": "fast"}})
    app = dash_app(**_tokens())
    cookies = _session(app, ADMIN)
    pages = [_get(app, p, cookies=cookies) for p in ("/", f"/executions/{execution}", "/login", "/executions/nope",
                                                      f"/?token={ADMIN}")]
    _, failed_login = app.test_client.post("/login", data={"token": ADMIN + "x"})
    for page in [*pages, failed_login]:
        for value in (SECRET_VALUE, ADMIN, READONLY):
            assert value not in page.text, page.url
    assert "API_KEY" in pages[1].text


def test_security_headers_on_every_response(dash_app):
    app = dash_app()
    for path in ("/", "/login", "/executions/nope", "/static/dashboard.css"):
        headers = _get(app, path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"


def test_no_inline_script_or_style_in_pages(dash_app, dash_store):
    execution = _record(dash_store, job="plain", timings={"job": 1.0})
    app = dash_app()
    for path in ("/", f"/executions/{execution}", "/login"):
        body = _get(app, path).text
        assert "<script>" not in body and " style=" not in body and "onclick" not in body.lower()


# --- the process --------------------------------------------------------------------------------

def test_cronium_dashboard_serves_over_http_and_stops_on_ctrl_c(cli_config, tmp_path):
    port = free_port()
    env = {**os.environ, "CRONIUM_CONFIG": str(cli_config)}
    proc = subprocess.Popen([cronium_executable(), "dashboard", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read1(4000).decode(errors="replace")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200 and b"Executions" in resp.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert b"dashboard stopped" in out and b"Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_zero_serves_on_a_free_port_and_prints_it(cli_config, tmp_path):
    """`--port 0` is a free port (Sanic alone would take its default, 8000), and the printed URL names it."""
    env = {**os.environ, "CRONIUM_CONFIG": str(cli_config)}
    proc = subprocess.Popen([cronium_executable(), "dashboard", "--port", "0"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert port not in (0, 8000), line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def _line_with(stream, text: str, timeout: float = 60.0) -> str:
    """The first line of `stream` containing `text` (AssertionError with what came, after `timeout`)."""
    import select

    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            line = stream.readline().decode(errors="replace")
            if not line:
                break
            seen.append(line)
            if text in line:
                return line
    raise AssertionError(f"no line with {text!r}; got:\n{''.join(seen)}")


def test_cronium_serve_serves_the_dashboard_and_stops_cleanly(popen_cli):
    port = free_port()
    proc = popen_cli("serve", "--concurrency", "1", "--dashboard-port", str(port))
    line = _line_with(proc.stderr, "dashboard on")
    assert f"http://127.0.0.1:{port}/" in line
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        assert resp.status == 200 and b"Executions" in resp.read()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"Traceback" not in err


def test_retry_from_the_page_enqueues_a_linked_execution(dash_app, dash_store):
    import json

    from cronium.core.deploy.definition import JobDefinition

    definition = JobDefinition(name="again", deployment="dash-test", job_type="container",
                               image="cronium/python:latest", command=("true",))
    execution = _record(dash_store, job="again", status="failed", definition=json.loads(definition.to_json()),
                        input={"n": 1})
    app = dash_app()
    cookies = _session(app)
    _, refused = app.test_client.post(f"/executions/{execution}/retry", data={}, cookies=cookies,
                                      allow_redirects=False)
    assert refused.status == 403 and "retried_by" not in dash_store.records.get(execution)
    token = _csrf(app, f"/executions/{execution}", cookies)
    _, done = app.test_client.post(f"/executions/{execution}/retry", data={"csrf": token}, cookies=cookies,
                                   allow_redirects=False)
    assert done.status == 303
    new_id = done.headers["location"].rsplit("/", 1)[1]
    new = dash_store.records.get(new_id)
    assert new["retry_of"] == execution and new["status"] == "queued" and new["input"] == {"n": 1}
    assert dash_store.records.get(execution)["retried_by"] == new_id


def test_the_log_stream_follows_a_running_execution_until_its_log_ends(dash_app, dash_store):
    import threading

    execution = _record(dash_store, job="follower", status="running",
                        logs=[{"seq": 1, "stream": "stdout", "data": b"early\n", "partial": 0}])

    def write_the_rest():
        time.sleep(1.0)
        dash_store.logs.append(execution, [{"seq": 2, "stream": "stdout", "data": b"late line\n", "partial": 0}],
                               max_entries=1000, ttl=600)
        dash_store.logs.end(execution, max_entries=1000, ttl=600)

    writer = threading.Thread(target=write_the_rest)
    writer.start()
    response = _get(dash_app(), f"/executions/{execution}/log/events", headers={"accept": "text/event-stream"})
    writer.join()
    body = response.text
    assert body.index('"early') < body.index('"late line') < body.index("event: end")
    # The page's status badge follows the record: the stream says the status it saw.
    assert 'event: status\ndata: "running"' in body
