"""The DeepPose cascade: displacement statistics, simulated predictions, training patches, refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import cascade, geometry, models, training
from course_lib.data import tensor_to_image

SHOULDER, HIP = 5, 12


def _poses(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 17-joint poses in a 128-pixel image with a torso of 20-40 px, all labelled."""
    keypoints = rng.uniform(20, 108, size=(count, 17, 2))
    keypoints[:, HIP] = keypoints[:, SHOULDER] + rng.uniform(12, 25, size=(count, 2)) * rng.choice([-1, 1], (count, 2))
    return keypoints, np.full((count, 17), 2)


def _ramp_image(size: int = 128) -> np.ndarray:
    """An RGB image whose red channel is the column and green channel the row: pixels tell where they are."""
    rows, cols = np.mgrid[0:size, 0:size]
    return np.stack([cols, rows, np.full_like(rows, 128)], axis=-1).astype(np.uint8)


def _samples(rng: np.random.Generator, count: int) -> list[dict]:
    keypoints, visibility = _poses(rng, count)
    return [{"image": _ramp_image(), "keypoints": k, "visibility": v.copy()} for k, v in zip(keypoints, visibility)]


# --------------------------------------------------------------------------- diameters and statistics
def test_body_diameters_are_the_torso_diagonal_with_a_floor():
    pose = np.zeros((2, 17, 2))
    pose[0, SHOULDER], pose[0, HIP] = (10.0, 10.0), (40.0, 50.0)  # 30-40-50
    pose[1, SHOULDER] = pose[1, HIP] = (7.0, 7.0)  # collapsed
    np.testing.assert_allclose(cascade.body_diameters(pose), [50.0, cascade.MIN_DIAMETER])
    np.testing.assert_allclose(cascade.body_diameters(pose[0], min_diameter=1.0), 50.0)
    with pytest.raises(ValueError, match="min_diameter"):
        cascade.body_diameters(pose, min_diameter=0)


def test_displacement_statistics_recover_a_known_distribution():
    rng = np.random.default_rng(0)
    gt, visibility = _poses(rng, 4000)
    mu = rng.uniform(-0.1, 0.1, size=(17, 2))
    sigma = rng.uniform(0.05, 0.3, size=(17, 2))
    diameters = np.linalg.norm(gt[:, SHOULDER] - gt[:, HIP], axis=-1)
    pred = gt + diameters[:, None, None] * (mu + sigma * rng.standard_normal(gt.shape))
    mean, std = cascade.displacement_statistics(pred, gt, visibility)
    assert mean.shape == std.shape == (17, 2)
    np.testing.assert_allclose(mean, mu, atol=4 * 0.3 / np.sqrt(4000))
    np.testing.assert_allclose(std, sigma, rtol=0.06)


def test_displacement_statistics_skip_unlabelled_joints_and_people_without_a_torso():
    rng = np.random.default_rng(1)
    gt, visibility = _poses(rng, 50)
    pred = gt + rng.normal(0, 1, gt.shape)
    reference_mean, reference_std = cascade.displacement_statistics(pred, gt, visibility)
    # Wild errors where the truth is unlabelled, or where the torso pair is missing, change nothing.
    noisy_pred, noisy_visibility = pred.copy(), visibility.copy()
    noisy_visibility[:10, 3] = 0
    noisy_pred[:10, 3] += 1000
    gt_more = np.concatenate([gt, gt[:5]])
    pred_more = np.concatenate([noisy_pred, noisy_pred[:5] + 500])
    visibility_more = np.concatenate([noisy_visibility, visibility[:5]])
    visibility_more[-5:, HIP] = 0
    mean, std = cascade.displacement_statistics(pred_more, gt_more, visibility_more)
    keep = np.arange(17) != 3
    np.testing.assert_allclose(mean[keep], reference_mean[keep])
    np.testing.assert_allclose(std[keep], reference_std[keep])
    diameters = np.linalg.norm(gt[10:, SHOULDER] - gt[10:, HIP], axis=-1)
    np.testing.assert_allclose(mean[3], ((pred[10:, 3] - gt[10:, 3]) / diameters[:, None]).mean(axis=0))


def test_displacement_statistics_pool_joints_that_are_rarely_labelled():
    rng = np.random.default_rng(2)
    gt, visibility = _poses(rng, 30)
    pred = gt + rng.normal(0, 2, gt.shape)
    visibility[:, 0] = 0
    visibility[0, 0] = 2  # the nose is labelled once: not enough for a standard deviation
    mean, std = cascade.displacement_statistics(pred, gt, visibility)
    diameters = np.linalg.norm(gt[:, SHOULDER] - gt[:, HIP], axis=-1)
    pooled = ((pred - gt) / diameters[:, None, None])[visibility > 0]
    np.testing.assert_allclose(mean[0], pooled.mean(axis=0))
    np.testing.assert_allclose(std[0], pooled.std(axis=0))


