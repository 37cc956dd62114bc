"""Checks for chapter 00 (the task): ``coco_to_arrays``, ``arrays_to_coco``, ``flip_keypoints``,
``keypoint_box``, and the stretch exercise ``convert_by_name``.

For each exercise, ``check_<exercise>(fn)`` runs small hand-worked cases (the visible check)
and ``hidden_<exercise>(fn)`` compares with the course's reference implementation on random
cases, with the reference itself off limits.  The references live in
:mod:`course_lib.keypoints` (the COCO format, the keypoint box) and :mod:`course_lib.geometry`
(the flip).
"""

from __future__ import annotations

import json

import numpy as np

from course_lib import geometry
from course_lib import keypoints as keypoint_sets
from course_lib.data import ASTRONAUT_ANNOTATIONS, load_coco_keypoints
from course_lib.grading.checks import (
    HINT_IGNORED_VISIBILITY,
    CheckFailed,
    all_visible,
    call_student,
    check_close,
    check_dtype,
    check_shape,
    check_type,
    forbid_reference,
    report_passed,
)

SETS = {
    "coco": keypoint_sets.COCO_FLIP_PAIRS,
    "mpii": keypoint_sets.MPII_FLIP_PAIRS,
    "lsp": keypoint_sets.LSP_FLIP_PAIRS,
}


def _pair(result, name: str, what: str) -> tuple:
    """The two arrays a function returns as ``(keypoints, visibility)``."""
    if result is None:
        raise CheckFailed(f"{what} returned None: did you forget `return keypoints, visibility`?")
    check_type(result, (tuple, list), what + " (a pair: return keypoints, visibility)")
    if len(result) != 2:
        raise CheckFailed(f"{name} must return two things, keypoints and visibility, got {len(result)}.")
    return result


