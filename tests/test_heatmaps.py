"""Tests of course_lib.heatmaps: Gaussian targets, decoders, flip-back, G-RMI."""

import importlib.util
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from course_lib.heatmaps import (
    blur_heatmaps,
    dark_kernel_size,
    decode_argmax,
    decode_dark,
    decode_grmi,
    decode_quarter_offset,
    flip_heatmaps,
    gaussian_heatmaps,
    gaussian_heatmaps_loop,
    grmi_targets,
    soft_argmax,
)
from course_lib.keypoints import COCO_FLIP_PAIRS

INPUT_SIZE = (256, 192)
HEATMAP_SIZE = (64, 48)
STRIDE = 4


def exact_targets(count=300, margin=24, seed=0):
    """Keypoints at integer input pixels of a 256 x 192 crop, away from the border, in heatmap px."""
    rng = np.random.default_rng(seed)
    x = rng.integers(margin, INPUT_SIZE[1] - margin, count)
    y = rng.integers(margin, INPUT_SIZE[0] - margin, count)
    return np.stack([x, y], -1)[:, None, :] / STRIDE  # (N, 1, 2), on a quarter-pixel grid


# ----------------------------------------------------------------------------- targets
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0, 1.5])
def test_vectorised_targets_equal_the_loop(unbiased, sigma):
    rng = np.random.default_rng(1)
    keypoints = rng.uniform(-12, 60, (6, 17, 2))  # some off the map, some partly on it
    keypoints[0, :4] = [[-0.7, 3.2], [47.6, 63.4], [-7.0, 5.0], [53.0, 10.0]]
    visibility = rng.integers(0, 3, (6, 17))
    fast, fast_weights = gaussian_heatmaps(keypoints, visibility, HEATMAP_SIZE, sigma, unbiased)
    slow, slow_weights = gaussian_heatmaps_loop(keypoints, visibility, HEATMAP_SIZE, sigma, unbiased)
    assert fast.shape == (6, 17, 64, 48) and fast.dtype == np.float32
    assert fast_weights.shape == (6, 17) and fast_weights.dtype == np.float32
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    np.testing.assert_array_equal(fast_weights, slow_weights)


def test_msra_target_by_hand():
    # x = 10.4 -> mu_x = int(10.9) = 10; y = 20.6 -> mu_y = int(21.1) = 21; window 3 sigma = 6
    heatmaps, weights = gaussian_heatmaps([[[10.4, 20.6]]], [[2]], HEATMAP_SIZE, 2.0)
    h = heatmaps[0, 0]
    assert weights[0, 0] == 1.0
    assert h[21, 10] == 1.0 and h.max() == 1.0
    assert h[21, 16] == pytest.approx(math.exp(-36 / 8), rel=1e-6)  # edge of the window
    assert h[21, 17] == 0.0 and h[28, 10] == 0.0  # just outside it
    assert h[24, 13] == pytest.approx(math.exp(-(9 + 9) / 8), rel=1e-6)
    assert np.count_nonzero(h) == 13 * 13


def test_msra_rounds_like_the_official_int():
    # int() truncates towards zero: x = -0.7 -> int(-0.2) = 0, so the peak sits on column 0
    heatmaps, _ = gaussian_heatmaps([[[-0.7, 5.0]]], [[2]], HEATMAP_SIZE, 2.0)
    assert heatmaps[0, 0, 5, 0] == 1.0


def test_weights_follow_visibility_and_the_official_window_test():
    keypoints = np.array([[[20, 20], [20, 20], [20, 20], [-7, 5], [-8, 5], [-9, 5], [53, 5], [54, 5], [5, 69],
                           [5, 70]]], float)
    visibility = np.array([[0, 1, 2, 2, 2, 2, 2, 2, 2, 2]])
    heatmaps, weights = gaussian_heatmaps(keypoints, visibility, HEATMAP_SIZE, 2.0)
    # v=0 -> 0; hidden (v=1) and visible -> 1.  HRNet's generate_target: ul = int(mu - 6), br = int(mu + 7),
    # weight 0 when ul >= W or br < 0.  x = -7 -> mu = int(-6.5) = -6, window [-12, 0] touches column 0;
    # x = -8 -> mu = -7, br = int(0) = 0: weight 1 although the window [-13, -1] holds no pixel (an empty map);
    # x = -9 -> mu = -8, br = -1: weight 0; x = 53 -> ul = 47 < 48: 1; 54 -> ul = 48: 0; same in y (H = 64)
    np.testing.assert_array_equal(weights[0], [0, 1, 1, 1, 1, 0, 1, 0, 1, 0])
    assert not heatmaps[0, 0].any() and not heatmaps[0, 4].any() and not heatmaps[0, 5].any()
    assert heatmaps[0, 3, 5, 0] == pytest.approx(math.exp(-36 / 8), rel=1e-6)
    loop_maps, loop_weights = gaussian_heatmaps_loop(keypoints, visibility, HEATMAP_SIZE, 2.0)
    np.testing.assert_array_equal(loop_weights, weights)
    np.testing.assert_allclose(loop_maps, heatmaps, rtol=1e-5, atol=1e-7)


