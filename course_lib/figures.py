"""The README's gallery: a few key figures of the course, drawn from a run into small PNGs.

    python -m course_lib.figures docs/figures            # what `make figures` runs
    python -m course_lib.figures /tmp/figures --quick    # fewer items, an untrained model (tests)

Each figure is what a chapter shows, drawn with the same library calls:

* ``heatmaps.png`` (chapter 02, the heatmap explorer): a person crop, its Gaussian targets, and
  one joint's map decoded by argmax and by DARK;
* ``predictions.png`` (chapters 06 and 08): the tiny SimpleBaseline's predictions on
  validation people (``zoo.pretrained``: trained once and cached; under ``COURSE_FAST=1`` its
  short recipe);
* one experiment per part of the course: ``decoding.png`` (chapters 00-04: decoding error
  against the heatmap stride), ``roi_align.png`` (chapters 05-07: ROIPool's staircase against
  ROIAlign's smooth crop) and ``grouping.png`` (chapters 08-09: COCO AP of associative-embedding
  grouping against tag noise).

Figures are saved at 80 dpi so that each stays well under 150 KB.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_lib import data, grouping, heatmaps, metrics, ops, training, viz  # noqa: E402

DPI = 80
FIGURES = ("heatmaps", "predictions", "decoding", "roi_align", "grouping")


def _save(fig: plt.Figure, out_dir: Path, name: str) -> Path:
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def heatmap_figure(out_dir: Path, joint: str = "left_wrist") -> Path:
    """A person crop, the max over its 17 Gaussian targets, and one joint's map decoded two ways."""
    from course_lib.keypoints import COCO_KEYPOINTS

    crops = training.top_down_data(data.default_split_dir("single/val"), (192, 128), (48, 32), limit=8)
    item = next(crops[i] for i in range(len(crops)) if crops[i]["target_weight"][COCO_KEYPOINTS.index(joint)] > 0)
    image, maps, k = data.tensor_to_image(item["image"]), item["heatmaps"].numpy(), COCO_KEYPOINTS.index(joint)
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.6))
    viz.show_image(image, axes[0])
    viz.draw_pose(item["keypoints"].numpy(), item["visibility"].numpy(), ax=axes[0], linewidth=1.2, markersize=10)
    axes[0].set_title("crop and keypoints", fontsize=9)
    viz.overlay_heatmap(image, maps.max(axis=0), ax=axes[1], alpha=0.55)
    axes[1].set_title("Gaussian targets (max over 17)", fontsize=9)
    axes[2].imshow(maps[k], cmap="viridis")
    for decode, marker, label in ((heatmaps.decode_argmax, "wx", "argmax"),
                                  (lambda m: heatmaps.decode_dark(m, sigma=2.0), "r+", "DARK")):
        point = np.asarray(decode(maps[k][None])[0])[0]
        axes[2].plot(point[0], point[1], marker, markersize=10, mew=2, label=label)
    truth = item["keypoints"].numpy()[k] / 4  # crop pixels to heatmap pixels (stride 4)
    axes[2].plot(truth[0], truth[1], "o", markerfacecolor="none", markeredgecolor="w", markersize=12, label="truth")
    axes[2].legend(fontsize=7, loc="lower right")
    axes[2].set_title(f"{joint}: 48 x 32 map, decoded", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle("Chapter 02: heatmaps, from keypoints to maps and back", fontsize=10)
    return _save(fig, out_dir, "heatmaps")


def prediction_grid(out_dir: Path, model: nn.Module | None = None, count: int = 8) -> Path:
    """The tiny SimpleBaseline's predictions on the first ``count`` validation people."""
    if model is None:
        from course_lib import zoo

        model = zoo.pretrained("simplebaseline_tiny", progress=False)
    val = training.top_down_data(data.default_split_dir("single/val"), *training.model_sizes(model), limit=count)
    run = training.evaluate(model, val, coco_ap=False)
    p = run.predictions
    fig, axes = plt.subplots(2, (count + 1) // 2, figsize=(1.6 * ((count + 1) // 2), 4.2))
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= len(p.keypoints):
            continue
        viz.show_image(val.samples[i]["image"], ax)
        viz.draw_pose(p.keypoints[i], (p.gt_visibility[i] > 0).astype(float), ax=ax, linewidth=1.2, markersize=8)
        x, y, w, h = p.boxes[i]
        side = 1.3 * max(w, h)
        ax.set_xlim(x + w / 2 - side / 2, x + w / 2 + side / 2)
        ax.set_ylim(y + h / 2 + side / 2, y + h / 2 - side / 2)
        ax.set_title(f"error {np.nanmean(p.errors[i]):.1f} px", fontsize=8)
    fig.suptitle(f"Chapters 06 and 08: the tiny SimpleBaseline on validation people "
                 f"(PCK@0.2 {run.metrics['pck@0.2']:.2f})", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, "predictions")


def decoding_figure(out_dir: Path, num_points: int = 200) -> Path:
    """Part 1 (chapters 00-04): mean decoding error of exact Gaussian targets against the stride."""
    rng = np.random.default_rng(0)
    crop = (256, 192)
    points = rng.uniform([0, 0], [crop[1] - 1, crop[0] - 1], size=(num_points, 2))
    decoders = {"argmax": heatmaps.decode_argmax, "quarter offset": heatmaps.decode_quarter_offset,
                "DARK": lambda maps: heatmaps.decode_dark(maps, sigma=2.0)}
    strides = [1, 2, 4, 8]
    errors = {name: [] for name in decoders}
    for stride in strides:
        maps, _ = heatmaps.gaussian_heatmaps(points / stride, np.full(len(points), 2),
                                             (crop[0] // stride, crop[1] // stride), sigma=2.0, unbiased=True)
        for name, decode in decoders.items():
            found = np.asarray(decode(maps)[0]) * stride
            errors[name].append(float(np.linalg.norm(found - points, axis=1).mean()))
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for (name, values), marker in zip(errors.items(), "osD"):
        ax.plot(strides, values, marker=marker, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(strides, [str(s) for s in strides])
    ax.set_xlabel("heatmap stride")
    ax.set_ylabel("mean decoding error (input px)")
    ax.legend(fontsize=8)
    ax.set_title("Chapter 02: decoding error vs stride (exact targets)", fontsize=9)
    return _save(fig, out_dir, "decoding")


def roi_figure(out_dir: Path) -> Path:
    """Part 2 (chapters 05-07): a spot seen through a sliding box, by ROIPool and by ROIAlign."""
    columns = torch.arange(16.0)
    spot = torch.exp(-((columns[None, :] - 7.3) ** 2 + (columns[:, None] - 7.6) ** 2) / (2 * 0.8**2))[None, None]
    shifts = np.linspace(0, 2, 81)
    found = {"ROIPool": [], "ROIAlign": []}
    for shift in shifts:
        box = torch.tensor([[0.0, 4.0 + shift, 5.0, 10.0 + shift, 10.0]])  # 6 x 5 cells, feature units
        for name, pooled in (("ROIPool", ops.roi_pool(spot, box, 7)), ("ROIAlign", ops.roi_align(spot, box, 7, 1, 2))):
            profile = pooled[0, 0].sum(dim=0)
            found[name].append(float((profile * torch.arange(7.0)).sum() / profile.sum()))
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.plot(shifts, (7.3 - (4.0 + shifts)) * 7 / 6 - 0.5, "k:", label="exact crop")
    for name, values in found.items():
        ax.plot(shifts, values, label=name)
    ax.set_xlabel("box shift (feature cells)")
    ax.set_ylabel("spot position in the output (cells)")
    ax.legend(fontsize=8)
    ax.set_title("Chapter 05: ROIPool's roundings vs ROIAlign", fontsize=9)
    return _save(fig, out_dir, "roi_align")


def grouping_figure(out_dir: Path, limit: int | None = 40) -> Path:
    """Part 3 (chapters 08-09): COCO AP of tag grouping on simulated joint detections vs tag noise."""
    from course_lib import multi_person

    val = multi_person.load_scenes(data.default_split_dir("multi/val"), limit=limit)
    noise_levels = [0.1, 0.3, 0.5, 0.7, 1.0]
    scores = []
    for noise in noise_levels:
        results = []
        for n in range(len(val)):
            keypoints, visibility = val.people(n)
            simulated = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=noise,
                                                           location_noise=0.0, seed=n)
            people = grouping.group_by_tags(simulated.locations, simulated.scores, simulated.tags)
            points, point_scores, pose_score = grouping.grouped_to_poses(people)
            results += metrics.results_to_coco(points, point_scores, pose_score,
                                               np.full(len(people), val.image_ids[n]))
        scores.append(metrics.coco_keypoint_eval(val.ground_truth, results)["AP"])
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.plot(noise_levels, scores, marker="o")
    ax.set_xlabel("tag noise (standard deviation; people's tags 2 apart)")
    ax.set_ylabel("COCO AP of the grouped people")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Chapter 09: associative-embedding grouping ({len(val)} scenes)", fontsize=9)
    return _save(fig, out_dir, "grouping")


def make_figures(out_dir: str | os.PathLike, *, model: nn.Module | None = None, quick: bool = False) -> list[Path]:
    """Draw every figure of :data:`FIGURES` into ``out_dir`` (created); returns their paths.

    ``model``: the pose network of the prediction grid (default: the cached tiny SimpleBaseline).
    ``quick``: fewer points and scenes, same code path (for tests).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data.ensure_default_data()
    return [heatmap_figure(out_dir), prediction_grid(out_dir, model, count=4 if quick else 8),
            decoding_figure(out_dir, num_points=20 if quick else 200), roi_figure(out_dir),
            grouping_figure(out_dir, limit=3 if quick else 40)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the README's figures into a folder.")
    parser.add_argument("out_dir", nargs="?", default="docs/figures")
    parser.add_argument("--quick", action="store_true", help="fewer items and an untrained model (tests)")
    args = parser.parse_args(argv)
    model = None
    if args.quick:
        from course_lib import models

        torch.manual_seed(0)
        model = models.build("simplebaseline_tiny")
    for path in make_figures(args.out_dir, model=model, quick=args.quick):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
