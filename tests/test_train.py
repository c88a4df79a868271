import contextlib
import dataclasses
import pytest
import torch

from coursekit import backbones, data, models, settings, train


def _toy_set(n=64, seed=0):
    """Two classes told apart by brightness: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (torch.rand(n, 3, 32, 32, generator=g) * 100 + labels.view(-1, 1, 1, 1) * 120).to(torch.uint8)
    return data.ImageSet(images, labels, ["dark", "bright"])


def _model(seed=0):
    torch.manual_seed(seed)
    return models.mini_alexnet(num_classes=2, width=0.125, dropout=0.5)


def test_fit_learns_a_trivial_task():
    ds = _toy_set()
    history = train.fit(_model(), ds, ds, epochs=4, batch_size=16, lr=0.02, progress=False, augment=False)
    assert len(history) == 4
    assert history["test_top1"][-1] >= 0.9
    assert history["loss"][-1] < history["loss"][0]
    frame = history.to_frame()
    assert list(frame.index) == [1, 2, 3, 4]


def test_live_curves_update_one_display_in_place_and_keep_the_progress_bar(monkeypatch):
    import IPython.display
    shown, cleared = [], []

    class Handle:
        def update(self, figure):
            shown.append(("update", figure))

    def display(figure, display_id=False):
        shown.append(("display", figure))
        return Handle() if display_id else None

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(IPython.display, "clear_output", lambda wait=False: cleared.append(wait))
    ds = _toy_set(16)
    train.fit(_model(), ds, ds, epochs=3, batch_size=8, lr=0.02, progress=False, augment=False, live=True)
    assert [kind for kind, _ in shown] == ["display", "update", "update"]   # one slot, redrawn each epoch
    assert not cleared                                                        # so tqdm's bar above it stays


def test_topk_correct():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([1, 2])
    assert train.topk_correct(logits, labels, ks=(1, 2)) == [1, 2]


def test_evaluate_reports_top1_top5():
    scores = train.evaluate(_model(), _toy_set(16))
    assert set(scores) == {"top1", "top5", "loss"} and scores["top5"] == 1.0  # two classes: always in top 5


def test_chance_bound_is_chance_plus_z_binomial_errors_and_guessing_rarely_beats_it():
    assert train.chance_bound(1000, 10) == pytest.approx(0.1 + 3 * (0.1 * 0.9 / 1000) ** 0.5)
    assert train.chance_bound(1000, 10, z=0) == pytest.approx(0.1)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (1000,), generator=g)
    guessers = [(torch.randint(0, 10, (1000,), generator=g) == labels).float().mean() for _ in range(500)]
    assert sum(float(a) > train.chance_bound(1000, 10) for a in guessers) <= 5  # about 1 in 700 expected
    with pytest.raises(ValueError, match="n_classes"):
        train.chance_bound(100, 1)


def test_seeded_cpu_runs_are_repeatable():
    ds = _toy_set()
    a, b = _model(), _model()
    train.fit(a, ds, epochs=2, batch_size=16, progress=False, seed=3, device="cpu")
    train.fit(b, ds, epochs=2, batch_size=16, progress=False, seed=3, device="cpu")
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
    ds = _toy_set()
    # lr 0.02: fit's default 0.05 diverged to NaN on this toy on one CPU (an Intel Xeon without bf16,
    # 2026-12-01), and NaN never equals NaN, so the comparison below needs a run that stays finite
    kwargs = dict(epochs=3, batch_size=16, lr=0.02, progress=False, seed=1, device="cpu", augment=True)
    reference = _model()
    train.fit(reference, ds, checkpoint_dir=tmp_path / "ref", **kwargs)
    assert all(torch.isfinite(p).all() for p in reference.parameters()), "the reference run diverged"

    calls = {"n": 0}
    real_epoch = train._train_epoch

    def dies_in_third_epoch(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("kernel interrupted")
        return real_epoch(*args, **kw)

    monkeypatch.setattr(train, "_train_epoch", dies_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.fit(_model(), ds, checkpoint_dir=tmp_path / "run", **kwargs)
    monkeypatch.setattr(train, "_train_epoch", real_epoch)

    resumed = _model(seed=99)  # different init: everything must come from the checkpoint
    history = train.fit(resumed, ds, checkpoint_dir=tmp_path / "run", **kwargs)
    assert history["epoch"] == [1, 2, 3]
    for x, y in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(x, y)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    ds = _toy_set()
    train.fit(_model(), ds, epochs=2, batch_size=16, progress=False, checkpoint_dir=tmp_path)
    newest = sorted(tmp_path.glob("epoch-*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match="damaged"):
        state = train.latest_checkpoint(tmp_path)
    assert state["epoch"] == 1


@pytest.mark.parametrize("kwargs, culprit", [
    ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": -1.0}, "lr"),
    ({"schedule": "cosine-ish"}, "schedule"),
])
def test_bad_arguments_are_named(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        train.fit(_model(), _toy_set(16), progress=False, **kwargs)


def test_wrong_dataset_type():
    with pytest.raises(TypeError, match="ImageSet"):
        train.fit(_model(), [1, 2, 3], progress=False)


def test_out_of_memory_suggests_a_smaller_batch(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr(train, "_train_epoch", oom)
    with pytest.raises(RuntimeError, match="batch_size=8"):
        train.fit(_model(), _toy_set(16), batch_size=16, progress=False)


def test_bf16_only_where_the_hardware_has_it_and_never_by_default_on_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: True)
    assert train.native_bf16(cpu) and train.native_bf16(torch.device("cuda"))
    assert not train.native_bf16(torch.device("meta"))  # mps and others: fp32
    on_cpu = dataclasses.replace(settings.load(), device=cpu)
    assert backbones.cifar10_recipe(on_cpu)["autocast"]
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: False)
    assert not train.native_bf16(cpu)
    assert not backbones.cifar10_recipe(on_cpu)["autocast"]  # the backbone trains in fp32 on such CPUs
    seen = []
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: True)
    monkeypatch.setattr(train, "autocast_for", lambda device, enabled: seen.append(enabled) or contextlib.nullcontext())
    images = data.ImageSet(torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8) % 2, ["a", "b"])
    train.fit(models.four_layer_cnn(num_classes=2, width=4), images, epochs=1, batch_size=4, progress=False, device="cpu")
    assert seen == [False, False]  # fp32 on the CPU unless asked: seeded runs stay bit-repeatable


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_cuda_without_native_bf16_autocasts_in_fp16(monkeypatch, native, expected):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native or including_emulation  # a T4: bf16 "supported" only by emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert train.autocast_dtype(torch.device("cuda")) == expected
    assert asked == [False]  # emulated bf16 is not native
    assert train.autocast_dtype(torch.device("cpu")) == torch.bfloat16


def test_fp16_trains_with_a_grad_scaler_and_fp32_without(monkeypatch):
    monkeypatch.setattr(train, "autocast_dtype", lambda device: torch.float16)  # a T4, played on the CPU
    assert train.grad_scaler(torch.device("cpu"), enabled=True).is_enabled()
    assert not train.grad_scaler(torch.device("cpu"), enabled=False).is_enabled()
    scales, step = [], torch.amp.GradScaler.step
    monkeypatch.setattr(torch.amp.GradScaler, "step",
                        lambda self, optimizer: scales.append(self.get_scale()) or step(self, optimizer))
    model = models.four_layer_cnn(num_classes=2, width=4)
    before = [p.detach().clone() for p in model.parameters()]
    images = data.ImageSet(torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8) % 2, ["a", "b"])
    train.fit(model, images, epochs=1, batch_size=4, progress=False, device="cpu", autocast=True, schedule=None)
    assert len(scales) == 2 and scales[0] > 1  # every step went through the scaler, with a real scale
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    train.fit(model, images, epochs=1, batch_size=4, progress=False, device="cpu", autocast=False, schedule=None)
    assert len(scales) == 2  # fp32: no scaler


# ---------------------------------------------------------------- parameter groups and perturbations

PLAIN_STEP = dict(epochs=1, batch_size=16, lr=0.1, momentum=0.0, weight_decay=0.0, schedule=None, augment=False,
                  progress=False, device="cpu")  # one plain SGD step on one batch of _toy_set(16)


def _conv1_and_rest(model):
    conv1 = list(model.net.conv1.parameters())
    return conv1, [p for p in model.parameters() if all(p is not q for q in conv1)]


def test_param_groups_learn_at_their_own_lr_and_the_rest_at_fits():
    start, plain, grouped = _model(), _model(), _model()
    train.fit(plain, _toy_set(16), **PLAIN_STEP)
    conv1, rest = _conv1_and_rest(grouped)
    train.fit(grouped, _toy_set(16), param_groups=[{"params": conv1, "lr": 0.01}, {"params": rest}], **PLAIN_STEP)
    for name, before in start.state_dict().items():
        step, plain_step = grouped.state_dict()[name] - before, plain.state_dict()[name] - before
        if name.startswith("net.conv1."):  # lr 0.01 instead of fit's 0.1: a tenth of the step
            rounding = 4 * torch.finfo(before.dtype).eps * (before.abs().max() + plain_step.abs().max())  # float32
            assert plain_step.abs().max() > 100 * rounding, name
            assert torch.allclose(step, 0.1 * plain_step, rtol=0, atol=rounding), name
        else:
            assert torch.equal(step, plain_step), name


def test_one_group_of_all_parameters_is_the_default():
    ds, kwargs = _toy_set(), dict(epochs=2, batch_size=16, progress=False, seed=3, device="cpu")
    a, b = _model(), _model()
    train.fit(a, ds, **kwargs)
    train.fit(b, ds, param_groups=[{"params": b.parameters()}], **kwargs)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_bad_param_groups_are_named():
    with pytest.raises(TypeError, match="param_groups"):
        train.fit(_model(), _toy_set(16), param_groups={"params": []}, progress=False)
    model = _model()
    with pytest.raises(ValueError, match=r"param_groups\[1\].*not a parameter of the model"):
        train.fit(model, _toy_set(16), param_groups=[{"params": model.parameters()},
                                                     {"params": _model().net.fc8.parameters()}], progress=False)


def test_checkpoints_resume_only_the_same_param_groups(tmp_path):
    ds, kwargs = _toy_set(), dict(epochs=1, batch_size=16, progress=False, seed=1, device="cpu",
                                  checkpoint_dir=tmp_path)
    def groups(model, conv1_lr):
        conv1, rest = _conv1_and_rest(model)
        return [{"params": conv1, "lr": conv1_lr}, {"params": rest}]
    first = _model()
    train.fit(first, ds, param_groups=groups(first, 0.005), **kwargs)
    again = _model(seed=5)
    assert train.fit(again, ds, param_groups=groups(again, 0.005), **kwargs)["epoch"] == [1]  # resumed
    for x, y in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(x, y)
    changed = _model()
    with pytest.raises(ValueError, match="param_groups"):  # another lr for conv1
        train.fit(changed, ds, param_groups=groups(changed, 0.05), **kwargs)
    with pytest.raises(ValueError, match="param_groups"):  # no groups: one lr for all
        train.fit(_model(), ds, **kwargs)


def test_perturb_sees_every_augmented_batch_in_eval_mode_and_the_model_trains_on_its_output():
    seen, modes = [], []
    def identity(model, images, labels):
        seen.append((images.shape, images.min() >= 0 and images.max() <= 1, model.training, len(labels)))
        return images
    model = _model()
    model.net.fc8.register_forward_hook(lambda module, args, out: modes.append(module.training))
    ds, kwargs = _toy_set(), dict(epochs=2, batch_size=16, progress=False, seed=2, device="cpu")
    train.fit(model, ds, perturb=identity, **kwargs)
    assert seen == [((16, 3, 32, 32), True, False, 16)] * 8  # 2 epochs x 4 batches, read in eval mode
    assert modes.count(True) == 8  # ... and trained in train mode
    reference = _model()
    train.fit(reference, ds, **kwargs)
    for x, y in zip(reference.state_dict().values(), model.state_dict().values()):
        assert torch.equal(x, y)  # the identity changes nothing: the batch trained on is perturb's output
    darkened = _model()
    train.fit(darkened, ds, perturb=lambda m, images, labels: images * 0.5, **kwargs)
    assert not torch.equal(darkened.net.fc8.weight, reference.net.fc8.weight)


def test_perturb_errors_are_named(tmp_path):
    with pytest.raises(ValueError, match="checkpoint"):
        train.fit(_model(), _toy_set(16), perturb=lambda m, x, y: x, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"perturb must return .*\(16, 3, 32, 32\)"):
        train.fit(_model(), _toy_set(16), batch_size=16, perturb=lambda m, x, y: x[:1], progress=False)
    with pytest.raises(TypeError, match="perturb"):
        train.fit(_model(), _toy_set(16), perturb="fgsm", progress=False)


def test_every_schedule_scales_each_group_by_the_same_factor():
    model = _model()
    conv1, rest = _conv1_and_rest(model)
    for schedule in ("onecycle", "onecycle-cosine", "step"):
        optimizer = train.make_sgd([{"params": conv1, "lr": 0.01}, {"params": rest}], 0.1, 0.9, 5e-4)
        scheduler = train.make_scheduler(optimizer, schedule, 0.1, epochs=2, steps_per_epoch=8)
        lrs = []
        for _ in range(16):
            lrs.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
        slow, fast = zip(*lrs)
        assert all(abs(s - f / 10) < 1e-12 for s, f in zip(slow, fast)), schedule
        assert max(fast) == pytest.approx(0.1) and min(fast) < 0.01, schedule  # peaks at lr, anneals
        if schedule == "onecycle-cosine":  # torch's OneCycleLR: from lr/25, at lr after a quarter
            assert fast[0] == pytest.approx(0.1 / 25) and fast[3] == pytest.approx(0.1)


def test_require_learned_names_the_networks_and_is_not_a_plain_assertion():
    import pandas as pd
    from coursekit.train import NotLearned, chance_bound, require_learned
    bound = chance_bound(500, 5)
    require_learned(pd.Series([0.41, 0.45]), bound, "baseB")          # every run above the bound: silent
    require_learned(0.41, bound, "baseB")
    with pytest.raises(NotLearned, match=r"baseB: held-out top-1 \[0.41, 0.2\]"):
        require_learned([0.41, 0.2], bound, "baseB")
    assert issubclass(NotLearned, AssertionError) and NotLearned.__name__ != "AssertionError"
