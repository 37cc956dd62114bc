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
from dataclasses import dataclass
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


# ============================================================================ block diagrams
BLOCK_SHAPES = ("box", "round", "down", "up", "circle")


@dataclass(frozen=True)
class Block:
    """One block of a diagram: ``name`` (for arrows), its ``label``, centre ``xy`` and ``size`` (w, h).

    ``shape``: ``"box"`` (a layer), ``"round"`` (an input or output), ``"down"`` / ``"up"``
    (a trapezoid narrowing or widening to the right: resolution going down or up),
    ``"circle"`` (an operation such as +).
    """

    name: str
    label: str
    xy: tuple[float, float]
    size: tuple[float, float] = (1.6, 0.8)
    shape: str = "box"
    color: str = "#dbe9f6"


def _block_patch(block: Block) -> Any:
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon

    (x, y), (w, h) = block.xy, block.size
    style = {"facecolor": block.color, "edgecolor": "#333333", "linewidth": 1.0, "zorder": 2}
    if block.shape == "circle":
        return Circle((x, y), min(w, h) / 2, **style)
    if block.shape in ("down", "up"):
        inset = 0.25 * h
        left, right = (h / 2, h / 2 - inset) if block.shape == "down" else (h / 2 - inset, h / 2)
        return Polygon([(x - w / 2, y - left), (x + w / 2, y - right), (x + w / 2, y + right), (x - w / 2, y + left)],
                       closed=True, **style)
    pad = 0.25 * min(w, h) if block.shape == "round" else 0.02
    return FancyBboxPatch((x - w / 2 + pad, y - h / 2 + pad), w - 2 * pad, h - 2 * pad,
                          boxstyle=f"round,pad={pad}", **style)


def _edge_point(block: Block, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from the block's centre towards ``towards`` leaves its bounding box."""
    (x, y), (w, h) = block.xy, block.size
    dx, dy = towards[0] - x, towards[1] - y
    if dx == 0 and dy == 0:
        return x, y
    scale = min(w / 2 / abs(dx) if dx else np.inf, h / 2 / abs(dy) if dy else np.inf)
    return x + dx * scale, y + dy * scale


def draw_block_diagram(
    blocks: Sequence[Block], arrows: Sequence[tuple], groups: Sequence[tuple[str, Sequence[str]]] = (),
    ax: Axes | None = None, *, title: str | None = None, fontsize: float = 8,
) -> Axes:
    """Draw a block diagram: blocks, arrows between them and dashed groups around some of them.

    Args:
        blocks: the :class:`Block` s (unique names).
        arrows: ``(from, to)`` or ``(from, to, label)`` block names; ``label`` is written at
            the arrow's middle (e.g. a tensor shape).
        groups: ``(label, [names])``: a dashed frame around these blocks, labelled below it.
        ax: axes to draw on (a new figure sized to the diagram when None).
    """
    from matplotlib.patches import FancyArrowPatch

    table = {}
    for block in blocks:
        if not isinstance(block, Block):
            raise TypeError(f"blocks must hold Block objects, got {type(block).__name__}")
        if block.shape not in BLOCK_SHAPES:
            raise ValueError(f"{block.name}: shape must be one of {', '.join(BLOCK_SHAPES)}, got {block.shape!r}")
        if block.name in table:
            raise ValueError(f"two blocks are named {block.name!r}")
        table[block.name] = block
    if not table:
        raise ValueError("blocks is empty: a diagram needs at least one block")
    xs = [b.xy[0] + s * b.size[0] / 2 for b in blocks for s in (-1, 1)]
    ys = [b.xy[1] + s * b.size[1] / 2 for b in blocks for s in (-1, 1)]
    ax = _new_axes(ax, figsize=(min(14.0, 1.0 + 0.8 * (max(xs) - min(xs))), 1.0 + 0.8 * (max(ys) - min(ys))))
    for label, names in groups:
        members = [_lookup(table, name, "groups") for name in names]
        left = min(b.xy[0] - b.size[0] / 2 for b in members) - 0.2
        right = max(b.xy[0] + b.size[0] / 2 for b in members) + 0.2
        bottom = min(b.xy[1] - b.size[1] / 2 for b in members) - 0.2
        top = max(b.xy[1] + b.size[1] / 2 for b in members) + 0.2
        ax.add_patch(Rectangle((left, bottom), right - left, top - bottom, fill=False, linestyle="--",
                               edgecolor="#777777", linewidth=0.9, zorder=1))
        ax.text(left, bottom - 0.08, label, fontsize=fontsize, color="#555555", va="top", ha="left")
        ys.append(bottom - 0.4)
    for block in blocks:
        ax.add_patch(_block_patch(block))
        ax.text(*block.xy, block.label, ha="center", va="center", fontsize=fontsize, zorder=3)
    for arrow in arrows:
        if len(arrow) not in (2, 3):
            raise ValueError(f"an arrow is (from, to) or (from, to, label), got {arrow!r}")
        start, end = _lookup(table, arrow[0], "arrows"), _lookup(table, arrow[1], "arrows")
        a, b = _edge_point(start, end.xy), _edge_point(end, start.xy)
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, color="#333333", linewidth=1.0,
                                     zorder=1.5, connectionstyle="arc3,rad=0.0"))
        if len(arrow) == 3 and arrow[2]:
            ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.08, str(arrow[2]), fontsize=fontsize - 1.5,
                    ha="center", va="bottom", color="#444444")
    ax.set_xlim(min(xs) - 0.3, max(xs) + 0.3)
    ax.set_ylim(min(ys) - 0.3, max(ys) + 0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 2)
    return ax


