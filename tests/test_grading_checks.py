"""The check helpers (course_lib.grading.checks) and the fixture course's check module built on them.

Each wrong implementation below is a mistake students make; the test asserts the hint that
names it.  No notebook runs here.
"""

from __future__ import annotations

import functools
import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib.grading import checks
from course_lib.grading.checks import (
    HINT_IGNORED_VISIBILITY,
    HINT_OFF_BY_ONE,
    HINT_SWAPPED_XY,
    CheckFailed,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    check_type,
    explain_mismatch,
    forbid_reference,
    looks_like_off_by_one,
    looks_like_swapped_xy,
)

FIXTURE = Path(__file__).parent / "fixtures" / "grading_course" / "grading_course_checks.py"


def _load_fixture_checks() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("grading_course_checks_for_tests", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


course = _load_fixture_checks()


# -- wrong implementations of the fixture course's exercises ---------------------------------------

def centroid_swapped(keypoints, visibility):
    labelled = np.asarray(visibility) > 0
    return np.asarray(keypoints, dtype=float)[labelled].mean(axis=0)[::-1]


def centroid_ignoring_visibility(keypoints, visibility):
    return np.asarray(keypoints, dtype=float).mean(axis=0)


def centroid_integer(keypoints, visibility):
    labelled = np.asarray(visibility) > 0
    return np.asarray(keypoints)[labelled].sum(axis=0).astype(np.int64) // int(labelled.sum())


def centroid_without_return(keypoints, visibility):
    np.asarray(keypoints)[np.asarray(visibility) > 0].mean(axis=0)


def flip_off_by_one(keypoints, width):
    flipped = np.array(keypoints, dtype=float)
    flipped[:, 0] = width - flipped[:, 0]
    return flipped


def flip_in_place(keypoints, width):
    keypoints[:, 0] = width - 1 - keypoints[:, 0]
    return keypoints


def flip_y_instead(keypoints, width):
    flipped = np.array(keypoints, dtype=float)
    flipped[:, 1] = width - 1 - flipped[:, 1]
    return flipped


def count_visible_only(visibility):
    return int((np.asarray(visibility) == 2).sum())


def count_as_float(visibility):
    return float((np.asarray(visibility) > 0).sum())


def stub(*args):
    raise NotImplementedError()


def _failure(check, fn) -> str:
    with pytest.raises(CheckFailed) as caught:
        check(fn)
    return str(caught.value)


# -- the fixture course's checks: the reference passes, typical mistakes get their hint ------------

def test_reference_implementations_pass_every_check(capsys):
    course.check_visible_centroid(course.reference_visible_centroid)
    course.hidden_visible_centroid(centroid_copy)  # the hidden check refuses the reference itself
    course.check_flip_x(flip_copy)
    course.hidden_flip_x(flip_copy)
    course.check_count_labelled(lambda v: int((np.asarray(v) > 0).sum()))
    assert capsys.readouterr().out.count("all checks passed") == 5


def centroid_copy(keypoints, visibility):  # an own implementation, equal to the reference
    keypoints, labelled = np.asarray(keypoints, dtype=float), np.asarray(visibility) > 0
    return keypoints[labelled].sum(axis=0) / labelled.sum()


def flip_copy(keypoints, width):
    out = np.array(keypoints, dtype=float)
    out[:, 0] = (width - 1) - out[:, 0]
    return out


def test_swapped_xy_is_named():
    message = _failure(course.check_visible_centroid, centroid_swapped)
    assert HINT_SWAPPED_XY in message
    assert "expected: [15.  3.]" in message and "got:      [ 3. 15.]" in message


def test_ignoring_visibility_is_named_in_visible_and_hidden_checks():
    assert HINT_IGNORED_VISIBILITY in _failure(course.check_visible_centroid, centroid_ignoring_visibility)
    assert HINT_IGNORED_VISIBILITY in _failure(course.hidden_visible_centroid, centroid_ignoring_visibility)


def test_off_by_one_is_named():
    message = _failure(course.check_flip_x, flip_off_by_one)
    assert HINT_OFF_BY_ONE in message
    assert "3 of 6 values differ" in message  # only the three x values are wrong
    assert HINT_OFF_BY_ONE in _failure(course.hidden_flip_x, flip_off_by_one)


def test_wrong_dtype_is_named():
    # the worked example has an integral answer, so only the dtype check can catch integer maths
    message = _failure(course.check_visible_centroid, centroid_integer)
    assert "must hold floating-point numbers, got int64" in message
    assert "integer arithmetic" in message
    assert "must be of type int or numpy.integer, got float" in _failure(course.check_count_labelled, count_as_float)


def test_exercise_specific_mistakes_are_named():
    assert "you mirrored y instead of x" in _failure(course.check_flip_x, flip_y_instead)
    assert "counted only the visible keypoints" in _failure(course.check_count_labelled, count_visible_only)


def test_stub_missing_return_and_in_place_edits_get_plain_messages():
    assert "visible_centroid is not written yet" in _failure(course.check_visible_centroid, stub)
    assert "returned None: did you forget `return`?" in _failure(course.check_visible_centroid, centroid_without_return)
    assert "flip_x changed its input `keypoints` in place" in _failure(course.check_flip_x, flip_in_place)


def test_an_exception_in_student_code_is_reported_and_chained():
    def broken(keypoints, visibility):
        return keypoints[visibility > 0].mean(axis=0) / undefined_name  # noqa: F821

    with pytest.raises(CheckFailed, match="visible_centroid raised NameError: name 'undefined_name'") as caught:
        course.check_visible_centroid(broken)
    assert isinstance(caught.value.__cause__, NameError)


# -- forbid_reference ------------------------------------------------------------------------------

def test_forbid_reference_catches_wrappers_however_the_reference_is_reached():
    reference = course.reference_visible_centroid
    keypoints, visibility = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([2, 2])

    def via_module_attribute(k, v):
        return course.reference_visible_centroid(k, v)

    def via_local_import(k, v):
        from grading_course_checks_for_tests import reference_visible_centroid as helper  # noqa: F401

        return helper(k, v)

    def swallowing_exceptions(k, v):
        try:
            return reference(k, v)
        except Exception:
            return np.zeros(2)

    import sys

    sys.modules["grading_course_checks_for_tests"] = course
    try:
        for wrapper in (via_module_attribute, via_local_import, swallowing_exceptions,
                        lambda k, v: reference(k, v), functools.partial(reference)):
            guarded = forbid_reference(wrapper, reference)
            with pytest.raises(CheckFailed, match="calls the course's reference implementation "
                                                  "grading_course_checks_for_tests.reference_visible_centroid"):
                guarded(keypoints, visibility)
    finally:
        del sys.modules["grading_course_checks_for_tests"]
    # the reference works again afterwards: (1 + 3) / 2 = 2, (2 + 4) / 2 = 3
    np.testing.assert_allclose(reference(keypoints, visibility), [2.0, 3.0])


def test_forbid_reference_refuses_the_reference_itself_and_copies_of_it():
    reference = course.reference_visible_centroid
    with pytest.raises(CheckFailed, match="is the course's own .*reference_visible_centroid"):
        forbid_reference(reference, reference)
    clone = types.FunctionType(reference.__code__, reference.__globals__, "visible_centroid")
    with pytest.raises(CheckFailed, match="is the course's own"):
        forbid_reference(clone, reference)
    assert "calls the course's reference implementation" in _failure(course.hidden_visible_centroid,
                                                                     lambda k, v: reference(k, v))


def test_forbid_reference_lets_an_own_implementation_through_and_restores_on_errors():
    reference = course.reference_visible_centroid
    original = reference.__code__
    guarded = forbid_reference(centroid_copy, reference)
    np.testing.assert_allclose(guarded(np.array([[0.0, 0.0], [2.0, 4.0]]), np.array([1, 1])), [1.0, 2.0])

    def crashes(k, v):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        forbid_reference(crashes, reference)(None, None)
    assert reference.__code__ is original


def test_forbid_reference_rejects_what_it_cannot_guard():
    with pytest.raises(TypeError, match="plain Python functions, got builtin_function_or_method"):
        forbid_reference(centroid_copy, len)

    def outer():
        scale = 2

        def inner(x):
            return x * scale

        return inner

    with pytest.raises(TypeError, match="has a closure"):
        forbid_reference(centroid_copy, outer())


# -- the generic building blocks, on hand-worked numbers --------------------------------------------

def test_detectors():
    assert looks_like_swapped_xy([[2.0, 1.0], [4.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]])
    assert not looks_like_swapped_xy([[1.0, 1.0]], [[1.0, 1.0]])  # symmetric: nothing to say
    assert not looks_like_swapped_xy([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])  # last axis is not (x, y)
    assert looks_like_off_by_one([5.0, 6.0, 3.0], [4.0, 5.0, 3.0])
    assert looks_like_off_by_one(3, 4)
    assert not looks_like_off_by_one([5.0, 7.0], [4.0, 5.0])
    assert not looks_like_off_by_one([4.0, 5.0], [4.0, 5.0])
    hints = explain_mismatch([-1.0, -2.0], [1.0, 2.0])
    assert hints == [checks.HINT_SIGN]
    assert "0.5 times the right one" in explain_mismatch([1.0, 2.0], [2.0, 4.0])[0]


def test_check_close_accepts_tensors_and_names_shape_problems():
    check_close(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0]), "x")
    with pytest.raises(CheckFailed, match=r"heatmaps must have shape \(2, 3\), got \(3, 2\)\.\nHint: the axes are in reverse"):
        check_close(np.zeros((3, 2)), np.zeros((2, 3)), "heatmaps")
    with pytest.raises(CheckFailed, match="must give numbers, got str"):
        check_close("12", 12, "count")
    with pytest.raises(CheckFailed, match="1 of 3 values differ"):
        check_close([1.0, 2.0, 3.5], [1.0, 2.0, 3.0], "x")


