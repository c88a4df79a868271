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
from .objectives import Objective
from .param import PixelImage


@dataclass
class Result:
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
def frozen(model: nn.Module):
    """Eval mode and no weight gradients while optimizing an image; the model is restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(was_training)
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
