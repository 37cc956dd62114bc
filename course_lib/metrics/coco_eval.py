"""COCO keypoint AP and AR, equal to pycocotools' ``COCOeval(iouType='keypoints')`` (chapter 08).

COCO scores multi-person keypoint detection like object detection, with OKS in place of IoU.
The evaluation has five steps, one function each:

1. **Read** the ground truth and the results (:func:`_read_ground_truth`,
   :func:`_read_results`).  A ground truth is *ignored* (it may be matched, but it neither
   counts as a miss nor makes its match a hit) when it is a crowd region or has no labelled
   keypoint (``num_keypoints == 0``), or when its area is outside the area range being scored.
2. **Compare**: the OKS of every detection with every ground truth of its image
   (:func:`_oks_of_pairs`); only the 20 best-scoring detections of an image take part.
3. **Match** greedily, for each OKS threshold t: detections, best score first, each claim the
   unclaimed ground truth they overlap most with OKS >= t, preferring ground truths that are
   not ignored (:func:`greedy_match` is the one-image loop; :func:`_match_all_images` does
   every image, threshold and area range at once).
4. **Accumulate**: sort all detections of the data set by score; walking down that list,
   precision = hits / detections so far and recall = hits / ground truths; make precision
   non-increasing and read it at the 101 recall levels 0, 0.01, ..., 1 (:func:`_accumulate`).
5. **Summarise**: AP is the mean of those 101 precisions over the 10 thresholds 0.50:0.05:0.95;
   AR the mean of the final recalls (:func:`summarize_coco_keypoints`).

Every constant lives in :class:`KeypointEvalParams` (pycocotools' ``Params.setKpParams``).

Conventions of pycocotools that this module reproduces on purpose (they change numbers):

* results are read as ``COCO.loadRes`` reads them: a result's ``area`` (used only to drop
  unmatched detections outside an area range) is the area of the box spanned by *all* its K
  keypoints, labelled or not, and any ``area`` it carries is overwritten; but if the *first*
  result has a non-empty ``"bbox"``, loadRes takes the box branch instead and every result's
  area is its own box's ``w * h``;
* ties in score keep the order of the results list (a stable sort on ``-score``), per image
  and then over the whole data set, images in increasing id order;
* when a detection has several equally good ground truths, the one *later* in the
  annotation list wins;
* a match is stored as the ground truth's annotation id, and an id of 0 reads as "no match":
  a detection matched to the annotation with ``id == 0`` is counted as a false positive (a
  warning says so; number annotations from 1);
* only categories listed in the ground truth are evaluated, and AP/AR are averaged over those
  categories that have ground truths not ignored (a person-keypoint file has one, id 1);
* ground truths whose image is not in ``images`` or whose category is not in ``categories``
  are skipped (with a warning), as are results of unknown categories.

Where pycocotools cannot run, this module decides: no results at all gives AP = AR = 0 for
every area range that has ground truths (-1 where it has none, as always) with a warning;
results with a missing or NaN score, keypoints of the wrong length or with NaN, an image id
not in the ground truth, ground truths with missing fields, non-positive area or duplicate
ids raise ``ValueError`` naming the entry.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from course_lib.keypoints import COCO_SIGMAS
from course_lib.metrics.oks import _oks_pairs
from course_lib.validation import check_array


@dataclass(frozen=True)
class KeypointEvalParams:
    """Every constant of the COCO keypoint evaluation (pycocotools ``Params.setKpParams``).

    Attributes:
        sigmas: ``(K,)`` per-keypoint OKS constants.
        oks_thresholds: ``(T,)`` the OKS thresholds AP is averaged over, 0.50:0.05:0.95.
        recall_thresholds: ``(R,)`` the recall levels precision is read at, 0:0.01:1.
        max_detections: detections kept per image (best scores first).
        area_ranges: ``(label, low, high)`` in pixels^2, bounds included; the summary needs
            ``all``, ``medium`` and ``large`` (for keypoints pycocotools scores no "small"
            range: people under 32^2 pixels count only in "all").
    """

    sigmas: np.ndarray = field(default_factory=lambda: COCO_SIGMAS)
    # linspace, not arange: arange's points drift above 0.55, 0.6, ... (pycocotools' remark)
    oks_thresholds: np.ndarray = field(default_factory=lambda: np.linspace(0.5, 0.95, 10))
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 1.0, 101))
    max_detections: int = 20
    area_ranges: tuple[tuple[str, float, float], ...] = (
        ("all", 0**2, 1e5**2),
        ("medium", 32**2, 96**2),
        ("large", 96**2, 1e5**2),
    )

    @property
    def area_labels(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.area_ranges)


# The ten numbers of the summary: (name, AP or AR, OKS threshold or None for all, area range).
SUMMARY_LINES: tuple[tuple[str, str, float | None, str], ...] = (
    ("AP", "AP", None, "all"),
    ("AP50", "AP", 0.5, "all"),
    ("AP75", "AP", 0.75, "all"),
    ("APm", "AP", None, "medium"),
    ("APl", "AP", None, "large"),
    ("AR", "AR", None, "all"),
    ("AR50", "AR", 0.5, "all"),
    ("AR75", "AR", 0.75, "all"),
    ("ARm", "AR", None, "medium"),
    ("ARl", "AR", None, "large"),
)
SUMMARY_KEYS: tuple[str, ...] = tuple(line[0] for line in SUMMARY_LINES)


class KeypointEvaluation(NamedTuple):
    """Accumulated COCO keypoint evaluation (pycocotools' ``COCOeval.eval``, without maxDets axis).

    Attributes:
        precision: ``(T, R, C, A)`` interpolated precision per OKS threshold, recall level,
            category and area range; -1 where the category has no ground truth in the range.
        recall: ``(T, C, A)`` final recall, -1 likewise.
        category_ids: the ``C`` evaluated category ids (sorted).
        params: the constants used.
    """

    precision: np.ndarray
    recall: np.ndarray
    category_ids: tuple
    params: KeypointEvalParams


class _GroundTruth(NamedTuple):
    """The evaluated ground-truth annotations as arrays (G of them)."""

    image: np.ndarray  # (G,) index of the image in the sorted image ids
    category: np.ndarray  # (G,) category id
    keypoints: np.ndarray  # (G, K, 2)
    labelled: np.ndarray  # (G, K) v > 0
    area: np.ndarray  # (G,)
    box: np.ndarray  # (G, 4) [x, y, w, h], NaN where not given (not needed)
    crowd: np.ndarray  # (G,) iscrowd
    ignore: np.ndarray  # (G,) crowd or num_keypoints == 0
    zero_id: np.ndarray  # (G,) annotation id == 0 (pycocotools cannot tell its matches from misses)


class _Detections(NamedTuple):
    """The results as arrays (D of them), in the order of the results list."""

    image: np.ndarray  # (D,)
    category: np.ndarray  # (D,)
    keypoints: np.ndarray  # (D, K, 2)
    score: np.ndarray  # (D,)
    area: np.ndarray  # (D,)


# --------------------------------------------------------------------------- public API
def coco_keypoint_eval(
    gt: dict | str | os.PathLike,
    dt: list | dict | str | os.PathLike,
    params: KeypointEvalParams | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR: the ten numbers of pycocotools' summary, equal to them to the last bit.

    Args:
        gt: ground truth as a COCO dict (``images``, ``annotations``, ``categories``) or the
            path of its JSON file.
        dt: results as a list of ``{"image_id", "category_id", "keypoints": [x, y, v] * K,
            "score"}`` (what ``COCO.loadRes`` takes), a dict holding that list under
            ``"annotations"``, or the path of a JSON file with either.
        params: the evaluation constants (COCO's by default).

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` as floats,
        -1.0 where no ground truth falls in the bucket.
    """
    return summarize_coco_keypoints(evaluate_coco_keypoints(gt, dt, params))


def evaluate_coco_keypoints(
    gt: dict | str | os.PathLike,
    dt: list | dict | str | os.PathLike,
    params: KeypointEvalParams | None = None,
) -> KeypointEvaluation:
    """Steps 1 to 4: precision and recall per threshold, recall level, category and area range."""
    params = KeypointEvalParams() if params is None else params
    image_ids, category_ids, ground_truth = _read_ground_truth(gt, params)
    detections = _read_results(dt, {image_id: i for i, image_id in enumerate(image_ids)}, params)
    shape = (len(params.oks_thresholds), len(params.recall_thresholds), len(category_ids), len(params.area_ranges))
    precision = -np.ones(shape)  # (T, R, C, A); -1 marks "no ground truth here"
    recall = -np.ones((shape[0], shape[2], shape[3]))  # (T, C, A)
    for c, category_id in enumerate(category_ids):
        gts = _select(ground_truth, ground_truth.category == category_id)
        dts = _select(detections, detections.category == category_id)
        precision[:, :, c, :], recall[:, c, :] = _evaluate_category(gts, dts, params)
    return KeypointEvaluation(precision, recall, tuple(category_ids), params)


def summarize_coco_keypoints(evaluation: KeypointEvaluation) -> dict[str, float]:
    """Step 5: the ten summary numbers (pycocotools ``COCOeval.summarize`` for keypoints).

    AP = mean of the interpolated precisions over the OKS thresholds (or the one named), the
    101 recall levels and the categories, skipping the -1 entries; AR likewise over the
    final recalls.  A bucket with nothing but -1 entries is -1.
    """
    params = evaluation.params
    stats = {}
    for name, kind, threshold, area in SUMMARY_LINES:
        a = params.area_labels.index(area)
        values = evaluation.precision[:, :, :, a] if kind == "AP" else evaluation.recall[:, :, a]
        if threshold is not None:
            values = values[np.where(threshold == params.oks_thresholds)[0]]
        values = values[values > -1]
        stats[name] = float(np.mean(values)) if values.size else -1.0
    return stats


def format_coco_summary(stats: dict[str, float], params: KeypointEvalParams | None = None) -> str:
    """The ten lines pycocotools prints for keypoints, character for character.

    (pycocotools writes "IoU" in these lines even for keypoints, where the overlap is OKS.)
    """
    params = KeypointEvalParams() if params is None else params
    lines = []
    for name, kind, threshold, area in SUMMARY_LINES:
        title = "Average Precision" if kind == "AP" else "Average Recall"
        if threshold is None:
            iou = f"{params.oks_thresholds[0]:0.2f}:{params.oks_thresholds[-1]:0.2f}"
        else:
            iou = f"{threshold:0.2f}"
        lines.append(
            f" {title:<18} ({kind}) @[ IoU={iou:<9} | area={area:>6s} | "
            f"maxDets={params.max_detections:>3d} ] = {stats[name]:0.3f}"
        )
    return "\n".join(lines)


def greedy_match(
    oks: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """COCO's greedy matching in one image at one OKS threshold, as a plain loop.

    Args:
        oks: ``(D, G)`` OKS of the detections (sorted best score first) with the ground truths
            (in annotation order).
        gt_ignore: ``(G,)`` ground truths that are ignored (crowd, no keypoints, out of range).
        gt_crowd: ``(G,)`` crowd regions: they may absorb any number of detections.
        threshold: the OKS a match needs.

    Returns:
        ``(D,)`` index of the matched ground truth per detection, -1 for none.

    Each detection in turn takes, among the ground truths still free (crowds always are) with
    OKS >= threshold, the one with the highest OKS, later ones winning ties; it looks at ignored
    ground truths only when no regular one qualifies, so a detection on a real person is never
    "wasted" on a crowd region next to it.
    """
    oks = np.asarray(oks, dtype=float)
    gt_ignore = np.asarray(gt_ignore, dtype=bool)
    gt_crowd = np.asarray(gt_crowd, dtype=bool)
    taken = np.zeros(len(gt_ignore), dtype=bool)
    matches = np.full(oks.shape[0], -1)
    for d in range(oks.shape[0]):
        for ignored_pass in (False, True):  # regular ground truths first, then ignored ones
            best, best_oks = -1, threshold
            for g in range(oks.shape[1]):
                if gt_ignore[g] != ignored_pass or (taken[g] and not gt_crowd[g]):
                    continue
                if oks[d, g] >= best_oks:
                    best, best_oks = g, oks[d, g]
            if best >= 0:
                matches[d] = best
                taken[best] = True
                break
    return matches


def interpolated_precision(
    recall: np.ndarray, precision: np.ndarray, recall_thresholds: np.ndarray | None = None
) -> np.ndarray:
    """COCO's interpolated precision at the recall levels ``r`` (0, 0.01, ..., 1 by default) -> ``(R,)``.

    ``recall`` and ``precision`` ``(D,)`` describe the ranked detections: entry ``j`` is the
    recall and precision after the ``j + 1`` best-scoring detections (so ``recall`` never
    decreases).  Then

        p_interp(r) = max { precision_j : recall_j >= r }      (0 when no recall_j reaches r)

    the best precision at *any* recall of at least ``r``: the saw-tooth curve is replaced by
    its upper envelope from the right, and read at the first detection whose recall reaches
    ``r``.  COCO reads 101 levels (PASCAL VOC 2007 read 11).
    """
    levels = KeypointEvalParams().recall_thresholds if recall_thresholds is None else recall_thresholds
    dims: dict[str, int] = {}
    recall = check_array(recall, "recall", ("D",), dims=dims, dtype=float)
    precision = check_array(precision, "precision", ("D",), dims=dims, dtype=float)
    levels = check_array(levels, "recall_thresholds", (None,), dtype=float)
    if np.any(np.diff(recall) < 0):
        raise ValueError("recall must never decrease (entry j is the recall after the j + 1 best detections)")
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    return _read_at_recall_levels(recall, envelope, levels)


def average_precision(
    recall: np.ndarray, precision: np.ndarray, recall_thresholds: np.ndarray | None = None
) -> float:
    """AP of one ranked list: the mean of :func:`interpolated_precision` over the recall levels.

        AP = 1/101 * sum_{r in 0, 0.01, ..., 1} p_interp(r)

    COCO's AP averages this over the OKS thresholds 0.50:0.05:0.95 (and categories).
    """
    return float(np.mean(interpolated_precision(recall, precision, recall_thresholds)))


def ground_truth_to_coco(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    boxes: np.ndarray,
    areas: np.ndarray,
    image_ids: np.ndarray | None = None,
    *,
    iscrowd: np.ndarray | None = None,
) -> dict:
    """People as arrays -> a COCO keypoint ground truth dict (what :func:`coco_keypoint_eval` reads).

    Args:
        keypoints: ``(N, K, 2)`` image pixels; written as 0 where ``visibility`` is 0.
        visibility: ``(N, K)`` COCO flags 0/1/2.
        boxes: ``(N, 4)`` ``[x, y, w, h]``.
        areas: ``(N,)`` the people's (segmentation) areas, > 0.
        image_ids: ``(N,)`` the image of each person (default: one image per person, ids 1..N).
        iscrowd: ``(N,)`` crowd flags (default all 0).

    Annotation ids are 1..N (never 0: pycocotools reads a match to id 0 as no match).
    """
    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("N", "K", 2), dims=dims, dtype=float)
    visibility = check_array(visibility, "visibility", ("N", "K"), dims=dims).astype(int)
    boxes = check_array(boxes, "boxes", ("N", 4), dims=dims, dtype=float)
    areas = check_array(areas, "areas", ("N",), dims=dims, dtype=float)
    count = dims["N"]
    image_ids = np.arange(1, count + 1) if image_ids is None else check_array(image_ids, "image_ids", ("N",), dims=dims)
    iscrowd = np.zeros(count, dtype=int) if iscrowd is None else check_array(iscrowd, "iscrowd", ("N",), dims=dims)
    triplets = np.concatenate([np.where(visibility[..., None] > 0, keypoints, 0.0), visibility[..., None]], axis=-1)
    annotations = [
        {
            "id": n + 1,
            "image_id": int(image_ids[n]),
            "category_id": 1,
            "keypoints": [float(v) for v in triplets[n].ravel()],
            "num_keypoints": int(np.count_nonzero(visibility[n] > 0)),
            "bbox": [float(v) for v in boxes[n]],
            "area": float(areas[n]),
            "iscrowd": int(iscrowd[n]),
        }
        for n in range(count)
    ]
    images = [{"id": int(i)} for i in sorted(set(np.asarray(image_ids).tolist()))]
    category = {"id": 1, "name": "person", "supercategory": "person",
                "keypoints": [f"keypoint_{k}" for k in range(dims["K"])], "skeleton": []}
    if dims["K"] == 17:
        from course_lib.keypoints import coco_category

        category = coco_category()
    return {"images": images, "annotations": annotations, "categories": [category]}


def results_to_coco(
    keypoints: np.ndarray,
    keypoint_scores: np.ndarray,
    scores: np.ndarray,
    image_ids: np.ndarray,
    category_id: int = 1,
) -> list[dict]:
    """Predicted poses as arrays -> COCO's results list (what ``COCO.loadRes`` and :func:`coco_keypoint_eval` read).

    Each pose becomes ``{"image_id", "category_id", "keypoints": [x1, y1, c1, ..., xK, yK, cK],
    "score"}``: the third number of a keypoint is its confidence (pycocotools ignores it),
    ``score`` ranks the poses of the whole data set for AP.

    Args:
        keypoints: ``(P, K, 2)`` image pixels; keypoint_scores: ``(P, K)``; scores: ``(P,)``;
        image_ids: ``(P,)`` the image each pose belongs to.
    """
    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("P", "K", 2), dims=dims, dtype=float)
    keypoint_scores = check_array(keypoint_scores, "keypoint_scores", ("P", "K"), dims=dims, dtype=float)
    scores = check_array(scores, "scores", ("P",), dims=dims, dtype=float)
    image_ids = check_array(image_ids, "image_ids", ("P",), dims=dims)
    triplets = np.concatenate([keypoints, keypoint_scores[..., None]], axis=-1)  # (P, K, 3)
    return [
        {
            "image_id": int(image_ids[p]),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in triplets[p].ravel()],
            "score": float(scores[p]),
        }
        for p in range(dims["P"])
    ]


