"""``validate``: a student runs the visible checks of a notebook and gets a summary per exercise.

It runs a copy of the notebook (the file is not changed) in a fresh kernel, in the notebook's
folder, skipping the cells tagged ``experiment`` (exercises never depend on them), and reports,
for each exercise, whether its visible checks and the visible part of its graded cell pass::

    Checked notebooks/01_points.ipynb: visible checks only, experiment cells skipped.

      visible_centroid  passed
      flip_x            FAILED
          CheckFailed: flip_x(keypoints, width=10) ... returned the wrong values.
          ...
      count_labelled    not written yet

    1 of 3 exercises pass their visible checks. Grading also runs hidden tests.

The hidden tests are not in the student's notebook, so passing here is necessary, not
sufficient, for full points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.grading.authoring import EXPERIMENT_TAG, exercises, is_experiment, nbgrader_metadata
from course_lib.grading.kernel import execute_notebook

PASSED, FAILED, NOT_WRITTEN, NOT_RUN = "passed", "FAILED", "not written yet", "did not run"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class ExerciseCheck:
    """The outcome of one exercise's visible checks: ``status`` is one of ``passed``,
    ``FAILED``, ``not written yet``, ``did not run``; ``message`` says what went wrong."""

    exercise: str
    status: str
    message: str = ""
    optional: bool = False  # a stretch exercise: bonus points, not needed for full marks


def validate_notebook(
    path: str | Path,
    *,
    timeout_cell: float = 600,
    timeout_notebook: float = 3600,
    skip_tag: str = EXPERIMENT_TAG,
) -> tuple[list[ExerciseCheck], list[str]]:
    """Run the notebook's visible checks; return one :class:`ExerciseCheck` per exercise and
    notes (a graded cell or visible check was edited, the kernel died, ...).

    Raises:
        FileNotFoundError: no such notebook.
        ValueError: the file is not a notebook, or it has no exercises.
    """
    from nbgrader.utils import compute_checksum

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:
        raise ValueError(f"{path} is not a valid notebook: {type(error).__name__}: {error}") from None
    exercise_list = exercises(nb)
    if not exercise_list:
        raise ValueError(f"{path} has no exercises (no cells marked as answers); is it a course notebook?")
    notes = []
    for cell in nb.cells:
        meta = nbgrader_metadata(cell)
        if meta.get("locked") and meta.get("checksum") and meta.get("checksum") != compute_checksum(cell):
            notes.append(f"cell {meta['grade_id']} was edited; grading uses the original")
    nb.cells = [cell for cell in nb.cells if not is_experiment(cell, skip_tag)]
    run = execute_notebook(nb, timeout_cell=timeout_cell, timeout_notebook=timeout_notebook, memory_mb=0,
                           cwd=path.parent)
    if run.problem:
        notes.append(run.problem)
    cells = {}
    for cell in (run.notebook.cells if run.notebook is not None else []):
        cells.setdefault(nbgrader_metadata(cell).get("grade_id"), cell)
    results = []
    for exercise in exercise_list:
        checked = [cells.get(cell_id) for cell_id in exercise.check_ids + (exercise.tests_id,)]
        checked = [cell for cell in checked if cell is not None]
        results.append(_outcome(exercise.name, checked))
        results[-1].optional = exercise.bonus
    return results, notes


def _outcome(name: str, cells: list) -> ExerciseCheck:
    if not cells:
        return ExerciseCheck(name, NOT_RUN, "this exercise has no visible checks in the notebook")
    for cell in cells:
        reply = cell.metadata.get("grading", {}).get("reply")
        if reply is None:
            return ExerciseCheck(name, NOT_RUN, "the checks did not run (see the lines starting with Note: at the end)")
        if reply == "error":
            error = next((o for o in cell.outputs if o.output_type == "error"), None)
            ename = error.get("ename", "Error") if error is not None else "Error"
            evalue = _ANSI.sub("", str(error.get("evalue", ""))) if error is not None else ""
            if ename == "NotImplementedError" or "is not written yet" in evalue:
                return ExerciseCheck(name, NOT_WRITTEN, "replace `raise NotImplementedError()` with your code")
            if ename == "CheckFailed" and evalue:
                return ExerciseCheck(name, FAILED, evalue)
            return ExerciseCheck(name, FAILED, f"{ename}: {evalue}" if evalue else ename)
    return ExerciseCheck(name, PASSED)


def format_summary(path: str | Path, results: list[ExerciseCheck], notes: list[str]) -> str:
    """The text ``python -m course_lib.grading validate`` prints."""
    width = max(len(r.exercise) for r in results)
    lines = [f"Checked {path}: visible checks only, experiment cells skipped.", ""]
    for result in results:
        optional = "  (optional: stretch exercise, bonus points)" if result.optional else ""
        lines.append(f"  {result.exercise.ljust(width)}  {result.status}{optional}")
        if result.status == FAILED:
            lines += ["      " + line for line in result.message.splitlines()]
    regular = [r for r in results if not r.optional]
    passed = sum(r.status == PASSED for r in regular)
    lines += ["", f"{passed} of {len(regular)} exercises pass their visible checks. Grading also runs hidden tests."]
    stretch = [r for r in results if r.optional]
    if stretch:
        lines.append(f"Optional stretch exercises: {sum(r.status == PASSED for r in stretch)} of {len(stretch)} pass.")
    lines += [f"Note: {note}." for note in notes]
    return "\n".join(lines)
