"""The paper-check report printed at the end of a pytest run: every check, whether it passes on the
real setup (its cell in the JupyterLab run of tests/browser, or its nbval cell) and whether it fails in its null (test_null_runs), joined with the
previous run's results through pytest's cache. Loaded for every run from the project root by the
root conftest.py; prints nothing when no check ran."""
from __future__ import annotations

import re
from pathlib import Path

from .checks import paper_checks

_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_NBVAL_CELL = re.compile(r"(?P<path>.*\.ipynb)::Cell (?P<cell>\d+)(@.*)?$")  # xdist may add @group
_real: dict[tuple[str, int], str] = {}   # (notebook, cell) -> passes / FAILS, from JupyterLab or nbval
_null: dict[tuple[str, int], tuple] = {}  # (notebook, cell) -> (title, null, outcome)
_checks_of: dict[str, dict[int, str]] = {}


def _titles(path: str) -> dict[int, str]:
    if path not in _checks_of:
        _checks_of[path] = {c.cell: c.title for c in paper_checks(Path(path))} if Path(path).is_file() else {}
    return _checks_of[path]


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "paper_checks":
            for notebook, cell, title, null, result in value:
                _null[(notebook, cell)] = (title, null, result)
        if name == "notebook_cells":  # tests/browser: every code cell of a notebook run in JupyterLab
            for notebook, cell, result in value:
                if cell in _titles(str(_NOTEBOOKS / notebook)):
                    _real[(notebook, cell)] = "passes" if result == "passes" else "FAILS"
    match = _NBVAL_CELL.match(report.nodeid)
    if match and int(match["cell"]) in _titles(match["path"]):
        _real[(Path(match["path"]).name, int(match["cell"]))] = "passes" if report.passed else "FAILS"


def _remembered(config):
    """Join this run's results with the last run's (pytest's cache): `make test` runs the notebooks
    (in JupyterLab, or under nbval) and the null runs as two sessions, and the second prints the
    whole table."""
    for key, mine in (("paperchecks/real", _real), ("paperchecks/null", _null)):
        stored = {tuple(k): v for k, v in config.cache.get(key, [])} if config.cache else {}
        for k, v in stored.items():
            if k[1] not in _titles(str(_NOTEBOOKS / k[0])):
                continue  # a cell that is no longer a paper check (the notebook changed since)
            mine.setdefault(k, tuple(v) if isinstance(v, list) else v)
        if config.cache:
            config.cache.set(key, [[list(k), v] for k, v in mine.items()])


def pytest_terminal_summary(terminalreporter):
    if not (_real or _null):
        return
    ran_nulls, failing = bool(_null), sorted(k for k, v in _real.items() if v != "passes")
    fresh = len(_real)
    _remembered(terminalreporter.config)
    write = terminalreporter.write_line
    if not ran_nulls:  # only the real-setup run so far: its half of the table would read "0 fail in their null"
        write(f"paper checks: {fresh} real-setup results kept for the null runs' report; "
              + (f"these do NOT pass: {failing}" if failing else "all pass"))
        return
    terminalreporter.section("paper checks: real setup (JupyterLab or nbval) and null run (COURSEKIT_NULL)")
    keys = sorted(set(_real) | set(_null))
    for notebook, cell in keys:
        title, null, result = _null.get((notebook, cell), ("", "-", "not run"))
        real = _real.get((notebook, cell), "not run")
        write(f"{notebook[:40]:40} Cell {cell:<3} real: {real:8} null {null:16} {result:18} {title[:60]}")
    held = sum(_null.get(k, (0, 0, ""))[2] == "fails" and _real.get(k) == "passes" for k in keys)
    write(f"{len(keys)} paper checks; {sum(v == 'passes' for v in _real.values())} pass on the real setup, "
          f"{sum(v[2] == 'fails' for v in _null.values())} fail in their null; both: {held}")
