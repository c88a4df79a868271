"""fit / evaluate / top-k accuracy / History / checkpoints that resume.

Batches are slices of uint8 tensors held in memory, moved to the device and augmented there.
Every epoch re-seeds from (seed, epoch), so a run resumed from a checkpoint ends with the same
weights as one that was never interrupted.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import cache as _cache
from . import data as _data
from . import settings as _settings
from .models import evaluating, reads_model


@dataclass
class History:
    """One row per epoch: loss, accuracies, learning rate and seconds."""
    rows: list[dict] = field(default_factory=list)

    def append(self, **row) -> None:
        self.rows.append(row)

    def __getitem__(self, key: str) -> list:
        return [row.get(key) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def last(self) -> dict:
        return self.rows[-1] if self.rows else {}

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame(self.rows).set_index("epoch") if self.rows else pd.DataFrame()

    def plot(self, title: str = ""):
        from .plot import curves
        return curves(self, title=title)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    """How many of the labels are among the top-k logits, for each k."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return [int(hits[:, :k].any(1).sum()) for k in ks]


@reads_model()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500, device=None) -> torch.Tensor:
    """Logits for uint8 or float images, in batches, on the CPU (the model read in eval mode)."""
    device = device or next(model.parameters()).device
    out = [model(_data.to_float(images[i:i + batch_size].to(device))).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, dataset: _data.ImageSet, batch_size: int = 500,
             classes: list[str] | None = None) -> dict:
    """Top-1 and top-5 accuracy (fractions) and mean loss of `model` on `dataset`.

    classes: the class names of the model's outputs, in order (e.g. `train_set.classes`); when given,
        `dataset.classes` must be the same list (ValueError otherwise), so label i means the same class.
    """
    if classes is not None:
        _data.check_same_classes(classes, dataset.classes, "the evaluated set")
    logits = predict(model, dataset.images, batch_size)
    top1, top5 = topk_correct(logits, dataset.labels)
    n = max(1, len(dataset))
    return {"top1": top1 / n, "top5": top5 / n, "loss": F.cross_entropy(logits, dataset.labels).item()}


def chance_bound(n_images: int, n_classes: int, z: float = 3.0) -> float:
    """The top-1 accuracy that guessing reaches only by luck: chance (1 / n_classes) plus z standard
    errors of a binomial proportion over n_images held-out images (z = 3: about 1 time in 700).

    A network trained on shuffled labels memorizes its images but scores at chance on new ones
    (Zhang et al. 2017, the COURSEKIT_NULL=shuffled-labels run), so held-out top-1 above this bound
    shows a network learned classes. Raises ValueError for n_images < 1 or n_classes < 2.
    """
    if n_images < 1 or n_classes < 2:
        raise ValueError(f"need n_images >= 1 and n_classes >= 2, got {n_images} and {n_classes}")
    p = 1 / n_classes
    return p + z * math.sqrt(p * (1 - p) / n_images)


class NotLearned(AssertionError):
    """A paper check's precondition failed: a network it reads scored at chance on held-out images,
    so the check's claim cannot be tested, not that it was refuted. Raised by `require_learned`; the
    null-run test (tests/paperchecks) does not count it as the check failing in its null, since a
    claim must fail by its own assert and any network that learns nothing fails a precondition."""


