"""Object Keypoint Similarity (OKS), OKS-based NMS and keypoint-aware rescoring (chapters 08-09).

OKS plays for keypoints the role IoU plays for boxes: a number in [0, 1] saying how well one
predicted pose matches one ground-truth person.  COCO defines it as

    OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0]  /  sum_i [v_i > 0]

* ``d_i``: distance between predicted and true keypoint i, in pixels;
* ``s^2``: the person's **area** (COCO's segment area), so ``s`` is a length in pixels;
* ``k_i = 2 sigma_i``: a per-keypoint constant measured from how much annotators disagree
  (``COCO_SIGMAS``; hips 0.107, eyes 0.025), so a few pixels on an eye cost more than on a hip;
* ``v_i``: the ground truth's visibility; only labelled keypoints (v > 0) are averaged, the
  predicted visibility is ignored.

Each term is a Gaussian of the error: 1 when exact, ``exp(-1/2)`` = 0.61 when
``d_i = s k_i``.  The code follows pycocotools' ``COCOeval.computeOks`` operation for
operation (``e = d^2 / (2 sigma)^2 / (area + eps) / 2``, the same summation order), so the
numbers are bit-identical with it.

A ground truth with **no labelled keypoint** (typical of crowd regions) still gets an OKS
in pycocotools: every predicted keypoint is measured against a box twice the size of the
ground truth's box (x from ``x - w`` to ``x + 2w``, y from ``y - h`` to ``y + 2h``): the
distance is 0 inside it and the distance to its border outside, and all K keypoints are
averaged.  A prediction lying inside that enlarged box therefore has OKS 1 with it.
"""

from __future__ import annotations

import numpy as np

from course_lib.keypoints import COCO_SIGMAS
from course_lib.validation import check_array, check_positive

# NumPy sums a float64 vector in blocks of 8 partial sums (pairwise summation); up to this
# length one level of blocks is all it does, and _sum_like_numpy reproduces it exactly.
_PAIRWISE_BLOCK = 128


def object_keypoint_similarity(
    pred: np.ndarray,
    gt: np.ndarray,
    visibility: np.ndarray,
    area: float | np.ndarray,
    sigmas: np.ndarray = COCO_SIGMAS,
    *,
    gt_box: np.ndarray | None = None,
) -> float | np.ndarray:
    """OKS between each prediction and *its own* ground truth (paired, not all pairs).

    Args:
        pred: ``(K, 2)`` or ``(N, K, 2)`` predicted keypoints ``x, y`` in image pixels.
        gt: same shape, the ground-truth keypoints.
        visibility: ``(K,)`` or ``(N, K)`` ground-truth flags (0 not labelled, 1, 2 labelled).
        area: the ground-truth area ``s^2`` in pixels^2 (scalar or ``(N,)``), > 0.
        sigmas: ``(K,)`` per-keypoint constants (COCO's by default).
        gt_box: ``(4,)`` or ``(N, 4)`` ground-truth boxes ``[x, y, w, h]``; needed only for
            ground truths without labelled keypoints (see the module docstring).

    Returns:
        a float for a single pose, an ``(N,)`` array otherwise.
    """
    single = np.ndim(pred) == 2
    if single:  # one pose: add the person axis, remove it again at the end
        pred, gt, visibility = np.asarray(pred)[None], np.asarray(gt)[None], np.asarray(visibility)[None]
        area = np.reshape(area, (1,))
        gt_box = None if gt_box is None else np.asarray(gt_box)[None]
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims, dtype=float)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims, dtype=float)
    visibility = check_array(visibility, "visibility", ("N", "K"), dims=dims)
    area = check_array(area, "area", None, dtype=float)
    if area.ndim > 1 or area.size not in (1, dims["N"]):
        raise ValueError(f"area must be a number or have shape ({dims['N']},), got shape {area.shape}")
    area = np.broadcast_to(area.reshape(-1), (dims["N"],))
    _check_areas(area, "area")
    sigmas = _check_sigmas(sigmas, dims["K"])
    if gt_box is not None:
        gt_box = check_array(gt_box, "gt_box", ("N", 4), dims=dims, dtype=float)
    oks = _oks_pairs(pred, gt, visibility > 0, area, gt_box, sigmas)
    return float(oks[0]) if single else oks


