"""Tests of course_lib.geometry: DeepPose boxes, top-down crops, affine warps, flips."""

import cv2
import numpy as np
import pytest
import torch

from course_lib.geometry import (
    box_to_center_scale,
    cascade_crop_box,
    cascade_patches,
    crop_box,
    crop_to_image,
    denormalize_from_box,
    flip_image,
    flip_keypoints,
    get_affine_transform,
    image_to_crop,
    normalize_to_box,
    torso_diameter,
    transform_points,
    warp_image,
)
from course_lib.keypoints import COCO_FLIP_PAIRS

# ----------------------------------------------------------------------------- DeepPose box normalisation
# Chapter 01's worked example: box centre (120, 150), w = 200, h = 300.
EXAMPLE_BOX_CENTRE_FORM = np.array([120.0, 150.0, 200.0, 300.0])
EXAMPLE_BOX_COCO = np.array([20.0, 0.0, 200.0, 300.0])  # the same box, top-left corner
EXAMPLE_JOINTS = np.array([[120, 370], [120, 330], [100, 330], [80, 350], [50, 70]], float)
EXAMPLE_TABLE = np.array([[0, 0.73], [0, 0.60], [-0.1, 0.60], [-0.2, 0.67], [-0.35, -0.27]])


def test_normalize_reproduces_the_worked_example_table():
    for box, box_format in [(EXAMPLE_BOX_CENTRE_FORM, "cxcywh"), (EXAMPLE_BOX_COCO, "xywh")]:
        normalized = normalize_to_box(EXAMPLE_JOINTS, box, box_format=box_format)
        np.testing.assert_array_equal(np.round(normalized, 2), EXAMPLE_TABLE)
        # exact values: head y = (370 - 150) / 300 = 11/15
        assert normalized[0, 1] == pytest.approx(11 / 15)
        np.testing.assert_allclose(denormalize_from_box(normalized, box, box_format=box_format), EXAMPLE_JOINTS)


def test_the_slipped_inverse_step_used_the_wrong_centre():
    predictions = np.array([[-0.3, -0.7], [0.2, 0.2]])  # right hip, left shoulder
    slipped = np.array([120.0, 300.0, 200.0, 300.0])  # the slipped step's centre y = 300
    np.testing.assert_allclose(denormalize_from_box(predictions, slipped, "cxcywh"), [[60, 90], [160, 360]])
    np.testing.assert_allclose(
        denormalize_from_box(predictions, EXAMPLE_BOX_CENTRE_FORM, "cxcywh"), [[60, -60], [160, 210]]
    )
    # the distance 287.92 is right either way: a translation does not change distances
    for box in (slipped, EXAMPLE_BOX_CENTRE_FORM):
        pose = np.zeros((17, 2))
        pose[[12, 5]] = denormalize_from_box(predictions, box, "cxcywh")  # right hip, left shoulder
        assert torso_diameter(pose) == pytest.approx(287.92, abs=0.005)


def test_normalize_broadcasts_per_instance_and_per_point_and_takes_torch():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 100, (3, 17, 2))
    boxes = np.array([[0, 0, 10, 20], [5, 5, 50, 40], [1, 2, 3, 4]], float)
    per_instance = normalize_to_box(keypoints, boxes)
    for n in range(3):
        np.testing.assert_allclose(per_instance[n], normalize_to_box(keypoints[n], boxes[n]))
    per_point_boxes = rng.uniform(1, 50, (3, 17, 4))
    per_point = normalize_to_box(keypoints, per_point_boxes, "cxcywh")
    centre, size = per_point_boxes[1, 4, :2], per_point_boxes[1, 4, 2:]
    np.testing.assert_allclose(per_point[1, 4], (keypoints[1, 4] - centre) / size)
    tensor = normalize_to_box(torch.from_numpy(keypoints).float(), boxes)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), per_instance, rtol=1e-5)
    np.testing.assert_allclose(denormalize_from_box(tensor, boxes).numpy(), keypoints, rtol=1e-5)


