"""Command line: score COCO keypoint results with the course's evaluator.

    python -m course_lib.evaluate GT.json DT.json            # the 10-line table of pycocotools
    python -m course_lib.evaluate GT.json DT.json --json     # {"AP": ..., ..., "ARl": ...}

``GT.json`` is a COCO keypoint ground truth (``images``, ``annotations``, ``categories``);
``DT.json`` the results list that pycocotools' ``COCO.loadRes`` reads.  The numbers equal
``COCOeval(iouType='keypoints')``'s; see :mod:`course_lib.metrics.coco_eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from course_lib.metrics.coco_eval import coco_keypoint_eval, format_coco_summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 bad input, 2 bad usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.evaluate",
        description="COCO keypoint AP/AR of a results file, equal to pycocotools' COCOeval.",
    )
    parser.add_argument("gt", help="ground truth: COCO keypoint annotations (JSON)")
    parser.add_argument("dt", help="results: a JSON list of {image_id, category_id, keypoints, score}")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the ten numbers")
    args = parser.parse_args(argv)
    try:
        stats = coco_keypoint_eval(args.gt, args.dt)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(stats) if args.json else format_coco_summary(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
