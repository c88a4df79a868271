"""Grading throughput: submissions graded per minute, and per minute per core, in exercise mode
(the default) or full mode, one submission at a time and on a Dask LocalCluster of N workers
(`coursekit grade --workers N`; the cluster's start is inside the timed run, as it is for the
command), or on the workers of an existing scheduler (--scheduler).

Every submission is the instructor's own solution, so every one must score full marks; a run where
one does not is reported as a failure, not timed. Each submission runs as `coursekit grade` runs it:
its own process, kernel and throw-away nbgrader course, under the grading guard. The instructor
solution is graded once first, untimed (it warms the caches the first code cell needs).

    python -m benchmarks.grading_throughput [--quick] [--notebook 03_filters_activations]
        [--submissions 8] [--full-submissions 2] [--workers 1 2] [--modes exercises full]
        [--scheduler tcp://host:8786]

Full mode runs the whole notebook at the sizes COURSEKIT_QUICK selects: in quick mode that is
the CI-sized notebook, not the 15-minute one students run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from coursekit import grading
from benchmarks.common import invocation, row, save

ROOT = Path(__file__).resolve().parent.parent


def grade_copies(hw, source: Path, folder: Path, count: int, mode: str, parallel: int,
                 scheduler: str | None = None) -> tuple[float, list]:
    """Seconds to grade `count` copies of the solution on `parallel` workers, and their grades."""
    jobs = []
    for i in range(count):
        path = folder / f"student_{i:03d}" / source.name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        jobs.append((hw, f"student_{i:03d}", path))
    tic = time.perf_counter()
    grades = grading.grade_submissions(jobs, mode, cell_timeout=600, notebook_timeout=1800, parallel=parallel,
                                       scheduler=scheduler)
    return time.perf_counter() - tic, grades


def measure(source: Path, mode: str, count: int, parallels: list[int], scheduler: str | None = None) -> list[dict]:
    """Rows of submissions per minute (and per core) for each number graded at a time."""
    hw = grading.prepare(source, mode)
    warm = grading.grade_submissions([(hw, "instructor", source)], mode, cell_timeout=1800, notebook_timeout=3600)[0]
    if warm.points < warm.max_points:
        raise SystemExit(f"the instructor solution of {source.stem} scores {warm.points:g}/{warm.max_points:g}")
    rows, rates = [], []
    for parallel in parallels:
        with tempfile.TemporaryDirectory(prefix="coursekit-bench-grading-") as tmp:
            seconds, grades = grade_copies(hw, source, Path(tmp), count, mode, parallel, scheduler)
        short = [g.student for g in grades if g.points < g.max_points]
        if short:
            raise SystemExit(f"correct submissions scored below full marks in {mode} mode: {short}")
        rates.append(count / seconds * 60)
        cores = parallel if scheduler else min(parallel, os.cpu_count() or 1)
        where = f"scheduler {scheduler}, {parallel} worker(s)" if scheduler else \
            ("1 at a time" if parallel == 1 else f"{parallel} Dask workers")
        rows.append(row(f"{source.stem}, {mode} mode, {where}: submissions per minute",
                        rates[-1], "/min", note=f"{count} submissions in {seconds:.0f} s"))
        rows.append(row(f"{source.stem}, {mode} mode, {where}: per minute per core",
                        rates[-1] / cores, "/min/core"))
    if len(parallels) > 1:  # measured in this one run, so a busy machine slows both alike
        print(f"{mode} mode: ratio {parallels[-1]} workers / {parallels[0]}: {rates[-1] / rates[0]:.2f}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 and 1 submissions instead of 8 and 2")
    parser.add_argument("--notebook", default="03_filters_activations", help="which homework (default: 03)")
    parser.add_argument("--submissions", type=int, help="submissions per setting in exercise mode")
    parser.add_argument("--full-submissions", type=int, help="submissions per setting in full mode")
    parser.add_argument("--workers", "--parallel", type=int, nargs="+", default=[1, 2], dest="workers",
                        help="1: one at a time, no Dask; N > 1: a Dask LocalCluster of N worker processes")
    parser.add_argument("--scheduler", help="grade on this Dask scheduler's workers; --workers then only "
                                            "says how many cores they have, for the per-core rate")
    parser.add_argument("--modes", nargs="+", choices=grading.MODES, default=list(grading.MODES))
    args = parser.parse_args(argv)
    counts = {"exercises": args.submissions or (4 if args.quick else 8),
              "full": args.full_submissions or (1 if args.quick else 2)}
    source = ROOT / "notebooks" / f"{args.notebook}.ipynb"
    rows = []
    for mode in args.modes:
        rows += measure(source, mode, counts[mode], args.workers, args.scheduler)
    save("grading_throughput", invocation("grading_throughput", argv), rows)


if __name__ == "__main__":
    main()
