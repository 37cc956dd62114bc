"""Command line: a pose model as an ONNX file, checked against PyTorch with ONNX Runtime.

    python -m course_lib.export --model hrnet_w32 --weights pose_hrnet_w32_256x192.pth --onnx hrnet_w32.onnx
    python -m course_lib.export --weights runs/sb_tiny.pt --onnx sb_tiny.onnx

The file takes ``images`` ``(N, 3, H, W)`` float32, already cropped and normalised as the
weights expect (see :mod:`course_lib.inference`: colour order, ImageNet mean and std), with
any batch size ``N``, and returns the last stage's ``heatmaps`` ``(N, K, H / 4, W / 4)``.
After writing it, the command runs the file with ONNX Runtime (where installed) on random
input of two batch sizes and checks the largest difference to PyTorch against
``--tolerance`` (1e-4, relative to the heatmaps' largest magnitude).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib import inference

OPSET = 17


class LastStage(nn.Module):
    """The model with only its final heatmaps as output (CPM and the hourglass return every stage's)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output = self.model(images)
        return output[-1] if isinstance(output, (list, tuple)) else output


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int] | None = None) -> Path:
    """Write ``model`` (eval mode, CPU) to ``path`` as ONNX with a dynamic batch dimension; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = input_size or model.input_size
    wrapped = LastStage(model.cpu().eval())
    example = torch.randn(2, 3, height, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the input checks, true of any batch size
        torch.onnx.export(wrapped, (example,), str(path), input_names=["images"], output_names=["heatmaps"],
                          dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    return path


def check_onnx(model: nn.Module, path: str | Path, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Largest ``|ONNX Runtime - PyTorch| / max |PyTorch|`` over random inputs of ``batch_sizes`` (ValueError without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("checking the ONNX file needs onnxruntime (pip install onnxruntime)") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    height, width = model.input_size
    worst = 0.0
    for batch in batch_sizes:
        images = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = LastStage(model.cpu().eval())(images).numpy()
        (found,) = session.run(["heatmaps"], {"images": images.numpy()})
        if found.shape != expected.shape:
            raise ValueError(f"ONNX output {found.shape} differs from PyTorch's {expected.shape} at batch {batch}")
        worst = max(worst, float(np.abs(found - expected).max() / max(np.abs(expected).max(), 1e-12)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a preset of models.list_models() (a course checkpoint names its own)")
    parser.add_argument("--weights", type=Path, default=None, help="course checkpoint, official or MMPose file")
    parser.add_argument("--onnx", type=Path, required=True, help="the ONNX file to write")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest relative difference allowed")
    parser.add_argument("--no-check", action="store_true", help="do not run the file with ONNX Runtime")
    args = parser.parse_args(argv)
    try:
        if args.model is None and args.weights is None:
            raise ValueError("give --model PRESET (and --weights FILE), or --weights with a course checkpoint")
        estimator = inference.load_estimator(args.model, args.weights)
        path = export_onnx(estimator.model, args.onnx)
        print(f"wrote {path} (input (N, 3, {', '.join(map(str, estimator.input_size))}), {estimator.color.upper()}, "
              "ImageNet-normalised)")
        if not args.no_check:
            difference = check_onnx(estimator.model, path)
            print(f"ONNX Runtime vs PyTorch: largest relative difference {difference:.2e}")
            if difference > args.tolerance:
                raise ValueError(f"the ONNX file differs from PyTorch by {difference:.2e} > --tolerance {args.tolerance}")
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
