"""Which pixels make a unit fire: gradient, saliency, guided backprop, deconvnet, occlusion.

The first four share one backward pass from a score to the image and differ only in what a ReLU
sends back (hooks.relu_rule):

    gradient    dS/dI, the true derivative (Simonyan et al. 2014)
    saliency    max over colour channels of |dS/dI| (Simonyan et al. 2014)
    deconvnet   ReLU applied to the backward signal, forward mask ignored (Zeiler & Fergus 2014)
    guided      both: only positive signal through units that were on (Springenberg et al. 2015)

The score S is a class's logit (target=class index, default the predicted class), or one unit of
any named layer (layer="conv5", unit=channel; on a conv layer the channel's strongest position,
as Zeiler & Fergus do, or position=(row, col)). Occlusion sensitivity needs no gradients at all:
slide a grey square over the image and watch the class probability. `cascading_randomization` is
Adebayo et al.'s sanity check of the first four: do their maps change when the model does?
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from . import hooks
from .models import reads_model
from .plot import to_image
from .widgets import Choice, Slider, panel_controls, unit_beyond, unit_controls, validate


# ---------------------------------------------------------------- the score to explain

def unit_activation(act: torch.Tensor, unit: int, position="max") -> torch.Tensor:
    """One value per image from a layer output: channel `unit` at its strongest position
    (position='max'), at position=(row, col), or the unit itself for a fully connected layer."""
    if not 0 <= unit < act.shape[1]:
        raise ValueError(f"unit {unit} is out of range: this layer has {act.shape[1]} units (0..{act.shape[1] - 1})")
    channel = act[:, unit]
    if channel.dim() == 1:
        return channel
    if position == "max":
        return channel.flatten(1).max(1).values
    row, col = position
    return channel[:, row, col]


def score(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
          unit: int | None = None, position="max") -> torch.Tensor:
    """The scalar to explain, summed over the batch (each image's gradient is its own)."""
    if layer is not None:
        if unit is None:
            raise ValueError(f"layer={layer!r} needs unit=<channel index> to say which unit to explain")
        return unit_activation(hooks.forward_until(model, x, layer), unit, position).sum()
    logits = model(x)
    if target is None:
        target = logits.argmax(1)
    target = torch.as_tensor(target, device=logits.device).long().expand(len(x))
    if int(target.max()) >= logits.shape[1] or int(target.min()) < 0:
        raise ValueError(f"target class {target.tolist()} is out of range: the model has {logits.shape[1]} classes")
    return logits.gather(1, target[:, None]).sum()


# images per backward pass: each image's score is summed, so each image's gradient is its own and a
# long batch split into chunks gives the same maps, with the memory of BACKPROP_BATCH images (05's
# 1,000 photos at 224 px through AlexNet in one pass peaked at 8.4 GB)
BACKPROP_BATCH = 64


def _backprop(model, x, rule, target, layer, unit, position) -> torch.Tensor:
    if len(x) > BACKPROP_BATCH:
        per_image = target is not None and torch.as_tensor(target).dim() > 0 and len(target) == len(x)
        return torch.cat([_backprop(model, x[i:i + BACKPROP_BATCH], rule,
                                    target[i:i + BACKPROP_BATCH] if per_image else target, layer, unit, position)
                          for i in range(0, len(x), BACKPROP_BATCH)])
    x = x.detach().clone().requires_grad_(True)
    swap = contextlib.nullcontext() if rule == "gradient" else hooks.relu_rule(model, rule)
    with swap, torch.enable_grad():
        (grad,) = torch.autograd.grad(score(model, x, target, layer, unit, position), x)
    return grad


# ---------------------------------------------------------------- the methods

@reads_model(grad=True)
def gradient(model, x, target=None, layer=None, unit=None, position="max") -> torch.Tensor:
    """dS/dI, same shape as x."""
    return _backprop(model, x, "gradient", target, layer, unit, position)


@reads_model(grad=True)
def saliency(model, x, target=None, layer=None, unit=None, position="max") -> torch.Tensor:
    """max over channels of |dS/dI|: one (N, H, W) map per image."""
    return gradient(model, x, target, layer, unit, position).abs().amax(1)


@reads_model(grad=True)
def guided_backprop(model, x, target=None, layer=None, unit=None, position="max") -> torch.Tensor:
    """Backprop where every ReLU passes only positive signal through units that were on."""
    return _backprop(model, x, "guided", target, layer, unit, position)


@reads_model(grad=True)
def deconvnet(model, x, target=None, layer=None, unit=None, position="max") -> torch.Tensor:
    """Zeiler & Fergus: unpool with switches, rectify the signal, apply transposed filters."""
    return _backprop(model, x, "deconvnet", target, layer, unit, position)


ATTRIBUTIONS = {"gradient": gradient, "saliency": saliency, "guided": guided_backprop, "deconvnet": deconvnet}
METHODS = tuple(ATTRIBUTIONS)


def attribute(model, x, method: str, **target) -> torch.Tensor:
    """Any of METHODS by name (same keyword arguments as the functions themselves)."""
    if method not in ATTRIBUTIONS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    return ATTRIBUTIONS[method](model, x, **target)


def share_inside(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N,): the share of each non-negative map's total (maps (N, H, W), e.g. saliency) that lies
    where `masks` (N, H, W) bool is True, such as a pasted object's box (data.pasted_objects).
    Spread evenly, a map puts the mask's area share there. ValueError for mismatched shapes."""
    if maps.shape != masks.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must have the same (N, H, W) shape")
    inside = (maps * masks).flatten(1).sum(1)
    return inside / maps.flatten(1).sum(1).clamp_min(1e-12)


# ---------------------------------------------------------------- sanity check (Adebayo et al. 2018)

def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,): Spearman's rank correlation between each pair of maps a[i], b[i] (any shape (N, ...),
    flattened per map): Pearson's correlation of the values' ranks, 1 when the two maps order their
    pixels alike, about 0 when unrelated. Ties are ranked in order of position (maps of floats
    rarely tie). ValueError for mismatched shapes."""
    if a.shape != b.shape:
        raise ValueError(f"maps {tuple(a.shape)} and {tuple(b.shape)} must have the same shape")
    ra, rb = (m.flatten(1).argsort(1).argsort(1).double() for m in (a, b))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)).float()


@dataclass
class Cascade:
    """What cascading_randomization found, for `layers` randomized top first and `methods`."""
    layers: list
    methods: list
    correlation: torch.Tensor  # (len(layers), len(methods), N): row k after layers[:k + 1] are randomized
    maps: torch.Tensor         # (len(layers) + 1, len(methods), N, H, W): row 0 the original model's

    def mean(self, method: str) -> torch.Tensor:
        """(len(layers),): the mean over images of `method`'s rank correlation after each step."""
        return self.correlation[:, self.methods.index(method)].mean(1)


