# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 03: Convolutional Pose Machines
#
# Where is the left elbow? Locally, an elbow is a bend in a tube of fabric, and a picture has
# many of those. It becomes easy once you know where the left shoulder and the left wrist
# are: the elbow is the joint between them. A **pose machine** turns this reasoning into a
# sequence of predictors: stage 1 guesses every joint from the image alone; each later stage
# looks at the image *and* at all the previous guesses, and corrects them. Wei et al. (2016)
# built every stage from convolutions, trained the whole sequence end to end, and showed
# how to make that training work: by supervising **every** stage, not only the last.
#
# ## Learning goals
#
# After this chapter you can
#
# - draw the CPM architecture: a first stage from the image, later stages from shared image
#   features plus the previous stage's **belief maps**, and say why the stages help;
# - compute the **receptive field** of a stack of convolutions and poolings, per stage, and
#   check it with a gradient;
# - write the **intermediate supervision** loss and explain how it fights vanishing gradients;
# - score a multi-stage network **stage by stage** with PCK, and compare intermediate
#   supervision with a loss on the final stage only;
# - tell a common description of CPM's training from what the paper did and found.
#
# ## The paper
#
# S.-E. Wei, V. Ramakrishna, T. Kanade, Y. Sheikh, *Convolutional Pose Machines*, CVPR 2016
# ([arXiv:1602.00134](https://arxiv.org/abs/1602.00134)); official code:
# [shihenw/convolutional-pose-machines-release](https://github.com/shihenw/convolutional-pose-machines-release).
# It builds on the (non-convolutional) pose machines of V. Ramakrishna, D. Munoz, M. Hebert,
# J. A. Bagnell, Y. Sheikh, *Pose Machines: Articulated Pose Estimation via Inference
# Machines*, ECCV 2014.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import data, failures, losses, metrics, models, report, training, viz
from course_lib.grading import ch03_cpm as checks
from course_lib.keypoints import COCO_KEYPOINTS
from course_lib.models.cpm import SelectStage
from course_lib.receptive_field import layers_of, measure_receptive_field
from course_lib.receptive_field import receptive_field as course_receptive_field

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80
val_crops = training.top_down_data(data.default_split_dir("single/val"), (96, 64), (24, 16), limit=64)

# %% [markdown]
# ## 1. Stages that refine belief maps
#
# A CPM with $T$ stages predicts, at every stage $t$, one **belief map** $b_t^k$ per joint $k$
# (the paper's word for a heatmap: how much stage $t$ believes joint $k$ is at each
# position). In the paper's layout (its Figure 2, input $368 \times 368$, maps at stride 8):
#
# - **stage 1** sees only the image: a few large convolutions and three poolings, then
#   $1\times1$ convolutions to the belief maps $b_1$;
# - a **shared feature trunk** computes image features once for all later stages;
# - **stage $t \ge 2$** concatenates those features with the previous beliefs $b_{t-1}$ and
#   predicts $b_t$ with three large ($11 \times 11$) convolutions and two $1\times1$ ones.
#
# Stages $\ge 2$ all have the same structure (but their own weights); only stage 1 differs.
# The course's `models.cpm` builds the paper's layout; `cpm_tiny`, used below, is the same
# design at stride 4 with narrower layers and $5\times5$ kernels so that it trains on a CPU,
# with 3 stages. The diagram is drawn from the model itself (`viz.draw_cpm`): its stages, their
# convolutions and the receptive field of every stage's belief maps.

# %%
tiny = models.build("cpm_tiny", seed=0)
viz.draw_cpm(tiny)
plt.show()
parts = {"stage 1": tiny.stage1, "shared features": tiny.features}
parts.update({f"stage {t + 2}": torch.nn.ModuleList([f, s]) for t, (f, s) in
              enumerate(zip(tiny.stage_features, tiny.stages))})
