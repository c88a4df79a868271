"""Cells in nbgrader's markup, for the synthetic homeworks the grading tests build."""
from __future__ import annotations

import nbformat


def answer_cell(gid: str, body: str):
    """An answer cell: graded by the test cells after it, not locked."""
    meta = {"grade": False, "solution": True, "locked": False, "grade_id": gid, "schema_version": 3}
    return nbformat.v4.new_code_cell(body, metadata={"nbgrader": meta})


def locked_test_cell(gid: str, body: str, points: float):
    """A locked test cell worth `points`."""
    meta = {"grade": True, "solution": False, "locked": True, "points": points, "grade_id": gid,
            "schema_version": 3}
    return nbformat.v4.new_code_cell(body, metadata={"nbgrader": meta})


def written_answer_cell(gid: str, text: str, points: float):
    """A manually graded answer: a markdown cell the student writes in, graded by the instructor."""
    meta = {"grade": True, "solution": True, "locked": False, "points": points, "grade_id": gid,
            "schema_version": 3}
    return nbformat.v4.new_markdown_cell(text, metadata={"nbgrader": meta})
