"""Heatmaps (chapter 02): Gaussian targets, their decoders, flip-back, and G-RMI's disks + offsets.

A heatmap network does not regress ``(x, y)``; it paints, for each keypoint ``k``, a map
``H_k(u, v)`` that peaks where the joint is, and a decoder reads the position back.  This
module holds both directions, one pair per representation:

==============================  =============================================================
encode                          decode
==============================  =============================================================
:func:`gaussian_heatmaps`       :func:`decode_argmax`, :func:`decode_quarter_offset`,
(MSRA or unbiased)              :func:`decode_dark`, :func:`soft_argmax` (by name:
                                :data:`DECODERS`, :func:`decode_heatmaps`)
:func:`grmi_targets`            :func:`decode_grmi` (argmax + offset, or Hough voting)
==============================  =============================================================

:class:`HeatmapCodec` ties a pair together for a network: input and heatmap sizes, sigma,
target kind and decoder, with ``encode`` (input pixels -> targets, weights) and ``decode``
(heatmaps -> input pixels).

Dimension letters: ``N`` instances, ``K`` keypoints, ``H x W`` the heatmap; ``h x w`` the
input crop the network sees.  Any number of leading dimensions is accepted where a
signature says ``(..., K, H, W)``.

Coordinates
-----------
Every Gaussian decoder returns **heatmap pixels** ``(u, v)`` (column, row), with pixel
centres at integer coordinates (the convention of ``course_lib``).  The heatmap is the input
crop seen through a stride ``s = w / W`` (4 for 256 x 192 -> 64 x 48), and

    x = u * s,   y = v * s        (input-crop pixels from heatmap pixels)

This is the MSRA convention of the official SimpleBaseline / HRNet code (Xiao et al. 2018,
Sun et al. 2019): heatmap pixel ``u`` sits over input pixel ``u * s``.  It is not quite
symmetric: the heatmap covers the input from ``-s/2`` to ``w - s/2``, while the input itself
spans ``-1/2`` to ``w - 1/2``, which is why the flip test needs a shift
(:func:`flip_heatmaps`).  UDP (Huang et al. 2020, "The Devil is in the Details: Delving into
Unbiased Data Processing for Human Pose Estimation") measures sizes in pixel *intervals*
instead, ``x = u * (w - 1) / (W - 1)``, so that the first and last pixel centres of the two
grids coincide and a mirror ``x' = w - 1 - x`` is exactly ``u' = W - 1 - u``.  The course
keeps the MSRA convention throughout (targets, :mod:`course_lib.geometry`, flip test).

G-RMI (:func:`grmi_targets`, :func:`decode_grmi`) works in **input pixels**, as the paper
does: its radius and offsets are lengths in the input crop.

Visibility and weights
----------------------
COCO flags ``v``: 0 not labelled, 1 labelled but hidden, 2 labelled and visible.  "Invisible
joints get zero loss" means **v = 0** (not labelled: there is nothing to learn from); a
hidden joint (v = 1) still has a known position and gets weight 1, exactly as in the
official code (``target_weight = joints_vis``, where COCO's ``v`` is clipped to 1).

NumPy in gives NumPy out; a torch tensor in gives a tensor out on the same device (the
decoders run in torch; :func:`soft_argmax` stays differentiable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.keypoints import COCO_FLIP_PAIRS, flip_permutation
from course_lib.validation import check_array, check_choice, check_positive, check_size

Array = Any  # np.ndarray or torch.Tensor


# ----------------------------------------------------------------------------- input checks
def _check_keypoints(keypoints: Array, visibility: Array) -> tuple[Array, Array]:
    """``(..., K, 2)`` keypoints and ``(..., K)`` visibility, NumPy or torch (same kind)."""
    keypoints = check_array(keypoints, "keypoints", (..., None, 2), allow_torch=True)
    visibility = check_array(visibility, "visibility", tuple(keypoints.shape[:-1]), allow_torch=True)
    if isinstance(keypoints, torch.Tensor):
        visibility = torch.as_tensor(visibility, device=keypoints.device)
        if not keypoints.is_floating_point():
            keypoints = keypoints.float()
    else:
        visibility = np.asarray(visibility)
        keypoints = keypoints.astype(np.float32, copy=False)
    return keypoints, visibility


def _check_heatmaps(heatmaps: Array, name: str = "heatmaps", min_dims: int = 2) -> torch.Tensor:
    """Heatmaps ``(..., H, W)`` as a float tensor (NumPy arrays are wrapped, not copied)."""
    heatmaps = check_array(heatmaps, name, (...,) + (None,) * min_dims, allow_torch=True)
    if 0 in tuple(heatmaps.shape):
        raise ValueError(f"{name} must not be empty, got shape {tuple(heatmaps.shape)}")
    tensor = torch.as_tensor(heatmaps)
    return tensor if tensor.is_floating_point() else tensor.float()


def _like_input(value: torch.Tensor, reference: Array) -> Array:
    """Return ``value`` as NumPy float32 if ``reference`` was NumPy, else leave it a tensor."""
    if isinstance(reference, torch.Tensor):
        return value
    return value.detach().cpu().numpy().astype(np.float32)


def _stride_pair(stride: Any) -> tuple[float, float]:
    """``stride`` as ``(s_x, s_y)``: one number for both axes, or a pair ``(s_x, s_y)`` (geometric: x first)."""
    if np.ndim(stride) == 0:
        value = check_positive(stride, "stride")
        return value, value
    if np.shape(stride) != (2,):
        raise ValueError(f"stride must be a number or a pair (s_x, s_y), got {stride!r}")
    return check_positive(stride[0], "stride[0] (s_x)"), check_positive(stride[1], "stride[1] (s_y)")


# ----------------------------------------------------------------------------- Gaussian targets
def _window_on_map(xp: Any, mu: Array, radius: float, size: int) -> Array:
    """The official "any part of the Gaussian is in bounds" test along one axis (see :func:`gaussian_heatmaps`).

    ``ul = int(mu - 3 sigma)``, ``br = int(mu + 3 sigma + 1)`` with Python's truncating ``int``;
    the window is on the map unless ``ul >= size`` or ``br < 0``.
    """
    return (xp.trunc(mu - radius) < size) & (xp.trunc(mu + radius + 1) >= 0)


def gaussian_heatmaps(
    keypoints: Array,
    visibility: Array,
    heatmap_size: tuple[int, int],
    sigma: float,
    unbiased: bool = False,
) -> tuple[Array, Array]:
    """Gaussian target heatmaps and their loss weights (vectorised, separable).

    For keypoint ``k`` at heatmap position ``mu = (mu_x, mu_y)``:

        H_k(u, v) = exp(-((u - mu_x)^2 + (v - mu_y)^2) / (2 sigma^2))
                  = exp(-(u - mu_x)^2 / (2 sigma^2)) * exp(-(v - mu_y)^2 / (2 sigma^2)),

    computed as the outer product of a row and a column profile (the separable form).

    * MSRA (``unbiased=False``, Xiao et al. 2018, the official SimpleBaseline/HRNet code):
      the centre is rounded to a pixel, ``mu = int(x + 0.5)`` (Python's ``int``, which
      truncates towards zero, as the official code does), so the peak is exactly 1 on that
      pixel, and the Gaussian is cut to the window ``|u - mu_x| <= 3 sigma`` and
      ``|v - mu_y| <= 3 sigma``.  For integer ``3 sigma`` (sigma = 1, 2, 3) this is the
      official window exactly; for other sigmas the official window is one pixel lopsided,
      ours stays symmetric.
    * Unbiased (``unbiased=True``, DARK: Zhang et al. 2020): the centre stays at the float
      position and the Gaussian covers the whole map without truncation (as DARK's code),
      so a decoder can recover sub-pixel positions.

    Weights ``w_k`` are 1, except 0 for joints with ``v = 0`` (not labelled; see the module
    docstring: hidden joints, v = 1, keep weight 1 as in the official code) and for joints
    whose window misses the map by the official test.  With Python's ``int`` (truncation
    towards zero) on the centre ``mu`` (rounded for MSRA, the float position for unbiased),

        ul = int(mu - 3 sigma),   br = int(mu + 3 sigma + 1),
        w_k = 0  if  ul_x >= W  or  ul_y >= H  or  br_x < 0  or  br_y < 0,

    the test of ``generate_target`` in HRNet's ``lib/dataset/JointsDataset.py`` (MSRA) and
    of ``adjust_target_weight`` in DARK's ``lib/dataset/JointsDataset.py`` (unbiased, same
    test on the float centre).  It is generous by about a pixel on the left and top, and
    what the generous joints get differs between the two targets:

    * MSRA, ``x = -8`` at sigma 2: ``mu = int(-7.5) = -7``, ``br = int(0) = 0``, so weight 1,
      but the window ``[-13, 0)`` holds no pixel of the map: an all-zero map with weight 1
      (the network is taught "no joint here");
    * unbiased, ``x = -6.5`` at sigma 2 on a 48-wide map: ``br = int(0.5) = 0``, weight 1 and
      the untruncated Gaussian's tail on the map; weight 1 holds down to ``x > -8``.

    A zero-weight joint gets an all-zero heatmap.

    Args:
        keypoints: ``(..., K, 2)`` x, y in **heatmap pixels** (input pixels / stride).
        visibility: ``(..., K)`` COCO flags 0/1/2.
        heatmap_size: ``(H, W)``.
        sigma: standard deviation in heatmap pixels (2 for 64 x 48 maps in the official code).
        unbiased: float centre and no truncation (DARK) instead of the MSRA rounding.

    Returns:
        heatmaps ``(..., K, H, W)`` and weights ``(..., K)``: float32 NumPy arrays for NumPy
        input; for a tensor, tensors on its device in its floating dtype (float32 for
        integer keypoints).
    """
    keypoints, visibility = _check_keypoints(keypoints, visibility)
    height, width = check_size(heatmap_size, "heatmap_size")
    sigma = check_positive(sigma, "sigma")
    radius = 3.0 * sigma
    if isinstance(keypoints, torch.Tensor):
        xp = torch
        columns = torch.arange(width, dtype=keypoints.dtype, device=keypoints.device)
        rows = torch.arange(height, dtype=keypoints.dtype, device=keypoints.device)
    else:
        xp = np
        columns = np.arange(width, dtype=np.float32)
        rows = np.arange(height, dtype=np.float32)

    mu_x, mu_y = keypoints[..., 0], keypoints[..., 1]  # (..., K)
    if not unbiased:
        mu_x, mu_y = xp.trunc(mu_x + 0.5), xp.trunc(mu_y + 0.5)

    dx = columns - mu_x[..., None]  # (..., K, W)
    dy = rows - mu_y[..., None]  # (..., K, H)
    profile_x = xp.exp(-(dx**2) / (2 * sigma**2))
    profile_y = xp.exp(-(dy**2) / (2 * sigma**2))
    if not unbiased:
        profile_x = profile_x * (xp.abs(dx) <= radius)
        profile_y = profile_y * (xp.abs(dy) <= radius)

    on_map = _window_on_map(xp, mu_x, radius, width) & _window_on_map(xp, mu_y, radius, height)
    weights = (visibility > 0) & on_map  # (..., K)
    weights = weights.astype(np.float32) if xp is np else weights.to(profile_x.dtype)
    profile_y = profile_y * weights[..., None]  # zero-weight joints get an empty map
    heatmaps = profile_y[..., :, None] * profile_x[..., None, :]  # (..., K, H, W)
    return heatmaps, weights


def gaussian_heatmaps_loop(
    keypoints: Array,
    visibility: Array,
    heatmap_size: tuple[int, int],
    sigma: float,
    unbiased: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The same targets as :func:`gaussian_heatmaps`, one joint at a time (for reading).

    This follows the official code's structure: round the centre, skip joints that are not
    labelled or whose window fails the official in-bounds test, cut a window of ``3 sigma``
    around the centre and paste the Gaussian patch where it overlaps the map.  NumPy only.
    """
    keypoints = check_array(keypoints, "keypoints", (..., None, 2))
    visibility = check_array(visibility, "visibility", keypoints.shape[:-1])
    height, width = check_size(heatmap_size, "heatmap_size")
    sigma = check_positive(sigma, "sigma")
    leading = keypoints.shape[:-1]  # (..., K)
    points = keypoints.reshape(-1, 2)
    flags = visibility.reshape(-1)
    heatmaps = np.zeros((len(points), height, width), dtype=np.float32)
    weights = np.zeros(len(points), dtype=np.float32)
    radius = 3.0 * sigma
    half = int(radius)  # window half-size in whole pixels

    for j, ((x, y), v) in enumerate(zip(points, flags)):
        if v <= 0:  # not labelled: nothing to learn
            continue
        mu_x, mu_y = (float(x), float(y)) if unbiased else (int(x + 0.5), int(y + 0.5))
        # The official test: does any part of the window [mu - 3 sigma, mu + 3 sigma] reach the map?
        upper_left = (int(mu_x - radius), int(mu_y - radius))
        bottom_right = (int(mu_x + radius + 1), int(mu_y + radius + 1))
        if upper_left[0] >= width or upper_left[1] >= height or bottom_right[0] < 0 or bottom_right[1] < 0:
            continue  # weight 0, empty map
        weights[j] = 1.0  # (the window may still hold no pixel: an empty map with weight 1, as officially)
        if unbiased:  # the whole map, no window
            u = np.arange(width, dtype=np.float32)
            w = np.arange(height, dtype=np.float32)[:, None]
            heatmaps[j] = np.exp(-((u - mu_x) ** 2 + (w - mu_y) ** 2) / (2 * sigma**2))
            continue
        # the window's columns [left, right) and rows [top, bottom), cut to the map (possibly empty)
        left, right = min(max(mu_x - half, 0), width), max(min(mu_x + half + 1, width), 0)
        top, bottom = min(max(mu_y - half, 0), height), max(min(mu_y + half + 1, height), 0)
        u = np.arange(left, right, dtype=np.float32)
        w = np.arange(top, bottom, dtype=np.float32)[:, None]
        heatmaps[j, top:bottom, left:right] = np.exp(-((u - mu_x) ** 2 + (w - mu_y) ** 2) / (2 * sigma**2))
    return heatmaps.reshape(leading + (height, width)), weights.reshape(leading)


