# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 02: Heatmaps, or how to ask a network *where*
#
# DeepPose (chapter 01) asked a network for 34 numbers: the $x, y$ of 17 joints. It worked,
# but a network built from convolutions has to squeeze the picture through fully connected
# layers to produce them, and the answer "the wrist is at (41.3, 77.9)" leaves no room for
# doubt, for two candidates, or for a joint that is not there. From 2014 on, almost every
# pose network asks a different question: for every pixel, *how likely is the wrist to be
# here?* The answer is a **heatmap** per joint, and reading a position back out of it is a
# small problem of its own. This chapter builds both directions.
#
# ## Learning goals
#
# After this chapter you can
#
# - explain why heatmaps replaced coordinate regression: annotators disagree by a few
#   pixels, a map keeps the spatial structure of the image, and a joint without a label can
#   simply get **zero loss**;
# - describe Tompson et al.'s **coarse-to-fine** model and why pooling costs precision;
# - build a **Gaussian target** heatmap with its visibility weight, in the MSRA convention of
#   the official SimpleBaseline / HRNet code and in the **unbiased** one of DARK;
# - decode a heatmap with **argmax**, the **quarter offset**, **DARK**'s Taylor step and
#   **soft-argmax** (integral regression), and predict how each one's error grows with the
#   heatmap's stride;
# - compare, on the same encoder and the same budget, a network trained to regress
#   coordinates with one trained to paint heatmaps.
#
# ## The papers
#
# - J. Tompson, R. Goroshin, A. Jain, Y. LeCun, C. Bregler, *Efficient Object Localization
#   Using Convolutional Networks*, CVPR 2015 ([arXiv:1411.4280](https://arxiv.org/abs/1411.4280)).
#   Its predecessor, which introduced heatmap targets for pose: J. Tompson, A. Jain, Y. LeCun,
#   C. Bregler, *Joint Training of a Convolutional Network and a Graphical Model for Human
#   Pose Estimation*, NeurIPS 2014 ([arXiv:1406.2984](https://arxiv.org/abs/1406.2984)).
# - B. Xiao, H. Wu, Y. Wei, *Simple Baselines for Human Pose Estimation and Tracking*, ECCV 2018
#   ([arXiv:1804.06208](https://arxiv.org/abs/1804.06208)): the Gaussian targets, the loss and
#   the quarter-offset decoder of the official code that the course follows.
# - F. Zhang, X. Zhu, H. Dai, M. Ye, C. Zhu, *Distribution-Aware Coordinate Representation for
#   Human Pose Estimation* (DARK), CVPR 2020 ([arXiv:1910.06278](https://arxiv.org/abs/1910.06278)).
# - X. Sun, B. Xiao, F. Wei, S. Liang, Y. Wei, *Integral Human Pose Regression*, ECCV 2018
#   ([arXiv:1711.08229](https://arxiv.org/abs/1711.08229)).

# %%
import matplotlib.pyplot as plt
import numpy as np

from course_lib import data, heatmaps, losses, models, report, training, viz, widgets
from course_lib.grading import ch02_heatmaps as checks
from course_lib.keypoints import COCO_KEYPOINTS
from course_lib.models.coordinate_regression import simple_baseline_tiny_regressor

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80
INPUT_SIZE, HEATMAP_SIZE = (96, 64), (24, 16)  # the tiny models' crops and their stride-4 heatmaps
val_crops = training.top_down_data(data.default_split_dir("single/val"), INPUT_SIZE, HEATMAP_SIZE, limit=64)

# %% [markdown]
# ## 1. Why heatmaps?
#
# Here is one validation person, cropped to the $96 \times 64$ input of the course's tiny
# models, and the 17 target heatmaps a network is trained to paint for it: one map per
# joint, $24 \times 16$ pixels (stride 4), each with a small Gaussian bump where the joint is.

# %%
item = val_crops[5]
crop = data.tensor_to_image(item["image"])
fig = viz.show_heatmaps(item["heatmaps"].numpy(), COCO_KEYPOINTS, image=crop, cols=9, size=1.45)
fig.suptitle("target heatmaps over the crop (the tint of each map: where the network should fire)", fontsize=10)
fig.tight_layout()

# %% [markdown]
# Three reasons made this the standard representation.
#
# **Annotators disagree by a few pixels.** Ask ten people to click on a wrist and you get ten
# different points a few pixels apart: the label itself is a blob, not a point. Tompson et
# al. (2015) measured how far human annotators spread on the FLIC data set and showed that
# their detector's error approached that spread. A Gaussian target says honestly "around
# here"; a coordinate target pretends to know the exact pixel. The figure simulates ten
# annotators who each click within a couple of pixels of the true left wrist.

# %%
wrist = COCO_KEYPOINTS.index("left_wrist")
truth = item["keypoints"][wrist].numpy()
clicks = truth + np.random.default_rng(0).normal(0, 1.5, size=(10, 2))
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
viz.show_image(crop, axes[0])
axes[0].plot(*clicks.T, "w+", markersize=7)
axes[0].plot(*truth, "o", color="#ff8000", markersize=4)
axes[0].set_title("10 simulated clicks on the left wrist", fontsize=9)
zoom = slice(int(truth[1]) - 8, int(truth[1]) + 9), slice(int(truth[0]) - 8, int(truth[0]) + 9)
target, _ = heatmaps.gaussian_heatmaps(truth[None], np.array([2]), INPUT_SIZE, sigma=2.0, unbiased=True)
axes[1].imshow(target[0][zoom], cmap="magma", extent=(zoom[1].start - 0.5, zoom[1].stop - 0.5, zoom[0].stop - 0.5,
                                                     zoom[0].start - 0.5))
