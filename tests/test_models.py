import pytest
import torch

from coursekit import hooks, models


def test_mini_alexnet_shapes_and_aliases():
    model = models.mini_alexnet()
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    acts = hooks.activations(model, x, ["conv1", "pool1", "conv2", "pool2", "conv5", "pool5", "fc6", "fc7", "fc8"])
    assert acts["conv1"].shape == (2, 64, 32, 32)
    assert acts["pool1"].shape == (2, 64, 15, 15)
    assert acts["pool2"].shape == (2, 192, 7, 7)
    assert acts["pool5"].shape == (2, 256, 3, 3)
    assert acts["fc7"].shape == (2, 1024) and acts["fc8"].shape == (2, 10)


@pytest.mark.parametrize("kwargs", [
    {"activation": "tanh"}, {"lrn": False}, {"overlap": False}, {"dropout": 0.0}, {"width": 0.25},
])
def test_every_ingredient_switches(kwargs):
    model = models.mini_alexnet(**kwargs)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    names = dict(model.named_modules())
    if kwargs.get("activation") == "tanh":
        assert isinstance(names["net.relu1"], torch.nn.Tanh)
    if kwargs.get("lrn") is False:
        assert isinstance(names["net.lrn1"], torch.nn.Identity)
    if kwargs.get("overlap") is False:
        assert names["net.pool1"].kernel_size == 2


@pytest.mark.parametrize("conv1, conv2_stride, conv1_side, pool2_side", [((11, 4), 1, 16, 3), ((7, 2), 2, 32, 3)])
def test_first_layer_and_upsampling_set_the_map_sizes(conv1, conv2_stride, conv1_side, pool2_side):
    """Zeiler & Fergus section 4.1's two first layers on a 2x enlarged input: conv2's stride brings
    the 7x7 stride-2 maps back to the 11x11 stride-4 ones' size from pool2 on, as in their Figure 3."""
    model = models.mini_alexnet(width=0.125, conv1=conv1, conv2_stride=conv2_stride, upsample=2)
    acts = hooks.activations(model, torch.rand(2, 3, 32, 32), ["upsample", "conv1", "pool2", "fc8"])
    assert acts["upsample"].shape[-1] == 64
    assert acts["conv1"].shape[-1] == conv1_side and acts["pool2"].shape[-1] == pool2_side
    assert hooks.get_layer(model, "conv1").kernel_size == (conv1[0],) * 2
    assert acts["fc8"].shape == (2, 10)


def test_default_net_has_no_upsampling_layer():
    """The backbone's architecture is unchanged by the first-layer options (same layers, same weights)."""
    assert "upsample" not in dict(models.MiniAlexNet().named_children())


@pytest.mark.parametrize("kwargs, culprit", [({"activation": "sigmoid"}, "activation"), ({"dropout": 1.5}, "dropout"),
                                             ({"conv1": (6, 2)}, "odd kernel"), ({"conv1": (11, 16)}, "stride")])
