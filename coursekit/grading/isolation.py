"""Each submission graded in its OWN process, kernel and throw-away course, under a per-cell and a
per-notebook time limit; grade_submissions() runs them `parallel` at a time.

The course is rebuilt for every submission from bytes the parent holds in memory (course.Homework),
results travel back through a one-way pipe, and everything the student's kernel spawned is killed
before the result counts, so a submission can neither see another student's files nor change
another student's grade. Not a security sandbox: student code runs as your user. Use a container
for hostile cohorts.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import tempfile
import time
from pathlib import Path

from .autograde import NotebookGrade, as_grade, grade_in_course
from .course import Homework


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
    return [as_grade(hw, student, path, outcome) for (hw, student, path), outcome in zip(jobs, outcomes)]


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


def _grading_process(conn, hw, submission, course, mode, cell_timeout):
    """Entry point of the child process. It adopts orphans (subreaper) so that anything the
    student's kernel spawns can be killed before the parent writes any result."""
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
