# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 05: ROIPool vs ROIAlign
#
# Every top-down network so far cut each person out of the **image**, resized the crop and
# ran a whole network on it: one backbone pass per person. Mask R-CNN (He et al. 2017)
# turns this around. Its backbone runs **once** over the whole image, a detector proposes
# person boxes, and each box is cut out of the **feature map** and resampled to a small
# fixed grid that a light keypoint head reads: ROIAlign crops the feature map, not the input
# image. How that crop is taken turns out to matter a lot: the
# older ROIPool rounds the box to whole feature cells, and at a stride of 8 or 16 pixels a
# rounding is a large error for a wrist. This chapter builds both operations by hand, shows
# where ROIPool's roundings go wrong, and trains the same keypoint model with each.
#
# ## Learning goals
#
# After this chapter you can
#
# - read a feature map between its cells with **bilinear interpolation**;
# - compute the feature cells that **ROIPool** maximises over for a box, with its two
#   **quantisations** (the box, then the bins);
# - compute one output cell of **ROIAlign**: exact bins, regularly spaced bilinear samples,
#   their average;
# - check your understanding against the course's vectorised operations and, where it is
#   installed, `torchvision.ops`;
# - describe a Mask R-CNN-style keypoint model (shared backbone, ROI features, a keypoint
#   head with a spatial softmax) and measure what ROIAlign buys over ROIPool.
#
# ## The papers
#
# - K. He, G. Gkioxari, P. Dollár, R. Girshick, *Mask R-CNN*, ICCV 2017
#   ([arXiv:1703.06870](https://arxiv.org/abs/1703.06870)): ROIAlign (section 3) and the
#   keypoint branch (section 5).
# - R. Girshick, *Fast R-CNN*, ICCV 2015 ([arXiv:1504.08083](https://arxiv.org/abs/1504.08083)):
#   ROIPool (section 2.1).
# - The reference implementations the course's `ops` follows exactly: `torchvision.ops.roi_pool`
#   and `torchvision.ops.roi_align` (their CPU kernels).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from course_lib import data, failures, ops, report, roi_keypoints, torchvision_reference, training, viz, widgets
from course_lib.grading import ch05_roi_align as checks
from course_lib.models.keypoint_heads import keypoints_to_roi_targets

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80
STRIDE = 8  # image pixels per feature cell of the chapter's backbone
val_people = roi_keypoints.whole_image_data(data.default_split_dir("single/val"), limit=training.budget(None, 64))

# %% [markdown]
# ## 1. Crop the features, not the image
#
# A backbone with stride $s$ turns an $H \times W$ image into an $H/s \times W/s$ feature
# map; feature cell $(i, j)$ sits over image pixel $(x, y) = (s\,j, s\,i)$ (the course's
# convention). A box $(x_1, y_1, x_2, y_2)$ in image pixels is the box
# $(x_1/s, y_1/s, x_2/s, y_2/s)$ on the feature map, in general *between* cells. Both
# operations of this chapter turn it into an $h \times w$ grid of features (Mask R-CNN's
# keypoint head uses $14 \times 14$):
#
# - **ROIPool** (Fast R-CNN) rounds the box to whole cells, cuts it into $h \times w$ bins
#   whose edges are rounded again, and takes the **maximum** of the cells in each bin;
# - **ROIAlign** (Mask R-CNN) keeps the box exact, cuts it into exact bins, reads each bin at
#   a few regularly spaced points by **bilinear interpolation**, and **averages** them.
#
# Here is one validation person (the whole $128 \times 128$ image), its box (dashed), and
# the stride-8 feature grid, with a $4 \times 4$ output so that the bins stay readable.

# %%
index = next(i for i, item in enumerate(val_people.samples)  # a person of typical size, well inside the image
             if 40 <= item["box"][2] <= 60 and 70 <= item["box"][3] <= 90 and 20 <= item["box"][0] <= 60)
person = val_people[index]
image = data.tensor_to_image(person["image"])
x, y, w, h = person["box"].tolist()
box = (x, y, x + w, y + h)  # (x1, y1, x2, y2) image pixels
grid, size = image.shape[0] // STRIDE, 4  # 16 x 16 feature cells; a 4 x 4 output
rows, cols = ops.roi_pool_bins(box, size, 1 / STRIDE, feature_size=(grid, grid))  # ROIPool's cells of each bin
points = ops.roi_align_sampling_points(box, size, 1 / STRIDE, 2) * STRIDE  # (4, 4, 2, 2, 2): ROIAlign's samples, image px
fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
for ax, title in zip(axes, ("ROIPool: bins snapped to the feature cells", "ROIAlign: exact bins, 2 x 2 samples each")):
    viz.show_image(image, ax)
    for edge in (np.arange(grid + 1) - 0.5) * STRIDE:  # feature cell j covers x in [8 j - 4, 8 j + 4]
        ax.axvline(edge, color="white", linewidth=0.4, alpha=0.6)
        ax.axhline(edge, color="white", linewidth=0.4, alpha=0.6)
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="yellow", linewidth=2, linestyle="--"))
    ax.set_title(title, fontsize=9)
