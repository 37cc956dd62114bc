"""Checks for chapter 03, Convolutional Pose Machines: receptive field, intermediate supervision, PCK per stage,
and the stretch exercise ``dilated_receptive_field``.

Each exercise has a visible ``check_<exercise>(fn)`` (hand-worked cases) and a hidden
``hidden_<exercise>(fn)`` (random cases against the course's implementation, which the
student's function may not call): :func:`course_lib.receptive_field.receptive_field`,
:func:`course_lib.losses.heatmap_mse` summed over stages (what
:class:`course_lib.losses.HeatmapLoss` does), and :func:`course_lib.metrics.pck`.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from course_lib import losses, metrics
from course_lib import receptive_field as reference_field
from course_lib.grading.checks import (
    HINT_IGNORED_VISIBILITY,
    CheckFailed,
    all_visible,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    check_type,
    forbid_reference,
    gradients_through,
    report_passed,
)

# ``course_lib.metrics.pck`` is the function; its module (with the shared helper) by name:
_pck_module = importlib.import_module("course_lib.metrics.pck")

# -- exercise 1: receptive_field ------------------------------------------------------------------

HINT_NO_JUMP = ("the field grows by (k - 1) pixels *of the layer's input*: after strides, one of those pixels spans "
                "j = s_1 s_2 ... input pixels, so r grows by (k - 1) * j.")
HINT_JUMP_TOO_EARLY = ("the layer's own stride must not count yet: r_l = r_{l-1} + (k_l - 1) j_{l-1} uses the jump "
                       "BEFORE the layer, and only then j_l = j_{l-1} s_l.")


def _field_variant(layers, use_jump: bool = True, jump_first: bool = False) -> list[int]:
    size, jump, sizes = 1, 1, []
    for kernel, stride in layers:
        if jump_first:
            jump *= stride
        size += (kernel - 1) * (jump if use_jump else 1)
        if not jump_first:
            jump *= stride
        sizes.append(size)
    return sizes


def _check_field_result(result, layers, what) -> None:
    expected = reference_field.receptive_field(layers)
    if isinstance(result, np.ndarray):
        result = result.tolist()
    check_type(result, (list, tuple), what)
    if len(result) != len(expected):
        raise CheckFailed(f"{what} must give one size per layer ({len(expected)}), got {len(result)}.")
    if not all(isinstance(r, (int, np.integer)) or (isinstance(r, float) and float(r).is_integer()) for r in result):
        raise CheckFailed(f"{what} must give whole numbers of pixels, got {result}.")
    mistakes = {HINT_NO_JUMP: _field_variant(layers, use_jump=False),
                HINT_JUMP_TOO_EARLY: _field_variant(layers, jump_first=True)}
    check_close(np.asarray(result, dtype=float), np.asarray(expected, dtype=float), what, mistakes=mistakes)


def check_receptive_field(fn) -> None:
    """Visible check: three 3x3 convolutions; then a 2x2 pooling between them; VGG's first block."""
    cases = [
        ([(3, 1), (3, 1), (3, 1)], [3, 5, 7]),
        ([(3, 1), (2, 2), (3, 1)], [3, 4, 8]),
        ([(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2)], [3, 5, 6, 10, 14, 16]),
    ]
    for layers, expected in cases:
        what = f"receptive_field({layers})"
        result = call_student(fn, layers, name="receptive_field")
        _check_field_result(result, layers, what)
        if [int(r) for r in result] != expected:  # the hand-worked answer, as a second opinion
            raise CheckFailed(f"{what} must be {expected}, got {list(result)}.")
    report_passed("receptive_field")


