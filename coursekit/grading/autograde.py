"""Autograding one submission inside its throw-away course, and the grades that come of it.

grade_in_course() is what a grading process runs (isolation.py starts it): nbgrader's autograde of
one submission, the test cells the student edited or deleted, and the error of each failed test
cell. as_grade() turns its result into a NotebookGrade in the parent, clamping the scores and
keeping the hidden tests out of the messages.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .course import RELEASED, STUDENT, Homework, cause, fresh_course, nbgrader_api, without_colours
from .guard import GUARD_MARK
from .normalize import SubmissionError, read_submission
from .notebooks import exercise_section, grade_id, graded_part, is_hidden


@dataclass
class CellGrade:
    exercise: str
    points: float | None        # None: a written answer waiting for the instructor
    max_points: float
    message: str = ""           # empty when the test cell passed
    manual: bool = False        # a manually graded answer (an instructor gives its points)
    answer: str = ""            # a manually graded answer: the text the student wrote


@dataclass
class NotebookGrade:
    student: str
    notebook: str
    file: str
    cells: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def points(self) -> float:
        """The autograded points."""
        return sum(c.points for c in self.cells if not c.manual)

    @property
    def max_points(self) -> float:
        """The most autograded points (manually graded answers are not in it)."""
        return sum(c.max_points for c in self.cells if not c.manual)

    @property
    def pending(self) -> float:
        """The points of the written answers an instructor has yet to grade."""
        return sum(c.max_points for c in self.cells if c.manual and c.points is None)

    @property
    def manual_max(self) -> float:
        return sum(c.max_points for c in self.cells if c.manual)


def zero(hw: Homework, why: str) -> list[CellGrade]:
    """Zero points in every graded cell of `hw` (written answers too: there is nothing to read),
    each with the reason `why`."""
    return ([CellGrade(gid, 0.0, pts, why) for gid, pts in hw.max_points.items()]
            + [CellGrade(gid, 0.0, pts, why, manual=True) for gid, pts in hw.manual.items()])


def grade_in_course(hw: Homework, submission: Path, course: Path, mode: str, cell_timeout: float) -> dict:
    """Runs in the grading process: nbgrader autograde of one submission in `course`; returns
    {scores: {grade_id: points}, errors: {grade_id: message}, notes} or {error, notes}.
    The kernel's working directory is inside `course`."""
    import nbformat
    release = nbformat.reads(hw.files[f"{RELEASED}/{hw.name}.ipynb"].decode(), as_version=4)
    try:
        nb, notes = read_submission(Path(submission).read_text(encoding="utf-8", errors="replace"), release, hw.locked, hw.given)
    except SubmissionError as err:
        return {"error": f"not a valid notebook: {err}"}
    notes += _changed_test_cells(hw, nb)
    if exercise_section(nb) is None and mode == "exercises":
        notes.append("no '## Exercises' heading found: the whole notebook was run")
    causes = []
    for _ in range(2):           # a kernel can fail to start on a busy machine: one more try
        nonce = secrets.token_hex(16)
        fresh_course(hw, course, graded_part(nb, mode), nonce)
        result = nbgrader_api(course, cell_timeout).autograde(hw.name, STUDENT)
        if result["success"]:
            notes += [f"graded on the second try (the first failed: {failure})" for failure in causes]
            return {**_scores(hw, course, nonce), "notes": notes, "answers": _answers(hw, nb, release)}
        causes.append(cause(f"{result.get('log')}\n{result.get('error')}"))
    return {"error": f"nbgrader could not grade it: {causes[-1]}", "notes": notes, "answers": _answers(hw, nb, release)}


def _answers(hw: Homework, nb, release) -> dict:
    """{grade_id: text} of the written (manually graded) answers the submission holds; "" where
    the cell is still as released (the question and nbgrader's 'YOUR ANSWER HERE')."""
    released = {grade_id(c): c.source.strip() for c in release.cells if grade_id(c) in hw.manual}
    return {grade_id(c): "" if c.source.strip() == released.get(grade_id(c)) else c.source.strip()
            for c in nb.cells if grade_id(c) in hw.manual and c.cell_type == "markdown"}


