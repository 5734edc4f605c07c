"""The console's web side: an aiohttp application on its own asyncio loop.

Why aiohttp: one maintained library gives the HTTP server, WebSockets (the live stream) and
middlewares (access control), all on asyncio, with no framework on top to configure; it is
packaged by Debian and rosdep as ``python3-aiohttp``. Starlette would need uvicorn beside it
for the same job.

Routes (every one behind the same checks, see ``_guard``):

- ``GET /``: the page; ``GET /static/<name>``: its files, from an in-memory table of the
  files shipped in ``static/`` (nothing else on disk can be served).
- ``GET /api/stream?quality=Q&width=W`` (WebSocket): the live stream. The page asks for a
  frame (``{"type": "next"}``) once it has drawn the previous one and always gets the newest,
  so a slow browser or link shows fewer frames, never late ones. Frames are binary messages:
  a 4-byte big-endian length, a JSON header (see ``frames.EncodedFrame.header``), the JPEG.
  Target boxes and rates come as JSON ``state`` messages, at most ``STATE_HZ`` a second.
- ``POST /api/select`` (JSON, see ``validation``): publishes a ``SelectTarget``; 202 when sent.
- ``GET /api/state``: the same state as JSON, for scripts.

Threads: JPEG encoding runs in one worker thread (so at most one core, whatever the number
of browsers); each browser has its own sender task, and a browser that reads slowly only
delays its own task.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import struct
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from siamrpnpp_ros.tools.console.settings import ConsoleSettings, is_loopback_host
from siamrpnpp_ros.tools.console.validation import (
    MAX_BODY_BYTES,
    RequestError,
    parse_client_message,
    parse_selection,
    parse_stream_options,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
TOKEN_COOKIE = "siamrpnpp_console_token"
STATE_HZ = 20.0  # most state messages a second per browser
STATE_REFRESH_S = 1.0  # state is re-sent at least this often (rates and ages move)
WARNING_PERIOD_S = 5.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = {"localhost"}


def load_static_files(folder: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """``{file name: (content, content type)}`` of the page's files (read once, at start)."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            files[path.name] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
    if "index.html" not in files:
        raise FileNotFoundError(f"the console's page is missing: {folder / 'index.html'}")
    return files


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@dataclass(eq=False)
class _Client:
    """One browser's stream."""

    quality: int
    width: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ready: bool = True  # the page asked for a frame (it is ready from the start)
    last_sequence: int = -1
    last_frame_at: float = -1e9
    frames_sent: int = 0


