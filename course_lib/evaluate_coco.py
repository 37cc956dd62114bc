"""Command line: COCO val the way SimpleBaseline and HRNet were scored, with the course's evaluator.

    python -m course_lib.evaluate_coco --model hrnet_w32 --weights pose_hrnet_w32_256x192.pth \\
        --data data/coco/val2017 --detections COCO_val2017_detections_AP_H_56_person.json --flip-test

``--data DIR`` is a folder laid out by ``data_scripts/coco.py`` (``annotations.json`` and
``images/``; prepare it with ``--all-images``: the papers scored all 5000 val images, and a
detection on an image without people still counts as a false positive).  ``--detections`` is
a COCO detection results file, e.g. the official person detections (human AP 56.4).

The steps are those of the official ``lib/core/function.py::validate`` and
``lib/dataset/coco.py::evaluate`` (``IMAGE_THRE`` 0, ``IN_VIS_THRE`` 0.2, ``OKS_THRE`` 0.9):

1. every person detection (category 1, score >= 0) becomes a crop (:mod:`course_lib.inference`:
   box to centre/scale with padding 1.25, the release's colour order, flip test, decoding);
2. **rescoring**: pose score = box score x the mean of the keypoint scores above 0.2;
3. **OKS-NMS** per image at 0.9 (``metrics.oks_nms``, the official order: best first, among
   equal scores the later pose first), with the crop's area (``w * h`` of the padded box) as
   the person's size;
4. the results, image by image in the order the detections file first names them, kept poses
   best first, scored by ``metrics.coco_keypoint_eval`` (equal to pycocotools' ``COCOeval``).

Expected with the released weights, 256x192, flip test, the official detections: SimpleBaseline-R50
70.4 AP, HRNet-W32 74.4 AP (Sun et al. 2019, Table 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from course_lib import inference, metrics
from course_lib.inference import KEYPOINT_THRESHOLD

OKS_THRESHOLD = 0.9  # the official OKS_THRE


def person_detections(path: str | Path, image_ids: set, threshold: float = 0.0) -> tuple[dict, int]:
    """The detections file as ``{image_id: [(box, score), ...]}`` in file order (people, score >= ``threshold``),
    and the number of detections left out because their image is not in the annotations."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--detections {path} could not be read as JSON: {error}") from None
    if not isinstance(entries, list):
        raise ValueError(f"--detections {path} must be a list of COCO detection results")
    found: dict = {}
    outside = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"image_id", "bbox", "score"} <= set(entry):
            raise ValueError(f"--detections {path}[{index}] needs image_id, bbox and score, got {entry!r}")
        if entry.get("category_id", 1) != 1 or float(entry["score"]) < threshold:
            continue
        if entry["image_id"] not in image_ids:
            outside += 1
            continue
        found.setdefault(entry["image_id"], []).append((list(map(float, entry["bbox"])), float(entry["score"])))
    return found, outside


def estimate_all(estimator: inference.PoseEstimator, data_dir: Path, detections: dict, file_names: dict,
                 progress: bool = True) -> list[dict]:
    """One record per detection: ``image_id``, ``keypoints (K, 3)`` (x, y, score), ``box_score``, ``area``."""
    from tqdm.auto import tqdm

    records = []
    for image_id, people in tqdm(detections.items(), unit="image", disable=not progress, file=sys.stderr):
        image = inference.read_image(data_dir / "images" / file_names[image_id])
        boxes = np.array([box for box, _ in people])
        found = inference.estimate(estimator, image, boxes, [score for _, score in people])
        for n in range(len(found)):
            records.append({"image_id": image_id, "box_score": float(found.box_scores[n]),
                            "keypoints": np.concatenate([found.keypoints[n], found.scores[n][:, None]], axis=1),
                            "area": float(np.prod(found.scales[n]))})
    return records


def rescore_and_suppress(records: list[dict], threshold: float = OKS_THRESHOLD) -> list[dict]:
    """Official rescoring and per-image OKS-NMS -> COCO results in the official order.

    ``score = box_score * mean{c_k : c_k > 0.2}`` (0 if none); then, per image in the order the
    records first name it, the poses kept by ``metrics.oks_nms`` at ``threshold``, best first.
    """
    by_image: dict = {}
    for record in records:
        by_image.setdefault(record["image_id"], []).append(record)
    results = []
    for image_id, people in by_image.items():
        points = np.stack([p["keypoints"] for p in people])  # (P, K, 3)
        scores = metrics.grmi_rescore(np.array([p["box_score"] for p in people]), points[..., 2], KEYPOINT_THRESHOLD)
        keep = metrics.oks_nms(points[..., :2], scores, np.array([p["area"] for p in people]), threshold)
        for k in keep:
            results.append({"image_id": image_id, "category_id": 1, "keypoints": points[k].ravel().tolist(),
                            "score": float(scores[k])})
    return results


def evaluate(estimator: inference.PoseEstimator, data_dir: str | Path, detections_file: str | Path, *,
             max_images: int | None = None, progress: bool = True) -> tuple[dict, list[dict], int]:
    """COCO AP of ``estimator`` on ``data_dir`` with the detected boxes -> (the ten numbers, the results, detections
    left out because their image is not in the annotations).  ``max_images`` keeps the first images named."""
    data_dir = Path(data_dir)
    annotations = data_dir / "annotations.json"
    if not annotations.is_file():
        raise ValueError(f"--data {data_dir} has no annotations.json (see data_scripts/coco.py)")
    truth = json.loads(annotations.read_text())
    file_names = {image["id"]: image["file_name"] for image in truth["images"]}
    detections, outside = person_detections(detections_file, set(file_names))
    if max_images is not None:
        detections = dict(list(detections.items())[:max_images])
        truth["images"] = [image for image in truth["images"] if image["id"] in detections]
        truth["annotations"] = [a for a in truth["annotations"] if a["image_id"] in detections]
    if not detections:
        raise ValueError(f"--detections {detections_file} has no person detection on the images of {data_dir}")
    results = rescore_and_suppress(estimate_all(estimator, data_dir, detections, file_names, progress))
    return metrics.coco_keypoint_eval(truth, results), results, outside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.evaluate_coco", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a preset of models.list_models() (a course checkpoint names its own)")
    parser.add_argument("--weights", type=Path, default=None, help="course checkpoint, official or MMPose file")
    parser.add_argument("--data", type=Path, required=True, help="folder with annotations.json and images/")
    parser.add_argument("--detections", type=Path, required=True, help="COCO person detection results (JSON)")
    parser.add_argument("--flip-test", action="store_true")
    parser.add_argument("--decoder", choices=inference.DECODERS, default="quarter_offset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-images", type=int, default=None, help="only the first N images with detections")
    parser.add_argument("--out", type=Path, default=None, help="write the results (COCO keypoint results) here")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the ten numbers")
    args = parser.parse_args(argv)
    try:
        estimator = inference.load_estimator(args.model, args.weights, decoder=args.decoder,
                                             flip_test=args.flip_test, device=args.device)
        stats, results, outside = evaluate(estimator, args.data, args.detections, max_images=args.max_images,
                                           progress=not args.json)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if outside:
        print(f"note: {outside} detections are on images that {args.data}/annotations.json does not list; "
              "they were left out (prepare val2017 with data_scripts/coco.py --all-images for the papers' numbers)",
              file=sys.stderr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results))
    print(json.dumps(stats) if args.json else metrics.format_coco_summary(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
