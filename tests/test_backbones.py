"""coursekit.backbones: the two backbones, held-out images, and the trained-model caches."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from coursekit import backbones, data, models, settings


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


def test_auto_takes_cifar10_when_the_weights_are_here_but_the_sample_photos_cannot_be_had(tiny_cifar, monkeypatch):
    """The ImageNet path's notebooks classify and mine the sample photos: with the weights cached but
    no photos and no download (offline), auto must not pick a path that fails in 01-08."""
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")  # initial weights: nothing is trained here
    monkeypatch.setattr(backbones, "imagenet_weights_cached", lambda weights=None: True)
    bb = backbones.backbone("auto")
    assert bb.name == "cifar10" and "sample photos" in bb.reason and "COURSEKIT_OFFLINE=1" in bb.reason


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


# ---------------------------------------------------------------- what differs between the backbones

def test_cifar10_backbone_carries_what_differs(tiny_cifar, monkeypatch):
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    bb = backbones.backbone("cifar10", progress=False)
    assert bb.example_classes == list(range(10)) and bb.photo_size == 96
    assert settings.load().pick(**bb.budget["occlusion_images"]) == 100
    # the untrained copy is the notebooks' former null, built the same way from the same seed
    torch.manual_seed(0)
    fresh = bb.untrained()
    torch.manual_seed(0)
    former = models.mini_alexnet(**bb.info["recipe"]["arch"])
    assert type(fresh) is type(bb.model) and fresh.aliases == bb.model.aliases and not fresh.training
    for (name, a), b, trained in zip(fresh.state_dict().items(), former.state_dict().values(),
                                     bb.model.state_dict().values()):
        assert torch.equal(a, b) and a.shape == trained.shape and a.device == trained.device, name
    assert not torch.equal(fresh.net.conv1.weight, bb.model.net.conv1.weight)
    test = data.cifar10("test")
    first_cat = [i for i in range(len(test)) if test.labels[i] == 3][0]
    assert torch.equal(bb.example_image(), test.floats()[[first_cat]])


@pytest.fixture(scope="module")
def standin_torch_home(tmp_path_factory):
    """A torch home holding random-weights AlexNet and ResNet-18 under their real IMAGENET1K_V1 file names."""
    from benchmarks.common import standin_torch_home
    return standin_torch_home(tmp_path_factory.mktemp("torch_home"))


@pytest.fixture
def standin_imagenet(standin_torch_home, tmp_path, monkeypatch, isolated_cache):
    """The stand-in imagenet backbone, with three fake ImageNet sample photos as its only data."""
    from conftest import make_image_folder
    monkeypatch.setenv("TORCH_HOME", str(standin_torch_home))
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    make_image_folder(tmp_path / "photos", ["a"], per_class=3, size=64)
    samples = tmp_path / "data" / "imagenet-samples"
    samples.mkdir(parents=True)
    for i, name in enumerate(["tench", "goldfish", "great_white_shark"]):
        (tmp_path / "photos" / "a" / f"{i}.png").rename(samples / f"{i:04d}_{name}.png")
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    assert backbones.imagenet_weights_cached()
    return backbones.backbone("imagenet")


def test_imagenet_backbone_carries_what_differs(standin_imagenet, monkeypatch):
    monkeypatch.setenv("COURSEKIT_QUICK", "1")  # the budget below is quick mode's
    bb = standin_imagenet
    assert bb.name == "imagenet" and bb.photo_size == 224 and len(bb.example_classes) == 8
    assert [bb.classes[c] for c in bb.example_classes[3:4]] == ["flamingo"]
    assert settings.load().pick(**bb.budget["occlusion_images"]) == 24
    fresh = bb.untrained()
    assert fresh.aliases == bb.model.aliases and not fresh.training
    assert {p.device for p in fresh.parameters()} == {bb.device}
    assert [p.shape for p in fresh.parameters()] == [p.shape for p in bb.model.parameters()]
    assert not torch.equal(fresh.net.features[0].weight, bb.model.net.features[0].weight)
    assert bb.example_image().shape == (1, 3, 224, 224)
    pool = backbones.held_out_images(bb, n=None)
    assert pool.images.shape == (3, 3, 224, 224) and sorted(pool.labels.tolist()) == [0, 1, 2]
    assert len(backbones.held_out_images(bb, n=2)) == 2


def test_untrained_needs_an_architecture():
    bb = backbones.Backbone("mine", None, ["a"], 32, (0.5,) * 3, (0.5,) * 3, [])
    with pytest.raises(ValueError, match="architecture"):
        bb.untrained()


def test_untrained_copies_are_repeatable_and_each_its_own_draw():
    bb = backbones.Backbone("mine", torch.nn.Linear(4, 2), ["a"], 8, (0.5,) * 3, (0.5,) * 3, [],
                            architecture=lambda: torch.nn.Linear(4, 2))
    first = [m.weight.clone() for m in bb.untrained_copies(3, seed=7)]
    again = [m.weight for m in bb.untrained_copies(3, seed=7)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    torch.manual_seed(8)
    assert torch.equal(first[1], torch.nn.Linear(4, 2).weight)      # copy k is drawn after seed + k


def test_null_bar_is_mean_plus_k_sd_and_needs_three_copies():
    assert backbones.null_bar([1.0, 2.0, 3.0]) == pytest.approx(2.0 + 3 * 1.0)
    assert backbones.null_bar(torch.tensor([1.0, 2.0, 3.0]), k=2) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least 3"):
        backbones.null_bar([1.0, 2.0])


# ---------------------------------------------------------------- a weak model's empty selection

def test_classified_correctly_keeps_a_non_empty_selection():
    scores = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    selection = backbones.classified_correctly(scores, torch.tensor([0, 0, 0]))
    assert selection.indices.tolist() == [0, 2]
    assert selection.message == "2 of 3 images classified correctly"


def test_classified_correctly_falls_back_to_all_images_with_a_message():
    scores = torch.tensor([[0.0, 1.0], [0.0, 3.0], [-1.0, 1.0]])
    indices, message = backbones.classified_correctly(scores, torch.tensor([0, 0, 0]))
    assert indices.tolist() == [0, 1, 2] and indices.dtype == torch.int64
    assert message.startswith("none of the 3 images is classified correctly") and "\n" not in message


def test_classified_correctly_names_a_shape_mismatch():
    with pytest.raises(ValueError, match="scores must be"):
        backbones.classified_correctly(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------- null runs (COURSEKIT_NULL)

def test_untrained_null_hands_out_the_initial_weights_without_training(tiny_cifar, monkeypatch):
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")
    bb = backbones.backbone("cifar10", progress=False)
    assert "UNTRAINED" in bb.reason and bb.info["history"] == [] and 0 <= bb.info["test_top1"] <= 1
    torch.manual_seed(bb.info["recipe"]["seed"])  # where the recipe's training would start
    initial = models.mini_alexnet(**bb.info["recipe"]["arch"])
    assert all(torch.equal(a, b) for a, b in zip(bb.model.state_dict().values(), initial.state_dict().values()))
    assert not list(settings.load().cache_dir.glob("models/*.pt"))  # nothing trained, nothing saved
    recipe = backbones.source_recipe(["cat", "dog"])
    source, info = backbones.trained_on_classes(recipe)
    assert info["history"] == [] and source(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    # the public handle on the same initial weights (notebook 09 compares trained against it)
    torch.manual_seed(123)  # whatever the global RNG holds: the recipe's seed decides
    initial = backbones.initial_weights(recipe, 2)
    assert not initial.training
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), initial.state_dict().values()))


def test_untrained_null_on_the_imagenet_path_needs_no_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty: no weights anywhere
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")
    bb = backbones.backbone("imagenet")
    assert bb.name == "imagenet" and "UNTRAINED" in bb.reason and len(bb.classes) == 1000


# ---------------------------------------------------------------- the imagenet path's facts

@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (427, 640), (500, 741), (256, 256), (225, 999)])
def test_photo_preprocessing_is_alexnets_own(shape):
    """What the imagenet backbone sees equals AlexNet_Weights.IMAGENET1K_V1.transforms() (resize the
    short side to 256, centre-crop 224, normalize), pixel for pixel, on odd shapes both ways round."""
    from PIL import Image
    from torchvision.models import AlexNet_Weights
    pixels = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    theirs = AlexNet_Weights.IMAGENET1K_V1.transforms()(Image.fromarray(pixels))
    ours = data.normalize(data.load_photo(pixels, 224), models.IMAGENET_MEAN, models.IMAGENET_STD)[0]
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5)


def test_the_slides_example_classes_are_the_imagenet_indices_we_use():
    names = [backbones.imagenet_classes()[i] for i in backbones.IMAGENET_EXAMPLE_CLASSES]
    assert names == ["dumbbell", "dalmatian", "washer", "flamingo", "indigo bunting", "goldfish",
                     "Japanese spaniel", "strawberry"]


@pytest.mark.parametrize("name,index", [("ostrich", 9), ("giant panda", 388), ("gibbon", 368), ("bucket", 463)])
def test_the_attack_slides_classes_resolve_to_their_imagenet_indices(name, index):
    """08's target ("temple" -> "ostrich") and Goodfellow et al.'s panda (-> gibbon; the slide's
    "bucket"), looked up by name as 08 does, land on the ILSVRC-2012 indices AlexNet's outputs use."""
    from coursekit import attacks
    assert attacks.class_index(backbones.imagenet_classes(), name) == index


