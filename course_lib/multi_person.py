"""The top-down multi-person pipeline of chapter 09: detect, crop, estimate, suppress, score.

::

    image (H, W, 3)
      -> person detector               boxes [x, y, w, h] + box scores          detect_people
      -> one crop per box               center, scale (box at the model's aspect ratio, x 1.25)
      -> single-person pose network     keypoints in IMAGE pixels + keypoint scores   estimate_poses
      -> pose score                     box score, or keypoint-aware (G-RMI)     pose_scores
      -> OKS-NMS                        drop duplicate poses of one person       pose_nms
      -> COCO results                   [x1, y1, c1, ..., x17, y17, c17] + score  to_coco_results
      -> COCO AP                        metrics.coco_keypoint_eval               evaluate_poses

Top-down methods (G-RMI, Papandreou et al. CVPR 2017; Mask R-CNN; SimpleBaseline; HRNet)
all follow this plan; they differ in the detector and the pose network.  The details here
follow the official SimpleBaseline/HRNet code (``lib/core/function.py`` ``validate`` and
``lib/dataset/coco.py`` ``evaluate``): each pose is rescored as box score x the mean of its
confident keypoint scores (``metrics.grmi_rescore``), then OKS-NMS at 0.9 runs per image with
the crop area as the person's area.

Dimension letters: ``N`` images, ``P`` poses (one per detected box), ``K`` keypoints.
Boxes are COCO ``[x, y, w, h]`` in image pixels; keypoints ``(P, K, 2)`` image pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from course_lib import metrics
from course_lib.data import image_to_tensor, load_coco_keypoints
from course_lib.geometry import box_to_center_scale, crop_to_image
from course_lib.keypoints import COCO_SIGMAS
from course_lib.models.keypoint_heads import GRMIPoseNet
from course_lib.validation import check_array, check_choice, check_positive
from course_lib.top_down import TopDownDataset, model_sizes

SCORING_METHODS = ("box", "keypoints", "box x keypoints")


# =========================================================================== scenes
@dataclass
class Scenes:
    """Multi-person images and their ground truth.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 RGB.
        image_ids: ``(N,)`` the COCO image ids.
        boxes: one ``(M_i, 4)`` array of ground-truth person boxes per image (crowds left out).
        ground_truth: the COCO keypoint ground truth of these images (a dict).
    """

    images: np.ndarray
    image_ids: np.ndarray
    boxes: list[np.ndarray]
    ground_truth: dict

    def __len__(self) -> int:
        return len(self.images)

    def tensors(self) -> torch.Tensor:
        """The images as normalised model inputs ``(N, 3, H, W)`` (``data.image_to_tensor``)."""
        return image_to_tensor(self.images)

    def people(self, image_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth keypoints ``(M, K, 2)`` and visibility ``(M, K)`` of one image (crowds left out)."""
        image_id = int(self.image_ids[image_index])
        annotations = [a for a in self.ground_truth["annotations"]
                       if a["image_id"] == image_id and not a.get("iscrowd")]
        num_keypoints = len(self.ground_truth["categories"][0]["keypoints"])
        triplets = np.array([a["keypoints"] for a in annotations], dtype=float).reshape(-1, num_keypoints, 3)
        return triplets[..., :2], triplets[..., 2].astype(int)


