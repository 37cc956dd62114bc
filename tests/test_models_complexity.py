"""measure_complexity(), measure_latency(), measure_training_speed(): counts checked by hand and against the HRNet paper."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.models import build, measure_complexity, measure_latency, measure_training_speed
from course_lib.models.complexity import paper_gflops_rule

pytestmark = pytest.mark.usefixtures("one_thread")


def truncate(value: float, decimals: int = 1) -> float:
    return math.floor(value * 10**decimals) / 10**decimals


# ---------------------------------------------------------------- single layers, by hand


def test_conv2d_macs_and_paper_rule_agree_with_the_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1))
    result = measure_complexity(model, (16, 12))
    # Output 8 x 6 pixels; each needs 8 channels * 3 * 3 * 3 multiply-adds.
    assert result["macs"] == 8 * 6 * 8 * 3 * 3 * 3
    assert result["paper_gflops"] * 1024**3 == 8 * 6 * 8 * 3 * 3 * 3
    assert result["params"] == 8 * 3 * 3 * 3 + 8


def test_transposed_convolution_is_over_counted_by_stride_squared_in_the_paper_rule():
    model = nn.Sequential(nn.ConvTranspose2d(3, 6, kernel_size=4, stride=2, padding=1, bias=False))
    result = measure_complexity(model, (5, 7))
    # True work: every input pixel (5 * 7) meets the whole 3 x 6 x 4 x 4 kernel.
    true_macs = 5 * 7 * 3 * 6 * 4 * 4
    assert result["macs"] == true_macs
    # The official rule multiplies the weights by the output size (10 x 14): 4x the true count.
    assert result["paper_gflops"] * 1024**3 == 10 * 14 * 3 * 6 * 4 * 4 == 4 * true_macs


def test_linear_layer_counts():
    model = nn.Sequential(nn.Conv2d(3, 2, kernel_size=1, bias=False), nn.Flatten(), nn.Linear(2 * 4 * 4, 10))
    result = measure_complexity(model, (4, 4))
    expected = 16 * 2 * 3 + 32 * 10
    assert result["macs"] == expected
    assert result["paper_gflops"] * 1024**3 == expected


def test_paper_rule_ignores_layers_without_multiply_adds():
    assert paper_gflops_rule(nn.ReLU(), (torch.zeros(1, 3, 4, 4),), torch.zeros(1, 3, 4, 4)) == 0
    assert paper_gflops_rule(nn.BatchNorm2d(3), (torch.zeros(1, 3, 4, 4),), torch.zeros(1, 3, 4, 4)) == 0


# ---------------------------------------------------------------- the HRNet paper's table at 256x192


@pytest.fixture(scope="module")
def table():
    torch.manual_seed(0)
    rows = {"hrnet_w32": measure_complexity(build("hrnet_w32"), (256, 192))}  # a real forward pass
    with torch.device("meta"):  # shapes only (test_meta_device_counts_equal_real_counts shows it is the same)
        rows["simplebaseline_r50"] = measure_complexity(build("simplebaseline_r50"), (256, 192))
    return rows


def test_hrnet_w32_and_simplebaseline_r50_reproduce_the_papers_gflops(table):
    # HRNet paper, Table 1 (COCO val, 256x192): HRNet-W32 7.1, SimpleBaseline-R50 8.9 GFLOPs.
    # HRNet's own rows follow the official rule exactly (7.12 -> 7.1).  The SimpleBaseline rows were
    # carried over from the SimpleBaseline paper and match the rule to within 0.1 only: the rule gives
    # 8.99 for R50 (8.9 in the table), 12.38 for R101 (12.4), 15.76 for R152 (15.7).
    assert round(table["hrnet_w32"]["paper_gflops"], 1) == 7.1
    assert abs(table["simplebaseline_r50"]["paper_gflops"] - 8.9) < 0.1
    assert truncate(table["simplebaseline_r50"]["paper_gflops"]) == 8.9


def test_without_deconvolutions_the_paper_rule_is_the_true_count_in_binary_giga(table):
    # HRNet has only convolutions: the rule and FlopCounterMode agree exactly; "G" is 2^30.
    assert table["hrnet_w32"]["paper_gflops"] * 1024**3 == table["hrnet_w32"]["macs"]


def test_simplebaseline_paper_count_exceeds_macs_by_three_times_the_deconvolutions(table):
    # At 256x192 layer4 is 8x6; the deconvolutions produce 16x12, 32x24, 64x48 maps.
    # True multiply-adds of a deconvolution: weights * input pixels; the paper rule: weights * output pixels.
    true_deconv = 2048 * 256 * 16 * (8 * 6) + 256 * 256 * 16 * (16 * 12) + 256 * 256 * 16 * (32 * 24)
    paper = table["simplebaseline_r50"]["paper_gflops"] * 1024**3
    assert paper - table["simplebaseline_r50"]["macs"] == 3 * true_deconv


def test_the_rest_of_the_papers_table_on_the_meta_device():
    # HRNet paper, Table 1: W48 14.6 (256x192) and 32.9 (384x288), W32 16.0 (384x288),
    # 8-stage Hourglass 14.3, SimpleBaseline-R152 15.7 (within 0.1, see above).
    # Counting needs shapes only: models built on the "meta" device run without memory or arithmetic.
    with torch.device("meta"):
        models = {name: build(name) for name in ["hrnet_w48", "simplebaseline_r152", "hourglass_8", "hrnet_w32"]}
    assert round(measure_complexity(models["hrnet_w48"], (256, 192))["paper_gflops"], 1) == 14.6
    assert round(measure_complexity(models["hrnet_w48"], (384, 288))["paper_gflops"], 1) == 32.9
    assert round(measure_complexity(models["hrnet_w32"], (384, 288))["paper_gflops"], 1) == 16.0
    # The table's 14.3 is the early revision of hg.lua; the released one adds, per stack, a residual
    # module at 64 x 48: 256*128 + 128*128*9 + 128*256 multiply-adds per pixel.
    with torch.device("meta"):
        early = build("hourglass_8", residual_after_hourglass=False)
    assert round(measure_complexity(early, (256, 192))["paper_gflops"], 1) == 14.3
    extra = 8 * (256 * 128 + 128 * 128 * 9 + 128 * 256) * 64 * 48 / 1024**3
    released = measure_complexity(models["hourglass_8"], (256, 192))["paper_gflops"]
    assert released == pytest.approx(measure_complexity(early, (256, 192))["paper_gflops"] + extra)
    assert abs(measure_complexity(models["simplebaseline_r152"], (256, 192))["paper_gflops"] - 15.7) < 0.1


def test_meta_device_counts_equal_real_counts(table):
    with torch.device("meta"):
        model = build("hrnet_w32")
    assert measure_complexity(model, (256, 192)) == table["hrnet_w32"]


def test_complexity_leaves_the_model_as_it_was():
    model = build("hrnet_tiny").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measure_complexity(model, (64, 64))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_complexity_rejects_bad_input():
    with pytest.raises(TypeError, match="input_size must be a pair"):
        measure_complexity(build("hrnet_tiny"), 64)
    with pytest.raises(ValueError, match="input_size must be a pair"):
        measure_complexity(build("hrnet_tiny"), (0, 64))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        measure_complexity("hrnet_tiny", (64, 64))
    with pytest.raises(ValueError, match="not a multiple of 32"):
        measure_complexity(build("hrnet_tiny"), (64, 48))


# ---------------------------------------------------------------- latency and training speed


def test_measure_latency_reports_consistent_numbers_and_restores_the_model():
    model = build("simplebaseline_tiny").train()
    result = measure_latency(model, (64, 64), device="cpu", batch=2, warmup=1, repeats=3)
    assert {"mean_ms", "std_ms", "median_ms", "min_ms", "images_per_second", "batch", "device"} <= set(result)
    assert 0 < result["min_ms"] <= result["mean_ms"]
    assert result["std_ms"] >= 0
    assert result["images_per_second"] == pytest.approx(2 / (result["mean_ms"] / 1000))
    assert result["device"] == "cpu" and result["batch"] == 2 and result["input_size"] == (64, 64)
    assert model.training


def test_measure_training_speed_leaves_batchnorm_statistics_alone():
    model = build("hrnet_tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = measure_training_speed(model, (64, 64), batch=2, steps=1, warmup=0)
    assert result["images_per_second"] > 0 and result["batch"] == 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_latency_rejects_bad_arguments():
    model = build("hrnet_tiny")
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        measure_latency(model, (64, 64), batch=0)
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        measure_latency(model, (64, 64), repeats=0)
    with pytest.raises(ValueError, match="device type must be one of"):
        measure_latency(model, (64, 64), device="meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            measure_latency(model, (64, 64), device="cuda")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        measure_training_speed(model, (64, 64), steps=0)
