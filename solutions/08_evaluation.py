# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 08: Evaluation, or how good is a pose?
#
# Every chapter so far ended with a number: PCK went up, the error went down. This chapter
# looks at the numbers themselves. A pose estimator puts 17 dots on a person; whether those
# dots are "good" depends on the question you ask. Is each joint close to the truth? Is each
# limb in the right place? Would a person, shown the prediction next to the truth, call it
# the same pose? Each benchmark of the field answers with its own metric, and the metrics
# disagree in instructive ways: about small people, about one wild joint, about duplicates.
#
# ## Learning goals
#
# After this chapter you can
#
# - compute **PCP** and **PCPm** (limbs), **PCK**, **PCKh** and **PDJ** (joints) and say which
#   length each one divides by, and why that choice matters;
# - write COCO's **object keypoint similarity (OKS)** from its formula, and explain the
#   per-keypoint constants $k_i$ and the scale $s$;
# - turn OKS into **AP and AR**: greedy matching of detections to people, the
#   precision-recall curve, the 101-point interpolation;
# - check the course's evaluator against the official `pycocotools` on the same files, and
#   know the traps of COCO evaluation (area vs box, people without keypoints, the
#   20-detection cap);
# - predict how each metric reacts to a **small person** and to **one bad joint**.
#
# ## The papers
#
# - **PCP**: V. Ferrari, M. Marín-Jiménez, A. Zisserman, *Progressive search space reduction
#   for human pose estimation*, CVPR 2008
#   ([project page](https://www.robots.ox.ac.uk/~vgg/publications/2008/Ferrari08/)); the strict
#   definition used here is spelled out in M. Eichner, M. Marín-Jiménez, A. Zisserman,
#   V. Ferrari, *2D articulated human pose estimation and retrieval in (almost) unconstrained
#   still images*, IJCV 2012.
# - **PCK**: Y. Yang, D. Ramanan, *Articulated human detection with flexible mixtures of parts*,
#   TPAMI 2013 ([doi](https://doi.org/10.1109/TPAMI.2012.261)).
# - **PDJ**: A. Toshev, C. Szegedy, *DeepPose: Human Pose Estimation via Deep Neural Networks*,
#   CVPR 2014 ([arXiv:1312.4659](https://arxiv.org/abs/1312.4659)).
# - **PCKh, PCPm** (MPII): M. Andriluka, L. Pishchulin, P. Gehler, B. Schiele, *2D Human Pose
#   Estimation: New Benchmark and State of the Art Analysis*, CVPR 2014
#   ([project page](http://human-pose.mpi-inf.mpg.de/)).
# - **OKS, AP, AR** (COCO): T.-Y. Lin et al., *Microsoft COCO: Common Objects in Context*,
#   ECCV 2014 ([arXiv:1405.0312](https://arxiv.org/abs/1405.0312)) and the keypoint evaluation
#   page [cocodataset.org/#keypoints-eval](https://cocodataset.org/#keypoints-eval); an
#   analysis of OKS and its errors: M. R. Ronchi, P. Perona, *Benchmarking and Error Diagnosis in
#   Multi-Instance Pose Estimation*, ICCV 2017 ([arXiv:1707.05388](https://arxiv.org/abs/1707.05388)).

# %%
import json
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle

from course_lib import data, metrics, report, training, viz, widgets, zoo
from course_lib.grading import ch08_evaluation as checks
from course_lib.keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS, COCO_PCP_LIMBS, COCO_SIGMAS
from course_lib.metrics import compare
from course_lib.metrics.random_cases import random_keypoint_case

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. Predictions to score
#
# We need predictions. The tiny SimpleBaseline of chapter 06 (`zoo.pretrained` trains it once
# and caches it) runs over the 500 validation people, top-down from their ground-truth boxes;
# `training.evaluate` maps every prediction back to image pixels and keeps the ground truth
# next to it. From here on, these **same predictions** are scored in many ways.

# %%
model = zoo.pretrained("simplebaseline_tiny")
val = training.top_down_data(data.default_split_dir("single/val"), *training.model_sizes(model))
run = training.evaluate(model, val)
p = run.predictions
people = compare.scored_people(p.keypoints, p.gt_keypoints, p.gt_visibility, p.boxes, p.areas, p.head_boxes,
                               scores=p.scores.mean(axis=1))
print(f"{len(p.keypoints)} people, {int((p.gt_visibility > 0).sum())} labelled joints, "
      f"mean error {np.nanmean(p.errors):.2f} px")

