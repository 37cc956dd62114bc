"""Geometry (chapters 01 and 06): box normalisation, top-down crops, affine warps, flips.

Two ways of cutting a person out of an image appear in the course:

* **DeepPose** (Toshev & Szegedy 2014, chapter 01) normalises joint coordinates by a box,
  ``N(y; b) = diag(1/w, 1/h) (y - b_c)``, and refines each joint in a cascade of crops of
  side ``delta * diam(y)`` around the previous estimate (:func:`normalize_to_box`,
  :func:`cascade_crop_box`, :func:`cascade_patches`).
* **Top-down heatmap models** (SimpleBaseline, HRNet; chapter 06) widen the person box to
  the model's aspect ratio, pad it by 1.25, and warp that region to a fixed-size crop with
  an affine transform that can also rotate; predictions are mapped back with the inverse
  transform (:func:`box_to_center_scale`, :func:`get_affine_transform`,
  :func:`warp_image`, :func:`crop_to_image`, :class:`TopDownDataset`).

Conventions (see :mod:`course_lib`): keypoints ``(..., K, 2)`` are ``x, y`` pixels, pixel
centres at integer coordinates; sizes are ``(H, W)`` like tensor shapes (the official code
writes ``(w, h)``); boxes are COCO ``[x, y, w, h]`` (top-left corner) unless a function
says centre form ``(cx, cy, w, h)``.

A crop is described by ``center`` ``(cx, cy)`` and ``scale`` ``(w, h)``: the size of the
cropped region **in pixels of the original image**.  The official code stores
``scale / 200`` (``pixel_std = 200``, a leftover of MPII's person scale); we keep pixels,
so ``scale_here = 200 * scale_official``.  The crop maps ``center`` to ``(W / 2, H / 2)``
of the output and ``scale`` onto ``(W, H)``, which is the MSRA convention: output pixel
``u`` of a heatmap-size crop sits over input pixel ``u * stride`` of an input-size crop of
the same centre and scale (see :mod:`course_lib.heatmaps` for how UDP differs).
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch

from course_lib.keypoints import COCO_FLIP_PAIRS, COCO_TORSO_DIAMETER_PAIR, flip_permutation
from course_lib.validation import check_array, check_choice, check_positive, check_size

Array = Any  # np.ndarray or torch.Tensor
BOX_FORMATS = ("xywh", "cxcywh")


def _as_like(value: Any, reference: Array, name: str, shape: tuple) -> Array:
    """Check ``value`` and give it the kind (NumPy / torch, device, dtype) of ``reference``."""
    value = check_array(value, name, shape, allow_torch=True)
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)
    return np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float64)


def _as_float(points: Array) -> Array:
    if isinstance(points, torch.Tensor):
        return points if points.is_floating_point() else points.float()
    return np.asarray(points, dtype=np.float64)


# ----------------------------------------------------------------------------- boxes (DeepPose)
def _box_center_size(box: Array, box_format: str, name: str = "box") -> tuple[Array, Array]:
    """``(..., 4)`` box in either format -> centre ``(..., 2)`` and size ``(..., 2)``; sizes > 0."""
    check_choice(box_format, "box_format", BOX_FORMATS)
    box = _as_float(check_array(box, name, (..., 4), allow_torch=True))
    size = box[..., 2:4]
    if not bool((size > 0).all()):
        raise ValueError(f"{name} must have width and height > 0, got {box.tolist()}")
    center = box[..., 0:2] + size / 2 if box_format == "xywh" else box[..., 0:2]
    return center, size


def _per_point(value: Array, points: Array) -> Array:
    """Line a per-box ``(..., 2)`` value up with points ``(..., K, 2)``.

    A box per point (``box.shape[:-1] == points.shape[:-1]``) is used as it is; otherwise
    the box belongs to an instance and is broadcast over its K points.
    """
    if tuple(value.shape[:-1]) == tuple(points.shape[:-1]):
        return value
    return value[..., None, :]


def normalize_to_box(keypoints: Array, box: Array, box_format: str = "xywh") -> Array:
    """DeepPose's box normalisation, ``N(y; b) = diag(1/w, 1/h) (y - b_c)``.

    ``b_c`` is the box centre, ``w, h`` its size, so a point inside the box lands in
    ``[-0.5, 0.5]^2``: the network regresses numbers of order 1 whatever the person's
    size (Toshev & Szegedy 2014, eq. 1).  Chapter 01's worked example: box centre (120, 150),
    w = 200, h = 300, head (120, 370) -> (0, 0.73).

    Args:
        keypoints: ``(..., K, 2)`` image pixels (NumPy or torch).
        box: ``(..., 4)``: one box per instance, broadcast over its K points, or
            ``(..., K, 4)``: one box per point (the cascade).  In ``box_format``:
            ``"xywh"`` COCO ``[x, y, w, h]`` (top-left corner) or ``"cxcywh"`` ``(cx, cy, w, h)``.
        box_format: ``"xywh"`` or ``"cxcywh"``.

    Returns:
        normalised keypoints, same shape and kind as ``keypoints``.
    """
    keypoints = _as_float(check_array(keypoints, "keypoints", (..., 2), allow_torch=True))
    center, size = _box_center_size(_as_like(box, keypoints, "box", (..., 4)), box_format)
    try:
        return (keypoints - _per_point(center, keypoints)) / _per_point(size, keypoints)
    except (ValueError, RuntimeError):
        raise ValueError(
            f"box of shape {tuple(box.shape) if hasattr(box, 'shape') else np.shape(box)} does not fit "
            f"keypoints of shape {tuple(keypoints.shape)}: use (..., 4) per instance or (..., K, 4) per point"
        ) from None


def denormalize_from_box(normalized: Array, box: Array, box_format: str = "xywh") -> Array:
    """Inverse of :func:`normalize_to_box`: ``y = b_c + diag(w, h) N``.

    With the box of chapter 01's worked example (centre (120, 150), 200 x 300),
    ``(-0.3, -0.7)`` maps to ``(60, -60)``; taking the centre as (120, 300) by mistake gives
    ``(60, 90)``, the slip that chapter's exercise asks to find.

    Args:
        normalized: ``(..., K, 2)`` normalised coordinates.
        box: as in :func:`normalize_to_box`.
        box_format: ``"xywh"`` or ``"cxcywh"``.

    Returns:
        keypoints in image pixels, same shape and kind as ``normalized``.
    """
    normalized = _as_float(check_array(normalized, "normalized", (..., 2), allow_torch=True))
    center, size = _box_center_size(_as_like(box, normalized, "box", (..., 4)), box_format)
    try:
        return _per_point(center, normalized) + normalized * _per_point(size, normalized)
    except (ValueError, RuntimeError):
        raise ValueError(
            f"box does not fit normalized of shape {tuple(normalized.shape)}: "
            "use (..., 4) per instance or (..., K, 4) per point"
        ) from None


def torso_diameter(keypoints: Array, pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR) -> Array:
    """DeepPose's body size ``diam(y)``: the distance between two opposing torso joints.

        diam(y) = || y_a - y_b ||,   (a, b) = left shoulder, right hip by default.

    Args:
        keypoints: ``(..., K, 2)`` pixels.
        pair: indices ``(a, b)``; ``COCO_TORSO_DIAMETER_PAIR`` = (5, 12).

    Returns:
        ``(...)`` distances (a float for a single ``(K, 2)`` pose).
    """
    keypoints = _as_float(check_array(keypoints, "keypoints", (..., None, 2), allow_torch=True))
    num_joints = keypoints.shape[-2]
    a, b = pair
    if not (0 <= a < num_joints and 0 <= b < num_joints):
        raise ValueError(f"pair must index two of the {num_joints} keypoints, got {pair!r}")
    difference = keypoints[..., a, :] - keypoints[..., b, :]
    return (difference**2).sum(-1) ** 0.5


def cascade_crop_box(joint: Array, diameter: Array, delta: float, box_format: str = "xywh") -> Array:
    """The box of a DeepPose cascade stage: a square of side ``delta * diam(y)`` centred on a joint.

        b_i^s = (y_i^{s-1}, delta diam(y^{s-1}), delta diam(y^{s-1}))     (centre form)

    Stage ``s`` crops this box around the previous estimate of joint ``i`` and regresses
    ``N(y_i; b_i^s)``, the displacement in units of the box (Toshev & Szegedy 2014, eq. 7).

    Args:
        joint: ``(..., 2)`` the predicted joint(s), image pixels.
        diameter: ``(...)`` (or a number) ``diam(y)``, broadcast against ``joint[..., 0]``.
        delta: the box's size relative to the body, ``delta > 0``.
        box_format: the returned box's format, ``"xywh"`` (COCO) or ``"cxcywh"``.

    Returns:
        boxes ``(..., 4)``.
    """
    check_choice(box_format, "box_format", BOX_FORMATS)
    joint = _as_float(check_array(joint, "joint", (..., 2), allow_torch=True))
    diameter = _as_like(diameter, joint, "diameter", None)
    delta = check_positive(delta, "delta")
    if not bool((diameter > 0).all()):
        raise ValueError(f"diameter must be > 0, got {diameter.tolist()}")
    side = delta * diameter + 0 * joint[..., 0]  # broadcast to (...)
    corner = joint - side[..., None] / 2 if box_format == "xywh" else joint
    stack = torch.stack if isinstance(joint, torch.Tensor) else np.stack
    return stack([corner[..., 0], corner[..., 1], side, side], -1)


def crop_box(image: np.ndarray, box: Array, output_hw: tuple[int, int], box_format: str = "xywh") -> np.ndarray:
    """Cut a box out of an image and resize it to ``output_hw`` (no padding, no rotation).

    DeepPose's input: the person box (stage 1) or a cascade box, stretched to a fixed size
    (220 x 220 in the paper).  With the MSRA crop convention, normalised coordinates
    ``N`` map to crop pixels as ``x = (N_x + 1/2) W``, ``y = (N_y + 1/2) H``.

    Args:
        image: ``(h, w)`` or ``(h, w, C)`` NumPy image.
        box: ``(4,)`` in ``box_format``.
        output_hw: ``(H, W)``.
        box_format: ``"xywh"`` or ``"cxcywh"``.

    Returns:
        ``(H, W[, C])`` crop of the image's dtype.
    """
    center, size = _box_center_size(np.asarray(check_array(box, "box", (4,))), box_format)
    return warp_image(image, center, size, 0.0, output_hw)


def cascade_patches(
    image: np.ndarray,
    keypoints: Array,
    delta: float,
    output_hw: tuple[int, int],
    pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR,
) -> tuple[np.ndarray, np.ndarray]:
    """Everything a DeepPose cascade stage sees: one patch per predicted joint, and its box.

    For each joint ``i`` the box :func:`cascade_crop_box` ``(y_i, delta diam(y))`` is cut
    out with :func:`crop_box`.  A stage's regression target for joint ``i`` is then
    ``normalize_to_box(true_joint_i, boxes[i])`` and its prediction maps back with
    ``denormalize_from_box(prediction_i, boxes[i])``.

    Args:
        image: ``(h, w, C)`` NumPy image.
        keypoints: ``(K, 2)`` the previous stage's prediction, image pixels.
        delta: box side relative to the torso diameter.
        output_hw: ``(H, W)`` of each patch.
        pair: the torso pair for :func:`torso_diameter`.

    Returns:
        patches ``(K, H, W, C)`` and boxes ``(K, 4)`` (COCO ``xywh``).
    """
    keypoints = check_array(keypoints, "keypoints", (None, 2))
    diameter = float(torso_diameter(keypoints, pair))
    if diameter <= 0:
        raise ValueError(f"keypoints give a torso diameter of {diameter}: the pair {pair} coincides")
    boxes = cascade_crop_box(keypoints, diameter, delta)
    patches = np.stack([crop_box(image, b, output_hw) for b in boxes])
    return patches, boxes


def input_box(input_hw: tuple[int, int]) -> list[float]:
    """The whole input crop as a COCO box ``[0, 0, W, H]`` in input pixels (centre ``(W / 2, H / 2)``).

    DeepPose's regression target is the keypoints normalised by this box,
    ``normalize_to_box(keypoints, input_box(input_hw))``: the centre of the crop maps to 0
    and its borders to -1/2 and 1/2 (see :func:`normalize_to_box`).

    Args:
        input_hw: ``(H, W)`` of the crop.
    """
    height, width = check_size(input_hw, "input_hw")
    return [0.0, 0.0, float(width), float(height)]


# ----------------------------------------------------------------------------- top-down crops
def box_to_center_scale(box: Array, aspect_ratio: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Person box -> the crop's ``center`` and ``scale`` (pixels), at the model's aspect ratio.

    As the official ``_box2cs``: the centre is the box centre; the box is widened or
    heightened (never shrunk) until ``w / h = aspect_ratio``, then both sides are multiplied
    by ``padding`` (1.25), so that the crop holds some context around the person and
    augmentation does not cut limbs off.  ``scale`` is in pixels (official: ``/ 200``).

    Args:
        box: ``(..., 4)`` COCO ``[x, y, w, h]``.
        aspect_ratio: the model input's ``W / H`` (192 / 256 = 0.75 for 256 x 192).
        padding: factor applied to both sides.

    Returns:
        center ``(..., 2)`` and scale ``(..., 2)`` = ``(w, h)`` in image pixels, float64.
    """
    aspect_ratio = check_positive(aspect_ratio, "aspect_ratio")
    padding = check_positive(padding, "padding")
    center, size = _box_center_size(np.asarray(check_array(box, "box", (..., 4))), "xywh")
    width, height = size[..., 0], size[..., 1]
    width, height = np.maximum(width, height * aspect_ratio), np.maximum(height, width / aspect_ratio)
    return center, np.stack([width, height], axis=-1) * padding


