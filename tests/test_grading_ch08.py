"""The checks of chapter 08: the references pass, typical wrong answers fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import metrics
from course_lib.grading import ch08_evaluation as ch08
from course_lib.keypoints import COCO_SIGMAS
from checking import SANDBOX, assert_check_fails


# --------------------------------------------------------------------------- written from the formulas
def good_pck(pred, gt, visible, norm, threshold):
    distance = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)
    labelled = np.asarray(visible) > 0
    correct = (distance <= threshold * np.asarray(norm, float)[:, None]) & labelled
    return float(correct.sum() / labelled.sum())


def good_oks(pred, gt, visibility, area, sigmas=COCO_SIGMAS):
    d2 = np.sum((np.asarray(pred, float) - np.asarray(gt, float)) ** 2, axis=-1)
    k = 2 * np.asarray(sigmas, float)
    labelled = np.asarray(visibility) > 0
    return float(np.exp(-d2 / (2 * area * k**2))[labelled].mean())


def good_match(oks, threshold):
    oks = np.asarray(oks, float)
    taken = np.zeros(oks.shape[1], bool)
    matches = np.full(oks.shape[0], -1)
    for d in range(oks.shape[0]):
        best, best_value = -1, threshold
        for g in range(oks.shape[1]):
            if not taken[g] and oks[d, g] >= best_value:
                best, best_value = g, oks[d, g]
        if best >= 0:
            matches[d], taken[best] = best, True
    return matches


def good_ap(recall, precision, recall_levels=np.linspace(0.0, 1.0, 101)):
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    total = 0.0
    for r in recall_levels:
        reached = recall >= r
        total += precision[reached].max() if reached.any() else 0.0
    return float(total / len(recall_levels))


@pytest.mark.parametrize(
    "exercise, good",
    [("pck", good_pck), ("object_keypoint_similarity", good_oks), ("greedy_match", good_match),
     ("average_precision_101", good_ap)],
)
def test_independent_solutions_pass_visible_and_hidden_checks(exercise, good, capsys):
    getattr(ch08, f"check_{exercise}")(good)
    getattr(ch08, f"hidden_{exercise}")(good)
    assert "all checks passed" in capsys.readouterr().out


def test_the_reference_implementations_pass_the_visible_checks():
    ch08.check_pck(ch08.reference_pck)
    ch08.check_object_keypoint_similarity(ch08.reference_object_keypoint_similarity)
    ch08.check_greedy_match(ch08.reference_greedy_match)
    ch08.check_average_precision_101(ch08.reference_average_precision_101)


@pytest.mark.parametrize(
    "exercise, reference",
    [("pck", lambda *a: metrics.pck(*a).mean),
     ("object_keypoint_similarity", lambda *a: metrics.object_keypoint_similarity(*a)),
     ("greedy_match", lambda oks, t: metrics.greedy_match(oks, np.zeros(oks.shape[1], bool),
                                                          np.zeros(oks.shape[1], bool), t)),
     ("average_precision_101", lambda r, p: metrics.average_precision(r, p))],
)
def test_calling_the_course_implementation_fails_the_hidden_check(exercise, reference):
    assert_check_fails(getattr(ch08, f"hidden_{exercise}"), reference, "reference implementation")


def test_stubs_say_they_are_not_written():
    def stub(*args):
        raise NotImplementedError()

    assert_check_fails(ch08.check_pck, stub, "not written yet")


# --------------------------------------------------------------------------- pck
def test_pck_ignoring_visibility_gets_the_visibility_hint():
    def wrong(pred, gt, visible, norm, threshold):
        return good_pck(pred, gt, np.full_like(np.asarray(visible), 2), norm, threshold)

    assert_check_fails(ch08.check_pck, wrong, "v = 0")


def test_pck_with_strict_inequality_gets_the_radius_hint():
    def wrong(pred, gt, visible, norm, threshold):
        distance = np.linalg.norm(pred - gt, axis=-1)
        labelled = visible > 0
        return float(((distance < threshold * norm[:, None]) & labelled).sum() / labelled.sum())

    assert_check_fails(ch08.check_pck, wrong, "use <=")


def test_pck_averaged_per_keypoint_gets_the_pooling_hint():
    def wrong(pred, gt, visible, norm, threshold):
        distance = np.linalg.norm(pred - gt, axis=-1)
        labelled = visible > 0
        correct = (distance <= threshold * norm[:, None]) & labelled
        return float(np.nanmean(correct.sum(0) / labelled.sum(0)))

    assert_check_fails(ch08.check_pck, wrong, "pooled")


def test_pck_returning_an_array_is_refused():
    assert_check_fails(ch08.check_pck, lambda *a: np.array([good_pck(*a)]), "float")


# --------------------------------------------------------------------------- OKS
def test_oks_with_sigma_for_k_gets_the_constant_hint():
    assert_check_fails(ch08.check_object_keypoint_similarity,
                       lambda p, g, v, a, s=COCO_SIGMAS: good_oks(p, g, v, a, np.asarray(s) / 2), "k_i = 2 sigma_i")


def test_oks_with_area_for_s_gets_the_scale_hint():
    assert_check_fails(ch08.check_object_keypoint_similarity,
                       lambda p, g, v, a, s=COCO_SIGMAS: good_oks(p, g, v, a**2, s), "s = sqrt(area)")


def test_oks_without_the_factor_two_gets_its_hint():
    assert_check_fails(ch08.check_object_keypoint_similarity,
                       lambda p, g, v, a, s=COCO_SIGMAS: good_oks(p, g, v, a / 2, s), "factor 2")


def test_oks_averaging_every_keypoint_gets_the_visibility_hint():
    assert_check_fails(ch08.check_object_keypoint_similarity,
                       lambda p, g, v, a, s=COCO_SIGMAS: good_oks(p, g, np.full(len(v), 2), a, s), "v = 0")


def test_oks_with_hard_coded_coco_sigmas_fails_the_hidden_check():
    assert_check_fails(ch08.hidden_object_keypoint_similarity,
                       lambda p, g, v, a, s=COCO_SIGMAS: good_oks(p, g, v, a, COCO_SIGMAS[: len(v)]), "own sigmas")


def test_oks_with_swapped_coordinates_is_caught():
    def wrong(pred, gt, visibility, area, sigmas=COCO_SIGMAS):
        return good_oks(np.asarray(pred)[:, ::-1], gt, visibility, area, sigmas)

    assert_check_fails(ch08.check_object_keypoint_similarity, wrong, "wrong value")


# --------------------------------------------------------------------------- greedy matching
def test_matching_without_marking_taken_gets_its_hint():
    assert_check_fails(ch08.check_greedy_match, lambda oks, t: ch08._match_loop(oks, t, mark_taken=False), "taken")


def test_matching_with_strict_threshold_gets_its_hint():
    assert_check_fails(ch08.check_greedy_match, lambda oks, t: ch08._match_loop(oks, t, strict=True), "use >=")


def test_matching_the_first_candidate_gets_its_hint():
    assert_check_fails(ch08.check_greedy_match, lambda oks, t: ch08._match_loop(oks, t, first=True), "BEST free")


def test_matching_that_returns_floats_is_refused():
    assert_check_fails(ch08.check_greedy_match, lambda oks, t: good_match(oks, t).astype(float), "integers")


# --------------------------------------------------------------------------- AP
def test_ap_without_interpolation_gets_its_hint():
    def wrong(recall, precision, recall_levels=np.linspace(0, 1, 101)):
        index = np.searchsorted(recall, recall_levels, side="left")
        return float(np.where(index < len(recall), precision[np.minimum(index, len(recall) - 1)], 0).mean())

    assert_check_fails(ch08.check_average_precision_101, wrong, "interpolated first")


def test_ap_with_eleven_levels_gets_its_hint():
    assert_check_fails(ch08.check_average_precision_101, lambda r, p, levels=None: good_ap(r, p, np.linspace(0, 1, 11)), "101")


def test_ap_as_area_under_the_curve_gets_its_hint():
    def wrong(recall, precision, recall_levels=None):
        return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))

    assert_check_fails(ch08.check_average_precision_101, wrong, "area under")


def test_hand_worked_answers_agree_with_the_library():
    recall, precision = ch08._ranked_list(np.array([True, False, True, True, False, True]), 4)
    assert metrics.average_precision(recall, precision) == pytest.approx(80.1666666 / 101)
    oks = np.array([[0.90, 0.60, 0.00, 0.20], [0.80, 0.60, 0.10, 0.75], [0.95, 0.30, 0.50, 0.70]])
    assert ch08.reference_greedy_match(oks, 0.5).tolist() == [0, 3, 2]


@pytest.mark.notebook
def test_the_solved_notebook_gets_full_marks_without_its_experiments(tmp_path):
    """The release with every answer filled in, graded as a submission (experiment cells removed)."""
    from pathlib import Path

    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = Path(__file__).resolve().parents[1] / "solutions" / "08_evaluation.py"
    path = tmp_path / "08_evaluation.ipynb"
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved", sandbox=SANDBOX, timeout_notebook=600)
    assert result.points == result.max_points and not result.flagged, [(g.exercise, g.message) for g in result.exercises]
