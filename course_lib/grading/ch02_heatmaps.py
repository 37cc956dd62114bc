"""Checks for chapter 02, Heatmaps: one Gaussian target, argmax, the quarter offset, soft-argmax,
and the stretch exercise ``taylor_step`` (DARK's Newton step).

Each exercise has a visible ``check_<exercise>(fn)`` (hand-worked cases) and a hidden
``hidden_<exercise>(fn)`` (random cases against the course's implementation in
:mod:`course_lib.heatmaps`, which the student's function may not call).  The exercises work
on NumPy arrays of one person: ``(K, H, W)`` heatmaps, ``(K, 2)`` keypoints ``x, y`` in
heatmap pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from course_lib import heatmaps as reference
from course_lib.grading.checks import (
    CheckFailed,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    forbid_reference,
    report_passed,
)

# -- exercise 1: gaussian_target ------------------------------------------------------------------

HINT_NOT_ROUNDED = ("the peak is not on a pixel: the MSRA target first rounds the centre to the nearest pixel, "
                    "mu = int(x + 0.5), so that the maximum is exactly 1.")
HINT_NOT_TRUNCATED = ("the Gaussian is not cut off: values farther than 3 sigma from the rounded centre (on either "
                      "axis) must be 0.")
HINT_TARGET_SWAPPED = ("the blob is at (y, x) instead of (x, y): x is the column (second index of the map), y the "
                       "row (first index).")
HINT_NO_TWO = "the width is wrong: the exponent is -d^2 / (2 sigma^2), with the 2."
HINT_TARGET_VISIBILITY = ("a joint with v = 0 is not labelled: its map must be all zeros and its weight 0 (it gets no "
                          "loss).")


def _reference_target(keypoint, visibility, heatmap_size, sigma) -> tuple[np.ndarray, float]:
    maps, weights = reference.gaussian_heatmaps(np.asarray(keypoint, dtype=float)[None], np.array([visibility]),
                                                heatmap_size, sigma)
    return maps[0], float(weights[0])


def _target_variant(keypoint, heatmap_size, sigma, rounded=True, truncated=True, two=True) -> np.ndarray:
    """A target made with one of the steps left out (the typical mistakes)."""
    height, width = heatmap_size
    x, y = float(keypoint[0]), float(keypoint[1])
    mu_x, mu_y = (int(x + 0.5), int(y + 0.5)) if rounded else (x, y)
    u = np.arange(width)[None, :]
    v = np.arange(height)[:, None]
    denominator = 2 * sigma**2 if two else sigma**2
    target = np.exp(-((u - mu_x) ** 2 + (v - mu_y) ** 2) / denominator)
    if truncated:
        target = target * (np.abs(u - mu_x) <= 3 * sigma) * (np.abs(v - mu_y) <= 3 * sigma)
    return target


def _target_mistakes(keypoint, heatmap_size, sigma) -> dict[str, np.ndarray]:
    mistakes = {
        HINT_NOT_ROUNDED: _target_variant(keypoint, heatmap_size, sigma, rounded=False),
        HINT_NOT_TRUNCATED: _target_variant(keypoint, heatmap_size, sigma, truncated=False),
        HINT_NO_TWO: _target_variant(keypoint, heatmap_size, sigma, two=False),
    }
    mistakes[HINT_TARGET_SWAPPED] = _target_variant(np.asarray(keypoint)[::-1], heatmap_size, sigma)
    return mistakes


def _check_target_result(result, keypoint, visibility, heatmap_size, sigma, what) -> None:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{what} must return two things, (heatmap, weight); got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    heatmap, weight = result
    expected_map, expected_weight = _reference_target(keypoint, visibility, heatmap_size, sigma)
    check_shape(heatmap, heatmap_size, f"the heatmap of {what}")
    check_dtype(heatmap, "float", f"the heatmap of {what}")
    mistakes = _target_mistakes(keypoint, heatmap_size, sigma)
    if expected_weight == 0:
        mistakes = {HINT_TARGET_VISIBILITY: _target_variant(keypoint, heatmap_size, sigma)} if visibility <= 0 else {}
    check_close(heatmap, expected_map, f"the heatmap of {what}", atol=1e-5, rtol=1e-4, mistakes=mistakes)
    hint = {HINT_TARGET_VISIBILITY: 1.0} if visibility <= 0 else {}
    check_close(np.asarray(weight, dtype=float), expected_weight, f"the weight of {what}", mistakes=hint)


def check_gaussian_target(fn) -> None:
    """Visible check: a joint at (3.2, 1.7) on a 5x9 map (sigma 1), a joint with v = 0, one off the map."""
    what = "gaussian_target([3.2, 1.7], 2, (5, 9), sigma=1.0)"
    result = call_student(fn, np.array([3.2, 1.7]), 2, (5, 9), 1.0, name="gaussian_target")
    _check_target_result(result, [3.2, 1.7], 2, (5, 9), 1.0, what)
    heatmap = np.asarray(result[0])
    if not np.isclose(heatmap[2, 3], 1.0):
        raise CheckFailed(f"{what}: the peak must be 1 at row 2, column 3 (the rounded centre), got {heatmap[2, 3]:.4g}.")
    what = "gaussian_target([3.2, 1.7], 0, (5, 9), sigma=1.0) (a joint that is not labelled)"
    result = call_student(fn, np.array([3.2, 1.7]), 0, (5, 9), 1.0, name="gaussian_target")
    _check_target_result(result, [3.2, 1.7], 0, (5, 9), 1.0, what)
    what = "gaussian_target([20.0, 2.0], 1, (5, 9), sigma=1.0) (a hidden joint far right of the map)"
    result = call_student(fn, np.array([20.0, 2.0]), 1, (5, 9), 1.0, name="gaussian_target")
    _check_target_result(result, [20.0, 2.0], 1, (5, 9), 1.0, what)
    report_passed("gaussian_target")


def hidden_gaussian_target(fn) -> None:
    """Hidden check: random joints, sizes, sigmas and flags against ``heatmaps.gaussian_heatmaps``."""
    fn = forbid_reference(fn, *REFERENCES["gaussian_target"])
    rng = np.random.default_rng(20)
    for case in range(12):
        height, width = int(rng.integers(6, 40)), int(rng.integers(6, 40))
        sigma = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        # x, y >= 0 (where every rounding convention agrees); some joints beyond the right/bottom edge
        keypoint = rng.uniform(0, [width + 4 * sigma, height + 4 * sigma]) if case % 4 == 3 else \
            rng.uniform(0, [width - 1, height - 1])
        visibility = int(rng.integers(0, 3)) if case % 3 else 2
        what = (f"gaussian_target({np.round(keypoint, 3).tolist()}, {visibility}, ({height}, {width}), "
                f"sigma={sigma})")
        result = call_student(fn, keypoint, visibility, (height, width), sigma, name="gaussian_target")
        _check_target_result(result, keypoint, visibility, (height, width), sigma, what)
    report_passed("gaussian_target (hidden)")


# -- exercise 2: decode_argmax --------------------------------------------------------------------

HINT_UNRAVEL = ("the row and column come from the flat index of an (H, W) map as row = index // W and "
                "column = index % W (or np.unravel_index(index, (H, W)), which gives (row, column)).")


def _check_keypoints_result(result, expected, what, mistakes=None, atol=1e-5) -> None:
    check_shape(result, expected.shape, what)
    check_dtype(result, "float", what)
    check_close(result, expected, what, atol=atol, rtol=1e-5, mistakes=mistakes)


def _argmax_result(result, what) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{what} must return two arrays, (keypoints, scores); got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    return result


def _wrong_unravel(heatmaps: np.ndarray) -> np.ndarray:
    """Row and column from the flat index with the height instead of the width."""
    height = heatmaps.shape[-2]
    index = heatmaps.reshape(len(heatmaps), -1).argmax(axis=1)
    return np.stack([index % height, index // height], axis=1).astype(float)


def check_decode_argmax(fn) -> None:
    """Visible check: two 3x4 maps with hand-placed maxima."""
    heatmaps = np.zeros((2, 3, 4))
    heatmaps[0, 1, 3] = 0.9  # row 1, column 3: x = 3, y = 1
    heatmaps[1, 2, 0] = 0.4  # row 2, column 0: x = 0, y = 2
    heatmaps[1, 0, 1] = 0.1
    what = "decode_argmax(heatmaps) for maxima at (row 1, column 3) and (row 2, column 0)"
    keypoints, scores = _argmax_result(call_student(fn, heatmaps, name="decode_argmax"), what)
    _check_keypoints_result(keypoints, np.array([[3.0, 1.0], [0.0, 2.0]]), f"the keypoints of {what}")
    check_close(scores, [0.9, 0.4], f"the scores of {what}")
    report_passed("decode_argmax")


def hidden_decode_argmax(fn) -> None:
    """Hidden check: random maps of random sizes (non-square) against ``heatmaps.decode_argmax``."""
    fn = forbid_reference(fn, *REFERENCES["decode_argmax"])
    rng = np.random.default_rng(21)
    for _ in range(6):
        num, height, width = int(rng.integers(1, 18)), int(rng.integers(3, 30)), int(rng.integers(3, 30))
        if height == width:
            width += 1
        heatmaps = rng.random((num, height, width))
        expected, expected_scores = reference.decode_argmax(heatmaps)
        what = f"decode_argmax on random ({num}, {height}, {width}) heatmaps"
        keypoints, scores = _argmax_result(call_student(fn, heatmaps, name="decode_argmax"), what)
        _check_keypoints_result(keypoints, np.asarray(expected, dtype=float), f"the keypoints of {what}",
                                mistakes={HINT_UNRAVEL: _wrong_unravel(heatmaps)})
        check_close(scores, expected_scores, f"the scores of {what}", atol=1e-6)
    report_passed("decode_argmax (hidden)")


# -- exercise 3: quarter_offset -------------------------------------------------------------------

HINT_HALF_STEP = "the step is 0.25 of a heatmap pixel (a quarter), not 0.5."
HINT_WRONG_WAY = "the step goes towards the LOWER neighbour: move towards the higher one, sign(H[right] - H[left])."
HINT_BORDER_RULE = ("near the border, step as HRNet's get_final_preds does: only when 1 < u < W - 1 and "
                    "1 < v < H - 1 (both at once), not on every axis whose two neighbours exist.")
HINT_AXES_CROSSED = ("the x step must compare the left and right neighbours (same row, columns u - 1 and u + 1), "
                     "the y step the ones above and below (same column, rows v - 1 and v + 1).")


def _quarter_variant(heatmaps: np.ndarray, keypoints: np.ndarray, step: float = 0.25, crossed: bool = False,
                     per_axis: bool = False):
    """The quarter offset with a wrong step size, direction, crossed axes or border rule (the typical mistakes)."""
    refined = np.array(keypoints, dtype=float)
    height, width = heatmaps.shape[-2:]
    for k, (u, v) in enumerate(np.asarray(keypoints).astype(int)):
        inside = 1 < u < width - 1 and 1 < v < height - 1  # HRNet's get_final_preds: both axes at once
        inside_x, inside_y = (0 < u < width - 1, 0 < v < height - 1) if per_axis else (inside, inside)
        horizontal = np.sign(heatmaps[k, v, u + 1] - heatmaps[k, v, u - 1]) if inside_x else 0.0
        vertical = np.sign(heatmaps[k, v + 1, u] - heatmaps[k, v - 1, u]) if inside_y else 0.0
        if crossed:
            horizontal, vertical = vertical, horizontal
        refined[k] += step * np.array([horizontal, vertical])
    return refined


def _quarter_mistakes(heatmaps, keypoints) -> dict[str, np.ndarray]:
    return {
        HINT_HALF_STEP: _quarter_variant(heatmaps, keypoints, step=0.5),
        HINT_WRONG_WAY: _quarter_variant(heatmaps, keypoints, step=-0.25),
        HINT_AXES_CROSSED: _quarter_variant(heatmaps, keypoints, crossed=True),
        HINT_BORDER_RULE: _quarter_variant(heatmaps, keypoints, per_axis=True),
    }


def check_quarter_offset(fn) -> None:
    """Visible check: a 5x5 map whose true peak lies right of and above its maximum, and a peak on the border."""
    heatmaps = np.zeros((2, 5, 5))
    heatmaps[0, 2, 1:4] = [0.2, 1.0, 0.6]  # the right neighbour is higher: x + 0.25
    heatmaps[0, 1, 2], heatmaps[0, 3, 2] = 0.7, 0.3  # the upper neighbour is higher: y - 0.25
    heatmaps[1, 0, 4] = 1.0  # a corner: no neighbour on one side of either axis, no step
    heatmaps[1, 1, 4] = 0.5
    keypoints = np.array([[2.0, 2.0], [4.0, 0.0]])
    what = "quarter_offset(heatmaps, keypoints) for maxima at (x=2, y=2) and at the corner (x=4, y=0)"
    result = call_student(fn, heatmaps, keypoints, name="quarter_offset")
    _check_keypoints_result(result, np.array([[2.25, 1.75], [4.0, 0.0]]), what,
                            mistakes=_quarter_mistakes(heatmaps, keypoints))
    report_passed("quarter_offset")


def hidden_quarter_offset(fn) -> None:
    """Hidden check: blurred random peaks, some on the border, against ``heatmaps.decode_quarter_offset``."""
    fn = forbid_reference(fn, *REFERENCES["quarter_offset"])
    rng = np.random.default_rng(22)
    for case in range(6):
        num, height, width = int(rng.integers(2, 12)), int(rng.integers(4, 24)), int(rng.integers(4, 24))
        centres = rng.uniform(-0.4, [width - 0.6, height - 0.6], size=(num, 2))
        if case % 2:  # peaks on the border rows and columns too
            centres[0] = [0.0, rng.uniform(0, height - 1)]
            centres[-1] = [rng.uniform(0, width - 1), height - 1.0]
        heatmaps, _ = reference.gaussian_heatmaps(centres, np.full(num, 2), (height, width), 1.5, unbiased=True)
        heatmaps = heatmaps + rng.uniform(0, 0.01, size=heatmaps.shape)  # no ties between neighbours
        keypoints, _ = reference.decode_argmax(heatmaps)
        keypoints = np.asarray(keypoints, dtype=float)
        expected, _ = reference.decode_quarter_offset(heatmaps)
        what = f"quarter_offset on {num} random peaks in ({height}, {width}) maps"
        result = call_student(fn, heatmaps, keypoints, name="quarter_offset")
        _check_keypoints_result(result, np.asarray(expected, dtype=float), what,
                                mistakes=_quarter_mistakes(heatmaps, keypoints))
    report_passed("quarter_offset (hidden)")


# -- exercise 4: soft_argmax ----------------------------------------------------------------------

HINT_NO_TEMPERATURE = "the temperature is missing: the softmax is over H / T, not H."
HINT_NOT_STABLE = ("the result is not finite: exp() of large values overflows. Subtract the maximum of each map "
                   "before exp(); the softmax does not change.")
HINT_NOT_NORMALISED = "the weights must sum to 1 over each map: divide exp(H / T) by its sum over all H x W pixels."


def _soft_variant(heatmaps: np.ndarray, temperature: float, normalised: bool = True) -> np.ndarray:
    logits = heatmaps / temperature
    weights = np.exp(logits - logits.max(axis=(-2, -1), keepdims=True))
    if normalised:
        weights = weights / weights.sum(axis=(-2, -1), keepdims=True)
    columns, rows = np.arange(heatmaps.shape[-1]), np.arange(heatmaps.shape[-2])
    return np.stack([(weights.sum(axis=-2) * columns).sum(-1), (weights.sum(axis=-1) * rows).sum(-1)], axis=-1)


def _check_soft_argmax_result(result, heatmaps, temperature, what) -> None:
    expected, _ = reference.soft_argmax(heatmaps, temperature=temperature)
    expected = np.asarray(expected, dtype=float)
    if isinstance(result, (tuple, list)) and len(result) == 2 and np.shape(result[0]) == expected.shape:
        raise CheckFailed(f"{what} must return only the keypoints, a ({len(expected)}, 2) array, not a pair.")
    check_shape(result, expected.shape, what)
    if not np.all(np.isfinite(np.asarray(result, dtype=float))):
        raise CheckFailed(f"{what} returned NaN or inf.\nHint: {HINT_NOT_STABLE}")
    check_dtype(result, "float", what)
    mistakes = {HINT_NO_TEMPERATURE: _soft_variant(heatmaps, 1.0),
                HINT_NOT_NORMALISED: _soft_variant(heatmaps, temperature, normalised=False)}
    check_close(result, expected, what, atol=1e-4, rtol=1e-4, mistakes=mistakes)


def check_soft_argmax(fn) -> None:
    """Visible check: a two-pixel map (the answer lies between them) and a symmetric blob."""
    heatmaps = np.zeros((2, 3, 4))
    heatmaps[0, 1, 1] = heatmaps[0, 1, 2] = 1.0  # two equal peaks: x = 1.5, y = 1 (nearly all the weight)
    heatmaps[1] = np.exp(-((np.arange(4)[None, :] - 2.0) ** 2 + (np.arange(3)[:, None] - 1.0) ** 2) / 2)
    what = "soft_argmax(heatmaps, temperature=0.05) for a map with two equal peaks and a blob centred at (2, 1)"
    result = call_student(fn, heatmaps, 0.05, name="soft_argmax")
    _check_soft_argmax_result(result, heatmaps, 0.05, what)
    report_passed("soft_argmax")


def hidden_soft_argmax(fn) -> None:
    """Hidden check: random maps and temperatures, and large logits, against ``heatmaps.soft_argmax``."""
    fn = forbid_reference(fn, *REFERENCES["soft_argmax"])
    rng = np.random.default_rng(23)
    for case in range(6):
        num, height, width = int(rng.integers(1, 10)), int(rng.integers(3, 20)), int(rng.integers(3, 20))
        temperature = float(rng.choice([0.05, 0.2, 1.0, 3.0]))
        scale = 60.0 if case >= 4 else 1.0  # network logits can be large: exp overflows without care
        heatmaps = rng.random((num, height, width)) * scale
        what = f"soft_argmax on random ({num}, {height}, {width}) maps (values up to {scale:g}), T={temperature}"
        result = call_student(fn, heatmaps, temperature, name="soft_argmax")
        _check_soft_argmax_result(result, heatmaps, temperature, what)
    report_passed("soft_argmax (hidden)")


# -- stretch exercise: taylor_step (DARK) ----------------------------------------------------------------

def reference_taylor_step(log_map) -> np.ndarray:
    """DARK's Newton step on a log-heatmap ``P`` (H, W) at its argmax: :func:`course_lib.heatmaps.taylor_step`."""
    return reference.taylor_step(torch.as_tensor(np.asarray(log_map, dtype=float))).numpy()  # float64 throughout


