"""What went wrong: each labelled joint of a prediction sorted into a failure kind (chapters 03-09).

For a person with box size ``s = sqrt(w h)`` (COCO xywh box), a labelled joint ``k`` predicted
at ``p_k`` with truth ``g_k`` has the error ``e_k = |p_k - g_k| / s``.  With ``near`` (0.1) and
``far`` (0.5) in units of ``s``:

=======================  ====================================================================
kind                     the joint
=======================  ====================================================================
``good``                 ``e_k <= near``
``left/right swap``      ``e_k > near`` and ``|p_k - g_m| / s <= near`` for its mirror joint
                         ``m`` (left wrist predicted on the right wrist)
``another person``       ``e_k > near`` and ``|p_k - g'_k| / s <= near`` for the same joint
                         of another person of the same image
``jitter``               ``near < e_k <= far``, none of the above: the right joint, placed loosely
``missed joint``         ``e_k > far``, none of the above: the joint was not found
=======================  ====================================================================

A person's kind is the first of ``left/right swap``, ``another person``, ``missed joint``,
``jitter`` that one of its joints has (``good`` when every joint is good): a swap or a
confusion explains large errors that a "miss" would not.  These are the classes of Ronchi &
Perona, "Benchmarking and Error Diagnosis in Multi-Instance Pose Estimation", ICCV 2017
(https://arxiv.org/abs/1707.05388), with thresholds in box units instead of OKS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from course_lib.keypoints import COCO_FLIP_PAIRS, flip_permutation
from course_lib.validation import check_array

GOOD, SWAP, OTHER, MISS, JITTER = "good", "left/right swap", "another person", "missed joint", "jitter"
FAILURE_KINDS = (SWAP, OTHER, MISS, JITTER)  # in the order a person's kind is chosen


@dataclass(frozen=True)
class Failure:
    """One person's prediction: its index, mean error (box units), kind and joints per kind."""

    index: int
    error: float
    kind: str
    joints: dict[str, list[int]]

    def describe(self, names: Any = None) -> str:
        """E.g. ``"left/right swap: left_wrist, right_wrist"`` (joint indices without ``names``)."""
        if self.kind == GOOD:
            return GOOD
        joints = self.joints[self.kind]
        labels = [names[k] if names is not None else str(k) for k in joints]
        more = f" +{len(labels) - 2}" if len(labels) > 2 else ""
        return f"{self.kind}: {', '.join(labels[:2])}{more}"


def joint_kinds(
    pred: Any, gt: Any, visibility: Any, boxes: Any, *, image_ids: Any = None,
    flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS, near: float = 0.1, far: float = 0.5,
) -> np.ndarray:
    """The kind of every joint: ``(N, K)`` strings (``""`` where the truth is not labelled).

    Args:
        pred, gt: ``(N, K, 2)`` image pixels.
        visibility: ``(N, K)`` COCO flags of the truth.
        boxes: ``(N, 4)`` COCO xywh boxes (their size is the unit of the errors).
        image_ids: ``(N,)``: people with the same id share an image (for ``another person``);
            None: every person alone.
        flip_pairs: the (left, right) joint pairs.
        near, far: thresholds in units of the box size, ``0 < near < far``.
    """
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims, dtype=float)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims, dtype=float)
    visibility = check_array(visibility, "visibility", ("N", "K"), dims=dims)
    boxes = check_array(boxes, "boxes", ("N", 4), dims=dims, dtype=float)
    if not 0 < near < far:
        raise ValueError(f"near and far must satisfy 0 < near < far, got near={near!r}, far={far!r}")
    size = np.sqrt(np.clip(boxes[:, 2] * boxes[:, 3], 1e-6, None))[:, None]  # (N, 1)
    error = np.linalg.norm(pred - gt, axis=-1) / size  # (N, K)
    mirrored = np.linalg.norm(pred - gt[:, flip_permutation(pred.shape[1], flip_pairs)], axis=-1) / size
    other = _nearest_other_person(pred, gt, visibility, image_ids) / size  # (N, K)
    kinds = np.where(error <= near, GOOD, np.where(error <= far, JITTER, MISS)).astype(object)
    kinds[(error > near) & (other <= near)] = OTHER
    kinds[(error > near) & (mirrored <= near)] = SWAP
    kinds[visibility <= 0] = ""
    return kinds


def _nearest_other_person(pred: np.ndarray, gt: np.ndarray, visibility: np.ndarray, image_ids: Any) -> np.ndarray:
    """``(N, K)`` pixel distance from each prediction to the same joint of the nearest other person."""
    distance = np.full(pred.shape[:2], np.inf)
    if image_ids is None:
        return distance
    image_ids = np.asarray(image_ids)
    if image_ids.shape != (len(pred),):
        raise ValueError(f"image_ids must have one id per person ({len(pred)}), got shape {image_ids.shape}")
    for i in range(len(pred)):
        for j in np.flatnonzero(image_ids == image_ids[i]):
            if j != i:
                d = np.linalg.norm(pred[i] - gt[j], axis=-1)
                distance[i] = np.minimum(distance[i], np.where(visibility[j] > 0, d, np.inf))
    return distance


def worst_predictions(predictions: Any, count: int = 6, *, flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS,
                      near: float = 0.1, far: float = 0.5) -> list[Failure]:
    """The ``count`` people with the largest mean error (box units), worst first, with their kinds.

    ``predictions``: a :class:`course_lib.prediction.Predictions` (``keypoints``, ``gt_keypoints``,
    ``gt_visibility``, ``boxes``, ``image_ids``).  People without a labelled joint are skipped.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a whole number >= 1, got {count!r}")
    kinds = joint_kinds(predictions.keypoints, predictions.gt_keypoints, predictions.gt_visibility, predictions.boxes,
                        image_ids=predictions.image_ids, flip_pairs=flip_pairs, near=near, far=far)
    boxes = np.asarray(predictions.boxes, dtype=float)
    size = np.sqrt(np.clip(boxes[:, 2] * boxes[:, 3], 1e-6, None))
    distance = np.linalg.norm(np.asarray(predictions.keypoints) - np.asarray(predictions.gt_keypoints), axis=-1)
    labelled = np.asarray(predictions.gt_visibility) > 0
    error = np.where(labelled, distance, 0).sum(1) / np.maximum(labelled.sum(1), 1) / size  # (N,)
    order = [i for i in np.argsort(-error, kind="stable") if labelled[i].any()][:count]
    failures = []
    for i in order:
        joints = {kind: [int(k) for k in np.flatnonzero(kinds[i] == kind)] for kind in FAILURE_KINDS}
        kind = next((kind for kind in FAILURE_KINDS if joints[kind]), GOOD)
        failures.append(Failure(int(i), float(error[i]), kind, joints))
    return failures