axes[1].plot(*clicks.T, "c+", markersize=9)
axes[1].set_title("a Gaussian target (sigma = 2 px) covers the spread", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **A map keeps the spatial structure.** A fully convolutional network computes the same
# function at every position: if the person moves 10 pixels right, the heatmap moves 10
# pixels right (translation *equivariance*). A regression head must learn the mapping from
# image content to absolute numbers through fully connected layers, a much harder function.
# A map can also hold two candidates (two similar-looking wrists) and say so, where a single
# coordinate must average them into a point between the two.
#
# **Joints without a label cost nothing.** Each joint's map gets a weight $w_k$ in the loss,
#
# $$L = \frac{1}{K H W}\sum_{k}\sum_{u, v} \tfrac12\big(w_k\,(P_k(u, v) - G_k(u, v))\big)^2,$$
#
# and $w_k = 0$ for a joint that is not labelled (COCO's $v = 0$), or that fell outside the
# crop: whatever the network paints there, it is not punished, and it is not taught to paint
# nothing. (A *hidden* joint, $v = 1$, has a known position and keeps its weight, as in the
# official code.) Regression can weight joints too, but heatmaps made it natural.
#
# ### Tompson et al.: coarse to fine
#
# Tompson et al.'s 2015 network predicts heatmaps at a **coarse** resolution: each pooling
# layer halves the map, so a pixel of the output covers several pixels of the image, and the
# position can only be as precise as that grid. Their remedy is a cascade: a **fine** model
# cuts a small window around each joint's coarse maximum, *out of the coarse model's own
# feature maps* (so the convolutions are computed once and shared, which makes it cheap), and
# predicts a high-resolution heatmap of the joint's offset inside that window. The two are
# trained jointly: coarse heatmap, crop around its peak, refine with shared features. The figure shows the problem it solves: at stride 8 the
# heatmap's pixels are 8 image pixels wide, and a refinement window at full resolution
# restores the detail.

# %%
coarse, _ = heatmaps.gaussian_heatmaps(truth[None] / 8, np.array([2]), (12, 8), sigma=1.0, unbiased=True)
fine, _ = heatmaps.gaussian_heatmaps(truth[None], np.array([2]), INPUT_SIZE, sigma=2.0, unbiased=True)
peak = np.asarray(heatmaps.decode_argmax(coarse)[0][0]) * 8  # the coarse maximum, in crop pixels
fig, axes = plt.subplots(1, 3, figsize=(8, 3.2))
viz.overlay_heatmap(crop, coarse[0], ax=axes[0], alpha=0.55)
axes[0].set_title("coarse map, stride 8", fontsize=9)
window = slice(int(peak[1]) - 8, int(peak[1]) + 8), slice(int(peak[0]) - 8, int(peak[0]) + 8)
axes[0].add_patch(plt.Rectangle((window[1].start - 0.5, window[0].start - 0.5), 16, 16, fill=False, color="w"))
viz.show_image(crop[window], axes[1])
axes[1].set_title("the fine model's window", fontsize=9)
axes[2].imshow(fine[0][window], cmap="magma")
axes[2].set_title("fine map in the window, stride 1", fontsize=9)
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# ## 2. Gaussian targets
#
# A joint at heatmap position $\mu = (\mu_x, \mu_y)$ (input pixels divided by the stride
# $s$) gets the target
#
# $$G(u, v) = \exp\!\Big(-\frac{(u - \mu_x)^2 + (v - \mu_y)^2}{2\sigma^2}\Big),$$
#
# with $\sigma = 2$ heatmap pixels in the official code (at stride 4). Two conventions differ
# in one detail.
#
# - **MSRA** (the official SimpleBaseline and HRNet code, named after Microsoft Research
#   Asia where it was written): the centre is first **rounded to a pixel**,
#   $\mu = \lfloor x + 0.5 \rfloor$ (the code writes `int(x + 0.5)`), so that the peak is
#   exactly 1 on one pixel, and the Gaussian is cut to a window of $3\sigma$ on each side.
# - **Unbiased** (DARK): the centre stays where the joint is, sub-pixel, and nothing is cut.
#
# Rounding moves the target by up to half a heatmap pixel, that is $s/2$ input pixels: the
# network is taught a slightly wrong position, and no decoder can undo it (the experiment in
# section 4 measures this). The profiles below are one row of each target for a joint at
# $\mu_x = 5.3$.

# %%
u = np.arange(12)
fig, ax = plt.subplots(figsize=(6, 2.6))
for unbiased, style in ((False, "o-"), (True, "s--")):
    maps, _ = heatmaps.gaussian_heatmaps(np.array([[5.3, 3.0]]), np.array([2]), (7, 12), sigma=2.0, unbiased=unbiased)
    ax.plot(u, maps[0, 3], style, label="unbiased (DARK)" if unbiased else "MSRA: centre rounded to 5")
ax.axvline(5.3, color="k", linewidth=0.8)
ax.text(5.35, 0.05, "true x = 5.3", fontsize=8)
ax.set_xlabel("heatmap column u")
ax.set_ylabel("G(u, v = 3)")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ### Exercise 1: one Gaussian target with its weight
#
# Write the MSRA target of **one** joint. Round the centre with `int(x + 0.5)` (our test
# joints have $x, y \ge 0$), keep the Gaussian only where $|u - \mu_x| \le 3\sigma$ **and**
# $|v - \mu_y| \le 3\sigma$, and return a weight of 1, except 0 (with an all-zero map) when
#
# - the joint is not labelled, $v = 0$, or
# - its $3\sigma$ window fails the official in-bounds test: with `ul = int(mu - 3 sigma)` and
#   `br = int(mu + 3 sigma + 1)` on each axis, `ul_x >= W` or `ul_y >= H` or `br_x < 0` or `br_y < 0`.
#
# Remember: $x$ is the **column** (second index of a map), $y$ the **row**.


# %%
def gaussian_target(keypoint, visibility, heatmap_size, sigma):
    """MSRA Gaussian target of one joint and its loss weight.

        mu = (int(x + 0.5), int(y + 0.5))
        G(u, v) = exp(-((u - mu_x)^2 + (v - mu_y)^2) / (2 sigma^2))   where |u - mu_x| <= 3 sigma
                                                                     and |v - mu_y| <= 3 sigma, else 0
        weight  = 1 if v > 0 and the window passes the official in-bounds test, else 0 (and G = 0):
                  ul = int(mu - 3 sigma), br = int(mu + 3 sigma + 1); 0 if ul >= size or br < 0 on an axis

    Args:
        keypoint: (2,) array, x, y in heatmap pixels.
        visibility: COCO flag 0, 1 or 2.
        heatmap_size: (H, W).
        sigma: standard deviation in heatmap pixels.

    Returns:
        (heatmap, weight): a float (H, W) array and a float.
    """
    ### BEGIN SOLUTION
    height, width = heatmap_size
    mu_x, mu_y = int(keypoint[0] + 0.5), int(keypoint[1] + 0.5)
    radius = 3 * sigma
    on_map = all(int(mu - radius) < size and int(mu + radius + 1) >= 0
                 for mu, size in ((mu_x, width), (mu_y, height)))
    if visibility <= 0 or not on_map:
        return np.zeros((height, width)), 0.0
    u = np.arange(width)[None, :]
    v = np.arange(height)[:, None]
    heatmap = np.exp(-((u - mu_x) ** 2 + (v - mu_y) ** 2) / (2 * sigma**2))
    heatmap = heatmap * (np.abs(u - mu_x) <= radius) * (np.abs(v - mu_y) <= radius)
    return heatmap, 1.0
    ### END SOLUTION


# %%
checks.check_gaussian_target(gaussian_target)

# %%
# points: 3
checks.check_gaussian_target(gaussian_target)
### BEGIN HIDDEN TESTS
checks.hidden_gaussian_target(gaussian_target)
### END HIDDEN TESTS

# %% [markdown]
# The course's implementation of what you just wrote, `heatmaps.gaussian_heatmaps`, does all
# people and joints at once (and the unbiased variant with `unbiased=True`); the training
# data uses it. Below, a validation person with a joint that is **not labelled**: its map is
# empty and its weight 0, so the loss ignores whatever the network paints there.

# %%
index = next(i for i in range(len(val_crops)) if (val_crops[i]["visibility"] == 0).any())
person = val_crops[index]
maps, weights = heatmaps.gaussian_heatmaps(person["keypoints"].numpy() / 4, person["visibility"].numpy(),
                                           HEATMAP_SIZE, sigma=2.0)
names = [f"{name}\nv={int(v)} w={w:.0f}" for name, v, w in zip(COCO_KEYPOINTS, person["visibility"], weights)]
fig = viz.show_heatmaps(maps, names, image=data.tensor_to_image(person["image"]), cols=9, size=1.3)
fig.tight_layout()

# %% [markdown]
# ## 3. Decoding: from a heatmap back to a position
#
# ### Argmax
#
# The simplest decoder takes the pixel with the largest value,
# $(\hat u, \hat v) = \arg\max_{u, v} H(u, v)$, and multiplies by the stride to get back to
# input pixels, $x = s\,\hat u$. It can only return grid positions, so even a perfect heatmap
# is read with an error of up to half a heatmap pixel on each axis: $s/2$ input pixels.
#
# ### Exercise 2: argmax decoding
#
# For each of the $K$ maps return the column and row of its maximum as $(x, y)$ (floats) and
# the maximum value as the joint's score. With NumPy, `argmax` of a flattened map gives a
# flat index; turn it back into a row and a column (on ties, the first maximum wins, which
# is what `argmax` does).


# %%
def decode_argmax(heatmaps):
    """Argmax decoding of K heatmaps: the pixel of each map's maximum.

        (x_k, y_k) = argmax_{u, v} H_k(u, v)   (x = column u, y = row v)
        score_k    = max_{u, v} H_k(u, v)

    Args:
        heatmaps: (K, H, W) NumPy array.

    Returns:
        (keypoints, scores): (K, 2) float array of x, y in heatmap pixels, and (K,) scores.
    """
    ### BEGIN SOLUTION
    num_maps, height, width = heatmaps.shape
    flat = heatmaps.reshape(num_maps, height * width)  # (K, H*W)
    index = flat.argmax(axis=1)
    keypoints = np.stack([index % width, index // width], axis=1).astype(float)
    return keypoints, flat.max(axis=1)
    ### END SOLUTION


# %%
checks.check_decode_argmax(decode_argmax)

# %%
# points: 2
checks.check_decode_argmax(decode_argmax)
### BEGIN HIDDEN TESTS
checks.hidden_decode_argmax(decode_argmax)
### END HIDDEN TESTS

# %% [markdown]
# ### The quarter offset
#
# The true peak lies between the maximum and its *higher* neighbour. The official Hourglass,
# SimpleBaseline and HRNet code therefore moves a quarter of a pixel that way on each axis:
#
# $$\hat x = \hat u + \tfrac14\,\mathrm{sign}\big(H(\hat u + 1, \hat v) - H(\hat u - 1, \hat v)\big),
# \qquad \hat y = \hat v + \tfrac14\,\mathrm{sign}\big(H(\hat u, \hat v + 1) - H(\hat u, \hat v - 1)\big).$$
#
# If the true offset is uniform in $[-\frac12, \frac12]$, guessing $\pm\frac14$ on the right
# side halves the expected error: a cheap heuristic that stayed in the code for years.
#
# ### Exercise 3: quarter-offset refinement
#
# Given the maps and their argmax positions (integers stored as floats), step a quarter
# pixel towards the higher neighbour on each axis. As in HRNet's `get_final_preds`, step only
# when the maximum is inside on both axes, `1 < u < W - 1` and `1 < v < H - 1`, and then on
# both; when the two neighbours are equal, `sign` gives 0 and there is no step on that axis.


# %%
def quarter_offset(heatmaps, keypoints):
    """Quarter-offset refinement of argmax positions.

        x = u + 0.25 * sign(H[v, u + 1] - H[v, u - 1])   if 1 < u < W - 1 and 1 < v < H - 1, else x = u
        y = v + 0.25 * sign(H[v + 1, u] - H[v - 1, u])   under the same condition, else y = v

    Args:
        heatmaps: (K, H, W) NumPy array.
        keypoints: (K, 2) argmax positions x = u, y = v (whole numbers, as floats).

    Returns:
        (K, 2) float array of refined x, y in heatmap pixels.
    """
    ### BEGIN SOLUTION
    height, width = heatmaps.shape[-2:]
    refined = np.array(keypoints, dtype=float)
    for k, (u, v) in enumerate(np.asarray(keypoints).astype(int)):
        if 1 < u < width - 1 and 1 < v < height - 1:
            refined[k, 0] += 0.25 * np.sign(heatmaps[k, v, u + 1] - heatmaps[k, v, u - 1])
            refined[k, 1] += 0.25 * np.sign(heatmaps[k, v + 1, u] - heatmaps[k, v - 1, u])
    return refined
    ### END SOLUTION


# %%
checks.check_quarter_offset(quarter_offset)

# %%
# points: 2
checks.check_quarter_offset(quarter_offset)
### BEGIN HIDDEN TESTS
checks.hidden_quarter_offset(quarter_offset)
### END HIDDEN TESTS

# %% [markdown]
# ### DARK: a Taylor step on the log-heatmap
#
# DARK (Zhang et al. 2020) takes the Gaussian shape seriously. The logarithm of a Gaussian
# is a quadratic, $P(\mathbf p) = \log G(\mathbf p) = -\frac{\lVert \mathbf p - \mu\rVert^2}{2\sigma^2} + c$,
# so a second-order Taylor expansion around the maximum $\mathbf m$ is *exact*, and one
# Newton step lands on the true centre:
#
# $$\mu = \mathbf m - \big(\nabla^2 P(\mathbf m)\big)^{-1} \nabla P(\mathbf m),$$
#
# with the gradient and Hessian estimated by central differences on the map. A trained
# network's heatmap is not a clean Gaussian, so DARK first blurs it with the training
# Gaussian ("distribution modulation"). DARK's second contribution is the unbiased target of
# section 2: without it the network learns the rounded position, and the Taylor step
# recovers that rounded position faithfully. The course's implementation is
# `heatmaps.decode_dark`.
#
# ### Soft-argmax, or integral regression
#
# The last decoder turns the map into a probability distribution with a softmax and takes
# its **expected** position:
#
# $$p(u, v) = \frac{\exp(H(u, v)/T)}{\sum_{u', v'} \exp(H(u', v')/T)}, \qquad
# \hat x = \sum_{u, v} u\, p(u, v), \qquad \hat y = \sum_{u, v} v\, p(u, v).$$
#
# Unlike argmax it is differentiable, so a network can be trained through it with a loss on
# the coordinates (Sun et al. call this *integral regression*): heatmaps inside, regression
# outside. The temperature $T$ matters. On a network's logits $T = 1$ is natural; on our
# targets, which lie in $[0, 1]$, every background pixel still gets weight $e^0 = 1$ and
# pulls the mean towards the centre of the map unless $T$ is small (0.05 below). Near the
# border the peak is cut and the mean is pulled inwards whatever $T$ is.
#
# ### Exercise 4: soft-argmax
#
# Return the expected $(x, y)$ of each map. Network outputs can be large, and
# `np.exp(60 / 0.05)` overflows: subtract each map's maximum before `exp` (the softmax does
# not change, since the factor cancels in the division).


# %%
def soft_argmax(heatmaps, temperature):
    """Soft-argmax (integral regression): the expected position under a softmax of each map.

        p(u, v) = exp(H(u, v) / T) / sum_{u', v'} exp(H(u', v') / T)
        x = sum_{u,v} u p(u, v),   y = sum_{u,v} v p(u, v)

    Args:
        heatmaps: (K, H, W) NumPy array.
        temperature: T > 0.

    Returns:
        (K, 2) float array of x, y in heatmap pixels.
    """
    ### BEGIN SOLUTION
    logits = heatmaps / temperature
    weights = np.exp(logits - logits.max(axis=(1, 2), keepdims=True))  # (K, H, W), stable
    weights = weights / weights.sum(axis=(1, 2), keepdims=True)
    columns = np.arange(heatmaps.shape[2])
    rows = np.arange(heatmaps.shape[1])
    x = (weights.sum(axis=1) * columns).sum(axis=1)  # marginal over rows, then the mean column
    y = (weights.sum(axis=2) * rows).sum(axis=1)
    return np.stack([x, y], axis=1)
    ### END SOLUTION


# %%
checks.check_soft_argmax(soft_argmax)

# %%
# points: 2
checks.check_soft_argmax(soft_argmax)
### BEGIN HIDDEN TESTS
checks.hidden_soft_argmax(soft_argmax)
### END HIDDEN TESTS

# %% [markdown]
# ### The four decoders on one joint
#
# The course's implementations (`heatmaps.decode_argmax`, `decode_quarter_offset`,
# `decode_dark`, `soft_argmax`) on the unbiased target of a joint at $(5.3, 3.8)$ of a
# $10 \times 10$ map. Argmax is stuck on the grid, the quarter offset gets closer, DARK and
# soft-argmax land on the true position.

# %%
true_point = np.array([5.3, 3.8])
target, _ = heatmaps.gaussian_heatmaps(true_point[None], np.array([2]), (10, 10), sigma=2.0, unbiased=True)
decoded = {
    "argmax": heatmaps.decode_argmax(target)[0][0],
    "quarter offset": heatmaps.decode_quarter_offset(target)[0][0],
    "DARK": heatmaps.decode_dark(target, sigma=2.0)[0][0],
    "soft-argmax (T=0.05)": heatmaps.soft_argmax(target, temperature=0.05)[0][0],
}
fig, ax = plt.subplots(figsize=(4.6, 4.2))
ax.imshow(target[0], cmap="magma")
ax.plot(*true_point, "w*", markersize=14, label="true position")
for (name, point), marker in zip(decoded.items(), "osDx"):
    error = np.linalg.norm(point - true_point)
    ax.plot(*point, marker, markersize=8, markerfacecolor="none", markeredgewidth=1.8,
            label=f"{name}: error {error:.2f} px")
ax.set_xlim(3.6, 6.6)
ax.set_ylim(5.2, 2.4)  # zoom on the peak (rows grow downwards)
ax.legend(fontsize=7, loc="lower left")
ax.set_title("decoders on one exact target (zoom, heatmap pixels)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# Move the joint, change $\sigma$, the stride and the target convention, and watch each
# decoder's error:

# %%
widgets.heatmap_explorer()

# %% [markdown]
# ## 4. Experiment (a): decoding error against the heatmap's stride
#
# How much position do we lose by decoding a heatmap, before any network is involved? We
# place 400 joints uniformly at random, at sub-pixel positions, in a $256 \times 192$ input
# (the COCO crop of SimpleBaseline and HRNet), paint their **exact** targets at stride
# $s = 1, 2, 4, 8$ with $\sigma = 2$ heatmap pixels, decode them with the four decoders and
# measure the error back in input pixels. Both target conventions are shown: unbiased (the
# target is where the joint is) and MSRA (the target is at the rounded position).

# %% tags=["experiment"]
rng = np.random.default_rng(0)
crop_size = (256, 192)
num_points = training.budget(full=400, fast=100)
points = rng.uniform([0, 0], [crop_size[1] - 1, crop_size[0] - 1], size=(num_points, 2))  # x, y, input px
decoders = {
    "argmax": heatmaps.decode_argmax,
    "quarter offset": heatmaps.decode_quarter_offset,
    "DARK": lambda maps: heatmaps.decode_dark(maps, sigma=2.0),
    "soft-argmax": lambda maps: heatmaps.soft_argmax(maps, temperature=0.05),
}
decoding_rows = []
for convention in ("unbiased", "MSRA"):
    for stride in (1, 2, 4, 8):
        size = (crop_size[0] // stride, crop_size[1] // stride)
        maps, _ = heatmaps.gaussian_heatmaps(points / stride, np.full(len(points), 2), size, sigma=2.0,
                                             unbiased=convention == "unbiased")
        row = {"targets": convention, "stride": stride, "map": f"{size[0]}x{size[1]}"}
        for name, decode in decoders.items():
            found = np.asarray(decode(maps)[0]) * stride  # back to input pixels
            row[f"{name} (px)"] = float(np.linalg.norm(found - points, axis=1).mean())
        decoding_rows.append(row)

def error_at(convention, stride, decoder):
    """The table's mean error of one decoder, in input pixels."""
    return next(r[f"{decoder} (px)"] for r in decoding_rows if r["targets"] == convention and r["stride"] == stride)


sub_pixel_wins = all(max(error_at("unbiased", 4, d), error_at("unbiased", 8, d))
                     < min(error_at("unbiased", 4, "argmax"), error_at("unbiased", 4, "quarter offset"))
                     for d in ("DARK", "soft-argmax"))
argmax_grows = error_at("unbiased", 8, "argmax") > error_at("unbiased", 1, "argmax")
msra_inherits = error_at("MSRA", 4, "DARK") > 0.5 * error_at("MSRA", 4, "argmax")
verdict = ("as DARK argues: with unbiased targets DARK and soft-argmax stay below argmax and the quarter offset"
           if sub_pixel_wins else "unlike DARK's argument: with unbiased targets DARK or soft-argmax is not below "
           "argmax and the quarter offset everywhere")
verdict += (f"; argmax's error {'grows' if argmax_grows else 'does not grow'} with the stride "
            f"({error_at('unbiased', 1, 'argmax'):.2f} px at stride 1, {error_at('unbiased', 8, 'argmax'):.2f} at 8)")
verdict += (f"; with MSRA's rounded targets DARK {'inherits' if msra_inherits else 'escapes'} the rounding error "
            f"({error_at('MSRA', 4, 'DARK'):.2f} px at stride 4, argmax {error_at('MSRA', 4, 'argmax'):.2f}).")
decoding_table = report.experiment_table(
    decoding_rows, chapter="02", title="Decoding error of exact targets vs stride (mean, input pixels)",
    note=verdict[0].upper() + verdict[1:],
)
decoding_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), sharey=True)
for ax, convention in zip(axes, ("unbiased", "MSRA")):
    rows = [r for r in decoding_rows if r["targets"] == convention]
    strides = [r["stride"] for r in rows]
    for name, marker in zip(decoders, "osDx"):
        ax.plot(strides, [r[f"{name} (px)"] for r in rows], marker=marker, label=name)
    ax.plot(strides, [0.383 * s for s in strides], "k:", linewidth=1, label="0.38 s (uniform rounding)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(strides, [str(s) for s in strides])
    ax.set_xlabel("heatmap stride s")
    ax.set_title(f"{convention} targets", fontsize=10)
axes[0].set_ylabel("mean decoding error (input px)")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Read the plot before moving on. With argmax the error grows linearly with the stride: a
# point uniformly placed in a square of side $s$ is on average $0.38\,s$ from its centre (the
# dotted line). At stride 4, the standard, that is 1.5 input pixels, a large part of the
# error of a good model on a $256 \times 192$ crop. The quarter offset roughly halves it.
# DARK and soft-argmax recover the sub-pixel position from an exact unbiased target, but
# with MSRA targets they faithfully find the **rounded** centre: the information is gone
# before decoding starts. (Their remaining errors come from joints within about two heatmap
# pixels of the border, where DARK does not step and the soft-argmax's peak is cut; at
# stride 8 the map is only $32 \times 24$ pixels and that border is a large share of it.)
#
# ## 5. Experiment (b): regression against heatmaps, same encoder, same budget
#
# Now with learning. Two networks share the **same encoder**, the ResNet of
# `simplebaseline_tiny` (a quarter-width ResNet-18), and differ only in the head:
#
# - **heatmaps**: SimpleBaseline's three deconvolutions and a $1\times1$ convolution, trained
#   with the weighted heatmap MSE above, decoded with DARK;
# - **regression**: DeepPose's kind of head, two fully connected layers on the flattened
#   $3 \times 2$ feature map, trained with the L2 loss on box-normalised coordinates
#   (`losses.RegressionLoss`, chapter 01).
#
# Both get the same steps, batch, learning rate, schedule, seed and augmentation. The two
# heads have about the same number of parameters (the regression head's are in its first
# fully connected layer), but the heatmap head costs more computation per image.

# %% tags=["experiment"]
steps = training.budget(full=500, fast=8)
train_crops = training.top_down_data(data.default_split_dir("single/train"), INPUT_SIZE, HEATMAP_SIZE,
                                     augment=True, limit=training.budget(None, 256))
val_set = training.top_down_data(data.default_split_dir("single/val"), INPUT_SIZE, HEATMAP_SIZE,
                                 limit=training.budget(None, 64))
with training.seeded(0):  # both networks start from weights drawn from the same seed
    regressor = simple_baseline_tiny_regressor()
contenders = {
    "heatmaps": (models.build("simplebaseline_tiny", seed=0), losses.HeatmapLoss()),
    "regression": (regressor, losses.RegressionLoss()),
}
runs = {}
for name, (model, loss) in contenders.items():
    print(f"training the {name} model")
    history = training.fit(model, train_crops, val_set, loss, steps, batch_size=32, lr=2e-3, seed=0,
                           eval_every=training.budget(steps // 5, steps), eval_items=training.budget(200, 32))
    runs[name] = (model, history, training.evaluate(model, val_set, coco_ap=False).metrics)

# %% tags=["experiment"]
comparison_rows = [
    {"head": name, "parameters": sum(p.numel() for p in model.parameters()), "steps": steps,
     "PCK@0.2": scores["pck@0.2"], "PCK@0.1": scores["pck@0.1"], "PCK@0.05": scores["pck@0.05"],
     "mean error (px)": scores["mean_error"],
     "train images/s": history.images_per_second}
    for name, (model, history, scores) in runs.items()
]
heatmap_pck, regression_pck = (runs[name][2]["pck@0.1"] for name in ("heatmaps", "regression"))
gaps = {t: runs["heatmaps"][2][f"pck@{t}"] - runs["regression"][2][f"pck@{t}"] for t in ("0.2", "0.1", "0.05")}
growing = gaps["0.05"] > gaps["0.1"] > gaps["0.2"]
comparison_table = report.experiment_table(
    comparison_rows, chapter="02", title="Same encoder, same budget: coordinate regression vs heatmaps (validation)",
    note=(f"Heatmaps {'win' if heatmap_pck > regression_pck else 'do not win'} at PCK@0.1 "
          f"({heatmap_pck:.2f} vs {regression_pck:.2f}), "
          + ("as Tompson et al. and the later papers found" if heatmap_pck > regression_pck else
             "unlike the papers; a run this short does not settle the question (see the text)")
          + f"; the gap is {gaps['0.2']:+.3f} at PCK@0.2, {gaps['0.1']:+.3f} at 0.1 and {gaps['0.05']:+.3f} at 0.05: "
          + ("it grows as the threshold tightens." if growing else "it does not grow steadily as the threshold tightens.")),
)
comparison_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for name, (model, history, scores) in runs.items():
    axes[0].plot(history.val_steps, [v["pck@0.2"] for v in history.val], marker="o", label=name)
    axes[1].plot(history.val_steps, [v["mean_error"] for v in history.val], marker="o", label=name)
axes[0].set_ylabel("validation PCK@0.2")
axes[1].set_ylabel("validation mean error (px)")
for ax in axes:
    ax.set_xlabel("training step")
    ax.legend(fontsize=8)
fig.tight_layout()

# %% tags=["experiment"]
predictions = {name: training.predict(model, val_set) for name, (model, _, _) in runs.items()}
fig, axes = plt.subplots(2, 4, figsize=(8, 5.2))
for row, (name, found) in zip(axes, predictions.items()):
    for ax, i in zip(row, range(4)):
        sample = val_set.samples[i]
        viz.show_image(sample["image"], ax)
        viz.draw_pose(found.keypoints[i], sample["visibility"], ax=ax, linewidth=1.2, markersize=8)
        ax.set_title(f"{name}: {np.nanmean(found.errors[i]):.1f} px", fontsize=8)
fig.tight_layout()

# %% tags=["experiment"]
margins = ", ".join(f"{100 * gap:+.1f} points of PCK@{t}" for t, gap in gaps.items())
wins_everywhere = all(gap > 0 for gap in gaps.values()) and (
    runs["heatmaps"][2]["mean_error"] < runs["regression"][2]["mean_error"])
report.markdown(
    f"**In this run** ({'fast' if training.fast_profile() else 'full'} profile) the heatmap network "
    + ("wins on every metric" if wins_everywhere else "does not win on every metric")
    + f", by {margins} (heatmaps minus regression), and a mean error of "
    f"{runs['heatmaps'][2]['mean_error']:.2f} px against {runs['regression'][2]['mean_error']:.2f} px. "
    + ("The margin widens as the threshold tightens: the regression head finds the layout, not the precise spot."
       if growing else "The margin does not widen steadily as the threshold tightens in this run.")
)

# %% [markdown]
# What to take from it. The regression head learns the rough layout of a body quickly (the
# loose threshold), but struggles to place joints *precisely* from a $3\times2$ grid of
# features; the heatmap head keeps a $24 \times 16$ map in which each position only has to
# answer "is the joint here?". That is the papers' direction; the sentence above says whether
# this run follows it. Two honest caveats: the two networks have about the same number of parameters, but the
# heatmap head costs more per step (its deconvolutions work at growing resolutions; see the
# images per second), and the result depends on the budget: with much longer training and
# tuned heads, regression closes part of the gap (integral regression and, later,
# regression with learned error distributions closed most of it on real data). At equal,
# small budgets heatmaps are the safer choice, which is why the next five chapters use them.
# If your table disagrees (the fast profile trains only a handful of steps), those numbers
# are noise, not evidence.
#
# ## What the paper reported
#
# - **Tompson et al. 2015** (coarse-to-fine heatmaps with the shared-feature refinement):
#   82.0% PCKh@0.5 on the MPII Human Pose test set (the total over all joints, as listed on
#   the MPII benchmark), and on FLIC a detector whose error variance approaches the
#   variance of human annotators.
# - **DARK** (Zhang et al. 2020), COCO val2017, flip test, person detector with 56.4 AP:
#   HRNet-W32 at $128 \times 96$ input goes from 66.9 to **70.7 AP** with DARK's unbiased
#   targets and Taylor decoding; at $256 \times 192$ from 74.4 to **75.6 AP**; at
#   $384 \times 288$ from 75.8 to 76.6 AP. The gain is largest for small inputs, where the
#   heatmap is coarsest: exactly the trend of experiment (a). On MPII val (HRNet-W32,
#   $256 \times 256$), PCKh@0.5 moves from 90.3 to 90.6 but the strict PCKh@0.1 from 37.7
#   to 42.0.
# - **Integral regression** (Sun et al. 2018) trains heatmap networks end to end through the
#   soft-argmax with a coordinate loss, for 2D and 3D pose; it showed that the choice between
#   "heatmap" and "regression" is partly a choice of *decoder and loss*.
#
# ## Check your understanding
#
# 1. A model predicts heatmaps at stride 4 and is decoded with plain argmax. Without any
#    network error, what mean error (in input pixels) should you expect, and why does this
#    matter more for a $128 \times 96$ crop than for a $384 \times 288$ one?
#
# <details><summary>Answer</summary>
#
# About $0.38 \times 4 \approx 1.5$ input pixels (the mean distance of a uniform point in a
# $4 \times 4$ cell to its centre). PCK and OKS thresholds scale with the person's size, so
# the same 1.5 pixels is a larger fraction of a small crop's person: the quantisation error
# costs more AP at small input sizes, which is where DARK gains the most.
# </details>
#
# 2. Why does a joint with $v = 0$ get weight 0 rather than an all-zero target with weight 1?
#
# <details><summary>Answer</summary>
#
# An all-zero target with weight 1 would teach the network "there is no wrist here", which
# is false: the wrist exists, it just was not labelled (or it is outside the crop). Weight 0
# removes the joint from the loss, so the network is neither rewarded nor punished for what
# it paints.
# </details>
#
# 3. The quarter offset never moves the estimate on an MSRA target (the map is symmetric
#    around the rounded centre). Why did the official code keep it then?
#
# <details><summary>Answer</summary>
#
# A *trained network's* heatmap is not the symmetric target: it is blurred and tilted
# towards the true sub-pixel position of the joint in the image (the network sees the image,
# not the rounded label), so the higher neighbour often points the right way, and the
# quarter step helps on real outputs.
# </details>
#
# 4. Soft-argmax on a map of values in $[0, 1]$ with $T = 1$ returns a point near the map's
#    centre, whatever the map shows. Why?
#
# <details><summary>Answer</summary>
#
# With $T = 1$ the weights are $e^{H}$, between 1 and $e \approx 2.7$: the hundreds of
# background pixels each get weight 1 and outweigh the peak, so the expected position is
# close to the mean of all pixel positions, the centre. A small $T$ (or logits with a large
# range, as a network trained through the soft-argmax learns to produce) makes the peak
# dominate.
# </details>
#
# 5. Tompson et al.'s fine model crops the *feature maps* of the coarse model rather than the
#    image. What does that save?
#
# <details><summary>Answer</summary>
#
# The convolutions of the image are computed once, by the coarse model, and reused for every
# joint's window (shared weights), so the refinement adds only a small network per window
# instead of a second full pass over an image crop per joint.
# </details>

# %% [markdown]
# ## Stretch exercise: DARK's Taylor step
#
# This one is optional (bonus points). DARK reads the sub-pixel position from the **logarithm**
# of the (blurred) heatmap, $P = \log H$: for a Gaussian, $P$ is a quadratic whose maximum is the
# centre $\mu$. Around the argmax $m$, a second-order expansion gives one Newton step,
#
# $$\mu = m - \big(D''(m)\big)^{-1} D'(m),$$
#
# with DARK's central differences at $m = (u, v)$:
# $D'_x = \tfrac12 (P_{v,u+1} - P_{v,u-1})$, $D'_y = \tfrac12 (P_{v+1,u} - P_{v-1,u})$,
# $D''_{xx} = \tfrac14 (P_{v,u+2} - 2P_{v,u} + P_{v,u-2})$, $D''_{yy}$ likewise along $y$, and
# $D''_{xy} = \tfrac14 (P_{v+1,u+1} - P_{v-1,u+1} - P_{v+1,u-1} + P_{v-1,u-1})$. As in DARK's
# code, take the step only when $2 \le u \le W - 3$ and $2 \le v \le H - 3$ and the Hessian's
# determinant is not zero; otherwise return the argmax.


# %%
def taylor_step(log_map):
    """DARK's Newton step on a log-heatmap.

    Args:
        log_map: (H, W) the logarithm of one (blurred) heatmap.

    Returns:
        (2,) float array (x, y) in heatmap pixels.
    """
    ### BEGIN SOLUTION
    P = np.asarray(log_map, dtype=float)
    height, width = P.shape
    v, u = np.unravel_index(int(np.argmax(P)), P.shape)
    peak = np.array([u, v], dtype=float)
    if not (2 <= u <= width - 3 and 2 <= v <= height - 3):
        return peak
    gradient = np.array([P[v, u + 1] - P[v, u - 1], P[v + 1, u] - P[v - 1, u]]) / 2
    dxx = (P[v, u + 2] - 2 * P[v, u] + P[v, u - 2]) / 4
    dyy = (P[v + 2, u] - 2 * P[v, u] + P[v - 2, u]) / 4
    dxy = (P[v + 1, u + 1] - P[v - 1, u + 1] - P[v + 1, u - 1] + P[v - 1, u - 1]) / 4
    hessian = np.array([[dxx, dxy], [dxy, dyy]])
    if np.linalg.det(hessian) == 0:
        return peak
    return peak - np.linalg.solve(hessian, gradient)
    ### END SOLUTION


# %%
checks.check_taylor_step(taylor_step)

# %%
# bonus: 2
checks.check_taylor_step(taylor_step)
### BEGIN HIDDEN TESTS
checks.hidden_taylor_step(taylor_step)
### END HIDDEN TESTS

# %% [markdown]
# With your step, DARK's whole decoder is three lines: blur the map with the training Gaussian
# (`heatmaps.blur_heatmaps`), take the log, step. On an exact unbiased target it recovers the
# centre to a tiny fraction of a pixel, which is what experiment (a) measured.
#
# ## Summary
#
# - A heatmap asks, for every pixel, how likely the joint is there; a joint without a label
#   gets weight 0, not an empty target.
# - Tompson et al. refined coarse heatmaps with a window cut from the coarse model's own
#   features: pooling costs precision, and the refinement buys it back cheaply.
# - The target is a Gaussian of $\sigma = 2$ heatmap pixels: MSRA rounds its centre to a
#   pixel, DARK's unbiased target keeps the sub-pixel centre.
# - Argmax loses about $0.38\,s$ pixels at stride $s$; the quarter offset recovers part of it;
#   DARK's Taylor step and soft-argmax recover the sub-pixel position of an unbiased target.
# - With the same encoder and budget, the chapter's run compares a regression head with a
#   heatmap head at three PCK thresholds; the sentence under its table is computed from them.
# - Integral regression (soft-argmax trained end to end) shows that "heatmap or regression" is
#   partly a choice of decoder and loss.
