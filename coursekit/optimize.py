"""One image-optimization loop: climb an objective by changing the image, under priors.

Class model visualization (Simonyan et al. 2014), regularized visualization (Yosinski et al.
2015), DeepDream (Mordvintsev et al. 2015) and inversion (Mahendran & Vedaldi 2015) are the
same loop with different pieces, Lucent-style:

    objective        coursekit.objectives   what to maximize (class score, layer norm, -feature error, ...)
    parameterization coursekit.param        pixels, or a 1/f spectrum in decorrelated colour
    transforms       coursekit.transforms   random jitter/scale/rotate before the model sees the image
    regularizers     coursekit.transforms   in-place edits after each step (decay, blur, clipping, clamp)

    result = render(model, class_score(3) - 0.1 * l2(0.5), PixelImage(start), steps=200, lr=0.05)
    result.image, result.history

Works on any nn.Module taking [0, 1] pixels, with layers named as in coursekit.hooks.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import hooks
from .models import evaluating
from .objectives import Objective
from .param import PixelImage


@dataclass
class Result:
    """What `render` returns: the optimized image, the objective at every step, and per image at the end."""
    image: torch.Tensor                      # (N, 3, H, W) in the parameterization's range, detached
    history: list = field(default_factory=list)  # the objective (mean over images) at every step
    values: torch.Tensor | None = None       # the objective per image at the last step

    @property
    def final(self) -> float:
        return self.history[-1] if self.history else float("nan")


class NormalizedAscent(torch.optim.Optimizer):
    """DeepDream's step p <- p - lr * g / mean|g|: a fixed-size step whatever the gradient's scale
    (the loop minimizes -objective, so this climbs the objective)."""

    def __init__(self, params, lr: float = 1.5):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad, alpha=group["lr"] / p.grad.abs().mean().clamp_min(1e-12).item())


OPTIMIZERS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "normalized": lambda params, lr: NormalizedAscent(params, lr=lr),
}


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The optimizer OPTIMIZERS[name] ("adam", "sgd" or "normalized", DeepDream's fixed-size step) over
    `params` at learning rate `lr`. ValueError for another name or lr <= 0."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, not {lr}")
    return OPTIMIZERS[name](list(params), lr)


# ---------------------------------------------------------------- one forward pass

def run_model(model: nn.Module, x: torch.Tensor, objective: Objective) -> dict:
    """The outputs an objective reads: the named layers' activations (with their graphs) and, when
    it needs them, the logits. Objectives on inner layers stop the forward pass early, so
    DeepDream on conv layers also works on images the fully connected layers could not take."""
    if not objective.layers and not objective.needs_logits:
        return {}
    logits, outputs = hooks.run(model, x, objective.layers, detach=False, stop_early=not objective.needs_logits)
    return {"logits": logits, **outputs} if objective.needs_logits else outputs


@contextlib.contextmanager
def frozen(model: nn.Module, caller: str = "render"):
    """Eval mode, gradients on (even under torch.no_grad()) but not for the weights, while optimizing
    an image; the model is restored after. RuntimeError under torch.inference_mode()."""
    with evaluating(model, grad=True, caller=caller):
        flags = [(p, p.requires_grad) for p in model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


# ---------------------------------------------------------------- the loop

def render(model: nn.Module, objective: Objective, param: nn.Module, *, steps: int = 100,
           lr: float = 0.05, optimizer: str = "adam", transforms=(), regularizers=(),
           octaves: int = 1, octave_scale: float = 1.4, stop_at: float | None = None,
           progress: bool = True) -> Result:
    """Maximize `objective` over the image `param()` for `steps` steps (per octave).

    transforms: random differentiable maps applied to the image before the model sees it.
    regularizers: in-place edits of the pixels after each step (PixelImage only).
    octaves > 1 (PixelImage only): DeepDream's pyramid, from the image shrunk by octave_scale^(octaves-1)
    up to full size, carrying the detail added so far up to each larger scale.
    stop_at: stop as soon as the objective reaches this value (to compare images at equal objective).
    """
    _check_render_args(objective, param, steps, octaves, octave_scale, regularizers)
    if octaves > 1:
        check_octaves(model, objective, param().shape, octaves, octave_scale)
    from tqdm.auto import tqdm
    bar = tqdm(total=steps * octaves, desc=objective.name, disable=not progress, leave=False)
    try:
        with frozen(model):
            if octaves == 1:
                return _climb(model, objective, param, steps, lr, optimizer, transforms, regularizers,
                              stop_at, bar)
            return _octaves(model, objective, param, steps, lr, optimizer, transforms, regularizers,
                            octaves, octave_scale, bar)
    finally:
        bar.close()


def _climb(model, objective, param, steps, lr, optimizer, transforms, regularizers, stop_at, bar) -> Result:
    opt = make_optimizer(optimizer, param.parameters(), lr)
    history, values = [], None
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        image = param()
        seen = image
        for transform in transforms:
            seen = transform(seen)
        outputs = run_model(model, seen, objective)
        outputs["image"] = image
        values = objective(outputs)
        (-values.sum()).backward()
        opt.step()
        if regularizers:
            _regularize(param, regularizers, step)
        history.append(values.detach().mean().item())
        bar.update()
        if stop_at is not None and history[-1] >= stop_at:
            break
    return Result(param().detach(), history, None if values is None else values.detach())


@torch.no_grad()
def _regularize(param: PixelImage, regularizers, step: int) -> None:
    grad = -param.pixels.grad  # d(objective)/d(pixels): the loop back-propagated -objective
    for regularizer in regularizers:
        regularizer(param.pixels.data, grad, step)


def octave_sizes(size, octaves: int, scale: float) -> list[tuple[int, int]]:
    """(H, W) of each octave, smallest first, the last one `size` itself."""
    h, w = size
    return [(max(1, round(h / scale ** k)), max(1, round(w / scale ** k))) for k in reversed(range(octaves))]


def smallest_input(model: nn.Module, objective: Objective, side: int, channels: int = 3) -> int | None:
    """The smallest square image side (at most `side`) the forward pass `objective` reads can take,
    found with probe forwards of small blank images: doubling from 1 until one runs, then bisection
    (convolutions and pooling shrink every feature map, so a side above one that runs runs too).
    None when no side up to `side` runs."""
    device = next(model.parameters(), torch.zeros(0)).device

    def runs(s: int) -> bool:
        try:
            run_model(model, torch.zeros(1, channels, s, s, device=device), objective)
            return True
        except RuntimeError:  # "Output size is too small", "Kernel size can't be greater than actual input size"
            return False

    with evaluating(model):
        low, high = 0, 1  # low fails (or is 0); small probes first, so a 224 px network costs milliseconds
        while not runs(high):
            if high >= side:
                return None
            low, high = high, min(2 * high, side)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if runs(mid) else (mid, high)
    return high


def octaves_above(size, scale: float, need: int) -> int:
    """The most octaves whose smallest image (size / scale^(octaves-1)) is at least need x need."""
    octaves = 1
    while octaves < 100 and min(octave_sizes(size, octaves + 1, scale)[0]) >= need:
        octaves += 1
    return octaves


def max_octaves(model: nn.Module, objective: Objective, size, scale: float, channels: int = 3) -> int:
    """The most DeepDream octaves on an image of `size` (H, W) whose smallest image the model takes."""
    return octaves_above(size, scale, smallest_input(model, objective, min(size), channels) or 1)


def check_octaves(model: nn.Module, objective: Objective, shape, octaves: int, scale: float) -> None:
    """ValueError, before anything runs, when the pyramid's smallest image for an (N, C, H, W) `shape`
    is below what the layers the objective reads can take, naming the most octaves that fit."""
    size = tuple(shape[2:])
    need = smallest_input(model, objective, min(size), shape[1])
    h, w = octave_sizes(size, octaves, scale)[0]
    if need is not None and min(h, w) < need:
        reads = ", ".join(objective.layers) or "the logits"
        raise ValueError(f"octaves={octaves} at octave_scale={scale:g} shrink the {size[0]}x{size[1]} image to "
                         f"{h}x{w}, but {reads} needs at least {need}x{need} input pixels: use octaves <= "
                         f"{octaves_above(size, scale, need)} (or a smaller octave_scale, or a larger image)")


def _octaves(model, objective, param, steps, lr, optimizer, transforms, regularizers, octaves, scale, bar):
    base = param().detach()
    detail = torch.zeros_like(base)
    history, result = [], None
    for size in octave_sizes(base.shape[2:], octaves, scale):
        base_k = F.interpolate(base, size=size, mode="bilinear", align_corners=False)
        detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        result = _climb(model, objective, PixelImage(base_k + detail), steps, lr, optimizer, transforms,
                        regularizers, None, bar)
        detail = result.image - base_k
        history += result.history
    with torch.no_grad():
        param.pixels.copy_(result.image)
    return Result(result.image, history, result.values)


def remembered(name: str, key, make, device=None) -> Result:
    """The Result `make()` renders, kept on disk by cache.remember under `key` and loaded from there
    the next time (a notebook reopened, a second test run): `key` must hold all the render depends on
    (the model's features.fingerprint, sizes, steps, seeds, the code of the modules it runs). The
    image and the values come back on `device` (default: the settings' device), the history as floats."""
    from . import cache, settings

    def build() -> dict:
        result = make()
        return {"image": result.image.detach().cpu(), "history": [float(v) for v in result.history],
                "values": None if result.values is None else result.values.detach().cpu()}

    stored = cache.remember(name, key, build)
    device = settings.current().device if device is None else device
    values = stored["values"]
    return Result(stored["image"].to(device), list(stored["history"]), None if values is None else values.to(device))


def _check_render_args(objective, param, steps, octaves, octave_scale, regularizers) -> None:
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be a coursekit.objectives.Objective (e.g. class_score(3)), "
                        f"not {type(objective).__name__}")
    if not isinstance(param, nn.Module):
        raise TypeError(f"param must be a parameterization such as PixelImage(start) or FFTImage(shape), "
                        f"not {type(param).__name__}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, not {steps}")
    if int(octaves) != octaves or octaves < 1:
        raise ValueError(f"octaves must be a whole number >= 1, not {octaves}")
    if octaves > 1 and not octave_scale > 1:
        raise ValueError(f"octave_scale must be > 1 (DeepDream uses 1.4), not {octave_scale}")
    if (regularizers or octaves > 1) and not isinstance(param, PixelImage):
        raise ValueError(f"regularizers and octaves edit pixels, so they need a PixelImage, not "
                         f"{type(param).__name__}; use transforms and penalties with other parameterizations")
