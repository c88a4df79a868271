"""coursekit.backbones: the two backbones, held-out images, and the trained-model caches."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch

from coursekit import backbones, data, settings


def test_imagenet_classes():
    assert len(backbones.imagenet_classes()) == 1000 and backbones.imagenet_classes()[0] == "tench"


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        backbones.backbone("vgg")


def test_imagenet_backbone_offline_says_why(monkeypatch):
    if backbones.imagenet_weights_cached():
        pytest.skip("ImageNet weights are cached here")
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="cifar10"):
        backbones.backbone("imagenet")


def test_imagenet_backbone_with_real_weights():
    if not backbones.imagenet_weights_cached():
        pytest.skip("needs torchvision's IMAGENET1K_V1 AlexNet weights in torch's cache (download once online)")
    bb = backbones.backbone("imagenet")
    top = bb.predict(bb.preprocess(data.photo("chelsea")), k=5)[0]
    assert any("cat" in name for name, _ in top)


TINY_RECIPE = {"arch": {"width": 0.1, "activation": "relu", "lrn": True, "overlap": True, "dropout": 0.5},
               "per_class": None, "epochs": 1, "batch_size": 16, "lr": 0.01, "schedule": "onecycle",
               "weight_decay": 5e-4, "autocast": False, "seed": 0, "version": 1}


def test_trained_cifar10_trains_once_then_loads(tiny_cifar):
    model, info = backbones.trained_cifar10(TINY_RECIPE, progress=False)
    assert info["trained_now"] and 0 <= info["test_top1"] <= 1
    again, info2 = backbones.trained_cifar10(TINY_RECIPE, progress=False)
    assert not info2["trained_now"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_two_processes_ask_for_the_backbone_at_once(tiny_cifar):
    script = textwrap.dedent(f"""
        import hashlib, torch
        from coursekit import backbones
        model, info = backbones.trained_cifar10({TINY_RECIPE!r}, progress=False)
        digest = hashlib.sha1(b"".join(v.cpu().numpy().tobytes() for v in model.state_dict().values())).hexdigest()
        print(info["trained_now"], digest)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    trained = [o[0] == "True" for o in outputs]
    assert sorted(trained) == [False, True], outputs  # exactly one trained, the other waited and loaded
    assert outputs[0][1] == outputs[1][1]


def test_cached_models_come_back_on_the_configured_device(tiny_cifar):
    """Both model caches return their model on settings.device, trained now or loaded ('meta'
    stands in for a GPU: a CPU-only machine can still tell it from the CPU)."""
    backbones.trained_cifar10(TINY_RECIPE, progress=False)
    source = {**backbones.source_recipe(["cat", "dog"]), "per_class": 3, "epochs": 1,
              "arch": {"width": 0.0625, "lrn": False, "dropout": 0.5}}
    backbones.trained_on_classes(source, progress=False)
    elsewhere = dataclasses.replace(settings.load(), device=torch.device("meta"))
    for model, _ in (backbones.trained_cifar10(TINY_RECIPE, elsewhere, progress=False),
                     backbones.trained_on_classes(source, elsewhere, progress=False)):
        assert {p.device for p in model.parameters()} == {torch.device("meta")}
        assert not model.training


def test_trained_on_classes_caches(tiny_cifar, monkeypatch):
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    recipe = {**backbones.source_recipe(["cat", "dog"]), "per_class": 3, "epochs": 1,
              "arch": {"width": 0.0625, "lrn": False, "dropout": 0.5}}
    model, info = backbones.trained_on_classes(recipe, progress=False)
    assert model.net.fc8.out_features == 2 and 0 <= info["test_top1"] <= 1
    again, _ = backbones.trained_on_classes(recipe, progress=False)
    assert torch.equal(again.net.conv1.weight, model.net.conv1.weight)


def test_held_out_images_are_balanced_cifar10_test_images(tiny_cifar):
    bb = backbones.Backbone("cifar10", None, list(data.CIFAR10_CLASSES), 32, data.CIFAR10_MEAN,
                            data.CIFAR10_STD, [])
    held_out = backbones.held_out_images(bb, n=10, seed=0)
    test = data.cifar10("test")
    assert sorted(held_out.labels.tolist()) == list(range(10))
    assert all((test.images == image).all((1, 2, 3)).any() for image in held_out.images)