def _random_pose(rng: np.random.Generator, num_keypoints: int, size: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(K, 2)`` with two decimals, as COCO files hold them, and flags with at least one label."""
    keypoints = np.round(rng.uniform(0, size, size=(num_keypoints, 2)), 2)
    visibility = rng.choice([0, 1, 2], size=num_keypoints, p=[0.25, 0.25, 0.5])
    visibility[rng.integers(num_keypoints)] = 2
    keypoints[visibility == 0] = 0.0  # COCO writes unlabelled keypoints as (0, 0)
    return keypoints, visibility


# =========================================================================== exercise 1: coco_to_arrays
def reference_coco_to_arrays(values) -> tuple[np.ndarray, np.ndarray]:
    """COCO's flat list -> keypoints (K, 2) float, visibility (K,) int."""
    return keypoint_sets.coco_to_arrays(values)


def _coco_to_arrays_mistakes(values) -> dict:
    values = np.asarray(values, dtype=float)
    by_rows = values.reshape(3, -1)  # read as [x..., y..., v...]
    return {
        "the list is [x1, y1, v1, x2, y2, v2, ...]: one keypoint after the other, three numbers each. "
        "reshape(K, 3) (or reshape(-1, 3)) puts one keypoint per row; reshape(3, K) does not.": by_rows[:2].T,
    }


def _check_coco_to_arrays_once(fn, values, what: str) -> None:
    expected_keypoints, expected_visibility = reference_coco_to_arrays(values)
    keypoints, visibility = _pair(call_student(fn, values, name="coco_to_arrays"), "coco_to_arrays", what)
    check_shape(keypoints, expected_keypoints.shape, f"the keypoints of {what}")
    check_dtype(keypoints, "float", f"the keypoints of {what}")
    check_close(keypoints, expected_keypoints, f"the keypoints of {what}", mistakes=_coco_to_arrays_mistakes(values))
    check_shape(visibility, expected_visibility.shape, f"the visibility of {what}")
    check_dtype(visibility, "integer", f"the visibility of {what} (flags 0, 1, 2: use .astype(int))")
    check_close(visibility, expected_visibility, f"the visibility of {what}")


def check_coco_to_arrays(fn) -> None:
    """Visible check: three keypoints by hand, then the astronaut's annotation."""
    values = [10, 20, 2, 0, 0, 0, 30.5, 40.25, 1]
    keypoints, visibility = _pair(call_student(fn, values, name="coco_to_arrays"), "coco_to_arrays",
                                  "coco_to_arrays([10, 20, 2, 0, 0, 0, 30.5, 40.25, 1])")
    what = "coco_to_arrays([10, 20, 2, 0, 0, 0, 30.5, 40.25, 1])"
    check_shape(keypoints, (3, 2), f"the keypoints of {what}")
    check_dtype(keypoints, "float", f"the keypoints of {what}")
    check_close(keypoints, [[10.0, 20.0], [0.0, 0.0], [30.5, 40.25]], f"the keypoints of {what}",
                mistakes=_coco_to_arrays_mistakes(values))
    check_dtype(visibility, "integer", f"the visibility of {what} (flags 0, 1, 2: use .astype(int))")
    check_close(visibility, [2, 0, 1], f"the visibility of {what}")
    astronaut = load_coco_keypoints(ASTRONAUT_ANNOTATIONS)["annotations"][0]["keypoints"]
    _check_coco_to_arrays_once(fn, astronaut, "coco_to_arrays(the astronaut's 51 numbers)")
    report_passed("coco_to_arrays")


def hidden_coco_to_arrays(fn) -> None:
    """Hidden check: random annotations of 5 to 17 keypoints, as lists and as arrays."""
    fn = forbid_reference(fn, *REFERENCES["coco_to_arrays"])
    rng = np.random.default_rng(1)
    for trial, num_keypoints in enumerate((17, 16, 14, 5, 17)):
        keypoints, visibility = _random_pose(rng, num_keypoints)
        values = np.concatenate([keypoints, visibility[:, None]], axis=1).ravel()  # (3K,)
        values = values.tolist() if trial % 2 == 0 else values
        _check_coco_to_arrays_once(fn, values, f"coco_to_arrays on a random annotation of {num_keypoints} keypoints")
    report_passed("coco_to_arrays (hidden)")


# =========================================================================== exercise 2: arrays_to_coco
def reference_arrays_to_coco(keypoints, visibility) -> list:
    """Keypoints (K, 2), visibility (K,) -> COCO's flat list, 0, 0, 0 for unlabelled keypoints."""
    return keypoint_sets.arrays_to_coco(keypoints, visibility)


def _check_arrays_to_coco_once(fn, keypoints, visibility, what: str) -> None:
    expected = reference_arrays_to_coco(keypoints, visibility)
    result = call_student(fn, keypoints, visibility, name="arrays_to_coco")
    check_type(result, list, what + " (a list: COCO files are JSON, and JSON has lists, not arrays)")
    if len(result) != len(expected):
        raise CheckFailed(f"{what} must hold 3 numbers per keypoint, {len(expected)} in all, got {len(result)}.")
    try:
        json.dumps(result)
    except TypeError as error:
        raise CheckFailed(
            f"{what} cannot be written to a JSON file: {error}.\nHint: NumPy numbers such as np.int64 are not "
            "JSON numbers; convert each entry with float(...) or int(...)."
        ) from None
    kept = np.concatenate([np.asarray(keypoints, float), np.asarray(visibility)[:, None]], axis=1).ravel()
    check_close(result, expected, what, mistakes={
        "unlabelled keypoints (v = 0) must be written as 0, 0, 0: COCO stores no position for them.": kept,
    })
    flags = result[2::3]
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in flags):
        raise CheckFailed(f"{what}: the flags v (every third entry) must be integers 0, 1, 2, got {flags}.")


def check_arrays_to_coco(fn) -> None:
    """Visible check: three keypoints by hand (the middle one unlabelled)."""
    keypoints = np.array([[10.5, 20.0], [3.0, 4.0], [30.0, 40.0]])
    visibility = np.array([2, 0, 1])
    what = "arrays_to_coco([[10.5, 20], [3, 4], [30, 40]], visibility=[2, 0, 1])"
    _check_arrays_to_coco_once(fn, keypoints, visibility, what)
    check_close(call_student(fn, keypoints, visibility, name="arrays_to_coco"),
                [10.5, 20.0, 2, 0.0, 0.0, 0, 30.0, 40.0, 1], what)
    report_passed("arrays_to_coco")


def hidden_arrays_to_coco(fn) -> None:
    """Hidden check: random poses; the round trip through the reference reader."""
    fn = forbid_reference(fn, *REFERENCES["arrays_to_coco"])
    rng = np.random.default_rng(2)
    for num_keypoints in (17, 14, 16, 3):
        keypoints, visibility = _random_pose(rng, num_keypoints)
        keypoints = keypoints + rng.uniform(1, 5, size=keypoints.shape)  # unlabelled ones are not at (0, 0) here
        _check_arrays_to_coco_once(fn, keypoints, visibility, f"arrays_to_coco on a random pose of {num_keypoints}")
        back, back_visibility = keypoint_sets.coco_to_arrays(call_student(fn, keypoints, visibility,
                                                                          name="arrays_to_coco"))
        check_close(back_visibility, visibility, "the visibility read back from your list")
        labelled = visibility > 0
        check_close(back[labelled], keypoints[labelled], "the labelled keypoints read back from your list")
    report_passed("arrays_to_coco (hidden)")


