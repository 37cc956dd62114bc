"""Checks for chapter 05, ROIPool vs ROIAlign: bilinear interpolation, ROIPool's bins, one ROIAlign bin, and
the stretch exercise: one bin of aligned ROIAlign with adaptive sampling.

Each exercise has a visible ``check_<exercise>(fn)`` (hand-worked cases) and a hidden
``hidden_<exercise>(fn)`` (random cases against :mod:`course_lib.ops`, which the student's
function may not call).  The exercises work on one feature map, a NumPy array ``(H, W)``
(one channel), and one box ``(x1, y1, x2, y2)`` in image pixels; feature cell ``(i, j)`` has
its centre at ``x = j, y = i`` of the feature map.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_lib import ops
from course_lib.grading.checks import (
    CheckFailed,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    forbid_reference,
    report_passed,
)

# -- exercise 1: bilinear_interpolate ---------------------------------------------------------------

HINT_NEAREST = ("it matches the value of the NEAREST cell: bilinear interpolation mixes the four cells around the "
                "point, weighted by how close the point is to each.")
HINT_FLOOR_CELL = ("it matches the value of the cell at (floor(y), floor(x)) alone: the other three neighbours are "
                   "missing.")
HINT_WEIGHTS_REVERSED = ("the weights are the wrong way round: the cell at x0 + 1 gets the weight lx = x - x0 (the "
                         "closer the point is to it, the larger), the cell at x0 gets 1 - lx; same for y.")
HINT_MAP_SWAPPED = ("it matches the map read as feature_map[x, y]: the first index of the map is the row y, the second "
                    "the column x.")


def reference_bilinear_interpolate(feature_map: np.ndarray, x: float, y: float) -> float:
    """The course's :func:`course_lib.ops.bilinear_sample` at one point of one ``(H, W)`` map."""
    features = torch.as_tensor(np.asarray(feature_map, dtype=np.float64))[None, None]  # (1, 1, H, W)
    points = torch.tensor([[[float(x), float(y)]]], dtype=torch.float64)  # (1, 1, 2)
    return float(ops.bilinear_sample(features, points)[0, 0, 0])


def _bilinear_variant(feature_map: np.ndarray, x: float, y: float, reverse: bool = False) -> float:
    height, width = feature_map.shape
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    lx, ly = x - x0, y - y0
    if reverse:
        lx, ly = 1 - lx, 1 - ly
    return float((1 - ly) * (1 - lx) * feature_map[y0, x0] + (1 - ly) * lx * feature_map[y0, x1]
                 + ly * (1 - lx) * feature_map[y1, x0] + ly * lx * feature_map[y1, x1])


def _bilinear_mistakes(feature_map: np.ndarray, x: float, y: float) -> dict[str, float]:
    height, width = feature_map.shape
    mistakes = {
        HINT_NEAREST: float(feature_map[min(int(y + 0.5), height - 1), min(int(x + 0.5), width - 1)]),
        HINT_FLOOR_CELL: float(feature_map[int(math.floor(y)), int(math.floor(x))]),
        HINT_WEIGHTS_REVERSED: _bilinear_variant(feature_map, x, y, reverse=True),
    }
    if x <= height - 1 and y <= width - 1:
        mistakes[HINT_MAP_SWAPPED] = _bilinear_variant(feature_map.T, x, y)
    return mistakes


HINT_LAST_CELL = ("on the last column (x = W - 1) there is no cell x0 + 1: use min(x0 + 1, W - 1) there (its weight "
                  "lx is 0 anyway), and the same for the last row.")


