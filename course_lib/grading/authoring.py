"""Reading the instructor's source notebooks and turning their markers into nbgrader metadata.

A source notebook in ``solutions/`` is plain text (jupytext percent ``.py``) or ``.ipynb``.
Its author writes markers, never nbgrader's JSON metadata; this module infers the metadata:

====================================  ===========================================================
cell                                  becomes
====================================  ===========================================================
code with ``### BEGIN SOLUTION``      the exercise's **answer** cell (nbgrader "autograded
                                      answer"); the exercise is named after the first ``def``
                                      (or ``class``) in the cell, or an ``# exercise: NAME`` line
code cells after it, before the       **visible checks**: read-only in the student notebook,
graded cell                           run by ``validate``, never graded
code with ``# points: N`` (and        the exercise's **graded** cell (nbgrader "autograder
usually ``### BEGIN HIDDEN TESTS``)   tests"), worth N points; read-only for students
code with ``# bonus: N`` instead of   the graded cell of a **stretch exercise**: worth N *bonus*
``# points: N``                       points; its answer and graded cells get the tag ``stretch``
code tagged ``experiment``            an **experiment**: kept for students, skipped by the grader
anything else                         left as it is
====================================  ===========================================================

Stretch exercises go beyond the chapter's core (a third cascade stage, a sub-pixel refinement,
...).  They are written like any exercise (answer, visible checks, graded cell) and released
with a stub like any exercise, but their graded cell says ``# bonus: N``.  Grading reports their
points apart from the regular ones (the ``TOTAL`` row's ``points`` / ``max_points`` hold the
regular exercises only; its message adds ``bonus: X of N``), so they never lower a grade: a
notebook that solves every regular exercise and no stretch exercise has full marks.
``validate`` lists them as optional.

Three versions of a notebook come out of one source:

* the **instructor** version (:func:`read_source`): solutions and hidden tests in place;
* the **student** version (:func:`student_version`): solution regions replaced by
  ``raise NotImplementedError()`` stubs, hidden tests removed; what ``release`` writes;
* the **grading** version (:func:`grading_version`): stubs, but hidden tests in place; the
  grader restores graded cells from it and records it in the gradebook;
* and, for tests, the **solved** version (:func:`solved_version`): the student notebook with
  every answer filled in from the source, as a perfect student would submit it.

Cell ids are deterministic: an exercise's cells are named after it (``NAME``,
``NAME-check``, ``NAME-tests``); every other cell gets ``cell-`` and a hash of its content,
so editing one cell changes one id and releasing twice gives the same bytes.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

SOLUTION_BEGIN = "BEGIN SOLUTION"
SOLUTION_END = "END SOLUTION"
HIDDEN_BEGIN = "BEGIN HIDDEN TESTS"
HIDDEN_END = "END HIDDEN TESTS"
EXPERIMENT_TAG = "experiment"
STRETCH_TAG = "stretch"
SOURCE_SUFFIXES = (".py", ".ipynb")

# The kernel that `make lab` registers (`ipykernel install --sys-prefix --name pose-course`).
KERNELSPEC = {"name": "pose-course", "display_name": "Pose course (.venv)", "language": "python"}
# Cell metadata that survives into the released notebooks; the rest (jupytext's layout hints,
# execution timings, hand-written nbgrader metadata) is dropped and, where needed, inferred.
KEPT_CELL_METADATA = ("tags", "jupyter")

_POINTS_LINE = re.compile(r"^\s*#\s*points\s*:\s*(\S+)\s*$", re.MULTILINE)
_BONUS_LINE = re.compile(r"^\s*#\s*bonus\s*:\s*(\S+)\s*$", re.MULTILINE)
_EXERCISE_LINE = re.compile(r"^\s*#\s*exercise\s*:\s*(\S+)\s*$", re.MULTILINE)
_DEFINITION = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z_]\w{0,50}$")


class SourceError(ValueError):
    """A source notebook breaks an authoring rule; the message names the file and the cell."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: the function the student writes and the cells that test it.

    ``answer_id``, ``check_ids`` and ``tests_id`` are nbgrader ``grade_id`` values (and cell ids).
    """

    name: str
    answer_id: str
    check_ids: tuple[str, ...]
    tests_id: str
    points: float
    bonus: bool = False  # a stretch exercise: its points are bonus points


def find_sources(source_dir: str | Path) -> dict[str, Path]:
    """Map notebook name (file stem) to source path for every ``.py`` / ``.ipynb`` in ``source_dir``.

    A missing or empty folder gives ``{}``: a course with no chapters yet releases nothing.
    """
    source_dir = Path(source_dir)
    if not source_dir.exists():
        return {}
    if not source_dir.is_dir():
        raise NotADirectoryError(f"source must be a folder of source notebooks, got the file {source_dir}")
    sources: dict[str, Path] = {}
    for path in sorted(source_dir.iterdir()):
        if path.suffix not in SOURCE_SUFFIXES or path.name.startswith((".", "_")) or not path.is_file():
            continue
        if path.stem in sources:
            raise SourceError(f"two sources for notebook {path.stem!r}: {sources[path.stem].name} and {path.name}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", path.stem):
            raise SourceError(f"{path}: notebook names may hold letters, digits, '_' and '-' only")
        sources[path.stem] = path
    return sources


def read_source(path: str | Path) -> NotebookNode:
    """Read a source notebook and return its instructor version with nbgrader metadata inferred.

    Raises:
        SourceError: a marker rule is broken (unbalanced markers, a graded cell without points,
            two exercises with one name, ...); the message names the file and the cell number.
    """
    path = Path(path)
    if path.suffix == ".py":
        import jupytext

        text = path.read_text(encoding="utf-8")
        if "# %%" not in text:
            raise SourceError(f"{path}: a .py source must be in jupytext's percent format (cells start with '# %%')")
        raw = jupytext.reads(text, fmt="py:percent")
    elif path.suffix == ".ipynb":
        raw = nbformat.read(path, as_version=4)
    else:
        raise SourceError(f"{path}: a source notebook must be a .py (jupytext percent) or .ipynb file")
    cells = [_clean_cell(cell) for cell in raw.cells]
    _infer_exercises(cells, path.name)
    _assign_ids(cells)
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata = NotebookNode(
        kernelspec=dict(KERNELSPEC),
        language_info={"name": "python"},
        pose_course={"source": path.name},
    )
    nbformat.validate(nb)
    return nb


def _clean_cell(cell: NotebookNode) -> NotebookNode:
    metadata = {key: copy.deepcopy(cell.metadata[key]) for key in KEPT_CELL_METADATA if key in cell.metadata}
    if cell.cell_type == "code":
        return nbformat.v4.new_code_cell(cell.source, metadata=metadata)
    if cell.cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(cell.source, metadata=metadata)
    return nbformat.v4.new_raw_cell(cell.source, metadata=metadata)


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _infer_exercises(cells: list[NotebookNode], where: str) -> None:
    """Set nbgrader metadata on answer, visible-check and graded cells (in place)."""
    names: set[str] = set()
    current: dict | None = None  # the exercise being read: name, number of checks, graded?
    for number, cell in enumerate(cells, start=1):
        here = f"{where}, cell {number}"
        source = cell.source
        has_solution = SOLUTION_BEGIN in source or SOLUTION_END in source
        has_hidden = HIDDEN_BEGIN in source or HIDDEN_END in source
        points_match, bonus = _graded_marker(source, here) if cell.cell_type == "code" else (None, False)
        if cell.cell_type != "code":
            if has_solution or has_hidden:
                raise SourceError(f"{here}: solution and hidden-test markers belong in code cells, "
                                  f"found them in a {cell.cell_type} cell")
            continue
        if EXPERIMENT_TAG in cell.metadata.get("tags", []) and (has_solution or has_hidden or points_match):
            raise SourceError(f"{here}: an experiment cell (tag {EXPERIMENT_TAG!r}) cannot hold an answer or "
                              "graded tests: the grader skips experiment cells")
        if has_solution:
            if has_hidden or points_match:
                raise SourceError(f"{here}: one cell cannot be both an answer (BEGIN SOLUTION) and graded "
                                  "tests (BEGIN HIDDEN TESTS / '# points:'); split it in two")
            _check_markers(source, SOLUTION_BEGIN, SOLUTION_END, here)
            if current is not None and not current["graded"]:
                raise SourceError(f"{here}: exercise {current['name']!r} has no graded cell (a code cell with "
                                  "'# points: N') before the next exercise starts")
            name = _exercise_name(source, here)
            if name in names:
                raise SourceError(f"{here}: a second exercise named {name!r}; exercise names must be unique")
            names.add(name)
            cell.metadata["nbgrader"] = _nbgrader(name, grade=False, solution=True, locked=False)
            current = {"name": name, "checks": 0, "graded": False, "answer": cell}
        elif has_hidden or points_match:
            if current is None or current["graded"]:
                raise SourceError(f"{here}: graded tests must follow an answer cell (a code cell with "
                                  "'### BEGIN SOLUTION'); one graded cell per exercise")
            if points_match is None:
                raise SourceError(f"{here}: the graded cell of {current['name']!r} needs a '# points: N' line "
                                  "('# bonus: N' for a stretch exercise)")
            points = _points(points_match.group(1), here)
            if has_hidden:
                _check_markers(source, HIDDEN_BEGIN, HIDDEN_END, here)
            cell.metadata["nbgrader"] = _nbgrader(f"{current['name']}-tests", grade=True, solution=False,
                                                  locked=True, points=points)
            if bonus:
                _add_tag(cell, STRETCH_TAG)
                _add_tag(current["answer"], STRETCH_TAG)
            current["graded"] = True
        elif current is not None and not current["graded"] and EXPERIMENT_TAG not in cell.metadata.get("tags", []):
            current["checks"] += 1
            suffix = "" if current["checks"] == 1 else f"-{current['checks']}"
            cell.metadata["nbgrader"] = _nbgrader(f"{current['name']}-check{suffix}", grade=False,
                                                  solution=False, locked=True)
    if current is not None and not current["graded"]:
        raise SourceError(f"{where}: exercise {current['name']!r} has no graded cell (a code cell with "
                          "'# points: N')")


def _graded_marker(source: str, where: str) -> tuple[re.Match | None, bool]:
    """The ``# points: N`` or ``# bonus: N`` line of a graded cell, and whether it is a bonus."""
    points, bonus = _POINTS_LINE.search(source), _BONUS_LINE.search(source)
    if points and bonus:
        raise SourceError(f"{where}: a graded cell has '# points: N' or '# bonus: N', not both")
    return (bonus, True) if bonus else (points, False)


