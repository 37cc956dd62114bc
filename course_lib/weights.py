"""Weights from files: the course's checkpoints, the papers' released files, MMPose's, ImageNet backbones.

Every file is read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings,
lists and dicts only, so a downloaded file cannot run code when it is opened.

The formats, and how their parameter names become the course's (written out in
:data:`RENAMES`; ``tests/fixtures/weights/`` lists each format's names and shapes):

==========================  ===========================================  =====================================
format                      where the file comes from                    names
==========================  ===========================================  =====================================
``course``                  ``python -m course_lib.train --out F``,      the course's own, with ``preset``,
                            :func:`save_model`                           ``input_size``, ``keypoint_set``
``official``                SimpleBaseline (microsoft/human-pose-        ``conv1``, ``layer1`` .. ``layer4``,
                            estimation.pytorch) and HRNet (leoxiaobin/   ``deconv_layers``, ``final_layer``
                            deep-high-resolution-net.pytorch) releases   (HRNet: the course's names)
``mmpose``                  MMPose top-down heatmap ResNet / HRNet       ``backbone.*``, ``keypoint_head.*``
                            checkpoints (0.x and 1.x)                    (0.x) or ``head.*`` (1.x)
``torchvision``             ImageNet ResNet (``resnet50-0676ba61.pth``)  ``conv1``, ``layer1`` .., ``fc``
``hrnet_imagenet``          HRNet's ImageNet file                        the pose names, plus ``incre_modules``,
                            (``hrnet_w32-36af842e.pth``)                 ``downsamp_modules``, ``classifier``
==========================  ===========================================  =====================================

The course's SimpleBaseline keeps its ResNet under ``backbone.``; its HRNet uses the official
names unchanged.  The released SimpleBaseline files were saved before BatchNorm counted its
batches: their missing ``num_batches_tracked`` entries are filled with 0 (the number is only
read when BatchNorm's ``momentum`` is ``None``, which no model here uses).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

CHECKPOINT_FORMAT = "course_lib.pose/1"
RESNET_STAGES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
# The layers of HRNet that its ImageNet file initialises (the official ``PRETRAINED_LAYERS``).
HRNET_PRETRAINED_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2",
                           "stage3", "transition3", "stage4")
# torchvision's ImageNet files (``torchvision.models.ResNet*_Weights.IMAGENET1K_V1``), by depth.
TORCHVISION_RESNET_FILES = {18: "resnet18-f37072fd.pth", 34: "resnet34-b627a593.pth", 50: "resnet50-0676ba61.pth",
                            101: "resnet101-63fe2227.pth", 152: "resnet152-394f9c45.pth"}

# (family, format) -> [(their prefix, the course's prefix)]; a name matching none is not a weight of the model.
RENAMES: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("simplebaseline", "official"): [(p, "backbone." + p) for p in RESNET_STAGES]
    + [("deconv_layers.", "deconv_layers."), ("final_layer.", "final_layer.")],
    ("simplebaseline", "mmpose"): [("backbone.", "backbone."), ("keypoint_head.deconv_layers.", "deconv_layers."),
                                   ("keypoint_head.final_layer.", "final_layer."),
                                   ("head.deconv_layers.", "deconv_layers."), ("head.final_layer.", "final_layer.")],
    ("simplebaseline", "torchvision"): [(p, "backbone." + p) for p in RESNET_STAGES],
    ("hrnet", "official"): [(p + ".", p + ".") for p in HRNET_PRETRAINED_LAYERS] + [("final_layer.", "final_layer.")],
    ("hrnet", "mmpose"): [("backbone.", ""), ("keypoint_head.final_layer.", "final_layer."),
                          ("head.final_layer.", "final_layer.")],
    ("hrnet", "hrnet_imagenet"): [(p + ".", p + ".") for p in HRNET_PRETRAINED_LAYERS],
}


# ============================================================================ reading files
def read_file(path: str | os.PathLike) -> dict:
    """The dict saved in ``path``, read with ``weights_only=True`` (NumPy arrays in MMPose's metadata allowed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a PyTorch file of tensors (e.g. it needs code to be unpickled).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    core = getattr(np, "_core", None) or np.core
    safe = [np.ndarray, np.dtype, core.multiarray._reconstruct,
            *(type(np.dtype(t)) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_))]
    try:
        with torch.serialization.safe_globals(safe):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any reading failure becomes one clear message
        raise ValueError(f"weights {path} could not be read as a file of tensors (weights_only=True): "
                         f"{str(error).splitlines()[0]}") from None
    if not isinstance(content, Mapping):
        raise ValueError(f"weights {path} hold a {type(content).__name__}, not a dict of tensors")
    return dict(content)