for name, part in parts.items():
    convs = [m for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    print(f"{name:16s} {len(convs)} convolutions, kernels {[m.kernel_size[0] for m in convs]}, "
          f"{sum(p.numel() for p in part.parameters()):,} parameters")
beliefs = tiny(val_crops[0]["image"][None])
print("output: a list of", len(beliefs), "belief tensors of shape", tuple(beliefs[0].shape))

# %% [markdown]
# Why should stage 2 do better than stage 1 if it sees the same image? Because it also sees
# $b_1$: a confident shoulder in $b_1$ tells stage 2 where to look for the elbow, and two
# competing peaks for the left wrist can be resolved by where the left elbow is. The
# spatial relations between joints, which older methods wrote down as a graphical model,
# are **learned** by the convolutions that read the belief maps. For that, a stage must
# *see* far enough: an $11\times11$ convolution on stride-8 belief maps spans
# $1 + (11 - 1) \times 8 = 81$ image pixels (the formula of section 2), and three of them in a
# row let a stage relate joints across most of the body.
#
# ## 2. Receptive fields
#
# The receptive field of an output pixel is the patch of input pixels that can change it.
# For a stack of layers with kernels $k_l$, strides $s_l$ (and dilations $d_l$, 1 here),
# start from one pixel, $r_0 = 1$, $j_0 = 1$, and for each layer
#
# $$r_l = r_{l-1} + (k_l - 1)\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l .$$
#
# $j_l$, the **jump**, is the distance in input pixels between neighbouring pixels of layer
# $l$'s output (the product of the strides so far). A $3\times3$ convolution adds 2 pixels
# at the input, but 8 pixels after two stride-2 poolings: each of its taps is 4 input pixels
# apart.
#
# ### Exercise 1: receptive field of a convolution stack
#
# Given the layers as `(kernel, stride)` pairs, input first, return the receptive field
# $r_l$ (an `int`, in input pixels) after **each** layer.


# %%
def receptive_field(layers):
    """Receptive field after each layer of a stack of convolutions / poolings.

        r_0 = 1, j_0 = 1
        r_l = r_{l-1} + (k_l - 1) * j_{l-1}
        j_l = j_{l-1} * s_l

    Args:
        layers: list of (kernel, stride) pairs, input first.

    Returns:
        list of ints [r_1, ..., r_L] (empty for no layers).
    """
    ### BEGIN SOLUTION
    size, jump, sizes = 1, 1, []
    for kernel, stride in layers:
        size += (kernel - 1) * jump
        jump *= stride
        sizes.append(size)
    return sizes
    ### END SOLUTION


# %%
checks.check_receptive_field(receptive_field)

# %%
# points: 2
checks.check_receptive_field(receptive_field)
### BEGIN HIDDEN TESTS
checks.hidden_receptive_field(receptive_field)
### END HIDDEN TESTS

# %% [markdown]
# ### The receptive field of every stage
#
# Stage 1 is a plain stack, so your formula applies directly to its layers (`layers_of`
# reads the kernels and strides out of a PyTorch module). A later stage sees the previous
# belief map, whose pixels already *see* $r_{t-1}$ input pixels and sit $j$ = stride apart:
# for the formula that map behaves like one layer of kernel $r_{t-1}$ and stride $j$, so
#
# $$r_t = \text{receptive\_field}\big([(r_{t-1}, j)] + \text{layers of stage } t\big)[-1],$$
#
# and each stage adds the same amount. (It also sees the shared image features, whose field
# is smaller; the larger of the two paths counts.) The course's implementation of what you
# wrote, `receptive_field.receptive_field`, computes it for the tiny model and for the
# paper's 6-stage layout:

# %%
stride = tiny.stride
stage_layers = [(kernel, s) for kernel, s, _ in layers_of(tiny.stages[0])]
fields = [course_receptive_field([(kernel, s) for kernel, s, _ in layers_of(tiny.stage1)])[-1]]
for _ in range(5):
    fields.append(course_receptive_field([(fields[-1], stride)] + stage_layers)[-1])
print("cpm_tiny, 6 stages, computed here:     ", fields)
print("cpm_tiny, the model's own bookkeeping: ", models.build("cpm_tiny", num_stages=6).receptive_fields())
with torch.device("meta"):  # the paper's layout: count its layers without allocating its weights
    paper_fields = models.build("cpm").receptive_fields()
print("the paper's layout (368 x 368 input):  ", paper_fields)

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
stages = np.arange(1, 7)
for ax, values, size, label in ((axes[0], fields, 96, "cpm_tiny, 96 x 64 crops"),
                                (axes[1], paper_fields, 368, "paper layout, 368 x 368 inputs")):
    ax.bar(stages, values, color="C0" if size == 96 else "C1")
    ax.axhline(size, color="k", linestyle=":", linewidth=1)
    ax.text(0.6, size * 1.03, f"input height {size}", fontsize=8)
    ax.set_xlabel("stage t")
    ax.set_title(label, fontsize=9)
axes[0].set_ylabel("receptive field (input pixels)")
fig.tight_layout()

# %% [markdown]
# The field grows by the same step at every stage (48 pixels for the tiny model, 240 for the
# paper's). By stage 2 of the paper's network the field is wider than the whole
# $368\times368$ input (a belief pixel near the centre sees all of it, one near a corner
# most of it); in the tiny model the field passes the crop's height at stage 3.
#
# **Check by measurement.** The formula can be verified without it: make the network
# monotone (positive weights, average instead of max pooling), back-propagate from one
# output pixel, and see which input pixels get a non-zero gradient
# (`receptive_field.measure_receptive_field`). Below, the measured field of each stage of
# `cpm_tiny` at the position of the left wrist of a validation person: what each stage can
# see when it decides about that wrist.

# %%
person = val_crops[5]
wrist = COCO_KEYPOINTS.index("left_wrist")
wrist_position = tuple(int(round(c)) for c in (person["keypoints"][wrist].numpy() / stride)[::-1])  # (row, column)
fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.6))
for t, ax in enumerate(axes):
    seen = measure_receptive_field(tiny, (96, 64), output_index=t, position=wrist_position)
    viz.show_image(data.tensor_to_image(person["image"]), ax)
    ax.imshow(np.ma.masked_where(seen.mask, seen.mask), cmap="gray", alpha=0.6, vmin=0, vmax=1)
    ax.plot(*person["keypoints"][wrist].numpy(), "o", color="#ff8000", markersize=6)
    ax.set_title(f"stage {t + 1}: field {fields[t]} px", fontsize=9)
