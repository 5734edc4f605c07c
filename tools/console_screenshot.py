"""Make the README's screenshot of the operator console tracking the demo's person.

    .venv/bin/python tools/console_screenshot.py [--out docs/console/console.png] [--after 6]

Tracker node (bundled model, CPU), console and camera player (Debian's vtest.avi at its
10 fps, as ``make demo``) in separate processes on a private ROS domain; a headless chromium
opens the page, the camera is held on the first frame it shows (one of the clip's first few,
reliable QoS so that the tracker has it too) while a box is dragged over the person the demo
follows, and the screenshot is taken ``--after`` seconds of tracking later.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "test"))  # browser_support: the browser tests' Selenium helpers
sys.path.insert(0, str(REPO_ROOT))

# After the sys.path set-up above.
from browser_support import browser_for_tool, drag, element_box, free_port, open_browser, wait_for_http  # noqa: E402

from siamrpnpp_ros.tools import node_under_test as harness  # noqa: E402

VTEST_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_PERSON = (638.0, 240.0, 48.0, 82.0)  # tools/demo.py's VTEST_TARGET


def main() -> int:
    """Check for the browser and the video, then make the screenshot; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/console/console.png")
    parser.add_argument("--after", type=float, default=6.0, help="seconds of tracking before the screenshot")
    parser.add_argument("--logs", default="out/console_screenshot")
    args = parser.parse_args()
    browser = browser_for_tool("console_screenshot")
    if browser is None:
        return 2
    chromium, chromedriver = browser
    if not VTEST_VIDEO.is_file():
        print(f"console_screenshot: {VTEST_VIDEO} is missing (apt install opencv-doc)", file=sys.stderr)
        return 2
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    with harness.isolated_domain(harness.pick_domain_id(60)) as env:
        return screenshot(args, env, logs, chromium, chromedriver)


def screenshot(args: argparse.Namespace, env: dict[str, str], logs: Path, chromium: str, chromedriver: str) -> int:
    """Start the processes, select the person in the browser, save the page after ``args.after`` s."""
    from selenium.webdriver.common.by import By

    port = free_port()
    peers = [
        harness.start_tracker_node(
            ["device:=cpu", "diagnostics_period:=0.2", "image_qos:=reliable"], env, logs / "tracker.log"
        ),
        harness.PythonProcess(harness.console_args(port), env, logs / "console.log"),
    ]
    ros = harness.InProcessNode("console_screenshot")
    tracker = harness.TrackerDiagnostics(ros.node)
    browser = None
    try:
        if not ros.spin_until(
            lambda: ros.node.count_subscribers("select_target") >= 1 and ros.node.count_publishers("tracked_box") >= 1,
            180.0,
        ):
            print("console_screenshot: the tracker did not start", file=sys.stderr)
            return 1
        wait_for_http(f"http://127.0.0.1:{port}/api/state", {}, 60.0, lambda: peers[1].process.poll() is None)
        browser = open_browser(chromium, chromedriver, 1280, 900)
        browser.get(f"http://127.0.0.1:{port}/")
        player = harness.PythonProcess(
            harness.player_args(VTEST_VIDEO, "--frames", "300", "--qos", "reliable"), env, logs / "player.log"
        )
        peers.append(player)
        view = browser.find_element(By.ID, "view")
        # A selection before the tracker has an image is refused: wait for both to have frames.
        if not ros.spin_until(
            lambda: int(view.get_attribute("data-frames-shown") or 0) >= 1 and tracker.frames_received > 0, 60.0
        ):
            print("console_screenshot: the page shows no frame", file=sys.stderr)
            return 1
        player.process.send_signal(signal.SIGSTOP)
        try:
            shown, stable_since = None, time.monotonic()
            while time.monotonic() - stable_since < 0.5:  # until the page shows the frame the camera stopped on
                if view.get_attribute("data-sequence") != shown:
                    shown, stable_since = view.get_attribute("data-sequence"), time.monotonic()
                ros.spin_once(0.05)
            width, height = int(view.get_attribute("data-width")), int(view.get_attribute("data-height"))
            left, top, shown_width, shown_height = element_box(browser, browser.find_element(By.ID, "overlay"))
            x, y, w, h = VTEST_PERSON
            drag(
                browser,
                (round(left + x * shown_width / width), round(top + y * shown_height / height)),
                (round(left + (x + w) * shown_width / width), round(top + (y + h) * shown_height / height)),
            )
            sent = browser.find_element(By.ID, "last-selection")
            if not ros.spin_until(lambda: sent.get_attribute("data-stamp-sec"), 30.0):
                print(
                    f"console_screenshot: the selection was not sent: {browser.find_element(By.ID, 'message').text}",
                    file=sys.stderr,
                )
                return 1
        finally:
            player.process.send_signal(signal.SIGCONT)
        ros.spin_until(lambda: False, args.after)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(args.out)
        statuses = [
            row.get_attribute("data-status") for row in browser.find_elements(By.CSS_SELECTOR, "#targets tbody tr")
        ]
        print(f"console_screenshot: {args.out} (targets: {statuses})")
    finally:
        if browser is not None:
            browser.quit()
        for peer in reversed(peers):
            peer.stop()
        ros.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
