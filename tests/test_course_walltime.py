"""The full-mode wall-time benchmark's bookkeeping: which rows an `--only` run keeps, and the
first-pass cache it runs notebooks in (the timing itself is a benchmark, not a test)."""
import dataclasses
import json

import nbformat

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


def test_keep_going_runs_past_a_failing_cell_and_names_it(tmp_path):
    """--keep-going: a cell that raises does not stop the notebook, and the status names it."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert False, 'a paper check'"),
                                         nbformat.v4.new_code_cell("open('ran.txt', 'w').write('yes')")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    _, status = course_walltime.run_notebook(path, 120, keep_going=True)
    assert status == "code cells (index, error) raised: [(0, 'AssertionError')]", status
    assert (tmp_path / "ran.txt").read_text() == "yes"
    _, status = course_walltime.run_notebook(path, 120)  # the default stops at the error
    assert status.startswith("FAILED: ") and "AssertionError" in status, status


def test_full_mode_has_no_total_budget_quick_mode_has_900_s(tmp_path, monkeypatch):
    """A full-mode run of several notebooks is cut only by each notebook's own limit: a total of 900 s
    (quick mode's) stopped 11 after 09 had used 250 s of it."""
    budgets = []

    def fake_time(paths, budget, full, cache=None, keep_going=False):
        budgets.append((full, budget))
        return [], 0.0, True

    monkeypatch.setattr(course_walltime, "time_notebooks", fake_time)
    monkeypatch.setattr(course_walltime, "first_run_cache", lambda folder: folder)
    monkeypatch.setattr(course_walltime, "RESULTS", tmp_path)
    monkeypatch.setattr(course_walltime, "save", lambda *args, **kwargs: None)
    course_walltime.main(["--full", "--keep-going", "--only", "09", "11"])
    course_walltime.main(["--only", "00"])
    course_walltime.main(["--full", "--budget", "60"])
    assert budgets == [(True, float("inf")), (False, 900), (True, 60)]
