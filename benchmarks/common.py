"""What every benchmark shares: interleaved timing, machine facts, and one JSON result per script.

Contenders are timed in alternating rounds inside one process and compared by their medians, so
the load other programs put on a shared machine hits all of them alike.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import time
from pathlib import Path

import torch

from coursekit.train import native_bf16

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device=None) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds(fn, *args, **kwargs) -> float:
    sync()
    tic = time.perf_counter()
    fn(*args, **kwargs)
    sync()
    return time.perf_counter() - tic


def interleaved(contenders: dict, rounds: int, after_round=None) -> dict[str, float]:
    """Median seconds of each zero-argument callable, run in alternating rounds after one warm-up.

    after_round(medians so far) is called after every round, so a run stopped early still leaves results.
    """
    for fn in contenders.values():
        fn()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(seconds(fn))
        if after_round is not None:
            after_round({name: statistics.median(values) for name, values in times.items()})
    return {name: statistics.median(values) for name, values in times.items()}


def run_with_timeout(command: list[str], timeout: float, **kwargs) -> tuple[int | None, str, str]:
    """(exit code or None if stopped at `timeout`, stdout, stderr). The command runs in its own
    process group and the whole group is killed at the timeout, so no Jupyter kernel or DataLoader
    worker outlives it (and keeps our pipes open)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, **kwargs)
    try:
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err


def machine() -> dict:
    """The facts a reader needs to compare numbers: CPU, cores, threads, load, torch, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    # bf16 instructions decide the training recipe's precision (train.native_bf16): a CPU without them
    # trains in fp32, about 1.75x slower per step, so every training time depends on this flag
    return {"cpu": cpu, "bf16": native_bf16(torch.device("cpu")), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0], "torch": torch.__version__, "gpu": gpu}


def invocation(name: str, argv=None) -> str:
    """The command line that reproduces this run, for BENCHMARKS.md."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m benchmarks." + name, *map(str, args)])


def row(measure: str, value: float, unit: str, target: str = "", met: bool | None = None, note: str = "") -> dict:
    """One line of BENCHMARKS.md's table."""
    return {"measure": measure, "value": value, "unit": unit, "target": target, "met": met, "note": note}


def save(name: str, command: str, rows: list[dict], quiet: bool = False, **extra) -> Path:
    """Write results/<name>.json (read by run_all) and print the rows (unless quiet)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"name": name, "command": command, "machine": machine(), "rows": rows, **extra,
              "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    path.write_text(json.dumps(record, indent=1, default=str))
    for r in rows if not quiet else []:
        verdict = "" if r["met"] is None else ("  [met]" if r["met"] else "  [NOT met]")
        print(f"  {r['measure']:58s} {r['value']:10.3f} {r['unit']:8s} {r['target']}{verdict}")
    return path


def standin_torch_home(home: Path) -> Path:
    """A torch home whose cache holds torchvision's AlexNet and ResNet-18 (the imagenet backbone and
    its second network, backbones.second_network) with RANDOM weights (seed 0) under their real
    IMAGENET1K_V1 file names: the imagenet code path at its real size, offline, without the real
    weights. Only for a temporary folder (a test's or a benchmark's), never a user's TORCH_HOME."""
    import torchvision
    from torchvision.models import AlexNet_Weights, ResNet18_Weights
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for architecture, weights in ((torchvision.models.alexnet, AlexNet_Weights.IMAGENET1K_V1),
                                  (torchvision.models.resnet18, ResNet18_Weights.IMAGENET1K_V1)):
        torch.manual_seed(0)
        torch.save(architecture().state_dict(), checkpoints / weights.url.rsplit("/", 1)[1])
    return home
