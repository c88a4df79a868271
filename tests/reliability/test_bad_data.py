"""Bad data a student can hand the course: every case is converted, skipped with a warning that
names the file, or stopped by an error that names the file (or folder) and the fix."""
from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from coursekit import cache, data
from conftest import make_image_folder

FIX_WORDS = ("remove", "replace", "put", "set", "make", "connect")  # an error must say what to do


def says_what_to_do(message: str) -> bool:
    return any(word in message.lower() for word in FIX_WORDS)


def one_class_folder(tmp_path, n_good=2):
    root = tmp_path / "set"
    make_image_folder(root, ("things",), per_class=n_good, size=24)
    return root, root / "things"


# ---------------------------------------------------------------- missing or empty folders

def test_missing_data_root_names_the_roots_and_the_fix(tmp_path, monkeypatch, isolated_cache, faults):
    monkeypatch.setenv("COURSEKIT_DATA", f"{tmp_path / 'gone'}:{tmp_path / 'also-gone'}")
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    for split in ("train", "test"):
        with pytest.raises(data.DataNotFoundError) as err:
            data.cifar10(split)
        message = str(err.value)
        assert str(tmp_path / "gone" / "cifar10") in message and str(tmp_path / "also-gone") in message
        assert "COURSEKIT_DATA" in message and says_what_to_do(message)
    with pytest.raises(data.DataNotFoundError, match="imagenet-samples"):
        data.imagenet_samples()
    faults.add("inputs tried", 3)


def test_missing_folder_and_folder_without_classes(tmp_path, faults):
    with pytest.raises(data.DataNotFoundError, match=str(tmp_path / "nope")) as err:
        data.image_folder(tmp_path / "nope")
    assert says_what_to_do(str(err.value))
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "loose.png")  # images but no class folders
    with pytest.raises(data.DataNotFoundError, match="no class folders") as err:
        data.image_folder(tmp_path / "flat")
    assert says_what_to_do(str(err.value))
    (tmp_path / "hollow" / "cats").mkdir(parents=True)  # class folders, no images at all
    with pytest.raises(data.DataNotFoundError, match="cats has no images") as err:
        data.image_folder(tmp_path / "hollow")
    assert says_what_to_do(str(err.value))
    faults.add("inputs tried", 3)


def test_empty_class_folder_is_an_error_naming_it(tmp_path, faults):
    """Issue 20 (OS clutter): a class no set can learn or test, and k = min(count) - 1 = -1 downstream."""
    root = make_image_folder(tmp_path / "set", ("ant", "cat"), per_class=2)
    (root / "bee").mkdir()  # sorted between ant and cat
    with pytest.raises(data.DataNotFoundError, match=r"bee has no images") as err:
        data.image_folder(root)
    assert says_what_to_do(str(err.value))
    faults.add("inputs tried")


