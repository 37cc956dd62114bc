"""Checks for chapter 10 (from synthetic people to real ones): ``box_to_center_scale``, ``to_model_input``,
``invert_affine``, and the stretch exercise ``one_euro_filter``.

For each exercise, ``check_<exercise>(fn)`` runs small hand-worked cases (the visible check)
and ``hidden_<exercise>(fn)`` compares with the course's reference implementation on random
cases, with the reference itself off limits.
"""

from __future__ import annotations

import numpy as np
import torch

from course_lib import data, geometry, inference
from course_lib.grading.checks import (
    CheckFailed,
    call_student,
    check_close,
    check_shape,
    check_type,
    forbid_reference,
    report_passed,
)

IMAGENET_MEAN = np.array(data.IMAGE_MEAN)
IMAGENET_STD = np.array(data.IMAGE_STD)


def _pair(result, what: str) -> tuple[np.ndarray, np.ndarray]:
    check_type(result, tuple, what + " (return the two arrays as a tuple: `return center, scale`)")
    if len(result) != 2:
        raise CheckFailed(f"{what} must return two arrays, (center, scale); got {len(result)} values")
    return result


# =========================================================================== exercise 1: box -> centre, scale
def reference_box_to_center_scale(box, aspect_ratio, padding=1.25):
    """The official ``_box2cs`` in pixels."""
    center, scale = geometry.box_to_center_scale(np.asarray(box, float), aspect_ratio, padding)
    return center, scale


def _box_mistakes(box, aspect_ratio, padding) -> dict:
    x, y, w, h = np.asarray(box, float)
    center = np.array([x + w / 2, y + h / 2])
    shrunk = np.array([min(w, h * aspect_ratio), min(h, w / aspect_ratio)]) * padding
    return {
        "the centre of a box [x, y, w, h] is (x + w / 2, y + h / 2), not its corner (x, y).": (
            np.array([x, y]), reference_box_to_center_scale(box, aspect_ratio, padding)[1]),
        "the box is only ever enlarged to reach the aspect ratio (the person must stay whole): "
        "use the larger of w and h * aspect_ratio, not the smaller.": (center, shrunk),
        "the padding (1.25 by default) multiplies both sides at the end: it is missing.": (
            center, reference_box_to_center_scale(box, aspect_ratio, 1.0)[1]),
        "aspect_ratio is W / H of the model input (0.75 for 256 x 192): width = height * aspect_ratio.": (
            center, reference_box_to_center_scale(box, 1 / aspect_ratio, padding)[1]),
    }


def _check_box_case(fn, box, aspect_ratio, padding, what) -> None:
    result = _pair(call_student(fn, np.array(box, float), aspect_ratio, padding, name="box_to_center_scale"), what)
    expected = reference_box_to_center_scale(box, aspect_ratio, padding)
    for value, name in zip(result, ("center", "scale")):
        check_shape(value, (2,), f"{what}: {name}")
    mistakes = _box_mistakes(box, aspect_ratio, padding)
    for part, name in ((0, "center"), (1, "scale")):
        check_close(result[part], expected[part], f"{what}: {name}",
                    mistakes={hint: wrong[part] for hint, wrong in mistakes.items()})


def check_box_to_center_scale(fn) -> None:
    """Visible check: a tall box and a wide box, worked by hand."""
    # tall: 60 x 200 at 0.75 -> width 150, height 200, x1.25 -> (187.5, 250); centre (40, 120)
    _check_box_case(fn, [10.0, 20.0, 60.0, 200.0], 0.75, 1.25, "box_to_center_scale([10, 20, 60, 200], 0.75)")
    # wide: 300 x 90 at 0.75 -> height 400, x1.25 -> (375, 500); centre (150, 45)
    _check_box_case(fn, [0.0, 0.0, 300.0, 90.0], 0.75, 1.25, "box_to_center_scale([0, 0, 300, 90], 0.75)")
    report_passed("box_to_center_scale")


