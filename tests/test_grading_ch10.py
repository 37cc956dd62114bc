"""The checks of chapter 10: the references pass, typical wrong answers fail with the right hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import geometry, inference
from course_lib.grading import ch10_real_photographs as ch10
from checking import SANDBOX, assert_check_fails


# --------------------------------------------------------------------------- written from the formulas
def good_box(box, aspect_ratio, padding=1.25):
    x, y, w, h = (float(v) for v in box)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return np.array([x + float(box[2]) / 2, y + float(box[3]) / 2]), np.array([w, h]) * padding


def good_input(crop, color="rgb"):
    image = np.asarray(crop, np.float64)
    if color == "bgr":
        image = image[..., ::-1]
    out = (image / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return torch.tensor(out.transpose(2, 0, 1).copy(), dtype=torch.float32)


def good_invert(matrix):
    full = np.vstack([np.asarray(matrix, float), [0, 0, 1]])
    return np.linalg.inv(full)[:2]


def good_one_euro(signal, rate, min_cutoff=1.0, beta=0.0, d_cutoff=1.0):
    """Written from Casiez et al.'s pseudo-code: tau = 1 / (2 pi f), alpha = 1 / (1 + tau / T_e), T_e = 1 / rate."""
    x = np.asarray(signal, dtype=float)
    out, dx = x.copy(), np.zeros(x.shape[1:])
    for t in range(1, len(x)):
        a_d = 1 / (1 + (1 / (2 * np.pi * d_cutoff)) * rate)
        dx = a_d * (x[t] - out[t - 1]) / (1 / rate) + (1 - a_d) * dx
        a = 1 / (1 + (1 / (2 * np.pi * (min_cutoff + beta * np.abs(dx)))) * rate)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


@pytest.mark.parametrize("exercise, good", [("box_to_center_scale", good_box), ("to_model_input", good_input),
                                            ("invert_affine", good_invert), ("one_euro_filter", good_one_euro)])
def test_independent_solutions_pass_visible_and_hidden_checks(exercise, good, capsys):
    getattr(ch10, f"check_{exercise}")(good)
    getattr(ch10, f"hidden_{exercise}")(good)
    assert "all checks passed" in capsys.readouterr().out


def test_the_reference_implementations_pass_the_visible_checks():
    ch10.check_box_to_center_scale(ch10.reference_box_to_center_scale)
    ch10.check_to_model_input(ch10.reference_to_model_input)
    ch10.check_invert_affine(ch10.reference_invert_affine)


@pytest.mark.parametrize("exercise, reference", [
    ("box_to_center_scale", lambda box, r, p=1.25: geometry.box_to_center_scale(np.asarray(box), r, p)),
    ("to_model_input", lambda crop, color="rgb": inference.crops_to_tensor(np.asarray(crop)[None], color)[0]),
    ("invert_affine", lambda m: ch10.reference_invert_affine(m)),
    ("one_euro_filter", lambda *args: ch10.reference_one_euro_filter(*args)),
])
def test_calling_the_course_implementation_fails_the_hidden_check(exercise, reference):
    assert_check_fails(getattr(ch10, f"hidden_{exercise}"), reference, "reference implementation")


def test_one_euro_mistakes_get_their_hints():
    def unsmoothed_speed(signal, rate, min_cutoff=1.0, beta=0.0, d_cutoff=1.0):
        x = np.asarray(signal, dtype=float)
        out = x.copy()
        for t in range(1, len(x)):
            a = 1 / (1 + rate / (2 * np.pi * (min_cutoff + beta * np.abs((x[t] - out[t - 1]) * rate))))
            out[t] = a * x[t] + (1 - a) * out[t - 1]
        return out

    def fixed_cutoff(signal, rate, min_cutoff=1.0, beta=0.0, d_cutoff=1.0):
        return good_one_euro(signal, rate, min_cutoff, 0.0, d_cutoff)

    assert_check_fails(ch10.check_one_euro_filter, unsmoothed_speed, "speed that sets the cutoff is itself smoothed")
    assert_check_fails(ch10.check_one_euro_filter, fixed_cutoff, "the cutoff adapts to the speed")
    assert_check_fails(ch10.check_one_euro_filter, lambda s, *a: np.asarray(s, float), "one_euro_filter")


