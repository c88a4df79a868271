"""Small training experiments from the AlexNet paper, shrunk to CIFAR-10 on a laptop:
the ReLU-vs-tanh race of Figure 1, the ablations that measure overfitting (dropout, section 4.2;
overlapping pooling, section 3.4) on the fully connected layers of a trained network, and Figure 3's
two families of conv1 filters on the two GPUs (colourfulness per filter and group)."""
from __future__ import annotations

import contextlib
import inspect
import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

from . import ab as _ab
from . import cache as _cache
from . import data as _data
from . import hooks as _hooks
from . import models as _models
from . import settings as _settings
from . import train as _train
from .plot import to_image
from .widgets import Choice, Slider, panel_controls, validate


def epochs_to_reach(errors, error: float = 0.25) -> float:
    """The first epoch (1, 2, ...) whose training error is at most `error`; inf if none is.
    errors: one training error per epoch."""
    for epoch, value in enumerate(errors, start=1):
        if value <= error:
            return epoch
    return math.inf


SATURATED = 0.97  # |tanh| above this passes less than 6% of the gradient (1 - 0.97**2)
# SGD learning rates the pilot tries for each activation. The paper gives each activation the rate that
# trains it fastest, so each one's pick must sit inside the grid: up to 0.02, tanh's pick was the grid's top,
# and in the quick race (10,000 images, batch 128, 2 epochs) tanh at 0.05 ended epoch 2 at 0.602 training
# error against 0.641 at 0.02 (seeds 0-2), at 0.1 at 0.691 (seed 0; measured 2026-12-01)
PILOT_LRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def race_runner(activation: str, train_set: _data.ImageSet, epochs: int, lr: float, width: int = 16,
                batch_size: int = 128, seed: int = 0, test_set: _data.ImageSet | None = None,
                progress: bool = False) -> dict:
    """One runner of Figure 1's race under the paper's conditions: the four-layer CNN on centred
    0-255 pixels, weights N(0, 0.01), SGD with momentum 0.9 at a constant `lr`, no regularization
    (no weight decay, no augmentation, no dropout).

    Returns {"train_error": [one per epoch], "test_error": [...] or None, "saturated": share of
    conv1's tanh units with |tanh| > SATURATED over every training pass of the first epoch (None
    for relu), "conv1_grad": mean L2 norm of conv1's weight gradient over the first epoch's steps}.
    These two are the mechanism: conv1 sees the large raw pixels, and a saturated unit passes
    almost no gradient back to the weights in front of it."""
    torch.manual_seed(seed)
    model = _models.four_layer_cnn(activation, width=width, pixels="centred-255")
    _models.paper_init(model)
    first_epoch = math.ceil(len(train_set) / batch_size)
    grads, saturated = [], []

    def watch_units(module, inputs, output):  # training passes of the first epoch only
        if module.training and len(saturated) < first_epoch:
            saturated.append((output.detach().abs() > SATURATED).float().mean().item())

    def watch_grad(grad):
        if len(grads) < first_epoch:
            grads.append(grad.norm().item())

    with _hooks.watching_gradient(model.conv1.weight, watch_grad), \
            _hooks.hooked([(model.act1, watch_units)] if activation == "tanh" else []):
        history = _train.fit(model, train_set, test_set, epochs=epochs, batch_size=batch_size, lr=lr,
                             weight_decay=0.0, schedule=None, augment=False, seed=seed, progress=progress)
    return {"train_error": [1 - a for a in history["train_top1"]],
            "test_error": None if test_set is None else [1 - a for a in history["test_top1"]],
            "saturated": sum(saturated) / len(saturated) if saturated else None,
            "conv1_grad": sum(grads) / len(grads)}