def get_affine_transform(
    center: Array,
    scale_wh: Array,
    rotation: Array,
    output_hw: tuple[int, int],
    inverse: bool = False,
) -> np.ndarray:
    """The ``(2, 3)`` matrix that maps the crop ``(center, scale_wh, rotation)`` onto ``output_hw``.

    In closed form, with ``R(t) = [[cos t, -sin t], [sin t, cos t]]``:

        p_out = A (p - c) + (W / 2, H / 2),    A = diag(W / s_w, H / s_h) R(-theta)

    so ``center`` goes to the middle of the output, the ``scale_wh = (s_w, s_h)`` region onto
    ``(W, H)``, and the image content appears turned by ``theta`` degrees
    counter-clockwise on screen (positive ``rotation``; the y axis points down).  The
    official code builds the same matrix from three point pairs with
    ``cv2.getAffineTransform`` and uses only the width ratio ``W / s_w``; the two agree
    when ``s_w / s_h = W / H``, which :func:`box_to_center_scale` guarantees.

    ``inverse=True`` gives the inverse map, output -> image:
    ``p = R(theta) diag(s_w / W, s_h / H) (p_out - (W / 2, H / 2)) + c``.

    Args:
        center: ``(..., 2)`` crop centre in image pixels.
        scale_wh: ``(..., 2)`` crop size ``(w, h)`` in image pixels (not the official ``/ 200``).
        rotation: ``(...)`` or a number, degrees.
        output_hw: ``(H, W)`` of the crop (input size, or heatmap size for heatmaps).
        inverse: return the output -> image matrix.

    Returns:
        ``(..., 2, 3)`` float64 matrices (``(2, 3)`` for one crop), ready for ``cv2.warpAffine``.
    """
    height, width = check_size(output_hw, "output_hw")
    center = np.asarray(check_array(center, "center", (..., 2)), dtype=np.float64)
    scale_wh = np.asarray(check_array(scale_wh, "scale_wh", (..., 2)), dtype=np.float64)
    rotation = np.asarray(check_array(rotation, "rotation", None), dtype=np.float64)
    if not (scale_wh > 0).all():
        raise ValueError(f"scale_wh must be > 0 (crop width and height in pixels), got {scale_wh.tolist()}")
    try:
        batch = np.broadcast_shapes(center.shape[:-1], scale_wh.shape[:-1], rotation.shape)
    except ValueError:
        raise ValueError(
            f"center {center.shape}, scale_wh {scale_wh.shape} and rotation {rotation.shape} must broadcast together"
        ) from None
    center = np.broadcast_to(center, batch + (2,))
    theta = np.broadcast_to(np.deg2rad(rotation), batch)
    cos, sin = np.cos(theta), np.sin(theta)
    zoom_x = np.broadcast_to(width / scale_wh[..., 0], batch)  # output pixels per image pixel
    zoom_y = np.broadcast_to(height / scale_wh[..., 1], batch)
    output_center = np.array([width / 2, height / 2])
    if inverse:
        rows = [np.stack([cos / zoom_x, -sin / zoom_y], -1), np.stack([sin / zoom_x, cos / zoom_y], -1)]
        linear = np.stack(rows, -2)  # (..., 2, 2) = R(theta) diag(s_w / W, s_h / H)
        translation = center - (linear @ output_center[:, None])[..., 0]
    else:
        rows = [np.stack([zoom_x * cos, zoom_x * sin], -1), np.stack([-zoom_y * sin, zoom_y * cos], -1)]
        linear = np.stack(rows, -2)  # (..., 2, 2) = diag(W / s_w, H / s_h) R(-theta)
        translation = output_center - (linear @ center[..., None])[..., 0]
    return np.concatenate([linear, translation[..., None]], axis=-1)  # (..., 2, 3)


