"""Hooks for every pytest run from the project root (unit tests and nbval alike): the paper-check
report, which joins nbval's result for each paper-check cell with its null run, and one xdist group
per notebook, so `--dist loadgroup` keeps a notebook's cells on one worker (they share a kernel)
while the null runs, each its own test, spread over the workers."""
import pytest

pytest_plugins = ["tests.paperchecks.report"]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        path, sep, _ = item.nodeid.partition(".ipynb::")
        if sep:
            item.add_marker(pytest.mark.xdist_group(path + ".ipynb"))
