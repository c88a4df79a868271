"""`python -m coursekit <command>`: the course's shell jobs, one small function per command.

To add a command: write `def _add_<name>(commands)` that adds a sub-parser with `_command(...)`
(a one-line summary and a few sentences a new user understands) and sets `run=<function taking
the parsed args>`, and append it to COMMANDS.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import __version__
from . import settings as _settings

DESCRIPTION = "coursekit: the deep-learning course's helpers, from a shell."
# the environment variables as settings.py documents them (its docstring after the first line)
_VARIABLES = (_settings.__doc__ or "").partition("\n\n")[2] or "(see coursekit/settings.py)"
EPILOG = ("Run `python -m coursekit <command> --help` for a command's options.\n\n"
          "Settings come from environment variables:\n" + _VARIABLES)


def _command(commands, name: str, summary: str, details: str = ""):
    """A sub-parser whose summary shows in the command list and, with `details`, in its own --help."""
    return commands.add_parser(name, help=summary, description=f"{summary}\n\n{details}".strip(),
                               formatter_class=argparse.RawDescriptionHelpFormatter)


# ---------------------------------------------------------------- setup: doctor, prefetch, warm, clean-cache

def _add_doctor(commands) -> None:
    cmd = _command(commands, "doctor", "show how the course will run here: device, data, cache, weights",
                   "Prints the device and torch version, each data root and what it holds, the cache\n"
                   "directory and what is cached, and whether torch's cache has the ImageNet AlexNet\n"
                   "weights. Changes nothing; run it first when something is not found.")
    cmd.set_defaults(run=_doctor)


def _doctor(args) -> int:
    from . import backbones, describe
    import torch
    cfg = _settings.current()
    print(f"coursekit {__version__} (from {'a source checkout' if _settings.from_checkout() else 'an installed package'})")
    print(describe(cfg))
    print("data roots (COURSEKIT_DATA), searched in order:")
    for root in cfg.data_roots:
        print(f"  {root}: {_folder_summary(root)}")
    print("cache contents (COURSEKIT_CACHE moves the cache):")
    for line in _cache_listing(cfg.cache_dir) or ["  (empty)"]:
        print(line)
    for label, weights, _ in _imagenet_weights():
        cached = backbones.imagenet_weights_cached(weights)
        print(f"{label}: {'in' if cached else 'not in'} torch's cache ({torch.hub.get_dir()})"
              + ("" if cached else "; `python -m coursekit prefetch` downloads them"))
    return 0


def _imagenet_weights() -> list:
    """(label, torchvision weights, download) for each network the imagenet path loads: the
    backbone, AlexNet, and the second network, ResNet-18 (backbones.second_network)."""
    from torchvision.models import AlexNet_Weights, ResNet18_Weights
    from . import models
    return [("ImageNet AlexNet weights", AlexNet_Weights.IMAGENET1K_V1, lambda: models.alexnet(pretrained=True)),
            ("ImageNet ResNet-18 weights (the second network)", ResNet18_Weights.IMAGENET1K_V1,
             lambda: models.resnet18(pretrained=True))]


def _folder_summary(root: Path) -> str:
    """What a data root holds, one phrase per folder: 'cifar10/ (test, train), imagenet-samples/ (1000 files)'."""
    if not root.is_dir():
        return "missing"
    try:
        parts = []
        for entry in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            subfolders = sorted(p.name for p in entry.iterdir() if p.is_dir())
            shown = ", ".join(subfolders[:6] + (["..."] if len(subfolders) > 6 else []))
            parts.append(f"{entry.name}/ ({shown or str(sum(1 for _ in entry.iterdir())) + ' files'})")
    except OSError as err:
        return f"unreadable ({err.strerror})"
    return ", ".join(parts) or "no dataset folders"


def _cache_listing(cache: Path) -> list[str]:
    """One line per top-level entry of the cache directory with its size; [] when there is nothing."""
    if not cache.is_dir():
        return []
    lines = []
    for entry in sorted(cache.iterdir()):
        files = [p for p in entry.rglob("*") if p.is_file()] if entry.is_dir() else [entry]
        size = sum(_size(p) for p in files)
        name = entry.name + ("/" if entry.is_dir() else "")
        lines.append(f"  {name:<40} {size / 1e6:9.1f} MB" + (f" in {len(files)} files" if entry.is_dir() else ""))
    return lines


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # a temporary file another process just renamed or removed
        return 0


def _add_prefetch(commands) -> None:
    cmd = _command(commands, "prefetch", "download CIFAR-10, the ImageNet sample photos and the AlexNet and ResNet-18 "
                   "weights now, while online",
                   "Run once on a machine with internet access; afterwards the notebooks work offline.\n"
                   "CIFAR-10 and the ImageNet sample photos (one per class) go into the first data root\n"
                   "(or the cache if that is read-only), CIFAR-10 is decoded into the cache; the weights of\n"
                   "AlexNet (the imagenet backbone) and ResNet-18 (its second network) go into torch's\n"
                   "cache. What is already\n"
                   "here is not downloaded again. Offline (COURSEKIT_OFFLINE=1 or no network) it says\n"
                   "what is missing and exits with status 1.")
    cmd.set_defaults(run=_prefetch)


def _prefetch(args) -> int:
    from . import data
    cfg = _settings.current()
    try:  # downloads land in the data root, not the cache, so clean-cache never deletes them
        cfg.data_roots[0].mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only root: data.py falls back to the cache directory
    missing = []
    for split in ("train", "test"):
        try:
            images = data.cifar10(split, cfg)  # the course's one CIFAR-10 download, or the local copy
            print(f"CIFAR-10 {split}: ready ({len(images)} images)")
        except (OSError, RuntimeError) as err:  # DataNotFoundError, network errors
            missing.append(f"CIFAR-10 {split}: {err}")
    try:
        print(f"ImageNet sample photos: ready ({len(data.imagenet_samples(cfg))} in {data.imagenet_samples_folder(cfg)})")
    except (OSError, RuntimeError) as err:  # DataNotFoundError, network errors, an incomplete archive
        missing.append(f"ImageNet sample photos: {err}")
    for label, weights, download in _imagenet_weights():
        try:
            print(f"{label}: {_prefetch_weights(cfg, weights, download)}")
        except (OSError, RuntimeError) as err:
            missing.append(f"{label}: {err}")
    if missing:
        offline = "offline (COURSEKIT_OFFLINE=1 is set)" if cfg.offline else "some downloads failed"
        print(f"prefetch incomplete, {offline}. Missing:\n" + "\n".join(missing), file=sys.stderr)
        return 1
    return 0


def _prefetch_weights(cfg, weights, download) -> str:
    from . import backbones, data
    import torch
    if backbones.imagenet_weights_cached(weights):
        return f"ready (in {torch.hub.get_dir()})"
    if cfg.offline or not data.can_download("download.pytorch.org"):
        why = "COURSEKIT_OFFLINE=1 is set" if cfg.offline else "download.pytorch.org cannot be reached"
        raise RuntimeError(f"not in torch's cache ({torch.hub.get_dir()}) and {why}; "
                           f"run `python -m coursekit prefetch` again while online")
    download()  # torchvision's checksummed download into torch's cache
    return f"downloaded (into {torch.hub.get_dir()})"


def _add_warm(commands) -> None:
    cmd = _command(commands, "warm", "train now the networks several notebooks share (the cifar10 backbone, the source network)",
                   "Builds, in the current mode (COURSEKIT_QUICK), what a notebook would otherwise train the\n"
                   "first time it needs it, with every CPU thread: the cifar10 backbone (every notebook; 08's\n"
                   "pair of networks on the imagenet path too) and the source network of 02 and 09-11.\n"
                   "For an instructor preparing a lab machine, and `make test` before its parallel runs\n"
                   "(where one worker would train while the other waits). What is cached is only loaded.")
    cmd.set_defaults(run=_warm)


def _warm(args) -> int:
    from . import backbones, data
    cfg = _settings.current()
    try:
        bb = backbones.backbone("cifar10", cfg)
        print(f"cifar10 backbone: ready ({bb.reason}; {cfg.mode} mode)")
        recipe = backbones.source_recipe(data.cifar_splits()["random"].a, cfg)
        _, info = backbones.trained_on_classes(recipe, cfg)
    except (OSError, RuntimeError) as err:  # no CIFAR-10 here: the error names the fix
        print(f"warm: {err}", file=sys.stderr)
        return 1
    print(f"source network on {', '.join(recipe['classes'])}: ready ({info['test_top1']:.1%} top-1 on their test images)")
    return 0


def _add_clean_cache(commands) -> None:
    cmd = _command(commands, "clean-cache", "list coursekit's cache (decoded images, trained models); --yes deletes it",
                   "Without --yes, only lists what would be deleted. With --yes, deletes coursekit's\n"
                   "cache directory (COURSEKIT_CACHE); it is rebuilt when needed, which retrains the\n"
                   "cifar10 backbone. Data roots and torch's cache (the AlexNet weights) are never touched.")
    cmd.add_argument("--yes", action="store_true", help="really delete (default: a dry run that only lists)")
    cmd.set_defaults(run=_clean_cache)


def _clean_cache(args) -> int:
    import torch
    cfg = _settings.current()
    cache = cfg.cache_dir
    kept = [*(("data root", root) for root in cfg.data_roots), ("torch's cache", Path(torch.hub.get_dir())),
            ("home directory", Path.home()), ("coursekit package", Path(__file__).parent)]
    for name, path in kept:
        if path.resolve().is_relative_to(cache.resolve()):
            raise ValueError(f"COURSEKIT_CACHE={cache} holds the {name} {path}; deleting it would delete that "
                             f"too. Point COURSEKIT_CACHE at a folder of its own.")
    listing = _cache_listing(cache)
    if not listing:
        print(f"nothing to delete: the cache {cache} is empty or missing")
        return 0
    print(f"coursekit's cache {cache} holds:\n" + "\n".join(listing))
    if not args.yes:
        print("dry run: nothing deleted. Run `python -m coursekit clean-cache --yes` to delete it.")
        return 0
    shutil.rmtree(cache)
    print(f"deleted {cache}")
    return 0


# ---------------------------------------------------------------- homework: student, workspace, grade, validate

def _add_student(commands) -> None:
    cmd = _command(commands, "student", "make the student versions of the notebooks (solutions removed)",
                   "nbgrader turns each instructor notebook into a student one: solutions become\n"
                   "`raise NotImplementedError()`, hidden tests go, test cells are locked. The output\n"
                   "folder is wiped and rebuilt on every run; give students these files.")
    cmd.add_argument("--notebooks", default="notebooks", help="instructor notebooks (default: notebooks)")
    cmd.add_argument("--out", default="release", help="where the student versions go (default: release)")
    cmd.set_defaults(run=_student)


def _student(args) -> int:
    from . import grading
    paths = grading.make_release(args.notebooks, args.out)
    print(f"wrote {len(paths)} student notebooks to {args.out}/")
    return 0


def _add_workspace(commands) -> None:
    cmd = _command(commands, "workspace", "copy the student notebooks into your own folder to work in",
                   "Copies each student notebook (release/, made by `make student`) into your folder,\n"
                   "my-notebooks/ by default. A notebook already there is yours and is never\n"
                   "overwritten: to start one afresh, rename or delete your copy and run this again.")
    cmd.add_argument("--release", default="release", help="the student notebooks (default: release)")
    cmd.add_argument("--into", default="my-notebooks", help="your folder (default: my-notebooks)")
    cmd.set_defaults(run=_workspace)


def _workspace(args) -> int:
    release, mine = Path(args.release), Path(args.into)
    notebooks = sorted(release.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no student notebooks in {release.resolve()}; run `make student` (instructors) "
                         "or pass --release with the folder your instructor gave you")
    mine.mkdir(parents=True, exist_ok=True)
    kept = []
    for source in notebooks:
        target = mine / source.name
        try:
            with source.open("rb") as src, target.open("xb") as dst:    # "x": never overwrite a student's copy
                shutil.copyfileobj(src, dst)
        except FileExistsError:
            kept.append(target.name)
    print(f"{len(notebooks) - len(kept)} notebooks copied into {mine}/")
    if kept:
        print(f"kept your own copies of {len(kept)} ({', '.join(kept)}); rename one and run again to get "
              "the current version beside it")
    return 0


def _add_grade(commands) -> None:
    cmd = _command(commands, "grade", "autograde a folder of student submissions into grades.csv and feedback",
                   "Each submission runs in its own process and kernel under time limits; writes\n"
                   "<out>/grades.csv (one row per graded cell), <out>/totals.csv (one row per student)\n"
                   "and <out>/feedback/<student>.md and .html. --workers N grades N at once on a local\n"
                   "Dask cluster; --scheduler ADDRESS on an existing Dask scheduler's workers.\n"
                   "Student code runs as your user: grade untrusted cohorts in a container.")
    cmd.add_argument("submissions", nargs="?", help="one sub-folder per student, or an LMS download (files / zips)")
    cmd.add_argument("--out", default="grades", help="output folder (default: grades)")
    cmd.add_argument("--notebooks", default="notebooks", help="instructor notebooks (default: notebooks)")
    cmd.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="grade these notebooks (names without .ipynb)")
    cmd.add_argument("--full", action="store_true",
                     help="run whole notebooks (default: first code cell + the Exercises section)")
    cmd.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (default: 60)")
    cmd.add_argument("--notebook-timeout", type=float, default=300, help="seconds per notebook (default: 300)")
    cmd.add_argument("--workers", "--jobs", type=int, default=1, dest="workers",
                     help="submissions graded at once on a local Dask cluster of this many worker processes "
                          "(default: 1, no Dask; >1 lets running submissions see each other)")
    cmd.add_argument("--config-template", action="store_true",
                     help="print an nbgrader_config.py for a JupyterHub course (formgrader) and exit")
    cmd.add_argument("--scheduler", metavar="ADDRESS",
                     help="grade on the workers of this Dask scheduler (tcp://host:8786) instead")
    cmd.set_defaults(run=_grade)


def _grade(args) -> int:
    from . import grading
    if args.config_template:
        from .grading.course import config_template
        print(config_template(), end="")
        return 0
    if not args.submissions:
        raise ValueError("name the folder of submissions: python -m coursekit grade SUBMISSIONS")
    grades = grading.grade(args.submissions, args.notebooks, args.out, mode="full" if args.full else "exercises",
                           cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout, only=args.only,
                           parallel=args.workers, scheduler=args.scheduler)
    students = len({g.student for g in grades})
    print(f"graded {len(grades)} notebooks of {students} students -> {args.out}/grades.csv, {args.out}/feedback/")
    return 0


def _add_validate(commands) -> None:
    cmd = _command(commands, "validate", "check every exercise both ways: solution passes, student version fails",
                   "For each instructor notebook, the solution must score full marks (visible and\n"
                   "hidden tests) and the untouched student version must score zero in every test\n"
                   "cell. Exits with status 1 if any exercise fails either check.")
    cmd.add_argument("notebooks", nargs="*", help="instructor notebooks (default: notebooks/*.ipynb)")
    cmd.set_defaults(run=_validate)


def _validate(args) -> int:
    from . import grading
    paths = args.notebooks or grading.instructor_notebooks("notebooks")
    problems = 0
    for path in paths:
        report = grading.validate(path)
        problems += len(report.problems)
        written = (f" ({len(report.written)} written answers, {sum(report.written.values()):g} points, "
                   "graded by the instructor: not checked)") if report.written else ""
        print(f"{Path(path).name}: " + ("ok" if not report.problems else "; ".join(report.problems)) + written)
    return 1 if problems else 0


COMMANDS = [_add_doctor, _add_prefetch, _add_warm, _add_clean_cache, _add_workspace, _add_student, _add_grade,
            _add_validate]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m coursekit", description=DESCRIPTION, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"coursekit {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in COMMANDS:
        add(commands)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:         # a mistake the user can fix (HomeworkError & co): no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
