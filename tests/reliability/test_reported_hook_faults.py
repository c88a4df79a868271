"""Issue 20, hook faults fixed by kind: each test holds the reported instance and others of its kind.

3. half-guided backprop: a rectifier written as a function (F.relu, torch.relu, x.relu(), ...) kept
   its true gradient while the nn.ReLU modules got the guided / deconvnet rule;
6. a layer called twice: some functions read its first call, others its last;
7. backward hooks and in-place ops: capture_grads failed on `conv1 -> ReLU(inplace=True)`.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit import attribution, features, hooks, models, objectives, optimize


# ---------------------------------------------------------------- 3. half-guided backprop

RECTIFIERS = {  # every spelling of max(x, 0) a forward() can use
    "nn.ReLU": None,  # the reference: the same net with modules only
    "F.relu": lambda x: F.relu(x),
    "torch.relu": lambda x: torch.relu(x),
    "x.relu()": lambda x: x.relu(),
    "F.relu(inplace=True)": lambda x: F.relu(x, inplace=True),
    "x.relu_()": lambda x: x.relu_(),
}


class Mixed(nn.Module):
    """conv -> nn.ReLU -> conv -> <spelling> -> linear: one module rectifier and one written in forward()."""

    def __init__(self, spelling: str):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.relu1 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        self.fc = nn.Linear(8 * 8 * 8, 4)
        self.second = RECTIFIERS[spelling] or self.relu2

    def forward(self, x):
        x = self.second(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("method", ["guided", "deconvnet"])
@pytest.mark.parametrize("spelling", [s for s in RECTIFIERS if s != "nn.ReLU"])
def test_every_rectifier_in_the_forward_pass_gets_the_rule(faults, spelling, method):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 8, 8)
    expected = attribution.attribute(Mixed("nn.ReLU").eval(), x, method, target=1)
    got = attribution.attribute(Mixed(spelling).eval(), x, method, target=1)
    gap = float((got - expected).norm() / expected.norm())
    assert gap < 1e-6, f"{spelling}: {method} map is {gap:.0%} off the one with nn.ReLU modules only"
    faults.add("reported faults held")


def test_functional_rectifiers_are_restored_after_the_call():
    before = (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_)
    with pytest.raises(RuntimeError, match="boom"):
        with hooks.relu_rule(Mixed("F.relu"), "guided"):
            assert F.relu is not before[0]
            raise RuntimeError("boom")
    assert (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_) == before


class Leaky(nn.Module):
    """An nn.ReLU plus a ReLU variant the guided rule is not defined for (a negative slope, a cap)."""

    def __init__(self, variant):
        super().__init__()
        self.conv, self.relu, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Linear(4 * 8 * 8, 2)
        self.variant = variant

    def forward(self, x):
        return self.fc(self.variant(self.relu(self.conv(x))).flatten(1))


@pytest.mark.parametrize("variant, culprit", [
    (nn.LeakyReLU(0.1), "variant (LeakyReLU)"),
    (nn.ReLU6(), "variant (ReLU6)"),
    (lambda x: F.leaky_relu(x, 0.1), "F.leaky_relu"),
], ids=["nn.LeakyReLU", "nn.ReLU6", "F.leaky_relu"])
def test_relu_variants_the_rule_cannot_reach_are_refused_by_name(faults, variant, culprit):
    with pytest.raises(ValueError, match=culprit.replace("(", r"\(").replace(")", r"\)")):
        attribution.guided_backprop(Leaky(variant).eval(), torch.rand(1, 3, 8, 8), target=0)
    faults.add("reported faults held")


# ---------------------------------------------------------------- 6. a layer called twice

class ConvTwice(nn.Module):
    """The same conv applied twice (weight sharing), as in the report."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.block, self.relu, self.fc = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.block(self.relu(self.block(x))).mean((2, 3)))


