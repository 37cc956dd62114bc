"""Convolutional Pose Machines (Wei et al. 2016): a sequence of belief-map predictors (chapter 03).

Wei, Ramakrishna, Kanade, Sheikh, "Convolutional Pose Machines", CVPR 2016,
https://arxiv.org/abs/1602.00134.  Layout from Figure 2 of the paper and the official
``training/genProto.py`` (shihenw/convolutional-pose-machines-release), 368x368 input::

    stage 1   image -> [conv 9x9 (128) -> ReLU -> max-pool 3x3/2] x 3           (1/8)
                    -> conv 5x5 (32) -> conv 9x9 (512) -> conv 1x1 (512)        (ReLU after each,
                    -> conv 1x1 (K)  = beliefs b_1                               dropout after the 512s)
    features  image -> [conv 9x9 (128) -> ReLU -> max-pool 3x3/2] x 3           (shared by stages >= 2)
    stage t   features -> conv 5x5 (32)                                         (one per stage)
              concat(that, b_{t-1}) -> [conv 11x11 (128)] x 3 -> conv 1x1 (128)
                    -> conv 1x1 (K)  = beliefs b_t

Every convolution has a bias and "same" padding; no batch normalisation (2016).  Each
stage's beliefs get their own loss (intermediate supervision), so ``forward`` returns the
list ``[b_1, ..., b_T]`` of ``(N, K, H/s, W/s)`` maps; the last one is the prediction.

Why stages help: each stage sees the previous beliefs through three 11x11 convolutions
at stride 8, so its receptive field grows by 3 * 10 * 8 = 240 pixels per stage
(:meth:`ConvolutionalPoseMachine.receptive_fields`): a later stage can use the position
of, say, the shoulder to find an ambiguous elbow.

What the course changes, and why:

* No background map: the original predicts K + 1 maps (the joints and a "background"
  map); the course's heatmap losses use K maps, so the stages output K.
* No centre map: the original feeds a Gaussian at the person's centre (4th input channel,
  average-pooled 9x9/8) into every stage >= 2 to say which person to look at.  The course's
  crops are top-down and centred on one person, so it carries no information; leaving it
  out removes one input channel of the first 11x11 convolution of each stage.
* Max-pooling uses padding 1 (``ceil(H / 2)``), where Caffe used no padding with its ceil
  rounding: the same sizes for inputs divisible by 8, with the pooling windows centred.
* The paper preset keeps its stride 8 (368 -> 46); the tiny preset pools twice (stride 4)
  so that its heatmaps compare with the other models' at stride 4, and is narrower with
  smaller kernels (16-channel 3x3 trunks, 32-channel 5x5 stages) to train on a CPU; its
  receptive fields still grow stage by stage (45, 93, 141 pixels of a 96x64 crop).

:class:`SelectStage` wraps a multi-stage network so that one stage's maps can be scored
like any heatmap model's (chapter 03 scores every stage; it serves the hourglass too).
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models.input_checks import check_images


def conv_relu(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    """A "same"-padded convolution with bias, then ReLU."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True)]


def image_trunk(channels: int, kernel_size: int, num_pools: int) -> list[nn.Module]:
    """``num_pools`` x [conv k x k -> ReLU -> max-pool 3x3/2]: the image features at stride 2^num_pools."""
    layers: list[nn.Module] = []
    in_channels = 3
    for _ in range(num_pools):
        layers += conv_relu(in_channels, channels, kernel_size)
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        in_channels = channels
    return layers