def pilot_lrs(train_set: _data.ImageSet, lrs=PILOT_LRS, epochs: int = 1, **runner) -> pd.DataFrame:
    """The paper's protocol for Figure 1: each activation gets the learning rate that trains it
    fastest. A short run per (activation, lr); a diverged run counts at chance. Returns a table
    with columns activation, lr, train_error (after `epochs`), best (True on each activation's
    fastest lr). runner: race_runner's keywords (width, batch_size, seed)."""
    rows = []
    for activation in ("relu", "tanh"):
        for lr in lrs:
            error = race_runner(activation, train_set, epochs, lr, **runner)["train_error"][-1]
            chance = 1 - 1 / len(train_set.classes)
            rows.append({"activation": activation, "lr": lr, "train_error": error if error == error else chance})
    table = pd.DataFrame(rows)
    table["best"] = table.index.isin(table.groupby("activation").train_error.idxmin())
    return table


def activation_race(train_set: _data.ImageSet, epochs: int, lrs: dict[str, float], seeds=(0,),
                    width: int = 16, batch_size: int = 128, test_set: _data.ImageSet | None = None,
                    progress: bool = False) -> pd.DataFrame:
    """Figure 1: the same four-layer CNN with ReLU and with tanh, each at its own learning rate
    (lrs = {"relu": ..., "tanh": ...}, from pilot_lrs), for each seed. Returns one row per
    (activation, seed, epoch): lr, train_error, test_error, and the runner's first-epoch
    saturated and conv1_grad (repeated on every epoch's row)."""
    rows = []
    for activation in ("relu", "tanh"):
        for seed in seeds:
            run = race_runner(activation, train_set, epochs, lrs[activation], width, batch_size, seed,
                              test_set, progress)
            for epoch, error in enumerate(run["train_error"], start=1):
                rows.append({"activation": activation, "seed": seed, "epoch": epoch, "lr": lrs[activation],
                             "train_error": error,
                             "test_error": None if run["test_error"] is None else run["test_error"][epoch - 1],
                             "saturated": run["saturated"], "conv1_grad": run["conv1_grad"]})
    return pd.DataFrame(rows)


def race_curves(results: pd.DataFrame) -> pd.DataFrame:
    """Per epoch: each activation's mean training error over the seeds, ReLU's lead (tanh's error
    minus ReLU's, paired by seed, averaged) and the seed margin: the larger of the two networks'
    seed spreads (max - min over seeds; NaN with one seed, where no spread is measured)."""
    error = results.pivot_table(index="epoch", columns=["activation", "seed"], values="train_error")
    table = pd.DataFrame({"relu": error["relu"].mean(axis=1), "tanh": error["tanh"].mean(axis=1)})
    table["lead"] = (error["tanh"] - error["relu"]).mean(axis=1)
    spread = lambda e: e.max(axis=1) - e.min(axis=1) if e.shape[1] > 1 else e.max(axis=1) * math.nan
    table["margin"] = pd.concat([spread(error["relu"]), spread(error["tanh"])], axis=1).max(axis=1, skipna=False)
    return table