for i, (r0, r1) in enumerate(rows.tolist()):
    for j, (c0, c1) in enumerate(cols.tolist()):
        inset = 1.2 * ((i + j) % 2)  # neighbouring bins may share cells: offset them a little
        axes[0].add_patch(Rectangle(((c0 - 0.5) * STRIDE + inset, (r0 - 0.5) * STRIDE + inset),
                                    (c1 - c0) * STRIDE - 2 * inset, (r1 - r0) * STRIDE - 2 * inset, alpha=0.25,
                                    facecolor="#ff4040" if (i + j) % 2 else "#40c0ff", edgecolor="white"))
for k in range(size + 1):  # ROIAlign's exact bin borders
    axes[1].plot([x, x + w], [y + k * h / size] * 2, color="#ff4040", linewidth=0.8)
    axes[1].plot([x + k * w / size] * 2, [y, y + h], color="#ff4040", linewidth=0.8)
axes[1].plot(points[..., 0].ravel(), points[..., 1].ravel(), ".", color="#ffff00", markersize=5)
fig.tight_layout()

# %% [markdown]
# On the left, the bins follow the cell borders, not the yellow box: the rounded box is
# wider than the person on one side and cuts it on the other, and neighbouring bins share
# cells. On the right, the sampling points spread evenly over exactly the yellow box.
#
# ## 2. Bilinear interpolation
#
# ROIAlign needs the feature map at points between cells. Bilinear interpolation mixes the
# four cells around the point $(x, y)$: with $x_0 = \lfloor x \rfloor$, $y_0 = \lfloor y
# \rfloor$ and the fractions $l_x = x - x_0$, $l_y = y - y_0$,
#
# $$f(x, y) = (1-l_y)(1-l_x)\,F_{y_0, x_0} + (1-l_y)\,l_x\,F_{y_0, x_0+1} + l_y\,(1-l_x)\,F_{y_0+1, x_0} + l_y\,l_x\,F_{y_0+1, x_0+1}.$$
#
# Each cell's weight is the area of the rectangle *opposite* to it in the unit square
# around the point: the closer the point is to a cell, the larger that cell's weight. The
# first index of the map is the row ($y$), the second the column ($x$).

# %%
fig, ax = plt.subplots(figsize=(4, 3.6))
px, py = 0.3, 0.7  # the point, as fractions l_x, l_y inside the square of four cells
corners = {(0, 0): "F[y0, x0]", (1, 0): "F[y0, x0+1]", (0, 1): "F[y0+1, x0]", (1, 1): "F[y0+1, x0+1]"}
for (cx, cy), name in corners.items():
    # the rectangle opposite to the corner: between the point and the far side of the square
    left, width = (px, 1 - px) if cx == 0 else (0, px)
    top, height = (py, 1 - py) if cy == 0 else (0, py)
    colour = plt.cm.tab10(2 * cx + cy)
    ax.add_patch(Rectangle((left, top), width, height, alpha=0.35, color=colour))
    ax.plot(cx, cy, "o", color=colour, markersize=10)
    ax.text(cx, cy + (-0.08 if cy == 0 else 0.12), f"{name}\nweight {width * height:.2f}", ha="center",
            va="bottom" if cy == 0 else "top", fontsize=8)
