"""Checks for chapter 07, HRNet: the shapes of the parallel branches, the parameters of a basic
block, the fusion of an exchange unit, and the multiply-adds of a (transposed) convolution.

Each exercise has a visible ``check_<exercise>(fn)`` (hand-worked cases) and a hidden
``hidden_<exercise>(fn)`` (random cases against the course's implementation, which the
student's function may not call):

===========================  ============================================================
exercise                     the course's implementation
===========================  ============================================================
``branch_shapes``            :func:`course_lib.models.hrnet.branch_shapes`
``basic_block_parameters``   :func:`course_lib.models.resnet.basic_block_parameters`
``fuse_into_branch``         :func:`course_lib.models.hrnet.fuse_into_branch`
``layer_macs``               :func:`course_lib.models.complexity.layer_macs`
``paper_rule_gflops``        ``measure_complexity(...)["paper_gflops"]`` (stretch exercise)
===========================  ============================================================
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
from course_lib.models.complexity import count_parameters, layer_macs, measure_complexity, paper_gflops_rule
from course_lib.models.hrnet import HighResolutionModule, branch_shapes, fuse_into_branch, lateral_layers
from course_lib.models.resnet import basic_block_parameters, conv3x3, make_layer

# -- exercise 1: branch_shapes ---------------------------------------------------------------------------

HINT_STEM_STRIDE = ("branch 0 is at 1/4 of the input (the stem has two stride-2 convolutions), so H_b = H / (4 * 2^b); "
                    "here branch 0 has the input's full size.")
HINT_STEM_HALF = ("branch 0 is at 1/4 of the input (the stem has TWO stride-2 convolutions), so H_b = H / (4 * 2^b), "
                  "not H / 2^(b+1).")
HINT_SAME_CHANNELS = "each branch doubles the channels of the one above it: C_b = C * 2^b."
HINT_CHANNELS_OFF = "the first branch has exactly C channels (C * 2^0); the channels double from there."
HINT_HW_SWAPPED = "each tuple is (channels, height, width), in that order, like a tensor's (C, H, W)."


def _shapes_variant(input_size, width, num_branches, *, first=4, channel_base=1, double=True, swap=False):
    height, width_px = input_size
    shapes = []
    for b in range(num_branches):
        channels = width * channel_base * (2**b if double else 1)
        h, w = height // (first * 2**b), width_px // (first * 2**b)
        shapes.append((channels, w, h) if swap else (channels, h, w))
    return np.array(shapes)


def _shapes_mistakes(input_size, width, num_branches) -> dict:
    mistakes = {
        HINT_STEM_STRIDE: _shapes_variant(input_size, width, num_branches, first=1),
        HINT_STEM_HALF: _shapes_variant(input_size, width, num_branches, first=2),
        HINT_SAME_CHANNELS: _shapes_variant(input_size, width, num_branches, double=False),
        HINT_CHANNELS_OFF: _shapes_variant(input_size, width, num_branches, channel_base=2),
    }
    if input_size[0] != input_size[1]:
        mistakes[HINT_HW_SWAPPED] = _shapes_variant(input_size, width, num_branches, swap=True)
    return {hint: value for hint, value in mistakes.items() if not _same_shapes(value, input_size, width, num_branches)}


def _same_shapes(candidate, input_size, width, num_branches) -> bool:
    return np.array_equal(candidate, np.array(branch_shapes(input_size, width, num_branches)))


def _check_shapes(result, input_size, width, num_branches, what) -> None:
    expected = np.array(branch_shapes(input_size, width, num_branches))
    check_type(result, (list, tuple), what)
    if len(result) != num_branches:
        raise CheckFailed(f"{what} must have one entry per branch ({num_branches}), got {len(result)}.")
    for b, entry in enumerate(result):
        if np.shape(entry) != (3,):
            raise CheckFailed(f"entry {b} of {what} must be a tuple (C, H, W) of three numbers, got {entry!r}.")
    values = np.array([np.asarray(entry) for entry in result])
    check_dtype(values, "integer", what)
    check_close(values, expected, what, atol=0, rtol=0, mistakes=_shapes_mistakes(input_size, width, num_branches))


def check_branch_shapes(fn) -> None:
    """Visible check: HRNet-W32 at 256 x 192 in stage 4, and the tiny W16 at 96 x 64 in stage 3."""
    cases = [((256, 192), 32, 4, "[(32, 64, 48), (64, 32, 24), (128, 16, 12), (256, 8, 6)]"),
             ((96, 64), 16, 3, "[(16, 24, 16), (32, 12, 8), (64, 6, 4)]")]
    for input_size, width, num_branches, answer in cases:
        what = f"branch_shapes({input_size}, width={width}, num_branches={num_branches}) (should be {answer})"
        result = call_student(fn, input_size, width, num_branches, name="branch_shapes")
        _check_shapes(result, input_size, width, num_branches, what)
    report_passed("branch_shapes")


def hidden_branch_shapes(fn) -> None:
    """Hidden check: random widths, stages and input sizes against ``branch_shapes``."""
    fn = forbid_reference(fn, *REFERENCES["branch_shapes"])
    rng = np.random.default_rng(70)
    for _ in range(8):
        num_branches = int(rng.integers(1, 5))
        divisor = 4 * 2 ** (num_branches - 1)
        input_size = (divisor * int(rng.integers(1, 12)), divisor * int(rng.integers(1, 12)))
        width = int(rng.choice([8, 16, 18, 32, 40, 48]))
        what = f"branch_shapes({input_size}, width={width}, num_branches={num_branches})"
        result = call_student(fn, input_size, width, num_branches, name="branch_shapes")
        _check_shapes(result, input_size, width, num_branches, what)
    report_passed("branch_shapes (hidden)")


# -- exercise 2: basic_block_parameters ------------------------------------------------------------------

HINT_NO_BN = ("the BatchNorms are missing: each has a weight and a bias per channel, 2 P after each of the two "
              "convolutions (and after the projection).")
HINT_BN_BUFFERS = ("the BatchNorm's running mean and variance are buffers, not trained parameters: count 2 per channel "
                   "(weight and bias), not 4.")
HINT_NO_PROJECTION = ("when the block changes the channels or the resolution (C_in != P or stride != 1), its "
                      "shortcut is a 1x1 convolution + BatchNorm: C_in P + 2 P more.")
HINT_ALWAYS_PROJECTION = "a block that keeps the channels and the resolution has the identity shortcut: no projection."
HINT_FIRST_CONV = "the first 3x3 convolution maps C_in channels to P: 9 C_in P weights (the second one 9 P^2)."
HINT_BIAS = "the convolutions have no bias (a BatchNorm follows each one): do not count P biases per convolution."


def _block_variant(c_in, planes, stride, *, bn=2, projection="auto", first_conv_in=True, bias=False) -> int:
    first = c_in if first_conv_in else planes
    count = 9 * first * planes + 9 * planes * planes + 2 * bn * planes + (2 * planes if bias else 0)
    needs = stride != 1 or c_in != planes
    if projection == "always" or (projection == "auto" and needs):
        count += c_in * planes + bn * planes + (planes if bias else 0)
    return count


def _block_mistakes(c_in, planes, stride) -> dict:
    return {
        HINT_NO_BN: _block_variant(c_in, planes, stride, bn=0),
        HINT_BN_BUFFERS: _block_variant(c_in, planes, stride, bn=4),
        HINT_NO_PROJECTION: _block_variant(c_in, planes, stride, projection="never"),
        HINT_ALWAYS_PROJECTION: _block_variant(c_in, planes, stride, projection="always"),
        HINT_FIRST_CONV: _block_variant(c_in, planes, stride, first_conv_in=False),
        HINT_BIAS: _block_variant(c_in, planes, stride, bias=True),
    }


def _check_block(result, c_in, planes, stride, what) -> None:
    expected = basic_block_parameters(c_in, planes, stride)
    check_type(result, (int, np.integer), what)
    mistakes = {hint: wrong for hint, wrong in _block_mistakes(c_in, planes, stride).items() if wrong != expected}
    check_close(result, expected, what, atol=0, rtol=0, mistakes=mistakes)


def check_basic_block_parameters(fn) -> None:
    """Visible check: a block of HRNet-W32's first branch (32 -> 32) and a ResNet block that halves (64 -> 128)."""
    cases = [((32, 32, 1), "18,560"), ((64, 128, 2), "230,144")]
    for (c_in, planes, stride), answer in cases:
        what = f"basic_block_parameters({c_in}, {planes}, stride={stride}) (should be {answer})"
        result = call_student(fn, c_in, planes, stride, name="basic_block_parameters")
        _check_block(result, c_in, planes, stride, what)
    report_passed("basic_block_parameters")