def cascading_randomization(model: nn.Module, random_model: nn.Module, x: torch.Tensor, target,
                            layers, methods=("gradient", "guided", "deconvnet")) -> Cascade:
    """Adebayo et al. 2018's model-parameter randomization test, cascading from the top.

    Copies `model`, then replaces the weights of `layers` one after another (the top first: e.g.
    fc8, fc7, ..., conv1) by those of the same-named layer of `random_model` (the same architecture,
    freshly initialized, e.g. Backbone.untrained()); after each replacement it recomputes every
    method's map of `target`'s score for the images x (N, 3, H, W) and compares it with the
    original model's map: Spearman's rank correlation of the saliency-style maps, max over colour
    channels of |attribution| (H, W). A method whose maps depend on what the model learned falls
    towards the level of unrelated maps; one that keeps its map while the model is destroyed fails
    the paper's sanity check. `model` itself is left unchanged."""
    layers, methods = list(layers), list(methods)
    changed = copy.deepcopy(model)

    def maps(m):  # (methods, N, H, W); saliency is already max |gradient|
        found = [attribute(m, x, name, target=target).abs() for name in methods]
        return torch.stack([a.amax(1) if a.dim() == 4 else a for a in found]).cpu()

    every = [maps(model)]
    for layer in layers:
        hooks.get_layer(changed, layer).load_state_dict(hooks.get_layer(random_model, layer).state_dict())
        every.append(maps(changed))
    correlation = torch.stack([torch.stack([rank_correlation(o, r) for o, r in zip(every[0], step)])
                               for step in every[1:]])
    return Cascade(layers, methods, correlation, torch.stack(every))


