import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from coursekit import hooks, models


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x))


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_dotted_names_work_on_any_module():
    model = Tiny()
    acts = hooks.activations(model, torch.ones(1, 3), ["body.0", "head"])
    assert acts["body.0"].shape == (1, 4) and acts["head"].shape == (1, 2)
    assert hooks.layer_names(model) == ["body.0", "body.1", "head"]


def test_channels_and_conv_layers_are_read_from_the_model():
    tiny = Tiny()
    assert hooks.channels(tiny, "body.0") == 4 and hooks.channels(tiny, "head") == 2
    assert hooks.conv_layers(tiny) == []
    with pytest.raises(ValueError, match="'body.1'"):  # a ReLU has no channel count of its own
        hooks.channels(tiny, "body.1")
    mini = models.mini_alexnet(width=0.5)
    assert hooks.conv_layers(mini) == list(models.CONV_LAYERS)
    assert [hooks.channels(mini, name) for name in models.CONV_LAYERS] == [32, 96, 192, 128, 128]


def test_the_layer_list_is_what_both_backbones_answer_to():
    assert models.LAYERS == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    for model in (models.mini_alexnet(width=0.125), models.alexnet(pretrained=False)):
        learned = [n for n in hooks.layer_names(model)
                   if isinstance(hooks.get_layer(model, n), (nn.Conv2d, nn.Linear))]
        assert learned == list(models.LAYERS)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(KeyError) as err:
        hooks.get_layer(models.mini_alexnet(), "conv9")
    assert "conv9" in str(err.value) and "conv5" in str(err.value) and "fc8" in str(err.value)


def test_hooks_removed_even_after_an_exception():
    model = Tiny()
    with pytest.raises(RuntimeError):
        with hooks.capture(model, ["head"]):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError):
        with hooks.capture_grads(model, ["head"]):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0


def test_capture_gradients_of_a_linear_layer():
    model = Tiny()
    x = torch.randn(5, 3)
    with hooks.capture_grads(model, ["head"]) as grads:
        model(x)[:, 1].sum().backward()
    assert torch.equal(grads["head"], torch.tensor([[0.0, 1.0]]).expand(5, 2))


def test_capture_keeps_graph_when_asked():
    model = Tiny()
    x = torch.randn(2, 3, requires_grad=True)
    with hooks.capture(model, "body.0", detach=False) as acts:
        model(x)
    acts["body.0"].sum().backward()
    assert x.grad is not None


def test_forward_until_stops_early():
    model = models.mini_alexnet(width=0.25)
    out = hooks.forward_until(model, torch.rand(1, 3, 32, 32), "conv2")
    assert out.shape[1] == model.net.conv2.out_channels
    assert _hook_count(model) == 0


def test_layer_not_on_the_path_is_reported():
    model = Tiny()
    model.unused = nn.Linear(1, 1)
    with pytest.raises(RuntimeError, match="never ran"):
        hooks.activations(model, torch.ones(1, 3), ["unused"])


def test_module_hooks_are_registered_in_one_place():
    """Issue 22: one hook primitive (hooks.hooked); no other module registers hooks by hand."""
    package = Path(hooks.__file__).parent
    by_hand = re.compile(r"register_(forward_hook|forward_pre_hook|full_backward_hook|backward_hook|hook)\(")
    offenders = [f"{path.name}:{n}" for path in sorted(package.glob("*.py")) if path.name != "hooks.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)]
    assert not offenders, f"hooks registered outside coursekit/hooks.py: {offenders}"


def test_hooked_removes_its_hooks_even_after_an_exception():
    model = Tiny()
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with hooks.hooked([(model.head, lambda m, i, o: seen.append(o.shape))]), \
                hooks.hooked([(model, lambda m, i: seen.append("pass"))], before=True):
            model(torch.ones(2, 3))
            raise RuntimeError("boom")
    assert seen == ["pass", (2, 2)] and _hook_count(model) == 0


def test_watching_gradient_sees_each_gradient_and_is_removed_even_after_an_exception():
    weight = torch.ones(3, requires_grad=True)
    seen = []
    with hooks.watching_gradient(weight, lambda grad: seen.append(grad.clone())):
        (2 * weight).sum().backward()
    (3 * weight).sum().backward()   # outside the block: not seen
    assert len(seen) == 1 and torch.equal(seen[0], torch.full((3,), 2.0))
    with pytest.raises(ValueError):
        with hooks.watching_gradient(weight, seen.append):
            raise ValueError("inside")
    (weight * 4).sum().backward()
    assert len(seen) == 1, "the hook must be gone after an exception"
