"""Adversarial examples in pixel space: FGSM, BIM and PGD (untargeted or targeted), the smallest
targeted perturbation (Szegedy et al. 2014), fooling images grown from noise (Nguyen et al. 2015),
by gradient ascent or by an evolution strategy that needs no gradient, and adversarial training
(train.fit on attacked batches).

Every attack takes a model that maps pixels in [0, 1] to logits (coursekit's PixelModels
normalize inside; wrap any other network so it does), a float batch (N, C, H, W) in [0, 1] on the
model's device, and eps in pixel units: 8/255 means eight grey levels. Results stay inside [0, 1]
and inside the L-infinity eps-ball around the input, on the input's device. Each attack reads the
model in eval mode with gradients on (models.reads_model), whatever mode the model or the caller
is in, and restores the model's mode after; it never touches the model's parameter gradients.
"""
from __future__ import annotations

import copy
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as _data
from . import plot as _plot
from . import train as _train
from .models import reads_model
from .widgets import Choice, Slider, panel_controls, validate

# ---------------------------------------------------------------- argument checks


def check_eps(eps, name: str = "eps") -> float:
    """eps as a float in [0, 1] (pixel units), or a clear error saying how to give it."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{name} must be a number in pixel units (e.g. 8/255), not {eps!r}")
    if not 0 <= eps <= 1:
        raise ValueError(f"{name}={eps} is outside [0, 1]: pixels live in [0, 1], so give eps in pixel "
                         f"units, e.g. {name}=8/255 (={8 / 255:.4f}) for eight grey levels")
    return float(eps)


def check_images(images) -> torch.Tensor:
    """A float batch (N, C, H, W) in [0, 1], or a clear error naming what is wrong."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), not {type(images).__name__}")
    if images.dim() != 4:
        hint = "; add a batch dimension with x[None]" if images.dim() == 3 else ""
        raise ValueError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float pixels in [0, 1], got {images.dtype}; "
                         f"convert with coursekit.data.to_float(images)")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"images must lie in [0, 1], got [{images.min():.3f}, {images.max():.3f}]; "
                         f"attacks work on raw pixels (the model normalizes inside)")
    return images.detach()


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (the CPU for a model without any)."""
    tensor = next(model.parameters(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def num_classes(model: nn.Module, images: torch.Tensor) -> int:
    """How many classes the model scores (one forward pass on one image)."""
    with torch.no_grad():
        return model(images[:1]).shape[1]


def check_classes(classes, n: int, k: int, what: str, device) -> torch.Tensor:
    """Labels or targets as a (n,) long tensor of class indices in [0, k).

    `classes` may be one index for the whole batch, a list, or a tensor."""
    if isinstance(classes, str):
        raise TypeError(f"{what} must be a class index, not the name {classes!r}; "
                        f"use attacks.class_index(classes, {classes!r})")
    tensor = torch.as_tensor(classes, device=device)
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise TypeError(f"{what} must be whole class indices, got {tensor.dtype}")
    tensor = tensor.long().expand(n) if tensor.dim() == 0 else tensor.long()
    if tensor.shape != (n,):
        raise ValueError(f"{what} must be one class index or one per image ({n}), got shape {tuple(tensor.shape)}")
    bad = tensor[(tensor < 0) | (tensor >= k)]
    if len(bad):
        raise ValueError(f"unknown {what} class {int(bad[0])}: the model has {k} classes, so use 0..{k - 1}")
    return tensor


def class_index(classes: Sequence[str], name: str) -> int:
    """The index of class `name`; a clear error lists the valid names."""
    if name not in classes:
        shown = ", ".join(list(classes)[:20]) + (", ..." if len(classes) > 20 else "")
        raise ValueError(f"unknown class {name!r}; valid names: {shown}")
    return list(classes).index(name)


def _prepare(model, images, labels, target):
    """Checked images and the (n,) class tensor the attack needs: labels, or the target."""
    images = check_images(images)
    if labels is None and target is None:
        raise ValueError("give the true labels (untargeted attack) or a target class (targeted attack)")
    k = num_classes(model, images)
    if target is not None:
        return images, check_classes(target, len(images), k, "target", images.device)
    return images, check_classes(labels, len(images), k, "label", images.device)


# ---------------------------------------------------------------- the three attacks


def attack_gradient(model: nn.Module, images: torch.Tensor, classes: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The gradient an attack climbs: of the loss on the true class (untargeted), or of minus the
    loss on the target class (targeted), with respect to the pixels."""
    images = images.detach().requires_grad_(True)
    loss = F.cross_entropy(model(images), classes, reduction="sum")
    grad, = torch.autograd.grad(-loss if targeted else loss, images)
    return grad


