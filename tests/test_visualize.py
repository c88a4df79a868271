"""The papers' recipes and their Try-it panels, on a tiny untrained MiniAlexNet."""
import matplotlib.pyplot as plt
import pytest
import torch

from coursekit import backbones, data, models, visualize, widgets


@pytest.fixture(scope="module")
def tiny_backbone():
    torch.manual_seed(0)
    model = models.mini_alexnet(width=0.0625, dropout=0.0).eval()
    return backbones.Backbone("cifar10", model, list(data.CIFAR10_CLASSES), 32, data.CIFAR10_MEAN, data.CIFAR10_STD,
                           list(model.aliases), "tiny test model")


def test_class_model_raises_the_score_and_stays_an_image(tiny_backbone):
    bb = tiny_backbone
    for objective in ("score", "probability"):
        result = visualize.class_model(bb.model, 2, bb.mean, 32, lam=0.1, steps=10, lr=0.5, objective=objective)
        assert result.history[-1] > result.history[0]
        assert result.image.min() >= 0 and result.image.max() <= 1
    with pytest.raises(ValueError, match="score"):
        visualize.class_model(bb.model, 2, bb.mean, 32, objective="logit")


def test_mean_image_is_the_mean_colour():
    img = visualize.mean_image((0.1, 0.2, 0.3), 4)
    assert img.shape == (1, 3, 4, 4) and img[0, 2].unique().item() == pytest.approx(0.3)


def test_yosinski_settings_build_their_regularizers():
    for setting in visualize.YOSINSKI_SETTINGS.values():
        regs = visualize.yosinski_regularizers(**setting)
        assert type(regs[-1]).__name__ == "Clamp"
    kinds = [type(r).__name__ for r in visualize.yosinski_regularizers(**visualize.YOSINSKI_SETTINGS[2])]
    assert kinds == ["Decay", "ClipSmallNorm", "Clamp"]
    kinds = [type(r).__name__ for r in visualize.yosinski_regularizers(**visualize.YOSINSKI_SETTINGS[4])]
    assert kinds == ["BlurEvery", "ClipSmallContribution", "Clamp"]


def test_high_frequency_energy_separates_noise_from_smooth():
    torch.manual_seed(0)
    noise = torch.rand(1, 3, 32, 32)
    t = torch.arange(32) * 2 * torch.pi / 32
    smooth = (0.5 + 0.2 * torch.cos(t[None, :]) + 0.2 * torch.sin(2 * t[:, None])).expand(1, 3, 32, 32)
    assert visualize.high_frequency_energy(noise).item() > 0.6
    assert visualize.high_frequency_energy(smooth).item() < 0.05
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checker = ((rows + cols) % 2).float().expand(1, 3, 8, 8)
    assert visualize.high_frequency_energy(checker).item() == pytest.approx(1.0)


def test_regularized_class_model_pixels_and_fft(tiny_backbone):
    bb = tiny_backbone
    for kwargs in (dict(), dict(parameterization="fft"), dict(**visualize.YOSINSKI_SETTINGS[1])):
        kwargs.pop("steps", None)
        result = visualize.regularized_class_model(bb.model, 1, 32, 5, **kwargs)
        assert result.image.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="fft"):
        visualize.regularized_class_model(bb.model, 1, 32, 5, parameterization="wavelet")


def test_class_models_batch_one_image_per_class(tiny_backbone):
    bb = tiny_backbone
    setting = {k: v for k, v in visualize.YOSINSKI_SETTINGS[1].items() if k != "steps"}
    batch = visualize.regularized_class_model(bb.model, [1, 4, 1], 32, 5, noise=0.02, **setting)
    assert batch.image.shape == (3, 3, 32, 32) and batch.values.shape == (3,)
    one = visualize.one_of(batch, 1)
    assert one.image.shape == (1, 3, 32, 32) and one.final == batch.values[1].item()
    assert 0.5 <= visualize.grey_share(batch.image).min() < 1  # setting 1 clips half the pixels by norm
    assert visualize.grey_share(torch.rand(2, 3, 8, 8)).tolist() == [0.0, 0.0]


def test_recognized_compares_the_judges_top1_with_each_class(tiny_backbone):
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        top = tiny_backbone.model(images).argmax(1)
    assert visualize.recognized(tiny_backbone.model, images, top).all()
    assert not visualize.recognized(tiny_backbone.model, images, (top + 1) % 10).any()


def test_phase_scrambled_keeps_the_norm_and_spectrum_but_not_the_pattern():
    edit = torch.zeros(1, 3, 24, 21)
    edit[..., 8:16, 6:14] = 1.0  # a square: all its structure is in the phases
    control = visualize.phase_scrambled(edit, seed=0)
    assert control.shape == edit.shape
    assert control.norm().item() == pytest.approx(edit.norm().item(), rel=1e-5)
    assert torch.allclose(torch.fft.rfft2(control).abs(), torch.fft.rfft2(edit).abs(), atol=1e-4)
    assert (control - edit).norm() > 0.5 * edit.norm()
    assert not torch.equal(control, visualize.phase_scrambled(edit, seed=1))


def test_deepdream_grows_the_layer_norm(tiny_backbone):
    model = tiny_backbone.model
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 48, 48)
    result = visualize.deepdream(model, photo, "conv2", octaves=2, steps=4, step_size=10)
    assert result.image.shape == photo.shape
    assert visualize.layer_energy(model, result.image, "conv2") > visualize.layer_energy(model, photo, "conv2")