class ConvolutionalPoseMachine(nn.Module):
    """A CPM with ``num_stages`` stages, the first from the image, the others from features + beliefs.

    Args:
        num_keypoints: K, the number of belief maps per stage.
        num_stages: T (the paper: 6).
        channels: width of the stage convolutions of stages >= 2 (128).
        trunk_channels: width of the image trunks (128); ``None``: ``channels``.
        trunk_kernel: kernel of the image-trunk convolutions (9).
        stage_kernel: kernel of the three large convolutions of stages >= 2 (11).
        num_pools: max-pools in the trunks (3: stride 8; 2: stride 4).
        stage1_width: width of stage 1's large and 1x1 convolutions (512).
        stage1_kernel: kernel of stage 1's large convolution (9).
        feature_channels: channels of each stage's own 5x5 feature convolution (32).
        dropout: dropout after stage 1's two 512-channel convolutions (0.5 in genProto.py).
        input_size: the default ``(H, W)``.
        name: the preset's name, used in error messages.

    Attributes:
        stride: ``2 ** num_pools``; also the size divisor of the input.
    """

    def __init__(
        self,
        num_keypoints: int = 17,
        num_stages: int = 6,
        channels: int = 128,
        trunk_kernel: int = 9,
        stage_kernel: int = 11,
        num_pools: int = 3,
        stage1_width: int = 512,
        stage1_kernel: int = 9,
        feature_channels: int = 32,
        dropout: float = 0.5,
        input_size: tuple[int, int] = (368, 368),
        name: str = "ConvolutionalPoseMachine",
        trunk_channels: int | None = None,
    ):
        super().__init__()
        trunk_channels = channels if trunk_channels is None else trunk_channels
        for arg, value in (("num_keypoints", num_keypoints), ("num_stages", num_stages), ("channels", channels),
                           ("num_pools", num_pools), ("stage1_width", stage1_width), ("feature_channels", feature_channels),
                           ("trunk_channels", trunk_channels)):
            if int(value) < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        for arg, value in (("trunk_kernel", trunk_kernel), ("stage_kernel", stage_kernel), ("stage1_kernel", stage1_kernel)):
            if int(value) < 1 or int(value) % 2 == 0:
                raise ValueError(f"{arg} must be a positive odd integer ('same' padding), got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.stage1 = nn.Sequential(
            *image_trunk(trunk_channels, trunk_kernel, num_pools),
            *conv_relu(trunk_channels, feature_channels, 5),
            *conv_relu(feature_channels, stage1_width, stage1_kernel),
            nn.Dropout(dropout),
            *conv_relu(stage1_width, stage1_width, 1),
            nn.Dropout(dropout),
            nn.Conv2d(stage1_width, num_keypoints, kernel_size=1),
        )
        self.features = nn.Sequential(*image_trunk(trunk_channels, trunk_kernel, num_pools)) if num_stages > 1 else None
        self.stage_features = nn.ModuleList(
            nn.Sequential(*conv_relu(trunk_channels, feature_channels, 5)) for _ in range(num_stages - 1)
        )
        self.stages = nn.ModuleList(
            nn.Sequential(
                *conv_relu(feature_channels + num_keypoints, channels, stage_kernel),
                *conv_relu(channels, channels, stage_kernel),
                *conv_relu(channels, channels, stage_kernel),
                *conv_relu(channels, channels, 1),
                nn.Conv2d(channels, num_keypoints, kernel_size=1),
            )
            for _ in range(num_stages - 1)
        )
        self.num_keypoints = int(num_keypoints)
        self.num_stages = int(num_stages)
        self.stride = 2 ** int(num_pools)
        self.size_divisor = self.stride
        self.input_size = tuple(input_size)
        self.name = name
        self._init_weights()

    def _init_weights(self) -> None:
        # genProto.py: Gaussian weights with std 0.01, zero bias.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(N, 3, H, W)`` -> list of ``num_stages`` belief maps ``(N, K, H/stride, W/stride)``, last one final."""
        check_images(images, self.name, size_divisor=self.size_divisor)
        beliefs = [self.stage1(images)]  # [(N, K, H/s, W/s)]
        if self.num_stages > 1:
            features = self.features(images)  # (N, C, H/s, W/s), shared by every later stage
            for stage_features, stage in zip(self.stage_features, self.stages):
                x = torch.cat([stage_features(features), beliefs[-1]], dim=1)  # (N, 32 + K, H/s, W/s)
                beliefs.append(stage(x))  # (N, K, H/s, W/s)
        return beliefs

    def receptive_fields(self) -> list[int]:
        """Receptive field (pixels of the input) of each stage's belief maps.

        Walks the layers with the usual recursion, for a layer of kernel k and stride s
        reached with accumulated stride j:  r <- r + (k - 1) * j,  j <- j * s.  Stage t >= 2
        sees both its own image features and the beliefs of stage t - 1, so its field is the
        larger of the two paths.
        """

        def walk(layers, r: int = 1, j: int = 1) -> tuple[int, int]:
            for layer in layers:
                if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                    k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
                    s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
                    r, j = r + (k - 1) * j, j * s
            return r, j

        fields = [walk(self.stage1)[0]]
        if self.num_stages > 1:
            feature_r, feature_j = walk(self.features)
            for stage_features, stage in zip(self.stage_features, self.stages):
                via_features = walk(stage, *walk(stage_features, feature_r, feature_j))[0]
                via_beliefs = walk(stage, fields[-1], self.stride)[0]
                fields.append(max(via_features, via_beliefs))
        return fields