fig.suptitle("what each stage sees when it places the left wrist (darkened: out of view)", fontsize=10)
fig.tight_layout()

# %% [markdown]
# ## 3. Intermediate supervision
#
# A CPM with 6 stages is a deep network: the paper's stage 6 output is more than 30
# convolutions away from the image. Trained with a loss on the last stage only, the
# gradient that reaches the first layers has passed through all of them and tends to
# **vanish**. The paper's remedy is to put the **same target** on every stage and add the
# losses:
#
# $$\mathcal L = \sum_{t=1}^{T} \mathcal L_t, \qquad
# \mathcal L_t = \frac{1}{N K H W}\sum_{n, k, u, v} \tfrac12\Big(w_{nk}\big(b_t^{nk}(u, v) - G^{nk}(u, v)\big)\Big)^2 ,$$
#
# the weighted heatmap MSE of chapter 02 (the paper writes a plain sum of squares over
# positions and parts; the mean only rescales it). Every stage now gets a gradient directly
# from its own loss: the early layers are fed from a short path, and each stage is pushed
# to be a good predictor on its own, which also gives the next stage sensible beliefs to
# read.
#
# See it on an untrained `cpm_tiny` and one batch: the size of the gradient reaching the
# first convolution of each stage, with the loss on every stage and with the loss on the
# last stage only.

# %%
batch = torch.utils.data.default_collate([val_crops[i] for i in range(16)])
first_convs = [tiny.stage1[0]] + [stage[0] for stage in tiny.stages]
gradient_sizes = {}
for name, loss in (("every stage", losses.HeatmapLoss()), ("final stage only", losses.HeatmapLoss(final_only=True))):
    tiny.zero_grad()
    sum(loss(tiny(batch["image"]), batch).values()).backward()
    gradient_sizes[name] = [conv.weight.grad.norm().item() for conv in first_convs]
