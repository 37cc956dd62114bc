"""``torchvision_reference.torchvision_roi_ops``: torchvision.ops run in this Python or the system one, or None; never required."""

from __future__ import annotations

import pytest
import torch

from course_lib import ops, torchvision_reference


def _rois() -> torch.Tensor:
    return torch.tensor([[0.0, 1.2, 2.3, 20.5, 30.1], [1.0, 0.0, 0.0, 40.0, 35.0], [1.0, 10.0, 12.5, 10.0, 12.5]])


def test_agrees_with_the_course_ops_where_torchvision_runs():
    features = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    result = torchvision_reference.torchvision_roi_ops(features, _rois(), (3, 4), 0.25, 2)
    if result is None:
        pytest.skip("torchvision.ops cannot be run here (neither in this Python nor by the system interpreter)")
    assert set(result) == {"roi_pool", "roi_align", "where"} and isinstance(result["where"], str)
    assert result["roi_pool"].shape == result["roi_align"].shape == (3, 3, 3, 4)
    torch.testing.assert_close(result["roi_pool"], ops.roi_pool(features, _rois(), (3, 4), 0.25), atol=1e-5, rtol=0)
    torch.testing.assert_close(result["roi_align"], ops.roi_align(features, _rois(), (3, 4), 0.25, 2), atol=1e-5, rtol=0)


def test_list_boxes_and_aligned_are_passed_on():
    features = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    boxes = [torch.tensor([[0.5, 1.5, 6.0, 7.25]], dtype=torch.float64)]
    result = torchvision_reference.torchvision_roi_ops(features, boxes, 2, 1.0, -1, aligned=True)
    if result is None:
        pytest.skip("torchvision.ops cannot be run here")
    assert result["roi_align"].dtype == torch.float64
    torch.testing.assert_close(result["roi_align"], ops.roi_align(features, boxes, 2, 1.0, -1, aligned=True))


def test_returns_none_without_an_interpreter_that_has_torchvision():
    try:
        import torchvision.ops  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("torchvision imports in this Python, so there is always an answer")
    assert torchvision_reference.torchvision_roi_ops(torch.zeros(1, 1, 4, 4), _rois()[:1] * 0, 2, python="/nonexistent/python") is None


def test_bad_input_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="features must have shape"):
        torchvision_reference.torchvision_roi_ops(torch.zeros(4, 4), _rois(), 2)
    with pytest.raises(ValueError, match="batch index"):
        torchvision_reference.torchvision_roi_ops(torch.zeros(1, 1, 4, 4), _rois(), 2)
    with pytest.raises(ValueError, match="output_size"):
        torchvision_reference.torchvision_roi_ops(torch.zeros(2, 1, 4, 4), _rois(), 0)
    with pytest.raises(ValueError, match="spatial_scale"):
        torchvision_reference.torchvision_roi_ops(torch.zeros(2, 1, 4, 4), _rois(), 2, spatial_scale=-1.0)