def hidden_basic_block_parameters(fn) -> None:
    """Hidden check: random widths and strides against the formula and PyTorch's own count of a BasicBlock."""
    # conv3x3 is what building a BasicBlock calls: counting the parameters of a real block is not the exercise
    fn = forbid_reference(fn, *REFERENCES["basic_block_parameters"])
    rng = np.random.default_rng(71)
    for case in range(8):
        c_in = int(rng.choice([3, 16, 32, 48, 64, 96, 256]))
        planes = c_in if case % 3 == 0 else int(rng.choice([8, 32, 64, 128, 384]))
        stride = int(rng.choice([1, 2])) if case % 3 else 1
        what = f"basic_block_parameters({c_in}, {planes}, stride={stride})"
        result = call_student(fn, c_in, planes, stride, name="basic_block_parameters")
        _check_block(result, c_in, planes, stride, what)
    report_passed("basic_block_parameters (hidden)")


# -- exercise 3: fuse_into_branch ------------------------------------------------------------------------

HINT_BILINEAR = "the upsampling must be NEAREST-neighbour (each value repeated in a block), not bilinear."
HINT_RELU_EACH = "the ReLU comes once, after the sum (y_i = ReLU(sum ...)), not on each term."
HINT_NO_RELU = "the sum must go through a ReLU: y_i = ReLU(x_i + sum_j ...)."
HINT_NO_IDENTITY = "branch i's own input x_i is part of the sum (the identity path f_ii)."


