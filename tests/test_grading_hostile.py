"""Hostile and ordinary submissions: 0 undeserved points, and no correct work graded below full marks.

One synthetic homework (three exercises whose hidden tests compare with the coursekit reference
coursekit.attacks.project, with numpy functions, and with plain `abs(...) < tol`), one course
setup, one batch graded in exercise mode: every hostile submission answers wrongly and games the
tests one way (calling the reference, patching comparisons, rigged objects, swallowing errors,
rewriting the test cells on the fly, changing the given inputs, ...); every ordinary one answers
correctly but saves the notebook unusually. The reference-call of every real notebook is the one
slow part (marked slow).
Cost: the batch is ~30 kernels (about 2-3 minutes on a 2-worker Dask LocalCluster on a shared 2-core machine).
"""
from __future__ import annotations

import copy
import json
import time
import zipfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

from coursekit import grading  # noqa: E402
from nbgrader_cells import answer_cell, locked_test_cell  # noqa: E402
from coursekit.grading import submissions  # noqa: E402
from coursekit.grading.normalize import SubmissionError, read_submission  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME = "01_guarded"


PROJECT = ("def my_project(adversarial, images, eps):\n    ### BEGIN SOLUTION\n"
           "    return torch.min(torch.max(adversarial, images - eps), images + eps).clamp(0, 1)\n    ### END SOLUTION")
SQUARE = "def square(v):\n    ### BEGIN SOLUTION\n    return v * v\n    ### END SOLUTION"
NORM = "def norm(v):\n    ### BEGIN SOLUTION\n    return sum(t * t for t in v) ** 0.5\n    ### END SOLUTION"
GIVEN = ("xb = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))\n"
         "far = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 3 - 1")