def transform_points(points: Array, matrix: Array) -> Array:
    """Apply an affine ``(2, 3)`` matrix ``[A | t]`` to points: ``p' = A p + t``.

    Args:
        points: ``(..., 2)`` NumPy or torch (result of the same kind, float).
        matrix: ``(2, 3)`` for all points, or ``(..., 2, 3)`` one per leading index with
            points ``(..., K, 2)`` (e.g. ``(N, 2, 3)`` with ``(N, K, 2)``).

    Returns:
        transformed points, same shape as ``points``.
    """
    points = _as_float(check_array(points, "points", (..., 2), allow_torch=True))
    matrix = _as_like(matrix, points, "matrix", (..., 2, 3))
    linear, translation = matrix[..., :2], matrix[..., 2]
    if matrix.ndim == 2:
        return points @ linear.T + translation
    if tuple(matrix.shape[:-2]) != tuple(points.shape[:-2]):
        raise ValueError(
            f"matrix {tuple(matrix.shape)} needs points (..., K, 2) with the same leading shape, "
            f"got points {tuple(points.shape)}"
        )
    return points @ linear.swapaxes(-1, -2) + translation[..., None, :]


def image_to_crop(points: Array, center: Array, scale_wh: Array, rotation: Array, output_hw: tuple[int, int]) -> Array:
    """Image pixels -> crop pixels for the crop ``(center, scale_wh, rotation)`` of size ``output_hw``."""
    return transform_points(points, get_affine_transform(center, scale_wh, rotation, output_hw))