# %%
def zoom(ax, box, margin=0.25):
    """Show only the person's box [x, y, w, h], with a margin."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    ax.set_xlim(x + w / 2 - side / 2, x + w / 2 + side / 2)
    ax.set_ylim(y + h / 2 + side / 2, y + h / 2 - side / 2)


fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, i in zip(axes, [0, 7, 21, 42]):
    viz.show_image(val.samples[i]["image"], ax)
    viz.draw_pose(p.gt_keypoints[i], p.gt_visibility[i], ax=ax, alpha=0.35, linewidth=3)
    viz.draw_pose(p.keypoints[i], p.gt_visibility[i], ax=ax, linewidth=1.2, markersize=10)
    zoom(ax, p.boxes[i])
    ax.set_title(f"person {i}: error {np.nanmean(p.errors[i]):.1f} px", fontsize=9)
fig.suptitle("faint: ground truth, sharp: the model's prediction", fontsize=10)
fig.tight_layout()

# %% [markdown]
# ## 2. Limbs: PCP and PCPm
#
# The oldest metric scores **parts** (limbs), not joints. A limb $(a, b)$ with ground-truth
# length $L = \lVert g_a - g_b \rVert$ is correct when *both* predicted endpoints lie within
# half of that length of their true positions:
#
# $$\text{correct} = \big[\lVert \hat y_a - g_a\rVert \le t L\big] \wedge \big[\lVert \hat y_b - g_b\rVert \le t L\big], \qquad t = 0.5 .$$
#
# PCP is the fraction of correct limbs ("parts"). It is sometimes written as correct joints
# over all joints; the papers count **limbs**, and so does the course. This is **strict PCP**.
# Some later papers used a *loose* variant (the *average* of the two endpoint errors under
# $tL$), which gives higher numbers for the same predictions; compare PCP numbers only when you
# know which one was used.
#
# A short limb gets a small circle: a foreshortened forearm, or a small person, is judged much
# more harshly than a long thigh. **PCPm** (MPII) replaces each limb's own length by the
# **mean** length of that limb over the whole test set.

# %%
limbs = metrics.pcp(p.keypoints, p.gt_keypoints, p.gt_visibility)
arm, leg = limbs.names.index("left_lower_arm"), limbs.names.index("right_lower_leg")
# a big person whose left forearm failed and whose right shin passed
i = int(np.argmax(np.where(~limbs.correct[:, arm] & limbs.labelled[:, arm] & limbs.correct[:, leg],
                           p.boxes[:, 3], -1)))
fig, ax = plt.subplots(figsize=(4, 4))
viz.show_image(val.samples[i]["image"], ax)
viz.draw_pose(p.keypoints[i], p.gt_visibility[i], ax=ax, linewidth=1.2, markersize=10)
zoom(ax, p.boxes[i])
result = metrics.pcp(p.keypoints[i:i + 1], p.gt_keypoints[i:i + 1], p.gt_visibility[i:i + 1])
for name in ("left_lower_arm", "right_lower_leg"):
    a, b = COCO_PCP_LIMBS[name]
    limb = result.names.index(name)
    colour = "lime" if result.correct[0, limb] else "red"
    for joint in (a, b):
        ax.add_patch(Circle(p.gt_keypoints[i, joint], result.radius[0, limb], fill=False, color=colour, lw=1.5))
    ax.text(*p.gt_keypoints[i, b] + [result.radius[0, limb], 0], f" {name}", color=colour, fontsize=8,
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1})
ax.set_title(f"person {i}: PCP circles of two limbs (radius: half the\nlimb's true length), green = both ends inside",
             fontsize=9)
print("PCP@0.5 over the validation set:", round(metrics.pcp(p.keypoints, p.gt_keypoints, p.gt_visibility).mean, 3),
      " PCPm@0.5:", round(metrics.pcpm(p.keypoints, p.gt_keypoints, p.gt_visibility).mean, 3))

# %% [markdown]
# ## 3. Joints: PCK, PCKh and PDJ
#
# Scoring joints one by one is simpler: a labelled joint is correct when the prediction lies
# within a radius of the truth. The three joint metrics differ **only in the radius**, a
# fraction $\alpha$ of a per-person length $\ell_n$:
#
# $$\text{correct}_{nk} = \big[\lVert \hat y_{nk} - g_{nk}\rVert \le \alpha\,\ell_n\big], \qquad
# \text{PCK} = \frac{\sum_{nk} \text{correct}_{nk}\,[v_{nk} > 0]}{\sum_{nk} [v_{nk} > 0]} .$$
#
# | metric | $\ell_n$ | typical $\alpha$ | used by |
# |---|---|---|---|
# | PCK | box size $\max(w, h)$, or the torso diameter | 0.2, 0.1 | LSP, FLIC (Yang & Ramanan) |
# | PCKh | head size: $0.6 \times$ head-box diagonal | 0.5 | MPII |
# | PDJ | torso diameter (or the box diagonal) | 0.05 ... 0.2 | DeepPose |
#
# Only joints the ground truth **labels** count ($v > 0$: hidden joints with $v = 1$ count,
# unlabelled $v = 0$ do not), and the mean is **pooled** over every labelled joint of the set.
#
# ### Exercise 1: PCK
#
# Write pooled PCK. `norm` holds one length per person; a distance exactly equal to the radius
# counts as correct.


# %%
def pck(pred, gt, visible, norm, threshold):
    """Percentage of Correct Keypoints, pooled over all labelled joints.

        correct_nk = [ ||pred_nk - gt_nk|| <= threshold * norm_n ]
        PCK = sum_nk correct_nk [v_nk > 0] / sum_nk [v_nk > 0]

    Args:
        pred, gt: (N, K, 2) keypoints x, y in pixels.
        visible: (N, K) COCO flags (0 not labelled, 1 hidden, 2 visible); count v > 0.
        norm: (N,) the per-person length in pixels.
        threshold: the fraction alpha of norm.

    Returns:
        a Python float in [0, 1].
    """
    ### BEGIN SOLUTION
    distance = np.linalg.norm(np.asarray(pred, float) - np.asarray(gt, float), axis=-1)  # (N, K)
    labelled = np.asarray(visible) > 0
    correct = (distance <= threshold * np.asarray(norm, float)[:, None]) & labelled
    return float(correct.sum() / labelled.sum())
    ### END SOLUTION


# %%
checks.check_pck(pck)

# %%
# points: 2
checks.check_pck(pck)
### BEGIN HIDDEN TESTS
checks.hidden_pck(pck)
### END HIDDEN TESTS

# %% [markdown]
# ### Which length?
#
# The figure draws, for one person, the radius each metric allows at $\alpha$ = its usual
# value, using the course's implementations (`metrics.bbox_size`, `metrics.head_size`,
# `metrics.torso_diameter`, `metrics.box_diagonal`). The second panel asks how stable each
# length is: the **torso diameter** (left shoulder to right hip, DeepPose's choice) shrinks
# when a person turns sideways, a weakness that the box diagonal fixes. Our 3D stick figures turn, so we can see it happen, and PDJ of the same
# predictions depends on which length it divides by.

# %%
i = 21
lengths = {
    "PCK@0.2 (0.2 x box size)": 0.2 * metrics.bbox_size(p.boxes[i:i + 1])[0],
    "PCKh@0.5 (0.5 x head size)": 0.5 * metrics.head_size(p.head_boxes[i:i + 1])[0],
    "PDJ@0.2 (0.2 x box diagonal)": 0.2 * metrics.box_diagonal(p.boxes[i:i + 1])[0],
}
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
viz.show_image(val.samples[i]["image"], ax)
viz.draw_pose(p.gt_keypoints[i], p.gt_visibility[i], ax=ax, linewidth=1.2, markersize=10)
wrist = p.gt_keypoints[i, COCO_KEYPOINTS.index("right_wrist")]
for (label, radius), colour in zip(lengths.items(), ["white", "yellow", "cyan"]):
    ax.add_patch(Circle(wrist, radius, fill=False, color=colour, lw=1.5, label=f"{label}: {radius:.1f} px"))
ax.legend(fontsize=7, loc="lower left")
ax.set_title("the radius around the right wrist", fontsize=9)

both = (p.gt_visibility[:, 5] > 0) & (p.gt_visibility[:, 12] > 0)
torso = np.linalg.norm(p.gt_keypoints[both, 5] - p.gt_keypoints[both, 12], axis=-1)
ax2.hist(torso / metrics.box_diagonal(p.boxes[both]), bins=30, color="tab:blue", alpha=0.8)
ax2.set_xlabel("torso diameter / box diagonal")
ax2.set_ylabel("people")
ax2.set_title("the torso diameter varies with the view;\nthe box diagonal follows the person's size", fontsize=9)
fig.tight_layout()
torso_norm = metrics.torso_diameter(p.gt_keypoints[both], p.gt_visibility[both])
for name, norm in [("torso diameter", torso_norm), ("box diagonal", metrics.box_diagonal(p.boxes[both]))]:
    score = metrics.pdj(p.keypoints[both], p.gt_keypoints[both], p.gt_visibility[both], norm, 0.2).mean
    print(f"PDJ@0.2 with the {name}: {score:.3f}")

# %% [markdown]
# ## 4. OKS: COCO's similarity between two poses
#
# COCO needed something for keypoints that plays the role IoU plays for boxes: one number in
# $[0, 1]$ saying how well a predicted pose matches a person. The **object keypoint
# similarity** is
#
# $$\text{OKS} = \frac{\sum_i \exp\!\big(-d_i^2 / (2 s^2 k_i^2)\big)\,\delta(v_i > 0)}{\sum_i \delta(v_i > 0)}$$
#
# - $d_i$: distance between the predicted and the true keypoint $i$, in pixels;
# - $s$: the person's scale, with $s^2$ = the person's **segmented area** in pixels (not the
#   box area, and not just "the size of the person");
# - $k_i = 2\sigma_i$: a per-keypoint constant. COCO measured $\sigma_i$ from how much its
#   annotators disagreed on 5000 doubly-annotated images: eyes are placed consistently
#   ($\sigma = 0.025$), hips are not ($\sigma = 0.107$). The same 5-pixel error costs much
#   more on an eye than on a hip;
# - $v_i$: the ground truth's visibility; only labelled keypoints are averaged. The predicted
#   visibility (or confidence) plays no part.
#
# Each term is a Gaussian of the error: 1 when exact, $e^{-1/2} \approx 0.61$ at
# $d_i = s k_i$.

# %%
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
ax.bar(range(17), 2 * COCO_SIGMAS, color=["tab:green"] + ["tab:orange", "tab:blue"] * 8)
ax.set_xticks(range(17), COCO_KEYPOINTS, rotation=90, fontsize=7)
ax.set_ylabel("$k_i = 2 \\sigma_i$")
ax.set_title("COCO's per-keypoint constants", fontsize=9)
distance = np.linspace(0, 15, 200)
area = 48**2  # a medium person (32^2 < area < 96^2)
for k in (1, 5, 11):
    ax2.plot(distance, np.exp(-distance**2 / (2 * area * (2 * COCO_SIGMAS[k]) ** 2)), label=COCO_KEYPOINTS[k])
ax2.set_xlabel("error $d_i$ (pixels)")
ax2.set_ylabel("similarity of keypoint $i$")
ax2.set_title(f"one keypoint's term, person of area {area} px$^2$", fontsize=9)
ax2.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ### Exercise 2: OKS for one pair
#
# Write OKS between one prediction and one ground truth that has at least one labelled
# keypoint. (COCO also gives an OKS to ground truths without any labelled keypoint, using an
# enlarged box; the course's `metrics.object_keypoint_similarity` handles that case, you need
# not.)


# %%
def object_keypoint_similarity(pred, gt, visibility, area, sigmas=COCO_SIGMAS):
    """COCO's OKS of one predicted pose with one ground-truth person.

        OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0] / sum_i [v_i > 0]
        with d_i = ||pred_i - gt_i||, s^2 = area, k_i = 2 sigma_i

    Args:
        pred, gt: (K, 2) keypoints x, y in pixels.
        visibility: (K,) the ground truth's flags; at least one is > 0.
        area: the person's area s^2 in pixels^2.
        sigmas: (K,) per-keypoint constants sigma_i (COCO's by default).

    Returns:
        a Python float in [0, 1].
    """
    ### BEGIN SOLUTION
    d2 = np.sum((np.asarray(pred, float) - np.asarray(gt, float)) ** 2, axis=-1)  # (K,)
    k = 2 * np.asarray(sigmas, float)
    similarity = np.exp(-d2 / (2 * area * k**2))
    labelled = np.asarray(visibility) > 0
    return float(similarity[labelled].mean())
    ### END SOLUTION


# %%
checks.check_object_keypoint_similarity(object_keypoint_similarity)

# %%
# points: 3
checks.check_object_keypoint_similarity(object_keypoint_similarity)
### BEGIN HIDDEN TESTS
checks.hidden_object_keypoint_similarity(object_keypoint_similarity)
### END HIDDEN TESTS

# %% [markdown]
# ### OKS rings on a person
#
# Setting one term to $1/2$ gives the error at which keypoint $i$ "half counts":
# $d_i = s\,k_i\sqrt{2 \ln 2}$. The rings below have that radius (computed by the course's
# implementation of what you just wrote): tight on the face, loose on the hips. Play with scale,
# constants and displacements in the OKS explorer under the figure.

# %%
i = 42
fig, ax = plt.subplots(figsize=(4, 4))
viz.show_image(val.samples[i]["image"], ax)
viz.draw_pose(p.gt_keypoints[i], p.gt_visibility[i], ax=ax, linewidth=1.0, markersize=8)
zoom(ax, p.boxes[i])
s = np.sqrt(p.areas[i])
for k in np.flatnonzero(p.gt_visibility[i] > 0):
    ax.add_patch(Circle(p.gt_keypoints[i, k], s * 2 * COCO_SIGMAS[k] * np.sqrt(2 * np.log(2)), fill=False,
                        color="white", lw=1))
oks = metrics.object_keypoint_similarity(p.keypoints[i], p.gt_keypoints[i], p.gt_visibility[i], p.areas[i])
ax.set_title(f"similarity 0.5 rings (area {p.areas[i]:.0f} px$^2$)\nthe prediction's OKS: {oks:.3f}", fontsize=9)

# %%
widgets.oks_explorer()

# %% [markdown]
# ## 5. From OKS to AP and AR
#
# COCO is a *multi-person* benchmark: a model returns any number of poses per image, each with
# a **score**, and nobody tells the evaluator which pose belongs to which person. COCO scores
# them exactly like object detections, with OKS in the place of IoU:
#
# 1. **Match**, image by image, at an OKS threshold $t$: detections in order of decreasing
#    score each take the *free* ground truth with the highest OKS, if that OKS is at least $t$.
#    A matched detection is a true positive, an unmatched one a false positive, an unmatched
#    person a miss.
# 2. **Rank** all detections of the data set by score. After the $j$ best:
#    $\text{precision}_j = \text{TP}_j / j$ and $\text{recall}_j = \text{TP}_j / \#\text{people}$.
# 3. **Interpolate** precision (the best precision at any recall $\ge r$) and average it at the
#    101 recall levels $r = 0, 0.01, \dots, 1$: that is AP at threshold $t$.
# 4. Average over the ten thresholds $t = 0.50, 0.55, \dots, 0.95$: COCO's **AP**. **AR** is
#    the final recall, averaged over the same thresholds.
#
# AP at 0.5 and at 0.75 are COCO's AP$^{50}$ and AP$^{75}$, reported
# beside the headline AP, which averages all ten thresholds.
#
# ### Exercise 3: greedy matching in one image


# %%
def greedy_match(oks, threshold):
    """COCO's greedy matching of the detections of one image to its people.

    Detections come sorted by score, best first. In that order, each detection takes, among
    the people not yet matched, the one with the highest OKS, provided that OKS >= threshold;
    a person is matched at most once. (No crowd regions here.)

    Args:
        oks: (D, G) OKS of detection d with person g.
        threshold: the OKS a match needs.

    Returns:
        (D,) integer array: the matched person's index for each detection, -1 for none.
    """
    ### BEGIN SOLUTION
    oks = np.asarray(oks, dtype=float)
    taken = np.zeros(oks.shape[1], dtype=bool)
    matches = np.full(oks.shape[0], -1)
    for d in range(oks.shape[0]):
        candidates = np.where(~taken & (oks[d] >= threshold), oks[d], -np.inf)
        if candidates.size and np.isfinite(candidates.max()):
            best = int(np.argmax(candidates))
            matches[d] = best
            taken[best] = True
    return matches
    ### END SOLUTION


# %%
checks.check_greedy_match(greedy_match)

# %%
# points: 3
checks.check_greedy_match(greedy_match)
### BEGIN HIDDEN TESTS
checks.hidden_greedy_match(greedy_match)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4: AP from a precision-recall list
#
# Entry $j$ of `recall` and `precision` is measured after the $j + 1$ best detections, so
# recall never decreases. COCO's interpolated precision at recall level $r$ is the best
# precision reached at any recall $\ge r$ (0 if the recall never gets there), and AP is its
# mean over the 101 levels.


# %%
def average_precision_101(recall, precision, recall_levels=np.linspace(0.0, 1.0, 101)):
    """COCO's 101-point interpolated average precision of one ranked list of detections.

        p_interp(r) = max { precision_j : recall_j >= r }   (0 if no recall_j >= r)
        AP = mean over r in recall_levels of p_interp(r)

    Args:
        recall, precision: (D,) after the 1, 2, ..., D best detections (recall non-decreasing).
        recall_levels: the levels r (COCO: np.linspace(0, 1, 101)).

    Returns:
        a Python float in [0, 1].
    """
    ### BEGIN SOLUTION
    recall, precision = np.asarray(recall, float), np.asarray(precision, float)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    index = np.searchsorted(recall, recall_levels, side="left")  # first detection reaching each level
    reached = index < len(recall)
    interpolated = np.zeros(len(recall_levels))
    interpolated[reached] = envelope[index[reached]]
    return float(interpolated.mean())
    ### END SOLUTION


# %%
checks.check_average_precision_101(average_precision_101)

# %%
# points: 3
checks.check_average_precision_101(average_precision_101)
### BEGIN HIDDEN TESTS
checks.hidden_average_precision_101(average_precision_101)
### END HIDDEN TESTS

# %% [markdown]
# ### The model's precision-recall curves
#
# Each validation person is its own "image" here (one person, one prediction, scored by the
# mean of its keypoint confidences), so the matching is trivial and we can draw the raw
# precision-recall steps next to COCO's interpolated curve (`metrics.interpolated_precision`,
# the course's implementation of what you just wrote). A stricter OKS threshold turns more
# predictions into false positives: the curve sinks and ends at a lower recall.

# %%
oks_all = metrics.object_keypoint_similarity(people.pred, people.gt, people.visible, people.areas)
order = np.argsort(-people.scores, kind="stable")
fig, ax = plt.subplots(figsize=(5.5, 3.6))
levels = np.linspace(0, 1, 101)
for t, colour in zip((0.5, 0.75, 0.9), ("tab:green", "tab:orange", "tab:red")):
    hit = oks_all[order] >= t
    recall = np.cumsum(hit) / len(hit)
    precision = np.cumsum(hit) / np.arange(1, len(hit) + 1)
    ax.plot(recall, precision, color=colour, alpha=0.35, lw=1)
    ax.plot(levels, metrics.interpolated_precision(recall, precision), color=colour,
            label=f"OKS >= {t}: AP = {metrics.average_precision(recall, precision):.3f}")
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_ylim(0, 1.02)
ax.legend(fontsize=8)
ax.set_title("raw (faint) and interpolated precision-recall", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## 6. The course's evaluator against pycocotools, on the same files
#
# `metrics.coco_keypoint_eval` is the course's COCO keypoint evaluator: every step above,
# vectorised, with pycocotools' conventions reproduced on purpose (its docstring lists them).
# Let us write two files, a ground truth and a results list, and score them with both. The
# first pair is our validation predictions; the second a generated multi-person set with
# crowds, people without keypoints, duplicates and more than 20 detections in some images
# (`metrics.random_cases`).

# %%
folder = Path(tempfile.mkdtemp(prefix="ch08-"))
files = {}
gt_dict = metrics.ground_truth_to_coco(people.gt, people.visible, people.boxes, people.areas)
dt_list = metrics.results_to_coco(people.pred, p.scores, people.scores, np.arange(1, len(people.pred) + 1))
files["validation predictions"] = (gt_dict, dt_list)
files["generated crowd scenes"] = random_keypoint_case(seed=8, num_images=training.budget(1500, 300))
for name, (gt_data, dt_data) in files.items():
    stem = name.replace(" ", "_")
    (folder / f"{stem}_gt.json").write_text(json.dumps(gt_data))
    (folder / f"{stem}_dt.json").write_text(json.dumps(dt_data))

for name in files:
    stem = name.replace(" ", "_")
    gt_path, dt_path = folder / f"{stem}_gt.json", folder / f"{stem}_dt.json"
    start = time.perf_counter()
    ours = metrics.coco_keypoint_eval(gt_path, dt_path)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = metrics.pycocotools_keypoint_eval(gt_path, dt_path)
    theirs_seconds = time.perf_counter() - start
    print(f"{name}: {len(files[name][1])} detections")
    print("  " + " ".join(f"{key:>6s}" for key in metrics.SUMMARY_KEYS))
    print("  " + " ".join(f"{ours[key]:6.3f}" for key in metrics.SUMMARY_KEYS) + "   course_lib")
    print("  " + " ".join(f"{theirs[key]:6.3f}" for key in metrics.SUMMARY_KEYS) + "   pycocotools")
    print(f"  identical to the last bit: {ours == theirs};  course_lib {ours_seconds:.2f} s, "
          f"pycocotools {theirs_seconds:.2f} s ({theirs_seconds / ours_seconds:.0f}x), files read by both")
shutil.rmtree(folder)

# %% [markdown]
# ## 7. Three traps of COCO evaluation
#
# **Area, not box.** $s^2$ is the person's *segmented* area. A box around a person is much
# bigger than the person (look at the empty corners), so using the box area makes every
# person look larger and every error smaller. How much smaller the area is in our validation
# set, and what each choice does to AP:

# %%
box_area = people.boxes[:, 2] * people.boxes[:, 3]
with_box_area = compare.scored_people(people.pred, people.gt, people.visible, people.boxes, box_area,
                                      people.head_boxes, people.scores)
print(f"area / box area: median {np.median(people.areas / box_area):.2f}")
print(f"AP with the segmented area: {compare.every_metric(people)['AP']:.3f};  "
      f"with the box area: {compare.every_metric(with_box_area)['AP']:.3f}  (too generous)")

# %% [markdown]
# **People without keypoints.** COCO has many annotated people with `num_keypoints = 0`
# (too small or too occluded to label) and crowd regions. They are **ignored**: a detection
# that matches one counts neither as a hit nor as a false positive, and they are not misses.
# Below, one image has a labelled person and an unlabelled one, and the model found both. The
# second detection is harmless while the unlabelled person is in the file; delete that person
# from the file and the same detection becomes a false positive that ranks above the true one.

# %%
person = np.array(people.gt[0])
shifted = person + [60.0, 0.0]
gt_two = metrics.ground_truth_to_coco(np.stack([person, shifted]), np.stack([people.visible[0], np.zeros(17)]),
                                      np.stack([people.boxes[0], people.boxes[0] + [60, 0, 0, 0]]),
                                      np.full(2, people.areas[0]), image_ids=[1, 1])
detections = metrics.results_to_coco(np.stack([shifted, person]), np.ones((2, 17)), [0.9, 0.8], [1, 1])
gt_one = dict(gt_two, annotations=gt_two["annotations"][:1])
print(f"AP with the unlabelled person in the file: {metrics.coco_keypoint_eval(gt_two, detections)['AP']:.3f}")
print(f"AP after deleting it:                      {metrics.coco_keypoint_eval(gt_one, detections)['AP']:.3f}")

# %% [markdown]
# **Twenty detections per image.** COCO keeps only the 20 best-scoring detections of each
# image (`maxDets = 20`). A crowded image with 25 people, all predicted perfectly, loses the 5
# lowest-scoring ones: recall cannot pass 0.8. The constant lives, with all the others, in
# `metrics.KeypointEvalParams`.

# %%
crowd = np.stack([person + [40.0 * j, 0.0] for j in range(25)])
gt_crowd = metrics.ground_truth_to_coco(crowd, np.full((25, 17), 2), np.tile(people.boxes[0], (25, 1)),
                                        np.full(25, people.areas[0]), image_ids=np.ones(25, int))
perfect = metrics.results_to_coco(crowd, np.ones((25, 17)), np.linspace(1, 0.5, 25), np.ones(25, int))
for cap in (20, 100):
    stats = metrics.coco_keypoint_eval(gt_crowd, perfect, metrics.KeypointEvalParams(max_detections=cap))
    print(f"max {cap:3d} detections per image: AP = {stats['AP']:.3f}, AR = {stats['AR']:.3f}")

# %% [markdown]
# ## 8. Experiment: the same predictions under every metric
#
# `compare.every_metric` scores one set of predictions with everything above. We score our
# model's predictions, then change them in two controlled ways:
#
# - **scale**: every person made 2x smaller or 2x bigger (ground truth, boxes, head boxes,
#   areas) while every prediction keeps its **pixel error** (`compare.rescale_people`). A
#   metric that normalises by the person's size should be harsher on the small person;
# - **one bad joint**: the left wrist of every prediction moved half a box size away, all
#   other joints unchanged (`compare.break_one_joint`).

# %% tags=["experiment"]
conditions = {
    "model predictions": people,
    "people 2x smaller, same px error": compare.rescale_people(people, 0.5),
    "people 2x bigger, same px error": compare.rescale_people(people, 2.0),
    "one bad joint (left wrist)": compare.break_one_joint(people, COCO_KEYPOINTS.index("left_wrist"), 0.5),
}
scores = {name: compare.every_metric(case) for name, case in conditions.items()}
rows = [{"predictions": name, **{key: value for key, value in result.items()}} for name, result in scores.items()]
base, small, big, broken = (scores[name] for name in conditions)
normalised = [key for key in base if key != "error (px)"]
all_drop = all(small[key] <= base[key] <= big[key] for key in normalised)
note = ("Every normalised metric drops for the small people and rises for the big ones while the pixel error "
        "stays the same, as the definitions promise; " if all_drop else
        "Not every normalised metric moved with the person's size here (see the plot); ")
note += (f"one bad wrist costs PCK {base['PCK@0.2'] - broken['PCK@0.2']:.3f} and AP "
         f"{base['AP'] - broken['AP']:.3f}, but multiplies the mean pixel error by "
         f"{broken['error (px)'] / base['error (px)']:.1f}.")
table = report.experiment_table(rows, chapter="08", title="The same predictions under every metric", note=note)
table

# %% tags=["experiment"]
fig, ax = plt.subplots(figsize=(10, 3.4))
width = 0.2
x = np.arange(len(normalised))
for j, (name, result) in enumerate(scores.items()):
    ax.bar(x + (j - 1.5) * width, [result[key] for key in normalised], width, label=name)
ax.set_xticks(x, normalised)
ax.set_ylabel("score")
ax.set_ylim(0, 1.3)
ax.legend(fontsize=8, ncol=4, loc="upper center")
ax.set_title("one set of predictions, changed in two ways, under every metric "
             f"(mean pixel error: {base['error (px)']:.1f} / {small['error (px)']:.1f} / "
             f"{big['error (px)']:.1f} / {broken['error (px)']:.1f} px)", fontsize=9)
fig.tight_layout()

# %% [markdown]
# Reading the table:
#
# - **Scale.** A 2-pixel error is nothing on a big person and a lot on a small one: every
#   normalised metric drops when the people shrink. The mean pixel error does not move at all,
#   which is exactly why nobody reports raw pixels across data sets. PCPm is normalised by the
#   *set's* mean limb length, so in this experiment (all people scaled together) it behaves
#   like PCP; in a set that mixes small and big people it would be lenient with the small ones
#   and strict with the big ones.
# - **One bad joint.** Joint metrics lose at most one joint in seventeen per person (less
#   where the wrist was already wrong or is not labelled); PCP loses at most one limb in ten
#   (the lower arm); OKS loses about one term in seventeen, and every pose that was just above
#   a threshold falls below it, so AP and AR can lose a larger *share* of their value than PCK
#   does. The **mean pixel error** jumps, because one large error dominates a mean: metrics
#   that count "correct or not" are robust to a single outlier; a mean error is not.

# %% [markdown]
# ## Stretch exercise: where does the AP go? Ronchi & Perona's error classes
#
# Ronchi & Perona ([ICCV 2017](https://arxiv.org/abs/1707.05388)) sort every predicted
# keypoint of a matched person by its **keypoint similarity**, the term of OKS for that
# keypoint alone, $ks_i = \exp(-d_i^2 / (2 s^2 k_i^2))$ with $k_i = 2\sigma_i$:
#
# - **good** (0): $ks_i \ge 0.85$;
# - **jitter** (1): $0.5 \le ks_i < 0.85$: the right joint, a little off;
# - **inversion** (2): $ks_i < 0.5$, but the similarity with the truth of the *mirrored* joint
#   (left wrist for right wrist, with that joint's $\sigma$) is $\ge 0.5$, and that joint is
#   labelled;
# - **swap** (3): close to a joint of *another* person (our people are alone: none here);
# - **miss** (4): none of these.
#
# Unlabelled keypoints get $-1$. Write it for one person. (Worth bonus points: it goes beyond
# the chapter's core.)


# %%
def keypoint_error_classes(pred, gt, visibility, area, sigmas=COCO_SIGMAS):
    """Ronchi & Perona's class of each keypoint of one person (no other people: no swaps).

        ks_i     = exp(-|pred_i - gt_i|^2 / (2 area (2 sigma_i)^2))
        ks_inv_i = exp(-|pred_i - gt_m|^2 / (2 area (2 sigma_m)^2)),  m = the mirror joint of i
        class_i  = 0 if ks_i >= 0.85, else 1 if ks_i >= 0.5,
                   else 2 if ks_inv_i >= 0.5 and visibility[m] > 0, else 4;   -1 if visibility[i] == 0

    Args:
        pred, gt: (K, 2) NumPy arrays, pixels.
        visibility: (K,) COCO flags.
        area: the person's segmented area s^2.
        sigmas: (K,) COCO's per-keypoint constants; the mirror pairs are COCO_FLIP_PAIRS.

    Returns:
        (K,) integer array of classes.
    """
    ### BEGIN SOLUTION
    pred, gt, visibility = np.asarray(pred, float), np.asarray(gt, float), np.asarray(visibility)
    mirror = np.arange(len(gt))
    for left, right in COCO_FLIP_PAIRS:
        mirror[left], mirror[right] = right, left
    ks = np.exp(-((pred - gt) ** 2).sum(axis=1) / (2 * area * (2 * sigmas) ** 2))
    ks_inverted = np.exp(-((pred - gt[mirror]) ** 2).sum(axis=1) / (2 * area * (2 * sigmas[mirror]) ** 2))
    inverted = (ks_inverted >= 0.5) & (visibility[mirror] > 0)
    classes = np.select([ks >= 0.85, ks >= 0.5, inverted], [0, 1, 2], default=4)
    classes[visibility <= 0] = -1
    return classes
    ### END SOLUTION


# %%
checks.check_keypoint_error_classes(keypoint_error_classes)

# %%
# bonus: 2
checks.check_keypoint_error_classes(keypoint_error_classes)
### BEGIN HIDDEN TESTS
checks.hidden_keypoint_error_classes(keypoint_error_classes)
### END HIDDEN TESTS

# %% [markdown]
# The model's predictions of section 1, sorted by the course's `metrics.keypoint_error_classes`
# (which also finds swaps when people share an image):

# %%
codes = metrics.keypoint_error_classes(p.keypoints, p.gt_keypoints, p.gt_visibility, p.areas)
for name, share in metrics.error_class_shares(codes).items():
    print(f"{name:10s} {share:6.1%} of the labelled keypoints")

# %% [markdown]
# ## What the paper reported
#
# These are the conventions of the benchmarks, which are what a paper's number means:
#
# - **COCO keypoints** (Lin et al. 2014; [keypoint evaluation](https://cocodataset.org/#keypoints-eval)):
#   AP averaged over OKS thresholds $0.50{:}0.05{:}0.95$, also AP$^{50}$, AP$^{75}$; area
#   ranges **medium** $32^2$ to $96^2$ and **large** above $96^2$ pixels (there is no "small"
#   range for keypoints: people below $32^2$ count only in "all"); at most **20 detections**
#   per image; the
#   constants $\sigma_i$: nose 0.026, eyes 0.025, ears 0.035, shoulders 0.079, elbows 0.072,
#   wrists 0.062, hips 0.107, knees 0.087, ankles 0.089 ($k_i = 2\sigma_i$). For example, on
#   COCO test-dev, Mask R-CNN reported 63.1 AP (He et al. 2017), SimpleBaseline ResNet-152
#   73.7 AP and HRNet-W48 75.5 AP (Sun et al. 2019), all at those thresholds.
# - **MPII** (Andriluka et al. 2014): **PCKh@0.5**, the head size being 60% of the head-box
#   diagonal. Reported MPII test-set PCKh@0.5 means: Convolutional Pose Machines 88.5 (Wei et
#   al. 2016), Stacked Hourglass 90.9 (Newell et al. 2016), SimpleBaseline 91.5 and HRNet-W32
#   92.3 (as listed in Sun et al. 2019).
# - **Who uses what.** DeepPose (2014) reported PCP on LSP and PDJ curves on FLIC; Yang &
#   Ramanan introduced PCK; CPM and Hourglass report PCKh on MPII and PCK@0.2 on LSP/FLIC;
#   Mask R-CNN, G-RMI, Associative Embedding, SimpleBaseline and HRNet report COCO AP (the last
#   two also MPII PCKh). Ronchi & Perona (2017) took COCO's errors apart and showed that much of
#   the AP that top methods lose comes from keypoints that are detected but placed badly: small
#   errors ("jitter"), left/right confusions ("inversions") and keypoints taken from a
#   neighbouring person ("swaps").

# %% [markdown]
# ## Check your understanding
#
# 1. A model's PCK@0.2 is 0.95 and its COCO AP is 0.60 on the same people. Is that a
#    contradiction?
#
# <details><summary>Answer</summary>
#
# No. PCK@0.2 accepts an error up to 20% of the box size on every joint and scores joints one
# at a time. AP averages over OKS thresholds up to 0.95, where nearly every keypoint of a pose
# must be within a few percent of the person's scale (tighter still on the face), and it also
# depends on how well the scores rank the poses.
# </details>
#
# 2. Why does COCO use a different constant $k_i$ for each keypoint?
#
# <details><summary>Answer</summary>
#
# Because people disagree on where some keypoints are much more than on others: the
# constants were measured from repeated annotations. An eye's position is clear to a few
# pixels; a hip under clothing is not. Equal tolerance would punish models for the
# annotators' own uncertainty on hips, or forgive sloppy eyes.
# </details>
#
# 3. You evaluate with the box area instead of the segmented area. Will AP go up or down?
#
# <details><summary>Answer</summary>
#
# Up: the box area is larger, so $s$ is larger, every term $\exp(-d^2/(2s^2k^2))$ is closer to
# 1, and more poses pass each threshold. The numbers would not be comparable with COCO's.
# </details>
#
# 4. In a test set where half the people are small and half are big, which is stricter on the
#    small ones, PCP or PCPm?
#
# <details><summary>Answer</summary>
#
# PCP: each limb is judged by half of its own length, which is short for a small person. PCPm
# uses the mean length over the whole set, which is longer than a small person's limb, so it is
# more lenient with small people (and stricter with big ones).
# </details>
#
# 5. Your model outputs 30 poses per image, the 5 best of which are correct. Does the 20-pose
#    cap hurt it?
#
# <details><summary>Answer</summary>
#
# Not if the scores rank the correct poses first: the cap keeps the 20 best-scoring poses, so
# the 5 correct ones survive. It hurts images with more than 20 people, or models whose scores
# rank true poses below spurious ones.
# </details>

# %% [markdown]
# ## Summary
#
# - **PCP** scores limbs: a limb is correct when both ends lie within half its length (strict
#   PCP); loose PCP averages the two errors and gives higher numbers; PCPm uses the set's mean
#   limb length.
# - **PCK**, **PCKh** and **PDJ** score joints within a radius proportional to a size: the box,
#   the head box, the torso diameter or the box diagonal; the choice of size changes the
#   number, and the torso diameter collapses when a person turns sideways.
# - **OKS** is COCO's similarity of two poses: $\exp(-d_i^2 / 2 s^2 k_i^2)$ averaged over the
#   labelled keypoints, with $s^2$ the segmented area and $k_i = 2 \sigma_i$ from annotator
#   agreement.
# - **COCO AP**: greedy matching of the detections by score in each image, a
#   precision-recall curve over the data set, precision interpolated at 101 recall levels, and
#   the mean over ten OKS thresholds from 0.50 to 0.95.
# - The course's evaluator gives the same numbers as pycocotools on the same files.
# - Traps: the segmented area and not the box area, people without keypoints are ignored, and
#   at most 20 detections per image are scored.
# - One set of predictions ranks differently under different metrics: compare numbers only
#   under the same metric, threshold and normaliser.
