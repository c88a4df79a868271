"""Public functions given out-of-range or wrong-type arguments raise an error that names the
argument (and, where it helps, the valid values); "Try it" panels are fuzzed across and just
beyond their controls' ranges."""
from __future__ import annotations

import importlib

import pytest
import torch

from coursekit import backbones, data, hooks, models, train

from .tiny import image, tiny_model, toy_set


def optional(name: str):
    try:
        return importlib.import_module(f"coursekit.{name}")
    except ModuleNotFoundError:
        pytest.skip(f"coursekit.{name} does not exist yet")


MODEL = tiny_model()
X = image()

# (call, exception type, a pattern the message must match: the culprit and, often, the fix)
CORE_CASES = {
    "unknown layer": (lambda: hooks.get_layer(MODEL, "conv9"), KeyError, r"'conv9'.*Valid names: conv1"),
    "layer name of wrong type": (lambda: hooks.get_layer(MODEL, 3), TypeError, "layer name"),
    "unknown layer in activations": (lambda: hooks.activations(MODEL, X, ["conv1", "cnv2"]), KeyError, "cnv2"),
    "unknown layer in capture": (lambda: hooks.capture(MODEL, "fc9").__enter__(), KeyError, "fc9"),
    "unknown split": (lambda: data.cifar10("validation"), ValueError, "split"),
    "unknown photo": (lambda: data.photo("unicorn"), ValueError, "unicorn"),
    "negative per_class": (lambda: toy_set().subset(per_class=-1), ValueError, "per_class"),
    "zero total": (lambda: toy_set().subset(total=0), ValueError, "total"),
    "augment without batch dim": (lambda: data.augment(torch.rand(3, 32, 32)), ValueError, r"\(N, C, H, W\)"),
    "augment pad too large": (lambda: data.augment(torch.rand(1, 3, 4, 4), pad=8), ValueError, "pad"),
    "fit lr of wrong type": (lambda: train.fit(tiny_model(2), toy_set(), lr="0.1", progress=False), TypeError, "lr"),
    "fit label past the end": (lambda: train.fit(tiny_model(2), data.ImageSet(toy_set().images, toy_set().labels + 5,
                                                                                ["a", "b"]), progress=False),
                               ValueError, "label"),
    "fit too few outputs": (lambda: train.fit(tiny_model(2), toy_set(num_classes=4), epochs=1, progress=False),
                            ValueError, "classes"),
    "unknown activation": (lambda: models.mini_alexnet(activation="gelu"), ValueError, "activation"),
    "negative width": (lambda: models.mini_alexnet(width=-1), ValueError, "width"),
    "zero classes": (lambda: models.mini_alexnet(num_classes=0), ValueError, "num_classes"),
    "unknown backbone": (lambda: backbones.backbone("vgg"), ValueError, "'vgg'"),
}


@pytest.mark.parametrize("case", list(CORE_CASES))
def test_core_arguments_are_named(case, faults):
    call, error, pattern = CORE_CASES[case]
    with pytest.raises(error, match=pattern):
        call()
    faults.add("inputs tried")


