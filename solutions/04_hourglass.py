# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 04: Stacked Hourglass networks
#
# Convolutional Pose Machines (chapter 03) refine their belief maps stage after stage, and
# each stage needs a large receptive field to relate a wrist to an elbow on the other side
# of the body. Newell, Yang and Deng (2016) found a compact way to get both the *whole
# body* and the *exact pixel* in one module: pool the image features all the way down to a
# few cells, where every cell sees the whole person, then come back up to full resolution,
# adding at every step the features that were set aside on the way down. Drawn with the
# resolution as its height, the module looks like an hourglass. Stack several of them, ask
# each one for heatmaps, and you have the network that topped the MPII benchmark in 2016.
#
# ## Learning goals
#
# After this chapter you can
#
# - write the **residual module** of the hourglass, a pre-activation bottleneck, including
#   the $1\times1$ skip convolution needed when the number of channels changes;
# - write an **hourglass of order $n$** recursively: an order-$n$ hourglass is a small
#   wrapper around an hourglass of order $n-1$;
# - **stack** hourglasses with **intermediate supervision** and the remapping of features and
#   heatmaps into the next stack;
# - compare the **symmetric encoder-decoder** of the hourglass with SimpleBaseline's **heavy
#   encoder and light decoder**, and say what the skip connections are for;
# - measure, at equal training steps, what a second stack and the skip connections buy.
#
# ## The papers
#
# - A. Newell, K. Yang, J. Deng, *Stacked Hourglass Networks for Human Pose Estimation*,
#   ECCV 2016 ([arXiv:1603.06937](https://arxiv.org/abs/1603.06937)); the official Torch code
#   is [princeton-vl/pose-hg-train](https://github.com/princeton-vl/pose-hg-train), whose
#   released `src/models/hg.lua` (commit 7709053, September 2016) `course_lib/models/hourglass.py`
#   follows layer by layer; its early revision (June 2016, no residual module after each
#   hourglass) is kept as an option.
# - K. He, X. Zhang, S. Ren, J. Sun, *Identity Mappings in Deep Residual Networks*, ECCV 2016
#   ([arXiv:1603.05027](https://arxiv.org/abs/1603.05027)): the pre-activation residual unit.
# - B. Xiao, H. Wu, Y. Wei, *Simple Baselines for Human Pose Estimation and Tracking*, ECCV
#   2018 ([arXiv:1804.06208](https://arxiv.org/abs/1804.06208)): the heavy-encoder,
#   light-decoder design we compare with (chapter 06 builds it).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import data, heatmaps, losses, models, report, training, viz
from course_lib.grading import ch04_hourglass as checks
from course_lib.keypoints import COCO_KEYPOINTS
from course_lib.models import hourglass

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80
INPUT_SIZE, HEATMAP_SIZE = (96, 64), (24, 16)  # the tiny models' crops and their stride-4 heatmaps

# %% [markdown]
# ## 1. The residual module
#
# Every convolution of the hourglass lives inside one building block, a **residual module**.
# It is the *bottleneck* of ResNet-50 (a $1\times1$ convolution that halves the channels, a
# $3\times3$ convolution, a $1\times1$ convolution back up) in its **pre-activation** form
# (He et al., *Identity Mappings*): batch normalisation and ReLU come *before* each
# convolution, and nothing follows the addition, so the input travels to the output through
# the skip branch untouched:
#
# $$y = \mathrm{conv}_{1\times1}\big(\sigma(\mathrm{BN}(\mathrm{conv}_{3\times3}(\sigma(\mathrm{BN}(\mathrm{conv}_{1\times1}(\sigma(\mathrm{BN}(x)))))))\big) + \mathrm{skip}(x), \qquad \sigma = \mathrm{ReLU}.$$
#
# With $C_\text{in}$ input and $C_\text{out}$ output channels, the convolutions map
# $C_\text{in} \to C_\text{out}/2 \to C_\text{out}/2 \to C_\text{out}$. The skip branch is
# the identity when $C_\text{in} = C_\text{out}$; otherwise the shapes could not be added,
# and a $1\times1$ convolution $C_\text{in} \to C_\text{out}$ maps the input to the right
# number of channels. Neither branch changes the height and width: the module changes *what*
# is stored at each position, never *where*.
#
# ### Exercise 1: the residual module
#
# Write the module as a PyTorch `nn.Module`. Use exactly the attribute names of the
# docstring (the checks load the course's weights into your layers by these names), keep
# PyTorch's default `bias=True` on every convolution (the original Torch code has biases
# everywhere), and give the $3\times3$ convolution `padding=1` so that the size stays.


