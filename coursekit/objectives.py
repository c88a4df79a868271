"""What an image is optimized for: small objectives that add and scale like numbers.

An Objective maps what one forward pass produced to one number per image (the loop
maximizes their sum). It reads a dict with the model's output under "logits", the image
itself (in [0, 1], before any random transform) under "image", and the activation of every
layer it names:

    obj = class_score(3) - 0.05 * l2(center=0.5)          # Simonyan et al. 2014
    obj = layer_norm("conv4")                             # DeepDream
    obj = -feature_error("conv3", phi0) - 10 * tv(2)      # Mahendran & Vedaldi 2015

Penalties (l2, tv, alpha_norm) are positive numbers; subtract them. The plain tensor
functions behind them (total_variation, alpha_norm_of) are here too, for tests and exercises.
"""
from __future__ import annotations

from typing import Callable

import torch

Outputs = dict  # {"logits": (N, K), "image": (N, 3, H, W), "<layer>": activation, ...}


class Objective:
    """A function of the forward pass returning one value per image, named for the progress bar."""

    def __init__(self, fn: Callable[[Outputs], torch.Tensor], layers=(), name: str = "objective",
                 needs_logits: bool = False):
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))  # ordered, no duplicates
        self.name = name
        self.needs_logits = needs_logits

    def __call__(self, outputs: Outputs) -> torch.Tensor:
        return self.fn(outputs)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def _join(self, other: "Objective", op, symbol: str) -> "Objective":
        return Objective(lambda out: op(self(out), other(out)), self.layers + other.layers,
                         f"{self.name} {symbol} {other.name}", self.needs_logits or other.needs_logits)

    def __add__(self, other):
        if isinstance(other, (int, float)):
            return Objective(lambda out: self(out) + other, self.layers, f"{self.name} + {other:g}",
                             self.needs_logits)
        _check_objective(other, "+")
        return self._join(other, torch.add, "+")

    __radd__ = __add__

    def __neg__(self):
        return -1 * self

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, factor):
        if not isinstance(factor, (int, float)) or isinstance(factor, bool):
            raise TypeError(f"an objective can only be scaled by a number, not {type(factor).__name__}; "
                            f"add objectives with + instead")
        name = self.name if factor == 1 else f"{factor:g}*({self.name})"
        return Objective(lambda out: factor * self(out), self.layers, name, self.needs_logits)

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        return self * (1.0 / divisor)


def _check_objective(other, symbol):
    if not isinstance(other, Objective):
        raise TypeError(f"cannot combine an Objective with {type(other).__name__} using {symbol}; "
                        f"use a number or another Objective")


def _layer(outputs: Outputs, name: str) -> torch.Tensor:
    if name not in outputs:
        raise RuntimeError(f"layer {name!r} never ran in the forward pass: it is not on the path from "
                           f"input to output")
    return outputs[name]


def _check_index(index: int, size: int, what: str) -> None:
    if not 0 <= index < size:
        raise ValueError(f"{what} {index} is out of range: this layer has {size}, use 0..{size - 1}")


# ---------------------------------------------------------------- what the network says

def class_score(c) -> Objective:
    """S_c(I): the unnormalized score (logit) of class c, as Simonyan et al. maximize it. c: one class
    index for every image, or a sequence of them, one per image of the batch (several class models
    climbed in one batch)."""
    classes = [c] if isinstance(c, int) else [int(k) for k in c]

    def fn(out):
        logits = out["logits"]
        for k in classes:
            _check_index(k, logits.shape[1], "class")
        if isinstance(c, int):
            return logits[:, c]
        if len(classes) != len(logits):
            raise ValueError(f"{len(classes)} classes given for a batch of {len(logits)} images: give one per image")
        return logits[torch.arange(len(logits), device=logits.device), torch.tensor(classes, device=logits.device)]
    return Objective(fn, (), f"score[{c if isinstance(c, int) else ','.join(map(str, classes))}]", needs_logits=True)


def class_prob(c: int) -> Objective:
    """The softmax probability of class c: can also grow by pushing the other classes down."""
    def fn(out):
        _check_index(c, out["logits"].shape[1], "class")
        return out["logits"].softmax(1)[:, c]
    return Objective(fn, (), f"prob[{c}]", needs_logits=True)


def channel(layer, c) -> Objective:
    """The mean activation of channel c of a named layer (a unit, for fully connected layers), the
    channel objective of Olah et al. 2017. layer and c: one for every image, or sequences, one per
    image of the batch (several channels, of one layer or of several, visualized in one batch)."""
    if isinstance(layer, str) and isinstance(c, int):
        return Objective(lambda out: _channel_mean(_layer(out, layer), c, layer), (layer,), f"{layer}[{c}]")
    n = len(c) if isinstance(layer, str) else len(layer)
    layers = [layer] * n if isinstance(layer, str) else [str(name) for name in layer]
    channels = [c] * n if isinstance(c, int) else [int(k) for k in c]
    if len(layers) != len(channels):
        raise ValueError(f"{len(layers)} layers but {len(channels)} channels: give one (layer, channel) per image")

    def fn(out):
        acts = [_layer(out, name) for name in layers]
        if len(acts[0]) != n:
            raise ValueError(f"{n} channels given for a batch of {len(acts[0])} images: give one per image")
        return torch.stack([_channel_mean(act[[i]], k, name)[0]
                            for i, (act, name, k) in enumerate(zip(acts, layers, channels))])
    return Objective(fn, tuple(layers), ",".join(f"{name}[{k}]" for name, k in zip(layers, channels)))


