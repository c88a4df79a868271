"""Time for the cifar10 backbone's full-mode recipe to reach 80% test top-1, and its final accuracy.

A child process trains the full recipe (backbones.cifar10_recipe in full mode) with `fit`, evaluating
on the 10k test images after every epoch and checkpointing under benchmarks/results/. The parent
stops it when the budget runs out; the next run resumes from the last checkpoint (fit resumes
runs exactly), so a long measurement can be finished over several invocations. Seconds are
training seconds (fit's per-epoch `seconds`, evaluation excluded), summed over epochs.
Targets (issue 23): one recipe reaching 80% within 480 s and 85% within 900 s of training on the
2-core CPU machine, final top-1 >= 85%.

It also reports what the trained-model cache already knows (recipes trained by notebooks).

    python -m benchmarks.time_to_accuracy [--budget 900] [--quick]   (--quick: only the cache report)
    python -m benchmarks.time_to_accuracy --epochs 30 [--budget 1800]
    python -m benchmarks.time_to_accuracy --recipe quick [--budget 600]

--recipe quick measures the quick-mode recipe (what CI and every quick notebook runs on) the same
way, saved as time_to_accuracy_quick: targets >= 55% final test top-1 in <= 150 s of training.

--epochs N trains the same recipe on a longer one-cycle schedule (its own checkpoints, saved as
time_to_accuracy_<N>ep), held to the same targets: what the 85% target costs on this machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import torch

from coursekit import backbones, cache, data, models, settings, train
from benchmarks.common import invocation, RESULTS, row, save


QUICK_TOP1, QUICK_SECONDS = 0.55, 150  # the quick backbone's targets (issue 23)
TO_80_SECONDS, TO_85_SECONDS = 480, 900  # one full recipe: 80% in 8 minutes, 85% in 15 (issue 23)


def full_recipe(epochs: int | None = None, quick: bool = False) -> dict:
    """The backbone's recipe in full mode (or quick mode, quick=True), optionally on `epochs` epochs."""
    recipe = backbones.cifar10_recipe(dataclasses.replace(settings.load(), quick=quick))
    return {**recipe, "epochs": epochs or recipe["epochs"]}


def checkpoints(epochs: int | None, quick: bool = False) -> Path:
    return RESULTS / ("time-to-accuracy-checkpoints" + ("-quick" if quick else "") + (f"-{epochs}ep" if epochs else ""))


def child(epochs: int | None, quick: bool = False) -> None:
    """Train the recipe with per-epoch test accuracy (runs in its own process)."""
    recipe, cfg = full_recipe(epochs, quick), settings.load()
    train_set = data.cifar10("train").subset(per_class=recipe["per_class"], seed=recipe["seed"])
    torch.manual_seed(recipe["seed"])
    model = models.mini_alexnet(**recipe["arch"])
    train.fit(model, train_set, data.cifar10("test"), epochs=recipe["epochs"], batch_size=recipe["batch_size"],
              lr=recipe["lr"], schedule=recipe["schedule"], weight_decay=recipe["weight_decay"],
              autocast=recipe["autocast"], seed=recipe["seed"], progress=False,
              checkpoint_dir=checkpoints(epochs, quick), device=cfg.device)


def measured_epochs(budget: float, epochs: int | None, quick: bool = False) -> list[dict]:
    command = [sys.executable, "-m", "benchmarks.time_to_accuracy", "--child"]
    command += (["--epochs", str(epochs)] if epochs else []) + (["--recipe", "quick"] if quick else [])
    process = subprocess.Popen(command)
    try:
        process.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    state = train.latest_checkpoint(checkpoints(epochs, quick))
    return list(state["history"]) if state else []


def seconds_to(history: list[dict], top1: float) -> float | None:
    """Training seconds until the first epoch at or above `top1` test accuracy (None: not reached)."""
    elapsed = 0.0
    for epoch in history:
        elapsed += epoch["seconds"]
        if epoch["test_top1"] >= top1:
            return elapsed
    return None


def time_to_row(history: list[dict], epochs: int, top1: float, target: float) -> dict:
    """Training seconds to `top1` test accuracy against its target (issue 23: one recipe reaching
    80% within 8 minutes and 85% within 15); unreached, the row says so and misses once the run is
    over or past the target time, and has no verdict while it can still make it."""
    reached, elapsed = seconds_to(history, top1), sum(e["seconds"] for e in history)
    if reached is not None:
        return row(f"seconds to {top1:.0%} test top-1", reached, "s", f"<= {target:.0f} s", reached <= target)
    over = elapsed > target or len(history) == epochs
    return row(f"seconds to {top1:.0%} test top-1: not reached in {len(history)} of {epochs} epochs measured",
               elapsed, "s", f"<= {target:.0f} s", False if over else None)


