"""Checks for chapter 08 (evaluation): ``pck``, ``object_keypoint_similarity``, ``greedy_match``,
``average_precision_101``; the stretch exercise ``keypoint_error_classes``.

For each exercise, ``check_<exercise>(fn)`` runs small hand-worked cases (the visible check)
and ``hidden_<exercise>(fn)`` compares with the course's reference implementation in
:mod:`course_lib.metrics` on random cases, with the reference itself off limits.
"""

from __future__ import annotations

import numpy as np

from course_lib import metrics
from course_lib.grading.checks import (
    HINT_IGNORED_VISIBILITY,
    CheckFailed,
    all_visible,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    check_type,
    forbid_reference,
    report_passed,
)
from course_lib.keypoints import COCO_SIGMAS
from course_lib.metrics.coco_eval import _match_all_images, _read_at_recall_levels
from course_lib.metrics.oks import _keypoint_similarities, _oks_pairs
from course_lib.metrics.pck import _within_radius

RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def _check_float(result, what: str) -> None:
    check_type(result, (float, np.floating), what + " (a Python float: wrap the result in float(...))")


# =========================================================================== exercise 1: pck
def reference_pck(pred, gt, visible, norm, threshold) -> float:
    """Pooled PCK: correct labelled joints / labelled joints."""
    return metrics.pck(pred, gt, visible, norm, threshold).mean


def _pck_mistakes(pred, gt, visible, norm, threshold) -> dict:
    distance = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)  # (N, K)
    labelled = np.asarray(visible) > 0
    radius = threshold * np.asarray(norm, float)[:, None]
    strict = ((distance < radius) & labelled).sum() / labelled.sum()
    correct = (distance <= radius) & labelled
    with np.errstate(invalid="ignore", divide="ignore"):
        per_keypoint = np.nanmean(correct.sum(axis=0) / labelled.sum(axis=0))
        per_person = np.nanmean(correct.sum(axis=1) / labelled.sum(axis=1))
    only_visible = visible == 2
    mistakes = {
        HINT_IGNORED_VISIBILITY: reference_pck(pred, gt, all_visible(visible), norm, threshold),
        "a joint exactly on the radius counts as correct: use <=, not <.": strict,
        "this is the average of the per-keypoint accuracies; PCK here is pooled: correct labelled joints "
        "divided by labelled joints over the whole set.": per_keypoint,
        "this is the average of the per-person accuracies; PCK here is pooled: correct labelled joints "
        "divided by labelled joints over the whole set.": per_person,
    }
    if only_visible.any():
        mistakes["labelled means v > 0: hidden joints (v = 1) count too, not only v = 2."] = (
            ((distance <= radius) & only_visible).sum() / only_visible.sum())
    return mistakes


def check_pck(fn) -> None:
    """Visible check: two people, three joints, worked by hand (answer 4 / 5 = 0.8)."""
    gt = np.array([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]],
                   [[0.0, 0.0], [0.0, 10.0], [0.0, 20.0]]])
    pred = np.array([[[1.0, 0.0], [10.0, 3.0], [20.0, 0.0]],  # errors 1, 3, 0; radius 0.2 * 10 = 2
                     [[0.0, 4.0], [0.0, 10.0], [5.0, 20.0]]])  # errors 4, 0, 5; radius 0.2 * 20 = 4
    visible = np.array([[2, 2, 2], [2, 1, 0]])
    norm = np.array([10.0, 20.0])
    what = "pck(pred, gt, visible, norm=[10, 20], threshold=0.2) on the worked example"
    result = call_student(fn, pred, gt, visible, norm, 0.2, name="pck")
    _check_float(result, what)
    check_close(result, 0.8, what, mistakes=_pck_mistakes(pred, gt, visible, norm, 0.2))
    result = call_student(fn, gt, gt, visible, norm, 0.05, name="pck")
    check_close(result, 1.0, "pck of perfect predictions")
    report_passed("pck")