class ReluTwice(nn.Module):
    """One nn.ReLU module used after two convs, as torchvision's ResNet blocks do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.block, self.fc = nn.ReLU(), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.block(self.conv2(self.block(self.conv1(x)))).mean((2, 3)))


def _calls(model, x):
    """Every output of `block`, in order, recorded by hand."""
    outs = []
    handle = model.block.register_forward_hook(lambda m, i, o: outs.append(o.detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return outs


def _every_reader(model, x, name):
    """What each function that reads a named layer returns for it, as (N, C, H, W) or a score."""
    with torch.no_grad():
        return {
            "hooks.activations": hooks.activations(model, x, name)[name],
            "features.extract": features.extract(model, x, name, pool="flatten"),
            "hooks.forward_until": hooks.forward_until(model, x, name),
            "attribution.score": attribution.score(model, x, layer=name, unit=1),
            "optimize.run_model": optimize.run_model(model, x, objectives.layer_norm(name))[name],
        }


@pytest.mark.parametrize("net", [ConvTwice, ReluTwice])
def test_a_layer_called_twice_reads_the_same_call_everywhere(faults, net):
    model = net().eval()
    x = torch.rand(2, 3, 6, 6)
    calls = _calls(model, x)
    assert len(calls) == 2 and not torch.equal(calls[0], calls[1])
    for name, call in [("block", calls[0]), ("block#0", calls[0]), ("block#1", calls[1])]:
        expected = {"hooks.activations": call, "features.extract": call.flatten(1),
                    "hooks.forward_until": call, "optimize.run_model": call,
                    "attribution.score": call[:, 1].flatten(1).max(1).values.sum()}
        got = _every_reader(model, x, name)
        wrong = [f for f in expected if not torch.allclose(got[f], expected[f])]
        assert not wrong, f"{net.__name__}: {wrong} do not read {name!r} as call {calls.index(call)}"
    faults.add("reported faults held")


@pytest.mark.parametrize("net", [ConvTwice, ReluTwice])
def test_a_call_index_past_the_last_call_is_a_clear_error(net):
    model = net().eval()
    for read in [lambda: hooks.activations(model, torch.rand(1, 3, 6, 6), "block#2"),
                 lambda: hooks.forward_until(model, torch.rand(1, 3, 6, 6), "block#2")]:
        with pytest.raises(RuntimeError, match=r"'block' ran 2 times"):
            read()
    with pytest.raises(ValueError, match="call index"):
        hooks.get_layer(model, "block#first")
    with pytest.warns(UserWarning, match=r"'block' runs more than once per forward pass"):
        hooks.activations(model, torch.rand(1, 3, 6, 6), "block")  # the default is said, not silent


def test_gradients_of_a_layer_called_twice_follow_the_same_convention():
    model = ConvTwice().eval()
    x = torch.rand(1, 3, 6, 6, requires_grad=True)
    with hooks.capture_grads(model, ["block", "block#1"]) as grads:
        model(x)[:, 0].sum().backward()
    # the reference: autograd on the two outputs captured in a fresh pass
    with hooks.capture(model, ["block", "block#1"], detach=False) as acts:
        out = model(x)[:, 0].sum()
    first, second = torch.autograd.grad(out, [acts["block"], acts["block#1"]])
    assert torch.allclose(grads["block"], first) and torch.allclose(grads["block#1"], second)


# ---------------------------------------------------------------- 7. backward hooks and in-place ops

class InplaceAfterConv1(nn.Module):
    """conv1 followed by an in-place rectifier, as a module or written in forward()."""

    def __init__(self, functional: bool):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True)
        self.fc, self.functional = nn.Linear(4 * 6 * 6, 3), functional
        self.inplace = True  # models.no_inplace turns this off too

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x, inplace=self.inplace) if self.functional else self.relu(x)
        return self.fc(x.flatten(1))


def _grads(model, layer, x):
    with hooks.capture_grads(model, layer) as grads:
        model(x)[:, 0].sum().backward()
    return grads[layer]


def _resnet18():
    from torchvision.models import resnet18
    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=3).eval()


def _alexnet():
    from torchvision.models import alexnet
    torch.manual_seed(0)
    return alexnet(weights=None, num_classes=3).eval()


@pytest.mark.parametrize("make, layer, size", [
    (lambda: InplaceAfterConv1(functional=False), "conv1", 6),  # the report
    (lambda: InplaceAfterConv1(functional=True), "conv1", 6),   # F.relu(x, inplace=True)
    (_alexnet, "features.0", 64),                               # torchvision: ReLU(inplace=True)
    (_resnet18, "layer1.0.bn2", 32),                            # torchvision: `out += identity`, in place
], ids=["nn.ReLU(inplace=True)", "F.relu(inplace=True)", "torchvision alexnet", "torchvision resnet18"])
def test_capture_grads_survives_in_place_ops_after_the_layer(faults, make, layer, size):
    torch.manual_seed(2)
    x = torch.rand(2, 3, size, size)
    model = make()
    got = _grads(model, layer, x)
    reference = models.no_inplace(copy.deepcopy(model))
    # the reference gradient, by plain autograd: the layer's output kept out of every in-place op
    kept = {}

    def keep(module, inputs, output):
        kept["out"] = output
        return output.clone()

    handle = hooks.get_layer(reference, layer).register_forward_hook(keep)
    try:
        (expected,) = torch.autograd.grad(reference(x)[:, 0].sum(), kept["out"])
    finally:
        handle.remove()
    assert torch.allclose(got, expected, atol=1e-6)
    if layer == "conv1":  # and equal to what the same net captures with inplace=False
        assert torch.allclose(got, _grads(models.no_inplace(copy.deepcopy(model)), layer, x), atol=1e-6)
    faults.add("reported faults held")
