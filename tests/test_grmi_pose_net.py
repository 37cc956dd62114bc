"""G-RMI's pose network on a SimpleBaseline trunk, and its batch loss (chapter 09)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import models
from course_lib.heatmaps import grmi_targets
from course_lib.models.keypoint_heads import GRMILoss, GRMIPoseNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def simple_baseline():
    torch.manual_seed(0)
    model = models.build("simplebaseline_tiny")
    with torch.no_grad():  # a non-trivial heatmap layer, as after training
        model.final_layer.weight.normal_(0, 0.05)
        model.final_layer.bias.uniform_(-0.1, 0.1)
    return model.eval()


def test_the_head_starts_as_thresholded_heatmaps(simple_baseline):
    net = GRMIPoseNet.from_simple_baseline(simple_baseline, radius=8.0, heatmap_sigma=2.0, gain=10.0).eval()
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        logits, offsets = net(images)
        heatmaps = simple_baseline(images)
    threshold = math.exp(-((8.0 / 4) ** 2) / (2 * 2.0**2))  # a Gaussian of sigma 2 at distance R / stride = 2
    assert logits.shape == (2, 17, 24, 16) and offsets.shape == (2, 34, 24, 16)
    assert torch.allclose(logits, 10.0 * (heatmaps - threshold), atol=1e-5)
    assert torch.all(offsets == 0)
    assert (net.input_size, net.stride, net.num_keypoints, net.radius) == ((96, 64), 4, 17, 8.0)


def test_the_trunk_is_a_copy(simple_baseline):
    net = GRMIPoseNet.from_simple_baseline(simple_baseline)
    with torch.no_grad():
        next(net.trunk.parameters()).add_(1.0)
    assert not torch.equal(next(net.trunk.parameters()), next(simple_baseline.backbone.parameters()))


def test_decode_of_ideal_outputs_returns_the_keypoints():
    net = GRMIPoseNet(torch.nn.Identity(), in_channels=4, num_keypoints=3, input_size=(96, 64), stride=4, radius=8.0)
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(10, 50, size=(2, 3, 2))
    disks, offsets, _ = grmi_targets(keypoints, np.full((2, 3), 2), (24, 16), 8.0, 4, normalize_offsets=True)
    logits = torch.as_tensor(disks) * 40 - 20  # certain inside the disk, certain outside
    points, scores = net.decode((logits, torch.as_tensor(offsets)))
    assert np.allclose(points.numpy(), keypoints, atol=1e-4)
    assert np.all(scores.numpy() > 0.6)


def test_loss_is_small_for_ideal_outputs_and_trains_the_head(simple_baseline):
    loss = GRMILoss(radius=8.0, stride=4)
    keypoints = torch.tensor([[[20.0, 30.0]] * 17, [[40.0, 60.0]] * 17])
    visibility = torch.full((2, 17), 2)
    disks, offsets, _ = grmi_targets(keypoints, visibility, (24, 16), 8.0, 4, normalize_offsets=True)
    batch = {"keypoints": keypoints, "visibility": visibility}
    ideal = loss((disks * 40 - 20, offsets), batch)
    assert set(ideal) == {"heatmap", "offset"}
    assert ideal["heatmap"] < 1e-6 and ideal["offset"] < 1e-9
    net = GRMIPoseNet.from_simple_baseline(simple_baseline).train()
    images = torch.randn(2, 3, 96, 64)
    optimizer = torch.optim.Adam(net.head.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        terms = loss(net(images), batch)
        total = terms["heatmap"] + terms["offset"]
        first = first if first is not None else total.item()
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert total.item() < first


def test_bad_input(simple_baseline):
    with pytest.raises(ValueError, match="radius"):
        GRMIPoseNet.from_simple_baseline(simple_baseline, radius=0)
    with pytest.raises(TypeError, match="SimpleBaseline"):
        GRMIPoseNet.from_simple_baseline(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="trunk"):
        GRMIPoseNet("not a module", 8)
    with pytest.raises(ValueError, match="stride"):
        GRMILoss(8.0, 0)
    with pytest.raises(TypeError, match="pair"):
        GRMILoss(8.0, 4)(torch.zeros(1, 17, 24, 16), {})
