"""ROIPool and ROIAlign from scratch (chapter 05).

A top-down pose network in the style of Mask R-CNN does not crop the *image* around each
person: it crops the *feature map* of the whole image, and turns every box into a small
fixed-size grid of features (e.g. 14 x 14) that a keypoint head can read.  Two ways to do
that crop are taught here:

* **ROIPool** (Girshick, "Fast R-CNN", ICCV 2015): round the box to whole feature cells,
  cut it into ``h x w`` bins whose edges are rounded again (floor / ceil), and take the
  maximum of each bin.  Two quantisations: the pooled grid can be off by up to a cell.
* **ROIAlign** (He et al., "Mask R-CNN", ICCV 2017, section 3): no rounding at all.  Each
  bin is sampled at ``s_h x s_w`` regularly spaced points whose values are read by
  bilinear interpolation between the four nearest feature cells, then averaged.

Both follow ``torchvision.ops.roi_pool`` / ``torchvision.ops.roi_align`` exactly (same
signature, same rules, read from torchvision's CPU kernels ``roi_pool_kernel.cpp`` and
``roi_align_kernel.cpp``), with one deliberate difference: a box with ``x2 < x1`` or
``y2 < y1`` is an error here (torchvision silently treats it as a 1 x 1 box).

Dimension letters: ``N`` images, ``C`` channels, ``[H, W]`` feature map, ``R`` boxes
(regions of interest), ``[h, w]`` the pooled output, ``[s_h, s_w]`` sampling points per bin.

Coordinates.  A box is ``(x1, y1, x2, y2)`` in image pixels; ``spatial_scale`` (e.g. 1/4 for
a stride-4 feature map) maps it to feature-map units, where feature cell ``(i, j)`` has its
centre at ``x = j, y = i``.  ``aligned=True`` (Detectron2) first shifts the scaled box by
-0.5: right when box coordinates put pixel centres at half-integers (pixel ``j`` covers
``[j, j + 1)``), as Detectron's do.  In the course convention (pixel centres at integers,
feature cell ``u`` at image ``x = u * stride``) the exact map is ``x * spatial_scale`` with
no shift, the geometry of ``aligned=False`` (apart from its "at least 1 x 1" rule).

Boxes are given as a ``(R, 5)`` tensor of rows ``(batch_index, x1, y1, x2, y2)`` or as a
list with one ``(R_i, 4)`` tensor of ``(x1, y1, x2, y2)`` per image (see
:func:`boxes_to_rois`).

The vectorised functions (:func:`roi_pool`, :func:`roi_align`, :func:`bilinear_sample`)
gather all boxes and sampling points at once and are differentiable with respect to the
features.  :func:`roi_pool_loop` and :func:`roi_align_loop` do the same thing one box, one
bin and one sampling point at a time: slow, but every rule can be read off them.  The
tests check that the two versions agree.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from course_lib.validation import check_array, check_choice, check_integer, check_pair, check_positive

__all__ = [
    "bilinear_sample",
    "boxes_to_rois",
    "roi_align",
    "roi_align_loop",
    "roi_align_sampling_points",
    "roi_pool",
    "roi_pool_bins",
    "roi_pool_loop",
]

# torchvision's ROIPool starts each bin's running maximum at -FLT_MAX (the float32 minimum),
# whatever the features' type, and keeps a cell only if it is larger.
FLT_MAX = float(torch.finfo(torch.float32).max)


# --------------------------------------------------------------------------------------
# Input checks shared by every function of the module
# --------------------------------------------------------------------------------------
def _check_features(features: torch.Tensor) -> torch.Tensor:
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor of shape (N, C, H, W), got {type(features).__name__}")
    if features.dim() != 4:
        raise ValueError(f"features must have shape (N, C, H, W), got {tuple(features.shape)}")
    if not features.is_floating_point():
        raise TypeError(f"features must be a floating-point tensor, got dtype {features.dtype}")
    if min(features.shape) == 0:
        raise ValueError(f"features must not be empty, got shape {tuple(features.shape)}")
    return features


def _output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    """``7`` -> ``(7, 7)``; ``(h, w)`` -> ``(h, w)``; both must be positive integers."""
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    return check_pair(output_size, "output_size", "(h, w)", minimum=1)


def _sampling_ratio(sampling_ratio: int) -> int:
    """Samples per bin along each axis; ``<= 0`` means adaptive.  A fraction is an error, not truncated."""
    return check_integer(sampling_ratio, "sampling_ratio")


def boxes_to_rois(boxes: Sequence[torch.Tensor], box_format: str = "xyxy") -> torch.Tensor:
    """One ``(R_i, 4)`` box tensor per image -> one ``(R, 5)`` tensor ``(batch_index, x1, y1, x2, y2)``.

    Args:
        boxes: a list with one entry per image, each ``(R_i, 4)`` (possibly ``R_i = 0``).
        box_format: ``"xyxy"`` (corners, torchvision's format) or ``"xywh"`` (COCO's
            ``[x, y, w, h]``, the course's format; converted with ``x2 = x + w``).

    Returns:
        float tensor ``(R, 5)``, boxes of image ``i`` with batch index ``i``, in list order.
    """
    check_choice(box_format, "box_format", ("xyxy", "xywh"))
    if isinstance(boxes, torch.Tensor) or not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes must be a list of (R_i, 4) tensors, one per image, got {type(boxes).__name__}")
    rows = []
    for i, per_image in enumerate(boxes):
        per_image = check_array(per_image, f"boxes[{i}]", (None, 4), allow_torch=True)
        per_image = torch.as_tensor(per_image).to(torch.float64)
        if box_format == "xywh":
            per_image = torch.cat([per_image[:, :2], per_image[:, :2] + per_image[:, 2:]], dim=1)
        index = torch.full((per_image.shape[0], 1), float(i), dtype=torch.float64)
        rows.append(torch.cat([index, per_image], dim=1))  # (R_i, 5)
    if not rows:
        return torch.zeros((0, 5), dtype=torch.float64)
    return torch.cat(rows, dim=0)


def _as_rois(boxes: torch.Tensor | Sequence[torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """Validate ``boxes`` (either format) against ``features``; return ``(R, 5)`` rows on the CPU."""
    if isinstance(boxes, (list, tuple)):
        rois = boxes_to_rois(boxes)
    else:
        rois = check_array(boxes, "boxes", (None, 5), allow_torch=True)
        rois = torch.as_tensor(rois).detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(rois).all()):
        raise ValueError("boxes contains NaN or infinite values")
    batch_size = features.shape[0]
    index = rois[:, 0]
    bad = (index != index.round()) | (index < 0) | (index >= batch_size)
    if bool(bad.any()):
        r = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"boxes: the batch index of box {r} must be an integer in [0, {batch_size - 1}] "
            f"(features has a batch of {batch_size}), got {index[r].item()}"
        )
    backwards = (rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])
    if bool(backwards.any()):
        r = int(backwards.nonzero()[0, 0])
        raise ValueError(
            f"boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1; box {r} is {rois[r, 1:].tolist()}"
        )
    return rois.to(_compute_dtype(features))


def _check_scale(spatial_scale: float) -> float:
    return check_positive(spatial_scale, "spatial_scale")


def _compute_dtype(features: torch.Tensor) -> torch.dtype:
    """The precision of the box arithmetic: torchvision does it in the features' own type.

    Rounding, ``floor`` and ``ceil`` of bin edges can differ between float32 and float64
    (``13 * float32(7 / 13)`` is ``7.0000005``), so the precision is part of the semantics.
    """
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def _round_half_away_from_zero(value: torch.Tensor) -> torch.Tensor:
    """C's ``round``: 2.5 -> 3, -2.5 -> -3 (``torch.round`` would give 2: half to even)."""
    return torch.sign(value) * torch.floor(value.abs() + 0.5)


# --------------------------------------------------------------------------------------
# Bilinear interpolation with torchvision's border rules
# --------------------------------------------------------------------------------------
def _bilinear_gather(
    features_hwc: torch.Tensor, batch_index: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Bilinear values of ``features_hwc`` ``(N, H, W, C)`` at points ``(x, y)`` of image ``batch_index``.

    ``batch_index``, ``x`` and ``y`` broadcast to one shape ``S``; returns ``(*S, C)``.
    """
    height, width = features_hwc.shape[1], features_hwc.shape[2]
    # A point more than one cell outside the map reads 0; one closer is clamped onto the border.
    inside = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    y = y.clamp(0, height - 1)
    x = x.clamp(0, width - 1)
    y_low, x_low = y.floor(), x.floor()
    ly, lx = y - y_low, x - x_low  # fractional parts: the weights of the upper neighbours
    y_low, x_low = y_low.long(), x_low.long()
    y_high = (y_low + 1).clamp(max=height - 1)
    x_high = (x_low + 1).clamp(max=width - 1)
    inside = inside.to(ly.dtype)
    dtype = features_hwc.dtype
    w_ll = ((1 - ly) * (1 - lx) * inside).to(dtype).unsqueeze(-1)  # (*S, 1)
    w_lh = ((1 - ly) * lx * inside).to(dtype).unsqueeze(-1)
    w_hl = (ly * (1 - lx) * inside).to(dtype).unsqueeze(-1)
    w_hh = (ly * lx * inside).to(dtype).unsqueeze(-1)
    # The feature cells as rows of a table: one index_select per neighbour reads all channels.
    table = features_hwc.reshape(-1, features_hwc.shape[-1])  # (N * H * W, C)
    shape = torch.broadcast_shapes(batch_index.shape, x.shape, y.shape)

    def read(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        cell = ((batch_index * height + rows) * width + cols).expand(shape)  # (*S,)
        return table.index_select(0, cell.reshape(-1)).view(*shape, -1)  # (*S, C)

    return (
        w_ll * read(y_low, x_low)
        + w_lh * read(y_low, x_high)
        + w_hl * read(y_high, x_low)
        + w_hh * read(y_high, x_high)
    )


def bilinear_sample(features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Read ``features`` at real-valued points by bilinear interpolation (ROIAlign's sampler).

    For a point ``(x, y)`` with ``x0 = floor(x)``, ``y0 = floor(y)``, ``lx = x - x0``,
    ``ly = y - y0``::

        f(x, y) = (1-ly)(1-lx) F[y0, x0] + (1-ly) lx F[y0, x0+1]
                + ly (1-lx) F[y0+1, x0] + ly lx F[y0+1, x0+1]

    Border rules of Mask R-CNN's ROIAlign (torchvision, Detectron): a point with
    ``y < -1``, ``y > H``, ``x < -1`` or ``x > W`` reads 0; otherwise it is clamped into
    ``[0, H-1] x [0, W-1]`` first (so a point just outside reads the border cell).

    Args:
        features: ``(N, C, H, W)`` float tensor; cell ``(i, j)`` has its centre at ``x=j, y=i``.
        points: ``(N, ..., 2)`` points ``x, y`` in feature-map pixels, one set per image.

    Returns:
        ``(N, C, ...)``: the value of every channel at every point; differentiable with
        respect to ``features``.
    """
    features = _check_features(features)
    points = check_array(points, "points", (..., 2), allow_torch=True)
    points = torch.as_tensor(points).to(device=features.device, dtype=_compute_dtype(features))
    if points.dim() < 2 or points.shape[0] != features.shape[0]:
        raise ValueError(
            f"points must have shape (N, ..., 2) with N={features.shape[0]} (from features), got {tuple(points.shape)}"
        )
    features_hwc = features.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C)
    batch_index = torch.arange(features.shape[0], device=features.device)
    batch_index = batch_index.view(-1, *([1] * (points.dim() - 2)))  # (N, 1, ..., 1)
    values = _bilinear_gather(features_hwc, batch_index, points[..., 0], points[..., 1])  # (N, ..., C)
    return values.movedim(-1, 1)  # (N, C, ...)


# --------------------------------------------------------------------------------------
# ROIAlign
# --------------------------------------------------------------------------------------
def _roi_align_geometry(
    rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int, aligned: bool
) -> tuple[torch.Tensor, ...]:
    """Per-box start, bin size and sampling grid of ROIAlign (all ``(R,)``, in ``rois.dtype`` / long)."""
    pooled_h, pooled_w = output_size
    scale = torch.tensor(spatial_scale, dtype=rois.dtype)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * scale - offset
    y1 = rois[:, 2] * scale - offset
    x2 = rois[:, 3] * scale - offset
    y2 = rois[:, 4] * scale - offset
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # the legacy behaviour: a box is at least one cell wide
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
    else:  # adaptive: about one sampling point per feature cell, s = ceil(box size / output size)
        grid_h = torch.ceil(roi_h / pooled_h).long()
        grid_w = torch.ceil(roi_w / pooled_w).long()
    return x1, y1, bin_h, bin_w, grid_h, grid_w


def _sampling_coordinates(start: torch.Tensor, bin_size: torch.Tensor, bins: int, samples: int) -> torch.Tensor:
    """Sampling positions along one axis, ``(G,)`` boxes -> ``(G, bins, samples)``.

    ``start + i * bin_size + (u + 0.5) * bin_size / samples``, in this order of operations
    (torchvision's), so that the floating-point results agree.
    """
    real = start.dtype
    i = torch.arange(bins, dtype=real).view(1, bins, 1)
    u = (torch.arange(samples, dtype=real) + 0.5).view(1, 1, samples)
    bin_size = bin_size.view(-1, 1, 1)
    return start.view(-1, 1, 1) + i * bin_size + u * bin_size / samples


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """ROIAlign (He et al. 2017, "Mask R-CNN", section 3), same semantics as ``torchvision.ops.roi_align``.

    The box ``(x1, y1, x2, y2)`` is scaled to the feature map (``x * spatial_scale``, then
    ``- 0.5`` if ``aligned``), **not rounded**, and cut into ``h x w`` bins of size
    ``b_h = box_h / h``, ``b_w = box_w / w`` (with ``aligned=False`` the box is first made
    at least 1 x 1).  Bin ``(i, j)`` averages ``s_h x s_w`` bilinear samples at::

        y = y1 + i * b_h + (u + 0.5) * b_h / s_h,   u = 0 .. s_h - 1
        x = x1 + j * b_w + (v + 0.5) * b_w / s_w,   v = 0 .. s_w - 1

    with ``s = sampling_ratio`` if it is > 0, else ``s_h = ceil(box_h / h)`` and
    ``s_w = ceil(box_w / w)`` for each box (a bin with no samples gives 0).  Bilinear
    samples follow :func:`bilinear_sample`'s border rules.

    Args:
        features: ``(N, C, H, W)`` feature maps.
        boxes: ``(R, 5)`` rows ``(batch_index, x1, y1, x2, y2)``, or a list of ``(R_i, 4)``
            ``(x1, y1, x2, y2)`` tensors, one per image; image pixels.
        output_size: ``h`` (square) or ``(h, w)``.
        spatial_scale: feature-map cells per image pixel (1/stride).
        sampling_ratio: samples per bin along each axis; ``<= 0``: adaptive.
        aligned: shift the scaled box by half a cell (Detectron2's correction).

    Returns:
        ``(R, C, h, w)`` pooled features, in box order; differentiable w.r.t. ``features``.

    Boxes with the same sampling grid ``(s_h, s_w)`` are processed together: one batched
    gather over all their bins and sampling points.
    """
    features = _check_features(features)
    rois = _as_rois(boxes, features)
    pooled_h, pooled_w = _output_size(output_size)
    spatial_scale = _check_scale(spatial_scale)
    sampling_ratio = _sampling_ratio(sampling_ratio)
    num_rois, channels = rois.shape[0], features.shape[1]
    x1, y1, bin_h, bin_w, grid_h, grid_w = _roi_align_geometry(
        rois, (pooled_h, pooled_w), spatial_scale, sampling_ratio, bool(aligned)
    )
    device = features.device
    features_hwc = features.permute(0, 2, 3, 1).contiguous()  # (N, H, W, C)
    output = features.new_zeros((num_rois, channels, pooled_h, pooled_w))
    grids = torch.stack([grid_h, grid_w], dim=1)  # (R, 2)
    for s_h, s_w in torch.unique(grids, dim=0).tolist() if num_rois else []:
        if s_h == 0 or s_w == 0:
            continue  # a zero-size box with aligned=True: no sampling point, the output stays 0
        group = ((grid_h == s_h) & (grid_w == s_w)).nonzero().squeeze(1)  # (G,)
        # Sampling coordinates, written as in torchvision so that the floating point agrees.
        y = _sampling_coordinates(y1[group], bin_h[group], pooled_h, s_h)  # (G, h, s_h)
        x = _sampling_coordinates(x1[group], bin_w[group], pooled_w, s_w)  # (G, w, s_w)
        batch_index = rois[group, 0].long().to(device).view(-1, 1, 1, 1, 1)  # (G, 1, 1, 1, 1)
        y = y.to(device).view(-1, pooled_h, s_h, 1, 1)  # (G, h, s_h, 1, 1)
        x = x.to(device).view(-1, 1, 1, pooled_w, s_w)  # (G, 1, 1, w, s_w)
        samples = _bilinear_gather(features_hwc, batch_index, x, y)  # (G, h, s_h, w, s_w, C)
        pooled = samples.sum(dim=(2, 4)) / (s_h * s_w)  # (G, h, w, C)
        output = output.index_copy(0, group.to(device), pooled.permute(0, 3, 1, 2))  # (G, C, h, w)
    return output


# --------------------------------------------------------------------------------------
# ROIPool
# --------------------------------------------------------------------------------------
def _roi_pool_bin_edges(
    rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float, feature_size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROIPool's two quantisations: bin ``i`` of box ``r`` covers rows ``h_start[r, i] .. h_end[r, i] - 1``.

    Returns ``h_start, h_end`` ``(R, h)`` and ``w_start, w_end`` ``(R, w)`` (long, feature
    cells, end excluded), clipped to ``feature_size = (H, W)`` unless it is ``None``.
    """
    pooled_h, pooled_w = output_size
    real = rois.dtype
    scale = torch.tensor(spatial_scale, dtype=real)
    x1, y1, x2, y2 = (_round_half_away_from_zero((rois[:, i] * scale).double()).long() for i in range(1, 5))
    roi_w = (x2 - x1 + 1).clamp(min=1)  # whole cells, both ends included
    roi_h = (y2 - y1 + 1).clamp(min=1)
    bin_h = (roi_h.to(real) / pooled_h).view(-1, 1)  # (R, 1)
    bin_w = (roi_w.to(real) / pooled_w).view(-1, 1)
    i = torch.arange(pooled_h, dtype=real).view(1, -1)  # (1, h)
    j = torch.arange(pooled_w, dtype=real).view(1, -1)  # (1, w)
    h_start = torch.floor(i * bin_h).long() + y1.view(-1, 1)  # (R, h)
    h_end = torch.ceil((i + 1) * bin_h).long() + y1.view(-1, 1)
    w_start = torch.floor(j * bin_w).long() + x1.view(-1, 1)  # (R, w)
    w_end = torch.ceil((j + 1) * bin_w).long() + x1.view(-1, 1)
    if feature_size is not None:
        height, width = feature_size
        h_start, h_end = h_start.clamp(0, height), h_end.clamp(0, height)
        w_start, w_end = w_start.clamp(0, width), w_end.clamp(0, width)
    return h_start, h_end, w_start, w_end


def _argmax_cells(
    table: torch.Tensor,
    batch_index: torch.Tensor,
    feature_size: tuple[int, int],
    window: tuple[int, int],
    h_start: torch.Tensor,
    h_end: torch.Tensor,
    w_start: torch.Tensor,
    w_end: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the maximum of every bin and channel, ``(G, h, w, C)`` each.

    ``table`` holds the feature cells as rows ``(N * H * W + 1, C)``, the last row ``-inf``;
    every bin is read in a ``window`` of cells starting at its first cell, positions beyond
    the bin point to the ``-inf`` row.  Ties go to the first maximum in row-major order,
    as in torchvision's loop.
    """
    height, width = feature_size
    window_h, window_w = window
    num_rois, pooled_h, pooled_w, channels = h_start.shape[0], h_start.shape[1], w_start.shape[1], table.shape[1]
    device = table.device
    rows = h_start.unsqueeze(-1) + torch.arange(window_h)  # (G, h, window_h)
    cols = w_start.unsqueeze(-1) + torch.arange(window_w)  # (G, w, window_w)
    in_bin = (rows < h_end.unsqueeze(-1)).view(num_rois, pooled_h, window_h, 1, 1) & (cols < w_end.unsqueeze(-1)).view(
        num_rois, 1, 1, pooled_w, window_w
    )  # (G, h, window_h, w, window_w)
    rows, cols = rows.clamp(max=height - 1).to(device), cols.clamp(max=width - 1).to(device)
    cell = (batch_index.view(-1, 1, 1, 1, 1) * height + rows.view(num_rois, pooled_h, window_h, 1, 1)) * width
    cell = cell + cols.view(num_rois, 1, 1, pooled_w, window_w)  # (G, h, window_h, w, window_w)
    cell = cell.masked_fill(~in_bin.to(device), table.shape[0] - 1)
    values = table.index_select(0, cell.flatten()).view(*cell.shape, channels)  # (G, h, window_h, w, window_w, C)
    # The first window row holding the bin's maximum, then the first column of that row.
    # (Positions are counted in the features' float type: float min-reductions are fast.)
    row_max = values.amax(dim=4)  # (G, h, window_h, w, C)
    best = row_max.amax(dim=2, keepdim=True)  # (G, h, 1, w, C)
    row_numbers = torch.arange(window_h, device=device, dtype=values.dtype).view(1, 1, window_h, 1, 1)
    row_pick = torch.where(row_max == best, row_numbers, window_h).amin(dim=2).long()  # (G, h, w, C)
    index = row_pick.view(num_rois, pooled_h, 1, pooled_w, 1, channels)
    picked_row = values.gather(2, index.expand(-1, -1, -1, -1, window_w, -1)).squeeze(2)  # (G, h, w, window_w, C)
    col_numbers = torch.arange(window_w, device=device, dtype=values.dtype).view(1, 1, 1, window_w, 1)
    is_best = picked_row == best.squeeze(2).unsqueeze(3)
    col_pick = torch.where(is_best, col_numbers, window_w).amin(dim=3).long()  # (G, h, w, C)
    shape = (num_rois, pooled_h, pooled_w, channels)
    best_row = rows.view(num_rois, pooled_h, window_h, 1, 1).expand(*shape[:2], window_h, *shape[2:])
    best_row = best_row.gather(2, row_pick.unsqueeze(2)).squeeze(2)  # (G, h, w, C) feature-map rows
    best_col = cols.view(num_rois, 1, pooled_w, window_w, 1).expand(*shape[:3], window_w, channels)
    best_col = best_col.gather(3, col_pick.unsqueeze(3)).squeeze(3)  # (G, h, w, C) feature-map columns
    return best_row, best_col


def roi_pool(
    features: torch.Tensor,
    boxes: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> torch.Tensor:
    """ROIPool (Girshick 2015, "Fast R-CNN", section 2.1), same semantics as ``torchvision.ops.roi_pool``.

    Quantisation 1, the box: ``X1 = round(x1 * spatial_scale)`` (and ``Y1, X2, Y2``; C's
    round, halves away from zero), ``box_w = max(X2 - X1 + 1, 1)`` cells (inclusive ends),
    ``b_w = box_w / w``.  Quantisation 2, the bins: bin ``(i, j)`` covers the cells::

        rows  Y1 + floor(i * b_h) .. Y1 + ceil((i + 1) * b_h) - 1
        cols  X1 + floor(j * b_w) .. X1 + ceil((j + 1) * b_w) - 1

    clipped to the feature map, and outputs their maximum (0 if the clipped bin is empty).
    As torchvision's kernel, the maximum starts at ``-FLT_MAX`` (the float32 minimum) and a
    cell replaces it only if it is larger: NaN cells are skipped, and a bin with nothing
    larger (all NaN or ``-inf``) outputs ``-FLT_MAX`` and passes no gradient back.

    Args and Returns: as :func:`roi_align` (no ``sampling_ratio``, no ``aligned``).

    Boxes whose largest bins have the same size are processed together: all their bins are
    gathered at once into windows of that size, cells outside a bin count as ``-inf``, and
    the arg-max cell of each bin is found (without autograd).  The winners are then read
    again from ``features``, so the gradient of a bin goes to its arg-max cell, as in
    torchvision's backward.
    """
    features = _check_features(features)
    rois = _as_rois(boxes, features)
    pooled_h, pooled_w = _output_size(output_size)
    spatial_scale = _check_scale(spatial_scale)
    num_rois, channels, height, width = rois.shape[0], *features.shape[1:]
    if num_rois == 0:
        return features.new_zeros((0, channels, pooled_h, pooled_w))
    device = features.device
    h_start, h_end, w_start, w_end = _roi_pool_bin_edges(rois, (pooled_h, pooled_w), spatial_scale, (height, width))

    batch_index = rois[:, 0].long().to(device)  # (R,)
    best_row = torch.zeros((num_rois, pooled_h, pooled_w, channels), dtype=torch.long, device=device)
    best_col = torch.zeros_like(best_row)
    # Boxes are grouped by the size of their largest bin, the window every bin is read in.
    window_h = (h_end - h_start).amax(dim=1).clamp(min=1)  # (R,)
    window_w = (w_end - w_start).amax(dim=1).clamp(min=1)
    with torch.no_grad():  # find the arg-max cell of every bin and channel
        # Feature cells as rows of a table, plus one extra row of -inf that every window
        # position outside its bin points to.
        table = features.permute(0, 2, 3, 1).reshape(-1, channels)  # (N * H * W, C)
        table = table.nan_to_num(nan=-math.inf, posinf=math.inf, neginf=-math.inf)  # NaN never wins a bin
        table = torch.cat([table, table.new_full((1, channels), float("-inf"))])  # (N * H * W + 1, C)
        for size_h, size_w in torch.unique(torch.stack([window_h, window_w], dim=1), dim=0).tolist():
            group = ((window_h == size_h) & (window_w == size_w)).nonzero().squeeze(1)  # (G,)
            rows, cols = _argmax_cells(
                table, batch_index[group.to(device)], (height, width), (size_h, size_w),
                h_start[group], h_end[group], w_start[group], w_end[group],
            )
            best_row[group.to(device)], best_col[group.to(device)] = rows, cols
    # Read the winners again, with autograd: the gradient of a bin goes to its arg-max cell.
    channel = torch.arange(channels, device=device).view(1, 1, 1, channels)
    pooled = features[batch_index.view(-1, 1, 1, 1), channel, best_row, best_col]  # (R, h, w, C)
    pooled = pooled.permute(0, 3, 1, 2)  # (R, C, h, w)
    # A bin where no cell beats -FLT_MAX (all NaN or -inf) keeps torchvision's starting value, no gradient.
    pooled = pooled.masked_fill(~(pooled > -FLT_MAX), -FLT_MAX)
    empty = (h_end <= h_start).view(num_rois, 1, pooled_h, 1) | (w_end <= w_start).view(num_rois, 1, 1, pooled_w)
    return pooled.masked_fill(empty.to(device), 0.0)


# --------------------------------------------------------------------------------------
# The geometry of one box, for figures and the ROI explorer of chapter 05
# --------------------------------------------------------------------------------------
def _one_box(box: Sequence[float]) -> torch.Tensor:
    box = check_array(box, "box", (4,), allow_torch=True)
    box = torch.as_tensor(box).detach().cpu().to(torch.float32)
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1, got {box.tolist()}")
    return torch.cat([torch.zeros(1), box]).view(1, 5)  # (1, 5): batch index 0


def roi_pool_bins(
    box: Sequence[float],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    feature_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The feature cells that each ROIPool bin of one box ``(x1, y1, x2, y2)`` covers.

    Returns ``rows`` ``(h, 2)`` and ``cols`` ``(w, 2)``: bin ``(i, j)`` takes the maximum over
    rows ``rows[i, 0] .. rows[i, 1] - 1`` and columns ``cols[j, 0] .. cols[j, 1] - 1``
    (clipped to ``feature_size = (H, W)`` when given; an empty range pools to 0).  Exactly
    the cells :func:`roi_pool` uses (float32 arithmetic).
    """
    rois = _one_box(box)
    h_start, h_end, w_start, w_end = _roi_pool_bin_edges(
        rois, _output_size(output_size), _check_scale(spatial_scale), feature_size
    )
    return torch.stack([h_start[0], h_end[0]], dim=1), torch.stack([w_start[0], w_end[0]], dim=1)


def roi_align_sampling_points(
    box: Sequence[float],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """Where ROIAlign samples one box ``(x1, y1, x2, y2)``: ``(h, w, s_h, s_w, 2)`` points ``x, y``.

    In feature-map coordinates (cell ``(i, j)`` centred at ``x = j, y = i``); bin ``(i, j)``
    of :func:`roi_align` is the mean of the bilinear values at ``points[i, j]``.  Empty
    (``s_h * s_w = 0``) for a zero-size box with ``aligned=True``.
    """
    rois = _one_box(box)
    pooled_h, pooled_w = _output_size(output_size)
    x1, y1, bin_h, bin_w, grid_h, grid_w = _roi_align_geometry(
        rois, (pooled_h, pooled_w), _check_scale(spatial_scale), _sampling_ratio(sampling_ratio), bool(aligned)
    )
    s_h, s_w = int(grid_h[0]), int(grid_w[0])
    y = _sampling_coordinates(y1, bin_h, pooled_h, s_h)[0]  # (h, s_h)
    x = _sampling_coordinates(x1, bin_w, pooled_w, s_w)[0]  # (w, s_w)
    y = y.view(pooled_h, 1, s_h, 1).expand(pooled_h, pooled_w, s_h, s_w)
    x = x.view(1, pooled_w, 1, s_w).expand(pooled_h, pooled_w, s_h, s_w)
    return torch.stack([x, y], dim=-1)  # (h, w, s_h, s_w, 2)


# --------------------------------------------------------------------------------------
# Slow, obviously correct versions: one box, one bin, one sampling point at a time
# --------------------------------------------------------------------------------------
def _bilinear_point(feature_map: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Value of ``feature_map`` ``(C, H, W)`` at one point, with ROIAlign's border rules."""
    _, height, width = feature_map.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return feature_map.new_zeros(feature_map.shape[0])  # too far outside: reads 0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * feature_map[:, y_low, x_low]
        + hy * lx * feature_map[:, y_low, x_high]
        + ly * hx * feature_map[:, y_high, x_low]
        + ly * lx * feature_map[:, y_high, x_high]
    )


def roi_align_loop(
    features: torch.Tensor,
    boxes: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """:func:`roi_align` written with plain loops over boxes, bins and sampling points (for reading)."""
    features = _check_features(features)
    rois = _as_rois(boxes, features)
    pooled_h, pooled_w = _output_size(output_size)
    spatial_scale = _check_scale(spatial_scale)
    sampling_ratio = _sampling_ratio(sampling_ratio)
    channels = features.shape[1]
    real = np.float64 if _compute_dtype(features) == torch.float64 else np.float32  # the arithmetic's precision
    scale, offset = real(spatial_scale), real(0.5 if aligned else 0.0)
    outputs = []
    for batch_index, bx1, by1, bx2, by2 in rois.tolist():
        feature_map = features[int(batch_index)]  # (C, H, W)
        x1, y1 = real(bx1) * scale - offset, real(by1) * scale - offset
        x2, y2 = real(bx2) * scale - offset, real(by2) * scale - offset
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:  # legacy: at least one cell
            roi_w, roi_h = max(roi_w, real(1)), max(roi_h, real(1))
        bin_h, bin_w = roi_h / real(pooled_h), roi_w / real(pooled_w)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / real(pooled_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / real(pooled_w))
        count = max(grid_h * grid_w, 1)
        bins = []
        for i in range(pooled_h):
            for j in range(pooled_w):
                total = features.new_zeros(channels)
                for u in range(grid_h):
                    y = y1 + real(i) * bin_h + real(u + 0.5) * bin_h / real(grid_h)
                    for v in range(grid_w):
                        x = x1 + real(j) * bin_w + real(v + 0.5) * bin_w / real(grid_w)
                        total = total + _bilinear_point(feature_map, float(y), float(x))
                bins.append(total / count)
        outputs.append(torch.stack(bins, dim=1).view(channels, pooled_h, pooled_w))
    if not outputs:
        return features.new_zeros((0, channels, pooled_h, pooled_w))
    return torch.stack(outputs)


def roi_pool_loop(
    features: torch.Tensor,
    boxes: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> torch.Tensor:
    """:func:`roi_pool` written with plain loops over boxes and bins (for reading)."""
    features = _check_features(features)
    rois = _as_rois(boxes, features)
    pooled_h, pooled_w = _output_size(output_size)
    spatial_scale = _check_scale(spatial_scale)
    channels, height, width = features.shape[1:]
    real = np.float64 if _compute_dtype(features) == torch.float64 else np.float32  # the arithmetic's precision
    scale = real(spatial_scale)

    def c_round(value: float) -> int:  # C's round: halves away from zero
        return int(math.copysign(math.floor(abs(value) + 0.5), value))

    outputs = []
    for batch_index, bx1, by1, bx2, by2 in rois.tolist():
        feature_map = features[int(batch_index)]  # (C, H, W)
        x1, y1 = c_round(float(real(bx1) * scale)), c_round(float(real(by1) * scale))
        x2, y2 = c_round(float(real(bx2) * scale)), c_round(float(real(by2) * scale))
        roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)  # whole cells, both ends included
        bin_h, bin_w = real(roi_h) / real(pooled_h), real(roi_w) / real(pooled_w)
        bins = []
        for i in range(pooled_h):
            for j in range(pooled_w):
                h_start = min(max(math.floor(real(i) * bin_h) + y1, 0), height)
                h_end = min(max(math.ceil(real(i + 1) * bin_h) + y1, 0), height)
                w_start = min(max(math.floor(real(j) * bin_w) + x1, 0), width)
                w_end = min(max(math.ceil(real(j + 1) * bin_w) + x1, 0), width)
                if h_end <= h_start or w_end <= w_start:
                    bins.append(features.new_zeros(channels))  # an empty bin pools to 0
                    continue
                cells = feature_map[:, h_start:h_end, w_start:w_end].flatten(1)  # (C, cells)
                # torchvision's loop: start at -FLT_MAX and take a cell only if it is larger; NaN never is
                cells = torch.where(torch.isnan(cells), torch.full_like(cells, -math.inf), cells)
                bins.append(cells.amax(dim=1).clamp(min=-FLT_MAX))
        outputs.append(torch.stack(bins, dim=1).view(channels, pooled_h, pooled_w))
    if not outputs:
        return features.new_zeros((0, channels, pooled_h, pooled_w))
    return torch.stack(outputs)
