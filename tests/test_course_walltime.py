"""The full-mode wall-time benchmark's bookkeeping: which rows an `--only` run keeps, and the
first-pass cache it runs notebooks in (the timing itself is a benchmark, not a test)."""
import dataclasses
import json
from pathlib import Path

import nbformat
import pytest

from benchmarks import course_walltime
from coursekit import backbones, settings


def test_only_run_keeps_the_other_notebooks_rows_marked_as_earlier(tmp_path, monkeypatch):
    monkeypatch.setattr(course_walltime, "RESULTS", tmp_path)
    rows = [{"measure": f"{name} (full)", "value": v, "unit": "s", "target": "< 900 s", "met": True, "note": "ok"}
            for name, v in [("00_setup", 6.0), ("01_alexnet", 667.0)]]
    (tmp_path / "course_walltime_full.json").write_text(json.dumps({"rows": rows, "finished": "yesterday"}))
    kept = course_walltime.earlier_full_rows(skip=["01_alexnet"])
    assert [r["measure"] for r in kept] == ["00_setup (full)"]
    assert kept[0]["value"] == 6.0 and kept[0]["note"] == "ok (earlier run, yesterday)"
    # kept again by a later run: marked once, with the date it was measured
    (tmp_path / "course_walltime_full.json").write_text(json.dumps({"rows": kept, "finished": "today"}))
    assert course_walltime.earlier_full_rows(skip=[])[0]["note"] == "ok (earlier run, yesterday)"


def test_no_earlier_run_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(course_walltime, "RESULTS", tmp_path)
    assert course_walltime.earlier_full_rows(skip=[]) == []


def test_first_run_cache_holds_only_the_backbone_and_decoded_images(tmp_path, monkeypatch):
    real = tmp_path / "real"
    monkeypatch.setenv("COURSEKIT_CACHE", str(real))
    cfg = dataclasses.replace(settings.load(), quick=False)
    backbone = backbones.cifar10_cache_path(backbones.cifar10_recipe(cfg), cfg)
    backbone.parent.mkdir(parents=True)
    backbone.write_bytes(b"weights")
    (real / "cifar10-train-32px.pt").write_bytes(b"images")
    (real / "models" / "minialexnet-classes-123.pt").write_bytes(b"another notebook's model")
    (real / "transfer").mkdir()
    fresh = course_walltime.first_run_cache(tmp_path / "fresh")
    found = sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file())
    assert found == ["cifar10-train-32px.pt", f"models/{backbone.name}"]
    assert (fresh / "models" / backbone.name).read_bytes() == b"weights"


def test_on_the_imagenet_path_the_first_run_cache_never_trains_the_cifar10_backbone(tmp_path, monkeypatch):
    """--imagenet: the cifar10 backbone is not the notebooks' own, so it is linked when cached and
    otherwise left for the notebook that needs it (08) to train, as on a student's first pass."""
    real = tmp_path / "real"
    monkeypatch.setenv("COURSEKIT_CACHE", str(real))
    real.mkdir()
    (real / "cifar10-test-32px.pt").write_bytes(b"images")
    monkeypatch.setattr(backbones, "trained_cifar10", lambda *a, **k: pytest.fail("trained the cifar10 backbone"))
    fresh = course_walltime.first_run_cache(tmp_path / "fresh", imagenet=True)
    assert sorted(str(p.relative_to(fresh)) for p in fresh.rglob("*") if p.is_file()) == ["cifar10-test-32px.pt"]
    cfg = dataclasses.replace(settings.load(), quick=False)
    backbone = backbones.cifar10_cache_path(backbones.cifar10_recipe(cfg), cfg)
    backbone.parent.mkdir(parents=True)
    backbone.write_bytes(b"weights")
    linked = course_walltime.first_run_cache(tmp_path / "again", imagenet=True)
    assert (linked / "models" / backbone.name).read_bytes() == b"weights"


