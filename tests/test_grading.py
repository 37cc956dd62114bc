"""Grading and validating submissions of the fixture course, hostile ones included.

One batch of submissions is graded once (module fixture) and shared by the tests; each
submission is one notebook run in its own kernel, so the number of students here is what
this file costs.  The expected points are worked out by hand from what each student wrote:
visible_centroid is worth 2, flip_x 3, count_labelled 1 (the `# points:` lines of the source).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.__main__ import main
from course_lib.grading.authoring import read_source, solved_version
from course_lib.grading.grade import GRADES_COLUMNS, TOTAL, grade_notebook, grade_submissions
from course_lib.grading.kernel import execute_notebook
from course_lib.grading.sandbox import bubblewrap_problem
from course_lib.grading.validate import validate_notebook
from checking import SANDBOX
from grading_course import COURSE, insert_after, notebook, solutions, solved, source

TIMEOUT_CELL = 20  # the looping student costs this much; generous for a loaded machine


def _flip_off_by_one() -> str:
    return solutions()["flip_x"].replace("width - 1 - flipped", "width - flipped")


def _edited_tests() -> nbformat.NotebookNode:
    nb = solved(visible_centroid="def visible_centroid(keypoints, visibility):\n    return np.zeros(2)")
    for cell in nb.cells:
        if cell.id == "visible_centroid-tests":
            cell.source = "# points: 100\npass"
            cell.metadata["nbgrader"]["points"] = 100
    return nb


def _deleted_tests() -> nbformat.NotebookNode:
    nb = solved(flip_x=_flip_off_by_one())
    nb.cells = [cell for cell in nb.cells if cell.id not in ("flip_x-tests", "count_labelled-tests")]
    return nb


STUDENTS = {
    "ada": lambda: solved_version(read_source(COURSE / "solutions" / "01_points.py")),
    "untouched": lambda: notebook(),
    "partial": lambda: notebook({"visible_centroid": solutions()["visible_centroid"], "flip_x": _flip_off_by_one()}),
    "loops_forever": lambda: solved(flip_x="def flip_x(keypoints, width):\n    while True:\n        pass"),
    "import_error": lambda: solved(visible_centroid="from no_such_package import helper\n\n"
                                                     + solutions()["visible_centroid"]),
    "sys_exit": lambda: solved(visible_centroid="import sys\n\ndef visible_centroid(keypoints, visibility):\n"
                                                 "    sys.exit(1)"),
    "os_exit": lambda: insert_after(solved(), "visible_centroid-tests", "import os\nos._exit(1)"),
    "kills_runner": lambda: insert_after(solved(), "visible_centroid-tests",
                                          "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                          "os.kill(1, signal.SIGKILL)"),
    "prints": lambda: solved(visible_centroid=solutions()["visible_centroid"].replace(
        '"""\n', '"""\n    print("x" * 5_000_000)  # </pre><script>alert(1)</script>\n', 1)),
    "memory_hog": lambda: solved(
        visible_centroid=solutions()["visible_centroid"].replace('"""\n', '"""\n    waste = np.empty(8 * 2**30, np.uint8)\n', 1),
        count_labelled="import torch\n\ndef count_labelled(visibility):\n"
                       "    return int(torch.as_tensor(np.asarray(visibility) > 0).sum())"),
    "edits_tests": _edited_tests,
    "deletes_tests": _deleted_tests,
    "copier": lambda: solved(flip_x=LONG_FLIP.replace("mirrored", "m").replace("column", "c")),
    "original": lambda: solved(flip_x=LONG_FLIP),
    "calls_reference": lambda: solved(visible_centroid=(
        "def visible_centroid(keypoints, visibility):\n"
        "    from grading_course_checks import reference_visible_centroid\n"
        "    return reference_visible_centroid(keypoints, visibility)")),
}

# An answer long enough for the copy detector (short ones are written alike by everyone).
LONG_FLIP = """def flip_x(keypoints, width):
    \"\"\"Mirror keypoints: x -> width - 1 - x.\"\"\"
    mirrored = np.array(keypoints, dtype=float)
    column = mirrored[:, 0]
    column = (width - 1) - column
    mirrored[:, 0] = column
    assert mirrored.shape == np.shape(keypoints), "the shape must not change"
    return mirrored
