"""Find layers by name and capture what flows through them; hooks are always removed.

Names are a model's aliases (conv1 ... fc8 on both backbones) or torch's own dotted names
(`dict(model.named_modules())`), so nothing here assumes `model.features`.
"""
from __future__ import annotations

import contextlib
from typing import Iterable

import torch
import torch.nn as nn


class LayerNotFoundError(KeyError):
    """An unknown layer name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def layer_names(model: nn.Module) -> list[str]:
    """The names a student can use: the model's aliases if it has them, else its leaf modules."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module (e.g. backbone().model), not {type(model).__name__}")
    aliases = getattr(model, "aliases", None)
    if aliases:
        return list(aliases)
    return [name for name, module in model.named_modules() if name and not list(module.children())]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called `name` (alias or dotted name); a clear error lists the valid names."""
    if not isinstance(name, str):
        raise TypeError(f"layer name must be a string, not {type(name).__name__}")
    modules = dict(model.named_modules())
    target = getattr(model, "aliases", {}).get(name, name)
    if target in modules:
        return modules[target]
    raise LayerNotFoundError(f"unknown layer {name!r}. Valid names: {', '.join(layer_names(model))} "
                   f"(or any dotted name from model.named_modules())")


def _as_list(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


@contextlib.contextmanager
def capture(model: nn.Module, names: str | Iterable[str], detach: bool = True):
    """Record the outputs of the named layers during forward passes inside the block.

        with capture(model, ["conv1", "conv5"]) as acts:
            model(x)
        acts["conv5"].shape

    detach=False keeps the graph, so a loss on an activation can be back-propagated.
    """
    names = _as_list(names)
    layers = {name: get_layer(model, name) for name in names}
    store: dict[str, torch.Tensor] = {}
    handles = []

    def recorder(name):
        def hook(module, inputs, output):
            store[name] = output.detach() if detach else output
        return hook

    try:
        for name, module in layers.items():
            handles.append(module.register_forward_hook(recorder(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def capture_grads(model: nn.Module, names: str | Iterable[str]):
    """Record d(loss)/d(output) of the named layers during backward passes inside the block."""
    names = _as_list(names)
    layers = {name: get_layer(model, name) for name in names}
    store: dict[str, torch.Tensor] = {}
    handles = []

    def recorder(name):
        def hook(module, grad_input, grad_output):
            store[name] = grad_output[0].detach()
        return hook

    try:
        for name, module in layers.items():
            handles.append(module.register_full_backward_hook(recorder(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def activations(model: nn.Module, x: torch.Tensor, names: str | Iterable[str]) -> dict[str, torch.Tensor]:
    """One forward pass without gradients; the named layers' outputs."""
    with torch.no_grad(), capture(model, names) as acts:
        model(x)
    missing = [n for n in _as_list(names) if n not in acts]
    if missing:
        raise RuntimeError(f"layers {missing} never ran in the forward pass: they are not on the "
                           f"path from input to output")
    return dict(acts)


class _Stop(Exception):
    pass


def forward_until(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The named layer's output, stopping the forward pass there (cheap features from early layers)."""
    result = {}

    def hook(module, inputs, output):
        result["out"] = output
        raise _Stop

    handle = get_layer(model, name).register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "out" not in result:
        raise RuntimeError(f"layer {name!r} never ran in the forward pass")
    return result["out"]


# ---------------------------------------------------------------- swapping the ReLU backward rule

def relu_backward_rule(rule: str, forward_output: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """What a ReLU sends back to its input, given its forward output and the incoming gradient.

    'gradient'  (backprop)          grad * [x > 0]               : the true derivative
    'deconvnet' (Zeiler & Fergus)   relu(grad)                   : ignores the forward pass
    'guided'    (Springenberg 2015) relu(grad) * [x > 0]         : both masks at once
    [x > 0] is read from the output (relu(x) > 0 exactly when x > 0), so in-place ReLUs work too.
    """
    if rule == "gradient":
        return grad * (forward_output > 0)
    if rule == "deconvnet":
        return grad.clamp(min=0)
    if rule == "guided":
        return grad.clamp(min=0) * (forward_output > 0)
    raise ValueError(f"unknown ReLU rule {rule!r}; use 'gradient', 'deconvnet' or 'guided'")


class _RuleReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rule):
        out = x.clamp(min=0)
        ctx.rule = rule
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return relu_backward_rule(ctx.rule, out, grad), None


@contextlib.contextmanager
def relu_rule(model: nn.Module, rule: str):
    """Inside the block every nn.ReLU of `model` computes relu(x) out of place (so in-place ReLUs
    are safe) and sends back `rule`'s signal instead of its gradient (see relu_backward_rule).

    Max-pooling needs no change: its gradient already routes the signal to the recorded argmax
    positions ("switches"), which is Zeiler & Fergus' unpooling; a convolution's gradient is the
    convolution with transposed (flipped) filters. ReLUs written as F.relu inside a forward()
    cannot be swapped: the error says so.
    """
    relu_backward_rule(rule, torch.ones(1), torch.ones(1))  # reject unknown rules before patching
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU modules to swap; write its "
                         f"activations as nn.ReLU() layers rather than F.relu calls")
    try:
        for module in relus:
            module.forward = lambda x, _rule=rule: _RuleReLU.apply(x, _rule)
        yield relus
    finally:
        for module in relus:
            module.__dict__.pop("forward", None)