def test_cascade_box_and_patches():
    # the worked example: diam = 287.92 between the predicted left shoulder and right hip
    box = cascade_crop_box(np.array([160.0, 360.0]), 287.92, delta=0.5)
    np.testing.assert_allclose(box, [160 - 71.98, 360 - 71.98, 143.96, 143.96])
    centre_form = cascade_crop_box([160.0, 360.0], 287.92, 0.5, box_format="cxcywh")
    np.testing.assert_allclose(centre_form, [160, 360, 143.96, 143.96])
    # on a linear ramp, bilinear sampling is exact: each patch's centre pixel is the ramp at its joint
    rows, columns = np.mgrid[0:200, 0:300]
    ramp = np.stack([columns, rows, columns + rows], -1).astype(np.float32)
    keypoints = np.random.default_rng(1).uniform(60, 140, (17, 2))
    patches, boxes = cascade_patches(ramp, keypoints, delta=0.3, output_hw=(16, 16))
    assert patches.shape == (17, 16, 16, 3) and boxes.shape == (17, 4)
    np.testing.assert_allclose(patches[:, 8, 8, :2], keypoints, atol=1e-3)  # (W/2, H/2) = (8, 8)
    np.testing.assert_allclose(boxes[:, 2], 0.3 * torso_diameter(keypoints))
    # the stage's target N(y; b) of a point is its place in the patch: x = (N + 1/2) W
    inside = keypoints + [3.0, -2.0]
    normalized = normalize_to_box(inside, boxes)  # one box per point
    np.testing.assert_allclose(
        image_to_crop(inside[4], boxes[4, :2] + boxes[4, 2:] / 2, boxes[4, 2:], 0, (16, 16)), (normalized[4] + 0.5) * 16
    )


def test_crop_box_maps_box_corners_to_crop_corners():
    image = np.zeros((100, 100), np.float32)
    image[30, 40] = 1.0
    crop = crop_box(image, [20, 10, 40, 40], (40, 40))  # 1:1, offset (20, 10)
    assert crop[20, 20] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- top-down crops
def test_box_to_center_scale_by_hand():
    center, scale = box_to_center_scale([10, 20, 30, 80], aspect_ratio=0.75)  # too narrow: widen to 60
    np.testing.assert_allclose(center, [25, 60])
    np.testing.assert_allclose(scale, [75, 100])
    _, scale = box_to_center_scale([0, 0, 120, 60], aspect_ratio=0.75, padding=1.0)  # too flat: heighten
    np.testing.assert_allclose(scale, [120, 160])
    centers, scales = box_to_center_scale(np.array([[10, 20, 30, 80], [0, 0, 120, 60]]), 0.75)
    assert centers.shape == (2, 2) and scales.shape == (2, 2)
    np.testing.assert_allclose(scales[:, 0] / scales[:, 1], 0.75)


def official_three_point_transform(center, scale, rotation, output_size, inverse=False):
    """The official construction (scale in pixels here): map three point pairs with OpenCV."""
    height, width = output_size
    theta = np.deg2rad(rotation)
    up = np.array([0.0, -scale[0] / 2])
    src_dir = np.array([up[0] * np.cos(theta) - up[1] * np.sin(theta), up[0] * np.sin(theta) + up[1] * np.cos(theta)])
    src = np.array([center, center + src_dir], np.float32)
    dst = np.array([[width / 2, height / 2], [width / 2, height / 2 - width / 2]], np.float32)

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]], np.float32)

    src = np.vstack([src, third(*src)])
    dst = np.vstack([dst, third(*dst)])
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("rotation", [0.0, 30.0, -75.0])
def test_affine_matches_the_official_construction(rotation):
    center, scale = np.array([100.0, 150.0]), np.array([150.0, 200.0])  # aspect 0.75 = 192 / 256
    for inverse in (False, True):
        ours = get_affine_transform(center, scale, rotation, (256, 192), inverse=inverse)
        official = official_three_point_transform(center, scale, rotation, (256, 192), inverse=inverse)
        assert ours.shape == (2, 3)
        np.testing.assert_allclose(ours, official, atol=1e-3, rtol=1e-4)


