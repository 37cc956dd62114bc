import numpy as np
import pytest
import torch

from course_lib.validation import check_array, check_choice, check_positive


def test_named_dimensions_must_agree_across_arguments():
    dims = {}
    check_array(np.zeros((4, 17, 2)), "pred", ("N", "K", 2), dims=dims)
    with pytest.raises(ValueError, match=r"gt must have shape \(N, K, 2\) with N=4"):
        check_array(np.zeros((5, 17, 2)), "gt", ("N", "K", 2), dims=dims)


def test_leading_ellipsis_accepts_any_batch():
    assert check_array(np.zeros((17, 2)), "k", (..., 17, 2)).shape == (17, 2)
    assert check_array(np.zeros((2, 3, 17, 2)), "k", (..., 17, 2)).shape == (2, 3, 17, 2)
    with pytest.raises(ValueError, match=r"k must have shape \(\.\.\., 17, 2\), got \(17, 3\)"):
        check_array(np.zeros((17, 3)), "k", (..., 17, 2))


def test_rejects_non_numeric_nan_and_none():
    with pytest.raises(TypeError, match="x must be numeric"):
        check_array(["a", "b"], "x")
    with pytest.raises(ValueError, match="NaN"):
        check_array([1.0, float("nan")], "x")
    with pytest.raises(TypeError, match="got None"):
        check_array(None, "x")
    assert check_array([1.0, float("nan")], "x", finite=False).shape == (2,)


def test_tensors_are_kept_when_allowed_and_converted_otherwise():
    t = torch.zeros(2, 3)
    assert check_array(t, "t", (2, 3), allow_torch=True) is t
    assert isinstance(check_array(t, "t", (2, 3)), np.ndarray)
    with pytest.raises(ValueError, match="NaN"):
        check_array(torch.tensor([float("inf")]), "t", allow_torch=True)


def test_positive_and_choice():
    assert check_positive(2, "sigma") == 2.0
    with pytest.raises(ValueError, match="sigma must be a finite number > 0, got 0"):
        check_positive(0, "sigma")
    with pytest.raises(ValueError, match="decoder must be one of"):
        check_choice("median", "decoder", ("argmax", "dark"))
