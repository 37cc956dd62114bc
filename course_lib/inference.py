"""Pose estimation on photographs, as the papers' code runs it: boxes -> crops -> heatmaps -> image keypoints.

The command line ``python -m course_lib.predict`` is these functions over images, folders,
videos and webcams.  In a notebook::

    estimator = load_estimator("hrnet_w32", "pose_hrnet_w32_256x192.pth", flip_test=True)
    people = estimate(estimator, image, boxes)          # image: RGB uint8 (H, W, 3)
    people.keypoints  # (N, K, 2) image pixels;  people.scores  (N, K)

The pipeline of SimpleBaseline and HRNet (``lib/core/function.py::validate`` and the
functions it calls), step by step:

1. **box -> crop**: ``center, scale = box_to_center_scale(box, W / H, 1.25)`` (the official
   ``_box2cs`` with ``pixel_std`` 200 folded into pixels), warped to the input size with
   bilinear interpolation (``geometry.warp_image``);
2. **colour and normalisation**: each release's own channel order (HRNet's configs say
   ``COLOR_RGB: true``, SimpleBaseline's ``COLOR_RGB: false``, i.e. BGR; MMPose's files
   and the course's models take RGB), then ``(pixel / 255 - mean) / std`` with ImageNet's
   mean and std;
3. **heatmaps**, with the flip test if asked: the mirrored crop's maps are flipped back,
   left/right channels swapped and shifted one pixel right (``heatmaps.flip_heatmaps``),
   then averaged with the plain maps;
4. **decoding** (:func:`decode`): the official ``get_max_preds`` gives each map's maximum
   and puts a keypoint whose maximum is not positive at heatmap position 0; the quarter
   step moves a keypoint only when its peak is inside ``1 < u < W - 1`` and ``1 < v < H - 1``
   (``heatmaps.decode_quarter_offset``);
5. **back to the image**: ``geometry.crop_to_image`` with the heatmap size (the official
   ``transform_preds``).

Pose score: the detection's score times the mean of the keypoint scores above 0.2 (the
official rescoring, ``metrics.grmi_rescore``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from course_lib import geometry, heatmaps, keypoints, metrics, models, weights
from course_lib.data import image_to_tensor
from course_lib.validation import check_array, check_choice

DECODERS = ("quarter_offset", "argmax", "dark", "soft_argmax")
FLIP_PAIRS = {"coco": keypoints.COCO_FLIP_PAIRS, "mpii": keypoints.MPII_FLIP_PAIRS, "lsp": keypoints.LSP_FLIP_PAIRS}
PADDING = 1.25  # the official crops' context around the box
KEYPOINT_THRESHOLD = 0.2  # the official in_vis_thre: keypoints averaged into the pose score


@dataclass
class PoseEstimator:
    """A top-down model with the conventions its weights were trained with.

    Attributes:
        model: the network, eval mode.
        preset: its name in ``models.list_models()``.
        color: ``"rgb"`` or ``"bgr"``, the channel order its weights expect.
        keypoint_set: ``"coco"`` (17), ``"mpii"`` (16) or ``"lsp"`` (14).
        decoder: one of :data:`DECODERS`.
        flip_test: average with the mirrored crop's heatmaps.
        sigma: the training sigma (DARK's blur).
        weight_format: where the weights came from (``course``, ``official``, ``mmpose``).
    """

    model: nn.Module
    preset: str
    color: str = "rgb"
    keypoint_set: str = "coco"
    decoder: str = "quarter_offset"
    flip_test: bool = False
    sigma: float = 2.0
    weight_format: str = "course"

    def __post_init__(self) -> None:
        check_choice(self.color, "color", ("rgb", "bgr"))
        check_choice(self.decoder, "decoder", DECODERS)
        check_choice(self.keypoint_set, "keypoint_set", tuple(FLIP_PAIRS))

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of the crops."""
        return tuple(self.model.input_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class People:
    """The people found in one image: ``keypoints (N, K, 2)`` image pixels, ``scores (N, K)``, ``boxes (N, 4)``,
    ``box_scores (N,)``, ``pose_scores (N,)`` (box score x mean confident keypoint score), ``centers``, ``scales (N, 2)``."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    pose_scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


# ============================================================================ the model
def load_estimator(
    preset: str | None = None,
    weights_file: str | os.PathLike | None = None,
    *,
    decoder: str = "quarter_offset",
    flip_test: bool = False,
    device: str = "cpu",
    train: bool = True,
    progress: bool = True,
) -> PoseEstimator:
    """The model of ``preset`` with ``weights_file`` (any format of :mod:`course_lib.weights`), ready to estimate.

    Without ``weights_file`` a tiny preset comes from the course's cache (``zoo.pretrained``,
    trained on the synthetic people the first time, with a progress bar unless
    ``progress=False``).  A course checkpoint names its own preset, so ``preset`` may be
    left out; if given it must agree.  The colour order is the
    weights' own: BGR for the official SimpleBaseline files, RGB otherwise.

    Raises:
        ValueError: unknown preset, a checkpoint of another preset, or weights that do not fit.
    """
    from course_lib import runtime, zoo

    if weights_file is None:
        if preset not in zoo.RECIPES:
            raise ValueError(f"--weights is needed for {preset!r}; without it the tiny presets come from the course's "
                             f"cache: {', '.join(sorted(zoo.RECIPES))}")
        model, fmt, keypoint_set = zoo.pretrained(preset, train=train, progress=progress), "course", "coco"
    else:
        content = weights.read_file(weights_file)
        fmt = weights.weight_format(content)
        if fmt == "course" and "preset" in content:
            if preset is not None and preset != content["preset"]:
                raise ValueError(f"weights {weights_file} are a {content['preset']} checkpoint, not {preset}")
            model, preset, keypoint_set = weights.model_from_checkpoint(weights_file), content["preset"], content["keypoint_set"]
        else:
            if preset is None:
                raise ValueError(f"--model is needed: {weights_file} does not name its preset ({fmt} format)")
            model, keypoint_set = models.build(preset), "coco"
            weights.load_weights(model, content)
    color = "bgr" if fmt == "official" and weights.family(model) == "simplebaseline" else "rgb"
    model = model.to(runtime.resolve_device(device)).eval()
    return PoseEstimator(model, preset, color, keypoint_set, decoder, bool(flip_test), weight_format=fmt)


# ============================================================================ boxes and crops
def check_boxes(boxes: np.ndarray, image_hw: tuple[int, int], name: str = "box") -> np.ndarray:
    """``(N, 4)`` COCO boxes with positive sizes that overlap the image, float64 (ValueError otherwise)."""
    boxes = np.asarray(check_array(boxes, name, (None, 4), dtype=float), dtype=np.float64)
    height, width = image_hw
    for box in boxes:
        x, y, w, h = box
        if w <= 0 or h <= 0:
            raise ValueError(f"{name} {box.tolist()} must have a positive width and height")
        if x >= width - 0.5 or y >= height - 0.5 or x + w <= -0.5 or y + h <= -0.5:
            raise ValueError(f"{name} {box.tolist()} (x, y, w, h) is outside the image of {width} x {height} pixels")
    return boxes


def crop_people(image: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Crops ``(N, H, W, 3)`` uint8 of the boxes at ``input_size``, their ``centers`` and ``scales`` ``(N, 2)`` (pixels).

    ``center, scale = box_to_center_scale(box, W / H, 1.25)``; ``crop = warp_image(image, center, scale, 0, (H, W))``.
    """
    height, width = input_size
    centers, scales = geometry.box_to_center_scale(boxes, width / height, PADDING)
    crops = [geometry.warp_image(image, c, s, 0.0, input_size) for c, s in zip(centers, scales)]
    crops = np.stack(crops) if crops else np.zeros((0, height, width, 3), np.uint8)
    return crops, centers.reshape(-1, 2), scales.reshape(-1, 2)


def crops_to_tensor(crops: np.ndarray, color: str) -> torch.Tensor:
    """RGB crops ``(N, H, W, 3)`` -> the model's input ``(N, 3, H, W)``, in its channel order, ImageNet-normalised."""
    return image_to_tensor(crops[..., ::-1] if color == "bgr" else crops)


@torch.no_grad()
def predict_heatmaps(estimator: PoseEstimator, inputs: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Heatmaps ``(N, K, h, w)`` (float32, CPU) of normalised crops; with the flip test, averaged with the mirror's."""
    pairs = FLIP_PAIRS[estimator.keypoint_set]
    maps = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size].to(estimator.device)
        output = _last(estimator.model(batch)).float()
        if estimator.flip_test:
            mirrored = heatmaps.flip_heatmaps(_last(estimator.model(batch.flip(-1))).float(), pairs)
            output = (output + mirrored) * 0.5
        maps.append(output.cpu())
    return torch.cat(maps) if maps else torch.zeros(0)


def _last(output) -> torch.Tensor:
    """Multi-stage models (CPM, hourglass) return every stage's maps; the last one is final."""
    return output[-1] if isinstance(output, (list, tuple)) else output


def decode(maps: torch.Tensor, decoder: str = "quarter_offset", sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps ``(N, K, h, w)`` -> keypoints ``(N, K, 2)`` heatmap pixels and scores ``(N, K)``, float64.

    As the official ``get_max_preds``: a keypoint whose maximum is not positive sits at
    ``(0, 0)`` (its score says it is not there); the quarter step then leaves it alone.
    """
    check_choice(decoder, "decoder", DECODERS)
    points, scores = heatmaps.decode_heatmaps(maps, decoder, sigma)
    points, scores = points.double().numpy(), scores.double().numpy()
    if decoder != "soft_argmax":
        points = np.where((scores > 0)[..., None], points, 0.0)
    return points, scores


def estimate(
    estimator: PoseEstimator, image: np.ndarray, boxes: Sequence, box_scores: Sequence | None = None
) -> People:
    """The keypoints of the people in ``boxes`` (COCO ``[x, y, w, h]``) of an RGB ``image`` ``(H, W, 3)`` uint8.

    Raises:
        ValueError: a box with no width or height, or outside the image.
    """
    image = check_array(image, "image", (None, None, 3), dtype=None)
    boxes = check_boxes(np.asarray(boxes, dtype=float).reshape(-1, 4), image.shape[:2])
    box_scores = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, float).reshape(len(boxes))
    crops, centers, scales = crop_people(image, boxes, estimator.input_size)
    num_keypoints = len(keypoints.KEYPOINT_SETS[estimator.keypoint_set])
    if len(boxes) == 0:
        empty = np.zeros((0, num_keypoints))
        return People(np.zeros((0, num_keypoints, 2)), empty, boxes, box_scores, np.zeros(0), centers, scales)
    maps = predict_heatmaps(estimator, crops_to_tensor(crops, estimator.color))
    points, scores = decode(maps, estimator.decoder, estimator.sigma)
    points = geometry.crop_to_image(points, centers, scales, np.zeros(len(boxes)), tuple(maps.shape[-2:]))
    pose_scores = metrics.grmi_rescore(box_scores, scores, KEYPOINT_THRESHOLD)
    return People(points, scores, boxes, box_scores, pose_scores, centers, scales)


# ============================================================================ reading and writing
def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8 ``(H, W, 3)`` (ValueError naming the file if it cannot be read)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError(f"image {path} could not be read (not an image OpenCV knows)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def coco_results(people: People, **identity) -> list[dict]:
    """COCO keypoint results, one per person: ``identity`` (``image_id`` or ``file_name``, ...), ``category_id`` 1,
    ``keypoints`` ``[x, y, score] * K`` in image pixels, ``score`` (the pose score), ``bbox``."""
    results = []
    for n in range(len(people)):
        triplets = np.concatenate([people.keypoints[n], people.scores[n][:, None]], axis=1)
        results.append({**identity, "category_id": 1, "keypoints": [round(float(v), 3) for v in triplets.ravel()],
                        "score": round(float(people.pose_scores[n]), 5),
                        "bbox": [round(float(v), 2) for v in people.boxes[n]]})
    return results


def draw_people(image: np.ndarray, people: People, keypoint_set: str = "coco", threshold: float = 0.2) -> np.ndarray:
    """A copy of the RGB ``image`` with each person's box and skeleton (keypoints scoring above ``threshold``)."""
    canvas = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(image.shape[:2]) / 300))
    sides = ["left" if name.startswith("left") else "right" if name.startswith("right") else "centre"
             for name in keypoints.KEYPOINT_SETS[keypoint_set]]
    colours = {"left": (255, 140, 0), "right": (0, 120, 255), "centre": (0, 200, 0)}
    for n in range(len(people)):
        x, y, w, h = people.boxes[n]
        cv2.rectangle(canvas, (round(x), round(y)), (round(x + w), round(y + h)), (255, 255, 255), thickness)
        points, shown = people.keypoints[n], people.scores[n] > threshold
        for a, b in keypoints.SKELETONS[keypoint_set]:
            if shown[a] and shown[b]:
                cv2.line(canvas, tuple(np.round(points[a]).astype(int)), tuple(np.round(points[b]).astype(int)),
                         colours[sides[b]], thickness, cv2.LINE_AA)
        for k in np.flatnonzero(shown):
            cv2.circle(canvas, tuple(np.round(points[k]).astype(int)), thickness + 1, colours[sides[k]], -1, cv2.LINE_AA)
    return canvas


