"""Child process for OpenCV contrib trackers (see ``eval/trackers.py``): runs one tracker
over one sequence with the ``cv2`` found first on ``PYTHONPATH`` and writes JSON
``{"boxes": [[x, y, w, h], ...], "seconds": [...], "confidence": [...], "present": [...]}``
(``present``: OpenCV's ``ok`` flag per frame, True on frame 0; ``confidence`` 1.0 when ok,
0.0 when failed). Internal; not a user command.
"""

from __future__ import annotations

import argparse
import json
import sys

from .ope import load_sequence, track_sequence
from .trackers import OpenCVFrameTracker


def main(argv: list[str] | None = None) -> int:
    """Run the worker with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--sequence", required=True)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    sequence = load_sequence(args.sequence).truncated(args.frames)
    result = track_sequence(OpenCVFrameTracker(args.kind), sequence)
    assert result.confidence is not None and result.present is not None  # OpenCVFrameTracker reports them
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "boxes": result.boxes.tolist(),
                "seconds": result.frame_seconds.tolist(),
                "confidence": result.confidence.tolist(),
                "present": result.present.tolist(),
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
