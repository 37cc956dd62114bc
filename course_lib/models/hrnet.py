"""HRNet (Sun et al. 2019): keep a high-resolution branch all the way (chapter 07).

Sun, Xiao, Liu, Wang, "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019, https://arxiv.org/abs/1902.09212.  Official code:
leoxiaobin/deep-high-resolution-net.pytorch, ``lib/models/pose_hrnet.py`` and the configs
``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml`` (W48: the same with 48).

Instead of going down to 1/32 and back up, HRNet keeps the 1/4 branch from start to end
and adds a lower-resolution branch at each stage; the branches run in parallel and
exchange information again and again::

    stem: conv 3x3/2 (64) -> BN -> ReLU -> conv 3x3/2 (64) -> BN -> ReLU        1/4
    stage 1 (layer1): 4 Bottlenecks, 64 -> 256 channels                          1/4
    transition1 -> stage 2: 1 module,  2 branches  (C, 2C)                      1/4 1/8
    transition2 -> stage 3: 4 modules, 3 branches  (C, 2C, 4C)                  1/4 1/8 1/16
    transition3 -> stage 4: 3 modules, 4 branches  (C, 2C, 4C, 8C)              1/4 1/8 1/16 1/32
    final_layer: 1x1 conv on the 1/4 branch -> K heatmaps                       1/4

with C = 32 (W32) or 48 (W48).  One ``HighResolutionModule`` (the paper's "exchange unit"
with its residual units) runs 4 BasicBlocks on every branch, then *fuses*: output branch
``i`` is ``ReLU(sum_j f_ij(x_j))`` with

* ``f_ii`` the identity,
* ``j > i`` (coarser input): 1x1 conv (C_j -> C_i) + BN, then nearest upsampling by 2^(j-i),
* ``j < i`` (finer input): i - j stride-2 3x3 convs + BN, ReLU between them, the last one
  going to C_i channels.

The last module of stage 4 only fuses into branch 0 (``multi_scale_output=False``), the
only one the heatmap head reads.

Module names are the official ones (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``,
``transition1..3``, ``stage2..4``, ``branches``, ``fuse_layers``, ``final_layer``) so that the
figure in the notebook, the official code and this file read alike.

Simplified drawings sometimes show stage 4 with two exchange units; the paper (Table 1,
"x3" modules in stage 4) and the official configs use three, as here.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.input_checks import check_images
from course_lib.models.initialization import init_official
from course_lib.models.resnet import BasicBlock, Bottleneck, conv3x3, make_layer
from course_lib.validation import check_integer, check_size


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by the multi-resolution fusion.

    Args:
        in_channels: channels of each input branch (branch ``i`` has resolution 1/2^i of branch 0).
        channels: channels of each branch's BasicBlocks (and of the outputs).
        num_blocks: BasicBlocks per branch (4 in the paper).
        multi_scale_output: fuse into every branch (``True``) or into branch 0 only (the last
            module of the network).

    ``forward`` takes and returns a list of ``(N, C_i, H_i, W_i)`` tensors.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: Sequence[int],
        num_blocks: int = 4,
        multi_scale_output: bool = True,
    ):
        super().__init__()
        if len(in_channels) != len(channels):
            raise ValueError(f"in_channels and channels must have one entry per branch, got {in_channels} and {channels}")
        self.num_branches = len(channels)
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            make_layer(BasicBlock, c_in, c, num_blocks) for c_in, c in zip(in_channels, channels)
        )
        self.fuse_layers = self._make_fuse_layers(list(channels)) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = list(channels) if multi_scale_output else [channels[0]]

    def _make_fuse_layers(self, channels: list[int]) -> nn.ModuleList:
        fuse_layers = nn.ModuleList()
        for i in range(self.num_branches if self.multi_scale_output else 1):
            fuse_layer = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:  # coarser -> finer: 1x1 conv to C_i, then nearest upsampling by 2^(j-i)
                    fuse_layer.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    fuse_layer.append(nn.Identity())
                else:  # finer -> coarser: (i - j) stride-2 3x3 convs, C_j channels until the last one
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = channels[i] if last else channels[j]
                        step = [conv3x3(channels[j], out, stride=2), nn.BatchNorm2d(out)]
                        if not last:
                            step.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*step))
                    fuse_layer.append(nn.Sequential(*steps))
            fuse_layers.append(fuse_layer)
        return fuse_layers

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(x_i) for branch, x_i in zip(self.branches, x)]  # each (N, C_i, H/2^i, W/2^i) at its own scale
        if self.fuse_layers is None:
            return x
        fused = []
        for i, fuse_layer in enumerate(self.fuse_layers):
            y = x[i]
            for j in range(self.num_branches):
                if j != i:
                    y = y + fuse_layer[j](x[j])  # (N, C_i, H_i, W_i)
            fused.append(self.relu(y))
        return fused


def make_transition(in_channels: Sequence[int], out_channels: Sequence[int]) -> nn.ModuleList:
    """Transition layer between stages: adapt existing branches, create the new (coarser) one.

    An existing branch ``i`` passes unchanged (identity) when its width stays, else through a
    3x3 conv + BN + ReLU.  A new branch is made from the coarsest existing branch by stride-2
    3x3 conv + BN + ReLU steps (one per halving).
    """
    layers = nn.ModuleList()
    for i, c_out in enumerate(out_channels):
        if i < len(in_channels):
            if in_channels[i] == c_out:
                layers.append(nn.Identity())
            else:
                layers.append(nn.Sequential(conv3x3(in_channels[i], c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)))
        else:
            steps = []
            for k in range(i + 1 - len(in_channels)):
                c_in = in_channels[-1]
                c = c_out if k == i - len(in_channels) else c_in
                steps.append(nn.Sequential(conv3x3(c_in, c, stride=2), nn.BatchNorm2d(c), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return layers


def make_stage(
    num_modules: int, in_channels: Sequence[int], channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True
) -> nn.Sequential:
    """``num_modules`` HighResolutionModules in a row; only the last one may drop the coarse outputs."""
    modules = []
    for m in range(num_modules):
        last = m == num_modules - 1
        module = HighResolutionModule(in_channels, channels, num_blocks, multi_scale_output or not last)
        modules.append(module)
        in_channels = module.out_channels
    return nn.Sequential(*modules)


class HRNet(nn.Module):
    """HRNet for pose: stem, layer1, three multi-branch stages, 1x1 heatmap head on the 1/4 branch.

    Args:
        width: C, the channels of the highest-resolution branch (32 for W32, 48 for W48);
            branch ``b`` has ``C * 2**b`` channels.
        num_keypoints: K.
        stage_modules: number of HighResolutionModules in stages 2, 3, 4 (the paper: 1, 4, 3).
        num_blocks: BasicBlocks per branch in each module (the paper: 4).
        stem_width: channels of the two stem convolutions and the ``planes`` of layer1's
            Bottlenecks (the paper: 64, so layer1 outputs 256 channels).
        layer1_blocks: Bottlenecks in layer1 (the paper: 4).
        input_size: the default ``(H, W)``.
        name: the preset's name, used in error messages.

    Attributes:
        stride: 4 (heatmaps are at 1/4 of the input).
        size_divisor: 32 (branch 4 is at 1/32; input sizes must be multiples of it).
    """

    def __init__(
        self,
        width: int = 32,
        num_keypoints: int = 17,
        stage_modules: Sequence[int] = (1, 4, 3),
        num_blocks: int = 4,
        stem_width: int = 64,
        layer1_blocks: int = 4,
        input_size: tuple[int, int] = (256, 192),
        name: str = "HRNet",
    ):
        super().__init__()
        if len(stage_modules) != 3 or any(int(m) < 1 for m in stage_modules):
            raise ValueError(f"stage_modules must be three positive numbers (stages 2, 3, 4), got {tuple(stage_modules)}")
        for arg, value in (("width", width), ("num_keypoints", num_keypoints), ("num_blocks", num_blocks),
                           ("stem_width", stem_width), ("layer1_blocks", layer1_blocks)):
            if int(value) < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.conv2 = nn.Conv2d(stem_width, stem_width, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, stem_width, stem_width, layer1_blocks)

        channels = [stem_width * Bottleneck.expansion]
        for stage, num_modules in zip((2, 3, 4), stage_modules):
            stage_channels = [width * 2**b for b in range(stage)]
            self.add_module(f"transition{stage - 1}", make_transition(channels, stage_channels))
            stage_module = make_stage(int(num_modules), stage_channels, stage_channels, num_blocks, multi_scale_output=stage < 4)
            self.add_module(f"stage{stage}", stage_module)
            channels = stage_module[-1].out_channels
        self.final_layer = nn.Conv2d(channels[0], num_keypoints, kernel_size=1)

        self.width = int(width)
        self.num_keypoints = int(num_keypoints)
        self.stride = 4
        self.size_divisor = 32
        self.input_size = tuple(input_size)
        self.name = name
        init_official(self.modules())  # every layer: N(0, 0.001) convolutions, BN as the identity

    @staticmethod
    def _run_transition(transition: nn.ModuleList, branches: list[torch.Tensor]) -> list[torch.Tensor]:
        # Existing branches go through their own layer; a new branch starts from the coarsest one.
        return [layer(branches[i] if i < len(branches) else branches[-1]) for i, layer in enumerate(transition)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> heatmaps ``(N, K, H/4, W/4)``."""
        check_images(images, self.name, size_divisor=self.size_divisor)
        x = self.relu(self.bn1(self.conv1(images)))  # (N, 64, H/2, W/2)
        x = self.relu(self.bn2(self.conv2(x)))  # (N, 64, H/4, W/4)
        x = self.layer1(x)  # (N, 256, H/4, W/4)
        branches = [x]
        for stage in (2, 3, 4):
            branches = self._run_transition(getattr(self, f"transition{stage - 1}"), branches)
            branches = getattr(self, f"stage{stage}")(branches)  # [(N, C * 2^b, H/4/2^b, W/4/2^b)]
        return self.final_layer(branches[0])  # (N, K, H/4, W/4)


