"""The course's public address, and everything generated from it: the Colab and Binder launch links
(badges in each notebook's title cell and the README's table), and the cell lines that install
coursekit on a machine that does not have it (Colab).

The repository's public URL is not decided yet: change REPOSITORY (and BRANCH) here, and only here,
then run `python tools/launch_links.py` to rewrite the notebooks and the README.
`python tools/launch_links.py --check` (tests/test_launch_links.py runs it) fails while any
notebook or the README disagrees with this file.

Students launch the student notebooks (release/, regenerated from notebooks/ by `make student`,
which carries the title cell and the first code cell over unchanged).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import quote

REPOSITORY = "turning-point-course/coursekit"  # GitHub owner/name: THE one place (not decided yet)
BRANCH = "main"
LAUNCHED = "release"  # the folder students open: the student notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
TABLE_START, TABLE_END = "<!-- launch-table: tools/launch_links.py writes it -->", "<!-- end launch-table -->"

# The first lines of every notebook's first code cell. A no-op where coursekit imports (a clone, a
# `pip install`, nbval, the grader); on Colab it installs the package from the repository with pip,
# progress shown. subprocess, not `!pip`/`%pip`, so it is plain Python in every kernel and in nbclient.
INSTALL_MARK = "# On Colab (or anywhere coursekit is missing) install it first; a no-op where it is installed"


def colab_url(notebook: str) -> str:
    """https://colab.research.google.com/github/<owner>/<name>/blob/<branch>/release/<notebook>"""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{LAUNCHED}/{notebook}"


def binder_url(notebook: str) -> str:
    """mybinder.org building .binder/ and opening `notebook` in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{REPOSITORY}/{BRANCH}?labpath={quote(f'{LAUNCHED}/{notebook}', safe='')}"


def install_spec() -> str:
    """What pip installs on Colab: the package straight from the repository's branch."""
    return f"coursekit @ git+https://github.com/{REPOSITORY}@{BRANCH}"


def badges(notebook: str) -> str:
    """The Markdown line of launch badges for one notebook (its title cell, the README's table)."""
    return (f"[![Open In Colab]({COLAB_BADGE})]({colab_url(notebook)}) "
            f"[![Launch Binder]({BINDER_BADGE})]({binder_url(notebook)})")


def text_links(notebook: str) -> str:
    """The same launches as plain links, for the website (it loads no image from another site)."""
    return f"[Open in Colab]({colab_url(notebook)}) · [Launch Binder]({binder_url(notebook)})"


def install_block() -> str:
    return (f"{INSTALL_MARK}\n"
            "try:\n"
            "    import coursekit\n"
            "except ModuleNotFoundError:\n"
            "    import importlib, subprocess, sys\n"
            f"    subprocess.run([sys.executable, '-m', 'pip', 'install', {install_spec()!r}], check=True)\n"
            "    importlib.invalidate_caches()\n")


# ---------------------------------------------------------------- applying them

_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\].*$\n?", re.M)


def with_badges(title: str, notebook: str) -> str:
    """The title cell with its badge line (after the `# NN ...` heading) replaced or added."""
    title = _BADGE_LINE.sub("", title)
    heading, _, rest = title.partition("\n")
    return f"{heading}\n\n{badges(notebook)}\n\n{rest.lstrip(chr(10))}"


def with_install(source: str) -> str:
    """The first code cell with the install block at its top (an older block replaced)."""
    if source.startswith(INSTALL_MARK):
        source = source.split("\n\n", 1)[1] if "\n\n" in source else ""
    return f"{install_block()}\n{source}"


def readme_table(names: list[str]) -> str:
    rows = [f"| `{Path(n).stem}` | {badges(n)} |" for n in names]
    return "\n".join([TABLE_START, "| notebook | launch |", "| --- | --- |", *rows, TABLE_END])


def notebook_names() -> list[str]:
    return [p.name for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]


def first_code_index(nb) -> int:
    return next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")


def stale(write: bool) -> list[str]:
    """The files that disagree with REPOSITORY/BRANCH; rewritten when `write`."""
    import nbformat
    out = []
    for name in notebook_names():
        path = NOTEBOOKS / name
        nb = nbformat.read(path, as_version=4)
        title, code = nb.cells[0], nb.cells[first_code_index(nb)]
        new_title, new_code = with_badges(title.source, name), with_install(code.source)
        if (new_title, new_code) != (title.source, code.source):
            out.append(str(path.relative_to(ROOT)))
            title.source, code.source = new_title, new_code
            if write:
                nbformat.write(nb, path)
    text = README.read_text()
    if TABLE_START not in text:
        raise SystemExit(f"README.md has no {TABLE_START} ... {TABLE_END} block for the launch table")
    before, rest = text.split(TABLE_START, 1)
    new = before + readme_table(notebook_names()) + rest.split(TABLE_END, 1)[1]
    if new != text:
        out.append("README.md")
        if write:
            README.write_text(new)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming the stale files")
    args = parser.parse_args(argv)
    files = stale(write=not args.check)
    if files and args.check:
        print("launch links out of date (run `python tools/launch_links.py`):", *files, sep="\n  ")
        return 1
    print(("rewrote: " + ", ".join(files)) if files else "launch links up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
