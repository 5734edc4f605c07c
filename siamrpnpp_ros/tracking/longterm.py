"""Long-term SiamRPN++ tracker reproducing pysot's ``SiamRPNLTTracker``.

When the presence (``tracking/presence.py``; by default the best anchor's score, as in pysot)
drops below ``confidence_low`` the target counts as lost: the state is held (not updated) and
the next searches use the wider ``lost_instance_size`` crop with an almost flat window
(``lost_window_influence``), so the target can be re-found anywhere in a larger area. The
tracker returns to the normal search once presence exceeds ``confidence_high``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .tracker import SearchRequest, SiamRPNTracker, TrackResult, _Candidate, clip_state


class LongTermTracker(SiamRPNTracker):
    """pysot's ``SiamRPNLTTracker``: ``SiamRPNTracker`` plus lost-target handling.

    Boxes are top-left ``(x, y, w, h)`` in frame pixels as in ``SiamRPNTracker``. Two pysot
    details are kept on purpose: the state is stored *before* clipping (only the returned box
    is clipped), and in the lost state the state is not moved at all. ``is_lost`` tells
    whether the next ``track`` call searches wide.
    """

    def reset(self) -> None:
        """Forget the target and leave the lost (wide-search) state."""
        super().reset()
        self._lost = False

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """As ``SiamRPNTracker.init``; also starts in the normal (narrow) search state."""
        super().init(frame, box)
        self._lost = False

    @property
    def is_lost(self) -> bool:
        """True while the target counts as lost, i.e. the next search uses the wide crop."""
        return self._lost

    def _search_settings(self) -> tuple[int, float, bool]:
        """The wide search (``lost_instance_size``, ``lost_window_influence``) while lost."""
        cfg = self.config
        if self._lost:
            return cfg.lost_instance_size, cfg.lost_window_influence, True
        return cfg.instance_size, cfg.window_influence, False

    def _update(self, request: SearchRequest, candidate: _Candidate) -> TrackResult:
        """The long-term update (see the module docstring for the states).

        Returns the clipped box as top-left ``(x, y, w, h)`` pixels; ``search_wide`` says whether
        this frame used the wide search and ``lost`` whether the next one will.
        """
        frame = request.frame
        cfg = self.config
        search_wide = request.search_wide
        if candidate.presence >= cfg.confidence_low:
            lr = candidate.lr
            cx = self._center[0] + candidate.offset_x
            cy = self._center[1] + candidate.offset_y
            width = self._size[0] * (1 - lr) + candidate.width * lr
            height = self._size[1] * (1 - lr) + candidate.height * lr
        else:
            # A low score is not trusted to move the target: hold the last confident state.
            cx, cy = self._center
            width, height = self._size
        # pysot keeps the unclipped state here, unlike the short-term tracker.
        self._center = (cx, cy)
        self._size = (width, height)
        cx, cy, width, height = clip_state(cx, cy, width, height, frame.shape[1], frame.shape[0])

        if candidate.presence < cfg.confidence_low:
            self._lost = True
        elif candidate.presence > cfg.confidence_high:
            self._lost = False
        return TrackResult(
            box=(cx - width / 2, cy - height / 2, width, height),
            score=candidate.score,
            center=(cx, cy),
            search_wide=search_wide,
            lost=self._lost,
            presence=candidate.presence,
            features=candidate.features,
        )
