"""How big and how fast a network is: parameters, multiply-adds, the papers' GFLOPs, latency (chapter 07).

Three numbers describe the cost of a network, and they do not always agree:

* ``params``: the number of trained weights (memory, not speed).
* ``macs``: multiply-accumulate operations of one forward pass of one image, counted by
  PyTorch itself (``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per
  multiply-add of every convolution, transposed convolution and matrix product; we halve
  it).  BatchNorm, ReLU, pooling, upsampling and additions are not counted: they are
  cheap in arithmetic, though not in memory traffic.
* ``paper_gflops``: the "GFLOPs" column of the HRNet paper's tables (and of the official
  repository's README), computed with the official rule of ``lib/utils/utils.py``
  (``get_model_summary``) so that the chapter's table reproduces the paper.

Wall-clock time is a fourth number, and the one a user feels: :func:`measure_latency`.
It is often said that HRNet has fewer GFLOPs than SimpleBaseline yet runs slower; the
chapter measures it.  Two things to know first.  (1) "Fewer GFLOPs" holds for the paper's
count (HRNet-W32 7.1 vs SimpleBaseline-R50 8.9 at 256x192) but not for the true
multiply-adds (7.6 G vs 5.4 G): the paper's rule counts SimpleBaseline's deconvolutions
four times over.  (2) Many thin parallel branches, many small convolutions and the
fusion's upsampling and additions cost memory traffic and kernel launches that no
multiply-add count sees, which matters most on a GPU at batch 1.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.validation import check_choice, check_integer, check_size


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``), each shared tensor counted once."""
    return sum(p.numel() for p in _check_model(model).parameters() if p.requires_grad)


