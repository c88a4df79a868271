"""Graded homework on top of nbgrader: the student release and the autograder.

The instructor notebooks in notebooks/ are the source (DESIGN.md "Exercises"): solution cells
between `### BEGIN SOLUTION` / `### END SOLUTION`, locked test cells with points and hidden asserts
between `### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`. nbgrader does all the markup work:
`generate_assignment` makes the student version and fills a gradebook; `autograde` restores the
locked cells from that gradebook (by checksum), runs the notebook and scores each test cell.

What this module adds around nbgrader:
- make_release(): notebooks/*.ipynb -> release/*.ipynb (a throw-away nbgrader course does it).
- grade(): a folder of submissions -> grades.csv + one feedback file per student. Each
  submission is autograded by nbgrader in its OWN throw-away course directory, in its own process
  (its own kernel), under a per-cell and a per-notebook time limit. The gradebook and the
  instructor source are rebuilt for every submission from bytes the parent holds in memory, and
  only the parent writes grades.csv and feedback, after every grading process has ended, so a
  submission can neither see another student's files nor change another student's grade.
- Exercise mode (the default, for speed): a notebook is graded as "its FIRST code cell + its
  '## Exercises' section" (the section must be self-contained; DESIGN.md). mode="full" runs all.

Not a security sandbox: student code runs as your user. Use a container for hostile cohorts.
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("exercises", "full")
STUDENT = "student"          # the one nbgrader student id inside a throw-away course
RELEASE_MARKER = "GENERATED.txt"
RELEASED = "student_version"   # where prepare() keeps the student version inside a course
_EXERCISES = re.compile(r"^#{1,2}\s+(?:\d+[.)]?\s*)?exercises\b", re.IGNORECASE | re.MULTILINE)
_SECTION = re.compile(r"^#{1,2}\s", re.MULTILINE)
_LMS_NAME = re.compile(r"^(?P<name>.*?[^\d_].*?)_(?:LATE_)?(?P<id>\d+)_")   # Canvas, Moodle
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HomeworkError(ValueError):
    """Something in the instructor's notebooks or the command line is wrong (the message says what)."""


# ---------------------------------------------------------------- notebooks and their exercises

def read_notebook(path):
    import nbformat
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises several types for empty / broken JSON
        raise HomeworkError(f"{path} is not a readable .ipynb notebook ({type(err).__name__}: {err})") from err


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def test_cells(nb) -> list:
    """The autograded cells: nbgrader grade cells that are code (their points count)."""
    from nbgrader import utils
    return [c for c in nb.cells if c.cell_type == "code" and utils.is_grade(c)]


def exercise_section(nb) -> tuple[int, int] | None:
    """(start, stop) cell indices of the '## Exercises' section, up to the next level-1/2 heading."""
    start = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and _EXERCISES.search(c.source)), None)
    if start is None:
        return None
    stop = next((i for i in range(start + 1, len(nb.cells))
                 if nb.cells[i].cell_type == "markdown" and _SECTION.search(nb.cells[i].source)),
                len(nb.cells))
    return start, stop


def graded_part(nb, mode: str = "exercises"):
    """The cells grading runs: mode 'exercises' keeps the FIRST code cell (imports, setup) plus the
    '## Exercises' section, the convention that makes every exercise runnable on its own; mode
    'full' keeps everything. Without an Exercises heading the whole notebook is kept."""
    if mode not in MODES:
        raise HomeworkError(f"mode={mode!r}: use one of {MODES}")
    section = exercise_section(nb)
    if mode == "full" or section is None:
        return nb
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
    keep = ([first_code] if first_code is not None and first_code < section[0] else [])
    keep += list(range(*section))
    trimmed = dict(nb)
    trimmed["cells"] = [nb.cells[i] for i in keep]
    import nbformat
    return nbformat.from_dict(trimmed)


def homework_notebooks(folder) -> list[Path]:
    """Instructor notebooks under `folder` that carry at least one graded test cell."""
    paths = sorted(Path(folder).glob("*.ipynb"))
    return [p for p in paths if test_cells(read_notebook(p))]


# ---------------------------------------------------------------- nbgrader, in a throw-away course

