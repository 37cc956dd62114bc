"""Data: the synthetic data set, the COCO keypoint reader, and image <-> tensor conversion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from course_lib.validation import check_array

# Where the course keeps its data: ``data/`` next to ``course_lib/`` (override with COURSE_DATA).
DATA_ROOT = Path(os.environ.get("COURSE_DATA", Path(__file__).resolve().parents[1] / "data"))

# ImageNet statistics (RGB), the normalisation every model of the course expects.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB ``uint8`` image ``(H, W, 3)`` (or a batch ``(N, H, W, 3)``) -> normalised float tensor ``(3, H, W)``.

    x = (pixel / 255 - mean) / std, per channel.
    """
    image = check_array(image, "image", (..., None, None, 3), dtype=None)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0)
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    tensor = tensor.movedim(-1, -3)  # (..., 3, H, W)
    return (tensor - mean) / std


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`image_to_tensor`: ``(3, H, W)`` or ``(N, 3, H, W)`` -> RGB ``uint8`` ``(..., H, W, 3)``."""
    tensor = check_array(tensor, "tensor", (..., 3, None, None), allow_torch=True)
    tensor = torch.as_tensor(tensor).detach().float().cpu()
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    image = (tensor * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return image.movedim(-3, -1).numpy()