def test_affine_then_inverse_returns_the_points():
    rng = np.random.default_rng(2)
    for _ in range(20):
        center, scale = rng.uniform(0, 500, 2), rng.uniform(10, 400, 2)
        rotation = rng.uniform(-90, 90)
        points = rng.uniform(-100, 600, (17, 2))
        crop = image_to_crop(points, center, scale, rotation, (256, 192))
        assert np.abs(crop_to_image(crop, center, scale, rotation, (256, 192)) - points).max() < 1e-4
    # the centre goes to (W/2, H/2); a rotation of 90 degrees turns "up" in the image into "left"
    assert np.allclose(image_to_crop([[50.0, 60.0]], [50, 60], [40, 40], 0, (8, 8)), [[4, 4]])
    np.testing.assert_allclose(image_to_crop([[50.0, 50.0]], [50, 60], [40, 40], 90, (40, 40)), [[10, 20]], atol=1e-12)


def test_batched_transforms_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    centers, scales, rotations = rng.uniform(50, 100, (4, 2)), rng.uniform(20, 80, (4, 2)), rng.uniform(-45, 45, 4)
    points = rng.uniform(0, 64, (4, 17, 2))
    batched = crop_to_image(points, centers, scales, rotations, (64, 48))
    for n in range(4):
        np.testing.assert_allclose(batched[n], crop_to_image(points[n], centers[n], scales[n], rotations[n], (64, 48)))
    as_tensor = crop_to_image(
        torch.from_numpy(points), torch.from_numpy(centers), scales, torch.from_numpy(rotations), (64, 48)
    )
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), batched)


def test_heatmap_coordinates_map_back_like_input_coordinates_times_stride():
    rng = np.random.default_rng(4)
    heatmap_points = rng.uniform(0, 48, (17, 2))
    center, scale, rotation = [300.0, 200.0], [150.0, 200.0], 20.0
    np.testing.assert_allclose(
        crop_to_image(heatmap_points, center, scale, rotation, (64, 48)),
        crop_to_image(heatmap_points * 4, center, scale, rotation, (256, 192)),
    )