ax.plot(px, py, "k*", markersize=12)
ax.text(px + 0.03, py - 0.04, "(x, y)", fontsize=9)
ax.set_xlim(-0.35, 1.35)
ax.set_ylim(1.35, -0.3)
ax.set_axis_off()
ax.set_title("each weight = the area of the opposite rectangle", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ### Exercise 1: bilinear interpolation at a point
#
# Return the interpolated value of a single-channel map at one point inside it,
# $0 \le x \le W-1$, $0 \le y \le H-1$. A point on the last column has no cell $x_0 + 1$;
# use $\min(x_0 + 1, W - 1)$ there (its weight $l_x$ is 0 anyway), and the same for rows.
# (Mask R-CNN's ROIAlign also defines points *outside* the map: within one cell they are
# clamped onto the border, farther out they read 0. The course's `ops.bilinear_sample` does
# that; you do not need it here.)


# %%
def bilinear_interpolate(feature_map, x, y):
    """Value of feature_map at the real-valued point (x, y) by bilinear interpolation.

        x0 = floor(x), y0 = floor(y), x1 = min(x0 + 1, W - 1), y1 = min(y0 + 1, H - 1)
        lx = x - x0,   ly = y - y0
        f  = (1-ly)(1-lx) F[y0, x0] + (1-ly) lx F[y0, x1] + ly (1-lx) F[y1, x0] + ly lx F[y1, x1]

    Args:
        feature_map: (H, W) NumPy array; cell (i, j) has its centre at x = j, y = i.
        x, y: floats with 0 <= x <= W - 1 and 0 <= y <= H - 1.

    Returns:
        a float.
    """
    ### BEGIN SOLUTION
    height, width = feature_map.shape
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    lx, ly = x - x0, y - y0
    return float((1 - ly) * (1 - lx) * feature_map[y0, x0] + (1 - ly) * lx * feature_map[y0, x1]
                 + ly * (1 - lx) * feature_map[y1, x0] + ly * lx * feature_map[y1, x1])
    ### END SOLUTION


# %%
checks.check_bilinear_interpolate(bilinear_interpolate)

# %%
# points: 2
checks.check_bilinear_interpolate(bilinear_interpolate)
### BEGIN HIDDEN TESTS
checks.hidden_bilinear_interpolate(bilinear_interpolate)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. ROIPool: two roundings
#
# ROIPool, as Fast R-CNN defined it and `torchvision.ops.roi_pool` computes it, for a box
# $(x_1, y_1, x_2, y_2)$ in image pixels, a scale $\rho = 1/s$ and an $h \times w$ output:
#
# 1. **round the box** to whole cells: $X_1 = \mathrm{round}(\rho x_1)$, $Y_1$, $X_2$, $Y_2$
#    likewise (C's `round`: halves away from zero, so $2.5 \to 3$); the box covers the cells
#    $X_1 \dots X_2$, both ends included: $w_\text{box} = \max(X_2 - X_1 + 1, 1)$ cells, and
#    $h_\text{box}$ likewise;
# 2. **cut it into bins** of $b_h = h_\text{box}/h$ by $b_w = w_\text{box}/w$ cells, and
#    round each bin *outwards*: bin $(i, j)$ covers the rows
#    $Y_1 + \lfloor i\, b_h \rfloor$ to $Y_1 + \lceil (i+1)\, b_h \rceil - 1$ and the columns
#    $X_1 + \lfloor j\, b_w \rfloor$ to $X_1 + \lceil (j+1)\, b_w \rceil - 1$;
# 3. output the **maximum** of the cells of each bin (0 for a bin that falls outside the map).
#
# The first rounding moves each side of the box by up to half a cell, $s/2$ image pixels;
# the second makes bins overlap or differ in size by a cell.
#
# ### Exercise 2: ROIPool's bins for one box
#
# Return the cell ranges of every bin as two integer arrays: `rows` of shape $(h, 2)$ with
# `rows[i] = (first row, last row + 1)` and `cols` of shape $(w, 2)$ likewise, as Python
# ranges (the end is excluded). Do not clip to the map. Careful with Python's `round`: it
# rounds halves to *even* (`round(2.5) == 2`); the box corners of our tests are $\ge 0$, so
# `math.floor(v + 0.5)` is C's rule.


# %%
def roi_pool_bin_edges(box, output_size, spatial_scale):
    """The feature cells of each ROIPool bin for one box (Girshick 2015; torchvision.ops.roi_pool).

        X1 = round(x1 * s), Y1 = round(y1 * s), X2 = round(x2 * s), Y2 = round(y2 * s)  (halves up)
        box_w = max(X2 - X1 + 1, 1),  box_h = max(Y2 - Y1 + 1, 1)
        b_w = box_w / w,              b_h = box_h / h
        rows[i] = (Y1 + floor(i b_h), Y1 + ceil((i + 1) b_h))
        cols[j] = (X1 + floor(j b_w), X1 + ceil((j + 1) b_w))

    Args:
        box: (x1, y1, x2, y2) in image pixels, x1, y1 >= 0.
        output_size: (h, w), the number of bins.
        spatial_scale: s, feature cells per image pixel (1 / stride).

    Returns:
        (rows, cols): integer arrays of shape (h, 2) and (w, 2), [start, end) cell ranges.
    """
    ### BEGIN SOLUTION
    x1, y1, x2, y2 = (int(np.floor(v * spatial_scale + 0.5)) for v in box)
    box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    h, w = output_size
    b_h, b_w = box_h / h, box_w / w
    rows = np.array([[y1 + int(np.floor(i * b_h)), y1 + int(np.ceil((i + 1) * b_h))] for i in range(h)])
    cols = np.array([[x1 + int(np.floor(j * b_w)), x1 + int(np.ceil((j + 1) * b_w))] for j in range(w)])
    return rows, cols
    ### END SOLUTION


# %%
checks.check_roi_pool_bin_edges(roi_pool_bin_edges)

# %%
# points: 3
checks.check_roi_pool_bin_edges(roi_pool_bin_edges)
### BEGIN HIDDEN TESTS
checks.hidden_roi_pool_bin_edges(roi_pool_bin_edges)
### END HIDDEN TESTS

# %% [markdown]
# The course's implementation of what you just wrote is `ops.roi_pool_bins`; `ops.roi_pool`
# takes the maxima of all bins of all boxes at once. The ROI explorer (section 5) draws it;
# here is its starting picture, the box of the visible check on a $12 \times 12$ map of
# random digits: the dashed box is exact, the coloured bins are what ROIPool reads (a circle
# marks each bin's maximum), and the bottom row compares the two outputs.

# %%
explorer = widgets.roi_explorer(box=(1.6, 2.3, 9.4, 7.8), output_size=3)
explorer.figure

# %% [markdown]
# ## 4. ROIAlign: no rounding at all
#
# ROIAlign keeps every coordinate real. With $\rho$ the scale and an $h \times w$ output:
#
# 1. the box on the feature map is $(\rho x_1, \rho y_1, \rho x_2, \rho y_2)$, **not rounded**;
# 2. the bins are exact: $b_h = (\rho y_2 - \rho y_1)/h$, $b_w = (\rho x_2 - \rho x_1)/w$;
# 3. bin $(i, j)$ is sampled at an $n \times n$ grid of points at the **centres** of its
#    $n \times n$ sub-cells,
#    $$y_u = \rho y_1 + i\,b_h + (u + \tfrac12)\,\frac{b_h}{n}, \qquad
#      x_v = \rho x_1 + j\,b_w + (v + \tfrac12)\,\frac{b_w}{n}, \qquad u, v = 0 \dots n-1;$$
# 4. each point is read by bilinear interpolation, and the bin outputs the **average**.
#
# The paper notes that the result is not sensitive to the exact sampling points or their
# number, "as long as no quantization is performed". $n$ is the `sampling_ratio`
# (torchvision's Keypoint R-CNN uses 2; `sampling_ratio=-1` picks $n = \lceil b \rceil$ per
# box, about one sample per cell). Two details of the library versions: with
# `aligned=False` a box is first made at least one cell wide, and `aligned=True` (Detectron2)
# shifts the box by half a cell, which is right when pixel centres sit at half-integers; in
# the course's convention (centres at integers) the unshifted geometry is the exact one, and
# the course uses `aligned=False`.
#
# ### Exercise 3: one output cell of ROIAlign
#
# Return output cell $(i, j)$ of ROIAlign for one box on a single-channel map. The boxes of
# the tests lie inside the map and are more than a cell wide, so every sampling point is
# inside the map and the "at least one cell" rule never applies. Read the points with your
# `bilinear_interpolate` (or the course's `ops.bilinear_sample`).


# %%
def roi_align_bin(feature_map, box, output_size, i, j, sampling_ratio, spatial_scale=1.0):
    """Output cell (i, j) of ROIAlign (He et al. 2017, section 3) for one box on one (H, W) map.

        x1, y1, x2, y2 = box * s                  (no rounding)
        b_h = (y2 - y1) / h,  b_w = (x2 - x1) / w
        y_u = y1 + i b_h + (u + 0.5) b_h / n,  x_v = x1 + j b_w + (v + 0.5) b_w / n,  u, v = 0 .. n - 1
        out[i, j] = 1 / n^2  sum_{u, v}  bilinear(feature_map, x_v, y_u)

    Args:
        feature_map: (H, W) NumPy array; cell (i, j) centred at x = j, y = i.
        box: (x1, y1, x2, y2) in image pixels.
        output_size: (h, w).
        i, j: the output cell (row i < h, column j < w).
        sampling_ratio: n, samples per bin along each axis.
        spatial_scale: s, feature cells per image pixel.

    Returns:
        a float.
    """
    ### BEGIN SOLUTION
    x1, y1, x2, y2 = (v * spatial_scale for v in box)
    h, w = output_size
    b_h, b_w = (y2 - y1) / h, (x2 - x1) / w
    n = sampling_ratio
    total = 0.0
    for u in range(n):
        for v in range(n):
            sample_y = y1 + i * b_h + (u + 0.5) * b_h / n
            sample_x = x1 + j * b_w + (v + 0.5) * b_w / n
            total += bilinear_interpolate(feature_map, sample_x, sample_y)
    return total / n**2
    ### END SOLUTION


# %%
checks.check_roi_align_bin(roi_align_bin)

# %%
# points: 3
checks.check_roi_align_bin(roi_align_bin)
### BEGIN HIDDEN TESTS
checks.hidden_roi_align_bin(roi_align_bin)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The course's operations, and torchvision's
#
# `ops.roi_align` and `ops.roi_pool` compute what you just wrote for every box, bin and
# channel at once (gathering all sampling points in one indexing operation), and are
# differentiable, so a network can be trained through them. `ops.roi_align_loop` and
# `ops.roi_pool_loop` do the same one box, one bin and one point at a time, readable line by
# line. Both follow `torchvision.ops`: the cell below compares them on random features and
# boxes, and with torchvision where it can be run (it is optional: the course's Python may not
# have a torchvision that matches its torch, and then the system's Python is tried).

# %%
generator = torch.Generator().manual_seed(0)
features = torch.randn(2, 8, 16, 16, generator=generator)  # two feature maps, stride 8 (128 x 128 images)
corners = torch.rand(12, 2, generator=generator) * 90
sizes = torch.rand(12, 2, generator=generator) * 60 + 8
rois = torch.cat([torch.arange(12).remainder(2).float()[:, None], corners, corners + sizes], dim=1)  # (12, 5)
ours = {"roi_pool": ops.roi_pool(features, rois, 7, 1 / STRIDE),
        "roi_align": ops.roi_align(features, rois, 7, 1 / STRIDE, sampling_ratio=2)}
loops = {"roi_pool": ops.roi_pool_loop(features, rois, 7, 1 / STRIDE),
         "roi_align": ops.roi_align_loop(features, rois, 7, 1 / STRIDE, sampling_ratio=2)}
reference = torchvision_reference.torchvision_roi_ops(features, rois, 7, 1 / STRIDE, sampling_ratio=2)
for name in ("roi_pool", "roi_align"):
    line = f"{name:9s}: largest difference to the loop version {float((ours[name] - loops[name]).abs().max()):.1e}"
    if reference is not None:
        line += f", to torchvision.ops {float((ours[name] - reference[name]).abs().max()):.1e}"
    print(line)
print(f"compared with {reference['where']}" if reference is not None else
      "torchvision.ops could not be run here (no torchvision for this Python, and no system Python with "
      "python3-torchvision): the comparison with it is skipped; the course's tests make it where it can run.")

# %% [markdown]
# ### Why the roundings hurt: slide a box
#
# Put a single bright spot on a feature map (a small Gaussian at $x = 7.3$ cells) and slide a
# 6-cell-wide box across it by a fraction of a cell at a time. In a perfect crop the spot
# should move smoothly to the left inside the pooled output, by $7/6$ of an output cell per
# cell of shift. ROIAlign follows that line; ROIPool's output stays put until the rounding of
# the box flips, then jumps by a whole cell.

# %%
columns = torch.arange(16.0)
spot = torch.exp(-((columns[None, :] - 7.3) ** 2 + (columns[:, None] - 7.6) ** 2) / (2 * 0.8**2))  # (16, 16)
spot = spot[None, None]  # (1, 1, 16, 16)
shifts = np.linspace(0, 2, 81)
found = {"ROIPool": [], "ROIAlign": []}
for shift in shifts:
    slide = torch.tensor([[0.0, 4.0 + shift, 5.0, 10.0 + shift, 10.0]])  # 6 x 5 cells, in feature units
    for name, pooled in (("ROIPool", ops.roi_pool(spot, slide, 7)), ("ROIAlign", ops.roi_align(spot, slide, 7, 1, 2))):
        profile = pooled[0, 0].sum(dim=0)  # (7,) summed over rows
        found[name].append(float((profile * torch.arange(7.0)).sum() / profile.sum()))  # centroid, output cells
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.plot(shifts, (7.3 - (4.0 + shifts)) * 7 / 6 - 0.5, "k:", label="exact crop")
for name, values in found.items():
    ax.plot(shifts, values, label=name)
ax.set_xlabel("box shift (feature cells)")
ax.set_ylabel("spot position in the output (cells)")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Move the box yourself: the explorer shows ROIPool's rounded bins and ROIAlign's sampling
# points for any box, output size, scale and sampling ratio, and both outputs.

# %%
explorer

# %% [markdown]
# ## 6. A Mask R-CNN-style keypoint model
#
# `roi_keypoints.RoiKeypointNet` puts the pieces together at the scale of a CPU:
#
# 1. a **backbone** runs once per image: a small ResNet cut after its second stage, so the
#    features have stride 8 ($128 \times 128 \to 16 \times 16$, 64 channels);
# 2. each person box is pooled to $14 \times 14$ features by **ROIAlign** or **ROIPool**
#    (the only difference between the two models of the experiment);
# 3. Mask R-CNN's **keypoint head** (`MaskRCNNKeypointHead.tiny`: four $3\times3$
#    convolutions of 64 channels instead of the paper's eight of 512, a stride-2 transposed
#    convolution and a $2\times$ bilinear upsampling) gives $56 \times 56$ logits per keypoint.
#
# The target of each keypoint is **one-hot**: the single cell of the $56 \times 56$ grid laid
# over the box that holds the keypoint, and the loss is a cross-entropy over all $56^2$ cells
# of that keypoint's map (a *spatial softmax*), for the keypoints that are labelled and inside
# the box. At test time the logits are resized to the box's size in pixels and the maximum is
# read. The diagram is drawn by `viz.draw_roi_keypoint_model` from the model itself, and the
# shapes below are those of four people:

# %%
model = roi_keypoints.RoiKeypointNet("align")
viz.draw_roi_keypoint_model(model, image_size=tuple(val_people[0]["image"].shape[1:]));

# %%
batch = next(iter(torch.utils.data.DataLoader(val_people, batch_size=4)))
with torch.no_grad():
    features = model(batch["image"])  # once per image
    pooled = model.roi_features(features, batch["box"])  # once per box
    logits = model.head(pooled)
for name, tensor in (("images", batch["image"]), ("features", features), ("ROI features", pooled),
                     ("keypoint logits", logits)):
    print(f"{name:16s} {tuple(tensor.shape)}")

# %% [markdown]
# What the head is asked to do: below, each person's box is resampled to $56 \times 56$
# pixels (by ROIAlign itself, on the image: a crop-and-resize), and the target cell of
# every labelled keypoint is marked. Out of $56^2 = 3136$ cells, one per keypoint is right.

# %%
indices, valid = keypoints_to_roi_targets(batch["keypoints"], batch["visibility"], batch["box"], 56)
image_rois = ops.boxes_to_rois([roi_keypoints.xywh_to_xyxy(batch["box"][i : i + 1]) for i in range(4)])
crops = ops.roi_align(batch["image"], image_rois, 56, 1.0, 2)  # (4, 3, 56, 56): the boxes of the images
fig, axes = plt.subplots(1, 4, figsize=(9, 2.8))
for ax, crop, index, ok in zip(axes, crops, indices, valid):
    viz.show_image(data.tensor_to_image(crop), ax)
    for k in np.flatnonzero(ok.numpy()):
        row, col = divmod(int(index[k]), 56)
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, color="#00ffff"))
    ax.set_title(f"{int(ok.sum())} target cells", fontsize=8)
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# Training goes through `training.fit`, which calls `model(images)`: that is the backbone,
# shared by all the people of an image. The per-person half runs inside the loss,
# `roi_keypoints.RoiKeypointLoss(model)`, which reads each item's box from the batch, pools,
# runs the head and takes the cross-entropy: the same split as Mask R-CNN, whose ROI heads
# run on the backbone's features and the detector's boxes. During training the boxes are
# jittered a little (scaled by up to $\pm15\%$, shifted by up to $10\%$), as a detector's
# proposals would be; at test time the annotated boxes are used.
#
# ## 7. Experiment: ROIPool vs ROIAlign features, at equal budget
#
# Two `RoiKeypointNet` models that differ only in the pooler are trained with the same
# steps, batch, learning rate, seed and box jitter, and evaluated on the validation people
# with their annotated boxes. At stride 8 a typical person (about $47 \times 79$ pixels)
# covers only $6 \times 10$ feature cells, so ROIPool's half-cell roundings (up to 4 pixels
# per side) are large compared with the person.

