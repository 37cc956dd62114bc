"""Evaluation metrics of 2D pose estimation (chapter 08), and OKS-NMS and rescoring (chapter 09).

=====================  ==================================================================
module                 what it holds
=====================  ==================================================================
``pck``                PCK, PCKh, PDJ, the PCK curve and AUC; the per-person normalisers
                       (box size, box diagonal, torso diameter, MPII head size)
``pcp``                PCP (strict) and PCPm
``oks``                object keypoint similarity, OKS-NMS, keypoint-aware rescoring
``coco_eval``          COCO keypoint AP/AR, equal to pycocotools to the last bit; the
                       101-point interpolated AP of one ranked list; arrays <-> COCO dicts
``error_classes``      Ronchi & Perona's error classes of each keypoint (good, jitter,
                       inversion, swap, miss)
``compare``            the same predictions under every metric; rescaled people, one bad
                       joint (chapter 08: ``from course_lib.metrics import compare``)
=====================  ==================================================================

Every function takes ``(N, K, 2)`` pixel keypoints ``x, y`` and ``(N, K)`` COCO visibility
(0 not labelled, 1 labelled but hidden, 2 visible) or booleans; a joint counts when the
ground truth labels it (``v > 0``).  The command line ``python -m course_lib.evaluate GT.json
DT.json`` prints the COCO summary.
"""

from course_lib.metrics.coco_eval import (
    SUMMARY_KEYS,
    KeypointEvalParams,
    KeypointEvaluation,
    average_precision,
    coco_keypoint_eval,
    evaluate_coco_keypoints,
    format_coco_summary,
    greedy_match,
    ground_truth_to_coco,
    interpolated_precision,
    pycocotools_keypoint_eval,
    results_to_coco,
    summarize_coco_keypoints,
)
from course_lib.metrics.error_classes import ERROR_CLASSES, error_class_shares, keypoint_error_classes
from course_lib.metrics.oks import grmi_rescore, object_keypoint_similarity, oks_matrix, oks_nms
from course_lib.metrics.pck import (
    MPII_HEAD_SIZE_FACTOR,
    KeypointAccuracy,
    PckCurve,
    bbox_size,
    box_diagonal,
    head_size,
    keypoint_names,
    pck,
    pck_auc,
    pckh,
    pdj,
    torso_diameter,
)
from course_lib.metrics.pcp import LimbAccuracy, pcp, pcpm

__all__ = [
    "ERROR_CLASSES",
    "error_class_shares",
    "keypoint_error_classes",
    "MPII_HEAD_SIZE_FACTOR",
    "SUMMARY_KEYS",
    "KeypointAccuracy",
    "KeypointEvalParams",
    "KeypointEvaluation",
    "LimbAccuracy",
    "PckCurve",
    "average_precision",
    "bbox_size",
    "box_diagonal",
    "coco_keypoint_eval",
    "evaluate_coco_keypoints",
    "format_coco_summary",
    "greedy_match",
    "grmi_rescore",
    "ground_truth_to_coco",
    "head_size",
    "interpolated_precision",
    "keypoint_names",
    "object_keypoint_similarity",
    "oks_matrix",
    "oks_nms",
    "pck",
    "pck_auc",
    "pckh",
    "pcp",
    "pcpm",
    "pdj",
    "pycocotools_keypoint_eval",
    "results_to_coco",
    "summarize_coco_keypoints",
    "torso_diameter",
]
