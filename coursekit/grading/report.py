"""Reports: grades.csv (one row per test cell) and feedback/<student>.md, written by the parent only."""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from .autograde import NotebookGrade


def write_reports(grades: list[NotebookGrade], out_dir) -> None:
    """grades.csv (one row per test cell) and feedback/<student>.md; written by the parent only."""
    out = Path(out_dir)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["student", "notebook", "exercise", "points", "max_points"])
    for g in grades:
        for c in g.cells:
            writer.writerow([g.student, g.notebook, c.exercise, f"{c.points:g}", f"{c.max_points:g}"])
    _write_atomic(out / "grades.csv", rows.getvalue())
    for student in sorted({g.student for g in grades}):
        text = feedback_text(student, [g for g in grades if g.student == student])
        _write_atomic(out / "feedback" / f"{_safe_name(student)}.md", text)


def feedback_text(student: str, grades: list[NotebookGrade]) -> str:
    """The Markdown feedback of one student: per notebook its points, each test cell's verdict, notes."""
    lines = [f"# Feedback for {student}", ""]
    for g in grades:
        lines += [f"## {g.notebook}: {g.points:g} / {g.max_points:g} points"
                  + (f" (file {g.file})" if g.file else ""), ""]
        for c in g.cells:
            verdict = "passed" if not c.message else f"FAILED: {c.message}"
            lines.append(f"- {c.exercise} ({c.points:g}/{c.max_points:g}): {verdict}")
        lines += [f"- note: {n}" for n in g.notes] + [""]
    return "\n".join(lines)


def _safe_name(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "unknown"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
