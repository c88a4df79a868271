"""The two trained networks every notebook runs on, and the cached networks trained beside them.

`backbone(name)` returns a `Backbone`: a trained model taking pixels in [0, 1] with what a notebook
needs beside it (preprocessing, class names, layer names, why this one) and everything that differs
between the two networks (example classes and image, photo size, an untrained copy, how much work the
costly loops get), so a notebook has one code path on either. 'imagenet' is torchvision's
AlexNet with IMAGENET1K_V1 weights; 'cifar10' is the course's MiniAlexNet, trained here by
`cifar10_recipe` on a cache miss (`trained_cifar10`). `trained_on_classes` trains a source network
on some of CIFAR-10's classes, for transfer to the others. Both caches go through cache.cached and
return their model in eval mode on the configured device (settings.device).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from . import cache as _cache
from . import data as _data
from . import models as _models
from . import settings as _settings
from . import train as _train


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in the order of AlexNet's outputs."""
    from torchvision.models import AlexNet_Weights
    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_weights_cached(weights=None) -> bool:
    """True when torchvision's `weights` (a weights enum member; default AlexNet IMAGENET1K_V1, the
    imagenet backbone's) are already in torch's cache, under the file name torchvision downloads to."""
    if weights is None:
        from torchvision.models import AlexNet_Weights
        weights = AlexNet_Weights.IMAGENET1K_V1
    return (Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[1]).is_file()


