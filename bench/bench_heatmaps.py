"""Benchmark: Gaussian target generation, plain loop vs vectorised NumPy vs vectorised torch.

A training batch of 32 people x 17 keypoints at 64 x 48 (the official 256 x 192 setting):
:func:`course_lib.heatmaps.gaussian_heatmaps_loop` (one joint at a time, as the official
code) against :func:`course_lib.heatmaps.gaussian_heatmaps` on NumPy arrays, on CPU
tensors and, when a GPU is present, on CUDA tensors.  Prints the median time of each and
the speed-up of each over the loop; ``run`` returns the same figures as a dict.

    python bench/bench_heatmaps.py          # full size
    python bench/bench_heatmaps.py --quick  # a few seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from course_lib.heatmaps import gaussian_heatmaps, gaussian_heatmaps_loop


def _median_seconds(function, repeats: int, synchronize=None) -> float:
    function()  # warm-up
    if synchronize:
        synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        if synchronize:
            synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> dict:
    """Time target generation for ``(32, 17)`` keypoints at 64 x 48 (``quick``: 4 people, fewer repeats)."""
    batch, joints, size, sigma = (4 if quick else 32), 17, (64, 48), 2.0
    repeats = 3 if quick else 20
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(-4, 52, (batch, joints, 2)).astype(np.float32)
    visibility = rng.integers(0, 3, (batch, joints))
    keypoints_torch, visibility_torch = torch.from_numpy(keypoints), torch.from_numpy(visibility)

    seconds = {
        "loop": _median_seconds(lambda: gaussian_heatmaps_loop(keypoints, visibility, size, sigma), repeats),
        "numpy": _median_seconds(lambda: gaussian_heatmaps(keypoints, visibility, size, sigma), repeats),
        "torch_cpu": _median_seconds(
            lambda: gaussian_heatmaps(keypoints_torch, visibility_torch, size, sigma), repeats
        ),
    }
    if torch.cuda.is_available():
        keypoints_cuda, visibility_cuda = keypoints_torch.cuda(), visibility_torch.cuda()
        seconds["torch_cuda"] = _median_seconds(
            lambda: gaussian_heatmaps(keypoints_cuda, visibility_cuda, size, sigma), repeats, torch.cuda.synchronize
        )

    result = {
        "shape": [batch, joints, *size],
        "sigma": sigma,
        "repeats": repeats,
        "milliseconds": {name: 1000 * value for name, value in seconds.items()},
    }
    print(f"Gaussian targets for a batch of {batch} x {joints} at {size[0]} x {size[1]} (median of {repeats})")
    for name, value in seconds.items():
        ratio = seconds["loop"] / value
        result[f"loop_over_{name}"] = ratio
        print(f"  {name:<10} {1000 * value:9.3f} ms   {ratio:7.1f}x the loop's speed")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced size, runs in seconds")
    arguments = parser.parse_args()
    print(json.dumps(run(quick=arguments.quick), indent=2))
