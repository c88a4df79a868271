"""How the optimized image is stored: raw pixels, or a 1/f-scaled spectrum in decorrelated colour.

A parameterization is an nn.Module with no input: calling it returns the image (N, 3, H, W) in
[0, 1]; its parameters are what the optimizer changes. The same gradient step means a very
different image change in each: in pixel space a step can flip one pixel, in the scaled
spectrum it moves mostly low frequencies (Olah et al. 2017, "Feature Visualization").
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import data as _data


class PixelImage(nn.Module):
    """The pixels themselves are the parameters (Simonyan et al., Yosinski et al., DeepDream)."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        if init.dim() != 4 or init.shape[1] not in (1, 3):
            raise ValueError(f"init must be an image batch (N, 3, H, W), got shape {tuple(init.shape)}")
        self.pixels = nn.Parameter(init.detach().clone().float())

    def forward(self) -> torch.Tensor:
        return self.pixels


def colour_sqrt_covariance() -> torch.Tensor:
    """A 3x3 matrix M with M M^T proportional to ImageNet's RGB covariance (from AlexNet's PCA):
    independent unit noise in 'decorrelated' coordinates becomes natural-looking colour noise."""
    m = _data.PCA_EIGVEC @ torch.diag(_data.PCA_EIGVAL.sqrt())
    return m / m.norm(dim=0).max()


def _frequency_scale(h: int, w: int, decay_power: float) -> torch.Tensor:
    """1 / |f|^decay_power for each rfft2 coefficient (the constant term gets the lowest frequency's)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = (fy.pow(2) + fx.pow(2)).sqrt().clamp_min(1.0 / max(h, w))
    return f.pow(-decay_power)


class FFTImage(nn.Module):
    """Image = sigmoid(M @ irfft2(scale * spectrum)): the spectrum is the parameter, scaled by 1/f so
    every frequency band starts with equal energy in the image, colours mixed by M
    (colour_sqrt_covariance) when `decorrelate`. `from_image` inverts it exactly."""

    def __init__(self, shape, sd: float = 0.01, decorrelate: bool = True, decay_power: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        n, c, h, w = _check_shape(shape)
        self.size = (h, w)
        self.register_buffer("scale", _frequency_scale(h, w, decay_power))
        self.register_buffer("colour", colour_sqrt_covariance() if decorrelate else torch.eye(3))
        spectrum = torch.randn(n, c, h, w // 2 + 1, 2, generator=generator) * sd
        self.spectrum = nn.Parameter(spectrum)

    def linear(self) -> torch.Tensor:
        """The image before colour mixing and squashing (decorrelated, unbounded)."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")

    def forward(self) -> torch.Tensor:
        mixed = torch.einsum("ij,njhw->nihw", self.colour, self.linear())
        return torch.sigmoid(mixed)

    @classmethod
    def from_image(cls, image: torch.Tensor, **kwargs) -> "FFTImage":
        """The parameterization whose image is `image` (pixels strictly inside (0, 1) round-trip)."""
        param = cls(image.shape, **kwargs).to(image.device)
        with torch.no_grad():
            mixed = torch.logit(image.float().clamp(1e-4, 1 - 1e-4))
            linear = torch.einsum("ij,njhw->nihw", torch.linalg.inv(param.colour), mixed)
            spectrum = torch.fft.rfft2(linear, norm="ortho") / param.scale
            param.spectrum.copy_(torch.view_as_real(spectrum))
        return param


def _check_shape(shape):
    shape = tuple(shape)
    if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
        raise ValueError(f"image shape must be (N, 3, H, W), got {shape}")
    return shape