stage1_ratio = gradient_sizes["every stage"][0] / max(gradient_sizes["final stage only"][0], 1e-300)
print(f"stage 1's first convolution gets {stage1_ratio:.1e} times more gradient with a loss on every stage")
fig, ax = plt.subplots(figsize=(5.5, 3))
for offset, (name, sizes) in zip((-0.2, 0.2), gradient_sizes.items()):
    ax.bar(np.arange(1, 4) + offset, sizes, width=0.4, label=f"loss on {name}")
ax.set_yscale("log")
ax.set_xticks([1, 2, 3], ["stage 1", "stage 2", "stage 3"])
ax.set_ylabel("gradient norm, first conv")
ax.legend(fontsize=8)
ax.set_title("untrained cpm_tiny, one batch", fontsize=9)
fig.tight_layout()

# %% [markdown]
# With the loss on the last stage only, stage 1 receives far less gradient than with
# intermediate supervision (the ratio printed above) (the CPM initialisation, Gaussian weights with a
# standard deviation of 0.01 and no batch normalisation, shrinks the signal at every layer,
# as in 2016). The paper shows the same effect as histograms of gradient magnitudes at
# several depths (its Figure 5).
#
# ### Exercise 2: the intermediate-supervision loss
#
# Write $\mathcal L$: the sum over stages of the weighted heatmap MSE. Use torch operations
# only (no `.item()`, no NumPy) so that the gradient flows into every stage.


# %%
def intermediate_supervision_loss(stage_heatmaps, target, weight):
    """Intermediate supervision: the same target on every stage, losses summed.

        L   = sum_t L_t
        L_t = 1/(N K H W) sum_{n,k,u,v} 1/2 (w_nk (b_t[n,k,u,v] - G[n,k,u,v]))^2

    Args:
        stage_heatmaps: list of T tensors (N, K, H, W), the belief maps of stages 1..T.
        target: (N, K, H, W) tensor, the Gaussian targets G.
        weight: (N, K) tensor, 0 for joints without a label.

    Returns:
        a scalar (0-d) tensor that can be back-propagated.
    """
    ### BEGIN SOLUTION
    w = weight[:, :, None, None]  # (N, K, 1, 1): broadcasts over the map
    total = 0.0
    for beliefs in stage_heatmaps:
        total = total + (0.5 * ((beliefs - target) * w) ** 2).mean()
    return total
    ### END SOLUTION


# %%
checks.check_intermediate_supervision_loss(intermediate_supervision_loss)

# %%
# points: 3
checks.check_intermediate_supervision_loss(intermediate_supervision_loss)
### BEGIN HIDDEN TESTS
checks.hidden_intermediate_supervision_loss(intermediate_supervision_loss)
### END HIDDEN TESTS

# %% [markdown]
# The course's implementation of this loss is `losses.HeatmapLoss()`: given a list of stage
# outputs it returns one term per stage (`stage1`, `stage2`, ...), which `training.fit` adds
# up and shows separately. `HeatmapLoss(final_only=True)` is the ablation: only the last
# stage is supervised.
#
# ### Training stage by stage? A common description and what the paper did
#
# A common description of CPM goes: "stage 1 is fixed, stage 2 onwards is repeated, usually 3
# stages; stage 1 computes image features and stage 2 predicts the keypoints; end-to-end
# training alone does not reach high accuracy, so the stages are pre-trained one by one and
# then combined". The paper says otherwise on each point:
#
# - it uses **6 stages** for its results ($T = 6$); its ablation found accuracy rising with
#   every added stage up to 5 and diminishing returns at the sixth. Three stages (as in
#   `cpm_tiny`) is a cheaper choice, not the paper's;
# - stage 1 already predicts belief maps for every joint, and later stages refine them;
# - it compared four ways of training (on LSP): (i) end to end from scratch with
#   intermediate supervision, (ii) **stage-wise**, each stage trained in turn and then
#   stacked, (iii) stage-wise and then fine-tuned jointly as in (i), and (iv) end to end
#   **without** intermediate supervision. **(i) was the best**; stage-wise training (ii)
#   stalled at a lower accuracy, and fine-tuning it (iii) came close to (i) only after more
#   iterations.
#
# So the description has the order backwards: joint end-to-end training, made possible by
# intermediate supervision, is what the paper recommends, and stage-wise pre-training is what
# it found unnecessary.
#
# ## 4. Scoring every stage
#
# To see the refinement, score the beliefs of **each** stage, not only the last. The course
# scores joints with PCK (chapter 08 treats it in depth): a labelled joint ($v > 0$) is
# correct when the prediction lies within $\alpha$ times the person's size of the truth,
#
# $$\mathrm{PCK}_t = \frac{\sum_{n,k} [v_{nk} > 0]\,\big[\lVert \hat y^{t}_{nk} - y_{nk}\rVert \le \alpha\, \mathrm{norm}_n\big]}{\sum_{n,k} [v_{nk} > 0]} .$$
#
# ### Exercise 3: PCK per stage
#
# Given every stage's predicted keypoints, return one PCK per stage (pooled over all
# labelled joints of all people).


