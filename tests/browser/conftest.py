"""Fixtures for the browser tests: Chromium, one JupyterLab server, and a runner for notebooks.

The runner keeps Playwright's asyncio loop in a background thread, so two notebooks run at once
(two pages, two kernels) while pytest reports them one by one, each as its own test. Under
pytest-xdist each worker runs the notebooks it is handed, one at a time.
"""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from . import lab_server
from .chromium import find_chromium
from .lab_page import run_notebook

NOTEBOOKS = sorted((lab_server.REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CONCURRENT = int(os.environ.get("COURSEKIT_BROWSER_CONCURRENCY", "2"))
RUN_TIMEOUT = float(os.environ.get("COURSEKIT_BROWSER_TIMEOUT", "480"))  # s per notebook's Run All
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SELF_TEST = "_planted_error.ipynb"  # a tiny notebook with a known panel and a planted error
_SELECTED: list[str] = []   # notebooks of the collected tests, in order
_REPORTS: dict = {}         # name -> Report, for the summary


def screenshots_dir() -> Path:
    folder = Path(os.environ.get("COURSEKIT_SCREENSHOTS", lab_server.REPO / "build" / "browser-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class NotebookRunner:
    """Runs notebooks in one headless Chromium, at most CONCURRENT at a time, on a background loop."""

    def __init__(self, server: lab_server.LabServer, chromium: str, shots: Path):
        from playwright.async_api import async_playwright
        self.server, self.shots, self.futures = server, shots, {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="playwright", daemon=True)
        self.thread.start()

        async def launch():
            self.playwright = await async_playwright().start()
            self.browser = await self.playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            self.slots = asyncio.Semaphore(CONCURRENT)
        self._wait(launch(), 120)

    def _wait(self, coroutine, timeout):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _run(self, name: str):
        async with self.slots:
            return await run_notebook(self.browser, self.server, name, self.shots, RUN_TIMEOUT)

    def submit(self, name: str) -> None:
        if name not in self.futures:
            self.futures[name] = asyncio.run_coroutine_threadsafe(self._run(name), self.loop)

    def report(self, name: str):
        self.submit(name)
        # the page steps have their own bounded waits; this is only a backstop for a wedged browser
        report = self.futures[name].result(timeout=len(self.futures) * (RUN_TIMEOUT + 600))
        _REPORTS[name] = report
        return report

    def close(self) -> None:
        async def shut():  # stop notebooks still queued or running (after -x or Ctrl+C), then the browser
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await self.browser.close()
            await self.playwright.stop()
        try:
            self._wait(shut(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def write_planted_error_notebook(path: Path) -> None:
    """A figure, a 'Try it' panel whose picture follows its slider, then an error and a cell after it."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    cells = [
        new_markdown_cell("# Self-test of the browser test: cell 4 raises on purpose"),
        new_code_cell("import matplotlib.pyplot as plt\nfrom coursekit import widgets"),
        new_code_cell("fig, ax = plt.subplots(figsize=(3, 2)); ax.plot([0, 1], [1, 0]); plt.show()"),
        new_code_cell("def bars(count, colour):\n"
                      "    fig, ax = plt.subplots(figsize=(3, 2))\n"
                      "    ax.bar(range(count), range(1, count + 1), color=colour)\n"
                      "    return fig\n\n"
                      "widgets.panel(bars, [widgets.Slider('count', 1, 5, 1, 2), "
                      "widgets.Choice('colour', ['red', 'blue'])], title='bars')"),
        new_code_cell("raise ValueError('planted error')"),
        new_code_cell("print('never runs')"),
    ]
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, path)


@pytest.fixture(scope="session")
def chromium() -> str:
    pytest.importorskip("playwright", reason="the browser tests need Playwright: pip install -e '.[browser]'")
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium found: run tools/install_chromium.sh (Debian: apt-get install chromium), "
                    "or set COURSEKIT_CHROMIUM to a Chrome/Chromium binary")
    return path


@pytest.fixture(scope="session")
def lab(tmp_path_factory, chromium):
    """A JupyterLab server on a temporary copy of the notebooks (quick mode, isolated settings)."""
    threads = max(1, (os.cpu_count() or 2) // CONCURRENT)
    work = tmp_path_factory.mktemp("jupyterlab")
    server = lab_server.start(NOTEBOOKS, work, threads=threads)
    write_planted_error_notebook(server.root / SELF_TEST)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def notebook_runner(lab, chromium):
    runner = NotebookRunner(lab, chromium, screenshots_dir())
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        for name in _SELECTED:  # queue them all now: two run while pytest waits on the first
            runner.submit(name)
    yield runner
    runner.close()


def pytest_collection_finish(session):
    """Remember which notebooks were selected (after -k / deselection) so only those are queued."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec and "notebook" in callspec.params and callspec.params["notebook"] not in _SELECTED:
            _SELECTED.append(callspec.params["notebook"])


def pytest_terminal_summary(terminalreporter):
    if not _REPORTS:
        return
    terminalreporter.section("notebooks in JupyterLab + Chromium")
    for name, report in _REPORTS.items():
        verdict = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
        terminalreporter.write_line(f"{name:42s} {report.seconds:6.1f} s (Run All {report.run_seconds:5.1f} s)"
                                    f"  {verdict}; moved {report.control or 'nothing'}")
    terminalreporter.write_line(f"screenshots: {screenshots_dir()}")

