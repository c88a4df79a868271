"""Drive one notebook in JupyterLab the way a student does, and report what went wrong.

open -> Run > Run All Cells -> wait until every cell ran and the kernel is idle -> inspect the
rendered cells (errors, figures, widgets) -> screenshot -> move one control of the first "Try it"
panel and check that the panel's output changed -> screenshot the panel -> shut the kernel down.
Every problem is collected as a sentence naming the notebook and the cell, so one run lists them all.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .lab_server import LabServer

OPEN_TIMEOUT = 180      # s: page load and kernel start on a loaded machine
CHANGE_TIMEOUT = 180    # s: a panel's callback re-drawing its figure after a control moved
SETTLE_POLLS = 3        # consecutive idle polls (1 s apart) before a run counts as finished

# Reads every cell of the notebook (all are in the DOM: windowingMode is "none").
INSPECT_CELLS_JS = r"""
() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')]
  .map((cell, index) => {
    const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
    const text = (el) => (el.innerText || '').trim();
    const imgs = [...cell.querySelectorAll('.jp-OutputArea-output img')];
    return {
      index,
      code: cell.classList.contains('jp-CodeCell'),
      source: text(cell.querySelector('.jp-InputArea-editor') || cell).split('\n')[0].slice(0, 80),
      prompt: text(cell.querySelector('.jp-InputArea-prompt') || cell),
      errors: outputs.filter((o) => o.dataset.mimeType === 'application/vnd.jupyter.stderr'
                                   && /Traceback|^\S*(Error|Exception)\b/m.test(text(o)))
                     .map((o) => text(o).split('\n').filter((l) => /\w*(Error|Exception)\b/.test(l))
                                       .slice(-1)[0] || text(o).slice(0, 300)),
      images: imgs.length,
      brokenImages: imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).length,
      figureReprs: outputs.filter((o) => /^<Figure size [\d.]+x[\d.]+ with \d+ Axes>$/m.test(text(o))).length,
      widgets: cell.querySelectorAll('.jupyter-widgets').length,
      unrenderedWidgets: outputs.filter((o) => /Loading widget|Error displaying widget|^(VBox|HBox|IntSlider|FloatSlider|Dropdown|Output)\(/m.test(text(o)))
                               .map((o) => text(o).slice(0, 120)),
    };
  })
