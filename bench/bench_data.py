"""How fast the synthetic data is made and read.

    python bench/bench_data.py            # full: a few hundred images of each kind
    python bench/bench_data.py --quick    # a few dozen, in seconds

Figures: images per second for the two default kinds (single person 128x128, scenes of 2-5
people 256x256), rendering alone and written to disk (PNG + COCO JSON), wall clock and CPU
time of this process (CPU time is the fairer figure on a shared machine); people per second
served by ``CocoKeypoints`` from disk and from its in-memory cache; and the time the default
sets (``DEFAULT_SPLITS``) take to make at the measured rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

try:
    from course_lib import data
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from course_lib import data

KINDS = {
    "single 128x128": {"size": (128, 128), "persons": (1, 1)},
    "multi 256x256": {"size": (256, 256), "persons": (2, 5)},
}


def _timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) taken by ``function()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(quick: bool = False) -> dict:
    """Measure and print; return the figures as a JSON-serialisable dict."""
    counts = {"single 128x128": 40 if quick else 600, "multi 256x256": 10 if quick else 150}
    results: dict = {"quick": quick, "kinds": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name, spec in KINDS.items():
            n = counts[name]
            data.synthetic_scene(0, 0, **spec)  # warm-up
            render_wall, render_cpu = _timed(lambda: [data.synthetic_scene(0, i, **spec) for i in range(n)])
            path = Path(folder) / name.split()[0]
            write_wall, write_cpu = _timed(lambda: data.make_synthetic(path, n, seed=0, **spec))
            dataset = data.CocoKeypoints(path / "annotations.json", cache_images=True)
            read_wall, _ = _timed(lambda: [dataset[i] for i in range(len(dataset))])
            cached_wall, _ = _timed(lambda: [dataset[i] for i in range(len(dataset))])
            results["kinds"][name] = {
                "images": n,
                "people": len(dataset),
                "render_images_per_s_wall": n / render_wall,
                "render_images_per_s_cpu": n / render_cpu,
                "write_images_per_s_wall": n / write_wall,
                "write_images_per_s_cpu": n / write_cpu,
                "read_people_per_s_from_disk": len(dataset) / read_wall,
                "read_people_per_s_cached": len(dataset) / cached_wall,
                "megabytes_per_1000_images": sum(p.stat().st_size for p in path.rglob("*.png")) / n * 1000 / 2**20,
            }

    rates = {"single": results["kinds"]["single 128x128"], "multi": results["kinds"]["multi 256x256"]}
    default_seconds = {
        split: spec["images"] / rates[split.split("/")[0]]["write_images_per_s_cpu"]
        for split, spec in data.DEFAULT_SPLITS.items()
    }
    results["default_sets_seconds_cpu"] = default_seconds
    results["default_sets_total_seconds_cpu"] = sum(default_seconds.values())

    columns = ("render/s", "(cpu)", "write/s", "(cpu)", "read/s", "cached/s", "MB/1000")
    print(f"{'':16s}" + "".join(f"{c:>10s}" for c in columns))
    keys = ("render_images_per_s_wall", "render_images_per_s_cpu", "write_images_per_s_wall", "write_images_per_s_cpu",
            "read_people_per_s_from_disk", "read_people_per_s_cached", "megabytes_per_1000_images")
    for name, r in results["kinds"].items():
        print(f"{name:16s}" + "".join(f"{r[key]:10.1f}" if key.startswith("mega") else f"{r[key]:10.0f}" for key in keys))
    ratio = rates["single"]["read_people_per_s_cached"] / rates["single"]["read_people_per_s_from_disk"]
    print(f"cache speed-up when reading single-person items: {ratio:.1f}x")
    print("default sets at these rates (CPU): " + ", ".join(f"{k} {v:.1f} s" for k, v in default_seconds.items())
          + f"; total {results['default_sets_total_seconds_cpu']:.1f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced size that runs in seconds")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(quick=args.quick)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
