"""Losses of the course: what each chapter's network is trained to minimise.

Two layers:

* **Functions** on tensors, each with its formula: :func:`heatmap_mse`, :func:`ohkm_mse`,
  :func:`coordinate_loss`, :func:`spatial_softmax_cross_entropy`, :func:`grmi_loss`.
* **Batch losses**, callables ``loss(outputs, batch) -> {term name: scalar}`` that
  :func:`course_lib.training.fit` calls: :class:`HeatmapLoss` (with intermediate supervision
  over multi-stage outputs, optionally OHKM) and :class:`RegressionLoss` (DeepPose).  The
  names of the terms appear in the progress bar and in the error raised for a NaN loss.

Letters: N people in the batch, K keypoints, [H, W] the heatmap size.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from course_lib.geometry import input_box, normalize_to_box
from course_lib.validation import check_array, check_choice


def _check_heatmap_pair(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> None:
    dims: dict[str, int] = {}
    check_array(pred, "pred", ("N", "K", "H", "W"), dims=dims, allow_torch=True, finite=False)
    check_array(target, "target", ("N", "K", "H", "W"), dims=dims, allow_torch=True)
    check_array(weight, "weight", ("N", "K"), dims=dims, allow_torch=True)


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Visibility-weighted heatmap MSE (SimpleBaseline's ``JointsMSELoss`` with target weights).

        L = 1/(N K H W) sum_{n,k,u,v} 1/2 (w_nk (P_nk(u, v) - G_nk(u, v)))^2

    ``w_nk`` is 0 for joints that are not labelled (or fell out of the crop), so they cost
    nothing whatever the network predicts there.

    Args:
        pred, target: ``(N, K, H, W)``.
        weight: ``(N, K)``.
    """
    _check_heatmap_pair(pred, target, weight)
    w = weight[:, :, None, None].to(pred.dtype)
    return 0.5 * ((pred - target) * w).pow(2).mean()


def ohkm_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, topk: int = 8) -> torch.Tensor:
    """Online hard keypoint mining (Chen et al. 2018, CPN): only the ``topk`` worst joints count.

        l_nk = 1/(H W) sum_{u,v} 1/2 (w_nk (P_nk - G_nk))^2
        L    = 1/N sum_n 1/topk sum_{k in top-k of l_n.} l_nk

    Args:
        pred, target: ``(N, K, H, W)``; weight ``(N, K)``; topk: 1 <= topk <= K.
    """
    _check_heatmap_pair(pred, target, weight)
    if not 1 <= int(topk) <= pred.shape[1]:
        raise ValueError(f"topk must be between 1 and K={pred.shape[1]}, got {topk!r}")
    w = weight[:, :, None, None].to(pred.dtype)
    per_joint = 0.5 * ((pred - target) * w).pow(2).mean(dim=(2, 3))  # (N, K)
    hardest, _ = per_joint.topk(int(topk), dim=1)  # (N, topk)
    return hardest.mean()


