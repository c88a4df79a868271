"""Cross-checks: where the course writes an algorithm itself, it equals the library that has it.

    coursekit.attribution  gradient, saliency, guided, deconvnet, occlusion  vs captum.attr
    coursekit.attacks      FGSM, BIM, PGD                                    vs torchattacks
    coursekit.models       LocalResponseNorm (forward and gradient)          vs torch.nn.LocalResponseNorm
    coursekit.transforms   gaussian_blur                                     vs torchvision's gaussian_blur

Tolerances, each relative to the largest |value| of the library's answer:
    FLOAT64 = 1e-9  float64 on both sides: the two compute the same sums, perhaps in another
                    order, so they agree to ~1e-15; 1e-9 leaves room for that and nothing else.
    FLOAT32 = 1e-5  where one side rounds to float32 (float32 ulp ~1.2e-7, a few roundings
                    on the way): Captum's Occlusion returns float32 even for float64 inputs,
                    and the course's own images are float32.
Each test fails when the coursekit side is broken (its rule swapped, its sign or projection
changed, alpha taken per channel, the border mode changed): that was checked by hand.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks
import torchvision.transforms.functional as TF
from captum.attr import (Deconvolution, GuidedBackprop, NeuronDeconvolution, NeuronGradient,
                         NeuronGuidedBackprop, Occlusion, Saliency)

from coursekit import attacks, attribution, models
from coursekit.transforms import gaussian_blur

FLOAT64 = 1e-9
FLOAT32 = 1e-5

# Captum's notes that it set requires_grad and hooked the ReLUs, on every call
pytestmark = [pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients"),
              pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU activations")]


def assert_matches(ours: torch.Tensor, theirs: torch.Tensor, tol: float):
    """max |ours - theirs| <= tol * max |theirs|, with both numbers in the message."""
    assert ours.shape == theirs.shape, f"shapes differ: ours {tuple(ours.shape)}, theirs {tuple(theirs.shape)}"
    ours, theirs = ours.double(), theirs.double()
    scale = theirs.abs().max().item()
    assert scale > 0, "the library's answer is all zeros: this check would prove nothing"
    error = (ours - theirs).abs().max().item()
    assert error <= tol * scale, f"max |difference| {error:.3g} > {tol:g} x max |value| {scale:.3g}"


# ---------------------------------------------------------------- models: tiny, and MiniAlexNet

def tiny_net() -> nn.Sequential:
    """Conv-ReLU-pool-conv-ReLU-fc-ReLU-fc in float64: every part the backward rules touch."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 5)).double().eval()


def mini_alexnet() -> models.PixelModel:
    """MiniAlexNet at 1/8 width (LRN, overlapping pooling, dropout off by eval) in float64."""
    torch.manual_seed(0)
    return models.mini_alexnet(width=0.125).double().eval()


MODELS = {"tiny": (tiny_net, 12), "mini_alexnet": (mini_alexnet, 32)}


