"""Reading instructor notebooks in nbgrader's markup: test cells, hidden tests, the Exercises section.

The instructor notebooks in notebooks/ are the source (DESIGN.md "Exercises"): solution cells
between `### BEGIN SOLUTION` / `### END SOLUTION`, locked test cells with points and hidden asserts
between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`. Grading runs "the FIRST code cell + the
'## Exercises' section" by default (the section must be self-contained; DESIGN.md); mode="full"
runs all. HomeworkError, the error every part of coursekit.grading raises for a mistake the
instructor can fix, lives here because every part reads notebooks.
"""
from __future__ import annotations

import re
from pathlib import Path

MODES = ("exercises", "full")
_EXERCISES = re.compile(r"^#{1,2}\s+(?:\d+[.)]?\s*)?exercises\b", re.IGNORECASE | re.MULTILINE)
_SECTION = re.compile(r"^#{1,2}\s", re.MULTILINE)


class HomeworkError(ValueError):
    """Something in the instructor's notebooks or the command line is wrong (the message says what)."""


def read_notebook(path):
    import nbformat
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises several types for empty / broken JSON
        raise HomeworkError(f"{path} is not a readable .ipynb notebook ({type(err).__name__}: {err})") from err


def instructor_notebooks(folder) -> list[Path]:
    """Every *.ipynb directly under `folder`, sorted by name."""
    return sorted(Path(folder).glob("*.ipynb"))


def homework_notebooks(folder) -> list[Path]:
    """Instructor notebooks under `folder` that carry at least one graded test cell."""
    return [p for p in instructor_notebooks(folder) if test_cells(read_notebook(p))]


INSTRUCTOR_NOTE = "**Instructor note.**"


def is_instructor_note(cell) -> bool:
    """A markdown cell that opens with INSTRUCTOR_NOTE: our development numbers for the instructor,
    kept out of what students read (the release and the website), whose text talks about the
    student's own output."""
    return cell.get("cell_type") == "markdown" and cell.get("source", "").lstrip().startswith(INSTRUCTOR_NOTE)


def grade_id(cell) -> str | None:
    """The nbgrader grade_id of a cell (a notebook node or a plain dict from JSON), else None."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def test_cells(nb) -> list:
    """The autograded cells: nbgrader grade cells that are code (their points count)."""
    from nbgrader import utils
    return [c for c in nb.cells if c.cell_type == "code" and utils.is_grade(c)]


def manual_cells(nb) -> list:
    """The manually graded answers: markdown cells nbgrader marks `solution` and `grade` (with
    points and no test). The student writes prose in them; an instructor gives the points."""
    from nbgrader import utils
    return [c for c in nb.cells if c.cell_type == "markdown" and utils.is_grade(c) and utils.is_solution(c)]


def hidden_lines(source: str) -> dict[int, str]:
    """{line number (1-based): line} of the lines of a test cell between BEGIN and END HIDDEN TESTS
    (the marker lines themselves excluded)."""
    inside, hidden = False, {}
    for number, line in enumerate(source.splitlines(), 1):
        if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
            inside = "BEGIN" in line
        elif inside:
            hidden[number] = line
    return hidden


def is_hidden(source: str, line_number: int) -> bool:
    """Whether line `line_number` (1-based) of a test cell lies between BEGIN and END HIDDEN TESTS."""
    return line_number in hidden_lines(source)


def exercise_section(nb) -> tuple[int, int] | None:
    """(start, stop) cell indices of the '## Exercises' section, up to the next level-1/2 heading."""
    start = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and _EXERCISES.search(c.source)), None)
    if start is None:
        return None
    stop = next((i for i in range(start + 1, len(nb.cells))
                 if nb.cells[i].cell_type == "markdown" and _SECTION.search(nb.cells[i].source)),
                len(nb.cells))
    return start, stop


def graded_part(nb, mode: str = "exercises"):
    """The cells grading runs: mode 'exercises' keeps the FIRST code cell (imports, setup) plus the
    '## Exercises' section, the convention that makes every exercise runnable on its own, and any
    manually graded answer outside it (it runs nothing, and the instructor must see it); mode
    'full' keeps everything. Without an Exercises heading the whole notebook is kept."""
    if mode not in MODES:
        raise HomeworkError(f"mode={mode!r}: use one of {MODES}")
    section = exercise_section(nb)
    if mode == "full" or section is None:
        return nb
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
    keep = ([first_code] if first_code is not None and first_code < section[0] else [])
    keep += list(range(*section))
    written = {id(c) for c in manual_cells(nb)}
    keep = sorted(set(keep) | {i for i, c in enumerate(nb.cells) if id(c) in written})
    trimmed = dict(nb)
    trimmed["cells"] = [nb.cells[i] for i in keep]
    import nbformat
    return nbformat.from_dict(trimmed)
