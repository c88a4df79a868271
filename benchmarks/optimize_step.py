"""Per-step time of coursekit.optimize.render against a bare hand-written gradient-ascent loop.

Both climb the same class score on the same model with the same optimizer (SGD on the pixels,
weights frozen); they alternate in rounds and the medians are compared, so machine load hits
both alike. Target: render's overhead (hooks, objective, history, progress bar) <= 10%.

    python benchmarks/optimize_step.py [--model mini|alexnet] [--steps 50] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from coursekit import models, optimize, settings
from coursekit import objectives as O
from coursekit import param as P


def bare_loop(model, start, c, steps, lr):
    """What a student would write by hand: no hooks, no history, no progress bar."""
    x = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = -model(x)[:, c].sum()
        loss.backward()
        opt.step()
    return x.detach()


def engine_loop(model, start, c, steps, lr):
    return optimize.render(model, O.class_score(c), P.PixelImage(start), steps=steps, lr=lr,
                           optimizer="sgd", progress=True).image


def timed(fn, *args, sync):
    sync()
    t0 = time.perf_counter()
    fn(*args)
    sync()
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mini", "alexnet"], default="mini")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    device = settings.load().device
    torch.manual_seed(0)
    if args.model == "mini":
        model, size = models.mini_alexnet(width=0.5), 32
    else:
        model, size = models.alexnet(pretrained=False), 224
    model = model.to(device).eval().requires_grad_(False)
    start = torch.full((1, 3, size, size), 0.5, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for fn in (bare_loop, engine_loop):  # warm-up
        fn(model, start, 0, 3, 0.1)
    bare, engine = [], []
    for round_ in range(args.rounds):  # alternate who goes first, so drifting load hits both alike
        pair = [(bare_loop, bare), (engine_loop, engine)]
        for fn, times in (pair if round_ % 2 == 0 else pair[::-1]):
            times.append(timed(fn, model, start, 0, args.steps, 0.1, sync=sync) / args.steps)
    b, e = statistics.median(bare), statistics.median(engine)
    per_round = statistics.median(x / y for x, y in zip(engine, bare))
    print(f"model {args.model} ({size}px) on {device}, {args.steps} steps x {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads")
    print(f"bare loop      : {1000 * b:8.3f} ms/step (median)")
    print(f"optimize.render: {1000 * e:8.3f} ms/step (median)")
    print(f"ratio render/bare: {e / b:.3f} (median of per-round ratios {per_round:.3f}); "
          f"overhead {100 * (e / b - 1):+.1f}%, target <= +10%")


if __name__ == "__main__":
    main()
