"""`python -m coursekit`: version, help a new user understands, doctor, prefetch, clean-cache.

Everything here runs offline: downloads are either refused (COURSEKIT_OFFLINE=1) or replaced by
recorders, and every cache, data root and torch cache is a temporary folder.
"""
from __future__ import annotations

import pytest
import torch

import coursekit
from coursekit import data, models, settings
from coursekit.__main__ import main, parser
from conftest import make_image_folder


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """torch's cache in a temporary folder, so the AlexNet weights are missing unless a test puts them there."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def fake_alexnet_weights(torch_home, weights=None):
    """A stand-in file where torchvision caches `weights` (default AlexNet IMAGENET1K_V1)."""
    from torchvision.models import AlexNet_Weights
    weights = weights or AlexNet_Weights.IMAGENET1K_V1
    path = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stand-in")
    return path


def fake_all_weights(torch_home):
    from torchvision.models import ResNet18_Weights
    fake_alexnet_weights(torch_home)
    fake_alexnet_weights(torch_home, ResNet18_Weights.IMAGENET1K_V1)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- version and help

def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"coursekit {coursekit.__version__}"


def test_version_is_written_once():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((settings.PROJECT_ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "coursekit.__version__"}


def test_every_command_has_a_summary_and_a_description():
    commands = next(a for a in parser()._actions if a.dest == "command")
    summaries = {c.dest: c.help for c in commands._choices_actions}
    assert {"doctor", "prefetch", "clean-cache", "student", "grade", "validate"} <= set(summaries)
    for name, sub in commands.choices.items():
        assert summaries[name] and len(summaries[name]) > 20, name
        assert sub.description.startswith(summaries[name]) and len(sub.description) > len(summaries[name]) + 40, name


def test_help_names_the_environment_variables(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ["COURSEKIT_DATA", "COURSEKIT_CACHE", "COURSEKIT_OFFLINE", "doctor", "prefetch", "clean-cache"]:
        assert name in out


# ---------------------------------------------------------------- doctor

def test_doctor_reports_device_data_cache_and_weights(capsys, tiny_cifar, isolated_cache, torch_home):
    (isolated_cache / "models").mkdir(parents=True)
    (isolated_cache / "models" / "cifar10-abc.pt").write_bytes(b"x" * 2_000_000)
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    assert "device" in out and "torch" in out and coursekit.__version__ in out
    assert f"{tiny_cifar}: cifar10/ (test, train)" in out
    assert str(isolated_cache) in out and "models/" in out and "2.0 MB in 1 files" in out
    assert "AlexNet weights: not in torch's cache" in out and str(torch_home) in out
    assert "ResNet-18 weights (the second network): not in torch's cache" in out
    fake_alexnet_weights(torch_home)
    out = run(capsys, "doctor")[1]
    assert "AlexNet weights: in torch's cache" in out and "ResNet-18 weights (the second network): not in" in out


def test_doctor_says_a_data_root_is_missing(capsys, tmp_path, monkeypatch, isolated_cache, torch_home):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "nowhere"))
    code, out, _ = run(capsys, "doctor")
    assert code == 0 and f"{tmp_path / 'nowhere'}: missing" in out and "(empty)" in out


# ---------------------------------------------------------------- prefetch

def test_prefetch_offline_fails_and_says_why_and_what_to_do(capsys, tmp_path, monkeypatch, isolated_cache,
                                                             torch_home):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    code, out, err = run(capsys, "prefetch")
    assert code == 1
    assert "offline (COURSEKIT_OFFLINE=1 is set)" in err
    assert "CIFAR-10 train" in err and "CIFAR-10 test" in err and "AlexNet weights" in err and "ResNet-18" in err
    # the ways out a student can actually take, not a path from the developers' machine
    assert "COURSEKIT_DATA" in err and "python -m coursekit prefetch" in err and "../shared" not in err


def test_prefetch_offline_succeeds_when_nothing_is_missing(capsys, tiny_cifar, torch_home):
    fake_all_weights(torch_home)
    make_image_folder(tiny_cifar, ["imagenet-samples"], per_class=2)  # two photos in tiny_cifar/imagenet-samples
    for k, photo in enumerate(sorted((tiny_cifar / "imagenet-samples").iterdir())):
        photo.rename(photo.with_name(f"n0000000{k}_class_{k}.png"))
    code, out, err = run(capsys, "prefetch")
    assert code == 0 and not err
    assert "CIFAR-10 train: ready (60 images)" in out and "CIFAR-10 test: ready (20 images)" in out
    assert f"ImageNet sample photos: ready (2 in {tiny_cifar / 'imagenet-samples'})" in out


def test_prefetch_online_uses_the_course_download_functions(capsys, tmp_path, monkeypatch, isolated_cache,
                                                            torch_home):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("COURSEKIT_OFFLINE", raising=False)
    calls = []

    def download_cifar10(split, target):
        calls.append(("cifar10", split, target))
        return {"format": data.CACHE_FORMAT, "images": torch.zeros(3, 3, 32, 32, dtype=torch.uint8),
                "labels": torch.zeros(3, dtype=torch.int64), "classes": list(data.CIFAR10_CLASSES)}

    monkeypatch.setattr(data, "can_download", lambda host="", timeout=0: True)
    monkeypatch.setattr(data, "_download_cifar10", download_cifar10)
    def download_samples(target):
        calls.append(("samples", target))
        make_image_folder(target, ["imagenet-samples"], per_class=1)
        (target / "imagenet-samples" / "0.png").rename(target / "imagenet-samples" / "n01440764_tench.png")
        return target / "imagenet-samples"

    monkeypatch.setattr(data, "_download_imagenet_samples", download_samples)
    monkeypatch.setattr(models, "alexnet", lambda pretrained=True: calls.append(("alexnet", pretrained)))
    monkeypatch.setattr(models, "resnet18", lambda pretrained=True: calls.append(("resnet18", pretrained)))
    code, out, err = run(capsys, "prefetch")
    assert code == 0, err
    # downloads land in the data root (created if missing), where clean-cache never deletes them
    assert calls == [("cifar10", "train", tmp_path / "data"), ("cifar10", "test", tmp_path / "data"),
                     ("samples", tmp_path / "data"), ("alexnet", True), ("resnet18", True)]
    assert "downloaded" in out


# ---------------------------------------------------------------- clean-cache

def test_clean_cache_lists_then_deletes_only_the_cache(capsys, tmp_path, monkeypatch, torch_home):
    root = tmp_path / "data"                       # the checkout's layout: data/ with data/cache inside
    cache = root / "cache"
    (root / "cifar10" / "train").mkdir(parents=True)
    (root / "cifar10" / "train" / "keep.png").write_bytes(b"data")
    (cache / "models").mkdir(parents=True)
    (cache / "cifar10-train-32px.pt").write_bytes(b"decoded")
    (cache / "models" / "backbone.pt").write_bytes(b"weights")
    weights = fake_alexnet_weights(torch_home)
    monkeypatch.setenv("COURSEKIT_DATA", str(root))
    monkeypatch.setenv("COURSEKIT_CACHE", str(cache))

    code, out, _ = run(capsys, "clean-cache")
    assert code == 0 and "cifar10-train-32px.pt" in out and "models/" in out and "nothing deleted" in out
    assert (cache / "models" / "backbone.pt").is_file()

    code, out, _ = run(capsys, "clean-cache", "--yes")
    assert code == 0 and f"deleted {cache}" in out
    assert not cache.exists()
    assert (root / "cifar10" / "train" / "keep.png").is_file() and weights.is_file()
    assert "nothing to delete" in run(capsys, "clean-cache", "--yes")[1]


@pytest.mark.parametrize("holds", ["data root", "torch's cache"])
def test_clean_cache_refuses_a_cache_that_holds_what_it_must_keep(capsys, tmp_path, monkeypatch, torch_home, holds):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data" if holds == "data root" else tmp_path.parent / "x"))
    (tmp_path / "something.pt").write_bytes(b"x")
    code, _, err = run(capsys, "clean-cache", "--yes")
    assert code == 2 and holds in err and "COURSEKIT_CACHE" in err
    assert (tmp_path / "something.pt").is_file()


# ---------------------------------------------------------------- workspace: the student's own copies

def test_workspace_copies_new_notebooks_and_never_overwrites_a_students_copy(tmp_path, capsys):
    release, mine = tmp_path / "release", tmp_path / "mine"
    release.mkdir()
    (release / "01_a.ipynb").write_text("release 01")
    (release / "02_b.ipynb").write_text("release 02")
    mine.mkdir()
    (mine / "01_a.ipynb").write_text("my answers")
    code, out, _ = run(capsys, "workspace", "--release", str(release), "--into", str(mine))
    assert code == 0
    assert (mine / "01_a.ipynb").read_text() == "my answers"
    assert (mine / "02_b.ipynb").read_text() == "release 02"
    assert "1 notebooks copied" in out and "01_a.ipynb" in out


def test_workspace_without_student_notebooks_says_how_to_get_them(tmp_path, capsys):
    code, _, err = run(capsys, "workspace", "--release", str(tmp_path / "missing"), "--into", str(tmp_path / "mine"))
    assert code == 2 and "make student" in err


# ---------------------------------------------------------------- warm

def test_warm_builds_the_shared_networks_once_and_says_so(capsys, monkeypatch, isolated_cache):
    """warm asks for exactly what the notebooks share: the cifar10 backbone and the source network of
    02 and 09-11 (the random split's task A), in the current mode (the training itself is backbones'
    own, tested there)."""
    import types

    from coursekit import backbones
    asked = []
    monkeypatch.setattr(backbones, "backbone", lambda name=None, cfg=None, progress=True: (
        asked.append(("backbone", name)), types.SimpleNamespace(reason="stub"))[1])
    monkeypatch.setattr(backbones, "trained_on_classes", lambda recipe, cfg=None, progress=True: (
        asked.append(("source", tuple(recipe["classes"]))), (None, {"test_top1": 0.5}))[1])
    code, out, _ = run(capsys, "warm")
    assert code == 0 and "cifar10 backbone: ready" in out and "source network on" in out
    assert asked == [("backbone", "cifar10"), ("source", tuple(data.cifar_splits()["random"].a))]


def test_warm_without_data_fails_and_names_the_fix(capsys, tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("COURSEKIT_OFFLINE", "1")
    code, _, err = run(capsys, "warm")
    assert code == 1 and "warm:" in err and "COURSEKIT_DATA" in err
