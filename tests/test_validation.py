import numpy as np
import pytest
import torch

from course_lib.validation import (
    check_array,
    check_choice,
    check_integer,
    check_pair,
    check_positive,
    check_size,
    check_visibility,
)


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


# --------------------------------------------------------------------------- integers, pairs, flags
def test_check_integer_refuses_fractions_booleans_and_strings_naming_the_argument():
    assert check_integer(np.int64(3), "steps", minimum=1) == 3 and isinstance(check_integer(3, "steps"), int)
    for bad in (2.7, 2.0, True, "3", None):
        with pytest.raises(TypeError, match=r"sampling_ratio must be an integer, got"):
            check_integer(bad, "sampling_ratio")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        check_integer(0, "steps", minimum=1)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        check_integer(-1, "seed", minimum=0)
    with pytest.raises(ValueError, match="output_size must be an integer from 1 to 7, got 8"):
        check_integer(8, "output_size", minimum=1, maximum=7)


def test_check_pair_names_the_order_it_expects():
    assert check_pair((64, np.int32(48)), "input_size", "(H, W)") == (64, 48)
    assert check_size([64, 48], "heatmap_size") == (64, 48)
    with pytest.raises(TypeError, match=r"input_size must be a pair \(H, W\) of positive integers, got 64"):
        check_size(64, "input_size")
    with pytest.raises(TypeError, match=r"size must be a pair \(H, W\)"):
        check_size((64.0, 48), "size")  # a fractional size would silently be cut
    with pytest.raises(ValueError, match=r"persons must be a pair \(min, max\) of integers from 1 to 10, got \(1, 50\)"):
        check_pair((1, 50), "persons", "(min, max)", minimum=1, maximum=10)


def test_check_visibility_refuses_flags_that_are_not_coco_flags():
    np.testing.assert_array_equal(check_visibility([[0, 1, 2]], "visible"), [[0, 1, 2]])
    np.testing.assert_array_equal(check_visibility([[True, False]], "visible"), [[1, 0]])
    with pytest.raises(ValueError, match=r"visible must hold COCO visibility flags 0, 1 or 2 .*got 7 at index \(1, 0\)"):
        check_visibility([[2, 2], [7, 0]], "visible")


def test_the_size_and_coordinate_rule_is_written_where_a_reader_looks():
    import course_lib
    from course_lib import data, synthetic, validation

    for module in (course_lib, validation):
        assert "(H, W)" in module.__doc__ and "(s_x, s_y)" in module.__doc__ and "(w, h)" in module.__doc__
    for module in (data, synthetic):  # an image size is (H, W) like its array's shape, never [W, H]
        assert "[W, H]" not in module.__doc__