def state_dict_of(content: Mapping) -> dict[str, torch.Tensor]:
    """The tensors of a file's dict: its ``state_dict`` or ``model`` entry if it has one, without ``module.``."""
    for key in ("state_dict", "model"):
        if isinstance(content.get(key), Mapping):
            content = content[key]
            break
    tensors = {k: v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError("the weights file holds no tensors (expected a state dict)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in tensors.items()}


def weight_format(content: Mapping) -> str:
    """Which format a file's dict is in: ``course``, ``mmpose``, ``torchvision``, ``hrnet_imagenet`` or ``official``."""
    if content.get("format") == CHECKPOINT_FORMAT:
        return "course"
    names = set(state_dict_of(content))
    if any(n.startswith(("keypoint_head.", "head.")) for n in names) and any(n.startswith("backbone.") for n in names):
        return "mmpose"
    if "fc.weight" in names:
        return "torchvision"
    if "classifier.weight" in names or any(n.startswith("incre_modules.") for n in names):
        return "hrnet_imagenet"
    if any(n.startswith("backbone.") for n in names):
        return "course"
    return "official"


def family(model: nn.Module) -> str:
    """``simplebaseline`` or ``hrnet`` (the architectures released weights exist for), else ``other``."""
    from course_lib.models import HRNet, SimpleBaseline

    if isinstance(model, SimpleBaseline):
        return "simplebaseline"
    if isinstance(model, HRNet):
        return "hrnet"
    return "other"


# ============================================================================ names
def rename(state_dict: Mapping[str, torch.Tensor], model_family: str, fmt: str) -> dict[str, torch.Tensor]:
    """Their names -> the course's, by the prefixes of :data:`RENAMES`; names that match no prefix are dropped."""
    if fmt == "course":
        return dict(state_dict)
    if (model_family, fmt) not in RENAMES:
        raise ValueError(f"weights in the {fmt} format do not fit a {model_family} model "
                         f"(known: {', '.join(f'{f} for {m}' for m, f in RENAMES)})")
    renamed = {}
    for name, tensor in state_dict.items():
        for theirs, ours in RENAMES[(model_family, fmt)]:
            if name.startswith(theirs):
                renamed[ours + name[len(theirs):]] = tensor
                break
    return renamed


def fill_batch_counts(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Add a zero ``num_batches_tracked`` for every BatchNorm whose statistics are there but whose count is not."""
    filled = dict(state_dict)
    for name, buffer in model.state_dict().items():
        if name.endswith(".num_batches_tracked") and name not in filled:
            stem = name[: -len("num_batches_tracked")]
            if stem + "running_mean" in filled:
                filled[name] = torch.zeros_like(buffer)
    return filled


def check_fit(state_dict: Mapping[str, torch.Tensor], model: nn.Module, what: str, partial: bool = False) -> None:
    """Raise ValueError naming the first missing, unexpected and mis-shaped parameters if ``state_dict`` does not fit."""
    expected = model.state_dict()
    missing = [] if partial else [n for n in expected if n not in state_dict]
    unexpected = [n for n in state_dict if n not in expected]
    wrong = [f"{n} {tuple(state_dict[n].shape)} (model: {tuple(expected[n].shape)})"
             for n in state_dict if n in expected and state_dict[n].shape != expected[n].shape]
    if missing or unexpected or wrong:
        name = getattr(model, "name", type(model).__name__)
        parts = [f"{label} {len(items)}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
        raise ValueError(f"{what} do not fit {name}: " + "; ".join(parts))


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping) -> str:
    """Load a whole model's weights (any format of the table) into ``model``; returns the format found.

    Raises:
        ValueError: weights that do not fit the model (the message names the parameters).
    """
    content = read_file(source) if not isinstance(source, Mapping) else dict(source)
    fmt = weight_format(content)
    if fmt in ("torchvision", "hrnet_imagenet"):
        raise ValueError(f"{source} holds ImageNet classification weights ({fmt}); "
                         "load them as a backbone with pretrained=..., not as weights=...")
    state_dict = fill_batch_counts(rename(state_dict_of(content), family(model), fmt), model)
    check_fit(state_dict, model, f"weights {source if not isinstance(source, Mapping) else ''} ({fmt} format)")
    model.load_state_dict(state_dict)
    return fmt


def load_pretrained(model: nn.Module, source: str | os.PathLike) -> list[str]:
    """Initialise the backbone from ImageNet weights: torchvision's ResNet file, HRNet's ImageNet file, or ``"auto"``.

    ``"auto"`` takes the ResNet file from torchvision's weight cache (``torch.hub``'s
    ``checkpoints/`` folder), downloading it there first if torchvision is installed.
    Returns the names loaded; the heads (deconvolutions, ``final_layer``) keep their initialisation.
    """
    model_family = family(model)
    if model_family == "other":
        raise ValueError(f"pretrained backbones exist for SimpleBaseline and HRNet, not {getattr(model, 'name', model)}")
    path = torchvision_cache_file(model) if str(source) == "auto" else Path(source)
    content = read_file(path)
    fmt = weight_format(content)
    if (model_family, fmt) not in (("simplebaseline", "torchvision"), ("hrnet", "hrnet_imagenet")):
        raise ValueError(f"pretrained {path} is in the {fmt} format; a {model_family} backbone needs "
                         f"{'a torchvision ResNet file' if model_family == 'simplebaseline' else 'HRNet ImageNet file'}")
    state_dict = fill_batch_counts(rename(state_dict_of(content), model_family, fmt), model)
    expected = model.state_dict()
    state_dict = {n: t for n, t in state_dict.items() if n in expected}  # HRNet's ImageNet stage 4 fuses more branches
    check_fit(state_dict, model, f"pretrained {path}", partial=True)
    model.load_state_dict(state_dict, strict=False)
    return sorted(state_dict)


def torchvision_cache_file(model: nn.Module) -> Path:
    """torchvision's ImageNet file for this SimpleBaseline's ResNet, in torch.hub's cache (downloaded if missing)."""
    depth = resnet_depth(model)
    path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_RESNET_FILES[depth]
    if path.is_file():
        return path
    try:
        import torchvision.models as tv_models
    except ImportError:
        raise ValueError(f"pretrained='auto' needs torchvision (or the file {path}); pass the ImageNet file instead") from None
    url = getattr(tv_models, f"ResNet{depth}_Weights").IMAGENET1K_V1.url
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(path))
    return path


def resnet_depth(model: nn.Module) -> int:
    """18, 34, 50, 101 or 152 for a SimpleBaseline on a paper ResNet (others have no ImageNet file)."""
    from course_lib.models.resnet import RESNET_LAYOUTS

    backbone = getattr(model, "backbone", None)
    blocks = tuple(len(getattr(backbone, name)) for name in getattr(backbone, "layer_names", []))
    block = type(getattr(backbone, "layer1")[0]) if backbone is not None else None
    widths = backbone.layer1[0].conv1.out_channels if backbone is not None else None
    for depth, (kind, layout) in RESNET_LAYOUTS.items():
        if kind is block and layout == blocks and widths == 64:
            return depth
    raise ValueError(f"{getattr(model, 'name', model)} has no ImageNet ResNet layout; pretrained='auto' needs a paper preset")


# ============================================================================ the course's checkpoint
def save_model(path: str | os.PathLike, model: nn.Module, preset: str, keypoint_set: str = "coco",
               **extra: Any) -> Path:
    """Write the course's checkpoint: weights, ``preset``, ``input_size``, ``num_keypoints``, ``keypoint_set``.

    ``extra`` adds plain values (numbers, strings, lists, dicts of them, tensors), e.g. an
    optimizer's state when a run is to be resumed.  Written atomically; read with :func:`read_checkpoint`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "preset": str(preset), "input_size": list(model.input_size),
             "num_keypoints": int(model.num_keypoints), "keypoint_set": str(keypoint_set),
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra}
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_model` (ValueError for any other file)."""
    content = read_file(path)
    if content.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a course checkpoint (no format {CHECKPOINT_FORMAT!r}); "
                         "released weights go with --model PRESET --weights FILE")
    return content


def model_from_checkpoint(path: str | os.PathLike) -> nn.Module:
    """Build the preset a course checkpoint names, at its input size and keypoint count, and load its weights."""
    from course_lib import models

    content = read_checkpoint(path)
    model = models.build(content["preset"], num_keypoints=int(content["num_keypoints"]))
    model.input_size = tuple(int(s) for s in content["input_size"])
    load_weights(model, content)
    return model.eval()