def hidden_box_to_center_scale(fn) -> None:
    """Hidden check: random boxes, aspect ratios and paddings against the reference."""
    fn = forbid_reference(fn, *REFERENCES["box_to_center_scale"])
    rng = np.random.default_rng(1001)
    for _ in range(12):
        box = [*rng.uniform(-50, 400, 2), *rng.uniform(5, 400, 2)]
        aspect_ratio, padding = float(rng.choice([0.75, 1.0, 0.5, 4 / 3])), float(rng.choice([1.0, 1.25, 1.5]))
        _check_box_case(fn, box, aspect_ratio, padding, f"box_to_center_scale on a random box, aspect {aspect_ratio:.3g}")
    report_passed("box_to_center_scale (hidden)")


# =========================================================================== exercise 2: the model's input
def reference_to_model_input(crop, color="rgb"):
    """RGB uint8 crop (H, W, 3) -> float32 tensor (3, H, W) in the weights' channel order, ImageNet-normalised."""
    return inference.crops_to_tensor(np.asarray(crop)[None], color)[0]


def _input_mistakes(crop, color) -> dict:
    ordered = crop[..., ::-1] if color == "bgr" else crop
    as_float = ordered.astype(np.float64)
    mean_of_order = IMAGENET_MEAN[::-1] if color == "bgr" else IMAGENET_MEAN
    std_of_order = IMAGENET_STD[::-1] if color == "bgr" else IMAGENET_STD
    return {
        "the pixels go to [0, 1] first (divide by 255), then (x - mean) / std.": (
            (as_float - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1),
        "the channel order is wrong: 'bgr' weights (the released SimpleBaseline files) want blue first, "
        "i.e. crop[..., ::-1]; 'rgb' weights take the crop as it is.": reference_to_model_input(
            crop, "rgb" if color == "bgr" else "bgr").numpy(),
        "the official code normalises whatever channel order it has with the mean and std as listed "
        "(0.485, 0.456, 0.406 first to last): do not reverse them with the channels.": (
            (as_float / 255 - mean_of_order) / std_of_order).transpose(2, 0, 1),
    }


def _check_input_case(fn, crop, color, what) -> None:
    result = call_student(fn, crop, color, name="to_model_input")
    check_type(result, torch.Tensor, what + " (a torch.Tensor)")
    check_shape(result, (3, *crop.shape[:2]), what)
    if result.dtype != torch.float32:
        raise CheckFailed(f"{what} must be float32 (the model's weights are), got {result.dtype}")
    check_close(result, reference_to_model_input(crop, color), what, atol=1e-5, rtol=1e-5,
                mistakes=_input_mistakes(crop, color))


def check_to_model_input(fn) -> None:
    """Visible check: a 2 x 3 crop, both channel orders."""
    crop = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 0], [255, 255, 255], [128, 64, 32]]], np.uint8)
    for color in ("rgb", "bgr"):
        _check_input_case(fn, crop, color, f"to_model_input(crop, {color!r}) on a 2 x 3 crop")
    report_passed("to_model_input")


def hidden_to_model_input(fn) -> None:
    """Hidden check: random crops of several sizes against the reference."""
    fn = forbid_reference(fn, *REFERENCES["to_model_input"])
    rng = np.random.default_rng(1002)
    for trial in range(6):
        crop = rng.integers(0, 256, size=(int(rng.integers(2, 40)), int(rng.integers(2, 40)), 3), dtype=np.uint8)
        _check_input_case(fn, crop, ("rgb", "bgr")[trial % 2], f"to_model_input on a random {crop.shape} crop")
    report_passed("to_model_input (hidden)")


# =========================================================================== exercise 3: the inverse warp
def reference_invert_affine(matrix):
    """``[A | t]`` -> ``[A^-1 | -A^-1 t]``."""
    matrix = np.asarray(matrix, float)
    inverse = np.linalg.inv(matrix[:, :2])
    return np.concatenate([inverse, -inverse @ matrix[:, 2:]], axis=1)