def _fuse_variant(branches, i, lateral, *, mode="nearest", relu="after", identity=True) -> torch.Tensor:
    terms = [branches[i]] if identity else []
    for j, x_j in enumerate(branches):
        if j == i:
            continue
        y = lateral[j](x_j)
        if j > i:
            if mode == "nearest":
                y = F.interpolate(y, scale_factor=2 ** (j - i), mode="nearest")
            else:
                y = F.interpolate(y, scale_factor=2 ** (j - i), mode="bilinear", align_corners=False)
        terms.append(y)
    if relu == "each":
        return sum(F.relu(t) for t in terms)
    total = sum(terms)
    return F.relu(total) if relu == "after" else total


def _fuse_mistakes(branches, i, lateral) -> dict:
    with torch.no_grad():
        return {
            HINT_BILINEAR: _fuse_variant(branches, i, lateral, mode="bilinear"),
            HINT_RELU_EACH: _fuse_variant(branches, i, lateral, relu="each"),
            HINT_NO_RELU: _fuse_variant(branches, i, lateral, relu="none"),
            HINT_NO_IDENTITY: _fuse_variant(branches, i, lateral, identity=False),
        }


def _check_fuse(result, branches, i, lateral, what) -> None:
    with torch.no_grad():
        expected = fuse_into_branch(branches, i, lateral)
    check_type(result, torch.Tensor, what)
    check_shape(result, tuple(expected.shape), what)
    check_dtype(result, "float", what)
    check_close(result.detach(), expected, what, atol=1e-5, rtol=1e-5, mistakes=_fuse_mistakes(branches, i, lateral))


def _hand_branches() -> list[torch.Tensor]:
    x0 = torch.ones(1, 1, 4, 4)
    x0[0, 0, 0, 0] = -2.0  # the sum stays positive here, but a ReLU on x0 alone would change it
    x0[0, 0, 3, 3] = -30.0  # the sum is negative here: the ReLU makes it 0
    x1 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    x2 = torch.tensor([[[[5.0]]]])
    return [x0, x1, x2]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _every_second(x: torch.Tensor) -> torch.Tensor:
    return x[..., ::2, ::2]  # stands in for one stride-2 convolution


def _every_fourth(x: torch.Tensor) -> torch.Tensor:
    return x[..., ::4, ::4]  # stands in for two stride-2 convolutions


def check_fuse_into_branch(fn) -> None:
    """Visible check: three one-channel branches (4x4, 2x2, 1x1) and simple stand-ins for the learned layers."""
    branches = _hand_branches()
    cases = [
        (0, [None, _identity, _double], [[9, 12, 13, 13], [12, 12, 13, 13], [14, 14, 15, 15], [14, 14, 15, 0]]),
        (1, [_every_second, None, _identity], [[4, 8], [9, 10]]),
        (2, [_every_fourth, _every_second, None], [[4]]),
    ]
    for i, lateral, answer in cases:
        what = (f"fuse_into_branch(branches, i={i}, lateral) for x0 = ones(4x4) with -2 at (0, 0) and -30 at (3, 3), "
                "x1 = [[1, 2], [3, 4]], x2 = [[5]]")
        result = call_student(fn, branches, i, lateral, name="fuse_into_branch")
        check_type(result, torch.Tensor, what)
        check_shape(result, (1, 1) + np.shape(answer), what)
        check_close(result.detach(), torch.tensor([[answer]], dtype=torch.float32), what,
                    mistakes=_fuse_mistakes(branches, i, lateral))
    report_passed("fuse_into_branch")


