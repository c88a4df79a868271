import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from coursekit import settings


def test_defaults(monkeypatch):
    for name in ["COURSEKIT_QUICK", "COURSEKIT_DATA", "COURSEKIT_CACHE", "COURSEKIT_DEVICE", "COURSEKIT_SEED"]:
        monkeypatch.delenv(name, raising=False)
    cfg = settings.load()
    assert cfg.quick is False and cfg.seed == 0
    assert cfg.data_roots == (settings.PROJECT_ROOT / "data",)
    assert cfg.cache_dir == settings.PROJECT_ROOT / "data" / "cache"
    assert cfg.pick(quick=1, full=2) == 2


def test_environment_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    monkeypatch.setenv("COURSEKIT_DATA", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    monkeypatch.setenv("COURSEKIT_SEED", "7")
    cfg = settings.load()
    assert cfg.quick and cfg.mode == "quick" and cfg.pick(quick=1, full=2) == 1
    assert cfg.data_roots == (tmp_path / "a", tmp_path / "b")
    assert cfg.device == torch.device("cpu") and cfg.seed == 7


def test_settings_are_frozen():
    cfg = settings.load()
    with pytest.raises(Exception):
        cfg.quick = True


@pytest.mark.parametrize("name, value, culprit", [
    ("COURSEKIT_SEED", "abc", "COURSEKIT_SEED"),
    ("COURSEKIT_BACKBONE", "vgg", "COURSEKIT_BACKBONE"),
    ("COURSEKIT_DEVICE", "banana", "COURSEKIT_DEVICE"),
    ("COURSEKIT_NULL", "random", "COURSEKIT_NULL"),
])
def test_bad_values_name_the_variable(monkeypatch, name, value, culprit):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=culprit):
        settings.load()


def test_cuda_requested_without_gpu(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("COURSEKIT_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        settings.load()


def test_setup_prints_one_block(capsys, monkeypatch):
    import coursekit
    monkeypatch.setenv("COURSEKIT_QUICK", "1")
    cfg = coursekit.setup(backbone="cifar10")
    out = capsys.readouterr().out
    for word in ["device", "backbone", "cifar10", "mode", "quick", "data"]:
        assert word in out
    assert cfg.quick


# ---------------------------------------------------------------- default data and cache directories

def _unset_locations(monkeypatch):
    monkeypatch.delenv("COURSEKIT_DATA", raising=False)
    monkeypatch.delenv("COURSEKIT_CACHE", raising=False)


def test_this_source_tree_is_detected_as_a_checkout():
    assert settings.from_checkout()


def test_a_package_without_pyproject_is_not_a_checkout(monkeypatch, tmp_path):
    site_packages = tmp_path / "site-packages"
    (site_packages / "coursekit").mkdir(parents=True)
    monkeypatch.setattr(settings, "PROJECT_ROOT", site_packages)
    assert not settings.from_checkout()


def test_checkout_keeps_data_and_data_cache(monkeypatch):
    _unset_locations(monkeypatch)
    monkeypatch.setattr(settings, "from_checkout", lambda: True)
    cfg = settings.load()
    assert cfg.data_roots == (settings.PROJECT_ROOT / "data",)
    assert cfg.cache_dir == settings.PROJECT_ROOT / "data" / "cache"


def test_installed_package_uses_per_user_directories(monkeypatch, tmp_path):
    import platformdirs
    _unset_locations(monkeypatch)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))   # where platformdirs looks on Linux
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(settings, "from_checkout", lambda: False)
    cfg = settings.load()
    assert cfg.data_roots == (Path(platformdirs.user_data_dir("coursekit", appauthor=False)),)
    assert cfg.cache_dir == Path(platformdirs.user_cache_dir("coursekit", appauthor=False))
    for path in (*cfg.data_roots, cfg.cache_dir):    # never next to the package (site-packages)
        assert not path.is_relative_to(settings.PROJECT_ROOT)
    if sys.platform.startswith("linux"):
        assert cfg.cache_dir == tmp_path / "cache" / "coursekit"


def test_installed_package_still_obeys_the_environment(monkeypatch, tmp_path):
    monkeypatch.setattr(settings, "from_checkout", lambda: False)
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path / "cache"))
    cfg = settings.load()
    assert cfg.data_roots == (tmp_path / "data",) and cfg.cache_dir == tmp_path / "cache"


def test_current_sees_environment_changes_and_reads_it_once_per_change(monkeypatch):
    loads = []
    real = settings.load
    monkeypatch.setattr(settings, "load", lambda: loads.append(1) or real())
    monkeypatch.setenv("COURSEKIT_SEED", "918273")  # a value no earlier call has cached
    first = settings.current()
    assert first.seed == 918273 and settings.current() is first and len(loads) == 1
    monkeypatch.setenv("COURSEKIT_SEED", "918274")  # as a test's fixture does between calls
    assert settings.current().seed == 918274 and len(loads) == 2
    given = dataclasses.replace(first, seed=5)
    assert settings.current(given) is given
    with pytest.raises(TypeError, match="Settings"):
        settings.current({"seed": 5})


def test_library_code_reads_settings_only_through_current():
    package = settings.PROJECT_ROOT / "coursekit"
    readers = [f"{path.relative_to(package)}:{i}" for path in package.rglob("*.py") if path.name != "settings.py"
               for i, line in enumerate(path.read_text().splitlines(), 1) if "settings.load(" in line]
    assert not readers, f"call settings.current(cfg) instead of settings.load() at {readers}"


def test_a_null_run_caches_apart(monkeypatch, tmp_path):
    """COURSEKIT_NULL's networks (untrained, or trained on shuffled labels) must never be saved where
    the real run would load them."""
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    assert settings.load().cache_dir == tmp_path and settings.load().null == ""
    monkeypatch.setenv("COURSEKIT_NULL", "shuffled-labels")
    assert settings.load().cache_dir == tmp_path / "null-shuffled-labels"
    assert settings.load().null == "shuffled-labels"
