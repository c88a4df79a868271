"""MiniAlexNet, torchvision's AlexNet, and `backbone(name)`: a model that takes pixels in [0, 1].

Both backbones answer to the same layer names (conv1 ... conv5, fc6 ... fc8, and relu/pool
names beside them) and to torch's own dotted names.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as _data
from . import settings as _settings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, so the model takes plain pixels in [0, 1]."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class LocalResponseNorm(nn.Module):
    """AlexNet's LRN, exactly as in the paper (section 3.3):
    b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2) ** beta, over neighbouring channels.

    torch.nn.LocalResponseNorm divides alpha by n; this one does not. The channel-window sum is a
    1x1 convolution with a fixed band matrix, which is several times faster on CPUs than avg_pool3d.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, x):
        channels = x.shape[1]
        idx = torch.arange(channels, device=x.device)
        band = ((idx[:, None] - idx[None, :]).abs() <= self.size // 2).to(x.dtype)
        summed = F.conv2d(x * x, band[:, :, None, None])
        return x / (self.k + self.alpha * summed).pow(self.beta)


class PixelModel(nn.Module):
    """A network with its input normalization in front, and layer aliases (conv1 -> net.features.0)."""

    def __init__(self, net: nn.Module, mean, std, aliases: dict[str, str] | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.aliases = dict(aliases or {})

    def forward(self, x):
        return self.net(self.normalize(x))


def MiniAlexNet(num_classes: int = 10, activation: str = "relu", lrn: bool = True,
                overlap: bool = True, dropout: float = 0.5, width: float = 1.0) -> nn.Sequential:
    """AlexNet's recipe at 32x32: 5 conv + 3 fully connected layers, each ingredient switchable.

    activation: 'relu' (the paper) or 'tanh' (what it replaced)
    lrn: local response normalization after conv1 and conv2 (k=2, n=5, alpha=1e-4, beta=0.75)
    overlap: 3x3 pooling at stride 2 (overlapping, the paper) or 2x2 at stride 2
    dropout: before fc6 and fc7 (0.5 in the paper; 0 turns it off)
    width: scales every layer's channels (1.0: 64-192-384-256-256 conv, 1024 fc)
    """
    if activation not in {"relu", "tanh"}:
        raise ValueError(f"activation must be 'relu' or 'tanh', not {activation!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    if not width > 0 or not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"width must be > 0 (1.0 is the full net) and num_classes a whole number >= 1, "
                         f"not width={width!r}, num_classes={num_classes!r}")
    c = [max(4, round(k * width)) for k in (64, 192, 384, 256, 256)]
    hidden = max(8, round(1024 * width))
    act = (lambda: nn.ReLU()) if activation == "relu" else (lambda: nn.Tanh())
    pool = (lambda: nn.MaxPool2d(3, 2)) if overlap else (lambda: nn.MaxPool2d(2, 2))
    norm = (lambda: LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)) if lrn else (lambda: nn.Identity())
    side = 3 if overlap else 4  # 32 -> 15 -> 7 -> 3 with 3/2 pooling; 32 -> 16 -> 8 -> 4 with 2/2
    layers = OrderedDict([
        ("conv1", nn.Conv2d(3, c[0], 5, padding=2)), ("relu1", act()), ("lrn1", norm()), ("pool1", pool()),
        ("conv2", nn.Conv2d(c[0], c[1], 5, padding=2)), ("relu2", act()), ("lrn2", norm()), ("pool2", pool()),
        ("conv3", nn.Conv2d(c[1], c[2], 3, padding=1)), ("relu3", act()),
        ("conv4", nn.Conv2d(c[2], c[3], 3, padding=1)), ("relu4", act()),
        ("conv5", nn.Conv2d(c[3], c[4], 3, padding=1)), ("relu5", act()), ("pool5", pool()),
        ("flatten", nn.Flatten()),
        ("drop6", nn.Dropout(dropout)), ("fc6", nn.Linear(c[4] * side * side, hidden)), ("relu6", act()),
        ("drop7", nn.Dropout(dropout)), ("fc7", nn.Linear(hidden, hidden)), ("relu7", act()),
        ("fc8", nn.Linear(hidden, num_classes)),
    ])
    net = nn.Sequential(layers)
    init_weights(net, activation)
    return net


def init_weights(net: nn.Module, activation: str = "relu") -> None:
    """He initialization (Xavier for tanh), zero biases, a small last layer.

    The paper's N(0, 0.01) with biases of 1 needed ImageNet-scale patience; without batch norm an
    eight-layer net with PyTorch's default init barely moves at first, so we use He et al. (2015).
    """
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        if activation == "relu":
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh"))
        nn.init.zeros_(m.bias)
    nn.init.normal_(layers[-1].weight, std=0.01)


def mini_alexnet(**kwargs) -> PixelModel:
    """MiniAlexNet with CIFAR-10 normalization in front; takes (N, 3, 32, 32) pixels in [0, 1]."""
    net = MiniAlexNet(**kwargs)
    aliases = {name: f"net.{name}" for name, _ in net.named_children()}
    return PixelModel(net, _data.CIFAR10_MEAN, _data.CIFAR10_STD, aliases)


ALEXNET_ALIASES = {
    "conv1": "net.features.0", "relu1": "net.features.1", "pool1": "net.features.2",
    "conv2": "net.features.3", "relu2": "net.features.4", "pool2": "net.features.5",
    "conv3": "net.features.6", "relu3": "net.features.7",
    "conv4": "net.features.8", "relu4": "net.features.9",
    "conv5": "net.features.10", "relu5": "net.features.11", "pool5": "net.features.12",
    "drop6": "net.classifier.0", "fc6": "net.classifier.1", "relu6": "net.classifier.2",
    "drop7": "net.classifier.3", "fc7": "net.classifier.4", "relu7": "net.classifier.5",
    "fc8": "net.classifier.6",
}


def no_inplace(model: nn.Module) -> nn.Module:
    """Turn off in-place activations: captured activations and backward hooks need intact tensors."""
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return model


@contextlib.contextmanager
def evaluating(model: nn.Module, grad: bool = False, caller: str = "this function"):
    """Eval mode, and gradients on (grad=True) or off, while code reads `model`; every layer's mode
    is restored after (a fine-tuned model may keep some layers in eval mode while it trains). In
    train mode dropout would make every answer random, and batch norm would normalize by the batch
    and overwrite its running statistics.

    grad=True works under torch.no_grad(), but not under torch.inference_mode(): tensors made there
    can never get gradients, so that raises RuntimeError naming the fix. TypeError if `model` is not
    an nn.Module."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module (e.g. models.mini_alexnet() or models.backbone().model), "
                        f"not {type(model).__name__}")
    if grad and torch.is_inference_mode_enabled():
        raise RuntimeError(f"{caller} needs gradients, but it was called inside torch.inference_mode(), where "
                           f"tensors can never get gradients. Call it outside the inference_mode block "
                           f"(torch.no_grad() is fine: {caller} turns gradients on itself)")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.enable_grad() if grad else torch.no_grad():
            yield model
    finally:
        for module, training in modes:
            module.training = training


def reads_model(grad: bool = False):
    """Decorator: run a function whose first argument is the model inside `evaluating(model, grad)`.
    With grad=True, tensor arguments made in inference mode are copied first (a copy made outside
    inference mode is an ordinary tensor that can get gradients)."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if grad:
                args = tuple(_outside_inference(a) for a in args)
                kwargs = {k: _outside_inference(v) for k, v in kwargs.items()}
            model = kwargs["model"] if "model" in kwargs else (args[0] if args else None)
            with evaluating(model, grad, function.__name__):
                return function(*args, **kwargs)
        return wrapper
    return decorate


def _outside_inference(value):
    if isinstance(value, torch.Tensor) and value.is_inference() and not torch.is_inference_mode_enabled():
        return value.clone()
    return value


def alexnet(pretrained: bool = True) -> PixelModel:
    """torchvision's AlexNet (IMAGENET1K_V1 weights when `pretrained`), taking pixels in [0, 1].

    Loads weights from torch's cache or downloads them; raises RuntimeError if neither works.
    """
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as tv_alexnet
    weights = AlexNet_Weights.IMAGENET1K_V1 if pretrained else None
    net = no_inplace(tv_alexnet(weights=weights))
    return PixelModel(net, IMAGENET_MEAN, IMAGENET_STD, ALEXNET_ALIASES)


def imagenet_classes() -> list[str]:
    from torchvision.models import AlexNet_Weights
    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_weights_cached() -> bool:
    from torchvision.models import AlexNet_Weights
    url = AlexNet_Weights.IMAGENET1K_V1.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]).is_file()