def hidden_pck(fn) -> None:
    """Hidden check: random sets of people against the reference."""
    fn = forbid_reference(fn, *REFERENCES["pck"])
    rng = np.random.default_rng(801)
    for trial in range(8):
        n, k = int(rng.integers(1, 9)), int(rng.choice([5, 14, 17]))
        gt = rng.uniform(0, 200, size=(n, k, 2))
        norm = rng.uniform(20, 120, size=n)
        pred = gt + rng.normal(0, 1, size=(n, k, 2)) * norm[:, None, None] * rng.uniform(0.02, 0.3)
        if trial % 3 == 0:  # integer pixels: ties with the radius happen
            gt, pred, norm = np.round(gt), np.round(pred), np.round(norm / 5) * 5
        visible = rng.choice([0, 1, 2], size=(n, k), p=[0.25, 0.25, 0.5])
        visible[0, 0] = 2
        threshold = float(rng.choice([0.05, 0.1, 0.2, 0.5]))
        result = call_student(fn, pred, gt, visible, norm, threshold, name="pck")
        _check_float(result, "pck on random people")
        check_close(result, reference_pck(pred, gt, visible, norm, threshold),
                    f"pck on {n} random people with {k} joints, threshold {threshold}",
                    mistakes=_pck_mistakes(pred, gt, visible, norm, threshold))
    report_passed("pck (hidden)")


# =========================================================================== exercise 2: OKS
def reference_object_keypoint_similarity(pred, gt, visibility, area, sigmas=COCO_SIGMAS) -> float:
    """OKS of one prediction with one ground truth that has labelled keypoints."""
    return metrics.object_keypoint_similarity(pred, gt, visibility, area, sigmas)


def _oks_mistakes(pred, gt, visibility, area, sigmas) -> dict:
    sigmas = np.asarray(sigmas, float)
    visibility = np.asarray(visibility)
    mistakes = {
        HINT_IGNORED_VISIBILITY + " (OKS averages over the labelled keypoints only)":
            reference_object_keypoint_similarity(pred, gt, all_visible(visibility), area, sigmas),
        "k_i is twice sigma_i (k_i = 2 sigma_i): you used sigma_i itself.":
            reference_object_keypoint_similarity(pred, gt, visibility, area, sigmas / 2),
        "s^2 is the area (s = sqrt(area)): you used the area where s belongs.":
            reference_object_keypoint_similarity(pred, gt, visibility, area**2, sigmas),
        "the exponent is -d^2 / (2 s^2 k_i^2): the factor 2 is missing.":
            reference_object_keypoint_similarity(pred, gt, visibility, area / 2, sigmas),
    }
    if (visibility == 2).any() and (visibility == 1).any():
        mistakes["labelled means v > 0: hidden keypoints (v = 1) count too, not only v = 2."] = (
            reference_object_keypoint_similarity(pred, gt, np.where(visibility == 2, 2, 0), area, sigmas))
    return mistakes


def check_object_keypoint_similarity(fn) -> None:
    """Visible check: three keypoints worked by hand (answer exp(-1/2) = 0.6065), then COCO's 17."""
    gt = np.array([[10.0, 10.0], [20.0, 10.0], [30.0, 10.0]])
    pred = np.array([[11.0, 10.0], [20.0, 12.0], [30.0, 14.0]])  # d = 1, 2, 4
    visibility = np.array([2, 1, 0])
    sigmas = np.array([0.05, 0.1, 0.1])  # k = 0.1, 0.2, 0.2; with s = sqrt(100) = 10, s k = 1, 2, 2
    what = "object_keypoint_similarity(pred, gt, visibility=[2, 1, 0], area=100, sigmas=[0.05, 0.1, 0.1])"
    result = call_student(fn, pred, gt, visibility, 100.0, sigmas, name="object_keypoint_similarity")
    _check_float(result, what)
    check_close(result, np.exp(-0.5), what, atol=1e-9, mistakes=_oks_mistakes(pred, gt, visibility, 100.0, sigmas))
    rng = np.random.default_rng(0)
    person = rng.uniform(50, 150, size=(17, 2))
    flags = np.full(17, 2)
    result = call_student(fn, person, person, flags, 2500.0, name="object_keypoint_similarity")
    check_close(result, 1.0, "object_keypoint_similarity of a perfect prediction (COCO sigmas by default)")
    report_passed("object_keypoint_similarity")


