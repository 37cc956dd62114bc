"""Keypoints the Mask R-CNN way: one backbone pass over the whole image, ROI features per person (chapter 05).

He, Gkioxari, Dollár, Girshick, "Mask R-CNN", ICCV 2017, https://arxiv.org/abs/1703.06870,
sections 3 (RoIAlign) and 5 (human pose).  A top-down pose network of chapters 01-04 cuts
each person out of the *image* and runs a whole network per crop.  Mask R-CNN runs the
backbone **once** on the whole image and cuts each person out of the *feature map*::

    images (N, 3, H, W) --backbone--> features (N, C, H/s, W/s)        once per image
    person box b_r      --ROIAlign or ROIPool--> (R, C, 14, 14)         once per person
                        --MaskRCNNKeypointHead--> logits (R, K, 56, 56)
    one-hot target per keypoint, cross-entropy over the 56 x 56 cells (a spatial softmax)

The backbone here is a small ResNet (``course_lib.models.resnet``) cut after its second
layer, so the features have stride ``s = 8``; the head is
:class:`~course_lib.models.keypoint_heads.MaskRCNNKeypointHead`.  The only difference
between the two variants of chapter 05's experiment is the ``pooler``: ``"align"``
(:func:`course_lib.ops.roi_align`, bilinear samples, no rounding) or ``"pool"``
(:func:`course_lib.ops.roi_pool`, box and bins rounded to whole feature cells).

Training with :func:`course_lib.training.fit`.  ``fit`` calls ``model(images)``: that is
the backbone, shared by every person of the image.  The per-person part runs in the loss,
:class:`RoiKeypointLoss`, which reads the boxes from the batch, exactly as Mask R-CNN's ROI
heads run on the backbone's features and the proposals.  The head's parameters belong to
the model, so ``fit``'s optimiser trains them.

Data: :class:`WholeImageDataset` yields whole images (all the same size, so they batch)
with one person box each; during training the box is jittered, as the proposals of a
detector would be.  :func:`evaluate` scores predictions with the metrics of
:func:`course_lib.scoring.score_predictions` (PCK, mean error, COCO AP).

Coordinates: boxes are COCO ``[x, y, w, h]`` in image pixels; feature cell ``u`` is centred
on image ``x = u * s`` (the course convention), so ROI ops use ``spatial_scale = 1 / s``
with ``aligned=False``'s geometry (see :mod:`course_lib.ops`).

Dimension letters: ``N`` images, ``R`` boxes (people), ``C`` channels, ``K`` keypoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from course_lib import ops
from course_lib.data import image_to_tensor
from course_lib.losses import spatial_softmax_cross_entropy
from course_lib.models.input_checks import check_images
from course_lib.models.keypoint_heads import MaskRCNNKeypointHead, keypoints_to_roi_targets, roi_heatmaps_to_keypoints
from course_lib.models.resnet import BasicBlock, ResNet
from course_lib.validation import check_array, check_choice, check_positive

__all__ = [
    "POOLERS",
    "RoiKeypointLoss",
    "RoiKeypointNet",
    "WholeImageDataset",
    "evaluate",
    "jitter_box",
    "predict",
    "whole_image_data",
    "xywh_to_xyxy",
]

POOLERS = ("align", "pool")


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """COCO ``[x, y, w, h]`` -> corners ``[x1, y1, x2, y2]`` with ``x2 = x + w``, ``y2 = y + h``: ``(..., 4)``."""
    return torch.cat([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], dim=-1)


def _boxes_per_image(boxes: torch.Tensor | Sequence, num_images: int) -> list[torch.Tensor]:
    """``(N, 4)`` (one box per image) or a list of ``N`` ``(R_i, 4)`` -> list of float tensors (xywh)."""
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != num_images:
            raise ValueError(f"boxes must hold one (R_i, 4) entry per image ({num_images}), got {len(boxes)}")
        per_image = [torch.as_tensor(check_array(b, f"boxes[{i}]", (None, 4), allow_torch=True)).detach().cpu().float()
                     for i, b in enumerate(boxes)]
    else:
        boxes = torch.as_tensor(check_array(boxes, "boxes", (num_images, 4), allow_torch=True)).detach().cpu().float()
        per_image = [b.view(1, 4) for b in boxes]
    for i, b in enumerate(per_image):
        if bool((b[:, 2:] <= 0).any()):
            raise ValueError(f"boxes must have width and height > 0 ([x, y, w, h]); image {i} has {b.tolist()}")
    return per_image


# ======================================================================================
# The model
# ======================================================================================
class RoiKeypointNet(nn.Module):
    """Backbone on the whole image, ROIAlign or ROIPool per person box, Mask R-CNN's keypoint head.

    Args:
        pooler: ``"align"`` (:func:`~course_lib.ops.roi_align`) or ``"pool"``
            (:func:`~course_lib.ops.roi_pool`).
        num_keypoints: K.
        widths, blocks: the ResNet backbone's layers (BasicBlock); two layers give stride 8.
        roi_size: the pooled feature size (Mask R-CNN: 14), the head's logits are ``4 x`` that.
        sampling_ratio: ROIAlign's samples per bin and axis (2, as torchvision's keypoint R-CNN).
        head_convs, head_channels: the head's 3x3 convolutions (the paper: 8 of 512; here 4 of 64).

    ``forward(images)`` returns the features ``(N, C, H/s, W/s)``; :meth:`keypoint_logits`
    and :meth:`predict` run the per-person part.

    Attributes:
        stride: ``s``, input pixels per feature cell.
        spatial_scale: ``1 / s``.
    """

    def __init__(
        self,
        pooler: str = "align",
        num_keypoints: int = 17,
        widths: Sequence[int] = (32, 64),
        blocks: Sequence[int] = (2, 2),
        roi_size: int = 14,
        sampling_ratio: int = 2,
        head_convs: int = 4,
        head_channels: int = 64,
    ) -> None:
        super().__init__()
        self.pooler = check_choice(pooler, "pooler", POOLERS)
        if isinstance(roi_size, bool) or not isinstance(roi_size, int) or roi_size < 1:
            raise ValueError(f"roi_size must be a positive int, got {roi_size!r}")
        if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
            raise ValueError(f"sampling_ratio must be an int (<= 0: adaptive), got {sampling_ratio!r}")
        self.backbone = ResNet(BasicBlock, tuple(blocks), tuple(widths), stem_width=int(widths[0]))
        self.head = MaskRCNNKeypointHead(self.backbone.out_channels, num_keypoints, head_convs, head_channels)
        self.num_keypoints = int(num_keypoints)
        self.roi_size = roi_size
        self.sampling_ratio = sampling_ratio
        self.stride = self.backbone.stride
        self.spatial_scale = 1.0 / self.stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` whole images -> features ``(N, C, H/s, W/s)`` (H, W multiples of ``s``)."""
        check_images(images, f"RoiKeypointNet({self.pooler!r})", size_divisor=self.stride)
        return self.backbone(images)

    def roi_features(self, features: torch.Tensor, boxes: torch.Tensor | Sequence) -> torch.Tensor:
        """Pool every box: ``(N, C, h, w)`` features, boxes xywh ``(N, 4)`` or list of ``(R_i, 4)`` -> ``(R, C, 14, 14)``."""
        per_image = _boxes_per_image(boxes, features.shape[0])
        rois = ops.boxes_to_rois([xywh_to_xyxy(b) for b in per_image])  # (R, 5): batch index, x1, y1, x2, y2
        if self.pooler == "align":
            return ops.roi_align(features, rois, self.roi_size, self.spatial_scale, self.sampling_ratio, aligned=False)
        return ops.roi_pool(features, rois, self.roi_size, self.spatial_scale)

    def keypoint_logits(self, features: torch.Tensor, boxes: torch.Tensor | Sequence) -> torch.Tensor:
        """The head on the pooled features: ``(R, K, 4 * roi_size, 4 * roi_size)`` logits."""
        return self.head(self.roi_features(features, boxes))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, boxes: torch.Tensor | Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints ``(R, K, 2)`` in image pixels and scores ``(R, K)`` for boxes xywh (``(N, 4)`` or a list).

        One backbone pass for all images, then the head per box; decoded with
        :func:`~course_lib.models.keypoint_heads.roi_heatmaps_to_keypoints`.
        """
        per_image = _boxes_per_image(boxes, images.shape[0])
        logits = self.keypoint_logits(self(images), per_image)
        return roi_heatmaps_to_keypoints(logits.float().cpu(), torch.cat(per_image).double())


class RoiKeypointLoss:
    """``loss(features, batch)`` for :func:`course_lib.training.fit`: the per-person half of the model.

    For each item's box ``batch["box"]`` (xywh): pool, run the head, and compare the logits
    with the one-hot targets of :func:`~course_lib.models.keypoint_heads.keypoints_to_roi_targets`
    (keypoints labelled and inside the box) by :func:`~course_lib.losses.spatial_softmax_cross_entropy`:

        L = - 1/|valid| sum_{(r, k) valid} log softmax(z_rk)[t_rk]

    Returns ``{"keypoints": L}``.
    """

    def __init__(self, model: RoiKeypointNet) -> None:
        if not isinstance(model, RoiKeypointNet):
            raise TypeError(f"model must be a RoiKeypointNet, got {type(model).__name__}")
        self.model = model

    def __call__(self, features: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        boxes = batch["box"]
        logits = self.model.keypoint_logits(features, boxes)  # (N, K, 56, 56)
        indices, valid = keypoints_to_roi_targets(batch["keypoints"], batch["visibility"], boxes.cpu(),
                                                  heatmap_size=tuple(logits.shape[-2:]))
        return {"keypoints": spatial_softmax_cross_entropy(logits, indices.to(logits.device), valid.to(logits.device))}


# ======================================================================================
# Data: whole images, one person box each
# ======================================================================================
def jitter_box(box: np.ndarray, rng: np.random.Generator, scale: float = 0.15, shift: float = 0.1) -> np.ndarray:
    """A proposal-like box around ``box`` (xywh): each side scaled by ``exp(U(-scale, scale))``, then the
    centre moved by ``U(-shift, shift)`` times the box's width and height.

        w' = w e^{a},  h' = h e^{b},  c' = c + (u w, v h),   a, b ~ U(-scale, scale),  u, v ~ U(-shift, shift)
    """
    x, y, w, h = (float(v) for v in box)
    a, b = rng.uniform(-scale, scale, size=2)
    u, v = rng.uniform(-shift, shift, size=2)
    cx, cy = x + w / 2 + u * w, y + h / 2 + v * h
    w, h = w * np.exp(a), h * np.exp(b)
    return np.array([cx - w / 2, cy - h / 2, w, h], dtype=np.float32)


class WholeImageDataset(torch.utils.data.Dataset):
    """Whole images with one person box each, for :class:`RoiKeypointNet`.

    ``samples``: items like :class:`~course_lib.data.CocoKeypoints` gives (``image`` uint8
    ``(H, W, 3)``, ``keypoints`` ``(K, 2)``, ``visibility`` ``(K,)``, ``box`` xywh and extra
    keys).  With ``augment``, the box is jittered (:func:`jitter_box`) with draws from
    ``np.random.default_rng([seed, epoch, index])``; the image itself is never changed, so
    the keypoints stay in image pixels.

    Items (``default_collate`` batches them when all images have one size):

    ===============  ================  ===============================================
    image            float32 (3, H, W) normalised (``data.image_to_tensor``)
    keypoints        float32 (K, 2)    image pixels
    visibility       int64 (K,)        COCO flags
    box              float32 (4,)      the box the head sees (jittered when augmenting)
    gt_box           float32 (4,)      the annotated box
    area             float32 ()        the annotated area
    image_id         int64 ()
    annotation_id    int64 ()
    ===============  ================  ===============================================
    """

    def __init__(self, samples: Sequence[dict], augment: bool = False, box_scale: float = 0.15,
                 box_shift: float = 0.1, seed: int = 0) -> None:
        if not (hasattr(samples, "__len__") and hasattr(samples, "__getitem__")):
            raise TypeError(f"samples must be a sequence of dicts, got {type(samples).__name__}")
        self.samples = samples
        self.augment = bool(augment)
        self.box_scale = check_positive(box_scale, "box_scale", allow_zero=True)
        self.box_shift = check_positive(box_shift, "box_shift", allow_zero=True)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed, self.epoch = int(seed), 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Choose this epoch's box jitter."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        gt_box = np.asarray(check_array(sample["box"], f"samples[{index}]['box']", (4,)), dtype=np.float32)
        box = gt_box
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            box = jitter_box(gt_box, rng, self.box_scale, self.box_shift)
        return {
            "image": image_to_tensor(sample["image"]),
            "keypoints": torch.as_tensor(np.asarray(sample["keypoints"], dtype=np.float32)),
            "visibility": torch.as_tensor(np.asarray(sample["visibility"], dtype=np.int64)),
            "box": torch.from_numpy(box),
            "gt_box": torch.from_numpy(gt_box),
            "area": torch.tensor(float(sample.get("area", gt_box[2] * gt_box[3])), dtype=torch.float32),
            "image_id": torch.tensor(int(sample.get("image_id", index)), dtype=torch.int64),
            "annotation_id": torch.tensor(int(sample.get("annotation_id", index)), dtype=torch.int64),
        }


def whole_image_data(split_dir: str | os.PathLike, *, augment: bool = False, limit: int | None = None,
                     seed: int = 0, **options: Any) -> WholeImageDataset:
    """A :class:`WholeImageDataset` over the COCO-format folder ``split_dir`` (images cached in memory).

    ``limit`` keeps the first people only; ``options`` go to :class:`WholeImageDataset`.
    """
    from course_lib.data import CocoKeypoints

    annotations = Path(split_dir) / "annotations.json"
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations} does not exist: run `make data` (or course_lib.data.ensure_default_data())")
    people = CocoKeypoints(annotations, cache_images=True)
    samples = people if limit is None else torch.utils.data.Subset(people, range(min(int(limit), len(people))))
    return WholeImageDataset(samples, augment=augment, seed=seed, **options)


# ======================================================================================
# Prediction and evaluation
# ======================================================================================
@torch.no_grad()
def predict(model: RoiKeypointNet, data: torch.utils.data.Dataset, *, batch_size: int = 64,
            device: str | torch.device = "auto"):
    """Run ``model`` on every item of ``data`` (its ``box``) -> :class:`course_lib.prediction.Predictions`.

    The predictions' ``boxes`` are the annotated boxes (``gt_box``), which PCK and COCO AP
    normalise by.
    """
    from course_lib.prediction import Predictions
    from course_lib.runtime import resolve_device

    device = resolve_device(device)
    model.to(device).eval()
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    parts: dict[str, list] = {k: [] for k in ("kp", "sc", "gt", "vis", "box", "area", "img", "ann")}
    for batch in loader:
        keypoints, scores = model.predict(batch["image"].to(device), batch["box"])
        parts["kp"].append(keypoints.double().numpy())
        parts["sc"].append(scores.double().numpy())
        parts["gt"].append(batch["keypoints"].double().numpy())
        parts["vis"].append(batch["visibility"].numpy())
        parts["box"].append(batch["gt_box"].double().numpy())
        parts["area"].append(batch["area"].double().numpy())
        parts["img"].append(batch["image_id"].numpy())
        parts["ann"].append(batch["annotation_id"].numpy())
    if not parts["kp"]:
        raise ValueError("data is empty: nothing to predict")
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    return Predictions(keypoints=joined["kp"], scores=joined["sc"], gt_keypoints=joined["gt"],
                       gt_visibility=joined["vis"], boxes=joined["box"], areas=joined["area"], head_boxes=None,
                       image_ids=joined["img"], annotation_ids=joined["ann"])


def evaluate(model: RoiKeypointNet, data: torch.utils.data.Dataset, *, coco_ap: bool = True, batch_size: int = 64,
             device: str | torch.device = "auto"):
    """:func:`predict`, then :func:`course_lib.scoring.score_predictions` -> :class:`course_lib.scoring.Evaluation`."""
    from course_lib.scoring import Evaluation, score_predictions

    predictions = predict(model, data, batch_size=batch_size, device=device)
    return Evaluation(score_predictions(predictions, coco_ap=coco_ap), predictions)
