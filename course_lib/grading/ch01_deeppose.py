"""Checks for chapter 01 (DeepPose): ``normalize_to_box``, ``denormalize_from_box``,
``percent_detected_joints``, ``refinement_boxes``, and the stretch exercise ``cascade_poses``.

For each exercise, ``check_<exercise>(fn)`` runs small hand-worked cases (the visible check;
the chapter's worked example where there is one) and ``hidden_<exercise>(fn)`` compares with
the course's reference implementation on random cases, with the reference itself off limits.
The references live in :mod:`course_lib.geometry` (box normalisation, cascade boxes) and
:mod:`course_lib.metrics` (PDJ).

Boxes are in the centre form of the paper, ``b = (b_cx, b_cy, b_w, b_h)``.
"""

from __future__ import annotations

import numpy as np

from course_lib import geometry, metrics
from course_lib.grading.checks import (
    HINT_IGNORED_VISIBILITY,
    all_visible,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    check_type,
    forbid_reference,
    report_passed,
)
from course_lib.keypoints import COCO_TORSO_DIAMETER_PAIR
from course_lib.metrics.pck import _within_radius

# The chapter's worked example: box centre (120, 150), w = 200, h = 300, five joints of the
# 14-point skeleton (head, left shoulder, left elbow, left wrist, right ankle).
EXAMPLE_BOX = np.array([120.0, 150.0, 200.0, 300.0])
EXAMPLE_JOINTS = np.array([[120.0, 370.0], [120.0, 330.0], [100.0, 330.0], [80.0, 350.0], [50.0, 70.0]])
EXAMPLE_NORMALIZED = np.array([[0.0, 220 / 300], [0.0, 0.6], [-0.1, 0.6], [-0.2, 200 / 300], [-0.35, -80 / 300]])
# Its inverse example: predictions (-0.3, -0.7) for the right hip and (0.2, 0.2) for the left shoulder.
EXAMPLE_PREDICTIONS = np.array([[-0.3, -0.7], [0.2, 0.2]])
EXAMPLE_INVERSE = np.array([[60.0, -60.0], [160.0, 210.0]])  # with the forward example's centre (120, 150)
EXAMPLE_INVERSE_SLIP = np.array([[60.0, 90.0], [160.0, 360.0]])  # the box's height 300 taken for the centre's y
LEFT_SHOULDER, RIGHT_HIP = COCO_TORSO_DIAMETER_PAIR


def _random_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """Centre-form boxes ``(count, 4)`` with sizes between 20 and 400 pixels."""
    centres = rng.uniform(-50, 600, size=(count, 2))
    sizes = rng.uniform(20, 400, size=(count, 2))
    return np.concatenate([centres, sizes], axis=1)


# =========================================================================== exercise 1: normalize_to_box
def reference_normalize_to_box(keypoints, box) -> np.ndarray:
    """N(y; b) = diag(1/w, 1/h) (y - b_c), box in centre form."""
    return geometry.normalize_to_box(np.asarray(keypoints, dtype=float), np.asarray(box, dtype=float), "cxcywh")


def _normalize_mistakes(keypoints, box) -> dict:
    keypoints, box = np.asarray(keypoints, float), np.asarray(box, float)
    return {
        "the box is (c_x, c_y, w, h) with its CENTRE first, not its top-left corner: subtract b_c as it is.":
            geometry.normalize_to_box(keypoints, box, "xywh"),
        "width and height look exchanged: x is divided by the width w, y by the height h.":
            reference_normalize_to_box(keypoints, box[[0, 1, 3, 2]]),
        "the centre was not subtracted: N(y; b) = diag(1/w, 1/h) (y - b_c).": keypoints / box[2:],
        "the difference was not divided by the box size: N(y; b) = diag(1/w, 1/h) (y - b_c).": keypoints - box[:2],
        "x and y were both divided by the width: y goes with the height h.": (keypoints - box[:2]) / box[2],
    }


def _check_normalize_once(fn, keypoints, box, what: str) -> None:
    result = call_student(fn, keypoints, box, name="normalize_to_box")
    check_shape(result, np.shape(keypoints), what)
    check_dtype(result, "float", what)
    check_close(result, reference_normalize_to_box(keypoints, box), what, mistakes=_normalize_mistakes(keypoints, box))