# %%
def pck_per_stage(stage_keypoints, gt_keypoints, visibility, norm, threshold):
    """PCK of each stage's predictions.

        correct[t, n, k] = ||pred[t, n, k] - gt[n, k]|| <= threshold * norm[n]
        PCK[t] = sum over labelled (v > 0) joints of correct / number of labelled joints

    Args:
        stage_keypoints: (T, N, K, 2) predictions of each stage, pixels x, y.
        gt_keypoints: (N, K, 2) ground truth, pixels x, y.
        visibility: (N, K) COCO flags; only joints with v > 0 count.
        norm: (N,) each person's size in pixels.
        threshold: alpha, e.g. 0.2.

    Returns:
        (T,) float array.
    """
    ### BEGIN SOLUTION
    distance = np.linalg.norm(stage_keypoints - gt_keypoints[None], axis=-1)  # (T, N, K)
    correct = distance <= threshold * norm[None, :, None]
    labelled = visibility > 0  # (N, K)
    return (correct & labelled[None]).sum(axis=(1, 2)) / labelled.sum()
    ### END SOLUTION


# %%
checks.check_pck_per_stage(pck_per_stage)

# %%
# points: 2
checks.check_pck_per_stage(pck_per_stage)
### BEGIN HIDDEN TESTS
checks.hidden_pck_per_stage(pck_per_stage)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Experiment: PCK per stage, and intermediate supervision vs the final stage only
#
# Two `cpm_tiny` networks, identical in everything (initialisation, data order,
# augmentation, steps, learning rate) except the loss: one with intermediate supervision
# (`HeatmapLoss()`), one supervised on its final stage only (`HeatmapLoss(final_only=True)`).
# After training, each stage of each network is scored on the validation people
# (`SelectStage` turns one stage into a network of its own, so `training.predict` maps its
# beliefs back to image pixels). The budget is small: the course's CPM is its most
# expensive tiny model per image, and the run must fit a laptop CPU.

# %% tags=["experiment"]
steps = training.budget(full=600, fast=3)
train_crops = training.top_down_data(data.default_split_dir("single/train"), (96, 64), (24, 16), augment=True,
                                     limit=training.budget(None, 128))
val_set = training.top_down_data(data.default_split_dir("single/val"), (96, 64), (24, 16),
                                 limit=training.budget(300, 32))
trained = {}
for name, loss in (("intermediate supervision", losses.HeatmapLoss()),
                   ("final stage only", losses.HeatmapLoss(final_only=True))):
    print(f"training cpm_tiny with {name}")
    network = models.build("cpm_tiny", seed=0)  # the same initial weights for both losses
    history = training.fit(network, train_crops, None, loss, steps, batch_size=16, lr=2e-3, seed=0)
    trained[name] = (network, history)

