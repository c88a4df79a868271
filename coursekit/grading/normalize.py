"""Reading a submission the way a student may have saved it, before nbgrader sees it.

Ordinary edits must never cost correct work, so read_submission() repairs what nbgrader would
choke on, and says so in a note:
- any nbformat 4 minor version, with or without cell ids (4.4 with ids, a Jupyter quirk, is not
  schema-valid): the notebook becomes 4.5 with one unique id per cell;
- a cell duplicated or copied (two cells with one grade_id: nbgrader's de-duplication leaves
  half-stripped metadata): the first keeps the id (for a test cell, the copy the instructor wrote),
  the others run as ordinary cells;
- a given cell of the Exercises section (or the first code cell) edited: the original is run, as
  nbgrader does with locked cells, because the hidden tests are computed from what it defines;
- a notebook pasted into a fresh file (cells without nbgrader metadata): cells are matched to the
  release by their content (test and given cells by their text, an answer cell by the text around
  the answer, e.g. its `def` line), and take the release's metadata.
What cannot be repaired is a SubmissionError whose message tells the student what to do.
"""
from __future__ import annotations

import json
import re
import uuid

from .notebooks import grade_id

_STUB = re.compile(r"^\s*(# YOUR CODE HERE|raise NotImplementedError\(\)|YOUR ANSWER HERE)\s*$")
_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


class SubmissionError(ValueError):
    """A submission that cannot be graded; the message says what the student can do about it."""


def read_submission(text: str, release, locked: dict | None = None, given: dict | None = None):
    """(notebook, notes) from a submitted file's text; `release` is the student version the
    submission came from, `locked` {grade_id: checksums of the instructor's locked cells},
    `given` {cell id: source} of the given cells (given_cells())."""
    import nbformat
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise SubmissionError(f"the file is not a notebook (not JSON: {err}); download it from Jupyter again "
                              "with File > Download") from err
    if not isinstance(raw, dict) or raw.get("nbformat") not in (3, 4) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise SubmissionError("the file is not a Jupyter notebook (no nbformat 4 cells); submit the .ipynb file itself")
    nb = nbformat.reads(json.dumps(raw), as_version=4)
    notes = _fix_ids(nb)
    notes += _deduplicate(nb, locked or {})
    notes += _match_pasted(nb, release)
    notes += _restore_given(nb, given or {})
    if not nb.metadata.get("kernelspec"):
        nb.metadata["kernelspec"] = release.metadata.get("kernelspec", {"name": "python3", "display_name": "Python 3",
                                                                         "language": "python"})
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        first = str(err).strip().splitlines()[0][:200]
        raise SubmissionError(f"the notebook is damaged ({first}); open it in Jupyter, save it, and submit it again") from err
    return nb, notes


def given_cells(nb) -> dict:
    """{cell id: source} of the code cells grading always runs that are neither answers nor tests:
    the first code cell and the given cells of the Exercises section."""
    from nbgrader import utils
    from .notebooks import graded_part
    return {c["id"]: c.source for c in graded_part(nb, "exercises").cells
            if c.cell_type == "code" and c.get("id") and not utils.is_solution(c) and not utils.is_grade(c)}


def _restore_given(nb, given: dict) -> list[str]:
    edited = [c for c in nb.cells if c.get("id") in given and "nbgrader" not in c.metadata
              and _lines(c.source) != _lines(given[c["id"]])]
    for cell in edited:
        cell.source = given[cell["id"]]
    return [f"you edited the given cell that starts `{_lines(given[c['id']])[0][:60]}`; grading ran the original "
            "(the tests use what it defines)" for c in edited if _lines(given[c["id"]])]


def _lines(source: str) -> list[str]:
    return [line.rstrip() for line in source.strip().splitlines()]


def _fix_ids(nb) -> list[str]:
    """nbformat 4.5 with a unique, valid id on every cell (4.0-4.4 had none; some tools add them)."""
    changed, seen = False, set()
    for cell in nb.cells:
        cid = cell.get("id")
        if not isinstance(cid, str) or not _CELL_ID.match(cid) or cid in seen:
            cell["id"] = cid = uuid.uuid4().hex[:8]
            changed = True
        seen.add(cid)
    old = (nb.nbformat, nb.nbformat_minor)
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.nbformat_minor if nb.nbformat == 4 else 0)
    return [f"saved as nbformat {old[0]}.{old[1]}; read as 4.5"] if changed and old < (4, 5) else []


def _deduplicate(nb, locked: dict) -> list[str]:
    cells_of = {}
    for cell in nb.cells:
        if grade_id(cell):
            cells_of.setdefault(grade_id(cell), []).append(cell)
    notes = []
    for gid, cells in cells_of.items():
        if len(cells) < 2:
            continue
        from nbgrader.utils import compute_checksum
        original = next((c for c in cells if compute_checksum(c) in locked.get(gid, ())), cells[0])
        for cell in cells:
            if cell is not original:
                del cell.metadata["nbgrader"]
        notes.append(f"cell {gid} appears {len(cells)} times (a copy?): the {'original' if gid in locked else 'first'} "
                     "one is graded, the others run as ordinary cells")
    return notes


def _match_pasted(nb, release) -> list[str]:
    """Give cells without nbgrader metadata the release's metadata when their content matches."""
    present = {grade_id(c) for c in nb.cells} - {None}
    wanted = [c for c in release.cells if grade_id(c) and grade_id(c) not in present]
    free = [c for c in nb.cells if "nbgrader" not in c.metadata]
    matched = []
    for target in wanted:
        cell = next((c for c in free if c.cell_type == target.cell_type and _same_cell(c.source, target.source)), None)
        if cell is not None:
            cell.metadata["nbgrader"] = json.loads(json.dumps(target.metadata["nbgrader"]))
            free.remove(cell)
            matched.append(grade_id(target))
    return [f"cells without grading marks were matched to the release by their content: {', '.join(matched)}"] if matched else []


def _same_cell(source: str, released: str) -> bool:
    """Whether a cell is the release's cell: the same text, or (an answer cell) every line the
    release shows around the answer, in order."""
    lines = [l.strip() for l in source.splitlines() if l.strip()]
    given = [l.strip() for l in released.splitlines() if l.strip() and not _STUB.match(l)]
    if len(given) == len([l for l in released.splitlines() if l.strip()]):
        return lines == given                            # no stub: a test or given cell, verbatim
    if not given:
        return False
    position = 0
    for line in lines:
        if position < len(given) and line == given[position]:
            position += 1
    return position == len(given)
