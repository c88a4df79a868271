"""Every "Try it" panel, found through its registry, fuzzed with hypothesis across its controls'
ranges (must draw) and just beyond them (must raise a ValueError or TypeError naming the control).

A panel is a callback registered with @widgets.panel_controls (widgets.PANELS, filled when every
coursekit module is imported); its controls are the registered list, or built by the registered
builder from the callback's own arguments (a unit slider from the model). Those arguments (model,
image, ...) are built by name in CONTEXT with tiny models; a panel that needs an argument CONTEXT
cannot build is skipped, naming it. A module function named *_panel that is not registered fails
test_every_panel_callback_is_registered, so no panel escapes the fuzzing by its name.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
import sys

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coursekit
from coursekit import data, widgets
from coursekit.widgets import Choice, Slider

from .tiny import image, tiny_backbone, tiny_model, toy_set

SKIP_MODULES = {"coursekit.__main__"}  # runs the command line when imported
NOT_PANELS = {"coursekit.plot.predictions_panel": "a figure of images and their top-k bars, no controls"}
KNOWN_BUGS: dict = {}  # panel -> (exception, reason): xfail until its owner fixes it


def coursekit_modules():
    """Every coursekit module, imported (which registers its panels)."""
    return [importlib.import_module(info.name) for info in pkgutil.walk_packages(coursekit.__path__, "coursekit.")
            if info.name not in SKIP_MODULES]


def panel_functions():
    """'module.name' of every function named *_panel defined in a coursekit module."""
    return sorted(f"{module.__name__}.{name}" for module in coursekit_modules() for name, f in vars(module).items()
                  if name.endswith("_panel") and inspect.isfunction(f) and f.__module__ == module.__name__)


# ---------------------------------------------------------------- what the leading arguments are

def _ab_results():
    # every split and configuration its own numbers, so a control that picks one can show it
    rows = [{"split": split, "config": config, "n": n, "seed": 0, "top1": 0.5 + 0.01 * n + 0.02 * i + 0.1 * j}
            for j, split in enumerate(("random", "dissimilar")) for i, config in enumerate(("AnB", "AnB+", "BnB", "BnB+"))
            for n in range(1, 8)]
    rows += [{"split": s, "config": c, "n": 0, "seed": 0, "top1": 0.6} for s in ("random", "dissimilar")
             for c in ("baseA", "baseB")]
    return pd.DataFrame(rows)


def _learning_results():
    return pd.DataFrame([{"method": m, "labels": n, "seed": 0, "top1": 0.3 + 0.001 * n + 0.05 * i}
                         for i, m in enumerate(("scratch", "fixed features", "fine-tune")) for n in (5, 20, 100, 500)])


def _relu5_maps():
    """01's ablation panel trains fc layers on relu5 maps (N, C, 7, 7): tiny ones, class k lighting channel k."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(45) % 3  # 15 a class: the images/class slider's low end (10) draws fewer
    maps = torch.rand(45, 8, 7, 7, generator=g)
    maps[torch.arange(45), labels] += 1.0
    part = data.ImageSet(maps, labels, ["a", "b", "c"])
    return {"train": part, "test": part}


ABLATION_RECIPE = {"per_class": 4, "pool_per_class": 8, "test_per_class": 8, "epochs": 2, "lr": 0.05,
                   "batch_size": 8, "weight_decay": 0.0, "seeds": [0], "panel_seeds": [0], "version": 1}


def _snapshots(model):
    return {epoch: copy.deepcopy(model.state_dict()) for epoch in (0, 1, 2, 4, 8)}


def _cka_table():
    return {layer: {epoch: 0.2 * i for i, epoch in enumerate((0, 1, 2, 4, 8))} for layer in ("conv1", "conv5")}


def _mined(model):
    patches = importlib.import_module("coursekit.patches")
    return patches.mine(model, toy_set(12, 10).floats(), ["conv1", "conv2", "conv3", "conv4", "conv5"], k=9)