def test_displacement_statistics_reject_bad_input():
    gt, visibility = _poses(np.random.default_rng(3), 4)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(N, K, 2\) with K=16"):
        cascade.displacement_statistics(gt[:, :16], gt, visibility)
    with pytest.raises(ValueError, match="predictions must have shape"):
        cascade.displacement_statistics(gt[0], gt, visibility)
    with pytest.raises(ValueError, match="visibility"):
        cascade.displacement_statistics(gt, gt, visibility[:3])
    visibility[:, SHOULDER] = 0
    with pytest.raises(ValueError, match="nobody"):
        cascade.displacement_statistics(gt, gt, visibility)
    with pytest.raises(ValueError, match="NaN"):
        cascade.displacement_statistics(np.full_like(gt, np.nan), gt, visibility)


def test_simulated_predictions_follow_the_statistics():
    rng = np.random.default_rng(4)
    gt, _ = _poses(rng, 1)
    mean = np.tile([0.1, -0.05], (17, 1))
    std = np.tile([0.2, 0.1], (17, 1))
    draws = np.stack([cascade.simulate_predictions(gt[0], mean, std, rng) for _ in range(3000)])  # (3000, 17, 2)
    diameter = np.linalg.norm(gt[0, SHOULDER] - gt[0, HIP])
    offsets = (draws - gt[0]) / diameter
    np.testing.assert_allclose(offsets.mean(axis=0), mean, atol=0.02)
    np.testing.assert_allclose(offsets.std(axis=0), std, rtol=0.08)
    np.testing.assert_allclose(cascade.simulate_predictions(gt, np.zeros((17, 2)), np.zeros((17, 2)), rng), gt)
    with pytest.raises(ValueError, match="std must be >= 0"):
        cascade.simulate_predictions(gt, mean, -std, rng)
    with pytest.raises(ValueError, match="mean must have shape"):
        cascade.simulate_predictions(gt, mean[:5], std, rng)


# --------------------------------------------------------------------------- the training patches
def test_cascade_dataset_items_are_patches_around_simulated_predictions():
    rng = np.random.default_rng(5)
    samples = _samples(rng, 6)
    samples[1]["visibility"][[2, 9]] = 0  # unlabelled joints: no item
    samples[2]["visibility"][HIP] = 0  # no torso pair: the person has no item at all
    mean, std = np.zeros((17, 2)), np.full((17, 2), 0.1)
    data = cascade.CascadeDataset(samples, mean, std, delta=1.5, patch_size=(33, 33), seed=3)
    assert len(data) == 5 * 17 - 2 == len(data.index)  # six people, one without a torso pair, two joints unlabelled
    assert 2 not in data.index[:, 0]
    assert not ((data.index[:, 0] == 1) & np.isin(data.index[:, 1], [2, 9])).any()
    for item_number in (0, 20, len(data) - 1):
        item = data[item_number]
        person, joint = data.index[item_number]
        truth = samples[person]["keypoints"][joint]
        diameter = np.linalg.norm(samples[person]["keypoints"][SHOULDER] - samples[person]["keypoints"][HIP])
        box = item["box"].numpy().astype(float)
        np.testing.assert_allclose(box[:2], item["previous"].numpy(), atol=1e-4)
        np.testing.assert_allclose(box[2:], 1.5 * diameter, rtol=1e-5)
        np.testing.assert_allclose(item["target"].numpy(), (truth - box[:2]) / box[2:], atol=1e-5)
        assert int(item["joint"]) == joint and item["image"].shape == (3, 33, 33)
        centre = tensor_to_image(item["image"])[16, 16].astype(float)  # the patch's centre pixel shows where it is
        np.testing.assert_allclose(centre[:2], box[:2], atol=1.5)


def test_cascade_dataset_draws_depend_on_seed_epoch_and_index():
    samples = _samples(np.random.default_rng(6), 3)
    data = cascade.CascadeDataset(samples, np.zeros((17, 2)), np.full((17, 2), 0.2), seed=1)
    first = data[4]["previous"]
    np.testing.assert_array_equal(first, data[4]["previous"])
    data.set_epoch(1)
    assert not torch.equal(first, data[4]["previous"])
    data.set_epoch(0)
    np.testing.assert_array_equal(first, data[4]["previous"])
    other_seed = cascade.CascadeDataset(samples, np.zeros((17, 2)), np.full((17, 2), 0.2), seed=2)
    assert not torch.equal(first, other_seed[4]["previous"])


def test_cascade_dataset_rejects_bad_input():
    samples = _samples(np.random.default_rng(7), 2)
    statistics = np.zeros((17, 2)), np.ones((17, 2))
    with pytest.raises(ValueError, match="delta"):
        cascade.CascadeDataset(samples, *statistics, delta=0)
    with pytest.raises(ValueError, match="patch_size"):
        cascade.CascadeDataset(samples, *statistics, patch_size=(0, 8))
    with pytest.raises(ValueError, match="mean must have shape"):
        cascade.CascadeDataset(samples, np.zeros((16, 2)), np.ones((17, 2)))
    with pytest.raises(TypeError, match="samples"):
        cascade.CascadeDataset(42, *statistics)
    with pytest.raises(ValueError, match="empty"):
        cascade.CascadeDataset([], *statistics)
    for sample in samples:
        sample["visibility"][SHOULDER] = 0
    with pytest.raises(ValueError, match="nothing to train on"):
        cascade.CascadeDataset(samples, *statistics)
    with pytest.raises(ValueError, match="epoch"):
        cascade.CascadeDataset(_samples(np.random.default_rng(8), 1), *statistics).set_epoch(-1)