class ConsoleServer:
    """The web application around ``bridge`` (``ros_bridge.ConsoleNode`` or a stand-in with
    ``frames``, ``targets``, ``tracker_listening``, ``publish_selection``, ``topic_names``).
    """

    def __init__(self, bridge: Any, settings: ConsoleSettings, logger: Any) -> None:
        self.bridge = bridge
        self.settings = settings
        self.logger = logger
        self.static = load_static_files()
        self.clients: set[_Client] = set()
        self.port: int | None = None
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console_jpeg")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_scheduled = False
        self._last_warning: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/static/{name}", self._static)
        self.app.router.add_get("/api/stream", self._stream)
        self.app.router.add_get("/api/state", self._state)
        self.app.router.add_post("/api/select", self._select)

    # ------------------------------------------------------------------ any thread
    def notify(self) -> None:
        """Wake the browsers' senders: a frame or a box came in. Safe from any thread."""
        loop = self._loop
        if loop is None or self._wake_scheduled:
            return
        self._wake_scheduled = True
        try:
            loop.call_soon_threadsafe(self._wake_all)
        except RuntimeError:  # the loop is closing
            pass

    def _wake_all(self) -> None:
        self._wake_scheduled = False
        for client in self.clients:
            client.wake.set()

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(kind, -1e9) >= WARNING_PERIOD_S:
            self._last_warning[kind] = now
            self.logger.warning(message)

    # ------------------------------------------------------------------ access control
    def _host_allowed(self, request: web.Request) -> bool:
        """Bound to loopback: only loopback names in the Host header (a DNS-rebinding page
        would send its own name). Bound elsewhere: any Host (the token guards it).
        """
        if not self.settings.is_loopback:
            return True
        host = (request.url.host or "").lower()
        return host in LOOPBACK_NAMES or is_loopback_host(host)

    def _origin_allowed(self, request: web.Request) -> bool:
        """A browser names the page that sends a request in Origin; only our own page may
        (so another site open in the same browser cannot steer the robot).
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        return (
            (parts.hostname or "").lower() == (request.url.host or "").lower()
            and port is not None
            and port == request.url.port
        )

    def _token_state(self, request: web.Request) -> str:
        """``"open"`` (no token set), ``"cookie"``/``"header"``/``"query"`` (where a valid one
        was found) or ``""`` (missing or wrong).
        """
        token = self.settings.token
        if not token:
            return "open"
        expected = token.encode()
        authorization = request.headers.get("Authorization", "")
        candidates = [
            ("header", authorization[7:] if authorization.startswith("Bearer ") else ""),
            ("cookie", request.cookies.get(TOKEN_COOKIE, "")),
            ("query", request.query.get("token", "")),
        ]
        found = ""
        for where, value in candidates:
            # Every candidate is compared, in constant time, whatever matched before.
            if value and hmac.compare_digest(value.encode(), expected) and not found:
                found = where
        return found

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self._host_allowed(request):
            response: web.StreamResponse = _error(
                403,
                "this Host name is not served (DNS-rebinding protection); open the console as http://127.0.0.1:<port>/",
            )
        elif not self._origin_allowed(request):
            response = _error(403, "cross-origin requests are refused")
        elif not (where := self._token_state(request)):
            response = _error(
                401,
                "a valid access token is required: open the page as /?token=<token>, or send "
                "'Authorization: Bearer <token>'",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="operator console"'
        else:
            try:
                response = await handler(request)
            except web.HTTPException as error:  # the router's 404 / 405, a 413 from the body reader
                response = _error(error.status, error.reason)
            if where == "query" and request.path == "/":
                # The page's own requests (script, stream, selections) then carry the cookie.
                response.set_cookie(TOKEN_COOKIE, self.settings.token, httponly=True, samesite="Strict", path="/")
        if not response.prepared:  # a WebSocket's headers are already out
            response.headers.update(SECURITY_HEADERS)
        return response

    # ------------------------------------------------------------------ page and files
    async def _index(self, request: web.Request) -> web.Response:
        body, content_type = self.static["index.html"]
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "index.html" or name not in self.static:
            return _error(404, "no such file")
        body, content_type = self.static[name]
        return web.Response(
            body=body, content_type=content_type, charset="utf-8" if content_type.startswith("text/") else None
        )

    # ------------------------------------------------------------------ API
    def state_message(self) -> dict[str, Any]:
        """The ``state`` message for pages: the targets' snapshot plus camera, tracker and browser counts."""
        state: dict[str, Any] = self.bridge.targets.snapshot()
        state.update(
            type="state",
            camera_fps=self.bridge.frames.rate(),
            frames_received=self.bridge.frames.count,
            tracker_listening=bool(self.bridge.tracker_listening),
            browsers=len(self.clients),
        )
        return state

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state_message())

    async def _select(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "send the selection as Content-Type: application/json")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        body = await request.read()
        try:
            selection = parse_selection(body, self.bridge.frames.shown)
        except RequestError as error:
            return _error(error.status, str(error))
        if not self.bridge.tracker_listening:
            return _error(503, "no tracker subscribes to select_target; nothing was sent")
        message = self.bridge.publish_selection(selection)
        published = {
            "command": selection.command,
            "target_id": selection.target_id,
            "stamp": {"sec": message.header.stamp.sec, "nanosec": message.header.stamp.nanosec},
            "frame_id": message.header.frame_id,
            "box": {"x": message.x, "y": message.y, "width": message.width, "height": message.height},
            "frame": selection.frame.sequence if selection.frame is not None else None,
        }
        where = (
            ""
            if selection.frame is None
            else (
                f" on the image stamped {message.header.stamp.sec}.{message.header.stamp.nanosec:09d}, box "
                f"({message.x:.1f}, {message.y:.1f}, {message.width:.1f}, {message.height:.1f})"
            )
        )
        self.logger.info(f"operator: {selection.command.upper()} target {selection.target_id}{where}")
        return web.json_response({"published": published}, status=202)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        try:
            options = parse_stream_options(request.query, self.settings.jpeg_quality, self.settings.width)
        except RequestError as error:
            return _error(error.status, str(error))
        if len(self.clients) >= self.settings.max_clients:
            return _error(503, f"already {self.settings.max_clients} browsers streaming (parameter max_clients)")
        # No permessage-deflate: JPEGs do not shrink, and deflating them would cost the robot's CPU.
        socket = web.WebSocketResponse(heartbeat=15.0, max_msg_size=1024, compress=False)
        if not socket.can_prepare(request).ok:
            return _error(400, "this endpoint is a WebSocket")
        socket.headers.update(SECURITY_HEADERS)
        await socket.prepare(request)
        client = _Client(options.quality, options.width)
        self.clients.add(client)
        sender = asyncio.create_task(self._send_loop_guarded(socket, client))
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    await socket.close(code=1003, message=b"text messages only")
                    break
                try:
                    parse_client_message(message.data)
                except RequestError as error:
                    await socket.close(code=1008, message=str(error).encode()[:120])
                    break
                client.ready = True
                client.wake.set()
        finally:
            self.clients.discard(client)
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, ConnectionError):
                pass
        return socket

    async def _send_loop_guarded(self, socket: web.WebSocketResponse, client: _Client) -> None:
        try:
            await self._send_loop(socket, client)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as error:  # noqa: BLE001 - one browser's failure must not go unnoticed
            self._warn("sender", f"stream to a browser failed ({type(error).__name__}: {error}); closing it")
            await socket.close(code=1011)

    async def _send_loop(self, socket: web.WebSocketResponse, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        frames = self.bridge.frames
        await socket.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "quality": client.quality,
                    "width": client.width,
                    "max_fps": self.settings.max_fps,
                    "topics": self.bridge.topic_names(),
                    "token_required": bool(self.settings.token),
                }
            )
        )
        state_version, state_sent_at = -1, -1e9
        min_frame_interval = 1.0 / self.settings.max_fps
        while not socket.closed:
            client.wake.clear()
            now = loop.time()
            sleep = STATE_REFRESH_S
            # State: whenever it changed (at most STATE_HZ a second), and at least once a second.
            version = self.bridge.targets.version
            state_due = state_sent_at + (1.0 / STATE_HZ if version != state_version else STATE_REFRESH_S)
            if now >= state_due:
                await socket.send_str(json.dumps(self.state_message()))
                state_version, state_sent_at = version, loop.time()
                state_due = state_sent_at + STATE_REFRESH_S
            sleep = min(sleep, max(0.0, state_due - loop.time()))
            # Frame: only when the page asked for one and a newer frame exists.
            if client.ready and frames.newest_sequence > client.last_sequence:
                frame_due = client.last_frame_at + min_frame_interval
                if loop.time() >= frame_due:
                    await self._send_frame(socket, client)
                else:
                    sleep = min(sleep, frame_due - loop.time())
            if not client.wake.is_set():
                try:
                    await asyncio.wait_for(client.wake.wait(), timeout=max(0.005, sleep))
                except asyncio.TimeoutError:
                    pass

    async def _send_frame(self, socket: web.WebSocketResponse, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        frames = self.bridge.frames
        try:
            encoded = await loop.run_in_executor(
                self._encoder, frames.encoded, client.quality, client.width, client.last_sequence
            )
        except ValueError as error:
            self._warn("decode", f"cannot show a camera image: {error}")
            client.last_sequence = frames.newest_sequence  # skip it; wait for the next one
            return
        if encoded is None:
            return
        header = json.dumps(encoded.header()).encode()
        client.ready = False
        client.last_sequence = encoded.shown.sequence
        client.last_frame_at = loop.time()
        client.frames_sent += 1
        await socket.send_bytes(struct.pack(">I", len(header)) + header + encoded.jpeg)

    # ------------------------------------------------------------------ start and stop
    async def start(self) -> str:
        """Start serving; returns the page's URL."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        """Stop serving and shut the encoder thread down (pending encodings are cancelled)."""
        if self._runner is not None:
            await self._runner.cleanup()
        self._loop = None
        self._encoder.shutdown(wait=False, cancel_futures=True)
