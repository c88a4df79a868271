"""Two seeded CPU runs of each notebook's main computation give identical results.

Modules other than the core are imported inside their test and skipped (with the reason) if absent."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from coursekit import data, settings, train

from .tiny import image, tiny_model, toy_set


def module(name: str):
    try:
        return importlib.import_module(f"coursekit.{name}")
    except ModuleNotFoundError:
        pytest.skip(f"coursekit.{name} does not exist yet: nothing to check")


def twice(compute):
    """compute() run twice, every generator re-seeded before each run."""
    results = []
    for _ in range(2):
        settings.seed_everything(0)
        results.append(compute())
    return results


def assert_identical(a, b, where="result"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs between two seeded runs"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{where} differs between two seeded runs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where} differs between two seeded runs: {a!r} vs {b!r}"


def test_fit_and_evaluate(faults):
    def run():
        model = tiny_model(num_classes=2)
        history = train.fit(model, toy_set(), toy_set(16, seed=1), epochs=2, batch_size=8, seed=5,
                            pca_jitter=0.1, device="cpu", progress=False)
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in history.rows]
        return model.state_dict(), rows, train.evaluate(model, toy_set(16, seed=2))
    assert_identical(*twice(run))
    faults.add("inputs tried")


def test_augment(faults):
    x = toy_set(8).floats()
    def run():
        return data.augment(x, pca_jitter=0.1, generator=torch.Generator().manual_seed(3))
    assert_identical(*twice(run))
    faults.add("inputs tried")


def test_attacks(faults):
    attacks = module("attacks")
    model, x, y = tiny_model(), image(0).repeat(2, 1, 1, 1), torch.tensor([1, 2])
    def run():
        return [attacks.pgd(model, x, y, eps=8 / 255, steps=3, generator=torch.Generator().manual_seed(1)),
                attacks.fgsm(model, x, y), attacks.bim(model, x, target=3, steps=2),
                attacks.fooling_images(model, [4], 32, max_steps=3, generator=torch.Generator().manual_seed(2)),
                attacks.adversarial_training(tiny_model(), toy_set(16, 10), eps=2 / 255, batch_size=8)]
    assert_identical(*twice(run))
    faults.add("inputs tried")


def test_optimize(faults):
    optimize, objectives = module("optimize"), module("objectives")
    transforms, param = module("transforms"), module("param")
    model = tiny_model()
    def run():
        objective = objectives.class_score(3) - 0.01 * objectives.l2(0.5)
        result = optimize.render(model, objective, param.PixelImage(image(1)), steps=4, progress=False,
                                 transforms=[transforms.jitter(2), transforms.random_scale()])
        return result.image, result.history
    assert_identical(*twice(run))
    faults.add("inputs tried")


def test_attribution(faults):
    attribution = module("attribution")
    model, x = tiny_model(), image(2)
    def run():
        maps = {m: attribution.attribute(model, x, m, layer="conv3", unit=1) for m in attribution.METHODS}
        occ = attribution.occlusion(model, x, 0, size=8, stride=8)
        return maps, occ.prob, occ.top_class
    assert_identical(*twice(run))
    faults.add("inputs tried")


def test_features(faults):
    features = module("features")
    model, bank, queries = tiny_model(), toy_set(24, 3), toy_set(6, 3, seed=1)
    def run():
        f_bank = features.extract(model, bank, "fc7")
        f_query = features.extract(model, queries, "fc7")
        return (f_bank, features.nearest_neighbours(f_query, f_bank, k=3),
                features.tsne(f_bank, seed=0, perplexity=5),
                features.linear_probe(f_bank, bank.labels, f_query, queries.labels))
    assert_identical(*twice(run))
    faults.add("inputs tried")


def test_transfer(faults):
    ab = module("ab")
    task = (toy_set(16, 2), toy_set(8, 2, seed=1))
    def run():
        make = lambda k: tiny_model(num_classes=k)
        table = ab.run_ab({"A": task, "B": task}, make, [2], [0],
                          dict(epochs=1, batch_size=8, device="cpu"), progress=False)
        return table.to_dict("list")
    assert_identical(*twice(run))
    faults.add("inputs tried")