def pycocotools_keypoint_eval(gt: dict | str | os.PathLike, dt: list | str | os.PathLike) -> dict[str, float]:
    """The same ten numbers from pycocotools itself (``COCOeval(iouType="keypoints")``), its printing silenced.

    ``gt`` and ``dt`` are paths of JSON files or the loaded dict and list (copied first:
    ``loadRes`` writes into them).  Chapter 08 runs both evaluators on the same files.
    """
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(_load_json(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(_load_json(dt)))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(SUMMARY_KEYS, (float(s) for s in evaluator.stats)))


# --------------------------------------------------------------------------- 1. read
def _read_ground_truth(gt, params: KeypointEvalParams) -> tuple[list, list, _GroundTruth]:
    """Images (sorted ids), categories (sorted ids) and the annotations that take part."""
    data = _load_json(gt)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ValueError(f"gt must be a COCO dict with 'images', 'annotations', 'categories', got {kind}")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"gt must have a '{key}' list")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"gt 'annotations' must be a list, got {type(annotations).__name__}")
    image_ids = sorted(set(_column(data["images"], "id", lambda i: f"gt images[{i}]")))
    category_ids = sorted(set(_column(data["categories"], "id", lambda i: f"gt categories[{i}]")))
    image_index = {image_id: i for i, image_id in enumerate(image_ids)}
    used, index, images, cats = _used_annotations(annotations, image_index, set(category_ids))
    ids = _column(used, "id", lambda g: f"gt annotations[{index[g]}]")

    def where(g: int) -> str:
        return f"gt annotation id {ids[g]!r} (annotations[{index[g]}])"

    _check_unique_ids(ids, index, where)
    num_keypoints = len(params.sigmas)
    triplets = _numeric_column(_column(used, "keypoints", where), 3 * num_keypoints, "keypoints", where)
    triplets = triplets.reshape(len(used), num_keypoints, 3)  # (G, K, 3): x, y, v
    labelled = triplets[:, :, 2] > 0  # (G, K)
    area = _numeric_column(_column(used, "area", where), None, "area", where)
    bad = np.flatnonzero(area <= 0)
    if bad.size:
        raise ValueError(f"{where(bad[0])}: area must be > 0, got {area[bad[0]]}")
    labelled_count = _numeric_column(_column(used, "num_keypoints", where), None, "num_keypoints", where)
    crowd = _column(used, "iscrowd", where)
    bad = [g for g, value in enumerate(crowd) if value not in (0, 1)]  # True/False are fine too
    if bad:
        raise ValueError(f"{where(bad[0])}: iscrowd must be 0 or 1, got {crowd[bad[0]]!r}")
    crowd = np.array(crowd, dtype=bool)
    # The box matters only for ground truths without labelled keypoints (the enlarged-box rule).
    box = np.full((len(used), 4), np.nan)
    needed = np.flatnonzero(~labelled.any(axis=1))
    boxes = _column([used[g] for g in needed], "bbox", lambda i: where(needed[i]))
    box[needed] = _numeric_column(boxes, 4, "bbox", lambda i: where(needed[i])).reshape(-1, 4)
    ground_truth = _GroundTruth(
        image=np.array([image_index[images[i]] for i in index], dtype=int),
        category=np.array([cats[i] for i in index]),
        keypoints=triplets[:, :, :2],
        labelled=labelled,
        area=area,
        box=box,
        crowd=crowd,
        ignore=crowd | (labelled_count == 0),
        zero_id=np.array([ann_id == 0 for ann_id in ids], dtype=bool),
    )
    return image_ids, category_ids, ground_truth