"""

# student: (visible_centroid, flip_x, count_labelled) points, worked out by hand
EXPECTED = {
    "ada": (2, 3, 1),
    "untouched": (0, 0, 0),
    "partial": (2, 0, 0),
    "loops_forever": (2, 0, 1),
    "import_error": (0, 3, 1),
    "sys_exit": (0, 3, 1),
    "os_exit": (2, 0, 0),
    "kills_runner": (2, 3, 1),  # its parent is the sandbox's first process, which it cannot kill
    "prints": (2, 3, 1),
    "memory_hog": (0, 3, 1),
    "edits_tests": (0, 3, 1),
    "deletes_tests": (2, 0, 1),
    "copier": (2, 3, 1),
    "original": (2, 3, 1),
    "calls_reference": (0, 3, 1),
    "not_json": (0, 0, 0),
    "no_notebook": (0, 0, 0),
}


@pytest.fixture(scope="module")
def course_env():
    """The fixture course's check module is imported by the grader (here), by the judge (PYTHONPATH)
    and by the kernels (the grader copies it into their library)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(COURSE), os.environ.get("PYTHONPATH")])))
        patch.syspath_prepend(str(COURSE))
        yield


@pytest.fixture(scope="module")
def graded(tmp_path_factory, course_env):
    if not SANDBOX:
        pytest.skip(f"needs bubblewrap, which grading uses by default: {bubblewrap_problem()}")
    root = tmp_path_factory.mktemp("grading")
    submissions = root / "submissions"
    for student, make in STUDENTS.items():
        (submissions / student).mkdir(parents=True)
        nbformat.write(make(), submissions / student / "01_points.ipynb")
    (submissions / "not_json").mkdir()
    (submissions / "not_json" / "01_points.ipynb").write_text('{"cells": [ this is not JSON')
    (submissions / "no_notebook").mkdir()
    (submissions / "no_notebook" / "notes.txt").write_text("forgot to upload")
    (submissions / "README.txt").write_text("a stray file")
    log: list[str] = []
    start = time.monotonic()
    results = grade_submissions(submissions, out=root / "out" / "grades.csv", gradebook=root / "gradebook.db",
                                source=COURSE / "solutions", timeout_cell=TIMEOUT_CELL, timeout_notebook=300,
                                jobs=2, log=log.append)
    return {
        "root": root,
        "results": {result.student: result for result in results},
        "rows": list(csv.DictReader((root / "out" / "grades.csv").open())),
        "csv": (root / "out" / "grades.csv").read_bytes(),
        "log": log,
        "seconds": time.monotonic() - start,
    }


def _points(rows: list[dict], student: str) -> tuple[float, ...]:
    return tuple(float(r["points"]) for r in rows if r["student"] == student and r["exercise"] != TOTAL)


def _row(rows: list[dict], student: str, exercise: str) -> dict:
    (row,) = [r for r in rows if r["student"] == student and r["exercise"] == exercise]
    return row


def test_every_student_gets_the_expected_points(graded):
    actual = {student: _points(graded["rows"], student) for student in EXPECTED}
    assert actual == EXPECTED


def test_the_solution_gets_full_marks_with_the_experiment_cell_skipped(graded):
    # the experiment cell calls os._exit: had it run, flip_x and count_labelled would score 0
    result = graded["results"]["ada"]
    assert [(g.status, g.points) for g in result.exercises] == [("passed", 2), ("passed", 3), ("passed", 1)]
    assert result.problem == "" and result.notes == []
    assert _row(graded["rows"], "ada", TOTAL) == {
        "student": "ada", "notebook": "01_points", "exercise": TOTAL, "points": "6", "max_points": "6",
        "status": "ok", "message": "", "flag": ""}