def _add_tag(cell: NotebookNode, tag: str) -> None:
    tags = list(cell.metadata.get("tags", []))
    if tag not in tags:
        cell.metadata["tags"] = tags + [tag]


def _check_markers(source: str, begin: str, end: str, where: str) -> None:
    inside = False
    for line in source.splitlines():
        if begin in line:
            if inside:
                raise SourceError(f"{where}: '### {begin}' twice without '### {end}' in between")
            inside = True
        elif end in line:
            if not inside:
                raise SourceError(f"{where}: '### {end}' without a '### {begin}' before it")
            inside = False
    if inside:
        raise SourceError(f"{where}: '### {begin}' is never closed by '### {end}'")


def _exercise_name(source: str, where: str) -> str:
    explicit = _EXERCISE_LINE.search(source)
    found = explicit or _DEFINITION.search(source)
    if found is None:
        raise SourceError(f"{where}: an answer cell must define the function the student writes "
                          "('def name(...)' at the start of a line) or name it with '# exercise: name'")
    name = found.group(1)
    if not _NAME.match(name):
        raise SourceError(f"{where}: exercise name {name!r} must be a Python identifier of at most 51 characters")
    return name


def _points(text: str, where: str) -> float | int:
    try:
        points = float(text)
    except ValueError:
        raise SourceError(f"{where}: '# points: {text}' is not a number") from None
    if not points > 0 or points != points or points == float("inf"):
        raise SourceError(f"{where}: points must be a finite number > 0, got {text}")
    return int(points) if points.is_integer() else points


