"""The wheel in a fresh venv outside the repository runs notebooks 00 and 01 (tools/wheelcheck.py;
`make wheelcheck`). Minutes: builds, installs torch and the dependencies, trains the quick backbone
in an empty per-user cache. Run it on purpose: pytest -m slow tests/test_wheelcheck.py"""
from __future__ import annotations

import pytest

from tools import wheelcheck


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_notebooks_00_and_01(request):
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("builds a venv and runs two notebooks (minutes): run with -m slow")
    assert wheelcheck.main([]) == 0
