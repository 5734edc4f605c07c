"""Several targets in one tracker, with one batched network pass per frame (no ROS).

``MultiTargetTracker`` holds up to ``max_targets`` targets. Everything that belongs to one
target is one value, a :class:`Target`: its id and a ``TrackingSession`` (status, LOST
counters, age) around its own tracker (template kernels, box state, the long-term tracker's
wide-search state), plus the index of the last frame it has seen and its last result. The
targets' trackers are copies of one tracker built by ``tracking.factory.build_tracker``, so
they share its network, device and config; nothing else is shared.

Each frame (:meth:`MultiTargetTracker.step`):

1. every target's tracker makes its own search crop around its own state
   (``SiamRPNTracker.prepare_search``; a lost target's tiles are several crops);
2. the crops of the targets whose searches have the same crop size (the long-term tracker's
   wide search is bigger) and the same number of crops (one, or a lost target's tiles) go
   through the network as one batch, with each crop's target's template kernels stacked
   along the batch: the depth-wise cross-correlation heads correlate each sample with its
   own kernels as one grouped convolution (``models/rpn.py``);
3. every target decodes its own slice of the outputs and updates its own state
   (``finish_search``), then its session updates its status and LOST logic.

With a time budget (``lost_budget``, a ``LostSearchBudget``, ``tracking/longterm.py``), step 1
first gives every lost target the tiles that fit: the budget's crops at the measured cost per
crop, less one per target that searches normally, shared among the lost targets. Frames
without a lost target are not touched by it, except that their time feeds the cost average.

So crops, decoding and state stay per target, the same code as the single-target tracker;
only the network work is batched. A size group of one target runs exactly the single-target
path (bit-identical to ``SiamRPNTracker.track``). In a batch, the convolution library may
pick other algorithms than for one sample, so outputs can differ from the single-target ones
by float rounding; boxes and scores stay within the pysot parity tolerances (0.01 px, 1e-4;
``test/test_multi.py``).

Back-ends: the torch networks (exact, BN-folded, fp16 on CUDA, ``torch.compile``) take any
batch. ONNX Runtime runs fixed-shape graphs: ``OnnxRuntimeModel`` exports and loads one graph
per (search size, batch size) the first time it is needed (:meth:`MultiTargetTracker.warm_up`
does that ahead of time). pysot's reference emulation (``benchmark.speed.PysotReference``)
keeps one template and cannot batch.

Frame indices: every frame a target sees has an index (the node's frame sequence, the CLI's
frame number; increasing). A target skips frames whose index is not newer than the last one it
saw, so a target added on frame ``k`` is not tracked on frame ``k`` itself, and a newly
selected target can catch up through older frames alone (``step(..., target_ids=...)``) while
the others wait for the next frame.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .longterm import LongTermTracker, LostSearchBudget
from .session import LostPolicy, SessionResult, TrackingSession, TrackStatus
from .tracker import SearchRequest, SiamRPNTracker, TrackResult, validate_frame

#: Stacked kernels are cached per group of targets; more distinct groups than this clears it.
_KERNEL_CACHE_LIMIT = 16


class TargetExistsError(ValueError):
    """A target with this id is already tracked."""


class TooManyTargetsError(ValueError):
    """Adding a target would exceed ``max_targets``."""


@dataclass
class Target:
    """One tracked target; all of its state.

    ``session``: id, status, LOST counters and age, around ``session.tracker``, which holds the
    template kernels and the box state. ``last_frame``: index of the last frame this target
    has seen (its init frame, or the last one it was tracked on). ``last_result``: what that
    frame gave (INITIALIZING on the init frame). ``last_tracked``: the tracker's own result on
    that frame (its raw box and score, before the session's LOST handling), passed through
    unchanged; None on the init frame.
    """

    session: TrackingSession
    last_frame: int
    last_result: SessionResult
    last_tracked: TrackResult | None = None

    @property
    def target_id(self) -> int:
        """The target's id (its session's)."""
        return self.session.target_id

    @property
    def tracker(self) -> SiamRPNTracker:
        """The target's own tracker, a copy of the prototype that shares its network."""
        return self.session.tracker  # type: ignore[return-value]

    @property
    def status(self) -> TrackStatus:
        """The target's current status (its session's)."""
        return self.session.status

    @property
    def age(self) -> int:
        """Frames since the target was started, its init frame counting as 1 (its session's)."""
        return self.session.age


