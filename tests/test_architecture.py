"""ARCHITECTURE.md and the notebooks' shape, kept true.

The module map must name every module of coursekit (and no module that is gone), the functions the
paper index names must exist, and every notebook must keep the course's shape (DESIGN.md): a title
citing its paper(s) with the year, `coursekit.setup()`, a "Try it" panel, Exercises, Takeaways and
References, in that order.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "coursekit"
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def package_modules() -> set[str]:
    """'data.py', 'grading/', ...: the names a reader looks for in the map."""
    modules = {p.name for p in PACKAGE.glob("*.py")}
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    sub = {p.name for pkg in packages for p in (PACKAGE / pkg).glob("*.py") if p.name != "__init__.py"}
    return modules | packages | sub


def mapped_names() -> set[str]:
    """Every `name.py` or `name/` written in backticks in the module map."""
    section = ARCHITECTURE.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z_]+\.py|[a-z_]+/)`", section))


def test_module_map_names_every_module_and_only_those():
    modules, mapped = package_modules(), mapped_names()
    assert not modules - mapped, f"ARCHITECTURE.md's module map does not name {sorted(modules - mapped)}"
    assert not mapped - modules, f"ARCHITECTURE.md names modules that do not exist: {sorted(mapped - modules)}"


def test_paper_index_names_functions_that_exist():
    table = ARCHITECTURE.split("## Paper to function", 1)[1]
    names = re.findall(r"`([a-z_]+)\.([A-Za-z_]+)`", table)
    assert len(names) >= 20
    missing = [f"{module}.{name}" for module, name in names
               if not hasattr(importlib.import_module(f"coursekit.{module}"), name)]
    assert not missing, f"ARCHITECTURE.md's paper index names functions that do not exist: {missing}"


def headings(nb) -> list[str]:
    return [line[3:].strip() for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_the_course_shape(path):
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0]
    number = path.name[:2]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {number}"), \
        f"{path.name}: the first cell is the title, '# {number} ...'"
    assert re.search(r"\b(19|20)\d\d\b", title.source), f"{path.name}: the title cell cites its paper(s) with the year"
    assert "able to" in title.source, f"{path.name}: the title cell says what you will be able to do"
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert any("coursekit.setup(" in source for source in code[:3]), \
        f"{path.name}: settings = coursekit.setup() in one of the first code cells"
    assert any("widgets.panel(" in source for source in code), f"{path.name}: at least one Try-it panel"
    found = headings(nb)
    wanted = ["Try it", "Homework" if number == "00" else "Exercises", "Takeaways", "References"]
    positions = []
    for section in wanted:
        hits = [i for i, heading in enumerate(found) if heading.startswith(section)]
        assert hits, f"{path.name}: no '## {section}' section (sections: {found})"
        positions.append(hits[-1] if section == "Try it" else hits[0])
    assert positions == sorted(positions), f"{path.name}: sections out of order: {dict(zip(wanted, positions))}"