CONTEXT = {  # parameter name -> builder(module, model)
    "model": lambda m, model: model,
    "backbone": lambda m, model: tiny_backbone(0.125),
    "image": lambda m, model: image(),
    "target": lambda m, model: image(1),  # inversion_panel's target image
    "label": lambda m, model: 3,
    "class_index": lambda m, model: 3,
    "classes": lambda m, model: list(data.CIFAR10_CLASSES),
    "results": lambda m, model: _ab_results(),
    "maps": lambda m, model: _relu5_maps(),
    "overfitting_panel.recipe": lambda m, model: dict(ABLATION_RECIPE),
    "learning_panel.results": lambda m, model: _learning_results(),
    "snapshots": lambda m, model: _snapshots(model),
    "table": lambda m, model: _cka_table(),
    "top": lambda m, model: _mined(model),
    "images": lambda m, model: toy_set(12, 10).floats(),
    "bank": lambda m, model: toy_set(20, 10),
    "queries": lambda m, model: toy_set(12, 10, seed=1),
}


def leading_arguments(callback):
    """The callback's arguments without defaults, built by name (or callback.name), and what is missing.
    Controls have no CONTEXT builder; they are what resolve() leaves out once the controls are known."""
    module = sys.modules[callback.__module__]
    model = tiny_model(width=0.125)  # unit sliders are built from this model's own widths
    args, missing = {}, []
    for name, parameter in inspect.signature(callback).parameters.items():
        if parameter.default is not inspect.Parameter.empty:
            continue
        builder = CONTEXT.get(f"{callback.__name__}.{name}", CONTEXT.get(name))
        if builder is not None:
            args[name] = builder(module, model)
        else:
            missing.append(name)
    return args, missing


coursekit_modules()
PANELS = sorted(widgets.PANELS.items())
IDS = [name.removeprefix("coursekit.") for name, _ in PANELS]


def resolve(registered: widgets.Registered):
    """The callback, its leading arguments and its controls (built from those arguments)."""
    callback = registered.callback
    args, missing = leading_arguments(callback)
    controls = registered.build(**args)
    names = {c.name for c in controls}
    missing = [name for name in missing if name not in names]
    if missing:
        pytest.skip(f"{callback.__qualname__} needs {missing}: add a builder to CONTEXT in {__name__}")
    return callback, {k: v for k, v in args.items() if k not in names}, controls


def grid(slider: Slider) -> list:
    """The values the widget itself can produce: min, min + step, ..., max."""
    count = int(round((slider.max - slider.min) / slider.step))
    values = [slider.min + i * slider.step for i in range(count + 1)]
    whole = all(float(v).is_integer() for v in (slider.min, slider.max, slider.step))
    return [int(round(v)) if whole else round(v, 10) for v in values]


def in_range(controls):
    return st.fixed_dictionaries({c.name: st.sampled_from(grid(c) if isinstance(c, Slider) else list(c.options))
                                  for c in controls})


def defaults(controls):
    return {c.name: (c.value if c.value is not None else c.values()[0]) for c in controls}


def beyond(controls):
    """The defaults with one control set just outside its range (or to an unknown option / a string)."""
    def wrong(control):
        if isinstance(control, Choice):
            return st.sampled_from(["no-such-option", None])
        low = st.floats(control.min - control.step, control.min, exclude_max=True, allow_nan=False)
        high = st.floats(control.max, control.max + control.step, exclude_min=True, allow_nan=False)
        return st.one_of(low, high, st.just(str(control.value)))
    return st.sampled_from(controls).flatmap(
        lambda c: wrong(c).map(lambda value: (c.name, {**defaults(controls), c.name: value})))


