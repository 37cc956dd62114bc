"""What the grading sandbox costs: one notebook graded in bubblewrap and without it.

Run:  python bench/bench_grading.py  [--quick]

The same solved notebooks are graded alternately with the sandbox (bubblewrap, the grading
library, a cgroup or the watchdog) and with ``--no-sandbox`` (the same judge and kernel, no
bubblewrap), several times each; the best time of each is kept, so that other work on the
machine disturbs the comparison least.  The difference is what the sandbox adds per notebook.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from course_lib.grading.authoring import notebook_text, read_source, solved_version
from course_lib.grading.grade import SourceNotebook, grade_notebook, prepare_notebook
from course_lib.grading.sandbox import bubblewrap_problem

ROOT = Path(__file__).resolve().parents[1]


def run(quick: bool = False) -> dict:
    """Grade each chapter's solved notebook with and without the sandbox; print and return the times."""
    if bubblewrap_problem():
        print(f"skipped: {bubblewrap_problem()}")
        return {"skipped": bubblewrap_problem()}
    chapters = ["00_the_task"] if quick else ["00_the_task", "04_hourglass", "07_hrnet"]
    repeats = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for chapter in chapters:
            source = SourceNotebook.load(ROOT / "solutions" / f"{chapter}.py")
            library = prepare_notebook(source, folder / chapter / "library", log=lambda line: None)
            path = folder / chapter / f"{chapter}.ipynb"
            path.write_text(notebook_text(solved_version(read_source(source.path))))
            best = {True: float("inf"), False: float("inf")}
            for _ in range(repeats):
                for sandbox in (True, False):
                    start = time.perf_counter()
                    result = grade_notebook(path, source, student="bench", sandbox=sandbox, library=library)
                    seconds = time.perf_counter() - start
                    if result.points != result.max_points:
                        raise RuntimeError(f"{chapter}: the solution got {result.points} of {result.max_points}")
                    best[sandbox] = min(best[sandbox], seconds)
            row = {"notebook": chapter, "sandbox_s": round(best[True], 2), "no_sandbox_s": round(best[False], 2),
                   "added_s": round(best[True] - best[False], 2)}
            print(f"{chapter:20s} sandbox {row['sandbox_s']:6.2f} s   without {row['no_sandbox_s']:6.2f} s   "
                  f"added {row['added_s']:+.2f} s", flush=True)
            rows.append(row)
    return {"notebooks": rows, "repeats": repeats}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=1))
