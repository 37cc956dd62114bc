"""``make book``: run every chapter's solution notebook and collect the results into one page.

    python -m course_lib.book                      # full profile, all chapters -> build/book/
    python -m course_lib.book --fast --chapters 02 03

For each ``solutions/NN_name.py`` it runs the instructor's notebook (solutions and hidden
tests included) top to bottom in the course's kernel, then writes ``build/book/NN_name.ipynb``
(executed, with outputs) and ``build/book/NN_name.html``.  Each chapter's experiment tables
(:func:`course_lib.report.experiment_table`) are collected into ``build/book/index.html``
with the time every chapter took, the bullets of its ``## Summary`` section and its stretch
exercises (:func:`chapter_outline`).  Exit status 1 if any chapter failed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.report import BOOK_DIR_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "pose-course"


@dataclass
class ChapterRun:
    """One executed chapter: the notebook with outputs, seconds taken, and the first error (or None)."""

    name: str
    notebook: nbformat.NotebookNode
    seconds: float
    error: str | None


def execute_chapter(
    source: str | os.PathLike,
    *,
    fast: bool,
    book_dir: str | os.PathLike | None = None,
    timeout_cell: float = 900,
    kernel_name: str = KERNEL,
) -> ChapterRun:
    """Run the instructor version of ``source`` (a ``solutions/`` notebook) and return the result.

    ``fast`` sets ``COURSE_FAST=1`` for the kernel (the CI profile).  ``book_dir`` is passed as
    ``COURSE_BOOK_DIR`` so that experiment tables are recorded there.  The kernel runs in a
    scratch folder, as the grader's does.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from course_lib.grading.authoring import read_source
    from course_lib.grading.grade import record_reply

    source = Path(source)
    nb = read_source(source)
    env_backup = dict(os.environ)
    os.environ["COURSE_FAST"] = "1" if fast else "0"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if book_dir is not None:
        os.environ[BOOK_DIR_VARIABLE] = str(Path(book_dir).resolve())
    else:
        os.environ.pop(BOOK_DIR_VARIABLE, None)
    error = None
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="pose-course-book-") as scratch:
            # record_reply marks each cell ok/error, which the grader's score_notebook reads
            client = NotebookClient(nb, timeout=timeout_cell, kernel_name=kernel_name,
                                    resources={"metadata": {"path": scratch}}, on_cell_executed=record_reply)
            try:
                client.execute()
            except CellExecutionError as failure:
                error = str(failure).strip().splitlines()[-1][:500] if str(failure).strip() else repr(failure)
            except Exception as failure:  # a dead kernel, a timeout
                error = f"{type(failure).__name__}: {failure}"[:500]
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    return ChapterRun(source.stem, nb, time.perf_counter() - start, error)


@dataclass(frozen=True)
class StretchExercise:
    """A stretch exercise as the book lists it: the function, its bonus points, the heading above it."""

    name: str
    points: float
    heading: str


def chapter_outline(nb: nbformat.NotebookNode) -> tuple[list[str], list[StretchExercise]]:
    """The bullets of the chapter's ``## Summary`` section and its stretch exercises, in order.

    A bullet is a markdown line starting with ``- `` or ``* `` after the ``## Summary`` heading
    and before the next heading; a continuation line (indented) joins its bullet.  A stretch
    exercise is one whose graded cell says ``# bonus: N``
    (:mod:`course_lib.grading.authoring`), listed with the last markdown heading above it.
    """
    from course_lib.grading.authoring import exercises

    bullets: list[str] = []
    in_summary = False
    heading = ""
    headings: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            headings.setdefault(cell.get("id", ""), heading)
            continue
        for line in cell.source.splitlines():
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
                in_summary = bool(re.fullmatch(r"##\s*Summary\s*", line.strip()))
            elif in_summary and re.match(r"^[-*] ", line):
                bullets.append(line[2:].strip())
            elif in_summary and bullets and line.startswith("  ") and line.strip():
                bullets[-1] += " " + line.strip()
    stretch = [StretchExercise(e.name, e.points, headings.get(e.answer_id, "")) for e in exercises(nb) if e.bonus]
    return bullets, stretch


def _outline_html(nb: nbformat.NotebookNode) -> str:
    bullets, stretch = chapter_outline(nb)
    parts = []
    if bullets:
        parts.append("<h3>Summary</h3><ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in bullets) + "</ul>")
    if stretch:
        parts.append("<h3>Stretch exercises</h3><ul>" + "".join(
            f"<li><code>{html.escape(e.name)}</code> ({e.points:g} bonus point{'s' if e.points != 1 else ''})"
            f"{': ' + html.escape(e.heading) if e.heading else ''}</li>" for e in stretch) + "</ul>")
    return "".join(parts)


def write_html(nb: nbformat.NotebookNode, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


def summary_page(runs: list[ChapterRun], book_dir: Path, fast: bool) -> str:
    """The index page: per chapter its status, time, summary, stretch exercises and experiment tables."""
    tables: dict[str, list[dict]] = {}
    for path in sorted((book_dir / "experiments").glob("*.json")):
        table = json.loads(path.read_text())
        tables.setdefault(table["chapter"], []).append(table)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Pose estimation course: experiments</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}.fail{color:#b00}</style>",
        "<h1>2D human pose estimation, from DeepPose to HRNet: experiment summary</h1>",
        f"<p>Profile: <strong>{'fast (COURSE_FAST=1)' if fast else 'full'}</strong>. "
        "Each chapter's notebook was run top to bottom; its tables are reproduced below.</p>",
    ]
    for run in runs:
        number = run.name[:2]
        status = "ok" if run.error is None else f"<span class='fail'>failed: {html.escape(run.error)}</span>"
        parts.append(f"<h2><a href='{run.name}.html'>{html.escape(run.name)}</a></h2>"
                     f"<p>{status}; {run.seconds:.0f} s</p>")
        parts.append(_outline_html(run.notebook))
        for table in tables.get(number, []):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in table["columns"])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                           for row in table["rows"])
            parts.append(f"<h3>{html.escape(table['title'])}</h3><table><tr>{head}</tr>{rows}</table>"
                         f"<p><em>{html.escape(table['note'])}</em></p>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="the CI profile (COURSE_FAST=1)")
    parser.add_argument("--chapters", nargs="*", default=None, help="chapter numbers, e.g. 00 03 (default: all)")
    parser.add_argument("--source", type=Path, default=ROOT / "solutions")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    args = parser.parse_args(argv)

    sources = sorted(args.source.glob("[0-9][0-9]_*.py"))
    if args.chapters:
        sources = [s for s in sources if s.name[:2] in args.chapters]
    if not sources:
        parser.error(f"no chapter sources found in {args.source} for {args.chapters or 'all chapters'}")
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in (args.out / "experiments").glob("*.json"):
        if stale.name[:2] in {s.name[:2] for s in sources}:
            stale.unlink()
    runs = []
    for source in sources:
        print(f"running {source.name} ({'fast' if args.fast else 'full'} profile)...", flush=True)
        run = execute_chapter(source, fast=args.fast, book_dir=args.out)
        nbformat.write(run.notebook, args.out / f"{run.name}.ipynb")
        write_html(run.notebook, args.out / f"{run.name}.html")
        print(f"  {'ok' if run.error is None else 'FAILED: ' + run.error} in {run.seconds:.0f} s", flush=True)
        runs.append(run)
    (args.out / "index.html").write_text(summary_page(runs, args.out, args.fast), encoding="utf-8")
    print(f"summary: {args.out / 'index.html'}")
    return 0 if all(r.error is None for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