def _shared(module: nn.Module) -> nn.Module:
    """Hand ``module`` to the student's function as it is: ``call_student`` deep-copies the inputs to
    see whether they were changed in place, and a copied module would never equal the original."""
    module.__deepcopy__ = lambda memo, module=module: module
    return module


def hidden_fuse_into_branch(fn) -> None:
    """Hidden check: real exchange units (random weights, 2 to 4 branches) against ``fuse_into_branch``."""
    fn = forbid_reference(fn, *REFERENCES["fuse_into_branch"])
    generator = torch.Generator().manual_seed(72)
    torch.manual_seed(72)
    for num_branches, width in ((2, 4), (3, 3), (4, 2)):
        channels = [width * 2**b for b in range(num_branches)]
        module = HighResolutionModule(channels, channels, num_blocks=1).eval()
        size = 4 * 2 ** (num_branches - 1)
        branches = [torch.randn(2, c, size // 2**b, (size + size // 2) // 2**b, generator=generator)
                    for b, c in enumerate(channels)]
        for i in range(num_branches):
            lateral = [None if layer is None else _shared(layer) for layer in lateral_layers(module, i)]
            what = f"fuse_into_branch into branch {i} of an exchange unit with {num_branches} branches {channels}"
            with torch.no_grad():
                result = call_student(fn, branches, i, lateral, name="fuse_into_branch")
            _check_fuse(result, branches, i, lateral, what)
    report_passed("fuse_into_branch (hidden)")


# -- exercise 4: layer_macs ------------------------------------------------------------------------------

HINT_PAPER_RULE = ("this is the HRNet paper's rule for a transposed convolution (weights x OUTPUT pixels), which "
                   "counts a stride-2 deconvolution 4 times: each INPUT pixel is multiplied by the kernel once, so "
                   "count weights x INPUT pixels.")
HINT_INPUT_PIXELS = ("a convolution computes one dot product per OUTPUT pixel: "
                     "H_out = floor((H_in + 2p - d (k - 1) - 1) / s) + 1, so a stride-2 convolution does a quarter "
                     "of the work of a stride-1 one.")
HINT_NO_KERNEL = ("every output pixel needs C_in / g x k_h x k_w multiplications per output channel: the kernel area "
                  "is missing.")
HINT_GROUPS = ("a grouped convolution sees only C_in / groups input channels per output (use weight.shape, or divide "
               "by groups).")


def _macs_variant(layer, input_size, *, output_pixels=None, kernel=True, groups=True) -> int:
    weights = layer.weight.numel()
    if not kernel:
        weights //= layer.kernel_size[0] * layer.kernel_size[1]
    if not groups:
        weights *= layer.groups
    h, w = input_size
    with torch.no_grad():
        out_h, out_w = layer(torch.zeros(1, layer.in_channels, h, w)).shape[-2:]
    use_output = output_pixels if output_pixels is not None else not isinstance(layer, nn.ConvTranspose2d)
    return weights * (out_h * out_w if use_output else h * w)


def _macs_mistakes(layer, input_size) -> dict:
    mistakes = {HINT_NO_KERNEL: _macs_variant(layer, input_size, kernel=False),
                HINT_GROUPS: _macs_variant(layer, input_size, groups=False)}
    if isinstance(layer, nn.ConvTranspose2d):
        mistakes[HINT_PAPER_RULE] = _macs_variant(layer, input_size, output_pixels=True)
    else:
        mistakes[HINT_INPUT_PIXELS] = _macs_variant(layer, input_size, output_pixels=False)
    return mistakes


def _check_macs(result, layer, input_size, what) -> None:
    expected = layer_macs(layer, input_size)
    check_type(result, (int, np.integer), what)
    mistakes = {hint: wrong for hint, wrong in _macs_mistakes(layer, input_size).items() if wrong != expected}
    check_close(result, expected, what, atol=0, rtol=0, mistakes=mistakes)


def check_layer_macs(fn) -> None:
    """Visible check: ResNet's 7x7/2 stem on 256 x 192, SimpleBaseline's first deconvolution, an HRNet 1x1 fuse conv."""
    cases = [
        (nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False), (256, 192),
         "64 x 3 x 7 x 7 weights at 128 x 96 output pixels = 115,605,504"),
        (nn.ConvTranspose2d(2048, 256, kernel_size=4, stride=2, padding=1, bias=False), (8, 6),
         "2048 x 256 x 4 x 4 weights at 8 x 6 input pixels = 402,653,184"),
        (nn.Conv2d(64, 32, kernel_size=1, bias=False), (32, 24), "64 x 32 weights at 32 x 24 pixels = 1,572,864"),
    ]
    for layer, input_size, story in cases:
        layer = _shared(layer)
        what = f"layer_macs({layer}, {input_size}) ({story})"
        result = call_student(fn, layer, input_size, name="layer_macs")
        _check_macs(result, layer, input_size, what)
    report_passed("layer_macs")


