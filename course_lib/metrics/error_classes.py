"""Where COCO's AP goes: Ronchi & Perona's error classes of each predicted keypoint (chapter 08).

M. R. Ronchi, P. Perona, "Benchmarking and Error Diagnosis in Multi-Instance Pose
Estimation", ICCV 2017 (https://arxiv.org/abs/1707.05388).  Each labelled keypoint of a
prediction, matched to a person, is judged by its **keypoint similarity**, the term of OKS
(:mod:`course_lib.metrics.oks`) for that keypoint alone,

    ks(p, g) = exp(-||p - g||^2 / (2 s^2 k^2)),   s^2 = the person's area,  k = 2 sigma,

and falls in one of five classes:

* **good**: ``ks >= 0.85`` with its own truth;
* **jitter**: ``0.5 <= ks < 0.85``: the right joint, placed a little off;
* **inversion**: ``ks < 0.5``, but ``ks >= 0.5`` with the truth of the mirrored joint of the
  same person (a left wrist on the right wrist);
* **swap**: ``ks < 0.5`` and not an inversion, but ``ks >= 0.5`` with the same or the mirrored
  joint of *another* person of the image;
* **miss**: none of these.

The similarity to a joint ``j`` uses ``j``'s own ``k``, as OKS would if the prediction were
that joint.  Unlabelled keypoints (``v = 0``) get the code ``-1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from course_lib.keypoints import COCO_FLIP_PAIRS, COCO_SIGMAS
from course_lib.validation import check_array

ERROR_CLASSES: tuple[str, ...] = ("good", "jitter", "inversion", "swap", "miss")
GOOD, JITTER, INVERSION, SWAP, MISS = range(5)
GOOD_THRESHOLD, CLOSE_THRESHOLD = 0.85, 0.5


def _mirror_index(flip_pairs: Sequence[tuple[int, int]], num_keypoints: int) -> np.ndarray:
    mirror = np.arange(num_keypoints)
    for left, right in flip_pairs:
        if not (0 <= left < num_keypoints and 0 <= right < num_keypoints):
            raise ValueError(f"flip_pairs holds ({left}, {right}), outside 0..{num_keypoints - 1}")
        mirror[left], mirror[right] = right, left
    return mirror


def _similarity(pred: np.ndarray, truth: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """``ks`` of each predicted keypoint ``(K, 2)`` with the truth ``(K, 2)`` of the same index."""
    squared = ((pred - truth) ** 2).sum(axis=-1)
    return np.exp(-squared / (2 * area * (2 * sigmas) ** 2))


def keypoint_error_classes(
    pred: np.ndarray,
    gt: np.ndarray,
    visibility: np.ndarray,
    areas: np.ndarray,
    image_ids: np.ndarray | None = None,
    *,
    flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS,
    sigmas: np.ndarray = COCO_SIGMAS,
) -> np.ndarray:
    """Ronchi & Perona's class of every labelled keypoint: codes into :data:`ERROR_CLASSES`.

    Args:
        pred: ``(N, K, 2)`` predictions, each matched to the person of the same index.
        gt: ``(N, K, 2)`` the people's keypoints; ``visibility`` ``(N, K)`` COCO flags.
        areas: ``(N,)`` the people's segmented areas (``s^2``), > 0.
        image_ids: ``(N,)`` which image each person is in; swaps are looked for among the other
            people of the same image.  ``None``: every person is alone (no swaps).
        flip_pairs, sigmas: the keypoint set's left/right pairs and OKS constants.

    Returns:
        ``(N, K)`` int codes: 0 good, 1 jitter, 2 inversion, 3 swap, 4 miss, -1 not labelled.
    """
    dims: dict[str, int] = {}
    pred = check_array(pred, "pred", ("N", "K", 2), dims=dims, dtype=float)
    gt = check_array(gt, "gt", ("N", "K", 2), dims=dims, dtype=float)
    visibility = check_array(visibility, "visibility", ("N", "K"), dims=dims, dtype=float)
    areas = check_array(areas, "areas", ("N",), dims=dims, dtype=float)
    if np.any(areas <= 0):
        raise ValueError(f"areas must be > 0, got {areas[areas <= 0][0]}")
    ids = np.zeros(len(pred)) if image_ids is None else check_array(image_ids, "image_ids", ("N",), dims=dims)
    sigmas = check_array(sigmas, "sigmas", (dims["K"],), dtype=float)
    mirror = _mirror_index(flip_pairs, dims["K"])
    codes = np.full(visibility.shape, -1, dtype=int)
    for n in range(len(pred)):
        own = _similarity(pred[n], gt[n], areas[n], sigmas)
        inverted = _similarity(pred[n], gt[n, mirror], areas[n], sigmas[mirror])
        others = [m for m in np.flatnonzero(ids == ids[n]) if m != n] if image_ids is not None else []
        swapped = np.zeros(dims["K"], dtype=bool)
        for m in others:
            for index in (np.arange(dims["K"]), mirror):
                close = _similarity(pred[n], gt[m, index], areas[m], sigmas[index]) >= CLOSE_THRESHOLD
                swapped |= close & (visibility[m, index] > 0)
        labelled_mirror = visibility[n, mirror] > 0
        codes[n] = np.select(
            [own >= GOOD_THRESHOLD, own >= CLOSE_THRESHOLD, (inverted >= CLOSE_THRESHOLD) & labelled_mirror, swapped],
            [GOOD, JITTER, INVERSION, SWAP], default=MISS)
        codes[n, visibility[n] <= 0] = -1
    return codes


def error_class_shares(codes: np.ndarray) -> dict[str, float]:
    """Share of the labelled keypoints in each class: ``{"good": ..., ..., "miss": ...}``."""
    codes = check_array(codes, "codes")
    labelled = codes >= 0
    if not labelled.any():
        raise ValueError("codes holds no labelled keypoint (every code is -1)")
    return {name: float((codes[labelled] == c).mean()) for c, name in enumerate(ERROR_CLASSES)}