def _check_bilinear_once(fn, feature_map: np.ndarray, x: float, y: float, what: str, expected: float | None = None) -> None:
    try:
        result = call_student(fn, feature_map, x, y, name="bilinear_interpolate")
    except CheckFailed as failure:
        if "IndexError" in str(failure):
            raise CheckFailed(f"{failure}\nHint: {HINT_LAST_CELL}") from None
        raise
    if expected is None:
        expected = reference_bilinear_interpolate(feature_map, x, y)
    if np.ndim(result) != 0:
        raise CheckFailed(f"{what} must return one number (a float), got an array of shape {np.shape(result)}.")
    check_dtype(result, "float", what)
    check_close(float(result), expected, what, atol=1e-9, rtol=1e-9, mistakes=_bilinear_mistakes(feature_map, x, y))


def check_bilinear_interpolate(fn) -> None:
    """Visible check: the 2x2 map [[0, 10], [20, 30]] worked by hand, a point on a cell, the last row and column."""
    feature_map = np.array([[0.0, 10.0], [20.0, 30.0]])
    # (1 - 0.5)(1 - 0.25) 0 + (1 - 0.5) 0.25 10 + 0.5 (1 - 0.25) 20 + 0.5 0.25 30 = 1.25 + 7.5 + 3.75
    _check_bilinear_once(fn, feature_map, 0.25, 0.5, "bilinear_interpolate([[0, 10], [20, 30]], x=0.25, y=0.5) "
                         "(worked answer 12.5)", expected=12.5)
    _check_bilinear_once(fn, feature_map, 1.0, 0.0, "bilinear_interpolate([[0, 10], [20, 30]], x=1, y=0) "
                         "(on a cell centre: exactly its value, 10)", expected=10.0)
    _check_bilinear_once(fn, feature_map, 1.0, 1.0, "bilinear_interpolate([[0, 10], [20, 30]], x=1, y=1) (the last "
                         "row and column: there is no cell x0 + 1; its weight is 0)", expected=30.0)
    ramp = np.arange(12, dtype=float).reshape(3, 4)  # F[y, x] = 4 y + x: bilinear interpolation is exact on it
    _check_bilinear_once(fn, ramp, 2.7, 0.4, "bilinear_interpolate(F, x=2.7, y=0.4) for F[y, x] = 4 y + x (3x4): "
                         "4 * 0.4 + 2.7 = 4.3", expected=4.3)
    report_passed("bilinear_interpolate")


def hidden_bilinear_interpolate(fn) -> None:
    """Hidden check: random maps and points (inside, on cells, on the last row and column) against ``ops``."""
    fn = forbid_reference(fn, *REFERENCES["bilinear_interpolate"])
    rng = np.random.default_rng(51)
    for case in range(12):
        height, width = (int(v) for v in rng.integers(2, 12, size=2))
        feature_map = rng.normal(size=(height, width))
        x, y = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
        if case % 4 == 1:
            x, y = float(rng.integers(0, width)), float(rng.integers(0, height))  # exactly on a cell
        elif case % 4 == 2:
            x = float(width - 1)  # on the last column
        elif case % 4 == 3:
            y = float(height - 1)  # on the last row
        what = f"bilinear_interpolate on a random {height}x{width} map at x={x:.4g}, y={y:.4g}"
        _check_bilinear_once(fn, feature_map, x, y, what)
    report_passed("bilinear_interpolate (hidden)")


# -- exercise 2: roi_pool_bin_edges ----------------------------------------------------------------

HINT_NO_PLUS_ONE = ("the box is one cell too small: ROIPool counts both end cells, box_w = X2 - X1 + 1 (a box from "
                    "cell 2 to cell 9 covers 8 cells).")
HINT_PYTHON_ROUND = ("a box corner that is exactly halfway (e.g. 2.5 cells) went to the even neighbour: Python's "
                     "round() rounds halves to even (round(2.5) = 2), but ROIPool uses C's round, halves away from "
                     "zero: floor(v + 0.5) for v >= 0.")
HINT_FLOOR_BOX = "the box corners are truncated (floor / int): ROIPool ROUNDS them to the nearest cell."
HINT_BIN_ROUNDING = ("the bin edges are rounded the wrong way: bin i starts at floor(i * b) and ENDS at ceil((i + 1) * "
                     "b), so neighbouring bins may share a cell but never leave one out.")
