"""The CenterNet-style person detector: radius rule, targets, loss, decoding, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.models.detector import (
    PersonDetector,
    decode_detections,
    detection_loss,
    detection_targets,
    focal_loss,
    gaussian_radius,
    train_detector,
)


@pytest.mark.parametrize("height, width, overlap", [(6, 10, 0.7), (30, 12, 0.7), (5, 5, 0.5), (100, 40, 0.9)])
def test_gaussian_radius_keeps_the_promised_overlap(height, width, overlap):
    """At the radius, the worst of CornerNet's three corner moves gives IoU = min_overlap:
    (1) a shift by r in x and y, (2) both corners inwards by r, (3) both outwards by r."""
    r = gaussian_radius(height, width, overlap)
    shifted = (width - r) * (height - r) / (2 * width * height - (width - r) * (height - r))
    shrunk = (width - 2 * r) * (height - 2 * r) / (width * height)
    grown = width * height / ((width + 2 * r) * (height + 2 * r))
    assert min(shifted, shrunk, grown) == pytest.approx(overlap, abs=1e-9)
    assert r > 0


def test_targets_hand_worked():
    # 256 x 256 image, stride 4: the box [16, 24, 160, 120] is x 4..44, y 6..36 in cells
    # (40 x 30), centre (24, 21): peak at row 21, column 24, offset 0, index 21 * 64 + 24.
    targets = detection_targets([np.array([[16.0, 24.0, 160.0, 120.0]])], (256, 256), stride=4, max_objects=3)
    assert targets["heatmap"].shape == (1, 1, 64, 64)
    assert targets["size"].shape == targets["offset"].shape == (1, 3, 2)
    heatmap = targets["heatmap"][0, 0]
    assert heatmap[21, 24] == 1.0 and heatmap.max() == 1.0
    radius = int(gaussian_radius(30, 40, 0.7))
    assert radius == 2
    sigma = (2 * radius + 1) / 6
    assert heatmap[21, 25].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-6)
    assert heatmap[23, 22].item() == pytest.approx(math.exp(-8 / (2 * sigma**2)), rel=1e-6)
    assert heatmap[21, 24 + radius + 1] == 0.0 and heatmap[21 - radius - 1, 24] == 0.0  # outside the window
    assert (heatmap > 0).sum() == (2 * radius + 1) ** 2
    assert targets["size"][0, 0].tolist() == [40.0, 30.0]
    assert targets["offset"][0, 0].tolist() == [0.0, 0.0]
    assert targets["index"][0].tolist() == [21 * 64 + 24, 0, 0]
    assert targets["mask"][0].tolist() == [1.0, 0.0, 0.0]


def test_targets_sub_cell_centre_clipping_and_skipping():
    boxes = np.array(
        [
            [10.0, 10.0, 21.0, 13.0],  # cells x 2.5..7.75 -> centre 5.125: cell 5, offset 0.125
            [-20.0, 40.0, 30.0, 8.0],  # clipped at the left border: x 0..2.5
            [100.0, 100.0, 10.0, 10.0],  # entirely outside the 64 x 64 image: skipped
        ]
    )
    targets = detection_targets([boxes, np.zeros((0, 4))], (64, 64), stride=4, max_objects=4)
    assert targets["mask"].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(targets["offset"][0, 0].numpy(), [0.125, 0.125])  # y: 2.5..5.75 -> 4.125
    np.testing.assert_allclose(targets["size"][0, 0].numpy(), [5.25, 3.25])
    np.testing.assert_allclose(targets["size"][0, 1].numpy(), [2.5, 2.0])
    assert targets["index"][0, 0].item() == 4 * 16 + 5
    assert targets["heatmap"][1].abs().sum() == 0


def _outputs_from_targets(targets: dict) -> dict:
    """The outputs a perfect network would give: logit of the target heatmap, sizes and
    offsets written at the centre cells."""
    heatmap = targets["heatmap"].clamp(1e-6, 1 - 1e-6)
    n, _, h, w = heatmap.shape
    dense = {}
    for name in ("size", "offset"):
        maps = torch.zeros(n, 2, h * w)
        for i in range(n):
            for slot in range(targets["index"].shape[1]):
                if targets["mask"][i, slot] > 0:
                    maps[i, :, targets["index"][i, slot]] = targets[name][i, slot]
        dense[name] = maps.view(n, 2, h, w)
    return {"heatmap": torch.log(heatmap / (1 - heatmap)), **dense}


def test_decoding_the_exact_targets_returns_the_boxes():
    boxes_list = [
        np.array([[8.0, 12.0, 40.0, 24.0], [60.5, 70.25, 33.0, 50.5], [100.0, 20.0, 17.3, 29.9]]),
        np.array([[30.0, 30.0, 60.0, 80.0]]),
    ]
    targets = detection_targets(boxes_list, (128, 160), stride=4)
    detections = decode_detections(_outputs_from_targets(targets), max_detections=10, threshold=0.5)
    assert len(detections) == 2
    for (boxes, scores), expected in zip(detections, boxes_list):
        assert len(boxes) == len(expected)
        np.testing.assert_allclose(scores.numpy(), 1.0, atol=1e-5)
        order = np.lexsort((boxes[:, 1].numpy(), boxes[:, 0].numpy()))
        expected = expected[np.lexsort((expected[:, 1], expected[:, 0]))]
        np.testing.assert_allclose(boxes.numpy()[order], expected, atol=1e-4)


def test_decoding_keeps_peaks_only_best_first_and_respects_limits():
    heatmap = torch.full((1, 1, 8, 8), -10.0)
    heatmap[0, 0, 2, 2], heatmap[0, 0, 2, 3] = 3.0, 2.0  # neighbours: only the higher one is a peak
    heatmap[0, 0, 6, 6] = 1.0
    outputs = {"heatmap": heatmap, "size": torch.ones(1, 2, 8, 8), "offset": torch.zeros(1, 2, 8, 8)}
    boxes, scores = decode_detections(outputs, threshold=0.1)[0]
    np.testing.assert_allclose(scores.numpy(), torch.sigmoid(torch.tensor([3.0, 1.0])).numpy())
    np.testing.assert_allclose(boxes.numpy(), [[6.0, 6.0, 4.0, 4.0], [22.0, 22.0, 4.0, 4.0]])
    assert len(decode_detections(outputs, max_detections=1, threshold=0.0)[0][0]) == 1
    assert len(decode_detections(outputs, threshold=0.9)[0][0]) == 1


def test_focal_loss_hand_worked():
    logits = torch.zeros(1, 1, 1, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.5]]]])
    # positive: (1 - 0.5)^2 log 0.5; negative: (1 - 0.5)^4 0.5^2 log 0.5; one positive
    expected = -(0.25 + 0.0625 * 0.25) * math.log(0.5)
    assert focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # no positive at all: divide by 1, not 0
    assert focal_loss(logits, torch.zeros(1, 1, 1, 2)).item() == pytest.approx(-2 * 0.25 * math.log(0.5), rel=1e-6)


def test_loss_of_perfect_size_and_offset_is_the_focal_loss_alone():
    targets = detection_targets([np.array([[8.0, 12.0, 40.0, 24.0], [30.0, 30.0, 20.0, 20.0]])], (64, 64))
    outputs = _outputs_from_targets(targets)
    total = detection_loss(outputs, targets)
    assert total.item() == pytest.approx(focal_loss(outputs["heatmap"], targets["heatmap"]).item(), abs=1e-6)
    outputs["size"] = outputs["size"] + 1.0  # every width and height off by one cell: mean L1 = 1
    assert detection_loss(outputs, targets).item() == pytest.approx(total.item() + 0.1 * 1.0, abs=1e-4)
    outputs["offset"] = outputs["offset"] - 0.25  # and every offset by a quarter cell
    assert detection_loss(outputs, targets).item() == pytest.approx(total.item() + 0.1 + 0.25, abs=1e-4)


def test_forward_shapes_and_presets():
    model = PersonDetector.tiny()
    outputs = model(torch.randn(2, 3, 64, 96))
    assert outputs["heatmap"].shape == (2, 1, 16, 24)
    assert outputs["size"].shape == outputs["offset"].shape == (2, 2, 16, 24)
    assert torch.sigmoid(outputs["heatmap"]).mean().item() == pytest.approx(0.1, abs=0.05)  # the -2.19 prior
    small = sum(p.numel() for p in model.parameters())
    assert small < sum(p.numel() for p in PersonDetector().parameters()) < 1_000_000


def _rectangle_scenes(count: int, generator: np.random.Generator) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Noise backgrounds with one or two bright rectangles: the smallest detection task."""
    images, boxes_list = [], []
    for _ in range(count):
        image = generator.normal(0, 0.3, (3, 64, 64))
        boxes = []
        for _ in range(int(generator.integers(1, 3))):
            w, h = generator.integers(10, 28, 2)
            x, y = generator.integers(0, 64 - w), generator.integers(0, 64 - h)
            image[:, y : y + h, x : x + w] += generator.uniform(1.5, 2.5, (3, 1, 1))
            boxes.append([x - 0.5, y - 0.5, w, h])
        images.append(image)
        boxes_list.append(np.array(boxes, dtype=np.float64))
    return torch.tensor(np.stack(images), dtype=torch.float32), boxes_list