def _used_annotations(annotations: list, image_index: dict, categories: set) -> tuple[list, list, list, list]:
    """The annotations of listed images and categories (pycocotools' getAnnIds), with a warning for the others.

    Returns ``(used, index, images, cats)``: the used annotations, their positions in the list,
    and every annotation's image id and category id.
    """
    images = _column(annotations, "image_id", lambda i: f"gt annotations[{i}]")
    cats = _column(annotations, "category_id", lambda i: f"gt annotations[{i}]")
    index = [i for i, (image, cat) in enumerate(zip(images, cats)) if image in image_index and cat in categories]
    if len(index) < len(annotations):
        warnings.warn(
            f"{len(annotations) - len(index)} ground-truth annotations belong to images or categories "
            "not listed in gt and are skipped (as pycocotools does)",
            stacklevel=4,
        )
    return [annotations[i] for i in index], index, images, cats


def _check_unique_ids(ids: list, index: list, where: Callable[[int], str]) -> None:
    """No two used annotations share an id; an id of 0 gets a warning (pycocotools reads it as "no match")."""
    if len(set(ids)) < len(ids):
        first = {}
        for g, ann_id in enumerate(ids):
            if ann_id in first:
                raise ValueError(f"{where(g)}: duplicate id, also at annotations[{index[first[ann_id]]}]")
            first[ann_id] = g
    if any(ann_id == 0 for ann_id in ids):
        warnings.warn(
            "a ground-truth annotation has id 0: pycocotools stores matches as annotation ids, so a "
            "detection matched to it counts as a false positive; number annotations from 1",
            stacklevel=4,
        )


