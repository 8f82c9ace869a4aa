"""A real headless browser for the dashboard's tests: Debian's `chromium` driven by Selenium through
`chromedriver` (both installed by `make setup`; README "Dependencies").

One browser per test module (`browser` fixture), always quit, with nothing of it left running (its
own profile directory names its processes: the fixture checks none is left). It never reaches
beyond loopback: every other host resolves to nothing and goes to a closed loopback proxy, and
Chromium's background services (updates, sync, safe browsing, metrics) are off. Selenium Manager is
never asked for a driver. Screenshots go to build/screenshots/<name>.png (git-ignored).

Where the browser is missing the tests skip with the install hint, unless CRONIUM_BROWSER_TESTS=1
(`.ci/run` sets it): then they fail. CRONIUM_BROWSER_TESTS=0 leaves them out on purpose."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from integration_util import REPO

SCREENSHOTS = REPO / "build" / "screenshots"
#: How long a page may take to show what a test waits for (bounded: never a bare sleep).
WAIT_SECONDS = 20.0
INSTALL_HINT = "run `make setup` (Debian: apt-get install chromium chromium-driver; pip install selenium)"


def browser_paths() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) as installed by the system's packages (None where missing)."""
    return (shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver"))


def browser_unavailable() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    chromium, driver = browser_paths()
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return f"{' and '.join(missing)} not installed" if missing else ""


def require_browser() -> None:
    """Skip (a developer's machine without the browser) or fail (CRONIUM_BROWSER_TESTS=1: CI) when
    the browser tests cannot run; CRONIUM_BROWSER_TESTS=0 skips them on purpose."""
    if os.environ.get("CRONIUM_BROWSER_TESTS") == "0":
        pytest.skip("browser tests left out: CRONIUM_BROWSER_TESTS=0")
    missing = browser_unavailable()
    if missing and os.environ.get("CRONIUM_BROWSER_TESTS") == "1":
        pytest.fail(f"the browser tests cannot run here: {missing}; {INSTALL_HINT}")
    if missing:
        pytest.skip(f"browser tests: {missing}; {INSTALL_HINT} (CI fails instead of skipping)")


def chrome_options(profile: Path):
    """Headless, offline, loopback-only Chromium with its own profile directory."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = browser_paths()[0]
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-domain-reliability", "--disable-extensions",
                "--disable-client-side-phishing-detection", "--disable-features=Translate,OptimizationHints",
                # nothing beyond loopback: other names resolve to nothing, other hosts go to a closed port
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                "--proxy-server=http://127.0.0.1:9"):  # loopback is never proxied (Chromium's implicit rule)
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    return options


def start_browser(profile: Path):
    """A headless Chrome WebDriver on the system's chromedriver (Selenium Manager is not consulted)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # should Selenium Manager run at all: never download
    driver = webdriver.Chrome(service=Service(browser_paths()[1]), options=chrome_options(profile))
    driver.set_page_load_timeout(WAIT_SECONDS)
    return driver


def processes_of(profile: Path) -> list[str]:
    """Command lines of the processes still running with `profile` (this browser's, no other's)."""
    out = subprocess.run(["pgrep", "-af", str(profile)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip() and "pgrep" not in line]


@pytest.fixture(scope="module")
def browser():
    """One headless Chrome for the module; quit on every path, and none of its processes left."""
    require_browser()
    profile = Path(tempfile.mkdtemp(prefix="cronium-browser-"))
    driver = start_browser(profile)
    try:
        yield driver
    finally:
        driver.quit()
        left = processes_of(profile)
        shutil.rmtree(profile, ignore_errors=True)
        assert left == [], f"the browser left processes running: {left}"


def screenshot(driver, name: str) -> Path:
    """Write the page as build/screenshots/<name>.png (name made file-safe); returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    assert driver.save_screenshot(str(path)), f"the browser wrote no screenshot to {path}"
    return path


def page_text(driver) -> str:
    """The text the page shows (what a person reads, not its source)."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait_for(driver, condition, what: str, timeout: float = WAIT_SECONDS):
    """Wait (bounded) until condition(driver) is truthy; fail naming `what` and the page's text."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    try:
        return wait.until(condition)
    except TimeoutException:
        raise AssertionError(f"after {timeout:.0f} s the page at {driver.current_url} still does not show "
                             f"{what}; it shows:\n{page_text(driver)[-2000:]}") from None


def wait_for_text(driver, text: str, timeout: float = WAIT_SECONDS) -> str:
    """Wait (bounded) until the page's visible text contains `text`; returns that text."""
    return wait_for(driver, lambda d: text in page_text(d) and page_text(d), repr(text), timeout)
