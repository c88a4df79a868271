"""Student release and autograding (coursekit.grading, on nbgrader).

Part 1 grades REAL bad submissions of a tiny synthetic homework (2 exercises, built here), all in
one batch through the command line, so a bad submission that hurt another one would show.
Part 2 proves every exercise of every notebook in notebooks/ both ways (one test per notebook).
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

from coursekit import grading  # noqa: E402
from nbgrader_cells import answer_cell, locked_test_cell, written_answer_cell  # noqa: E402
from coursekit.grading import notebooks, submissions  # noqa: E402
from coursekit.__main__ import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME = "01_tiny"
CELL_TIMEOUT = 8          # per cell: the infinite loop costs this much
NOTEBOOK_TIMEOUT = 120    # per notebook: generous, the machine is shared


# ---------------------------------------------------------------- the synthetic homework

SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
NORM = "def norm(v):\n    ### BEGIN SOLUTION\n    return math.sqrt(sum(t * t for t in v))\n    ### END SOLUTION"
SQUARE_TESTS = ("assert square(2) == 4, 'square(2) should be 4'\n### BEGIN HIDDEN TESTS\n"
                "assert square(-3) == 9, 'square(-3) should be 9'\n### END HIDDEN TESTS")
NORM_TESTS = ("assert norm([3, 4]) == 5\n### BEGIN HIDDEN TESTS\n"
              "assert abs(norm([1, 1]) - SQRT2) < 1e-9\n### END HIDDEN TESTS")


def instructor_notebook():
    cells = [
        nbformat.v4.new_markdown_cell("# A tiny homework\nWhat you will be able to do: square."),
        nbformat.v4.new_code_cell("import math\nSQRT2 = 2 ** 0.5"),
        nbformat.v4.new_markdown_cell("## Lecture"),
        nbformat.v4.new_code_cell("lecture_only = 1  # grading in exercise mode never runs this"),
        nbformat.v4.new_markdown_cell("## Exercises\nTwo small ones."),
        answer_cell("tiny-square", SQUARE),
        locked_test_cell("tiny-square-tests", SQUARE_TESTS, 2),
        answer_cell("tiny-norm", NORM),
        locked_test_cell("tiny-norm-tests", NORM_TESTS, 3),
        nbformat.v4.new_markdown_cell("## Takeaways\n- squares are positive"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def edited(nb, **sources):
    """A copy of nb with the cells of these grade ids given new sources (None: cell deleted)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = []
    for cell in nb.cells:
        gid = grading.grade_id(cell)
        key = gid.replace("-", "_") if gid else None
        if key in sources and sources[key] is None:
            continue
        if key in sources:
            cell.source = sources[key]
        cells.append(cell)
    nb.cells = cells
    return nb


