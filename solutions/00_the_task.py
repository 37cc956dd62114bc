# %% [markdown]
# # Chapter 00: Keypoints, the COCO format and the data of this course
#
# Human pose estimation finds the **keypoints** of people in an image: the joints (shoulders,
# elbows, wrists, hips, knees, ankles) and a few points of the face. For one person the answer
# is a short list of $K$ points $(x_k, y_k)$; for an image with $N$ people it is an array of
# shape $N \times K \times 2$. Every later chapter of this course is a different way of
# computing that array, and this chapter is about the array itself: which keypoints, how they
# are stored, how they move when the image is mirrored, and the data we will train on.
#
# ## Learning goals
#
# After this chapter you can
#
# - name the keypoints of the three sets used in the literature (COCO-17, MPII-16 and the
#   14-point LSP set) and read a skeleton drawing of each;
# - read and write a person in the **COCO keypoint format** (`keypoints` as $[x, y, v] \times 17$,
#   the visibility flags $v \in \{0, 1, 2\}$, `bbox` and `area`), and convert it to arrays;
# - mirror keypoints with an image, $x' = w - 1 - x$, **and** swap left and right;
# - tell single-person from multi-person estimation, top-down from bottom-up, and coordinate
#   regression from heatmaps, at a glance;
# - explain how the course's synthetic people are made, and why they wear orange on the left
#   and blue on the right.
#
# **Papers.** The data format and the keypoint benchmark: T.-Y. Lin, M. Maire, S. Belongie,
# J. Hays, P. Perona, D. Ramanan, P. Dollár, C. L. Zitnick, *Microsoft COCO: Common Objects in
# Context*, ECCV 2014, [arXiv:1405.0312](https://arxiv.org/abs/1405.0312), with the
# [COCO keypoint detection task](https://cocodataset.org/#keypoints-2020) (first run in 2016).
# The other two keypoint sets: M. Andriluka, L. Pishchulin, P. Gehler, B. Schiele, *2D Human
# Pose Estimation: New Benchmark and State of the Art Analysis*, CVPR 2014 (MPII), and
# S. Johnson, M. Everingham, *Clustered Pose and Nonlinear Appearance Models for Human Pose
# Estimation*, BMVC 2010 (LSP).

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from pycocotools import mask as mask_utils

from course_lib import data, geometry, heatmaps, report, synthetic, viz
from course_lib import keypoints as keypoint_sets
from course_lib.grading import ch00_the_task as checks

data.ensure_default_data()
train_dir = data.default_split_dir("single/train")
people = data.CocoKeypoints(train_dir / "annotations.json")
people

# %% [markdown]
# ## What a pose is
#
# Below are two people with their keypoints: a real photograph that ships with scikit-image
# (the astronaut Eileen Collins; the course annotated her keypoints by hand) and one of the
# course's synthetic people. Lines join the keypoints into a **skeleton**, only for the eye:
# the task is the points. The colours are the same everywhere in the course: the person's
# **left** side orange, the **right** side blue, the middle green. The person's left is on the
# right of the picture when they face the camera, as the astronaut does.
#
# Filled dots are visible keypoints; hollow circles with dashed limbs are keypoints that are
# labelled but hidden (the astronaut's left elbow is behind the helmet she holds). Her left
# wrist and everything below the waist are outside the photograph: those keypoints have no
# position at all, and are not drawn.

# %%
astronaut = data.astronaut()
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, person, title in [(axes[0], astronaut, "a photograph (512 x 512)"),
                          (axes[1], people[46], "a synthetic person (128 x 128)")]:
    viz.show_image(person["image"], ax)
    viz.draw_pose(person["keypoints"], person["visibility"], ax=ax)
    ax.set_title(title, fontsize=10)
plt.show()

# %% [markdown]
# ## Three keypoint sets
#
# Which points count as "the pose" is a choice each data set makes:
#
# - **COCO-17** (Lin et al. 2014): five face points (nose, eyes, ears), shoulders, elbows,
#   wrists, hips, knees, ankles. No neck, no top of the head. Every chapter of the course
#   trains on this set.
# - **MPII-16** (Andriluka et al. 2014): no face points, but the pelvis, thorax, upper neck and
#   the top of the head. PCKh, the metric of chapter 08, comes from this data set: it measures
#   errors relative to the size of the head, which needs the head's top.
# - **LSP-14** (Johnson & Everingham 2010): the 14-point skeleton of the DeepPose paper
#   (chapter 01): the limbs, the neck and the top of the head.
#
# The numbers are each joint's index in its set. They differ from set to set (COCO's left
# shoulder is 5, MPII's 13, LSP's 9), so converting between sets goes by the joints' names,
# and only the twelve limb joints the three sets share survive a round trip.

