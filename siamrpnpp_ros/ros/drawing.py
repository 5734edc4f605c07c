"""Annotating frames with a tracked box (the node's debug image and the demo's video)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

# BGR colours by status name: tracking green, initializing cyan, lost red.
STATUS_COLORS = {
    "INITIALIZING": (255, 255, 0),
    "TRACKING": (0, 220, 0),
    "LOST": (0, 0, 255),
    "IDLE": (200, 200, 200),
}


def draw_tracking_overlay(
    frame: np.ndarray,
    box: Sequence[float] | None,
    status: str,
    score: float | None = None,
    fps: float | None = None,
    target_id: int | None = None,
) -> np.ndarray:
    """A copy of ``frame`` (BGR) with the box, status, score and FPS drawn on it."""
    image: np.ndarray = frame.copy()
    color = STATUS_COLORS.get(status, (255, 255, 255))
    if box is not None and status != "IDLE":
        x, y, w, h = (float(v) for v in box)
        thickness = 1 if status == "LOST" else 2
        cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), color, thickness)
    parts = [status if target_id is None else f"{status} #{target_id}"]
    if score is not None:
        parts.append(f"score {score:.2f}")
    if fps is not None:
        parts.append(f"{fps:.1f} fps")
    text = "  ".join(parts)
    origin = (6, 18)
    # A dark outline keeps the text readable on any background.
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    return image


def draw_targets_overlay(frame: np.ndarray, results: Sequence[Any], fps: float | None = None) -> np.ndarray:
    """A copy of ``frame`` (BGR) with every target's box, each labelled ``#id score``, and the FPS.

    ``results``: ``SessionResult``-like (``box`` top-left ``x, y, w, h`` pixels, ``status``,
    ``score``, ``target_id``). One target is drawn as ``draw_tracking_overlay`` draws it.
    """
    if len(results) == 1:
        (result,) = results
        return draw_tracking_overlay(frame, result.box, result.status.name, result.score, fps, result.target_id)
    image: np.ndarray = frame.copy()
    for result in results:
        status = result.status.name
        if status == "IDLE":
            continue
        color = STATUS_COLORS.get(status, (255, 255, 255))
        x, y, w, h = (float(v) for v in result.box)
        cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), color, 1 if status == "LOST" else 2)
        label = f"#{result.target_id} {result.score:.2f}"
        origin = (round(x), max(12, round(y) - 4))
        cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    text = f"{len(results)} targets" + ("" if fps is None else f"  {fps:.1f} fps")
    cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image