# ---------------------------------------------------------------- backbones

@dataclass
class Backbone:
    """A trained model taking [0, 1] pixels, with what a notebook needs beside it."""
    name: str
    model: PixelModel
    classes: list[str]
    input_size: int
    mean: tuple
    std: tuple
    layers: list[str]
    reason: str = ""
    info: dict = field(default_factory=dict)

    def preprocess(self, image) -> torch.Tensor:
        """A photo (path, PIL image or HxWx3 uint8 array) as a (1, 3, S, S) batch on the model's device."""
        x = _data.load_photo(image, self.input_size)
        return x.to(next(self.model.parameters()).device)

    def normalize(self, x):
        return _data.normalize(x, self.mean, self.std)

    def denormalize(self, x):
        return _data.denormalize(x, self.mean, self.std)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (class name, probability) for each image of a [0, 1] batch."""
        probs = self.model(x).softmax(1)
        top = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[(self.classes[i], p) for p, i in zip(ps.tolist(), idx.tolist())]
                for ps, idx in zip(top.values, top.indices)]


def backbone(name: str | None = None, cfg=None, progress: bool = True) -> Backbone:
    """'imagenet' (torchvision AlexNet), 'cifar10' (the course's MiniAlexNet) or 'auto':
    imagenet when its weights load, else cifar10. Returned in eval mode on the settings' device."""
    cfg = cfg or _settings.load()
    name = name or cfg.backbone
    if name not in {"auto", "imagenet", "cifar10"}:
        raise ValueError(f"unknown backbone {name!r}: use 'auto', 'imagenet' or 'cifar10'")
    if name in {"auto", "imagenet"}:
        why = _imagenet_unavailable(cfg)
        if why is None:
            return _imagenet_backbone(cfg)
        if name == "imagenet":
            raise RuntimeError(f"imagenet backbone unavailable: {why}. Connect to the internet once "
                               f"(weights are cached in {torch.hub.get_dir()}) or use backbone('cifar10').")
        reason = f"cifar10 backbone, because ImageNet AlexNet weights are unavailable ({why})"
    else:
        reason = "cifar10 backbone, as asked"
    model, info = trained_cifar10(cfg=cfg, progress=progress)
    return Backbone("cifar10", model.to(cfg.device).eval(), list(_data.CIFAR10_CLASSES), 32,
                    _data.CIFAR10_MEAN, _data.CIFAR10_STD, list(model.aliases), reason, info)


def _imagenet_unavailable(cfg) -> str | None:
    if imagenet_weights_cached():
        return None
    if cfg.offline:
        return "offline (COURSEKIT_OFFLINE=1) and not in torch's cache"
    if not _data.can_download("download.pytorch.org"):
        return "not in torch's cache and download.pytorch.org cannot be reached"
    return None


def _imagenet_backbone(cfg) -> Backbone:
    model = alexnet(pretrained=True).to(cfg.device).eval()
    return Backbone("imagenet", model, imagenet_classes(), 224, IMAGENET_MEAN, IMAGENET_STD,
                    list(ALEXNET_ALIASES), "imagenet backbone: torchvision AlexNet, IMAGENET1K_V1 weights")


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-able configuration, for cache file names."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


# ---------------------------------------------------------------- the course's trained model cache

def cifar10_recipe(cfg=None) -> dict:
    """How the cifar10 backbone is trained: quick mode trains on a subset for fewer epochs."""
    from .train import native_bf16
    cfg = cfg or _settings.load()
    return {
        "arch": {"width": 0.5, "activation": "relu", "lrn": True, "overlap": True, "dropout": 0.5},
        "per_class": cfg.pick(quick=1000, full=None),
        "epochs": cfg.pick(quick=4, full=12),
        "batch_size": 128, "lr": 0.05, "schedule": "onecycle", "weight_decay": 5e-4,
        "autocast": native_bf16(cfg.device), "seed": cfg.seed, "version": 2,
    }


def cifar10_cache_path(recipe: dict, cfg=None) -> Path:
    """Where the model trained by `recipe` is cached (one file per recipe)."""
    cfg = cfg or _settings.load()
    return cfg.cache_dir / "models" / f"minialexnet-cifar10-{config_key(recipe)}.pt"


def trained_cifar10(recipe: dict | None = None, cfg=None, progress: bool = True) -> tuple[PixelModel, dict]:
    """The MiniAlexNet trained on CIFAR-10 by `recipe`, from the cache or trained now (then cached).

    A file lock makes concurrent callers wait for the one that trains; the weights file is
    written atomically, so nobody ever reads half of it. Training checkpoints every epoch, so an
    interrupted run resumes where it stopped.
    """
    from filelock import FileLock
    cfg = cfg or _settings.load()
    recipe = recipe or cifar10_recipe(cfg)
    path = cifar10_cache_path(recipe, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        state = _data.safe_load(path)
        trained_now = not (isinstance(state, dict) and state.get("recipe") == recipe)
        if trained_now:
            for stale in path.parent.glob(path.name + ".*.tmp"):  # left by a process killed while saving
                stale.unlink(missing_ok=True)
            state = _train_and_save(recipe, path, cfg, progress)
    model = mini_alexnet(**recipe["arch"])
    model.load_state_dict(state["model"])
    return model.eval(), {"recipe": recipe, "path": str(path), "history": state["history"],
                          "test_top1": state["test_top1"], "test_top5": state["test_top5"], "trained_now": trained_now}


def _train_and_save(recipe: dict, path: Path, cfg, progress: bool) -> dict:
    from . import train
    train_set = _data.cifar10("train", cfg).subset(per_class=recipe["per_class"], seed=recipe["seed"])
    test_set = _data.cifar10("test", cfg)
    torch.manual_seed(recipe["seed"])
    model = mini_alexnet(**recipe["arch"])
    history = train.fit(model, train_set, None, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
                        lr=recipe["lr"], schedule=recipe["schedule"], weight_decay=recipe["weight_decay"],
                        autocast=recipe["autocast"], seed=recipe["seed"], progress=progress,
                        checkpoint_dir=path.with_suffix(".checkpoints"), device=cfg.device)
    scores = train.evaluate(model, test_set)
    state = {"recipe": recipe, "model": {k: v.cpu() for k, v in model.state_dict().items()},
             "history": history.rows, "test_top1": scores["top1"], "test_top5": scores["top5"]}
    _data.atomic_save(state, path)
    import shutil
    shutil.rmtree(path.with_suffix(".checkpoints"), ignore_errors=True)
    return state


# ---------------------------------------------------------------- smaller pieces for the lecture

def four_layer_cnn(activation: str = "relu", num_classes: int = 10, width: int = 32) -> nn.Sequential:
    """The kind of net behind AlexNet's Figure 1: three conv layers and one fully connected,
    no normalization, no dropout, PyTorch's default init for both activations (a fair race)."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    if activation not in acts:
        raise ValueError(f"activation must be 'relu' or 'tanh', not {activation!r}")
    act = acts[activation]
    return nn.Sequential(OrderedDict([
        ("normalize", Normalize(_data.CIFAR10_MEAN, _data.CIFAR10_STD)),
        ("conv1", nn.Conv2d(3, width, 5, padding=2)), ("act1", act()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(width, 2 * width, 5, padding=2)), ("act2", act()), ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(2 * width, 2 * width, 3, padding=1)), ("act3", act()), ("pool3", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc4", nn.Linear(2 * width * 4 * 4, num_classes)),
    ]))


def summary(model: nn.Module, input_size: tuple[int, ...]):
    """A table of every leaf layer, one row per call in forward order: name, type, output shape
    (without the batch) and parameter count (pandas). input_size: one input's shape, e.g. (3, 32, 32).
    Runs one forward pass in eval mode (no batch-norm statistics updated); the model's training
    mode is restored after."""
    import pandas as pd
    from . import hooks
    aliases = {v: k for k, v in getattr(model, "aliases", {}).items()}
    leaves = {module: aliases.get(name, name) for name, module in model.named_modules()
              if name and not list(module.children())}
    rows = []

    def record(module, inputs, output):
        rows.append({"layer": leaves[module], "type": type(module).__name__,
                     "output shape": tuple(output.shape[1:]),
                     "parameters": sum(p.numel() for p in module.parameters(recurse=False))})

    was_training = model.training
    try:
        with hooks.hooked([(module, record) for module in leaves]), torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return pd.DataFrame(rows)
