"""Command line: train a model of the course on a data folder and evaluate it.

    python -m course_lib.train --model simplebaseline_tiny --steps 1500
    python -m course_lib.train --model hrnet_tiny --steps 500 --device cuda --json
    python -m course_lib.train --model deeppose_tiny --max-seconds 180 --data data/synthetic/single
    python -m course_lib.train --model simplebaseline_tiny --steps 1500 --out runs/sb_tiny.pt
    python -m course_lib.train --model simplebaseline_r50 --pretrained auto --data data/coco --out runs/r50.pt
    python -m course_lib.train --recipe hrnet_w32_coco_256x192 --data data/coco --epochs 210
    torchrun --nproc_per_node=8 -m course_lib.train --recipe hrnet_w32_coco_256x192 --data data/coco --sync-bn

``--out FILE`` writes the trained model as a course checkpoint (weights, preset, input size,
keypoint set; no optimizer) that ``python -m course_lib.predict``, ``course_lib.export`` and
``zoo.load`` read.  ``--pretrained FILE|auto`` starts the backbone from ImageNet weights
(torchvision's ResNet file or HRNet's ImageNet file; ``auto``: torchvision's weight cache).
    python -m course_lib.train --recipe hrnet_w32_coco_256x192 --data data/coco --epochs 210
    torchrun --nproc_per_node=8 -m course_lib.train --recipe hrnet_w32_coco_256x192 --data data/coco --sync-bn

``--recipe NAME`` trains with an official recipe (:mod:`course_lib.recipes`): its model
(unless ``--model`` names another), input size, sigma, augmentation, Adam at its learning
rate with its step schedule, and its batch per GPU (unless ``--batch-size``); ``--epochs``
sets the length in epochs of the training split (the recipe's own by default).  Under
``torchrun`` each process trains its share of every batch (``--batch-size`` is per process);
only process 0 prints, evaluates and writes checkpoints.

``--data DIR`` is a folder with ``train/annotations.json`` and ``val/annotations.json`` (COCO
keypoint format; default: the synthetic single-person set), or with ``train2017/`` and
``val2017/`` as data_scripts/coco.py writes COCO.  With ``--json`` the last line
printed is one JSON object with ``pck@0.2``, ``pck@0.1``, ``AP``, ``steps``, ``seconds``,
``images_per_second``, ``device`` and the other validation metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from course_lib import losses, models, recipes, training, weights
from course_lib.data import DATA_ROOT
from course_lib.runtime import distributed_setup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help=f"one of: {', '.join(models.list_models())}")
    parser.add_argument("--recipe", default=None, help=f"an official recipe: {', '.join(recipes.list_recipes())}")
    parser.add_argument("--epochs", type=float, default=None, help="with --recipe: epochs (default: the recipe's)")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across the processes (CUDA, torchrun)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 1000, or --epochs)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds of training")
    parser.add_argument("--data", type=Path, default=DATA_ROOT / "synthetic" / "single",
                        help="folder with train/ and val/ COCO-format splits (default: synthetic single-person)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.add_argument("--batch-size", type=int, default=None, help="per process (default 32, or the recipe's)")
    parser.add_argument("--lr", type=float, default=None, help="default 2e-3, or the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--flip-test", action="store_true", help="evaluate with the flip test")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="save last.pt here (and resume from it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--out", type=Path, default=None, help="write the trained model here (a course checkpoint)")
    parser.add_argument("--pretrained", default=None, help="ImageNet backbone weights: a file, or 'auto'")
    args = parser.parse_args(argv)

    if args.recipe is not None and args.recipe not in recipes.list_recipes():
        parser.error(f"--recipe must be one of {', '.join(recipes.list_recipes())}, got {args.recipe!r}")
    recipe = recipes.get(args.recipe) if args.recipe is not None else None
    args.model = args.model or (recipe.model if recipe is not None else None)
    if args.model not in models.list_models():
        parser.error(f"--model must be one of {', '.join(models.list_models())}, got {args.model!r} (or give --recipe)")
    for split in ("train", "val"):
        if not (_split(args.data, split) / "annotations.json").is_file():
            parser.error(f"--data {args.data} has no {split}/annotations.json nor {split}2017/annotations.json "
                         "(run `make data` for the default, data_scripts/coco.py for COCO)")
    try:
        device, rank, world = distributed_setup(args.device)
        model, train_data, val_data, options = _prepare_run(args, recipe, world)
        loss = losses.HeatmapLoss() if training.model_sizes(model)[1] is not None else losses.RegressionLoss()
        history = training.fit(
            model, train_data, val_data if rank == 0 else None, loss, seed=args.seed,
            max_seconds=args.max_seconds, device=device, amp=not args.no_amp, sync_bn=args.sync_bn,
            checkpoint_dir=args.checkpoint_dir, checkpoint_every=100 if args.checkpoint_dir else None,
            resume=args.checkpoint_dir is not None, progress=not args.json and rank == 0, **options,
        )
        scores = training.evaluate(model, val_data, flip_test=args.flip_test, device=device).metrics if rank == 0 else {}
        if args.out is not None and rank == 0:
            weights.save_model(args.out, model.cpu(), args.model, validation=scores)
    except (ValueError, TypeError, FloatingPointError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank != 0:
        return 0
    _report(args, recipe, scores, history, world)
    return 0


def _report(args: argparse.Namespace, recipe, scores: dict, history: training.History, world: int) -> None:
    """Print the validation metrics and the run's figures (one JSON line with ``--json``)."""
    summary = {
        **{k: round(v, 5) for k, v in scores.items()},
        "model": args.model,
        "steps": len(history.steps),
        "seconds": round(history.seconds, 2),
        "images_per_second": round(history.images_per_second, 1),
        "device": history.device,
        "stopped_by": history.stopped_by,
        "processes": world,
        **({"recipe": recipe.name} if recipe is not None else {}),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:>{width}}  {value}")


