"""coursekit.cache: one build-by-recipe cache (key, lock, load if matching, else build and save)."""
from __future__ import annotations

import pytest
import torch

from coursekit import cache


class Builder:
    """build() for the cache, counting its calls."""

    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_config_key_is_the_format_existing_cache_files_are_named_by():
    # the hash every cache file name holds: changing it would make every cache a miss
    assert cache.config_key({"b": [1, 2], "a": {"x": 0.5}}) == "fef440485b"
    assert cache.config_key({"a": {"x": 0.5}, "b": [1, 2]}) == "fef440485b"  # key order does not matter


def test_builds_once_then_loads(tmp_path):
    path, build = tmp_path / "sub" / "thing.pt", Builder({"w": torch.arange(3)})
    first, built = cache.cached(path, build, recipe={"lr": 0.1})
    again, built_again = cache.cached(path, build, recipe={"lr": 0.1})
    assert (built, built_again, build.calls) == (True, False, 1)
    assert torch.equal(again["w"], first["w"])
    stored = torch.load(path, weights_only=False)
    assert list(stored) == ["recipe", "w"] and stored["recipe"] == {"lr": 0.1}  # the layout on disk


def test_another_recipe_or_a_damaged_file_is_rebuilt(tmp_path):
    path = tmp_path / "thing.pt"
    cache.cached(path, Builder({"w": 1}), recipe={"lr": 0.1})
    other, built = cache.cached(path, Builder({"w": 2}), recipe={"lr": 0.2})
    assert built and other == {"recipe": {"lr": 0.2}, "w": 2}
    path.write_bytes(path.read_bytes()[:20])
    with pytest.warns(UserWarning, match="thing.pt"):  # the warning names the file it ignores
        again, built = cache.cached(path, Builder({"w": 3}), recipe={"lr": 0.2})
    assert built and again["w"] == 3


def test_valid_keeps_the_callers_layout(tmp_path):
    path, build = tmp_path / "features.pt", Builder(torch.ones(2, 3))
    is_tensor = lambda stored: isinstance(stored, torch.Tensor)
    cache.cached(path, build, valid=is_tensor)
    loaded, built = cache.cached(path, build, valid=is_tensor)
    assert not built and build.calls == 1
    assert isinstance(torch.load(path, weights_only=False), torch.Tensor)  # saved as built, no recipe around it
    _, built = cache.cached(path, build, valid=lambda stored: False)
    assert built and build.calls == 2


def test_leftovers_of_a_killed_writer_are_removed_before_building(tmp_path):
    path = tmp_path / "thing.pt"
    stale = tmp_path / "thing.pt.abc123.tmp"
    stale.write_bytes(b"half")
    cache.cached(path, Builder({"w": 1}), recipe=1)
    assert not stale.exists() and path.exists()


def test_remember_computes_once_per_key_and_keeps_null_runs_apart(tmp_path, monkeypatch):
    from coursekit import settings
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    monkeypatch.delenv("COURSEKIT_NULL", raising=False)
    build = Builder([{"draw": 0, "top1": 0.5}])
    key = {"pool": "abc", "draws": {10: 3}, "code": "def f(): ..."}
    assert cache.remember("exp", key, build, settings.load()) == [{"draw": 0, "top1": 0.5}]
    assert cache.remember("exp", dict(key), build, settings.load()) == [{"draw": 0, "top1": 0.5}]
    assert build.calls == 1                                            # the second call loaded it
    cache.remember("exp", {**key, "code": "def f(): edited"}, build, settings.load())
    assert build.calls == 2                                            # any part of the key changed: again
    monkeypatch.setenv("COURSEKIT_NULL", "untrained")
    cache.remember("exp", key, build, settings.load())
    assert build.calls == 3                                            # a null run never reads the real cache


def _settings(tmp_path, null):
    from coursekit import settings
    base = tmp_path / "cache"
    return settings.Settings(quick=True, data_roots=(tmp_path,), cache_dir=base / f"null-{null}" if null else base,
                             device=torch.device("cpu"), offline=True, seed=0, backbone="cifar10", null=null)


def test_a_null_run_reads_the_real_runs_copy_and_never_writes_there(tmp_path):
    real_cfg, null_cfg = _settings(tmp_path, ""), _settings(tmp_path, "untrained")
    name = "transfer/ab-random.pt"
    assert cache.real_run_copy(null_cfg.cache_dir / name, {"seed": 0}, null_cfg) is None   # nothing cached yet
    cache.cached(real_cfg.cache_dir / name, Builder({"rows": [1]}), recipe={"seed": 0})
    assert cache.real_run_copy(null_cfg.cache_dir / name, {"seed": 0}, null_cfg)["rows"] == [1]
    assert cache.real_run_copy(null_cfg.cache_dir / name, {"seed": 1}, null_cfg) is None   # another recipe
    assert cache.real_run_copy(real_cfg.cache_dir / name, {"seed": 0}, real_cfg) is None   # not a null run
    assert not (null_cfg.cache_dir / name).exists()


def test_the_untrained_null_takes_the_real_ab_experiment_and_the_shuffled_one_trains(tmp_path, monkeypatch):
    from coursekit import ab, data
    split = data.Split("random", ("airplane", "cat"), ("dog", "ship"))
    recipe = {"seeds": [0], "fine_tune_seeds": []}
    trained = []
    def run(split, recipe, cfg, progress):
        import pandas as pd
        trained.append(cfg.null)
        return pd.DataFrame({"config": ["baseB"], "top1": [0.5 if not cfg.null else 0.25]})
    monkeypatch.setattr(ab, "_cifar_ab_run", run)
    real = ab.cifar_ab(split, recipe, _settings(tmp_path, ""))
    untrained = ab.cifar_ab(split, recipe, _settings(tmp_path, "untrained"))
    shuffled = ab.cifar_ab(split, recipe, _settings(tmp_path, "shuffled-labels"))
    assert trained == ["", "shuffled-labels"]
    assert untrained.top1.tolist() == real.top1.tolist() == [0.5] and shuffled.top1.tolist() == [0.25]
