"""Transfer learning: copy the first n layers from one network into another, freeze or fine-tune
them, and the A/B experiment of Yosinski, Clune, Bengio and Lipson, "How transferable are
features in deep neural networks?" (NIPS 2014).

Layers are addressed by name (conv1 ... fc8 on both backbones, or any dotted torch name), in
forward order. In the paper's notation, AnB = a network whose first n layers are copied from
base network A and frozen, the rest re-initialized and trained on task B; AnB+ = the same with
the copied layers fine-tuned; BnB / BnB+ copy from base network B itself (the control).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as _data
from . import hooks as _hooks
from . import models as _models
from . import settings as _settings
from . import train as _train
from .widgets import Choice, Slider, validate

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")  # L = 8
CONFIGS = ("baseA", "baseB", "BnB", "BnB+", "AnB", "AnB+")


# ---------------------------------------------------------------- copy, freeze, re-initialize

def check_n(n: int, layers=LAYERS) -> None:
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
    return [name for name in layers if any(p.requires_grad for p in _hooks.get_layer(model, name).parameters())]


# ---------------------------------------------------------------- discriminative learning rates

def param_groups(model: nn.Module, transferred, lr: float, transferred_lr: float) -> list[dict]:
    """SGD parameter groups: transferred layers learn at `transferred_lr` (smaller: they are already
    good), everything else at `lr`. Frozen parameters are left out."""
    moved = {id(p) for name in transferred for p in _hooks.get_layer(model, name).parameters()}
    slow = [p for p in model.parameters() if p.requires_grad and id(p) in moved]
    fast = [p for p in model.parameters() if p.requires_grad and id(p) not in moved]
    groups = [{"params": slow, "lr": transferred_lr}, {"params": fast, "lr": lr}]
    return [g for g in groups if g["params"]]


def fit_groups(model: nn.Module, train_set: _data.ImageSet, groups: list[dict], epochs: int,
               batch_size: int = 64, momentum: float = 0.9, weight_decay: float = 5e-4,
               augment: bool = True, seed: int = 0, device=None) -> nn.Module:
    """SGD with one learning rate per parameter group (one-cycle schedule scaled per group).

    train.fit takes a single lr; this short loop is the same recipe with groups."""
    device = torch.device(device) if device is not None else _settings.load().device
    model.to(device).train()
    optimizer = torch.optim.SGD(groups, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    steps = math.ceil(len(train_set) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups],
                                                    epochs=epochs, steps_per_epoch=steps, pct_start=0.25)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    images, labels = train_set.images.to(device), train_set.labels.to(device)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator).to(device)
        for i in range(0, len(order), batch_size):
            x = _data.to_float(images[order[i:i + batch_size]])
            x = _data.augment(x, generator=generator) if augment else x
            loss = F.cross_entropy(model(x), labels[order[i:i + batch_size]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


# ---------------------------------------------------------------- tasks: two halves of CIFAR-10

VEHICLES = ("airplane", "automobile", "ship", "truck")
ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")


@dataclass(frozen=True)
class Split:
    """Task A and task B as two disjoint lists of class names."""
    name: str
    a: tuple
    b: tuple


def random_split(classes=_data.CIFAR10_CLASSES, seed: int = 0, name: str = "random") -> Split:
    """A random half of the classes as task A, the other half as task B (the paper's A/B split)."""
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(classes) // 2
    return Split(name, tuple(sorted(classes[i] for i in order[:half])),
                 tuple(sorted(classes[i] for i in order[half:])))


def cifar_splits(seed: int = 0) -> dict[str, Split]:
    """'random': 5 vs 5 classes; 'dissimilar': natural vs man-made. CIFAR-10 has 6 animal classes
    and 4 vehicle ones, so A = animals (6) and B = vehicles (4), unequal halves like the paper's
    551 natural vs 449 man-made ImageNet classes. (B = animals would leave baseB near chance at
    quick-mode sizes: six look-alike animals from 200 images each.)"""
    return {"random": random_split(seed=seed), "dissimilar": Split("dissimilar", ANIMALS, VEHICLES)}


def select_classes(dataset: _data.ImageSet, names) -> _data.ImageSet:
    """The images of the named classes, relabelled 0..len(names)-1 in the given order."""
    unknown = [n for n in names if n not in dataset.classes]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; this data set has {dataset.classes}")
    index = [dataset.classes.index(n) for n in names]
    keep = torch.isin(dataset.labels, torch.tensor(index))
    remap = torch.full((len(dataset.classes),), -1, dtype=torch.int64)
    remap[index] = torch.arange(len(index))
    return _data.ImageSet(dataset.images[keep], remap[dataset.labels[keep]], list(names))


# ---------------------------------------------------------------- the A/B experiment

def _train_new(model, train_set, seed, train_kwargs):
    _train.fit(model, train_set, None, seed=seed, progress=False, **train_kwargs)
    return model


def run_ab(tasks: dict, make_model, n_values, seeds, train_kwargs: dict, split: str = "",
           progress: bool = True):
    """Yosinski et al.'s experiment. tasks = {"A": (train, test), "B": (train, test)};
    make_model(num_classes) builds a fresh network with layers named as in LAYERS.

    Returns a tidy pandas table: one row per (config, n, seed) with test top-1 on the config's
    own task (baseA on A, everything else on B). Base networks appear with n = 0.
    """
    import pandas as pd
    from tqdm.auto import tqdm
    n_values = list(n_values)
    for n in n_values:
        check_n(n, LAYERS[:-1])
    bar = tqdm(total=len(seeds) * (2 + 4 * len(n_values)), desc=f"A/B {split}".strip(), disable=not progress)
    rows = []
    for seed in seeds:
        base = {}
        for side in "AB":
            torch.manual_seed(seed)
            train_set, test_set = tasks[side]
            base[side] = _train_new(make_model(len(train_set.classes)), train_set, seed, train_kwargs)
            rows.append({"split": split, "config": f"base{side}", "n": 0, "seed": seed,
                         "top1": _train.evaluate(base[side], test_set)["top1"]})
            bar.update(1)
        b_train, b_test = tasks["B"]
        for n in n_values:
            for config in ("BnB", "BnB+", "AnB", "AnB+"):
                torch.manual_seed(seed * 1000 + n)
                model = make_model(len(b_train.classes))
                transfer(base[config[0]], model, n, fine_tune=config.endswith("+"))
                _train_new(model, b_train, seed * 1000 + n, train_kwargs)
                rows.append({"split": split, "config": config, "n": n, "seed": seed,
                             "top1": _train.evaluate(model, b_test)["top1"]})
                bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def ab_recipe(cfg=None) -> dict:
    """Sizes of the CIFAR-10 A/B experiment: quick mode shrinks them, the code is the same.
    A narrow MiniAlexNet without LRN (its backward costs 7x on CPUs for about a point) and without
    dropout (in a few epochs it only slows learning). Full mode is sized for about 8 minutes on a
    2-core CPU (120 trainings); the paper's error bars need more seeds, each as costly again."""
    cfg = cfg or _settings.load()
    return {"arch": {"width": 0.125, "lrn": False, "dropout": 0.0},
            "per_class": cfg.pick(quick=200, full=400), "test_per_class": cfg.pick(quick=200, full=1000),
            "epochs": cfg.pick(quick=5, full=8), "batch_size": 32, "lr": 0.03,
            "seeds": [0, 1],
            "n_values": cfg.pick(quick=[1, 4, 7], full=list(range(1, len(LAYERS)))), "version": 3}


def cifar_ab(split: Split, recipe: dict, cfg=None, progress: bool = True):
    """run_ab on two halves of CIFAR-10, cached on disk per (split, recipe, seed): a rerun is
    instant, and adding a seed trains only that seed."""
    import pandas as pd
    cfg = cfg or _settings.load()
    frames = []
    for seed in recipe["seeds"]:
        one = {**recipe, "seeds": [seed]}
        path = cfg.cache_dir / "transfer" / f"ab-{split.name}-{_models.config_key([split.a, split.b, one])}.pt"
        cached = _data.safe_load(path)
        if not (isinstance(cached, dict) and cached.get("recipe") == one):
            cached = {"recipe": one, "rows": _cifar_ab_run(split, one, cfg, progress).to_dict("list")}
            _data.atomic_save(cached, path)
        frames.append(pd.DataFrame(cached["rows"]))
    return pd.concat(frames, ignore_index=True)


def _cifar_ab_run(split: Split, recipe: dict, cfg, progress: bool):
    train_all, test_all = _data.cifar10("train", cfg), _data.cifar10("test", cfg)
    tasks = {side: (select_classes(train_all, names).subset(per_class=recipe["per_class"], seed=0),
                    select_classes(test_all, names).subset(per_class=recipe["test_per_class"], seed=0))
             for side, names in (("A", split.a), ("B", split.b))}
    make_model = lambda k: _models.mini_alexnet(num_classes=k, **recipe["arch"])
    train_kwargs = {k: recipe[k] for k in ("epochs", "batch_size", "lr")}
    return run_ab(tasks, make_model, recipe["n_values"], recipe["seeds"], train_kwargs, split.name, progress)


def summarize(results):
    """Mean top-1 over seeds: one row per (split, config), one column per n."""
    return results.pivot_table(index=["split", "config"], columns="n", values="top1", aggfunc="mean")


def curve(results, config: str, split: str | None = None):
    """Mean top-1 of one config per n (a pandas Series indexed by n)."""
    rows = results[results.config == config]
    if split is not None:
        rows = rows[rows.split == split]
    if rows.empty:
        raise ValueError(f"no rows for config={config!r}, split={split!r}; have "
                         f"{sorted(set(zip(results.split, results.config)))}")
    return rows.groupby("n").top1.mean()


# ---------------------------------------------------------------- figures

STYLE = {"baseA": ("black", "s"), "baseB": ("white", "o"), "BnB": ("tab:blue", "o"),
         "BnB+": ("tab:cyan", "o"), "AnB": ("tab:red", "D"), "AnB+": ("tab:orange", "D")}


def plot_ab(results, split: str, ax=None, highlight: int | None = None):
    """Figure 2 of the paper: every run as a dot, the mean per n as a line, baseB as a band."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    rows = results[results.split == split]
    base = rows[rows.config == "baseB"].top1
    ax.axhspan(base.mean() - base.std(ddof=0), base.mean() + base.std(ddof=0), color="0.85", zorder=0)
    ax.axhline(base.mean(), color="0.4", lw=1, zorder=0, label=f"baseB mean {base.mean():.3f}")
    for config in ("baseB", "BnB", "BnB+", "AnB", "AnB+"):
        color, marker = STYLE[config]
        part = rows[rows.config == config]
        shift = {"BnB": -0.15, "BnB+": -0.05, "AnB": 0.05, "AnB+": 0.15}.get(config, 0)
        ax.scatter(part.n + shift, part.top1, s=14, c=color, marker=marker, edgecolors="k", lw=0.5,
                   label=None if config == "baseB" else None, zorder=3)
        if config != "baseB":
            mean = part.groupby("n").top1.mean()
            ax.plot(mean.index, mean.values, color=color, lw=2, label=config, zorder=2)
    if highlight is not None:
        ax.axvline(highlight, color="tab:purple", ls="--", lw=1)
    ax.set_xlabel("layer n at which the network is chopped and retrained")
    ax.set_ylabel("top-1 accuracy on task B")
    ax.set_xticks(range(0, int(rows.n.max()) + 1))
    ax.set_title(f"{split} split", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


ROLE_COLORS = {"copied, frozen": "tab:blue", "copied, fine-tuned": "tab:orange", "new, trained": "0.8"}


def plot_roles(roles: dict, source: str = "A", ax=None):
    """The eight layers as boxes coloured by what happens to them."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 1.3))
    for i, (name, role) in enumerate(roles.items()):
        ax.add_patch(plt.Rectangle((i, 0), 0.9, 1, color=ROLE_COLORS[role]))
        label = f"{name}\n{'from ' + source if role.startswith('copied') else 'new'}"
        ax.text(i + 0.45, 0.5, label, ha="center", va="center", fontsize=8)
    ax.set_xlim(-0.1, len(roles)); ax.set_ylim(0, 1); ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ROLE_COLORS.values()]
    ax.legend(handles, list(ROLE_COLORS), fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0))
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