# %%
fig, axes = plt.subplots(1, 3, figsize=(8, 4.4))
for ax, name in zip(axes, ["coco", "mpii", "lsp"]):
    viz.draw_keypoint_set(name, ax)
plt.show()
shared = keypoint_sets.correspondence("coco", "lsp")
print(f"COCO and LSP share {len(shared)} joints:", ", ".join(keypoint_sets.COCO_KEYPOINTS[i] for i in shared))

# %% [markdown]
# ## The COCO keypoint format
#
# A COCO keypoint file is one JSON object with three lists: `images`, `annotations` (one per
# person) and `categories` (here one, "person", with the 17 keypoint names and the skeleton).
# The course's synthetic data is written in exactly this format, so the same code reads it and
# the real COCO files. Here is one person of the training set (the long run-length code of its
# segmentation mask shortened; `head_box` and `pose` are extras of the synthetic set):

# %%
with open(train_dir / "annotations.json") as file:
    coco = json.load(file)
annotation = dict(coco["annotations"][46])
segmentation = annotation["segmentation"]  # run-length code of the mask
annotation["segmentation"] = {"size": segmentation["size"], "counts": segmentation["counts"][:20] + "..."}
for key, value in annotation.items():
    print(f"{key:>14}: {json.dumps(value)}")

# %% [markdown]
# The fields a pose estimator cares about:
#
# | field | meaning |
# |---|---|
# | `keypoints` | one flat list of $3K$ numbers, $[x_1, y_1, v_1, \; x_2, y_2, v_2, \; \ldots, \; x_K, y_K, v_K]$, in image pixels |
# | $v = 0$ | **not labelled**: no position is known (the joint is outside the image, or the annotator could not place it); stored as $x = y = 0$ |
# | $v = 1$ | **labelled but not visible**: the annotator placed it behind an occluder or the body itself |
# | $v = 2$ | **labelled and visible** |
# | `num_keypoints` | how many keypoints have $v > 0$ |
# | `bbox` | $[x, y, w, h]$: the top-left corner, the width and the height of the box around the person's *segment* |
# | `area` | the number of pixels of the person's segment (its mask), **not** $w \times h$ |
# | `iscrowd` | 1 for a region that holds a crowd of people (ignored by the evaluation), else 0 |
#
# "Labelled" means $v > 0$: hidden keypoints have a position and count in training and
# evaluation; only $v = 0$ keypoints are left out. `bbox` and `area` measure different things:
# the box is the smallest rectangle around the segment, the area the segment itself, which is
# much smaller for a person (arms and legs leave a lot of empty box; the picture below prints both).
# COCO's evaluation uses the area as the person's scale $s^2$ in the object keypoint similarity
# (chapter 08); the box is what a person detector predicts (chapter 09).

# %%
person = people[46]
segment = mask_utils.decode(coco["annotations"][46]["segmentation"]).astype(bool)  # (H, W)
fig, ax = plt.subplots(figsize=(4, 4))
viz.show_image(person["image"], ax)
ax.imshow(np.ma.masked_where(~segment, segment), cmap="spring", alpha=0.35)
viz.draw_box(person["box"], ax, label="bbox")
viz.draw_pose(person["keypoints"], person["visibility"], ax=ax)
x, y, w, h = person["box"]
ax.set_title(f"area = {person['area']:.0f} px, w x h = {w * h:.0f} px", fontsize=9)
plt.show()
area_shares = [a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in coco["annotations"]]
print(f"area / (w x h): {person['area'] / (w * h):.0%} for this person, median {np.median(area_shares):.0%} "
      f"over the {len(area_shares)} people of single/train")

# %% [markdown]
# ### Exercise 1: from COCO's flat list to arrays
#
# The course works with arrays: keypoints of shape $(K, 2)$ holding $x, y$ in that order, and
# visibility of shape $(K,)$. Write the function that reads COCO's flat list. Keypoint $k$ is
# `values[3k]`, `values[3k + 1]` and its flag `values[3k + 2]`; `reshape` does it in one line.
# Return the keypoints as floats and the flags as integers.


# %%
def coco_to_arrays(values):
    """COCO's [x1, y1, v1, ..., xK, yK, vK] -> keypoints (K, 2) float, visibility (K,) int.

    Args:
        values: a list (or 1-D array) of 3K numbers.

    Returns:
        keypoints: (K, 2) float array, x and y of keypoint k in row k.
        visibility: (K,) integer array of the flags v_k (0, 1 or 2).
    """
    ### BEGIN SOLUTION
    triplets = np.asarray(values, dtype=float).reshape(-1, 3)  # (K, 3): x, y, v
    return triplets[:, :2].copy(), triplets[:, 2].astype(int)
    ### END SOLUTION


