"""A trained network as a feature extractor: features from any layer, nearest neighbours,
linear probes and t-SNE (DeCAF, Donahue et al. 2014; Razavian et al. 2014).

Features come from a forward hook on a named layer (conv1 ... fc8 or a dotted torch name), so
nothing here assumes `model.features` / `model.classifier`. Conv maps (N, C, H, W) are reduced
to vectors by `pool`: 'avg' or 'max' over space, 'flatten', or a whole number k (average-pooled
to a k x k grid, then flattened: keeps coarse layout at a size a linear probe can handle).
"""
from __future__ import annotations

import copy
import hashlib

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import cache as _cache
from . import data as _data
from . import hooks as _hooks
from . import settings as _settings
from .models import LAYERS, reads_model
from .widgets import Choice, Slider, panel_controls, validate

POOLS = ("avg", "max", "flatten")
METRICS = ("cosine", "euclidean")


# ---------------------------------------------------------------- extraction

def check_pool(pool) -> None:
    """ValueError unless `pool` is one of POOLS or a whole number k >= 1 (average-pool to k x k)."""
    if pool in POOLS or (isinstance(pool, int) and not isinstance(pool, bool) and pool >= 1):
        return
    raise ValueError(f"pool={pool!r}: use one of {POOLS} or a grid size k >= 1 (average-pool to k x k)")


def pool_features(x: torch.Tensor, pool="avg") -> torch.Tensor:
    """(N, C, H, W) maps or (N, D) vectors -> (N, D') vectors."""
    check_pool(pool)
    if x.dim() == 2:
        return x
    if x.dim() != 4:
        return x.flatten(1)
    if pool == "avg":
        return x.mean((2, 3))
    if pool == "max":
        return x.amax((2, 3))
    if pool == "flatten":
        return x.flatten(1)
    return F.adaptive_avg_pool2d(x, pool).flatten(1)


def _images_of(source) -> torch.Tensor:
    return source.images if isinstance(source, _data.ImageSet) else source


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@reads_model()
def extract_layers(model: nn.Module, source, layers, pool="avg", batch_size: int = 256) -> dict:
    """{layer: (N, D) float CPU features} for an ImageSet or an image batch (uint8 or [0, 1] floats),
    one batched forward pass per batch capturing every layer at once (the model read in eval mode)."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    check_pool(pool)
    for name in layers:
        _hooks.get_layer(model, name)  # an unknown name fails here, listing the valid ones
    images, device = _images_of(source), _model_device(model)
    parts = {name: [] for name in layers}
    for i in range(0, len(images), batch_size):
        x = _data.to_float(images[i:i + batch_size].to(device))
        acts = _hooks.activations(model, x, layers)
        for name in layers:
            parts[name].append(pool_features(acts[name].float(), pool).cpu())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def extract(model: nn.Module, source, layer: str, pool="avg", batch_size: int = 256) -> torch.Tensor:
    """(N, D) features of one named layer for a whole ImageSet or image batch."""
    return extract_layers(model, source, [layer], pool, batch_size)[layer]


def resize(dataset: _data.ImageSet, size: int, batch_size: int = 256) -> _data.ImageSet:
    """The same images resized to size x size (bilinear), e.g. 32 px CIFAR for a 224 px AlexNet.

    uint8 in, uint8 out, converted `batch_size` images at a time: one float32 copy of a whole set at
    224 px would cost 0.6 MB per image (6 GB for 10,000, and rounding made two more copies)."""
    images = dataset.images
    if images.shape[-1] == size and images.shape[-2] == size:
        return dataset
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for i in range(0, len(images), batch_size):
        x = F.interpolate(images[i:i + batch_size].float(), size=(size, size), mode="bilinear", align_corners=False)
        out[i:i + batch_size] = x.round_().clamp_(0, 255)
    return _data.ImageSet(out, dataset.labels, dataset.classes)


def pixels(source) -> torch.Tensor:
    """Raw pixels as (N, 3*H*W) floats in [0, 1]: the baseline 'feature space'."""
    return _data.to_float(_images_of(source)).flatten(1)


def without_classifier(model: nn.Module, classifier: str = "fc8") -> nn.Module:
    """A copy of `model` whose classification layer is replaced by the identity: its output
    is now the penultimate representation (the slide's 'remove the last layer')."""
    model = copy.deepcopy(model)
    target = getattr(model, "aliases", {}).get(classifier, classifier)
    _hooks.get_layer(model, classifier)  # clear error for unknown names
    parent_name, _, child = target.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return model


# ---------------------------------------------------------------- caching

def fingerprint(obj) -> str:
    """A short hash of a model's state_dict or of a tensor / ImageSet's contents."""
    digest = hashlib.sha1()
    if isinstance(obj, nn.Module):
        for name, tensor in obj.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    else:
        tensor = _images_of(obj)
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def cached_features(model: nn.Module, source, layers, pool="avg", name: str | None = None,
                    cfg=None) -> dict:
    """extract_layers(...), cached on disk per (model, data, layer, pool) by cache.cached.

    The model is keyed by `name` if given (e.g. 'cifar10-backbone'), else by a hash of its
    state_dict, so a retrained model never reuses stale features. Returns {layer: (N, D) CPU features}.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    cfg = _settings.current(cfg)
    model_key = name or fingerprint(model)
    data_key = fingerprint(source)
    found, fresh = {}, {}

    def extract(layer: str) -> torch.Tensor:
        if layer not in fresh:  # one forward pass for this layer and every later one not loaded yet
            fresh.update(extract_layers(model, source, [l for l in layers if l not in found], pool))
        return fresh[layer]

    for layer in layers:
        path = cfg.cache_dir / "features" / f"{model_key}-{data_key}-{layer}-{pool}.pt"
        found[layer], _ = _cache.cached(path, lambda: extract(layer), valid=lambda t: isinstance(t, torch.Tensor))
    return found


# ---------------------------------------------------------------- nearest neighbours

def distances(queries: torch.Tensor, bank: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """(Q, N) distances: 1 - cosine similarity, or Euclidean distance."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: use one of {METRICS}")
    queries, bank = queries.float(), bank.float()
    if metric == "cosine":
        return 1 - F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T
    return torch.cdist(queries, bank)