def paper_gflops_rule(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-adds of one layer call as the official ``get_model_summary`` counts them.

    * convolution (``Conv2d`` *and* ``ConvTranspose2d``): ``weight.numel() * H_out * W_out``;
    * ``Linear``: ``output.numel() * in_features`` (the batch is included: use a batch of 1);
    * every other layer: 0.

    (The official code picks the layers by class name, any name containing "Conv", and
    ``Linear``; for the models of this course that is the same set.)  For a ``Conv2d`` (bias
    ignored) this is the true count C_out * C_in/groups * k_h * k_w per output pixel.  For a ``ConvTranspose2d`` it is not: each *input* pixel is multiplied by
    the k x k kernel, so the true count is ``weight.numel() * H_in * W_in``; multiplying by
    the output size over-counts by stride^2 (4 for SimpleBaseline's deconvolutions).
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return module.weight.numel() * math.prod(output.shape[2:])
    if isinstance(module, nn.Linear):
        return output.numel() * inputs[0].shape[1]
    return 0


def measure_complexity(model: nn.Module, input_size: tuple[int, int]) -> dict[str, float]:
    """Parameters, true multiply-adds and the HRNet paper's GFLOPs of ``model`` on one ``(3, H, W)`` image.

    Returns a dict with

    * ``params``: trainable parameters (int);
    * ``macs``: multiply-adds counted by ``torch.utils.flop_counter`` (FLOPs / 2) (int);
    * ``paper_gflops``: the official HRNet/SimpleBaseline rule (:func:`paper_gflops_rule`),
      summed over every convolution and linear layer call and divided by 1024^3 (the
      official code divides by 2^30, not 10^9) (float).

    The two counts differ in two ways: the paper's rule multiplies a transposed
    convolution's weights by its *output* size (4x the true work of a stride-2
    deconvolution), and it reports "G" as 2^30.  For HRNet (convolutions only) paper_gflops
    is exactly ``macs / 2^30`` (biases are in neither count); for SimpleBaseline the
    deconvolutions make up more than half of paper_gflops.  At 256x192 the rule gives HRNet-W32 7.12 and W48 14.61 (the paper's table:
    7.1 and 14.6; at 384x288 16.02 and 32.88: 16.0 and 32.9), the 8-stack hourglass 14.30
    (14.3), and SimpleBaseline-R50/101/152 8.99/12.38/15.76 (the table: 8.9/12.4/15.7, figures
    carried over from the SimpleBaseline paper, which agree with this rule to within 0.1 but
    follow no single rounding of it).

    The model is run once in eval mode without gradients and put back in the mode it was in.
    Counting needs shapes only: a model built under ``with torch.device("meta"):`` is counted
    without allocating its weights or doing any arithmetic.
    """
    model = _check_model(model)
    height, width = check_size(input_size, "input_size")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    images = torch.randn(1, 3, height, width, device=device, dtype=dtype)

    paper_count = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal paper_count
        paper_count += paper_gflops_rule(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {
        "params": count_parameters(model),
        "macs": int(counter.get_total_flops()) // 2,
        "paper_gflops": paper_count / 1024**3,
    }


def _check_measurement(model: Any, input_size: Any, device: Any) -> tuple[nn.Module, tuple[int, int], torch.device]:
    """The checks shared by the two timings: a module, an ``(H, W)`` size, a CPU or an available CUDA device."""
    model = _check_model(model)
    size = check_size(input_size, "input_size")
    device = torch.device(device)
    check_choice(device.type, "device type", ("cpu", "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but torch.cuda.is_available() is False")
    return model, size, device


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    input_size: tuple[int, int],
    device: str | torch.device = "cpu",
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
) -> dict[str, Any]:
    """Wall-clock time of one forward pass (eval mode, no gradients) on a random ``(batch, 3, H, W)`` batch.

    Runs ``warmup`` untimed passes (memory allocation, cuDNN autotuning), then ``repeats``
    timed ones; on CUDA it waits for the GPU (``torch.cuda.synchronize``) before reading the
    clock, otherwise it would time only the kernel launches.  The model is moved to
    ``device`` for the measurement and moved back (and put back in its mode) afterwards.

    Returns a dict: ``mean_ms``, ``std_ms``, ``median_ms``, ``min_ms`` (per batch),
    ``images_per_second`` (batch / mean time), ``batch``, ``device``, ``input_size``,
    ``repeats``, ``threads`` (CPU threads torch used).
    """
    model, (height, width), device = _check_measurement(model, input_size, device)
    batch, repeats = check_integer(batch, "batch", minimum=1), check_integer(repeats, "repeats", minimum=1)
    warmup = check_integer(warmup, "warmup", minimum=0)
    parameter = next(model.parameters(), None)
    original_device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.to(device).eval()
    images = torch.randn(batch, 3, height, width, device=device)
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(images)
            _synchronize(device)
            for _ in range(repeats):
                start = time.perf_counter()
                model(images)
                _synchronize(device)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.to(original_device).train(was_training)
    mean_ms = statistics.fmean(times)
    return {
        "mean_ms": mean_ms,
        "std_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "images_per_second": batch / (mean_ms / 1000.0),
        "batch": batch,
        "device": str(device),
        "input_size": (height, width),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }


def measure_training_speed(
    model: nn.Module,
    input_size: tuple[int, int],
    batch: int = 32,
    steps: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Images per second of a training step (forward, backward, no optimiser) at ``batch`` images.

    The loss is the mean square of every output (every stage of a multi-stage model), which
    exercises the same backward pass as a heatmap or regression loss.  It runs on a copy of
    the model, whose BatchNorm statistics and gradients stay untouched.

    Returns a dict: ``images_per_second``, ``mean_ms`` (per step), ``batch``, ``steps``, ``input_size``, ``device``.
    """
    model, (height, width), device = _check_measurement(model, input_size, device)
    batch, steps = check_integer(batch, "batch", minimum=1), check_integer(steps, "steps", minimum=1)
    warmup = check_integer(warmup, "warmup", minimum=0)
    # A copy, so that the model's BatchNorm statistics and gradients are left as they were.
    model = copy.deepcopy(model).to(device).train()
    images = torch.randn(batch, 3, height, width, device=device)

    def step() -> None:
        outputs = model(images)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = sum(output.pow(2).mean() for output in outputs)
        loss.backward()

    for _ in range(warmup):
        step()
    _synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    mean_s = statistics.fmean(times)
    return {
        "images_per_second": batch / mean_s,
        "mean_ms": mean_s * 1000.0,
        "batch": batch,
        "steps": steps,
        "input_size": (height, width),
        "device": str(device),
    }


# ----------------------------------------------------------------------------- by hand, layer by layer (chapter 07)
def _output_length(length: int, kernel: int, stride: int, padding: int, dilation: int, output_padding: int,
                   transposed: bool) -> int:
    if transposed:
        return (length - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def layer_macs(layer: nn.Module, input_size: tuple[int, int]) -> int:
    """True multiply-adds of one ``Conv2d`` or ``ConvTranspose2d`` on one image of ``(H_in, W_in)`` (bias not counted).

    A convolution computes, at each *output* pixel, a dot product over ``C_in / g`` channels
    and a ``k_h x k_w`` window for each of its ``C_out`` outputs; a transposed convolution
    multiplies each *input* pixel by the ``C_out / g x k_h x k_w`` kernel of each input channel
    and adds the products into the output (that is why it enlarges the map):

        Conv2d:           C_out * (C_in / g) * k_h * k_w * H_out * W_out
        ConvTranspose2d:  C_in * (C_out / g) * k_h * k_w * H_in * W_in

    with ``H_out = floor((H_in + 2 p - d (k - 1) - 1) / s) + 1`` for a convolution.  Both are
    ``weight.numel()`` times the number of pixels the kernel visits.  The HRNet paper's rule
    (:func:`paper_gflops_rule`) uses the *output* size for both, which counts a stride-2
    deconvolution four times.

    Args:
        layer: an ``nn.Conv2d`` or ``nn.ConvTranspose2d``.
        input_size: ``(H_in, W_in)`` of its input.
    """
    if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        raise TypeError(f"layer must be an nn.Conv2d or nn.ConvTranspose2d, got {type(layer).__name__}")
    height, width = check_size(input_size, "input_size")
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.weight.numel() * height * width  # (C_in, C_out / g, k_h, k_w) at every input pixel
    out_height, out_width = (
        _output_length(n, k, s, p, d, 0, transposed=False)
        for n, k, s, p, d in zip((height, width), layer.kernel_size, layer.stride, _padding(layer), layer.dilation)
    )
    if out_height < 1 or out_width < 1:
        raise ValueError(f"input_size {(height, width)} is too small for {layer}")
    return layer.weight.numel() * out_height * out_width  # (C_out, C_in / g, k_h, k_w) at every output pixel


def _padding(layer: nn.Conv2d) -> tuple[int, int]:
    if isinstance(layer.padding, str):  # "same" / "valid"
        if layer.padding == "valid":
            return 0, 0
        return tuple(d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation))
    return tuple(layer.padding)


def complexity_by_module(model: nn.Module, input_size: tuple[int, int], depth: int = 1) -> dict[str, dict[str, int]]:
    """Parameters and true multiply-adds of each sub-module ``depth`` levels below ``model``, in order.

    Names are those of ``model.named_modules()`` (``"stage2"``, ``"backbone.layer4"``...).
    MACs come from ``torch.utils.flop_counter`` (one ``(1, 3, H, W)`` image, FLOPs / 2), counted
    in the layers without children (convolutions, linear layers) and added up to the module
    that holds them; so a ``ModuleList`` that is indexed rather than called (HRNet's
    transitions) gets its layers' work too, and the modules of one depth add up to
    ``measure_complexity(model, input_size)["macs"]`` when every layer sits below that depth.  A model
    built under ``with torch.device("meta"):`` is counted without allocating its weights.

    Returns:
        ``{name: {"params": int, "macs": int}}``.
    """
    model = _check_model(model)
    height, width = check_size(input_size, "input_size")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 3, height, width, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    # The counter names modules "ClassName.child.grandchild"; drop the root's class name.
    recorded = {name.partition(".")[2]: sum(ops.values())
                for name, ops in counter.get_flop_counts().items() if "." in name}
    leaves = {name for name, module in model.named_modules() if name and next(module.children(), None) is None}
    parts = [name for name, _ in model.named_modules() if name and name.count(".") == depth - 1]
    result = {}
    for part in parts:
        flops = sum(value for name, value in recorded.items()
                    if name in leaves and (name == part or name.startswith(part + ".")))
        result[part] = {"params": count_parameters(model.get_submodule(part)), "macs": int(flops) // 2}
    return result
