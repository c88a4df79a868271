"""Two kinds of image regularizer for the optimization loop.

Transforms (jitter, scale, rotate) are random and differentiable: the model sees a shifted,
scaled or rotated copy each step, so the image must work under all of them, which rules out
pixel-exact noise patterns.

Step regularizers (Yosinski et al. 2015) edit the pixels in place after each optimizer step:
decay towards the mean, Gaussian blur every k steps, zeroing pixels of small norm or small
contribution, clamping to [0, 1]. Each is called as `reg(pixels, grad, step)`, where grad is
d(objective)/d(pixels) of that step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- random transforms

@dataclass(frozen=True)
class Jitter:
    """Roll the image by up to `pixels` in each direction (DeepDream's jitter; wraps around)."""
    pixels: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixels <= 0:
            return x
        dy, dx = torch.randint(-self.pixels, self.pixels + 1, (2,)).tolist()
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


@dataclass(frozen=True)
class RandomAffine:
    """Scale by a factor drawn from `scales` and rotate by up to +-`degrees`; same size out."""
    scales: tuple = (1.0,)
    degrees: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scales[torch.randint(len(self.scales), (1,)).item()]
        angle = math.radians((torch.rand(1).item() * 2 - 1) * self.degrees)
        if scale == 1 and angle == 0:
            return x
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


def jitter(pixels: int = 2) -> Jitter:
    """DeepDream's jitter (Mordvintsev et al. 2015): roll the image by up to `pixels` each step."""
    if pixels < 0:
        raise ValueError(f"jitter must be >= 0 pixels, not {pixels}")
    return Jitter(int(pixels))


def random_scale(scales=(0.95, 1.0, 1.05)) -> RandomAffine:
    """Rescale the image by one of `scales` (positive factors) each step, same size out (Olah et al. 2017)."""
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive factors such as (0.9, 1.0, 1.1), not {scales}")
    return RandomAffine(scales=scales)


def random_rotate(degrees: float = 5.0) -> RandomAffine:
    """Rotate the image by up to +-`degrees` each step, same size out (Olah et al. 2017)."""
    if degrees < 0:
        raise ValueError(f"rotation must be >= 0 degrees, not {degrees}")
    return RandomAffine(degrees=float(degrees))


# ---------------------------------------------------------------- Gaussian blur

def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A 1-D Gaussian summing to 1, radius 3 sigma (at least 1), length 2 * radius + 1, in `dtype`."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)  # then rounded once: float64 blurs stay float64-exact
    kernel = torch.exp(-t.pow(2) / (2 * sigma ** 2))
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel of (N, C, H, W) with a separable Gaussian. Circular padding keeps the image
    mean exactly (every pixel hands out weights summing to 1), like the wrap-around of the jitter."""
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, not {sigma}")
    if sigma == 0:
        return x
    k = gaussian_kernel(sigma, x.dtype).to(x.device)
    r, c = len(k) // 2, x.shape[1]
    if r >= min(x.shape[2:]):
        raise ValueError(f"blur sigma {sigma} is too large for a {tuple(x.shape[2:])} image")
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="circular"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="circular"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


# ---------------------------------------------------------------- step regularizers (in place)

def _percentile_mask(score: torch.Tensor, percent: float) -> torch.Tensor:
    """True where a pixel's score (N, H, W) is below that image's `percent` percentile."""
    threshold = torch.quantile(score.flatten(1), percent / 100, dim=1)
    return score < threshold.view(-1, 1, 1)


@dataclass(frozen=True)
class Decay:
    """x <- center + (1 - rate) (x - center): L2 decay, shrinking ||x - center|| by (1 - rate)."""
    rate: float
    center: float | tuple = 0.0

    def __call__(self, x, grad, step):
        c = _center(self.center, x)
        x.sub_(c).mul_(1 - self.rate).add_(c)


@dataclass(frozen=True)
class BlurEvery:
    """Gaussian blur of width sigma every `every` steps (Yosinski et al.'s theta_b_width/every)."""
    sigma: float
    every: int = 1

    def __call__(self, x, grad, step):
        if self.sigma > 0 and step % self.every == 0:
            x.copy_(gaussian_blur(x, self.sigma))


@dataclass(frozen=True)
class ClipSmallNorm:
    """Set pixels whose colour vector ||x - center|| is in the lowest `percent` % back to center."""
    percent: float
    center: float | tuple = 0.0

    def __call__(self, x, grad, step):
        c = _center(self.center, x)
        small = _percentile_mask((x - c).norm(dim=1), self.percent)
        x.copy_(torch.where(small[:, None], c.expand_as(x), x))


@dataclass(frozen=True)
class ClipSmallContribution:
    """Set pixels whose contribution |sum_c (x - center) * grad| to the objective (first-order
    estimate of the change if the pixel were reset) is in the lowest `percent` % back to center."""
    percent: float
    center: float | tuple = 0.0

    def __call__(self, x, grad, step):
        c = _center(self.center, x)
        small = _percentile_mask(((x - c) * grad).sum(1).abs(), self.percent)
        x.copy_(torch.where(small[:, None], c.expand_as(x), x))


@dataclass(frozen=True)
class Clamp:
    """Keep pixels in [low, high] (a valid image)."""
    low: float = 0.0
    high: float = 1.0

    def __call__(self, x, grad, step):
        x.clamp_(self.low, self.high)


def _center(center, x) -> torch.Tensor:
    return torch.as_tensor(center, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)


def decay(rate: float, center=0.0) -> Decay:
    """Yosinski et al. (2015) L2 decay, theta_decay: after each step x <- center + (1 - rate)(x - center).
    rate in [0, 1) (ValueError otherwise); center a value or one per channel, in the image's units."""
    if not 0 <= rate < 1:
        raise ValueError(f"decay rate must be in [0, 1) (Yosinski et al. use 0 to 0.3), not {rate}")
    return Decay(float(rate), center)


def blur_every(sigma: float, every: int = 4) -> BlurEvery:
    """Yosinski et al. (2015) Gaussian blur, theta_b_width and theta_b_every: blur the image with a
    Gaussian of `sigma` pixels every `every` steps. ValueError for sigma < 0 or every not a whole
    number >= 1; sigma 0 does nothing."""
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, not {sigma}")
    if int(every) != every or every < 1:
        raise ValueError(f"blur every must be a whole number of steps >= 1, not {every}")
    return BlurEvery(float(sigma), int(every))


def _check_percent(percent, what):
    if not 0 <= percent < 100:
        raise ValueError(f"{what} percentile must be in [0, 100), not {percent}")


def clip_small_norm(percent: float, center=0.0) -> ClipSmallNorm:
    """Yosinski et al. (2015) clipping of pixels with small norm, theta_n_pct: after each step, reset
    the `percent` % of pixels whose colour vector lies closest to `center`. percent in [0, 100)
    (ValueError otherwise)."""
    _check_percent(percent, "norm clipping")
    return ClipSmallNorm(float(percent), center)


def clip_small_contribution(percent: float, center=0.0) -> ClipSmallContribution:
    """Yosinski et al. (2015) clipping of pixels with small contribution, theta_c_pct: after each step,
    reset the `percent` % of pixels with the smallest |sum_c (x - center) * grad|, the first-order change
    of the objective if the pixel were reset. percent in [0, 100) (ValueError otherwise)."""
    _check_percent(percent, "contribution clipping")
    return ClipSmallContribution(float(percent), center)


def clamp(low: float = 0.0, high: float = 1.0) -> Clamp:
    """Keep every pixel in [low, high] after each step. ValueError unless low < high."""
    if not low < high:
        raise ValueError(f"clamp needs low < high, got [{low}, {high}]")
    return Clamp(low, high)
