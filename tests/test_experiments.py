import math

import pandas as pd
import pytest
import torch

from coursekit import data, experiments, models, train


def _toy_set(n=40, seed=0):
    """Two classes told apart by brightness."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, 32, 32, generator=g) * 100 + labels.view(-1, 1, 1, 1) * 120).to(torch.uint8)
    return data.ImageSet(images, labels, ["dark", "bright"])


def test_paper_conditions_saturate_tanh_at_conv1():
    """Centred 0-255 pixels and N(0, 0.01) weights: conv1's pre-activations have a std of about 5,
    so most tanh units start saturated; standardized pixels with the same weights do not."""
    torch.manual_seed(0)
    x = _toy_set(64).floats()
    shares = {}
    for pixels in ("centred-255", "standardized"):
        net = models.four_layer_cnn("tanh", num_classes=2, width=8, pixels=pixels)
        models.paper_init(net)
        a = net.act1(net.conv1(net.normalize(x)))
        shares[pixels] = (a.abs() > experiments.SATURATED).float().mean().item()
    assert shares["centred-255"] > 0.5 > 0.05 > shares["standardized"]
    with pytest.raises(ValueError, match="pixels"):
        models.four_layer_cnn(pixels="raw")


def test_race_records_errors_and_the_first_epochs_mechanism():
    race = experiments.activation_race(_toy_set(), epochs=2, lrs={"relu": 0.001, "tanh": 0.001}, seeds=(0, 1),
                                       width=4, batch_size=10, test_set=_toy_set(20, seed=1))
    assert len(race) == 2 * 2 * 2 and race.train_error.between(0, 1).all() and race.test_error.between(0, 1).all()
    assert race[race.activation == "relu"].saturated.isna().all()
    assert race[race.activation == "tanh"].saturated.between(0, 1).all()
    mechanism = experiments.race_mechanism(race)
    assert list(mechanism.index) == [0, 1] and (mechanism["conv1 grad ratio"] > 0).all()
    assert list(mechanism.columns) == ["tanh conv1 saturated", "conv1 grad ratio"]
    labels = [t.get_text() for t in experiments.plot_race(race).axes[0].get_legend().get_texts()]
    assert labels == ["relu (lr 0.001), training", "relu, held-out", "tanh (lr 0.001), training", "tanh, held-out"]


def test_pilot_marks_each_activations_fastest_lr():
    pilot = experiments.pilot_lrs(_toy_set(), lrs=(0.0001, 0.001), width=4, batch_size=10)
    assert len(pilot) == 4 and pilot.groupby("activation").best.sum().tolist() == [1, 1]


def _race(relu, tanh):
    """A race table from per-seed training-error curves: {seed: [errors per epoch]}."""
    rows = [{"activation": name, "seed": seed, "epoch": e, "lr": 0.01, "train_error": err, "test_error": None}
            for name, curves in (("relu", relu), ("tanh", tanh)) for seed, curve in curves.items()
            for e, err in enumerate(curve, start=1)]
    return pd.DataFrame(rows)


def test_verdict_reads_reach_ratio_and_seed_margin():
    ahead = experiments.race_verdict(_race({0: [0.6, 0.3, 0.2], 1: [0.62, 0.32, 0.24]},
                                           {0: [0.8, 0.6, 0.5], 1: [0.82, 0.62, 0.5]}))
    assert ahead["reach"] == {"relu": 3, "tanh": math.inf} and ahead["first"] and ahead["ahead"]
    assert ahead["ratio"] == 1.0 and "more than 1.0x" in ahead["text"] and ahead["leading_epochs"] == [1, 2, 3]
    assert ahead["speedup"] == 3 / 2  # tanh ends at 0.5; ReLU was there by epoch 2 of 3
    # a lead inside the seed spread is not a lead; "ahead" is read at the last epoch; one seed measures no spread
    noisy = experiments.race_verdict(_race({0: [0.9, 0.5], 1: [0.6, 0.5]}, {0: [0.8, 0.7], 1: [0.8, 0.7]}))
    assert noisy["leading_epochs"] == [2] and noisy["ahead"] and not noisy["first"] and noisy["ratio"] is None
    late = experiments.race_verdict(_race({0: [0.6, 0.5], 1: [0.6, 0.9]}, {0: [0.8, 0.7], 1: [0.8, 0.7]}))
    assert late["leading_epochs"] == [1] and not late["ahead"]
    assert not experiments.race_verdict(_race({0: [0.5, 0.4]}, {0: [0.8, 0.7]}))["ahead"]
    both = experiments.race_verdict(_race({0: [0.3, 0.2]}, {0: [0.5, 0.25]}))
    assert both["reach"] == {"relu": 2, "tanh": 2} and not both["first"] and both["ratio"] == 1.0
    # ReLU never gets down to tanh's final error: no speedup, and no "0.0x as fast"
    behind = experiments.race_verdict(_race({0: [0.8, 0.7]}, {0: [0.7, 0.5]}))
    assert behind["speedup"] is None and "never got down to tanh's final 50.0%" in behind["text"]
    assert "as fast" not in behind["text"]


def test_colourfulness_of_grey_opponent_and_random_filters():
    torch.manual_seed(0)
    grey = torch.randn(4, 1, 5, 5).repeat(1, 3, 1, 1)                  # the same weights in R, G and B
    opponent = torch.randn(4, 1, 5, 5) * torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)  # R against G
    values = experiments.colourfulness(torch.cat([grey, opponent]))
    assert values.shape == (8,)
    assert torch.allclose(values[:4], torch.zeros(4), atol=1e-6) and torch.allclose(values[4:], torch.ones(4))
    random = experiments.colourfulness(torch.randn(4000, 3, 5, 5))      # Beta(25, 12.5): mean 2/3, sd 0.076
    assert abs(random.mean() - 2 / 3) < 0.01 and abs(random.std() - 0.076) < 0.005
    with pytest.raises(ValueError, match="3, k, k"):
        experiments.colourfulness(torch.randn(4, 1, 5, 5))


def test_beyond_untrained_counts_both_tails_and_leaves_one_copy_out_for_its_null():
    untrained = torch.tensor([[0.5, 0.6, 0.7], [0.4, 0.6, 0.8], [0.55, 0.65, 0.75], [0.5, 0.62, 0.7]])
    tails = experiments.beyond_untrained(torch.tensor([0.1, 0.2, 0.6, 0.9]), untrained)
    assert (tails["low"], tails["high"]) == pytest.approx((0.4, 0.8))
    assert tails["below"] == 0.5 and tails["above"] == 0.25
    # copy 1 holds both extremes: against the other three it has one filter below and one above
    assert torch.allclose(tails["null_below"], torch.tensor([0, 1 / 3, 0, 0], dtype=torch.float64))
    assert torch.allclose(tails["null_above"], torch.tensor([0, 1 / 3, 0, 0], dtype=torch.float64))
    # random filters against random filters: the tails stay near empty
    random = experiments.colourfulness(torch.randn(10, 32, 3, 5, 5).flatten(0, 1)).view(10, 32)
    fresh = experiments.beyond_untrained(experiments.colourfulness(torch.randn(32, 3, 5, 5)), random)
    assert fresh["below"] <= 2 / 32 and fresh["above"] <= 2 / 32
    with pytest.raises(ValueError, match="n >= 3"):
        experiments.beyond_untrained(torch.rand(4), torch.rand(2, 4))


def test_tower_split_finds_sorted_groups_and_not_random_ones():
    torch.manual_seed(0)
    sorted_by_group = torch.cat([torch.rand(16) * 0.2, 0.6 + torch.rand(16) * 0.2])
    split = experiments.tower_split(sorted_by_group, draws=2000)
    assert split["p"] == 0.0 and abs(split["gap"] - (split["means"][1] - split["means"][0])) < 1e-9
    mixed = experiments.tower_split(sorted_by_group[torch.randperm(32)], draws=2000)
    assert mixed["gap"] < split["gap"] and mixed["p"] > 0.001
    # without sorting, p is spread evenly: about 5% of random layouts reach p < 0.05
    ps = [experiments.tower_split(torch.rand(32), draws=500, seed=s)["p"] for s in range(200)]
    assert 0.01 < sum(p < 0.05 for p in ps) / len(ps) < 0.10
    with pytest.raises(ValueError, match="groups"):
        experiments.tower_split(torch.rand(31))


def test_plot_towers_draws_one_row_per_group():
    import matplotlib.pyplot as plt
    fig = experiments.plot_towers(torch.randn(8, 3, 5, 5), title="t")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 8 and fig.axes[0].get_title() != ""
    plt.close(fig)


# ---------------------------------------------------------------- the overfitting ablations

def _tiny_maps(per_class=12, classes=3, channels=8, seed=0):
    """relu5-shaped maps (N, channels, 7, 7) where class k lights channel k: learnable, and small."""
    g = torch.Generator().manual_seed(seed)

    def part(n):
        labels = torch.arange(n * classes) % classes
        maps = torch.rand(len(labels), channels, 7, 7, generator=g)
        maps[torch.arange(len(labels)), labels] += 1.0
        return data.ImageSet(maps, labels, [f"c{k}" for k in range(classes)])
    return {"train": part(per_class), "test": part(per_class)}


TINY_RECIPE = {"per_class": 6, "pool_per_class": 12, "test_per_class": 12, "epochs": 8, "lr": 0.05,
               "batch_size": 8, "weight_decay": 0.0, "seeds": [0, 1], "panel_seeds": [0, 1], "version": 1}


@pytest.mark.parametrize("overlap, window", [(True, 3), (False, 2)])
def test_fc_layers_pool_relu5_maps_to_the_same_size_either_way(overlap, window):
    head = experiments.fc_layers(8, 3, 0.5, overlap)
    assert [name for name, _ in head.named_children()][0] == "pool5" and head.pool5.kernel_size == window
    assert head.drop6.p == head.drop7.p == 0.5 and head.fc6.in_features == 8 * 3 * 3
    assert head(torch.rand(2, 8, 7, 7)).shape == (2, 3)
    assert experiments.fc_layers(8, 3, 0.0, overlap).drop6.p == 0.0


def test_overfitting_run_scores_training_and_held_out_images():
    run = experiments.overfitting_run(_tiny_maps(), TINY_RECIPE, 0.0, True, seed=0)
    assert run["train_top1"] > 0.9 and run["test_top1"] > 1 / 3  # learnable maps: learned
    assert run["gap"] == pytest.approx(run["train_top1"] - run["test_top1"])
    with pytest.raises(ValueError, match="7 x 7"):
        experiments.overfitting_run({"train": data.ImageSet(torch.rand(4, 8, 5, 5), torch.arange(4) % 2, ["a", "b"]),
                                     "test": None}, TINY_RECIPE, 0.0, True, seed=0)


def test_ablate_runs_each_setting_on_each_seed_and_caches_every_run(isolated_cache, monkeypatch):
    maps = _tiny_maps()
    first = experiments.ablate(maps, TINY_RECIPE)
    assert len(first) == len(experiments.ABLATIONS) * 2 and set(first.seed) == {0, 1}
    assert list(first.columns[:4]) == ["setting", "dropout", "overlap", "seed"]
    # a recomputed run would score its head again; fit itself cannot be patched: its source is in the key
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: pytest.fail("a cached run was trained again"))
    again = experiments.ablate(maps, TINY_RECIPE)
    pd.testing.assert_frame_equal(first, again)
    subset = experiments.ablate(maps, TINY_RECIPE, {"mine": (0.5, True)}, seeds=[1])  # the panel's kind of call
    assert subset.drop(columns="setting").iloc[0].equals(
        first[(first.setting == "full recipe") & (first.seed == 1)].drop(columns="setting").iloc[0])


def test_paired_effect_is_the_mean_difference_by_seed_with_its_margin():
    rows = [{"setting": name, "seed": seed, "train_top1": t, "test_top1": h, "gap": t - h}
            for seed, shift in enumerate((0.0, 0.02, 0.04))
            for name, t, h in (("with", 0.7 + shift, 0.5 + shift), ("without", 1.0, 0.5 + 2 * shift))]
    effect = experiments.paired_effect(pd.DataFrame(rows), "with", "without")
    assert effect.loc["train_top1", "mean"] == pytest.approx(-0.28)
    assert effect.loc["test_top1", "mean"] == pytest.approx(-0.02)
    assert effect.loc["test_top1", "margin"] == pytest.approx(2 * 0.02 / math.sqrt(3))
    assert effect.loc["gap", "beyond noise"] and not effect.loc["test_top1", "beyond noise"]
    with pytest.raises(ValueError, match="no rows"):
        experiments.paired_effect(pd.DataFrame(rows), "with", "nothing")


def test_overfitting_panel_trains_what_the_student_picks(isolated_cache):
    maps = _tiny_maps()
    alone = experiments.overfitting_panel(maps, TINY_RECIPE)  # the full recipe itself: one pair of bars
    picked = experiments.overfitting_panel(maps, TINY_RECIPE, dropout=0.0, pooling="2x2 stride 2", per_class=10)
    assert len(alone.axes[0].patches) == 2 and len(picked.axes[0].patches) == 4
    assert [t.get_text() for t in picked.axes[0].get_xticklabels()][1] == "dropout 0, 2x2 stride 2"
    with pytest.raises(ValueError, match="pooling"):
        experiments.overfitting_panel(maps, TINY_RECIPE, pooling="4x4")


def test_overfitting_run_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        experiments.overfitting_run(_tiny_maps(), TINY_RECIPE, 0.5, True, seed=0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