# %%
checks.check_coco_to_arrays(coco_to_arrays)

# %%
# points: 2
checks.check_coco_to_arrays(coco_to_arrays)
### BEGIN HIDDEN TESTS
checks.hidden_coco_to_arrays(coco_to_arrays)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2: from arrays back to COCO's flat list
#
# Writing results (your model's predictions, or a new data set) goes the other way. Two
# details make a file that other tools read without surprises: a keypoint with $v = 0$ is
# written as `0, 0, 0` whatever coordinates the array holds, and every entry is a plain Python
# number, because `json.dump` refuses NumPy integers such as `np.int64`.


# %%
def arrays_to_coco(keypoints, visibility):
    """Keypoints (K, 2) and visibility (K,) -> COCO's flat list [x1, y1, v1, ..., xK, yK, vK].

    Unlabelled keypoints (v = 0) are written as 0, 0, 0. Every entry is a Python number
    (float for x and y, int for v), so that json.dumps accepts the list.
    """
    ### BEGIN SOLUTION
    values = []
    for (x, y), v in zip(np.asarray(keypoints, dtype=float), visibility):
        if v > 0:
            values += [float(x), float(y), int(v)]
        else:
            values += [0.0, 0.0, 0]
    return values
    ### END SOLUTION


# %%
checks.check_arrays_to_coco(arrays_to_coco)

# %%
# points: 2
checks.check_arrays_to_coco(arrays_to_coco)
### BEGIN HIDDEN TESTS
checks.hidden_arrays_to_coco(arrays_to_coco)
### END HIDDEN TESTS

# %% [markdown]
# ## Mirror images: flipping keypoints
#
# Mirroring an image left to right is the oldest data augmentation in pose estimation, and the
# flip test of chapter 06 averages a model's outputs on an image and on its mirror. Two things
# happen to the keypoints.
#
# **The x coordinate is mirrored.** The course puts pixel centres at integer coordinates: pixel
# column $j$ has its centre at $x = j$ and covers $[j - \tfrac12, j + \tfrac12]$, so an image of
# width $w$ spans $x \in [-\tfrac12, w - \tfrac12]$. The mirror maps column $0$ to column
# $w - 1$, hence
#
# $$x' = w - 1 - x, \qquad y' = y.$$
#
# (With $x' = w - x$ every keypoint would land one pixel off.)
#
# **Left and right swap.** In the mirror, the person's left wrist appears where a right wrist
# would be: the keypoint stored in the "left wrist" row must move to the "right wrist" row, and
# the other way round, visibility flags included. `keypoints.COCO_FLIP_PAIRS` lists the
# $(\text{left}, \text{right})$ index pairs: `(1, 2)` for the eyes, `(5, 6)` for the shoulders, and
# so on. The nose has no partner and stays in its row.

# %%
print(keypoint_sets.COCO_FLIP_PAIRS)
names = keypoint_sets.COCO_KEYPOINTS
print([(names[a], names[b]) for a, b in keypoint_sets.COCO_FLIP_PAIRS[:3]])

# %% [markdown]
# ### Exercise 3: flip keypoints with the image
#
# Write the flip for one person: mirror $x$ and swap every pair of rows in `flip_pairs`, in the
# keypoints and in the visibility. Return new arrays: leave the inputs unchanged. (Unlabelled
# keypoints may keep any coordinates; only labelled ones are checked.)


# %%
def flip_keypoints(keypoints, visibility, width, flip_pairs):
    """Mirror one person's keypoints with an image `width` pixels wide.

        x' = width - 1 - x,  y' = y,  then rows a and b trade places for every (a, b) in flip_pairs.

    Args:
        keypoints: (K, 2) pixels x, y.
        visibility: (K,) COCO flags.
        width: the image width w in pixels.
        flip_pairs: (left, right) index pairs, e.g. keypoints.COCO_FLIP_PAIRS.

    Returns:
        (flipped keypoints (K, 2), flipped visibility (K,)).
    """
    ### BEGIN SOLUTION
    flipped = np.array(keypoints, dtype=float)
    flipped[:, 0] = width - 1 - flipped[:, 0]
    flags = np.array(visibility)
    for left, right in flip_pairs:
        flipped[[left, right]] = flipped[[right, left]]
        flags[[left, right]] = flags[[right, left]]
    return flipped, flags
    ### END SOLUTION


# %%
checks.check_flip_keypoints(flip_keypoints)

# %%
# points: 3
checks.check_flip_keypoints(flip_keypoints)
### BEGIN HIDDEN TESTS
checks.hidden_flip_keypoints(flip_keypoints)
### END HIDDEN TESTS

