"""Checks for chapter 04, Stacked Hourglass: the residual module, one hourglass (recursively), the stack,
and the stretch exercise ``residual_parameters``.

Each exercise has a visible ``check_<exercise>(fn)`` (hand-worked cases and small modules)
and a hidden ``hidden_<exercise>(fn)`` (random sizes against the course's modules in
:mod:`course_lib.models.hourglass`, whose ``forward`` the student's code may not call).

The student's code receives PyTorch modules.  The module is bound into a one-argument function
first, so that the student's code runs the very module the expected output came from, and only
the tensor goes through :func:`course_lib.grading.checks.call_student`.  Every module is put in
``eval()`` mode (BatchNorm then uses its running statistics, which the checks randomise) so that
the outputs are deterministic.  The module a student's ``ResidualModule`` makes is examined
through :func:`~course_lib.grading.checks.describe_module` and
:func:`~course_lib.grading.checks.call_method`, which work the same on a module made here and on
one that stays in the student's kernel while a notebook is graded.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.grading.checks import (
    CheckFailed,
    call_method,
    call_student,
    check_close,
    check_type,
    describe_module,
    forbid_reference,
    report_passed,
)
from course_lib.models.hourglass import Hourglass, Residual, StackedHourglass

ATOL, RTOL = 1e-5, 1e-4

# -- shared helpers --------------------------------------------------------------------------------


def _randomise(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Random weights and BatchNorm statistics (so that a wrongly placed BN shows), eval mode."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith("running_mean"):
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("weight") and tensor.dim() == 1:  # BatchNorm scale
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 4
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return module.eval()


def _bind(fn: Callable, module: nn.Module, name: str, *extra) -> Callable:
    """``x -> fn(x, module, *extra)``, named for the messages of ``call_student``."""

    def call(x):
        return fn(x, module, *extra)

    call.__name__ = name
    return call


def _check_tensor(result, expected: torch.Tensor, what: str, mistakes: Callable[[], dict] | None = None) -> None:
    """Compare with ``expected``; the typical wrong answers (``mistakes()``) are only computed on a mismatch."""
    check_type(result, torch.Tensor, what)
    if tuple(result.shape) != tuple(expected.shape):
        raise CheckFailed(f"{what} must have shape {tuple(expected.shape)}, got {tuple(result.shape)}.")
    result = result.detach().float()
    if torch.allclose(result, expected, atol=ATOL, rtol=RTOL):
        return
    check_close(result, expected, what, atol=ATOL, rtol=RTOL, mistakes=mistakes() if mistakes else None)


# -- exercise 1: ResidualModule --------------------------------------------------------------------

LAYER_NAMES = ("bn1", "conv1", "bn2", "conv2", "bn3", "conv3")
# The reference's conv_block positions of the named layers (BN, ReLU, conv, BN, ReLU, conv, BN, ReLU, conv).
_BLOCK_INDEX = {"bn1": 0, "conv1": 2, "bn2": 3, "conv2": 5, "bn3": 6, "conv3": 8}

HINT_NO_SKIP = ("it matches the convolution path alone: the residual module ADDS its input (or skip(x)) to it, "
                "y = F(x) + skip(x).")
HINT_RELU_AFTER_ADD = ("it matches ReLU(F(x) + skip(x)): that is the original (post-activation) ResNet. The hourglass "
                       "module is pre-activation: BN and ReLU come BEFORE each convolution, and nothing follows the "
                       "addition.")
HINT_NO_RELU = "it matches the module without its ReLUs: each BatchNorm is followed by a ReLU (BN -> ReLU -> conv)."


def reference_parameter_count(in_channels: int, out_channels: int, bias: bool = True, skip_always: bool = False) -> int:
    """Parameters of the residual module (BN: 2 per channel; conv: weights + biases).

        BN(in) + conv1x1(in -> m) + BN(m) + conv3x3(m -> m) + BN(m) + conv1x1(m -> out) + skip,  m = out / 2
    """
    m = out_channels // 2
    b = 1 if bias else 0
    count = 2 * in_channels + (in_channels * m + b * m) + 2 * m + (9 * m * m + b * m) + 2 * m + (m * out_channels + b * out_channels)
    if in_channels != out_channels or skip_always:
        count += in_channels * out_channels + b * out_channels
    return count


def _count_hints(in_channels: int, out_channels: int, got: int) -> list[str]:
    m = out_channels // 2
    hints = []
    if in_channels != out_channels and got == reference_parameter_count(in_channels, out_channels) - (
            in_channels * out_channels + out_channels):
        hints.append("the skip branch has no parameters, but the channels differ: skip must be a 1x1 convolution "
                     "in_channels -> out_channels (nn.Conv2d(in_channels, out_channels, kernel_size=1)).")
    if in_channels == out_channels and got == reference_parameter_count(in_channels, out_channels, skip_always=True):
        hints.append("with in_channels == out_channels the skip is the identity (nn.Identity()), with no parameters.")
    if got == reference_parameter_count(in_channels, out_channels, bias=False):
        hints.append("the convolutions have no bias: keep PyTorch's default bias=True (the original Torch code has "
                     "biases everywhere).")
    post = reference_parameter_count(in_channels, out_channels) - 2 * in_channels + 2 * out_channels
    if in_channels != out_channels and got == post:
        hints.append("the BatchNorms have the sizes of the convolutions' OUTPUTS (m, m, out): in the pre-activation "
                     "module each BN normalises a convolution's INPUT: bn1 has in_channels, bn2 and bn3 out/2.")
    if got == reference_parameter_count(in_channels, 2 * out_channels) or (
            in_channels != out_channels and got == reference_parameter_count(in_channels, out_channels) + 5 * m * m):
        hints.append("the bottleneck works on out_channels // 2 channels: conv1 maps in -> out/2, conv2 out/2 -> out/2, "
                     "conv3 out/2 -> out.")
    return hints


def _student_state(reference: Residual) -> dict[str, torch.Tensor]:
    """The reference's weights under the exercise's attribute names (bn1, conv1, ..., skip)."""
    state = {}
    for name, index in _BLOCK_INDEX.items():
        for key, value in reference.conv_block[index].state_dict().items():
            state[f"{name}.{key}"] = value.clone()
    for key, value in reference.skip.state_dict().items():
        state[f"skip.{key}"] = value.clone()
    return state


def _residual_variants(reference: Residual, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of the typical wrong modules, computed with the reference's own layers."""
    layer = {name: reference.conv_block[index] for name, index in _BLOCK_INDEX.items()}
    with torch.no_grad():
        path = layer["conv3"](F.relu(layer["bn3"](layer["conv2"](F.relu(layer["bn2"](layer["conv1"](F.relu(layer["bn1"](x)))))))))
        no_relu = layer["conv3"](layer["bn3"](layer["conv2"](layer["bn2"](layer["conv1"](layer["bn1"](x))))))
        skip = reference.skip(x)
    return {HINT_NO_SKIP: path, HINT_RELU_AFTER_ADD: F.relu(path + skip), HINT_NO_RELU: no_relu + skip}


