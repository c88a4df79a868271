"""Peak memory of every course notebook in quick mode (COURSEKIT_QUICK=1), each in a fresh kernel.

Each notebook runs through nbclient in its own subprocess; when the kernel has exited, that
subprocess reads getrusage(RUSAGE_CHILDREN).ru_maxrss: the kernel's peak resident memory (and of
anything the kernel itself started and waited for). Target: every notebook < 4 GiB on the CPU.
Too slow for `make test`; the test suite checks one representative quick computation instead
(tests/reliability/test_memory.py).

    python -m benchmarks.notebook_memory [--only 00 01] [--budget 1200]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LIMIT_MIB = 4096
RUN_ONE = """
import resource, sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], 4)
try:
    nbclient.NotebookClient(nb, timeout=None, kernel_name="python3",
                            resources={"metadata": {"path": sys.argv[2]}}).execute()
finally:  # a failing notebook's peak is still worth knowing
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    print("kernel-peak-mib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // scale, flush=True)
"""


def measure(path: Path, timeout: float) -> tuple[float, int | None, str]:
    """(seconds, kernel peak MiB or None, status) for one notebook."""
    env = {**os.environ, "COURSEKIT_QUICK": "1"}
    tic = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", RUN_ONE, str(path), str(path.parent)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - tic, None, "stopped at the budget"
    seconds = time.perf_counter() - tic
    peak = int(done.stdout.split("kernel-peak-mib")[1].split()[0]) if "kernel-peak-mib" in done.stdout else None
    if done.returncode != 0:
        return seconds, peak, "FAILED: " + (done.stderr.strip().splitlines() or ["?"])[-1][:90]
    return seconds, peak, "ok" if peak < LIMIT_MIB else f"OVER {LIMIT_MIB} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="notebook number prefixes, e.g. 00 03")
    parser.add_argument("--budget", type=float, default=1200, help="seconds for all notebooks together")
    args = parser.parse_args(argv)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if p.name[:2] in args.only]
    deadline = time.perf_counter() + args.budget
    print(f"{'notebook':<40} {'seconds':>8} {'peak MiB':>9}  status")
    worst = 0
    for path in notebooks:
        left = deadline - time.perf_counter()
        if left <= 0:
            print(f"{path.stem:<40} {'-':>8} {'-':>9}  not run (budget spent)")
            continue
        seconds, peak, status = measure(path, left)
        worst = max(worst, peak or 0)
        print(f"{path.stem:<40} {seconds:>8.0f} {peak if peak is not None else '-':>9}  {status}", flush=True)
    print(f"largest peak: {worst} MiB (limit {LIMIT_MIB} MiB)")
    return 0 if worst < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
