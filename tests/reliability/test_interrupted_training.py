"""A training process killed at random points (SIGKILL: no cleanup runs) and restarted resumes from
its newest checkpoint and ends with exactly the weights of a run that was never interrupted.
A checkpoint damaged on disk is detected, and the run says whether it falls back or starts over."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from coursekit import models, train

from .fit_job import EPOCHS, toy_set

FIT_JOB = Path(__file__).with_name("fit_job.py")
TIMEOUT = 240


def start_job(checkpoints, out, *extra):
    """Start fit_job.py; return the process and its output up to the moment it starts fitting."""
    env = {**os.environ, "COURSEKIT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(FIT_JOB), str(checkpoints), str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    while not lines or lines[-1] != "fitting":
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    return proc, lines


def finish(proc, lines):
    rest, _ = proc.communicate(timeout=TIMEOUT)
    return lines + rest.split("\n")


def resumed_from(lines) -> int:
    return int(next(line.split()[1] for line in lines if line.startswith("resume-from")))


def newest_valid_epoch(checkpoints) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = train.latest_checkpoint(checkpoints)
    return state["epoch"] if state else 0


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs from the uninterrupted run"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The final weights of the uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    proc, lines = start_job(folder / "checkpoints", folder / "final.pt")
    lines = finish(proc, lines)
    assert proc.returncode == 0 and "done" in lines, lines
    return torch.load(folder / "final.pt")


def kill_at_random_point(proc, checkpoints, start: int, rng: random.Random) -> None:
    """SIGKILL `proc` a random time after it writes a randomly chosen later checkpoint
    (or, starting from scratch, a random time into its first epoch)."""
    if start > 0:
        target = checkpoints / f"epoch-{rng.randint(start + 1, EPOCHS - 1):04d}.pt"
        while not target.exists() and proc.poll() is None:
            time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.5))
    proc.kill()
    proc.wait(timeout=TIMEOUT)


def test_random_sigkills_resume_to_the_same_weights(tmp_path, reference, faults):
    seed = random.randrange(10_000)
    rng = random.Random(seed)
    checkpoints, out = tmp_path / "checkpoints", tmp_path / "final.pt"
    kills, expected_start = 0, 0
    while True:
        proc, lines = start_job(checkpoints, out)
        assert resumed_from(lines) == expected_start, (seed, lines)
        assert not any("damaged" in line for line in lines), (seed, lines)  # atomic saves: never half a file
        if kills:
            faults.add("resumes verified")
        if kills < 3 and expected_start < EPOCHS - 1:
            kill_at_random_point(proc, checkpoints, expected_start, rng)
            if proc.returncode == -9:  # killed while still training
                kills += 1
                faults.add("faults injected")
                expected_start = newest_valid_epoch(checkpoints)
                continue
        lines = finish(proc, lines)
        assert proc.returncode == 0 and "done" in lines, (seed, lines)
        break
    assert kills >= 1, f"no kill landed during training (seed {seed})"
    assert_same_weights(torch.load(out), reference)
    faults.add("data lost", 0)


def test_killed_while_writing_a_checkpoint(tmp_path, reference, faults):
    """SIGKILL halfway through writing epoch 4's checkpoint: no damaged file appears, epoch 3 is kept."""
    checkpoints, out = tmp_path / "checkpoints", tmp_path / "final.pt"
    proc, lines = start_job(checkpoints, out, "--die-while-saving", "4")
    finish(proc, lines)
    assert proc.returncode == -9
    faults.add("faults injected")
    assert sorted(p.name for p in checkpoints.glob("epoch-*.pt")) == ["epoch-0002.pt", "epoch-0003.pt"]
    assert list(checkpoints.glob("*.tmp")), "the half-written file should be a temporary one"

    # now damage epoch 3 on disk (a copy cut short, a full disk): the run must fall back to epoch 2
    newest = checkpoints / "epoch-0003.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    faults.add("faults injected")
    proc, lines = start_job(checkpoints, out)
    lines = finish(proc, lines)
    assert proc.returncode == 0, lines
    assert resumed_from(lines) == 2
    assert any("epoch-0003.pt is damaged" in line and "resuming from the earlier epoch-0002.pt" in line
               for line in lines), lines
    assert_same_weights(torch.load(out), reference)
    assert not list(checkpoints.glob("*.tmp")), "the dead process's temporary file was never cleaned up"
    faults.add("resumes verified")


def test_every_checkpoint_damaged_starts_over_and_says_so(tmp_path, faults):
    kwargs = dict(epochs=2, batch_size=16, seed=1, device="cpu", progress=False)
    torch.manual_seed(0)
    model = models.mini_alexnet(num_classes=2, width=0.125)
    train.fit(model, toy_set(32), checkpoint_dir=tmp_path, **kwargs)
    for path in tmp_path.glob("epoch-*.pt"):
        path.write_bytes(b"PK\x03\x04 not a whole zip")
        faults.add("faults injected")
    with pytest.warns(UserWarning, match="starting over from epoch 0"):
        history = train.fit(models.mini_alexnet(num_classes=2, width=0.125), toy_set(32),
                            checkpoint_dir=tmp_path, **kwargs)
    assert history["epoch"] == [1, 2]  # trained again from scratch, not from garbage


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path, faults):
    """Changing the model but keeping checkpoint_dir must say which folder to clear, not dump a size mismatch."""
    kwargs = dict(epochs=1, batch_size=16, device="cpu", progress=False, checkpoint_dir=tmp_path)
    train.fit(models.mini_alexnet(num_classes=2, width=0.125), toy_set(32), **kwargs)
    with pytest.raises(ValueError, match=str(tmp_path)) as err:
        train.fit(models.mini_alexnet(num_classes=2, width=0.25), toy_set(32), **kwargs)
    assert "checkpoint_dir" in str(err.value)
    faults.add("inputs tried")
