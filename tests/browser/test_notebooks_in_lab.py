"""Each course notebook, run in JupyterLab in a real (headless) Chromium, as a student would.

Per notebook: Run All Cells through the menu, no error output in any cell, every figure drawn, the
"Try it" widgets rendered, and one control of the first panel moved changes the panel's figure.
Screenshots land in build/browser-screenshots/ (COURSEKIT_SCREENSHOTS moves them).
Knobs: COURSEKIT_CHROMIUM (browser binary), COURSEKIT_BROWSER_CONCURRENCY (notebooks at once, 2),
COURSEKIT_BROWSER_TIMEOUT (seconds for one notebook's Run All, 480). Run after `coursekit warm` so
the quick cifar10 backbone is already cached. `make test` runs the notebooks on the real setup only
here: each code cell's outcome feeds the paper-check report (tests/paperchecks/report.py).
"""
from __future__ import annotations

import pytest

from .conftest import NOTEBOOKS, SELF_TEST


def describe(report) -> str:
    shots = "\n".join(f"  screenshot: {p}" for p in report.screenshots)
    return "\n".join([f"{report.notebook} in JupyterLab: {len(report.problems)} problem(s)",
                      *(f"- {p}" for p in report.problems), shots])


@pytest.mark.parametrize("notebook", [SELF_TEST])
def test_the_checks_catch_a_planted_error(notebook_runner, notebook):
    """The test can fail: the error in cell 4 and the skipped cell 5 are reported, nothing else."""
    report = notebook_runner.report(notebook)
    assert len(report.problems) == 2, describe(report)
    error, skipped = report.problems
    assert error.startswith(f"{notebook}, cell 4 (") and "error output: ValueError: planted error" in error, \
        describe(report)
    assert skipped.startswith(f"{notebook}, cell 5 (") and "did not run" in skipped, describe(report)
    assert report.control == "slider 'count': 2 -> 3", describe(report)
    assert report.outcomes == ["passes", "passes", "passes", "crashes: ValueError", "did not run"], report.outcomes


@pytest.mark.parametrize("notebook", [path.name for path in NOTEBOOKS])
def test_notebook_runs_and_its_panel_responds(notebook_runner, notebook, record_property):
    report = notebook_runner.report(notebook)
    # each code cell's outcome, for the paper-check report's "real setup" column (make test runs the
    # notebooks on the real setup here, once, instead of a second time under nbval)
    record_property("notebook_cells", [(notebook, index, outcome) for index, outcome in enumerate(report.outcomes)])
    assert not report.problems, describe(report)