def _log_gaussian(center, size, sigma: float = 2.0) -> np.ndarray:
    ys, xs = np.mgrid[0:size[0], 0:size[1]]
    return -((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2)


def _check_taylor_once(fn, log_map, what: str) -> None:
    result = call_student(fn, log_map, name="taylor_step")
    check_shape(result, (2,), what)
    expected = reference_taylor_step(log_map)
    v, u = np.unravel_index(int(np.argmax(log_map)), log_map.shape)
    check_close(result, expected, what, atol=1e-6, mistakes={
        "this is the argmax itself: take the Newton step mu = m - H^-1 g (DARK's second-order expansion).":
            np.array([u, v], dtype=float),
        "the step goes the wrong way: mu = m MINUS H^-1 g.": 2 * np.array([u, v], dtype=float) - expected,
    })


def check_taylor_step(fn) -> None:
    """Visible check: the log of an exact Gaussian recovers its sub-pixel centre; at the border, no step."""
    what = "taylor_step(log of a Gaussian centred at (10.3, 7.6), sigma 2, on a 16 x 24 map)"
    _check_taylor_once(fn, _log_gaussian((10.3, 7.6), (16, 24)), what)
    check_close(call_student(fn, _log_gaussian((10.3, 7.6), (16, 24)), name="taylor_step"), [10.3, 7.6], what,
                atol=1e-6)
    _check_taylor_once(fn, _log_gaussian((1.2, 7.6), (16, 24)), "taylor_step(a Gaussian one pixel from the border)")
    report_passed("taylor_step")


def hidden_taylor_step(fn) -> None:
    """Hidden check: noisy log-maps and Gaussians anywhere, borders included."""
    fn = forbid_reference(fn, *REFERENCES["taylor_step"])
    rng = np.random.default_rng(24)
    for _ in range(6):
        size = (int(rng.integers(8, 33)), int(rng.integers(8, 33)))
        center = rng.uniform([0, 0], [size[1] - 1, size[0] - 1])
        log_map = _log_gaussian(center, size, float(rng.uniform(1, 3))) + rng.normal(0, 0.01, size)
        _check_taylor_once(fn, log_map, f"taylor_step on a noisy {size[0]} x {size[1]} log-map")
    report_passed("taylor_step (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "gaussian_target": (reference.gaussian_heatmaps, reference.gaussian_heatmaps_loop),
    "decode_argmax": (reference.decode_argmax,),
    "quarter_offset": (reference.decode_quarter_offset,),
    "soft_argmax": (reference.soft_argmax,),
    "taylor_step": (reference_taylor_step, reference.taylor_step, reference._taylor_step, reference.decode_dark),
}
