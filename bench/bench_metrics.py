"""Speed of the course's COCO keypoint evaluator against pycocotools, on identical numbers.

    python bench/bench_metrics.py            # 5,000 images, up to 20 detections each
    python bench/bench_metrics.py --quick    # 200 images, a few seconds

Both evaluators score the same generated ground truth and results
(:func:`course_lib.metrics.random_cases.random_keypoint_case`).  The course's time is the
whole call ``coco_keypoint_eval(gt, dt)``, reading the dicts included; pycocotools' time is
``evaluate() + accumulate() + summarize()`` with its printing silenced, after ``COCO`` and
``loadRes`` have indexed the data (that indexing is reported on its own line).  The goal is
a speed-up of at least 10x with all ten numbers identical.
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import time

from course_lib.metrics import SUMMARY_KEYS, coco_keypoint_eval
from course_lib.metrics.random_cases import random_keypoint_case

GOAL_SPEEDUP = 10.0


def _pycocotools(gt: dict, dt: list) -> tuple[dict, float, float]:
    """pycocotools' ten numbers, its evaluation time and its loading (indexing) time."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))  # loadRes writes into the results
        loading = time.perf_counter() - start
        start = time.perf_counter()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        evaluating = time.perf_counter() - start
    return dict(zip(SUMMARY_KEYS, (float(s) for s in evaluator.stats))), evaluating, loading


def _best_time(function, repeats: int) -> tuple[object, float]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def run(quick: bool = False) -> dict:
    """Time both evaluators on one generated set; print the figures and return them."""
    num_images = 200 if quick else 5000
    gt, dt = random_keypoint_case(
        seed=2024, num_images=num_images, max_people=8, max_detections=20, crowd_rate=0.03, unlabelled_rate=0.05
    )
    ours, ours_s = _best_time(lambda: coco_keypoint_eval(gt, dt), repeats=3)
    (theirs, theirs_s, loading_s), _ = _best_time(lambda: _pycocotools(gt, dt), repeats=3 if quick else 1)
    identical = ours == theirs
    speedup = theirs_s / ours_s
    print(f"COCO keypoint evaluation: {num_images} images, {len(gt['annotations'])} people, {len(dt)} detections")
    print(f"  course_lib coco_keypoint_eval (reading included): {ours_s:8.3f} s")
    print(f"  pycocotools evaluate+accumulate+summarize:       {theirs_s:8.3f} s")
    print(f"  pycocotools COCO + loadRes (not in the ratio):   {loading_s:8.3f} s")
    print(f"  speed-up: {speedup:.1f}x (goal >= {GOAL_SPEEDUP:.0f}x); ten numbers identical: {identical}")
    if not identical:
        for key in SUMMARY_KEYS:
            if ours[key] != theirs[key]:
                print(f"    {key}: course_lib {ours[key]!r} vs pycocotools {theirs[key]!r}")
    return {
        "images": num_images,
        "people": len(gt["annotations"]),
        "detections": len(dt),
        "course_lib_s": ours_s,
        "pycocotools_s": theirs_s,
        "pycocotools_loading_s": loading_s,
        "speedup": speedup,
        "goal_speedup": GOAL_SPEEDUP,
        "identical": identical,
        "AP": ours["AP"],
    }


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