def load_scenes(split_dir: str | os.PathLike, limit: int | None = None) -> Scenes:
    """Read a multi-person split (``data.default_split_dir("multi/val")``): images, boxes, ground truth.

    ``limit`` keeps the first images only; the ground truth is cut to match, so that AP is
    computed over exactly the images used.  All images must have the same size.
    """
    split_dir = Path(split_dir)
    coco = load_coco_keypoints(split_dir / "annotations.json")
    image_infos = coco["images"]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        image_infos = image_infos[:limit]
    if not image_infos:
        raise ValueError(f"{split_dir} has no images")
    folder = split_dir / "images" if (split_dir / "images").is_dir() else split_dir
    images, image_ids, boxes = [], [], []
    by_image: dict = {}
    for annotation in coco["annotations"]:
        if not annotation.get("iscrowd"):
            by_image.setdefault(annotation["image_id"], []).append(annotation["bbox"])
    for info in image_infos:
        bgr = cv2.imread(str(folder / info["file_name"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {info['id']}: {folder / info['file_name']}")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        image_ids.append(info["id"])
        boxes.append(np.asarray(by_image.get(info["id"], []), dtype=np.float64).reshape(-1, 4))
    if len({image.shape for image in images}) > 1:
        raise ValueError(f"the images of {split_dir} must all have the same size")
    kept = set(image_ids)
    ground_truth = dict(coco, images=list(image_infos),
                        annotations=[a for a in coco["annotations"] if a["image_id"] in kept])
    return Scenes(np.stack(images), np.asarray(image_ids), boxes, ground_truth)


# =========================================================================== detection
Detections = list[tuple[np.ndarray, np.ndarray]]  # one (boxes (D, 4), scores (D,)) pair per image


@torch.no_grad()
def detect_people(
    detector: nn.Module,
    images: torch.Tensor,
    *,
    threshold: float = 0.05,
    max_detections: int = 20,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> Detections:
    """Run the person detector (``models.detector.PersonDetector``) over normalised images ``(N, 3, H, W)``.

    Returns one ``(boxes (D, 4) [x, y, w, h], scores (D,))`` pair of NumPy arrays per image,
    best first (``models.detector.decode_detections``).  Boxes are clipped to the image and
    boxes less than one pixel wide or high are dropped.
    """
    from course_lib.models.detector import decode_detections
    from course_lib.runtime import resolve_device

    check_array(images, "images", (None, 3, None, None), allow_torch=True)
    device = resolve_device(device)
    detector.to(device).eval()
    height, width = images.shape[2:]
    out: Detections = []
    for start in range(0, len(images), batch_size):
        outputs = detector(images[start:start + batch_size].to(device))
        for boxes, scores in decode_detections(outputs, max_detections=max_detections, threshold=threshold,
                                               stride=detector.stride):
            boxes, scores = boxes.numpy().astype(np.float64), scores.numpy().astype(np.float64)
            x0 = np.clip(boxes[:, 0], -0.5, width - 0.5)
            y0 = np.clip(boxes[:, 1], -0.5, height - 0.5)
            x1 = np.clip(boxes[:, 0] + boxes[:, 2], -0.5, width - 0.5)
            y1 = np.clip(boxes[:, 1] + boxes[:, 3], -0.5, height - 0.5)
            boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
            keep = (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1)
            out.append((boxes[keep], scores[keep]))
    return out


def ground_truth_detections(scenes: Scenes) -> Detections:
    """The ground-truth boxes as detections with score 1: the pipeline with a perfect detector."""
    return [(boxes.copy(), np.ones(len(boxes))) for boxes in scenes.boxes]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(A, 4)`` with every box of ``b`` ``(B, 4)`` (``[x, y, w, h]``) -> ``(A, B)``."""
    a = check_array(a, "a", (None, 4), dtype=float)
    b = check_array(b, "b", (None, 4), dtype=float)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    bottom = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    overlap = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)  # (A, B)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - overlap
    return overlap / np.maximum(union, np.finfo(float).eps)


def detection_recall(detections: Detections, scenes: Scenes, iou: float = 0.5) -> float:
    """Fraction of ground-truth people that some detection covers with IoU >= ``iou``."""
    found = total = 0
    for (boxes, _), truth in zip(detections, scenes.boxes):
        total += len(truth)
        if len(truth) and len(boxes):
            found += int((box_iou(truth, boxes).max(axis=1) >= iou).sum())
    return found / max(total, 1)


# =========================================================================== poses
@dataclass
class Poses:
    """Poses of many images, one per detected box.

    Attributes:
        keypoints: ``(P, K, 2)`` image pixels.
        keypoint_scores: ``(P, K)`` the heatmap maxima (higher: more confident).
        box_scores: ``(P,)`` the detector's scores.
        boxes: ``(P, 4)`` the detected boxes ``[x, y, w, h]``.
        areas: ``(P,)`` the area of each crop in image pixels^2 (OKS-NMS's person size).
        image_ids: ``(P,)`` the image of each pose.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    box_scores: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    image_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.box_scores)

    def select(self, index: np.ndarray) -> "Poses":
        """The poses at ``index`` (an index array or a boolean mask)."""
        return Poses(*(getattr(self, f.name)[index] for f in fields(self)))


def crop_samples(scenes: Scenes, detections: Detections, num_keypoints: int = 17) -> list[dict]:
    """One sample dict per detected box, as :class:`~course_lib.top_down.TopDownDataset` takes them.

    The keypoints are unknown (zeros, visibility 0): the crops are for prediction only.
    """
    if len(detections) != len(scenes):
        raise ValueError(f"detections must have one entry per image ({len(scenes)}), got {len(detections)}")
    samples = []
    for n, (boxes, scores) in enumerate(detections):
        for box, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1)):
            samples.append({
                "image": scenes.images[n],
                "keypoints": np.zeros((num_keypoints, 2), np.float32),
                "visibility": np.zeros(num_keypoints, np.int64),
                "box": np.asarray(box, np.float32),
                "image_id": int(scenes.image_ids[n]),
                "score": float(score),
            })
    return samples


def estimate_poses(
    model: nn.Module,
    scenes: Scenes,
    detections: Detections,
    *,
    decoder: str = "dark",
    batch_size: int = 64,
    device: str | torch.device = "auto",
) -> Poses:
    """Run a single-person pose network on a crop of every detected box; keypoints come back in image pixels.

    Each box is widened to the model's aspect ratio and padded by 1.25
    (``geometry.box_to_center_scale``), warped to the model's input size, and the decoded
    heatmap peaks are mapped back with ``geometry.crop_to_image`` (``prediction.predict`` does
    the crops, the decoding with ``decoder`` and the mapping).  A
    :class:`~course_lib.models.keypoint_heads.GRMIPoseNet` is decoded by its own Hough
    voting instead, and its keypoint scores are the shares of a disk's votes.
    """
    from course_lib.prediction import predict

    input_size, heatmap_size = model_sizes(model)
    num_keypoints = int(getattr(model, "num_keypoints", 17))
    samples = crop_samples(scenes, detections, num_keypoints)
    if not samples:
        empty = np.zeros((0, num_keypoints, 2))
        return Poses(empty, np.zeros((0, num_keypoints)), np.zeros(0), np.zeros((0, 4)), np.zeros(0),
                     np.zeros(0, dtype=int))
    crops = TopDownDataset(samples, input_size=input_size, heatmap_size=heatmap_size)
    if isinstance(model, GRMIPoseNet):
        keypoints, keypoint_scores = _predict_grmi(model, crops, batch_size, device)
    else:
        predictions = predict(model, crops, decoder=decoder, batch_size=batch_size, device=device)
        keypoints, keypoint_scores = predictions.keypoints, predictions.scores
    boxes = np.stack([s["box"] for s in samples]).astype(np.float64)
    _, scale = box_to_center_scale(boxes, input_size[1] / input_size[0])
    return Poses(
        keypoints=keypoints,
        keypoint_scores=keypoint_scores,
        box_scores=np.array([s["score"] for s in samples]),
        boxes=boxes,
        areas=np.prod(scale, axis=1),
        image_ids=np.array([s["image_id"] for s in samples]),
    )


@torch.no_grad()
def _predict_grmi(model: GRMIPoseNet, crops: TopDownDataset, batch_size: int, device) -> tuple[np.ndarray, np.ndarray]:
    """G-RMI's heatmaps + offsets, decoded by Hough voting in crop pixels, mapped back to the image."""
    from course_lib.runtime import resolve_device

    device = resolve_device(device)
    model.to(device).eval()
    points, scores = [], []
    for batch in torch.utils.data.DataLoader(crops, batch_size=batch_size, shuffle=False):
        crop_points, crop_scores = model.decode(model(batch["image"].to(device)))  # (B, K, 2) input pixels
        points.append(crop_to_image(crop_points.cpu().double().numpy(), batch["center"].numpy(),
                                    batch["scale"].numpy(), batch["rotation"].numpy(), crops.input_size))
        scores.append(crop_scores.cpu().double().numpy())
    return np.concatenate(points), np.concatenate(scores)


def pose_scores(poses: Poses, method: str = "box x keypoints", keypoint_threshold: float = 0.2) -> np.ndarray:
    """The score that ranks each pose for AP -> ``(P,)``.

    * ``"box"``: the detector's box score, as if the pose were as good as its box;
    * ``"keypoints"``: G-RMI's keypoint-aware score (Papandreou et al. 2017), the mean over
      the K keypoints of their maximal heatmap activation, ``1/K sum_k max_x h_k(x)``;
    * ``"box x keypoints"``: the SimpleBaseline/HRNet variant, box score x the mean of the
      keypoint scores above ``keypoint_threshold`` (``metrics.grmi_rescore``).
    """
    check_choice(method, "method", SCORING_METHODS)
    if method == "box":
        return poses.box_scores.copy()
    if method == "keypoints":
        return poses.keypoint_scores.mean(axis=1) if len(poses) else np.zeros(0)
    return metrics.grmi_rescore(poses.box_scores, poses.keypoint_scores, keypoint_threshold)


def pose_nms(poses: Poses, scores: np.ndarray, threshold: float = 0.9, sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """OKS-NMS per image (``metrics.oks_nms``): indices of the poses kept, grouped by image.

    Within an image, the best-scoring pose suppresses every other pose whose OKS with it is
    above ``threshold`` (HRNet: 0.9), with the crop areas as the person sizes.
    """
    scores = check_array(scores, "scores", (len(poses),), dtype=float)
    check_positive(threshold, "threshold")
    kept = []
    for image_id in np.unique(poses.image_ids):
        members = np.flatnonzero(poses.image_ids == image_id)
        keep = metrics.oks_nms(poses.keypoints[members], scores[members], poses.areas[members], threshold, sigmas)
        kept.extend(members[keep].tolist())
    return np.array(kept, dtype=int)


def to_coco_results(poses: Poses, scores: np.ndarray) -> list[dict]:
    """The poses as COCO's results list (``metrics.results_to_coco``), ranked by ``scores``."""
    return metrics.results_to_coco(poses.keypoints, poses.keypoint_scores, scores, poses.image_ids)


def evaluate_poses(
    poses: Poses,
    ground_truth: dict,
    *,
    scoring: str = "box x keypoints",
    nms_threshold: float | None = 0.9,
) -> dict[str, float]:
    """Score the poses, optionally OKS-NMS them, and return COCO's ten numbers (``metrics.coco_keypoint_eval``)."""
    scores = pose_scores(poses, scoring)
    if nms_threshold is not None and len(poses):
        kept = pose_nms(poses, scores, nms_threshold)
        poses, scores = poses.select(kept), scores[kept]
    return metrics.coco_keypoint_eval(ground_truth, to_coco_results(poses, scores))


# =========================================================================== chapter 09's exercise
def crop_predictions_to_coco(
    heatmap_points: np.ndarray,
    keypoint_scores: np.ndarray,
    pose_scores: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    heatmap_size: Sequence[int],
    image_ids: np.ndarray,
) -> list[dict]:
    """Per-crop predictions (heatmap pixels) -> COCO results in image pixels.

    Crop ``p`` shows the image region of size ``scales[p] = (s_w, s_h)`` centred at
    ``centers[p]`` (no rotation); its heatmap is ``heatmap_size = (h, w)``.  A heatmap point
    ``(u, v)`` is in the image at

        x = c_x + (u - w / 2) * s_w / w,        y = c_y + (v - h / 2) * s_h / h

    (``geometry.crop_to_image`` with rotation 0), and each pose becomes
    ``{"image_id", "category_id": 1, "keypoints": [x1, y1, c1, ..., xK, yK, cK], "score"}``.

    Args:
        heatmap_points: ``(P, K, 2)`` heatmap pixels ``u, v``.
        keypoint_scores: ``(P, K)``; pose_scores: ``(P,)``.
        centers, scales: ``(P, 2)`` image pixels.
        heatmap_size: ``(h, w)``.
        image_ids: ``(P,)``.
    """
    dims: dict[str, int] = {}
    heatmap_points = check_array(heatmap_points, "heatmap_points", ("P", "K", 2), dims=dims, dtype=float)
    centers = check_array(centers, "centers", ("P", 2), dims=dims, dtype=float)
    scales = check_array(scales, "scales", ("P", 2), dims=dims, dtype=float)
    image_points = crop_to_image(heatmap_points, centers, scales, np.zeros(dims["P"]), tuple(heatmap_size))
    return metrics.results_to_coco(image_points, keypoint_scores, pose_scores, image_ids)


def best_oks(poses: Poses, ground_truth: dict, sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """OKS of each pose with the person of its image it matches best (0 when the image has nobody) -> ``(P,)``.

    A diagnostic, not COCO's matching: two poses may both claim the same person here.
    Crowd regions and people without labelled keypoints are left out.
    """
    num_keypoints = len(sigmas)
    people: dict = {}
    for annotation in ground_truth["annotations"]:
        triplets = np.asarray(annotation["keypoints"], float).reshape(num_keypoints, 3)
        if annotation.get("iscrowd") or not (triplets[:, 2] > 0).any():
            continue
        people.setdefault(annotation["image_id"], []).append((triplets, float(annotation["area"])))
    out = np.zeros(len(poses))
    for image_id in np.unique(poses.image_ids):
        members = np.flatnonzero(poses.image_ids == image_id)
        truth = people.get(int(image_id), [])
        if not truth:
            continue
        triplets = np.stack([t for t, _ in truth])  # (G, K, 3)
        oks = metrics.oks_matrix(poses.keypoints[members], triplets[..., :2], triplets[..., 2],
                                 np.array([a for _, a in truth]), sigmas)  # (D, G)
        out[members] = oks.max(axis=1)
    return out
