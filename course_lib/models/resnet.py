"""ResNet (He et al. 2016), written here: the backbone of SimpleBaseline (chapter 06).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385.

A residual block learns the change to its input rather than the output itself::

    y = ReLU(F(x) + shortcut(x))

where ``F`` is two 3x3 convolutions (:class:`BasicBlock`, ResNet-18/34) or a 1x1 - 3x3 - 1x1
"bottleneck" that works on a quarter of the channels (:class:`Bottleneck`, ResNet-50/101/152),
and ``shortcut`` is the identity, or a 1x1 convolution + BN when the block changes the
number of channels or the resolution.

Layout (the stride of each output to the input in brackets)::

    conv1 7x7/2, bn1, relu  (2)  ->  maxpool 3x3/2  (4)  ->  layer1  (4)  ->  layer2  (8)
                                 ->  layer3  (16)  ->  layer4  (32)  [->  avgpool, fc]

The module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1`` ..
``layer4``, ``downsample.0``/``downsample.1``, ``fc``), so an ImageNet state dict saved by
torchvision loads with ``model.load_state_dict(state_dict, strict=False)`` (``strict=False``
because a backbone built with ``num_classes=None`` has no ``fc``).  Like torchvision (and
SimpleBaseline's ``pose_resnet.py``) the stride-2 of a bottleneck is on its 3x3 convolution
("ResNet v1.5").
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from course_lib.models.input_checks import check_images


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows it)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (a BatchNorm follows it)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)).

    ``planes`` is the width of the block; the output has ``planes * expansion`` = ``planes`` channels.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 (reduce to ``planes``) - 3x3 (stride here) - 1x1 (expand to ``4 * planes``) and a shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def make_layer(block: type, in_channels: int, planes: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """``num_blocks`` residual blocks; the first one changes resolution (``stride``) and width.

    The first block gets a projection shortcut (1x1 conv + BN) when its input and output
    differ in channels or resolution; the others keep the identity shortcut.
    """
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    layers = [block(in_channels, planes, stride, downsample)]
    layers += [block(out_channels, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


# depth -> (block, number of blocks in layer1..layer4), Table 1 of the paper.
RESNET_LAYOUTS: dict[int, tuple[type, tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """A ResNet: stem (7x7/2 conv, 3x3/2 max-pool) and one ``layer`` of residual blocks per width.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks: number of blocks per layer, e.g. ``(3, 4, 6, 3)`` for ResNet-50.  Any number of
            layers: the first keeps the stem's stride 4, each further one halves the resolution.
        widths: ``planes`` of each layer (the output has ``planes * block.expansion`` channels);
            the paper's ``(64, 128, 256, 512)``.
        stem_width: channels of ``conv1`` (64 in the paper).
        num_classes: size of the ``fc`` classifier after global average pooling; ``None``
            (the default) builds a backbone whose ``forward`` returns the last feature map.

    Attributes:
        out_channels: channels of the last feature map.
        stride: input size / size of the last feature map (32 for the paper's four layers).
    """

    def __init__(
        self,
        block: type,
        blocks: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int = 64,
        num_classes: int | None = None,
    ):
        super().__init__()
        if block not in (BasicBlock, Bottleneck):
            raise ValueError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        if len(blocks) != len(widths) or len(blocks) == 0:
            raise ValueError(f"blocks and widths must have the same non-zero length, got {tuple(blocks)} and {tuple(widths)}")
        if any(int(n) < 1 for n in blocks) or any(int(w) < 1 for w in widths) or stem_width < 1:
            raise ValueError(f"blocks, widths and stem_width must be positive, got {tuple(blocks)}, {tuple(widths)}, {stem_width}")
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = stem_width
        self.layer_names = []
        for index, (num_blocks, planes) in enumerate(zip(blocks, widths)):
            stride = 1 if index == 0 else 2
            name = f"layer{index + 1}"
            self.add_module(name, make_layer(block, channels, int(planes), int(num_blocks), stride))
            self.layer_names.append(name)
            channels = int(planes) * block.expansion
        self.out_channels = channels
        self.stride = 4 * 2 ** (len(blocks) - 1)
        self.num_classes = num_classes
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation: He (fan-out) for convolutions, BN as the identity.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> features ``(N, out_channels, H / stride, W / stride)``, or logits ``(N, num_classes)``."""
        check_images(images, "ResNet", size_divisor=self.stride if self.num_classes is None else 1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (N, stem_width, H/4, W/4)
        for name in self.layer_names:
            x = getattr(self, name)(x)
        if self.num_classes is None:
            return x  # (N, out_channels, H/stride, W/stride)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (N, num_classes)


def resnet_by_depth(depth: int, num_classes: int | None = None) -> ResNet:
    """ResNet-18/34/50/101/152 with the paper's widths; ``num_classes=None``: a backbone without ``fc``."""
    if depth not in RESNET_LAYOUTS:
        raise ValueError(f"depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth!r}")
    block, blocks = RESNET_LAYOUTS[depth]
    return ResNet(block, blocks, num_classes=num_classes)


def resnet18(num_classes: int | None = None) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2)."""
    return resnet_by_depth(18, num_classes)


def resnet34(num_classes: int | None = None) -> ResNet:
    """ResNet-34 (BasicBlock, 3-4-6-3)."""
    return resnet_by_depth(34, num_classes)


def resnet50(num_classes: int | None = None) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3)."""
    return resnet_by_depth(50, num_classes)


def resnet101(num_classes: int | None = None) -> ResNet:
    """ResNet-101 (Bottleneck, 3-4-23-3)."""
    return resnet_by_depth(101, num_classes)


def resnet152(num_classes: int | None = None) -> ResNet:
    """ResNet-152 (Bottleneck, 3-8-36-3)."""
    return resnet_by_depth(152, num_classes)


def basic_block_parameters(in_channels: int, planes: int, stride: int = 1) -> int:
    """Number of parameters of a :class:`BasicBlock` (as :func:`make_layer` builds it), by formula.

    Two 3x3 convolutions without bias, each followed by a BatchNorm with a weight and a bias
    per channel (its running mean and variance are buffers, not parameters):

        P = 9 C_in P_l + 2 P_l   +   9 P_l^2 + 2 P_l                       (conv1, bn1, conv2, bn2)
          + (C_in P_l + 2 P_l   if stride != 1 or C_in != P_l)            (1x1 projection + BN)

    with ``C_in = in_channels`` and ``P_l = planes``.  A block of HRNet-W32's first branch
    (32 -> 32, stride 1): 9*32*32 + 9*32*32 + 4*32 = 18,560.

    Args:
        in_channels: channels of the block's input.
        planes: channels of its convolutions and output.
        stride: of the first convolution (2 halves the resolution).
    """
    for name, value in (("in_channels", in_channels), ("planes", planes), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    count = 9 * in_channels * planes + 2 * planes + 9 * planes * planes + 2 * planes
    if stride != 1 or in_channels != planes:
        count += in_channels * planes + 2 * planes
    return count
