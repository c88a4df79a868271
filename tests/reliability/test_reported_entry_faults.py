"""Issue 20, the entry-point kinds: faults users report against tools like ours, fixed by kind.

Each test holds the right value for the reported instance and for other instances of the same kind
built here, and counts one "reported faults held" per instance it proves.

    kind 2  a model left in train mode: every entry point that reads a model answers as in eval
            mode, and leaves the model's mode (and batch-norm statistics) as it found them
    kind 8  called under torch.no_grad() / torch.inference_mode(): gradient entry points set their
            own grad mode; inference mode is refused up front, naming the fix
    kind 4  occlusion windows that do not tile the image: no pixel of pixel_map reads as a
            probability the model never gave
    kind 9  DeepDream octaves below the network's smallest input: refused before running, naming
            the largest octave count that fits; the panel's range follows the network
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from coursekit import attacks, attribution, backbones, data, models, optimize, visualize
from coursekit import objectives as O
from coursekit import param as P

from .tiny import image, tiny_model

X = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
Y = torch.arange(8)


def seeded(call):
    """The call with torch's global generator reset first (jitter and noise starts draw from it)."""
    def run(*args):
        torch.manual_seed(0)
        return call(*args)
    return run


def _gen():
    return torch.Generator().manual_seed(0)


def _as_tensor(value) -> torch.Tensor:
    if isinstance(value, optimize.Result):
        return value.image
    if isinstance(value, attribution.Occlusion):
        return value.prob
    return torch.as_tensor(value)