def test_the_untouched_notebook_gets_zero_and_says_why(graded):
    for grade in graded["results"]["untouched"].exercises:
        assert grade.status == "failed"
        assert f"{grade.exercise} is not written yet" in grade.message


def test_partial_credit_names_the_mistake(graded):
    assert "off by exactly one" in _row(graded["rows"], "partial", "flip_x")["message"]
    assert _row(graded["rows"], "partial", TOTAL)["points"] == "2"


def test_csv_schema_and_totals(graded):
    assert graded["csv"].decode().splitlines()[0] == ",".join(GRADES_COLUMNS)
    rows = graded["rows"]
    assert len(rows) == len(EXPECTED) * 4  # three exercises and a total per student
    assert len({(r["student"], r["notebook"], r["exercise"]) for r in rows}) == len(rows)
    for student in EXPECTED:
        total = _row(rows, student, TOTAL)
        assert float(total["points"]) == sum(EXPECTED[student])
        assert total["max_points"] == "6"
    assert [r["exercise"] for r in rows[:4]] == ["visible_centroid", "flip_x", "count_labelled", TOTAL]
    assert all("\n" not in r["message"] and len(r["message"]) <= 300 for r in rows)


def test_copied_answers_are_flagged_not_zeroed(graded):
    copier, original = _row(graded["rows"], "copier", "flip_x"), _row(graded["rows"], "original", "flip_x")
    assert (copier["points"], copier["flag"]) == ("3", "the same code as the answer of original")
    assert (original["points"], original["flag"]) == ("3", "the same code as the answer of copier")
    assert _row(graded["rows"], "copier", TOTAL)["status"] == "flagged"
    # the solution's answers are too short to tell copying from coincidence: nobody else is flagged
    assert {r["student"] for r in graded["rows"] if r["flag"]} == {"copier", "original"}


def test_a_loop_is_stopped_by_the_cell_time_limit(graded):
    row = _row(graded["rows"], "loops_forever", "flip_x")
    assert (row["status"], row["message"]) == (
        "failed", "the graded cell ran past the time limit for one cell and was stopped")


def test_errors_at_import_and_sys_exit_cost_only_their_exercise(graded):
    assert "NameError" in _row(graded["rows"], "import_error", "visible_centroid")["message"]
    assert "SystemExit" in _row(graded["rows"], "sys_exit", "visible_centroid")["message"]


def test_a_dead_kernel_is_reported_and_later_cells_score_zero(graded):
    result = graded["results"]["os_exit"]
    assert "the kernel died" in result.problem
    assert [g.status for g in result.exercises] == ["passed", "not run", "not run"]
    assert _row(graded["rows"], "os_exit", TOTAL)["status"] == "flagged"


def test_the_grader_is_out_of_the_kernels_reach(graded):
    result = graded["results"]["kills_runner"]
    assert result.problem == ""
    assert [g.status for g in result.exercises] == ["passed"] * 3


def test_megabytes_of_output_do_not_reach_the_feedback_and_student_code_is_escaped(graded):
    page = (graded["root"] / "out" / "feedback" / "prints" / "01_points.html").read_text()
    assert len(page) < 50_000
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


def test_memory_is_limited_and_torch_still_imports(graded):
    # np.empty(8 GiB) succeeds without a limit (no page is touched) and fails under 4096 MB
    assert "MemoryError" in _row(graded["rows"], "memory_hog", "visible_centroid")["message"]
    assert _row(graded["rows"], "memory_hog", "count_labelled")["status"] == "passed"  # uses torch


def test_edited_test_cells_are_restored_and_points_come_from_the_source(graded):
    row = _row(graded["rows"], "edits_tests", "visible_centroid")
    assert (row["points"], row["max_points"], row["status"]) == ("0", "2", "failed")
    assert graded["results"]["edits_tests"].notes == [
        "the graded cell of visible_centroid was edited; the original was used"]
    assert _row(graded["rows"], "edits_tests", TOTAL)["status"] == "flagged"


