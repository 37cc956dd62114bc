"""A heatmap network's encoder with a coordinate-regression head instead (chapter 02's experiment).

Chapter 02 asks whether heatmaps beat direct coordinate regression when everything else is
equal.  :class:`CoordinateRegressor` takes the *same* ResNet encoder as SimpleBaseline
(:func:`~course_lib.models.simple_baseline.simple_baseline_tiny` builds it with the same
widths and blocks) and replaces the deconvolution head by DeepPose's kind of head
(Toshev & Szegedy 2014): fully connected layers on the flattened last feature map, which
output ``2K`` numbers read as K box-normalised joints::

    image (N, 3, H, W)
      -> ResNet conv1 .. layer4                       (N, C, H/32, W/32)
      -> flatten                                      (N, C * H/32 * W/32)
      -> Linear -> ReLU -> Linear                     (N, 2K)
      -> reshape                                      (N, K, 2)   N(y; crop) in [-0.5, 0.5]

Flattening (not global average pooling) keeps *where* on the 3x2 map a feature fired,
as DeepPose's fully connected layers do; the head has to learn the mapping from that coarse
grid to continuous coordinates.  The output follows :class:`~course_lib.models.deeppose.DeepPose`'s
convention (coordinates normalised to the input crop, :func:`course_lib.geometry.normalize_to_box`),
so :class:`course_lib.losses.RegressionLoss` trains it and :func:`course_lib.prediction.predict`
maps its predictions back to the image.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models.input_checks import check_images
from course_lib.models.resnet import BasicBlock, ResNet


class CoordinateRegressor(nn.Module):
    """ResNet encoder + fully connected head: ``(N, 3, H, W)`` -> ``(N, K, 2)`` box-normalised ``x, y``.

    Args:
        backbone: a :class:`~course_lib.models.resnet.ResNet` built with ``num_classes=None``.
        num_keypoints: K.
        input_size: the ``(H, W)`` of the crops (fixes the size of the flattened features).
        hidden: width of the hidden fully connected layer.
        name: the preset's name, used in error messages.

    Attributes:
        stride: ``None``: the output is coordinates, not a map.
        size_divisor: the backbone's stride (32): inputs must be multiples of it.
    """

    def __init__(
        self,
        backbone: ResNet,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (96, 64),
        hidden: int = 256,
        name: str = "CoordinateRegressor",
    ):
        super().__init__()
        if not isinstance(backbone, ResNet) or backbone.num_classes is not None:
            raise ValueError("backbone must be a ResNet built with num_classes=None")
        if int(num_keypoints) < 1 or int(hidden) < 1:
            raise ValueError(f"num_keypoints and hidden must be positive integers, got {num_keypoints!r}, {hidden!r}")
        height, width = (int(s) for s in input_size)
        if height % backbone.stride or width % backbone.stride or min(height, width) < 1:
            raise ValueError(f"input_size must be positive multiples of {backbone.stride}, got {tuple(input_size)}")
        self.backbone = backbone
        features = backbone.out_channels * (height // backbone.stride) * (width // backbone.stride)
        self.head = nn.Sequential(
            nn.Flatten(),  # (N, C * h * w)
            nn.Linear(features, int(hidden)),
            nn.ReLU(inplace=True),
            nn.Linear(int(hidden), 2 * int(num_keypoints)),
        )
        nn.init.zeros_(self.head[-1].bias)  # start every joint at the crop centre
        nn.init.normal_(self.head[-1].weight, std=0.001)
        self.num_keypoints = int(num_keypoints)
        self.stride = None
        self.size_divisor = backbone.stride
        self.input_size = (height, width)
        self.name = name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, K, 2)`` joints normalised to the crop (centre 0, edges +-0.5)."""
        check_images(images, self.name, size_divisor=self.size_divisor)
        if tuple(images.shape[-2:]) != self.input_size:
            raise ValueError(f"{self.name} was built for {self.input_size} inputs (its fully connected head "
                             f"fixes the size), got {tuple(images.shape[-2:])}")
        features = self.backbone(images)  # (N, C, H/32, W/32)
        return self.head(features).view(-1, self.num_keypoints, 2)  # (N, K, 2)


def simple_baseline_tiny_regressor(
    num_keypoints: int = 17,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    hidden: int = 256,
    input_size: tuple[int, int] = (96, 64),
) -> CoordinateRegressor:
    """``simplebaseline_tiny``'s encoder (same widths and blocks) with a coordinate-regression head."""
    backbone = ResNet(BasicBlock, blocks, widths, stem_width=widths[0])
    return CoordinateRegressor(backbone, num_keypoints, input_size, hidden, name="simplebaseline_tiny_regressor")


__all__ = ["CoordinateRegressor", "simple_baseline_tiny_regressor"]
