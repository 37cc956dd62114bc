"""The batched augmentation (course_lib.batched_augment), in the loader and on the device, against the per-item OpenCV path of TopDownDataset."""

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from course_lib.batched_augment import BatchedAugmentation, BatchedCrops, RawItems, as_batch, collate_raw
from course_lib.top_down import TopDownDataset, collate_extra_fields, extra_fields

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
def test_device_crops_and_targets_agree_with_the_per_item_path(unbiased):
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


def test_the_device_comparison_can_fail():
    data = TopDownDataset(people(4), (64, 48), (16, 12), augment=True, flip_prob=1.0)
    raw = collate_raw([RawItems(data)[i] for i in range(4)])
    raw["flipped"] = ~raw["flipped"]  # not what the data set drew
    got, expected = BatchedAugmentation(data)(raw), default_collate([data[i] for i in range(4)])
    assert not torch.allclose(got["keypoints"], expected["keypoints"], atol=1e-3)
    assert (got["image"] - expected["image"]).abs().max() > 0.5


def test_raw_items_need_a_top_down_dataset():
    with pytest.raises(TypeError, match="TopDownDataset"):
        RawItems([{"image": np.zeros((4, 4, 3), np.uint8)}])


def test_fit_picks_the_batched_paths_for_a_plain_top_down_dataset_only():
    from course_lib import training

    data = TopDownDataset(people(4), (64, 48), (16, 12), augment=True)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training.augmentation_for(cpu) == "batches" and training.augmentation_for(cuda) == "device"
    loader_data, collate, _ = training._pipeline(data, cpu, "auto", False)
    assert isinstance(loader_data, BatchedCrops) and collate is as_batch
    loader_data, collate, to_device = training._pipeline(data, cpu, "device", False)
    assert isinstance(loader_data, RawItems) and collate is collate_raw and isinstance(to_device, BatchedAugmentation)
    assert training._pipeline(data, cpu, "items", False)[:2] == (data, None)

    class OwnItems(TopDownDataset):
        def __getitem__(self, index):
            return super().__getitem__(index)

    own = OwnItems(people(4), (64, 48), (16, 12))
    assert training._pipeline(own, cpu, "auto", False)[:2] == (own, None)
    for augmentation in ("batches", "device"):
        with pytest.raises(ValueError, match="needs a TopDownDataset"):
            training._pipeline(own, cpu, augmentation, False)
    with pytest.raises(ValueError, match="augmentation must be one of"):
        training._pipeline(data, cpu, True, False)


def test_fit_trains_alike_on_the_three_paths():
    from torch import nn

    from course_lib import training

    def run(augmentation, seed=0):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 17, 3, padding=1), nn.AvgPool2d(4))
        data = TopDownDataset(people(8), (64, 48), (16, 12), augment=True, flip_prob=0.5, seed=seed)
        loss = lambda out, batch: ((out - batch["heatmaps"]) ** 2).mean() + out.abs().mean()  # noqa: E731
        history = training.fit(model, data, None, loss, 6, batch_size=4, lr=1e-2, device="cpu", progress=False,
                               augmentation=augmentation)
        return model.state_dict(), history.loss

    (per_item, per_item_loss), (batches, batches_loss) = run("items"), run("batches")
    assert batches_loss == per_item_loss  # the same batches, bit for bit
    for name in per_item:
        assert torch.equal(batches[name], per_item[name]), name
    device, device_loss = run("device")
    assert device_loss == pytest.approx(per_item_loss, rel=1e-4)
    for name in per_item:
        torch.testing.assert_close(device[name], per_item[name], atol=1e-4, rtol=1e-3)
    assert run("batches", seed=1)[1] != pytest.approx(per_item_loss, rel=1e-4)  # other draws, other losses


# ----------------------------------------------------------------------------- BatchedCrops: whole batches in the loader
def with_extras(samples):
    """The samples with the extra fields of real data: numbers, numpy scalars, arrays, strings, a bool."""
    for i, sample in enumerate(samples):
        sample.update(head_box=np.array([1.0, 2.0, 30.0 + i, 40.0]), file_name=f"{i:03d}.jpg",
                      crowd=bool(i % 2), score=np.float32(0.5 + i), track=np.int64(i))
    return samples


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("half_body", [0.0, 1.0])
def test_batched_crops_are_the_per_item_batch_bit_for_bit(unbiased, half_body):
    data = TopDownDataset(with_extras(people()), (64, 48), (16, 12), augment=True, flip_prob=0.5, unbiased=unbiased,
                          seed=3, half_body_prob=half_body, half_body_min_joints=3)
    data.set_epoch(2)
    indices = [3, 1, 4, 1, 5, 9, 2, 6]
    expected = default_collate([data[i] for i in indices])
    got = BatchedCrops(data).__getitems__(indices)
    assert list(got) == list(expected)
    assert expected["flipped"].any() and not expected["flipped"].all() and (expected["rotation"] != 0).any()
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
            assert got[key].is_contiguous(), key
        else:
            assert got[key] == value, key


