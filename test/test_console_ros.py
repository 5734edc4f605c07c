"""The operator console with real processes on a private ROS domain.

- A headless chromium (Debian's, driven by Selenium) on the console, with the camera player,
  the tracker node and the console in separate processes under a namespace: drag a box, and
  the node gets a SelectTarget with the displayed frame's header and the dragged box in image
  pixels, then the page shows the tracked box. Two browsers at once both get frames.
- The compressed variant with a plain WebSocket client (no browser, no tracker).
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser_support import (
    drag,
    element_box,
    free_port,
    http,
    open_browser,
    require_browser,
    severe_logs,
    wait_for_http,
)
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage

from siamrpnpp_ros.msg import SelectTarget, TrackedBox
from siamrpnpp_ros.tools.node_under_test import TrackerDiagnostics, console_args, player_args

STARTUP_TIMEOUT_S = 120.0  # torch and the model on a busy 2-core machine
TIMEOUT_S = 30.0
NAMESPACE = "/robot1"
TOKEN = "test-token-42"
BOX_TOLERANCE_PX = 1.5
VTEST_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_PERSON = (638.0, 240.0, 48.0, 82.0)  # as tools/demo.py: the person on the right of the first frame
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def still_camera(tmp_path_factory, parity_frames) -> tuple[Path, tuple[float, float, float, float]]:
    """A one-image folder the player loops, and a known object's box on that image: the person
    of Debian's vtest.avi where it is installed, else the parity video's target."""
    folder = tmp_path_factory.mktemp("still_camera")
    capture = cv2.VideoCapture(str(VTEST_VIDEO))
    ok, frame = capture.read() if VTEST_VIDEO.is_file() else (False, None)
    capture.release()
    if ok:
        box = VTEST_PERSON
    else:
        frames, groundtruth = parity_frames
        frame, box = frames[0], tuple(float(v) for v in groundtruth[0])
    cv2.imwrite(str(folder / "0001.png"), frame)
    return folder, box


def stamp_of(header) -> tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


def test_browser_drag_selects_on_the_displayed_frame_and_shows_the_tracked_box(
    ros_peer, tracker_node, ros_node, still_camera, tmp_path
):
    chromium, chromedriver = require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    folder, known_box = still_camera
    port = free_port()
    remaps = [f"__ns:={NAMESPACE}"]
    tracker = tracker_node("device:=cpu", "image_qos:=reliable", "diagnostics_period:=0.5", remaps=remaps)
    console = ros_peer(*console_args(port, f"token:={TOKEN}", "width:=480", "jpeg_quality:=70", remaps=remaps))
    selections: list[SelectTarget] = []
    boxes: list[TrackedBox] = []
    node = ros_node.node
    node.create_subscription(SelectTarget, f"{NAMESPACE}/select_target", selections.append, RELIABLE)
    node.create_subscription(TrackedBox, f"{NAMESPACE}/tracked_box", boxes.append, RELIABLE)
    diagnostics = TrackerDiagnostics(node)

    def spin_until(condition, timeout: float, what: str) -> None:
        if not ros_node.spin_until(condition, timeout):
            raise AssertionError(
                f"timed out waiting for {what}; tracker exit {tracker.process.poll()}, "
                f"console exit {console.process.poll()}"
            )

    spin_until(
        lambda: (
            node.count_subscribers(f"{NAMESPACE}/select_target") >= 2
            and node.count_publishers(f"{NAMESPACE}/tracked_box") >= 1
        ),
        STARTUP_TIMEOUT_S,
        "the tracker node to start",
    )
    player = ros_peer(*player_args(folder, "--rate", "10", "--loop", "--qos", "reliable", remaps=remaps))
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    wait_for_http(f"{base}/api/state", auth, STARTUP_TIMEOUT_S, lambda: console.process.poll() is None)
    spin_until(
        lambda: json.loads(http("GET", f"{base}/api/state", headers=auth)[1])["tracker_listening"],
        TIMEOUT_S,
        "the console to discover the tracker's select_target subscription",
    )

    browsers = []
    try:
        browser = open_browser(chromium, chromedriver)
        browsers.append(browser)
        browser.get(f"{base}/?token={TOKEN}")
        view = browser.find_element(By.ID, "view")

        def frames_shown(driver=browser) -> int:
            return int(driver.find_element(By.ID, "view").get_attribute("data-frames-shown") or 0)

        spin_until(lambda: frames_shown() >= 3, TIMEOUT_S, "the page to show camera frames")
        # A selection made before the node has an image is refused (by the node): wait for its first.
        spin_until(lambda: diagnostics.frames_received > 0, TIMEOUT_S, "the node to report received images")
        assert "token=" not in browser.current_url, "the token is taken out of the address bar"

        # Freeze the camera, so the frame on screen is known when the drag begins.
        player.process.send_signal(signal.SIGSTOP)
        try:
            last = (-1, -1)
            stable_since = time.monotonic()
            while time.monotonic() - stable_since < 1.5:
                current = (frames_shown(), int(view.get_attribute("data-sequence")))
                if current != last:
                    last, stable_since = current, time.monotonic()
                ros_node.spin_once(0.1)
            shown_stamp = (int(view.get_attribute("data-stamp-sec")), int(view.get_attribute("data-stamp-nanosec")))
            image_width, image_height = int(view.get_attribute("data-width")), int(view.get_attribute("data-height"))
            left, top, width, height = element_box(browser, browser.find_element(By.ID, "overlay"))
            assert abs(width - image_width) > 20, "the picture is scaled on screen"

            x, y, w, h = known_box
            start = (round(left + x * width / image_width), round(top + y * height / image_height))
            end = (round(left + (x + w) * width / image_width), round(top + (y + h) * height / image_height))
            dragged = (
                (start[0] - left) * image_width / width,
                (start[1] - top) * image_height / height,
                (end[0] - start[0]) * image_width / width,
                (end[1] - start[1]) * image_height / height,
            )
            drag(browser, start, end)
            spin_until(lambda: selections, TIMEOUT_S, "the console's SelectTarget")
        finally:
            player.process.send_signal(signal.SIGCONT)

        selection = selections[0]
        assert selection.command == SelectTarget.COMMAND_START and selection.target_id == 1
        assert stamp_of(selection.header) == shown_stamp, "stamped with the frame on screen when the drag began"
        assert selection.header.frame_id == "camera_optical"
        sent = (selection.x, selection.y, selection.width, selection.height)
        assert np.allclose(sent, dragged, atol=BOX_TOLERANCE_PX), (sent, dragged)
        assert np.allclose(sent, known_box, atol=BOX_TOLERANCE_PX + 1.0), (sent, known_box)

        # The node started on exactly that image with exactly that box, and tracks on.
        spin_until(
            lambda: any(b.status == TrackedBox.STATUS_INITIALIZING for b in boxes),
            TIMEOUT_S,
            "the node to start tracking",
        )
        started = next(b for b in boxes if b.status == TrackedBox.STATUS_INITIALIZING)
        assert stamp_of(started.header) == shown_stamp
        assert np.allclose((started.x, started.y, started.width, started.height), sent, atol=1e-6)

        # The page shows the tracked box: drawn over the picture and listed.
        def tracked_on_page():
            groups = browser.find_elements(By.CSS_SELECTOR, '#boxes g[data-target-id="1"][data-status="TRACKING"]')
            return groups[0] if groups else None

        spin_until(lambda: tracked_on_page() is not None, TIMEOUT_S, "the page to draw the TRACKING box")
        group = tracked_on_page()
        drawn = [float(group.get_attribute(f"data-{name}")) for name in ("x", "y", "width", "height")]
        assert np.allclose(drawn, known_box, atol=25.0), (drawn, known_box)
        assert group.find_element(By.TAG_NAME, "rect").is_displayed()
        row = browser.find_element(By.CSS_SELECTOR, '#targets tbody tr[data-target-id="1"]')
        assert "TRACKING" in row.text
        last_selection = browser.find_element(By.ID, "last-selection")
        assert (
            int(last_selection.get_attribute("data-stamp-sec")),
            int(last_selection.get_attribute("data-stamp-nanosec")),
        ) == shown_stamp
        assert float(browser.find_element(By.ID, "tracker-fps").text) > 0
        browser.save_screenshot(str(tmp_path / "console.png"))

        # A second browser: both get frames at once.
        second = open_browser(chromium, chromedriver, 900, 700)
        browsers.append(second)
        second.get(f"{base}/?token={TOKEN}")
        before = frames_shown(browser)
        spin_until(
            lambda: frames_shown(second) >= 5 and frames_shown(browser) >= before + 5,
            TIMEOUT_S,
            "frames in both browsers",
        )
        assert json.loads(http("GET", f"{base}/api/state", headers=auth)[1])["browsers"] == 2

        # A START while the target is tracked: the node refuses it, and the page says so.
        count = len(selections)
        drag(browser, start, end)
        spin_until(lambda: len(selections) > count, TIMEOUT_S, "the second START")
        spin_until(
            lambda: "refused" in browser.find_element(By.ID, "tracker-messages").text,
            TIMEOUT_S,
            "the page to show the tracker's refusal",
        )

        # Esc abandons a drag: nothing is sent.
        count = len(selections)
        drag(
            browser,
            (start[0] - 40, start[1]),
            (end[0] - 40, end[1]),
            between=lambda: ActionChains(browser).send_keys("\ue00c").perform(),
        )
        spin_until(
            lambda: "abandoned" in browser.find_element(By.ID, "message").text,
            TIMEOUT_S,
            "the page to abandon the drag",
        )
        ros_node.spin_until(lambda: len(selections) > count, 1.0)
        assert len(selections) == count, "an abandoned drag sends nothing"

        # Bad requests are refused and send nothing.
        good = {
            "command": "replace",
            "target_id": 1,
            "frame": int(view.get_attribute("data-sequence")),
            "box": {"x": 1, "y": 1, "width": 20, "height": 20},
        }
        json_type = {"Content-Type": "application/json"}
        for body, headers, status in [
            (good, json_type, 401),
            (dict(good, box={"x": image_width - 5, "y": 1, "width": 20, "height": 20}), {**json_type, **auth}, 422),
            (dict(good, frame=10**9), {**json_type, **auth}, 409),
            (dict(good, target_id="one"), {**json_type, **auth}, 400),
            (good, {"Content-Type": "text/plain", **auth}, 415),
            (good, {**json_type, **auth, "Origin": "http://evil.example"}, 403),
        ]:
            answer = http("POST", f"{base}/api/select", json.dumps(body).encode(), headers)
            assert answer[0] == status, (body, headers, answer)
        ros_node.spin_until(lambda: len(selections) > count, 1.0)
        assert len(selections) == count

        # The key C cancels the target: the node goes IDLE and the page lists it so.
        browser.find_element(By.TAG_NAME, "body").send_keys("c")
        spin_until(lambda: len(selections) > count, TIMEOUT_S, "the CANCEL")
        assert (selections[-1].command, selections[-1].target_id) == (SelectTarget.COMMAND_CANCEL, 1)
        spin_until(lambda: boxes[-1].status == TrackedBox.STATUS_IDLE, TIMEOUT_S, "the node's IDLE box")
        spin_until(
            lambda: (
                browser.find_elements(By.CSS_SELECTOR, '#targets tbody tr[data-status="IDLE"]')
                and not browser.find_elements(By.CSS_SELECTOR, "#boxes g")
            ),
            TIMEOUT_S,
            "the page to show IDLE",
        )
        for opened in browsers:
            assert severe_logs(opened) == [], "the page ran without errors"
    finally:
        for opened in browsers:
            opened.quit()
    for peer in (player, console, tracker):
        code = peer.stop()
        assert code == 0, peer.log_path.read_text(errors="replace")
    assert "Traceback" not in console.log_path.read_text(errors="replace")


async def _stream_one_frame(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(url) as socket:
        async for message in socket:
            if message.type == aiohttp.WSMsgType.BINARY:
                length = struct.unpack(">I", message.data[:4])[0]
                return json.loads(message.data[4 : 4 + length])
    raise AssertionError("the stream ended without a frame")


def test_compressed_camera_in_a_namespace_streams_and_selects(ros_peer, ros_node, still_camera):
    """Player -> console on image/compressed under a namespace; the test process is the tracker."""
    folder, known_box = still_camera
    port = free_port()
    namespace = "/drone7"
    console = ros_peer(
        *console_args(port, "compressed:=true", "image_topic:=camera/image_raw", remaps=[f"__ns:={namespace}"])
    )
    node = ros_node.node
    selections: list[SelectTarget] = []
    sent_stamps: set[tuple[int, int]] = set()
    node.create_subscription(SelectTarget, f"{namespace}/select_target", selections.append, RELIABLE)
    node.create_subscription(
        CompressedImage,
        f"{namespace}/camera/image_raw/compressed",
        lambda m: sent_stamps.add(stamp_of(m.header)),
        qos_profile_sensor_data,
    )
    player = ros_peer(
        *player_args(
            folder,
            "--rate",
            "10",
            "--loop",
            "--compressed",
            remaps=[f"__ns:={namespace}", "image/compressed:=camera/image_raw/compressed"],
        )
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/api/state", {}, TIMEOUT_S, lambda: console.process.poll() is None)
    assert ros_node.spin_until(lambda: len(sent_stamps) >= 3, TIMEOUT_S), player.output()

    header = asyncio.run(_stream_one_frame(f"ws://127.0.0.1:{port}/api/stream?width=320&quality=40"))
    assert (header["jpeg_width"], header["quality"]) == (320, 40)
    assert ros_node.spin_until(lambda: (header["stamp"]["sec"], header["stamp"]["nanosec"]) in sent_stamps, TIMEOUT_S)
    # The console's publisher must have matched this process's subscription (else 503).
    assert ros_node.spin_until(lambda: json.loads(http("GET", f"{base}/api/state")[1])["tracker_listening"], TIMEOUT_S)
    body = {
        "command": "start",
        "target_id": 4,
        "frame": header["sequence"],
        "box": dict(zip(("x", "y", "width", "height"), known_box, strict=True)),
    }
    status, answer = http("POST", f"{base}/api/select", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 202, answer
    assert ros_node.spin_until(lambda: selections, TIMEOUT_S)
    selection = selections[0]
    assert stamp_of(selection.header) == (header["stamp"]["sec"], header["stamp"]["nanosec"])
    assert (selection.x, selection.y, selection.width, selection.height) == known_box
    topics = json.loads(http("GET", f"{base}/api/state")[1])
    assert topics["tracker_listening"] and topics["camera_fps"] > 0
    # Every thread of the console runs niced (parameter nice, default 10): the tracker keeps priority.
    niceness = [
        int(stat.read_text().rsplit(")", 1)[1].split()[16])
        for stat in Path(f"/proc/{console.process.pid}/task").glob("*/stat")
    ]
    assert niceness and min(niceness) >= 10, niceness
    for peer in (player, console):
        assert peer.stop() == 0, peer.log_path.read_text(errors="replace")