def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, k: int = 5, metric: str = "cosine",
                       exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each (Q, k): the k bank rows closest to each query, closest first.

    exclude_self: the queries ARE the bank (row i is query i), so skip each query's own row.
    """
    if not 1 <= k <= len(bank) - int(exclude_self):
        raise ValueError(f"k={k} must be between 1 and {len(bank) - int(exclude_self)} (the bank size)")
    dist = distances(queries, bank, metric)
    if exclude_self:
        dist.fill_diagonal_(float("inf"))
    values, indices = dist.topk(k, dim=1, largest=False)
    return values, indices


def neighbour_agreement(features: torch.Tensor, labels: torch.Tensor, k: int = 5,
                        metric: str = "cosine") -> float:
    """Leave-one-out: the fraction of each image's k nearest neighbours that share its class."""
    _, indices = nearest_neighbours(features, features, k, metric, exclude_self=True)
    return (labels[indices] == labels[:, None]).float().mean().item()


# ---------------------------------------------------------------- linear probes and t-SNE

def linear_probe(train_x, train_y, test_x, test_y, C: float = 1.0, max_iter: int = 2000) -> float:
    """Test accuracy of a logistic-regression classifier trained on frozen features
    (standardized first, so layers with different scales get the same treatment)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    as_np = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    probe.fit(as_np(train_x), as_np(train_y))
    return float(probe.score(as_np(test_x), as_np(test_y)))


def probe_layers(model: nn.Module, train_set: _data.ImageSet, test_set: _data.ImageSet, layers,
                 pool=2, C: float = 1.0, name: str | None = None):
    """A linear probe per layer (plus raw pixels): a pandas table of layer, dims, top1.
    The two sets must list the same classes in the same order (ValueError otherwise)."""
    import pandas as pd
    _data.check_same_classes(train_set.classes, test_set.classes, "test_set")
    train = cached_features(model, train_set, layers, pool, name)
    test = cached_features(model, test_set, layers, pool, name)
    train["pixels"], test["pixels"] = pixels(train_set), pixels(test_set)
    rows = [{"layer": layer, "dims": train[layer].shape[1],
             "top1": linear_probe(train[layer], train_set.labels, test[layer], test_set.labels, C)}
            for layer in ["pixels", *layers]]
    return pd.DataFrame(rows)


def probe_draws(train: dict, train_labels: torch.Tensor, test: dict, test_labels: torch.Tensor,
                shots: int, draws: int):
    """Few-shot linear probes on features extracted once: for each draw d = 0 .. draws-1, `shots`
    labelled rows per class are drawn from `train` (data.balanced_indices with seed d, the images
    ImageSet.subset(per_class=shots, seed=d) picks), a probe is fitted on them for every space and
    scored on all of `test`.

    train, test: {space name: (N, D) features} with the same spaces (a layer, 'pixels', ...);
    labels (N,) in 0..C-1. The probe is pipeline.linear_classifier: standardized ridge regression,
    its L2 weight chosen per space and per draw by leave-one-out cross-validation on the draw's own
    labelled rows (the test rows choose nothing). Returns a pandas table, one row per draw and space:
    draw, shots, space, dims, top1 (test accuracy), alpha (the chosen L2 weight).
    """
    import pandas as pd
    from .pipeline import linear_classifier
    if set(train) != set(test):
        raise ValueError(f"train and test must hold the same spaces, got {sorted(train)} and {sorted(test)}")
    train_labels = torch.as_tensor(train_labels)
    num_classes = int(train_labels.max()) + 1
    rows = []
    for draw in range(draws):
        few = _data.balanced_indices(train_labels, num_classes, shots, seed=draw).numpy()
        for space, x in train.items():
            probe = linear_classifier(_numpy(x)[few], train_labels.numpy()[few])
            rows.append({"draw": draw, "shots": shots, "space": space, "dims": x.shape[1],
                         "top1": float(probe.score(_numpy(test[space]), _numpy(test_labels))),
                         "alpha": float(probe[-1].alpha_)})
    return pd.DataFrame(rows)


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def tsne(features: torch.Tensor, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, 2) t-SNE embedding (scikit-learn), after PCA to 50 dims as van der Maaten advises."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if not 1 <= perplexity < len(x):
        raise ValueError(f"perplexity={perplexity} must be below the number of points ({len(x)})")
    if x.shape[1] > 50:
        x = PCA(min(50, len(x)), random_state=seed).fit_transform(x)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


# ---------------------------------------------------------------- figures

def plot_tsne(points: np.ndarray, labels, classes, title: str = "t-SNE", ax=None):
    """A scatter plot of a 2-D embedding, one colour per class."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
    labels = np.asarray(labels)
    for c, name in enumerate(classes):
        keep = labels == c
        ax.scatter(points[keep, 0], points[keep, 1], s=6, label=name, color=plt.cm.tab10(c % 10))
    ax.set_title(title)
    ax.set_xticks([]); ax.set_yticks([])
    ax.legend(fontsize=10, markerscale=2, loc="best")
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def plot_neighbours(query_images, bank_images, indices, rows_titles=None, bank_labels=None,
                    query_labels=None, classes=None, size: float = 1.1):
    """AlexNet Figure 4 layout: each row a query (left) then its neighbours; neighbours that share
    the query's class get a green frame, others red (when labels are given)."""
    nq, k = indices.shape
    fig, axes = plt.subplots(nq, k + 1, figsize=(size * (k + 1.3), size * nq + 0.3), squeeze=False)
    for r in range(nq):
        axes[r, 0].imshow(_to_hwc(query_images[r]))
        title = rows_titles[r] if rows_titles else ""
        if classes is not None and query_labels is not None:
            title = f"{title}\n{classes[int(query_labels[r])]}" if title else classes[int(query_labels[r])]
        axes[r, 0].set_title(title, fontsize=10)
        for j in range(k):
            ax = axes[r, j + 1]
            ax.imshow(_to_hwc(bank_images[int(indices[r, j])]))
            if bank_labels is not None and query_labels is not None:
                same = int(bank_labels[int(indices[r, j])]) == int(query_labels[r])
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if same else "tab:red")
                    spine.set_linewidth(2.5)
    for ax in axes.flat:
        ax.set_xticks([]); ax.set_yticks([])
    fig.tight_layout()
    return fig


