"""Find layers by name and capture what flows through them; hooks are always removed.

Names are a model's aliases (conv1 ... fc8 on both backbones) or torch's own dotted names
(`dict(model.named_modules())`), so nothing here assumes `model.features`. A module that runs more
than once per forward pass is read at its first call; 'name#k' reads call k (0-based).

`hooked` is the one place coursekit registers module hooks; everything else builds on it.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def conv_layers(model: nn.Module) -> list[str]:
    """The names of the model's 2-d convolutions, in layer_names order (conv1 ... conv5 on both
    backbones): the layers whose channels are the units and filters the course looks at."""
    return [name for name in layer_names(model) if isinstance(get_layer(model, name), nn.Conv2d)]


def channels(model: nn.Module, name: str) -> int:
    """How many channels (a conv layer) or units (a fully connected layer) layer `name` outputs,
    read from the layer itself. ValueError for a layer that has no such count of its own (ReLU,
    pooling: ask the conv or linear layer before it)."""
    layer = get_layer(model, name)
    count = getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)
    if not isinstance(count, int):
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) has no channel count of its own; "
                         f"ask a conv or linear layer, e.g. one of {conv_layers(model)}")
    return count


def _split_call(name: str) -> tuple[str, int | None]:
    """'block#1' -> ('block', 1); 'block' -> ('block', None)."""
    if not isinstance(name, str):
        raise TypeError(f"layer name must be a string, not {type(name).__name__}")
    base, sep, index = name.partition("#")
    if not sep:
        return name, None
    if not index.isdigit():
        raise ValueError(f"bad call index in layer name {name!r}: write '{base}#0' for the first call of "
                         f"{base!r}, '{base}#1' for the second, ...")
    return base, int(index)


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called `name` (alias or dotted name, optionally with a call index: 'block#1');
    a clear error lists the valid names."""
    base, _ = _split_call(name)
    modules = dict(model.named_modules())
    target = getattr(model, "aliases", {}).get(base, base)
    if target in modules:
        return modules[target]
    raise LayerNotFoundError(f"unknown layer {name!r}. Valid names: {', '.join(layer_names(model))} "
                   f"(or any dotted name from model.named_modules())")


