"""coursekit.ab: the A/B experiment's runner, tables, figures and Try-it panel."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from coursekit import ab, data, models, widgets


def synthetic_task(classes, n, seed):
    """Images whose class is the colour of a bright square: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(classes)
    images = torch.randint(0, 60, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    for i, y in enumerate(labels.tolist()):
        images[i, y % 3, 8:24, 8:24] = 250
    return data.ImageSet(images, labels, list(classes))


@pytest.fixture(scope="module")
def ab_results():
    tasks = {"A": (synthetic_task("abc", 24, 0), synthetic_task("abc", 12, 1)),
             "B": (synthetic_task("xyz", 24, 2), synthetic_task("xyz", 12, 3))}
    make = lambda k: models.mini_alexnet(num_classes=k, width=0.0625, lrn=False, dropout=0.0)
    frame = ab.run_ab(tasks, make, n_values=range(1, 8), seeds=[0, 1],
                            train_kwargs={"epochs": 1, "batch_size": 12, "lr": 0.01, "augment": False,
                                          "device": "cpu"},
                            split="random", progress=False)
    return pd.concat([frame, frame.assign(split="dissimilar")])


def test_ab_runner_produces_every_configuration(ab_results):
    r = ab_results[ab_results.split == "random"]
    assert set(r.config) == set(ab.CONFIGS)
    for config in ("BnB", "BnB+", "AnB", "AnB+"):
        for n in range(1, 8):
            assert sorted(r[(r.config == config) & (r.n == n)].seed) == [0, 1]
    assert len(r[r.config == "baseA"]) == 2 and set(r[r.config == "baseB"].n) == {0}
    assert r.top1.between(0, 1).all()
    table = ab.summarize(ab_results)
    assert table.shape == (12, 8)
    assert ab.curve(ab_results, "AnB", "random").index.tolist() == list(range(1, 8))


def test_ab_plot_and_panel_sweep(ab_results):
    assert isinstance(ab.plot_ab(ab_results, "random"), plt.Figure)
    for values in widgets.sweep(ab.AB_PANEL):
        fig = ab.ab_panel(ab_results, **values)
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    for bad in ({"n": 0}, {"n": 8}, {"config": "CnB"}, {"split": "other"}):
        with pytest.raises(ValueError):
            ab.ab_panel(ab_results, **{"n": 3, "config": "AnB", "split": "random", **bad})
    with pytest.raises(ValueError, match="no results"):
        ab.ab_panel(ab_results[ab_results.split == "random"], split="dissimilar")


def test_seed_noise_pools_the_spread_between_seeds_of_every_configuration():
    table = pd.DataFrame({"split": ["r"] * 6, "config": ["baseB", "baseB", "AnB", "AnB", "AnB", "AnB"],
                          "n": [0, 0, 1, 1, 2, 2], "seed": [0, 1, 0, 1, 0, 1],
                          "top1": [0.5, 0.6, 0.4, 0.4, 0.3, 0.5]})
    # per-cell variances (ddof=1): 0.005, 0, 0.02 -> pooled sd sqrt(0.025 / 3)
    assert ab.seed_noise(table) == pytest.approx((0.025 / 3) ** 0.5)
    with pytest.raises(ValueError, match="two seeds"):
        ab.seed_noise(table[table.seed == 0])


def test_difference_margin_is_z_standard_errors_of_a_difference_of_means():
    assert ab.difference_margin(0.03, 2, 2) == pytest.approx(2 * 0.03)
    assert ab.difference_margin(0.03, 6, 2, z=3) == pytest.approx(3 * 0.03 * (1 / 6 + 1 / 2) ** 0.5)
    with pytest.raises(ValueError, match="one run"):
        ab.difference_margin(0.03, 0, 2)


def test_filter_similarity_pairs_filters_whatever_their_order():
    torch.manual_seed(0)
    filters = torch.randn(6, 3, 5, 5)
    order = torch.randperm(6)
    same, partner = ab.filter_similarity(filters, 2 * filters[order] + 1)  # scale and offset do not matter
    assert same == pytest.approx(1.0) and torch.equal(order[partner], torch.arange(6))
    assert ab.filter_similarity(filters, -filters)[0] < 0.5, "a sign flip is a different feature"
    assert ab.filter_similarity(filters, torch.zeros(6, 3, 5, 5))[0] == 0.0, "nothing learned: no similarity"
    unrelated = [ab.filter_similarity(torch.randn(16, 75), torch.randn(16, 75))[0] for _ in range(50)]
    assert 0.05 < sum(unrelated) / 50 < 0.35, "unrelated filters still pair up a little"
    with pytest.raises(ValueError, match="different shapes"):
        ab.filter_similarity(filters, torch.randn(6, 3, 3, 3))


def test_frozen_configurations_on_cached_activations_equal_training_the_whole_network():
    """AnB trained on cached inputs of layer n+1 is the network that training all of it with the
    first n layers frozen (and no augmentation) gives: same batches, same steps, same top-1."""
    from coursekit import train, transfer
    make = lambda k: models.mini_alexnet(num_classes=k, width=0.0625, lrn=False, dropout=0.0)
    b_train, b_test = synthetic_task("xyz", 24, 2), synthetic_task("xyz", 12, 3)
    kwargs = {"epochs": 2, "batch_size": 8, "lr": 0.01, "augment": False, "device": "cpu"}
    torch.manual_seed(0)
    base = make(3)
    train.fit(base, synthetic_task("abc", 24, 0), progress=False, seed=0, **kwargs)
    names = [transfer.LAYERS[n] for n in (1, 5, 7)]
    features = {"train": ab.layer_inputs(base, b_train.images, names),
                "test": ab.layer_inputs(base, b_test.images, names)}
    assert features["train"]["fc6"].shape == (24, 16 * 3 * 3) and features["test"]["conv2"].shape == (12, 4, 15, 15)
    for n in (1, 5, 7):
        cached = ab._frozen_run(base, make, n, features, b_train, b_test, 7, kwargs)
        torch.manual_seed(7)
        whole = make(3)
        transfer.transfer(base, whole, n)
        train.fit(whole, b_train, progress=False, seed=7, **kwargs)
        assert cached == train.evaluate(whole, b_test)["top1"], n
        upper = ab.upper_network(whole, transfer.LAYERS[n], b_test.images[:4])
        x = features["test"][transfer.LAYERS[n]]
        with torch.no_grad():
            assert torch.allclose(upper(x), train.predict(whole, b_test.images), atol=1e-5)


def test_upper_network_refuses_a_model_whose_forward_does_more():
    class Doubled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.Linear(4, 2))

        def forward(self, x):
            return 2 * self.net(x)
    with pytest.raises(ValueError, match="does more"):
        ab.upper_network(Doubled(), "net.2", torch.rand(3, 3, 2, 2))
    with pytest.raises(ValueError, match="nn.Sequential"):
        ab.upper_network(models.mini_alexnet(width=0.0625).eval(), "normalize", torch.rand(2, 3, 32, 32))


