"""The fixture course of the grading tests (``tests/fixtures/grading_course``) and submissions to it.

``01_points`` has three exercises: visible_centroid (2 points), flip_x (3), count_labelled (1).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import nbformat

from course_lib.grading.authoring import read_source, solved_version
from course_lib.grading.grade import SourceNotebook

COURSE = Path(__file__).parent / "fixtures" / "grading_course"
SOURCE = COURSE / "solutions" / "01_points.py"
ANSWERS = ("visible_centroid", "flip_x", "count_labelled")


@functools.cache
def source() -> SourceNotebook:
    return SourceNotebook.load(SOURCE)


@functools.cache
def solutions() -> dict[str, str]:
    """What each answer cell holds for a student who solved it."""
    solved = solved_version(read_source(SOURCE))
    return {cell.id: cell.source for cell in solved.cells if cell.id in ANSWERS}


def notebook(answers: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The released notebook with some answer cells filled in."""
    nb = copy.deepcopy(source().student)
    for cell in nb.cells:
        if answers and cell.id in answers:
            cell.source = answers[cell.id]
    return nb


def solved(**changes: str) -> nbformat.NotebookNode:
    """The solved notebook, with some answers changed."""
    return notebook({**solutions(), **changes})


def insert_after(nb: nbformat.NotebookNode, cell_id: str, *sources: str) -> nbformat.NotebookNode:
    """``nb`` with new code cells right after the cell ``cell_id``."""
    index = [cell.id for cell in nb.cells].index(cell_id)
    for offset, text in enumerate(sources, start=1):
        nb.cells.insert(index + offset, nbformat.v4.new_code_cell(text))
    return nb
