"""Checks for chapter 09 (multi-person): ``crop_predictions_to_coco``, ``oks_nms``, ``rescore_poses``,
``group_by_tags``; the stretch exercise ``associative_embedding_loss``.

For each exercise, ``check_<exercise>(fn)`` runs small hand-worked cases (the visible check)
and ``hidden_<exercise>(fn)`` compares with the course's reference implementation
(:mod:`course_lib.multi_person`, :mod:`course_lib.metrics`, :mod:`course_lib.grouping`) on
random cases, with the reference itself off limits.
"""

from __future__ import annotations

import json

import numpy as np

from course_lib import geometry, grouping, metrics, multi_person
from course_lib.grading.checks import (
    CheckFailed,
    call_student,
    check_close,
    check_dtype,
    check_type,
    forbid_reference,
    matches,
    report_passed,
)
from course_lib.keypoints import COCO_SIGMAS

# A standing person, (17, 2) fractions of its height around the hips (for the NMS cases).
_PERSON = np.array([
    [0.00, -0.42], [0.03, -0.45], [-0.03, -0.45], [0.06, -0.43], [-0.06, -0.43],
    [0.12, -0.30], [-0.12, -0.30], [0.16, -0.15], [-0.16, -0.15], [0.18, 0.00], [-0.18, 0.00],
    [0.08, 0.00], [-0.08, 0.00], [0.09, 0.25], [-0.09, 0.25], [0.09, 0.48], [-0.09, 0.48],
])


def _fail_with_hints(what: str, problem: str, result, mistakes: dict) -> None:
    hints = [hint for hint, wrong in mistakes.items() if matches(result, wrong)]
    raise CheckFailed("\n".join([f"{what} {problem}"] + [f"Hint: {hint}" for hint in hints]))


# =========================================================================== exercise 1: results
def reference_crop_predictions_to_coco(heatmap_points, keypoint_scores, pose_scores, centers, scales, heatmap_size,
                                       image_ids) -> list[dict]:
    """The course's version (multi_person.crop_predictions_to_coco)."""
    return multi_person.crop_predictions_to_coco(heatmap_points, keypoint_scores, pose_scores, centers, scales,
                                                 heatmap_size, image_ids)


def _to_image(points, centers, scales, size_hw) -> np.ndarray:
    h, w = size_hw
    points, centers, scales = (np.asarray(a, float) for a in (points, centers, scales))
    x = centers[:, None, 0] + (points[..., 0] - w / 2) * scales[:, None, 0] / w
    y = centers[:, None, 1] + (points[..., 1] - h / 2) * scales[:, None, 1] / h
    return np.stack([x, y], axis=-1)


def _results_mistakes(points, centers, scales, size_hw) -> dict:
    h, w = size_hw
    points, centers, scales = (np.asarray(a, float) for a in (points, centers, scales))
    uncentred = centers[:, None, :] + points * (scales / np.array([w, h]))[:, None, :]
    return {
        "a heatmap point u = w / 2 is the crop's centre c_x: subtract w / 2 (and h / 2) before scaling.": uncentred,
        "heatmap_size is (h, w), height first, like every size in the course.": _to_image(points, centers, scales,
                                                                                         (w, h)),
        "the crop's size in the image is scales = (s_w, s_h); a heatmap pixel is s_w / w image pixels wide "
        "(you scaled by the heatmap size the other way round).":
            centers[:, None, :] + (points - np.array([w, h]) / 2) * (np.array([w, h]) / scales)[:, None, :],
    }


