"""Operator console without ROS processes: request checks, frames, targets, and the web server
(aiohttp's test client against the real application, with a stand-in for the ROS bridge)."""

from __future__ import annotations

import asyncio
import json
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from siamrpnpp_ros.tools.console.frames import CameraFrame, FrameStore, ShownFrame, encode_jpeg
from siamrpnpp_ros.tools.console.server import TOKEN_COOKIE, ConsoleServer
from siamrpnpp_ros.tools.console.settings import ConsoleSettings, check_settings, is_loopback_host
from siamrpnpp_ros.tools.console.targets import TargetBoard, TargetUpdate
from siamrpnpp_ros.tools.console.validation import (
    MAX_BODY_BYTES,
    RequestError,
    parse_selection,
    parse_stream_options,
)

FRAME = ShownFrame(sequence=7, stamp_sec=1234, stamp_nanosec=500, frame_id="cam", width=640, height=480)


def shown(sequence: int) -> ShownFrame | None:
    return FRAME if sequence == FRAME.sequence else None


def selection(**overrides) -> bytes:
    document = {"command": "start", "target_id": 3, "frame": 7, "box": {"x": 10, "y": 20.5, "width": 30, "height": 40}}
    document.update(overrides)
    return json.dumps(document).encode()


# --------------------------------------------------------------------------- request checks


def test_a_good_selection_names_the_shown_frame_and_keeps_the_box():
    parsed = parse_selection(selection(), shown)
    assert (parsed.command, parsed.target_id, parsed.frame, parsed.box) == ("start", 3, FRAME, (10.0, 20.5, 30.0, 40.0))
    cancel = parse_selection(json.dumps({"command": "cancel", "target_id": 0}).encode(), shown)
    assert (cancel.command, cancel.target_id, cancel.frame, cancel.box) == ("cancel", 0, None, None)
    # A box ending exactly on the image's edge is inside.
    edge = parse_selection(selection(box={"x": 600, "y": 440, "width": 40, "height": 40}), shown)
    assert edge.box == (600.0, 440.0, 40.0, 40.0)


@pytest.mark.parametrize(
    "body, status",
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"command": "start", "target_id": 1, "frame": 7, "box": {"x": NaN, "y": 0, "width": 5, "height": 5}}', 400),
        (selection(command=5), 400),
        (selection(command="launch"), 422),
        (selection(target_id="3"), 400),
        (selection(target_id=True), 400),
        (selection(target_id=0), 422),
        (selection(target_id=2**32), 422),
        (selection(target_id=-1), 422),
        (selection(frame=7.0), 400),
        (selection(frame=-1), 422),
        (selection(frame=8), 409),
        (selection(box=[1, 2, 3, 4]), 400),
        (selection(box={"x": 1, "y": 2, "width": 3}), 400),
        (selection(box={"x": 1, "y": 2, "width": 3, "height": 4, "z": 0}), 400),
        (selection(box={"x": "1", "y": 2, "width": 3, "height": 4}), 400),
        (
            b'{"command": "start", "target_id": 1, "frame": 7, "box": {"x": 1e400, "y": 0, "width": 5, "height": 5}}',
            422,
        ),
        (selection(box={"x": -1, "y": 2, "width": 30, "height": 40}), 422),
        (selection(box={"x": 620, "y": 2, "width": 30, "height": 40}), 422),
        (selection(box={"x": 10, "y": 450, "width": 30, "height": 40}), 422),
        (selection(box={"x": 10, "y": 20, "width": 0.5, "height": 40}), 422),
        (selection(extra=1), 400),
        (json.dumps({"command": "start", "target_id": 1}).encode(), 400),
        (json.dumps({"command": "cancel", "target_id": 1, "frame": 7}).encode(), 400),
        (json.dumps({"command": "cancel"}).encode(), 400),
        (b"{" + b" " * MAX_BODY_BYTES + b"}", 413),
        ('{"command": "start"}'.encode("utf-16"), 400),
    ],
)
def test_bad_selections_are_refused_with_their_status(body, status):
    with pytest.raises(RequestError) as caught:
        parse_selection(body, shown)
    assert caught.value.status == status, str(caught.value)


