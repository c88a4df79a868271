"""tools/website.py (make site): the lecture's questions in the slides' own words, every notebook in
the book once and in lecture order, and no solution or hidden test on the public pages. The built
site itself is checked in Chromium by tests/browser/test_site.py (make sitetest)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools import launch_links, website

ROOT = Path(__file__).resolve().parent.parent
NAMES = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
# the lecture, beside the project as in .ci/run's data (../shared), or where COURSEKIT_SLIDES says
SLIDES = [Path(p) for p in (os.environ.get("COURSEKIT_SLIDES", ""), ROOT.parent / "shared/lecture/slides.txt",
                            ROOT.parent.parent / "shared/lecture/slides.txt") if p]


def test_every_question_is_the_slides_own_words():
    slides = next((p for p in SLIDES if p.is_file()), None)
    if slides is None:
        pytest.skip(f"the lecture's slides.txt is not beside the project (looked at {SLIDES}); set COURSEKIT_SLIDES")
    text = slides.read_text()
    for caption, questions in website.PARTS:
        assert caption in text, f"part caption {caption!r} is not a slide title"
        for question, _ in questions:
            assert question in text, f"{question!r} is not on the slides"


def test_every_notebook_answers_a_question_and_the_parts_follow_the_lecture():
    answered = {name for _, questions in website.PARTS for _, names in questions for name in names}
    assert answered == set(NAMES)
    parts = [caption for caption, _ in website.PARTS]
    assert [parts.index(website.part_of(n)) for n in NAMES] == sorted(parts.index(website.part_of(n)) for n in NAMES)
    toc = website.toc(NAMES)
    assert [line.split("file: ")[1] for line in toc.splitlines() if "file: " in line] == NAMES


def test_site_pages_carry_text_launch_links_and_no_solutions():
    for name in ("00_setup", "03_filters_activations", "08_fooling_cnns", "10_how_transferable"):
        nb = website.site_notebook(ROOT / "notebooks" / f"{name}.ipynb", ROOT / "release")
        text = "\n".join(cell.source for cell in nb.cells)
        assert launch_links.text_links(f"{name}.ipynb") in nb.cells[0].source
        assert "badge" not in nb.cells[0].source  # no image from another host on the site
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "raise NotImplementedError" in text or name == "00_setup"
        assert "Instructor note" not in text  # 10 has two in notebooks/


def test_make_course_keeps_figures_when_the_shell_says_agg(tmp_path):
    """The site shows what `make course` executed: its figures must survive MPLBACKEND=Agg (CI's
    setting), under which plt.show() and a returned Figure would leave no image in the notebook."""
    import subprocess
    import sys

    import nbformat
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1])\nplt.show()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "00_tiny.ipynb")
    venv = Path(sys.executable).parent.parent
    subprocess.run(["make", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path), "-o", f"{venv}/.installed",
                    f"VENV={venv}", "course", "COURSE_QUICK=1", "COURSE_OUT=out"],
                   env={**os.environ, "MPLBACKEND": "Agg"}, check=True, capture_output=True, timeout=300)
    executed = nbformat.read(tmp_path / "out" / "00_tiny.ipynb", as_version=4)
    assert any("image/png" in out.get("data", {}) for out in executed.cells[0].outputs)