def _check_results(result, expected: list[dict], what: str, coordinate_mistakes: dict, score_mistakes: dict) -> None:
    check_type(result, list, what)
    if len(result) != len(expected):
        raise CheckFailed(f"{what} must give one result per pose ({len(expected)}), got {len(result)}.")
    for entry in result:
        check_type(entry, dict, f"each entry of {what}")
        missing = {"image_id", "category_id", "keypoints", "score"} - set(entry)
        if missing:
            raise CheckFailed(f"each entry of {what} needs the keys image_id, category_id, keypoints and score; "
                              f"missing {sorted(missing)}.")
    try:
        json.dumps(result)
    except TypeError as error:
        raise CheckFailed(f"{what} must be JSON-serialisable, as COCO result files are ({error}): convert NumPy "
                          "numbers and arrays with int(...), float(...) and .tolist().") from None
    image_ids = [entry["image_id"] for entry in result]
    if image_ids != [entry["image_id"] for entry in expected] or not all(isinstance(i, int) for i in image_ids):
        raise CheckFailed(f"{what}: image_id must be the pose's image id, as a Python int; expected "
                          f"{[e['image_id'] for e in expected]}, got {image_ids}.")
    if any(entry["category_id"] != 1 for entry in result):
        raise CheckFailed(f"{what}: category_id must be 1 (person) in every entry.")
    num_values = len(expected[0]["keypoints"]) if expected else 0
    lengths = {len(entry["keypoints"]) if isinstance(entry["keypoints"], list) else -1 for entry in result}
    if expected and lengths != {num_values}:
        raise CheckFailed(f"{what}: keypoints must be a flat list [x1, y1, c1, ..., xK, yK, cK] of {num_values} "
                          f"numbers, got lengths {sorted(lengths)}.")
    if not expected:
        return
    got = np.array([entry["keypoints"] for entry in result], float).reshape(len(result), -1, 3)
    want = np.array([entry["keypoints"] for entry in expected], float).reshape(len(expected), -1, 3)
    check_close(got[..., :2], want[..., :2], f"the keypoint positions x, y of {what}", atol=1e-4,
                mistakes=coordinate_mistakes)
    check_close(got[..., 2], want[..., 2], f"the keypoint confidences c of {what} (the keypoint_scores)", atol=1e-6)
    check_close([entry["score"] for entry in result], [entry["score"] for entry in expected],
                f"the scores of {what}", mistakes=score_mistakes)


def check_crop_predictions_to_coco(fn) -> None:
    """Visible check: two poses of two keypoints, worked by hand."""
    points = np.array([[[8.0, 12.0], [0.0, 0.0]], [[4.0, 6.0], [8.0, 12.0]]])
    keypoint_scores = np.array([[0.9, 0.5], [0.3, 0.7]])
    pose_scores = np.array([0.8, 0.4])
    centers = np.array([[100.0, 50.0], [10.0, 20.0]])
    scales = np.array([[32.0, 48.0], [16.0, 24.0]])  # 2 and 1 image pixels per heatmap pixel
    image_ids = np.array([7, 9])
    expected = [
        {"image_id": 7, "category_id": 1, "keypoints": [100.0, 50.0, 0.9, 84.0, 26.0, 0.5], "score": 0.8},
        {"image_id": 9, "category_id": 1, "keypoints": [6.0, 14.0, 0.3, 10.0, 20.0, 0.7], "score": 0.4},
    ]
    what = "crop_predictions_to_coco(...) with heatmap_size (24, 16) on the worked example"
    result = call_student(fn, points, keypoint_scores, pose_scores, centers, scales, (24, 16), image_ids,
                          name="crop_predictions_to_coco")
    _check_results(result, expected, what, _results_mistakes(points, centers, scales, (24, 16)),
                   {"score is the pose's score (pose_scores), not the mean keypoint score.":
                    keypoint_scores.mean(axis=1)})
    report_passed("crop_predictions_to_coco")


def hidden_crop_predictions_to_coco(fn) -> None:
    """Hidden check: random crops and heatmap sizes against the reference."""
    fn = forbid_reference(fn, *REFERENCES["crop_predictions_to_coco"])
    rng = np.random.default_rng(901)
    for size_hw in [(24, 16), (64, 48), (32, 32), (8, 6)]:
        p, k = int(rng.integers(1, 6)), int(rng.choice([3, 17]))
        points = rng.uniform(0, 1, size=(p, k, 2)) * np.array(size_hw[::-1])
        keypoint_scores = rng.uniform(0, 1, size=(p, k))
        pose_scores = rng.uniform(0, 1, size=p)
        centers = rng.uniform(0, 400, size=(p, 2))
        scales = rng.uniform(20, 200, size=(p, 2))
        image_ids = rng.integers(1, 1000, size=p)
        expected = reference_crop_predictions_to_coco(points, keypoint_scores, pose_scores, centers, scales,
                                                      size_hw, image_ids)
        result = call_student(fn, points, keypoint_scores, pose_scores, centers, scales, size_hw, image_ids,
                              name="crop_predictions_to_coco")
        _check_results(result, expected, f"crop_predictions_to_coco on {p} random crops, heatmap_size {size_hw}",
                       _results_mistakes(points, centers, scales, size_hw),
                       {"score is the pose's score (pose_scores), not the mean keypoint score.":
                        keypoint_scores.mean(axis=1)})
    report_passed("crop_predictions_to_coco (hidden)")


