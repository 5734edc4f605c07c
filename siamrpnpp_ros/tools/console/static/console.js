// SiamRPN++ operator console: the page's logic (plain JavaScript, no build step, no library).
//
// The stream: one WebSocket. The page asks for a frame ({"type": "next"}) only after it has
// drawn the previous one, and the server answers with the newest frame it has, so nothing
// queues up in the browser. A frame is a binary message: a 4-byte big-endian header length,
// a JSON header (sequence, stamp, frame_id, the image's own width and height, the JPEG's
// size), then the JPEG. State (targets, rates) comes as JSON text messages.
//
// Selection: a drag on the picture is converted into the image's own pixels (the overlay's
// viewBox is the image size, whatever the display scaling) and sent with the sequence number
// of the frame that was on screen when the drag began; the server copies that frame's header
// into the SelectTarget.
"use strict";

(() => {
  const MIN_DRAG_PIXELS = 4; // on screen: a smaller drag is taken for a click and ignored
  const STALE_AFTER_S = 1.5; // a box without news for this long is drawn faded
  const RECONNECT_MAX_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const view = $("view");
  const canvas = $("frame");
  const context = canvas.getContext("2d");
  const overlay = $("overlay");
  const boxesLayer = $("boxes");
  const dragRect = $("drag-rect");
  const targetIdInput = $("target-id");
  const message = $("message");
  const SVG = "http://www.w3.org/2000/svg";

  const page = {
    token: null,
    socket: null,
    reconnectDelay: 500,
    shown: null, // header of the frame on the canvas
    drag: null, // {frame, x0, y0, x1, y1, pointerId} in the frame's pixels
    mode: "start",
    targets: [],
    shownTimes: [],
    quality: null,
    width: null,
  };

  // ------------------------------------------------------------------ access token
  // Opened as /?token=...: keep it for this tab, and take it out of the address bar.
  (() => {
    const params = new URLSearchParams(window.location.search);
    const fromUrl = params.get("token");
    if (fromUrl) {
      sessionStorage.setItem("consoleToken", fromUrl);
      history.replaceState(null, "", window.location.pathname);
    }
    page.token = sessionStorage.getItem("consoleToken");
  })();

  function authHeaders() {
    return page.token ? { Authorization: "Bearer " + page.token } : {};
  }

  // ------------------------------------------------------------------ helpers
  function say(text, kind) {
    message.textContent = text;
    message.className = "small " + (kind || "");
  }

  function stampText(stamp) {
    return stamp.sec + "." + String(stamp.nanosec).padStart(9, "0") + " s";
  }

  function formatNumber(value, digits) {
    return value === null || value === undefined || !isFinite(value) ? "–" : value.toFixed(digits);
  }

  function chosenTargetId() {
    const text = targetIdInput.value.trim();
    if (!/^\d{1,10}$/.test(text)) return null;
    const value = Number(text);
    return value <= 4294967295 ? value : null;
  }

  // ------------------------------------------------------------------ stream
  function streamUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams();
    if (page.quality !== null) params.set("quality", String(page.quality));
    if (page.width !== null) params.set("width", String(page.width));
    if (page.token) params.set("token", page.token);
    const query = params.toString();
    return scheme + "//" + window.location.host + "/api/stream" + (query ? "?" + query : "");
  }

  function connect() {
    const socket = new WebSocket(streamUrl());
    socket.binaryType = "arraybuffer";
    page.socket = socket;
    socket.onopen = () => {
      page.reconnectDelay = 500;
      $("connection").textContent = "live";
      $("connection").className = "good";
    };
    socket.onmessage = (event) => {
      if (socket !== page.socket) return;
      if (typeof event.data === "string") {
        handleText(JSON.parse(event.data));
      } else {
        showFrame(socket, event.data);
      }
    };
    socket.onclose = () => {
      if (socket !== page.socket) return; // replaced on purpose (new stream settings)
      $("connection").textContent = "disconnected";
      $("connection").className = "bad";
      explainRefusal();
      setTimeout(connect, page.reconnectDelay);
      page.reconnectDelay = Math.min(RECONNECT_MAX_MS, page.reconnectDelay * 2);
    };
  }

  function reconnect() {
    const old = page.socket;
    page.socket = null;
    if (old) old.close();
    connect();
  }

  async function explainRefusal() {
    // A refused WebSocket tells the page nothing; ask the same server over plain HTTP why.
    try {
      const response = await fetch("/api/state", { headers: authHeaders(), cache: "no-store" });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        say(body.error || "the console answered HTTP " + response.status, "error");
      }
    } catch (error) {
      say("the console cannot be reached", "error");
    }
  }

  function handleText(data) {
    if (data.type === "hello") {
      page.quality = data.quality;
      page.width = data.width;
      $("quality").value = String(data.quality);
      $("quality-value").textContent = String(data.quality);
      const widthSelect = $("width");
      if (![...widthSelect.options].some((option) => Number(option.value) === data.width)) {
        const option = document.createElement("option");
        option.value = String(data.width);
        option.textContent = data.width + " px";
        widthSelect.add(option);
      }
      widthSelect.value = String(data.width);
      $("topics").textContent = "camera " + data.topics.camera + " · boxes " + data.topics.tracked_box +
        " · selections " + data.topics.select_target;
    } else if (data.type === "state") {
      updateState(data);
    }
  }

  async function showFrame(socket, buffer) {
    try {
      const headerLength = new DataView(buffer).getUint32(0, false);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
      const jpeg = new Blob([new Uint8Array(buffer, 4 + headerLength)], { type: "image/jpeg" });
      const bitmap = await createImageBitmap(jpeg);
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      context.drawImage(bitmap, 0, 0);
      bitmap.close();
      if (!page.shown || page.shown.width !== header.width || page.shown.height !== header.height) {
        overlay.setAttribute("viewBox", "0 0 " + header.width + " " + header.height);
        view.style.aspectRatio = header.width + " / " + header.height;
      }
      page.shown = header;
      $("no-image").hidden = true;
      view.dataset.sequence = String(header.sequence);
      view.dataset.stampSec = String(header.stamp.sec);
      view.dataset.stampNanosec = String(header.stamp.nanosec);
      view.dataset.width = String(header.width);
      view.dataset.height = String(header.height);
      view.dataset.framesShown = String(Number(view.dataset.framesShown || "0") + 1);
      $("frame-info").textContent = "frame " + stampText(header.stamp) + (header.frame_id ? " (" + header.frame_id + ")" : "") +
        " · " + header.width + "×" + header.height + " shown as " + header.jpeg_width + "×" + header.jpeg_height +
        " JPEG q" + header.quality;
      const now = performance.now();
      page.shownTimes.push(now);
      while (page.shownTimes.length && now - page.shownTimes[0] > 2000) page.shownTimes.shift();
      drawTargets();
    } catch (error) {
      say("could not show a frame: " + error, "error");
    } finally {
      if (socket.readyState === WebSocket.OPEN) socket.send('{"type":"next"}');
    }
  }

  // ------------------------------------------------------------------ state: targets and rates
  function updateState(data) {
    page.targets = data.targets;
    $("camera-fps").textContent = formatNumber(data.camera_fps, 1);
    $("tracker-fps").textContent = formatNumber(data.tracker_fps, 1);
    $("latency").textContent = formatNumber(data.latency_ms, 0);
    $("delay").textContent = formatNumber(data.delay_ms, 0);
    const times = page.shownTimes;
    const span = times.length > 1 ? (times[times.length - 1] - times[0]) / 1000 : 0;
    $("shown-fps").textContent = span > 0 && performance.now() - times[times.length - 1] < 2000
      ? ((times.length - 1) / span).toFixed(1) : "–";
    $("listening").textContent = data.tracker_listening ? "listening" : "not running";
    $("listening").className = data.tracker_listening ? "good" : "bad";
    drawTargets();
    listTargets();
    listTrackerMessages(data.tracker_messages || []);
  }

  // What the tracker logged lately: a refused START, a selection on an image it never got, LOST.
  function listTrackerMessages(messages) {
    const list = $("tracker-messages");
    const key = messages.map((m) => m.level + m.text).join("\n");
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren();
      for (const entry of messages) {
        const item = document.createElement("li");
        item.className = "level-" + entry.level;
        item.dataset.secondsAgo = String(entry.seconds_ago);
        item.append(document.createElement("span"), " tracker " + entry.level + ": " + entry.text);
        list.appendChild(item);
      }
    }
    [...list.children].forEach((item, index) => {
      item.firstChild.textContent = Math.round(messages[index].seconds_ago) + " s ago ·";
    });
  }

  function drawTargets() {
    const fontSize = page.shown ? Math.max(12, page.shown.width / 45) : 14;
    const seen = new Set();
    for (const target of page.targets) {
      if (target.status === "IDLE") continue;
      const key = String(target.id);
      seen.add(key);
      let group = boxesLayer.querySelector('g[data-target-id="' + key + '"]');
      if (!group) {
        group = document.createElementNS(SVG, "g");
        group.dataset.targetId = key;
        group.appendChild(document.createElementNS(SVG, "rect"));
        group.appendChild(document.createElementNS(SVG, "text"));
        boxesLayer.appendChild(group);
      }
      group.setAttribute("class", "target status-" + target.status +
        (target.seconds_since_update > STALE_AFTER_S ? " stale" : ""));
      group.dataset.status = target.status;
      group.dataset.score = String(target.score);
      const rect = group.firstChild;
      for (const name of ["x", "y", "width", "height"]) {
        rect.setAttribute(name, String(target[name]));
        group.dataset[name] = String(target[name]);
      }
      const label = group.lastChild;
      label.textContent = "#" + target.id + " " + target.status + " " + target.score.toFixed(2);
      // Keep the label on the picture: right-aligned to the box near the right edge, under it near the top.
      const imageWidth = page.shown ? page.shown.width : Infinity;
      const nearRight = target.x + label.textContent.length * fontSize * 0.62 > imageWidth;
      label.setAttribute("text-anchor", nearRight ? "end" : "start");
      label.setAttribute("x", String(nearRight ? Math.min(imageWidth, target.x + target.width) : target.x));
      const above = target.y - fontSize * 0.3;
      label.setAttribute("y", String(above >= fontSize ? above : target.y + target.height + fontSize));
      label.setAttribute("font-size", String(fontSize));
    }
    for (const group of [...boxesLayer.children]) {
      if (!seen.has(group.dataset.targetId)) group.remove();
    }
  }

  // Rows are kept per target and updated in place (a row rebuilt on every state message would
  // swallow a click that lands while it is replaced).
  function targetRow(body, targetId) {
    const key = String(targetId);
    let row = body.querySelector('tr[data-target-id="' + key + '"]');
    if (row) return row;
    row = document.createElement("tr");
    row.dataset.targetId = key;
    for (let index = 0; index < 6; index++) row.insertCell();
    row.cells[0].textContent = key;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger";
    button.textContent = "Cancel";
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      send({ command: "cancel", target_id: targetId });
    });
    row.cells[5].appendChild(button);
    row.addEventListener("click", () => {
      targetIdInput.value = key;
      listTargets();
    });
    return row;
  }

  function listTargets() {
    const body = $("targets").tBodies[0];
    const chosen = chosenTargetId();
    const listed = new Set();
    page.targets.forEach((target, index) => {
      const row = targetRow(body, target.id);
      listed.add(row);
      if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] || null);
      row.dataset.status = target.status;
      row.classList.toggle("chosen", target.id === chosen);
      row.cells[1].textContent = target.status;
      row.cells[1].className = "status-" + target.status;
      row.cells[2].textContent = target.score.toFixed(2);
      row.cells[3].textContent = String(target.age);
      row.cells[4].textContent = [target.x, target.y, target.width, target.height].map((v) => v.toFixed(0)).join(", ");
      row.cells[5].firstChild.hidden = target.status === "IDLE";
    });
    for (const row of [...body.rows]) {
      if (!listed.has(row)) row.remove();
    }
    $("no-targets").hidden = page.targets.length > 0;
  }

  // ------------------------------------------------------------------ selection
  async function send(request) {
    try {
      const response = await fetch("/api/select", {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
        body: JSON.stringify(request),
        cache: "no-store",
      });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 202) {
        say(request.command.toUpperCase() + " not sent: " + (body.error || "HTTP " + response.status), "error");
        return;
      }
      const sent = body.published;
      const last = $("last-selection");
      last.dataset.command = sent.command;
      last.dataset.targetId = String(sent.target_id);
      last.dataset.stampSec = String(sent.stamp.sec);
      last.dataset.stampNanosec = String(sent.stamp.nanosec);
      last.dataset.sequence = sent.frame === null ? "" : String(sent.frame);
      for (const name of ["x", "y", "width", "height"]) last.dataset[name] = String(sent.box[name]);
      if (sent.command === "cancel") {
        last.textContent = "sent CANCEL " + (sent.target_id === 0 ? "for every target" : "target " + sent.target_id);
      } else {
        last.textContent = "sent " + sent.command.toUpperCase() + " target " + sent.target_id + ": box (" +
          [sent.box.x, sent.box.y, sent.box.width, sent.box.height].map((v) => v.toFixed(1)).join(", ") +
          ") on the frame stamped " + stampText(sent.stamp);
      }
      say("sent", "ok");
    } catch (error) {
      say("the console cannot be reached: " + error, "error");
    }
  }

  function imagePoint(event, frame) {
    const bounds = overlay.getBoundingClientRect();
    const x = (event.clientX - bounds.left) * frame.width / bounds.width;
    const y = (event.clientY - bounds.top) * frame.height / bounds.height;
    return [Math.min(frame.width, Math.max(0, x)), Math.min(frame.height, Math.max(0, y))];
  }

  function dragBox(drag) {
    const x = Math.min(drag.x0, drag.x1);
    const y = Math.min(drag.y0, drag.y1);
    return { x: x, y: y, width: Math.abs(drag.x1 - drag.x0), height: Math.abs(drag.y1 - drag.y0) };
  }

  function drawDrag() {
    const drag = page.drag;
    if (!drag) {
      dragRect.setAttribute("visibility", "hidden");
      return;
    }
    const box = dragBox(drag);
    for (const name of ["x", "y", "width", "height"]) dragRect.setAttribute(name, String(box[name]));
    dragRect.setAttribute("visibility", "visible");
  }

  function abandonDrag() {
    if (page.drag && overlay.hasPointerCapture(page.drag.pointerId)) {
      overlay.releasePointerCapture(page.drag.pointerId);
    }
    page.drag = null;
    drawDrag();
  }

  overlay.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    if (!page.shown) {
      say("no image yet: nothing to select on", "error");
      return;
    }
    event.preventDefault();
    // The frame on screen now is the one the box is drawn on, however long the drag takes.
    const frame = page.shown;
    const [x, y] = imagePoint(event, frame);
    page.drag = { frame: frame, x0: x, y0: y, x1: x, y1: y, pointerId: event.pointerId, screenX: event.clientX,
                  screenY: event.clientY };
    overlay.setPointerCapture(event.pointerId);
    drawDrag();
  });

  overlay.addEventListener("pointermove", (event) => {
    const drag = page.drag;
    if (!drag || event.pointerId !== drag.pointerId) return;
    [drag.x1, drag.y1] = imagePoint(event, drag.frame);
    drawDrag();
  });

  overlay.addEventListener("pointerup", (event) => {
    const drag = page.drag;
    if (!drag || event.pointerId !== drag.pointerId) return;
    [drag.x1, drag.y1] = imagePoint(event, drag.frame);
    const small = Math.abs(event.clientX - drag.screenX) < MIN_DRAG_PIXELS ||
      Math.abs(event.clientY - drag.screenY) < MIN_DRAG_PIXELS;
    const box = dragBox(drag);
    abandonDrag();
    if (small) return;
    const targetId = chosenTargetId();
    if (targetId === null || targetId === 0) {
      say("choose a target id from 1 to 4294967295", "error");
      return;
    }
    const round = (value) => Math.round(value * 100) / 100;
    send({
      command: page.mode,
      target_id: targetId,
      frame: drag.frame.sequence,
      box: { x: round(box.x), y: round(box.y), width: round(box.width), height: round(box.height) },
    });
  });

  overlay.addEventListener("pointercancel", abandonDrag);

  // ------------------------------------------------------------------ buttons and keys
  function setMode(mode) {
    page.mode = mode;
    $("mode-start").setAttribute("aria-pressed", String(mode === "start"));
    $("mode-replace").setAttribute("aria-pressed", String(mode === "replace"));
  }

  function cancelChosen() {
    const targetId = chosenTargetId();
    if (targetId === null) {
      say("choose a target id from 0 to 4294967295", "error");
      return;
    }
    send({ command: "cancel", target_id: targetId });
  }

  $("mode-start").addEventListener("click", () => setMode("start"));
  $("mode-replace").addEventListener("click", () => setMode("replace"));
  $("cancel-target").addEventListener("click", cancelChosen);
  $("cancel-all").addEventListener("click", () => send({ command: "cancel", target_id: 0 }));
  targetIdInput.addEventListener("input", listTargets);

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && page.drag) {
      event.preventDefault();
      abandonDrag();
      say("drag abandoned");
      return;
    }
    const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
    if (!typing && !event.ctrlKey && !event.metaKey && !event.altKey && (event.key === "c" || event.key === "C")) {
      event.preventDefault();
      cancelChosen();
    }
  });

  $("quality").addEventListener("input", () => { $("quality-value").textContent = $("quality").value; });
  $("quality").addEventListener("change", () => {
    page.quality = Number($("quality").value);
    reconnect();
  });
  $("width").addEventListener("change", () => {
    page.width = Number($("width").value);
    reconnect();
  });

  connect();
})();
