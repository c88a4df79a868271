import numpy as np
import pytest
import torch
from PIL import Image

from coursekit import data
from conftest import make_image_folder


def test_image_folder_reads_classes_in_order(tmp_path):
    make_image_folder(tmp_path / "set", ("zebra", "ant"), per_class=2, size=40)
    ds = data.image_folder(tmp_path / "set", size=32)
    assert ds.classes == ["ant", "zebra"]
    assert ds.images.shape == (4, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 0, 1, 1]


def test_modes_are_converted_to_rgb(tmp_path):
    folder = tmp_path / "set" / "things"
    folder.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("L").save(folder / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "alpha.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    ds = data.image_folder(tmp_path / "set", size=16)
    assert ds.images.shape == (4, 3, 16, 16)


def test_unreadable_image_is_named(tmp_path):
    make_image_folder(tmp_path / "set", ("a",), per_class=1)
    bad = tmp_path / "set" / "a" / "broken.jpg"
    bad.write_bytes(b"not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        data.image_folder(tmp_path / "set")
    with pytest.warns(UserWarning, match="broken.jpg"):
        ds = data.image_folder(tmp_path / "set", skip_bad=True)
    assert len(ds) == 1


def test_missing_cifar_lists_roots_and_fixes(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    with pytest.raises(data.DataNotFoundError) as err:
        data.cifar10("train")
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar10") in message
    assert "COURSEKIT_DATA" in message and "download" in message


def test_cifar_is_cached_and_reused(tiny_cifar, isolated_cache):
    first = data.cifar10("train")
    assert first.images.shape == (60, 3, 32, 32) and first.classes == data.CIFAR10_CLASSES
    cache_files = list(isolated_cache.glob("cifar10-train-*.pt"))
    assert len(cache_files) == 1
    second = data.cifar10("train")
    assert torch.equal(first.images, second.images)


def test_truncated_cache_is_rebuilt(tiny_cifar, isolated_cache):
    first = data.cifar10("test")
    path = next(isolated_cache.glob("cifar10-test-*.pt"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = data.cifar10("test")
    assert torch.equal(first.images, again.images)


def test_subset_is_class_balanced(tiny_cifar):
    ds = data.cifar10("train").subset(per_class=2, seed=3)
    assert len(ds) == 20 and torch.bincount(ds.labels).tolist() == [2] * 10
    assert torch.equal(ds.images, data.cifar10("train").subset(per_class=2, seed=3).images)


def test_augment_keeps_shape_and_range_and_is_seeded():
    x = torch.rand(8, 3, 32, 32)
    a = data.augment(x, generator=torch.Generator().manual_seed(0))
    b = data.augment(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1


def test_augment_crop_is_a_shifted_window():
    x = torch.arange(32.0).repeat(1, 3, 32, 1) / 32  # value = column index
    out = data.augment(x, pad=4, flip=False, generator=torch.Generator().manual_seed(1))
    row = out[0, 0, 16]
    # a shifted window of a reflect-padded ramp: the interior still steps by 1/32
    steps = (row[1:] - row[:-1]) * 32
    assert ((steps.round() == 1) | (steps.round() == -1)).all()


def test_pca_jitter_shifts_colours_only():
    x = torch.full((4, 3, 8, 8), 0.5)
    out = data.augment(x, pad=0, flip=False, pca_jitter=0.1, generator=torch.Generator().manual_seed(0))
    per_image_shift = out - x
    assert torch.allclose(per_image_shift, per_image_shift[:, :, :1, :1].expand_as(per_image_shift))
    assert per_image_shift.abs().sum() > 0


def test_normalize_round_trip():
    x = torch.rand(2, 3, 4, 4)
    y = data.normalize(x, data.CIFAR10_MEAN, data.CIFAR10_STD)
    assert torch.allclose(data.denormalize(y, data.CIFAR10_MEAN, data.CIFAR10_STD), x, atol=1e-6)


def test_load_photo_shape_and_range():
    x = data.load_photo(data.photo("chelsea"), 224)
    assert x.shape == (1, 3, 224, 224) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="unknown photo"):
        data.photo("unicorn")


def test_imagenet_sample_names_match_torchvision_order():
    from coursekit import backbones
    if data.find_dataset("imagenet-samples") is None:
        pytest.skip("no imagenet-samples folder under the data roots (set COURSEKIT_DATA)")
    samples = data.imagenet_samples()
    classes = backbones.imagenet_classes()
    assert len(samples) == 1000
    renamed = {134: "crane", 639: "maillot"}  # torchvision tells two same-named classes apart
    for path, index, name in samples:
        expected = classes[index]
        assert name == expected or name == renamed.get(index), (index, name, expected)


def test_select_classes_relabels_and_splits_are_disjoint():
    images = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    ds = data.ImageSet(images, torch.arange(10), list(data.CIFAR10_CLASSES))
    half = data.select_classes(ds, ["ship", "cat"])
    assert half.labels.tolist() == [1, 0] and half.classes == ["ship", "cat"]
    for split in data.cifar_splits().values():
        assert not set(split.a) & set(split.b)
        assert set(split.a) | set(split.b) == set(data.CIFAR10_CLASSES)
    assert len(data.random_split().a) == 5
    with pytest.raises(ValueError, match="unknown classes"):
        data.select_classes(ds, ["unicorn"])


def test_shuffled_labels_null_permutes_only_the_training_labels(tiny_cifar, monkeypatch):
    from coursekit import data
    train, test = data.cifar10("train"), data.cifar10("test")
    monkeypatch.setenv("COURSEKIT_NULL", "shuffled-labels")
    shuffled = data.cifar10("train")
    assert torch.equal(shuffled.images, train.images) and shuffled.classes == train.classes
    assert sorted(shuffled.labels.tolist()) == sorted(train.labels.tolist())  # class counts kept
    assert (shuffled.labels != train.labels).float().mean() > 0.5
    assert torch.equal(data.cifar10("train").labels, shuffled.labels)  # the same permutation each time
    assert torch.equal(data.cifar10("test").labels, test.labels)


def test_pasted_objects_put_the_centre_crop_at_the_box_on_a_plain_canvas():
    torch.manual_seed(0)
    images = data.ImageSet(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8), torch.arange(6), list("abcdef"))
    pasted = data.pasted_objects(images, (0.2, 0.4, 0.6), fraction=0.625, seed=1)
    assert pasted.side == 20 and pasted.images.images.shape == (6, 3, 32, 32)
    assert torch.equal(pasted.images.labels, images.labels)
    masks = pasted.masks()
    assert masks.shape == (6, 32, 32) and (masks.flatten(1).sum(1) == 400).all()
    grey = torch.tensor([51, 102, 153], dtype=torch.uint8)
    for i, (top, left) in enumerate(pasted.corners.tolist()):
        assert torch.equal(pasted.images.images[i, :, top:top + 20, left:left + 20], images.images[i, :, 6:26, 6:26])
        outside = pasted.images.images[i].permute(1, 2, 0)[~masks[i]]
        assert (outside == grey).all()
    assert len({tuple(c) for c in pasted.corners.tolist()}) > 1, "the boxes move from image to image"
    again = data.pasted_objects(images, (0.2, 0.4, 0.6), fraction=0.625, seed=1)
    assert torch.equal(again.corners, pasted.corners)


def test_pasted_objects_reject_a_bad_fraction_or_colour():
    images = data.ImageSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.arange(2), ["a", "b"])
    with pytest.raises(ValueError, match="fraction"):
        data.pasted_objects(images, (0.5, 0.5, 0.5), fraction=1.5)
    with pytest.raises(ValueError, match="RGB"):
        data.pasted_objects(images, (128, 128, 128))


def test_pasted_objects_on_another_image_keep_that_image_around_the_box():
    torch.manual_seed(0)
    images = data.ImageSet(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 0, 1, 1, 2, 2]),
                           list("abc"))
    partners = data.other_class_partners(images.labels, seed=3)
    assert (images.labels[partners] != images.labels).all()
    assert torch.equal(partners, data.other_class_partners(images.labels, seed=3)), "fixed for a seed"
    pasted = data.pasted_objects(images, (0.2, 0.4, 0.6), seed=1, backgrounds=images.images[partners])
    masks = pasted.masks()
    for i, (top, left) in enumerate(pasted.corners.tolist()):
        assert torch.equal(pasted.images.images[i, :, top:top + 20, left:left + 20], images.images[i, :, 6:26, 6:26])
        assert torch.equal(pasted.images.images[i][:, ~masks[i]], images.images[partners[i]][:, ~masks[i]])
    assert torch.equal(pasted.images.labels, images.labels), "the label is the object's"
    with pytest.raises(ValueError, match="backgrounds"):
        data.pasted_objects(images, (0.2, 0.4, 0.6), backgrounds=images.images[:2])
    with pytest.raises(ValueError, match="one class"):
        data.other_class_partners(torch.zeros(4, dtype=torch.int64))


def test_imagenet_photos_at_any_size_in_a_seeded_order():
    photos = data.imagenet_photos(3, 48, seed=1)
    assert photos.images.shape == (3, 3, 48, 48) and photos.images.dtype == torch.uint8
    again = data.imagenet_photos(3, 96, seed=1)
    assert torch.equal(photos.labels, again.labels), "the seed fixes which photos, whatever the size"
    samples = data.imagenet_samples()
    assert photos.classes[int(photos.labels[0])] == samples[int(photos.labels[0])][2]


@pytest.fixture
def serve(tmp_path):
    """A local web server for tmp_path/served: the download code runs as it does against GitHub."""
    import functools
    import http.server
    import threading
    folder = tmp_path / "served"
    folder.mkdir()
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _samples_archive(tmp_path, serve, names, size=(400, 300)):
    """A zip laid out like GitHub's archive of the samples repository (one folder, photos and a
    README), served locally: its URL."""
    import shutil
    repo = tmp_path / "zip" / "imagenet-sample-images-bc69043"
    repo.mkdir(parents=True)
    for name in names:
        Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(repo / f"{name}.JPEG")
    (repo / "README.md").write_text("one image per class")
    shutil.make_archive(str(serve[0] / "samples"), "zip", tmp_path / "zip")
    return f"{serve[1]}/samples.zip"


@pytest.fixture
def online_without_samples(tmp_path, monkeypatch, isolated_cache):
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("COURSEKIT_DATA", str(root))
    monkeypatch.delenv("COURSEKIT_OFFLINE", raising=False)
    monkeypatch.setattr(data, "can_download", lambda host="", timeout=2.0: True)  # served from this machine
    return root


def test_the_imagenet_samples_are_downloaded_once_when_no_root_has_them(tmp_path, monkeypatch, serve,
                                                                       online_without_samples):
    """The path a student online without a copy takes (Colab): downloaded into the first data root,
    stored at the short side the evaluation transform uses, read from there the next time."""
    names = ["n01440764_tench", "n01443537_goldfish", "n15075141_toilet_tissue"]
    monkeypatch.setattr(data, "IMAGENET_SAMPLES_URL", _samples_archive(tmp_path, serve, names))
    monkeypatch.setattr(data, "IMAGENET_SAMPLES_COUNT", 3)
    assert data.imagenet_samples_unavailable() is None
    samples = data.imagenet_samples()
    assert [(i, name) for _, i, name in samples] == [(0, "tench"), (1, "goldfish"), (2, "toilet tissue")]
    assert {path.parent for path, _, _ in samples} == {online_without_samples / "imagenet-samples"}
    with Image.open(samples[0][0]) as photo:
        assert photo.size == (341, 256)  # 400 x 300, short side to 256
    monkeypatch.setattr(data, "IMAGENET_SAMPLES_URL", f"{serve[1]}/gone.zip")  # no second download
    assert data.imagenet_samples() == samples
    assert [p.name for p in online_without_samples.iterdir()] == ["imagenet-samples"]  # nothing half-done left


def test_an_incomplete_samples_download_is_refused_and_leaves_no_folder(tmp_path, monkeypatch, serve,
                                                                        online_without_samples):
    monkeypatch.setattr(data, "IMAGENET_SAMPLES_URL", _samples_archive(tmp_path, serve, ["n01440764_tench"]))
    with pytest.raises(RuntimeError, match="held 1 sample photos, not 1000"):
        data.imagenet_samples()
    assert list(online_without_samples.iterdir()) == []


def test_without_samples_and_offline_the_error_names_both_fixes(monkeypatch, online_without_samples):
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    assert "COURSEKIT_OFFLINE=1" in data.imagenet_samples_unavailable()
    with pytest.raises(data.DataNotFoundError) as err:
        data.imagenet_samples()
    message = str(err.value)
    assert str(online_without_samples / "imagenet-samples") in message and "COURSEKIT_DATA" in message
    assert "coursekit prefetch" in message


def test_a_samples_folder_with_unnamed_photos_says_which(tmp_path, monkeypatch, isolated_cache):
    make_image_folder(tmp_path, ["imagenet-samples"], per_class=2)
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"not named <wnid>_<class name>.*0\.png"):
        data.imagenet_samples()
