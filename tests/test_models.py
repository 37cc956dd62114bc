"""The pose networks: output shapes, exact parameter counts against the official layouts, gradients, errors.

Exact parameter counts are derived independently of the code under test: for each network
the test below re-counts the official layer definitions with small closed formulas
(a k x k convolution from c_in to c_out has c_in * c_out * k^2 weights, plus c_out biases
when it has a bias; a BatchNorm of c channels has 2c parameters), read off:

* HRNet: leoxiaobin/deep-high-resolution-net.pytorch, lib/models/pose_hrnet.py and
  experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml (W48: same with 48 channels);
  HRNet paper, Table 1: W32 28.5M, W48 63.6M.
* SimpleBaseline: microsoft/human-pose-estimation.pytorch, lib/models/pose_resnet.py
  (deconvolutions without bias, final 1x1 conv with bias); the ResNet backbones against
  torchvision's published counts (ResNet-18 11,689,512 ... ResNet-152 60,192,808, with the
  1000-class fc); HRNet paper, Table 1: R50 34.0M, R152 68.6M.
* Stacked Hourglass: princeton-vl/pose-hg-train, src/models/hg.lua and
  layers/Residual.lua (Torch convolutions have biases), nStack 8, nFeats 256, nModules 1.
  The released hg.lua (a residual module after each hourglass) has 25.44M with 17 joints,
  next to the HRNet paper's 25.1M for "8-stage Hourglass"; its early revision has 23.7M and
  the table's 14.3 GFLOPs (see test_models_complexity.py and test_hourglass.py).
"""

from __future__ import annotations

import time

import pytest
import torch

from course_lib.models import (
    ConvolutionalPoseMachine,
    DeepPose,
    DeepPoseCascadeStage,
    DeepPoseTiny,
    build,
    count_parameters,
    list_models,
)
from course_lib.models.hourglass import StackedHourglass
from course_lib.models.resnet import resnet_by_depth
from course_lib.models.simple_baseline import simple_baseline_tiny

pytestmark = pytest.mark.usefixtures("one_thread")

PAPER_PRESETS = [
    "deeppose",
    "cpm",
    "hourglass_8",
    "simplebaseline_r50",
    "simplebaseline_r101",
    "simplebaseline_r152",
    "hrnet_w32",
    "hrnet_w48",
]
TINY_PRESETS = ["deeppose_tiny", "cpm_tiny", "hourglass_tiny", "simplebaseline_tiny", "hrnet_tiny"]


@pytest.fixture(scope="module")
def models():
    """Each preset built once per module (the 8-stack hourglass and W48 take a moment)."""
    torch.manual_seed(0)
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build(name).eval()
        return cache[name]

    return get


# ---------------------------------------------------------------- counting formulas (independent)


def conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def basic_block(c_in: int, c: int) -> int:
    shortcut = conv(c_in, c, 1) + bn(c) if c_in != c else 0
    return conv(c_in, c, 3) + bn(c) + conv(c, c, 3) + bn(c) + shortcut


def bottleneck(c_in: int, planes: int) -> int:
    shortcut = conv(c_in, 4 * planes, 1) + bn(4 * planes) if c_in != 4 * planes else 0
    return (
        conv(c_in, planes, 1) + bn(planes) + conv(planes, planes, 3) + bn(planes)
        + conv(planes, 4 * planes, 1) + bn(4 * planes) + shortcut
    )


def hrnet_params(width: int, num_keypoints: int) -> int:
    """pose_hrnet.py with NUM_MODULES 1/4/3, NUM_BLOCKS 4, FINAL_CONV_KERNEL 1."""
    c = [width * 2**b for b in range(4)]
    total = conv(3, 64, 3) + bn(64) + conv(64, 64, 3) + bn(64)  # stem
    total += bottleneck(64, 64) + 3 * bottleneck(256, 64)  # layer1
    total += conv(256, c[0], 3) + bn(c[0]) + conv(256, c[1], 3) + bn(c[1])  # transition1
    total += conv(c[1], c[2], 3) + bn(c[2])  # transition2: new branch from the coarsest
    total += conv(c[2], c[3], 3) + bn(c[3])  # transition3

    def module(n: int, multi_scale: bool) -> int:
        params = sum(4 * basic_block(c[b], c[b]) for b in range(n))
        for i in range(n if multi_scale else 1):
            for j in range(n):
                if j > i:
                    params += conv(c[j], c[i], 1) + bn(c[i])
                elif j < i:
                    params += (i - j - 1) * (conv(c[j], c[j], 3) + bn(c[j])) + conv(c[j], c[i], 3) + bn(c[i])
        return params

    total += module(2, True)  # stage 2: 1 module
    total += 4 * module(3, True)  # stage 3: 4 modules
    total += 2 * module(4, True) + module(4, False)  # stage 4: 3 modules, the last fuses into branch 0 only
    total += conv(c[0], num_keypoints, 1, bias=True)  # final_layer
    return total


