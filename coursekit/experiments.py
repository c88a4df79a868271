"""Small training experiments from the AlexNet paper, shrunk to CIFAR-10 on a laptop:
the ReLU-vs-tanh race of Figure 1, the ablations of section 3 (LRN, overlapping pooling, dropout),
and Figure 3's two families of conv1 filters on the two GPUs (colourfulness per filter and group)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

from . import data as _data
from . import hooks as _hooks
from . import models as _models
from . import train as _train
from .plot import to_image
from .widgets import Choice, panel_controls


def epochs_to_reach(errors, error: float = 0.25) -> float:
    """The first epoch (1, 2, ...) whose training error is at most `error`; inf if none is.
    errors: one training error per epoch."""
    for epoch, value in enumerate(errors, start=1):
        if value <= error:
            return epoch
    return math.inf


SATURATED = 0.97  # |tanh| above this passes less than 6% of the gradient (1 - 0.97**2)
PILOT_LRS = (0.001, 0.002, 0.005, 0.01, 0.02)  # SGD learning rates the pilot tries for each activation


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
    "speedup" (the same ratio at the error tanh ends the race with, which every race reaches:
    the race's epochs over the epochs ReLU needs to get there) and "text", one sentence."""
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
    speedup = epochs / epochs_to_reach(curves.relu, tanh_end)
    text += (f"; at tanh's final {tanh_end:.1%} training error ReLU is {speedup:.1f}x as fast (paper, at 25%: "
             f"about 6x); ReLU leads by more than the seed spread at epochs {leading} of 1-{epochs}")
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


ABLATIONS = {
    "none (full recipe)": {},
    "LRN": {"lrn": False},
    "overlapping pooling": {"overlap": False},
    "dropout": {"dropout": 0.0},
}


def ablate(train_set, test_set, epochs: int, seeds=(0, 1), width: float = 0.25, progress: bool = True) -> pd.DataFrame:
    """Train MiniAlexNet with one ingredient removed at a time, for each seed: a tidy table."""
    rows = []
    for removed, change in ABLATIONS.items():
        for seed in seeds:
            torch.manual_seed(seed)
            model = _models.mini_alexnet(width=width, **change)
            _train.fit(model, train_set, epochs=epochs, seed=seed, progress=progress)
            rows.append({"removed": removed, "seed": seed, **_train.evaluate(model, test_set)})
    return pd.DataFrame(rows)


ABLATION_PANEL = [Choice("removed", list(ABLATIONS), "none (full recipe)", "remove")]


@panel_controls(ABLATION_PANEL)
def ablation_panel(results: pd.DataFrame, removed: str):
    """Test accuracy with one ingredient removed, beside the full recipe, every seed shown."""
    if removed not in ABLATIONS:
        raise ValueError(f"removed is {removed!r}; choose one of {list(ABLATIONS)}")
    full = "none (full recipe)"
    bars = {"full recipe": full} if removed == full else {"full recipe": full, f"without {removed}": removed}
    fig, ax = plt.subplots(figsize=(5, 3))
    for x, (label, name) in enumerate(bars.items()):
        scores = results.loc[results.removed == name, "top1"]
        ax.bar(x, scores.mean(), color=["tab:blue", "tab:orange"][x], alpha=0.6, label=label)
        ax.scatter([x] * len(scores), scores, color="black", zorder=3, s=12)
        ax.text(x, scores.mean(), f"{scores.mean():.1%}", ha="center", va="bottom")
    ax.set_xticks(range(len(bars)), list(bars))
    ax.set_ylabel("test top-1"); ax.set_ylim(0, 1)
    ax.set_title("dots: one seed each; their spread is the noise", fontsize=10)
    fig.tight_layout()
    return fig


def noise_verdict(results: pd.DataFrame) -> pd.DataFrame:
    """Each ablation's change against the full recipe, and whether it exceeds the seed spread."""
    base = results[results.removed == "none (full recipe)"]["top1"]
    spread = float(base.max() - base.min())
    rows = []
    for name, group in results.groupby("removed", sort=False):
        change = float(group.top1.mean() - base.mean())
        noise = max(spread, float(group.top1.max() - group.top1.min()))
        rows.append({"removed": name, "mean top1": group.top1.mean(), "change": change,
                     "seed spread": noise, "beyond noise": abs(change) > noise})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Figure 3: two families on two GPUs

def colourfulness(weight: torch.Tensor) -> torch.Tensor:
    """The share of each first-layer filter's energy off the grey axis: ||w - g||^2 / ||w||^2, where g
    repeats w's mean over the colour channels at every pixel (the part of the filter that sees only
    brightness). weight: (C_out, 3, k, k) -> (C_out,) in [0, 1] on the CPU. 0: colour-agnostic (the
    same weights in R, G and B: a grey edge); 1: colour-opponent with no brightness part (R, G, B
    weights summing to 0 at every pixel). A random Gaussian filter has 2/3 on average (two of the
    three colour directions of each pixel are off the grey axis; exactly Beta(k^2, k^2 / 2)).
    ValueError unless the filters have 3 colour channels."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"colourfulness needs first-layer weights (C_out, 3, k, k), got {tuple(weight.shape)}")
    w = weight.detach().cpu().double()
    off_grey = w - w.mean(1, keepdim=True)
    return (off_grey.pow(2).flatten(1).sum(1) / w.pow(2).flatten(1).sum(1).clamp_min(1e-30)).float()


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
