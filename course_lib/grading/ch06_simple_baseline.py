"""Checks for chapter 06, SimpleBaseline: the crop of a person box, heatmap pixels back to the
image, flipping heatmaps back for the flip test, and online hard keypoint mining.

Each exercise has a visible ``check_<exercise>(fn)`` (hand-worked cases) and a hidden
``hidden_<exercise>(fn)`` (random cases against the course's implementation, which the
student's function may not call):

=========================  ==============================================================
exercise                   the course's implementation
=========================  ==============================================================
``box_to_center_scale``    :func:`course_lib.geometry.box_to_center_scale`
``heatmap_to_image``       :func:`course_lib.geometry.crop_to_image` (rotation 0, heatmap size)
``flip_back``              :func:`course_lib.heatmaps.flip_heatmaps`
``ohkm_loss``              :func:`course_lib.losses.ohkm_mse`
``udp_heatmap_to_crop``    UDP's pixel-interval rule (stretch exercise; reference here)
=========================  ==============================================================
"""

from __future__ import annotations

import numpy as np
import torch

from course_lib import geometry, heatmaps, losses
from course_lib.grading.checks import (
    CheckFailed,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    check_type,
    forbid_reference,
    report_passed,
)

# -- exercise 1: box_to_center_scale -----------------------------------------------------------------

HINT_NO_PADDING = "the crop is exactly the widened box: multiply both sides by `padding` (1.25) as well."
HINT_SHRINKS = ("the box was cut down to the aspect ratio: the official rule only ever GROWS a side (a tall box "
                "gets wider, a wide box gets taller), so no part of the person is cut off.")
HINT_RATIO_INVERTED = "the aspect ratio is W / H of the model input (0.75 for 256 x 192), not H / W."
HINT_CORNER = "the centre is the middle of the box, (x + w / 2, y + h / 2), not its top-left corner (x, y)."


