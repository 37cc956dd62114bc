"""The pose networks of the course, one file per family, and how to measure them.

=======================  ===================================================  ========
module                   what it holds                                        chapter
=======================  ===================================================  ========
``deeppose``             DeepPose regressor, a tiny one, the cascade stage    01
``cpm``                  Convolutional Pose Machines                          03
``hourglass``            Stacked Hourglass                                    04
``resnet``               ResNet-18 .. 152 (the backbone of SimpleBaseline)    06
``simple_baseline``      SimpleBaseline: ResNet + deconvolutions              06
``hrnet``                HRNet: parallel branches and exchange units          07
``complexity``           params, multiply-adds, the paper's GFLOPs, latency   07
=======================  ===================================================  ========

Each name of the table is the module: ``from course_lib.models import hourglass`` and
``import course_lib.models.hourglass`` give the same thing, for every family.  The functions
that build a preset or measure a model are named after what they do, so that none hides a
module: ``cpm_paper``, ``deeppose_paper``, ``resnet_by_depth``, ``simple_baseline_resnet``,
``measure_complexity``.

``build(name)`` makes any of the presets below; every model it returns has

* ``input_size``: its default ``(H, W)`` (256x192 for the COCO presets of the papers, 368x368
  for CPM, 220x220 for DeepPose, 96x64 for the tiny presets);
* ``stride``: input size / heatmap size (4; CPM's paper preset 8; ``None`` for DeepPose,
  which outputs coordinates);
* ``size_divisor``: input heights and widths must be multiples of it (32 for SimpleBaseline
  and HRNet, 64 for the 8-stack hourglass; a clear error says so otherwise);
* ``num_keypoints`` and ``name``.

Outputs: heatmap models return ``(N, K, H / stride, W / stride)``; multi-stage models (CPM,
hourglass) the list of every stage's maps, the last one final; DeepPose ``(N, K, 2)``
box-normalised coordinates.

The tiny presets are sized to train on a laptop CPU in minutes (96x64 crops, a few hundred
thousand parameters); ``bench/bench_models.py`` measures their training speed.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

from torch import nn

from course_lib.models import complexity, cpm, deeppose, hourglass, hrnet, resnet, simple_baseline  # noqa: F401
from course_lib.models.complexity import count_parameters, measure_complexity, measure_latency, measure_training_speed
from course_lib.models.cpm import ConvolutionalPoseMachine, cpm_paper, cpm_tiny
from course_lib.models.deeppose import DeepPose, DeepPoseCascadeStage, DeepPoseTiny, deeppose_paper, deeppose_tiny
from course_lib.models.hourglass import Hourglass, Residual, StackedHourglass, hourglass_8, hourglass_tiny
from course_lib.models.hrnet import HighResolutionModule, HRNet, hrnet_tiny, hrnet_w32, hrnet_w48
from course_lib.models.resnet import BasicBlock, Bottleneck, ResNet, resnet_by_depth
from course_lib.models.simple_baseline import SimpleBaseline, simple_baseline_resnet, simple_baseline_tiny
from course_lib.validation import check_integer, check_size
from course_lib.runtime import seeded


# The presets: name -> function(num_keypoints=..., **overrides) returning the model.
PRESETS: dict[str, Callable[..., nn.Module]] = {
    "deeppose": deeppose_paper,
    "deeppose_tiny": deeppose_tiny,
    "cpm": cpm_paper,
    "cpm_tiny": cpm_tiny,
    "hourglass_8": hourglass_8,
    "hourglass_tiny": hourglass_tiny,
    "simplebaseline_r50": functools.partial(simple_baseline_resnet, 50),
    "simplebaseline_r101": functools.partial(simple_baseline_resnet, 101),
    "simplebaseline_r152": functools.partial(simple_baseline_resnet, 152),
    "simplebaseline_tiny": simple_baseline_tiny,
    "hrnet_w32": hrnet_w32,
    "hrnet_w48": hrnet_w48,
    "hrnet_tiny": hrnet_tiny,
}


def list_models() -> list[str]:
    """Names accepted by :func:`build`, sorted."""
    return sorted(PRESETS)


def build(name: str, num_keypoints: int = 17, *, seed: int | None = None, **overrides) -> nn.Module:
    """Build the preset ``name`` with ``num_keypoints`` outputs; ``overrides`` go to its constructor function.

    ``seed``: draw the initial weights from torch's generator seeded with it (the global random
    state is left as it was), so that one seed gives one model; ``None`` draws from the global
    state.  The course always passes the experiment's seed (see :mod:`course_lib.runtime`).

    Examples: ``build("hrnet_w32")``, ``build("simplebaseline_tiny", num_deconv_layers=2)``,
    ``build("hourglass_tiny", num_stacks=1, skip_connections=False)``,
    ``build("cpm_tiny", num_stages=1)``, ``build("hrnet_tiny", input_size=(128, 96))``.

    Raises:
        ValueError: unknown name (the message lists the known ones), or a bad value.
        TypeError: an override the preset does not take (the message lists those it takes).
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    num_keypoints = check_integer(num_keypoints, "num_keypoints", minimum=1)
    constructor = PRESETS[name]
    accepted = [p for p in inspect.signature(constructor).parameters if p != "num_keypoints"]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise TypeError(f"{name} does not take {', '.join(unknown)}; it takes: {', '.join(accepted)}")
    if "input_size" in overrides:
        overrides["input_size"] = check_size(overrides["input_size"], "input_size")
    if seed is None:
        model = constructor(num_keypoints=num_keypoints, **overrides)
    else:
        with seeded(seed):
            model = constructor(num_keypoints=num_keypoints, **overrides)
    divisor = getattr(model, "size_divisor", 1)
    if any(s % divisor for s in model.input_size):
        raise ValueError(f"input_size {model.input_size} of {name} must be multiples of {divisor}")
    return model


__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvolutionalPoseMachine",
    "DeepPose",
    "DeepPoseCascadeStage",
    "DeepPoseTiny",
    "HRNet",
    "HighResolutionModule",
    "Hourglass",
    "PRESETS",
    "Residual",
    "ResNet",
    "SimpleBaseline",
    "StackedHourglass",
    "build",
    "count_parameters",
    "cpm_paper",
    "cpm_tiny",
    "deeppose_paper",
    "deeppose_tiny",
    "hourglass_8",
    "hourglass_tiny",
    "hrnet_tiny",
    "hrnet_w32",
    "hrnet_w48",
    "list_models",
    "measure_complexity",
    "measure_latency",
    "measure_training_speed",
    "resnet_by_depth",
    "simple_baseline_resnet",
    "simple_baseline_tiny",
]
