"""``make book``'s index page lists each chapter's summary bullets and stretch exercises."""

from __future__ import annotations

from pathlib import Path

import nbformat

from course_lib.book import ChapterRun, chapter_outline, summary_page
from course_lib.grading.authoring import read_source
from grading_course import COURSE

ROOT = Path(__file__).resolve().parents[1]


def test_the_outline_reads_the_summary_bullets_and_the_stretch_exercises():
    bullets, stretch = chapter_outline(read_source(COURSE / "stretch" / "02_stretch.py"))
    assert bullets == ["A keypoint is labelled when v > 0."]
    assert [(e.name, e.points) for e in stretch] == [("flip_y", 1)]
    assert "Stretch exercise" in stretch[0].heading


def test_the_index_page_lists_summaries_and_stretch_exercises(tmp_path):
    nb = read_source(COURSE / "stretch" / "02_stretch.py")
    nb.cells.append(nbformat.v4.new_markdown_cell("## Summary\n\n- first point\n  goes on\n* second point\n\n## Next"))
    page = summary_page([ChapterRun("02_stretch", nb, 1.0, None)], tmp_path, fast=True)
    assert "<li>first point goes on</li>" in page and "<li>second point</li>" in page
    assert "<code>flip_y</code> (1 bonus point)" in page

