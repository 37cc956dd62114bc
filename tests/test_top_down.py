"""Tests of course_lib.top_down: the top-down data set (crops, augmentation, targets through its codec)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from course_lib.data import tensor_to_image
from course_lib.geometry import box_to_center_scale, crop_to_image, flip_keypoints, warp_image
from course_lib.heatmaps import HeatmapCodec, decode_argmax
from course_lib.top_down import HRNET_AUGMENTATION, SIMPLEBASELINE_AUGMENTATION, TopDownDataset


def make_samples(count=6, num_joints=17, seed=0, head_box=True):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        keypoints = rng.uniform(40, 110, (num_joints, 2))
        sample = {
            "image": rng.integers(0, 255, (140, 160, 3), dtype=np.uint8),
            "keypoints": keypoints,
            "visibility": rng.integers(0, 3, num_joints),
            "box": np.array([35.0, 30.0, 80.0, 90.0]),
            "area": 7200.0,
            "image_id": 100 + i,
            "annotation_id": np.int64(1000 + i),
        }
        if head_box:
            sample["head_box"] = np.array([60.0, 30.0, 20.0, 20.0])
        samples.append(sample)
    return samples


def to_image(item, input_size=(64, 48)):
    """Crop keypoints of an item back to the original image, through its returned parameters."""
    points = item["keypoints"]
    if item["flipped"]:
        points, _ = flip_keypoints(points, item["visibility"], input_size[1])
    return crop_to_image(points, item["center"], item["scale"], item["rotation"], input_size)


def test_dataset_item_types_and_shapes_collate():
    dataset = TopDownDataset(make_samples(), input_size=(64, 48), heatmap_size=(16, 12))
    batch = default_collate([dataset[0], dataset[1]])
    expected = {
        "image": ((2, 3, 64, 48), torch.float32),
        "heatmaps": ((2, 17, 16, 12), torch.float32),
        "target_weight": ((2, 17), torch.float32),
        "keypoints": ((2, 17, 2), torch.float32),
        "visibility": ((2, 17), torch.int64),
        "keypoints_image": ((2, 17, 2), torch.float32),
        "visibility_image": ((2, 17), torch.int64),
        "center": ((2, 2), torch.float32),
        "scale": ((2, 2), torch.float32),
        "rotation": ((2,), torch.float32),
        "flipped": ((2,), torch.bool),
        "box": ((2, 4), torch.float32),
        "area": ((2,), torch.float32),
        "image_id": ((2,), torch.int64),
        "annotation_id": ((2,), torch.int64),
        "head_box": ((2, 4), torch.float32),
    }
    assert set(batch) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape and batch[key].dtype == dtype, key
    assert batch["image_id"].tolist() == [100, 101]
    without_head = TopDownDataset(make_samples(head_box=False), input_size=(64, 48), heatmap_size=(16, 12))
    assert "head_box" not in without_head[0]


def test_dataset_without_augmentation_is_the_plain_padded_box():
    samples = make_samples()
    dataset = TopDownDataset(samples, input_size=(64, 48), heatmap_size=(16, 12))
    item = dataset[2]
    center, scale = box_to_center_scale(samples[2]["box"], 48 / 64, 1.25)
    np.testing.assert_allclose(item["center"], center)
    np.testing.assert_allclose(item["scale"], scale)
    assert item["rotation"] == 0 and not item["flipped"]
    np.testing.assert_allclose(to_image(item), item["keypoints_image"], atol=1e-4)
    np.testing.assert_allclose(item["keypoints_image"], samples[2]["keypoints"], atol=1e-5)
    # the image is the warped crop, normalised the course's way
    crop = warp_image(samples[2]["image"], center, scale, 0.0, (64, 48))
    assert np.abs(tensor_to_image(item["image"]).astype(int) - crop).max() <= 1


def test_dataset_targets_sit_on_the_crop_keypoints():
    dataset = TopDownDataset(make_samples(), input_size=(64, 48), heatmap_size=(16, 12), augment=True, seed=1)
    for index in range(len(dataset)):
        item = dataset[index]
        weight = item["target_weight"]
        labelled = item["visibility"] > 0
        np.testing.assert_array_equal(weight.numpy(), labelled.numpy().astype(np.float32))
        assert not item["heatmaps"][~labelled].any()
        decoded, _ = decode_argmax(item["heatmaps"][labelled])
        assert (decoded * 4 - item["keypoints"][labelled]).abs().max() <= 2.0  # half a heatmap pixel = 2 px


def test_dataset_with_augmentation_maps_back_through_the_returned_parameters():
    dataset = TopDownDataset(make_samples(count=12), input_size=(64, 48), heatmap_size=(16, 12), augment=True, seed=2)
    seen_flip = seen_rotation = False
    for index in range(len(dataset)):
        item = dataset[index]
        seen_flip |= bool(item["flipped"])
        seen_rotation |= bool(item["rotation"] != 0)
        np.testing.assert_allclose(to_image(item), item["keypoints_image"], atol=1e-3)
        # a flip swaps left and right; a joint cut off by the crop becomes 0
        source = 6 if item["flipped"] else 5
        assert int(item["visibility"][5]) in (0, int(item["visibility_image"][source]))
    assert seen_flip and seen_rotation


def test_joints_pushed_out_of_the_crop_get_visibility_and_weight_zero():
    sample = make_samples(count=1)[0]
    sample["keypoints"][3] = [155.0, 135.0]  # far outside the padded box
    sample["visibility"][3] = 2
    item = TopDownDataset([sample], input_size=(64, 48), heatmap_size=(16, 12))[0]
    assert item["keypoints"][3, 0] > 48 and item["visibility"][3] == 0 and item["target_weight"][3] == 0
    assert item["visibility_image"][3] == 2


def test_augmentation_is_deterministic_per_seed_epoch_and_index():
    samples = make_samples()
    first = TopDownDataset(samples, input_size=(64, 48), heatmap_size=(16, 12), augment=True, seed=5)
    second = TopDownDataset(samples, input_size=(64, 48), heatmap_size=(16, 12), augment=True, seed=5)
    for index in (0, 3):
        a, b = first[index], second[index]
        for key in ("image", "heatmaps", "keypoints", "center", "scale", "rotation"):
            assert torch.equal(a[key], b[key]), key
    parameters = [first.crop_parameters(i, samples[i]["box"]) for i in range(len(samples))]
    first.set_epoch(1)
    changed = [first.crop_parameters(i, samples[i]["box"]) for i in range(len(samples))]
    assert any(not np.allclose(p[1], q[1]) for p, q in zip(parameters, changed))
    # the same items whatever the worker count
    single = next(iter(DataLoader(second, batch_size=6, num_workers=0)))
    double = next(iter(DataLoader(second, batch_size=6, num_workers=2, multiprocessing_context="fork")))
    assert torch.equal(single["image"], double["image"]) and torch.equal(single["keypoints"], double["keypoints"])


def test_dataset_bad_input():
    samples = make_samples(count=1)
    with pytest.raises(ValueError, match="input_size"):
        TopDownDataset(samples, input_size=(64, -48))
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        TopDownDataset(samples, sigma=0)
    with pytest.raises(ValueError, match="scale_factor must be in"):
        TopDownDataset(samples, scale_factor=1.5)
    with pytest.raises(ValueError, match="flip_prob must be in"):
        TopDownDataset(samples, flip_prob=2)
    with pytest.raises(TypeError, match="samples must be a sequence"):
        TopDownDataset(42)
    bad = dict(samples[0], image=samples[0]["image"].astype(np.float32))
    with pytest.raises(TypeError, match=r"samples\[0\]\['image'\] must be uint8"):
        TopDownDataset([bad])[0]
    with pytest.raises(ValueError, match=r"samples\[0\]\['box'\] must have width and height > 0"):
        TopDownDataset([dict(samples[0], box=[1, 2, 0, 5])])[0]
    with pytest.raises(KeyError, match="box"):
        TopDownDataset([{k: v for k, v in samples[0].items() if k != "box"}])[0]
    with pytest.raises(ValueError, match=r"samples\[0\]\['visibility'\] must have shape \(17,\)"):
        TopDownDataset([dict(samples[0], visibility=np.ones(16))])[0]




def test_the_data_sets_targets_come_from_its_codec():
    dataset = TopDownDataset(make_samples(), input_size=(64, 48), heatmap_size=(16, 12), sigma=1.5, unbiased=True)
    assert dataset.codec == HeatmapCodec((64, 48), (16, 12), 1.5, "unbiased")
    assert (dataset.input_size, dataset.heatmap_size, dataset.sigma, dataset.unbiased) == ((64, 48), (16, 12), 1.5, True)
    item = dataset[1]
    heatmaps, weights = dataset.codec.encode(item["keypoints"].numpy(), item["visibility"].numpy())
    np.testing.assert_array_equal(item["heatmaps"].numpy(), heatmaps)
    np.testing.assert_array_equal(item["target_weight"].numpy(), weights)


def test_prediction_decodes_with_the_data_sets_codec():
    from course_lib.prediction import predict

    dataset = TopDownDataset(make_samples(count=3), input_size=(64, 48), heatmap_size=(16, 12), sigma=3.0)

    class Targets(torch.nn.Module):  # outputs each crop's own target heatmaps
        def forward(self, images):
            return torch.stack([dataset[i]["heatmaps"] for i in range(len(images))])

    predictions = predict(Targets(), dataset, decoder=decode_argmax, device="cpu", keep_heatmaps=True)
    assert predictions.heatmaps.shape == (3, 17, 16, 12)
    item = dataset[0]
    points = dataset.codec.decode(item["heatmaps"][None])[0].numpy()  # DARK with sigma 3, the data's
    dark = predict(Targets(), dataset, device="cpu").keypoints[0]
    np.testing.assert_allclose(dark, crop_to_image(points[0], item["center"].numpy(), item["scale"].numpy(), 0.0,
                                                   (64, 48)), atol=1e-4)


@pytest.mark.parametrize("recipe, factors", [(SIMPLEBASELINE_AUGMENTATION, (0.30, 40.0)), (HRNET_AUGMENTATION, (0.35, 45.0))])
def test_augmentation_draws_as_the_official_codes(recipe, factors):
    """scale *= clip(N(1, sf), 1 - sf, 1 + sf); with probability 0.6 rotation = clip(N(0, rf), -2 rf, 2 rf), else 0."""
    assert (recipe["scale_factor"], recipe["rotation_factor"]) == factors
    sf, rf = factors
    dataset = TopDownDataset(make_samples(1), input_size=(64, 48), heatmap_size=(16, 12), augment=True, **recipe)
    box = dataset.samples[0]["box"]
    _, base_scale = box_to_center_scale(box, 48 / 64, dataset.padding)
    factors_drawn, angles = [], []
    for epoch in range(3000):
        dataset.set_epoch(epoch)
        center, scale, rotation, _ = dataset.crop_parameters(0, box)
        factors_drawn.append(scale / base_scale)
        angles.append(rotation)
    factors_drawn, angles = np.array(factors_drawn), np.array(angles)
    np.testing.assert_allclose(factors_drawn[:, 0], factors_drawn[:, 1])  # one factor for both sides
    zoom = factors_drawn[:, 0]
    assert zoom.min() == pytest.approx(1 - sf) and zoom.max() == pytest.approx(1 + sf)  # clipped at 1 sigma
    clipped = np.isclose(zoom, 1 - sf) | np.isclose(zoom, 1 + sf)
    assert 0.27 < clipped.mean() < 0.37  # P(|z| > 1) = 0.317
    rotated = angles != 0
    assert 0.56 < rotated.mean() < 0.64  # rotated with probability 0.6
    assert np.abs(angles).max() == pytest.approx(2 * rf)  # clipped at 2 sigma, so up to 2 rf degrees
    assert 0.85 * rf < angles[rotated].std() < 1.02 * rf  # a standard deviation of rf, not a range


def test_the_default_augmentation_is_hrnets():
    dataset = TopDownDataset(make_samples(1))
    assert (dataset.scale_factor, dataset.rotation_factor) == (HRNET_AUGMENTATION["scale_factor"],
                                                               HRNET_AUGMENTATION["rotation_factor"])
