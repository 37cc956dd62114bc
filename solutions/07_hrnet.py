# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 07: HRNet, or keeping the high resolution all the way
#
# Every network of the course so far squeezes the image down before it answers. DeepPose
# flattened it into a vector; the hourglass goes down to a few pixels and back up with skip
# connections; SimpleBaseline (chapter 06) runs a ResNet down to $1/32$ of the input and
# relies on three deconvolutions to recover the detail. HRNet, by Sun, Xiao, Liu and Wang
# (the same group at Microsoft Research Asia as SimpleBaseline), never lets go of it: a
# branch at $1/4$ of the input runs from the first stage to the last, lower-resolution
# branches are added **in parallel** beside it, and the branches exchange information again
# and again. On COCO, HRNet-W32 reached 74.4 AP against SimpleBaseline-R50's 70.4, with fewer
# parameters and, by the paper's count, fewer GFLOPs. This chapter builds it, counts what it
# costs in three different ways, and checks a claim often made about it: that HRNet, despite
# its lower GFLOPs, is *slower* than SimpleBaseline in wall-clock time.
#
# ## Learning goals
#
# After this chapter you can
#
# - explain why downsampling by 32 hurts small parts such as wrists (for example
#   $256 \times 256 \to 8 \times 8$);
# - draw HRNet's layout: a stride-4 stem, four stages, parallel branches at $1/4$, $1/8$,
#   $1/16$, $1/32$ with $C$, $2C$, $4C$, $8C$ channels, **transitions** that open a new branch,
#   and **exchange units** that fuse the branches ($3\times3$ stride-2 convolutions down,
#   $1\times1$ convolution and nearest upsampling up);
# - compute the shapes of the branches, the parameters of a basic block and the multiply-adds
#   of a (transposed) convolution;
# - rebuild the paper's parameters / GFLOPs table and explain why its "GFLOPs" are not the
#   true multiply-adds of SimpleBaseline;
# - measure latency on your machine and say when fewer operations do not mean less time;
# - compare a tiny HRNet and a tiny SimpleBaseline at an equal budget of steps and of time.
#
# ## The paper
#
# K. Sun, B. Xiao, D. Liu, J. Wang, *Deep High-Resolution Representation Learning for Human
# Pose Estimation*, CVPR 2019 ([arXiv:1902.09212](https://arxiv.org/abs/1902.09212)); official
# code: `leoxiaobin/deep-high-resolution-net.pytorch` (`lib/models/pose_hrnet.py`, which the
# course's `course_lib/models/hrnet.py` follows module by module).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from course_lib import data, losses, models, report, training, viz, widgets
from course_lib.grading import ch07_hrnet as checks
from course_lib.models import hrnet
from course_lib.models.complexity import complexity_by_module, measure_complexity, measure_latency

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. What a factor of 32 does to a wrist
#
# A ResNet halves the resolution five times: a $256 \times 256$
# input ends as an $8 \times 8$ grid of features, each cell standing for a $32 \times 32$ patch.
# Whatever a cell "knows", it can only say *which cell* a joint is in. Below, the course's one
# real photograph resized to $256 \times 256$, averaged over the cells of the grids at strides
# 4, 8, 16 and 32 (what a branch at that resolution can resolve, before any learning), with
# the labelled joints on top. The titles count how many distinct cells the joints occupy, all
# of them and the five of the face.

