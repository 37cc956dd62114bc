"""Prediction (chapters 01-09): run a model over top-down crops and read its keypoints in image pixels.

A top-down model sees crops, so its predictions come back in three steps:

1. the model's output is read in **crop pixels**: heatmaps ``(N, K, h, w)`` by the data set's
   :class:`~course_lib.heatmaps.HeatmapCodec` (with the decoder asked for), DeepPose's
   box-normalised coordinates ``(N, K, 2)`` by :func:`~course_lib.geometry.denormalize_from_box`;
2. with the flip test, the mirrored crop's output is brought back and averaged
   (:func:`~course_lib.heatmaps.flip_heatmaps`, :func:`~course_lib.geometry.flip_keypoints`);
3. crop pixels go back to the **original image** with :func:`~course_lib.geometry.crop_to_image`.

:class:`Predictions` keeps the result beside the ground truth of the same items, ready for
:mod:`course_lib.scoring`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib.geometry import crop_to_image, denormalize_from_box, flip_keypoints, input_box
from course_lib.heatmaps import Decoder, HeatmapCodec, flip_heatmaps
from course_lib.keypoints import COCO_FLIP_PAIRS
from course_lib.runtime import resolve_device

__all__ = ["Predictions", "predict"]


@dataclass
class Predictions:
    """A model's predictions over a data set, in original image pixels, with the ground truth beside them.

    ``keypoints`` ``(N, K, 2)`` and ``scores`` ``(N, K)`` are predictions; ``gt_keypoints``,
    ``gt_visibility``, ``boxes`` (COCO xywh), ``areas``, ``head_boxes`` (or None),
    ``image_ids`` and ``annotation_ids`` come from the data; ``heatmaps`` ``(N, K, h, w)`` are
    the maps that were decoded (after the flip test), kept only when :func:`predict` was
    asked to (``keep_heatmaps=True``) and the model outputs heatmaps.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    gt_keypoints: np.ndarray
    gt_visibility: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    head_boxes: np.ndarray | None
    image_ids: np.ndarray
    annotation_ids: np.ndarray
    heatmaps: np.ndarray | None = None

    @property
    def errors(self) -> np.ndarray:
        """``(N, K)`` pixel distance from prediction to ground truth (NaN where not labelled)."""
        distance = np.linalg.norm(self.keypoints - self.gt_keypoints, axis=-1)
        return np.where(self.gt_visibility > 0, distance, np.nan)


@torch.no_grad()
def predict(
    model: nn.Module,
    data: torch.utils.data.Dataset,
    *,
    decoder: Decoder = "dark",
    flip_test: bool = False,
    flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS,
    shift_heatmaps: bool = True,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    progress: bool = False,
    keep_heatmaps: bool = False,
) -> Predictions:
    """Run ``model`` over top-down ``data`` and return predictions in ORIGINAL IMAGE pixels.

    The model's output decides how keypoints are read:

    * heatmaps ``(N, K, h, w)`` (or a list of stages: the last one) are decoded by the data
      set's :class:`~course_lib.heatmaps.HeatmapCodec` at the maps' size, with ``decoder``
      (``"argmax"``, ``"quarter_offset"``, ``"dark"`` with the data's sigma, ``"soft_argmax"``,
      or a function ``heatmaps -> (keypoints, scores)`` in heatmap pixels), to crop pixels;
    * coordinates ``(N, K, 2)`` are DeepPose's box-normalised crop coordinates: denormalised
      by :func:`~course_lib.geometry.input_box` to crop pixels (score 1).

    Either way they are then mapped back with :func:`~course_lib.geometry.crop_to_image`.

    Flip test (``flip_test=True``, SimpleBaseline/HRNet): the mirrored crop is also run;
    its heatmaps are flipped back with :func:`~course_lib.heatmaps.flip_heatmaps` (mirror,
    swap left/right channels, and, with ``shift_heatmaps``, the one-pixel shift that
    compensates ``x' = w - 1 - x`` at stride > 1) and averaged with the original's before
    decoding.  For coordinates, the mirrored prediction is flipped back in crop pixels and
    averaged.

    ``data`` must be a :class:`~course_lib.top_down.TopDownDataset` (or a ``Subset`` of one)
    without augmentation.  With ``keep_heatmaps`` the decoded maps are kept in the result.
    """
    device = resolve_device(device)
    codec = dataclasses.replace(_data_codec(data), decoder=decoder)
    model.to(device).eval()
    # The loader gets a generator of its own: prediction never draws from the global random state.
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0,
                                         pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="predicting", unit="batch", leave=False)
    parts: dict[str, list] = defaultdict(list)
    for batch in loader:
        if batch.get("flipped") is not None and bool(torch.as_tensor(batch["flipped"]).any()):
            raise ValueError("predict() needs data without augmentation (an item was flipped): use augment=False")
        images = batch["image"].to(device)
        points, scores, heatmaps = _crop_keypoints(model, images, codec, flip_test, flip_pairs, shift_heatmaps)
        image_points = crop_to_image(points.cpu().double().numpy(), batch["center"].numpy(), batch["scale"].numpy(),
                                     batch["rotation"].numpy(), codec.input_size)
        parts["keypoints"].append(image_points)
        parts["scores"].append(scores.cpu().double().numpy())
        if keep_heatmaps and heatmaps is not None:
            parts["heatmaps"].append(heatmaps.cpu().numpy())
        _collect_truth(parts, batch)
    if not parts["keypoints"]:
        raise ValueError("data is empty: nothing to predict")
    return _assemble(parts)