def _to_hwc(image) -> np.ndarray:
    from .plot import to_image
    return to_image(image)


# ---------------------------------------------------------------- Try it: neighbours of a query

NEIGHBOUR_SPACES = ["pixels", *LAYERS[:-1]]  # fc8 is the class scores, not a feature space
NEIGHBOUR_PANEL = [Slider("query", 0, 11, 1, 0, "query image"),
                   Choice("space", NEIGHBOUR_SPACES, "fc7", "feature space")]


def space_features(model, source, space: str, pool="avg", name: str | None = None) -> torch.Tensor:
    """Features of one 'space': 'pixels' or a layer name."""
    if space == "pixels":
        return pixels(source)
    return cached_features(model, source, [space], pool, name)[space]


@panel_controls(NEIGHBOUR_PANEL)
def neighbours_panel(model: nn.Module, bank: _data.ImageSet, queries: _data.ImageSet,
                     query: int = 0, space: str = "fc7", k: int = 8, name: str | None = None):
    """One query image and its k nearest bank images in the chosen space (Try-it callback)."""
    validate(NEIGHBOUR_PANEL, query=query, space=space)
    if query >= len(queries):
        raise ValueError(f"query={query} but there are only {len(queries)} query images (0..{len(queries) - 1})")
    bank_x = space_features(model, bank, space, name=name)
    query_x = space_features(model, queries, space, name=name)[query:query + 1]
    _, idx = nearest_neighbours(query_x, bank_x, k)
    agree = (bank.labels[idx[0]] == queries.labels[query]).float().mean().item()
    fig = plot_neighbours(queries.images[query:query + 1], bank.images, idx, [f"query {query}"],
                          bank.labels, queries.labels[query:query + 1], bank.classes, size=1.3)
    fig.suptitle(f"{k} nearest neighbours in {space} space: {agree:.0%} share the query's class", fontsize=10)
    fig.tight_layout()
    return fig
