"""The papers' recipes on the coursekit.optimize engine, their measurements, and their Try-it panels.

    class_model      Simonyan et al. 2014: arg max_I S_c(I) - lambda ||I - mean||_2^2 from the mean image
    yosinski         Yosinski et al. 2015: the same under decay / blur / clipping, as in their four settings
    deepdream        Mordvintsev et al. 2015: grow a layer's activation norm on a photo, with octaves
    invert           Mahendran & Vedaldi 2015: an image whose features match a target's, under priors (no clamp)
"""
from __future__ import annotations

import torch

from . import hooks, optimize
from . import objectives as O
from . import param as P
from . import transforms as T
from .models import CONV_LAYERS, LAYERS, reads_model
from .widgets import panel_controls

# ---------------------------------------------------------------- Simonyan et al. 2014


def mean_image(mean, size: int, device=None) -> torch.Tensor:
    """A (1, 3, size, size) image filled with the data set's mean colour: where class models start."""
    return torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


@reads_model(grad=True)
def class_model(model, c: int, mean, size: int, lam: float = 0.1, steps: int = 100, lr: float = 1.0,
                objective: str = "score", noise: float = 0.01, seed: int = 0, progress: bool = False) -> optimize.Result:
    """Gradient ascent on the class score ('score', the logit) or 'probability' (softmax), minus
    lam * ||I - mean||_2^2 (objectives.l2: summed over pixels, as on the slide), from the mean image;
    pixels clamped to [0, 1] so the image stays an image. Plain gradient ascent shrinks I - mean by
    the factor 1 - 2 lam lr each step, so it is stable only for lam * lr < 1.

    The start gets faint noise (std `noise`): a perfectly flat image can sit where every ReLU is off
    and the gradient is exactly zero."""
    if objective not in {"score", "probability"}:
        raise ValueError(f"objective must be 'score' or 'probability', not {objective!r}")
    device = next(model.parameters()).device
    center = mean_image(mean, 1, device)
    g = torch.Generator().manual_seed(seed)
    start = (mean_image(mean, size) + noise * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1).to(device)
    target = O.class_score(c) if objective == "score" else O.class_prob(c)
    return optimize.render(model, target - lam * O.l2(center), P.PixelImage(start), steps=steps, lr=lr,
                           optimizer="sgd", regularizers=[T.clamp()], progress=progress)


@reads_model()
def score_and_norm(model, image: torch.Tensor, c: int, mean) -> tuple[float, float]:
    """(S_c, ||I - mean||_2^2) of one image (1, 3, H, W): the two terms lambda trades against each other."""
    with torch.no_grad():
        score = model(image)[0, c].item()
    center = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return score, (image - center).pow(2).sum().item()


# ---------------------------------------------------------------- Yosinski et al. 2015

# Their four hyperparameter settings (Table in the paper): L2 decay, blur width, blur every,
# percentile of pixel norm clipped, percentile of contribution clipped, iterations.
YOSINSKI_SETTINGS = {
    1: dict(decay=0.0, blur_sigma=0.5, blur_every=4, norm_pct=50, contribution_pct=0, steps=500),
    2: dict(decay=0.3, blur_sigma=0.0, blur_every=1, norm_pct=20, contribution_pct=0, steps=750),
    3: dict(decay=1e-4, blur_sigma=1.0, blur_every=4, norm_pct=0, contribution_pct=0, steps=1000),
    4: dict(decay=0.0, blur_sigma=0.5, blur_every=4, norm_pct=0, contribution_pct=90, steps=1000),
}


def yosinski_regularizers(decay=0.0, blur_sigma=0.0, blur_every=1, norm_pct=0, contribution_pct=0,
                          center=0.5, **_) -> list:
    """The step regularizers of one setting (zeros switch a piece off), then a clamp to [0, 1]."""
    regs = []
    if decay:
        regs.append(T.decay(decay, center))
    if blur_sigma:
        regs.append(T.blur_every(blur_sigma, blur_every))
    if norm_pct:
        regs.append(T.clip_small_norm(norm_pct, center))
    if contribution_pct:
        regs.append(T.clip_small_contribution(contribution_pct, center))
    return regs + [T.clamp()]