def _data_codec(data: Any) -> HeatmapCodec:
    """The codec of the :class:`~course_lib.top_down.TopDownDataset` under any ``Subset`` wrappers."""
    base = data
    while isinstance(base, torch.utils.data.Subset):
        base = base.dataset
    codec = getattr(base, "codec", None)
    if not isinstance(codec, HeatmapCodec):
        raise TypeError("data must be a course_lib.top_down.TopDownDataset (e.g. training.top_down_data(...)) or a "
                        f"Subset of one, whose codec says how heatmaps map to crop pixels; got {type(data).__name__}")
    return codec


def _crop_keypoints(
    model: nn.Module, images: torch.Tensor, codec: HeatmapCodec, flip_test: bool, flip_pairs, shift: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The model's keypoints ``(N, K, 2)`` for a batch of crops, in crop pixels; their scores; the heatmaps (or None)."""
    if tuple(images.shape[-2:]) != codec.input_size:
        raise ValueError(f"the images are {tuple(images.shape[-2:])}, not the data's input_size {codec.input_size}")
    output = _final_output(model(images))
    mirrored = _final_output(model(images.flip(-1))) if flip_test else None
    if output.dim() == 4:  # heatmaps (N, K, h, w)
        heatmaps = output.float()
        if flip_test:
            heatmaps = (heatmaps + flip_heatmaps(mirrored.float(), flip_pairs, shift=shift)) / 2
        points, scores = dataclasses.replace(codec, heatmap_size=tuple(heatmaps.shape[-2:])).decode(heatmaps)
        return torch.as_tensor(points).float(), torch.as_tensor(scores).float(), heatmaps
    if output.dim() == 3 and output.shape[-1] == 2:  # box-normalised coordinates (N, K, 2)
        box = output.new_tensor(input_box(codec.input_size))
        points = denormalize_from_box(output.float(), box)
        if flip_test:
            visibility = torch.ones(points.shape[:-1], device=points.device)
            unmirrored, _ = flip_keypoints(denormalize_from_box(mirrored.float(), box), visibility,
                                           codec.input_size[1], flip_pairs)
            points = (points + unmirrored) / 2
        return points, torch.ones(points.shape[:-1]), None
    raise ValueError(f"the model returned shape {tuple(output.shape)}: expected heatmaps (N, K, h, w) "
                     "or coordinates (N, K, 2)")


def _final_output(output: Any) -> torch.Tensor:
    if isinstance(output, (list, tuple)):
        output = output[-1]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model must return a tensor or a list of stage tensors, got {type(output).__name__}")
    return output


def _collect_truth(parts: dict[str, list], batch: dict) -> None:
    """Append the ground truth and identity of a batch's items (what :class:`Predictions` keeps beside them)."""
    count = len(batch["image"])
    parts["gt_keypoints"].append(batch["keypoints_image"].numpy().astype(np.float64))
    parts["gt_visibility"].append(batch["visibility_image"].numpy())
    parts["boxes"].append(batch["box"].numpy().astype(np.float64))
    area = batch["area"] if "area" in batch else batch["box"][:, 2] * batch["box"][:, 3]
    parts["areas"].append(area.numpy().astype(np.float64))
    if "head_box" in batch:
        parts["head_boxes"].append(batch["head_box"].numpy().astype(np.float64))
    for key, name in (("image_id", "image_ids"), ("annotation_id", "annotation_ids")):
        parts[name].append(batch[key].numpy() if key in batch else np.zeros(count, dtype=np.int64))


def _assemble(parts: dict[str, list]) -> Predictions:
    """One :class:`Predictions` from the per-batch pieces (head boxes and heatmaps only when every batch had them)."""
    joined = {name: np.concatenate(pieces) for name, pieces in parts.items()}
    for optional in ("head_boxes", "heatmaps"):
        if len(parts.get(optional, [])) != len(parts["keypoints"]):
            joined[optional] = None
    return Predictions(**joined)