@pytest.fixture(params=list(MODELS), scope="module")
def model_and_images(request):
    make, side = MODELS[request.param]
    model = make()
    images = torch.rand(3, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, images


# ---------------------------------------------------------------- attribution vs Captum

def captum_saliency_signed(model, x, target):
    return Saliency(model).attribute(x, target=target, abs=False)


def captum_saliency(model, x, target):
    """Captum's Saliency is |dS/dI| per channel; Simonyan's map takes the max over channels after."""
    return Saliency(model).attribute(x, target=target).amax(1)


def captum_guided(model, x, target):
    return GuidedBackprop(model).attribute(x, target=target)


def captum_deconvnet(model, x, target):
    return Deconvolution(model).attribute(x, target=target)


CLASS_METHODS = {"gradient": (attribution.gradient, captum_saliency_signed),
                 "saliency": (attribution.saliency, captum_saliency),
                 "guided": (attribution.guided_backprop, captum_guided),
                 "deconvnet": (attribution.deconvnet, captum_deconvnet)}


@pytest.mark.parametrize("method", list(CLASS_METHODS))
def test_class_attribution_equals_captum(model_and_images, method):
    model, x = model_and_images
    ours, theirs = CLASS_METHODS[method]
    target = torch.tensor([0, 3, 1])  # a different class per image: each image's gradient is its own
    assert_matches(ours(model, x, target), theirs(model, x, target), FLOAT64)


UNIT_METHODS = {"gradient": (attribution.gradient, NeuronGradient),
                "guided": (attribution.guided_backprop, NeuronGuidedBackprop),
                "deconvnet": (attribution.deconvnet, NeuronDeconvolution)}


@pytest.mark.parametrize("position", ["max", (2, 1)])
@pytest.mark.parametrize("method", list(UNIT_METHODS))
def test_unit_attribution_equals_captum_neuron_methods(model_and_images, method, position):
    """One unit of a conv layer (Zeiler & Fergus' view): Captum's Neuron* methods select it by
    (channel, row, col), or by a function of the layer output for the strongest position."""
    model, x = model_and_images
    layer = "conv3" if isinstance(model, models.PixelModel) else "3"  # an alias, or torch's name
    module = model.get_submodule(getattr(model, "aliases", {}).get(layer, layer))
    unit = 2
    selector = ((lambda out: out[:, unit].flatten(1).max(1).values) if position == "max"
                else (unit, *position))
    ours, theirs = UNIT_METHODS[method]
    assert_matches(ours(model, x, layer=layer, unit=unit, position=position),
                   theirs(model, module).attribute(x, neuron_selector=selector), FLOAT64)


def test_guided_and_deconvnet_differ_from_the_gradient_here(model_and_images):
    """The rules must matter on these models, or the checks above could not tell them apart."""
    model, x = model_and_images
    target = torch.tensor([0, 3, 1])
    grad = attribution.gradient(model, x, target)
    for other in (attribution.guided_backprop(model, x, target), attribution.deconvnet(model, x, target)):
        assert (other - grad).abs().max() > 0.1 * grad.abs().max()


def captum_occlusion(model, x, label, size, stride, fill):
    """Captum's Occlusion of p(label): per pixel, the mean over the windows covering it of
    p(label | image) - p(label | window filled). Windows span all channels."""
    probability = lambda images: model(images).softmax(1)  # noqa: E731
    return Occlusion(probability).attribute(
        x, sliding_window_shapes=(x.shape[1], size, size), strides=(x.shape[1], stride, stride),
        baselines=fill, target=label)[0, 0]  # the same on every channel


@pytest.mark.parametrize("size, stride", [(4, 4), (5, 5), (8, 8)])
def test_occlusion_each_window_equals_captum(model_and_images, size, stride):
    """Non-overlapping windows: each pixel of Captum's map is one window's probability drop.
    Where the side is not a multiple of the stride, the last windows differ: Captum occludes a
    clipped window at the far border, coursekit a full window aligned to the edge
    (attribution.window_starts); the windows both compute are compared."""
    model, x = model_and_images
    x, label, fill = x[:1], 1, 0.5
    ours = attribution.occlusion(model, x, label, size, stride, fill)
    theirs = captum_occlusion(model, x, label, size, stride, fill)
    starts = attribution.window_starts(x.shape[-1], size, stride)
    shared = [i for i, start in enumerate(starts) if start % stride == 0]  # Captum's grid
    drop = (ours.base_prob - ours.prob)[shared][:, shared]
    on_grid = torch.tensor([starts[i] for i in shared])
    assert_matches(drop, theirs[on_grid][:, on_grid], FLOAT32)


@pytest.mark.parametrize("size, stride", [(4, 2), (8, 4)])
def test_occlusion_pixel_map_equals_captum(model_and_images, size, stride):
    """Overlapping windows: coursekit's pixel_map averages over the covering windows as Captum
    does; compared on the pixels the full windows cover (side - size a multiple of stride here)."""
    model, x = model_and_images
    x, label, fill = x[:1], 2, 0.25
    side = x.shape[-1]
    assert (side - size) % stride == 0, "choose sizes where both slide the same windows"
    ours = attribution.occlusion(model, x, label, size, stride, fill)
    drop = ours.pixel_map(side, side, values=ours.base_prob - ours.prob)
    assert_matches(drop, captum_occlusion(model, x, label, size, stride, fill), FLOAT32)


# ---------------------------------------------------------------- attacks vs torchattacks

def pixel_model(dtype=torch.float64) -> nn.Module:
    """torchattacks wants pixels in [0, 1] and a model that normalizes inside, as PixelModel does."""
    return models.PixelModel(tiny_net(), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)).to(dtype).eval()


ATTACK_MODELS = {"tiny": pixel_model, "mini_alexnet": mini_alexnet}
EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 6


@pytest.fixture(params=list(ATTACK_MODELS), scope="module")
def attack_setup(request):
    model = ATTACK_MODELS[request.param]()
    side = 12 if request.param == "tiny" else 32
    x = torch.rand(4, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        labels = model(x).argmax(1)
    return model, x, labels


def torchattack(attack, targets=None):
    """The torchattacks object, aimed at `targets` (a targeted attack) when given."""
    if targets is not None:
        attack.set_mode_targeted_by_function(lambda images, labels: targets)
    return attack


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
def test_fgsm_equals_torchattacks(attack_setup, targeted):
    model, x, labels = attack_setup
    target = (labels + 1) % 5 if targeted else None
    theirs = torchattack(torchattacks.FGSM(model, eps=EPS), target)(x, labels)
    assert_matches(attacks.fgsm(model, x, labels, eps=EPS, target=target), theirs, FLOAT64)


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
def test_bim_equals_torchattacks(attack_setup, targeted):
    model, x, labels = attack_setup
    target = (labels + 1) % 5 if targeted else None
    theirs = torchattack(torchattacks.BIM(model, eps=EPS, alpha=ALPHA, steps=STEPS), target)(x, labels)
    ours = attacks.bim(model, x, labels, eps=EPS, target=target, steps=STEPS, step_size=ALPHA)
    assert_matches(ours, theirs, FLOAT64)


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
def test_pgd_loop_equals_torchattacks_without_random_start(attack_setup, targeted):
    """torchattacks' PGD projects by clamping the perturbation, coursekit by clamping the image
    into [x - eps, x + eps]: the same point. Without the random start, PGD is BIM's loop."""
    model, x, labels = attack_setup
    target = (labels + 1) % 5 if targeted else None
    pgd = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)
    ours = attacks.bim(model, x, labels, eps=EPS, target=target, steps=STEPS, step_size=ALPHA)
    assert_matches(ours, torchattack(pgd, target)(x, labels), FLOAT64)