def _read_results(dt, image_index: dict, params: KeypointEvalParams) -> _Detections:
    """The results with loadRes' conventions (see the module docstring), validated."""
    results = _load_json(dt)
    if isinstance(results, dict):
        if not isinstance(results.get("annotations"), list):
            raise ValueError("dt given as a dict must hold the results list under 'annotations'")
        results = results["annotations"]
    if not isinstance(results, list):
        raise ValueError(f"dt must be a list of results, got {type(results).__name__}")
    num_keypoints = len(params.sigmas)
    if not results:
        warnings.warn("no detections: AP and AR are 0 wherever there is ground truth", stacklevel=3)
        return _Detections(
            np.zeros(0, dtype=int), np.zeros(0), np.zeros((0, num_keypoints, 2)), np.zeros(0), np.zeros(0)
        )

    # loadRes looks at the first result only to decide how to read them all.
    first = results[0]
    if not isinstance(first, dict) or "caption" in first:
        raise ValueError("dt[0] is not a keypoint result")
    area_from_box = "bbox" in first and first["bbox"] != []
    if not area_from_box and ("segmentation" in first or "keypoints" not in first):
        raise ValueError("dt[0] is not a keypoint result: it needs 'keypoints' (segmentation is not supported)")

    def where(i: int) -> str:
        return f"dt[{i}]"

    images = list(map(image_index.get, _column(results, "image_id", where)))
    if None in images:
        i = images.index(None)
        raise ValueError(f"dt[{i}]: image_id {results[i]['image_id']!r} is not an image of the ground truth")
    categories = _column(results, "category_id", where)
    keypoints = _numeric_column(_column(results, "keypoints", where), 3 * num_keypoints, "keypoints", where)
    keypoints = keypoints.reshape(len(results), num_keypoints, 3)  # (D, K, 3): x, y, score
    score = _numeric_column(_column(results, "score", where), None, "score", where)
    if area_from_box:
        box = _numeric_column(_column(results, "bbox", where), 4, "bbox", where)  # (D, 4)
        area = box[:, 2] * box[:, 3]
    else:  # the box spanned by all K keypoints, labelled or not
        x, y = keypoints[:, :, 0], keypoints[:, :, 1]
        area = (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))
    return _Detections(
        image=np.array(images, dtype=int),
        category=np.array(categories),
        keypoints=keypoints[:, :, :2],
        score=score,
        area=area,
    )


