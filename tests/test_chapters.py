"""Every chapter: runs top to bottom in the fast profile with full marks; its student notebook scores zero.

One kernel run per chapter executes the instructor's notebook (solutions and hidden tests,
experiments included) under ``COURSE_FAST=1``, as CI does; the hidden tests then give every
exercise its points.  The released student notebook, graded as a submission (experiments
skipped, graded cells restored from the source), gets zero: every exercise is a stub.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from course_lib.book import execute_chapter
from course_lib.grading.authoring import exercises, read_source
from course_lib.grading.grade import SourceNotebook, grade_notebook, score_notebook
from checking import SANDBOX

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
IDS = [s.stem for s in SOURCES]

REQUIRED_SECTIONS = ("Learning goals", "What the paper reported", "Check your understanding")


def test_every_chapter_of_the_plan_is_there():
    numbers = [s.name[:2] for s in SOURCES]
    assert numbers == [f"{n:02d}" for n in range(11)], numbers


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_chapter_follows_the_course_conventions(source):
    nb = read_source(source)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for section in REQUIRED_SECTIONS:
        assert re.search(rf"^#+ .*{section}", markdown, re.MULTILINE | re.IGNORECASE), f"no '{section}' heading"
    assert 2 <= len(exercises(nb)) <= 5, "a chapter has 2 to 5 graded exercises"
    assert "experiment_table(" in code, "the chapter's experiment must end in report.experiment_table(...)"
    assert any("experiment" in c.metadata.get("tags", []) for c in nb.cells), "no cell is tagged 'experiment'"


@pytest.mark.notebook
@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_solution_runs_in_the_fast_profile_with_full_marks(source):
    run = execute_chapter(source, fast=True, timeout_cell=600)
    print(f"{source.stem}: {run.seconds:.0f} s in the fast profile")
    assert run.error is None, f"{source.name} failed: {run.error}"
    grades = score_notebook(run.notebook, exercises(run.notebook))
    lost = [(g.exercise, g.message) for g in grades if g.points != g.max_points]
    assert not lost, lost


@pytest.mark.notebook
@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_untouched_student_notebook_scores_zero(source):
    student = ROOT / "notebooks" / f"{source.stem}.ipynb"
    result = grade_notebook(student, SourceNotebook.load(source), student="untouched", sandbox=SANDBOX,
                            timeout_notebook=600)
    assert result.max_points > 0
    assert result.points == 0, [(g.exercise, g.points) for g in result.exercises if g.points]