def _lookup(table: dict, name: str, where: str) -> Block:
    if name not in table:
        raise ValueError(f"{where} name the block {name!r}, which is not among the blocks: {', '.join(table)}")
    return table[name]


def _conv_summary(module: Any) -> str:
    """``"3 conv 9x9"``-like summary of the convolutions in a module, read from the module itself."""
    import torch.nn as nn

    kernels = [m.kernel_size[0] for m in module.modules() if isinstance(m, nn.Conv2d)]
    runs: list[list[int]] = []
    for k in kernels:
        if runs and runs[-1][0] == k:
            runs[-1][1] += 1
        else:
            runs.append([k, 1])
    return ", ".join(f"{n}x conv {k}x{k}" for k, n in runs)


def draw_cpm(model: Any, ax: Axes | None = None, *, max_stages: int = 3) -> Axes:
    """The diagram of a :class:`~course_lib.models.cpm.ConvolutionalPoseMachine`, read from the model:
    its stages (the first ``max_stages - 1`` and the last), their layers, strides and receptive fields."""
    import torch.nn as nn

    if not hasattr(model, "stage1") or not hasattr(model, "num_stages"):
        raise TypeError(f"model must be a ConvolutionalPoseMachine, got {type(model).__name__}")
    shown = list(range(1, min(model.num_stages, max_stages - 1) + 1))
    if model.num_stages not in shown:
        shown.append(model.num_stages)
    fields = model.receptive_fields()
    pools = sum(isinstance(m, nn.MaxPool2d) for m in model.stage1.modules())
    k = model.num_keypoints
    blocks = [Block("image", f"image\n{model.input_size[0]}x{model.input_size[1]}", (0, 0), shape="round")]
    arrows: list[tuple] = []
    if model.num_stages > 1:
        blocks.append(Block("trunk", f"image features\n{_conv_summary(model.features)}\n{pools} pools: stride {model.stride}",
                            (3.4, -1.6), (2.8, 1.0), shape="down", color="#e8f1e4"))
        arrows.append(("image", "trunk"))
    for column, t in enumerate(shown):
        x = 3.4 + 3.8 * column
        module = model.stage1 if t == 1 else model.stages[t - 2]
        text = f"stage {t}\n{_conv_summary(module).replace(', ', chr(10))}"
        blocks.append(Block(f"s{t}", text, (x, 0.9), (2.4, 1.4)))
        blocks.append(Block(f"b{t}", f"{k} belief maps\nfield {fields[t - 1]} px", (x, 2.6), (2.2, 0.8), shape="round",
                            color="#fde9d9"))
        arrows.append((f"s{t}", f"b{t}"))
        if t == 1:
            arrows.append(("image", "s1"))
        else:
            arrows.append(("trunk", f"s{t}"))
            arrows.append((f"b{shown[column - 1]}", f"s{t}", "beliefs" if shown[column - 1] == t - 1 else "..."))
    title = (f"{getattr(model, 'name', 'CPM')}: {model.num_stages} stages, each trained on its own belief maps "
             "(intermediate supervision)")
    return draw_block_diagram(blocks, arrows, [("stages 2..T share the image features", [f"s{t}" for t in shown[1:]])]
                              if len(shown) > 1 else (), ax, title=title)


