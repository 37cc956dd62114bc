"""Random COCO keypoint ground truths and results that exercise every rule of the evaluator.

Chapter 08 compares the course's evaluator with pycocotools on the same files; the tests
and ``bench/bench_metrics.py`` do it on many of these cases.  A case has people of every size
(small, medium and large, some exactly on the range bounds), crowd regions, people without
labelled keypoints, mixed visibility flags, images without people or without detections,
perfect, noisy, duplicated and spurious detections, more detections than COCO keeps, and
tied scores.  Everything is drawn from one seed.
"""

from __future__ import annotations

import numpy as np

from course_lib.keypoints import coco_category

# A standing person, keypoints as fractions of the person's height around the hip centre.
_TEMPLATE = np.array(
    [
        [0.00, -0.42], [0.03, -0.45], [-0.03, -0.45], [0.06, -0.43], [-0.06, -0.43],  # face
        [0.12, -0.30], [-0.12, -0.30], [0.16, -0.15], [-0.16, -0.15], [0.18, 0.00], [-0.18, 0.00],  # arms
        [0.08, 0.00], [-0.08, 0.00], [0.09, 0.25], [-0.09, 0.25], [0.09, 0.48], [-0.09, 0.48],  # legs
    ]
)


def random_keypoint_case(
    seed: int,
    num_images: int = 20,
    max_people: int = 6,
    max_detections: int = 25,
    *,
    crowd_rate: float = 0.08,
    unlabelled_rate: float = 0.08,
    tie_rate: float = 0.3,
    result_boxes: bool = False,
    num_categories: int = 1,
) -> tuple[dict, list[dict]]:
    """A random ground truth (COCO dict) and results list (what ``COCO.loadRes`` takes).

    Args:
        seed: the random seed.
        num_images: images in the ground truth (their ids are not 1..n and not in order).
        max_people: people per image are drawn from 0..max_people.
        max_detections: detections per image are capped here (COCO evaluates 20).
        crowd_rate: fraction of people that are crowd regions.
        unlabelled_rate: fraction of people without any labelled keypoint.
        tie_rate: probability that an image's scores are rounded to one decimal (ties).
        result_boxes: give every result a ``bbox`` (then loadRes takes its area from it).
        num_categories: 1 (people only) or more (copies of the person category, ids 1, 2, ...).
    """
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(np.arange(1, 10 * num_images + 10), size=num_images, replace=False).tolist()
    categories = [dict(coco_category(), id=c + 1, name=f"person{c or ''}") for c in range(num_categories)]
    annotations, results = [], []
    for image_id in image_ids:
        num_people = int(rng.integers(0, max_people + 1))
        people = [_random_person(rng) for _ in range(num_people)]
        for keypoints, flags, box, area in people:
            crowd = rng.random() < crowd_rate
            if crowd or rng.random() < unlabelled_rate:
                flags = np.zeros(17, dtype=int)
                keypoints = np.zeros((17, 2))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, num_categories + 1)),
                    "keypoints": _triplets(keypoints, flags),
                    "num_keypoints": int(np.count_nonzero(flags)),
                    "bbox": box,
                    "area": area,
                    "iscrowd": int(crowd),
                }
            )
        results += _random_detections(rng, image_id, people, max_detections, tie_rate, result_boxes, num_categories)
    rng.shuffle(annotations)
    rng.shuffle(results)
    images = [{"id": i, "width": 640, "height": 480, "file_name": f"{i:012d}.jpg"} for i in image_ids]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _random_person(rng: np.random.Generator):
    """Keypoints ``(17, 2)``, flags ``(17,)``, box and area of one person of random size."""
    if rng.random() < 0.1:  # exactly on a range bound: area = 32^2 or 96^2
        area = float(rng.choice([32**2, 96**2]))
        height = np.sqrt(area) * rng.uniform(1.2, 1.6)
    else:
        height = float(np.exp(rng.uniform(np.log(15), np.log(400))))
        area = float(height**2 * rng.uniform(0.15, 0.4))
    centre = rng.uniform(0, 600, size=2)
    keypoints = centre + height * (_TEMPLATE + rng.normal(0, 0.03, size=(17, 2)))
    if rng.random() < 0.3:
        keypoints = np.round(keypoints)  # integer pixels, as in COCO files
    flags = rng.choice([0, 1, 2], size=17, p=[0.2, 0.2, 0.6])
    x0, y0 = keypoints.min(axis=0) - 0.05 * height
    x1, y1 = keypoints.max(axis=0) + 0.05 * height
    return keypoints, flags, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], area


def _random_detections(rng, image_id, people, max_detections, tie_rate, result_boxes, num_categories):
    detections = []
    for keypoints, _, box, area in people:
        if rng.random() < 0.15:
            continue  # a missed person
        for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):  # sometimes duplicates
            noise = rng.choice([0.0, 0.02, 0.05, 0.1, 0.3]) * np.sqrt(area)
            detections.append(keypoints + rng.normal(0, 1, size=(17, 2)) * noise)
    for _ in range(int(rng.integers(0, 4))):  # spurious poses
        height = float(np.exp(rng.uniform(np.log(15), np.log(300))))
        detections.append(rng.uniform(0, 600, size=2) + height * (_TEMPLATE + rng.normal(0, 0.1, size=(17, 2))))
    if rng.random() < 0.1 and detections:  # a crowded image: more detections than COCO keeps
        detections += [detections[0] + rng.normal(0, 3, size=(17, 2)) for _ in range(int(rng.integers(15, 30)))]
    detections = detections[:max_detections]
    scores = rng.random(len(detections))
    if rng.random() < tie_rate:
        scores = np.round(scores, 1)
    out = []
    for pose, score in zip(detections, scores):
        result = {
            "image_id": image_id,
            "category_id": int(rng.integers(1, num_categories + 1)),
            "keypoints": _triplets(pose, rng.uniform(0, 1, size=17)),
            "score": float(score),
        }
        if result_boxes:
            x0, y0 = pose.min(axis=0)
            x1, y1 = pose.max(axis=0)
            result["bbox"] = [float(x0), float(y0), float(x1 - x0) * 1.2, float(y1 - y0) * 1.2]
        out.append(result)
    return out


def _triplets(keypoints: np.ndarray, flags: np.ndarray) -> list:
    """``(17, 2)`` and ``(17,)`` -> COCO's flat ``[x1, y1, v1, x2, ...]`` with plain Python numbers."""
    out = []
    for (x, y), v in zip(keypoints.tolist(), np.asarray(flags).tolist()):
        if isinstance(v, int) and v == 0:
            x, y = 0, 0  # COCO writes unlabelled keypoints as 0, 0, 0
        out += [int(x) if float(x).is_integer() else x, int(y) if float(y).is_integer() else y, v]
    return out