def project(adversarial: torch.Tensor, images: torch.Tensor, eps) -> torch.Tensor:
    """The nearest point inside the eps-ball around `images` (L-infinity) and inside [0, 1]."""
    return torch.minimum(torch.maximum(adversarial, images - eps), images + eps).clamp(0, 1)


@reads_model(grad=True)
def fgsm(model: nn.Module, images: torch.Tensor, labels=None, eps: float = 8 / 255, target=None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): x + eps * sign(grad of the loss).

    With `target`, step towards that class instead (x - eps * sign(grad of its loss))."""
    eps = check_eps(eps)
    images, classes = _prepare(model, images, labels, target)
    grad = attack_gradient(model, images, classes, targeted=target is not None)
    return (images + eps * grad.sign()).clamp(0, 1)


@reads_model(grad=True)
def bim(model: nn.Module, images: torch.Tensor, labels=None, eps: float = 8 / 255, target=None,
        steps: int = 10, step_size: float | None = None) -> torch.Tensor:
    """Basic iterative method (Kurakin et al. 2017): FGSM steps of `step_size` (default eps/4),
    each projected back into the eps-ball and [0, 1]. Starts at the image itself."""
    return _iterate(model, images, labels, eps, target, steps, step_size, start=None)


@reads_model(grad=True)
def pgd(model: nn.Module, images: torch.Tensor, labels=None, eps: float = 8 / 255, target=None,
        steps: int = 10, step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018): BIM from a uniformly random point of the eps-ball,
    with their step size 2.5 * eps / steps by default (so the steps can cross the whole ball)."""
    eps = check_eps(eps)
    images = check_images(images)
    step_size = 2.5 * eps / steps if step_size is None and isinstance(steps, int) and steps >= 1 else step_size
    noise = torch.rand(images.shape, generator=generator).to(images.device, images.dtype)
    start = (images + (2 * noise - 1) * eps).clamp(0, 1)
    return _iterate(model, images, labels, eps, target, steps, step_size, start)


def _iterate(model, images, labels, eps, target, steps, step_size, start):
    eps = check_eps(eps)
    step_size = eps / 4 if step_size is None else check_eps(step_size, "step_size")
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a whole number >= 1, not {steps!r}")
    images, classes = _prepare(model, images, labels, target)
    return signed_steps(model, images, classes, target is not None, eps, step_size, steps, start)


def signed_steps(model, images, classes, targeted: bool, eps, step_size, steps: int, start=None) -> torch.Tensor:
    """The loop of BIM and PGD: `steps` signed gradient steps, each projected into the eps-ball
    (eps may be one number or one per image, shaped (N, 1, 1, 1))."""
    adversarial = images if start is None else start
    for _ in range(steps):
        grad = attack_gradient(model, adversarial, classes, targeted)
        adversarial = project(adversarial + step_size * grad.sign(), images, eps)
    return adversarial.detach()


ATTACKS = {"fgsm": fgsm, "bim": bim, "pgd": pgd}
METHODS = tuple(ATTACKS)


def attack(method: str, model, images, labels=None, eps: float = 8 / 255, target=None, **options) -> torch.Tensor:
    """Run the attack called `method` (one of METHODS: 'fgsm', 'bim' or 'pgd')."""
    if method not in ATTACKS:
        raise ValueError(f"unknown attack {method!r}; choose one of {list(METHODS)}")
    return ATTACKS[method](model, images, labels, eps=eps, target=target, **options)


# ---------------------------------------------------------------- Szegedy: the smallest targeted perturbation