def test_batched_crops_through_a_data_loader_and_the_comparison_can_fail():
    data = TopDownDataset(people(), (64, 48), (16, 12), augment=True, flip_prob=0.5, seed=1)
    sampler = torch.utils.data.BatchSampler(range(len(data)), 5, drop_last=False)
    expected = list(torch.utils.data.DataLoader(data, batch_sampler=sampler))
    got = list(torch.utils.data.DataLoader(BatchedCrops(data), batch_sampler=sampler, collate_fn=as_batch))
    assert [len(batch["image"]) for batch in got] == [5, 5, 2]
    for a, b in zip(got, expected):
        assert all(torch.equal(a[key], b[key]) for key in b)
    data.set_epoch(1)  # other draws: other crops
    moved = BatchedCrops(data).__getitems__(range(5))
    assert not torch.equal(moved["image"], expected[0]["image"])
    assert not torch.allclose(moved["keypoints"], expected[0]["keypoints"])


def test_batched_crops_in_a_loader_process_are_the_same_batches():
    data = TopDownDataset(people(), (64, 48), (16, 12), augment=True, flip_prob=0.5, seed=2)
    data.set_epoch(4)
    sampler = torch.utils.data.BatchSampler(range(len(data)), 4, drop_last=False)
    inline, worker = (list(torch.utils.data.DataLoader(BatchedCrops(data), batch_sampler=sampler, collate_fn=as_batch,
                                                       num_workers=workers)) for workers in (0, 1))
    assert len(inline) == len(worker) == 3
    for a, b in zip(inline, worker):
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_an_item_draws_the_same_in_any_batch():
    data = TopDownDataset(people(), (64, 48), (16, 12), augment=True, flip_prob=0.5, seed=5)
    alone = BatchedCrops(data).__getitems__([7])
    among = BatchedCrops(data).__getitems__([2, 7, 0])
    for key in ("image", "keypoints", "center", "scale", "rotation", "flipped"):
        assert torch.equal(alone[key][0], among[key][1]), key
    rows = data.draws([2, 7])
    assert rows.shape == (2, 6) and np.array_equal(rows[1], data.draws([7])[0])
    data.set_epoch(3)
    assert not np.array_equal(data.draws([7]), rows[1:])


@pytest.mark.parametrize("spoil, error, message", [
    (lambda s: s.update(keypoints=np.full((17, 2), np.nan)), ValueError, "NaN"),
    (lambda s: s.update(box=np.array([1.0, 2.0, 0.0, 5.0])), ValueError, "width and height > 0"),
    (lambda s: s.update(image=s["image"].astype(np.float32)), TypeError, "uint8"),
    (lambda s: s.pop("box"), KeyError, "lacks the keys"),
])
def test_a_bad_item_in_a_batch_raises_its_own_error(spoil, error, message):
    samples = people(6)
    spoil(samples[4])
    data = TopDownDataset(samples, (64, 48), (16, 12), augment=True)
    with pytest.raises(error, match=message) as per_item:
        data[4]
    with pytest.raises(error, match=message) as batched:
        BatchedCrops(data).__getitems__([0, 4, 5])
    assert str(batched.value) == str(per_item.value) and "samples[4]" in str(batched.value)


def test_items_with_different_joint_counts_cannot_form_a_batch():
    samples = people(3)
    samples[1] = {**samples[1], "keypoints": samples[1]["keypoints"][:13], "visibility": samples[1]["visibility"][:13]}
    data = TopDownDataset(samples, (64, 48), (16, 12), flip_pairs=())
    data[1]  # fine alone
    with pytest.raises(ValueError, match="cannot form one batch"):
        BatchedCrops(data).__getitems__([0, 1, 2])
    with pytest.raises(TypeError, match="TopDownDataset"):
        BatchedCrops(samples)


@pytest.mark.parametrize("samples", [
    with_extras(people(3)),
    [{"image_id": 1, "note": None}, {"image_id": 2, "note": None}],
    [{"area": 1.5, "size": np.array([1, 2])}, {"area": 2, "size": np.array([3, 4])}],
    [{"head_box": np.zeros(4)}, {"head_box": np.ones(4)}, {"head_box": np.full(4, 2.0)}],
    [{"points": np.zeros((2, 2))}, {"points": np.zeros((2, 2))}],
    [{}, {}],
])
def test_extra_fields_collate_a_key_at_a_time_as_item_by_item(samples):
    expected = default_collate([extra_fields(sample) for sample in samples])
    got = collate_extra_fields(samples)
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def test_extra_fields_that_differ_between_items_collate_as_default_collate_does():
    uneven = [{"image_id": 1, "head_box": np.zeros(4)}, {"image_id": 2, "head_box": None}]
    with pytest.raises(KeyError):
        default_collate([extra_fields(sample) for sample in uneven])
    with pytest.raises(KeyError):
        collate_extra_fields(uneven)
    shapes = [{"head_box": np.zeros(4)}, {"head_box": np.zeros(3)}]
    with pytest.raises(RuntimeError):
        collate_extra_fields(shapes)


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
