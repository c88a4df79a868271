"""Hand-made features and the shared linear classifier."""
import numpy as np
import torch

from coursekit import models, pipeline


def test_feature_shapes():
    images = (torch.rand(5, 3, 32, 32) * 255).to(torch.uint8)
    assert pipeline.pixel_features(images).shape == (5, 3072)
    assert pipeline.hog_features(images).shape == (5, 324)   # 4x4 cells of 8px, 3x3 blocks of 2x2, 9 bins
    hist = pipeline.colour_histogram(images, bins=4)
    assert hist.shape == (5, 64) and np.allclose(hist.sum(1), 1)
    model = models.mini_alexnet(width=0.25).eval()
    assert pipeline.network_features(model, images, "relu7").shape == (5, 256)


def test_colour_histogram_counts_a_pure_colour():
    red = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 255
    hist = pipeline.colour_histogram(red, bins=2)
    assert hist[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]   # cell (r=1, g=0, b=0) = 4


def test_linear_classifier_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    separable = rng.normal(size=(200, 5)) + labels[:, None] * 3
    assert pipeline.linear_accuracy(separable[:100], labels[:100], separable[100:], labels[100:]) > 0.95
    noise = rng.normal(size=(200, 5))
    assert pipeline.linear_accuracy(noise[:100], labels[:100], noise[100:], labels[100:]) < 0.75


def test_linear_classifier_takes_alphas_of_any_sequence_type():
    # scikit-learn writes into a one-element alphas; a caller's tuple of one used to raise TypeError
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), np.arange(40) % 2
    for alphas in [(10.0,), [10.0], 10.0, np.array([10.0])]:
        assert pipeline.linear_classifier(x, y, alphas=alphas)[-1].alpha_ == 10.0
    alphas = (1.0, 10.0)
    pipeline.linear_classifier(x, y, alphas=alphas)
    assert alphas == (1.0, 10.0)
