# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 09: Many people in one image
#
# Every model so far was handed one person, nicely cropped. Real images hold crowds: people
# of every size, overlapping, half hidden, some barely a few pixels tall. This chapter builds
# the **top-down** answer end to end on our synthetic scenes (find each person with a
# detector, crop, run a single-person pose network, remove duplicates, score each pose, write
# COCO results) and measures it with the COCO AP of chapter 08. It then looks at the two
# ideas of G-RMI that made top-down methods competitive in 2017 (a heatmap + offset head and
# a keypoint-aware pose score), and sketches the **bottom-up** alternative: find all joints
# first, then group them into people with associative-embedding tags.
#
# ## Learning goals
#
# After this chapter you can
#
# - run and explain each stage of a top-down multi-person pipeline: person detector, crops,
#   pose network, mapping back to the image, OKS-NMS, pose scores, COCO results;
# - map crop predictions to image coordinates and write them in COCO's results format;
# - implement OKS-based non-maximum suppression and keypoint-aware rescoring;
# - describe G-RMI's disk heatmaps + offset fields and its Hough-voting aggregation;
# - group joint detections into people by their associative-embedding tags;
# - measure how much AP the detector costs (ground-truth boxes vs detected boxes) and how much
#   a better pose score buys.
#
# ## The papers
#
# - **G-RMI**: G. Papandreou, T. Zhu, N. Kanazawa, A. Toshev, J. Tompson, C. Bregler,
#   K. Murphy, *Towards Accurate Multi-person Pose Estimation in the Wild*, CVPR 2017
#   ([arXiv:1701.01779](https://arxiv.org/abs/1701.01779)).
# - **Mask R-CNN**: K. He, G. Gkioxari, P. Dollár, R. Girshick, *Mask R-CNN*, ICCV 2017
#   ([arXiv:1703.06870](https://arxiv.org/abs/1703.06870)).
# - **Associative Embedding**: A. Newell, Z. Huang, J. Deng, *Associative Embedding: End-to-End
#   Learning for Joint Detection and Grouping*, NeurIPS 2017
#   ([arXiv:1611.05424](https://arxiv.org/abs/1611.05424)).
# - The top-down details used here (OKS-NMS at 0.9, box score x keypoint score) follow the
#   official code of **SimpleBaseline** (B. Xiao, H. Wu, Y. Wei, ECCV 2018,
#   [arXiv:1804.06208](https://arxiv.org/abs/1804.06208)) and **HRNet** (K. Sun, B. Xiao,
#   D. Liu, J. Wang, CVPR 2019, [arXiv:1902.09212](https://arxiv.org/abs/1902.09212)).
# - Our person detector is a small **CenterNet**: X. Zhou, D. Wang, P. Krähenbühl, *Objects as
#   Points*, 2019 ([arXiv:1904.07850](https://arxiv.org/abs/1904.07850)). G-RMI and Mask R-CNN
#   used Faster R-CNN; any detector that outputs scored boxes fits the pipeline.

# %%
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import data, failures, geometry, grouping, heatmaps, metrics, report, top_down, training, viz, zoo
from course_lib import multi_person as mp
from course_lib.grading import ch09_multi_person as checks
from course_lib.keypoints import COCO_KEYPOINTS, COCO_SIGMAS
from course_lib.models.detector import PersonDetector, detection_targets, train_detector
from course_lib.models.keypoint_heads import GRMILoss, GRMIPoseNet

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80
torch.manual_seed(0)

# %% [markdown]
# ## 1. The scenes
#
# The multi-person set has 256 x 256 images with 2 to 5 people each, in COCO format: every
# person has 17 keypoints, a box (around the visible silhouette), an area, and people occlude
# each other. We evaluate on the validation scenes.

# %%
val = mp.load_scenes(data.default_split_dir("multi/val"), limit=training.budget(200, 40))
pose_model = zoo.pretrained("simplebaseline_tiny")
heights = np.concatenate([boxes[:, 3] for boxes in val.boxes])
# the demo image: the one with the most people at least 50 pixels tall
demo = int(np.argmax([(boxes[:, 3] >= 50).sum() + 0.01 * len(boxes) for boxes in val.boxes]))
print(f"{len(val)} validation images, {len(heights)} people; "
      f"box heights from {heights.min():.0f} to {heights.max():.0f} px (median {np.median(heights):.0f})")

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, n in zip(axes[:3], [demo, (demo + 1) % len(val), (demo + 2) % len(val)]):
    viz.show_image(val.images[n], ax)
    keypoints, visibility = val.people(n)
    viz.draw_pose(keypoints, visibility, ax=ax, linewidth=1.2, markersize=8)
    for box in val.boxes[n]:
        viz.draw_box(box, ax, linewidth=1.0)
    ax.set_title(f"image {val.image_ids[n]}: {len(val.boxes[n])} people", fontsize=9)