# ----------------------------------------------------------------------------- decoders
def _argmax_positions(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column ``px``, row ``py`` (int64) and value of each map's maximum (first one on ties)."""
    width = heatmaps.shape[-1]
    flat = heatmaps.flatten(-2)  # (..., H*W)
    index = flat.argmax(dim=-1)  # (...)
    scores = flat.amax(dim=-1)
    return index % width, torch.div(index, width, rounding_mode="floor"), scores


def _pick(heatmaps: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``heatmaps[..., rows, columns]`` for one (row, column) per map; indices are clamped."""
    height, width = heatmaps.shape[-2:]
    rows = rows.clamp(0, height - 1)
    columns = columns.clamp(0, width - 1)
    flat = heatmaps.flatten(-2)  # (..., H*W)
    return flat.gather(-1, (rows * width + columns)[..., None])[..., 0]


def decode_argmax(heatmaps: Array) -> tuple[Array, Array]:
    """Keypoint = the pixel of the maximum, ``(u, v) = argmax_{u,v} H(u, v)``.

    Quantised to the heatmap grid: the error is up to half a heatmap pixel per axis
    (``s / 2`` input pixels).  Scores are the maximum values (the official ``maxvals``).
    Unlike the official ``get_max_preds`` we do not zero the position when the maximum
    is <= 0; the score already says so.

    Args:
        heatmaps: ``(..., H, W)`` NumPy array or tensor.

    Returns:
        keypoints ``(..., 2)`` (x = column, y = row, heatmap pixels) and scores ``(...)``.
    """
    tensor = _check_heatmaps(heatmaps)
    px, py, scores = _argmax_positions(tensor)
    keypoints = torch.stack([px, py], dim=-1).to(tensor.dtype)
    return _like_input(keypoints, heatmaps), _like_input(scores, heatmaps)


def decode_quarter_offset(heatmaps: Array) -> tuple[Array, Array]:
    """Argmax, then a quarter-pixel step towards the higher neighbour on each axis.

        u = u_max + 0.25 * sign(H(u_max + 1, v_max) - H(u_max - 1, v_max)),   same for v.

    The heuristic of the official Hourglass / SimpleBaseline / HRNet code: the true peak
    lies between the maximum and its larger neighbour, so moving a quarter pixel that way
    halves the expected quantisation error.

    Where the step is taken follows HRNet's ``get_final_preds`` (``lib/core/inference.py``):
    only when ``1 < u < W - 1`` **and** ``1 < v < H - 1``, both axes at once; a maximum in
    the first two or the last row or column is not moved at all (a peak at ``(0, 1)`` stays
    ``(0, 1)``).  The ``1 <`` (not ``0 <``) is the official code's: the original Lua code
    tested ``pX > 1`` on 1-based indices, and the Python port kept the number.  MMPose's
    ``refine_keypoints`` (``mmpose/codecs/utils/refinement.py``) tests each axis on its own
    instead (``1 < u < W - 1`` for the x step, ``1 < v < H - 1`` for the y step), so a
    maximum in row 1 still moves sideways there and not here; away from the border the
    two agree.

    Args:
        heatmaps: ``(..., H, W)``.

    Returns:
        keypoints ``(..., 2)`` in heatmap pixels and scores ``(...)`` (the maxima).
    """
    tensor = _check_heatmaps(heatmaps)
    height, width = tensor.shape[-2:]
    px, py, scores = _argmax_positions(tensor)
    inside = (px > 1) & (px < width - 1) & (py > 1) & (py < height - 1)  # HRNet's rule, both axes at once
    step_x = torch.sign(_pick(tensor, py, px + 1) - _pick(tensor, py, px - 1)) * inside
    step_y = torch.sign(_pick(tensor, py + 1, px) - _pick(tensor, py - 1, px)) * inside
    keypoints = torch.stack([px + 0.25 * step_x, py + 0.25 * step_y], dim=-1).to(tensor.dtype)
    return _like_input(keypoints, heatmaps), _like_input(scores, heatmaps)


def dark_kernel_size(sigma: float) -> int:
    """The official DARK blur kernel for a training sigma: 11 for sigma 2, 17 for sigma 3.

    DARK's code passes only the kernel size to ``cv2.GaussianBlur`` (sigma 0).  For sizes
    ``k >= 11`` OpenCV then blurs with the Gaussian of sigma ``0.3 ((k - 1) / 2 - 1) + 0.8``
    (2.0 for k = 11, 2.9 for k = 17); this inverts that relation and rounds to the nearest
    odd size.  (For ``k <= 9`` OpenCV 5 uses fixed, binomial-like kernels instead, ``k <= 7``
    before version 5; :func:`blur_heatmaps` always uses the Gaussian of the sigma it is given.)
    """
    sigma = check_positive(sigma, "sigma")
    return max(1, 2 * round((sigma - 0.8) / 0.3 + 1) + 1)


def blur_heatmaps(heatmaps: Array, sigma: float = 2.0, kernel_size: int | None = None) -> Array:
    """DARK's distribution modulation: Gaussian blur, then rescale to the original maximum.

        H' = K_sigma * H,   H' <- H' * max(H) / max(H')

    A trained network's heatmap is not a clean Gaussian (several small peaks, ragged
    tails); blurring it with the kernel used to make the targets smooths it back towards
    a Gaussian, whose logarithm is a quadratic that one Newton step can solve.  Pixels
    outside the map count as 0 (DARK pads with zeros before ``cv2.GaussianBlur``).

    Args:
        heatmaps: ``(..., H, W)``.
        sigma: the blur's standard deviation (the training sigma).
        kernel_size: odd kernel size; default :func:`dark_kernel_size` (11 for sigma 2).

    Returns:
        blurred heatmaps, same shape and type (float64 internally, input dtype out).
    """
    tensor = _check_heatmaps(heatmaps)
    blurred = _blur(tensor, check_positive(sigma, "sigma"), _check_kernel(kernel_size, sigma))
    return _like_input(blurred.to(tensor.dtype), heatmaps)


def _check_kernel(kernel_size: int | None, sigma: float) -> int:
    if kernel_size is None:
        return dark_kernel_size(sigma)
    if not float(kernel_size) == int(kernel_size) or int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    return int(kernel_size)


def _blur(heatmaps: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """Separable zero-padded Gaussian blur in float64, rescaled to each map's maximum."""
    shape = heatmaps.shape
    height, width = shape[-2:]
    maps = heatmaps.reshape(-1, 1, height, width).double()  # (M, 1, H, W)
    offsets = torch.arange(kernel_size, dtype=torch.float64, device=heatmaps.device) - kernel_size // 2
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    pad = kernel_size // 2
    blurred = F.conv2d(maps, kernel.view(1, 1, 1, -1), padding=(0, pad))  # along rows
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(pad, 0))  # along columns
    original_max = maps.amax(dim=(-2, -1), keepdim=True)
    blurred_max = blurred.amax(dim=(-2, -1), keepdim=True)
    safe = torch.where(blurred_max != 0, blurred_max, torch.ones_like(blurred_max))
    blurred = torch.where(blurred_max != 0, blurred * original_max / safe, blurred)
    return blurred.reshape(shape)


