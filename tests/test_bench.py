"""Every benchmark runs (at a tiny size) and writes its figures; the figures themselves are not asserted."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_bench_runs_every_benchmark_quickly(tmp_path, default_data):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "bench/run.py", "--quick", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads(out.read_text())
    assert set(saved["benchmarks"]) == {"data", "heatmaps", "metrics", "ops", "models", "training", "grading"}
    assert saved["machine"]["cpu_count"] >= 1
    training = saved["benchmarks"]["training"]
    assert [r["model"] for r in training["runs"]] == ["simplebaseline_tiny", "deeppose_tiny", "hrnet_tiny"]
    assert all(0.0 <= r["pck@0.2"] <= 1.0 and r["steps"] > 0 for r in training["runs"])
    pipeline = training["pipeline"]["rows"]
    assert [r["model"] for r in pipeline] == ["simplebaseline_tiny", "hrnet_tiny"]
    assert all(r["bare_images_per_second"] > 0 and r["fit_images_per_second"] > 0 for r in pipeline)