def curve_rows(history: list[dict], epochs: int) -> list[dict]:
    """Per-epoch accuracy and the targets: whatever its schedule, a recipe is held to both times
    (80% in TO_80_SECONDS, 85% in TO_85_SECONDS) and to 85% final."""
    rows, elapsed = [], 0.0
    for epoch in history:
        elapsed += epoch["seconds"]
        rows.append(row(f"epoch {epoch['epoch']}: test top-1 after {elapsed:.0f} s of training",
                        epoch["test_top1"], "top-1"))
    if history:
        rows.append(row("mean training seconds per epoch (full recipe, 50k images)",
                        elapsed / len(history), "s"))
    rows += [time_to_row(history, epochs, 0.80, TO_80_SECONDS), time_to_row(history, epochs, 0.85, TO_85_SECONDS)]
    if len(history) == epochs:
        rows.append(row(f"final test top-1 of the full recipe ({epochs} epochs)", history[-1]["test_top1"], "top-1",
                        ">= 0.85", history[-1]["test_top1"] >= 0.85))
    return rows


def quick_rows(history: list[dict], epochs: int) -> list[dict]:
    """Per-epoch accuracy of the quick recipe and its targets: final top-1 and training seconds."""
    rows, elapsed = [], 0.0
    for epoch in history:
        elapsed += epoch["seconds"]
        rows.append(row(f"quick recipe, epoch {epoch['epoch']}: test top-1 after {elapsed:.0f} s of training",
                        epoch["test_top1"], "top-1"))
    if len(history) < epochs:
        rows.append(row(f"quick recipe: {len(history)} of {epochs} epochs measured (budget ran out)", elapsed, "s"))
        return rows
    final = history[-1]
    rows.append(row(f"quick recipe: final test top-1 ({epochs} epochs)", final["test_top1"], "top-1",
                    f">= {QUICK_TOP1}", final["test_top1"] >= QUICK_TOP1))
    rows.append(row("quick recipe: final test top-5", final["test_top5"], "top-5"))
    rows.append(row("quick recipe: training seconds", elapsed, "s", f"<= {QUICK_SECONDS} s", elapsed <= QUICK_SECONDS))
    return rows


def cache_rows() -> list[dict]:
    """The backbones already trained on this machine: their recipe, training time and accuracy."""
    rows = []
    for path in sorted((settings.load().cache_dir / "models").glob("minialexnet-cifar10-*.pt")):
        state = cache.safe_load(path)
        if not (isinstance(state, dict) and "recipe" in state):
            continue
        recipe, history = state["recipe"], state["history"]
        mode = "full" if recipe.get("per_class") is None else f"{recipe['per_class']}/class"
        seconds = sum(r["seconds"] for r in history)
        rows.append(row(f"cached backbone {path.stem[-10:]} ({mode}, {recipe['epochs']} epochs, "
                        f"trained in {seconds:.0f} s): test top-1", state["test_top1"], "top-1"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900, help="seconds of training in this run")
    parser.add_argument("--quick", action="store_true", help="only report the trained-model cache")
    parser.add_argument("--epochs", type=int, help="a longer schedule than the recipe's (saved apart)")
    parser.add_argument("--recipe", choices=["full", "quick"], default="full",
                        help="which mode's backbone recipe to train (default full)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick_recipe = args.recipe == "quick"
    if args.child:
        return child(args.epochs, quick_recipe)
    recipe = full_recipe(args.epochs, quick_recipe)
    if quick_recipe:
        rows = quick_rows(measured_epochs(args.budget, args.epochs, quick=True), recipe["epochs"])
        return save("time_to_accuracy_quick", invocation("time_to_accuracy", argv), rows, recipe=recipe)
    rows = [] if args.epochs else cache_rows()
    if args.quick:
        rows.append(row("full recipe: seconds to 80% and final top-1 not measured (--quick); "
                        "run without --quick", float("nan"), "s", "<= 480 s / <= 900 s / >= 0.85"))
    else:
        rows += curve_rows(measured_epochs(args.budget, args.epochs), recipe["epochs"])
    name = "time_to_accuracy" + (f"_{args.epochs}ep" if args.epochs else "")
    save(name, invocation("time_to_accuracy", argv), rows, recipe=recipe)


if __name__ == "__main__":
    main()
