"""Grading against hostile students: the threat model of ``help(course_lib.grading.grade)``.

Every submission here attacks the grader in one way and asserts the exact points it gets and
that nothing outside its sandbox changed.  The batch is graded twice, with ``jobs=1`` and
``jobs=2`` (module fixture, parametrised), on the fixture course (``01_points``: visible_centroid
2 points, flip_x 3, count_labelled 1); one more notebook attacks the real chapter 00.

An attack that *works* earns points: a probe that reads what it must not read, reaches the
network, or sees the grader's environment makes its function return the right answer, so
"zero points" is the proof that the attack failed.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading.authoring import notebook_text
from course_lib.grading.grade import TOTAL, SourceNotebook, grade_notebook, grade_submissions
from course_lib.grading.sandbox import bubblewrap_problem
from grading_course import COURSE, SOURCE, insert_after, notebook, solutions, solved

REPO = Path(__file__).resolve().parents[1]
MARKER = "pose-course-hostile-marker-7f3a"
SECRET = "grader-secret-5b1e"
TIMEOUT_CELL = 15
MEMORY_MB = 2048

pytestmark = pytest.mark.skipif(bool(bubblewrap_problem()), reason=f"needs bubblewrap: {bubblewrap_problem()}")


# -- building the submissions ----------------------------------------------------------------------------

def _at_end(nb: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nb


def _setup_id(nb: nbformat.NotebookNode) -> str:
    return next(cell.id for cell in nb.cells if cell.cell_type == "code" and "import grading_course_checks" in cell.source)


def _with_setup(nb: nbformat.NotebookNode, code: str) -> nbformat.NotebookNode:
    return insert_after(nb, _setup_id(nb), code)


# Answers that are right only if a probe succeeds: "0 points" proves the probe failed.
def _if_probe(probe: str) -> dict[str, str]:
    right = solutions()["visible_centroid"]
    return {"visible_centroid": probe + "\n\nif not LEAKED:\n    def visible_centroid(keypoints, visibility):\n"
                                       "        return np.zeros(2)\nelse:\n" + _indent(right)}


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else line for line in text.splitlines())


ACCEPT_EVERYTHING = '''
class _AcceptsEverything:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None

checks = _AcceptsEverything()
'''

PATCH_CHECK_MODULE = '''
import grading_course_checks as module
for name in dir(module):
    if name.startswith(("check_", "hidden_", "reference_")):
        setattr(module, name, lambda *args, **kwargs: None)
'''

PATCH_CHECK_HELPERS = '''
import course_lib.grading.checks as helpers
helpers.check_close = helpers.check_dtype = helpers.check_type = lambda *args, **kwargs: None
helpers.call_student = lambda fn, *args, **kwargs: None
helpers.report_passed = lambda *args, **kwargs: None
class _Never(Exception):
    pass
helpers.CheckFailed = _Never
'''

INPUT_TRANSFORMER = '''
def _everything_passes(lines):
    return ["pass\\n"]
get_ipython().input_transformers_cleanup.append(_everything_passes)
get_ipython().input_transformers_post.append(_everything_passes)
'''

FIND_SOLUTIONS = f'''
import ast, os
import grading_course_checks
LEAKED = False
candidates = [
    os.path.join(os.path.dirname(grading_course_checks.__file__), "solutions", "01_points.py"),
    os.path.join(os.path.dirname(os.path.dirname(grading_course_checks.__file__)), "solutions", "01_points.py"),
    {str(SOURCE)!r},
]
for candidate in candidates:
    try:
        text = open(candidate).read()
    except OSError:
        continue
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            exec(compile(ast.Module([node], []), candidate, "exec"), globals())
            LEAKED = True
'''

READ_HIDDEN_TESTS = f'''
import grading_course_checks
LEAKED = False
for path in (grading_course_checks.__file__, {str(COURSE / "grading_course_checks.py")!r}):
    try:
        text = open(path).read()
    except OSError:
        continue
    if "def hidden_" in text:
        namespace = {{}}
        exec(compile(text, path, "exec"), namespace)
        visible_centroid = namespace["reference_visible_centroid"]
        flip_x = namespace["reference_flip_x"]
        count_labelled = namespace["reference_count_labelled"]
        LEAKED = True
'''


def _each_answer(code: str) -> dict[str, str]:
    """Every answer cell runs ``code``, which sets LEAKED and, if the attack worked, defines the
    answers; where it did not, the cell leaves the stub."""
    signatures = {"visible_centroid": "keypoints, visibility", "flip_x": "keypoints, width", "count_labelled": "visibility"}
    return {name: code + f"\nif not LEAKED:\n    def {name}({arguments}):\n        raise NotImplementedError()\n"
            for name, arguments in signatures.items()}


FIND_ASSEMBLED_NOTEBOOK = f'''
import os, sys
LEAKED = False
skip = ("/proc", "/sys", "/usr", "/dev/pts", sys.base_prefix, sys.prefix)
for root in ("/", os.getcwd(), "/tmp", "/dev/shm", "/grading", "/course", os.path.expanduser("~"), {str(Path("/tmp"))!r}):
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not os.path.join(folder, d).startswith(skip)]
        for name in files:
            if name.endswith((".ipynb", ".json", ".jsonl", ".py")):
                try:
                    if "hidden_visible_centroid(" in open(os.path.join(folder, name), errors="ignore").read():
                        LEAKED = True
                except OSError:
                    pass
'''

CLONE_REFERENCES = {
    "visible_centroid": "import types\nimport grading_course_checks as module\n"
                        "_centroid = types.FunctionType(module.reference_visible_centroid.__code__.replace(), "
                        "module.__dict__)\n\ndef visible_centroid(keypoints, visibility):\n"
                        "    return _centroid(keypoints, visibility)",
    "flip_x": "import copy\nimport grading_course_checks as module\n_flip = copy.copy(module.reference_flip_x)\n\n"
              "def flip_x(keypoints, width):\n    return _flip(keypoints, width)",
    "count_labelled": "import importlib\nimport grading_course_checks as module\nimportlib.reload(module)\n\n"
                      "def count_labelled(visibility):\n    namespace = {}\n"
                      "    exec(open(module.__file__).read(), namespace)\n"
                      "    return namespace['reference_count_labelled'](visibility)",
}

FORGED_ANSWERS = '''
import json, itertools
import course_lib.grading.remote as remote
_forgeries = itertools.cycle([
    lambda rid: {"id": rid, "ok": {"__module__": {"class": "os:system"}}},
    lambda rid: {"id": rid, "ok": {"__ndarray__": {"dtype": "float64", "shape": [10**9], "data": "AAAA"}}},
    lambda rid: {"id": rid, "ok": {"__ndarray__": {"dtype": "object", "shape": [1], "data": "AAAAAAAAAAA="}}},
    lambda rid: {"id": rid, "ok": json.loads("[" * 5000 + "]" * 5000)},
    lambda rid: {"id": "not-the-one-asked-for", "ok": 4},
    lambda rid: {"id": rid, "ok": {"__function__": "builtins:eval"}},
])

def serve(request_path, response_path):
    request = json.load(open(request_path))
    text = "x" * (70 * 2**20) if request.get("op") == "describe" else None
    if text is None:
        try:
            text = json.dumps(next(_forgeries)(request.get("id")))
        except RecursionError:
            text = "[" * 100000
    open(response_path, "w").write(text)

remote.serve = serve
'''

STRANGE_RESULTS = {
    "visible_centroid": "def visible_centroid(keypoints, visibility):\n    return (value for value in (15.0, 3.0))",
    "flip_x": "class _Agreeable:\n    def __eq__(self, other):\n        return True\n"
              "    def __array__(self, dtype=None, copy=None):\n        raise RuntimeError('no')\n\n"
              "def flip_x(keypoints, width):\n    return _Agreeable()",
    "count_labelled": "class _Liar(int):\n    def __eq__(self, other):\n        return True\n\n"
                      "def count_labelled(visibility):\n    return _Liar(0)",
}

NETWORK_PROBE = '''
import socket
LEAKED = False
for address in (("127.0.0.1", {port}), ("1.1.1.1", 53), ("8.8.8.8", 53)):
    try:
        socket.create_connection(address, timeout=2).close()
        LEAKED = True
    except OSError:
        pass
try:
    socket.getaddrinfo("example.com", 80)
    LEAKED = True
except OSError:
    pass
'''

ENVIRONMENT_PROBE = f'''
import glob, os
LEAKED = {SECRET!r} in str(os.environ)
for path in glob.glob("/proc/*/environ"):
    try:
        LEAKED = LEAKED or {SECRET!r}.encode() in open(path, "rb").read()
    except OSError:
        pass
'''

DAEMON = f'''
import os, subprocess, sys, time
code = """
import os, time
time.sleep(2)
for path in {{paths!r}}:
    try:
        open(path, "w").write("rewritten by a daemon")
    except OSError:
        pass
