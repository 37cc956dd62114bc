"""Releasing student notebooks from source notebooks: markers, stubs, reproducibility, --check.

No notebook runs here; the fixture course lives in tests/fixtures/grading_course.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from course_lib.grading.__main__ import main
from course_lib.grading.authoring import (
    SourceError,
    exercises,
    find_sources,
    notebook_text,
    read_source,
    solved_version,
    student_version,
)
from course_lib.grading.release import check_release, release

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_SOURCES = Path(__file__).parent / "fixtures" / "grading_course" / "solutions"
FIXTURE_SOURCE = FIXTURE_SOURCES / "01_points.py"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("notebooks")
    release(FIXTURE_SOURCES, out)
    return out / "01_points.ipynb"


def test_the_committed_notebooks_match_a_fresh_release_of_the_solutions():
    problems = check_release(ROOT / "solutions", ROOT / "notebooks")
    assert problems == [], "notebooks/ is stale: run `make release`\n" + "\n".join(problems)


def test_release_is_byte_for_byte_reproducible(released, tmp_path):
    first = released.read_bytes()
    for folder in (tmp_path / "a", tmp_path / "b"):
        release(FIXTURE_SOURCES, folder)
        assert (folder / "01_points.ipynb").read_bytes() == first
    assert first.endswith(b"}\n")


def test_no_solution_or_hidden_test_reaches_the_student(released):
    text = released.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "hidden_visible_centroid", "hidden_flip_x"):
        assert marker not in text
    # lines of the solutions, copied from the source file by hand
    for solution_line in ("labelled = np.asarray(visibility) > 0", "flipped[:, 0] = width - 1 - flipped[:, 0]",
                          "return int((np.asarray(visibility) > 0).sum())"):
        assert solution_line not in text


def test_stubs_keep_the_signature_and_docstring(released):
    cells = {cell.id: cell for cell in nbformat.read(released, as_version=4).cells}
    assert cells["flip_x"].source == (
        "def flip_x(keypoints, width):\n"
        '    """Mirror keypoints (K, 2) in an image `width` pixels wide: x -> width - 1 - x, y unchanged."""\n'
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()")
    assert cells["visible_centroid-tests"].source == "# points: 2\nchecks.check_visible_centroid(visible_centroid)"


def test_metadata_ids_kernel_and_outputs(released):
    nb = nbformat.read(released, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor == 5
    assert nb.metadata.kernelspec == {"name": "pose-course", "display_name": "Pose course (.venv)", "language": "python"}
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids)
    assert [i for i in ids if not i.startswith("cell-")] == [
        "visible_centroid", "visible_centroid-check", "visible_centroid-tests",
        "flip_x", "flip_x-check", "flip_x-tests", "count_labelled", "count_labelled-tests"]
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    # points as written in the source's '# points:' lines: 2, 3, 1
    assert [(e.name, e.points) for e in exercises(nb)] == [("visible_centroid", 2), ("flip_x", 3), ("count_labelled", 1)]
    by_id = {cell.id: cell for cell in nb.cells}
    assert by_id["flip_x-tests"].metadata["editable"] is False
    assert by_id["flip_x-check"].metadata["editable"] is False
    assert "editable" not in by_id["flip_x"].metadata
    experiments = [cell for cell in nb.cells if "experiment" in cell.metadata.get("tags", [])]
    assert len(experiments) == 1 and "os._exit(0)" in experiments[0].source


def test_nbgrader_accepts_the_metadata(released):
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(nbformat.read(released, as_version=4))


def test_an_ipynb_source_releases_like_the_py_source(tmp_path, released):
    sources = tmp_path / "solutions"
    sources.mkdir()
    jupytext.write(jupytext.read(FIXTURE_SOURCE), sources / "01_points.ipynb")
    release(sources, tmp_path / "out")
    from_ipynb = json.loads((tmp_path / "out" / "01_points.ipynb").read_text())
    from_py = json.loads(released.read_text())
    assert from_ipynb["metadata"].pop("pose_course") == {"source": "01_points.ipynb"}
    assert from_py["metadata"].pop("pose_course") == {"source": "01_points.py"}
    assert from_ipynb == from_py


def test_editing_one_cell_changes_one_id(tmp_path):
    text = FIXTURE_SOURCE.read_text()
    edited = tmp_path / "01_points.py"
    edited.write_text(text.replace("## Exercise 3: count the labelled keypoints", "## Exercise 3: counting"))
    before = [c.id for c in read_source(FIXTURE_SOURCE).cells]
    after = [c.id for c in read_source(edited).cells]
    assert sum(a != b for a, b in zip(before, after)) == 1


def test_check_mode_detects_stale_missing_and_extra_notebooks(tmp_path, capsys):
    out = tmp_path / "notebooks"
    args = ["release", "--source", str(FIXTURE_SOURCES), "--out", str(out)]
    assert main(args + ["--check"]) == 1  # nothing released yet
    assert "01_points.ipynb is missing" in capsys.readouterr().out
    assert main(args) == 0
    assert main(args + ["--check"]) == 0
    notebook = out / "01_points.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[0].source += " (edited by hand)"
    nbformat.write(nb, notebook)
    capsys.readouterr()
    assert main(args + ["--check"]) == 1
    assert "differs from a fresh release" in capsys.readouterr().out
    assert main(args) == 0 and main(args + ["--check"]) == 0
    shutil.copy(notebook, out / "99_old.ipynb")
    assert main(args + ["--check"]) == 1
    assert "99_old.ipynb has no source" in capsys.readouterr().out


def test_release_removes_notebooks_of_deleted_sources_only(tmp_path):
    out = tmp_path / "notebooks"
    release(FIXTURE_SOURCES, out)
    shutil.copy(out / "01_points.ipynb", out / "02_gone.ipynb")  # released earlier from a removed source
    hand_made = nbformat.v4.new_notebook()
    nbformat.write(hand_made, out / "scratch.ipynb")
    release(FIXTURE_SOURCES, out)
    assert sorted(p.name for p in out.iterdir()) == ["01_points.ipynb", "scratch.ipynb"]


def test_empty_or_missing_sources_release_nothing(tmp_path, capsys):
    assert release(tmp_path / "missing", tmp_path / "out") == []
    assert list((tmp_path / "out").iterdir()) == []
    assert check_release(tmp_path / "missing", tmp_path / "also-missing") == []
    assert main(["release", "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), "--check"]) == 0


def test_two_sources_for_one_notebook_are_refused(tmp_path):
    shutil.copy(FIXTURE_SOURCE, tmp_path / "01_points.py")
    jupytext.write(jupytext.read(FIXTURE_SOURCE), tmp_path / "01_points.ipynb")
    with pytest.raises(SourceError, match="two sources for notebook '01_points'"):
        find_sources(tmp_path)


ANSWER = "# %%\ndef f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n"
GRADED = "# %%\n# points: 2\nassert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == 2\n### END HIDDEN TESTS\n\n"


@pytest.mark.parametrize("text, message", [
    (ANSWER + "# %%\n### BEGIN HIDDEN TESTS\nassert f(2) == 2\n### END HIDDEN TESTS\n",
     r"cell 2: the graded cell of 'f' needs a '# points: N' line"),
    ("# %%\ndef f(x):\n    ### BEGIN SOLUTION\n    return x\n" + GRADED, r"cell 1: '### BEGIN SOLUTION' is never closed"),
    (GRADED + ANSWER + GRADED, r"cell 1: graded tests must follow an answer cell"),
    (ANSWER + ANSWER.replace("def f", "def g"), r"exercise 'f' has no graded cell"),
    (ANSWER + "# %%\nf(1)\n", r"exercise 'f' has no graded cell"),
    (ANSWER + GRADED + ANSWER + GRADED, r"cell 3: a second exercise named 'f'"),
    (ANSWER + GRADED + GRADED, r"cell 3: graded tests must follow an answer cell"),
    ("# %% [markdown]\n# ### BEGIN SOLUTION\n# ### END SOLUTION\n", r"cell 1: .* belong in code cells"),
    ('# %% tags=["experiment"]\n' + ANSWER[5:] + GRADED, r"cell 1: an experiment cell"),
    ("# %%\nx = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION\n" + GRADED, r"must define the function"),
    (ANSWER + GRADED.replace("points: 2", "points: two"), r"'# points: two' is not a number"),
    (ANSWER + GRADED.replace("points: 2", "points: 0"), r"points must be a finite number > 0, got 0"),
    ("def f(x):\n    return x\n", r"must be in jupytext's percent format"),
])
def test_broken_sources_are_refused_with_file_and_cell(tmp_path, text, message):
    path = tmp_path / "07_broken.py"
    path.write_text(text)
    with pytest.raises(SourceError, match=message) as caught:
        read_source(path)
    assert "07_broken.py" in str(caught.value)


def test_exercise_name_can_be_given_explicitly(tmp_path):
    path = tmp_path / "01_x.py"
    path.write_text("# %%\n# exercise: heatmap_model\nclass HeatmapModel:\n    ### BEGIN SOLUTION\n    pass\n"
                    "    ### END SOLUTION\n\n" + GRADED.replace("f(1) == 1", "HeatmapModel").replace("f(2) == 2", "1"))
    nb = student_version(read_source(path))
    assert [e.name for e in exercises(nb)] == ["heatmap_model"]
    assert "raise NotImplementedError()" in nb.cells[0].source


def test_solved_version_holds_the_solutions_without_markers_or_hidden_tests():
    nb = solved_version(read_source(FIXTURE_SOURCE))
    cells = {cell.id: cell for cell in nb.cells}
    assert cells["count_labelled"].source == (
        "def count_labelled(visibility):\n"
        '    """Number of keypoints with v > 0 (labelled, visible or not), as an int."""\n'
        "    return int((np.asarray(visibility) > 0).sum())")
    text = notebook_text(nb)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
