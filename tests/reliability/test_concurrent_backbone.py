"""Several processes (notebooks, test workers) asking for the same trained backbone at once:
exactly one trains, all get the same valid weights, and nobody ever reads half a weights file,
even when the process that trains is killed halfway."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit import backbones

HERE = Path(__file__).parent
TIMEOUT = 300
RECIPE = {"arch": {"width": 0.1, "activation": "relu", "lrn": True, "overlap": True, "dropout": 0.5},
          "per_class": None, "epochs": 1, "batch_size": 16, "lr": 0.01, "schedule": "onecycle",
          "weight_decay": 5e-4, "autocast": False, "seed": 0, "version": 1}


def spawn(script: str, *args, cache: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "COURSEKIT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    if cache is not None:
        env["COURSEKIT_CACHE"] = str(cache)
    return subprocess.Popen([sys.executable, str(HERE / script), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def outcome(proc: subprocess.Popen) -> dict:
    """What a backbone_job process printed: trained_now, digest, resumed_at, warnings."""
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    lines = out.splitlines()
    result = next(line.split() for line in lines if line.startswith("result"))
    resumed = [int(line.split()[1]) for line in lines if line.startswith("resumed-at")]
    return {"trained_now": result[1] == "True", "digest": result[2], "valid": result[3] == "True",
            "resumed_at": resumed,
            "warnings": [line for line in lines if line.startswith("warning")], "output": out}


def assert_clean_cache(path: Path):
    leftovers = [p.name for p in path.parent.iterdir() if p.suffix == ".tmp" or p.name.endswith(".checkpoints")]
    assert not leftovers, f"left behind next to {path.name}: {leftovers}"


def test_four_processes_ask_for_the_same_backbone(tiny_cifar, isolated_cache, tmp_path, faults):
    path = backbones.cifar10_cache_path(RECIPE)
    stop = tmp_path / "stop"
    reader = spawn("cache_reader.py", path, stop)
    askers = [spawn("backbone_job.py", json.dumps(RECIPE)) for _ in range(4)]
    results = [outcome(p) for p in askers]
    stop.touch()
    seen = reader.communicate(timeout=TIMEOUT)[0].split()
    faults.add("faults injected", len(askers) - 1)  # racing callers

    assert sum(r["trained_now"] for r in results) == 1, [r["output"] for r in results]
    assert len({r["digest"] for r in results}) == 1, "the processes got different weights"
    assert all(r["valid"] for r in results), [r["output"] for r in results]
    assert not any(r["warnings"] for r in results), [r["warnings"] for r in results]
    assert seen[:2] == ["complete", seen[1]] and int(seen[1]) >= 1 and seen[3] == "0", \
        f"the reader saw {seen}: a half-written weights file was readable"
    assert_clean_cache(path)
    faults.add("data lost", 0)


def uninterrupted_digest(recipe, cache: Path, monkeypatch) -> str:
    monkeypatch.setenv("COURSEKIT_CACHE", str(cache))
    model, _ = backbones.trained_cifar10(recipe, progress=False)
    weights = b"".join(v.cpu().numpy().tobytes() for v in model.state_dict().values())
    return hashlib.sha1(weights).hexdigest()


def test_trainer_killed_halfway_another_process_takes_over(tiny_cifar, isolated_cache, tmp_path, monkeypatch,
                                                          faults):
    recipe = {**RECIPE, "epochs": 5, "batch_size": 4, "seed": 3}
    path = backbones.cifar10_cache_path(recipe)
    first = spawn("backbone_job.py", json.dumps(recipe))
    first_checkpoint = path.with_suffix(".checkpoints") / "epoch-0001.pt"
    while not first_checkpoint.exists() and first.poll() is None:
        time.sleep(0.005)
    first.kill()  # SIGKILL while it holds the lock and trains
    first.wait(timeout=TIMEOUT)
    if first.returncode != -9:
        pytest.skip("the first process finished before it could be killed (machine too fast for this recipe)")
    faults.add("faults injected")

    askers = [spawn("backbone_job.py", json.dumps(recipe)) for _ in range(2)]
    expected = uninterrupted_digest(recipe, tmp_path / "reference-cache", monkeypatch)  # meanwhile, here
    results = [outcome(p) for p in askers]
    trainers = [r for r in results if r["trained_now"]]
    assert len(trainers) == 1, [r["output"] for r in results]
    assert trainers[0]["resumed_at"] and trainers[0]["resumed_at"][0] >= 1, trainers[0]["output"]
    assert {r["digest"] for r in results} == {expected}, "resumed training ended with other weights"
    assert_clean_cache(path)
    faults.add("resumes verified")
    faults.add("data lost", 0)
