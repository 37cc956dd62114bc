"""Interactive demos for class (chapters 02, 05, 06-08): each function returns an ipywidgets widget.

==========================  ========  ==========================================================
demo                        chapter   what moves, what is shown
==========================  ========  ==========================================================
:func:`heatmap_explorer`    02        keypoint position, sigma, stride, decoder, MSRA/unbiased;
                                      the target heatmap and where each decoder puts the joint
:func:`roi_explorer`        05        box, output size, scale, aligned, sampling ratio; ROIPool's
                                      quantised bins, ROIAlign's sampling points, both outputs
:func:`oks_explorer`        08        area ``s^2``, constant ``k_i``, displacements; the OKS rings
                                      on a person, per-keypoint similarities and the OKS
:func:`prediction_browser`  06-08     image and joint; prediction vs truth, the joint's heatmap,
                                      the error and whether it is within PCK@0.2
==========================  ========  ==========================================================

Every demo returns a :class:`Demo`, an ``ipywidgets.VBox`` (so it shows in JupyterLab and in
Voila) that also exposes what it displays, so that it can be driven and checked from code::

    demo = oks_explorer()
    demo.controls["dx"].value = 12.0      # move the selected keypoint 12 px to the right
    demo.state["oks"]                     # the OKS now shown (object_keypoint_similarity)
    demo.readout.value                    # the HTML of the numbers shown beside the picture

How the picture is redrawn: each demo owns one matplotlib ``Figure`` (Agg canvas, no pyplot
state); after a change the figure is redrawn and its PNG bytes replace the value of an
``ipywidgets.Image``.  Nothing is trained or predicted inside a callback: the prediction
browser runs the model once, up front, with :func:`course_lib.prediction.predict`.  Sliders
redraw when released (or at each arrow-key step), so that a long drag does not queue up a
redraw for every pixel it passes.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import ipywidgets as widgets
import matplotlib.patheffects as path_effects
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from course_lib import ops
from course_lib.heatmaps import DECODERS, Decoder, HeatmapCodec
from course_lib.keypoints import COCO_KEYPOINTS, COCO_SIGMAS
from course_lib.metrics import bbox_size, object_keypoint_similarity
from course_lib.validation import check_array, check_choice, check_integer, check_positive, check_size

__all__ = ["Demo", "heatmap_explorer", "oks_explorer", "prediction_browser", "roi_explorer"]

DPI = 80  # figure pixels per inch: the pictures are about 700-900 px wide, readable on a projector
DECODER_STYLES = {  # decoder of course_lib.heatmaps.DECODERS -> (colour, marker) in the heatmap explorer
    "argmax": ("#e41a1c", "s"),
    "quarter_offset": ("#ff7f00", "D"),
    "dark": ("#00c0ff", "o"),
    "soft_argmax": ("#d000d0", "^"),
}
OKS_RINGS = (0.5, 0.75, 0.95)  # keypoint similarities drawn as rings around the true keypoint
_OUTLINE = [path_effects.Stroke(linewidth=4.5, foreground="black"), path_effects.Normal()]  # visible on any colour
_TABLE = "border-collapse:collapse;font-size:13px;font-family:sans-serif;line-height:1.3"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:right"


# ============================================================================ the common frame
class Demo(widgets.VBox):
    """What every demo returns: its controls on top, and below them the picture with the numbers beside it.

    Attributes:
        controls: ``name -> control widget`` (sliders, dropdowns...); setting
            ``controls[name].value`` redraws the demo exactly as moving the control does.
        readout: ``ipywidgets.HTML`` whose ``value`` holds the numbers shown beside the picture.
        state: ``dict`` of the numbers (and arrays) currently shown, updated in place after
            every change; each demo's docstring lists its keys.  When the controls describe an
            impossible case (e.g. a box with ``x2 < x1``), ``state["problem"]`` holds the message
            shown in the readout and the picture keeps its last drawing.
        figure: the matplotlib ``Figure`` drawn into ``picture``.
        picture: ``ipywidgets.Image`` holding the figure as PNG bytes.

    ``draw(demo)`` fills ``demo.state``, draws on ``demo.figure`` and returns the readout's
    HTML.  ``react(name, value)``, if given, runs first when control ``name`` changes (inside
    :meth:`hold`, so that it may set other controls without redrawing for each of them).
    """

    def __init__(
        self,
        controls: dict[str, widgets.Widget],
        draw: Callable[[Demo], str],
        figsize: tuple[float, float],
        rows: Sequence[Sequence[str]],
        react: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.controls = dict(controls)
        self.state: dict[str, Any] = {}
        self.figure = Figure(figsize=figsize, dpi=DPI)
        FigureCanvasAgg(self.figure)
        self.picture = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto", flex="0 1 auto"))
        # The numbers sit beside the picture when there is room, and wrap below it when there is not
        # (JupyterLab's notebook column is narrower than the window): the readout never shrinks below
        # its table's width (flex-shrink 0, basis auto), so it moves below the picture instead of being
        # cut off at the right edge; only a column narrower than the table itself scrolls.
        self.readout = widgets.HTML(layout=widgets.Layout(margin="0 0 0 12px", width="auto", max_width="100%",
                                                          flex="1 0 auto", overflow="auto"))
        self._draw, self._react, self._holding = draw, react, False
        control_rows = [widgets.HBox([self.controls[name] for name in row],
                                     layout=widgets.Layout(flex_flow="row wrap", align_items="center")) for row in rows]
        picture_and_numbers = widgets.HBox([self.picture, self.readout],
                                           layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start",
                                                                 width="100%"))
        super().__init__([*control_rows, picture_and_numbers])
        for name, control in self.controls.items():
            if isinstance(control, widgets.Button):
                continue
            control.observe(lambda change, name=name: self._changed(name, change["new"]), names="value")
        self.refresh()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Change several controls without a redraw for each (redraw once afterwards with :meth:`refresh`)."""
        holding, self._holding = self._holding, True
        try:
            yield
        finally:
            self._holding = holding

    def _changed(self, name: str, value: Any) -> None:
        if self._holding:
            return
        if self._react is not None:
            with self.hold():
                self._react(name, value)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the numbers, redraw the figure and show both (called after every change)."""
        self.state.pop("problem", None)
        try:
            self.figure.clear()
            numbers = self._draw(self)
        except ValueError as error:  # an impossible setting: say so, keep the last picture
            self.state["problem"] = str(error)
            message = html.escape(str(error))
            self.readout.value = f"<div style='color:#c00000;font-size:14px;max-width:320px'>{message}</div>"
            return
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
        self.picture.value = buffer.getvalue()
        self.readout.value = numbers


_WIDE = {"description_width": "initial"}  # slider labels are not cut short


def _slider(
    description: str, value: float, low: float, high: float, step: float, width: str = "300px"
) -> widgets.FloatSlider:
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                               style=_WIDE, continuous_update=False, readout_format=".2f",
                               layout=widgets.Layout(width=width))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], bold_row: int | None = None) -> str:
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in header)
    body = ""
    for r, row in enumerate(rows):
        weight = "font-weight:bold;" if r == bold_row else ""
        body += "<tr>" + "".join(f"<td style='{weight}{_CELL}'>{cell}</td>" for cell in row) + "</tr>"
    return f"<table style='{_TABLE}'><tr>{head}</tr>{body}</table>"


# ============================================================================ chapter 02
def _decode_each(target: np.ndarray, codec: HeatmapCodec) -> dict[str, np.ndarray]:
    """Every decoder of :data:`~course_lib.heatmaps.DECODERS` on one ``(H, W)`` map -> name -> ``(2,)`` input pixels."""
    decoded = {name: replace(codec, decoder=name).decode(target[None, None])[0] for name in DECODERS}
    return {name: np.asarray(points[0, 0], dtype=np.float64) for name, points in decoded.items()}


def heatmap_explorer(
    x: float = 29.3,
    y: float = 26.6,
    sigma: float = 2.0,
    stride: int = 4,
    input_size: tuple[int, int] = (64, 64),
    unbiased: bool = False,
    decoder: str = "all",
) -> Demo:
    """Where the target puts a keypoint, and where each decoder reads it back (chapter 02).

    A keypoint at input pixel ``(x, y)`` lands on the heatmap of stride ``s`` at
    ``mu = (x / s, y / s)`` (MSRA convention, heatmap pixel ``u`` over input pixel ``u s``).
    The target is :func:`~course_lib.heatmaps.gaussian_heatmaps`,

        H(u, v) = exp(-((u - mu_x)^2 + (v - mu_y)^2) / (2 sigma^2)),

    with the centre rounded to a pixel (MSRA, Xiao et al. 2018) or kept at ``mu`` (unbiased,
    DARK: Zhang et al. 2020).  Encoding and decoding go through one
    :class:`~course_lib.heatmaps.HeatmapCodec`, with each decoder of
    :data:`~course_lib.heatmaps.DECODERS` in turn (DARK with the same sigma, soft-argmax at
    :data:`~course_lib.heatmaps.SOFT_ARGMAX_TEMPERATURE`); the error is ``|| (x', y') - (x, y) ||``
    in input pixels.  Argmax is off by up to ``s / 2`` per axis; DARK recovers sub-pixel
    positions from the unbiased target.

    Args:
        x, y: starting keypoint position in input pixels.
        sigma: starting sigma in heatmap pixels.
        stride: starting stride, one of 1, 2, 4, 8.
        input_size: ``(H, W)`` of the input crop; both must be multiples of 8.
        unbiased: start with the unbiased (DARK) target instead of MSRA's.
        decoder: ``"all"`` or one decoder's name: which positions are drawn.

    Returns:
        a :class:`Demo`.  Controls: ``x``, ``y`` (input px), ``sigma`` (heatmap px),
        ``stride``, ``unbiased`` (bool), ``decoder``.  ``state``: ``x``, ``y``, ``sigma``,
        ``stride``, ``unbiased``, ``heatmap_size`` ``(H, W)``, ``center`` (``mu``, heatmap px),
        ``target`` ``(H, W)``, ``decoded`` (name -> ``(2,)`` input px), ``errors`` (name ->
        input px), ``errors_heatmap`` (name -> heatmap px).
    """
    height, width = check_size(input_size, "input_size")
    if height % 8 or width % 8:
        raise ValueError(f"input_size must be multiples of 8 (for stride 8), got {input_size!r}")
    stride = check_choice(stride, "stride", (1, 2, 4, 8))
    sigma = check_positive(sigma, "sigma")
    decoder = check_choice(decoder, "decoder", ("all", *DECODERS))
    for name, value, limit in (("x", x, width - 1), ("y", y, height - 1)):
        if not (isinstance(value, (int, float, np.floating, np.integer)) and 0 <= value <= limit):
            raise ValueError(f"{name} must be a number in [0, {limit}] (input pixels), got {value!r}")
    controls = {
        "x": _slider("x (input px)", float(x), 0.0, width - 1.0, 0.05),
        "y": _slider("y (input px)", float(y), 0.0, height - 1.0, 0.05),
        "sigma": _slider("σ (heatmap px)", sigma, 0.5, 4.0, 0.25, "260px"),
        "stride": widgets.ToggleButtons(options=[1, 2, 4, 8], value=stride, description="stride",
                                        style={"button_width": "40px"}),
        "unbiased": widgets.ToggleButtons(options=[("MSRA (rounded centre)", False), ("unbiased (DARK)", True)],
                                          value=bool(unbiased), description="target", style={"button_width": "160px"}),
        "decoder": widgets.Dropdown(options=["all", *DECODERS], value=decoder, description="decoder"),
    }

    def draw(demo: Demo) -> str:
        c = {name: control.value for name, control in demo.controls.items()}
        s = int(c["stride"])
        codec = HeatmapCodec((height, width), (height // s, width // s), float(c["sigma"]),
                             "unbiased" if c["unbiased"] else "msra")
        truth = np.array([c["x"], c["y"]])
        target = codec.encode(truth[None, None], np.array([[2]]))[0][0, 0]  # (H, W)
        if target.max() <= 0:
            raise ValueError("the Gaussian's window misses the heatmap: move the keypoint inwards")
        decoded = _decode_each(target, codec)  # input pixels
        errors = {name: float(np.linalg.norm(point - truth)) for name, point in decoded.items()}
        demo.state.update(x=float(c["x"]), y=float(c["y"]), sigma=codec.sigma, stride=s, unbiased=bool(c["unbiased"]),
                          heatmap_size=codec.heatmap_size, center=truth / s, target=target, decoded=decoded,
                          errors=errors, errors_heatmap={name: error / s for name, error in errors.items()})
        _draw_heatmap_views(demo.figure, demo.state, list(DECODERS) if c["decoder"] == "all" else [c["decoder"]])
        return _heatmap_readout(demo.state, c["decoder"])

    return Demo(controls, draw, figsize=(10.0, 4.6), rows=[["x", "y", "sigma"], ["stride", "unbiased", "decoder"]])


def _draw_heatmap_views(figure: Figure, state: dict, shown: list[str]) -> None:
    """The whole target heatmap and a zoom on the keypoint, with the true and the decoded positions."""
    s, size, target, truth = state["stride"], state["heatmap_size"], state["target"], np.array([state["x"], state["y"]])
    extent = (-s / 2, (size[1] - 0.5) * s, (size[0] - 0.5) * s, -s / 2)  # heatmap pixel u covers u s +- s/2
    margins = {"left": 0.01, "right": 0.99, "bottom": 0.02, "top": 0.92, "wspace": 0.05}
    whole, zoom = figure.subplots(1, 2, gridspec_kw=margins)
    half = max(1.5 * s, 3.0)
    for ax, title in ((whole, f"target heatmap {size[0]} x {size[1]} (stride {s})"),
                      (zoom, "zoom: heatmap pixels and decoded positions")):
        ax.imshow(target, cmap="magma", extent=extent, vmin=0, vmax=1, interpolation="nearest")
        ax.plot(*truth, marker="+", color="white", markersize=18, markeredgewidth=2.5, linestyle="none",
                label="true keypoint", path_effects=_OUTLINE)
        for name in shown:
            colour, marker = DECODER_STYLES[name]
            ax.plot(*state["decoded"][name], marker=marker, markersize=9, markerfacecolor="none", markeredgecolor=colour,
                    markeredgewidth=2, linestyle="none", label=f"{name}: {state['errors'][name]:.2f} px")
        ax.set_title(title, fontsize=11)
        ax.set_axis_off()
    whole.add_patch(Rectangle((truth[0] - half, truth[1] - half), 2 * half, 2 * half, fill=False,
                              edgecolor="white", linestyle=":", linewidth=1))
    zoom.set_xlim(truth[0] - half, truth[0] + half)
    zoom.set_ylim(truth[1] + half, truth[1] - half)
    for edge in (np.arange(size[1] + 1) - 0.5) * s:  # borders between heatmap pixels
        zoom.axvline(edge, color="white", linewidth=0.5, alpha=0.4)
    for edge in (np.arange(size[0] + 1) - 0.5) * s:
        zoom.axhline(edge, color="white", linewidth=0.5, alpha=0.4)
    zoom.legend(loc="upper left", fontsize=9, framealpha=0.8)


def _heatmap_readout(state: dict, decoder: str) -> str:
    """The numbers beside the heatmap explorer's picture: where the keypoint is, each decoder's answer and error."""
    decoded, errors, s, center = state["decoded"], state["errors"], state["stride"], state["center"]
    rows = [[name, f"({decoded[name][0]:.2f}, {decoded[name][1]:.2f})", f"{errors[name]:.3f}", f"{errors[name] / s:.3f}"]
            for name in DECODERS]
    bold = None if decoder == "all" else list(DECODERS).index(decoder)
    kind = "unbiased (DARK)" if state["unbiased"] else "MSRA"
    return (f"<div style='font-size:14px'>keypoint ({state['x']:.2f}, {state['y']:.2f}) input px"
            f" = ({center[0]:.3f}, {center[1]:.3f}) heatmap px<br>{kind} target, σ = {state['sigma']:g}, stride {s}</div>"
            + _table(["decoder", "(x, y)<br>input px", "error<br>px", "error<br>heatmap px"], rows, bold))


# ============================================================================ chapter 05
def _roi_features(features: Any, feature_size: tuple[int, int], seed: int) -> np.ndarray:
    """The ``(H, W)`` feature map shown: the given one, or whole numbers 0..9 (readable in the cells)."""
    if features is None:
        size = check_size(feature_size, "feature_size")
        return np.random.default_rng(seed).integers(0, 10, size=size).astype(np.float32)
    features = check_array(features, "features", (None, None), allow_torch=True)
    features = np.asarray(torch.as_tensor(features).detach().cpu(), dtype=np.float32)
    if min(features.shape) < 2 or not np.isfinite(features).all():
        raise ValueError(f"features must be a finite (H, W) map with H, W >= 2, got shape {features.shape}")
    return features


def _annotate_cells(ax, values: np.ndarray, fontsize: float, dark_above: float, diverging: bool = False) -> None:
    """Write each cell's value in it, white where the colour is dark (``value`` or ``|value|`` > ``dark_above``)."""
    for (i, j), value in np.ndenumerate(values):
        dark = (abs(value) if diverging else value) > dark_above
        ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")