def draw_stacked_hourglass(model: Any, ax: Axes | None = None, *, max_stacks: int = 3) -> Axes:
    """The diagram of a :class:`~course_lib.models.hourglass.StackedHourglass`, read from the model:
    stem, hourglasses (order, features), the residual after each hourglass where the layout has
    it, heatmap heads and the remapping into the next stack."""
    if not hasattr(model, "hourglasses") or not hasattr(model, "num_stacks"):
        raise TypeError(f"model must be a StackedHourglass, got {type(model).__name__}")
    shown = list(range(1, min(model.num_stacks, max_stacks - 1) + 1))
    if model.num_stacks not in shown:
        shown.append(model.num_stacks)
    h, w = model.input_size
    size = f"{model.num_features}x{h // model.stride}x{w // model.stride}"
    blocks = [Block("image", f"image\n{h}x{w}", (0, 0), (1.4, 0.8), shape="round"),
              Block("stem", f"stem: conv 7x7/2,\n3 residual, pool\nstride {model.stride}", (2.4, 0), (2.2, 1.1),
                    shape="down", color="#e8f1e4")]
    arrows: list[tuple] = [("image", "stem")]
    previous = "stem"
    for column, s in enumerate(shown):
        x = 5.2 + 4.4 * column
        blocks += [Block(f"hg{s}", f"hourglass {s}\norder {model.order}\n{model.num_features} ch", (x, 0), (1.6, 1.1),
                         shape="down", color="#dbe9f6")]
        head = f"residual + 1x1" if model.residual_after_hourglass else "1x1 conv"
        blocks += [Block(f"lin{s}", head, (x + 1.9, 0), (1.6, 0.7)),
                   Block(f"hm{s}", f"{model.num_keypoints} heatmaps\n(loss)", (x + 1.9, 1.6), (1.6, 0.8),
                         shape="round", color="#fde9d9")]
        skipped = column > 0 and shown[column - 1] != s - 1
        arrows += [(previous, f"hg{s}", size if column == 0 else "..." if skipped else ""), (f"hg{s}", f"lin{s}"),
                   (f"lin{s}", f"hm{s}")]
        if s < model.num_stacks:
            blocks.append(Block(f"add{s}", "+", (x + 3.1, -1.3), (0.6, 0.6), shape="circle"))
            arrows += [(previous, f"add{s}", "input"), (f"lin{s}", f"add{s}", "1x1"), (f"hm{s}", f"add{s}", "1x1")]
            previous = f"add{s}"
    revision = "released hg.lua" if model.residual_after_hourglass else "early hg.lua"
    title = f"{getattr(model, 'name', 'stacked hourglass')} ({revision}): {model.num_stacks} stacks, a loss on each"
    return draw_block_diagram(blocks, arrows, (), ax, title=title)