def module_cases():
    """(module, call, exception, pattern) for the other modules' public functions."""
    model = MODEL
    y = torch.tensor([1])
    return {
        "attacks: negative eps": ("attacks", lambda m: m.fgsm(model, X, y, eps=-0.1), ValueError, "eps"),
        "attacks: eps in grey levels": ("attacks", lambda m: m.pgd(model, X, y, eps=8), ValueError, r"eps.*8/255"),
        "attacks: eps of wrong type": ("attacks", lambda m: m.bim(model, X, y, eps="8"), TypeError, "eps"),
        "attacks: image without batch": ("attacks", lambda m: m.fgsm(model, X[0], y), ValueError, r"x\[None\]"),
        "attacks: uint8 image": ("attacks", lambda m: m.fgsm(model, (X * 255).byte(), y), ValueError, "float"),
        "attacks: label past the end": ("attacks", lambda m: m.fgsm(model, X, 10), ValueError, r"label.*0\.\.9"),
        "attacks: target by name": ("attacks", lambda m: m.fgsm(model, X, target="cat"), TypeError, "class_index"),
        "attacks: unknown method": ("attacks", lambda m: m.attack("cw", model, X, y), ValueError, "cw"),
        "attribution: unknown method": ("attribution", lambda m: m.attribute(model, X, "lime"), ValueError, "lime"),
        "attribution: unknown layer": ("attribution", lambda m: m.gradient(model, X, layer="conv9", unit=0),
                                       KeyError, "conv9"),
        "attribution: unit past the end": ("attribution", lambda m: m.gradient(model, X, layer="conv1", unit=999),
                                           ValueError, "unit 999"),
        "attribution: class past the end": ("attribution", lambda m: m.saliency(model, X, target=10),
                                            ValueError, "target"),
        "attribution: occluder too big": ("attribution", lambda m: m.occlusion(model, X, 0, size=64, stride=4),
                                          ValueError, "size"),
        "attribution: occlusion of a batch": ("attribution", lambda m: m.occlusion(model, X.repeat(2, 1, 1, 1), 0,
                                                                                    size=8, stride=8),
                                              ValueError, "one image"),
        "optimize: zero steps": ("optimize", lambda m: m.render(model, optional("objectives").class_score(1),
                                                                 optional("param").PixelImage(X), steps=0),
                                 ValueError, "steps"),
        "optimize: objective of wrong type": ("optimize", lambda m: m.render(model, "class 1",
                                                                             optional("param").PixelImage(X)),
                                              TypeError, "objective"),
        "optimize: class past the end": ("optimize", lambda m: m.render(model, optional("objectives").class_score(10),
                                                                         optional("param").PixelImage(X), steps=1,
                                                                         progress=False),
                                         ValueError, "10"),
        "optimize: channel past the end": ("optimize", lambda m: m.render(model, optional("objectives").channel(
            "conv1", 999), optional("param").PixelImage(X), steps=1, progress=False), ValueError, "999"),
        "optimize: unknown layer": ("optimize", lambda m: m.render(model, optional("objectives").channel("conv9", 0),
                                                                    optional("param").PixelImage(X), steps=1,
                                                                    progress=False), KeyError, "conv9"),
        "param: wrong image shape": ("param", lambda m: m.PixelImage(X[0]), ValueError, r"\(N, 3, H, W\)"),
        "features: unknown layer": ("features", lambda m: m.extract(model, toy_set(4), "fc9"), KeyError, "fc9"),
        "features: perplexity too big": ("features", lambda m: m.tsne(torch.rand(5, 3), perplexity=30),
                                         ValueError, "perplexity"),
        "transfer: n past the end": ("transfer", lambda m: m.copy_layers(tiny_model(), tiny_model(), 9),
                                     ValueError, "n"),
        "transfer: negative n": ("transfer", lambda m: m.copy_layers(tiny_model(), tiny_model(), -1),
                                 ValueError, "n"),
    }


@pytest.mark.parametrize("case", list(module_cases()))
def test_module_arguments_are_named(case, faults):
    name, call, error, pattern = module_cases()[case]
    module = optional(name)
    with pytest.raises(error, match=pattern):
        call(module)
    faults.add("inputs tried")


def test_every_public_function_rejects_a_string_for_a_model(faults):
    """A student passing the backbone's name instead of its model gets a TypeError or ValueError, not an
    AttributeError deep inside torch."""
    calls = {"hooks.layer_names": lambda: hooks.layer_names("cifar10"),
             "train.evaluate": lambda: train.evaluate("cifar10", toy_set(4)),
             "train.fit": lambda: train.fit("cifar10", toy_set(4), progress=False)}
    failures = []
    for name, call in calls.items():
        try:
            call()
            failures.append(f"{name}: accepted a string")
        except (TypeError, ValueError):
            pass
        except Exception as err:  # noqa: BLE001 - the point is which kind
            failures.append(f"{name}: {type(err).__name__}: {err}")
        faults.add("inputs tried")
    assert not failures, failures