def test_unbiased_weights_follow_darks_test_on_the_float_centre():
    # DARK's adjust_target_weight: br = int(x + 3 sigma + 1) < 0 -> weight 0, so weight 1 down to x > -8 at sigma 2,
    # and the untruncated Gaussian's tail lies on the map (x = -6.5 on a 48-wide map: weight 1, not an empty map)
    keypoints = np.array([[[-6.5, 5], [-7.9, 5], [-8.0, 5], [53.9, 5], [54.0, 5]]])
    heatmaps, weights = gaussian_heatmaps(keypoints, np.full((1, 5), 2), HEATMAP_SIZE, 2.0, unbiased=True)
    np.testing.assert_array_equal(weights[0], [1, 1, 0, 1, 0])  # right side: ul = int(x - 6) >= 48 -> 0
    assert heatmaps[0, 0, 5, 0] == pytest.approx(math.exp(-(6.5**2) / 8), rel=1e-5)
    assert not heatmaps[0, 2].any() and not heatmaps[0, 4].any()
    loop_maps, loop_weights = gaussian_heatmaps_loop(keypoints, np.full((1, 5), 2), HEATMAP_SIZE, 2.0, unbiased=True)
    np.testing.assert_array_equal(loop_weights, weights)
    np.testing.assert_allclose(loop_maps, heatmaps, rtol=1e-5, atol=1e-7)


def test_unbiased_target_peaks_at_the_float_position():
    heatmaps, weights = gaussian_heatmaps([[[10.25, 20.75]]], [[2]], HEATMAP_SIZE, 2.0, unbiased=True)
    h = heatmaps[0, 0]
    rows, columns = np.mgrid[0:64, 0:48]
    expected = np.exp(-((columns - 10.25) ** 2 + (rows - 20.75) ** 2) / 8)
    np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-7)
    assert weights[0, 0] == 1.0 and h.max() < 1.0


def test_targets_numpy_equals_torch_and_keeps_the_device():
    rng = np.random.default_rng(2)
    keypoints = rng.uniform(-5, 60, (3, 17, 2)).astype(np.float32)
    visibility = rng.integers(0, 3, (3, 17))
    for unbiased in (False, True):
        expected, expected_weights = gaussian_heatmaps(keypoints, visibility, HEATMAP_SIZE, 2.0, unbiased)
        got, got_weights = gaussian_heatmaps(
            torch.from_numpy(keypoints), torch.from_numpy(visibility), HEATMAP_SIZE, 2.0, unbiased
        )
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.device == torch.device("cpu")
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
        np.testing.assert_array_equal(got_weights.numpy(), expected_weights)


def test_targets_accept_a_single_instance():
    heatmaps, weights = gaussian_heatmaps(np.full((17, 2), 10.0), np.full(17, 2), HEATMAP_SIZE, 2.0)
    assert heatmaps.shape == (17, 64, 48) and weights.shape == (17,)


# ----------------------------------------------------------------------------- decoders on exact targets
@pytest.mark.parametrize("unbiased", [False, True])
def test_argmax_error_is_at_most_half_a_pixel(unbiased):
    truth = exact_targets()
    heatmaps, _ = gaussian_heatmaps(truth, np.full(truth.shape[:2], 2), HEATMAP_SIZE, 2.0, unbiased)
    keypoints, scores = decode_argmax(heatmaps)
    assert keypoints.shape == truth.shape and scores.shape == truth.shape[:2]
    assert np.abs(keypoints - truth).max() <= 0.5
    np.testing.assert_allclose(scores, heatmaps.reshape(len(truth), 1, -1).max(-1))