def instructor_notebook():
    cells = [
        nbformat.v4.new_markdown_cell("# A guarded homework"),
        nbformat.v4.new_code_cell("import numpy as np\nimport torch\n\nfrom coursekit import attacks"),
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_code_cell(GIVEN),
        nbformat.v4.new_markdown_cell("### Exercise 1: the PGD projection (2 points)"),
        answer_cell("g-project", PROJECT),
        locked_test_cell("g-project-tests", "p = my_project(far, xb, 0.1)\nassert p.shape == xb.shape\n"
               "### BEGIN HIDDEN TESTS\ntorch.testing.assert_close(my_project(far, xb, 0.1), attacks.project(far, xb, 0.1))\n"
               "assert torch.allclose(my_project(far, xb, 0.05), attacks.project(far, xb, 0.05))\n"
               "### END HIDDEN TESTS\nprint('projection: passed')", 2),
        nbformat.v4.new_markdown_cell("### Exercise 2: squares (1 point)"),
        answer_cell("g-square", SQUARE),
        locked_test_cell("g-square-tests", "assert square(np.zeros(2)).shape == (2,)\n### BEGIN HIDDEN TESTS\n"
               "np.testing.assert_allclose(square(np.arange(3.0)), [0.0, 1.0, 4.0])\n"
               "assert np.allclose(square(np.array([-2.0])), [4.0])\n### END HIDDEN TESTS\nprint('squares: passed')", 1),
        nbformat.v4.new_markdown_cell("### Exercise 3: the Euclidean norm (1 point)"),
        answer_cell("g-norm", NORM),
        locked_test_cell("g-norm-tests", "assert norm([0.0]) == 0.0\n### BEGIN HIDDEN TESTS\n"
               "assert abs(norm([3.0, 4.0]) - 5.0) < 1e-9\n### END HIDDEN TESTS\nprint('norm: passed')", 1),
        nbformat.v4.new_markdown_cell("## Takeaways"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# Wrong answers that pass every visible test: each hostile submission must turn them into points.
WRONG = {"g-project": "def my_project(adversarial, images, eps):\n    return adversarial.clamp(0, 1)",
         "g-square": "def square(v):\n    return v * 0",
         "g-norm": "def norm(v):\n    return 0.0 * len(v)"}

HOSTILE = {
    "reference_called": {"g-project": "def my_project(adversarial, images, eps):\n"
                                      "    return attacks.project(adversarial, images, eps)"},
    "reference_aliased": {"g-project": "from coursekit.attacks import project as _p\n\n"
                                       "def my_project(a, i, e):\n    return _p(a, i, e)"},
    "reference_precomputed": {"g-project": "_answers = {e: attacks.project(far, xb, e) for e in (0.1, 0.05)}\n\n"
                                           "def my_project(a, i, e):\n    return _answers[e]"},
    "reference_replaced": {"g-project": "attacks.project = lambda a, i, e: a.clamp(0, 1)\n" + WRONG["g-project"]},
    "comparisons_patched": {"g-project": "import builtins\ntorch.testing.assert_close = lambda *a, **k: None\n"
                                         "torch.allclose = lambda *a, **k: True\nnp.testing.assert_allclose = lambda *a, **k: None\n"
                                         "np.allclose = lambda *a, **k: True\nbuiltins.abs = lambda x: 0\n"
                                         "torch.Tensor.__eq__ = lambda *a: True\n" + WRONG["g-project"]},
    "comparisons_patched_in_call": {
        "g-project": "def my_project(adversarial, images, eps):\n    torch.testing.assert_close = lambda *a, **k: None\n"
                     "    torch.allclose = lambda *a, **k: True\n    return adversarial.clamp(0, 1)",
        "g-square": "def square(v):\n    np.testing.assert_allclose = lambda *a, **k: None\n"
                    "    np.allclose = lambda *a, **k: True\n    return v * 0",
        "g-norm": "def norm(v):\n    import builtins\n    builtins.abs = lambda x: 0\n    return 0.0 * len(v)"},
    "builtins_and_modules_shadowed": {
        "g-square": "import types\nnp = types.SimpleNamespace(testing=types.SimpleNamespace(assert_allclose=lambda *a, **k: None),\n"
                    "    allclose=lambda *a, **k: True, zeros=__import__('numpy').zeros, arange=__import__('numpy').arange,\n"
                    "    array=__import__('numpy').array)\n" + WRONG["g-square"],
        "g-norm": "abs = lambda x: 0\n" + WRONG["g-norm"]},
    "rigged_objects": {
        "g-project": "class Rigged(torch.Tensor):\n    @classmethod\n"
                     "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                     "        if func in (torch.allclose, torch.equal):\n            return True\n"
                     "        return super().__torch_function__(func, types, args, kwargs or {})\n\n"
                     "def my_project(adversarial, images, eps):\n    return adversarial.clamp(0, 1).as_subclass(Rigged)",
        "g-square": "class Yes:\n    shape = (2,)\n    def __eq__(self, other): return True\n"
                    "    def __array__(self, *a, **k): return __import__('numpy').array([0.0, 1.0, 4.0])\n\n"
                    "def square(v):\n    return Yes()",
        "g-norm": "class Yes(float):\n    def __eq__(self, other): return True\n    def __sub__(self, other): return self\n"
                  "    def __abs__(self): return 0.0\n    def __lt__(self, other): return True\n\n"
                  "def norm(v):\n    return Yes(0.0)"},
    "errors_swallowed": {"g-project": "_kernel = get_ipython().kernel\n_execute = _kernel.do_execute\n\n"
                                      "async def _always_ok(*args, **kwargs):\n"
                                      "    reply = await _execute(*args, **kwargs)\n"
                                      "    return {**reply, 'status': 'ok'}\n\n"
                                      "_kernel.do_execute = _always_ok\n"
                                      "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                                      + WRONG["g-project"]},
    "guard_switched_off": {"g-project": "for _event in ('pre_run_cell', 'post_run_cell'):\n"
                                        "    get_ipython().events.callbacks[_event].clear()\n"
                                        "torch.testing.assert_close = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True\n"
                                        "np.testing.assert_allclose = lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\n"
                                        "abs = lambda x: 0\n" + WRONG["g-project"]},
    "test_cells_rewritten": {"g-project": "import ast\n"
                             "get_ipython().input_transformers_post.append(lambda lines: [l for l in lines if not l.lstrip()"
                             ".startswith(('assert', 'torch.testing', 'np.testing'))])\n"
                             "class _NoAsserts(ast.NodeTransformer):\n    def visit_Assert(self, node):\n        return ast.Pass()\n"
                             "get_ipython().ast_transformers.append(_NoAsserts())\n" + WRONG["g-project"]},
    "given_inputs_changed": {"g-project": "far.copy_(xb)\n" + WRONG["g-project"],
                             "g-square": "far = xb.clone()\n" + WRONG["g-square"]},
    "given_inputs_changed_in_call": {"g-project": "def my_project(adversarial, images, eps):\n"
                                                  "    adversarial.copy_(images)\n    return images.clone()"},
    "given_cell_edited": {"given": "xb = torch.zeros(4, 3, 8, 8)\nfar = torch.zeros(4, 3, 8, 8)"},
    "background_thread": {"g-project": "import threading, time\n"
                          "def _patch():\n    while True:\n        torch.testing.assert_close = lambda *a, **k: None\n"
                          "        torch.allclose = lambda *a, **k: True\n        time.sleep(0.001)\n"
                          "threading.Thread(target=_patch, daemon=True).start()\n" + WRONG["g-project"]},
}


def _answer(nb, gid, source):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if grading.grade_id(cell) == gid or (gid == "given" and cell.source == GIVEN):
            cell.source = source
    return nb


def _submission(solved, answers):
    nb = solved
    for gid, source in {**WRONG, **answers}.items():
        nb = _answer(nb, gid, source)
    return nb


def _ordinary_edits(solved, release):
    """Correct answers saved the ways students save notebooks."""
    as_44 = json.loads(nbformat.writes(solved))
    as_44["nbformat_minor"] = 4                                      # 4.4 that kept its cell ids
    duplicated = copy.deepcopy(solved)
    at = next(i for i, c in enumerate(duplicated.cells) if grading.grade_id(c) == "g-square")
    duplicated.cells.insert(at, copy.deepcopy(duplicated.cells[at]))             # solution cell duplicated
    duplicated.cells[at].source = "def square(v):\n    return v  # first try"
    test = next(c for c in duplicated.cells if grading.grade_id(c) == "g-norm-tests")
    duplicated.cells.append(copy.deepcopy(test))                                  # test cell copied
    pasted = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in release.cells
                                             if c.cell_type == "code"])          # a fresh file, no metadata
    answers = {grading.grade_id(c): c.source for c in solved.cells if grading.grade_id(c)}
    for cell, released in zip(pasted.cells, [c for c in release.cells if c.cell_type == "code"]):
        if grading.grade_id(released) in ("g-project", "g-square", "g-norm"):
            cell.source = answers[grading.grade_id(released)]
    return {"ordinary_nbformat_4_4_with_ids": json.dumps(as_44), "ordinary_duplicated_cells": nbformat.writes(duplicated),
            "ordinary_pasted_into_a_fresh_notebook": nbformat.writes(pasted)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "notebooks").mkdir()
    solved = instructor_notebook()
    nbformat.write(solved, str(root / "notebooks" / f"{NAME}.ipynb"))
    grading.make_release(root / "notebooks", root / "release")
    release = nbformat.read(str(root / "release" / f"{NAME}.ipynb"), as_version=4)
    subs = root / "submissions"
    for student, answers in {"correct": {}, **HOSTILE}.items():
        (subs / student).mkdir(parents=True)
        nb = solved if student == "correct" else _submission(solved, answers)
        nbformat.write(nb, str(subs / student / f"{NAME}.ipynb"))
    (subs / "untouched").mkdir()
    nbformat.write(release, str(subs / "untouched" / f"{NAME}.ipynb"))
    for student, text in _ordinary_edits(solved, release).items():
        (subs / student).mkdir()
        (subs / student / f"{NAME}.ipynb").write_text(text)
    started = time.monotonic()
    grades = grading.grade(subs, root / "notebooks", root / "out", cell_timeout=30, notebook_timeout=180,
                           parallel=2, log=lambda *a: None)
    print(f"graded {len(grades)} submissions in {time.monotonic() - started:.0f} s")
    return {g.student: g for g in grades}


@pytest.mark.parametrize("student", sorted(HOSTILE))
def test_hostile_submission_scores_zero(graded, student):
    grade = graded[student]
    assert grade.points == 0, [(c.exercise, c.points, c.message) for c in grade.cells]


def test_correct_and_stub_are_proved_both_ways(graded):
    assert graded["correct"].points == graded["correct"].max_points == 4
    assert graded["untouched"].points == 0


@pytest.mark.parametrize("student", ["ordinary_nbformat_4_4_with_ids", "ordinary_duplicated_cells",
                                     "ordinary_pasted_into_a_fresh_notebook"])
def test_ordinary_edits_keep_full_marks(graded, student):
    grade = graded[student]
    assert grade.points == grade.max_points == 4, ([(c.exercise, c.message) for c in grade.cells], grade.notes)


def test_feedback_names_the_reference_and_the_exercise(graded):
    messages = " ".join(c.message for c in graded["reference_called"].cells)
    assert "calling the reference coursekit.attacks.project is not allowed in Exercise 1" in messages
    assert "changed `far`" in " ".join(c.message for c in graded["given_inputs_changed_in_call"].cells)
    assert "returned a" in " ".join(c.message for c in graded["rigged_objects"].cells)
    assert "without the grader's guard" in " ".join(c.message for c in graded["guard_switched_off"].cells)
    assert any("given cell" in n for n in graded["given_cell_edited"].notes)


# ---------------------------------------------------------------- without a kernel

def test_a_damaged_notebook_gets_a_reason_a_student_can_act_on():
    release = instructor_notebook()
    for text in ["", "{oops", '{"cells": 3}']:
        with pytest.raises(SubmissionError, match="notebook"):
            read_submission(text, release)
    nb = json.loads(nbformat.writes(release))
    nb["cells"][1]["source"] = 42
    with pytest.raises(SubmissionError, match="open it in Jupyter, save it"):
        read_submission(json.dumps(nb), release)


def test_zip_dates_decide_which_file_is_newest(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    with zipfile.ZipFile(subs / "alice_1_2_hw.zip", "w") as zf:    # the final version stored first
        zf.writestr(zipfile.ZipInfo(f"final/{NAME}.ipynb", (2026, 11, 30, 12, 0, 0)), "{}")
        zf.writestr(zipfile.ZipInfo(f"draft/{NAME}.ipynb", (2026, 11, 1, 12, 0, 0)), "{}")
    found = grading.find_submissions(subs, tmp_path / "in")
    chosen, notes = submissions.pick_files(found, {NAME: set()})
    assert chosen[("alice_1", NAME)].parent.name == "final", notes


def test_a_folder_is_the_student_id_as_written_and_collisions_are_errors(tmp_path):
    for name in ["group_7_alice", "group_7_bob", "Jane Smith_4242_assignsubmission_file_"]:
        (tmp_path / "subs" / name).mkdir(parents=True)
        (tmp_path / "subs" / name / f"{NAME}.ipynb").write_text("{}")
    students = {s.student for s in grading.find_submissions(tmp_path / "subs", tmp_path / "in")}
    assert students == {"group_7_alice", "group_7_bob", "Jane Smith_4242"}
    (tmp_path / "subs" / "group 7 alice").mkdir()
    (tmp_path / "subs" / "group 7 alice" / f"{NAME}.ipynb").write_text("{}")
    with pytest.raises(grading.HomeworkError, match="'group 7 alice' and 'group_7_alice'|'group_7_alice' and 'group 7 alice'"):
        grading.find_submissions(tmp_path / "subs", tmp_path / "in2")


# ---------------------------------------------------------------- every real notebook (slow)

CALL_THE_REFERENCE = {
    "01-lrn": "def local_response_norm(a, n=5, k=2.0, alpha=1e-4, beta=0.75):\n"
              "    return models.LocalResponseNorm(n, alpha, beta, k)(a)",
    "01-topk": "def topk_accuracy(logits, labels, k=5):\n    from coursekit import train\n"
               "    return train.topk_correct(logits, labels, (k,))[0] / len(labels)",
    "02-recorder": "def record(model, x, names):\n    return hooks.activations(model, x, names)",
    "03-top9": "def top_patches(act, images, field, unit, k=9):\n"
               "    return patches.mine(tiny, images, ['conv2'], k=k).patches(images, 'conv2', unit)",
    "03-cka": "def cka(x, y):\n    from coursekit import evolution\n    return evolution.linear_cka(x, y)",
    "04-deconv": "def deconv_step(signal, switches, size, weight, padding=1):\n"
                 "    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[-1], padding=padding, bias=False)\n"
                 "    conv.weight.data.copy_(weight)\n"
                 "    block = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(3, 2))\n"
                 "    x = torch.rand(signal.shape[0], weight.shape[1], *size, requires_grad=True)\n"
                 "    with hooks.relu_rule(block, 'deconvnet'):\n"
                 "        return torch.autograd.grad((block(x) * signal).sum(), x)[0]",
    "04-occlusion": "def occlusion_map(model, x, label, size, stride, fill=0.5):\n"
                    "    return attribution.occlusion(model, x, label, size, stride, fill=fill).prob",
    "05-saliency": "def saliency_map(model, x, labels):\n    return attribution.saliency(model, x, labels)",
    "06-blur": "def blur(x, sigma):\n    return T.gaussian_blur(x, sigma)",
    "06-yosinski": "def yosinski_step(model, x, c, step, lr, decay=0.0, blur_sigma=0.0, blur_every=1, norm_pct=0,\n"
                   "                  contribution_pct=0, center=0.5):\n"
                   "    x = x.detach().clone().requires_grad_(True)\n"
                   "    (g,) = torch.autograd.grad(model(x)[:, c].sum(), x)\n"
                   "    x = (x + lr * g).detach()\n"
                   "    for reg in visualize.yosinski_regularizers(decay, blur_sigma, blur_every, norm_pct, contribution_pct, center):\n"
                   "        reg(x, g, step)\n"
                   "    return x",
    "07-tv": "def tv_beta(x, beta):\n    return O.total_variation(x, beta)",
    "08-fgsm": "def my_fgsm(model, images, labels, eps):\n    return attacks.fgsm(model, images, labels, eps=eps)",
    "08-pgd": "def my_pgd(model, images, labels, eps, steps=10, step_size=None, generator=None):\n"
              "    return attacks.pgd(model, images, labels, eps=eps, steps=steps, step_size=step_size, generator=generator)",
    "09-probe": "def probe_draw(train, train_labels, test, test_labels, shots, seed, alpha=10.0):\n"
                "    few = data.balanced_indices(train_labels, 4, shots, seed)\n"
                "    return {s: float(pipeline.linear_classifier(x[few].numpy(), train_labels[few].numpy(), alphas=[alpha])"
                ".score(test[s].numpy(), test_labels.numpy())) for s, x in train.items()}",
    "10-copy": "def copy_and_freeze(source, target, n, layers):\n    transfer.copy_layers(source, target, n)\n"
               "    transfer.set_trainable(target, layers[:n], False)",
    "11-groups": "from coursekit import hooks\n\ndef two_speed_groups(model, transferred, lr, factor):\n"
                 "    from coursekit import transfer\n"
                 "    return transfer.param_groups(model, transferred, lr=lr, transferred_lr=lr * factor)",
}


# Answers that call no reference, only the public helpers of its module that do the exercise's work
# (review 10, H3), and one that ignores its arguments (M5): each must lose exactly its exercise.
HELPER_CALLS = {
    "01-lrn": "def local_response_norm(a, n=5, k=2.0, alpha=1e-4, beta=0.75):\n"      # AlexNet's k, alpha, beta hard-coded
              "    out = torch.empty_like(a)\n"
              "    for i in range(a.shape[1]):\n"
              "        lo, hi = max(0, i - n // 2), min(a.shape[1] - 1, i + n // 2)\n"
              "        out[:, i] = a[:, i] / (2 + 1e-4 * (a[:, lo:hi + 1] ** 2).sum(1)) ** 0.75\n"
              "    return out",
    "03-top9": "def top_patches(act, images, field, unit, k=9):\n"
               "    values, positions = patches.strongest_per_channel(act)\n"
               "    best = values[:, unit].topk(k).indices\n"
               "    top = patches.TopActivations({'l': values[best, unit][None]}, {'l': best[None]},\n"
               "                                 {'l': positions[best, unit][None]}, {'l': field})\n"
               "    return top.patches(images, 'l', 0)",
    "04-occlusion": "def occlusion_map(model, x, label, size, stride, fill=0.5):\n"
                    "    tops = attribution.window_starts(x.shape[-2], size, stride)\n"
                    "    lefts = attribution.window_starts(x.shape[-1], size, stride)\n"
                    "    batch = attribution.occluded_batch(x, [(t, l) for t in tops for l in lefts], size, fill)\n"
                    "    with torch.no_grad():\n"
                    "        return model(batch).softmax(1)[:, label].view(len(tops), len(lefts))",
    "02-recorder": "def record(model, x, names):\n"
                   "    with torch.no_grad(), hooks.capture(model, names) as acts:\n"
                   "        model(x)\n"
                   "    return acts",
    "05-saliency": "def saliency_map(model, x, labels):\n"
                   "    return attribution.gradient(model, x, labels).abs().amax(1)",
    "08-fgsm": "def my_fgsm(model, images, labels, eps):\n"
               "    return (images + eps * attacks.attack_gradient(model, images, labels, False).sign()).clamp(0, 1)",
    "09-knn": "def cosine_neighbours(queries, bank, k):\n"
              "    return features.distances(queries, bank, 'cosine').topk(k, dim=1, largest=False).indices",
}
HELPER_MESSAGES = {
    "01-lrn": "use the k, alpha and beta you are given",
    "03-top9": "calling coursekit.patches.strongest_per_channel is not allowed in Exercise 1 (03-top9-tests): it does "
               "part of the reference coursekit.patches.mine",
    "04-occlusion": "calling coursekit.attribution.window_starts is not allowed in Exercise 2 (04-occlusion-tests): it "
                    "does part of the reference coursekit.attribution.occlusion",
    # hooks.capture is reached through hooks.run's private helpers, which are blocked with it
    "02-recorder": "is not allowed in Exercise 2 (02-recorder-tests): it does part of the reference coursekit.hooks.activations",
    "05-saliency": "calling coursekit.attribution.gradient is not allowed in Exercise 1 (05-saliency-tests)",
    "08-fgsm": "calling coursekit.attacks.attack_gradient is not allowed in Exercise 1 (08-fgsm-tests)",
    "09-knn": "calling coursekit.features.distances is not allowed in Exercise 2 (09-knn-tests)",
}


def test_public_helpers_of_a_reference_are_blocked_but_not_what_the_solution_runs():
    """No kernel: what the guard will block for 02, 03 and 04. The helpers that do an exercise's
    work are blocked with the reference (04: window_starts and occluded_batch, 03:
    strongest_per_channel and the TopActivations constructor, 02: hooks.run behind
    hooks.activations); what the instructor's solution runs is not (02 calls hooks.get_layer,
    which uses hooks._split_call, a private helper of hooks.run; 06 calls transforms.gaussian_kernel,
    a public helper of the blur reference)."""
    from coursekit.grading.guard import blocked_names, build_spec

    def blocked(name):
        spec = build_spec(nbformat.read(ROOT / "notebooks" / name, as_version=4))
        return blocked_names(spec["references"], spec["allowed"])

    occlusion = blocked("04_what_excites_a_neuron.ipynb")
    for helper in ("window_starts", "occluded_batch"):
        assert occlusion[f"coursekit.attribution.{helper}"].startswith(
            f"calling coursekit.attribution.{helper} is not allowed in Exercise 2 (04-occlusion-tests): it does part "
            "of the reference coursekit.attribution.occlusion, which the exercise asks you to write")
    top9 = blocked("03_filters_activations.ipynb")
    assert {"coursekit.patches.strongest_per_channel", "coursekit.patches.TopActivations"} <= set(top9)
    assert "coursekit.receptive.crop" not in top9                     # the solution crops with it
    recorder = blocked("02_learned_features.ipynb")
    assert "coursekit.hooks.run" in recorder and "coursekit.hooks._each_call" in recorder
    assert "coursekit.hooks.get_layer" not in recorder and "coursekit.hooks._split_call" not in recorder
    assert "coursekit.transforms.gaussian_kernel" not in blocked("06_better_visualizations_deepdream.ipynb")
    for message in [*occlusion.values(), *top9.values(), *recorder.values()]:
        assert len(message) < 260, message       # feedback keeps 300 characters, with the error's name


def _grade_answers(answers: dict, tmp_path) -> list:
    """One submission per entry of `answers` ({exercise id: answer body}): its notebook with that
    exercise answered by the body and the rest solved, graded as `coursekit grade` grades a class."""
    sources = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[01][0-9]_*.ipynb"))}
    subs = tmp_path / "subs"
    for gid, body in answers.items():
        nb = _answer(nbformat.read(str(sources[gid[:2]]), as_version=4), gid, body)
        (subs / gid).mkdir(parents=True)
        nbformat.write(nb, str(subs / gid / sources[gid[:2]].name))
    return grading.grade(subs, ROOT / "notebooks", tmp_path / "out", cell_timeout=300, notebook_timeout=900,
                         parallel=2, log=lambda *a: None)


@pytest.mark.slow
def test_calling_the_helpers_or_ignoring_the_arguments_scores_zero(tmp_path, request):
    """HELPER_CALLS graded in their real notebooks (the rest solved): each loses exactly its
    exercise, with feedback naming the blocked helper and the reference it belongs to. Two kernels
    per notebook (grade() proves the instructor's solution first), each with the notebook's setup
    cell: run it on purpose (-m slow)."""
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("grades seven notebooks (minutes): run with -m slow")
    grades = _grade_answers(HELPER_CALLS, tmp_path)
    found = {g.student: g for g in grades if g.file}
    assert set(found) == set(HELPER_CALLS), [(g.student, g.notes) for g in grades]
    for gid, grade in found.items():
        lost = [c for c in grade.cells if c.points is not None and c.points < c.max_points]
        assert [c.exercise for c in lost] == [f"{gid}-tests"], (gid, [(c.exercise, c.message) for c in lost])
        assert lost[0].points == 0 and HELPER_MESSAGES[gid] in lost[0].message, (gid, lost[0].message)


@pytest.mark.slow
def test_calling_the_reference_scores_zero_in_every_notebook(tmp_path, request):
    """Every exercise the issue names: the solution replaced by a call of the coursekit reference
    (the rest of the notebook solved) loses exactly that exercise's points. About 25 kernels,
    each notebook's setup cell included: run it on purpose (-m slow)."""
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("grades every notebook (minutes): run with -m slow")
    grades = _grade_answers(CALL_THE_REFERENCE, tmp_path)
    lost = {}
    for g in grades:
        if g.file:
            lost[g.student] = [c.exercise for c in g.cells  # written answers wait for the instructor (None)
                               if c.points is not None and c.points < c.max_points]
    expected = {gid: [f"{gid}-tests"] for gid in CALL_THE_REFERENCE}
    expected["07-tv"].append("07-loss-tests")     # inversion_loss adds the student's own tv_beta
    expected["06-blur"].append("06-yosinski-tests")   # yosinski_step blurs with the student's own blur
    assert lost == expected, lost


def test_in_place_edits_of_coursekit_constants_are_put_back():
    """`data.PCA_EIGVAL.zero_()` in a solution cell would change what 01's hidden test computes its
    expected value from; the guard puts every coursekit UPPER_CASE tensor, array, list, dict and set
    back after each cell and each student call, in place, while rebinding is undone as before."""
    import sys
    import types

    import numpy as np
    import torch

    from coursekit.grading.guard import _Surface
    module = types.ModuleType("coursekit._hostile_constants")
    module.EIGVAL, module.TABLE = torch.tensor([0.2, 0.02, 0.004]), np.arange(4.0)
    module.SETTINGS, module.NAMES, module.KINDS = {1: {"decay": 0.0}}, ["a", "b"], {"x"}
    module._memo = {}                                     # private state is not a constant: left alone
    alias = module.EIGVAL                                 # other names for the same object see it back too
    sys.modules[module.__name__] = module
    try:
        surface = _Surface([module])
        module.EIGVAL.zero_()
        module.TABLE *= 0
        module.SETTINGS[1]["decay"] = 0.5
        module.NAMES.append("c")
        module.KINDS.add("y")
        module._memo["k"] = 1
        surface.restore()
        assert torch.equal(alias, torch.tensor([0.2, 0.02, 0.004])) and module.EIGVAL is alias
        np.testing.assert_array_equal(module.TABLE, np.arange(4.0))
        assert module.SETTINGS == {1: {"decay": 0.0}} and module.NAMES == ["a", "b"] and module.KINDS == {"x"}
        assert module._memo == {"k": 1}
    finally:
        del sys.modules[module.__name__]


def test_library_equivalents_of_a_reference_are_blocked_with_it():
    """01's LRN exercise tests against coursekit.models.LocalResponseNorm: torch's own LRN (alpha scaled
    by n) computes the same, so it is blocked with it. (A 01 submission answering with
    F.local_response_norm scored 2/2 before, 0/2 with this.)"""
    from coursekit.grading.guard import LIBRARY_EQUIVALENTS, build_spec
    spec = build_spec(nbformat.read(ROOT / "notebooks" / "01_alexnet.ipynb", as_version=4))
    for name in LIBRARY_EQUIVALENTS["coursekit.models.LocalResponseNorm"]:
        assert spec["references"].get(name) == spec["references"]["coursekit.models.LocalResponseNorm"]
    assert "torch.nn.LocalResponseNorm" not in build_spec(
        nbformat.read(ROOT / "notebooks" / "03_filters_activations.ipynb", as_version=4))["references"]
