"""Figures for the notebooks: each function returns its matplotlib Figure (and shows nothing itself).

Rules for every coursekit figure (tests/test_plot_widgets.py checks them): no text below 10 pt, so
labels stay readable on a projector; colour maps that are perceptually uniform and colour-blind
safe: `inferno` for heat over images (dark = low, bright = high, so the photo shows through where
nothing happens and the lightness alone carries the value, in greyscale too), `viridis` for
activation maps; never `jet` or `rainbow`, whose bright bands invent edges that are not in the data.
"""
from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch


def to_image(x) -> np.ndarray:
    """A (3, H, W) or (H, W, 3) tensor/array, uint8 or float in [0, 1], as an (H, W, 3) float array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu()
        x = x / 255 if x.max() > 1.5 else x
        x = x.numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(1, 2, 0)
    if x.max(initial=0) > 1.5:
        x = x / 255
    return np.clip(x.squeeze(-1) if x.shape[-1] == 1 else x, 0, 1)


def rescale(x: torch.Tensor) -> torch.Tensor:
    """Stretch to [0, 1] (for filters, perturbations and other signed images)."""
    x = x.detach().float()
    return (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)


def _grid(n: int, ncols: int | None, size: float):
    ncols = ncols or min(n, 8)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def image_grid(images, titles=None, ncols: int | None = None, size: float = 1.6, suptitle: str = "",
               cmap: str | None = None):
    """Images (a batch tensor or a list) in a grid, each with an optional title."""
    images = list(images)
    fig, axes = _grid(len(images), ncols, size)
    for i, (ax, img) in enumerate(zip(axes, images)):
        ax.imshow(to_image(img), cmap=cmap, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def filter_grid(weight: torch.Tensor, ncols: int = 16, size: float = 0.6, suptitle: str = "conv1 filters",
                titles=None):
    """First-layer kernels (out, 3, k, k) as small colour images, each stretched to [0, 1], each with
    an optional title (one per kernel)."""
    if weight.dim() != 4 or weight.shape[1] not in (1, 3):
        raise ValueError(f"expected first-layer weights (out, 3, k, k), got {tuple(weight.shape)}")
    return image_grid([rescale(w) for w in weight], titles=titles, ncols=ncols, size=size, suptitle=suptitle)


def activation_maps(act: torch.Tensor, n: int = 32, ncols: int = 8, size: float = 1.2, suptitle: str = ""):
    """The first `n` channels of one activation (C, H, W) as grey heat maps."""
    if act.dim() == 4:
        act = act[0]
    if act.dim() != 3:
        raise ValueError(f"expected an activation (C, H, W), got {tuple(act.shape)}")
    maps = act[:n].detach().float().cpu()
    fig, axes = _grid(len(maps), ncols, size)
    for c, (ax, m) in enumerate(zip(axes, maps)):
        ax.imshow(m.numpy(), cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def heatmap(image, heat, title: str = "", alpha: float = 0.5, cmap: str = "inferno"):
    """A heat map (H', W') stretched over an image (H, W), beside the image itself.

    `cmap` defaults to 'inferno' (perceptually uniform, colour-blind safe); `alpha` is the heat
    map's opacity in [0, 1]."""
    img = to_image(image)
    heat = heat.detach().float().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat)
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3))
    a.imshow(img)
    b.imshow(img)
    b.imshow(heat, cmap=cmap, alpha=alpha, extent=(0, img.shape[1], img.shape[0], 0))
    for ax in (a, b):
        ax.axis("off")
    b.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def curves(history, title: str = "", keys=None):
    """Loss and accuracy per epoch from a train.History (or anything indexable by column name)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = history["epoch"]
    left.plot(epochs, history["loss"], "o-", label="train loss")
    if any(v is not None for v in history["test_loss"]):
        left.plot(epochs, history["test_loss"], "o-", label="test loss")
    for key in keys or ["train_top1", "test_top1", "test_top5"]:
        values = history[key]
        if any(v is not None for v in values):
            right.plot(epochs, values, "o-", label=key.replace("_", " "))
    left.set_xlabel("epoch"); right.set_xlabel("epoch")
    right.set_ylabel("accuracy"); right.set_ylim(0, 1)
    left.legend(); right.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(labels, predictions, classes, normalize: bool = True, title: str = "confusion matrix"):
    """Rows: true class; columns: predicted class (seaborn heat map)."""
    import seaborn as sns
    labels = torch.as_tensor(labels).long()
    predictions = torch.as_tensor(predictions).long()
    k = len(classes)
    counts = torch.bincount(labels * k + predictions, minlength=k * k).view(k, k).float()
    matrix = counts / counts.sum(1, keepdim=True).clamp_min(1) if normalize else counts
    # up to 30 classes: a labelled cell per pair; more (ImageNet's 1000): a fixed-size map without labels
    labelled = k <= 30
    fig, ax = plt.subplots(figsize=(0.55 * k + 2, 0.5 * k + 1.5) if labelled else (8, 7))
    sns.heatmap(matrix.numpy(), annot=k <= 12, fmt=".2f" if normalize else ".0f", cmap="Blues",
                xticklabels=classes if labelled else False, yticklabels=classes if labelled else False,
                ax=ax, cbar=False)
    ax.set_xlabel("predicted"); ax.set_ylabel("true"); ax.set_title(title)
    fig.tight_layout()
    return fig


def topk_bars(predictions, title: str = "", ax=None):
    """Horizontal bars for a list of (class name, probability), highest on top."""
    names = [n for n, _ in predictions][::-1]
    probs = [p for _, p in predictions][::-1]
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 0.35 * len(names) + 0.8))
    ax.barh(names, probs, color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title, fontsize=10)
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def predictions_panel(images, predictions, ncols: int = 4, size: float = 2.2):
    """Each image above its top-k bar chart."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(size * 1.5 * ncols, size * 2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (img, preds) in enumerate(zip(images, predictions)):
        r, c = 2 * (i // ncols), i % ncols
        axes[r, c].imshow(to_image(img))
        axes[r + 1, c].axis("on")
        topk_bars(preds, ax=axes[r + 1, c])
    fig.tight_layout()
    return fig


def class_examples(dataset, class_name: str, count: int = 8, ncols: int = 8):
    """The first `count` images of one class of an ImageSet."""
    if class_name not in dataset.classes:
        raise ValueError(f"unknown class {class_name!r}; choose one of {dataset.classes}")
    if not 1 <= count <= 64:
        raise ValueError(f"count must be between 1 and 64, not {count}")
    index = torch.nonzero(dataset.labels == dataset.classes.index(class_name)).flatten()[:count]
    return image_grid(dataset.images[index], ncols=min(ncols, count), suptitle=class_name)


def message(text: str, size: tuple[float, float] = (6, 1.6)):
    """A figure holding only `text`: what a panel draws when the values picked have nothing to show,
    so the student reads why inside the panel (an exception in a widget callback never reaches the cell)."""
    fig = plt.figure(figsize=size)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True)
    return fig


def use_headless() -> None:
    """Agg backend for scripts and tests (notebooks keep the inline backend)."""
    matplotlib.use("Agg")
