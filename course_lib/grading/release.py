"""``release``: regenerate the student notebooks (``notebooks/``) from the sources (``solutions/``).

Each source ``solutions/NN_name.py`` (or ``.ipynb``) becomes ``notebooks/NN_name.ipynb``:
solution regions replaced by ``raise NotImplementedError()`` stubs (the ``def`` line and the
docstring stay), hidden tests removed, outputs cleared, graded cells and visible checks
read-only, the kernel set to ``pose-course``.  The result depends on the sources only: no
timestamps, no random ids, so releasing twice gives the same bytes and ``git diff`` shows
only what an author changed.

A notebook in ``notebooks/`` that was released from a source that no longer exists is
removed; a notebook that did not come from a release is left alone (``check_release``
reports it, since ``notebooks/`` should hold released notebooks only).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from course_lib.grading.authoring import find_sources, notebook_text, read_source, student_version


def released_notebooks(source: str | Path = "solutions") -> dict[str, str]:
    """``{"NN_name.ipynb": JSON text}`` of the student notebooks made from every source in ``source``."""
    return {f"{name}.ipynb": notebook_text(student_version(read_source(path)))
            for name, path in find_sources(source).items()}


def release(source: str | Path = "solutions", out: str | Path = "notebooks") -> list[Path]:
    """Write the student notebooks into ``out``; return the paths written or removed.

    Files whose content is already right are not rewritten (their modification time stays).
    """
    out = Path(out)
    wanted = released_notebooks(source)
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for filename, text in wanted.items():
        path = out / filename
        if not path.exists() or path.read_bytes() != text.encode("utf-8"):
            path.write_bytes(text.encode("utf-8"))
            changed.append(path)
    for path in sorted(out.glob("*.ipynb")):
        if path.name not in wanted and _was_released(path):
            path.unlink()
            changed.append(path)
    return changed


def check_release(source: str | Path = "solutions", out: str | Path = "notebooks") -> list[str]:
    """What differs between ``out`` and a fresh release from ``source`` (``[]``: up to date)."""
    out = Path(out)
    wanted = released_notebooks(source)
    problems = []
    for filename, text in wanted.items():
        path = out / filename
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_bytes() != text.encode("utf-8"):
            problems.append(f"{path} differs from a fresh release of its source")
    if out.is_dir():
        for path in sorted(out.glob("*.ipynb")):
            if path.name not in wanted:
                problems.append(f"{path} has no source in {source}")
    return problems


def _was_released(path: Path) -> bool:
    try:
        return "pose_course" in nbformat.read(path, as_version=4).metadata
    except Exception:  # not a notebook: not ours
        return False