# %% [markdown]
# Here is a training person and its mirror, with the keypoints flipped by the course's
# implementation of what you just wrote (`geometry.flip_keypoints`). The skeleton lands on the
# mirrored body, and the left side is still drawn orange: after the swap, the rows labelled
# "left" hold the person's left joints again. But look at the limbs themselves: the synthetic
# people wear an orange stripe on their left limbs and a blue one on their right limbs, and in
# the mirror the orange stripe is on the limb that is now labelled *right*. We come back to this
# below.

# %%
image, width = person["image"], person["image"].shape[1]
mirrored_keypoints, mirrored_visibility = geometry.flip_keypoints(person["keypoints"], person["visibility"], width)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
viz.draw_pose(person["keypoints"], person["visibility"], ax=viz.show_image(image, axes[0]))
viz.draw_pose(mirrored_keypoints, mirrored_visibility, ax=viz.show_image(geometry.flip_image(image), axes[1]))
axes[0].set_title("the image", fontsize=10)
axes[1].set_title("its mirror, keypoints flipped", fontsize=10)
plt.show()

# %% [markdown]
# ### Exercise 4: the keypoint box
#
# A box around a person's labelled keypoints is useful on its own: it is a person box for data
# sets that have keypoints but no boxes (MPII), and the scale of a pose when a box is all you
# need. Write it for the labelled keypoints only ($v > 0$): unlabelled ones sit at $(0, 0)$ and
# would pull the box to the image corner. Return COCO's $[x, y, w, h]$:
#
# $$x = \min_k x_k, \quad y = \min_k y_k, \quad w = \max_k x_k - \min_k x_k, \quad h = \max_k y_k - \min_k y_k
# \qquad (k \text{ with } v_k > 0).$$


# %%
def keypoint_box(keypoints, visibility):
    """[x, y, w, h] of the tightest box around the labelled keypoints (v > 0).

    Args:
        keypoints: (K, 2) pixels.
        visibility: (K,) COCO flags; at least one is > 0.

    Returns:
        (4,) float array [x_min, y_min, x_max - x_min, y_max - y_min].
    """
    ### BEGIN SOLUTION
    labelled = np.asarray(keypoints, dtype=float)[np.asarray(visibility) > 0]  # (L, 2)
    low, high = labelled.min(axis=0), labelled.max(axis=0)
    return np.concatenate([low, high - low])
    ### END SOLUTION


# %%
checks.check_keypoint_box(keypoint_box)

# %%
# points: 2
checks.check_keypoint_box(keypoint_box)
### BEGIN HIDDEN TESTS
checks.hidden_keypoint_box(keypoint_box)
### END HIDDEN TESTS

# %% [markdown]
# The keypoint box (the course's `keypoints.keypoint_box`) is always inside COCO's `bbox`:
# joints are *inside* the body, while the segment also holds the hands, the feet, the head
# above the eyes and the width of the limbs. A top-down model therefore pads the box it crops
# (by 25% in SimpleBaseline and HRNet, chapter 06).

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
for ax, item in zip(axes, [astronaut, people[46]]):
    viz.draw_pose(item["keypoints"], item["visibility"], ax=viz.show_image(item["image"], ax))
    viz.draw_box(item["box"], ax, label="bbox")
    keypoint_box_of_item = keypoint_sets.keypoint_box(item["keypoints"], item["visibility"])
    viz.draw_box(keypoint_box_of_item, ax, color="yellow", label="keypoint box")
plt.show()

# %% [markdown]
# ## One person or many; top-down or bottom-up
#
# **Single-person** pose estimation assumes one person, roughly centred: a crop. Its output is
# one $K \times 2$ array. **Multi-person** pose estimation takes a whole scene with any number of
# people and returns $N \times K \times 2$, where $N$ is not known in advance. There are two
# ways to get there:
#
# - **Top-down**: first detect every person (a box each), then crop each box and run a
#   single-person estimator on the crop. Every person is seen at the same resolution however
#   small it is in the image, which makes top-down methods accurate; the cost grows with the
#   number of people, and a person the detector misses is lost. Mask R-CNN, SimpleBaseline and
#   HRNet work this way (chapters 05-07, 09).
# - **Bottom-up**: first find every keypoint in the whole image (all left wrists, all right
#   knees...), then **group** them into people. One pass over the image whatever the number of
#   people, but small people are seen at low resolution and the grouping is a problem of its
#   own. Associative Embedding and HigherHRNet work this way (sketched in chapter 09).

# %%
scenes = data.CocoKeypoints(data.default_split_dir("multi/val") / "annotations.json")
scene_id = scenes.image_ids[5]
scene_image = scenes.load_image(scene_id)
scene_people = [data.person_item(a, scene_image) for a in scenes.annotations_for(scene_id)]
fig, axes = plt.subplots(1, 1 + len(scene_people), figsize=(3 * (1 + len(scene_people)), 3.2),
                         gridspec_kw={"width_ratios": [2] + [1] * len(scene_people)})
