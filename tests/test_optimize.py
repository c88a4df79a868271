"""The image-optimization engine: objectives, parameterizations, regularizers and the loop,
on tiny inputs with known answers and tiny models."""
import math

import pytest
import torch
import torch.nn as nn

from coursekit import hooks, models, optimize
from coursekit import objectives as O
from coursekit import param as P
from coursekit import transforms as T


def tiny_model():
    torch.manual_seed(0)
    return models.mini_alexnet(width=0.0625, dropout=0.0)


class TwoStage(nn.Module):
    """Any nn.Module with named layers (no aliases, no PixelModel)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.stem(x))


def outputs_for(image=None, logits=None, **acts):
    return {"image": image, "logits": logits, **acts}


# ---------------------------------------------------------------- objectives

def test_class_score_and_probability():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    out = outputs_for(logits=logits)
    assert O.class_score(1)(out).item() == 2.0
    assert O.class_prob(2)(out).item() == pytest.approx(math.exp(3) / sum(math.exp(v) for v in (1, 2, 3)))


def test_class_score_one_class_per_image():
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert O.class_score([2, 0])(outputs_for(logits=logits)).tolist() == [3.0, 4.0]
    assert O.class_score(1)(outputs_for(logits=logits)).tolist() == [2.0, 5.0]
    with pytest.raises(ValueError, match="one per image"):
        O.class_score([0, 1, 2])(outputs_for(logits=logits))
    with pytest.raises(ValueError, match="class 3"):
        O.class_score([0, 3])(outputs_for(logits=logits))


def test_channel_unit_and_layer_norm():
    act = torch.arange(2 * 3 * 3, dtype=torch.float32).view(1, 2, 3, 3)
    out = outputs_for(conv=act)
    assert O.channel("conv", 1)(out).item() == pytest.approx(act[0, 1].mean().item())
    assert O.unit("conv", 0)(out).item() == act[0, 0, 1, 1].item()
    assert O.unit("conv", 1, 0, 2)(out).item() == act[0, 1, 0, 2].item()
    assert O.layer_norm("conv")(out).item() == pytest.approx(act.pow(2).mean().item())


def test_channel_one_channel_per_image():
    act = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    out = outputs_for(conv=act, fc=act.flatten(2).sum(2))
    assert O.channel("conv", [2, 0])(out).tolist() == pytest.approx([act[0, 2].mean().item(), act[1, 0].mean().item()])
    assert O.channel("conv", 1)(out).tolist() == pytest.approx(act[:, 1].flatten(1).mean(1).tolist())
    assert O.channel("fc", [1, 2])(out).tolist() == [act[0, 1].sum().item(), act[1, 2].sum().item()]
    with pytest.raises(ValueError, match="one per image"):
        O.channel("conv", [0, 1, 2])(out)
    with pytest.raises(ValueError, match="channel of conv 3"):
        O.channel("conv", [0, 3])(out)
    both = O.channel(["conv", "fc"], [2, 1])
    assert both.layers == ("conv", "fc")
    assert both(out).tolist() == pytest.approx([act[0, 2].mean().item(), act[1, 1].sum().item()])
    with pytest.raises(ValueError, match="2 layers but 3 channels"):
        O.channel(["conv", "fc"], [0, 1, 2])


def test_feature_error_is_normalized():
    target = torch.tensor([[3.0, 4.0]])
    out = outputs_for(fc=torch.tensor([[0.0, 0.0]]))
    assert O.feature_error("fc", target)(out).item() == pytest.approx(1.0)
    assert O.feature_error("fc", target)(outputs_for(fc=target)).item() == 0.0


def test_objectives_add_and_scale():
    out = outputs_for(logits=torch.tensor([[1.0, 2.0]]))
    combined = 2 * O.class_score(0) + O.class_score(1) * 3 - 1 - O.class_score(0) / 2
    assert combined(out).item() == pytest.approx(2 * 1 + 3 * 2 - 1 - 0.5)
    assert combined.needs_logits
    assert (-O.class_score(1))(out).item() == -2.0


def test_objectives_collect_layers():
    obj = O.layer_norm("conv1") - 0.1 * O.feature_error("conv3", torch.ones(1, 2)) + O.channel("conv1", 0)
    assert obj.layers == ("conv1", "conv3")


def test_bad_objective_arguments_are_named():
    with pytest.raises(TypeError, match="scaled by a number"):
        O.class_score(0) * O.class_score(1)
    with pytest.raises(TypeError, match="combine"):
        O.class_score(0) + "x"
    with pytest.raises(ValueError, match="class 7 is out of range"):
        O.class_score(7)(outputs_for(logits=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="channel of conv"):
        O.channel("conv", 5)(outputs_for(conv=torch.zeros(1, 2, 3, 3)))
    with pytest.raises(ValueError, match="same size"):
        O.feature_error("fc", torch.ones(1, 4))(outputs_for(fc=torch.ones(1, 3)))
    with pytest.raises(ValueError, match="beta"):
        O.tv(0)
    with pytest.raises(ValueError, match="alpha"):
        O.alpha_norm(0.5)


# ---------------------------------------------------------------- priors

def test_total_variation_known_values():
    assert O.total_variation(torch.full((1, 3, 5, 5), 0.7), 2).item() == 0.0
    assert O.total_variation(torch.full((1, 3, 5, 5), 0.7), 1).item() == 0.0
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    checker = ((rows + cols) % 2).float().expand(1, 3, 6, 6)
    # every pixel differs by 1 from its right and lower neighbours: (1 + 1)^(beta/2)
    for beta in (1.0, 2.0, 3.0):
        assert O.total_variation(checker, beta).item() == pytest.approx(2 ** (beta / 2))


def test_total_variation_gradient_is_finite_on_flat_images():
    x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    O.total_variation(x, 1.0).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_alpha_norm_known_value():
    x = torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]]])
    assert O.alpha_norm_of(x, 2).item() == pytest.approx((0.25 + 0.25 + 1) / 4)
    assert O.alpha_norm_of(x + 1, 6, center=1).item() == pytest.approx((2 * 0.5 ** 6 + 1) / 4)


def test_l2_penalty_is_the_squared_norm_from_center_summed_over_pixels():
    image = torch.full((1, 3, 2, 2), 0.7)
    assert O.l2(0.5)(outputs_for(image=image)).item() == pytest.approx(12 * 0.04)  # 12 values, as on the slide


# ---------------------------------------------------------------- step regularizers and transforms

def test_decay_shrinks_the_norm_by_the_factor():
    x = torch.randn(2, 3, 8, 8)
    before = (x - 0.5).norm()
    T.decay(0.3, center=0.5)(x, None, 0)
    assert (x - 0.5).norm().item() == pytest.approx(0.7 * before.item(), rel=1e-5)


def test_blur_preserves_the_mean_and_smooths():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    y = T.gaussian_blur(x, 1.0)
    assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=1e-6)
    assert O.total_variation(y).sum() < O.total_variation(x).sum() / 2
    assert torch.equal(T.gaussian_blur(x, 0), x)
    assert T.gaussian_kernel(0.5).sum().item() == pytest.approx(1.0)


def test_blur_every_k_steps():
    x = torch.rand(1, 3, 8, 8)
    blur = T.blur_every(1.0, every=4)
    kept = x.clone()
    blur(x, None, 1)
    assert torch.equal(x, kept)
    blur(x, None, 4)
    assert not torch.equal(x, kept)


def test_clip_small_norm_resets_the_weakest_pixels():
    x = torch.zeros(1, 3, 2, 2)
    x[0, :, 0, 0] = 1.0
    x[0, :, 1, 1] = 0.1
    x[0, :, 0, 1] = 0.5
    T.clip_small_norm(50)(x, None, 0)
    assert x[0, :, 0, 0].sum() == 3 and x[0, :, 0, 1].sum() == 1.5
    assert x[0, :, 1, 1].sum() == 0


def test_clip_small_contribution_uses_the_gradient():
    x = torch.ones(1, 3, 1, 4)
    grad = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    T.clip_small_contribution(50, center=0.0)(x, grad, 0)
    assert x[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_clamp_and_jitter_and_affine_keep_shape():
    x = torch.linspace(-1, 2, 48).view(1, 3, 4, 4)
    T.clamp()(x, None, 0)
    assert x.min() >= 0 and x.max() <= 1
    torch.manual_seed(0)
    assert T.jitter(2)(x).shape == x.shape
    assert sorted(T.jitter(2)(x).flatten().tolist()) == sorted(x.flatten().tolist())  # a roll
    assert T.random_scale((0.9, 1.1))(x).shape == x.shape
    assert T.random_rotate(10)(x).shape == x.shape
    assert torch.allclose(T.RandomAffine()(x), x)


def test_bad_regularizer_arguments_are_named():
    for make, match in [(lambda: T.decay(1.0), "decay rate"), (lambda: T.blur_every(-1), "sigma"),
                        (lambda: T.blur_every(1, every=0), "every"), (lambda: T.clip_small_norm(100), "percentile"),
                        (lambda: T.clip_small_contribution(-1), "percentile"), (lambda: T.jitter(-1), "jitter"),
                        (lambda: T.random_scale((0, 1)), "scales"), (lambda: T.random_rotate(-5), "degrees"),
                        (lambda: T.clamp(1, 0), "low < high")]:
        with pytest.raises(ValueError, match=match):
            make()


# ---------------------------------------------------------------- parameterizations

def test_fft_image_round_trips():
    torch.manual_seed(0)
    for shape in [(2, 3, 16, 16), (1, 3, 15, 12)]:
        image = torch.rand(shape) * 0.9 + 0.05
        for decorrelate in (True, False):
            back = P.FFTImage.from_image(image, decorrelate=decorrelate)()
            assert torch.allclose(back, image, atol=1e-4)


def test_fft_image_starts_grey_and_in_range():
    image = P.FFTImage((1, 3, 32, 32), sd=0.01)()
    assert image.min() > 0 and image.max() < 1
    assert (image - 0.5).abs().max() < 0.2


def test_fft_scale_favours_low_frequencies():
    scale = P._frequency_scale(16, 16, 1.0)
    assert scale[0, 0] == scale.max() and scale[8, 8] == scale.min()


def test_colour_matrix_is_invertible_and_normalized():
    m = P.colour_sqrt_covariance()
    assert m.norm(dim=0).max().item() == pytest.approx(1.0)
    assert torch.linalg.matrix_rank(m) == 3


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        P.FFTImage((3, 32, 32))
    with pytest.raises(ValueError, match="image batch"):
        P.PixelImage(torch.rand(3, 8, 8))


# ---------------------------------------------------------------- the loop

def test_loop_increases_a_class_score_on_a_tiny_model():
    model = tiny_model()
    result = optimize.render(model, O.class_score(3), P.PixelImage(torch.full((1, 3, 32, 32), 0.5)),
                             steps=15, lr=0.05, progress=False)
    assert len(result.history) == 15
    assert result.history[-1] > result.history[0]
    assert result.image.shape == (1, 3, 32, 32)


@pytest.mark.parametrize("make_param", [lambda: P.PixelImage(torch.rand(1, 3, 12, 12)),
                                        lambda: P.FFTImage((1, 3, 12, 12))])
def test_works_on_any_module_and_any_named_layer(make_param):
    model = TwoStage()
    for layer in hooks.layer_names(model):
        if layer in {"head.0", "head.1", "head.2"}:
            obj = O.channel(layer, 0)
        else:
            obj = O.channel(layer, 1)
        result = optimize.render(model, obj, make_param(), steps=8, lr=0.1, progress=False,
                                 transforms=[T.jitter(1)])
        assert result.history[-1] > result.history[0], layer


def test_loop_leaves_the_model_as_it_found_it():
    model = tiny_model().train()
    optimize.render(model, O.class_score(0), P.PixelImage(torch.rand(1, 3, 32, 32)), steps=2, progress=False)
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_inner_layer_objectives_stop_early_so_any_size_works():
    model = tiny_model()  # fc6 needs 32x32 input, conv3 does not
    result = optimize.render(model, O.layer_norm("conv3"), P.PixelImage(torch.rand(1, 3, 48, 40)),
                             steps=3, lr=1.0, optimizer="normalized", progress=False)
    assert result.image.shape == (1, 3, 48, 40)


def test_octaves_grow_the_layer_norm_and_keep_the_size():
    model = tiny_model()
    start = torch.rand(1, 3, 40, 40)
    param = P.PixelImage(start)
    result = optimize.render(model, O.layer_norm("conv2"), param, steps=4, lr=0.05, optimizer="normalized",
                             octaves=3, octave_scale=1.4, transforms=[T.jitter(2)], progress=False)
    assert len(result.history) == 12 and result.image.shape == start.shape
    assert torch.equal(param(), result.image)
    assert optimize.octave_sizes((40, 40), 3, 1.4) == [(20, 20), (29, 29), (40, 40)]
    with torch.no_grad():
        after = hooks.forward_until(model, result.image, "conv2").pow(2).mean()
        before = hooks.forward_until(model, start, "conv2").pow(2).mean()
    assert after > before


def test_regularizers_run_after_each_step():
    model = tiny_model()
    result = optimize.render(model, O.class_score(1), P.PixelImage(torch.rand(1, 3, 32, 32) * 3 - 1), steps=3,
                             regularizers=[T.decay(0.1, 0.5), T.blur_every(0.5, 2), T.clip_small_norm(20, 0.5),
                                           T.clip_small_contribution(20, 0.5), T.clamp()], progress=False)
    assert result.image.min() >= 0 and result.image.max() <= 1


def test_stop_at_ends_the_climb():
    model = tiny_model()
    result = optimize.render(model, O.class_score(3) + 1e9, P.PixelImage(torch.rand(1, 3, 32, 32)),
                             steps=50, stop_at=0.0, progress=False)
    assert len(result.history) == 1


def test_normalized_step_has_fixed_size():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([1.0, -3.0, 0.0, 0.0])
    optimize.NormalizedAscent([p], lr=1.5).step()
    assert p.tolist() == pytest.approx([-1.5, 4.5, 0.0, 0.0])


def test_bad_loop_arguments_are_named():
    model = tiny_model()
    pixels = P.PixelImage(torch.rand(1, 3, 32, 32))
    cases = [(dict(steps=0), ValueError, "steps"), (dict(octaves=0), ValueError, "octaves"),
             (dict(octaves=2, octave_scale=1.0), ValueError, "octave_scale"),
             (dict(optimizer="lbfgs"), ValueError, "adam"), (dict(lr=0), ValueError, "learning rate")]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            optimize.render(model, O.class_score(0), pixels, progress=False, **kwargs)
    with pytest.raises(ValueError, match="PixelImage"):
        optimize.render(model, O.class_score(0), P.FFTImage((1, 3, 32, 32)), regularizers=[T.clamp()],
                        progress=False)
    with pytest.raises(TypeError, match="Objective"):
        optimize.render(model, lambda out: out, pixels, progress=False)
    with pytest.raises(KeyError, match="conv5"):
        optimize.render(model, O.layer_norm("conv9"), pixels, progress=False)


def test_remembered_renders_once_then_loads_the_same_result(isolated_cache):
    calls = []

    def make():
        calls.append(1)
        return optimize.Result(torch.rand(2, 3, 4, 4), [0.5, 1.5], torch.tensor([1.0, 2.0]))

    first = optimize.remembered("test-render", {"steps": 2}, make)
    again = optimize.remembered("test-render", {"steps": 2}, make)
    assert len(calls) == 1 and torch.equal(first.image.cpu(), again.image.cpu())
    assert again.history == [0.5, 1.5] and again.final == 1.5 and torch.equal(again.values.cpu(), first.values.cpu())
    optimize.remembered("test-render", {"steps": 3}, make)  # another key: rendered again
    assert len(calls) == 2