# --------------------------------------------------------------------------- 2.-4. one category
def _evaluate_category(gts: _GroundTruth, dts: _Detections, params: KeypointEvalParams):
    """Precision ``(T, R, A)`` and recall ``(T, A)`` of one category."""
    low = np.array([lo for _, lo, _ in params.area_ranges])  # (A,)
    high = np.array([hi for _, _, hi in params.area_ranges])  # (A,)
    # A ground truth is ignored in an area range when it is ignored anyway or its area is outside.
    gt_outside = (gts.area[None, :] < low[:, None]) | (gts.area[None, :] > high[:, None])  # (A, G)
    gt_ignored = gts.ignore[None, :] | gt_outside  # (A, G)
    dt_outside = (dts.area[None, :] < low[:, None]) | (dts.area[None, :] > high[:, None])  # (A, D)

    # Per image, detections best score first (ties: list order), at most max_detections.
    order = np.lexsort((np.arange(len(dts.score)), -dts.score, dts.image))  # by image, then score, then list position
    dts = _select(dts, order)
    dt_outside = dt_outside[:, order]
    first_of_image = np.searchsorted(dts.image, dts.image, side="left")
    rank = np.arange(len(dts.image)) - first_of_image  # 0 for the best detection of each image
    kept = rank < params.max_detections
    dts, dt_outside, rank = _select(dts, kept), dt_outside[:, kept], rank[kept]

    # Ground truths grouped by image, in annotation order within an image.
    gt_order = np.argsort(gts.image, kind="stable")
    gts, gt_ignored = _select(gts, gt_order), gt_ignored[:, gt_order]

    pair_dt, pair_gt, pair_oks = _oks_of_pairs(gts, dts, rank, params)
    matched = _match_all_images(pair_dt, pair_gt, pair_oks, rank, gt_ignored, gts.crowd, len(dts.image), params)

    # Look up the matched ground truth of every (range, threshold, detection); index -1 ("no
    # match") reads the extra last column, which says "not ignored, id not 0".
    num_ranges = len(params.area_ranges)
    ignored_of_match = np.concatenate([gt_ignored, np.zeros((num_ranges, 1), bool)], axis=1)[
        np.arange(num_ranges)[:, None, None], matched
    ]  # (A, T, D)
    zero_id_of_match = np.append(gts.zero_id, False)[matched]  # (A, T, D)
    # pycocotools records a match as the ground truth's id, so a match to id 0 looks unmatched.
    counted_match = (matched >= 0) & ~zero_id_of_match
    # Detections matched to ignored ground truths, and unmatched ones outside the area range, do not count.
    dt_ignored = ignored_of_match | (~counted_match & dt_outside[:, None, :])  # (A, T, D)
    true_positive = counted_match & ~dt_ignored
    false_positive = ~counted_match & ~dt_ignored
    num_positives = np.count_nonzero(~gt_ignored, axis=1)  # (A,) ground truths that count
    return _accumulate(true_positive, false_positive, dts.score, num_positives, params)


