"""The pieces of sandboxed grading: the channel, the library editions, copy detection, the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.grading import channel, edition, remote, similarity
from course_lib.grading.authoring import notebook_text, read_source, solved_version
from course_lib.grading.grade import GradingError, SourceNotebook, grade_submissions
from course_lib.grading.kernel import Kernel
from course_lib.grading.sandbox import (
    ResourceGroup,
    SandboxSpec,
    Watchdog,
    bubblewrap_problem,
    descendants,
    make_scratch,
    sandbox_command,
    python_paths,
)

REPO = Path(__file__).resolve().parents[1]
COURSE = Path(__file__).parent / "fixtures" / "grading_course"
needs_bubblewrap = pytest.mark.skipif(bool(bubblewrap_problem()), reason=f"needs bubblewrap: {bubblewrap_problem()}")


# -- the channel ------------------------------------------------------------------------------------------

def test_plain_data_crosses_unchanged():
    value = {"a": [1, 2.5, None, True, "x"], 3: (np.arange(6, dtype=np.int16).reshape(2, 3), np.float32(1.5)),
             (1, 2): float("nan"), "t": torch.arange(4.0).reshape(2, 2), "s": torch.Size([2, 3]),
             "scalar": np.zeros(()), "bf": torch.ones(2, dtype=torch.bfloat16)}
    back = channel.loads(channel.dumps(value))
    assert back.keys() == value.keys() and back["a"] == value["a"] and np.isnan(back[(1, 2)])
    assert back[3][0].dtype == np.int16 and np.array_equal(back[3][0], value[3][0]) and back[3][1] == np.float32(1.5)
    assert torch.equal(back["t"], value["t"]) and back["s"] == (2, 3) and back["scalar"].shape == ()
    assert back["bf"].dtype == torch.bfloat16 and torch.equal(back["bf"], value["bf"])
    leaf = channel.decode(channel.encode(torch.zeros(3, requires_grad=True)))
    assert leaf.requires_grad and leaf.is_leaf


@pytest.mark.parametrize("data, message", [
    ({"__module__": {"class": "torch.nn:Linear"}}, "not accepted from this side"),
    ({"__function__": "builtins:eval"}, "not accepted from this side"),
    ({"__ndarray__": {"dtype": "object", "shape": [1], "data": "AAAAAAAAAAA="}}, "dtype 'object'"),
    ({"__ndarray__": {"dtype": "float64", "shape": [3], "data": "AAAA"}}, "needs 24 bytes, got 3"),
    ({"__ndarray__": {"dtype": "float64", "shape": [10**9], "data": ""}}, "more than"),
    ({"__ndarray__": {"dtype": "float64", "shape": [-1], "data": ""}}, "sizes >= 0"),
    ({"__dict__": [[[1, 2], 3]]}, "not hashable"),
    ({"__nope__": 1}, "unknown tag"),
    ({"a": 1, "b": 2}, "plain JSON object"),
])
def test_the_judge_refuses_what_the_channel_does_not_carry(data, message):
    with pytest.raises(channel.ChannelError, match=message):
        channel.decode(data)


def test_deep_or_huge_messages_are_refused():
    deep = []
    for _ in range(channel.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(channel.ChannelError, match="nested"):
        channel.decode(deep)
    with pytest.raises(channel.ChannelError, match="bytes"):
        channel.loads("[1]" + " " * 100, max_bytes=50)


def test_objects_the_channel_cannot_carry_arrive_as_unreadable():
    back = channel.decode(channel.encode((x for x in range(3))))
    assert isinstance(back, channel.UnreadableObject) and "generator" in repr(back)


def test_a_module_crosses_as_class_attributes_and_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Upsample(scale_factor=2, mode="nearest"))
    model[1].running_mean.fill_(0.3)
    model.eval()
    model[0].train()  # one child in another mode: each keeps its own
    model.__deepcopy__ = lambda memo: model  # a per-instance attribute the checks set; not sent
    rebuilt = channel.decode(channel.encode(model, allow_code=True), allow_code=True)
    assert [m.training for m in rebuilt.modules()] == [m.training for m in model.modules()]
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(channel.ChannelError, match="not a module the channel imports from"):
        channel.decode({"__function__": "os:system"}, allow_code=True)


# -- the kernel's side ---------------------------------------------------------------------------------

def test_serve_answers_calls_and_reports_errors(tmp_path, monkeypatch):
    namespace = {"double": lambda x: x * 2, "boom": lambda: 1 / 0}
    monkeypatch.setattr(remote, "_user_namespace", lambda: namespace)

    def ask(request: dict) -> dict:
        (tmp_path / "q.json").write_text(json.dumps(dict(request, id="t")))
        remote.serve(str(tmp_path / "q.json"), str(tmp_path / "a.json"))
        return json.loads((tmp_path / "a.json").read_text())

    answer = ask({"op": "call", "target": {"name": "double"}, "args": channel.encode([np.arange(3)])})
    assert np.array_equal(channel.decode(answer["ok"]), [0, 2, 4]) and answer["id"] == "t"
    assert ask({"op": "call", "target": {"name": "boom"}, "args": []})["error"]["type"] == "ZeroDivisionError"
    assert "is not defined in the notebook" in ask({"op": "call", "target": {"name": "nope"}})["error"]["message"]


def test_restore_puts_the_real_code_back_into_a_stub(tmp_path, monkeypatch):
    source = textwrap.dedent('''
        class Base:
            def twice(self, x):
                return 2 * x

        class Child(Base):
            def twice(self, x):
                """Doc."""
                return super().twice(x) + 1

        def plain(x, y=3):
            return x + y
    ''')
    stubbed = edition.stub_functions(source, {"Child.twice": "m.Child.twice", "plain": "m.plain"})
    module_path = tmp_path / "stubbed_module.py"
    module_path.write_text(stubbed)
    monkeypatch.syspath_prepend(str(tmp_path))
    import stubbed_module

    with pytest.raises(remote.ReferenceUnavailable, match="m.plain"):
        stubbed_module.plain(1)
    with pytest.raises(remote.ReferenceUnavailable, match="m.Child.twice"):
        stubbed_module.Child().twice(1)
    original = tmp_path / "original.py"
    original.write_text(source)
    functions = [["stubbed_module", q, edition.function_source(edition.Reference("x", q, original))]
                 for q in ("Child.twice", "plain")]
    remote.restore(functions)
    assert stubbed_module.plain(1) == 4 and stubbed_module.Child().twice(5) == 11


# -- editions ------------------------------------------------------------------------------------------------

def test_the_student_edition_of_a_check_module_keeps_only_what_visible_checks_use():
    text = (COURSE / "grading_course_checks.py").read_text()
    stripped = edition.strip_hidden_tests(text)
    assert "def hidden_" not in stripped and "REFERENCES" not in stripped.split('"""', 2)[2]
    assert "def _random_pose" not in stripped  # used by the hidden checks only
    assert "def reference_flip_x" not in stripped  # its visible check is worked by hand
    assert "def reference_visible_centroid" in stripped  # the visible check compares with it
    assert "def check_flip_x" in stripped and "def check_count_labelled" in stripped
    compile(stripped, "stripped", "exec")