def hidden_object_keypoint_similarity(fn) -> None:
    """Hidden check: random people of every size with COCO's sigmas, against the reference."""
    fn = forbid_reference(fn, *REFERENCES["object_keypoint_similarity"])
    rng = np.random.default_rng(802)
    for _ in range(10):
        area = float(np.exp(rng.uniform(np.log(200), np.log(40000))))
        gt = rng.uniform(0, 300, size=(17, 2))
        pred = gt + rng.normal(0, 1, size=(17, 2)) * np.sqrt(area) * rng.uniform(0.01, 0.2)
        visibility = rng.choice([0, 1, 2], size=17, p=[0.3, 0.2, 0.5])
        visibility[rng.integers(17)] = 2
        what = f"object_keypoint_similarity on a random person of area {area:.0f}"
        result = call_student(fn, pred, gt, visibility, area, COCO_SIGMAS, name="object_keypoint_similarity")
        _check_float(result, what)
        check_close(result, reference_object_keypoint_similarity(pred, gt, visibility, area), what,
                    mistakes=_oks_mistakes(pred, gt, visibility, area, COCO_SIGMAS))
    # another keypoint set: the sigmas must come from the argument
    sigmas = rng.uniform(0.02, 0.1, size=5)
    gt = rng.uniform(0, 100, size=(5, 2))
    pred = gt + rng.normal(0, 3, size=(5, 2))
    visibility = np.array([2, 2, 1, 0, 2])
    result = call_student(fn, pred, gt, visibility, 900.0, sigmas, name="object_keypoint_similarity")
    check_close(result, reference_object_keypoint_similarity(pred, gt, visibility, 900.0, sigmas),
                "object_keypoint_similarity with 5 keypoints and their own sigmas (use the sigmas argument)",
                mistakes=_oks_mistakes(pred, gt, visibility, 900.0, sigmas))
    report_passed("object_keypoint_similarity (hidden)")


# =========================================================================== exercise 3: greedy matching
def reference_greedy_match(oks, threshold) -> np.ndarray:
    """COCO's greedy matching in one image, no crowds, nothing ignored."""
    gt_count = np.shape(oks)[1]
    return metrics.greedy_match(oks, np.zeros(gt_count, bool), np.zeros(gt_count, bool), threshold)


def _match_loop(oks, threshold, *, mark_taken=True, strict=False, first=False, best_overall=False) -> np.ndarray:
    """The typical wrong versions of the loop, to recognise them."""
    oks = np.asarray(oks, float)
    taken = np.zeros(oks.shape[1], bool)
    matches = np.full(oks.shape[0], -1)
    for d in range(oks.shape[0]):
        if best_overall:
            g = int(np.argmax(oks[d]))
            ok = oks[d, g] >= threshold and not taken[g]
            candidates = [g] if ok else []
        else:
            free = ~taken if mark_taken else np.ones_like(taken)
            above = oks[d] > threshold if strict else oks[d] >= threshold
            candidates = list(np.flatnonzero(free & above))
            if candidates and not first:
                values = oks[d, candidates]
                candidates = [candidates[int(np.flatnonzero(values == values.max())[-1])]]
        if candidates:
            matches[d] = candidates[0]
            taken[candidates[0]] = True
    return matches


def _match_mistakes(oks, threshold) -> dict:
    return {
        "a ground truth can be matched only once: mark it as taken and skip taken ones.":
            _match_loop(oks, threshold, mark_taken=False),
        "a match needs OKS >= threshold (a value equal to the threshold matches): use >=, not >.":
            _match_loop(oks, threshold, strict=True),
        "each detection takes the BEST free ground truth (highest OKS), not the first one above the threshold.":
            _match_loop(oks, threshold, first=True),
        "look for the best ground truth among the FREE ones; you took the best overall and gave up when "
        "it was already taken.": _match_loop(oks, threshold, best_overall=True),
    }


def check_greedy_match(fn) -> None:
    """Visible check: three detections, four ground truths, worked by hand (answer [0, 3, 2])."""
    oks = np.array([[0.90, 0.60, 0.00, 0.20],
                    [0.80, 0.60, 0.10, 0.75],
                    [0.95, 0.30, 0.50, 0.70]])
    what = "greedy_match(oks, threshold=0.5) on the worked example"
    result = call_student(fn, oks, 0.5, name="greedy_match")
    check_shape(result, (3,), what)
    check_dtype(result, "integer", what)
    check_close(result, [0, 3, 2], what, mistakes=_match_mistakes(oks, 0.5))
    result = call_student(fn, oks, 0.99, name="greedy_match")
    check_close(result, [-1, -1, -1], "greedy_match(oks, threshold=0.99): nothing is good enough")
    report_passed("greedy_match")


