"""The checks of chapter 01: the references pass, typical wrong answers fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import geometry, metrics
from course_lib.grading import ch01_deeppose as ch01
from checking import assert_check_fails


# --------------------------------------------------------------------------- written from the formulas
def good_normalize_to_box(keypoints, box):
    cx, cy, w, h = np.asarray(box, dtype=float)
    keypoints = np.asarray(keypoints, dtype=float)
    return np.stack([(keypoints[:, 0] - cx) / w, (keypoints[:, 1] - cy) / h], axis=1)


def good_denormalize_from_box(normalized, box):
    cx, cy, w, h = np.asarray(box, dtype=float)
    normalized = np.asarray(normalized, dtype=float)
    return np.stack([cx + w * normalized[:, 0], cy + h * normalized[:, 1]], axis=1)


def good_percent_detected_joints(pred, gt, visibility, threshold):
    pred, gt = np.asarray(pred, float), np.asarray(gt, float)
    detected, labelled = 0, 0
    for n in range(len(gt)):
        diameter = np.hypot(*(gt[n, 5] - gt[n, 12]))
        for k in range(gt.shape[1]):
            if visibility[n][k] > 0:
                labelled += 1
                detected += np.hypot(*(pred[n, k] - gt[n, k])) <= threshold * diameter
    return float(detected / labelled)


def good_refinement_boxes(pose, delta):
    pose = np.asarray(pose, dtype=float)
    side = delta * np.hypot(*(pose[5] - pose[12]))
    return np.array([[x, y, side, side] for x, y in pose])


def good_cascade_poses(pose, stage_outputs, delta):
    poses = [np.asarray(pose, dtype=float)]
    for outputs in stage_outputs:
        side = delta * np.hypot(*(poses[-1][5] - poses[-1][12]))
        poses.append(poses[-1] + side * np.asarray(outputs, dtype=float))
    return np.array(poses)


GOOD = {
    "cascade_poses": good_cascade_poses,
    "normalize_to_box": good_normalize_to_box,
    "denormalize_from_box": good_denormalize_from_box,
    "percent_detected_joints": good_percent_detected_joints,
    "refinement_boxes": good_refinement_boxes,
}


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_independent_solutions_pass_visible_and_hidden_checks(exercise, capsys):
    getattr(ch01, f"check_{exercise}")(GOOD[exercise])
    getattr(ch01, f"hidden_{exercise}")(GOOD[exercise])
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_the_reference_implementations_pass_the_visible_checks(exercise):
    getattr(ch01, f"check_{exercise}")(getattr(ch01, f"reference_{exercise}"))


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_stubs_are_told_to_write_the_function(exercise):
    def stub(*args):
        raise NotImplementedError()

    assert_check_fails(getattr(ch01, f"check_{exercise}"), stub, "not written yet")


def test_the_worked_example_is_reproduced_by_the_course_implementation():
    # The worked example's table, rounded to two decimals as chapter 01 prints it.
    table = [(0.0, 0.73), (0.0, 0.60), (-0.1, 0.60), (-0.2, 0.67), (-0.35, -0.27)]
    got = geometry.normalize_to_box(ch01.EXAMPLE_JOINTS, ch01.EXAMPLE_BOX, "cxcywh")
    np.testing.assert_allclose(np.round(got, 2), table)
    back = geometry.denormalize_from_box(ch01.EXAMPLE_PREDICTIONS, ch01.EXAMPLE_BOX, "cxcywh")
    np.testing.assert_allclose(back, [[60.0, -60.0], [160.0, 210.0]])
    slip = geometry.denormalize_from_box(ch01.EXAMPLE_PREDICTIONS, [120.0, 300.0, 200.0, 300.0], "cxcywh")
    np.testing.assert_allclose(slip, [[60.0, 90.0], [160.0, 360.0]])  # the slipped step's numbers
    for points in (back, slip):  # the distance does not depend on the centre: 287.92 both ways
        assert np.hypot(*(points[1] - points[0])) == pytest.approx(287.92, abs=0.005)


@pytest.mark.parametrize(
    "exercise, library_function",
    [
        ("normalize_to_box", lambda k, b: geometry.normalize_to_box(k, b, "cxcywh")),
        ("denormalize_from_box", lambda n, b: geometry.denormalize_from_box(n, b, "cxcywh")),
        ("percent_detected_joints",
         lambda p, g, v, t: metrics.pdj(p, g, v, metrics.torso_diameter(np.asarray(g, float)), t).mean),
        ("refinement_boxes",
         lambda pose, d: geometry.cascade_crop_box(pose, geometry.torso_diameter(pose), d, "cxcywh")),
    ],
)
def test_calling_the_course_implementation_fails_the_hidden_check(exercise, library_function):
    assert_check_fails(getattr(ch01, f"hidden_{exercise}"), library_function, "reference implementation")


def test_pdj_with_the_course_pck_is_refused():
    def via_pck(pred, gt, visibility, threshold):
        gt = np.asarray(gt, float)
        diameter = np.linalg.norm(gt[:, 5] - gt[:, 12], axis=-1)
        return metrics.pck(pred, gt, visibility, diameter, threshold).mean

    assert_check_fails(ch01.hidden_percent_detected_joints, via_pck, "metrics.pck.pck")


# --------------------------------------------------------------------------- typical mistakes
def test_normalize_mistakes():
    def corner_box(keypoints, box):
        x, y, w, h = box
        return good_normalize_to_box(keypoints, [x + w / 2, y + h / 2, w, h])

    assert_check_fails(ch01.check_normalize_to_box, corner_box, "CENTRE first")
    assert_check_fails(ch01.check_normalize_to_box, lambda k, b: good_normalize_to_box(k, np.asarray(b)[[0, 1, 3, 2]]),
                       "exchanged")
    assert_check_fails(ch01.check_normalize_to_box, lambda k, b: np.asarray(k, float) / np.asarray(b, float)[2:],
                       "centre was not subtracted")
    assert_check_fails(ch01.check_normalize_to_box, lambda k, b: np.asarray(k, float) - np.asarray(b, float)[:2],
                       "not divided")
    assert_check_fails(ch01.check_normalize_to_box,
                       lambda k, b: (np.asarray(k, float) - np.asarray(b, float)[:2]) / float(b[2]), "divided by the width")
    assert_check_fails(ch01.check_normalize_to_box, lambda k, b: good_normalize_to_box(k, b)[:, ::-1], "swapped")
    assert_check_fails(ch01.check_normalize_to_box, lambda k, b: good_normalize_to_box(k, b).tolist()[0], "shape")


def test_normalize_integer_arithmetic_is_caught():
    def floor_division(keypoints, box):
        keypoints, box = np.asarray(keypoints), np.asarray(box)
        return (keypoints - box[:2]) // box[2:]

    assert_check_fails(ch01.check_normalize_to_box, floor_division)


def test_denormalize_mistakes():
    def slip(normalized, box):
        cx, cy, w, h = box
        return good_denormalize_from_box(normalized, [cx, 2 * cy, w, h])

    assert_check_fails(ch01.check_denormalize_from_box, slip, "height (300) as the centre's y")
    assert_check_fails(ch01.check_denormalize_from_box, lambda n, b: np.asarray(n) * np.asarray(b)[2:], "not added back")
    assert_check_fails(ch01.check_denormalize_from_box, lambda n, b: np.asarray(b)[:2] + np.asarray(n) / np.asarray(b)[2:],
                       "multiplies")
    assert_check_fails(ch01.check_denormalize_from_box, lambda n, b: good_denormalize_from_box(n, np.asarray(b)[[0, 1, 3, 2]]),
                       "exchanged")

    def in_place(normalized, box):
        normalized *= np.asarray(box)[2:]
        normalized += np.asarray(box)[:2]
        return normalized

    assert_check_fails(ch01.check_denormalize_from_box, in_place, "changed its input")


def test_pdj_mistakes():
    def all_joints(pred, gt, visibility, threshold):
        return good_percent_detected_joints(pred, gt, np.full(np.shape(visibility), 2), threshold)

    assert_check_fails(ch01.check_percent_detected_joints, all_joints, "v = 0")

    def strict(pred, gt, visibility, threshold):
        pred, gt = np.asarray(pred, float), np.asarray(gt, float)
        diameter = np.linalg.norm(gt[:, 5] - gt[:, 12], axis=-1)
        labelled = np.asarray(visibility) > 0
        hit = np.linalg.norm(pred - gt, axis=-1) < threshold * diameter[:, None]
        return float((hit & labelled).sum() / labelled.sum())

    assert_check_fails(ch01.check_percent_detected_joints, strict, "<=")

    def predicted_torso(pred, gt, visibility, threshold):
        return _with_diameter_from(pred, pred, gt, visibility, threshold)

    assert_check_fails(ch01.hidden_percent_detected_joints, predicted_torso, "ground truth, not on the prediction")

    def same_side(pred, gt, visibility, threshold):
        return _with_diameter_from(gt, pred, gt, visibility, threshold, pair=(5, 11))

    assert_check_fails(ch01.check_percent_detected_joints, same_side, "RIGHT hip")

    def visible_only(pred, gt, visibility, threshold):
        return good_percent_detected_joints(pred, gt, np.where(np.asarray(visibility) == 2, 2, 0), threshold)

    assert_check_fails(ch01.check_percent_detected_joints, visible_only, "v = 1")

    def pixels(pred, gt, visibility, threshold):
        labelled = np.asarray(visibility) > 0
        hit = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1) <= threshold
        return float((hit & labelled).sum() / labelled.sum())

    assert_check_fails(ch01.check_percent_detected_joints, pixels, "threshold x diameter")

    def per_person(pred, gt, visibility, threshold):
        return float(np.mean([good_percent_detected_joints(p[None], g[None], v[None], threshold)
                              for p, g, v in zip(pred, gt, np.asarray(visibility))]))

    assert_check_fails(ch01.hidden_percent_detected_joints, per_person, "per person")

    def array_result(pred, gt, visibility, threshold):
        return np.array([good_percent_detected_joints(pred, gt, visibility, threshold)])

    assert_check_fails(ch01.check_percent_detected_joints, array_result, "float")


def _with_diameter_from(source, pred, gt, visibility, threshold, pair=(5, 12)):
    source, pred, gt = np.asarray(source, float), np.asarray(pred, float), np.asarray(gt, float)
    diameter = np.linalg.norm(source[:, pair[0]] - source[:, pair[1]], axis=-1)
    labelled = np.asarray(visibility) > 0
    hit = np.linalg.norm(pred - gt, axis=-1) <= threshold * diameter[:, None]
    return float((hit & labelled).sum() / labelled.sum())


def test_refinement_boxes_mistakes():
    def corners(pose, delta):
        boxes = good_refinement_boxes(pose, delta)
        boxes[:, :2] -= boxes[:, 2:] / 2
        return boxes

    assert_check_fails(ch01.check_refinement_boxes, corners, "top-left corner")

    def half(pose, delta):
        boxes = good_refinement_boxes(pose, delta)
        boxes[:, 2:] /= 2
        return boxes

    assert_check_fails(ch01.check_refinement_boxes, half, "full width")

    def other_diagonal(pose, delta):
        pose = np.asarray(pose, float)
        side = delta * np.hypot(*(pose[6] - pose[11]))
        return np.array([[x, y, side, side] for x, y in pose])

    assert_check_fails(ch01.check_refinement_boxes, other_diagonal, "LEFT shoulder (5) and the RIGHT hip (12)")

    def one_box(pose, delta):
        return good_refinement_boxes(pose, delta)[0]

    assert_check_fails(ch01.check_refinement_boxes, one_box, "shape")


def test_a_cascade_that_keeps_stage_1s_boxes_is_told_so():
    def frozen(pose, stage_outputs, delta):
        pose = np.asarray(pose, dtype=float)
        side = delta * np.hypot(*(pose[5] - pose[12]))
        return np.array([pose] + [pose + side * np.asarray(o) for o in stage_outputs])

    assert_check_fails(ch01.check_cascade_poses, frozen, "stage 1's boxes reused")
