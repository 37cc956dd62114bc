# %% [markdown]
# # Chapter 01: DeepPose, regress the joints, then refine them in a cascade
#
# In 2014, two years after AlexNet, Alexander Toshev and Christian Szegedy asked the most
# direct question possible: if a convolutional network can say *what* is in an image, can it
# also say *where* a person's joints are, by outputting their coordinates as numbers? Their
# answer, **DeepPose**, treats a pose of $K$ joints as a vector of $2K$ numbers and trains a
# network to regress it. Two ideas make it work: the coordinates are **normalised by a box**
# around the person, and a **cascade** of networks refines each joint from a close-up crop
# around its current estimate. They also introduced the metric used to report it, the
# **percent of detected joints** (PDJ).
#
# ## Learning goals
#
# After this chapter you can
#
# - normalise joints by a box, $N(y_i; b) = \mathrm{diag}(1/b_w, 1/b_h)\,(y_i - b_c)$, and invert
#   it; work an example by hand and find the step of a worked inverse that used the wrong box;
# - train a coordinate-regression network with an $L_2$ loss on normalised coordinates;
# - compute PDJ, the share of joints within a radius of *threshold* $\times$ *torso diameter*,
#   and say why a box diagonal is sometimes the better body size;
# - build the cascade: boxes of side $\delta \cdot \mathrm{diam}(y)$ around every predicted joint,
#   a second stage trained on crops around **simulated** predictions, and measure what it gains.
#
# **Paper.** A. Toshev, C. Szegedy, *DeepPose: Human Pose Estimation via Deep Neural Networks*,
# CVPR 2014, [arXiv:1312.4659](https://arxiv.org/abs/1312.4659).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Ellipse

from course_lib import cascade, data, geometry, losses, metrics, models, report, training, viz
from course_lib.grading import ch01_deeppose as checks
from course_lib.keypoints import COCO_KEYPOINTS, COCO_TORSO_DIAMETER_PAIR

data.ensure_default_data()
val_people = data.CocoKeypoints(data.default_split_dir("single/val") / "annotations.json")
print("left shoulder and right hip, the torso pair:", [COCO_KEYPOINTS[i] for i in COCO_TORSO_DIAMETER_PAIR])

# %% [markdown]
# ## A pose is a vector
#
# DeepPose writes the pose as one vector $y = (y_1^\top, \ldots, y_K^\top)^\top \in \mathbb{R}^{2K}$,
# where $y_i \in \mathbb{R}^2$ holds the pixel coordinates $(x, y)$ of joint $i$. A network
# $\psi(x; \theta) \in \mathbb{R}^{2K}$ reads the image $x$ and outputs such a vector.
#
# Pixel coordinates are a poor target: the same pose has different numbers when the person
# stands elsewhere or is larger. DeepPose therefore measures every joint **relative to a box**
# $b = (b_c, b_w, b_h)$ around the person, with centre $b_c$, width $b_w$ and height $b_h$:
#
# $$N(y_i; b) = \begin{pmatrix} 1/b_w & 0 \\ 0 & 1/b_h \end{pmatrix} (y_i - b_c).$$
#
# The box centre becomes $(0, 0)$ and the box spans $[-\tfrac12, \tfrac12]^2$: whatever the
# person's size and position, the network outputs numbers of order one. The image is cropped to
# the same box (and resized to a fixed size), so the network only ever sees normalised people.
#
# ### Exercise 1: normalise by a box
#
# The box is given as $(c_x, c_y, w, h)$, centre first, as the paper writes $b = (b_c, b_w, b_h)$.


# %%
def normalize_to_box(keypoints, box):
    """DeepPose's box normalisation N(y; b) = diag(1/w, 1/h) (y - b_c).

    Args:
        keypoints: (K, 2) image pixels x, y.
        box: (4,) the box (c_x, c_y, w, h): its centre, width and height.

    Returns:
        (K, 2) float array: ((x - c_x) / w, (y - c_y) / h) for every joint.
    """
    ### BEGIN SOLUTION
    keypoints = np.asarray(keypoints, dtype=float)
    center, size = np.asarray(box[:2], dtype=float), np.asarray(box[2:], dtype=float)
    return (keypoints - center) / size
    ### END SOLUTION


# %%
checks.check_normalize_to_box(normalize_to_box)

# %%
# points: 2
checks.check_normalize_to_box(normalize_to_box)
### BEGIN HIDDEN TESTS
checks.hidden_normalize_to_box(normalize_to_box)
### END HIDDEN TESTS

# %% [markdown]
# ### A worked example
#
# Five joints of a 14-point skeleton, normalised by hand by the box with centre $(120, 150)$,
# $w = 200$, $h = 300$. For the head at $(120, 370)$:
# $\left(\tfrac{120 - 120}{200}, \tfrac{370 - 150}{300}\right) = (0, 0.73)$; the other four the
# same way, rounded to two decimals in the column "by hand". The course's implementation of what
# you just wrote (`geometry.normalize_to_box`) checks every row:

# %%
example_box = checks.EXAMPLE_BOX  # (c_x, c_y, w, h) = (120, 150, 200, 300)
names = ["head", "left shoulder", "left elbow", "left wrist", "right ankle"]
by_hand = [(0.0, 0.73), (0.0, 0.60), (-0.1, 0.60), (-0.2, 0.67), (-0.35, -0.27)]
normalized = geometry.normalize_to_box(checks.EXAMPLE_JOINTS, example_box, box_format="cxcywh")
print(f"{'joint':>14} {'x':>5} {'y':>5} | {'N_x':>6} {'N_y':>6} | by hand")
for name, (x, y), (nx, ny), hand in zip(names, checks.EXAMPLE_JOINTS, normalized, by_hand):
    same = np.allclose(np.round([nx, ny], 2), hand)
    print(f"{name:>14} {x:5.0f} {y:5.0f} | {nx:6.2f} {ny:6.2f} | {hand}  {'same' if same else 'DIFFERENT'}")

