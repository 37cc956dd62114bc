"""The input check every pose network of ``course_lib.models`` runs first.

A network can only take images whose height and width it can halve as often as it
downsamples: SimpleBaseline's ResNet halves five times (H and W must be multiples of
32), HRNet's fourth branch lives at 1/32 of the input, an order-4 hourglass after the
stride-4 stem needs multiples of 64.  Anything else would fail deep inside the network
with a shape mismatch that names no argument, or, worse, silently shift the heatmaps by
a pixel.  :func:`check_images` says what is wrong, and which sizes would work.
"""

from __future__ import annotations

import torch


def nearest_valid_sizes(size: int, divisor: int) -> tuple[int, int]:
    """The multiples of ``divisor`` just below and just above ``size`` (the two smallest if ``size < divisor``)."""
    below = (size // divisor) * divisor
    if below == 0:
        return divisor, 2 * divisor
    return below, below + divisor


def check_images(
    images: torch.Tensor,
    model_name: str,
    *,
    size_divisor: int = 1,
    min_size: int = 1,
    channels: int = 3,
) -> torch.Tensor:
    """Check that ``images`` is a finite ``(N, 3, H, W)`` float tensor the model can take.

    Args:
        images: the batch given to the model's ``forward``.
        model_name: the model's name, used in the error message.
        size_divisor: H and W must be multiples of this number (2 to the power of the
            number of halvings between the input and the coarsest feature map).
        min_size: H and W must be at least this large.
        channels: the expected number of channels (3, RGB).

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: wrong number of dimensions or channels, NaN, or a size the model cannot take;
            the message names the stride and the nearest valid sizes.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, {channels}, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor (normalised RGB), got dtype {images.dtype}")
    if images.dim() != 4 or images.shape[1] != channels:
        raise ValueError(
            f"images must have shape (N, {channels}, H, W) for {model_name}, got {tuple(images.shape)}"
            + (" (channels last? use images.permute(0, 3, 1, 2))" if images.dim() == 4 and images.shape[-1] == channels else "")
        )
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (N = 0)")
    # One reduction instead of an element-wise isfinite: the sum is NaN or inf if any element is
    # (or if the values are absurdly large), at a fraction of the cost for a training batch.
    # (Tensors on the "meta" device have shapes but no values: nothing to check.)
    if images.device.type != "meta" and not bool(torch.isfinite(images.detach().sum())):
        raise ValueError("images contains NaN or infinite values")
    for name, size in (("height", images.shape[2]), ("width", images.shape[3])):
        if size < min_size:
            raise ValueError(f"images {name} {size} is too small for {model_name}: it needs at least {min_size} pixels")
        if size % size_divisor != 0:
            below, above = nearest_valid_sizes(size, size_divisor)
            raise ValueError(
                f"images {name} {size} is not a multiple of {size_divisor}, the stride of the coarsest "
                f"feature map of {model_name}; the nearest valid {name}s are {below} and {above}"
            )
    return images