def _grid_picture(values: np.ndarray, cell: int = 36) -> np.ndarray:
    """The feature map as an RGBA picture, ``cell`` pixels per cell, with its values and cell borders.

    Drawn once per demo: writing 144 numbers is the slowest part of a redraw, and the map
    never changes, so every redraw shows this picture instead.
    """
    rows, cols = values.shape
    figure = Figure(figsize=(cols * cell / 100, rows * cell / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0, 0, 1, 1))
    low, high = float(values.min()), float(values.max())
    top = high + 0.6 * (high - low)  # the darkest blue stays light enough for black numbers
    ax.imshow(values, cmap="Blues", vmin=low, vmax=top, interpolation="nearest")
    if values.size <= 400:
        _annotate_cells(ax, values, cell / 4, dark_above=low + 0.6 * (top - low))
    ax.vlines(np.arange(cols + 1) - 0.5, -0.5, rows - 0.5, color="#999999", linewidth=0.8)
    ax.hlines(np.arange(rows + 1) - 0.5, -0.5, cols - 0.5, color="#999999", linewidth=0.8)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_axis_off()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()  # (rows * cell, cols * cell, 4)


def roi_explorer(
    box: Sequence[float] = (1.6, 2.3, 9.4, 7.8),
    output_size: int = 3,
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    aligned: bool = False,
    feature_size: tuple[int, int] = (12, 12),
    seed: int = 0,
    features: Any = None,
) -> Demo:
    """ROIPool's two roundings against ROIAlign's bilinear samples, on one feature map (chapter 05).

    The box ``(x1, y1, x2, y2)`` is given in image pixels; ``spatial_scale`` maps it onto the
    feature grid (cell ``(i, j)`` centred at ``x = j, y = i``).

    * ROIPool (Girshick 2015): ``X1 = round(x1 * scale)``..., bin ``(i, j)`` covers rows
      ``Y1 + floor(i b_h) .. Y1 + ceil((i + 1) b_h) - 1`` (same for columns) and outputs their
      maximum (:func:`~course_lib.ops.roi_pool_bins`, :func:`~course_lib.ops.roi_pool`).
    * ROIAlign (He et al. 2017): no rounding; bin ``(i, j)`` averages ``s_h x s_w`` bilinear
      samples at ``y = y1 + i b_h + (u + 0.5) b_h / s_h`` (same for x)
      (:func:`~course_lib.ops.roi_align_sampling_points`, :func:`~course_lib.ops.roi_align`).

    Args:
        box: starting ``(x1, y1, x2, y2)`` in image pixels.
        output_size: starting ``h = w`` of the pooled output (1..7).
        spatial_scale: starting scale, one of 1, 1/2, 1/4, 1/8.
        sampling_ratio: starting samples per bin and axis (1..4), or -1 for adaptive
            (``ceil(bin size)``).
        aligned: start with Detectron2's half-pixel shift.
        feature_size: ``(H, W)`` of the random feature map (whole numbers 0..9, from ``seed``).
        seed: seed of the random feature map.
        features: an ``(H, W)`` map to use instead (NumPy or torch).

    Returns:
        a :class:`Demo`.  Controls: ``x1``, ``y1``, ``x2``, ``y2`` (image px), ``output_size``,
        ``spatial_scale``, ``sampling_ratio``, ``aligned``.  ``state``: ``features`` ``(H, W)``,
        ``box``, ``box_on_grid`` (ROIAlign's continuous box on the grid), ``pool_rows``
        ``(h, 2)`` and ``pool_cols`` ``(w, 2)`` (cell ranges of ROIPool's bins),
        ``sampling_points`` ``(h, w, s_h, s_w, 2)``, ``roi_pool`` and ``roi_align`` ``(h, w)``,
        ``difference`` (``roi_align - roi_pool``).
    """
    feature_map = _roi_features(features, feature_size, seed)
    controls = _roi_controls(box, output_size, spatial_scale, sampling_ratio, aligned, feature_map.shape)
    grid_h, grid_w = feature_map.shape

    def react(name: str, value: Any) -> None:
        if name == "spatial_scale":  # the sliders cover the feature map in image pixels
            for key, cells in (("x1", grid_w), ("x2", grid_w), ("y1", grid_h), ("y2", grid_h)):
                controls[key].max = (cells - 1) / value

    features_tensor = torch.from_numpy(feature_map)[None, None]  # (1, 1, H, W)
    grid_picture = _grid_picture(feature_map)

    def draw(demo: Demo) -> str:
        c = {name: control.value for name, control in demo.controls.items()}
        for low, high in (("x1", "x2"), ("y1", "y2")):
            if c[high] < c[low]:
                raise ValueError(f"{high} ({c[high]:.2f}) must be >= {low} ({c[low]:.2f}): "
                                 "a box has x1 <= x2 and y1 <= y2")
        demo.state.update(_roi_state(features_tensor, c))
        layout = [["pool", "pool", "pool", "align", "align", "align"],
                  ["pool_out", "pool_out", "align_out", "align_out", "diff", "diff"]]
        margins = {"left": 0.04, "right": 0.99, "bottom": 0.01, "top": 0.96, "wspace": 0.25, "hspace": 0.12}
        axes = demo.figure.subplot_mosaic(layout, height_ratios=[2.2, 1], gridspec_kw=margins)
        _draw_roi_grids(axes, grid_picture, demo.state, float(c["spatial_scale"]))
        _draw_roi_outputs(axes, demo.state)
        return _roi_readout(demo.state)

    return Demo(controls, draw, figsize=(9.0, 7.2), react=react,
                rows=[["x1", "y1", "x2", "y2"], ["output_size", "spatial_scale", "sampling_ratio", "aligned"]])


