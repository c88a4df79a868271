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


def test_the_check_catches_files_written_into_site_packages_or_the_working_folder(tmp_path):
    site, work, cache = tmp_path / "site", tmp_path / "work", tmp_path / "user-cache" / "coursekit"
    for folder in (site / "coursekit", work, cache):
        folder.mkdir(parents=True)
    (site / "coursekit" / "__init__.py").write_text("")
    (work / "00_setup.ipynb").write_text("{}")
    installed = wheelcheck.files_under(site / "coursekit")
    with pytest.raises(AssertionError, match="per-user cache"):
        wheelcheck._check_where_files_went(tmp_path, site, installed, work, ["00_setup"])
    (cache / "cifar10-test-32px.pt").write_bytes(b"x")
    wheelcheck._check_where_files_went(tmp_path, site, installed, work, ["00_setup"])  # as it should be
    for stray, message in [(site / "coursekit" / "cache" / "model.pt", "site-packages"),
                           (work / "data" / "cifar-10.tar.gz", "working folder")]:
        stray.parent.mkdir(parents=True)
        stray.write_bytes(b"x")
        with pytest.raises(AssertionError, match=message):
            wheelcheck._check_where_files_went(tmp_path, site, installed, work, ["00_setup"])
        stray.unlink()
