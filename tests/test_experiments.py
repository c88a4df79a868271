import math

import torch

from coursekit import data, experiments


def _toy_set(n=40, seed=0):
    """Two classes told apart by brightness."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, 32, 32, generator=g) * 100 + labels.view(-1, 1, 1, 1) * 120).to(torch.uint8)
    return data.ImageSet(images, labels, ["dark", "bright"])


def test_race_records_held_out_accuracy_when_given_a_test_set_and_plots_it():
    race = experiments.activation_race(_toy_set(), epochs=2, width=4, batch_size=10, progress=False,
                                       test_set=_toy_set(20, seed=1))
    assert set(race) == {"relu", "tanh"}
    for history in race.values():
        assert len(history) == 2 and all(0 <= a <= 1 for a in history["test_top1"])
    labels = [t.get_text() for t in experiments.plot_race(race).axes[0].get_legend().get_texts()]
    assert labels == ["relu, training", "relu, held-out", "tanh, training", "tanh, held-out"]


def test_race_without_a_test_set_plots_training_error_only():
    race = experiments.activation_race(_toy_set(), epochs=1, width=4, batch_size=10, progress=False)
    assert race["relu"]["test_top1"] == [None]
    assert len(experiments.plot_race(race).axes[0].get_lines()) == 3  # two curves and the 25% line
    assert experiments.epochs_to_reach(race["relu"], 0.0) in (1, math.inf)
