"""The Mask R-CNN-style keypoint model of chapter 05: shapes, pooling, loss, data, prediction, training glue."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import data, ops, training
from course_lib.models.keypoint_heads import keypoints_to_roi_targets
from course_lib.roi_keypoints import (
    RoiKeypointLoss,
    RoiKeypointNet,
    WholeImageDataset,
    evaluate,
    jitter_box,
    predict,
    whole_image_data,
    xywh_to_xyxy,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def people(default_data):
    return whole_image_data(data.default_split_dir("single/val", default_data), limit=6)


def small_model(pooler: str = "align", num_keypoints: int = 17) -> RoiKeypointNet:
    return RoiKeypointNet(pooler, num_keypoints, widths=(8, 16), roi_size=7, head_convs=1, head_channels=8)


def test_xywh_to_xyxy_by_hand():
    boxes = torch.tensor([[10.0, 20.0, 5.0, 7.5], [0.0, 0.0, 1.0, 2.0]])
    assert xywh_to_xyxy(boxes).tolist() == [[10.0, 20.0, 15.0, 27.5], [0.0, 0.0, 1.0, 2.0]]


@pytest.mark.parametrize("pooler", ["align", "pool"])
def test_shapes_through_the_model(pooler):
    model = RoiKeypointNet(pooler).eval()
    assert model.stride == 8 and model.spatial_scale == 1 / 8
    images = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        features = model(images)
        assert features.shape == (2, 64, 8, 6)
        boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [10.0, 2.0, 20.0, 50.0]])
        assert model.roi_features(features, boxes).shape == (2, 64, 14, 14)
        assert model.keypoint_logits(features, boxes).shape == (2, 17, 56, 56)
        several = [boxes, torch.zeros(0, 4), ]  # image 0: two people, image 1: none
        assert model.keypoint_logits(features, several).shape == (2, 17, 56, 56)


@pytest.mark.parametrize("pooler", ["align", "pool"])
def test_roi_features_are_the_course_ops_on_corner_boxes(pooler):
    model = small_model(pooler).eval()
    features = torch.randn(2, 16, 8, 8)
    boxes = [torch.tensor([[3.0, 5.5, 20.0, 30.0]]), torch.tensor([[0.0, 0.0, 60.0, 61.0], [12.0, 9.0, 1.5, 2.5]])]
    rois = torch.tensor([[0, 3.0, 5.5, 23.0, 35.5], [1, 0.0, 0.0, 60.0, 61.0], [1, 12.0, 9.0, 13.5, 11.5]])
    expected = (ops.roi_align(features, rois, 7, 1 / 8, 2) if pooler == "align" else ops.roi_pool(features, rois, 7, 1 / 8))
    torch.testing.assert_close(model.roi_features(features, boxes), expected)


def test_predicted_keypoints_lie_in_their_boxes():
    model = small_model().eval()
    images = torch.randn(1, 3, 32, 32)
    boxes = [torch.tensor([[2.0, 3.0, 10.0, 20.0], [15.0, 1.0, 12.0, 9.0]])]
    keypoints, scores = model.predict(images, boxes)
    assert keypoints.shape == (2, 17, 2) and scores.shape == (2, 17)
    for (x, y, w, h), points in zip(boxes[0].tolist(), keypoints):
        assert bool(((points[:, 0] >= x) & (points[:, 0] <= x + w) & (points[:, 1] >= y) & (points[:, 1] <= y + h)).all())


def test_loss_is_the_spatial_softmax_of_the_one_hot_targets():
    torch.manual_seed(0)
    model = small_model(num_keypoints=3).train()
    batch = {
        "image": torch.randn(2, 3, 32, 32),
        "keypoints": torch.tensor([[[5.0, 6.0], [9.0, 20.0], [30.0, 30.0]], [[16.0, 16.0], [17.0, 18.0], [3.0, 3.0]]]),
        "visibility": torch.tensor([[2, 1, 2], [2, 0, 2]]),
        "box": torch.tensor([[2.0, 3.0, 20.0, 24.0], [8.0, 8.0, 16.0, 16.0]]),
    }
    features = model(batch["image"])
    terms = RoiKeypointLoss(model)(features, batch)
    assert list(terms) == ["keypoints"] and terms["keypoints"].dim() == 0
    # By hand: keypoints (30, 30) and (3, 3) are outside their boxes, (17, 18) is not labelled: 3 valid.
    logits = model.keypoint_logits(features, batch["box"])  # (2, 3, 28, 28)
    indices, valid = keypoints_to_roi_targets(batch["keypoints"], batch["visibility"], batch["box"], 28)
    assert valid.tolist() == [[True, True, False], [True, False, False]]
    manual = torch.stack([F.cross_entropy(logits[r, k].flatten()[None], indices[r, k][None])
                          for r, k in zip(*torch.nonzero(valid, as_tuple=True))]).mean()
    torch.testing.assert_close(terms["keypoints"], manual)
    terms["keypoints"].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0 and model.head.deconv.weight.grad.abs().sum() > 0


def test_a_few_steps_fit_one_batch(people):
    torch.manual_seed(0)
    model = small_model()
    loss = RoiKeypointLoss(model)
    batch = torch.utils.data.default_collate([people[i] for i in range(4)])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    values = []
    for _ in range(25):
        value = loss(model(batch["image"]), batch)["keypoints"]
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(float(value.detach()))
    assert values[-1] < 0.7 * values[0]


def test_fit_trains_it_through_the_loss(people):
    model = small_model()
    before = model.head.deconv.weight.detach().clone()
    history = training.fit(model, people, None, RoiKeypointLoss(model), 2, batch_size=3, progress=False, device="cpu")
    assert history.steps == [1, 2] and "keypoints" in history.terms
    assert not torch.equal(before, model.head.deconv.weight.detach())


def test_whole_image_items(people):
    item = people[0]
    sample = people.samples[0]
    assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
    assert item["keypoints"].shape == (17, 2) and item["visibility"].dtype == torch.int64
    np.testing.assert_allclose(item["keypoints"].numpy(), sample["keypoints"])  # image pixels, unchanged
    assert torch.equal(item["box"], item["gt_box"])  # no augmentation: the annotated box
    assert int(item["image_id"]) == sample["image_id"] and int(item["annotation_id"]) == sample["annotation_id"]


def test_box_jitter_is_seeded_and_bounded(people):
    jittered = WholeImageDataset(people.samples, augment=True, seed=3)
    first = jittered[1]["box"]
    assert torch.equal(first, WholeImageDataset(people.samples, augment=True, seed=3)[1]["box"])
    jittered.set_epoch(1)
    assert not torch.equal(first, jittered[1]["box"])
    rng = np.random.default_rng(0)
    box = np.array([10.0, 20.0, 40.0, 80.0])
    for _ in range(200):
        x, y, w, h = jitter_box(box, rng, scale=0.15, shift=0.1)
        assert np.exp(-0.15) * 40 - 1e-4 <= w <= np.exp(0.15) * 40 + 1e-4
        assert abs((x + w / 2) - 30.0) <= 0.1 * 40 + 1e-4 and abs((y + h / 2) - 60.0) <= 0.1 * 80 + 1e-4


def test_predict_and_evaluate(people):
    model = small_model()
    predictions = predict(model, people, batch_size=4, device="cpu")
    assert predictions.keypoints.shape == predictions.gt_keypoints.shape == (len(people), 17, 2)
    np.testing.assert_allclose(predictions.boxes, np.stack([people[i]["gt_box"].numpy() for i in range(len(people))]))
    result = evaluate(model, people, coco_ap=False, device="cpu")
    assert {"pck@0.2", "pck@0.1", "mean_error"} <= set(result.metrics)
    assert 0.0 <= result.metrics["pck@0.2"] <= 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="pooler"):
        RoiKeypointNet("max")
    with pytest.raises(ValueError, match="roi_size"):
        RoiKeypointNet("align", roi_size=0)
    model = small_model()
    with pytest.raises(ValueError, match="not a multiple of 8"):
        model(torch.zeros(1, 3, 30, 32))
    features = torch.zeros(2, 16, 4, 4)
    with pytest.raises(ValueError, match="boxes"):
        model.roi_features(features, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="one .* entry per image"):
        model.roi_features(features, [torch.zeros(1, 4)])
    with pytest.raises(ValueError, match="width and height > 0"):
        model.roi_features(features, torch.tensor([[0.0, 0.0, 0.0, 5.0], [0.0, 0.0, 2.0, 2.0]]))
    with pytest.raises(TypeError, match="RoiKeypointNet"):
        RoiKeypointLoss(torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="seed"):
        WholeImageDataset([], seed=-1)
    with pytest.raises(ValueError, match="box_scale"):
        WholeImageDataset([], box_scale=-0.1)
    with pytest.raises(TypeError, match="samples"):
        WholeImageDataset(3)
    with pytest.raises(FileNotFoundError, match="annotations.json"):
        whole_image_data("/nonexistent/folder")
