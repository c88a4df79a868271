"""The networks and their builders, as in torchvision.models: MiniAlexNet (AlexNet's
recipe at 32x32), torchvision's AlexNet, AlexNet's LRN, a PixelModel wrapper that takes pixels in
[0, 1], the small four-layer CNN of AlexNet's Figure 1, and a layer summary table.

Both AlexNets answer to the same layer names (conv1 ... conv5, fc6 ... fc8, and relu/pool names
beside them) and to torch's own dotted names. Trained backbones and their caches live in backbones.py.
"""
from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as _data

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


class _LRNFunction(torch.autograd.Function):
    """LRN with its gradient written out: autograd's version of the same formula keeps five
    intermediate tensors and runs about twice the element-wise passes (1.2x slower training steps).

    With d = k + alpha * sum_window(a^2) and b = a * d^-beta:
    dL/da = g * d^-beta - 2 * alpha * beta * a * sum_window(g * b / d)   (the window is symmetric)
    """

    @staticmethod
    def forward(ctx, x, band, alpha, beta, k):
        d = F.conv2d(x * x, band).mul_(alpha).add_(k)
        scale = d.log().mul_(-beta).exp_()  # d ** -beta; torch's pow is 2-3x slower on CPUs
        ctx.save_for_backward(x, band, d, scale)
        ctx.coef = 2 * alpha * beta
        return x * scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, band, d, scale = ctx.saved_tensors
        grad_scaled = grad * scale
        through_window = F.conv2d(grad_scaled.mul(x).div_(d), band.to(grad.dtype))
        return grad_scaled - ctx.coef * x * through_window, None, None, None, None