def test_deleted_test_cells_are_put_back(graded):
    result = graded["results"]["deletes_tests"]
    assert [g.status for g in result.exercises] == ["passed", "failed", "passed"]
    assert result.notes == ["the graded cell of flip_x was missing; the original was put back",
                            "the graded cell of count_labelled was missing; the original was put back"]


def test_calling_the_reference_implementation_is_caught(graded):
    assert "calls the course's reference implementation" in _row(graded["rows"], "calls_reference",
                                                                 "visible_centroid")["message"]


def test_broken_and_missing_notebooks_are_reported(graded):
    assert "not a valid notebook" in graded["results"]["not_json"].problem
    assert graded["results"]["no_notebook"].problem == "not submitted"
    assert _row(graded["rows"], "not_json", TOTAL)["status"] == "flagged"
    assert any("README.txt" in line for line in graded["log"])


def test_feedback_page_per_student(graded):
    feedback = graded["root"] / "out" / "feedback"
    assert sorted(p.name for p in feedback.iterdir()) == sorted(EXPECTED)
    page = (feedback / "partial" / "01_points.html").read_text()
    assert "Score: <strong>2 / 6</strong>" in page and "off by exactly one" in page
    assert "hidden_flip_x" not in page


def test_grading_again_is_idempotent_and_keeps_earlier_students(graded, tmp_path, course_env):
    root = graded["root"]
    again = tmp_path / "later"
    (again / "ada").mkdir(parents=True)
    nbformat.write(STUDENTS["ada"](), again / "ada" / "01_points.ipynb")
    (again / "newcomer").mkdir()
    nbformat.write(STUDENTS["partial"](), again / "newcomer" / "01_points.ipynb")
    out = root / "out" / "grades-later.csv"
    grade_submissions(again, out=out, gradebook=root / "gradebook.db", source=COURSE / "solutions",
                      timeout_cell=TIMEOUT_CELL, jobs=2, log=lambda line: None)
    rows = list(csv.DictReader(out.open()))
    newcomer = [r for r in rows if r["student"] == "newcomer"]
    assert [(r["student"], r["exercise"], r["points"]) for r in newcomer] == [
        ("newcomer", "visible_centroid", "2"), ("newcomer", "flip_x", "0"), ("newcomer", "count_labelled", "0"),
        ("newcomer", TOTAL, "2")]
    # everyone graded before is still there, unchanged (ada was graded twice: same result)
    assert [r for r in rows if r["student"] != "newcomer"] == graded["rows"]


@pytest.mark.parametrize("grader_sets, kernel_sees", [(None, "1"), ("0", "0")])
def test_grading_runs_notebooks_in_the_fast_profile_unless_told_otherwise(tmp_path, course_env, monkeypatch,
                                                                         grader_sets, kernel_sees):
    if grader_sets is None:
        monkeypatch.delenv("COURSE_FAST", raising=False)
    else:
        monkeypatch.setenv("COURSE_FAST", grader_sets)
    # count_labelled is right only where the kernel sees COURSE_FAST == kernel_sees
    path = tmp_path / "01_points.ipynb"
    nbformat.write(solved(count_labelled=(
        "import os\n\ndef count_labelled(visibility):\n"
        f"    right = os.environ.get('COURSE_FAST') == {kernel_sees!r}\n"
        "    return int((np.asarray(visibility) > 0).sum()) if right else -1")), path)
    result = grade_notebook(path, source(), student="ada", sandbox=SANDBOX)
    assert result.points == result.max_points, result.exercises[-1].message


