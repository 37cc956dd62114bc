"""The coordinate-regression variant of simplebaseline_tiny (chapter 02), SelectStage (chapter 03) and SelectStack (04)."""

from __future__ import annotations

import pytest
import torch

from course_lib import losses, models, training
from course_lib.models.coordinate_regression import CoordinateRegressor, simple_baseline_tiny_regressor
from course_lib.models.cpm import SelectStage
from course_lib.models.resnet import BasicBlock, ResNet


def test_regressor_shares_the_heatmap_model_encoder():
    regressor = simple_baseline_tiny_regressor()
    heatmap_model = models.build("simplebaseline_tiny")
    shapes = lambda m: [(n, tuple(p.shape)) for n, p in m.backbone.named_parameters()]  # noqa: E731
    assert shapes(regressor) == shapes(heatmap_model)
    assert regressor.stride is None and regressor.input_size == (96, 64) and regressor.num_keypoints == 17


def test_regressor_output_starts_at_the_crop_centre_and_trains():
    torch.manual_seed(0)
    regressor = simple_baseline_tiny_regressor(num_keypoints=3)
    images = torch.randn(4, 3, 96, 64)
    out = regressor(images)
    assert out.shape == (4, 3, 2)
    assert out.abs().max() < 0.05  # near 0 = the crop centre in box-normalised coordinates
    batch = {"image": images, "keypoints": torch.rand(4, 3, 2) * torch.tensor([64.0, 96.0]),
             "target_weight": torch.ones(4, 3)}
    loss = losses.RegressionLoss()(out, batch)["coordinates"]
    loss.backward()
    assert all(p.grad is not None for p in regressor.parameters())


def test_regressor_sizes_and_errors():
    assert training.model_sizes(simple_baseline_tiny_regressor()) == ((96, 64), None)
    with pytest.raises(ValueError, match="input_size"):
        simple_baseline_tiny_regressor(input_size=(100, 64))
    with pytest.raises(ValueError, match="backbone"):
        CoordinateRegressor(ResNet(BasicBlock, (1,), (8,), stem_width=8, num_classes=5))
    with pytest.raises(ValueError, match="built for"):
        simple_baseline_tiny_regressor()(torch.randn(1, 3, 128, 64))
    with pytest.raises(ValueError, match="num_keypoints"):
        simple_baseline_tiny_regressor(num_keypoints=0)


def test_select_stage_returns_one_stage_and_keeps_the_sizes():
    torch.manual_seed(0)
    cpm = models.build("cpm_tiny", num_stages=2, channels=8)
    images = torch.randn(2, 3, 96, 64)
    stages = cpm(images)
    for stage in (1, 2):
        chosen = SelectStage(cpm, stage)
        assert torch.equal(chosen(images), stages[stage - 1])
        assert training.model_sizes(chosen) == ((96, 64), (24, 16))
    assert list(SelectStage(cpm, 1).parameters())[0] is list(cpm.parameters())[0]  # shared, not copied
    for bad in (0, 3, -1):
        with pytest.raises(ValueError, match="from 1 to 2"):
            SelectStage(cpm, bad)
    with pytest.raises(TypeError, match="stage"):
        SelectStage(cpm, 1.0)
    with pytest.raises(TypeError, match="list of stage outputs"):
        SelectStage(models.build("simplebaseline_tiny"), 1)(images)


def test_stages_and_stacks_are_counted_alike_from_one():
    from course_lib.models.hourglass import SelectStack

    torch.manual_seed(0)
    hourglass = models.build("hourglass_tiny", num_features=16)
    images = torch.randn(1, 3, 96, 64)
    stacks = hourglass(images)
    for number in (1, 2):
        assert torch.equal(SelectStage(hourglass, number)(images), stacks[number - 1])
        assert torch.equal(SelectStack(hourglass, number)(images), stacks[number - 1])
    for bad in (0, 3):
        with pytest.raises(ValueError):
            SelectStage(hourglass, bad)
        with pytest.raises(ValueError):
            SelectStack(hourglass, bad)
