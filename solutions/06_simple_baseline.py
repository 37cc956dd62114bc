# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 06: SimpleBaseline, or how simple can a good pose network be?
#
# By 2018 the best systems on the COCO keypoint benchmark had grown complicated: stacks of
# hourglasses with intermediate supervision (chapter 04), feature pyramids with a second
# "refine" network (the Cascaded Pyramid Network), each with its own bag of details. Xiao, Wu
# and Wei asked the opposite question: *how good can a simple method be?* Their answer is a
# ResNet followed by three transposed convolutions, trained with the plain heatmap loss of
# chapter 02. On COCO it beat the 8-stack hourglass by 3.5 AP and the pyramid network by 1.8
# AP. The network takes ten lines; the interesting part of this chapter is everything around
# it, the **top-down pipeline** that HRNet (chapter 07) and most later models reuse unchanged:
# how a person box becomes a fixed-size crop, how predictions return to the image, and the
# flip test, with a one-pixel shift that looks like a hack until you derive it.
#
# ## Learning goals
#
# After this chapter you can
#
# - describe SimpleBaseline: a **heavy encoder** (ResNet) and a **light decoder** (three
#   4 x 4, stride-2 transposed convolutions of 256 channels, then a 1 x 1 convolution), with
#   no skip connections, and contrast it with the symmetric hourglass;
# - turn a person box into the crop a model sees: widen it to the model's **aspect ratio**,
#   **pad** it by 1.25, warp it with an **affine transform**, and map heatmap coordinates back
#   to the image;
# - run the **flip test** (mirror, swap left and right channels, shift one heatmap pixel) and
#   derive why the shift is there;
# - predict when the flip test *hurts*: when left and right can be told apart by something a
#   mirror contradicts;
# - write **online hard keypoint mining** (OHKM) and say what it changes in training;
# - measure how the heatmap's resolution (the number of deconvolution layers) matters.
#
# ## The papers
#
# - B. Xiao, H. Wu, Y. Wei, *Simple Baselines for Human Pose Estimation and Tracking*, ECCV 2018
#   ([arXiv:1804.06208](https://arxiv.org/abs/1804.06208)); official code:
#   `microsoft/human-pose-estimation.pytorch`. (Take care when citing it: arXiv:1703.06870,
#   with which it is sometimes confused, is Mask R-CNN; 1804.06208 is the right one.)
# - Y. Chen, Z. Wang, Y. Peng, Z. Zhang, G. Yu, J. Sun, *Cascaded Pyramid Network for
#   Multi-Person Pose Estimation*, CVPR 2018 ([arXiv:1711.07319](https://arxiv.org/abs/1711.07319)):
#   online hard keypoint mining.
# - J. Huang, Z. Zhu, F. Guo, G. Huang, D. Du, *The Devil is in the Details: Delving into
#   Unbiased Data Processing for Human Pose Estimation*, CVPR 2020
#   ([arXiv:1911.07524](https://arxiv.org/abs/1911.07524)): why the flipped heatmaps do not line up.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from course_lib import data, failures, geometry, heatmaps, losses, models, report, top_down, training, viz, widgets, zoo
from course_lib.grading import ch06_simple_baseline as checks
from course_lib.keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS
from course_lib.models.complexity import complexity_by_module

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80
INPUT_SIZE, HEATMAP_SIZE = (96, 64), (24, 16)  # the tiny models' crops (H, W) and their stride-4 heatmaps
val_people = data.CocoKeypoints(data.default_split_dir("single/val") / "annotations.json", cache_images=True)

# %% [markdown]
# ## 1. The network: a heavy encoder and a light decoder
#
# SimpleBaseline takes a ResNet (chapter 04's residual blocks, 50 to 152 layers deep, trained
# on ImageNet first), removes its classifier, and adds a decoder of three identical steps,
#
# $$\text{ConvTranspose}_{4\times4,\ \text{stride } 2,\ 256} \;\to\; \text{BatchNorm} \;\to\; \text{ReLU},$$
#
# then a $1 \times 1$ convolution to $K = 17$ heatmaps. The ResNet divides the resolution by
# 32; each transposed convolution doubles it, so the heatmaps come out at stride 4: a
# $256 \times 192$ crop gives $64 \times 48$ maps. Here are the shapes through
# SimpleBaseline-R50 (built on PyTorch's `meta` device: shapes only, no memory, no arithmetic):

# %%
with torch.device("meta"):
    r50 = models.build("simplebaseline_r50")
shapes = {}
stops = ["backbone.maxpool", "backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4",
         "deconv_layers.2", "deconv_layers.5", "deconv_layers.8", "final_layer"]
for name in stops:
    r50.get_submodule(name).register_forward_hook(lambda m, i, out, name=name: shapes.__setitem__(name, out.shape))
r50(torch.zeros(1, 3, 256, 192, device="meta"))
for name, shape in shapes.items():
    print(f"{name:18s} {tuple(shape[1:])}")
for part, counts in complexity_by_module(r50, (256, 192)).items():
    print(f"{part:14s} {counts['params'] / 1e6:5.1f} M parameters")

# %% [markdown]
# The same network as a diagram, drawn by `viz.draw_simple_baseline` from the model itself (its
# ResNet's stages, each transposed convolution, the head), with the shape of the features
# between the blocks:

# %%
viz.draw_simple_baseline(r50);

# %% [markdown]
# "Light" refers to the number of layers, not to the weights: the first transposed
# convolution alone maps 2048 channels to 256 with $4 \times 4$ kernels, 8.4 M weights, and the
# decoder holds almost a third of the 34 M parameters. What makes it light is that it does no
# work of its own beyond upsampling: all the recognition happens in the encoder.
#
# Compare with the stacked hourglass of chapter 04: it goes down *and* up symmetrically,
# several times, and its upsampling path adds **skip connections** that carry
# high-resolution features across. SimpleBaseline has none; the paper's point is that the
# deep, pretrained encoder followed by learned upsampling is enough, and it gets there
# without OHKM (section 4): the paper's Table 2 compares its 70.4 AP with the pyramid
# network's 68.6 without and 69.4 with OHKM.
#
# ### What a transposed convolution does
#
# A stride-2 transposed convolution reads each input pixel once and *paints* its
# $4 \times 4$ kernel, scaled by the pixel's value, into the output, moving 2 output pixels
# per input pixel. Neighbouring patches overlap, and the overlapping contributions add up.
# With padding 1 the output is exactly twice as large, $(n - 1) \cdot 2 - 2 + 4 = 2n$.
# Below: a $3 \times 3$ input with one lit pixel, what that pixel paints, and how many patches
# cover each output pixel when the whole input is lit (a kernel of ones).

