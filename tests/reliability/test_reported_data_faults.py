"""Faults users report against tools like ours (issue 20), fixed by kind: each test holds the right
value for the reported instance and for at least one more instance of the same kind built here.

Kinds: 1 resuming another run's checkpoints, 5 train and test sets with different classes,
10 EXIF orientation, 11 OS clutter in image folders, 12 headless notebook execution that hangs.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from coursekit import data, features, models, train, transfer
from conftest import make_image_folder

from .tiny import toy_set

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- 1. resuming another run

RUN = dict(epochs=1, batch_size=16, lr=0.02, seed=1, device="cpu", progress=False)


def relu_net(**arch):
    torch.manual_seed(0)
    return models.mini_alexnet(num_classes=2, width=0.125, **arch)


@pytest.fixture
def relu_run(tmp_path):
    """A finished ReLU run's checkpoints: the folder and the weights they hold."""
    folder = tmp_path / "checkpoints"
    model = relu_net()
    train.fit(model, toy_set(64), checkpoint_dir=folder, **RUN)
    return folder, {k: v.clone() for k, v in model.state_dict().items()}


OTHER_RUNS = {  # name: (model arguments, fit arguments, words the refusal must use)
    "tanh net": ({"activation": "tanh"}, {}, "model"),  # the reported instances ...
    "ablated net (no LRN, no dropout)": ({"lrn": False, "dropout": 0.0}, {}, "model"),
    "other weight decay": ({}, {"weight_decay": 0.0}, "weight_decay"),
    "other momentum": ({}, {"momentum": 0.5}, "momentum"),
    "no augmentation": ({}, {"augment": False}, "augment"),
    "label smoothing": ({}, {"label_smoothing": 0.1}, "label_smoothing"),
    "other 64-image training set": ({}, {"train_set": toy_set(64, seed=5)}, "train_set"),
    "PCA colour jitter": ({}, {"pca_jitter": 0.1}, "pca_jitter"),  # ... and ones built here
    "other test set": ({}, {"test_set": toy_set(16, seed=7)}, "test_set"),
    "other mixed precision": ({}, {"autocast": True}, "autocast"),
}


@pytest.mark.parametrize("name", OTHER_RUNS)
def test_checkpoints_of_another_run_are_refused_and_say_why(relu_run, name, faults):
    folder, relu_weights = relu_run
    arch, changes, culprit = OTHER_RUNS[name]
    kwargs = {**RUN, "train_set": toy_set(64), **changes}
    model = relu_net(**arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        train.fit(model, kwargs.pop("train_set"), kwargs.pop("test_set", None), checkpoint_dir=folder, **kwargs)
    message = str(err.value)
    assert str(folder) in message and "checkpoint_dir" in message and culprit in message, message
    for key, value in model.state_dict().items():  # not the ReLU run's weights: nothing was loaded
        assert torch.equal(value, before[key]), key
    state = train.latest_checkpoint(folder)  # and the ReLU run's checkpoints are left as they were
    assert state["epoch"] == 1 and all(torch.equal(state["model"][k], v) for k, v in relu_weights.items())
    faults.add("reported faults held")


def test_the_same_run_still_resumes_silently(relu_run):
    """What must not change: the run that wrote the checkpoints resumes, even from another init."""
    folder, relu_weights = relu_run
    torch.manual_seed(123)
    model = models.mini_alexnet(num_classes=2, width=0.125)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = train.fit(model, toy_set(64), checkpoint_dir=folder, **RUN)
    assert history["epoch"] == [1]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in relu_weights.items())


def test_the_run_key_sees_activations_in_a_plain_sequential(tmp_path, faults):
    """Notebook 01's Figure 1 nets: both an nn.Sequential with the same shapes, ReLU or tanh."""
    folder = tmp_path / "checkpoints"
    torch.manual_seed(0)
    train.fit(models.four_layer_cnn("relu", num_classes=2, width=4), toy_set(64), checkpoint_dir=folder, **RUN)
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="model"):
        train.fit(models.four_layer_cnn("tanh", num_classes=2, width=4), toy_set(64), checkpoint_dir=folder, **RUN)
    faults.add("reported faults held")


# ---------------------------------------------------------------- 5. sets with different classes

class Oracle(nn.Module):
    """Scores classes by image brightness: right on every image of make_image_folder's colours
    (class c has mean 40 + 50c) as long as labels mean what they meant in training."""

    def __init__(self, num_classes):
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([40.0 + 50 * c for c in range(num_classes)]) / 255)

    def forward(self, x):
        return -(x.mean(dim=(1, 2, 3))[:, None] - self.centres).abs()