def hidden_receptive_field(fn) -> None:
    """Hidden check: random stacks, CPM's stage 1, and the empty stack, against the course's recursion."""
    fn = forbid_reference(fn, *REFERENCES["receptive_field"])
    rng = np.random.default_rng(30)
    stacks = [[(9, 1), (3, 2), (9, 1), (3, 2), (9, 1), (3, 2), (5, 1), (9, 1), (1, 1), (1, 1)], [(1, 1)], [(7, 2)]]
    for _ in range(6):
        depth = int(rng.integers(1, 12))
        stacks.append([(int(rng.choice([1, 2, 3, 5, 7, 11])), int(rng.choice([1, 1, 2, 2, 3]))) for _ in range(depth)])
    for layers in stacks:
        _check_field_result(call_student(fn, layers, name="receptive_field"), layers, f"receptive_field({layers})")
    result = call_student(fn, [], name="receptive_field")
    if list(result) != []:
        raise CheckFailed(f"receptive_field([]) must be [] (no layer, no field to list), got {result!r}.")
    report_passed("receptive_field (hidden)")


# -- exercise 2: intermediate_supervision_loss ----------------------------------------------------

HINT_FINAL_ONLY = ("it matches the loss of the LAST stage only: intermediate supervision puts the same target on every "
                   "stage and adds the losses up.")
HINT_STAGE_MEAN = "it matches the MEAN over the stages: the stage losses are summed, not averaged."
HINT_NO_HALF = "it is twice the expected loss: each squared difference carries a factor 1/2."
HINT_LOSS_WEIGHT = ("it matches the loss without the weights: multiply the difference by w_nk before squaring, so "
                    "that joints with weight 0 (not labelled) cost nothing.")


def _stage_losses(stages, target, weight) -> list[torch.Tensor]:
    return [losses.heatmap_mse(stage, target, weight) for stage in stages]


def _check_loss_result(fn, stages, target, weight, what) -> None:
    stages = [stage.detach().clone() for stage in stages]
    with torch.no_grad():
        expected = sum(_stage_losses(stages, target, weight)).item()
        final_only = _stage_losses(stages[-1:], target, weight)[0].item()
        unweighted = sum(_stage_losses(stages, target, torch.ones_like(weight))).item()
    leaves = [stage.clone().requires_grad_(True) for stage in stages]
    result = call_student(fn, leaves, target, weight, name="intermediate_supervision_loss")
    check_type(result, torch.Tensor, what)
    if result.dim() != 0:
        raise CheckFailed(f"{what} must be a scalar (0-d) tensor, got shape {tuple(result.shape)}.")
    mistakes = {HINT_FINAL_ONLY: final_only, HINT_STAGE_MEAN: expected / len(stages), HINT_NO_HALF: 2 * expected,
                HINT_LOSS_WEIGHT: unweighted}
    if len(stages) == 1:
        del mistakes[HINT_FINAL_ONLY], mistakes[HINT_STAGE_MEAN]
    check_close(result.detach(), expected, what, atol=1e-8, rtol=1e-5, mistakes=mistakes)
    if not result.requires_grad:
        raise CheckFailed(f"{what} carries no gradient: compute it with torch operations on the stage tensors "
                          "(no .item(), .numpy() or torch.no_grad()).")
    # The gradient must reach every stage: call again on tensors we keep (call_student works on copies).
    leaves = [stage.clone().requires_grad_(True) for stage in stages]
    try:
        _, gradients = gradients_through(fn, leaves, target.clone(), weight.clone())
    except Exception as error:
        raise CheckFailed(f"{what}: backward() on your loss raised {type(error).__name__}: {error}") from error
    starved = [t + 1 for t, grad in enumerate(gradients) if grad is None or not bool(grad.abs().sum() > 0)]
    if starved:
        raise CheckFailed(f"{what}: stage(s) {starved} get no gradient from your loss; every stage must be "
                          "supervised (that is what replenishes the gradients of the early stages).")


def _random_batch(rng: np.random.Generator, stages: int, n: int, k: int, h: int, w: int):
    generator = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    outputs = [torch.rand(n, k, h, w, generator=generator) for _ in range(stages)]
    target = torch.rand(n, k, h, w, generator=generator)
    weight = (torch.rand(n, k, generator=generator) > 0.3).float()
    weight[0, 0] = 0.0  # at least one joint without a label
    return outputs, target, weight


