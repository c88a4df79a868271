"""Shared fixtures: headless plotting, an isolated cache, and tiny data sets made on the fly."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

# the reliability suite's summary hooks must load in xdist's controller too
from reliability.conftest import pytest_configure, pytest_terminal_summary  # noqa: E402,F401


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker():
    """`make test` runs two pytest workers on two cores: more torch threads would only fight."""
    import torch
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A private cache directory, so tests never touch data/cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSEKIT_CACHE", str(cache))
    return cache


def make_image_folder(root, classes=("cat", "dog"), per_class=3, size=32, seed=0):
    """root/<class>/<i>.png with random pixels, each class with its own mean colour."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.full((size, size, 3), 40 + 50 * c, dtype=np.int16)
            pixels = np.clip(base + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch, isolated_cache):
    """A CIFAR-10-shaped ImageFolder (10 classes, a few 32x32 images each) as the only data root."""
    from coursekit.data import CIFAR10_CLASSES
    root = tmp_path / "data"
    make_image_folder(root / "cifar10" / "train", CIFAR10_CLASSES, per_class=6)
    make_image_folder(root / "cifar10" / "test", CIFAR10_CLASSES, per_class=2, seed=1)
    monkeypatch.setenv("COURSEKIT_DATA", str(root))
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    return root
