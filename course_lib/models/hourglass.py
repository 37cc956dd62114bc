"""Stacked Hourglass networks (Newell et al. 2016) (chapter 04).

Newell, Yang, Deng, "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016,
https://arxiv.org/abs/1603.06937.  Original Torch code: https://github.com/princeton-vl/pose-hg-train,
``src/models/hg.lua`` and ``src/models/layers/Residual.lua``; this file follows them layer
by layer (every convolution has a bias there, as here).

Two revisions of ``hg.lua`` are in that repository's history:

* the **released** one (commit 7709053, 26 September 2016, the file as it stands today): after
  each hourglass, ``opt.nModules`` residual modules at the output resolution, then the ``lin``
  layer.  ``hourglass_8`` builds it (``residual_after_hourglass=True``): 25,437,960 parameters
  with 17 joints, next to the 25.1M of the HRNet paper's table;
* the **early** one (commit 528ff3e, June 2016): the ``lin`` layer right after the hourglass.
  ``residual_after_hourglass=False`` builds it (8 x 214,528 parameters fewer: 23,721,736);
  ``hourglass_tiny`` keeps it.

The residual module (pre-activation bottleneck)::

    y = conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(ReLU(BN(x))))))))) + skip(x)
        channels:   in -> out/2 -> out/2 -> out;      skip: identity, or a 1x1 conv if in != out

One hourglass of order n (recursive, symmetric encoder-decoder)::

    up1  = Residual(x)                                   (same resolution: the skip branch)
    low1 = Residual(maxpool2x2(x))                       (half resolution)
    low2 = hourglass of order n-1 (low1), or Residual(low1) when n = 1
    low3 = Residual(low2)
    out  = up1 + upsample_nearest_x2(low3)

Stacking with intermediate supervision: after each hourglass, a residual module (released
revision only), 1x1 conv + BN + ReLU (``lin``) and a 1x1 conv to K heatmaps (each stack's heatmaps get the loss); the
features and the heatmaps are mapped back by 1x1 convs and added to the stack's input::

    x_{s+1} = x_s + conv1x1(lin_s) + conv1x1(heatmaps_s)

The stem brings a 256x256 image to 64x64: conv 7x7/2 (64) + BN + ReLU, Residual(64, 128),
max-pool 2x2, Residual(128, 128), Residual(128, 256).

``skip_connections=False`` removes the ``up1`` branches (``out = upsample(low3)``): a plain
encoder-decoder, for the chapter's "with vs without skip connections" experiment.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models.input_checks import check_images


class Residual(nn.Module):
    """Pre-activation bottleneck residual module: BN-ReLU-1x1 (out/2), BN-ReLU-3x3, BN-ReLU-1x1 (out) + skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if out_channels % 2 != 0:
            raise ValueError(f"out_channels must be even (the bottleneck works on out/2), got {out_channels}")
        mid = out_channels // 2
        self.conv_block = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, kernel_size=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel_size=3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x) + self.skip(x)


def residuals(channels: int, num_modules: int) -> nn.Sequential:
    """``num_modules`` Residual(channels, channels) in a row (``opt.nModules`` in hg.lua)."""
    return nn.Sequential(*[Residual(channels, channels) for _ in range(num_modules)])


class Hourglass(nn.Module):
    """One hourglass of order ``order``: pool down ``order`` times, upsample back, add the skip branches.

    The input's height and width must be multiples of ``2 ** order``.
    """

    def __init__(self, order: int, channels: int, num_modules: int = 1, skip_connections: bool = True):
        super().__init__()
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.up1 = residuals(channels, num_modules) if skip_connections else None
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.low1 = residuals(channels, num_modules)
        if order > 1:
            self.low2 = Hourglass(order - 1, channels, num_modules, skip_connections)
        else:
            self.low2 = residuals(channels, num_modules)
        self.low3 = residuals(channels, num_modules)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(self.pool(x))))  # (N, C, H/2, W/2)
        up2 = self.upsample(low)  # (N, C, H, W)
        if self.up1 is None:
            return up2
        return self.up1(x) + up2