def test_quarter_offset_lowers_the_mean_error_on_unbiased_targets():
    truth = exact_targets()
    heatmaps, _ = gaussian_heatmaps(truth, np.full(truth.shape[:2], 2), HEATMAP_SIZE, 2.0, unbiased=True)
    argmax_error = np.linalg.norm(decode_argmax(heatmaps)[0] - truth, axis=-1).mean()
    quarter_error = np.linalg.norm(decode_quarter_offset(heatmaps)[0] - truth, axis=-1).mean()
    assert quarter_error < 0.8 * argmax_error


def test_quarter_offset_cannot_help_on_msra_targets():
    # MSRA targets are symmetric about an integer pixel: both neighbours are equal, no step
    truth = exact_targets()
    heatmaps, _ = gaussian_heatmaps(truth, np.full(truth.shape[:2], 2), HEATMAP_SIZE, 2.0)
    np.testing.assert_array_equal(decode_quarter_offset(heatmaps)[0], decode_argmax(heatmaps)[0])


def test_dark_is_sub_pixel_accurate_on_unbiased_targets():
    truth = exact_targets()
    heatmaps, _ = gaussian_heatmaps(truth, np.full(truth.shape[:2], 2), HEATMAP_SIZE, 2.0, unbiased=True)
    keypoints, _ = decode_dark(heatmaps, sigma=2.0)
    assert np.linalg.norm(keypoints - truth, axis=-1).mean() < 0.05


def official_style_dark(heatmaps, kernel=11):
    """DARK's post-processing written from the paper's recipe with OpenCV (an independent reference)."""
    heatmaps = heatmaps.astype(np.float64)
    out = np.zeros(heatmaps.shape[:2] + (2,))
    border = (kernel - 1) // 2
    for n in range(heatmaps.shape[0]):
        for k in range(heatmaps.shape[1]):
            hm = heatmaps[n, k]
            py, px = np.unravel_index(np.argmax(hm), hm.shape)
            padded = np.zeros((hm.shape[0] + 2 * border, hm.shape[1] + 2 * border))
            padded[border:-border, border:-border] = hm
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            blurred *= hm.max() / blurred.max()
            p = np.log(np.maximum(blurred, 1e-10))
            coord = np.array([px, py], float)
            if 1 < px < hm.shape[1] - 2 and 1 < py < hm.shape[0] - 2:
                gradient = np.array([p[py, px + 1] - p[py, px - 1], p[py + 1, px] - p[py - 1, px]]) / 2
                dxx = (p[py, px + 2] - 2 * p[py, px] + p[py, px - 2]) / 4
                dyy = (p[py + 2, px] - 2 * p[py, px] + p[py - 2, px]) / 4
                dxy = (p[py + 1, px + 1] - p[py - 1, px + 1] - p[py + 1, px - 1] + p[py - 1, px - 1]) / 4
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                if np.linalg.det(hessian) != 0:
                    coord -= np.linalg.solve(hessian, gradient)
            out[n, k] = coord
    return out


def test_dark_matches_an_opencv_reference_on_noisy_maps():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 47, (4, 5, 2))  # some near the border, where no step is taken
    heatmaps, _ = gaussian_heatmaps(truth, np.full((4, 5), 2), HEATMAP_SIZE, 2.0, unbiased=True)
    heatmaps = heatmaps + 0.05 * rng.random(heatmaps.shape).astype(np.float32)
    np.testing.assert_allclose(decode_dark(heatmaps, sigma=2.0)[0], official_style_dark(heatmaps), atol=1e-4)
    assert dark_kernel_size(2.0) == 11 and dark_kernel_size(3.0) == 17


def test_blur_keeps_the_maximum_and_sums_like_opencv():
    rng = np.random.default_rng(4)
    heatmaps = rng.random((2, 3, 16, 12))
    blurred = blur_heatmaps(heatmaps, sigma=2.0)
    np.testing.assert_allclose(blurred.max(axis=(-2, -1)), heatmaps.max(axis=(-2, -1)), rtol=1e-6)
    padded = np.pad(heatmaps[1, 2], 5)
    reference = cv2.GaussianBlur(padded, (11, 11), 0)[5:-5, 5:-5]
    np.testing.assert_allclose(blurred[1, 2], reference * heatmaps[1, 2].max() / reference.max(), rtol=1e-5)