def race_verdict(results: pd.DataFrame, error: float = 0.25) -> dict:
    """Figure 1's claim read from the race: "reach" (epochs each activation's mean curve needs to
    reach `error` training error, inf if it does not), "first" (ReLU gets there in fewer epochs),
    "ahead" (at the last epoch ReLU's lead exceeds the seed margin; False with one seed),
    "leading_epochs" (the epochs where it does), "ratio" (tanh's epochs over ReLU's, the paper's
    "six times faster"; a lower bound when tanh does not arrive; None when ReLU does not arrive),
    "speedup" (the same ratio at the error tanh ends the race with: the race's epochs over the
    epochs ReLU needs to get there; None when ReLU never gets down to it, which a ratio of
    epochs / inf would print as "0.0x as fast") and "text", one sentence."""
    curves = race_curves(results)
    reach = {name: epochs_to_reach(curves[name], error) for name in ("relu", "tanh")}
    relu, tanh = reach["relu"], reach["tanh"]
    leading = [int(e) for e in curves.index[curves.lead > curves.margin]]
    epochs = len(curves)
    if relu == math.inf:
        ratio, text = None, f"ReLU did not reach {error:.0%} training error in {epochs} epochs"
    elif tanh == math.inf:
        ratio, text = epochs / relu, (f"ReLU reached {error:.0%} at epoch {relu}, tanh not within {epochs}: "
                                      f"more than {epochs / relu:.1f}x faster (paper: about 6x)")
    else:
        ratio, text = tanh / relu, (f"ReLU reached {error:.0%} at epoch {relu}, tanh at epoch {tanh}: "
                                    f"{tanh / relu:.1f}x (paper: about 6x)")
    tanh_end = float(curves.tanh.iloc[-1])
    relu_there = epochs_to_reach(curves.relu, tanh_end)
    if relu_there == math.inf:
        speedup = None
        text += f"; ReLU never got down to tanh's final {tanh_end:.1%} training error"
    else:
        speedup = epochs / relu_there
        text += f"; at tanh's final {tanh_end:.1%} training error ReLU is {speedup:.1f}x as fast (paper, at 25%: about 6x)"
    text += f"; ReLU leads by more than the seed spread at epochs {leading} of 1-{epochs}"
    return {"reach": reach, "first": relu < tanh, "ahead": epochs in leading, "leading_epochs": leading,
            "ratio": ratio, "speedup": speedup, "text": text}


def race_mechanism(results: pd.DataFrame) -> pd.DataFrame:
    """Per seed, the first epoch's mechanism: the share of tanh's conv1 units that are saturated
    (|tanh| > SATURATED) and the ratio of conv1 gradient norms, ReLU's over tanh's."""
    first = results[results.epoch == 1].pivot_table(index="seed", columns="activation",
                                                     values=["saturated", "conv1_grad"])
    return pd.DataFrame({"tanh conv1 saturated": first[("saturated", "tanh")],
                         "conv1 grad ratio": first[("conv1_grad", "relu")] / first[("conv1_grad", "tanh")]})


