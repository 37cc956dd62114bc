"""Percentage of Correct Parts: PCP and PCPm (chapter 08).

PCP scores **limbs** (parts), not joints.  A limb (a, b) of ground-truth length
``L = ||gt_a - gt_b||`` is correct when its predicted endpoints are close enough:

* **strict PCP** (Ferrari, Marin-Jimenez & Zisserman 2008; Eichner et al. 2012), the
  definition used here: *both* endpoints within ``threshold * L`` of their true positions,

      correct = [ ||pred_a - gt_a|| <= t * L ]  and  [ ||pred_b - gt_b|| <= t * L ]

* **loose PCP** (used by some later papers, which makes their numbers look better): the
  *average* of the two endpoint errors within ``t * L``.  Strict PCP is never higher.

With t = 0.5 the radius is "half the limb length", the usual definition.  Short limbs get
small radii, so PCP punishes small people and foreshortened limbs; **PCPm** (Andriluka et al.
2014) replaces each instance's length by the *mean* length of that limb over the whole test
set, so every instance of, say, the left forearm gets the same radius.

The limbs on COCO keypoints (:data:`course_lib.keypoints.COCO_PCP_LIMBS`) are the eight arm
and leg segments and the torso's two **sides** (shoulder to hip, left and right).  LSP's PCP
scores the torso (neck to pelvis) and the head (neck to head top) instead of the two sides:
COCO has no neck, pelvis or head top, so COCO-PCP numbers are not comparable with LSP's.

A limb is counted when both of its ground-truth endpoints are labelled (``visible > 0``).
``mean`` is pooled: correct counted limbs / counted limbs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from course_lib.keypoints import COCO_PCP_LIMBS
from course_lib.metrics.pck import _ratio
from course_lib.validation import check_array, check_positive, check_visibility


class LimbAccuracy(NamedTuple):
    """Result of :func:`pcp` and :func:`pcpm`.

    Attributes:
        mean: correct counted limbs / counted limbs, pooled over the whole set.
        per_limb: ``(L,)`` the same ratio for each limb; NaN where a limb is never counted.
        correct: ``(N, L)`` bool, True where a counted limb is correct.
        labelled: ``(N, L)`` bool, limbs whose two ground-truth endpoints are labelled.
        names: the ``L`` limb names.
        radius: ``(N, L)`` the radius in pixels each limb was judged with.
    """

    mean: float
    per_limb: np.ndarray
    correct: np.ndarray
    labelled: np.ndarray
    names: tuple[str, ...]
    radius: np.ndarray


def pcp(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    limbs: Mapping[str, tuple[int, int]] | Sequence[tuple[int, int]] = COCO_PCP_LIMBS,
    threshold: float = 0.5,
) -> LimbAccuracy:
    """Strict PCP: a limb is correct when both endpoints are within ``threshold`` x its own length.

        L_nl = ||gt_na - gt_nb||
        correct_nl = [ ||pred_na - gt_na|| <= t L_nl ] and [ ||pred_nb - gt_nb|| <= t L_nl ]

    ``pred``, ``gt`` ``(N, K, 2)``, ``visible`` ``(N, K)``; ``limbs`` maps names to joint
    pairs (default: :data:`course_lib.keypoints.COCO_PCP_LIMBS`) or is a list of pairs.
    Reference: Ferrari, Marin-Jimenez & Zisserman, "Progressive search space reduction for
    human pose estimation", CVPR 2008.
    """
    pred, gt, visible, pairs, names, threshold = _check_inputs(pred, gt, visible, limbs, threshold)
    length, labelled = _limb_lengths(gt, visible, pairs)  # (N, L), (N, L)
    return _score_limbs(pred, gt, pairs, names, labelled, threshold * length)


def pcpm(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    limbs: Mapping[str, tuple[int, int]] | Sequence[tuple[int, int]] = COCO_PCP_LIMBS,
    threshold: float = 0.5,
) -> LimbAccuracy:
    """PCPm: strict PCP with each limb's *mean* ground-truth length over the set as the length.

        Lbar_l = mean over counted instances n of ||gt_na - gt_nb||
        correct_nl = [ ||pred_na - gt_na|| <= t Lbar_l ] and [ ||pred_nb - gt_nb|| <= t Lbar_l ]

    Reference: Andriluka et al., "2D Human Pose Estimation: New Benchmark and State of the Art
    Analysis", CVPR 2014 ("PCPm ... uses 50% of the mean ground-truth segment length over the
    entire test set").
    """
    pred, gt, visible, pairs, names, threshold = _check_inputs(pred, gt, visible, limbs, threshold)
    length, labelled = _limb_lengths(gt, visible, pairs)  # (N, L), (N, L)
    mean_length = _ratio(np.where(labelled, length, 0.0).sum(axis=0), labelled.sum(axis=0))  # (L,)
    radius = np.broadcast_to(threshold * mean_length, length.shape)  # (N, L)
    return _score_limbs(pred, gt, pairs, names, labelled, np.nan_to_num(radius, nan=0.0))


def _check_inputs(pred, gt, visible, limbs, threshold):
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims)
    visible = check_visibility(visible, "visible", ("N", "K"), dims=dims)
    threshold = check_positive(threshold, "threshold")
    if isinstance(limbs, Mapping):
        names, pairs = tuple(limbs.keys()), list(limbs.values())
    else:
        pairs = list(limbs)
        names = tuple(f"{a}-{b}" for a, b in pairs)
    pairs = check_array(pairs, "limbs", (None, 2)).astype(int)  # (L, 2)
    if pairs.shape[0] == 0 or pairs.min() < 0 or pairs.max() >= dims["K"]:
        raise ValueError(f"limbs must be pairs of joint indices in [0, {dims['K']}), got {pairs.tolist()}")
    return pred, gt, visible, pairs, names, threshold


def _limb_lengths(gt: np.ndarray, visible: np.ndarray, pairs: np.ndarray):
    """Ground-truth limb lengths ``(N, L)`` and which limbs are counted ``(N, L)``."""
    labelled = (visible[:, pairs[:, 0]] > 0) & (visible[:, pairs[:, 1]] > 0)  # (N, L)
    if not labelled.any():
        raise ValueError("no limb has both endpoints labelled (visible > 0): there is nothing to score")
    length = np.linalg.norm(gt[:, pairs[:, 0]] - gt[:, pairs[:, 1]], axis=-1)  # (N, L)
    return length, labelled


def _score_limbs(pred, gt, pairs, names, labelled, radius) -> LimbAccuracy:
    error = np.linalg.norm(pred - gt, axis=-1)  # (N, K) endpoint errors in pixels
    error_a, error_b = error[:, pairs[:, 0]], error[:, pairs[:, 1]]  # (N, L) each
    correct = (error_a <= radius) & (error_b <= radius) & labelled  # (N, L)
    return LimbAccuracy(
        mean=float(correct.sum() / labelled.sum()),
        per_limb=_ratio(correct.sum(axis=0), labelled.sum(axis=0)),
        correct=correct,
        labelled=labelled,
        names=names,
        radius=np.asarray(radius, dtype=float).copy(),
    )
