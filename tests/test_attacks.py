"""coursekit.attacks on tiny models with known answers."""
import copy

import matplotlib.figure
import matplotlib.pyplot
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit import attacks, backbones, data, models, train, widgets

EPS = 8 / 255


def linear_two_class(d=3 * 4 * 4, seed=0, bias=0.0):
    """logit_0 = w.x + b, logit_1 = 0: the loss gradient always points along +-w."""
    torch.manual_seed(seed)
    layer = nn.Linear(d, 2)
    with torch.no_grad():
        layer.weight[0] = torch.randn(d)
        layer.weight[1] = 0
        layer.bias.copy_(torch.tensor([bias, 0.0]))
    return nn.Sequential(nn.Flatten(), layer).eval(), layer.weight[0].detach().clone()


def tiny_cnn(seed=0, classes=10, scale=1.0):
    """A small random CNN whose predictions depend on the image; `scale` sharpens its softmax."""
    torch.manual_seed(seed)
    model = nn.Sequential(models.Normalize((0.5,) * 3, (0.25,) * 3), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, classes))
    with torch.no_grad():
        model[-1].weight.mul_(scale)
    return model.eval()


def batch(n=12, size=8, seed=1):
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    x[:, :, 0, 0], x[:, :, -1, -1] = 0.0, 1.0  # pixels on both edges of the box
    return x


def run(method, model, x, labels=None, eps=EPS, target=None):
    if method == "minimal":
        return attacks.minimal_targeted(model, x, target, max_eps=eps, search_steps=3, steps=5)
    return attacks.attack(method, model, x, labels, eps=eps, target=target)


# ---------------------------------------------------------------- known answers


@pytest.mark.parametrize("label, direction", [(1, 1.0), (0, -1.0)])
def test_fgsm_on_a_linear_model_moves_exactly_eps_sign_w(label, direction):
    model, w = linear_two_class()
    x = torch.full((3, 3, 4, 4), 0.5)
    adversarial = attacks.fgsm(model, x, torch.full((3,), label), eps=0.1)
    expected = x + direction * 0.1 * w.sign().view(1, 3, 4, 4)
    torch.testing.assert_close(adversarial, expected, rtol=0, atol=1e-7)


def test_targeted_fgsm_on_a_linear_model_moves_towards_the_target():
    model, w = linear_two_class()
    x = torch.full((2, 3, 4, 4), 0.5)
    adversarial = attacks.fgsm(model, x, eps=0.1, target=0)  # raise logit 0 = w.x: step along +sign(w)
    torch.testing.assert_close(adversarial, x + 0.1 * w.sign().view(1, 3, 4, 4), rtol=0, atol=1e-7)


@pytest.mark.parametrize("method", ["fgsm", "bim", "pgd"])
@pytest.mark.parametrize("targeted", [False, True])
def test_every_attack_stays_inside_the_eps_ball_and_the_box(method, targeted):
    model, x = tiny_cnn(), batch()
    labels = model(x).argmax(1)
    adversarial = run(method, model, x, labels, target=3 if targeted else None)
    assert adversarial.shape == x.shape
    assert (adversarial - x).abs().max() <= EPS + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial != x).any()


def test_minimal_perturbation_stays_in_the_box_and_within_max_eps():
    model, x = tiny_cnn(scale=5), batch()
    adversarial = run("minimal", model, x, target=2)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - x).abs().max() <= EPS + 1e-6


class Bump(nn.Module):
    """Class 1 wins only in a narrow band of mean brightness, half an eps above the image's:
    FGSM's single full step jumps over the band, small projected steps land in it."""

    def __init__(self, centre, width):
        super().__init__()
        self.centre, self.width = centre, width

    def forward(self, x):
        u = x.flatten(1).mean(1)
        margin = 10 * torch.exp(-((u - self.centre) / self.width) ** 2) - 2
        return torch.stack([torch.zeros_like(margin), margin], 1)


def test_pgd_and_bim_find_what_one_fgsm_step_jumps_over():
    x, labels = torch.full((4, 3, 4, 4), 0.5), torch.zeros(4, dtype=torch.long)
    model = Bump(centre=0.5 + EPS / 2, width=EPS / 4)
    assert attacks.accuracy(model, x, labels) == 1.0
    assert attacks.accuracy(model, attacks.fgsm(model, x, labels, eps=EPS), labels) == 1.0
    assert attacks.accuracy(model, attacks.bim(model, x, labels, eps=EPS), labels) == 0.0
    pgd = attacks.pgd(model, x, labels, eps=EPS, generator=torch.Generator().manual_seed(0))
    assert attacks.accuracy(model, pgd, labels) == 0.0