# %% [markdown]
# Two remarks on the example. The head has $N_y = 0.73 > 0.5$: it lies *outside* the box, which
# is allowed (a box from a person detector often cuts off a hand or the head; the network can
# still output values beyond $\pm\tfrac12$). And the example's numbers have $y$ pointing
# **up** (the head at $y = 370$ above the ankle at $y = 70$), while images, and this course,
# have $y$ pointing down. The formula does not care: it is the same linear map either way.
#
# ## Back to pixels
#
# The network's output lives in box units; to draw it, or to compare it with the truth, map it
# back with the inverse,
#
# $$y_i = b_c + \begin{pmatrix} b_w & 0 \\ 0 & b_h \end{pmatrix} N(y_i; b) = N^{-1}\big(N(y_i; b); b\big).$$
#
# ### Exercise 2: the inverse


# %%
def denormalize_from_box(normalized, box):
    """The inverse of normalize_to_box: y = b_c + diag(w, h) N.

    Args:
        normalized: (K, 2) coordinates in box units.
        box: (4,) the box (c_x, c_y, w, h).

    Returns:
        (K, 2) float array of image pixels.
    """
    ### BEGIN SOLUTION
    normalized = np.asarray(normalized, dtype=float)
    center, size = np.asarray(box[:2], dtype=float), np.asarray(box[2:], dtype=float)
    return center + normalized * size
    ### END SOLUTION


# %%
checks.check_denormalize_from_box(denormalize_from_box)

# %%
# points: 2
checks.check_denormalize_from_box(denormalize_from_box)
### BEGIN HIDDEN TESTS
checks.hidden_denormalize_from_box(denormalize_from_box)
### END HIDDEN TESTS

# %% [markdown]
# ### Find the slip in a worked inverse
#
# Two predictions of a network, in box units, mapped back to pixels by hand with the box
# above, centre $(120, 150)$, $w = 200$, $h = 300$: the right hip at $(-0.3, -0.7)$ and the
# left shoulder at $(0.2, 0.2)$. **One step below uses the wrong box centre.** Find it and fix
# it before running the next cell.
#
# 1. right hip, $x$: $\;-0.3 = \tfrac{1}{200}(x - 120)$, so $x = 60$;
# 2. right hip, $y$: $\;-0.7 = \tfrac{1}{300}(y - 300)$, so $y = 90$;
# 3. left shoulder, $x$: $\;0.2 = \tfrac{1}{200}(x - 120)$, so $x = 160$;
# 4. left shoulder, $y$: $\;0.2 = \tfrac{1}{300}(y - 150)$, so $y = 210$;
# 5. the distance between the two joints, which sizes the cascade's crops below:
#    $\sqrt{(160 - 60)^2 + (210 - 90)^2} = 156.2$ pixels.
#
# <details><summary>Answer</summary>
#
# Step 2 took the box's height, 300, for the centre's $y$, 150: $-0.7 = \tfrac{1}{300}(y - 150)$
# gives $y = -60$ (above the box: a prediction may leave it). The distance then changes too, to
# $\sqrt{100^2 + 270^2} = 287.92$ pixels: the slip moved one joint and not the other, so the
# cascade's crops would have been about half their size. Had every step used 300, both joints
# would have moved by the same 150 pixels and the distance, a difference, would have survived.
# </details>
#
# The next cell redoes every step with `geometry.denormalize_from_box` and says which one differs.

# %%
predictions = checks.EXAMPLE_PREDICTIONS  # right hip (-0.3, -0.7), left shoulder (0.2, 0.2)
corrected = geometry.denormalize_from_box(predictions, example_box, box_format="cxcywh")
worked = {"1. right hip x": 60.0, "2. right hip y": 90.0, "3. left shoulder x": 160.0, "4. left shoulder y": 210.0}
for (step, value), right in zip(worked.items(), corrected.ravel()):
    print(f"{step:20s} worked {value:6.1f}   recomputed {right:6.1f}   {'ok' if np.isclose(value, right) else 'WRONG'}")
slipped = np.array(list(worked.values())).reshape(2, 2)
print(f"5. distance          worked {np.linalg.norm(slipped[1] - slipped[0]):6.1f}   "
      f"recomputed {np.linalg.norm(corrected[1] - corrected[0]):6.2f}")

fig, ax = plt.subplots(figsize=(6.5, 4.4))
corner_box = np.r_[example_box[:2] - example_box[2:] / 2, example_box[2:]]  # (c_x, c_y, w, h) -> COCO (x, y, w, h)
viz.draw_box(corner_box, ax, color="black", label="box")
for points, colour, label in [(corrected, "tab:green", "every step with centre y = 150"),
                              (slipped, "tab:red", "the worked steps (one slip)")]:
    ax.plot(*points.T, "o-", color=colour, label=label)
    for (x, y), joint in zip(points, ["right hip", "left shoulder"]):
        ax.annotate(f"{joint} ({x:.0f}, {y:.0f})", (x, y), xytext=(6, -2), textcoords="offset points", fontsize=7,
                    color=colour)