# torchvision's published parameter counts (weights tables of torchvision.models), 1000-class fc included.
TORCHVISION_RESNET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


def simple_baseline_params(depth: int, num_keypoints: int) -> int:
    """pose_resnet.py: backbone without fc, 3 x (ConvTranspose 4x4 no bias + BN), 1x1 conv with bias."""
    backbone = TORCHVISION_RESNET_PARAMS[depth] - (2048 * 1000 + 1000)
    deconvs = conv(2048, 256, 4) + bn(256) + 2 * (conv(256, 256, 4) + bn(256))
    return backbone + deconvs + conv(256, num_keypoints, 1, bias=True)


def residual(c_in: int, c_out: int) -> int:
    """Residual.lua: BN-ReLU-conv1x1(out/2)-BN-ReLU-conv3x3-BN-ReLU-conv1x1(out) + 1x1 skip if needed; biases."""
    h = c_out // 2
    skip = conv(c_in, c_out, 1, bias=True) if c_in != c_out else 0
    return bn(c_in) + conv(c_in, h, 1, True) + bn(h) + conv(h, h, 3, True) + bn(h) + conv(h, c_out, 1, True) + skip


def hourglass_params(num_stacks: int, num_keypoints: int, f: int = 256, order: int = 4, skip: bool = True,
                     released: bool = True) -> int:
    """hg.lua with nModules 1: per level up1 (if skip), low1, low3; low2 at the bottom; the released
    revision adds a residual module after each hourglass."""
    per_level = (3 if skip else 2) * residual(f, f)
    one_hourglass = order * per_level + residual(f, f) + (residual(f, f) if released else 0)
    stem = conv(3, f // 4, 7, True) + bn(f // 4) + residual(f // 4, f // 2) + residual(f // 2, f // 2) + residual(f // 2, f)
    per_stack = one_hourglass + conv(f, f, 1, True) + bn(f) + conv(f, num_keypoints, 1, True)
    remap = conv(f, f, 1, True) + conv(num_keypoints, f, 1, True)
    return stem + num_stacks * per_stack + (num_stacks - 1) * remap


def deeppose_params(num_keypoints: int) -> int:
    """The paper's layer list: 5 convolutions (96, 256, 384, 384, 256), F(4096), F(4096), F(2K); all with biases."""
    convs = conv(3, 96, 11, True) + conv(96, 256, 5, True) + conv(256, 384, 3, True) + conv(384, 384, 3, True)
    convs += conv(384, 256, 3, True)
    dense = (256 * 36 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 2 * num_keypoints + 2 * num_keypoints)
    return convs + dense


def cpm_params(num_keypoints: int, stages: int = 6) -> int:
    """genProto.py's layout without the background map and the centre map (see cpm.py); all with biases."""
    trunk = conv(3, 128, 9, True) + 2 * conv(128, 128, 9, True)
    stage1 = trunk + conv(128, 32, 5, True) + conv(32, 512, 9, True) + conv(512, 512, 1, True)
    stage1 += conv(512, num_keypoints, 1, True)
    later = conv(128, 32, 5, True) + conv(32 + num_keypoints, 128, 11, True) + 2 * conv(128, 128, 11, True)
    later += conv(128, 128, 1, True) + conv(128, num_keypoints, 1, True)
    return stage1 + trunk + (stages - 1) * later


# ---------------------------------------------------------------- exact parameter counts


def test_counting_formulas_reproduce_the_published_rounded_figures():
    # HRNet paper Table 1 (millions, one decimal), independent of the code under test.
    assert round(hrnet_params(32, 17) / 1e6, 1) == 28.5
    assert round(hrnet_params(48, 17) / 1e6, 1) == 63.6
    assert round(simple_baseline_params(50, 17) / 1e6, 1) == 34.0
    assert round(simple_baseline_params(152, 17) / 1e6, 1) == 68.6


@pytest.mark.parametrize(
    "name, expected",
    [
        # hrnet_params(32, 17): derived above from pose_hrnet.py + w32_256x192 config; paper: 28.5M.
        ("hrnet_w32", 28_536_113),
        # hrnet_params(48, 17); paper: 63.6M.
        ("hrnet_w48", 63_595_745),
        # simple_baseline_params(50, 17) = 23,508,032 (torchvision R50 without fc) + 10,487,296 + 4,369; paper: 34.0M.
        ("simplebaseline_r50", 33_999_697),
        ("simplebaseline_r101", 52_991_825),
        # paper: 68.6M.
        ("simplebaseline_r152", 68_635_473),
        # hourglass_params(8, 17): the released hg.lua of pose-hg-train; the HRNet paper's table: 25.1M.
        ("hourglass_8", 25_437_960),
        ("deeppose", 58_420_642),
        ("cpm", 31_299_622),
    ],
)
def test_paper_presets_have_the_exact_parameter_count_of_the_official_layout(models, name, expected):
    formulas = {
        "hrnet_w32": lambda: hrnet_params(32, 17),
        "hrnet_w48": lambda: hrnet_params(48, 17),
        "simplebaseline_r50": lambda: simple_baseline_params(50, 17),
        "simplebaseline_r101": lambda: simple_baseline_params(101, 17),
        "simplebaseline_r152": lambda: simple_baseline_params(152, 17),
        "hourglass_8": lambda: hourglass_params(8, 17),
        "deeppose": lambda: deeppose_params(17),
        "cpm": lambda: cpm_params(17),
    }
    assert formulas[name]() == expected  # the written-down integer is the formula's
    assert count_parameters(models(name)) == expected


@pytest.mark.parametrize("depth", sorted(TORCHVISION_RESNET_PARAMS))
def test_resnets_match_torchvision_parameter_counts_and_names(depth):
    model = resnet_by_depth(depth, num_classes=1000)
    assert count_parameters(model) == TORCHVISION_RESNET_PARAMS[depth]
    keys = set(model.state_dict())
    # torchvision's names, so that ImageNet weights load by name.
    for key in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.weight", "layer4.1.bn2.bias", "fc.weight", "fc.bias"]:
        assert key in keys, key
    if depth >= 50:
        assert "layer1.0.downsample.0.weight" in keys and "layer4.2.conv3.weight" in keys


def test_hrnet_uses_the_official_module_names(models):
    keys = set(models("hrnet_w32").state_dict())
    for key in [
        "conv1.weight", "bn2.running_var", "layer1.3.conv3.weight", "layer1.0.downsample.0.weight",
        "transition1.0.0.weight", "transition1.1.0.0.weight", "transition2.2.0.0.weight", "transition3.3.0.0.weight",
        "stage2.0.branches.1.3.conv2.weight", "stage2.0.fuse_layers.0.1.0.weight", "stage2.0.fuse_layers.1.0.0.0.weight",
        "stage3.3.fuse_layers.2.0.1.0.weight", "stage4.1.fuse_layers.3.0.2.0.weight", "stage4.2.fuse_layers.0.3.0.weight",
        "final_layer.bias",
    ]:
        assert key in keys, key
    # The last module of stage 4 fuses into branch 0 only (multi_scale_output=False).
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in keys)
    assert any(k.startswith("stage4.1.fuse_layers.3.") for k in keys)
    assert len(models("hrnet_w32").stage4) == 3  # the paper: 3 modules in stage 4 (the notes say 2)