_ROI_SCALES = {"1": 1.0, "1/2": 0.5, "1/4": 0.25, "1/8": 0.125}


def _roi_controls(box, output_size, spatial_scale, sampling_ratio, aligned, grid: tuple[int, int]) -> dict:
    """The ROI explorer's controls, after checking their starting values against the ``(H, W)`` feature grid."""
    grid_h, grid_w = grid
    if not any(v == spatial_scale for v in _ROI_SCALES.values()):
        raise ValueError(f"spatial_scale must be one of 1, 1/2, 1/4, 1/8, got {spatial_scale!r}")
    check_choice(sampling_ratio, "sampling_ratio", (-1, 1, 2, 3, 4))
    if isinstance(output_size, bool) or output_size not in range(1, 8):
        raise ValueError(f"output_size must be an integer in 1..7, got {output_size!r}")
    box = check_array(box, "box", (4,)).astype(float)
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1, got {box.tolist()}")

    def box_slider(name: str, value: float, cells: int) -> widgets.FloatSlider:
        high = (cells - 1) / spatial_scale
        if not -1 <= value <= high:
            raise ValueError(f"box {name} must be in [-1, {high:g}] image pixels for this feature map, got {value:g}")
        return _slider(f"{name} (image px)", value, -1.0, high, 0.05, "260px")

    return {
        "x1": box_slider("x1", box[0], grid_w), "y1": box_slider("y1", box[1], grid_h),
        "x2": box_slider("x2", box[2], grid_w), "y2": box_slider("y2", box[3], grid_h),
        "output_size": widgets.IntSlider(value=output_size, min=1, max=7, description="output size",
                                         style=_WIDE, layout=widgets.Layout(width="260px")),
        "spatial_scale": widgets.ToggleButtons(options=list(_ROI_SCALES.items()), value=spatial_scale,
                                               description="spatial scale", style={"button_width": "45px", **_WIDE}),
        "sampling_ratio": widgets.Dropdown(options=[("adaptive", -1), ("1", 1), ("2", 2), ("3", 3), ("4", 4)],
                                           value=sampling_ratio, description="sampling ratio", style=_WIDE,
                                           layout=widgets.Layout(width="220px")),
        "aligned": widgets.Checkbox(value=bool(aligned), description="aligned (-0.5 shift)", style=_WIDE),
    }


