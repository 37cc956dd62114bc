"""Experiment tables: shown in the notebook, and collected into the book's summary page.

Every chapter ends its experiment with one call::

    report.experiment_table(rows, chapter="02", title="Decoding error vs stride",
                            note="DARK stays below 0.05 px at every stride.")

``rows`` is a list of dicts (one per row, same keys).  In a notebook the table renders as
HTML; ``print()`` gives plain text.  When ``make book`` runs the chapters it sets
``COURSE_BOOK_DIR``, and each table is also written there as JSON, from which
``python -m course_lib.book`` builds the summary page.  A sentence of prose that quotes the
run's numbers is made by :func:`markdown` from those numbers, never typed.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

BOOK_DIR_VARIABLE = "COURSE_BOOK_DIR"


def _format(value: Any, floatfmt: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else format(float(value), floatfmt)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return str(value)


@dataclass
class ExperimentTable:
    """A small table of results: ``columns`` and ``rows`` (lists of cells), a title and a note."""

    title: str
    chapter: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    floatfmt: str = ".3f"
    profile: str = field(default_factory=lambda: "fast" if os.environ.get("COURSE_FAST", "0") not in ("", "0") else "full")

    def cells(self) -> list[list[str]]:
        return [[_format(value, self.floatfmt) for value in row] for row in self.rows]

    def __str__(self) -> str:
        cells = self.cells()
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(self.columns)]
        lines = [self.title, "  ".join(c.rjust(w) for c, w in zip(self.columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in self.cells()
        )
        note = f"<p><em>{html.escape(self.note)}</em></p>" if self.note else ""
        return (f"<p><strong>{html.escape(self.title)}</strong></p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}")

    def to_dict(self) -> dict:
        return {"title": self.title, "chapter": self.chapter, "columns": self.columns,
                "rows": self.cells(), "note": self.note, "profile": self.profile}


def experiment_table(
    rows: Sequence[dict], *, chapter: str, title: str, note: str = "", floatfmt: str = ".3f"
) -> ExperimentTable:
    """Make (and, under ``make book``, record) the table of a chapter's experiment.

    Args:
        rows: one dict per row; every row has the same keys, which become the columns.
        chapter: the chapter number as two digits, e.g. ``"03"``.
        title: what the table shows.
        note: one honest sentence: does the toy result agree with the paper?
        floatfmt: format of float cells.
    """
    rows = list(rows)
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows must be a non-empty list of dicts (one per table row)")
    columns = list(rows[0])
    for i, row in enumerate(rows):
        if list(row) != columns:
            raise ValueError(f"rows[{i}] has keys {list(row)}, expected {columns} like rows[0]")
    if not re.fullmatch(r"\d\d", str(chapter)):
        raise ValueError(f"chapter must be two digits such as '03', got {chapter!r}")
    table = ExperimentTable(title, str(chapter), columns, [[row[c] for c in columns] for row in rows], note, floatfmt)
    book_dir = os.environ.get(BOOK_DIR_VARIABLE)
    if book_dir:
        folder = Path(book_dir) / "experiments"
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]
        (folder / f"{chapter}-{slug}.json").write_text(json.dumps(table.to_dict(), indent=1))
    return table


def markdown(text: str) -> Any:
    """Prose computed from the run, shown as markdown: the last expression of a cell, e.g.
    ``report.markdown(f"In this run stage 2 gained {gain:.1f} points")``.  A number a chapter's
    prose takes from its own run is printed this way, never typed."""
    from IPython.display import Markdown

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    return Markdown(text)
