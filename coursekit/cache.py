"""One disk cache for everything the course builds once and reuses: trained networks, A/B results,
extracted features, decoded image folders.

`cached(path, build, ...)` is the whole mechanism: a key names the file (the caller puts
`config_key(recipe)` or a content fingerprint into `path`), a file lock lets one process build
while the others wait, a file that is missing, damaged or made by another recipe is rebuilt, and
every write is atomic, so no reader (another notebook, a test worker) ever sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch


def config_key(config) -> str:
    """A short stable hash (10 hex digits) of a JSON-able configuration, for cache file names."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private (0600): give a shared cache normal rights
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_load(path: Path):
    """torch.load onto the CPU, or None when the file is missing, truncated or not a torch file
    (the last two with a warning naming the file)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    except Exception as err:  # truncated zip, pickle error, ...: rebuild rather than use garbage
        warnings.warn(f"ignoring unreadable cache file {path} ({type(err).__name__}); it will be rebuilt")
        return None


def cached(path: Path, build: Callable[[], Any], recipe=None,
           valid: Callable[[Any], bool] | None = None) -> tuple[Any, bool]:
    """What `build()` makes, loaded from `path` when the file there matches, else built now and saved.

    Matching: by default the file is the dict {"recipe": recipe, **build()} and matches when its
    recipe equals `recipe`. Files kept in another layout (a bare tensor, a dict carrying its own
    key) pass `valid(loaded) -> bool` instead and are saved exactly as build() returns them.

    A file lock (`path` + ".lock") is held from the first look to the save, so concurrent callers
    wait for the one that builds, then load its file. Temporary files left by a writer that was
    killed are removed before building. Returns (object, built_now). Tensors in the object are on
    the CPU (files load with map_location="cpu"; `build` must return CPU tensors too): callers that
    make a model from it move that model to the configured device (settings.device).
    """
    from filelock import FileLock
    matches = valid if valid is not None else (
        lambda stored: isinstance(stored, dict) and stored.get("recipe") == recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        stored = safe_load(path)
        if matches(stored):
            return stored, False
        for stale in path.parent.glob(path.name + ".*.tmp"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        made = build()
        stored = made if valid is not None else {"recipe": recipe, **made}
        atomic_save(stored, path)
    return stored, True


def real_run_copy(path: Path, recipe, cfg) -> Any | None:
    """The real run's file for the null run's cache file `path` (one `cached` wrote there with this
    `recipe`), or None when it is missing or holds another recipe. Only for a result the null cannot
    change: the untrained null leaves a network the notebook trains itself, from the data alone,
    exactly as in the real run, and recomputing it costs the null run minutes for the same numbers.
    Read only: a null run never writes into the real cache."""
    if not cfg.null:
        return None
    real = cfg.cache_dir.parent / path.relative_to(cfg.cache_dir)  # cache_dir is <cache>/null-<kind>
    stored = safe_load(real) if real.exists() else None
    return stored if isinstance(stored, dict) and stored.get("recipe") == recipe else None


def remember(name: str, key, build: Callable[[], Any], cfg=None) -> Any:
    """An experiment's numbers, computed once per `key` and kept in the course cache: reopening a
    notebook (or the next run of it) loads them in seconds instead of training again.

    name: a file-name prefix (e.g. "02-cnn-on-own-images"). key: JSON-able, and it must hold
    everything the result depends on: each data set's `data.dataset_hash`, sizes, seeds,
    hyper-parameters, a network's `features.fingerprint`, the source of a notebook function
    (`inspect.getsource`); change any of them and it is computed again. `build()` returns plain
    Python values or CPU tensors (records, not a DataFrame). Stored at
    <cache>/results/<name>-<config_key(key)>.pt; a null run's cache is apart from the real one.
    """
    from . import settings as _settings
    path = _settings.current(cfg).cache_dir / "results" / f"{name}-{config_key(key)}.pt"
    stored, _ = cached(path, lambda: {"result": build()}, recipe=key)
    return stored["result"]