def hrnet_w32(num_keypoints: int = 17, input_size: tuple[int, int] = (256, 192)) -> HRNet:
    """HRNet-W32 as in ``w32_256x192_adam_lr1e-3.yaml``: modules 1/4/3, 4 blocks, channels 32-64-128-256.

    28,536,113 parameters with 17 keypoints (the paper: 28.5M), 7.1 GFLOPs at 256x192.
    """
    return HRNet(32, num_keypoints, input_size=input_size, name="hrnet_w32")


def hrnet_w48(num_keypoints: int = 17, input_size: tuple[int, int] = (256, 192)) -> HRNet:
    """HRNet-W48: as W32 with channels 48-96-192-384 (63,595,745 parameters, the paper: 63.6M; 14.6 GFLOPs)."""
    return HRNet(48, num_keypoints, input_size=input_size, name="hrnet_w48")


def hrnet_tiny(
    num_keypoints: int = 17,
    width: int = 16,
    stage_modules: Sequence[int] = (1, 1, 1),
    num_blocks: int = 2,
    stem_width: int = 32,
    layer1_blocks: int = 1,
    input_size: tuple[int, int] = (96, 64),
) -> HRNet:
    """A small HRNet for CPU: the same stem, four stages and exchange units; W16, one module per stage, 2 blocks."""
    return HRNet(width, num_keypoints, stage_modules, num_blocks, stem_width, layer1_blocks, input_size, name="hrnet_tiny")