viz.show_image(scene_image, axes[0]).set_title("top-down: 1. detect people", fontsize=9)
for index, (item, ax) in enumerate(zip(scene_people, axes[1:])):
    viz.draw_box(item["box"], axes[0], color="yellow")
    center, scale = geometry.box_to_center_scale(item["box"], aspect_ratio=0.75)
    crop = geometry.warp_image(scene_image, center, scale, 0.0, (128, 96))
    crop_keypoints = geometry.image_to_crop(item["keypoints"], center, scale, 0.0, (128, 96))
    viz.draw_pose(crop_keypoints, item["visibility"], ax=viz.show_image(crop, ax), markersize=10)
    ax.set_title(f"2. pose of person {index + 1}", fontsize=9)
plt.show()

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
viz.show_image(scene_image, axes[0]).set_title("bottom-up: 1. every keypoint, no people yet", fontsize=9)
colours = plt.cm.tab20(np.linspace(0, 1, 17))  # one colour per keypoint type, not per person
for item in scene_people:
    labelled = item["visibility"] > 0
    axes[0].scatter(*item["keypoints"][labelled].T, s=14, c=colours[labelled], edgecolors="black", linewidths=0.5)
viz.show_image(scene_image, axes[1]).set_title("2. grouped into people", fontsize=9)
for item in scene_people:
    viz.draw_pose(item["keypoints"], item["visibility"], ax=axes[1], markersize=10)
plt.show()

# %% [markdown]
# ## Regression or heatmaps, at a glance
#
# How does a network output keypoints? Two answers run through the whole course.
#
# - **Coordinate regression** (DeepPose, chapter 01): the network ends in a fully connected
#   layer with $2K$ outputs, the coordinates themselves, usually measured from the centre of
#   the person box in units of its size. Simple and fast; the spatial layout of the image has to
#   be squeezed into a vector on the way.
# - **Heatmaps** (chapters 02-07): the network outputs one small image per keypoint, whose
#   brightest place is the keypoint; the training target is a Gaussian bump at the true
#   position. The output keeps the image's spatial structure, and a keypoint without a label
#   simply gets no loss. Since Tompson et al. (2014) nearly every accurate model works this way.
#
# The left panel shows what a regression network is asked for (34 numbers: 17 arrows from the
# box centre); the others show the heatmap targets for the same person at a quarter of the
# image's resolution (all 17 at once, then two single keypoints).

# %%
box_center = person["box"][:2] + person["box"][2:] / 2
normalized = geometry.normalize_to_box(person["keypoints"], person["box"])  # (17, 2): what a regressor outputs
stride = 4
targets, _ = heatmaps.gaussian_heatmaps(person["keypoints"][None] / stride, person["visibility"][None], (32, 32),
                                        sigma=1.5)  # (1, 17, 32, 32): the keypoints in heatmap pixels
fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
viz.show_image(person["image"], axes[0]).set_title("regression: 2K numbers", fontsize=9)
viz.draw_box(person["box"], axes[0])
labelled = person["visibility"] > 0
arrows = person["keypoints"][labelled] - box_center
axes[0].quiver(*np.repeat(box_center[:, None], labelled.sum(), axis=1), arrows[:, 0], arrows[:, 1],
               angles="xy", scale_units="xy", scale=1, color="yellow", width=0.006)
wrist = keypoint_sets.COCO_KEYPOINTS.index("left_wrist")
axes[0].set_xlabel(f"left wrist: N = ({normalized[wrist, 0]:+.2f}, {normalized[wrist, 1]:+.2f})", fontsize=8)
viz.overlay_heatmap(person["image"], targets[0], axes[1]).set_title("heatmaps: all 17 (maximum)", fontsize=9)
for ax, name in zip(axes[2:], ["left_wrist", "right_ankle"]):
    joint = keypoint_sets.COCO_KEYPOINTS.index(name)
    viz.overlay_heatmap(person["image"], targets[0, joint], ax).set_title(name, fontsize=9)
plt.show()

