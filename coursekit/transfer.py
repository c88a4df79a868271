"""Transfer learning: copy the first n layers from one network into another, freeze or fine-tune
them (with a smaller learning rate for the copied layers), and the few-label learning curves of
training from scratch vs fixed features vs fine-tuning.

Layers are addressed by name (conv1 ... fc8 on both backbones, or any dotted torch name), in
forward order. The A/B experiment of Yosinski et al. (2014) built on this is ab.py.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn

from . import data as _data
from . import hooks as _hooks
from . import models as _models
from . import train as _train
from .widgets import Choice, panel_controls, validate

LAYERS = _models.LAYERS  # conv1 ... fc8: L = 8


# ---------------------------------------------------------------- copy, freeze, re-initialize

def check_n(n: int, layers=LAYERS) -> None:
    """Raise ValueError unless `n` (how many of `layers` are copied, Yosinski et al. 2014's n) is a
    whole number from 0 to len(layers)."""
    if not (isinstance(n, int) and 0 <= n <= len(layers)):
        raise ValueError(f"n={n!r} must be a whole number from 0 to {len(layers)} (layers: {', '.join(layers)})")


def copy_layers(source: nn.Module, target: nn.Module, n: int, layers=LAYERS) -> list[str]:
    """Copy the weights of the first n named layers from source into target; returns their names."""
    check_n(n, layers)
    copied = list(layers[:n])
    for name in copied:
        src, dst = _hooks.get_layer(source, name), _hooks.get_layer(target, name)
        for key, value in src.state_dict().items():
            if dst.state_dict()[key].shape != value.shape:
                raise ValueError(f"cannot copy {name}.{key}: shape {tuple(value.shape)} in the source, "
                                 f"{tuple(dst.state_dict()[key].shape)} in the target; copy fewer layers "
                                 f"(n < {layers.index(name) + 1}) or build the target with the same widths")
        dst.load_state_dict(src.state_dict())
    return copied


def set_trainable(model: nn.Module, names, trainable: bool) -> None:
    """Freeze (trainable=False) or unfreeze the parameters of the named layers."""
    for name in names:
        for param in _hooks.get_layer(model, name).parameters():
            param.requires_grad_(trainable)


def reinitialize(model: nn.Module, names) -> None:
    """Fresh random weights for the named layers, with the course's initialization (He et al.
    2015, zero biases, the last of them small: models.init_weights). PyTorch's own
    reset_parameters() would leave an eight-layer net without batch norm barely able to learn."""
    layers = [_hooks.get_layer(model, name) for name in names]
    _models.init_weights(nn.ModuleList(layers))


def transfer(source: nn.Module, target: nn.Module, n: int, fine_tune: bool = False, layers=LAYERS) -> dict:
    """Make `target` a transfer network: the first n layers copied from `source` (frozen, or
    trainable when fine_tune), the rest re-initialized and trainable. Returns {layer: role}."""
    copied = copy_layers(source, target, n, layers)
    rest = list(layers[n:])
    reinitialize(target, rest)
    set_trainable(target, copied, fine_tune)
    set_trainable(target, rest, True)
    role = "copied, fine-tuned" if fine_tune else "copied, frozen"
    return {name: role if i < n else "new, trained" for i, name in enumerate(layers)}


def trainable_layers(model: nn.Module, layers=LAYERS) -> list[str]:
    """The names among `layers` (MiniAlexNet's conv1 ... fc8 by default) with at least one parameter
    that requires a gradient: what an optimizer would still train after `transfer`. Raises what
    `hooks.get_layer` raises for a name the model lacks."""
    return [name for name in layers if any(p.requires_grad for p in _hooks.get_layer(model, name).parameters())]


# ---------------------------------------------------------------- discriminative learning rates

def param_groups(model: nn.Module, transferred, lr: float, transferred_lr: float) -> list[dict]:
    """SGD parameter groups (for train.fit's param_groups): transferred layers learn at
    `transferred_lr` (smaller: they are already good), everything else at `lr`. Frozen parameters
    are left out."""
    moved = {id(p) for name in transferred for p in _hooks.get_layer(model, name).parameters()}
    slow = [p for p in model.parameters() if p.requires_grad and id(p) in moved]
    fast = [p for p in model.parameters() if p.requires_grad and id(p) not in moved]
    groups = [{"params": slow, "lr": transferred_lr}, {"params": fast, "lr": lr}]
    return [g for g in groups if g["params"]]


# ---------------------------------------------------------------- few labels: learning curves

def from_scratch(source: nn.Module, model: nn.Module) -> tuple[str, ...]:
    """Nothing from source: every layer of `model` re-initialized and trained. Returns the
    transferred layers (none)."""
    transfer(source, model, 0)
    return ()


def fixed_features(source: nn.Module, model: nn.Module) -> tuple[str, ...]:
    """source's conv1 ... fc7 copied and frozen; only the new fc8 learns. Returns conv1 ... fc7."""
    transfer(source, model, len(LAYERS) - 1)
    return LAYERS[:-1]


def fine_tuned(source: nn.Module, model: nn.Module) -> tuple[str, ...]:
    """source's conv1 ... fc7 copied and trained on (at the smaller transferred_lr), a new fc8.
    Returns conv1 ... fc7."""
    transfer(source, model, len(LAYERS) - 1, fine_tune=True)
    return LAYERS[:-1]


STARTS = {"scratch": from_scratch, "fixed features": fixed_features, "fine-tune": fine_tuned}
METHODS = tuple(STARTS)


def train_method(method: str, source: nn.Module, train_set: _data.ImageSet, make_model, epochs: int,
                 lr: float, transferred_lr: float, batch_size: int = 32, seed: int = 0) -> nn.Module:
    """A network for train_set's classes, started as STARTS[method] says (from scratch, fixed
    features or fine-tuned), then trained by train.fit, the transferred layers at the smaller
    transferred_lr, with torch's cosine one-cycle, the recipe these curves were made with (fit's
    linear one-cycle lets scratch catch up at a few labels: 5 labels per class, seeds 0-4,
    transfer's mean lead over scratch 0.03 instead of 0.06)."""
    if method not in STARTS:
        raise ValueError(f"method={method!r}: use one of {METHODS}")
    torch.manual_seed(seed)
    model = make_model(len(train_set.classes))
    transferred = STARTS[method](source, model)
    groups = param_groups(model, transferred, lr, transferred_lr)
    _train.fit(model, train_set, epochs=epochs, batch_size=batch_size, lr=lr, param_groups=groups,
               schedule="onecycle-cosine", seed=seed, progress=False)
    return model


def learning_curve(source: nn.Module, make_model, pool: _data.ImageSet, test_set: _data.ImageSet,
                   labels_per_class, seeds, steps: int, lr: float = 0.02, transferred_lr: float = 0.002,
                   methods=METHODS, batch_size: int = 32, progress: bool = True):
    """Test top-1 of each method for each number of labels per class (drawn from `pool`), with
    the same number of SGD steps whatever the data size. A tidy table: method, labels, seed, top1."""
    import pandas as pd
    from tqdm.auto import tqdm
    _data.check_same_classes(pool.classes, test_set.classes, "test_set")
    jobs = [(count, seed, method) for count in labels_per_class for seed in seeds for method in methods]
    rows = []
    for count, seed, method in tqdm(jobs, desc="learning curve", disable=not progress):
        train_set = pool.subset(per_class=count, seed=seed)
        epochs = max(1, math.ceil(steps * batch_size / len(train_set)))
        model = train_method(method, source, train_set, make_model, epochs, lr, transferred_lr, batch_size, seed)
        rows.append({"method": method, "labels": count, "seed": seed,
                     "top1": _train.evaluate(model, test_set)["top1"]})
    return pd.DataFrame(rows)


def plot_learning_curves(results, ax=None, highlight: tuple | None = None):
    """Top-1 against labels per class (log scale), one line per method, every run as a dot."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = dict(zip(METHODS, ("tab:red", "tab:blue", "tab:orange")))
    for method, part in results.groupby("method", sort=False):
        mean = part.groupby("labels").top1.mean()
        ax.plot(mean.index, mean.values, "o-", color=colors.get(method), label=method, lw=2)
        ax.scatter(part.labels, part.top1, s=10, color=colors.get(method), alpha=0.5)
    if highlight is not None:
        ax.scatter([highlight[0]], [highlight[1]], s=200, facecolors="none", edgecolors="k", lw=2, zorder=5)
    ax.set_xscale("log")
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("top-1 on the new task")
    ax.legend(fontsize=10)
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def learning_controls(results) -> list:
    """The learning-curve panel's controls: only the label counts that were actually run, so every
    move of the control shows a different measurement."""
    counts = sorted(int(c) for c in set(results.labels))
    return [Choice("labels", counts, counts[len(counts) // 2], "labels per class"),
            Choice("method", list(METHODS), "fine-tune")]


LEARNING_PANEL = [Choice("labels", [5, 20, 100, 500], 20, "labels per class"),
                  Choice("method", list(METHODS), "fine-tune")]  # the controls for the default counts


@panel_controls(learning_controls)
def learning_panel(results, labels: int = 20, method: str = "fine-tune"):
    """The learning curves with one (method, labels) point picked out and compared with scratch."""
    validate(learning_controls(results), labels=labels, method=method)
    mean = results.groupby(["method", "labels"]).top1.mean()
    fig = plot_learning_curves(results, highlight=(labels, mean[(method, labels)]))
    gain = mean[(method, labels)] - mean.get(("scratch", labels), np.nan)
    fig.axes[0].set_title(f"{method} with {labels} labels/class: {mean[(method, labels)]:.1%} "
                          f"({gain:+.1%} vs scratch)", fontsize=10)
    return fig


# ---------------------------------------------------------------- new settings: more classes

class ExtendedHead(nn.Module):
    """A classification layer for the old classes plus new ones: (N, D) features in, (N, K + k)
    scores out, the K old rows first. The old rows are a copy of the source's own fc8 (kept frozen
    when keep_old, else trained on); the k new rows start small, like models.init_weights' last
    layer (N(0, 0.01) weights, zero biases)."""

    def __init__(self, old: nn.Linear, new_classes: int, keep_old: bool = False):
        super().__init__()
        if not isinstance(old, nn.Linear) or not (isinstance(new_classes, int) and new_classes >= 1):
            raise ValueError(f"ExtendedHead needs the source's fc8 as an nn.Linear and new_classes >= 1, got "
                             f"{type(old).__name__} and {new_classes!r}")
        self.old = nn.Linear(old.in_features, old.out_features).to(old.weight.device)
        self.old.load_state_dict(old.state_dict())
        self.old.requires_grad_(not keep_old)
        self.new = nn.Linear(old.in_features, new_classes).to(old.weight.device)
        nn.init.normal_(self.new.weight, std=0.01)
        nn.init.zeros_(self.new.bias)

    def forward(self, x):
        return torch.cat([self.old(x), self.new(x)], dim=1)


def _joint(old: _data.ImageSet, new: _data.ImageSet) -> _data.ImageSet:
    """Old and new sets in one label space: old labels 0..K-1, new ones K..K+k-1."""
    return _data.ImageSet(torch.cat([old.images, new.images]), torch.cat([old.labels, new.labels + len(old.classes)]),
                          [*old.classes, *new.classes])


def more_classes(fc8: nn.Linear, old_memory: _data.ImageSet, new_train: _data.ImageSet,
                 old_test: _data.ImageSet, new_test: _data.ImageSet, keep_old: bool, rehearsal: bool,
                 steps: int, lr: float = 0.02, batch_size: int = 32, seed: int = 0) -> dict:
    """Extend a K-class network to K + k classes on its frozen penultimate features (fc8's input).

    fc8: the source's classification layer (K outputs). Every set holds (N, D) features with the
    labels of its own classes (0..K-1 for the old sets, 0..k-1 for the new): old_memory are old
    training images, used only when `rehearsal` (training on old and new images together; without
    them, plain fine-tuning on the new classes, where McCloskey & Cohen 1989 found catastrophic
    forgetting). keep_old: the old rows frozen (else trained too). Trained by train.fit for about
    `steps` SGD steps (cosine one-cycle). Returns test top-1 over all K + k outputs on the old and
    the new classes ('old', 'new'), and top-1 among the old outputs only on the old classes
    ('old among old': what the old rows still know, whatever the new rows claim).
    """
    if fc8.out_features != len(old_test.classes):
        raise ValueError(f"fc8 scores {fc8.out_features} classes but old_test has {len(old_test.classes)}; "
                         f"pass the source's own classification layer and its classes' test set")
    torch.manual_seed(seed)
    head = ExtendedHead(fc8, len(new_train.classes), keep_old)
    empty = _data.ImageSet(old_memory.images[:0], old_memory.labels[:0], old_memory.classes)
    train_set = _joint(old_memory if rehearsal else empty, new_train)
    _train.fit(head, train_set, epochs=max(1, math.ceil(steps * batch_size / len(train_set))),
               batch_size=batch_size, lr=lr, schedule="onecycle-cosine", augment=False, seed=seed,
               progress=False, device=fc8.weight.device)
    old_scores = _train.predict(head, old_test.images)
    new_scores = _train.predict(head, new_test.images)
    K = len(old_test.classes)
    return {"old": (old_scores.argmax(1) == old_test.labels).float().mean().item(),
            "new": (new_scores.argmax(1) == new_test.labels + K).float().mean().item(),
            "old among old": (old_scores[:, :K].argmax(1) == old_test.labels).float().mean().item()}


MORE_CLASSES = {"old rows kept, new images only": (True, False),
                "old rows fine-tuned, new images only": (False, False),
                "old rows kept, rehearsal": (True, True),
                "old rows fine-tuned, rehearsal": (False, True)}  # condition: (keep_old, rehearsal)


def more_classes_runs(fc8: nn.Linear, old_pool: _data.ImageSet, new_pool: _data.ImageSet,
                      old_test: _data.ImageSet, new_test: _data.ImageSet, per_class: int, seeds,
                      steps: int, lr: float = 0.02):
    """more_classes for every condition of MORE_CLASSES and seed: per_class new labels (and, for
    rehearsal, per_class old images) per class, drawn from the pools with the seed, so conditions
    are paired by seed. A tidy table: condition, seed, old, new, old among old."""
    import pandas as pd
    rows = []
    for seed in seeds:
        new_train, memory = new_pool.subset(per_class=per_class, seed=seed), old_pool.subset(per_class=per_class, seed=seed)
        for condition, (keep_old, rehearsal) in MORE_CLASSES.items():
            scores = more_classes(fc8, memory, new_train, old_test, new_test, keep_old, rehearsal, steps, lr, seed=seed)
            rows.append({"condition": condition, "seed": seed, **scores})
    return pd.DataFrame(rows)


def plot_more_classes(results, source_old: float, ax=None):
    """Old-class, old-among-old and new-class top-1 for each condition (mean as a bar, each seed as a
    dot), with the source's own old-class top-1 as a dashed line."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4))
    measures = [("old", "old classes (all outputs)", "tab:blue"),
                ("old among old", "old classes (old outputs only)", "tab:cyan"),
                ("new", "new classes (all outputs)", "tab:orange")]
    conditions = list(dict.fromkeys(results.condition))
    width = 0.8 / len(measures)
    for j, (column, label, color) in enumerate(measures):
        for i, condition in enumerate(conditions):
            values = results[results.condition == condition][column]
            x = i + (j - 1) * width
            ax.bar(x, values.mean(), width, color=color, label=label if i == 0 else None)
            ax.scatter(np.full(len(values), x), values, s=10, color="k", zorder=3)
    ax.axhline(source_old, ls="--", color="k", lw=1, label="the source on its own classes")
    ax.set_xticks(range(len(conditions)))
    ax.set_xticklabels([c.replace(", ", ",\n") for c in conditions], fontsize=10)
    ax.set_ylabel("held-out top-1")
    ax.legend(fontsize=10, loc="upper left", bbox_to_anchor=(1, 1))
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


# ---------------------------------------------------------------- new settings: a new task

def regroup(dataset: _data.ImageSet, groups: dict) -> _data.ImageSet:
    """The same images under coarser labels: groups maps each new class name to the old class names
    it covers (e.g. {"animal": [...], "vehicle": [...]}); every class of `dataset` must be in exactly
    one group (ValueError naming the others)."""
    owner = {name: g for g, names in enumerate(groups.values()) for name in names}
    missing = [name for name in dataset.classes if name not in owner]
    repeated = sorted({n for names in groups.values() for n in names
                       if sum(n in other for other in groups.values()) > 1})
    if missing or repeated:
        raise ValueError(f"every class needs exactly one group: without a group {missing}, in several {repeated}")
    remap = torch.tensor([owner[name] for name in dataset.classes])
    return _data.ImageSet(dataset.images, remap[dataset.labels], list(groups))