# =========================================================================== exercise 2: OKS-NMS
def reference_oks_nms(keypoints, scores, areas, threshold, sigmas=COCO_SIGMAS) -> np.ndarray:
    """The course's OKS-NMS (metrics.oks_nms)."""
    return metrics.oks_nms(keypoints, scores, areas, threshold, sigmas)


def _nms_loop(keypoints, scores, areas, threshold, sigmas=COCO_SIGMAS, *, sort=True, area="mean", k_factor=2.0):
    """OKS-NMS with typical mistakes switched on, to recognise them."""
    keypoints, scores, areas = np.asarray(keypoints, float), np.asarray(scores, float), np.asarray(areas, float)
    order = list(np.argsort(scores, kind="stable")[::-1]) if sort else list(range(len(scores)))  # ties: later first
    keep = []
    variances = (k_factor * np.asarray(sigmas, float)) ** 2
    while order:
        best = order.pop(0)
        keep.append(best)
        rest = []
        for other in order:
            size = {"mean": (areas[best] + areas[other]) / 2, "best": areas[best]}[area]
            d2 = np.sum((keypoints[best] - keypoints[other]) ** 2, axis=-1)
            if np.mean(np.exp(-d2 / variances / (size + np.spacing(1)) / 2)) <= threshold:
                rest.append(other)
        order = rest
    return np.array(keep, dtype=int)


def _nms_mistakes(keypoints, scores, areas, threshold, sigmas=COCO_SIGMAS) -> dict:
    tie_broken = np.asarray(scores, float) - 1e-9 * np.arange(len(scores))  # equal scores: the earlier pose first
    return {
        "among equal scores take the later pose first (the official order, scores.argsort()[::-1]), not the "
        "earlier one.": _nms_loop(keypoints, tie_broken, areas, threshold, sigmas),
        "start from the pose with the HIGHEST score (and go on in decreasing score), not from the first index.":
            _nms_loop(keypoints, scores, areas, threshold, sigmas, sort=False),
        "the OKS of two predictions uses the mean of their two areas as s^2, not the area of the best pose.":
            _nms_loop(keypoints, scores, areas, threshold, sigmas, area="best"),
        "k_i is twice sigma_i (k_i = 2 sigma_i): you used sigma_i itself.":
            _nms_loop(keypoints, scores, areas, threshold, sigmas, k_factor=1.0),
    }


def _check_indices(result, expected: np.ndarray, what: str, mistakes: dict) -> None:
    check_type(result, (np.ndarray, list, tuple), what)
    result = np.asarray(result)
    if result.ndim != 1:
        raise CheckFailed(f"{what} must be a 1-D array of indices, got shape {result.shape}.")
    if result.size:
        check_dtype(result, "integer", what)
    if result.shape != expected.shape:
        _fail_with_hints(what, f"kept {len(result)} poses {result.tolist()}, expected {len(expected)}: "
                               f"{expected.tolist()}.", result, mistakes)
    if not np.array_equal(result, expected):
        if np.array_equal(np.sort(result), np.sort(expected)):
            _fail_with_hints(what, f"kept the right poses but in the wrong order: return them best score first, "
                                   f"{expected.tolist()}, got {result.tolist()}.", result, mistakes)
        _fail_with_hints(what, f"kept {result.tolist()}, expected {expected.tolist()}.", result, mistakes)


