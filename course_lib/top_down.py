"""Top-down data (chapter 06): fixed-size person crops with heatmap targets, the input of SimpleBaseline / HRNet.

A top-down network never sees a whole image: each labelled person is cut out around its
box, widened to the network's aspect ratio and padded (:func:`~course_lib.geometry.box_to_center_scale`),
warped to the input size (:func:`~course_lib.geometry.warp_image`), and its keypoints are
encoded as heatmaps by a :class:`~course_lib.heatmaps.HeatmapCodec`.  Predictions go back
the same way: decoded by the codec to crop pixels, then mapped to the image with
:func:`~course_lib.geometry.crop_to_image`.

* :class:`TopDownDataset`: the crops of any sequence of person dicts (e.g.
  :class:`~course_lib.data.CocoKeypoints`), with the official augmentation.
* :func:`top_down_data`: that data set for a folder of COCO-format data.
* :func:`model_sizes`: a model's ``(input_size, heatmap_size)``.
* :data:`SIMPLEBASELINE_AUGMENTATION`, :data:`HRNET_AUGMENTATION`: the scale and rotation
  factors of the two official recipes (``SCALE_FACTOR``, ``ROT_FACTOR`` of their COCO
  configurations), to pass to :class:`TopDownDataset`.

Sizes are ``(H, W)``; keypoints are ``x, y`` pixels (see :mod:`course_lib`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from course_lib.data import image_to_tensor
from course_lib.geometry import box_to_center_scale, flip_image, flip_keypoints, image_to_crop, warp_image
from course_lib.heatmaps import HeatmapCodec
from course_lib.keypoints import COCO_FLIP_PAIRS
from course_lib.validation import check_array, check_integer, check_positive

Array = Any  # np.ndarray or torch.Tensor
CACHE_LIMIT = 20_000  # people whose images top_down_data keeps decoded in memory by default

# microsoft/human-pose-estimation.pytorch, experiments/coco/resnet50/*.yaml: SCALE_FACTOR 0.3, ROT_FACTOR 40
SIMPLEBASELINE_AUGMENTATION = {"scale_factor": 0.30, "rotation_factor": 40.0}
# leoxiaobin/deep-high-resolution-net.pytorch, experiments/coco/hrnet/*.yaml: SCALE_FACTOR 0.35, ROT_FACTOR 45
HRNET_AUGMENTATION = {"scale_factor": 0.35, "rotation_factor": 45.0}


class TopDownDataset(torch.utils.data.Dataset):
    """Fixed-size person crops with heatmap targets: the input pipeline of SimpleBaseline / HRNet.

    For item ``i`` of ``samples`` (a dict with ``image`` ``(h, w, 3)`` uint8 RGB,
    ``keypoints`` ``(K, 2)``, ``visibility`` ``(K,)``, ``box`` ``(4,)`` COCO xywh, and any
    extra keys such as ``area``, ``head_box``, ``image_id``, ``annotation_id``):

    1. ``center, scale = box_to_center_scale(box, W / H, padding)``;
    2. with ``augment``: scale ``*= clip(1 + sf z, 1 - sf, 1 + sf)``; rotation
       ``= clip(rf z', -2 rf, 2 rf)`` with probability 0.6, else 0 (``z, z'`` standard
       normal, ``sf = scale_factor``, ``rf = rotation_factor`` in degrees, as both official
       codes draw them; the defaults are :data:`HRNET_AUGMENTATION`'s); a left-right flip
       with ``flip_prob``;
    3. the crop is warped to ``input_size`` (:func:`~course_lib.geometry.warp_image`) and the
       keypoints with it; a flip mirrors the crop itself, ``x' = W - 1 - x``, and swaps
       left/right joints, so ``center``, ``scale``, ``rotation`` always describe the crop in
       the original image;
    4. targets: ``self.codec.encode(keypoints, visibility)``, the
       :class:`~course_lib.heatmaps.HeatmapCodec` of ``input_size``, ``heatmap_size``,
       ``sigma`` and the target kind (MSRA, or DARK's unbiased one with ``unbiased=True``).

    Randomness: each epoch draws one table of random numbers, a row per item, from
    ``np.random.default_rng([seed, epoch])`` (:meth:`draws`), so an item is the same
    whatever the batch it comes in or the DataLoader's worker count; call :meth:`set_epoch`
    each epoch for new draws.

    Half-body augmentation (HRNet's ``half_body_transform``, off by default): with
    probability ``half_body_prob``, when more than ``half_body_min_joints`` joints are
    labelled, the crop is cut around the labelled joints of the upper body (``upper_body``,
    chosen when ``z'' < 0.5`` for a standard normal ``z''``, as the official code draws it,
    and when it holds more than 2 joints) or else the lower body: centre = their mean, size =
    their bounding box widened to the aspect ratio, times 1.5.  It comes before the scale
    and rotation draws and uses columns of the table of its own, so switching it on leaves
    every other draw unchanged.

    Visibility after augmentation: a labelled joint that the crop cuts off (outside
    ``-0.5 <= x <= W - 0.5``, same for y) becomes ``v = 0`` in this crop, hence weight 0;
    otherwise flags keep COCO's meaning (hidden joints, v = 1, keep weight 1).

    ``__getitem__`` returns a dict that ``torch.utils.data.default_collate`` batches:

    ==================  ===================  ==================================================
    key                 type / shape         meaning
    ==================  ===================  ==================================================
    image               float32 (3, H, W)    the crop, normalised by ``data.image_to_tensor``
    heatmaps            float32 (K, h, w)    targets
    target_weight       float32 (K,)         loss weight per joint
    keypoints           float32 (K, 2)       crop (input) pixels, after augmentation
    visibility          int64 (K,)           after augmentation (see above)
    keypoints_image     float32 (K, 2)       original image pixels (ground truth)
    visibility_image    int64 (K,)           original flags
    center              float32 (2,)         the crop's centre ``(x, y)`` in the original image
    scale               float32 (2,)         the crop's size ``(w, h)`` in original image pixels
    rotation            float32 ()           degrees
    flipped             bool ()              the crop was mirrored
    box                 float32 (4,)         the person box, COCO xywh
    extra keys          tensors / str        numbers -> 0-d tensors (int64 or float32), arrays
                                             and lists -> tensors (float64 -> float32),
                                             strings unchanged; keys whose value is None are
                                             left out (e.g. a missing ``head_box``)
    ==================  ===================  ==================================================

    To map crop keypoints back to the original image (e.g. predictions)::

        points = item["keypoints"]
        if item["flipped"]:
            points, _ = flip_keypoints(points, item["visibility"], input_width)
        crop_to_image(points, item["center"], item["scale"], item["rotation"], input_size)
    """

    def __init__(
        self,
        samples: Sequence[dict],
        input_size: tuple[int, int] = (256, 192),
        heatmap_size: tuple[int, int] = (64, 48),
        sigma: float = 2.0,
        augment: bool = False,
        scale_factor: float = 0.35,
        rotation_factor: float = 45,
        flip_prob: float = 0.5,
        padding: float = 1.25,
        unbiased: bool = False,
        flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS,
        seed: int = 0,
        half_body_prob: float = 0.0,
        half_body_min_joints: int = 8,
        upper_body: Sequence[int] = tuple(range(11)),
    ) -> None:
        if not (hasattr(samples, "__len__") and hasattr(samples, "__getitem__")):
            raise TypeError(f"samples must be a sequence of dicts, got {type(samples).__name__}")
        self.samples = samples
        self.codec = HeatmapCodec(input_size, heatmap_size, sigma, "unbiased" if unbiased else "msra")
        self.augment = bool(augment)
        self.scale_factor = check_positive(scale_factor, "scale_factor", allow_zero=True)
        if self.scale_factor >= 1:
            raise ValueError(f"scale_factor must be in [0, 1), got {scale_factor!r}")
        self.rotation_factor = check_positive(rotation_factor, "rotation_factor", allow_zero=True)
        self.flip_prob = check_positive(flip_prob, "flip_prob", allow_zero=True)
        if self.flip_prob > 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob!r}")
        self.padding = check_positive(padding, "padding")
        self.flip_pairs = tuple(tuple(pair) for pair in flip_pairs)
        self.seed = check_integer(seed, "seed", minimum=0)
        self.half_body_prob = check_positive(half_body_prob, "half_body_prob", allow_zero=True)
        if self.half_body_prob > 1:
            raise ValueError(f"half_body_prob must be in [0, 1], got {half_body_prob!r}")
        self.half_body_min_joints = check_integer(half_body_min_joints, "half_body_min_joints", minimum=0)
        self.upper_body = tuple(int(i) for i in upper_body)
        self.epoch = 0
        self._table: tuple[int, int, np.ndarray] | None = None  # (epoch, items, draws) of the last epoch drawn

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of the crops."""
        return self.codec.input_size

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(H, W)`` of the target heatmaps."""
        return self.codec.heatmap_size

    @property
    def sigma(self) -> float:
        """The targets' Gaussian sigma, in heatmap pixels."""
        return self.codec.sigma

    @property
    def unbiased(self) -> bool:
        """True for DARK's unbiased targets, False for MSRA's."""
        return self.codec.target == "unbiased"

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draws of this epoch (items depend on seed, epoch, index)."""
        self.epoch = check_integer(epoch, "epoch", minimum=0)

    def draws(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """This epoch's random numbers of the items ``indices``: ``(N, 6)``, a row per item.

        Columns ``z_scale, z_rotation, z_half`` are standard normal, ``u_rotation, u_flip,
        u_half`` uniform in [0, 1).  They are rows of the epoch's table, drawn at once for
        every item from ``np.random.default_rng([seed, epoch])``: an item's numbers depend on
        ``(seed, epoch, index)`` only.
        """
        items = len(self)
        if self._table is None or self._table[:2] != (self.epoch, items):
            rng = np.random.default_rng([self.seed, self.epoch])
            table = np.concatenate([rng.standard_normal((items, 3)), rng.random((items, 3))], axis=1)
            self._table = (self.epoch, items, table)
        return self._table[2][np.asarray(indices, dtype=np.int64) % items]

    def crop_parameters(self, index: int, box: Array, keypoints: Array | None = None,
                        visibility: Array | None = None) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """``center, scale, rotation, flipped`` of item ``index`` (with this epoch's augmentation).

        ``keypoints`` and ``visibility`` are needed for half-body augmentation only.  One
        item of :meth:`crop_parameters_batch`.
        """
        keypoints, visibility = (None if value is None else np.asarray(value)[None] for value in (keypoints, visibility))
        center, scale, rotation, flipped = self.crop_parameters_batch([index], np.asarray(box)[None], keypoints,
                                                                      visibility)
        return center[0], scale[0], float(rotation[0]), bool(flipped[0])

    def crop_parameters_batch(self, indices: Sequence[int], boxes: Array, keypoints: np.ndarray | None = None,
                              visibility: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """``center, scale`` ``(N, 2)``, ``rotation`` ``(N,)`` degrees, ``flipped`` ``(N,)`` of the items ``indices``.

        ``boxes`` ``(N, 4)``; ``keypoints`` ``(N, K, 2)`` and ``visibility`` ``(N, K)`` for
        half-body augmentation.  With ``z, u`` an item's :meth:`draws`, ``sf, rf`` the scale
        and rotation factors::

            center, scale = box_to_center_scale(box, W / H, padding)    (then the half-body crop)
            scale    *= clip(1 + sf z_scale, 1 - sf, 1 + sf)
            rotation  = clip(rf z_rotation, -2 rf, 2 rf)  if u_rotation <= 0.6  else 0
            flipped   = u_flip < flip_prob
        """
        input_height, input_width = self.input_size
        center, scale = box_to_center_scale(boxes, input_width / input_height, self.padding)  # (N, 2) each
        if not self.augment:
            return center, scale, np.zeros(len(center)), np.zeros(len(center), dtype=bool)
        z_scale, z_rotation, z_half, u_rotation, u_flip, u_half = self.draws(indices).T
        if self.half_body_prob > 0 and keypoints is not None and visibility is not None:
            for n in range(len(center)):
                center[n], scale[n] = self._half_body(center[n], scale[n], np.asarray(keypoints[n]),
                                                      np.asarray(visibility[n]), u_half[n], z_half[n])
        sf, rf = self.scale_factor, self.rotation_factor
        scale = scale * np.clip(1 + sf * z_scale, 1 - sf, 1 + sf)[:, None]
        rotation = np.where(u_rotation <= 0.6, np.clip(rf * z_rotation, -2 * rf, 2 * rf), 0.0)
        return center, scale, rotation, u_flip < self.flip_prob

    def _half_body(self, center: np.ndarray, scale: np.ndarray, keypoints: np.ndarray, visibility: np.ndarray,
                   u: float, z: float) -> tuple[np.ndarray, np.ndarray]:
        """The official half-body crop (see the class docstring) with the draws ``u, z``, or ``center, scale``."""
        labelled = visibility > 0
        if not (labelled.sum() > self.half_body_min_joints and u < self.half_body_prob):
            return center, scale
        upper = [j for j in np.flatnonzero(labelled) if j in self.upper_body]
        lower = [j for j in np.flatnonzero(labelled) if j not in self.upper_body]
        chosen = upper if z < 0.5 and len(upper) > 2 else (lower if len(lower) > 2 else upper)
        if len(chosen) < 2:
            return center, scale
        points = keypoints[chosen]  # (k, 2)
        low, high = points.min(axis=0), points.max(axis=0)
        width, height = high - low
        aspect = self.input_size[1] / self.input_size[0]
        width, height = max(width, height * aspect), max(height, width / aspect)
        return points.mean(axis=0), np.array([width, height]) * 1.5

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, keypoints, visibility, box = self._check_sample(sample, index)
        input_height, input_width = self.input_size
        center, scale, rotation, flipped = self.crop_parameters(index, box, keypoints, visibility)

        crop = warp_image(image, center, scale, rotation, self.input_size)
        crop_keypoints = image_to_crop(keypoints, center, scale, rotation, self.input_size)
        crop_visibility = visibility.copy()
        if flipped:
            crop = flip_image(crop)
            crop_keypoints, crop_visibility = flip_keypoints(crop_keypoints, crop_visibility, input_width,
                                                             self.flip_pairs)
        x, y = crop_keypoints[:, 0], crop_keypoints[:, 1]
        inside = (x >= -0.5) & (x <= input_width - 0.5) & (y >= -0.5) & (y <= input_height - 0.5)
        crop_visibility = np.where(inside, crop_visibility, 0)
        heatmaps, weights = self.codec.encode(crop_keypoints, crop_visibility)
        item = {
            "image": image_to_tensor(crop),
            "heatmaps": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(weights),
            "keypoints": torch.from_numpy(crop_keypoints.astype(np.float32)),
            "visibility": torch.from_numpy(crop_visibility.astype(np.int64)),
            "keypoints_image": torch.from_numpy(keypoints.astype(np.float32)),
            "visibility_image": torch.from_numpy(visibility.astype(np.int64)),
            "center": torch.from_numpy(center.astype(np.float32)),
            "scale": torch.from_numpy(scale.astype(np.float32)),
            "rotation": torch.tensor(rotation, dtype=torch.float32),
            "flipped": torch.tensor(flipped),
            "box": torch.from_numpy(box.astype(np.float32)),
        }
        return {**item, **extra_fields(sample)}

    @staticmethod
    def _check_sample(sample: Any, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        where = f"samples[{index}]"
        if not isinstance(sample, dict):
            raise TypeError(f"{where} must be a dict, got {type(sample).__name__}")
        missing = [key for key in ("image", "keypoints", "visibility", "box") if key not in sample]
        if missing:
            raise KeyError(f"{where} lacks the keys {missing}")
        image = check_array(sample["image"], f"{where}['image']", (None, None, 3))
        if image.dtype != np.uint8:
            raise TypeError(f"{where}['image'] must be uint8 RGB, got dtype {image.dtype}")
        keypoints = np.asarray(check_array(sample["keypoints"], f"{where}['keypoints']", (None, 2)), dtype=np.float64)
        visibility = np.asarray(check_array(sample["visibility"], f"{where}['visibility']", keypoints.shape[:1]))
        box = np.asarray(check_array(sample["box"], f"{where}['box']", (4,)), dtype=np.float64)
        if not (box[2:] > 0).all():
            raise ValueError(f"{where}['box'] must have width and height > 0, got {box.tolist()}")
        return image, keypoints, visibility.astype(np.int64), box


_SAMPLE_KEYS = ("image", "keypoints", "visibility", "box")


def extra_fields(sample: dict) -> dict:
    """A sample's fields beyond ``image, keypoints, visibility, box`` (area, ids, head box...), ready to collate."""
    return {key: _collatable(value) for key, value in sample.items() if key not in _SAMPLE_KEYS and value is not None}


def collate_extra_fields(samples: Sequence[dict]) -> dict:
    """``default_collate([extra_fields(s) for s in samples])``, the same tensors, built a key at a time.

    Numbers and arrays of one shape become one tensor per key (int64, or float32 for
    floats) without a tensor per item; other values go through ``default_collate``.
    Samples whose extra keys differ are collated item by item, as ``default_collate`` does.
    """
    first, batch = samples[0], {}
    for key in (key for key in first if key not in _SAMPLE_KEYS):
        values = [sample.get(key) for sample in samples]
        if all(value is None for value in values):
            continue
        if any(value is None for value in values) or any(sample.keys() != first.keys() for sample in samples):
            return torch.utils.data.default_collate([extra_fields(sample) for sample in samples])
        if all(isinstance(value, (bool, int, np.integer)) for value in values):
            batch[key] = torch.tensor([int(value) for value in values], dtype=torch.int64)
        elif all(isinstance(value, (float, np.floating)) for value in values):
            batch[key] = torch.tensor([float(value) for value in values], dtype=torch.float32)
        elif all(isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.shape == values[0].shape
                 for value in values):
            array = np.stack(values)
            batch[key] = torch.from_numpy(array.astype(np.float32 if array.dtype.kind == "f" else np.int64))
        else:
            batch[key] = torch.utils.data.default_collate([_collatable(value) for value in values])
    return batch


def _collatable(value: Any) -> Any:
    """A pass-through value in a form ``default_collate`` can batch (see :class:`TopDownDataset`)."""
    if isinstance(value, (str, bytes, torch.Tensor)):
        return value
    if isinstance(value, (bool, int, np.integer)):
        return torch.tensor(int(value), dtype=torch.int64)
    if isinstance(value, (float, np.floating)):
        return torch.tensor(float(value), dtype=torch.float32)
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return torch.from_numpy(array.astype(np.float32 if array.dtype.kind == "f" else np.int64))
    return value


def model_sizes(
    model: nn.Module, input_size: tuple[int, int] | None = None
) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """``(input_size, heatmap_size)`` of a model: heatmap size = input / ``model.stride`` (None for regressors)."""
    input_size = tuple(input_size or getattr(model, "input_size"))
    stride = getattr(model, "stride", None)
    if stride is None:
        return input_size, None
    return input_size, (input_size[0] // stride, input_size[1] // stride)


def top_down_data(
    split_dir: str | os.PathLike,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int] | None = None,
    *,
    augment: bool = False,
    sigma: float = 2.0,
    flip_prob: float = 0.0,
    limit: int | None = None,
    seed: int = 0,
    cache_images: bool | None = None,
    **options: Any,
) -> TopDownDataset:
    """A :class:`TopDownDataset` over the COCO-format folder ``split_dir``.

    ``heatmap_size`` defaults to input / 4 (regression models ignore the heatmaps).
    ``limit`` keeps the first items only (fast experiments).  Decoded images are kept in
    memory (``cache_images``) by default for up to ``CACHE_LIMIT`` people, e.g. the synthetic
    sets; a larger split (COCO train2017: about 150,000 people) is read from disk each time,
    in the loader's worker processes.
    ``options`` go to ``TopDownDataset`` (``scale_factor``, ``rotation_factor``...).

    Flips are off by default (``flip_prob=0``): the synthetic people wear a left/right tint,
    and a mirrored image shows the left tint on the person's right, contradicting its
    swapped labels.  Chapter 06 shows what flips do with and without tints.
    """
    from course_lib.data import CocoKeypoints

    annotations = Path(split_dir) / "annotations.json"
    if not annotations.is_file():
        raise FileNotFoundError(
            f"{annotations} does not exist: run `make data` (or course_lib.data.ensure_default_data())"
        )
    people = CocoKeypoints(annotations, cache_images=False)
    people.cache_images = len(people) <= CACHE_LIMIT if cache_images is None else bool(cache_images)
    samples = people if limit is None else torch.utils.data.Subset(people, range(min(int(limit), len(people))))
    heatmap_size = heatmap_size or (input_size[0] // 4, input_size[1] // 4)
    return TopDownDataset(samples, input_size=input_size, heatmap_size=heatmap_size, sigma=sigma,
                          augment=augment, flip_prob=flip_prob, seed=seed, **options)
