"""DeepPose (Toshev & Szegedy 2014): regress the joint coordinates directly (chapter 01).

Toshev, Szegedy, "DeepPose: Human Pose Estimation via Deep Neural Networks", CVPR 2014,
https://arxiv.org/abs/1312.4659.

Notation of the chapter: a pose y = (y_1, ..., y_K) of K joints, each y_i a 2-vector of
pixel coordinates (x, y); a box b = (b_c, b_w, b_h) with centre b_c, width b_w and height
b_h; box normalisation

    N(y_i; b) = diag(1 / b_w, 1 / b_h) (y_i - b_c)           (the box spans [-0.5, 0.5]^2)

The network psi(x; theta) maps a crop x (the image inside b, resized to 220x220) to 2K
numbers read as K normalised joints, psi(x) ~ N(y; b).  Its layers, as in section 3 of the
paper (the sizes are those of a 220x220 input)::

    C(55x55x96) - LRN - P - C(27x27x256) - LRN - P - C(13x13x384) - C(13x13x384)
      - C(13x13x256) - P - F(4096) - F(4096) - F(2K)

(C convolution + ReLU, LRN local response normalisation, P 3x3/2 max-pooling, F fully
connected; dropout 0.6 on the hidden F layers).  The kernels are AlexNet's (11x11/4, 5x5,
3x3, 3x3, 3x3); "same" padding (5, 2, 1, 1, 1) gives exactly the paper's 55 - 27 - 13
sizes from 220.  An adaptive average pooling to 6x6 before the first F layer is the
identity at 220x220 and lets the same network take other sizes (at least 57x57).

Cascade (section 3.2): stage s >= 2 crops, around each predicted joint y_i^{s-1}, a box
b_i of side delta * diam(y^{s-1}) (diam: the distance between two opposite torso joints),
and a network of the same kind predicts where the joint is inside that crop:

    y_i^s = y_i^{s-1} + diag(b_w, b_h) psi_i(x_{b_i}; theta_s) = N^{-1}(psi_i(x_{b_i}; theta_s); b_i)

where psi_i is the i-th of the K joint outputs.  One network per stage serves all the
joints, as in the paper: :class:`DeepPoseCascadeStage` outputs K displacements and
returns joint i's for a crop made around joint i (``joint_index``).  Its training target
is N(y_i; b_i), the true joint in the crop's normalised coordinates.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models.input_checks import check_images
from course_lib.validation import check_array


class DeepPose(nn.Module):
    """The paper's AlexNet-style regressor: ``(N, 3, H, W)`` -> ``(N, K, 2)`` box-normalised ``x, y``.

    Args:
        num_keypoints: K.
        dropout: dropout probability on the two hidden fully connected layers (the paper: 0.6).
        input_size: the default ``(H, W)`` (the paper: 220x220).
        name: the preset's name, used in error messages.

    Attributes:
        stride: ``None``: the output is coordinates, not a map.
        size_divisor: 1 (any size of at least ``min_size`` pixels).
    """

    min_size = 57  # the smallest input for which the third pooling still has an output

    def __init__(
        self,
        num_keypoints: int = 17,
        dropout: float = 0.6,
        input_size: tuple[int, int] = (220, 220),
        name: str = "DeepPose",
    ):
        super().__init__()
        if int(num_keypoints) < 1:
            raise ValueError(f"num_keypoints must be a positive integer, got {num_keypoints!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        # AlexNet's LRN constants (size 5, alpha 1e-4, beta 0.75, k 2).
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=5),  # (N, 96, 55, 55)
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 96, 27, 27)
            nn.Conv2d(96, 256, kernel_size=5, padding=2),  # (N, 256, 27, 27)
            nn.ReLU(inplace=True),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 13, 13)
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # (N, 384, 13, 13)
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),  # (N, 384, 13, 13)
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # (N, 256, 13, 13)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
        )
        self.pool = nn.AdaptiveAvgPool2d((6, 6))
        self.regressor = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 2 * num_keypoints),
        )
        self.num_keypoints = int(num_keypoints)
        self.stride = None
        self.size_divisor = 1
        self.input_size = tuple(input_size)
        self.name = name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, K, 2)``: psi(x), the joints as N(y; b) of the input crop."""
        check_images(images, self.name, min_size=self.min_size)
        x = self.pool(self.features(images))  # (N, 256, 6, 6)
        out = self.regressor(torch.flatten(x, 1))  # (N, 2K)
        return out.view(-1, self.num_keypoints, 2)  # (N, K, 2): x, y


