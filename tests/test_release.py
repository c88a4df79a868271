"""The committed student notebooks (release/) are what `make student` makes from notebooks/ now.

Students work from release/ (`make lab` copies it into my-notebooks/), so they need neither
nbgrader nor the solutions; this test is what keeps the copy from going stale.
"""
from __future__ import annotations

from pathlib import Path

from coursekit import grading

ROOT = Path(__file__).resolve().parents[1]


def test_committed_release_is_current(tmp_path):
    made = grading.make_release(ROOT / "notebooks", tmp_path / "release")
    committed = sorted(p.name for p in (ROOT / "release").glob("*.ipynb"))
    assert committed == sorted(p.name for p in made), "release/ and notebooks/ differ: run `make student` and commit"
    stale = [p.name for p in made if p.read_bytes() != (ROOT / "release" / p.name).read_bytes()]
    assert not stale, f"release/ is stale for {stale}: run `make student` and commit release/"


def test_release_holds_no_solution_or_hidden_test():
    for path in (ROOT / "release").glob("*.ipynb"):
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, f"{path.name} holds '{marker}'"


def test_release_leaves_out_instructor_notes():
    # our development numbers are for the instructor; students read about their own output
    notes = [p.name for p in (ROOT / "notebooks").glob("*.ipynb")
             if any(grading.is_instructor_note(c) for c in grading.read_notebook(p).cells)]
    assert notes, "no instructor note in notebooks/: this test would prove nothing"
    for name in notes:
        assert not any(grading.is_instructor_note(c) for c in grading.read_notebook(ROOT / "release" / name).cells)
        assert grading.INSTRUCTOR_NOTE not in (ROOT / "release" / name).read_text()
