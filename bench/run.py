"""``make bench``: every benchmark of the course, measured in one run, printed and saved.

    python bench/run.py                      # everything (about 20 minutes on a 2-core CPU)
    python bench/run.py --only metrics ops   # some of them
    python bench/run.py --quick              # every benchmark at a tiny size (a smoke test)

Each ``bench/bench_<name>.py`` has ``run(quick) -> dict``; the figures and ratios are printed
as they are measured and written together to ``bench/results.json`` with the machine's
description.  Speed and accuracy targets live here, never in the unit tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("data", "heatmaps", "metrics", "ops", "models", "training", "grading")


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every benchmark runs")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    results = {"machine": machine(), "quick": args.quick, "benchmarks": {}}
    print(json.dumps(results["machine"]))
    for name in args.only or BENCHMARKS:
        print(f"\n=== {name} " + "=" * (60 - len(name)), flush=True)
        module = importlib.import_module(f"bench_{name}")
        start = time.perf_counter()
        results["benchmarks"][name] = module.run(quick=args.quick)
        results["benchmarks"][name]["bench_seconds"] = round(time.perf_counter() - start, 1)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