axes[3].hist(heights, bins=25, color="tab:blue")
axes[3].set_xlabel("person box height (px)")
axes[3].set_ylabel("people")
axes[3].set_title("many people are small", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## 2. Top-down, step 1: find the people
#
# The pipeline needs boxes. Our detector (`models.detector.PersonDetector`, a small
# CenterNet) thinks of a person as the **centre of its box**: at every cell of a
# stride-4 grid it predicts the probability that a box centre is there, the box's width and
# height, and the sub-cell offset of the centre. The training target for the centre map is a
# Gaussian bump at each person's centre (left), and decoding keeps the local peaks of the
# predicted map: no box NMS is needed.

# %%
targets = detection_targets([val.boxes[demo]], val.images.shape[1:3])
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
viz.overlay_heatmap(val.images[demo], targets["heatmap"][0, 0].numpy(), ax=axes[0], alpha=0.6)
axes[0].set_title("centre-map target (stride 4)", fontsize=9)
viz.show_image(val.images[demo], axes[1])
for box in val.boxes[demo]:
    viz.draw_box(box, axes[1], color="yellow")
    axes[1].plot(box[0] + box[2] / 2, box[1] + box[3] / 2, "y+", markersize=10)
axes[1].set_title("boxes and their centres", fontsize=9)
fig.tight_layout()

# %% [markdown]
# We train it on the 1000 training scenes (with horizontal flips: a mirrored person is still a
# person, so the left/right tints do not matter to a detector). On a laptop CPU this is the
# slowest cell of the chapter, a couple of minutes; on a GPU, seconds.

# %% tags=["experiment"]
train = mp.load_scenes(data.default_split_dir("multi/train"), limit=training.budget(None, 200))
with training.seeded(0):  # the same initial weights for a rerun
    detector = PersonDetector.tiny()
detector_losses = train_detector(detector, train.tensors(), train.boxes, steps=training.budget(400, 20),
                                 batch_size=16, device="auto", progress=True)
detections = mp.detect_people(detector, val.tensors(), threshold=0.05, device="auto")
recall = mp.detection_recall(detections, val)
print(f"{sum(len(b) for b, _ in detections)} detections on {len(val)} images; "
      f"{recall:.1%} of the people are found with IoU >= 0.5")

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
axes[0].plot(detector_losses, color="0.7", lw=0.8)
axes[0].plot(np.convolve(detector_losses, np.ones(10) / 10, mode="valid"), color="tab:blue")
axes[0].set_yscale("log")
axes[0].set_xlabel("step")
axes[0].set_ylabel("detection loss")
for ax, n in zip(axes[1:], [demo, (demo + 1) % len(val)]):
    viz.show_image(val.images[n], ax)
    for box, score in zip(*detections[n]):
        if score >= 0.2:
            viz.draw_box(box, ax, color="yellow", label=f"{score:.2f}")
    ax.set_title(f"detections with score >= 0.2, image {val.image_ids[n]}", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## 3. Step 2: a pose for every box, back in image coordinates
#
# Each box becomes a crop exactly as in chapter 06: widened to the pose network's aspect ratio
# (64:96 here), padded by 1.25, warped to 96 x 64. The network (the tiny SimpleBaseline, trained
# on single-person images) predicts heatmaps at stride 4; the decoded peaks live in **heatmap
# pixels** of that crop. Here are the crops of the demo image's ground-truth boxes, with the
# predictions drawn in crop pixels ($x = u \cdot 4$).

# %%
gt_boxes = [mp.ground_truth_detections(val)[demo]]
one_image = mp.Scenes(val.images[demo:demo + 1], val.image_ids[demo:demo + 1], val.boxes[demo:demo + 1],
                      val.ground_truth)
input_size, heatmap_size = training.model_sizes(pose_model)
crops = top_down.TopDownDataset(mp.crop_samples(one_image, gt_boxes), input_size=input_size,
                                heatmap_size=heatmap_size)
batch = torch.utils.data.default_collate([crops[i] for i in range(len(crops))])
with torch.no_grad():
    crop_heatmaps = pose_model.cpu().eval()(batch["image"])
heatmap_points, keypoint_scores = heatmaps.decode_dark(crop_heatmaps, sigma=2.0)  # heatmap pixels
fig, axes = plt.subplots(1, len(crops), figsize=(1.6 * len(crops), 2.6))
for i, ax in enumerate(np.atleast_1d(axes)):
    viz.show_image(batch["image"][i], ax)
    viz.draw_pose(heatmap_points[i].numpy() * pose_model.stride, ax=ax, linewidth=1, markersize=6)
fig.suptitle("one crop per box; predictions in crop pixels", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ### Exercise 1: crop predictions to COCO results
#
# A crop with centre $c = (c_x, c_y)$ and size $s = (s_w, s_h)$ in the image (no rotation at
# test time) is shown on a heatmap of $h \times w$ pixels, so heatmap pixel $(u, v)$ is
#
# $$x = c_x + \Big(u - \frac{w}{2}\Big)\frac{s_w}{w}, \qquad y = c_y + \Big(v - \frac{h}{2}\Big)\frac{s_h}{h}$$
#
# in the image (the centre of the heatmap is the centre of the crop; each heatmap pixel is
# $s_w / w$ image pixels wide). COCO wants each pose as a dict: `image_id`, `category_id`
# (1, person), `keypoints` as one flat list $[x_1, y_1, c_1, \dots, x_{17}, y_{17}, c_{17}]$
# (the $c_k$ are keypoint confidences, which COCO's evaluation ignores) and the pose's `score`,
# which ranks it for AP. The file must be JSON, so plain Python numbers only.


# %%
def crop_predictions_to_coco(heatmap_points, keypoint_scores, pose_scores, centers, scales, heatmap_size, image_ids):
    """Map per-crop predictions (heatmap pixels) to the image and write them as COCO results.

        x = c_x + (u - w / 2) * s_w / w,     y = c_y + (v - h / 2) * s_h / h

    Args:
        heatmap_points: (P, K, 2) heatmap pixels u, v of each crop's keypoints.
        keypoint_scores: (P, K) keypoint confidences.
        pose_scores: (P,) one score per pose.
        centers, scales: (P, 2) each crop's centre (c_x, c_y) and size (s_w, s_h), image pixels.
        heatmap_size: (h, w), height first.
        image_ids: (P,) the image each pose belongs to.

    Returns:
        a list of P dicts {"image_id": int, "category_id": 1,
        "keypoints": [x1, y1, c1, ..., xK, yK, cK] (floats), "score": float}.
    """
    ### BEGIN SOLUTION
    h, w = heatmap_size
    points = np.asarray(heatmap_points, dtype=float)
    centers, scales = np.asarray(centers, dtype=float), np.asarray(scales, dtype=float)
    x = centers[:, None, 0] + (points[..., 0] - w / 2) * scales[:, None, 0] / w  # (P, K)
    y = centers[:, None, 1] + (points[..., 1] - h / 2) * scales[:, None, 1] / h
    triplets = np.stack([x, y, np.asarray(keypoint_scores, dtype=float)], axis=-1)  # (P, K, 3)
    return [
        {"image_id": int(image_id), "category_id": 1, "keypoints": triplets[p].ravel().tolist(),
         "score": float(pose_scores[p])}
        for p, image_id in enumerate(image_ids)
    ]
    ### END SOLUTION


# %%
checks.check_crop_predictions_to_coco(crop_predictions_to_coco)

# %%
# points: 3
checks.check_crop_predictions_to_coco(crop_predictions_to_coco)
### BEGIN HIDDEN TESTS
checks.hidden_crop_predictions_to_coco(crop_predictions_to_coco)
### END HIDDEN TESTS

# %% [markdown]
# Back on the image: each person's pose, from its own crop. (The figure uses the course's
# implementation of what you just wrote, `multi_person.crop_predictions_to_coco`.)

# %%
results = mp.crop_predictions_to_coco(heatmap_points.numpy(), keypoint_scores.numpy(),
                                      np.ones(len(crops)), batch["center"].numpy(), batch["scale"].numpy(),
                                      heatmap_size, batch["image_id"].numpy())
fig, ax = plt.subplots(figsize=(4, 4))
viz.show_image(val.images[demo], ax)
for result, center, scale in zip(results, batch["center"].numpy(), batch["scale"].numpy()):
    viz.draw_box([*(center - scale / 2), *scale], ax, color="white", linewidth=0.8)
    viz.draw_pose(np.reshape(result["keypoints"], (17, 3))[:, :2], ax=ax, linewidth=1.2, markersize=8)
ax.set_title("poses from ground-truth boxes (white: the crops)", fontsize=9)

# %% [markdown]
# ## 4. Step 3: one person, one pose (OKS-NMS)
#
# A detector often fires twice on one person (two slightly different boxes), and each box gives
# a pose. Both poses would be scored; the second is a false positive. Box NMS with IoU would
# also remove two genuinely different people standing close together, whose boxes overlap a
# lot. G-RMI proposed to compare **poses** instead: OKS-based NMS. Take the best-scoring pose,
# drop every other pose whose OKS with it exceeds a threshold (0.9 in the SimpleBaseline and
# HRNet code), repeat with the best pose left. Between two *predictions* there is no
# ground-truth area, so the OKS uses the mean of the two poses' areas as $s^2$ and averages
# all $K$ keypoints:
#
# $$\text{OKS}(a, b) = \frac{1}{K}\sum_i \exp\!\Big(-\frac{\lVert a_i - b_i\rVert^2}{2\, \bar s^2 k_i^2}\Big), \qquad \bar s^2 = \frac{\text{area}_a + \text{area}_b}{2},\quad k_i = 2\sigma_i .$$
#
# ### Exercise 2: OKS-NMS


# %%
def oks_nms(keypoints, scores, areas, threshold, sigmas=COCO_SIGMAS):
    """Greedy non-maximum suppression of the poses of one image with OKS as the overlap.

    Repeat: take the remaining pose with the highest score (equal scores: the later index first,
    the order of the official ``scores.argsort()[::-1]``),
    keep it, and drop every remaining pose whose OKS with it is > threshold, where

        OKS(a, b) = mean_i exp(-||a_i - b_i||^2 / (2 s^2 k_i^2)),
        s^2 = (area_a + area_b) / 2,  k_i = 2 sigma_i.

    Args:
        keypoints: (N, K, 2) poses in image pixels.
        scores: (N,) pose scores.
        areas: (N,) the poses' areas in pixels^2.
        threshold: poses with OKS > threshold are suppressed.
        sigmas: (K,) the per-keypoint constants sigma_i.

    Returns:
        integer array of the kept indices, in the order they were kept (best first).
    """
    ### BEGIN SOLUTION
    keypoints = np.asarray(keypoints, dtype=float)
    areas = np.asarray(areas, dtype=float)
    variances = (2 * np.asarray(sigmas, dtype=float)) ** 2  # k_i^2
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")[::-1]  # best first; ties: later first
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        d2 = np.sum((keypoints[rest] - keypoints[best]) ** 2, axis=-1)  # (R, K)
        s2 = (areas[best] + areas[rest]) / 2  # (R,)
        oks = np.exp(-d2 / (2 * s2[:, None] * variances)).mean(axis=-1)
        order = rest[oks <= threshold]
    return np.array(keep, dtype=int)
    ### END SOLUTION


# %%
checks.check_oks_nms(oks_nms)

# %%
# points: 3
checks.check_oks_nms(oks_nms)
### BEGIN HIDDEN TESTS
checks.hidden_oks_nms(oks_nms)
### END HIDDEN TESTS

# %% [markdown]
# To see it work, we give every person of the demo image three jittered boxes, as a nervous
# detector would, estimate a pose in each, and let `metrics.oks_nms` (the course's
# implementation) clean up. At 0.9 only near-identical poses go: two crops of one small person
# often disagree by a pixel or two, which costs a lot of OKS on a small person. A lower
# threshold removes more duplicates, at the risk of removing a real person who overlaps
# another one.

# %%
rng = np.random.default_rng(9)
jittered = np.concatenate([val.boxes[demo] + rng.normal(0, 0.06, size=val.boxes[demo].shape)
                           * np.tile(val.boxes[demo][:, 2:], 2) for _ in range(3)])
noisy = [(jittered, rng.uniform(0.5, 1.0, size=len(jittered)))]
poses = mp.estimate_poses(pose_model, one_image, noisy)
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
for ax, threshold in zip(axes, [None, 0.9, 0.5]):
    index = np.arange(len(poses)) if threshold is None else metrics.oks_nms(poses.keypoints, poses.box_scores,
                                                                           poses.areas, threshold)
    viz.show_image(val.images[demo], ax)
    viz.draw_pose(poses.keypoints[index], ax=ax, linewidth=1, markersize=6, alpha=0.8)
    title = "before OKS-NMS" if threshold is None else f"after OKS-NMS at {threshold}"
    ax.set_title(f"{title}: {len(index)} poses for {len(val.boxes[demo])} people", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## 5. Step 4: how sure are we of a pose? (G-RMI's rescoring)
#
# COCO's AP ranks all poses of the data set by their score. The natural score, the detector's
# box score, says "there is a person here", not "this pose is right": a confidently detected
# person seen from behind may get a poor pose. G-RMI replaced the box score by a
# **keypoint-aware** score, the average over keypoints of each keypoint's maximal heatmap
# activation. The SimpleBaseline and HRNet code keep both factors and ignore keypoints the
# network is unsure of:
#
# $$\text{score}_n = \text{box}_n \cdot \frac{\sum_k c_{nk}\,[c_{nk} > \tau]}{\sum_k [c_{nk} > \tau]}, \qquad \tau = 0.2 ,$$
#
# with $c_{nk}$ the maximum of keypoint $k$'s heatmap, and score 0 when no keypoint passes $\tau$.
#
# ### Exercise 3: keypoint-aware rescoring


# %%
def rescore_poses(box_scores, keypoint_scores, threshold=0.2):
    """Box score x the mean of the confident keypoint scores (0 when no keypoint is confident).

        score_n = box_n * mean{ c_nk : c_nk > threshold }

    Args:
        box_scores: (N,) detector scores.
        keypoint_scores: (N, K) keypoint confidences (heatmap maxima).
        threshold: keypoints with confidence <= threshold are left out of the mean.

    Returns:
        (N,) float array.
    """
    ### BEGIN SOLUTION
    box_scores = np.asarray(box_scores, dtype=float)
    keypoint_scores = np.asarray(keypoint_scores, dtype=float)
    confident = keypoint_scores > threshold
    count = confident.sum(axis=1)
    total = np.where(confident, keypoint_scores, 0.0).sum(axis=1)
    return box_scores * np.where(count > 0, total / np.maximum(count, 1), 0.0)
    ### END SOLUTION


# %%
checks.check_rescore_poses(rescore_poses)

# %%
# points: 2
checks.check_rescore_poses(rescore_poses)
### BEGIN HIDDEN TESTS
checks.hidden_rescore_poses(rescore_poses)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. G-RMI's head: disks and offsets
#
# G-RMI's pose network does not regress Gaussian heatmaps. For each keypoint $k$ it predicts
# three maps (so $3K$ channels, a `models.keypoint_heads.GRMIHead` on any trunk):
#
# - a **disk heatmap** $h_k(x_j)$: the probability that position $x_j$ lies within $R$ pixels
#   of the keypoint, trained as $K$ independent logistic classifications;
# - a 2-D **offset field** $F_k(x_j) = l_k - x_j$: the vector from $x_j$ to the keypoint,
#   trained (with a Huber loss) only inside the disk.
#
# At test time every position votes for where it thinks the keypoint is, $x_j + F_k(x_j)$, with
# weight $h_k(x_j)$: the **activation map** $f_k(x) = \frac{1}{\pi R^2}\sum_j h_k(x_j)\,G(x_j +
# F_k(x_j) - x)$ (with $G$ a bilinear kernel) peaks where the votes agree, more precisely than
# the coarse heatmap grid alone (`heatmaps.decode_grmi`). The pose score of the paper is the
# mean over $k$ of $\max_x f_k(x)$. The targets for the demo crop, for the right wrist:

# %%
radius = 8.0  # R in crop pixels (the paper: 25 pixels on 353 x 257 crops)
item = crops[0]
crop_truth = geometry.image_to_crop(val.people(demo)[0][0], item["center"].numpy(), item["scale"].numpy(), 0.0,
                                    input_size)
disks, offsets, _ = heatmaps.grmi_targets(crop_truth[None], val.people(demo)[1][:1], heatmap_size, radius,
                                          pose_model.stride)
k = COCO_KEYPOINTS.index("right_wrist")
fig, axes = plt.subplots(1, 2, figsize=(5, 3.4))
viz.overlay_heatmap(item["image"], disks[0, k], ax=axes[0], alpha=0.5)
axes[0].set_title("disk target $h_k$", fontsize=9)
viz.show_image(item["image"], axes[1])
v, u = np.nonzero(disks[0, k])
axes[1].quiver(u * pose_model.stride, v * pose_model.stride, offsets[0, 2 * k, v, u], offsets[0, 2 * k + 1, v, u],
               angles="xy", scale_units="xy", scale=1, color="yellow", width=0.02)
axes[1].set_xlim(crop_truth[k, 0] - 3 * radius, crop_truth[k, 0] + 3 * radius)
axes[1].set_ylim(crop_truth[k, 1] + 3 * radius, crop_truth[k, 1] - 3 * radius)
axes[1].set_title("offsets $F_k$ inside the disk (zoomed)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# We give the tiny SimpleBaseline's trunk (ResNet + deconvolutions) a G-RMI head and
# fine-tune it briefly on the single-person crops (`GRMIPoseNet.from_simple_baseline`,
# `GRMILoss`: disks, offsets and the paper's loss weights 4 and 1). It then runs in the
# pipeline like any pose network, and its keypoint scores are the heights of the vote peaks.

# %% tags=["experiment"]
with training.seeded(0):  # the new head's initial weights
    grmi_model = GRMIPoseNet.from_simple_baseline(pose_model, radius=radius)
single = training.top_down_data(data.default_split_dir("single/train"), input_size, heatmap_size, augment=True)
grmi_history = training.fit(grmi_model, single, None, GRMILoss(radius, pose_model.stride),
                            steps=training.budget(200, 10), batch_size=training.budget(32, 16), lr=1e-3)
with torch.no_grad():
    logits, offset_maps = grmi_model.cpu().eval()(batch["image"][:1])
print(f"G-RMI fine-tuning: {grmi_history.images_per_second:.0f} crops/s on {grmi_history.device}")

# %% tags=["experiment"]
points, scores = grmi_model.decode((logits, offset_maps))
fig, axes = plt.subplots(1, 2, figsize=(5, 3.4))
viz.overlay_heatmap(item["image"], torch.sigmoid(logits[0, k]).numpy(), ax=axes[0], alpha=0.5)
axes[0].set_title("predicted disk probability", fontsize=9)
viz.show_image(item["image"], axes[1])
viz.draw_pose(points[0].numpy(), ax=axes[1], linewidth=1, markersize=8)
axes[1].set_title("keypoints by Hough voting", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## 7. Experiment: the whole pipeline, and what each part costs
#
# Now everything runs on all validation scenes and COCO's evaluator scores the results:
#
# - **ground-truth boxes vs detected boxes**: how much AP does our detector cost?
# - **pose scores**: the box score; G-RMI's keypoint score (mean of the keypoint maxima);
#   box x mean confident keypoint score (SimpleBaseline/HRNet);
# - **OKS-NMS** on or off;
# - **G-RMI's head** in place of the Gaussian heatmaps, scored with its own keypoint score.

# %% tags=["experiment"]
gt_poses = mp.estimate_poses(pose_model, val, mp.ground_truth_detections(val))
detected_poses = mp.estimate_poses(pose_model, val, detections)
grmi_poses = mp.estimate_poses(grmi_model, val, detections)
runs = [  # boxes, pose network, pose score, OKS-NMS, the poses, a short label for the plot
    ("ground truth", "SimpleBaseline", "box x keypoints", True, gt_poses, "GT boxes\nbox x kp"),
    ("detector", "SimpleBaseline", "box", True, detected_poses, "detector\nbox"),
    ("detector", "SimpleBaseline", "keypoints", True, detected_poses, "detector\nkeypoints"),
    ("detector", "SimpleBaseline", "box x keypoints", True, detected_poses, "detector\nbox x kp"),
    ("detector", "SimpleBaseline", "box x keypoints", False, detected_poses, "detector\nbox x kp\nno NMS"),
    ("detector", "G-RMI head", "keypoints", True, grmi_poses, "detector\nG-RMI head"),
]
rows = []
for boxes, network, scoring, nms, poses, _ in runs:
    stats = mp.evaluate_poses(poses, val.ground_truth, scoring=scoring, nms_threshold=0.9 if nms else None)
    rows.append({"boxes": boxes, "pose network": network, "pose score": scoring, "OKS-NMS": nms,
                 "AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"], "AR": stats["AR"]})
ap = {i: row["AP"] for i, row in enumerate(rows)}
note = (f"Ground-truth boxes give AP {ap[0]:.3f} and our detector's boxes {ap[3]:.3f} "
        f"({'lower, as in the papers' if ap[3] < ap[0] else 'not lower, unlike the papers'}); G-RMI's keypoint "
        f"score {'beats' if ap[2] > ap[1] else 'does not beat'} the box score ({ap[2]:.3f} vs {ap[1]:.3f}"
        f"{', as G-RMI reported' if ap[2] > ap[1] else ', unlike G-RMI'}), and the box x keypoints score of the "
        f"SimpleBaseline and HRNet code reaches {ap[3]:.3f}; OKS-NMS changes AP by "
        f"{ap[3] - ap[4]:+.3f}; the briefly fine-tuned G-RMI head reaches {ap[5]:.3f}.")
table = report.experiment_table(rows, chapter="09", title="Top-down AP on the synthetic scenes", note=note)
table

# %% tags=["experiment"]
oks_with_truth = mp.best_oks(detected_poses, val.ground_truth)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.5, 1, 1]})
axes[0].bar(range(len(rows)), [r["AP"] for r in rows], color=["tab:green"] + ["tab:blue"] * 4 + ["tab:purple"])
axes[0].set_xticks(range(len(rows)), [run[-1] for run in runs], fontsize=7)
axes[0].set_ylabel("COCO AP")
for ax, scoring in zip(axes[1:], ["box", "box x keypoints"]):
    score = mp.pose_scores(detected_poses, scoring)
    ax.scatter(score, oks_with_truth, s=4, alpha=0.4)
    correlation = np.corrcoef(score, oks_with_truth)[0, 1] if len(score) > 1 else float("nan")
    ax.set_xlabel(f"pose score: {scoring}")
    ax.set_ylabel("OKS with the best-matching person")
    ax.set_title(f"correlation {correlation:.2f}", fontsize=9)
fig.tight_layout()

# %% [markdown]
# Reading the results (your numbers depend on the run; the note under the table says what
# happened in this one):
#
# - With **ground-truth boxes** the pose network sees every person, well framed; with
#   **detected boxes** some people are missed, some boxes are loose or duplicated, and AP
#   drops. The G-RMI paper made the same point by comparing person detectors: the better the
#   boxes, the better the poses; COCO's strong detectors make the gap smaller than with our
#   tiny one.
# - The **box score** tells the ranking which boxes hold a person; the **keypoint-aware**
#   scores also tell it which poses are good, so good poses come first in the ranking. The
#   scatter plots show it: the rescored pose score follows the OKS with the truth more closely
#   than the box score does.
# - **OKS-NMS** only matters where the detector fires twice on a person; CenterNet-style
#   detectors, which keep one peak per person, do that less than box detectors.
# - The **G-RMI head** was fine-tuned for a few hundred steps only; it is here to show the
#   whole mechanism running, not to beat the Gaussian heatmaps.

# %% [markdown]
# Where do the pose network's errors come from in a crowd? With the ground-truth boxes each
# pose belongs to one annotated person, so its errors can be sorted; in a crowd a new kind
# appears, joints taken from a neighbour.
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
truth = [val.people(n) for n in range(len(val))]  # per image: (M, K, 2) keypoints, (M, K) visibility
found = SimpleNamespace(keypoints=gt_poses.keypoints, gt_keypoints=np.concatenate([k for k, _ in truth]),
                        gt_visibility=np.concatenate([v for _, v in truth]), boxes=gt_poses.boxes,
                        image_ids=gt_poses.image_ids)  # the ground-truth boxes come in the order of the people
image_of = {int(image_id): n for n, image_id in enumerate(val.image_ids)}
viz.failure_gallery(found, lambda i: val.images[image_of[int(found.image_ids[i])]], count=6);
kinds = failures.joint_kinds(found.keypoints, found.gt_keypoints, found.gt_visibility, found.boxes,
                             image_ids=found.image_ids)
labelled = found.gt_visibility > 0
for kind in failures.FAILURE_KINDS:
    print(f"{kind:16s} {np.mean(kinds[labelled] == kind):6.1%} of the labelled joints")

# %% [markdown]
# ## 8. A bottom-up sketch: associative embedding
#
# Top-down methods run the pose network once per person; bottom-up methods run one network
# once per image, detect **all** joints of all people, and then must decide which joints
# belong together. Associative Embedding (Newell et al.) lets the network decide: besides the
# $K$ joint heatmaps it outputs $K$ **tag maps**, and at each detected joint the tag (one
# number) is trained to be the same for all joints of one person and different between
# people (a "pull" loss towards each person's mean tag, a "push" loss between the means of
# different people). Grouping then needs no geometry at all.
#
# We do not train a tag network here: `grouping.simulate_joint_detections` makes what a trained
# one might output for a scene (the true joints, each person with its own tag plus noise), so we
# can study the grouping step itself. Each dot is one detected joint, placed at its tag; the
# colour is the person it really belongs to.

# %%
keypoints, visibility = val.people(demo)
simulated = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=0.2, seed=1)
fig, ax = plt.subplots(figsize=(8, 3))
for k, m in zip(*np.nonzero(simulated.scores > 0)):
    ax.scatter(simulated.tags[k, m], k, color=f"C{simulated.owner[k, m]}", s=14)
ax.set_yticks(range(17), COCO_KEYPOINTS, fontsize=6)
ax.set_xlabel("tag")
ax.set_title("simulated tags of the demo image's joints (colour: the true person)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ### Exercise 4: greedy grouping by tags
#
# The official parser visits the joint types in a fixed order (head and shoulders first, then
# hips, elbows, wrists, knees, ankles: `grouping.AE_JOINT_ORDER`) and, for each type, matches
# its detections to the people found so far by the distance between the detection's tag and
# the person's **mean tag**; a detection too far from everyone starts a new person. The
# official code does the matching of one joint type with the Hungarian algorithm; you write
# the simpler greedy version (best detections first), which gives the same people when the
# tags of different people are well apart.


# %%
def group_by_tags(locations, scores, tags, detection_threshold=0.1, tag_threshold=1.0,
                  joint_order=grouping.AE_JOINT_ORDER):
    """Greedy associative-embedding grouping of joint detections into people.

    For each joint type k in joint_order, take its candidates with score > detection_threshold,
    best score first (ties: lower index first). Each candidate, with tag t, joins the person
    whose mean tag (mean of the tags of its joints so far) is nearest to t, among the people
    that do not have joint k yet (ties: the person found first), if |t - mean tag| < tag_threshold;
    otherwise it starts a new person. People are numbered in the order they were started.

    Args:
        locations: (K, M, 2) candidate positions x, y (M candidates per joint type).
        scores: (K, M) candidate scores.
        tags: (K, M) candidate tags.
        detection_threshold, tag_threshold: as above.
        joint_order: the order in which the K joint types are visited.

    Returns:
        (P, K, 3) array: [x, y, score] of person p's joint k, all zeros where it has none.
    """
    ### BEGIN SOLUTION
    locations, scores, tags = (np.asarray(a, dtype=float) for a in (locations, scores, tags))
    num_joints = scores.shape[0]
    people, person_tags = [], []
    for k in joint_order:
        candidates = np.flatnonzero(scores[k] > detection_threshold)
        candidates = candidates[np.argsort(-scores[k, candidates], kind="stable")]
        for m in candidates:
            best, best_distance = -1, tag_threshold
            for p, person in enumerate(people):
                distance = abs(tags[k, m] - np.mean(person_tags[p]))
                if person[k, 2] == 0 and distance < best_distance:
                    best, best_distance = p, distance
            if best < 0:
                people.append(np.zeros((num_joints, 3)))
                person_tags.append([])
                best = len(people) - 1
            people[best][k] = (locations[k, m, 0], locations[k, m, 1], scores[k, m])
            person_tags[best].append(tags[k, m])
    return np.stack(people) if people else np.zeros((0, num_joints, 3))
    ### END SOLUTION


# %%
checks.check_group_by_tags(group_by_tags)

# %%
# points: 4
checks.check_group_by_tags(group_by_tags)
### BEGIN HIDDEN TESTS
checks.hidden_group_by_tags(group_by_tags)
### END HIDDEN TESTS

# %% [markdown]
# How noisy may the tags be? Below, the course's `grouping.group_by_tags` groups the simulated
# joints of every validation scene at increasing tag noise, and COCO's AP scores the people it
# forms. The joints are placed exactly, so everything lost is lost by the grouping: while the
# noise is small next to the tag threshold (1) and the spacing of the people's tags (2 here),
# the people come out whole; as it grows, joints drift more than the threshold from their
# person's mean tag and split off as extra "people", or land nearer another person's tag and
# mix, and AP falls. The right panel groups the demo image at the largest noise.

# %%
noise_levels = [0.1, 0.3, 0.5, 0.7, 1.0]
grouping_ap = []
for noise in noise_levels:
    results = []
    for n in range(len(val)):
        keypoints, visibility = val.people(n)
        simulated = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=noise, location_noise=0.0,
                                                       seed=n)
        people = grouping.group_by_tags(simulated.locations, simulated.scores, simulated.tags)
        points, point_scores, pose_score = grouping.grouped_to_poses(people)
        results += metrics.results_to_coco(points, point_scores, pose_score, np.full(len(people), val.image_ids[n]))
    grouping_ap.append(metrics.coco_keypoint_eval(val.ground_truth, results)["AP"])
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
axes[0].plot(noise_levels, grouping_ap, marker="o")
axes[0].set_xlabel("tag noise (standard deviation; people's tags 2 apart)")
axes[0].set_ylabel("COCO AP of the grouped people")
axes[0].set_ylim(0, 1.02)
viz.show_image(val.images[demo], axes[1])
keypoints, visibility = val.people(demo)
simulated = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=noise_levels[-1],
                                               location_noise=0.0, seed=demo)