def plot_race(results: pd.DataFrame, error: float = 0.25):
    """Figure 1: training error per epoch, each activation's mean over seeds as a line and every
    seed as a dot; held-out error faint when it was measured; the paper's 25% line in grey."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for (name, part), style in zip(results.groupby("activation"), ("-", "--")):
        mean = part.groupby("epoch").train_error.mean()
        line, = ax.plot(mean.index, mean.values, style, marker="o", label=f"{name} (lr {part.lr.iloc[0]:g}), training")
        ax.scatter(part.epoch, part.train_error, s=10, color=line.get_color(), alpha=0.6)
        if part.test_error.notna().all():
            held = part.groupby("epoch").test_error.mean()
            ax.plot(held.index, held.values, style, color=line.get_color(), alpha=0.35, label=f"{name}, held-out")
    ax.axhline(error, color="grey", lw=0.8)
    ax.set_xlabel("epoch"); ax.set_ylabel("error rate"); ax.set_ylim(0, 1)
    ax.legend(fontsize=10); ax.set_title("Figure 1, scaled down: ReLU vs tanh")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- ablations that measure overfitting

OVERLAP_POOLING = {"3x3 stride 2 (overlapping)": True, "2x2 stride 2": False}
ABLATIONS = {"full recipe": (0.5, True), "no dropout": (0.0, True),
             "no overlapping pooling": (0.5, False), "neither": (0.0, False)}  # name -> (dropout, overlap)


def overfitting_recipe(cfg=None) -> dict:
    """Sizes of the overfitting ablations: few images per class of the classes 09's source network
    never saw, no augmentation, and only the fully connected part trained, on cached relu5 maps, so
    a run costs about half a CPU-second and many seeds fit. Full mode: more seeds and held-out
    images, the same regime. panel_seeds: the seeds a Try-it choice trains (seconds)."""
    cfg = _settings.current(cfg)
    return {"per_class": 50, "pool_per_class": 500, "test_per_class": cfg.pick(quick=300, full=1000),
            "epochs": 30, "lr": 0.01, "batch_size": 32, "weight_decay": 5e-4,
            "seeds": list(range(cfg.pick(quick=6, full=10))), "panel_seeds": [0, 1, 2], "version": 1}


def relu5_maps(model, train_pool: _data.ImageSet, test_set: _data.ImageSet) -> dict:
    """What `model`'s pool5 receives (its relu5 maps, (N, C, 7, 7) float32 for 32-px images) for
    every image of both sets, as ImageSets with the same labels: {"train": ..., "test": ...}.
    Computed once; every ablation run trains on these and never reruns the conv layers."""
    maps = {part: _ab.layer_inputs(model, images.images, ["pool5"])["pool5"]
            for part, images in (("train", train_pool), ("test", test_set))}
    return {part: _data.ImageSet(maps[part], images.labels, images.classes)
            for part, images in (("train", train_pool), ("test", test_set))}


def fc_layers(channels: int, num_classes: int, dropout: float, overlap: bool) -> torch.nn.Sequential:
    """MiniAlexNet's layers from pool5 on (pool5, flatten, drop6, fc6, relu6, drop7, fc7, relu7,
    fc8), freshly initialized, for relu5 maps of `channels` x 7 x 7. overlap: pool5 is 3x3 at
    stride 2 (the paper) or 2x2 at stride 2; on 7x7 maps both give 3x3, as 3x3/2 and 2x2/2 both
    give 6x6 on AlexNet's 13x13 (the paper compares them at equal output size, section 3.4).
    dropout: before fc6 and fc7, 0 turns it off."""
    net = _models.MiniAlexNet(num_classes, lrn=False, dropout=dropout, width=channels / 256)  # conv5: 256 x width
    if not overlap:
        net.pool5 = torch.nn.MaxPool2d(2, 2)
    names = [name for name, _ in net.named_children()]
    return net[names.index("pool5"):]


def overfitting_run(maps: dict, recipe: dict, dropout: float, overlap: bool, seed: int) -> dict:
    """One ablation run: recipe["per_class"] training maps per class drawn with `seed`, fc layers
    initialized with `seed`, trained with SGD for recipe["epochs"] without augmentation. Returns
    top-1 on the training images (eval mode: dropout off) and on the held-out ones, and their gap."""
    shape = tuple(maps["train"].images.shape[1:])
    if len(shape) != 3 or shape[1:] != (7, 7):
        raise ValueError(f"maps hold {shape} per image; the fc layers take relu5 maps of C x 7 x 7, what "
                         f"MiniAlexNet's pool5 receives for 32-px images: make them with relu5_maps")
    train_set = maps["train"].subset(per_class=recipe["per_class"], seed=seed)
    torch.manual_seed(seed)
    head = fc_layers(train_set.images.shape[1], len(train_set.classes), dropout, overlap)
    with _one_cpu_thread():
        _train.fit(head, train_set, None, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                   lr=recipe["lr"], weight_decay=recipe["weight_decay"], augment=False, seed=seed, progress=False)
        fitted, held_out = _train.evaluate(head, train_set)["top1"], _train.evaluate(head, maps["test"])["top1"]
    return {"train_top1": fitted, "test_top1": held_out, "gap": fitted - held_out}


@contextlib.contextmanager
def _one_cpu_thread():
    """torch on one CPU thread inside, the caller's thread count restored after. Batches of 32 through
    fc layers of a few hundred units are too small to split: on a busy 2-core machine one run took
    0.6 CPU-seconds on one thread and 3.6-16 on two (2026-11-30), with the same numbers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ablate(maps: dict, recipe: dict, settings=None, seeds=None) -> pd.DataFrame:
    """Every ablation setting (default ABLATIONS: name -> (dropout, overlap)) on every seed (default
    recipe["seeds"]): a tidy table, one row per (setting, seed), with overfitting_run's numbers.
    The same seed gives each setting the same training images, initial weights and batch order,
    so settings compare paired by seed (paired_effect). Each run is kept in the course cache
    (cache.remember), keyed by the maps, the recipe, its (dropout, overlap, seed) and the code that
    runs it (overfitting_run, fc_layers, MiniAlexNet and the training loop, train.fit): a rerun, or a panel choice made before, loads in milliseconds; editing the code reruns."""
    settings = ABLATIONS if settings is None else settings
    seeds = recipe["seeds"] if seeds is None else seeds
    code = [inspect.getsource(f) for f in (overfitting_run, fc_layers, _models.MiniAlexNet, _train.fit)]
    data_key = [_data.dataset_hash(maps[part]) for part in ("train", "test")]
    rows = []
    for name, (dropout, overlap) in settings.items():
        for seed in seeds:
            key = {"maps": data_key, "recipe": recipe, "dropout": dropout, "overlap": overlap, "seed": seed,
                   "code": code}
            run = _cache.remember("01-ablation-run", key,
                                  lambda: overfitting_run(maps, recipe, dropout, overlap, seed))
            rows.append({"setting": name, "dropout": dropout, "overlap": overlap, "seed": seed, **run})
    return pd.DataFrame(rows)