def _oks_of_pairs(gts: _GroundTruth, dts: _Detections, rank: np.ndarray, params: KeypointEvalParams):
    """OKS of every (kept detection, ground truth of the same image) pair that could ever match.

    Pairs come out ordered by detection rank, then image, then ground truth, so that the
    matching can take "the d-th best detection of every image" as one contiguous slice.
    Pairs with OKS below the lowest threshold can never match and are dropped.
    """
    num_images = int(max(dts.image.max(initial=-1), gts.image.max(initial=-1))) + 1
    gt_count = np.bincount(gts.image, minlength=num_images)  # (I,)
    gt_start = np.concatenate([[0], np.cumsum(gt_count)[:-1]])  # (I,) gts are grouped by image
    by_rank = np.lexsort((dts.image, rank))  # detections ordered by rank, then image
    by_rank = by_rank[gt_count[dts.image[by_rank]] > 0]  # only images with ground truth
    per_dt = gt_count[dts.image[by_rank]]  # pairs of each detection
    pair_dt = np.repeat(by_rank, per_dt)  # (P,)
    offset = np.arange(len(pair_dt)) - np.repeat(np.cumsum(per_dt) - per_dt, per_dt)
    pair_gt = gt_start[dts.image[pair_dt]] + offset  # (P,)

    near = _could_reach(gts, dts, pair_dt, pair_gt, params.sigmas, params.oks_thresholds.min())
    pair_dt, pair_gt = pair_dt[near], pair_gt[near]

    pair_oks = np.empty(len(pair_dt))
    chunk = 1 << 15  # pairs per block, to bound the memory of the (P, K) temporaries
    for start in range(0, len(pair_dt), chunk):
        d, g = pair_dt[start : start + chunk], pair_gt[start : start + chunk]
        pair_oks[start : start + chunk] = _oks_pairs(
            dts.keypoints[d], gts.keypoints[g], gts.labelled[g], gts.area[g], gts.box[g], params.sigmas
        )
    useful = pair_oks >= params.oks_thresholds.min()
    return pair_dt[useful], pair_gt[useful], pair_oks[useful]


