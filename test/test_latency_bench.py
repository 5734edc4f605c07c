"""The ROS latency benchmark (``python -m siamrpnpp_ros.tools.latency_bench``).

A short real run: the tracker node in its own process with the alex parity checkpoint, 15
raw 640x480 frames at 10 Hz from this process. Every box must be matched to the frame it
was published for, with a finite end-to-end latency that contains the node's own
processing latency. The statistics are also checked on a made-up run.
"""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

from siamrpnpp_ros.tools.latency_bench import COLUMNS, Material, RunRecord, analyse, pingpong_index, vanish_frames


def test_pingpong_plays_forwards_then_backwards():
    assert [pingpong_index(4, i) for i in range(9)] == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert pingpong_index(1, 5) == 0


@pytest.mark.parametrize("program", ["latency_bench", "soak"])
def test_an_unknown_node_parameter_is_refused_naming_the_nearest(program, capsys):
    # The node would silently ignore it: the real name is tracker.lost_tiles_per_frame.
    main = importlib.import_module(f"siamrpnpp_ros.tools.{program}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--param", "max_targets:=2", "--param", "lost_tiles_per_frame:=1"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exit_info.value.code == 2 and len(errors) == 1
    assert "'lost_tiles_per_frame'" in errors[0] and "nearest: tracker.lost_tiles_per_frame" in errors[0]


def test_analyse_splits_slot_wait_from_work():
    pytest.importorskip("rclpy", reason="rclpy is not installed")  # analyse reads TrackedBox's constants
    record = RunRecord("raw", 921600)
    # 30 Hz camera (stamps 1000..1006), a tracker taking ~100 ms per frame.
    record.window = [(1000 + i, 10.0 + i * 0.033) for i in range(7)]
    record.boxes = [
        (999, 10.000, 0.100, 1),  # INITIALIZING on a pre-roll frame: no figures, but the previous box
        # published 10.099, box here at 10.203 after 100 ms in the node; the tracker was idle.
        (1003, 10.203, 0.100, 2),
        # published 10.198, box here at 10.304 after 103 ms in the node, of which it spent the
        # first 2 ms in the slot: the worker took it when it had sent the box of 1003 (10.203 - delivery).
        (1006, 10.304, 0.103, 3),
    ]
    run = analyse(record, {"model_ms": 95.0, "decode_raw_ms": 0.1})
    assert (run["sent"], run["boxes"], run["dropped"]) == (7, 2, 5)
    first, second = run["frames"]
    assert first["e2e_ms"] == pytest.approx(104.0)
    assert first["node_ms"] == pytest.approx(100.0)
    assert first["ros_ms"] == pytest.approx(4.0)
    assert first["wait_ms"] == 0.0 and first["work_ms"] == pytest.approx(100.0)
    assert first["overhead_ms"] == pytest.approx(104.0 - 95.0)
    assert second["e2e_ms"] == pytest.approx(106.0)
    assert second["ros_ms"] == pytest.approx(3.0)
    assert second["wait_ms"] == pytest.approx(2.0)
    assert second["work_ms"] == pytest.approx(101.0)
    assert second["overhead_ms"] == pytest.approx(106.0 - 2.0 - 95.0)
    assert (run["tracking"], run["lost"]) == (1, 1)
    assert run["e2e_p50_ms"] == pytest.approx(105.0)
    assert run["overhead_p50_ms"] == pytest.approx(9.0)


@pytest.mark.ros
def test_short_raw_run_through_ros(ros_environment, parity_checkpoint, parity_video, tmp_path, capsys):
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from siamrpnpp_ros.tools.latency_bench import main

    report_path = tmp_path / "latency.json"
    code = main(
        [
            "--model",
            "alex",
            "--weights",
            str(parity_checkpoint("alex")),
            "--video",
            str(parity_video),
            "--frames",
            "15",
            "--rate",
            "10",
            "--warmup",
            "2",
            "--transports",
            "raw",
            "--model-frames",
            "2",
            "--json",
            str(report_path),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out

    lines = out.splitlines()
    assert "| " + " | ".join(COLUMNS) + " |" in lines
    rows = [line for line in lines if line.startswith("| raw |")]
    assert len(rows) == 1, out
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert len(cells) == len(COLUMNS)
    assert cells[1] == "15" and int(cells[2]) >= 1 and int(cells[2]) + int(cells[3]) == 15
    assert any(line.startswith("# raw: 900 KiB per message") for line in lines), out
    # TRACKING and LOST apart, under the table (a short run tracks throughout).
    assert any(line.startswith("| raw, TRACKING | ") for line in lines), out
    assert any(line.startswith("| raw, LOST | ") for line in lines), out

    report = json.loads(report_path.read_text())
    (run,) = report["runs"]
    assert run["image"] == "raw" and run["sent"] == 15 and run["boxes"] >= 1
    assert report["reference"]["model_ms"] > 0
    for frame in run["frames"]:
        # One clock (CLOCK_MONOTONIC) on both sides: the node's span lies inside publish -> box.
        assert math.isfinite(frame["e2e_ms"]) and frame["e2e_ms"] > 0
        assert 0 < frame["node_ms"] < frame["e2e_ms"]
        assert frame["wait_ms"] >= 0 and frame["work_ms"] > 0
    assert run["e2e_p50_ms"] > 0 and math.isfinite(run["e2e_p90_ms"])


def test_ros_overhead_subtracts_the_step_of_the_frames_kind():
    """A LOST frame's longer step is model work, not ROS overhead (issue #29)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    record = RunRecord("raw", 921600)
    record.window = [(1000 + i, 10.0 + i * 0.1) for i in range(4)]
    record.boxes = [
        (999, 9.95, 0.020, 1),
        (1000, 10.024, 0.021, 2),  # TRACKING: 24 ms e2e, the node's normal step 18 ms
        (1001, 10.160, 0.057, 3),  # LOST: 60 ms e2e, the node's lost step 55 ms
        (1002, 10.226, 0.022, 2),
    ]
    period = {
        "tracker_step_mean_ms": "30.0",
        "tracking_step_mean_ms": "18.0",
        "lost_step_mean_ms": "55.0",
        "lost_frames_in_period": "1",
        "decode_mean_ms": "0.5",
    }
    record.node_periods = [(10.1, period), (10.2, period)]
    run = analyse(record, {"model_ms": 17.0})
    tracking, lost, tracking_again = run["frames"]
    assert tracking["step_ms"] == 18.0 and tracking["overhead_ms"] == pytest.approx(24.0 - 18.0)
    assert lost["step_ms"] == 55.0 and lost["overhead_ms"] == pytest.approx(60.0 - 55.0)
    assert tracking_again["overhead_ms"] == pytest.approx(26.0 - 18.0)
    assert run["by_status"]["LOST"]["boxes"] == 1 and run["by_status"]["TRACKING"]["boxes"] == 2
    assert run["by_status"]["LOST"]["e2e_p50_ms"] == pytest.approx(60.0)
    assert run["by_status"]["TRACKING"]["e2e_p90_ms"] == pytest.approx(25.8)


def test_vanish_plays_the_empty_pan_after_the_target_is_gone():
    frames = [np.full((48, 64, 3), i, np.uint8) for i in range(5)]
    material = Material(frames, None, (10.0, 10.0, 8.0, 8.0), "clip", "alex-w0.25", None)
    vanish_frames(material, 3, 4)
    assert len(material.frames) == 7 and material.vanish_from == 3
    order = [material.play_index(i) for i in range(12)]
    assert order[:3] == [0, 1, 2] and all(index >= 3 for index in order[3:])
    assert order[3:10] == [3, 4, 5, 6, 5, 4, 3]
