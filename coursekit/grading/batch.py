"""Grading a whole batch: a folder of submissions against the instructor notebooks -> grades.csv
and one feedback file per student. Exercise mode (the default, for speed) grades a notebook as
"its FIRST code cell + its '## Exercises' section"; mode="full" runs it all.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .autograde import NotebookGrade, zero
from .course import Homework, prepare
from .isolation import grade_submissions
from .notebooks import HomeworkError, grade_id, homework_notebooks, read_notebook
from .report import write_reports
from .submissions import find_submissions, pick_files


def grade(submissions_dir, notebooks_dir="notebooks", out_dir="grades", mode: str = "exercises",
          cell_timeout: float = 60, notebook_timeout: float = 300, only=None, parallel: int = 1,
          log=print, scheduler: str | None = None) -> list[NotebookGrade]:
    """Autograde a folder of submissions against the instructor notebooks; write grades.csv,
    totals.csv and feedback/<student>.md + .html under out_dir (report.py). Notebooks graded: those
    named in `only`, else every homework that at least one student submitted (a student without
    it gets 0, 'not submitted'). parallel > 1 grades that many at once on a Dask LocalCluster;
    scheduler="tcp://host:8786" grades on an existing Dask scheduler's workers (cluster.py). Either
    way each submission has its own process and folder, but submissions running at once on one
    machine run as one user and could see each other's throw-away folders: keep 1 for untrusted
    code on a shared machine, or use a container per worker."""
    sources = _graded_sources(notebooks_dir, only)
    ids = {name: {grade_id(c) for c in read_notebook(p).cells} - {None} for name, p in sources.items()}
    with tempfile.TemporaryDirectory(prefix="coursekit-submissions-") as tmp:
        found = find_submissions(submissions_dir, Path(tmp) / "in")
        chosen, notes = pick_files(found, ids)
        names = sorted(only or {name for (_, name) in chosen})
        if not names:
            raise HomeworkError(f"no file in {submissions_dir} matches a graded notebook {sorted(ids)}: "
                                f"{[s.path.name for s in found][:20]}")
        homeworks = {name: prepare(sources[name], mode) for name in names}
        for name in names:
            _check_reference(homeworks[name], sources[name], mode, log)
        students = sorted({s.student for s in found})
        jobs = [(homeworks[n], st, chosen[(st, n)]) for st in students for n in names if (st, n) in chosen]
        graded = {(g.student, g.notebook): g for g in
                  grade_submissions(jobs, mode, cell_timeout, notebook_timeout, parallel, log, scheduler)}
    grades = []
    for student in students:
        for name in names:
            grades.append(graded.get((student, name)) or
                          NotebookGrade(student, name, "", zero(homeworks[name], "not submitted")))
        grades[-len(names)].notes += notes.get(student, [])
    write_reports(grades, out_dir)
    return grades


def _check_reference(hw: Homework, source: Path, mode: str, log) -> None:
    """Grade the instructor's own solution first, with generous limits: it warms the caches the
    first code cell needs (e.g. the trained backbone) and proves the reference gets full marks."""
    log(f"grading the instructor solution of {hw.name} first (warms the caches)")
    reference = grade_submissions([(hw, "instructor", source)], mode, cell_timeout=1800, notebook_timeout=3600)[0]
    if reference.points < reference.max_points:
        failed = "; ".join(f"{c.exercise}: {c.message}" for c in reference.cells if c.message and not c.manual)
        raise HomeworkError(f"the instructor solution of {hw.name} scores {reference.points:g}/"
                            f"{reference.max_points:g} under the autograder ({failed}); fix the notebook first")


def _graded_sources(notebooks_dir, only) -> dict:
    sources = {p.stem: p for p in homework_notebooks(notebooks_dir)}
    if not sources:
        raise HomeworkError(f"no notebook with graded test cells in {Path(notebooks_dir).resolve()}")
    unknown = sorted(set(only or ()) - set(sources))
    if unknown:
        raise HomeworkError(f"unknown notebooks {unknown}; graded notebooks are {sorted(sources)}")
    return {n: sources[n] for n in only} if only else sources