# %% [markdown]
# ## The course's data: synthetic people
#
# Real data sets are large downloads with licences, and training on them takes a GPU for days.
# The course instead makes its own people, in seconds, with the same file format (a script
# converts COCO and MPII for those who want the real thing, see `data_scripts/`). Each image
# is drawn from a small 3D model:
#
# 1. **A skeleton posed by joint angles.** A kinematic tree with human proportions (from
#    biomechanics tables) is posed with joint angles sampled within human ranges: standing,
#    walking, arms up, sitting, crouching, lying, or free. Elbows and knees bend one way only.
# 2. **A camera.** The body turns about the vertical by a random yaw (front views, side views,
#    back views), is seen by an orthographic camera, then rolled a little in the image plane,
#    scaled and placed.
# 3. **Drawing.** Limbs are thick anti-aliased segments drawn back to front, with skin, clothes,
#    a head with hair and a face, over a background with colour gradients, blobs and limb-like
#    bars (distractors that look like arms).
# 4. **Labels.** The 17 COCO keypoints are projected; a keypoint is visible ($v = 2$) when the
#    front-most thing drawn at its pixel is its own body part, hidden ($v = 1$) when an occluder
#    (a random block, disc or bar), another person or the person's own body covers it, and not
#    labelled ($v = 0$) when it falls outside the image. Face keypoints facing away from the
#    camera are hidden.
#
# The **single-person** set (chapters 01-08) has 4000 training and 500 validation images of
# 128 x 128 pixels, one person each, spanning 50-90% of the image and sometimes cut by the border.
# The **multi-person** set (chapter 09) has 1000 + 200 scenes of 256 x 256 pixels with 2 to 5
# people of different sizes that overlap. Everything is seeded: the same command makes the same
# bytes on every computer.

# %%
viz.show_samples(people, indices=range(8, 20), cols=6, size=2.0)
plt.show()

# %% [markdown]
# ### Why left is orange and right is blue
#
# Look at a person from behind, or at the stick figures above, and ask which arm is the left
# one. From the front, the person's left is on the right of the picture; from behind, on the
# left. Only the face (or its absence) and subtle cues of the body tell the two views apart, and
# a small network trained for a few minutes does not learn them: it mixes up left and right,
# and the errors are large (a whole body width). Real photographs have the same problem, on a
# smaller scale.
#
# So every synthetic person wears a **side tint**: the left limbs and the left ear carry an
# orange tint and an orange stripe, the right ones blue, whatever the clothes. Left and right
# can now be read from the pixels, and the course's small models learn them.
#
# The tint is a *chiral* cue: it does not survive a mirror. In a mirrored image the orange
# stripe is on the limb that the flipped labels call right, so training with flip
# augmentation would teach a contradiction. That is why the course trains **without flips** by
# default (`training.top_down_data(..., flip_prob=0.0)`); chapter 06 comes back to the flip
# test. `synthetic.synthetic_scene(..., side_tints=False)` draws the same scene with plain
# stripes, where left and right come only from the face and the geometry.

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
for ax, tints, title in [(axes[0], True, "side tints (the default)"), (axes[1], False, "side_tints=False")]:
    image, _ = synthetic.synthetic_scene(seed=1, index=46, side_tints=tints)
    viz.show_image(image, ax).set_title(title, fontsize=9)
tinted, tinted_people = synthetic.synthetic_scene(seed=1, index=46)
flipped, flipped_visibility = geometry.flip_keypoints(tinted_people[0]["keypoints"], tinted_people[0]["visibility"],
                                                      image_width=128)
viz.draw_pose(flipped, flipped_visibility, ax=viz.show_image(geometry.flip_image(tinted), axes[2]), alpha=0.6)
axes[2].set_title("mirrored: orange on the 'right'", fontsize=9)
plt.show()

# %% [markdown]
# ## Data set statistics (the experiment)
#
# Before training anything, know your data. The experiment counts, for each of the four
# synthetic splits: people per image, the size of the people, how many keypoints each person
# has labelled, and the share of each visibility flag; then it draws the visibility of every
# keypoint of the training set as a histogram. These numbers explain much of what the later
# chapters measure: hidden keypoints are hard, unlabelled ones are not scored, and small people
# are harder than large ones.


# %% tags=["experiment"]
def split_statistics(name):
    """One row of the table for a default split, and the arrays behind it."""
    with open(data.default_split_dir(name) / "annotations.json") as file:
        split = json.load(file)
    flags = np.array([a["keypoints"][2::3] for a in split["annotations"]])  # (P, 17)
    heights = np.array([a["bbox"][3] for a in split["annotations"]])  # (P,) person box heights
    per_image = np.bincount([a["image_id"] for a in split["annotations"]])[1:]  # image ids start at 1
    row = {"split": name, "images": len(split["images"]), "people": len(flags),
           "people per image": float(per_image.mean()), "most in one image": int(per_image.max()),
           "median height (px)": float(np.median(heights)),
           "median height / image": float(np.median(heights) / split["images"][0]["height"]),
           "labelled per person": float((flags > 0).sum(axis=1).mean()),
           "fewest labelled": int((flags > 0).sum(axis=1).min()),
           "v=0": float((flags == 0).mean()), "v=1": float((flags == 1).mean()), "v=2": float((flags == 2).mean())}
    return row, {"flags": flags, "heights": heights, "per_image": per_image}


