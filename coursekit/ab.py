"""The A/B experiment of Yosinski, Clune, Bengio and Lipson, "How transferable are features in
deep neural networks?" (NIPS 2014): its runs, its cached CIFAR-10 version, its tables and figures.

In the paper's notation, AnB = a network whose first n layers are copied from base network A and
frozen, the rest re-initialized and trained on task B; AnB+ = the same with the copied layers
fine-tuned; BnB / BnB+ copy from base network B itself (the control). Layer copying itself is
transfer.py's; the two tasks are data.py's class splits.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from . import cache as _cache
from . import data as _data
from . import hooks as _hooks
from . import models as _models
from . import settings as _settings
from . import train as _train
from . import transfer as _transfer
from .transfer import LAYERS
from .widgets import Choice, Slider, panel_controls, validate

CONFIGS = ("baseA", "baseB", "BnB", "BnB+", "AnB", "AnB+")


# ---------------------------------------------------------------- runs

def layer_inputs(model: nn.Module, images: torch.Tensor, names, batch_size: int = 500) -> dict:
    """What each named layer receives, for every image: {name: (N, ...) float32 on the CPU}, from
    one forward pass per batch of images (N, 3, H, W), the model read in eval mode without
    gradients. Once the layers below `name` are frozen this is all the layers above it ever see, so
    it is computed once per base network instead of once per step. A layer that runs more than once
    per pass would be recorded twice: ValueError."""
    names = list(names)
    store = {name: [] for name in names}
    keep = lambda name: (lambda module, inputs: store[name].append(inputs[0].float().cpu()))
    device = next(model.parameters()).device
    with _models.evaluating(model), _hooks.hooked([(_hooks.get_layer(model, n), keep(n)) for n in names],
                                                  before=True):
        for i in range(0, len(images), batch_size):
            model(_data.to_float(images[i:i + batch_size].to(device)))
    batches = -(-len(images) // batch_size)
    for name, parts in store.items():
        if len(parts) != batches:
            raise ValueError(f"layer {name!r} ran {len(parts)} times for {batches} batches: layer_inputs needs "
                             f"layers that run once per forward pass")
    return {name: torch.cat(parts) for name, parts in store.items()}


def upper_network(model: nn.Module, name: str, probe: torch.Tensor) -> nn.Sequential:
    """The layers of `model` from `name` on, as one module that takes what `name` receives
    (layer_inputs) and returns the model's output. It shares the model's parameters: training it
    trains them. Needs `name` inside an nn.Sequential that ends the model's forward (MiniAlexNet's
    `net`); checked on `probe`, a few images (N, 3, H, W): ValueError if the two outputs differ."""
    layer = _hooks.get_layer(model, name)
    parent = next((m for m in model.modules() if isinstance(m, nn.Sequential)
                   and any(child is layer for child in m.children())), None)
    if parent is None:
        raise ValueError(f"layer {name!r} is not a child of an nn.Sequential, so the layers above it cannot be "
                         f"run on their own; train the whole network (fine_tune configurations) instead")
    upper = parent[[child is layer for child in parent.children()].index(True):]
    device = next(model.parameters()).device
    probe = _data.to_float(probe.to(device))
    with _models.evaluating(model):
        whole, part = model(probe), upper(layer_inputs(model, probe, [name])[name].to(device))
    if part.shape != whole.shape or not torch.allclose(part, whole, rtol=1e-4, atol=1e-4):
        raise ValueError(f"the layers after {name!r} in its nn.Sequential do not give the model's output: the "
                         f"model's forward does more after them, so they cannot be trained on cached inputs")
    return upper


def _train_new(model, train_set, seed, train_kwargs):
    _train.fit(model, train_set, None, seed=seed, progress=False, **train_kwargs)
    return model


def _frozen_run(base, make_model, n, features, b_train, b_test, seed, train_kwargs) -> float:
    """AnB or BnB at n: base's first n layers copied and frozen, the rest trained on B from cached
    inputs of layer n+1 (features[split][name]), exactly as training the whole network with the lower
    layers frozen and no augmentation would (same batches, same steps). Returns test top-1 on B."""
    name = LAYERS[n]
    torch.manual_seed(seed)
    model = make_model(len(b_train.classes))
    _transfer.transfer(base, model, n, fine_tune=False)
    model.to(next(base.parameters()).device)
    upper = upper_network(model, name, b_train.images[:4])
    cached = lambda part, images: _data.ImageSet(features[part][name], images.labels, images.classes)
    _train_new(upper, cached("train", b_train), seed, train_kwargs)
    return _train.evaluate(upper, cached("test", b_test))["top1"]


def run_ab(tasks: dict, make_model, n_values, seeds, train_kwargs: dict, split: str = "",
           progress: bool = True, fine_tune_n=None, fine_tune_seeds=None):
    """Yosinski et al.'s experiment. tasks = {"A": (train, test), "B": (train, test)};
    make_model(num_classes) builds a fresh network with layers named as in LAYERS.

    Every network trains without augmentation (train_kwargs may not ask for it): the frozen
    configurations (BnB, AnB) train only the layers above n, on the cached inputs of layer n+1
    (layer_inputs), which is exact only for fixed images; base and fine-tuned networks are treated
    alike. The fine-tuned ones (BnB+, AnB+) train the whole network, so they can be limited to
    fine_tune_n (default n_values) and fine_tune_seeds (default seeds).

    Returns a tidy pandas table: one row per (config, n, seed) with test top-1 on the config's
    own task (baseA on A, everything else on B). Base networks appear with n = 0.
    """
    import pandas as pd
    from tqdm.auto import tqdm
    if train_kwargs.get("augment"):
        raise ValueError("run_ab trains the frozen configurations on cached activations of fixed images, so every "
                         "network trains without augmentation: drop augment=True from train_kwargs")
    train_kwargs = {**train_kwargs, "augment": False}
    n_values = list(n_values)
    fine_tune_n = n_values if fine_tune_n is None else list(fine_tune_n)
    fine_tune_seeds = list(seeds) if fine_tune_seeds is None else list(fine_tune_seeds)
    for n in n_values + fine_tune_n:
        _transfer.check_n(n, LAYERS[:-1])
    runs = sum(2 + 2 * len(n_values) + (2 * len(fine_tune_n) if s in fine_tune_seeds else 0) for s in seeds)
    bar = tqdm(total=runs, desc=f"A/B {split}".strip(), disable=not progress)
    rows = []
    row = lambda config, n, seed, top1: rows.append({"split": split, "config": config, "n": n, "seed": seed,
                                                     "top1": top1})
    b_train, b_test = tasks["B"]
    for seed in seeds:
        base = {}
        for side in "AB":
            torch.manual_seed(seed)
            train_set, test_set = tasks[side]
            base[side] = _train_new(make_model(len(train_set.classes)), train_set, seed, train_kwargs)
            row(f"base{side}", 0, seed, _train.evaluate(base[side], test_set)["top1"])
            bar.update(1)
        for side in "BA":  # BnB, then AnB: the same n, seed and upper-layer start, paired
            names = [LAYERS[n] for n in n_values]
            features = {"train": layer_inputs(base[side], b_train.images, names),
                        "test": layer_inputs(base[side], b_test.images, names)}
            for n in n_values:
                row(f"{side}nB", n, seed, _frozen_run(base[side], make_model, n, features, b_train, b_test,
                                                      seed * 1000 + n, train_kwargs))
                bar.update(1)
        for n in fine_tune_n if seed in fine_tune_seeds else []:
            for config in ("BnB+", "AnB+"):
                torch.manual_seed(seed * 1000 + n)
                model = make_model(len(b_train.classes))
                _transfer.transfer(base[config[0]], model, n, fine_tune=True)
                _train_new(model, b_train, seed * 1000 + n, train_kwargs)
                row(config, n, seed, _train.evaluate(model, b_test)["top1"])
                bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def ab_recipe(cfg=None) -> dict:
    """Sizes of the CIFAR-10 A/B experiment: quick mode shrinks them, the code is the same.
    A narrow MiniAlexNet without LRN (its backward costs 7x on CPUs for about a point) and without
    dropout (in a few epochs it only slows learning), trained without augmentation (run_ab).
    The frozen configurations train on cached activations (at n = 5 ... 7 a tenth of a whole
    training or less), which pays for every n on 5 seeds; the fine-tuned ones train the whole
    network, so they run on 2 seeds at n = 4 (quick) or n = 4, 7 (full). Measured on one CPU thread
    (2026-11-30, a loaded machine): quick mode 135 s for both splits, against 105 s for the earlier
    2-seed, n = 1, 4, 7 design; full mode (2.5x the images, 8 epochs) 100 s for one seed of one split
    with fine-tuning at three n, so about 12 minutes for both splits."""
    cfg = _settings.current(cfg)
    return {"arch": {"width": 0.125, "lrn": False, "dropout": 0.0},
            "per_class": cfg.pick(quick=200, full=500), "test_per_class": cfg.pick(quick=200, full=1000),
            "epochs": cfg.pick(quick=5, full=8), "batch_size": 32, "lr": 0.03,
            "seeds": [0, 1, 2, 3, 4], "n_values": list(range(1, len(LAYERS))),
            "fine_tune_seeds": [0, 1], "fine_tune_n": cfg.pick(quick=[4], full=[4, 7]), "version": 4}


def cifar_ab(split: _data.Split, recipe: dict, cfg=None, progress: bool = True):
    """run_ab on two halves of CIFAR-10, cached on disk per (split, recipe, seed): a rerun is
    instant, and adding a seed trains only that seed."""
    import pandas as pd
    cfg = _settings.current(cfg)
    frames = []
    for seed in recipe["seeds"]:
        one = {**recipe, "seeds": [seed], "fine_tune_seeds": [seed] if seed in recipe["fine_tune_seeds"] else []}
        path = cfg.cache_dir / "transfer" / f"ab-{split.name}-{_cache.config_key([split.a, split.b, one])}.pt"
        run = lambda: {"rows": _cifar_ab_run(split, one, cfg, progress).to_dict("list")}
        # every network here is trained from the data, none handed out, so the untrained null's
        # A/B results are the real run's (the shuffled-labels null changes the data: it trains)
        stored = _cache.real_run_copy(path, one, cfg) if cfg.null == "untrained" else None
        if stored is None:
            stored, _ = _cache.cached(path, run, one)
        frames.append(pd.DataFrame(stored["rows"]))
    return pd.concat(frames, ignore_index=True)


def _cifar_ab_run(split: _data.Split, recipe: dict, cfg, progress: bool):
    train_all, test_all = _data.cifar10("train", cfg), _data.cifar10("test", cfg)
    tasks = {side: (_data.select_classes(train_all, names).subset(per_class=recipe["per_class"], seed=0),
                    _data.select_classes(test_all, names).subset(per_class=recipe["test_per_class"], seed=0))
             for side, names in (("A", split.a), ("B", split.b))}
    make_model = lambda k: _models.mini_alexnet(num_classes=k, **recipe["arch"])
    train_kwargs = {k: recipe[k] for k in ("epochs", "batch_size", "lr")}
    return run_ab(tasks, make_model, recipe["n_values"], recipe["seeds"], train_kwargs, split.name, progress,
                  fine_tune_n=recipe["fine_tune_n"], fine_tune_seeds=recipe["fine_tune_seeds"])


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


def seed_noise(results) -> float:
    """How much one run's top-1 varies with the seed alone: the standard deviation between the seeds
    of each (split, config, n), pooled over all of them (root of the mean variance, ddof=1), so
    every run of the table informs it. Raises ValueError unless some configuration has two seeds."""
    spread = results.groupby(["split", "config", "n"]).top1.var(ddof=1).dropna()
    if spread.empty:
        raise ValueError("seed_noise needs at least two seeds of a configuration; add seeds to recipe['seeds']")
    return float(spread.mean() ** 0.5)


def difference_margin(sigma: float, runs_a: int, runs_b: int, z: float = 2.0) -> float:
    """z standard errors of the difference between a mean over runs_a runs and a mean over runs_b
    runs, each run's top-1 varying with standard deviation sigma (seed_noise): a difference smaller
    than this is inside the seed noise (z = 2: about 1 time in 20 by chance)."""
    if runs_a < 1 or runs_b < 1:
        raise ValueError(f"need at least one run on each side, got {runs_a} and {runs_b}")
    return z * sigma * math.sqrt(1 / runs_a + 1 / runs_b)


def paired_differences(results, split: str, config: str, reference: str = "baseB"):
    """config's top-1 minus reference's, seed by seed: a DataFrame, one row per seed, one column per n.
    A base network (reference "baseB") is compared with the same seed's base network at every n,
    another configuration at the same n. The same seed means the same baseB (and for BnB vs AnB
    the same start of the upper layers), so what the two runs share cancels: the spread of these
    differences is the noise of the comparison itself (paired_margin)."""
    rows = results[results.split == split]
    mine = rows[rows.config == config].pivot_table(index="seed", columns="n", values="top1")
    theirs = rows[rows.config == reference].pivot_table(index="seed", columns="n", values="top1")
    if mine.empty or theirs.empty:
        raise ValueError(f"no rows for config={config!r} or reference={reference!r} in split={split!r}; have "
                         f"{sorted(set(zip(results.split, results.config)))}")
    if reference.startswith("base"):
        return mine.sub(theirs[0], axis=0).dropna(how="all")
    return (mine - theirs).dropna(how="all", axis=1).dropna(how="all")


def paired_margin(differences, z: float = 2.0):
    """z standard errors of the mean of paired differences (per column): z * sd / sqrt(seeds), the
    sd between seeds with ddof=1. A mean difference beyond it is not seed noise (z = 2: about 1 time
    in 20 by chance). Raises ValueError with fewer than two seeds in a column."""
    counts = differences.count()
    if (counts < 2).any():
        raise ValueError(f"a paired margin needs two seeds or more; columns {list(counts[counts < 2].index)} have "
                         f"fewer: add seeds to recipe['seeds']")
    return z * differences.std(ddof=1) / counts ** 0.5


def filter_similarity(filters_a: torch.Tensor, filters_b: torch.Tensor) -> tuple[float, torch.Tensor]:
    """How alike two layers' filters are, whatever their order (Yosinski et al. 2014's "key
    observation": first-layer filters look alike whatever the task).

    filters_a (K, ...) and filters_b (K', ...), e.g. conv1 weights (K, 3, k, k) or what training
    added to them. Each filter is flattened and centred; the K x K' Pearson correlations are paired
    one to one so that their sum is largest (the Hungarian algorithm, scipy's linear_sum_assignment).
    A filter with no variation (all zeros: nothing learned) correlates 0 with every filter.
    Returns (the mean correlation of the min(K, K') pairs, in [-1, 1]; for each row of filters_a in
    pairing order, the index of its partner in filters_b, a (min(K, K'),) long tensor).
    """
    from scipy.optimize import linear_sum_assignment

    def centred_unit(filters):
        flat = filters.detach().double().cpu().flatten(1)
        flat = flat - flat.mean(1, keepdim=True)
        norm = flat.norm(dim=1, keepdim=True)
        return torch.where(norm > 1e-12, flat / norm.clamp_min(1e-12), torch.zeros_like(flat))

    if filters_a.shape[1:] != filters_b.shape[1:]:
        raise ValueError(f"filters of different shapes: {tuple(filters_a.shape)} and {tuple(filters_b.shape)}")
    corr = (centred_unit(filters_a) @ centred_unit(filters_b).T).numpy()
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return float(corr[rows, cols].mean()), torch.as_tensor(cols, dtype=torch.long)


# ---------------------------------------------------------------- figures

STYLE = {"baseA": ("black", "s"), "baseB": ("white", "o"), "BnB": ("tab:blue", "o"),
         "BnB+": ("tab:cyan", "o"), "AnB": ("tab:red", "D"), "AnB+": ("tab:orange", "D")}


def plot_ab(results, split: str, ax=None, highlight: int | None = None):
    """Figure 2 of the paper: every run as a dot, the mean per n as a line with a tick at each n
    (a configuration run at one n shows its tick alone), baseB as a band."""
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
            ax.plot(mean.index, mean.values, color=color, lw=2, marker="_", ms=14, mew=2, label=config, zorder=2)
    if highlight is not None:
        ax.axvline(highlight, color="tab:purple", ls="--", lw=1)
    ax.set_xlabel("layer n at which the network is chopped and retrained")
    ax.set_ylabel("top-1 accuracy on task B")
    ax.set_xticks(range(0, int(rows.n.max()) + 1))
    ax.set_title(f"{split} split", fontsize=10)
    ax.legend(fontsize=10, loc="lower left")
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
        ax.text(i + 0.45, 0.5, label, ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.1, len(roles)); ax.set_ylim(0, 1); ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ROLE_COLORS.values()]
    ax.legend(handles, list(ROLE_COLORS), fontsize=10, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0))
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


# ---------------------------------------------------------------- Try it: which layers move at n

AB_PANEL = [Slider("n", 1, len(LAYERS) - 1, 1, 3, "copy first n layers"),
            Choice("config", ["AnB", "AnB+", "BnB", "BnB+"], "AnB"),
            Choice("split", ["random", "dissimilar"], "random")]


@panel_controls(AB_PANEL)
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
    top.set_title(f"{config}, n={n}: first {n} layers from base{config[0]}; top-1 on B = {value}", fontsize=10)
    fig.tight_layout()
    return fig
