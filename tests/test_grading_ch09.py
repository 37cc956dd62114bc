"""The checks of chapter 09: the references pass, typical wrong answers fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import geometry, grouping, metrics
from course_lib.grading import ch09_multi_person as ch09
from course_lib.keypoints import COCO_SIGMAS
from checking import SANDBOX, assert_check_fails


# --------------------------------------------------------------------------- written from the formulas
def good_results(heatmap_points, keypoint_scores, pose_scores, centers, scales, heatmap_size, image_ids):
    h, w = heatmap_size
    out = []
    for p in range(len(pose_scores)):
        values = []
        for (u, v), c in zip(heatmap_points[p], keypoint_scores[p]):
            x = centers[p][0] + (u - w / 2) * scales[p][0] / w
            y = centers[p][1] + (v - h / 2) * scales[p][1] / h
            values += [float(x), float(y), float(c)]
        out.append({"image_id": int(image_ids[p]), "category_id": 1, "keypoints": values,
                    "score": float(pose_scores[p])})
    return out


def good_nms(keypoints, scores, areas, threshold, sigmas=COCO_SIGMAS):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], -i))  # equal scores: the later pose first
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        survivors = []
        for other in order:
            d2 = np.sum((keypoints[best] - keypoints[other]) ** 2, axis=1)
            s2 = (areas[best] + areas[other]) / 2
            oks = np.mean(np.exp(-d2 / (2 * s2 * (2 * np.asarray(sigmas)) ** 2)))
            if oks <= threshold:
                survivors.append(other)
        order = survivors
    return np.array(keep, dtype=int)


def good_rescore(box_scores, keypoint_scores, threshold=0.2):
    out = np.zeros(len(box_scores))
    for n, (box, row) in enumerate(zip(box_scores, keypoint_scores)):
        confident = row[row > threshold]
        out[n] = box * confident.mean() if confident.size else 0.0
    return out


def good_group(locations, scores, tags, detection_threshold=0.1, tag_threshold=1.0,
               joint_order=grouping.AE_JOINT_ORDER):
    people = []  # dicts: joint -> (x, y, score), "tags": list
    for k in joint_order:
        ranked = sorted([m for m in range(scores.shape[1]) if scores[k, m] > detection_threshold],
                        key=lambda m: (-scores[k, m], m))
        for m in ranked:
            free = [p for p in people if k not in p]
            distances = [abs(tags[k, m] - np.mean(p["tags"])) for p in free]
            if distances and min(distances) < tag_threshold:
                person = free[int(np.argmin(distances))]
            else:
                person = {"tags": []}
                people.append(person)
            person[k] = (locations[k, m, 0], locations[k, m, 1], scores[k, m])
            person["tags"].append(tags[k, m])
    out = np.zeros((len(people), scores.shape[0], 3))
    for p, person in enumerate(people):
        for k in range(scores.shape[0]):
            if k in person:
                out[p, k] = person[k]
    return out


GOOD = {
    "crop_predictions_to_coco": good_results,
    "oks_nms": good_nms,
    "rescore_poses": good_rescore,
    "group_by_tags": good_group,
}


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_independent_solutions_pass_visible_and_hidden_checks(exercise, capsys):
    getattr(ch09, f"check_{exercise}")(GOOD[exercise])
    getattr(ch09, f"hidden_{exercise}")(GOOD[exercise])
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_the_reference_implementations_pass(exercise):
    reference = getattr(ch09, f"reference_{exercise}")
    getattr(ch09, f"check_{exercise}")(reference)


@pytest.mark.parametrize(
    "exercise, calls_the_course",
    [
        ("crop_predictions_to_coco", lambda pts, ks, ps, c, s, size, ids: metrics.results_to_coco(
            geometry.crop_to_image(pts, c, s, np.zeros(len(ps)), tuple(size)), ks, ps, ids)),
        ("oks_nms", lambda k, s, a, t, sig=COCO_SIGMAS: metrics.oks_nms(k, s, a, t, sig)),
        ("rescore_poses", lambda b, k, t=0.2: metrics.grmi_rescore(b, k, t)),
        ("group_by_tags", lambda *args: grouping.group_by_tags(*args)),
    ],
)
def test_calling_the_course_implementation_fails_the_hidden_check(exercise, calls_the_course):
    assert_check_fails(getattr(ch09, f"hidden_{exercise}"), calls_the_course, "reference implementation")


# --------------------------------------------------------------------------- results
def test_results_without_centring_get_the_centre_hint():
    def wrong(pts, ks, ps, c, s, size, ids):
        h, w = size
        shifted = np.asarray(pts, float) + np.array([w, h]) / 2  # u -> u + w/2 undoes the centring
        return good_results(shifted, ks, ps, c, s, size, ids)

    assert_check_fails(ch09.check_crop_predictions_to_coco, wrong, "subtract w / 2")


def test_results_with_swapped_heatmap_size_get_the_size_hint():
    assert_check_fails(ch09.check_crop_predictions_to_coco,
                       lambda pts, ks, ps, c, s, size, ids: good_results(pts, ks, ps, c, s, size[::-1], ids), "height first")


def test_results_with_numpy_numbers_are_refused():
    def wrong(*args):
        out = good_results(*args)
        for entry in out:
            entry["image_id"] = np.int64(entry["image_id"])
        return out

    assert_check_fails(ch09.check_crop_predictions_to_coco, wrong, "JSON-serialisable")


def test_results_scored_by_keypoints_get_the_score_hint():
    def wrong(pts, ks, ps, c, s, size, ids):
        return good_results(pts, ks, np.asarray(ks).mean(axis=1), c, s, size, ids)

    assert_check_fails(ch09.check_crop_predictions_to_coco, wrong, "pose's score")


def test_results_with_swapped_xy_are_caught():
    assert_check_fails(ch09.check_crop_predictions_to_coco,
                       lambda pts, *rest: good_results(np.asarray(pts)[..., ::-1], *rest), "wrong values")


# --------------------------------------------------------------------------- OKS-NMS
def test_nms_in_index_order_gets_the_order_hint():
    assert_check_fails(ch09.check_oks_nms, lambda k, s, a, t, sig=COCO_SIGMAS: ch09._nms_loop(k, s, a, t, sig, sort=False),
                       "HIGHEST score")


def test_nms_with_sigma_for_k_gets_the_constant_hint():
    assert_check_fails(ch09.check_oks_nms, lambda k, s, a, t, sig=COCO_SIGMAS: ch09._nms_loop(k, s, a, t, sig, k_factor=1.0),
                       "k_i = 2 sigma_i")


def test_nms_with_the_best_pose_area_fails_the_hidden_check_with_its_hint():
    assert_check_fails(ch09.hidden_oks_nms, lambda k, s, a, t, sig=COCO_SIGMAS: ch09._nms_loop(k, s, a, t, sig, area="best"),
                       "mean of their two areas")


def test_nms_keeping_the_earlier_of_equal_scores_gets_the_tie_hint():
    def earlier_first(keypoints, scores, areas, threshold, sigmas=COCO_SIGMAS):
        return good_nms(keypoints, np.asarray(scores, float) - 1e-9 * np.arange(len(scores)), areas, threshold, sigmas)

    assert_check_fails(ch09.hidden_oks_nms, earlier_first, "later pose first")


def test_nms_returning_the_kept_poses_in_index_order_is_caught():
    assert_check_fails(ch09.check_oks_nms, lambda *args: np.sort(good_nms(*args)), "wrong order")


# --------------------------------------------------------------------------- rescoring
def test_rescoring_all_keypoints_gets_the_confidence_hint():
    assert_check_fails(ch09.check_rescore_poses, lambda b, k, t=0.2: b * k.mean(axis=1), "CONFIDENT")


def test_rescoring_without_the_box_gets_the_box_hint():
    assert_check_fails(ch09.check_rescore_poses, lambda b, k, t=0.2: good_rescore(np.ones_like(b), k, t), "box score")


def test_rescoring_with_nan_for_hopeless_poses_is_caught():
    def wrong(b, k, t=0.2):
        with np.errstate(invalid="ignore"):
            return b * np.nanmean(np.where(k > t, k, np.nan), axis=1)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_check_fails(ch09.check_rescore_poses, wrong, "NaN")


def test_rescoring_with_at_least_threshold_gets_the_strictness_hint():
    def wrong(b, k, t=0.2):
        return good_rescore(b, np.where(k >= t, k + 1e-12, 0.0), t)

    assert_check_fails(ch09.check_rescore_poses, wrong)


# --------------------------------------------------------------------------- grouping
def test_grouping_without_sorting_gets_the_order_hint():
    assert_check_fails(ch09.check_group_by_tags, lambda *a: ch09._group_loop(*a, sort=False), "decreasing score")


def test_grouping_that_gives_a_person_a_joint_twice_gets_its_hint():
    assert_check_fails(ch09.check_group_by_tags, lambda *a: ch09._group_loop(*a, skip_taken=False), "only once")


def test_grouping_by_the_first_tag_fails_the_hidden_check_with_its_hint():
    assert_check_fails(ch09.hidden_group_by_tags, lambda *a: ch09._group_loop(*a, first_tag=True), "MEAN tag")


def test_grouping_that_returns_a_list_is_refused():
    assert_check_fails(ch09.check_group_by_tags, lambda *a: good_group(*a).tolist(), "numpy.ndarray")


def test_the_worked_examples_agree_with_the_library():
    keypoints, scores, areas = ch09._nms_case()
    assert metrics.oks_nms(keypoints, scores, areas, 0.9).tolist() == [3, 0]
    locations, scores, tags, expected = ch09._grouping_case()
    assert np.array_equal(grouping.group_by_tags(locations, scores, tags, 0.1, 1.0, (0, 1, 2)), expected)


@pytest.mark.notebook
def test_the_solved_notebook_gets_full_marks_without_its_experiments(tmp_path):
    """The release with every answer filled in, graded as a submission (experiment cells removed)."""
    from pathlib import Path

    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = Path(__file__).resolve().parents[1] / "solutions" / "09_multi_person.py"
    path = tmp_path / "09_multi_person.ipynb"
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved", sandbox=SANDBOX, timeout_notebook=600)
    assert result.points == result.max_points and not result.flagged, [(g.exercise, g.message) for g in result.exercises]