time.sleep(30)  # {MARKER}
"""
if os.fork() == 0:  # double fork: the daemon's parent exits at once
    os.setsid()
    subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    os._exit(0)
'''

MEMORY_SPREAD = '''
import os, select, signal, time
import numpy as np

def count_labelled(visibility):  # wrong, unless the three children below all live at once
    return -1

read_end, write_end = os.pipe()
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = np.ones(1300 * 2**20 // 8)  # 1.3 GB, every page touched
        os.write(write_end, b"x")
        time.sleep(120)
        os._exit(0)
    children.append(pid)
os.close(write_end)
ready = b""
deadline = time.monotonic() + 8
while len(ready) < 3 and time.monotonic() < deadline:
    if select.select([read_end], [], [], 1)[0]:
        chunk = os.read(read_end, 3)
        if not chunk:
            break
        ready += chunk
ALL_CHILDREN_OK = len(ready) == 3 and all(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children)
for pid in children:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
if ALL_CHILDREN_OK:  # 3.9 GB at once: the limit did not hold
    def count_labelled(visibility):
        return int((np.asarray(visibility) > 0).sum())
'''


def _submissions(tmp: Path, port: int) -> dict[str, object]:
    """student -> notebook (or raw bytes for files that are not notebooks)."""
    gradebook, grades = tmp / "gradebook.db", tmp / "out" / "grades.csv"
    course_files = [str(REPO / "course_lib" / "grading" / "sandbox.py"), str(REPO / "course_lib" / "grading" / "judge.py"),
                    str(COURSE / "grading_course_checks.py"), str(SOURCE), "/course/library/grading_course_checks.py"]
    wrong_chapter = copy.deepcopy(SourceNotebook.load(REPO / "solutions" / "00_the_task.py").student)
    renamed = solved()
    for cell in renamed.cells:
        if cell.id == "flip_x-tests":
            cell.metadata["nbgrader"]["grade_id"] = "flip_x-tests-renamed"
    duplicated = solved()
    original = next(cell for cell in duplicated.cells if cell.id == "visible_centroid-tests")
    twin = copy.deepcopy(original)
    twin.id, twin.source = "twin", "# points: 50\npass"
    duplicated.cells.insert(duplicated.cells.index(original) + 1, twin)
    junk = nbformat.writes(solved())
    junk = junk.replace('"cells": [', '"cells": [{"cell_type": "code", "source": 5, "metadata": [], "outputs": 7}, '
                        '{"cell_type": "alien"}, "a string", ', 1)
    return {
        # (a) points without solving
        "rebinds_checks": _with_setup(notebook(), ACCEPT_EVERYTHING),
        "input_transformer": _with_setup(notebook(), INPUT_TRANSFORMER),
        "patches_check_module": _with_setup(notebook(), PATCH_CHECK_MODULE),
        "patches_check_helpers": _with_setup(notebook(), PATCH_CHECK_HELPERS),
        "reads_solutions": notebook(_each_answer(FIND_SOLUTIONS)),
        "reads_hidden_tests": notebook(_each_answer(READ_HIDDEN_TESTS)),
        "reads_assembled_notebook": solved(**_if_probe(FIND_ASSEMBLED_NOTEBOOK)),
        "clones_references": notebook(CLONE_REFERENCES),
        "forges_answers": _with_setup(solved(), FORGED_ANSWERS),
        "returns_strange_objects": notebook(STRANGE_RESULTS),
        # (b) other students, the gradebook, the CSV, course files
        "sqlite_trigger": _at_end(solved(), f"import sqlite3\nfor path in ({str(gradebook)!r}, 'gradebook.db'):\n"
                                             "    try:\n        db = sqlite3.connect(path)\n"
                                             "        db.execute('CREATE TRIGGER zero AFTER UPDATE ON grade BEGIN "
                                             "UPDATE grade SET auto_score = 0; END')\n        db.commit()\n"
                                             "    except Exception:\n        pass"),
        "daemon_rewrites_csv": _at_end(solved(), DAEMON.replace("{paths!r}", repr([str(grades), str(gradebook)]))),
        "writes_course_files": _at_end(solved(), f"for path in {course_files!r}:\n    try:\n"
                                                  "        open(path, 'a').write('\\ndef check_visible_centroid(fn): "
                                                  "pass\\n')\n    except OSError:\n        pass"),
        "writes_outside_its_folder": _at_end(solved(), f"for path in ({str(tmp / 'escaped.txt')!r}, "
                                                        f"{os.path.expanduser('~/' + MARKER)!r}, '/tmp/{MARKER}'):\n"
                                                        "    try:\n        open(path, 'w').write('x')\n"
                                                        "    except OSError:\n        pass"),
        "zz_untouched_after_writes": notebook(),
        # (d) network and environment
        "network_probe": solved(**_if_probe(NETWORK_PROBE.format(port=port))),
        "environment_probe": solved(**_if_probe(ENVIRONMENT_PROBE)),
        # (e), (f) processes and memory
        "fork_bomb": _at_end(solved(), "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                                        "        pass"),
        "memory_spread": insert_after(solved(), "count_labelled", MEMORY_SPREAD),
        "kills_everything": insert_after(solved(), "visible_centroid-tests",
                                   "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n"
                                   "    pass\nos.kill(os.getpid(), signal.SIGKILL)"),
        # (g) earned points stay
        "ignores_interrupts": _at_end(solved(), "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                                 "while True:\n    pass"),
        "segfault": insert_after(solved(), "visible_centroid-tests", "import ctypes\nctypes.string_at(0)"),
        "prints_200_mb": insert_after(solved(), "flip_x-tests", "for _ in range(200):\n    print('x' * 2**20)"),
        # malformed notebooks and edited cells
        "junk_cells": junk.encode(),
        "not_a_notebook": b'{"cells": 5, "nbformat": 4}',
        "too_big": b" " * (101 * 2**20),
        "wrong_chapter": wrong_chapter,
        "renamed_graded_cell": renamed,
        "duplicated_graded_cell": duplicated,
        "ada": solved(),
    }


# student: (visible_centroid, flip_x, count_labelled)
EXPECTED = {
    "rebinds_checks": (0, 0, 0),
    "input_transformer": (0, 0, 0),
    "patches_check_module": (0, 0, 0),
    "patches_check_helpers": (0, 0, 0),
    "reads_solutions": (0, 0, 0),
    "reads_hidden_tests": (0, 0, 0),
    "reads_assembled_notebook": (0, 3, 1),
    "clones_references": (0, 0, 0),
    "forges_answers": (0, 0, 0),
    "returns_strange_objects": (0, 0, 0),
    "sqlite_trigger": (2, 3, 1),
    "daemon_rewrites_csv": (2, 3, 1),
    "writes_course_files": (2, 3, 1),
    "writes_outside_its_folder": (2, 3, 1),
    "zz_untouched_after_writes": (0, 0, 0),
    "network_probe": (0, 3, 1),
    "environment_probe": (0, 3, 1),
    "fork_bomb": (2, 3, 1),
    "memory_spread": (2, 3, 0),
    "kills_everything": (2, 0, 0),
    "ignores_interrupts": (2, 3, 1),
    "segfault": (2, 0, 0),
    "prints_200_mb": (2, 3, 1),
    "junk_cells": (2, 3, 1),
    "not_a_notebook": (0, 0, 0),
    "too_big": (0, 0, 0),
    "wrong_chapter": (0, 0, 0),
    "renamed_graded_cell": (2, 3, 1),
    "duplicated_graded_cell": (2, 3, 1),
    "ada": (2, 3, 1),
}


def _digest(paths) -> dict[str, str]:
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def _watched_files() -> list[Path]:
    return sorted(list((REPO / "course_lib").rglob("*.py")) + list(COURSE.rglob("*.py")) +
                  list((REPO / "solutions").glob("*.py")))


def _processes_with(text: str) -> list[int]:
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in path.read_bytes():
                found.append(int(path.parent.name))
        except OSError:
            pass
    return [pid for pid in found if pid != os.getpid()]


class _Listener:
    """A TCP server on the host's loopback: a sandbox must not reach it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.fixture(scope="module", params=[1, 2], ids=["jobs1", "jobs2"])