def check_normalize_to_box(fn) -> None:
    """Visible check: the worked example's table (box centre (120, 150), w = 200, h = 300)."""
    what = "normalize_to_box(the worked example's five joints, box=(120, 150, 200, 300))"
    result = call_student(fn, EXAMPLE_JOINTS, EXAMPLE_BOX, name="normalize_to_box")
    check_shape(result, (5, 2), what)
    check_dtype(result, "float", what)
    check_close(result, EXAMPLE_NORMALIZED, what, mistakes=_normalize_mistakes(EXAMPLE_JOINTS, EXAMPLE_BOX))
    _check_normalize_once(fn, EXAMPLE_BOX[None, :2], EXAMPLE_BOX, "normalize_to_box(the box centre itself)")
    report_passed("normalize_to_box")


def hidden_normalize_to_box(fn) -> None:
    """Hidden check: random poses and boxes, integer inputs, a box of unequal sides."""
    fn = forbid_reference(fn, *REFERENCES["normalize_to_box"])
    rng = np.random.default_rng(11)
    for box in _random_boxes(rng, 5):
        keypoints = box[:2] + rng.uniform(-0.7, 0.7, size=(17, 2)) * box[2:]
        _check_normalize_once(fn, keypoints, box, f"normalize_to_box on a random pose, box={np.round(box, 1).tolist()}")
    keypoints = rng.integers(0, 300, size=(14, 2))
    _check_normalize_once(fn, keypoints, np.array([150, 100, 40, 80]), "normalize_to_box with integer inputs")
    report_passed("normalize_to_box (hidden)")


# =========================================================================== exercise 2: denormalize_from_box
def reference_denormalize_from_box(normalized, box) -> np.ndarray:
    """y = b_c + diag(w, h) N, box in centre form."""
    return geometry.denormalize_from_box(np.asarray(normalized, dtype=float), np.asarray(box, dtype=float), "cxcywh")


def _denormalize_mistakes(normalized, box) -> dict:
    normalized, box = np.asarray(normalized, float), np.asarray(box, float)
    return {
        "the box is (c_x, c_y, w, h) with its CENTRE first: y = b_c + diag(w, h) N.":
            geometry.denormalize_from_box(normalized, box, "xywh"),
        "width and height look exchanged: x is multiplied by the width w, y by the height h.":
            reference_denormalize_from_box(normalized, box[[0, 1, 3, 2]]),
        "the centre was not added back: y = b_c + diag(w, h) N.": normalized * box[2:],
        "this divides by the size again; the inverse multiplies: y = b_c + diag(w, h) N.":
            box[:2] + normalized / box[2:],
    }


def _check_denormalize_once(fn, normalized, box, what: str) -> None:
    result = call_student(fn, normalized, box, name="denormalize_from_box")
    check_shape(result, np.shape(normalized), what)
    check_dtype(result, "float", what)
    check_close(result, reference_denormalize_from_box(normalized, box), what, atol=1e-6, rtol=1e-9,
                mistakes=_denormalize_mistakes(normalized, box))


def check_denormalize_from_box(fn) -> None:
    """Visible check: the worked inverse example, with the forward example's box centre (120, 150)."""
    what = "denormalize_from_box([[-0.3, -0.7], [0.2, 0.2]], box=(120, 150, 200, 300))"
    result = call_student(fn, EXAMPLE_PREDICTIONS, EXAMPLE_BOX, name="denormalize_from_box")
    check_shape(result, (2, 2), what)
    check_dtype(result, "float", what)
    mistakes = _denormalize_mistakes(EXAMPLE_PREDICTIONS, EXAMPLE_BOX)
    mistakes["these are the numbers you get with the box's height (300) as the centre's y; the box of the forward example, "
             "used here, has its centre at y = 150."] = EXAMPLE_INVERSE_SLIP
    check_close(result, EXAMPLE_INVERSE, what, mistakes=mistakes)
    back = call_student(fn, EXAMPLE_NORMALIZED, EXAMPLE_BOX, name="denormalize_from_box")
    check_close(back, EXAMPLE_JOINTS, "denormalize_from_box(the worked example's table): the joints back", atol=1e-6)
    report_passed("denormalize_from_box")


def hidden_denormalize_from_box(fn) -> None:
    """Hidden check: random boxes; the round trip through the reference normalisation."""
    fn = forbid_reference(fn, *REFERENCES["denormalize_from_box"])
    rng = np.random.default_rng(12)
    for box in _random_boxes(rng, 5):
        keypoints = box[:2] + rng.uniform(-0.7, 0.7, size=(17, 2)) * box[2:]
        normalized = reference_normalize_to_box(keypoints, box)
        _check_denormalize_once(fn, normalized, box, f"denormalize_from_box, box={np.round(box, 1).tolist()}")
        check_close(call_student(fn, normalized, box, name="denormalize_from_box"), keypoints,
                    "denormalize_from_box(normalize_to_box(y, b), b) (must give y back)", atol=1e-6, rtol=1e-9)
    report_passed("denormalize_from_box (hidden)")