ax.plot(*checks.EXAMPLE_JOINTS.T, "k.", label="the forward example's joints")
ax.set_xlim(-20, 260)
ax.set_ylim(-100, 420)
ax.invert_yaxis()
ax.set_aspect("equal")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
plt.show()

# %% [markdown]
# ## The network and its loss
#
# DeepPose's $\psi$ is AlexNet with a new last layer,
#
# $C(55{\times}55{\times}96) - LRN - P - C(27{\times}27{\times}256) - LRN - P - C(13{\times}13{\times}384) -
# C(13{\times}13{\times}384) - C(13{\times}13{\times}256) - P - F(4096) - F(4096) - F(2K)$,
#
# on a $220 \times 220$ crop ($C$ convolution, $LRN$ local response normalisation, $P$ pooling,
# $F$ fully connected, dropout 0.6 on the $F$ layers). Training minimises the squared distance
# between the normalised truth and the output over the training set $D_N$ (normalised data):
#
# $$\arg\min_\theta \sum_{(x, y) \in D_N} \sum_{i=1}^{K} \left\lVert y_i - \psi_i(x; \theta) \right\rVert_2^2 .$$
#
# Joints without a label are left out of the sum. The course's `models.build("deeppose")` is that
# network. (The paper quotes about 40M parameters; its layer sizes built the AlexNet way give
# 58M, almost all of them in the first $F$ layer, whose size depends on the last pooled map, which
# the paper does not state.) It needs a GPU to train; we train `deeppose_tiny` instead: four
# small convolution blocks, a pooling to a $4 \times 4$ grid (which keeps coarse positions), and
# two $F$ layers, on $96 \times 64$ crops.

# %%
for name, size in [("deeppose", (220, 220)), ("deeppose_tiny", (96, 64))]:
    with torch.device("meta"):  # counting needs the shapes only, no memory
        counts = models.measure_complexity(models.build(name), size)
    print(f"{name:14s} input {size}: {counts['params'] / 1e6:6.2f} M parameters, "
          f"{counts['macs'] / 1e9:5.2f} G multiply-adds per image")

# %% [markdown]
# The course's top-down data pipeline cuts the crop out of each image (the person box,
# widened to the crop's 3:2 aspect ratio and padded by 25%), and `losses.RegressionLoss`
# normalises the targets by the crop itself, $b = $ the whole $96 \times 64$ input. Here are
# training crops with their targets in box units (the axes): the box spans $[-\tfrac12, \tfrac12]$.

# %%
train_data = training.top_down_data(data.default_split_dir("single/train"), (96, 64), augment=True)
val_data = training.top_down_data(data.default_split_dir("single/val"), (96, 64), limit=training.budget(500, 200))
fig, axes = plt.subplots(1, 5, figsize=(10, 3.4))
for ax, index in zip(axes, range(5)):
    item = train_data[index]
    target = geometry.normalize_to_box(item["keypoints"], geometry.input_box((96, 64)))  # what the network must output
    ax.imshow(data.tensor_to_image(item["image"]), extent=(-0.5, 0.5, 0.5, -0.5))
    viz.draw_pose(target.numpy(), item["visibility"], ax=ax, markersize=10, linewidth=1.2)
    ax.set_aspect(96 / 64)  # one box unit is 64 pixels across and 96 down
    ax.set_xticks([-0.5, 0, 0.5])
    ax.set_yticks([-0.5, 0, 0.5])
    ax.tick_params(labelsize=7)
plt.show()

# %% [markdown]
# ## Measuring it: the percent of detected joints (PDJ)
#
# DeepPose's metric asks of each labelled joint: is the prediction within a circle around the
# truth? The circle's radius is a fraction (the *threshold*) of the person's size, so that big
# and small people are judged alike:
#
# $$\text{detected}_{ni} = \left[\, \lVert \hat y_{ni} - y_{ni} \rVert \le \text{threshold} \cdot \mathrm{diam}(y_n) \,\right],
# \qquad \mathrm{PDJ} = \frac{\sum_{n,i} \text{detected}_{ni}\, [v_{ni} > 0]}{\sum_{n,i} [v_{ni} > 0]} .$$
#
# The body size is the **torso diameter** $\mathrm{diam}(y)$, the distance between opposite
# joints of the torso: the left shoulder and the right hip (COCO's joints 5 and 12). An
# example: with a body length of 500 pixels, PDJ@0.05 accepts joints within
# $0.05 \times 500 = 25$ pixels. PDJ pools all labelled joints of all people; hidden joints
# ($v = 1$) count, unlabelled ones ($v = 0$) do not.
#
# ### Exercise 3: PDJ with the torso diameter


# %%
def percent_detected_joints(pred, gt, visibility, threshold):
    """PDJ: the share of labelled joints within threshold x diam(y) of the truth.

        diam(y_n) = || gt[n, 5] - gt[n, 12] ||      (left shoulder to right hip, ground truth)
        PDJ = sum_{n,i} [ ||pred_ni - gt_ni|| <= threshold diam(y_n) ] [v_ni > 0] / sum_{n,i} [v_ni > 0]

    A distance equal to the radius counts as detected.

    Args:
        pred, gt: (N, K, 2) pixels (COCO's 17 joints).
        visibility: (N, K) COCO flags of the ground truth.
        threshold: the radius as a fraction of the torso diameter.

    Returns:
        a Python float in [0, 1].
    """
    ### BEGIN SOLUTION
    pred, gt = np.asarray(pred, dtype=float), np.asarray(gt, dtype=float)
    diameter = np.linalg.norm(gt[:, 5] - gt[:, 12], axis=-1)  # (N,)
    distance = np.linalg.norm(pred - gt, axis=-1)  # (N, K)
    labelled = np.asarray(visibility) > 0
    detected = (distance <= threshold * diameter[:, None]) & labelled
    return float(detected.sum() / labelled.sum())
    ### END SOLUTION