def _roi_state(features: torch.Tensor, c: dict) -> dict:
    """What the ROI explorer shows for the controls' values ``c``: both operators' bins, samples and outputs."""
    box = [c["x1"], c["y1"], c["x2"], c["y2"]]
    size, scale = int(c["output_size"]), float(c["spatial_scale"])
    ratio, shift = int(c["sampling_ratio"]), bool(c["aligned"])
    rows, cols = ops.roi_pool_bins(box, size, scale, feature_size=tuple(features.shape[-2:]))
    points = ops.roi_align_sampling_points(box, size, scale, ratio, shift)  # (h, w, s_h, s_w, 2)
    rois = torch.tensor([[0.0, *box]])
    pooled = ops.roi_pool(features, rois, size, scale)[0, 0].numpy()  # (h, w)
    aligned_out = ops.roi_align(features, rois, size, scale, ratio, shift)[0, 0].numpy()  # (h, w)
    offset = 0.5 if shift else 0.0
    return dict(features=features[0, 0].numpy(), box=tuple(box),
                box_on_grid=tuple(v * scale - offset for v in box),  # ROIAlign's box on the grid
                pool_rows=rows.numpy(), pool_cols=cols.numpy(), sampling_points=points.numpy(),
                roi_pool=pooled, roi_align=aligned_out, difference=aligned_out - pooled, aligned=shift)


def _roi_align_extent(state: dict) -> tuple[float, float, float, float]:
    """ROIAlign's box on the grid as ``(x1, y1, w, h)``, at least one cell wide without ``aligned``."""
    x1, y1, x2, y2 = state["box_on_grid"]
    if state["aligned"]:
        return x1, y1, x2 - x1, y2 - y1
    return x1, y1, max(x2 - x1, 1.0), max(y2 - y1, 1.0)


