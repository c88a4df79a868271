"""attribution and hooks.relu_rule on tiny models whose right answers are known by hand."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from coursekit import attribution, hooks, models, widgets  # noqa: E402


def linear_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()


def test_linear_model_gradient_is_its_weight():
    model = linear_model()
    x = torch.randn(2, 3, 2, 2)
    grad = attribution.gradient(model, x, target=2)
    assert torch.allclose(grad, model[1].weight[2].view(3, 2, 2).expand_as(x))


def test_saliency_is_max_abs_gradient_over_channels():
    model = linear_model()
    sal = attribution.saliency(model, torch.randn(1, 3, 2, 2), target=0)
    assert torch.allclose(sal[0], model[1].weight[0].view(3, 2, 2).abs().amax(0))


@pytest.mark.parametrize("method", attribution.METHODS)
@pytest.mark.parametrize("target", ["per image", 1, None])
def test_a_long_batch_is_split_into_chunks_with_the_same_maps(monkeypatch, method, target):
    """Each image's score is summed, so chunks of BACKPROP_BATCH images give each image the map it
    gets in one pass: per-image targets follow their images, a shared or default target stays."""
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.125, dropout=0.0).eval()
    x = torch.rand(11, 3, 32, 32)
    target = torch.arange(11) % 10 if target == "per image" else target
    whole = attribution.attribute(model, x, method, target=target)
    monkeypatch.setattr(attribution, "BACKPROP_BATCH", 4)
    chunked = attribution.attribute(model, x, method, target=target)
    assert torch.allclose(whole, chunked, atol=1e-6)
    monkeypatch.setattr(attribution, "BACKPROP_BATCH", 64)
    unit = attribution.attribute(model, x, method, layer="conv3", unit=2)
    monkeypatch.setattr(attribution, "BACKPROP_BATCH", 3)
    assert torch.allclose(unit, attribution.attribute(model, x, method, layer="conv3", unit=2), atol=1e-6)


def test_default_target_is_the_predicted_class():
    model = linear_model()
    x = torch.randn(1, 3, 2, 2)
    predicted = int(model(x).argmax())
    assert torch.equal(attribution.gradient(model, x), attribution.gradient(model, x, target=predicted))


def relu_sandwich():
    """x -> w1 * x (per pixel) -> ReLU -> sum * w2: every rule's answer is known by hand."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(inplace=True), nn.Conv2d(1, 1, 1, bias=False),
                          nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[2].weight.fill_(1.0)
        model[4].weight.copy_(torch.tensor([[1.0, -1.0, 2.0, -2.0]]))
    return model.eval()


X = torch.tensor([[[[1.0, 2.0], [-1.0, 3.0]]]])  # position (1, 0) is off at the ReLU


@pytest.mark.parametrize("method, expected", [
    ("gradient", [[1.0, -1.0], [0.0, -2.0]]),   # true gradient: fc weight where the ReLU was on
    ("guided", [[1.0, 0.0], [0.0, 0.0]]),       # ... and only the positive signal
    ("deconvnet", [[1.0, 0.0], [2.0, 0.0]]),    # positive signal, forward mask ignored
])
def test_relu_rules_on_a_hand_computed_model(method, expected):
    attr = attribution.attribute(relu_sandwich(), X, method, target=0)
    assert torch.equal(attr[0, 0], torch.tensor(expected))


def test_guided_backprop_zeroes_negative_gradients():
    out = torch.tensor([0.0, 1.0, 2.0, 3.0])
    grad = torch.tensor([5.0, -1.0, 4.0, 0.5])
    assert hooks.relu_backward_rule("guided", out, grad).tolist() == [0.0, 0.0, 4.0, 0.5]
    assert hooks.relu_backward_rule("deconvnet", out, grad).tolist() == [5.0, 0.0, 4.0, 0.5]
    assert hooks.relu_backward_rule("gradient", out, grad).tolist() == [0.0, -1.0, 4.0, 0.5]


def test_deconvnet_unpooling_places_values_at_the_switches():
    model = nn.Sequential(nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(4, 1, bias=False)).eval()
    with torch.no_grad():
        model[3].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    x = torch.rand(1, 1, 4, 4) + 0.1
    attr = attribution.deconvnet(model, x, target=0)[0, 0]
    switches = torch.zeros(4, 4)
    pooled_idx = nn.functional.max_pool2d(x, 2, return_indices=True)[1].flatten()
    switches.view(-1)[pooled_idx] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert torch.equal(attr, switches)