def test_stream_options_have_defaults_and_bounds():
    defaults = parse_stream_options({}, 75, 800)
    assert (defaults.quality, defaults.width) == (75, 800)
    options = parse_stream_options({"quality": "40", "width": "320", "token": "x"}, 75, 800)
    assert (options.quality, options.width) == (40, 320)
    for query, status in [
        ({"quality": "9"}, 422),
        ({"quality": "101"}, 422),
        ({"width": "63"}, 422),
        ({"width": "8000"}, 422),
        ({"quality": "4x"}, 400),
        ({"quality": "-5"}, 400),
        ({"width": "１２８"}, 400),
        ({"colour": "1"}, 400),
    ]:
        with pytest.raises(RequestError) as caught:
            parse_stream_options(query, 75, 800)
        assert caught.value.status == status, query


def test_settings_are_checked():
    assert check_settings({}).host == "127.0.0.1" and check_settings({}).is_loopback
    assert not check_settings({"host": "0.0.0.0"}).is_loopback
    assert (
        check_settings({"compressed": True, "image_topic": "/cam/image_raw"}).camera_topic
        == "/cam/image_raw/compressed"
    )
    assert is_loopback_host("localhost") and is_loopback_host("127.0.0.2") and is_loopback_host("::1")
    assert not is_loopback_host("192.168.1.2") and not is_loopback_host("evil.example")
    for values in (
        {"host": "robot.local"},
        {"token": "has space"},
        {"image_qos": "fast"},
        {"port": 70000},
        {"jpeg_quality": 5},
        {"image_topic": " "},
    ):
        with pytest.raises(ValueError):
            check_settings(values)


# --------------------------------------------------------------------------- frames and targets


def camera_frame(
    sequence: int, image: np.ndarray, stamp_sec: int = 100, received: float = 0.0, decoded: list | None = None
) -> CameraFrame:
    def decode() -> np.ndarray:
        if decoded is not None:
            decoded.append(sequence)
        return image

    return CameraFrame(sequence, stamp_sec + sequence, 0, "cam", received, decode)


def test_encode_jpeg_downscales_but_never_upscales():
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    jpeg, width, height = encode_jpeg(image, 80, 320)
    assert (width, height) == (320, 240) and jpeg[:2] == b"\xff\xd8"
    _, width, height = encode_jpeg(image, 80, 1920)
    assert (width, height) == (640, 480)


def test_frame_store_encodes_the_newest_frame_once_per_setting_and_remembers_what_it_showed():
    store = FrameStore()
    image = np.full((480, 640, 3), 90, np.uint8)
    decoded: list[int] = []
    assert store.encoded(75, 640) is None and store.newest_sequence == -1
    for sequence in range(3):
        store.put(camera_frame(sequence, image, decoded=decoded))
    first = store.encoded(75, 320)
    assert first.shown.sequence == 2 and (first.jpeg_width, first.jpeg_height) == (320, 240)
    assert (first.shown.width, first.shown.height, first.shown.stamp_sec) == (640, 480, 102)
    assert store.encoded(75, 320) is first, "a second browser with the same settings shares the JPEG"
    other = store.encoded(40, 640)
    assert other is not first and decoded == [2], "one decode per frame, whatever the settings"
    assert store.encoded(75, 320, after=2) is None, "nothing newer than what the browser has"
    assert store.shown(2) == first.shown and store.shown(1) is None, "frames never shown cannot be selected on"
    assert store.received_at(102 * 10**9) == 0.0