def coordinate_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Coordinate regression loss over labelled joints (DeepPose uses L2 on box-normalised coordinates).

        L2:  L = sum_{n,k} w_nk ||y_nk - y*_nk||^2 / sum_{n,k} w_nk
        L1:  L = sum_{n,k} w_nk ||y_nk - y*_nk||_1 / sum_{n,k} w_nk

    Args:
        pred, target: ``(N, K, 2)``; weight: ``(N, K)`` (0 for joints without a label).
        kind: ``"l2"`` or ``"l1"``.
    """
    dims: dict[str, int] = {}
    check_array(pred, "pred", ("N", "K", 2), dims=dims, allow_torch=True, finite=False)
    check_array(target, "target", ("N", "K", 2), dims=dims, allow_torch=True)
    check_array(weight, "weight", ("N", "K"), dims=dims, allow_torch=True)
    check_choice(kind, "kind", ("l2", "l1"))
    error = pred - target
    per_joint = error.pow(2).sum(-1) if kind == "l2" else error.abs().sum(-1)  # (N, K)
    w = weight.to(pred.dtype)
    return (per_joint * w).sum() / w.sum().clamp(min=1.0)


def spatial_softmax_cross_entropy(logits: torch.Tensor, indices: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mask R-CNN's keypoint loss: a softmax over all ``H W`` positions of each keypoint map.

    Each keypoint has a one-hot target at flat position ``t_rk``:

        L = - 1/|valid| sum_{(r,k) valid} log( exp(z_rk[t_rk]) / sum_j exp(z_rk[j]) )

    Args:
        logits: ``(R, K, H, W)`` per-ROI keypoint logits.
        indices: ``(R, K)`` int64 flat index ``v W + u`` of the target position.
        valid: ``(R, K)`` bool or 0/1: the keypoint is labelled and inside the ROI.
    """
    dims: dict[str, int] = {}
    check_array(logits, "logits", ("R", "K", None, None), dims=dims, allow_torch=True, finite=False)
    check_array(indices, "indices", ("R", "K"), dims=dims, allow_torch=True)
    check_array(valid, "valid", ("R", "K"), dims=dims, allow_torch=True)
    flat = logits.flatten(2)  # (R, K, H W)
    keep = valid.bool()
    if not bool(keep.any()):
        return flat.sum() * 0.0  # no labelled keypoint in any ROI: zero loss, graph kept
    index = indices.long().clamp(0, flat.shape[-1] - 1)
    return F.cross_entropy(flat[keep], index[keep])