def _assign_ids(cells: list[NotebookNode]) -> None:
    used: set[str] = set()
    for cell in cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None:
            base = grade_id
        else:
            digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode("utf-8")).hexdigest()
            base = f"cell-{digest[:8]}"
        cell_id, copy_number = base, 1
        while cell_id in used:
            copy_number += 1
            cell_id = f"{base}-{copy_number}"
        used.add(cell_id)
        cell.id = cell_id


def exercises(nb: NotebookNode) -> list[Exercise]:
    """The exercises of a notebook (instructor, student or grading version), in notebook order.

    Read from the nbgrader metadata: answer cells have ``grade_id == NAME``, visible checks
    ``NAME-check[-k]`` and the graded cell ``NAME-tests``.  An exercise whose graded cell is
    gone (a student deleted it) still appears, with ``points`` 0 and ``tests_id`` set.  A stretch
    exercise (graded cell tagged ``stretch``, from ``# bonus: N``) has ``bonus`` true.
    """
    found: dict[str, dict] = {}
    for cell in nb.cells:
        meta = nbgrader_metadata(cell)
        grade_id = meta.get("grade_id")
        if not isinstance(grade_id, str):
            continue
        if meta.get("solution"):
            found.setdefault(grade_id, {"checks": [], "points": 0.0, "bonus": is_experiment(cell, STRETCH_TAG)})
        elif meta.get("grade") and grade_id.endswith("-tests"):
            name = grade_id[: -len("-tests")]
            if name in found:
                found[name]["bonus"] = is_experiment(cell, STRETCH_TAG)
                try:
                    found[name]["points"] = float(meta.get("points", 0))
                except (TypeError, ValueError):
                    found[name]["points"] = 0.0
        elif meta.get("locked") and "-check" in grade_id:
            name = grade_id.rsplit("-check", 1)[0]
            if name in found:
                found[name]["checks"].append(grade_id)
    return [Exercise(name, name, tuple(info["checks"]), f"{name}-tests", info["points"], info["bonus"])
            for name, info in found.items()]