# %%
checks.check_percent_detected_joints(percent_detected_joints)

# %%
# points: 3
checks.check_percent_detected_joints(percent_detected_joints)
### BEGIN HIDDEN TESTS
checks.hidden_percent_detected_joints(percent_detected_joints)
### END HIDDEN TESTS

# %% [markdown]
# ### Torso diameter or box diagonal?
#
# Torso-based metrics have a weakness: a torso seen from the side is narrow
# (the two shoulders, and the two hips, come together), and a bent or foreshortened torso is
# short, so the radius shrinks and every joint of that person becomes hard to "detect". The
# left-shoulder-to-right-hip diagonal keeps the torso's height, which softens the problem for
# side views but not for people lying towards the camera or bending over. The **box diagonal**
# never collapses, which is why later benchmarks (and chapter 08) use it. The plot compares the
# two sizes for the validation people; the person with the smallest ratio is drawn on the right
# with its PDJ@0.2 circles: the torso-based circles are tiny.

# %%
gt_all = np.stack([val_people[i]["keypoints"] for i in range(len(val_people))]).astype(float)  # (N, 17, 2)
visibility_all = np.stack([val_people[i]["visibility"] for i in range(len(val_people))])  # (N, 17)
boxes_all = np.stack([val_people[i]["box"] for i in range(len(val_people))]).astype(float)
has_torso = (visibility_all[:, 5] > 0) & (visibility_all[:, 12] > 0)
torso = metrics.torso_diameter(gt_all[has_torso])
diagonal = metrics.box_diagonal(boxes_all[has_torso])
smallest = np.flatnonzero(has_torso)[np.argmin(torso / diagonal)]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
axes[0].scatter(diagonal, torso, s=6)
axes[0].set_xlabel("box diagonal (px)")
axes[0].set_ylabel("torso diameter (px)")
axes[0].set_title(f"median torso diameter {np.median(torso):.0f} px; torso / diagonal: median "
                  f"{np.median(torso / diagonal):.2f}, min {np.min(torso / diagonal):.2f}", fontsize=8)
person = val_people[int(smallest)]
viz.draw_pose(person["keypoints"], person["visibility"], ax=viz.show_image(person["image"], axes[1]), markersize=8)
sizes = [(metrics.torso_diameter(gt_all[[smallest]])[0], "yellow"),
         (metrics.box_diagonal(boxes_all[[smallest]])[0], "white")]
for size, colour in sizes:
    for x, y in person["keypoints"][person["visibility"] > 0]:
        axes[1].add_patch(plt.Circle((x, y), 0.2 * size, fill=False, color=colour, linewidth=0.8))
axes[1].set_title("PDJ@0.2 circles: torso (yellow), box diagonal (white)", fontsize=9)
plt.show()
median_torso = float(np.median(torso))
report.markdown(
    f"Keep the scale in mind: our people are small. Their median torso diameter is {median_torso:.1f} pixels, "
    f"so PDJ@0.05 asks for an error below {0.05 * median_torso:.1f} pixels and PDJ@0.2 below "
    f"{0.2 * median_torso:.1f}. The paper's LSP people are about 150 pixels tall, and its crops 220 pixels wide."
)

# %% [markdown]
# ## The cascade: look again, closer
#
# Stage 1 sees the whole person at $220 \times 220$ ($96 \times 64$ here): fine detail is lost.
# Making the input larger would make the network larger too. DeepPose instead adds **stages**
# $s = 2, 3, \ldots$ that look again at each joint separately, in a small box around its current
# estimate, at full resolution. For joint $i$, stage $s$ cuts out the square box
#
# $$b_i^{s} = \left( y_i^{(s-1)},\; \delta\, \mathrm{diam}(y^{(s-1)}),\; \delta\, \mathrm{diam}(y^{(s-1)}) \right)$$
#
# (centre, width, height), where $\mathrm{diam}$ is the torso diameter of the *previous
# prediction* and $\delta$ sets the box size relative to the body (the paper used $\delta = 1.0$
# on FLIC and $2.0$ on LSP; for the worked example above, a box of side $\delta \times 287.92$). A network of
# the same kind, with its own parameters $\theta_s$, regresses where joint $i$ is inside that box,
# and the estimate moves there:
#
# $$y_i^{(s)} = y_i^{(s-1)} + \begin{pmatrix} b_w & 0 \\ 0 & b_h \end{pmatrix} \psi_i\big(x(b_i^{s}); \theta_s\big)
# = N^{-1}\big(\psi_i(x(b_i^s); \theta_s);\, b_i^s\big).$$
#
# One stage network serves all the joints: it has $2K$ outputs, and for a crop made around joint
# $i$ only output $\psi_i$ is used (`models.DeepPoseCascadeStage`).
#
# ### Exercise 4: the refinement boxes


