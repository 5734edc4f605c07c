"""Long-term SiamRPN++ tracker: pysot's ``SiamRPNLTTracker`` and a bounded-cost variant.

When the presence (``tracking/presence.py``; by default the best anchor's score, as in pysot)
drops below ``confidence_low`` the target counts as lost: the state is held (not updated) and
the next searches look for the target further away, with an almost flat window
(``lost_window_influence``). ``TrackerConfig.lost_search`` says how:

* ``"wide"``: pysot's search, one crop of ``lost_instance_size`` pixels around the held state
  per frame. It covers a larger area at once, but each frame costs about
  ``(lost_instance_size / instance_size)^2`` normal steps (831 against 255 px: ~8x on a CPU),
  and the area still depends on the target's size.
* ``"tiles"`` (the default): ``lost_tiles_per_frame`` normal-size searches per frame, in one
  batched network pass, so a lost frame costs one pass over that many crops. The searches
  visit tiles that cover the whole frame at the target's scale. The first is the one around
  the held state, where a target that was hidden reappears. Then each frame takes the tiles
  that have become most like the target in colour since they were last searched
  (``tile_priorities``): a target that comes back fills its tile with its colours, so that
  tile comes up within a frame or two wherever it is, rather than when a fixed order
  reaches it. Tiles that stay unsearched gain priority with time, so every tile comes up;
  without colours to go by (no appearance), the order is nearest to the held state first,
  round robin. Of a frame's tiles the one with the highest presence counts, and its box is
  taken only when that presence reaches ``confidence_high``, so a look-alike that scores in between does not
  take the track over.
  Two state rules differ from pysot's, because a state that has drifted bigger than the
  target can never find it again (tiles at a 370 px scale do not see a 60 px pedestrian) and
  builds ever larger crop windows: the state is stored clipped to the frame, as the
  short-term tracker stores it, and on losing the target its size goes back to the last
  confident one (presence at or above ``confidence_high``, or the selection's).

The tracker returns to the normal search once presence exceeds ``confidence_high``.

A time budget (:class:`LostSearchBudget`) can lower the tiles of a lost frame below
``lost_tiles_per_frame`` (``LongTermTracker.lost_tiles_limit``), so that a lost frame keeps up
with the camera; the tiles then cover the frame over more frames, and the colour priority
decides which come first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import appearance
from .tracker import SearchRequest, SiamRPNTracker, TrackResult, _Candidate, clip_state

# The lost search's tile priority (``LongTermTracker.tile_priorities``): a tile's colour match
# now, less this share of its match when it was last searched (that much colour is explained:
# nothing was found there), plus ``TILE_WAIT_GAIN`` per frame since then, counted up to
# ``TILE_WAIT_CAP`` frames. Chosen on the long-term validation set, first try: with 1 tile
# per lost frame, present frames reported absent 4.6 % against 8.5 % in the fixed
# nearest-first order (docs/performance.md, "Re-acquisition with the budget").
TILE_EXPLAINED_SHARE = 0.9
TILE_WAIT_GAIN = 0.02
TILE_WAIT_CAP = 25


class LongTermTracker(SiamRPNTracker):
    """pysot's ``SiamRPNLTTracker``: ``SiamRPNTracker`` plus lost-target handling.

    Boxes are top-left ``(x, y, w, h)`` in frame pixels as in ``SiamRPNTracker``. Two pysot
    details are kept on purpose with ``lost_search: wide``: the state is stored *before*
    clipping (only the returned box is clipped), and in the lost state the state is not moved
    unless the target is found. With ``tiles`` the state is stored clipped and a loss holds
    the last confident size (module docstring). ``is_lost`` tells whether the next ``track``
    call is a lost-target search.
    """

    #: At most this many tiles per lost frame, below ``lost_tiles_per_frame`` (None: no limit);
    #: set before each frame from a :class:`LostSearchBudget` (``MultiTargetTracker.step``).
    lost_tiles_limit: int | None = None

    def reset(self) -> None:
        """Forget the target and leave the lost state."""
        super().reset()
        self._lost = False
        self._forget_tiles()
        self._confident_size = self._size

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """As ``SiamRPNTracker.init``; also starts in the normal (narrow) search state."""
        super().init(frame, box)
        self._lost = False
        self._forget_tiles()
        self._confident_size = self._size

    @property
    def is_lost(self) -> bool:
        """True while the target counts as lost, i.e. the next search is a wide one or a tile."""
        return self._lost

    def _forget_tiles(self) -> None:
        self._tiles: list[tuple[float, float]] = []
        self._tiles_frame_size: tuple[int, int] = (0, 0)
        self._lost_frames = 0  # lost searches since the loss began
        # tile index -> (lost search it was last searched in, its colour match then); every
        # tile counts as searched at the loss with no match, so all start alike.
        self._tile_visits: dict[int, tuple[int, float]] = {}

    def _search_settings(self) -> tuple[int, float, bool]:
        """The lost-target search's size and window while lost (module docstring)."""
        cfg = self.config
        if not self._lost:
            return cfg.instance_size, cfg.window_influence, False
        if cfg.lost_search == "tiles":
            return cfg.instance_size, cfg.lost_window_influence, True
        return cfg.lost_instance_size, cfg.lost_window_influence, True

    def _search_centers(self, frame: np.ndarray) -> tuple[tuple[float, float], ...]:
        """The held state's centre, or while lost with ``lost_search: tiles`` the next
        ``lost_tile_count()`` tiles' (module docstring).
        """
        if not (self._lost and self.config.lost_search == "tiles"):
            return (self._center,)
        height, width = frame.shape[:2]
        if self._tiles_frame_size != (width, height) or not self._tiles:
            self._tiles = self.tile_centers(width, height)
            self._tiles_frame_size = (width, height)
            self._tile_visits = {}
        self._lost_frames += 1
        matches = self.tile_colour_matches(frame)
        priorities = self.tile_priorities(matches)
        # The tile around the held state first, once per loss: a hidden target reappears there.
        first = [0] if not self._tile_visits else []
        rest = sorted((i for i in range(len(self._tiles)) if i not in first), key=lambda i: (-priorities[i], i))
        chosen = (first + rest)[: self.lost_tile_count()]
        for index in chosen:
            self._tile_visits[index] = (self._lost_frames, matches[index])
        return tuple(self._tiles[index] for index in chosen)

    def tile_colour_matches(self, frame: np.ndarray) -> list[float]:
        """Per tile, the best colour match (``appearance.colour_match_map``) of a target-sized box
        within the tile's reach; all 0 without an appearance to match.
        """
        if self._appearance is None:
            return [0.0] * len(self._tiles)
        colour_map, shrink = appearance.colour_match_map(frame, self._appearance, self._confident_size)
        half_reach = self._tile_reach() / 2.0
        rows, columns = colour_map.shape
        matches = []
        for x, y in self._tiles:
            x0, x1 = max(0, int((x - half_reach) / shrink)), min(columns, math.ceil((x + half_reach) / shrink) + 1)
            y0, y1 = max(0, int((y - half_reach) / shrink)), min(rows, math.ceil((y + half_reach) / shrink) + 1)
            matches.append(float(colour_map[y0:y1, x0:x1].max()) if x1 > x0 and y1 > y0 else 0.0)
        return matches

    def tile_priorities(self, matches: Sequence[float]) -> list[float]:
        """Per tile, how much it is worth searching now (module constants ``TILE_*``): its
        colour match, less the explained share of its match when last searched, plus its wait.
        """
        priorities = []
        for index, match in enumerate(matches):
            searched_at, match_then = self._tile_visits.get(index, (0, 0.0))
            waited = min(self._lost_frames - searched_at, TILE_WAIT_CAP)
            priorities.append(match - TILE_EXPLAINED_SHARE * match_then + TILE_WAIT_GAIN * waited)
        return priorities

    def lost_tile_count(self) -> int:
        """Tiles the next lost search takes: ``lost_tiles_per_frame``, at most ``lost_tiles_limit``
        (at least 1) and at most the tiles that cover the frame (once they are known).
        """
        count = self.config.lost_tiles_per_frame
        if self.lost_tiles_limit is not None:
            count = min(count, max(1, int(self.lost_tiles_limit)))
        if self._tiles:
            count = min(count, len(self._tiles))
        return count

    def _tile_reach(self) -> float:
        """The span of a tile's anchor centres at the target's scale, in frame pixels."""
        cfg = self.config
        scale, _ = self._search_geometry(cfg.instance_size)
        return (cfg.score_size() - 1) * cfg.anchor_stride / scale

    def tile_centers(self, frame_width: int, frame_height: int) -> list[tuple[float, float]]:
        """The centres, in frame pixels, of the tiles that cover the frame, nearest to the held
        state first: the first is searched first, and the order breaks ties of priority.

        Tiles are spaced by the span of the score map's anchor centres at the target's scale, so
        that every point of the frame lies under some tile's anchors; nearest to the held state
        (moved into the frame) first.
        """
        step = max(self._tile_reach(), 1.0)
        columns = max(1, math.ceil(frame_width / step))
        rows = max(1, math.ceil(frame_height / step))
        held = (
            min(max(self._center[0], 0.0), float(frame_width - 1)),
            min(max(self._center[1], 0.0), float(frame_height - 1)),
        )
        grid = [
            ((i + 0.5) * frame_width / columns, (j + 0.5) * frame_height / rows)
            for j in range(rows)
            for i in range(columns)
        ]
        grid.sort(key=lambda c: (c[0] - held[0]) ** 2 + (c[1] - held[1]) ** 2)
        return grid

    def finish_search(self, request: SearchRequest, cls: torch.Tensor, loc: torch.Tensor) -> TrackResult:
        """As ``SiamRPNTracker.finish_search``; for several tiles (outputs ``(N, 2A, S, S)`` /
        ``(N, 4A, S, S)``, one row per crop) the tile with the highest presence counts.
        """
        if request.crop_count == 1:
            return super().finish_search(request, cls, loc)
        tiles = request.single_crops()
        candidates = [self._decode(cls[i : i + 1], loc[i : i + 1], tile) for i, tile in enumerate(tiles)]
        best = max(range(len(tiles)), key=lambda i: candidates[i].presence)
        return self._update_from_tile(tiles[best], candidates[best])

    def _update(self, request: SearchRequest, candidate: _Candidate) -> TrackResult:
        """The long-term update (see the module docstring for the states).

        Returns the clipped box as top-left ``(x, y, w, h)`` pixels; ``search_wide`` says whether
        this frame was a lost-target search and ``lost`` whether the next one will be.
        """
        cfg = self.config
        if request.search_wide and cfg.lost_search == "tiles":
            return self._update_from_tile(request, candidate)
        frame = request.frame
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
        newly_lost = candidate.presence < cfg.confidence_low and not self._lost
        if cfg.lost_search == "tiles":
            if newly_lost:
                # The size drifted while presence sank: look for the target at the last trusted one.
                width, height = self._confident_size
            cx, cy, width, height = clip_state(cx, cy, width, height, frame.shape[1], frame.shape[0])
            self._center, self._size = (cx, cy), (width, height)
            if candidate.presence >= cfg.confidence_high:
                self._confident_size = self._size
        else:
            # pysot keeps the unclipped state here, unlike the short-term tracker.
            self._center, self._size = (cx, cy), (width, height)
            cx, cy, width, height = clip_state(cx, cy, width, height, frame.shape[1], frame.shape[0])

        if newly_lost:
            self._forget_tiles()  # a new absence: the tiles start again from the held state's
        if candidate.presence < cfg.confidence_low:
            self._lost = True
        elif candidate.presence > cfg.confidence_high:
            self._lost = False
        return self._result(candidate, cx, cy, width, height, search_wide)

    def _update_from_tile(self, request: SearchRequest, candidate: _Candidate) -> TrackResult:
        """The best tile's outcome: the target is found there (state moves, lost ends) or the
        state is held and the next lost frame searches the tiles of highest priority then.
        """
        frame = request.frame
        cfg = self.config
        if candidate.presence >= cfg.confidence_high:
            lr = candidate.lr
            tile_x, tile_y = request.centers[0]
            self._center = (tile_x + candidate.offset_x, tile_y + candidate.offset_y)
            self._size = (
                self._size[0] * (1 - lr) + candidate.width * lr,
                self._size[1] * (1 - lr) + candidate.height * lr,
            )
            self._lost = False
            self._forget_tiles()
        cx, cy, width, height = clip_state(*self._center, *self._size, frame.shape[1], frame.shape[0])
        self._center, self._size = (cx, cy), (width, height)
        if not self._lost:
            self._confident_size = self._size
        return self._result(candidate, cx, cy, width, height, True)

    def _result(
        self, candidate: _Candidate, cx: float, cy: float, width: float, height: float, search_wide: bool
    ) -> TrackResult:
        return TrackResult(
            box=(cx - width / 2, cy - height / 2, width, height),
            score=candidate.score,
            center=(cx, cy),
            search_wide=search_wide,
            lost=self._lost,
            presence=candidate.presence,
            features=candidate.features,
        )