def test_stubs_say_they_are_not_written():
    def stub(*args):
        raise NotImplementedError()

    for exercise in ("box_to_center_scale", "to_model_input", "invert_affine"):
        assert_check_fails(getattr(ch10, f"check_{exercise}"), stub, "not written yet")


def test_box_mistakes_get_their_hints():
    assert_check_fails(ch10.check_box_to_center_scale,
                       lambda b, r, p=1.25: (np.asarray(b[:2], float), good_box(b, r, p)[1]), "not its corner")
    assert_check_fails(ch10.check_box_to_center_scale, lambda b, r, p=1.25: good_box(b, r, 1.0), "padding")
    assert_check_fails(ch10.check_box_to_center_scale, lambda b, r, p=1.25: good_box(b, 1 / r, p), "W / H")

    def shrinking(box, r, p=1.25):
        x, y, w, h = box
        return np.array([x + w / 2, y + h / 2]), np.array([min(w, h * r), min(h, w / r)]) * p

    assert_check_fails(ch10.check_box_to_center_scale, shrinking, "only ever enlarged")
    assert_check_fails(ch10.check_box_to_center_scale, lambda b, r, p=1.25: list(good_box(b, r, p)), "tuple")


def test_input_mistakes_get_their_hints():
    assert_check_fails(ch10.check_to_model_input, lambda c, color="rgb": good_input(c, "rgb"), "channel order")
    assert_check_fails(ch10.check_to_model_input,
                       lambda c, color="rgb": good_input(np.asarray(c, float) * 255, color), "divide by 255")

    def reversed_mean(crop, color="rgb"):
        image = np.asarray(crop, np.float64)[..., ::-1] if color == "bgr" else np.asarray(crop, np.float64)
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        if color == "bgr":
            mean, std = mean[::-1], std[::-1]
        return torch.tensor(((image / 255 - mean) / std).transpose(2, 0, 1).copy(), dtype=torch.float32)

    assert_check_fails(ch10.check_to_model_input, reversed_mean, "as listed")
    assert_check_fails(ch10.check_to_model_input, lambda c, color="rgb": good_input(c, color).double(), "float32")
    assert_check_fails(ch10.check_to_model_input, lambda c, color="rgb": good_input(c, color).permute(1, 2, 0), "shape")


def test_inverse_mistakes_get_their_hints():
    def minus_t(matrix):
        inverse = np.linalg.inv(np.asarray(matrix)[:, :2])
        return np.concatenate([inverse, -np.asarray(matrix)[:, 2:]], axis=1)

    def transpose(matrix):
        linear = np.asarray(matrix)[:, :2]
        return np.concatenate([linear.T, -linear.T @ np.asarray(matrix)[:, 2:]], axis=1)

    assert_check_fails(ch10.check_invert_affine, minus_t, "-A^-1 t")
    assert_check_fails(ch10.check_invert_affine, transpose, "transpose")
    assert_check_fails(ch10.check_invert_affine, lambda m: np.vstack([good_invert(m), [0, 0, 1]]), "shape")


@pytest.mark.notebook
def test_the_solved_notebook_gets_full_marks_without_its_experiments(tmp_path):
    """The release with every answer filled in, graded as a submission (experiment cells removed)."""
    from pathlib import Path

    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = Path(__file__).resolve().parents[1] / "solutions" / "10_real_photographs.py"
    path = tmp_path / "10_real_photographs.ipynb"
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved", sandbox=SANDBOX, timeout_notebook=600)
    assert result.points == result.max_points == 6 and not result.flagged, [
        (g.exercise, g.message) for g in result.exercises]
    assert result.bonus_points == result.max_bonus_points == 2, [
        (g.exercise, g.message) for g in result.exercises]
