"""Snapshots during training and the per-layer similarity measures."""
import io

import matplotlib.pyplot as plt
import pytest
import torch

from coursekit import data, evolution, hooks, models, widgets


def test_linear_cka_is_one_for_rotations_and_scalings_and_small_for_noise():
    torch.manual_seed(0)
    a = torch.randn(200, 10)
    rotation, _ = torch.linalg.qr(torch.randn(10, 10))
    assert evolution.linear_cka(a, 3 * a @ rotation) == pytest.approx(1.0, abs=1e-9)
    assert evolution.linear_cka(a, torch.randn(200, 10)) < 0.2


def test_linear_cka_gram_form_for_wide_layers_gives_the_same_value():
    torch.manual_seed(1)
    a, b = torch.randn(20, 50), torch.randn(20, 30)
    b[:, :10] += a[:, :10]
    ac, bc = (a - a.mean(0)).double(), (b - b.mean(0)).double()
    feature_form = (bc.T @ ac).norm() ** 2 / ((ac.T @ ac).norm() * (bc.T @ bc).norm())
    assert evolution.linear_cka(a, b) == pytest.approx(float(feature_form), rel=1e-9)


class NoFloat64Device(torch.Tensor):
    """A tensor that, like one on Apple's MPS, refuses float64 until it is moved to the CPU."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.cpu:
            return args[0].as_subclass(torch.Tensor)
        wants_float64 = func is torch.Tensor.double or torch.float64 in (*args[1:], *kwargs.values())
        if wants_float64:
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support it")
        return super().__torch_function__(func, types, args, kwargs)


def test_similarities_work_on_a_device_without_float64():
    torch.manual_seed(2)
    a, b, w = torch.randn(30, 8), torch.randn(30, 40), torch.randn(6, 5)
    on_device = [t.as_subclass(NoFloat64Device) for t in (a, b, w)]
    with pytest.raises(TypeError, match="float64"):  # the stand-in really refuses, as MPS does
        on_device[0].double()
    assert evolution.linear_cka(on_device[0], on_device[1]) == evolution.linear_cka(a, b)
    assert evolution.weight_change(on_device[2], 2 * on_device[2]) == pytest.approx(0.0, abs=1e-12)


def test_weight_change_and_settling():
    w = torch.randn(5, 5)
    assert evolution.weight_change(w, 2 * w) == pytest.approx(0.0, abs=1e-12)
    assert evolution.weight_change(w, -w) == pytest.approx(2.0)
    assert evolution.settled_at({0: 0.2, 1: 0.95, 2: 0.85, 3: 0.97, 4: 1.0}) == 3


@pytest.fixture(scope="module")
def snapshots():
    torch.manual_seed(0)
    images = (torch.rand(40, 3, 32, 32) * 255).to(torch.uint8)
    train_set = data.ImageSet(images, torch.arange(40) % 10, list(data.CIFAR10_CLASSES))
    model = models.mini_alexnet(width=0.125, dropout=0.0)
    snaps = evolution.train_with_snapshots(model, train_set, [0, 1, 2, 3, 4], batch_size=20, device="cpu")
    return model, snaps, images


def test_train_with_snapshots_keeps_distinct_copies(snapshots):
    model, snaps, _ = snapshots
    assert list(snaps) == [0, 1, 2, 3, 4]
    key = "net.conv1.weight"
    assert not torch.equal(snaps[0][key], snaps[4][key])
    assert torch.equal(snaps[4][key], model.state_dict()[key].cpu())
    with pytest.raises(ValueError, match="increasing"):
        evolution.train_with_snapshots(model, None, [2, 1])


def test_similarity_tables_end_at_one(snapshots):
    model, snaps, images = snapshots
    layers = ["conv1", "conv5", "fc7"]
    table = evolution.similarity_to_final(model, snaps, data.to_float(images[:20]), layers)
    assert all(table[layer][4] == pytest.approx(1.0) for layer in layers)
    changes = evolution.weight_changes(model, snaps, layers)
    assert all(changes[layer][4] == pytest.approx(0.0, abs=1e-9) for layer in layers)
    assert changes["conv1"][0] > 0


def _shown(fig) -> bytes:
    """What a notebook shows: the figure saved as the inline backend does (bbox_inches='tight', so
    the bars beside the filter grid are inside the picture)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def test_snapshot_panel_shows_top9_progress_and_every_control_changes_the_picture(snapshots):
    model, snaps, images = snapshots
    layers = ["conv1", "conv5", "fc7"]
    # a table as 03 builds it from top9_progress: 0 at the start, 1 at the end, a dip below 0 allowed
    progress = {l: {e: (e / 4) ** (i + 1) - 0.1 * (e == 1) for e in snaps} for i, l in enumerate(layers)}
    fig = evolution.snapshot_panel(model, snaps, progress, 2)
    bars = fig.axes[-1]
    assert bars.get_xlabel().startswith("top-9 progress"), bars.get_xlabel()
    widths = {label.get_text(): patch.get_width() for label, patch in zip(bars.get_yticklabels(), bars.patches)}
    assert widths == pytest.approx({l: progress[l][2] for l in layers}), "one bar per layer: its progress at the snapshot"
    plt.close(fig)
    assert [c.name for c in evolution.SNAPSHOT_PANEL] == ["snapshot"]  # one control: every position of it
    slider = evolution.SNAPSHOT_PANEL[0]
    positions = range(int(slider.min), int(slider.max) + 1, int(slider.step))
    assert set(v["snapshot"] for v in widgets.sweep(evolution.SNAPSHOT_PANEL)) <= set(positions)
    pictures = [_shown(evolution.snapshot_panel(model, snaps, progress, snapshot)) for snapshot in positions]
    assert len(set(pictures)) == len(pictures), "moving the snapshot slider must change what is shown"
    with pytest.raises(ValueError):
        evolution.snapshot_panel(model, snaps, progress, 5)
    with pytest.raises(ValueError):
        evolution.snapshot_panel(model, snaps, progress, -1)
    with pytest.raises(ValueError, match="no value at epoch"):
        evolution.snapshot_panel(model, snaps, {"conv1": {0: 0.0}}, 3)