class StackedHourglass(nn.Module):
    """``num_stacks`` hourglasses, each predicting heatmaps (intermediate supervision).

    Args:
        num_stacks: number of hourglasses (the paper: 8).
        num_keypoints: K.
        num_features: channels inside the hourglasses (``opt.nFeats``, 256).
        num_modules: residual modules at each step of an hourglass (``opt.nModules``, 1).
        order: levels of each hourglass (4: 64x64 -> 4x4 for a 256x256 input).
        skip_connections: keep the ``up1`` skip branches of the hourglasses.
        residual_after_hourglass: the released ``hg.lua``: ``num_modules`` residual modules
            after each hourglass, then one ``lin`` layer; ``False``: the early revision, with
            ``num_modules`` ``lin`` layers right after the hourglass.
        input_size: the default ``(H, W)``.
        name: the preset's name, used in error messages.

    The stem's channels are ``num_features // 4`` and ``num_features // 2`` (64 and 128 for
    256 features, as hard-coded in hg.lua).

    ``forward`` returns the list of the ``num_stacks`` heatmaps ``(N, K, H/4, W/4)``; the last
    one is the prediction.

    Attributes:
        stride: 4.
        size_divisor: ``4 * 2 ** order`` (64 for order 4): input sizes must be multiples of it.
    """

    def __init__(
        self,
        num_stacks: int = 8,
        num_keypoints: int = 17,
        num_features: int = 256,
        num_modules: int = 1,
        order: int = 4,
        skip_connections: bool = True,
        input_size: tuple[int, int] = (256, 192),
        name: str = "StackedHourglass",
        residual_after_hourglass: bool = True,
    ):
        super().__init__()
        for arg, value in (("num_stacks", num_stacks), ("num_keypoints", num_keypoints),
                           ("num_modules", num_modules), ("order", order)):
            if int(value) < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if num_features % 8 != 0 or num_features < 8:
            raise ValueError(f"num_features must be a positive multiple of 8, got {num_features!r}")
        f = num_features
        self.stem = nn.Sequential(
            nn.Conv2d(3, f // 4, kernel_size=7, stride=2, padding=3),  # (N, F/4, H/2, W/2)
            nn.BatchNorm2d(f // 4),
            nn.ReLU(inplace=True),
            Residual(f // 4, f // 2),
            nn.MaxPool2d(kernel_size=2, stride=2),  # (N, F/2, H/4, W/4)
            Residual(f // 2, f // 2),
            Residual(f // 2, f),  # (N, F, H/4, W/4)
        )
        self.hourglasses = nn.ModuleList(Hourglass(order, f, num_modules, skip_connections) for _ in range(num_stacks))
        # The released hg.lua: residual modules at the output resolution, then one lin layer.
        self.after = nn.ModuleList(residuals(f, num_modules) if residual_after_hourglass else nn.Identity()
                                   for _ in range(num_stacks))
        num_lins = 1 if residual_after_hourglass else num_modules
        self.lins = nn.ModuleList(
            nn.Sequential(
                *[
                    nn.Sequential(nn.Conv2d(f, f, kernel_size=1), nn.BatchNorm2d(f), nn.ReLU(inplace=True))
                    for _ in range(num_lins)
                ]
            )
            for _ in range(num_stacks)
        )
        self.heatmap_layers = nn.ModuleList(nn.Conv2d(f, num_keypoints, kernel_size=1) for _ in range(num_stacks))
        # Remapping into the next stack (none after the last one).
        self.remap_features = nn.ModuleList(nn.Conv2d(f, f, kernel_size=1) for _ in range(num_stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(num_keypoints, f, kernel_size=1) for _ in range(num_stacks - 1))

        self.num_stacks = int(num_stacks)
        self.num_keypoints = int(num_keypoints)
        self.skip_connections = bool(skip_connections)
        self.residual_after_hourglass = bool(residual_after_hourglass)
        self.num_features, self.num_modules, self.order = int(num_features), int(num_modules), int(order)
        self.stride = 4
        self.size_divisor = 4 * 2 ** int(order)
        self.input_size = tuple(input_size)
        self.name = name

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(N, 3, H, W)`` -> list of ``num_stacks`` heatmaps ``(N, K, H/4, W/4)``, the last one final."""
        check_images(images, self.name, size_divisor=self.size_divisor)
        x = self.stem(images)  # (N, F, H/4, W/4)
        outputs = []
        for s in range(self.num_stacks):
            features = self.lins[s](self.after[s](self.hourglasses[s](x)))  # (N, F, H/4, W/4)
            heatmaps = self.heatmap_layers[s](features)  # (N, K, H/4, W/4)
            outputs.append(heatmaps)
            if s < self.num_stacks - 1:
                x = x + self.remap_features[s](features) + self.remap_heatmaps[s](heatmaps)
        return outputs


def hourglass_8(
    num_keypoints: int = 17, input_size: tuple[int, int] = (256, 192), residual_after_hourglass: bool = True
) -> StackedHourglass:
    """The 8-stack hourglass of the released hg.lua (256 features, 1 module per step, order 4).

    25,437,960 parameters with 17 keypoints (the HRNet paper's table: 25.1M);
    ``residual_after_hourglass=False`` gives the early revision (23,721,736).  Chapter 04
    prints both counts and their GFLOPs by the HRNet paper's rule.
    """
    return StackedHourglass(8, num_keypoints, 256, 1, 4, True, input_size, name="hourglass_8",
                            residual_after_hourglass=residual_after_hourglass)


def hourglass_tiny(
    num_keypoints: int = 17,
    num_stacks: int = 2,
    num_features: int = 64,
    order: int = 3,
    skip_connections: bool = True,
    input_size: tuple[int, int] = (96, 64),
) -> StackedHourglass:
    """A small stacked hourglass for CPU: 2 stacks of 64 features, order 3 (input sizes multiples of 32),
    in the early layout of hg.lua (no residual module after each hourglass)."""
    return StackedHourglass(num_stacks, num_keypoints, num_features, 1, order, skip_connections, input_size,
                            name="hourglass_tiny", residual_after_hourglass=False)


# --------------------------------------------------------------------------------------
# Looking inside (chapter 04): where the parameters sit, and the intermediate stacks
# --------------------------------------------------------------------------------------
def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def hourglass_parameter_split(hourglass: Hourglass) -> dict[str, int]:
    """Parameters of one :class:`Hourglass` by role, summed over its levels.

    * ``encoder``: the ``low1`` modules, run after each max-pool on the way down;
    * ``bottom``: the innermost ``low2`` (order 1), at the lowest resolution;
    * ``decoder``: the ``low3`` modules, run before each upsampling on the way up;
    * ``skip``: the ``up1`` branches (0 without skip connections).

    With one residual module per step, encoder and decoder hold the same number of
    parameters: the hourglass is symmetric.
    """
    if not isinstance(hourglass, Hourglass):
        raise TypeError(f"hourglass must be an Hourglass, got {type(hourglass).__name__}")
    split = {"encoder": 0, "bottom": 0, "decoder": 0, "skip": 0}
    level = hourglass
    while True:
        split["encoder"] += _count(level.low1)
        split["decoder"] += _count(level.low3)
        split["skip"] += _count(level.up1)
        if not isinstance(level.low2, Hourglass):
            split["bottom"] += _count(level.low2)
            return split
        level = level.low2


class SelectStack(nn.Module):
    """A view of a :class:`StackedHourglass` whose output is the heatmaps of stack ``stack`` (1-based).

    The whole network still runs; only the returned maps change.  Use it to evaluate the
    intermediate predictions with the tools made for a final output, e.g.
    ``training.evaluate(SelectStack(model, 1), data)``.  The attributes ``stride``,
    ``input_size``, ``size_divisor``, ``num_keypoints`` and ``name`` are the model's.
    """

    def __init__(self, model: StackedHourglass, stack: int):
        super().__init__()
        if not isinstance(model, StackedHourglass):
            raise TypeError(f"model must be a StackedHourglass, got {type(model).__name__}")
        if isinstance(stack, bool) or not isinstance(stack, int) or not 1 <= stack <= model.num_stacks:
            raise ValueError(f"stack must be an integer from 1 to {model.num_stacks}, got {stack!r}")
        self.model, self.stack = model, stack
        for name in ("stride", "input_size", "size_divisor", "num_keypoints"):
            setattr(self, name, getattr(model, name))
        self.name = f"{model.name} (stack {stack})"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> the heatmaps of stack ``stack``, ``(N, K, H/4, W/4)``."""
        return self.model(images)[self.stack - 1]


def residual_output_sizes(model: nn.Module, input_size: tuple[int, int]) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, (C, H, W))`` of every :class:`Residual` output, in the order the forward pass runs them.

    One forward pass of one zero image of ``input_size`` with forward hooks; names are those of
    ``model.named_modules()`` (e.g. ``hourglasses.0.low2.low1.0``).  Used to draw the hourglass.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    height, width = (int(v) for v in input_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"input_size must be two positive integers (H, W), got {input_size!r}")
    sizes: list[tuple[str, tuple[int, int, int]]] = []
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: sizes.append((name, tuple(out.shape[1:]))))
             for name, module in model.named_modules() if isinstance(module, Residual)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return sizes