#: ``lost_search_budget`` spellings: follow the camera's measured frame period, or no budget.
BUDGET_AUTO = "auto"
BUDGET_OFF = "off"
#: The part of a frame period that ``auto`` leaves to the rest of the node (image conversion,
#: publishing, the ROS transport; about 3 ms measured, docs/performance.md) and to the jitter of
#: the step time: ``period * (1 - AUTO_MARGIN_FRACTION) - AUTO_MARGIN_MS``.
AUTO_MARGIN_FRACTION = 0.15
AUTO_MARGIN_MS = 4.0
#: Weight of the newest sample in the frame-period and per-crop-cost averages (about the last
#: 10 samples count): steady figures that still follow a change of camera rate or machine load.
SMOOTHING = 0.1
#: Gaps between images longer than this (seconds) are a paused stream, not the camera's period.
MAX_FRAME_GAP_S = 2.0


def parse_lost_search_budget(value: object, name: str = "lost_search_budget") -> float | str:
    """A budget as given (``"auto"``, ``"off"`` or ``False``, or milliseconds as a number or a
    numeric string) -> ``"auto"``, ``"off"`` or a float of milliseconds > 0; ValueError naming
    ``name`` otherwise.
    """
    problem = f"{name} must be auto, off or a number of milliseconds > 0, got {value!r}"
    if value is False:
        return BUDGET_OFF  # YAML, hence ROS's command line and parameter files, reads off as false
    if isinstance(value, str):
        text = value.strip().lower()
        if text in (BUDGET_AUTO, BUDGET_OFF):
            return text
        try:
            value = float(text)
        except ValueError:
            raise ValueError(problem) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(problem)
    return float(value)


