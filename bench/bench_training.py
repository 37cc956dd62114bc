"""Benchmark: the course's training targets, measured on this machine.

* ``simplebaseline_tiny`` trained for 3 minutes on the default synthetic single-person data:
  PCK@0.2 on the validation split (target: >= 0.90 on a 2-core CPU);
* ``deeppose_tiny`` with the same budget (the chapter 02 claim: heatmaps beat regression);
* ``hrnet_tiny`` with the same budget: its PCK and throughput next to SimpleBaseline's;
* on a GPU: images per second with and without mixed precision, and the speed-up over the CPU.

PCK is normalised by the person box, max(w, h), over all labelled keypoints (v > 0) of the
validation split.

    python bench/bench_training.py            # 3 minutes per model
    python bench/bench_training.py --quick    # a few seconds per model
"""

from __future__ import annotations

import argparse
import json

import torch

from course_lib import losses, models, training
from course_lib.data import default_split_dir, ensure_default_data

TARGET_PCK = 0.90
BUDGET_SECONDS = 180.0


def train_for(name: str, seconds: float, device: str, amp: bool = True) -> dict:
    """Train ``name`` for ``seconds`` of training time; return its validation metrics and speed."""
    torch.manual_seed(0)
    model = models.build(name)
    input_size, heatmap_size = training.model_sizes(model)
    train = training.top_down_data(default_split_dir("single/train"), input_size, heatmap_size, augment=True)
    val = training.top_down_data(default_split_dir("single/val"), input_size, heatmap_size)
    loss = losses.HeatmapLoss() if heatmap_size is not None else losses.RegressionLoss()
    lr = 1e-3 if heatmap_size is None else 2e-3
    history = training.fit(model, train, None, loss, steps=1_000_000, max_seconds=seconds, lr=lr,
                           device=device, amp=amp, progress=False)
    scores = training.evaluate(model, val, device=device).metrics
    return {
        "model": name,
        "device": history.device,
        "amp": amp and history.device.startswith("cuda"),
        "seconds": round(history.seconds, 1),
        "steps": len(history.steps),
        "images_per_second": round(history.images_per_second, 1),
        **{k: round(v, 4) for k, v in scores.items()},
    }


def throughput(name: str, device: str, amp: bool, steps: int = 60) -> float:
    """Training images per second over ``steps`` steps (after 10 warm-up steps)."""
    model = models.build(name)
    input_size, heatmap_size = training.model_sizes(model)
    train = training.top_down_data(default_split_dir("single/train"), input_size, heatmap_size, augment=True,
                                   limit=2048)
    training.fit(model, train, None, losses.HeatmapLoss(), 10, device=device, amp=amp, progress=False)
    history = training.fit(model, train, None, losses.HeatmapLoss(), steps, device=device, amp=amp, progress=False)
    return round(history.images_per_second, 1)


def run(quick: bool = False) -> dict:
    """Train the three tiny models for the same budget; print and return the figures."""
    ensure_default_data()
    seconds = 5.0 if quick else BUDGET_SECONDS
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict = {"quick": quick, "budget_seconds": seconds, "threads": torch.get_num_threads(), "runs": []}
    print(f"training for {seconds:.0f} s each on {device} ({torch.get_num_threads()} CPU threads)")
    print(f"{'model':<22}{'steps':>7}{'img/s':>9}{'PCK@0.2':>9}{'PCK@0.1':>9}{'AP':>7}")
    for name in ("simplebaseline_tiny", "deeppose_tiny", "hrnet_tiny"):
        row = train_for(name, seconds, device)
        results["runs"].append(row)
        print(f"{name:<22}{row['steps']:>7}{row['images_per_second']:>9.0f}{row['pck@0.2']:>9.3f}"
              f"{row['pck@0.1']:>9.3f}{row['AP']:>7.3f}")
    simple = results["runs"][0]
    results["target_met"] = simple["pck@0.2"] >= TARGET_PCK
    print(f"simplebaseline_tiny PCK@0.2 = {simple['pck@0.2']:.3f} (target >= {TARGET_PCK} in "
          f"{BUDGET_SECONDS:.0f} s on a 2-core CPU): {'met' if results['target_met'] else 'NOT met'}"
          + (" [quick run: not meaningful]" if quick else ""))
    heat, regression = simple["pck@0.2"], results["runs"][1]["pck@0.2"]
    print(f"heatmaps vs regression at equal budget: PCK@0.2 {heat:.3f} vs {regression:.3f}")
    if torch.cuda.is_available():
        steps = 10 if quick else 100
        gpu = {
            "name": torch.cuda.get_device_name(0),
            "images_per_second_amp": throughput("simplebaseline_tiny", "cuda", True, steps),
            "images_per_second_fp32": throughput("simplebaseline_tiny", "cuda", False, steps),
            "images_per_second_cpu": throughput("simplebaseline_tiny", "cpu", False, max(5, steps // 10)),
        }
        gpu["amp_speedup"] = round(gpu["images_per_second_amp"] / gpu["images_per_second_fp32"], 2)
        gpu["gpu_over_cpu"] = round(gpu["images_per_second_amp"] / gpu["images_per_second_cpu"], 1)
        results["gpu"] = gpu
        print(f"GPU {gpu['name']}: {gpu['images_per_second_amp']:.0f} img/s with AMP, "
              f"{gpu['images_per_second_fp32']:.0f} without ({gpu['amp_speedup']}x); "
              f"{gpu['gpu_over_cpu']}x the CPU")
    else:
        print("no GPU: the mixed-precision figures are measured only on CUDA")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1))