def test_loss_is_finite_and_decreases_when_training_on_rectangles(one_thread):
    torch.manual_seed(0)
    images, boxes_list = _rectangle_scenes(16, np.random.default_rng(0))
    model = PersonDetector(width=8)
    losses = train_detector(model, images, boxes_list, steps=20, batch_size=8, learning_rate=5e-3, seed=0)
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert not model.training  # left in eval mode


def test_bad_input_errors():
    model = PersonDetector.tiny()
    with pytest.raises(ValueError, match=r"images must be a tensor of shape \(N, 3, H, W\), got \(1, 1, 64, 64\)"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"images must have H and W divisible by 32, got \(64, 70\)"):
        model(torch.zeros(1, 3, 64, 70))
    with pytest.raises(ValueError, match="width must be a positive int"):
        PersonDetector(width=0)
    with pytest.raises(ValueError, match=r"image_size must be divisible by stride=4, got \(64, 66\)"):
        detection_targets([np.zeros((0, 4))], (64, 66))
    with pytest.raises(ValueError, match=r"boxes_list\[1\] must have shape \(\?, 4\)"):
        detection_targets([np.zeros((0, 4)), np.zeros((2, 3))], (64, 64))
    with pytest.raises(ValueError, match=r"boxes_list\[0\] must hold \[x, y, w, h\] boxes with w, h >= 0"):
        detection_targets([np.array([[0.0, 0.0, -3.0, 4.0]])], (64, 64))
    with pytest.raises(ValueError, match=r"boxes_list\[0\] has 3 boxes, more than max_objects=2"):
        detection_targets([np.ones((3, 4))], (64, 64), max_objects=2)
    with pytest.raises(ValueError, match="boxes_list must hold at least one image"):
        detection_targets([], (64, 64))
    with pytest.raises(TypeError, match="boxes_list must be a list"):
        detection_targets(np.zeros((1, 4)), (64, 64))
    with pytest.raises(ValueError, match="boxes_list\\[0\\] contains NaN"):
        detection_targets([np.array([[np.nan, 0.0, 3.0, 4.0]])], (64, 64))
    targets = detection_targets([np.array([[8.0, 8.0, 20.0, 20.0]])], (64, 64))
    with pytest.raises(ValueError, match="were the targets made for this image size"):
        detection_loss(model.eval()(torch.zeros(1, 3, 96, 96)), targets)
    with pytest.raises(KeyError, match="outputs must have a 'size' entry"):
        detection_loss({"heatmap": targets["heatmap"]}, targets)
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        decode_detections(_outputs_from_targets(targets), threshold=-1)
    with pytest.raises(ValueError, match="max_detections must be a positive int"):
        decode_detections(_outputs_from_targets(targets), max_detections=0)
    with pytest.raises(ValueError, match="boxes_list must have one entry per image"):
        train_detector(model, torch.zeros(2, 3, 64, 64), [np.zeros((0, 4))], steps=1)
