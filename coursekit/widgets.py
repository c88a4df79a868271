"""'Try it' panels: a plain callback plus declared controls, shown with ipywidgets.

The callback is an ordinary function (tests call it directly across the declared ranges);
`panel` only builds the sliders and re-draws the callback's Figure when one moves.

    controls = [Slider("eps", 0, 16, 1, 4), Choice("method", ["fgsm", "pgd"])]
    panel(partial(show_attack, backbone, image), controls)

A coursekit callback declares its controls where it is defined, with `@panel_controls(...)`: the
list itself, or a function building it from the callback's own arguments (a unit slider's range
comes from the model). PANELS, the registry that decorator fills, is how tests find every panel.
"""
from __future__ import annotations

import base64
import inspect
import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Slider:
    """A panel's numeric control: its range and default, checked values, and its ipywidgets slider."""
    name: str
    min: float
    max: float
    step: float
    value: float
    description: str = ""

    def check(self, value) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"slider {self.name!r} takes a number, not {value!r}")
        if not self.min <= value <= self.max:
            raise ValueError(f"slider {self.name!r} is {value}, outside its range "
                             f"[{self.min}, {self.max}]; pick a value inside it")

    def values(self) -> list:
        """Low end, default and high end: what tests sweep."""
        return sorted({self.min, self.value, self.max})

    def widget(self):
        import ipywidgets as w
        whole = all(float(v).is_integer() for v in (self.min, self.max, self.step, self.value))
        cls = w.IntSlider if whole else w.FloatSlider
        cast = int if whole else float
        return cls(value=cast(self.value), min=cast(self.min), max=cast(self.max), step=cast(self.step),
                   description=self.description or self.name, continuous_update=False,
                   style={"description_width": "initial"})


@dataclass(frozen=True)
class Choice:
    """A panel's control with fixed options: checked values, and its ipywidgets dropdown."""
    name: str
    options: Sequence[Any]
    value: Any = None
    description: str = ""

    def check(self, value) -> None:
        if value not in list(self.options):
            raise ValueError(f"{self.name!r} is {value!r}; choose one of {list(self.options)}")

    def values(self) -> list:
        return list(self.options)

    def widget(self):
        import ipywidgets as w
        value = self.options[0] if self.value is None else self.value
        return w.Dropdown(options=list(self.options), value=value, description=self.description or self.name,
                          style={"description_width": "initial"})


def validate(controls: Sequence[Slider | Choice], **values) -> None:
    """Raise a clear error for any value outside its control's range or options."""
    by_name = {c.name: c for c in controls}
    for name, value in values.items():
        if name in by_name:
            by_name[name].check(value)


def sweep(controls: Sequence[Slider | Choice]):
    """Every control at each of its test values while the others stay at their defaults."""
    defaults = {c.name: (c.value if c.value is not None else c.values()[0]) for c in controls}
    for control in controls:
        for value in control.values():
            yield {**defaults, control.name: value}


# ---------------------------------------------------------------- the registry of Try-it panels

@dataclass(frozen=True)
class Registered:
    """A Try-it callback and its controls: a list, or a function building them from some of the
    callback's arguments, matched by parameter name (e.g. `model`, `backbone`, `results`)."""
    callback: Callable
    controls: Sequence[Slider | Choice] | Callable[..., list]

    def build(self, **arguments) -> list:
        """The controls for a callback called with `arguments` (those the builder does not name are ignored)."""
        if not callable(self.controls):
            return list(self.controls)
        wanted = inspect.signature(self.controls).parameters
        return list(self.controls(**{k: v for k, v in arguments.items() if k in wanted}))


PANELS: dict[str, Registered] = {}  # "coursekit.module.callback" -> Registered, filled on import


def panel_controls(controls):
    """Decorator: register the decorated Try-it callback in PANELS with its controls (a list of
    Slider/Choice, or a function building the list from the callback's arguments by name).
    Returns the callback unchanged."""
    def register(callback: Callable) -> Callable:
        PANELS[f"{callback.__module__}.{callback.__name__}"] = Registered(callback, controls)
        return callback
    return register


# ---------------------------------------------------------------- controls built from the network

def unit_controls(model, unit: str = "unit", pick: int = 0) -> list:
    """A "layer" choice over the model's conv layers (layer `pick` first shown) and a slider over
    their channels. One slider serves every layer, so it reaches the widest layer's last channel
    (every channel of every layer can be picked); for a unit a narrower layer lacks, the callback
    draws `unit_beyond`'s message instead of failing where the student cannot see it."""
    from . import hooks
    layers = hooks.conv_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer to pick {unit}s from")
    widest = max(hooks.channels(model, layer) for layer in layers)
    return [Choice("layer", layers, layers[pick]), Slider(unit, 0, widest - 1, 1, 0)]


def unit_beyond(model, layer: str, unit: int, name: str = "unit"):
    """None when `layer` has channel `unit`, else a Figure saying how many channels it has and what
    to do (the unit slider is sized for the widest layer)."""
    from . import hooks, plot
    count = hooks.channels(model, layer)
    if unit < count:
        return None
    return plot.message(f"{layer} has {count} channels ({name}s 0..{count - 1}), so it has no {name} {unit}:\n"
                        f"move the {name} slider to {count - 1} or below, or pick a wider layer")


def _png_output(figure) -> dict:
    """A Figure as one display_data output of an Output widget (a PNG, as the inline backend draws it).

    Panels set the Output widget's `outputs` instead of capturing display() inside `with out:`:
    capturing makes the kernel switch the widget's msg_id back and forth during the cell, which a
    headless executor must follow, and executions hanging with an idle kernel right after such an
    Output widget update are reported in jupyter/nbconvert#2029 and jupyter/nbclient#312."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": repr(figure)}}


def panel(callback: Callable, controls: Sequence[Slider | Choice], title: str = ""):
    """An ipywidgets panel: one widget per control, the callback's Figure re-drawn below them."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    widgets = {c.name: c.widget() for c in controls}
    out = w.Output()

    def redraw(**values):
        validate(controls, **values)
        figure = callback(**values)
        if isinstance(figure, plt.Figure):
            out.outputs = (_png_output(figure),)
            plt.close(figure)
        elif figure is not None:  # anything else IPython knows how to show
            with out:
                out.clear_output(wait=True)
                display(figure)

    def on_change(_change=None):
        redraw(**{name: widget.value for name, widget in widgets.items()})

    for widget in widgets.values():
        widget.observe(on_change, names="value")
    header = [w.HTML(f"<b>Try it: {title}</b>")] if title else []
    box = w.VBox(header + [w.HBox(list(widgets.values())), out])
    on_change()
    return box
