"""The soak benchmark (``python -m siamrpnpp_ros.tools.soak``) and what it guards.

The schedule of absences and stalls and the memory readers are checked directly. One short
real run (a few thousand frames: the bundled default model, 640x480 at 60 Hz, the target
away twice and the camera restarted once) must account for every frame the node received
(received = processed + dropped + rejected + idle, the idle ones being the frames before the
selection), exit cleanly, and keep its memory within a coarse bound once it runs. The
one-hour figures are docs/performance.md's ("Long runs"), not a test's.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from siamrpnpp_ros.tools.soak import Schedule, read_smaps_memory, read_status_memory

# A short run cannot show a slow leak; it does show a step such as the first wide search's
# activations (~55 MB when they were not warmed up) or an unbounded cache (~1 MB per frame).
RSS_STEP_LIMIT_MB = 40.0
RSS_LIMIT_MB = 1500.0


def test_schedule_places_absences_and_stalls():
    schedule = Schedule(absent_every=20.0, absent_for=5.0, stall_every=30.0, stall_for=2.0)
    assert not schedule.absent(14.9) and schedule.absent(15.0) and schedule.absent(19.9) and not schedule.absent(20.0)
    assert schedule.absent(35.0) and not schedule.absent(-1.0)
    assert not schedule.stalled(14.9) and schedule.stalled(15.0) and schedule.stalled(16.9)
    assert not schedule.stalled(17.0) and schedule.stalled(45.5)
    windows = schedule.windows(50.0)
    assert windows["absent"] == [(15.0, 20.0), (35.0, 40.0)]
    assert windows["stall"] == [(15.0, 17.0), (45.0, 47.0)]
    assert Schedule().windows(100.0) == {"absent": [], "stall": []}
    assert not Schedule().absent(10.0) and not Schedule().stalled(10.0)


def test_memory_readers_see_this_process():
    status = read_status_memory(os.getpid())
    assert status["rss_mb"] > 1 and status["hwm_mb"] >= status["rss_mb"] - 1 and status["threads"] >= 1
    assert status["anon_mb"] > 0
    smaps = read_smaps_memory(os.getpid())
    assert smaps["anon_mappings"] >= 1
    assert 0 < smaps["heap_mb"] + smaps["other_anon_mb"] <= status["rss_mb"] + 1


@pytest.mark.ros
@pytest.mark.slow
def test_short_soak_accounts_for_every_frame(ros_environment, tmp_path, capsys):
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from siamrpnpp_ros.tools.soak import main

    out = tmp_path / "soak"
    code = main(
        [
            "--duration", "50", "--rate", "60",
            "--absent-every", "20", "--absent-for", "4",
            "--stall-every", "50", "--stall-for", "2", "--stall-restart",
            "--sample-period", "1", "--settle", "10", "--quiet", "--out", str(out),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    for name in ("report.md", "soak.png", "boxes.npz", "node.log"):
        assert (out / name).is_file(), name
    saved = np.load(out / "boxes.npz")
    assert saved["box"].shape == (len(saved["t"]), 4) and len(saved["score"]) == len(saved["t"])
    assert ((saved["score"] >= 0) & (saved["score"] <= 1)).all() and (saved["box"][:, 2:] > 0).all()

    assert report["node_exit_code"] == 0, "the node must stop cleanly on SIGINT"
    accounting = report["accounting"]
    assert accounting["published"] > 2000
    received = accounting["received"]
    assert received == accounting["processed"] + accounting["dropped"] + accounting["rejected"] + accounting["idle"]
    assert accounting["unaccounted"] == 0
    assert 0 < accounting["idle"] <= accounting["preroll_published"], "idle: the frames before the selection"
    assert received <= accounting["published"] and accounting["rejected"] == 0
    assert report["stalls"] == 1 and report["restarts"] == 1

    latency = report["latency"]
    assert latency["boxes"] == accounting["processed"] - 1, "one box per processed frame besides the init frame"
    assert latency["lost_episodes"] >= 1, "grey frames must lose the target"
    assert latency["boxes_without_publish_time"] == 0

    memory = report["memory"]
    assert memory["rss_max_after_settle_mb"] - memory["rss_at_settle_mb"] < RSS_STEP_LIMIT_MB, memory
    assert memory["rss_peak_mb"] < RSS_LIMIT_MB, memory