# %%
def refinement_boxes(pose, delta):
    """The cascade's box around every joint: b_i = (x_i, y_i, delta diam(y), delta diam(y)).

        diam(y) = || pose[5] - pose[12] ||     (left shoulder to right hip of this pose)

    Args:
        pose: (K, 2) the previous stage's prediction, image pixels (COCO's 17 joints).
        delta: the box side relative to diam(y).

    Returns:
        (K, 4) float array, one centre-form box (c_x, c_y, w, h) per joint.
    """
    ### BEGIN SOLUTION
    pose = np.asarray(pose, dtype=float)
    side = delta * np.linalg.norm(pose[5] - pose[12])
    return np.concatenate([pose, np.full((len(pose), 2), side)], axis=1)
    ### END SOLUTION


# %%
checks.check_refinement_boxes(refinement_boxes)

# %%
# points: 3
checks.check_refinement_boxes(refinement_boxes)
### BEGIN HIDDEN TESTS
checks.hidden_refinement_boxes(refinement_boxes)
### END HIDDEN TESTS

# %% [markdown]
# Here is what a second stage sees. We take a validation person, pretend a first stage
# predicted its joints a few pixels off (the truth plus noise), and cut the box of side
# $\delta \cdot \mathrm{diam}$ around six of the predicted joints with the course's implementation of
# your boxes (`geometry.cascade_crop_box`) and `geometry.crop_box`, which `cascade.refine` uses too. Each patch is
# centred on the *prediction* (the cross); the true joint (the dot) is somewhere inside, and
# the stage's job is to output the arrow, in units of the box.

# %%
DELTA, PATCH = 1.0, (48, 48)
person = val_people[7]
rng = np.random.default_rng(0)
guess = person["keypoints"] + rng.normal(0, 4, size=(17, 2))  # a pretend stage-1 prediction
boxes = geometry.cascade_crop_box(guess, geometry.torso_diameter(guess), DELTA, box_format="cxcywh")  # (17, 4)
shown = [COCO_KEYPOINTS.index(name)
         for name in ("nose", "left_elbow", "right_wrist", "left_hip", "right_knee", "left_ankle")]
fig, axes = plt.subplots(1, 1 + len(shown), figsize=(14, 2.6))
viz.show_image(person["image"], axes[0])
for joint, ax in zip(shown, axes[1:]):
    viz.draw_box(np.r_[boxes[joint, :2] - boxes[joint, 2:] / 2, boxes[joint, 2:]], axes[0], color="yellow")
    patch = geometry.crop_box(person["image"], boxes[joint], PATCH, box_format="cxcywh")
    normalized_truth = geometry.normalize_to_box(person["keypoints"][joint], boxes[joint], "cxcywh")
    truth = (normalized_truth + 0.5) * PATCH[1]  # box units -> patch pixels
    viz.show_image(patch, ax).set_title(COCO_KEYPOINTS[joint], fontsize=8)
    ax.plot(PATCH[1] / 2, PATCH[0] / 2, "w+", markersize=10)
    ax.annotate("", truth, (PATCH[1] / 2, PATCH[0] / 2), arrowprops={"arrowstyle": "->", "color": "yellow"})
    ax.plot(*truth, "o", color="yellow", markersize=4)
plt.show()

# %% [markdown]
# ### Training a stage on simulated predictions
#
# Which crops should stage 2 be trained on? The obvious answer, crops around stage 1's
# predictions on the training images, gives one crop per joint and image, and those
# predictions are better than on new images (stage 1 has learnt the training set). DeepPose
# instead **simulates** predictions: it measures how far stage 1 is off on the training set,
# joint by joint, fits a normal distribution to those displacements, and draws as many
# simulated predictions as it likes:
#
# $$\tilde y_i = y_i + \delta_i, \qquad \delta_i \sim \mathcal{N}\big(\mu_i, \Sigma_i\big)
# \quad (\text{mean and covariance of } y_i^{(s-1)} - y_i \text{ over the training set}).$$
#
# The paper drew 40 per training image and joint (about 12 million crops per stage on LSP,
# mirrored images included). We draw new ones every epoch, and measure the
# displacements in units of $\mathrm{diam}(y)$ so that one distribution serves people of every
# size (`cascade.displacement_statistics`, `cascade.CascadeDataset`). The target of each crop is
# the true joint in the crop's box units, $N(y_i; \tilde b_i)$.
#
# ## The experiment: does stage 2 help?
#
# We train stage 1, measure its errors, train a stage 2 on simulated predictions, and compare
# stage 1 alone with stage 1 + 2 on the validation set: the mean pixel error and PDJ at
# thresholds 0.05, 0.1 and 0.2 of the torso diameter (people without a labelled torso pair are
# left out of PDJ; the table's note says how many). The paper chose $\delta$ on held-out images among a few values; we
# train stage 2 twice, with the paper's two values $\delta = 1.0$ (FLIC) and $\delta = 2.0$
# (LSP), and report both. On a laptop CPU the whole experiment takes a few minutes (on a GPU,
# well under one).
#
# **Stage 1**: `deeppose_tiny` with `losses.RegressionLoss` ($L_2$ on box-normalised
# coordinates), scale and rotation augmentation, no flips (the synthetic people wear left/right
# tints, chapter 00).

# %% tags=["experiment"]
STEPS = training.budget(full=1200, fast=60)
stage1 = models.build("deeppose_tiny", seed=0)  # one seed for the weights, the batches and the augmentation
history1 = training.fit(stage1, train_data, val_data, losses.RegressionLoss(), STEPS, batch_size=32, lr=1e-3,
                        eval_metric="mean_error", seed=0)
print(f"{history1.images_per_second:.0f} training images per second on {history1.device}")
history1.plot(metric="mean_error")
plt.show()

