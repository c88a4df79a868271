"""Top-9 patches (Zeiler & Fergus 2014, Figure 2): the image pieces that excite a unit most.

One pass over a data set records, for every channel of every chosen layer, its k strongest
activations (one per image, at the channel's strongest position), which image and where. The patch
shown is the unit's receptive field there, cut from the image (grey where it leaves the image).
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from . import data as _data
from . import hooks, receptive
from .plot import rescale, to_image
from . import widgets as _widgets


@dataclass
class TopActivations:
    """Per layer: values, image indices and (row, col) positions, each of shape (channels, k)."""
    values: dict[str, torch.Tensor]
    images: dict[str, torch.Tensor]
    positions: dict[str, torch.Tensor]  # (channels, k, 2)
    fields: dict[str, receptive.ReceptiveField]

    def patches(self, images: torch.Tensor, layer: str, unit: int) -> torch.Tensor:
        """The k receptive-field crops (k, 3, s, s) that excite `unit` of `layer` most, strongest first."""
        if layer not in self.values:
            raise KeyError(f"layer {layer!r} was not mined; mined layers: {list(self.values)}")
        channels = self.values[layer].shape[0]
        if not 0 <= unit < channels:
            raise ValueError(f"unit {unit} is out of range: {layer} has {channels} channels (0..{channels - 1})")
        rf = self.fields[layer]
        crops = []
        for index, (row, col) in zip(self.images[layer][unit].tolist(), self.positions[layer][unit].tolist()):
            image = _data.to_float(images[index].cpu())
            crops.append(receptive.crop(image, rf.box(row, col)))
        return torch.stack(crops)

    def projections(self, model: nn.Module, images: torch.Tensor, layer: str, unit: int,
                    method: str = "deconvnet") -> torch.Tensor:
        """Beside each of `patches`: the unit's activation at that image and position projected
        back to the pixels (Zeiler & Fergus's deconvnet, or another of attribution.METHODS), as a
        picture (attribution.as_image: zero is grey), cropped to the same receptive field:
        (k, 3, s, s), strongest first. `images` are the ones mined, at the size mined."""
        from . import attribution
        self.patches(images, layer, unit)  # the same errors for a layer not mined or a bad unit
        device = next(model.parameters()).device
        rf = self.fields[layer]
        crops = []
        for index, (row, col) in zip(self.images[layer][unit].tolist(), self.positions[layer][unit].tolist()):
            x = _data.to_float(images[[index]].to(device))
            signal = attribution.attribute(model, x, method, layer=layer, unit=unit, position=(row, col))[0]
            # cropped first, so the picture's contrast is the patch's own (zero signal outside the image),
            # and the top 1% of |signal| clipped, so a few extreme pixels do not leave the rest grey
            crop = receptive.crop(signal.cpu(), rf.box(row, col), fill=0.0)
            limit = crop.abs().flatten().quantile(0.99)
            crops.append(attribution.as_image(crop.clamp(-limit, limit)))
        return torch.stack(crops)


def strongest_per_channel(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel: the maximum activation and its (row, col) position.

    act: (N, C, H, W) conv maps or (N, C) fc outputs. Returns values (N, C) and positions
    (N, C, 2) as long (row, col); fc outputs sit at (0, 0)."""
    if act.dim() == 2:
        return act, torch.zeros(*act.shape, 2, dtype=torch.long, device=act.device)
    values, flat = act.flatten(2).max(2)
    return values, torch.stack([flat // act.shape[-1], flat % act.shape[-1]], -1)


@torch.no_grad()
def mine(model: nn.Module, images: torch.Tensor, layers: list[str], k: int = 9,
         batch_size: int = 250) -> TopActivations:
    """One pass over `images` (N, 3, H, W), uint8 or [0, 1] floats: each channel's k best images.
    The pass stops after the mined layers, so conv layers can be mined on images larger than the
    network's input (the fully connected layers would refuse them): later layers' receptive
    fields then cover parts of the image, not all of it."""
    if len(images) < k:
        raise ValueError(f"need at least k={k} images, got {len(images)}")
    device = next(model.parameters()).device
    best = {}
    for start in range(0, len(images), batch_size):
        x = _data.to_float(images[start:start + batch_size].to(device))
        acts = hooks.run(model, x, layers, stop_early=True)[1]  # any size the mined layers take
        index = torch.arange(start, start + len(x), device=device)
        for layer in layers:
            values, pos = strongest_per_channel(acts[layer].float())                   # (B, C), (B, C, 2)
            candidates = (values.T, index.expand_as(values.T), pos.transpose(0, 1))
            if layer in best:
                candidates = tuple(torch.cat([old, new], 1) for old, new in zip(best[layer], candidates))
            keep = candidates[0].topk(min(k, candidates[0].shape[1]), dim=1).indices
            best[layer] = (candidates[0].gather(1, keep), candidates[1].gather(1, keep),
                           candidates[2].gather(1, keep[..., None].expand(-1, -1, 2)))
    fields = receptive.receptive_fields(model, images.shape[-1], until=layers)
    return TopActivations({n: b[0].cpu() for n, b in best.items()}, {n: b[1].cpu() for n, b in best.items()},
                          {n: b[2].cpu() for n, b in best.items()}, {n: fields[n] for n in layers})


def patch_grid(top: TopActivations, images: torch.Tensor, layer: str, units, size: float = 0.7):
    """One row per unit: its 9 (k) strongest patches, strongest on the left."""
    units = list(units)
    k = top.values[layer].shape[1]
    fig, axes = plt.subplots(len(units), k, figsize=(size * k, size * len(units) + 0.4), squeeze=False)
    for r, unit in enumerate(units):
        for c, patch in enumerate(top.patches(images, layer, unit)):
            axes[r, c].imshow(to_image(patch), interpolation="nearest")
        axes[r, 0].set_ylabel(f"unit {unit}", fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([]); ax.set_yticks([])
    rf = top.fields[layer]
    fig.suptitle(f"{layer}: top-{k} patches ({rf.size:g}px receptive field)", fontsize=10)
    fig.tight_layout()
    return fig


def figure2(top: TopActivations, model: nn.Module, images: torch.Tensor, layer: str, units,
            method: str = "deconvnet", size: float = 0.7):
    """Zeiler & Fergus Figure 2 for `units` of `layer`: per unit (a block of rows), its top-9
    activations projected back to the pixels (left, 3x3) beside the patches that produced them
    (right, 3x3)."""
    units = list(units)
    k = top.values[layer].shape[1]
    side = int(-(-k ** 0.5 // 1))                                    # 3 for the top-9
    fig, axes = plt.subplots(side * len(units), 2 * side, figsize=(size * 2 * side, (size + 0.1) * side * len(units) + 0.5),
                             squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.1})
    for u, unit in enumerate(units):
        pairs = zip(top.projections(model, images, layer, unit, method), top.patches(images, layer, unit))
        for i, (projection, patch) in enumerate(pairs):
            row, col = side * u + i // side, i % side
            axes[row, col].imshow(to_image(projection), interpolation="nearest")
            axes[row, side + col].imshow(to_image(patch), interpolation="nearest")
        axes[side * u, 0].set_title(f"unit {unit}: {method}", fontsize=10, loc="left")
        axes[side * u, side].set_title("its patches", fontsize=10, loc="left")
    for ax in axes.flat:
        ax.set_xticks([]); ax.set_yticks([])
    rf = top.fields[layer]
    fig.suptitle(f"{layer}: top-{k} per unit ({rf.size:g}px receptive field)", fontsize=10)
    return fig


def filter_image(weight: torch.Tensor) -> torch.Tensor:
    """A conv filter (in, k, k) as a picture: RGB for the first layer, else one row per input channel."""
    if weight.shape[0] == 3:
        return rescale(weight)
    rows = weight.flatten(1)                                           # (in, k*k)
    return rescale(rows)[None].expand(3, -1, -1)


# ---------------------------------------------------------------- Try it: a unit's filter and top-9

def unit_controls(model: nn.Module) -> list:
    """A layer (the model's conv layers) and a unit slider reaching the widest layer's last
    channel (widgets.unit_controls)."""
    return _widgets.unit_controls(model, "unit")


@_widgets.panel_controls(unit_controls)
def unit_panel(model: nn.Module, top: TopActivations, images: torch.Tensor, layer: str, unit: int):
    """A unit's filter weights beside the 9 patches that excite it most; for a unit `layer`
    lacks, a message saying how many channels it has."""
    _widgets.validate(unit_controls(model), layer=layer, unit=unit)
    message = _widgets.unit_beyond(model, layer, unit)
    if message is not None:
        return message
    weight = hooks.get_layer(model, layer).weight.detach().float().cpu()
    patches = top.patches(images, layer, unit)
    rows = max(1, -(-len(patches) // 3))
    fig = plt.figure(figsize=(6.5, 2.2 + 0.4 * rows))
    grid = fig.add_gridspec(rows, 4, width_ratios=[2.5, 1, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(to_image(filter_image(weight[unit])), interpolation="nearest", aspect="auto")
    ax.set_title(f"{layer} filter {unit}" + ("" if weight.shape[1] == 3 else "\n(rows: input channels)"), fontsize=10)
    ax.axis("off")
    for i, patch in enumerate(patches):
        a = fig.add_subplot(grid[i // 3, 1 + i % 3])
        a.imshow(to_image(patch), interpolation="nearest")
        a.axis("off")
    fig.suptitle(f"top-{len(patches)} patches, {top.fields[layer].size:g}px each", fontsize=10)
    return fig
