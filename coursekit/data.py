"""Images as uint8 tensors in memory: CIFAR-10, any ImageFolder, ImageNet samples, photos; and
class splits of a data set into two tasks (for transfer experiments).

Decoding happens once; training batches are sliced from memory and augmented as
batched tensor ops on the training device, so no per-image PIL work sits in the loop.
"""
from __future__ import annotations

import hashlib
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from . import cache as _cache
from . import settings as _settings

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# what operating systems and tools leave in folders: never a class, never an image. Dot-files cover
# macOS's .DS_Store and ._* (AppleDouble) files, .ipynb_checkpoints and Linux's .Trash-*
OS_CLUTTER = {"__MACOSX", "Thumbs.db", "desktop.ini", "$RECYCLE.BIN", "System Volume Information"}
CACHE_FORMAT = 1  # bump when the cached layout changes; older files are rebuilt


class DataNotFoundError(FileNotFoundError):
    """Raised with the places searched and the ways to get the data."""


@dataclass
class ImageSet:
    """Images (N, 3, H, W) uint8, labels (N,) int64 and the class names, all in memory."""
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> "ImageSet":
        index = torch.as_tensor(index) if not isinstance(index, slice) else index
        return ImageSet(self.images[index], self.labels[index], self.classes)

    def subset(self, per_class: int | None = None, total: int | None = None, seed: int = 0) -> "ImageSet":
        """A class-balanced random subset: `per_class` images of each class, or `total` overall."""
        if per_class is None and total is None:
            return self
        for name, value in (("per_class", per_class), ("total", total)):
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number >= 1 (or None for everything), not {value!r}")
        per_class = per_class if per_class is not None else max(1, total // len(self.classes))
        return self[balanced_indices(self.labels, len(self.classes), per_class, seed)]

    def floats(self, device=None) -> torch.Tensor:
        """Images as float32 in [0, 1] on `device`."""
        return to_float(self.images.to(device) if device is not None else self.images)


def balanced_indices(labels: torch.Tensor, num_classes: int, per_class: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a class-balanced random draw: `per_class` of each class 0..num_classes-1
    (all of a class that has fewer), the same draw for the same seed. ImageSet.subset draws with it,
    and so does a probe that draws rows of features cached for a whole image set."""
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        keep.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(keep).sort().values


def dataset_hash(dataset: ImageSet) -> str:
    """A short hash of an ImageSet's images, labels and class names: equal only for the same data
    (0.4 s for 50,000 CIFAR-sized images on a busy 2-core machine)."""
    digest = hashlib.sha1(repr((tuple(dataset.images.shape), str(dataset.images.dtype), list(dataset.classes))).encode())
    for tensor in (dataset.images, dataset.labels):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; floats pass through."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(x - mean) / std per channel: x is (C, H, W) or (N, C, H, W) in [0, 1]; mean and std hold one
    value per channel (C of them, in [0, 1] units), or one for all. Returns a new tensor of x's
    shape, dtype and device, in standard deviations. Inverse: `denormalize`."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """x * std + mean per channel, the inverse of `normalize`: back from standard deviations to [0, 1]
    pixel units (not clamped: an optimized image may leave [0, 1]). Same shapes as `normalize`."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return x * std + mean


def check_same_classes(expected: list[str], found: list[str], where: str = "test_set") -> None:
    """Raise a ValueError unless `found` lists the same classes as `expected` in the same order:
    label i must mean the same class in two sets that meet (training and test, probe train and test).
    """
    expected, found = list(expected), list(found)
    if expected == found:
        return
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if missing or extra:
        what = "; ".join(part for part in (f"missing {missing}" if missing else "",
                                            f"not in training {extra}" if extra else "") if part)
    else:
        what = "the same classes in another order"
    raise ValueError(f"{where} has classes {found} but the model was trained on {expected} ({what}): "
                     f"label i would mean a different class in each. Load it with "
                     f"data.image_folder(root, classes=train_set.classes) so labels follow the names")


# ---------------------------------------------------------------- reading images

def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """One image file as RGB uint8 (H, W, 3), whatever its mode; `size` resizes the short side.

    Raises ValueError naming the file when it is not a readable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _to_rgb(_upright(img))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}. Remove the file or replace it "
                         f"with a JPEG or PNG.") from err
    if size is not None:
        rgb = resize_short_side(rgb, size)
    return np.asarray(rgb)


def _upright(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it: phones store pixels as the sensor saw them and record the
    turn (or mirror) in the EXIF Orientation tag; without this a portrait photo arrives sideways."""
    return ImageOps.exif_transpose(img)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode.startswith("I;16") or img.mode in {"I", "F"}:
        arr = np.asarray(img, dtype=np.float64)
        span = max(arr.max() - arr.min(), 1e-12)
        img = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))
    return img.convert("RGB")