def shared_dir(tmp_path_factory, name: str, build) -> Path:
    """A folder built once per test run, even when pytest-xdist spreads this module over workers
    (they share the parent of their base temp dirs; a file lock makes the others wait)."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base
    folder = root / f"homework-{name}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / "DONE").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / "DONE").touch()
    return folder


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return shared_dir(tmp_path_factory, "course", _build_course)


def _build_course(root: Path) -> None:
    (root / "notebooks").mkdir()
    nbformat.write(instructor_notebook(), str(root / "notebooks" / f"{NAME}.ipynb"))
    assert main(["student", "--notebooks", str(root / "notebooks"), "--out", str(root / "release")]) == 0


# ---------------------------------------------------------------- the student release

def test_release_removes_solutions_hidden_tests_and_outputs_only(course):
    source = nbformat.read(str(course / "notebooks" / f"{NAME}.ipynb"), as_version=4)
    release = nbformat.read(str(course / "release" / f"{NAME}.ipynb"), as_version=4)
    text = json.dumps(release)
    assert "BEGIN SOLUTION" not in text and "x * x" not in text and "HIDDEN" not in text and "square(-3)" not in text
    assert "raise NotImplementedError()" in release.cells[5].source
    assert release.cells[6].source.strip() == "assert square(2) == 4, 'square(2) should be 4'"
    assert [c.source for i, c in enumerate(release.cells) if i not in (5, 6, 7, 8)] == \
           [c.source for i, c in enumerate(source.cells) if i not in (5, 6, 7, 8)]
    assert all(c.get("outputs", []) == [] for c in release.cells)
    assert release.cells[6].metadata.nbgrader["checksum"]          # what grading checks edits against


def test_nbgrader_config_template_releases_our_student_version(course, tmp_path, capsys):
    """The JupyterHub template, read by nbgrader's config loader, has coursekit's settings, and
    nbgrader's generate_assignment with it in the course layout the template describes
    (source/<NN_name>/<NN_name>.ipynb) makes the notebook that release/ holds."""
    from traitlets.config.loader import PyFileConfigLoader
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from coursekit.grading.course import nbgrader_settings
    assert main(["grade", "--config-template"]) == 0
    (tmp_path / "nbgrader_config.py").write_text(capsys.readouterr().out)
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    assert config.CourseDirectory.course_id and config.Exchange.root
    for key, value in nbgrader_settings(1200).items():
        section, option = key.split(".")
        assert config[section][option] == value, key
    (tmp_path / "source" / NAME).mkdir(parents=True)
    shutil.copy(course / "notebooks" / f"{NAME}.ipynb", tmp_path / "source" / NAME)
    config.CourseDirectory.root = str(tmp_path)                 # as nbgrader run in the course directory
    config.CourseDirectory.db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    config.Exchange.root = str(tmp_path / "exchange")
    assert NbGraderAPI(coursedir=CourseDirectory(config=config), config=config).generate_assignment(NAME)["success"]
    theirs = nbformat.read(str(tmp_path / "release" / NAME / f"{NAME}.ipynb"), as_version=4)
    ours = nbformat.read(str(course / "release" / f"{NAME}.ipynb"), as_version=4)
    cells = lambda nb: [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in nb.cells]  # noqa: E731
    assert cells(theirs) == cells(ours)


def test_release_refuses_to_wipe_a_folder_it_did_not_make(course, tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(grading.HomeworkError, match="not made by"):
        grading.make_release(course / "notebooks", tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_exercise_mode_keeps_first_code_cell_and_the_exercises_section():
    part = grading.graded_part(instructor_notebook(), "exercises")
    sources = [c.source for c in part.cells]
    assert sources[0].startswith("import math") and sources[1].startswith("## Exercises")
    assert not any("lecture_only" in s or "Takeaways" in s for s in sources)
    assert len(grading.graded_part(instructor_notebook(), "full").cells) == 10
    with pytest.raises(grading.HomeworkError, match="exercises"):
        grading.graded_part(instructor_notebook(), "fast")


def test_hidden_lines_are_found_in_every_hidden_block():
    source = "a = 1\n### BEGIN HIDDEN TESTS\nassert secret_one\n### END HIDDEN TESTS\nb = 2\n" \
             "### BEGIN HIDDEN TESTS\nassert secret_two\n### END HIDDEN TESTS"
    assert [n for n in range(1, 9) if notebooks.is_hidden(source, n)] == [3, 7]
    assert notebooks.hidden_lines(source) == {3: "assert secret_one", 7: "assert secret_two"}


def test_student_names_from_lms_downloads():
    assert grading.student_from_name("smithjane_12345_67890_01_tiny.ipynb") == "smithjane_12345"
    assert grading.student_from_name("smithjane_LATE_12345_67890_hw.ipynb") == "smithjane_12345"
    assert grading.student_from_name("Jane Smith_4242_assignsubmission_file_") == "Jane Smith_4242"
    assert grading.student_from_name("alice") == "alice"
    assert grading.student_from_name("01_tiny.ipynb") == "01_tiny"


# ---------------------------------------------------------------- one batch of real submissions

HOSTILE = '''
import os, pathlib, subprocess, sys, tempfile
top = pathlib.Path(tempfile.gettempdir()).resolve()
here = pathlib.Path.cwd().resolve()
LEAKED = []
for folder in [here, *here.parents]:          # everything it can reach above its working dir
    if folder == top or folder == folder.parent:
        break
    for f in list(folder.rglob("*")):
        if f.is_file():
            text = f.read_text(errors="ignore")
            if "BEGIN HIDDEN" in text:
                LEAKED.append(text)
            if f.suffix in {".db", ".csv", ".ipynb", ".md"}:
                f.write_text("FAKE")
    (folder / "grades.csv").write_text("student,notebook,exercise,points,max_points\\nb_correct,01_tiny,tiny-square-tests,0,2\\n")
for guess in ["notebooks/01_tiny.ipynb", "../notebooks/01_tiny.ipynb", "grades/grades.csv"]:
    try:
        open(guess, "a").write("FAKE")
    except OSError:
        pass
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10); open(%r, 'w').write('FAKE')"],
                 start_new_session=True)      # a daemon that outlives the kernel
def square(x):
    return x * x
'''
LEAK_NORM = "def norm(v):\n    raise RuntimeError('\\n'.join(LEAKED) or 'nothing leaked')"
STUBBORN = "def square(x):\n    while True:\n        pass"


def _write(path: Path, nb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def batch(course, tmp_path_factory):
    """Every kind of submission in one folder, graded in one run of `python -m coursekit grade`."""
    root = shared_dir(tmp_path_factory, "batch", lambda folder: _grade_batch(course, folder))
    result = json.loads((root / "result.json").read_text())
    with open(root / "out" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    points = {}
    for row in rows:
        points.setdefault(row["student"], {})[row["exercise"]] = (float(row["points"]), float(row["max_points"]))
    return dict(result, out=root / "out", rows=rows, points=points, marker=root / "daemon-was-not-killed.txt")


def _grade_batch(course: Path, root: Path) -> None:
    subs, marker = root / "submissions", root / "daemon-was-not-killed.txt"
    solved = instructor_notebook()
    released = nbformat.read(str(course / "release" / f"{NAME}.ipynb"), as_version=4)
    wrong = "def square(x):\n    return x * abs(x)      # right for x >= 0 only"
    _write(subs / "a_hostile" / f"{NAME}.ipynb", edited(released, tiny_square=HOSTILE % str(marker), tiny_norm=LEAK_NORM))
    _write(subs / "b_correct" / f"{NAME}.ipynb", solved)
    _write(subs / "c_untouched" / f"{NAME}.ipynb", released)
    _write(subs / "d_wrong_hidden" / f"{NAME}.ipynb", edited(solved, tiny_square=wrong))
    _write(subs / "e_infinite_loop" / f"{NAME}.ipynb", edited(solved, tiny_square=STUBBORN))
    _write(subs / "f_exception" / f"{NAME}.ipynb", edited(solved, tiny_square="raise ValueError('oops')"))
    _write(subs / "g_edited_tests" / f"{NAME}.ipynb",
           edited(released, tiny_square="def square(x):\n    return 0", tiny_square_tests="assert True",
                  tiny_norm=NORM))
    _write(subs / "h_deleted_tests" / f"{NAME}.ipynb",
           edited(solved, tiny_square="def square(x):\n    return 0", tiny_square_tests=None))
    _write(subs / "i_renamed" / "my homework (final).ipynb", solved)
    (subs / "j_empty").mkdir()
    (subs / "j_empty" / f"{NAME}.ipynb").write_text("")
    (subs / "k_invalid").mkdir()
    (subs / "k_invalid" / f"{NAME}.ipynb").write_text('{"cells": [ oops')
    # an LMS download: Canvas-style flat files and a per-student zip
    _write(subs / f"smithjane_12345_67890_{NAME}.ipynb", solved)
    with zipfile.ZipFile(subs / "doejohn_222_333_homework.zip", "w") as zf:
        zf.writestr(f"homework/{NAME}.ipynb", nbformat.writes(edited(solved, tiny_square=wrong)))
    instructor_before = (course / "notebooks" / f"{NAME}.ipynb").read_bytes()
    started = time.monotonic()
    code = main(["grade", str(subs), "--notebooks", str(course / "notebooks"), "--out", str(root / "out"),
                 "--cell-timeout", str(CELL_TIMEOUT), "--notebook-timeout", str(NOTEBOOK_TIMEOUT), "--workers", "2"])
    # the hostile daemon sleeps 10 s: the 12 gradings after it take longer than that
    (root / "result.json").write_text(json.dumps(dict(
        code=code, seconds=time.monotonic() - started,
        instructor_changed=(course / "notebooks" / f"{NAME}.ipynb").read_bytes() != instructor_before)))


def feedback(batch, student):
    return (batch["out"] / "feedback" / f"{student}.md").read_text()


def totals(batch, student):
    return sum(p for p, _ in batch["points"][student].values())


def test_grades_csv_has_one_row_per_student_and_test_cell(batch):
    assert batch["code"] == 0
    assert list(batch["rows"][0]) == ["student", "notebook", "exercise", "points", "max_points", "graded_by"]
    assert len(batch["points"]) == 13 and all(len(p) == 2 for p in batch["points"].values())
    assert {r["notebook"] for r in batch["rows"]} == {NAME}
    print(f"graded 13 submissions in {batch['seconds']:.0f} s")


def test_totals_csv_has_one_row_per_student_with_points_and_max(batch):
    with open(batch["out"] / "totals.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == ["student", f"{NAME} autograded", f"{NAME} autograded max",
                                           "autograded total", "autograded max"]
    assert set(rows) == set(batch["points"])
    for student, cells in batch["points"].items():
        assert float(rows[student]["autograded total"]) == sum(p for p, _ in cells.values())
        assert float(rows[student]["autograded max"]) == sum(m for _, m in cells.values()) == 5
    assert rows["b_correct"][f"{NAME} autograded"] == "5" and rows["c_untouched"]["autograded total"] == "0"


def test_feedback_also_as_html(batch):
    for student in batch["points"]:
        page = (batch["out"] / "feedback" / f"{student}.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and f"Feedback for {student}" in page
    assert "a hidden test failed: AssertionError: square(-3) should be 9" in \
        (batch["out"] / "feedback" / "d_wrong_hidden.html").read_text()


def test_html_feedback_escapes_what_the_student_wrote():
    from html.parser import HTMLParser
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    grade = grading.NotebookGrade(f"mallory{evil}", NAME, f"{evil}.ipynb",
                                  cells=[grading.CellGrade("tiny-square-tests", 0, 2, f"ValueError: {evil}")],
                                  notes=[f"your cell tiny-square raised {evil}"])
    page = grading.feedback_html(grade.student, [grade])
    tags = set()

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.add(tag)
    Tags().feed(page)
    assert tags == {"html", "head", "meta", "title", "style", "body", "h1", "h2", "ul", "li"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "onerror=alert(2)&gt;" in page


def test_correct_solution_gets_full_marks(batch):
    assert batch["points"]["b_correct"] == {"tiny-square-tests": (2, 2), "tiny-norm-tests": (3, 3)}
    assert "FAILED" not in feedback(batch, "b_correct")


def test_untouched_release_scores_zero_without_crashing(batch):
    assert totals(batch, "c_untouched") == 0
    assert feedback(batch, "c_untouched").count("FAILED: NotImplementedError") == 2


def test_wrong_answer_passes_visible_but_fails_hidden_tests(batch):
    assert batch["points"]["d_wrong_hidden"] == {"tiny-square-tests": (0, 2), "tiny-norm-tests": (3, 3)}
    assert "a hidden test failed: AssertionError: square(-3) should be 9" in feedback(batch, "d_wrong_hidden")


def test_infinite_loop_is_stopped_by_the_cell_timeout(batch):
    assert batch["points"]["e_infinite_loop"] == {"tiny-square-tests": (0, 2), "tiny-norm-tests": (3, 3)}
    assert "CellTimeoutError" in feedback(batch, "e_infinite_loop")


def test_exception_in_student_code(batch):
    assert batch["points"]["f_exception"] == {"tiny-square-tests": (0, 2), "tiny-norm-tests": (3, 3)}
    text = feedback(batch, "f_exception")
    assert "raised ValueError: oops" in text and "NameError" in text


def test_edited_test_cell_is_restored_and_flagged(batch):
    assert batch["points"]["g_edited_tests"] == {"tiny-square-tests": (0, 2), "tiny-norm-tests": (3, 3)}
    text = feedback(batch, "g_edited_tests")
    assert "locked cell tiny-square-tests was edited; the original was put back" in text
    assert "FAILED: AssertionError: square(2) should be 4" in text


def test_deleted_test_cell_is_restored_and_flagged(batch):
    assert batch["points"]["h_deleted_tests"] == {"tiny-square-tests": (0, 2), "tiny-norm-tests": (3, 3)}
    text = feedback(batch, "h_deleted_tests")
    assert "test cell tiny-square-tests was deleted; the original was put back" in text
    assert "FAILED: AssertionError: square(2) should be 4" in text      # a visible test, not a hidden one


def test_renamed_notebook_is_recognised_by_its_cells(batch):
    assert totals(batch, "i_renamed") == 5
    assert "my homework (final).ipynb" in feedback(batch, "i_renamed")


@pytest.mark.parametrize("student", ["j_empty", "k_invalid"])
def test_empty_or_invalid_notebook_scores_zero_with_a_reason(batch, student):
    assert totals(batch, student) == 0
    assert "not a valid notebook" in feedback(batch, student)


def test_lms_download_layout(batch):
    assert totals(batch, "smithjane_12345") == 5
    assert batch["points"]["doejohn_222"] == {"tiny-square-tests": (0, 2), "tiny-norm-tests": (3, 3)}


def test_a_local_dask_cluster_gives_the_same_grades_as_one_process(batch, course, tmp_path):
    """The batch ran on a 2-worker Dask LocalCluster (--workers 2): a correct, a wrong, a crashing
    and an endless submission graded again one at a time, without Dask, give the same bytes."""
    students = ["b_correct", "d_wrong_hidden", "e_infinite_loop", "f_exception"]
    for student in students:
        shutil.copytree(batch["out"].parent / "submissions" / student, tmp_path / "subs" / student)
    code = main(["grade", str(tmp_path / "subs"), "--notebooks", str(course / "notebooks"),
                 "--out", str(tmp_path / "out"), "--cell-timeout", str(CELL_TIMEOUT),
                 "--notebook-timeout", str(NOTEBOOK_TIMEOUT), "--workers", "1"])
    assert code == 0
    for name, rows in [("grades.csv", 1 + 2 * 4), ("totals.csv", 1 + 4)]:
        one_process = (tmp_path / "out" / name).read_bytes().splitlines(keepends=True)
        on_dask = (batch["out"] / name).read_bytes().splitlines(keepends=True)
        on_dask = [on_dask[0]] + [line for line in on_dask[1:] if line.split(b",")[0].decode() in students]
        assert one_process == on_dask and len(one_process) == rows, name


def test_a_scheduler_whose_workers_may_not_start_processes_stops_the_run(course):
    """Dask's default workers are daemonic: grading on them would give every student 0, so the
    run stops first and says how to start the workers."""
    import logging
    from distributed import LocalCluster
    from coursekit.grading.cluster import grade_on_dask
    hw = grading.prepare(course / "notebooks" / f"{NAME}.ipynb")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, scheduler_kwargs={"dashboard": False},
                      silence_logs=logging.ERROR) as cluster:
        with pytest.raises(grading.HomeworkError, match="DASK_DISTRIBUTED__WORKER__DAEMON=False"):
            grade_on_dask([(hw, "s", course / "notebooks" / f"{NAME}.ipynb")], "exercises", CELL_TIMEOUT,
                          NOTEBOOK_TIMEOUT, 1, cluster.scheduler_address)


def test_zip_members_never_land_outside_the_unpack_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("../escape.ipynb", "{}")
        zf.writestr("/abs.ipynb", "{}")
        zf.writestr("ok/inside.ipynb", "{}")
    submissions._safe_extract(tmp_path / "x.zip", tmp_path / "into")
    assert not (tmp_path / "escape.ipynb").exists() and not Path("/abs.ipynb").exists()
    assert (tmp_path / "into" / "ok" / "inside.ipynb").exists()


def test_hostile_submission_cannot_touch_hidden_tests_or_other_grades(batch):
    # it ran first (students are graded in name order), yet everyone after it got the right grade:
    # checked by the tests above; here: nothing outside its throw-away copy changed, nothing leaked
    assert not batch["instructor_changed"]
    assert not batch["marker"].exists(), "a process started by a submission outlived its grading"
    assert "FAKE" not in (batch["out"] / "grades.csv").read_text()
    assert batch["points"]["b_correct"]["tiny-square-tests"] == (2, 2)
    for path in (batch["out"] / "feedback").iterdir():
        text = path.read_text()
        assert "square(-3) == 9" not in text and "abs(norm([1, 1])" not in text and "HIDDEN" not in text, path.name


def test_notebook_timeout_kills_the_kernel(course, tmp_path):
    pid_file = tmp_path / "kernel.pid"
    body = f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True:\n    pass"
    _write(tmp_path / "s.ipynb", edited(instructor_notebook(), tiny_square=body))
    hw = grading.prepare(course / "notebooks" / f"{NAME}.ipynb")
    started = time.monotonic()
    result = grading.grade_submission(hw, "s", tmp_path / "s.ipynb", cell_timeout=600, notebook_timeout=12)
    assert time.monotonic() - started < 60
    assert result.points == 0 and "time limit per notebook" in result.cells[0].message
    psutil = pytest.importorskip("psutil")
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_exercise_mode_skips_the_lecture_and_full_mode_runs_it(course, tmp_path):
    needs_lecture = edited(instructor_notebook(), tiny_square="def square(x):\n    return x * x * lecture_only")
    _write(tmp_path / "s.ipynb", needs_lecture)
    source = course / "notebooks" / f"{NAME}.ipynb"
    quick, full = grading.grade_submissions(
        [(grading.prepare(source, "exercises"), "s", tmp_path / "s.ipynb")], "exercises", CELL_TIMEOUT) + \
        grading.grade_submissions([(grading.prepare(source, "full"), "s", tmp_path / "s.ipynb")], "full", CELL_TIMEOUT)
    assert (quick.points, full.points) == (3, 5)
    assert "NameError: name 'lecture_only' is not defined" in quick.cells[0].message


# ---------------------------------------------------------------- a cohort on a local cluster (slow)

COHORT = 200


@pytest.mark.slow
def test_a_cohort_grades_the_same_on_a_local_dask_cluster_as_in_one_process(course, tmp_path, request):
    """200 submissions of the synthetic homework (correct, wrong in a hidden test, crashing,
    untouched, in turn) graded one at a time and on a LocalCluster of one worker per core: the
    same grades.csv and totals.csv, byte for byte. 15 minutes on 2 busy cores (563 s one at a
    time, 304 s on 2 workers, 2026-11-30); make nullruns runs it (-m slow)."""
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip(f"grades {COHORT} submissions twice (minutes): run with -m slow")
    import os
    solved = instructor_notebook()
    released = nbformat.read(str(course / "release" / f"{NAME}.ipynb"), as_version=4)
    kinds = [solved, edited(solved, tiny_square="def square(x):\n    return x * abs(x)"),
             edited(solved, tiny_norm="raise ValueError('oops')"), released]
    for i in range(COHORT):
        _write(tmp_path / "subs" / f"student_{i:03d}" / f"{NAME}.ipynb", kinds[i % len(kinds)])
    seconds = {}
    for workers in [1, max(2, os.cpu_count() or 1)]:
        started = time.monotonic()
        assert main(["grade", str(tmp_path / "subs"), "--notebooks", str(course / "notebooks"),
                     "--out", str(tmp_path / f"out-{workers}"), "--cell-timeout", "60",
                     "--notebook-timeout", "600", "--workers", str(workers)]) == 0
        seconds[workers] = time.monotonic() - started
    print(f"{COHORT} submissions: " + ", ".join(f"{w} worker(s) {t:.0f} s" for w, t in seconds.items()))
    one, many = sorted(seconds)
    for name in ["grades.csv", "totals.csv"]:
        assert (tmp_path / f"out-{one}" / name).read_bytes() == (tmp_path / f"out-{many}" / name).read_bytes(), name
    with open(tmp_path / f"out-{one}" / "totals.csv", newline="") as f:
        totals = [float(r["autograded total"]) for r in csv.DictReader(f)]
    assert totals == [[5, 3, 2, 0][i % 4] for i in range(COHORT)]


# ---------------------------------------------------------------- a manually graded written answer

WHY = "Why is a square never negative?\n\n### BEGIN SOLUTION\nA product of two numbers of one sign.\n### END SOLUTION"


def test_written_answers_are_pending_with_the_instructor_and_carried_into_feedback(tmp_path):
    nb = instructor_notebook()
    nb.cells.insert(7, written_answer_cell("tiny-why", WHY, 2))       # in the Exercises section
    nb.cells.insert(4, written_answer_cell("tiny-lecture-why", "Why?", 1))   # outside it: still collected
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / f"{NAME}.ipynb"
    nbformat.write(nb, str(source))
    report = grading.validate(source, cell_timeout=CELL_TIMEOUT, notebook_timeout=NOTEBOOK_TIMEOUT)
    assert not report.problems and report.written == {"tiny-lecture-why": 1, "tiny-why": 2}
    release = nbformat.reads(grading.prepare(source).files[f"student_version/{NAME}.ipynb"].decode(), as_version=4)
    answer = "Because <b>x*x</b> = |x|^2 &\n</blockquote><script>alert(1)</script>"
    _write(tmp_path / "subs" / "answered" / f"{NAME}.ipynb", edited(release, tiny_why=answer, tiny_norm=NORM))
    _write(tmp_path / "subs" / "untouched" / f"{NAME}.ipynb", release)
    grades = {g.student: g for g in grading.grade(tmp_path / "subs", tmp_path / "notebooks", tmp_path / "out",
                                                  cell_timeout=CELL_TIMEOUT, log=lambda *a: None)}
    answered = grades["answered"]
    assert (answered.points, answered.max_points, answered.pending, answered.manual_max) == (3, 5, 3, 3)
    written = {c.exercise: c for c in answered.cells if c.manual}
    assert written["tiny-why"].points is None and written["tiny-why"].answer == answer.strip()
    assert written["tiny-lecture-why"].message == "no answer written"
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(f)}
    assert rows[("answered", "tiny-why")] == {"student": "answered", "notebook": NAME, "exercise": "tiny-why",
                                              "points": "", "max_points": "2", "graded_by": "instructor"}
    assert rows[("answered", "tiny-norm-tests")]["graded_by"] == "autograder"
    with open(tmp_path / "out" / "totals.csv", newline="") as f:
        totals = {r["student"]: r for r in csv.DictReader(f)}
    assert totals["answered"] == {"student": "answered", f"{NAME} autograded": "3", f"{NAME} autograded max": "5",
                                  f"{NAME} pending": "3", "autograded total": "3", "autograded max": "5",
                                  "pending (graded by the instructor)": "3", "max": "8"}
    text = (tmp_path / "out" / "feedback" / "answered.md").read_text()
    assert f"## {NAME}: 3 / 5 points autograded, 3 more graded by your instructor" in text
    assert "- tiny-why (2 points, graded by your instructor): your answer" in text
    assert "  > Because <b>x*x</b> = |x|^2 &" in text and "FAILED" in text     # square is still unanswered
    page = (tmp_path / "out" / "feedback" / "answered.html").read_text()
    assert "<blockquote>Because &lt;b&gt;x*x&lt;/b&gt; = |x|^2 &amp;\n&lt;/blockquote&gt;&lt;script&gt;" in page
    assert "<script>" not in page
    assert grades["untouched"].points == 0 and grades["untouched"].pending == 3
    assert "tiny-why (2 points, graded by your instructor): no answer written" in \
        (tmp_path / "out" / "feedback" / "untouched.md").read_text()


# ---------------------------------------------------------------- every notebook, both ways

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip("no notebooks yet"))],
                         ids=[p.stem for p in NOTEBOOKS] or ["none"])
def test_notebook_exercises_are_proved_both_ways(path, tmp_path):
    (tmp_path / "one").mkdir()
    shutil.copy(path, tmp_path / "one" / path.name)
    grading.make_release(tmp_path / "one", tmp_path / "release")      # nbgrader accepts its markup
    nb = grading.read_notebook(path)
    graded = [c for c in grading.test_cells(nb) if float(c.metadata["nbgrader"].get("points", 0)) > 0]
    number = int(re.match(r"\d+", path.name).group())
    if number >= 1:
        assert len(graded) >= 2, (f"{path.name} has {len(graded)} graded exercise(s); every notebook from 01 on "
                                  "needs >= 2 (DESIGN.md 'Exercises': solution cell + locked test cell with points)")
    if not graded:
        return
    report = grading.validate(path)
    assert not report.problems, f"{path.name}: " + "; ".join(report.problems)


def test_the_guard_mark_counts_wherever_a_late_stream_puts_it():
    """Under load a stderr flush can reach the kernel's channel before the guard's mark: correct
    work keeps its points; a missing mark, another run's nonce or the mark mid-line still score 0."""
    from coursekit.grading.autograde import _guarded
    from coursekit.grading.guard import GUARD_MARK

    def cell(*outputs):
        return {"outputs": [{"output_type": "stream", "name": name, "text": text} for name, text in outputs]}
    mark = f"{GUARD_MARK} secret\n"
    assert _guarded(cell(("stdout", mark + "ok\n")), "secret")
    assert _guarded(cell(("stderr", "UserWarning: ...\n"), ("stdout", mark)), "secret")
    assert _guarded(cell(("stdout", "late line\n"), ("stdout", mark)), "secret")
    assert not _guarded(cell(("stdout", "ok\n")), "secret")
    assert not _guarded(cell(("stdout", f"{GUARD_MARK} other\n")), "secret")
    assert not _guarded(cell(("stderr", mark)), "secret")
    assert not _guarded(cell(("stdout", "x" + mark)), "secret")
