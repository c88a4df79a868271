"""Top-9 patch mining: the strongest activations, their images and positions, and the crops."""
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn as nn

from coursekit import models, patches, widgets


def bright_spot_detector():
    """conv1 (1x1, one channel) = sum of the RGB values: it fires most on the brightest pixel."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))


def test_mining_finds_the_brightest_images_and_positions():
    images = torch.zeros(20, 3, 8, 8, dtype=torch.uint8)
    for i in range(20):
        images[i, :, i % 8, (3 * i) % 8] = 10 * i + 5   # one bright pixel, brighter for later images
    top = patches.mine(bright_spot_detector(), images, ["0", "2"], k=3, batch_size=6)
    assert top.images["0"][0].tolist() == [19, 18, 17]
    assert top.positions["0"][0, 0].tolist() == [19 % 8, (3 * 19) % 8]
    assert top.images["2"][0].tolist() == [19, 18, 17]
    assert top.positions["2"][0, 0].tolist() == [(19 % 8) // 2, ((3 * 19) % 8) // 2]
    crops = top.patches(images, "0", 0)
    assert crops.shape == (3, 3, 1, 1) and torch.allclose(crops[0], torch.tensor(195 / 255))
    assert top.patches(images, "2", 0).shape == (3, 3, 2, 2)


def test_mining_rejects_bad_requests():
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="at least k=9"):
        patches.mine(bright_spot_detector(), images, ["0"])
    top = patches.mine(bright_spot_detector(), images, ["0"], k=2)
    with pytest.raises(ValueError, match="has 1 channels"):
        top.patches(images, "0", 3)
    with pytest.raises(KeyError, match="mined layers"):
        top.patches(images, "2", 0)


def test_unit_panel_and_patch_grid_sweep_and_reject_out_of_range():
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.5).eval()
    images = (torch.rand(24, 3, 32, 32) * 255).to(torch.uint8)
    top = patches.mine(model, images, ["conv1", "conv2", "conv3", "conv4", "conv5"])
    for values in widgets.sweep(patches.unit_controls(model)):
        plt.close(patches.unit_panel(model, top, images, **values))
    plt.close(patches.patch_grid(top, images, "conv3", range(3)))
    with pytest.raises(ValueError, match="unit"):  # beyond the widest layer (conv3: 192 channels at width 0.5)
        patches.unit_panel(model, top, images, "conv1", 192)
    figure = patches.unit_panel(model, top, images, "conv1", 32)  # on the slider, not in conv1's 32
    assert "conv1 has 32 channels" in " ".join(t.get_text() for t in figure.texts)
    plt.close(figure)
    with pytest.raises(ValueError):
        patches.unit_panel(model, top, images, "fc6", 0)


def test_conv_layers_are_mined_on_images_larger_than_the_input():
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.125).eval()          # its fc6 takes 32 px images only
    images = torch.randint(0, 256, (10, 3, 64, 64), dtype=torch.uint8)
    top = patches.mine(model, images, ["conv1", "conv5"], k=9)
    assert top.fields["conv5"].out_size == 15, "64 px images give conv5 maps larger than at 32 px (7x7)"
    assert top.positions["conv5"].max() > 2
    assert top.patches(images, "conv5", 0).shape[-1] == int(top.fields["conv5"].size)


def test_projections_are_the_deconvnet_signal_cropped_like_the_patches():
    images = torch.zeros(20, 3, 8, 8, dtype=torch.uint8)
    for i in range(20):
        images[i, :, i % 8, (3 * i) % 8] = 10 * i + 5
    model = bright_spot_detector()
    top = patches.mine(model, images, ["2"], k=3)
    projected = top.projections(model, images, "2", 0)
    assert projected.shape == top.patches(images, "2", 0).shape == (3, 3, 2, 2)
    # the pooled unit's signal lands on its switch, the bright pixel, which the crop keeps
    row, col = top.positions["2"][0, 0].tolist()
    bright = (19 % 8 - 2 * row, (3 * 19) % 8 - 2 * col)
    assert projected[0, :, bright[0], bright[1]].eq(1.0).all()
    assert (projected[0].sum() - 3.0 - 0.5 * 3 * 3).abs() < 1e-5, "every other pixel is zero signal: grey"
    with pytest.raises(ValueError, match="has 1 channels"):
        top.projections(model, images, "2", 4)
    fig = patches.figure2(top, model, images, "2", [0])
    assert len(fig.axes) == 2 * 2 * 2   # k=3 -> 2x2 blocks of projections and of patches
    plt.close(fig)
