"""Grading a folder of submitted notebooks into ``grades.csv``, feedback pages and a gradebook.

The threat model
----------------
A submission may be malicious or merely broken.  Whatever it does, it must not

(a) earn points its functions do not earn;
(b) change another student's grade, the gradebook, the CSV, the grader's or the course's
    files, or anything outside its own scratch folder;
(c) read ``solutions/``, the hidden tests, or the course's own answers to the exercises of the
    notebook being graded;
(d) reach the network or see the grader's environment;
(e) outlive its grading (no process survives it);
(f) use more memory in total, over all its processes, than ``memory_mb``;
(g) make earned points disappear: an exercise that passed keeps its points whatever happens
    later in the notebook (a crash, a loop, the kernel killed, the time limit).

How each is met: the notebook's kernel runs in a bubblewrap sandbox
(:mod:`~course_lib.grading.sandbox`: read-only system and course library, no ``solutions/``,
no tests, no repository, no network, its own processes, one memory and process budget, gone
when grading ends) with a copy of the library that holds no hidden tests and no code of this
notebook's answers (:mod:`~course_lib.grading.edition`).  The checks run outside, in the
judge (:mod:`~course_lib.grading.judge`), and call the student's functions through a channel
that carries plain data only (:mod:`~course_lib.grading.channel`), so nothing the student's
code does inside its kernel changes what the judge runs.  Each exercise's result is written
as soon as it is known.

Without bubblewrap (macOS, or a machine without user namespaces) grading refuses to start
unless told ``sandbox=False`` (``--no-sandbox``).  The judge is still outside the kernel and
the answers' code is still left out of the kernel's library, so (a) and (g) hold; but student
code then runs as the grader's user, and (b)-(f) are not enforced: it can read and write your
files (``solutions/`` included), use the network, leave processes behind, and only each
process's own memory is limited.  The CSV and the feedback say that a notebook was graded so.

The steps
---------
``SUBMISSIONS/`` holds one folder per student, named after the student, with the notebooks
named like the released ones (``SUBMISSIONS/ada/01_deeppose.ipynb``).  For every student
and every notebook that any student submitted (or the ones named with ``notebooks=``):

1. **read** the submission; a file that is not a notebook (not JSON, not nbformat 4) is
   reported and scores zero;
2. **assemble** the notebook to run (:func:`assemble_submission`): the student's own cells,
   with every graded cell and visible check taken from the source (an edited one replaced, a
   deleted one put back after its answer cell; both noted); cells tagged ``experiment`` removed;
3. **judge** it: the judge runs the student's cells in the sandboxed kernel with a time limit
   per cell and for the notebook, in the fast profile (``COURSE_FAST=1``, unless the grader's
   environment sets ``COURSE_FAST``), and at each graded cell runs the source's checks against
   the student's function; models a notebook takes from :mod:`course_lib.zoo` are trained (or
   found) by the grader before any kernel starts, since the kernel cannot write the cache;
4. **score** each exercise: its points if its checks passed, else zero, with the check's message;
5. **flag copies** (:mod:`~course_lib.grading.similarity`): an answer whose normalised syntax
   tree equals the course's solution, the course's reference implementation, or another
   student's answer in the same run is flagged with the reason (the points stay);
6. **record** the scores in nbgrader's SQLite gradebook (students, submissions, one grade per
   exercise, the message as the answer cell's comment; a notebook with a problem is
   ``flagged``), write ``feedback/<student>/<notebook>.html`` next to the CSV, and finally
   write the CSV from the gradebook, so that it lists every student ever graded in it.

Grading again replaces a student's scores for that notebook (same input, same result); nothing
else in the gradebook changes.  Manual scores set in nbgrader's formgrader win over the
automatic ones in the CSV.

``grades.csv`` columns (:data:`GRADES_COLUMNS`), rows sorted by notebook, then student, with
exercises in notebook order::

    student, notebook, exercise, points, max_points, status, message, flag

``status`` is ``passed``, ``failed`` or ``not run``; ``message`` says why (the first line of
the error and its hints, on one line, at most 300 characters; the feedback page has it in
full); ``flag`` says why an answer looks copied.  After a notebook's exercises comes a row with
``exercise`` = ``TOTAL``: the sums over the regular exercises (a stretch exercise's points are
bonus points, given in the message as ``bonus: X of N``), ``status`` ``ok`` or ``flagged`` (the notebook was missing
or not a notebook, ran out of time, killed its kernel, had graded cells edited or deleted, has
a copied answer, or was graded without the sandbox: look at it), and in ``message`` the remarks
that explain it.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import nbformat
from nbformat import NotebookNode

from course_lib.grading.authoring import (
    EXPERIMENT_TAG,
    SOLUTION_BEGIN,
    SOLUTION_END,
    Exercise,
    exercises,
    find_sources,
    grading_version,
    is_experiment,
    nbgrader_metadata,
    read_source,
    student_version,
)
from course_lib.grading.sandbox import DEFAULT_MAX_PROCESSES, ResourceGroup, bubblewrap_problem, make_scratch
from course_lib.validation import check_positive

GRADES_COLUMNS = ("student", "notebook", "exercise", "points", "max_points", "status", "message", "flag")
TOTAL = "TOTAL"
PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
NO_SANDBOX_NOTE = ("graded without the sandbox (--no-sandbox): its code ran as the grader's user, with the "
                   "grader's files and network, and only each process's own memory was limited")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ZOO_CALL = re.compile(r"""zoo\.pretrained\(\s*["']([A-Za-z0-9_]+)["']""")


class GradingError(RuntimeError):
    """Grading cannot start (no such folder, no sandbox, a source notebook changed its exercises, ...)."""


@dataclass
class ExerciseGrade:
    """The score of one exercise of one student's notebook."""

    exercise: str
    points: float
    max_points: float
    status: str
    message: str = ""
    answer: str = ""  # the student's answer cell, for the feedback page
    flag: str = ""  # why the answer looks copied ("" if it does not)
    bonus: bool = False  # a stretch exercise: counted in bonus_points, not in points


@dataclass
class NotebookGrade:
    """One student's notebook: its exercises, and what went wrong with the notebook as a whole."""

    student: str
    notebook: str
    exercises: list[ExerciseGrade]
    problem: str = ""
    notes: list[str] = field(default_factory=list)
    peak_memory_mb: float | None = None  # over all the notebook's processes together, where measured

    @property
    def points(self) -> float:
        """Points of the regular exercises (stretch exercises count in :attr:`bonus_points`)."""
        return sum(grade.points for grade in self.exercises if not grade.bonus)

    @property
    def max_points(self) -> float:
        return sum(grade.max_points for grade in self.exercises if not grade.bonus)

    @property
    def bonus_points(self) -> float:
        """Points earned on stretch exercises, on top of :attr:`points`."""
        return sum(grade.points for grade in self.exercises if grade.bonus)

    @property
    def max_bonus_points(self) -> float:
        return sum(grade.max_points for grade in self.exercises if grade.bonus)

    @property
    def flagged(self) -> bool:
        return bool(self.problem or self.notes or any(grade.flag for grade in self.exercises))


@dataclass(frozen=True)
class SourceNotebook:
    """A source notebook as the grader needs it (:meth:`load` reads one)."""

    name: str
    grading: NotebookNode  # stubs + hidden tests: graded cells come from here
    student: NotebookNode  # what students got: to tell whether they edited a graded cell
    exercises: tuple[Exercise, ...]
    path: Path | None = None
    check_module: str = ""  # the module imported `as checks`
    graded_sources: dict = field(default_factory=dict)  # exercise -> its graded cell's code
    solutions: dict = field(default_factory=dict)  # exercise -> the source's answer cell, solved

    @classmethod
    def load(cls, path: str | Path) -> "SourceNotebook":
        """Read ``solutions/NN_name.py`` (or ``.ipynb``); the notebook's name is the file stem.

        Raises:
            SourceError: a graded cell uses a name other than ``checks`` and its exercise's, or
                the notebook has exercises but never imports a check module ``as checks``.
        """
        from course_lib.grading.authoring import SourceError

        path = Path(path)
        instructor = read_source(path)
        grading = grading_version(instructor)
        exercise_list = tuple(exercises(grading))
        graded = {cell.metadata["nbgrader"]["grade_id"][: -len("-tests")]: cell.source for cell in grading.cells
                  if nbgrader_metadata(cell).get("grade")}
        solutions = {cell.metadata["nbgrader"]["grade_id"]: _without_markers(cell.source)
                     for cell in instructor.cells if nbgrader_metadata(cell).get("solution")}
        check_module = _check_module(grading)
        if exercise_list and not check_module:
            raise SourceError(f"{path}: no cell imports the chapter's check module as `checks` "
                              "(from course_lib.grading import chNN_name as checks)")
        for name, text in graded.items():
            names = _free_names(text) - {"checks", name}
            if names:
                raise SourceError(f"{path}: the graded cell of {name} uses {sorted(names)}; a graded cell may use only "
                                  f"`checks` and `{name}`, because the grader runs it outside the student's kernel")
        return cls(path.stem, grading, student_version(instructor), exercise_list, path, check_module, graded,
                   solutions)

    def references(self) -> dict:
        """``{exercise: (Reference, ...)}``: the course's own answers, from the check module's
        ``REFERENCES`` (an exercise it does not list has none)."""
        import importlib

        from course_lib.grading.edition import reference_of

        table = getattr(importlib.import_module(self.check_module), "REFERENCES", {}) if self.check_module else {}
        return {e.name: tuple(reference_of(f) for f in table.get(e.name, ())) for e in self.exercises}


def _without_markers(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if SOLUTION_BEGIN not in line and SOLUTION_END not in line)


def _check_module(nb: NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type != "code" or "checks" not in cell.source:
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if alias.asname == "checks":
                        return f"{node.module}.{alias.name}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname == "checks":
                        return alias.name
    return ""


def _free_names(text: str) -> set[str]:
    import builtins

    tree = ast.parse(text)
    stored = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
    loaded = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return loaded - stored - set(dir(builtins))


# -- a batch ---------------------------------------------------------------------------------------------

def grade_submissions(
    submissions: str | Path,
    *,
    out: str | Path = "grades.csv",
    gradebook: str | Path = "gradebook.db",
    source: str | Path = "solutions",
    timeout_cell: float = 120,
    timeout_notebook: float = 900,
    memory_mb: int = 4096,
    max_processes: int = DEFAULT_MAX_PROCESSES,
    skip_tag: str = EXPERIMENT_TAG,
    jobs: int = 1,
    notebooks: list[str] | None = None,
    sandbox: bool = True,
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
        timeout_cell: seconds one cell (or one exercise's checks) may run.
        timeout_notebook: seconds one notebook may run in all, kernel start included.
        memory_mb: memory limit of a notebook's kernel and every process it starts, together, in
            MB; 0 for none.
        max_processes: processes and threads a notebook may run at once.
        skip_tag: cells with this tag are removed before running (experiments).
        jobs: how many notebooks run at the same time.
        notebooks: grade only these notebook names (default: every notebook a student submitted).
        sandbox: run each kernel in bubblewrap (see the module docstring for what ``False`` gives up).
        log: where progress lines go.

    Raises:
        GradingError: ``submissions`` is not a folder, bubblewrap is missing and ``sandbox`` is
            true, a named notebook has no source, or a source's exercises changed since the
            gradebook recorded submissions.
    """
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise GradingError(f"submissions must be a folder with one folder per student, got {submissions}")
    limits = _limits(timeout_cell, timeout_notebook, memory_mb, max_processes, skip_tag, sandbox)
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    out = Path(out)
    db_url = f"sqlite:///{Path(gradebook).resolve()}"

    sources = {name: SourceNotebook.load(path) for name, path in find_sources(source).items()}
    tasks = _find_tasks(submissions, sources, notebooks, log)
    names = sorted({notebook for _, notebook, _ in tasks})
    _create_gradebook(Path(gradebook))
    for name in names:
        _register_notebook(db_url, sources[name])
    if not sandbox:
        log(f"warning: {NO_SANDBOX_NOTE}.")

    with tempfile.TemporaryDirectory(prefix="pose-course-libraries-") as libraries:
        prepared = {name: prepare_notebook(sources[name], Path(libraries) / name, log=log) for name in names}
        copies = _copy_flags(tasks, sources)

        def run(task: tuple[str, str, Path | None]) -> NotebookGrade:
            student, name, path = task
            try:
                result = grade_notebook(path, sources[name], student=student, library=prepared[name], **limits)
            except Exception as error:  # whatever happened to this notebook, the batch goes on
                problem = f"could not be graded: {type(error).__name__}: {_one_line(str(error), 200)}"
                result = NotebookGrade(student, name, [ExerciseGrade(e.name, 0.0, e.points, NOT_RUN, problem, bonus=e.bonus)
                                                       for e in sources[name].exercises], problem=problem)
            for grade in result.exercises:
                grade.flag = "; ".join(copies.get((student, name, grade.exercise), []))
            return result

        results = []
        feedback_root = out.parent / "feedback"
        with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
            for result in pool.map(run, tasks):
                _record_in_gradebook(db_url, result)
                write_feedback(result, feedback_root / result.student / f"{result.notebook}.html")
                log(_summary_line(result))
                results.append(result)
    rows = gradebook_rows(db_url, {name: [e.name for e in src.exercises] for name, src in sources.items()},
                          {name: {e.name for e in src.exercises if e.bonus} for name, src in sources.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(grades_csv(rows), encoding="utf-8")
    log(f"wrote {out} ({len(rows)} rows) and feedback under {feedback_root}/")
    return results


def _limits(timeout_cell: float, timeout_notebook: float, memory_mb: int, max_processes: int, skip_tag: str,
            sandbox: bool) -> dict:
    check_positive(timeout_cell, "timeout_cell")
    check_positive(timeout_notebook, "timeout_notebook")
    check_positive(memory_mb, "memory_mb", allow_zero=True)
    if int(max_processes) != max_processes or max_processes < 16:
        raise ValueError(f"max_processes must be a whole number >= 16 (a kernel alone runs about 10 threads), "
                         f"got {max_processes!r}")
    if not skip_tag:
        raise ValueError("skip_tag must be a non-empty tag name")
    if sandbox:
        problem = bubblewrap_problem()
        if problem:
            raise GradingError(f"cannot grade in a sandbox: {problem}")
    return {"timeout_cell": timeout_cell, "timeout_notebook": timeout_notebook, "memory_mb": int(memory_mb),
            "max_processes": int(max_processes), "skip_tag": skip_tag, "sandbox": sandbox}


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


def prepare_notebook(source: SourceNotebook, folder: Path, *, log: Callable[[str], None] = print) -> Path:
    """What grading ``source`` needs before any kernel starts: its grading library in ``folder``
    (see :func:`~course_lib.grading.edition.write_grading_library`), and the zoo models its cells
    take, trained into the cache if they are not there (the sandbox cannot write the cache).
    Returns ``folder``."""
    import importlib.util

    from course_lib.grading.edition import write_grading_library

    packages = [Path(importlib.util.find_spec("course_lib").origin).parent]
    top = source.check_module.split(".")[0] if source.check_module else "course_lib"
    if top != "course_lib":
        spec = importlib.util.find_spec(top)
        packages.append(Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin))
    references = [r for refs in source.references().values() for r in refs]
    write_grading_library(folder, packages, references)
    _train_zoo_models(source, log)
    return folder


def _train_zoo_models(source: SourceNotebook, log: Callable[[str], None]) -> None:
    names = sorted({name for cell in source.grading.cells if cell.cell_type == "code" and not is_experiment(cell)
                    for name in _ZOO_CALL.findall(cell.source)})
    if not names:
        return
    code = "import sys\nfrom course_lib import zoo\nfor name in sys.argv[1:]:\n    zoo.pretrained(name, progress=False)"
    environment = dict(os.environ, COURSE_FAST=os.environ.get("COURSE_FAST", "1"))
    completed = subprocess.run([sys.executable, "-c", code, *names], env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        log(f"warning: could not prepare the zoo models {names} for {source.name}: {completed.stderr[-300:]}")


# -- one notebook ---------------------------------------------------------------------------------

def grade_notebook(
    path: str | Path | None,
    source: SourceNotebook,
    *,
    student: str,
    timeout_cell: float = 120,
    timeout_notebook: float = 900,
    memory_mb: int = 4096,
    max_processes: int = DEFAULT_MAX_PROCESSES,
    skip_tag: str = EXPERIMENT_TAG,
    sandbox: bool = True,
    library: Path | None = None,
) -> NotebookGrade:
    """Read, assemble, judge and score one submitted notebook (``path=None``: not submitted).

    ``library``: the grading library made by :func:`prepare_notebook` (made here when not given).
    """
    def zero(message: str) -> list[ExerciseGrade]:
        return [ExerciseGrade(e.name, 0.0, e.points, NOT_RUN, message, bonus=e.bonus) for e in source.exercises]

    limits = _limits(timeout_cell, timeout_notebook, memory_mb, max_processes, skip_tag, sandbox)
    notes = [] if sandbox else [NO_SANDBOX_NOTE]
    if path is None:
        return NotebookGrade(student, source.name, zero("no notebook submitted"), problem="not submitted",
                             notes=notes)
    submitted = _read_submission(Path(path))
    if isinstance(submitted, str):
        return NotebookGrade(student, source.name, zero(submitted), problem=submitted, notes=notes)
    assembled, assembly_notes = assemble_submission(submitted, source, skip_tag=skip_tag)
    with contextlib.ExitStack() as stack:
        if library is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pose-course-library-")))
            library = prepare_notebook(source, folder / "library", log=lambda line: None)
        results, problem, peak = _judge(assembled, source, library, limits)
    grades = []
    answers = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in assembled.cells
               if nbgrader_metadata(cell).get("solution")}
    for exercise in source.exercises:
        found = results.get(exercise.name)
        if found is None:
            why = f"the graded cell did not run: {problem}" if problem else "the graded cell did not run"
            grade = ExerciseGrade(exercise.name, 0.0, exercise.points, NOT_RUN, why)
        else:
            passed = found.get("status") == PASSED
            grade = ExerciseGrade(exercise.name, exercise.points if passed else 0.0, exercise.points,
                                  PASSED if passed else FAILED, str(found.get("message", ""))[:4000])
        grade.answer = answers.get(exercise.name, "")[:20_000]
        grade.bonus = exercise.bonus
        grades.append(grade)
    return NotebookGrade(student, source.name, grades, problem=problem, notes=assembly_notes + notes,
                         peak_memory_mb=peak)


def _read_submission(path: Path) -> NotebookNode | str:
    """The submitted notebook, or why it cannot be read (a sentence)."""
    try:
        if path.stat().st_size > 100 * 2**20:
            raise ValueError("it is larger than 100 MB")
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise ValueError("it has no list of cells (is it a Jupyter notebook of format 4?)")
    except Exception as error:  # not JSON, not a notebook, an unreadable file
        return f"not a valid notebook ({type(error).__name__}: {_one_line(str(error), 120)})"
    # Read leniently: a cell that is not even an object is dropped, anything else is made sense of later.
    cells = [cell for cell in data["cells"] if isinstance(cell, dict)]
    return nbformat.from_dict({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _judge(assembled: NotebookNode, source: SourceNotebook, library: Path, limits: dict
           ) -> tuple[dict, str, float | None]:
    """Run the judge on the assembled notebook; return ``{exercise: result}``, the problem and
    the peak memory."""
    from course_lib.data import DATA_ROOT
    from course_lib.grading.edition import function_source

    references = source.references()
    plan_exercises = [{
        "name": e.name, "points": e.points, "tests_id": e.tests_id, "check_ids": list(e.check_ids),
        "graded_source": source.graded_sources.get(e.name, ""),
        "forbidden": [[r.module, r.qualname, function_source(r)] for r in references.get(e.name, ())],
    } for e in source.exercises]
    scratch = make_scratch()
    judge_dir = Path(tempfile.mkdtemp(prefix="pose-course-judge-"))
    try:
        nbformat.write(assembled, judge_dir / "notebook.ipynb")
        plan = {
            "notebook": str(judge_dir / "notebook.ipynb"), "results": str(judge_dir / "results.jsonl"),
            "scratch": str(scratch), "check_module": source.check_module, "exercises": plan_exercises,
            "timeout_cell": limits["timeout_cell"], "timeout_notebook": limits["timeout_notebook"],
            "memory_mb": limits["memory_mb"], "max_processes": limits["max_processes"],
            "data_root": str(DATA_ROOT), "library": str(library),
            "environment": {"COURSE_FAST": os.environ.get("COURSE_FAST", "1")},
            "sandbox": {"library": str(library), "scratch": str(scratch), "data_root": str(DATA_ROOT)}
            if limits["sandbox"] else None,
        }
        (judge_dir / "plan.json").write_text(json.dumps(plan))
        problem = _run_judge(judge_dir, limits["timeout_notebook"] + 60)
        results, final = _read_results(judge_dir / "results.jsonl")
        if final is None:
            return results, problem, None
        return results, final["problem"], final.get("peak_memory_mb")
    finally:
        _remove_groups(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(judge_dir, ignore_errors=True)


def _run_judge(judge_dir: Path, timeout: float) -> str:
    """Start the judge and wait for it; a sentence if it did not finish cleanly, else ``""``."""
    from course_lib.grading.sandbox import kill_tree

    with open(judge_dir / "judge.log", "wb") as log:
        judge = subprocess.Popen([sys.executable, "-m", "course_lib.grading.judge", str(judge_dir / "plan.json")],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=judge_dir,
                                 start_new_session=True)
        try:
            judge.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(judge.pid)
            judge.wait()
            return f"stopped after {timeout:g} s, the time limit for the whole notebook"
    if judge.returncode != 0:
        tail = (judge_dir / "judge.log").read_bytes()[-600:].decode("utf-8", "replace").strip()
        return f"the judge stopped (exit code {judge.returncode}): {tail or 'no message'}"
    return ""


def _read_results(path: Path) -> tuple[dict, dict | None]:
    """The judge's results file: ``{exercise: line}`` and its last line (the problem and the peak
    memory; ``None`` if the judge never got that far)."""
    results, problem = {}, None
    if not path.exists():
        return results, problem
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut short when the judge was killed
            continue
        if "exercise" in entry:
            results.setdefault(entry["exercise"], entry)
        elif "problem" in entry:
            problem = {"problem": str(entry["problem"]), "peak_memory_mb": entry.get("peak_memory_mb")}
    return results, problem


def _remove_groups(scratch: Path) -> None:
    """Remove the cgroups a killed judge could not remove itself (listed in the scratch)."""
    try:
        listed = json.loads((scratch / "groups.json").read_text())
    except (OSError, ValueError):
        return
    ResourceGroup([Path(p) for p in listed["folders"]], int(listed["version"]), 0, 0).remove()


def _copy_flags(tasks: list[tuple[str, str, Path | None]], sources: dict[str, SourceNotebook]) -> dict:
    """``{(student, notebook, exercise): [reasons]}`` for answers that look copied."""
    from course_lib.grading.edition import function_source
    from course_lib.grading.similarity import find_copies, fingerprint, function_fingerprint

    answers: dict[tuple[str, str], dict[str, str]] = {}
    for student, name, path in tasks:
        submitted = _read_submission(path) if path is not None else "missing"
        if isinstance(submitted, str):
            continue
        for cell in submitted.cells:
            if not isinstance(cell, dict):
                continue
            grade_id = nbgrader_metadata(cell).get("grade_id")
            if cell.get("cell_type") == "code" and grade_id in {e.name for e in sources[name].exercises}:
                text = cell.get("source", "")
                print_ = fingerprint("".join(text) if isinstance(text, list) else str(text), grade_id)
                if print_ is not None:
                    answers.setdefault((name, grade_id), {})[student] = print_
    flags = {}
    for (name, exercise), prints in answers.items():
        references = {}
        solution = fingerprint(sources[name].solutions.get(exercise, ""), exercise)
        if solution is not None:
            references["the course's solution"] = solution
        for reference in sources[name].references().get(exercise, ()):
            print_ = function_fingerprint(function_source(reference))
            if print_ is not None:
                references[f"the course's {reference.name}"] = print_
        for student, reasons in find_copies(prints, references).items():
            flags[(student, name, exercise)] = reasons
    return flags


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



# -- scoring a trusted run ------------------------------------------------------------------------------

def record_reply(cell: NotebookNode, cell_index: int, execute_reply: dict) -> None:
    """nbclient hook for a trusted run (the instructor's notebook, ``make book``): remember whether
    the kernel said the cell succeeded, for :func:`score_notebook`."""
    content = execute_reply.get("content", {})
    status = "ok" if content.get("status") == "ok" else "error"
    cell.metadata["grading"] = {"reply": status}
    if status == "error" and not any(output.output_type == "error" for output in cell.outputs):
        # a timeout: nbclient made the reply up and no error output came from the kernel
        cell.outputs.append(nbformat.v4.new_output(
            "error", ename=content.get("ename", "Error"), evalue=content.get("evalue", ""),
            traceback=list(content.get("traceback", []))))


def score_notebook(executed: NotebookNode | None, exercise_list: tuple[Exercise, ...] | list[Exercise],
                   *, problem: str = "") -> list[ExerciseGrade]:
    """Score each exercise from its graded cell in a notebook that ran its own graded cells: the
    instructor's notebook run by ``make book`` (trusted; submissions are judged instead).

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
        grades[-1].bonus = exercise.bonus
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


_FLAG_LINE, _NOTE_LINE = "[flag] ", "[note] "


def _record_in_gradebook(db_url: str, result: NotebookGrade) -> None:
    """Scores and messages into nbgrader's tables: each exercise's message, and its copy flag on a
    line of its own, as the answer cell's comment; the notebook's notes after the first one's."""
    notebook_notes = ([result.problem] if result.problem else []) + result.notes
    with _open_gradebook(db_url) as gb:
        gb.update_or_create_student(result.student)
        gb.update_or_create_submission(result.notebook, result.student)
        for number, grade in enumerate(result.exercises):
            record = gb.find_grade(f"{grade.exercise}-tests", result.notebook, result.notebook, result.student)
            record.auto_score = float(grade.points)
            record.needs_manual_grade = False
            comment = gb.find_comment(grade.exercise, result.notebook, result.notebook, result.student)
            lines = [f"{grade.status}: {_one_line(_gist(grade.message), 4000)}" if grade.message else grade.status]
            lines += [_FLAG_LINE + grade.flag] if grade.flag else []
            lines += [_NOTE_LINE + _one_line(note, 300) for note in notebook_notes] if number == 0 else []
            comment.auto_comment = "\n".join(lines)
        notebook = gb.find_submission_notebook(result.notebook, result.notebook, result.student)
        notebook.flagged = result.flagged
        gb.db.commit()


def gradebook_rows(db_url: str, exercise_order: dict[str, list[str]] | None = None,
                   bonus: dict[str, set[str]] | None = None) -> list[dict]:
    """Every graded notebook in the gradebook as CSV rows (:data:`GRADES_COLUMNS`), with a
    ``TOTAL`` row after each notebook's exercises.

    ``bonus``: ``{notebook: {stretch exercise, ...}}``; their points stay out of ``TOTAL``'s
    ``points`` and ``max_points`` and are reported in its message (``bonus: X of N``)."""
    exercise_order, bonus = exercise_order or {}, bonus or {}
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
                    total = maximum = extra = extra_max = 0.0
                    notes = []
                    for name in names:
                        grade = grades[f"{name}-tests"]
                        points = float(grade.score or 0.0)
                        max_points = float(grade.max_score)
                        comment = comments.get(name)
                        lines = ((comment.auto_comment or "") if comment is not None else "").split("\n")
                        status, _, message = lines[0].partition(": ")
                        flag = "; ".join(line[len(_FLAG_LINE):] for line in lines if line.startswith(_FLAG_LINE))
                        notes += [line[len(_NOTE_LINE):] for line in lines if line.startswith(_NOTE_LINE)]
                        rows.append(_row(submitted.student.id, notebook.name, name, points, max_points,
                                         status or NOT_RUN, message, flag))
                        if name in bonus.get(notebook.name, ()):
                            extra, extra_max = extra + points, extra_max + max_points
                        else:
                            total, maximum = total + points, maximum + max_points
                    notes += [_bonus_note(extra, extra_max)] if extra_max else []
                    rows.append(_row(submitted.student.id, notebook.name, TOTAL, total, maximum,
                                     "flagged" if submitted.flagged else "ok", "; ".join(notes), ""))
    return rows


def _bonus_note(points: float, max_points: float) -> str:
    return f"bonus: {points:g} of {max_points:g} (stretch exercises, not in the total)"


def _row(student: str, notebook: str, exercise: str, points: float, max_points: float, status: str,
         message: str, flag: str) -> dict:
    return {"student": student, "notebook": notebook, "exercise": exercise, "points": f"{points:g}",
            "max_points": f"{max_points:g}", "status": status, "message": _one_line(_gist(message), 300),
            "flag": _one_line(flag, 300)}


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
    if result.max_bonus_points:
        line += f" + {_bonus_note(result.bonus_points, result.max_bonus_points)}"
    if result.problem:
        line += f"  [{result.problem}]"
    for note in result.notes:
        line += f"  [{note}]"
    return line