def test_hourglass_without_skip_connections_drops_exactly_the_up1_residuals():
    with_skip = StackedHourglass(2, 17, 64, order=3)
    without = StackedHourglass(2, 17, 64, order=3, skip_connections=False)
    assert count_parameters(with_skip) == hourglass_params(2, 17, 64, 3)
    assert count_parameters(without) == hourglass_params(2, 17, 64, 3, skip=False)
    assert count_parameters(with_skip) - count_parameters(without) == 2 * 3 * residual(64, 64)


def test_tiny_presets_are_small():
    for name in TINY_PRESETS:
        assert 50_000 < count_parameters(build(name)) < 2_000_000, name


# ---------------------------------------------------------------- output shapes


def expected_heatmap_shape(model, size, batch):
    return (batch, model.num_keypoints, size[0] // model.stride, size[1] // model.stride)


def stage_count(model) -> int:
    """Number of outputs of a multi-stage model, 0 for single-output models."""
    if isinstance(model, ConvolutionalPoseMachine):
        return model.num_stages
    if isinstance(model, StackedHourglass):
        return model.num_stacks
    return 0


@pytest.mark.parametrize("name", PAPER_PRESETS + TINY_PRESETS)
def test_every_preset_gives_the_documented_output_at_two_sizes(models, name):
    model = models(name)
    assert isinstance(model.input_size, tuple) and len(model.input_size) == 2
    assert all(s % model.size_divisor == 0 for s in model.input_size)
    # Small sizes keep the paper presets fast (CPM at 368x368 is 176 GMACs); two aspect ratios.
    sizes = [(64, 64), (96, 64)] if model.size_divisor <= 32 else [(64, 64), (128, 64)]
    batch = 1 if name in PAPER_PRESETS else 2
    for size in sizes:
        with torch.no_grad():
            out = model(torch.randn(batch, 3, *size))
        if name.startswith("deeppose"):
            assert model.stride is None
            assert out.shape == (batch, 17, 2)
        elif stage_count(model):
            assert isinstance(out, list) and len(out) == stage_count(model)
            assert all(o.shape == expected_heatmap_shape(model, size, batch) for o in out)
        else:
            assert out.shape == expected_heatmap_shape(model, size, batch)
    # Stride 4 everywhere except the CPM paper preset (8) and the coordinate regressors.
    expected_stride = {"cpm": 8, "deeppose": None, "deeppose_tiny": None}.get(name, 4)
    assert model.stride == expected_stride
    assert stage_count(model) == {"cpm": 6, "hourglass_8": 8, "cpm_tiny": 3, "hourglass_tiny": 2}.get(name, 0)


def test_deeppose_layer_sizes_are_the_papers_at_220():
    model = DeepPose(14)
    x = torch.randn(1, 3, 220, 220)
    sizes = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            sizes.append(tuple(x.shape[1:]))
    # C(55x55x96) P C(27x27x256) P C(13x13x384) C(13x13x384) C(13x13x256) P
    assert sizes == [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13), (384, 13, 13),
                     (256, 13, 13), (256, 6, 6)]
    assert model(torch.randn(2, 3, 220, 220)).shape == (2, 14, 2)