def _nbgrader_api(course: Path, cell_timeout: float = 60):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Exchange.root = str(course / "exchange")    # unused; keeps nbgrader off /usr/local/share
    config.Execute.timeout = int(cell_timeout)
    config.Execute.interrupt_on_timeout = True
    config.OverwriteCells.add_missing_cells = True     # deleted test cells come back
    config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _generate(course: Path, assignment: str, notebooks: dict) -> Path:
    """Run nbgrader generate_assignment on {name: notebook}; returns the release folder."""
    import nbformat
    source = course / "source" / assignment
    source.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, str(source / f"{name}.ipynb"))
    _fast_gradebooks()
    result = _nbgrader_api(course).generate_assignment(assignment)
    if not result["success"]:
        log = str(result.get("log"))
        failing = re.findall(r"Converting notebook (\S+)", log.split("[ERROR]")[0]) or sorted(notebooks)
        raise HomeworkError(f"nbgrader could not make the student version of {Path(failing[-1]).name}: "
                            f"{_cause(log)} (solution markers may only appear in solution cells; "
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


def make_release(notebooks_dir="notebooks", release_dir="release") -> list[Path]:
    """Write the student version of every notebooks/*.ipynb into release/: solutions replaced by
    `raise NotImplementedError()`, hidden tests removed, outputs cleared, the rest identical.
    release/ is generated: it is wiped and rewritten every time (never edit it by hand)."""
    sources = sorted(Path(notebooks_dir).glob("*.ipynb"))
    if not sources:
        raise HomeworkError(f"no notebooks in {Path(notebooks_dir).resolve()}; pass the folder of "
                            "instructor notebooks (default: notebooks/)")
    release = Path(release_dir)
    if release.exists() and any(release.iterdir()) and not (release / RELEASE_MARKER).exists():
        raise HomeworkError(f"{release.resolve()} exists and was not made by `coursekit student` "
                            f"(no {RELEASE_MARKER}); move it away or pass another --out")
    with tempfile.TemporaryDirectory(prefix="coursekit-release-") as tmp:
        built = _generate(Path(tmp), "release", {p.stem: read_notebook(p) for p in sources})
        shutil.rmtree(release, ignore_errors=True)
        release.mkdir(parents=True)
        for path in sources:
            shutil.copyfile(built / path.name, release / path.name)
    (release / RELEASE_MARKER).write_text(
        "Generated by `python -m coursekit student` from the instructor notebooks; do not edit.\n")
    return [release / p.name for p in sources]


@dataclass(frozen=True)
class Homework:
    """One instructor notebook, ready to grade: its throw-away nbgrader course, held in memory."""
    name: str
    max_points: dict            # test cell grade_id -> points
    secrets: frozenset          # the hidden test lines, never echoed in feedback
    locked: dict                # locked cell grade_id -> checksums of its source and release versions
    files: dict                 # course-relative path -> bytes (gradebook, source, student version)


def prepare(path, mode: str = "exercises") -> Homework:
    """Build the nbgrader course of one instructor notebook (gradebook with its cells and
    checksums) and keep its files as bytes: each submission gets a fresh copy, so nothing a
    submission does to its copy can reach the next one."""
    nb = graded_part(read_notebook(path), mode)
    name = Path(path).stem
    with tempfile.TemporaryDirectory(prefix="coursekit-course-") as tmp:
        course = Path(tmp)
        release = read_notebook(_generate(course, name, {name: nb}) / f"{name}.ipynb")
        (course / RELEASED).mkdir()
        shutil.move(course / "release" / name / f"{name}.ipynb", course / RELEASED / f"{name}.ipynb")
        files = {str(p.relative_to(course)): p.read_bytes() for p in
                 [course / "gradebook.db", course / "source" / name / f"{name}.ipynb", course / RELEASED / f"{name}.ipynb"]}
    cells = test_cells(nb)
    return Homework(name, {grade_id(c): float(c.metadata["nbgrader"].get("points", 0)) for c in cells},
                    _secret_lines(cells),
                    _locked_checksums([nb, release]), files)


def _secret_lines(cells) -> frozenset:
    lines = [line.strip() for c in cells for number, line in enumerate(c.source.splitlines(), 1)
             if _is_hidden(c.source, number)]
    return frozenset(line for line in lines if len(line) > 6)


def _redact(hw: Homework, text: str) -> str:
    """A submission could raise an error quoting the hidden tests: keep them out of feedback."""
    for secret in hw.secrets:
        text = text.replace(secret, "[hidden]")
    return text


def _locked_checksums(versions) -> dict:
    from nbgrader.utils import compute_checksum, is_locked
    sums = {}
    for nb in versions:
        for cell in nb.cells:
            if grade_id(cell) and is_locked(cell):
                sums.setdefault(grade_id(cell), set()).add(compute_checksum(cell))
    return sums


def _is_hidden(source: str, line_number: int) -> bool:
    """Whether line `line_number` (1-based) of a test cell lies between BEGIN and END HIDDEN TESTS."""
    inside = False
    for number, line in enumerate(source.splitlines(), 1):
        if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
            inside = "BEGIN" in line
        elif number == line_number:
            return inside
    return False


# ---------------------------------------------------------------- grading one submission

@dataclass
class CellGrade:
    exercise: str
    points: float
    max_points: float
    message: str = ""           # empty when the test cell passed


@dataclass
class NotebookGrade:
    student: str
    notebook: str
    file: str
    cells: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.cells)


