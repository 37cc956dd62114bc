"""Mask R-CNN keypoint head, its one-hot targets and decoding; the G-RMI head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.models.keypoint_heads import (
    GRMIHead,
    MaskRCNNKeypointHead,
    keypoints_to_roi_targets,
    roi_heatmaps_to_keypoints,
)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_head_layers_and_parameter_count():
    head = MaskRCNNKeypointHead(256)
    convs = [m for m in head.convs if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(c.out_channels == 512 and c.kernel_size == (3, 3) for c in convs)
    # Hand count: 3x3 convs 256->512 and 7 x 512->512 (weights + biases), 4x4 deconv 512->17.
    expected = (9 * 256 * 512 + 512) + 7 * (9 * 512 * 512 + 512) + (16 * 512 * 17 + 17)
    assert count_parameters(head) == expected == 17_838_097


def test_paper_head_maps_14x14_roi_features_to_56x56_logits():
    head = MaskRCNNKeypointHead(8, num_keypoints=17, num_convs=8, channels=16)  # paper layout, narrow
    out = head(torch.randn(3, 8, 14, 14))
    assert out.shape == (3, 17, 56, 56)


def test_tiny_head_forward_backward_reaches_every_parameter():
    head = MaskRCNNKeypointHead.tiny(32, num_keypoints=5)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in head.convs) == 4
    out = head(torch.randn(2, 32, 7, 9))
    assert out.shape == (2, 5, 28, 36)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_head_upsampling_is_deconvolution_then_bilinear():
    head = MaskRCNNKeypointHead(4, num_keypoints=2, num_convs=0)
    x = torch.randn(1, 4, 5, 5)
    low = head.deconv(x)
    expected = torch.nn.functional.interpolate(low, size=(20, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(head(x), expected)
    assert low.shape == (1, 2, 10, 10)


def test_targets_hand_worked():
    box = [[10.0, 20.0, 40.0, 80.0]]  # x from 10 to 50, y from 20 to 100
    keypoints = [[[10.0, 20.0], [49.9, 99.9], [50.0, 100.0], [30.0, 60.0], [9.9, 50.0], [30.0, 60.0]]]
    visibility = [[2, 1, 2, 2, 2, 0]]
    indices, valid = keypoints_to_roi_targets(keypoints, visibility, box, heatmap_size=4)
    # cells are 10 px wide and 20 px tall:
    #   (10, 20) -> col 0, row 0;   (49.9, 99.9) -> col 3, row 3 (v=1 counts: labelled);
    #   (50, 100) on the far edges -> kept in the last cell (3, 3);   (30, 60) -> col 2, row 2;
    #   (9.9, 50) left of the box -> invalid;   the last one is not labelled -> invalid.
    assert indices.tolist() == [[0, 15, 15, 10, 0, 0]]
    assert valid.tolist() == [[True, True, True, True, False, False]]
    assert indices.dtype == torch.long and valid.dtype == torch.bool


def test_targets_rectangular_heatmap_and_tensors():
    keypoints = torch.tensor([[[5.0, 5.0]]])
    indices, valid = keypoints_to_roi_targets(keypoints, torch.tensor([[2]]), torch.tensor([[0.0, 0.0, 10.0, 10.0]]), (2, 4))
    assert indices.item() == 1 * 4 + 2 and valid.item()  # row floor(5 * 2 / 10) = 1, col floor(5 * 4 / 10) = 2


def test_encode_decode_round_trip_returns_cell_centres():
    """A keypoint at a cell centre, encoded as a one-hot logit map and decoded, comes back
    to within the quantisation of the grids involved."""
    generator = torch.Generator().manual_seed(0)
    num_rois, num_keypoints, size = 3, 17, 56
    boxes = torch.tensor([[12.0, 30.0, 112.0, 168.0], [0.0, 0.0, 56.0, 56.0], [100.5, 40.25, 37.3, 90.7]])
    cells = torch.randint(0, size, (num_rois, num_keypoints, 2), generator=generator)  # (col, row)
    cell_w, cell_h = boxes[:, 2] / size, boxes[:, 3] / size
    keypoints = torch.stack(
        [boxes[:, None, 0] + (cells[..., 0] + 0.5) * cell_w[:, None], boxes[:, None, 1] + (cells[..., 1] + 0.5) * cell_h[:, None]], dim=-1
    )
    indices, valid = keypoints_to_roi_targets(keypoints, torch.full((num_rois, num_keypoints), 2), boxes, size)
    assert valid.all()
    assert torch.equal(indices, cells[..., 1] * size + cells[..., 0])
    logits = torch.full((num_rois, num_keypoints, size * size), -10.0)
    logits.scatter_(2, indices.unsqueeze(-1), 10.0)
    decoded, scores = roi_heatmaps_to_keypoints(logits.view(num_rois, num_keypoints, size, size), boxes)
    assert decoded.shape == (num_rois, num_keypoints, 2) and scores.shape == (num_rois, num_keypoints)
    # The decoded position is the centre of a pixel of the resized map (ceil(w) x ceil(h)
    # pixels): it is off by at most half a heatmap cell or half a resized pixel.
    error = (decoded - keypoints).abs()
    tolerance_x = torch.maximum(cell_w, boxes[:, 2] / boxes[:, 2].ceil()) / 2 + 1e-4
    tolerance_y = torch.maximum(cell_h, boxes[:, 3] / boxes[:, 3].ceil()) / 2 + 1e-4
    assert (error[..., 0] <= tolerance_x[:, None]).all()
    assert (error[..., 1] <= tolerance_y[:, None]).all()
    assert (scores[:2] > 5).all()  # boxes at least as large as the heatmap keep a clear peak


def test_decoding_a_box_the_size_of_the_heatmap_is_exact():
    """With a 56 x 56 box there is no resize: the peak cell (row 7, col 40) decodes to its
    centre x = 100 + 40.5, y = 200 + 7.5, and the score is the logit there."""
    logits = torch.zeros(1, 1, 56, 56)
    logits[0, 0, 7, 40] = 3.0
    keypoints, scores = roi_heatmaps_to_keypoints(logits, torch.tensor([[100.0, 200.0, 56.0, 56.0]]))
    assert keypoints[0, 0].tolist() == [140.5, 207.5]
    assert scores.item() == pytest.approx(3.0)


def test_grmi_head_channel_layout():
    head = GRMIHead(6, num_keypoints=4)
    features = torch.randn(2, 6, 9, 7)
    heatmaps, offsets = head(features)
    assert heatmaps.shape == (2, 4, 9, 7) and offsets.shape == (2, 8, 9, 7)
    full = head.predict(features)  # (N, 3K, h, w)
    torch.testing.assert_close(heatmaps, full[:, :4])
    # offset channel 2k is dx of keypoint k and 2k + 1 its dy: channel K + 2k + {0, 1} of the conv
    torch.testing.assert_close(offsets[:, 2 * 3 + 1], full[:, 4 + 2 * 3 + 1])
    assert sum(p.numel() for p in head.parameters()) == 6 * 12 + 12


def test_bad_input_errors():
    head = MaskRCNNKeypointHead.tiny(8)
    with pytest.raises(ValueError, match=r"features must have 8 channels \(in_channels\), got shape \(1, 4, 14, 14\)"):
        head(torch.randn(1, 4, 14, 14))
    with pytest.raises(ValueError, match=r"features must be a tensor of shape \(N, 8, h, w\)"):
        head(torch.randn(8, 14, 14))
    with pytest.raises(ValueError, match="channels must be a positive int"):
        MaskRCNNKeypointHead(8, channels=0)
    with pytest.raises(ValueError, match="num_keypoints must be a positive int"):
        GRMIHead(8, num_keypoints=0)
    with pytest.raises(ValueError, match=r"features must have 8 channels"):
        GRMIHead(8)(torch.randn(1, 3, 5, 5))
    kp, vis, box = np.zeros((2, 17, 2)), np.ones((2, 17)), np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    with pytest.raises(ValueError, match=r"boxes must have width and height > 0.*box 1"):
        keypoints_to_roi_targets(kp, vis, np.array([[0, 0, 10, 10], [0, 0, 0, 10.0]]))
    with pytest.raises(ValueError, match=r"visibility must have shape \(R, K\) with R=2"):
        keypoints_to_roi_targets(kp, np.ones((3, 17)), box)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(R, K, 2\)"):
        keypoints_to_roi_targets(np.zeros((2, 17, 3)), vis, box)
    with pytest.raises(ValueError, match="keypoints contains NaN"):
        keypoints_to_roi_targets(np.full((2, 17, 2), np.nan), vis, box)
    with pytest.raises(ValueError, match="heatmap_size must be a positive int"):
        keypoints_to_roi_targets(kp, vis, box, heatmap_size=0)
    with pytest.raises(ValueError, match=r"logits must be a tensor of shape \(R, K, H, W\)"):
        roi_heatmaps_to_keypoints(torch.zeros(17, 56, 56), box)
    with pytest.raises(ValueError, match=r"boxes must have shape \(3, 4\)"):
        roi_heatmaps_to_keypoints(torch.zeros(3, 17, 56, 56), box)


def test_grmi_head_layout_matches_the_targets_and_decoder_of_heatmaps():
    """With an identity 1x1 convolution the head passes its input through: fed with the
    targets of course_lib.heatmaps.grmi_targets, decode_grmi must find the keypoints."""
    heatmaps_module = pytest.importorskip("course_lib.heatmaps")
    if not hasattr(heatmaps_module, "grmi_targets") or not hasattr(heatmaps_module, "decode_grmi"):
        pytest.skip("course_lib.heatmaps has no grmi_targets / decode_grmi")
    keypoints = torch.tensor([[[20.3, 30.7], [41.0, 12.5], [7.5, 50.25]]], dtype=torch.float64)  # (1, K=3, 2)
    visibility = torch.full((1, 3), 2)
    disks, offsets, _ = heatmaps_module.grmi_targets(keypoints, visibility, (16, 16), radius=8.0, stride=4)
    logits = torch.where(torch.as_tensor(disks) > 0, 10.0, -10.0).double()
    head = GRMIHead(9, num_keypoints=3).double()
    with torch.no_grad():
        head.predict.weight.copy_(torch.eye(9, dtype=torch.float64).view(9, 9, 1, 1))
        head.predict.bias.zero_()
    heat_out, offsets_out = head(torch.cat([logits, torch.as_tensor(offsets).double()], dim=1))
    decoded, _ = heatmaps_module.decode_grmi(heat_out, offsets_out, stride=4, radius=8.0, method="argmax", logits=True)
    torch.testing.assert_close(torch.as_tensor(decoded).double(), keypoints, atol=1e-4, rtol=0)