class DeepPoseTiny(nn.Module):
    """A small regressor for CPU, any input size: a stride-2 conv, 3 x [conv 3x3 - BN - ReLU - max-pool], pool to 4x4, 2 F layers.

    The adaptive pooling keeps a coarse 4x4 grid of where things are (a global average
    would throw the positions away, and positions are what the network must output).

    Args:
        num_keypoints: K.
        width: channels of the first convolution; doubled by each of the next three.
        hidden: width of the hidden fully connected layer.
        dropout: dropout probability before the output layer.
        input_size: the default ``(H, W)``.
        name: the preset's name, used in error messages.
    """

    def __init__(
        self,
        num_keypoints: int = 17,
        width: int = 16,
        hidden: int = 256,
        dropout: float = 0.0,
        input_size: tuple[int, int] = (96, 64),
        name: str = "deeppose_tiny",
    ):
        super().__init__()
        if int(num_keypoints) < 1 or int(width) < 1 or int(hidden) < 1:
            raise ValueError(f"num_keypoints, width and hidden must be positive, got {num_keypoints!r}, {width!r}, {hidden!r}")
        widths = [width, 2 * width, 4 * width, 8 * width]
        # A stride-2 first convolution (cheap at full resolution), then conv - BN - ReLU - pool x 3.
        layers: list[nn.Module] = [
            nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        in_channels = width
        for out_channels in widths[1:]:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)  # (N, 8 * width, H/16, W/16)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.regressor = nn.Sequential(
            nn.Linear(in_channels * 4 * 4, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2 * num_keypoints),
        )
        self.num_keypoints = int(num_keypoints)
        self.stride = None
        self.size_divisor = 1
        self.input_size = tuple(input_size)
        self.name = name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` -> ``(N, K, 2)`` box-normalised ``x, y``."""
        check_images(images, self.name)
        x = self.pool(self.features(images))  # (N, 8 * width, 4, 4)
        return self.regressor(torch.flatten(x, 1)).view(-1, self.num_keypoints, 2)  # (N, K, 2)


def deeppose_paper(num_keypoints: int = 17, dropout: float = 0.6, input_size: tuple[int, int] = (220, 220)) -> DeepPose:
    """The paper's AlexNet-style DeepPose regressor (220x220 input, dropout 0.6)."""
    return DeepPose(num_keypoints, dropout, input_size, name="deeppose")


def deeppose_tiny(
    num_keypoints: int = 17,
    width: int = 16,
    hidden: int = 256,
    dropout: float = 0.0,
    input_size: tuple[int, int] = (96, 64),
) -> DeepPoseTiny:
    """A small DeepPose-style regressor for CPU."""
    return DeepPoseTiny(num_keypoints, width, hidden, dropout, input_size, name="deeppose_tiny")


class DeepPoseCascadeStage(nn.Module):
    """Cascade stage s >= 2: from a crop around joint i, the displacement of joint i in crop-normalised units.

    Wraps a regressor (:class:`DeepPose` or :class:`DeepPoseTiny`, fresh parameters theta_s)
    whose K outputs are read as psi_1 .. psi_K; a crop made around joint i answers with
    psi_i.  The target is N(y_i; b_i) (the true joint in the crop box b_i centred on the
    previous prediction); the refined joint is y_i^s = y_i^{s-1} + diag(b_w, b_h) psi_i.

    Args:
        regressor: the network; by default a :class:`DeepPoseTiny` for square 64x64 crops
            (the refinement boxes are squares of side delta * diam(y)).
        num_keypoints: K, used when ``regressor`` is not given.
    """

    def __init__(self, regressor: nn.Module | None = None, num_keypoints: int = 17):
        super().__init__()
        if regressor is None:
            regressor = DeepPoseTiny(num_keypoints, input_size=(64, 64), name="deeppose_cascade")
        self.regressor = regressor
        self.num_keypoints = int(self.regressor.num_keypoints)
        self.stride = None
        self.size_divisor = getattr(self.regressor, "size_divisor", 1)
        self.input_size = tuple(self.regressor.input_size)
        self.name = "DeepPoseCascadeStage"

    def forward(self, crops: torch.Tensor, joint_index: torch.Tensor | None = None) -> torch.Tensor:
        """Crops ``(N, 3, h, w)`` around joints ``joint_index`` ``(N,)`` -> displacements ``(N, 2)``.

        With ``joint_index=None``, all K outputs ``(N, K, 2)``.
        """
        if joint_index is None:
            return self.regressor(crops)  # (N, K, 2)
        joint_index = torch.as_tensor(joint_index)
        num_crops = crops.shape[0] if isinstance(crops, torch.Tensor) and crops.dim() > 0 else None
        if joint_index.dtype not in (torch.int32, torch.int64) or joint_index.shape != (num_crops,):
            raise ValueError(
                f"joint_index must be an integer tensor of shape ({num_crops},) (one joint per crop), "
                f"got dtype {joint_index.dtype} and shape {tuple(joint_index.shape)}"
            )
        if bool((joint_index < 0).any()) or bool((joint_index >= self.num_keypoints).any()):
            raise ValueError(f"joint_index must be in [0, {self.num_keypoints - 1}], got {joint_index.tolist()}")
        displacements = self.regressor(crops)  # (N, K, 2)
        rows = torch.arange(num_crops, device=displacements.device)
        return displacements[rows, joint_index.to(displacements.device).long()]  # (N, 2)

    @staticmethod
    def refine(previous: torch.Tensor, displacement: torch.Tensor, box_size: torch.Tensor) -> torch.Tensor:
        """y_i^s = y_i^{s-1} + diag(b_w, b_h) psi_i: pixel joints ``(N, 2)`` from crop-normalised displacements ``(N, 2)``.

        ``box_size`` is ``(N, 2)`` (b_w, b_h) or ``(N,)`` (square boxes of side delta * diam(y)).
        """
        dims: dict[str, int] = {}
        previous = check_array(torch.as_tensor(previous), "previous", ("N", 2), dims=dims, allow_torch=True)
        displacement = check_array(torch.as_tensor(displacement), "displacement", ("N", 2), dims=dims, allow_torch=True)
        box_size = torch.as_tensor(box_size, dtype=displacement.dtype, device=displacement.device)
        if box_size.dim() == 1:
            box_size = box_size[:, None].expand(-1, 2)  # (N, 2)
        box_size = check_array(box_size, "box_size", ("N", 2), dims=dims, allow_torch=True)
        if bool((box_size <= 0).any()):
            raise ValueError(f"box_size must be positive, got {box_size.tolist()}")
        return previous + displacement * box_size