def _prepare_run(args: argparse.Namespace, recipe: recipes.Recipe | None, world: int) -> tuple:
    """The model, the two data sets and ``fit``'s options, from the arguments and the recipe if any.

    A recipe brings its input size, sigma and augmentation, its batch per GPU, and Adam (no
    weight decay) at its learning rate divided by 10 at its milestones; ``--epochs`` counts
    steps in epochs of the training split at the global batch (per-process batch times the
    number of processes).
    """
    batch_size = args.batch_size or (recipe.batch_per_gpu if recipe is not None else 32)
    if recipe is None:
        model = models.build(args.model, seed=args.seed, pretrained=args.pretrained)
        input_size, heatmap_size = training.model_sizes(model)
        train_data = training.top_down_data(_split(args.data, "train"), input_size, heatmap_size, augment=True,
                                            seed=args.seed)
        options = {"lr": args.lr or 2e-3}
    else:
        model = models.build(args.model, seed=args.seed, pretrained=args.pretrained, input_size=recipe.input_size)
        input_size, heatmap_size = training.model_sizes(model)
        train_data = training.top_down_data(_split(args.data, "train"), input_size, heatmap_size, augment=True,
                                            seed=args.seed, **recipe.dataset_options())
        options = {"lr": args.lr or recipe.lr, "weight_decay": recipe.weight_decay, "schedule": "step",
                   "warmup": 0.0, "lr_milestones": recipe.milestones}
    steps = args.steps
    if steps is None and (recipe is not None or args.epochs is not None):
        epochs = args.epochs if args.epochs is not None else recipe.epochs
        steps = max(1, int(epochs * (len(train_data) // (batch_size * world))))
    val_data = training.top_down_data(_split(args.data, "val"), input_size, heatmap_size,
                                      sigma=recipe.sigma if recipe is not None else 2.0)
    return model, train_data, val_data, {**options, "steps": steps or 1000, "batch_size": batch_size}


def _split(data: Path, name: str) -> Path:
    """``data/name``, or COCO's ``data/name2017`` (as data_scripts/coco.py writes it) when only that exists."""
    return data / name if (data / name).is_dir() or not (data / f"{name}2017").is_dir() else data / f"{name}2017"


if __name__ == "__main__":
    sys.exit(main())