FUZZ = settings(max_examples=3, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _private_cache(isolated_cache):
    """Panels that train what the student picks cache their runs (01's ablations): never in the course cache."""
    return isolated_cache


def test_panels_were_found():
    assert PANELS, "no callback registered with @widgets.panel_controls in any coursekit module"


def test_every_panel_callback_is_registered():
    unregistered = [name for name in panel_functions() if name not in widgets.PANELS and name not in NOT_PANELS]
    assert not unregistered, (f"{unregistered} look like Try-it callbacks but are not registered: declare their "
                              f"controls with @widgets.panel_controls(...) (or list them in NOT_PANELS, saying why)")


@pytest.mark.parametrize("panel_id, registered", PANELS, ids=IDS)
def test_panel_draws_across_its_ranges(panel_id, registered, faults):
    callback, args, controls = resolve(registered)
    panel_id = panel_id.removeprefix("coursekit.")
    if panel_id in KNOWN_BUGS:
        error, reason = KNOWN_BUGS[panel_id]
        if _fails_with(error, callback, args, controls):
            pytest.xfail(reason)

    @FUZZ
    @given(values=in_range(controls))
    def draws(values):
        figure = callback(**args, **values)
        assert figure is None or hasattr(figure, "savefig"), f"{callback.__name__} returned {type(figure)}"
        plt.close("all")
        faults.add("inputs tried")

    with torch.random.fork_rng():
        draws()


def _fails_with(error, callback, args, controls) -> bool:
    """Whether the known bug still shows at the top of every slider (checked once, directly)."""
    top = {**defaults(controls), **{c.name: c.max for c in controls if isinstance(c, Slider)}}
    try:
        callback(**args, **top)
    except error:
        return True
    finally:
        plt.close("all")
    return False


@pytest.mark.parametrize("panel_id, registered", PANELS, ids=IDS)
def test_panel_rejects_values_beyond_its_ranges(panel_id, registered, faults):
    callback, args, controls = resolve(registered)

    @FUZZ
    @given(case=beyond(controls))
    def rejects(case):
        culprit, values = case
        with pytest.raises((ValueError, TypeError)) as err:
            callback(**args, **values)
        plt.close("all")
        assert culprit in str(err.value), f"the error does not name {culprit!r}: {err.value}"
        faults.add("inputs tried")

    rejects()


# ---------------------------------------------------------------- every control changes what is shown

def _drawn_numbers(figure):
    """What the figure shows as numbers, in data coordinates: every image's pixels, line's points,
    collection's offsets and values and patch's outline (not the text: a title that prints the
    control's own value would change whatever the control did). None for a panel that returns no
    matplotlib figure; the texts when the figure draws nothing but text (a message)."""
    if figure is None or not hasattr(figure, "axes"):
        return None
    arrays = []
    for ax in figure.axes:
        arrays += [im.get_array() for im in ax.images] + [line.get_xydata() for line in ax.lines]
        arrays += [part for c in ax.collections for part in (c.get_offsets(), c.get_array()) if part is not None]
        arrays += [p.get_patch_transform().transform(p.get_path().vertices) for p in ax.patches]
        arrays += [p.get_facecolor() for p in ax.patches]          # a diagram says it in colour
    plt.close(figure)
    if not arrays:
        return tuple(t.get_text() for t in figure.findobj(matplotlib.text.Text))
    return tuple(np.round(np.ma.filled(np.asarray(a, dtype=float), np.nan), 6).tobytes() for a in arrays)


@pytest.mark.parametrize("panel_id, registered", PANELS, ids=IDS)
def test_moving_each_control_changes_the_figure(panel_id, registered):
    """A control whose whole range draws the same numbers is a slider that does nothing (05's
    lambda slider did: its L2 prior was a mean over 3,072 pixels). Each control is moved to both
    ends of its range, the others at their defaults; one end must draw other numbers."""
    callback, args, controls = resolve(registered)
    base = defaults(controls)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        shown = _drawn_numbers(callback(**args, **base))
        if shown is None:
            pytest.skip(f"{callback.__name__} shows no matplotlib figure")
        inert = []
        for control in controls:
            ends = grid(control) if isinstance(control, Slider) else control.values()
            moved = []
            for value in {ends[0], ends[-1]} - {base[control.name]}:
                torch.manual_seed(0)
                moved.append(_drawn_numbers(callback(**args, **{**base, control.name: value})))
            if moved and all(m == shown for m in moved):
                inert.append(control.name)
    assert not inert, f"{panel_id}: moving {inert} across the whole range draws the same numbers"
