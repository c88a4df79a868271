"""Each submission graded in its OWN process, kernel and throw-away course, under a per-cell and a
per-notebook time limit (grade_one); grade_submissions() runs a list of them one after another
from this process, or on Dask distributed (cluster.py), where each Dask task calls grade_one.

The course is rebuilt for every submission from bytes held in memory (course.Homework), and so is
the submission; results travel back through a one-way pipe, and everything the student's kernel
spawned is killed before the result counts, so a submission can neither see another student's
files nor change another student's grade. The grading process is forked from a fork server (one
per calling process, single-threaded, coursekit preloaded), never from a threaded Dask worker.
Not a security sandbox: student code runs as your user. Use a container for hostile cohorts.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

from .autograde import NotebookGrade, as_grade, grade_in_course
from .course import Homework


def grade_submission(hw: Homework, student: str, submission, mode: str = "exercises",
                     cell_timeout: float = 60, notebook_timeout: float = 300) -> NotebookGrade:
    """Autograde one submitted notebook in a fresh process and throw-away course."""
    return grade_submissions([(hw, student, submission)], mode, cell_timeout, notebook_timeout)[0]


def grade_submissions(jobs, mode: str = "exercises", cell_timeout: float = 60, notebook_timeout: float = 300,
                      parallel: int = 1, log=None, scheduler: str | None = None) -> list[NotebookGrade]:
    """Autograde (homework, student, file) triples, each in its own process and throw-away course;
    the grades come back in the order of `jobs`. parallel=1 and no scheduler: one after another
    from this process. parallel > 1: on a Dask LocalCluster of that many worker processes (one
    thread each); scheduler="tcp://host:8786": on that Dask scheduler's workers (cluster.py)."""
    if jobs and (parallel > 1 or scheduler):
        from .cluster import grade_on_dask
        outcomes = grade_on_dask(jobs, mode, cell_timeout, notebook_timeout, parallel, scheduler, log)
    else:
        outcomes = []
        for hw, student, path in jobs:
            if log:
                log(f"grading {student} / {hw.name} ({Path(path).name})")
            outcomes.append(grade_one(hw, Path(path).read_bytes(), Path(path).name, mode, cell_timeout, notebook_timeout))
    return [as_grade(hw, student, path, outcome) for (hw, student, path), outcome in zip(jobs, outcomes)]


def grade_one(hw: Homework, submission: bytes, filename: str, mode: str, cell_timeout: float,
              notebook_timeout: float) -> dict:
    """One submission (the file's bytes) in its own process, kernel and throw-away folder, under
    the time limits: grade_in_course's outcome, or {error} when the process died or ran out of
    time. Runs in the grading command's process or in a Dask worker."""
    context = multiprocessing.get_context(_START_METHOD)
    with tempfile.TemporaryDirectory(prefix="coursekit-grade-") as tmp:
        path = Path(tmp) / "submission" / Path(filename).name
        path.parent.mkdir()
        path.write_bytes(submission)
        pipe, send = context.Pipe(duplex=False)
        process = context.Process(target=_grading_process, args=(
            send, hw, str(path), str(Path(tmp) / "course"), mode, cell_timeout, dict(os.environ)))
        process.start()
        send.close()
        try:
            return _outcome(pipe, notebook_timeout)
        finally:
            _kill_descendants(process.pid)
            process.kill()
            process.join()
            pipe.close()


# a fork server: a fresh single-threaded process that forks each grading process with coursekit and
# nbgrader already imported (seconds per submission otherwise; fork itself is unsafe from a threaded
# process such as a Dask worker). Started once per calling process, on first use.
_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
_PRELOAD = ["coursekit.grading.autograde", "nbformat", "nbgrader.apps", "nbgrader.api", "nbgrader.utils",
            "nbgrader.coursedir", "psutil"]
if _START_METHOD == "forkserver":
    multiprocessing.get_context("forkserver").set_forkserver_preload(_PRELOAD)


def _outcome(pipe, notebook_timeout: float) -> dict:
    """The result once there is one, or {error} if the process died or ran out of time."""
    if not pipe.poll(notebook_timeout):
        return {"error": f"stopped after {notebook_timeout:g} s (the time limit per notebook)"}
    try:
        result = pipe.recv()
    except EOFError:
        return {"error": "the grading process died"}
    return result if isinstance(result, dict) else {"error": "grading returned nonsense"}


def _grading_process(conn, hw, submission, course, mode, cell_timeout, environment):
    """Entry point of the child process. It takes the caller's environment (the fork server's is
    the one it started with), and adopts orphans (subreaper) so that anything the student's kernel
    spawns can be killed before the parent writes any result."""
    os.environ.clear()
    os.environ.update(environment)
    _become_subreaper()
    _silence()
    try:
        conn.send(grade_in_course(hw, Path(submission), Path(course), mode, cell_timeout))
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
