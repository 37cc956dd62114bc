"""SimpleBaseline (Xiao et al. 2018): a ResNet and three deconvolutions (chapter 06).

Xiao, Wu, Wei, "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018,
https://arxiv.org/abs/1804.06208.  Official code: microsoft/human-pose-estimation.pytorch,
``lib/models/pose_resnet.py``.

Heavy encoder, light decoder, no skip connections::

    image (N, 3, H, W)
      -> ResNet conv1 .. layer4                         (N, 2048, H/32, W/32)
      -> [ConvTranspose 4x4/2, 256 ch, no bias -> BN -> ReLU] x 3   (N, 256, H/4, W/4)
      -> final_layer: 1x1 conv (with bias)               (N, K, H/4, W/4)  heatmaps

A 4x4 transposed convolution with stride 2 and padding 1 exactly doubles the size:
``out = (in - 1) * 2 - 2 * 1 + 4 = 2 * in``.

Number of deconvolution layers (the chapter's experiment compares 1, 2 and 3): each one
doubles the resolution, so the output stride is ``32 / 2 ** num_deconv_layers``: 16, 8 and
4.  The model keeps the output at its natural stride and says so in ``model.stride``;
training code takes the heatmap size from the output shape (or from ``model.stride``)
rather than assuming 4, and decodes with that stride.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models.input_checks import check_images
from course_lib.models.initialization import init_official
from course_lib.models.resnet import BasicBlock, ResNet, resnet_by_depth


class SimpleBaseline(nn.Module):
    """ResNet encoder + ``num_deconv_layers`` 4x4 stride-2 deconvolutions + 1x1 heatmap head.

    Args:
        backbone: a :class:`~course_lib.models.resnet.ResNet` built with ``num_classes=None``.
        num_keypoints: K, the number of heatmaps.
        num_deconv_layers: 0 to 5 deconvolutions (the paper: 3).
        deconv_channels: channels of each deconvolution (the paper: 256).
        input_size: the default ``(H, W)`` of the crops the model is trained on.
        name: the preset's name, used in error messages.

    Attributes:
        stride: input size / heatmap size, ``backbone.stride / 2 ** num_deconv_layers``.
        size_divisor: input sizes must be multiples of ``backbone.stride`` (32).
    """

    def __init__(
        self,
        backbone: ResNet,
        num_keypoints: int = 17,
        num_deconv_layers: int = 3,
        deconv_channels: int = 256,
        input_size: tuple[int, int] = (256, 192),
        name: str = "SimpleBaseline",
    ):
        super().__init__()
        if not isinstance(backbone, ResNet) or backbone.num_classes is not None:
            raise ValueError("backbone must be a ResNet built with num_classes=None")
        if not 0 <= int(num_deconv_layers) <= 5 or 2 ** int(num_deconv_layers) > backbone.stride:
            raise ValueError(f"num_deconv_layers must be between 0 and log2(backbone stride), got {num_deconv_layers!r}")
        if int(num_keypoints) < 1 or int(deconv_channels) < 1:
            raise ValueError(f"num_keypoints and deconv_channels must be positive, got {num_keypoints!r}, {deconv_channels!r}")
        self.backbone = backbone
        layers: list[nn.Module] = []
        channels = backbone.out_channels
        for _ in range(int(num_deconv_layers)):
            layers += [
                nn.ConvTranspose2d(channels, deconv_channels, kernel_size=4, stride=2, padding=1, output_padding=0, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        self.num_keypoints = int(num_keypoints)
        self.num_deconv_layers = int(num_deconv_layers)
        self.stride = backbone.stride // 2 ** int(num_deconv_layers)
        self.size_divisor = backbone.stride
        self.input_size = tuple(input_size)
        self.name = name
        init_official([*self.deconv_layers.modules(), self.final_layer])  # the new layers only, as officially

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> heatmaps ``(N, K, H / stride, W / stride)``."""
        check_images(images, self.name, size_divisor=self.size_divisor)
        features = self.backbone(images)  # (N, 2048, H/32, W/32)
        features = self.deconv_layers(features)  # (N, 256, H/stride, W/stride)
        return self.final_layer(features)  # (N, K, H/stride, W/stride)


def simple_baseline_resnet(
    depth: int = 50,
    num_keypoints: int = 17,
    num_deconv_layers: int = 3,
    input_size: tuple[int, int] = (256, 192),
) -> SimpleBaseline:
    """SimpleBaseline-R``depth`` as in the paper (256-channel deconvolutions).

    Parameters with 17 keypoints: R50 33,999,697 (the HRNet paper: 34.0M), R101 52,991,825
    (53.0M), R152 68,635,473 (68.6M).
    """
    return SimpleBaseline(
        resnet_by_depth(depth), num_keypoints, num_deconv_layers, 256, input_size, name=f"simplebaseline_r{depth}"
    )


def simple_baseline_tiny(
    num_keypoints: int = 17,
    num_deconv_layers: int = 3,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    deconv_channels: int = 64,
    input_size: tuple[int, int] = (96, 64),
) -> SimpleBaseline:
    """A small SimpleBaseline for CPU: ResNet-18's layout at a quarter of its width, 64-channel deconvolutions."""
    backbone = ResNet(BasicBlock, blocks, widths, stem_width=widths[0])
    return SimpleBaseline(
        backbone, num_keypoints, num_deconv_layers, deconv_channels, input_size, name="simplebaseline_tiny"
    )