@reads_model(grad=True)
def minimal_targeted(model: nn.Module, images: torch.Tensor, target, max_eps: float = 32 / 255,
                     search_steps: int = 7, steps: int = 10) -> torch.Tensor:
    """Szegedy et al. 2014: the smallest perturbation r with f(x + r) = target and x + r in [0, 1].

    They minimized c * |r| + loss(f(x + r), target) with box-constrained L-BFGS and searched over c.
    We measure r in grey levels (max |r|, the L-infinity norm) and bisect eps per image: targeted BIM
    inside the eps-ball; if it reaches the target, try a smaller ball, else a larger one. Images that
    do not reach the target even at `max_eps` get the attempt at `max_eps`."""
    max_eps = check_eps(max_eps, "max_eps")
    images, target = _prepare(model, images, None, target)
    low = torch.zeros(len(images), 1, 1, 1, device=images.device)
    high = torch.full_like(low, max_eps)
    best = signed_steps(model, images, target, True, high, high / 4, steps)
    for _ in range(search_steps):
        eps = (low + high) / 2
        adversarial = signed_steps(model, images, target, True, eps, eps / 4, steps)
        with torch.no_grad():
            hit = (model(adversarial).argmax(1) == target).view(-1, 1, 1, 1)
        best = torch.where(hit, adversarial, best)
        low, high = torch.where(hit, low, eps), torch.where(hit, eps, high)
    return best


# ---------------------------------------------------------------- Nguyen: fooling images from noise


def _noise_start(model, target, size, channels, generator, device):
    """Both fooling searches start alike: one uniform-noise image (channels, size, size) per target
    class, on `device` (default: the model's), and the targets checked against the model's classes."""
    device = device or model_device(model)
    target = torch.as_tensor(target)
    noise = torch.rand((target.numel() or 1, channels, size, size), generator=generator).to(device)
    return noise, check_classes(target, len(noise), num_classes(model, noise), "target", device)


@reads_model(grad=True)
def fooling_images(model: nn.Module, target, size: int, confidence: float = 0.99, max_steps: int = 300,
                   step_size: float = 2 / 255, channels: int = 3, generator: torch.Generator | None = None,
                   device=None) -> torch.Tensor:
    """Nguyen et al. 2015 (their gradient-ascent variant): start from uniform noise and climb
    log p(target | x) with signed steps (shrinking linearly to zero over `max_steps`) until
    p >= `confidence`; each image stops when it gets there.

    `target`: one class index per image (a list or tensor). Returns (N, channels, size, size) in [0, 1]."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be a probability in (0, 1), e.g. 0.99, not {confidence!r}")
    step_size = check_eps(step_size, "step_size")
    x, target = _noise_start(model, target, size, channels, generator, device)
    for i in range(max_steps):
        x = x.detach().requires_grad_(True)
        log_p = model(x).log_softmax(1).gather(1, target[:, None]).squeeze(1)
        climbing = log_p.detach().exp() < confidence
        if not climbing.any():
            break
        grad, = torch.autograd.grad(log_p.sum(), x)
        step = step_size * (1 - i / max_steps)  # shrinking steps settle at the top instead of circling it
        x = (x + step * grad.sign() * climbing[:, None, None, None]).clamp(0, 1)
    return x.detach()


class Evolved(NamedTuple):
    """What `evolved_fooling_images` returns: the final images (N, C, S, S) in [0, 1], and the
    confidence p(target | image) of each lineage's parent after every generation, (generations + 1, N)."""
    images: torch.Tensor
    confidence: torch.Tensor