def overfitting_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per setting: mean top-1 on the training and held-out images, the gap between them, and the
    gap's spread between seeds (standard deviation, ddof=1)."""
    table = results.groupby("setting", sort=False)[["train_top1", "test_top1", "gap"]].mean()
    table["gap sd"] = results.groupby("setting", sort=False).gap.std(ddof=1)
    return table


def paired_effect(results: pd.DataFrame, with_: str, without: str, z: float = 2.0) -> pd.DataFrame:
    """What an ingredient changes, paired by seed: setting `with_` minus setting `without`, for the
    training top-1, the held-out top-1 and the gap (rows train_top1, test_top1, gap). Columns: "mean"
    (over seeds), "margin" (z standard errors of that mean: z * sd / sqrt(seeds), ab.paired_margin;
    ValueError with fewer than two seeds) and "beyond noise" (|mean| > margin)."""
    columns = ["train_top1", "test_top1", "gap"]
    mine = results[results.setting == with_].set_index("seed")[columns]
    theirs = results[results.setting == without].set_index("seed")[columns]
    if mine.empty or theirs.empty:
        raise ValueError(f"no rows for setting {with_!r} or {without!r}; have {sorted(set(results.setting))}")
    differences = (mine - theirs).dropna()
    mean, margin = differences.mean(), _ab.paired_margin(differences, z)
    return pd.DataFrame({"mean": mean, "margin": margin, "beyond noise": mean.abs() > margin})