def hidden_greedy_match(fn) -> None:
    """Hidden check: random OKS matrices (no ties) at COCO's thresholds, against the reference."""
    fn = forbid_reference(fn, *REFERENCES["greedy_match"])
    rng = np.random.default_rng(803)
    for trial in range(12):
        d, g = int(rng.integers(1, 9)), int(rng.integers(1, 7))
        oks = rng.uniform(0, 1, size=(d, g)) ** rng.uniform(0.3, 2)
        threshold = float(np.linspace(0.5, 0.95, 10)[trial % 10])
        result = call_student(fn, oks, threshold, name="greedy_match")
        what = f"greedy_match on a random {d} x {g} OKS matrix at threshold {threshold:.2f}"
        check_shape(result, (d,), what)
        check_dtype(result, "integer", what)
        check_close(result, reference_greedy_match(oks, threshold), what, mistakes=_match_mistakes(oks, threshold))
    result = call_student(fn, np.zeros((0, 3)), 0.5, name="greedy_match")
    check_shape(result, (0,), "greedy_match with no detections")
    result = call_student(fn, np.zeros((2, 0)), 0.5, name="greedy_match")
    check_close(result, [-1, -1], "greedy_match with no ground truth (every detection unmatched)")
    report_passed("greedy_match (hidden)")


# =========================================================================== exercise 4: AP
def reference_average_precision_101(recall, precision, recall_levels=RECALL_LEVELS) -> float:
    """COCO's interpolated AP of one ranked list."""
    return metrics.average_precision(recall, precision, recall_levels)


def _ap_mistakes(recall, precision, levels=RECALL_LEVELS) -> dict:
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]

    def read(curve, side="left", at=levels):
        index = np.searchsorted(recall, at, side=side)
        out = np.zeros(len(at))
        reached = index < len(recall)
        out[reached] = curve[index[reached]]
        return float(out.mean())

    area = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    return {
        "precision must be interpolated first: at each recall level take the best precision at any recall "
        ">= that level (a running maximum from the right), not the raw precision.": read(precision),
        "COCO reads 101 recall levels (np.linspace(0, 1, 101)), not 11.": read(envelope, at=np.linspace(0, 1, 11)),
        "read the precision at the FIRST detection whose recall reaches the level "
        "(np.searchsorted(..., side='left')).": read(envelope, side="right"),
        "this is the area under the raw precision-recall steps; COCO averages the interpolated precision at "
        "101 recall levels instead.": area,
    }