def test_num_keypoints_and_overrides_reach_the_model():
    assert build("hrnet_tiny", num_keypoints=16)(torch.randn(1, 3, 64, 64)).shape == (1, 16, 16, 16)
    one_stack = build("hourglass_tiny", num_stacks=1, skip_connections=False)
    assert len(one_stack(torch.randn(1, 3, 64, 64))) == 1
    assert len(build("cpm_tiny", num_keypoints=14, num_stages=1)(torch.randn(1, 3, 64, 64))) == 1
    assert build("hrnet_tiny", input_size=(128, 96)).input_size == (128, 96)


@pytest.mark.parametrize("layers, stride", [(1, 16), (2, 8), (3, 4)])
def test_simple_baseline_output_stride_follows_the_number_of_deconvolutions(layers, stride):
    model = build("simplebaseline_tiny", num_deconv_layers=layers).eval()
    assert model.stride == stride
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96)).shape == (1, 17, 128 // stride, 96 // stride)


def test_cpm_receptive_fields_grow_by_three_large_kernels_per_stage(models):
    # Stage 1 by hand (r += (k - 1) * j, j *= s): conv9 9; pool3/2 11 (j 2); conv9 27; pool 31 (j 4);
    # conv9 63; pool 71 (j 8); conv5 103; conv9 167.  Each later stage adds 3 * (11 - 1) * 8 = 240.
    assert models("cpm").receptive_fields() == [167, 407, 647, 887, 1127, 1367]
    fields = models("cpm_tiny").receptive_fields()
    assert all(later > earlier for earlier, later in zip(fields, fields[1:]))


# ---------------------------------------------------------------- DeepPose cascade


def test_cascade_stage_returns_the_selected_joints_displacement():
    torch.manual_seed(0)
    stage = DeepPoseCascadeStage(DeepPoseTiny(5)).eval()
    crops = torch.randn(3, 3, 64, 64)
    joint_index = torch.tensor([4, 0, 2])
    with torch.no_grad():
        everything = stage(crops)  # (3, 5, 2)
        selected = stage(crops, joint_index)
    assert everything.shape == (3, 5, 2) and selected.shape == (3, 2)
    for n, i in enumerate(joint_index.tolist()):
        assert torch.equal(selected[n], everything[n, i])


def test_cascade_refinement_adds_the_scaled_displacement():
    # y^s = y^{s-1} + diag(b_w, b_h) psi_i.  A joint at (120, 150), crop side 287.92 (the lecture's
    # delta * diam example), displacement (0.1, -0.2): 120 + 28.792, 150 - 57.584.
    refined = DeepPoseCascadeStage.refine(torch.tensor([[120.0, 150.0]]), torch.tensor([[0.1, -0.2]]), torch.tensor([287.92]))
    assert torch.allclose(refined, torch.tensor([[148.792, 92.416]]))
    rectangular = DeepPoseCascadeStage.refine(torch.zeros(1, 2), torch.tensor([[0.5, 0.5]]), torch.tensor([[200.0, 300.0]]))
    assert torch.allclose(rectangular, torch.tensor([[100.0, 150.0]]))
    with pytest.raises(ValueError, match=r"displacement must have shape \(N, 2\) with N=1"):
        DeepPoseCascadeStage.refine(torch.zeros(1, 2), torch.zeros(2, 2), torch.ones(1))
    with pytest.raises(ValueError, match="box_size must be positive"):
        DeepPoseCascadeStage.refine(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1))


