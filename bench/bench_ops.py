"""Speed of ROIAlign / ROIPool: the vectorised versions against the loop versions.

Run:  python bench/bench_ops.py  [--quick]

The setting of chapter 05: a stride-4 feature map of 256 x 256 images, person boxes of
32 to 200 pixels, 14 x 14 pooled features for a Mask R-CNN keypoint head.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import torch

from course_lib.ops import roi_align, roi_align_loop, roi_pool, roi_pool_loop


def _best_time(function: Callable[[], object], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls (seconds): the least disturbed by other work."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _random_boxes(num_boxes: int, num_images: int, image_size: int, generator: torch.Generator) -> torch.Tensor:
    sizes = 32 + torch.rand(num_boxes, 2, generator=generator) * (min(200, image_size) - 32)
    corners = torch.rand(num_boxes, 2, generator=generator) * (image_size - sizes)
    index = torch.randint(0, num_images, (num_boxes, 1), generator=generator).float()
    return torch.cat([index, corners, corners + sizes], dim=1)  # (R, 5)


def run(quick: bool = False) -> dict:
    """Time forward (and forward + backward) of both operations; print and return the figures."""
    generator = torch.Generator().manual_seed(0)
    if quick:
        num_images, channels, image_size, num_boxes, loop_boxes, output_size, repeats = 1, 8, 64, 4, 2, 7, 2
    else:
        num_images, channels, image_size, num_boxes, loop_boxes, output_size, repeats = 4, 64, 256, 64, 4, 14, 5
    stride = 4
    features = torch.randn(num_images, channels, image_size // stride, image_size // stride, generator=generator)
    boxes = _random_boxes(num_boxes, num_images, image_size, generator)
    scale = 1.0 / stride
    results: dict = {
        "setting": {
            "features": list(features.shape),
            "boxes": num_boxes,
            "output_size": output_size,
            "spatial_scale": scale,
            "torch_threads": torch.get_num_threads(),
        }
    }
    for name, fast, slow in [("roi_align", roi_align, roi_align_loop), ("roi_pool", roi_pool, roi_pool_loop)]:
        fast_s = _best_time(lambda: fast(features, boxes, output_size, scale), repeats) / num_boxes
        slow_s = _best_time(lambda: slow(features, boxes[:loop_boxes], output_size, scale), 1) / loop_boxes

        def forward_backward() -> None:
            leaf = features.clone().requires_grad_(True)
            fast(leaf, boxes, output_size, scale).sum().backward()

        train_s = _best_time(forward_backward, repeats) / num_boxes
        results[name] = {
            "vectorised_ms_per_box": 1e3 * fast_s,
            "vectorised_forward_backward_ms_per_box": 1e3 * train_s,
            "loop_ms_per_box": 1e3 * slow_s,
            "loop_over_vectorised": slow_s / fast_s,
        }
        print(
            f"{name:9s}  vectorised {1e3 * fast_s:8.3f} ms/box (forward+backward {1e3 * train_s:8.3f})   "
            f"loop {1e3 * slow_s:9.2f} ms/box   loop / vectorised = {slow_s / fast_s:7.1f}x"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small size that runs in seconds")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
