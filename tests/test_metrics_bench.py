"""Smoke test of bench/bench_metrics.py: the quick run works and both evaluators agree (no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("pycocotools")
BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_metrics.py"


def test_quick_benchmark_runs_and_numbers_are_identical(capsys):
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.run(quick=True)
    assert figures["identical"] is True
    assert figures["images"] == 200 and figures["detections"] > 0
    assert figures["course_lib_s"] > 0 and figures["pycocotools_s"] > 0
    json.dumps(figures)  # JSON-serialisable
    assert "speed-up" in capsys.readouterr().out