def oks_matrix(
    pred: np.ndarray,
    gt: np.ndarray,
    visibility: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray = COCO_SIGMAS,
    *,
    gt_boxes: np.ndarray | None = None,
) -> np.ndarray:
    """OKS of every prediction with every ground truth of one image -> ``(D, G)``.

    ``pred`` ``(D, K, 2)``; ``gt`` ``(G, K, 2)``, ``visibility`` ``(G, K)``, ``areas``
    ``(G,)`` and ``gt_boxes`` ``(G, 4)`` describe the ground truths.  Entry ``[d, g]`` is
    what pycocotools' ``computeOks`` puts at the same place (for detections already sorted
    by score).
    """
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("D", "K", 2), dims=dims, dtype=float)
    gt = check_array(gt, "gt", ("G", "K", 2), dims=dims, dtype=float)
    visibility = check_array(visibility, "visibility", ("G", "K"), dims=dims)
    areas = check_array(areas, "areas", ("G",), dims=dims, dtype=float)
    _check_areas(areas, "areas")
    sigmas = _check_sigmas(sigmas, dims["K"])
    if gt_boxes is not None:
        gt_boxes = check_array(gt_boxes, "gt_boxes", ("G", 4), dims=dims, dtype=float)
    d, g = np.meshgrid(np.arange(dims["D"]), np.arange(dims["G"]), indexing="ij")  # (D, G) each
    d, g = d.ravel(), g.ravel()
    boxes = None if gt_boxes is None else gt_boxes[g]
    oks = _oks_pairs(pred[d], gt[g], visibility[g] > 0, areas[g], boxes, sigmas)
    return oks.reshape(dims["D"], dims["G"])


# --------------------------------------------------------------------------- the kernel
def _oks_pairs(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    area: np.ndarray,
    gt_box: np.ndarray | None,
    sigmas: np.ndarray,
) -> np.ndarray:
    """OKS of P (prediction, ground truth) pairs: ``pred``, ``gt`` ``(P, K, 2)``, ``labelled`` ``(P, K)``.

    Pairs whose ground truth has no labelled keypoint use the enlarged-box distance and
    average all K keypoints, as pycocotools does.
    """
    dx = pred[..., 0] - gt[..., 0]  # (P, K)
    dy = pred[..., 1] - gt[..., 1]  # (P, K)
    no_labels = ~labelled.any(axis=-1)  # (P,)
    if no_labels.any():
        if gt_box is None:
            bad = int(np.flatnonzero(no_labels)[0])
            raise ValueError(
                f"ground truth {bad} has no labelled keypoint: its OKS is measured against its "
                "enlarged box, so pass gt_box"
            )
        bdx, bdy = _distance_to_enlarged_box(pred[no_labels], gt_box[no_labels])
        dx[no_labels], dy[no_labels] = bdx, bdy
    counted = labelled | no_labels[:, None]  # (P, K)
    similarity = _keypoint_similarities(dx, dy, area, sigmas)  # (P, K)
    return _sum_like_numpy(similarity, counted) / counted.sum(axis=-1)


