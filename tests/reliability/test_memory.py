"""Memory: a GPU out-of-memory error during fit becomes advice (a smaller batch size), with no
finished epoch lost; a representative quick-mode computation stays well under 4 GiB on the CPU.
(benchmarks/notebook_memory.py measures every notebook; too slow for the test suite.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coursekit import train

from .tiny import tiny_model, toy_set

LIMIT_MIB = 4096


def oom_on_batch(model, n: int):
    """Make the model's n-th forward pass raise CUDA's out-of-memory error (a forward hook)."""
    seen = {"calls": 0}

    def hook(module, inputs, output):
        seen["calls"] += 1
        if seen["calls"] == n:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return model.register_forward_hook(hook)


def test_out_of_memory_in_fit_suggests_a_smaller_batch(tmp_path, faults):
    model = tiny_model(num_classes=2)
    # 32 images / 16 per batch = 2 batches per epoch; one check forward first: batch 6 is in epoch 3
    handle = oom_on_batch(model, 6)
    with pytest.raises(RuntimeError) as err:
        train.fit(model, toy_set(32), epochs=4, batch_size=16, device="cpu", progress=False,
                  checkpoint_dir=tmp_path)
    handle.remove()
    faults.add("faults injected")
    message = str(err.value)
    assert "out of memory" in message and "batch_size=16" in message and "try batch_size=8" in message
    assert isinstance(err.value.__cause__, torch.OutOfMemoryError)  # the original error is kept
    assert train.latest_checkpoint(tmp_path)["epoch"] == 2  # the finished epochs are kept
    faults.add("data lost", 0)


def test_quick_backbone_training_peak_memory(faults, capsys):
    job = Path(__file__).with_name("memory_job.py")
    env = {**os.environ, "COURSEKIT_QUICK": "1", "COURSEKIT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(job), "1000"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    peak = int(out.stdout.split("peak-rss-mib")[1].split()[0])
    with capsys.disabled():
        print(f"\n  quick backbone recipe, 1 epoch on 1000 images + 10k test images: peak RSS {peak} MiB")
    assert peak < LIMIT_MIB, f"peak memory {peak} MiB is over {LIMIT_MIB} MiB"
    faults.add("inputs tried")
