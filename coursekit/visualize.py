"""The papers' recipes on the coursekit.optimize engine, their measurements, and their Try-it panels.

    class_model      Simonyan et al. 2014: arg max_I S_c(I) - lambda ||I - mean||^2 from the mean image
    yosinski         Yosinski et al. 2015: the same under decay / blur / clipping, as in their four settings
    deepdream        Mordvintsev et al. 2015: grow a layer's activation norm on a photo, with octaves
    invert           Mahendran & Vedaldi 2015: an image whose features match a target's, under priors
"""
from __future__ import annotations

import torch

from . import hooks, optimize
from . import objectives as O
from . import param as P
from . import transforms as T

# ---------------------------------------------------------------- Simonyan et al. 2014


def mean_image(mean, size: int, device=None) -> torch.Tensor:
    """A (1, 3, size, size) image filled with the data set's mean colour: where class models start."""
    return torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def class_model(model, c: int, mean, size: int, lam: float = 0.1, steps: int = 100, lr: float = 0.1,
                objective: str = "score", progress: bool = False) -> optimize.Result:
    """Gradient ascent on the class score ('score', the logit) or 'probability' (softmax), minus
    lam * mean((I - mean)^2), from the mean image; pixels clamped to [0, 1] so the image stays an image."""
    if objective not in {"score", "probability"}:
        raise ValueError(f"objective must be 'score' or 'probability', not {objective!r}")
    device = next(model.parameters()).device
    start = mean_image(mean, size, device)
    target = O.class_score(c) if objective == "score" else O.class_prob(c)
    center = start[:, :, :1, :1]
    return optimize.render(model, target - lam * O.l2(center), P.PixelImage(start), steps=steps, lr=lr,
                           optimizer="sgd", regularizers=[T.clamp()], progress=progress)


# ---------------------------------------------------------------- Yosinski et al. 2015

# Their four hyperparameter settings (Table in the paper): L2 decay, blur width, blur every,
# percentile of pixel norm clipped, percentile of contribution clipped, iterations.
YOSINSKI_SETTINGS = {
    1: dict(decay=0.0, blur_sigma=0.5, blur_every=4, norm_pct=50, contribution_pct=0, steps=500),
    2: dict(decay=0.3, blur_sigma=0.0, blur_every=1, norm_pct=20, contribution_pct=0, steps=750),
    3: dict(decay=1e-4, blur_sigma=1.0, blur_every=4, norm_pct=0, contribution_pct=0, steps=1000),
    4: dict(decay=0.0, blur_sigma=0.5, blur_every=4, norm_pct=0, contribution_pct=90, steps=1000),
}


def yosinski_regularizers(decay=0.0, blur_sigma=0.0, blur_every=1, norm_pct=0, contribution_pct=0,
                          center=0.5, **_) -> list:
    """The step regularizers of one setting (zeros switch a piece off), then a clamp to [0, 1]."""
    regs = []
    if decay:
        regs.append(T.decay(decay, center))
    if blur_sigma:
        regs.append(T.blur_every(blur_sigma, blur_every))
    if norm_pct:
        regs.append(T.clip_small_norm(norm_pct, center))
    if contribution_pct:
        regs.append(T.clip_small_contribution(contribution_pct, center))
    return regs + [T.clamp()]


def high_frequency_energy(x: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """The fraction of each image's spectral energy (mean removed) above `cutoff` cycles per pixel
    (0.5 is the highest there is): noise-like images score high, smooth ones low."""
    x = x - x.mean((2, 3), keepdim=True)
    power = torch.fft.rfft2(x.float()).abs().pow(2)
    fy = torch.fft.fftfreq(x.shape[2], device=x.device)[:, None]
    fx = torch.fft.rfftfreq(x.shape[3], device=x.device)[None, :]
    high = (fy.pow(2) + fx.pow(2)).sqrt() > cutoff
    return (power * high).flatten(1).sum(1) / power.flatten(1).sum(1).clamp_min(1e-12)


# ---------------------------------------------------------------- DeepDream


def deepdream(model, image: torch.Tensor, layer: str, octaves: int = 4, octave_scale: float = 1.4,
              steps: int = 10, step_size: float = 1.5, jitter: int | None = None,
              progress: bool = False) -> optimize.Result:
    """Grow mean(layer^2) on `image` with steps of step_size/255 * g / mean|g| (step_size in the
    original's 0..255 units), a random roll each step (default 1/16 of the side), and octaves."""
    jitter = max(1, image.shape[-1] // 16) if jitter is None else jitter
    return optimize.render(model, O.layer_norm(layer), P.PixelImage(image), steps=steps,
                           lr=step_size / 255, optimizer="normalized", transforms=[T.jitter(jitter)],
                           regularizers=[T.clamp()], octaves=octaves, octave_scale=octave_scale,
                           progress=progress)


def layer_energy(model, image: torch.Tensor, layer: str) -> float:
    """mean(layer^2) for an image: DeepDream's objective, measured without gradients."""
    with torch.no_grad():
        return hooks.forward_until(model, image, layer).pow(2).mean().item()


# ---------------------------------------------------------------- Mahendran & Vedaldi 2015

def tv_weight_for(layer: str, base: float = 1.0) -> float:
    """TV weight grows with depth, as in the authors' code: x1 for conv1-2, x10 for conv3-5, x100 above."""
    if layer in {"conv1", "relu1", "pool1", "lrn1", "conv2", "relu2", "pool2", "lrn2"}:
        return base
    if layer.startswith(("conv", "relu3", "relu4", "relu5", "pool5")):
        return 10 * base
    return 100 * base


def invert(model, target: torch.Tensor, layer: str, steps: int = 200, tv_weight: float = 1.0, beta: float = 2.0,
           alpha_weight: float = 1.0, alpha: float = 6.0, starts: int = 1, lr: float = 0.05, seed: int = 0,
           center=0.5, progress: bool = False) -> optimize.Result:
    """min_x ||phi(x) - phi_0||^2 / ||phi_0||^2 + alpha_weight ||x - center||_alpha^alpha + tv_weight TV_beta(x),
    from `starts` noise images at once (Adam, pixels clamped to [0, 1])."""
    phi0 = hooks.forward_until(model, target, layer).detach() if layer else None
    g = torch.Generator().manual_seed(seed)
    noise = (0.5 + 0.1 * torch.randn(starts, *target.shape[1:], generator=g)).clamp(0, 1).to(target.device)
    objective = (-O.feature_error(layer, phi0) - alpha_weight * O.alpha_norm(alpha, center)
                 - tv_weight * O.tv(beta))
    return optimize.render(model, objective, P.PixelImage(noise), steps=steps, lr=lr, optimizer="adam",
                           regularizers=[T.clamp()], progress=progress)


def feature_and_pixel_error(model, target: torch.Tensor, layer: str, images: torch.Tensor) -> tuple:
    """(feature error ||phi(x)-phi_0||^2/||phi_0||^2, pixel error ||x-x_0||/||x_0-mean(x_0)||), one per image."""
    with torch.no_grad():
        phi0 = hooks.forward_until(model, target, layer)
        phi = hooks.forward_until(model, images, layer)
        feat = (phi - phi0).pow(2).flatten(1).sum(1) / phi0.pow(2).flatten(1).sum(1).clamp_min(1e-12)
        spread = (target - target.mean((2, 3), keepdim=True)).flatten(1).norm(dim=1)
        pixel = (images - target).flatten(1).norm(dim=1) / spread.clamp_min(1e-12)
    return feat, pixel