def nbgrader_metadata(cell: NotebookNode) -> dict:
    """A cell's nbgrader metadata, or ``{}`` when it has none (or something that is not a dict)."""
    meta = cell.get("metadata", {})
    meta = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return meta if isinstance(meta, dict) else {}


def is_experiment(cell: NotebookNode, tag: str = EXPERIMENT_TAG) -> bool:
    """True if the cell carries the experiment tag (the grader and ``validate`` skip it), or
    ``tag`` when given (``is_experiment(cell, STRETCH_TAG)``: a stretch exercise's cell)."""
    metadata = cell.get("metadata", {})
    tags = metadata.get("tags", []) if isinstance(metadata, dict) else []
    return isinstance(tags, list) and tag in tags


def grading_version(instructor: NotebookNode) -> NotebookNode:
    """Stubs instead of solutions, hidden tests kept: what the grader restores graded cells from."""
    from nbgrader.preprocessors import ClearSolutions, ComputeChecksums, LockCells

    nb = copy.deepcopy(instructor)
    for preprocessor in (ClearSolutions(), LockCells(), ComputeChecksums()):
        nb, _ = preprocessor.preprocess(nb, {})
    return nb


def student_version(instructor: NotebookNode) -> NotebookNode:
    """Stubs instead of solutions and hidden tests removed: the notebook students get.

    The same nbgrader preprocessors as ``nbgrader generate_assignment`` (ClearSolutions,
    LockCells, ClearHiddenTests, ComputeChecksums), run in memory, with no course folder
    and no database.
    """
    from nbgrader.preprocessors import ClearHiddenTests, ComputeChecksums

    nb = grading_version(instructor)
    for preprocessor in (ClearHiddenTests(), ComputeChecksums()):
        nb, _ = preprocessor.preprocess(nb, {})
    return nb


def solved_version(instructor: NotebookNode) -> NotebookNode:
    """The student notebook as a student who solved every exercise hands it in: the released
    notebook with each answer cell holding the source's solution (marker lines dropped).

    Grading it must give full marks with the experiment cells skipped; a chapter test can check
    that its exercises do not depend on experiments this way.
    """
    solutions = {cell.id: "\n".join(line for line in cell.source.splitlines()
                                    if SOLUTION_BEGIN not in line and SOLUTION_END not in line)
                 for cell in instructor.cells if nbgrader_metadata(cell).get("solution")}
    nb = student_version(instructor)
    for cell in nb.cells:
        if cell.id in solutions:
            cell.source = solutions[cell.id]
    return nb


def notebook_text(nb: NotebookNode) -> str:
    """The notebook as the JSON text Jupyter itself writes (sorted keys, indent 1, final newline)."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"
