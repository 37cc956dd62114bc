"""Benchmark: the course's training targets, measured on this machine.

* ``simplebaseline_tiny`` trained for 3 minutes on the default synthetic single-person data:
  PCK@0.2 on the validation split (target: >= 0.90 on a 2-core CPU);
* ``deeppose_tiny`` with the same budget (the chapter 02 claim: heatmaps beat regression);
* ``hrnet_tiny`` with the same budget: its PCK and throughput next to SimpleBaseline's;
* on a GPU: images per second with and without mixed precision, and the speed-up over the CPU;
* the pipeline (:func:`pipeline`): for ``simplebaseline_tiny`` and ``hrnet_tiny``, the bare
  training step's images/s (forward, backward, AdamW on a batch already in memory) next to
  ``fit``'s, as it chooses to cut the crops and item by item, and their ratios, measured
  in paired rounds (target: ``fit`` at 90 % or more of the bare step); the training time to reach
  PCK@0.2 = 0.90; on CUDA the same with and without AMP, the paper presets at 256x192 with
  batch 64, and the GPU's utilisation during ``fit``.

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


TARGET_RATIO = 0.90


def _tiny_data(name: str, limit: int | None = 2048):
    model = models.build(name)
    input_size, heatmap_size = training.model_sizes(model)
    train = training.top_down_data(default_split_dir("single/train"), input_size, heatmap_size, augment=True,
                                   limit=limit)
    return model, train


def _first_batch(train, batch_size: int = 32) -> dict:
    return next(iter(torch.utils.data.DataLoader(train, batch_size=batch_size)))


def _bare(model, batch: dict, device: str, amp: bool, steps: int) -> float:
    import time

    device = training.resolve_device(device)
    model.to(device).train()
    batch = training.move_batch(batch, device, channels_last=device.type == "cuda")
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    amp_dtype = training.autocast_dtype(device, amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    loss = losses.HeatmapLoss()
    for _ in range(3):
        training.train_step(model, batch, loss, optimizer, scaler=scaler, amp_dtype=amp_dtype)
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        training.train_step(model, batch, loss, optimizer, scaler=scaler, amp_dtype=amp_dtype)
    _synchronize(device)
    return len(batch["image"]) * steps / (time.perf_counter() - start)


def _synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _decode(train) -> None:
    """Decode (and keep) every image, so that speeds are those of the second epoch on, as in any longer run."""
    for index in range(len(train)):
        train.samples[index]


def _fit_speed(model, train, device: str, amp: bool, steps: int, augmentation: str = "auto") -> float:
    """Images/s of :func:`training.fit` (after a short warm-up run), data cut as ``augmentation`` says.

    On CUDA the GPU's utilisation is sampled every 50 ms during the run (needs ``pynvml``)
    and kept in ``UTILISATION`` under ``(model name, amp, augmentation)``.
    """
    import threading

    options = dict(device=device, amp=amp, progress=False, augmentation=augmentation)
    training.fit(model, train, None, losses.HeatmapLoss(), 3, **options)
    samples, done = [], threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            try:
                samples.append(torch.cuda.utilization())
            except Exception:  # no pynvml: not measured
                return

    sampler = threading.Thread(target=sample, daemon=True)
    if device == "cuda":
        sampler.start()
    speed = training.fit(model, train, None, losses.HeatmapLoss(), steps, **options).images_per_second
    done.set()
    if samples:
        UTILISATION[(getattr(model, "name", type(model).__name__), amp, augmentation)] = \
            round(sum(samples) / len(samples), 1)
    return speed


UTILISATION: dict = {}


def time_to_pck(name: str, device: str, seconds: float, target: float = TARGET_PCK) -> float | None:
    """Training seconds until validation PCK@0.2 first reaches ``target`` (None within ``seconds``)."""
    model, train = _tiny_data(name, limit=None)
    input_size, heatmap_size = training.model_sizes(model)
    val = training.top_down_data(default_split_dir("single/val"), input_size, heatmap_size)
    history = training.fit(model, train, val, losses.HeatmapLoss(), 1_000_000, max_seconds=seconds, lr=2e-3,
                           device=device, eval_every=25, eval_items=256, progress=False)
    reached = [s for s, v in zip(history.val_seconds, history.val) if v.get("pck@0.2", 0.0) >= target]
    return round(reached[0], 1) if reached else None


def pipeline(quick: bool = False, seconds: float | None = None, budget: float | None = None,
             rounds: int | None = None) -> dict:
    """Bare step vs ``fit`` for the two tiny models (and on CUDA: AMP, the paper presets, utilisation).

    The speeds are measured in rounds on the same model and data: the bare step, ``fit`` as
    it chooses (``augmentation="auto"``: whole batches in the loader on the CPU, on the
    device on CUDA) and ``fit`` item by item, each for about ``seconds``; one more bare
    step closes the last round.  A round's ratio divides its ``fit`` by the mean of the bare
    steps measured just before and just after it, so a machine whose speed drifts (the bare
    step alone varies by a quarter from one second to the next on a shared 2-core cloud
    machine) slows both sides alike; the figures are the medians over ``rounds``.
    """
    import statistics

    seconds = seconds or (0.2 if quick else 2.0)
    budget = budget or (5.0 if quick else BUDGET_SECONDS)
    rounds = rounds or (1 if quick else 11)
    rows, device = [], "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{'model':<22}{'bare':>8}{'fit':>8}{'ratio':>7}{'per-item':>10}{'ratio':>7}{'s to PCK 0.9':>14}")
    for name in ("simplebaseline_tiny", "hrnet_tiny"):
        for amp in ((True, False) if device == "cuda" else (False,)):
            model, train = _tiny_data(name)
            _decode(train)
            batch = _first_batch(train)
            steps = max(3, round(seconds * _bare(model, batch, device, amp, 3) / len(batch["image"])))
            bare = [_bare(model, batch, device, amp, steps)]
            fit, per_item = [], []
            for _ in range(rounds):
                fit.append(_fit_speed(model, train, device, amp, steps))
                per_item.append(_fit_speed(model, train, device, amp, steps, "items"))
                bare.append(_bare(model, batch, device, amp, steps))
            around = [(before + after) / 2 for before, after in zip(bare, bare[1:])]  # the bare step of each round
            ratios = [f / b for f, b in zip(fit, around)]
            row = {"model": name, "device": device, "amp": amp,
                   "augmentation": training.augmentation_for(torch.device(device)), "steps": steps,
                   "bare_images_per_second": round(statistics.median(bare), 1),
                   "fit_images_per_second": round(statistics.median(fit), 1),
                   "fit_per_item_images_per_second": round(statistics.median(per_item), 1),
                   "ratio": round(statistics.median(ratios), 3),
                   "ratio_per_item": round(statistics.median(i / b for i, b in zip(per_item, around)), 3),
                   "ratios": [round(r, 3) for r in ratios]}
            if (name, amp, "auto") in UTILISATION:
                row["gpu_utilisation_percent"] = UTILISATION[(name, amp, "auto")]
            if not (device == "cuda" and not amp):
                row["seconds_to_pck_0.9"] = time_to_pck(name, device, budget)
            rows.append(row)
            print(f"{name + (' amp' if amp else ''):<22}{row['bare_images_per_second']:>8.0f}"
                  f"{row['fit_images_per_second']:>8.0f}{row['ratio']:>7.2f}"
                  f"{row['fit_per_item_images_per_second']:>10.0f}{row['ratio_per_item']:>7.2f}"
                  f"{str(row.get('seconds_to_pck_0.9', '-')):>14}")
    result = {"rows": rows, "target_ratio": TARGET_RATIO, "rounds": rounds, "load_average": _load(),
              "ratio_met": all(r["ratio"] >= TARGET_RATIO for r in rows if r["device"] == "cpu")}
    print(f"fit at {TARGET_RATIO:.0%} or more of the bare step on the CPU: "
          f"{'met' if result['ratio_met'] else 'NOT met'} (medians of {rounds} rounds)"
          + (" [quick run: not meaningful]" if quick else ""))
    if device == "cuda":
        result["paper_presets"] = _paper_presets(max(10, steps))
    else:
        print("no GPU: the AMP, paper-preset and utilisation figures are measured only on CUDA")
    return result


def _load() -> list[float] | None:
    """The machine's load average (1, 5, 15 minutes): other work running during the measurements."""
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _paper_presets(steps: int) -> dict:
    """Images/s of the bare step of SimpleBaseline-R50 and HRNet-W32 at 256x192, batch 64, with AMP."""
    figures = {}
    for name in ("simplebaseline_r50", "hrnet_w32"):
        model = models.build(name, input_size=(256, 192))
        batch = {"image": torch.randn(64, 3, 256, 192), "heatmaps": torch.rand(64, 17, 64, 48),
                 "target_weight": torch.ones(64, 17)}
        figures[name] = round(_bare(model, batch, "cuda", True, steps), 1)
        print(f"{name} 256x192 batch 64, AMP: {figures[name]:.0f} images/s")
    return figures


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
    results["pipeline"] = pipeline(quick)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1))