# ============================================================================ people detectors
DETECTOR_SIDE = 256  # the synthetic scenes' size: photographs are shrunk so their longer side has it


def synthetic_detector(*, train: bool = True, path: str | os.PathLike | None = None) -> nn.Module:
    """The course's person detector (``models.detector.PersonDetector.tiny``) trained on the synthetic scenes.

    Cached as ``data/checkpoints/person_detector.pt`` (``-fast`` in the fast profile) after
    its first training (chapter 09's recipe: 400 steps, 20 in the fast profile); ``path``
    reads another state dict file.  It has only seen stick figures: on photographs it is a
    demonstration of the domain gap, not a detector to rely on.
    """
    from course_lib import runtime
    from course_lib.data import DATA_ROOT, default_split_dir
    from course_lib.models.detector import PersonDetector, train_detector
    from course_lib.multi_person import load_scenes

    detector = PersonDetector.tiny()
    fast = runtime.fast_profile()
    path = Path(path) if path is not None else DATA_ROOT / "checkpoints" / f"person_detector{'-fast' if fast else ''}.pt"
    if path.is_file():
        state = weights.state_dict_of(weights.read_file(path))
        weights.check_fit(state, detector, f"detector weights {path}")
        detector.load_state_dict(state)
        return detector.eval()
    if not train:
        raise FileNotFoundError(f"{path} does not exist; synthetic_detector() trains it once")
    scenes = load_scenes(default_split_dir("multi/train"), limit=200 if fast else None)
    train_detector(detector, scenes.tensors(), scenes.boxes, steps=20 if fast else 400, batch_size=16)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(detector.state_dict(), path)
    return detector.eval()