@pytest.fixture
def train_and_val(tmp_path):
    """Training classes ant, bee, cat; the validation folder has no ant (the reported instance)."""
    make_image_folder(tmp_path / "train", ("ant", "bee", "cat"), per_class=3)
    root = tmp_path / "val"
    for c, name in ((1, "bee"), (2, "cat")):  # the same colours as in training
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((32, 32, 3), 40 + 50 * c, np.uint8)).save(root / name / f"{i}.png")
    return data.image_folder(tmp_path / "train"), root


def test_a_validation_folder_missing_a_class_is_caught_or_mapped_by_name(train_and_val, faults):
    train_set, val_root = train_and_val
    oracle = Oracle(3)
    assert train.evaluate(oracle, train_set)["top1"] == 1.0
    val = data.image_folder(val_root)
    assert val.classes == ["bee", "cat"]  # label 0 now means bee: an oracle would score 0%
    with pytest.raises(ValueError, match=r"ant") as err:
        train.evaluate(oracle, val, classes=train_set.classes)
    assert "classes=" in str(err.value)
    with pytest.raises(ValueError, match=r"ant"):
        train.fit(models.mini_alexnet(num_classes=3, width=0.125), train_set, val, **RUN)
    mapped = data.image_folder(val_root, classes=train_set.classes)
    assert mapped.classes == ["ant", "bee", "cat"] and mapped.labels.tolist() == [1, 1, 1, 2, 2, 2]
    assert train.evaluate(oracle, mapped, classes=train_set.classes)["top1"] == 1.0
    faults.add("reported faults held")


def test_classes_in_another_order_are_caught_wherever_sets_meet(train_and_val, isolated_cache, faults):
    train_set, _ = train_and_val
    order = [2, 0, 1]  # the same images, the classes listed as cat, ant, bee
    reordered = data.ImageSet(train_set.images, torch.tensor(order)[train_set.labels],
                              [train_set.classes[i] for i in [1, 2, 0]])
    with pytest.raises(ValueError, match="order"):
        train.evaluate(Oracle(3), reordered, classes=train_set.classes)
    with pytest.raises(ValueError, match="order"):
        train.fit(models.mini_alexnet(num_classes=3, width=0.125), train_set, reordered, **RUN)
    with pytest.raises(ValueError, match="order"):
        features.probe_layers(models.mini_alexnet(num_classes=3, width=0.125), train_set, reordered, ["fc7"])
    with pytest.raises(ValueError, match="order"):
        transfer.learning_curve(models.mini_alexnet(num_classes=3, width=0.125),
                                lambda k: models.mini_alexnet(num_classes=k, width=0.125),
                                train_set, reordered, [1], [0], steps=1, progress=False)
    faults.add("reported faults held")


def test_image_folder_with_a_class_the_training_set_lacks_is_an_error(train_and_val, tmp_path, faults):
    train_set, _ = train_and_val
    make_image_folder(tmp_path / "more", ("bee", "dog"), per_class=1)
    with pytest.raises(ValueError, match="dog") as err:
        data.image_folder(tmp_path / "more", classes=train_set.classes)
    assert str(tmp_path / "more" / "dog") in str(err.value)
    faults.add("reported faults held")


# ---------------------------------------------------------------- 10. EXIF orientation

SHOWN = {  # EXIF orientation -> how a viewer turns the stored pixels (EXIF 2.32, tag 0x0112)
    1: lambda a: a,
    2: lambda a: a[:, ::-1],                 # mirrored left-right
    3: lambda a: a[::-1, ::-1],              # rotated 180
    4: lambda a: a[::-1, :],                 # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),       # mirrored along the main diagonal
    6: lambda a: np.rot90(a, -1),            # rotated 90 clockwise (a phone held upright)
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # mirrored along the other diagonal
    8: lambda a: np.rot90(a, 1),             # rotated 90 anticlockwise
}


def phone_jpeg(path, orientation):
    """An 80 wide x 60 high JPEG of 20-pixel blocks of distinct colours, tagged `orientation`."""
    rng = np.random.default_rng(orientation)
    blocks = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    stored = np.kron(blocks, np.ones((20, 20, 1), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    return np.ascontiguousarray(SHOWN[orientation](stored))


def close(a, b) -> bool:
    return a.shape == b.shape and np.abs(a.astype(float) - b.astype(float)).mean() < 6


@pytest.mark.parametrize("orientation", [6, 2, 3, 4, 5, 7, 8])
def test_every_reader_applies_the_exif_orientation(tmp_path, orientation, faults):
    path = tmp_path / "photo.jpg"
    shown = phone_jpeg(path, orientation)
    assert close(data.read_image(path), shown)
    for source in (path, Image.open(path)):
        assert close((data.load_photo(source, 24)[0].permute(1, 2, 0).numpy() * 255).round(),
                     data.center_crop(np.asarray(data.resize_short_side(shown, 27)), 24).astype(float))
    (tmp_path / "set" / "phone").mkdir(parents=True)
    path.rename(tmp_path / "set" / "phone" / "0.jpg")
    size = 30
    folder = data.image_folder(tmp_path / "set", size=size)
    expected = data.center_crop(np.asarray(data.resize_short_side(shown, size)), size)
    assert close(folder.images[0].permute(1, 2, 0).numpy(), expected)
    faults.add("reported faults held")


# ---------------------------------------------------------------- 11. OS clutter

def test_a_folder_zipped_on_macos_reads_as_its_classes(tmp_path, faults):
    root = make_image_folder(tmp_path / "set", ("cats", "dogs"), per_class=2)
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)
    for name in ("cats", "dogs"):
        (root / "__MACOSX" / name).mkdir(parents=True)
        for i in range(2):
            (root / "__MACOSX" / name / f"._{i}.png").write_bytes(apple_double)
            (root / name / f"._{i}.png").write_bytes(apple_double)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = data.image_folder(root)
    assert ds.classes == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1, 1]
    faults.add("reported faults held")