# %% tags=["experiment"]
stage_rows, stage_pck = [], {}
for name, (network, _) in trained.items():
    found = [training.predict(SelectStage(network, t), val_set) for t in range(1, network.num_stages + 1)]
    truth = found[0]
    norm = metrics.bbox_size(truth.boxes)
    # what your pck_per_stage computes, with the course's metrics.pck (so this runs before the exercise is done)
    stage_pck[name] = np.array([metrics.pck(f.keypoints, truth.gt_keypoints, truth.gt_visibility, norm, 0.2).mean
                                for f in found])
    row = {"loss": name}
    row.update({f"stage {t + 1} PCK@0.2": float(p) for t, p in enumerate(stage_pck[name])})
    row["final PCK@0.1"] = float(metrics.pck(found[-1].keypoints, truth.gt_keypoints, truth.gt_visibility, norm,
                                             0.1).mean)
    row["final mean error (px)"] = float(np.nanmean(found[-1].errors))
    stage_rows.append(row)

rises = stage_pck["intermediate supervision"][-1] > stage_pck["intermediate supervision"][0]
helps = stage_pck["intermediate supervision"][-1] > stage_pck["final stage only"][-1]
stage_note = (
    ("PCK rises from stage 1 to the last stage with intermediate supervision, as in the paper; "
     if rises else "PCK does not rise from stage to stage here, unlike the paper; ")
    + ("and the final stage beats the final-only loss at equal steps, as the paper reports."
       if helps else "but at equal steps the final-only loss reaches a higher final PCK, unlike the paper "
                     "(AdamW and a shallow network soften the vanishing gradients that intermediate supervision "
                     "fixes; see the text).")
)
stage_table = report.experiment_table(
    stage_rows, chapter="03", title=f"cpm_tiny after {steps} steps: PCK@0.2 of every stage (validation)",
    note=stage_note,
)
stage_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.3))
for name, values in stage_pck.items():
    axes[0].plot(np.arange(1, len(values) + 1), values, "o-", label=name)
axes[0].set_xticks([1, 2, 3])
axes[0].set_xlabel("stage")
axes[0].set_ylabel("validation PCK@0.2")
axes[0].legend(fontsize=8)
for name, (network, history) in trained.items():
    final_term = history.terms.get(f"stage{network.num_stages}", history.terms.get("heatmap"))  # the last stage
    smooth = np.convolve(final_term, np.ones(10) / 10, mode="valid") if len(final_term) >= 10 else final_term
    axes[1].plot(np.arange(len(smooth)) + 1, smooth, label=name)
axes[1].set_yscale("log")
axes[1].set_xlabel("training step")
axes[1].set_ylabel("loss of the final stage")
axes[1].legend(fontsize=8)
fig.tight_layout()

# %% tags=["experiment"]
network = trained["intermediate supervision"][0].eval()
sample = val_set[7]
with torch.no_grad():
    stage_maps = [b[0].numpy() for b in network(sample["image"][None])]
joints = [COCO_KEYPOINTS.index(n) for n in ("left_shoulder", "left_elbow", "left_wrist", "right_knee")]
fig, axes = plt.subplots(len(joints), 3, figsize=(5.2, 7.4))
for row, k in zip(axes, joints):
    for t, ax in enumerate(row):
        viz.overlay_heatmap(data.tensor_to_image(sample["image"]), stage_maps[t][k], ax=ax, alpha=0.6)
        ax.plot(*sample["keypoints"][k].numpy(), "w+", markersize=8)
        ax.set_title(f"{COCO_KEYPOINTS[k]}, stage {t + 1}", fontsize=8)
fig.suptitle("belief maps of the trained network (+: ground truth)", fontsize=10)
fig.tight_layout()

# %% tags=["experiment"]
each_stage = np.all(np.diff(stage_pck["intermediate supervision"]) > 0)
gains = np.diff(stage_pck["intermediate supervision"])
final_gap = stage_pck["intermediate supervision"][-1] - stage_pck["final stage only"][-1]
report.markdown(
    f"**How to read the result.** The paper makes two claims: later stages are more accurate than earlier ones, "
    f"and intermediate supervision trains better than a loss on the last stage only. In this run "
    f"({steps} steps, {'fast' if training.fast_profile() else 'full'} profile) the first claim "
    + ("held: PCK@0.2 rose at every stage" if each_stage else "held only in part: PCK@0.2 did not rise at every stage"
       if rises else "did not hold")
    + f" (from stage to stage: {', '.join(f'{g:+.3f}' for g in gains)}), and the second "
    + ("held" if helps else "did **not**") + f": the final stage with intermediate supervision reached "
    f"{stage_pck['intermediate supervision'][-1]:.3f} PCK@0.2, trained on its final stage only "
    f"{stage_pck['final stage only'][-1]:.3f} ({final_gap:+.3f}). Without intermediate supervision the earlier "
    f"stages reached {', '.join(f'{p:.3f}' for p in stage_pck['final stage only'][:-1])} (stages 1 to "
    f"{len(stage_pck['final stage only']) - 1})."
)

