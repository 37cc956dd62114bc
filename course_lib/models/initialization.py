"""The official initialisation of the layers SimpleBaseline and HRNet add (chapters 06-07).

Both official codebases (``pose_resnet.py`` and ``pose_hrnet.py``, ``init_weights``) start
every new convolution and transposed convolution from small random weights, N(0, 0.001^2),
with zero bias, and every BatchNorm as the identity (weight 1, bias 0).  Small weights make
the first heatmaps almost zero everywhere, close to the targets' background, so the first
steps do not start from a large loss.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn


def init_official(modules: Iterable[nn.Module]) -> None:
    """Initialise in place: conv and transposed-conv weights ~ N(0, 0.001^2), biases 0; BatchNorm weight 1, bias 0.

    Other modules (ReLU, pooling...) are left as they are; pass ``model.modules()`` for a whole model.
    """
    for module in modules:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, std=0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
