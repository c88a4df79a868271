"""Fault counters for the reliability suite, summed over xdist workers and printed at the end.

Each test adds to `faults` (kinds: inputs tried, faults injected, resumes verified, data lost).
Every worker writes its totals to one JSON file in a directory the controller made (passed to the
workers in the environment); the controller adds them up in pytest_terminal_summary.

`pytest tests/reliability` (with or without -n) loads this file in the controller. `pytest -n 2 tests`
does not (xdist's controller collects nothing, and pytest only preloads conftests of test* folders):
there the totals are printed only if tests/conftest.py imports the two hooks:
    from reliability.conftest import pytest_configure, pytest_terminal_summary  # noqa: F401
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest


COUNTS_ENV = "COURSEKIT_RELIABILITY_COUNTS"
# "reported faults held": faults that users report against tools like ours (issue 20), one per
# instance a test reproduces and shows fixed
KINDS = ("inputs tried", "faults injected", "resumes verified", "data lost", "reported faults held")


def pytest_configure(config):
    if hasattr(config, "workerinput") or COUNTS_ENV in os.environ:
        return  # a worker: the controller already made the directory and set the variable
    os.environ[COUNTS_ENV] = tempfile.mkdtemp(prefix="coursekit-reliability-")
    config._reliability_counts = Path(os.environ[COUNTS_ENV])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test process: under `pytest -n 2` on two busy cores a second thread per
    worker oversubscribes the CPU, and torch's thread barriers then slow small models ~30x."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def faults(request):
    """faults.add("inputs tried", 3): counted per worker, saved when the worker's session ends."""
    counts = Counter({kind: 0 for kind in KINDS})

    class Tally:
        def add(self, kind: str, n: int = 1) -> None:
            assert kind in KINDS, kind
            counts[kind] += n

    yield Tally()
    folder = os.environ.get(COUNTS_ENV)
    if folder:  # unset when the controller has not loaded this file (see the module docstring)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        (Path(folder) / f"{worker}-{os.getpid()}.json").write_text(json.dumps(counts))


def pytest_terminal_summary(terminalreporter, config):
    folder = getattr(config, "_reliability_counts", None)
    if folder is None or getattr(config, "_reliability_printed", False):
        return
    config._reliability_printed = True
    total = Counter()
    for path in folder.glob("*.json"):
        total.update(json.loads(path.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    if not total:
        return
    terminalreporter.section("reliability summary")
    for kind in KINDS:
        terminalreporter.write_line(f"{kind:>17}: {total[kind]}")
