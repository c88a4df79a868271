import matplotlib.figure
import pytest
import torch

from coursekit import plot, train, widgets


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
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)


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