def check_intermediate_supervision_loss(fn) -> None:
    """Visible check: two stages of 1x1 maps, worked by hand, then a small random batch."""
    target = torch.tensor([[[[1.0]], [[0.0]]]])  # (N=1, K=2, 1, 1)
    weight = torch.tensor([[1.0, 0.0]])  # the second joint is not labelled
    stages = [torch.tensor([[[[0.0]], [[5.0]]]]), torch.tensor([[[[0.5]], [[5.0]]]])]
    # stage 1: 1/2 (1 - 0)^2 / 2 = 0.25; stage 2: 1/2 (1 - 0.5)^2 / 2 = 0.0625 (the joint with w = 0 costs nothing)
    what = "intermediate_supervision_loss for two stages of 1x1 maps (worked answer 0.25 + 0.0625 = 0.3125)"
    _check_loss_result(fn, stages, target, weight, what)
    outputs, target, weight = _random_batch(np.random.default_rng(0), 3, 2, 4, 6, 5)
    _check_loss_result(fn, outputs, target, weight, "intermediate_supervision_loss on a random batch of 3 stages")
    report_passed("intermediate_supervision_loss")


def hidden_intermediate_supervision_loss(fn) -> None:
    """Hidden check: random batches of 1 to 6 stages against the sum of ``losses.heatmap_mse``."""
    fn = forbid_reference(fn, *REFERENCES["intermediate_supervision_loss"])
    rng = np.random.default_rng(31)
    for stages in (1, 2, 3, 6):
        n, k, h, w = (int(v) for v in rng.integers([1, 1, 2, 2], [5, 18, 12, 12]))
        outputs, target, weight = _random_batch(rng, stages, n, k, h, w)
        _check_loss_result(fn, outputs, target, weight,
                           f"intermediate_supervision_loss on {stages} stage(s) of ({n}, {k}, {h}, {w}) maps")
    report_passed("intermediate_supervision_loss (hidden)")


# -- exercise 3: pck_per_stage --------------------------------------------------------------------

HINT_POOLED_NORM = "the radius is threshold * norm_n, each person's own size (norm has one value per person)."


def _reference_pck_per_stage(stage_keypoints, gt_keypoints, visibility, norm, threshold) -> np.ndarray:
    return np.array([metrics.pck(stage, gt_keypoints, visibility, norm, threshold).mean for stage in stage_keypoints])


def _check_pck_result(result, stage_keypoints, gt, visibility, norm, threshold, what) -> None:
    expected = _reference_pck_per_stage(stage_keypoints, gt, visibility, norm, threshold)
    check_shape(result, expected.shape, what)
    check_dtype(result, "float", what)
    mistakes = {HINT_IGNORED_VISIBILITY: _reference_pck_per_stage(stage_keypoints, gt, all_visible(visibility), norm,
                                                                  threshold),
                HINT_POOLED_NORM: _reference_pck_per_stage(stage_keypoints, gt, visibility,
                                                           np.full_like(norm, norm.mean()), threshold)}
    check_close(result, expected, what, atol=1e-9, mistakes=mistakes)


def check_pck_per_stage(fn) -> None:
    """Visible check: two stages, two people of different sizes, one joint not labelled."""
    gt = np.array([[[10.0, 10.0], [20.0, 10.0]], [[50.0, 50.0], [60.0, 80.0]]])  # (N=2, K=2, 2)
    visibility = np.array([[2, 2], [1, 0]])  # the last joint is not labelled
    norm = np.array([10.0, 40.0])  # radii at threshold 0.2: 2 px and 8 px
    stage_keypoints = np.stack([
        gt + np.array([[[3.0, 0.0], [0.0, 1.0]], [[0.0, 9.0], [0.0, 0.0]]]),  # right: 1 of 3 labelled joints
        gt + np.array([[[1.0, 1.0], [0.0, 1.0]], [[0.0, 5.0], [90.0, 0.0]]]),  # right: 3 of 3
    ])
    what = "pck_per_stage(stage_keypoints, gt, visibility, norm=[10, 40], threshold=0.2) (worked answer [1/3, 1])"
    result = call_student(fn, stage_keypoints, gt, visibility, norm, 0.2, name="pck_per_stage")
    _check_pck_result(result, stage_keypoints, gt, visibility, norm, 0.2, what)
    report_passed("pck_per_stage")


