"""Receptive fields: which input pixels each layer's units can see, computed from the model itself.

One forward pass with hooks on every leaf module records the layers in the order they run; each
convolution or pooling then updates three numbers (Araujo et al. 2019, "Computing receptive fields"):

    size   r_l = r_{l-1} + (k_l - 1) * d_l * j_{l-1}      how many pixels one unit sees
    stride j_l = j_{l-1} * s_l                             pixels between neighbouring units
    start  c_l = c_{l-1} + ((k_l - 1) * d_l / 2 - p_l) * j_{l-1}   centre of unit (0, 0), in pixels

Element-wise layers (ReLU, normalization, dropout) keep all three. Fully connected layers see the
whole image. Works for any chain of layers (any nn.Module), not only AlexNet-shaped ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import hooks
from .widgets import panel_controls, unit_beyond, unit_controls, validate


@dataclass(frozen=True)
class ReceptiveField:
    """Where one layer's units look in the input image (Araujo et al. 2019), in input pixels: what
    `receptive_fields` returns per layer. `center` and `box` place the unit at (row, col)."""
    size: float     # pixels one unit sees along each side (float when the image is not square-divisible)
    stride: float   # pixels between neighbouring units
    start: float    # centre of unit (0, 0) in input pixels (negative when padding reaches outside)
    out_size: int   # the layer's output height (1 for fully connected layers)

    def center(self, row: int, col: int) -> tuple[float, float]:
        """Centre, in input pixels, of the unit at (row, col) of this layer's output."""
        return self.start + row * self.stride, self.start + col * self.stride

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of what the unit at (row, col) sees; may reach outside the image."""
        cy, cx = self.center(row, col)
        half = (self.size - 1) / 2
        return round(cy - half), round(cx - half), round(cy + half) + 1, round(cx + half) + 1


def _geometry(module: nn.Module):
    """(kernel, stride, padding, dilation) of a conv or pooling layer, else None."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        pick = lambda v: v[0] if isinstance(v, tuple) else v
        dilation = pick(getattr(module, "dilation", 1))
        return pick(module.kernel_size), pick(module.stride), pick(module.padding), dilation
    return None


def _record_layers(model: nn.Module, input_size: int, device,
                   until=None) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """(name, module, input shape, output shape) of every leaf module, in the order they run; with
    `until` (layer names), only up to the last of them, so inputs the later layers refuse still work."""
    names = {module: name for name, module in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children())]
    order = []

    def hook(module, inputs, output):
        order.append((names[module], module, tuple(inputs[0].shape), tuple(output.shape)))

    x = torch.zeros(1, 3, input_size, input_size, device=device)
    with hooks.hooked([(module, hook) for module in leaves]), torch.no_grad():
        if until is None:
            model(x)
        else:  # registered after the recorder: the last layer asked for is recorded before the stop
            hooks.run(model, x, until, stop_early=True)
    return order


def _step(rf: ReceptiveField, module, in_shape, out_shape, image: int, name: str) -> ReceptiveField:
    geometry = _geometry(module)
    if len(out_shape) != 4:  # flatten / linear: every unit sees the whole image
        return ReceptiveField(float(image), float(image), (image - 1) / 2, 1)
    if geometry is None and isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        stride = in_shape[-1] // out_shape[-1]
        geometry = (in_shape[-1] - (out_shape[-1] - 1) * stride, stride, 0, 1)
    if geometry is None:
        if len(in_shape) == 4 and in_shape[-2:] != out_shape[-2:]:
            raise ValueError(f"layer {name!r} ({type(module).__name__}) changes the spatial size "
                             f"{in_shape[-2:]} -> {out_shape[-2:]} but is not a conv or pooling layer; "
                             f"receptive fields cannot be computed through it")
        return ReceptiveField(rf.size, rf.stride, rf.start, out_shape[-1])
    k, s, p, d = geometry
    return ReceptiveField(rf.size + (k - 1) * d * rf.stride, rf.stride * s,
                          rf.start + ((k - 1) * d / 2 - p) * rf.stride, out_shape[-1])


