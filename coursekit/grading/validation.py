"""Validation: every exercise of an instructor notebook proved both ways through the real autograder."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import RELEASED, prepare
from .isolation import grade_submissions


@dataclass
class Validation:
    notebook: str
    exercises: int              # graded test cells with points
    problems: list = field(default_factory=list)
    written: dict = field(default_factory=dict)   # manually graded answer grade_id -> points (not autograded)


def validate(path, mode: str = "exercises", cell_timeout: float = 900, notebook_timeout: float = 1800) -> Validation:
    """Prove each exercise of an instructor notebook both ways, through the real autograder: the
    instructor's solutions get every point (visible and hidden tests), and the untouched student
    version gets zero in every test cell (nbgrader's `validate --invert` idea). The time limits
    are generous: the first code cell may train and cache the backbone on a cold cache. Written
    (manually graded) answers are listed in `written`, not proved: an instructor grades them."""
    hw = prepare(path, mode)
    report = Validation(hw.name, sum(1 for pts in hw.max_points.values() if pts > 0), written=dict(hw.manual))
    with tempfile.TemporaryDirectory(prefix="coursekit-validate-") as tmp:
        student_version = Path(tmp) / f"{hw.name}.ipynb"
        student_version.write_bytes(hw.files[f"{RELEASED}/{hw.name}.ipynb"])
        solved, untouched = grade_submissions([(hw, "instructor", path), (hw, "student", student_version)],
                                              mode, cell_timeout, notebook_timeout)
    # written answers are the instructor's to grade: pending both ways, neither passed nor failed
    report.problems += [f"the solution fails {c.exercise}: {c.message}" for c in solved.cells
                        if c.message and not c.manual]
    report.problems += [f"{c.exercise} passes with the untouched student version" for c in untouched.cells
                        if not c.manual and c.points > 0]
    report.problems += [f"written answer {c.exercise} was not graded as pending: {c.message or c.points}"
                        for c in solved.cells if c.manual and c.points is not None]
    report.problems += [f"solution run: {note}" for note in solved.notes if "raised" in note]
    return report