def test_second_network_is_the_backbones_recipe_with_the_next_seed():
    cfg = settings.current()
    recipe = backbones.second_recipe(cfg)
    assert recipe["seed"] == cfg.seed + 1
    assert {k: v for k, v in recipe.items() if k not in {"seed", "per_class", "epochs"}} == \
        {k: v for k, v in backbones.cifar10_recipe(cfg).items() if k not in {"seed", "per_class", "epochs"}}


def test_second_imagenet_network_names_its_stages_like_alexnet(monkeypatch):
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")  # random weights: nothing to download
    fake = backbones.Backbone("imagenet", None, backbones.imagenet_classes(), 224, models.IMAGENET_MEAN,
                              models.IMAGENET_STD, [])
    judge, info = backbones.second_network(fake)
    from coursekit import hooks
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64, device=next(judge.parameters()).device)
        assert judge(x).shape == (1, 1000)
        assert hooks.forward_until(judge, x, "conv3").shape[1] == 128  # ResNet-18's layer2
    assert info["test_top1"] is None


def test_towers_recipe_trains_a_grouped_network_scored_on_a_test_subset(tiny_cifar, monkeypatch):
    """Notebook 03's Figure 3 networks: groups=2, conv1 from N(0, 0.01), one seed per run, trained and
    cached by trained_cifar10, scored on recipe['test_images'] test images; the null hands out the start."""
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    recipes = [backbones.towers_recipe(run) for run in range(3)]
    assert len({r["seed"] for r in recipes}) == 3 and recipes[0]["arch"]["groups"] == 2
    tiny = {**recipes[0], "per_class": 2, "epochs": 1, "batch_size": 8, "test_images": 10, "autocast": False}
    start = backbones.initial_weights(tiny, 10)
    assert abs(float(start.net.conv1.weight.std()) - 0.01) < 0.002 and start.net.conv2.groups == 2
    model, info = backbones.trained_cifar10(tiny, progress=False)
    assert info["trained_now"] and info["test_top1"] * 10 == round(info["test_top1"] * 10)  # 10 images scored
    assert not torch.equal(model.net.conv1.weight.cpu(), start.net.conv1.weight.cpu())
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")
    null_model, _ = backbones.trained_cifar10(tiny, progress=False)
    assert torch.equal(null_model.net.conv1.weight.cpu(), start.net.conv1.weight.cpu())