HINT_ROWS_COLS_SWAPPED = "rows come from y (y1, y2, h) and columns from x (x1, x2, w): the two look swapped."


def _c_round(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _bin_edges_variant(box, output_size, spatial_scale, *, plus_one=True, rounding="c", bins="floor_ceil",
                       real=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """ROIPool's bin edges computed in ``real`` precision, or with one of the typical mistakes."""
    pooled_h, pooled_w = output_size
    round_corner = {"c": _c_round, "python": round, "floor": math.floor}[rounding]
    scale = real(spatial_scale)
    corners = [round_corner(float(real(v) * scale)) for v in box]
    x1, y1, x2, y2 = corners
    extra = 1 if plus_one else 0
    box_w, box_h = max(x2 - x1 + extra, 1), max(y2 - y1 + extra, 1)

    def edges(start: int, size: int, count: int) -> np.ndarray:
        b = real(size) / real(count)
        rows = []
        for i in range(count):
            if bins == "floor_ceil":
                rows.append((start + math.floor(real(i) * b), start + math.ceil(real(i + 1) * b)))
            else:  # rounded edges
                rows.append((start + _c_round(float(real(i) * b)), start + _c_round(float(real(i + 1) * b))))
        return np.array(rows, dtype=np.int64).reshape(count, 2)

    return edges(y1, box_h, pooled_h), edges(x1, box_w, pooled_w)


def reference_roi_pool_bin_edges(box, output_size, spatial_scale) -> tuple[np.ndarray, np.ndarray]:
    """The course's :func:`course_lib.ops.roi_pool_bins` (no clipping): rows ``(h, 2)``, columns ``(w, 2)``."""
    rows, cols = ops.roi_pool_bins(list(box), output_size, spatial_scale)
    return rows.numpy(), cols.numpy()


def _check_bin_edges_once(fn, box, output_size, spatial_scale, what) -> None:
    expected_rows, expected_cols = reference_roi_pool_bin_edges(box, output_size, spatial_scale)
    result = call_student(fn, np.asarray(box, dtype=float), tuple(output_size), spatial_scale, name="roi_pool_bin_edges")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{what} must return two arrays, (rows, cols); got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    rows, cols = (np.asarray(part) for part in result)
    variants = {
        HINT_NO_PLUS_ONE: _bin_edges_variant(box, output_size, spatial_scale, plus_one=False),
        HINT_PYTHON_ROUND: _bin_edges_variant(box, output_size, spatial_scale, rounding="python"),
        HINT_FLOOR_BOX: _bin_edges_variant(box, output_size, spatial_scale, rounding="floor"),
        HINT_BIN_ROUNDING: _bin_edges_variant(box, output_size, spatial_scale, bins="round"),
    }
    if rows.shape == expected_cols.shape and cols.shape == expected_rows.shape and np.array_equal(rows, expected_cols) \
            and np.array_equal(cols, expected_rows) and not np.array_equal(expected_rows, expected_cols):
        raise CheckFailed(f"{what} returned (cols, rows).\nHint: {HINT_ROWS_COLS_SWAPPED}")
    for part, got, expected, index in (("rows", rows, expected_rows, 0), ("cols", cols, expected_cols, 1)):
        label = f"the {part} of {what}"
        check_shape(got, expected.shape, label)
        check_dtype(got, "integer", label)
        mistakes = {hint: variant[index] for hint, variant in variants.items()
                    if not np.array_equal(variant[index], expected)}
        check_close(got, expected, label, atol=0, rtol=0, mistakes=mistakes)


def check_roi_pool_bin_edges(fn) -> None:
    """Visible check: the chapter's box (1.6, 2.3, 9.4, 7.8) into 3 x 3 bins, worked by hand; a stride-4 box with a tie."""
    # X1 = round(1.6) = 2, X2 = round(9.4) = 9 -> 8 cells, b_w = 8/3: columns [2, 5), [4, 8), [7, 10)
    # Y1 = round(2.3) = 2, Y2 = round(7.8) = 8 -> 7 cells, b_h = 7/3: rows [2, 5), [4, 7), [6, 9)
    _check_bin_edges_once(fn, (1.6, 2.3, 9.4, 7.8), (3, 3), 1.0,
                          "roi_pool_bin_edges((1.6, 2.3, 9.4, 7.8), (3, 3), 1.0) (worked answer: rows [[2, 5], [4, 7], "
                          "[6, 9]], cols [[2, 5], [4, 8], [7, 10]])")
    # Stride 4: x1 = 10 -> 2.5 cells, a tie that C's round takes up to 3.
    _check_bin_edges_once(fn, (10.0, 5.0, 43.0, 30.0), (2, 4), 0.25,
                          "roi_pool_bin_edges((10, 5, 43, 30), (2, 4), 0.25) (x1 * 0.25 = 2.5: C's round gives 3)")
    report_passed("roi_pool_bin_edges")


def _agrees_in_both_precisions(box, output_size, spatial_scale) -> bool:
    """True if float32 (torchvision's) and float64 arithmetic give the same edges (almost always)."""
    single = _bin_edges_variant(box, output_size, spatial_scale, real=np.float32)
    double = _bin_edges_variant(box, output_size, spatial_scale, real=np.float64)
    return all(np.array_equal(a, b) for a, b in zip(single, double))


def hidden_roi_pool_bin_edges(fn) -> None:
    """Hidden check: random boxes, scales and output sizes (ties and tiny boxes included) against ``ops``."""
    fn = forbid_reference(fn, *REFERENCES["roi_pool_bin_edges"])
    rng = np.random.default_rng(52)
    done = 0
    while done < 12:
        scale = float(rng.choice([1.0, 0.5, 0.25, 0.125]))
        output_size = tuple(int(v) for v in rng.integers(1, 8, size=2))
        x1, y1 = rng.uniform(0, 60, size=2)
        w, h = rng.uniform(0.2, 60, size=2)
        box = [x1, y1, x1 + w, y1 + h]
        if done % 3 == 1:  # corners exactly halfway between two cells: the rounding rule matters
            box = [(math.floor(v * scale) + 0.5) / scale for v in box]
            box[2], box[3] = max(box[2], box[0]), max(box[3], box[1])
        box = [float(np.float32(v)) for v in box]  # representable in float32, as the course's ops computes
        if not _agrees_in_both_precisions(box, output_size, scale):
            continue
        what = f"roi_pool_bin_edges({[round(v, 4) for v in box]}, {output_size}, {scale})"
        _check_bin_edges_once(fn, box, output_size, scale, what)
        done += 1
    report_passed("roi_pool_bin_edges (hidden)")


# -- exercise 3: roi_align_bin ---------------------------------------------------------------------

HINT_ALIGN_ROUNDED = ("it matches ROIAlign on the box rounded to whole cells: ROIAlign never rounds. Scale the box "
                      "(x1 * spatial_scale, ...) and keep the fractions.")
HINT_CORNER_SAMPLES = ("the sampling points sit on the bin's corners: they are the CENTRES of an n x n grid inside "
                       "the bin, y = y1 + i b_h + (u + 0.5) b_h / n.")
HINT_MAX = "it matches the MAXIMUM of the samples: ROIAlign (as torchvision and Detectron run it) AVERAGES them."
HINT_BIN_SWAPPED = "i is the bin's row (along y, of h bins) and j its column (along x, of w bins): they look swapped."
HINT_SCALE_DIVIDED = "the box is divided by spatial_scale instead of multiplied: feature x = image x * spatial_scale."


def reference_roi_align_bin(feature_map, box, output_size, i, j, sampling_ratio, spatial_scale=1.0) -> float:
    """Bin ``(i, j)`` of the course's :func:`course_lib.ops.roi_align` (``aligned=False``)."""
    features = torch.as_tensor(np.asarray(feature_map, dtype=np.float64))[None, None]  # (1, 1, H, W)
    rois = torch.tensor([[0.0, *[float(v) for v in box]]], dtype=torch.float64)  # (1, 5)
    pooled = ops.roi_align(features, rois, tuple(output_size), spatial_scale, int(sampling_ratio), aligned=False)
    return float(pooled[0, 0, i, j])


def _roi_align_variant(feature_map, box, output_size, i, j, n, scale, *, rounded=False, corners=False,
                       reduce="mean", divide=False) -> float:
    x1, y1, x2, y2 = (v / scale if divide else v * scale for v in box)
    if rounded:
        x1, y1, x2, y2 = (float(_c_round(v)) for v in (x1, y1, x2, y2))
    pooled_h, pooled_w = output_size
    bin_h, bin_w = max(y2 - y1, 1.0) / pooled_h, max(x2 - x1, 1.0) / pooled_w
    offset = 0.0 if corners else 0.5
    height, width = feature_map.shape
    values = []
    for u in range(n):
        for v in range(n):
            y = y1 + i * bin_h + (u + offset) * bin_h / n
            x = x1 + j * bin_w + (v + offset) * bin_w / n
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                return float("nan")  # outside the map: not a useful comparison
            values.append(_bilinear_variant(feature_map, x, y))
    return float(np.max(values) if reduce == "max" else np.mean(values))


def _roi_align_mistakes(feature_map, box, output_size, i, j, n, scale) -> dict[str, float]:
    mistakes = {
        HINT_ALIGN_ROUNDED: _roi_align_variant(feature_map, box, output_size, i, j, n, scale, rounded=True),
        HINT_CORNER_SAMPLES: _roi_align_variant(feature_map, box, output_size, i, j, n, scale, corners=True),
        HINT_MAX: _roi_align_variant(feature_map, box, output_size, i, j, n, scale, reduce="max"),
        HINT_SCALE_DIVIDED: _roi_align_variant(feature_map, box, output_size, i, j, n, scale, divide=True),
    }
    if i < output_size[1] and j < output_size[0]:
        mistakes[HINT_BIN_SWAPPED] = _roi_align_variant(feature_map, box, output_size[::-1], j, i, n, scale)
    return {hint: value for hint, value in mistakes.items() if np.isfinite(value)}


HINT_OUTSIDE = ("every sampling point of this box lies inside the map, so an index out of range means a point was "
                "misplaced: is the box multiplied by spatial_scale (feature x = image x * spatial_scale), and are the "
                "points inside their bin, y = y1 + i b_h + (u + 0.5) b_h / n?")


def _check_roi_align_once(fn, feature_map, box, output_size, i, j, n, scale, what, expected=None) -> None:
    try:
        result = call_student(fn, feature_map, np.asarray(box, dtype=float), tuple(output_size), i, j, n, scale,
                              name="roi_align_bin")
    except CheckFailed as failure:
        if "IndexError" in str(failure):
            raise CheckFailed(f"{failure}\nHint: {HINT_OUTSIDE}") from None
        raise
    if expected is None:
        expected = reference_roi_align_bin(feature_map, box, output_size, i, j, n, scale)
    if np.ndim(result) != 0:
        raise CheckFailed(f"{what} must return one number (a float), got an array of shape {np.shape(result)}.")
    check_dtype(result, "float", what)
    mistakes = _roi_align_mistakes(feature_map, box, output_size, i, j, n, scale)
    check_close(float(result), expected, what, atol=1e-9, rtol=1e-7, mistakes=mistakes)


def check_roi_align_bin(fn) -> None:
    """Visible check: a linear ramp (worked by hand) and a small random map."""
    ramp = np.add.outer(10.0 * np.arange(8), np.arange(10))  # F[y, x] = 10 y + x, (8, 10)
    # Box (1, 2, 7, 5) in 3 x 2 bins: b_h = 1, b_w = 3. Bin (1, 0) has its centre at x = 1 + 1.5, y = 2 + 1.5;
    # on a linear map the mean of the samples is the value at the centre: 10 * 3.5 + 2.5 = 37.5.
    _check_roi_align_once(fn, ramp, (1.0, 2.0, 7.0, 5.0), (3, 2), 1, 0, 2, 1.0,
                          "roi_align_bin(F, (1, 2, 7, 5), (3, 2), i=1, j=0, sampling_ratio=2, spatial_scale=1) for "
                          "F[y, x] = 10 y + x (worked answer 37.5)", expected=37.5)
    # The same box in image pixels at stride 4: (4, 8, 28, 20) * 0.25 = (1, 2, 7, 5).
    _check_roi_align_once(fn, ramp, (4.0, 8.0, 28.0, 20.0), (3, 2), 2, 1, 3, 0.25,
                          "roi_align_bin(F, (4, 8, 28, 20), (3, 2), i=2, j=1, sampling_ratio=3, spatial_scale=0.25) "
                          "for F[y, x] = 10 y + x (worked answer 10 * 4.5 + 5.5 = 50.5)", expected=50.5)
    bumpy = np.array([[0.0, 4.0, 1.0, 3.0], [2.0, 8.0, 0.0, 5.0], [7.0, 1.0, 6.0, 2.0], [3.0, 9.0, 4.0, 0.0]])
    _check_roi_align_once(fn, bumpy, (0.3, 0.6, 2.9, 2.8), (2, 2), 0, 1, 2, 1.0,
                          "roi_align_bin on a 4x4 map, box (0.3, 0.6, 2.9, 2.8), bin (0, 1), 2 x 2 samples")
    report_passed("roi_align_bin")


def hidden_roi_align_bin(fn) -> None:
    """Hidden check: random maps, boxes inside the map, scales, output sizes and sampling ratios against ``ops``."""
    fn = forbid_reference(fn, *REFERENCES["roi_align_bin"])
    rng = np.random.default_rng(53)
    for _ in range(12):
        height, width = (int(v) for v in rng.integers(5, 16, size=2))
        feature_map = rng.normal(size=(height, width))
        scale = float(rng.choice([1.0, 0.5, 0.25, 0.125]))
        # A box at least 1.2 cells wide and tall, inside [0, W - 1] x [0, H - 1] on the feature map.
        fx1, fy1 = rng.uniform(0, [width - 2.2, height - 2.2])
        fx2 = rng.uniform(fx1 + 1.2, width - 1)
        fy2 = rng.uniform(fy1 + 1.2, height - 1)
        box = [v / scale for v in (fx1, fy1, fx2, fy2)]
        output_size = tuple(int(v) for v in rng.integers(1, 6, size=2))
        i, j = int(rng.integers(output_size[0])), int(rng.integers(output_size[1]))
        n = int(rng.integers(1, 4))
        what = (f"roi_align_bin on a random {height}x{width} map, box {[round(v, 3) for v in box]}, output {output_size}, "
                f"bin ({i}, {j}), sampling_ratio={n}, spatial_scale={scale}")
        _check_roi_align_once(fn, feature_map, box, output_size, i, j, n, scale, what)
    report_passed("roi_align_bin (hidden)")


# =========================================================================== stretch: aligned, adaptive ROIAlign
def reference_roi_align_bin_aligned(feature_map, box, output_size, i, j, spatial_scale=1.0) -> float:
    """Bin ``(i, j)`` of :func:`course_lib.ops.roi_align` with ``aligned=True`` and adaptive sampling."""
    features = torch.as_tensor(np.asarray(feature_map, dtype=np.float64))[None, None]  # (1, 1, H, W)
    rois = torch.tensor([[0.0, *[float(v) for v in box]]], dtype=torch.float64)  # (1, 5)
    return float(ops.roi_align(features, rois, tuple(output_size), spatial_scale, 0, aligned=True)[0, 0, i, j])


def _aligned_mistakes(feature_map, box, output_size, i, j, spatial_scale) -> dict[str, float]:
    features = torch.as_tensor(np.asarray(feature_map, dtype=np.float64))[None, None]
    rois = torch.tensor([[0.0, *[float(v) for v in box]]], dtype=torch.float64)

    def variant(sampling_ratio, aligned):
        return float(ops.roi_align(features, rois, tuple(output_size), spatial_scale, sampling_ratio, aligned)[0, 0, i, j])

    return {"aligned=True shifts the scaled box by half a cell: x1 = x1 * spatial_scale - 0.5 (and y1, x2, y2).":
            variant(0, False),
            "adaptive sampling: ceil(b_h) x ceil(b_w) points per bin, not a fixed 2 x 2.": variant(2, True)}


def _check_aligned_once(fn, feature_map, box, output_size, i, j, scale, what) -> None:
    result = call_student(fn, feature_map, np.asarray(box, dtype=float), tuple(output_size), i, j, scale,
                          name="roi_align_bin_aligned")
    check_close(float(result), reference_roi_align_bin_aligned(feature_map, box, output_size, i, j, scale), what,
                mistakes=_aligned_mistakes(feature_map, box, output_size, i, j, scale))


def check_roi_align_bin_aligned(fn) -> None:
    """Visible check: a box of 2.6 x 5.4 cells in 2 x 2 bins of a 9 x 9 random map (3 x 2 samples per bin)."""
    rng = np.random.default_rng(51)
    feature_map = rng.integers(0, 10, (9, 9)).astype(float)
    _check_aligned_once(fn, feature_map, (1.2, 2.1, 3.8, 7.5), (2, 2), 1, 0, 1.0,
                        "roi_align_bin_aligned(F, (1.2, 2.1, 3.8, 7.5), (2, 2), i=1, j=0, spatial_scale=1)")
    _check_aligned_once(fn, feature_map, (8.0, 4.0, 30.0, 28.0), (3, 3), 2, 2, 0.25,
                        "roi_align_bin_aligned(F, (8, 4, 30, 28), (3, 3), i=2, j=2, spatial_scale=0.25)")
    report_passed("roi_align_bin_aligned")


def hidden_roi_align_bin_aligned(fn) -> None:
    """Hidden check: random maps, boxes inside them, scales and bins against the reference."""
    fn = forbid_reference(fn, *REFERENCES["roi_align_bin_aligned"])
    rng = np.random.default_rng(505)
    for _ in range(8):
        height, width = (int(v) for v in rng.integers(6, 16, 2))
        feature_map = rng.normal(0, 1, (height, width))
        scale = float(rng.choice([1.0, 0.5, 0.25]))
        x1, y1 = rng.uniform(1, [width / 2, height / 2])
        x2, y2 = rng.uniform([x1 + 1, y1 + 1], [width - 1, height - 1])
        box = tuple(v / scale for v in (x1, y1, x2, y2))
        output_size = tuple(int(v) for v in rng.integers(1, 5, 2))
        i, j = int(rng.integers(0, output_size[0])), int(rng.integers(0, output_size[1]))
        _check_aligned_once(fn, feature_map, box, output_size, i, j, scale,
                            f"roi_align_bin_aligned on a random {height}x{width} map, bin ({i}, {j}) of {output_size}")
    report_passed("roi_align_bin_aligned (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "bilinear_interpolate": (ops.bilinear_sample, ops._bilinear_gather, ops._bilinear_point),
    "roi_pool_bin_edges": (ops.roi_pool_bins, ops._roi_pool_bin_edges, ops.roi_pool, ops.roi_pool_loop),
    "roi_align_bin": (ops.roi_align, ops.roi_align_loop, ops.roi_align_sampling_points, ops._roi_align_geometry,
        ops._sampling_coordinates),
    "roi_align_bin_aligned": (ops.roi_align, ops.roi_align_loop, ops.roi_align_sampling_points,
        ops._roi_align_geometry, ops._sampling_coordinates),
}
