"""The course's quick backbone recipe on a subset, in its own process; prints its peak memory.

    python memory_job.py N_TRAIN
Trains MiniAlexNet (the quick recipe's width, batch size, schedule) for one epoch on N_TRAIN
synthetic CIFAR-sized images held in memory beside a quick-size (10k) test set, evaluates, and prints
"peak-rss-mib <n>" from getrusage (Linux reports kilobytes, macOS bytes).
"""
from __future__ import annotations

import resource
import sys

import torch

from coursekit import backbones, data, models, settings, train


def synthetic(n: int, seed: int) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return data.ImageSet(images, torch.arange(n) % 10, list(data.CIFAR10_CLASSES))


def main(n_train: int) -> None:
    torch.set_num_threads(1)
    recipe = backbones.cifar10_recipe(settings.load())
    train_set, test_set = synthetic(10_000, 0).subset(total=n_train), synthetic(10_000, 1)
    model = models.mini_alexnet(**recipe["arch"])
    train.fit(model, train_set, epochs=1, batch_size=recipe["batch_size"], lr=recipe["lr"],
              schedule=recipe["schedule"], device="cpu", progress=False)
    train.evaluate(model, test_set)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("peak-rss-mib", round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024)), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