def _zero(hw: Homework, why: str) -> list[CellGrade]:
    return [CellGrade(gid, 0.0, pts, why) for gid, pts in hw.max_points.items()]


def _grade_in_course(hw: Homework, submission: Path, course: Path, mode: str, cell_timeout: float) -> dict:
    """Runs in the grading process: nbgrader autograde of one submission in `course`; returns
    {scores: {grade_id: points}, errors: {grade_id: message}, notes} or {error, notes}.
    The kernel's working directory is inside `course`."""
    import nbformat
    try:
        nb = nbformat.read(str(submission), as_version=4)
        nbformat.validate(nb)
    except Exception as err:    # empty file, broken JSON, not a notebook
        return {"error": f"not a valid notebook ({type(err).__name__}: {str(err)[:200]})"}
    notes = _changed_test_cells(hw, nb)
    if exercise_section(nb) is None and mode == "exercises":
        notes.append("no '## Exercises' heading found: the whole notebook was run")
    causes = []
    for _ in range(2):           # a kernel can fail to start on a busy machine: one more try
        _fresh_course(hw, course, graded_part(nb, mode))
        result = _nbgrader_api(course, cell_timeout).autograde(hw.name, STUDENT)
        if result["success"]:
            notes += [f"graded on the second try (the first failed: {cause})" for cause in causes]
            return {**_scores(hw, course), "notes": notes}
        causes.append(_cause(f"{result.get('log')}\n{result.get('error')}"))
    return {"error": f"nbgrader could not grade it: {causes[-1]}", "notes": notes}


def _fresh_course(hw: Homework, course: Path, submission) -> None:
    """The course from the bytes in `hw` (whatever a previous attempt left is wiped) and the
    submission where nbgrader expects it."""
    import nbformat
    os.chdir(course.parent)
    shutil.rmtree(course, ignore_errors=True)
    for rel, data in hw.files.items():
        (course / rel).parent.mkdir(parents=True, exist_ok=True)
        (course / rel).write_bytes(data)
    target = course / "submitted" / STUDENT / hw.name / f"{hw.name}.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(submission, str(target))
    os.chdir(course)


def _changed_test_cells(hw: Homework, nb) -> list[str]:
    """Locked cells the student deleted or edited (nbgrader restores both from the gradebook)."""
    from nbgrader.utils import compute_checksum
    seen = {grade_id(c): c for c in nb.cells if grade_id(c) in hw.locked}
    notes = [f"test cell {gid} was deleted; the original was put back" for gid in hw.max_points if gid not in seen]
    notes += [f"locked cell {gid} was edited; the original was put back"
              for gid, cell in seen.items() if compute_checksum(cell) not in hw.locked[gid]]
    return notes


def _scores(hw: Homework, course: Path) -> dict:
    import nbformat
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        graded = gb.find_submission_notebook(hw.name, hw.name, STUDENT)
        scores = {g.name: float(g.score or 0) for g in graded.grades}
    done = nbformat.read(str(course / "autograded" / STUDENT / hw.name / f"{hw.name}.ipynb"), as_version=4)
    errors = {grade_id(c): _error_text(hw, c) for c in done.cells if grade_id(c) and _errors(c)}
    return {"scores": scores, "errors": errors}


def _errors(cell) -> list:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _error_text(hw: Homework, cell) -> str:
    errors = _errors(cell)
    if any(e.get("ename") == "CellTimeoutError" for e in errors):
        return "CellTimeoutError: the cell ran past the time limit per cell (an endless loop?)"
    error = errors[-1]
    text = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip().rstrip(":")
    where = _failing_line(error)
    if where is not None and _is_hidden(cell.source, where):      # the restored cell, as it ran
        text = "a hidden test failed: " + text
    return text[:300]