@reads_model()
def evolved_fooling_images(model: nn.Module, target, size: int, generations: int = 150, children: int = 4,
                           sigma: float = 0.03, channels: int = 3, generator: torch.Generator | None = None,
                           device=None) -> Evolved:
    """Fooling images found with no gradient at all (Nguyen et al. 2015, direct encoding): a
    (1 + lambda) evolution strategy with one lineage per target class.

    Each genome is the image itself, one gene per pixel value (N, channels, size, size), starting
    from uniform noise in [0, 1]. Every generation each parent makes `children` (lambda) copies, adds
    Gaussian noise of standard deviation `sigma` (pixel units: 0.03 is about 8 grey levels) to every
    pixel and clips to [0, 1]; the fittest child replaces its parent if its confidence
    p(target | child) is higher (elitism: the parent survives otherwise). The model is only run
    forward (N * children images per generation); no gradient is taken.

    Nguyen et al. used MAP-Elites instead: one archive holding the best image so far for every class,
    where an offspring of any elite takes over each class it beats, so progress on one class seeds
    others; they mutated 10% of the pixels (halving every 1000 generations) with polynomial
    mutation, and ran thousands of generations on full-size ImageNet genomes. Here each class
    evolves alone and every pixel mutates, for a few hundred generations at most.

    `target`: one class index per lineage (list or tensor). Returns Evolved(images, confidence),
    the images on `device` (default: the model's), the confidence on the CPU. Raises ValueError for
    generations < 0, children < 1, sigma outside [0, 1] or a target the model has no class for."""
    if not (isinstance(generations, int) and generations >= 0):
        raise ValueError(f"generations must be a whole number >= 0, not {generations!r}")
    if not (isinstance(children, int) and children >= 1):
        raise ValueError(f"children (lambda) must be a whole number >= 1, not {children!r}")
    sigma = check_eps(sigma, "sigma")
    parents, target = _noise_start(model, target, size, channels, generator, device)
    device = parents.device
    fitness = model(parents).softmax(1).gather(1, target[:, None]).squeeze(1)
    history = [fitness]
    for _ in range(generations):
        noise = torch.randn((len(parents), children, *parents.shape[1:]), generator=generator).to(device)
        brood = (parents[:, None] + sigma * noise).clamp(0, 1)  # (N, lambda, C, S, S)
        p = model(brood.flatten(0, 1)).softmax(1).view(len(parents), children, -1)
        p = p.gather(2, target[:, None, None].expand(-1, children, 1)).squeeze(2)  # (N, lambda)
        best_p, best = p.max(1)
        better = best_p > fitness
        fittest = brood[torch.arange(len(parents), device=device), best]
        parents = torch.where(better[:, None, None, None], fittest, parents)
        fitness = torch.where(better, best_p, fitness)
        history.append(fitness)
    return Evolved(parents, torch.stack(history).cpu())


# ---------------------------------------------------------------- measuring and defending


@reads_model()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images the model classifies as their label."""
    return (model(images).argmax(1) == labels.to(images.device)).float().mean().item()


@reads_model(grad=True)
def accuracy_under_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                          method: str = "pgd", batch_size: int = 250, **options) -> float:
    """Accuracy on adversarial versions of `images` (uint8 or float), attacked in batches."""
    device = model_device(model)
    correct = 0
    for i in range(0, len(images), batch_size):
        x = _data.to_float(images[i:i + batch_size].to(device))
        y = labels[i:i + batch_size].to(device)
        adversarial = attack(method, model, x, y, eps=eps, **options) if eps > 0 else x
        correct += accuracy(model, adversarial, y) * len(y)
    return correct / max(1, len(images))


def accuracy_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, levels: Sequence[int],
                   steps: int, seed: int = 0) -> list[dict]:
    """The accuracy-versus-eps curve (Kurakin et al. 2017; Madry et al. 2018): accuracy (%) under
    FGSM, BIM and PGD at eps = k/255 for each k in `levels` (grey levels). BIM and PGD take `steps`
    steps; PGD's random starts are drawn from a generator seeded with `seed`, so the numbers repeat.
    images: (N, 3, H, W) uint8 or [0, 1] floats; labels: (N,). Returns one record per level,
    {"eps": "k/255", "fgsm": %, "bim": %, "pgd": %} (plain floats, which cache.remember keeps)."""
    rows = []
    for k in levels:
        row = {"eps": f"{k}/255"}
        for method in METHODS:
            options = {} if method == "fgsm" else {"steps": steps}
            if method == "pgd":
                options["generator"] = torch.Generator().manual_seed(seed)
            row[method] = round(100 * accuracy_under_attack(model, images, labels, k / 255, method, **options), 2)
        rows.append(row)
    return rows


def hardening(model: nn.Module, train_set: _data.ImageSet, test_set: _data.ImageSet,
              robust_set: _data.ImageSet, eps: float, epochs: int, steps: int, lr: float = 0.01,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """Adversarial training against its fair baseline (Goodfellow et al. 2015; Madry et al. 2018):
    two copies of `model` fine-tuned alike for `epochs` on `train_set`, one on clean images and one on
    FGSM images at `eps` (pixel units: 4/255 is four grey levels), each then measured on clean
    `test_set` and under a `steps`-step PGD at `eps` on `robust_set` (PGD is the slow part: a smaller
    set). `model` itself is not changed. Returns {"clean fine-tuning" | "FGSM adversarial training":
    {"clean accuracy (%)": %, "PGD accuracy at k/255 (%)": %}}."""
    pgd_column = f"PGD accuracy at {round(eps * 255, 1):g}/255 (%)"
    results = {}
    for name, train_eps in [("clean fine-tuning", 0.0), ("FGSM adversarial training", eps)]:
        net = copy.deepcopy(model)
        adversarial_training(net, train_set, eps=train_eps, epochs=epochs, lr=lr, seed=seed)
        results[name] = {
            "clean accuracy (%)": 100 * accuracy_under_attack(net, test_set.images, test_set.labels, 0.0),
            pgd_column: 100 * accuracy_under_attack(net, robust_set.images, robust_set.labels, eps, "pgd",
                                                    steps=steps, generator=torch.Generator().manual_seed(seed))}
    return results


def adversarial_training(model: nn.Module, train_set: _data.ImageSet, eps: float, epochs: int = 1,
                         method: str = "fgsm", lr: float = 0.01, batch_size: int = 128, seed: int = 0,
                         **options) -> list[float]:
    """Train on adversarial examples made against the current weights (Goodfellow et al. 2015 with
    FGSM, Madry et al. 2018 with PGD): train.fit at a constant lr, every augmented batch replaced by
    its attacked version (`method`, `eps`, `options` as in `attack`); eps=0 trains on clean images,
    the fair baseline. Trains on the model's device. Returns the mean training loss per epoch."""
    check_eps(eps)
    if method not in ATTACKS:
        raise ValueError(f"unknown attack {method!r}; choose one of {list(ATTACKS)}")
    perturb = None if eps == 0 else lambda net, x, y: attack(method, net, x, y, eps=eps, **options)
    history = _train.fit(model, train_set, epochs=epochs, batch_size=batch_size, lr=lr, schedule=None,
                         perturb=perturb, seed=seed, progress=False, device=model_device(model))
    return history["loss"]


