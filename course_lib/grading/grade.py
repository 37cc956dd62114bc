"""Grading a folder of submitted notebooks into ``grades.csv``, feedback pages and a gradebook.

``SUBMISSIONS/`` holds one folder per student, named after the student, with the notebooks
named like the released ones (``SUBMISSIONS/ada/01_deeppose.ipynb``).  For every student
and every notebook that any student submitted (or the ones named with ``notebooks=``):

1. **read** the submission; a file that is not a notebook (not JSON, not nbformat 4) is
   reported and scores zero;
2. **assemble** the notebook to run (:func:`assemble_submission`): the student's own cells,
   but every graded cell, and every visible check, replaced by the source's version (hidden
   tests back in, points from the source); a graded cell the student deleted is put back
   after the exercise's answer cell; cells tagged ``experiment`` are removed;
3. **run** it in its own kernel with a time limit per cell and per notebook and a memory
   limit, in a scratch folder (:mod:`course_lib.grading.sandbox`), in the fast profile
   (``COURSE_FAST=1``, unless the grader's own environment sets ``COURSE_FAST``): the points
   come from the exercises alone, so a cell that trains a model, or takes one from
   :mod:`course_lib.zoo`, only has to run; the zoo's short recipe is trained once, then cached;
4. **score** each exercise: its graded cell's points if the cell ran and raised nothing,
   else zero (a cell that never ran, because the kernel died or time ran out, scores zero);
5. **record** the scores in nbgrader's SQLite gradebook (students, submissions, one grade per
   exercise, the message as the answer cell's comment; a notebook with a problem is
   ``flagged``), write ``feedback/<student>/<notebook>.html`` next to the CSV, and finally
   write the CSV from the gradebook, so that it lists every student ever graded in it.

Grading again replaces a student's scores for that notebook (same input, same result); nothing
else in the gradebook changes.  Manual scores set in nbgrader's formgrader win over the
automatic ones in the CSV.

``grades.csv`` columns (:data:`GRADES_COLUMNS`), rows sorted by notebook, then student, with
exercises in notebook order::

    student, notebook, exercise, points, max_points, status, message

``status`` is ``passed``, ``failed`` or ``not run``; ``message`` says why (the first line of
the error and its hints, on one line, at most 300 characters; the feedback page has it in
full).  After a notebook's exercises comes a row with ``exercise`` = ``TOTAL``: the sums, and
``status`` ``ok`` or ``flagged`` (the notebook was missing or not a notebook, ran out of time,
killed its kernel, or had graded cells edited or deleted: look at it).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import os
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import nbformat
from nbformat import NotebookNode

from course_lib.grading.authoring import (
    EXPERIMENT_TAG,
    Exercise,
    exercises,
    find_sources,
    grading_version,
    is_experiment,
    nbgrader_metadata,
    read_source,
    student_version,
)
from course_lib.grading.sandbox import execute_notebook
from course_lib.validation import check_positive

GRADES_COLUMNS = ("student", "notebook", "exercise", "points", "max_points", "status", "message")
TOTAL = "TOTAL"
PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class GradingError(RuntimeError):
    """Grading cannot start (no such folder, a source notebook changed its exercises, ...)."""


@dataclass
class ExerciseGrade:
    """The score of one exercise of one student's notebook."""

    exercise: str
    points: float
    max_points: float
    status: str
    message: str = ""
    answer: str = ""  # the student's answer cell, for the feedback page


