"""The common pipeline until 2012: hand-made features + a linear classifier.

Each feature function maps uint8 images (N, 3, H, W) to a (N, D) float array; `linear_accuracy`
trains the same linear classifier (standardize, then ridge regression onto one-hot labels, scikit-learn)
on any of them, so the only thing that differs between the bars of the comparison is the features.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from . import data as _data
from . import hooks


def pixel_features(images: torch.Tensor) -> np.ndarray:
    """The raw pixels, flattened: no feature engineering at all."""
    return _data.to_float(images).flatten(1).numpy()


def hog_features(images: torch.Tensor, cell: int = 8, orientations: int = 9) -> np.ndarray:
    """Histograms of oriented gradients (Dalal & Triggs 2005) of the grey image, via scikit-image."""
    from skimage.color import rgb2gray
    from skimage.feature import hog
    arrays = images.permute(0, 2, 3, 1).numpy()
    return np.stack([hog(rgb2gray(a), orientations=orientations, pixels_per_cell=(cell, cell),
                         cells_per_block=(2, 2), block_norm="L2-Hys") for a in arrays]).astype(np.float32)


def colour_histogram(images: torch.Tensor, bins: int = 4) -> np.ndarray:
    """A joint RGB histogram with bins**3 cells per image, normalized to sum to 1."""
    q = (images.long() * bins // 256)                                   # (N, 3, H, W) in 0..bins-1
    cell = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]                  # (N, H, W)
    offsets = torch.arange(len(images))[:, None] * bins ** 3
    counts = torch.bincount((cell.flatten(1) + offsets).flatten(), minlength=len(images) * bins ** 3)
    counts = counts.view(len(images), bins ** 3).float()
    return (counts / counts.sum(1, keepdim=True)).numpy()


@torch.no_grad()
def network_features(model: nn.Module, images: torch.Tensor, layer: str, batch_size: int = 500) -> np.ndarray:
    """A trained network's activations at `layer` (e.g. 'relu7', the penultimate), flattened."""
    device = next(model.parameters()).device
    out = [hooks.forward_until(model, _data.to_float(images[i:i + batch_size].to(device)), layer).flatten(1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).float().numpy()


ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def linear_classifier(train_x: np.ndarray, train_y, alphas=ALPHAS):
    """A standardized linear classifier fitted to (train_x, train_y): ridge regression onto one-hot
    labels (a least-squares linear classifier: seconds even on 3072 raw pixels, where logistic
    regression takes minutes), its L2 weight picked from `alphas` by leave-one-out cross-validation
    on the training set only, so each feature gets its best setting and the test set chooses
    nothing. Returns the fitted scikit-learn pipeline; its chosen weight is `[-1].alpha_`."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    # an array, not the caller's tuple: scikit-learn writes into a one-element alphas (a tuple raises)
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    classifier = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=alphas))
    return classifier.fit(np.asarray(train_x), np.asarray(train_y))


def linear_accuracy(train_x: np.ndarray, train_y, test_x: np.ndarray, test_y, alphas=ALPHAS) -> float:
    """Test accuracy of `linear_classifier(train_x, train_y, alphas)` on (test_x, test_y)."""
    return float(linear_classifier(train_x, train_y, alphas).score(np.asarray(test_x), np.asarray(test_y)))