def test_cascade_stage_rejects_bad_joint_indices():
    stage = DeepPoseCascadeStage(num_keypoints=3)
    crops = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"joint_index must be in \[0, 2\]"):
        stage(crops, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="one joint per crop"):
        stage(crops, torch.tensor([0]))
    with pytest.raises(ValueError, match="integer"):
        stage(crops, torch.tensor([0.0, 1.0]))


# ---------------------------------------------------------------- gradients and speed


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build(name).train()
    outputs = model(torch.randn(2, 3, 64, 64))
    outputs = outputs if isinstance(outputs, list) else [outputs]
    # Random weights: a plain sum would give zero gradients before every BatchNorm (its output sums to a constant).
    loss = sum((o * torch.randn_like(o)).sum() for o in outputs)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_cascade_stage_gradients_reach_every_parameter():
    torch.manual_seed(0)
    stage = DeepPoseCascadeStage(num_keypoints=4)
    out = stage(torch.randn(4, 3, 48, 48), torch.tensor([0, 1, 2, 3]))
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in stage.parameters())


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_tiny_presets_run_forward_and_backward_at_64x64_well_under_a_second(name):
    # A generous bound (typically 15-70 ms on one thread; bench/bench_models.py measures the real
    # speed), best of three so that a busy machine does not fail it.
    model = build(name).train()
    images = torch.randn(2, 3, 64, 64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        outputs = model(images)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        sum(o.square().mean() for o in outputs).backward()
        best = min(best, time.perf_counter() - start)
    assert best < 1.0


# ---------------------------------------------------------------- bad input


def test_list_models_and_unknown_names():
    names = list_models()
    for required in PAPER_PRESETS + TINY_PRESETS:
        assert required in names
    assert names == sorted(names)
    with pytest.raises(ValueError, match=r"unknown model 'hrnet_w64'; known models: .*hrnet_w32.*simplebaseline_r50"):
        build("hrnet_w64")
    with pytest.raises(ValueError, match="unknown model"):
        build(None)


def test_build_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"hrnet_tiny does not take depth; it takes: .*width"):
        build("hrnet_tiny", depth=3)
    with pytest.raises(ValueError, match="num_keypoints must be a positive integer"):
        build("hrnet_tiny", num_keypoints=0)
    with pytest.raises(TypeError, match=r"input_size must be a pair \(H, W\)"):
        build("hrnet_tiny", input_size=(96,))
    with pytest.raises(ValueError, match=r"input_size \(100, 64\) of hrnet_tiny must be multiples of 32"):
        build("hrnet_tiny", input_size=(100, 64))
    with pytest.raises(ValueError, match="num_deconv_layers"):
        build("simplebaseline_tiny", num_deconv_layers=6)