def test_deconvnet_switches_are_the_window_argmaxes_of_overlapping_pooling():
    """AlexNet's pooling overlaps (3x3, stride 2): the deconvnet's unpooling must send each pooled
    unit's signal to the arg-max of its own window, as torch's max_pool2d(return_indices=True) records
    it, adding up where one pixel wins two windows."""
    torch.manual_seed(0)
    pool = nn.Sequential(nn.MaxPool2d(3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 1, bias=False)).eval()
    with torch.no_grad():
        pool[3].weight.copy_(torch.arange(1.0, 19.0)[None])
    x = torch.rand(1, 2, 7, 7) + 0.1
    attr = attribution.deconvnet(pool, x, target=0)
    pooled_idx = nn.functional.max_pool2d(x, 3, 2, return_indices=True)[1]   # (1, 2, 3, 3) flat H*W indices
    switches = torch.zeros(2, 49)
    switches.scatter_add_(1, pooled_idx[0].flatten(1), torch.arange(1.0, 19.0).view(2, 9))
    assert torch.equal(attr[0], switches.view(2, 7, 7))


def test_share_inside_is_the_mass_on_the_mask():
    maps = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = torch.tensor([[[False, True], [False, False]], [[True, True], [False, False]]])
    assert attribution.share_inside(maps, masks).tolist() == [0.75, 0.5]
    with pytest.raises(ValueError, match="same"):
        attribution.share_inside(maps, masks[:1])


