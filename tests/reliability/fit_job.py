"""A tiny seeded training run in its own process, for the kill-and-resume tests.

    python fit_job.py CHECKPOINT_DIR OUT_FILE [--die-while-saving EPOCH]

Prints "resume-from <epoch>" (what the checkpoints on disk offer) and "fitting", trains a tiny
MiniAlexNet on a synthetic ImageSet with checkpoints in CHECKPOINT_DIR, then saves the final
weights to OUT_FILE and prints "done". --die-while-saving kills the process (SIGKILL) halfway
through writing that epoch's checkpoint.
"""
from __future__ import annotations

import os
import signal
import sys
import warnings
from pathlib import Path

import torch

from coursekit import cache, data, models, train

EPOCHS = 6


def toy_set(n=96, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, 32, 32, generator=g) * 100 + labels.view(-1, 1, 1, 1) * 120).to(torch.uint8)
    return data.ImageSet(images, labels, ["dark", "bright"])


def die_while_saving(epoch: int) -> None:
    """Make torch.save write half of epoch `epoch`'s checkpoint, then SIGKILL this process."""
    real_save = torch.save

    def half_then_die(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == epoch:
            real_save(obj, f, *args, **kwargs)
            f.flush()
            f.truncate(f.tell() // 2)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = half_then_die


def main(argv) -> None:
    checkpoints, out = Path(argv[0]), Path(argv[1])
    if "--die-while-saving" in argv:
        die_while_saving(int(argv[argv.index("--die-while-saving") + 1]))
    torch.set_num_threads(1)  # the same arithmetic order in every process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = train.latest_checkpoint(checkpoints)
    for w in caught:
        print("warning", str(w.message).replace("\n", " "), flush=True)
    print("resume-from", state["epoch"] if state else 0, flush=True)
    torch.manual_seed(0)
    model = models.mini_alexnet(num_classes=2, width=0.125)
    print("fitting", flush=True)
    train.fit(model, toy_set(), epochs=EPOCHS, batch_size=16, lr=0.02, seed=1, device="cpu",
              progress=False, checkpoint_dir=checkpoints)
    cache.atomic_save({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