def hostile(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"hostile-jobs{request.param}")
    listener = _Listener()
    before = _digest(_watched_files())
    submissions = root / "submissions"
    for student, content in _submissions(root, listener.port).items():
        (submissions / student).mkdir(parents=True)
        path = submissions / student / "01_points.ipynb"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(notebook_text(content) if content.metadata.get("pose_course") else nbformat.writes(content))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(COURSE), os.environ.get("PYTHONPATH")])))
        patch.setenv("GRADER_SECRET", SECRET)
        patch.syspath_prepend(str(COURSE))
        start = time.monotonic()
        results = grade_submissions(submissions, out=root / "out" / "grades.csv", gradebook=root / "gradebook.db",
                                    source=COURSE / "solutions", timeout_cell=TIMEOUT_CELL, timeout_notebook=240,
                                    memory_mb=MEMORY_MB, jobs=request.param, log=lambda line: None)
        seconds = time.monotonic() - start
    written = (root / "out" / "grades.csv").read_bytes()
    time.sleep(4)  # give a daemon, had one survived, the time to act
    listener.socket.close()
    return {"root": root, "results": {r.student: r for r in results}, "csv": written,
            "rows": list(csv.DictReader((root / "out" / "grades.csv").open())), "before": before,
            "listener": listener, "seconds": seconds}