def receptive_fields(model: nn.Module, input_size: int, until=None) -> dict[str, ReceptiveField]:
    """Receptive field of every layer, keyed by alias (conv1 ...) where the model has aliases,
    else by dotted module name, in forward order; with `until` (a list of layer names) only the
    layers up to the last of them run, so the conv layers can be measured at an input size the
    fully connected layers do not take."""
    device = next(model.parameters()).device
    aliases = {target: alias for alias, target in getattr(model, "aliases", {}).items()}
    rf = ReceptiveField(1.0, 1.0, 0.0, input_size)
    fields = {}
    for name, module, in_shape, out_shape in _record_layers(model, input_size, device, until):
        rf = _step(rf, module, in_shape, out_shape, input_size, name)
        if not aliases or name in aliases:
            fields[aliases.get(name, name)] = rf
    return fields


def table(model: nn.Module, input_size: int):
    """The receptive fields as a pandas DataFrame (one row per layer)."""
    import pandas as pd
    rows = [{"layer": n, "size": rf.size, "stride": rf.stride, "start": rf.start, "output": rf.out_size}
            for n, rf in receptive_fields(model, input_size).items()]
    return pd.DataFrame(rows).set_index("layer")


def crop(image: torch.Tensor, box: tuple[int, int, int, int], fill: float = 0.5) -> torch.Tensor:
    """The (3, h, w) patch of `image` inside box=(top, left, bottom, right), grey where it leaves the image."""
    top, left, bottom, right = box
    h, w = image.shape[-2:]
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    padded = F.pad(image, pad, value=fill)
    top, left = top + pad[2], left + pad[0]
    return padded[..., top:top + bottom - box[0], left:left + right - box[1]]


# ---------------------------------------------------------------- Try it: what one unit sees

def hierarchy_controls(model: nn.Module) -> list:
    """A layer (the model's conv layers) and a channel slider reaching the widest layer's last
    channel (widgets.unit_controls)."""
    return unit_controls(model, "channel")


@panel_controls(hierarchy_controls)
def hierarchy_panel(model: nn.Module, image: torch.Tensor, layer: str, channel: int):
    """One channel's activation map for `image` (1, 3, S, S) beside the image, with the receptive
    field of the most active unit drawn as a box: deeper layers see larger pieces of the image.
    For a channel `layer` lacks, a message saying how many channels it has."""
    validate(hierarchy_controls(model), layer=layer, channel=channel)
    message = unit_beyond(model, layer, channel, "channel")
    if message is not None:
        return message
    act = hooks.activations(model, image, layer)[layer][0]
    rf = receptive_fields(model, image.shape[-1])[layer]
    amap = act[channel]
    row, col = divmod(int(amap.argmax()), amap.shape[-1])
    top, left, bottom, right = rf.box(row, col)
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.4, 3.2))
    a.imshow(image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    a.add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, color="red", lw=2))
    a.set_title(f"{layer} receptive field {rf.size:g}px", fontsize=10)
    b.imshow(amap.cpu().numpy(), cmap="viridis")
    b.plot(col, row, "r+", ms=12)
    b.set_title(f"{layer} channel {channel}: max {float(amap.max()):.2f}", fontsize=10)
    for ax in (a, b):
        ax.axis("off")
    fig.tight_layout()
    return fig


def hierarchy_figure(model: nn.Module, image: torch.Tensor, layers: list[str], n: int = 8, size: float = 0.9):
    """One row per layer: its n most active channels for `image` (1, 3, S, S), labelled with the
    layer's receptive field, so maps get coarser as the pieces each unit sees get larger."""
    acts = hooks.activations(model, image, layers)
    fields = receptive_fields(model, image.shape[-1])
    fig, axes = plt.subplots(len(layers), n + 1, figsize=(size * (n + 1), size * len(layers)), squeeze=False)
    for r, layer in enumerate(layers):
        act = acts[layer][0].float().cpu()
        strongest = act.flatten(1).max(1).values.argsort(descending=True)[:n]
        axes[r, 0].imshow(image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        axes[r, 0].set_title(f"{layer}: {fields[layer].size:g}px", fontsize=10)
        for c, channel in enumerate(strongest.tolist()):
            axes[r, c + 1].imshow(act[channel].numpy(), cmap="viridis")
            axes[r, c + 1].set_title(f"ch {channel}", fontsize=10)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
