"""Feature evolution during training (Zeiler & Fergus 2014, Figure 4: "early layers converge faster").

Train once, keeping a copy of the weights at growing epochs; then ask, per layer, how far each
snapshot is from the final network:
    representation: linear CKA between the layer's activations now and at the end, on fixed probe
                    images (Kornblith et al. 2019); 1 means the same features up to rotation/scale
    weights:        1 - cosine similarity of the flattened weights
A layer has "settled" at the first snapshot from which its CKA to the final network stays >= 0.9.
Zeiler & Fergus's own view is each unit's top-9 images (patches.py):
    progress:       how much of the way from its top-9 at initialization to its final top-9 a layer
                    has come (0 at initialization, 1 at the end), judged against the layer's own start
                    because a barely trained conv1 already resembles its final self (CKA about 0.8)
    class purity:   the share of a unit's top-9 images that belong to its most common class: what the
                    upper layers develop when they learn classes, and cannot when labels are shuffled
"""
from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from . import hooks, patches, train
from .plot import filter_grid
from .widgets import Slider, panel_controls, validate


def train_with_snapshots(model: nn.Module, train_set, epochs: list[int], seed: int = 0,
                         **fit_args) -> dict[int, dict]:
    """Train `model` up to max(epochs), returning {epoch: state_dict} at each listed epoch
    (0 = before training). One train.fit call per gap between snapshots, at a constant learning
    rate (no schedule), each with its own seed so no gap replays another's batches."""
    if sorted(set(epochs)) != list(epochs) or epochs[0] < 0:
        raise ValueError(f"epochs must be increasing and >= 0, got {epochs}")
    snapshots, done = {}, 0
    for epoch in epochs:
        if epoch > done:
            train.fit(model, train_set, epochs=epoch - done, schedule=None, progress=False,
                      seed=seed * 1000 + done, **fit_args)
            done = epoch
        snapshots[epoch] = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return snapshots


def _cpu_float64(x: torch.Tensor) -> torch.Tensor:
    """x as float64 on the CPU, whatever its device: the similarity of nearly identical layers
    needs float64, and Apple's MPS has none (moving first, then converting, works everywhere)."""
    return x.detach().cpu().double()


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA of two activation matrices (n examples, any shape): 1 = same up to rotation and scale.

    ||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F) for centred A, B; computed with the n x n Gram
    matrices A A^T, B B^T instead when the layers are wider than there are examples (same value).
    Computed in float64 on the CPU, whatever the inputs' device.
    """
    a = _cpu_float64(a.flatten(1))
    b = _cpu_float64(b.flatten(1))
    a = a - a.mean(0)
    b = b - b.mean(0)
    if a.shape[1] + b.shape[1] > 2 * a.shape[0]:
        ka, kb = a @ a.T, b @ b.T
        return float((ka * kb).sum() / (ka.norm() * kb.norm()).clamp_min(1e-30))
    return float((b.T @ a).norm() ** 2 / ((a.T @ a).norm() * (b.T @ b).norm()).clamp_min(1e-30))


def weight_change(w: torch.Tensor, w_ref: torch.Tensor) -> float:
    """1 - cosine similarity of two weight tensors (in float64 on the CPU, whatever their device)."""
    w, w_ref = _cpu_float64(w.flatten()), _cpu_float64(w_ref.flatten())
    return 1 - float(torch.nn.functional.cosine_similarity(w, w_ref, 0))


@torch.no_grad()
def similarity_to_final(model: nn.Module, snapshots: dict[int, dict], probe: torch.Tensor,
                        layers: list[str]) -> dict[str, dict[int, float]]:
    """{layer: {epoch: CKA(activations at epoch, activations at the last snapshot)}} on `probe` images."""
    def acts(state):
        model.load_state_dict(state)
        return hooks.activations(model.eval(), probe, layers)

    epochs = sorted(snapshots)
    final = acts(snapshots[epochs[-1]])
    table = {layer: {} for layer in layers}
    for epoch in epochs:
        now = acts(snapshots[epoch])
        for layer in layers:
            table[layer][epoch] = linear_cka(now[layer], final[layer])
    model.load_state_dict(snapshots[epochs[-1]])
    return table


def weight_changes(model: nn.Module, snapshots: dict[int, dict], layers: list[str]) -> dict[str, dict[int, float]]:
    """{layer: {epoch: 1 - cos(weights at epoch, final weights)}}."""
    epochs = sorted(snapshots)
    names = {layer: _weight_key(model, layer) for layer in layers}
    last = snapshots[epochs[-1]]
    return {layer: {e: weight_change(snapshots[e][key], last[key]) for e in epochs} for layer, key in names.items()}


def _weight_key(model: nn.Module, layer: str) -> str:
    target = hooks.get_layer(model, layer)
    for name, module in model.named_modules():
        if module is target:
            return f"{name}.weight"
    raise KeyError(layer)


@torch.no_grad()
def top_images(model: nn.Module, snapshots: dict[int, dict], probe: torch.Tensor, layers: list[str],
               k: int = 9) -> dict[int, dict[str, torch.Tensor]]:
    """{epoch: {layer: (channels, k) indices into probe}}: each unit's k strongest probe images at each
    snapshot (its maximum over positions, as in Zeiler & Fergus's top-9). Leaves the last snapshot loaded."""
    if len(probe) < k:
        raise ValueError(f"need at least k={k} probe images, got {len(probe)}")
    tops = {}
    for epoch in sorted(snapshots):
        model.load_state_dict(snapshots[epoch])
        acts = hooks.activations(model.eval(), probe, layers)
        tops[epoch] = {l: patches.strongest_per_channel(acts[l])[0].topk(k, dim=0).indices.T.cpu() for l in layers}
    return tops


def overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per unit, the share of a's top-k images that are also among b's: (channels, k) x2 -> (channels,)."""
    return (a[:, :, None] == b[:, None, :]).any(2).float().mean(1)


def top9_progress(tops: dict[int, dict[str, torch.Tensor]]) -> dict[str, dict[int, torch.Tensor]]:
    """{layer: {epoch: per-unit progress (channels,)}}: (overlap_t - overlap_0) / (1 - overlap_0), the
    overlap of each unit's top images with its final ones measured against the layer's mean overlap
    at initialization, so every layer runs from 0 (initialization) to 1 (the last snapshot)."""
    epochs = sorted(tops)
    final = tops[epochs[-1]]
    table = {}
    for layer in final:
        start = float(overlap(tops[epochs[0]][layer], final[layer]).mean())
        if start >= 1:
            raise ValueError(f"{layer}: its top images at the first snapshot already equal the last: "
                             f"nothing changed (was the network trained?)")
        table[layer] = {e: (overlap(tops[e][layer], final[layer]) - start) / (1 - start) for e in epochs}
    return table


def class_purity(tops: dict[int, dict[str, torch.Tensor]], labels: torch.Tensor) -> dict[str, dict[int, torch.Tensor]]:
    """{layer: {epoch: per-unit purity (channels,)}}: the share of each unit's top images that belong to
    its most common class (labels: the probe's true classes, (N,)). 1/k at least; near 1 for a unit
    that responds to one class."""
    labels = labels.cpu()
    classes = int(labels.max()) + 1
    table = {}
    for epoch in sorted(tops):
        for layer, top in tops[epoch].items():
            counts = torch.nn.functional.one_hot(labels[top], classes).sum(1)     # (channels, classes)
            table.setdefault(layer, {})[epoch] = counts.max(1).values.float() / top.shape[1]
    return table


def settled_at(similarity: dict[int, float], threshold: float = 0.9) -> int:
    """The first epoch from which similarity to the final network stays >= threshold."""
    epochs = sorted(similarity)
    for i, epoch in enumerate(epochs):
        if all(similarity[e] >= threshold for e in epochs[i:]):
            return epoch
    return epochs[-1]


def plot_similarity(table: dict[str, dict[int, float]], ylabel: str = "CKA to the final network"):
    """One line per layer of a per-snapshot measure: `table` maps a layer name to {epoch: value},
    plotted against the snapshot's epoch with `ylabel` on the y axis (notebook 03's convergence
    figure, Zeiler & Fergus 2014 Figure 4). Returns the figure."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for layer, series in table.items():
        ax.plot(list(series), list(series.values()), "o-", label=layer)
    ax.set_xlabel("epoch of the snapshot")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=10, ncol=2)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- Try it: scrub through training