def cpm_paper(
    num_keypoints: int = 17, num_stages: int = 6, input_size: tuple[int, int] = (368, 368)
) -> ConvolutionalPoseMachine:
    """The paper's 6-stage CPM (368x368 input, stride 8)."""
    return ConvolutionalPoseMachine(num_keypoints, num_stages, input_size=input_size, name="cpm")


def cpm_tiny(
    num_keypoints: int = 17,
    num_stages: int = 3,
    channels: int = 32,
    stage_kernel: int = 5,
    input_size: tuple[int, int] = (96, 64),
) -> ConvolutionalPoseMachine:
    """A small CPM for CPU: 3 stages, stride 4, 16-channel 3x3 trunks, 32-channel 5x5 stages.

    A 5x5 kernel on the 24x16 belief maps of a 96x64 crop spans about the same fraction of
    the map as the paper's 11x11 on its 46x46 maps.
    """
    return ConvolutionalPoseMachine(
        num_keypoints,
        num_stages,
        channels=channels,
        trunk_kernel=3,
        stage_kernel=stage_kernel,
        num_pools=2,
        stage1_width=64,
        stage1_kernel=5,
        feature_channels=16,
        dropout=0.0,
        input_size=input_size,
        name="cpm_tiny",
        trunk_channels=16,
    )


class SelectStage(nn.Module):
    """One stage of a multi-stage network as a network of its own: ``forward`` returns only that stage's maps.

    Chapter 03 scores every stage of a CPM with the same evaluation code as any heatmap model:
    ``training.evaluate(SelectStage(cpm, 1), data)`` scores stage 1's belief maps.  Stages are
    counted from 1, as in the papers and as :class:`~course_lib.models.hourglass.SelectStack`
    counts the stacks of an hourglass (``SelectStage(hourglass, 1)`` is its first stack).  The
    wrapped model is shared, not copied; its ``stride``, ``input_size``, ``size_divisor``,
    ``num_keypoints`` and ``name`` are passed on.

    Args:
        model: a network whose ``forward`` returns a list of maps, one per stage.
        stage: the stage, from 1 (the first) to the number of stages (the last).
    """

    def __init__(self, model: nn.Module, stage: int):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module returning a list of stage outputs, got {type(model).__name__}")
        if isinstance(stage, bool) or not isinstance(stage, int):
            raise TypeError(f"stage must be an int (1 for the first stage), got {stage!r}")
        num_stages = getattr(model, "num_stages", getattr(model, "num_stacks", None))
        if stage < 1 or (num_stages is not None and stage > num_stages):
            raise ValueError(f"stage must be from 1 to {num_stages or 'the number of stages'} (stages count from 1), "
                             f"got {stage}")
        self.model = model
        self.stage = stage
        for attribute in ("stride", "input_size", "size_divisor", "num_keypoints"):
            if hasattr(model, attribute):
                setattr(self, attribute, getattr(model, attribute))
        self.name = f"{getattr(model, 'name', type(model).__name__)}[stage {stage}]"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> the chosen stage's maps ``(N, K, H/stride, W/stride)``."""
        outputs = self.model(images)
        if not isinstance(outputs, (list, tuple)):
            raise TypeError(f"{self.name}: the wrapped model must return a list of stage outputs, got {type(outputs).__name__}")
        if self.stage > len(outputs):
            raise ValueError(f"{self.name}: the model returned {len(outputs)} stages")
        return outputs[self.stage - 1]