def _nms_case():
    a = 60 * _PERSON + [60.0, 60.0]
    keypoints = np.stack([a, a + [1.0, 0.5], a + [150.0, 0.0], a + [150.5, -1.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    areas = np.full(4, 1000.0)
    return keypoints, scores, areas


def check_oks_nms(fn) -> None:
    """Visible check: two people, each detected twice (answer: keep [3, 0])."""
    keypoints, scores, areas = _nms_case()
    what = "oks_nms(keypoints, scores=[0.9, 0.8, 0.7, 0.95], areas, threshold=0.9)"
    result = call_student(fn, keypoints, scores, areas, 0.9, name="oks_nms")
    _check_indices(result, np.array([3, 0]), what, _nms_mistakes(keypoints, scores, areas, 0.9))
    result = call_student(fn, keypoints, scores, areas, 0.99, name="oks_nms")
    _check_indices(result, np.array([3, 0, 1, 2]), "oks_nms(..., threshold=0.99): nothing is that similar",
                   _nms_mistakes(keypoints, scores, areas, 0.99))
    report_passed("oks_nms")


def hidden_oks_nms(fn) -> None:
    """Hidden check: random crowds of duplicated poses against the reference."""
    fn = forbid_reference(fn, *REFERENCES["oks_nms"])
    rng = np.random.default_rng(902)
    for trial in range(8):
        people = int(rng.integers(1, 5))
        poses, areas = [], []
        for _ in range(people):
            height = rng.uniform(30, 150)
            base = height * (_PERSON + rng.normal(0, 0.02, size=(17, 2))) + rng.uniform(0, 300, size=2)
            for _ in range(int(rng.integers(1, 4))):
                poses.append(base + rng.normal(0, rng.uniform(0.5, 6), size=(17, 2)))
                areas.append(height**2 * rng.uniform(0.2, 0.5))
        keypoints, areas = np.stack(poses), np.array(areas)
        scores = rng.uniform(0, 1, size=len(poses))
        if trial % 2:  # equal scores: the official order keeps the later pose first
            scores = np.round(scores, 1)
        threshold = float(rng.choice([0.5, 0.7, 0.9]))
        expected = reference_oks_nms(keypoints, scores, areas, threshold)
        result = call_student(fn, keypoints, scores, areas, threshold, name="oks_nms")
        _check_indices(result, expected, f"oks_nms on {len(poses)} random poses at threshold {threshold}",
                       _nms_mistakes(keypoints, scores, areas, threshold))
    report_passed("oks_nms (hidden)")


# =========================================================================== exercise 3: rescoring
def reference_rescore_poses(box_scores, keypoint_scores, threshold=0.2) -> np.ndarray:
    """The course's keypoint-aware rescoring (metrics.grmi_rescore)."""
    return metrics.grmi_rescore(box_scores, keypoint_scores, threshold)


def _rescore_mistakes(box_scores, keypoint_scores, threshold=0.2) -> dict:
    box_scores, keypoint_scores = np.asarray(box_scores, float), np.asarray(keypoint_scores, float)
    def mean_of(counted):  # (N, K) -> mean of the counted scores per pose, 0 where none counts
        total = np.where(counted, keypoint_scores, 0).sum(axis=1)
        return np.where(counted.any(axis=1), total / np.maximum(counted.sum(axis=1), 1), 0.0)

    mean_confident = mean_of(keypoint_scores > threshold)
    mean_at_least = mean_of(keypoint_scores >= threshold)
    return {
        "average only the CONFIDENT keypoints (score > threshold), not all K.":
            box_scores * keypoint_scores.mean(axis=1),
        "the new score keeps the box score as a factor: box score x mean confident keypoint score.": mean_confident,
        "confident means score > threshold (strictly).": box_scores * mean_at_least,
    }


def check_rescore_poses(fn) -> None:
    """Visible check: three poses worked by hand (answer [0.63, 0.2, 0.0])."""
    box_scores = np.array([0.9, 0.5, 0.8])
    keypoint_scores = np.array([[0.1, 0.6, 0.8], [0.2, 0.2, 0.4], [0.1, 0.0, 0.15]])
    what = "rescore_poses(box_scores=[0.9, 0.5, 0.8], keypoint_scores, threshold=0.2)"
    result = call_student(fn, box_scores, keypoint_scores, 0.2, name="rescore_poses")
    check_type(result, np.ndarray, what)
    check_dtype(result, "float", what)
    if np.isnan(np.asarray(result, float)).any():
        raise CheckFailed(f"{what} gave NaN: a pose with no confident keypoint gets score 0 (no 0 / 0).")
    check_close(result, [0.63, 0.2, 0.0], what, mistakes=_rescore_mistakes(box_scores, keypoint_scores))
    report_passed("rescore_poses")


def hidden_rescore_poses(fn) -> None:
    """Hidden check: random poses and thresholds against the reference."""
    fn = forbid_reference(fn, *REFERENCES["rescore_poses"])
    rng = np.random.default_rng(903)
    for _ in range(6):
        n = int(rng.integers(1, 20))
        box_scores = rng.uniform(0, 1, size=n)
        keypoint_scores = rng.uniform(0, 1, size=(n, 17)) ** rng.uniform(0.5, 3)
        threshold = float(rng.choice([0.1, 0.2, 0.5]))
        result = call_student(fn, box_scores, keypoint_scores, threshold, name="rescore_poses")
        check_close(result, reference_rescore_poses(box_scores, keypoint_scores, threshold),
                    f"rescore_poses on {n} random poses, threshold {threshold}",
                    mistakes=_rescore_mistakes(box_scores, keypoint_scores, threshold))
    report_passed("rescore_poses (hidden)")


# =========================================================================== exercise 4: grouping
def reference_group_by_tags(locations, scores, tags, detection_threshold=0.1, tag_threshold=1.0,
                            joint_order=grouping.AE_JOINT_ORDER) -> np.ndarray:
    """The course's greedy grouping (grouping.group_by_tags)."""
    return grouping.group_by_tags(locations, scores, tags, detection_threshold, tag_threshold, joint_order)


def _group_loop(locations, scores, tags, detection_threshold, tag_threshold, joint_order, *, sort=True,
                skip_taken=True, first_tag=False) -> np.ndarray:
    """Greedy grouping with typical mistakes switched on, to recognise them."""
    locations, scores, tags = (np.asarray(a, float) for a in (locations, scores, tags))
    people, person_tags = [], []
    for k in joint_order:
        candidates = np.flatnonzero(scores[k] > detection_threshold)
        if sort:
            candidates = candidates[np.argsort(-scores[k, candidates], kind="stable")]
        for m in candidates:
            best, best_distance = -1, tag_threshold
            for p, person in enumerate(people):
                if skip_taken and person[k, 2] > 0:
                    continue
                reference = person_tags[p][0] if first_tag else np.mean(person_tags[p])
                if abs(tags[k, m] - reference) < best_distance:
                    best, best_distance = p, abs(tags[k, m] - reference)
            if best < 0:
                people.append(np.zeros((scores.shape[0], 3)))
                person_tags.append([])
                best = len(people) - 1
            people[best][k] = (locations[k, m, 0], locations[k, m, 1], scores[k, m])
            person_tags[best].append(tags[k, m])
    return np.stack(people) if people else np.zeros((0, scores.shape[0], 3))


def _group_mistakes(locations, scores, tags, detection_threshold, tag_threshold, joint_order) -> dict:
    args = (locations, scores, tags, detection_threshold, tag_threshold, joint_order)
    return {
        "take the candidates of each joint type in order of decreasing score (best detections first).":
            _group_loop(*args, sort=False),
        "a person can have each joint only once: skip the people that already have joint k.":
            _group_loop(*args, skip_taken=False),
        "compare with the MEAN tag of the person's joints so far, not with its first tag.":
            _group_loop(*args, first_tag=True),
    }


def _check_people(result, expected: np.ndarray, what: str, mistakes: dict) -> None:
    check_type(result, np.ndarray, what)
    if result.ndim != 3 or result.shape[1:] != expected.shape[1:]:
        raise CheckFailed(f"{what} must have shape (P, K, 3) = (P, {expected.shape[1]}, 3), got {result.shape}.")
    if result.shape != expected.shape:
        _fail_with_hints(what, f"found {len(result)} people, expected {len(expected)}.", result, mistakes)
    check_close(result, expected, what, mistakes=mistakes)


def _grouping_case():
    locations = np.zeros((3, 4, 2))
    scores = np.zeros((3, 4))
    tags = np.zeros((3, 4))
    rows = {  # joint: [(x, y, score, tag), ...]
        0: [(10, 10, 0.9, 0.1), (50, 10, 0.8, 2.0), (0, 0, 0.05, 5.0)],
        1: [(12, 20, 0.7, 0.3), (52, 20, 0.95, 1.8)],
        2: [(11, 30, 0.5, 1.15), (53, 30, 0.65, 2.2), (15, 31, 0.55, 0.5), (14, 30, 0.6, 4.0)],
    }
    for k, entries in rows.items():
        for m, (x, y, score, tag) in enumerate(entries):
            locations[k, m], scores[k, m], tags[k, m] = (x, y), score, tag
    expected = np.zeros((4, 3, 3))
    expected[0] = [(10, 10, 0.9), (12, 20, 0.7), (15, 31, 0.55)]
    expected[1] = [(50, 10, 0.8), (52, 20, 0.95), (53, 30, 0.65)]
    expected[2, 2] = (14, 30, 0.6)
    expected[3, 2] = (11, 30, 0.5)
    return locations, scores, tags, expected


def check_group_by_tags(fn) -> None:
    """Visible check: three joint types with up to four candidates each, worked by hand (four people)."""
    locations, scores, tags, expected = _grouping_case()
    what = "group_by_tags(locations, scores, tags, 0.1, 1.0, joint_order=(0, 1, 2)) on the worked example"
    result = call_student(fn, locations, scores, tags, 0.1, 1.0, (0, 1, 2), name="group_by_tags")
    _check_people(result, expected, what, _group_mistakes(locations, scores, tags, 0.1, 1.0, (0, 1, 2)))
    empty = call_student(fn, locations, np.zeros_like(scores), tags, 0.1, 1.0, (0, 1, 2), name="group_by_tags")
    check_type(empty, np.ndarray, "group_by_tags with no candidate above the threshold")
    if empty.shape != (0, 3, 3):
        raise CheckFailed(f"group_by_tags with no candidate above the threshold must return shape (0, 3, 3), "
                          f"got {empty.shape}.")
    report_passed("group_by_tags")


def hidden_group_by_tags(fn) -> None:
    """Hidden check: simulated tags of random crowds (COCO joint order) against the reference."""
    fn = forbid_reference(fn, *REFERENCES["group_by_tags"])
    rng = np.random.default_rng(904)
    for trial in range(6):
        people = int(rng.integers(1, 6))
        keypoints = rng.uniform(0, 250, size=(people, 17, 2))
        visibility = rng.choice([0, 1, 2], size=(people, 17), p=[0.2, 0.2, 0.6])
        detections = grouping.simulate_joint_detections(
            keypoints, visibility, tag_noise=float(rng.choice([0.1, 0.4, 0.8])), false_detections=int(trial % 3),
            seed=int(rng.integers(1 << 30)))
        args = (detections.locations, detections.scores, detections.tags, 0.1, 1.0, grouping.AE_JOINT_ORDER)
        expected = reference_group_by_tags(*args)
        result = call_student(fn, *args, name="group_by_tags")
        _check_people(result, expected, f"group_by_tags on {people} simulated people (trial {trial})",
                      _group_mistakes(*args))
    report_passed("group_by_tags (hidden)")


__all__ = [
    "CheckFailed",
    "check_crop_predictions_to_coco",
    "check_group_by_tags",
    "check_oks_nms",
    "check_rescore_poses",
    "hidden_crop_predictions_to_coco",
    "hidden_group_by_tags",
    "hidden_oks_nms",
    "hidden_rescore_poses",
]


# =========================================================================== stretch: associative-embedding loss
def reference_associative_embedding_loss(tags, visibility, sigma=1.0) -> tuple[float, float]:
    """The course's version (grouping.associative_embedding_loss)."""
    return grouping.associative_embedding_loss(tags, visibility, sigma)


def _ae_mistakes(tags, visibility, sigma=1.0) -> dict:
    tags, labelled = np.asarray(tags, float), np.asarray(visibility) > 0
    keep = labelled.any(axis=1)
    tags, labelled = tags[keep], labelled[keep]
    means = (tags * labelled).sum(1) / labelled.sum(1)
    squared = (tags - means[:, None]) ** 2 * labelled
    pull = float((squared.sum(1) / labelled.sum(1)).mean())
    n = len(means)

    def push_with(gaps):
        return float((gaps.sum() - np.trace(gaps)) / max(n * (n - 1), 1))

    gaps = np.exp(-((means[:, None] - means[None, :]) ** 2) / (2 * sigma**2))
    push = push_with(gaps)
    everything = tags.mean(1)
    return {
        "the pull averages over each person's LABELLED joints, then over people (you summed over joints).":
            np.array([squared.sum(1).mean(), push]),
        "the push leaves out n = m (exp(0) = 1 for every person): divide the sum over n != m by N (N - 1).":
            np.array([pull, gaps.sum() / n**2]),
        "a person's reference tag is the mean over its labelled joints only.":
            np.array([(((tags - everything[:, None]) ** 2 * labelled).sum(1) / labelled.sum(1)).mean(), push]),
        "the push uses exp(-(h_n - h_m)^2 / (2 sigma^2)), with the 2 sigma^2.":
            np.array([pull, push_with(np.exp(-((means[:, None] - means[None, :]) ** 2)))]),
    }


def _check_ae(fn, tags, visibility, sigma, what) -> None:
    result = call_student(fn, tags, visibility, sigma, name="associative_embedding_loss")
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(f"{what} should return a tuple (pull, push), got {type(result).__name__}")
    check_close(np.array(result, dtype=float), np.array(reference_associative_embedding_loss(tags, visibility, sigma)),
                what, mistakes=_ae_mistakes(tags, visibility, sigma))


def check_associative_embedding_loss(fn) -> None:
    """Visible check: two people worked by hand (answer pull 0.005, push exp(-1.9^2 / 2) = 0.164)."""
    tags = np.array([[0.0, 0.2, 0.1], [2.0, 2.0, 9.0]])
    visibility = np.array([[2, 2, 0], [1, 1, 0]])
    _check_ae(fn, tags, visibility, 1.0, "associative_embedding_loss(tags=[[0, 0.2, 0.1], [2, 2, 9]], "
              "visibility=[[2, 2, 0], [1, 1, 0]])")
    report_passed("associative_embedding_loss")


def hidden_associative_embedding_loss(fn) -> None:
    """Hidden check: random people, tags and sigmas against the reference."""
    fn = forbid_reference(fn, *REFERENCES["associative_embedding_loss"])
    rng = np.random.default_rng(909)
    for _ in range(6):
        n, k = int(rng.integers(2, 7)), int(rng.integers(3, 18))
        tags = rng.normal(0, 1, (n, k)) + 2.0 * np.arange(n)[:, None]
        visibility = rng.integers(0, 3, (n, k))
        visibility[:, 0] = 2  # every person has a labelled joint
        sigma = float(rng.choice([0.5, 1.0, 2.0]))
        _check_ae(fn, tags, visibility, sigma, f"associative_embedding_loss on {n} random people, sigma {sigma}")
    report_passed("associative_embedding_loss (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "crop_predictions_to_coco": (reference_crop_predictions_to_coco, multi_person.crop_predictions_to_coco,
        multi_person.to_coco_results, metrics.results_to_coco, geometry.crop_to_image,
        geometry.get_affine_transform, geometry.transform_points),
    "oks_nms": (reference_oks_nms, metrics.oks_nms, multi_person.pose_nms),
    "rescore_poses": (reference_rescore_poses, metrics.grmi_rescore, multi_person.pose_scores),
    "group_by_tags": (reference_group_by_tags, grouping.group_by_tags),
    "associative_embedding_loss": (reference_associative_embedding_loss, grouping.associative_embedding_loss),
}