SNAPSHOT_PANEL = [Slider("snapshot", 0, 4, 1, 4, "snapshot (0 = first)")]


@panel_controls(SNAPSHOT_PANEL)
def snapshot_panel(model: nn.Module, snapshots: dict[int, dict], table: dict[str, dict[int, float]], snapshot: int,
                   xlabel: str = "top-9 progress (0 = start, 1 = end)"):
    """conv1's first 32 filters at one snapshot, beside a bar per layer: that layer's value in `table`
    at the snapshot's epoch (Zeiler & Fergus 2014, Figure 4, scrubbed through).

    snapshots: epoch -> state dict (`train_with_snapshots`); table: layer -> {epoch: float}, one
    number per layer and snapshot, such as each layer's mean top-9 progress
    (`{l: {e: float(v.mean()) for e, v in top9_progress(tops)[l].items()} for l in layers}`: 0 at
    initialization, 1 at the end; negative where a layer's top-9 images moved away from their final
    set) or `similarity_to_final`'s CKA (which says little about convergence, notebook 03). snapshot:
    the index into the sorted epochs (the slider), not an epoch. xlabel names the table's measure.
    Returns the Figure. ValueError for a snapshot outside 0..len(snapshots) - 1 or a table without
    that epoch."""
    validate(SNAPSHOT_PANEL, snapshot=snapshot)
    epochs = sorted(snapshots)
    if snapshot >= len(epochs):
        raise ValueError(f"snapshot {snapshot} is out of range: there are {len(epochs)} snapshots (0..{len(epochs) - 1})")
    epoch = epochs[snapshot]
    missing = [layer for layer in table if epoch not in table[layer]]
    if missing:
        raise ValueError(f"the table has no value at epoch {epoch} for {missing}: build it from the same snapshots")
    weight = snapshots[epoch][_weight_key(model, "conv1")]
    fig = filter_grid(weight[:32], ncols=8, size=0.5, suptitle=f"conv1 filters after {epoch} epochs")
    ax = fig.add_axes([1.02, 0.15, 0.5, 0.7])
    layers = list(table)
    values = [table[l][epoch] for l in layers[::-1]]
    ax.barh(layers[::-1], values, color="tab:green")
    # the same axis at every snapshot, so moving the slider shows the bars grow; progress can dip below 0
    ax.set_xlim(min(0.0, *(v for series in table.values() for v in series.values())), 1.05)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel, fontsize=10)
    return fig