def detect_synthetic(detector: nn.Module, image: np.ndarray, threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(D, 4)`` and scores ``(D,)`` of the course's detector on an RGB image of any size.

    The image is resized so that its longer side is 256 pixels and padded to multiples of 32
    (the detector's input), and the boxes are scaled back.
    """
    from course_lib.multi_person import detect_people

    height, width = image.shape[:2]
    factor = DETECTOR_SIDE / max(height, width)
    resized = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                         interpolation=cv2.INTER_AREA)
    padded = np.zeros((-(-resized.shape[0] // 32) * 32, -(-resized.shape[1] // 32) * 32, 3), np.uint8)
    padded[:resized.shape[0], :resized.shape[1]] = resized
    (boxes, scores), = detect_people(detector, image_to_tensor(padded)[None], threshold=threshold)
    corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1) / factor + 0.5 / factor - 0.5
    corners = np.clip(corners, -0.5, [width - 0.5, height - 0.5, width - 0.5, height - 0.5])  # the photo, not the padding
    boxes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    keep = (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1)
    return boxes[keep], scores[keep]


def torchvision_detector() -> nn.Module:
    """torchvision's COCO-trained Faster R-CNN (ResNet-50 FPN); its weights come through torchvision's own cache."""
    try:
        from torchvision.models import detection
    except ImportError:
        raise ValueError("--detector torchvision needs torchvision (pip install torchvision); "
                         "or give --box or --detections") from None
    model = detection.fasterrcnn_resnet50_fpn(weights=detection.FasterRCNN_ResNet50_FPN_Weights.DEFAULT)
    return model.eval()


@torch.no_grad()
def detect_torchvision(detector: nn.Module, image: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (COCO label 1) ``(D, 4)`` xywh and scores ``(D,)`` of torchvision's detector on an RGB image."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    output = detector([tensor.to(next(detector.parameters()).device)])[0]
    keep = (output["labels"] == 1) & (output["scores"] >= threshold)
    boxes = output["boxes"][keep].double().cpu().numpy()
    boxes[:, 2:] -= boxes[:, :2]
    return boxes, output["scores"][keep].double().cpu().numpy()


def read_detections(path: str | os.PathLike, threshold: float = 0.0) -> dict:
    """A COCO detection results file -> ``{image_id or file_name: (boxes (D, 4), scores (D,))}``, people only.

    The official person detections for COCO val (``COCO_val2017_detections_AP_H_56_person.json``)
    are a list of ``{"image_id", "category_id", "bbox", "score"}``; entries of another category or
    scoring below ``threshold`` are left out (the official ``image_thre`` is 0).
    """
    import json

    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"detections {path} could not be read as JSON: {error}") from None
    if not isinstance(entries, list):
        raise ValueError(f"detections {path} must be a list of COCO detection results, got {type(entries).__name__}")
    found: dict = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "bbox" not in entry or not ({"image_id", "file_name"} & set(entry)):
            raise ValueError(f"detections {path}[{index}] needs 'bbox' and 'image_id' (or 'file_name'), got {entry!r}")
        if entry.get("category_id", 1) != 1 or float(entry.get("score", 1.0)) < threshold:
            continue
        key = entry["image_id"] if "image_id" in entry else entry["file_name"]
        found.setdefault(key, []).append((list(map(float, entry["bbox"])), float(entry.get("score", 1.0))))
    return {key: (np.array([b for b, _ in items]).reshape(-1, 4), np.array([s for _, s in items])) for key, items in found.items()}


def boxes_for(detections: dict, path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """The detections of one image file, by its ``file_name`` or by COCO's ``%012d.jpg`` image id, and its identity."""
    image_id = int(path.stem) if path.stem.isdigit() else None
    identity = {"image_id": image_id} if image_id is not None else {"file_name": path.name}
    for key in (path.name, image_id):
        if key is not None and key in detections:
            return (*detections[key], identity)
    return np.zeros((0, 4)), np.zeros(0), identity