def plot_overfitting(results: pd.DataFrame, ax=None):
    """Training and held-out top-1 of each setting: bars at the mean, one dot per seed, and the gap
    between them written above each pair."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for x, (name, part) in enumerate(results.groupby("setting", sort=False)):
        for shift, column, color, label in ((-0.2, "train_top1", "tab:blue", "training images"),
                                            (0.2, "test_top1", "tab:orange", "held-out images")):
            ax.bar(x + shift, part[column].mean(), width=0.38, color=color, alpha=0.6, label=label if x == 0 else None)
            ax.scatter([x + shift] * len(part), part[column], color="black", s=10, zorder=3)
        ax.text(x, part.train_top1.max() + 0.03, f"gap {part.gap.mean():.2f}", ha="center", fontsize=10)
    names = list(dict.fromkeys(results.setting))
    ax.set_xticks(range(len(names)), names, fontsize=10)
    ax.set_ylabel("top-1"); ax.set_ylim(0, 1.3)
    ax.legend(fontsize=10, loc="upper left", ncol=2)
    ax.set_title("dots: one seed each; the gap is training minus held-out", fontsize=10)
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


OVERFITTING_PANEL = [Slider("dropout", 0.0, 0.75, 0.25, 0.5, "dropout p"),
                     Choice("pooling", list(OVERLAP_POOLING), "3x3 stride 2 (overlapping)", "pool5"),
                     Slider("per_class", 10, 100, 10, 50, "images/class")]


@panel_controls(OVERFITTING_PANEL)
def overfitting_panel(maps: dict, recipe: dict, dropout: float = 0.5,
                      pooling: str = "3x3 stride 2 (overlapping)", per_class: int = 50):
    """Trains the ablation the student picks (dropout p, pool5 overlapping or not, images per class)
    on recipe["panel_seeds"], beside the full recipe at the same size, each run cached (ablate):
    training and held-out top-1 per seed and the gap between them."""
    validate(OVERFITTING_PANEL, dropout=dropout, pooling=pooling, per_class=per_class)
    pick = (float(dropout), OVERLAP_POOLING[pooling])
    chosen = {"full recipe": ABLATIONS["full recipe"]}
    if pick != ABLATIONS["full recipe"]:
        chosen[f"dropout {dropout:g}, {pooling.split(' (')[0]}"] = pick
    results = ablate(maps, {**recipe, "per_class": int(per_class)}, chosen, recipe["panel_seeds"])
    fig = plot_overfitting(results)
    fig.axes[0].set_title(f"{per_class} training images per class, {len(recipe['panel_seeds'])} seeds "
                          f"(dots); gap = training minus held-out", fontsize=10)
    return fig


# ---------------------------------------------------------------- Figure 3: two families on two GPUs

def colourfulness(weight: torch.Tensor) -> torch.Tensor:
    """The share of each first-layer filter's energy off the grey axis: ||w - g||^2 / ||w||^2, where g
    repeats w's mean over the colour channels at every pixel (the part of the filter that sees only
    brightness). weight: (C_out, 3, k, k) -> (C_out,) in [0, 1] on the CPU. 0: colour-agnostic (the
    same weights in R, G and B: a grey edge); 1: colour-opponent with no brightness part (R, G, B
    weights summing to 0 at every pixel). A random Gaussian filter has 2/3 on average (two of the
    three colour directions of each pixel are off the grey axis; exactly Beta(k^2, k^2 / 2)).
    The name is this course's: it is not Hasler & Suesstrunk's (2003) "colourfulness", an image
    metric from the spread of an image's opponent colour channels; this one is a filter's off-grey
    energy share. (Krizhevsky et al. 2012, Figure 3 and section 6.1: colour-agnostic vs colour-specific
    kernels.) ValueError unless the filters have 3 colour channels."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"colourfulness needs first-layer weights (C_out, 3, k, k), got {tuple(weight.shape)}")
    w = weight.detach().cpu().double()
    off_grey = w - w.mean(1, keepdim=True)
    return (off_grey.pow(2).flatten(1).sum(1) / w.pow(2).flatten(1).sum(1).clamp_min(1e-30)).float()