# %% tags=["experiment"]
first = training.predict(stage1, val_data)  # stage-1 predictions in image pixels, with the truth beside them
gt, visibility = first.gt_keypoints, first.gt_visibility
fig, axes = plt.subplots(1, 6, figsize=(13, 2.4))
for ax, index in zip(axes, range(6)):
    viz.show_image(val_data.samples[index]["image"], ax)
    viz.draw_pose(first.keypoints[index], visibility[index], ax=ax, alpha=0.5, markersize=0, linewidth=1)
    viz.draw_errors(first.keypoints[index], gt[index], visibility[index], ax=ax, color="red")
fig.suptitle("stage 1: the predicted skeleton, and a red line from each true joint (white) to its prediction",
             fontsize=9)
plt.show()

# %% [markdown]
# Stage 1's displacements on the training set, in units of the torso diameter, with the fitted
# normal distributions (two standard deviations) for a few joints: these distributions are what
# stage 2's training crops are drawn from.

# %% tags=["experiment"]
train_eval = training.top_down_data(data.default_split_dir("single/train"), (96, 64), limit=training.budget(2000, 256))
seen = training.predict(stage1, train_eval)
mean, std = cascade.displacement_statistics(seen.keypoints, seen.gt_keypoints, seen.gt_visibility)
usable = (seen.gt_visibility[:, 5] > 0) & (seen.gt_visibility[:, 12] > 0)
diam = cascade.body_diameters(seen.gt_keypoints[usable])
displacement = (seen.keypoints[usable] - seen.gt_keypoints[usable]) / diam[:, None, None]  # (M, 17, 2)
fig, ax = plt.subplots(figsize=(4.5, 4.5))
for name, colour in [("nose", "tab:green"), ("left_wrist", "tab:orange"), ("right_ankle", "tab:blue")]:
    joint = COCO_KEYPOINTS.index(name)
    ax.scatter(*displacement[seen.gt_visibility[usable, joint] > 0, joint].T, s=3, alpha=0.4, color=colour, label=name)
    ax.add_patch(Ellipse(mean[joint], *(4 * std[joint]), fill=False, color=colour, linewidth=2))
ax.set_xlim(-1, 1)
ax.set_ylim(1, -1)
ax.set_aspect("equal")
ax.set_xlabel("x displacement / diam(y)")
ax.set_ylabel("y displacement / diam(y)")
ax.legend(fontsize=8)
plt.show()
print("standard deviation per joint (x, y), in units of diam(y):", np.round(std.mean(axis=0), 3))

# %% [markdown]
# **Stage 2**: the same small architecture on $48 \times 48$ patches, fresh parameters, trained
# with `cascade.CascadeLoss` (the $L_2$ loss on the patch's own joint) on crops around simulated
# predictions, once per $\delta$. Then `cascade.refine` runs it on stage 1's validation predictions.


# %% tags=["experiment"]
def train_stage2(delta):
    """Train a second stage with boxes of side delta * diam(y); return it and its training history."""
    with training.seeded(0):  # the stage's own head is drawn from the seed too
        stage = models.DeepPoseCascadeStage(models.build("deeppose_tiny", input_size=PATCH))
    patches = cascade.CascadeDataset(train_data.samples, mean, std, delta=delta, patch_size=PATCH)
    history = training.fit(stage, patches, None, cascade.CascadeLoss(), STEPS, batch_size=32, lr=1e-3, seed=0)
    return stage, history


refined = {}
for delta in (1.0, 2.0):
    stage2, history2 = train_stage2(delta)
    refined[delta] = cascade.refine(stage2, val_data.samples, first.keypoints, delta=delta, patch_size=PATCH)
    print(f"delta = {delta}: {len(history2.loss)} steps, {history2.images_per_second:.0f} patches per second")

# %% tags=["experiment"]
scored = (visibility[:, 5] > 0) & (visibility[:, 12] > 0)  # PDJ needs the torso pair
diameters = metrics.torso_diameter(gt[scored])


def scores(name, predictions):
    """One row of the table: the mean pixel error and PDJ at three thresholds."""
    errors = np.linalg.norm(predictions - gt, axis=-1)[visibility > 0]
    row = {"predictions": name, "mean error (px)": float(errors.mean())}
    for threshold in (0.05, 0.1, 0.2):
        pdj = metrics.pdj(predictions[scored], gt[scored], visibility[scored], diameters, threshold)
        row[f"PDJ@{threshold}"] = pdj.mean
    return row


rows = [scores("stage 1", first.keypoints)] + [scores(f"stage 1 + 2, delta = {d}", refined[d]) for d in (1.0, 2.0)]
one, two = rows[0], rows[1]
helped = two["mean error (px)"] < one["mean error (px)"] and two["PDJ@0.05"] > one["PDJ@0.05"]
note = (f"Stage 2 (delta = 1) moved the mean error from {one['mean error (px)']:.2f} to "
        f"{two['mean error (px)']:.2f} px "
        f"and PDJ@0.05 from {one['PDJ@0.05']:.3f} to {two['PDJ@0.05']:.3f}: "
        + ("the paper's direction (on LSP, PCP rose from 0.54 after stage 1 to 0.60 after stage 2)."
           if helped else "not the paper's direction in this run"
           + (" (the fast profile trains each stage for a few dozen steps only)." if training.fast_profile() else "."))
        + f" With delta = 2 (a box twice as large, seen at half the resolution) the mean error went to "
          f"{rows[2]['mean error (px)']:.2f} px and PDJ@0.05 to {rows[2]['PDJ@0.05']:.3f}."
          f" PDJ leaves out the {(~scored).sum()} of {len(scored)} people ({(~scored).mean():.1%}) without a "
          "labelled torso pair.")