# ----------------------------------------------------------------------------- the pieces, written out (chapter 07)
def branch_shapes(input_size: tuple[int, int], width: int, num_branches: int) -> list[tuple[int, int, int]]:
    """``(C_b, H_b, W_b)`` of each parallel branch of an HRNet whose widest branch has ``width`` channels.

    The stem's two stride-2 convolutions bring the input to 1/4; branch ``b`` (0-based) runs at
    half the resolution of branch ``b - 1`` with twice the channels:

        C_b = C * 2^b,   H_b = H / (4 * 2^b),   W_b = W / (4 * 2^b)

    W32 at 256x192 in stage 4: (32, 64, 48), (64, 32, 24), (128, 16, 12), (256, 8, 6).

    Args:
        input_size: ``(H, W)`` of the input; both multiples of ``4 * 2^(num_branches - 1)``.
        width: C, the channels of branch 0 (32 for W32).
        num_branches: 1 to 4 (the stage number, for stages 1 to 4).

    Returns:
        one ``(C_b, H_b, W_b)`` tuple of ints per branch, highest resolution first.
    """
    height, width_px = check_size(input_size, "input_size")
    width = check_integer(width, "width", minimum=1)
    num_branches = check_integer(num_branches, "num_branches", minimum=1)
    divisor = 4 * 2 ** (num_branches - 1)
    if height % divisor or width_px % divisor:
        raise ValueError(f"input_size {tuple(input_size)} must be multiples of 4 * 2^(num_branches - 1) = {divisor} "
                         f"for {num_branches} branches")
    return [(width * 2**b, height // (4 * 2**b), width_px // (4 * 2**b)) for b in range(num_branches)]


def lateral_layers(module: HighResolutionModule, i: int) -> list[nn.Module | None]:
    """The *learned* path from every branch ``j`` into output branch ``i`` of an exchange unit.

    * ``j > i`` (coarser): the 1x1 convolution + BN of ``module.fuse_layers[i][j]``, without its
      nearest upsampling (that step is :func:`fuse_into_branch`'s job);
    * ``j < i`` (finer): the whole chain of stride-2 3x3 convolutions, which already lands on
      branch ``i``'s resolution;
    * ``j == i``: ``None`` (the identity).

    Args:
        module: a :class:`HighResolutionModule` with more than one branch.
        i: the output branch, ``0 <= i < len(module.fuse_layers)``.
    """
    if not isinstance(module, HighResolutionModule) or module.fuse_layers is None:
        raise ValueError("module must be a HighResolutionModule with at least two branches")
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(module.fuse_layers):
        raise ValueError(f"i must be an output branch between 0 and {len(module.fuse_layers) - 1}, got {i!r}")
    layers: list[nn.Module | None] = []
    for j, path in enumerate(module.fuse_layers[i]):
        if j == i:
            layers.append(None)
        elif j > i:
            layers.append(nn.Sequential(*list(path)[:-1]))  # conv 1x1 + BN, the Upsample left out
        else:
            layers.append(path)
    return layers


def fuse_into_branch(
    branches: Sequence[torch.Tensor], i: int, lateral: Sequence[Callable[[torch.Tensor], torch.Tensor] | None]
) -> torch.Tensor:
    """Output branch ``i`` of an exchange unit, with the resampling written out (Sun et al. 2019, Sec. 3).

        y_i = ReLU( x_i + sum_{j > i} Up_{2^(j-i)}( a_ij(x_j) ) + sum_{j < i} a_ij(x_j) )

    where ``a_ij = lateral[j]`` is the learned layer from branch ``j`` to branch ``i`` (a 1x1
    conv + BN to ``C_i`` channels for a coarser ``j``; ``i - j`` stride-2 3x3 convs for a finer
    ``j``, which already reach branch ``i``'s size) and ``Up_f`` is nearest-neighbour upsampling
    by ``f``: every value is repeated in an ``f x f`` block.  The ReLU comes after the sum.

    This is what :class:`HighResolutionModule` computes after its branches (with
    ``lateral = lateral_layers(module, i)``).

    Args:
        branches: ``x_j``, ``(N, C_j, H / 2^j, W / 2^j)`` for every branch ``j``.
        i: the output branch.
        lateral: one callable (or ``None`` at ``j == i``) per branch.

    Returns:
        ``(N, C_i, H / 2^i, W / 2^i)``.
    """
    if not isinstance(branches, (list, tuple)) or not branches:
        raise ValueError("branches must be a non-empty list of (N, C_j, H_j, W_j) tensors")
    if len(lateral) != len(branches):
        raise ValueError(f"lateral must have one entry per branch ({len(branches)}), got {len(lateral)}")
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(branches):
        raise ValueError(f"i must be a branch index between 0 and {len(branches) - 1}, got {i!r}")
    total = branches[i]
    for j, x_j in enumerate(branches):
        if j == i:
            continue
        y = lateral[j](x_j)  # (N, C_i, H_j, W_j) for j > i; (N, C_i, H_i, W_i) for j < i
        if j > i:
            y = F.interpolate(y, scale_factor=2 ** (j - i), mode="nearest")  # (N, C_i, H_i, W_i)
        total = total + y
    return F.relu(total)