def test_unit_of_a_named_layer_and_its_position():
    model = relu_sandwich()
    attr = attribution.gradient(model, X, layer="2", unit=0, position=(1, 1))
    assert attr[0, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    strongest = attribution.gradient(model, X, layer="2", unit=0)  # max is at (1, 1) too: value 3
    assert torch.equal(strongest, attr)


def test_bad_targets_name_the_valid_range():
    with pytest.raises(ValueError, match="has 1 units"):
        attribution.gradient(relu_sandwich(), X, layer="2", unit=5)
    with pytest.raises(ValueError, match="out of range"):
        attribution.gradient(relu_sandwich(), X, target=3)
    with pytest.raises(ValueError, match="unit="):
        attribution.gradient(relu_sandwich(), X, layer="2")
    with pytest.raises(KeyError, match="Valid names"):
        attribution.gradient(relu_sandwich(), X, layer="conv9", unit=0)
    with pytest.raises(ValueError, match="choose one of"):
        attribution.attribute(relu_sandwich(), X, "lrp")


def test_relu_forwards_are_restored_even_after_an_exception():
    model = relu_sandwich()
    with pytest.raises(RuntimeError, match="boom"):
        with hooks.relu_rule(model, "guided"):
            assert "forward" in model[1].__dict__
            raise RuntimeError("boom")
    assert "forward" not in model[1].__dict__
    with pytest.raises(ValueError):  # unit out of range raised inside the swapped block
        attribution.guided_backprop(model, X, layer="2", unit=7)
    assert "forward" not in model[1].__dict__
    assert not model[0]._forward_hooks and not model[2]._forward_hooks


def test_relu_rule_rejects_models_without_relu_modules():
    with pytest.raises(ValueError, match="no nn.ReLU"):
        with hooks.relu_rule(linear_model(), "guided"):
            pass


def test_inplace_relus_give_the_same_answer_as_out_of_place():
    torch.manual_seed(1)
    model = models.mini_alexnet(width=0.25).eval()
    x = torch.rand(1, 3, 32, 32)
    plain = attribution.guided_backprop(model, x, layer="conv4", unit=1)
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = True
    assert torch.allclose(attribution.guided_backprop(model, x, layer="conv4", unit=1), plain)


def test_occlusion_of_an_irrelevant_region_leaves_the_score_unchanged():
    # the model only looks at the top-left 4x4 corner of an 8x8 image
    class Corner(nn.Module):
        def forward(self, x):
            return torch.stack([x[:, :, :4, :4].mean((1, 2, 3)), torch.zeros(len(x))], 1) * 5

    x = torch.rand(1, 3, 8, 8)
    result = attribution.occlusion(Corner(), x, label=0, size=2, stride=2, fill=0.0)
    assert result.prob.shape == (4, 4)
    assert torch.allclose(result.prob[2:, :], torch.full((2, 4), result.base_prob))
    assert torch.allclose(result.prob[:, 2:], torch.full((4, 2), result.base_prob))
    assert (result.prob[:2, :2] < result.base_prob).all()   # occluding the corner (fill 0) lowers p
    assert result.top_class.shape == (4, 4)
    pixels = result.pixel_map(8, 8)
    assert pixels.shape == (8, 8) and torch.allclose(pixels[4:, 4:], torch.tensor(result.base_prob))


def test_occlusion_is_batched_consistently():
    model = models.mini_alexnet(width=0.25).eval()
    x = torch.rand(1, 3, 32, 32)
    a = attribution.occlusion(model, x, 3, size=8, stride=4, batch_size=7)
    b = attribution.occlusion(model, x, 3, size=8, stride=4, batch_size=100)
    assert torch.allclose(a.prob, b.prob, atol=1e-6)
    one = attribution.occluded_batch(x, [(4, 8)], 8, 0.5)
    with torch.no_grad():
        assert torch.allclose(model(one).softmax(1)[0, 3], a.prob[1, 2], atol=1e-6)
    with pytest.raises(ValueError, match="occluder size"):
        attribution.occlusion(model, x, 3, size=40, stride=4)
    with pytest.raises(ValueError, match="one image"):
        attribution.occlusion(model, x[0, 0, 0], 3, size=8, stride=4)  # a 1-D tensor, not an image


def test_methods_are_the_dispatch_table_and_attribute_runs_each():
    assert attribution.METHODS == tuple(attribution.ATTRIBUTIONS)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.rand(2, 3, 2, 2)
    for name, function in attribution.ATTRIBUTIONS.items():
        assert torch.equal(attribution.attribute(model, x, name, target=1), function(model, x, target=1))
    with pytest.raises(ValueError, match="deconvnet"):
        attribution.attribute(model, x, "lrp")


@pytest.fixture(scope="module")
def tiny_backbone():
    torch.manual_seed(0)
    return models.mini_alexnet(width=0.5).eval(), torch.rand(1, 3, 32, 32)


def test_attribution_panel_sweeps_and_rejects_out_of_range(tiny_backbone):
    model, x = tiny_backbone
    controls = attribution.attribution_controls(model)
    for values in widgets.sweep(controls):
        plt.close(attribution.attribution_panel(model, x, **values))
    with pytest.raises(ValueError, match="unit"):  # beyond the widest layer (conv3: 192 channels at width 0.5)
        attribution.attribution_panel(model, x, "guided", "conv5", 192)
    with pytest.raises(ValueError):
        attribution.attribution_panel(model, x, "lrp", "conv5", 0)
    # conv1 has 32 channels at width 0.5: unit 100 is on the slider (for conv3) but not in conv1
    figure = attribution.attribution_panel(model, x, "guided", "conv1", 100)
    assert "conv1 has 32 channels" in " ".join(t.get_text() for t in figure.texts)
    plt.close(figure)


def test_occlusion_panel_sweeps_and_rejects_out_of_range(tiny_backbone):
    _, x = tiny_backbone
    model = models.mini_alexnet(width=0.125).eval()   # no unit slider here: the narrowest model will do
    classes = [str(i) for i in range(10)]
    for values in widgets.sweep(attribution.OCCLUSION_PANEL):
        plt.close(attribution.occlusion_panel(model, x, 3, classes, **values))
    with pytest.raises(ValueError):
        attribution.occlusion_panel(model, x, 3, classes, size=55, stride=10)
    with pytest.raises(ValueError):
        attribution.occlusion_panel(model, x, 3, classes, size=25, stride=4)


def test_rank_correlation_is_spearmans():
    from scipy.stats import spearmanr
    torch.manual_seed(0)
    a, b = torch.rand(3, 4, 5), torch.rand(3, 4, 5)
    b[1] = a[1] * 2 + 1                       # same order: 1
    b[2] = -a[2]                              # reversed: -1
    got = attribution.rank_correlation(a, b)
    expected = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(3)]
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float32), atol=1e-5)
    assert got[1] == pytest.approx(1.0) and got[2] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same shape"):
        attribution.rank_correlation(a, b[:2])


def test_cascading_randomization_changes_the_gradient_not_an_unchanged_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    other = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.rand(5, 3, 6, 6)
    before = [p.clone() for p in model.parameters()]
    same = attribution.cascading_randomization(model, model, x, 0, ["3", "0"], ["gradient", "saliency"])
    assert same.correlation.shape == (2, 2, 5) and same.maps.shape == (3, 2, 5, 6, 6)
    assert torch.allclose(same.correlation, torch.ones(2, 2, 5)), "randomizing to itself changes nothing"
    changed = attribution.cascading_randomization(model, other, x, 0, ["3", "0"], ["gradient"])
    assert (changed.correlation[-1] < 0.9).all(), "a different network gives different gradient maps"
    assert changed.mean("gradient").shape == (2,)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters())), "the model itself is left alone"