def as_image(attr: torch.Tensor) -> torch.Tensor:
    """A signed (3, H, W) attribution as a picture: zero is grey, the largest |value| saturates."""
    attr = attr.detach().float()
    return (0.5 + 0.5 * attr / attr.abs().max().clamp_min(1e-12)).clamp(0, 1)


# ---------------------------------------------------------------- occlusion sensitivity

@dataclass
class Occlusion:
    """Zeiler & Fergus (2014) occlusion sensitivity, section 4.2 and Figure 7: what `occlusion` returns
    for one image. A grey square of `size` pixels slid `stride` pixels at a time; each field holds one
    value per square position (rows x cols of them). `pixel_map` turns a field into a per-pixel map."""
    prob: torch.Tensor       # (rows, cols): p(label) with the square at each position
    top_class: torch.Tensor  # (rows, cols): the most probable class then
    top_prob: torch.Tensor   # (rows, cols): its probability
    base_prob: float         # p(label) without any occluder
    size: int
    stride: int

    def pixel_map(self, height: int, width: int, values: torch.Tensor | None = None) -> torch.Tensor:
        """(height, width): per pixel, the mean of `values` (default prob) over the occluder positions
        covering it. ValueError when stride > size (windows with gaps leave pixels no window covers)
        or when height x width is not the occluded image's size."""
        values = self.prob if values is None else values
        if self.stride > self.size:
            raise ValueError(f"stride {self.stride} > occluder size {self.size} leaves gaps no square covered, "
                             f"so those pixels have no value: use stride <= size for a pixel map")
        tops, lefts = window_starts(height, self.size, self.stride), window_starts(width, self.size, self.stride)
        if (len(tops), len(lefts)) != tuple(values.shape[:2]):
            raise ValueError(f"{tuple(values.shape[:2])} occluder positions do not fit a {height}x{width} image: "
                             f"give pixel_map the size of the occluded image")
        total = torch.zeros(height, width)
        count = torch.zeros(height, width)
        for r, top in enumerate(tops):
            for c, left in enumerate(lefts):
                total[top:top + self.size, left:left + self.size] += float(values[r, c])
                count[top:top + self.size, left:left + self.size] += 1
        return total / count


def window_starts(side: int, size: int, stride: int) -> list[int]:
    """Where windows of `size` start along a side, `stride` apart, the last one aligned to the edge
    when the windows do not tile the side (so every pixel is covered whenever stride <= size)."""
    starts = list(range(0, side - size + 1, stride))
    if starts[-1] != side - size:
        starts.append(side - size)
    return starts


def occluded_batch(x: torch.Tensor, corners: list[tuple[int, int]], size: int, fill: float) -> torch.Tensor:
    """Copies of one image (1, 3, H, W), each with a fill-valued square at one (top, left) corner."""
    corners_t = torch.tensor(corners, device=x.device)
    rows = torch.arange(x.shape[-2], device=x.device)
    cols = torch.arange(x.shape[-1], device=x.device)
    inside_r = (rows >= corners_t[:, :1]) & (rows < corners_t[:, :1] + size)   # (B, H)
    inside_c = (cols >= corners_t[:, 1:]) & (cols < corners_t[:, 1:] + size)   # (B, W)
    mask = (inside_r[:, :, None] & inside_c[:, None, :])[:, None]              # (B, 1, H, W)
    return torch.where(mask, torch.as_tensor(fill, dtype=x.dtype, device=x.device), x)


