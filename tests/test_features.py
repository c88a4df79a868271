"""coursekit.features: extraction by layer name, caching, neighbours, probes, t-SNE, the panel."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from coursekit import data, features, models, widgets


def tiny(num_classes=3, seed=0):
    torch.manual_seed(seed)
    return models.mini_alexnet(num_classes=num_classes, width=0.0625, lrn=False).eval()


def random_set(n=12, classes=("a", "b", "c"), seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return data.ImageSet(images, torch.arange(n) % len(classes), list(classes))


@pytest.mark.parametrize("pool,dims", [("avg", 24), ("max", 24), ("flatten", 24 * 7 * 7), (2, 24 * 2 * 2)])
def test_extract_pools_conv_maps(pool, dims):
    model, ds = tiny(), random_set()
    x = features.extract(model, ds, "conv3", pool=pool, batch_size=5)  # several batches
    assert x.shape == (12, dims) and x.dtype == torch.float32
    with torch.no_grad():
        direct = features.extract(model, ds.images[:3], "conv3", pool=pool)
    assert torch.allclose(x[:3], direct, atol=1e-5)


def test_extract_matches_the_forward_pass_and_without_classifier():
    model, ds = tiny(), random_set()
    fc8 = features.extract(model, ds, "fc8")
    assert torch.allclose(fc8, model(ds.floats()).detach(), atol=1e-5)
    headless = features.without_classifier(model)
    penultimate = headless(ds.floats()).detach()
    assert torch.allclose(penultimate, features.extract(model, ds, "relu7"), atol=1e-5)
    assert isinstance(model.net.fc8, nn.Linear), "without_classifier must not change the original"


def test_errors_name_the_culprit():
    with pytest.raises(KeyError, match="Valid names"):
        features.extract(tiny(), random_set(), "conv9")
    with pytest.raises(ValueError, match="pool"):
        features.extract(tiny(), random_set(), "conv1", pool="median")
    with pytest.raises(ValueError, match="metric"):
        features.nearest_neighbours(torch.rand(2, 3), torch.rand(5, 3), 2, metric="manhattan")
    with pytest.raises(ValueError, match="k=6"):
        features.nearest_neighbours(torch.rand(2, 3), torch.rand(5, 3), 6)


def test_cache_is_keyed_by_model_and_written_once(isolated_cache):
    model, ds = tiny(), random_set()
    first = features.cached_features(model, ds, ["conv2", "fc7"], pool="avg")
    files = sorted((isolated_cache / "features").glob("*.pt"))
    assert len(files) == 2
    again = features.cached_features(model, ds, ["conv2", "fc7"], pool="avg")
    assert torch.equal(first["fc7"], again["fc7"])
    other = tiny(seed=1)
    features.cached_features(other, ds, ["fc7"], pool="avg")
    assert len(list((isolated_cache / "features").glob("*.pt"))) == 3, "another model must not reuse the cache"
    features.cached_features(other, ds, ["fc7"], pool="avg", name="explicit")
    assert list((isolated_cache / "features").glob("explicit-*-fc7-avg.pt"))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_finds_the_closest_rows(metric):
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1], [0.9, 0.2]])
    dist, idx = features.nearest_neighbours(torch.tensor([[1.0, 0.05]]), bank, k=2, metric=metric)
    assert idx[0].tolist() == [0, 3] and dist[0, 0] <= dist[0, 1]
    _, self_idx = features.nearest_neighbours(bank, bank, k=1, metric=metric, exclude_self=True)
    assert (self_idx[:, 0] != torch.arange(4)).all()


def test_neighbour_agreement_is_one_for_separated_clusters():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(30) % 3
    feats = torch.eye(3)[labels] * 10 + 0.1 * torch.randn(30, 3, generator=g)
    assert features.neighbour_agreement(feats, labels, k=5) == 1.0
    shuffled = labels[torch.randperm(30, generator=g)]
    assert features.neighbour_agreement(feats, shuffled, k=5) < 0.8


def test_linear_probe_reaches_100_percent_on_separable_features():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    x = rng.normal(size=(200, 16))
    x[np.arange(200), y] += 6.0  # class c is far along axis c: linearly separable
    assert features.linear_probe(x[:120], y[:120], x[120:], y[120:]) == 1.0
    shuffled = rng.permutation(y)
    assert features.linear_probe(x[:120], shuffled[:120], x[120:], shuffled[120:]) < 0.6


def test_probe_layers_table(isolated_cache):
    model = tiny()
    table = features.probe_layers(model, random_set(24), random_set(12, seed=1), ["conv1", "fc7"], pool=2)
    assert table.layer.tolist() == ["pixels", "conv1", "fc7"]
    assert table.top1.between(0, 1).all() and table.dims.tolist()[1] == 4 * 4


def test_probe_draws_draws_what_subset_draws_and_scores_every_space():
    rng = np.random.default_rng(0)
    labels = torch.arange(60) % 3
    signal = torch.from_numpy(rng.normal(size=(60, 8))).float()
    signal[torch.arange(60), labels] += 6.0          # separable along axis c
    noise = torch.from_numpy(rng.normal(size=(60, 8))).float()
    train = {"signal": signal[:45], "noise": noise[:45]}
    test = {"signal": signal[45:], "noise": noise[45:]}
    runs = features.probe_draws(train, labels[:45], test, labels[45:], shots=4, draws=3)
    assert len(runs) == 3 * 2 and set(runs.columns) >= {"draw", "shots", "space", "dims", "top1", "alpha"}
    mean = runs.groupby("space").top1.mean()
    assert mean["signal"] > 0.9 and mean["noise"] < 0.8
    # draw d labels the rows ImageSet.subset(per_class=4, seed=d) would pick
    pool = data.ImageSet(torch.arange(45, dtype=torch.uint8).view(45, 1, 1, 1), labels[:45], ["a", "b", "c"])
    drawn = pool.subset(per_class=4, seed=2).images.flatten().long()  # each image holds its own index
    assert torch.equal(data.balanced_indices(labels[:45], 3, 4, seed=2), drawn)
    with pytest.raises(ValueError, match="same spaces"):
        features.probe_draws(train, labels[:45], {"signal": test["signal"]}, labels[45:], shots=4, draws=1)


def test_tsne_shape_and_perplexity_check():
    x = torch.randn(40, 60)
    assert features.tsne(x, perplexity=10).shape == (40, 2)
    with pytest.raises(ValueError, match="perplexity"):
        features.tsne(x[:5], perplexity=10)
    fig = features.plot_tsne(features.tsne(x, perplexity=10), np.arange(40) % 3, ["a", "b", "c"])
    assert isinstance(fig, plt.Figure)


def make_mixed_folder(root):
    """User images of mixed sizes and modes: RGB, grayscale, RGBA, palette, 16-bit."""
    rng = np.random.default_rng(0)
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir(parents=True)
    rgb = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "cats" / "rgb.jpg")
    Image.fromarray(rgb[:, :, 0]).save(root / "cats" / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 60), 128, np.uint8)])).save(root / "cats" / "rgba.png")
    Image.fromarray(rgb[:20, :50]).convert("P").save(root / "dogs" / "palette.gif")
    Image.fromarray(rng.integers(0, 255, (100, 30, 3), dtype=np.uint8)).save(root / "dogs" / "tall.bmp")
    return root


def test_features_from_a_folder_of_mixed_user_images(tmp_path):
    folder = make_mixed_folder(tmp_path / "mine")
    ds = data.image_folder(folder, size=32)
    assert ds.images.shape == (5, 3, 32, 32) and ds.classes == ["cats", "dogs"]
    x = features.extract(tiny(), ds, "fc7")
    assert x.shape == (5, 64) and torch.isfinite(x).all()


def test_an_unreadable_user_file_is_named(tmp_path):
    folder = make_mixed_folder(tmp_path / "mine")
    (folder / "dogs" / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        features.extract(tiny(), data.image_folder(folder, size=32), "fc7")


def test_neighbours_panel_sweep(isolated_cache):
    model, bank, queries = tiny(), random_set(20), random_set(12, seed=1)
    for values in widgets.sweep(features.NEIGHBOUR_PANEL):
        fig = features.neighbours_panel(model, bank, queries, k=4, **values)
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    for bad in ({"query": -1}, {"query": 12}, {"space": "conv9"}):
        with pytest.raises(ValueError):
            features.neighbours_panel(model, bank, queries, **{"query": 0, "space": "fc7", **bad})
    with pytest.raises(ValueError, match="only 5 query images"):
        features.neighbours_panel(model, bank, random_set(5), query=7, space="fc7")


def test_resize_in_batches_equals_resizing_the_whole_set_at_once():
    """Batched (so a 224 px copy of a large set never exists as one float tensor), same pixels."""
    import torch.nn.functional as F
    images = random_set(n=7).images
    whole = F.interpolate(images.float(), size=(20, 20), mode="bilinear", align_corners=False)
    resized = features.resize(data.ImageSet(images, torch.arange(7), ["a"] * 7), 20, batch_size=3)
    assert resized.images.dtype == torch.uint8 and resized.images.shape == (7, 3, 20, 20)
    assert torch.equal(resized.images, whole.round().clamp(0, 255).to(torch.uint8))
    same = data.ImageSet(images, torch.arange(7), ["a"] * 7)
    assert features.resize(same, images.shape[-1]) is same
