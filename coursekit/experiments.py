"""Small training experiments from the AlexNet paper, shrunk to CIFAR-10 on a laptop:
the ReLU-vs-tanh race of Figure 1 and the ablations of section 3 (LRN, overlapping pooling, dropout)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

from . import data as _data
from . import models as _models
from . import train as _train
from .widgets import Choice, panel_controls


def epochs_to_reach(history: _train.History, error: float = 0.25) -> float:
    """The first epoch whose training error is at most `error` (inf if it never gets there)."""
    for row in history.rows:
        if 1 - row["train_top1"] <= error:
            return row["epoch"]
    return math.inf


def activation_race(train_set: _data.ImageSet, epochs: int, lr: float = 0.01, width: int = 32,
                    batch_size: int = 32, seed: int = 0, progress: bool = True,
                    test_set: _data.ImageSet | None = None) -> dict[str, _train.History]:
    """Figure 1: the same four-layer CNN with ReLU and with tanh, no regularization, same SGD;
    each activation gets its standard initialization (He for ReLU, Xavier for tanh).
    Returns {"relu": History, "tanh": History}, one row per epoch with train_top1 (and test_top1
    when test_set is given: held-out images tell learning the classes from memorizing the images)."""
    histories = {}
    for activation in ("relu", "tanh"):
        torch.manual_seed(seed)
        model = _models.four_layer_cnn(activation, width=width)
        _models.init_weights(model, activation)
        histories[activation] = _train.fit(model, train_set, test_set, epochs=epochs, batch_size=batch_size, lr=lr,
                                           weight_decay=0.0, schedule=None, augment=False, seed=seed,
                                           progress=progress)
    return histories


def race_verdict(histories: dict[str, _train.History], error: float = 0.25) -> str:
    """One sentence on who reached `error` training error first, from the measured curves."""
    reach = {name: epochs_to_reach(h, error) for name, h in histories.items()}
    relu, tanh = reach["relu"], reach["tanh"]
    if relu == tanh == math.inf:
        return f"neither reached {error:.0%} training error in this budget: too short a race to call"
    if relu < tanh:
        ratio = "" if tanh == math.inf else f", {tanh / relu:.1f}x faster (paper: about 6x)"
        return f"ReLU reached {error:.0%} training error first{ratio}"
    return (f"tanh reached {error:.0%} training error first (epoch {tanh} vs {relu}): the paper's effect "
            f"does not show at this scale")


def plot_race(histories: dict[str, _train.History], error: float = 0.25):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    styles = {"relu": "-", "tanh": "--"}
    for name, history in histories.items():
        line, = ax.plot(history["epoch"], [1 - a for a in history["train_top1"]], styles.get(name, "-"),
                        marker="o", label=f"{name}, training")
        if all(a is not None for a in history["test_top1"]):
            ax.plot(history["epoch"], [1 - a for a in history["test_top1"]], styles.get(name, "-"),
                    color=line.get_color(), alpha=0.45, label=f"{name}, held-out")
    ax.axhline(error, color="grey", lw=0.8)
    ax.set_xlabel("epoch"); ax.set_ylabel("error rate"); ax.set_ylim(0, 1)
    ax.legend(); ax.set_title("Figure 1, scaled down: ReLU vs tanh")
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