def require_learned(top1, bound: float, what: str) -> None:
    """Raise NotLearned unless every held-out top-1 in `top1` (a number or a sequence of them, one
    per run) is above `bound` (`chance_bound`); `what` names the networks in the message. A paper
    check calls it after the claim's own assert, so that in a null run the claim fails first."""
    scores = [float(v) for v in (top1 if hasattr(top1, "__iter__") else [top1])]
    if min(scores) <= bound:
        raise NotLearned(f"{what}: held-out top-1 {[round(v, 3) for v in scores]}, not above what guessing "
                         f"reaches by luck ({bound:.3f}): the network learned no classes, so this check cannot "
                         f"say anything; train longer or with more images (full mode: COURSEKIT_QUICK=0)")


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(directory: Path, epoch: int, model, optimizer, scheduler, history: History,
                    run: dict | None = None, keep: int = 2) -> Path:
    """Save epoch `epoch` of a run (weights, optimizer, scheduler, history, and `run`, what identifies
    the run, so a checkpoint resumes only the run that wrote it) atomically to
    directory/epoch-NNNN.pt; keep the newest `keep`. Returns the file's path."""
    path = Path(directory) / f"epoch-{epoch:04d}.pt"
    _cache.atomic_save({"epoch": epoch, "run": run or {}, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler else None,
                        "history": history.rows}, path)
    for old in sorted(Path(directory).glob("epoch-*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    for stale in Path(directory).glob("epoch-*.pt.*.tmp"):  # half-written by a process that was killed
        stale.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: Path | None) -> dict | None:
    """The newest checkpoint that loads; a truncated or corrupt one is reported and skipped."""
    if directory is None:
        return None
    damaged = []
    for path in sorted(Path(directory).glob("epoch-*.pt"), reverse=True):
        state = _cache.safe_load(path)
        if isinstance(state, dict) and {"epoch", "model", "optimizer"} <= state.keys():
            if damaged:
                warnings.warn(f"checkpoint {damaged[0]} is damaged; resuming from the earlier {path.name}")
            return state
        damaged.append(path)
    if damaged:
        warnings.warn(f"checkpoint {damaged[0]} is damaged and no earlier one loads; starting over from epoch 0")
    return None


# ---------------------------------------------------------------- training

def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays on `device`: CUDA GPUs, and CPUs with bf16 instructions (AVX-512
    BF16 or AMX), where a training step measured 1.5-2x faster than fp32. Elsewhere bf16 is
    emulated and slower than fp32, so training stays in fp32."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and _cpu_has_bf16()


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux: no cheap way to ask, so stay in fp32
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The dtype mixed-precision training computes in on `device` (when autocast is on).

    bf16 where the hardware has it: CPUs, and CUDA GPUs of compute capability 8.0 or newer (A100,
    RTX 30xx and later). fp16 on CUDA GPUs without native bf16 (Colab's T4, V100): torch emulates
    bf16 there without tensor cores, so `torch.cuda.is_bf16_supported()` is asked without emulation
    (its default counts emulation as support since torch 2.3). fp16's narrow range needs loss
    scaling: `fit` uses a GradScaler whenever this is fp16. Other devices: bf16 (autocast is off
    there unless asked)."""
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float16
    return torch.bfloat16


def autocast_for(device: torch.device, enabled: bool):
    """Autocast in `autocast_dtype(device)`, or a no-op when not enabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=autocast_dtype(device))


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast (gradients below fp16's 6e-8 would round to zero); a
    pass-through scaler otherwise (bf16 has fp32's range, and fp32 needs none)."""
    fp16 = enabled and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler(device.type if fp16 else "cpu", enabled=fp16)


def make_sgd(params, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """The paper's optimizer: SGD with momentum (Nesterov's when momentum > 0) and weight decay.

    params: tensors, or torch's parameter groups (dicts with "params" and options such as "lr");
    a group's own options override these defaults. (optimize.make_optimizer is the other idea:
    a step rule picked by name for optimizing an image, not for training a network.)"""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)


def check_param_groups(model: nn.Module, param_groups) -> list[dict]:
    """torch's parameter groups as a list of dicts, each "params" a list of the model's own tensors.

    TypeError when it is not a list of dicts with "params"; ValueError naming the group that holds
    a tensor which is not one of the model's parameters (training it would not change the model)."""
    if isinstance(param_groups, dict) or not isinstance(param_groups, (list, tuple)) or not all(
            isinstance(group, dict) and "params" in group for group in param_groups):
        raise TypeError("param_groups must be a list of dicts such as [{'params': model.net.conv1.parameters(), "
                        f"'lr': 0.005}}, {{'params': rest}}] (torch's convention), not {param_groups!r:.80}")
    own = {id(p) for p in model.parameters()}
    groups = []
    for i, group in enumerate(param_groups):
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        if not all(id(p) in own for p in params):
            raise ValueError(f"param_groups[{i}] holds a tensor that is not a parameter of the model being "
                             f"trained; build the groups from that model's own parameters")
        groups.append({**group, "params": params})
    return groups


def make_scheduler(optimizer, schedule: str | None, lr: float, epochs: int, steps_per_epoch: int):
    """The learning-rate schedule, stepped after every batch; every parameter group's lr follows it.

    'onecycle': the course's one-cycle, linear from lr/10 up to lr over the first quarter, then
    linearly down to zero. 'onecycle-cosine': torch's OneCycleLR (Smith and Topin 2019) with the
    same first quarter of warm-up: from lr/25, cosine down to lr/2.5e5, and momentum cycled
    0.95 -> 0.85 -> 0.95 in place of fit's `momentum`. 'step': lr/10 at 50% and 75% of training.
    'constant' or None: no schedule. ValueError for any other name."""
    if schedule in (None, "constant"):
        return None
    if schedule == "onecycle":  # warm up linearly to lr over the first quarter, then anneal to zero
        total = max(1, epochs * steps_per_epoch)
        warm = max(1, total // 4)

        def factor(step: int) -> float:
            if step < warm:
                return 0.1 + 0.9 * step / warm
            return max(0.0, (total - step) / max(1, total - warm))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if schedule == "onecycle-cosine":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=0.25)
    if schedule == "step":  # the paper: divide by 10 when progress stalls; here at 50% and 75%
        milestones = [int(epochs * steps_per_epoch * f) for f in (0.5, 0.75)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    raise ValueError(f"schedule must be 'onecycle', 'onecycle-cosine', 'step', 'constant' or None, not {schedule!r}")


def fit(model: nn.Module, train_set: _data.ImageSet, test_set: _data.ImageSet | None = None, *,
        epochs: int = 10, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
        weight_decay: float = 5e-4, param_groups: list[dict] | None = None,
        schedule: str | None = "onecycle", augment: bool = True, pca_jitter: float = 0.0,
        label_smoothing: float = 0.0, perturb=None, seed: int | None = None,
        checkpoint_dir: str | Path | None = None, progress: bool = True, live: bool = False,
        autocast: bool | None = None, device=None) -> History:
    """Train `model` with SGD (momentum, weight decay, as in the paper) on an in-memory ImageSet.

    param_groups: torch's parameter groups, e.g. [{"params": slow_params, "lr": 0.005}, {"params":
        rest}]; a group's options ("lr", "momentum", "weight_decay") override fit's, and the schedule
        scales every group's lr by the same factor. Default: all trainable parameters at `lr`.
        The history's "lr" is the first group's.
    schedule: 'onecycle', 'onecycle-cosine', 'step' or 'constant' (see make_scheduler).
    perturb: perturb(model, images, labels) -> images, applied to every (augmented) training batch
        before the forward pass: float pixels (N, C, H, W) in [0, 1] in, the same shape out. It reads
        the model in eval mode with gradients on (dropout would blur an attack's gradient). With an
        attack this is adversarial training (Goodfellow et al. 2015, Madry et al. 2018); the history's
        loss and train_top1 are then on the perturbed batches. Not with checkpoint_dir: a function's
        settings cannot be fingerprinted, so a resumed run could not be told from another run.
    checkpoint_dir: save after every epoch and resume from the newest valid checkpoint there.
    live: redraw loss/accuracy curves in the notebook after each epoch (in place, below the
        progress bar, which stays).
    autocast: mixed precision in `autocast_dtype(device)` (bf16, or fp16 with loss scaling on GPUs
        without native bf16). Default: on for CUDA, off on the CPU, because bf16 CPU kernels
        are not bit-repeatable (two seeded runs in one process ended with different weights); pass
        True for 1.5-2x faster steps on CPUs with bf16 instructions (`native_bf16`).
    """
    _check_fit_args(train_set, epochs, batch_size, lr)
    if test_set is not None:
        _data.check_same_classes(train_set.classes, test_set.classes, "test_set")
    _check_model(model, None)
    if perturb is not None and not callable(perturb):
        raise TypeError(f"perturb must be a function perturb(model, images, labels) -> images, not {perturb!r:.80}")
    if perturb is not None and checkpoint_dir is not None:
        raise ValueError("fit cannot checkpoint a run with perturb: a function's settings cannot go into the run "
                         "key, so a resumed run could not be told from another. Pass checkpoint_dir=None")
    groups = None if param_groups is None else check_param_groups(model, param_groups)
    cfg = _settings.current()
    device = torch.device(device) if device is not None else cfg.device
    seed = cfg.seed if seed is None else seed
    autocast = device.type == "cuda" if autocast is None else autocast
    model.to(device)
    _check_model(model, train_set)
    if device.type in {"cuda", "cpu"}:
        model.to(memory_format=torch.channels_last)
    steps = math.ceil(len(train_set) / batch_size)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_sgd(trainable if groups is None else groups, lr, momentum, weight_decay)
    scheduler = make_scheduler(optimizer, schedule, lr, epochs, steps)
    extra = {} if groups is None else {"param_groups": group_key(model, groups)}
    run = None if checkpoint_dir is None else run_key(
        model, train_set, test_set, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, schedule=schedule, augment=augment, pca_jitter=pca_jitter,
        label_smoothing=label_smoothing, seed=seed, autocast=autocast, **extra)
    history, start = _resume(checkpoint_dir, run, model, optimizer, scheduler)
    scaler = grad_scaler(device, autocast)
    bar = _progress_bar(epochs * steps, start * steps, progress)
    redraw = _live_curves() if live else None
    images = train_set.images.to(device, non_blocking=True)
    labels = train_set.labels.to(device, non_blocking=True)
    try:
        for epoch in range(start, epochs):
            tic = time.perf_counter()
            generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
            torch.manual_seed(seed * 100_003 + epoch)  # dropout
            stats = _train_epoch(model, images, labels, optimizer, scheduler, batch_size, generator,
                                 augment, pca_jitter, label_smoothing, device, autocast, bar, perturb, scaler)
            row = {"epoch": epoch + 1, **stats, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": time.perf_counter() - tic}
            if test_set is not None:
                scores = evaluate(model, test_set)
                row.update(test_top1=scores["top1"], test_top5=scores["top5"], test_loss=scores["loss"])
            history.append(**row)
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, epoch + 1, model, optimizer, scheduler, history, run)
            if bar is not None:
                bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("loss", "test_top1")})
            if redraw is not None:
                redraw(history)
    except torch.OutOfMemoryError as err:
        raise RuntimeError(f"out of memory with batch_size={batch_size} on {device}: try "
                           f"batch_size={max(1, batch_size // 2)}") from err
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return history


def _check_fit_args(train_set, epochs, batch_size, lr):
    if not isinstance(train_set, _data.ImageSet):
        raise TypeError(f"train_set must be a coursekit.data.ImageSet, not {type(train_set).__name__}")
    if len(train_set) == 0:
        raise ValueError("train_set is empty")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a whole number >= 1, not {epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a whole number >= 1, not {batch_size!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"lr must be a number such as 0.05, not {lr!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, not {lr!r}")
    k = len(train_set.classes)
    if train_set.labels.min() < 0 or train_set.labels.max() >= k:
        raise ValueError(f"train_set has a label outside 0..{k - 1} (it has {k} classes): "
                         f"labels must be class indices, found {int(train_set.labels.max())}")


def _check_model(model, images) -> None:
    """A model, not its name, and one with enough outputs for the labels (checked on one image)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module (e.g. models.mini_alexnet() or "
                        f"backbones.backbone().model), not {type(model).__name__}")
    if images is not None:
        outputs = predict(model, images.images[:1]).shape[1]
        if images.labels.max() >= outputs:
            raise ValueError(f"the model scores {outputs} classes but the labels go up to "
                             f"{int(images.labels.max())}: build it with num_classes={len(images.classes)}")


def _train_epoch(model, images, labels, optimizer, scheduler, batch_size, generator,
                 augment, pca_jitter, label_smoothing, device, autocast, bar, perturb=None, scaler=None) -> dict:
    model.train()
    order = torch.randperm(len(labels), generator=generator).to(device)
    total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x = _data.to_float(images[idx])
        if augment:
            x = _data.augment(x, pca_jitter=pca_jitter, generator=generator)
        y = labels[idx]
        if perturb is not None:
            x = _perturbed(perturb, model, x, y)
        if x.dim() == 4:  # cached activations of fully connected layers are (N, D)
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, autocast):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():  # fp16: scale the loss, skip steps with inf/nan
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        if bar is not None:
            bar.update(1)
    n = len(labels)
    return {"loss": total_loss.item() / n, "train_top1": correct.item() / n}


def _perturbed(perturb, model, x, y) -> torch.Tensor:
    """perturb(model, x, y), read in eval mode with gradients on and outside autocast (an attack's
    gradient in fp32), detached: the perturbed batch is data to train on, not part of the graph."""
    with evaluating(model, grad=True, caller="perturb"):
        out = perturb(model, x, y)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise ValueError(f"perturb must return the images it was given, perturbed: a tensor of shape "
                         f"{tuple(x.shape)}, not {getattr(out, 'shape', type(out).__name__)}")
    return out.detach().to(x.dtype)


def run_key(model: nn.Module, train_set: _data.ImageSet, test_set: _data.ImageSet | None, **settings) -> dict:
    """What makes a training run this run: every `fit` setting that changes the weights or the
    history, the model's configuration and fingerprints of the data. A checkpoint resumes only the
    run whose key it carries.

    param_groups are in it (each group's options and parameter names) only when given, so runs
    checkpointed before fit took them still resume; a run with perturb is never checkpointed (fit
    refuses), since a function's settings cannot be fingerprinted.
    Left out on purpose: checkpoint_dir itself, progress and live (display only), and the device,
    so a run interrupted on one machine can be finished on another. The model's initial values are
    left out too: a rebuilt model resumes whatever its random init, because the checkpoint replaces it.
    """
    return {**settings, "model": type(model).__name__, "model_config": model_config(model),
            "train_set": _data.dataset_hash(train_set),
            "test_set": None if test_set is None else _data.dataset_hash(test_set)}


def group_key(model: nn.Module, groups: list[dict]) -> list[dict]:
    """Parameter groups as the run key records them: each group's options and its parameters' names."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [{**{k: v for k, v in group.items() if k != "params"},
             "params": [names[id(p)] for p in group["params"]]} for group in groups]


def model_config(model: nn.Module) -> str:
    """The module tree as torch prints it (layer types and their settings: ReLU or Tanh, LRN or
    Identity, dropout p) plus every parameter's and buffer's shape and whether it trains."""
    params = [f"{name} {tuple(p.shape)} {p.dtype} {'trainable' if p.requires_grad else 'frozen'}"
              for name, p in model.named_parameters()]
    buffers = [f"{name} {tuple(b.shape)} {b.dtype}" for name, b in model.named_buffers()]
    return "\n".join([repr(model), *params, *buffers])


def _run_differences(saved: dict, run: dict) -> list[str]:
    """Readable differences between the run key in a checkpoint and this run's key."""
    out = []
    for key in run.keys() | saved.keys():
        before, now = saved.get(key, "(not recorded)"), run.get(key, "(not recorded)")
        if before == now:
            continue
        if key == "model_config" and isinstance(before, str):  # show the first line that differs
            before, now = next((a, b) for a, b in itertools.zip_longest(before.splitlines(), now.splitlines())
                               if a != b)
            key = "model"
        elif key in ("train_set", "test_set"):
            before, now = f"data {before}", f"data {now}"
        out.append(f"{key}: {before!r} in the checkpoint, {now!r} here")
    return sorted(out)


def _resume(checkpoint_dir, run: dict | None, model, optimizer, scheduler) -> tuple[History, int]:
    """Continue from the newest checkpoint of the same run; checkpoints of another run are refused.

    Refused, not replaced: they may be hours of someone's training, and starting over beside them
    would not work anyway (their higher epoch numbers would shadow and rotate out the new ones)."""
    state = latest_checkpoint(checkpoint_dir)
    if state is None:
        return History(), 0
    differences = _run_differences(state.get("run") or {}, run)
    if differences:
        raise ValueError(f"checkpoint_dir {checkpoint_dir} holds the checkpoints of another run, which this "
                         f"fit would continue with the wrong weights. Differences: " + "; ".join(differences)
                         + f". Pass another checkpoint_dir, or delete {checkpoint_dir} to start this run over")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as err:  # a different architecture or optimizer saved these
        raise ValueError(f"the checkpoints in {checkpoint_dir} belong to a different model; delete that folder "
                         f"or pass another checkpoint_dir ({str(err).splitlines()[0]})") from err
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    return History(list(state["history"])), int(state["epoch"])


def _progress_bar(total, initial, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="training", unit="batch", leave=False)


def _live_curves():
    """A function that draws the history's curves into one display slot and updates that slot in
    place each epoch: clearing the cell's output instead would wipe tqdm's progress bar too."""
    handle = None

    def redraw(history: History) -> None:
        nonlocal handle
        from IPython.display import display
        import matplotlib.pyplot as plt
        figure = history.plot()
        if handle is None:
            handle = display(figure, display_id=True)
        else:
            handle.update(figure)
        plt.close(figure)
    return redraw