# %%
ones_kernel = torch.ones(1, 1, 4, 4)
one_pixel = torch.zeros(1, 1, 3, 3)
one_pixel[0, 0, 1, 1] = 1.0
panels = {
    "input 3x3, one pixel lit": one_pixel,
    "what that pixel paints (6x6)": F.conv_transpose2d(one_pixel, ones_kernel, stride=2, padding=1),
    "patches covering each output pixel": F.conv_transpose2d(torch.ones(1, 1, 3, 3), ones_kernel, stride=2, padding=1),
}
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (title, image) in zip(axes, panels.items()):
    values = image[0, 0].numpy()
    ax.imshow(values, cmap="viridis", vmin=0, vmax=4)
    for (row, column), value in np.ndenumerate(values):
        ax.text(column, row, f"{value:.0f}", ha="center", va="center", color="w", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# Every interior output pixel receives exactly 4 contributions (2 per axis), the border ones
# fewer. With a $4 \times 4$ kernel and stride 2 the coverage is even *and* each output pixel
# blends two neighbouring input pixels per axis; a $3 \times 3$ kernel would cover the pixels
# unevenly (1, 2, 1, 2, ...: the "checkerboard" that the network must learn to hide), a
# $2 \times 2$ kernel evenly but with no blending at all. The differences are small in practice:
# the paper's ablation gives 70.1, 70.3 and 70.4 AP for kernels 2, 3 and 4.
#
# ## 2. The top-down pipeline
#
# A top-down system first finds people (a detector, chapter 09), then runs the pose network
# on each person separately. The network wants a fixed-size input, $256 \times 192$ for
# COCO (the tiny models of the course: $96 \times 64$), while people come in every size and
# shape. Three steps connect the two.
#
# ### 2.1 From a box to a crop: aspect ratio and padding
#
# A box $[x, y, w, h]$ is first given the model's aspect ratio $r = W / H$ (0.75 for
# $256 \times 192$) by **growing** one side, never shrinking the other, so that nothing of
# the person is cut off; then both sides are multiplied by a padding factor of 1.25, so that
# the crop holds some context around the person and augmentation (scaling, rotation) does not
# push limbs out of the crop. The result is described by a **centre** $c$ and a **scale**
# $s = (s_w, s_h)$, the size of the region in image pixels:
#
# $$c = \Big(x + \frac{w}{2},\; y + \frac{h}{2}\Big), \qquad
# (s_w, s_h) = 1.25 \cdot \begin{cases} (h r,\; h) & \text{if } w < h r \text{ (a tall box: widen)}\\
# (w,\; w / r) & \text{otherwise (a wide box: heighten)} \end{cases}$$
#
# (The official code divides the scale by 200, a unit left over from MPII's person scale; the
# course keeps pixels.)
#
# ### Exercise 1: box to centre and scale
#
# Write it for one box. Return two float arrays of shape `(2,)`.


# %%
def box_to_center_scale(box, aspect_ratio, padding):
    """The crop of a person box at the model's aspect ratio, with padding (SimpleBaseline's `_box2cs`).

        c = (x + w / 2, y + h / 2)
        if w < r h:  w = r h      (too tall: widen)
        else:        h = w / r    (too wide: heighten)
        s = padding * (w, h)

    Args:
        box: (4,) COCO box [x, y, w, h] in image pixels.
        aspect_ratio: r = W / H of the model input (0.75 for 256 x 192).
        padding: factor on both sides (1.25).

    Returns:
        (center, scale): two float arrays of shape (2,), image pixels.
    """
    ### BEGIN SOLUTION
    x, y, w, h = (float(value) for value in box)
    center = np.array([x + w / 2, y + h / 2])
    if w < h * aspect_ratio:
        w = h * aspect_ratio
    else:
        h = w / aspect_ratio
    return center, np.array([w, h]) * padding
    ### END SOLUTION


# %%
checks.check_box_to_center_scale(box_to_center_scale)

# %%
# points: 2
checks.check_box_to_center_scale(box_to_center_scale)
### BEGIN HIDDEN TESTS
checks.hidden_box_to_center_scale(box_to_center_scale)
### END HIDDEN TESTS

# %% [markdown]
# The course's implementation, `geometry.box_to_center_scale`, does the same for any number
# of boxes at once; the figure below uses it. A validation person much taller than wide: the
# tight box (thin), the box widened to $W / H = 64 / 96$ (dashed), and the padded crop (thick).
# On the right, the crop as the network sees it, $96 \times 64$ pixels; where the crop reaches
# past the image, the warp reads black.

# %%
boxes = np.array([val_people[i]["box"] for i in range(len(val_people))])  # (N, 4) x, y, w, h
visible = np.array([(val_people[i]["visibility"] == 2).sum() for i in range(len(val_people))])
tall_and_whole = (boxes[:, 3] > 1.8 * boxes[:, 2]) & (boxes[:, 1] > 4) & (boxes[:, 1] + boxes[:, 3] < 124)
index = int(np.flatnonzero(tall_and_whole & (visible >= 13))[0])
person = val_people[index]
center, scale = geometry.box_to_center_scale(person["box"], INPUT_SIZE[1] / INPUT_SIZE[0], padding=1.25)
_, widened = geometry.box_to_center_scale(person["box"], INPUT_SIZE[1] / INPUT_SIZE[0], padding=1.0)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
viz.show_image(person["image"], axes[0])
viz.draw_box(person["box"], axes[0], linewidth=1, label="box")
for size, style, width in ((widened, "--", 1.2), (scale, "-", 2.5)):
    axes[0].add_patch(plt.Rectangle(center - size / 2, *size, fill=False, linestyle=style, linewidth=width, color="w"))
crop = geometry.warp_image(person["image"], center, scale, 0.0, INPUT_SIZE)
viz.show_image(crop, axes[1])
viz.draw_pose(geometry.image_to_crop(person["keypoints"], center, scale, 0.0, INPUT_SIZE), person["visibility"],
              ax=axes[1], linewidth=1.2, markersize=10)
axes[0].set_title("box, widened to 64:96, padded x1.25", fontsize=9)
axes[1].set_title("the 96 x 64 crop", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ### 2.2 The affine warp
#
# The crop is cut out with one affine transform, which maps an image point $p$ to the crop as
#
# $$p_{\text{crop}} = A\,(p - c) + \Big(\frac{W}{2}, \frac{H}{2}\Big), \qquad
# A = \begin{pmatrix} W / s_w & 0 \\ 0 & H / s_h \end{pmatrix} R(-\theta),$$
#
# so the centre lands in the middle of the crop and the scale fills it. The same matrix,
# inverted, says for every crop pixel where to read the image (bilinear interpolation, black
# outside the image). At training time the crop is **augmented**, as the official code does
# it, with a scale factor $s_f$ and a rotation factor $r_f$:
#
# - the scale is multiplied by a number drawn from $\mathcal{N}(1, s_f^2)$ and clipped to
#   $[1 - s_f, 1 + s_f]$;
# - with probability 0.6 the crop is rotated by an angle drawn from $\mathcal{N}(0, r_f^2)$
#   and clipped to $\pm 2 r_f$ (otherwise it is not rotated);
# - with probability 0.5 it is mirrored left-right.
#
# So $r_f$ is a standard deviation, not a range. SimpleBaseline's configurations use
# $s_f = 0.30$ and $r_f = 40°$ (rotations up to $\pm 80°$); HRNet's use $s_f = 0.35$ and
# $r_f = 45°$ (up to $\pm 90°$). `top_down.TopDownDataset` draws them this way (HRNet's
# factors by default; `top_down.SIMPLEBASELINE_AUGMENTATION` holds SimpleBaseline's, which
# this chapter's experiments use). All three only change $c$, $s$, $\theta$, and the keypoints
# go through the same transform. The same person under three draws:

# %%
fig, axes = plt.subplots(1, 4, figsize=(7, 2.9))
for ax, (zoom, angle) in zip(axes, ((1.0, 0.0), (1.35, 0.0), (0.75, 0.0), (1.0, 35.0))):
    crop = geometry.warp_image(person["image"], center, scale * zoom, angle, INPUT_SIZE)
    points = geometry.image_to_crop(person["keypoints"], center, scale * zoom, angle, INPUT_SIZE)
    viz.show_image(crop, ax)
    viz.draw_pose(points, person["visibility"], ax=ax, linewidth=1.0, markersize=8)
    ax.set_title(f"scale x{zoom}, {angle:.0f} deg", fontsize=8)
fig.tight_layout()

# %% [markdown]
# ### 2.3 Back to the image
#
# The network answers in **heatmap pixels** of the crop. With the course's (and the official
# code's) convention, heatmap pixel $u$ sits over crop pixel $x = u \cdot \text{stride}$, so the
# heatmap is the same crop on a coarser grid: the same affine transform with the heatmap size
# $(H_h, W_h)$ in place of the input size. Without rotation (as at test time) its inverse is
#
# $$x = c_x + \Big(u - \frac{W_h}{2}\Big)\frac{s_w}{W_h}, \qquad
# y = c_y + \Big(v - \frac{H_h}{2}\Big)\frac{s_h}{H_h}.$$
#
# ### Exercise 2: heatmap coordinates to image coordinates
#
# Map the keypoints of $N$ people, each decoded from their own crop, back to the image.
# Keypoints are `(N, K, 2)`, centres and scales `(N, 2)` (one crop per person), and
# `heatmap_size` is $(H_h, W_h)$. Broadcasting does the work if you line up the axes:
# `center[:, None, :]` has shape `(N, 1, 2)`.


# %%
def heatmap_to_image(keypoints, center, scale, heatmap_size):
    """Heatmap pixels of each person's crop -> original image pixels (no rotation).

        x = c_x + (u - W_h / 2) * s_w / W_h
        y = c_y + (v - H_h / 2) * s_h / H_h

    Args:
        keypoints: (N, K, 2) x, y in heatmap pixels.
        center: (N, 2) crop centres, image pixels.
        scale: (N, 2) crop sizes (s_w, s_h), image pixels.
        heatmap_size: (H_h, W_h).

    Returns:
        (N, K, 2) float array, image pixels.
    """
    ### BEGIN SOLUTION
    height, width = heatmap_size
    size = np.array([width, height], dtype=float)  # x goes with the width, y with the height
    keypoints = np.asarray(keypoints, dtype=float)
    center = np.asarray(center, dtype=float)[:, None, :]  # (N, 1, 2)
    scale = np.asarray(scale, dtype=float)[:, None, :]  # (N, 1, 2)
    return center + (keypoints - size / 2) * scale / size
    ### END SOLUTION


# %%
checks.check_heatmap_to_image(heatmap_to_image)

# %%
# points: 3
checks.check_heatmap_to_image(heatmap_to_image)
### BEGIN HIDDEN TESTS
checks.hidden_heatmap_to_image(heatmap_to_image)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.4 The whole pipeline with a trained network
#
# Now with a real network: the course's tiny SimpleBaseline (a quarter-width ResNet-18 and
# three 64-channel deconvolutions at $96 \times 64$), trained on the synthetic people by
# `zoo.pretrained` (once, then cached). One validation person goes through every step: box
# to crop, network, heatmaps, decoding (DARK, chapter 02), and back to the image with
# `geometry.crop_to_image`, the course's implementation of what you just wrote.

# %%
model = zoo.pretrained("simplebaseline_tiny")
val_crops = training.top_down_data(data.default_split_dir("single/val"), INPUT_SIZE, HEATMAP_SIZE,
                                   limit=training.budget(500, 64))
item = val_crops[index]  # the same person as in section 2.1
with torch.no_grad():
    predicted = model(item["image"][None])  # (1, 17, 24, 16)
found, scores = heatmaps.decode_dark(predicted, sigma=2.0)  # heatmap pixels
in_image = geometry.crop_to_image(found.numpy(), item["center"].numpy()[None], item["scale"].numpy()[None],
                                  np.zeros(1), HEATMAP_SIZE)[0]
fig, axes = plt.subplots(1, 3, figsize=(8.5, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.6]})
viz.show_image(item["image"], axes[0])
axes[0].set_title("1. the crop (input)", fontsize=9)
viz.overlay_heatmap(data.tensor_to_image(item["image"]), predicted[0].numpy(), ax=axes[1], alpha=0.6)
axes[1].set_title("2. its 17 heatmaps (max)", fontsize=9)
viz.show_image(person["image"], axes[2])
viz.draw_pose(in_image, person["visibility"], ax=axes[2], linewidth=1.5, markersize=14)
axes[2].set_title("3. decoded, back in the image", fontsize=9)
fig.tight_layout()

# %% [markdown]
# Browse the predictions on the validation people: pick a person and a joint to see its
# heatmap and the error; order by "worst" to see where the model fails (hidden joints,
# unusual poses, people near the image border).

# %%
widgets.prediction_browser(model, val_crops, joint="left_wrist")

# %% [markdown]
# ## 3. The flip test
#
# A cheap way to make predictions steadier: run the network on the crop **and on its
# mirror image**, bring the second set of heatmaps back to the original's frame, and average
# the two before decoding. Every number of the SimpleBaseline and HRNet papers is measured
# this way. Bringing the mirrored heatmaps back takes three steps:
#
# 1. **mirror** each map left-right, $H'(u, v) = H(W_h - 1 - u, v)$;
# 2. **swap the channels** of each left/right pair: in a mirror image a left wrist looks like a
#    right wrist, so the network's "left wrist" map on the mirrored crop is the original's
#    right wrist;
# 3. **shift** the maps one heatmap pixel to the right (`SHIFT_HEATMAP` in the official code).
#
# ### Why the shift?
#
# The mirror of the *input* maps pixel $x$ to $x' = w - 1 - x$ (pixel centres at integers,
# $w$ the crop width). A joint at $x$ sits in the heatmap at $u = x / s$ (stride $s$, $w = s
# W_h$). In the mirrored crop it sits at $x'$, so in that crop's heatmap at
# $u_f = (w - 1 - x) / s = W_h - u - 1/s$. Mirroring that heatmap (step 1) puts it at
#
# $$W_h - 1 - u_f = u - \Big(1 - \frac{1}{s}\Big),$$
#
# that is $0.75$ heatmap pixels **left** of where it should be at stride 4. The mirror of the
# input and the mirror of the heatmap do not agree, because a heatmap pixel covers $s$ input
# pixels and the two grids' centres are offset. Shifting one pixel right leaves an error of
# $+1/s = 0.25$ the other way: not exact, but three times smaller. (UDP, by Huang et al.,
# removes the offset altogether by measuring sizes in pixel intervals; see the docstring of
# `heatmaps.flip_heatmaps`.) Averaging the unshifted map with the original moves the peak by
# about half the error, $0.375$ heatmap pixels, $1.5$ input pixels: a real loss at the strict
# end of the COCO metric.
#
# The figure checks the algebra with the course's functions: the exact target of a joint at
# input $x = 30.4$ in a 64-pixel-wide crop, the target of its mirror image flipped back
# without and with the shift, and their averages with the original, each decoded with DARK
# (exact on these Gaussian maps).

# %%
stride, crop_width, x = 4, 64, 30.4
map_width = crop_width // stride


def profile(x_input):
    """The exact (unbiased) 1-D target of a joint at input x, on the 16-pixel heatmap row."""
    maps, _ = heatmaps.gaussian_heatmaps(np.array([[x_input / stride, 2.0]]), np.array([2]), (5, map_width),
                                         sigma=1.5, unbiased=True)
    return maps[None]  # (1, 1, 5, W_h)


original = profile(x)
mirrored = profile(crop_width - 1 - x)
fig, ax = plt.subplots(figsize=(7.5, 3))
u = np.arange(map_width)
ax.plot(u, original[0, 0, 2], "k-", linewidth=2, label=f"original: peak at u = {x / stride:.2f}")
for shift, style in ((False, "--"), (True, ":")):
    back = heatmaps.flip_heatmaps(mirrored, flip_pairs=(), shift=shift)
    peak = heatmaps.decode_dark(back, sigma=1.5)[0][0, 0, 0]
    average = heatmaps.decode_dark((original + back) / 2, sigma=1.5)[0][0, 0, 0]
    ax.plot(u, back[0, 0, 2], style, linewidth=2,
            label=f"flipped back, shift={shift}: peak {peak:.2f} (average {average:.2f})")
ax.set_xlabel("heatmap column u")
ax.set_ylim(0, 1.45)
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()

# %% [markdown]
# ### Exercise 3: flip the heatmaps back
#
# Write the three steps for a batch of heatmaps `(N, K, H, W)` (NumPy). `flip_pairs` lists the
# `(left, right)` channel pairs, e.g. `COCO_FLIP_PAIRS`; channels in no pair (the nose) stay.
# The shift: column $u \ge 1$ takes the value of column $u - 1$; column 0 keeps its own value
# (as in the official code). Do not change the input array in place.


# %%
def flip_back(heatmaps, flip_pairs, shift):
    """Heatmaps predicted on a mirrored crop -> the original crop's frame (the flip test).

        1. mirror:  H'[..., u] = H[..., W - 1 - u]
        2. swap the channels of every (left, right) pair
        3. if shift: H''[..., u] = H'[..., u - 1] for u >= 1, H''[..., 0] = H'[..., 0]

    Args:
        heatmaps: (N, K, H, W) NumPy array, predicted on the mirrored crops.
        flip_pairs: sequence of (left, right) channel indices.
        shift: apply the one-pixel shift of step 3.

    Returns:
        (N, K, H, W) NumPy array.
    """
    ### BEGIN SOLUTION
    order = list(range(heatmaps.shape[1]))
    for left, right in flip_pairs:
        order[left], order[right] = right, left
    flipped = heatmaps[:, order, :, ::-1].copy()  # channels swapped, columns mirrored
    if shift:
        flipped[..., 1:] = flipped[..., :-1].copy()
    return flipped
    ### END SOLUTION


# %%
checks.check_flip_back(flip_back)

# %%
# points: 3
checks.check_flip_back(flip_back)
### BEGIN HIDDEN TESTS
checks.hidden_flip_back(flip_back)
### END HIDDEN TESTS

# %% [markdown]
# ### When the flip test hurts
#
# The flip test assumes the network would find the mirrored person's joints as well as the
# original's, with left and right swapped. That holds for real people, whose left and right
# sides look alike. It does **not** hold for the course's synthetic people: their left limbs
# are tinted orange and their right limbs blue, so that a network can tell left from right
# from the pixels. In a mirror image the orange limbs are on the person's *right*. A network
# trained without flips has learned "orange = left", so on the mirrored crop it calls the
# orange arm the left wrist; after flipping back (step 2), that prediction becomes the right
# wrist, at the position of the original's **left** wrist. The averaged map then has two
# bumps. This is also why the course trains without flip augmentation by default
# (`training.top_down_data(..., flip_prob=0.0)`): a flipped training image would carry labels
# that contradict its tints.
#
# Below, the trained tiny model on one validation person: the left wrist's heatmap from the
# crop, from its mirror image flipped back (with the shift), and their average.

# %%
wrist = COCO_KEYPOINTS.index("left_wrist")
item = val_crops[12]
with torch.no_grad():
    plain = model(item["image"][None]).numpy()
    from_mirror = heatmaps.flip_heatmaps(model(item["image"][None].flip(-1)).numpy(), COCO_FLIP_PAIRS, shift=True)
crop = data.tensor_to_image(item["image"])
fig, axes = plt.subplots(1, 4, figsize=(8, 3.2))
viz.show_image(crop, axes[0])
viz.draw_pose(item["keypoints"].numpy(), item["visibility"].numpy(), ax=axes[0], linewidth=1, markersize=8)
axes[0].set_title("crop and truth", fontsize=8)
for ax, (title, maps) in zip(axes[1:], (("left wrist: crop", plain), ("left wrist: mirror, flipped back", from_mirror),
                                        ("left wrist: average", (plain + from_mirror) / 2))):
    viz.overlay_heatmap(crop, maps[0, wrist], ax=ax, alpha=0.6)
    ax.plot(*item["keypoints"][wrist].numpy(), "w+", markersize=12, markeredgewidth=2)
    ax.set_title(title, fontsize=8)
fig.tight_layout()

# %% [markdown]
# The "+" marks the true left wrist. The map from the mirror fires on the other wrist (or on
# both): the tints told the network the wrong side. The experiment in section 5 measures what
# this does to the accuracy, and compares a network trained on **untinted** people with flip
# augmentation, where the flip test should help, and where the shift should matter.
#
# ## 4. Online hard keypoint mining
#
# Some joints are much harder than others: a wrist moves more, is smaller and more often
# hidden than a shoulder. With the plain loss, the easy joints (already well predicted)
# still take their share of every gradient step. **OHKM** (Chen et al. 2018, the Cascaded
# Pyramid Network) computes the loss of each joint of each person,
#
# $$\ell_{nk} = \frac{1}{HW}\sum_{u,v} \tfrac12 \big(w_{nk}\,(P_{nk}(u,v) - G_{nk}(u,v))\big)^2,$$
#
# keeps only the $M$ largest per person ($M = 8$ of 17 in the paper and in the official code),
# and averages those:
#
# $$L_{\text{OHKM}} = \frac{1}{N}\sum_n \frac{1}{M}\sum_{k \in \text{top-}M(\ell_{n\cdot})} \ell_{nk}.$$
#
# The rest of the joints get no gradient in that step. SimpleBaseline did not need it; HRNet's
# official code has it as an option (`LOSS.USE_OHKM`), off in the published configurations.
#
# ### Exercise 4: the OHKM loss
#
# Write it in PyTorch (the result must stay differentiable). `torch.topk(values, k, dim=1)`
# returns the `k` largest values along `dim` and their indices.


# %%
def ohkm_loss(pred, target, weight, topk):
    """Online hard keypoint mining: the mean of each person's topk largest per-joint losses.

        l_nk = 1/(H W) sum_{u,v} 1/2 (w_nk (P_nk(u, v) - G_nk(u, v)))^2
        L    = 1/N sum_n 1/topk sum_{k in the topk largest l_n.} l_nk

    Args:
        pred, target: (N, K, H, W) tensors.
        weight: (N, K) tensor, 0 for joints without a label.
        topk: M, the number of joints kept per person.

    Returns:
        a scalar (0-dimensional) tensor.
    """
    ### BEGIN SOLUTION
    weighted = (pred - target) * weight[:, :, None, None]  # (N, K, H, W)
    per_joint = 0.5 * weighted.pow(2).mean(dim=(2, 3))  # (N, K)
    hardest = torch.topk(per_joint, topk, dim=1).values  # (N, topk)
    return hardest.mean()
    ### END SOLUTION


# %%
checks.check_ohkm_loss(ohkm_loss)

# %%
# points: 2
checks.check_ohkm_loss(ohkm_loss)
### BEGIN HIDDEN TESTS
checks.hidden_ohkm_loss(ohkm_loss)
### END HIDDEN TESTS

# %% [markdown]
# In training, `losses.HeatmapLoss(ohkm=True, topk=8)` uses the course's `losses.ohkm_mse`.
# Which joints does it keep? The trained tiny model's per-joint losses on the validation crops,
# and how often each joint is among the 8 hardest of its person:

# %%
batch = torch.utils.data.default_collate([val_crops[i] for i in range(len(val_crops))])
with torch.no_grad():
    per_joint = 0.5 * ((model(batch["image"]) - batch["heatmaps"]) * batch["target_weight"][:, :, None, None]
                       ).pow(2).mean(dim=(2, 3))  # (N, K)
kept = torch.zeros_like(per_joint).scatter_(1, per_joint.topk(8, dim=1).indices, 1.0)  # 1 where mined
fig, ax = plt.subplots(figsize=(8, 2.8))
sides = viz.keypoint_sides(COCO_KEYPOINTS, len(COCO_KEYPOINTS))
ax.bar(range(17), kept.mean(0).numpy(), color=[viz.SIDE_COLOURS[side] for side in sides])
ax.set_xticks(range(17), COCO_KEYPOINTS, rotation=60, ha="right", fontsize=8)
ax.set_ylabel("share of people where\nit is among the 8 hardest", fontsize=8)
fig.tight_layout()

# %% [markdown]
# The extremities (wrists, ankles, elbows, knees) dominate; the head keypoints, which sit close
# together on a well-lit, well-sized head, rarely make it. OHKM spends the gradient there.
#
# ## 5. Experiments
#
# ### 5a. How many deconvolution layers?
#
# The paper's ablation: with ResNet-50 at $256 \times 192$, two deconvolution layers (heatmaps
# at stride 8, $32 \times 24$) give 67.9 AP against 70.4 for three (stride 4). We train the
# tiny SimpleBaseline with 1, 2 and 3 layers, all else equal: same steps, batch, learning
# rate, seed, augmentation (scale and rotation, no flips), targets with $\sigma = 2$ heatmap
# pixels (as the official code, whatever the stride), DARK decoding. On our $96 \times 64$
# crops the heatmaps are $6 \times 4$, $12 \times 8$ and $24 \times 16$. A fourth run adds OHKM to
# the three-layer model.

# %% tags=["experiment"]
steps = training.budget(full=400, fast=8)
fit_options = dict(batch_size=32, lr=2e-3, seed=0, eval_every=training.budget(steps // 5, steps),
                   eval_items=training.budget(256, 32))
# The people (images decoded once, kept in memory) are shared by every run; each run crops them at its heatmap size.
train_people = training.top_down_data(data.default_split_dir("single/train"), INPUT_SIZE,
                                      limit=training.budget(None, 256)).samples
val_people_crops = training.top_down_data(data.default_split_dir("single/val"), INPUT_SIZE,
                                          limit=training.budget(None, 64)).samples
augmentation = dict(augment=True, flip_prob=0.0, **top_down.SIMPLEBASELINE_AUGMENTATION)  # sf 0.30, rf 40 deg
variants = {
    "1 deconv": (dict(num_deconv_layers=1), losses.HeatmapLoss()),
    "2 deconv": (dict(num_deconv_layers=2), losses.HeatmapLoss()),
    "3 deconv": (dict(num_deconv_layers=3), losses.HeatmapLoss()),
    "3 deconv + OHKM": (dict(num_deconv_layers=3), losses.HeatmapLoss(ohkm=True, topk=8)),
}
deconv_runs = {}
for name, (options, loss) in variants.items():
    net = models.build("simplebaseline_tiny", seed=0, **options)  # the same initial weights for a rerun
    input_size, heatmap_size = training.model_sizes(net)
    train_set = top_down.TopDownDataset(train_people, input_size, heatmap_size, **augmentation)
    val_set = top_down.TopDownDataset(val_people_crops, input_size, heatmap_size)
    print(f"{name}: heatmaps {heatmap_size[0]}x{heatmap_size[1]}")
    history = training.fit(net, train_set, val_set, loss, steps, **fit_options)
    deconv_runs[name] = dict(model=net, history=history, heatmap_size=heatmap_size,
                             scores=training.evaluate(net, val_set, coco_ap=False).metrics)

# %% tags=["experiment"]
deconv_rows = [
    {"decoder": name, "heatmap": f"{run['heatmap_size'][0]}x{run['heatmap_size'][1]}",
     "parameters": models.count_parameters(run["model"]), "PCK@0.2": run["scores"]["pck@0.2"],
     "PCK@0.1": run["scores"]["pck@0.1"], "PCK@0.05": run["scores"]["pck@0.05"],
     "mean error (px)": run["scores"]["mean_error"], "train images/s": run["history"].images_per_second}
    for name, run in deconv_runs.items()
]
strict = [deconv_runs[name]["scores"]["pck@0.1"] for name in ("1 deconv", "2 deconv", "3 deconv")]
ohkm_gain = deconv_runs["3 deconv + OHKM"]["scores"]["pck@0.1"] - deconv_runs["3 deconv"]["scores"]["pck@0.1"]
step_cost = deconv_runs["1 deconv"]["history"].images_per_second / deconv_runs["3 deconv"]["history"].images_per_second
deconv_note = (
    ("As in the paper, accuracy rises with the heatmap's resolution (PCK@0.1 "
     + " < ".join(f"{v:.2f}" for v in strict) + ")" if strict[0] < strict[1] < strict[2] else
     "Unlike the paper's clear 3 > 2 ablation, PCK@0.1 here is " + ", ".join(f"{v:.2f}" for v in strict)
     + " for 1, 2, 3 layers")
    + f"; a training step with three layers took {step_cost:.1f} times as long as with one"
    + f"; OHKM changes PCK@0.1 by {ohkm_gain:+.2f} at this budget"
    + (" (fast profile: a handful of steps, the numbers are noise)." if training.fast_profile() else ".")
)
deconv_table = report.experiment_table(
    deconv_rows, chapter="06", title="Number of deconvolution layers (tiny SimpleBaseline, equal steps, validation)",
    note=deconv_note)
deconv_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for name, run in deconv_runs.items():
    axes[0].plot(run["history"].val_steps, [v["pck@0.1"] for v in run["history"].val], marker="o", label=name)
axes[0].set_xlabel("training step")
axes[0].set_ylabel("validation PCK@0.1")
axes[0].legend(fontsize=8)
thresholds = ("pck@0.2", "pck@0.1", "pck@0.05")
for offset, (name, run) in zip((-0.3, -0.1, 0.1, 0.3), deconv_runs.items()):
    axes[1].bar(np.arange(3) + offset, [run["scores"][t] for t in thresholds], width=0.2, label=name)
axes[1].set_xticks(range(3), ["PCK@0.2", "PCK@0.1", "PCK@0.05"])
axes[1].set_ylabel("final validation score")
fig.tight_layout()

# %% [markdown]
# Read the table with the stride in mind. At stride 16 a heatmap pixel covers $16 \times 16$
# input pixels, a good part of an arm of our tiny people: the decoder can only be as precise
# as DARK's sub-pixel step manages on a map of $6 \times 4$ pixels, and the Gaussian target of
# $\sigma = 2$ heatmap pixels is as wide as the person. The loose PCK@0.2 forgives a lot of
# this; the strict PCK@0.1 and PCK@0.05 do not, which is where the third layer pays. The
# layers are not free: they work on ever larger maps, so a training step with three of them
# takes longer than with one (the note gives the ratio from the "train images/s" column,
# noisy on a shared machine). OHKM, at this budget and on these people, changes little (the
# note gives its effect on PCK@0.1); the paper did not need it either.
#
# ### 5b. The flip test: with tints, without tints, with and without the shift
#
# Two networks, same architecture (three layers) and budget:
#
# - **(i) tinted people, trained without flips**: the three-layer network of 5a;
# - **(ii) untinted people, trained with flip augmentation** (`flip_prob=0.5`): a new data set
#   drawn with `make_synthetic(..., side_tints=False)` under `data.DATA_ROOT` (made once,
#   then reused), where left and right can only be told from the face's direction and the
#   body's geometry, and where a mirrored training image is a valid example.
#
# Each is evaluated on its own kind of validation people in three ways: no flip test, the flip
# test without the shift, and with it. Besides PCK we count **left/right swaps**: for each
# labelled pair of shoulders, elbows, wrists, hips, knees and ankles, whether the two
# predictions are closer to the swapped truth than to the truth.

# %% tags=["experiment"]
untinted_root = data.DATA_ROOT / "synthetic" / ("untinted-fast" if training.fast_profile() else "untinted")
untinted_splits = {
    "train": {"images": training.budget(4000, 256), "size": (128, 128), "persons": (1, 1), "seed": 61,
              "side_tints": False},
    "val": {"images": training.budget(500, 64), "size": (128, 128), "persons": (1, 1), "seed": 62,
            "side_tints": False},
}
data.ensure_default_data(untinted_root, untinted_splits)
untinted_train = training.top_down_data(untinted_root / "train", INPUT_SIZE, HEATMAP_SIZE,
                                        **dict(augmentation, flip_prob=0.5))
untinted_val = training.top_down_data(untinted_root / "val", INPUT_SIZE, HEATMAP_SIZE)
flip_model = models.build("simplebaseline_tiny", seed=0)
flip_history = training.fit(flip_model, untinted_train, untinted_val, losses.HeatmapLoss(), steps, **fit_options)

# %% tags=["experiment"]
LIMB_PAIRS = [pair for pair in COCO_FLIP_PAIRS if COCO_KEYPOINTS[pair[0]].split("_")[1] in
              ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]


def left_right_swaps(predictions):
    """Share of labelled left/right limb pairs whose predictions are closer to the swapped truth."""
    p, g, v = predictions.keypoints, predictions.gt_keypoints, predictions.gt_visibility
    swapped, counted = 0, 0
    for left, right in LIMB_PAIRS:
        both = (v[:, left] > 0) & (v[:, right] > 0)
        straight = np.linalg.norm(p[:, left] - g[:, left], axis=1) + np.linalg.norm(p[:, right] - g[:, right], axis=1)
        crossed = np.linalg.norm(p[:, left] - g[:, right], axis=1) + np.linalg.norm(p[:, right] - g[:, left], axis=1)
        swapped += int((both & (crossed < straight)).sum())
        counted += int(both.sum())
    return swapped / max(counted, 1)


tinted_val = top_down.TopDownDataset(val_people_crops, INPUT_SIZE, HEATMAP_SIZE)
contenders = {"(i) tinted, no flip training": (deconv_runs["3 deconv"]["model"], tinted_val),
              "(ii) untinted, flip training": (flip_model, untinted_val)}
settings = {"no flip test": dict(flip_test=False), "flip test, no shift": dict(flip_test=True, shift_heatmaps=False),
            "flip test + shift": dict(flip_test=True, shift_heatmaps=True)}
flip_rows, error, swaps = [], {}, {}
for model_name, (net, val_set) in contenders.items():
    for setting, options in settings.items():
        result = training.evaluate(net, val_set, coco_ap=False, **options)
        error[model_name[:4].strip(), setting] = result.metrics["mean_error"]  # ("(i)" or "(ii)", setting)
        swaps[model_name[:4].strip(), setting] = left_right_swaps(result.predictions)
        flip_rows.append({"model": model_name, "test": setting, "PCK@0.2": result.metrics["pck@0.2"],
                          "PCK@0.1": result.metrics["pck@0.1"], "mean error (px)": result.metrics["mean_error"],
                          "left/right swaps": swaps[model_name[:4].strip(), setting]})

# %% tags=["experiment"]
tinted_hurt = error["(i)", "flip test + shift"] > error["(i)", "no flip test"]
untinted_gain = error["(ii)", "no flip test"] - error["(ii)", "flip test + shift"]
shift_gain = error["(ii)", "flip test, no shift"] - error["(ii)", "flip test + shift"]
flip_note = (
    f"With tints the flip test {'hurts' if tinted_hurt else 'does not hurt'} (mean error "
    f"{error['(i)', 'no flip test']:.2f} -> {error['(i)', 'flip test + shift']:.2f} px, left/right swaps "
    f"{swaps['(i)', 'no flip test']:.0%} -> {swaps['(i)', 'flip test + shift']:.0%}); without tints and with "
    f"flip training it changes the error by {-untinted_gain:+.2f} px "
    f"({error['(ii)', 'no flip test']:.2f} -> {error['(ii)', 'flip test, no shift']:.2f} px without the shift, "
    f"{error['(ii)', 'flip test + shift']:.2f} px with it), the shift by {-shift_gain:+.2f} px, and "
    f"{swaps['(ii)', 'no flip test']:.0%} of its limb pairs stay swapped without the flip test "
    + ("(the papers' setting: the flip test helps and the shift helps)."
       if untinted_gain > 0 and shift_gain > 0 else
       "(not the clean gain of the papers' setting: see the discussion).")
    + (" Fast profile: a handful of steps, the numbers are noise." if training.fast_profile() else "")
)
flip_table = report.experiment_table(flip_rows, chapter="06",
                                     title="The flip test with and without tints and shift (validation)",
                                     note=flip_note)
flip_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, metric in zip(axes, ("mean error (px)", "left/right swaps")):
    for offset, model_name in zip((-0.2, 0.2), contenders):
        values = [row[metric] for row in flip_rows if row["model"] == model_name]
        ax.bar(np.arange(3) + offset, values, width=0.4, label=model_name if ax is axes[0] else None)
    ax.set_xticks(range(3), list(settings), fontsize=8)
    ax.set_ylabel(metric)
fig.legend(fontsize=8, loc="upper center", ncol=2)
fig.tight_layout(rect=(0, 0, 1, 0.9))

# %% [markdown]
# What to take from it (read your own table and its note: a short run on a CPU is noisy).
# With the tinted people, expect the flip test to make things **worse**, the mean error and
# the left/right swaps both rising. The swaps show why: averaging in a prediction whose sides
# are reversed pulls the limbs towards the wrong side. On untinted people, trained with flips,
# the two predictions agree on the sides, and the flip test can only help by averaging two
# views; the shift then removes most of their misalignment. Any gain is small here when this
# network's main error is elsewhere: without tints it must infer the side from the face's
# direction and the body's geometry, and after a short training it still swaps a share of
# the limb pairs (the note gives it), in the original and in the mirror alike, which no
# averaging can fix. Real people are like the untinted ones,
# which is why the flip test, flip augmentation and the shift are standard on COCO, where
# networks have learned the sides well and the flip test is a small but dependable
# improvement.
#
# The worst predictions of the network trained on untinted people with flips (flip test with
# the shift), where left/right swaps are the failure to look for.
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
found = training.evaluate(flip_model, untinted_val, coco_ap=False, flip_test=True, shift_heatmaps=True).predictions
viz.failure_gallery(found, lambda i: untinted_val.samples[i]["image"], count=6);
kinds = failures.joint_kinds(found.keypoints, found.gt_keypoints, found.gt_visibility, found.boxes,
                             image_ids=found.image_ids)
labelled = found.gt_visibility > 0
for kind in failures.FAILURE_KINDS:
    print(f"{kind:16s} {np.mean(kinds[labelled] == kind):6.1%} of the labelled joints")

# %% [markdown]
# The network trained on untinted people with flips, in the prediction browser (try
# "worst" first, and the wrists):

# %% tags=["experiment"]
widgets.prediction_browser(flip_model, untinted_val, joint="left_wrist")

# %% [markdown]
# ## Stretch exercise: UDP, a flip test without the shift
#
# The one-pixel shift only patches a misalignment: with the MSRA convention heatmap pixel $u$
# sits over crop pixel $x = u\,w/W$, and mirroring the crop ($x \to w - 1 - x$) and mirroring
# the heatmap ($u \to W - 1 - u$) disagree by $s - 1$ crop pixels at stride $s$. UDP
# ([Huang et al. 2020](https://arxiv.org/abs/1911.07524)) measures image sizes in pixel
# *intervals* instead: the first and last pixel centres of the two grids coincide,
#
# $$x = u\,\frac{w - 1}{W - 1}, \qquad y = v\,\frac{h - 1}{H - 1},$$
#
# and the two mirrors agree exactly. Write this mapping; the cell after it measures the
# mirror disagreement of both conventions. (Worth bonus points: it goes beyond the chapter's
# core.)


# %%
def udp_heatmap_to_crop(points, input_size, heatmap_size):
    """Heatmap pixels (u, v) to crop pixels (x, y) with UDP's unbiased convention.

        x = u (w - 1) / (W - 1),   y = v (h - 1) / (H - 1)

    Args:
        points: (..., 2) NumPy array of heatmap pixels (u, v).
        input_size: (h, w) of the crop; heatmap_size: (H, W) of the heatmap.

    Returns:
        (..., 2) NumPy array of crop pixels (x, y).
    """
    ### BEGIN SOLUTION
    (h, w), (hh, ww) = input_size, heatmap_size
    return np.asarray(points, dtype=float) * np.array([(w - 1) / (ww - 1), (h - 1) / (hh - 1)])
    ### END SOLUTION


# %%
checks.check_udp_heatmap_to_crop(udp_heatmap_to_crop)

# %%
# bonus: 2
checks.check_udp_heatmap_to_crop(udp_heatmap_to_crop)
### BEGIN HIDDEN TESTS
checks.hidden_udp_heatmap_to_crop(udp_heatmap_to_crop)
### END HIDDEN TESTS

# %%
u = np.array([[3.0, 5.0], [10.0, 20.0]])  # heatmap pixels of two keypoints, 24 x 16 maps of 96 x 64 crops
mirror_u = np.stack([HEATMAP_SIZE[1] - 1 - u[:, 0], u[:, 1]], axis=1)  # the mirrored heatmap's pixels
for name, to_crop in (("MSRA", lambda p: p * np.array([INPUT_SIZE[1] / HEATMAP_SIZE[1], INPUT_SIZE[0] / HEATMAP_SIZE[0]])),
                      ("UDP", lambda p: udp_heatmap_to_crop(p, INPUT_SIZE, HEATMAP_SIZE))):
    gap = (INPUT_SIZE[1] - 1 - to_crop(u)[:, 0]) - to_crop(mirror_u)[:, 0]  # mirror in the crop vs in the heatmap
    print(f"{name}: the two mirrors disagree by {np.abs(gap).max():.2f} crop pixels")

# %% [markdown]
# ## What the paper reported
#
# Xiao et al. 2018, **COCO val2017**, keypoint **AP** (OKS), people from a Faster R-CNN
# detector with 56.4 person AP, flip test on for every number:
#
# | ablation (Table 1): ResNet-50, 256 x 192 unless said | AP |
# |---|---|
# | 3 deconvolution layers, kernel 4 (the baseline) | **70.4** |
# | 2 deconvolution layers (heatmaps 32 x 24) | 67.9 |
# | kernel 2 / kernel 3 | 70.1 / 70.3 |
# | ResNet-101 / ResNet-152 | 71.4 / 72.0 |
# | input 128 x 96 / 384 x 288 | 60.6 / 72.2 |
#
# | comparison (Table 2), 256 x 192 | AP |
# |---|---|
# | 8-stage Hourglass | 66.9 |
# | CPN (ResNet-50) | 68.6 |
# | CPN + OHKM | 69.4 |
# | SimpleBaseline (ResNet-50), no OHKM | **70.4** |
#
# At $384 \times 288$: CPN 70.6, CPN + OHKM 71.6, SimpleBaseline 72.2. On COCO test-dev,
# ResNet-152 at $384 \times 288$ reached 73.7 AP.
#
# - **OHKM**: the paper does not use it; its numbers with OHKM are CPN's (+0.8 AP at
#   $256 \times 192$, +1.0 at $384 \times 288$).
# - **Flip test and shift**: the paper uses the flip test for all results and reports no
#   ablation of it; the one-pixel shift appears only in the official code
#   (`TEST.SHIFT_HEATMAP: true`). Its size on COCO: a user of the official HRNet code reported
#   (issue 22 of `leoxiaobin/deep-high-resolution-net.pytorch`, HRNet-W32 256 x 192, ground-truth
#   boxes) 72.0 AP with the flip test but no shift, 74.0 with the one-pixel shift, 67.4 with a
#   two-pixel shift: one user's measurement, not a paper's. UDP (Huang et al. 2020) traced the
#   misalignment to measuring image sizes in pixels rather than pixel intervals; fixing it (with
#   their unbiased encoding) raised SimpleBaseline-R50 at $256 \times 192$ from 70.2 to 71.7 AP
#   on COCO test-dev.
#
# ## Check your understanding
#
# 1. A person box is $[40, 10, 60, 60]$ and the model input is $256 \times 192$. What are the
#    crop's centre and scale (padding 1.25)? How much of the crop's width is context?
#
# <details><summary>Answer</summary>
#
# Centre $(70, 40)$. The box is wider than $0.75$ (ratio 1), so the height grows to
# $60 / 0.75 = 80$; with padding, the scale is $(75, 100)$. The person's 60 pixels fill
# $60 / 75 = 80\%$ of the crop's width; 20% is context.
# </details>
#
# 2. Why is the shift one pixel to the right, and why does it not make the flip test exact?
#
# <details><summary>Answer</summary>
#
# Mirroring the input maps $x \to w - 1 - x$ but mirroring the heatmap maps $u \to W_h - 1 - u$,
# and at stride $s$ these disagree by $1 - 1/s$ heatmap pixels (to the left, for the flipped-back
# map). Shifting by a whole pixel overshoots by $1/s$: the error changes from $-0.75$ to $+0.25$
# at stride 4. Only a sub-pixel shift of $1 - 1/s$, or UDP's convention where both mirrors
# agree, is exact.
# </details>
#
# 3. A network trained on real people (no tints) with flip augmentation gets a 2% better
#    PCK with the flip test. Would you expect the same gain on the course's tinted people with
#    the tiny model trained without flips? Why?
#
# <details><summary>Answer</summary>
#
# No: that network has learned that orange limbs are left ones. On a mirrored crop it labels
# the orange (now right-hand) limbs as left, so the flipped-back maps put each joint on the
# wrong side, and averaging drags the predictions towards the other limb. Experiment 5b puts
# this to the test: its note says whether the error and the left/right swaps rose in your run.
# </details>
#
# 4. With OHKM and $M = 8$, how many of a person's 17 joints get a gradient in a step? What
#    happens to a joint with $w_{nk} = 0$?
#
# <details><summary>Answer</summary>
#
# Eight: the eight with the largest loss. A joint with weight 0 has loss 0, so it is picked
# only if fewer than eight joints have a positive loss, and even then it contributes zero (no
# gradient).
# </details>
#
# 5. SimpleBaseline's first transposed convolution has more weights than the whole tiny model
#    of this chapter. Why does the paper still call the decoder light?
#
# <details><summary>Answer</summary>
#
# Light in structure and in work: three upsampling steps with no skip connections, no
# intermediate supervision and no second network; in multiply-adds the decoder is about a
# quarter of the network (1.4 of 5.4 G at $256 \times 192$), the rest is the ResNet encoder.
# </details>

# %% [markdown]
# ## Summary
#
# - **SimpleBaseline** is a ResNet followed by three $4 \times 4$, stride-2 transposed
#   convolutions and a $1 \times 1$ convolution: heatmaps at stride 4, no skip connections,
#   70.4 AP on COCO val2017 with ResNet-50 at $256 \times 192$.
# - The **top-down pipeline**: widen the box to the model's aspect ratio, pad it by 1.25, warp
#   it with one affine transform; the inverse transform brings heatmap pixels back to the image.
# - **Augmentation** as the official codes draw it: scale $\times$ clip$(\mathcal{N}(1, s_f^2),
#   1 \pm s_f)$; with probability 0.6 a rotation clip$(\mathcal{N}(0, r_f^2), \pm 2 r_f)$;
#   SimpleBaseline uses $s_f = 0.30$, $r_f = 40°$, HRNet $0.35$ and $45°$.
# - The **flip test** mirrors the crop, swaps the left and right channels and shifts the
#   flipped-back heatmaps by one pixel, which undoes most of a $1 - 1/s$ misalignment (UDP
#   removes it exactly).
# - The flip test **hurts** when left and right can be told apart by a cue that a mirror
#   contradicts, such as the course's tints.
# - **OHKM** keeps the loss of the $M$ hardest joints of each person; SimpleBaseline reaches its
#   numbers without it.
# - Fewer deconvolution layers mean coarser heatmaps and lower accuracy at strict thresholds
#   (the paper: 67.9 AP with two layers against 70.4 with three).