results = {name: split_statistics(name) for name in data.DEFAULT_SPLITS}
rows = [row for row, _ in results.values()]
hidden_share = np.mean([row["v=1"] for row in rows])
fewest = ", ".join(f"{row['fewest labelled']} in {row['split']}" for row in rows)
table = report.experiment_table(
    rows, chapter="00", title="The synthetic data: people, sizes and visibility per split",
    note=(f"No paper number to reproduce: this describes our data. {hidden_share:.0%} of the keypoints are hidden "
          f"(v = 1), and every person has some labelled keypoints (at least {fewest}), whereas COCO also holds "
          "many small people and crowds with no labelled keypoints at all (num_keypoints = 0)."),
    floatfmt=".2f",
)
table

# %% tags=["experiment"]
flags = results["single/train"][1]["flags"]
shares = np.stack([(flags == v).mean(axis=0) for v in (0, 1, 2)])  # (3, 17): share of each flag per keypoint
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [3, 1.2, 1.2]})
bottom = np.zeros(17)
for v, colour, label in [(2, "#4c9f50", "v=2 visible"), (1, "#f0a030", "v=1 hidden"),
                         (0, "#b0b0b0", "v=0 not labelled")]:
    axes[0].bar(range(17), shares[v], bottom=bottom, color=colour, label=label)
    bottom += shares[v]
axes[0].set_xticks(range(17), keypoint_sets.COCO_KEYPOINTS, rotation=60, ha="right", fontsize=8)
axes[0].set_ylabel("share of people")
axes[0].set_title("visibility per keypoint (single/train)", fontsize=10)
axes[0].legend(fontsize=8, loc="lower left")
per_image = results["multi/train"][1]["per_image"]
axes[1].bar(*np.unique(per_image, return_counts=True))
axes[1].set_xlabel("people per image (multi/train)")
axes[2].hist([results["single/train"][1]["heights"], results["multi/train"][1]["heights"]], bins=20,
             label=["single (128 px)", "multi (256 px)"])
axes[2].set_xlabel("person box height (px)")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()
names = keypoint_sets.COCO_KEYPOINTS
print("most often hidden:    ", ", ".join(f"{names[k]} {shares[1, k]:.0%}" for k in np.argsort(-shares[1])[:4]))
print("most often unlabelled:", ", ".join(f"{names[k]} {shares[0, k]:.0%}" for k in np.argsort(-shares[0])[:4]))

# %% [markdown]
# Where do hidden keypoints come from? The hips and the ears lead: as soon as a person turns
# more than about 35 degrees away from the camera, the far hip goes behind the torso (and the
# far shoulder too, a little less often, since the arms hang outside the body), and an ear on
# the far side of the head is hidden by the head. Random occluders hide every joint now and
# then. Unlabelled keypoints (grey) come from people cut by the image border: the ankles at the
# bottom, the face at the top. The knees and ankles are the most often visible.

# %% [markdown]
# ## What the paper reported
#
# **COCO keypoints** (Lin et al. 2014 for the data set; the keypoint task since 2016):
#
# - COCO itself: 328,000 images with 2.5 million labelled object instances of 91 object types.
# - Keypoints: over 200,000 images and **250,000 person instances** labelled with **17
#   keypoints** (mostly people at medium and large scale). The split used by SimpleBaseline and
#   HRNet: `train2017` with about 57,000 images and 150,000 people, `val2017` with 5,000 images,
#   `test-dev2017` with 20,000 images.
# - The evaluation is the **object keypoint similarity** (chapter 08),
#   $\mathrm{OKS} = \sum_i \exp\!\left(-d_i^2 / (2 s^2 k_i^2)\right) \delta(v_i > 0) \,/\, \sum_i \delta(v_i > 0)$,
#   with $s^2$ the person's segment area and $k_i = 2 \sigma_i$ a constant per keypoint,
#   measured from how much annotators disagree on redundantly annotated images. The
#   $\sigma_i$ below are those of `pycocotools`: the face is placed precisely (0.025-0.035),
#   the hips loosely (0.107). AP is averaged over OKS thresholds 0.50, 0.55, ..., 0.95.

# %%
print("  ".join(f"{name} {sigma:.3f}" for name, sigma in zip(keypoint_sets.COCO_KEYPOINTS, keypoint_sets.COCO_SIGMAS)))