def _failing_line(error) -> int | None:
    """The line of the cell where the error was raised, from IPython's 'Cell In[n], line k'."""
    tb = _ANSI.sub("", "\n".join(error.get("traceback", [])))
    hits = re.findall(r"Cell In\[\d*\], line (\d+)", tb)
    return int(hits[0]) if hits else None


def _cause(text) -> str:
    """The informative line of nbgrader's log: the last exception that is not its generic wrapper."""
    lines = [l.strip() for l in _ANSI.sub("", str(text or "")).splitlines() if l.strip()]
    causes = [l for l in lines if re.match(r"^[\w.]*(Error|Exception|Timeout)\w*:", l) and "NbGraderException" not in l]
    return (causes or lines or ["unknown error"])[-1][:300]


def _grading_process(conn, hw, submission, course, mode, cell_timeout):
    """Entry point of the child process. It adopts orphans (subreaper) so that anything the
    student's kernel spawns can be killed before the parent writes any result."""
    _become_subreaper()
    _silence()
    try:
        conn.send(_grade_in_course(hw, Path(submission), Path(course), mode, cell_timeout))
    except BaseException as err:  # report any failure as this one submission's failure
        conn.send({"error": f"grading crashed ({type(err).__name__}: {str(err)[:200]})"})
    finally:
        _kill_descendants(os.getpid())
        conn.close()


def _silence() -> None:
    """Kernel chatter and nbgrader's warnings would bury the progress lines: results travel in
    the pipe, so the grading process writes nothing to the terminal."""
    import warnings
    warnings.simplefilter("ignore")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _become_subreaper() -> None:
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER


def _kill_descendants(pid: int) -> None:
    import psutil
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=5)


def grade_submission(hw: Homework, student: str, submission, mode: str = "exercises",
                     cell_timeout: float = 60, notebook_timeout: float = 300) -> NotebookGrade:
    """Autograde one submitted notebook in a fresh process and throw-away course."""
    return grade_submissions([(hw, student, submission)], mode, cell_timeout, notebook_timeout)[0]


def grade_submissions(jobs, mode: str = "exercises", cell_timeout: float = 60, notebook_timeout: float = 300,
                      parallel: int = 1, log=None) -> list[NotebookGrade]:
    """Autograde (homework, student, file) triples, `parallel` at a time, each in its own process
    and throw-away course; the grades come back in the order of `jobs`."""
    outcomes, running, pending = [None] * len(jobs), {}, list(range(len(jobs)))
    while pending or running:
        while pending and len(running) < max(1, parallel):
            index = pending.pop(0)
            hw, student, path = jobs[index]
            if log:
                log(f"grading {student} / {hw.name} ({Path(path).name})")
            running[index] = _Grading(hw, path, mode, cell_timeout)
        multiprocessing.connection.wait([g.pipe for g in running.values()], timeout=0.5)
        for index, grading in list(running.items()):
            outcome = grading.outcome(notebook_timeout)
            if outcome is not None:
                outcomes[index] = outcome
                del running[index]
    return [_as_grade(hw, student, path, outcome) for (hw, student, path), outcome in zip(jobs, outcomes)]


def _as_grade(hw: Homework, student: str, path, outcome: dict) -> NotebookGrade:
    grade = NotebookGrade(student, hw.name, Path(path).name, notes=list(outcome.get("notes", [])))
    if "error" in outcome:
        grade.cells = _zero(hw, outcome["error"])
        return grade
    errors = outcome["errors"]
    grade.notes += [f"your cell {gid} raised {_redact(hw, msg)}" for gid, msg in errors.items()
                    if gid not in hw.max_points]
    for gid, pts in hw.max_points.items():
        score = min(max(float(outcome["scores"].get(gid, 0.0)), 0.0), pts)   # untrusted: clamp
        message = (_redact(hw, errors.get(gid, "")) or "failed (no error message recorded)") if score < pts else ""
        grade.cells.append(CellGrade(gid, score, pts, message))
    return grade