def test_pgd_raises_the_loss_at_least_as_much_as_fgsm_on_a_fixed_model_and_batch():
    model, x = tiny_cnn(scale=3), batch(n=64)
    labels = model(x).argmax(1)
    fgsm = attacks.fgsm(model, x, labels, eps=4 / 255)
    pgd = attacks.pgd(model, x, labels, eps=4 / 255, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean, after_fgsm, after_pgd = (F.cross_entropy(model(a), labels).item() for a in (x, fgsm, pgd))
    assert clean < after_fgsm <= after_pgd


@pytest.mark.parametrize("method", ["bim", "pgd"])
def test_targeted_iterative_attacks_reach_the_target(method):
    model, x = tiny_cnn(scale=5), batch()
    for target in [0, 7]:
        adversarial = attacks.attack(method, model, x, eps=0.3, target=target)
        assert (model(adversarial).argmax(1) == target).all()


def test_minimal_targeted_finds_the_smallest_eps_that_crosses_a_linear_boundary():
    # a linear boundary w.x + b = 0 is |w.x + b| / ||w||_1 away in max-norm: nothing smaller crosses it
    model, w = linear_two_class(bias=-2.0)
    x = torch.full((4, 3, 4, 4), 0.5)
    x[1:] += 0.02 * torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        distance = (model(x)[:, 0] - model(x)[:, 1]).abs() / w.abs().sum()
    target = 1 - model(x).argmax(1)
    adversarial = attacks.minimal_targeted(model, x, target, search_steps=10)
    assert (model(adversarial).argmax(1) == target).all()
    size = (adversarial - x).flatten(1).abs().max(1).values
    assert (size >= distance * 0.999).all() and (size <= distance * 1.1).all(), (size, distance)


def test_fooling_images_reach_the_confidence_threshold_for_every_class():
    model = tiny_cnn(scale=50)
    images = attacks.fooling_images(model, list(range(10)), size=8, confidence=0.99,
                                    generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 3, 8, 8) and images.min() >= 0 and images.max() <= 1
    probs = model(images).softmax(1)
    assert (probs[torch.arange(10), torch.arange(10)] >= 0.99).all()


class Quantized(nn.Module):
    """Rounds pixels to 4 levels before the network: its gradient is zero almost everywhere."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 3) / 3)


def test_evolved_fooling_images_climb_where_the_gradient_is_zero():
    model = Quantized(tiny_cnn(scale=50))
    targets = list(range(10))
    gradient = attacks.fooling_images(model, targets, size=8, max_steps=50, generator=torch.Generator().manual_seed(0))
    evolved = attacks.evolved_fooling_images(model, targets, size=8, generations=60, children=8, sigma=0.2,
                                             generator=torch.Generator().manual_seed(0))
    assert evolved.images.shape == (10, 3, 8, 8) and evolved.confidence.shape == (61, 10)
    assert evolved.images.min() >= 0 and evolved.images.max() <= 1
    with torch.no_grad():
        p_evolved = model(evolved.images).softmax(1)[torch.arange(10), torch.arange(10)]
        p_noise = model(torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(0))).softmax(1)
        p_gradient = model(gradient).softmax(1)[torch.arange(10), torch.arange(10)]
    torch.testing.assert_close(p_evolved, evolved.confidence[-1])
    assert (evolved.confidence.diff(dim=0) >= 0).all(), "elitism: a parent is only replaced by a fitter child"
    torch.testing.assert_close(p_gradient, p_noise[torch.arange(10), torch.arange(10)])  # no gradient, no step
    assert (p_evolved >= 0.99).float().mean() > 0.5, p_evolved
    assert all(p.grad is None for p in model.parameters())


def test_evolved_fooling_images_repeat_with_a_seeded_generator_and_name_bad_arguments():
    model = tiny_cnn(scale=20)
    run = lambda: attacks.evolved_fooling_images(model, [1, 2], size=8, generations=5, children=3,
                                                 generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(run().images, run().images)
    with pytest.raises(ValueError, match="children"):
        attacks.evolved_fooling_images(model, [1], size=8, children=0)
    with pytest.raises(ValueError, match="generations"):
        attacks.evolved_fooling_images(model, [1], size=8, generations=-1)
    with pytest.raises(ValueError, match="sigma"):
        attacks.evolved_fooling_images(model, [1], size=8, sigma=3)
    with pytest.raises(ValueError, match="unknown target class 12"):
        attacks.evolved_fooling_images(model, [12], size=8)


def test_attacks_leave_the_model_gradients_alone():
    model, x = tiny_cnn(), batch()
    attacks.pgd(model, x, model(x).argmax(1))
    attacks.minimal_targeted(model, x, 1, search_steps=1, steps=2)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_attacks_run_on_the_callers_device():
    model, x = tiny_cnn().cuda(), batch().cuda()
    for method in attacks.METHODS:
        assert run(method, model, x, model(x).argmax(1)).device == x.device


# ---------------------------------------------------------------- measuring and training


def test_accuracy_under_attack_at_eps_zero_is_clean_accuracy_and_falls_with_eps():
    model, x = tiny_cnn(scale=3), batch(n=40)
    images = (x * 255).round().to(torch.uint8)
    labels = model(data.to_float(images)).argmax(1)
    assert attacks.accuracy_under_attack(model, images, labels, 0.0, batch_size=16) == 1.0
    assert attacks.accuracy_under_attack(model, images, labels, 16 / 255, "bim", batch_size=16) < 1.0


def test_adversarial_training_runs_and_keeps_eval_mode():
    model = tiny_cnn()
    train_set = data.ImageSet((batch(n=20) * 255).to(torch.uint8), torch.arange(20) % 10, list("abcdefghij"))
    losses = attacks.adversarial_training(model, train_set, eps=EPS, epochs=2, batch_size=8)
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    assert not model.training


def test_adversarial_training_is_fit_on_the_attacked_batches():
    train_set = data.ImageSet((batch(n=20) * 255).to(torch.uint8), torch.arange(20) % 10, list("abcdefghij"))
    seen = []
    def fgsm_seen(model, images, labels):
        seen.append(images)
        return attacks.fgsm(model, images, labels, eps=EPS)
    clean, hardened, by_hand = tiny_cnn(), tiny_cnn(), tiny_cnn()
    kwargs = dict(epochs=2, batch_size=8, lr=0.01, seed=3)
    attacks.adversarial_training(clean, train_set, eps=0, **kwargs)
    attacks.adversarial_training(hardened, train_set, eps=EPS, method="fgsm", **kwargs)
    train.fit(by_hand, train_set, schedule=None, perturb=fgsm_seen, progress=False, device="cpu", **kwargs)
    assert len(seen) == 6  # 2 epochs x 3 batches
    for a, b in zip(hardened.state_dict().values(), by_hand.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(clean[-1].weight, hardened[-1].weight)
    with pytest.raises(ValueError, match="'pgd'"):
        attacks.adversarial_training(tiny_cnn(), train_set, eps=EPS, method="PGD-7")


def test_accuracy_sweep_is_accuracy_under_each_attack_at_each_level_and_repeats():
    model, x = tiny_cnn(scale=3), batch(n=24)
    images = (x * 255).round().to(torch.uint8)
    labels = model(data.to_float(images)).argmax(1)
    rows = attacks.accuracy_sweep(model, images, labels, [0, 4, 16], steps=3, seed=5)
    assert [row["eps"] for row in rows] == ["0/255", "4/255", "16/255"]
    assert all(rows[0][m] == 100.0 for m in attacks.METHODS)  # eps 0: every label is the model's own
    bim = 100 * attacks.accuracy_under_attack(model, images, labels, 16 / 255, "bim", steps=3)
    assert rows[2]["bim"] == round(bim, 2)
    assert attacks.accuracy_sweep(model, images, labels, [0, 4, 16], steps=3, seed=5) == rows  # cacheable


def test_hardening_fine_tunes_two_copies_and_leaves_the_model_alone():
    model = tiny_cnn()
    before = copy.deepcopy(model.state_dict())
    train_set = data.ImageSet((batch(n=20) * 255).to(torch.uint8), torch.arange(20) % 10, list("abcdefghij"))
    results = attacks.hardening(model, train_set, train_set, train_set, eps=4 / 255, epochs=1, steps=2)
    assert list(results) == ["clean fine-tuning", "FGSM adversarial training"]
    for row in results.values():
        assert set(row) == {"clean accuracy (%)", "PGD accuracy at 4/255 (%)"}
        assert all(0 <= v <= 100 for v in row.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- clear errors


@pytest.mark.parametrize("eps, error, match", [(-0.1, ValueError, r"outside \[0, 1\]"),
                                              (8, ValueError, "8/255"),
                                              ("8/255", TypeError, "number")])
def test_bad_eps_names_the_valid_range(eps, error, match):
    model, x = tiny_cnn(), batch()
    for method in attacks.METHODS:
        with pytest.raises(error, match=match):
            attacks.attack(method, model, x, model(x).argmax(1), eps=eps)


def test_unknown_target_class_names_the_valid_indices():
    model, x = tiny_cnn(), batch()
    for method in attacks.METHODS:
        with pytest.raises(ValueError, match=r"unknown target class 10.*0\.\.9"):
            attacks.attack(method, model, x, eps=EPS, target=10)
    with pytest.raises(ValueError, match="unknown target class -1"):
        attacks.minimal_targeted(model, x, -1)
    with pytest.raises(ValueError, match="unknown target class 12"):
        attacks.fooling_images(model, [12], size=8)
    with pytest.raises(ValueError, match="valid names: airplane"):
        attacks.class_index(data.CIFAR10_CLASSES, "ostrich")
    with pytest.raises(TypeError, match="class_index"):
        attacks.fgsm(model, x, eps=EPS, target="cat")


def test_wrong_shapes_and_types_are_named():
    model, x = tiny_cnn(), batch()
    labels = model(x).argmax(1)
    with pytest.raises(ValueError, match=r"x\[None\]"):
        attacks.fgsm(model, x[0], labels[:1])
    with pytest.raises(ValueError, match="to_float"):
        attacks.fgsm(model, (x * 255).to(torch.uint8), labels)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacks.fgsm(model, x * 2, labels)
    with pytest.raises(ValueError, match="one per image"):
        attacks.fgsm(model, x, labels[:3])
    with pytest.raises(ValueError, match="true labels"):
        attacks.pgd(model, x)
    with pytest.raises(ValueError, match="choose one of"):
        attacks.attack("cw", model, x, labels)
    with pytest.raises(ValueError, match="steps"):
        attacks.bim(model, x, labels, steps=0)
    with pytest.raises(ValueError, match="confidence"):
        attacks.fooling_images(model, [1], size=8, confidence=99)


# ---------------------------------------------------------------- the panel


def tiny_backbone(classes=tuple(data.CIFAR10_CLASSES)):
    return backbones.Backbone("tiny", tiny_cnn(classes=len(classes)), list(classes), 8, data.CIFAR10_MEAN,
                           data.CIFAR10_STD, ["conv1"])


def test_attack_panel_draws_for_every_control_value():
    backbone, x = tiny_backbone(("cat", "dog", "ship")), batch(n=1)  # 3 classes keep the sweep short
    for values in widgets.sweep(attacks.attack_controls(backbone.classes)):
        figure = attacks.attack_panel(backbone, x[0], 1, **values)
        assert isinstance(figure, matplotlib.figure.Figure)
        matplotlib.pyplot.close(figure)
    assert [c.name for c in attacks.ATTACK_PANEL] == ["eps", "method", "target"]
    assert list(attacks.ATTACK_PANEL[2].options)[1:] == data.CIFAR10_CLASSES


@pytest.mark.parametrize("values", [{"eps": 17}, {"eps": -1}, {"method": "cw"}, {"target": "ostrich"}])
def test_attack_panel_rejects_values_just_outside_its_controls(values):
    with pytest.raises(ValueError):
        attacks.attack_panel(tiny_backbone(), batch(n=1)[0], 3, **values)


def test_attack_figure_enhances_the_perturbation_around_grey():
    backbone, x = tiny_backbone(), batch(n=1)[0]
    figure = attacks.attack_figure(backbone, x, (x + 1 / 255).clamp(0, 1), enhance=127)
    assert isinstance(figure, matplotlib.figure.Figure)


def test_methods_are_the_attack_table():
    assert attacks.METHODS == tuple(attacks.ATTACKS) == ("fgsm", "bim", "pgd")
    with pytest.raises(ValueError, match="'fgsm', 'bim', 'pgd'"):
        attacks.attack("cw", tiny_cnn(), batch(n=1), 0)
