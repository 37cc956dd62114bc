"""The same predictions under every metric of chapter 08, side by side.

Chapter 08's experiment scores one set of single-person predictions with PCK, PCKh, PDJ,
PCP, PCPm, OKS and COCO's AP/AR, then changes the predictions in two controlled ways and
watches each number react:

* :func:`rescale_people`: every person (ground truth, box, head box, area) made ``factor``
  times bigger while the prediction keeps the *same pixel error*: a metric that normalises by
  the person's size should reward the big person and punish the small one;
* :func:`break_one_joint`: one joint of every prediction moved far away, the others left as
  they are: how much does one bad joint cost under each metric?

Notation as in :mod:`course_lib.metrics`: ``pred`` and ``gt`` ``(N, K, 2)`` image pixels,
``visible`` ``(N, K)`` COCO flags, ``boxes`` and ``head_boxes`` ``(N, 4)`` ``[x, y, w, h]``,
``areas`` ``(N,)`` pixels^2.  One prediction per ground-truth person (top-down with
ground-truth boxes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from course_lib.keypoints import COCO_PCP_LIMBS
from course_lib.metrics.coco_eval import coco_keypoint_eval, ground_truth_to_coco, results_to_coco
from course_lib.metrics.oks import object_keypoint_similarity
from course_lib.metrics.pck import bbox_size, box_diagonal, pck, pckh, pdj
from course_lib.metrics.pcp import pcp, pcpm
from course_lib.validation import check_array, check_positive


class ScoredPeople(NamedTuple):
    """Ground truth and one prediction per person, everything :func:`every_metric` needs.

    Attributes:
        pred: ``(N, K, 2)`` predicted keypoints, image pixels.
        gt: ``(N, K, 2)`` ground-truth keypoints.
        visible: ``(N, K)`` COCO flags of the ground truth.
        boxes: ``(N, 4)`` person boxes ``[x, y, w, h]``.
        areas: ``(N,)`` person areas (COCO's segmentation area), pixels^2.
        head_boxes: ``(N, 4)`` head boxes ``[x, y, w, h]`` (PCKh), or None (COCO has none).
        scores: ``(N,)`` pose scores (they rank the poses for AP).
    """

    pred: np.ndarray
    gt: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    head_boxes: np.ndarray | None
    scores: np.ndarray


def scored_people(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    boxes: np.ndarray,
    areas: np.ndarray,
    head_boxes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> ScoredPeople:
    """Check the arrays and bundle them (``scores`` default to 1: all poses equally confident)."""
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims, dtype=float)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims, dtype=float)
    visible = check_array(visible, "visible", ("N", "K"), dims=dims)
    boxes = check_array(boxes, "boxes", ("N", 4), dims=dims, dtype=float)
    areas = check_array(areas, "areas", ("N",), dims=dims, dtype=float)
    if head_boxes is not None:
        head_boxes = check_array(head_boxes, "head_boxes", ("N", 4), dims=dims, dtype=float)
    scores = np.ones(dims["N"]) if scores is None else check_array(scores, "scores", ("N",), dims=dims, dtype=float)
    if np.any(areas <= 0):
        raise ValueError(f"areas must be > 0, got {areas[areas <= 0][0]}")
    return ScoredPeople(pred, gt, visible, boxes, areas, head_boxes, scores)


def every_metric(people: ScoredPeople) -> dict[str, float]:
    """Score one set of predictions with every metric of the chapter.

    =================  ===================================================================
    key                metric
    =================  ===================================================================
    ``PCK@0.2``        PCK with radius 0.2 x max(box w, h) (the course's training metric)
    ``PCKh@0.5``       PCKh: radius 0.5 x MPII head size (0.6 x head-box diagonal); NaN
                       without head boxes
    ``PDJ@0.2``        PDJ: radius 0.2 x box diagonal
    ``PCP@0.5``        strict PCP: both ends within half the limb's own length
    ``PCPm@0.5``       PCPm: both ends within half the limb's mean length over the set
    ``mean OKS``       mean OKS of each prediction with its own person (COCO's area, sigmas)
    ``AP``, ``AR``     COCO keypoint AP and AR (OKS 0.50:0.05:0.95), one image per person
    ``error (px)``     mean pixel distance over the labelled joints
    =================  ===================================================================

    People without any labelled keypoint take no part.
    """
    p = people
    keep = (p.visible > 0).any(axis=1)
    if not keep.any():
        raise ValueError("no person has a labelled keypoint: there is nothing to score")
    p = ScoredPeople(*(None if field is None else field[keep] for field in p))
    result = {
        "PCK@0.2": pck(p.pred, p.gt, p.visible, bbox_size(p.boxes), 0.2).mean,
        "PCKh@0.5": pckh(p.pred, p.gt, p.visible, p.head_boxes, 0.5).mean if p.head_boxes is not None else np.nan,
        "PDJ@0.2": pdj(p.pred, p.gt, p.visible, box_diagonal(p.boxes), 0.2).mean,
    }
    limbs_counted = ((p.visible[:, [a for a, _ in COCO_PCP_LIMBS.values()]] > 0)
                     & (p.visible[:, [b for _, b in COCO_PCP_LIMBS.values()]] > 0)).any()
    result["PCP@0.5"] = pcp(p.pred, p.gt, p.visible).mean if limbs_counted else float("nan")
    result["PCPm@0.5"] = pcpm(p.pred, p.gt, p.visible).mean if limbs_counted else float("nan")
    result["mean OKS"] = float(np.mean(object_keypoint_similarity(p.pred, p.gt, p.visible, p.areas)))
    ground_truth = ground_truth_to_coco(p.gt, p.visible, p.boxes, p.areas)
    results = results_to_coco(p.pred, np.ones(p.visible.shape), p.scores, np.arange(1, len(p.pred) + 1))
    stats = coco_keypoint_eval(ground_truth, results)
    result["AP"], result["AR"] = stats["AP"], stats["AR"]
    result["error (px)"] = float(np.linalg.norm(p.pred - p.gt, axis=-1)[p.visible > 0].mean())
    return {key: float(value) for key, value in result.items()}


def rescale_people(people: ScoredPeople, factor: float) -> ScoredPeople:
    """Every person ``factor`` times bigger, each prediction keeping its pixel error.

        gt' = factor * gt,   pred' = gt' + (pred - gt),   boxes, head boxes x factor,   area' = factor^2 area

    (Scaling about the image origin: positions do not matter to any metric, only sizes.)
    """
    factor = check_positive(factor, "factor")
    error = people.pred - people.gt  # (N, K, 2) pixels, kept as they are
    gt = people.gt * factor
    return people._replace(
        gt=gt,
        pred=gt + error,
        boxes=people.boxes * factor,
        head_boxes=None if people.head_boxes is None else people.head_boxes * factor,
        areas=people.areas * factor**2,
    )


def break_one_joint(people: ScoredPeople, joint: int, distance: float = 0.5) -> ScoredPeople:
    """Move ``joint`` of every prediction ``distance`` x max(box w, h) to the right of where it was.

    Every other joint keeps its prediction: the question is what one bad joint costs.
    """
    num_keypoints = people.pred.shape[1]
    if not (isinstance(joint, (int, np.integer)) and 0 <= joint < num_keypoints):
        raise ValueError(f"joint must be an index in [0, {num_keypoints}), got {joint!r}")
    distance = check_positive(distance, "distance")
    pred = people.pred.copy()
    pred[:, joint, 0] += distance * bbox_size(people.boxes)
    return people._replace(pred=pred)