def batchnorm_model() -> nn.Module:
    """A small classifier with batch norm: in train mode it normalizes by the batch and updates its
    running statistics, so reading it in train mode changes both the answer and the model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    return model.eval()


# ---------------------------------------------------------------- kind 2: model left in train mode

# entry point -> a call that reads the model; the first four are the issue's, the rest built here
READERS = {
    "attacks.fgsm": lambda m: attacks.fgsm(m, X, Y),
    "attacks.accuracy": lambda m: attacks.accuracy(m, X, Y),
    "attribution.saliency": lambda m: attribution.saliency(m, X[:2]),
    "attribution.occlusion": lambda m: attribution.occlusion(m, X[:1], 3, size=8, stride=8),
    "attacks.bim": lambda m: attacks.bim(m, X, Y, steps=3),
    "attacks.pgd": lambda m: attacks.pgd(m, X, Y, steps=3, generator=_gen()),
    "attacks.minimal_targeted": lambda m: attacks.minimal_targeted(m, X[:2], 3, search_steps=2, steps=2),
    "attacks.fooling_images": lambda m: attacks.fooling_images(m, [1, 2], 32, max_steps=3, generator=_gen()),
    "attacks.accuracy_under_attack": lambda m: attacks.accuracy_under_attack(m, X, Y, 4 / 255, method="fgsm"),
    "attribution.gradient of a unit": lambda m: attribution.gradient(m, X[:2], layer="fc7", unit=3),
    "attribution.guided_backprop": lambda m: attribution.guided_backprop(m, X[:2]),
    "attribution.deconvnet": lambda m: attribution.deconvnet(m, X[:2]),
    "visualize.invert from fc7": seeded(lambda m: visualize.invert(m, X[:1], "fc7", steps=2)),
    "visualize.layer_energy": lambda m: visualize.layer_energy(m, X[:1], "fc7"),
    "visualize.feature_and_pixel_error": lambda m: visualize.feature_and_pixel_error(m, X[:1], "fc7", X[1:3])[0],
}


@pytest.mark.parametrize("name", list(READERS))
def test_entry_points_answer_as_in_eval_mode_and_restore_train_mode(name, faults):
    """Dropout in train mode made two identical FGSM calls agree on half the gradient signs."""
    call = READERS[name]
    model = tiny_model()
    expected = _as_tensor(call(model))
    model.train()
    first, second = _as_tensor(call(model)), _as_tensor(call(model))
    assert model.training, f"{name} did not give the model back in train mode"
    assert torch.equal(first, second), f"{name}: two identical calls on a train-mode model differ"
    assert torch.equal(first, expected), f"{name}: a train-mode model answers differently from eval mode"
    faults.add("reported faults held")


BATCHNORM_READERS = ["attacks.fgsm", "attacks.accuracy", "attribution.saliency", "attribution.occlusion"]


@pytest.mark.parametrize("name", BATCHNORM_READERS)
def test_reading_a_train_mode_batchnorm_model_neither_uses_nor_changes_batch_statistics(name, faults):
    call = READERS[name]
    model = batchnorm_model()
    expected = _as_tensor(call(model))
    stats = [model[1].running_mean.clone(), model[1].running_var.clone()]
    model.train()
    got = _as_tensor(call(model))
    assert model.training
    assert torch.equal(model[1].running_mean, stats[0]) and torch.equal(model[1].running_var, stats[1]), \
        f"{name} updated the batch-norm running statistics"
    assert torch.allclose(got, expected, atol=1e-6), f"{name} normalized by the batch, not the running statistics"
    faults.add("reported faults held")


def test_every_layer_gets_its_own_mode_back(faults):
    """Fine-tuning often trains a model with its batch-norm layers kept in eval mode: reading it must
    give back exactly that mix, not switch every layer to train (as model.train(True) would)."""
    model = batchnorm_model().train()
    model[1].eval()
    attacks.fgsm(model, X, Y)
    attribution.occlusion(model, X[:1], 3, size=8, stride=8)
    assert [m.training for m in model] == [True, False, True, True, True]
    faults.add("reported faults held")


def test_a_string_for_a_model_is_named_not_an_attribute_error():
    with pytest.raises(TypeError, match="nn.Module"):
        attacks.fgsm("cifar10", X, Y)


# ---------------------------------------------------------------- kind 8: called under no_grad / inference_mode

# gradient entry points; the first seven are the issue's, the rest built here
CLIMBERS = {
    "attacks.fgsm": lambda m, x: attacks.fgsm(m, x, Y[:len(x)]),
    "attacks.pgd": lambda m, x: attacks.pgd(m, x, Y[:len(x)], steps=3, generator=_gen()),
    "attacks.minimal_targeted": lambda m, x: attacks.minimal_targeted(m, x[:2], 3, search_steps=2, steps=2),
    "attacks.fooling_images": lambda m, x: attacks.fooling_images(m, [1, 2], 32, max_steps=3, generator=_gen()),
    "attacks.accuracy_under_attack": lambda m, x: attacks.accuracy_under_attack(m, x, Y[:len(x)], 4 / 255),
    "optimize.render": lambda m, x: optimize.render(m, O.class_score(1), P.PixelImage(x[:1]), steps=3,
                                                    progress=False),
    "visualize.class_model": seeded(lambda m, x: visualize.class_model(m, 1, data.CIFAR10_MEAN, 32, steps=3)),
    "attacks.bim": lambda m, x: attacks.bim(m, x, Y[:len(x)], steps=3),
    "attacks.attack_panel": lambda m, x: attacks.attack_panel(_backbone(m), x[:1], 3, eps=4, method="bim"),
    "visualize.deepdream": seeded(lambda m, x: visualize.deepdream(m, x[:1], "conv3", octaves=2, steps=2)),
    "visualize.invert": seeded(lambda m, x: visualize.invert(m, x[:1], "conv2", steps=2)),
}
# attribution already worked under no_grad; under inference_mode it failed like the rest
INFERENCE_ONLY = {
    "attribution.saliency": lambda m, x: attribution.saliency(m, x[:2]),
    "attribution.guided_backprop of a unit": lambda m, x: attribution.guided_backprop(m, x[:2], layer="conv3", unit=1),
}


def _backbone(model):
    return backbones.Backbone("cifar10", model, list(data.CIFAR10_CLASSES), 32, data.CIFAR10_MEAN,
                           data.CIFAR10_STD, list(model.aliases))


def _result(value):
    import matplotlib.pyplot as plt
    if hasattr(value, "savefig"):
        plt.close(value)
        return torch.zeros(0)
    return _as_tensor(value)


@pytest.mark.parametrize("name", list(CLIMBERS))
def test_gradient_entry_points_work_under_no_grad(name, faults):
    call, model = CLIMBERS[name], tiny_model()
    expected = _result(call(model, X))
    with torch.no_grad():
        got = _result(call(model, X))
    assert torch.equal(got, expected), f"{name} gives another answer under torch.no_grad()"
    faults.add("reported faults held")


@pytest.mark.parametrize("name", [*CLIMBERS, *INFERENCE_ONLY])
def test_gradient_entry_points_refuse_inference_mode_up_front_naming_the_fix(name, faults):
    call, model = {**CLIMBERS, **INFERENCE_ONLY}[name], tiny_model()
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"inference_mode.*outside") as err:
        call(model, X)
    assert "does not require grad" not in str(err.value)
    faults.add("reported faults held")


def test_images_made_in_inference_mode_can_still_be_attacked_and_explained(faults):
    """Tensors made in inference mode can never require grad; the entry points copy them first."""
    model = tiny_model()
    with torch.inference_mode():
        frozen_x = X.clone()
    assert torch.equal(attacks.fgsm(model, frozen_x, Y), attacks.fgsm(model, X, Y))
    faults.add("reported faults held")
    assert torch.equal(attribution.saliency(model, frozen_x[:2]), attribution.saliency(model, X[:2]))
    faults.add("reported faults held")


# ---------------------------------------------------------------- kind 4: occlusion border

class IgnoresItsInput(nn.Module):
    """Logits that do not depend on the image: every occluder position gives the same probability."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.logits = nn.Parameter(torch.randn(classes, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