def _could_reach(gts, dts, pair_dt, pair_gt, sigmas, lowest_threshold) -> np.ndarray:
    """Pairs ``(P,)`` that might reach OKS >= ``lowest_threshold``; the others surely do not.

    OKS is a mean of terms exp(-e_i), so it reaches t only if some term does: some keypoint
    has d_i^2 <= 8 sigma_i^2 (area + eps) ln(1/t), i.e. lies within R = sigma_max *
    sqrt(8 area ln(1/t)) of its target (a keypoint, or the enlarged box of a ground truth
    without labelled keypoints).  Then the detection's keypoint box, grown by R, meets the
    box of those targets.  Testing that costs four comparisons per pair instead of an OKS,
    and, far apart people being the common case, spares most OKS computations; the numbers
    do not change (a small margin keeps rounding on the safe side).
    """
    if not 0 < lowest_threshold < 1:
        return np.ones(len(pair_dt), dtype=bool)
    reach = np.max(sigmas) * np.sqrt(8 * (gts.area + np.spacing(1)) * np.log(1 / lowest_threshold))
    reach = (reach * (1 + 1e-6) + 1e-6)[pair_gt]  # (P,)
    no_labels = ~gts.labelled.any(axis=1)  # (G,)
    near = np.ones(len(pair_dt), dtype=bool)
    for axis in (0, 1):  # x, then y
        # Extent of each ground truth's targets: its labelled keypoints, or its enlarged box.
        coordinate = gts.keypoints[:, :, axis]  # (G, K)
        low = np.where(gts.labelled, coordinate, np.inf).min(axis=1)  # (G,)
        high = np.where(gts.labelled, coordinate, -np.inf).max(axis=1)
        start, size = gts.box[no_labels, axis], gts.box[no_labels, axis + 2]
        low[no_labels], high[no_labels] = start - size, start + 2 * size
        detected = dts.keypoints[:, :, axis]  # (D, K)
        near &= detected.min(axis=1)[pair_dt] - reach <= high[pair_gt]
        near &= detected.max(axis=1)[pair_dt] + reach >= low[pair_gt]
    return near


def _match_all_images(pair_dt, pair_gt, pair_oks, rank, gt_ignored, gt_crowd, num_dts, params):
    """:func:`greedy_match` for every image, OKS threshold and area range at once -> ``(A, T, D)``.

    Step d handles the d-th best detection of every image in parallel: each looks at its
    candidate pairs (one contiguous segment of the pair list), and the reductions over a
    segment (``np.*.reduceat``) pick its ground truth exactly as the loop would.
    """
    thresholds = params.oks_thresholds
    num_ranges, num_gts = gt_ignored.shape
    matched = np.full((num_ranges, len(thresholds), num_dts), -1)  # (A, T, D)
    taken = np.zeros((num_ranges, len(thresholds), num_gts), dtype=bool)  # (A, T, G)
    pair_rank = rank[pair_dt]
    for d in range(params.max_detections):
        in_step = np.flatnonzero(pair_rank == d)
        if in_step.size == 0:
            continue
        dt, gt, oks = pair_dt[in_step], pair_gt[in_step], pair_oks[in_step]  # (P_d,) each
        new_detection = np.r_[True, dt[1:] != dt[:-1]]
        segment_start = np.flatnonzero(new_detection)  # (S,) first pair of each detection
        segment = np.cumsum(new_detection) - 1  # (P_d,) which detection a pair belongs to

        free = ~taken[:, :, gt] | gt_crowd[gt]  # (A, T, P_d) crowds can be matched again
        good_enough = oks[None, None, :] >= thresholds[None, :, None]  # (1, T, P_d)
        ignored = gt_ignored[:, None, gt]  # (A, 1, P_d)
        candidate = free & good_enough
        regular, fallback = candidate & ~ignored, candidate & ignored
        # Ignored ground truths are looked at only when no regular one qualifies.
        any_regular = np.logical_or.reduceat(regular, segment_start, axis=2)  # (A, T, S)
        candidate = np.where(any_regular[:, :, segment], regular, fallback)  # (A, T, P_d)
        value = np.where(candidate, oks, -np.inf)
        best = np.maximum.reduceat(value, segment_start, axis=2)  # (A, T, S)
        is_best = candidate & (value == best[:, :, segment])
        position = np.where(is_best, np.arange(len(gt)), -1)
        chosen = np.maximum.reduceat(position, segment_start, axis=2)  # (A, T, S) last best, -1 none

        found = chosen >= 0
        choice = np.where(found, gt[np.maximum(chosen, 0)], -1)  # (A, T, S) ground-truth index
        matched[:, :, dt[segment_start]] = choice
        a, t, _ = np.nonzero(found)
        taken[a, t, choice[found]] = True
    return matched


