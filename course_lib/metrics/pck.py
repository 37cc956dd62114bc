"""Distance-based keypoint accuracies: PCK, PCKh, PDJ, the PCK curve and its area (chapter 08).

All four metrics ask the same question of every labelled joint: is the prediction within a
radius of the truth?  They differ only in the radius:

=========  ================================================  ===============================
metric     radius for person n                               reference
=========  ================================================  ===============================
PCK@a      a * norm_n (any per-person size: bbox, torso...)  Yang & Ramanan 2013
PCKh@a     a * head_size_n = a * 0.6 * head-box diagonal     Andriluka et al. 2014 (MPII)
PDJ@a      a * torso diameter_n (or box diagonal)            Toshev & Szegedy 2014 (DeepPose)
=========  ================================================  ===============================

Notation: N people, K keypoints; ``pred`` and ``gt`` are ``(N, K, 2)`` pixel coordinates
``x, y``; ``visible`` is ``(N, K)`` with COCO's flags (0 not labelled, 1 labelled but
hidden, 2 labelled and visible) or booleans.  A joint is **counted** when the ground truth
labels it (``visible > 0``): hidden-but-labelled joints count, unlabelled ones do not.

    correct_nk = [ ||pred_nk - gt_nk|| / norm_n <= threshold ]      (for labelled joints)
    PCK        = sum_nk correct_nk / sum_nk labelled_nk              (pooled)

``mean`` is **pooled** over every labelled joint of the set (correct labelled joints /
labelled joints), which is also what MPII's evaluation reports as "Mean" (a per-joint
average weighted by each joint's count).  MMPose's ``keypoint_pck_accuracy`` instead
averages the per-keypoint accuracies with equal weight; the two differ when some joints are
labelled more often than others.

At an exact tie the last bit decides, and the course computes as MPII's evaluation and
HRNet's port of it do (``lib/dataset/mpii.py``): the head-box diagonal as ``sqrt(w^2 + h^2)``
(``np.linalg.norm``; ``np.hypot`` can differ in the last bit) times 0.6, and the distance
*divided* by it, ``d / s <= t`` (``scaled_uv_err = uv_err / scale; scaled_uv_err <= threshold``).
A joint 31.18990221209422 px from the truth with a 72 x 75 head box is correct at PCKh@0.5
this way (``d / s`` is exactly 0.5), not with ``np.hypot``; with the box diagonal of a
104 x 37 box, a joint 22.07713749560844 px away is not correct at PCK@0.2 by ``d / s <= t``
though ``d <= t * s`` would count it.  A distance on the radius counts as correct (``<=``);
MMPose's ``keypoint_pck_accuracy`` uses ``<``.  Flags other than 0, 1, 2 are an error
(:func:`course_lib.validation.check_visibility`), not a labelled joint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from course_lib import geometry
from course_lib.keypoints import (
    COCO_KEYPOINTS,
    COCO_TORSO_DIAMETER_PAIR,
    LSP_KEYPOINTS,
    MPII_KEYPOINTS,
)
from course_lib.validation import check_array, check_positive, check_visibility

# MPII's evaluation scales the head-box diagonal by 0.6 ("SC_BIAS" in the official
# evaluation code and in the HRNet/SimpleBaseline port of it, lib/dataset/mpii.py).
MPII_HEAD_SIZE_FACTOR = 0.6


class KeypointAccuracy(NamedTuple):
    """Result of PCK, PCKh and PDJ.

    Attributes:
        mean: correct labelled joints / labelled joints, pooled over the whole set.
        per_keypoint: ``(K,)`` the same ratio for each keypoint; NaN where a keypoint is
            never labelled.
        correct: ``(N, K)`` bool, True where a labelled joint is within the radius
            (always False for unlabelled joints).
        labelled: ``(N, K)`` bool, the joints that were counted (``visible > 0``).
        names: the ``K`` keypoint names.
    """

    mean: float
    per_keypoint: np.ndarray
    correct: np.ndarray
    labelled: np.ndarray
    names: tuple[str, ...]


class PckCurve(NamedTuple):
    """Result of :func:`pck_auc`: PCK as a function of the threshold, and the area under it.

    Attributes:
        mean: normalised area under the pooled PCK curve (in [0, 1]).
        per_keypoint: ``(K,)`` normalised area under each keypoint's curve.
        curve: ``(T,)`` pooled PCK at each threshold.
        per_keypoint_curve: ``(T, K)`` per-keypoint PCK at each threshold.
        thresholds: ``(T,)`` the thresholds (fractions of ``norm``).
        correct: ``(T, N, K)`` bool, the ``correct`` matrix at each threshold.
        names: the ``K`` keypoint names.
    """

    mean: float
    per_keypoint: np.ndarray
    curve: np.ndarray
    per_keypoint_curve: np.ndarray
    thresholds: np.ndarray
    correct: np.ndarray
    names: tuple[str, ...]


# --------------------------------------------------------------------------- normalisers
def bbox_size(boxes: np.ndarray) -> np.ndarray:
    """Per-person size ``max(w, h)`` of COCO boxes ``(N, 4)`` ``[x, y, w, h]`` -> ``(N,)``.

    MMPose's ``'bbox'`` normalisation of PCK (the one the course's training curves use).
    """
    boxes = _check_boxes(boxes, "boxes")
    return np.maximum(boxes[:, 2], boxes[:, 3])


def box_diagonal(boxes: np.ndarray) -> np.ndarray:
    """Diagonal ``sqrt(w^2 + h^2)`` of COCO boxes ``(N, 4)`` ``[x, y, w, h]`` -> ``(N,)``.

    A better normaliser for PDJ than the torso diameter: it never collapses when the person
    turns sideways (chapter 01).
    """
    boxes = _check_boxes(boxes, "boxes")
    # sqrt(w^2 + h^2) as np.linalg.norm computes it in HRNet's lib/dataset/mpii.py; np.hypot
    # can differ in the last bit, which decides a joint that lies exactly on the PCKh radius.
    return np.sqrt(boxes[:, 2] * boxes[:, 2] + boxes[:, 3] * boxes[:, 3])


def head_size(head_boxes: np.ndarray) -> np.ndarray:
    """MPII's head size ``0.6 * sqrt(w^2 + h^2)`` of head boxes ``(N, 4)`` ``[x, y, w, h]`` -> ``(N,)``.

    MPII annotates a head rectangle per person; its evaluation (``SC_BIAS = 0.6`` in the
    official code) takes 60% of the rectangle's diagonal as the head size, so PCKh@0.5 has
    a radius of 0.3 head-box diagonals.  (MPII stores the box as two corners; the diagonal is
    the same.)
    """
    return MPII_HEAD_SIZE_FACTOR * box_diagonal(head_boxes)


def torso_diameter(
    keypoints: np.ndarray,
    visible: np.ndarray | None = None,
    pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR,
) -> np.ndarray:
    """DeepPose's torso diameter: distance between two opposing torso joints -> ``(N,)``.

    ``keypoints`` ``(N, K, 2)`` are the ground-truth joints; the default ``pair`` is COCO's
    left shoulder and right hip ("the distance between opposing joints on the human torso,
    such as left shoulder and right hip", Toshev & Szegedy 2014).  With ``visible`` given,
    every person must have both joints labelled.  The diameter shrinks towards zero when the
    person is seen from the side, which is why :func:`box_diagonal` is the safer normaliser.

    Raises:
        ValueError: a person lacks one of the two joints, or its diameter is zero.
    """
    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("N", "K", 2), dims=dims)
    diameter = np.asarray(geometry.torso_diameter(keypoints, pair), dtype=float)  # checks the pair too
    a, b = pair
    if visible is not None:
        visible = check_array(visible, "visible", ("N", "K"), dims=dims)
        missing = np.flatnonzero((visible[:, a] <= 0) | (visible[:, b] <= 0))
        if missing.size:
            raise ValueError(
                f"torso_diameter needs joints {a} and {b} labelled; people {missing[:10].tolist()} "
                f"lack one of them (use box_diagonal for them)"
            )
    zero = np.flatnonzero(diameter == 0)
    if zero.size:
        raise ValueError(f"torso diameter is zero for people {zero[:10].tolist()} (use box_diagonal)")
    return diameter


# --------------------------------------------------------------------------- metrics
def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    norm: np.ndarray,
    threshold: float,
    names: Sequence[str] | None = None,
) -> KeypointAccuracy:
    """Percentage of Correct Keypoints at ``threshold`` (a fraction of each person's ``norm``).

        correct_nk = [ ||pred_nk - gt_nk|| / norm_n <= threshold ],   counted where visible_nk > 0

    ``norm`` ``(N,)`` is any per-person size in pixels: :func:`bbox_size` (MMPose's PCK),
    :func:`torso_diameter` (PCK@0.2 of chapter 01), :func:`head_size` (PCKh).
    Reference: Yang & Ramanan, "Articulated human detection with flexible mixtures of parts",
    TPAMI 2013.
    """
    return _within_radius(pred, gt, visible, norm, threshold, names)


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_boxes: np.ndarray,
    threshold: float = 0.5,
    names: Sequence[str] | None = None,
) -> KeypointAccuracy:
    """PCKh: PCK with the MPII head size as the normaliser (PCKh@0.5 is MPII's headline metric).

        correct_nk = [ ||pred_nk - gt_nk|| / (0.6 * diag(head_box_n)) <= threshold ]

    ``head_boxes`` ``(N, 4)`` are ``[x, y, w, h]``.  The result's ``mean`` equals the "Mean"
    of MPII's evaluation when the same joints are counted (that script leaves out the pelvis
    and thorax: pass them as not visible to reproduce it).
    Reference: Andriluka et al., "2D Human Pose Estimation: New Benchmark and State of the Art
    Analysis", CVPR 2014.
    """
    return _within_radius(pred, gt, visible, head_size(head_boxes), threshold, names)


def pdj(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    norm: np.ndarray,
    threshold: float,
    names: Sequence[str] | None = None,
) -> KeypointAccuracy:
    """Percentage of Detected Joints (DeepPose): one radius, ``threshold * norm_n``, for every joint.

        detected_nk = [ ||pred_nk - gt_nk|| / norm_n <= threshold ]

    DeepPose takes ``norm`` = the torso diameter (:func:`torso_diameter`); its weakness is
    that a torso seen from the side has almost no width, so the radius collapses and every
    joint of that person fails.  The box diagonal (:func:`box_diagonal`) does not have this
    problem.  Computationally PDJ is PCK with that normaliser.  An example: PDJ@0.05 with a
    body size of 500 px accepts joints within 25 px.
    Reference: Toshev & Szegedy, "DeepPose: Human Pose Estimation via Deep Neural Networks",
    CVPR 2014.
    """
    return _within_radius(pred, gt, visible, norm, threshold, names)


def pck_auc(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    norm: np.ndarray,
    thresholds: np.ndarray | Sequence[float] = np.linspace(0.0, 0.5, 51),
    names: Sequence[str] | None = None,
) -> PckCurve:
    """PCK over a range of thresholds and the normalised area under that curve.

        AUC = 1 / (a_max - a_min) * integral_{a_min}^{a_max} PCK(a) da      (trapezoid rule)

    The default range 0 to 0.5 in steps of 0.01 is the one MPII's evaluation plots (PCKh
    curves).  MMPose's ``keypoint_auc`` instead averages PCK at a = 0, 1/20, ..., 19/20 of a
    fixed pixel size (a left Riemann sum); both are 1 for a perfect prediction.
    """
    thresholds = check_array(thresholds, "thresholds", (None,), dtype=float)
    if thresholds.size < 2 or np.any(np.diff(thresholds) <= 0) or thresholds[0] < 0:
        raise ValueError(f"thresholds must be >= 0, increasing, at least two of them, got {thresholds}")
    per_threshold = [_within_radius(pred, gt, visible, norm, a, names) for a in thresholds]
    curve = np.array([r.mean for r in per_threshold])  # (T,)
    per_keypoint_curve = np.stack([r.per_keypoint for r in per_threshold])  # (T, K)
    width = thresholds[-1] - thresholds[0]
    return PckCurve(
        mean=float(_trapezoid(curve, thresholds) / width),
        per_keypoint=_trapezoid(per_keypoint_curve, thresholds) / width,
        curve=curve,
        per_keypoint_curve=per_keypoint_curve,
        thresholds=thresholds,
        correct=np.stack([r.correct for r in per_threshold]),  # (T, N, K)
        names=per_threshold[0].names,
    )


# --------------------------------------------------------------------------- helpers
def _within_radius(pred, gt, visible, norm, threshold, names) -> KeypointAccuracy:
    """The computation shared by PCK, PCKh and PDJ."""
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims)
    visible = check_visibility(visible, "visible", ("N", "K"), dims=dims)
    norm = check_array(norm, "norm", ("N",), dims=dims, dtype=float)
    bad = np.flatnonzero(norm <= 0)
    if bad.size:
        raise ValueError(f"norm must be > 0 for every person, got {norm[bad[0]]} for person {bad[0]}")
    threshold = check_positive(threshold, "threshold", allow_zero=True)
    names = keypoint_names(dims["K"]) if names is None else tuple(names)
    if len(names) != dims["K"]:
        raise ValueError(f"names must have K={dims['K']} entries, got {len(names)}")

    labelled = visible > 0  # (N, K)
    if not labelled.any():
        raise ValueError("visible marks no keypoint as labelled (v > 0): there is nothing to score")
    distance = np.linalg.norm(pred - gt, axis=-1)  # (N, K) pixels
    correct = (distance / norm[:, None] <= threshold) & labelled  # (N, K): divide first, as MPII's evaluation
    return KeypointAccuracy(
        mean=float(correct.sum() / labelled.sum()),
        per_keypoint=_ratio(correct.sum(axis=0), labelled.sum(axis=0)),
        correct=correct,
        labelled=labelled,
        names=names,
    )


def keypoint_names(num_keypoints: int) -> tuple[str, ...]:
    """Names of the course's keypoint set with ``num_keypoints`` joints (COCO 17, MPII 16, LSP 14).

    Any other count gets ``("keypoint_0", "keypoint_1", ...)``.
    """
    for names in (COCO_KEYPOINTS, MPII_KEYPOINTS, LSP_KEYPOINTS):
        if len(names) == num_keypoints:
            return names
    return tuple(f"keypoint_{k}" for k in range(num_keypoints))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with NaN where nothing was counted."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _trapezoid(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid rule along the first axis (NaN entries, e.g. never-labelled joints, stay NaN)."""
    dx = np.diff(x).reshape((-1,) + (1,) * (values.ndim - 1))
    return np.sum(dx * (values[1:] + values[:-1]) / 2, axis=0)


def _check_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    boxes = check_array(boxes, name, ("N", 4), dtype=float)
    bad = np.flatnonzero((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
    if bad.size:
        raise ValueError(f"{name} must have width and height > 0, got {boxes[bad[0]].tolist()} at index {bad[0]}")
    return boxes