@reads_model()
def occlusion(model: nn.Module, x: torch.Tensor, label: int, size: int, stride: int,
              fill: float = 0.5, batch_size: int = 64) -> Occlusion:
    """Slide a size x size square of grey (fill, in [0, 1] pixels) over the image x (1, 3, H, W) with
    the given stride, the last row and column of positions aligned to the image's edge (window_starts);
    record p(label) and the most probable class at every position, in batches."""
    if x.dim() != 4 or len(x) != 1:
        raise ValueError(f"occlusion takes one image (1, 3, H, W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if not 1 <= size <= min(height, width):
        raise ValueError(f"occluder size {size} must be between 1 and the image side {min(height, width)}")
    if not 1 <= stride <= min(height, width):
        raise ValueError(f"stride {stride} must be between 1 and the image side {min(height, width)}")
    tops, lefts = window_starts(height, size, stride), window_starts(width, size, stride)
    corners = [(t, l) for t in tops for l in lefts]
    probs = torch.cat([model(occluded_batch(x, corners[i:i + batch_size], size, fill)).softmax(1).cpu()
                       for i in range(0, len(corners), batch_size)]).view(len(tops), len(lefts), -1)
    base = model(x).softmax(1)[0, label].item()
    top = probs.max(-1)
    return Occlusion(probs[..., label], top.indices, top.values, base, size, stride)


# ---------------------------------------------------------------- Try it panels

def attribution_controls(model: nn.Module) -> list:
    """The method, a layer (the model's conv layers, the deepest shown first) and a unit slider
    reaching the widest layer's last channel (widgets.unit_controls)."""
    return [Choice("method", list(METHODS), "guided"), *unit_controls(model, "unit", pick=-1)]


@panel_controls(attribution_controls)
def attribution_panel(model: nn.Module, image: torch.Tensor, method: str, layer: str, unit: int):
    """The image beside what `method` says makes `unit` of `layer` fire (its strongest position);
    for a unit `layer` lacks, a message saying how many channels it has."""
    validate(attribution_controls(model), method=method, layer=layer, unit=unit)
    message = unit_beyond(model, layer, unit)
    if message is not None:
        return message
    attr = attribute(model, image, method, layer=layer, unit=unit)[0]
    shown = attr.cpu().numpy() if method == "saliency" else to_image(as_image(attr))
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(to_image(image[0]))
    axes[1].imshow(shown, cmap="inferno" if method == "saliency" else None)
    axes[1].set_title(f"{method}: {layer} unit {unit}", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


OCCLUSION_PANEL = [Slider("size", 10, 50, 5, 25, "occluder size (% of side)"),
                   Slider("stride", 5, 25, 5, 10, "stride (% of side)")]


@panel_controls(OCCLUSION_PANEL)
def occlusion_panel(model: nn.Module, image: torch.Tensor, label: int, classes, size: int, stride: int):
    """Occlusion maps of p(label) and of the most probable class, the occluder given in % of the side."""
    validate(OCCLUSION_PANEL, size=size, stride=stride)
    side = image.shape[-1]
    result = occlusion(model, image, label, max(1, round(side * size / 100)), max(1, round(side * stride / 100)))
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    axes[0].imshow(to_image(image[0]))
    axes[0].set_title(f"{classes[label]}: p={result.base_prob:.2f}", fontsize=10)
    im = axes[1].imshow(result.prob.numpy(), cmap="inferno", vmin=0, vmax=max(result.base_prob, 1e-3))
    axes[1].set_title(f"p({classes[label]}) with the square there", fontsize=10)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[2].imshow(result.top_class.numpy(), cmap="tab10" if len(classes) <= 10 else "tab20",
                   vmin=0, vmax=len(classes) - 1 if len(classes) <= 10 else None)
    names = sorted({classes[i] for i in result.top_class.flatten().tolist()})
    axes[2].set_title("most probable: " + ", ".join(names[:3]) + ("..." if len(names) > 3 else ""), fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
