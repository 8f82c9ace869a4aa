"""The dashboard in a real headless browser (tests/integration/browser.py) against a real
`cronium dashboard` process, real jobs on the real engine and the test Redis: log lines arrive live
(server-sent events), a running job is cancelled from its page, job output is text (never markup or
terminal control), and a dashboard bound beyond loopback shows the login page, not data, until the
token is given. Screenshots of the main pages go to build/screenshots/. The browser only ever
connects to 127.0.0.1."""
from __future__ import annotations

import os
import re
import secrets
import select
import socket
import subprocess
import time

import pytest
from browser import browser, page_text, screenshot, wait_for, wait_for_text  # noqa: F401 - the fixture
from integration_util import cronium_executable

pytestmark = pytest.mark.integration

URL_RE = re.compile(r"dashboard on (http://\S+)")
#: A job that prints a numbered line every 0.3 s (live-follow and cancel tests; cancelled before its end).
SLOW_JOB = "import time\nfor i in range(200):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.3)\n"
HOSTILE_JOB = ("print('<script>window.__x=1</script>')\n"
               "print('\\x1b[31mred words\\x1b[0m and a title change \\x1b]0;pwned\\x07 done')\n"
               "print('<img src=x onerror=\"window.__x=2\">')\n")
ENDED = ("succeeded", "failed", "cancelled", "timed_out", "lost")


@pytest.fixture(scope="module")
def dash_config(test_redis, tmp_path_factory):
    """A cronium.toml on the test Redis for this module's dashboards and jobs."""
    root = tmp_path_factory.mktemp("dashboard")
    path = root / "cronium.toml"
    path.write_text(f'[redis]\nurl = "{test_redis["url"]}"\nsidecar_url = "{test_redis["sidecar_url"]}"\n'
                    f'[services]\nnetwork = "{test_redis["network"]}"\n[logs]\ndir = "{root / "logs"}"\n')
    return path