def test_bad_arguments(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        models.mini_alexnet(**kwargs)


def test_lrn_matches_the_papers_formula():
    torch.manual_seed(0)
    a = torch.randn(2, 7, 3, 3) * 10
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    out = models.LocalResponseNorm(n, alpha, beta, k)(a)
    expected = torch.empty_like(a)
    N = a.shape[1]
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_lrn_gradient_matches_autograd_of_the_formula():
    torch.manual_seed(0)
    a = (torch.randn(2, 7, 3, 3, dtype=torch.float64) * 30).requires_grad_()
    lrn = models.LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    assert torch.autograd.gradcheck(lrn, (a,))
    band = ((torch.arange(7)[:, None] - torch.arange(7)[None, :]).abs() <= 2).double()
    by_autograd = a / (2.0 + 1e-4 * torch.einsum("ij,njhw->nihw", band, a * a)) ** 0.75
    grad_out = torch.randn_like(a)
    expected, = torch.autograd.grad(by_autograd, a, grad_out)
    got, = torch.autograd.grad(lrn(a), a, grad_out)
    assert torch.allclose(got, expected, rtol=1e-8, atol=1e-10)


def test_alexnet_without_weights_shapes_and_parameter_count():
    model = models.alexnet(pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == 61_100_840
    x = torch.rand(1, 3, 224, 224)
    acts = hooks.activations(model, x, ["conv1", "conv5", "pool5", "fc6", "fc8"])
    assert acts["conv1"].shape == (1, 64, 55, 55)
    assert acts["conv5"].shape == (1, 256, 13, 13)
    assert acts["pool5"].shape == (1, 256, 6, 6)
    assert acts["fc8"].shape == (1, 1000)
    assert model.net.features[0].kernel_size == (11, 11) and model.net.features[0].stride == (4, 4)
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_alexnet_preprocessing_is_imagenet_normalization():
    model = models.alexnet(pretrained=False)
    x = torch.rand(1, 3, 224, 224)
    expected = (x - torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(model.normalize(x), expected)


def test_both_backbones_share_layer_names():
    mini, alex = models.mini_alexnet(), models.alexnet(pretrained=False)
    for name in ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]:
        assert name in hooks.layer_names(mini) and name in hooks.layer_names(alex)


@pytest.mark.parametrize("training", [True, False])
def test_summary_lists_layers_and_restores_the_training_mode(training):
    model = models.mini_alexnet(width=0.25).train(training)
    table = models.summary(model, (3, 32, 32))
    conv1 = table.set_index("layer").loc["conv1"]
    assert conv1["type"] == "Conv2d" and conv1["output shape"] == (16, 32, 32)
    assert conv1["parameters"] == sum(p.numel() for p in hooks.get_layer(model, "conv1").parameters())
    assert all(m.training == training for m in model.modules())
    assert not any(m._forward_hooks for m in model.modules())


def _conv1_maps_and_later(net: torch.nn.Sequential, x: torch.Tensor, last: str):
    """conv1's output as a leaf that can take gradients, and `last`'s output computed from it."""
    maps = net.conv1(x).detach().requires_grad_()
    out, started = maps, False
    for name, module in net.named_children():
        if started:
            out = module(out)
        if name == last:
            return maps, out
        started = started or name == "conv1"


@pytest.mark.parametrize("lrn", [True, False])
def test_grouped_conv2_sees_only_its_own_halfs_conv1_maps(lrn):
    """AlexNet section 3.2: conv2 (and conv4, conv5) take input only from the kernel maps on their own
    GPU; conv3 from both. With groups=2, a conv2 output of group 1 has zero gradient with respect to
    group 2's conv1 maps, through ReLU, the (per-group) LRN and pooling."""
    torch.manual_seed(0)
    net = models.MiniAlexNet(width=0.25, groups=2, lrn=lrn).eval()
    half1, half2 = net.conv1.out_channels // 2, net.conv2.out_channels // 2
    x = torch.rand(2, 3, 32, 32)
    maps, conv2 = _conv1_maps_and_later(net, x, "conv2")
    grad, = torch.autograd.grad(conv2[:, :half2].sum(), maps)
    assert grad[:, half1:].abs().max() == 0, "group 1 of conv2 must not see group 2's conv1 maps"
    assert grad[:, :half1].abs().max() > 0, "but it does see its own group's"
    maps, conv3 = _conv1_maps_and_later(net, x, "conv3")
    grad, = torch.autograd.grad(conv3[:, :net.conv3.out_channels // 2].sum(), maps)
    assert grad[:, half1:].abs().max() > 0 and grad[:, :half1].abs().max() > 0, "conv3 sees both halves"


def test_grouped_mini_alexnet_layers():
    model = models.mini_alexnet(width=0.25, groups=2)
    net = model.net
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert [net.conv1.groups, net.conv2.groups, net.conv3.groups, net.conv4.groups, net.conv5.groups] == [1, 2, 1, 2, 2]
    assert net.lrn1.groups == 2 and net.conv1.out_channels == 16
    # odd channel counts are rounded up to a multiple of two, so the halves are equal
    assert all(m.out_channels % 2 == 0 for m in models.MiniAlexNet(width=0.1, groups=2) if isinstance(m, torch.nn.Conv2d))
    assert models.MiniAlexNet(width=0.25).conv2.groups == 1
    with pytest.raises(ValueError, match="groups"):
        models.mini_alexnet(groups=3)


def test_grouped_lrn_is_two_lrns_side_by_side():
    torch.manual_seed(0)
    a = torch.randn(2, 8, 3, 3) * 10
    lrn = models.LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    both = models.LocalResponseNorm(5, 1e-4, 0.75, 2.0, groups=2)(a)
    assert torch.allclose(both, torch.cat([lrn(a[:, :4]), lrn(a[:, 4:])], 1))
    with pytest.raises(ValueError, match="divisible"):
        models.LocalResponseNorm(groups=2)(torch.randn(1, 7, 2, 2))