def test_shape_type_and_dtype_messages():
    with pytest.raises(CheckFailed, match=r"must have shape \(4, 17, 2\), got \(4, 2, 17\)\.\nHint: the last two axes"):
        check_shape(np.zeros((4, 2, 17)), (4, 17, 2), "keypoints")
    with pytest.raises(CheckFailed, match="one axis is missing"):
        check_shape(np.zeros(17), (17, 1), "x")
    check_shape(np.zeros((5, 17, 2)), (None, 17, 2), "keypoints")
    with pytest.raises(CheckFailed, match="must be of type numpy.ndarray, got list"):
        check_type([1, 2], np.ndarray, "result")
    with pytest.raises(CheckFailed, match="got NoneType. Did you forget `return`"):
        check_type(None, np.ndarray, "result")
    check_dtype(torch.zeros(2), "float", "t")
    check_dtype(torch.zeros(2), np.float32, "t")
    with pytest.raises(CheckFailed, match="must hold values of dtype float32, got float64"):
        check_dtype(torch.zeros(2, dtype=torch.float64), torch.float32, "t")
    with pytest.raises(CheckFailed, match="must hold integers, got bool"):
        check_dtype(np.array([True]), "integer", "mask count")
    with pytest.raises(ValueError, match="expected must be one of"):
        check_dtype(np.zeros(2), "decimal", "x")


def test_call_student_rejects_non_functions():
    with pytest.raises(CheckFailed, match="visible_centroid must be a function, got int"):
        call_student(3, name="visible_centroid")


def test_modules_passed_to_student_code_are_compared_by_their_weights():
    layer = torch.nn.Linear(3, 2)

    def reads(module, x):
        return module(x)

    def trains(module, x):
        with torch.no_grad():
            module.weight.add_(1.0)
        return module(x)

    x = torch.ones(1, 3)
    assert torch.allclose(call_student(reads, layer, x), layer(x))
    with pytest.raises(CheckFailed, match="trains changed its input `module` in place"):
        call_student(trains, layer, x)