def grmi_loss(
    heatmap_logits: torch.Tensor,
    offsets: torch.Tensor,
    disks: torch.Tensor,
    offset_targets: torch.Tensor,
    weight: torch.Tensor,
    heatmap_weight: float = 4.0,
    offset_weight: float = 1.0,
    huber_delta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """G-RMI's loss (Papandreou et al. 2017): disk classification + offset regression inside the disk.

        L_h = mean_{n,k,j} w_nk BCE(sigmoid(z_nk(x_j)), h_nk(x_j))
        L_o = sum_{n,k,j} w_nk h_nk(x_j) Huber(F_nk(x_j) - F*_nk(x_j)) / sum h
        L   = lambda_h L_h + lambda_o L_o           (the paper: lambda_h = 4, lambda_o = 1)

    Offsets are compared only where the target disk is 1, as in the paper.  Use offsets
    normalised by the radius (``grmi_targets(..., normalize_offsets=True)``) so that the
    Huber threshold ``huber_delta`` is in units of R.

    Args:
        heatmap_logits: ``(N, K, H, W)``; offsets: ``(N, 2K, H, W)`` (channel 2k = dx, 2k+1 = dy).
        disks: ``(N, K, H, W)`` 0/1 targets; offset_targets: ``(N, 2K, H, W)``; weight: ``(N, K)``.

    Returns:
        ``{"heatmap": lambda_h L_h, "offset": lambda_o L_o}`` (sum them for the total).
    """
    dims: dict[str, int] = {}
    check_array(heatmap_logits, "heatmap_logits", ("N", "K", "H", "W"), dims=dims, allow_torch=True, finite=False)
    check_array(disks, "disks", ("N", "K", "H", "W"), dims=dims, allow_torch=True)
    check_array(weight, "weight", ("N", "K"), dims=dims, allow_torch=True)
    num_offsets = 2 * dims["K"]
    check_array(offsets, "offsets", ("N", num_offsets, "H", "W"), dims=dims, allow_torch=True, finite=False)
    check_array(offset_targets, "offset_targets", ("N", num_offsets, "H", "W"), dims=dims, allow_torch=True)
    w = weight[:, :, None, None].to(heatmap_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(heatmap_logits, disks.to(heatmap_logits.dtype), reduction="none")
    heatmap_term = (bce * w).mean()
    inside = (disks * w).repeat_interleave(2, dim=1)  # (N, 2K, H, W): the disk mask for dx and dy
    huber = F.huber_loss(offsets, offset_targets.to(offsets.dtype), reduction="none", delta=huber_delta)
    offset_term = (huber * inside).sum() / inside.sum().clamp(min=1.0)
    return {"heatmap": heatmap_weight * heatmap_term, "offset": offset_weight * offset_term}


# ============================================================================ batch losses
class HeatmapLoss:
    """``loss(outputs, batch)`` for heatmap networks, with intermediate supervision.

    ``outputs`` is one ``(N, K, H, W)`` tensor or the list of every stage's maps (CPM,
    stacked hourglass).  Intermediate supervision (Wei et al. 2016; Newell et al. 2016) puts
    the same target on every stage and sums the losses:

        L = sum_s lambda_s loss(P^s, G, w)

    Args:
        ohkm: use :func:`ohkm_mse` (``topk`` hardest joints) instead of :func:`heatmap_mse`.
        topk: joints kept by OHKM.
        final_only: supervise only the last stage (the "no intermediate supervision" ablation).
        stage_weights: ``lambda_s`` per stage (default 1 each).

    Reads ``batch["heatmaps"]`` ``(N, K, H, W)`` and ``batch["target_weight"]`` ``(N, K)``.
    Returns ``{"heatmap": L}`` for one output, ``{"stage1": ..., "stage2": ...}`` for several.
    """

    def __init__(
        self, ohkm: bool = False, topk: int = 8, final_only: bool = False, stage_weights: Sequence[float] | None = None
    ) -> None:
        self.ohkm, self.topk, self.final_only = bool(ohkm), int(topk), bool(final_only)
        self.stage_weights = None if stage_weights is None else [float(w) for w in stage_weights]

    def __call__(self, outputs: torch.Tensor | Sequence[torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        stages = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        target, weight = batch["heatmaps"], batch["target_weight"]
        if self.final_only:
            stages = stages[-1:]
        weights = self.stage_weights or [1.0] * len(stages)
        if len(weights) != len(stages):
            raise ValueError(f"stage_weights has {len(weights)} entries but the model returned {len(stages)} stages")
        terms = {}
        for s, (pred, lam) in enumerate(zip(stages, weights), start=1):
            if pred.shape[-2:] != target.shape[-2:]:
                raise ValueError(
                    f"stage {s} predicts heatmaps of size {tuple(pred.shape[-2:])} but the targets are "
                    f"{tuple(target.shape[-2:])}: make the data's heatmap_size match the model's output"
                )
            value = ohkm_mse(pred, target, weight, self.topk) if self.ohkm else heatmap_mse(pred, target, weight)
            terms["heatmap" if len(stages) == 1 else f"stage{s}"] = lam * value
        return terms


class RegressionLoss:
    """``loss(outputs, batch)`` for DeepPose: coordinates normalised to the input crop.

    The crop is the box ``b = [0, 0, W_in, H_in]`` in input pixels, so the target is
    ``N(y; b) = diag(1/W_in, 1/H_in)(y - b_c)`` with ``b_c = (W_in/2, H_in/2)`` (the crop
    centre of :func:`~course_lib.geometry.get_affine_transform`; :func:`~course_lib.geometry.input_box`).  Reads
    ``batch["image"]`` (for the input size), ``batch["keypoints"]`` (crop pixels) and
    ``batch["target_weight"]``.
    """

    def __init__(self, kind: str = "l2") -> None:
        self.kind = check_choice(kind, "kind", ("l2", "l1"))

    def __call__(self, outputs: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        box = outputs.new_tensor(input_box(tuple(batch["image"].shape[-2:])))
        target = normalize_to_box(batch["keypoints"].to(outputs.dtype), box)
        return {"coordinates": coordinate_loss(outputs, target, batch["target_weight"], self.kind)}


__all__ = [
    "HeatmapLoss",
    "RegressionLoss",
    "coordinate_loss",
    "grmi_loss",
    "heatmap_mse",
    "ohkm_mse",
    "spatial_softmax_cross_entropy",
]

