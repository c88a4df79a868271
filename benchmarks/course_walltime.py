"""Wall time of every course notebook in quick mode (COURSEKIT_QUICK=1), each in a fresh kernel;
with --full, in full mode (COURSEKIT_QUICK=0, what students get), each stopped at 15 minutes.

Each notebook runs through nbclient in its own subprocess, in lecture order, until the budget is
spent; the ones left are reported as not run. The cifar10 backbone comes from the shared cache
(it is trained on first use; that one-time cost is not a notebook's). In full mode everything else
starts uncached, as on a student's first pass in lecture order (09 trains the source network that
11 reuses). Targets: quick mode, all together < 600 s; full mode, each notebook < 900 s (saved
apart, as course_walltime_full).

    python -m benchmarks.course_walltime [--budget 900] [--only 00 01] [--full [--keep-going]]

--budget caps all notebooks together (default 900 s in quick mode; in full mode no total cap, only
each notebook's own limit).

With --full --only, the other notebooks keep their rows from the previous full-mode run. With
--keep-going, each notebook runs to its end whatever a cell raises and however long it takes (up to
KEEP_GOING_LIMIT), and its row names the cells that raised: one pass then shows every full-mode
failure and the real time of a notebook over 15 minutes, where the default stops at the first error
or at 15 minutes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, invocation, row, run_with_timeout, save

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RUN_ONE = ("import sys, nbformat, nbclient; nb = nbformat.read(sys.argv[1], 4); "
           "nbclient.NotebookClient(nb, timeout=None, kernel_name='python3', allow_errors=sys.argv[3] == '1', "
           "resources={'metadata': {'path': sys.argv[2]}}).execute(); "
           "code = [c for c in nb.cells if c.cell_type == 'code']; "
           "print('RAISED', [(i, o['ename']) for i, c in enumerate(code) for o in c.get('outputs', []) "
           "if o.get('output_type') == 'error'])")


FULL_LIMIT = 900  # seconds per notebook in full mode (the target)
RAISED = "code cells (index, error) raised: "  # a keep-going status: it ran to the end, and these cells raised
KEEP_GOING_LIMIT = 3600  # seconds per notebook with --keep-going: a notebook this slow is a finding anyway


def first_run_cache(folder: Path) -> Path:
    """A cache folder holding only the full-mode cifar10 backbone and the decoded CIFAR-10 images
    (links into the real cache), so every notebook's own experiments run as on a student's first
    pass. The backbone is trained here first if it is not cached yet (not a notebook's cost)."""
    from coursekit import backbones, settings
    cfg = dataclasses.replace(settings.load(), quick=False)
    recipe = backbones.cifar10_recipe(cfg)
    backbone = backbones.cifar10_cache_path(recipe, cfg)
    if not backbone.exists():
        backbones.trained_cifar10(recipe, cfg)
    (folder / "models").mkdir(parents=True)
    (folder / "models" / backbone.name).symlink_to(backbone)
    for decoded in cfg.cache_dir.glob("cifar10-*.pt"):
        (folder / decoded.name).symlink_to(decoded)
    return folder


def run_notebook(path: Path, timeout: float, full: bool = False, cache: Path | None = None,
                 keep_going: bool = False) -> tuple[float, str]:
    """(seconds, status) of one notebook in a fresh kernel: "ok", "FAILED: <last error line>",
    RAISED + "[(index, error name), ...]" (keep_going: every cell ran) or "stopped at the budget"."""
    env = {**os.environ, "COURSEKIT_QUICK": "0" if full else "1"}
    if cache is not None:
        env["COURSEKIT_CACHE"] = str(cache)
    tic = time.perf_counter()
    command = [sys.executable, "-c", RUN_ONE, str(path), str(path.parent), "1" if keep_going else "0"]
    code, out, err = run_with_timeout(command, timeout, env=env)
    raised = next((line[len("RAISED "):] for line in out.splitlines() if line.startswith("RAISED ")), "[]")
    if code is None:
        status = "stopped at the budget"
    elif code != 0:
        status = "FAILED: " + (err.strip().splitlines() or ["?"])[-1][:100]
    else:
        status = "ok" if raised == "[]" else (RAISED + raised)[:200]
    return time.perf_counter() - tic, status


def time_notebooks(paths: list[Path], budget: float, full: bool, cache: Path | None = None,
                   keep_going: bool = False) -> tuple[list[dict], float, bool]:
    """Run each notebook until the budget is spent: its rows, the total seconds, and whether all ran ok."""
    mode = "full" if full else "quick"
    rows, total, deadline, complete = [], 0.0, time.monotonic() + budget, True
    for path in paths:
        left = deadline - time.monotonic()
        if left < 10:
            rows.append(row(f"{path.stem} ({mode}): not run, budget spent", float("nan"), "s"))
            complete = False
            continue
        limit = KEEP_GOING_LIMIT if keep_going else FULL_LIMIT
        seconds, status = run_notebook(path, min(left, limit) if full else left, full, cache, keep_going)
        total += seconds
        complete &= status == "ok"
        met = None
        if full:  # each notebook has its own target in full mode
            raised = status.startswith(RAISED)
            met = seconds < FULL_LIMIT if status == "ok" else (False if raised or seconds >= FULL_LIMIT else None)
        rows.append(row(f"{path.stem} ({mode})", seconds, "s", f"< {FULL_LIMIT} s" if full else "", met, note=status))
        print(f"  {path.stem:40s} {seconds:7.1f} s  {status}", flush=True)
    return rows, total, complete


def earlier_full_rows(skip: list[str]) -> list[dict]:
    """Full-mode rows of an earlier run for the notebooks not timed now, each marked as such: a
    full-mode pass takes over an hour, so `--only` fills the table in a few notebooks at a time."""
    path = RESULTS / "course_walltime_full.json"
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    kept = [r for r in earlier["rows"] if r["measure"].split(" ")[0] not in skip]
    when = earlier.get("finished", "an earlier run")
    return [{**r, "note": r["note"] if "earlier run" in r["note"] else f"{r['note']} (earlier run, {when})"}
            for r in kept]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all notebooks together (default: 900 in quick mode, none with --full)")
    parser.add_argument("--only", nargs="*", help="notebook numbers, e.g. 00 01")
    parser.add_argument("--quick", action="store_true", help="accepted for run_all; same as the default")
    parser.add_argument("--full", action="store_true", help="full mode, each notebook stopped at 15 minutes")
    parser.add_argument("--keep-going", action="store_true",
                        help="with --full: run every cell whatever raises, no 15-minute stop; name the cells that raised")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if p.name[:2] in args.only]
    if args.full:
        with tempfile.TemporaryDirectory() as folder:
            # full mode: each notebook has its own limit (FULL_LIMIT or KEEP_GOING_LIMIT), and no total
            budget = float("inf") if args.budget is None else args.budget
            rows, _, _ = time_notebooks(paths, budget, True, first_run_cache(Path(folder) / "cache"),
                                        args.keep_going)
        rows = sorted(rows + earlier_full_rows(skip=[p.stem for p in paths]), key=lambda r: r["measure"])
        save("course_walltime_full", invocation("course_walltime", argv), rows, budget=args.budget)
        return
    budget = 900 if args.budget is None else args.budget
    rows, total, complete = time_notebooks(paths, budget, False)
    rows.append(row(f"all {len(paths)} notebooks, quick mode" + ("" if complete else " (incomplete)"), total, "s",
                    "< 600 s", (total < 600) if complete else (False if total >= 600 else None)))
    save("course_walltime", invocation("course_walltime", argv), rows, budget=budget)


if __name__ == "__main__":
    main()