def decode_dark(heatmaps: Array, sigma: float = 2.0, kernel_size: int | None = None) -> tuple[Array, Array]:
    """DARK (Zhang et al. 2020, "Distribution-Aware Coordinate Representation"): Taylor refinement.

    1. blur the map with the training Gaussian (:func:`blur_heatmaps`);
    2. take ``P = log(max(H', 1e-10))``: for a Gaussian ``P`` is the quadratic
       ``-((u - mu)^2) / (2 sigma^2) + const``;
    3. expand ``P`` around the argmax ``m`` to second order and jump to the stationary
       point (one Newton step):

           mu = m - (D''(m))^{-1} D'(m),

       with central differences as in DARK's code,
       ``D'_x = (P[v, u+1] - P[v, u-1]) / 2`` and
       ``D''_xx = (P[v, u+2] - 2 P[v, u] + P[v, u-2]) / 4``,
       ``D''_xy = (P[v+1, u+1] - P[v-1, u+1] - P[v+1, u-1] + P[v-1, u-1]) / 4``.

    As in the official code the step is taken only when ``2 <= u <= W - 3`` and
    ``2 <= v <= H - 3`` (the differences need two pixels each side) and the Hessian's
    determinant is not zero; otherwise the argmax stays.  The official code passes only
    the kernel size to ``cv2.GaussianBlur`` (sigma 0); for ``k >= 11`` OpenCV uses the
    Gaussian of sigma ``0.3 ((k - 1) / 2 - 1) + 0.8`` (2.0 for k = 11, 2.9 for k = 17), but
    for ``k <= 9`` OpenCV 5 (``k <= 7`` before) uses fixed binomial-like kernels that no
    sigma describes exactly (k = 5 is ``[1, 4, 6, 4, 1] / 16``).  Here the blur is always the
    Gaussian of the given ``sigma``, truncated to ``kernel_size``: the same as DARK's for the
    sizes it uses (11 and 17), slightly different for a small kernel.

    Args:
        heatmaps: ``(..., H, W)``.
        sigma: the training sigma, used for the blur.
        kernel_size: odd blur size; default :func:`dark_kernel_size` (11 for sigma 2).

    Returns:
        keypoints ``(..., 2)`` in heatmap pixels and scores ``(...)`` (maxima of the raw maps).
    """
    tensor = _check_heatmaps(heatmaps)
    sigma = check_positive(sigma, "sigma")
    kernel_size = _check_kernel(kernel_size, sigma)
    px, py, scores = _argmax_positions(tensor)  # the raw maps' maxima, as DARK's code
    log_map = torch.log(_blur(tensor, sigma, kernel_size).clamp_min(1e-10))  # float64
    keypoints = _taylor_step(log_map, px, py).to(tensor.dtype)
    return _like_input(keypoints, heatmaps), _like_input(scores, heatmaps)


