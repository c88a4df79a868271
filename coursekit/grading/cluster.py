"""Grading many submissions at once on Dask distributed: a LocalCluster on this machine (worker
processes, one thread each), or the workers of an existing scheduler (a dask-jobqueue cluster on a
university machine, `dask scheduler` on a server). Each Dask task grades one submission with
isolation.grade_one: its own process, kernel and throw-away course, exactly as one at a time.

Tasks carry the submission's bytes and the homework (scattered once), never a path, so workers
need no shared file system; they need coursekit and nbgrader installed. Workers must be allowed
to start processes: a LocalCluster is started so; other workers need
DASK_DISTRIBUTED__WORKER__DAEMON=False in their environment (the error says so).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
from pathlib import Path

from .isolation import grade_one

DAEMON_FIX = ("start the Dask workers with the environment variable DASK_DISTRIBUTED__WORKER__DAEMON=False "
              "(dask-jobqueue: job_script_prologue=['export DASK_DISTRIBUTED__WORKER__DAEMON=False'])")


def grade_on_dask(jobs, mode: str, cell_timeout: float, notebook_timeout: float, workers: int,
                  scheduler: str | None = None, log=None) -> list[dict]:
    """The outcome (isolation.grade_one's dict) of each (homework, student, file) job, in the order
    of `jobs`, graded on a LocalCluster of `workers` processes or on `scheduler`'s workers. A task
    that fails on the Dask side (its worker died three times) is that submission's error."""
    from distributed import as_completed
    with _client(workers, scheduler) as client:
        _check_workers(client)
        homeworks = {}
        for hw, _, _ in jobs:          # each homework travels once, not once per submission
            if id(hw) not in homeworks:
                homeworks[id(hw)] = client.scatter(hw, hash=False)
        futures = [client.submit(_task, homeworks[id(hw)], Path(path).read_bytes(), Path(path).name, mode,
                                 cell_timeout, notebook_timeout, pure=False)
                   for hw, _, path in jobs]
        where = {future.key: index for index, future in enumerate(futures)}
        outcomes = [None] * len(jobs)
        for future in as_completed(futures):
            index = where[future.key]
            try:
                outcomes[index] = future.result()
            except Exception as err:    # KilledWorker, a worker without coursekit, ...
                outcomes[index] = {"error": f"the grading worker failed ({type(err).__name__}: {str(err)[:200]})"}
            if log:
                hw, student, path = jobs[index]
                log(f"graded {student} / {hw.name} ({Path(path).name})")
    return outcomes


def _check_workers(client) -> None:
    """Stop before grading when a worker may not start processes: every submission would get 0."""
    from .notebooks import HomeworkError
    daemonic = sorted(address for address, daemon in client.run(_daemonic).items() if daemon)
    if daemonic:
        raise HomeworkError(f"the Dask workers {daemonic[:3]} may not start the grading processes (daemonic "
                            f"processes); {DAEMON_FIX}")


def _daemonic() -> bool:
    return multiprocessing.current_process().daemon


def _task(hw, submission: bytes, filename: str, mode: str, cell_timeout: float, notebook_timeout: float) -> dict:
    """What a Dask worker runs for one submission (a worker that joined after _check_workers is
    checked here)."""
    if multiprocessing.current_process().daemon:
        return {"error": f"this Dask worker may not start the grading process (a daemonic process); {DAEMON_FIX}"}
    return grade_one(hw, submission, filename, mode, cell_timeout, notebook_timeout)


@contextlib.contextmanager
def _client(workers: int, scheduler: str | None):
    """A Dask client: of the scheduler at `scheduler`, else of a fresh LocalCluster of `workers`
    worker processes with one thread each (grading is one kernel per submission; threads would
    only share a worker's process), no dashboard (no port to collide with another cluster), and
    non-daemonic workers for as long as it runs (a restarted worker is started under the same
    setting). Worker processes are spawned: a script calling this needs `if __name__ == "__main__":`."""
    import dask
    from distributed import Client, LocalCluster
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None,
                         scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client
