"""A small person detector in the style of CenterNet (chapter 09's top-down pipeline).

Zhou, Wang and Krähenbühl, "Objects as Points" (2019): a person is the *centre* of its
box.  A fully convolutional network with output stride ``s = 4`` predicts, at every cell
``(u, v)`` of the ``H/s x W/s`` output:

* ``heatmap``: the logit of "a box centre is here" (1 channel, person only);
* ``size``: the box width and height ``(w, h)`` in output cells (2 channels);
* ``offset``: the sub-cell position of the centre, ``c / s - floor(c / s)`` (2 channels).

Training targets (:func:`detection_targets`) put a Gaussian peak of value 1 at each centre
cell, with the radius rule of CornerNet/CenterNet (a box whose corners move by up to that
radius still overlaps the true box with IoU >= 0.7); the loss (:func:`detection_loss`) is the
penalty-reduced focal loss on the heatmap plus an L1 loss on size and offset at the centre
cells.  Decoding (:func:`decode_detections`) needs no box NMS: a 3 x 3 max-pool keeps the
local peaks, and each peak reads its size and offset.

Coordinates: boxes are COCO ``[x, y, w, h]`` in image pixels; output cell ``u`` is image
``x = u * s`` (the course convention), so a centre ``c`` in the image is ``c / s`` in cells.
Read alongside the official code (xingyizhou/CenterNet: ``utils/image.py``,
``datasets/sample/ctdet.py``, ``models/losses.py``, ``models/decode.py``).

Dimension letters: ``N`` images, ``M`` box slots per image (``max_objects``), ``[H, W]``
the image, ``[h, w]`` the output (``H / s, W / s``), ``D`` detections.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validation import check_array, check_positive

__all__ = [
    "PersonDetector",
    "decode_detections",
    "detection_loss",
    "detection_targets",
    "focal_loss",
    "gaussian_radius",
    "train_detector",
]

# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PersonDetector(nn.Module):
    """Images ``(N, 3, H, W)`` -> ``{"heatmap": (N, 1, h, w), "size": (N, 2, h, w), "offset": (N, 2, h, w)}``.

    A small encoder-decoder: a stem of two stride-2 convolutions down to stride 4, three
    stages down to stride 8, 16 and 32 (the receptive field must cover a whole person to
    guess its box size), and a top-down path back to stride 4 (nearest 2x upsampling plus
    a 1x1 lateral connection from the encoder at each stride, as in a feature pyramid).
    The three outputs share one 3x3 convolution and have their own 1x1 convolution
    (CenterNet gives each output its own 3x3 layer; sharing it halves the cost on a CPU).

    Args:
        width: channels at stride 4; the stages have ``2 * width``, ``4 * width``, ``4 * width``.
        head_channels: channels of the shared head layer (default ``2 * width``).

    ``H`` and ``W`` must be multiples of 32.  Presets: ``PersonDetector()`` (width 32) and
    :meth:`tiny` (width 16, chapter 09 on a CPU).  The heatmap bias starts at ``-2.19``
    (sigmoid 0.1), as in CenterNet, so that the focal loss starts small.
    """

    stride = 4

    def __init__(self, width: int = 32, head_channels: int | None = None) -> None:
        super().__init__()
        if not isinstance(width, int) or width <= 0:
            raise ValueError(f"width must be a positive int, got {width!r}")
        head_channels = 2 * width if head_channels is None else head_channels
        if not isinstance(head_channels, int) or head_channels <= 0:
            raise ValueError(f"head_channels must be a positive int, got {head_channels!r}")
        widths = [width, 2 * width, 4 * width, 4 * width]  # strides 4, 8, 16, 32
        self.stem = nn.Sequential(_conv_bn_relu(3, width, 2), _conv_bn_relu(width, width, 2))
        self.stages = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(c_in, c_out, 2), _conv_bn_relu(c_out, c_out))
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in widths)  # every stride -> width channels
        self.head = nn.Sequential(nn.Conv2d(width, head_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.heatmap_out = nn.Conv2d(head_channels, 1, 1)
        self.size_out = nn.Conv2d(head_channels, 2, 1)
        self.offset_out = nn.Conv2d(head_channels, 2, 1)
        nn.init.constant_(self.heatmap_out.bias, -2.19)

    @classmethod
    def tiny(cls) -> "PersonDetector":
        """The CPU preset of chapter 09: width 16."""
        return cls(width=16)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised images ``(N, 3, H, W)`` (``course_lib.data.image_to_tensor``) -> the three output maps."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor of shape (N, 3, H, W), got {shape}")
        if images.shape[2] % 32 or images.shape[3] % 32:
            raise ValueError(f"images must have H and W divisible by 32, got {tuple(images.shape[2:])}")
        features = [self.stem(images)]  # stride 4
        for stage in self.stages:
            features.append(stage(features[-1]))  # strides 8, 16, 32
        x = self.laterals[-1](features[-1])
        for lateral, skip in zip(reversed(self.laterals[:-1]), reversed(features[:-1])):
            x = F.interpolate(x, scale_factor=2, mode="nearest") + lateral(skip)  # back up to stride 4
        x = self.head(x)  # (N, head_channels, H/4, W/4)
        return {"heatmap": self.heatmap_out(x), "size": self.size_out(x), "offset": self.offset_out(x)}


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------
def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius rule (Law and Deng 2018), as CenterNet's code computes it.

    The smallest of three radii ``r``, each the root of a quadratic ``a r^2 + b r + c = 0``
    saying that a box with its corners moved by ``r`` still has IoU = ``min_overlap`` with
    the true ``height x width`` box: (1) both corners moved the same way (a shift by ``r``
    in x and y), (2) both moved inwards, (3) both moved outwards.
    """
    a1, b1, c1 = 1.0, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - math.sqrt(b1**2 - 4 * a1 * c1)) / (2 * a1)
    a2, b2, c2 = 4.0, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 - math.sqrt(b2**2 - 4 * a2 * c2)) / (2 * a2)
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def _draw_gaussian(heatmap: np.ndarray, centre: tuple[int, int], radius: int) -> None:
    """``heatmap = max(heatmap, exp(-d^2 / (2 sigma^2)))`` in a ``(2r+1)^2`` window, ``sigma = (2r+1) / 6``."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    gaussian = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))  # (d, d)
    gaussian[gaussian < np.finfo(np.float64).eps * gaussian.max()] = 0
    x, y = centre
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    window = heatmap[y - top : y + bottom, x - left : x + right]
    patch = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(window, patch, out=window)


def _check_image_size(image_size: Sequence[int], stride: int) -> tuple[int, int]:
    if not (isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(isinstance(s, (int, np.integer)) and s > 0 for s in image_size)):
        raise ValueError(f"image_size must be a pair (H, W) of positive ints, got {image_size!r}")
    if not isinstance(stride, int) or stride <= 0:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    if image_size[0] % stride or image_size[1] % stride:
        raise ValueError(f"image_size must be divisible by stride={stride}, got {tuple(image_size)}")
    return int(image_size[0]), int(image_size[1])


def detection_targets(
    boxes_list: Sequence[np.ndarray | torch.Tensor],
    image_size: tuple[int, int],
    stride: int = 4,
    max_objects: int = 32,
    min_overlap: float = 0.7,
) -> dict[str, torch.Tensor]:
    """CenterNet training targets for one batch (``ctdet``'s rules).

    For each box ``[x, y, w, h]`` (image pixels): its corners in output cells, ``x / s``
    etc., are clipped to ``[0, w_out - 1] x [0, h_out - 1]``; a box with no area left is
    skipped.  With ``(b_w, b_h)`` the clipped size in cells and ``c`` its centre::

        radius = max(0, int(gaussian_radius(ceil(b_h), ceil(b_w), min_overlap)))
        heatmap: Gaussian of sigma (2 radius + 1) / 6, peak 1 at floor(c)
        size = (b_w, b_h),  offset = c - floor(c),  index = floor(c_y) * w_out + floor(c_x)

    Args:
        boxes_list: one ``(M_i, 4)`` array of boxes per image (``M_i`` may be 0).
        image_size: ``(H, W)`` of the images, divisible by ``stride``.
        stride: output stride ``s``.
        max_objects: box slots per image ``M``.
        min_overlap: IoU the radius rule guarantees.

    Returns:
        ``heatmap`` ``(N, 1, h, w)``, ``size`` and ``offset`` ``(N, M, 2)`` (float32, in
        cells), ``index`` ``(N, M)`` long and ``mask`` ``(N, M)`` float (1 for a real box).
    """
    height, width = _check_image_size(image_size, stride)
    if isinstance(boxes_list, (torch.Tensor, np.ndarray)) or not isinstance(boxes_list, (list, tuple)):
        raise TypeError(f"boxes_list must be a list with one (M_i, 4) array per image, got {type(boxes_list).__name__}")
    if len(boxes_list) == 0:
        raise ValueError("boxes_list must hold at least one image, got an empty list")
    if not isinstance(max_objects, int) or max_objects <= 0:
        raise ValueError(f"max_objects must be a positive int, got {max_objects!r}")
    min_overlap = check_positive(min_overlap, "min_overlap")
    if min_overlap >= 1:
        raise ValueError(f"min_overlap must be in (0, 1), got {min_overlap}")
    out_h, out_w = height // stride, width // stride
    num_images = len(boxes_list)
    heatmap = np.zeros((num_images, 1, out_h, out_w), dtype=np.float64)
    size = np.zeros((num_images, max_objects, 2), dtype=np.float32)
    offset = np.zeros((num_images, max_objects, 2), dtype=np.float32)
    index = np.zeros((num_images, max_objects), dtype=np.int64)
    mask = np.zeros((num_images, max_objects), dtype=np.float32)
    for n, boxes in enumerate(boxes_list):
        boxes = check_array(boxes, f"boxes_list[{n}]", (None, 4), dtype=np.float64)
        if bool((boxes[:, 2:] < 0).any()):
            raise ValueError(f"boxes_list[{n}] must hold [x, y, w, h] boxes with w, h >= 0, got {boxes.tolist()}")
        if len(boxes) > max_objects:
            raise ValueError(f"boxes_list[{n}] has {len(boxes)} boxes, more than max_objects={max_objects}")
        slot = 0
        for x, y, w, h in boxes / stride:  # in output cells
            x1, x2 = np.clip([x, x + w], 0, out_w - 1)
            y1, y2 = np.clip([y, y + h], 0, out_h - 1)
            box_w, box_h = x2 - x1, y2 - y1
            if box_w <= 0 or box_h <= 0:
                continue  # nothing of it left in the image
            radius = max(0, int(gaussian_radius(math.ceil(box_h), math.ceil(box_w), min_overlap)))
            centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            cell = np.floor(centre).astype(np.int64)
            _draw_gaussian(heatmap[n, 0], (int(cell[0]), int(cell[1])), radius)
            size[n, slot] = box_w, box_h
            offset[n, slot] = centre - cell
            index[n, slot] = cell[1] * out_w + cell[0]
            mask[n, slot] = 1.0
            slot += 1
    return {
        "heatmap": torch.from_numpy(heatmap.astype(np.float32)),
        "size": torch.from_numpy(size),
        "offset": torch.from_numpy(offset),
        "index": torch.from_numpy(index),
        "mask": torch.from_numpy(mask),
    }


# --------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------
def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced focal loss (CornerNet, eq. 1; CenterNet, eq. 1), ``alpha = 2``, ``beta = 4``.

    With ``p = sigmoid(logit)`` clamped to ``[1e-4, 1 - 1e-4]`` and ``y`` the Gaussian target::

        L = -1/N_pos * sum  { (1 - p)^2 log(p)               where y = 1
                            { (1 - y)^4 p^2 log(1 - p)        elsewhere

    Cells near a centre (``y`` close to 1) are barely penalised for firing.  ``N_pos`` is the
    number of centres (at least 1).
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have the same shape, got {tuple(logits.shape)} and {tuple(target.shape)}")
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).to(p.dtype)
    negative = 1 - positive
    positive_loss = torch.log(p) * (1 - p) ** 2 * positive
    negative_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * negative
    num_positive = positive.sum().clamp(min=1)
    return -(positive_loss.sum() + negative_loss.sum()) / num_positive


def _gather_at(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Read dense maps ``(N, C, h, w)`` at flat cell indices ``(N, M)``: ``(N, M, C)``."""
    n, c = maps.shape[:2]
    flat = maps.reshape(n, c, -1)  # (N, C, h * w)
    return flat.gather(2, index.unsqueeze(1).expand(n, c, index.shape[1])).transpose(1, 2)  # (N, M, C)


def detection_loss(
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    size_weight: float = 0.1,
    offset_weight: float = 1.0,
) -> torch.Tensor:
    """CenterNet's loss: ``L = L_heatmap + 0.1 * L_size + 1 * L_offset``.

    ``L_heatmap`` is :func:`focal_loss`; ``L_size`` and ``L_offset`` are L1 losses read at
    the centre cells only, averaged over the real boxes and the two coordinates.
    """
    for key in ("heatmap", "size", "offset"):
        if key not in outputs:
            raise KeyError(f"outputs must have a {key!r} entry (as PersonDetector returns), got {sorted(outputs)}")
    for key in ("heatmap", "size", "offset", "index", "mask"):
        if key not in targets:
            raise KeyError(f"targets must have a {key!r} entry (as detection_targets returns), got {sorted(targets)}")
    if outputs["heatmap"].shape != targets["heatmap"].shape:
        raise ValueError(
            f"outputs['heatmap'] has shape {tuple(outputs['heatmap'].shape)} but targets['heatmap'] has "
            f"{tuple(targets['heatmap'].shape)}: were the targets made for this image size and stride?"
        )
    device = outputs["heatmap"].device
    targets = {key: value.to(device) for key, value in targets.items()}
    mask = targets["mask"].unsqueeze(-1)  # (N, M, 1)
    denominator = 2 * targets["mask"].sum() + 1e-4

    def l1_at_centres(name: str) -> torch.Tensor:
        predicted = _gather_at(outputs[name], targets["index"])  # (N, M, 2)
        return (torch.abs(predicted - targets[name]) * mask).sum() / denominator

    return (
        focal_loss(outputs["heatmap"], targets["heatmap"])
        + size_weight * l1_at_centres("size")
        + offset_weight * l1_at_centres("offset")
    )


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------
@torch.no_grad()
def decode_detections(
    outputs: dict[str, torch.Tensor], max_detections: int = 20, threshold: float = 0.1, stride: int = 4
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Boxes from the network's outputs: peaks of the centre heatmap, no box NMS.

    A cell is a detection when its score ``sigmoid(logit)`` equals the maximum of its 3 x 3
    neighbourhood (a local peak), is among the ``max_detections`` best of its image and is
    above ``threshold``.  Its box, back in image pixels::

        c = (u + offset_x, v + offset_y),   box = [(c_x - w/2) s, (c_y - h/2) s, w s, h s]

    The default threshold is low (0.1) because a small detector trained for minutes gives
    modest peak scores; for COCO-style AP pass ``threshold=0`` and let the ranking decide.

    Returns:
        one ``(boxes (D, 4) [x, y, w, h] image pixels, scores (D,))`` pair per image, best first.
    """
    for key in ("heatmap", "size", "offset"):
        if key not in outputs:
            raise KeyError(f"outputs must have a {key!r} entry (as PersonDetector returns), got {sorted(outputs)}")
    heat = outputs["heatmap"]
    if heat.dim() != 4 or heat.shape[1] != 1:
        raise ValueError(f"outputs['heatmap'] must have shape (N, 1, h, w), got {tuple(heat.shape)}")
    if not isinstance(max_detections, int) or max_detections <= 0:
        raise ValueError(f"max_detections must be a positive int, got {max_detections!r}")
    threshold = check_positive(threshold, "threshold", allow_zero=True)
    num_images, _, out_h, out_w = heat.shape
    scores = torch.sigmoid(heat.float())
    peaks = scores == F.max_pool2d(scores, 3, stride=1, padding=1)  # (N, 1, h, w)
    scores = (scores * peaks).view(num_images, -1)  # (N, h * w)
    top_scores, top_index = scores.topk(min(max_detections, out_h * out_w), dim=1)  # (N, D)
    size = _gather_at(outputs["size"].float(), top_index)  # (N, D, 2)
    offset = _gather_at(outputs["offset"].float(), top_index)  # (N, D, 2)
    centre_x = (top_index % out_w).float() + offset[..., 0]
    centre_y = torch.div(top_index, out_w, rounding_mode="floor").float() + offset[..., 1]
    boxes = torch.stack(
        [centre_x - size[..., 0] / 2, centre_y - size[..., 1] / 2, size[..., 0], size[..., 1]], dim=-1
    ) * stride  # (N, D, 4)
    results = []
    for n in range(num_images):
        keep = top_scores[n] > threshold
        results.append((boxes[n][keep].cpu(), top_scores[n][keep].cpu()))
    return results


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def train_detector(
    model: PersonDetector,
    images: torch.Tensor,
    boxes_list: Sequence[np.ndarray],
    steps: int = 600,
    batch_size: int = 16,
    learning_rate: float = 5e-3,
    seed: int = 0,
    flip: bool = True,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[float]:
    """Train ``model`` with Adam on normalised ``images`` ``(N, 3, H, W)`` and their boxes.

    Random batches of ``batch_size`` images, random horizontal flips, cosine decay of the
    learning rate.  A flip maps pixel column ``j`` to ``W - 1 - j``, so a box
    ``[x, y, w, h]`` becomes ``[W - 1 - x - w, y, w, h]``.  Returns the loss of every step.

    ``device``: where to train (``"auto"`` picks CUDA, then MPS, then the CPU, as
    ``course_lib.training.fit`` does); the images move there batch by batch and the model
    stays there.  ``progress`` shows a progress bar with the running loss.
    """
    check_array(images, "images", (None, 3, None, None), allow_torch=True)
    if len(boxes_list) != images.shape[0]:
        raise ValueError(f"boxes_list must have one entry per image ({images.shape[0]}), got {len(boxes_list)}")
    from course_lib.runtime import resolve_device

    device = resolve_device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(steps, 1))
    image_size = tuple(images.shape[2:])
    width = image_size[1]
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="training the detector", unit="step")
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        flips = torch.rand(batch_size, generator=generator) < 0.5 if flip else torch.zeros(batch_size, dtype=torch.bool)
        batch_images = images[batch].clone().to(device)
        mirrored = flips.to(device)
        batch_images[mirrored] = batch_images[mirrored].flip(-1)
        batch_boxes = []
        for i, f in zip(batch.tolist(), flips.tolist()):
            boxes = np.asarray(boxes_list[i], dtype=np.float64).reshape(-1, 4).copy()
            if f:
                boxes[:, 0] = width - boxes[:, 0] - boxes[:, 2] - 1
            batch_boxes.append(boxes)
        targets = detection_targets(batch_boxes, image_size, model.stride)
        loss = detection_loss(model(batch_images), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return losses
