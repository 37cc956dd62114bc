"""`make figures`: the README's gallery is drawn by one command; its code path, on a few items."""

from pathlib import Path

import pytest
from PIL import Image

from course_lib import figures


def test_the_quick_run_draws_every_figure_small(tmp_path):
    assert figures.main([str(tmp_path / "out"), "--quick"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written == sorted(f"{name}.png" for name in figures.FIGURES)
    for name in written:
        path = tmp_path / "out" / name
        assert path.stat().st_size < 150 * 1024, f"{name} is {path.stat().st_size} bytes"
        with Image.open(path) as image:
            width, height = image.size
            assert 150 < width < 1200 and 100 < height < 900, (name, image.size)
            assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(99)) > 20, f"{name} is (almost) blank"


def test_the_committed_gallery_is_complete_and_small():
    folder = Path(__file__).resolve().parents[1] / "docs" / "figures"
    if not folder.is_dir():
        pytest.fail("docs/figures/ is missing: run `make figures`")
    for name in figures.FIGURES:
        path = folder / f"{name}.png"
        assert path.is_file(), f"{path} is missing: run `make figures`"
        assert path.stat().st_size < 150 * 1024
    readme = (folder.parents[1] / "README.md").read_text()
    for name in figures.FIGURES:
        assert f"docs/figures/{name}.png" in readme, f"README.md does not show {name}.png"
