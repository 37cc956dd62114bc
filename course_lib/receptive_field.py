"""Receptive fields: how much of the input one output pixel can see (chapter 03).

The receptive field of an output pixel is the set of input pixels that can change its
value.  For a stack of convolutions and poolings it is a square whose side follows from
the kernels and strides alone (Wei et al. 2016, section 3.2, use it to argue that the later
stages of a Convolutional Pose Machine see enough of the body to reason about it).

Layer ``l`` has kernel ``k_l``, stride ``s_l`` and dilation ``d_l`` (1 for an ordinary
convolution).  Starting from one input pixel, ``r_0 = 1`` and ``j_0 = 1``:

    r_l = r_{l-1} + (k_l - 1) d_l j_{l-1}        (the field grows by the kernel's reach,
    j_l = j_{l-1} s_l                             measured in input pixels)

``j_l`` (the *jump*, or cumulative stride) is the distance in input pixels between two
neighbouring pixels of layer ``l``'s output.  Unrolled:
``r_L = 1 + sum_l (k_l - 1) d_l prod_{i < l} s_i``: a 3x3 convolution after two stride-2
poolings adds 2 * 4 = 8 pixels, one at the input only 2.

:func:`receptive_field` and :func:`cumulative_strides` compute the recursion for a list of
layers; :func:`layers_of` reads that list from a sequential PyTorch module;
:func:`measure_receptive_field` *measures* the field of any network by back-propagation
(the brute-force check of the formula: the input pixels whose gradient is non-zero).

Sizes are in input pixels; the fields are square because the course's kernels are.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from course_lib.validation import check_size

Layer = Sequence[int]  # (kernel, stride) or (kernel, stride, dilation)


def _check_layers(layers: Any) -> list[tuple[int, int, int]]:
    """``layers`` as a list of ``(kernel, stride, dilation)`` positive ints."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a list of (kernel, stride) pairs, got {type(layers).__name__}")
    checked = []
    for index, layer in enumerate(layers):
        try:
            values = [int(v) for v in layer]
            exact = all(float(v) == int(v) for v in layer)
        except (TypeError, ValueError):
            raise TypeError(f"layers[{index}] must be (kernel, stride) or (kernel, stride, dilation), "
                            f"got {layer!r}") from None
        if len(values) not in (2, 3) or not exact or min(values) < 1:
            raise ValueError(f"layers[{index}] must be (kernel, stride) or (kernel, stride, dilation) of positive "
                             f"integers, got {layer!r}")
        kernel, stride, dilation = (values + [1])[:3]
        checked.append((kernel, stride, dilation))
    return checked


def receptive_field(layers: Sequence[Layer]) -> list[int]:
    """Receptive field (input pixels) after each layer of a stack of convolutions and poolings.

        r_0 = 1, j_0 = 1;   r_l = r_{l-1} + (k_l - 1) d_l j_{l-1},   j_l = j_{l-1} s_l

    Args:
        layers: ``[(kernel, stride), ...]`` or ``(kernel, stride, dilation)`` triples, input first.

    Returns:
        ``[r_1, ..., r_L]``: the side of the square field after each layer (empty for no layer).

    Example: three 3x3 stride-1 convolutions see 7 pixels, ``[3, 5, 7]``; a 2x2 stride-2
    pooling in between makes the next 3x3 convolution reach twice as far:
    ``receptive_field([(3, 1), (2, 2), (3, 1)]) == [3, 4, 8]``.
    """
    size, jump, sizes = 1, 1, []
    for kernel, stride, dilation in _check_layers(layers):
        size += (kernel - 1) * dilation * jump
        jump *= stride
        sizes.append(size)
    return sizes


def cumulative_strides(layers: Sequence[Layer]) -> list[int]:
    """The jump ``j_l = s_1 s_2 ... s_l`` after each layer: input pixels between neighbouring outputs."""
    strides = [stride for _, stride, _ in _check_layers(layers)]
    return [int(jump) for jump in np.cumprod(strides)] if strides else []


def layers_of(module: nn.Module) -> list[tuple[int, int, int]]:
    """``(kernel, stride, dilation)`` of every convolution and pooling of ``module``, in order.

    Valid for a *sequential* stack (an ``nn.Sequential`` of convolutions, poolings and
    point-wise layers): the modules are read in the order they were registered, which is
    the order they run.  Transposed convolutions and adaptive poolings have no fixed
    geometry and are refused.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    layers = []
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.ConvTranspose2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            raise ValueError(f"layers_of cannot read {name or 'module'} ({type(layer).__name__}): its geometry "
                             "is not a kernel and a stride")
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel, stride = _pair(layer.kernel_size, name), _pair(layer.stride, name)
            dilation = _pair(getattr(layer, "dilation", 1), name)
            layers.append((kernel, stride, dilation))
    return layers


def _pair(value: Any, name: str) -> int:
    """One number from an int or a square (a, a) pair."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{name or 'module'} has a non-square kernel, stride or dilation {tuple(value)}")
        value = value[0]
    return int(value)