class _Grading:
    """One grading process in flight: its own throw-away course, its own kernel, a one-way pipe
    for the result (the kernel does not inherit it)."""

    def __init__(self, hw: Homework, submission, mode: str, cell_timeout: float):
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        self.tmp = tempfile.TemporaryDirectory(prefix="coursekit-grade-")
        self.pipe, send = context.Pipe(duplex=False)
        self.process = context.Process(target=_grading_process, args=(
            send, hw, str(Path(submission).resolve()), str(Path(self.tmp.name) / "course"), mode, cell_timeout))
        self.process.start()
        send.close()
        self.started = time.monotonic()

    def outcome(self, notebook_timeout: float) -> dict | None:
        """The result once there is one (or the process died, or ran out of time), else None."""
        timed_out = time.monotonic() - self.started >= notebook_timeout
        result = None
        if self.pipe.poll():
            try:
                result = self.pipe.recv()
            except EOFError:
                result = {"error": "the grading process died"}
        elif timed_out:
            result = {"error": f"stopped after {notebook_timeout:g} s (the time limit per notebook)"}
        elif not self.process.is_alive() and not self.pipe.poll(0.5):
            result = {"error": "the grading process died"}
        if result is not None:
            self.stop()
        return result if result is None or isinstance(result, dict) else {"error": "grading returned nonsense"}

    def stop(self) -> None:
        _kill_descendants(self.process.pid)
        self.process.kill()
        self.process.join()
        self.pipe.close()
        self.tmp.cleanup()


# ---------------------------------------------------------------- every exercise, both ways

@dataclass
class Validation:
    notebook: str
    exercises: int              # graded test cells with points
    problems: list = field(default_factory=list)


def validate(path, mode: str = "exercises", cell_timeout: float = 900, notebook_timeout: float = 1800) -> Validation:
    """Prove each exercise of an instructor notebook both ways, through the real autograder: the
    instructor's solutions get every point (visible and hidden tests), and the untouched student
    version gets zero in every test cell (nbgrader's `validate --invert` idea). The time limits
    are generous: the first code cell may train and cache the backbone on a cold cache."""
    hw = prepare(path, mode)
    report = Validation(hw.name, sum(1 for pts in hw.max_points.values() if pts > 0))
    with tempfile.TemporaryDirectory(prefix="coursekit-validate-") as tmp:
        student_version = Path(tmp) / f"{hw.name}.ipynb"
        student_version.write_bytes(hw.files[f"{RELEASED}/{hw.name}.ipynb"])
        solved, untouched = grade_submissions([(hw, "instructor", path), (hw, "student", student_version)],
                                              mode, cell_timeout, notebook_timeout, parallel=2)
    report.problems += [f"the solution fails {c.exercise}: {c.message}" for c in solved.cells if c.message]
    report.problems += [f"{c.exercise} passes with the untouched student version" for c in untouched.cells
                        if c.points > 0]
    report.problems += [f"solution run: {note}" for note in solved.notes if "raised" in note]
    return report


# ---------------------------------------------------------------- finding submissions

@dataclass
class Submission:
    student: str
    path: Path


def student_from_name(name: str) -> str:
    """'smithjane_12345_67890_03_x.ipynb' (Canvas) or 'Jane Smith_12345_assignsubmission_file_'
    (Moodle) -> 'smithjane_12345' / 'Jane Smith_12345'; any other name -> itself without suffix."""
    match = _LMS_NAME.match(name)
    if match:
        return f"{match['name']}_{match['id']}"
    return Path(name).stem if name.endswith((".ipynb", ".zip")) else name