def _channel_mean(act: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """(N,): channel c of act (N, C, H, W) averaged over positions, or unit c of act (N, C)."""
    _check_index(c, act.shape[1], f"channel of {layer}")
    return act[:, c].flatten(1).mean(1) if act.dim() > 2 else act[:, c]


def unit(layer: str, c: int, y: int | None = None, x: int | None = None) -> Objective:
    """One neuron: channel c at spatial position (y, x) of a conv layer (default: the centre)."""
    def fn(out):
        act = _layer(out, layer)
        _check_index(c, act.shape[1], f"channel of {layer}")
        if act.dim() == 2:
            return act[:, c]
        h, w = act.shape[2:]
        row, col = (h // 2 if y is None else y), (w // 2 if x is None else x)
        _check_index(row, h, f"row of {layer}")
        _check_index(col, w, f"column of {layer}")
        return act[:, c, row, col]
    return Objective(fn, (layer,), f"{layer}[{c},{y},{x}]")


def layer_norm(layer: str) -> Objective:
    """DeepDream's objective: the mean squared activation of a whole layer ("more of whatever it sees")."""
    return Objective(lambda out: _layer(out, layer).pow(2).flatten(1).mean(1), (layer,), f"|{layer}|^2")


def feature_error(layer: str, target: torch.Tensor) -> Objective:
    """||phi(x) - phi_0||^2 / ||phi_0||^2 at a named layer: Mahendran & Vedaldi's loss (subtract it)."""
    target = target.detach()
    denominator = target.pow(2).flatten(1).sum(1).clamp_min(1e-12)

    def fn(out):
        act = _layer(out, layer)
        if act.shape[1:] != target.shape[1:]:
            raise ValueError(f"target features for {layer!r} have shape {tuple(target.shape[1:])} but the "
                             f"image gives {tuple(act.shape[1:])}: make the target from an image of the same size")
        return (act - target).pow(2).flatten(1).sum(1) / denominator
    return Objective(fn, (layer,), f"err({layer})")


# ---------------------------------------------------------------- image priors (penalties)

def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """TV_beta per image: the mean over pixels of ((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2)^(beta/2).

    beta=2 is the plain squared-gradient penalty; beta=1 the classic TV (sharp edges allowed).
    """
    if beta <= 0:
        raise ValueError(f"TV exponent beta must be > 0 (1 or 2 are usual), not {beta}")
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    squared = dx.pow(2) + dy.pow(2)
    if beta == 2:
        return squared.flatten(1).mean(1)
    # (0)^(beta/2) has an infinite slope for beta < 2: give flat spots a zero gradient instead
    flat = squared == 0
    powered = torch.where(flat, torch.ones_like(squared), squared).pow(beta / 2)
    return torch.where(flat, torch.zeros_like(powered), powered).flatten(1).mean(1)


def alpha_norm_of(x: torch.Tensor, alpha: float = 6.0, center: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The mean of |x - center|^alpha per image: a large alpha stops a few pixels running off."""
    if alpha < 1:
        raise ValueError(f"alpha must be >= 1 (Mahendran & Vedaldi use 6), not {alpha}")
    return (x - center).abs().pow(alpha).flatten(1).mean(1)


def l2(center: float | torch.Tensor = 0.0) -> Objective:
    """||I - center||_2^2, the SUM of (I - center)^2 over all 3 x H x W values: Simonyan et al.'s
    squared L2 norm, as on the slide (center = the mean image). A sum, not a mean: each pixel then
    feels the pull 2 * lambda * (I - center) whatever the image size, so lambda means the same at
    32 and 224 pixels (a mean divides that pull by 3 H W and leaves it too weak to show)."""
    return Objective(lambda out: (out["image"] - center).pow(2).flatten(1).sum(1), (), "l2")


def tv(beta: float = 2.0) -> Objective:
    """Total variation with exponent beta of the image, as a penalty."""
    total_variation(torch.zeros(1, 1, 2, 2), beta)  # check beta now, not mid-run
    return Objective(lambda out: total_variation(out["image"], beta), (), f"tv{beta:g}")


def alpha_norm(alpha: float = 6.0, center: float | torch.Tensor = 0.0) -> Objective:
    """The alpha-norm of the (centred) image, as a penalty."""
    alpha_norm_of(torch.zeros(1, 1), alpha)
    return Objective(lambda out: alpha_norm_of(out["image"], alpha, center), (), f"alpha{alpha:g}")