def test_soft_argmax_is_unbiased_away_from_the_border_and_biased_at_it():
    sub_pixel = np.linspace(0, 1, 21, endpoint=False)
    truth = np.stack(np.meshgrid(20 + sub_pixel, 30 + sub_pixel), -1).reshape(-1, 1, 2)
    heatmaps, _ = gaussian_heatmaps(truth, np.full(truth.shape[:2], 2), HEATMAP_SIZE, 2.0, unbiased=True)
    keypoints, _ = soft_argmax(heatmaps, temperature=0.05)
    error = keypoints - truth
    assert np.abs(error.mean(axis=(0, 1))).max() < 0.005  # no systematic shift
    assert np.abs(error).max() < 0.1
    # the truncated peak at the border pulls the estimate inwards
    border, _ = gaussian_heatmaps([[[0.0, 30.0]]], [[2]], HEATMAP_SIZE, 2.0, unbiased=True)
    assert soft_argmax(border, temperature=0.05)[0][0, 0, 0] > 0.05


def test_soft_argmax_is_differentiable():
    heatmaps = torch.zeros(1, 2, 8, 8, requires_grad=True)
    keypoints, _ = soft_argmax(heatmaps, temperature=1.0)
    np.testing.assert_allclose(keypoints.detach().numpy(), 3.5)  # uniform map: the centre
    keypoints[0, 0, 0].backward()
    grad = heatmaps.grad[0, 0]
    # raising a pixel right of the centre moves x right: d x / d H(u) = p(u) (u - x) / T
    np.testing.assert_allclose(grad[0].numpy(), (np.arange(8) - 3.5) / 64, atol=1e-7)
    assert torch.all(heatmaps.grad[0, 1] == 0)


@pytest.mark.parametrize("decoder", [decode_argmax, decode_quarter_offset, decode_dark, soft_argmax])
def test_decoders_numpy_equals_torch(decoder):
    rng = np.random.default_rng(5)
    heatmaps = rng.random((2, 3, 16, 12)).astype(np.float32)
    expected_keypoints, expected_scores = decoder(heatmaps)
    keypoints, scores = decoder(torch.from_numpy(heatmaps))
    assert isinstance(expected_keypoints, np.ndarray) and isinstance(keypoints, torch.Tensor)
    assert keypoints.shape == (2, 3, 2) and scores.shape == (2, 3)
    np.testing.assert_allclose(keypoints.numpy(), expected_keypoints, atol=1e-5)
    np.testing.assert_allclose(scores.numpy(), expected_scores)


def test_quarter_offset_by_hand():
    heatmap = np.zeros((1, 1, 5, 5))
    heatmap[0, 0, 2, 2] = 1.0
    heatmap[0, 0, 2, 3] = 0.5  # right neighbour higher
    heatmap[0, 0, 1, 2] = 0.2  # upper neighbour higher
    np.testing.assert_allclose(decode_quarter_offset(heatmap)[0][0, 0], [2.25, 1.75])
    corner = np.zeros((1, 1, 5, 5))
    corner[0, 0, 0, 4] = 1.0  # no neighbours on either side: no step
    np.testing.assert_allclose(decode_quarter_offset(corner)[0][0, 0], [4.0, 0.0])


def _hrnet_quarter_offset(maps: np.ndarray) -> np.ndarray:
    """HRNet's get_final_preds post-processing (lib/core/inference.py), restated: (K, H, W) -> (K, 2)."""
    coords = []
    for hm in maps:
        py, px = np.unravel_index(np.argmax(hm), hm.shape)
        x, y = float(px), float(py)
        if 1 < px < hm.shape[1] - 1 and 1 < py < hm.shape[0] - 1:
            x += 0.25 * np.sign(hm[py][px + 1] - hm[py][px - 1])
            y += 0.25 * np.sign(hm[py + 1][px] - hm[py - 1][px])
        coords.append([x, y])
    return np.array(coords)


def test_quarter_offset_follows_hrnet_on_the_border_rows_and_columns():
    rng = np.random.default_rng(21)
    maps = rng.uniform(0, 0.1, (400, 7, 6))
    rows, cols = rng.integers(0, 7, 400), rng.integers(0, 6, 400)  # peaks everywhere, the border included
    maps[np.arange(400), rows, cols] = 1.0
    np.testing.assert_array_equal(decode_quarter_offset(maps)[0], _hrnet_quarter_offset(maps))
    peak = np.zeros((1, 6, 6))
    peak[0, 1, 0], peak[0, 2, 0], peak[0, 1, 1] = 1.0, 0.5, 0.5  # the peak at (0, 1): not moved
    np.testing.assert_array_equal(decode_quarter_offset(peak)[0], [[0.0, 1.0]])


