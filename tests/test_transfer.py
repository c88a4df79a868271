"""coursekit.transfer: copying / freezing layers, discriminative learning rates."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coursekit import data, models, train, transfer


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
    train.fit(target, train_set, param_groups=groups, epochs=1, batch_size=8, device="cpu", progress=False)
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


@pytest.mark.parametrize("method, trainable, copied", [
    ("scratch", transfer.LAYERS, ()),
    ("fixed features", ("fc8",), transfer.LAYERS[:-1]),
    ("fine-tune", transfer.LAYERS, transfer.LAYERS[:-1]),
])
def test_each_learning_curve_method_starts_the_network_as_named(method, trainable, copied):
    assert transfer.METHODS == tuple(transfer.STARTS) == ("scratch", "fixed features", "fine-tune")
    source, model = tiny(seed=0), tiny(seed=1)
    assert transfer.STARTS[method](source, model) == copied
    assert transfer.trainable_layers(model) == list(trainable)
    for name in transfer.LAYERS:
        same = all(torch.equal(a, b) for a, b in zip(layer_state(source, name).values(),
                                                       layer_state(model, name).values()))
        assert same == (name in copied), f"{method}: {name}"


def test_train_method_names_the_methods_for_an_unknown_one():
    with pytest.raises(ValueError, match="fixed features"):
        transfer.train_method("linear probe", tiny(), None, tiny, 1, 0.1, 0.01)


# ---------------------------------------------------------------- more classes, a new task

def blobs(classes, per_class=12, dim=6, seed=0, first=0):
    """(N, dim) features in well separated clusters, one per class (class c around 4 e_{first + c}),
    as an ImageSet."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.eye(dim)[first: first + len(classes)]
    labels = torch.arange(len(classes)).repeat_interleave(per_class)
    return data.ImageSet(centres[labels] + 0.3 * torch.randn(len(labels), dim, generator=g), labels, list(classes))


@pytest.mark.parametrize("keep_old", [True, False])
def test_extended_head_starts_with_the_source_rows_on_both_backbones(keep_old):
    torch.manual_seed(0)
    for fc8 in [torch.nn.Linear(6, 3), transfer._hooks.get_layer(models.alexnet(pretrained=False), "fc8")]:
        head = transfer.ExtendedHead(fc8, 2, keep_old)
        x = torch.randn(4, fc8.in_features)
        out = head(x)
        assert out.shape == (4, fc8.out_features + 2)
        assert torch.allclose(out[:, : fc8.out_features], fc8(x))
        assert all(p.requires_grad != keep_old for p in head.old.parameters())
        assert all(p.requires_grad for p in head.new.parameters())
        assert head.old.weight is not fc8.weight  # a copy: training the head leaves the source alone


@pytest.mark.parametrize("keep_old", [True, False])
def test_more_classes_keeps_or_trains_the_old_rows_and_scores_old_and_new(keep_old):
    old_classes, new_classes = ["a", "b", "c"], ["d", "e"]
    torch.manual_seed(0)
    fc8 = torch.nn.Linear(6, 3)
    with torch.no_grad():  # a source that knows its three classes: row c points at cluster c
        fc8.weight.copy_(torch.eye(6)[:3])
        fc8.bias.zero_()
    before = fc8.weight.clone()
    old_train, old_test = blobs(old_classes, seed=0), blobs(old_classes, seed=1)
    new_train, new_test = blobs(new_classes, seed=2, first=3), blobs(new_classes, seed=3, first=3)  # new clusters
    scores = transfer.more_classes(fc8, old_train, new_train, old_test, new_test, keep_old, rehearsal=True,
                                   steps=60, lr=0.05)
    assert torch.equal(fc8.weight, before), "the source's own layer is never trained"
    assert set(scores) == {"old", "new", "old among old"} and all(0 <= v <= 1 for v in scores.values())
    assert scores["old among old"] == 1.0 and scores["old"] > 0.9 and scores["new"] > 0.9  # separable blobs
    with pytest.raises(ValueError, match="fc8 scores 3 classes"):
        transfer.more_classes(fc8, old_train, new_train, new_test, new_test, keep_old, True, steps=1)


def test_more_classes_runs_pairs_every_condition_by_seed():
    torch.manual_seed(0)
    fc8 = torch.nn.Linear(6, 3)
    old, new = blobs("abc", per_class=8), blobs("de", per_class=8, seed=1, first=3)
    runs = transfer.more_classes_runs(fc8, old, new, old, new, per_class=4, seeds=[0, 1], steps=4)
    assert list(runs.columns) == ["condition", "seed", "old", "new", "old among old"]
    assert sorted(runs.groupby("condition").seed.apply(list).tolist()) == [[0, 1]] * len(transfer.MORE_CLASSES)
    kept = runs[runs.condition.str.startswith("old rows kept")]["old among old"]
    assert kept.nunique() == 1, "kept old rows on frozen features rank the old classes exactly as the source"
    assert isinstance(transfer.plot_more_classes(runs, 0.5), __import__("matplotlib").figure.Figure)


def test_regroup_maps_each_class_to_its_group_and_names_the_misfits():
    images = data.ImageSet(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 2, 1]), ["cat", "ship", "dog"])
    coarse = transfer.regroup(images, {"animal": ["cat", "dog"], "vehicle": ["ship"]})
    assert coarse.classes == ["animal", "vehicle"] and coarse.labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"without a group \['dog'\]"):
        transfer.regroup(images, {"animal": ["cat"], "vehicle": ["ship"]})
    with pytest.raises(ValueError, match=r"in several \['cat'\]"):
        transfer.regroup(images, {"animal": ["cat", "dog"], "vehicle": ["ship", "cat"]})
