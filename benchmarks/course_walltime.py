"""Wall time of every course notebook in quick mode (COURSEKIT_QUICK=1), each in a fresh kernel.

Each notebook runs through nbclient in its own subprocess, in lecture order, until the budget is
spent; the ones left are reported as not run. The cifar10 backbone comes from the shared cache
(it is trained on first use; that one-time cost is not a notebook's). Target: all together < 600 s.
Full mode is `make course` (hours on this CPU); it is not run here.

    python -m benchmarks.course_walltime [--budget 900] [--only 00 01]
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


def run_notebook(path: Path, timeout: float) -> tuple[float, str]:
    env = {**os.environ, "COURSEKIT_QUICK": "1"}
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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    main()
