"""The checks of chapter 00: the references pass, typical wrong answers fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import geometry
from course_lib import keypoints as keypoint_sets
from course_lib.grading import ch00_the_task as ch00
from checking import assert_check_fails


# --------------------------------------------------------------------------- written from the formulas
def good_coco_to_arrays(values):
    triplets = np.asarray(values, dtype=float).reshape(-1, 3)
    return triplets[:, :2], triplets[:, 2].astype(int)


def good_arrays_to_coco(keypoints, visibility):
    out = []
    for (x, y), v in zip(np.asarray(keypoints, float), visibility):
        out += [float(x), float(y), int(v)] if v > 0 else [0, 0, 0]
    return out


def good_flip_keypoints(keypoints, visibility, width, flip_pairs):
    flipped = np.array(keypoints, dtype=float)
    flipped[:, 0] = width - 1 - flipped[:, 0]
    flags = np.array(visibility)
    for left, right in flip_pairs:
        flipped[[left, right]] = flipped[[right, left]]
        flags[[left, right]] = flags[[right, left]]
    return flipped, flags


def good_keypoint_box(keypoints, visibility):
    points = np.asarray(keypoints, float)[np.asarray(visibility) > 0]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0])


def good_convert_by_name(keypoints, visibility, source_names, target_names):
    keypoints, visibility = np.asarray(keypoints, float), np.asarray(visibility)
    pairs = [(t, list(source_names).index(n)) for t, n in enumerate(target_names) if n in source_names]
    out_k, out_v = np.zeros((len(target_names), 2)), np.zeros(len(target_names), dtype=int)
    for t, k in pairs:
        out_k[t], out_v[t] = keypoints[k], visibility[k]
    return out_k, out_v


GOOD = {
    "convert_by_name": good_convert_by_name,
    "coco_to_arrays": good_coco_to_arrays,
    "arrays_to_coco": good_arrays_to_coco,
    "flip_keypoints": good_flip_keypoints,
    "keypoint_box": good_keypoint_box,
}


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_independent_solutions_pass_visible_and_hidden_checks(exercise, capsys):
    getattr(ch00, f"check_{exercise}")(GOOD[exercise])
    getattr(ch00, f"hidden_{exercise}")(GOOD[exercise])
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_the_reference_implementations_pass_the_visible_checks(exercise):
    getattr(ch00, f"check_{exercise}")(getattr(ch00, f"reference_{exercise}"))


@pytest.mark.parametrize("exercise", sorted(GOOD))
def test_stubs_are_told_to_write_the_function(exercise):
    def stub(*args):
        raise NotImplementedError()

    assert_check_fails(getattr(ch00, f"check_{exercise}"), stub, "not written yet")


@pytest.mark.parametrize(
    "exercise, library_function",
    [("coco_to_arrays", keypoint_sets.coco_to_arrays), ("arrays_to_coco", keypoint_sets.arrays_to_coco),
     ("flip_keypoints", geometry.flip_keypoints), ("keypoint_box", keypoint_sets.keypoint_box)],
)
def test_calling_the_course_implementation_fails_the_hidden_check(exercise, library_function):
    if exercise == "flip_keypoints":
        def wrapper(keypoints, visibility, width, flip_pairs):
            return library_function(keypoints, visibility, width, flip_pairs)
    else:
        def wrapper(*args):
            return library_function(*args)
    assert_check_fails(getattr(ch00, f"hidden_{exercise}"), wrapper, "reference implementation")


def test_hidden_flip_refuses_flip_permutation():
    def with_permutation(keypoints, visibility, width, flip_pairs):
        perm = keypoint_sets.flip_permutation(len(visibility), flip_pairs)
        flipped = np.array(keypoints, dtype=float)
        flipped[:, 0] = width - 1 - flipped[:, 0]
        return flipped[perm], np.asarray(visibility)[perm]

    assert_check_fails(ch00.hidden_flip_keypoints, with_permutation, "flip_permutation")


# --------------------------------------------------------------------------- typical mistakes
def test_coco_to_arrays_mistakes():
    def by_columns(values):
        table = np.asarray(values, float).reshape(3, -1)
        return table[:2].T, table[2].astype(int)

    assert_check_fails(ch00.check_coco_to_arrays, by_columns, "reshape(K, 3)")

    def float_flags(values):
        keypoints, visibility = good_coco_to_arrays(values)
        return keypoints, visibility.astype(float)

    assert_check_fails(ch00.check_coco_to_arrays, float_flags, "must hold integers")

    def swapped(values):
        keypoints, visibility = good_coco_to_arrays(values)
        return keypoints[:, ::-1], visibility

    assert_check_fails(ch00.check_coco_to_arrays, swapped, "x and y look swapped")

    def integer_keypoints(values):
        keypoints, visibility = good_coco_to_arrays(values)
        return keypoints.astype(int), visibility

    assert_check_fails(ch00.check_coco_to_arrays, integer_keypoints, "floating-point")

    assert_check_fails(ch00.check_coco_to_arrays, lambda values: None, "forget")


def test_arrays_to_coco_mistakes():
    def numpy_flags(keypoints, visibility):
        out = good_arrays_to_coco(keypoints, visibility)
        out[2::3] = [np.int64(v) for v in out[2::3]]
        return out

    assert_check_fails(ch00.check_arrays_to_coco, numpy_flags, "JSON")

    def keeps_positions(keypoints, visibility):
        out = []
        for (x, y), v in zip(np.asarray(keypoints, float), visibility):
            out += [float(x), float(y), int(v)]
        return out

    assert_check_fails(ch00.check_arrays_to_coco, keeps_positions, "0, 0, 0")

    def as_array(keypoints, visibility):
        return np.array(good_arrays_to_coco(keypoints, visibility))

    assert_check_fails(ch00.check_arrays_to_coco, as_array, "must be of type list")

    def float_flags(keypoints, visibility):
        out = good_arrays_to_coco(keypoints, visibility)
        out[2::3] = [float(v) for v in out[2::3]]
        return out

    assert_check_fails(ch00.check_arrays_to_coco, float_flags, "must be integers")


def test_flip_mistakes():
    def no_swap(keypoints, visibility, width, flip_pairs):
        flipped = np.array(keypoints, dtype=float)
        flipped[:, 0] = width - 1 - flipped[:, 0]
        return flipped, np.array(visibility)[[0, 2, 1, 4, 3]] if len(visibility) == 5 else np.array(visibility)

    assert_check_fails(ch00.check_flip_keypoints, no_swap, "did not swap")

    def width_minus_x(keypoints, visibility, width, flip_pairs):
        return good_flip_keypoints(keypoints, visibility, width + 1, flip_pairs)

    assert_check_fails(ch00.check_flip_keypoints, width_minus_x, "off by exactly one")

    def flags_stay(keypoints, visibility, width, flip_pairs):
        flipped, _ = good_flip_keypoints(keypoints, visibility, width, flip_pairs)
        return flipped, np.array(visibility)

    assert_check_fails(ch00.check_flip_keypoints, flags_stay, "visibility flags must swap")

    def mirrors_y(keypoints, visibility, width, flip_pairs):
        flipped, flags = good_flip_keypoints(np.asarray(keypoints)[:, ::-1], visibility, width, flip_pairs)
        return flipped[:, ::-1], flags

    assert_check_fails(ch00.hidden_flip_keypoints, mirrors_y, "mirrored y")

    def in_place(keypoints, visibility, width, flip_pairs):
        keypoints[:, 0] = width - 1 - keypoints[:, 0]
        return good_flip_keypoints(keypoints, visibility, 2 * width - 1, flip_pairs)

    assert_check_fails(ch00.check_flip_keypoints, in_place, "changed its input")


def test_hidden_flip_checks_the_person_sets():
    def coco_only(keypoints, visibility, width, flip_pairs):
        return good_flip_keypoints(keypoints, visibility, width, keypoint_sets.COCO_FLIP_PAIRS[:len(flip_pairs)])

    assert_check_fails(ch00.hidden_flip_keypoints, coco_only, "MPII")


def test_keypoint_box_mistakes():
    def all_points(keypoints, visibility):
        return good_keypoint_box(keypoints, np.full(len(visibility), 2))

    assert_check_fails(ch00.check_keypoint_box, all_points, "v = 0", "image corner")

    def corners(keypoints, visibility):
        box = good_keypoint_box(keypoints, visibility)
        return np.concatenate([box[:2], box[:2] + box[2:]])

    assert_check_fails(ch00.check_keypoint_box, corners, "[x, y, w, h]")

    def visible_only(keypoints, visibility):
        return good_keypoint_box(keypoints, np.where(np.asarray(visibility) == 2, 2, 0))

    assert_check_fails(ch00.check_keypoint_box, visible_only, "v = 1")

    def as_list(keypoints, visibility):
        return [float(v) for v in good_keypoint_box(keypoints, visibility)]

    ch00.check_keypoint_box(as_list)  # a list of four numbers is a fine box


def test_reference_library_functions_agree_with_the_formulas():
    rng = np.random.default_rng(0)
    for _ in range(20):
        keypoints, visibility = ch00._random_pose(rng, 17)
        values = np.concatenate([keypoints, visibility[:, None]], axis=1).ravel().tolist()
        got_keypoints, got_visibility = keypoint_sets.coco_to_arrays(values)
        want_keypoints, want_visibility = good_coco_to_arrays(values)
        np.testing.assert_array_equal(got_keypoints, want_keypoints)
        np.testing.assert_array_equal(got_visibility, want_visibility)
        assert keypoint_sets.arrays_to_coco(keypoints, visibility) == good_arrays_to_coco(keypoints, visibility)
        np.testing.assert_array_equal(keypoint_sets.keypoint_box(keypoints, visibility),
                                      good_keypoint_box(keypoints, visibility))


def test_the_stretch_conversion_goes_by_name_not_by_index():
    def by_index(keypoints, visibility, source_names, target_names):
        k = len(target_names)
        return np.resize(np.asarray(keypoints, float), (k, 2)), np.resize(np.asarray(visibility), (k,))

    assert_check_fails(ch00.check_convert_by_name, by_index, "returned the wrong values")

    def guesses_missing(keypoints, visibility, source_names, target_names):
        out_k, out_v = good_convert_by_name(keypoints, visibility, source_names, target_names)
        return out_k, np.where(out_v > 0, out_v, 2)

    assert_check_fails(ch00.check_convert_by_name, guesses_missing, "v = 0")

    def library(*args):
        return keypoint_sets.convert_keypoints(args[0], args[1], "coco", "lsp")

    assert_check_fails(ch00.hidden_convert_by_name, library, "reference implementation")
