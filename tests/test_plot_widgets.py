import matplotlib.figure
import pytest
import torch

from coursekit import attribution, backbones, hooks, models, patches, plot, receptive, train, widgets


def test_every_plot_returns_a_figure():
    images = torch.rand(6, 3, 8, 8)
    history = train.History()
    for e in range(1, 4):
        history.append(epoch=e, loss=1 / e, train_top1=0.5, test_top1=0.4, test_top5=0.9, test_loss=1.2 / e)
    figures = [
        plot.image_grid(images, titles=list("abcdef"), ncols=3),
        plot.filter_grid(torch.randn(8, 3, 5, 5)),
        plot.activation_maps(torch.rand(1, 6, 7, 7)),
        plot.heatmap(images[0], torch.rand(4, 4), title="heat"),
        plot.curves(history),
        plot.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"]),
        plot.topk_bars([("cat", 0.7), ("dog", 0.2)]),
        plot.predictions_panel(images[:2], [[("cat", 0.7)], [("dog", 0.6)]]),
        plot.message("conv1 has 64 channels"),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)


def test_confusion_matrix_of_imagenet_classes_stays_a_readable_size():
    """1000 classes (the imagenet backbone in notebook 01) would make a 552-inch figure."""
    labels = torch.arange(1000)
    fig = plot.confusion_matrix(labels, labels.roll(1), [f"class {i}" for i in range(1000)])
    assert max(fig.get_size_inches()) <= 10
    assert tuple(plot.confusion_matrix([0, 1], [0, 1], ["a", "b"]).get_size_inches()) == (3.1, 2.5)


def test_filter_grid_rejects_non_first_layer():
    with pytest.raises(ValueError, match="first-layer"):
        plot.filter_grid(torch.randn(8, 16, 3, 3))


def test_to_image_accepts_uint8_and_chw():
    assert plot.to_image(torch.full((3, 4, 5), 255, dtype=torch.uint8)).shape == (4, 5, 3)
    assert plot.to_image(torch.full((3, 4, 5), 255, dtype=torch.uint8)).max() == 1.0


CONTROLS = [widgets.Slider("eps", 0, 16, 1, 4), widgets.Choice("method", ["fgsm", "pgd"], "fgsm")]


def test_validate_names_the_slider_and_range():
    widgets.validate(CONTROLS, eps=16, method="pgd")
    with pytest.raises(ValueError, match=r"'eps'.*\[0, 16\]"):
        widgets.validate(CONTROLS, eps=17)
    with pytest.raises(ValueError, match="choose one of"):
        widgets.validate(CONTROLS, method="cw")
    with pytest.raises(TypeError):
        widgets.validate(CONTROLS, eps="big")


def test_panel_controls_registers_the_callback_with_its_controls(monkeypatch):
    monkeypatch.setattr(widgets, "PANELS", {})
    fixed = [widgets.Slider("eps", 0, 16, 1, 4)]

    @widgets.panel_controls(fixed)
    def eps_panel(model, eps):
        return eps

    @widgets.panel_controls(lambda model: [widgets.Slider("unit", 0, model - 1, 1, 0)])
    def unit_panel(model, image, unit):
        return unit

    assert eps_panel(None, 3) == 3  # the callback itself is unchanged
    assert set(widgets.PANELS) == {f"{__name__}.eps_panel", f"{__name__}.unit_panel"}
    assert widgets.PANELS[f"{__name__}.eps_panel"].build(model=None, image=None) == fixed
    built = widgets.PANELS[f"{__name__}.unit_panel"].build(model=64, image=None)  # image: not the builder's
    assert built == [widgets.Slider("unit", 0, 63, 1, 0)]


COURSE_WIDTH = backbones.cifar10_recipe()["arch"]["width"]


@pytest.mark.parametrize("make", [lambda: models.mini_alexnet(width=COURSE_WIDTH),
                                  lambda: models.alexnet(pretrained=False)], ids=["cifar10", "imagenet"])
def test_unit_sliders_reach_every_channel_of_every_layer_on_both_backbones(make):
    model = make()
    counts = {layer: hooks.channels(model, layer) for layer in ["conv1", "conv2", "conv3", "conv4", "conv5"]}
    for build in (attribution.attribution_controls, patches.unit_controls, receptive.hierarchy_controls):
        controls = {c.name: c for c in build(model)}
        slider = controls.get("unit", controls.get("channel"))
        assert list(controls["layer"].options) == list(counts), build.__qualname__
        assert (slider.min, slider.max) == (0, max(counts.values()) - 1), build.__qualname__
    narrowest = min(counts, key=counts.get)
    assert widgets.unit_beyond(model, narrowest, counts[narrowest] - 1) is None
    figure = widgets.unit_beyond(model, narrowest, counts[narrowest])
    assert f"{narrowest} has {counts[narrowest]} channels" in figure.texts[0].get_text()