def hidden_pck_per_stage(fn) -> None:
    """Hidden check: random predictions of 1 to 6 stages against ``metrics.pck``."""
    fn = forbid_reference(fn, *REFERENCES["pck_per_stage"])
    rng = np.random.default_rng(32)
    for stages in (1, 3, 6):
        n, k = int(rng.integers(2, 12)), int(rng.integers(2, 18))
        gt = rng.uniform(0, 200, size=(n, k, 2))
        visibility = rng.integers(0, 3, size=(n, k))
        visibility[0, 0] = 2
        norm = rng.uniform(20, 120, size=n)
        stage_keypoints = gt + rng.normal(0, 1, size=(stages, n, k, 2)) * norm[None, :, None, None] * \
            np.linspace(0.4, 0.05, stages)[:, None, None, None]
        threshold = float(rng.choice([0.05, 0.1, 0.2, 0.5]))
        what = f"pck_per_stage for {stages} stage(s), {n} people, {k} joints, threshold {threshold}"
        result = call_student(fn, stage_keypoints, gt, visibility, norm, threshold, name="pck_per_stage")
        _check_pck_result(result, stage_keypoints, gt, visibility, norm, threshold, what)
    report_passed("pck_per_stage (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
# -- stretch exercise: dilated_receptive_field ----------------------------------------------------------

def _check_dilated_once(fn, layers, what: str) -> None:
    result = call_student(fn, layers, name="dilated_receptive_field")
    if isinstance(result, np.ndarray):
        result = result.tolist()
    check_type(result, (list, tuple), what)
    expected = reference_field.receptive_field(layers)
    undilated = reference_field.receptive_field([(k, s) for k, s, _ in layers])
    check_close(np.asarray(result, dtype=float), expected, what, mistakes={
        "the dilation is missing: a kernel of size k with dilation d spans (k - 1) d + 1 taps, so r grows by "
        "(k - 1) * d * j.": undilated})


def check_dilated_receptive_field(fn) -> None:
    """Visible check: a 3x3 conv, a 3x3 conv with dilation 2, a 2x2 stride-2 pool, a 3x3 conv with dilation 4."""
    layers = [(3, 1, 1), (3, 1, 2), (2, 2, 1), (3, 1, 4)]
    what = "dilated_receptive_field([(3, 1, 1), (3, 1, 2), (2, 2, 1), (3, 1, 4)])"
    _check_dilated_once(fn, layers, what)
    check_close(np.asarray(call_student(fn, layers, name="dilated_receptive_field"), dtype=float),
                [3, 7, 8, 24], what)
    report_passed("dilated_receptive_field")


def hidden_dilated_receptive_field(fn) -> None:
    """Hidden check: random stacks of kernels, strides and dilations."""
    fn = forbid_reference(fn, *REFERENCES["dilated_receptive_field"])
    rng = np.random.default_rng(33)
    for depth in (1, 4, 9):
        layers = [(int(rng.choice([1, 3, 5, 7])), int(rng.choice([1, 1, 2])), int(rng.choice([1, 2, 4])))
                  for _ in range(depth)]
        _check_dilated_once(fn, layers, f"dilated_receptive_field({layers})")
    report_passed("dilated_receptive_field (hidden)")


REFERENCES = {
    "dilated_receptive_field": (reference_field.receptive_field, reference_field.cumulative_strides),
    "receptive_field": (reference_field.receptive_field, reference_field.cumulative_strides),
    "intermediate_supervision_loss": (losses.heatmap_mse, losses.ohkm_mse, losses.HeatmapLoss.__call__),
    "pck_per_stage": (metrics.pck, metrics.pckh, metrics.pdj, _pck_module._within_radius),
}