def _check_residual_once(cls, in_channels: int, out_channels: int, generator: torch.Generator, shape: tuple,
                         guard: Callable[[Callable], Callable] = lambda f: f) -> None:
    what = f"ResidualModule({in_channels}, {out_channels})"
    module = call_student(guard(cls), in_channels, out_channels, name="ResidualModule")
    summary = describe_module(module)
    if summary is None:
        raise CheckFailed(f"{what} must create an nn.Module, got {type(module).__name__}: define "
                          "`class ResidualModule(nn.Module)` and call super().__init__() first.")
    if f"{Residual.__module__}.{Residual.__qualname__}" in summary["classes"]:
        raise CheckFailed(f"{what} contains (or is) the course's own hourglass.Residual: build the layers yourself "
                          "from nn.BatchNorm2d, nn.ReLU and nn.Conv2d, in a subclass of nn.Module.")
    missing = [name for name in (*LAYER_NAMES, "skip") if name not in summary["attributes"]]
    if missing:
        raise CheckFailed(f"{what} has no attribute(s) {', '.join(missing)}: store the layers as self.bn1, self.conv1, "
                          "self.bn2, self.conv2, self.bn3, self.conv3 and self.skip (the checks load weights by these "
                          "names).")
    got = summary["parameters"]
    expected_count = reference_parameter_count(in_channels, out_channels)
    if got != expected_count:
        hints = _count_hints(in_channels, out_channels, got)
        raise CheckFailed(f"{what} has {got:,} parameters, expected {expected_count:,}."
                          + "".join(f"\nHint: {hint}" for hint in hints))
    reference = _randomise(Residual(in_channels, out_channels), generator)
    try:
        call_method(module, "load_state_dict", _student_state(reference), strict=True)
    except Exception as error:  # RuntimeError, here or in the student's kernel
        raise CheckFailed(f"{what}: the course's weights do not fit your layers: {error}\nHint: bn1, bn2, bn3 are "
                          "nn.BatchNorm2d of the channels they normalise (in, out/2, out/2); conv1 is a 1x1 "
                          "nn.Conv2d(in, out/2), conv2 a 3x3 nn.Conv2d(out/2, out/2, padding=1), conv3 a 1x1 "
                          "nn.Conv2d(out/2, out); skip is nn.Identity() or a 1x1 nn.Conv2d(in, out).") from None
    call_method(module, "eval")
    x = torch.randn(shape[0], in_channels, *shape[1:], generator=generator)
    with torch.no_grad():
        expected = reference(x.clone())
    forward = guard(_bind(lambda inputs, m: m(inputs), module, "ResidualModule.forward"))
    with torch.no_grad():
        result = call_student(forward, x, name="ResidualModule.forward")
    _check_tensor(result, expected, f"{what}.forward(x) for x of shape {tuple(x.shape)}",
                  mistakes=lambda: _residual_variants(reference, x))