# =========================================================================== exercise 3: flip_keypoints
def reference_flip_keypoints(keypoints, visibility, width, flip_pairs) -> tuple[np.ndarray, np.ndarray]:
    """x' = w - 1 - x, then every (left, right) pair swaps rows (keypoints and visibility)."""
    return geometry.flip_keypoints(keypoints, visibility, width, flip_pairs)


def _flip_mistakes(keypoints, visibility, width, flip_pairs) -> dict:
    mirrored = np.asarray(keypoints, dtype=float).copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    upside_down, upside_down_vis = reference_flip_keypoints(keypoints[:, ::-1], visibility, width, flip_pairs)
    return {
        "you mirrored x but did not swap the left and right keypoints: after the mirror, the person's left "
        "wrist is where a right wrist would be, so every (left, right) pair in flip_pairs trades places.": mirrored,
        "you mirrored y (up-down); a left-right flip changes x only.": upside_down[:, ::-1],
    }


def _check_flip_once(fn, keypoints, visibility, width, flip_pairs, what: str) -> None:
    expected_keypoints, expected_visibility = reference_flip_keypoints(keypoints, visibility, width, flip_pairs)
    result = call_student(fn, keypoints, visibility, width, flip_pairs, name="flip_keypoints")
    flipped, flipped_visibility = _pair(result, "flip_keypoints", what)
    check_shape(flipped, np.shape(keypoints), f"the keypoints of {what}")
    check_shape(flipped_visibility, np.shape(visibility), f"the visibility of {what}")
    kept = np.asarray(visibility)
    check_close(flipped_visibility, expected_visibility, f"the visibility of {what}", mistakes={
        "the visibility flags must swap with their keypoints: the flag of the left wrist becomes the flag of "
        "the right wrist.": kept,
    })
    # Where a keypoint is not labelled its coordinates do not matter: compare the labelled ones.
    labelled = expected_visibility > 0
    flipped = np.array(flipped, dtype=float)
    flipped[~labelled] = expected_keypoints[~labelled]
    mistakes = {hint: np.where(labelled[:, None], wrong, expected_keypoints)
                for hint, wrong in _flip_mistakes(keypoints, visibility, width, flip_pairs).items()}
    check_close(flipped, expected_keypoints, f"the keypoints of {what}", mistakes=mistakes)


def check_flip_keypoints(fn) -> None:
    """Visible check: a five-point face in a 10-pixel-wide image, then a COCO person."""
    # nose, left eye, right eye, left ear, right ear (COCO's first five)
    keypoints = np.array([[4.5, 5.0], [6.0, 4.0], [3.0, 4.0], [8.0, 5.0], [1.0, 5.0]])
    visibility = np.array([2, 2, 2, 1, 0])
    pairs = ((1, 2), (3, 4))
    what = "flip_keypoints(face, visibility=[2, 2, 2, 1, 0], width=10, flip_pairs=((1, 2), (3, 4)))"
    flipped, flipped_visibility = _pair(call_student(fn, keypoints, visibility, 10, pairs, name="flip_keypoints"),
                                        "flip_keypoints", what)
    check_close(flipped_visibility, [2, 2, 2, 0, 1], f"the visibility of {what}", mistakes={
        "the visibility flags must swap with their keypoints.": visibility})
    expected = np.array([[4.5, 5.0], [6.0, 4.0], [3.0, 4.0], [0.0, 0.0], [1.0, 5.0]])
    check_shape(flipped, (5, 2), f"the keypoints of {what}")
    flipped = np.array(flipped, dtype=float)
    flipped[3] = 0.0  # the left ear after the flip is the unlabelled right ear: its position does not matter
    check_close(flipped, expected, f"the keypoints of {what}", mistakes={
        "you mirrored x but did not swap the left and right keypoints: every (left, right) pair in flip_pairs "
        "trades places.": np.array([[4.5, 5.0], [3.0, 4.0], [6.0, 4.0], [0.0, 0.0], [8.0, 5.0]]),
    })
    person = load_coco_keypoints(ASTRONAUT_ANNOTATIONS)["annotations"][0]["keypoints"]
    keypoints, visibility = keypoint_sets.coco_to_arrays(person)
    _check_flip_once(fn, keypoints, visibility, 512, keypoint_sets.COCO_FLIP_PAIRS,
                     "flip_keypoints(the astronaut, width=512, COCO_FLIP_PAIRS)")
    report_passed("flip_keypoints")


