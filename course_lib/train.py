"""Command line: train a model of the course on a data folder and evaluate it.

    python -m course_lib.train --model simplebaseline_tiny --steps 1500
    python -m course_lib.train --model hrnet_tiny --steps 500 --device cuda --json
    python -m course_lib.train --model deeppose_tiny --max-seconds 180 --data data/synthetic/single
    python -m course_lib.train --model simplebaseline_tiny --steps 1500 --out runs/sb_tiny.pt
    python -m course_lib.train --model simplebaseline_r50 --pretrained auto --data data/coco --out runs/r50.pt

``--out FILE`` writes the trained model as a course checkpoint (weights, preset, input size,
keypoint set; no optimizer) that ``python -m course_lib.predict``, ``course_lib.export`` and
``zoo.load`` read.  ``--pretrained FILE|auto`` starts the backbone from ImageNet weights
(torchvision's ResNet file or HRNet's ImageNet file; ``auto``: torchvision's weight cache).

``--data DIR`` is a folder with ``train/annotations.json`` and ``val/annotations.json`` (COCO
keypoint format; default: the synthetic single-person set).  With ``--json`` the last line
printed is one JSON object with ``pck@0.2``, ``pck@0.1``, ``AP``, ``steps``, ``seconds``,
``images_per_second``, ``device`` and the other validation metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from course_lib import losses, models, training, weights
from course_lib.data import DATA_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=f"one of: {', '.join(models.list_models())}")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds of training")
    parser.add_argument("--data", type=Path, default=DATA_ROOT / "synthetic" / "single",
                        help="folder with train/ and val/ COCO-format splits (default: synthetic single-person)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, mps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--flip-test", action="store_true", help="evaluate with the flip test")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="save last.pt here (and resume from it)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--out", type=Path, default=None, help="write the trained model here (a course checkpoint)")
    parser.add_argument("--pretrained", default=None, help="ImageNet backbone weights: a file, or 'auto'")
    args = parser.parse_args(argv)

    if args.model not in models.list_models():
        parser.error(f"--model must be one of {', '.join(models.list_models())}, got {args.model!r}")
    for split in ("train", "val"):
        if not (args.data / split / "annotations.json").is_file():
            parser.error(f"--data {args.data} has no {split}/annotations.json (run `make data` for the default)")
    try:
        model = models.build(args.model, pretrained=args.pretrained)
        input_size, heatmap_size = training.model_sizes(model)
        train_data = training.top_down_data(args.data / "train", input_size, heatmap_size, augment=True, seed=args.seed)
        val_data = training.top_down_data(args.data / "val", input_size, heatmap_size)
        loss = losses.HeatmapLoss() if heatmap_size is not None else losses.RegressionLoss()
        history = training.fit(
            model, train_data, val_data, loss, args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            max_seconds=args.max_seconds, device=args.device, amp=not args.no_amp,
            checkpoint_dir=args.checkpoint_dir, checkpoint_every=100 if args.checkpoint_dir else None,
            resume=args.checkpoint_dir is not None, progress=not args.json,
        )
        scores = training.evaluate(model, val_data, flip_test=args.flip_test, device=args.device).metrics
        if args.out is not None:
            weights.save_model(args.out, model.cpu(), args.model, validation=scores)
    except (ValueError, TypeError, FloatingPointError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = {
        **{k: round(v, 5) for k, v in scores.items()},
        "model": args.model,
        "steps": len(history.steps),
        "seconds": round(history.seconds, 2),
        "images_per_second": round(history.images_per_second, 1),
        "device": history.device,
        "stopped_by": history.stopped_by,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:>{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