@pytest.mark.parametrize("name", ["hrnet_tiny", "simplebaseline_tiny", "hourglass_tiny", "cpm_tiny", "deeppose_tiny"])
def test_wrong_channel_count_is_a_clear_error(name):
    model = build(name)
    with pytest.raises(ValueError, match=rf"images must have shape \(N, 3, H, W\) for {name}, got \(1, 1, 64, 64\)"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="channels last"):
        model(torch.randn(1, 64, 64, 3))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, H, W\)"):
        model(torch.randn(3, 64, 64))


@pytest.mark.parametrize(
    "name, size, message",
    [
        ("hrnet_tiny", (64, 48), r"images width 48 is not a multiple of 32, the stride of the coarsest feature map of "
                                 r"hrnet_tiny; the nearest valid widths are 32 and 64"),
        ("simplebaseline_tiny", (100, 64), r"images height 100 is not a multiple of 32.*heights are 96 and 128"),
        ("hourglass_tiny", (64, 80), r"width 80 is not a multiple of 32.*64 and 96"),
        ("cpm_tiny", (66, 64), r"height 66 is not a multiple of 4.*64 and 68"),
        ("hourglass_8", (96, 64), r"height 96 is not a multiple of 64.*64 and 128"),
        ("cpm", (20, 64), r"height 20 is not a multiple of 8.*16 and 24"),
    ],
)
def test_input_size_not_divisible_by_the_stride_names_it_and_the_nearest_sizes(models, name, size, message):
    with pytest.raises(ValueError, match=message):
        models(name)(torch.randn(1, 3, *size))


def test_other_bad_images():
    model = build("hrnet_tiny")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(torch.full((1, 3, 64, 64), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])
    with pytest.raises(ValueError, match="empty batch"):
        model(torch.zeros(0, 3, 64, 64))
    with pytest.raises(ValueError, match="too small for deeppose: it needs at least 57"):
        build("deeppose")(torch.randn(1, 3, 48, 220))


def test_constructors_reject_bad_settings():
    with pytest.raises(ValueError, match="blocks and widths"):
        simple_baseline_tiny(widths=(16, 32), blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="num_features must be a positive multiple of 8"):
        StackedHourglass(num_features=30)
    with pytest.raises(ValueError, match="stage_modules"):
        build("hrnet_tiny", stage_modules=(1, 1))
    with pytest.raises(ValueError, match="dropout"):
        DeepPose(dropout=1.0)
    with pytest.raises(ValueError, match="odd"):
        build("cpm_tiny").__class__(stage_kernel=4)


# --------------------------------------------------------------------------- names: no function hides a module
@pytest.mark.parametrize("name", ["complexity", "cpm", "deeppose", "hourglass", "hrnet", "resnet", "simple_baseline"])
def test_a_family_name_is_its_module_whichever_way_it_is_imported(name):
    import importlib
    import types

    import course_lib.models as package

    module = importlib.import_module(f"course_lib.models.{name}")
    assert isinstance(getattr(package, name), types.ModuleType) and getattr(package, name) is module


def test_presets_are_named_after_what_they_build():
    from course_lib import models

    assert models.build("cpm").name == models.cpm_paper().name == "cpm"
    assert models.build("deeppose").name == models.deeppose_paper().name == "deeppose"
    assert models.simple_baseline_resnet(50).name == "simplebaseline_r50"
    assert models.resnet_by_depth(18, num_classes=10).fc.out_features == 10
    assert models.measure_complexity is models.complexity.measure_complexity


def test_simple_baseline_and_hrnet_share_the_official_initialisation():
    from course_lib.models.initialization import init_official

    torch.manual_seed(0)
    hrnet = build("hrnet_tiny")
    head = build("simplebaseline_tiny")
    for conv in (hrnet.final_layer, head.final_layer, head.deconv_layers[0]):
        assert abs(float(conv.weight.detach().std()) - 0.001) < 2e-4
    layer = torch.nn.Conv2d(3, 8, 3)
    init_official([layer])
    assert abs(float(layer.weight.detach().std()) - 0.001) < 3e-4 and float(layer.bias.detach().abs().max()) == 0.0