def _draw_roi_grids(axes: dict, grid_picture: np.ndarray, state: dict, scale: float) -> None:
    """The feature grid twice: ROIPool's quantised bins with each bin's maximum, ROIAlign's bins and samples."""
    grid_h, grid_w = state["features"].shape
    exact = [v * scale for v in state["box"]]  # the box on the grid before any rounding (ROIPool's input)
    for key, title, (bx1, by1, bx2, by2) in (("pool", "ROIPool: rounded box, quantised bins, max cell", exact),
                                             ("align", "ROIAlign: exact bins, bilinear sampling points",
                                              state["box_on_grid"])):
        ax = axes[key]
        ax.imshow(grid_picture, extent=(-0.5, grid_w - 0.5, grid_h - 0.5, -0.5))
        ax.tick_params(labelsize=8)
        ax.set_title(title, fontsize=10)
        ax.add_patch(Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, edgecolor="black", linestyle="--",
                               linewidth=1.5))
        ax.set_xlim(-0.5, grid_w - 0.5)
        ax.set_ylim(grid_h - 0.5, -0.5)
    colours = ["#e41a1c", "#ff7f00", "#4daf4a", "#984ea3", "#a65628", "#f781bf", "#377eb8"]
    for i, (r0, r1) in enumerate(state["pool_rows"].tolist()):
        for j, (c0, c1) in enumerate(state["pool_cols"].tolist()):
            colour = colours[(i + 2 * j) % len(colours)]
            if r1 <= r0 or c1 <= c0:
                continue  # an empty bin (outside the map) pools to 0
            inset = 0.08 * ((i + j) % 2)  # neighbouring bins can share cells: offset them a little
            axes["pool"].add_patch(Rectangle((c0 - 0.5 + inset, r0 - 0.5 + inset), c1 - c0 - 2 * inset,
                                             r1 - r0 - 2 * inset, facecolor=colour, alpha=0.18, edgecolor=colour,
                                             linewidth=2))
            cell = state["features"][r0:r1, c0:c1]
            best_r, best_c = np.unravel_index(np.argmax(cell), cell.shape)
            axes["pool"].add_patch(Circle((c0 + best_c, r0 + best_r), 0.38, fill=False, edgecolor=colour, linewidth=2))
    x1, y1, box_w, box_h = _roi_align_extent(state)
    size = state["roi_align"].shape[0]
    for i in range(size + 1):
        axes["align"].plot([x1, x1 + box_w], [y1 + i * box_h / size] * 2, color="#e41a1c", linewidth=1)
        axes["align"].plot([x1 + i * box_w / size] * 2, [y1, y1 + box_h], color="#e41a1c", linewidth=1)
    flat = state["sampling_points"].reshape(-1, 2)
    axes["align"].plot(flat[:, 0], flat[:, 1], "o", color="#e41a1c", markersize=4, markeredgecolor="white",
                       markeredgewidth=0.6)


def _draw_roi_outputs(axes: dict, state: dict) -> None:
    """The two pooled outputs and their difference, each cell with its value."""
    pooled, aligned_out = state["roi_pool"], state["roi_align"]
    low = min(pooled.min(), aligned_out.min())
    high = max(pooled.max(), aligned_out.max(), low + 1e-6)
    limit = max(float(np.abs(aligned_out - pooled).max()), 1e-6)
    fontsize = 9 if pooled.shape[0] <= 4 else 7
    for key, values, title, cmap, lo, hi, diverging in (
        ("pool_out", pooled, "ROIPool output (max)", "Blues", low, high + 0.6 * (high - low), False),
        ("align_out", aligned_out, "ROIAlign output (mean)", "Blues", low, high + 0.6 * (high - low), False),
        ("diff", aligned_out - pooled, "ROIAlign - ROIPool", "RdBu", -limit, limit, True),
    ):
        ax = axes[key]
        ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi)
        _annotate_cells(ax, values, fontsize, 0.5 * limit if diverging else lo + 0.6 * (hi - lo), diverging=diverging)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])


def _roi_readout(state: dict) -> str:
    """The numbers beside the ROI explorer's picture."""
    rows, cols, points = state["pool_rows"], state["pool_cols"], state["sampling_points"]
    pooled, aligned_out = state["roi_pool"], state["roi_align"]
    bx1, by1, bx2, by2 = state["box"]
    x1, y1, x2, y2 = state["box_on_grid"]
    _, _, box_w, box_h = _roi_align_extent(state)
    size = aligned_out.shape[0]
    return (
        f"<div style='font-size:14px;line-height:1.5'>box (image px) ({bx1:.2f}, {by1:.2f}, {bx2:.2f}, {by2:.2f})"
        f"<br>on the grid ({x1:.2f}, {y1:.2f}, {x2:.2f}, {y2:.2f})<br>"
        f"<b>ROIPool</b>: bins of {(rows[:, 1] - rows[:, 0]).tolist()} rows x "
        f"{(cols[:, 1] - cols[:, 0]).tolist()} columns (first cell: row {int(rows[0, 0])}, column {int(cols[0, 0])})<br>"
        f"<b>ROIAlign</b>: bins {box_h / size:.3f} x {box_w / size:.3f} cells, "
        f"{points.shape[2]} x {points.shape[3]} = {points.shape[2] * points.shape[3]} samples per bin<br>"
        f"mean output: ROIPool {pooled.mean():.3f}, ROIAlign {aligned_out.mean():.3f}<br>"
        f"largest |difference| {np.abs(aligned_out - pooled).max():.3f}</div>"
    )


# ============================================================================ chapter 08
def _ring_radius(similarity: float, area: float, k: float) -> float:
    """Distance at which ``exp(-d^2 / (2 s^2 k^2))`` equals ``similarity``: ``d = s k sqrt(-2 ln t)``."""
    return math.sqrt(area) * k * math.sqrt(-2.0 * math.log(similarity))


def oks_explorer(
    person: dict | None = None,
    area: float | None = None,
    keypoint: int | str = 0,
    sigmas: np.ndarray = COCO_SIGMAS,
) -> Demo:
    """OKS of a displaced prediction, with the similarity rings around each true keypoint (chapter 08).

        OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0]  /  sum_i [v_i > 0],   k_i = 2 sigma_i

    (COCO, Lin et al. 2014; :func:`~course_lib.metrics.object_keypoint_similarity`).  The
    prediction starts on the ground truth and is moved by ``(dx, dy)``: the selected keypoint
    alone (each keypoint keeps its own displacement) or, with ``together``, all keypoints at
    once (added to their own displacements).  A ring of radius ``d = s k_i sqrt(-2 ln t)``
    around keypoint ``i`` is where its similarity equals ``t`` (0.5, 0.75, 0.95).

    Args:
        person: a dict with ``image`` ``(H, W, 3)``, ``keypoints`` ``(K, 2)``, ``visibility``
            ``(K,)`` and ``area`` (an item of :class:`~course_lib.data.CocoKeypoints`);
            default :func:`course_lib.data.astronaut`.
        area: starting object area ``s^2`` in pixels^2 (default: the person's ``area``).
        keypoint: starting keypoint (index or name); must be labelled.
        sigmas: ``(K,)`` starting per-keypoint constants (``k_i = 2 sigma_i``).

    Returns:
        a :class:`Demo`.  Controls: ``keypoint``, ``area``, ``k`` (the selected keypoint's
        ``k_i``), ``dx``, ``dy`` (px), ``together`` (bool), ``reset`` (a button: all
        displacements back to 0).  ``state``: ``keypoint``, ``area``, ``sigmas`` ``(K,)``,
        ``displacements`` ``(K, 2)``, ``pred`` and ``gt`` ``(K, 2)``, ``visibility``,
        ``similarities`` ``(K,)`` (NaN where not labelled), ``oks``, ``rings`` (similarity ->
        radius in px of the selected keypoint).
    """
    image, gt, visibility, names, sigma_values, area, keypoint = _oks_inputs(person, area, keypoint, sigmas)
    labelled = visibility > 0
    own = np.zeros((len(gt), 2))  # each keypoint's own displacement
    common = np.zeros(2)  # the displacement of all keypoints together
    controls = _oks_controls(names, labelled, keypoint, area, sigma_values)

    def show_displacement() -> None:
        """Put the displacement being edited (own or common) on the dx, dy sliders."""
        shown = common if controls["together"].value else own[controls["keypoint"].value]
        controls["dx"].value, controls["dy"].value = float(shown[0]), float(shown[1])

    def react(name: str, value: Any) -> None:
        edited = common if controls["together"].value else own[controls["keypoint"].value]
        if name in ("dx", "dy"):
            edited[0 if name == "dx" else 1] = value
        elif name == "k":
            sigma_values[controls["keypoint"].value] = value / 2
        elif name == "keypoint":
            controls["k"].value = 2 * sigma_values[value]
            show_displacement()
        elif name == "together":
            show_displacement()

    def draw(demo: Demo) -> str:
        k, area_now = int(controls["keypoint"].value), float(controls["area"].value)
        displacements = own + common  # (K, 2)
        pred = gt + displacements
        distances = np.linalg.norm(displacements, axis=-1)  # (K,)
        similarities = np.exp(-(distances**2) / (2 * area_now * (2 * sigma_values) ** 2))
        demo.state.update(keypoint=k, area=area_now, sigmas=sigma_values.copy(), displacements=displacements.copy(),
                          pred=pred, gt=gt, visibility=visibility, similarities=np.where(labelled, similarities, np.nan),
                          oks=float(object_keypoint_similarity(pred, gt, visibility, area_now, sigma_values)),
                          rings={t: _ring_radius(t, area_now, 2 * sigma_values[k]) for t in OKS_RINGS})
        _draw_oks(demo.figure, demo.state, image, names)
        return _oks_readout(demo.state, names)

    demo = Demo(controls, draw, figsize=(11.5, 4.6), react=react,
                rows=[["keypoint", "area", "k"], ["dx", "dy", "together", "reset"]])

    def reset(_button: widgets.Button) -> None:
        own[:] = 0
        common[:] = 0
        with demo.hold():
            show_displacement()
        demo.refresh()

    controls["reset"].on_click(reset)
    return demo


