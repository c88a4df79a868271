"""One frozen record of how the course runs, read from the environment.

COURSEKIT_QUICK=1       quick mode: smaller images, epochs and steps (CI uses it)
COURSEKIT_DATA=a:b      read-only data roots, searched in order (default: below)
COURSEKIT_CACHE=dir     writable cache for decoded data and trained models (default: below)
COURSEKIT_DEVICE=cpu    force a device (default: cuda, then mps, then cpu)
COURSEKIT_OFFLINE=1     never try to download (default: probe when a download is needed)
COURSEKIT_SEED=0        the seed every notebook starts from
COURSEKIT_BACKBONE=auto imagenet, cifar10 or auto
COURSEKIT_NULL=         a null run, the world a paper check must fail in: `untrained` (every network
                        the course hands out as trained, backbone and source networks, keeps its
                        initial weights) or `shuffled-labels` (the same, and CIFAR-10's training
                        labels are permuted, so what a notebook trains itself learns no classes).
                        Its results cache apart, in <cache>/null-<kind>, never in the real cache
                        (it may read the real run's copy of what the null cannot change).

Defaults for data and cache: data/ and data/cache in a source checkout (git clone, `pip install -e`);
per-user directories when coursekit is installed as a package (`python -m coursekit doctor` shows
which), never site-packages, which may be read-only or shared by every user of a JupyterHub.
"""
from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def from_checkout() -> bool:
    """True when coursekit runs from a source checkout: pyproject.toml beside the coursekit/ folder.

    An installed package sits in site-packages, where no pyproject.toml is."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "coursekit").is_dir()


def default_dirs() -> tuple[Path, Path]:
    """(data root, cache dir) used when COURSEKIT_DATA / COURSEKIT_CACHE are unset.

    A checkout keeps data/ and data/cache (CI and make rely on them); an installed package uses
    the per-user data and cache directories of the platform (e.g. ~/.local/share/coursekit and
    ~/.cache/coursekit on Linux), so every user of a shared install has a writable cache.
    """
    if from_checkout():
        return PROJECT_ROOT / "data", PROJECT_ROOT / "data" / "cache"
    import platformdirs
    return (Path(platformdirs.user_data_dir("coursekit", appauthor=False)),
            Path(platformdirs.user_cache_dir("coursekit", appauthor=False)))


@dataclass(frozen=True)
class Settings:
    """The course's configuration, read from the COURSEKIT_* environment variables by `load`."""
    quick: bool
    data_roots: tuple[Path, ...]
    cache_dir: Path
    device: torch.device
    offline: bool
    seed: int
    backbone: str
    null: str = ""

    def pick(self, quick, full):
        """The quick-mode value in quick mode, else the full one: sizes only, never code paths."""
        return quick if self.quick else full

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


NULLS = ("", "untrained", "shuffled-labels")  # COURSEKIT_NULL's values; "" is the real run


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def default_device() -> torch.device:
    """CUDA when a GPU is there, else Apple's MPS, else the CPU (COURSEKIT_DEVICE overrides it)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _device(value: str | None) -> torch.device:
    if not value:
        return default_device()
    try:
        device = torch.device(value)
    except RuntimeError as err:
        raise ValueError(f"COURSEKIT_DEVICE={value!r} is not a device; use cpu, cuda, cuda:1 or mps") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"COURSEKIT_DEVICE={value!r} but this machine has no CUDA GPU; unset it or use cpu")
    return device


def _paths(value: str | None, default: Path) -> tuple[Path, ...]:
    if not value:
        return (default,)
    return tuple(Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip())


def load() -> Settings:
    """Read the settings from the environment (cheap; call again after changing os.environ)."""
    seed_text = os.environ.get("COURSEKIT_SEED", "0")
    if not seed_text.isdigit():
        raise ValueError(f"COURSEKIT_SEED={seed_text!r} must be a non-negative whole number")
    backbone = os.environ.get("COURSEKIT_BACKBONE", "auto").strip() or "auto"
    if backbone not in {"auto", "imagenet", "cifar10"}:
        raise ValueError(f"COURSEKIT_BACKBONE={backbone!r}: use auto, imagenet or cifar10")
    null = os.environ.get("COURSEKIT_NULL", "").strip()
    if null not in NULLS:
        raise ValueError(f"COURSEKIT_NULL={null!r}: use {', '.join(repr(n) for n in NULLS)}")
    cache = os.environ.get("COURSEKIT_CACHE")
    default_data, default_cache = default_dirs()
    cache_dir = Path(cache).expanduser().resolve() if cache else default_cache
    return Settings(
        quick=_flag("COURSEKIT_QUICK"),
        data_roots=_paths(os.environ.get("COURSEKIT_DATA"), default_data),
        cache_dir=cache_dir / f"null-{null}" if null else cache_dir,
        device=_device(os.environ.get("COURSEKIT_DEVICE")),
        offline=_flag("COURSEKIT_OFFLINE"),
        seed=int(seed_text),
        backbone=backbone,
        null=null,
    )


def current(cfg: Settings | None = None) -> Settings:
    """The settings library code runs with: `cfg` when the caller gives one, else the environment's.

    The one accessor every call site uses. The environment is read again only when a variable it
    depends on changed (COURSEKIT_*, and XDG_* / HOME for the per-user default directories), so a
    test or notebook that sets os.environ between calls is seen at once, and a loop that calls
    this each step does not re-read it. TypeError if `cfg` is not a Settings."""
    if cfg is not None:
        if not isinstance(cfg, Settings):
            raise TypeError(f"cfg must be a coursekit.settings.Settings (settings.current() or "
                            f"dataclasses.replace of one), not {type(cfg).__name__}")
        return cfg
    return _load_for(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_READ))))


_READ = ("COURSEKIT_", "XDG_", "HOME")  # the variables load() depends on


@functools.lru_cache(maxsize=16)
def _load_for(environment: tuple) -> Settings:
    return load()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators with `seed`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
