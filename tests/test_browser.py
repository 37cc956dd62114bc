"""The demos in a real browser: Voila serves a small notebook, Debian's chromium (headless, driven by
Playwright, no browser download) opens it, moves a slider and sees the numbers change.

Screenshots go to build/browser/.  The Voila server runs in its own process group, which the
fixture's teardown always stops.  Nothing is trained here (the heatmap and OKS explorers only).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium; "
                ".ci/run installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(port: int, process: subprocess.Popen, log: Path, seconds: float = 40.0) -> None:
    """Wait until Voila accepts connections (asking for a page would start a kernel just for this)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"voila did not listen on port {port} within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def voila_page(tmp_path):
    """Serve a notebook with two demos through Voila on 127.0.0.1; yield its URL; always stop the server."""
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("from course_lib import widgets"),
            nbformat.v4.new_markdown_cell("## Heatmap explorer"),
            nbformat.v4.new_code_cell("widgets.heatmap_explorer(unbiased=True)"),
            nbformat.v4.new_markdown_cell("## OKS explorer"),
            nbformat.v4.new_code_cell("widgets.oks_explorer()"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "demo.ipynb"
    nbformat.write(notebook, path)
    port = _free_port()
    log = tmp_path / "voila.log"
    env = {**os.environ, "MPLBACKEND": "Agg", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "voila", str(path), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--Voila.port_retries=0"],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_server(port, process, log)
        yield f"http://127.0.0.1:{port}/"
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)  # voila and the kernel it started
                process.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # the kernel may outlive voila: end the whole group
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for_change(locator, before: str, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = locator.inner_text()
        if now != before:
            return now
        time.sleep(0.2)
    raise AssertionError(f"the readout did not change within {seconds:.0f} s: {before!r}")


def test_demos_render_and_follow_a_slider_in_chromium(voila_page, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.goto(voila_page, timeout=60_000)
            # the heatmap explorer's readout: a table of the four decoders
            readout = page.locator(".widget-html-content", has_text="soft_argmax").first
            readout.wait_for(timeout=60_000)
            page.locator(".widget-html-content", has_text="OKS =").first.wait_for(timeout=30_000)
            pictures = page.locator(".widget-image")
            assert pictures.count() == 2
            for i in range(2):  # the figures arrived as real images
                assert pictures.nth(i).evaluate("img => img.complete && img.naturalWidth") >= 600
            before, picture_before = readout.inner_text(), pictures.first.get_attribute("src")
            # at 1400 px the readout's table is shown whole: nothing cut off at the right edge
            assert readout.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), "the readout table is cut off"
            right = readout.evaluate("el => el.getBoundingClientRect().right")
            assert right <= page.evaluate("() => document.documentElement.clientWidth") + 1
            assert "keypoint (29.30, 26.60)" in before
            page.screenshot(path=str(SCREENSHOTS / "demos_before.png"), full_page=True)

            # move the x slider with the keyboard: five steps of 0.05 px to the right
            handle = page.locator(".widget-slider", has_text="x (input px)").locator(".noUi-handle").first
            handle.focus()
            for _ in range(5):
                handle.press("ArrowRight")
            after = _wait_for_change(readout, before)
            moved = re.search(r"keypoint \(([\d.]+), 26\.60\)", after)
            assert moved and 29.3 < float(moved.group(1)) <= 29.55 + 1e-9, after
            page.wait_for_function(
                "old => document.querySelector('.widget-image').getAttribute('src') !== old", arg=picture_before,
                timeout=30_000,
            )

            # drag the OKS explorer's dx slider to the right: the OKS falls below 1
            oks = page.locator(".widget-html-content", has_text="OKS =").first
            oks_before = oks.inner_text()
            assert "OKS = 1.0000" in oks_before
            track = page.locator(".widget-slider", has_text="dx (px)").locator(".noUi-target").first
            box = track.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            oks_after = _wait_for_change(oks, oks_before)
            assert "OKS = 1.0000" not in oks_after
            page.screenshot(path=str(SCREENSHOTS / "demos_after.png"), full_page=True)

            # a column as narrow as JupyterLab's notebook at 1400 px: the readout table wraps, nothing is cut off
            page.set_viewport_size({"width": 1000, "height": 1000})
            page.wait_for_timeout(500)
            table = page.locator(".widget-html-content", has_text="soft_argmax").locator("table").first
            right_edge = table.evaluate("t => t.getBoundingClientRect().right")
            assert right_edge <= page.evaluate("document.documentElement.clientWidth"), right_edge
            page.screenshot(path=str(SCREENSHOTS / "demos_narrow.png"), full_page=True)
        finally:
            browser.close()
    assert (SCREENSHOTS / "demos_after.png").stat().st_size > 10_000
