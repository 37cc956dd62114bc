"""The checks of chapter 02 (heatmaps): right answers pass, typical mistakes fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import heatmaps
from course_lib.grading import ch02_heatmaps as checks
from checking import SANDBOX, assert_check_fails

SOURCE_NAME = "02_heatmaps.py"


# -- answers written independently of course_lib (as a student would) -------------------------------

def gaussian_target(keypoint, visibility, heatmap_size, sigma, *, rounded=True, truncated=True, use_visibility=True,
                    swap=False, two=True, int_map=False):
    height, width = heatmap_size
    x, y = (keypoint[1], keypoint[0]) if swap else (keypoint[0], keypoint[1])
    mu_x, mu_y = (int(x + 0.5), int(y + 0.5)) if rounded else (x, y)
    radius = 3 * sigma
    on_map = all(int(mu - radius) < size and int(mu + radius + 1) >= 0 for mu, size in ((mu_x, width), (mu_y, height)))
    if (use_visibility and visibility <= 0) or not on_map:
        return np.zeros((height, width)), 0.0
    u, v = np.arange(width)[None, :], np.arange(height)[:, None]
    heatmap = np.exp(-((u - mu_x) ** 2 + (v - mu_y) ** 2) / ((2 if two else 1) * sigma**2))
    if truncated:
        heatmap = heatmap * (np.abs(u - mu_x) <= radius) * (np.abs(v - mu_y) <= radius)
    if int_map:
        heatmap = (heatmap > 0.5).astype(int)
    return heatmap, 1.0


def decode_argmax(maps, *, swap=False, wrong_unravel=False, integer=False):
    k, height, width = maps.shape
    index = maps.reshape(k, -1).argmax(axis=1)
    divisor = height if wrong_unravel else width
    columns, rows = index % divisor, index // divisor
    points = np.stack([rows, columns] if swap else [columns, rows], axis=1)
    return (points if integer else points.astype(float)), maps.reshape(k, -1).max(axis=1)


def quarter_offset(maps, keypoints, *, step=0.25, clamp_border=False, per_axis=False):
    height, width = maps.shape[-2:]
    refined = np.array(keypoints, dtype=float)
    for k, (u, v) in enumerate(np.asarray(keypoints).astype(int)):
        inside = 1 < u < width - 1 and 1 < v < height - 1  # HRNet's rule: both axes at once
        if clamp_border or (0 < u < width - 1 if per_axis else inside):
            right, left = maps[k, v, min(u + 1, width - 1)], maps[k, v, max(u - 1, 0)]
            refined[k, 0] += step * np.sign(right - left)
        if clamp_border or (0 < v < height - 1 if per_axis else inside):
            below, above = maps[k, min(v + 1, height - 1), u], maps[k, max(v - 1, 0), u]
            refined[k, 1] += step * np.sign(below - above)
    return refined


def soft_argmax(maps, temperature, *, use_temperature=True, stable=True, swap=False):
    logits = maps / (temperature if use_temperature else 1.0)
    weights = np.exp(logits - (logits.max(axis=(1, 2), keepdims=True) if stable else 0))
    weights = weights / weights.sum(axis=(1, 2), keepdims=True)
    x = (weights.sum(axis=1) * np.arange(maps.shape[2])).sum(axis=1)
    y = (weights.sum(axis=2) * np.arange(maps.shape[1])).sum(axis=1)
    return np.stack([y, x] if swap else [x, y], axis=1)


# -- the right answers pass -------------------------------------------------------------------------

def test_right_answers_pass(capsys):
    for check in (checks.check_gaussian_target, checks.hidden_gaussian_target):
        check(gaussian_target)
    for check in (checks.check_decode_argmax, checks.hidden_decode_argmax):
        check(decode_argmax)
    for check in (checks.check_quarter_offset, checks.hidden_quarter_offset):
        check(quarter_offset)
    for check in (checks.check_soft_argmax, checks.hidden_soft_argmax):
        check(soft_argmax)
    assert capsys.readouterr().out.count("all checks passed") == 8


def test_the_visible_checks_hold_hand_worked_answers():
    # independent of course_lib: the worked numbers of the visible checks
    heatmap, weight = gaussian_target(np.array([3.2, 1.7]), 2, (5, 9), 1.0)
    assert heatmap[2, 3] == 1.0 and weight == 1.0 and heatmap[2, 7] == 0.0 and heatmap[2, 6] > 0 and np.isclose(heatmap[1, 3], np.exp(-0.5))
    maps = np.zeros((1, 5, 5))
    maps[0, 2, 1:4] = [0.2, 1.0, 0.6]
    maps[0, 1, 2], maps[0, 3, 2] = 0.7, 0.3
    assert quarter_offset(maps, np.array([[2.0, 2.0]])).tolist() == [[2.25, 1.75]]


# -- typical mistakes fail with their hint -----------------------------------------------------------


@pytest.mark.parametrize("check", [checks.check_gaussian_target, checks.hidden_gaussian_target])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(rounded=False), "rounds the centre"),
        (dict(truncated=False), "not cut off"),
        (dict(use_visibility=False), "not labelled"),
        (dict(swap=True), "(y, x) instead of (x, y)"),
        (dict(two=False), "with the 2"),
        (dict(int_map=True), "floating-point"),
    ],
)
def test_gaussian_target_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: gaussian_target(*args, **mistake), hint)


def test_gaussian_target_shape_and_return_errors():
    assert_check_fails(checks.check_gaussian_target, lambda k, v, size, s: gaussian_target(k, v, size, s)[0],
                       "(heatmap, weight)")
    assert_check_fails(checks.check_gaussian_target, lambda k, v, size, s: gaussian_target(k, v, size[::-1], s),
                       "shape (5, 9)")


@pytest.mark.parametrize("check", [checks.check_decode_argmax, checks.hidden_decode_argmax])
@pytest.mark.parametrize(
    "mistake, hint",
    [(dict(swap=True), "x and y look swapped"), (dict(integer=True), "floating-point")],
)
def test_decode_argmax_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda maps: decode_argmax(maps, **mistake), hint)


def test_decode_argmax_wrong_unravel_gets_its_hint():
    assert_check_fails(checks.hidden_decode_argmax, lambda maps: decode_argmax(maps, wrong_unravel=True), "index // W")


@pytest.mark.parametrize("check", [checks.check_quarter_offset, checks.hidden_quarter_offset])
@pytest.mark.parametrize(
    "mistake, hint",
    [(dict(step=0.5), "not 0.5"), (dict(step=-0.25), "LOWER neighbour")],
)
def test_quarter_offset_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda maps, points: quarter_offset(maps, points, **mistake), hint)


def test_quarter_offset_with_a_per_axis_border_rule_gets_its_hint():
    assert_check_fails(checks.hidden_quarter_offset, lambda maps, points: quarter_offset(maps, points, per_axis=True),
                       "both at once")


def test_quarter_offset_stepping_on_the_border_fails():
    assert_check_fails(checks.check_quarter_offset,
                       lambda maps, points: quarter_offset(maps, points, clamp_border=True), "returned the wrong values")


@pytest.mark.parametrize(
    "mistake, hint",
    [(dict(use_temperature=False), "temperature is missing"), (dict(swap=True), "x and y look swapped")],
)
def test_soft_argmax_mistakes(mistake, hint):
    assert_check_fails(checks.check_soft_argmax, lambda maps, t: soft_argmax(maps, t, **mistake), hint)


def test_soft_argmax_overflow_gets_the_stability_hint():
    with np.errstate(over="ignore", invalid="ignore"):
        assert_check_fails(checks.hidden_soft_argmax, lambda maps, t: soft_argmax(maps, t, stable=False), "Subtract the maximum")


def test_stubs_and_reference_calls_fail():
    def stub(*args):
        raise NotImplementedError()

    for check in (checks.check_gaussian_target, checks.check_decode_argmax, checks.check_quarter_offset,
                  checks.check_soft_argmax):
        assert_check_fails(check, stub, "not written yet")

    def target_via_reference(keypoint, visibility, size, sigma):
        maps, weights = heatmaps.gaussian_heatmaps(np.asarray(keypoint)[None], np.array([visibility]), size, sigma)
        return maps[0], float(weights[0])

    assert_check_fails(checks.hidden_gaussian_target, target_via_reference, "reference implementation")
    assert_check_fails(checks.hidden_decode_argmax, heatmaps.decode_argmax, "course's own")
    assert_check_fails(checks.hidden_decode_argmax, lambda maps: heatmaps.decode_argmax(maps), "reference implementation")
    assert_check_fails(checks.hidden_quarter_offset, lambda maps, points: heatmaps.decode_quarter_offset(maps)[0],
                       "reference implementation")
    assert_check_fails(checks.hidden_soft_argmax, lambda maps, t: heatmaps.soft_argmax(maps, t)[0], "reference implementation")


def test_soft_argmax_returning_a_pair_is_explained():
    assert_check_fails(checks.check_soft_argmax, lambda maps, t: (soft_argmax(maps, t), maps.max(axis=(1, 2))),
                       "only the keypoints")


# -- the solved notebook gets full marks without its experiment cells ---------------------------------

@pytest.mark.notebook
def test_solved_notebook_gets_full_marks_without_experiments(tmp_path, default_data):
    from pathlib import Path

    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = Path(__file__).resolve().parents[1] / "solutions" / SOURCE_NAME
    path = tmp_path / (Path(SOURCE_NAME).stem + ".ipynb")
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved", sandbox=SANDBOX, timeout_notebook=600)
    assert result.points == result.max_points and not result.flagged, [(g.exercise, g.message) for g in result.exercises]


# -- the stretch exercise: DARK's Taylor step --------------------------------------------------------

def taylor_step(log_map):
    """Written from the chapter's formula, with a loop-free Hessian."""
    P = np.asarray(log_map, dtype=float)
    v, u = np.unravel_index(np.argmax(P), P.shape)
    if not (2 <= u < P.shape[1] - 2 and 2 <= v < P.shape[0] - 2):
        return np.array([u, v], dtype=float)
    g = 0.5 * np.array([P[v, u + 1] - P[v, u - 1], P[v + 1, u] - P[v - 1, u]])
    dxy = 0.25 * (P[v + 1, u + 1] - P[v - 1, u + 1] - P[v + 1, u - 1] + P[v - 1, u - 1])
    h = np.array([[0.25 * (P[v, u + 2] - 2 * P[v, u] + P[v, u - 2]), dxy],
                  [dxy, 0.25 * (P[v + 2, u] - 2 * P[v, u] + P[v - 2, u])]])
    return np.array([u, v], dtype=float) - np.linalg.inv(h) @ g