# ---------------------------------------------------------------- Try it: which layers move at n

AB_PANEL = [Slider("n", 1, len(LAYERS) - 1, 1, 3, "copy first n layers"),
            Choice("config", ["AnB", "AnB+", "BnB", "BnB+"], "AnB"),
            Choice("split", ["random", "dissimilar"], "random")]


def ab_panel(results, n: int = 3, config: str = "AnB", split: str = "random"):
    """The layers copied / frozen / trained at n for one configuration, above the split's curves."""
    validate(AB_PANEL, n=n, config=config, split=split)
    if split not in set(results.split):
        raise ValueError(f"split={split!r} has no results; have {sorted(set(results.split))}")
    roles = {name: ("copied, fine-tuned" if config.endswith("+") else "copied, frozen") if i < n
             else "new, trained" for i, name in enumerate(LAYERS)}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.2), gridspec_kw={"height_ratios": [1, 3.5]})
    plot_roles(roles, config[0], ax=top)
    plot_ab(results, split, ax=bottom, highlight=n)
    here = results[(results.split == split) & (results.config == config) & (results.n == n)].top1
    value = f"{here.mean():.3f}" if len(here) else "not run at this n"
    top.set_title(f"{config}, n={n}: first {n} layers from base{config[0]}; top-1 on B = {value}", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- few labels: learning curves

METHODS = ("scratch", "fixed features", "fine-tune")


def train_method(method: str, source: nn.Module, train_set: _data.ImageSet, make_model, epochs: int,
                 lr: float, transferred_lr: float, batch_size: int = 32, seed: int = 0) -> nn.Module:
    """A network for train_set's classes: from scratch; on top of source's frozen conv1..fc7
    ('fixed features': only the new fc8 learns); or all of it fine-tuned, the transferred layers
    at the smaller transferred_lr."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {METHODS}")
    torch.manual_seed(seed)
    model = make_model(len(train_set.classes))
    n = 0 if method == "scratch" else len(LAYERS) - 1
    transfer(source, model, n, fine_tune=method == "fine-tune")
    groups = param_groups(model, LAYERS[:n], lr, transferred_lr)
    return fit_groups(model, train_set, groups, epochs, batch_size, seed=seed)


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
    ax.legend(fontsize=8)
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


def learning_panel(results, labels: int = 20, method: str = "fine-tune"):
    """The learning curves with one (method, labels) point picked out and compared with scratch."""
    validate(learning_controls(results), labels=labels, method=method)
    mean = results.groupby(["method", "labels"]).top1.mean()
    fig = plot_learning_curves(results, highlight=(labels, mean[(method, labels)]))
    gain = mean[(method, labels)] - mean.get(("scratch", labels), np.nan)
    fig.axes[0].set_title(f"{method} with {labels} labels/class: {mean[(method, labels)]:.1%} "
                          f"({gain:+.1%} vs scratch)", fontsize=9)
    return fig


# ---------------------------------------------------------------- a source network for new classes

def source_recipe(classes, cfg=None) -> dict:
    """How the held-out-classes source network is trained: the backbone's ingredients, narrower,
    LRN off (its backward costs 7x on CPUs for about a point), dropout off and lr 0.02 (without
    LRN, lr 0.05 with dropout diverges here)."""
    cfg = cfg or _settings.load()
    return {"classes": list(classes), "arch": {"width": 0.25, "lrn": False, "dropout": 0.0},
            "per_class": cfg.pick(quick=2000, full=None), "epochs": cfg.pick(quick=5, full=12),
            "batch_size": 128, "lr": 0.02, "weight_decay": 5e-4, "seed": cfg.seed, "version": 2}


def trained_on_classes(recipe: dict, cfg=None, progress: bool = True):
    """A MiniAlexNet trained on only recipe['classes'] of CIFAR-10, cached like the backbone
    (file lock, atomic write). Returns (model, info with test top-1 on those classes)."""
    from filelock import FileLock
    cfg = cfg or _settings.load()
    path = cfg.cache_dir / "models" / f"minialexnet-classes-{_models.config_key(recipe)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        state = _data.safe_load(path)
        if not (isinstance(state, dict) and state.get("recipe") == recipe):
            state = _train_source(recipe, cfg, progress)
            _data.atomic_save(state, path)
    model = _models.mini_alexnet(num_classes=len(recipe["classes"]), **recipe["arch"])
    model.load_state_dict(state["model"])
    return model.to(cfg.device).eval(), {"recipe": recipe, "test_top1": state["test_top1"], "path": str(path)}


def _train_source(recipe: dict, cfg, progress: bool) -> dict:
    train_set = select_classes(_data.cifar10("train", cfg), recipe["classes"])
    train_set = train_set.subset(per_class=recipe["per_class"], seed=recipe["seed"])
    test_set = select_classes(_data.cifar10("test", cfg), recipe["classes"])
    torch.manual_seed(recipe["seed"])
    model = _models.mini_alexnet(num_classes=len(recipe["classes"]), **recipe["arch"])
    _train.fit(model, train_set, None, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
               lr=recipe["lr"], weight_decay=recipe["weight_decay"], seed=recipe["seed"],
               progress=progress, device=cfg.device)
    return {"recipe": recipe, "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "test_top1": _train.evaluate(model, test_set)["top1"]}