# ============================================================================ failure gallery
def failure_gallery(
    predictions: Any, images: Any, *, count: int = 6, names: Sequence[str] | None = None, cols: int = 6,
    size: float = 2.2, near: float = 0.1, far: float = 0.5,
) -> Figure:
    """The ``count`` worst predictions of a split, worst first, each labelled with its failure kind.

    The kinds are computed (:func:`course_lib.failures.worst_predictions`), never typed: a
    left/right swap, another person's joint, a missed joint, or jitter.

    Args:
        predictions: a :class:`course_lib.prediction.Predictions` of the split.
        images: ``images[i]`` (or ``images(i)``) is the image of person ``i`` in the
            predictions' pixels, e.g. ``[item["image"] for item in data.samples]``.
        names: the keypoint names, to name the failing joints (default COCO's when K = 17).
    """
    from course_lib.failures import worst_predictions

    failures = worst_predictions(predictions, count, near=near, far=far)
    num_keypoints = predictions.keypoints.shape[1]
    names = list(names) if names is not None else (list(COCO_KEYPOINTS) if num_keypoints == 17 else None)
    cols = max(1, min(int(cols), len(failures)))
    rows = math.ceil(len(failures) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, failure in zip(axes.flat, failures):
        i = failure.index
        show_image(images(i) if callable(images) else images[i], ax)
        draw_pose(predictions.keypoints[i], predictions.gt_visibility[i], ax=ax, alpha=0.6, markersize=0, linewidth=1)
        draw_errors(predictions.keypoints[i], predictions.gt_keypoints[i], predictions.gt_visibility[i], ax=ax,
                    color="red", markersize=6)
        ax.set_title(f"#{i}: error {failure.error:.2f}\n{failure.describe(names)}", fontsize=7)
    fig.suptitle("worst predictions (mean joint error in box sizes), with what went wrong", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# ============================================================================ diagrams of chapters 05-07
def _layers_of(module: Any, kind: type) -> list:
    return [m for m in module.modules() if isinstance(m, kind)]


def draw_simple_baseline(model: Any, ax: Axes | None = None) -> Axes:
    """The diagram of a :class:`~course_lib.models.simple_baseline.SimpleBaseline`, read from the model:
    its ResNet's stages (blocks, channels), each transposed convolution and the 1x1 head, with the
    shape of the features between them."""
    import torch.nn as nn

    if not hasattr(model, "backbone") or not hasattr(model, "deconv_layers"):
        raise TypeError(f"model must be a SimpleBaseline, got {type(model).__name__}")
    h, w = model.input_size
    deconvs = _layers_of(model.deconv_layers, nn.ConvTranspose2d)
    stages = [getattr(model.backbone, f"layer{i}") for i in range(1, 5)]
    channels = deconvs[0].in_channels if deconvs else model.final_layer.in_channels
    stride = model.stride * 2 ** len(deconvs)
    blocks = [Block("image", f"image\n3x{h}x{w}", (0, 0), (1.5, 0.8), shape="round"),
              Block("resnet", "ResNet encoder\n" + ", ".join(str(len(s)) for s in stages) + " blocks\n"
                    f"stride {stride}", (2.6, 0), (2.0, 1.2), shape="down", color="#e8f1e4")]
    arrows: list[tuple] = [("image", "resnet")]
    previous, x = "resnet", 2.6
    for i, deconv in enumerate(deconvs, start=1):
        x += 2.4
        blocks.append(Block(f"deconv{i}", f"deconv {deconv.kernel_size[0]}x{deconv.kernel_size[1]}/"
                            f"{deconv.stride[0]}\nBN, ReLU", (x, 0), (1.7, 0.9), shape="up"))
        arrows.append((previous, f"deconv{i}", f"{channels}x{h // stride}x{w // stride}"))
        previous, channels, stride = f"deconv{i}", deconv.out_channels, stride // deconv.stride[0]
    x += 2.4
    k = model.final_layer.out_channels
    blocks += [Block("head", "1x1 conv", (x, 0), (1.3, 0.7)),
               Block("maps", f"{k} heatmaps\n{h // stride}x{w // stride}", (x + 2.0, 0), (1.6, 0.8), shape="round",
                     color="#fde9d9")]
    arrows += [(previous, "head", f"{channels}x{h // stride}x{w // stride}"), ("head", "maps")]
    title = (f"{getattr(model, 'name', 'SimpleBaseline')}: a heavy encoder, {len(deconvs)} transposed convolutions, "
             "no skip connections")
    return draw_block_diagram(blocks, arrows, [("decoder", [f"deconv{i}" for i in range(1, len(deconvs) + 1)])]
                              if deconvs else (), ax, title=title)


def _fuse_label(layer: Any) -> str:
    """What one fuse layer of HRNet does, read from its modules: ``=``, ``1x1, up x4``, ``2 x 3x3/2``."""
    import torch.nn as nn

    if isinstance(layer, nn.Identity):
        return "="
    ups = [m for m in layer.modules() if isinstance(m, nn.Upsample)]
    if ups:
        return f"1x1, up x{int(ups[0].scale_factor)}"
    downs = [m for m in layer.modules() if isinstance(m, nn.Conv2d) and m.stride[0] == 2]
    return f"{len(downs)} x 3x3/2"


def draw_hrnet_fusion(module: Any, ax: Axes | None = None, *, into: int | None = None,
                      input_size: tuple[int, int] = (256, 192)) -> Axes:
    """How one output branch of an HRNet exchange unit (a
    :class:`~course_lib.models.hrnet.HighResolutionModule`) is made, read from its ``fuse_layers``:
    every input branch reaches it through the layer the module holds for that pair, and the
    contributions are summed.  ``into``: the output branch (0-based; default the middle one, which
    receives all three kinds: from finer branches, its own, from coarser ones)."""
    import torch.nn as nn

    if not hasattr(module, "fuse_layers") or not hasattr(module, "branches"):
        raise TypeError(f"module must be an HRNet HighResolutionModule, got {type(module).__name__}")
    outputs = len(module.fuse_layers)
    into = min(module.num_branches // 2, outputs - 1) if into is None else into
    if not (isinstance(into, int) and 0 <= into < outputs):
        raise ValueError(f"into must be an output branch in 0..{outputs - 1}, got {into!r}")
    h, w = input_size
    blocks, arrows = [], []
    middle = -1.6 * (module.num_branches - 1) / 2
    for b in range(module.num_branches):
        channels = _layers_of(module.branches[b], nn.Conv2d)[-1].out_channels
        size = f"{channels}x{h // 2 ** (b + 2)}x{w // 2 ** (b + 2)}"
        blocks.append(Block(f"in{b}", f"branch {b + 1}, 1/{2 ** (b + 2)}\n{size}", (0, -1.6 * b), (2.0, 0.8),
                            color="#e8f1e4"))
        arrows.append((f"in{b}", "sum", _fuse_label(module.fuse_layers[into][b])))
    blocks += [Block("sum", "+", (5.0, middle), (0.6, 0.6), shape="circle"),
               Block("out", f"branch {into + 1}, 1/{2 ** (into + 2)}\nafter ReLU", (7.2, middle), (1.9, 0.8),
                     shape="round", color="#fde9d9")]
    arrows.append(("sum", "out"))
    others = "every branch" if outputs == module.num_branches else "the 1/4 branch only"
    title = (f"HRNet's exchange unit, {module.num_branches} branches: how branch {into + 1} is made "
             f"(the module fuses into {others})")
    return draw_block_diagram(blocks, arrows, (), ax, title=title, fontsize=7)


def draw_roi_keypoint_model(model: Any, ax: Axes | None = None, *, image_size: tuple[int, int] = (128, 128)) -> Axes:
    """The diagram of a :class:`~course_lib.roi_keypoints.RoiKeypointNet` (a Mask R-CNN-style keypoint
    model), read from the model: the backbone's stride, the pooler and its grid, the head's layers."""
    import torch.nn as nn

    if not hasattr(model, "head") or not hasattr(model, "roi_size"):
        raise TypeError(f"model must be a RoiKeypointNet, got {type(model).__name__}")
    h, w = image_size
    convs = _layers_of(model.head.convs, nn.Conv2d)
    deconv = model.head.deconv
    channels, roi, k = model.head.in_channels, model.roi_size, model.num_keypoints
    pooler = "ROIAlign" if model.pooler == "align" else "ROIPool"
    output = roi * deconv.stride[0] * 2
    blocks = [Block("image", f"image\n3x{h}x{w}", (0, 0), (1.5, 0.8), shape="round"),
              Block("backbone", f"backbone\n(once per image)\nstride {model.stride}", (2.6, 0), (2.0, 1.1),
                    shape="down", color="#e8f1e4"),
              Block("boxes", "person boxes", (5.4, 1.7), (1.7, 0.7), shape="round"),
              Block("pool", f"{pooler}\n{roi}x{roi}" + (f", {model.sampling_ratio}x{model.sampling_ratio} samples"
                                                         if model.pooler == "align" else ""), (5.4, 0), (2.0, 0.9)),
              Block("convs", f"{len(convs)} x conv {convs[0].kernel_size[0]}x{convs[0].kernel_size[1]}\n"
                    f"{convs[0].out_channels} ch", (8.2, 0), (1.8, 0.9)),
              Block("deconv", f"deconv {deconv.kernel_size[0]}x{deconv.kernel_size[1]}/{deconv.stride[0]}\n"
                    "then bilinear x2", (10.8, 0), (1.9, 0.9), shape="up"),
              Block("logits", f"{k} x {output}x{output}\nlogits", (13.3, 0), (1.8, 0.8), shape="round",
                    color="#fde9d9"),
              Block("loss", f"softmax over\n{output}x{output} cells", (13.3, 1.7), (1.8, 0.8), color="#fde9d9")]
    arrows = [("image", "backbone"), ("backbone", "pool", f"{channels}x{h // model.stride}x{w // model.stride}"),
              ("boxes", "pool"), ("pool", "convs", f"R x {channels}x{roi}x{roi}"), ("convs", "deconv"),
              ("deconv", "logits"), ("logits", "loss")]
    title = f"A Mask R-CNN-style keypoint model: one backbone pass, {pooler} per box, a light keypoint head"
    return draw_block_diagram(blocks, arrows, [("keypoint head (once per box)", ["convs", "deconv"])], ax, title=title)
