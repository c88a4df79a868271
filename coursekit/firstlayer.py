"""How visualizing the first layer improves an architecture: Zeiler & Fergus 2014, section 4.1.

Zeiler & Fergus looked at AlexNet's first layer (11x11 filters at stride 4) and saw a mix of very
high and very low frequency filters with few in between, dead filters, and aliasing in conv2; with
7x7 filters at stride 2 (and conv2 at stride 2, so the later maps keep their size) the first two
layers kept more information and the network got more accurate. We repeat it small: the same
MiniAlexNet body behind each first layer, on CIFAR-10 enlarged 2x inside the network (so a
stride of 4 has pixels to skip), each trained on a short recipe through the backbone cache
(backbones.trained_cifar10), so a null run hands out their initial weights like every network.
Zeiler & Fergus changed the filter size and the stride at once; a third first layer, 7x7 at stride
4, changes only the size, so the stride's effect is read at one filter size.

Frequencies are in cycles per pixel of conv1's input. A layer of stride s samples its output every
s pixels, so it can represent only frequencies below its Nyquist limit 1 / (2 s): 1/8 at stride 4,
1/4 at stride 2. The band between the two is what the large stride cannot keep.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
import torchvision

from . import backbones as _backbones
from . import hooks as _hooks
from . import plot as _plot
from . import settings as _settings

# the two first layers of section 4.1, on the same body; conv2's stride brings the maps back to one
# size from pool2 on (conv1, pool1, conv2, pool2 sides: 11x11/4 16, 7, 7, 3; 7x7/2 32, 15, 8, 3), as
# Zeiler & Fergus's Figure 3 gave conv2 stride 2. The third is the size-matched control: Zeiler &
# Fergus's 7x7 filters at AlexNet's stride 4 (16, 7, 7, 3 like AlexNet's), so the stride's effect is
# measured at one kernel size (a filter's size alone moves its band shares: a 7x7 and an 11x11 filter
# of the same smooth noise differ in their mid-band share)
FIRST_LAYERS = {
    "11x11 stride 4 (AlexNet)": {"conv1": [11, 4], "conv2_stride": 1},
    "7x7 stride 2 (Zeiler & Fergus)": {"conv1": [7, 2], "conv2_stride": 2},
    "7x7 stride 4 (control)": {"conv1": [7, 4], "conv2_stride": 1},
}
UPSAMPLE = 2  # CIFAR-10's 32 px enlarged to 64 px in front of conv1


def recipe(first_layer: str, seed: int, cfg=None) -> dict:
    """The backbone's training recipe for a narrow MiniAlexNet (width 0.25, no LRN, no dropout: the
    cheap ingredients of backbones.source_recipe) behind one of FIRST_LAYERS, on 200 images per class
    for 4 epochs in quick mode (1,000 for 6 in full). KeyError names the valid first layers."""
    cfg = _settings.current(cfg)
    if first_layer not in FIRST_LAYERS:
        raise KeyError(f"unknown first layer {first_layer!r}; use one of {list(FIRST_LAYERS)}")
    arch = {"width": 0.25, "lrn": False, "dropout": 0.0, "upsample": UPSAMPLE, **FIRST_LAYERS[first_layer]}
    return {**_backbones.cifar10_recipe(cfg), "arch": arch, "seed": seed,
            "per_class": cfg.pick(quick=200, full=1000), "epochs": cfg.pick(quick=4, full=6)}


def initial_filters(recipe: dict) -> torch.Tensor:
    """The conv1 weights (out, 3, k, k) the recipe's training starts from (backbones.initial_weights),
    on the CPU."""
    return _hooks.get_layer(_backbones.initial_weights(recipe, 10), "conv1").weight.detach().cpu()


def learned_part(model, recipe: dict) -> torch.Tensor:
    """What training added to conv1: its weights (out, 3, k, k) minus `initial_filters`, on the CPU.
    All zeros for an untrained network (a null run hands out the initial weights)."""
    return _hooks.get_layer(model, "conv1").weight.detach().cpu() - initial_filters(recipe)


def radial_spectrum(filters: torch.Tensor, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Filters (out, 3, k, k) -> (radius (n * n,): each DFT bin's radial frequency in cycles per
    pixel, energy (out, n * n): the |DFT|^2 of each filter's pattern there, summed over colours,
    zero-padded to n x n). The pattern is the filter minus its mean over space per colour: the mean
    sets the response to flat colour, which has no spatial frequency for a stride to alias."""
    f = torch.fft.fftfreq(n)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().flatten()
    pattern = filters.double() - filters.double().mean((2, 3), keepdim=True)
    energy = (torch.fft.fft2(pattern, s=(n, n)).abs() ** 2).sum(1).flatten(1)
    return radius, energy


