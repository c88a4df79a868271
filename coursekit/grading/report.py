"""Reports, written by the parent only: grades.csv (one row per graded cell), totals.csv (one row
per student, for a gradebook import) and feedback/<student>.md and .html.

Feedback is built once as plain text (_feedback) and rendered twice; the HTML rendering escapes
every piece of it, because messages and written answers carry text the student wrote.
"""
from __future__ import annotations

import csv
import html
import io
import os
import re
from pathlib import Path

from .autograde import NotebookGrade


def write_reports(grades: list[NotebookGrade], out_dir) -> None:
    """grades.csv, totals.csv, feedback/<student>.md and feedback/<student>.html under out_dir."""
    out = Path(out_dir)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "grades.csv", grades_csv(grades))
    _write_atomic(out / "totals.csv", totals_csv(grades))
    for student in sorted({g.student for g in grades}):
        mine = [g for g in grades if g.student == student]
        _write_atomic(out / "feedback" / f"{_safe_name(student)}.md", feedback_text(student, mine))
        _write_atomic(out / "feedback" / f"{_safe_name(student)}.html", feedback_html(student, mine))


def grades_csv(grades: list[NotebookGrade]) -> str:
    """student, notebook, exercise, points, max_points: one row per test cell."""
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["student", "notebook", "exercise", "points", "max_points"])
    for g in grades:
        for c in g.cells:
            writer.writerow([g.student, g.notebook, c.exercise, f"{c.points:g}", f"{c.max_points:g}"])
    return rows.getvalue()


def totals_csv(grades: list[NotebookGrade]) -> str:
    """One row per student, as a gradebook import expects: per notebook its points and max, then
    the total and its max. Notebooks in the order they were graded."""
    notebooks = list(dict.fromkeys(g.notebook for g in grades))
    header = ["student"] + [f"{n} {col}" for n in notebooks for col in ("autograded", "autograded max")]
    header += ["autograded total", "autograded max"]
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(header)
    for student in sorted({g.student for g in grades}):
        mine = {g.notebook: g for g in grades if g.student == student}
        row = [student]
        for name in notebooks:
            row += [f"{mine[name].points:g}", f"{mine[name].max_points:g}"] if name in mine else ["", ""]
        row += [f"{sum(g.points for g in mine.values()):g}", f"{sum(g.max_points for g in mine.values()):g}"]
        writer.writerow(row)
    return rows.getvalue()


def _feedback(grades: list[NotebookGrade]) -> list[dict]:
    """Per notebook: its heading, one line per graded cell, and the notes; plain text throughout."""
    sections = []
    for g in grades:
        lines = []
        for c in g.cells:
            verdict = "passed" if not c.message else f"FAILED: {c.message}"
            lines.append(f"{c.exercise} ({c.points:g}/{c.max_points:g}): {verdict}")
        sections.append({"heading": f"{g.notebook}: {g.points:g} / {g.max_points:g} points"
                                    + (f" (file {g.file})" if g.file else ""),
                         "lines": lines + [f"note: {n}" for n in g.notes]})
    return sections


def feedback_text(student: str, grades: list[NotebookGrade]) -> str:
    """The Markdown feedback of one student: per notebook its points, each test cell's verdict, notes."""
    out = [f"# Feedback for {student}", ""]
    for section in _feedback(grades):
        out += [f"## {section['heading']}", ""] + [f"- {line}" for line in section["lines"]] + [""]
    return "\n".join(out)


def feedback_html(student: str, grades: list[NotebookGrade]) -> str:
    """The same feedback as a standalone HTML page; every piece of text is escaped (student code
    and answers end up in messages, and must not become markup)."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">', f"<title>Feedback for {e(student)}</title>",
           "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
           "blockquote{white-space:pre-wrap;border-left:3px solid #ccc;padding-left:1em}</style>",
           "</head><body>", f"<h1>Feedback for {e(student)}</h1>"]
    for section in _feedback(grades):
        out += [f"<h2>{e(section['heading'])}</h2>", "<ul>"]
        out += [f"<li>{e(line)}</li>" for line in section["lines"]]
        out += ["</ul>"]
    out += ["</body></html>", ""]
    return "\n".join(out)


def _safe_name(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "unknown"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