def hidden_flip_keypoints(fn) -> None:
    """Hidden check: random COCO, MPII and LSP poses in images of several widths; flipping twice."""
    fn = forbid_reference(fn, *REFERENCES["flip_keypoints"])
    rng = np.random.default_rng(3)
    for trial, (name, pairs) in enumerate(list(SETS.items()) * 2):
        num_keypoints = len(keypoint_sets.KEYPOINT_SETS[name])
        width = int(rng.choice([64, 128, 193, 640]))
        keypoints, visibility = _random_pose(rng, num_keypoints, size=width - 1)
        _check_flip_once(fn, keypoints, visibility, width, pairs,
                         f"flip_keypoints on a random {name.upper()} pose, width={width}")
    keypoints, visibility = _random_pose(rng, 17, size=99)
    visibility[:] = 2
    once = _pair(call_student(fn, keypoints, visibility, 100, keypoint_sets.COCO_FLIP_PAIRS, name="flip_keypoints"),
                 "flip_keypoints", "flip_keypoints")
    twice = _pair(call_student(fn, np.asarray(once[0], float), np.asarray(once[1]), 100,
                               keypoint_sets.COCO_FLIP_PAIRS, name="flip_keypoints"), "flip_keypoints", "flip_keypoints")
    check_close(twice[0], keypoints, "flipping twice (must give the keypoints back)")
    report_passed("flip_keypoints (hidden)")


# =========================================================================== exercise 4: keypoint_box
def reference_keypoint_box(keypoints, visibility) -> np.ndarray:
    """[x, y, w, h] of the labelled keypoints."""
    return keypoint_sets.keypoint_box(keypoints, visibility)


def _box_mistakes(keypoints, visibility) -> dict:
    keypoints, visibility = np.asarray(keypoints, float), np.asarray(visibility)
    box = reference_keypoint_box(keypoints, visibility)
    mistakes = {
        HINT_IGNORED_VISIBILITY + " COCO writes them at (0, 0), which stretches the box to the image corner.":
            reference_keypoint_box(keypoints, all_visible(visibility)),
        "this is [x_min, y_min, x_max, y_max]; a COCO box is [x, y, w, h]: width = x_max - x_min.":
            np.concatenate([box[:2], box[:2] + box[2:]]),
        "the box needs every keypoint x and y lie in: [min x, min y, max x - min x, max y - min y]; it looks "
        "like x and y were mixed up between the minimum and the size.": np.array([box[0], box[1], box[3], box[2]]),
    }
    if (visibility == 2).any() and (visibility == 1).any():
        mistakes["labelled means v > 0: hidden keypoints (v = 1) belong in the box too, not only v = 2."] = (
            reference_keypoint_box(keypoints, np.where(visibility == 2, 2, 0)))
    return mistakes


def _check_box_once(fn, keypoints, visibility, what: str) -> None:
    result = call_student(fn, keypoints, visibility, name="keypoint_box")
    check_shape(result, (4,), what)
    check_dtype(result, "float", what)
    check_close(result, reference_keypoint_box(keypoints, visibility), what,
                mistakes=_box_mistakes(keypoints, visibility))


def check_keypoint_box(fn) -> None:
    """Visible check: four keypoints by hand (one unlabelled at (0, 0), one hidden)."""
    keypoints = np.array([[10.0, 50.0], [30.0, 20.0], [0.0, 0.0], [25.0, 80.0]])
    visibility = np.array([2, 1, 0, 2])
    what = "keypoint_box([[10, 50], [30, 20], [0, 0], [25, 80]], visibility=[2, 1, 0, 2])"
    result = call_student(fn, keypoints, visibility, name="keypoint_box")
    check_shape(result, (4,), what)
    check_dtype(result, "float", what)
    check_close(result, [10.0, 20.0, 20.0, 60.0], what, mistakes=_box_mistakes(keypoints, visibility))
    person = load_coco_keypoints(ASTRONAUT_ANNOTATIONS)["annotations"][0]["keypoints"]
    _check_box_once(fn, *keypoint_sets.coco_to_arrays(person), "keypoint_box(the astronaut)")
    report_passed("keypoint_box")