def band_share(filters: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(out,) each filter's share of its pattern's energy (radial_spectrum) at radial frequencies in
    [low, high) cycles/pixel; 0 for a filter with no pattern at all (e.g. nothing learned)."""
    radius, energy = radial_spectrum(filters)
    inside = energy[:, (radius >= low) & (radius < high)].sum(1)
    total = energy.sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total)).float()


def nyquist(stride: int) -> float:
    """The highest frequency (cycles/pixel) a layer of this stride can represent: 1 / (2 stride)."""
    return 1 / (2 * stride)


def dead_units(model, images: torch.Tensor, layer: str = "relu1") -> torch.Tensor:
    """(channels,) bool: the units of `layer` that are never positive anywhere on `images` (N, 3, H, W)
    in [0, 1], so their filters get no gradient: Zeiler & Fergus's dead filters."""
    with torch.no_grad(), _hooks.capture(model, [layer]) as acts:
        model(images)
    return (acts[layer] > 0).sum((0, 2, 3)) == 0


def measure(model, recipe: dict, images: torch.Tensor) -> dict:
    """One trained network's section-4.1 numbers: the share of its learned conv1 pattern energy in the
    band only the stride-2 layer can keep ('mid': [1/8, 1/4) cycles/px), below it ('low') and above
    ('high'), as means over filters; 'changed': |learned part| / |initial filter|, the mean over
    filters; 'dead': how many conv1 units are never on over `images`."""
    start, part = initial_filters(recipe), learned_part(model, recipe)
    edges = [0.0, nyquist(4), nyquist(2), math.inf]
    low, mid, high = (float(band_share(part, a, b).mean()) for a, b in zip(edges, edges[1:]))
    changed = float((part.flatten(1).norm(dim=1) / start.flatten(1).norm(dim=1)).mean())
    return {"low": low, "mid": mid, "high": high, "changed": changed,
            "dead": int(dead_units(model, images).sum())}


def compare(images: torch.Tensor, seeds, cfg=None, progress: bool = False) -> tuple[list[dict], dict]:
    """Each of FIRST_LAYERS trained once per seed (cached like the backbone; about 5 CPU-seconds
    per stride-4 network and 7 per stride-2 one in quick mode). Returns (rows: one per
    (first_layer, seed) with its held-out top-1 on the CIFAR-10 test set and `measure`'s numbers,
    models: {first_layer: (the first seed's trained network, its recipe)}, what the figures take)."""
    rows, models = [], {}
    for name in FIRST_LAYERS:
        for seed in seeds:
            r = recipe(name, seed, cfg)
            model, info = _backbones.trained_cifar10(r, cfg, progress)
            rows.append({"first_layer": name, "seed": seed, "top1": info["test_top1"],
                         **measure(model, r, images)})
            models.setdefault(name, (model, r))
    return rows, models


def _mosaic(filters: torch.Tensor, ncols: int = 8) -> torch.Tensor:
    """Filters (out, 3, k, k), each stretched to [0, 1] on its own, tiled into one image."""
    return torchvision.utils.make_grid(torch.stack([_plot.rescale(w) for w in filters]), nrow=ncols,
                                       padding=1, pad_value=1.0)


def filters_figure(models: dict, n: int = 32):
    """For each first layer (rows): its first n conv1 filters, and what training added to them
    (each tile stretched to [0, 1] on its own, as plot.filter_grid does); models is compare's."""
    fig, axes = plt.subplots(len(models), 2, figsize=(8, 2.2 * len(models)), squeeze=False)
    for row, (name, (model, r)) in zip(axes, models.items()):
        weight = _hooks.get_layer(model, "conv1").weight.detach().cpu()[:n]
        for ax, shown, what in zip(row, (weight, learned_part(model, r)[:n]), ("filters", "learned part")):
            ax.imshow(_plot.to_image(_mosaic(shown)), interpolation="nearest")
            ax.set_title(f"{name}: {what}", fontsize=10)
            ax.axis("off")
    fig.tight_layout()
    return fig


def spectrum_figure(models: dict, bins: int = 24):
    """The learned conv1 part's mean pattern energy by radial frequency for each first layer (each curve
    scaled to sum to 1), with both strides' Nyquist limits marked: the stride-4 layer's learned
    energy should stop at 1/8."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    edges = torch.linspace(0, 0.5 * math.sqrt(2), bins + 1, dtype=torch.float64)
    for name, (model, r) in models.items():
        radius, energy = radial_spectrum(learned_part(model, r))
        which = torch.bucketize(radius, edges[1:-1])
        profile = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, energy.mean(0))
        ax.plot((edges[:-1] + edges[1:]) / 2, profile / profile.sum().clamp_min(1e-300), marker="o", ms=3, label=name)
    for stride, height in ((4, 0.92), (2, 0.78)):
        ax.axvline(nyquist(stride), color="grey", lw=0.8, ls="--")
        ax.text(nyquist(stride), height, f" stride {stride}'s limit, 1/{2 * stride}", fontsize=10,
                transform=ax.get_xaxis_transform())
    ax.set_xlabel("radial frequency (cycles per pixel of conv1's input)")
    ax.set_ylabel("share of learned energy")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
