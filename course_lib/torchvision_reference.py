"""torchvision.ops as the reference chapter 05 checks ROIPool and ROIAlign against, when it can run.

:mod:`course_lib.ops` writes ROIPool and ROIAlign from scratch and claims torchvision's exact
semantics; :func:`torchvision_roi_ops` runs ``torchvision.ops.roi_pool`` and ``roi_align`` on
the same input so that the claim can be checked.  torchvision is optional and never
required: it is imported here only inside ``try``, and where this Python has no torchvision
built for its torch, the system interpreter (Debian/Ubuntu's ``python3-torchvision``) is
asked in a subprocess.  Nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from course_lib.ops import _as_rois, _check_features, _check_scale, _output_size, _sampling_ratio

__all__ = ["SYSTEM_PYTHON", "torchvision_roi_ops"]

SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian/Ubuntu's python3-torchvision lives

_TORCHVISION_SCRIPT = """
import sys
import numpy as np, torch, torchvision.ops as tv
data = np.load(sys.argv[1])
features, rois = torch.from_numpy(data["features"]), torch.from_numpy(data["rois"])
size, scale = tuple(int(v) for v in data["output_size"]), float(data["spatial_scale"])
np.savez(sys.argv[2], roi_pool=tv.roi_pool(features, rois, size, scale).numpy(),
         roi_align=tv.roi_align(features, rois, size, scale, int(data["sampling_ratio"]), bool(data["aligned"])).numpy())
"""


def torchvision_roi_ops(
    features: torch.Tensor,
    boxes: torch.Tensor | list[torch.Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
    *,
    python: str = SYSTEM_PYTHON,
    timeout: float = 120.0,
) -> dict | None:
    """``torchvision.ops.roi_pool`` and ``roi_align`` on the same input, or ``None`` when torchvision cannot run.

    torchvision is optional and never required.  It is first imported here, inside ``try``
    (it works only where a torchvision built for this torch is installed); otherwise
    ``python`` (default: the system interpreter, which has Debian/Ubuntu's
    ``python3-torchvision``) runs the two functions in a subprocess, the arrays travelling
    through a temporary ``.npz`` file.  Nothing is downloaded.

    Args: as :func:`~course_lib.ops.roi_align` (``features``, ``boxes`` in either format, ``output_size``,
    ``spatial_scale``, ``sampling_ratio``, ``aligned``); ``python``: the interpreter to try;
    ``timeout``: seconds for the subprocess.

    Returns:
        ``{"roi_pool": (R, C, h, w), "roi_align": (R, C, h, w), "where": str}`` (tensors of
        the features' dtype on the CPU; ``where`` says which interpreter ran them), or ``None``.
    """
    features = _check_features(features)
    rois = _as_rois(boxes, features)
    size = _output_size(output_size)
    spatial_scale = _check_scale(spatial_scale)
    sampling_ratio = _sampling_ratio(sampling_ratio)
    cpu_features = features.detach().cpu()
    rois = rois.to(cpu_features.dtype)
    try:
        import torchvision.ops as tv  # noqa: PLC0415  (optional; only where it matches this torch)

        return {"roi_pool": tv.roi_pool(cpu_features, rois, size, spatial_scale),
                "roi_align": tv.roi_align(cpu_features, rois, size, spatial_scale, int(sampling_ratio), bool(aligned)),
                "where": "torchvision in this Python"}
    except Exception:  # not installed, or built for another torch
        pass
    if not Path(python).exists():
        return None
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    with tempfile.TemporaryDirectory() as folder:
        inputs, outputs = Path(folder) / "inputs.npz", Path(folder) / "outputs.npz"
        np.savez(inputs, features=cpu_features.numpy(), rois=rois.numpy(), output_size=np.array(size),
                 spatial_scale=np.array(spatial_scale), sampling_ratio=np.array(int(sampling_ratio)),
                 aligned=np.array(bool(aligned)))
        try:
            subprocess.run([python, "-c", _TORCHVISION_SCRIPT, str(inputs), str(outputs)], check=True,
                           capture_output=True, env=environment, timeout=timeout)
        except (OSError, subprocess.SubprocessError):
            return None
        result = np.load(outputs)
        return {"roi_pool": torch.from_numpy(result["roi_pool"]), "roi_align": torch.from_numpy(result["roi_align"]),
                "where": f"torchvision run by {python}"}
