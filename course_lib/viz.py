"""Pictures: poses drawn on images, grids of samples, heatmap overlays (chapters 00-09).

Matplotlib only.  Every drawing function takes an optional ``ax`` and returns it, so that
figures can be composed; the grid functions return the figure.

Colours are the same everywhere in the course: the person's **left** side is orange, the
**right** side blue, the centre (nose, and limbs that join the two sides) green; the synthetic
people carry the same tints.  Visible joints (v = 2) are filled dots with solid limbs, hidden
ones (v = 1) hollow circles with dashed limbs; unlabelled ones (v = 0) are not drawn.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import matplotlib.patheffects as path_effects
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib.keypoints import COCO_KEYPOINTS, COCO_SKELETON
from course_lib.validation import check_array

SIDE_COLOURS = {"left": "#ff8000", "right": "#0080ff", "center": "#30c030"}


def keypoint_sides(names: Sequence[str] | None, num_keypoints: int) -> list[str]:
    """``"left"``, ``"right"`` or ``"center"`` for each keypoint, from its name (all centre without names)."""
    if names is None:
        return ["center"] * num_keypoints
    if len(names) != num_keypoints:
        raise ValueError(f"names must have one name per keypoint ({num_keypoints}), got {len(names)}")
    return ["left" if n.startswith("left") else "right" if n.startswith("right") else "center" for n in names]


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (4, 4)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def draw_pose(
    keypoints: Any,
    visibility: Any = None,
    skeleton: Sequence[tuple[int, int]] = COCO_SKELETON,
    ax: Axes | None = None,
    *,
    names: Sequence[str] | None = None,
    linewidth: float = 2.0,
    markersize: float = 25.0,
    alpha: float = 1.0,
) -> Axes:
    """Draw one pose ``(K, 2)`` or several ``(N, K, 2)`` (image pixels ``x, y``) with left/right colours.

    Args:
        keypoints: ``(K, 2)`` or ``(N, K, 2)``.
        visibility: ``(K,)`` or ``(N, K)`` COCO flags; default all 2.  v = 2 joints are filled
            dots, v = 1 hollow circles; a limb is dashed when one of its ends is v = 1; v = 0
            joints and the limbs that touch them are not drawn.
        skeleton: 0-based ``(a, b)`` pairs to join.
        ax: axes to draw on (a new figure when None).  When it already shows an image, its
            limits are kept; otherwise y is turned downward, as in images.
        names: keypoint names for the sides (default: COCO's when K == 17, else all centre).
    Returns:
        The axes: one ``Line2D`` per drawn limb and one scatter per kind of joint (filled, hollow).
    """
    keypoints = check_array(keypoints, "keypoints", (..., None, 2))
    if keypoints.ndim not in (2, 3):
        raise ValueError(f"keypoints must have shape (K, 2) or (N, K, 2), got {keypoints.shape}")
    keypoints = keypoints.reshape(-1, *keypoints.shape[-2:])  # (N, K, 2)
    num_people, num_keypoints = keypoints.shape[:2]
    if visibility is None:
        visibility = np.full((num_people, num_keypoints), 2)
    visibility = check_array(visibility, "visibility").reshape(-1)
    if visibility.size != num_people * num_keypoints:
        raise ValueError(
            f"visibility must have {num_people} x {num_keypoints} flags to match keypoints, got {visibility.size}"
        )
    visibility = visibility.reshape(num_people, num_keypoints)  # (N, K)
    for a, b in skeleton:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(f"skeleton pair ({a}, {b}) is out of range for K={num_keypoints} keypoints")
    if names is None and num_keypoints == len(COCO_KEYPOINTS):
        names = COCO_KEYPOINTS
    sides = keypoint_sides(names, num_keypoints)

    ax = _new_axes(ax)
    limits = (ax.get_xlim(), ax.get_ylim()) if ax.images else None
    outline = [  # a dark edge keeps the limbs readable on any background
        path_effects.Stroke(linewidth=linewidth + 1.5, foreground="black", alpha=0.6 * alpha),
        path_effects.Normal(),
    ]
    for person, flags in zip(keypoints, visibility):
        for a, b in skeleton:
            if flags[a] <= 0 or flags[b] <= 0:
                continue
            side = sides[a] if sides[a] == sides[b] else "center"
            ax.plot(
                [person[a, 0], person[b, 0]], [person[a, 1], person[b, 1]],
                color=SIDE_COLOURS[side], linewidth=linewidth, alpha=alpha,
                linestyle="--" if min(flags[a], flags[b]) == 1 else "-", path_effects=outline,
            )
    colours = np.array([SIDE_COLOURS[side] for side in sides])
    flags, points = visibility.reshape(-1), keypoints.reshape(-1, 2)  # (N K,), (N K, 2)
    colours = np.tile(colours, num_people)
    visible, hidden = flags == 2, flags == 1
    if visible.any():
        ax.scatter(points[visible, 0], points[visible, 1], s=markersize, c=colours[visible],
                   edgecolors="black", linewidths=0.8, alpha=alpha, zorder=3)
    if hidden.any():
        ax.scatter(points[hidden, 0], points[hidden, 1], s=markersize, facecolors="none",
                   edgecolors=colours[hidden], linewidths=1.5, alpha=alpha, zorder=3)
    if limits is not None:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    else:
        ax.set_aspect("equal")
        if not ax.yaxis_inverted():
            ax.invert_yaxis()
    return ax


def draw_box(
    box: Any, ax: Axes | None = None, *, color: str = "white", linewidth: float = 1.5, label: str | None = None
) -> Axes:
    """Draw a COCO box ``[x, y, w, h]`` (image pixels) as a rectangle, with an optional label."""
    x, y, w, h = check_array(box, "box", (4,)).tolist()
    ax = _new_axes(ax)
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=linewidth))
    if label is not None:
        ax.text(x, y, label, color="black", fontsize=8, va="bottom", bbox={"facecolor": color, "alpha": 0.7, "pad": 1})
    return ax


def show_image(image: Any, ax: Axes | None = None) -> Axes:
    """Show an RGB image ``(H, W, 3)`` (``uint8`` or float in [0, 1]), a grey ``(H, W)`` one, or a
    normalised model input tensor ``(3, H, W)`` (undone with :func:`course_lib.data.tensor_to_image`)."""
    if hasattr(image, "detach") or (np.ndim(image) == 3 and np.shape(image)[0] == 3 and np.shape(image)[-1] != 3):
        from course_lib.data import tensor_to_image

        image = tensor_to_image(image)
    image = check_array(image, "image")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"image must have shape (H, W), (H, W, 3) or (3, H, W), got {image.shape}")
    ax = _new_axes(ax)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_axis_off()
    return ax


def _item_at(items: Any, index: int) -> dict:
    item = items[index]
    if not isinstance(item, dict) or not {"image", "keypoints"} <= set(item):
        raise TypeError("items must give dicts with at least 'image' and 'keypoints' (like CocoKeypoints)")
    return item


def show_samples(
    items: Any,
    n: int = 8,
    cols: int = 4,
    *,
    indices: Sequence[int] | None = None,
    show_box: bool = True,
    size: float = 2.5,
) -> Figure:
    """A grid of images with their poses, e.g. ``show_samples(CocoKeypoints(path))``.

    Args:
        items: a data set or a list of item dicts (``image``, ``keypoints``, optional
            ``visibility``, ``box``, ``image_id``).
        n: how many (the first n, or fewer if there are fewer); ignored when ``indices`` is given.
        cols: grid columns.
        show_box: draw each item's ``box`` when it has one.
        size: inches per panel.
    """
    if indices is None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        indices = list(range(min(n, len(items))))
    if len(indices) == 0:
        raise ValueError("show_samples needs at least one item, got an empty selection")
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be a positive integer, got {cols!r}")
    cols = min(cols, len(indices))
    rows = math.ceil(len(indices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel()[len(indices):]:
        ax.set_axis_off()
    for ax, index in zip(axes.ravel(), indices):
        item = _item_at(items, index)
        show_image(item["image"], ax)
        if show_box and "box" in item:
            draw_box(item["box"], ax, linewidth=1.0)
        draw_pose(item["keypoints"], item.get("visibility"), ax=ax, linewidth=1.5, markersize=12)
        if "image_id" in item:
            ax.set_title(f"image {item['image_id']}", fontsize=8)
    fig.tight_layout()
    return fig


def overlay_heatmap(image: Any, heatmap: Any, ax: Axes | None = None, alpha: float = 0.5, cmap: str = "jet") -> Axes:
    """Show a heatmap ``(h, w)`` (or ``(K, h, w)``: their maximum) over an image of any larger size.

    The heatmap is stretched over the image by the stride ``s = W / w`` (and ``H / h``) with
    the course's convention: heatmap pixel ``u`` has its centre at image ``x = u * s``, so it
    spans ``x`` from ``-s / 2`` to ``(w - 1/2) s``.  Matplotlib interpolates bilinearly.
    """
    heatmap = check_array(heatmap, "heatmap")
    if heatmap.ndim == 3:
        heatmap = heatmap.max(axis=0)  # (h, w): every keypoint at once
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must have shape (h, w) or (K, h, w), got {heatmap.shape}")
    ax = show_image(image, ax)
    height, width = ax.images[-1].get_array().shape[:2]
    stride_x, stride_y = width / heatmap.shape[1], height / heatmap.shape[0]
    extent = (-stride_x / 2, (heatmap.shape[1] - 0.5) * stride_x, (heatmap.shape[0] - 0.5) * stride_y, -stride_y / 2)
    ax.imshow(heatmap, cmap=cmap, alpha=alpha, extent=extent, interpolation="bilinear")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    return ax


def show_heatmaps(
    heatmaps: Any,
    names: Sequence[str] | None = COCO_KEYPOINTS,
    *,
    image: Any = None,
    cols: int = 6,
    size: float = 1.8,
    cmap: str = "magma",
) -> Figure:
    """A grid of the K maps of ``heatmaps`` ``(K, h, w)``, titled by ``names`` (over ``image`` if given)."""
    heatmaps = check_array(heatmaps, "heatmaps", (None, None, None))
    num_maps = heatmaps.shape[0]
    if names is not None and len(names) != num_maps:
        names = None  # a different keypoint set: number the maps instead
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be a positive integer, got {cols!r}")
    cols = min(cols, num_maps)
    rows = math.ceil(num_maps / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel()[num_maps:]:
        ax.set_axis_off()
    for k, ax in enumerate(axes.ravel()[:num_maps]):
        if image is not None:
            overlay_heatmap(image, heatmaps[k], ax=ax, alpha=0.6, cmap=cmap)
        else:
            ax.imshow(heatmaps[k], cmap=cmap)
            ax.set_axis_off()
        ax.set_title(names[k] if names is not None else str(k), fontsize=8)
    fig.tight_layout()
    return fig


def draw_keypoint_set(keypoint_set: str, ax: Axes | None = None, *, numbers: bool = True, fontsize: float = 7) -> Axes:
    """Draw a keypoint set (``"coco"``, ``"mpii"`` or ``"lsp"``) on a schematic front-facing person.

    Joints sit where :func:`course_lib.keypoints.template_pose` puts them, joined by the set's
    skeleton, in the course's side colours (the person's left, on the right of the picture,
    orange).  With ``numbers``, each joint is labelled with its 0-based index in the set, so
    the picture doubles as the index table.
    """
    from course_lib.keypoints import KEYPOINT_SETS, SKELETONS, template_pose

    if keypoint_set not in KEYPOINT_SETS:
        raise ValueError(f"keypoint_set must be one of {sorted(KEYPOINT_SETS)}, got {keypoint_set!r}")
    names = KEYPOINT_SETS[keypoint_set]
    pose = template_pose(keypoint_set)  # (K, 2)
    ax = _new_axes(ax, figsize=(2.4, 4))
    draw_pose(pose, skeleton=SKELETONS[keypoint_set], ax=ax, names=names, markersize=30)
    if numbers:
        for index, (name, (x, y)) in enumerate(zip(names, pose)):
            left_of_picture = name.startswith("right")  # the person's right is on the left of the picture
            ax.annotate(str(index), (x, y), xytext=(-5 if left_of_picture else 5, 0), textcoords="offset points",
                        ha="right" if left_of_picture else "left", va="center", fontsize=fontsize)
    ax.set_xlim(0, 120)
    ax.set_ylim(200, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{keypoint_set.upper()}-{len(names)}", fontsize=10)
    return ax


def draw_errors(
    pred: Any, gt: Any, visibility: Any = None, ax: Axes | None = None, *, color: str = "yellow",
    linewidth: float = 1.2, markersize: float = 10.0,
) -> Axes:
    """Draw each labelled joint's error: a line from the truth (a white dot) to the prediction (a dot in ``color``).

    Args:
        pred, gt: ``(K, 2)`` or ``(N, K, 2)`` image pixels.
        visibility: ``(K,)`` or ``(N, K)`` COCO flags of the truth (default all 2); joints with
            ``v = 0`` have no truth and are skipped.
        ax: axes to draw on (a new figure when None); an image's limits are kept.
    """
    pred = check_array(pred, "pred", (..., None, 2)).reshape(-1, 2)  # (N K, 2)
    gt = check_array(gt, "gt", (..., None, 2)).reshape(-1, 2)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    labelled = np.ones(len(gt), dtype=bool) if visibility is None else check_array(visibility, "visibility").reshape(-1) > 0
    if labelled.shape != (len(gt),):
        raise ValueError(f"visibility must have one flag per joint ({len(gt)}), got {labelled.size}")
    ax = _new_axes(ax)
    limits = (ax.get_xlim(), ax.get_ylim()) if ax.images else None
    for (x0, y0), (x1, y1) in zip(gt[labelled], pred[labelled]):
        ax.plot([x0, x1], [y0, y1], color=color, linewidth=linewidth)
    ax.scatter(*gt[labelled].T, s=markersize, c="white", edgecolors="black", linewidths=0.5, zorder=3)
    ax.scatter(*pred[labelled].T, s=markersize, c=color, edgecolors="black", linewidths=0.5, zorder=3)
    if limits is not None:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    elif not ax.yaxis_inverted():
        ax.invert_yaxis()
    return ax