def beyond_untrained(values: torch.Tensor, untrained: torch.Tensor) -> dict:
    """How many of a trained conv1's filters lie beyond every untrained filter of the same recipe, at
    each end: Figure 3's two families (Krizhevsky et al. 2012) as two tails, colour-agnostic filters
    below anything random filters reach and colour-specific ones above it.

    values: (C,) one number per filter of a trained network (`colourfulness`); untrained: (n, C'), the
    same number for the filters of n >= 3 untrained copies of the recipe (their initializations).
    Returns {"low", "high": the smallest and largest untrained value, "below", "above": the shares of
    `values` under low and over high (0 to 1), "null_below", "null_above": (n,) tensors, each untrained
    copy's shares under the smallest and over the largest value of the other n - 1 copies (leave one
    out: an untrained network measured against bounds it did not help set), the spread that
    `backbones.null_bar` turns into each tail's bar}. ValueError for fewer than 3 untrained copies."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    untrained = torch.as_tensor(untrained, dtype=torch.float64)
    if untrained.dim() != 2 or len(untrained) < 3:
        raise ValueError(f"beyond_untrained needs (n, C) values of n >= 3 untrained copies, got {tuple(untrained.shape)}")
    null_below, null_above = [], []
    for i in range(len(untrained)):
        rest = torch.cat([untrained[:i], untrained[i + 1:]])
        null_below.append((untrained[i] < rest.min()).double().mean())
        null_above.append((untrained[i] > rest.max()).double().mean())
    low, high = float(untrained.min()), float(untrained.max())
    return {"low": low, "high": high, "below": float((values < low).double().mean()),
            "above": float((values > high).double().mean()),
            "null_below": torch.stack(null_below), "null_above": torch.stack(null_above)}


def tower_split(values: torch.Tensor, groups: int = 2, draws: int = 10000, seed: int = 0) -> dict:
    """Do the groups differ, beyond how any split of the same filters would? values: (C,), one number
    per conv1 filter, the filters of group g being the g-th consecutive block of C / groups (as
    MiniAlexNet(groups=...) lays them out). Returns {"means": each group's mean, "gap": the most minus
    the least colourful group's mean (>= 0: which GPU gets colour is decided by chance, Figure 3's
    claim is that one does), "p": the share of `draws` random splits of the same values into equal
    groups whose gap is at least as large (a permutation test: small when the filters sort by group,
    near uniform on [0, 1] when the grouping says nothing)}. ValueError unless groups divides C."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if groups < 2 or len(values) % groups:
        raise ValueError(f"tower_split needs groups >= 2 dividing the {len(values)} filters, got groups={groups}")
    means = values.view(groups, -1).mean(1)
    observed = means.max() - means.min()
    generator = torch.Generator().manual_seed(seed)
    orders = torch.rand(draws, len(values), generator=generator).argsort(1)  # one random split per row
    split_means = values[orders].view(draws, groups, -1).mean(2)
    gaps = split_means.max(1).values - split_means.min(1).values
    return {"means": means.tolist(), "gap": float(observed), "p": float((gaps >= observed - 1e-12).double().mean())}


def plot_towers(weight: torch.Tensor, groups: int = 2, title: str = ""):
    """conv1's filters, one grid per group (GPU), each filter titled with its colourfulness, the
    group's mean beside its row: Figure 3's layout. Each filter is shown as 0.5 + w / (2 max|w|), so
    mid-grey is a zero weight and the grey axis stays grey: stretching each colour's range to [0, 1]
    would paint a brightness blob whose R, G, B weights differ by a tenth in vivid colour. Returns the
    Figure."""
    values = colourfulness(weight)
    per_group = len(weight) // groups
    ncols = min(per_group, 16)
    rows_per_group = math.ceil(per_group / ncols)
    fig, axes = plt.subplots(groups * rows_per_group, ncols, squeeze=False,
                             figsize=(0.75 * ncols, 1.0 * groups * rows_per_group + 0.5))
    for ax in axes.flat:
        ax.axis("off")
    for i, w in enumerate(weight.detach().cpu()):
        g, j = divmod(i, per_group)
        ax = axes[g * rows_per_group + j // ncols, j % ncols]
        ax.imshow(to_image(0.5 + w / (2 * w.abs().max()).clamp_min(1e-12)), interpolation="nearest")
        ax.set_title(f"{values[i]:.2f}", fontsize=10)
    for g in range(groups):
        axes[g * rows_per_group, 0].text(-0.3, 0.5, f"GPU {g + 1}\nmean {values[g * per_group:(g + 1) * per_group].mean():.2f}",
                                         transform=axes[g * rows_per_group, 0].transAxes, ha="right", va="center",
                                         fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