def test_pgd_with_random_start_equals_torchattacks_from_the_same_start():
    """Same seed, same start: coursekit draws its uniform noise in float32 from its generator,
    torchattacks from the global generator in the images' dtype, so both run in float32, where
    the two draws are the same numbers (x + (2u - 1) eps versus x + uniform(-eps, eps))."""
    model = pixel_model(torch.float32)
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    labels = model(x).argmax(1)
    ours = attacks.pgd(model, x, labels, eps=EPS, steps=STEPS, step_size=ALPHA,
                       generator=torch.Generator().manual_seed(7))
    torch.manual_seed(7)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)(x, labels)
    assert_matches(ours, theirs, FLOAT32)


# ---------------------------------------------------------------- LRN vs torch.nn.LocalResponseNorm

@pytest.mark.parametrize("size", [3, 5, 4])
@pytest.mark.parametrize("k, alpha, beta", [(2.0, 1e-4, 0.75), (1.0, 0.5, 0.6)], ids=["paper", "strong"])
def test_lrn_equals_torch_with_alpha_times_n(size, k, alpha, beta):
    """The paper's alpha multiplies the channel sum; torch's alpha multiplies the channel mean
    (it divides by n). The paper sums channels i - n/2 .. i + n/2: for odd n that is n channels
    as in torch, for even n it is n + 1 (torch's window then has n), so torch's size is n rounded
    up to odd. On the paper's values (alpha = 1e-4, k = 2) LRN is nearly the identity, so
    activations are scaled up there for the check to see alpha at all."""
    window = 2 * (size // 2) + 1
    a = 30 * torch.randn(2, 9, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ours = models.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)(a)
    theirs = nn.LocalResponseNorm(window, alpha=alpha * window, beta=beta, k=k)(a)
    assert_matches(ours, theirs, FLOAT64)



@pytest.mark.parametrize("size", [3, 5, 4])
@pytest.mark.parametrize("k, alpha, beta", [(2.0, 1e-4, 0.75), (1.0, 0.5, 0.6)], ids=["paper", "strong"])
def test_lrn_gradient_passes_gradcheck_and_equals_torchs(size, k, alpha, beta):
    """The hand-written backward: torch.autograd.gradcheck (finite differences, float64), and the
    input gradient equals autograd's through torch.nn.LocalResponseNorm (same translation of
    alpha and size as above). Activations scaled as above, so the window term is not negligible."""
    window = 2 * (size // 2) + 1
    a = 30 * torch.randn(2, 9, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a.requires_grad_()
    ours = models.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
    assert torch.autograd.gradcheck(ours, (a,))
    upstream = torch.randn(a.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    got, = torch.autograd.grad(ours(a), a, upstream)
    theirs = nn.LocalResponseNorm(window, alpha=alpha * window, beta=beta, k=k)
    expected, = torch.autograd.grad(theirs(a), a, upstream)
    assert_matches(got, expected, FLOAT64)

# ---------------------------------------------------------------- blur vs torchvision

@pytest.mark.parametrize("dtype, tol", [(torch.float64, FLOAT64), (torch.float32, FLOAT32)], ids=["float64", "float32"])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.0])
def test_gaussian_blur_equals_torchvision_with_circular_padding(sigma, dtype, tol):
    """coursekit's kernel has radius ceil(3 sigma) (at least 1): torchvision's kernel_size is
    2 * radius + 1 with the same sigma. torchvision pads by reflection, coursekit wraps around:
    padding circularly first and cropping makes torchvision's border mode irrelevant."""
    x = torch.rand(2, 3, 20, 17, dtype=dtype, generator=torch.Generator().manual_seed(4))
    radius = max(1, math.ceil(3 * sigma))
    padded = F.pad(x, (radius,) * 4, mode="circular")
    theirs = TF.gaussian_blur(padded, [2 * radius + 1] * 2, [sigma] * 2)[..., radius:-radius, radius:-radius]
    assert_matches(gaussian_blur(x, sigma), theirs, tol)
