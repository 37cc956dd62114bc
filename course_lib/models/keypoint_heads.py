"""Keypoint heads on per-person features: Mask R-CNN's ROI keypoint head and G-RMI's head.

* :class:`MaskRCNNKeypointHead` (He et al. 2017, "Mask R-CNN", section 5):
  ROIAlign features ``14 x 14`` -> eight ``3 x 3`` 512-channel convolutions with ReLU ->
  a ``4 x 4`` stride-2 deconvolution to ``K`` channels -> 2x bilinear upsampling: one
  ``56 x 56`` map of logits per keypoint.  Each keypoint is *one-hot*: the target is the
  single heatmap cell holding the keypoint (:func:`keypoints_to_roi_targets`) and the loss
  is a cross-entropy over the ``56 * 56`` cells of that keypoint's map (a spatial softmax,
  in ``course_lib.training``).  :func:`roi_heatmaps_to_keypoints` turns logits back into
  image coordinates.  The rules are those of Detectron (``utils/keypoints.py``) and the
  layer sizes those of maskrcnn-benchmark's keypoint feature extractor and predictor.
* :class:`GRMIHead` (Papandreou et al. 2017, "Towards Accurate Multi-person Pose
  Estimation in the Wild"): on a crop's feature map, a ``1 x 1`` convolution to ``3K``
  channels, ``K`` heatmap logits (is the keypoint within a disk of radius ``R`` of this
  cell?) and ``2K`` offsets (the vector from the cell to the keypoint).  Targets and
  decoding live in ``course_lib.heatmaps`` (``grmi_targets``, ``decode_grmi``);
  :class:`GRMIPoseNet` puts the head on a trunk (e.g. a trained SimpleBaseline's) and
  :class:`GRMILoss` trains it with ``training.fit`` (chapter 09).

Dimension letters: ``R`` boxes (person instances), ``C`` feature channels, ``K``
keypoints, ``[h, w]`` ROI feature size, ``[H, W]`` heatmap size.  Boxes are the course's
COCO ``[x, y, w, h]`` in image pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validation import check_array

__all__ = [
    "GRMIHead",
    "GRMILoss",
    "GRMIPoseNet",
    "MaskRCNNKeypointHead",
    "keypoints_to_roi_targets",
    "roi_heatmaps_to_keypoints",
]


def _check_input_channels(x: torch.Tensor, in_channels: int, name: str = "features") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, {in_channels}, h, w), got {shape}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{name} must have {in_channels} channels (in_channels), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------
# Mask R-CNN keypoint head
# --------------------------------------------------------------------------------------
class MaskRCNNKeypointHead(nn.Module):
    """Mask R-CNN's keypoint branch: ROI features ``(R, C, h, w)`` -> logits ``(R, K, 4h, 4w)``.

    Layers (the paper's defaults): ``num_convs`` x (3x3 conv, ``channels``, ReLU), then
    ``ConvTranspose2d(channels, K, 4, stride=2, padding=1)`` (2x), then bilinear 2x
    upsampling (``align_corners=False``): 14 x 14 ROIAlign features give 56 x 56 logits.
    Weights: Kaiming normal (fan-out, ReLU), biases zero, as in maskrcnn-benchmark.

    Presets: the paper is ``MaskRCNNKeypointHead(C)`` (8 convs of 512), and
    :meth:`tiny` (4 convs of 64) trains on a CPU.
    """

    def __init__(self, in_channels: int, num_keypoints: int = 17, num_convs: int = 8, channels: int = 512) -> None:
        super().__init__()
        for value, name in [(in_channels, "in_channels"), (num_keypoints, "num_keypoints"), (channels, "channels")]:
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(num_convs, int) or num_convs < 0:
            raise ValueError(f"num_convs must be an int >= 0, got {num_convs!r}")
        self.in_channels, self.num_keypoints = in_channels, num_keypoints
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(channels if num_convs else in_channels, num_keypoints, 4, stride=2, padding=1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    @classmethod
    def tiny(cls, in_channels: int, num_keypoints: int = 17) -> "MaskRCNNKeypointHead":
        """A CPU-sized head: 4 convs of 64 channels."""
        return cls(in_channels, num_keypoints, num_convs=4, channels=64)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(R, C, h, w)`` ROI features -> ``(R, K, 4h, 4w)`` keypoint logits."""
        _check_input_channels(features, self.in_channels)
        x = self.convs(features)  # (R, channels, h, w)
        x = self.deconv(x)  # (R, K, 2h, 2w)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (R, K, 4h, 4w)


def _heatmap_size(heatmap_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(heatmap_size, (int, np.integer)) and not isinstance(heatmap_size, bool):
        heatmap_size = (int(heatmap_size), int(heatmap_size))
    if not (
        isinstance(heatmap_size, (tuple, list))
        and len(heatmap_size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in heatmap_size)
    ):
        raise ValueError(f"heatmap_size must be a positive int or a pair (H, W) of them, got {heatmap_size!r}")
    return int(heatmap_size[0]), int(heatmap_size[1])


def _as_float64(value, name: str, shape: tuple, dims: dict) -> torch.Tensor:
    array = check_array(value, name, shape, dims=dims, allow_torch=True)
    return torch.as_tensor(array).detach().to(device="cpu", dtype=torch.float64)


def keypoints_to_roi_targets(
    keypoints: np.ndarray | torch.Tensor,
    visibility: np.ndarray | torch.Tensor,
    boxes: np.ndarray | torch.Tensor,
    heatmap_size: int | tuple[int, int] = 56,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot targets of the Mask R-CNN keypoint head (Detectron's ``keypoints_to_heatmap_labels``).

    The box ``[x, y, w, h]`` is cut into ``H x W`` cells; keypoint ``(k_x, k_y)`` falls in::

        col = floor((k_x - x) * W / w),   row = floor((k_y - y) * H / h)

    (a keypoint exactly on the right or bottom edge, ``k_x = x + w``, goes to the last cell
    instead of one past it).  The target is the flat index ``row * W + col`` of that cell.
    It is valid when the keypoint is labelled (``v > 0``) and inside the box; invalid
    keypoints get index 0 and must be left out of the loss.

    Args:
        keypoints: ``(R, K, 2)`` image pixels ``x, y``.
        visibility: ``(R, K)`` COCO flags 0/1/2.
        boxes: ``(R, 4)`` ``[x, y, w, h]`` image pixels, ``w, h > 0``.
        heatmap_size: ``H`` (square) or ``(H, W)``; Mask R-CNN uses 56.

    Returns:
        ``indices`` ``(R, K)`` long, in ``[0, H * W)``, and ``valid`` ``(R, K)`` bool.
    """
    dims: dict[str, int] = {}
    keypoints = _as_float64(keypoints, "keypoints", ("R", "K", 2), dims)
    visibility = _as_float64(visibility, "visibility", ("R", "K"), dims)
    boxes = _as_float64(boxes, "boxes", ("R", 4), dims)
    height, width = _heatmap_size(heatmap_size)
    if bool((boxes[:, 2:] <= 0).any()):
        r = int((boxes[:, 2:] <= 0).any(dim=1).nonzero()[0, 0])
        raise ValueError(f"boxes must have width and height > 0 ([x, y, w, h]); box {r} is {boxes[r].tolist()}")
    x0, y0 = boxes[:, 0:1], boxes[:, 1:2]  # (R, 1)
    x1, y1 = x0 + boxes[:, 2:3], y0 + boxes[:, 3:4]
    kx, ky = keypoints[..., 0], keypoints[..., 1]  # (R, K)
    col = torch.floor((kx - x0) * (width / boxes[:, 2:3]))
    row = torch.floor((ky - y0) * (height / boxes[:, 3:4]))
    col = torch.where(kx == x1, float(width - 1), col)  # on the right edge: keep it in the last cell
    row = torch.where(ky == y1, float(height - 1), row)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    valid = inside & (visibility > 0)
    indices = torch.where(valid, row * width + col, torch.zeros_like(col)).long()
    return indices, valid


@torch.no_grad()
def roi_heatmaps_to_keypoints(
    logits: torch.Tensor, boxes: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints in image pixels from per-box logits (Detectron's ``heatmaps_to_keypoints``).

    For each box ``[x, y, w, h]`` (``w, h`` at least 1): the ``H x W`` logits are resized
    bicubically to ``ceil(h) x ceil(w)`` (about one cell per image pixel, so the arg-max is
    not limited to 56 positions), the arg-max cell ``(row, col)`` is taken and mapped back::

        k_x = x + (col + 0.5) * w / ceil(w),   k_y = y + (row + 0.5) * h / ceil(h)

    The ``+ 0.5`` reads a cell as the interval ``[d, d + 1)`` and returns its centre: the
    same convention as :func:`keypoints_to_roi_targets`'s ``floor``, so that encoding
    and decoding are unbiased (a keypoint comes back to the centre of its cell).

    Args:
        logits: ``(R, K, H, W)`` head output.
        boxes: ``(R, 4)`` the boxes the ROI features were pooled from, ``[x, y, w, h]``.

    Returns:
        ``keypoints`` ``(R, K, 2)`` image ``x, y`` (float32) and ``scores`` ``(R, K)``: the
        resized logit at the peak (Detectron's keypoint score; higher is more confident).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a tensor of shape (R, K, H, W), got {shape}")
    check_array(logits, "logits", ("R", "K", None, None), allow_torch=True)
    if min(logits.shape[2:]) == 0:
        raise ValueError(f"logits must have a non-empty heatmap, got shape {tuple(logits.shape)}")
    boxes = _as_float64(boxes, "boxes", (logits.shape[0], 4), {})
    num_rois, num_keypoints = logits.shape[:2]
    keypoints = torch.zeros(num_rois, num_keypoints, 2)
    scores = torch.zeros(num_rois, num_keypoints)
    for r in range(num_rois):  # one resize per box: every box has its own size
        x, y, w, h = boxes[r].tolist()
        w, h = max(w, 1.0), max(h, 1.0)
        map_w, map_h = math.ceil(w), math.ceil(h)
        resized = F.interpolate(logits[r : r + 1].float(), size=(map_h, map_w), mode="bicubic", align_corners=False)
        resized = resized[0].reshape(num_keypoints, -1)  # (K, map_h * map_w)
        best, position = resized.max(dim=1)  # (K,)
        col, row = (position % map_w).double(), torch.div(position, map_w, rounding_mode="floor").double()
        keypoints[r, :, 0] = (x + (col + 0.5) * (w / map_w)).float()
        keypoints[r, :, 1] = (y + (row + 0.5) * (h / map_h)).float()
        scores[r] = best.cpu()
    return keypoints, scores


# --------------------------------------------------------------------------------------
# G-RMI head
# --------------------------------------------------------------------------------------
class GRMIHead(nn.Module):
    """G-RMI's output layer: features ``(N, C, h, w)`` -> ``(heatmap_logits, offsets)``.

    One ``1 x 1`` convolution to ``3K`` channels, split as:

    * channels ``0 .. K-1``: heatmap logits ``(N, K, h, w)``; ``sigmoid`` gives the
      probability that keypoint ``k`` lies within the disk of radius ``R`` around the cell;
    * channels ``K .. 3K-1``: offsets ``(N, 2K, h, w)``; offset channel ``2k`` is ``dx`` and
      ``2k + 1`` is ``dy`` of keypoint ``k`` (the vector from the cell to the keypoint, in
      the units that ``course_lib.heatmaps.grmi_targets`` uses).

    The paper puts this on a ResNet-101 with output stride 8 and upsamples the ``3K`` maps
    bilinearly to the crop size; any backbone of the course can carry it.
    """

    def __init__(self, in_channels: int, num_keypoints: int = 17) -> None:
        super().__init__()
        for value, name in [(in_channels, "in_channels"), (num_keypoints, "num_keypoints")]:
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.num_keypoints = in_channels, num_keypoints
        self.predict = nn.Conv2d(in_channels, 3 * num_keypoints, kernel_size=1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, h, w)`` -> heatmap logits ``(N, K, h, w)`` and offsets ``(N, 2K, h, w)``."""
        _check_input_channels(features, self.in_channels)
        out = self.predict(features)  # (N, 3K, h, w)
        k = self.num_keypoints
        return out[:, :k], out[:, k:]


class GRMIPoseNet(nn.Module):
    """A top-down pose network with G-RMI's output: crops ``(N, 3, H, W)`` -> ``(heatmap_logits, offsets)``.

    ``trunk`` maps crops to features ``(N, C, H / stride, W / stride)``; a :class:`GRMIHead`
    turns them into ``K`` disk logits and ``2K`` offsets.  The paper's trunk is a ResNet-101
    at output stride 8; chapter 09 reuses a trained tiny SimpleBaseline's ResNet and
    deconvolutions (:meth:`from_simple_baseline`), so only the new head has to learn much.

    Offsets are in units of ``radius`` (``grmi_targets(..., normalize_offsets=True)``);
    :meth:`decode` turns the outputs into keypoints in **input-crop pixels** with the paper's
    Hough voting (``heatmaps.decode_grmi``).

    Attributes:
        radius: the disk radius R in input pixels.
        input_size, stride, num_keypoints: as for the other pose models.
    """

    def __init__(
        self,
        trunk: nn.Module,
        in_channels: int,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (96, 64),
        stride: int = 4,
        radius: float = 8.0,
    ) -> None:
        super().__init__()
        if not isinstance(trunk, nn.Module):
            raise TypeError(f"trunk must be an nn.Module, got {type(trunk).__name__}")
        if not (isinstance(radius, (int, float)) and radius > 0):
            raise ValueError(f"radius must be a number > 0 (input pixels), got {radius!r}")
        self.trunk = trunk
        self.head = GRMIHead(in_channels, num_keypoints)
        self.num_keypoints, self.input_size = num_keypoints, tuple(input_size)
        self.stride, self.radius = stride, float(radius)

    @classmethod
    def from_simple_baseline(
        cls, model: nn.Module, radius: float = 8.0, heatmap_sigma: float | None = 2.0, gain: float = 10.0
    ) -> "GRMIPoseNet":
        """Reuse a trained SimpleBaseline's ResNet and deconvolutions (copied) as the trunk.

        With ``heatmap_sigma`` (the sigma, in heatmap pixels, of the Gaussians the model was
        trained on), the disk logits start as a thresholded copy of its heatmaps: a Gaussian
        ``H`` exceeds ``t = exp(-(R / stride)^2 / (2 sigma^2))`` exactly inside the disk of
        radius ``R``, so the head starts at ``logit = gain * (H - t)`` (the 1x1 heatmap layer,
        scaled and shifted).  The offsets start at zero: every position first votes for
        itself, and fine-tuning teaches the offsets.  ``heatmap_sigma=None`` starts the head
        from PyTorch's default initialisation instead.
        """
        import copy
        import math

        for name in ("backbone", "deconv_layers", "final_layer"):
            if not hasattr(model, name):
                raise TypeError(f"model must be a SimpleBaseline (it has no {name!r}), got {type(model).__name__}")
        trunk = nn.Sequential(copy.deepcopy(model.backbone), copy.deepcopy(model.deconv_layers))
        net = cls(trunk, model.final_layer.in_channels, model.num_keypoints, model.input_size, model.stride, radius)
        if heatmap_sigma is not None:
            threshold = math.exp(-((radius / model.stride) ** 2) / (2 * heatmap_sigma**2))
            k = model.num_keypoints
            with torch.no_grad():
                net.head.predict.weight.zero_()
                net.head.predict.bias.zero_()
                net.head.predict.weight[:k] = gain * model.final_layer.weight
                net.head.predict.bias[:k] = gain * (model.final_layer.bias - threshold)
        return net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3, H, W)`` -> heatmap logits ``(N, K, H/s, W/s)`` and offsets ``(N, 2K, H/s, W/s)``."""
        return self.head(self.trunk(images))

    @torch.no_grad()
    def decode(
        self, outputs: tuple[torch.Tensor, torch.Tensor], method: str = "vote"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs -> keypoints ``(N, K, 2)`` in input-crop pixels, scores ``(N, K)`` (the share of a disk's votes)."""
        from course_lib.heatmaps import decode_grmi

        logits, offsets = outputs
        return decode_grmi(logits.float(), offsets.float(), self.stride, self.radius, method=method, logits=True,
                           normalized_offsets=True)


class GRMILoss:
    """``loss(outputs, batch)`` for :class:`GRMIPoseNet` with ``training.fit``: G-RMI's targets made on the fly.

    From the batch's crop keypoints ``batch["keypoints"]`` ``(N, K, 2)`` and
    ``batch["visibility"]`` ``(N, K)`` it makes the disks and normalised offsets
    (``heatmaps.grmi_targets``) and returns ``losses.grmi_loss``: a logistic loss on the disks
    (weight 4) and a Huber loss on the offsets inside the disks (weight 1).
    """

    def __init__(self, radius: float, stride: int) -> None:
        if not (isinstance(radius, (int, float)) and radius > 0):
            raise ValueError(f"radius must be a number > 0 (input pixels), got {radius!r}")
        if not (isinstance(stride, int) and stride > 0):
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        self.radius, self.stride = float(radius), stride

    def __call__(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        from course_lib.heatmaps import grmi_targets
        from course_lib.losses import grmi_loss

        if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2):
            raise TypeError("outputs must be the pair (heatmap_logits, offsets) that GRMIPoseNet returns")
        logits, offsets = outputs
        disks, offset_targets, weights = grmi_targets(
            batch["keypoints"].float(), batch["visibility"], tuple(logits.shape[-2:]), self.radius, self.stride,
            normalize_offsets=True,
        )
        device = logits.device
        return grmi_loss(logits.float(), offsets.float(), disks.to(device), offset_targets.to(device),
                         weights.to(device))
