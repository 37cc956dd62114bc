"""Command line: ``python -m course_lib.grading {release,validate,grade} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.grading",
        description="Release student notebooks, let students check them, grade submissions.")
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="regenerate the student notebooks from the sources")
    release.add_argument("--source", default="solutions", help="folder of source notebooks (default: solutions)")
    release.add_argument("--out", default="notebooks", help="folder of student notebooks (default: notebooks)")
    release.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 if the student notebooks differ from a fresh release")
    release.add_argument("--student-dir", metavar="DIR",
                         help="also write the student edition of the course into DIR (a new folder): notebooks, "
                              "library without hidden tests, data scripts, README; no solutions, no tests")

    validate = commands.add_parser("validate", help="run a notebook's visible checks (for students)")
    validate.add_argument("notebook", help="the notebook, e.g. notebooks/01_deeppose.ipynb")
    validate.add_argument("--timeout-cell", type=float, default=600, help="seconds per cell (default: 600)")
    validate.add_argument("--skip-tag", default="experiment", help="cells with this tag are skipped")

    grade = commands.add_parser("grade", help="grade a folder of submissions (one folder per student)")
    grade.add_argument("submissions", help="folder with one folder of notebooks per student")
    grade.add_argument("--out", default="grades.csv", help="the grade table to write (default: grades.csv)")
    grade.add_argument("--gradebook", default="gradebook.db", help="SQLite gradebook (default: gradebook.db)")
    grade.add_argument("--source", default="solutions", help="folder of source notebooks (default: solutions)")
    grade.add_argument("--timeout-cell", type=float, default=120, help="seconds per cell (default: 120)")
    grade.add_argument("--timeout-notebook", type=float, default=900,
                       help="seconds per notebook, kernel start included (default: 900)")
    grade.add_argument("--memory-mb", type=int, default=4096,
                       help="memory limit of a notebook, all its processes together, in MB; 0: none (default: 4096)")
    grade.add_argument("--max-processes", type=int, default=256,
                       help="processes and threads a notebook may run at once (default: 256)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run student code without bubblewrap (as you, with your files and network: see the README)")
    grade.add_argument("--skip-tag", default="experiment", help="cells with this tag are not run (default: experiment)")
    grade.add_argument("--jobs", type=int, default=1, help="notebooks graded at the same time (default: 1)")
    grade.add_argument("--notebook", action="append", dest="notebooks", metavar="NAME",
                       help="grade only this notebook (repeatable; default: every submitted one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from course_lib.grading.authoring import SourceError
    from course_lib.grading.grade import GradingError

    try:
        if args.command == "release":
            return _release(args)
        if args.command == "validate":
            return _validate(args)
        return _grade(args)
    except (SourceError, GradingError, FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _release(args: argparse.Namespace) -> int:
    from course_lib.grading.release import check_release, release

    if args.check:
        problems = check_release(args.source, args.out)
        for problem in problems:
            print(problem)
        if problems:
            print(f"{args.out}/ is out of date: run `python -m course_lib.grading release` (or `make release`).")
            return 1
        print(f"{args.out}/ matches a fresh release of {args.source}/.")
        return 0
    changed = release(args.source, args.out)
    for path in changed:
        print(f"{'wrote' if path.exists() else 'removed'} {path}")
    print(f"{args.out}/ is up to date ({len(changed)} file(s) changed).")
    if args.student_dir:
        from course_lib.grading.edition import write_student_edition

        import course_lib

        root = Path(course_lib.__file__).resolve().parents[1]  # the repository: README, Makefile, data_scripts
        written = write_student_edition(args.student_dir, root, notebooks=args.out)
        print(f"wrote the student edition into {args.student_dir}/ ({', '.join(p.name for p in written)}): "
              "no solutions, no tests, no hidden checks")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from course_lib.grading.validate import PASSED, format_summary, validate_notebook

    results, notes = validate_notebook(args.notebook, timeout_cell=args.timeout_cell, skip_tag=args.skip_tag)
    print(format_summary(args.notebook, results, notes))
    return 0 if all(result.status == PASSED for result in results) else 1


def _grade(args: argparse.Namespace) -> int:
    from course_lib.grading.grade import grade_submissions

    grade_submissions(args.submissions, out=args.out, gradebook=args.gradebook, source=args.source,
                      timeout_cell=args.timeout_cell, timeout_notebook=args.timeout_notebook,
                      memory_mb=args.memory_mb, max_processes=args.max_processes, skip_tag=args.skip_tag,
                      jobs=args.jobs, notebooks=args.notebooks, sandbox=not args.no_sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
