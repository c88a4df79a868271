"""Tiny data and models for the reliability tests: seconds on a CPU, same shapes as the course's."""
from __future__ import annotations

import torch

from coursekit import backbones, data, models


def toy_set(n: int = 32, num_classes: int = 2, seed: int = 0) -> data.ImageSet:
    """Classes told apart by brightness: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    base = labels.view(-1, 1, 1, 1) * (150 // max(1, num_classes - 1))
    images = (torch.rand(n, 3, 32, 32, generator=g) * 100 + base).clamp(0, 255).to(torch.uint8)
    return data.ImageSet(images, labels, [f"class{c}" for c in range(num_classes)])


def tiny_model(num_classes: int = 10, width: float = 0.125, seed: int = 0) -> models.PixelModel:
    torch.manual_seed(seed)
    return models.mini_alexnet(num_classes=num_classes, width=width).eval()


def tiny_backbone(width: float = 0.125) -> backbones.Backbone:
    """A Backbone like backbone('cifar10') returns, with an untrained tiny MiniAlexNet in it."""
    model = tiny_model(width=width)
    return backbones.Backbone("cifar10", model, list(data.CIFAR10_CLASSES), 32, data.CIFAR10_MEAN,
                           data.CIFAR10_STD, list(model.aliases), "tiny test backbone")


def image(seed: int = 0, size: int = 32) -> torch.Tensor:
    """One (1, 3, size, size) float image in [0, 1]."""
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
