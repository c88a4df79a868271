"""Training throughput on CIFAR-10 with MiniAlexNet (width 0.5, the cifar10 backbone's arch), batch 128.

Pairs compared like with like, all fp32 on the settings' device, all timed in one process in
alternating rounds (images/s = median over rounds):
  plain: coursekit `fit` (no augmentation) vs a minimal hand-written loop on the same uint8
         tensors in memory (target >= 0.95), and vs PyTorch Lightning's Trainer on a DataLoader
         over the same tensors (target >= 1.0). `fit` runs as it always does (channels_last model
         and batches); the hand loop and Lightning run plain NCHW, as their users would write them.
  augmented: `fit` with random crops + flips (batched tensor ops) vs the PyTorch tutorial pipeline:
         torchvision ImageFolder of the JPEGs + RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor,
         DataLoader(shuffle, num_workers=2), timed in steady state (workers already started)
         (target >= 2.0). Also reported, not like for like: `fit` as the backbone recipe runs it
         (bf16 autocast on top) against the same tutorial pipeline.

    python -m benchmarks.train_throughput [--quick] [--steps 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import itertools
import warnings

import torch
import torch.nn.functional as F

from coursekit import data, models, settings, train
from benchmarks.common import invocation, interleaved, row, save

BATCH = 128


def new_model(device):
    torch.manual_seed(0)
    return models.mini_alexnet(width=0.5).to(device)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)


def hand_loop(images, labels, steps, device):
    """What a student writes: shuffle, slice, to float, forward, backward, step."""
    model = new_model(device)
    optimizer = sgd(model)
    order = torch.randperm(len(labels))[:steps * BATCH]
    for i in range(0, len(order), BATCH):
        idx = order[i:i + BATCH]
        x = images[idx].to(device).float().div(255)
        loss = F.cross_entropy(model(x), labels[idx].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def coursekit_fit(train_set, steps, device, augment, autocast=False):
    train.fit(new_model(device), train_set[:steps * BATCH], epochs=1, batch_size=BATCH, lr=0.01,
              schedule=None, augment=augment, autocast=autocast, progress=False, device=device)


def tutorial_batches(root):
    """The PyTorch CIFAR-10 tutorial's input pipeline (PIL transforms in 2 worker processes)."""
    import torchvision
    from torchvision import transforms as T
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
    dataset = torchvision.datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2,
                                         persistent_workers=True)
    return itertools.chain.from_iterable(itertools.repeat(loader))


def tutorial_loop(batches, steps, device):
    model = new_model(device)
    optimizer = sgd(model)
    for x, y in itertools.islice(batches, steps):
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def tutorial_loader_only(batches, steps):
    """The tutorial's input pipeline alone, no model: how much of its step it can explain."""
    for _ in itertools.islice(batches, steps):
        pass


def lightning_fit(images, labels, steps, device):
    """PyTorch Lightning's Trainer, the same model and optimizer, a DataLoader over the same tensors."""
    import logging
    import lightning as L
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no banners between timings

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = new_model("cpu")

        def training_step(self, batch, _):
            x, y = batch
            return F.cross_entropy(self.model(x.float().div(255)), y)

        def configure_optimizers(self):
            return sgd(self.model)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                         batch_size=BATCH, shuffle=True)
    trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_steps=steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Module(), loader)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--no-lightning", action="store_true")
    args = parser.parse_args(argv)
    steps = args.steps or (4 if args.quick else 8)
    rounds = args.rounds or (2 if args.quick else 3)
    device = settings.load().device
    train_set = data.cifar10("train")
    images, labels = train_set.images, train_set.labels
    folder = data.find_dataset("cifar10")
    contenders = {
        "hand loop": lambda: hand_loop(images, labels, steps, device),
        "fit": lambda: coursekit_fit(train_set, steps, device, augment=False),
        "fit + crops/flips": lambda: coursekit_fit(train_set, steps, device, augment=True),
        "fit, backbone recipe (bf16 autocast, crops/flips)":
            lambda: coursekit_fit(train_set, steps, device, augment=True, autocast=True),
    }
    if folder is not None:
        batches = tutorial_batches(folder / "train")
        contenders["tutorial DataLoader + PIL"] = lambda: tutorial_loop(batches, steps, device)
        contenders["tutorial DataLoader alone (no model)"] = lambda: tutorial_loader_only(batches, steps)
    lightning = not args.no_lightning
    try:
        import lightning  # noqa: F401
    except ImportError:
        lightning = False
        print("lightning is not installed (pip install lightning): skipping the peer trainer")
    if lightning:
        contenders["lightning Trainer"] = lambda: lightning_fit(images, labels, steps, device)
    command = invocation("train_throughput", argv)
    progress = lambda median: save("train_throughput", command, ratio_rows(median, steps), quiet=True,
                                   steps=steps, rounds=rounds, batch=BATCH)
    median = interleaved(contenders, rounds, after_round=progress)
    print(f"MiniAlexNet width 0.5, batch {BATCH}, {steps} steps x {rounds} rounds on {device}")
    save("train_throughput", command, ratio_rows(median, steps), steps=steps, rounds=rounds, batch=BATCH)


def ratio_rows(median: dict, steps: int) -> list[dict]:
    rate = {name: steps * BATCH / s for name, s in median.items()}
    rows = [row(f"{name}: training images/s", r, "img/s") for name, r in rate.items()]
    ratio = rate["fit"] / rate["hand loop"]
    rows.append(row("fit / hand-written loop (fp32, no aug)", ratio, "x", ">= 0.95", ratio >= 0.95))
    rows.append(row("cost of crops+flips in fit (fp32)", rate["fit"] / rate["fit + crops/flips"] - 1, "x",
                    note="fraction of step time"))
    if "tutorial DataLoader + PIL" in rate:
        ratio = rate["fit + crops/flips"] / rate["tutorial DataLoader + PIL"]
        rows.append(row("fit / tutorial pipeline (fp32, crops+flips)", ratio, "x", ">= 2.0", ratio >= 2.0,
                        "2x needs the input pipeline to be half of a tutorial step; see the next rows"))
        share = rate["tutorial DataLoader + PIL"] / rate["tutorial DataLoader alone (no model)"]
        rows.append(row("tutorial input pipeline time / tutorial step time", share, "x",
                        note="the most any loader can save on this device"))
        ratio = rate["fit, backbone recipe (bf16 autocast, crops/flips)"] / rate["tutorial DataLoader + PIL"]
        rows.append(row("fit as the backbone recipe runs it (bf16 autocast) / tutorial (fp32)", ratio, "x",
                        note="not like for like: what a student gets from each"))
    if "lightning Trainer" in rate:
        ratio = rate["fit"] / rate["lightning Trainer"]
        rows.append(row("fit / Lightning Trainer (fp32, no aug)", ratio, "x", ">= 1.0", ratio >= 1.0))
    return rows

if __name__ == "__main__":
    main()