"""

# A fingerprint of everything a panel's output shows: image sources (hashed) and text.
OUTPUT_SIGNATURE_JS = r"""
(out) => {
  const hash = (s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; };
  const imgs = [...out.querySelectorAll('img')].filter((i) => i.complete && i.naturalWidth > 0);
  return {images: imgs.map((i) => `${i.naturalWidth}x${i.naturalHeight}:${hash(i.src)}`),
          text: (out.innerText || '').trim().slice(0, 2000)};
}
"""

PANEL = (".jp-OutputArea-output .widget-vbox:has(> .widget-output)"
         ":has(.widget-slider .noUi-handle, .widget-dropdown select)")


@dataclass
class Report:
    notebook: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run_seconds: float = 0.0
    screenshots: list[Path] = field(default_factory=list)
    control: str = ""
    outcomes: list[str] = field(default_factory=list)  # per code cell, in order: see cell_outcome

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{self.notebook}, {where}: {what}")


async def kernel_state(server: LabServer, path: str) -> tuple[str | None, str | None]:
    """(session id, kernel execution_state) of the notebook at `path`, or (None, None)."""
    sessions = await asyncio.to_thread(server.api, "/api/sessions")
    for session in sessions:
        if session.get("path") == path and session.get("kernel"):
            return session["id"], session["kernel"].get("execution_state")
    return None, None


async def wait_kernel_idle(server: LabServer, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        _, state = await kernel_state(server, path)
        if state == "idle":
            return
        await asyncio.sleep(1)
    raise TimeoutError(f"the kernel of {path} was not idle after {timeout:.0f} s (state: {state})")


async def open_notebook(page, server: LabServer, name: str) -> None:
    workspace = re.sub(r"\W", "-", Path(name).stem)  # one workspace per page: no restored tabs from others
    await page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={server.token}")
    await page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=OPEN_TIMEOUT * 1000)
    await wait_kernel_idle(server, name, OPEN_TIMEOUT)


async def run_all_cells(page) -> None:
    """Run > Run All Cells, through the menu bar like a student."""
    await page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
    await page.locator(".lm-Menu .lm-Menu-item").filter(has=label).click()


async def dialog_text(page) -> str | None:
    dialog = page.locator(".jp-Dialog")
    if await dialog.count():
        return (await dialog.first.inner_text()).strip().replace("\n", " ")[:300]
    return None


async def wait_run_finished(page, server: LabServer, name: str, timeout: float) -> None:
    """Until no cell is queued or running ([*]), some cell ran, and the kernel is idle, for a few polls."""
    deadline, calm = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        prompts = await page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        _, state = await kernel_state(server, name)
        if state in (None, "dead"):
            raise RuntimeError(f"the kernel died or its session vanished (state {state}); "
                               f"dialog: {await dialog_text(page)}")
        busy = any("*" in p for p in prompts)
        ran = any(re.search(r"\d", p) for p in prompts)
        calm = calm + 1 if (not busy and ran and state == "idle") else 0
        if calm >= SETTLE_POLLS:
            return
        await asyncio.sleep(1)
    cells = await page.evaluate(INSPECT_CELLS_JS)
    running = next((f"cell {c['index']} ({c['source']!r})" for c in cells if "*" in c["prompt"]), "no cell")
    raise TimeoutError(f"Run All had not finished after {timeout:.0f} s; {running} was still running "
                       f"(COURSEKIT_BROWSER_TIMEOUT raises the limit)")


async def settled_cells(page, patience: float = 30) -> list[dict]:
    """The cells once widgets and images have finished rendering (they draw after the kernel is idle)."""
    deadline = time.monotonic() + patience
    while True:
        cells = await page.evaluate(INSPECT_CELLS_JS)
        pending = any(c["brokenImages"] or c["unrenderedWidgets"] for c in cells)
        if not pending or time.monotonic() > deadline:
            return cells
        await asyncio.sleep(1)


def cell_outcome(cell: dict) -> str:
    """'passes', 'fails' (an AssertionError), 'crashes: <error name>' or 'did not run', as the
    paper-check report (tests/paperchecks/report.py) reads a code cell."""
    if not re.search(r"\d", cell["prompt"]):
        return "did not run"
    if not cell["errors"]:
        return "passes"
    name = re.match(r"\s*(\w*)", cell["errors"][0])[1]
    # "fails: not learned": the words of tests/paperchecks/checks.NOT_LEARNED (a precondition, train.NotLearned)
    return {"AssertionError": "fails", "NotLearned": "fails: not learned"}.get(name, f"crashes: {name or 'error'}")


def check_cells(cells: list[dict], report: Report) -> None:
    """Errors, cells that never ran, figures that did not draw, widgets that did not render."""
    report.outcomes = [cell_outcome(cell) for cell in cells if cell["code"]]
    for cell in cells:
        where = f"cell {cell['index']} ({cell['source']!r})"
        for error in cell["errors"]:
            report.problem(where, f"shows an error output: {error}")
        if cell["code"] and cell["source"] and not re.search(r"\d", cell["prompt"]):
            report.problem(where, f"did not run (prompt {cell['prompt']!r}); an earlier error stops Run All")
        if cell["brokenImages"]:
            report.problem(where, f"{cell['brokenImages']} image(s) did not load")
        if cell["figureReprs"]:
            report.problem(where, "shows '<Figure size ...>' text instead of the drawn figure")
        for text in cell["unrenderedWidgets"]:
            report.problem(where, f"a widget did not render: {text!r}")
    if not any(cell["images"] for cell in cells):
        report.problem("whole notebook", "no figure rendered (no image in any output)")
    if not any(cell["widgets"] for cell in cells):
        report.problem("whole notebook", "no ipywidgets rendered (no .jupyter-widgets element)")


async def screenshot_notebook(page, path: Path) -> None:
    """The whole notebook in one picture: grow the viewport to the notebook's height for the shot."""
    height = await page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer, "
        ".jp-NotebookPanel .jp-Notebook')].map((e) => e.scrollHeight), 900)")
    size = page.viewport_size
    await page.set_viewport_size({"width": size["width"], "height": min(int(height) + 200, 16000)})
    await page.evaluate("() => document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer')"
                        ".forEach((e) => { e.scrollTop = 0; })")  # Run All left it scrolled to the end
    await page.wait_for_timeout(500)
    await page.screenshot(path=str(path))
    await page.set_viewport_size(size)


async def first_text(locator) -> str:
    texts = await locator.all_inner_texts()
    return texts[0].strip() if texts else "(no label)"