def test_keep_going_runs_past_a_failing_cell_and_names_it(tmp_path):
    """--keep-going: a cell that raises does not stop the notebook, and the status names it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert False, 'a paper check'"),
                                         nbformat.v4.new_code_cell("open('ran.txt', 'w').write('yes')")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    run = course_walltime.run_notebook(path, 120, keep_going=True)
    assert run.status == "code cells (index, error) raised: [(0, 'AssertionError')]", run.status
    assert (tmp_path / "ran.txt").read_text() == "yes"
    assert run.peak_mib > 10  # a kernel with torch not even imported still takes tens of MiB
    status = course_walltime.run_notebook(path, 120).status  # the default stops at the error
    assert status.startswith("FAILED: ") and "AssertionError" in status, status


def test_on_random_weights_only_a_paper_check_failing_its_assert_is_expected(tmp_path):
    """--imagenet runs on random stand-in weights, where the paper checks fail their asserts: those
    are noted, not failures; an untagged cell's assert, or a check that crashes, still fails the run."""
    check = nbformat.v4.new_code_cell("assert False, 'a paper check'", metadata={"tags": ["paper-check"]})
    crash = nbformat.v4.new_code_cell("1 / 0", metadata={"tags": ["paper-check"]})
    other = nbformat.v4.new_code_cell("assert False, 'not a check'")
    for cells, status in [([check], "ok"), ([check, other], "code cells (index, error) raised: [(1, 'AssertionError')]"),
                          ([crash], "code cells (index, error) raised: [(0, 'ZeroDivisionError')]")]:
        path = tmp_path / "nb.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
        run = course_walltime.run_notebook(path, 120, keep_going=True, checks_may_fail=True)
        assert run.status == status, (cells, run)
        assert run.note.startswith("slowest code cells: 0 (0 s)"), run.note
        assert run.note.endswith("; paper checks failing their assert (random weights): code cells [0]") == (
            cells[0] is check), run.note


def test_full_mode_has_no_total_budget_quick_mode_has_900_s(tmp_path, monkeypatch):
    """A full-mode run of several notebooks is cut only by each notebook's own limit: a total of 900 s
    (quick mode's) stopped 11 after 09 had used 250 s of it."""
    budgets = []

    def fake_time(paths, budget, full, cache=None, keep_going=False, env=None, checks_may_fail=False):
        budgets.append((full, budget))
        return [], 0.0, True

    monkeypatch.setattr(course_walltime, "time_notebooks", fake_time)
    monkeypatch.setattr(course_walltime, "first_run_cache", lambda folder, imagenet=False: folder)
    monkeypatch.setattr(course_walltime, "RESULTS", tmp_path)
    monkeypatch.setattr(course_walltime, "save", lambda *args, **kwargs: None)
    course_walltime.main(["--full", "--keep-going", "--only", "09", "11"])
    course_walltime.main(["--only", "00"])
    course_walltime.main(["--full", "--budget", "60"])
    assert budgets == [(True, float("inf")), (False, 900), (True, 60)]


def test_imagenet_runs_on_a_stand_in_in_its_own_torch_home_and_saves_apart(tmp_path, monkeypatch):
    """--imagenet: the notebooks see COURSEKIT_BACKBONE=imagenet and a TORCH_HOME holding random
    AlexNet and ResNet-18 weights under the real file names (never the user's), keep going, and save apart."""
    from torchvision.models import AlexNet_Weights, ResNet18_Weights
    seen, saved = [], []

    def fake_time(paths, budget, full, cache=None, keep_going=False, env=None, checks_may_fail=False):
        cached = Path(env["TORCH_HOME"]) / "hub" / "checkpoints"
        weights = [cached / w.IMAGENET1K_V1.url.rsplit("/", 1)[1] for w in (AlexNet_Weights, ResNet18_Weights)]
        seen.append((env["COURSEKIT_BACKBONE"], all(w.exists() for w in weights), keep_going, checks_may_fail))
        return [], 0.0, True

    monkeypatch.setattr(course_walltime, "time_notebooks", fake_time)
    monkeypatch.setattr(course_walltime, "first_run_cache", lambda folder, imagenet=False: folder)
    monkeypatch.setattr(course_walltime, "RESULTS", tmp_path)
    monkeypatch.setattr(course_walltime, "save", lambda name, *args, **kwargs: saved.append(name))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "users-own"))
    course_walltime.main(["--imagenet", "--only", "00"])
    course_walltime.main(["--imagenet", "--full", "--only", "00"])
    assert seen == [("imagenet", True, True, True)] * 2
    assert saved == ["course_walltime_imagenet", "course_walltime_imagenet_full"]
    assert not (tmp_path / "users-own").exists()


def test_the_note_names_the_slowest_cells_first(tmp_path):
    """Each row says where its notebook's time goes: the slowest code cells, slowest first."""
    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("import time; time.sleep(1.5)")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    run = course_walltime.run_notebook(path, 120)
    assert run.status == "ok" and run.note.startswith("slowest code cells: 1 ("), run
    assert run.note.endswith(", 0 (0 s)"), run.note