def crop_to_image(points: Array, center: Array, scale_wh: Array, rotation: Array, output_hw: tuple[int, int]) -> Array:
    """Crop pixels -> image pixels: how top-down predictions go back to the original image.

    Works for heatmap coordinates directly with ``output_hw = heatmap size``: a heatmap
    is the same crop at a coarser grid (MSRA convention, ``x = u * stride``), so

        crop_to_image(u, c, s, r, heatmap_size) == crop_to_image(u * stride, c, s, r, input_size).

    Args:
        points: ``(..., K, 2)`` crop (or heatmap) pixels, NumPy or torch.
        center, scale_wh, rotation: the crop, as in :func:`get_affine_transform`; one crop
            ``(2,)`` for all points or one per instance ``(N, 2)`` with points ``(N, K, 2)``.
        output_hw: ``(H, W)`` of the grid the points live on.

    Returns:
        image pixels, same shape and kind as ``points``.
    """
    return transform_points(points, get_affine_transform(center, scale_wh, rotation, output_hw, inverse=True))


def warp_image(
    image: np.ndarray, center: Array, scale_wh: Array, rotation: float, output_hw: tuple[int, int]
) -> np.ndarray:
    """Cut the crop ``(center, scale_wh, rotation)`` out of ``image`` at ``output_hw`` (bilinear).

    ``output(p_out) = image(M^{-1} p_out)`` with ``M`` from :func:`get_affine_transform`;
    pixels that fall outside the image are 0 (OpenCV's constant border), as officially.

    Args:
        image: ``(h, w)`` or ``(h, w, C)`` NumPy image (uint8 or float).
        center: ``(2,)``; scale_wh: ``(2,)`` in pixels; rotation: degrees.
        output_hw: ``(H, W)``.

    Returns:
        ``(H, W[, C])`` array of the image's dtype.
    """
    image = check_array(image, "image", None)
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"image must have shape (h, w) or (h, w, C), got {image.shape}")
    height, width = check_size(output_hw, "output_hw")
    matrix = get_affine_transform(check_array(center, "center", (2,)), check_array(scale_wh, "scale_wh", (2,)),
                                  float(rotation), (height, width))
    if image.dtype == np.float64 or image.dtype.kind in "iu" and image.dtype != np.uint8:
        image = image.astype(np.float32)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------- flips