def _as_list(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


# ---------------------------------------------------------------- the one hook primitive

@contextlib.contextmanager
def hooked(pairs: Iterable[tuple[nn.Module, Callable]], before: bool = False):
    """Run fn(module, inputs, output) after each module's forward (before=True: fn(module, inputs)
    before it) for every (module, fn) in `pairs`, inside the block; the hooks are removed on exit,
    even after an exception. The one place coursekit registers module hooks."""
    handles = []
    try:
        for module, fn in pairs:
            register = module.register_forward_pre_hook if before else module.register_forward_hook
            handles.append(register(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def watching_gradient(tensor: torch.Tensor, fn: Callable[[torch.Tensor], None]):
    """Call fn(grad) each time a gradient for `tensor` (a parameter, e.g. conv1.weight) is computed,
    inside the block; the hook is removed on exit, even after an exception. The tensor-hook
    counterpart of `hooked`: fn must not change the gradient (return None)."""
    handle = tensor.register_hook(fn)
    try:
        yield
    finally:
        handle.remove()


# ---------------------------------------------------------------- named layers, one call each

@contextlib.contextmanager
def _each_call(model: nn.Module, names: list[str], fn: Callable[[str, torch.Tensor], None]):
    """fn(name, output) with the output of the call each name reads, in every forward pass of
    `model` inside the block. The one convention for a module that runs more than once per pass
    (weight sharing, a ReLU reused as in ResNet blocks): 'block' and 'block#0' read its first call,
    'block#1' its second, ... The first call is the one a pass stopped early can always reach.
    Yields {module: calls in the current pass}."""
    wanted: dict[nn.Module, list[tuple[str, int | None]]] = {}
    for name in names:
        wanted.setdefault(get_layer(model, name), []).append((name, _split_call(name)[1]))
    calls: dict[nn.Module, int] = {}

    def new_pass(module, inputs):
        calls.clear()

    def hook(module, inputs, output):
        calls[module] = calls.get(module, 0) + 1
        if calls[module] == 2 and all(index is None for _, index in wanted[module]):
            name = wanted[module][0][0]
            warnings.warn(f"layer {name!r} runs more than once per forward pass; coursekit reads its "
                          f"first call (name '{name}#1' for the second)", stacklevel=2)
        for name, index in wanted[module]:
            if calls[module] - 1 == (index or 0):
                fn(name, output)

    with hooked([(model, new_pass)], before=True), hooked([(m, hook) for m in wanted]):
        yield calls


class _Enough(Exception):
    """Raised by a hook once every layer asked for has run: the rest of the pass is not computed."""


def _recorder(store: dict, detach: bool, stop_after: int | None = None) -> Callable:
    """Saves each layer output in `store`; raises _Enough once `stop_after` layers are in it."""
    def record(name, output):
        store[name] = output.detach() if detach else output
        if len(store) == stop_after:
            raise _Enough
    return record


@contextlib.contextmanager
def capture(model: nn.Module, names: str | Iterable[str], detach: bool = True):
    """Record the outputs of the named layers during forward passes inside the block.

        with capture(model, ["conv1", "conv5"]) as acts:
            model(x)
        acts["conv5"].shape

    detach=False keeps the graph, so a loss on an activation can be back-propagated. A layer that
    runs more than once per pass is read at its first call, or at call k for the name 'layer#k'.
    """
    store: dict[str, torch.Tensor] = {}
    with _each_call(model, _as_list(names), _recorder(store, detach)):
        yield store


@contextlib.contextmanager
def capture_grads(model: nn.Module, names: str | Iterable[str]):
    """Record d(loss)/d(output) of the named layers during backward passes inside the block.

    The gradient is taken by a hook on the layer's output tensor, not a module backward hook, so
    in-place ops after the layer (ReLU(inplace=True), `out += identity`) do not break it: a tensor
    hook registered before an in-place op receives the gradient of the value before that op.
    """
    store: dict[str, torch.Tensor] = {}
    handles = []

    def watch(name, output):
        output = output[0] if isinstance(output, (tuple, list)) else output
        if output.requires_grad:
            handles.append(output.register_hook(lambda grad: store.__setitem__(name, grad.detach())))

    try:
        with _each_call(model, _as_list(names), watch):
            yield store
    finally:
        for handle in handles:
            handle.remove()


def run(model: nn.Module, x: torch.Tensor, names: str | Iterable[str], detach: bool = True,
        stop_early: bool = False) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """One forward pass: (model output, {name: layer output}). stop_early=True stops as soon as the
    named layers have run (output None): cheap features from early layers, and images the later
    layers could not take. Raises RuntimeError naming a layer that never ran (or ran too few times)."""
    names, acts, output = _as_list(names), {}, None
    record = _recorder(acts, detach, len(set(names)) if stop_early else None)
    with _each_call(model, names, record) as calls:
        try:
            output = model(x)
        except _Enough:
            pass
    for name in names:
        if name not in acts:
            base, index = _split_call(name)
            ran = calls.get(get_layer(model, name), 0)
            raise RuntimeError(f"layer {name!r} never ran in the forward pass: it is not on the path "
                               f"from input to output" if not ran else
                               f"layer {name!r} asks for call {index} but {base!r} ran {ran} times per "
                               f"forward pass (calls 0..{ran - 1})")
    return output, acts


def activations(model: nn.Module, x: torch.Tensor, names: str | Iterable[str]) -> dict[str, torch.Tensor]:
    """One forward pass without gradients; the named layers' outputs."""
    with torch.no_grad():
        return run(model, x, names)[1]


def forward_until(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The named layer's output (with its graph), stopping the forward pass there."""
    return run(model, x, [name], detach=False, stop_early=True)[1][name]


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


# max(x, 0) in every spelling a forward() can use, as (owner, attribute, in place); nn.ReLU calls F.relu
_RECTIFIERS = [(F, "relu", False), (F, "relu_", True), (torch, "relu", False), (torch, "relu_", True),
               (torch.Tensor, "relu", False), (torch.Tensor, "relu_", True)]
# ReLU variants, refused rather than left with their true gradient (a half-guided map): the rules are
# defined for max(x, 0), whose derivative is [x > 0]; a negative slope (LeakyReLU, ELU, GELU, SiLU)
# passes signal where x < 0 and a cap (ReLU6) blocks it above 6, so no rule is theirs to take.
# Squashing functions (tanh, sigmoid) are not rectifiers: they keep their gradient, as in the papers.
_VARIANT_MODULES = (nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ReLU6, nn.Hardtanh, nn.ELU, nn.CELU, nn.SELU,
                    nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus)
_VARIANT_FUNCTIONS = ("leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "relu6", "hardtanh",
                      "hardtanh_", "elu", "elu_", "celu", "celu_", "selu", "selu_", "gelu", "silu", "mish",
                      "hardswish", "softplus")


def _rule_relu(rule: str, calls: list) -> Callable:
    """relu(x, inplace) that sends back `rule`'s signal; appends to `calls` each time it runs."""
    def relu(x, inplace=False):
        calls.append(rule)
        out = _RuleReLU.apply(x, rule)
        return x.copy_(out) if inplace else out  # x.relu_() callers may ignore the return value
    return relu


def _refusal(name: str, rule: str) -> Callable:
    def refuse(*args, **kwargs):
        raise ValueError(f"F.{name} runs in the forward pass, and the {rule!r} rule is defined for "
                         f"ReLU (max(x, 0)) only; use nn.ReLU / F.relu there, or attribution.gradient")
    return refuse


@contextlib.contextmanager
def _patched(patches: list[tuple[object, str, Callable]]):
    """Set owner.attribute = value for each patch inside the block; the originals are restored."""
    saved = [(owner, attr, owner.__dict__.get(attr, _MISSING)) for owner, attr, _ in patches]
    try:
        for owner, attr, value in patches:
            setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, original in reversed(saved):
            if original is _MISSING:
                delattr(owner, attr)  # inherited (Tensor.relu lives on its C base class)
            else:
                setattr(owner, attr, original)


_MISSING = object()


@contextlib.contextmanager
def relu_rule(model: nn.Module, rule: str):
    """Inside the block every ReLU that runs sends back `rule`'s signal instead of its gradient (see
    relu_backward_rule): the nn.ReLU modules of `model` (computed out of place, so in-place ReLUs
    are safe) and the ReLUs written in a forward() as F.relu, F.relu_, torch.relu, torch.relu_,
    x.relu() or x.relu_(), which are patched for the duration of the block and restored after it,
    so every ReLU in the process gets the rule meanwhile (not thread-safe). A ReLU imported under
    another name (`from torch.nn.functional import relu`) or written as clamp(min=0) is not reached.

    Raises ValueError naming the ReLU variants the rule is not defined for (LeakyReLU, ReLU6, GELU,
    ...: modules before the pass, functions when they run), and on exit when `model` has no nn.ReLU
    module and no ReLU ran.

    Max-pooling needs no change: its gradient already routes the signal to the recorded argmax
    positions ("switches"), which is Zeiler & Fergus' unpooling; a convolution's gradient is the
    convolution with transposed (flipped) filters.
    """
    relu_backward_rule(rule, torch.ones(1), torch.ones(1))  # reject unknown rules before patching
    variants = [f"{name} ({type(m).__name__})" for name, m in model.named_modules() if isinstance(m, _VARIANT_MODULES)]
    if variants:
        raise ValueError(f"{type(model).__name__} uses ReLU variants the {rule!r} rule is not defined for: "
                         f"{', '.join(variants)}; use nn.ReLU there, or attribution.gradient")
    calls: list = []
    relu = _rule_relu(rule, calls)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    patches = [(owner, attr, (lambda x, *_, **__: relu(x, True)) if inplace else relu)
               for owner, attr, inplace in _RECTIFIERS]
    patches += [(F, name, _refusal(name, rule)) for name in _VARIANT_FUNCTIONS]
    try:
        for module in relus:
            module.forward = relu
        with _patched(patches):
            yield relus
    finally:
        for module in relus:
            module.__dict__.pop("forward", None)
    if not relus and not calls:  # (a pass stopped before the first ReLU is fine: nothing to change)
        raise ValueError(f"{type(model).__name__} has no nn.ReLU module and no ReLU call (F.relu, "
                         f"torch.relu, x.relu()) ran in its forward pass, so the {rule!r} rule changed "
                         f"nothing; it applies to networks with ReLU activations")