def _affine_mistakes(matrix) -> dict:
    linear, shift = np.asarray(matrix, float)[:, :2], np.asarray(matrix, float)[:, 2:]
    inverse = np.linalg.inv(linear)
    return {
        "the translation of the inverse is -A^-1 t, not -t: undo the shift, then the linear part, "
        "p = A^-1 (q - t).": np.concatenate([inverse, -shift], axis=1),
        "the transpose of A is its inverse only for a rotation; a crop also scales: use np.linalg.inv.":
            np.concatenate([linear.T, -linear.T @ shift], axis=1),
        "the sign of the translation is wrong: p = A^-1 (q - t) = A^-1 q - A^-1 t.":
            np.concatenate([inverse, inverse @ shift], axis=1),
    }


def _check_affine_case(fn, matrix, what) -> None:
    result = call_student(fn, matrix, name="invert_affine")
    check_shape(result, (2, 3), what)
    check_close(result, reference_invert_affine(matrix), what, atol=1e-8, rtol=1e-8, mistakes=_affine_mistakes(matrix))


def check_invert_affine(fn) -> None:
    """Visible check: a pure zoom and shift, worked by hand, then a crop of the course."""
    # q = 2 p + (10, -4)  ->  p = q / 2 - (5, -2)
    _check_affine_case(fn, np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -4.0]]), "invert_affine([[2, 0, 10], [0, 2, -4]])")
    matrix = geometry.get_affine_transform([256.0, 250.0], [375.0, 500.0], 30.0, (256, 192))
    _check_affine_case(fn, matrix, "invert_affine of a rotated crop")
    report_passed("invert_affine")


def hidden_invert_affine(fn) -> None:
    """Hidden check: random crops (centre, size, rotation) against the reference."""
    fn = forbid_reference(fn, *REFERENCES["invert_affine"])
    rng = np.random.default_rng(1003)
    for _ in range(10):
        matrix = geometry.get_affine_transform(rng.uniform(0, 600, 2), rng.uniform(20, 500, 2),
                                               float(rng.uniform(-45, 45)), (256, 192))
        _check_affine_case(fn, matrix, "invert_affine of a random crop")
    report_passed("invert_affine (hidden)")


def reference_one_euro_filter(signal, rate, min_cutoff=1.0, beta=0.0, d_cutoff=1.0) -> np.ndarray:
    """The One Euro filter (Casiez, Roussel & Vogel, CHI 2012) along axis 0 of ``signal`` (T, ...).

        alpha(f) = 1 / (1 + rate / (2 pi f))
        d_t = alpha(d_cutoff) (x_t - s_{t-1}) rate + (1 - alpha(d_cutoff)) d_{t-1},   d_0 = 0
        s_t = alpha(f_t) x_t + (1 - alpha(f_t)) s_{t-1},   f_t = min_cutoff + beta |d_t|,   s_0 = x_0
    """
    return _one_euro_variant(signal, rate, min_cutoff, beta, d_cutoff)


def _alpha(cutoff, rate):
    return 1.0 / (1.0 + rate / (2 * np.pi * cutoff))


def _smooth_step(x, previous, speed, rate, min_cutoff, beta, d_cutoff, *, smooth_speed=True, adaptive=True,
                 alpha=_alpha):
    """One step of the filter (and the variants a slip produces): -> (s_t, d_t)."""
    raw_speed = (x - previous) * rate
    speed = alpha(d_cutoff, rate) * raw_speed + (1 - alpha(d_cutoff, rate)) * speed if smooth_speed else raw_speed
    cutoff = min_cutoff + beta * np.abs(speed) if adaptive else np.full_like(x, min_cutoff)
    a = alpha(cutoff, rate)
    return a * x + (1 - a) * previous, speed


def _one_euro_variant(signal, rate, min_cutoff, beta, d_cutoff, **slip) -> np.ndarray:
    signal = np.asarray(signal, dtype=float)
    smoothed, speed = np.empty_like(signal), np.zeros_like(signal[0])
    smoothed[0] = signal[0]
    for t in range(1, len(signal)):
        smoothed[t], speed = _smooth_step(signal[t], smoothed[t - 1], speed, rate, min_cutoff, beta, d_cutoff, **slip)
    return smoothed