def test_write_student_edition(tmp_path):
    out = tmp_path / "edition"
    written = {p.name for p in edition.write_student_edition(out, REPO)}
    assert {"notebooks", "course_lib", "data_scripts", "README.md", "Makefile"} <= written
    assert not (out / "solutions").exists() and not (out / "tests").exists()
    notebooks = "\n".join(p.read_text() for p in (out / "notebooks").glob("*.ipynb"))
    assert notebooks and "BEGIN HIDDEN TESTS" not in notebooks and "BEGIN SOLUTION" not in notebooks
    assert not any("def hidden_" in p.read_text() for p in (out / "course_lib").rglob("*.py"))
    with pytest.raises(FileExistsError, match="not empty"):
        edition.write_student_edition(out, REPO)
    # the visible checks still work from the edition: the course's solution passes them
    solved = solved_version(read_source(REPO / "solutions" / "00_the_task.py"))
    answer = next(cell.source for cell in solved.cells if cell.id == "keypoint_box")
    code = ("import numpy as np\nfrom course_lib.grading import ch00_the_task as checks\n" + answer +
            "\nchecks.check_keypoint_box(keypoint_box)\nimport course_lib\nprint(course_lib.__file__)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                               env=dict(os.environ, PYTHONPATH=str(out)), timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "keypoint_box: all checks passed." in completed.stdout and str(out) in completed.stdout


def test_release_command_writes_the_student_edition(tmp_path):
    out = tmp_path / "for-students"
    completed = subprocess.run([sys.executable, "-m", "course_lib.grading", "release", "--source", "solutions",
                                "--out", "notebooks", "--check"], capture_output=True, text=True, cwd=REPO)
    assert completed.returncode == 0, completed.stdout
    scratch_notebooks = tmp_path / "notebooks"
    completed = subprocess.run([sys.executable, "-m", "course_lib.grading", "release", "--out", str(scratch_notebooks),
                                "--student-dir", str(out)], capture_output=True, text=True, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
    assert "no solutions, no tests, no hidden checks" in completed.stdout
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == sorted(p.name for p in scratch_notebooks.iterdir())


def test_the_grading_library_stubs_the_notebooks_answers(tmp_path):
    source = SourceNotebook.load(REPO / "solutions" / "02_heatmaps.py")
    references = [r for refs in source.references().values() for r in refs]
    library = edition.write_grading_library(tmp_path / "lib", [REPO / "course_lib"], references)
    heatmaps = (library / "course_lib" / "heatmaps.py").read_text()
    assert "ReferenceUnavailable('course_lib.heatmaps.decode_argmax')" in heatmaps
    real = (REPO / "course_lib" / "heatmaps.py").read_text()
    assert edition.function_source(edition.reference_of(__import__("course_lib.heatmaps").heatmaps.decode_argmax)) in real
    code = ("import course_lib.heatmaps as h, numpy as np\ntry:\n    h.decode_argmax(np.zeros((1, 2, 4, 4)))\n"
            "except BaseException as e:\n    print(type(e).__name__, e)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                               env=dict(os.environ, PYTHONPATH=str(library)), timeout=300)
    assert completed.stdout.strip() == "ReferenceUnavailable course_lib.heatmaps.decode_argmax", completed.stderr
    with pytest.raises(ValueError, match="not part of the course library"):
        edition.write_grading_library(tmp_path / "other", [REPO / "data_scripts"], references)


# -- copy detection ---------------------------------------------------------------------------------------------

ORIGINAL = '''
def flip(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Mirror."""
    out = np.array(keypoints, dtype=float)
    out[:, 0] = width - 1 - out[:, 0]  # x only
    if out.shape[0] > 3:
        out = out.copy()
    return out
'''

RENAMED = '''
def mirror(p, w):
    q = np.array(p, dtype=float)
    q[:, 0] = w - 1 - q[:, 0]
    if q.shape[0] > 3:
        q = q.copy()
    return q
'''

DIFFERENT = RENAMED.replace("w - 1 - q[:, 0]", "w - q[:, 0]")


def test_fingerprints_ignore_names_docstrings_annotations_and_layout():
    assert similarity.fingerprint(ORIGINAL, "flip") == similarity.fingerprint(RENAMED, "mirror") is not None
    assert similarity.fingerprint(DIFFERENT, "mirror") != similarity.fingerprint(ORIGINAL, "flip")
    assert similarity.fingerprint("def f(x):\n    return x + 1\n", "f") is None  # too short to tell
    assert similarity.fingerprint("def f(:", "f") is None and similarity.fingerprint(ORIGINAL, "g") is None
    print_ = similarity.fingerprint(ORIGINAL, "flip")
    flags = similarity.find_copies({"ada": print_, "bob": print_, "cy": "other"}, {"the course's solution": print_})
    assert flags == {"ada": ["the same code as the course's solution", "the same code as the answer of bob"],
                     "bob": ["the same code as the course's solution", "the same code as the answer of ada"]}


# -- the sandbox --------------------------------------------------------------------------------------------------

@needs_bubblewrap
def test_a_sandboxed_kernel_sees_only_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    library = edition.write_grading_library(tmp_path / "lib", [REPO / "course_lib"], [])
    spec = SandboxSpec(library=library, scratch=make_scratch(), memory_mb=1024)
    probe = f'''
import os, socket
seen = {{}}
seen["repo"] = os.path.exists({str(REPO / "solutions")!r})
home = {str(Path.home())!r}
seen["home"] = sorted(os.listdir(home)) if os.path.isdir(home) else []
seen["secret"] = "s3cret" in str(os.environ)
try:
    open("/course/library/course_lib/__init__.py", "a").write("#")
    seen["write_library"] = True
except OSError:
    seen["write_library"] = False
open("mine.txt", "w").write("ok")  # its own folder is writable
try:
    socket.create_connection(("127.0.0.1", 22), timeout=1)
    seen["network"] = True
except OSError:
    seen["network"] = False
seen["uid"] = os.getuid()
seen["pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
print(seen)
'''
    with Kernel(spec=spec) as kernel:
        kernel.start()
        run = kernel.execute(probe, 60)
        assert run.status == "ok", run.evalue
        seen = eval(run.outputs[0]["text"])
        assert (spec.scratch / "run" / "mine.txt").read_text() == "ok"
        group = kernel.group
    # of the grader's home, only the folders leading to the Python installation (if it lives there)
    python_dirs = {p.relative_to(Path.home()).parts[0] for p in python_paths() if Path.home() in p.parents}
    assert set(seen.pop("home")) <= python_dirs
    assert seen == {"repo": False, "secret": False, "write_library": False, "network": False,
                    "uid": 1000, "pids": seen["pids"]} and seen["pids"] <= 3
    if group is not None:
        assert not any(folder.exists() for folder in group.folders)


def test_the_watchdog_stops_a_process_tree_past_its_memory(tmp_path):
    code = "import time, numpy as np\nblock = np.ones(400 * 2**20 // 8)\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {code!r}])"])
    watchdog = Watchdog(parent.pid, memory_mb=200, max_processes=1000, interval=0.05).start()
    try:
        parent.wait(timeout=60)
    finally:
        watchdog.stop()
    assert "more than the limit of 200 MB" in watchdog.reason and watchdog.peak_mb > 200
    assert descendants(parent.pid) == []


def test_resource_groups_are_made_and_removed_where_the_machine_allows():
    group = ResourceGroup.create(256, 32)
    if group is None:
        pytest.skip("no cgroup can be made here: the watchdog limits memory instead")
    assert all(folder.exists() for folder in group.folders)
    completed = subprocess.run(group.wrap([sys.executable, "-c", "import numpy as np; np.ones(600 * 2**20 // 8)"]))
    assert completed.returncode != 0 and group.ran_out_of_memory()
    group.remove()
    assert not any(folder.exists() for folder in group.folders)


def test_grading_refuses_without_bubblewrap_unless_told(tmp_path, monkeypatch):
    import course_lib.grading.grade as grade

    monkeypatch.setattr(grade, "bubblewrap_problem", lambda: "bubblewrap (`bwrap`) is not installed. ...")
    (tmp_path / "subs").mkdir()
    with pytest.raises(GradingError, match="cannot grade in a sandbox: bubblewrap"):
        grade_submissions(tmp_path / "subs", source=COURSE / "solutions", out=tmp_path / "g.csv",
                          gradebook=tmp_path / "g.db")
    monkeypatch.setattr("shutil.which", lambda name: None)
    from course_lib.grading import sandbox

    assert "--no-sandbox" in sandbox.bubblewrap_problem() and "apt-get install bubblewrap" in sandbox.bubblewrap_problem()


def test_without_the_sandbox_grading_still_judges_from_outside_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(COURSE), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(COURSE))
    source = SourceNotebook.load(COURSE / "solutions" / "01_points.py")
    solved = solved_version(read_source(source.path))
    for cell in solved.cells:  # an answer that calls the course's own answer earns nothing, sandbox or not
        if cell.id == "flip_x":
            cell.source = ("import grading_course_checks as g\n\ndef flip_x(keypoints, width):\n"
                           "    return g.reference_flip_x(keypoints, width)")
    (tmp_path / "ada").mkdir()
    (tmp_path / "ada" / "01_points.ipynb").write_text(notebook_text(solved))
    log: list[str] = []
    results = grade_submissions(tmp_path, source=COURSE / "solutions", out=tmp_path / "out" / "g.csv",
                                gradebook=tmp_path / "g.db", sandbox=False, log=log.append)
    (result,) = results
    assert [(g.exercise, g.points) for g in result.exercises] == [("visible_centroid", 2), ("flip_x", 0),
                                                                  ("count_labelled", 1)]
    assert "calls the course's reference implementation" in result.exercises[1].message or \
           "has no attribute 'reference_flip_x'" in result.exercises[1].message
    assert any("graded without the sandbox" in line for line in log)
    total = (tmp_path / "out" / "g.csv").read_text().splitlines()[-1]
    assert "flagged" in total and "graded without the sandbox (--no-sandbox)" in total


@needs_bubblewrap
def test_data_under_the_hosts_tmp_stays_visible_beside_the_private_tmp(tmp_path):
    """A course cloned under /tmp: its data (and virtual environment) are bound over the sandbox's own /tmp."""
    import subprocess

    assert str(tmp_path).startswith("/tmp/")
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "marker.txt").write_text("seen")
    library = tmp_path / "library"
    library.mkdir()
    scratch = make_scratch()
    spec = SandboxSpec(library=library, scratch=scratch, data_root=data_root, memory_mb=0)
    probe = (f"import pathlib; print(pathlib.Path({str(data_root / 'marker.txt')!r}).read_text()); "
             "pathlib.Path('/tmp/own.txt').write_text('x'); print(sorted(p.name for p in pathlib.Path('/tmp').iterdir()))")
    command = sandbox_command([sys.executable, "-c", probe], spec, {"PATH": "/usr/bin:/bin"})
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "seen"
    assert not (Path("/tmp") / "own.txt").exists()  # the sandbox's /tmp is its own