@dataclass
class LostSearchBudget:
    """How many network crops a frame with lost targets may run, so that it keeps up with the camera.

    ``budget``: ``"auto"`` (the measured frame period, less the margin above), ``"off"`` (no
    limit: ``lost_tiles_per_frame`` tiles on every lost frame, as without a budget) or a float of
    milliseconds for a frame's step (all targets together).

    The crops that fit are the budget over the measured cost of one crop, an exponential
    average of the step time over the crops of each step (:meth:`observe_step`): measured on
    this machine, under its current load, never assumed. A step of one crop (a tracking frame)
    costs more per crop than a batch of tiles, so before the first lost frames the estimate errs
    on the side of fewer tiles. Nothing here reads a clock: the caller passes the times, so a
    test can drive it with a fake one.
    """

    budget: float | str = BUDGET_AUTO
    frame_period_s: float | None = None  # the average time between images, seconds
    crop_cost_s: float | None = None  # the average step time per crop, seconds
    _last_frame_s: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.budget = parse_lost_search_budget(self.budget)

    def observe_frame(self, when_s: float) -> None:
        """An image arrived at ``when_s`` (seconds on a monotonic clock): update the frame period."""
        previous, self._last_frame_s = self._last_frame_s, float(when_s)
        if previous is None:
            return
        gap = self._last_frame_s - previous
        if not 0.0 < gap <= MAX_FRAME_GAP_S:
            return  # the clock stood still or the stream paused: no period sample
        self.frame_period_s = (
            gap if self.frame_period_s is None else (1 - SMOOTHING) * self.frame_period_s + SMOOTHING * gap
        )

    def observe_step(self, seconds: float, crops: int) -> None:
        """A step ran ``crops`` network crops (all targets) in ``seconds``: update the crop cost."""
        if crops < 1 or not seconds > 0.0:
            return
        sample = seconds / crops
        self.crop_cost_s = (
            sample if self.crop_cost_s is None else (1 - SMOOTHING) * self.crop_cost_s + SMOOTHING * sample
        )

    def seconds(self) -> float | None:
        """The time a frame's step may take, in seconds; None for no limit (``off``, or ``auto``
        before two images have given a frame period).
        """
        if self.budget == BUDGET_OFF:
            return None
        if self.budget == BUDGET_AUTO:
            if self.frame_period_s is None:
                return None
            return max(0.0, self.frame_period_s * (1 - AUTO_MARGIN_FRACTION) - AUTO_MARGIN_MS / 1e3)
        return float(self.budget) / 1e3

    def tiles_per_lost_target(self, normal_searches: int, lost_targets: int) -> int | None:
        """Tiles each of ``lost_targets`` lost targets may search this frame, besides
        ``normal_searches`` one-crop searches of the others; None for no limit.

        The crops that fit in :meth:`seconds` at the measured crop cost, less the normal searches
        (they are never cut: a tracked target keeps its step), shared equally (equal counts batch
        together, ``MultiTargetTracker._run_network``); at least 1, so every lost target keeps
        searching however tight the budget. Without a measured cost yet: 1.
        """
        limit = self.seconds()
        if limit is None or lost_targets < 1:
            return None
        if self.crop_cost_s is None:
            return 1
        crops = math.floor(limit / self.crop_cost_s + 1e-9)
        return max(1, (crops - normal_searches) // lost_targets)


def _average(average: float | None, sample: float) -> float:
    """The exponential average ``average`` with ``sample`` added (the first sample as it is)."""
    return sample if average is None else (1 - SMOOTHING) * average + SMOOTHING * sample