# %% [markdown]
# Look at the final-only row's stage 1 and stage 2 columns too: without intermediate
# supervision, nothing asks the earlier outputs to be belief maps, and after enough training
# they stop being ones. The network becomes one deep predictor whose middle layers happen to
# have 17 channels.
#
# When the toy disagrees with the paper on the second claim, why? The gradient figure of
# section 3 showed the vanishing gradient clearly (the ratio printed there), but two things
# can make it harmless here. First, **the optimiser**: the paper trained with SGD,
# whose steps are proportional to the gradient; AdamW divides each parameter's gradient by
# a running estimate of its own size, so a consistently tiny gradient still moves the
# weights at the full learning rate. Second, **depth**: our final stage is about a dozen
# convolutions from the image, the paper's more than thirty. Intermediate supervision also
# has a cost: it forces stages 1 and 2 to be good predictors on their own, which constrains
# the network, and at a short budget the unconstrained network can profit from that. This
# is a result about *this* toy setup (a small CPM, AdamW, a few hundred steps), not a refutation of
# the paper, whose ablation used the full network and training schedule; later work
# (stacked hourglass, chapter 04) kept intermediate supervision and found it useful.

# %% [markdown]
# ### Where the final stage fails
#
# The worst predictions of the network trained with intermediate supervision, sorted by their
# mean joint error (in box sizes), each labelled with what went wrong. The labels are computed
# (`failures.worst_predictions`): a **left/right swap** puts a joint on its mirror partner, the
# error the synthetic people's tints are there to prevent; **another person** puts it on the same
# joint of someone else in the image; a **missed joint** lands far from anything it could be
# (more than half a box size off); **jitter** is the right joint, placed loosely.

# %% tags=["experiment"]
network = trained["intermediate supervision"][0]
final = training.predict(SelectStage(network, network.num_stages), val_set)
viz.failure_gallery(final, [item["image"] for item in val_set.samples], count=6)
plt.show()
kinds = failures.joint_kinds(final.keypoints, final.gt_keypoints, final.gt_visibility, final.boxes,
                             image_ids=final.image_ids)
labelled = kinds[kinds != ""]
report.markdown("Over all labelled joints of the validation people: " + ", ".join(
    f"{np.mean(labelled == kind):.1%} {kind}" for kind in (failures.GOOD,) + failures.FAILURE_KINDS) + ".")

