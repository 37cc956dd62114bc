"""Scoring (chapters 01-09): every metric the course reports, for the predictions of a top-down model.

:func:`evaluate` = :func:`~course_lib.prediction.predict` + :func:`score_predictions`: PCK at
three thresholds, PCKh (with head boxes), PDJ, the mean pixel error and COCO's OKS-based AP,
all from :mod:`course_lib.metrics`.  COCO's AP reads COCO dicts, which
:func:`coco_dicts` writes with :func:`~course_lib.metrics.ground_truth_to_coco` and
:func:`~course_lib.metrics.results_to_coco`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib import metrics
from course_lib.heatmaps import Decoder
from course_lib.prediction import Predictions, predict


@dataclass
class Evaluation:
    """:func:`evaluate`'s result: ``metrics`` (name -> number) and the ``predictions``."""

    metrics: dict[str, float]
    predictions: Predictions

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.3f}" for k, v in self.metrics.items())
        return f"Evaluation({shown})"


def score_predictions(predictions: Predictions, coco_ap: bool = True) -> dict[str, float]:
    """Every metric the course reports for single-person top-down predictions.

    * ``pck@0.2``, ``pck@0.1``, ``pck@0.05``: PCK normalised by the person box, max(w, h)
      (MMPose's ``bbox`` normalisation), pooled over all labelled joints (v > 0);
    * ``pckh@0.5``: when the data has head boxes (MPII's 0.6 x head-box diagonal);
    * ``pdj@0.2``: PDJ with the box diagonal as the body size;
    * ``mean_error``: mean pixel distance over labelled joints;
    * ``AP``, ``AP50``, ``AP75``, ``AR`` (with ``coco_ap``): COCO's OKS-based AP, each
      prediction scored by the mean of its keypoint scores (box score 1: ground-truth boxes).
    """
    p = predictions
    norm = metrics.bbox_size(p.boxes)
    result = {
        "pck@0.2": metrics.pck(p.keypoints, p.gt_keypoints, p.gt_visibility, norm, 0.2).mean,
        "pck@0.1": metrics.pck(p.keypoints, p.gt_keypoints, p.gt_visibility, norm, 0.1).mean,
        "pck@0.05": metrics.pck(p.keypoints, p.gt_keypoints, p.gt_visibility, norm, 0.05).mean,
    }
    if p.head_boxes is not None:
        result["pckh@0.5"] = metrics.pckh(p.keypoints, p.gt_keypoints, p.gt_visibility, p.head_boxes, 0.5).mean
    result["pdj@0.2"] = metrics.pdj(p.keypoints, p.gt_keypoints, p.gt_visibility, metrics.box_diagonal(p.boxes), 0.2).mean
    result["mean_error"] = float(np.nanmean(p.errors))
    if coco_ap:
        gt, dt = coco_dicts(p)
        stats = metrics.coco_keypoint_eval(gt, dt)
        result.update({k: stats[k] for k in ("AP", "AP50", "AP75", "AR")})
    return {k: float(v) for k, v in result.items()}


def coco_dicts(predictions: Predictions) -> tuple[dict, list[dict]]:
    """Ground truth and results in COCO format, for :func:`course_lib.metrics.coco_keypoint_eval`.

    Each item becomes its own COCO "image" (ids 1..N, by position) so that people of a
    multi-person image evaluated from ground-truth boxes stay one-to-one; a prediction is
    scored by the mean of its keypoint scores.
    """
    p = predictions
    items = np.arange(1, len(p.keypoints) + 1)
    gt = metrics.ground_truth_to_coco(p.gt_keypoints, p.gt_visibility, p.boxes, p.areas, items)
    results = metrics.results_to_coco(p.keypoints, p.scores, p.scores.mean(axis=1), items)
    return gt, results


def evaluate(
    model: nn.Module,
    data: torch.utils.data.Dataset,
    *,
    decoder: Decoder = "dark",
    flip_test: bool = False,
    shift_heatmaps: bool = True,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    coco_ap: bool = True,
    progress: bool = False,
) -> Evaluation:
    """Predict on ``data`` (see :func:`~course_lib.prediction.predict`) and score with :func:`score_predictions`."""
    predictions = predict(model, data, decoder=decoder, flip_test=flip_test, shift_heatmaps=shift_heatmaps,
                          batch_size=batch_size, device=device, progress=progress)
    return Evaluation(score_predictions(predictions, coco_ap=coco_ap), predictions)
