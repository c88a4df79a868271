"""Per-step time of coursekit.attacks.pgd against a bare hand-written PGD loop, same model, same batch.

    python benchmarks/attack_step.py [--batch 64] [--steps 10] [--repeats 5]

Both run in this one process, interleaved, so machine load hits them alike; the printed ratio is
coursekit / bare (target: <= 1.10). The two must also return the same adversarial images.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from coursekit import attacks, models, settings


def bare_pgd(model, images, labels, eps, step_size, steps, generator):
    """The loop a student would write: random start, signed gradient step, projection."""
    noise = torch.rand(images.shape, generator=generator).to(images.device)
    adversarial = (images + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = F.cross_entropy(model(adversarial), labels, reduction="sum")
        grad, = torch.autograd.grad(loss, adversarial)
        adversarial = adversarial.detach() + step_size * grad.sign()
        adversarial = torch.min(torch.max(adversarial, images - eps), images + eps).clamp(0, 1)
    return adversarial


def timed(fn) -> tuple[float, torch.Tensor]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    tic = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - tic, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    device = settings.load().device
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.5).to(device).eval()  # the cifar10 backbone's shape; weights don't matter
    images = torch.rand(args.batch, 3, 32, 32, device=device)
    labels = model(images).argmax(1)
    eps, step_size = 8 / 255, 2 / 255

    def ours():
        return attacks.pgd(model, images, labels, eps=eps, steps=args.steps, step_size=step_size,
                           generator=torch.Generator().manual_seed(0))

    def bare():
        return bare_pgd(model, images, labels, eps, step_size, args.steps, torch.Generator().manual_seed(0))

    ours(), bare()  # warm-up
    times = {"coursekit": [], "bare": []}
    for _ in range(args.repeats):
        for name, fn in [("coursekit", ours), ("bare", bare)]:
            seconds, _ = timed(fn)
            times[name].append(seconds / args.steps)
    same = torch.equal(ours(), bare())
    per_step = {name: statistics.median(values) for name, values in times.items()}
    ratio = per_step["coursekit"] / per_step["bare"]
    print(f"device {device}, MiniAlexNet width 0.5, batch {args.batch}, {args.steps} steps, "
          f"median of {args.repeats} interleaved runs")
    for name, seconds in per_step.items():
        print(f"  {name:9s}: {seconds * 1e3:8.2f} ms per PGD step")
    print(f"  same adversarial images: {same}")
    print(f"ratio coursekit / bare = {ratio:.3f} ({'within' if ratio <= 1.10 else 'ABOVE'} the 1.10 target)")


if __name__ == "__main__":
    main()
