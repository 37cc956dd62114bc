"""ROIPool / ROIAlign: vectorised versions against the loop versions, hand-worked numbers,
mathematical properties, gradients, bad input, and torchvision.ops as a reference when the
system interpreter has it (Debian's python3-torchvision; run in a subprocess)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib.ops import (
    bilinear_sample,
    boxes_to_rois,
    roi_align,
    roi_align_loop,
    roi_align_sampling_points,
    roi_pool,
    roi_pool_bins,
    roi_pool_loop,
)

SYSTEM_PYTHON = "/usr/bin/python3"


def random_rois(generator: torch.Generator, num_images: int, height: int, width: int, stride: float) -> torch.Tensor:
    """Boxes in image pixels covering every awkward case: partly outside the map, entirely
    outside, zero width and/or height, tiny (under one cell), integer corners (rounding
    ties), and ordinary ones.  Image extent: ``width * stride`` by ``height * stride``."""
    img_w, img_h = width * stride, height * stride
    rows = []

    def add(x1: float, y1: float, x2: float, y2: float) -> None:
        rows.append([float(len(rows) % num_images), x1, y1, x2, y2])

    for _ in range(6):  # ordinary boxes, anywhere, some larger than the map
        x1, y1 = (torch.rand(2, generator=generator) * torch.tensor([img_w, img_h]) - 0.2 * img_w).tolist()
        w, h = (torch.rand(2, generator=generator) * torch.tensor([img_w, img_h]) * 0.9 + 0.1).tolist()
        add(x1, y1, x1 + w, y1 + h)
    add(-0.4 * img_w, -0.3 * img_h, 0.3 * img_w, 0.4 * img_h)  # partly outside (top left)
    add(0.6 * img_w, 0.7 * img_h, 1.3 * img_w, 1.2 * img_h)  # partly outside (bottom right)
    add(1.5 * img_w, 1.5 * img_h, 1.9 * img_w, 1.8 * img_h)  # entirely outside
    add(0.3 * img_w, 0.4 * img_h, 0.3 * img_w, 0.4 * img_h)  # a point: zero width and height
    add(0.2 * img_w, 0.1 * img_h, 0.2 * img_w, 0.8 * img_h)  # zero width
    add(0.1 * img_w, 0.5 * img_h, 0.7 * img_w, 0.5 * img_h)  # zero height
    add(0.51 * img_w, 0.33 * img_h, 0.51 * img_w + 0.3 * stride, 0.33 * img_h + 0.2 * stride)  # tiny
    add(2 * stride, 1 * stride, 9 * stride, 8 * stride)  # integer cells
    add(2.5 * stride, 0.5 * stride, 6.5 * stride, 4.5 * stride)  # rounding ties (x.5 cells)
    add(0.0, 0.0, 6.0 * stride, 6.0 * stride)  # 7 x 7 cells for ROIPool: bin edges at exact integers
    return torch.tensor(rows, dtype=torch.float32)


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(3, 4, 9, 11, generator=generator)
    return features, generator


# --------------------------------------------------------------------------------------
# Vectorised == loop
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.25])
def test_roi_align_agrees_with_loop(case, aligned, sampling_ratio, spatial_scale):
    features, generator = case
    rois = random_rois(generator, 3, 9, 11, 1 / spatial_scale)
    for output_size in [(3, 4), 2]:
        fast = roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)
        slow = roi_align_loop(features, rois, output_size, spatial_scale, sampling_ratio, aligned)
        size = output_size if isinstance(output_size, tuple) else (output_size, output_size)
        assert fast.shape == (len(rois), 4, *size)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spatial_scale", [1.0, 0.25, 0.5])
def test_roi_pool_agrees_with_loop(case, spatial_scale):
    features, generator = case
    rois = random_rois(generator, 3, 9, 11, 1 / spatial_scale)
    for output_size in [(3, 4), 2, 7, 13]:
        fast = roi_pool(features, rois, output_size, spatial_scale)
        slow = roi_pool_loop(features, rois, output_size, spatial_scale)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_float64_features_agree_with_loop(case):
    features, generator = case
    features = features.double()
    rois = random_rois(generator, 3, 9, 11, 4.0)
    torch.testing.assert_close(roi_align(features, rois, 3, 0.25), roi_align_loop(features, rois, 3, 0.25))
    torch.testing.assert_close(roi_pool(features, rois, 3, 0.25), roi_pool_loop(features, rois, 3, 0.25))
    assert roi_align(features, rois, 3, 0.25).dtype == torch.float64


def test_list_of_boxes_is_the_same_as_rows_with_batch_index(case):
    features, generator = case
    per_image = [torch.tensor([[1.0, 2.0, 6.5, 7.0], [0.0, 0.0, 3.0, 3.0]]), torch.zeros(0, 4), torch.tensor([[2.0, 1.0, 9.0, 5.0]])]
    rois = torch.tensor([[0, 1.0, 2.0, 6.5, 7.0], [0, 0.0, 0.0, 3.0, 3.0], [2, 2.0, 1.0, 9.0, 5.0]])
    torch.testing.assert_close(roi_align(features, per_image, 3), roi_align(features, rois, 3))
    torch.testing.assert_close(roi_pool(features, per_image, 3), roi_pool(features, rois, 3))


def test_boxes_to_rois_converts_coco_boxes():
    rois = boxes_to_rois([torch.tensor([[10.0, 20.0, 30.0, 40.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]])], "xywh")
    assert rois.tolist() == [[0, 10, 20, 40, 60], [1, 1, 2, 4, 6]]
    assert boxes_to_rois([torch.zeros(0, 4)]).shape == (0, 5)


def test_no_boxes_gives_an_empty_batch(case):
    features, _ = case
    for op in (roi_align, roi_pool, roi_align_loop, roi_pool_loop):
        assert op(features, torch.zeros(0, 5), (2, 3)).shape == (0, 4, 2, 3)


# --------------------------------------------------------------------------------------
# Hand-worked numbers and mathematical properties
# --------------------------------------------------------------------------------------
def test_roi_pool_hand_worked():
    features = torch.arange(16.0).view(1, 1, 4, 4)  # value = 4 * row + column
    # Box over all 4 x 4 cells, 2 x 2 bins of 2 x 2 cells: the bottom-right cell of each bin wins.
    out = roi_pool(features, torch.tensor([[0, 0.0, 0.0, 3.0, 3.0]]), 2)
    assert out.flatten().tolist() == [5.0, 7.0, 13.0, 15.0]
    # x1 = 0.4 rounds to 0, x2 = 1.5 rounds (half away from zero) to 2: columns 0..2 in one bin.
    out = roi_pool(features, torch.tensor([[0, 0.4, 0.0, 1.5, 0.0]]), 1)
    assert out.item() == 2.0
    # Stride 2 (scale 0.5): image box (2, 2)-(6, 6) -> cells (1, 1)-(3, 3), one bin.
    out = roi_pool(features, torch.tensor([[0, 2.0, 2.0, 6.0, 6.0]]), 1, spatial_scale=0.5)
    assert out.item() == 15.0
    # A box entirely outside the map: every bin is empty and gives 0 (not -inf).
    out = roi_pool(features, torch.tensor([[0, 10.0, 10.0, 12.0, 12.0]]), 2)
    assert out.abs().sum().item() == 0.0


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_is_exact_on_a_linear_feature_map(aligned):
    """Bilinear interpolation reproduces a linear function, and the sampling points are
    symmetric inside each bin, so every bin must equal the function at the bin centre."""
    height, width = 12, 14
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    features = (2.0 * ys - 3.0 * xs + 1.0).view(1, 1, height, width)
    x1, y1, x2, y2 = 2.3, 1.7, 9.9, 8.2  # well inside the map
    out = roi_align(features, torch.tensor([[0, x1, y1, x2, y2]], dtype=torch.float64), (3, 5), aligned=aligned)
    shift = 0.5 if aligned else 0.0
    bin_h, bin_w = (y2 - y1) / 3, (x2 - x1) / 5
    centre_y = y1 - shift + (np.arange(3) + 0.5) * bin_h
    centre_x = x1 - shift + (np.arange(5) + 0.5) * bin_w
    expected = 2.0 * centre_y[:, None] - 3.0 * centre_x[None, :] + 1.0
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-10)


def test_roi_align_adaptive_sampling_counts_one_point_per_cell():
    """A 6-cell wide box (x from -0.5 to 5.5) in 2 bins: ceil(6 / 2) = 3 samples per bin
    along x, one cell apart, at the cell centres 0, 1, 2 | 3, 4, 5.  On a map that is 1 at
    column 3 only, the bins average to 0 and 1/3."""
    features = torch.zeros(1, 1, 1, 12)
    features[0, 0, 0, 3] = 1.0
    out = roi_align(features, torch.tensor([[0, -0.5, 0.0, 5.5, 0.0]]), (1, 2))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 1 / 3]))
    # sampling_ratio=1: one sample per bin at the bin centre, x = 1 and x = 4: both miss.
    out = roi_align(features, torch.tensor([[0, -0.5, 0.0, 5.5, 0.0]]), (1, 2), sampling_ratio=1)
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.0]))


def test_bilinear_sample_rules():
    features = torch.arange(12.0).view(1, 1, 3, 4)  # value = 4 * y + x
    points = torch.tensor(
        [
            [
                [1.0, 2.0],  # a cell centre: its value, 9
                [1.5, 0.25],  # inside: the linear function, 4 * 0.25 + 1.5 = 2.5
                [-0.5, 1.0],  # half a cell left of the map: clamped onto column 0 -> 4
                [3.9, 2.6],  # below-right but within one cell: clamped onto the corner -> 11
                [-1.5, 1.0],  # more than one cell outside: 0
                [1.0, 3.5],  # y > H: 0
            ]
        ]
    )
    values = bilinear_sample(features, points)
    assert values.shape == (1, 1, 6)
    torch.testing.assert_close(values.flatten(), torch.tensor([9.0, 2.5, 4.0, 11.0, 0.0, 0.0]))


def test_bilinear_sample_keeps_extra_point_dimensions():
    features = torch.randn(2, 3, 5, 6)
    points = torch.rand(2, 4, 7, 2) * 4
    values = bilinear_sample(features, points)
    assert values.shape == (2, 3, 4, 7)
    # Against grid_sample (align_corners=True maps -1..1 onto the first..last cell centre).
    grid = torch.stack([points[..., 0] / 5 * 2 - 1, points[..., 1] / 4 * 2 - 1], dim=-1)
    expected = torch.nn.functional.grid_sample(features, grid, align_corners=True)
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=1e-5)


def test_roi_align_false_vs_true_differ_by_half_a_cell():
    features = torch.arange(20.0).view(1, 1, 4, 5)  # linear: 5 y + x
    box = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]])
    shifted = torch.tensor([[0, 0.5, 0.5, 2.5, 2.5]])
    torch.testing.assert_close(roi_align(features, box, 2, aligned=True), roi_align(features, shifted, 2, aligned=False))


def test_one_box_geometry_explains_the_outputs(case):
    """The bins of roi_pool_bins and the points of roi_align_sampling_points reproduce the
    pooled values (max over the cells; mean of the bilinear samples)."""
    features, generator = case
    rois = random_rois(generator, 1, 9, 11, 4.0)
    for box in rois[:, 1:]:
        pooled = roi_pool(features[:1], torch.cat([torch.zeros(1), box]).view(1, 5), (3, 2), 0.25)[0]
        rows, cols = roi_pool_bins(box, (3, 2), 0.25, feature_size=(9, 11))
        assert rows.shape == (3, 2) and cols.shape == (2, 2)
        for i, (r0, r1) in enumerate(rows.tolist()):
            for j, (c0, c1) in enumerate(cols.tolist()):
                cells = features[0, :, r0:r1, c0:c1]
                expected = cells.amax(dim=(1, 2)) if cells.numel() else torch.zeros(4)
                torch.testing.assert_close(pooled[:, i, j], expected)
        for aligned in (False, True):
            points = roi_align_sampling_points(box, (3, 2), 0.25, aligned=aligned)  # (h, w, s_h, s_w, 2)
            aligned_out = roi_align(features[:1], torch.cat([torch.zeros(1), box]).view(1, 5), (3, 2), 0.25, aligned=aligned)[0]
            if points.numel() == 0:
                assert aligned_out.abs().sum() == 0
                continue
            values = bilinear_sample(features[:1], points.unsqueeze(0))[0]  # (C, h, w, s_h, s_w)
            torch.testing.assert_close(values.mean(dim=(3, 4)), aligned_out, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="box must be"):
        roi_pool_bins([5.0, 0.0, 1.0, 1.0], 2)


# --------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------
def test_roi_align_gradcheck():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 2, 5, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 0.6, 4.2, 3.1], [1, -1.0, 2.0, 2.5, 6.0], [1, 2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    for aligned, sampling_ratio in itertools.product([False, True], [-1, 2]):
        assert torch.autograd.gradcheck(lambda f: roi_align(f, rois, (2, 3), 1.0, sampling_ratio, aligned), (features,))
    points = torch.rand(2, 5, 2, dtype=torch.float64, generator=generator) * 4
    assert torch.autograd.gradcheck(lambda f: bilinear_sample(f, points), (features,))


def test_gradients_reach_the_features_and_match_the_loop_versions(case):
    features, generator = case
    rois = random_rois(generator, 3, 9, 11, 4.0)
    for fast_op, slow_op in [(roi_align, roi_align_loop), (roi_pool, roi_pool_loop)]:
        grads = []
        for op in (fast_op, slow_op):
            leaf = features.double().clone().requires_grad_(True)
            out = op(leaf, rois, (3, 2), 0.25)
            weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
            (out * weights).sum().backward()
            grads.append(leaf.grad)
        assert grads[0].abs().sum() > 0
        torch.testing.assert_close(grads[0], grads[1], atol=1e-10, rtol=0)


def test_roi_pool_gradient_goes_to_the_arg_max_cell():
    features = torch.zeros(1, 1, 4, 4, requires_grad=True)
    with torch.no_grad():
        features[0, 0, 1, 2] = 5.0
    roi_pool(features, torch.tensor([[0, 0.0, 0.0, 3.0, 3.0]]), 1).sum().backward()
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 1, 2] = 1.0
    torch.testing.assert_close(features.grad, expected)
    # A tie goes to the first maximum in row-major order (torchvision's strict ">" loop).
    features.grad = None
    with torch.no_grad():
        features[0, 0, 3, 0] = 5.0
        features[0, 0, 1, 3] = 5.0
    roi_pool(features, torch.tensor([[0, 0.0, 0.0, 3.0, 3.0]]), 1).sum().backward()
    torch.testing.assert_close(features.grad, expected)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [roi_align, roi_pool, roi_align_loop, roi_pool_loop])
def test_bad_input_is_rejected_with_a_clear_error(op):
    features = torch.randn(2, 3, 8, 8)
    good = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]])
    with pytest.raises(ValueError, match=r"x2 >= x1.*box 1"):
        op(features, torch.tensor([[0, 1.0, 1.0, 5.0, 5.0], [1, 5.0, 1.0, 4.0, 5.0]]), 2)
    with pytest.raises(ValueError, match=r"y2 >= y1"):
        op(features, torch.tensor([[0, 1.0, 6.0, 5.0, 5.0]]), 2)
    with pytest.raises(ValueError, match=r"boxes must have shape \(\?, 5\), got \(1, 4\)"):
        op(features, torch.tensor([[1.0, 1.0, 5.0, 5.0]]), 2)
    with pytest.raises(ValueError, match=r"batch index of box 0 must be an integer in \[0, 1\].*got 2"):
        op(features, torch.tensor([[2, 1.0, 1.0, 5.0, 5.0]]), 2)
    with pytest.raises(ValueError, match=r"batch index.*got 0.5"):
        op(features, torch.tensor([[0.5, 1.0, 1.0, 5.0, 5.0]]), 2)
    with pytest.raises(ValueError, match="boxes contains NaN"):
        op(features, torch.tensor([[0, float("nan"), 1.0, 5.0, 5.0]]), 2)
    with pytest.raises(ValueError, match=r"features must have shape \(N, C, H, W\), got \(3, 8, 8\)"):
        op(features[0], good, 2)
    with pytest.raises(ValueError, match="features must not be empty"):
        op(torch.zeros(1, 3, 0, 8), good, 2)
    with pytest.raises(TypeError, match="features must be a torch.Tensor"):
        op(features.numpy(), good, 2)
    with pytest.raises(TypeError, match="features must be a floating-point tensor"):
        op(features.long(), good, 2)
    with pytest.raises(ValueError, match=r"output_size must be a pair \(h, w\) of positive integers"):
        op(features, good, (0, 2))
    with pytest.raises(TypeError, match=r"output_size must be a pair \(h, w\)"):
        op(features, good, (2, 2, 2))
    with pytest.raises(ValueError, match="spatial_scale must be a finite number > 0"):
        op(features, good, 2, 0.0)
    with pytest.raises(ValueError, match=r"boxes\[1\] must have shape \(\?, 4\)"):
        op(features, [torch.zeros(0, 4), torch.zeros(2, 5)], 2)
    with pytest.raises(ValueError, match=r"batch index.*features has a batch of 2"):
        op(features, [torch.zeros(0, 4), torch.zeros(0, 4), torch.tensor([[0.0, 0, 1, 1]])], 2)


def test_bilinear_sample_bad_points():
    features = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"points must have shape \(N, \.\.\., 2\) with N=2"):
        bilinear_sample(features, torch.zeros(3, 4, 2))
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., 2\)"):
        bilinear_sample(features, torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="points contains NaN"):
        bilinear_sample(features, torch.full((2, 4, 2), float("nan")))


def test_boxes_to_rois_bad_input():
    with pytest.raises(ValueError, match="box_format must be one of"):
        boxes_to_rois([torch.zeros(1, 4)], "cxcywh")
    with pytest.raises(TypeError, match="boxes must be a list"):
        boxes_to_rois(torch.zeros(1, 4))


# --------------------------------------------------------------------------------------
# torchvision.ops as the reference (Debian's python3-torchvision, system interpreter)
# --------------------------------------------------------------------------------------
def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def torchvision_python() -> str:
    try:
        import torchvision.ops  # noqa: F401  (works only where torchvision matches torch)

        return sys.executable
    except Exception:  # not installed, or built for another torch
        pass
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"torchvision cannot be imported here and {SYSTEM_PYTHON} does not exist")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import numpy, torch, torchvision.ops"], capture_output=True, text=True, env=_clean_env()
    )
    if probe.returncode != 0:
        pytest.skip(
            f"torchvision.ops cannot be imported here nor by {SYSTEM_PYTHON} "
            "(on Debian/Ubuntu: apt-get install python3-torchvision)"
        )
    return SYSTEM_PYTHON


REFERENCE_SCRIPT = textwrap.dedent(
    """
    import itertools, sys
    import numpy as np, torch, torchvision.ops as ops
    data = np.load(sys.argv[1])
    out = {}
    for dtype in ("float32", "float64"):
        features = torch.from_numpy(data["features"].astype(dtype))
        rois = torch.from_numpy(data["rois"].astype(dtype))
        for scale, size in itertools.product((1.0, 0.25), ((3, 4), (7, 7), (13, 13))):
            out[f"pool_{dtype}_{scale}_{size}"] = ops.roi_pool(features, rois, size, scale).numpy()
            for ratio, aligned in itertools.product((-1, 1, 2), (False, True)):
                key = f"align_{dtype}_{scale}_{size}_{ratio}_{aligned}"
                out[key] = ops.roi_align(features, rois, size, scale, ratio, aligned).numpy()
    np.savez(sys.argv[2], **out)
    """
)


def test_agrees_with_torchvision_ops(torchvision_python, tmp_path):
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(3, 4, 13, 17, generator=generator)
    rois = torch.cat([random_rois(generator, 3, 13, 17, 1.0), random_rois(generator, 3, 13, 17, 4.0)])
    np.savez(tmp_path / "inputs.npz", features=features.numpy(), rois=rois.numpy())
    subprocess.run(
        [torchvision_python, "-c", REFERENCE_SCRIPT, str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        check=True,
        env=_clean_env(),
        timeout=120,
    )
    reference = np.load(tmp_path / "out.npz")
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).split(".")[1]
        feats, boxes = features.to(dtype), rois.to(dtype)
        for scale, size in itertools.product((1.0, 0.25), ((3, 4), (7, 7), (13, 13))):
            ours = roi_pool(feats, boxes, size, scale).numpy()
            np.testing.assert_allclose(ours, reference[f"pool_{name}_{scale}_{size}"], atol=1e-5, rtol=0)
            for ratio, aligned in itertools.product((-1, 1, 2), (False, True)):
                ours = roi_align(feats, boxes, size, scale, ratio, aligned).numpy()
                key = f"align_{name}_{scale}_{size}_{ratio}_{aligned}"
                np.testing.assert_allclose(ours, reference[key], atol=1e-5, rtol=0, err_msg=key)


# --------------------------------------------------------------------------- torchvision's rules for bad values
def test_roi_pool_skips_nan_cells_as_torchvision_does():
    features = torch.arange(32.0).view(1, 2, 4, 4)
    features[0, 0, 1, 1] = float("nan")  # in bin (0, 0), not its maximum: skipped
    features[0, 1, 2:, 2:] = float("nan")  # a whole bin of NaN: torchvision's starting value -FLT_MAX
    features[0, 1, 3, 0] = float("-inf")
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    expected = torch.tensor([[[[4.0, 7.0], [13.0, 15.0]], [[21.0, 23.0], [29.0, -3.4028234663852886e38]]]])
    expected[0, 0, 1, 1] = 15.0
    torch.testing.assert_close(roi_pool(features, rois, 2), expected)
    torch.testing.assert_close(roi_pool_loop(features, rois, 2), expected)
    leaf = features.clone().requires_grad_(True)
    roi_pool(leaf, rois, 2).sum().backward()
    assert leaf.grad[0, 1, 2:, 2:].sum() == 0 and leaf.grad[0, 0, 1, 0] == 1  # no gradient to a NaN bin


def test_a_fractional_sampling_ratio_is_an_error_not_truncated():
    features = torch.rand(1, 1, 8, 8)
    rois = torch.tensor([[0.0, 1.0, 1.0, 6.0, 6.0]])
    for op in (roi_align, roi_align_loop):
        with pytest.raises(TypeError, match="sampling_ratio must be an integer, got 2.7"):
            op(features, rois, 2, 1.0, 2.7)
    with pytest.raises(TypeError, match="sampling_ratio must be an integer"):
        roi_align_sampling_points([1.0, 1.0, 6.0, 6.0], 2, 1.0, 2.5)
    torch.testing.assert_close(roi_align(features, rois, 2, 1.0, 2), roi_align_loop(features, rois, 2, 1.0, 2))