# %% [markdown]
# **MPII** (Andriluka et al. 2014): about 25,000 images with over 40,000 people, 16 joints,
# evaluated with PCKh. **LSP** (Johnson & Everingham 2010): 2,000 images of sports people
# (1,000 for training, 1,000 for testing), 14 joints, evaluated with PCP; its extension adds
# 10,000 training images, which DeepPose used (chapter 01).
#
# ## Check your understanding
#
# 1. A COCO annotation has `"keypoints": [0, 0, 0, 120.5, 88, 1, ...]`. What do you know about
#    its nose and its left eye?
#
#    <details><summary>Answer</summary>The nose (index 0) is not labelled: v = 0, and the zeros
#    are not a position. The left eye (index 1) is labelled but hidden (v = 1) at x = 120.5,
#    y = 88: it counts in training and evaluation like a visible one.</details>
#
# 2. Why is `area` not simply `bbox[2] * bbox[3]`?
#
#    <details><summary>Answer</summary>`area` is the number of pixels of the person's segment
#    (mask); the box is the smallest rectangle around it. Arms and legs leave much of the box
#    empty, so the area is well below w x h (the COCO format section printed the share for the synthetic people). COCO uses the
#    area as the scale s^2 in OKS.</details>
#
# 3. You mirror a 640-pixel-wide image. Where does a visible left wrist at x = 100 go, and under
#    which name?
#
#    <details><summary>Answer</summary>To x = 640 - 1 - 100 = 539, stored as the right wrist
#    (with the old left wrist's visibility flag).</details>
#
# 4. Why do the course's models train without flip augmentation, when most papers use it?
#
#    <details><summary>Answer</summary>The synthetic people carry an orange tint on the left
#    and a blue one on the right, and a mirror moves the orange tint to the limbs the flipped
#    labels call right. Flipping would show the network images whose tints contradict their
#    labels. Real people carry no such cue, which is why flips are harmless there.</details>
#
# 5. A scene holds 40 people. Which approach's running time grows with the number of people,
#    and why might you still choose it?
#
#    <details><summary>Answer</summary>Top-down: one single-person estimate per detected box.
#    It is usually more accurate, because every person, small or large, is cropped and
#    resized to the same resolution before the pose network sees it.</details>

# %% [markdown]
# ## Stretch exercise: from one keypoint set to another
#
# This one is optional (bonus points). The three sets order their joints differently (COCO's
# left shoulder is 5, MPII's 13, LSP's 9), so a pose moves from one set to another **by
# name**: for each joint of the target set, take the source joint of the same name; a target
# joint the source set does not have (COCO's neck, LSP's nose) gets $(0, 0)$ and $v = 0$, "not
# labelled", never a guess.


# %%
def convert_by_name(keypoints, visibility, source_names, target_names):
    """A pose of one keypoint set in another, joint by joint through the names.

    Args:
        keypoints: (K_s, 2) pixels, in the order of source_names.
        visibility: (K_s,) COCO flags.
        source_names, target_names: the joint names of the two sets, in their order.

    Returns:
        keypoints (K_t, 2) float, visibility (K_t,): joints missing from the source at (0, 0), v = 0.
    """
    ### BEGIN SOLUTION
    keypoints, visibility = np.asarray(keypoints, dtype=float), np.asarray(visibility)
    index = {name: k for k, name in enumerate(source_names)}
    out_keypoints = np.zeros((len(target_names), 2))
    out_visibility = np.zeros(len(target_names), dtype=visibility.dtype)
    for t, name in enumerate(target_names):
        if name in index:
            out_keypoints[t], out_visibility[t] = keypoints[index[name]], visibility[index[name]]
    return out_keypoints, out_visibility
    ### END SOLUTION


# %%
checks.check_convert_by_name(convert_by_name)

# %%
# bonus: 1
checks.check_convert_by_name(convert_by_name)
### BEGIN HIDDEN TESTS
checks.hidden_convert_by_name(convert_by_name)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - A pose is $K$ points $(x_k, y_k)$ with a visibility flag each; for $N$ people an
#   $N \times K \times 2$ array. COCO-17, MPII-16 and LSP-14 name and order the joints differently.
# - COCO stores a person as a flat list $[x, y, v] \times K$: $v = 0$ not labelled (at $(0, 0)$),
#   $v = 1$ labelled but hidden, $v = 2$ visible; "labelled" means $v > 0$.
# - `bbox` is the rectangle around the person's segment, `area` the segment's pixels: OKS uses
#   the area as the scale, a detector predicts the box.
# - Mirroring an image maps $x \to w - 1 - x$ **and** swaps every left joint with its right one.
# - Top-down estimates one person per detected box; bottom-up finds every joint at once and
#   groups them. Regression outputs coordinates, heatmaps output a score per pixel.
# - The course's synthetic people wear orange on the left and blue on the right, so the models
#   can tell the sides apart; they train without flip augmentation for that reason.
