"""coursekit: the helpers behind the course's notebooks (AlexNet, visualizing, fooling and
transferring CNNs). Notebooks import coursekit; coursekit never imports a notebook."""
from __future__ import annotations

from . import settings as _settings

# The one place the version is written: pyproject.toml reads it (dynamic version), CHANGELOG.md
# records what each version changed.
__version__ = "0.1.0"


def setup(backbone: str | None = None, seed: int | None = None, verbose: bool = True):
    """Read the settings, seed every generator, and print one short block saying how this runs.

    Returns the Settings. Pass backbone='cifar10' or 'imagenet' to say which one the notebook uses
    (the printout names it); the model itself comes from coursekit.backbones.backbone(...).
    """
    cfg = _settings.current()
    _settings.seed_everything(cfg.seed if seed is None else seed)
    if verbose:
        print(describe(cfg, backbone))
    return cfg


def describe(cfg, backbone: str | None = None) -> str:
    """What `setup` prints: device (with torch version and CPU threads), backbone, mode, where the data
    and the cache are, one line each."""
    from . import data
    import torch
    cifar = data.find_dataset("cifar10", cfg)
    source = f"CIFAR-10 from {cifar}" if cifar else "CIFAR-10 not found under the data roots (will download if online)"
    device = cfg.device
    if device.type == "cuda":
        device = f"{device} ({torch.cuda.get_device_name(device)})"
    lines = [
        f"device   : {device}  (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)",
        f"backbone : {backbone or cfg.backbone}",
        f"mode     : {cfg.mode}" + ("  (COURSEKIT_QUICK=1: smaller sizes, same code)" if cfg.quick else ""),
        f"data     : {source}",
        f"cache    : {cfg.cache_dir}",
    ]
    return "\n".join(lines)
