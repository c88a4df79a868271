"""Find a notebook's paper checks and run them in a null world (COURSEKIT_NULL).

A paper check is a code cell tagged `paper-check`: it asserts the result a paper reports. A second
tag names the null it must fail in, the world the paper argues against:
  null:untrained        every network the course hands out as trained keeps its initial weights
  null:shuffled-labels  CIFAR-10's training labels are permuted, so nothing learns classes
A check that passes in its null proves nothing about what was learned.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

TAG = "paper-check"
NULL_PREFIX = "null:"
CELL_TIMEOUT = 600  # seconds; quick mode's slowest cell takes about a minute


@dataclass(frozen=True)
class Check:
    notebook: str    # file name
    cell: int        # index among the notebook's code cells (nbval's "Cell N")
    title: str       # the cell's first comment line, or "Cell N"
    null: str | None  # the null it must fail in (None: the cell has no null:... tag)


def paper_checks(notebook: Path) -> list[Check]:
    """The paper-check cells of a notebook, in order."""
    code = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    checks = []
    for index, cell in enumerate(code):
        tags = cell.metadata.get("tags", [])
        if TAG not in tags:
            continue
        nulls = [t[len(NULL_PREFIX):] for t in tags if t.startswith(NULL_PREFIX)]
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        title = first.lstrip("# ").strip() if first.startswith("#") else f"Cell {index}"
        checks.append(Check(notebook.name, index, title, nulls[0] if len(nulls) == 1 else None))
    return checks


# a check whose precondition failed (train.NotLearned): not a failure of its claim
NOT_LEARNED = "fails: not learned"


def outcome(cell) -> str:
    """'passes', 'fails' (an AssertionError), NOT_LEARNED or 'crashes: <error name>' for an executed cell."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if not errors:
        return "passes"
    name = errors[0].get("ename", "")
    return {"AssertionError": "fails", "NotLearned": NOT_LEARNED}.get(name, f"crashes: {name}")


def run(notebook: Path, env: dict[str, str], skip_checks: bool = False) -> list:
    """Execute a notebook top to bottom in a fresh kernel with `env` added to the environment,
    every cell run even after an error (with skip_checks, every cell but the paper checks, which
    are left unexecuted, without outputs); returns its code cells, executed."""
    from nbclient import NotebookClient
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}},
                            **({"skip_cells_with_tag": TAG} if skip_checks else {}))
    client.execute(env={**os.environ, **env})
    return [c for c in nb.cells if c.cell_type == "code"]