def test_quarter_offset_differs_from_mmposes_per_axis_rule_only_near_the_border():
    # MMPose's refine_keypoints steps x whenever 1 < x < W - 1, even in row 1; HRNet (and the course) do not
    maps = np.zeros((1, 8, 8))
    maps[0, 1, 4], maps[0, 1, 5] = 1.0, 0.6
    np.testing.assert_array_equal(decode_quarter_offset(maps)[0], [[4.0, 1.0]])  # MMPose: (4.25, 1.0)
    maps = np.zeros((1, 8, 8))
    maps[0, 4, 4], maps[0, 4, 5], maps[0, 3, 4] = 1.0, 0.6, 0.4
    np.testing.assert_array_equal(decode_quarter_offset(maps)[0], [[4.25, 3.75]])  # inside: both agree


def test_the_dark_docstrings_say_how_opencv_chooses_its_kernel():
    import cv2

    k = dark_kernel_size(2.0)
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8  # what OpenCV derives for k >= 11
    offsets = np.arange(k) - k // 2
    gaussian = np.exp(-(offsets**2) / (2 * sigma**2))
    np.testing.assert_allclose(cv2.getGaussianKernel(k, 0).ravel(), gaussian / gaussian.sum(), atol=1e-12)
    np.testing.assert_array_equal(cv2.getGaussianKernel(5, 0).ravel(), np.array([1, 4, 6, 4, 1]) / 16)  # a table
    for documented in (decode_dark, dark_kernel_size):
        assert "k <= 9" in documented.__doc__ and "binomial" in documented.__doc__


# ----------------------------------------------------------------------------- the decoder table and the codec
def test_one_decoder_table_serves_prediction_and_the_widgets():
    from course_lib import heatmaps, training

    assert training.DECODERS is heatmaps.DECODERS and list(heatmaps.DECODERS) == [
        "argmax", "quarter_offset", "dark", "soft_argmax"]
    maps = np.random.default_rng(3).random((2, 3, 8, 6)).astype(np.float32)
    soft, _ = heatmaps.decode_heatmaps(maps, "soft_argmax")
    np.testing.assert_array_equal(soft, soft_argmax(maps, temperature=heatmaps.SOFT_ARGMAX_TEMPERATURE)[0])
    dark, _ = heatmaps.decode_heatmaps(maps, "dark", sigma=3.0)
    np.testing.assert_array_equal(dark, decode_dark(maps, sigma=3.0)[0])
    with pytest.raises(ValueError, match="decoder must be one of"):
        heatmaps.decode_heatmaps(maps, "median")


def test_codec_encode_then_decode_returns_input_pixels():
    from course_lib.heatmaps import HeatmapCodec

    codec = HeatmapCodec((256, 192), (64, 48), sigma=2.0, target="unbiased", decoder="dark")
    assert codec.stride == (4.0, 4.0)
    keypoints = np.array([[[101.3, 57.9], [20.0, 230.5]]])
    heatmaps, weights = codec.encode(keypoints, np.array([[2, 1]]))
    expected, _ = gaussian_heatmaps(keypoints / 4, [[2, 1]], (64, 48), 2.0, unbiased=True)
    np.testing.assert_array_equal(heatmaps, expected)
    np.testing.assert_array_equal(weights, [[1, 1]])
    decoded, scores = codec.decode(heatmaps)
    np.testing.assert_allclose(decoded, keypoints, atol=0.05)  # DARK on exact unbiased targets
    assert scores.shape == (1, 2)


def test_codec_strides_are_per_axis_and_x_first():
    from course_lib.heatmaps import HeatmapCodec

    codec = HeatmapCodec((64, 96), (32, 24), sigma=1.0, decoder="argmax")
    assert codec.stride == (4.0, 2.0)  # (s_x, s_y) = (96 / 24, 64 / 32)
    heatmaps, _ = codec.encode(np.array([[40.0, 20.0]]), np.array([2]))
    assert np.unravel_index(np.argmax(heatmaps[0]), heatmaps[0].shape) == (10, 10)  # row y / s_y, column x / s_x
    np.testing.assert_array_equal(codec.decode(heatmaps[None])[0], [[[40.0, 20.0]]])


def test_codec_checks_its_arguments_and_its_input():
    from course_lib.heatmaps import HeatmapCodec

    with pytest.raises(ValueError, match="target must be one of"):
        HeatmapCodec((64, 48), (16, 12), target="gaussian")
    with pytest.raises(ValueError, match="decoder must be one of"):
        HeatmapCodec((64, 48), (16, 12), decoder="median")
    with pytest.raises(TypeError, match=r"heatmap_size must be a pair \(H, W\)"):
        HeatmapCodec((64, 48), 16)
    with pytest.raises(ValueError, match=r"heatmaps must be \(16, 12\) \(H, W\)"):
        HeatmapCodec((64, 48), (16, 12)).decode(np.zeros((1, 17, 12, 16)))