people = grouping.group_by_tags(simulated.locations, simulated.scores, simulated.tags)
for p, person in enumerate(people):
    found = person[:, 2] > 0
    axes[1].scatter(person[found, 0], person[found, 1], color=f"C{p}", s=12)
axes[1].set_title(f"tag noise {noise_levels[-1]}: {len(people)} groups for {len(keypoints)} people", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## Stretch exercise: the associative-embedding loss
#
# The grouping above assumed a network whose tags agree within a person and differ between
# people. Newell et al. train it with a two-term loss on the tags read at the labelled joints
# of the $N$ people of an image. With $h_n$ the mean tag of person $n$ over its $K_n$ labelled
# joints,
#
# $$\text{pull} = \frac{1}{N}\sum_n \frac{1}{K_n}\sum_{k \text{ labelled}} (t_{nk} - h_n)^2, \qquad
# \text{push} = \frac{1}{N(N-1)}\sum_{n \ne m} \exp\!\Big(-\frac{(h_n - h_m)^2}{2\sigma^2}\Big).$$
#
# Pull draws each person's tags to their mean; push drives the means of different people
# apart (it is 0 for a single person). The paper sums the pull over the joints and lets the
# push include $n = m$, which only adds a constant; averaging keeps both terms independent of
# the numbers of joints and people. Leave out people with no labelled joint. (Worth bonus
# points: it goes beyond the chapter's core.)


# %%
def associative_embedding_loss(tags, visibility, sigma=1.0):
    """Pull and push of the associative-embedding loss for the people of one image.

        h_n  = mean of tags[n, k] over the labelled k (visibility[n, k] > 0)
        pull = mean over n of ( mean over labelled k of (tags[n, k] - h_n)^2 )
        push = sum over n != m of exp(-(h_n - h_m)^2 / (2 sigma^2)) / (N (N - 1))   (0 when N < 2)

    Args:
        tags: (N, K) NumPy array, the tag read at each person's joints.
        visibility: (N, K) COCO flags; a joint counts where > 0. People with none are left out.
        sigma: the push's length scale.

    Returns:
        (pull, push), two floats.
    """
    ### BEGIN SOLUTION
    tags, labelled = np.asarray(tags, float), np.asarray(visibility) > 0
    keep = labelled.any(axis=1)
    tags, labelled = tags[keep], labelled[keep]
    means = (tags * labelled).sum(axis=1) / labelled.sum(axis=1)
    pull = float((((tags - means[:, None]) ** 2 * labelled).sum(axis=1) / labelled.sum(axis=1)).mean())
    n = len(means)
    if n < 2:
        return pull, 0.0
    gaps = np.exp(-((means[:, None] - means[None, :]) ** 2) / (2 * sigma**2))
    return pull, float((gaps.sum() - np.trace(gaps)) / (n * (n - 1)))
    ### END SOLUTION


# %%
checks.check_associative_embedding_loss(associative_embedding_loss)

# %%
# bonus: 2
checks.check_associative_embedding_loss(associative_embedding_loss)
### BEGIN HIDDEN TESTS
checks.hidden_associative_embedding_loss(associative_embedding_loss)
### END HIDDEN TESTS

# %% [markdown]
# The loss of the simulated tags of the demo image, as their noise grows: the pull grows with
# the noise's variance, and the push stays small while the people's mean tags stay 2 apart.

# %%
keypoints, visibility = val.people(demo)
for noise in (0.1, 0.5, 1.0):
    rng = np.random.default_rng(0)
    tags = 2.0 * np.arange(len(keypoints))[:, None] + rng.normal(0, noise, visibility.shape)  # (M, K)
    pull, push = grouping.associative_embedding_loss(tags, visibility)
    print(f"tag noise {noise}: pull {pull:.3f}, push {push:.3f}")

# %% [markdown]
# ## What the paper reported
#
# COCO keypoints, AP at OKS 0.50:0.05:0.95 (chapter 08), **test-dev** unless said otherwise:
#
# | method | kind | AP |
# |---|---|---|
# | G-RMI (Papandreou et al. 2017, CVPR version), COCO data only | top-down | 64.9 (test-standard 64.3) |
# | G-RMI with additional in-house data | top-down | 68.5 (test-standard 67.3) |
# | Mask R-CNN, keypoints + masks (He et al. 2017) | top-down, one network | 63.1 |
# | Associative Embedding (Newell et al. 2017) | bottom-up | 65.5 |
# | SimpleBaseline ResNet-152, 384 x 288 (Xiao et al. 2018) | top-down | 73.7 |
# | HRNet-W48, 384 x 288 (Sun et al. 2019) | top-down | 75.5 |
#
# - Chapter 05 quotes G-RMI at 62.4 AP: that is the number Mask R-CNN's paper (March 2017)
#   gave for the G-RMI system as it stood then, trained on COCO plus MPII. The CVPR 2017
#   version of the G-RMI paper, revised after it, reports the improved system above: 64.9 on
#   the same test-dev with COCO data only. Same benchmark, two versions of one system.
# - G-RMI's abstract credits three ideas on top of a Faster R-CNN detector and a ResNet-101
#   pose network: the heatmap + offset aggregation, **keypoint-based (OKS) NMS** instead of
#   box NMS, and **keypoint-based confidence scores** instead of box scores.
# - Mask R-CNN's keypoint head (chapter 05) reported 63.1 AP with a single network that also
#   segments; Associative Embedding was the strongest bottom-up method of its year. The later
#   top-down methods (SimpleBaseline, HRNet) keep the G-RMI-style pipeline (detector, crops,
#   OKS-NMS, rescoring) and gain from better pose networks and detectors.
# - Our toy numbers are far lower than these for honest reasons: a 150-thousand-parameter
#   detector trained for minutes, a 96 x 64 pose network trained on single-person images, and
#   people as small as 15 pixels, for whom OKS is very strict.

# %% [markdown]
# ## Check your understanding
#
# 1. Why does a top-down method's running time grow with the number of people, and a
#    bottom-up method's not (or much less)?
#
# <details><summary>Answer</summary>
#
# Top-down runs the pose network once per detected box, so ten people cost ten forward passes
# (plus the detector). Bottom-up runs one network on the whole image; only the grouping step
# depends on the number of joints found, and it is cheap.
# </details>
#
# 2. Two people stand side by side, their boxes overlapping with IoU 0.6. Box NMS at 0.5 and
#    OKS-NMS at 0.9: which keeps both?
#
# <details><summary>Answer</summary>
#
# OKS-NMS. Box NMS removes the lower-scored box because the boxes overlap a lot; OKS-NMS
# compares the two *poses*, whose keypoints are far apart (different people), so their OKS is
# low and both are kept.
# </details>
#
# 3. Why does G-RMI's pose score help AP even though it does not move a single keypoint?
#
# <details><summary>Answer</summary>
#
# AP depends on the ranking: the precision-recall curve is built by walking down the poses in
# order of score. Putting accurate poses before inaccurate ones (which a keypoint-aware score
# does better than a box score) raises precision at every recall level, so AP rises with the
# same poses.
# </details>
#
# 4. In the crop-to-image formula, where does $-w/2$ come from, and what goes wrong without it?
#
# <details><summary>Answer</summary>
#
# The crop is centred on $c$: heatmap column $w/2$ is the crop's centre, so the offset from the
# centre is $u - w/2$ heatmap pixels, i.e. $(u - w/2)\,s_w/w$ image pixels. Without it, every
# keypoint is shifted by half the crop's size to the right and down.
# </details>
#
# 5. Associative-embedding tags are trained with no fixed target value: a person's tags may be
#    3.7 in one image and -1.2 in the next. Why is that enough for grouping?
#
# <details><summary>Answer</summary>
#
# Grouping only compares tags within one image: joints with similar tags go together. The pull
# loss makes one person's tags agree and the push loss keeps different people's tags apart;
# the actual values carry no meaning, just as cluster labels do not.
# </details>

# %% [markdown]
# ## Summary
#
# - The **top-down** pipeline: a person detector, a crop per box, a single-person pose network,
#   the predictions mapped back to the image, OKS-NMS, a pose score, COCO results.
# - The detector bounds the pose AP: ground-truth boxes against detected boxes measures what
#   the detector costs.
# - **OKS-NMS** removes duplicate poses of one person, which box NMS cannot see.
# - The **pose score** ranks the poses for AP: G-RMI uses the mean of the keypoint maxima; the
#   SimpleBaseline and HRNet code multiply the box score by the mean of the confident
#   keypoint scores.
# - **G-RMI's head** predicts disks and offsets and finds each keypoint by Hough voting, more
#   precisely than the heatmap grid alone.
# - **Bottom-up** methods detect all joints once per image and then group them; associative
#   embedding groups them by learned tags, and grouping fails as the tags grow noisy.
# - On COCO test-dev: G-RMI 64.9 AP (COCO data only), Associative Embedding 65.5, HRNet-W48
#   75.5.

# %% [markdown]
# ## What came next
#
# The methods of this course reach about 75 AP on COCO. Later ideas moved the field on;
# each paper is worth reading with this course's vocabulary.
#
# - **OpenPose: part affinity fields** (Z. Cao, T. Simon, S.-E. Wei, Y. Sheikh, *Realtime
#   Multi-Person 2D Pose Estimation using Part Affinity Fields*, CVPR 2017,
#   [arXiv:1611.08050](https://arxiv.org/abs/1611.08050)). Bottom-up: besides the joint
#   heatmaps, a CPM-like network (chapter 03) predicts for every limb a 2-D vector field
#   pointing along the limb; two candidate joints are linked when the field, integrated along
#   the segment between them, points from one to the other, and a greedy bipartite matching
#   per limb assembles the people, at a cost almost independent of their number. It won the
#   COCO 2016 keypoint challenge with 61.8 AP on test-dev.
# - **HigherHRNet** (B. Cheng, B. Xiao, J. Wang, H. Shi, T. S. Huang, L. Zhang, CVPR 2020,
#   [arXiv:1908.10357](https://arxiv.org/abs/1908.10357)). Bottom-up with HRNet (chapter 07)
#   and associative-embedding tags (chapter 09): a transposed convolution brings the heatmaps
#   to $1/2$ of the input, both resolutions are supervised, and their heatmaps are averaged at
#   test time, which helps the small people that bottom-up methods used to miss. 70.5 AP on
#   COCO test-dev (HRNet-W48, multi-scale test; 68.4 single-scale).
# - **DEKR** (Z. Geng, K. Sun, B. Xiao, Z. Zhang, J. Wang, *Bottom-Up Human Pose Estimation
#   Via Disentangled Keypoint Regression*, CVPR 2021,
#   [arXiv:2104.02300](https://arxiv.org/abs/2104.02300)). No grouping at all: at each
#   person's centre the network regresses the offsets to all keypoints, one branch per
#   keypoint with adaptive (deformable-like) convolutions that look at that keypoint's region.
#   71.0 AP on COCO val2017 (HRNet-W48, $640 \times 640$, single-scale test), above the
#   detect-and-group methods.
# - **Top-down successors** (SimCC and RTMPose, ViTPose, RLE), which change the single-person
#   network and its output rather than the grouping, close chapter 07.
