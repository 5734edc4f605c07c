"""Helpers for tests that drive a real browser: Debian's chromium, through Selenium and
Debian's chromium-driver (Playwright's own browser download needs the internet).

tools/setup_venv.sh installs both with apt when run as root, as CI runs ``make test``; the
browser tests then must run, so a missing browser fails them as root and skips them (with
the command to run) otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = (
    "the browser tests need Debian's chromium and chromium-driver: run `make setup` as root (it "
    "installs them with apt) or `sudo apt-get install chromium chromium-driver`"
)


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or next((str(p) for p in (Path("/usr/bin") / name,) if p.is_file()), None)
        if found:
            return found
    return None


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; fails the test as root (CI), skips it otherwise."""
    import pytest

    chromium, driver = _find(CHROMIUM_NAMES), _find(CHROMEDRIVER_NAMES)
    problem = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        problem = "selenium is not installed; run tools/setup_venv.sh"
    if problem is None and (chromium is None or driver is None):
        problem = INSTALL_HINT
    if problem is not None:
        if os.geteuid() == 0:
            pytest.fail(problem)
        pytest.skip(problem)
    return chromium, driver


def browser_for_tool(program: str) -> tuple[str, str] | None:
    """(chromium, chromedriver) for ``program``, a tool run outside pytest; None, the reason
    printed, without them.
    """
    import pytest

    try:
        return require_browser()
    except (pytest.skip.Exception, pytest.fail.Exception) as error:
        print(f"{program}: {error}", file=sys.stderr)
        return None


def open_browser(chromium: str, driver: str, width: int = 1280, height: int = 900):
    """A headless chromium at ``width`` x ``height`` CSS pixels (device scale 1)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for severe_logs()
    return webdriver.Chrome(service=Service(driver), options=options)


def severe_logs(driver) -> list[str]:
    """Errors the page logged (script errors, refused resources, CSP violations) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_http(url: str, headers: dict[str, str], timeout: float, alive: Callable[[], bool]) -> None:
    """Until ``url`` answers 200 (the console is serving); AssertionError on timeout or if ``alive()`` fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert alive(), "the console exited"
        try:
            if http("GET", url, headers=headers, timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def element_box(driver, element) -> tuple[float, float, float, float]:
    """``element``'s left, top, width and height in viewport CSS pixels."""
    return tuple(
        driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", element
        )
    )


def drag(
    driver,
    start: tuple[int, int],
    end: tuple[int, int],
    release: bool = True,
    between: Callable[[], None] | None = None,
) -> None:
    """Press the mouse at ``start`` (viewport CSS pixels), move to ``end``, run ``between()``,
    and release there (unless ``release`` is False)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(*start)
    actions.pointer_action.pointer_down()
    actions.pointer_action.move_to_location((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
    actions.pointer_action.move_to_location(*end)
    actions.perform()
    if between is not None:
        between()
    if release:
        actions = ActionBuilder(driver)
        actions.pointer_action.pointer_up()
        actions.perform()