def find_submissions(folder, unpack_to) -> list[Submission]:
    """Every .ipynb under `folder`, with its student. Layouts (zip files are unpacked first):
    - folder/<student>/.../*.ipynb          one sub-folder per student (nbgrader's submitted/ too)
    - folder/<name>_<id>_<anything>.ipynb   an LMS download (Canvas, Moodle); student = name_id
    - folder/<name>_<id>_<anything>.zip     one zip per student; any other zip is a whole download
    """
    folder, root = Path(folder), Path(unpack_to)
    if not folder.is_dir():
        raise HomeworkError(f"{folder} is not a folder of submissions; pass the folder that holds "
                            "one sub-folder per student or the files of an LMS download")
    shutil.copytree(folder, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _unpack_zips(root)
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        parts = path.relative_to(root).parts
        if "__MACOSX" in parts or ".ipynb_checkpoints" in parts:
            continue
        found.append(Submission(student_from_name(parts[0]), path))
    return found


def _unpack_zips(root: Path) -> None:
    """Unpack every zip in place: '<name>_<id>_x.zip' -> folder of that student; any other top
    level zip is a whole download whose content joins the top level."""
    for _ in range(3):                                  # a zip of per-student zips, at most
        zips = sorted(root.rglob("*.zip"))
        if not zips:
            return
        for archive in zips:
            top_level_bundle = archive.parent == root and not _LMS_NAME.match(archive.name)
            target = root if top_level_bundle else archive.with_suffix("")
            _safe_extract(archive, target)
            archive.unlink()


def _safe_extract(archive: Path, target: Path, max_bytes: int = 500_000_000) -> None:
    """Unpack a zip under `target` only; a broken or oversized zip is skipped with a warning
    (the student then shows up as 'not submitted'), never stopping the batch."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > max_bytes:
                print(f"warning: {archive.name} unpacks to more than {max_bytes} bytes; skipped", file=sys.stderr)
                return
            for member in members:
                dest = (target / member.filename).resolve()
                if not dest.is_relative_to(target.resolve()):
                    continue                            # '../x' or '/x': never written outside
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(member))
    except zipfile.BadZipFile:
        print(f"warning: {archive.name} is not a valid zip file; skipped", file=sys.stderr)


def match_homework(path: Path, ids: dict) -> str | None:
    """Which homework a file is: by the nbgrader cell ids inside it (so renamed files still match),
    else by its file name containing the notebook name or its 'NN_' number."""
    found = set()
    try:
        found = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
               for c in json.loads(path.read_text(encoding="utf-8")).get("cells", [])}
    except Exception:
        pass
    overlap = {name: len(found & known) for name, known in ids.items()}
    best = max(overlap, key=overlap.get, default=None)
    if best is not None and overlap[best] > 0:
        return best
    for name in ids:
        if name in path.name:
            return name
    numbered = [n for n in ids if re.search(rf"(^|[^\d]){n.split('_')[0]}_", path.name)]
    return numbered[0] if len(numbered) == 1 else None


# ---------------------------------------------------------------- the whole batch

def grade(submissions_dir, notebooks_dir="notebooks", out_dir="grades", mode: str = "exercises",
          cell_timeout: float = 60, notebook_timeout: float = 300, only=None, parallel: int = 1,
          log=print) -> list[NotebookGrade]:
    """Autograde a folder of submissions against the instructor notebooks; write grades.csv and
    feedback/<student>.md under out_dir. Notebooks graded: those named in `only`, else every
    homework that at least one student submitted (a student without it gets 0, 'not submitted').
    parallel > 1 grades that many at once (then running submissions could see each other's
    throw-away folders: keep 1 for untrusted code on a shared machine)."""
    sources = _graded_sources(notebooks_dir, only)
    ids = {name: {grade_id(c) for c in read_notebook(p).cells} - {None} for name, p in sources.items()}
    with tempfile.TemporaryDirectory(prefix="coursekit-submissions-") as tmp:
        found = find_submissions(submissions_dir, Path(tmp) / "in")
        chosen, notes = _pick_files(found, ids)
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
                  grade_submissions(jobs, mode, cell_timeout, notebook_timeout, parallel, log)}
    grades = []
    for student in students:
        for name in names:
            grades.append(graded.get((student, name)) or
                          NotebookGrade(student, name, "", _zero(homeworks[name], "not submitted")))
        grades[-len(names)].notes += notes.get(student, [])
    write_reports(grades, out_dir)
    return grades


def _check_reference(hw: Homework, source: Path, mode: str, log) -> None:
    """Grade the instructor's own solution first, with generous limits: it warms the caches the
    first code cell needs (e.g. the trained backbone) and proves the reference gets full marks."""
    log(f"grading the instructor solution of {hw.name} first (warms the caches)")
    reference = grade_submissions([(hw, "instructor", source)], mode, cell_timeout=1800, notebook_timeout=3600)[0]
    if reference.points < reference.max_points:
        failed = "; ".join(f"{c.exercise}: {c.message}" for c in reference.cells if c.message)
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


def _pick_files(found, ids: dict):
    """(student, notebook) -> the file to grade (the newest when there are several) + notes."""
    chosen, notes = {}, {}
    for sub in found:
        name = match_homework(sub.path, ids)
        if name is None:
            notes.setdefault(sub.student, []).append(
                f"{sub.path.name}: not one of the graded notebooks {sorted(ids)}; not graded")
            continue
        key = (sub.student, name)
        if key in chosen:
            newer = max(chosen[key], sub.path, key=lambda p: (p.stat().st_mtime, p.name))
            older = sub.path if newer == chosen[key] else chosen[key]
            notes.setdefault(sub.student, []).append(
                f"several files for {name}: graded {newer.name}, ignored {older.name}")
            chosen[key] = newer
        else:
            chosen[key] = sub.path
    return chosen, notes


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