def test_the_taylor_step_passes_and_its_mistakes_are_named(capsys):
    checks.check_taylor_step(taylor_step)
    checks.hidden_taylor_step(taylor_step)
    assert capsys.readouterr().out.count("all checks passed") == 2
    assert_check_fails(checks.check_taylor_step, lambda m: taylor_step(m) * 0 + np.array(
        np.unravel_index(np.argmax(m), np.shape(m))[::-1], dtype=float), "returned the wrong values")

    def wrong_sign(log_map):
        peak = np.array(np.unravel_index(np.argmax(log_map), np.shape(log_map))[::-1], dtype=float)
        return 2 * peak - taylor_step(log_map)

    assert_check_fails(checks.check_taylor_step, wrong_sign, "wrong way")
    assert_check_fails(checks.hidden_taylor_step, lambda m: checks.reference_taylor_step(m), "reference implementation")


def test_the_course_dark_decoder_is_the_taylor_step_on_the_blurred_log_map():
    maps, _ = heatmaps.gaussian_heatmaps(np.array([[10.3, 7.6]]), np.array([2]), (16, 24), sigma=2.0, unbiased=True)
    found, _ = heatmaps.decode_dark(maps, sigma=2.0)
    blurred = heatmaps.blur_heatmaps(maps, sigma=2.0)
    step = checks.reference_taylor_step(np.log(np.maximum(np.asarray(blurred)[0], 1e-10)))
    np.testing.assert_allclose(np.asarray(found)[0], step, atol=1e-6)