def _oks_inputs(person, area, keypoint, sigmas) -> tuple:
    """The OKS explorer's checked inputs: ``image, gt, visibility, names, sigmas, area, keypoint`` (an index)."""
    if person is None:
        from course_lib.data import astronaut

        person = astronaut()
    if not isinstance(person, dict) or not {"image", "keypoints", "visibility"} <= set(person):
        raise TypeError("person must be a dict with 'image', 'keypoints' and 'visibility' (a CocoKeypoints item)")
    dims: dict[str, int] = {}
    gt = check_array(person["keypoints"], "person['keypoints']", ("K", 2), dims=dims, dtype=float)
    visibility = check_array(person["visibility"], "person['visibility']", ("K",), dims=dims)
    image = check_array(person["image"], "person['image']")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"person['image'] must have shape (H, W) or (H, W, 3), got {image.shape}")
    num_keypoints = dims["K"]
    if not (visibility > 0).any():
        raise ValueError("person must have at least one labelled keypoint (visibility > 0)")
    sigma_values = np.array(check_array(sigmas, "sigmas", (num_keypoints,), dtype=float), dtype=float)
    if not (sigma_values > 0).all():
        raise ValueError(f"sigmas must all be > 0, got {sigma_values.tolist()}")
    if area is None:
        if "area" not in person:
            raise ValueError("person has no 'area': pass area")
        area = person["area"]
    names = list(COCO_KEYPOINTS) if num_keypoints == len(COCO_KEYPOINTS) else [
        f"keypoint {i}" for i in range(num_keypoints)]
    keypoint = _joint_index(keypoint, names, "keypoint")
    if not visibility[keypoint] > 0:
        raise ValueError(f"keypoint {names[keypoint]!r} is not labelled on this person (visibility 0): pick another")
    return image, gt, visibility, names, sigma_values, check_positive(area, "area"), keypoint


def _joint_index(joint: int | str, names: list[str], name: str) -> int:
    """A joint given by index or by name -> its index; a clear error naming ``name`` otherwise."""
    if isinstance(joint, str):
        joint = names.index(check_choice(joint, name, tuple(names)))
    if isinstance(joint, bool) or not isinstance(joint, (int, np.integer)) or not 0 <= joint < len(names):
        raise ValueError(f"{name} must be an index in [0, {len(names) - 1}] or a name, got {joint!r}")
    return int(joint)


def _oks_controls(names: list[str], labelled: np.ndarray, keypoint: int, area: float, sigmas: np.ndarray) -> dict:
    """The OKS explorer's controls: the keypoint, the area, its constant k_i, the displacement, the buttons."""
    reach = float(max(10.0, round(0.4 * math.sqrt(area))))  # displacement range, px
    controls = {
        "keypoint": widgets.Dropdown(options=[(names[i], i) for i in np.flatnonzero(labelled)], value=keypoint,
                                     description="keypoint", layout=widgets.Layout(width="240px")),
        "area": widgets.FloatLogSlider(value=area, base=10, min=math.log10(area / 25), max=math.log10(area * 4),
                                       step=0.01, description="area s² (px²)", style=_WIDE, readout_format=".4g",
                                       layout=widgets.Layout(width="330px")),
        "k": _slider("k_i = 2σ_i", 2 * sigmas[keypoint], 0.01, 0.3, 0.005, "280px"),
        "dx": _slider("dx (px)", 0.0, -reach, reach, 0.5, "280px"),
        "dy": _slider("dy (px)", 0.0, -reach, reach, 0.5, "280px"),
        "together": widgets.Checkbox(value=False, description="move all keypoints together", style=_WIDE),
        "reset": widgets.Button(description="reset displacements"),
    }
    for control in ("k", "dx", "dy"):
        controls[control].readout_format = ".3f" if control == "k" else ".1f"
    return controls