def _center_scale_variant(box, aspect_ratio, padding, *, pad=True, grow=True, corner=False):
    """box_to_center_scale with one of its steps done wrong (the typical mistakes)."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x, y]) if corner else np.array([x + w / 2, y + h / 2])
    if grow:
        w, h = max(w, h * aspect_ratio), max(h, w / aspect_ratio)
    else:
        w, h = min(w, h * aspect_ratio), min(h, w / aspect_ratio)
    return center, np.array([w, h]) * (padding if pad else 1.0)


def _check_center_scale(result, box, aspect_ratio, padding, what) -> None:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"{what} must return two things, (center, scale); got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    center, scale = result
    expected_center, expected_scale = geometry.box_to_center_scale(np.asarray(box, dtype=float), aspect_ratio, padding)
    check_shape(center, (2,), f"the center of {what}")
    check_shape(scale, (2,), f"the scale of {what}")
    check_dtype(center, "float", f"the center of {what}")
    check_dtype(scale, "float", f"the scale of {what}")
    check_close(center, expected_center, f"the center of {what}",
                mistakes={HINT_CORNER: _center_scale_variant(box, aspect_ratio, padding, corner=True)[0]})
    check_close(scale, expected_scale, f"the scale of {what}", atol=1e-6, rtol=1e-6, mistakes={
        HINT_NO_PADDING: _center_scale_variant(box, aspect_ratio, padding, pad=False)[1],
        HINT_SHRINKS: _center_scale_variant(box, aspect_ratio, padding, grow=False)[1],
        HINT_RATIO_INVERTED: _center_scale_variant(box, 1 / aspect_ratio, padding)[1],
    })


def check_box_to_center_scale(fn) -> None:
    """Visible check: a tall box (it gets wider) and a wide box (it gets taller), 256 x 192 input."""
    cases = [
        ([10.0, 20.0, 30.0, 80.0], "a tall box: w / h = 0.375 < 0.75, so w grows to 60, then x1.25 -> (75, 100)"),
        ([0.0, 0.0, 100.0, 50.0], "a wide box: w / h = 2 > 0.75, so h grows to 133.3, then x1.25 -> (125, 166.7)"),
    ]
    for box, story in cases:
        what = f"box_to_center_scale({box}, aspect_ratio=0.75, padding=1.25) ({story})"
        result = call_student(fn, np.array(box), 0.75, 1.25, name="box_to_center_scale")
        _check_center_scale(result, box, 0.75, 1.25, what)
    report_passed("box_to_center_scale")


def hidden_box_to_center_scale(fn) -> None:
    """Hidden check: random boxes, aspect ratios and paddings against ``geometry.box_to_center_scale``."""
    fn = forbid_reference(fn, *REFERENCES["box_to_center_scale"])
    rng = np.random.default_rng(60)
    for case in range(10):
        box = np.concatenate([rng.uniform(-20, 300, 2), rng.uniform(2, 200, 2)]).round(2)
        aspect_ratio = float(rng.choice([0.75, 1.0, 192 / 256, 64 / 96, 1.5]))
        padding = float(rng.choice([1.0, 1.25, 1.5]))
        if case == 0:
            box[3] = box[2] / aspect_ratio  # already at the aspect ratio: only the padding changes it
        what = f"box_to_center_scale({box.tolist()}, aspect_ratio={aspect_ratio:.4g}, padding={padding})"
        result = call_student(fn, box, aspect_ratio, padding, name="box_to_center_scale")
        _check_center_scale(result, box, aspect_ratio, padding, what)
    report_passed("box_to_center_scale (hidden)")


# -- exercise 2: heatmap_to_image ----------------------------------------------------------------------

HINT_UDP_CENTRE = ("the result is off by half a heatmap pixel: the crop's centre sits at (W / 2, H / 2) of the "
                   "heatmap (the MSRA convention of the official code), not at ((W - 1) / 2, (H - 1) / 2).")
HINT_NO_CENTRE_OFFSET = ("heatmap pixel (W / 2, H / 2) is the crop's centre: subtract (W / 2, H / 2) before scaling "
                         "and add the crop's centre after, x = c_x + (u - W / 2) * s_w / W.")
HINT_SIZE_SWAPPED = ("x goes with the width and y with the height: x = c_x + (u - W / 2) * s_w / W with W the "
                     "heatmap's width, heatmap_size[1] (sizes are (H, W)).")
HINT_ONE_CENTRE = ("every person has their own crop: use center[n] and scale[n] for the keypoints of person n "
                   "(broadcast (N, 1, 2) against (N, K, 2)).")


def _heatmap_to_image_variant(keypoints, center, scale, heatmap_size, *, middle=None, size_swapped=False):
    height, width = heatmap_size
    if size_swapped:
        height, width = width, height
    size = np.array([width, height], dtype=float)
    middle = size / 2 if middle is None else middle(size)
    return np.asarray(center, float)[:, None, :] + (np.asarray(keypoints, float) - middle) * (
        np.asarray(scale, float)[:, None, :] / size)


def _heatmap_to_image_mistakes(keypoints, center, scale, heatmap_size) -> dict:
    mistakes = {
        HINT_UDP_CENTRE: _heatmap_to_image_variant(keypoints, center, scale, heatmap_size,
                                                   middle=lambda size: (size - 1) / 2),
        HINT_NO_CENTRE_OFFSET: _heatmap_to_image_variant(keypoints, center, scale, heatmap_size,
                                                         middle=lambda size: 0 * size),
    }
    if heatmap_size[0] != heatmap_size[1]:
        mistakes[HINT_SIZE_SWAPPED] = _heatmap_to_image_variant(keypoints, center, scale, heatmap_size,
                                                                size_swapped=True)
    if len(center) > 1:
        mistakes[HINT_ONE_CENTRE] = _heatmap_to_image_variant(keypoints, np.repeat(center[:1], len(center), 0),
                                                              np.repeat(scale[:1], len(scale), 0), heatmap_size)
    return mistakes


def _check_heatmap_to_image(result, keypoints, center, scale, heatmap_size, what) -> None:
    expected = geometry.crop_to_image(keypoints, center, scale, np.zeros(len(center)), heatmap_size)
    check_shape(result, keypoints.shape, what)
    check_dtype(result, "float", what)
    check_close(result, expected, what, atol=1e-5, rtol=1e-6,
                mistakes=_heatmap_to_image_mistakes(keypoints, center, scale, heatmap_size))


def check_heatmap_to_image(fn) -> None:
    """Visible check: a 24 x 16 heatmap of a crop of 64 x 96 image pixels (4 image pixels per heatmap pixel)."""
    keypoints = np.array([[[8.0, 12.0], [0.0, 0.0], [15.0, 23.0], [2.5, 6.25]]])
    center, scale, heatmap_size = np.array([[50.0, 60.0]]), np.array([[64.0, 96.0]]), (24, 16)
    expected = np.array([[[50.0, 60.0], [18.0, 12.0], [78.0, 104.0], [28.0, 37.0]]])  # worked by hand
    what = ("heatmap_to_image(keypoints, center=[[50, 60]], scale=[[64, 96]], heatmap_size=(24, 16)) for heatmap "
            "points (8, 12) (the centre), (0, 0), (15, 23) and (2.5, 6.25)")
    result = call_student(fn, keypoints, center, scale, heatmap_size, name="heatmap_to_image")
    check_shape(result, keypoints.shape, what)
    check_dtype(result, "float", what)
    check_close(result, expected, what, mistakes=_heatmap_to_image_mistakes(keypoints, center, scale, heatmap_size))
    report_passed("heatmap_to_image")


def hidden_heatmap_to_image(fn) -> None:
    """Hidden check: several people with their own crops, random sizes, against ``geometry.crop_to_image``."""
    fn = forbid_reference(fn, *REFERENCES["heatmap_to_image"])
    rng = np.random.default_rng(61)
    for _ in range(6):
        num_people, num_keypoints = int(rng.integers(2, 6)), int(rng.integers(1, 18))
        heatmap_size = (int(rng.integers(6, 80)), int(rng.integers(5, 64)))
        if heatmap_size[0] == heatmap_size[1]:
            heatmap_size = (heatmap_size[0] + 3, heatmap_size[1])
        keypoints = rng.uniform(0, [heatmap_size[1] - 1, heatmap_size[0] - 1], size=(num_people, num_keypoints, 2))
        center = rng.uniform(0, 500, size=(num_people, 2))
        scale = rng.uniform(20, 400, size=(num_people, 2))
        what = (f"heatmap_to_image for {num_people} people with {num_keypoints} keypoints each, "
                f"heatmap_size={heatmap_size}")
        result = call_student(fn, keypoints, center, scale, heatmap_size, name="heatmap_to_image")
        _check_heatmap_to_image(result, keypoints, center, scale, heatmap_size, what)
    report_passed("heatmap_to_image (hidden)")


# -- exercise 3: flip_back -----------------------------------------------------------------------------

HINT_NO_SWAP = ("the left/right channels were not swapped: after the mirror, the map of a left joint shows the "
                "person's right one, so channels left and right of each pair trade places.")
HINT_SHIFT_LEFT = "the shift goes the wrong way: move the maps one pixel to the RIGHT, H''[..., 1:] = H'[..., :-1]."
HINT_ROLLED = ("the first column wrapped around from the last one (np.roll?): shift without wrapping; the first "
               "column keeps its own value, H''[..., 0] = H'[..., 0].")
HINT_ZERO_COLUMN = "column 0 was zeroed: it keeps its own value, as in the official code (only [..., 1:] is replaced)."
HINT_SHIFT_FIRST = "the shift was applied before the mirror: mirror and swap first, then shift the result right."
HINT_SHIFTED_ANYWAY = "with shift=False the maps must only be mirrored and swapped, not shifted."
HINT_NOT_SHIFTED = "with shift=True the mirrored maps must also move one pixel to the right."


def _flip_variant(maps: np.ndarray, flip_pairs, shift: bool, *, swap=True, how="right"):
    permutation = np.arange(maps.shape[-3])
    if swap:
        for left, right in flip_pairs:
            permutation[left], permutation[right] = right, left
    if how == "first" and shift:
        maps = np.concatenate([maps[..., :1], maps[..., :-1]], axis=-1)
    flipped = maps[..., permutation, :, ::-1]
    if not shift or how == "first":
        return np.ascontiguousarray(flipped)
    if how == "right":
        return np.concatenate([flipped[..., :1], flipped[..., :-1]], axis=-1)
    if how == "left":
        return np.concatenate([flipped[..., 1:], flipped[..., -1:]], axis=-1)
    if how == "roll":
        return np.roll(flipped, 1, axis=-1)
    if how == "zero":
        return np.concatenate([np.zeros_like(flipped[..., :1]), flipped[..., :-1]], axis=-1)
    raise ValueError(how)


def _flip_mistakes(maps, flip_pairs, shift) -> dict:
    mistakes = {HINT_NO_SWAP: _flip_variant(maps, flip_pairs, shift, swap=False)}
    if shift:
        mistakes.update({
            HINT_SHIFT_LEFT: _flip_variant(maps, flip_pairs, True, how="left"),
            HINT_ROLLED: _flip_variant(maps, flip_pairs, True, how="roll"),
            HINT_ZERO_COLUMN: _flip_variant(maps, flip_pairs, True, how="zero"),
            HINT_SHIFT_FIRST: _flip_variant(maps, flip_pairs, True, how="first"),
            HINT_NOT_SHIFTED: _flip_variant(maps, flip_pairs, False),
        })
    else:
        mistakes[HINT_SHIFTED_ANYWAY] = _flip_variant(maps, flip_pairs, True)
    return mistakes


def _check_flip_back(result, maps, flip_pairs, shift, what) -> None:
    expected = heatmaps.flip_heatmaps(maps, flip_pairs, shift=shift)
    check_type(result, np.ndarray, what)
    check_shape(result, maps.shape, what)
    check_dtype(result, "float", what)
    check_close(result, expected, what, mistakes=_flip_mistakes(maps, flip_pairs, shift))


def check_flip_back(fn) -> None:
    """Visible check: three 1 x 4 maps, joints 1 and 2 a left/right pair, with and without the shift."""
    maps = np.array([[[[1.0, 2.0, 3.0, 4.0]], [[10.0, 20.0, 30.0, 40.0]], [[5.0, 6.0, 7.0, 8.0]]]])  # (1, 3, 1, 4)
    pairs = ((1, 2),)
    worked = {
        False: [[[[4.0, 3.0, 2.0, 1.0]], [[8.0, 7.0, 6.0, 5.0]], [[40.0, 30.0, 20.0, 10.0]]]],
        True: [[[[4.0, 4.0, 3.0, 2.0]], [[8.0, 8.0, 7.0, 6.0]], [[40.0, 40.0, 30.0, 20.0]]]],
    }
    for shift in (False, True):
        what = (f"flip_back(maps, flip_pairs=((1, 2),), shift={shift}) for the rows [1 2 3 4], [10 20 30 40], "
                "[5 6 7 8]")
        result = call_student(fn, maps, pairs, shift, name="flip_back")
        check_type(result, np.ndarray, what)
        check_shape(result, maps.shape, what)
        check_close(result, np.array(worked[shift]), what, mistakes=_flip_mistakes(maps, pairs, shift))
    report_passed("flip_back")


def hidden_flip_back(fn) -> None:
    """Hidden check: random (N, K, H, W) maps with the COCO pairs and other pair sets, against ``flip_heatmaps``."""
    from course_lib.keypoints import COCO_FLIP_PAIRS, MPII_FLIP_PAIRS

    fn = forbid_reference(fn, *REFERENCES["flip_back"])
    rng = np.random.default_rng(62)
    cases = [(17, COCO_FLIP_PAIRS), (16, MPII_FLIP_PAIRS), (5, ((0, 4), (1, 3)))]
    for index, (num_keypoints, pairs) in enumerate(cases * 2):
        maps = rng.random((int(rng.integers(1, 4)), num_keypoints, int(rng.integers(2, 12)), int(rng.integers(3, 12))))
        shift = bool(index % 2 == 0)
        what = f"flip_back on random maps of shape {maps.shape} with {len(pairs)} flip pairs, shift={shift}"
        result = call_student(fn, maps, tuple(pairs), shift, name="flip_back")
        _check_flip_back(result, maps, tuple(pairs), shift, what)
    report_passed("flip_back (hidden)")


# -- exercise 4: ohkm_loss -----------------------------------------------------------------------------

HINT_NOT_MINED = "every joint was averaged: OHKM keeps only the topk LARGEST per-joint losses of each person."
HINT_BATCH_TOPK = ("the top-k was taken over the whole batch: take the topk hardest joints of EACH person "
                   "(topk along dim=1 of the (N, K) losses), then average.")
HINT_NO_HALF = "the loss is off by a factor 2: the per-joint loss is 1/2 (w (P - G))^2, averaged over the H W pixels."
HINT_NO_WEIGHT = ("a joint with weight 0 still counts: multiply (P - G) by w_nk before squaring, so unlabelled "
                  "joints have zero loss and are never among the hardest.")
HINT_EASIEST = "these are the easiest joints: topk must pick the LARGEST losses (largest=True)."
HINT_SUMMED = "the topk losses must be averaged (divided by topk and by N), not summed."
HINT_BATCH_POOL = ("the hardest N * topk joints were picked from the whole batch: OHKM picks topk per person "
                   "(topk along dim=1 of the (N, K) losses), so every person contributes topk joints.")


def _per_joint(pred, target, weight, *, half=True, use_weight=True) -> torch.Tensor:
    w = weight[:, :, None, None] if use_weight else torch.ones_like(weight)[:, :, None, None]
    return (0.5 if half else 1.0) * ((pred - target) * w).pow(2).mean(dim=(2, 3))  # (N, K)


def _ohkm_mistakes(pred, target, weight, topk) -> dict:
    per_joint = _per_joint(pred, target, weight)
    n = len(per_joint)
    flat = per_joint.flatten().topk(min(topk * n, per_joint.numel()))[0]
    return {
        HINT_NOT_MINED: per_joint.mean(),
        HINT_BATCH_TOPK: per_joint.flatten().topk(topk)[0].mean(),
        HINT_NO_HALF: _per_joint(pred, target, weight, half=False).topk(topk, dim=1)[0].mean(),
        HINT_NO_WEIGHT: _per_joint(pred, target, weight, use_weight=False).topk(topk, dim=1)[0].mean(),
        HINT_EASIEST: per_joint.topk(topk, dim=1, largest=False)[0].mean(),
        HINT_SUMMED: per_joint.topk(topk, dim=1)[0].sum(),
        HINT_BATCH_POOL: flat.mean(),
    }


def _check_ohkm(result, pred, target, weight, topk, what) -> None:
    expected = losses.ohkm_mse(pred, target, weight, topk)
    check_type(result, torch.Tensor, what)
    if result.dim() != 0:
        raise CheckFailed(f"{what} must be a scalar (0-dimensional) tensor, got shape {tuple(result.shape)}.\n"
                          "Hint: average over the people and the topk joints, .mean() of the (N, topk) losses.")
    check_dtype(result, "float", what)
    check_close(result.detach(), expected.detach(), what, atol=1e-7, rtol=1e-5,
                mistakes=_ohkm_mistakes(pred, target, weight, topk))


def check_ohkm_loss(fn) -> None:
    """Visible check: two people, three 1 x 1 maps, hand-worked per-joint losses."""
    pred = torch.tensor([[1.0, 2.0, 3.0], [3.0, 0.0, 1.0]])[:, :, None, None]  # (2, 3, 1, 1)
    target = torch.zeros_like(pred)
    weight = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    # per-joint losses 1/2 (w (P - G))^2: [0.5, 2, 4.5] and [0 (weight 0), 0, 0.5]
    # topk = 2: person 1 keeps 4.5 and 2 (mean 3.25), person 2 keeps 0.5 and 0 (mean 0.25): loss 1.75
    what = "ohkm_loss(pred, target, weight, topk=2) for two people with per-joint losses [0.5, 2, 4.5] and [0, 0, 0.5]"
    result = call_student(fn, pred, target, weight, 2, name="ohkm_loss")
    check_type(result, torch.Tensor, what)
    check_close(result.detach(), 1.75, what, mistakes=_ohkm_mistakes(pred, target, weight, 2))
    _check_ohkm(result, pred, target, weight, 2, what)
    report_passed("ohkm_loss")


def hidden_ohkm_loss(fn) -> None:
    """Hidden check: random batches, weights with zeros and topk values, against ``losses.ohkm_mse``;
    the loss must also carry a gradient back to ``pred``."""
    fn = forbid_reference(fn, *REFERENCES["ohkm_loss"])
    generator = torch.Generator().manual_seed(63)
    for case in range(6):
        n, k, height, width = (int(torch.randint(low, high, (1,), generator=generator))
                               for low, high in ((2, 6), (4, 18), (3, 10), (3, 10)))
        pred = torch.rand(n, k, height, width, generator=generator)
        target = torch.rand(n, k, height, width, generator=generator)
        weight = (torch.rand(n, k, generator=generator) > 0.3).float()
        topk = [1, 2, k // 2, k][case % 4]
        what = f"ohkm_loss on random ({n}, {k}, {height}, {width}) maps with some weights 0, topk={topk}"
        result = call_student(fn, pred, target, weight, topk, name="ohkm_loss")
        _check_ohkm(result, pred, target, weight, topk, what)
    pred = torch.rand(3, 6, 4, 4, generator=generator, requires_grad=True)
    result = call_student(fn, pred, torch.zeros(3, 6, 4, 4), torch.ones(3, 6), 3, name="ohkm_loss")
    if not isinstance(result, torch.Tensor) or not result.requires_grad:
        raise CheckFailed("ohkm_loss must stay differentiable: compute it with torch operations on pred (no .item(), "
                          "no NumPy), so that training can back-propagate through it.")
    report_passed("ohkm_loss (hidden)")


# =========================================================================== stretch: UDP's coordinates
def reference_udp_heatmap_to_crop(points, input_size, heatmap_size) -> np.ndarray:
    """UDP (Huang et al. 2020): sizes in pixel intervals, x = u (w - 1) / (W - 1), y = v (h - 1) / (H - 1)."""
    (h, w), (hh, ww) = input_size, heatmap_size
    points = np.asarray(points, dtype=float)
    return points * np.array([(w - 1) / (ww - 1), (h - 1) / (hh - 1)])


def _udp_mistakes(points, input_size, heatmap_size) -> dict:
    (h, w), (hh, ww) = input_size, heatmap_size
    points = np.asarray(points, dtype=float)
    return {
        "that is the MSRA convention x = u * w / W; UDP measures sizes in pixel intervals: (w - 1) / (W - 1).":
            points * np.array([w / ww, h / hh]),
        "sizes are (H, W): x goes with the widths w and W, y with the heights.":
            points * np.array([(h - 1) / (hh - 1), (w - 1) / (ww - 1)]),
    }


def _check_udp(fn, points, input_size, heatmap_size, what) -> None:
    result = call_student(fn, points, input_size, heatmap_size, name="udp_heatmap_to_crop")
    check_type(result, np.ndarray, what)
    check_shape(result, np.shape(points), what)
    check_close(result, reference_udp_heatmap_to_crop(points, input_size, heatmap_size), what,
                mistakes=_udp_mistakes(points, input_size, heatmap_size))


def check_udp_heatmap_to_crop(fn) -> None:
    """Visible check: the corners and centre of a 64 x 48 heatmap of a 256 x 192 crop."""
    points = np.array([[0.0, 0.0], [47.0, 63.0], [23.5, 31.5]])
    _check_udp(fn, points, (256, 192), (64, 48),
               "udp_heatmap_to_crop([[0, 0], [47, 63], [23.5, 31.5]], (256, 192), (64, 48))")
    report_passed("udp_heatmap_to_crop")


def hidden_udp_heatmap_to_crop(fn) -> None:
    """Hidden check: random points and sizes against the reference, and the mirror property."""
    fn = forbid_reference(fn, *REFERENCES["udp_heatmap_to_crop"])
    rng = np.random.default_rng(606)
    for _ in range(5):
        hh, ww = (int(v) for v in rng.integers(8, 80, 2))
        stride = int(rng.choice([2, 4, 8]))
        points = rng.uniform(0, [ww - 1, hh - 1], size=(int(rng.integers(1, 9)), 17, 2))
        _check_udp(fn, points, (hh * stride, ww * stride), (hh, ww),
                   f"udp_heatmap_to_crop on random points, ({hh * stride}, {ww * stride}) -> ({hh}, {ww})")
    report_passed("udp_heatmap_to_crop (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "box_to_center_scale": (geometry.box_to_center_scale,),
    "heatmap_to_image": (geometry.crop_to_image, geometry.get_affine_transform, geometry.transform_points),
    "flip_back": (heatmaps.flip_heatmaps,),
    "ohkm_loss": (losses.ohkm_mse, losses.HeatmapLoss.__call__),
    "udp_heatmap_to_crop": (reference_udp_heatmap_to_crop,),
}
