"""The checks of chapter 05 (ROIPool vs ROIAlign): right answers pass, typical mistakes fail with the right hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import ops
from course_lib.grading import ch05_roi_align as checks
from checking import assert_check_fails


# -- answers written independently of course_lib (as a student would) -------------------------------

def bilinear_interpolate(feature_map, x, y, *, mode="right"):
    height, width = feature_map.shape
    if mode == "nearest":
        return float(feature_map[min(int(y + 0.5), height - 1), min(int(x + 0.5), width - 1)])
    if mode == "swap_map":
        feature_map, (height, width) = feature_map.T, feature_map.T.shape
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    if mode == "no_clamp":
        x1, y1 = x0 + 1, y0 + 1
    else:
        x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    lx, ly = x - x0, y - y0
    if mode == "reversed":
        lx, ly = 1 - lx, 1 - ly
    value = ((1 - ly) * (1 - lx) * feature_map[y0, x0] + (1 - ly) * lx * feature_map[y0, x1]
             + ly * (1 - lx) * feature_map[y1, x0] + ly * lx * feature_map[y1, x1])
    return int(value) if mode == "integer" else float(value)


def roi_pool_bin_edges(box, output_size, spatial_scale, *, plus_one=True, rounding="c", bins="floor_ceil",
                       swap=False, as_float=False):
    corner = {"c": lambda v: math.floor(v + 0.5), "python": round, "floor": math.floor}[rounding]
    x1, y1, x2, y2 = (corner(v * spatial_scale) for v in box)
    extra = 1 if plus_one else 0
    box_w, box_h = max(x2 - x1 + extra, 1), max(y2 - y1 + extra, 1)
    h, w = output_size

    def edges(start, size, count):
        b = size / count
        if bins == "floor_ceil":
            return np.array([[start + math.floor(i * b), start + math.ceil((i + 1) * b)] for i in range(count)])
        return np.array([[start + math.floor(i * b + 0.5), start + math.floor((i + 1) * b + 0.5)] for i in range(count)])

    rows, cols = edges(y1, box_h, h), edges(x1, box_w, w)
    if as_float:
        rows, cols = rows.astype(float), cols.astype(float)
    return (cols, rows) if swap else (rows, cols)


def roi_align_bin(feature_map, box, output_size, i, j, sampling_ratio, spatial_scale=1.0, *, rounded=False,
                  corners=False, reduce="mean", swap=False, divide=False):
    x1, y1, x2, y2 = (v / spatial_scale if divide else v * spatial_scale for v in box)
    if rounded:
        x1, y1, x2, y2 = (math.floor(v + 0.5) for v in (x1, y1, x2, y2))
    h, w = output_size
    if swap:
        i, j, h, w = j, i, w, h
    b_h, b_w = (y2 - y1) / h, (x2 - x1) / w
    n = sampling_ratio
    offset = 0.0 if corners else 0.5
    values = [bilinear_interpolate(feature_map, x1 + j * b_w + (v + offset) * b_w / n, y1 + i * b_h + (u + offset) * b_h / n)
              for u in range(n) for v in range(n)]
    return float(max(values)) if reduce == "max" else float(sum(values) / len(values))


# -- the right answers pass -------------------------------------------------------------------------

def test_right_answers_pass(capsys):
    for check in (checks.check_bilinear_interpolate, checks.hidden_bilinear_interpolate):
        check(bilinear_interpolate)
    for check in (checks.check_roi_pool_bin_edges, checks.hidden_roi_pool_bin_edges):
        check(roi_pool_bin_edges)
    for check in (checks.check_roi_align_bin, checks.hidden_roi_align_bin):
        check(roi_align_bin)
    assert capsys.readouterr().out.count("all checks passed") == 6


def test_the_hand_worked_answers_hold():
    # Independent of course_lib: the numbers of the visible checks.
    assert bilinear_interpolate(np.array([[0.0, 10.0], [20.0, 30.0]]), 0.25, 0.5) == pytest.approx(12.5)
    rows, cols = roi_pool_bin_edges((1.6, 2.3, 9.4, 7.8), (3, 3), 1.0)
    assert rows.tolist() == [[2, 5], [4, 7], [6, 9]] and cols.tolist() == [[2, 5], [4, 8], [7, 10]]
    rows, cols = roi_pool_bin_edges((10.0, 5.0, 43.0, 30.0), (2, 4), 0.25)
    assert rows.tolist() == [[1, 5], [5, 9]] and cols.tolist() == [[3, 6], [5, 8], [7, 10], [9, 12]]
    ramp = np.add.outer(10.0 * np.arange(8), np.arange(10))
    assert roi_align_bin(ramp, (1.0, 2.0, 7.0, 5.0), (3, 2), 1, 0, 2) == pytest.approx(37.5)
    assert roi_align_bin(ramp, (4.0, 8.0, 28.0, 20.0), (3, 2), 2, 1, 3, 0.25) == pytest.approx(50.5)


def test_references_are_the_course_ops_on_one_map():
    # The check module's references are ops' functions; ops is tested against torchvision in test_ops.py.
    rng = np.random.default_rng(0)
    feature_map = rng.normal(size=(9, 11))
    full = ops.roi_align(torch.from_numpy(feature_map)[None, None], torch.tensor([[0.0, 1.2, 2.1, 8.3, 7.7]],
                         dtype=torch.float64), (3, 4), 1.0, 2)
    assert checks.reference_roi_align_bin(feature_map, (1.2, 2.1, 8.3, 7.7), (3, 4), 2, 3, 2) == pytest.approx(
        float(full[0, 0, 2, 3]))
    assert checks.reference_roi_align_bin(feature_map, (1.2, 2.1, 8.3, 7.7), (3, 4), 2, 3, 2) == pytest.approx(
        roi_align_bin(feature_map, (1.2, 2.1, 8.3, 7.7), (3, 4), 2, 3, 2))


# -- typical mistakes fail with their hint -----------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_bilinear_interpolate, checks.hidden_bilinear_interpolate])
@pytest.mark.parametrize(
    "mode, hint",
    [("nearest", "NEAREST cell"), ("reversed", "wrong way round"), ("swap_map", "feature_map[x, y]"),
     ("integer", "floating-point")],
)
def test_bilinear_mistakes(check, mode, hint):
    assert_check_fails(check, lambda f, x, y: bilinear_interpolate(f, x, y, mode=mode), hint)


def test_bilinear_without_clamping_crashes_on_the_last_column():
    assert_check_fails(checks.check_bilinear_interpolate, lambda f, x, y: bilinear_interpolate(f, x, y, mode="no_clamp"),
                       "min(x0 + 1, W - 1)")


@pytest.mark.parametrize("check", [checks.check_roi_pool_bin_edges, checks.hidden_roi_pool_bin_edges])
@pytest.mark.parametrize(
    "options, hint",
    [
        (dict(plus_one=False), "both end cells"),
        (dict(rounding="python"), "halves to even"),
        (dict(rounding="floor"), "truncated"),
        (dict(bins="round"), "ENDS at ceil"),
        (dict(swap=True), "(cols, rows)"),
        (dict(as_float=True), "integers"),
    ],
)
def test_roi_pool_bin_edges_mistakes(check, options, hint):
    assert_check_fails(check, lambda box, size, scale: roi_pool_bin_edges(box, size, scale, **options), hint)


@pytest.mark.parametrize("check", [checks.check_roi_align_bin, checks.hidden_roi_align_bin])
@pytest.mark.parametrize(
    "options, hint",
    [
        (dict(rounded=True), "never rounds"),
        (dict(corners=True), "CENTRES"),
        (dict(reduce="max"), "AVERAGES"),
        (dict(divide=True), "multiplied by spatial_scale"),
    ],
)
def test_roi_align_bin_mistakes(check, options, hint):
    assert_check_fails(check, lambda *args: roi_align_bin(*args, **options), hint)


def test_roi_align_bin_with_swapped_bin_indices_is_explained():
    assert_check_fails(checks.hidden_roi_align_bin, lambda *args: roi_align_bin(*args, swap=True), "they look swapped")


def test_stubs_and_reference_calls_fail():
    def stub(*args):
        raise NotImplementedError()

    for check in (checks.check_bilinear_interpolate, checks.check_roi_pool_bin_edges, checks.check_roi_align_bin):
        assert_check_fails(check, stub, "not written yet")

    def bilinear_via_ops(feature_map, x, y):
        features = torch.from_numpy(np.asarray(feature_map, dtype=float))[None, None]
        return float(ops.bilinear_sample(features, torch.tensor([[[x, y]]], dtype=torch.float64))[0, 0, 0])

    def bins_via_ops(box, size, scale):
        rows, cols = ops.roi_pool_bins(list(box), size, scale)
        return rows.numpy(), cols.numpy()

    def align_via_ops(feature_map, box, size, i, j, n, scale=1.0):
        features = torch.from_numpy(np.asarray(feature_map, dtype=float))[None, None]
        rois = torch.tensor([[0.0, *box]], dtype=torch.float64)
        return float(ops.roi_align(features, rois, size, scale, n)[0, 0, i, j])

    assert_check_fails(checks.hidden_bilinear_interpolate, bilinear_via_ops, "reference implementation")
    assert_check_fails(checks.hidden_roi_pool_bin_edges, bins_via_ops, "reference implementation")
    assert_check_fails(checks.hidden_roi_align_bin, align_via_ops, "reference implementation")


def test_roi_pool_bin_edges_returning_one_array_is_explained():
    assert_check_fails(checks.check_roi_pool_bin_edges, lambda box, size, scale: roi_pool_bin_edges(box, size, scale)[0],
                       "(rows, cols)")