def test_validate_summarises_the_visible_checks(tmp_path, course_env):
    path = tmp_path / "01_points.ipynb"
    nb = STUDENTS["partial"]()
    for cell in nb.cells:
        if cell.id == "flip_x-check":
            cell.source += "  # a student's remark"
    nbformat.write(nb, path)
    before = path.read_bytes()
    completed = subprocess.run([sys.executable, "-m", "course_lib.grading", "validate", str(path)],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.splitlines()
    assert any(line.split() == ["visible_centroid", "passed"] for line in lines)
    assert any(line.split() == ["flip_x", "FAILED"] for line in lines)
    assert any(line.split() == ["count_labelled", "not", "written", "yet"] for line in lines)
    assert "off by exactly one" in completed.stdout
    assert "1 of 3 exercises pass their visible checks" in completed.stdout
    assert "Note: cell flip_x-check was edited; grading uses the original." in completed.stdout
    assert path.read_bytes() == before  # the student's file is left as it was


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc (Linux)")
def test_a_kernel_that_ignores_interrupts_is_killed(tmp_path):
    pid_file = tmp_path / "kernel.pid"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))"),
        nbformat.v4.new_code_cell("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                                  "    except KeyboardInterrupt:\n        pass"),
    ]
    nb.cells += [nbformat.v4.new_code_cell("print('never runs')") for _ in range(20)]
    start = time.monotonic()
    result = execute_notebook(nb, timeout_cell=2, timeout_notebook=60)
    # 2 s for the cell, a few more for the interrupt to work, then the kernel is killed
    assert time.monotonic() - start < 30
    assert result.problem == ("a cell ran past its time limit of 2 s and did not stop when interrupted; "
                              "the kernel was killed")
    assert "grading" not in result.notebook.cells[2].metadata  # the cells after it did not run
    pid = int(pid_file.read_text())
    for _ in range(50):
        if not _running(pid):
            break
        time.sleep(0.1)
    assert not _running(pid), "the kernel outlived the grader's time limit"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited and only waits to be reaped


def test_grade_command_line_errors(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nowhere"), "--source", str(COURSE / "solutions")]) == 2
    assert "submissions must be a folder" in capsys.readouterr().err
    (tmp_path / "subs").mkdir()
    assert main(["grade", str(tmp_path / "subs"), "--source", str(COURSE / "solutions"),
                 "--notebook", "09_missing", "--out", str(tmp_path / "g.csv"),
                 "--gradebook", str(tmp_path / "g.db")]) == 2
    assert "no source notebook for ['09_missing']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="timeout_cell must be a finite number > 0"):
        grade_submissions(tmp_path / "subs", timeout_cell=0, source=COURSE / "solutions")


def test_bad_arguments_name_themselves(tmp_path):
    (tmp_path / "subs").mkdir()
    kwargs = {"source": COURSE / "solutions", "out": tmp_path / "g.csv", "gradebook": tmp_path / "g.db"}
    with pytest.raises(ValueError, match="jobs must be a whole number >= 1, got 0"):
        grade_submissions(tmp_path / "subs", jobs=0, **kwargs)
    with pytest.raises(ValueError, match="memory_mb must be a finite number >= 0, got -1"):
        grade_submissions(tmp_path / "subs", memory_mb=-1, **kwargs)
    with pytest.raises(ValueError, match="skip_tag must be a non-empty tag name"):
        grade_submissions(tmp_path / "subs", skip_tag="", **kwargs)
    with pytest.raises(ValueError, match="timeout_notebook must be a finite number > 0, got nan"):
        execute_notebook(nbformat.v4.new_notebook(), timeout_notebook=float("nan"))


def test_validate_refuses_what_it_cannot_check(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        validate_notebook(tmp_path / "missing.ipynb")
    (tmp_path / "broken.ipynb").write_text("{ not json")
    with pytest.raises(ValueError, match="broken.ipynb is not a valid notebook"):
        validate_notebook(tmp_path / "broken.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), tmp_path / "plain.ipynb")
    with pytest.raises(ValueError, match="plain.ipynb has no exercises"):
        validate_notebook(tmp_path / "plain.ipynb")