# (height, width, size, stride): the two on 32 px, then others that leave a border uncovered
UNTILED = [(32, 32, 10, 10), (32, 32, 6, 6), (32, 24, 7, 5), (12, 12, 3, 2), (224, 224, 33, 16)]


@pytest.mark.parametrize("height, width, size, stride", UNTILED)
def test_a_model_that_ignores_the_image_gives_a_flat_occlusion_map(height, width, size, stride, faults):
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    result = attribution.occlusion(IgnoresItsInput(), x, 3, size, stride)
    pixels = result.pixel_map(height, width)
    assert pixels.shape == (height, width)
    assert torch.allclose(pixels, torch.full_like(pixels, result.base_prob)), \
        f"pixels no window covered read as {pixels.min():.3f}, not p = {result.base_prob:.3f}"
    faults.add("reported faults held")


def test_the_last_window_is_aligned_to_the_edge():
    assert attribution.window_starts(32, 10, 10) == [0, 10, 20, 22]
    assert attribution.window_starts(32, 8, 8) == [0, 8, 16, 24]  # tiling: unchanged
    assert attribution.window_starts(32, 32, 4) == [0]


def test_windows_with_gaps_between_them_have_no_pixel_map(faults):
    """stride > size leaves pixels no window covers inside the image, not only at its border."""
    result = attribution.occlusion(IgnoresItsInput(), image(), 3, size=3, stride=8)
    with pytest.raises(ValueError, match=r"stride 8.*size 3"):
        result.pixel_map(32, 32)
    faults.add("reported faults held")


def test_a_pixel_map_for_another_image_size_is_refused():
    result = attribution.occlusion(IgnoresItsInput(), image(), 3, size=8, stride=8)
    with pytest.raises(ValueError, match="64x64 image.*size of the occluded image"):
        result.pixel_map(64, 64)


# ---------------------------------------------------------------- kind 9: DeepDream octaves

@pytest.mark.parametrize("layer", ["conv3", "conv5"])
def test_too_many_octaves_are_refused_before_running_naming_the_most_that_fit(layer, faults):
    """The issue's instance: 32 px, 6 octaves (32 / 1.4^5 = 6 px) on conv3/conv5 of the cifar10 net."""
    with pytest.raises(ValueError, match=rf"octaves=6.*{layer}.*7x7.*octaves <= 5"):
        visualize.deepdream(tiny_model(), image(), layer, octaves=6, steps=1)
    faults.add("reported faults held")


# (model, image side, layer): other networks and image sizes, each with its own smallest input
def _alexnet():
    torch.manual_seed(0)
    return models.alexnet(pretrained=False).eval()


OTHER_PYRAMIDS = {
    "MiniAlexNet, 2x2 pooling, conv5, 32 px": (lambda: models.mini_alexnet(width=0.125, overlap=False).eval(), 32, "conv5"),
    "MiniAlexNet, conv4, 48 px": (tiny_model, 48, "conv4"),
    "torchvision AlexNet, conv5, 224 px": (_alexnet, 224, "conv5"),
}


@pytest.mark.parametrize("case", list(OTHER_PYRAMIDS))
def test_the_most_octaves_that_fit_run_and_one_more_is_refused(case, faults):
    make, side, layer = OTHER_PYRAMIDS[case]
    model, x = make(), image(size=side)
    most = optimize.max_octaves(model, O.layer_norm(layer), (side, side), 1.4)
    smallest = optimize.octave_sizes((side, side), most + 1, 1.4)[0][0]
    with torch.no_grad(), pytest.raises(RuntimeError):  # the network really cannot take that octave
        optimize.run_model(model, torch.zeros(1, 3, smallest, smallest), O.layer_norm(layer))
    visualize.deepdream(model, x, layer, octaves=most, steps=1)
    with pytest.raises(ValueError, match=rf"octaves <= {most}\b"):
        visualize.deepdream(model, x, layer, octaves=most + 1, steps=1)
    faults.add("reported faults held")


def test_the_deepdream_panel_range_follows_the_network(faults):
    model = tiny_model()
    octaves = {c.name: c for c in visualize.deepdream_controls(model, 32)}["octaves"]
    assert octaves.max == 5, "conv3-conv5 need 7 px: 32 / 1.4^4 = 8 px fits, 32 / 1.4^5 = 6 px does not"
    assert {c.name: c for c in visualize.DEEPDREAM_PANEL}["octaves"].max == octaves.max, \
        "DEEPDREAM_PANEL is the cifar10 backbone's panel (32 px): its range must be that network's"
    for layer in ["conv3", "conv5"]:
        visualize.deepdream_panel(model, image(), layer, octaves=octaves.max, steps=1)
    with pytest.raises(ValueError, match="octaves"):
        visualize.deepdream_panel(model, image(), "conv5", octaves=6, steps=1)
    bigger = {c.name: c for c in visualize.deepdream_controls(model, 96)}["octaves"]
    assert bigger.max > octaves.max, "a larger image leaves room for more octaves"
    faults.add("reported faults held")