# ----------------------------------------------------------------------------- measurement
class MeasuredField(NamedTuple):
    """What :func:`measure_receptive_field` found.

    Attributes:
        height, width: extent (input pixels) of the pixels that influence the output pixel.
        mask: ``(H, W)`` bool, True where the input influences the output pixel.
        clipped: the field touches the border of the input, so it may be larger than measured
            (use a larger ``input_size``).
    """

    height: int
    width: int
    mask: np.ndarray
    clipped: bool


def measure_receptive_field(
    model: nn.Module,
    input_size: tuple[int, int],
    output_index: int = -1,
    position: tuple[int, int] | None = None,
) -> MeasuredField:
    """Measure the receptive field of one output pixel by back-propagation (brute force).

    The network is copied and made monotone so that no path can cancel or switch off:
    every convolution and linear weight becomes ``1 / fan_in`` with zero bias, max-poolings
    become average poolings of the same geometry (a maximum passes the gradient to one
    pixel only; an average to all of them, and the field is the same), batch norms become
    the identity, dropout is switched off, and everything runs in float64.  With an input
    of ones every activation is then positive, ReLUs pass everything, and the gradient of
    the output pixel with respect to the input is positive exactly on the input pixels the
    output can see.

    Args:
        model: a network taking ``(1, 3, H, W)``; it may return a tensor or a list of them
            (a multi-stage network).  The model itself is not changed.
        input_size: ``(H, W)`` of the probe input: make it larger than the field, or the
            result is clipped (``clipped=True``).
        output_index: which output of a list (default the last: the final stage).
        position: ``(row, column)`` of the output pixel; default the centre of the map.

    Returns:
        :class:`MeasuredField` with the extent, the mask and whether it touches the border.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    height, width = check_size(input_size, "input_size")
    probe = _monotone_copy(model)
    images = torch.ones(1, 3, height, width, dtype=torch.float64, requires_grad=True)
    output = probe(images)
    if isinstance(output, (list, tuple)):
        if not -len(output) <= int(output_index) < len(output):
            raise ValueError(f"output_index must index the model's {len(output)} outputs, got {output_index!r}")
        output = output[int(output_index)]
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        raise ValueError(f"the model must return (1, C, h, w) maps, got {getattr(output, 'shape', type(output))}")
    rows, columns = output.shape[-2:]
    row, column = (rows // 2, columns // 2) if position is None else (int(position[0]), int(position[1]))
    if not (0 <= row < rows and 0 <= column < columns):
        raise ValueError(f"position must lie on the {rows}x{columns} output map, got {position!r}")
    output[0, :, row, column].sum().backward()
    mask = (images.grad[0].abs().sum(dim=0) > 0).numpy()  # (H, W)
    if not mask.any():
        return MeasuredField(0, 0, mask, False)
    seen_rows, seen_columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    clipped = bool(seen_rows[0] == 0 or seen_rows[-1] == height - 1 or seen_columns[0] == 0
                   or seen_columns[-1] == width - 1)
    return MeasuredField(int(seen_rows[-1] - seen_rows[0] + 1), int(seen_columns[-1] - seen_columns[0] + 1),
                         mask, clipped)


def _monotone_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` with positive averaging weights and average poolings (see above)."""
    probe = copy.deepcopy(model).double().eval()
    _swap_max_pools(probe)
    with torch.no_grad():
        for layer in probe.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                fan_in = layer.weight[0].numel() if not isinstance(layer, nn.ConvTranspose2d) else \
                    layer.weight[:, 0].numel()
                layer.weight.fill_(1.0 / fan_in)
                if layer.bias is not None:
                    layer.bias.zero_()
            elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
                if layer.affine:
                    layer.weight.fill_(1.0)
                    layer.bias.zero_()
    for parameter in probe.parameters():
        parameter.requires_grad_(False)
    return probe


def _swap_max_pools(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.MaxPool2d):
            if _pair(child.dilation, name) != 1:
                raise ValueError(f"measure_receptive_field cannot probe the dilated max-pooling {name}")
            setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                               ceil_mode=child.ceil_mode, count_include_pad=True))
        else:
            _swap_max_pools(child)


__all__ = [
    "MeasuredField",
    "cumulative_strides",
    "layers_of",
    "measure_receptive_field",
    "receptive_field",
]