def check_ResidualModule(cls) -> None:
    """Visible check: channels 8 -> 16 (a 1x1 skip convolution) and 16 -> 16 (identity skip)."""
    generator = torch.Generator().manual_seed(4)
    _check_residual_once(cls, 8, 16, generator, (2, 5, 6))
    _check_residual_once(cls, 16, 16, generator, (1, 4, 4))
    report_passed("ResidualModule")


def hidden_ResidualModule(cls) -> None:
    """Hidden check: random channel counts and sizes against ``hourglass.Residual``."""

    def guard(fn):
        return forbid_reference(fn, *REFERENCES["ResidualModule"])  # (__init__ calls super(): a closure, not guardable)

    generator = torch.Generator().manual_seed(40)
    rng = np.random.default_rng(40)
    for in_channels, out_channels in ((3, 6), (12, 12), (32, 8), (10, 24), (64, 64)):
        height, width = (int(v) for v in rng.integers(1, 9, size=2))
        _check_residual_once(cls, in_channels, out_channels, generator, (int(rng.integers(1, 4)), height, width), guard)
    report_passed("ResidualModule (hidden)")


# -- exercise 2: hourglass_forward ----------------------------------------------------------------

HINT_NO_UP1 = ("it matches the output without the skip branch: out = up1 + upsample(low3), where up1 = "
               "hourglass.up1(x) is computed at full resolution, BEFORE pooling.")
HINT_BILINEAR = "the upsampling must be nearest neighbour (each cell copied into a 2x2 block), not bilinear."
HINT_AVERAGE_POOL = "the downsampling is a 2x2 MAX-pool (stride 2), not an average."
HINT_LOW3_AFTER_UPSAMPLING = ("low3 must run at the LOW resolution, before the upsampling: out = up1 + "
                              "upsample(low3(low2)).")
HINT_RECURSE = ("for order > 1, hourglass.low2 is itself an hourglass of order - 1: call your own function on it, "
                "hourglass_forward(low1, hourglass.low2, order - 1), instead of hourglass.low2(low1).")


def _upsample(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)