# %% [markdown]
# ## What the paper reported
#
# Wei et al. 2016, 6 stages, $368 \times 368$ inputs:
#
# - **MPII Human Pose** (test set, PCKh@0.5, total): **87.95%** (88.52% when LSP training
#   data are added), with 78.28% on the hardest joint, the ankle.
# - **LSP** (test set, PCK@0.2, person-centric annotations): **84.32%**, and **90.5%** when
#   MPII training data are added.
# - **FLIC** (PCK@0.2): 97.59% on elbows and 95.03% on wrists.
# - Ablations (on LSP): accuracy rises with the number of stages up to about 5 (6 is used);
#   joint training with intermediate supervision beats stage-wise training and training
#   without intermediate supervision; the larger the receptive field of the stages, the
#   better, saturating around the size of the person.
#
# ## Check your understanding
#
# 1. A stack has a $7\times7$ stride-2 convolution, a $3\times3$ stride-2 pooling and two
#    $3\times3$ convolutions. What is the final receptive field?
#
# <details><summary>Answer</summary>
#
# $r = 7$, $j = 2$; pooling: $7 + 2 \cdot 2 = 11$, $j = 4$; convolutions: $11 + 2 \cdot 4 = 19$,
# then $19 + 8 = 27$ pixels.
# </details>
#
# 2. Why does each CPM stage after the first add the *same* amount to the receptive field?
#
# <details><summary>Answer</summary>
#
# Every stage $t \ge 2$ has the same layers at the same stride (the belief maps all live at
# the same resolution), and it starts from the previous beliefs, whose field is $r_{t-1}$:
# each stage adds $\sum_l (k_l - 1) \cdot j$ with the same kernels and jump.
# </details>
#
# 3. With intermediate supervision, the stage-1 beliefs are trained to match the target on
#    their own. Why might that also help stage 2, beyond the gradient argument?
#
# <details><summary>Answer</summary>
#
# Stage 2 reads $b_1$ as an input. If $b_1$ is forced to be a meaningful belief map, stage 2
# receives an interpretable, consistent signal (where stage 1 thinks each joint is) rather
# than arbitrary features, and only has to learn corrections.
# </details>
#
# 4. A common description of CPM recommends pre-training the stages one by one. What did
#    the paper find, and what does intermediate supervision change?
#
# <details><summary>Answer</summary>
#
# Stage-wise training reached a lower accuracy than joint end-to-end training with
# intermediate supervision, and fine-tuning the stage-wise model jointly only caught up
# after more iterations. Intermediate supervision gives every stage its own gradient, so the
# whole network can be trained jointly from scratch.
# </details>
#
# 5. How would you score the second stack of a stacked hourglass (chapter 04) with the
#    course's evaluation code?
#
# <details><summary>Answer</summary>
#
# The same way as a CPM stage: wrap it, `SelectStage(hourglass, 2)` (stages and stacks count from 1,
# like `hourglass.SelectStack(model, 2)` of chapter 04), and pass it to
# `training.evaluate` or `training.predict`; the wrapper returns that stack's heatmaps only.
# </details>

# %% [markdown]
# ## Stretch exercise: dilated convolutions
#
# This one is optional (bonus points). A **dilated** convolution spreads its $k$ taps $d$
# pixels apart, so it spans $(k - 1)\,d + 1$ pixels of its input with the parameters of a
# $k \times k$ kernel: a way to grow the receptive field without pooling (chapter 04 meets it
# again among HRNet's alternatives). The recursion of section 2 becomes
#
# $$r_l = r_{l-1} + (k_l - 1)\, d_l\, j_{l-1}, \qquad j_l = j_{l-1}\, s_l .$$
#
# Layers now come as `(kernel, stride, dilation)` triples.


# %%
def dilated_receptive_field(layers):
    """Receptive field after each layer of a stack of (possibly dilated) convolutions / poolings.

    Args:
        layers: list of (kernel, stride, dilation) triples, input first.

    Returns:
        list of ints [r_1, ..., r_L].
    """
    ### BEGIN SOLUTION
    size, jump, sizes = 1, 1, []
    for kernel, stride, dilation in layers:
        size += (kernel - 1) * dilation * jump
        jump *= stride
        sizes.append(size)
    return sizes
    ### END SOLUTION


# %%
checks.check_dilated_receptive_field(dilated_receptive_field)

# %%
# bonus: 1
checks.check_dilated_receptive_field(dilated_receptive_field)
### BEGIN HIDDEN TESTS
checks.hidden_dilated_receptive_field(dilated_receptive_field)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - A CPM is a sequence of stages: stage 1 predicts belief maps from the image, each later
#   stage reads shared image features **and** the previous beliefs, and corrects them.
# - The receptive field grows by $(k - 1)\,j$ per layer ($j$ the product of the strides so
#   far); every stage after the first adds the same amount, so late stages see the whole body.
# - Intermediate supervision puts a loss on every stage: each stage gets its own gradient,
#   and the whole network trains jointly from scratch.
# - The paper used 6 stages and found joint training with intermediate supervision better than
#   stage-wise training, contrary to a common description of CPM.
# - `SelectStage(model, t)` (stages counted from 1) scores any stage with the course's
#   evaluation code; the chapter's run says whether PCK rose stage by stage and whether
#   intermediate supervision won at its budget.
# - The failure gallery labels the worst predictions with computed kinds: left/right swaps,
#   another person, missed joints, jitter.
