"""Benchmark of the pose networks: size, GFLOPs, latency, training speed.

1. The HRNet paper's complexity table at 256x192: parameters, true multiply-adds and the
   paper's GFLOPs for every paper preset, next to the paper's figures.
2. Latency of SimpleBaseline-R50 and HRNet-W32 (batch 1 on the CPU; on CUDA too when
   available): the notes claim HRNet has fewer GFLOPs but is slower in wall time.
3. Training speed of the tiny presets (images per second of forward + backward, batch 32,
   at their default input size), which sets how long the chapters' experiments take.

Run ``python bench/bench_models.py`` (``--quick`` for a reduced run of a few seconds).
"""

from __future__ import annotations

import argparse
import json

import torch

from course_lib.models import build, measure_complexity, measure_latency, measure_training_speed

# HRNet paper, Table 1 (COCO val2017, 256x192): parameters (millions) and GFLOPs.
PAPER_TABLE = {
    "hourglass_8": (25.1, 14.3),
    "simplebaseline_r50": (34.0, 8.9),
    "simplebaseline_r101": (53.0, 12.4),
    "simplebaseline_r152": (68.6, 15.7),
    "hrnet_w32": (28.5, 7.1),
    "hrnet_w48": (63.6, 14.6),
}
OTHER_PAPER_PRESETS = ["cpm", "deeppose"]
TINY_PRESETS = ["deeppose_tiny", "cpm_tiny", "hourglass_tiny", "simplebaseline_tiny", "hrnet_tiny"]


def complexity_table(quick: bool) -> dict[str, dict]:
    """params / macs / paper_gflops of the paper presets at 256x192 (CPM and DeepPose at their own sizes)."""
    rows = {}
    names = ["simplebaseline_r50", "hrnet_w32"] if quick else list(PAPER_TABLE) + OTHER_PAPER_PRESETS
    print("\nComplexity at 256x192 (CPM 368x368, DeepPose 220x220); 'paper': HRNet paper, Table 1")
    print(f"{'model':22s} {'params':>12s} {'paper':>7s} {'true GMACs':>11s} {'paper_gflops':>13s} {'paper':>6s}")
    for name in names:
        # Counting needs shapes only: build on the meta device (no memory, no arithmetic).
        with torch.device("meta"):
            model = build(name)
        size = (256, 192) if name in PAPER_TABLE else model.input_size
        result = measure_complexity(model, size)
        paper_params, paper_gflops = PAPER_TABLE.get(name, (None, None))
        rows[name] = dict(result, input_size=list(size), paper_params_m=paper_params, paper_gflops_reported=paper_gflops)
        print(
            f"{name:22s} {result['params']:>12,d} {paper_params if paper_params else '':>7} "
            f"{result['macs'] / 1e9:>11.2f} {result['paper_gflops']:>13.2f} {paper_gflops if paper_gflops else '':>6}"
        )
    return rows


def latency_comparison(quick: bool) -> dict[str, dict]:
    """SimpleBaseline-R50 vs HRNet-W32, batch 1, on the CPU and (if present) CUDA."""
    size = (64, 64) if quick else (256, 192)
    repeats, warmup = (1, 0) if quick else (20, 3)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict[str, dict] = {}
    torch.manual_seed(0)
    models = {name: build(name) for name in ["simplebaseline_r50", "hrnet_w32"]}
    print(f"\nLatency, batch 1, {size[0]}x{size[1]} ({torch.get_num_threads()} CPU threads)")
    for device in devices:
        for name, model in models.items():
            result = measure_latency(model, size, device=device, batch=1, warmup=warmup, repeats=repeats)
            results[f"{name}@{device}"] = result
            print(f"  {device:5s} {name:20s} mean {result['mean_ms']:8.1f} ms (+- {result['std_ms']:.1f}), "
                  f"best {result['min_ms']:8.1f} ms, {result['images_per_second']:7.1f} img/s")
        hrnet, baseline = results[f"hrnet_w32@{device}"], results[f"simplebaseline_r50@{device}"]
        ratio = {"mean": hrnet["mean_ms"] / baseline["mean_ms"], "best": hrnet["min_ms"] / baseline["min_ms"]}
        results[f"ratio_hrnet_over_simplebaseline@{device}"] = ratio
        print(f"  {device:5s} time of HRNet-W32 / SimpleBaseline-R50: {ratio['mean']:.2f}x (means), "
              f"{ratio['best']:.2f}x (best runs; less sensitive to other work on the machine)")
    return results


def training_speed(quick: bool) -> dict[str, dict]:
    """Images per second of forward + backward for the tiny presets at their input size."""
    batch, steps, warmup = (2, 1, 0) if quick else (32, 5, 1)
    rows = {}
    print(f"\nTiny presets: training speed (forward + backward, batch {batch}, CPU, {torch.get_num_threads()} threads)")
    for name in TINY_PRESETS:
        torch.manual_seed(0)
        model = build(name)
        counts = measure_complexity(model, model.input_size)
        speed = measure_training_speed(model, model.input_size, batch=batch, steps=steps, warmup=warmup)
        rows[name] = {**speed, "params": counts["params"], "macs": counts["macs"]}
        print(f"  {name:20s} input {model.input_size[0]}x{model.input_size[1]}  params {counts['params']:>9,d}  "
              f"{counts['macs'] / 1e6:7.1f} MMACs  {speed['images_per_second']:7.1f} img/s")
    return rows


def run(quick: bool = False) -> dict:
    """Run the three parts; print them and return a JSON-serialisable dict."""
    results = {
        "quick": quick,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "complexity": complexity_table(quick),
        "latency": latency_comparison(quick),
        "training_speed": training_speed(quick),
    }
    return json.loads(json.dumps(results))  # tuples -> lists: exactly what JSON will hold


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, a few seconds")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    output = run(quick=args.quick)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(output, handle, indent=2)