class LocalResponseNorm(nn.Module):
    """AlexNet's LRN, exactly as in the paper (section 3.3):
    b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2) ** beta, over neighbouring channels.

    torch.nn.LocalResponseNorm divides alpha by n; this one does not. The channel-window sum is a
    1x1 convolution with a fixed band matrix, which is several times faster on CPUs than avg_pool3d,
    and the gradient is written out (_LRNFunction). Takes and returns (N, C, H, W); differentiable
    once (no double backward).

    groups: the channels split into this many equal consecutive blocks, and a window never reaches
    across a block's edge: AlexNet normalized on each GPU separately (section 3.2), so one GPU's
    kernel maps never scale the other's. C must then be a multiple of groups (ValueError otherwise).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, groups: int = 1):
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups

    def extra_repr(self) -> str:
        grouped = f", groups={self.groups}" if self.groups != 1 else ""
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}{grouped}"

    def forward(self, x):
        channels = x.shape[1]
        if channels % self.groups:
            raise ValueError(f"LocalResponseNorm with groups={self.groups} needs a channel count divisible by "
                             f"{self.groups}, got {channels} channels")
        idx = torch.arange(channels, device=x.device)
        block = idx // (channels // self.groups)
        near = ((idx[:, None] - idx[None, :]).abs() <= self.size // 2) & (block[:, None] == block[None, :])
        return _LRNFunction.apply(x, near.to(x.dtype)[:, :, None, None], self.alpha, self.beta, self.k)


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
                overlap: bool = True, dropout: float = 0.5, width: float = 1.0, groups: int = 1,
                conv1_std: float | None = None, conv1: tuple[int, int] = (5, 1), conv2_stride: int = 1,
                upsample: int = 1) -> nn.Sequential:
    """AlexNet's recipe at 32x32: 5 conv + 3 fully connected layers, each ingredient switchable.

    activation: 'relu' (the paper) or 'tanh' (what it replaced)
    lrn: local response normalization after conv1 and conv2 (k=2, n=5, alpha=1e-4, beta=0.75)
    overlap: 3x3 pooling at stride 2 (overlapping, the paper) or 2x2 at stride 2
    dropout: before fc6 and fc7 (0.5 in the paper; 0 turns it off)
    width: scales every layer's channels (1.0: 64-192-384-256-256 conv, 1024 fc)
    groups: 1, or 2 for the paper's two-GPU connectivity (section 3.2, Figure 2): every conv layer's
        channels in two halves, one per GPU; conv2, conv4 and conv5 take input only from the half of
        the layer below on their own GPU (grouped convolutions), conv3 and the fully connected layers
        from both, and LRN normalizes within a half. conv1 sees the whole image in both halves.
        Channel counts are rounded to a multiple of groups.
    conv1_std: None (He initialization, like every layer), or conv1's weights drawn from N(0, conv1_std)
        as in the paper (0.01, section 5): a short run then leaves conv1's filters showing what training
        put there, not the random start (a He-initialized 5x5x3 filter is as large as what two epochs add)
    conv1: the first layer's (kernel size, stride), padded by kernel // 2; odd kernel sizes
    conv2_stride: conv2's stride (Zeiler & Fergus 2014 gave conv2 stride 2 when they halved conv1's)
    upsample: the 32 px input is enlarged this many times (bilinear, a layer named 'upsample' in front
        of conv1) so a large first-layer stride has pixels to skip (Zeiler & Fergus section 4.1:
        AlexNet's 11x11 stride 4 against their 7x7 stride 2, e.g. conv1=(11, 4) vs (7, 2), upsample=2).
        fc6 takes whatever side the layers leave; ValueError if they leave none.
    """
    if activation not in {"relu", "tanh"}:
        raise ValueError(f"activation must be 'relu' or 'tanh', not {activation!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    if not width > 0 or not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"width must be > 0 (1.0 is the full net) and num_classes a whole number >= 1, "
                         f"not width={width!r}, num_classes={num_classes!r}")
    if groups not in {1, 2}:
        raise ValueError(f"groups must be 1 (one tower) or 2 (AlexNet's two GPUs), not {groups!r}")
    # each layer's channels, a multiple of groups (at least 4 in all), so the halves are equal
    c = [groups * max(-(-4 // groups), round(k * width / groups)) for k in (64, 192, 384, 256, 256)]
    hidden = max(8, round(1024 * width))
    act = (lambda: nn.ReLU()) if activation == "relu" else (lambda: nn.Tanh())
    pool = (lambda: nn.MaxPool2d(3, 2)) if overlap else (lambda: nn.MaxPool2d(2, 2))
    norm = (lambda: LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, groups=groups)) if lrn else (lambda: nn.Identity())
    (kernel, stride), pool_size = conv1, (3 if overlap else 2)
    if kernel % 2 == 0 or kernel < 1 or stride < 1 or conv2_stride < 1 or upsample < 1:
        raise ValueError(f"conv1 must be (odd kernel size, stride >= 1) and conv2_stride, upsample >= 1, "
                         f"not conv1={conv1!r}, conv2_stride={conv2_stride!r}, upsample={upsample!r}")
    side = _side_after(32 * upsample, [(kernel, stride, kernel // 2), (pool_size, 2, 0), (5, conv2_stride, 2),
                                       (pool_size, 2, 0), (pool_size, 2, 0)])  # 32 -> 15 -> 7 -> 3 by default
    if side < 1:
        raise ValueError(f"conv1={conv1}, conv2_stride={conv2_stride} leave nothing of a {32 * upsample} px "
                         f"input before fc6; use a smaller stride or a larger upsample")
    front = [("upsample", nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=False))] if upsample > 1 else []
    layers = OrderedDict(front + [
        ("conv1", nn.Conv2d(3, c[0], kernel, stride, padding=kernel // 2)), ("relu1", act()), ("lrn1", norm()),
        ("pool1", pool()),
        ("conv2", nn.Conv2d(c[0], c[1], 5, conv2_stride, padding=2, groups=groups)), ("relu2", act()),
        ("lrn2", norm()), ("pool2", pool()),
        ("conv3", nn.Conv2d(c[1], c[2], 3, padding=1)), ("relu3", act()),  # both GPUs' maps
        ("conv4", nn.Conv2d(c[2], c[3], 3, padding=1, groups=groups)), ("relu4", act()),
        ("conv5", nn.Conv2d(c[3], c[4], 3, padding=1, groups=groups)), ("relu5", act()), ("pool5", pool()),
        ("flatten", nn.Flatten()),
        ("drop6", nn.Dropout(dropout)), ("fc6", nn.Linear(c[4] * side * side, hidden)), ("relu6", act()),
        ("drop7", nn.Dropout(dropout)), ("fc7", nn.Linear(hidden, hidden)), ("relu7", act()),
        ("fc8", nn.Linear(hidden, num_classes)),
    ])
    net = nn.Sequential(layers)
    init_weights(net, activation)
    if conv1_std is not None:
        nn.init.normal_(net.conv1.weight, std=conv1_std)
    return net


def _side_after(side: int, layers: list[tuple[int, int, int]]) -> int:
    """The side of a square map after each (kernel, stride, padding) in turn (floor, as torch does)."""
    for kernel, stride, padding in layers:
        side = (side + 2 * padding - kernel) // stride + 1
    return side


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

# AlexNet's eight learned layers in forward order (L = 8 in Yosinski et al.): the one layer list,
# which both backbones answer to. Every other list of AlexNet layers is derived from these two.
LAYERS = tuple(name for name in ALEXNET_ALIASES if name.startswith(("conv", "fc")))
CONV_LAYERS = tuple(name for name in LAYERS if name.startswith("conv"))


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
        raise TypeError(f"model must be a torch nn.Module (e.g. models.mini_alexnet() or backbones.backbone().model), "
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


# ResNet-18's stages under AlexNet's names at the same depth, so a layer named on the imagenet
# backbone (DeepDream's conv3) names a layer of the second imagenet network too
RESNET18_ALIASES = {"conv1": "net.conv1", "conv2": "net.layer1", "conv3": "net.layer2", "conv4": "net.layer3",
                    "conv5": "net.layer4", "fc8": "net.fc"}


def resnet18(pretrained: bool = True) -> PixelModel:
    """torchvision's ResNet-18 (He et al. 2016; IMAGENET1K_V1 weights when `pretrained`), taking
    pixels in [0, 1], its stages also named conv1 ... conv5 and fc8 (RESNET18_ALIASES).

    Loads weights from torch's cache or downloads them; raises RuntimeError if neither works.
    """
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as tv_resnet18
    net = tv_resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if pretrained else None)
    return PixelModel(net, IMAGENET_MEAN, IMAGENET_STD, RESNET18_ALIASES)


# ---------------------------------------------------------------- smaller pieces for the lecture

def four_layer_cnn(activation: str = "relu", num_classes: int = 10, width: int = 32,
                   pixels: str = "standardized") -> nn.Sequential:
    """The kind of net behind AlexNet's Figure 1: three conv layers and one fully connected,
    no normalization, no dropout. Built with PyTorch's default init; Figure 1's race
    (experiments.race_runner) then re-initializes it with `paper_init` for both activations, the
    paper's conditions, under which tanh starts saturated: not a neutral init for tanh.

    Takes (N, 3, 32, 32) pixels in [0, 1]. pixels: what the first layer sees. "standardized":
    (x - mean) / std per channel; "centred-255": the paper's raw RGB values (0-255) with the
    training set's mean subtracted and no division (section 2), so conv1's inputs have a standard
    deviation of about 60, not 1. Raises ValueError for another activation or pixels."""
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    if activation not in acts:
        raise ValueError(f"activation must be 'relu' or 'tanh', not {activation!r}")
    scales = {"standardized": _data.CIFAR10_STD, "centred-255": (1 / 255,) * 3}
    if pixels not in scales:
        raise ValueError(f"pixels must be one of {list(scales)}, not {pixels!r}")
    act = acts[activation]
    return nn.Sequential(OrderedDict([
        ("normalize", Normalize(_data.CIFAR10_MEAN, scales[pixels])),
        ("conv1", nn.Conv2d(3, width, 5, padding=2)), ("act1", act()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(width, 2 * width, 5, padding=2)), ("act2", act()), ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(2 * width, 2 * width, 3, padding=1)), ("act3", act()), ("pool3", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc4", nn.Linear(2 * width * 4 * 4, num_classes)),
    ]))


def paper_init(net: nn.Module, std: float = 0.01) -> None:
    """Krizhevsky et al. 2012's initialization, simplified: weights N(0, std^2) as in section 5
    (std 0.01: a standard deviation, not a variance), biases 0 (the paper sets the biases of conv2,
    conv4, conv5 and the hidden fully connected layers to 1, and the rest to 0), for both
    activations. Every nn.Conv2d and nn.Linear of `net` is re-initialized in place; other modules are
    left alone; returns None. With centred 0-255 pixels conv1's pre-activations then have a standard
    deviation of about 5, so tanh units start saturated (|tanh| near 1) and ReLUs do not."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)


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