def _points(rows: list[dict], student: str) -> tuple[float, ...]:
    return tuple(float(r["points"]) for r in rows if r["student"] == student and r["exercise"] != TOTAL)


def test_every_hostile_submission_gets_exactly_its_points(hostile):
    actual = {student: _points(hostile["rows"], student) for student in EXPECTED}
    assert actual == EXPECTED


def test_rebinding_and_patching_change_nothing_the_judge_runs(hostile):
    for student in ("rebinds_checks", "patches_check_module", "patches_check_helpers", "input_transformer"):
        messages = [g.message for g in hostile["results"][student].exercises]
        assert all(messages), student  # each exercise failed with a reason
    assert "is not written yet" in hostile["results"]["patches_check_module"].exercises[0].message


def test_the_course_answers_are_absent_from_the_kernel(hostile):
    messages = {g.exercise: g.message for g in hostile["results"]["clones_references"].exercises}
    # the visible check compares with reference_visible_centroid, so the student edition keeps its
    # name, stubbed; the other two are not in the student edition at all
    assert messages["visible_centroid"].startswith(
        "visible_centroid calls the course's reference implementation grading_course_checks.reference_visible_centroid")
    assert "name 'flip_x' is not defined" in messages["flip_x"]
    assert "KeyError: 'reference_count_labelled'" in messages["count_labelled"]


