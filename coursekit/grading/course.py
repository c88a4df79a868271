"""A throw-away nbgrader course: nbgrader's API on a temporary folder, and one instructor notebook's
course kept as bytes (Homework) so that every submission is graded in a fresh copy of it.

nbgrader does all the markup work: `generate_assignment` makes the student version and fills a
gradebook; `autograde` restores the locked cells from that gradebook (by checksum), runs the
notebook and scores each test cell.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .guard import build_spec, spec_cell
from .normalize import given_cells
from .notebooks import HomeworkError, grade_id, graded_part, hidden_lines, manual_cells, read_notebook, test_cells

STUDENT = "student"          # the one nbgrader student id inside a throw-away course
RELEASED = "student_version"   # where prepare() keeps the student version inside a course
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def nbgrader_settings(cell_timeout: float = 60) -> dict:
    """{"Section.option": value}: the nbgrader settings coursekit releases and grades with, and
    that the nbgrader_config.py template (config_template) gives a JupyterHub course."""
    return {"ClearSolutions.code_stub": {"python": "# YOUR CODE HERE\nraise NotImplementedError()"},
            "ClearSolutions.text_stub": "YOUR ANSWER HERE",     # a written answer's placeholder
            "OverwriteCells.add_missing_cells": True,           # deleted test cells come back
            "Execute.timeout": int(cell_timeout),
            "Execute.interrupt_on_timeout": True}


def nbgrader_api(course: Path, cell_timeout: float = 60):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Exchange.root = str(course / "exchange")    # unused; keeps nbgrader off /usr/local/share
    for key, value in nbgrader_settings(cell_timeout).items():
        section, option = key.split(".")
        config[section][option] = value
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def config_template(cell_timeout: float = 1200) -> str:
    """An nbgrader_config.py for a JupyterHub course whose formgrader collects the submissions:
    one nbgrader assignment per notebook, released and graded with coursekit's own settings. The
    per-cell limit is `make course`'s: nbgrader's autograde runs whole notebooks."""
    lines = [
        "# nbgrader_config.py for a JupyterHub course of coursekit's notebooks",
        "# (made by `python -m coursekit grade --config-template`). Put it in the course directory, which holds",
        "#   source/<NN_name>/<NN_name>.ipynb   one assignment per notebook, a copy of notebooks/<NN_name>.ipynb:",
        "#       for f in notebooks/[0-9][0-9]_*.ipynb; do n=$(basename $f .ipynb); mkdir -p source/$n; cp $f source/$n/; done",
        "#   release/<NN_name>/<NN_name>.ipynb  made by `nbgrader generate_assignment <NN_name>`: the same notebook as",
        "#       coursekit's release/<NN_name>.ipynb (`make student`), since both use the settings below",
        "#   submitted/, autograded/, feedback/ nbgrader's own",
        "# nbgrader's autograde runs the whole notebook, without coursekit's guard (references blocked,",
        "# comparisons put back) or its normalizing of submissions: for those, download the submissions",
        "# and run `python -m coursekit grade submitted/` (a folder per student, as nbgrader keeps it).",
        "c = get_config()  # noqa: F821 (nbgrader's config loader provides it)",
        "",
        'c.CourseDirectory.course_id = "deep-learning"        # edit: your course id on the hub',
        'c.Exchange.root = "/srv/nbgrader/exchange"           # edit: a folder every hub user can write to',
        "",
        "# coursekit's settings (coursekit/grading/course.py, nbgrader_settings)",
    ]
    lines += [f"c.{key} = {value!r}" for key, value in nbgrader_settings(cell_timeout).items()]
    return "\n".join(lines) + "\n"


def generate(course: Path, assignment: str, notebooks: dict) -> Path:
    """Run nbgrader generate_assignment on {name: notebook}; returns the release folder."""
    import nbformat
    source = course / "source" / assignment
    source.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, str(source / f"{name}.ipynb"))
    _fast_gradebooks()
    result = nbgrader_api(course).generate_assignment(assignment)
    if not result["success"]:
        log = str(result.get("log"))
        failing = re.findall(r"Converting notebook (\S+)", log.split("[ERROR]")[0]) or sorted(notebooks)
        raise HomeworkError(f"nbgrader could not make the student version of {Path(failing[-1]).name}: "
                            f"{cause(log)} (solution markers may only appear in solution cells; "
                            "elsewhere, e.g. in markdown that shows them, write them differently)")
    return course / "release" / assignment


def _fast_gradebooks() -> None:
    """nbgrader asks a subprocess (`alembic heads`) for the schema version of every new gradebook:
    seconds each, and the `alembic` command must be on PATH. Ask alembic in-process, once."""
    import nbgrader.api
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    if getattr(nbgrader.api.get_alembic_version, "in_process", False):
        return
    config = Config()
    config.set_main_option("script_location", str(Path(nbgrader.api.__file__).parent / "alembic"))
    head = ScriptDirectory.from_config(config).get_current_head()
    nbgrader.api.get_alembic_version = lambda: head
    nbgrader.api.get_alembic_version.in_process = True


def without_colours(text: str) -> str:
    """Text with its ANSI colour codes removed (nbgrader's log and IPython tracebacks carry them)."""
    return _ANSI.sub("", text)


def cause(text) -> str:
    """The informative line of nbgrader's log: the last exception that is not its generic wrapper."""
    lines = [l.strip() for l in without_colours(str(text or "")).splitlines() if l.strip()]
    causes = [l for l in lines if re.match(r"^[\w.]*(Error|Exception|Timeout)\w*:", l) and "NbGraderException" not in l]
    return (causes or lines or ["unknown error"])[-1][:300]


@dataclass(frozen=True)
class Homework:
    """One instructor notebook, ready to grade: its throw-away nbgrader course, held in memory."""
    name: str
    max_points: dict            # test cell grade_id -> points
    secrets: frozenset          # the hidden test lines, never echoed in feedback
    locked: dict                # locked cell grade_id -> checksums of its source and release versions
    files: dict                 # course-relative path -> bytes (gradebook, source, student version)
    guard: dict                 # the kernel guard's spec (guard.build_spec): references, trusted cells
    given: dict                 # cell id -> source of the given cells (normalize.given_cells)
    manual: dict                # manually graded answer grade_id -> points (an instructor grades them)


def prepare(path, mode: str = "exercises") -> Homework:
    """Build the nbgrader course of one instructor notebook (gradebook with its cells and
    checksums) and keep its files as bytes: each submission gets a fresh copy, so nothing a
    submission does to its copy can reach the next one."""
    nb = graded_part(read_notebook(path), mode)
    name = Path(path).stem
    with tempfile.TemporaryDirectory(prefix="coursekit-course-") as tmp:
        course = Path(tmp)
        release = read_notebook(generate(course, name, {name: nb}) / f"{name}.ipynb")
        (course / RELEASED).mkdir()
        shutil.move(course / "release" / name / f"{name}.ipynb", course / RELEASED / f"{name}.ipynb")
        files = {str(p.relative_to(course)): p.read_bytes() for p in
                 [course / "gradebook.db", course / "source" / name / f"{name}.ipynb", course / RELEASED / f"{name}.ipynb"]}
    cells = test_cells(nb)
    return Homework(name, {grade_id(c): _points(c) for c in cells},
                    _secret_lines(cells),
                    _locked_checksums([nb, release]), files, build_spec(nb), given_cells(nb),
                    {grade_id(c): _points(c) for c in manual_cells(nb)})


def _points(cell) -> float:
    return float(cell.metadata["nbgrader"].get("points", 0))


def _secret_lines(cells) -> frozenset:
    lines = [line.strip() for c in cells for line in hidden_lines(c.source).values()]
    return frozenset(line for line in lines if len(line) > 6)


def _locked_checksums(versions) -> dict:
    from nbgrader.utils import compute_checksum, is_locked
    sums = {}
    for nb in versions:
        for cell in nb.cells:
            if grade_id(cell) and is_locked(cell):
                sums.setdefault(grade_id(cell), set()).add(compute_checksum(cell))
    return sums


def fresh_course(hw: Homework, course: Path, submission, nonce: str = "") -> None:
    """The course from the bytes in `hw` (whatever a previous attempt left is wiped) and the
    submission where nbgrader expects it, behind the guard cell (guard.py) that runs first. The
    guard reads `nonce` from a file it deletes, and prints it at the top of every test cell."""
    import nbformat
    spec = {**hw.guard, "nonce_file": str(course / "guard-nonce")}
    submission = nbformat.from_dict({**submission, "cells": [nbformat.v4.new_code_cell(spec_cell(spec)),
                                                             *submission["cells"]]})
    os.chdir(course.parent)
    shutil.rmtree(course, ignore_errors=True)
    for rel, data in hw.files.items():
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (course / rel).write_bytes(data)
    (course / "guard-nonce").write_text(nonce)
    target = course / "submitted" / STUDENT / hw.name / f"{hw.name}.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(submission, str(target))
    os.chdir(course)