def _accumulate(true_positive, false_positive, score, num_positives, params):
    """Precision ``(T, R, A)`` at the recall levels, and final recall ``(T, A)``, of one category."""
    num_thresholds, num_recalls = len(params.oks_thresholds), len(params.recall_thresholds)
    num_ranges = len(params.area_ranges)
    precision = -np.ones((num_thresholds, num_recalls, num_ranges))
    recall = -np.ones((num_thresholds, num_ranges))
    # All detections of the data set, best score first; ties keep image order, then rank.
    order = np.argsort(-score, kind="mergesort")
    for a in range(num_ranges):
        if num_positives[a] == 0:
            continue  # no ground truth in this range: precision and recall stay -1
        hits = np.cumsum(true_positive[a][:, order], axis=1).astype(float)  # (T, D)
        misses = np.cumsum(false_positive[a][:, order], axis=1).astype(float)  # (T, D)
        recall_curve = hits / num_positives[a]
        precision_curve = hits / (misses + hits + np.spacing(1))
        # Interpolate: precision at recall r is the best precision at any recall >= r.
        precision_curve = np.maximum.accumulate(precision_curve[:, ::-1], axis=1)[:, ::-1]
        num_dts = hits.shape[1]
        recall[:, a] = recall_curve[:, -1] if num_dts else 0
        for t in range(num_thresholds):
            precision[t, :, a] = _read_at_recall_levels(recall_curve[t], precision_curve[t], params.recall_thresholds)
    return precision, recall


def _read_at_recall_levels(recall: np.ndarray, envelope: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Interpolated precision ``(R,)``: the envelope at the first detection whose recall reaches each level.

    ``envelope`` is already non-increasing; levels that are never reached get 0.
    """
    index = np.searchsorted(recall, levels, side="left")
    reached = index < len(recall)
    out = np.zeros(len(levels))
    out[reached] = envelope[index[reached]]
    return out


# --------------------------------------------------------------------------- small helpers
def _select(arrays: NamedTuple, which: np.ndarray):
    """The same NamedTuple of arrays, restricted to ``which`` (a mask or an index array)."""
    return type(arrays)(*(column[which] for column in arrays))


def _load_json(source):
    if isinstance(source, (str, os.PathLike)):
        with open(source) as file:
            return json.load(file)
    return source


def _field(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a dict, got {type(entry).__name__}")
    if key not in entry:
        raise ValueError(f"{where} has no '{key}'")
    return entry[key]


def _column(entries: list, key: str, where: Callable[[int], str]) -> list:
    """``[entry[key] for entry in entries]``, or a ValueError naming the first entry without it."""
    try:
        values = list(map(itemgetter(key), entries))
        if key in ("id", "image_id", "category_id"):
            hash(tuple(values))  # ids must be usable as dictionary keys
        return values
    except (KeyError, TypeError, IndexError):
        for i, entry in enumerate(entries):
            value = _field(entry, key, where(i))
            try:
                hash(value)
            except TypeError:
                raise ValueError(f"{where(i)}: {key} must be a number, got {value!r}") from None
        raise


def _numeric_column(values: list, width: int | None, name: str, where: Callable[[int], str]) -> np.ndarray:
    """One field of many entries -> float array ``(N,)`` or ``(N, width)``; errors name the entry.

    The fast path converts everything at once; only when that fails do we walk the entries
    to find the first one that is not a (list of ``width``) finite number(s).
    """
    try:
        if width is None:
            array = np.fromiter(values, dtype=float, count=len(values))
        elif set(map(len, values)) <= {width}:
            array = np.fromiter(chain.from_iterable(values), dtype=float, count=len(values) * width)
            array = array.reshape(len(values), width)
        else:
            array = None
        if array is not None and np.isfinite(array).all():
            return array
    except (TypeError, ValueError):  # not numbers, or not lists
        pass
    for i, value in enumerate(values):
        if width is not None:
            if not isinstance(value, (list, tuple)) or len(value) != width:
                got = f"{len(value)} numbers" if isinstance(value, (list, tuple)) else repr(value)
                raise ValueError(f"{where(i)}: {name} must be a list of {width} numbers, got {got}")
        for item in value if width is not None else [value]:
            if isinstance(item, bool) or not isinstance(item, (int, float, np.integer, np.floating)):
                raise ValueError(f"{where(i)}: {name} must hold numbers, got {item!r}")
            if not np.isfinite(item):
                raise ValueError(f"{where(i)}: {name} must be finite, got {item!r}")
    return np.array(values, dtype=float).reshape((len(values),) if width is None else (len(values), width))