# %% tags=["experiment"]
steps = training.budget(full=400, fast=6)
train_people = roi_keypoints.whole_image_data(data.default_split_dir("single/train"), augment=True,
                                              limit=training.budget(None, 256))
runs = {}
for pooler, name in (("pool", "ROIPool"), ("align", "ROIAlign")):
    print(f"training with {name} features")
    with training.seeded(0):  # the same initial weights for both poolers and for a rerun
        model = roi_keypoints.RoiKeypointNet(pooler)
    history = training.fit(model, train_people, None, roi_keypoints.RoiKeypointLoss(model), steps, batch_size=32,
                           lr=2e-3, seed=0)
    runs[name] = (model, history, roi_keypoints.evaluate(model, val_people))

# %% tags=["experiment"]
roi_rows = [
    {"features": name, "steps": steps, "PCK@0.2": result.metrics["pck@0.2"], "PCK@0.1": result.metrics["pck@0.1"],
     "PCK@0.05": result.metrics["pck@0.05"], "mean error (px)": result.metrics["mean_error"],
     "AP": result.metrics["AP"], "AP75": result.metrics["AP75"]}
    for name, (model, history, result) in runs.items()
]
align, pool = runs["ROIAlign"][2].metrics, runs["ROIPool"][2].metrics
gains = {metric: align[metric] - pool[metric] for metric in ("AP", "AP50", "AP75", "pck@0.2", "pck@0.05")}
strict_largest = gains["pck@0.05"] > gains["pck@0.2"] and gains["AP75"] > gains["AP50"]  # the paper: +0.4 AP50, +3.0 AP75
roi_table = report.experiment_table(
    roi_rows, chapter="05", title="Keypoints from ROI features: ROIPool vs ROIAlign, equal steps (validation, GT boxes)",
    note=(f"ROIAlign changes the keypoint AP by {100 * gains['AP']:+.1f} points here; the paper measured +4.4 (64.2 vs "
          "59.8 on COCO minival); "
          + ("the direction agrees" if gains["AP"] > 0 else "the direction does not agree with the paper (see the text)")
          + f". The gain is {gains['pck@0.2']:+.2f} at PCK@0.2 and {gains['pck@0.05']:+.2f} at PCK@0.05, "
          f"{gains['AP50']:+.2f} at AP50 and {gains['AP75']:+.2f} at AP75: "
          + ("largest at the strict thresholds, as in the paper. " if strict_largest else
             "not largest at both strict thresholds, unlike the paper. ")
          + "Toy data, a tiny head and one short run: the size of the gap is not comparable to COCO's."),
)
roi_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, (model, history, result) in runs.items():
    smooth = max(1, min(20, len(history.loss) // 5))
    axes[0].plot(history.steps[smooth - 1:], np.convolve(history.loss, np.ones(smooth) / smooth, mode="valid"),
                 label=name)
    errors = result.predictions.errors[np.isfinite(result.predictions.errors)]
    distances = np.linspace(0, 20, 81)
    axes[1].plot(distances, [(errors <= d).mean() for d in distances], label=name)
axes[0].set_xlabel("training step")
axes[0].set_ylabel("training loss (spatial softmax)")
axes[1].set_xlabel("distance to the true keypoint (image px)")
axes[1].set_ylabel("fraction of labelled keypoints within it")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Where do the ROIAlign model's errors come from?
# The gallery below shows the people with the largest mean error, each labelled by
# `failures.worst_predictions` with the kind of its worst joints, computed from the numbers
# (errors in units of the box size $s = \sqrt{wh}$):
#
# - **left/right swap**: the joint sits on its mirror joint (a left wrist on the right one);
# - **another person**: it sits on the same joint of another person of the image;
# - **missed joint**: more than $0.5\,s$ from the truth and near nothing that explains it;
# - **jitter**: the right joint, placed loosely (between $0.1\,s$ and $0.5\,s$ off).
#
# Under it, the share of all labelled joints of the split in each kind.

# %% tags=["experiment"]
found = runs["ROIAlign"][2].predictions
viz.failure_gallery(found, lambda i: data.tensor_to_image(val_people[i]["image"]), count=6);
kinds = failures.joint_kinds(found.keypoints, found.gt_keypoints, found.gt_visibility, found.boxes,
                             image_ids=found.image_ids)
labelled = found.gt_visibility > 0
for kind in failures.FAILURE_KINDS:
    print(f"{kind:16s} {np.mean(kinds[labelled] == kind):6.1%} of the labelled joints")

# %% [markdown]
# And the point of the design: one backbone pass serves every person of an image. The
# ROIAlign model, trained on one person per image, reads all the people of a multi-person
# scene from one feature map, given their boxes.

# %% tags=["experiment"]
scenes = data.CocoKeypoints(data.default_split_dir("multi/val") / "annotations.json")
model = runs["ROIAlign"][0].eval()
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, image_id in zip(axes, scenes.image_ids[:2]):
    scene = scenes.load_image(image_id)
    people = [a for a in scenes.annotations_for(image_id) if not a.get("iscrowd", 0)]
    boxes = torch.tensor([a["bbox"] for a in people], dtype=torch.float32)  # (R, 4)
    found, _ = model.predict(data.image_to_tensor(scene)[None], [boxes])  # one backbone pass, R heads
    viz.show_image(scene, ax)
    for person_box, keypoints in zip(boxes, found):
        viz.draw_box(person_box.numpy(), ax, color="yellow", linewidth=1)
        viz.draw_pose(keypoints.numpy(), ax=ax, linewidth=1.5, markersize=12)
    ax.set_title(f"{len(people)} people, one backbone pass", fontsize=9)
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# What to take from it. With the same network, data and budget, the model that reads its
# features with ROIAlign should place keypoints more precisely: the two curves of the right
# plot are close for coarse distances and part at a few pixels, where ROIPool's roundings
# (up to half a cell, 4 pixels at stride 8, per side of the box) live. Coarse metrics such
# as PCK@0.2 barely move; the strict ones (PCK@0.05, AP75) and AP, which averages over
# strict OKS thresholds, move most; the note under the table says whether your run agrees. A
# gap in AP far larger than the paper's 4.4 points is what to expect with features this
# coarse compared with the people (6 x 10 cells) and no FPN. If your run shows
# otherwise (the fast profile trains a handful of steps), the numbers are noise, not evidence.

# %% [markdown]
# ## Stretch exercise: ROIAlign as Detectron2 runs it
#
# Two details of today's ROIAlign (Detectron2's `ROIAlignV2`, `torchvision.ops.roi_align`
# with `aligned=True` and `sampling_ratio=0`) go beyond exercise 3:
#
# - **aligned**: the box is shifted by half a cell after scaling, $x\,\rho - 0.5$, so that a
#   box corner at image pixel $x$ lands where the pixel *grid* (corners at integers) puts it
#   on the feature map; the box may then be smaller than one cell;
# - **adaptive sampling**: each bin is read at $\lceil b_h \rceil \times \lceil b_w \rceil$
#   points, so that larger boxes get more samples.
#
# Samples may now fall slightly outside the map: a point with $-1 < y < 0$ is read at $y = 0$
# (likewise for $x$, and at the far border, where $y > H - 1$ reads row $H - 1$); a point
# farther out reads 0. Write one bin; your `bilinear_interpolate` of exercise 1 does the
# reading. (Worth bonus points: it goes beyond the chapter's core.)


# %%
def roi_align_bin_aligned(feature_map, box, output_size, i, j, spatial_scale=1.0):
    """Bin (i, j) of ROIAlign with aligned=True and adaptive sampling, for one single-channel map.

        x1 = box[0] s - 0.5, y1 = box[1] s - 0.5, x2 = box[2] s - 0.5, y2 = box[3] s - 0.5
        b_h = (y2 - y1) / h,  b_w = (x2 - x1) / w,  n_h = ceil(b_h),  n_w = ceil(b_w)
        value = mean over u < n_h, v < n_w of
                f(x1 + j b_w + (v + 0.5) b_w / n_w,  y1 + i b_h + (u + 0.5) b_h / n_h)

    with f bilinear; f = 0 outside [-1, W] x [-1, H], and points are clamped into the map.

    Args:
        feature_map: (H, W) NumPy array.
        box: (x1, y1, x2, y2) in image pixels.
        output_size: (h, w), the number of bins.
        i, j: the bin's row and column.
        spatial_scale: s, feature cells per image pixel.

    Returns:
        a float.
    """
    ### BEGIN SOLUTION
    height, width = feature_map.shape
    x1, y1, x2, y2 = (v * spatial_scale - 0.5 for v in box)
    bin_h, bin_w = (y2 - y1) / output_size[0], (x2 - x1) / output_size[1]
    n_h, n_w = int(np.ceil(bin_h)), int(np.ceil(bin_w))
    if n_h * n_w == 0:
        return 0.0
    total = 0.0
    for u in range(n_h):
        y = y1 + i * bin_h + (u + 0.5) * bin_h / n_h
        for v in range(n_w):
            x = x1 + j * bin_w + (v + 0.5) * bin_w / n_w
            if y < -1 or y > height or x < -1 or x > width:
                continue  # reads 0
            total += bilinear_interpolate(feature_map, min(max(x, 0.0), width - 1), min(max(y, 0.0), height - 1))
    return total / (n_h * n_w)
    ### END SOLUTION


# %%
checks.check_roi_align_bin_aligned(roi_align_bin_aligned)

# %%
# bonus: 2
checks.check_roi_align_bin_aligned(roi_align_bin_aligned)
### BEGIN HIDDEN TESTS
checks.hidden_roi_align_bin_aligned(roi_align_bin_aligned)
### END HIDDEN TESTS

# %% [markdown]
# ## What the paper reported
#
# - **Keypoints, ROIAlign vs ROIPool** (Mask R-CNN, COCO minival, ResNet-50-FPN, keypoint
#   AP): ROIPool **59.8** AP (AP50 86.2, AP75 66.7), ROIAlign **64.2** AP (AP50 86.6, AP75
#   69.7): **+4.4 AP**, almost nothing at the loose OKS threshold and most at the strict
#   one. (Summaries often round this to "about +5 AP"; the paper's own table gives +4.4.)
# - **Masks**, where the effect was first measured: with stride-16 ResNet-50-C4 features
#   ROIAlign raises mask AP from 26.9 (ROIPool) to 30.3, and with stride-32 C5 features from
#   23.6 to 30.9 (**+7.3**, and +10.5 at AP75): the coarser the features, the more the
#   roundings cost, as in our experiment's reasoning.
# - **The keypoint model**: eight $3\times3$ 512-channel convolutions, a transposed
#   convolution and $2\times$ bilinear upsampling to a $56 \times 56$ output ("a relatively
#   high resolution output, compared to masks, is required for keypoint-level localization
#   accuracy"), one-hot targets and an $m^2$-way softmax per keypoint. On COCO test-dev it
#   reached **62.7** keypoint AP (63.1 when trained jointly with masks), above the COCO 2016
#   winner (CMU-Pose+++, 61.8) and G-RMI (62.4). That G-RMI number is the one Mask R-CNN's
#   Table 4 quoted in March 2017, for the system as it stood then (trained on COCO plus MPII,
#   its footnote says); the revised CVPR 2017 version of the G-RMI paper reports a better
#   system, 64.9 AP on the same test-dev with COCO data only (chapter 09).
#
# ## Check your understanding
#
# 1. A feature map has stride 16. By how many image pixels can ROIPool's first rounding move
#    one side of a box? And ROIAlign's?
#
# <details><summary>Answer</summary>
#
# Rounding $\rho x_1$ to the nearest cell moves it by up to half a cell, that is up to 8
# image pixels at stride 16. ROIAlign does not round: 0 pixels (its samples are read by
# interpolation wherever they fall).
# </details>
#
# 2. ROIPool's box $X_1 \dots X_2$ counts $X_2 - X_1 + 1$ cells. Why the $+1$?
#
# <details><summary>Answer</summary>
#
# Both end cells belong to the box: a box from cell 2 to cell 9 covers cells 2, 3, ..., 9,
# that is 8 cells. (This is one more place where ROIPool's box is larger than the real one.)
# </details>
#
# 3. Why does ROIAlign average its samples rather than take their maximum, like ROIPool?
#
# <details><summary>Answer</summary>
#
# The paper found both work ("max or average"); the released implementations average. An
# average of bilinear samples changes *continuously* when the box moves, so the output, and
# the gradient back to the features, varies smoothly with the box; a maximum picks one sample
# and jumps when another one becomes larger. For localisation, smooth is what we want.
# </details>
#
# 4. In the slide experiment, ROIPool's curve is a staircase. At what box shifts do its steps
#    happen, and why there?
#
# <details><summary>Answer</summary>
#
# Where the rounding of a box side flips: $x_1 = 4 + \delta$ rounds to 4 for $\delta < 0.5$
# and to 5 from $\delta = 0.5$ on, and likewise for $x_2$. Between those points the rounded
# box, hence the output, does not change at all.
# </details>
#
# 5. Mask R-CNN's keypoint head predicts $56 \times 56$ maps where its mask head predicts
#    $28 \times 28$. Using this chapter, explain why keypoints need the finer grid.
#
# <details><summary>Answer</summary>
#
# A mask is judged by overlap (IoU), so a one-cell error on a 28-cell grid costs little; a
# keypoint is judged by its distance (OKS), and a cell of a $28 \times 28$ grid over a
# 300-pixel person is already 10 pixels. The one-hot target also quantises the position to
# a cell, so a finer grid (plus the resize to the box at test time) is needed for
# keypoint-level precision, just as ROIAlign is needed to keep the features aligned.
# </details>

# %% [markdown]
# ## Summary
#
# - Mask R-CNN runs the backbone **once per image** and cuts each person's box out of the
#   **feature map**; a light keypoint head reads a fixed $14 \times 14$ grid per box.
# - **Bilinear interpolation** reads a map between its cells: each of the four cells is
#   weighted by the area of the rectangle opposite to it.
# - **ROIPool** rounds twice (the box to whole cells, then each bin outwards) and takes the
#   maximum: each side of the box moves by up to half a cell, $s/2$ image pixels.
# - **ROIAlign** keeps the box and the bins exact, reads regularly spaced bilinear samples and
#   averages them, so its output moves smoothly with the box.
# - The keypoint head predicts $56 \times 56$ logits per keypoint with a one-hot target and a
#   spatial softmax; keypoints need a finer grid than masks because OKS judges distances.
# - The paper: ROIAlign gives +4.4 keypoint AP (59.8 to 64.2 on minival), little at AP$^{50}$
#   and most at AP$^{75}$; the coarser the features, the more ROIPool's roundings cost.
# - The chapter's experiment measures the same comparison at toy scale, and its note says
#   whether the gain is largest at the strict thresholds in your run.