def taylor_step(log_maps: Array) -> Array:
    """DARK's Newton step on log-heatmaps ``P`` ``(..., H, W)`` -> keypoints ``(..., 2)`` (heatmap pixels).

        mu = m - (D''(m))^{-1} D'(m)        at the argmax m of each map

    with the central differences of :func:`decode_dark`; no step within two pixels of the
    border or where the Hessian is singular (the argmax stays).  Step 3 of :func:`decode_dark`.
    """
    tensor = _check_heatmaps(log_maps, "log_maps").double()
    px, py, _ = _argmax_positions(tensor)
    return _like_input(_taylor_step(tensor, px, py), log_maps)


def _taylor_step(log_map: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """The step of :func:`taylor_step` from the given maxima ``(px, py)``."""
    height, width = log_map.shape[-2:]

    def at(dv: int, du: int) -> torch.Tensor:
        return _pick(log_map, py + dv, px + du)

    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    determinant = dxx * dyy - dxy**2
    usable = (px >= 2) & (px <= width - 3) & (py >= 2) & (py <= height - 3) & (determinant != 0)
    determinant = torch.where(usable, determinant, torch.ones_like(determinant))
    # offset = -Hessian^{-1} gradient, with the 2x2 inverse written out
    offset_x = -(dyy * dx - dxy * dy) / determinant
    offset_y = -(dxx * dy - dxy * dx) / determinant
    x = px + torch.where(usable, offset_x, torch.zeros_like(offset_x))
    y = py + torch.where(usable, offset_y, torch.zeros_like(offset_y))
    return torch.stack([x, y], dim=-1)


def soft_argmax(heatmaps: Array, temperature: float = 1.0) -> tuple[Array, Array]:
    """Soft-argmax / integral regression (Sun et al. 2018): the expected position under a softmax.

        p(u, v) = exp(H(u, v) / T) / sum_{u', v'} exp(H(u', v') / T)
        x = sum_{u,v} u p(u, v),    y = sum_{u,v} v p(u, v)

    Differentiable (with torch input), so a network can be trained through it.  The
    temperature ``T`` matters: on maps that are network logits ``T = 1`` is natural; on
    maps with values in [0, 1] (our Gaussian targets) the background ``exp(0) = 1`` of
    every pixel pulls the estimate towards the centre of the map unless ``T`` is small
    (about 0.05).  Away from the border the estimate is unbiased, because the softmax of
    a symmetric peak is symmetric; near the border the peak is cut and the mean moves
    inwards.

    Args:
        heatmaps: ``(..., H, W)``.
        temperature: ``T > 0``.

    Returns:
        keypoints ``(..., 2)`` in heatmap pixels and scores ``(...)`` (the maxima).
    """
    tensor = _check_heatmaps(heatmaps)
    temperature = check_positive(temperature, "temperature")
    height, width = tensor.shape[-2:]
    probabilities = torch.softmax(tensor.flatten(-2) / temperature, dim=-1)  # (..., H*W)
    probabilities = probabilities.unflatten(-1, (height, width))  # (..., H, W)
    columns = torch.arange(width, dtype=tensor.dtype, device=tensor.device)
    rows = torch.arange(height, dtype=tensor.dtype, device=tensor.device)
    x = (probabilities.sum(dim=-2) * columns).sum(dim=-1)
    y = (probabilities.sum(dim=-1) * rows).sum(dim=-1)
    scores = tensor.flatten(-2).amax(dim=-1)
    return _like_input(torch.stack([x, y], dim=-1), heatmaps), _like_input(scores, heatmaps)


# ----------------------------------------------------------------------------- flip test
def flip_heatmaps(
    heatmaps: Array, flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS, shift: bool = True
) -> Array:
    """Bring the heatmaps predicted on a mirrored input back to the original's frame.

    Three steps (the flip test of SimpleBaseline / HRNet, ``flip_back`` + ``SHIFT_HEATMAP``):

    1. mirror each map left-right, ``H'(u) = H(W - 1 - u)``;
    2. swap the channels of each left/right pair (a mirrored left wrist is a right wrist);
    3. with ``shift=True``, move the maps one heatmap pixel to the right
       (``H''[..., 1:] = H'[..., :-1]``; column 0 keeps its value, as in the official code).

    Why the shift: the input was mirrored in *input* pixels, ``x' = w - 1 - x``.  With
    ``u = x / s`` (stride ``s``, ``w = s W``) the joint sits in the flipped image's heatmap
    at ``u_f = W - u - 1/s``, and mirroring that map gives ``W - 1 - u_f = u - (1 - 1/s)``:
    for ``s > 1`` a pure mirror in heatmap space lands ``1 - 1/s`` pixels to the left
    (0.75 at stride 4).  Shifting one pixel right leaves ``+1/s`` (0.25 at stride 4),
    closer than no shift; only UDP's convention (see the module docstring) makes the
    mirror exact.

    Args:
        heatmaps: ``(..., K, H, W)`` NumPy array or tensor (gradients flow through).
        flip_pairs: ``(left, right)`` channel pairs, e.g. ``COCO_FLIP_PAIRS``.
        shift: apply the official one-pixel shift.

    Returns:
        heatmaps of the same shape and type.
    """
    checked = check_array(heatmaps, "heatmaps", (..., "K", None, None), allow_torch=True)
    permutation = flip_permutation(checked.shape[-3], flip_pairs)
    if isinstance(checked, torch.Tensor):
        flipped = checked[..., torch.as_tensor(permutation, device=checked.device), :, :].flip(-1)
        if shift:
            flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
        return flipped
    flipped = checked[..., permutation, :, ::-1]
    if shift:
        flipped = np.concatenate([flipped[..., :1], flipped[..., :-1]], axis=-1)
    return np.ascontiguousarray(flipped)


# ----------------------------------------------------------------------------- the decoder table and the codec
SOFT_ARGMAX_TEMPERATURE = 0.05  # soft-argmax on maps with values in [0, 1] (see soft_argmax)

# name -> decoder(heatmaps, sigma) -> (keypoints, scores) in heatmap pixels; sigma is the
# training sigma, which only DARK's blur uses.
DECODERS: dict[str, Callable[[Array, float], tuple[Array, Array]]] = {
    "argmax": lambda heatmaps, sigma: decode_argmax(heatmaps),
    "quarter_offset": lambda heatmaps, sigma: decode_quarter_offset(heatmaps),
    "dark": lambda heatmaps, sigma: decode_dark(heatmaps, sigma=sigma),
    "soft_argmax": lambda heatmaps, sigma: soft_argmax(heatmaps, temperature=SOFT_ARGMAX_TEMPERATURE),
}

Decoder = Union[str, Callable[[Array], tuple[Array, Array]]]


def decode_heatmaps(heatmaps: Array, decoder: Decoder = "dark", sigma: float = 2.0) -> tuple[Array, Array]:
    """Decode with a decoder of :data:`DECODERS` by name, or with a function ``heatmaps -> (keypoints, scores)``.

    ``"dark"`` blurs with the training ``sigma``; ``"soft_argmax"`` runs at
    :data:`SOFT_ARGMAX_TEMPERATURE` (maps with values in [0, 1]).  Keypoints come back in
    heatmap pixels, ``(..., K, 2)``, scores ``(..., K)``.
    """
    if callable(decoder):
        return decoder(heatmaps)
    check_choice(decoder, "decoder", tuple(DECODERS))
    return DECODERS[decoder](heatmaps, sigma)


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints in input pixels <-> heatmaps: the targets a network learns and how its maps are read.

    One object holds what encoding and decoding must agree on (the idea of MMPose's
    ``mmpose/codecs/msra_heatmap.py``, without its registry):

    * ``input_size`` ``(H, W)``: the crop the network sees, and ``heatmap_size`` ``(H, W)``:
      its output, so the stride is ``(s_x, s_y) = (W_in / W, H_in / H)``;
    * ``sigma``: the Gaussian's standard deviation in heatmap pixels;
    * ``target``: ``"msra"`` (centre rounded to a pixel, 3-sigma window) or ``"unbiased"``
      (DARK: float centre, no window); see :func:`gaussian_heatmaps`;
    * ``decoder``: a name of :data:`DECODERS` or a function ``heatmaps -> (keypoints, scores)``
      in heatmap pixels.

    Encode and decode are symmetric, in the MSRA convention (heatmap pixel ``u`` sits over
    input pixel ``u s_x``, see the module docstring):

        encode:  mu = (x / s_x, y / s_y)  ->  gaussian_heatmaps(mu, v),   weights
        decode:  (u, v) = decoder(H)      ->  (x, y) = (u s_x, v s_y)

    Example: ``HeatmapCodec((256, 192), (64, 48), sigma=2.0)`` is SimpleBaseline's and HRNet's
    codec on COCO (stride 4).  The plain functions stay callable on their own.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    target: str = "msra"
    decoder: Decoder = "dark"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", check_size(self.input_size, "input_size"))
        object.__setattr__(self, "heatmap_size", check_size(self.heatmap_size, "heatmap_size"))
        object.__setattr__(self, "sigma", check_positive(self.sigma, "sigma"))
        check_choice(self.target, "target", ("msra", "unbiased"))
        if not callable(self.decoder):
            check_choice(self.decoder, "decoder", tuple(DECODERS))

    @property
    def stride(self) -> tuple[float, float]:
        """``(s_x, s_y)``: input pixels per heatmap pixel along x and y."""
        return self.input_size[1] / self.heatmap_size[1], self.input_size[0] / self.heatmap_size[0]

    def encode(self, keypoints: Array, visibility: Array) -> tuple[Array, Array]:
        """Keypoints ``(..., K, 2)`` in input pixels and flags ``(..., K)`` -> targets ``(..., K, H, W)``, weights ``(..., K)``.

        ``gaussian_heatmaps(keypoints / (s_x, s_y), visibility, heatmap_size, sigma, unbiased)``.
        """
        keypoints, visibility = _check_keypoints(keypoints, visibility)
        scale = self._per_axis(self.stride, keypoints)
        return gaussian_heatmaps(keypoints / scale, visibility, self.heatmap_size, self.sigma,
                                 unbiased=self.target == "unbiased")

    def decode(self, heatmaps: Array) -> tuple[Array, Array]:
        """Heatmaps ``(..., K, H, W)`` -> keypoints ``(..., K, 2)`` in input pixels and scores ``(..., K)``."""
        maps = _check_heatmaps(heatmaps, min_dims=3)
        if tuple(maps.shape[-2:]) != self.heatmap_size:
            raise ValueError(f"heatmaps must be {self.heatmap_size} (H, W), the codec's heatmap_size, "
                             f"got {tuple(maps.shape[-2:])}")
        keypoints, scores = decode_heatmaps(heatmaps, self.decoder, self.sigma)
        return keypoints * self._per_axis(self.stride, keypoints), scores

    @staticmethod
    def _per_axis(stride: tuple[float, float], like: Array) -> Array:
        """``(s_x, s_y)`` as an array or tensor that multiplies ``(..., 2)`` points."""
        if isinstance(like, torch.Tensor):
            return torch.tensor(stride, dtype=like.dtype, device=like.device)
        return np.asarray(stride, dtype=np.asarray(like).dtype)


# ----------------------------------------------------------------------------- G-RMI
def grmi_targets(
    keypoints: Array,
    visibility: Array,
    heatmap_size: tuple[int, int],
    radius: float,
    stride: float | tuple[float, float],
    normalize_offsets: bool = False,
) -> tuple[Array, Array, Array]:
    """G-RMI targets (Papandreou et al. 2017): disk heatmaps plus 2-D offset fields.

    Heatmap position ``(u, v)`` sits over the input pixel ``x_j = (u s_x, v s_y)``.  For a
    joint at ``l_k`` (input pixels):

        h_k(x_j) = 1 if ||x_j - l_k|| <= R else 0           (a disk of radius R)
        F_k(x_j) = l_k - x_j                                  (the vector to the joint)

    The network classifies "is the joint within R of here" (K logistic outputs) and
    regresses the offset (2K outputs); the paper uses R = 25 px at stride 8.  The offset
    field is returned everywhere, but the paper's offset loss only counts positions inside
    the disk: multiply by the heatmap when computing it.

    Args:
        keypoints: ``(..., K, 2)`` x, y in **input pixels** (not heatmap pixels).
        visibility: ``(..., K)``; joints with v = 0 get empty maps, zero offsets, weight 0.
        heatmap_size: ``(H, W)``.
        radius: R in input pixels.
        stride: input pixels per heatmap pixel, one number or ``(s_x, s_y)``.
        normalize_offsets: divide the offsets by R (values about [-1, 1] inside the disk).

    Returns:
        heatmaps ``(..., K, H, W)`` (0/1 float32), offsets ``(..., 2K, H, W)`` (channel
        ``2k`` the x-offset of joint ``k``, ``2k + 1`` its y-offset; input pixels, or units
        of R) and weights ``(..., K)`` (0 for v = 0 or when no position lies in the disk).
    """
    keypoints, visibility = _check_keypoints(keypoints, visibility)
    height, width = check_size(heatmap_size, "heatmap_size")
    radius = check_positive(radius, "radius")
    stride_x, stride_y = _stride_pair(stride)
    points = torch.as_tensor(keypoints)
    labelled = torch.as_tensor(visibility, device=points.device) > 0  # (..., K)
    positions_x = torch.arange(width, dtype=points.dtype, device=points.device) * stride_x
    positions_y = torch.arange(height, dtype=points.dtype, device=points.device) * stride_y
    offset_x = points[..., 0, None, None] - positions_x[None, :]  # (..., K, 1, W)
    offset_y = points[..., 1, None, None] - positions_y[:, None]  # (..., K, H, 1)
    offset_x, offset_y = torch.broadcast_tensors(offset_x, offset_y)  # (..., K, H, W) each
    disks = (offset_x**2 + offset_y**2 <= radius**2) & labelled[..., None, None]
    weights = disks.flatten(-2).any(dim=-1).to(points.dtype)
    offsets = torch.stack([offset_x, offset_y], dim=-3)  # (..., K, 2, H, W)
    offsets = offsets * labelled[..., None, None, None]
    if normalize_offsets:
        offsets = offsets / radius
    offsets = offsets.flatten(-4, -3)  # (..., 2K, H, W)
    heatmaps = disks.to(points.dtype)
    return _like_input(heatmaps, keypoints), _like_input(offsets, keypoints), _like_input(weights, keypoints)


def decode_grmi(
    heatmaps: Array,
    offsets: Array,
    stride: float | tuple[float, float],
    radius: float,
    method: str = "vote",
    logits: bool = False,
    normalized_offsets: bool = False,
    window: float | None = None,
) -> tuple[Array, Array]:
    """Read keypoints from G-RMI heatmaps + offsets, in **input pixels**.

    * ``method="argmax"``: the most probable position plus its offset,
      ``l_k = x_{j*} + F_k(x_{j*})`` with ``j* = argmax_j h_k(x_j)``; score ``h_k(x_{j*})``.
    * ``method="vote"`` (the paper's aggregation, a Hough-style vote): every position
      ``x_j`` casts a vote of weight ``h_k(x_j)`` at the point it points to,
      ``x_j + F_k(x_j)``, spread bilinearly over the four nearest pixels of an
      input-resolution vote map,

          f_k(x) = 1 / (pi R^2) * sum_j h_k(x_j) G(x_j + F_k(x_j) - x),

      with ``G`` the bilinear kernel.  The maximum of ``f_k`` is the spot most positions
      agree on; the keypoint is then the probability-weighted mean of the votes that
      landed within ``window`` pixels of it (one mean-shift step, which removes the vote
      map's one-pixel quantisation and averages the noise of the individual offsets
      while ignoring outlying votes).  The score is the weight of those votes times
      ``s_x s_y / (pi R^2)``: the share of a full disk's votes (a disk holds about
      ``pi R^2 / (s_x s_y)`` positions), about 1 for a confident, consistent prediction
      and lower when the offsets disagree (a keypoint-aware confidence, as the paper's
      rescoring).

    Args:
        heatmaps: ``(..., K, H, W)`` probabilities, or logits with ``logits=True``.
        offsets: ``(..., 2K, H, W)`` laid out as in :func:`grmi_targets`.
        stride: input pixels per heatmap pixel, one number or ``(s_x, s_y)``.
        radius: R in input pixels (scales the score, and the offsets if normalised).
        method: ``"vote"`` or ``"argmax"``.
        logits: apply a sigmoid to ``heatmaps`` first.
        normalized_offsets: the offsets are in units of R (``normalize_offsets=True``).
        window: radius in input pixels of the votes averaged around the maximum
            (``"vote"`` only); default: the stride.

    Returns:
        keypoints ``(..., K, 2)`` in input pixels and scores ``(..., K)``.
    """
    method = check_choice(method, "method", ("vote", "argmax"))
    probabilities = _check_heatmaps(heatmaps, min_dims=3)
    fields = _check_heatmaps(offsets, "offsets", min_dims=3)
    *leading, num_joints, height, width = probabilities.shape
    if tuple(fields.shape) != (*leading, 2 * num_joints, height, width):
        raise ValueError(
            f"offsets must have shape {(*leading, 2 * num_joints, height, width)} to match heatmaps "
            f"{tuple(probabilities.shape)}, got {tuple(fields.shape)}"
        )
    radius = check_positive(radius, "radius")
    stride_x, stride_y = _stride_pair(stride)
    window = max(stride_x, stride_y) if window is None else check_positive(window, "window")
    fields = fields.to(probabilities.device, probabilities.dtype)
    if logits:
        probabilities = torch.sigmoid(probabilities)
    fields = fields.unflatten(-3, (num_joints, 2))  # (..., K, 2, H, W)
    if normalized_offsets:
        fields = fields * radius
    positions_x = torch.arange(width, dtype=fields.dtype, device=fields.device) * stride_x
    positions_y = torch.arange(height, dtype=fields.dtype, device=fields.device) * stride_y
    target_x = positions_x + fields[..., 0, :, :]  # (..., K, H, W)
    target_y = positions_y[:, None] + fields[..., 1, :, :]

    if method == "argmax":
        px, py, scores = _argmax_positions(probabilities)
        keypoints = torch.stack([_pick(target_x, py, px), _pick(target_y, py, px)], dim=-1)
        return _like_input(keypoints, heatmaps), _like_input(scores, heatmaps)

    vote_height, vote_width = math.ceil(height * stride_y), math.ceil(width * stride_x)
    votes = _splat_votes(target_x, target_y, probabilities, vote_height, vote_width)  # (..., K, Hv, Wv)
    mode_x, mode_y, _ = _argmax_positions(votes)
    # refine: the probability-weighted mean of the votes that landed near the mode
    near = (target_x - mode_x[..., None, None]) ** 2 + (target_y - mode_y[..., None, None]) ** 2 <= window**2
    mass = (probabilities * near).sum(dim=(-2, -1))  # (..., K)
    safe = torch.where(mass > 0, mass, torch.ones_like(mass))
    x = torch.where(mass > 0, (probabilities * near * target_x).sum(dim=(-2, -1)) / safe, mode_x.to(mass.dtype))
    y = torch.where(mass > 0, (probabilities * near * target_y).sum(dim=(-2, -1)) / safe, mode_y.to(mass.dtype))
    scores = mass * stride_x * stride_y / (math.pi * radius**2)
    keypoints = torch.stack([x, y], dim=-1)
    return _like_input(keypoints, heatmaps), _like_input(scores, heatmaps)


def _splat_votes(
    target_x: torch.Tensor, target_y: torch.Tensor, weights: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Bilinear splatting: each vote at (x, y) with weight p adds to its 4 neighbouring pixels."""
    *leading, map_height, map_width = target_x.shape
    x = target_x.reshape(-1, map_height * map_width)  # (M, H*W)
    y = target_y.reshape(-1, map_height * map_width)
    p = weights.reshape(-1, map_height * map_width).to(x.dtype)
    votes = torch.zeros(x.shape[0], height * width, dtype=x.dtype, device=x.device)
    x0, y0 = torch.floor(x), torch.floor(y)
    for dx in (0, 1):
        for dy in (0, 1):
            corner_x, corner_y = x0 + dx, y0 + dy
            share = (1 - (x - corner_x).abs()) * (1 - (y - corner_y).abs())
            valid = (corner_x >= 0) & (corner_x <= width - 1) & (corner_y >= 0) & (corner_y <= height - 1)
            index = (corner_y.clamp(0, height - 1) * width + corner_x.clamp(0, width - 1)).long()
            votes.scatter_add_(1, index, p * share * valid)
    return votes.reshape(*leading, height, width)
