"""A download or a save interrupted halfway leaves nothing that a later run takes for complete."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit import cache, data, settings


class Interrupted(ConnectionResetError):
    pass


def half_download(calls):
    """A stand-in for torchvision's _urlretrieve: writes half a file, then the connection drops."""
    def retrieve(url, filename, chunk_size=1024 * 32):
        calls.append(url)
        with open(filename, "wb") as f:
            f.write(b"\x1f\x8b" + b"half of an archive" * 1000)
        raise Interrupted(f"connection reset while fetching {url}")
    return retrieve


def test_half_downloaded_archive_is_never_taken_as_complete(tmp_path, monkeypatch, faults):
    """torchvision's checksums: the half archive stays on disk, but the next run downloads again."""
    import torchvision.datasets.utils as tv_utils
    calls = []
    monkeypatch.setattr(tv_utils, "_urlretrieve", half_download(calls))
    monkeypatch.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops=3: url)
    monkeypatch.setattr(tv_utils, "_is_remote_location_available", lambda: False)
    import torchvision
    for attempt in (1, 2):
        before = len(calls)
        with pytest.raises(OSError):
            torchvision.datasets.CIFAR10(str(tmp_path), train=False, download=True)
        assert len(calls) > before, "the half file from the last attempt was taken as complete"
        assert (tmp_path / "cifar-10-python.tar.gz").exists()
        faults.add("faults injected")
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(str(tmp_path), train=False, download=False)
    faults.add("data lost", 0)


def test_interrupted_cifar_download_leaves_no_cache(tmp_path, monkeypatch, isolated_cache, faults):
    """data._download_cifar10 interrupted: no cache file; the next run downloads and caches it whole."""
    import torchvision

    class DropsConnection:
        def __init__(self, root, train, download):
            (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"half")
            raise Interrupted("connection reset")

    class Works:
        classes = list(data.CIFAR10_CLASSES)

        def __init__(self, root, train, download):
            self.data = np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8)
            self.targets = [i % 10 for i in range(20)]

    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "empty-root"))
    monkeypatch.setattr(data, "can_download", lambda host="", timeout=2.0: True)
    cfg = settings.load()
    cache_file = cfg.cache_dir / "cifar10-test-official.pt"

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", DropsConnection)
    with pytest.raises(Interrupted):
        data.cifar10("test")
    faults.add("faults injected")
    assert not cache_file.exists()
    assert not list(cfg.cache_dir.glob("*.tmp"))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Works)
    test_set = data.cifar10("test")
    assert test_set.images.shape == (20, 3, 32, 32) and cache_file.exists()
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", DropsConnection)  # cached now: no download
    assert torch.equal(data.cifar10("test").images, test_set.images)
    faults.add("data lost", 0)


@pytest.mark.parametrize("interruption", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_save_interrupted_mid_write_keeps_the_old_file(tmp_path, monkeypatch, interruption, faults):
    path = tmp_path / "weights.pt"
    cache.atomic_save({"version": 1, "w": torch.arange(1000)}, path)
    real_save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)
        raise interruption

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(type(interruption)):
        cache.atomic_save({"version": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    faults.add("faults injected")
    assert cache.safe_load(path)["version"] == 1  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pt"], "a temporary file was left behind"
    faults.add("data lost", 0)


def test_atomic_save_gives_normal_file_permissions(tmp_path, faults):
    """A cache shared by a group (COURSEKIT_CACHE on a shared disk) must be readable like any file
    written with open(): temporary files are private by default, and a rename keeps that."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    cache.atomic_save({"w": torch.zeros(2)}, tmp_path / "cached.pt")
    assert (tmp_path / "cached.pt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    faults.add("inputs tried")


def test_an_earlier_torchvision_download_is_used_offline(tmp_path, monkeypatch, isolated_cache):
    """CIFAR-10 downloaded once (prefetch, or torchvision by hand) into a data root serves offline
    runs, instead of the 'cannot be downloaded now' error (the offline check came first)."""
    import torchvision
    opened = []

    class AlreadyDownloaded:
        classes = list(data.CIFAR10_CLASSES)

        def __init__(self, root, train, download):
            opened.append((root, download))
            self.data = np.zeros((10, 32, 32, 3), dtype=np.uint8)
            self.targets = list(range(10))

    root = tmp_path / "data"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    monkeypatch.setenv("COURSEKIT_DATA", str(root))
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", AlreadyDownloaded)
    assert len(data.cifar10("test")) == 10 and opened == [(str(root), False)]
