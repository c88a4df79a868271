"""`python -m coursekit <command>`: the course's shell jobs, one small function per command.

To add a command: write `def _add_<name>(commands)` that adds a sub-parser and sets
`run=<function taking the parsed args>`, and append it to COMMANDS.
"""
from __future__ import annotations

import argparse
import sys


def _add_student(commands) -> None:
    cmd = commands.add_parser("student", help="generate the student release (release/) from notebooks/")
    cmd.add_argument("--notebooks", default="notebooks", help="instructor notebooks (default: notebooks)")
    cmd.add_argument("--out", default="release", help="where the student versions go (default: release)")
    cmd.set_defaults(run=_student)


def _student(args) -> int:
    from . import grading
    paths = grading.make_release(args.notebooks, args.out)
    print(f"wrote {len(paths)} student notebooks to {args.out}/")
    return 0


def _add_grade(commands) -> None:
    cmd = commands.add_parser("grade", help="autograde a folder of submissions; writes grades.csv + feedback/")
    cmd.add_argument("submissions", help="one sub-folder per student, or an LMS download (files / zips)")
    cmd.add_argument("--out", default="grades", help="output folder (default: grades)")
    cmd.add_argument("--notebooks", default="notebooks", help="instructor notebooks (default: notebooks)")
    cmd.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="grade these notebooks (names without .ipynb)")
    cmd.add_argument("--full", action="store_true",
                     help="run whole notebooks (default: first code cell + the Exercises section)")
    cmd.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (default: 60)")
    cmd.add_argument("--notebook-timeout", type=float, default=300, help="seconds per notebook (default: 300)")
    cmd.add_argument("--jobs", type=int, default=1,
                     help="submissions graded at once (default: 1; >1 lets running submissions see each other)")
    cmd.set_defaults(run=_grade)


def _grade(args) -> int:
    from . import grading
    grades = grading.grade(args.submissions, args.notebooks, args.out, mode="full" if args.full else "exercises",
                           cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout, only=args.only,
                           parallel=args.jobs)
    students = len({g.student for g in grades})
    print(f"graded {len(grades)} notebooks of {students} students -> {args.out}/grades.csv, {args.out}/feedback/")
    return 0


def _add_validate(commands) -> None:
    cmd = commands.add_parser("validate", help="prove every exercise both ways (solution passes, release fails)")
    cmd.add_argument("notebooks", nargs="*", help="instructor notebooks (default: notebooks/*.ipynb)")
    cmd.set_defaults(run=_validate)


def _validate(args) -> int:
    from pathlib import Path
    from . import grading
    paths = args.notebooks or grading.instructor_notebooks("notebooks")
    problems = 0
    for path in paths:
        report = grading.validate(path)
        problems += len(report.problems)
        print(f"{Path(path).name}: " + ("ok" if not report.problems else "; ".join(report.problems)))
    return 1 if problems else 0


COMMANDS = [_add_student, _add_grade, _add_validate]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:         # a mistake the user can fix (HomeworkError & co): no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
