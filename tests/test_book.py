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



def test_report_markdown_shows_computed_prose_and_refuses_nothing():
    from course_lib import report

    gain = 0.1234
    shown = report.markdown(f"stage 2 gained {gain:.2f}")
    assert shown._repr_markdown_() == "stage 2 gained 0.12"
    for bad in ("", "  ", None):
        try:
            report.markdown(bad)
        except ValueError as error:
            assert "text" in str(error)
        else:
            raise AssertionError(f"report.markdown({bad!r}) was accepted")


def test_every_chapter_has_a_summary_of_five_to_eight_bullets_and_a_stretch_exercise():
    sources = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
    assert len(sources) >= 11, sources
    for source in sources:
        bullets, stretch = chapter_outline(read_source(source))
        assert 5 <= len(bullets) <= 8, (source.name, bullets)
        assert 1 <= len(stretch) <= 2, (source.name, stretch)