def flip_image(image: Array) -> Array:
    """Mirror an image left-right: pixel column ``j`` goes to ``w - 1 - j``.

    Args:
        image: NumPy ``(h, w)`` or ``(..., h, w, C)`` (channels last, as OpenCV), or a
            torch tensor ``(..., C, h, w)`` (channels first, as models take it).

    Returns:
        the mirrored image, same shape and kind (a copy).
    """
    if isinstance(image, torch.Tensor):
        check_array(image, "image", (..., None, None), allow_torch=True)
        return image.flip(-1)
    image = check_array(image, "image", (..., None, None), finite=False)
    return np.ascontiguousarray(image[:, ::-1] if image.ndim == 2 else image[..., ::-1, :])


def flip_keypoints(
    keypoints: Array,
    visibility: Array,
    image_width: int,
    flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS,
) -> tuple[Array, Array]:
    """Mirror keypoints with the image: ``x' = w - 1 - x``, then swap left and right joints.

    ``w - 1 - x`` because pixel centres are at integer ``x``: column 0 and column ``w - 1``
    trade places (the official ``fliplr_joints``).  After the mirror a left wrist is seen
    where a right wrist would be, so each ``(left, right)`` pair swaps rows; visibility
    swaps with them.  Unlike the official code, unlabelled joints keep their (mirrored)
    coordinates instead of being zeroed, so flipping twice is exactly the identity.

    Args:
        keypoints: ``(..., K, 2)`` pixels, NumPy or torch.
        visibility: ``(..., K)``.
        image_width: ``w`` of the image the keypoints live in.
        flip_pairs: ``(left, right)`` index pairs.

    Returns:
        keypoints ``(..., K, 2)`` and visibility ``(..., K)``, same kind as the input.
    """
    keypoints = _as_float(check_array(keypoints, "keypoints", (..., "K", 2), allow_torch=True))
    visibility = check_array(visibility, "visibility", tuple(keypoints.shape[:-1]), allow_torch=True)
    image_width = check_positive(image_width, "image_width")
    permutation = flip_permutation(keypoints.shape[-2], tuple(flip_pairs))
    if isinstance(keypoints, torch.Tensor):
        permutation = torch.as_tensor(permutation, device=keypoints.device)
        visibility = torch.as_tensor(visibility, device=keypoints.device)
        mirrored = torch.stack([image_width - 1 - keypoints[..., 0], keypoints[..., 1]], dim=-1)
    else:
        visibility = np.asarray(visibility)
        mirrored = np.stack([image_width - 1 - keypoints[..., 0], keypoints[..., 1]], axis=-1)
    return mirrored[..., permutation, :], visibility[..., permutation]