def test_windows_and_notebook_clutter_is_never_a_class_or_an_image(tmp_path, faults):
    root = make_image_folder(tmp_path / "set", ("cats", "dogs"), per_class=2)
    for junk in ("$RECYCLE.BIN", "System Volume Information", ".Trash-1000", ".ipynb_checkpoints"):
        (root / junk).mkdir()
        Image.new("RGB", (8, 8)).save(root / junk / "x.png")
    Image.new("RGB", (8, 8)).save(root / "cats" / ".hidden.png")
    (root / "cats" / "Thumbs.db").write_bytes(bytes(64))
    (root / "desktop.ini").write_text("[.ShellClassInfo]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = data.image_folder(root)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 4
    faults.add("reported faults held")


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path, faults):
    """After deleting the '._' files, __MACOSX/cats is empty: ignored. An empty real class is an error
    (a class with no images would shift nothing, but leaves a class no set can learn or test, and
    notebook 11's k = min(count) - 1 became -1)."""
    root = make_image_folder(tmp_path / "set", ("ant", "cat"), per_class=2)
    (root / "__MACOSX" / "ant").mkdir(parents=True)
    assert data.image_folder(root).classes == ["ant", "cat"]
    (root / "bee").mkdir()
    with pytest.raises(data.DataNotFoundError, match="bee") as err:
        data.image_folder(root)
    assert str(root / "bee") in str(err.value) and "remove" in str(err.value).lower()
    faults.add("reported faults held", 2)


# ---------------------------------------------------------------- 12. headless execution

def make_course(tmp_path, cells, *overrides, limit=180):
    """`make course` on a one-notebook course in tmp_path: (return code, output, seconds)."""
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "00_tiny.ipynb")
    venv = Path(sys.executable).parent.parent
    command = ["make", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path), "-o", f"{venv}/.installed",
               f"VENV={venv}", "course", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    tic = time.monotonic()
    # a session of its own, so a hang can be ended with make, nbconvert and the kernel together
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"make course still running after {limit} s: it hangs instead of failing")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a kernel left behind by a failed run
    return proc.returncode, output, time.monotonic() - tic


def test_make_course_fails_a_stuck_cell_instead_of_waiting_forever(tmp_path, faults):
    code, output, seconds = make_course(tmp_path, ["import time\ntime.sleep(3600)"], "CELL_TIMEOUT=10", limit=120)
    assert seconds < 120 and code != 0 and "timed out" in output.lower() and "time.sleep(3600)" in output, output[-3000:]
    faults.add("reported faults held")


def test_make_course_runs_widget_panels_headless(tmp_path):
    panel = ("from coursekit import widgets, plot\n"
             "widgets.panel(lambda eps: plot.topk_bars([('x', eps / 16)]), [widgets.Slider('eps', 0, 16, 1, 4)])")
    code, output, _ = make_course(tmp_path, [panel, panel, "print('after the panels')"])
    assert code == 0, output[-3000:]
    executed = nbformat.read(tmp_path / "build" / "00_tiny.ipynb", as_version=4)
    assert "after the panels" in executed.cells[-1].outputs[0]["text"]
    assert (tmp_path / "build" / "00_tiny.html").exists()
    # not counted as held: the reported hang struck 3 times in 30 runs, so one run proves no fix; this
    # holds that panels (now setting their Output widget's outputs directly) execute headless at all


def test_the_course_cell_timeout_is_finite_and_above_the_slowest_cell():
    recipe = subprocess.run(["make", "-n", "-f", str(ROOT / "Makefile"), "-o", ".venv/.installed", "course"],
                            capture_output=True, text=True, cwd=ROOT, check=True).stdout
    timeout = int(recipe.split("--ExecutePreprocessor.timeout=")[1].split()[0])
    assert timeout >= 1200  # full-mode training cells take several minutes (BENCHMARKS.md)