def _changed_test_cells(hw: Homework, nb) -> list[str]:
    """Locked cells the student deleted or edited (nbgrader restores both from the gradebook)."""
    from nbgrader.utils import compute_checksum
    seen = {grade_id(c): c for c in nb.cells if grade_id(c) in hw.locked}
    notes = [f"test cell {gid} was deleted; the original was put back" for gid in hw.max_points if gid not in seen]
    notes += [f"locked cell {gid} was edited; the original was put back"
              for gid, cell in seen.items() if compute_checksum(cell) not in hw.locked[gid]]
    return notes


def _scores(hw: Homework, course: Path, nonce: str) -> dict:
    """nbgrader's scores, except a test cell that ran without the guard's mark (its hooks were
    switched off) scores 0."""
    import nbformat
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        graded = gb.find_submission_notebook(hw.name, hw.name, STUDENT)
        scores = {g.name: float(g.score or 0) for g in graded.grades}
    done = nbformat.read(str(course / "autograded" / STUDENT / hw.name / f"{hw.name}.ipynb"), as_version=4)
    errors = {grade_id(c): _error_text(c) for c in done.cells if grade_id(c) and _errors(c)}
    for cell in done.cells:
        if grade_id(cell) in hw.max_points and not _guarded(cell, nonce):
            scores[grade_id(cell)] = 0.0
            errors.setdefault(grade_id(cell), "this test ran without the grader's guard (your code switched off "
                                              "IPython's cell events); leave the kernel's machinery alone")
    return {"scores": scores, "errors": errors}


def _guarded(cell, nonce: str) -> bool:
    """The guard printed its mark (with this run's secret nonce) on the cell's stdout. Not only the
    first output: a late stderr flush (a warning, a progress bar) can reach the kernel's channel
    first when the machine is loaded, and correct work must not lose its points to that."""
    mark = f"{GUARD_MARK} {nonce}\n"
    stdout = "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                     if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return stdout.startswith(mark) or f"\n{mark}" in stdout


def _errors(cell) -> list:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _error_text(cell) -> str:
    errors = _errors(cell)
    if any(e.get("ename") == "CellTimeoutError" for e in errors):
        return "CellTimeoutError: the cell ran past the time limit per cell (an endless loop?)"
    error = errors[-1]
    text = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip().rstrip(":")
    where = _failing_line(error)
    if where is not None and is_hidden(cell.source, where):      # the restored cell, as it ran
        text = "a hidden test failed: " + text
    return text[:300]


def _failing_line(error) -> int | None:
    """The line of the cell where the error was raised, from IPython's 'Cell In[n], line k'."""
    tb = without_colours("\n".join(error.get("traceback", [])))
    hits = re.findall(r"Cell In\[\d*\], line (\d+)", tb)
    return int(hits[0]) if hits else None


def as_grade(hw: Homework, student: str, path, outcome: dict) -> NotebookGrade:
    """The NotebookGrade of one grading outcome (from grade_in_course, or {error} if it never
    finished): scores clamped to [0, points], hidden tests redacted from every message."""
    grade = NotebookGrade(student, hw.name, Path(path).name, notes=list(outcome.get("notes", [])))
    if "error" in outcome:
        grade.cells = zero(hw, outcome["error"])
        if "answers" in outcome:         # the notebook was read: its written answers still count
            grade.cells = [c for c in grade.cells if not c.manual] + _written(hw, outcome["answers"])
        return grade
    errors = outcome["errors"]
    grade.notes += [f"your cell {gid} raised {_redact(hw, msg)}" for gid, msg in errors.items()
                    if gid not in hw.max_points]
    for gid, pts in hw.max_points.items():
        score = min(max(float(outcome["scores"].get(gid, 0.0)), 0.0), pts)   # untrusted: clamp
        message = (_redact(hw, errors.get(gid, "")) or "failed (no error message recorded)") if score < pts else ""
        grade.cells.append(CellGrade(gid, score, pts, message))
    grade.cells += _written(hw, outcome.get("answers", {}))
    return grade


def _written(hw: Homework, answers: dict) -> list[CellGrade]:
    """The manually graded answers, pending: points None, the student's text carried along."""
    cells = []
    for gid, pts in hw.manual.items():
        text = str(answers.get(gid, ""))
        cells.append(CellGrade(gid, None, pts, "" if text else "no answer written", manual=True, answer=text))
    return cells


def _redact(hw: Homework, text: str) -> str:
    """A submission could raise an error quoting the hidden tests: keep them out of feedback."""
    for secret in hw.secrets:
        text = text.replace(secret, "[hidden]")
    return text