@dataclass
class Backbone:
    """A trained model taking [0, 1] pixels, with what a notebook needs beside it.

    What differs between the two backbones lives here, so notebooks never branch on `name`:
    `example_classes` (class indices the notebooks show, in order), `photo_size` (side in pixels at
    which photos are optimized and shown interactively), `budget` (per-backbone work of the costly
    loops, each a {"quick": ..., "full": ...} pair for `settings.pick(**bb.budget[key])`),
    `architecture` (builds the same network with fresh random weights; see `untrained`).
    """
    name: str
    model: _models.PixelModel
    classes: list[str]
    input_size: int
    mean: tuple
    std: tuple
    layers: list[str]
    reason: str = ""
    info: dict = field(default_factory=dict)
    example_classes: list[int] = field(default_factory=list)
    photo_size: int = 0
    budget: dict = field(default_factory=dict)
    architecture: Callable[[], _models.PixelModel] | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, image) -> torch.Tensor:
        """A photo (path, PIL image or HxWx3 uint8 array) as a (1, 3, S, S) batch on the model's device."""
        x = _data.load_photo(image, self.input_size)
        return x.to(self.device)

    def normalize(self, x):
        return _data.normalize(x, self.mean, self.std)

    def denormalize(self, x):
        return _data.denormalize(x, self.mean, self.std)

    def predict(self, x: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (class name, probability) for each image of a [0, 1] batch (the model read in eval mode)."""
        with _models.evaluating(self.model):
            probs = self.model(x).softmax(1)
        top = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[(self.classes[i], p) for p, i in zip(ps.tolist(), idx.tolist())]
                for ps, idx in zip(top.values, top.indices)]

    def untrained(self) -> _models.PixelModel:
        """The same architecture with fresh random weights (drawn from torch's global RNG: seed it
        first for a repeatable copy), wrapped the same way, in eval mode on the model's device: the
        null a trained network is compared against."""
        if self.architecture is None:
            raise ValueError(f"backbone {self.name!r} was built without an `architecture`; build it with "
                             f"backbones.backbone(), or pass architecture=<function returning the network>")
        return self.architecture().to(self.device).eval()

    def untrained_copies(self, n: int, seed: int):
        """n copies of the architecture with fresh random weights (see `untrained`), copy k drawn
        right after torch.manual_seed(seed + k), so each is repeatable and its own draw. A generator:
        one copy is built at a time (an ImageNet AlexNet is 244 MB). The null a trained network's
        result is measured against, and the spread that null_bar turns into a bar."""
        for k in range(n):
            torch.manual_seed(seed + k)
            yield self.untrained()

    def example_image(self) -> torch.Tensor:
        """The running example, a photo of a cat, as a (1, 3, input_size, input_size) [0, 1] batch on
        the model's device: the first cat of the CIFAR-10 test set for cifar10, scikit-image's
        'chelsea' for imagenet."""
        if self.name == "cifar10":
            test = _data.cifar10("test")
            first_cat = int((test.labels == _data.CIFAR10_CLASSES.index("cat")).nonzero()[0])
            return test.floats()[[first_cat]].to(self.device)
        return self.preprocess(_data.photo("chelsea"))


def backbone(name: str | None = None, cfg=None, progress: bool = True) -> Backbone:
    """'imagenet' (torchvision AlexNet), 'cifar10' (the course's MiniAlexNet) or 'auto':
    imagenet when its weights and the ImageNet sample photos are here or can be downloaded, else
    cifar10 (its `reason` says why). Returned in eval mode on the settings' device."""
    cfg = _settings.current(cfg)
    name = name or cfg.backbone
    if name not in {"auto", "imagenet", "cifar10"}:
        raise ValueError(f"unknown backbone {name!r}: use 'auto', 'imagenet' or 'cifar10'")
    if name in {"auto", "imagenet"}:
        why = _imagenet_unavailable(cfg)
        if name == "imagenet" and cfg.null:
            why = None  # random weights: nothing to load (auto still picks what the real run would)
        if why is None:
            return _imagenet_backbone(cfg)
        if name == "imagenet":
            raise RuntimeError(f"imagenet backbone unavailable: {why}. Connect to the internet once and run "
                               f"`python -m coursekit prefetch` (the weights are cached in {torch.hub.get_dir()}, "
                               f"the sample photos in the first data root), or use backbone('cifar10').")
        reason = f"cifar10 backbone, because the ImageNet AlexNet path is unavailable ({why})"
    else:
        reason = "cifar10 backbone, as asked"
    model, info = trained_cifar10(cfg=cfg, progress=progress)
    arch = info["recipe"]["arch"]
    if cfg.null:
        reason += f", {UNTRAINED}"
    return Backbone("cifar10", model, list(_data.CIFAR10_CLASSES), 32,
                    _data.CIFAR10_MEAN, _data.CIFAR10_STD, list(model.aliases), reason, info,
                    example_classes=list(range(10)), photo_size=96, budget=CIFAR10_BUDGET,
                    architecture=lambda: _models.mini_alexnet(**arch))


# what a null run says about the networks it hands out: in either null (COURSEKIT_NULL=untrained or
# shuffled-labels) they keep their initial weights; training them on permuted labels would cost
# minutes and learn no more
UNTRAINED = "UNTRAINED: initial weights (COURSEKIT_NULL, a null run)"


# How much work the costly loops get on each backbone ({"quick": ..., "full": ...}, for settings.pick):
# a 224 px AlexNet costs about 50x a 32 px MiniAlexNet per image, so it gets fewer images.
# occlusion_images: canvases 04's occlusion check occludes per network (16 positions each), each
# network's surest third of 3x as many pasted objects; on cifar10 30 left the untrained copies'
# mean share of the drop too noisy to bar (spread 0.03-0.06 between copies), 100 narrows it; on a
# random AlexNet 8 let the null run's own random backbone clear its copies' bar (0.532 > 0.521), 24
# did not (0.462 < 0.542), at about the old check's cost (6 networks x 456 passes at 224 px)
# compared_classes: 05's classes climbed on both the score and the probability, on the backbone and on
# 5 untrained copies (2 x 300 steps per class and copy in full mode): on the ImageNet path 4 classes
# took 503 s of 05's 968 s (2026-12-02, AMD EPYC, 2 cores)
# judged_classes / matched_classes: 06's class models judged by the second network (the shown classes
# first), and the shown classes climbed again per prior for the equal-score table; on the ImageNet path
# all 8 and 3 took 746 s and 364 s of 06's 1,382 s in full mode (2026-12-02, AMD EPYC, 2 cores)
# class_model_starts: starts per example class for 06's batch of class models (10 classes at chance 10%
# need 3 each for a binomial margin; 8 ImageNet classes at chance 0.1% need one)
# sanity_images: images per cascading randomization (05; 9 maps x 3 methods each, on 6 networks: about
# 50 s per cascade of 3 images on a random AlexNet at 224 px, on a busy CPU).
# mining_size / mining_photos: 04's top-9 mined on the ImageNet sample photos at a side where conv5's
# receptive field (43 px on MiniAlexNet, 163 px on AlexNet) covers a part of the photo, not all of it
# attack_images: held-out images 08 attacks; its accuracy-vs-eps sweep costs 2 * steps + 1 gradient
# passes per image per eps level, 23 minutes at 1,000 images of 224 px in full mode (issue 19)
# evolved_classes / evolved_generations: 08's evolution strategy (attacks.evolved_fooling_images, 4 children
# per generation) runs on the backbone and on 3 untrained copies: classes x 4 x generations forward passes
# each, about 2 ms per 32 px image and 10x that at 224 px on a shared CPU core (cifar10 full: 22k passes,
# under a minute, inside 08's 15 minutes; 150 generations are where the backbone's median confidence
# clears the untrained copies' bar in quick mode, and a better-trained full backbone climbs faster)
CIFAR10_BUDGET = {"occlusion_images": {"quick": 100, "full": 300}, "dream_size": {"quick": 96, "full": 160},
                  "class_model_starts": {"quick": 3, "full": 3}, "compared_classes": {"quick": 4, "full": 4},
                  "judged_classes": {"quick": 10, "full": 10}, "matched_classes": {"quick": 1, "full": 3},
                  "sanity_images": {"quick": 16, "full": 64},
                  "mining_size": {"quick": 96, "full": 96}, "mining_photos": {"quick": 100, "full": 1000},
                  "attack_images": {"quick": 100, "full": 1000},
                  "evolved_classes": {"quick": 5, "full": 9}, "evolved_generations": {"quick": 150, "full": 150}}
IMAGENET_BUDGET = {"occlusion_images": {"quick": 24, "full": 50}, "dream_size": {"quick": 224, "full": 224},
                   "class_model_starts": {"quick": 1, "full": 1}, "compared_classes": {"quick": 4, "full": 2},
                   "judged_classes": {"quick": 8, "full": 3}, "matched_classes": {"quick": 1, "full": 1},
                   "sanity_images": {"quick": 3, "full": 16},
                   "mining_size": {"quick": 448, "full": 448}, "mining_photos": {"quick": 24, "full": 300},
                   "attack_images": {"quick": 50, "full": 100},
                   "evolved_classes": {"quick": 3, "full": 8}, "evolved_generations": {"quick": 10, "full": 50}}
# the slides' classes: dumbbell, dalmatian, washing machine, flamingo, indigo bunting, goldfish,
# Japanese spaniel (the "Better Visualizations" slide's (g): index 152, not 151 Chihuahua), strawberry
IMAGENET_EXAMPLE_CLASSES = [543, 251, 897, 130, 14, 1, 152, 949]


def _imagenet_unavailable(cfg) -> str | None:
    """Why the imagenet path cannot run here: its weights, or the sample photos its notebooks
    classify and mine (None: both are here or can be downloaded)."""
    if imagenet_weights_cached():
        why = None
    elif cfg.offline:
        why = "the AlexNet weights are not in torch's cache and COURSEKIT_OFFLINE=1 is set"
    elif not _data.can_download("download.pytorch.org"):
        why = "the AlexNet weights are not in torch's cache and download.pytorch.org cannot be reached"
    else:
        why = None
    return why or _data.imagenet_samples_unavailable(cfg)


def _imagenet_backbone(cfg) -> Backbone:
    untrained = bool(cfg.null)
    model = _models.alexnet(pretrained=not untrained).to(cfg.device).eval()
    reason = "imagenet backbone: torchvision AlexNet, " + (UNTRAINED if untrained else "IMAGENET1K_V1 weights")
    return Backbone("imagenet", model, imagenet_classes(), 224, _models.IMAGENET_MEAN, _models.IMAGENET_STD,
                    list(_models.ALEXNET_ALIASES), reason,
                    example_classes=list(IMAGENET_EXAMPLE_CLASSES), photo_size=224, budget=IMAGENET_BUDGET,
                    architecture=lambda: _models.alexnet(pretrained=False))


def held_out_images(backbone: Backbone, n: int | None, seed: int = 0) -> _data.ImageSet:
    """n labelled images the backbone never trained on (None: all of them): CIFAR-10 test images
    (class-balanced) for cifar10, or the ImageNet sample photos at the backbone's input size."""
    if backbone.name == "cifar10":
        return _data.cifar10("test").subset(total=n, seed=seed)
    return _data.imagenet_photos(n, backbone.input_size, seed, classes=list(backbone.classes))


class Selection(NamedTuple):
    """Which images a cell works on (1-D int64 indices), and one line saying how they were chosen."""
    indices: torch.Tensor
    message: str


def classified_correctly(scores: torch.Tensor, labels: torch.Tensor) -> Selection:
    """The images a model gets right, or all of them when it gets none right.

    scores: (N, C) logits or probabilities; labels: (N,) true classes. Returns the indices (in order,
    on labels' device) where scores.argmax(1) == labels, and a one-line message. A weak or untrained
    network (a student's own, or random weights) may get none right; then every index comes back,
    with a message that says so, so the cells that pick examples from the selection still run.
    """
    if scores.dim() != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, C) for N = len(labels) = {len(labels)}, got {tuple(scores.shape)}")
    right = (scores.argmax(1) == labels).nonzero().flatten()
    if len(right):
        return Selection(right, f"{len(right)} of {len(labels)} images classified correctly")
    return Selection(torch.arange(len(labels), device=labels.device),
                     f"none of the {len(labels)} images is classified correctly (a weak or untrained "
                     f"network?): using all {len(labels)}, with their true labels")


def _trained_model(state: dict, arch: dict, num_classes: int, cfg) -> _models.PixelModel:
    """A MiniAlexNet with a cached state's weights, in eval mode on the configured device."""
    model = _models.mini_alexnet(num_classes=num_classes, **arch)
    model.load_state_dict(state["model"])
    return model.to(cfg.device).eval()


def null_bar(null_values, k: float = 3.0) -> float:
    """The value a trained network's result must exceed to count as learned, not built in: the mean
    of the same measurement on untrained copies (Backbone.untrained_copies) plus k standard
    deviations between the copies (ddof=1). null_values: a sequence or 1-D tensor of at least three
    numbers (two give no usable spread); raises ValueError otherwise."""
    values = torch.as_tensor([float(v) for v in null_values], dtype=torch.float64)
    if len(values) < 3:
        raise ValueError(f"null_bar needs the measurement on at least 3 untrained copies, got {len(values)}")
    return float(values.mean() + k * values.std())


def initial_weights(recipe: dict, num_classes: int, cfg=None) -> _models.PixelModel:
    """The MiniAlexNet `recipe` trains (cifar10_recipe: 10 classes; source_recipe: one per class
    of recipe['classes']), with the initial weights its training starts from (torch seeded with
    recipe['seed']), in eval mode on the configured device. What training added is the trained
    network's result minus this one's (notebook 09); the null run COURSEKIT_NULL=untrained hands
    out exactly this network in place of the trained one."""
    cfg = _settings.current(cfg)
    torch.manual_seed(recipe["seed"])
    return _models.mini_alexnet(num_classes=num_classes, **recipe["arch"]).to(cfg.device).eval()


def _untrained(recipe: dict, num_classes: int, test_set, cfg) -> tuple[_models.PixelModel, dict]:
    """The network `recipe` would train, with the initial weights its training starts from (the
    null run COURSEKIT_NULL=untrained), and the info a trained one carries: no history, its test
    accuracy (about chance)."""
    model = initial_weights(recipe, num_classes, cfg)
    # a null-run notebook asks for its networks several times: score the same initial weights once
    key = (_cache.config_key(recipe), num_classes, len(test_set), str(cfg.device))
    if key not in _UNTRAINED_SCORES:
        _UNTRAINED_SCORES[key] = _train.evaluate(model, test_set)
    scores = _UNTRAINED_SCORES[key]
    return model, {"recipe": recipe, "path": None, "history": [], "test_top1": scores["top1"],
                   "test_top5": scores["top5"], "trained_now": False, "null": cfg.null}


_UNTRAINED_SCORES: dict = {}


def _cpu_weights(model) -> dict:
    return {k: v.cpu() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- the cifar10 backbone

def cifar10_recipe(cfg=None) -> dict:
    """How the cifar10 backbone is trained: every training image, on a 2-epoch one-cycle schedule in
    quick mode (about 60% test top-1) and 12 epochs in full mode (about 81%)."""
    cfg = _settings.current(cfg)
    return {
        "arch": {"width": 0.5, "activation": "relu", "lrn": True, "overlap": True, "dropout": 0.5},
        "per_class": None, "epochs": cfg.pick(quick=2, full=12),
        "batch_size": 128, "lr": 0.05, "schedule": "onecycle", "weight_decay": 5e-4,
        "autocast": _train.native_bf16(cfg.device), "seed": cfg.seed, "version": 3,
    }


def cifar10_cache_path(recipe: dict, cfg=None) -> Path:
    """Where the model trained by `recipe` is cached (one file per recipe)."""
    cfg = _settings.current(cfg)
    return cfg.cache_dir / "models" / f"minialexnet-cifar10-{_cache.config_key(recipe)}.pt"


def trained_cifar10(recipe: dict | None = None, cfg=None, progress: bool = True,
                    trains_in_null: bool = False) -> tuple[_models.PixelModel, dict]:
    """The MiniAlexNet trained on CIFAR-10 by `recipe`, from the cache or trained now (then cached),
    in eval mode on the configured device. Returns (model, info: recipe, path, history, test top-1
    and top-5, trained_now).

    Concurrent callers wait for the one that trains (cache.cached); training checkpoints every
    epoch, so an interrupted run resumes where it stopped. A null run hands out the initial weights,
    except that with trains_in_null=True the shuffled-labels null (COURSEKIT_NULL=shuffled-labels)
    trains the recipe on the shuffled labels (cached in the null's own cache): for recipes cheap
    enough to train in a null run, whose check must fail because nothing was learned, not because
    nothing was trained (notebook 03's towers).
    """
    cfg = _settings.current(cfg)
    recipe = recipe or cifar10_recipe(cfg)
    if cfg.null and not (trains_in_null and cfg.null == "shuffled-labels"):
        return _untrained(recipe, 10, _test_set(recipe, cfg), cfg)
    path = cifar10_cache_path(recipe, cfg)
    checkpoints = path.with_suffix(".checkpoints")
    state, trained_now = _cache.cached(path, lambda: _train_cifar10(recipe, checkpoints, cfg, progress), recipe)
    if trained_now:  # saved: the checkpoints are no longer needed to resume
        shutil.rmtree(checkpoints, ignore_errors=True)
    model = _trained_model(state, recipe["arch"], 10, cfg)
    return model, {"recipe": recipe, "path": str(path), "history": state["history"],
                   "test_top1": state["test_top1"], "test_top5": state["test_top5"], "trained_now": trained_now}


def _test_set(recipe: dict, cfg) -> _data.ImageSet:
    """The CIFAR-10 test images a recipe's network is scored on: all 10,000, or a class-balanced
    recipe['test_images'] of them where scoring all would cost more than the training (towers_recipe)."""
    test_set = _data.cifar10("test", cfg)
    return test_set if recipe.get("test_images") is None else test_set.subset(total=recipe["test_images"], seed=0)


def _train_cifar10(recipe: dict, checkpoints: Path, cfg, progress: bool) -> dict:
    train_set = _data.cifar10("train", cfg).subset(per_class=recipe["per_class"], seed=recipe["seed"])
    test_set = _test_set(recipe, cfg)
    torch.manual_seed(recipe["seed"])
    model = _models.mini_alexnet(**recipe["arch"])
    history = _train.fit(model, train_set, None, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                         lr=recipe["lr"], schedule=recipe["schedule"], weight_decay=recipe["weight_decay"],
                         autocast=recipe["autocast"], seed=recipe["seed"], progress=progress,
                         checkpoint_dir=checkpoints, device=cfg.device)
    scores = _train.evaluate(model, test_set)
    return {"model": _cpu_weights(model), "history": history.rows,
            "test_top1": scores["top1"], "test_top5": scores["top5"]}


# ---------------------------------------------------------------- a second, independently trained network

def second_recipe(cfg=None) -> dict:
    """How the second cifar10 network is trained: the backbone's recipe with the next seed, on fewer
    images for fewer epochs (300 per class x 2 epochs in quick mode, 2,500 x 6 in full), so it
    trains in seconds to minutes and is cached like the backbone."""
    cfg = _settings.current(cfg)
    return {**cifar10_recipe(cfg), "seed": cfg.seed + 1, "per_class": cfg.pick(quick=300, full=2500),
            "epochs": cfg.pick(quick=2, full=6)}


def second_network(backbone: Backbone, cfg=None, progress: bool = False) -> tuple[_models.PixelModel, dict]:
    """A second network over the backbone's classes, trained independently of it: a judge of whether
    what one network finds (an adversarial example, a class model, a dreamed pattern, a
    reconstruction) carries over to another (Szegedy et al. 2014; Yosinski et al. 2015).

    cifar10: a MiniAlexNet from `second_recipe` (other seed, fewer images). imagenet: torchvision's
    ResNet-18 (IMAGENET1K_V1 weights, downloaded once like AlexNet's; another architecture too), its
    stages named conv1 ... conv5 and fc8 by depth (models.RESNET18_ALIASES).
    Takes [0, 1] pixels like the backbone, in eval mode on the configured device. A null run
    (COURSEKIT_NULL) hands it out untrained, like every trained network. Returns (model,
    info with 'test_top1' where known, else None).
    """
    cfg = _settings.current(cfg)
    if backbone.name == "cifar10":
        return trained_cifar10(second_recipe(cfg), cfg, progress)
    try:
        model = _models.resnet18(pretrained=not cfg.null)
    except Exception as err:  # no cache and no network: say which weights and how to get them
        raise RuntimeError(f"the second imagenet network (torchvision ResNet-18, IMAGENET1K_V1) could not be "
                           f"loaded ({err}); run `python -m coursekit prefetch` once while online so torch "
                           f"caches it in {torch.hub.get_dir()}, or use backbones.backbone('cifar10')") from err
    model = model.to(cfg.device).eval()
    weights = "random weights (null run)" if cfg.null else "ResNet18_Weights.IMAGENET1K_V1"
    return model, {"recipe": {"torchvision": "resnet18", "weights": weights}, "test_top1": None}


def trainable_pair(bb: Backbone, cfg=None, progress: bool = True) -> tuple[Backbone, _models.PixelModel, dict]:
    """Two CIFAR-10 MiniAlexNets trained independently, cheap enough to attack and fine-tune inside a
    notebook (08: transfer of adversarial examples, Szegedy et al. 2014; adversarial training,
    Goodfellow et al. 2015): (the cifar10 backbone, its second network, the second's info as
    `second_network` returns it).

    On the cifar10 path that is `bb` itself and its second network. On the imagenet path, whose
    224-px AlexNet costs about 50x as much per image as MiniAlexNet, the pair comes from the quick
    recipes in either mode (`cifar10_recipe` and `second_recipe` with quick=True: every training image
    for 2 epochs, about 60% top-1, and 300 per class for 2): trained on first use in a few minutes on
    2 CPU cores, where the full recipes (12 and 6 epochs) would take about a quarter of an hour more
    of a 15-minute notebook. Raises what `backbone` and `second_network` raise.
    """
    cfg = _settings.current(cfg)
    if bb.name != "cifar10":
        cfg = replace(cfg, quick=True)  # recipes only: the caller's own sizes still follow its mode
        bb = backbone("cifar10", cfg, progress)
    second, info = second_network(bb, cfg, progress)
    return bb, second, info


# ---------------------------------------------------------------- AlexNet's two towers (Figure 3)

def towers_recipe(run: int = 0, cfg=None) -> dict:
    """How notebook 03's two-tower networks are trained (AlexNet Figure 3): MiniAlexNet with the
    paper's two-GPU connectivity (groups=2) and conv1 from the paper's N(0, 0.01), so its filters show
    what training put there; width 0.5 (16 conv1 filters per tower); LRN and dropout off (LRN's
    backward costs several times its forward on CPUs); the backbone's one-cycle schedule at batch 64
    on 300 images per class for 2 epochs in quick mode (about 10 CPU-seconds per run), 1,000 for 2
    in full mode (about 26), scored on 2,000 test images. Run k has seed cfg.seed + 100 + k:
    each run its own initialization, since the paper's claim is about every run. Trained and cached
    by `trained_cifar10` (a null run hands out the initial weights)."""
    cfg = _settings.current(cfg)
    return {**cifar10_recipe(cfg), "arch": {"width": 0.5, "groups": 2, "conv1_std": 0.01, "lrn": False,
                                            "dropout": 0.0},
            "per_class": cfg.pick(quick=300, full=1000), "epochs": 2, "batch_size": 64,
            "test_images": 2000, "seed": cfg.seed + 100 + run}


# ---------------------------------------------------------------- a source network for new classes

def source_recipe(classes, cfg=None) -> dict:
    """How the held-out-classes source network is trained: the backbone's ingredients, narrower,
    LRN off (its backward costs 7x on CPUs for about a point), dropout off and lr 0.02 (without
    LRN, lr 0.05 with dropout diverges here)."""
    cfg = _settings.current(cfg)
    return {"classes": list(classes), "arch": {"width": 0.25, "lrn": False, "dropout": 0.0},
            "per_class": cfg.pick(quick=2000, full=None), "epochs": cfg.pick(quick=5, full=12),
            "batch_size": 128, "lr": 0.02, "weight_decay": 5e-4, "seed": cfg.seed, "version": 2}


def trained_on_classes(recipe: dict, cfg=None, progress: bool = True):
    """A MiniAlexNet trained on only recipe['classes'] of CIFAR-10, cached like the backbone, in
    eval mode on the configured device. Returns (model, info with test top-1 on those classes)."""
    cfg = _settings.current(cfg)
    if cfg.null:
        test_set = _data.select_classes(_data.cifar10("test", cfg), recipe["classes"])
        return _untrained(recipe, len(recipe["classes"]), test_set, cfg)
    path = cfg.cache_dir / "models" / f"minialexnet-classes-{_cache.config_key(recipe)}.pt"
    state, _ = _cache.cached(path, lambda: _train_source(recipe, cfg, progress), recipe)
    model = _trained_model(state, recipe["arch"], len(recipe["classes"]), cfg)
    return model, {"recipe": recipe, "test_top1": state["test_top1"], "path": str(path)}


def _train_source(recipe: dict, cfg, progress: bool) -> dict:
    train_set = _data.select_classes(_data.cifar10("train", cfg), recipe["classes"])
    train_set = train_set.subset(per_class=recipe["per_class"], seed=recipe["seed"])
    test_set = _data.select_classes(_data.cifar10("test", cfg), recipe["classes"])
    torch.manual_seed(recipe["seed"])
    model = _models.mini_alexnet(num_classes=len(recipe["classes"]), **recipe["arch"])
    _train.fit(model, train_set, None, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
               lr=recipe["lr"], weight_decay=recipe["weight_decay"], seed=recipe["seed"],
               progress=progress, device=cfg.device)
    return {"model": _cpu_weights(model), "test_top1": _train.evaluate(model, test_set)["top1"]}
