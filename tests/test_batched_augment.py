"""The batched device augmentation (course_lib.batched_augment) against the per-item OpenCV path of TopDownDataset."""

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from course_lib.batched_augment import BatchedAugmentation, RawItems, collate_raw
from course_lib.top_down import TopDownDataset

pytestmark = pytest.mark.usefixtures("one_thread")


def people(count=12, seed=0):
    """Smooth images of two sizes (bilinear interpolation is then compared on real gradients), people partly outside."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        h, w = (120, 100) if i % 2 else (90, 130)
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([(xx * 255 / w), (yy * 255 / h), 127 + 100 * np.sin(xx / 7.0 + yy / 11.0)], -1)
        image = (image + rng.uniform(0, 30, (h, w, 3))).clip(0, 255).astype(np.uint8)
        keypoints = rng.uniform(-10, [w + 10, h + 10], (17, 2))
        samples.append({"image": image, "keypoints": keypoints, "visibility": rng.integers(0, 3, 17),
                        "box": np.array([10.0, 8.0, w - 30.0, h - 20.0]), "image_id": 7 + i, "area": 55.5})
    return samples


@pytest.mark.parametrize("unbiased", [False, True])
def test_batched_crops_and_targets_agree_with_the_per_item_path(unbiased):
    data = TopDownDataset(people(), (64, 48), (16, 12), augment=True, flip_prob=0.5, unbiased=unbiased, seed=3)
    data.set_epoch(2)
    expected = default_collate([data[i] for i in range(len(data))])
    raw = collate_raw([RawItems(data)[i] for i in range(len(data))])
    got = BatchedAugmentation(data)(raw)
    assert set(got) == set(expected)
    assert expected["flipped"].any() and not expected["flipped"].all() and (expected["rotation"] != 0).any()
    for key in ("keypoints", "heatmaps", "target_weight", "center", "scale", "rotation", "keypoints_image", "box"):
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5, msg=key)
    for key in ("visibility", "visibility_image", "flipped", "image_id", "area"):
        assert torch.equal(got[key], expected[key]), key
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    levels = ((got["image"] - expected["image"]) * std * 255).abs()  # grey levels
    assert levels.max() <= 1.01 and levels.mean() < 0.05  # OpenCV rounds its fixed-point weights: one level at most


def test_the_comparison_can_fail():
    data = TopDownDataset(people(4), (64, 48), (16, 12), augment=True, flip_prob=1.0)
    raw = collate_raw([RawItems(data)[i] for i in range(4)])
    raw["flipped"] = ~raw["flipped"]  # not what the data set drew
    got, expected = BatchedAugmentation(data)(raw), default_collate([data[i] for i in range(4)])
    assert not torch.allclose(got["keypoints"], expected["keypoints"], atol=1e-3)
    assert (got["image"] - expected["image"]).abs().max() > 0.5


def test_raw_items_need_a_top_down_dataset():
    with pytest.raises(TypeError, match="TopDownDataset"):
        RawItems([{"image": np.zeros((4, 4, 3), np.uint8)}])


def test_fit_picks_the_batched_path_for_a_plain_top_down_dataset_only():
    from course_lib import training

    data = TopDownDataset(people(4), (64, 48), (16, 12), augment=True)
    cpu = torch.device("cpu")
    assert isinstance(training._pipeline(data, cpu, None, False), BatchedAugmentation)
    assert training._pipeline(data, cpu, False, False) is None

    class OwnItems(TopDownDataset):
        def __getitem__(self, index):
            return super().__getitem__(index)

    assert training._pipeline(OwnItems(people(4), (64, 48), (16, 12)), cpu, None, False) is None
    with pytest.raises(ValueError, match="augment_on_device"):
        training._pipeline(torch.utils.data.TensorDataset(torch.zeros(4)), cpu, True, False)


def test_fit_trains_alike_on_both_paths():
    from torch import nn

    from course_lib import training

    def run(on_device, seed=0):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 17, 3, padding=1), nn.AvgPool2d(4))
        data = TopDownDataset(people(8), (64, 48), (16, 12), augment=True, flip_prob=0.5, seed=seed)
        loss = lambda out, batch: ((out - batch["heatmaps"]) ** 2).mean() + out.abs().mean()  # noqa: E731
        history = training.fit(model, data, None, loss, 6, batch_size=4, lr=1e-2, device="cpu", progress=False,
                               augment_on_device=on_device)
        return model.state_dict(), history.loss

    (batched, batched_loss), (per_item, per_item_loss) = run(True), run(False)
    assert batched_loss == pytest.approx(per_item_loss, rel=1e-4)
    for name in batched:
        torch.testing.assert_close(batched[name], per_item[name], atol=1e-4, rtol=1e-3)
    assert run(True, seed=1)[1] != pytest.approx(per_item_loss, rel=1e-4)  # other draws, other losses


def test_prefetch_hands_errors_to_the_training_loop_and_stops_on_close():
    from course_lib.training import Position, Prefetch

    def batches():
        yield Position(1, 0, 1), {"x": 1}
        raise KeyError("samples[3] lacks the keys ['box']")

    reader = Prefetch(batches())
    assert next(reader)[1] == {"x": 1}
    with pytest.raises(KeyError, match="lacks the keys"):
        next(reader)
    reader.close()
    assert not reader.thread.is_alive()
