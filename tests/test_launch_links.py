"""The Colab/Binder launch links and the install cell come from tools/launch_links.py alone, and the
install cell installs only where coursekit is missing."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from tools import launch_links as links

NAMES = links.notebook_names()


def test_every_notebook_and_the_readme_match_the_one_repository_constant():
    assert links.stale(write=False) == [], "run `python tools/launch_links.py` after changing REPOSITORY"


@pytest.mark.parametrize("name", NAMES)
def test_badges_and_install_cell_name_the_repository(name):
    nb = nbformat.read(links.NOTEBOOKS / name, as_version=4)
    title, code = nb.cells[0].source, nb.cells[links.first_code_index(nb)].source
    assert links.colab_url(name) in title and f"/{links.REPOSITORY}/blob/{links.BRANCH}/release/{name}" in title
    assert code.startswith(links.install_block()) and links.install_spec() in code
    assert "!pip" not in code and "%pip" not in code  # plain Python: nbval, nbclient and the grader run it


def test_a_changed_repository_makes_the_check_fail(monkeypatch):
    monkeypatch.setattr(links, "REPOSITORY", "someone-else/fork")
    stale = links.stale(write=False)
    assert "README.md" in stale and len(stale) == len(NAMES) + 1


def test_rewriting_is_idempotent():
    nb = nbformat.read(links.NOTEBOOKS / NAMES[0], as_version=4)
    title, code = nb.cells[0].source, nb.cells[links.first_code_index(nb)].source
    assert links.with_badges(links.with_badges(title, NAMES[0]), NAMES[0]) == title
    assert links.with_install(links.with_install(code)) == code


def _run_install_block(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args[0]))
    exec(links.install_block(), {})
    return calls


def test_install_block_is_a_no_op_where_coursekit_imports(monkeypatch):
    assert _run_install_block(monkeypatch) == []


def test_install_block_pip_installs_the_repository_where_coursekit_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "coursekit", None)  # `import coursekit` now raises ModuleNotFoundError
    calls = _run_install_block(monkeypatch)
    assert calls == [[sys.executable, "-m", "pip", "install", links.install_spec()]]
    assert links.install_spec() == f"coursekit @ git+https://github.com/{links.REPOSITORY}@{links.BRANCH}"