def test_invert_lowers_the_feature_error(tiny_backbone):
    model = tiny_backbone.model
    torch.manual_seed(0)
    target = torch.rand(1, 3, 32, 32)
    result = visualize.invert(model, target, "conv2", steps=30, tv_weight=0.01, starts=2)
    assert result.image.shape == (2, 3, 32, 32)
    assert -result.history[-1] < -result.history[0]
    feat, pixel = visualize.feature_and_pixel_error(model, target, "conv2", result.image)
    assert feat.shape == pixel.shape == (2,)
    feat0, pixel0 = visualize.feature_and_pixel_error(model, target, "conv2", target)
    assert feat0.item() == 0 and pixel0.item() == 0


def test_tv_weight_grows_with_depth():
    weights = [visualize.tv_weight_for(layer) for layer in visualize.INVERSION_LAYERS]
    assert weights == sorted(weights) and weights[0] == 1 and weights[-1] == 100


def _sweep(callback, controls):
    for values in widgets.sweep(controls):
        fig = callback(**values)
        assert isinstance(fig, plt.Figure)
        plt.close(fig)


def test_class_model_panel_sweeps_and_rejects_bad_values(tiny_backbone, monkeypatch):
    bb = tiny_backbone
    controls = visualize.class_model_controls(bb.classes)
    # the sweep checks every value is accepted; fewer steps keep it fast
    monkeypatch.setattr(visualize, "class_model", _capped(visualize.class_model, "steps", 3, positional=5))
    _sweep(lambda **v: visualize.class_model_panel(bb, **v), controls)
    with pytest.raises(ValueError, match="log10_lam"):
        visualize.class_model_panel(bb, "cat", 0.5, 10, 0.1)
    with pytest.raises(ValueError, match="class_name"):
        visualize.class_model_panel(bb, "unicorn", -1.0, 10, 0.1)


def _title_numbers(fig) -> list[float]:
    import re
    return [float(v) for v in re.findall(r"=(-?[\d.]+(?:e[-+]?\d+)?)", fig.axes[0].get_title())]


def test_class_model_panel_lambda_trades_score_for_norm(tiny_backbone):
    """Moving the lambda slider changes the figure's numbers: the prior pulls the image's squared
    norm ||I - mean||^2 down (issue 15: a mean-over-pixels prior left every slider value alike)."""
    low, high = (visualize.class_model_panel(tiny_backbone, "cat", v, 20, 1.0)
                 for v in (-4.0, -0.5))
    (lam_low, s_low, n_low), (lam_high, s_high, n_high) = _title_numbers(low), _title_numbers(high)
    plt.close(low), plt.close(high)
    assert (lam_low, lam_high) == (pytest.approx(1e-4), pytest.approx(0.32))
    assert n_high < 0.5 * n_low, (n_low, n_high)
    assert s_high != s_low


def test_l2_prior_is_stable_and_pulls_towards_the_mean_as_lambda_grows(tiny_backbone):
    bb = tiny_backbone
    norms = [visualize.score_and_norm(bb.model, visualize.class_model(bb.model, 3, bb.mean, 32, lam=lam, steps=20,
                                                                      lr=1.0).image, 3, bb.mean)[1]
             for lam in (0.0, 0.01, 0.1, 0.3)]
    assert norms == sorted(norms, reverse=True), norms


def test_regularization_panel_sweeps_and_rejects_bad_values(tiny_backbone, monkeypatch):
    bb = tiny_backbone
    monkeypatch.setattr(visualize, "regularized_class_model",
                        _capped(visualize.regularized_class_model, "steps", 3, positional=3))
    _sweep(lambda **v: visualize.regularization_panel(bb, 0, **v), visualize.REGULARIZATION_PANEL)
    defaults = {c.name: c.value for c in visualize.REGULARIZATION_PANEL}
    with pytest.raises(ValueError, match="norm_pct"):
        visualize.regularization_panel(bb, 0, **{**defaults, "norm_pct": 100})


def test_deepdream_panel_sweeps_and_rejects_bad_values(tiny_backbone, monkeypatch):
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 40, 40)
    monkeypatch.setattr(visualize, "deepdream", _capped(visualize.deepdream, "steps", 2, positional=6))
    _sweep(lambda **v: visualize.deepdream_panel(tiny_backbone.model, photo, **v), visualize.DEEPDREAM_PANEL)
    with pytest.raises(ValueError, match="octaves"):
        visualize.deepdream_panel(tiny_backbone.model, photo, "conv3", 7, 5)
    with pytest.raises(ValueError, match="layer"):
        visualize.deepdream_panel(tiny_backbone.model, photo, "fc8", 2, 5)


def test_inversion_panel_sweeps_and_rejects_bad_values(tiny_backbone, monkeypatch):
    torch.manual_seed(0)
    target = torch.rand(1, 3, 32, 32)
    monkeypatch.setattr(visualize, "invert", _capped(visualize.invert, "steps", 3, positional=3))
    _sweep(lambda **v: visualize.inversion_panel(tiny_backbone.model, target, **v), visualize.INVERSION_PANEL)
    with pytest.raises(ValueError, match="depth"):
        visualize.inversion_panel(tiny_backbone.model, target, 9, 0.05, 100)
    with pytest.raises(ValueError, match="tv_weight"):
        visualize.inversion_panel(tiny_backbone.model, target, 2, -1.0, 100)


def _capped(fn, name, cap, positional):
    """fn with its `name` argument (keyword, or positional at index `positional`) capped at `cap`."""
    def wrapper(*args, **kwargs):
        args = list(args)
        if name in kwargs:
            kwargs[name] = min(kwargs[name], cap)
        elif len(args) > positional:
            args[positional] = min(args[positional], cap)
        return fn(*args, **kwargs)
    return wrapper