def _env(config, **extra: str) -> dict:
    return {**os.environ, "CRONIUM_CONFIG": str(config), **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_dashboard(config, host: str, **env: str):
    """`cronium dashboard --host HOST --port <a free one>`: (process, its URL on 127.0.0.1)."""
    port = str(_free_port())
    proc = subprocess.Popen([cronium_executable(), "dashboard", "--host", host, "--port", port], env=_env(config, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            match = URL_RE.search(proc.stdout.readline())
            if match:
                port = match.group(1).rstrip("/").rsplit(":", 1)[1]
                return proc, f"http://127.0.0.1:{port}"  # whatever it binds, we connect on loopback
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"cronium dashboard printed no URL: {proc.communicate()[1][-1000:]}")


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def dashboard(dash_config):
    """A dashboard on 127.0.0.1 (no token: loopback only): its base URL."""
    proc, url = _start_dashboard(dash_config, "127.0.0.1")
    yield url
    _stop(proc)


def cronium(config, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([cronium_executable(), *args], env=_env(config), capture_output=True, text=True,
                          timeout=timeout)


def start_job(config, tmp_path, script: str, name: str) -> str:
    """`cronium run -d` a script: its execution id (the job runs on in the background)."""
    path = tmp_path / f"{name}.py"
    path.write_text(script)
    done = cronium(config, "run", "-d", str(path))
    assert done.returncode == 0, done.stderr
    match = re.search(r"exec_[0-9a-f]{16}", done.stdout + done.stderr)
    assert match, f"no execution id in: {done.stdout} {done.stderr}"
    return match.group(0)


def wait_ended(config, execution_id: str, engine, timeout: float = 60) -> str:
    """Wait (bounded) until the execution has a final status and nothing of it is left in Docker:
    its status."""
    label = {"label": f"cronium.execution={execution_id}"}
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        shown = cronium(config, "inspect", execution_id, "--format", "{{.status}}")
        status = shown.stdout.strip()
        if status in ENDED and not engine.api.containers(all=True, filters=label) \
                and not engine.api.networks(filters=label):
            return status
        time.sleep(0.25)
    raise AssertionError(f"{execution_id} did not end and get cleaned up within {timeout:.0f} s (status {status})")


def finish(config, execution_id: str, engine) -> None:
    """Cancel a job the test left running, and wait until it is cleaned up."""
    cronium(config, "cancel", execution_id)
    wait_ended(config, execution_id, engine)


def ticks(driver) -> list[int]:
    from selenium.webdriver.common.by import By

    text = driver.find_element(By.ID, "log").text
    return [int(n) for n in re.findall(r"tick (\d+)", text)]


def test_the_browser_never_leaves_loopback(browser):
    """The fixture's own guarantee: a host beyond loopback is unreachable from this browser."""
    from selenium.common.exceptions import WebDriverException

    with pytest.raises(WebDriverException, match="ERR_PROXY_CONNECTION_FAILED|ERR_NAME_NOT_RESOLVED"):
        browser.get("http://192.0.2.1/")


def test_log_lines_arrive_live_over_server_sent_events(browser, dashboard, dash_config, tmp_path, engine, request):
    from selenium.webdriver.common.by import By

    execution_id = start_job(dash_config, tmp_path, SLOW_JOB, "dash-live")
    try:
        browser.get(f"{dashboard}/executions/{execution_id}")
        wait_for(browser, lambda d: ticks(d), "a first tick line")
        browser.execute_script("window.__loaded_once = true")  # gone if the page reloads
        first = max(ticks(browser))
        wait_for(browser, lambda d: max(ticks(d)) >= first + 3, f"tick {first + 3} (sent after the page loaded)")
        assert browser.execute_script("return window.__loaded_once") is True, "the page reloaded instead of following"
        status = cronium(dash_config, "inspect", execution_id, "--format", "{{.status}}").stdout.strip()
        assert status == "running", "the lines came after the job ended, not while it ran"
        wait_for(browser, lambda d: d.find_element(By.ID, "status").text == "running",
                 "the page's status badge to follow the record to running")
        seen = ticks(browser)
        assert seen == list(range(seen[0], seen[-1] + 1)), "lines were lost or repeated while following"
        screenshot(browser, request.node.name)
    finally:
        finish(dash_config, execution_id, engine)


def test_a_running_job_is_cancelled_from_its_page(browser, dashboard, dash_config, tmp_path, engine, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    execution_id = start_job(dash_config, tmp_path, SLOW_JOB, "dash-cancel")
    try:
        browser.get(f"{dashboard}/executions/{execution_id}")
        wait_for(browser, lambda d: ticks(d), "a first tick line")
        button = browser.find_element(By.XPATH, "//form[contains(@action, '/cancel')]//button")
        button.click()
        alert = wait_for(browser, expected_conditions.alert_is_present(), "the confirm dialog")
        assert execution_id in alert.text
        alert.dismiss()  # "no": nothing is posted, the job runs on
        assert cronium(dash_config, "inspect", execution_id, "--format", "{{.status}}").stdout.strip() == "running"
        browser.find_element(By.XPATH, "//form[contains(@action, '/cancel')]//button").click()
        wait_for(browser, expected_conditions.alert_is_present(), "the confirm dialog").accept()
        wait_for(browser, lambda d: d.find_element(By.ID, "status").text == "cancelled", "status cancelled")
        screenshot(browser, request.node.name)
        assert wait_ended(dash_config, execution_id, engine) == "cancelled"  # what Redis holds, not only the page
    finally:
        finish(dash_config, execution_id, engine)


def test_job_output_is_shown_as_text_never_run(browser, dashboard, dash_config, tmp_path, engine, request):
    from selenium.webdriver.common.by import By

    path = tmp_path / "dash-hostile.py"
    path.write_text(HOSTILE_JOB)
    done = cronium(dash_config, "run", str(path))
    assert done.returncode == 0, done.stderr
    execution_id = re.search(r"exec_[0-9a-f]{16}", done.stderr).group(0)
    wait_ended(dash_config, execution_id, engine)
    browser.get(f"{dashboard}/executions/{execution_id}")
    log = wait_for(browser, lambda d: "window.__x=1" in d.find_element(By.ID, "log").text and
                   d.find_element(By.ID, "log"), "the job's output")
    assert "<script>window.__x=1</script>" in log.text
    assert '<img src=x onerror="window.__x=2">' in log.text
    assert browser.execute_script("return typeof window.__x") == "undefined"
    assert log.find_elements(By.TAG_NAME, "script") == [] and log.find_elements(By.TAG_NAME, "img") == []
    assert "red words" in log.text and "\x1b" not in page_text(browser) and "\x07" not in page_text(browser)
    assert "pwned" in log.text and browser.title != "pwned"  # the OSC title sequence is shown, not obeyed
    screenshot(browser, request.node.name)


def test_beyond_loopback_the_login_page_comes_before_any_data(browser, dash_config, engine, request):
    from selenium.webdriver.common.by import By

    token = secrets.token_urlsafe(24)
    known = cronium(dash_config, "ps", "-a", "-q", "--limit", "1").stdout.split()
    proc, url = _start_dashboard(dash_config, "0.0.0.0", CRONIUM_DASHBOARD_ADMIN_TOKEN=token)
    try:
        browser.delete_all_cookies()
        for path in ("/", *(f"/executions/{e}" for e in known)):
            browser.get(url + path)
            wait_for(browser, lambda d: d.find_elements(By.ID, "token"), f"the login form at {path}")
            assert not re.search(r"exec_[0-9a-f]{16}", browser.page_source), f"{path} showed execution data"
        screenshot(browser, request.node.name + "_login")
        browser.get(url + f"/?token={token}")  # a token in the URL is refused, not taken
        assert browser.get_cookies() == [] and not re.search(r"exec_[0-9a-f]{16}", browser.page_source)
        browser.get(url + "/")
        field = wait_for(browser, lambda d: d.find_elements(By.ID, "token"), "the login form")[0]
        field.send_keys("not-the-token-" + "x" * 20)
        field.submit()
        wait_for_text(browser, "not one of this dashboard's tokens")
        field = browser.find_element(By.ID, "token")
        field.send_keys(token)
        field.submit()
        wait_for(browser, lambda d: d.find_elements(By.ID, "executions"), "the executions list after logging in")
        for execution_id in known:
            wait_for_text(browser, execution_id)
        assert token not in browser.page_source
    finally:
        browser.delete_all_cookies()
        _stop(proc)


@pytest.mark.parametrize("path,name", [("/", "executions"), ("/deployments", "deployments"), ("/fleet", "fleet")])
def test_screenshots_of_the_main_pages(browser, dashboard, path, name):
    browser.get(dashboard + path)
    wait_for(browser, lambda d: d.find_elements("css selector", "main h1"), f"the {name} page's heading")
    assert "Not found" not in browser.title and "Error" not in browser.title
    assert screenshot(browser, f"page_{name}").stat().st_size > 5000
