"""Hooks for every pytest run from the project root (unit tests and nbval alike): the paper-check
report, which joins nbval's result for each paper-check cell with its null run."""
pytest_plugins = ["tests.paperchecks.report"]