class MultiTargetTracker:
    """Up to ``max_targets`` targets, tracked with one batched network pass per frame.

    ``tracker``: a tracker from ``build_tracker`` (short- or long-term, any back-end); it
    serves as the prototype that every target's tracker is copied from, sharing its network,
    and runs the batched passes. Its own target state is never used. ``policy``: the LOST
    logic of every target (``TrackingSession``). Not thread-safe: call it from one thread.

    Boxes are top-left ``(x, y, w, h)`` in frame pixels, as everywhere in ``tracking``.

    ``lost_budget``: the time budget of frames with lost targets (module docstring); None: every
    lost frame searches ``lost_tiles_per_frame`` tiles. ``clock``: seconds on a monotonic clock,
    read around each step to measure its cost for the budget (a test may pass a fake one).
    """

    def __init__(
        self,
        tracker: SiamRPNTracker,
        policy: LostPolicy | None = None,
        max_targets: int = 8,
        lost_budget: LostSearchBudget | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if isinstance(max_targets, bool) or not isinstance(max_targets, int) or max_targets < 1:
            raise ValueError(f"max_targets must be an integer >= 1, got {max_targets!r}")
        self._prototype = tracker
        self.policy = policy or LostPolicy()
        self.max_targets = max_targets
        self.lost_budget = lost_budget
        self._clock = clock
        #: Network crops the last ``step`` ran, all targets together (a per-frame cost counter).
        self.last_step_crops = 0
        self._targets: dict[int, Target] = {}  # in the order they were added
        self._newest_frame = -1
        self._stacked_kernels: dict[tuple[tuple[int, int], ...], tuple[torch.Tensor, ...]] = {}

    # ------------------------------------------------------------------ the collection
    @property
    def network_tracker(self) -> SiamRPNTracker:
        """The prototype tracker: its network, device and config are every target's."""
        return self._prototype

    @property
    def targets(self) -> tuple[Target, ...]:
        """The targets, in the order they were added (a replaced target keeps its place)."""
        return tuple(self._targets.values())

    @property
    def target_ids(self) -> tuple[int, ...]:
        """The ids of the targets, in the order they were added."""
        return tuple(self._targets)

    def get(self, target_id: int) -> Target | None:
        """The target with ``target_id``, or None when there is none."""
        return self._targets.get(int(target_id))

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._targets

    def __len__(self) -> int:
        return len(self._targets)

    @property
    def is_full(self) -> bool:
        """True when ``max_targets`` targets are tracked and no other can be added."""
        return len(self._targets) >= self.max_targets

    # ------------------------------------------------------------------ settings
    def set_policy(self, policy: LostPolicy) -> None:
        """Use ``policy`` for every target, current and future."""
        self.policy = policy
        for target in self._targets.values():
            target.session.policy = policy

    def set_config(self, config: object) -> None:
        """Use tracker ``config`` (a ``TrackerConfig``) for every target, current and future."""
        self._prototype.config = config  # type: ignore[assignment]
        for target in self._targets.values():
            target.tracker.config = config  # type: ignore[assignment]

    # ------------------------------------------------------------------ targets come and go
    def add(
        self, frame: np.ndarray, box: Sequence[float], target_id: int, frame_index: int | None = None
    ) -> SessionResult:
        """Start tracking a new target ``target_id`` in ``box`` (top-left ``x, y, w, h`` pixels) on ``frame``.

        ``frame_index``: the index of ``frame`` (default: the newest frame ``step`` has seen, or
        0 before the first step); the target is tracked from the next index on. Raises
        ``TargetExistsError`` for an id in use, ``TooManyTargetsError`` when full, and
        ValueError for a frame or box the tracker refuses; the other targets are unaffected.
        Returns the INITIALIZING result.
        """
        target_id = int(target_id)
        if target_id in self._targets:
            raise TargetExistsError(f"target {target_id} is already tracked")
        if self.is_full:
            raise TooManyTargetsError(f"already tracking {len(self._targets)} targets (max_targets {self.max_targets})")
        target = self._new_target(frame, box, target_id, frame_index)
        self._targets[target_id] = target
        self._stacked_kernels.clear()
        return target.last_result

    def replace(
        self,
        frame: np.ndarray,
        box: Sequence[float],
        target_id: int,
        frame_index: int | None = None,
        replacing: int | None = None,
    ) -> SessionResult:
        """Re-initialise target ``target_id`` on ``box``, or add it if there is none.

        ``replacing``: the id of the target to replace (default ``target_id``); the new target
        takes its place, with age 1 and a fresh LOST state. Replacing another id by
        ``target_id`` needs ``target_id`` to be free (``TargetExistsError``). Adding beyond
        ``max_targets`` raises ``TooManyTargetsError``. If the tracker refuses the frame or box
        (ValueError), nothing changes. ``frame_index`` as in :meth:`add`.
        """
        target_id = int(target_id)
        old_id = target_id if replacing is None else int(replacing)
        if old_id != target_id and target_id in self._targets:
            raise TargetExistsError(f"target {target_id} is already tracked")
        if old_id not in self._targets:
            return self.add(frame, box, target_id, frame_index)
        target = self._new_target(frame, box, target_id, frame_index)
        # Same position in the order; a new key when the id changes.
        self._targets = {
            (target_id if key == old_id else key): (target if key == old_id else value)
            for key, value in self._targets.items()
        }
        self._stacked_kernels.clear()
        return target.last_result

    def remove(self, target_id: int) -> SessionResult | None:
        """Stop tracking ``target_id``; returns its IDLE result, or None if there is no such target."""
        target = self._targets.pop(int(target_id), None)
        if target is None:
            return None
        self._stacked_kernels.clear()
        return target.session.cancel()

    def clear(self) -> list[SessionResult]:
        """Stop tracking every target; returns their IDLE results, in order."""
        return [result for target_id in list(self._targets) if (result := self.remove(target_id)) is not None]

    def _new_target(self, frame: np.ndarray, box: Sequence[float], target_id: int, frame_index: int | None) -> Target:
        tracker = copy.copy(self._prototype)  # shares the network, config and caches
        tracker.reset()
        session = TrackingSession(tracker, self.policy)
        result = session.start(frame, box, target_id)  # ValueError: nothing was added
        index = max(self._newest_frame, 0) if frame_index is None else int(frame_index)
        self._newest_frame = max(self._newest_frame, index)
        return Target(session, index, result)

    # ------------------------------------------------------------------ tracking
    def needs_frame(self, frame_index: int) -> bool:
        """True when some target has not seen the frame with index ``frame_index`` yet."""
        return any(target.last_frame < frame_index for target in self._targets.values())

    def step(
        self, frame: np.ndarray, frame_index: int | None = None, target_ids: Collection[int] | None = None
    ) -> list[SessionResult]:
        """Track the targets in ``frame`` (HxWx3 uint8 BGR) with one network pass per search size.

        ``frame_index``: the frame's index (default: one after the newest seen). Targets that
        have seen this index already (added on it, or tracked) are skipped. ``target_ids``:
        track only these targets (default all). Returns one result per target tracked, in
        target order. A frame that is not an image raises ValueError before any state changes.
        """
        frame = validate_frame(frame)
        index = self._newest_frame + 1 if frame_index is None else int(frame_index)
        chosen = [
            target
            for target in self._targets.values()
            if target.last_frame < index and (target_ids is None or target.target_id in target_ids)
        ]
        self._newest_frame = max(self._newest_frame, index)
        if not chosen:
            self.last_step_crops = 0
            return []
        budget = self.lost_budget
        if budget is not None:
            self._limit_lost_tiles(budget, chosen)
        started = self._clock()
        requests = [target.tracker.prepare_search(frame) for target in chosen]
        self.last_step_crops = sum(request.crop_count for request in requests)
        outputs = self._run_network(chosen, requests)
        results = []
        for target, request, (cls, loc) in zip(chosen, requests, outputs, strict=True):
            tracked = target.tracker.finish_search(request, cls, loc)
            result = target.session.update(tracked)
            target.last_frame = index
            target.last_result = result
            target.last_tracked = tracked
            results.append(result)
        if budget is not None:
            budget.observe_step(self._clock() - started, self.last_step_crops)
        return results

    @staticmethod
    def _limit_lost_tiles(budget: LostSearchBudget, chosen: Sequence[Target]) -> None:
        """Give each lost target among ``chosen`` the tiles ``budget`` allows this frame."""
        lost = [
            target.tracker
            for target in chosen
            if isinstance(target.tracker, LongTermTracker)
            and target.tracker.is_lost
            and target.tracker.config.lost_search == "tiles"
        ]
        if not lost:
            return  # a tracking frame: nothing to limit, its steps run as without a budget
        allowed = budget.tiles_per_lost_target(len(chosen) - len(lost), len(lost))
        for tracker in lost:
            tracker.lost_tiles_limit = allowed

    def _run_network(
        self, targets: Sequence[Target], requests: Sequence[SearchRequest]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Raw ``(cls, loc)`` for every request: one network call per distinct search size and
        crop count (normal searches apart from lost targets' tiles, so that the batch sizes are
        multiples of either: ONNX Runtime exports a graph per batch size).
        """
        groups: dict[tuple[int, int], list[int]] = {}
        for position, request in enumerate(requests):
            groups.setdefault((request.instance_size, request.crop_count), []).append(position)
        outputs: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(requests)
        for positions in groups.values():
            if len(positions) == 1:
                # One target at this size: exactly the single-target path.
                position = positions[0]
                outputs[position] = targets[position].tracker._run_model(requests[position].crop)
                continue
            crops = torch.cat([requests[p].crop for p in positions], dim=0)
            counts = [requests[p].crop_count for p in positions]
            kernels = self._kernels_for([targets[p] for p in positions], counts)
            cls, loc = self._prototype._run_model(crops, kernels)
            row = 0
            for position, count in zip(positions, counts, strict=True):
                outputs[position] = (cls[row : row + count], loc[row : row + count])
                row += count
        return outputs  # type: ignore[return-value]

    def _kernels_for(self, targets: Sequence[Target], counts: Sequence[int]) -> tuple[torch.Tensor, ...]:
        """The targets' template kernels stacked along the batch, each repeated for its target's
        ``counts`` crops; cached until the targets or their crop counts change.
        """
        key = tuple(zip((target.target_id for target in targets), counts, strict=True))
        stacked = self._stacked_kernels.get(key)
        if stacked is None:
            per_crop = [
                target.tracker.template_kernels for target, n in zip(targets, counts, strict=True) for _ in range(n)
            ]
            assert all(kernels is not None for kernels in per_crop)
            stacked = tuple(torch.cat(parts, dim=0) for parts in zip(*per_crop, strict=True))
            if len(self._stacked_kernels) >= _KERNEL_CACHE_LIMIT:
                self._stacked_kernels.clear()
            self._stacked_kernels[key] = stacked
        return stacked

    def batch_sizes(self) -> list[int]:
        """Every batch size a network call of :meth:`step` can have at the normal search size,
        ascending: 1 to ``max_targets`` crops of targets searching normally, and with the
        long-term tracker's tiles, ``lost_tiles_per_frame`` crops for each of 1 to
        ``max_targets`` lost targets (tiles batch apart from normal searches, ``_run_network``);
        with a ``lost_budget``, any tile count up to that (the budget may cut it).
        """
        sizes = set(range(1, self.max_targets + 1))
        config = self._prototype.config
        if isinstance(self._prototype, LongTermTracker) and config.lost_search == "tiles":
            counts = [config.lost_tiles_per_frame]
            if self.lost_budget is not None:
                counts = list(range(1, config.lost_tiles_per_frame + 1))
            sizes.update(count * lost for count in counts for lost in range(1, self.max_targets + 1))
        return sorted(sizes)

    def warm_up(self, batch_sizes: Sequence[int] | None = None, instance_size: int | None = None) -> None:
        """Run the network once per batch size (default :meth:`batch_sizes`) on blank crops of
        ``instance_size`` (default the config's), so the first frames with that many crops do
        not pay for kernel selection, allocations, or (ONNX Runtime) the export of their graph.
        The targets are unaffected.
        """
        tracker = self._prototype
        size = tracker.config.instance_size if instance_size is None else int(instance_size)
        exemplar = tracker.config.exemplar_size
        blank = torch.full((1, 3, exemplar, exemplar), 114.0, device=tracker.device, dtype=tracker.input_dtype)
        with torch.inference_mode():
            kernels = tracker.model.template(blank)
        kernels = tuple(kernels) if isinstance(kernels, (list, tuple)) else (kernels,)
        for batch in batch_sizes or self.batch_sizes():
            crops = torch.full((int(batch), 3, size, size), 114.0, device=tracker.device, dtype=tracker.input_dtype)
            tracker._run_model(crops, tuple(torch.cat([k] * int(batch), dim=0) for k in kernels))