# %%
class ResidualModule(nn.Module):
    """The stacked hourglass's residual module: a pre-activation bottleneck (Newell et al. 2016, Fig. 4).

        y = conv3(ReLU(bn3(conv2(ReLU(bn2(conv1(ReLU(bn1(x))))))))) + skip(x)

    bn1 = BatchNorm2d(in),    conv1 = Conv2d(in, out/2, 1)
    bn2 = BatchNorm2d(out/2), conv2 = Conv2d(out/2, out/2, 3, padding=1)
    bn3 = BatchNorm2d(out/2), conv3 = Conv2d(out/2, out, 1)
    skip = nn.Identity() if in == out, else Conv2d(in, out, 1)

    Args:
        in_channels, out_channels: C_in and C_out (C_out even).

    forward: (N, C_in, H, W) -> (N, C_out, H, W).
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        ### BEGIN SOLUTION
        mid = out_channels // 2
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, kernel_size=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, kernel_size=1)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + self.skip(x)
        ### END SOLUTION


# %%
checks.check_ResidualModule(ResidualModule)

# %%
# points: 3
checks.check_ResidualModule(ResidualModule)
### BEGIN HIDDEN TESTS
checks.hidden_ResidualModule(ResidualModule)
### END HIDDEN TESTS

# %% [markdown]
# The course's implementation of what you just wrote is `hourglass.Residual`; the networks
# below are built from it. The bottleneck is what keeps the module cheap: with 256 channels,
# the size the paper uses everywhere, a plain pair of $3\times3$ convolutions would cost
# $2 \cdot 9 \cdot 256^2 \approx 1.2$M parameters, the bottleneck about a sixth of that.

# %%
for c_in, c_out in ((256, 256), (128, 256)):
    module = hourglass.Residual(c_in, c_out)
    print(f"Residual({c_in}, {c_out}): {sum(p.numel() for p in module.parameters()):,} parameters, "
          f"skip = {type(module.skip).__name__}")

# %% [markdown]
# ## 2. One hourglass, written recursively
#
# An hourglass of **order $n$** takes a feature map $x$ of size $H \times W$ and returns one
# of the same size. It splits into two branches:
#
# - the **upper branch** keeps the resolution: $\mathit{up}_1 = R(x)$, a residual module;
# - the **lower branch** max-pools $x$ to $H/2 \times W/2$, runs a residual module
#   ($\mathit{low}_1$), then an hourglass of order $n-1$ (or, at order 1, one more residual
#   module: the bottom of the hourglass), then another residual module ($\mathit{low}_3$),
#   and finally upsamples by 2 with the nearest neighbour.
#
# $$\mathrm{HG}_n(x) = R_{up}(x) + \mathrm{up}_2\Big(R_{low_3}\big(\mathrm{HG}_{n-1}\big(R_{low_1}(\mathrm{pool}_2(x))\big)\big)\Big),
# \qquad \mathrm{HG}_0 = R_{bottom}.$$
#
# The paper uses order 4: on the $64 \times 64$ features of a $256 \times 256$ image the
# bottom is $4 \times 4$, where each cell's receptive field covers the whole person (the
# **global** picture: which way the body faces, where the other limbs are), and the upper
# branches bring back the **local** detail that pooling threw away. The course's tiny
# preset has order 3 on $24 \times 16$ maps. The figure traces one pass through it: the
# height of each bar is the number of rows of the map each residual module sees.

# %%
sizes = hourglass.residual_output_sizes(models.build("hourglass_tiny", num_stacks=1), INPUT_SIZE)
roles = {"low1": "encoder (after a max-pool)", "low2": "bottom", "low3": "decoder (before an upsampling)"}
path = [(name.split(".")[-2], shape) for name, shape in sizes if name.startswith("hourglasses.")
        and name.split(".")[-2] in roles]  # the lower branch, in the order it runs
colours = {"low1": "#1f77b4", "low2": "#7f7f7f", "low3": "#ff7f0e"}
fig, ax = plt.subplots(figsize=(8, 3.2))
bars = [("input", (64, *HEATMAP_SIZE)), *path, ("output", (64, *HEATMAP_SIZE))]
for position, (role, (channels, height, width)) in enumerate(bars):
    colour, label = colours.get(role, "#2ca02c"), roles.get(role, "hourglass input / output (stride 4)")
    ax.bar(position, height, color=colour, label=label if role not in [b[0] for b in bars[:position]] + ["output"] else None)
    ax.text(position, height / 2, f"{height}x{width}", ha="center", va="center", fontsize=8, color="white")
for level in range(3):  # a skip branch joins a level's input to its output, at the same resolution
    height = HEATMAP_SIZE[0] / 2**level + 0.8
    ax.annotate("", xy=(len(bars) - 1 - level, height), xytext=(level, height),
                arrowprops=dict(arrowstyle="->", connectionstyle="arc3,rad=-0.1", color="#d62728"))
ax.text((len(bars) - 1) / 2, HEATMAP_SIZE[0] + 6.5, "skip branches (up1), one per resolution", color="#d62728",
        ha="center", fontsize=9)
ax.set_ylim(0, HEATMAP_SIZE[0] + 9)
ax.set_xticks([])
ax.set_ylabel("rows of the feature map")
ax.legend(fontsize=8, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.32))
ax.set_title("an order-3 hourglass on a 24x16 map: down to 3x2 and back", fontsize=10)
fig.tight_layout()

# %% [markdown]
# ### Exercise 2: an hourglass of order $n$
#
# Write the forward pass of one hourglass, given the module that holds its layers
# (`hourglass.Hourglass`, already built with random or trained weights). It has the
# attributes
#
# - `up1`: the upper branch's residual module(s), or `None` when the hourglass is built
#   **without skip connections** (then $\mathrm{HG}_n(x)$ is the lower branch alone);
# - `low1`, `low3`: the residual modules before and after the inner part;
# - `low2`: for order $n > 1$, an hourglass of order $n - 1$ (with the same four attributes);
#   for order 1, the bottom residual module(s).
#
# Use `F.max_pool2d(x, 2)` and `F.interpolate(..., scale_factor=2, mode="nearest")` (or the
# module's own `pool` and `upsample`). For $n > 1$, do **not** call `hourglass.low2(...)`
# (that would run the course's forward): call your own function on it. That is the whole
# point: the code is as recursive as the architecture.


# %%
def hourglass_forward(x, hourglass, order):
    """Forward pass of one hourglass of order n, written recursively (Newell et al. 2016, Fig. 3).

        up1  = hourglass.up1(x)                                  (full resolution; None: no skip)
        low1 = hourglass.low1(maxpool_2x2(x))                    (half resolution)
        low2 = hourglass_forward(low1, hourglass.low2, n - 1)    if n > 1
             = hourglass.low2(low1)                              if n = 1
        low3 = hourglass.low3(low2)
        out  = up1 + upsample_nearest_2x(low3)                   (out = upsample_nearest_2x(low3) if up1 is None)

    Args:
        x: (N, C, H, W) tensor, H and W multiples of 2 ** n.
        hourglass: a course_lib.models.hourglass.Hourglass of order n.
        order: n >= 1.

    Returns:
        (N, C, H, W) tensor.
    """
    ### BEGIN SOLUTION
    low1 = hourglass.low1(F.max_pool2d(x, 2))  # (N, C, H/2, W/2)
    if order > 1:
        low2 = hourglass_forward(low1, hourglass.low2, order - 1)
    else:
        low2 = hourglass.low2(low1)
    up2 = F.interpolate(hourglass.low3(low2), scale_factor=2, mode="nearest")  # (N, C, H, W)
    if hourglass.up1 is None:
        return up2
    return hourglass.up1(x) + up2
    ### END SOLUTION


# %%
checks.check_hourglass_forward(hourglass_forward)

# %%
# points: 3
checks.check_hourglass_forward(hourglass_forward)
### BEGIN HIDDEN TESTS
checks.hidden_hourglass_forward(hourglass_forward)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Stacking, with intermediate supervision
#
# One hourglass already sees the whole body, so why stack eight of them? Because the first
# guess can be wrong in ways that only the *context of the other joints* reveals (a left
# knee predicted where the right knee is), and a second hourglass that reads the first
# one's heatmaps can fix it, just as CPM's later stages did. The full network:
#
# 1. a **stem** brings the image to a quarter of its size: $7\times7$ stride-2 convolution,
#    a residual module, max-pool, two more residual modules ($256 \times 256 \to 64 \times 64$);
# 2. for each stack $s$: an hourglass, a residual module at the same resolution (`after`, in
#    the released `hg.lua`; the early revision and `hourglass_tiny` have none), then a
#    $1\times1$ convolution with BN and ReLU (`lin`) giving features $f_s$, and a $1\times1$
#    convolution giving $K$ heatmaps $h_s$;
# 3. **remapping**: both are mapped back to the feature width by $1\times1$ convolutions and
#    *added* to the stack's input,
#    $$x_{s+1} = x_s + W_f * f_s + W_h * h_s,$$
#    so that each stack starts from the previous one's features *and* its predictions;
# 4. **intermediate supervision**: every $h_s$ gets the same target, and the losses are
#    summed, $L = \sum_s \mathrm{MSE}(h_s, G)$ (`losses.HeatmapLoss` does exactly this on the
#    list of stacks, as in chapter 03). Early stacks are pushed to make a real prediction,
#    and their gradient does not have to travel through all later stacks.
#
# ### Exercise 3: the stacked forward pass
#
# Given a `hourglass.StackedHourglass` (attributes `stem`, `hourglasses`, `after`, `lins`,
# `heatmap_layers`, `remap_features`, `remap_heatmaps`, each a list with one module per
# stack, the remapping lists one shorter, and `num_stacks`; `after[s]` is an identity in the
# early layout), return the **list** of every
# stack's heatmaps. Run each hourglass with `model.hourglasses[s](x)` (the course's
# hourglass module); only `model(images)` itself, the answer, is off limits.


# %%
def stacked_hourglass_forward(images, model):
    """The stacked hourglass with intermediate supervision and remapping (Newell et al. 2016, Fig. 4).

        x_1 = stem(images)
        for s = 1 .. S:
            f_s = lins[s](after[s](hourglasses[s](x_s)))
            h_s = heatmap_layers[s](f_s)
            x_{s+1} = x_s + remap_features[s](f_s) + remap_heatmaps[s](h_s)     (s < S only)

    Args:
        images: (N, 3, H, W) tensor.
        model: a course_lib.models.hourglass.StackedHourglass with S = model.num_stacks.

    Returns:
        the list [h_1, ..., h_S] of (N, K, H/4, W/4) heatmaps; h_S is the prediction.
    """
    ### BEGIN SOLUTION
    x = model.stem(images)  # (N, F, H/4, W/4)
    outputs = []
    for s in range(model.num_stacks):
        features = model.lins[s](model.after[s](model.hourglasses[s](x)))
        heatmaps = model.heatmap_layers[s](features)  # (N, K, H/4, W/4)
        outputs.append(heatmaps)
        if s < model.num_stacks - 1:
            x = x + model.remap_features[s](features) + model.remap_heatmaps[s](heatmaps)
    return outputs
    ### END SOLUTION


# %%
checks.check_stacked_hourglass_forward(stacked_hourglass_forward)

# %%
# points: 2
checks.check_stacked_hourglass_forward(stacked_hourglass_forward)
### BEGIN HIDDEN TESTS
checks.hidden_stacked_hourglass_forward(stacked_hourglass_forward)
### END HIDDEN TESTS

# %% [markdown]
# The course's `StackedHourglass.forward` is the same loop. The model's size grows linearly
# with the number of stacks; the paper's 8-stack network at the $256 \times 192$ input of
# the COCO comparisons, and the course's tiny preset at $96 \times 64$ with one and two
# stacks. `models.measure_complexity` counts the multiply-adds of one image; the papers' "GFLOPs"
# count multiply-adds too, but divide by $2^{30}$ rather than $10^9$ (chapter 07 has the
# details).

# %%
with torch.device("meta"):  # counting needs shapes only: no weights are allocated
    presets = {"hourglass_8 (paper)": (models.build("hourglass_8"), (256, 192)),
               "hourglass_tiny, 2 stacks": (models.build("hourglass_tiny"), INPUT_SIZE),
               "hourglass_tiny, 1 stack": (models.build("hourglass_tiny", num_stacks=1), INPUT_SIZE)}
for name, (model, size) in presets.items():
    counted = models.measure_complexity(model, size)
    print(f"{name:26s} input {size[0]}x{size[1]}: {counted['params'] / 1e6:6.2f}M parameters, "
          f"{counted['macs'] / 1e9:6.3f}e9 multiply-adds = {counted['paper_gflops']:6.3f} 'GFLOPs' (papers' rule)")

# %% [markdown]
# The diagram of the 8-stack network, drawn from the model's own configuration
# (`viz.draw_stacked_hourglass`): stem, hourglasses, the residual module and $1\times1$ layer
# after each, the heatmaps that get a loss, and the remapping into the next stack's input.

# %%
viz.draw_stacked_hourglass(presets["hourglass_8 (paper)"][0])
plt.show()

# %% [markdown]
# Two revisions of `hg.lua` are in the official repository's history: the early one (June
# 2016) goes from each hourglass straight to the $1\times1$ `lin` layer; the released one
# (September 2016, the file as it stands) puts one residual module at the output resolution
# in between. The HRNet paper's comparison table lists the 8-stack hourglass with 25.1M
# parameters and 14.3 GFLOPs at $256 \times 192$ without saying which revision it counted.
# The course counts both with 17 heatmaps, by the paper's rule:

# %%
HRNET_TABLE = {"params (M)": 25.1, "GFLOPs": 14.3}  # the HRNet paper's Table 1, 8-stage hourglass
with torch.device("meta"):
    revisions = {"released hg.lua (the course's hourglass_8)": models.build("hourglass_8"),
                 "early hg.lua": models.build("hourglass_8", residual_after_hourglass=False)}
revision_rows = []
for name, model in revisions.items():
    counted = models.measure_complexity(model, (256, 192))
    revision_rows.append({"revision": name, "params (M)": counted["params"] / 1e6, "GFLOPs": counted["paper_gflops"],
                          "table params (M)": HRNET_TABLE["params (M)"], "table GFLOPs": HRNET_TABLE["GFLOPs"]})
closest_params = min(revision_rows, key=lambda r: abs(r["params (M)"] - HRNET_TABLE["params (M)"]))["revision"]
closest_flops = min(revision_rows, key=lambda r: abs(r["GFLOPs"] - HRNET_TABLE["GFLOPs"]))["revision"]
report.experiment_table(
    revision_rows, chapter="04", title="The 8-stack hourglass at 256x192: the two revisions of hg.lua vs the table",
    note=(f"The table's parameter count is closest to the {closest_params}, its GFLOPs to the {closest_flops}"
          + (": no single revision gives both of the table's figures." if closest_params != closest_flops else ".")),
    floatfmt=".2f",
)

# %% [markdown]
#
# ## 4. Symmetric encoder-decoder, or heavy encoder and light decoder?
#
# Figure 2 of the HRNet paper lines up four designs: (a) the hourglass, (b) the Cascaded
# Pyramid Network, (c) SimpleBaseline with transposed convolutions, (d) a variant with dilated
# convolutions. All of them go from high to low resolution (encoder) and back
# (decoder). What differs is the balance and the wiring:
#
# - the hourglass is **symmetric**: every residual module on the way down has a twin on the
#   way up, and a **skip connection** at every resolution carries the pre-pooling features
#   across;
# - SimpleBaseline puts almost everything into a **heavy encoder** (a ResNet-50, pre-trained
#   on ImageNet) and decodes with **three transposed convolutions and no skip connections**.
#
# Why have skip connections at all? Pooling throws away *where exactly* a feature was; the
# skip branch brings the pre-pooling, high-resolution features back to the decoder, so the
# heatmaps can be sharp. SimpleBaseline's answer is that a strong encoder keeps enough
# spatial information in its deep features for three learned upsamplings to recover it.
# Counting the layers and parameters makes the contrast concrete: one hourglass of the
# 8-stack network against the whole SimpleBaseline-R50.

# %%
def conv_layers(module):
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in module.modules())


def parameters(module):
    return sum(p.numel() for p in module.parameters())


with torch.device("meta"):
    hg8, sb50 = models.build("hourglass_8"), models.build("simplebaseline_r50")
levels = [hg8.hourglasses[0]]  # one hourglass of order 4 and the three inside it
while isinstance(levels[-1].low2, hourglass.Hourglass):
    levels.append(levels[-1].low2)
split = hourglass.hourglass_parameter_split(levels[0])
designs = {
    "one hourglass of hourglass_8": (sum(conv_layers(level.low1) for level in levels),
                                     sum(conv_layers(level.low3) for level in levels),
                                     split["encoder"], split["decoder"], split["skip"]),
    "simplebaseline_r50": (conv_layers(sb50.backbone), conv_layers(sb50.deconv_layers) + conv_layers(sb50.final_layer),
                           parameters(sb50.backbone), parameters(sb50.deconv_layers) + parameters(sb50.final_layer), 0),
}
fig, ax = plt.subplots(figsize=(7, 2.2))
for y, (name, (encoder, decoder, *_)) in enumerate(designs.items()):
    ax.barh(y, encoder, color="#1f77b4", label="encoder" if y == 0 else None)
    ax.barh(y, decoder, left=encoder, color="#ff7f0e", label="decoder" if y == 0 else None)
    ax.text(encoder / 2, y, str(encoder), ha="center", va="center", color="white", fontsize=9)
    ax.text(encoder + decoder / 2, y, str(decoder), ha="center", va="center", color="white", fontsize=9)
ax.set_yticks(range(len(designs)), list(designs), fontsize=9)
ax.set_xlabel("convolution layers on the way down (encoder) and back up (decoder)")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
for name, (_, _, encoder, decoder, skip) in designs.items():
    print(f"{name:30s} parameters: encoder {encoder / 1e6:5.2f}M, decoder {decoder / 1e6:5.2f}M, "
          f"skip branches {skip / 1e6:5.2f}M")

# %% [markdown]
# The hourglass spends the same on the way down and up (and as much again on its skip
# branches); SimpleBaseline's encoder has 53 convolutions (49 in its residual blocks and the
# stem, 4 in the projection shortcuts) against 4 in its decoder. (Measured
# in parameters, SimpleBaseline's decoder is not tiny, because its first transposed
# convolution reads 2048 channels; it is "light" in depth and in what it has to learn.)
#
# ## 5. Experiment: one or two stacks, with or without skip connections
#
# Four tiny hourglasses (`hourglass_tiny`: 64 features, order 3) are trained on the
# synthetic people with the **same number of steps**, batch, learning rate, schedule, seed
# and augmentation:
#
# | | skip connections | no skip connections |
# |---|---|---|
# | **2 stacks** | the default | `skip_connections=False` |
# | **1 stack** | `num_stacks=1` | both |
#
# All of them are trained with intermediate supervision (`losses.HeatmapLoss` sums the loss
# over the stacks). Equal steps is not equal compute: a second stack costs about twice the
# time per step, and the table shows the training speed next to the accuracy.

# %% tags=["experiment"]
steps = training.budget(full=400, fast=6)
train_crops = training.top_down_data(data.default_split_dir("single/train"), INPUT_SIZE, HEATMAP_SIZE, augment=True,
                                     limit=training.budget(None, 256))
val_crops = training.top_down_data(data.default_split_dir("single/val"), INPUT_SIZE, HEATMAP_SIZE,
                                   limit=training.budget(None, 64))
variants = {"2 stacks, skips": dict(num_stacks=2), "1 stack, skips": dict(num_stacks=1),
            "2 stacks, no skips": dict(num_stacks=2, skip_connections=False),
            "1 stack, no skips": dict(num_stacks=1, skip_connections=False)}
runs = {}
for name, options in variants.items():
    print(f"training: {name}")
    model = models.build("hourglass_tiny", seed=0, **options)  # the same seed for every variant
    history = training.fit(model, train_crops, val_crops, losses.HeatmapLoss(), steps, batch_size=32, lr=2e-3,
                           seed=0, eval_every=max(1, steps // 5), eval_items=training.budget(200, 32))
    runs[name] = (model, history, training.evaluate(model, val_crops, coco_ap=False).metrics)

# %% tags=["experiment"]
hourglass_rows = []
for name, (model, history, scores) in runs.items():
    row = {"model": name, "parameters": parameters(model), "steps": steps,
           "train images/s": history.images_per_second, "PCK@0.2": scores["pck@0.2"], "PCK@0.1": scores["pck@0.1"],
           "mean error (px)": scores["mean_error"]}
    if model.num_stacks == 2:  # the intermediate prediction of the same network
        row["PCK@0.1 of stack 1"] = training.evaluate(hourglass.SelectStack(model, 1), val_crops,
                                                       coco_ap=False).metrics["pck@0.1"]
    else:
        row["PCK@0.1 of stack 1"] = scores["pck@0.1"]
    hourglass_rows.append(row)
pck = {row["model"]: row["PCK@0.1"] for row in hourglass_rows}
stack_gain = pck["2 stacks, skips"] - pck["1 stack, skips"]
skip_gain = pck["2 stacks, skips"] - pck["2 stacks, no skips"]
refinement = pck["2 stacks, skips"] - hourglass_rows[0]["PCK@0.1 of stack 1"]
hourglass_table = report.experiment_table(
    hourglass_rows, chapter="04", title="Stacked hourglass, equal steps: stacks and skip connections (validation)",
    note=(f"Skip connections change PCK@0.1 by {skip_gain:+.3f} (2 stacks), "
          + ("the paper's direction; " if skip_gain > 0 else "not the direction the design predicts; ")
          + f"a second stack changes it by {stack_gain:+.3f} at equal steps "
          + ("(the paper also found more stacks better, " if stack_gain > 0 else "(unlike the paper, ")
          + f"whose comparison kept the parameters fixed and trained fully), while inside the 2-stack model stack 2 "
            f"scores {refinement:+.3f} over stack 1."),
)
hourglass_table

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, (model, history, scores) in runs.items():
    style = "-" if "2 stacks" in name else "--"
    axes[0].plot(history.val_steps, [v["pck@0.1"] for v in history.val], style, marker="o", label=name)
axes[0].set_xlabel("training step")
axes[0].set_ylabel("validation PCK@0.1")
axes[0].legend(fontsize=8)
names = list(runs)
x = np.arange(len(names))
for offset, metric in ((-0.2, "PCK@0.2"), (0.2, "PCK@0.1")):
    axes[1].bar(x + offset, [row[metric] for row in hourglass_rows], width=0.4, label=metric)
axes[1].scatter(x + 0.2, [row["PCK@0.1 of stack 1"] for row in hourglass_rows], color="k", marker="_", s=300,
                zorder=3, label="PCK@0.1 of stack 1")
axes[1].set_xticks(x, [n.replace(", ", "\n") for n in names], fontsize=8)
axes[1].set_ylim(0, 1)
axes[1].legend(fontsize=8, loc="lower right")
fig.tight_layout()

# %% [markdown]
# What the second stack does: the heatmaps of both stacks of the default model for the
# three validation joints (white star: the truth) that stack 2 moved most towards the truth.
# The second hourglass reads the first one's heatmaps with the whole body in view, and moves
# or sharpens them. (It does not always help: over all joints the gain is the difference
# between the last two columns of the table.)

# %% tags=["experiment"]
model = runs["2 stacks, skips"][0].eval()
batch = next(iter(torch.utils.data.DataLoader(val_crops, batch_size=64)))
with torch.no_grad():
    stack_maps = [maps.float() for maps in model(batch["image"])]  # two (N, K, 24, 16)
errors = [torch.linalg.norm(heatmaps.decode_argmax(maps)[0] * 4 - batch["keypoints"], dim=-1) for maps in stack_maps]
gain = torch.where(batch["visibility"] > 0, errors[0] - errors[1], torch.zeros_like(errors[0]))  # (N, K) px
cases = []
for flat in gain.flatten().argsort(descending=True).tolist():  # the joints stack 2 moved most towards the truth
    i, joint = divmod(flat, gain.shape[1])
    if i not in [c[0] for c in cases]:
        cases.append((i, joint))
    if len(cases) == 3:
        break
fig, axes = plt.subplots(len(cases), 3, figsize=(6.4, 2.4 * len(cases)), squeeze=False)
for row, (i, joint) in enumerate(cases):
    crop = data.tensor_to_image(batch["image"][i])
    viz.show_image(crop, axes[row, 0])
    axes[row, 0].plot(*batch["keypoints"][i, joint].tolist(), "c*", markersize=12)
    axes[row, 0].set_title(COCO_KEYPOINTS[joint], fontsize=8)
    for column, maps in enumerate(stack_maps, start=1):
        viz.overlay_heatmap(crop, maps[i, joint].numpy(), ax=axes[row, column], alpha=0.6)
        axes[row, column].plot(*batch["keypoints"][i, joint].tolist(), "w*", markersize=9)
        axes[row, column].set_title(f"stack {column}: {errors[column - 1][i, joint]:.1f} crop px off", fontsize=8)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()

# %% tags=["experiment"]
report.markdown(
    f"**How to read the results.** The table comes from a short run on toy data ({steps} steps, "
    f"{'fast' if training.fast_profile() else 'full'} profile), so treat differences of one or two points as noise. "
    f"In this run the skip connections were worth {100 * skip_gain:+.1f} points of PCK@0.1 (2 stacks), a second "
    f"stack {100 * stack_gain:+.1f} points at equal steps, and inside the 2-stack model the second stack "
    f"{'improved on' if refinement > 0 else 'did not improve on'} the first by {100 * refinement:+.1f} points."
)

# %% [markdown]
# Three things to look for:
#
# - **Intermediate predictions.** In the 2-stack models, compare the last column (stack 1)
#   with PCK@0.1 (stack 2): the same network's second stack usually improves on its first,
#   which is what stacking is for.
# - **Skip connections.** Without the upper branches, everything the decoder knows passed
#   through the $3 \times 2$ bottom of the hourglass, and nearest-neighbour upsampling
#   cannot put it back on the exact pixel: the strict PCK@0.1 is where it shows.
# - **Equal steps vs equal time.** The second stack costs images per second (see the table);
#   the paper's claim is about accuracy at a fixed parameter budget (they made each
#   hourglass smaller when they stacked more), not at a fixed number of steps.
#
# ## What the paper reported
#
# - **MPII Human Pose, test set, PCKh@0.5** (8 stacks, $256 \times 256$ input, heatmaps
#   averaged with those of the flipped image): **90.9%** total; head 98.2, shoulder 96.3, elbow 91.2,
#   wrist 87.1, hip 90.1, knee 87.4, ankle 83.6. It was the best result on the benchmark at
#   the time.
# - **FLIC, PCK@0.2**: **99.0%** on elbows and **97.0%** on wrists.
# - **Ablations** (MPII validation): stacking more hourglasses while keeping the total
#   number of parameters fixed (2, 4 and 8 stacks) improved accuracy step by step, and
#   intermediate supervision improved both a single big hourglass and the stacked version,
#   the combination being best.
# - **COCO**, from the HRNet paper's comparison table (val2017, $256 \times 192$,
#   person detector boxes): the 8-stack hourglass has **25.1M parameters, 14.3 GFLOPs, 66.9
#   AP** (the course's counts of the two `hg.lua` revisions are printed in section 3), against SimpleBaseline-R50's 34.0M, 8.9 GFLOPs and **70.4 AP**: the heavy encoder
#   (pre-trained on ImageNet) with its light decoder wins on COCO at fewer GFLOPs.
#
# ## Check your understanding
#
# 1. A residual module maps 128 to 256 channels. Why can its skip branch not be the
#    identity, and what does the course use instead?
#
# <details><summary>Answer</summary>
#
# The output of the convolution path has 256 channels and the input 128, so they cannot be
# added. A $1\times1$ convolution $128 \to 256$ maps the input to the right number of
# channels (it mixes channels at each position and keeps the resolution).
# </details>
#
# 2. An order-4 hourglass takes a $64 \times 48$ feature map. What are the sizes of the maps
#    its residual modules see, and why must the input be a multiple of 16?
#
# <details><summary>Answer</summary>
#
# $64\times48$ (the skip branch), then $32\times24$, $16\times12$, $8\times6$ and the bottom
# $4\times3$. Each level max-pools by 2 and later upsamples by 2; with a size that is not
# divisible by $2^4$, a pooling would drop a row or column and the upsampled map would no
# longer match the skip branch it is added to.
# </details>
#
# 3. In the stacked network, why are the heatmaps $h_s$ remapped and *added* to the next
#    stack's input, rather than the next stack starting from the heatmaps alone?
#
# <details><summary>Answer</summary>
#
# $K$ heatmaps are a poor summary of the image: they say where each joint probably is, but
# not what the image looks like. Adding $W_h * h_s$ and $W_f * f_s$ to $x_s$ keeps all the
# image features and lets the next stack see the current guess as well, so it can correct
# the guess with the image in view. The addition also keeps a short gradient path from the
# loss to the stem (as the residual modules do).
# </details>
#
# 4. SimpleBaseline has no skip connections. Where does it get the spatial detail that the
#    hourglass carries through its upper branches?
#
# <details><summary>Answer</summary>
#
# From its deep features: a ResNet's stride-32 features still encode, in their many
# channels, where things are within each cell, and three learned transposed convolutions
# decode that back into $4\times$ higher resolution. The HRNet chapter will argue that
# keeping a high-resolution branch all along is a better way to keep that detail.
# </details>
#
# 5. Your 2-stack model without skip connections scores lower at PCK@0.1 than at PCK@0.2,
#    relative to the model with skips. What does that tell you about the kind of error the
#    skips prevent?
#
# <details><summary>Answer</summary>
#
# The joints are found roughly in the right place (PCK@0.2 is similar) but not exactly on the
# right pixel (PCK@0.1 drops): the skip branches carry *precise location*, the bottom of the
# hourglass carries *which part is where*. (If your numbers do not show this, the run was too
# short to tell.)
# </details>

# %% [markdown]
# ## Stretch exercise: count a residual module by hand
#
# This one is optional (bonus points). The two revisions of `hg.lua` differ by one residual
# module per stack, so the parameter gap between them is eight times one module's count. Count
# it from the layers of section 1: three batch normalisations (a scale and a shift per
# channel), three convolutions ($1\times1$ to `out/2`, $3\times3$, $1\times1$ to `out`, each
# with a bias, as in `hg.lua`), and, when the channels change, a $1\times1$ skip convolution
# with its bias.


# %%
def residual_parameters(in_channels, out_channels):
    """Number of parameters of hg.lua's residual module (in_channels -> out_channels, out even), as an int."""
    ### BEGIN SOLUTION
    mid = out_channels // 2
    norms = 2 * (in_channels + mid + mid)
    convs = (in_channels * mid + mid) + (9 * mid * mid + mid) + (mid * out_channels + out_channels)
    skip = in_channels * out_channels + out_channels if in_channels != out_channels else 0
    return int(norms + convs + skip)
    ### END SOLUTION


# %%
checks.check_residual_parameters(residual_parameters)

# %%
# bonus: 1
checks.check_residual_parameters(residual_parameters)
### BEGIN HIDDEN TESTS
checks.hidden_residual_parameters(residual_parameters)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - The hourglass's residual module is a pre-activation bottleneck (BN-ReLU-conv three times,
#   `out/2` channels inside) with a $1\times1$ skip convolution when the channels change.
# - One hourglass pools down to a few cells that see the whole body, comes back up, and adds at
#   every resolution the skip branch set aside on the way down; written recursively, order $n$
#   wraps order $n - 1$.
# - Stacks are chained by adding the remapped features and heatmaps to the stack's input; every
#   stack's heatmaps get the loss (intermediate supervision), as in CPM.
# - The released `hg.lua` adds a residual module after each hourglass; the course builds it
#   (`hourglass_8`) and prints both revisions' parameters and GFLOPs next to the HRNet table's.
# - The hourglass is a symmetric encoder-decoder; SimpleBaseline puts its depth in the
#   encoder and decodes with three transposed convolutions and no skips.
# - The chapter's run measures, at equal steps, what skip connections and a second stack
#   change; its verdict sentence is computed from the table.
