"""coursekit.transfer: copying / freezing layers, discriminative learning rates, the A/B runner."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from coursekit import data, models, transfer, widgets


def tiny(num_classes=3, seed=0):
    torch.manual_seed(seed)
    return models.mini_alexnet(num_classes=num_classes, width=0.0625, lrn=False)


def layer_state(model, name):
    return {k: v.clone() for k, v in transfer._hooks.get_layer(model, name).state_dict().items()}


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_copy_layers_copies_exactly_the_first_n(n):
    source, target = tiny(seed=1), tiny(seed=2)
    before = {name: layer_state(target, name) for name in transfer.LAYERS}
    copied = transfer.copy_layers(source, target, n)
    assert copied == list(transfer.LAYERS[:n])
    for i, name in enumerate(transfer.LAYERS):
        for key, value in layer_state(target, name).items():
            if i < n:
                assert torch.equal(value, layer_state(source, name)[key]), name
            else:
                assert torch.equal(value, before[name][key]), f"{name} changed but was not copied"


def test_freezing_stops_gradients_and_fine_tuning_does_not():
    source, target = tiny(seed=1), tiny(seed=2)
    roles = transfer.transfer(source, target, 3, fine_tune=False)
    assert [r for r in roles.values()].count("copied, frozen") == 3
    loss = F.cross_entropy(target(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for i, name in enumerate(transfer.LAYERS):
        grads = [p.grad for p in transfer._hooks.get_layer(target, name).parameters()]
        if i < 3:
            assert all(g is None for g in grads), f"{name} is frozen but got a gradient"
        else:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), f"{name} got no gradient"
    assert transfer.trainable_layers(target) == list(transfer.LAYERS[3:])
    tuned = tiny(seed=3)
    transfer.transfer(source, tuned, 3, fine_tune=True)
    assert transfer.trainable_layers(tuned) == list(transfer.LAYERS)


def test_frozen_layers_do_not_move_in_training():
    source, target = tiny(seed=1), tiny(seed=2)
    transfer.transfer(source, target, 2)
    train_set = data.ImageSet(torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8),
                              torch.arange(16) % 3, ["a", "b", "c"])
    frozen = layer_state(target, "conv2")
    groups = transfer.param_groups(target, ["conv1", "conv2"], lr=0.05, transferred_lr=0.005)
    transfer.fit_groups(target, train_set, groups, epochs=1, batch_size=8, device="cpu")
    for key, value in layer_state(target, "conv2").items():
        assert torch.equal(value, frozen[key])


def test_reinitialize_changes_the_rest():
    source, target = tiny(seed=1), tiny(seed=1)
    transfer.transfer(source, target, 5)
    assert torch.equal(target.net.conv5.weight, source.net.conv5.weight)
    assert not torch.equal(target.net.fc6.weight, source.net.fc6.weight)


def test_copy_errors_name_the_problem():
    with pytest.raises(ValueError, match="n=9"):
        transfer.copy_layers(tiny(), tiny(), 9)
    wide = models.mini_alexnet(num_classes=3, width=0.125, lrn=False)
    with pytest.raises(ValueError, match="conv1"):
        transfer.copy_layers(wide, tiny(), 1)
    with pytest.raises(KeyError, match="Valid names"):
        transfer.copy_layers(tiny(), tiny(), 1, layers=["nope"])


def test_param_groups_give_transferred_layers_their_own_lr():
    model = tiny()
    transfer.transfer(tiny(seed=5), model, 2, fine_tune=True)
    groups = transfer.param_groups(model, ["conv1", "conv2"], lr=0.1, transferred_lr=0.01)
    slow, fast = groups
    assert slow["lr"] == 0.01 and fast["lr"] == 0.1
    slow_ids = {id(p) for p in slow["params"]}
    assert slow_ids == {id(p) for p in [*model.net.conv1.parameters(), *model.net.conv2.parameters()]}
    assert len(slow["params"]) + len(fast["params"]) == len(list(model.parameters()))
    transfer.set_trainable(model, ["conv1"], False)
    groups = transfer.param_groups(model, ["conv1", "conv2"], lr=0.1, transferred_lr=0.01)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters())) - 2


def test_select_classes_relabels_and_splits_are_disjoint():
    images = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    ds = data.ImageSet(images, torch.arange(10), list(data.CIFAR10_CLASSES))
    half = transfer.select_classes(ds, ["ship", "cat"])
    assert half.labels.tolist() == [1, 0] and half.classes == ["ship", "cat"]
    for split in transfer.cifar_splits().values():
        assert not set(split.a) & set(split.b)
        assert set(split.a) | set(split.b) == set(data.CIFAR10_CLASSES)
    assert len(transfer.random_split().a) == 5
    with pytest.raises(ValueError, match="unknown classes"):
        transfer.select_classes(ds, ["unicorn"])


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
    frame = transfer.run_ab(tasks, make, n_values=range(1, 8), seeds=[0, 1],
                            train_kwargs={"epochs": 1, "batch_size": 12, "lr": 0.01, "augment": False,
                                          "device": "cpu"},
                            split="random", progress=False)
    return pd.concat([frame, frame.assign(split="dissimilar")])


def test_ab_runner_produces_every_configuration(ab_results):
    r = ab_results[ab_results.split == "random"]
    assert set(r.config) == set(transfer.CONFIGS)
    for config in ("BnB", "BnB+", "AnB", "AnB+"):
        for n in range(1, 8):
            assert sorted(r[(r.config == config) & (r.n == n)].seed) == [0, 1]
    assert len(r[r.config == "baseA"]) == 2 and set(r[r.config == "baseB"].n) == {0}
    assert r.top1.between(0, 1).all()
    table = transfer.summarize(ab_results)
    assert table.shape == (12, 8)
    assert transfer.curve(ab_results, "AnB", "random").index.tolist() == list(range(1, 8))


def test_ab_plot_and_panel_sweep(ab_results):
    assert isinstance(transfer.plot_ab(ab_results, "random"), plt.Figure)
    for values in widgets.sweep(transfer.AB_PANEL):
        fig = transfer.ab_panel(ab_results, **values)
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    for bad in ({"n": 0}, {"n": 8}, {"config": "CnB"}, {"split": "other"}):
        with pytest.raises(ValueError):
            transfer.ab_panel(ab_results, **{"n": 3, "config": "AnB", "split": "random", **bad})
    with pytest.raises(ValueError, match="no results"):
        transfer.ab_panel(ab_results[ab_results.split == "random"], split="dissimilar")


def test_trained_on_classes_caches(tiny_cifar, monkeypatch):
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    recipe = {**transfer.source_recipe(["cat", "dog"]), "per_class": 3, "epochs": 1,
              "arch": {"width": 0.0625, "lrn": False, "dropout": 0.5}}
    model, info = transfer.trained_on_classes(recipe, progress=False)
    assert model.net.fc8.out_features == 2 and 0 <= info["test_top1"] <= 1
    again, _ = transfer.trained_on_classes(recipe, progress=False)
    assert torch.equal(again.net.conv1.weight, model.net.conv1.weight)