async def move_one_control(panel, report: Report) -> str:
    """Nudge the first slider by one step (keyboard on its handle), else pick another dropdown option."""
    handle = panel.locator(".widget-slider .noUi-handle").first
    if await handle.count():
        label = await first_text(panel.locator(".widget-slider .widget-label"))
        now = float(await handle.get_attribute("aria-valuenow"))
        top = float(await handle.get_attribute("aria-valuemax"))
        key = "ArrowLeft" if now >= top else "ArrowRight"
        readout = panel.locator(".widget-slider .widget-readout").first
        before = (await readout.inner_text()).strip()
        await handle.focus()
        await handle.press(key)
        after = before
        for _ in range(10):  # the readout follows the handle within a frame or two
            if (after := (await readout.inner_text()).strip()) != before:
                break
            await asyncio.sleep(0.5)
        if after == before:
            report.problem(f"slider {label!r}", f"{key} on its handle did not move it (readout stays {before})")
        return f"slider {label!r}: {before} -> {after}"
    select = panel.locator(".widget-dropdown select").first
    label = await first_text(panel.locator(".widget-dropdown .widget-label"))
    options = await select.locator("option").all_inner_texts()
    current = await select.evaluate("(s) => s.selectedIndex")
    target = (current + 1) % len(options)
    await select.select_option(index=target)
    return f"dropdown {label!r}: {options[current]!r} -> {options[target]!r}"


async def try_the_panel(page, server: LabServer, name: str, report: Report, shots: Path) -> None:
    panels = page.locator(PANEL)
    if not await panels.count():
        report.problem("whole notebook", "no 'Try it' panel (a VBox of sliders/dropdowns above an Output) rendered")
        return
    panel = panels.first
    await panel.scroll_into_view_if_needed()
    output = panel.locator(":scope > .widget-output")
    before = await output.evaluate(OUTPUT_SIGNATURE_JS)
    await output.evaluate("(out) => out.querySelectorAll('img').forEach((i) => { i.dataset.stale = '1'; })")
    report.control = await move_one_control(panel, report)
    deadline, after, same_redraws = time.monotonic() + CHANGE_TIMEOUT, before, 0
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        _, state = await kernel_state(server, name)
        after = await output.evaluate(OUTPUT_SIGNATURE_JS)
        redrawn = await output.evaluate("(out) => out.querySelectorAll('img:not([data-stale])').length > 0")
        if state == "idle" and after != before and (after["images"] or after["text"]):
            break
        # new <img> elements with the very same pictures: the callback re-drew an identical figure
        same_redraws = same_redraws + 1 if (state == "idle" and redrawn and after == before) else 0
        if same_redraws >= SETTLE_POLLS:
            break
    shot = shots / f"{Path(name).stem}-try-it.png"
    await panel.screenshot(path=str(shot))
    report.screenshots.append(shot)
    errors = await panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    errors = [e for e in errors if re.search(r"Traceback|(Error|Exception)\b", e)]
    if errors:
        report.problem(f"'Try it' panel after {report.control}", f"shows an error: {errors[-1][-400:]}")
    elif after == before and same_redraws:
        report.problem(f"'Try it' panel after {report.control}",
                       "the callback re-drew exactly the same figure: a student sees nothing change")
    elif after == before:
        report.problem(f"'Try it' panel after {report.control}",
                       f"its output did not change within {CHANGE_TIMEOUT} s (still {before['text'][:80]!r}, "
                       f"{len(before['images'])} image(s))")
    elif not after["images"] and before["images"]:
        report.problem(f"'Try it' panel after {report.control}", f"the figure disappeared: {after['text'][:200]!r}")


async def run_notebook(browser, server: LabServer, name: str, shots: Path, run_timeout: float) -> Report:
    """Everything a student does with one notebook; the problems found are in the returned Report."""
    report, started = Report(name), time.monotonic()
    for stale in [*shots.glob(f"{Path(name).stem}.png"), *shots.glob(f"{Path(name).stem}-*.png")]:
        stale.unlink()  # pictures of an earlier run would mislead
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = await context.new_page()
    try:
        await open_notebook(page, server, name)
        run_started = time.monotonic()
        await run_all_cells(page)
        await wait_run_finished(page, server, name, run_timeout)
        report.run_seconds = time.monotonic() - run_started
        if (text := await dialog_text(page)) is not None:
            report.problem("after Run All", f"a dialog is open: {text}")
        check_cells(await settled_cells(page), report)
        shot = shots / f"{Path(name).stem}.png"
        await screenshot_notebook(page, shot)
        report.screenshots.append(shot)
        await try_the_panel(page, server, name, report, shots)
    except Exception as err:  # a step that could not finish: record it, keep a picture of the moment
        report.problem("driving JupyterLab", f"{type(err).__name__}: {err}".splitlines()[0][:500])
        shot = shots / f"{Path(name).stem}-failed.png"
        try:
            await page.screenshot(path=str(shot))
            report.screenshots.append(shot)
        except Exception:
            pass
    finally:
        await shut_down_kernel(server, name)
        await context.close()
        report.seconds = time.monotonic() - started
    return report


async def shut_down_kernel(server: LabServer, name: str) -> None:
    """Free the kernel's memory and cores for the next notebook."""
    try:
        session, _ = await kernel_state(server, name)
        if session:
            await asyncio.to_thread(server.api, f"/api/sessions/{session}", "DELETE")
    except Exception:
        pass