def _ranked_list(true_positive: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    hits = np.cumsum(true_positive).astype(float)
    misses = np.cumsum(~true_positive).astype(float)
    return hits / num_gt, hits / (hits + misses)


def check_average_precision_101(fn) -> None:
    """Visible check: six ranked detections, four ground truths, worked by hand (AP = 80.17 / 101)."""
    recall, precision = _ranked_list(np.array([True, False, True, True, False, True]), 4)
    what = ("average_precision_101(recall, precision) for the ranked list hit, miss, hit, hit, miss, hit "
            "with 4 ground truths")
    result = call_student(fn, recall, precision, name="average_precision_101")
    _check_float(result, what)
    expected = (26 * 1.0 + 25 * 0.75 + 25 * 0.75 + 25 * (4 / 6)) / 101
    check_close(result, expected, what, mistakes=_ap_mistakes(recall, precision))
    recall, precision = _ranked_list(np.array([True, True, False]), 4)  # recall never reaches 0.51
    result = call_student(fn, recall, precision, name="average_precision_101")
    check_close(result, 51 / 101, "average_precision_101 when the recall stops at 0.5 (levels above it get 0)",
                mistakes=_ap_mistakes(recall, precision))
    report_passed("average_precision_101")


def hidden_average_precision_101(fn) -> None:
    """Hidden check: random ranked lists against the reference."""
    fn = forbid_reference(fn, *REFERENCES["average_precision_101"])
    rng = np.random.default_rng(804)
    for _ in range(10):
        num_gt = int(rng.integers(1, 40))
        length = int(rng.integers(1, 60))
        hits = rng.random(length) < rng.uniform(0.2, 0.9)
        hits[np.cumsum(hits) > num_gt] = False  # never more hits than ground truths
        recall, precision = _ranked_list(hits, num_gt)
        what = f"average_precision_101 on a random ranked list of {length} detections and {num_gt} ground truths"
        result = call_student(fn, recall, precision, name="average_precision_101")
        _check_float(result, what)
        check_close(result, reference_average_precision_101(recall, precision), what,
                    mistakes=_ap_mistakes(recall, precision))
    result = call_student(fn, np.zeros(0), np.zeros(0), name="average_precision_101")
    check_close(result, 0.0, "average_precision_101 with no detections")
    report_passed("average_precision_101 (hidden)")


__all__ = [
    "CheckFailed",
    "check_average_precision_101",
    "check_greedy_match",
    "check_object_keypoint_similarity",
    "check_pck",
    "hidden_average_precision_101",
    "hidden_greedy_match",
    "hidden_object_keypoint_similarity",
    "hidden_pck",
]


# =========================================================================== stretch: error classes
def reference_keypoint_error_classes(pred, gt, visibility, area, sigmas=COCO_SIGMAS) -> np.ndarray:
    """The course's version for one person (metrics.keypoint_error_classes, no other people: no swaps)."""
    return metrics.keypoint_error_classes(np.asarray(pred, float)[None], np.asarray(gt, float)[None],
                                          np.asarray(visibility)[None], np.array([float(area)]), sigmas=sigmas)[0]


def _error_class_mistakes(pred, gt, visibility, area, sigmas=COCO_SIGMAS) -> dict:
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    labelled = np.asarray(visibility) > 0
    ks = np.exp(-((pred - gt) ** 2).sum(-1) / (2 * area * (2 * sigmas) ** 2))
    no_inversion = np.where(ks >= 0.85, 0, np.where(ks >= 0.5, 1, 4))
    no_inversion[~labelled] = -1
    with_sigma = np.exp(-((pred - gt) ** 2).sum(-1) / (2 * area * sigmas**2))
    sigma_codes = np.where(with_sigma >= 0.85, 0, np.where(with_sigma >= 0.5, 1, 4))
    sigma_codes[~labelled] = -1
    return {"an error > 0.5 on the mirrored joint's truth is an INVERSION (2), not a miss.": no_inversion,
            "OKS uses k = 2 sigma: exp(-d^2 / (2 s^2 (2 sigma)^2)).": sigma_codes}


def _check_error_classes(fn, pred, gt, visibility, area, what) -> None:
    result = call_student(fn, pred, gt, visibility, area, name="keypoint_error_classes")
    check_type(result, np.ndarray, what)
    check_shape(result, (len(gt),), what)
    check_close(result.astype(float), reference_keypoint_error_classes(pred, gt, visibility, area).astype(float), what,
                mistakes={hint: value.astype(float)
                          for hint, value in _error_class_mistakes(pred, gt, visibility, area).items()})


def _error_class_case(rng: np.random.Generator, area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt = rng.uniform(20, 180, (17, 2))
    pred = gt + rng.normal(0, 1, (17, 2)) * np.sqrt(area) * 2 * COCO_SIGMAS[:, None] * rng.uniform(0.1, 2.0, (17, 1))
    pred[[9, 10]] = gt[[10, 9]] + rng.normal(0, 0.5, (2, 2))  # the wrists inverted
    visibility = rng.integers(0, 3, 17)
    visibility[[9, 10]] = 2
    return pred, gt, visibility


def check_keypoint_error_classes(fn) -> None:
    """Visible check: one person with a good, a jittered, an inverted, a missed and an unlabelled keypoint."""
    pred, gt, visibility = _error_class_case(np.random.default_rng(81), 3000.0)
    _check_error_classes(fn, pred, gt, visibility, 3000.0,
                         "keypoint_error_classes(pred, gt, visibility, area=3000) on one person with inverted wrists")
    report_passed("keypoint_error_classes")


def hidden_keypoint_error_classes(fn) -> None:
    """Hidden check: random people and areas against the reference."""
    fn = forbid_reference(fn, *REFERENCES["keypoint_error_classes"])
    rng = np.random.default_rng(808)
    for _ in range(6):
        area = float(rng.uniform(500, 20000))
        pred, gt, visibility = _error_class_case(rng, area)
        _check_error_classes(fn, pred, gt, visibility, area, f"keypoint_error_classes on a random person, area {area:.0f}")
    report_passed("keypoint_error_classes (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "pck": (reference_pck, metrics.pck, metrics.pckh, metrics.pdj, _within_radius),
    "object_keypoint_similarity": (reference_object_keypoint_similarity, metrics.object_keypoint_similarity,
        metrics.oks_matrix, _oks_pairs, _keypoint_similarities),
    "greedy_match": (reference_greedy_match, metrics.greedy_match, _match_all_images),
    "average_precision_101": (reference_average_precision_101, metrics.average_precision,
        metrics.interpolated_precision, _read_at_recall_levels),
    "keypoint_error_classes": (reference_keypoint_error_classes, metrics.keypoint_error_classes),
}