def test_grmi_strides_are_given_x_first():
    keypoints = np.array([[[16.0, 24.0]]])
    heatmaps, offsets, _ = grmi_targets(keypoints, [[2]], (8, 12), radius=1.0, stride=(2, 4))  # s_x = 2, s_y = 4
    assert np.argwhere(heatmaps[0, 0]).tolist() == [[6, 8]]  # row v = 24 / 4, column u = 16 / 2
    decoded, _ = decode_grmi(heatmaps, offsets, (2, 4), 1.0, method="argmax")
    np.testing.assert_allclose(decoded[0, 0], [16.0, 24.0])


# ----------------------------------------------------------------------------- flip-back
def test_flip_twice_is_identity_and_swaps_pairs():
    rng = np.random.default_rng(6)
    heatmaps = rng.random((2, 17, 8, 6))
    once = flip_heatmaps(heatmaps, COCO_FLIP_PAIRS, shift=False)
    np.testing.assert_array_equal(once[:, 5], heatmaps[:, 6, :, ::-1])  # left shoulder <- mirrored right
    np.testing.assert_array_equal(once[:, 0], heatmaps[:, 0, :, ::-1])  # nose stays
    np.testing.assert_array_equal(flip_heatmaps(once, COCO_FLIP_PAIRS, shift=False), heatmaps)
    tensor = torch.from_numpy(heatmaps)
    from_torch = flip_heatmaps(tensor, COCO_FLIP_PAIRS)
    assert isinstance(from_torch, torch.Tensor)
    np.testing.assert_array_equal(from_torch.numpy(), flip_heatmaps(heatmaps, COCO_FLIP_PAIRS))


def test_flip_back_of_a_flipped_image_matches_the_original_up_to_the_shift():
    # joints in input pixels; the flip test mirrors the input: x' = w - 1 - x, and swaps pairs
    rng = np.random.default_rng(7)
    width = INPUT_SIZE[1]
    truth = rng.uniform(30, 160, (50, 17, 2))
    flipped = truth[:, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]].copy()
    flipped[..., 0] = width - 1 - flipped[..., 0]
    visible = np.full((50, 17), 2)
    predicted_on_flipped, _ = gaussian_heatmaps(flipped / STRIDE, visible, HEATMAP_SIZE, 2.0, unbiased=True)

    shifted = flip_heatmaps(predicted_on_flipped, COCO_FLIP_PAIRS, shift=True)
    unshifted = flip_heatmaps(predicted_on_flipped, COCO_FLIP_PAIRS, shift=False)
    error_shift = decode_dark(shifted)[0] - truth / STRIDE
    error_plain = decode_dark(unshifted)[0] - truth / STRIDE
    # what the docstring derives: +1/s with the shift, -(1 - 1/s) without; y untouched
    np.testing.assert_allclose(error_shift[..., 0], 1 / STRIDE, atol=0.01)
    np.testing.assert_allclose(error_plain[..., 0], -(1 - 1 / STRIDE), atol=0.01)
    np.testing.assert_allclose(error_shift[..., 1], 0, atol=0.01)
    # as maps: the shifted flip-back is the original's heatmap of x + 1 input pixel (column 0 aside)
    expected, _ = gaussian_heatmaps((truth + [1, 0]) / STRIDE, visible, HEATMAP_SIZE, 2.0, unbiased=True)
    np.testing.assert_allclose(shifted[..., 1:], expected[..., 1:], atol=1e-5)


def test_flip_heatmaps_passes_gradients():
    heatmaps = torch.rand(1, 17, 4, 4, requires_grad=True)
    flip_heatmaps(heatmaps, COCO_FLIP_PAIRS)[0, 5, 0, 3].backward()
    # output (left shoulder, column 3) <- shift from column 2 <- mirror of right shoulder column 1
    assert heatmaps.grad[0, 6, 0, 1] == 1 and heatmaps.grad.sum() == 1


