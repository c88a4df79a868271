"""Reports, written by the parent only: grades.csv (one row per graded cell), totals.csv (one row
per student, for a gradebook import) and feedback/<student>.md and .html. Written answers
(manually graded) are pending: no points yet, their text in the feedback for the instructor.

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
    """student, notebook, exercise, points, max_points, graded_by: one row per graded cell;
    graded_by is 'autograder' or 'instructor' (a written answer; points empty while pending)."""
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["student", "notebook", "exercise", "points", "max_points", "graded_by"])
    for g in grades:
        for c in g.cells:
            writer.writerow([g.student, g.notebook, c.exercise, _number(c.points), f"{c.max_points:g}",
                             "instructor" if c.manual else "autograder"])
    return rows.getvalue()


def totals_csv(grades: list[NotebookGrade]) -> str:
    """One row per student, as a gradebook import expects: per notebook its autograded points and
    their max, then the autograded total and its max. Where there are written answers, also the
    points still pending with the instructor (per notebook and in all) and the max with them."""
    notebooks = list(dict.fromkeys(g.notebook for g in grades))
    written = {g.notebook for g in grades if g.manual_max}
    header = ["student"]
    for name in notebooks:
        header += [f"{name} autograded", f"{name} autograded max"] + ([f"{name} pending"] if name in written else [])
    header += ["autograded total", "autograded max"] + (["pending (graded by the instructor)", "max"] if written else [])
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(header)
    for student in sorted({g.student for g in grades}):
        mine = {g.notebook: g for g in grades if g.student == student}
        row = [student]
        for name in notebooks:
            g = mine.get(name)
            row += [_number(g and g.points), _number(g and g.max_points)]
            row += [_number(g and g.pending)] if name in written else []
        graded = mine.values()
        row += [_number(sum(g.points for g in graded)), _number(sum(g.max_points for g in graded))]
        if written:
            row += [_number(sum(g.pending for g in graded)), _number(sum(g.max_points + g.manual_max for g in graded))]
        writer.writerow(row)
    return rows.getvalue()


def _number(value) -> str:
    return "" if value is None else f"{value:g}"


def _feedback(grades: list[NotebookGrade]) -> list[dict]:
    """Per notebook: its heading, one item (line, written answer or "") per graded cell, and the
    notes; plain text throughout."""
    sections = []
    for g in grades:
        items = [(_verdict(c), c.answer) for c in g.cells]
        heading = f"{g.notebook}: {g.points:g} / {g.max_points:g} points autograded"
        if g.pending:
            heading += f", {g.pending:g} more graded by your instructor"
        sections.append({"heading": heading + (f" (file {g.file})" if g.file else ""),
                         "items": items + [(f"note: {n}", "") for n in g.notes]})
    return sections


def _verdict(c) -> str:
    if c.manual and c.points is None:
        return f"{c.exercise} ({c.max_points:g} points, graded by your instructor): " + \
               (c.message or "your answer, as the instructor will read it:")
    verdict = "passed" if not c.message else f"FAILED: {c.message}"
    return f"{c.exercise} ({c.points:g}/{c.max_points:g}): {verdict}"


def feedback_text(student: str, grades: list[NotebookGrade]) -> str:
    """The Markdown feedback of one student: per notebook its points, each test cell's verdict, notes."""
    out = [f"# Feedback for {student}", ""]
    for section in _feedback(grades):
        out += [f"## {section['heading']}", ""]
        for line, answer in section["items"]:
            out.append(f"- {line}")
            out += [f"  > {row}".rstrip() for row in answer.splitlines()]
        out.append("")
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
        out += [f"<li>{e(line)}" + (f"<blockquote>{e(answer)}</blockquote>" if answer else "") + "</li>"
                for line, answer in section["items"]]
        out += ["</ul>"]
    out += ["</body></html>", ""]
    return "\n".join(out)


def _safe_name(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "unknown"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