# ---------------------------------------------------------------- the "Try it" panel

NO_TARGET = "(untargeted)"


def attack_controls(classes: Sequence[str]) -> list:
    """eps in grey levels (k/255), the attack, and an optional target class."""
    return [Slider("eps", 0, 16, 1, 4, "eps (x/255)"), Choice("method", METHODS, "fgsm"),
            Choice("target", [NO_TARGET, *classes], NO_TARGET)]


ATTACK_PANEL = attack_controls(_data.CIFAR10_CLASSES)  # the cifar10 backbone's panel


@panel_controls(lambda backbone: attack_controls(backbone.classes))
def attack_panel(backbone, image: torch.Tensor, label: int, eps: float = 4, method: str = "fgsm",
                 target: str = NO_TARGET):
    """Original, perturbation (auto-scaled) and adversarial image, with top-5 bars under each image."""
    validate(attack_controls(backbone.classes), eps=eps, method=method, target=target)
    x = image if image.dim() == 4 else image[None]
    goal = None if target == NO_TARGET else class_index(backbone.classes, target)
    adversarial = attack(method, backbone.model, x, label, eps=eps / 255, target=goal)
    title = f"{method.upper()}, eps = {eps:g}/255" + ("" if goal is None else f", target '{target}'")
    return attack_figure(backbone, x[0], adversarial[0], title)


def attack_figure(backbone, image: torch.Tensor, adversarial: torch.Tensor, title: str = "", enhance=None):
    """The slides' three pictures: image, perturbation (x `enhance` around grey, or auto-scaled when
    None) and adversarial image, each prediction's top-5 bars below."""
    import matplotlib.pyplot as plt
    delta = adversarial - image
    shown = _plot.rescale(delta) if enhance is None else (0.5 + enhance * delta).clamp(0, 1)
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.2), gridspec_kw={"height_ratios": [3, 2]})
    preds = backbone.predict(torch.stack([image, adversarial]), k=5)
    scale = "auto-scaled" if enhance is None else f"x{enhance:g}"
    for ax, img, name in zip(axes[0], [image, shown, adversarial], ["original", f"perturbation ({scale})", "adversarial"]):
        ax.imshow(_plot.to_image(img), interpolation="nearest")
        ax.axis("off")
        ax.set_title(name, fontsize=10)
    axes[0, 1].set_title(f"perturbation ({scale})\nmax |r| = {delta.abs().max() * 255:.1f}/255", fontsize=10)
    for ax, p, name in [(axes[1, 0], preds[0], "original"), (axes[1, 2], preds[1], "adversarial")]:
        _plot.topk_bars(p, title=f"{name}: {p[0][0]} ({p[0][1]:.0%})", ax=ax)
    axes[1, 1].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