# =========================================================================== exercise 3: percent_detected_joints
def reference_percent_detected_joints(pred, gt, visibility, threshold) -> float:
    """PDJ with DeepPose's torso diameter (left shoulder to right hip of the ground truth)."""
    gt = np.asarray(gt, dtype=float)
    return metrics.pdj(pred, gt, visibility, metrics.torso_diameter(gt), threshold).mean


def _pdj_mistakes(pred, gt, visibility, threshold) -> dict:
    pred, gt, visibility = np.asarray(pred, float), np.asarray(gt, float), np.asarray(visibility)
    distance = np.linalg.norm(pred - gt, axis=-1)  # (N, K)
    labelled = visibility > 0
    diameter = np.linalg.norm(gt[:, LEFT_SHOULDER] - gt[:, RIGHT_HIP], axis=-1)  # (N,)
    radius = threshold * diameter[:, None]
    mistakes = {
        HINT_IGNORED_VISIBILITY: reference_percent_detected_joints(pred, gt, all_visible(visibility), threshold),
        "a joint exactly on the circle counts as detected: use <=, not <.":
            ((distance < radius) & labelled).sum() / labelled.sum(),
        "the torso diameter is measured on the ground truth, not on the prediction.":
            ((distance <= threshold * np.linalg.norm(pred[:, LEFT_SHOULDER] - pred[:, RIGHT_HIP], axis=-1)[:, None])
             & labelled).sum() / labelled.sum(),
        "the torso diameter joins the LEFT shoulder (5) and the RIGHT hip (12): opposite corners of the torso.":
            ((distance <= threshold * np.linalg.norm(gt[:, LEFT_SHOULDER] - gt[:, 11], axis=-1)[:, None])
             & labelled).sum() / labelled.sum(),
        "the radius is threshold x diameter, not the threshold alone (in pixels).":
            ((distance <= threshold) & labelled).sum() / labelled.sum(),
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        per_person = np.nanmean(((distance <= radius) & labelled).sum(axis=1) / labelled.sum(axis=1))
    mistakes["this averages per person; PDJ pools: detected labelled joints / labelled joints of all people."] = per_person
    if (visibility == 2).any() and (visibility == 1).any():
        visible = visibility == 2
        mistakes["labelled means v > 0: hidden joints (v = 1) count too, not only v = 2."] = (
            ((distance <= radius) & visible).sum() / visible.sum())
    return mistakes


def _check_pdj_once(fn, pred, gt, visibility, threshold, what: str) -> None:
    result = call_student(fn, pred, gt, visibility, threshold, name="percent_detected_joints")
    check_type(result, (float, np.floating), what + " (a Python float: wrap the result in float(...))")
    check_close(result, reference_percent_detected_joints(pred, gt, visibility, threshold), what,
                mistakes=_pdj_mistakes(pred, gt, visibility, threshold))


def _example_person() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A COCO person whose torso diameter is 500 px (a body length of 500 px), and a prediction of it.

    Left shoulder (100, 100), right hip (400, 500): a 300-400-500 triangle.  Errors: exactly
    25 px (= 0.05 x 500, a 15-20-25 triangle) for four joints, 30 px for two, 100 px for one,
    0 for nine (one of them hidden, v = 1); the last joint is not labelled (v = 0) and 1000 px
    off.  13 of the 16 labelled joints are detected.
    """
    gt = np.stack([np.linspace(100, 400, 17), np.linspace(100, 500, 17)], axis=1)
    gt[LEFT_SHOULDER], gt[RIGHT_HIP] = (100.0, 100.0), (400.0, 500.0)
    errors = np.zeros((17, 2))
    errors[[1, 2, 3, 4]] = (15.0, 20.0)  # 25 px: on the circle, detected
    errors[[7, 8]] = (0.0, 30.0)  # 30 px: missed
    errors[9] = (100.0, 0.0)  # missed
    errors[16] = (1000.0, 0.0)  # not labelled: does not count, however far
    visibility = np.full(17, 2)
    visibility[10], visibility[16] = 1, 0
    return gt + errors, gt, visibility


def check_percent_detected_joints(fn) -> None:
    """Visible check: the chapter's example (body length 500 px, PDJ@0.05, a radius of 25 px)."""
    pred, gt, visibility = _example_person()
    what = "percent_detected_joints on one person with a torso diameter of 500 px, threshold 0.05"
    result = call_student(fn, pred[None], gt[None], visibility[None], 0.05, name="percent_detected_joints")
    check_type(result, (float, np.floating), what + " (a Python float: wrap the result in float(...))")
    check_close(result, 13 / 16, what, mistakes=_pdj_mistakes(pred[None], gt[None], visibility[None], 0.05))
    result = call_student(fn, gt[None], gt[None], visibility[None], 0.05, name="percent_detected_joints")
    check_close(result, 1.0, "percent_detected_joints of a perfect prediction")
    report_passed("percent_detected_joints")


def hidden_percent_detected_joints(fn) -> None:
    """Hidden check: random sets of people and thresholds against the reference."""
    fn = forbid_reference(fn, *REFERENCES["percent_detected_joints"])
    rng = np.random.default_rng(13)
    for trial in range(8):
        n = int(rng.integers(1, 7))
        gt = rng.uniform(0, 300, size=(n, 17, 2))
        diameter = np.linalg.norm(gt[:, LEFT_SHOULDER] - gt[:, RIGHT_HIP], axis=-1)
        pred = gt + rng.normal(0, 1, size=gt.shape) * diameter[:, None, None] * rng.uniform(0.02, 0.3)
        if trial % 3 == 0:  # integer pixels: ties with the radius happen
            gt, pred = np.round(gt), np.round(pred)
        visibility = rng.choice([0, 1, 2], size=(n, 17), p=[0.2, 0.3, 0.5])
        visibility[:, [LEFT_SHOULDER, RIGHT_HIP]] = 2
        threshold = float(rng.choice([0.05, 0.1, 0.2, 0.5]))
        _check_pdj_once(fn, pred, gt, visibility, threshold,
                        f"percent_detected_joints on {n} random people, threshold {threshold}")
    report_passed("percent_detected_joints (hidden)")


# =========================================================================== exercise 4: refinement_boxes
def reference_refinement_boxes(pose, delta) -> np.ndarray:
    """b_i = (y_i, delta diam(y), delta diam(y)) for every joint i: (K, 2) -> (K, 4) centre form."""
    pose = np.asarray(pose, dtype=float)
    return geometry.cascade_crop_box(pose, geometry.torso_diameter(pose), delta, box_format="cxcywh")


def _boxes_mistakes(pose, delta) -> dict:
    pose = np.asarray(pose, dtype=float)
    boxes = reference_refinement_boxes(pose, delta)
    other_pair = np.linalg.norm(pose[6] - pose[11])  # right shoulder to left hip
    corner = boxes.copy()
    corner[:, :2] -= boxes[:, 2:] / 2
    mistakes = {
        "these boxes have their top-left corner first; the cascade's boxes are centred on the joints, "
        "(x_i, y_i, side, side).": corner,
        "the side is delta x diam(y) (the box's full width), not half of it.": np.concatenate(
            [boxes[:, :2], boxes[:, 2:] / 2], axis=1),
    }
    if not np.isclose(other_pair, boxes[0, 2] / delta):
        mistakes["diam(y) joins the LEFT shoulder (5) and the RIGHT hip (12)."] = np.concatenate(
            [pose, np.full((len(pose), 2), delta * other_pair)], axis=1)
    return mistakes


def _check_boxes_once(fn, pose, delta, what: str) -> None:
    result = call_student(fn, pose, delta, name="refinement_boxes")
    check_shape(result, (len(pose), 4), what)
    check_dtype(result, "float", what)
    check_close(result, reference_refinement_boxes(pose, delta), what, mistakes=_boxes_mistakes(pose, delta))


def _example_pose() -> np.ndarray:
    """A COCO pose holding the worked example's two inverse-transformed joints (consistent centre)."""
    pose = np.stack([np.linspace(60, 160, 17), np.linspace(-60, 210, 17)], axis=1)
    pose[LEFT_SHOULDER] = EXAMPLE_INVERSE[1]  # (160, 210)
    pose[RIGHT_HIP] = EXAMPLE_INVERSE[0]  # (60, -60)
    return pose


def check_refinement_boxes(fn) -> None:
    """Visible check: the worked example's distance of 287.92 px between left shoulder and right hip."""
    pose = _example_pose()
    diameter = float(np.hypot(100.0, 270.0))  # 287.92
    what = "refinement_boxes(pose with left shoulder (160, 210) and right hip (60, -60), delta=0.5)"
    result = call_student(fn, pose, 0.5, name="refinement_boxes")
    check_shape(result, (17, 4), what)
    check_dtype(result, "float", what)
    expected = np.concatenate([pose, np.full((17, 2), 0.5 * diameter)], axis=1)
    check_close(result, expected, what, mistakes=_boxes_mistakes(pose, 0.5))
    report_passed("refinement_boxes")


def hidden_refinement_boxes(fn) -> None:
    """Hidden check: random poses and deltas (the paper's 1.0 and 2.0 among them)."""
    fn = forbid_reference(fn, *REFERENCES["refinement_boxes"])
    rng = np.random.default_rng(14)
    for delta in (1.0, 2.0, 0.3, 1.7):
        pose = rng.uniform(0, 500, size=(17, 2))
        _check_boxes_once(fn, pose, delta, f"refinement_boxes on a random pose, delta={delta}")
    pose = rng.integers(0, 128, size=(17, 2))
    _check_boxes_once(fn, pose, 2.0, "refinement_boxes with integer keypoints")
    report_passed("refinement_boxes (hidden)")


# -- stretch exercise: cascade_poses (a third stage) -------------------------------------------------------

def reference_cascade_poses(pose, stage_outputs, delta) -> np.ndarray:
    """The pose after each refinement stage: stage s reads boxes around stage s-1's pose.

    ``pose`` (K, 2) is stage 1's prediction; ``stage_outputs`` (S-1, K, 2) what each later stage
    regressed, in its boxes' units.  Returns (S, K, 2): stage 1's pose, then each refined one.
    """
    poses = [np.asarray(pose, dtype=float)]
    for outputs in np.asarray(stage_outputs, dtype=float):
        boxes = reference_refinement_boxes(poses[-1], delta)  # (K, 4): centred on the current pose
        poses.append(boxes[:, :2] + boxes[:, 2:] * outputs)
    return np.stack(poses)


def _cascade_mistakes(pose, stage_outputs, delta) -> dict:
    stage_outputs = np.asarray(stage_outputs, dtype=float)
    first_boxes = reference_refinement_boxes(pose, delta)
    frozen = [np.asarray(pose, dtype=float)]
    for outputs in stage_outputs:  # every stage reads the boxes of stage 1's pose
        frozen.append(first_boxes[:, :2] + first_boxes[:, 2:] * outputs)
    return {"every stage must cut its boxes around the pose of the stage before it (centre and size): "
            "these are stage 1's boxes reused.": np.stack(frozen)}


def _check_cascade_once(fn, pose, stage_outputs, delta, what: str) -> None:
    result = call_student(fn, pose, stage_outputs, delta, name="cascade_poses")
    expected = reference_cascade_poses(pose, stage_outputs, delta)
    check_shape(result, expected.shape, what)
    check_close(result, expected, what, mistakes=_cascade_mistakes(pose, stage_outputs, delta))


def check_cascade_poses(fn) -> None:
    """Visible check: the worked example's pose (diam 287.92 px), two stages with delta = 0.5."""
    pose = _example_pose()
    outputs = np.zeros((2, 17, 2))
    outputs[0, RIGHT_HIP] = [0.0, 0.1]  # stage 2 moves the right hip down by 0.1 box sides
    outputs[1, LEFT_SHOULDER] = [0.1, 0.0]  # stage 3 moves the left shoulder right, in stage 2's boxes
    what = "cascade_poses(the worked example's pose, two stages, delta=0.5)"
    _check_cascade_once(fn, pose, outputs, 0.5, what)
    report_passed("cascade_poses")


def hidden_cascade_poses(fn) -> None:
    """Hidden check: random poses, one to three refinement stages."""
    fn = forbid_reference(fn, *REFERENCES["cascade_poses"])
    rng = np.random.default_rng(15)
    for stages, delta in ((1, 1.0), (2, 2.0), (3, 1.0)):
        pose = rng.uniform(0, 300, size=(17, 2))
        outputs = rng.normal(0, 0.1, size=(stages, 17, 2))
        _check_cascade_once(fn, pose, outputs, delta, f"cascade_poses on a random pose, {stages} stages")
    report_passed("cascade_poses (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "normalize_to_box": (reference_normalize_to_box, geometry.normalize_to_box, geometry.denormalize_from_box),
    "denormalize_from_box": (reference_denormalize_from_box, geometry.denormalize_from_box,
        geometry.normalize_to_box),
    "percent_detected_joints": (reference_percent_detected_joints, metrics.pdj, metrics.pck, metrics.pckh,
        _within_radius, metrics.torso_diameter, geometry.torso_diameter),
    "refinement_boxes": (reference_refinement_boxes, geometry.cascade_crop_box, geometry.torso_diameter,
        geometry.cascade_patches, metrics.torso_diameter),
    "cascade_poses": (reference_cascade_poses, reference_refinement_boxes, geometry.cascade_crop_box,
        geometry.denormalize_from_box),
}
