"""The checks of chapter 03 (CPM): right answers pass, typical mistakes fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import losses, metrics
from course_lib.grading import ch03_cpm as checks

SOURCE_NAME = "03_cpm.py"
from course_lib.receptive_field import receptive_field as course_receptive_field
from checking import SANDBOX, assert_check_fails


# -- answers written independently of course_lib (as a student would) -------------------------------

def receptive_field(layers, *, use_jump=True, jump_first=False, start=1, as_float=False):
    size, jump, sizes = start, 1, []
    for kernel, stride in layers:
        if jump_first:
            jump *= stride
        size += (kernel - 1) * (jump if use_jump else 1)
        if not jump_first:
            jump *= stride
        sizes.append(float(size) + (0.5 if as_float else 0.0))
    return sizes if as_float else [int(s) for s in sizes]


def intermediate_supervision_loss(stages, target, weight, *, final_only=False, mean=False, half=True, weighted=True,
                                  detach=False, first_only=False):
    used = stages[-1:] if final_only else stages[:1] if first_only else stages
    w = weight[:, :, None, None] if weighted else torch.ones_like(weight)[:, :, None, None]
    terms = [((0.5 if half else 1.0) * ((stage - target) * w) ** 2).mean() for stage in used]
    total = sum(terms) / (len(terms) if mean else 1)
    return total.detach() if detach else total


def pck_per_stage(stage_keypoints, gt, visibility, norm, threshold, *, use_visibility=True, pooled_norm=False,
                  strict=False):
    distance = np.linalg.norm(stage_keypoints - gt[None], axis=-1)  # (T, N, K)
    radius = threshold * (np.full_like(norm, norm.mean()) if pooled_norm else norm)[None, :, None]
    correct = distance < radius if strict else distance <= radius
    counted = (visibility > 0) if use_visibility else np.ones_like(visibility, dtype=bool)
    return (correct & counted[None]).sum(axis=(1, 2)) / counted.sum()


# -- the right answers pass -------------------------------------------------------------------------

def test_right_answers_pass(capsys):
    checks.check_receptive_field(receptive_field)
    checks.hidden_receptive_field(receptive_field)
    checks.check_intermediate_supervision_loss(intermediate_supervision_loss)
    checks.hidden_intermediate_supervision_loss(intermediate_supervision_loss)
    checks.check_pck_per_stage(pck_per_stage)
    checks.hidden_pck_per_stage(pck_per_stage)
    assert capsys.readouterr().out.count("all checks passed") == 6


def test_the_visible_checks_hold_hand_worked_answers():
    target = torch.tensor([[[[1.0]], [[0.0]]]])
    weight = torch.tensor([[1.0, 0.0]])
    stages = [torch.tensor([[[[0.0]], [[5.0]]]]), torch.tensor([[[[0.5]], [[5.0]]]])]
    assert intermediate_supervision_loss(stages, target, weight).item() == pytest.approx(0.3125)
    assert receptive_field([(3, 1), (2, 2), (3, 1)]) == [3, 4, 8]


def test_the_student_answers_agree_with_the_library():
    rng = np.random.default_rng(5)
    for _ in range(10):
        layers = [(int(rng.integers(1, 8)), int(rng.integers(1, 4))) for _ in range(int(rng.integers(1, 9)))]
        assert receptive_field(layers) == course_receptive_field(layers)
    stages = [torch.rand(2, 3, 4, 5) for _ in range(3)]
    target, weight = torch.rand(2, 3, 4, 5), torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    course = sum(losses.HeatmapLoss()(stages, {"heatmaps": target, "target_weight": weight}).values())
    assert intermediate_supervision_loss(stages, target, weight).item() == pytest.approx(course.item())


# -- typical mistakes fail with their hint -----------------------------------------------------------


@pytest.mark.parametrize("check", [checks.check_receptive_field, checks.hidden_receptive_field])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(use_jump=False), "(k - 1) * j"),
        (dict(jump_first=True), "BEFORE the layer"),
        (dict(start=0), "off by exactly one"),
        (dict(as_float=True), "whole numbers"),
    ],
)
def test_receptive_field_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda layers: receptive_field(layers, **mistake), hint)


def test_receptive_field_wrong_length_and_reference():
    assert_check_fails(checks.check_receptive_field, lambda layers: receptive_field(layers)[:-1], "one size per layer")
    assert_check_fails(checks.hidden_receptive_field, course_receptive_field, "course's own")
    assert_check_fails(checks.hidden_receptive_field, lambda layers: list(course_receptive_field(layers)),
                       "reference implementation")


@pytest.mark.parametrize(
    "check", [checks.check_intermediate_supervision_loss, checks.hidden_intermediate_supervision_loss]
)
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(final_only=True), "LAST stage only"),
        (dict(mean=True), "MEAN over the stages"),
        (dict(half=False), "factor 1/2"),
        (dict(weighted=False), "without the weights"),
        (dict(detach=True), "no gradient"),
    ],
)
def test_intermediate_supervision_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: intermediate_supervision_loss(*args, **mistake), hint)


def test_a_loss_that_starves_a_stage_is_caught():
    def sneaky(stages, target, weight):  # the right value, but stage 2 is only used through a detached copy
        value = intermediate_supervision_loss(stages, target, weight)
        return value + 0.0 * sum(stage.sum() for stage in stages[:1])

    checks.check_intermediate_supervision_loss(sneaky)  # every stage still gets a gradient: passes

    def starving(stages, target, weight):
        detached = [stages[0]] + [stage.detach() for stage in stages[1:]]
        return intermediate_supervision_loss(detached, target, weight)

    assert_check_fails(checks.check_intermediate_supervision_loss, starving, "get no gradient")


def test_intermediate_supervision_reference_calls_fail():
    def via_heatmap_mse(stages, target, weight):
        return sum(losses.heatmap_mse(stage, target, weight) for stage in stages)

    def via_heatmap_loss(stages, target, weight):
        return sum(losses.HeatmapLoss()(stages, {"heatmaps": target, "target_weight": weight}).values())

    for fn in (via_heatmap_mse, via_heatmap_loss):
        assert_check_fails(checks.hidden_intermediate_supervision_loss, fn, "reference implementation")


@pytest.mark.parametrize("check", [checks.check_pck_per_stage, checks.hidden_pck_per_stage])
@pytest.mark.parametrize(
    "mistake, hint",
    [(dict(use_visibility=False), "v = 0"), (dict(pooled_norm=True), "each person's own size")],
)
def test_pck_per_stage_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: pck_per_stage(*args, **mistake), hint)


def test_pck_per_stage_shape_and_reference():
    assert_check_fails(checks.check_pck_per_stage, lambda *args: pck_per_stage(*args)[None], "shape")

    def via_reference(stage_keypoints, gt, visibility, norm, threshold):
        return np.array([metrics.pck(s, gt, visibility, norm, threshold).mean for s in stage_keypoints])

    assert_check_fails(checks.hidden_pck_per_stage, via_reference, "reference implementation")


def test_stubs_fail():
    def stub(*args):
        raise NotImplementedError()

    for check in (checks.check_receptive_field, checks.check_intermediate_supervision_loss,
                  checks.check_pck_per_stage):
        assert_check_fails(check, stub, "not written yet")


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


# -- the stretch exercise: dilated receptive fields -------------------------------------------------------

def dilated_receptive_field(layers):
    fields, jump, field = [], 1, 1
    for kernel, stride, dilation in layers:
        field, jump = field + (kernel - 1) * dilation * jump, jump * stride
        fields.append(field)
    return fields


def test_the_dilated_field_passes_and_forgetting_the_dilation_is_named(capsys):
    checks.check_dilated_receptive_field(dilated_receptive_field)
    checks.hidden_dilated_receptive_field(dilated_receptive_field)
    assert capsys.readouterr().out.count("all checks passed") == 2

    def undilated(layers):
        return dilated_receptive_field([(k, s, 1) for k, s, _ in layers])

    assert_check_fails(checks.check_dilated_receptive_field, undilated, "dilation is missing")
    assert_check_fails(checks.hidden_dilated_receptive_field,
                       lambda layers: course_receptive_field(layers), "reference implementation")