def resize_short_side(img: Image.Image | np.ndarray, size: int) -> Image.Image:
    """The image (PIL or HxWx3 uint8 array) resized bilinearly so its shorter side is `size` pixels,
    keeping the aspect ratio, as torchvision's Resize(size) does. Returns a PIL image."""
    img = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    w, h = img.size
    # the long side truncated, as torchvision's Resize does (AlexNet_Weights.transforms(): round()
    # made chelsea 385 px wide instead of 384 and shifted every pixel of the crop)
    if w <= h:
        new = (size, max(1, int(size * h / w)))
    else:
        new = (max(1, int(size * w / h)), size)
    return img.resize(new, Image.BILINEAR)


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
    """The central size x size square of an HxW(xC) array, placed as torchvision's CenterCrop places
    it; a side shorter than `size` is kept whole (no padding)."""
    h, w = array.shape[:2]
    # rounded (half to even) as torchvision's CenterCrop does, so a crop matches AlexNet's transforms
    top, left = max(0, int(round((h - size) / 2.0))), max(0, int(round((w - size) / 2.0)))
    return array[top:top + size, left:left + size]


def load_photo(source, size: int = 224) -> torch.Tensor:
    """A photo (path, PIL image or HxWx3 array) as a (1, 3, size, size) float tensor in [0, 1]:
    short side resized to `size * 256 / 224`, then centre-cropped (torchvision's eval recipe)."""
    if isinstance(source, (str, Path)):
        array = read_image(source)
    else:
        array = np.asarray(_to_rgb(_upright(source)) if isinstance(source, Image.Image) else source)
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"expected an image of shape (H, W, 3), got {array.shape}")
        array = array[..., :3]
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}; convert with (img*255).astype('uint8')")
    resized = np.asarray(resize_short_side(array, round(size * 256 / 224)))
    crop = center_crop(resized, size)
    return torch.from_numpy(crop.copy()).permute(2, 0, 1).unsqueeze(0).float().div(255)


def photo(name: str) -> np.ndarray:
    """A photograph shipped with scikit-image, e.g. 'chelsea' (a cat), 'coffee', 'astronaut'."""
    import skimage.data
    known = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "cat"]
    if name not in known:
        raise ValueError(f"unknown photo {name!r}; choose one of {known}")
    return getattr(skimage.data, name)()


# ---------------------------------------------------------------- folders

def is_clutter(name: str) -> bool:
    """Whether a folder entry is left by an OS or a tool (a dot-file, __MACOSX, Thumbs.db, ...)."""
    return name.startswith(".") or name in OS_CLUTTER