def test_target_board_lists_targets_and_measures_the_tracker():
    clock = [10.0]
    board = TargetBoard(received_at=lambda stamp: 9.9 if stamp == 5 * 10**9 else None, clock=lambda: clock[0])

    def box(target_id: int, status: str, stamp_sec: int, received: float) -> TargetUpdate:
        return TargetUpdate(target_id, status, 1, 2, 3, 4, 0.9, 1, stamp_sec, 0, 0.02, received)

    board.update(box(1, "TRACKING", 5, 10.0))
    board.update(box(2, "LOST", 5, 10.0))
    board.update(box(1, "TRACKING", 6, 10.1))
    snapshot = board.snapshot()
    assert [(t["id"], t["status"]) for t in snapshot["targets"]] == [(1, "TRACKING"), (2, "LOST")]
    assert snapshot["tracker_fps"] == pytest.approx(10.0) and snapshot["latency_ms"] == pytest.approx(20.0)
    assert snapshot["delay_ms"] == pytest.approx(100.0)
    version = board.version
    board.note("WARN", "START for target 3 refused", 10.2)
    assert board.version > version, "a tracker message is news for the page"
    assert board.snapshot()["tracker_messages"] == [
        {"level": "WARN", "text": "START for target 3 refused", "seconds_ago": pytest.approx(0.0, abs=0.3)}
    ]
    board.update(box(2, "IDLE", 6, 10.1))
    clock[0] = 80.0
    snapshot = board.snapshot()
    assert [t["id"] for t in snapshot["targets"]] == [1] and snapshot["tracker_fps"] == 0.0
    assert snapshot["tracker_messages"] == [], "old tracker messages are no longer shown"


# --------------------------------------------------------------------------- the web server


class FakeBridge:
    """What the server needs from ros_bridge.ConsoleNode, without ROS."""

    def __init__(self) -> None:
        self.frames = FrameStore()
        self.targets = TargetBoard()
        self.tracker_listening = True
        self.published: list = []

    def publish_selection(self, chosen):
        self.published.append(chosen)
        header = SimpleNamespace(
            stamp=SimpleNamespace(
                sec=chosen.frame.stamp_sec if chosen.frame else 0,
                nanosec=chosen.frame.stamp_nanosec if chosen.frame else 0,
            ),
            frame_id=chosen.frame.frame_id if chosen.frame else "",
        )
        x, y, width, height = chosen.box or (0.0, 0.0, 0.0, 0.0)
        return SimpleNamespace(header=header, x=x, y=y, width=width, height=height)

    def topic_names(self) -> dict[str, str]:
        return {"camera": "/image", "tracked_box": "/tracked_box", "select_target": "/select_target"}


class Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info


def run_with_client(test, settings: ConsoleSettings | None = None, bridge: FakeBridge | None = None):
    """Run ``await test(client, server, bridge)`` against the real application."""
    bridge = bridge or FakeBridge()
    server = ConsoleServer(bridge, settings or ConsoleSettings(port=0), Logger())

    async def main():
        server._loop = asyncio.get_running_loop()
        client = TestClient(TestServer(server.app, host="127.0.0.1"))
        await client.start_server()
        try:
            await test(client, server, bridge)
        finally:
            await client.close()
            server._encoder.shutdown(wait=False)

    asyncio.run(main())


def shown_frame_in(bridge: FakeBridge, width: int = 640, height: int = 480) -> int:
    bridge.frames.put(camera_frame(0, np.zeros((height, width, 3), np.uint8)))
    return bridge.frames.encoded(75, 640).shown.sequence