def _hourglass_variant(x: torch.Tensor, hg: Hourglass, order: int, *, skip: bool = True, upsample: str = "nearest",
                       pool: str = "max", low3_late: bool = False) -> torch.Tensor:
    """An hourglass forward with one step changed (the typical mistakes), using the module's own layers."""
    pooled = F.max_pool2d(x, 2) if pool == "max" else F.avg_pool2d(x, 2)
    low = hg.low1(pooled)
    low = _hourglass_variant(low, hg.low2, order - 1, skip=skip, upsample=upsample, pool=pool,
                             low3_late=low3_late) if order > 1 else hg.low2(low)
    up2 = hg.low3(_upsample(low, upsample)) if low3_late else _upsample(hg.low3(low), upsample)
    if not skip or hg.up1 is None:
        return up2
    return hg.up1(x) + up2


def _hourglass_mistakes(x: torch.Tensor, hg: Hourglass, order: int) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        mistakes = {
            HINT_BILINEAR: _hourglass_variant(x, hg, order, upsample="bilinear"),
            HINT_AVERAGE_POOL: _hourglass_variant(x, hg, order, pool="average"),
            HINT_LOW3_AFTER_UPSAMPLING: _hourglass_variant(x, hg, order, low3_late=True),
        }
        if hg.up1 is not None:
            mistakes[HINT_NO_UP1] = _hourglass_variant(x, hg, order, skip=False)
    return mistakes


def _identity_hourglass(order: int, channels: int, skip_connections: bool = True) -> Hourglass:
    """An hourglass whose residual modules are all the identity: every weight and bias is zero, BN the identity."""
    hg = Hourglass(order, channels, 1, skip_connections)
    with torch.no_grad():
        for module in hg.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
    return hg.eval()


def _check_hourglass_once(fn, hg: Hourglass, order: int, x: torch.Tensor, what: str, expected=None,
                          guard: Callable[[Callable], Callable] = lambda f: f) -> None:
    with torch.no_grad():
        if expected is None:
            expected = hg(x.clone())
        try:
            result = call_student(guard(_bind(fn, hg, "hourglass_forward", order)), x, name="hourglass_forward")
        except CheckFailed as failure:
            if "Hourglass.forward" in str(failure):
                raise CheckFailed(f"{failure}\nHint: {HINT_RECURSE}") from None
            raise
    _check_tensor(result, expected, what, lambda: _hourglass_mistakes(x, hg, order))


def check_hourglass_forward(fn) -> None:
    """Visible check: identity residual modules on a 4x4 map (answers by hand), then a small random hourglass."""
    # Two channels: x = 0..15 and its negative. (A residual module needs an even number of channels.)
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    x = torch.cat([x, -x], dim=1)  # (1, 2, 4, 4)
    # Residual modules = identity, so order 1 gives x + upsample(maxpool(x)).
    pooled = torch.tensor([[[5.0, 7.0], [13.0, 15.0]], [[0.0, -2.0], [-8.0, -10.0]]])  # maxpool(x), (2, 2, 2)
    pooled = pooled.repeat_interleave(2, 1).repeat_interleave(2, 2).unsqueeze(0)  # upsampled, (1, 2, 4, 4)
    _check_hourglass_once(fn, _identity_hourglass(1, 2), 1, x,
                          "hourglass_forward(x, hourglass, 1) with identity residual modules on x = 0..15 and -x "
                          "(4x4); by hand: x + upsample(maxpool(x))", expected=x + pooled)
    # Order 2 adds upsample(maxpool(maxpool(x))): 15 everywhere for the first channel, 0 for the second.
    bottom = torch.tensor([15.0, 0.0]).view(1, 2, 1, 1)
    _check_hourglass_once(fn, _identity_hourglass(2, 2), 2, x,
                          "hourglass_forward(x, hourglass, 2) with identity residual modules on x = 0..15 and -x "
                          "(4x4); by hand: x + upsample(maxpool(x) + upsample(maxpool(maxpool(x))))",
                          expected=x + pooled + bottom)
    _check_hourglass_once(fn, _identity_hourglass(1, 2, skip_connections=False), 1, x,
                          "hourglass_forward(x, hourglass, 1) without skip connections (hourglass.up1 is None); by "
                          "hand: upsample(maxpool(x))", expected=pooled)
    generator = torch.Generator().manual_seed(5)
    hg = _randomise(Hourglass(2, 8), generator)
    x = torch.randn(2, 8, 8, 4, generator=generator)
    _check_hourglass_once(fn, hg, 2, x, "hourglass_forward(x, hourglass, 2) on a random hourglass of 8 channels")
    report_passed("hourglass_forward")


