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

    Randomness comes from ``np.random.default_rng([seed, epoch, index])``: an item is the
    same whatever the DataLoader's worker count; call :meth:`set_epoch` each epoch for new
    draws.

    Half-body augmentation (HRNet's ``half_body_transform``, off by default): with
    probability ``half_body_prob``, when more than ``half_body_min_joints`` joints are
    labelled, the crop is cut around the labelled joints of the upper body (``upper_body``,
    chosen when ``z'' < 0.5`` for a standard normal ``z''``, as the official code draws it,
    and when it holds more than 2 joints) or else the lower body: centre = their mean, size =
    their bounding box widened to the aspect ratio, times 1.5.  It comes before the scale
    and rotation draws and uses a random stream of its own, ``[seed, epoch, index, 1]``, so
    switching it on leaves every other draw unchanged.

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

    def crop_parameters(self, index: int, box: Array, keypoints: Array | None = None,
                        visibility: Array | None = None) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """``center, scale, rotation, flipped`` of item ``index`` (with this epoch's augmentation).

        ``keypoints`` and ``visibility`` are needed for half-body augmentation only.
        """
        input_height, input_width = self.input_size
        center, scale = box_to_center_scale(box, input_width / input_height, self.padding)
        if not self.augment:
            return center, scale, 0.0, False
        if self.half_body_prob > 0 and keypoints is not None and visibility is not None:
            center, scale = self._half_body(index, center, scale, np.asarray(keypoints), np.asarray(visibility))
        rng = np.random.default_rng([self.seed, self.epoch, index % len(self)])
        sf, rf = self.scale_factor, self.rotation_factor
        scale = scale * np.clip(rng.normal() * sf + 1, 1 - sf, 1 + sf)
        rotation = float(np.clip(rng.normal() * rf, -2 * rf, 2 * rf))
        rotation = rotation if rng.random() <= 0.6 else 0.0
        flipped = bool(rng.random() < self.flip_prob)
        return center, scale, rotation, flipped

    def _half_body(self, index: int, center: np.ndarray, scale: np.ndarray, keypoints: np.ndarray,
                   visibility: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The official half-body crop (see the class docstring), or ``center, scale`` unchanged."""
        rng = np.random.default_rng([self.seed, self.epoch, index % len(self), 1])
        labelled = visibility > 0
        if not (labelled.sum() > self.half_body_min_joints and rng.random() < self.half_body_prob):
            return center, scale
        upper = [j for j in np.flatnonzero(labelled) if j in self.upper_body]
        lower = [j for j in np.flatnonzero(labelled) if j not in self.upper_body]
        chosen = upper if rng.normal() < 0.5 and len(upper) > 2 else (lower if len(lower) > 2 else upper)
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


def extra_fields(sample: dict) -> dict:
    """A sample's fields beyond ``image, keypoints, visibility, box`` (area, ids, head box...), ready to collate."""
    return {key: _collatable(value) for key, value in sample.items()
            if key not in ("image", "keypoints", "visibility", "box") and value is not None}


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