def test_sweep_covers_ends_and_options():
    cases = list(widgets.sweep(CONTROLS))
    assert {c["eps"] for c in cases} == {0, 4, 16}
    assert {c["method"] for c in cases} == {"fgsm", "pgd"}


def test_panel_calls_back_and_rerenders_on_change():
    calls = []

    def callback(eps, method):
        calls.append((eps, method))
        return plot.topk_bars([(method, eps / 16)])

    box = widgets.panel(callback, CONTROLS, title="demo")
    assert calls == [(4, "fgsm")]
    slider = box.children[1].children[0]
    slider.value = 9
    assert calls[-1] == (9, "fgsm")


# ---------------------------------------------------------------- readable figures (issue 21)

import re                                    # noqa: E402
from pathlib import Path                     # noqa: E402

import matplotlib.pyplot as plt              # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.image import AxesImage       # noqa: E402
from matplotlib.text import Text             # noqa: E402

import coursekit                             # noqa: E402

MIN_FONT_PT = 10
BANNED_MAPS = {"jet", "rainbow", "gist_rainbow", "nipy_spectral", "gist_ncar", "hsv"}
PACKAGE = Path(coursekit.__file__).parent
NOTEBOOKS = PACKAGE.parent / "notebooks"
SMALL_FONT = re.compile(r"fontsize\s*=\s*(?:([0-9](?:\.\d+)?)\b|[\"'](xx-small|x-small|small)[\"'])")
BANNED_MAP = re.compile(r"[\"'](" + "|".join(BANNED_MAPS) + r")(_r)?[\"']|\bcm\.(" + "|".join(BANNED_MAPS) + r")\b")
NOT_YET: dict[str, str] = {}  # modules allowed to break the rule for now: none


def _offences(path: Path) -> list[str]:
    text = path.read_text()
    return [m.group(0) for pattern in (SMALL_FONT, BANNED_MAP) for m in pattern.finditer(text)]


def test_no_coursekit_module_uses_small_text_or_jet():
    found = {p.name: _offences(p) for p in PACKAGE.rglob("*.py")}
    offending = {name: hits for name, hits in found.items() if hits and name not in NOT_YET}
    assert not offending, f"text below {MIN_FONT_PT} pt or a jet/rainbow map: {offending}"
    assert all(found[name] for name in NOT_YET), "fixed: remove it from NOT_YET"


def test_no_notebook_uses_small_text_or_jet():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert not _offences(path), f"{path.name}: text below {MIN_FONT_PT} pt or a jet/rainbow map: {_offences(path)}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('ax.set_title("x", fontsize=7); ax.legend(fontsize="small"); imshow(h, cmap="jet_r")\n'
                   'plt.cm.rainbow; ax.text(0, 0, "y", fontsize=9); ok(fontsize=10, size=0.5)')
    assert _offences(bad) == ["fontsize=7", 'fontsize="small"', "fontsize=9", '"jet_r"', "cm.rainbow"]


def test_rendered_plot_figures_have_readable_text_and_no_jet():
    images = torch.rand(6, 3, 8, 8)
    history = train.History()
    for e in range(1, 3):
        history.append(epoch=e, loss=1 / e, train_top1=0.5, test_top1=0.4, test_top5=0.9, test_loss=1.2 / e)
    figures = {
        "image_grid": plot.image_grid(images, titles=list("abcdef"), ncols=3, suptitle="grid"),
        "filter_grid": plot.filter_grid(torch.randn(8, 3, 5, 5)),
        "activation_maps": plot.activation_maps(torch.rand(1, 6, 7, 7), suptitle="maps"),
        "heatmap": plot.heatmap(images[0], torch.rand(4, 4), title="heat"),
        "curves": plot.curves(history, title="curves"),
        "confusion_matrix": plot.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"]),
        "topk_bars": plot.topk_bars([("cat", 0.7), ("dog", 0.2)], title="top-k"),
        "predictions_panel": plot.predictions_panel(images[:2], [[("cat", 0.7)], [("dog", 0.6)]]),
    }
    for name, fig in figures.items():
        fig.canvas.draw()
        small = {t.get_text(): t.get_fontsize() for t in fig.findobj(Text)
                 if t.get_visible() and t.get_text() and t.get_fontsize() < MIN_FONT_PT}
        assert not small, f"{name}: text below {MIN_FONT_PT} pt: {small}"
        maps = {im.get_cmap().name for im in fig.findobj(AxesImage) if im.get_array().ndim == 2}
        assert not maps & BANNED_MAPS, f"{name} uses {maps & BANNED_MAPS}"
    assert figures["heatmap"].axes[1].images[-1].get_cmap().name == "inferno"


def test_default_font_sizes_are_readable():
    for key in ["font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize", "figure.titlesize"]:
        size = FontProperties(size=plt.rcParams[key]).get_size_in_points()
        assert size >= MIN_FONT_PT, f"rcParams[{key!r}] = {plt.rcParams[key]} ({size:.1f} pt)"