def test_trains_in_null_trains_on_shuffled_labels_only_in_that_null(tiny_cifar, monkeypatch):
    """trained_cifar10(trains_in_null=True): the shuffled-labels null trains the recipe on the
    shuffled labels, into the null's own cache; the untrained null still hands out the start."""
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    tiny = {**backbones.towers_recipe(0), "per_class": 2, "epochs": 1, "batch_size": 8, "test_images": 10,
            "autocast": False}
    start = backbones.initial_weights(tiny, 10)
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")
    untrained, _ = backbones.trained_cifar10(tiny, progress=False, trains_in_null=True)
    assert torch.equal(untrained.net.conv1.weight.cpu(), start.net.conv1.weight.cpu())
    monkeypatch.setenv("COURSEKIT_NULL", "shuffled-labels")
    kept, _ = backbones.trained_cifar10(tiny, progress=False)  # without the flag: the start, as before
    assert torch.equal(kept.net.conv1.weight.cpu(), start.net.conv1.weight.cpu())
    shuffled, info = backbones.trained_cifar10(tiny, progress=False, trains_in_null=True)
    assert info["trained_now"] and "null-shuffled-labels" in info["path"]
    assert not torch.equal(shuffled.net.conv1.weight.cpu(), start.net.conv1.weight.cpu())


def test_the_trainable_pair_is_the_backbone_itself_on_cifar10_and_the_quick_recipes_on_imagenet(monkeypatch):
    """08's attacked and fine-tuned pair: on the imagenet path, the quick recipes in full mode too (a
    first full-mode pass must not train the 12-epoch backbone inside a 15-minute notebook); on the
    cifar10 path, the backbone the rest of the notebook uses."""
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")  # initial weights: nothing is trained here
    monkeypatch.setenv("COURSEKIT_QUICK", "0")
    monkeypatch.setattr(backbones._train, "evaluate", lambda model, images: {"top1": 0.1, "top5": 0.5})
    fake = backbones.Backbone("imagenet", None, backbones.imagenet_classes(), 224, models.IMAGENET_MEAN,
                              models.IMAGENET_STD, [])
    cifar, second, info = backbones.trainable_pair(fake, progress=False)
    quick = dataclasses.replace(settings.current(), quick=True)
    assert cifar.name == "cifar10" and cifar.info["recipe"] == backbones.cifar10_recipe(quick)
    assert info["recipe"] == backbones.second_recipe(quick) != backbones.second_recipe()
    same, _, full_info = backbones.trainable_pair(cifar, progress=False)
    assert same is cifar and full_info["recipe"] == backbones.second_recipe()