def _one_euro_mistakes(signal, rate, min_cutoff, beta, d_cutoff) -> dict:
    args = (signal, rate, min_cutoff, beta, d_cutoff)
    return {
        "the speed that sets the cutoff is itself smoothed, with alpha(d_cutoff): d_t = alpha (x_t - s_{t-1}) rate "
        "+ (1 - alpha) d_{t-1}": _one_euro_variant(*args, smooth_speed=False),
        "the cutoff adapts to the speed: f_t = min_cutoff + beta |d_t| (with beta > 0 it is not constant)":
            _one_euro_variant(*args, adaptive=False),
        "alpha(f) = 1 / (1 + tau / T_e) with tau = 1 / (2 pi f) and T_e = 1 / rate, i.e. 1 / (1 + rate / (2 pi f))":
            _one_euro_variant(*args, alpha=lambda f, r: 1.0 / (1.0 + 2 * np.pi * f / r)),
    }


def _check_one_euro_case(fn, signal, rate, min_cutoff, beta, d_cutoff, what) -> None:
    result = call_student(fn, signal, rate, min_cutoff, beta, d_cutoff, name="one_euro_filter")
    check_type(result, np.ndarray, what)
    check_shape(result, np.shape(signal), what)
    check_close(result, reference_one_euro_filter(signal, rate, min_cutoff, beta, d_cutoff), what,
                mistakes=_one_euro_mistakes(signal, rate, min_cutoff, beta, d_cutoff))


def check_one_euro_filter(fn) -> None:
    """Visible check: a constant signal stays put; a step, worked by hand for two frames; a jittered track."""
    constant = np.full((5, 2), 7.0)
    _check_one_euro_case(fn, constant, 30.0, 1.0, 0.0, 1.0, "one_euro_filter of a constant signal")
    step = np.array([[0.0], [1.0], [1.0]])  # beta 0: alpha = 1 / (1 + 30 / (2 pi)) = 0.1732 every frame
    _check_one_euro_case(fn, step, 30.0, 1.0, 0.0, 1.0, "one_euro_filter of the step [0, 1, 1] at 30 Hz, beta 0")
    rng = np.random.default_rng(10)
    track = np.cumsum(rng.normal(0, 1, (20, 3, 2)), axis=0) + rng.normal(0, 2, (20, 3, 2))  # (T, K, 2)
    _check_one_euro_case(fn, track, 30.0, 1.0, 0.05, 1.0, "one_euro_filter of a jittered (20, 3, 2) track, beta 0.05")
    report_passed("one_euro_filter")


def hidden_one_euro_filter(fn) -> None:
    """Hidden check: random tracks, rates, cutoffs and betas against the reference."""
    fn = forbid_reference(fn, *REFERENCES["one_euro_filter"])
    rng = np.random.default_rng(1010)
    for _ in range(6):
        steps, joints = int(rng.integers(2, 40)), int(rng.integers(1, 18))
        track = np.cumsum(rng.normal(0, 3, (steps, joints, 2)), axis=0) + rng.normal(0, 1, (steps, joints, 2))
        rate, min_cutoff = float(rng.choice([15.0, 25.0, 30.0, 60.0])), float(rng.uniform(0.2, 3))
        beta, d_cutoff = float(rng.uniform(0, 0.5)), float(rng.uniform(0.5, 2))
        _check_one_euro_case(fn, track, rate, min_cutoff, beta, d_cutoff,
                             f"one_euro_filter of a random ({steps}, {joints}, 2) track at {rate:g} Hz, "
                             f"min_cutoff {min_cutoff:.2f}, beta {beta:.2f}, d_cutoff {d_cutoff:.2f}")
    report_passed("one_euro_filter (hidden)")


REFERENCES = {
    "box_to_center_scale": (reference_box_to_center_scale, geometry.box_to_center_scale, inference.crop_people),
    "to_model_input": (reference_to_model_input, inference.crops_to_tensor, data.image_to_tensor),
    "invert_affine": (reference_invert_affine, geometry.crop_to_image),
    "one_euro_filter": (reference_one_euro_filter, _one_euro_variant, _smooth_step),
}
