"""Receptive fields computed from the model, checked against AlexNet's known values and by gradients."""
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn as nn

from coursekit import models, receptive, widgets

ALEXNET_KNOWN = {"conv1": (11, 4), "pool1": (19, 8), "conv2": (51, 8), "pool2": (67, 16), "conv3": (99, 16),
                 "conv4": (131, 16), "conv5": (163, 16), "pool5": (195, 32)}


def test_alexnet_receptive_fields_match_the_known_values():
    fields = receptive.receptive_fields(models.alexnet(pretrained=False), 224)
    assert {name: (fields[name].size, fields[name].stride) for name in ALEXNET_KNOWN} == ALEXNET_KNOWN
    assert fields["conv1"].out_size == 55 and fields["pool5"].out_size == 6
    assert fields["fc8"].size == 224   # fully connected: the whole image


def test_receptive_field_matches_the_gradient_support():
    """The pixels a unit's gradient touches are exactly its receptive field (dilation, padding, pooling)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
                          nn.Conv2d(4, 4, 3, dilation=2, padding=1), nn.AvgPool2d(2), nn.Conv2d(4, 2, 5, stride=2))
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    fields = receptive.receptive_fields(model, 64)
    out = model(x)
    row, col = 1, 2
    out[0, 0, row, col].backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0) > 0, as_tuple=True)
    top, left, bottom, right = fields["5"].box(row, col)
    # average pooling and dense convs touch every pixel of the field; max pooling may touch fewer
    assert rows.min() >= top and rows.max() < bottom and cols.min() >= left and cols.max() < right
    assert bottom - top == fields["5"].size


def test_plain_modules_without_aliases_use_dotted_names():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(2 * 6 * 6, 2))
    fields = receptive.receptive_fields(model, 8)
    assert list(fields) == ["0", "1", "2", "3"]
    assert fields["0"].size == 3 and fields["0"].start == 1


def test_unknown_resizing_layer_is_named():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match="'1'.*Upsample"):
        receptive.receptive_fields(model, 8)


def test_crop_pads_with_grey_outside_the_image():
    image = torch.ones(3, 4, 4)
    patch = receptive.crop(image, (-1, -1, 3, 3), fill=0.5)
    assert patch.shape == (3, 4, 4)
    assert (patch[:, 0, :] == 0.5).all() and (patch[:, 1:, 1:] == 1).all()


def test_hierarchy_panel_sweeps_and_rejects_out_of_range():
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.5).eval()
    x = torch.rand(1, 3, 32, 32)
    for values in widgets.sweep(receptive.hierarchy_controls(model)):
        plt.close(receptive.hierarchy_panel(model, x, **values))
    with pytest.raises(ValueError, match="channel"):  # beyond the widest layer (conv3: 192 channels at width 0.5)
        receptive.hierarchy_panel(model, x, "conv1", 192)
    figure = receptive.hierarchy_panel(model, x, "conv1", 32)  # on the slider, not in conv1's 32
    assert "conv1 has 32 channels" in " ".join(t.get_text() for t in figure.texts)
    plt.close(figure)
    with pytest.raises(ValueError):
        receptive.hierarchy_panel(model, x, "fc9", 0)
