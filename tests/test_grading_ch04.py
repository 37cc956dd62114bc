"""The checks of chapter 04 (stacked hourglass): right answers pass, typical mistakes fail with the right hint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.grading import ch04_hourglass as checks
from course_lib.models.hourglass import Hourglass, Residual, StackedHourglass
from checking import assert_check_fails

pytestmark = pytest.mark.usefixtures("one_thread")


# -- answers written independently of course_lib (as a student would) -------------------------------

class ResidualModule(nn.Module):
    """The pre-activation bottleneck, with switches for the typical mistakes."""

    def __init__(self, in_channels, out_channels, *, bias=True, always_identity=False, skip_conv_always=False,
                 post_bn_sizes=False, names=("bn1", "conv1", "bn2", "conv2", "bn3", "conv3"), mode="right"):
        super().__init__()
        mid = out_channels // 2
        sizes = (mid, mid, out_channels) if post_bn_sizes else (in_channels, mid, mid)
        layers = [nn.BatchNorm2d(sizes[0]), nn.Conv2d(in_channels, mid, 1, bias=bias), nn.BatchNorm2d(sizes[1]),
                  nn.Conv2d(mid, mid, 3, padding=1, bias=bias), nn.BatchNorm2d(sizes[2]),
                  nn.Conv2d(mid, out_channels, 1, bias=bias)]
        for name, layer in zip(names, layers):
            setattr(self, name, layer)
        self.names = names
        same = in_channels == out_channels
        if always_identity or (same and not skip_conv_always):
            self.skip = nn.Identity()
        else:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.mode = mode

    def forward(self, x):
        bn1, conv1, bn2, conv2, bn3, conv3 = (getattr(self, name) for name in self.names)
        act = (lambda t: t) if self.mode == "no_relu" else F.relu
        y = conv3(act(bn3(conv2(act(bn2(conv1(act(bn1(x)))))))))
        if self.mode == "no_skip":
            return y
        if self.mode == "relu_after_add":
            return F.relu(y + self.skip(x))
        return y + self.skip(x)


def residual_class(**options):
    class Variant(ResidualModule):
        def __init__(self, in_channels, out_channels):
            super().__init__(in_channels, out_channels, **options)

    return Variant


def hourglass_forward(x, hourglass, order, *, skip=True, upsample="nearest", pool="max", low3_late=False,
                      recurse=True, ignore_none=False):
    pooled = F.max_pool2d(x, 2) if pool == "max" else F.avg_pool2d(x, 2)
    low = hourglass.low1(pooled)
    if order > 1 and recurse:
        low = hourglass_forward(low, hourglass.low2, order - 1, skip=skip, upsample=upsample, pool=pool,
                                low3_late=low3_late, ignore_none=ignore_none)
    else:
        low = hourglass.low2(low)

    def up(t):
        if upsample == "nearest":
            return F.interpolate(t, scale_factor=2, mode="nearest")
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

    out = hourglass.low3(up(low)) if low3_late else up(hourglass.low3(low))
    if not skip:
        return out
    if hourglass.up1 is None and not ignore_none:
        return out
    return hourglass.up1(x) + out


def stacked_hourglass_forward(images, model, *, replace=False, heatmap_remap=True, lin=True, last_only=False,
                              after=True):
    x = model.stem(images)
    outputs = []
    for s in range(model.num_stacks):
        features = model.hourglasses[s](x)
        if after:
            features = model.after[s](features)
        if lin:
            features = model.lins[s](features)
        heatmaps = model.heatmap_layers[s](features)
        outputs.append(heatmaps)
        if s < model.num_stacks - 1:
            remapped = model.remap_features[s](features)
            if heatmap_remap:
                remapped = remapped + model.remap_heatmaps[s](heatmaps)
            x = remapped if replace else x + remapped
    return outputs[-1] if last_only else outputs


# -- the right answers pass -------------------------------------------------------------------------

def test_right_answers_pass(capsys):
    for check in (checks.check_ResidualModule, checks.hidden_ResidualModule):
        check(ResidualModule)
    for check in (checks.check_hourglass_forward, checks.hidden_hourglass_forward):
        check(hourglass_forward)
    for check in (checks.check_stacked_hourglass_forward, checks.hidden_stacked_hourglass_forward):
        check(stacked_hourglass_forward)
    assert capsys.readouterr().out.count("all checks passed") == 6


def test_parameter_count_formula_is_the_papers_module():
    # Hand count for 8 -> 16 (m = 8): BN 16, conv1 8*8+8, BN 16, conv2 9*64+8, BN 16, conv3 8*16+16, skip 8*16+16.
    assert checks.reference_parameter_count(8, 16) == 16 + 72 + 16 + 584 + 16 + 144 + 144
    for channels in ((8, 16), (16, 16), (3, 6), (64, 64)):
        assert checks.reference_parameter_count(*channels) == sum(p.numel() for p in Residual(*channels).parameters())


def test_the_hand_worked_hourglass_answers_hold():
    # Independently of the checks: identity residual modules (zero convolutions) on a 4x4 map.
    hg = Hourglass(1, 2).eval()
    with torch.no_grad():
        for module in hg.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
        x = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 2, 1, 1)
        out = hg(x)
    assert out[0, 0, 0, 0].item() == pytest.approx(0 + 5) and out[0, 0, 3, 3].item() == pytest.approx(15 + 15)


# -- typical mistakes fail with their hint -----------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_ResidualModule, checks.hidden_ResidualModule])
@pytest.mark.parametrize(
    "options, hint",
    [
        (dict(mode="no_skip"), "convolution path alone"),
        (dict(mode="relu_after_add"), "post-activation"),
        (dict(mode="no_relu"), "without its ReLUs"),
        (dict(always_identity=True), "skip must be a 1x1 convolution"),
        (dict(bias=False), "bias=True"),
        (dict(post_bn_sizes=True), "normalises a convolution's INPUT"),
        (dict(names=("norm1", "conv1", "norm2", "conv2", "norm3", "conv3")), "has no attribute(s) bn1"),
    ],
)
def test_residual_module_mistakes(check, options, hint):
    assert_check_fails(check, residual_class(**options), hint)


def test_residual_module_with_a_conv_skip_for_equal_channels_is_explained():
    assert_check_fails(checks.check_ResidualModule, residual_class(skip_conv_always=True), "the skip is the identity")


def test_residual_module_built_from_the_course_module_fails():
    class Wrapper(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.inner = Residual(in_channels, out_channels)

        def forward(self, x):
            return self.inner(x)

    assert_check_fails(checks.check_ResidualModule, Wrapper, "contains (or is) the course's own")

    class Subclass(Residual):
        pass

    assert_check_fails(checks.hidden_ResidualModule, Subclass, "contains (or is) the course's own")


def test_residual_module_that_is_not_a_module_fails():
    assert_check_fails(checks.check_ResidualModule, lambda i, o: (lambda x: x), "must create an nn.Module")


@pytest.mark.parametrize("check", [checks.check_hourglass_forward, checks.hidden_hourglass_forward])
@pytest.mark.parametrize(
    "options, hint",
    [
        (dict(skip=False), "without the skip branch"),
        (dict(upsample="bilinear"), "nearest neighbour"),
        (dict(pool="average"), "MAX-pool"),
        (dict(low3_late=True), "LOW resolution"),
    ],
)
def test_hourglass_forward_mistakes(check, options, hint):
    assert_check_fails(check, lambda x, hg, order: hourglass_forward(x, hg, order, **options), hint)


def test_hourglass_forward_without_recursion_is_told_to_recurse():
    assert_check_fails(checks.hidden_hourglass_forward, lambda x, hg, order: hourglass_forward(x, hg, order, recurse=False),
                       "call your own function")
    assert_check_fails(checks.hidden_hourglass_forward, lambda x, hg, order: hg(x), "reference implementation")


def test_hourglass_forward_that_ignores_missing_skips_is_reported():
    assert_check_fails(checks.check_hourglass_forward,
                       lambda x, hg, order: hourglass_forward(x, hg, order, ignore_none=True), "raised TypeError")


@pytest.mark.parametrize("check", [checks.check_stacked_hourglass_forward, checks.hidden_stacked_hourglass_forward])
@pytest.mark.parametrize(
    "options, hint",
    [
        (dict(replace=True), "REPLACES x"),
        (dict(heatmap_remap=False), "without the heatmap remapping"),
        (dict(lin=False), "straight from the hourglass"),
        (dict(last_only=True), "LIST of every stack"),
        (dict(after=False), "model.after[s]"),
    ],
)
def test_stacked_forward_mistakes(check, options, hint):
    assert_check_fails(check, lambda images, model: stacked_hourglass_forward(images, model, **options), hint)


def test_stacked_forward_calling_the_model_fails():
    assert_check_fails(checks.hidden_stacked_hourglass_forward, lambda images, model: model(images), "reference implementation")


def test_stubs_fail_with_not_written_yet():
    class Stub(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            raise NotImplementedError()

    def stub(*args):
        raise NotImplementedError()

    assert_check_fails(checks.check_ResidualModule, Stub, "not written yet")
    assert_check_fails(checks.check_hourglass_forward, stub, "not written yet")
    assert_check_fails(checks.check_stacked_hourglass_forward, stub, "not written yet")


def test_the_course_modules_are_what_the_checks_compare_with():
    # The stacked model's own forward is the answer the checks expect (the student may not call it).
    model = StackedHourglass(2, 3, 8, 1, 1).eval()
    images = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        ours = stacked_hourglass_forward(images, model)
        theirs = model(images)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


# -- the stretch exercise: parameters of a residual module -------------------------------------------------

def residual_parameters(in_channels, out_channels):
    half = out_channels // 2
    weights = in_channels * half + 9 * half * half + half * out_channels
    biases = half + half + out_channels
    norms = 2 * (in_channels + half + half)
    skip = in_channels * out_channels + out_channels if in_channels != out_channels else 0
    return weights + biases + norms + skip


def test_residual_parameters_pass_and_forgotten_terms_are_named(capsys):
    checks.check_residual_parameters(residual_parameters)
    checks.hidden_residual_parameters(residual_parameters)
    assert capsys.readouterr().out.count("all checks passed") == 2
    assert residual_parameters(256, 256) == 214_528
    assert_check_fails(checks.check_residual_parameters, lambda i, o: residual_parameters(i, o) - 2 * (i + o),
                       "scale and a shift")
    assert_check_fails(checks.check_residual_parameters,
                       lambda i, o: residual_parameters(i, o) - (2 * (o // 2) + o + (o if i != o else 0)), "bias")
    assert_check_fails(checks.check_residual_parameters,
                       lambda i, o: residual_parameters(i, o) - (i * o + o if i != o else 0), "skip branch")
    assert_check_fails(checks.hidden_residual_parameters, lambda i, o: checks.reference_residual_parameters(i, o),
                       "reference implementation")