def hidden_keypoint_box(fn) -> None:
    """Hidden check: random poses; a single labelled keypoint gives a box of size 0."""
    fn = forbid_reference(fn, *REFERENCES["keypoint_box"])
    rng = np.random.default_rng(4)
    for num_keypoints in (17, 17, 14, 16, 5):
        keypoints, visibility = _random_pose(rng, num_keypoints)
        _check_box_once(fn, keypoints, visibility, f"keypoint_box on a random pose of {num_keypoints} keypoints")
    keypoints, visibility = _random_pose(rng, 17)
    visibility[:] = 0
    visibility[6] = 1
    _check_box_once(fn, keypoints, visibility, "keypoint_box with one labelled keypoint")
    report_passed("keypoint_box (hidden)")


# -- stretch exercise: convert_by_name ----------------------------------------------------------------

def reference_convert_by_name(keypoints, visibility, source_names, target_names) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of one set in another, joint by joint through the names; missing joints: (0, 0), v = 0."""
    keypoints, visibility = np.asarray(keypoints, dtype=float), np.asarray(visibility)
    out_keypoints = np.zeros((len(target_names), 2))
    out_visibility = np.zeros(len(target_names), dtype=visibility.dtype)
    for t, name in enumerate(target_names):
        if name in source_names:
            out_keypoints[t] = keypoints[list(source_names).index(name)]
            out_visibility[t] = visibility[list(source_names).index(name)]
    return out_keypoints, out_visibility


def _check_convert_once(fn, keypoints, visibility, source: str, target: str) -> None:
    names = {"coco": keypoint_sets.COCO_KEYPOINTS, "mpii": keypoint_sets.MPII_KEYPOINTS,
             "lsp": keypoint_sets.LSP_KEYPOINTS}
    what = f"convert_by_name(a {source.upper()} pose, {source.upper()} names, {target.upper()} names)"
    result = call_student(fn, keypoints, visibility, names[source], names[target], name="convert_by_name")
    out_keypoints, out_visibility = _pair(result, "convert_by_name", what)
    expected_keypoints, expected_visibility = reference_convert_by_name(keypoints, visibility, names[source],
                                                                        names[target])
    check_shape(out_keypoints, expected_keypoints.shape, what + ", keypoints")
    check_close(out_visibility, expected_visibility, what + ", visibility", mistakes={
        "a joint the source set does not have is not labelled: v = 0, never copied from a neighbour.":
            np.where(expected_visibility > 0, expected_visibility, 2)})
    check_close(out_keypoints, expected_keypoints, what + ", keypoints", mistakes={
        "this copies joints by index; sets order their joints differently (COCO's left shoulder is 5, LSP's 9): "
        "match them by name.": np.resize(np.asarray(keypoints, float), expected_keypoints.shape)})


def check_convert_by_name(fn) -> None:
    """Visible check: the astronaut from COCO-17 to LSP-14 (neck and head top are not in COCO)."""
    person = load_coco_keypoints(ASTRONAUT_ANNOTATIONS)["annotations"][0]["keypoints"]
    _check_convert_once(fn, *keypoint_sets.coco_to_arrays(person), "coco", "lsp")
    report_passed("convert_by_name")


def hidden_convert_by_name(fn) -> None:
    """Hidden check: random poses between every pair of the three sets."""
    fn = forbid_reference(fn, *REFERENCES["convert_by_name"])
    rng = np.random.default_rng(5)
    sizes = {"coco": 17, "mpii": 16, "lsp": 14}
    for source, target in (("coco", "mpii"), ("mpii", "coco"), ("lsp", "mpii"), ("mpii", "lsp"), ("lsp", "coco")):
        _check_convert_once(fn, *_random_pose(rng, sizes[source]), source, target)
    report_passed("convert_by_name (hidden)")


# The course's own answer to each exercise: the hidden check fails a function that calls one of them,
# and while a notebook is graded they are absent from its kernel (see course_lib.grading.edition).
REFERENCES = {
    "coco_to_arrays": (reference_coco_to_arrays, keypoint_sets.coco_to_arrays),
    "arrays_to_coco": (reference_arrays_to_coco, keypoint_sets.arrays_to_coco),
    "flip_keypoints": (reference_flip_keypoints, geometry.flip_keypoints, keypoint_sets.flip_permutation),
    "keypoint_box": (reference_keypoint_box, keypoint_sets.keypoint_box),
    "convert_by_name": (reference_convert_by_name, keypoint_sets.convert_keypoints, keypoint_sets.correspondence),
}
