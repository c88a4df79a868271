"""firstlayer: Zeiler & Fergus section 4.1's measures on planted filters (no training here)."""
import math

import pytest
import torch

from coursekit import backbones, firstlayer, models


def wave(freq: float, k: int = 11, out: int = 4) -> torch.Tensor:
    """(out, 3, k, k) filters: a horizontal cosine of `freq` cycles per pixel, the same in each colour."""
    x = torch.arange(k, dtype=torch.float64)
    return torch.cos(2 * math.pi * freq * x).expand(out, 3, k, k).clone()


@pytest.mark.parametrize("freq, band", [(0.06, (0, 1 / 8)), (0.18, (1 / 8, 1 / 4)), (0.4, (1 / 4, 1))])
def test_a_cosine_puts_most_of_its_energy_in_its_own_band(freq, band):
    assert firstlayer.band_share(wave(freq), *band).min() > 0.6


def test_flat_colour_and_zero_filters_have_no_pattern():
    """A filter's mean over space is flat colour, which no stride can alias: removed before the
    spectrum. Nothing learned (all zeros, the untrained null) gives a share of 0, not NaN."""
    flat = torch.ones(2, 3, 7, 7) * torch.tensor([1.0, -2.0, 0.5])[:, None, None]
    assert firstlayer.band_share(flat, 0, 1).eq(0).all()
    assert firstlayer.band_share(torch.zeros(2, 3, 7, 7), 0, 1).eq(0).all()
    shares = [firstlayer.band_share(wave(0.18), a, b) for a, b in [(0, 1 / 8), (1 / 8, 1 / 4), (1 / 4, math.inf)]]
    assert torch.allclose(sum(shares), torch.ones(4))


def test_nyquist_limits():
    assert firstlayer.nyquist(4) == 1 / 8 and firstlayer.nyquist(2) == 1 / 4


def test_dead_units_are_the_ones_never_positive():
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.125).eval()
    conv1 = model.net.conv1
    with torch.no_grad():
        conv1.bias[2] = -1e6       # never on
        conv1.bias[5] = 1e6        # always on
    dead = firstlayer.dead_units(model, torch.rand(4, 3, 32, 32))
    assert dead[2] and not dead[5] and dead.sum() == 1


def test_untrained_network_has_learned_nothing():
    r = firstlayer.recipe("7x7 stride 2 (Zeiler & Fergus)", seed=3)
    start = backbones.initial_weights(r, 10)
    assert firstlayer.learned_part(start, r).abs().max() == 0
    numbers = firstlayer.measure(start, r, torch.rand(2, 3, 32, 32))
    assert numbers["mid"] == 0 and numbers["changed"] == 0


def test_recipe_names_the_valid_first_layers():
    with pytest.raises(KeyError, match="11x11 stride 4"):
        firstlayer.recipe("5x5 stride 1", seed=0)
    r = firstlayer.recipe("11x11 stride 4 (AlexNet)", seed=0)
    assert r["arch"]["conv1"] == [11, 4] and r["arch"]["upsample"] == firstlayer.UPSAMPLE


def test_the_control_changes_only_the_filter_size():
    """Zeiler & Fergus changed size and stride at once; the control has their 7x7 filters at AlexNet's
    stride 4, and its maps keep AlexNet's sizes (conv2 at stride 1)."""
    alexnet, zf, control = (firstlayer.FIRST_LAYERS[name] for name in firstlayer.FIRST_LAYERS)
    assert control["conv1"] == [zf["conv1"][0], alexnet["conv1"][1]]
    assert control["conv2_stride"] == alexnet["conv2_stride"]
    r = firstlayer.recipe("7x7 stride 4 (control)", seed=0)
    model = backbones.initial_weights(r, 10)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
