"""The checks of chapter 07 (HRNet): right answers pass, typical mistakes fail with the right hint; the
course's new references (branch shapes, block parameters, the exchange unit's fusion, layer MACs) agree
with independent ones (the real network, PyTorch's own counts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.grading import ch07_hrnet as checks
from course_lib.models import build, count_parameters
from course_lib.models.complexity import complexity_by_module, layer_macs, measure_complexity
from course_lib.models.hrnet import HighResolutionModule, branch_shapes, fuse_into_branch, lateral_layers
from course_lib.models.resnet import BasicBlock, basic_block_parameters, make_layer
from checking import SANDBOX, assert_check_fails

# -- answers written independently of course_lib (as a student would), with switches for the mistakes --


def student_branch_shapes(input_size, width, num_branches, *, first=4, double=True, swap=False, floats=False):
    height, width_px = input_size
    shapes = []
    for b in range(num_branches):
        step = first * 2**b
        channels = width * 2**b if double else width
        h, w = (height / step, width_px / step) if floats else (height // step, width_px // step)
        shapes.append((channels, w, h) if swap else (channels, h, w))
    return shapes


def student_block(in_channels, planes, stride=1, *, bn_per_channel=2, projection="auto", bias=False):
    count = 9 * in_channels * planes + 9 * planes * planes + 2 * bn_per_channel * planes
    count += 2 * planes if bias else 0
    if projection == "always" or (projection == "auto" and (stride != 1 or in_channels != planes)):
        count += in_channels * planes + bn_per_channel * planes
    return count


def student_fuse(branches, i, lateral, *, mode="nearest", relu="after", identity=True):
    total = branches[i] if identity else 0
    for j in range(len(branches)):
        if j == i:
            continue
        y = lateral[j](branches[j])
        if j > i:
            factor = 2 ** (j - i)
            if mode == "nearest":
                y = y.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
            else:
                y = F.interpolate(y, scale_factor=factor, mode="bilinear", align_corners=False)
        total = total + (torch.relu(y) if relu == "each" else y)
    if relu == "each":
        return total - branches[i] + torch.relu(branches[i]) if identity else total
    return torch.relu(total) if relu == "after" else total


def student_macs(layer, input_size, *, paper_rule=False, input_pixels=False, kernel=True, groups=True):
    h, w = input_size
    kh, kw = layer.kernel_size
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    ph, pw = layer.padding
    c_in, c_out, g = layer.in_channels, layer.out_channels, layer.groups
    per_pixel = (c_in // (g if groups else 1)) * c_out * (kh * kw if kernel else 1)
    if isinstance(layer, nn.ConvTranspose2d):
        out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + layer.output_padding[0] + 1
        out_w = (w - 1) * sw - 2 * pw + dw * (kw - 1) + layer.output_padding[1] + 1
        return per_pixel * (out_h * out_w if paper_rule else h * w)
    out_h = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return per_pixel * (h * w if input_pixels else out_h * out_w)


# -- the right answers pass -------------------------------------------------------------------------------

def test_right_answers_pass(capsys):
    for check in (checks.check_branch_shapes, checks.hidden_branch_shapes):
        check(student_branch_shapes)
    for check in (checks.check_basic_block_parameters, checks.hidden_basic_block_parameters):
        check(student_block)
    for check in (checks.check_fuse_into_branch, checks.hidden_fuse_into_branch):
        check(student_fuse)
    for check in (checks.check_layer_macs, checks.hidden_layer_macs):
        check(student_macs)
    assert capsys.readouterr().out.count("all checks passed") == 8


# -- the course's references agree with independent ones -----------------------------------------------------

def test_branch_shapes_are_those_of_the_real_network():
    model = build("hrnet_tiny", input_size=(128, 96)).eval()
    seen = {}
    for stage in (2, 3, 4):
        module = getattr(model, f"stage{stage}")[0]
        module.register_forward_hook(lambda m, inputs, output, stage=stage: seen.__setitem__(stage, inputs[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 96))
    for stage, branches in seen.items():
        assert [tuple(x.shape[1:]) for x in branches] == branch_shapes((128, 96), model.width, stage)
    assert branch_shapes((256, 192), 32, 4) == [(32, 64, 48), (64, 32, 24), (128, 16, 12), (256, 8, 6)]


def test_branch_shapes_rejects_bad_input():
    with pytest.raises(ValueError, match="multiples of"):
        branch_shapes((100, 64), 32, 4)
    with pytest.raises(ValueError, match="input_size"):
        branch_shapes((0, 64), 32, 1)
    with pytest.raises(ValueError, match="num_branches"):
        branch_shapes((64, 64), 32, 0)
    with pytest.raises(TypeError, match="width"):  # a fractional width is the wrong kind of number
        branch_shapes((64, 64), 2.5, 1)


@pytest.mark.parametrize("in_channels, planes, stride", [(32, 32, 1), (16, 32, 1), (64, 64, 2), (3, 5, 2), (48, 48, 1)])
def test_basic_block_parameters_counts_what_pytorch_counts(in_channels, planes, stride):
    block = make_layer(BasicBlock, in_channels, planes, 1, stride)
    assert basic_block_parameters(in_channels, planes, stride) == count_parameters(block)
    assert basic_block_parameters(in_channels, planes, stride) == student_block(in_channels, planes, stride)


def test_basic_block_parameters_rejects_bad_input():
    for args in ((0, 4), (4, -1), (4, 4, 0), (4.0, 4)):
        with pytest.raises(ValueError):
            basic_block_parameters(*args)


@pytest.mark.parametrize("num_branches", [2, 3, 4])
def test_fuse_into_branch_is_what_the_exchange_unit_computes(num_branches):
    torch.manual_seed(0)
    channels = [3 * 2**b for b in range(num_branches)]
    module = HighResolutionModule(channels, channels, num_blocks=1).eval()
    size = 4 * 2 ** (num_branches - 1)
    inputs = [torch.randn(2, c, size // 2**b, 2 * size // 2**b) for b, c in enumerate(channels)]
    with torch.no_grad():
        expected = module(inputs)
        branches = [branch(x) for branch, x in zip(module.branches, inputs)]
        for i in range(num_branches):
            got = fuse_into_branch(branches, i, lateral_layers(module, i))
            torch.testing.assert_close(got, expected[i])
            torch.testing.assert_close(student_fuse(branches, i, lateral_layers(module, i)), expected[i])


def test_lateral_layers_and_fuse_reject_bad_input():
    module = HighResolutionModule([4, 8], [4, 8], num_blocks=1)
    with pytest.raises(ValueError, match="i must be"):
        lateral_layers(module, 2)
    with pytest.raises(ValueError, match="HighResolutionModule"):
        lateral_layers(nn.Conv2d(1, 1, 1), 0)
    with pytest.raises(ValueError, match="one entry per branch"):
        fuse_into_branch([torch.zeros(1, 4, 4, 4), torch.zeros(1, 8, 2, 2)], 0, [None])
    with pytest.raises(ValueError, match="non-empty"):
        fuse_into_branch([], 0, [])


@pytest.mark.parametrize(
    "layer, size",
    [
        (nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), (256, 192)),
        (nn.Conv2d(8, 16, 3, stride=2, padding=1, dilation=2), (17, 23)),
        (nn.Conv2d(8, 16, (3, 1), stride=(1, 2), padding=(1, 0), groups=4), (10, 9)),
        (nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, bias=False), (6, 5)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=0, output_padding=1, groups=2), (7, 3)),
    ],
)
def test_layer_macs_counts_what_pytorch_counts(layer, size):
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(1, layer.in_channels, *size))
    assert layer_macs(layer, size) == counter.get_total_flops() // 2
    assert layer_macs(layer, size) == student_macs(layer, size)


def test_layer_macs_rejects_bad_input():
    with pytest.raises(TypeError, match="Conv2d"):
        layer_macs(nn.Linear(3, 4), (4, 4))
    with pytest.raises(ValueError, match="too small"):
        layer_macs(nn.Conv2d(1, 1, 5), (3, 3))
    with pytest.raises(ValueError, match="input_size"):
        layer_macs(nn.Conv2d(1, 1, 1), (0, 3))


def test_complexity_by_module_adds_up():
    with torch.device("meta"):
        model = build("simplebaseline_r50")
    parts = complexity_by_module(model, (256, 192))
    whole = measure_complexity(model, (256, 192))
    assert list(parts) == ["backbone", "deconv_layers", "final_layer"]
    assert sum(p["params"] for p in parts.values()) == whole["params"]
    assert sum(p["macs"] for p in parts.values()) == whole["macs"]
    # the deconvolutions by hand: 2048 -> 256 at 8x6, then 256 -> 256 at 16x12 and 32x24, 4x4 kernels
    assert parts["deconv_layers"]["macs"] == 16 * 256 * (2048 * 8 * 6 + 256 * 16 * 12 + 256 * 32 * 24)
    with pytest.raises(ValueError, match="depth"):
        complexity_by_module(model, (256, 192), depth=0)


# -- typical mistakes fail with their hint -----------------------------------------------------------------


@pytest.mark.parametrize("check", [checks.check_branch_shapes, checks.hidden_branch_shapes])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(first=1), "full size"),
        (dict(first=2), "TWO stride-2"),
        (dict(double=False), "doubles the channels"),
        (dict(swap=True), "(channels, height, width)"),
        (dict(floats=True), "integers"),
    ],
)
def test_branch_shapes_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: student_branch_shapes(*args, **mistake), hint)


def test_branch_shapes_wrong_length_is_explained():
    assert_check_fails(checks.check_branch_shapes, lambda *args: student_branch_shapes(*args)[:-1], "one entry per branch")


@pytest.mark.parametrize("check", [checks.check_basic_block_parameters, checks.hidden_basic_block_parameters])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(bn_per_channel=0), "BatchNorms are missing"),
        (dict(bn_per_channel=4), "buffers"),
        (dict(projection="never"), "its shortcut is a 1x1 convolution"),
        (dict(bias=True), "no bias"),
    ],
)
def test_basic_block_parameters_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: student_block(*args, **mistake), hint)


def test_basic_block_projection_everywhere_fails():
    assert_check_fails(checks.check_basic_block_parameters, lambda *args: student_block(*args, projection="always"),
                       "identity shortcut")


def test_basic_block_first_conv_from_planes_fails():
    def both_convs_square(c, p, s):
        return 18 * p * p + 4 * p + (c * p + 2 * p if c != p or s != 1 else 0)

    assert_check_fails(checks.check_basic_block_parameters, both_convs_square, "9 C_in P")


def test_basic_block_float_result_fails():
    assert_check_fails(checks.check_basic_block_parameters, lambda *args: float(student_block(*args)), "must be of type int")


@pytest.mark.parametrize("check", [checks.check_fuse_into_branch, checks.hidden_fuse_into_branch])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(mode="bilinear"), "NEAREST"),
        (dict(relu="each"), "not on each term"),
        (dict(relu="none"), "must go through a ReLU"),
        (dict(identity=False), "own input x_i"),
    ],
)
def test_fuse_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: student_fuse(*args, **mistake), hint)


def test_fuse_with_a_fixed_upsampling_factor_is_caught():
    def factor_two(branches, i, lateral):
        total = branches[i]
        for j in range(len(branches)):
            if j != i:
                y = lateral[j](branches[j])
                total = total + (F.interpolate(y, scale_factor=2, mode="nearest") if j > i else y)
        return torch.relu(total)

    assert_check_fails(checks.check_fuse_into_branch, factor_two, "fuse_into_branch raised RuntimeError")


@pytest.mark.parametrize("check", [checks.check_layer_macs, checks.hidden_layer_macs])
@pytest.mark.parametrize(
    "mistake, hint",
    [
        (dict(paper_rule=True), "HRNet paper's rule"),
        (dict(input_pixels=True), "one dot product per OUTPUT pixel"),
        (dict(kernel=False), "kernel area is missing"),
    ],
)
def test_layer_macs_mistakes(check, mistake, hint):
    assert_check_fails(check, lambda *args: student_macs(*args, **mistake), hint)


def test_layer_macs_groups_ignored_fails_the_hidden_check():
    assert_check_fails(checks.hidden_layer_macs, lambda *args: student_macs(*args, groups=False), "groups")


def test_stubs_and_reference_calls_fail():
    def stub(*args):
        raise NotImplementedError()

    for check in (checks.check_branch_shapes, checks.check_basic_block_parameters, checks.check_fuse_into_branch,
                  checks.check_layer_macs):
        assert_check_fails(check, stub, "not written yet")
    assert_check_fails(checks.hidden_branch_shapes, lambda *args: branch_shapes(*args), "reference implementation")
    assert_check_fails(checks.hidden_basic_block_parameters, basic_block_parameters, "course's own")
    assert_check_fails(checks.hidden_basic_block_parameters,
                       lambda c, p, s: count_parameters(make_layer(BasicBlock, c, p, 1, s)), "reference implementation")
    assert_check_fails(checks.hidden_basic_block_parameters,
                       lambda c, p, s: sum(t.numel() for t in BasicBlock(c, p, s).parameters()) + (
                           c * p + 2 * p if c != p or s != 1 else 0), "reference implementation")
    assert_check_fails(checks.hidden_fuse_into_branch, lambda *args: fuse_into_branch(*args), "reference implementation")
    assert_check_fails(checks.hidden_layer_macs, lambda *args: layer_macs(*args), "reference implementation")


# -- the solved notebook gets full marks from the grader (experiments skipped, as when grading) ---------------

@pytest.mark.notebook
def test_the_solved_notebook_gets_full_marks(tmp_path):
    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = Path(__file__).resolve().parents[1] / "solutions" / "07_hrnet.py"
    path = tmp_path / "07_hrnet.ipynb"
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved", sandbox=SANDBOX)
    lost = [(g.exercise, g.message) for g in result.exercises if g.points != g.max_points]
    assert result.points == result.max_points and not result.flagged, lost