def hidden_layer_macs(fn) -> None:
    """Hidden check: random convolutions and transposed convolutions (strides, paddings, groups) against
    ``layer_macs``, which agrees with PyTorch's FLOP counter."""
    fn = forbid_reference(fn, *REFERENCES["layer_macs"])
    rng = np.random.default_rng(73)
    for case in range(10):
        groups = 2 if case == 4 else 1
        c_in, c_out = groups * int(rng.integers(1, 9)), groups * int(rng.integers(1, 9))
        kernel = (int(rng.choice([1, 3, 4, 5])), int(rng.choice([1, 3, 4])))
        stride, padding = int(rng.choice([1, 2])), (int(rng.integers(0, 3)), int(rng.integers(0, 2)))
        if case % 2:
            layer = nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=(0, 0), groups=groups, bias=False)
        else:
            layer = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=case % 3 == 0)
        input_size = (int(rng.integers(6, 40)), int(rng.integers(6, 40)))
        layer = _shared(layer)
        what = f"layer_macs({layer}, {input_size})"
        result = call_student(fn, layer, input_size, name="layer_macs")
        _check_macs(result, layer, input_size, what)
    report_passed("layer_macs (hidden)")


# -- stretch: the paper's GFLOPs of a whole model ----------------------------------------------------------------


def reference_paper_rule_gflops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """The course's count (models.complexity.measure_complexity(...)["paper_gflops"])."""
    return float(measure_complexity(model, input_size)["paper_gflops"])


def _paper_rule_mistakes(model: nn.Module, input_size: tuple[int, int]) -> dict:
    counts = measure_complexity(model, input_size)
    return {
        "the rule multiplies a transposed convolution's weights by its OUTPUT pixels (what the paper's table does), "
        "not its input pixels; this is the true multiply-add count.": counts["macs"] / 1024**3,
        "the paper's 'G' is 2^30, not 10^9.": counts["paper_gflops"] * 1024**3 / 1e9,
    }


def _check_paper_rule(fn, name: str, input_size: tuple[int, int], what: str, **overrides) -> None:
    from course_lib import models

    model = models.build(name, seed=0, **overrides).eval()
    result = call_student(fn, model, input_size, name="paper_rule_gflops")
    if not isinstance(result, (float, int, np.floating, np.integer)) or isinstance(result, bool):
        raise CheckFailed(f"{what} should return a number (GFLOPs), got {type(result).__name__}")
    check_close(float(result), reference_paper_rule_gflops(model, input_size), what, rtol=1e-6, atol=1e-9,
                mistakes=_paper_rule_mistakes(model, input_size))


def check_paper_rule_gflops(fn) -> None:
    """Visible check: the tiny SimpleBaseline (its deconvolutions are where the rule differs) at 96 x 64."""
    _check_paper_rule(fn, "simplebaseline_tiny", (96, 64), "paper_rule_gflops(simplebaseline_tiny, (96, 64))")
    report_passed("paper_rule_gflops")


def hidden_paper_rule_gflops(fn) -> None:
    """Hidden check: other models and input sizes against the reference."""
    fn = forbid_reference(fn, *REFERENCES["paper_rule_gflops"])
    for name, size, overrides in (("hrnet_tiny", (128, 96), {}), ("simplebaseline_tiny", (64, 64), {"num_deconv_layers": 2}),
                                  ("hourglass_tiny", (64, 64), {})):
        _check_paper_rule(fn, name, size, f"paper_rule_gflops({name}, {size})", **overrides)
    report_passed("paper_rule_gflops (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "branch_shapes": (branch_shapes,),
    "basic_block_parameters": (basic_block_parameters, count_parameters, conv3x3, make_layer),
    "fuse_into_branch": (fuse_into_branch, HighResolutionModule.forward),
    "layer_macs": (layer_macs, paper_gflops_rule, measure_complexity),
    "paper_rule_gflops": (reference_paper_rule_gflops, paper_gflops_rule, measure_complexity, layer_macs),
}