def hidden_hourglass_forward(fn) -> None:
    """Hidden check: random hourglasses of order 1 to 4, with and without skip connections."""

    def guard(f):
        return forbid_reference(f, *REFERENCES["hourglass_forward"])

    generator = torch.Generator().manual_seed(50)
    for order, channels, skip, size in ((1, 4, True, (2, 6)), (3, 6, True, (8, 16)), (2, 8, False, (12, 4)),
                                        (4, 4, True, (16, 16)), (3, 2, False, (8, 8))):
        hg = _randomise(Hourglass(order, channels, 1, skip), generator)
        x = torch.randn(2, channels, *size, generator=generator)
        _check_hourglass_once(fn, hg, order, x, f"hourglass_forward on a random hourglass of order {order} "
                              f"({channels} channels, skip connections {'on' if skip else 'off'}, input {size})",
                              guard=guard)
    report_passed("hourglass_forward (hidden)")


# -- exercise 3: stacked_hourglass_forward ---------------------------------------------------------

HINT_REPLACED = ("it matches a stack whose next input REPLACES x: the remapped features and heatmaps are ADDED to "
                 "the stack's input, x_{s+1} = x_s + remap_features(f_s) + remap_heatmaps(h_s).")
HINT_NO_HEATMAP_REMAP = ("it matches a stack without the heatmap remapping: the heatmaps go back into the next stack "
                         "too, x_{s+1} = x_s + remap_features(f_s) + remap_heatmaps(h_s).")
HINT_NO_LIN = ("it matches heatmaps taken straight from the hourglass: the hourglass's output first goes through "
               "model.lins[s] (1x1 conv + BN + ReLU), and the heatmaps are predicted from those features.")
HINT_NO_AFTER = ("it matches a forward pass without model.after[s]: the released hg.lua runs a residual module "
                 "between each hourglass and its lin layer (an identity in the early layout).")


def _stacked_variant(images: torch.Tensor, model: StackedHourglass, *, replace: bool = False, heatmap_remap: bool = True,
                     lin: bool = True, after: bool = True) -> list[torch.Tensor]:
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
    return outputs


def _check_stacked_once(fn, model: StackedHourglass, images: torch.Tensor, what: str,
                        guard: Callable[[Callable], Callable] = lambda f: f) -> None:
    with torch.no_grad():
        expected = model(images.clone())
        result = call_student(guard(_bind(fn, model, "stacked_hourglass_forward")), images,
                              name="stacked_hourglass_forward")
    if isinstance(result, torch.Tensor):
        raise CheckFailed(f"{what} returned one tensor: return the LIST of every stack's heatmaps "
                          f"({model.num_stacks} tensors), the last one being the prediction. Intermediate "
                          "supervision needs all of them.")
    check_type(result, (list, tuple), what)
    if len(result) != model.num_stacks:
        raise CheckFailed(f"{what} returned {len(result)} heatmap tensors, expected one per stack ({model.num_stacks}).")
    def mistakes(stack: int) -> dict:
        with torch.no_grad():
            variants = {
                HINT_REPLACED: _stacked_variant(images, model, replace=True),
                HINT_NO_HEATMAP_REMAP: _stacked_variant(images, model, heatmap_remap=False),
                HINT_NO_LIN: _stacked_variant(images, model, lin=False),
            }
            if model.residual_after_hourglass:
                variants[HINT_NO_AFTER] = _stacked_variant(images, model, after=False)
        return {hint: wrong[stack] for hint, wrong in variants.items()}

    for s, (got, want) in enumerate(zip(result, expected)):
        _check_tensor(got, want, f"{what}: the heatmaps of stack {s + 1}", lambda: mistakes(s))