def test_the_page_and_only_its_own_files_are_served():
    async def test(client, server, bridge):
        response = await client.get("/")
        assert response.status == 200 and "text/html" in response.headers["Content-Type"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert 'src="/static/console.js"' in await response.text()
        for name, kind in (("console.js", "javascript"), ("console.css", "text/css")):
            response = await client.get(f"/static/{name}")
            assert response.status == 200 and kind in response.headers["Content-Type"]
        for path in (
            "/static/../server.py",
            "/static/%2e%2e%2fserver.py",
            "/static/server.py",
            "/etc/passwd",
            "/static/index.html",
            "/static/",
            "/static/..%2F..%2Fsettings.py",
        ):
            response = await client.get(path)
            assert response.status == 404, path
        assert (await client.post("/")).status == 405
        assert (await client.get("/api/select")).status == 405

    run_with_client(test)


def test_bad_selection_requests_get_http_errors_and_publish_nothing():
    async def test(client, server, bridge):
        sequence = shown_frame_in(bridge)
        good = {
            "command": "start",
            "target_id": 1,
            "frame": sequence,
            "box": {"x": 10, "y": 10, "width": 50, "height": 60},
        }
        cases = [
            ({"data": json.dumps(good)}, 415),  # not declared as JSON
            ({"data": "{", "headers": {"Content-Type": "application/json"}}, 400),
            ({"json": dict(good, target_id=-3)}, 422),
            ({"json": dict(good, target_id="1")}, 400),
            ({"json": dict(good, box={"x": 600, "y": 10, "width": 50, "height": 60})}, 422),
            ({"json": dict(good, frame=sequence + 1)}, 409),
            ({"json": dict(good, command="fly")}, 422),
            ({"data": "x" * (MAX_BODY_BYTES + 1), "headers": {"Content-Type": "application/json"}}, 413),
            ({"json": good, "headers": {"Origin": "http://evil.example"}}, 403),
            ({"json": good, "headers": {"Host": "evil.example:8080"}}, 403),
        ]
        for arguments, status in cases:
            response = await client.post("/api/select", **arguments)
            assert response.status == status, (arguments, await response.text())
            assert "error" in await response.json()
        assert bridge.published == []

        bridge.tracker_listening = False
        assert (await client.post("/api/select", json=good)).status == 503
        assert bridge.published == []

        bridge.tracker_listening = True
        response = await client.post("/api/select", json=good)
        assert response.status == 202
        published = (await response.json())["published"]
        assert published["stamp"] == {"sec": 100, "nanosec": 0} and published["frame_id"] == "cam"
        assert published["box"] == {"x": 10, "y": 10, "width": 50, "height": 60}
        assert [(p.command, p.target_id, p.box) for p in bridge.published] == [("start", 1, (10.0, 10.0, 50.0, 60.0))]
        response = await client.post("/api/select", json={"command": "cancel", "target_id": 0})
        assert response.status == 202 and bridge.published[-1].command == "cancel"

    run_with_client(test)


def test_the_access_token_is_required_on_every_request():
    async def test(client, server, bridge):
        sequence = shown_frame_in(bridge)
        for path in ("/", "/static/console.js", "/api/state", "/api/stream"):
            response = await client.get(path)
            assert response.status == 401, path
        response = await client.post("/api/select", json={"command": "cancel", "target_id": 0})
        assert response.status == 401 and bridge.published == []
        assert (await client.get("/", params={"token": "wrong"})).status == 401
        assert (await client.get("/api/state", headers={"Authorization": "Bearer wrong"})).status == 401

        response = await client.get("/", params={"token": "s3cret-token"})
        assert response.status == 200
        cookie = response.cookies[TOKEN_COOKIE]
        assert cookie.value == "s3cret-token" and cookie["httponly"] and cookie["samesite"] == "Strict"
        # The page's later requests carry the cookie (the test client keeps it).
        assert (await client.get("/static/console.js")).status == 200
        client.session.cookie_jar.clear()
        assert (await client.get("/api/state")).status == 401
        headers = {"Authorization": "Bearer s3cret-token"}
        assert (await client.get("/api/state", headers=headers)).status == 200
        response = await client.post(
            "/api/select",
            headers=headers,
            json={
                "command": "replace",
                "target_id": 2,
                "frame": sequence,
                "box": {"x": 1, "y": 1, "width": 9, "height": 9},
            },
        )
        assert response.status == 202 and len(bridge.published) == 1

    run_with_client(test, ConsoleSettings(port=0, token="s3cret-token"))


def test_another_address_accepts_any_host_name():
    async def test(client, server, bridge):
        assert (await client.get("/", headers={"Host": "robot.example:8080"})).status == 200

    run_with_client(test, ConsoleSettings(host="0.0.0.0", port=0))


async def receive_frame(socket) -> dict:
    while True:
        message = await asyncio.wait_for(socket.receive(), timeout=10)
        if message.type == WSMsgType.BINARY:
            length = struct.unpack(">I", message.data[:4])[0]
            header = json.loads(message.data[4 : 4 + length])
            assert message.data[4 + length : 4 + length + 2] == b"\xff\xd8", "a JPEG follows the header"
            return header
        assert message.type == WSMsgType.TEXT, message
        assert json.loads(message.data)["type"] in ("hello", "state")


def test_the_stream_sends_the_newest_frame_only_when_the_page_asks():
    async def test(client, server, bridge):
        for query, status in (({"quality": "200"}, 422), ({"width": "wide"}, 400), ({"speed": "1"}, 400)):
            response = await client.get("/api/stream", params=query)
            assert response.status == status, query
        assert (await client.get("/api/stream")).status == 400, "a plain GET is not a WebSocket"

        image = np.zeros((480, 640, 3), np.uint8)
        bridge.frames.put(camera_frame(0, image))
        socket = await client.ws_connect("/api/stream", params={"quality": "50", "width": "320"}, compress=15)
        assert socket.compress == 0, "JPEGs are sent without permessage-deflate"
        first = await receive_frame(socket)
        assert (first["sequence"], first["width"], first["jpeg_width"], first["quality"]) == (0, 640, 320, 50)
        for sequence in range(1, 6):  # the camera goes on; the page has not asked yet
            bridge.frames.put(camera_frame(sequence, image))
            server.notify()
        await asyncio.sleep(0.3)
        await socket.send_str('{"type": "next"}')
        second = await receive_frame(socket)
        assert second["sequence"] == 5, "frames 1-4 were never queued"

        second_browser = await client.ws_connect("/api/stream", params={"quality": "50", "width": "320"})
        assert (await receive_frame(second_browser))["sequence"] == 5
        state = await (await client.get("/api/state")).json()
        assert state["browsers"] == 2

        await socket.send_str("hello?")  # anything but {"type": "next"} ends the stream
        closing = await asyncio.wait_for(socket.receive(), timeout=10)
        while closing.type == WSMsgType.BINARY or closing.type == WSMsgType.TEXT:
            closing = await asyncio.wait_for(socket.receive(), timeout=10)
        assert socket.close_code == 1008
        await second_browser.close()

    run_with_client(test, ConsoleSettings(port=0, max_fps=60.0))


def test_more_browsers_than_max_clients_are_refused():
    async def test(client, server, bridge):
        first = await client.ws_connect("/api/stream")
        await asyncio.sleep(0.1)
        response = await client.get(
            "/api/stream",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert response.status == 503
        await first.close()

    run_with_client(test, ConsoleSettings(port=0, max_clients=1))


# --------------------------------------------------------------------------- the launch file


@pytest.fixture
def launch_module(monkeypatch):
    """launch/tracker.launch.py with stand-ins for launch and launch_ros (not in this venv)."""
    import importlib.util
    import sys
    import types
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    def record(kind):
        return lambda *args, **kwargs: SimpleNamespace(kind=kind, args=args, **kwargs)

    names = (
        "launch",
        "launch.actions",
        "launch.events",
        "launch.substitutions",
        "launch_ros",
        "launch_ros.actions",
        "launch_ros.event_handlers",
        "launch_ros.events",
        "launch_ros.events.lifecycle",
    )
    modules = {name: types.ModuleType(name) for name in names}
    modules["launch"].LaunchDescription = lambda actions: actions
    modules["launch.actions"].DeclareLaunchArgument = record("argument")
    modules["launch.actions"].OpaqueFunction = record("opaque")
    modules["launch.actions"].EmitEvent = record("emit")
    modules["launch.actions"].RegisterEventHandler = record("handler")
    modules["launch.events"].matches_action = lambda action: action
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch_ros.actions"].Node = record("node")
    modules["launch_ros.actions"].LifecycleNode = record("lifecycle_node")
    modules["launch_ros.event_handlers"].OnStateTransition = record("on_transition")
    modules["launch_ros.events.lifecycle"].ChangeState = record("change_state")
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("tracker_launch", repo / "launch" / "tracker.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "get_package_share_directory", lambda package: str(repo))
    return module


def test_launch_file_starts_the_console_beside_the_node_only_when_asked(launch_module):
    arguments = {
        a.args[0]: a.default_value for a in launch_module.generate_launch_description() if a.kind == "argument"
    }
    assert (arguments["console"], arguments["console_host"], arguments["console_port"]) == (
        "false",
        "127.0.0.1",
        "8080",
    )
    context = dict(arguments, image_topic="/cam/image_raw", namespace="drone1")
    assert launch_module._console_node(context) == []

    context["console"] = "true"
    (console,) = launch_module._console_node(context)
    (tracker,) = launch_module._tracker_node(context)
    assert (console.executable, console.name) == ("operator_console", "operator_console")
    assert console.namespace.name == "namespace" and tracker.namespace == "drone1", "same namespace as the node"
    assert (
        console.remappings
        == tracker.remappings
        == [("image", "/cam/image_raw"), ("image/compressed", "/cam/image_raw/compressed")]
    )
    assert console.parameters == [{"host": "127.0.0.1", "port": 8080, "compressed": False}]

    context.update(use_compressed="true", console_port="9000", console_token="abc")
    (console,) = launch_module._console_node(context)
    assert console.parameters == [{"host": "127.0.0.1", "port": 9000, "compressed": True, "token": "abc"}]
    for name, value in (("console", "yes"), ("console_port", "80a"), ("console_port", "70000")):
        with pytest.raises(ValueError):
            launch_module._console_node(dict(context, **{name: value}))


def test_launch_file_starts_a_managed_node_only_with_lifecycle_true(launch_module):
    arguments = {
        a.args[0]: a.default_value for a in launch_module.generate_launch_description() if a.kind == "argument"
    }
    assert (arguments["lifecycle"], arguments["autostart"]) == ("false", "false")
    context = dict(arguments, image_topic="/cam/image_raw", namespace="drone1")
    (plain,) = launch_module._tracker_node(context)
    assert plain.kind == "node"
    with pytest.raises(ValueError):
        launch_module._tracker_node(dict(context, autostart="true"))  # autostart needs lifecycle

    (managed,) = launch_module._tracker_node(dict(context, lifecycle="true"))
    assert managed.kind == "lifecycle_node" and managed.arguments == ["--lifecycle"]
    assert (managed.name, managed.namespace) == ("siamrpnpp_tracker", "drone1")
    started = launch_module._tracker_node(dict(context, lifecycle="true", autostart="true"))
    assert [action.kind for action in started][0] == "lifecycle_node" and len(started) > 1


def test_pip_installs_the_page_and_the_operator_console_command():
    """setup.py's package_data covers every file of static/, and the console script points at main."""
    import ast
    import fnmatch
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    tree = ast.parse((repo / "setup.py").read_text())
    setup_call = next(
        node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"
    )
    keywords = {keyword.arg: keyword.value for keyword in setup_call.keywords}
    patterns = ast.literal_eval(keywords["package_data"])["siamrpnpp_ros"]
    static = repo / "siamrpnpp_ros" / "tools" / "console" / "static"
    for path in static.iterdir():
        relative = path.relative_to(repo / "siamrpnpp_ros").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), f"{relative} is not in package_data"
    scripts = ast.literal_eval(keywords["entry_points"])["console_scripts"]
    assert "operator_console=siamrpnpp_ros.tools.console.main:main" in scripts
    assert (repo / "scripts" / "operator_console").stat().st_mode & 0o111, "scripts/operator_console is executable"