def test_cascade_loss_uses_only_the_patch_joint():
    outputs = torch.zeros(3, 17, 2)
    outputs[0, 4] = torch.tensor([1.0, 2.0])
    outputs[1, 9] = torch.tensor([-1.0, 0.5])
    outputs[2, 0] = torch.tensor([100.0, 100.0])  # another joint's output: ignored
    batch = {"joint": torch.tensor([4, 9, 16]), "target": torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.0, 1.0]])}
    loss = cascade.CascadeLoss()(outputs, batch)["displacement"]
    expected = (0.0 + (1.0 + 0.25) + 1.0) / 3  # squared distances averaged over the patches
    assert float(loss) == pytest.approx(expected)


# --------------------------------------------------------------------------- refinement
class ConstantStage(nn.Module):
    """A fake stage: joint i's displacement is (0.01 i, -0.02 i) in box units, for any patch."""

    def forward(self, patches: torch.Tensor, joint_index: torch.Tensor) -> torch.Tensor:
        assert patches.shape[1:] == (3, 24, 24)
        return torch.stack([0.01 * joint_index.float(), -0.02 * joint_index.float()], dim=1)


def test_refine_moves_each_joint_by_its_displacement_times_the_box():
    rng = np.random.default_rng(9)
    samples = _samples(rng, 5)
    previous = np.stack([s["keypoints"] for s in samples]) + rng.normal(0, 2, (5, 17, 2))
    refined = cascade.refine(ConstantStage(), samples, previous, delta=2.0, patch_size=(24, 24), batch_size=20,
                             device="cpu")
    side = 2.0 * np.linalg.norm(previous[:, SHOULDER] - previous[:, HIP], axis=-1)  # diam of the PREVIOUS pose
    joints = np.arange(17)
    expected = previous + side[:, None, None] * np.stack([0.01 * joints, -0.02 * joints], axis=1)[None]
    np.testing.assert_allclose(refined, expected, rtol=1e-5, atol=1e-4)


class ZeroStage(nn.Module):
    """A fake stage that finds every joint exactly at the centre of its patch."""

    def forward(self, patches: torch.Tensor, joint_index: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(patches), 2)


def test_refine_with_zero_displacements_keeps_the_predictions():
    samples = _samples(np.random.default_rng(10), 3)
    previous = np.stack([s["keypoints"] for s in samples])
    refined = cascade.refine(ZeroStage(), samples, previous, patch_size=(24, 24), batch_size=1, device="cpu")
    np.testing.assert_allclose(refined, previous)


def test_refine_rejects_bad_input():
    samples = _samples(np.random.default_rng(11), 2)
    previous = np.stack([s["keypoints"] for s in samples])
    with pytest.raises(ValueError, match="2 items but previous has predictions for 1"):
        cascade.refine(ConstantStage(), samples, previous[:1])
    with pytest.raises(ValueError, match="previous must have shape"):
        cascade.refine(ConstantStage(), samples, previous[0])
    with pytest.raises(ValueError, match="delta"):
        cascade.refine(ConstantStage(), samples, previous, delta=-1.0)


def test_a_cascade_stage_trains_with_fit_on_the_patches():
    samples = _samples(np.random.default_rng(12), 4)
    data = cascade.CascadeDataset(samples, np.zeros((17, 2)), np.full((17, 2), 0.2), patch_size=(32, 32))
    stage = models.DeepPoseCascadeStage(models.build("deeppose_tiny", input_size=(32, 32)))
    history = training.fit(stage, data, None, cascade.CascadeLoss(), 3, batch_size=8, progress=False, device="cpu")
    assert len(history.loss) == 3 and all(np.isfinite(history.loss))
    refined = cascade.refine(stage, samples, np.stack([s["keypoints"] for s in samples]), patch_size=(32, 32),
                             device="cpu")
    assert refined.shape == (4, 17, 2) and np.isfinite(refined).all()


def test_cascade_boxes_agree_with_geometry_and_the_patches():
    rng = np.random.default_rng(13)
    samples = _samples(rng, 1)
    pose = samples[0]["keypoints"]
    boxes = geometry.cascade_crop_box(pose, cascade.body_diameters(pose), 1.0, box_format="cxcywh")
    patches, corner_boxes = geometry.cascade_patches(samples[0]["image"], pose, 1.0, (16, 16))
    np.testing.assert_allclose(corner_boxes[:, 2:], boxes[:, 2:])
    np.testing.assert_allclose(corner_boxes[:, :2] + corner_boxes[:, 2:] / 2, boxes[:, :2])