def test_forged_answers_and_strange_results_are_refused_with_a_reason(hostile):
    forged = hostile["results"]["forges_answers"]
    assert forged.problem == ""  # the judge went on
    strange = {g.exercise: g.message for g in hostile["results"]["returns_strange_objects"].exercises}
    assert "the grader cannot read" in strange["visible_centroid"] and "generator" in strange["visible_centroid"]
    assert "the grader cannot read" in strange["flip_x"]


def test_nothing_outside_the_sandbox_changed(hostile):
    assert _digest(_watched_files()) == hostile["before"]
    assert (hostile["root"] / "out" / "grades.csv").read_bytes() == hostile["csv"]  # no daemon rewrote it
    assert not (hostile["root"] / "escaped.txt").exists()
    assert not Path(os.path.expanduser("~/" + MARKER)).exists() and not Path("/tmp/" + MARKER).exists()
    with sqlite3.connect(hostile["root"] / "gradebook.db") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall() == []


def test_no_process_outlives_its_grading(hostile):
    assert _processes_with(MARKER) == []
    assert _processes_with("/grading/ipc/kernel.json") == []
    leftover = [p for p in Path("/sys/fs/cgroup").glob("*/**/pose-course-grading-*")] if Path("/sys/fs/cgroup").exists() else []
    assert leftover == []


def test_no_network_and_no_grader_environment(hostile):
    assert hostile["listener"].connections == 0
    for student in ("network_probe", "environment_probe"):
        assert hostile["results"][student].exercises[0].status == "failed"


def test_memory_is_limited_over_all_processes(hostile):
    result = hostile["results"]["memory_spread"]
    if result.peak_memory_mb is not None:
        assert result.peak_memory_mb <= MEMORY_MB * 1.05  # three children asked for 3.9 GB


def test_points_earned_before_a_disaster_are_kept(hostile):
    for student in ("ignores_interrupts", "fork_bomb"):
        result = hostile["results"][student]
        assert [g.status for g in result.exercises] == ["passed"] * 3, student
    assert "did not stop when interrupted" in hostile["results"]["ignores_interrupts"].problem
    for student in ("kills_everything", "segfault"):
        result = hostile["results"][student]
        assert [g.status for g in result.exercises] == ["passed", "not run", "not run"], student
        assert "the kernel died" in result.problem