def high_frequency_energy(x: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """The fraction of each image's spectral energy (mean removed) above `cutoff` cycles per pixel
    (0.5 is the highest there is): noise-like images score high, smooth ones low."""
    x = x - x.mean((2, 3), keepdim=True)
    power = torch.fft.rfft2(x.float()).abs().pow(2)
    fy = torch.fft.fftfreq(x.shape[2], device=x.device)[:, None]
    fx = torch.fft.rfftfreq(x.shape[3], device=x.device)[None, :]
    high = (fy.pow(2) + fx.pow(2)).sqrt() > cutoff
    return (power * high).flatten(1).sum(1) / power.flatten(1).sum(1).clamp_min(1e-12)


def one_of(result: optimize.Result, i: int) -> optimize.Result:
    """Image i of a batched render as a Result of its own: (1, 3, H, W) image, its last objective value
    as `final` (a batch's history is the mean over its images, so it is not kept)."""
    return optimize.Result(result.image[[i]], [result.values[i].item()], result.values[[i]])


def grey_share(images: torch.Tensor, center=0.5) -> torch.Tensor:
    """(N,) the share of each image's pixels left exactly at the grey `center` (what clipping resets)."""
    c = torch.as_tensor(center, dtype=images.dtype, device=images.device).reshape(1, -1, 1, 1)
    return (images - c).abs().amax(1).eq(0).flatten(1).float().mean(1)


@reads_model()
def recognized(judge, images: torch.Tensor, classes) -> torch.Tensor:
    """(N,) bool: where `judge`, a second network trained apart from the one that made the images
    (backbones.second_network), assigns images[i] (N, 3, H, W in [0, 1]) to classes[i] (its top-1).
    What a class model or a reconstruction carries about its class beyond the one network's quirks."""
    with torch.no_grad():
        return judge(images).argmax(1).cpu() == torch.as_tensor(classes).cpu()


# ---------------------------------------------------------------- DeepDream

OCTAVE_SCALE = 1.4  # the original's ratio between octaves


@reads_model(grad=True)
def deepdream(model, image: torch.Tensor, layer: str, octaves: int = 4, octave_scale: float = OCTAVE_SCALE,
              steps: int = 10, step_size: float = 1.5, jitter: int | None = None,
              progress: bool = False) -> optimize.Result:
    """Grow mean(layer^2) on `image` with steps of step_size/255 * g / mean|g| (step_size in the
    original's 0..255 units), a random roll each step (default 1/16 of the side), and octaves."""
    jitter = max(1, image.shape[-1] // 16) if jitter is None else jitter
    return optimize.render(model, O.layer_norm(layer), P.PixelImage(image), steps=steps,
                           lr=step_size / 255, optimizer="normalized", transforms=[T.jitter(jitter)],
                           regularizers=[T.clamp()], octaves=octaves, octave_scale=octave_scale,
                           progress=progress)


@reads_model()
def layer_energy(model, image: torch.Tensor, layer: str) -> float:
    """mean(layer^2) for an image: DeepDream's objective, measured without gradients."""
    with torch.no_grad():
        return hooks.forward_until(model, image, layer).pow(2).mean().item()


def phase_scrambled(edit: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """DeepDream's control edit: each channel of `edit` (N, C, H, W) with its Fourier amplitudes kept and
    its phases replaced by those of white noise. Same L2 norm (Parseval) and the same energy at every
    spatial frequency, but the patterns' structure is gone: what is left of an effect is the edit's
    size and frequencies, not what it depicts."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.fft.rfft2(torch.randn(edit.shape, generator=g, dtype=torch.float64))
    spectrum = torch.fft.rfft2(edit.double().cpu())
    scrambled = torch.fft.irfft2(spectrum.abs() * noise / noise.abs().clamp_min(1e-12), s=edit.shape[-2:])
    return scrambled.to(edit)


# ---------------------------------------------------------------- Mahendran & Vedaldi 2015

def tv_weight_for(layer: str, base: float = 1.0) -> float:
    """TV weight grows with depth, as in the authors' code: x1 for conv1-2, x10 for conv3-5, x100 above."""
    if layer in {"conv1", "relu1", "pool1", "lrn1", "conv2", "relu2", "pool2", "lrn2"}:
        return base
    if layer.startswith(("conv", "relu3", "relu4", "relu5", "pool5")):
        return 10 * base
    return 100 * base


@reads_model(grad=True)
def invert(model, target: torch.Tensor, layer: str, steps: int = 200, tv_weight: float = 1.0, beta: float = 2.0,
           alpha_weight: float = 1.0, alpha: float = 6.0, starts: int = 1, lr: float = 0.05, seed: int = 0,
           center=0.5, bound: float = 0.5, progress: bool = False) -> optimize.Result:
    """min_x ||phi(x) - phi_0||^2 / ||phi_0||^2 + alpha_weight mean|(x - center) / bound|^alpha + tv_weight TV_beta(x),
    from `starts` noise images at once (Adam). target: (1 or starts, 3, H, W); one target per start
    inverts a batch of images at once.

    No clamp: as in Mahendran & Vedaldi, the alpha-norm keeps the pixels in range. Like their
    normalization by the pixel range B, `bound` (half of [0, 1]) makes the prior about 1 per pixel
    at the edge of the range, so it stays negligible inside and grows as |x|^6 outside."""
    phi0 = hooks.forward_until(model, target, layer).detach() if layer else None
    g = torch.Generator().manual_seed(seed)
    noise = (0.5 + 0.1 * torch.randn(starts, *target.shape[1:], generator=g)).clamp(0, 1).to(target.device)
    objective = (-O.feature_error(layer, phi0) - alpha_weight / bound ** alpha * O.alpha_norm(alpha, center)
                 - tv_weight * O.tv(beta))
    return optimize.render(model, objective, P.PixelImage(noise), steps=steps, lr=lr, optimizer="adam",
                           progress=progress)


@reads_model()
def feature_and_pixel_error(model, target: torch.Tensor, layer: str, images: torch.Tensor) -> tuple:
    """(feature error ||phi(x)-phi_0||^2/||phi_0||^2, pixel error ||x-x_0||/||x_0-mean(x_0)||), one per image."""
    with torch.no_grad():
        phi0 = hooks.forward_until(model, target, layer)
        phi = hooks.forward_until(model, images, layer)
        feat = (phi - phi0).pow(2).flatten(1).sum(1) / phi0.pow(2).flatten(1).sum(1).clamp_min(1e-12)
        spread = (target - target.mean((2, 3), keepdim=True)).flatten(1).norm(dim=1)
        pixel = (images - target).flatten(1).norm(dim=1) / spread.clamp_min(1e-12)
    return feat, pixel


# ---------------------------------------------------------------- Try-it panels

def _figure(images, titles, curve=None, curve_label="objective"):
    """Images in a row (each clipped to [0, 1]), then optionally the objective's curve."""
    import matplotlib.pyplot as plt
    from .plot import to_image
    n = len(images) + (curve is not None)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), squeeze=False)
    for ax, img, title in zip(axes[0], images, titles):
        ax.imshow(to_image(img.clamp(0, 1)), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    if curve is not None:
        ax = axes[0, -1]
        ax.plot(curve)
        ax.set_xlabel("step")
        ax.set_title(curve_label, fontsize=10)
    fig.tight_layout()
    return fig


def class_model_controls(classes):
    """Controls for class_model_panel (the class list comes from the backbone). lambda is set by its
    log10, from 1e-4 (next to no prior) to 10^-0.5 (the image pinned near the mean): its effect spans
    decades. lr stops at 3 so that lam * lr < 1 everywhere, where gradient ascent on the prior is stable."""
    from .widgets import Choice, Slider
    return [Choice("class_name", list(classes), list(classes)[0]),
            Slider("log10_lam", -4.0, -0.5, 0.25, -1.0, "log10 lambda"),
            Slider("steps", 10, 400, 10, 60), Slider("lr", 0.05, 3.0, 0.05, 1.0),
            Choice("objective", ["score", "probability"], "score")]


@panel_controls(lambda backbone: class_model_controls(backbone.classes))
def class_model_panel(backbone, class_name: str, log10_lam: float, steps: int, lr: float, objective: str = "score"):
    """The class model for one class with lambda = 10^log10_lam, titled with its class score S_c and
    its squared norm ||I - mean||^2 (the trade lambda sets), and how the objective climbed."""
    from .widgets import validate
    validate(class_model_controls(backbone.classes), class_name=class_name, log10_lam=log10_lam, steps=steps,
             lr=lr, objective=objective)
    c = list(backbone.classes).index(class_name)
    lam = 10.0 ** log10_lam
    result = class_model(backbone.model, c, backbone.mean, backbone.input_size, lam, int(steps), lr, objective)
    score, norm = score_and_norm(backbone.model, result.image, c, backbone.mean)
    return _figure([result.image[0]], [f"{class_name}, lambda={lam:.2g}\nS_c={score:.3g}, ||I-mean||²={norm:.3g}"],
                   result.history, f"{objective} - lambda ||I-mean||²")


def _regularization_controls():
    from .widgets import Choice, Slider
    return [Slider("decay", 0.0, 0.5, 0.01, 0.0), Slider("blur_sigma", 0.0, 2.0, 0.1, 0.5),
            Slider("blur_every", 1, 10, 1, 4), Slider("norm_pct", 0, 95, 5, 0),
            Slider("contribution_pct", 0, 95, 5, 0), Choice("parameterization", ["pixels", "fft"], "pixels"),
            Slider("steps", 10, 400, 10, 60)]


REGULARIZATION_PANEL = _regularization_controls()


@reads_model(grad=True)
def regularized_class_model(model, c, size: int, steps: int, lr: float | None = None, parameterization="pixels",
                            center=0.5, noise: float = 0.0, seed: int = 0, stop_at: float | None = None,
                            **setting) -> optimize.Result:
    """The class score climbed from grey plus faint noise (std `noise`) under one regularization setting
    (yosinski_regularizers) in pixel space with gradient ascent (default lr 1.0), or with the FFT +
    decorrelated-colour image, jitter and scaling, with Adam (default lr 0.05).

    c: a class index (one image), or a list of them (one image each, climbed in one batch; each
    image's regularizers act on it alone, but jitter and scaling move the whole batch alike).
    The result's image is (len(c) or 1, 3, size, size); its history is the batch's mean score."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    n = 1 if isinstance(c, int) else len(c)
    start = (center + noise * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1).to(device)
    if parameterization == "fft":
        return optimize.render(model, O.class_score(c), P.FFTImage.from_image(start), steps=steps, lr=lr or 0.05,
                               optimizer="adam", transforms=[T.jitter(max(1, size // 16)), T.random_scale()],
                               stop_at=stop_at, progress=False)
    if parameterization != "pixels":
        raise ValueError(f"parameterization must be 'pixels' or 'fft', not {parameterization!r}")
    return optimize.render(model, O.class_score(c), P.PixelImage(start), steps=steps, lr=lr or 1.0, optimizer="sgd",
                           regularizers=yosinski_regularizers(center=center, **setting), stop_at=stop_at,
                           progress=False)


@panel_controls(REGULARIZATION_PANEL)
def regularization_panel(backbone, class_index: int, decay: float, blur_sigma: float, blur_every: int,
                         norm_pct: float, contribution_pct: float, parameterization: str, steps: int):
    """Unregularized vs your regularizers for one class, each with its high-frequency energy."""
    from .widgets import validate
    values = dict(decay=decay, blur_sigma=blur_sigma, blur_every=blur_every, norm_pct=norm_pct,
                  contribution_pct=contribution_pct, parameterization=parameterization, steps=steps)
    validate(REGULARIZATION_PANEL, **values)
    model, size, steps = backbone.model, backbone.input_size, int(values.pop("steps"))
    plain = regularized_class_model(model, class_index, size, steps)
    mine = regularized_class_model(model, class_index, size, steps, blur_every=int(blur_every),
                                   **{k: v for k, v in values.items() if k != "blur_every"})
    images = [plain.image[0], mine.image[0]]
    hf = [high_frequency_energy(img[None]).item() for img in images]
    titles = [f"none: score {plain.final:.2f}\nHF {hf[0]:.2f}", f"yours: score {mine.final:.2f}\nHF {hf[1]:.2f}"]
    return _figure(images, titles)


DREAM_LAYERS = list(CONV_LAYERS)  # the layers a model without its own list offers


def deepdream_controls(model=None, size: int = 32, octaves: int = 6):
    """Layer, octaves and steps. Given the model, the layers are its conv layers and the octave slider
    stops at the most octaves every one of them can take on a size x size image (each octave shrinks it
    by 1.4); without one, DREAM_LAYERS and at most `octaves`."""
    from .widgets import Choice, Slider
    layers = DREAM_LAYERS if model is None else hooks.conv_layers(model)
    if model is not None:
        octaves = min(octaves, *(optimize.max_octaves(model, O.layer_norm(layer), (size, size), OCTAVE_SCALE)
                                 for layer in layers))
    shown = layers[len(layers) // 2]  # conv3 on both backbones: mid-level patterns dream best
    return [Choice("layer", layers, shown), Slider("octaves", 1, octaves, 1, min(4, octaves)),
            Slider("steps", 1, 30, 1, 5)]


# the cifar10 backbone's panel at 32 px: conv3-conv5 need 7 px, and 32 / 1.4^4 = 8 px is the
# smallest pyramid that fits (tests check this against the network)
DEEPDREAM_PANEL = deepdream_controls(octaves=5)


@panel_controls(lambda model, image: deepdream_controls(model, min(image.shape[-2:])))
def deepdream_panel(model, image: torch.Tensor, layer: str, octaves: int, steps: int):
    """The photo before and after dreaming at one layer, with the layer's norm."""
    from .widgets import validate
    validate(deepdream_controls(model, min(image.shape[-2:])), layer=layer, octaves=octaves, steps=steps)
    result = deepdream(model, image, layer, octaves=int(octaves), steps=int(steps))
    before, after = layer_energy(model, image, layer), layer_energy(model, result.image, layer)
    return _figure([image[0], result.image[0]], ["photo", f"dreamed at {layer}\nnorm {before:.3g} -> {after:.3g}"])


INVERSION_LAYERS = list(LAYERS)


def _inversion_controls():
    from .widgets import Slider
    return [Slider("depth", 1, len(INVERSION_LAYERS), 1, 3, "layer (1=conv1 ... 8=fc8)"),
            Slider("tv_weight", 0.0, 1.0, 0.01, 0.05, "TV weight (x1/x10/x100 by depth)"),
            Slider("steps", 20, 600, 20, 100)]


INVERSION_PANEL = _inversion_controls()


@panel_controls(INVERSION_PANEL)
def inversion_panel(model, target: torch.Tensor, depth: int, tv_weight: float, steps: int, layers=None):
    """The target beside its reconstruction from one layer, with both errors."""
    from .widgets import validate
    validate(INVERSION_PANEL, depth=depth, tv_weight=tv_weight, steps=steps)
    layer = (layers or INVERSION_LAYERS)[int(depth) - 1]
    result = invert(model, target, layer, steps=int(steps), tv_weight=tv_weight_for(layer, tv_weight))
    feat, pixel = feature_and_pixel_error(model, target, layer, result.image)
    return _figure([target[0], result.image[0]],
                   ["target", f"from {layer}\nfeature err {feat[0]:.2f}, pixel err {pixel[0]:.2f}"],
                   result.history, "objective")