def test_run_ab_refuses_augmentation_and_limits_fine_tuning():
    tasks = {"A": (synthetic_task("abc", 12, 0), synthetic_task("abc", 6, 1)),
             "B": (synthetic_task("xyz", 12, 2), synthetic_task("xyz", 6, 3))}
    make = lambda k: models.mini_alexnet(num_classes=k, width=0.0625, lrn=False, dropout=0.0)
    kwargs = {"epochs": 1, "batch_size": 6, "lr": 0.01, "device": "cpu"}
    with pytest.raises(ValueError, match="augment"):
        ab.run_ab(tasks, make, [1], [0], {**kwargs, "augment": True}, progress=False)
    table = ab.run_ab(tasks, make, [1, 6], [0, 1], kwargs, "random", progress=False,
                      fine_tune_n=[6], fine_tune_seeds=[1])
    plus = table[table.config.str.endswith("+")]
    assert set(zip(plus.n, plus.seed)) == {(6, 1)} and len(plus) == 2
    assert len(table[table.config == "AnB"]) == 4


def test_paired_differences_compare_seed_by_seed():
    table = pd.DataFrame({"split": ["r"] * 8, "config": ["baseB", "baseB", "AnB", "AnB", "BnB", "BnB", "AnB", "BnB"],
                          "n": [0, 0, 7, 7, 7, 7, 1, 1], "seed": [0, 1, 0, 1, 0, 1, 0, 0],
                          "top1": [0.5, 0.7, 0.4, 0.66, 0.45, 0.7, 0.5, 0.52]})
    to_base = ab.paired_differences(table, "r", "AnB")
    assert to_base.loc[0, 7] == pytest.approx(-0.1) and to_base.loc[1, 7] == pytest.approx(-0.04)
    to_bnb = ab.paired_differences(table, "r", "AnB", "BnB")
    assert to_bnb.loc[0, 7] == pytest.approx(-0.05) and to_bnb.loc[1, 7] == pytest.approx(-0.04)
    assert ab.paired_margin(to_bnb[[7]]).loc[7] == pytest.approx(2 * (0.01 / 2 ** 0.5) / 2 ** 0.5)
    with pytest.raises(ValueError, match="two seeds"):
        ab.paired_margin(to_bnb)  # n = 1 has one seed
    with pytest.raises(ValueError, match="no rows"):
        ab.paired_differences(table, "r", "AnB+")