table = report.experiment_table(rows, chapter="01", title="DeepPose: stage 1 vs stage 1 + 2 (validation set)",
                                note=note)
table

# %% tags=["experiment"]
thresholds = np.linspace(0, 0.3, 31)
compared = {"stage 1": first.keypoints, "stage 1 + 2, delta = 1": refined[1.0], "stage 1 + 2, delta = 2": refined[2.0]}
per_joint = {}  # name -> (17,) mean error of each joint, pixels
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 2]})
for name, predictions in compared.items():
    curve = [metrics.pdj(predictions[scored], gt[scored], visibility[scored], diameters, t).mean for t in thresholds]
    axes[0].plot(thresholds, curve, label=name)
    errors = np.where(visibility > 0, np.linalg.norm(predictions - gt, axis=-1), np.nan)  # (N, 17)
    per_joint[name] = np.nanmean(errors, axis=0)
    axes[1].plot(per_joint[name], "o-", label=name)
axes[0].set_xlabel("threshold (fraction of the torso diameter)")
axes[0].set_ylabel("PDJ")
axes[0].legend(fontsize=8)
axes[1].set_xticks(range(17), COCO_KEYPOINTS, rotation=60, ha="right", fontsize=8)
axes[1].set_ylabel("mean error (px)")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()
joint_change = per_joint["stage 1 + 2, delta = 1"] - per_joint["stage 1"]  # (17,) pixels, negative = better
order = np.argsort(joint_change)
print("delta = 1, largest gains: ", ", ".join(f"{COCO_KEYPOINTS[k]} {joint_change[k]:+.1f} px" for k in order[:4]))
print("delta = 1, smallest gains:", ", ".join(f"{COCO_KEYPOINTS[k]} {joint_change[k]:+.1f} px" for k in order[-4:]))

# %% [markdown]
# Where did the refinement help, and where not? Below, the errors of stage 1 (red) and of stage
# 1 + 2 with $\delta = 1$ (yellow), from each true joint (white), on the four validation people
# whose mean error dropped the most and the two whose error rose the most. A second stage can
# only correct a joint whose true position is inside its box: a wrist predicted on the wrong side
# of the body, or a left/right swap, is out of reach.

# %% tags=["experiment"]
gain = np.linalg.norm(refined[1.0] - gt, axis=-1) - np.linalg.norm(first.keypoints - gt, axis=-1)  # (N, 17) pixels
change = np.nanmean(np.where(visibility > 0, gain, np.nan), axis=1)  # (N,) the change of each person's mean error
order = np.argsort(change)
fig, axes = plt.subplots(1, 6, figsize=(13, 2.6))
for ax, index in zip(axes, list(order[:4]) + list(order[-2:])):
    viz.show_image(val_data.samples[int(index)]["image"], ax)
    viz.draw_errors(first.keypoints[index], gt[index], visibility[index], ax=ax, color="red", markersize=6)
    viz.draw_errors(refined[1.0][index], gt[index], visibility[index], ax=ax, color="yellow", markersize=6)
    ax.set_title(f"mean error {change[index]:+.1f} px", fontsize=9)
plt.show()