# ----------------------------------------------------------------------------- G-RMI
def test_grmi_targets_by_hand():
    # joint on a grid position: u = 5, v = 6 at stride 8; R = 25 -> positions with
    # 64 (i^2 + j^2) <= 625, i.e. i^2 + j^2 <= 9: the 29 lattice points of a radius-3 disk
    keypoints = np.array([[[40.0, 48.0], [0.0, 0.0]]])
    heatmaps, offsets, weights = grmi_targets(keypoints, [[2, 0]], (16, 12), radius=25, stride=8)
    assert heatmaps.shape == (1, 2, 16, 12) and offsets.shape == (1, 4, 16, 12)
    assert heatmaps[0, 0].sum() == 29 and heatmaps[0, 0, 6, 5] == 1 and heatmaps[0, 0, 6, 8] == 1
    assert heatmaps[0, 0, 6, 9] == 0
    assert offsets[0, 0, 6, 8] == 40 - 64 and offsets[0, 1, 6, 8] == 0  # (x, y) offsets of joint 0
    assert offsets[0, 1, 2, 5] == 48 - 16
    np.testing.assert_array_equal(weights, [[1, 0]])
    assert not heatmaps[0, 1].any() and not offsets[0, 2:].any()  # v = 0: nothing
    _, normalized, _ = grmi_targets(keypoints, [[2, 0]], (16, 12), radius=25, stride=8, normalize_offsets=True)
    np.testing.assert_allclose(normalized, offsets / 25, rtol=1e-6)


@pytest.mark.parametrize("method", ["argmax", "vote"])
def test_grmi_decode_recovers_the_joints(method):
    rng = np.random.default_rng(8)
    keypoints = rng.uniform(10, 180, (3, 17, 2))
    visible = np.full((3, 17), 2)
    heatmaps, offsets, _ = grmi_targets(keypoints, visible, (32, 24), radius=25, stride=8, normalize_offsets=True)
    decoded, scores = decode_grmi(heatmaps, offsets, stride=8, radius=25, method=method, normalized_offsets=True)
    np.testing.assert_allclose(decoded, keypoints, atol=1e-3)
    assert scores.shape == (3, 17) and (scores > 0.5).all()
    logits = np.where(heatmaps > 0, 6.0, -6.0)
    from_logits, _ = decode_grmi(
        torch.from_numpy(logits), torch.from_numpy(offsets), 8, 25, method, logits=True, normalized_offsets=True
    )
    np.testing.assert_allclose(from_logits.numpy(), keypoints, atol=1e-3)


def test_grmi_voting_beats_a_single_noisy_offset():
    rng = np.random.default_rng(9)
    keypoints = rng.uniform(40, 150, (20, 17, 2))
    heatmaps, offsets, _ = grmi_targets(keypoints, np.full((20, 17), 2), (32, 24), radius=25, stride=8)
    noisy = offsets + rng.normal(0, 4.0, offsets.shape).astype(np.float32)
    errors = {}
    for method in ("argmax", "vote"):
        decoded, _ = decode_grmi(heatmaps, noisy, 8, 25, method=method)
        errors[method] = np.linalg.norm(decoded - keypoints, axis=-1).mean()
    assert errors["vote"] < 0.5 * errors["argmax"]
    # the vote score is a confidence: disagreeing offsets lower it
    clean_scores = decode_grmi(heatmaps, offsets, 8, 25)[1]
    noisy_scores = decode_grmi(heatmaps, noisy, 8, 25)[1]
    assert noisy_scores.mean() < clean_scores.mean() - 0.1


