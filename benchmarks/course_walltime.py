"""Wall time of every course notebook in quick mode (COURSEKIT_QUICK=1), each in a fresh kernel;
with --full, in full mode (COURSEKIT_QUICK=0, what students get), each stopped at 15 minutes.

Each notebook runs through nbclient in its own subprocess, in lecture order, until the budget is
spent; the ones left are reported as not run. The cifar10 backbone comes from the shared cache
(it is trained on first use; that one-time cost is not a notebook's). Targets: quick mode, all
together < 600 s; full mode, each notebook < 900 s (saved apart, as course_walltime_full).

    python -m benchmarks.course_walltime [--budget 900] [--only 00 01] [--full]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchmarks.common import invocation, row, run_with_timeout, save

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RUN_ONE = ("import sys, nbformat, nbclient; nb = nbformat.read(sys.argv[1], 4); "
           "nbclient.NotebookClient(nb, timeout=None, kernel_name='python3', "
           "resources={'metadata': {'path': sys.argv[2]}}).execute()")


FULL_LIMIT = 900  # seconds per notebook in full mode (the target)


def run_notebook(path: Path, timeout: float, full: bool = False) -> tuple[float, str]:
    env = {**os.environ, "COURSEKIT_QUICK": "0" if full else "1"}
    tic = time.perf_counter()
    code, _, err = run_with_timeout([sys.executable, "-c", RUN_ONE, str(path), str(path.parent)], timeout, env=env)
    if code is None:
        status = "stopped at the budget"
    else:
        status = "ok" if code == 0 else "FAILED: " + (err.strip().splitlines() or ["?"])[-1][:100]
    return time.perf_counter() - tic, status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900, help="seconds for all notebooks together")
    parser.add_argument("--only", nargs="*", help="notebook numbers, e.g. 00 01")
    parser.add_argument("--quick", action="store_true", help="accepted for run_all; same as the default")
    parser.add_argument("--full", action="store_true", help="full mode, each notebook stopped at 15 minutes")
    args = parser.parse_args(argv)
    if args.full:
        return full_mode(args, argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if p.name[:2] in args.only]
    rows, total, deadline, complete = [], 0.0, time.monotonic() + args.budget, True
    for path in paths:
        left = deadline - time.monotonic()
        if left < 10:
            rows.append(row(f"{path.stem} (quick): not run, budget spent", float("nan"), "s"))
            complete = False
            continue
        seconds, status = run_notebook(path, left)
        total += seconds
        complete &= status == "ok"
        rows.append(row(f"{path.stem} (quick)", seconds, "s", note=status))
        print(f"  {path.stem:40s} {seconds:7.1f} s  {status}", flush=True)
    rows.append(row(f"all {len(paths)} notebooks, quick mode" + ("" if complete else " (incomplete)"), total, "s",
                    "< 600 s", (total < 600) if complete else (False if total >= 600 else None)))
    save("course_walltime", invocation("course_walltime", argv),
         rows, budget=args.budget)


def full_mode(args, argv) -> None:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    paths = [p for p in paths if not args.only or p.name[:2] in args.only]
    rows, deadline = [], time.monotonic() + args.budget
    for path in paths:
        left = deadline - time.monotonic()
        if left < 10:
            rows.append(row(f"{path.stem} (full): not run, budget spent", float("nan"), "s"))
            continue
        seconds, status = run_notebook(path, min(left, FULL_LIMIT), full=True)
        done = status == "ok"
        met = seconds < FULL_LIMIT if done else (False if seconds >= FULL_LIMIT else None)
        rows.append(row(f"{path.stem} (full)", seconds, "s", "< 900 s", met, note=status))
        print(f"  {path.stem:40s} {seconds:7.1f} s  {status}", flush=True)
    save("course_walltime_full", invocation("course_walltime", argv), rows, budget=args.budget)


if __name__ == "__main__":
    main()
