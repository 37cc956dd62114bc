"""The checks of chapter 06 (SimpleBaseline): right answers pass, typical mistakes fail with the right hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import geometry, heatmaps, losses
from course_lib.grading import ch06_simple_baseline as checks
from course_lib.keypoints import COCO_FLIP_PAIRS
from checking import SANDBOX, assert_check_fails

# -- answers written independently of course_lib (as a student would), with switches for the mistakes --


def box_to_center_scale(box, aspect_ratio, padding, *, pad=True, grow=True, corner=False, inverted=False,
                        as_int=False):
    x, y, w, h = (float(v) for v in box)
    ratio = 1 / aspect_ratio if inverted else aspect_ratio
    center = np.array([x, y]) if corner else np.array([x + w / 2, y + h / 2])
    if grow:
        if w < h * ratio:
            w = h * ratio
        else:
            h = w / ratio
    else:
        if w > h * ratio:
            w = h * ratio
        else:
            h = w / ratio
    scale = np.array([w, h]) * (padding if pad else 1.0)
    return (center.astype(int), scale.astype(int)) if as_int else (center, scale)


def heatmap_to_image(keypoints, center, scale, heatmap_size, *, middle="msra", swap_size=False, one_centre=False):
    height, width = heatmap_size
    if swap_size:
        height, width = width, height
    keypoints = np.asarray(keypoints, dtype=float)
    center, scale = np.asarray(center, dtype=float), np.asarray(scale, dtype=float)
    if one_centre:
        center, scale = center[:1], scale[:1]
    offset = {"msra": (width / 2, height / 2), "udp": ((width - 1) / 2, (height - 1) / 2), "corner": (0.0, 0.0)}[middle]
    out = np.empty_like(keypoints)
    out[..., 0] = center[:, None, 0] + (keypoints[..., 0] - offset[0]) * scale[:, None, 0] / width
    out[..., 1] = center[:, None, 1] + (keypoints[..., 1] - offset[1]) * scale[:, None, 1] / height
    return out


def flip_back(maps, flip_pairs, shift, *, swap=True, how="right"):
    maps = np.asarray(maps)
    order = list(range(maps.shape[1]))
    if swap:
        for left, right in flip_pairs:
            order[left], order[right] = right, left
    if how == "first" and shift:
        maps = np.concatenate([maps[..., :1], maps[..., :-1]], axis=-1)
    out = maps[:, order, :, ::-1].copy()
    if shift and how != "first":
        if how == "right":
            out[..., 1:] = out[..., :-1].copy()
        elif how == "left":
            out[..., :-1] = out[..., 1:].copy()
        elif how == "roll":
            out = np.roll(out, 1, axis=-1)
        elif how == "zero":
            out[..., 1:] = out[..., :-1].copy()
            out[..., 0] = 0
    return out


def ohkm_loss(pred, target, weight, topk, *, half=True, use_weight=True, per_person=True, mine=True, largest=True,
              reduce="mean", detach=False):
    w = weight[:, :, None, None] if use_weight else 1.0
    per_joint = ((pred - target) * w) ** 2
    per_joint = per_joint.mean(dim=(2, 3)) * (0.5 if half else 1.0)  # (N, K)
    if not mine:
        return per_joint.mean()
    if per_person:
        hardest = torch.topk(per_joint, topk, dim=1, largest=largest).values
    else:
        hardest = torch.topk(per_joint.reshape(-1), topk, largest=largest).values
    loss = hardest.mean() if reduce == "mean" else hardest.sum()
    return loss.detach() if detach else loss


# -- the right answers pass -------------------------------------------------------------------------------

def test_right_answers_pass(capsys):
    for check in (checks.check_box_to_center_scale, checks.hidden_box_to_center_scale):
        check(box_to_center_scale)
    for check in (checks.check_heatmap_to_image, checks.hidden_heatmap_to_image):
        check(heatmap_to_image)
    for check in (checks.check_flip_back, checks.hidden_flip_back):
        check(flip_back)
    for check in (checks.check_ohkm_loss, checks.hidden_ohkm_loss):
        check(ohkm_loss)
    assert capsys.readouterr().out.count("all checks passed") == 8


def test_the_visible_checks_hold_hand_worked_answers():
    # independent of course_lib: the worked numbers of the visible checks
    center, scale = box_to_center_scale([10, 20, 30, 80], 0.75, 1.25)
    assert center.tolist() == [25.0, 60.0] and scale.tolist() == [75.0, 100.0]
    _, scale = box_to_center_scale([0, 0, 100, 50], 0.75, 1.25)
    np.testing.assert_allclose(scale, [125.0, 500 / 3])
    points = heatmap_to_image([[[8, 12], [0, 0], [15, 23], [2.5, 6.25]]], [[50, 60]], [[64, 96]], (24, 16))
    np.testing.assert_allclose(points, [[[50, 60], [18, 12], [78, 104], [28, 37]]])
    maps = np.array([[[[1.0, 2, 3, 4]], [[10.0, 20, 30, 40]], [[5.0, 6, 7, 8]]]])
    assert flip_back(maps, ((1, 2),), True)[0, :, 0].tolist() == [[4, 4, 3, 2], [8, 8, 7, 6], [40, 40, 30, 20]]
    pred = torch.tensor([[1.0, 2.0, 3.0], [3.0, 0.0, 1.0]])[:, :, None, None]
    loss = ohkm_loss(pred, torch.zeros_like(pred), torch.tensor([[1.0, 1, 1], [0, 1, 1]]), 2)
    assert float(loss) == pytest.approx(1.75)


def test_the_course_references_agree_with_the_independent_answers():
    rng = np.random.default_rng(0)
    for _ in range(10):
        box = np.concatenate([rng.uniform(0, 100, 2), rng.uniform(1, 80, 2)])
        for got, want in zip(geometry.box_to_center_scale(box, 0.75, 1.25), box_to_center_scale(box, 0.75, 1.25)):
            np.testing.assert_allclose(got, want)
        keypoints = rng.uniform(0, 20, (3, 5, 2))
        center, scale = rng.uniform(0, 100, (3, 2)), rng.uniform(10, 90, (3, 2))
        np.testing.assert_allclose(geometry.crop_to_image(keypoints, center, scale, np.zeros(3), (24, 16)),
                                   heatmap_to_image(keypoints, center, scale, (24, 16)), atol=1e-9)
        maps = rng.random((2, 17, 6, 5))
        np.testing.assert_array_equal(heatmaps.flip_heatmaps(maps), flip_back(maps, COCO_FLIP_PAIRS, True))
        pred, target = torch.rand(4, 17, 6, 5), torch.rand(4, 17, 6, 5)
        weight = (torch.rand(4, 17) > 0.2).float()
        expected = float(ohkm_loss(pred, target, weight, 8))
        assert float(losses.ohkm_mse(pred, target, weight, 8)) == pytest.approx(expected)


# -- typical mistakes fail with their hint -----------------------------------------------------------------


@pytest.mark.parametrize("check", [checks.check_box_to_center_scale, checks.hidden_box_to_center_scale])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(pad=False), "multiply both sides by `padding`"),
        (dict(grow=False), "only ever GROWS"),
        (dict(corner=True), "not its top-left corner"),
        (dict(inverted=True), "not H / W"),
        (dict(as_int=True), "floating-point"),
    ],
)
def test_box_to_center_scale_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: box_to_center_scale(*args, **mistake), hint)


def test_box_to_center_scale_must_return_a_pair():
    assert_check_fails(checks.check_box_to_center_scale, lambda *args: np.concatenate(box_to_center_scale(*args)),
                       "(center, scale)")


@pytest.mark.parametrize("check", [checks.check_heatmap_to_image, checks.hidden_heatmap_to_image])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(middle="udp"), "off by half a heatmap pixel"),
        (dict(middle="corner"), "subtract (W / 2, H / 2)"),
        (dict(swap_size=True), "x goes with the width"),
    ],
)
def test_heatmap_to_image_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: heatmap_to_image(*args, **mistake), hint)


def test_heatmap_to_image_with_one_crop_for_everyone_fails_the_hidden_check():
    assert_check_fails(checks.hidden_heatmap_to_image, lambda *args: heatmap_to_image(*args, one_centre=True),
                       "every person has their own crop")


def test_heatmap_to_image_swapped_xy_is_explained():
    assert_check_fails(checks.check_heatmap_to_image, lambda *args: heatmap_to_image(*args)[..., ::-1], "x and y look swapped")


@pytest.mark.parametrize("check", [checks.check_flip_back, checks.hidden_flip_back])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(swap=False), "were not swapped"),
        (dict(how="left"), "wrong way"),
        (dict(how="roll"), "wrapped around"),
        (dict(how="zero"), "column 0 was zeroed"),
        (dict(how="first"), "before the mirror"),
    ],
)
def test_flip_back_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: flip_back(*args, **mistake), hint)


def test_flip_back_ignoring_shift_flag_is_explained():
    assert_check_fails(checks.check_flip_back, lambda maps, pairs, shift: flip_back(maps, pairs, True), "with shift=False")
    assert_check_fails(checks.check_flip_back, lambda maps, pairs, shift: flip_back(maps, pairs, False), "with shift=True")


def test_flip_back_returning_a_tensor_is_explained():
    assert_check_fails(checks.check_flip_back, lambda *args: torch.from_numpy(flip_back(*args)), "numpy.ndarray")


@pytest.mark.parametrize("check", [checks.check_ohkm_loss, checks.hidden_ohkm_loss])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(mine=False), "every joint was averaged"),
        (dict(per_person=False), "over the whole batch"),
        (dict(half=False), "1/2 (w (P - G))^2"),
        (dict(use_weight=False), "weight 0 still counts"),
        (dict(largest=False), "easiest joints"),
        (dict(reduce="sum"), "not summed"),
    ],
)
def test_ohkm_loss_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: ohkm_loss(*args, **mistake), hint)


def test_ohkm_loss_must_stay_differentiable():
    assert_check_fails(checks.hidden_ohkm_loss, lambda *args: ohkm_loss(*args, detach=True), "differentiable")


def test_ohkm_loss_must_be_a_scalar():
    assert_check_fails(checks.hidden_ohkm_loss, lambda p, t, w, k: torch.topk(0.5 * ((p - t) * w[..., None, None]).pow(2)
                                                                                 .mean(dim=(2, 3)), k, dim=1).values.mean(1),
                       "scalar")


def test_stubs_and_reference_calls_fail():
    def stub(*args):
        raise NotImplementedError()

    for check in (checks.check_box_to_center_scale, checks.check_heatmap_to_image, checks.check_flip_back,
                  checks.check_ohkm_loss):
        assert_check_fails(check, stub, "not written yet")

    assert_check_fails(checks.hidden_box_to_center_scale, geometry.box_to_center_scale, "course's own")
    assert_check_fails(checks.hidden_box_to_center_scale, lambda *args: geometry.box_to_center_scale(*args),
                       "reference implementation")
    assert_check_fails(checks.hidden_heatmap_to_image,
                       lambda k, c, s, size: geometry.crop_to_image(k, c, s, np.zeros(len(c)), size),
                       "reference implementation")

    def via_matrix(k, c, s, size):
        matrices = geometry.get_affine_transform(c, s, np.zeros(len(c)), size, inverse=True)
        return np.einsum("nij,nkj->nki", matrices[..., :2], k) + matrices[:, None, :, 2]

    assert_check_fails(checks.hidden_heatmap_to_image, via_matrix, "reference implementation")
    assert_check_fails(checks.hidden_flip_back, lambda m, p, s: heatmaps.flip_heatmaps(m, p, shift=s),
                       "reference implementation")
    assert_check_fails(checks.hidden_ohkm_loss, lambda p, t, w, k: losses.ohkm_mse(p, t, w, k), "reference implementation")
    def via_batch_loss(p, t, w, k):
        return losses.HeatmapLoss(ohkm=True, topk=k)(p, {"heatmaps": t, "target_weight": w})["heatmap"]

    assert_check_fails(checks.hidden_ohkm_loss, via_batch_loss, "reference implementation")


# -- the solved notebook gets full marks from the grader (experiments skipped, as when grading) ---------------

@pytest.mark.notebook
def test_the_solved_notebook_gets_full_marks(tmp_path):
    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = Path(__file__).resolve().parents[1] / "solutions" / "06_simple_baseline.py"
    path = tmp_path / "06_simple_baseline.ipynb"
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved", sandbox=SANDBOX)
    lost = [(g.exercise, g.message) for g in result.exercises if g.points != g.max_points]
    assert result.points == result.max_points and not result.flagged, lost