@dataclass
class NotebookGrade:
    """One student's notebook: its exercises, and what went wrong with the notebook as a whole."""

    student: str
    notebook: str
    exercises: list[ExerciseGrade]
    problem: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> float:
        return sum(grade.points for grade in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(grade.max_points for grade in self.exercises)

    @property
    def flagged(self) -> bool:
        return bool(self.problem or self.notes)


@dataclass(frozen=True)
class SourceNotebook:
    """A source notebook as the grader needs it (:meth:`load` reads one)."""

    name: str
    grading: NotebookNode  # stubs + hidden tests: graded cells come from here
    student: NotebookNode  # what students got: to tell whether they edited a graded cell
    exercises: tuple[Exercise, ...]

    @classmethod
    def load(cls, path: str | Path) -> "SourceNotebook":
        """Read ``solutions/NN_name.py`` (or ``.ipynb``); the notebook's name is the file stem."""
        instructor = read_source(path)
        grading = grading_version(instructor)
        return cls(Path(path).stem, grading, student_version(instructor), tuple(exercises(grading)))


def grade_submissions(
    submissions: str | Path,
    *,
    out: str | Path = "grades.csv",
    gradebook: str | Path = "gradebook.db",
    source: str | Path = "solutions",
    timeout_cell: float = 120,
    timeout_notebook: float = 900,
    memory_mb: int = 4096,
    skip_tag: str = EXPERIMENT_TAG,
    jobs: int = 1,
    notebooks: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[NotebookGrade]:
    """Grade every student folder in ``submissions``; write ``out`` (CSV), feedback pages next
    to it, and update the SQLite ``gradebook``.  Returns the grades of this run.

    Args:
        submissions: folder with one sub-folder of notebooks per student.
        out: the CSV to write; feedback goes to ``<out's folder>/feedback/<student>/<notebook>.html``.
        gradebook: nbgrader SQLite gradebook (created if missing, kept and updated otherwise).
        source: the folder of source notebooks (``solutions/``): graded cells and points come
            from there, never from the submission.
        timeout_cell: seconds one cell may run.
        timeout_notebook: seconds one notebook may run in all, kernel start included.
        memory_mb: memory (address space) limit of the kernel, in MB; 0 for none.
        skip_tag: cells with this tag are removed before running (experiments).
        jobs: how many notebooks run at the same time.
        notebooks: grade only these notebook names (default: every notebook a student submitted).
        log: where progress lines go.

    Raises:
        GradingError: ``submissions`` is not a folder, a named notebook has no source, or a
            source's exercises changed since the gradebook recorded submissions.
    """
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise GradingError(f"submissions must be a folder with one folder per student, got {submissions}")
    check_positive(timeout_cell, "timeout_cell")
    check_positive(timeout_notebook, "timeout_notebook")
    check_positive(memory_mb, "memory_mb", allow_zero=True)
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    if not skip_tag:
        raise ValueError("skip_tag must be a non-empty tag name")
    out = Path(out)
    db_url = f"sqlite:///{Path(gradebook).resolve()}"

    sources = {name: SourceNotebook.load(path) for name, path in find_sources(source).items()}
    tasks = _find_tasks(submissions, sources, notebooks, log)
    _create_gradebook(Path(gradebook))
    for name in sorted({notebook for _, notebook, _ in tasks}):
        _register_notebook(db_url, sources[name])

    def run(task: tuple[str, str, Path | None]) -> NotebookGrade:
        student, name, path = task
        try:
            return grade_notebook(path, sources[name], student=student, timeout_cell=timeout_cell,
                                  timeout_notebook=timeout_notebook, memory_mb=int(memory_mb), skip_tag=skip_tag)
        except Exception as error:  # whatever happened to this notebook, the batch goes on
            problem = f"could not be graded: {type(error).__name__}: {_one_line(str(error), 200)}"
            return NotebookGrade(student, name, [ExerciseGrade(e.name, 0.0, e.points, NOT_RUN, problem)
                                                 for e in sources[name].exercises], problem=problem)

    results = []
    feedback_root = out.parent / "feedback"
    with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
        for result in pool.map(run, tasks):
            _record_in_gradebook(db_url, result)
            write_feedback(result, feedback_root / result.student / f"{result.notebook}.html")
            log(_summary_line(result))
            results.append(result)
    rows = gradebook_rows(db_url, {name: [e.name for e in src.exercises] for name, src in sources.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(grades_csv(rows), encoding="utf-8")
    log(f"wrote {out} ({len(rows)} rows) and feedback under {feedback_root}/")
    return results


def _find_tasks(submissions: Path, sources: dict[str, SourceNotebook], notebooks: list[str] | None,
                log: Callable[[str], None]) -> list[tuple[str, str, Path | None]]:
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    for stray in sorted(p for p in submissions.iterdir() if p.is_file() and not p.name.startswith(".")):
        log(f"skipped {stray}: put each student's notebooks in a folder named after the student")
    submitted = {student.name: {p.stem: p for p in sorted(student.glob("*.ipynb"))} for student in students}
    for student, files in submitted.items():
        for name in sorted(set(files) - set(sources)):
            log(f"skipped {student}/{name}.ipynb: no source notebook {name} in the source folder")
    if notebooks:
        unknown = sorted(set(notebooks) - set(sources))
        if unknown:
            raise GradingError(f"no source notebook for {unknown}; the sources are {sorted(sources)}")
        names = sorted(set(notebooks))
    else:
        names = sorted({name for files in submitted.values() for name in files if name in sources})
    return [(student, name, submitted[student].get(name)) for student in sorted(submitted) for name in names]


# -- one notebook ---------------------------------------------------------------------------------

def grade_notebook(
    path: str | Path | None,
    source: SourceNotebook,
    *,
    student: str,
    timeout_cell: float = 120,
    timeout_notebook: float = 900,
    memory_mb: int = 4096,
    skip_tag: str = EXPERIMENT_TAG,
) -> NotebookGrade:
    """Read, assemble, run and score one submitted notebook (``path=None``: not submitted)."""
    def zero(message: str) -> list[ExerciseGrade]:
        return [ExerciseGrade(e.name, 0.0, e.points, NOT_RUN, message) for e in source.exercises]

    if path is None:
        return NotebookGrade(student, source.name, zero("no notebook submitted"), problem="not submitted")
    try:
        submitted = nbformat.reads(Path(path).read_text(encoding="utf-8", errors="replace"), as_version=4)
        if not isinstance(submitted.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as error:  # not JSON, not a notebook, an unreadable file
        problem = f"not a valid notebook ({type(error).__name__}: {_one_line(str(error), 120)})"
        return NotebookGrade(student, source.name, zero(problem), problem=problem)
    assembled, notes = assemble_submission(submitted, source, skip_tag=skip_tag)
    run = execute_notebook(assembled, timeout_cell=timeout_cell, timeout_notebook=timeout_notebook,
                           memory_mb=memory_mb, environment={"COURSE_FAST": os.environ.get("COURSE_FAST", "1")})
    grades = score_notebook(run.notebook, source.exercises, problem=run.problem)
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in assembled.cells
               if nbgrader_metadata(cell).get("solution")}
    for grade in grades:
        grade.answer = answers.get(grade.exercise, "")[:20_000]
    return NotebookGrade(student, source.name, grades, problem=run.problem, notes=notes)


def assemble_submission(submitted: NotebookNode, source: SourceNotebook, *, skip_tag: str = EXPERIMENT_TAG
                        ) -> tuple[NotebookNode, list[str]]:
    """The notebook to run: the student's cells with the graded cells and visible checks of the
    source, experiment cells removed.  Returns it and notes on what had to be restored.

    * a cell whose ``grade_id`` names a graded cell or visible check of the source gets the
      source's content and metadata (hidden tests and points included), whatever the student
      wrote there; if the student had changed it, a note says so;
    * a graded cell the student deleted (or whose metadata they removed) is put back after the
      exercise's answer cell (at the end if that is gone too), with a note;
    * a cell tagged ``skip_tag``, or with the id of one of the source's experiment cells, is
      removed; any other nbgrader metadata (a cell claiming to be graded) is dropped;
    * outputs are cleared and cell ids renumbered (a copied cell would repeat an id).
    """
    locked = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in source.grading.cells
              if nbgrader_metadata(cell).get("locked")}
    released = {cell.id: cell.source for cell in source.student.cells}
    answers = {e.answer_id for e in source.exercises}
    experiment_ids = {cell.id for cell in source.grading.cells if is_experiment(cell, EXPERIMENT_TAG)}
    notes: list[str] = []
    cells: list[NotebookNode] = []
    seen: set[str] = set()
    for cell in submitted.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        if is_experiment(cell, skip_tag) or cell.get("id") in experiment_ids:
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        grade_id = nbgrader_metadata(cell).get("grade_id")
        grade_id = grade_id if isinstance(grade_id, str) else None
        if grade_id in locked and grade_id not in seen:
            seen.add(grade_id)
            if text != released.get(grade_id, text) and grade_id.endswith("-tests"):
                notes.append(f"the graded cell of {grade_id[: -len('-tests')]} was edited; the original was used")
            cells.append(_fresh_cell(locked[grade_id].cell_type, locked[grade_id].source,
                                     locked[grade_id].metadata))
        elif grade_id in answers and grade_id not in seen and cell.get("cell_type") == "code":
            seen.add(grade_id)
            cells.append(_fresh_cell("code", text, {"nbgrader": _answer_metadata(source, grade_id)}))
        else:
            cells.append(_fresh_cell(cell.get("cell_type"), text, {}))
    for exercise in source.exercises:
        if exercise.tests_id in seen:
            continue
        notes.append(f"the graded cell of {exercise.name} was missing; the original was put back")
        original = locked[exercise.tests_id]
        restored = _fresh_cell("code", original.source, original.metadata)
        after = [i for i, c in enumerate(cells)
                 if nbgrader_metadata(c).get("grade_id") in ((exercise.answer_id,) + exercise.check_ids)]
        cells.insert(after[-1] + 1 if after else len(cells), restored)
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(source.grading.metadata))
    nb.cells = cells
    for number, cell in enumerate(nb.cells):
        cell.id = f"cell-{number}"
    return nb, notes


def _answer_metadata(source: SourceNotebook, answer_id: str) -> dict:
    for cell in source.grading.cells:
        if nbgrader_metadata(cell).get("grade_id") == answer_id:
            return copy.deepcopy(dict(cell.metadata["nbgrader"]))
    raise KeyError(answer_id)


def _fresh_cell(cell_type: str, text: str, metadata: dict) -> NotebookNode:
    metadata = copy.deepcopy(dict(metadata))
    if cell_type == "code":
        return nbformat.v4.new_code_cell(text, metadata=metadata)
    if cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(text, metadata=metadata)
    return nbformat.v4.new_raw_cell(text, metadata=metadata)


def score_notebook(executed: NotebookNode | None, exercise_list: tuple[Exercise, ...] | list[Exercise],
                   *, problem: str = "") -> list[ExerciseGrade]:
    """Score each exercise from its graded cell in the executed notebook.

    Passed (full points) only if the kernel answered ``ok`` for the graded cell; an error (a
    failed check, a timeout, ``SystemExit``) gives zero with the error as the message; a cell
    that never ran gives zero with ``problem`` (or "did not run") as the message.  Output on
    stderr (warnings) does not count against the student.
    """
    graded = {}
    for cell in (executed.cells if executed is not None else []):
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if nbgrader_metadata(cell).get("grade") and grade_id not in graded:
            graded[grade_id] = cell
    grades = []
    for exercise in exercise_list:
        cell = graded.get(exercise.tests_id)
        reply = cell.metadata.get("grading", {}).get("reply") if cell is not None else None
        if reply == "ok":
            grades.append(ExerciseGrade(exercise.name, exercise.points, exercise.points, PASSED))
        elif reply == "error":
            grades.append(ExerciseGrade(exercise.name, 0.0, exercise.points, FAILED, _error_of(cell)))
        else:
            why = f"the graded cell did not run: {problem}" if problem else "the graded cell did not run"
            grades.append(ExerciseGrade(exercise.name, 0.0, exercise.points, NOT_RUN, why))
    return grades


def _error_of(cell: NotebookNode) -> str:
    """The error of a graded cell as a message (the traceback would show the hidden tests)."""
    for output in cell.outputs:
        if output.output_type == "error":
            ename, evalue = output.get("ename", "Error"), _ANSI.sub("", str(output.get("evalue", "")))
            if ename == "NotImplementedError":
                message = "not written yet: the function still raises NotImplementedError"
            elif ename in ("CellTimeoutError", "KeyboardInterrupt"):  # interrupted at the time limit
                message = "the graded cell ran past the time limit for one cell and was stopped"
            elif ename == "CheckFailed" and evalue:  # the check's own message says it all
                message = evalue
            else:
                message = f"{ename}: {evalue}" if evalue else ename
            return message[:4000]
    return "the graded cell failed"


# -- the gradebook and the CSV ----------------------------------------------------------------------

@contextlib.contextmanager
def _open_gradebook(db_url: str) -> Iterator:
    """nbgrader's Gradebook, without the warnings its queries raise under SQLAlchemy 2."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(db_url) as gb:
            yield gb


def _create_gradebook(path: Path) -> None:
    """Create an empty nbgrader gradebook at ``path`` unless one is there.

    nbgrader runs the ``alembic`` command to stamp a new database; it sits next to this
    Python, which is not on ``PATH`` when the virtual environment is not activated.
    """
    from nbgrader.api import Gradebook

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), saved_path])
    try:
        Gradebook(f"sqlite:///{path.resolve()}").close()
    finally:
        os.environ["PATH"] = saved_path


def _register_notebook(db_url: str, source: SourceNotebook) -> None:
    """Record the notebook's exercises and points in the gradebook (nbgrader's SaveCells)."""
    from nbgrader.preprocessors import SaveCells
    from sqlalchemy.exc import SAWarning

    with _open_gradebook(db_url) as gb:
        gb.update_or_create_assignment(source.name)
    resources = {"nbgrader": {"notebook": source.name, "assignment": source.name, "db_url": db_url}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)
            SaveCells().preprocess(copy.deepcopy(source.grading), resources)
    except RuntimeError as error:
        raise GradingError(
            f"{source.name}: {error}. Its exercises changed since the gradebook recorded submissions; "
            "grade into a new gradebook (--gradebook NEW.db) or restore the old exercises.") from None


def _record_in_gradebook(db_url: str, result: NotebookGrade) -> None:
    with _open_gradebook(db_url) as gb:
        gb.update_or_create_student(result.student)
        gb.update_or_create_submission(result.notebook, result.student)
        for grade in result.exercises:
            record = gb.find_grade(f"{grade.exercise}-tests", result.notebook, result.notebook, result.student)
            record.auto_score = float(grade.points)
            record.needs_manual_grade = False
            comment = gb.find_comment(grade.exercise, result.notebook, result.notebook, result.student)
            comment.auto_comment = f"{grade.status}: {grade.message}" if grade.message else grade.status
        notebook = gb.find_submission_notebook(result.notebook, result.notebook, result.student)
        notebook.flagged = result.flagged
        gb.db.commit()


def gradebook_rows(db_url: str, exercise_order: dict[str, list[str]] | None = None) -> list[dict]:
    """Every graded notebook in the gradebook as CSV rows (:data:`GRADES_COLUMNS`), with a
    ``TOTAL`` row after each notebook's exercises."""
    exercise_order = exercise_order or {}
    rows: list[dict] = []
    with _open_gradebook(db_url) as gb:
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            for notebook in sorted(assignment.notebooks, key=lambda n: n.name):
                names = [cell.name[: -len("-tests")] for cell in notebook.grade_cells if cell.name.endswith("-tests")]
                order = exercise_order.get(notebook.name, [])
                names.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
                for submitted in sorted(notebook.submissions, key=lambda s: s.student.id):
                    grades = {grade.name: grade for grade in submitted.grades}
                    comments = {comment.name: comment for comment in submitted.comments}
                    total = maximum = 0.0
                    for name in names:
                        grade = grades[f"{name}-tests"]
                        points = float(grade.score or 0.0)
                        max_points = float(grade.max_score)
                        comment = comments.get(name)
                        text = (comment.auto_comment or "") if comment is not None else ""
                        status, _, message = text.partition(": ")
                        rows.append(_row(submitted.student.id, notebook.name, name, points, max_points,
                                         status or NOT_RUN, message))
                        total, maximum = total + points, maximum + max_points
                    rows.append(_row(submitted.student.id, notebook.name, TOTAL, total, maximum,
                                     "flagged" if submitted.flagged else "ok", ""))
    return rows


def _row(student: str, notebook: str, exercise: str, points: float, max_points: float, status: str,
         message: str) -> dict:
    return {"student": student, "notebook": notebook, "exercise": exercise, "points": f"{points:g}",
            "max_points": f"{max_points:g}", "status": status, "message": _one_line(_gist(message), 300)}


def _gist(message: str) -> str:
    """The first line of a check's message and its hints, without the printed arrays."""
    lines = message.splitlines()
    return "\n".join(lines[:1] + [line for line in lines[1:] if line.startswith("Hint:")])


def grades_csv(rows: list[dict]) -> str:
    """The CSV text of ``rows`` (header :data:`GRADES_COLUMNS`, ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=GRADES_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _one_line(text: str, limit: int) -> str:
    text = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- feedback -----------------------------------------------------------------------------------------

def write_feedback(result: NotebookGrade, path: str | Path) -> None:
    """Write the student's feedback page: score per exercise, what failed and why, their answers.

    The hidden tests' code is not shown, only their messages.
    """
    import jinja2
    from importlib.resources import files

    template_text = files("course_lib.grading").joinpath("templates", "feedback.html.j2").read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    page = environment.from_string(template_text).render(result=result, fmt=lambda x: f"{x:g}",
                                                         PASSED=PASSED, FAILED=FAILED)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def _summary_line(result: NotebookGrade) -> str:
    line = f"{result.student}/{result.notebook}: {result.points:g} / {result.max_points:g}"
    if result.problem:
        line += f"  [{result.problem}]"
    for note in result.notes:
        line += f"  [{note}]"
    return line
