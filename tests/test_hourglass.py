"""The chapter-04 helpers of ``course_lib.models.hourglass``: parameter split, stack selection, traced sizes."""

from __future__ import annotations

import pytest
import torch

from course_lib.models import build
from course_lib.models.hourglass import (
    Hourglass,
    Residual,
    SelectStack,
    StackedHourglass,
    hourglass_parameter_split,
    residual_output_sizes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("order, channels", [(1, 4), (3, 8), (4, 16)])
def test_parameter_split_is_symmetric_and_complete(order, channels):
    hg = Hourglass(order, channels)
    split = hourglass_parameter_split(hg)
    one_module = count(Residual(channels, channels))
    # Hand count: one residual module per level on the way down, one up, one skip; one at the bottom.
    assert split == {"encoder": order * one_module, "bottom": one_module, "decoder": order * one_module,
                     "skip": order * one_module}
    assert sum(split.values()) == count(hg)


def test_parameter_split_without_skip_connections_has_no_skip_parameters():
    hg = Hourglass(2, 8, num_modules=2, skip_connections=False)
    split = hourglass_parameter_split(hg)
    assert split["skip"] == 0 and split["encoder"] == split["decoder"] == 2 * 2 * count(Residual(8, 8))
    assert sum(split.values()) == count(hg)


def test_parameter_split_refuses_other_modules():
    with pytest.raises(TypeError, match="hourglass must be an Hourglass"):
        hourglass_parameter_split(Residual(4, 4))


def test_select_stack_returns_that_stack_and_keeps_the_attributes():
    model = StackedHourglass(3, num_keypoints=2, num_features=8, order=1, input_size=(16, 8)).eval()
    images = torch.randn(2, 3, 16, 8)
    with torch.no_grad():
        stacks = model(images)
        for s in (1, 2, 3):
            view = SelectStack(model, s)
            torch.testing.assert_close(view(images), stacks[s - 1])
            assert (view.stride, view.input_size, view.size_divisor, view.num_keypoints) == (4, (16, 8), 8, 2)
            assert f"stack {s}" in view.name
    assert sum(p.numel() for p in SelectStack(model, 1).parameters()) == count(model)  # a view: the same weights


@pytest.mark.parametrize("stack", [0, 4, 1.0, True])
def test_select_stack_refuses_a_stack_that_does_not_exist(stack):
    model = StackedHourglass(3, num_keypoints=2, num_features=8, order=1)
    with pytest.raises(ValueError, match="stack must be an integer from 1 to 3"):
        SelectStack(model, stack)


def test_select_stack_needs_a_stacked_hourglass():
    with pytest.raises(TypeError, match="StackedHourglass"):
        SelectStack(Hourglass(1, 4), 1)


def test_residual_output_sizes_trace_the_hourglass():
    model = build("hourglass_tiny", num_stacks=1)  # 64 features, order 3, stem to 24 x 16 for a 96 x 64 image
    model.train()
    sizes = residual_output_sizes(model, (96, 64))
    assert model.training  # the mode is put back
    stem = [shape for name, shape in sizes if name.startswith("stem")]
    assert stem == [(32, 48, 32), (32, 24, 16), (64, 24, 16)]  # Residual(16,32) before the pool, then two at 24x16
    main = [shape[1:] for name, shape in sizes if name.startswith("hourglasses") and name.split(".")[-2] != "up1"]
    # down: 12x8, 6x4, 3x2; bottom 3x2; up: 3x2, 6x4, 12x8 (before each upsampling)
    assert main == [(12, 8), (6, 4), (3, 2), (3, 2), (3, 2), (6, 4), (12, 8)]
    skips = [shape[1:] for name, shape in sizes if name.split(".")[-2] == "up1"]
    assert skips == [(6, 4), (12, 8), (24, 16)]  # the skip branches run after their level's lower branch
    assert len(sizes) == sum(isinstance(m, Residual) for m in model.modules())


def test_residual_output_sizes_bad_input():
    with pytest.raises(ValueError, match="input_size"):
        residual_output_sizes(Hourglass(1, 4), (0, 8))
    with pytest.raises(TypeError, match="nn.Module"):
        residual_output_sizes("hourglass", (8, 8))


def test_the_released_hg_lua_adds_one_residual_module_after_each_hourglass():
    with torch.device("meta"):
        released = build("hourglass_8")
        early = build("hourglass_8", residual_after_hourglass=False)
    one_module = 2 * 256 + (256 * 128 + 128) + 2 * 128 + (128 * 128 * 9 + 128) + 2 * 128 + (128 * 256 + 256)
    assert one_module == 214_528 == count(Residual(256, 256))
    assert count(released) - count(early) == 8 * one_module
    assert count(released) == 25_437_960 and round(count(released) / 1e6, 2) == 25.44
    assert released.residual_after_hourglass and not build("hourglass_tiny").residual_after_hourglass
    names = [name for name, _ in released.named_modules() if isinstance(_, Residual) and name.startswith("after.")]
    assert names == [f"after.{s}.0" for s in range(8)]
