"""Template/search pair sampling (pysot's ``TrkDataset``) as a map-style torch Dataset.

Sample ``i`` of epoch ``e`` has the global index ``e * samples_per_epoch + i`` and is
drawn with ``numpy.random.default_rng([seed, e, i])``, so a run is reproducible
whatever the number of DataLoader workers, and a resumed run sees exactly the
samples it would have seen. :class:`EpochSampler` yields one epoch's global indices,
which lets the DataLoader keep its worker processes across epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

import numpy as np
from torch.utils.data import Dataset, Sampler

from .augment import AugmentConfig, augmented_view, random_patch_box, training_crop
from .boxes import xywh_to_center
from .datasets import Track, TrainingSource
from .targets import AnchorTargetAssigner


@dataclass(frozen=True)
class PairSample:
    """A raw pair before cropping: frames (HxWx3 uint8 BGR) and ``xywh`` target boxes (pixels).

    For a negative pair ``search_box`` is the box of a *different* object (the distractor).
    """

    template_frame: np.ndarray
    template_box: np.ndarray
    search_frame: np.ndarray
    search_box: np.ndarray
    negative: bool
    source: str


class PairGenerator(Protocol):
    """A source that makes whole pairs itself (e.g. ``composite.CompositeSource``), negatives included."""

    name: str
    weight: float

    def sample_pair(self, rng: np.random.Generator) -> PairSample:
        """One template/search pair drawn with ``rng``."""
        ...


class PairDataset(Dataset):
    """Random training pairs with their anchor targets.

    Args:
        sources: where frames come from; a source is picked with probability
            proportional to its ``weight``, then a track uniformly. A
            :class:`PairGenerator` makes its own pairs (and its own negatives;
            ``negative_prob`` applies to the track sources only).
        samples_per_epoch: dataset length (pairs per epoch).
        assigner: anchor targets for the model's score map at ``search_size``.
        template_augment, search_augment: per-branch augmentation (``search_augment.shift``
            is the spatial-aware sampling range).
        exemplar_size, search_size, context_amount: crop geometry (127, 255, 0.5).
        negative_prob: share of negative pairs (pysot 0.2).
        gray_prob: share of pairs converted to gray (pysot 0.0).
        seed: base seed of the per-item random generators.

    Items are dicts of numpy arrays: ``template`` (3, E, E) and ``search`` (3, I, I) float32
    BGR 0..255, ``label_cls`` (A, S, S) int64, ``label_loc`` (4, A, S, S) float32,
    ``label_loc_weight`` (A, S, S) float32, ``search_box`` (4,) float32 ``(cx, cy, w, h)``
    in search-crop pixels, ``negative`` bool.
    """

    def __init__(
        self,
        sources: list[Union[TrainingSource, PairGenerator]],
        samples_per_epoch: int,
        assigner: AnchorTargetAssigner,
        template_augment: AugmentConfig,
        search_augment: AugmentConfig,
        exemplar_size: int = 127,
        search_size: int = 255,
        context_amount: float = 0.5,
        negative_prob: float = 0.2,
        gray_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise ValueError("no training sources")
        self.sources = list(sources)
        weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        self.source_probabilities = weights / weights.sum()
        self.track_sources = [s for s in self.sources if isinstance(s, TrainingSource)]
        track_weights = np.array([s.weight for s in self.track_sources], dtype=np.float64)
        self.track_source_probabilities = track_weights / track_weights.sum() if self.track_sources else track_weights
        self.samples_per_epoch = int(samples_per_epoch)
        self.assigner = assigner
        self.template_augment = template_augment
        self.search_augment = search_augment
        self.exemplar_size = int(exemplar_size)
        self.search_size = int(search_size)
        self.context_amount = float(context_amount)
        self.negative_prob = float(negative_prob)
        self.gray_prob = float(gray_prob)
        self.seed = int(seed)

    def __len__(self) -> int:
        """Samples per epoch (indices past it address later epochs, see the module docstring)."""
        return self.samples_per_epoch

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator global sample ``index`` is drawn with."""
        epoch, item = divmod(int(index), self.samples_per_epoch)
        return np.random.default_rng([self.seed, epoch, item])

    # ------------------------------------------------------------ raw pairs
    def _pick_track(self, rng: np.random.Generator) -> tuple[TrainingSource, Track]:
        """A track of a track source (not a :class:`PairGenerator`)."""
        index = int(rng.choice(len(self.track_sources), p=self.track_source_probabilities))
        source = self.track_sources[index]
        return source, source.tracks[int(rng.integers(len(source.tracks)))]

    @staticmethod
    def _random_frame(track: Track, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        index = int(track.valid[int(rng.integers(len(track.valid)))])
        frame = track.read(index)
        box = track.boxes[index] if track.boxes is not None else random_patch_box(frame, rng)
        return frame, np.asarray(box, dtype=np.float64)

    def sample_pair(self, rng: np.random.Generator) -> PairSample:
        """Draw the frames and boxes of one pair (no cropping yet)."""
        picked = self.sources[int(rng.choice(len(self.sources), p=self.source_probabilities))]
        if not isinstance(picked, TrainingSource):
            return picked.sample_pair(rng)
        source, track = picked, picked.tracks[int(rng.integers(len(picked.tracks)))]
        negative = self.negative_prob > 0 and rng.random() < self.negative_prob
        if negative:
            template_frame, template_box = self._random_frame(track, rng)
            other_source, other = self._pick_track(rng)
            if other is track and sum(len(s.tracks) for s in self.track_sources) > 1:
                for _ in range(8):  # a different object, if there is one
                    other_source, other = self._pick_track(rng)
                    if other is not track:
                        break
            search_frame, search_box = self._random_frame(other, rng)
            return PairSample(template_frame, template_box, search_frame, search_box, True, source.name)

        if not track.labeled:
            # Self-supervised still: the target is a random patch, the search frame another view.
            frame = track.read(0)
            box = random_patch_box(frame, rng)
            view, view_box = augmented_view(frame, box, rng)
            return PairSample(frame, box, view, view_box, False, source.name)

        valid = track.valid
        position = int(rng.integers(len(valid)))
        template_index = int(valid[position])
        # Search frame within frame_range frames of the template (by frame number).
        low = np.searchsorted(valid, template_index - source.frame_range, side="left")
        high = np.searchsorted(valid, template_index + source.frame_range, side="right")
        search_index = int(valid[int(rng.integers(low, high))])
        assert track.boxes is not None
        return PairSample(
            track.read(template_index),
            track.boxes[template_index],
            track.read(search_index),
            track.boxes[search_index],
            False,
            source.name,
        )

    # ------------------------------------------------------------ items
    def make_item(self, pair: PairSample, rng: np.random.Generator) -> dict[str, np.ndarray | np.bool_]:
        """Crop, augment and label one pair (see the class docstring for the item layout)."""
        gray = self.gray_prob > 0 and rng.random() < self.gray_prob
        template = training_crop(
            pair.template_frame,
            xywh_to_center(pair.template_box),
            self.exemplar_size,
            self.template_augment,
            rng,
            self.exemplar_size,
            self.context_amount,
            gray=gray,
        )
        search = training_crop(
            pair.search_frame,
            xywh_to_center(pair.search_box),
            self.search_size,
            self.search_augment,
            rng,
            self.exemplar_size,
            self.context_amount,
            gray=gray,
        )
        targets = self.assigner(search.relative_box, rng, negative=pair.negative)
        return {
            "template": np.ascontiguousarray(template.image.transpose(2, 0, 1)),
            "search": np.ascontiguousarray(search.image.transpose(2, 0, 1)),
            "label_cls": targets.cls,
            "label_loc": targets.delta,
            "label_loc_weight": targets.delta_weight,
            "search_box": search.box.astype(np.float32),
            "negative": np.bool_(pair.negative),
        }

    def __getitem__(self, index: int) -> dict[str, np.ndarray | np.bool_]:
        """Global sample ``index`` (``epoch * samples_per_epoch + i``)."""
        if index < 0:
            raise IndexError(index)
        rng = self.rng_for(index)
        return self.make_item(self.sample_pair(rng), rng)


class EpochSampler(Sampler[int]):
    """Yields the global sample indices of the epoch chosen with :meth:`set_epoch`.

    It runs in the main process, so the DataLoader's persistent workers follow the epoch.
    """

    def __init__(self, samples_per_epoch: int) -> None:
        self.samples_per_epoch = int(samples_per_epoch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Yield the indices of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self):  # noqa: ANN204 - Iterator[int]
        start = self.epoch * self.samples_per_epoch
        return iter(range(start, start + self.samples_per_epoch))