def check_stacked_hourglass_forward(fn) -> None:
    """Visible check: a random 2-stack hourglass in the released layout and a 3-stack one in the early layout,
    16 features, on 32x32 images."""
    generator = torch.Generator().manual_seed(6)
    for stacks in (2, 3):
        model = _randomise(StackedHourglass(stacks, num_keypoints=3, num_features=16, order=2,
                                            residual_after_hourglass=stacks == 2), generator)
        images = torch.randn(2, 3, 32, 32, generator=generator)
        _check_stacked_once(fn, model, images, f"stacked_hourglass_forward(images, model) with {stacks} stacks")
    report_passed("stacked_hourglass_forward")


def hidden_stacked_hourglass_forward(fn) -> None:
    """Hidden check: 1 to 4 stacks of random sizes against ``StackedHourglass.forward``."""

    def guard(f):
        return forbid_reference(f, *REFERENCES["stacked_hourglass_forward"])

    generator = torch.Generator().manual_seed(60)
    for stacks, keypoints, features, order, size, skip in ((1, 2, 8, 1, (8, 16), True), (4, 5, 8, 2, (16, 32), True),
                                                           (2, 17, 16, 3, (32, 64), False), (3, 1, 8, 1, (24, 8), True)):
        model = _randomise(StackedHourglass(stacks, keypoints, features, 1, order, skip), generator)
        images = torch.randn(2, 3, *size, generator=generator)
        _check_stacked_once(fn, model, images, f"stacked_hourglass_forward with {stacks} stack(s) of {features} "
                            f"features, order {order}, {keypoints} keypoints, images {size}", guard)
    report_passed("stacked_hourglass_forward (hidden)")


# -- stretch exercise: residual_parameters ----------------------------------------------------------------

def reference_residual_parameters(in_channels: int, out_channels: int) -> int:
    """Parameters of hg.lua's residual module, counted from the layers (every convolution has a bias)."""
    mid = out_channels // 2
    bn = lambda c: 2 * c  # noqa: E731  (scale and shift)
    conv = lambda a, b, k: a * b * k * k + b  # noqa: E731
    skip = conv(in_channels, out_channels, 1) if in_channels != out_channels else 0
    return (bn(in_channels) + conv(in_channels, mid, 1) + bn(mid) + conv(mid, mid, 3) + bn(mid)
            + conv(mid, out_channels, 1) + skip)


def _check_residual_parameters_once(fn, in_channels: int, out_channels: int) -> None:
    what = f"residual_parameters({in_channels}, {out_channels})"
    result = call_student(fn, in_channels, out_channels, name="residual_parameters")
    check_type(result, (int, np.integer), what)
    expected = sum(p.numel() for p in Residual(in_channels, out_channels).parameters())
    mid = out_channels // 2
    mistakes = {"the batch normalisations have parameters too: a scale and a shift per channel.":
                expected - 2 * (in_channels + 2 * mid),
                "every convolution of hg.lua has a bias: one per output channel.":
                expected - (mid + mid + out_channels + (out_channels if in_channels != out_channels else 0))}
    if in_channels != out_channels:
        mistakes["when the channels change, the skip branch is a 1x1 convolution with its own weights and bias."] = (
            expected - (in_channels * out_channels + out_channels))
    check_close(result, expected, what, mistakes=mistakes)


def check_residual_parameters(fn) -> None:
    """Visible check: the module after each hourglass of hourglass_8 (256 -> 256: 214,528) and the stem's 64 -> 128."""
    _check_residual_parameters_once(fn, 256, 256)
    _check_residual_parameters_once(fn, 64, 128)
    report_passed("residual_parameters")


def hidden_residual_parameters(fn) -> None:
    """Hidden check: random channel counts, with and without a skip convolution."""
    fn = forbid_reference(fn, *REFERENCES["residual_parameters"])
    rng = np.random.default_rng(61)
    for _ in range(5):
        in_channels, out_channels = int(rng.integers(1, 300)), 2 * int(rng.integers(1, 150))
        _check_residual_parameters_once(fn, in_channels, out_channels)
    _check_residual_parameters_once(fn, 128, 128)
    report_passed("residual_parameters (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "ResidualModule": (Residual.forward,),
    "hourglass_forward": (Hourglass.forward,),
    "stacked_hourglass_forward": (StackedHourglass.forward,),
    "residual_parameters": (reference_residual_parameters,),
}