def test_notebook_clutter_is_ignored(tmp_path, faults):
    """Jupyter and file browsers leave folders and files behind; none of them is a class or an image."""
    root, folder = one_class_folder(tmp_path)
    (root / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".ipynb_checkpoints" / "x.png")
    (folder / "notes.txt").write_text("my notes")
    (folder / ".DS_Store").write_bytes(b"\0\1\2")
    (folder / "Thumbs.db").write_bytes(b"\0" * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = data.image_folder(root)
    assert ds.classes == ["things"] and len(ds) == 2
    faults.add("inputs tried", 4)


# ---------------------------------------------------------------- unreadable files

def _truncated_jpeg(path):
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _png_claiming_size(path, width, height):
    """A tiny PNG whose header claims width x height (what a decompression bomb looks like)."""
    Image.new("L", (1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))


BAD_FILES = {
    "truncated.jpg": _truncated_jpeg,
    "empty.png": lambda p: p.write_bytes(b""),
    "text-named-as.jpg": lambda p: p.write_text("this is a shopping list, not a photo"),
    "html-error-page.png": lambda p: p.write_text("<html><body>404 Not Found</body></html>"),
    "a-folder.jpg": lambda p: p.mkdir(),
    "bomb.png": lambda p: _png_claiming_size(p, 40_000, 40_000),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_unreadable_file_is_named_or_skipped(tmp_path, name, faults):
    root, folder = one_class_folder(tmp_path)
    BAD_FILES[name](folder / name)
    with pytest.raises(ValueError, match=name) as err:
        data.image_folder(root)
    assert says_what_to_do(str(err.value)), str(err.value)
    with pytest.warns(UserWarning, match=f"skipped .*{name}"):
        ds = data.image_folder(root, skip_bad=True)
    assert len(ds) == 2 and ds.images.dtype == torch.uint8
    with pytest.raises(ValueError, match=name):
        data.load_photo(folder / name)
    faults.add("inputs tried")


def test_only_bad_files_is_an_error_not_an_empty_set(tmp_path, faults):
    folder = tmp_path / "set" / "things"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_text("no")
    with pytest.warns(UserWarning, match="a.jpg"), pytest.raises(data.DataNotFoundError, match="could be read"):
        data.image_folder(tmp_path / "set", skip_bad=True)
    faults.add("inputs tried")


# ---------------------------------------------------------------- every image mode

def _save(mode, path):
    """A 20x30 image in `mode`: left half dark, right half bright (so conversions keep contrast)."""
    grey = np.zeros((20, 30), dtype=np.uint8)
    grey[:, 15:] = 220
    rgb = Image.fromarray(np.stack([grey, grey // 2, grey], -1))
    if mode == "I;16":
        Image.fromarray(grey.astype(np.uint16) * 257).save(path)  # 16-bit PNG
    elif mode == "P+transparency":
        rgb.convert("P").save(path, transparency=0)
    elif mode == "F":
        Image.fromarray(grey.astype(np.float32) / 255).save(path)
    else:
        rgb.convert(mode).save(path)


MODES = {"L": "png", "LA": "png", "P": "png", "P+transparency": "png", "RGBA": "png", "CMYK": "jpg",
         "I;16": "png", "I": "tif", "F": "tif", "1": "png", "YCbCr": "tif", "LAB": "tif", "PA": "tif"}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_image_mode_becomes_rgb(tmp_path, mode, faults):
    path = tmp_path / f"image.{MODES[mode]}"
    _save(mode, path)
    array = data.read_image(path)
    assert array.shape == (20, 30, 3) and array.dtype == np.uint8, (mode, array.shape, array.dtype)
    left, right = array[:, :10].mean(), array[:, 20:].mean()
    if mode == "P+transparency":  # palette entry 0 (the dark half) is transparent: white background
        assert (array[:, :10] == 255).all() and right < 255, (left, right)
    else:
        assert right > left + 40, f"{mode}: the bright half is no longer brighter ({left:.0f} vs {right:.0f})"
    x = data.load_photo(path, size=16)
    assert x.shape == (1, 3, 16, 16) and 0 <= x.min() and x.max() <= 1
    faults.add("inputs tried")


def test_transparent_pixels_become_white_not_black(tmp_path, faults):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert (data.read_image(tmp_path / "clear.png") == 255).all()
    faults.add("inputs tried")


def test_mixed_modes_in_one_folder(tmp_path, faults):
    root = tmp_path / "set"
    for i, mode in enumerate(MODES):
        (root / "mixed").mkdir(parents=True, exist_ok=True)
        _save(mode, root / "mixed" / f"{i:02d}.{MODES[mode]}")
    ds = data.image_folder(root, size=16)
    assert ds.images.shape == (len(MODES), 3, 16, 16)
    faults.add("inputs tried")


# ---------------------------------------------------------------- extreme sizes and arrays

@pytest.mark.parametrize("size", [(1, 1), (1, 600), (600, 1), (8000, 8000)])
def test_extreme_sizes(tmp_path, size, faults):
    path = tmp_path / "things" / "x.jpg"
    path.parent.mkdir()
    Image.new("RGB", size, (200, 30, 30)).save(path, quality=80)
    ds = data.image_folder(tmp_path, size=32)
    assert ds.images.shape == (1, 3, 32, 32)
    assert abs(ds.images[0, 0].float().mean() - 200) < 10  # still red, not padding or garbage
    assert data.load_photo(path, size=224).shape == (1, 3, 224, 224)
    faults.add("inputs tried")


@pytest.mark.parametrize("array, culprit", [
    (np.zeros((8, 8, 5), dtype=np.uint8), r"\(H, W, 3\)"),
    (np.zeros((2, 8, 8, 3), dtype=np.uint8), r"\(H, W, 3\)"),
    (np.zeros((8, 8, 3), dtype=np.float32), "uint8"),
])
def test_bad_arrays_for_load_photo(array, culprit, faults):
    with pytest.raises(ValueError, match=culprit):
        data.load_photo(array)
    faults.add("inputs tried")


def test_grey_and_rgba_arrays_are_accepted(faults):
    assert data.load_photo(np.full((10, 12), 128, dtype=np.uint8), 8).shape == (1, 3, 8, 8)
    assert data.load_photo(np.full((10, 12, 4), 128, dtype=np.uint8), 8).shape == (1, 3, 8, 8)
    faults.add("inputs tried", 2)


# ---------------------------------------------------------------- caches

def _cache_file(cache, split="test"):
    return next(cache.glob(f"cifar10-{split}-*.pt"))


def test_cache_from_an_older_format_is_rebuilt(tiny_cifar, isolated_cache, faults):
    first = data.cifar10("test")
    path = _cache_file(isolated_cache)
    stale = torch.load(path, weights_only=False)
    cache.atomic_save({**stale, "format": data.CACHE_FORMAT - 1, "images": stale["images"][:1]}, path)
    again = data.cifar10("test")
    assert torch.equal(again.images, first.images)
    assert torch.load(path, weights_only=False)["format"] == data.CACHE_FORMAT  # rewritten
    faults.add("inputs tried")


@pytest.mark.parametrize("damage", ["half", "empty", "garbage", "not-a-dict", "other-data"])
def test_damaged_cache_is_rebuilt_not_used(tiny_cifar, isolated_cache, damage, faults):
    first = data.cifar10("test")
    path = _cache_file(isolated_cache)
    if damage == "half":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "not-a-dict":
        torch.save(torch.zeros(3), path)
    else:  # a cache of another folder's images (the data changed since)
        cache.atomic_save({"format": data.CACHE_FORMAT, "key": "0" * 16, "images": first.images[:2],
                          "labels": first.labels[:2], "classes": first.classes}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = data.cifar10("test")
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    if damage in ("half", "empty", "garbage"):
        assert any(str(path) in str(w.message) for w in caught), "the warning must name the cache file"
    faults.add("inputs tried")


TINY_RECIPE = {"arch": {"width": 0.1, "activation": "relu", "lrn": True, "overlap": True, "dropout": 0.5},
               "per_class": None, "epochs": 1, "batch_size": 16, "lr": 0.01, "schedule": "onecycle",
               "weight_decay": 5e-4, "autocast": False, "seed": 0, "version": 1}


@pytest.mark.parametrize("damage", ["half", "other-recipe"])
def test_damaged_model_cache_is_retrained_to_the_same_weights(tiny_cifar, isolated_cache, damage, faults):
    from coursekit import backbones
    first, _ = backbones.trained_cifar10(TINY_RECIPE, progress=False)
    path = backbones.cifar10_cache_path(TINY_RECIPE)
    if damage == "half":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # an older recipe's file under this name (e.g. written before a recipe change)
        state = torch.load(path, weights_only=False)
        cache.atomic_save({**state, "recipe": {**TINY_RECIPE, "version": 0}}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again, info = backbones.trained_cifar10(TINY_RECIPE, progress=False)
    assert info["trained_now"], "a damaged or stale weights file was used"
    if damage == "half":
        assert any(str(path) in str(w.message) for w in caught), "the warning must name the weights file"
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    faults.add("inputs tried")