# %% [markdown]
# ## What the paper reported
#
# DeepPose was evaluated on **FLIC** (Frames Labeled In Cinema: 4,000 training and 1,000 test
# images from Hollywood films, 10 upper-body joints) and **LSP** (Leeds Sports Pose: 11,000
# training images with the extended set, 1,000 test images, 14 joints), with PCP on LSP and PDJ
# (torso diameter) on both.
#
# - **PCP at 0.5 on LSP** (a limb is correct when both of its ends are within half the limb's
#   length of the truth; the average is over the four limb types):
#
#   | | upper arm | lower arm | upper leg | lower leg | average |
#   |---|---|---|---|---|---|
#   | DeepPose, stage 1 | 0.50 | 0.27 | 0.74 | 0.65 | 0.54 |
#   | DeepPose, stage 2 | 0.56 | 0.36 | 0.78 | 0.70 | 0.60 |
#   | DeepPose, stage 3 | 0.56 | 0.38 | 0.77 | 0.71 | 0.61 |
#
#   LSP's PCP scores ten parts: the eight limbs, the torso (neck to pelvis) and the head (neck
#   to head top). COCO has no neck, pelvis or head top, so the course's COCO-PCP
#   (`metrics.pcp`, chapter 08) scores the torso's two sides (shoulder to hip) instead of
#   LSP's torso and head: its numbers are not comparable with LSP's.
#
#   The cascade added 7 points of average PCP, most of it in the second stage, and most for the
#   lower arms (the wrists are the hardest joints). The third stage added little. The stretch
#   exercise below writes what a third stage does to the pose.
# - **PDJ on FLIC** is reported as curves over the normalised distance (elbows and wrists, and
#   the first three stages of the cascade) rather than as a table; the refined stages lie above
#   stage 1, and DeepPose above the earlier methods it was compared with.
# - **Settings**: $\delta$ (called $\sigma$ in the paper) was chosen on 50 held-out images:
#   1.0 for FLIC (among 0.8, 1.0, 1.2) and 2.0 for LSP (among 1.5, 1.7, 2.0, 2.3); stages were
#   added until the held-out score stopped improving, which gave $S = 3$ on both data sets.
#   Stage 1 trained for about 3 days on about 100 workers, each refinement stage for about 7
#   days (it sees about 40 times more, simulated, data); inference took about 0.1 s per image on
#   a 12-core CPU.
#
# ## Check your understanding
#
# 1. A network outputs $N = (0.6, -0.1)$ for a wrist, with the box $b = (100, 200, 80, 160)$
#    (centre form). Where is the wrist in the image, and is it inside the box?
#
#    <details><summary>Answer</summary>$x = 100 + 80 \cdot 0.6 = 148$, $y = 200 + 160 \cdot (-0.1) = 184$.
#    It is outside the box, to the right: $|N_x| = 0.6 > 0.5$.</details>
#
# 2. A function that maps predictions back with the box's height as the centre's $y$ (the slip
#    of the worked inverse, made in every step) still gives cascade boxes of the right size. Why?
#
#    <details><summary>Answer</summary>It moves every back-transformed point by the same
#    $h - c_y$ pixels (150 in the example). The box size depends on a distance between two
#    predicted joints, and a common shift cancels in a difference: 287.92 pixels either way. The
#    positions are still wrong, so the crops are cut in the wrong place.</details>
#
# 3. Why does stage 2 train on simulated predictions rather than on stage 1's predictions for the
#    training images?
#
#    <details><summary>Answer</summary>There is only one stage-1 prediction per joint and image,
#    and it is too good: stage 1 has fitted its training images, so its errors there are smaller
#    than on new images. Sampling displacements from the fitted error distribution gives as many
#    crops as wanted, with realistic offsets, drawn anew every epoch.</details>
#
# 4. PDJ@0.2 with the torso diameter: a person is photographed bending towards the camera, so that
#    its torso looks very short. What happens to its joints' score, and what would you use instead?
#
#    <details><summary>Answer</summary>The torso diameter shrinks, the radius 0.2 diam(y) with it,
#    and even good predictions count as missed. A size that does not collapse, such as the box
#    diagonal (or, as in COCO, the square root of the area), avoids this.</details>
#
# 5. Stage 1 predicted a person's left wrist on their right hip. Can stage 2 fix it?
#
#    <details><summary>Answer</summary>Hardly: the refinement box is centred on the prediction and
#    its side is $\delta\,\mathrm{diam}(y)$, so if the true wrist is farther away than half a side it
#    is not in the crop at all. The cascade refines; it does not search. Heatmap methods
#    (chapter 02 on) look at the whole crop for every joint.</details>

# %% [markdown]
# ## Stretch exercise: a third stage
#
# This one is optional (bonus points). DeepPose stopped at $S = 3$ stages. Stage $s$ cuts its
# boxes around the pose of stage $s - 1$, centre **and** size: the box side
# $\delta\,\mathrm{diam}(y^{(s-1)})$ changes when stage 2 moves a shoulder or a hip. Write the
# cascade's bookkeeping: given stage 1's pose and what each later stage regressed (in its own
# boxes' units), return the pose after every stage,
#
# $$y_i^{(s)} = N^{-1}\big(\psi_i^{(s)};\, b_i^{s}\big), \qquad b_i^{s} = \big(y_i^{(s-1)},\, \delta\,\mathrm{diam}(y^{(s-1)}),\, \delta\,\mathrm{diam}(y^{(s-1)})\big).$$
#
# Your `refinement_boxes` gives the boxes. A third trained stage would be one more
# `train_stage2`-like run on crops around simulated stage-2 predictions (with stage 2's smaller
# errors); this exercise is what runs it.


# %%
def cascade_poses(pose, stage_outputs, delta):
    """The pose after each stage of the cascade.

    Args:
        pose: (K, 2) stage 1's prediction, image pixels (COCO's 17 joints).
        stage_outputs: (S - 1, K, 2) what stages 2..S regressed, each in the units of its boxes.
        delta: the box side relative to diam(y).

    Returns:
        (S, K, 2) float array: stage 1's pose, then the pose after each later stage.
    """
    ### BEGIN SOLUTION
    poses = [np.asarray(pose, dtype=float)]
    for outputs in np.asarray(stage_outputs, dtype=float):
        boxes = refinement_boxes(poses[-1], delta)  # (K, 4) around the current pose
        poses.append(boxes[:, :2] + boxes[:, 2:] * outputs)
    return np.stack(poses)
    ### END SOLUTION


# %%
checks.check_cascade_poses(cascade_poses)

# %%
# bonus: 2
checks.check_cascade_poses(cascade_poses)
### BEGIN HIDDEN TESTS
checks.hidden_cascade_poses(cascade_poses)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - DeepPose regresses the $2K$ joint coordinates directly, normalised by a box around the
#   person: $N(y_i; b) = \mathrm{diag}(1/b_w, 1/b_h)(y_i - b_c)$; its inverse maps predictions back.
# - A worked inverse is checked step by step: one wrong box centre moves one joint, and then
#   every distance measured from it.
# - The network is AlexNet with a $2K$ output, trained with an $L_2$ loss on normalised coordinates.
# - PDJ counts the joints within *threshold* $\times$ *torso diameter*; the torso collapses for
#   side views, the box diagonal does not.
# - The cascade cuts a box of side $\delta\,\mathrm{diam}(y)$ around every predicted joint and
#   regresses the correction inside it; later stages train on simulated predictions.
# - The chapter's table says how much stage 2 changed the error in this run, for $\delta = 1$
#   and $\delta = 2$; a stage refines, it cannot fetch a joint from outside its box.
