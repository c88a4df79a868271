"""Achieved training FLOP/s of MiniAlexNet (width 0.5) against the machine's dense matmul FLOP/s.

FLOPs of one training step (forward + backward) are counted from the model with
torch.utils.flop_counter; the limit is a 2048x2048 matmul in fp32 and in bf16, timed in the same
rounds as the training steps. Variants: memory format (NCHW / channels_last), bf16 autocast,
threads, batch size, and torch.compile (with its compile time and the steps it needs to pay back).

    python -m benchmarks.machine_limit [--quick] [--steps 4] [--rounds 3] [--no-compile]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from coursekit import models, settings
from benchmarks.common import invocation, interleaved, row, save, seconds

# Steps a notebook's lifetime holds: the cifar10 backbone's training in quick and full mode.
QUICK_STEPS = 4 * (10 * 1000 // 128 + 1)
FULL_STEPS = 12 * (50_000 // 128 + 1)


def training_step(model, optimizer, x, y, autocast):
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = F.cross_entropy(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class Variant:
    """A model, optimizer and batch in one memory format and precision; call it to run `steps` steps."""

    def __init__(self, device, batch, channels_last, autocast, steps, threads=None, compile_=False):
        torch.manual_seed(0)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = models.mini_alexnet(width=0.5).to(device).to(memory_format=fmt)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, 10, (batch,), device=device)
        self.autocast, self.steps, self.threads, self.batch = autocast, steps, threads, batch
        self.forward = torch.compile(self.model) if compile_ else self.model

    def __call__(self):
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            for _ in range(self.steps):
                training_step(self.forward, self.optimizer, self.x, self.y, self.autocast)
        finally:
            torch.set_num_threads(threads)


def step_flops(device, batch) -> int:
    model = models.mini_alexnet(width=0.5).to(device)
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def matmul(device, dtype, n=2048, reps=3):
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)

    def run():
        for _ in range(reps):
            a @ b
    return run, 2 * n ** 3 * reps


def conv_share(device, batch, autocast) -> float:
    """Fraction of a training step's CPU time spent in convolutions and matmuls (the rest is
    element-wise work: LRN, ReLU, pooling, the optimizer), from torch.profiler."""
    variant = Variant(device, batch, True, autocast, 1)
    variant()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        variant()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    dense = sum(e.self_cpu_time_total for e in events
                if any(k in e.key for k in ("conv", "mm", "linear", "matmul")))
    return dense / max(total, 1)


def compile_payback(device, batch, steps, rounds):
    """Compile time, eager and compiled step times, and the steps needed to win the compile time back."""
    eager = Variant(device, batch, True, True, steps)
    compiled = Variant(device, batch, True, True, 1, compile_=True)
    compile_seconds = seconds(compiled)  # the first call compiles (and runs one step)
    compiled.steps = steps
    median = interleaved({"eager": eager, "compiled": compiled}, rounds)
    saved = (median["eager"] - median["compiled"]) / steps
    payback = compile_seconds / saved if saved > 0 else float("inf")
    return compile_seconds, median["eager"] / steps, median["compiled"] / steps, payback


def compile_in_child(steps, rounds, timeout):
    """torch.compile measured in a child process, so a compile that outlasts `timeout` is stopped."""
    command = [sys.executable, "-m", "benchmarks.machine_limit", "--compile-child", str(steps), str(rounds)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        compile_s, eager_s, compiled_s, payback = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        note = f"torch.compile (inductor) did not finish compiling and timing within {timeout:.0f} s"
        return [row("torch.compile: compile + timing time", timeout, "s", f"pays back < {FULL_STEPS} steps",
                    False, note)], note
    except (ValueError, IndexError):
        note = "torch.compile failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:150]
        return [], note
    return [row("torch.compile: compile time", compile_s, "s"),
            row("torch.compile: eager step (bf16, channels_last)", eager_s, "s"),
            row("torch.compile: compiled step", compiled_s, "s"),
            row("torch.compile: steps to pay back the compile time", payback, "steps",
                f"< {QUICK_STEPS} (quick backbone) / {FULL_STEPS} (full)", payback < FULL_STEPS)], ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    parser.add_argument("--compile-timeout", type=float, default=300)
    parser.add_argument("--compile-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_child:
        steps, rounds = args.compile_child
        return print(json.dumps(compile_payback(settings.load().device, 128, steps, rounds)))
    steps = args.steps or (2 if args.quick else 4)
    rounds = args.rounds or (2 if args.quick else 3)
    device = settings.load().device
    batch = 128
    variants = {
        "fp32 NCHW": Variant(device, batch, False, False, steps),
        "fp32 channels_last": Variant(device, batch, True, False, steps),
        "bf16 autocast NCHW": Variant(device, batch, False, True, steps),
        "bf16 autocast channels_last": Variant(device, batch, True, True, steps),
        "bf16 channels_last, 1 thread": Variant(device, batch, True, True, steps, threads=1),
        "bf16 channels_last, batch 256": Variant(device, 256, True, True, max(1, steps // 2)),
        "bf16 channels_last, batch 64": Variant(device, 64, True, True, steps * 2),
    }
    mm32, flops32 = matmul(device, torch.float32)
    mm16, flops16 = matmul(device, torch.bfloat16)
    flops = {b: step_flops(device, b) for b in (64, 128, 256)}
    command = invocation("machine_limit", argv)

    def limit_rows(median):
        limit = {"fp32": flops32 / median["matmul fp32"], "bf16": flops16 / median["matmul bf16"]}
        rows = [row("dense matmul 2048^2, fp32", limit["fp32"] / 1e9, "GFLOP/s"),
                row("dense matmul 2048^2, bf16", limit["bf16"] / 1e9, "GFLOP/s"),
                row("training step FLOPs (batch 128, fwd+bwd)", flops[128] / 1e9, "GFLOP")]
        for name, variant in variants.items():
            achieved = flops[variant.batch] * variant.steps / median[name]
            precision = "bf16" if variant.autocast else "fp32"
            rows.append(row(f"{name}: seconds per 128 images", median[name] / variant.steps * 128 / variant.batch, "s"))
            rows.append(row(f"{name}: achieved", achieved / 1e9, "GFLOP/s"))
            rows.append(row(f"{name}: achieved / {precision} matmul", achieved / limit[precision], "x"))
        return rows

    median = interleaved({**variants, "matmul fp32": mm32, "matmul bf16": mm16}, rounds,
                         after_round=lambda m: save("machine_limit", command, limit_rows(m), quiet=True))
    print(f"MiniAlexNet width 0.5 on {device}, {steps} steps x {rounds} rounds; threads {torch.get_num_threads()}")
    rows = limit_rows(median)
    rows.append(row("share of step time in conv/matmul (bf16, channels_last)", conv_share(device, batch, True), "x",
                    note="the rest is element-wise: LRN, ReLU, pooling, optimizer"))
    save("machine_limit", command, rows, steps=steps, rounds=rounds, compile_note="not measured yet")
    compile_note = "skipped (--no-compile)"
    if not args.no_compile:
        compile_rows, compile_note = compile_in_child(steps, rounds, args.compile_timeout)
        rows += compile_rows
    save("machine_limit", command, rows, steps=steps, rounds=rounds, compile_note=compile_note)


if __name__ == "__main__":
    main()
