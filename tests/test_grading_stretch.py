"""Stretch exercises: ``# bonus: N`` marks an exercise whose points are bonus points.

The fixture ``tests/fixtures/grading_course/stretch/02_stretch.py`` has one regular exercise
(count_labelled, 2 points) and one stretch exercise (flip_y, 1 bonus point).
"""

from __future__ import annotations

import copy
import csv
import os

import nbformat
import pytest

from course_lib.grading.authoring import (
    STRETCH_TAG,
    SourceError,
    exercises,
    read_source,
    solved_version,
    student_version,
)
from course_lib.grading.grade import TOTAL, grade_submissions
from course_lib.grading.validate import ExerciseCheck, format_summary
from checking import SANDBOX
from grading_course import COURSE

STRETCH = COURSE / "stretch"
SOURCE = STRETCH / "02_stretch.py"


def test_the_bonus_line_makes_a_stretch_exercise_tagged_in_every_edition():
    instructor = read_source(SOURCE)
    found = {e.name: e for e in exercises(instructor)}
    assert (found["count_labelled"].bonus, found["flip_y"].bonus) == (False, True)
    assert (found["count_labelled"].points, found["flip_y"].points) == (2, 1)
    student = student_version(instructor)
    assert {e.name: e.bonus for e in exercises(student)} == {"count_labelled": False, "flip_y": True}
    answer = next(cell for cell in student.cells if cell.id == "flip_y")
    assert "raise NotImplementedError()" in answer.source and "flipped" not in answer.source
    assert STRETCH_TAG in answer.metadata["tags"]
    assert "BEGIN HIDDEN TESTS" not in next(cell for cell in student.cells if cell.id == "flip_y-tests").source


def test_points_and_bonus_in_one_graded_cell_is_an_error(tmp_path):
    text = SOURCE.read_text().replace("# bonus: 1", "# bonus: 1\n# points: 1")
    (tmp_path / "bad.py").write_text(text)
    with pytest.raises(SourceError, match="not both"):
        read_source(tmp_path / "bad.py")


def test_validate_lists_stretch_exercises_as_optional():
    results = [ExerciseCheck("count_labelled", "passed"), ExerciseCheck("flip_y", "not written yet", optional=True)]
    text = format_summary("02_stretch.ipynb", results, [])
    assert "flip_y" in text and "optional" in text.split("flip_y", 1)[1].splitlines()[0]
    assert "1 of 1 exercises pass" in text and "Optional stretch exercises: 0 of 1 pass" in text


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if not SANDBOX:
        pytest.skip("needs bubblewrap, which grading uses by default")
    root = tmp_path_factory.mktemp("stretch")
    instructor = read_source(SOURCE)
    solution = solved_version(instructor)
    regular_only = copy.deepcopy(solution)
    stub = next(cell for cell in student_version(instructor).cells if cell.id == "flip_y").source
    next(cell for cell in regular_only.cells if cell.id == "flip_y").source = stub
    for student, nb in {"solution": solution, "untouched": student_version(instructor),
                        "regular_only": regular_only}.items():
        (root / "in" / student).mkdir(parents=True)
        nbformat.write(nb, root / "in" / student / "02_stretch.ipynb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(COURSE), os.environ.get("PYTHONPATH")])))
        patch.syspath_prepend(str(COURSE))
        results = grade_submissions(root / "in", out=root / "grades.csv", gradebook=root / "gradebook.db",
                                    source=STRETCH, timeout_cell=60, timeout_notebook=240, log=lambda line: None)
    rows = list(csv.DictReader((root / "grades.csv").open()))
    return {r.student: r for r in results}, {(r["student"], r["exercise"]): r for r in rows}


def test_the_solution_gets_full_regular_marks_and_the_bonus(graded):
    results, rows = graded
    solution = results["solution"]
    assert (solution.points, solution.max_points) == (2, 2)
    assert (solution.bonus_points, solution.max_bonus_points) == (1, 1)
    total = rows[("solution", TOTAL)]
    assert (total["points"], total["max_points"]) == ("2", "2") and "bonus: 1 of 1" in total["message"]
    assert rows[("solution", "flip_y")]["points"] == "1"


def test_the_untouched_notebook_gets_nothing(graded):
    results, rows = graded
    untouched = results["untouched"]
    assert (untouched.points, untouched.bonus_points) == (0, 0)
    assert rows[("untouched", TOTAL)]["points"] == "0" and "bonus: 0 of 1" in rows[("untouched", TOTAL)]["message"]


def test_ignoring_the_stretch_exercise_still_gives_full_marks(graded):
    results, rows = graded
    regular = results["regular_only"]
    assert (regular.points, regular.max_points, regular.bonus_points) == (2, 2, 0)
    total = rows[("regular_only", TOTAL)]
    assert (total["points"], total["max_points"]) == ("2", "2") and "bonus: 0 of 1" in total["message"]