# ----------------------------------------------------------------------------- bad input
def test_bad_input_errors_name_the_argument():
    keypoints, visibility = np.zeros((1, 17, 2)), np.ones((1, 17))
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got 0"):
        gaussian_heatmaps(keypoints, visibility, HEATMAP_SIZE, 0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps_loop(keypoints, visibility, HEATMAP_SIZE, -1.0)
    with pytest.raises(ValueError, match=r"heatmap_size must be a pair \(H, W\) of positive integers, got \(64, 0\)"):
        gaussian_heatmaps(keypoints, visibility, (64, 0), 2.0)
    with pytest.raises(TypeError, match="heatmap_size"):  # a size is a whole number of pixels
        gaussian_heatmaps(keypoints, visibility, (64, 48.5), 2.0)
    with pytest.raises(TypeError, match="heatmap_size"):
        gaussian_heatmaps(keypoints, visibility, 64, 2.0)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(\.\.\., \?, 2\), got \(1, 17, 3\)"):
        gaussian_heatmaps(np.zeros((1, 17, 3)), visibility, HEATMAP_SIZE, 2.0)
    with pytest.raises(ValueError, match=r"visibility must have shape \(1, 17\), got \(1, 16\)"):
        gaussian_heatmaps(keypoints, np.ones((1, 16)), HEATMAP_SIZE, 2.0)
    nan = keypoints.copy()
    nan[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="keypoints contains NaN"):
        gaussian_heatmaps(nan, visibility, HEATMAP_SIZE, 2.0)
    with pytest.raises(ValueError, match="keypoints contains NaN"):
        gaussian_heatmaps(torch.from_numpy(nan), visibility, HEATMAP_SIZE, 2.0)


def test_bad_decoder_input_errors():
    with pytest.raises(ValueError, match="heatmaps must have shape"):
        decode_argmax(np.zeros(5))
    with pytest.raises(ValueError, match="heatmaps must not be empty"):
        decode_dark(np.zeros((1, 17, 0, 48)))
    with pytest.raises(ValueError, match="heatmaps contains NaN"):
        decode_quarter_offset(np.full((1, 1, 4, 4), np.nan))
    with pytest.raises(TypeError, match="heatmaps must be an array, got None"):
        soft_argmax(None)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        soft_argmax(np.zeros((1, 1, 4, 4)), temperature=0)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer, got 4"):
        decode_dark(np.zeros((1, 1, 8, 8)), kernel_size=4)
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(\.\.\., K, \?, \?\)"):
        flip_heatmaps(np.zeros((4, 4)), COCO_FLIP_PAIRS)
    with pytest.raises(ValueError, match="method must be one of"):
        decode_grmi(np.zeros((1, 2, 4, 4)), np.zeros((1, 4, 4, 4)), 8, 25, method="mean")
    with pytest.raises(ValueError, match=r"offsets must have shape \(1, 4, 4, 4\)"):
        decode_grmi(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4)), 8, 25)
    with pytest.raises(ValueError, match="window must be a finite number > 0"):
        decode_grmi(np.zeros((1, 2, 4, 4)), np.zeros((1, 4, 4, 4)), 8, 25, window=-1)
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        grmi_targets(np.zeros((1, 2, 2)), np.ones((1, 2)), (4, 4), radius=0, stride=8)
    with pytest.raises(ValueError, match="stride"):
        grmi_targets(np.zeros((1, 2, 2)), np.ones((1, 2)), (4, 4), radius=5, stride=(1, 2, 3))


# ----------------------------------------------------------------------------- the benchmark runs
def test_benchmark_quick_run_reports_ratios():
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_heatmaps.py"
    spec = importlib.util.spec_from_file_location("bench_heatmaps", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.run(quick=True)
    assert result["loop_over_numpy"] > 0 and result["loop_over_torch_cpu"] > 0
    assert result["shape"] == [4, 17, 64, 48]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_stay_on_the_device():
    keypoints = torch.rand(2, 17, 2, device="cuda") * 40
    visibility = torch.full((2, 17), 2, device="cuda")
    heatmaps, weights = gaussian_heatmaps(keypoints, visibility, HEATMAP_SIZE, 2.0, unbiased=True)
    assert heatmaps.is_cuda and weights.is_cuda
    expected, _ = gaussian_heatmaps(keypoints.cpu().numpy(), visibility.cpu().numpy(), HEATMAP_SIZE, 2.0, unbiased=True)
    np.testing.assert_allclose(heatmaps.cpu().numpy(), expected, atol=1e-5)
    for decoder in (decode_argmax, decode_quarter_offset, decode_dark, soft_argmax):
        decoded, scores = decoder(heatmaps)
        assert decoded.is_cuda and scores.is_cuda
    assert flip_heatmaps(heatmaps, COCO_FLIP_PAIRS).is_cuda
    disks, offsets, _ = grmi_targets(keypoints * 4, visibility, (32, 24), 25, 8)
    assert decode_grmi(disks, offsets, 8, 25)[0].is_cuda


def test_taylor_step_recovers_a_gaussian_centre_and_stays_at_the_border():
    ys, xs = np.mgrid[0:16, 0:24]
    log_maps = np.stack([-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0 for cx, cy in [(10.3, 7.6), (1.2, 7.6)]])
    from course_lib import heatmaps

    found = heatmaps.taylor_step(torch.as_tensor(log_maps))  # (2, 2)
    assert torch.allclose(found[0], torch.tensor([10.3, 7.6], dtype=torch.float64), atol=1e-9)
    assert found[1].tolist() == [1.0, 8.0]  # two pixels from the border: the argmax, no step
    with pytest.raises(ValueError, match="log_maps"):
        heatmaps.taylor_step(np.zeros((0, 5)))
