"""Receptive fields: the recursion against hand-worked stacks, a brute-force gradient measurement, and CPM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import models
from course_lib.receptive_field import cumulative_strides, layers_of, measure_receptive_field, receptive_field


def _stack(layers: list[tuple[int, int, int]], pool_at: set[int] = frozenset()) -> nn.Sequential:
    """A sequential net of 'same'-padded convolutions (and max-poolings at the given positions)."""
    modules, channels = [], 3
    for index, (kernel, stride, dilation) in enumerate(layers):
        padding = dilation * (kernel - 1) // 2
        if index in pool_at:
            modules.append(nn.MaxPool2d(kernel, stride, padding=kernel // 2))
        else:
            modules += [nn.Conv2d(channels, 4, kernel, stride, padding=padding, dilation=dilation), nn.ReLU()]
            channels = 4
    return nn.Sequential(*modules)


def test_hand_worked_stacks():
    assert receptive_field([(3, 1), (3, 1), (3, 1)]) == [3, 5, 7]
    assert receptive_field([(3, 1), (2, 2), (3, 1)]) == [3, 4, 8]
    # VGG's first two blocks: 3x3, 3x3, pool 2/2, 3x3, 3x3, pool 2/2
    assert receptive_field([(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2)]) == [3, 5, 6, 10, 14, 16]
    # a dilated 3x3 (dilation 2) reaches as far as a 5x5
    assert receptive_field([(3, 1, 2)]) == receptive_field([(5, 1)]) == [5]
    assert receptive_field([]) == []
    assert cumulative_strides([(3, 2), (3, 1), (2, 2)]) == [2, 2, 4]
    assert cumulative_strides([]) == []


def test_closed_form_agrees_with_the_recursion():
    rng = np.random.default_rng(0)
    for _ in range(20):
        layers = [(int(rng.integers(1, 8)), int(rng.integers(1, 4)), int(rng.integers(1, 3))) for _ in range(8)]
        kernels, strides, dilations = (np.array(column) for column in zip(*layers))
        jumps_before = np.concatenate([[1], np.cumprod(strides)[:-1]])
        closed = 1 + np.cumsum((kernels - 1) * dilations * jumps_before)  # r_L = 1 + sum (k-1) d prod s
        assert receptive_field(layers) == closed.tolist()


@pytest.mark.parametrize(
    "layers, pool_at",
    [
        ([(3, 1, 1), (3, 1, 1), (3, 1, 1)], set()),
        ([(3, 1, 1), (2, 2, 1), (3, 1, 1), (5, 2, 1), (3, 1, 2)], {1}),
        ([(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 2, 1), (1, 1, 1), (5, 1, 1)], {1}),
    ],
)
def test_recursion_matches_the_gradient_measurement(layers, pool_at):
    net = _stack(layers, pool_at)
    assert layers_of(net) == layers
    expected = receptive_field(layers)[-1]
    measured = measure_receptive_field(net, (96, 96))
    assert not measured.clipped
    assert (measured.height, measured.width) == (expected, expected)
    assert measured.mask.sum() == expected * expected  # a full square, no holes


def test_measurement_does_not_change_the_model_and_flags_clipping():
    net = _stack([(9, 1, 1), (9, 1, 1)])
    before = [p.detach().clone() for p in net.parameters()]
    measured = measure_receptive_field(net, (12, 12))
    assert measured.clipped and measured.height == 12
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert isinstance(net[0], nn.Conv2d) and all(not isinstance(m, nn.AvgPool2d) for m in net.modules())


def test_cpm_stage_fields_match_the_measurement():
    cpm = models.build("cpm_tiny", num_stages=2, channels=8)
    fields = cpm.receptive_fields()
    assert fields[1] > fields[0]
    for stage, field in enumerate(fields):
        measured = measure_receptive_field(cpm, (128, 128), output_index=stage)
        assert not measured.clipped
        assert (measured.height, measured.width) == (field, field)
    # stage 1 is a plain stack: the recursion over its layers gives the same number
    assert receptive_field(layers_of(cpm.stage1))[-1] == fields[0]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        receptive_field([(3, 1), (0, 1)])
    with pytest.raises(ValueError, match=r"layers\[0\]"):
        receptive_field([(3, 1, 1, 1)])
    with pytest.raises(TypeError, match="layers"):
        receptive_field(3)
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        receptive_field([("a", 1)])
    with pytest.raises(ValueError, match="input_size"):
        measure_receptive_field(_stack([(3, 1, 1)]), (0, 5))
    with pytest.raises(TypeError, match="model"):
        measure_receptive_field(lambda x: x, (8, 8))
    with pytest.raises(ValueError, match="output_index"):
        measure_receptive_field(models.build("cpm_tiny", num_stages=2, channels=8), (32, 32), output_index=5)
    with pytest.raises(ValueError, match="position"):
        measure_receptive_field(_stack([(3, 1, 1)]), (8, 8), position=(20, 0))
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        layers_of(nn.Sequential(nn.ConvTranspose2d(3, 3, 4, 2, 1)))
    with pytest.raises(TypeError, match="module"):
        layers_of([nn.Conv2d(3, 3, 3)])