def _keypoint_similarities(dx: np.ndarray, dy: np.ndarray, area: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """``exp(-d_i^2 / (2 s^2 k_i^2))`` per keypoint, ``(P, K)``, in pycocotools' order of operations."""
    variances = (sigmas * 2) ** 2  # k_i^2 = (2 sigma_i)^2
    e = (dx**2 + dy**2) / variances / (area[:, None] + np.spacing(1)) / 2
    return np.exp(-e)


def _distance_to_enlarged_box(pred: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint x and y distances ``(P, K)`` from ``pred`` ``(P, K, 2)`` to the box doubled around its centre."""
    x, y, w, h = (box[:, i : i + 1] for i in range(4))  # (P, 1) each
    x0, x1 = x - w, x + w * 2
    y0, y1 = y - h, y + h * 2
    px, py = pred[..., 0], pred[..., 1]
    dx = np.maximum(0, x0 - px) + np.maximum(0, px - x1)  # 0 inside, distance to the border outside
    dy = np.maximum(0, y0 - py) + np.maximum(0, py - y1)
    return dx, dy


def _sum_like_numpy(values: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Row sums of ``values[counted]`` ``(P, K) -> (P,)``, added in exactly the order ``np.sum`` uses.

    pycocotools sums each pair's selected terms with ``np.sum``, which (for up to 128 numbers)
    keeps 8 running partial sums over blocks of 8, adds them as a small tree, then adds the
    leftover numbers one by one.  Doing the same here, for all pairs at once, makes our OKS
    equal to pycocotools' to the last bit, so ties and threshold comparisons come out the same.
    """
    num_keypoints = values.shape[-1]
    if num_keypoints > _PAIRWISE_BLOCK:  # beyond one block NumPy recurses; plain sum is then close, not exact
        return np.where(counted, values, 0.0).sum(axis=-1)
    # Move the counted terms to the front of each row, keeping their order; pad with zeros.
    order = np.argsort(~counted, axis=-1, kind="stable")  # (P, K)
    front = np.take_along_axis(np.where(counted, values, 0.0), order, axis=-1)  # (P, K)
    full_blocks = counted.sum(axis=-1) // 8  # (P,)
    total = np.empty(values.shape[:-1])
    for blocks in np.unique(full_blocks):
        rows = full_blocks == blocks
        a = front[rows]  # (R, K)
        if blocks == 0:
            s = np.zeros(len(a))
            first_leftover = 0
        else:
            r = a[:, 0:8].copy()  # 8 running partial sums
            for b in range(1, blocks):
                r += a[:, 8 * b : 8 * b + 8]
            s = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
            first_leftover = 8 * blocks
        for k in range(first_leftover, num_keypoints):  # the padding zeros add nothing
            s = s + a[:, k]
        total[rows] = s
    return total


# --------------------------------------------------------------------------- NMS and rescoring
def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float,
    sigmas: np.ndarray = COCO_SIGMAS,
    *,
    keypoint_scores: np.ndarray | None = None,
    keypoint_threshold: float | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression of the poses of one image, with OKS as the overlap.

    Take the highest-scoring pose, drop every remaining pose whose OKS with it exceeds
    ``threshold``, repeat with the best pose left.  Returns the kept indices, best first.

    As in the official SimpleBaseline/HRNet ``nms/nms.py`` (``oks_iou``), the OKS of two
    *predictions* uses the mean of their two areas as ``s^2``:

        e_i = d_i^2 / (2 sigma_i)^2 / ((area_a + area_b) / 2 + eps) / 2,   OKS = mean_i exp(-e_i)

    averaged over all K keypoints (the same per-keypoint terms as
    :func:`object_keypoint_similarity`, in pycocotools' order of operations).  With
    ``keypoint_threshold`` (their ``in_vis_thre``), only keypoints whose ``keypoint_scores``
    exceed it are averaged, and, as in that code, it is the confidence of the *candidate* pose
    (the one that may be suppressed) that decides (the code writes ``list(vg > t) and
    list(vd > t)``, which in Python evaluates to the second list); a candidate with no
    confident keypoint gets OKS 0 and is kept.  HRNet runs it per image with
    ``threshold = 0.9`` and no ``keypoint_threshold``.

    The order is the official one, ``order = scores.argsort()[::-1]`` (HRNet's
    ``lib/nms/nms.py``, MMPose's ``mmpose/evaluation/functional/nms.py``): the sort of those
    codebases' NumPy kept equal scores in index order, and the reversal puts the *later*
    pose first among equal scores.  It matters: when two poses of equal score overlap, the
    one kept is the one scored against the ground truth; on MMPose's ``test_coco.json``
    alignment case (``test_topdown_alignment``) this order gives MMPose's AP of 0.52875,
    keeping the earlier pose instead gives 0.52719.  The course writes it with a stable sort,
    because newer NumPy sorts with SIMD instructions on some processors and no longer keeps
    equal values in index order: ``scores.argsort()`` itself would make the result depend on
    the machine.

    Args:
        keypoints: ``(N, K, 2)`` poses of one image, pixels.
        scores: ``(N,)`` pose scores.
        areas: ``(N,)`` areas (pixels^2), > 0; HRNet uses the area of the detection box.
        threshold: suppress poses with OKS > threshold.
        keypoint_scores: ``(N, K)`` keypoint confidences, used with ``keypoint_threshold``.
    """
    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("N", "K", 2), dims=dims, dtype=float)
    scores = check_array(scores, "scores", ("N",), dims=dims, dtype=float)
    areas = check_array(areas, "areas", ("N",), dims=dims, dtype=float)
    _check_areas(areas, "areas")
    threshold = check_positive(threshold, "threshold", allow_zero=True)
    sigmas = _check_sigmas(sigmas, dims["K"])
    counted = np.ones(keypoints.shape[:2], dtype=bool)  # (N, K): the keypoints each candidate is scored on
    if keypoint_threshold is not None:
        if keypoint_scores is None:
            raise ValueError("keypoint_threshold needs keypoint_scores")
        keypoint_scores = check_array(keypoint_scores, "keypoint_scores", ("N", "K"), dims=dims, dtype=float)
        counted = keypoint_scores > float(keypoint_threshold)

    order = np.argsort(scores, kind="stable")[::-1]  # best first; among equal scores the later pose first
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        dx = keypoints[rest, :, 0] - keypoints[best, :, 0]  # (R, K)
        dy = keypoints[rest, :, 1] - keypoints[best, :, 1]
        similarity = _keypoint_similarities(dx, dy, (areas[best] + areas[rest]) / 2, sigmas)  # (R, K)
        count = counted[rest].sum(axis=-1)  # (R,)
        oks = _sum_like_numpy(similarity, counted[rest]) / np.maximum(count, 1)  # the official np.sum(...) / count
        oks = np.where(count > 0, oks, 0.0)
        order = rest[oks <= threshold]
    return np.array(keep, dtype=int)


def grmi_rescore(box_scores: np.ndarray, keypoint_scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Keypoint-aware pose score: box score x mean of the confident keypoint scores -> ``(N,)``.

        score_n = box_n * mean{ c_nk : c_nk > threshold }        (0 if no keypoint is confident)

    G-RMI (Papandreou et al., "Towards Accurate Multi-person Pose Estimation in the Wild",
    CVPR 2017) showed that the person detector's box score is a poor confidence for a *pose*
    and scored each pose from its keypoint heatmaps instead (the average of the keypoints'
    maximal activations).  The variant here is the one of the SimpleBaseline and HRNet code
    (``lib/dataset/coco.py``, ``in_vis_thre = 0.2``) that the course's top-down pipeline
    follows: it keeps the box score as a factor and averages only keypoints whose confidence
    ``c_nk`` (the heatmap maximum) exceeds ``threshold``.

    Args:
        box_scores: ``(N,)`` detector scores.
        keypoint_scores: ``(N, K)`` keypoint confidences (heatmap maxima).
        threshold: confidences ``<=`` this are left out of the mean.
    """
    dims: dict[str, int] = {}
    box_scores = check_array(box_scores, "box_scores", ("N",), dims=dims, dtype=float)
    keypoint_scores = check_array(keypoint_scores, "keypoint_scores", ("N", "K"), dims=dims, dtype=float)
    threshold = float(threshold)
    confident = keypoint_scores > threshold  # (N, K)
    count = confident.sum(axis=-1)  # (N,)
    total = np.where(confident, keypoint_scores, 0.0).sum(axis=-1)
    mean_confidence = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return box_scores * mean_confidence


# --------------------------------------------------------------------------- checks
def _check_sigmas(sigmas: np.ndarray, num_keypoints: int) -> np.ndarray:
    sigmas = check_array(sigmas, "sigmas", (num_keypoints,), dtype=float)
    if np.any(sigmas <= 0):
        raise ValueError(f"sigmas must be > 0, got {sigmas.tolist()}")
    return sigmas


def _check_areas(areas: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(np.asarray(areas) <= 0)
    if bad.size:
        raise ValueError(f"{name} must be > 0, got {np.asarray(areas)[bad[0]]} at index {bad[0]}")
