"""The package as a student installs it: build the wheel, install it into a fresh virtual environment
outside the repository, and execute notebooks 00 and 01 in quick mode from a folder outside the
repository. What Colab does, tested by its parts (Colab itself cannot run here).

It proves that an installed coursekit (no checkout beside it) finds its data through COURSEKIT_DATA,
writes its caches to the per-user cache directory (platformdirs; here XDG_CACHE_HOME in the temp
folder), and writes nothing into site-packages or the working folder. `make wheelcheck` runs it;
`pytest -m slow tests/test_wheelcheck.py` too. Needs COURSEKIT_DATA (CIFAR-10) unless online.

    python tools/wheelcheck.py [--keep] [--notebooks 00_setup 01_alexnet]
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("00_setup", "01_alexnet")


def run(args: list, **kwargs) -> None:
    print("$", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True, **kwargs)


def torch_pins() -> list[str]:
    """torch and torchvision at the versions this environment has (pip finds them offline here)."""
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in ("torch", "torchvision")]


def student_env(tmp: Path) -> dict:
    """A student's environment: no PYTHONPATH to a checkout, no COURSEKIT_CACHE, per-user
    directories inside `tmp`; only the data root and quick mode carried over."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEKIT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(COURSEKIT_QUICK="1", XDG_CACHE_HOME=str(tmp / "user-cache"), XDG_DATA_HOME=str(tmp / "user-data"),
               TORCH_HOME=str(tmp / "torch-home"), JUPYTER_PLATFORM_DIRS="1", MPLBACKEND="Agg")
    for name in ("COURSEKIT_DATA", "COURSEKIT_OFFLINE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def check(tmp: Path, notebooks: list[str]) -> dict:
    """Build, install, execute; returns seconds per phase. Raises on any failure, naming it."""
    seconds, tic = {}, time.perf_counter()
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp / "dist", ROOT])
    wheel = next((tmp / "dist").glob("coursekit-*.whl"))
    seconds["build"], tic = time.perf_counter() - tic, time.perf_counter()
    run([sys.executable, "-m", "venv", tmp / "venv"])
    python = tmp / "venv" / "bin" / "python"
    run([python, "-m", "pip", "install", "--progress-bar", "off", *torch_pins()])
    run([python, "-m", "pip", "install", "--progress-bar", "off", wheel])
    seconds["install"], tic = time.perf_counter() - tic, time.perf_counter()
    env, work = student_env(tmp), tmp / "work"
    work.mkdir()
    for name in notebooks:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", work)
    site = Path(subprocess.run([python, "-c", "import coursekit, pathlib; print(pathlib.Path(coursekit.__file__).parent.parent)"],
                               env=env, cwd=work, check=True, capture_output=True, text=True).stdout.strip())
    assert tmp / "venv" in site.parents, f"coursekit imported from {site}, not the fresh venv"
    installed = files_under(site / "coursekit")
    run([python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir", tmp / "executed",
         "--ExecutePreprocessor.timeout=1200", *[f"{n}.ipynb" for n in notebooks]], env=env, cwd=work)
    seconds["notebooks"] = time.perf_counter() - tic
    _check_where_files_went(tmp, site, installed, work, notebooks)
    return seconds


def _check_where_files_went(tmp, site, installed, work, notebooks) -> None:
    new_in_package = files_under(site / "coursekit") - installed
    new_in_package = {p for p in new_in_package if "__pycache__" not in p.parts}
    assert not new_in_package, f"the notebooks wrote into site-packages: {sorted(map(str, new_in_package))[:5]}"
    assert not (site / "data").exists(), f"a data folder appeared in site-packages: {site / 'data'}"
    extra = files_under(work) - {Path(f"{n}.ipynb") for n in notebooks}
    assert not extra, f"the notebooks wrote into the working folder: {sorted(map(str, extra))[:5]}"
    cache = tmp / "user-cache" / "coursekit"
    assert cache.is_dir() and files_under(cache), f"nothing cached in the per-user cache {cache}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (printed) for a look")
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS))
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="coursekit-wheelcheck-"))
    assert ROOT not in tmp.parents, "the temp folder must lie outside the repository"
    try:
        seconds = check(tmp, args.notebooks)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("wheelcheck passed: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f", {sum(seconds.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