def blob_image(height, width, x, y, sigma=3.0):
    rows, columns = np.mgrid[0:height, 0:width]
    return np.exp(-((columns - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def centroid(image):
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return np.array([(image * columns).sum(), (image * rows).sum()]) / image.sum()


@pytest.mark.parametrize("rotation", [0.0, 35.0])
def test_warp_moves_an_image_feature_where_transform_points_moves_the_point(rotation):
    point = np.array([130.3, 95.8])
    image = blob_image(200, 260, *point, sigma=6.0)
    center, scale = np.array([120.0, 100.0]), np.array([150.0, 200.0])
    crop = warp_image(image, center, scale, rotation, (256, 192))
    expected = image_to_crop(point, center, scale, rotation, (256, 192))
    np.testing.assert_allclose(centroid(crop), expected, atol=0.05)
    rgb = (np.stack([image] * 3, -1) * 255).astype(np.uint8)
    warped = warp_image(rgb, center, scale, rotation, (256, 192))
    assert warped.dtype == np.uint8 and warped.shape == (256, 192, 3)


# ----------------------------------------------------------------------------- flips
def test_flip_twice_is_identity_for_images_and_keypoints():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(flip_image(flip_image(image)), image)
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    assert torch.equal(flip_image(flip_image(tensor)), tensor)
    assert torch.equal(flip_image(tensor).permute(1, 2, 0), torch.from_numpy(flip_image(image)))
    keypoints, visibility = rng.uniform(0, 29, (2, 17, 2)), rng.integers(0, 3, (2, 17))
    once = flip_keypoints(keypoints, visibility, 30)
    twice = flip_keypoints(*once, 30)
    np.testing.assert_allclose(twice[0], keypoints)
    np.testing.assert_array_equal(twice[1], visibility)
    as_tensor = flip_keypoints(torch.from_numpy(keypoints), torch.from_numpy(visibility), 30)
    np.testing.assert_allclose(as_tensor[0].numpy(), once[0])
    np.testing.assert_array_equal(as_tensor[1].numpy(), once[1])


def test_flipped_keypoints_follow_the_flipped_pixels_and_swap_sides():
    image = np.zeros((10, 16), np.uint8)
    keypoints = np.zeros((17, 2))
    keypoints[5] = [3, 4]  # left shoulder at column 3, row 4
    image[4, 3] = 255
    visibility = np.zeros(17, int)
    visibility[5] = 2
    flipped_keypoints, flipped_visibility = flip_keypoints(keypoints, visibility, 16, COCO_FLIP_PAIRS)
    x, y = flipped_keypoints[6].astype(int)  # now the right shoulder
    assert (x, y) == (12, 4) and flip_image(image)[y, x] == 255
    assert flipped_visibility[6] == 2 and flipped_visibility[5] == 0


# ----------------------------------------------------------------------------- bad input
def test_bad_input_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"box must have width and height > 0, got \[10.0, 10.0, 0.0, 5.0\]"):
        normalize_to_box(np.zeros((17, 2)), [10, 10, 0, 5])
    with pytest.raises(ValueError, match="box_format must be one of"):
        normalize_to_box(np.zeros((17, 2)), [10, 10, 5, 5], box_format="xyxy")
    with pytest.raises(ValueError, match=r"keypoints must have shape \(\.\.\., 2\), got \(17, 3\)"):
        normalize_to_box(np.zeros((17, 3)), [10, 10, 5, 5])
    with pytest.raises(ValueError, match="keypoints contains NaN"):
        normalize_to_box(np.full((17, 2), np.nan), [10, 10, 5, 5])
    with pytest.raises(ValueError, match="does not fit"):
        normalize_to_box(np.zeros((3, 17, 2)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="box must have width and height > 0"):
        box_to_center_scale([0, 0, 10, -1], 0.75)
    with pytest.raises(ValueError, match="aspect_ratio must be a finite number > 0"):
        box_to_center_scale([0, 0, 10, 10], 0)
    with pytest.raises(ValueError, match=r"output_hw must be a pair \(H, W\)"):
        get_affine_transform([0, 0], [10, 10], 0, (0, 48))
    with pytest.raises(ValueError, match="scale_wh must be > 0"):
        get_affine_transform([0, 0], [10, 0], 0, (64, 48))
    with pytest.raises(ValueError, match="center contains NaN"):
        get_affine_transform([np.nan, 0], [10, 10], 0, (64, 48))
    with pytest.raises(ValueError, match="must broadcast together"):
        get_affine_transform(np.zeros((3, 2)), np.ones((4, 2)), 0, (64, 48))
    with pytest.raises(ValueError, match=r"matrix must have shape \(\.\.\., 2, 3\)"):
        transform_points(np.zeros((17, 2)), np.eye(3))
    with pytest.raises(ValueError, match="image must have shape"):
        warp_image(np.zeros((4, 4, 3, 2)), [2, 2], [4, 4], 0, (4, 4))
    with pytest.raises(ValueError, match=r"visibility must have shape \(17,\)"):
        flip_keypoints(np.zeros((17, 2)), np.zeros(16), 30)
    with pytest.raises(ValueError, match="image_width must be a finite number > 0"):
        flip_keypoints(np.zeros((17, 2)), np.zeros(17), 0)
    with pytest.raises(ValueError, match="delta must be a finite number > 0"):
        cascade_crop_box([0.0, 0.0], 10.0, 0)
    with pytest.raises(ValueError, match="diameter must be > 0"):
        cascade_crop_box([0.0, 0.0], 0.0, 1.0)
    with pytest.raises(ValueError, match="pair must index two of the 10 keypoints"):
        torso_diameter(np.zeros((10, 2)))


def test_one_crop_box_in_the_library_and_the_input_box_beside_it():
    from course_lib import geometry, losses

    assert geometry.input_box((96, 64)) == [0.0, 0.0, 64.0, 96.0]  # (H, W) in, a COCO box [x, y, w, h] out
    np.testing.assert_allclose(normalize_to_box([[32.0, 48.0]], geometry.input_box((96, 64))), [[0.0, 0.0]])
    assert not hasattr(losses, "crop_box")  # geometry.crop_box cuts an image; nothing else has that name
    with pytest.raises(TypeError, match=r"input_hw must be a pair \(H, W\)"):
        geometry.input_box(96)