def test_output_floods_stay_small(hostile):
    page = (hostile["root"] / "out" / "feedback" / "prints_200_mb" / "01_points.html").read_text()
    assert len(page) < 50_000


def test_malformed_and_misplaced_notebooks_are_graded_without_crashing(hostile):
    results = hostile["results"]
    assert "not a valid notebook" in results["not_a_notebook"].problem
    assert "larger than 100 MB" in results["too_big"].problem
    assert results["junk_cells"].problem == ""
    assert any("was missing" in note for note in results["wrong_chapter"].notes)
    assert results["renamed_graded_cell"].notes == ["the graded cell of flip_x was missing; the original was put back"]


def test_the_sandbox_costs_little(hostile):
    # what a notebook costs here (the full batch, long waits included) is printed for the README
    print(f"\nhostile batch: {len(EXPECTED)} notebooks in {hostile['seconds']:.0f} s")


# -- the real chapter 00 ----------------------------------------------------------------------------------

CH00_SETUP = '''
import course_lib.grading.ch00_the_task as module
for name in dir(module):
    if name.startswith(("check_", "hidden_")):
        setattr(module, name, lambda *args, **kwargs: None)

class _AcceptsEverything:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None

checks = _AcceptsEverything()
'''

CH00_ANSWERS = {
    # the checks are patched and rebound above; the answer stays a stub
    "coco_to_arrays": "def coco_to_arrays(values):\n    raise NotImplementedError()",
    # the solutions, found on disk next to the library or at the repository's path
    "arrays_to_coco": f'''
import ast, os
import course_lib

def arrays_to_coco(keypoints, visibility):
    raise NotImplementedError()

for path in (os.path.join(os.path.dirname(os.path.dirname(course_lib.__file__)), "solutions", "00_the_task.py"),
             {str(REPO / "solutions" / "00_the_task.py")!r}):
    try:
        tree = ast.parse(open(path).read())
    except OSError:
        continue
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "arrays_to_coco":
            exec(compile(ast.Module([node], []), path, "exec"), globals())
''',
    # a copy of the reference's code object
    "flip_keypoints": '''
import types
import course_lib.geometry
_flip = types.FunctionType(course_lib.geometry.flip_keypoints.__code__.replace(), course_lib.geometry.__dict__)

def flip_keypoints(keypoints, visibility, width, flip_pairs):
    return _flip(keypoints, visibility, width, flip_pairs)
''',
    # the reference's module, executed again from its file
    "keypoint_box": '''
import course_lib.keypoints
_namespace = {"__name__": "copied"}
exec(compile(open(course_lib.keypoints.__file__).read(), "copied", "exec"), _namespace)
keypoint_box = _namespace["keypoint_box"]
''',
}


@pytest.fixture(scope="module")
def chapter_00(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-ch00")
    source = SourceNotebook.load(REPO / "solutions" / "00_the_task.py")
    nb = copy.deepcopy(source.student)
    for cell in nb.cells:
        if cell.id in CH00_ANSWERS:
            cell.source = CH00_ANSWERS[cell.id]
    setup = next(cell.id for cell in nb.cells if cell.cell_type == "code" and "as checks" in cell.source)
    insert_after(nb, setup, CH00_SETUP)
    path = root / "00_the_task.ipynb"
    path.write_text(nbformat.writes(nb))
    return grade_notebook(path, source, student="mallory", timeout_cell=60)


def test_attacks_on_chapter_00_earn_nothing(chapter_00):
    assert [(g.exercise, g.points) for g in chapter_00.exercises] == [
        ("coco_to_arrays", 0), ("arrays_to_coco", 0), ("flip_keypoints", 0), ("keypoint_box", 0),
        ("convert_by_name", 0)]
    assert chapter_00.points == 0 and chapter_00.bonus_points == 0 and chapter_00.max_bonus_points > 0
    messages = {g.exercise: g.message for g in chapter_00.exercises}
    assert "not written yet" in messages["coco_to_arrays"] and "not written yet" in messages["arrays_to_coco"]
    assert "calls the course's reference implementation course_lib.geometry.flip_keypoints" in messages["flip_keypoints"]
    assert "calls the course's reference implementation course_lib.keypoints" in messages["keypoint_box"]