def scan_folder(root: str | Path, classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) for every image in root/<class>/*, classes in sorted order, or in the
    order of `classes` (e.g. a training set's) matched by name.

    OS and tool clutter (`is_clutter`) is skipped. An empty class folder is an error rather than a
    class without images: no model can learn or be tested on it, and counts derived from the class
    list (k of a k-NN, chance level) would silently be wrong.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"no folder {root}: make one with a sub-folder per class, "
                                f"e.g. {root}/cats/1.jpg and {root}/dogs/1.jpg")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not is_clutter(d.name))
    if not found:
        raise DataNotFoundError(f"{root} has no class folders: put images in {root}/<class>/<image>.jpg")
    classes = found if classes is None else list(classes)
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise ValueError(f"{root / unknown[0]} is a class folder, but the classes given are {classes}: "
                         f"remove it, or train on a set that has the class {unknown[0]!r}")
    items = []
    for name in found:
        files = sorted(p for p in (root / name).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not is_clutter(p.name))
        if not files:
            raise DataNotFoundError(f"class folder {root / name} has no images "
                                    f"({', '.join(sorted(IMAGE_SUFFIXES))}): put images in it or remove it")
        items.extend((p, classes.index(name)) for p in files)
    return items, classes


def image_folder(root: str | Path, size: int = 32, skip_bad: bool = False,
                 classes: list[str] | None = None) -> ImageSet:
    """Any folder of root/<class>/<image> as an ImageSet of size x size images
    (short side resized, centre-cropped; any mode converted to RGB, turned upright by its EXIF tag).

    classes: label images by these names (e.g. `classes=train.classes` for a validation folder, so
        label i means the same class in both even if a class is missing here); a class folder not
        in the list is a ValueError. Default: the class folders in sorted order.
    An unreadable file raises an error naming it, or with skip_bad=True is skipped with a warning.
    """
    items, classes = scan_folder(root, classes)
    images, labels = [], []
    for path, label in items:
        try:
            array = center_crop(np.asarray(resize_short_side(read_image(path), size)), size)
        except ValueError as err:
            if not skip_bad:
                raise
            warnings.warn(f"skipped {path}: {err.__cause__}")
            continue
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
        labels.append(label)
    if not images:
        raise DataNotFoundError(f"none of the images under {root} could be read")
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes)


# ---------------------------------------------------------------- folders decoded once, cached

def _fingerprint(root: Path) -> str | None:
    """A hash of the class folders and image names under `root`, or None when it cannot be listed.

    Names only: one directory read per class and no stat() per file, so a cache hit on CIFAR-10's
    50,000 files costs milliseconds instead of seconds. Adding, removing or renaming an image
    changes it; an image overwritten in place under the same name does not (delete the cache file).
    """
    try:
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        digest = hashlib.sha1()
        for index, name in enumerate(classes):
            files = sorted(f for f in os.listdir(Path(root) / name)
                           if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
            digest.update(f"{index}:{name}:{len(files)}\n".encode() + "\n".join(files).encode())
        return digest.hexdigest()[:16]
    except OSError:
        return None


def cached_folder(root: Path, size: int, cache_name: str, cfg=None) -> ImageSet:
    """image_folder(root, size), decoded once and cached under the cache dir (cache.cached), keyed
    by the folder's fingerprint: adding, removing or renaming an image decodes it again."""
    cfg = _settings.current(cfg)
    key = _fingerprint(root)

    def decode() -> dict:
        dataset = image_folder(root, size=size)  # raises the helpful errors for a missing or empty folder
        return {"format": CACHE_FORMAT, "key": key, "images": dataset.images,
                "labels": dataset.labels, "classes": dataset.classes}

    stored, _ = _cache.cached(cfg.cache_dir / f"{cache_name}-{size}px.pt", decode, valid=lambda c: (
        key is not None and isinstance(c, dict) and c.get("format") == CACHE_FORMAT and c.get("key") == key))
    return ImageSet(stored["images"], stored["labels"], stored["classes"])


# ---------------------------------------------------------------- CIFAR-10

def find_dataset(name: str, cfg=None) -> Path | None:
    """The first data root that holds `name` (e.g. 'cifar10', 'imagenet-samples')."""
    cfg = _settings.current(cfg)
    for root in cfg.data_roots:
        if (root / name).is_dir():
            return root / name
    return None


def cifar10(split: str = "train", cfg=None) -> ImageSet:
    """CIFAR-10 as uint8 tensors: from an ImageFolder copy under a data root, else downloaded.

    The first call decodes the JPEGs (a few seconds) and caches them; later calls take well under a second.
    """
    if split not in {"train", "test"}:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    cfg = _settings.current(cfg)
    folder = find_dataset("cifar10", cfg)
    if folder is not None and (folder / split).is_dir():
        images = cached_folder(folder / split, 32, f"cifar10-{split}", cfg)
    else:
        images = _downloaded_cifar10(split, cfg)
    if cfg.null == "shuffled-labels" and split == "train":
        return shuffled_labels(images, cfg.seed)
    return images


def shuffled_labels(images: ImageSet, seed: int = 0) -> ImageSet:
    """The same images with their labels permuted (a fixed permutation for a seed): class counts
    stay, every link between image and class goes. The null of Zhang et al. 2017 ("Understanding
    deep learning requires rethinking generalization"): what trains on it can memorize, not learn
    classes, so a check that still passes is not about what was learned (COURSEKIT_NULL)."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return ImageSet(images.images, images.labels[order], list(images.classes))


def can_download(host: str = "download.pytorch.org", timeout: float = 2.0) -> bool:
    """True when `host` answers; the only place besides downloads that touches the network."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _download_root(cfg) -> Path:
    """Where a download lands: the first data root, or the cache where that root is not writable
    (downloads kept in a data root survive clean-cache)."""
    return Path(cfg.data_roots[0] if os.access(cfg.data_roots[0], os.W_OK) else cfg.cache_dir)


def _downloaded_cifar10(split: str, cfg) -> ImageSet:
    target = _download_root(cfg)

    def download() -> dict:
        # an earlier download (prefetch, or torchvision run by hand) works offline: look before asking
        for root in dict.fromkeys([target, *cfg.data_roots, cfg.cache_dir]):
            if (Path(root) / "cifar-10-batches-py").is_dir():
                try:
                    return _download_cifar10(split, Path(root), download=False)
                except RuntimeError:  # torchvision found it incomplete or corrupt: download afresh
                    pass
        if cfg.offline or not can_download("www.cs.toronto.edu"):
            roots = "\n  ".join(str(r / "cifar10") for r in cfg.data_roots)
            why = "COURSEKIT_OFFLINE=1 is set" if cfg.offline else "www.cs.toronto.edu cannot be reached"
            raise DataNotFoundError(
                f"CIFAR-10 not found, and it cannot be downloaded now ({why}). Searched:\n  {roots}\n"
                f"Get it either way:\n"
                f"  1. point COURSEKIT_DATA at a folder holding an ImageFolder copy of CIFAR-10, "
                f"<root>/cifar10/{{train,test}}/<class>/*.jpg (export COURSEKIT_DATA=<root>; several "
                f"roots: <root1>{os.pathsep}<root2>), or\n"
                f"  2. while online (COURSEKIT_OFFLINE unset), run `python -m coursekit prefetch` "
                f"once: torchvision downloads it into {target} and later runs work offline.")
        return _download_cifar10(split, target)

    stored, _ = _cache.cached(cfg.cache_dir / f"cifar10-{split}-official.pt", download,
                              valid=lambda c: isinstance(c, dict) and c.get("format") == CACHE_FORMAT)
    return ImageSet(stored["images"], stored["labels"], stored["classes"])


def _download_cifar10(split: str, target: Path, download: bool = True) -> dict:
    """torchvision's download (checksummed, so a half-finished one is never taken as complete);
    download=False reads one already in `target` (RuntimeError when it is missing or corrupt)."""
    import torchvision
    official = torchvision.datasets.CIFAR10(str(target), train=(split == "train"), download=download)
    images = torch.from_numpy(official.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(official.targets, dtype=torch.int64)
    return {"format": CACHE_FORMAT, "images": images, "labels": labels, "classes": list(official.classes)}


# ---------------------------------------------------------------- class splits: two tasks from one data set

VEHICLES = ("airplane", "automobile", "ship", "truck")
ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")


@dataclass(frozen=True)
class Split:
    """Task A and task B as two disjoint lists of class names."""
    name: str
    a: tuple
    b: tuple


def random_split(classes=CIFAR10_CLASSES, seed: int = 0, name: str = "random") -> Split:
    """A random half of the classes as task A, the other half as task B (the paper's A/B split)."""
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(classes) // 2
    return Split(name, tuple(sorted(classes[i] for i in order[:half])),
                 tuple(sorted(classes[i] for i in order[half:])))


def cifar_splits(seed: int = 0) -> dict[str, Split]:
    """'random': 5 vs 5 classes; 'dissimilar': natural vs man-made. CIFAR-10 has 6 animal classes
    and 4 vehicle ones, so A = animals (6) and B = vehicles (4), unequal halves like the paper's
    551 natural vs 449 man-made ImageNet classes. (B = animals would leave baseB near chance at
    quick-mode sizes: six look-alike animals from 200 images each.)"""
    return {"random": random_split(seed=seed), "dissimilar": Split("dissimilar", ANIMALS, VEHICLES)}


def select_classes(dataset: ImageSet, names) -> ImageSet:
    """The images of the named classes, relabelled 0..len(names)-1 in the given order."""
    unknown = [n for n in names if n not in dataset.classes]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; this data set has {dataset.classes}")
    index = [dataset.classes.index(n) for n in names]
    keep = torch.isin(dataset.labels, torch.tensor(index))
    remap = torch.full((len(dataset.classes),), -1, dtype=torch.int64)
    remap[index] = torch.arange(len(index))
    return ImageSet(dataset.images[keep], remap[dataset.labels[keep]], list(names))


# ---------------------------------------------------------------- ImageNet sample photos

# One photo of each ILSVRC-2012 class, named <wnid>_<name>.JPEG, so sorted by name they follow the
# classes' index order: github.com/EliSchwartz/imagenet-sample-images, pinned to one commit so the
# photos behind a cached result never change (a 110 MB zip). Kept with the short side at 256 px, the
# size torchvision's evaluation transform resizes to before its 224 px centre crop.
IMAGENET_SAMPLES_URL = ("https://github.com/EliSchwartz/imagenet-sample-images/archive/"
                        "bc69043e2862758a1906c6a24a792bb28c6bb2ff.zip")
IMAGENET_SAMPLES_COUNT = 1000
IMAGENET_SAMPLES_SIDE = 256


def imagenet_samples(cfg=None) -> list[tuple[Path, int, str]]:
    """(path, class index, class name) for the one-photo-per-class ImageNet samples, by index: an
    imagenet-samples/ folder under a data root, else downloaded once (see `imagenet_samples_folder`).
    DataNotFoundError, naming the roots searched and both fixes, when there is none and no download."""
    folder = imagenet_samples_folder(cfg)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    unnamed = [p.name for p in files if "_" not in p.stem]
    if unnamed:
        raise ValueError(f"{folder} holds photos not named <wnid>_<class name> (e.g. n01440764_tench.JPEG): "
                         f"{unnamed[:3]}; move them out: the class index is the photo's place in name order")
    return [(p, i, p.stem.split("_", 1)[1].replace("_", " ")) for i, p in enumerate(files)]


def imagenet_samples_unavailable(cfg=None) -> str | None:
    """Why the ImageNet sample photos cannot be had here (None: they are here or can be downloaded)."""
    cfg = _settings.current(cfg)
    if _local_imagenet_samples(cfg) is not None:
        return None
    if cfg.offline:
        return "the ImageNet sample photos are not under the data roots and COURSEKIT_OFFLINE=1 is set"
    if not can_download("github.com"):
        return "the ImageNet sample photos are not under the data roots and github.com cannot be reached"
    return None


def imagenet_samples_folder(cfg=None) -> Path:
    """The imagenet-samples folder: the first data root's, else one downloaded earlier into the
    cache, else downloaded now from IMAGENET_SAMPLES_URL (about 110 MB) into the first writable data
    root (else the cache), each photo stored with its short side at 256 px. The download is unpacked
    beside the target and renamed into place only once complete, so an interrupted one is never
    taken for the folder."""
    cfg = _settings.current(cfg)
    folder = _local_imagenet_samples(cfg)
    if folder is not None:
        return folder
    why = imagenet_samples_unavailable(cfg)
    if why is not None:
        roots = "\n  ".join(str(r / "imagenet-samples") for r in cfg.data_roots)
        raise DataNotFoundError(
            f"{why}. Searched:\n  {roots}\nGet them either way:\n"
            f"  1. point COURSEKIT_DATA at a folder holding imagenet-samples/ (one <wnid>_<name>.JPEG "
            f"per ILSVRC-2012 class), or\n"
            f"  2. while online (COURSEKIT_OFFLINE unset), run `python -m coursekit prefetch` once: it "
            f"downloads them from {IMAGENET_SAMPLES_URL} and later runs work offline.")
    return _download_imagenet_samples(_download_root(cfg))


def _local_imagenet_samples(cfg) -> Path | None:
    found = find_dataset("imagenet-samples", cfg)
    downloaded = cfg.cache_dir / "imagenet-samples"
    return found if found is not None else (downloaded if downloaded.is_dir() else None)


def _download_imagenet_samples(target: Path) -> Path:
    import tempfile
    from torchvision.datasets.utils import download_and_extract_archive
    target.mkdir(parents=True, exist_ok=True)
    final = target / "imagenet-samples"
    with tempfile.TemporaryDirectory(dir=target, prefix=".imagenet-samples-") as tmp:
        download_and_extract_archive(IMAGENET_SAMPLES_URL, tmp, filename="imagenet-sample-images.zip")
        photos = sorted(p for p in Path(tmp).rglob("n*_*.JPEG"))
        if len(photos) != IMAGENET_SAMPLES_COUNT:
            raise RuntimeError(f"{IMAGENET_SAMPLES_URL} held {len(photos)} sample photos, not "
                               f"{IMAGENET_SAMPLES_COUNT} (one per ILSVRC-2012 class): download it again")
        staging = Path(tmp) / "imagenet-samples"
        staging.mkdir()
        for path in photos:
            with Image.open(path) as photo:
                photo = ImageOps.exif_transpose(photo).convert("RGB")
                scale = IMAGENET_SAMPLES_SIDE / min(photo.size)
                if scale < 1:
                    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
                photo.save(staging / path.name, "JPEG", quality=95)
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():
                raise  # not "another process finished first", whose folder is kept
    return final


def imagenet_photos(n: int | None, size: int, seed: int = 0, classes=None, cfg=None) -> ImageSet:
    """n of the ImageNet sample photos (None: all), drawn in an order fixed by `seed`, at size x size
    (load_photo's resize and centre crop) as a uint8 ImageSet labelled with their class indices;
    `classes` names them (default: the sample files' own names, by index)."""
    samples = imagenet_samples(cfg)
    chosen = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    photos = torch.cat([load_photo(samples[i][0], size) for i in chosen])
    labels = torch.tensor([samples[i][1] for i in chosen])
    names = list(classes) if classes is not None else [name for _, _, name in samples]
    return ImageSet(photos.mul(255).round().to(torch.uint8), labels, names)


# ---------------------------------------------------------------- objects at a known place

# The pasted object's side as a share of the image side: 20 px of 32, 140 px of 224. A centre crop
# keeps the object at the scale the network was trained on (CIFAR-10 and ImageNet photos centre
# their object), and 0.625 leaves the box 39% of the image, with room to move.
OBJECT_FRACTION = 0.625


@dataclass
class PastedObjects:
    """Objects at a known place: `images` holds the canvases (uint8, the originals' size and labels),
    `corners` (N, 2) int64 each object's (top, left) pixel, `side` the object's side in pixels."""
    images: ImageSet
    corners: torch.Tensor
    side: int

    def masks(self, device=None) -> torch.Tensor:
        """(N, H, W) bool on `device`: True on each image's object, False on the plain canvas."""
        height, width = self.images.images.shape[-2:]
        rows, cols = torch.arange(height), torch.arange(width)
        top, left = self.corners[:, :1], self.corners[:, 1:]
        inside_r = (rows >= top) & (rows < top + self.side)     # (N, H)
        inside_c = (cols >= left) & (cols < left + self.side)   # (N, W)
        masks = inside_r[:, :, None] & inside_c[:, None, :]
        return masks.to(device) if device is not None else masks


def pasted_objects(images: ImageSet, fill, fraction: float = OBJECT_FRACTION, seed: int = 0,
                   backgrounds: torch.Tensor | None = None) -> PastedObjects:
    """Each image's central square crop (side `fraction` of the image's shorter side) pasted at a
    random place (fixed by `seed`) on a canvas of one plain colour `fill` (three values in [0, 1];
    the data set's mean colour is the neutral choice), or on `backgrounds` (uint8 (N, 3, H, W), one
    whole image per object, e.g. `other_class_partners`' pick: a context of another class). The
    object's box is known: the reference for occlusion and saliency (Zeiler & Fergus 2014, Simonyan
    et al. 2014 argue the network looks at the object, not its surroundings). On a plain canvas
    covering the surroundings changes little of the input; on another image it removes real content.
    ValueError for a fraction outside (0, 1], a fill that is not one colour in [0, 1], or backgrounds
    of another shape or dtype than the images."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} must be in (0, 1]: the object's side as a share of the image side")
    colour = torch.as_tensor(fill, dtype=torch.float32).flatten()
    if colour.numel() != 3 or not ((colour >= 0) & (colour <= 1)).all():
        raise ValueError(f"fill must be one RGB colour in [0, 1] (e.g. the data set's mean), not {fill!r}")
    if backgrounds is not None and (backgrounds.shape != images.images.shape or backgrounds.dtype != torch.uint8):
        raise ValueError(f"backgrounds must be uint8 images of the objects' shape {tuple(images.images.shape)}, "
                         f"got {backgrounds.dtype} {tuple(backgrounds.shape)}; pick them with "
                         f"images.images[other_class_partners(images.labels)]")
    n, _, height, width = images.images.shape
    side = max(1, round(fraction * min(height, width)))
    top0, left0 = (height - side) // 2, (width - side) // 2
    objects = images.images[:, :, top0:top0 + side, left0:left0 + side]
    g = torch.Generator().manual_seed(seed)
    corners = torch.stack([torch.randint(0, height - side + 1, (n,), generator=g),
                           torch.randint(0, width - side + 1, (n,), generator=g)], 1)
    if backgrounds is None:
        canvas = colour.mul(255).round().to(torch.uint8).view(1, 3, 1, 1).expand(n, 3, height, width).clone()
    else:
        canvas = backgrounds.clone()
    for i, (top, left) in enumerate(corners.tolist()):
        canvas[i, :, top:top + side, left:left + side] = objects[i]
    return PastedObjects(ImageSet(canvas, images.labels.clone(), list(images.classes)), corners, side)


def other_class_partners(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(N,) int64: for each image, the index of another image of a different class (a fixed random
    pick for a seed), the context `pasted_objects(..., backgrounds=...)` puts its object on. A
    network that used the context would be pulled towards the partner's class. ValueError when all
    labels are one class (no partner exists)."""
    labels = torch.as_tensor(labels)
    if labels.unique().numel() < 2:
        raise ValueError(f"all {len(labels)} images are of one class: no image has a partner of another class")
    g = torch.Generator().manual_seed(seed)
    partners = torch.empty(len(labels), dtype=torch.int64)
    for i, label in enumerate(labels.tolist()):
        others = (labels != label).nonzero().flatten()
        partners[i] = others[torch.randint(len(others), (1,), generator=g)]
    return partners


# ---------------------------------------------------------------- augmentation

def augment(x: torch.Tensor, pad: int = 4, flip: bool = True, pca_jitter: float = 0.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """AlexNet's augmentation for a float batch (N, C, H, W) in [0, 1], as batched tensor ops:
    random crops from the image padded by `pad` (reflect), random horizontal flips, and PCA
    colour jitter with standard deviation `pca_jitter` (the paper used 0.1)."""
    if x.dim() != 4:
        raise ValueError(f"augment takes a batch (N, C, H, W), got shape {tuple(x.shape)}; add a batch "
                         f"dimension with x[None]")
    n, _, h, w = x.shape
    if not 0 <= pad < min(h, w):
        raise ValueError(f"pad={pad} must be >= 0 and smaller than the image side {min(h, w)}")
    device = x.device
    rand = lambda *shape: torch.rand(*shape, generator=generator, device="cpu").to(device)
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy = (rand(n) * (2 * pad + 1)).long()
        dx = (rand(n) * (2 * pad + 1)).long()
        rows = (torch.arange(h, device=device) + dy[:, None])  # (n, h)
        cols = (torch.arange(w, device=device) + dx[:, None])  # (n, w)
        x = padded[torch.arange(n, device=device)[:, None, None, None],
                   torch.arange(x.shape[1], device=device)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mirror = rand(n) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    if pca_jitter:
        x = x + pca_colour_shift(n, pca_jitter, device, generator)[:, :, None, None]
    return x


# AlexNet's ImageNet PCA: the eigen-decomposition of ImageNet's RGB pixel covariance (eigenvalues,
# and eigenvectors as columns; the values used by fb.resnet.torch), for 'fancy PCA' colour jitter.
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])


def pca_colour_shift(n: int, std: float, device, generator=None) -> torch.Tensor:
    """AlexNet's 'fancy PCA': add sum_i alpha_i * lambda_i * p_i to every pixel, alpha ~ N(0, std)."""
    alpha = torch.randn(n, 3, generator=generator) * std
    return ((alpha * PCA_EIGVAL) @ PCA_EIGVEC.T).to(device)