def _draw_oks(figure: Figure, state: dict, image: np.ndarray, names: list[str]) -> None:
    """The person with the 0.5 rings, a zoom on the selected keypoint with its rings, the similarity bars."""
    from course_lib.viz import draw_pose, show_image

    k, gt, pred, visibility = state["keypoint"], state["gt"], state["pred"], state["visibility"]
    labelled, sigmas, rings = visibility > 0, state["sigmas"], state["rings"]
    margins = {"left": 0.01, "right": 0.98, "bottom": 0.08, "top": 0.92, "wspace": 0.35}
    whole, zoom, bars = figure.subplots(1, 3, width_ratios=[1.2, 1.0, 0.9], gridspec_kw=margins)
    for ax in (whole, zoom):
        show_image(image, ax)
        draw_pose(gt, visibility, ax=ax, names=names if len(names) == 17 else None, linewidth=1.5, markersize=20,
                  alpha=0.8)
        ax.plot(pred[labelled, 0], pred[labelled, 1], "x", color="red", markersize=7, markeredgewidth=2)
    for i in np.flatnonzero(labelled):  # the 0.5 ring of every labelled keypoint
        whole.add_patch(Circle(gt[i], _ring_radius(0.5, state["area"], 2 * sigmas[i]), fill=False,
                               edgecolor="yellow" if i == k else "white", linewidth=1.5 if i == k else 0.7, alpha=0.9))
    for t, radius in rings.items():
        zoom.add_patch(Circle(gt[k], radius, fill=False, edgecolor="yellow", linewidth=1.5))
        zoom.text(gt[k][0] + radius * 0.71, gt[k][1] - radius * 0.71, f"{t:g}", color="yellow", fontsize=10,
                  fontweight="bold")
    zoom.plot([gt[k][0], pred[k][0]], [gt[k][1], pred[k][1]], color="red", linewidth=1.5)
    corners = np.concatenate([gt[labelled], pred[labelled]])
    margin = 0.15 * math.sqrt(state["area"])
    whole.set_xlim(corners[:, 0].min() - margin, corners[:, 0].max() + margin)
    whole.set_ylim(corners[:, 1].max() + margin, corners[:, 1].min() - margin)
    half = max(rings[min(OKS_RINGS)], float(np.linalg.norm(state["displacements"][k]))) * 1.25 + 2
    zoom.set_xlim(gt[k][0] - half, gt[k][0] + half)
    zoom.set_ylim(gt[k][1] + half, gt[k][1] - half)
    whole.set_title(f"OKS = {state['oks']:.3f}   (rings: similarity 0.5)", fontsize=11)
    zoom.set_title(f"{names[k]}: similarity {state['similarities'][k]:.3f}", fontsize=11)
    order = np.flatnonzero(labelled)
    bars.barh(np.arange(len(order)), state["similarities"][order],
              color=["#ffb000" if i == k else "#4477aa" for i in order])
    bars.axvline(state["oks"], color="red", linestyle="--", label=f"OKS {state['oks']:.3f}")
    bars.set_yticks(np.arange(len(order)), [names[i] for i in order], fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_title("keypoint similarity", fontsize=11)
    bars.legend(loc="lower right", fontsize=9)


def _oks_readout(state: dict, names: list[str]) -> str:
    """The numbers beside the OKS explorer's picture: s, the OKS, the rings, one row per labelled keypoint."""
    k, sigmas, similarities = state["keypoint"], state["sigmas"], state["similarities"]
    distances = np.linalg.norm(state["displacements"], axis=-1)
    order = list(np.flatnonzero(state["visibility"] > 0))
    rows = [[names[i], f"{2 * sigmas[i]:.3f}", f"{distances[i]:.1f}", f"{similarities[i]:.3f}"] for i in order]
    return (f"<div style='font-size:14px;line-height:1.5'>s = √area = {math.sqrt(state['area']):.1f} px; "
            f"<b>OKS = {state['oks']:.4f}</b><br>{names[k]}: similarity {similarities[k]:.3f}; rings at "
            + ", ".join(f"{t:g} → {r:.1f} px" for t, r in state["rings"].items()) + "</div>"
            + _table(["keypoint", "k_i", "d_i px", "similarity"], rows, bold_row=order.index(k)))


# ============================================================================ chapters 06-08
def _top_down_base(dataset: Any):
    """The :class:`~course_lib.top_down.TopDownDataset` under any ``Subset`` wrappers, or a TypeError."""
    from course_lib.top_down import TopDownDataset

    base = dataset
    while isinstance(base, torch.utils.data.Subset):
        base = base.dataset
    if not isinstance(base, TopDownDataset):
        raise TypeError(
            "dataset must be a course_lib.top_down.TopDownDataset (e.g. course_lib.training.top_down_data(...)), "
            f"or a Subset of one; got {type(dataset).__name__}"
        )
    return base


def _original_item(dataset: Any, index: int) -> dict:
    """The un-cropped sample (``image``, ``keypoints``...) behind item ``index`` of a top-down data set."""
    while isinstance(dataset, torch.utils.data.Subset):
        index = dataset.indices[index]
        dataset = dataset.dataset
    return dataset.samples[index]


def _keypoint_names(samples: Any, num_keypoints: int) -> list[str]:
    """The names the data set gives its keypoints (e.g. ``CocoKeypoints.keypoint_names``), else COCO's or numbers."""
    while isinstance(samples, torch.utils.data.Subset):
        samples = samples.dataset
    names = getattr(samples, "keypoint_names", None)
    if names is not None and len(names) == num_keypoints:
        return list(names)
    if num_keypoints == len(COCO_KEYPOINTS):
        return list(COCO_KEYPOINTS)
    return [f"joint {i}" for i in range(num_keypoints)]


def prediction_browser(
    model: torch.nn.Module,
    dataset: Any,
    *,
    decoder: Decoder = "dark",
    index: int = 0,
    joint: int | str = 0,
    batch_size: int = 32,
    device: str = "cpu",
) -> Demo:
    """Browse a model's predictions on a top-down data set: the image, one joint's heatmap, the error.

    The model runs once, here, through :func:`course_lib.prediction.predict` (which decodes
    the heatmaps with the data set's codec and maps the keypoints back to the original image),
    keeping the heatmaps it decoded for display.  Moving a control only redraws.  A joint is
    correct at PCK@0.2 when

        || pred - gt || / max(w, h) <= 0.2        (the person box, as the course's training curves)

    Args:
        model: a heatmap model (``(N, K, h, w)`` output, or a list of stages) or a coordinate
            regressor (``(N, K, 2)``, shown without a heatmap).
        dataset: a :class:`~course_lib.top_down.TopDownDataset` without augmentation (e.g.
            :func:`course_lib.training.top_down_data`), or a ``Subset`` of one.
        decoder: how heatmaps are read: a name of :data:`course_lib.heatmaps.DECODERS` or a
            function, as for :func:`course_lib.prediction.predict`.
        index: starting position in the browsing order.
        joint: starting joint (index or name).
        batch_size, device: for the single prediction pass.

    Returns:
        a :class:`Demo`.  Controls: ``index``, ``joint``, ``order`` (``"data"``: data set
        order, ``"worst"``: largest mean error first).  ``state``: ``item`` (data set index
        shown), ``joint``, ``pred``, ``gt`` (``(2,)`` image px), ``visible`` (flag), ``error``
        (px, NaN if not labelled), ``pck_radius`` (px), ``within_pck`` (bool), ``score``,
        ``heatmap`` (``(h, w)`` or None), ``mean_error`` (this person, px), ``predictions``
        (the :class:`~course_lib.prediction.Predictions`).
    """
    from course_lib.prediction import predict

    base = _check_browser_inputs(model, dataset, decoder)
    predictions = predict(model, dataset, decoder=decoder, batch_size=batch_size, device=device, keep_heatmaps=True)
    if predictions.keypoints.shape != predictions.gt_keypoints.shape:
        raise ValueError(f"the model predicts {predictions.keypoints.shape[1]} keypoints but the data set has "
                         f"{predictions.gt_keypoints.shape[1]}")
    errors = predictions.errors  # (N, K), NaN where not labelled
    with np.errstate(invalid="ignore"):
        mean_errors = np.array([np.nanmean(row) if np.isfinite(row).any() else -1.0 for row in errors])
    orders = {"data": np.arange(len(errors)), "worst": np.argsort(-mean_errors, kind="stable")}
    names = _keypoint_names(base.samples, errors.shape[1])
    joint = _joint_index(joint, names, "joint")
    index = check_integer(index, "index", minimum=0, maximum=len(errors) - 1)
    controls = {
        "index": widgets.IntSlider(value=index, min=0, max=len(errors) - 1, description="image",
                                   layout=widgets.Layout(width="420px")),
        "joint": widgets.Dropdown(options=[(name, i) for i, name in enumerate(names)], value=joint,
                                  description="joint", layout=widgets.Layout(width="240px")),
        "order": widgets.ToggleButtons(options=[("data set order", "data"), ("worst first", "worst")], value="data",
                                       description="order", style={"button_width": "110px"}),
    }

    def draw(demo: Demo) -> str:
        n = int(orders[controls["order"].value][controls["index"].value])
        k = int(controls["joint"].value)
        p = predictions
        person_size = float(bbox_size(p.boxes[n : n + 1])[0])  # max(w, h), PCK's normaliser
        error, flag = float(errors[n, k]), int(p.gt_visibility[n, k])
        demo.state.update(item=n, joint=k, pred=p.keypoints[n, k], gt=p.gt_keypoints[n, k], visible=flag, error=error,
                          pck_radius=0.2 * person_size, within_pck=bool(flag > 0 and error / person_size <= 0.2),
                          score=float(p.scores[n, k]), heatmap=None if p.heatmaps is None else p.heatmaps[n, k],
                          mean_error=float(mean_errors[n]), predictions=p)
        margins = {"left": 0.01, "right": 0.99, "bottom": 0.02, "top": 0.92, "wspace": 0.05}
        whole, crop_axes = demo.figure.subplots(1, 2, gridspec_kw=margins)
        _draw_prediction_in_image(whole, demo.state, _original_item(dataset, n)["image"], names)
        _draw_prediction_in_crop(crop_axes, demo.state, dataset[n])
        return _prediction_readout(demo.state, names)

    return Demo(controls, draw, figsize=(10.0, 4.8), rows=[["index", "joint", "order"]])


def _check_browser_inputs(model: Any, dataset: Any, decoder: Any):
    """The prediction browser's checks; returns the top-down data set under ``dataset``."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    base = _top_down_base(dataset)
    if len(dataset) == 0:
        raise ValueError("dataset is empty: nothing to browse")
    if base.augment:
        raise ValueError("dataset must not be augmented (augment=False): predictions are compared with the truth")
    if not callable(decoder):
        check_choice(decoder, "decoder", tuple(DECODERS))
    return base


def _draw_prediction_in_image(ax, state: dict, image: np.ndarray, names: list[str]) -> None:
    """The whole image around the person: its true pose, every predicted joint, the selected one and its PCK circle."""
    from course_lib.viz import draw_box, draw_pose, show_image

    p, n, k = state["predictions"], state["item"], state["joint"]
    pred, gt = state["pred"], state["gt"]
    show_image(image, ax)
    draw_box(p.boxes[n], ax, color="white", linewidth=1)
    draw_pose(p.gt_keypoints[n], p.gt_visibility[n], ax=ax, names=names if len(names) == 17 else None,
              linewidth=1.5, markersize=16, alpha=0.7)
    ax.plot(p.keypoints[n, :, 0], p.keypoints[n, :, 1], "x", color="white", markersize=5, markeredgewidth=1.2)
    ax.plot(*pred, "x", color="red", markersize=12, markeredgewidth=3, label="prediction")
    if state["visible"] > 0:
        ax.add_patch(Circle(gt, state["pck_radius"], fill=False, edgecolor="lime", linewidth=1.5, linestyle="--"))
        ax.plot([gt[0], pred[0]], [gt[1], pred[1]], color="red", linewidth=1.5)
        ax.plot(*gt, "o", color="lime", markersize=9, markerfacecolor="none", markeredgewidth=2.5,
                label="truth (circle: PCK@0.2)")
    x, y, w, h = p.boxes[n]
    size = max(w, h) * 0.75
    ax.set_xlim(x + w / 2 - size, x + w / 2 + size)
    ax.set_ylim(y + h / 2 + size, y + h / 2 - size)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.8)
    within = "within" if state["within_pck"] else "outside"
    verdict = "not labelled" if state["visible"] == 0 else f"error {state['error']:.1f} px ({within} PCK@0.2)"
    ax.set_title(f"item {n}: {names[k]}, {verdict}", fontsize=11)


def _draw_prediction_in_crop(ax, state: dict, crop: dict) -> None:
    """The input crop the model saw, with the predicted heatmap over it (for a heatmap model) and both joints."""
    from course_lib.geometry import image_to_crop
    from course_lib.viz import overlay_heatmap, show_image

    input_size = tuple(crop["image"].shape[-2:])
    crop_pred = image_to_crop(state["pred"][None], crop["center"].numpy(), crop["scale"].numpy(),
                              crop["rotation"].numpy(), input_size)[0]
    heatmap = state["heatmap"]
    if heatmap is not None:
        overlay_heatmap(crop["image"], heatmap, ax=ax, alpha=0.55)
        ax.set_title(f"input crop and the predicted heatmap (max {heatmap.max():.2f})", fontsize=11)
    else:
        show_image(crop["image"], ax)
        ax.set_title("input crop (the model regresses coordinates)", fontsize=11)
    ax.plot(*crop_pred, "x", color="red", markersize=12, markeredgewidth=3)
    if int(crop["visibility"][state["joint"]]) > 0:
        ax.plot(*crop["keypoints"][state["joint"]].numpy(), "o", color="lime", markersize=9, markerfacecolor="none",
                markeredgewidth=2.5)
    ax.set_xlim(-0.5, input_size[1] - 0.5)
    ax.set_ylim(input_size[0] - 0.5, -0.5)


def _prediction_readout(state: dict, names: list[str]) -> str:
    """The numbers beside the prediction browser's picture, one row each."""
    labelled = state["visible"] > 0
    pred, gt = state["pred"], state["gt"]
    rows = [["image id", str(int(state["predictions"].image_ids[state["item"]]))], ["joint", names[state["joint"]]],
            ["prediction (x, y)", f"({pred[0]:.1f}, {pred[1]:.1f})"],
            ["truth (x, y)", f"({gt[0]:.1f}, {gt[1]:.1f})" if labelled else "not labelled"],
            ["error px", f"{state['error']:.2f}" if labelled else "-"],
            ["PCK@0.2 radius px", f"{state['pck_radius']:.2f}"],
            ["within PCK@0.2", ("yes" if state["within_pck"] else "no") if labelled else "-"],
            ["score (heatmap max)", f"{state['score']:.3f}"],
            ["mean error, this person", f"{state['mean_error']:.2f}" if state["mean_error"] >= 0 else "-"]]
    return _table(["", ""], rows)
