""".binder/ (mybinder.org's repo2docker) must build the student install with CPU-only PyTorch. It
cannot be built here (no network to mybinder), so its files are checked against pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / ".binder"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def requirement_lines() -> list[str]:
    lines = [line.split("#")[0].strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    return [line for line in lines if line]


def test_torch_comes_from_the_cpu_index_with_pyprojects_versions():
    lines = requirement_lines()
    assert f"--extra-index-url {CPU_INDEX}" in lines, "CPU-only torch: PyTorch's CPU index"
    pinned = {Requirement(line).name: Requirement(line) for line in lines if not line.startswith("-")}
    ours = {Requirement(line).name: Requirement(line) for line in PROJECT["dependencies"]}
    assert {"torch", "torchvision"} <= pinned.keys()
    for name, requirement in pinned.items():
        assert name in ours, f".binder/requirements.txt installs {name}, which pyproject.toml does not depend on"
        assert requirement.specifier == ours[name].specifier, \
            f"{name}: .binder says {requirement.specifier}, pyproject.toml {ours[name].specifier}"


def test_postbuild_installs_the_package_without_extras():
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and post.stat().st_mode & 0o111, "postBuild must be an executable script"
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs == ["pip install --no-cache-dir -e ."], "the student install: the package, no extras"


def test_runtime_python_satisfies_requires_python():
    version = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    assert version in SpecifierSet(PROJECT["requires-python"])


def test_launch_links_open_files_binder_has():
    from tools import launch_links
    for name in launch_links.notebook_names():
        assert (ROOT / launch_links.LAUNCHED / name).is_file(), f"Binder/Colab would open a missing {name}"