def test_top9_progress_runs_from_zero_at_the_start_to_one_at_the_end_per_layer():
    tops = {0: {"x": torch.tensor([[0, 1, 2], [3, 4, 5]])},
            1: {"x": torch.tensor([[0, 1, 6], [3, 4, 8]])},
            2: {"x": torch.tensor([[0, 6, 7], [3, 8, 9]])}}
    assert evolution.overlap(tops[0]["x"], tops[2]["x"]).tolist() == pytest.approx([1 / 3, 1 / 3])
    progress = evolution.top9_progress(tops)["x"]
    assert progress[0].mean() == pytest.approx(0.0) and progress[2].tolist() == [1.0, 1.0]
    assert progress[1].tolist() == pytest.approx([0.5, 0.5])  # overlap 2/3, start 1/3: half way
    with pytest.raises(ValueError, match="nothing changed"):
        evolution.top9_progress({0: tops[2], 1: tops[2]})


def test_class_purity_is_the_share_of_the_most_common_class_among_a_units_top_images():
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 0, 0, 1])
    purity = evolution.class_purity({0: {"x": torch.tensor([[0, 1, 6], [3, 7, 8]])}}, labels)
    assert purity["x"][0].tolist() == pytest.approx([1.0, 1 / 3])


def test_top_images_are_each_units_strongest_probe_images_at_every_snapshot(snapshots):
    model, snaps, images = snapshots
    probe = data.to_float(images[:20])
    tops = evolution.top_images(model, snaps, probe, ["conv1", "fc7"], k=3)
    assert sorted(tops) == sorted(snaps)
    model.load_state_dict(snaps[0])
    fc7 = hooks.activations(model.eval(), probe, ["fc7"])["fc7"]
    assert torch.equal(tops[0]["fc7"], fc7.topk(3, dim=0).indices.T)
    assert tops[0]["conv1"].shape == (model.net.conv1.out_channels, 3)
    with pytest.raises(ValueError, match="k=3"):
        evolution.top_images(model, snaps, probe[:2], ["fc7"], k=3)
