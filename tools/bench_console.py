"""Benchmark: whether watching the operator console in browsers slows the tracker.

    .venv/bin/python tools/bench_console.py [--rate 30] [--seconds 15] [--rounds 2] [--browsers 2]

Camera player (Debian's vtest.avi, looped), tracker node (bundled model, CPU, one thread) and
console run in separate processes on a private ROS domain, tracking the person of the demo.
Periods without a browser (A) and with ``--browsers`` headless chromiums streaming the page (B)
alternate, A B A B ..., so a drift in machine load hits both alike. Two layouts, one after
the other in the same run:

- ``split``: the robot's processes (player, tracker, console) on CPU 0 and the browsers on
  the other CPUs: the deployment, where the browsers run on the ground station's machine.
  The B/A ratio is what serving the browsers costs the tracker.
- ``shared``: everything on every CPU: the browsers on the robot's own (small) computer.

For each period it reports the tracker's rate (images tracked per second, from tracked_box),
its mean processing latency and tracker step (from /diagnostics), the CPU time the console
process used (percent of one core, from /proc: what serving the browsers costs the robot,
whatever else loads the machine), and the frames each browser drew; then the B/A ratios per
layout. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "test"))  # browser_support: the browser tests' Selenium helpers
sys.path.insert(0, str(REPO_ROOT))

# After the sys.path set-up above.
from browser_support import browser_for_tool, free_port, open_browser, wait_for_http  # noqa: E402

from siamrpnpp_ros.tools import node_under_test as harness  # noqa: E402

VTEST_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_PERSON = (638.0, 240.0, 48.0, 82.0)
SETTLE_S = 4.0


def pin(pid: int, cpus: set[int]) -> None:
    """Move every thread of process ``pid`` onto ``cpus``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, PermissionError):
            pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    """Check the browser and the layouts, then run the periods; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second (default 30)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per period (default 15)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B pairs (default 2)")
    parser.add_argument("--browsers", type=int, default=2, help="browsers in the B periods (default 2)")
    parser.add_argument("--video", default=str(VTEST_VIDEO))
    parser.add_argument("--logs", default="out/bench_console", help="folder for the processes' logs")
    parser.add_argument("--layouts", default="split,shared", help="comma-separated: split, shared")
    args = parser.parse_args()
    browser = browser_for_tool("bench_console")
    if browser is None:
        return 2
    chromium, chromedriver = browser

    if len(os.sched_getaffinity(0)) < 2:
        print("bench_console: needs at least 2 CPUs (the split layout)", file=sys.stderr)
        return 2
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    if not layouts or set(layouts) - {"split", "shared"}:
        print(f"bench_console: --layouts takes split and/or shared, got {args.layouts!r}", file=sys.stderr)
        return 2
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    with harness.isolated_domain(harness.pick_domain_id(30)) as env:
        return measure(args, env, logs, layouts, chromium, chromedriver)


def measure(
    args: argparse.Namespace, env: dict[str, str], logs: Path, layouts: list[str], chromium: str, chromedriver: str
) -> int:
    """Start the processes, select the person, run the A and B periods and print their figures."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from selenium.webdriver.common.by import By

    from siamrpnpp_ros.msg import SelectTarget, TrackedBox

    all_cpus = sorted(os.sched_getaffinity(0))
    robot_cpus, station_cpus = {all_cpus[0]}, set(all_cpus[1:])
    port = free_port()
    peers = [
        harness.start_tracker_node(
            ["device:=cpu", "image_qos:=reliable", "diagnostics_period:=1.0", "threads:=1"], env, logs / "tracker.log"
        ),
        harness.PythonProcess(harness.console_args(port), env, logs / "console.log"),
    ]
    ros = harness.InProcessNode("bench_console")
    node = ros.node
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    boxes: list[tuple[float, TrackedBox]] = []
    tracker = harness.TrackerDiagnostics(node)
    node.create_subscription(TrackedBox, "tracked_box", lambda m: boxes.append((time.monotonic(), m)), reliable)
    selections = node.create_publisher(SelectTarget, "select_target", reliable)
    browsers: list = []
    results: list[dict] = []
    try:
        if not ros.spin_until(
            lambda: node.count_subscribers("select_target") >= 1 and node.count_publishers("tracked_box") >= 1, 180.0
        ):
            print("bench_console: the tracker did not start", file=sys.stderr)
            return 1
        peers.append(
            harness.PythonProcess(
                harness.player_args(args.video, "--rate", str(args.rate), "--loop", "--qos", "reliable"),
                env,
                logs / "player.log",
            )
        )
        wait_for_http(f"http://127.0.0.1:{port}/api/state", {}, 60.0, lambda: peers[1].process.poll() is None)
        if not ros.spin_until(lambda: tracker.frames_received > 0, 60.0):  # a selection before any image is refused
            print("bench_console: the tracker received no images", file=sys.stderr)
            return 1
        selection = SelectTarget(command=SelectTarget.COMMAND_START, target_id=1)  # zero stamp: the newest image
        selection.x, selection.y, selection.width, selection.height = VTEST_PERSON
        selections.publish(selection)
        if not ros.spin_until(lambda: len(boxes) > 10, 60.0):
            print("bench_console: no tracked boxes", file=sys.stderr)
            return 1

        periods = [(layout, phase) for layout in layouts for _ in range(args.rounds) for phase in ("A", "B")]
        for layout, period in periods:
            robot, station = (robot_cpus, station_cpus) if layout == "split" else (set(all_cpus), set(all_cpus))
            for peer in peers:
                pin(peer.process.pid, robot)
            if period == "B":
                os.sched_setaffinity(0, station)  # the browsers' processes inherit it
                try:
                    for _ in range(args.browsers):
                        browser = open_browser(chromium, chromedriver, 1280, 900)
                        browser.get(f"http://127.0.0.1:{port}/")
                        browsers.append(browser)
                finally:
                    os.sched_setaffinity(0, set(all_cpus))
            ros.spin_until(lambda: False, SETTLE_S)

            def drawn() -> list[int]:
                return [int(b.find_element(By.ID, "view").get_attribute("data-frames-shown") or 0) for b in browsers]

            drawn_before = drawn()
            console_cpu_before = cpu_seconds(peers[1].process.pid)
            start = time.monotonic()
            ros.spin_until(lambda: False, args.seconds)
            end = time.monotonic()
            console_cpu = (cpu_seconds(peers[1].process.pid) - console_cpu_before) / (end - start)
            drawn_after = drawn()
            window = [m for t, m in boxes if start <= t < end and m.status != TrackedBox.STATUS_IDLE]
            stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in window}
            latencies = [m.processing_latency.sec * 1e3 + m.processing_latency.nanosec * 1e-6 for m in window]
            step = [value for t, value in tracker.step_means_ms if start <= t <= end + 1.0]
            results.append(
                {
                    "layout": layout,
                    "period": period,
                    "rate": len(stamps) / (end - start),
                    "latency": statistics.mean(latencies) if latencies else float("nan"),
                    "step": statistics.mean(step) if step else float("nan"),
                    "console_cpu": 100.0 * console_cpu,
                    "browser_fps": [(a - b) / (end - start) for a, b in zip(drawn_after, drawn_before, strict=True)],
                }
            )
            row = results[-1]
            shown = ", ".join(f"{fps:.1f}" for fps in row["browser_fps"]) or "-"
            print(
                f"{layout} {period}: tracker {row['rate']:5.1f} fps, latency {row['latency']:6.1f} ms, "
                f"step {row['step']:5.1f} ms; console CPU {row['console_cpu']:4.1f} %; browsers drew {shown} fps",
                flush=True,
            )
            for browser in browsers:
                browser.quit()
            browsers.clear()
    finally:
        for browser in browsers:
            browser.quit()
        for peer in reversed(peers):
            peer.stop()
        ros.close()

    def mean_of(layout: str, period: str, key: str) -> float:
        return float(statistics.mean(r[key] for r in results if r["layout"] == layout and r["period"] == period))

    print(
        f"camera {args.rate:g} fps, {args.rounds} x {args.seconds:g} s per condition, {args.browsers} browsers in B; "
        f"split: robot on CPU {sorted(robot_cpus)}, browsers on CPUs {sorted(station_cpus)}"
    )
    for layout in layouts:
        rate_b, rate_a = mean_of(layout, "B", "rate"), mean_of(layout, "A", "rate")
        print(
            f"{layout}: tracker rate with browsers / without: {rate_b / rate_a:.3f} ({rate_b:.1f} / {rate_a:.1f} fps); "
            f"tracker step {mean_of(layout, 'B', 'step'):.1f} / {mean_of(layout, 'A', 'step'):.1f} ms; "
            f"latency {mean_of(layout, 'B', 'latency'):.1f} / {mean_of(layout, 'A', 'latency'):.1f} ms; "
            f"console CPU {mean_of(layout, 'B', 'console_cpu'):.1f} / {mean_of(layout, 'A', 'console_cpu'):.1f} "
            "% of a core"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