# %%
astronaut = data.astronaut()
image = torch.from_numpy(astronaut["image"]).permute(2, 0, 1)[None].float() / 255  # (1, 3, 512, 512)
image = F.interpolate(image, size=(256, 256), mode="area")
points = astronaut["keypoints"] * 256 / 512
labelled = astronaut["visibility"] > 0
fig, axes = plt.subplots(1, 4, figsize=(10, 3.1))
for ax, stride in zip(axes, (4, 8, 16, 32)):
    cells = F.avg_pool2d(image, stride)  # (1, 3, 256 / stride, 256 / stride)
    ax.imshow(cells[0].permute(1, 2, 0).numpy(), extent=(-0.5, 255.5, 255.5, -0.5), interpolation="nearest")
    viz.draw_pose(points, astronaut["visibility"], ax=ax, linewidth=1.0, markersize=8)
    cells_of = [tuple(cell) for cell in (points // stride).astype(int).tolist()]
    occupied = {cells_of[k] for k in np.flatnonzero(labelled)}
    face = {cells_of[k] for k in range(5) if labelled[k]}  # nose, eyes, ears
    ax.set_title(f"1/{stride}: {256 // stride}x{256 // stride} cells\n{labelled.sum()} joints in "
                 f"{len(occupied)} cells, the face's {sum(labelled[:5])} in {len(face)}", fontsize=8)
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# At $1/32$ the five keypoints of the face share three cells, and a forearm is one or two
# cells long. A joint known only to its cell is, on average, $0.38 \times 32 \approx 12$ pixels away
# from the cell's centre: the width of a wrist at this scale. The features of the last ResNet
# stage are very *informative* (each cell has seen most of the image, which is how it knows
# that there is a person and how they stand), but they are *coarse*. SimpleBaseline's
# deconvolutions have to re-create the lost position from that coarse, informative code, and
# so does the hourglass's decoder (helped by its skip connections). HRNet's answer: never lose
# the position in the first place. Keep computing at $1/4$, and bring the coarse, informative
# features to it over and over.
#
# ## 2. The layout: parallel branches, four stages
#
# - **Stem**: two $3 \times 3$ convolutions with stride 2 (64 channels): $1/4$ at once.
# - **Stage 1**: four ResNet bottleneck blocks at $1/4$ (256 channels out).
# - **Transition 1**: a $3\times3$ convolution brings the $1/4$ features to $C$ channels, and a
#   $3\times3$ **stride-2** convolution opens a second branch at $1/8$ with $2C$ channels.
# - **Stage 2**: 1 module; **stage 3**: a third branch ($1/16$, $4C$), 4 modules; **stage 4**: a
#   fourth branch ($1/32$, $8C$), 3 modules. A *module* (the paper's "exchange block", the
#   code's `HighResolutionModule`) runs four basic blocks (two $3\times3$ convolutions and a
#   residual connection, chapter 06's ResNet-18 block) on every branch separately, then
#   **fuses** the branches (section 3).
# - **Head**: a $1 \times 1$ convolution on the $1/4$ branch gives the $K$ heatmaps (stride 4, as
#   SimpleBaseline's).
#
# $C$ is the **width**: HRNet-W32 has $C = 32$, HRNet-W48 $C = 48$. Beware of simplified
# drawings that show stage 4 with two exchange units: the paper (1, 4 and 3 exchange blocks in
# stages 2, 3 and 4) and the official configurations use **three**, and so does the course.
#
# ### Exercise 1: the shapes of the branches
#
# Return the `(C_b, H_b, W_b)` of each branch of a stage with `num_branches` branches, for an
# input of `input_size` $(H, W)$ (multiples of 32) and width `width`.


# %%
def branch_shapes(input_size, width, num_branches):
    """(channels, height, width) of each parallel branch of HRNet, highest resolution first.

        C_b = C * 2^b,   H_b = H / (4 * 2^b),   W_b = W / (4 * 2^b)     for b = 0 .. num_branches - 1

    Args:
        input_size: (H, W) of the input image.
        width: C, the channels of branch 0 (32 for HRNet-W32).
        num_branches: the number of branches (1 to 4).

    Returns:
        a list of num_branches tuples (C_b, H_b, W_b) of ints.
    """
    ### BEGIN SOLUTION
    height, width_px = input_size
    return [(width * 2**b, height // (4 * 2**b), width_px // (4 * 2**b)) for b in range(num_branches)]
    ### END SOLUTION


# %%
checks.check_branch_shapes(branch_shapes)

# %%
# points: 1
checks.check_branch_shapes(branch_shapes)
### BEGIN HIDDEN TESTS
checks.hidden_branch_shapes(branch_shapes)
### END HIDDEN TESTS

# %% [markdown]
# HRNet-W32 at $256 \times 192$ drawn with the course's `hrnet.branch_shapes`: one row per
# branch, one column per stage, each box sized by its resolution and labelled
# channels x height x width. Arrows are transitions; within a stage, every module ends with a
# fusion across all rows.

# %%
fig, ax = plt.subplots(figsize=(10, 3.6))
columns = {"stem + stage 1": 1, "stage 2 (1 module)": 2, "stage 3 (4 modules)": 3, "stage 4 (3 modules)": 4}
for column, (title, num_branches) in enumerate(columns.items()):
    shapes = hrnet.branch_shapes((256, 192), 32, num_branches)
    if column == 0:
        shapes = [(256, 64, 48)]  # stage 1 works at 1/4 with 256 channels (bottlenecks)
    for b, (c, h, w) in enumerate(shapes):
        size = 0.9 * h / 64 + 0.12
        ax.add_patch(plt.Rectangle((2.4 * column, -1.1 * b - size / 2), 1.8, size, color=f"C{b}", alpha=0.35))
        ax.text(2.4 * column + 0.9, -1.1 * b, f"{c}x{h}x{w}", ha="center", va="center", fontsize=8)
        if column > 0:
            start = (2.4 * column - 0.6, -1.1 * min(b, num_branches - 2))
            ax.annotate("", xy=(2.4 * column, -1.1 * b), xytext=start, arrowprops=dict(arrowstyle="->", color="0.3"))
    ax.text(2.4 * column + 0.9, 0.75, title, ha="center", fontsize=9)
ax.text(10.0, 0, "1x1 conv\n-> 17 heatmaps\n17x64x48", va="center", fontsize=8)
ax.set_xlim(-0.2, 11.6)
ax.set_ylim(-3.9, 1.1)
ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# ## 3. The exchange unit: how the branches talk
#
# After its basic blocks, a module fuses the branches. Output branch $i$ is the sum of every
# input branch $j$, each brought to branch $i$'s resolution and width:
#
# $$y_i = \mathrm{ReLU}\Big(\sum_{j} f_{ij}(x_j)\Big), \qquad
# f_{ij} = \begin{cases}
# \text{identity} & j = i,\\
# \text{Up}_{2^{j-i}}\big(\text{BN}(\text{Conv}_{1\times1}(x_j))\big) & j > i \text{ (coarser: fewer pixels)},\\
# (i - j) \text{ strided } 3\times3 \text{ convolutions} & j < i \text{ (finer)}.
# \end{cases}$$
#
# Going **up**, the $1\times1$ convolution first maps $C_j$ channels to $C_i$ *at the coarse
# resolution* (cheap: few pixels), then **nearest-neighbour upsampling** repeats each value in a
# $2^{j-i} \times 2^{j-i}$ block. Going **down**, each stride-2 $3\times3$ convolution halves the
# resolution (a learned downsampling, where a pooling layer would only average), with BN and a
# ReLU between steps, the last one changing the width to $C_i$. The same kinds of layers make
# the **transitions** that open a new branch. Fusing in every module, 8 times in W32, is what
# the paper calls *repeated multi-scale fusion*.
#
# The diagram below is drawn by `viz.draw_hrnet_fusion` from the `fuse_layers` of one
# three-branch module of HRNet-W32 (stage 3): how the middle branch, at $1/8$, receives the
# finer branch through one strided convolution, itself unchanged, and the coarser branch
# through a $1\times1$ convolution and an upsampling by 2.

# %%
with torch.device("meta"):
    w32_for_diagram = models.build("hrnet_w32")
viz.draw_hrnet_fusion(w32_for_diagram.stage3[0], input_size=(256, 192));

# %% [markdown]
# Before writing it, a picture of what the sum does, made with the course's
# `hrnet.fuse_into_branch`. Three "branches" are the grey photograph at $1/4$, $1/8$ and
# $1/16$; for the learned layers we substitute simple stand-ins (the identity going up, average
# pooling going down), so what is left is the resampling and the sum.

# %%
grey = image.mean(dim=1, keepdim=True)  # (1, 1, 256, 256)
branches = [F.avg_pool2d(grey, 4), F.avg_pool2d(grey, 8), F.avg_pool2d(grey, 16)]  # 64x64, 32x32, 16x16
stand_ins = {0: [None, lambda x: x, lambda x: x],
             2: [lambda x: F.avg_pool2d(x, 4), lambda x: F.avg_pool2d(x, 2), None]}
panels = {"x0 (1/4)": branches[0], "x1 (1/8)": branches[1], "x2 (1/16)": branches[2],
          "x2 upsampled x4 (nearest)": F.interpolate(branches[2], scale_factor=4, mode="nearest"),
          "fused into branch 0": hrnet.fuse_into_branch(branches, 0, stand_ins[0]) / 3,
          "fused into branch 2": hrnet.fuse_into_branch(branches, 2, stand_ins[2]) / 3}
fig, axes = plt.subplots(1, 6, figsize=(11, 2.3))
for ax, (title, panel) in zip(axes, panels.items()):
    ax.imshow(panel[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{title}\n{panel.shape[-2]}x{panel.shape[-1]}", fontsize=8)
    ax.set_axis_off()
fig.tight_layout()

# %% [markdown]
# ### Exercise 2: fuse into one branch
#
# Write the fusion for output branch `i`. `branches` is the list of the $x_j$, tensors
# `(N, C_j, H_j, W_j)` with $H_j = H_0 / 2^j$. `lateral[j]` is the learned layer $a_{ij}$ from
# branch $j$ to branch $i$ (`None` at `j == i`): for a coarser $j > i$ it is the $1\times1$
# convolution + BN, **without** the upsampling, which is your job
# (`F.interpolate(..., scale_factor=..., mode="nearest")`); for a finer $j < i$ it is the
# whole chain of strided convolutions, whose output already has branch $i$'s size.


# %%
def fuse_into_branch(branches, i, lateral):
    """Output branch i of an exchange unit.

        y_i = ReLU( x_i + sum_{j > i} Up_{2^(j-i)}( a_ij(x_j) ) + sum_{j < i} a_ij(x_j) )

    with Up_f the nearest-neighbour upsampling by a factor f and a_ij = lateral[j].

    Args:
        branches: list of tensors x_j, (N, C_j, H_0 / 2^j, W_0 / 2^j).
        i: the output branch.
        lateral: list of callables (None at j == i).

    Returns:
        (N, C_i, H_0 / 2^i, W_0 / 2^i) tensor.
    """
    ### BEGIN SOLUTION
    total = branches[i]
    for j, x_j in enumerate(branches):
        if j == i:
            continue
        y = lateral[j](x_j)
        if j > i:
            y = F.interpolate(y, scale_factor=2 ** (j - i), mode="nearest")
        total = total + y
    return torch.relu(total)
    ### END SOLUTION


# %%
checks.check_fuse_into_branch(fuse_into_branch)

# %%
# points: 3
checks.check_fuse_into_branch(fuse_into_branch)
### BEGIN HIDDEN TESTS
checks.hidden_fuse_into_branch(fuse_into_branch)
### END HIDDEN TESTS

# %% [markdown]
# The course's `HighResolutionModule` keeps the upsampling inside its fuse layers, as the
# official code does; `hrnet.lateral_layers(module, i)` hands out the learned parts, and the
# course's `hrnet.fuse_into_branch` (the reference for what you wrote) gives exactly the
# module's own output. A three-branch module with random weights:

# %%
torch.manual_seed(0)
module = hrnet.HighResolutionModule([8, 16, 32], [8, 16, 32], num_blocks=2).eval()
inputs = [torch.randn(1, 8, 32, 24), torch.randn(1, 16, 16, 12), torch.randn(1, 32, 8, 6)]
with torch.no_grad():
    outputs = module(inputs)
    after_blocks = [branch(x) for branch, x in zip(module.branches, inputs)]
    for i in range(3):
        by_hand = hrnet.fuse_into_branch(after_blocks, i, hrnet.lateral_layers(module, i))
        print(f"branch {i}: output {tuple(outputs[i].shape)}, "
              f"largest difference from the module's own fusion {(by_hand - outputs[i]).abs().max():.1e}")

# %% [markdown]
# ## 4. Counting parameters
#
# A basic block has two $3\times3$ convolutions without bias, each followed by a BatchNorm
# with a weight and a bias per channel (its running mean and variance are *buffers*, updated
# but not trained). A block that changes the width or the resolution also needs a $1\times1$
# convolution + BN on its shortcut, so that the two paths can be added.
#
# ### Exercise 3: the parameters of a basic block


# %%
def basic_block_parameters(in_channels, planes, stride=1):
    """Trained parameters of a ResNet basic block (two 3x3 convolutions, BatchNorms, shortcut).

        9 C_in P + 2 P  (conv1, bn1)   +   9 P^2 + 2 P  (conv2, bn2)
        + C_in P + 2 P  (1x1 projection + BN, only if stride != 1 or C_in != P)

    Args:
        in_channels: C_in.
        planes: P, the channels of both convolutions and of the output.
        stride: of the first convolution.

    Returns:
        an int.
    """
    ### BEGIN SOLUTION
    count = 9 * in_channels * planes + 2 * planes + 9 * planes * planes + 2 * planes
    if stride != 1 or in_channels != planes:
        count += in_channels * planes + 2 * planes
    return count
    ### END SOLUTION


# %%
checks.check_basic_block_parameters(basic_block_parameters)

# %%
# points: 2
checks.check_basic_block_parameters(basic_block_parameters)
### BEGIN HIDDEN TESTS
checks.hidden_basic_block_parameters(basic_block_parameters)
### END HIDDEN TESTS

# %% [markdown]
# A block's parameters grow with the **square** of its width, and the width doubles with every
# branch: a block of W32's $1/32$ branch (256 channels) has
# $9 \cdot 256^2 \cdot 2 + 4 \cdot 256 = 1{,}180{,}672$ parameters, 64 times those of a block of
# the $1/4$ branch (18,560). The work of a block, though, grows with its width squared *times
# its number of pixels*, and the pixels shrink 4 times per branch: every branch's blocks do
# about the same number of multiply-adds. So the parameters of HRNet-W32 sit in the coarse
# branches of stages 3 and 4, while the work is spread much more evenly over the stages and
# branches. Measured on the real network (built on the `meta` device, so nothing is allocated):

# %%
with torch.device("meta"):
    w32 = models.build("hrnet_w32")
parts = complexity_by_module(w32, (256, 192))
groups = {"stem": ["conv1", "conv2"], "stage 1": ["layer1"], "stage 2": ["transition1", "stage2"],
          "stage 3": ["transition2", "stage3"], "stage 4": ["transition3", "stage4"], "head": ["final_layer"]}
share = {name: [sum(parts[p][key] for p in names) for key in ("params", "macs")] for name, names in groups.items()}
fig, ax = plt.subplots(figsize=(7.5, 2.8))
x = np.arange(len(share))
totals = np.array(list(share.values()), dtype=float).sum(axis=0)
for offset, (k, label) in zip((-0.2, 0.2), enumerate(("parameters", "multiply-adds"))):
    ax.bar(x + offset, [v[k] / totals[k] for v in share.values()], width=0.4, label=label)
ax.set_xticks(x, list(share))
ax.set_ylabel("share of HRNet-W32's total")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 5. Counting operations, and the paper's GFLOPs
#
# The cost of a network in arithmetic is its number of **multiply-adds** (MACs) for one image.
# A convolution computes one dot product of $C_{in} k_h k_w$ terms per output channel and
# per **output** pixel. A transposed convolution works the other way round: it takes each
# **input** pixel and adds $C_{out} k_h k_w$ products into the output per input channel.
#
# ### Exercise 4: the multiply-adds of a layer
#
# For an `nn.Conv2d` or `nn.ConvTranspose2d` (use its `in_channels`, `out_channels`,
# `kernel_size`, `stride`, `padding`, `dilation`, `groups`, or simply `weight.numel()`, which is
# $C_{out} \cdot C_{in} / g \cdot k_h k_w$ either way) on one image of `input_size`
# $(H_{in}, W_{in})$. Do not count the bias.


# %%
def layer_macs(layer, input_size):
    """True multiply-adds of one convolution or transposed convolution on one image (no bias).

        Conv2d:           C_out * (C_in / g) * k_h * k_w * H_out * W_out,
                          H_out = floor((H_in + 2 p - d (k - 1) - 1) / s) + 1   (same for W)
        ConvTranspose2d:  C_in * (C_out / g) * k_h * k_w * H_in * W_in

    Args:
        layer: torch.nn.Conv2d or torch.nn.ConvTranspose2d.
        input_size: (H_in, W_in).

    Returns:
        an int.
    """
    ### BEGIN SOLUTION
    height, width = input_size
    if isinstance(layer, torch.nn.ConvTranspose2d):
        return layer.weight.numel() * height * width
    sizes = []
    for n, k, s, p, d in zip((height, width), layer.kernel_size, layer.stride, layer.padding, layer.dilation):
        sizes.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
    return layer.weight.numel() * sizes[0] * sizes[1]
    ### END SOLUTION


# %%
checks.check_layer_macs(layer_macs)

# %%
# points: 2
checks.check_layer_macs(layer_macs)
### BEGIN HIDDEN TESTS
checks.hidden_layer_macs(layer_macs)
### END HIDDEN TESTS

# %% [markdown]
# ### The paper's table, rebuilt
#
# The HRNet paper compares models by parameters and "GFLOPs". Its numbers come from the
# official code's `get_model_summary`, which counts, for every convolution, its weights times
# its **output** pixels, and divides by $2^{30}$. For a convolution that is the true count
# (in units of $2^{30}$, not $10^9$). For a transposed convolution it is not: its output has
# 4 times the pixels of its input at stride 2, so SimpleBaseline's three deconvolutions are
# counted **four times over**. `models.measure_complexity` gives both counts: `macs` measured by
# PyTorch's FLOP counter (what your `layer_macs` computes, summed over the network), and
# `paper_gflops` by the official rule. The paper presets are built on the `meta` device
# (shapes only) and counted at $256 \times 192$:

# %%
PAPER = {  # HRNet paper, Table 1: COCO val2017, 256 x 192 (parameters in M, GFLOPs, AP)
    "hourglass_8": (25.1, 14.3, 66.9), "simplebaseline_r50": (34.0, 8.9, 70.4),
    "simplebaseline_r101": (53.0, 12.4, 71.4), "simplebaseline_r152": (68.6, 15.7, 72.0),
    "hrnet_w32": (28.5, 7.1, 74.4), "hrnet_w48": (63.6, 14.6, 75.1),
}
REMARKS = {
    "hourglass_8": "",  # filled in below from the model's own count
    "simplebaseline_r50": "the rule gives 8.99; the table prints 8.9 (carried over from the SimpleBaseline paper)",
    "simplebaseline_r101": "agrees (12.38)",
    "simplebaseline_r152": "the rule gives 15.76; the table prints 15.7",
    "hrnet_w32": "agrees", "hrnet_w48": "agrees",
}
counts = {}
for name in PAPER:
    with torch.device("meta"):
        counts[name] = measure_complexity(models.build(name), (256, 192))
with torch.device("meta"):  # the early revision of hg.lua, without the residual module after each hourglass
    early = measure_complexity(models.build("hourglass_8", residual_after_hourglass=False), (256, 192))
REMARKS["hourglass_8"] = (
    f"the released hg.lua of pose-hg-train (commit 7709053): {counts['hourglass_8']['params'] / 1e6:.2f} M, "
    f"{counts['hourglass_8']['paper_gflops']:.2f} GFLOPs by the rule; its early revision (528ff3e): "
    f"{early['params'] / 1e6:.2f} M, {early['paper_gflops']:.2f}")
closest = {key: min((("released", counts["hourglass_8"]), ("early", early)), key=lambda pair: abs(pair[1][key] - paper))[0]
           for key, paper in (("params", 25.1e6), ("paper_gflops", 14.3))}
complexity_rows = [
    {"model": name, "params (M)": counts[name]["params"] / 1e6, "paper params (M)": PAPER[name][0],
     "true GMACs (1e9)": counts[name]["macs"] / 1e9, "paper rule GFLOPs": counts[name]["paper_gflops"],
     "paper GFLOPs": PAPER[name][1], "paper AP": PAPER[name][2], "remark": REMARKS[name]}
    for name in PAPER
]
report.experiment_table(
    complexity_rows, chapter="07", title="The HRNet paper's complexity table, rebuilt (256 x 192, one image)",
    floatfmt=".2f",
    note=(f"Largest gap to the paper's parameter counts: "
          f"{max(abs(counts[n]['params'] / 1e6 - PAPER[n][0]) for n in PAPER):.2f} M; the hourglass's 25.1 M is "
          f"closest to the {closest['params']} hg.lua and its 14.3 GFLOPs to the {closest['paper_gflops']} one "
          f"(see its remark); by true multiply-adds "
          f"SimpleBaseline-R50 ({counts['simplebaseline_r50']['macs'] / 1e9:.1f} G) is "
          + ("cheaper" if counts["simplebaseline_r50"]["macs"] < counts["hrnet_w32"]["macs"] else "not cheaper")
          + f" than HRNet-W32 ({counts['hrnet_w32']['macs'] / 1e9:.1f} G), "
          + ("the opposite of the paper's GFLOPs, because the official rule counts each stride-2 deconvolution four "
             "times." if counts["simplebaseline_r50"]["macs"] < counts["hrnet_w32"]["macs"] else "as the paper's GFLOPs.")),
)

# %%
fig, ax = plt.subplots(figsize=(8, 3))
x = np.arange(len(PAPER))
ax.bar(x - 0.2, [row["paper rule GFLOPs"] for row in complexity_rows], width=0.4, label="paper's GFLOPs (rule, 2^30)")
ax.bar(x + 0.2, [row["true GMACs (1e9)"] for row in complexity_rows], width=0.4, label="true multiply-adds (10^9)")
ax.set_xticks(x, [name.replace("simplebaseline_", "SB-").replace("hrnet_", "HRNet-") for name in PAPER], fontsize=8)
ax.set_ylabel("billions per image")
ax.set_ylim(0, 1.3 * max(row["true GMACs (1e9)"] for row in complexity_rows))
ax.legend(fontsize=8, loc="upper left", ncol=2)
fig.tight_layout()

# %% [markdown]
# For HRNet and the hourglass, which only convolve, the two bars differ only by the unit
# ($2^{30}$ vs $10^9$, 7%). For SimpleBaseline the paper's count is 1.7 times the true one.
# So the common premise, "HRNet has fewer GFLOPs than SimpleBaseline", holds for the paper's
# number but not for the arithmetic the hardware actually does: HRNet-W32 performs **40%
# more** multiply-adds than SimpleBaseline-R50. (The paper's point stands on its own: 4 AP more
# for 2.2 G more multiply-adds is a good trade.)
#
# ## 6. Measured latency
#
# Multiply-adds are not time either. A GPU or a CPU core runs big, regular convolutions at a
# high fraction of its peak, and small ones (few channels, small maps) at a low one, because
# moving the data and launching the work then dominate. HRNet is made of many thin
# convolutions: 32 channels at $64 \times 48$ in its main branch, dozens of fuse layers, plus
# upsampling and additions that count no MACs but read and write whole feature maps.
# SimpleBaseline runs a few wide, well-optimised ResNet convolutions and three
# deconvolutions. `models.measure_latency` times one forward pass (evaluation mode, no
# gradients, after warm-up runs; on a GPU it waits for the GPU to finish before reading the
# clock). We measure the two paper models at $256 \times 192$ with one image, the way a
# live demo runs, on the CPU and on the GPU when there is one (there also with a batch of
# 32), and the two tiny models of the course at their $96 \times 64$.

# %% tags=["experiment"]
repeats, warmup = training.budget(10, 2), training.budget(3, 1)
cases = [("simplebaseline_r50", (256, 192), "cpu", 1), ("hrnet_w32", (256, 192), "cpu", 1),
         ("simplebaseline_tiny", (96, 64), "cpu", 1), ("hrnet_tiny", (96, 64), "cpu", 1),
         ("simplebaseline_tiny", (96, 64), "cpu", 32), ("hrnet_tiny", (96, 64), "cpu", 32)]
if torch.cuda.is_available():
    cases += [(name, (256, 192), "cuda", batch) for batch in (1, 32) for name in ("simplebaseline_r50", "hrnet_w32")]
latency_rows = []
for name, size, device, batch in cases:
    net = models.build(name)
    timing = measure_latency(net, size, device=device, batch=batch, warmup=warmup, repeats=repeats)
    with torch.device("meta"):
        macs = measure_complexity(models.build(name), size)["macs"]
    latency_rows.append({"model": name, "input": f"{size[0]}x{size[1]}", "device": device, "batch": batch,
                         "threads": timing["threads"], "GMACs / image": macs / 1e9, "ms / batch": timing["median_ms"],
                         "images/s": batch / (timing["median_ms"] / 1000)})

# %% tags=["experiment"]
def speed(model_name, device, batch):
    return next(row["images/s"] for row in latency_rows
                if row["model"] == model_name and row["device"] == device and row["batch"] == batch)


ratios = {device: speed("simplebaseline_r50", device, 1) / speed("hrnet_w32", device, 1)
          for device in sorted({row["device"] for row in latency_rows})}
mac_ratio = counts["hrnet_w32"]["macs"] / counts["simplebaseline_r50"]["macs"]
latency_note = (
    f"Measured here at batch 1 on the CPU: SimpleBaseline-R50 {1000 / speed('simplebaseline_r50', 'cpu', 1):.0f} ms, "
    f"HRNet-W32 {1000 / speed('hrnet_w32', 'cpu', 1):.0f} ms (their ratio of true multiply-adds: {mac_ratio:.2f}). "
    "SimpleBaseline-R50 processes "
    + " and ".join(f"{ratio:.2f} times as many images per second as HRNet-W32 on the {device.upper()}"
                   for device, ratio in ratios.items())
    + ("; the claim holds, although the paper's GFLOPs suggest the opposite: SimpleBaseline does fewer true "
       "multiply-adds, in fewer and wider layers." if all(r > 1 for r in ratios.values()) else
       "; the claim does not hold everywhere on this machine (see the text).")
    + (" Fast profile: few repetitions on a shared machine, noisy." if training.fast_profile() else "")
)
latency_table = report.experiment_table(latency_rows, chapter="07", floatfmt=".2f", note=latency_note,
                                        title="Latency of one forward pass (median; eval mode, no gradients)")
latency_table

# %% tags=["experiment"]
fig, ax = plt.subplots(figsize=(8, 3))
labels = [f"{row['model'].replace('simplebaseline', 'SB').replace('hrnet', 'HRNet')}\n{row['device']}, "
          f"batch {row['batch']}" for row in latency_rows]
colours = ["C0" if row["model"].startswith("simple") else "C1" for row in latency_rows]
ax.bar(range(len(latency_rows)), [row["images/s"] for row in latency_rows], color=colours)
ax.set_yscale("log")
ax.set_xticks(range(len(latency_rows)), labels, fontsize=7)
ax.set_ylabel("images per second (log)")
fig.tight_layout()

# %% [markdown]
# Read the ratios rather than the absolute numbers, which depend on your processor and on
# what else it is doing. On a CPU, time roughly follows the true multiply-adds, plus a penalty
# for HRNet's many small layers. If your machine has a GPU, the table has its rows too; there,
# expect the penalty to be larger at batch 1: the GPU could run far more arithmetic than
# either network needs, so the time goes into launching hundreds of small kernels one after
# the other, and HRNet has more of them. With a batch of 32 each kernel has more work and the
# gap should shrink. Either way, the observation has a reason that the GFLOPs column
# hides. The note under the table gives this run's times and compares their ratio with the
# ratio of true multiply-adds.
#
# ## 7. Experiment: tiny HRNet against tiny SimpleBaseline at an equal budget
#
# The paper compares big networks trained for 210 epochs on COCO. Here we ask the same
# question at the course's scale, with the two tiny presets: `hrnet_tiny` (width 16, one
# module per stage, two blocks per branch, 1.25 M parameters) and `simplebaseline_tiny` (a
# quarter-width ResNet-18 and three 64-channel deconvolutions, 0.97 M parameters), both
# $96 \times 64 \to 24 \times 16$, trained on the synthetic people with the same recipe.
# Two kinds of fairness:
#
# - **equal steps**: both see the same number of images;
# - **equal time**: SimpleBaseline trains for as long as HRNet took, which on a CPU buys it more
#   steps, since each of its steps is cheaper.

# %% tags=["experiment"]
steps = training.budget(full=600, fast=8)
input_size, heatmap_size = (96, 64), (24, 16)
train_set = training.top_down_data(data.default_split_dir("single/train"), input_size, heatmap_size, augment=True,
                                   limit=training.budget(None, 256))
val_set = training.top_down_data(data.default_split_dir("single/val"), input_size, heatmap_size,
                                 limit=training.budget(None, 64))
fit_options = dict(batch_size=32, lr=2e-3, seed=0, eval_items=training.budget(256, 32))
runs = {}
for label, name in (("SimpleBaseline, equal steps", "simplebaseline_tiny"), ("HRNet, equal steps", "hrnet_tiny")):
    print(label)
    net = models.build(name, seed=0)  # the same initial weights for a rerun
    history = training.fit(net, train_set, val_set, losses.HeatmapLoss(), steps,
                           eval_every=training.budget(steps // 6, steps), **fit_options)
    runs[label] = (net, history)
hrnet_seconds = runs["HRNet, equal steps"][1].seconds
print(f"SimpleBaseline, equal time: {hrnet_seconds:.0f} s")
net = models.build("simplebaseline_tiny", seed=0)
max_steps = training.budget(4 * steps, 2 * steps)  # a cap; the time budget decides
history = training.fit(net, train_set, val_set, losses.HeatmapLoss(), max_steps, max_seconds=hrnet_seconds,
                       eval_every=training.budget(steps // 3, max_steps), **fit_options)
runs["SimpleBaseline, equal time"] = (net, history)

# %% tags=["experiment"]
budget_rows = []
for label, (net, history) in runs.items():
    scores = training.evaluate(net, val_set, coco_ap=False).metrics
    with torch.device("meta"):
        macs = measure_complexity(models.build(net.name), input_size)["macs"]
    budget_rows.append({"run": label, "parameters": models.count_parameters(net), "MMACs / image": macs / 1e6,
                        "steps": history.steps[-1], "train seconds": history.seconds,
                        "train images/s": history.images_per_second, "PCK@0.2": scores["pck@0.2"],
                        "PCK@0.1": scores["pck@0.1"], "PCK@0.05": scores["pck@0.05"],
                        "mean error (px)": scores["mean_error"]})
by_run = {row["run"]: row["PCK@0.1"] for row in budget_rows}
hrnet_wins_steps = by_run["HRNet, equal steps"] > by_run["SimpleBaseline, equal steps"]
hrnet_wins_time = by_run["HRNet, equal steps"] > by_run["SimpleBaseline, equal time"]
step_ratio = ((runs["HRNet, equal steps"][1].seconds / runs["HRNet, equal steps"][1].steps[-1])
              / (runs["SimpleBaseline, equal steps"][1].seconds / runs["SimpleBaseline, equal steps"][1].steps[-1]))
budget_note = {
    (True, True): "HRNet is more precise (PCK@0.1) at equal steps and even at equal time: the paper's direction.",
    (True, False): "HRNet is more precise (PCK@0.1) at equal steps, as in the paper, but at equal time the cheaper "
                   "SimpleBaseline catches up with the extra steps its speed buys on this machine.",
    (False, True): "HRNet is less precise (PCK@0.1) at equal steps but more precise at equal time, an odd result "
                   "that a short, noisy toy run can produce; the paper's order is HRNet first.",
    (False, False): "Unlike the paper, the tiny SimpleBaseline is more precise (PCK@0.1) at equal steps and at equal "
                    "time: the paper's +4 AP comes with ImageNet pretraining and 210 epochs of COCO, which a short "
                    "toy run on small synthetic people does not reproduce (see the text).",
}[hrnet_wins_steps, hrnet_wins_time] + f" A tiny HRNet step took {step_ratio:.1f} times a tiny SimpleBaseline step." + " PCK@0.1 / PCK@0.05: " + "; ".join(
    f"{row['run']} {row['PCK@0.1']:.2f} / {row['PCK@0.05']:.2f} ({row['steps']} steps, {row['train seconds']:.0f} s)"
    for row in budget_rows) + "." + (" Fast profile: a handful of steps, the numbers are noise."
                                        if training.fast_profile() else "")
budget_table = report.experiment_table(budget_rows, chapter="07", note=budget_note,
                                       title="Tiny HRNet vs tiny SimpleBaseline at an equal budget (validation)")
budget_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
for label, (net, history) in runs.items():
    seconds_per_step = history.seconds / max(history.steps[-1], 1)
    for ax, x in zip(axes, (np.array(history.val_steps), np.array(history.val_steps) * seconds_per_step)):
        ax.plot(x, [v["pck@0.1"] for v in history.val], marker="o", label=label)
axes[0].set_xlabel("training step")
axes[1].set_xlabel("training time (s)")
for ax in axes:
    ax.set_ylabel("validation PCK@0.1")
    ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# Discuss your own table with the figure: on the left, who learns more per step; on the
# right, who learns more per second of *your* machine. On a CPU the tiny HRNet's step costs
# more than the tiny SimpleBaseline's (more multiply-adds, in many small layers; the note gives
# the ratio), so equal time gives SimpleBaseline more steps. On a GPU both tiny models are too small to
# keep it busy, so their steps should cost much more nearly the same, and the equal-steps
# comparison is the one that matters. The note under the table gives each run's PCK@0.1 and
# PCK@0.05, its steps and its seconds, and says whether the paper's order holds here; where
# HRNet leads, expect the lead to be clearest at the strict PCK@0.05, where the
# high-resolution branch pays. Two cautions about reading a
# toy run as a verdict on the paper: our people are small and simple (a 96 x 64 crop, one
# person, no real clutter), so the "small parts lost at 1/32" problem is milder than on COCO;
# and neither network is pretrained on ImageNet, while both of the paper's are.
#
# The trained tiny HRNet in the prediction browser (order by "worst", look at the wrists and
# ankles):

# %% tags=["experiment"]
widgets.prediction_browser(runs["HRNet, equal steps"][0], val_set, joint="right_wrist")

# %% [markdown]
# ## Stretch exercise: the paper's GFLOPs of a whole model
#
# Section 5 used `measure_complexity` to rebuild the paper's table. Write the count yourself:
# run the model once on a zero image of `input_size` (one image, evaluation mode, no
# gradients) and, with a **forward hook** on every `nn.Conv2d` and `nn.ConvTranspose2d`, add up
# what the official `get_model_summary` adds: the layer's number of weights times the number
# of pixels of its **output**; return the total divided by $2^{30}$. Remove the hooks
# afterwards (`handle.remove()`). PyTorch's hooks: `module.register_forward_hook(hook)`, where
# `hook(module, inputs, output)` is called after each forward of that module. (Worth bonus
# points: it goes beyond the chapter's core.)


# %%
def paper_rule_gflops(model, input_size):
    """The HRNet paper's "GFLOPs" of a model on one (3, H, W) image:

        sum over every Conv2d and ConvTranspose2d call of  weight.numel() * H_out * W_out,  / 2^30

    Args:
        model: a torch.nn.Module taking (1, 3, H, W) images.
        input_size: (H, W).

    Returns:
        a float.
    """
    ### BEGIN SOLUTION
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += module.weight.numel() * output.shape[-2] * output.shape[-1]

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, *input_size))
    for handle in handles:
        handle.remove()
    return total / 2**30
    ### END SOLUTION


# %%
checks.check_paper_rule_gflops(paper_rule_gflops)

# %%
# bonus: 2
checks.check_paper_rule_gflops(paper_rule_gflops)
### BEGIN HIDDEN TESTS
checks.hidden_paper_rule_gflops(paper_rule_gflops)
### END HIDDEN TESTS

# %% [markdown]
# ## What the paper reported
#
# Sun et al. 2019, **COCO val2017**, keypoint **AP** (OKS), people from a detector with 56.4
# person AP, flip test, GFLOPs by the official rule (section 5):
#
# | method | backbone | input | params | GFLOPs | AP |
# |---|---|---|---|---|---|
# | 8-stage Hourglass | | 256 x 192 | 25.1 M | 14.3 | 66.9 |
# | CPN | ResNet-50 | 256 x 192 | 27.0 M | 6.20 | 68.6 |
# | CPN + OHKM | ResNet-50 | 256 x 192 | 27.0 M | 6.20 | 69.4 |
# | SimpleBaseline | ResNet-50 | 256 x 192 | 34.0 M | 8.90 | 70.4 |
# | SimpleBaseline | ResNet-101 | 256 x 192 | 53.0 M | 12.4 | 71.4 |
# | SimpleBaseline | ResNet-152 | 256 x 192 | 68.6 M | 15.7 | 72.0 |
# | HRNet-W32, no ImageNet pretraining | | 256 x 192 | 28.5 M | 7.10 | 73.4 |
# | **HRNet-W32** | | 256 x 192 | 28.5 M | 7.10 | **74.4** |
# | **HRNet-W48** | | 256 x 192 | 63.6 M | 14.6 | **75.1** |
# | SimpleBaseline | ResNet-152 | 384 x 288 | 68.6 M | 35.6 | 74.3 |
# | HRNet-W32 | | 384 x 288 | 28.5 M | 16.0 | 75.8 |
# | HRNet-W48 | | 384 x 288 | 63.6 M | 32.9 | 76.3 |
#
# On COCO test-dev, HRNet-W48 at $384 \times 288$ reached 75.5 AP (77.0 with extra training
# data), and on the MPII test set HRNet-W32 reached 92.3 PCKh@0.5. The paper's tables compare
# parameters and GFLOPs, not wall-clock time; the latency claim is not the paper's, and
# section 6 measured it. Our rebuild of the table (section 5) reproduces the parameter counts
# and GFLOPs of SimpleBaseline and HRNet. For the 8-stage hourglass it builds the released
# `hg.lua` of `pose-hg-train` (chapter 04) and also counts its early revision; the table's
# note says which of the two is closer to each of the paper's numbers (25.1 M, 14.3 GFLOPs).
#
# ## Check your understanding
#
# 1. What are the shapes of HRNet-W48's four branches in stage 4 for a $384 \times 288$ input?
#
# <details><summary>Answer</summary>
#
# $(48, 96, 72)$, $(96, 48, 36)$, $(192, 24, 18)$, $(384, 12, 9)$: the input divided by 4, 8, 16,
# 32, and $48 \cdot 2^b$ channels.
# </details>
#
# 2. Why does the fusion upsample *after* the $1\times1$ convolution, and not before?
#
# <details><summary>Answer</summary>
#
# The result is the same (a $1\times1$ convolution and nearest upsampling commute: both act on
# each pixel independently), but convolving at the coarse resolution touches $4^{j-i}$ times
# fewer pixels: the same answer for a fraction of the multiply-adds and memory.
# </details>
#
# 3. The paper gives SimpleBaseline-R50 8.9 GFLOPs and HRNet-W32 7.1. Which network does more
#    arithmetic, and where does the difference come from?
#
# <details><summary>Answer</summary>
#
# HRNet-W32 (7.6 G true multiply-adds against 5.4 G). The official counting rule multiplies a
# transposed convolution's weights by its *output* pixels, four times its real work at stride
# 2; SimpleBaseline's three deconvolutions really cost 1.4 G multiply-adds but are counted as
# 5.6 G. (The rule also divides by $2^{30}$ rather than $10^9$.)
# </details>
#
# 4. Stage 4 holds about 70% of HRNet-W32's parameters but under 40% of its multiply-adds.
#    Why?
#
# <details><summary>Answer</summary>
#
# Its coarse branches are wide (128 and 256 channels) and a block's weights grow with the
# square of its width, but they work on few pixels ($16 \times 12$ and $8 \times 6$): weights
# are counted once, multiply-adds once per pixel.
# </details>
#
# 5. On a GPU at batch 1, HRNet-W32 is slower than SimpleBaseline-R50 by more than their
#    multiply-adds suggest. Give two reasons, and one way to narrow the gap.
#
# <details><summary>Answer</summary>
#
# Many small convolutions (thin branches, dozens of fuse layers) each launch a kernel that
# leaves most of the GPU idle, and the upsampling and additions of every fusion move whole
# feature maps through memory without any multiply-adds. Larger batches (more work per
# kernel), fused or compiled kernels (e.g. `torch.compile`), or lower precision narrow it.
# </details>

# %% [markdown]
# ## Summary
#
# - After a downsampling by 32 a wrist is known only to a $32 \times 32$ cell; **HRNet** keeps
#   a branch at $1/4$ of the input from the stem to the head.
# - The layout: a stride-4 stem, four stages, parallel branches at $1/4$ to $1/32$ with $C$,
#   $2C$, $4C$, $8C$ channels, **transitions** that open a branch and 1, 4 and 3 **exchange
#   modules** in stages 2 to 4.
# - The **fusion** brings every branch to every other: strided $3 \times 3$ convolutions down,
#   a $1 \times 1$ convolution then nearest upsampling up, and a sum.
# - Three costs that disagree: parameters, true multiply-adds, and the paper's "GFLOPs", whose
#   rule counts a stride-2 transposed convolution four times (and divides by $2^{30}$).
# - Fewer operations are not less time: many thin layers and the fusion's memory traffic cost
#   wall-clock time that no multiply-add count sees, so measure latency on your machine.
# - The paper: HRNet-W32 74.4 AP against SimpleBaseline-R50's 70.4 on COCO val2017 at
#   $256 \times 192$; HRNet-W48 75.5 AP on test-dev.
# - A fair comparison of two models fixes a budget: equal steps and equal time can give
#   different winners.

# %% [markdown]
# ## What came next
#
# The methods of this course reach about 75 AP on COCO. Later ideas moved the field on;
# each paper is worth reading with this course's vocabulary.
#
# - **SimCC and RTMPose** (Y. Li et al., *SimCC: a Simple Coordinate Classification
#   Perspective for Human Pose Estimation*, ECCV 2022,
#   [arXiv:2107.03332](https://arxiv.org/abs/2107.03332); T. Jiang et al., *RTMPose:
#   Real-Time Multi-Person Pose Estimation based on MMPose*, 2023,
#   [arXiv:2303.07399](https://arxiv.org/abs/2303.07399)). Instead of a 2-D heatmap, each
#   keypoint gets two 1-D classifications, one over $x$ and one over $y$, with several bins
#   per pixel: sub-pixel precision without upsampling layers or DARK-style decoding
#   (chapter 02). RTMPose builds a fast top-down model on it: RTMPose-m reaches 75.8 AP on
#   COCO at more than 90 frames per second on a desktop CPU.
# - **ViTPose** (Y. Xu, J. Zhang, Q. Zhang, D. Tao, NeurIPS 2022,
#   [arXiv:2204.12484](https://arxiv.org/abs/2204.12484)). A plain vision transformer,
#   pretrained as a masked autoencoder, followed by a decoder as light as SimpleBaseline's
#   (chapter 06): no multi-resolution design at all, and it scales with model size. Its
#   largest model (1 billion parameters) reaches 80.9 AP on COCO test-dev, 81.1 as an
#   ensemble.
# - **RLE: residual log-likelihood estimation** (J. Li et al., *Human Pose Regression with
#   Residual Log-likelihood Estimation*, ICCV 2021,
#   [arXiv:2107.11291](https://arxiv.org/abs/2107.11291)). Back to DeepPose-style regression
#   (chapter 01), with a better loss: a normalizing flow learns the distribution of the
#   errors, and the loss is its negative log-likelihood rather than an L1 or L2 distance.
#   It adds 12.4 AP on COCO to plain regression at no test-time cost, and for the first time
#   lets regression match or beat heatmaps.
# - **Bottom-up successors** (OpenPose's part affinity fields, HigherHRNet, DEKR) close chapter 09,
#   where the grouping problem they solve is taught.
