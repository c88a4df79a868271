"""The grading guard: what keeps a submission from scoring points it did not earn, inside the kernel.

The grader puts one cell in front of every graded notebook (spec_cell()); it runs before any
student code and calls install(). From then on, in that kernel:

- The references the student is asked to write (the coursekit callables the hidden tests call and
  the instructor's solution does not) refuse to run while student code is on the call stack:
  "calling the reference coursekit.attacks.fgsm is not allowed in Exercise 1". So do the helpers
  of its module that it calls, private or public (04: attribution.window_starts and occluded_batch,
  which leave four lines of occlusion to write), except what the instructor's solution runs
  (blocked_names). Student code is a function defined in a solution cell, or any cell whose text
  is not the instructor's.
- The expected values are computed live by those references, but from a state student code cannot
  have changed: before each test cell, and again after every call of a student function, the
  comparison surface is put back (torch, numpy, math, operator, builtins, torch.Tensor and the
  torch.nn classes, coursekit's references, IPython's exception and input hooks, sys.excepthook,
  the notebook's module names); the objects the given cells made (tensors, arrays, models, data
  frames) are rebound and put back from a copy if a cell changed them, and a student function that
  changes one while a test runs fails the test.
- A student function must return exact built-in types (torch.Tensor, numpy arrays and scalars,
  int/float/bool/str/None, pandas objects, lists/tuples/dicts/sets of these, or a torch.nn.Module
  whose class is not the student's), so a subclass or an object whose __eq__/__lt__/__abs__ always
  say yes fails before any comparison sees it.

Why live references and not stored expected values: the hidden tests are code, and some of them
compare object identities (11: the optimizer's parameters) or side effects (10: copied layers),
which a stored value or a second process cannot express. Why not more: student code runs in this
process, so a student who digs the originals out of this module's closures, reloads coursekit, or
rewrites IPython's internals is attacking the grader itself, like pasting the reference's source;
that is plagiarism review's job (and a container's), not a test's.
"""
from __future__ import annotations

import builtins
import contextlib
import copy
import functools
import hashlib
import importlib
import inspect
import json
import linecache
import math
import operator
import os
import re
import sys
import threading
import types

GUARD_MARK = "# coursekit grading guard (added by the grader; not part of the submission)"


class GradingError(AssertionError):
    """A test cell failed because of what the student's code did, not what it returned."""


def spec_cell(spec: dict) -> str:
    """The source of the cell the grader puts first in every graded notebook. It loads this file
    on its own, not through `import coursekit` (which imports torch: seconds a notebook without
    torch should not pay)."""
    return (f"{GUARD_MARK}\nimport importlib.util as _util, json as _json, sys as _sys\n"
            f"_spec = _util.spec_from_file_location('coursekit_grading_guard', {os.path.abspath(__file__)!r})\n"
            "_guard = _sys.modules['coursekit_grading_guard'] = _util.module_from_spec(_spec)\n"
            "_spec.loader.exec_module(_guard)\n"
            f"_guard.install(_json.loads({json.dumps(json.dumps(spec))}))\ndel _util, _json, _sys, _spec, _guard")


def digest(source: str) -> str:
    """What the guard knows of a cell's text (never the text: the spec cell is readable from the
    kernel, and test cells hold the hidden tests); trailing spaces and blank edges ignored."""
    text = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def install(spec: dict, shell=None) -> "Guard":
    """spec: {references: {dotted name: exercise}, allowed: [coursekit names the solution calls],
    trusted: [digests of the instructor's cells],
    tests: [digests of the test cells], functions: [names the solution cells define], nonce_file}.
    Returns the Guard."""
    shell = shell or get_ipython()  # noqa: F821 (defined inside IPython)
    guard = Guard(spec, shell)
    shell.events.register("pre_run_cell", guard.pre_run_cell)
    shell.events.register("post_run_cell", guard.post_run_cell)
    guard.surface = _Surface(guard._owners())      # taken last: the guard's own hooks are part of it
    return guard


class Guard:
    def __init__(self, spec: dict, shell):
        self.shell, self.ns = shell, shell.user_ns
        self.trusted, self.tests = set(spec["trusted"]), set(spec["tests"])
        self.functions = list(spec["functions"])
        self.depth = 0                  # > 0 while a student function runs
        self.cell = None                # "test", "trusted" or "student": the cell running now
        self.given, self.modules, self.stashed, self.tampered, self.before = {}, {}, {}, None, {}
        self.threads = set(threading.enumerate())
        self.trace = sys.gettrace()
        self.nonce = _read_once(spec.get("nonce_file"))
        for name, message in blocked_names(spec["references"], spec.get("allowed", ())).items():
            self._block(name, message)

    # ------------------------------------------------------------------ the cell events
    def pre_run_cell(self, info) -> None:
        source = digest(info.raw_cell or "")
        self.cell = "test" if source in self.tests else "trusted" if source in self.trusted else "student"
        self.before = dict(self.ns)     # to tell what this cell binds
        if self.cell != "test":
            return
        self._restore()
        if self.nonce:                  # the grader's proof that this test ran guarded
            # one write: print's separate write of the newline can be flushed on its own (ipykernel's
            # timed flush under load), which split the mark across two outputs
            print(f"{GUARD_MARK} {self.nonce}\n", end="", flush=True)
        for name in [n for n in self.ns if n in vars(builtins) and not n.startswith("_")]:
            self.stashed[name] = self.ns.pop(name)      # a student's `abs = ...` must not answer for builtins
        changed = [name for name, item in self.given.items() if not item.intact() and not item.put_back()]
        self.tampered = (f"your code changed {', '.join(f'`{n}`' for n in changed)}, which the notebook gives "
                         "and the tests use; work on a copy") if changed else None
        for name in self.functions:
            fn = self.ns.get(name)
            if callable(fn) and not getattr(fn, "_coursekit_checked", False):
                self.ns[name] = self._checked(name, fn)

    def post_run_cell(self, result) -> None:
        kind, self.cell = self.cell, None
        self._reset_surface()           # a cell's patches never reach the next cell
        self.ns.update(self.stashed)
        self.stashed = {}
        if kind != "test" and kind != "trusted":
            self._restore()             # nor do a student cell's rebindings of given names
            return
        if kind == "test":              # what a test cell rebinds is its own; what it changed in place is new
            self.given = {n: _Given(g.obj) for n, g in self.given.items() if self.ns.get(n) is g.obj}
            return
        self.surface.extend(self._owners())       # e.g. torch, imported by the first code cell
        for name, obj in list(self.ns.items()):        # what a given cell binds, or changes, is what tests get
            if isinstance(obj, types.ModuleType) and not name.startswith("_"):
                self.modules[name] = obj
            elif _givable(obj) and not name.startswith("_i") and (
                    name in self.given or self.before.get(name, _MISSING) is not obj):
                kept = self.given.get(name)
                if kept is None or kept.obj is not obj or not kept.intact():    # copy only what changed
                    self.given[name] = _Given(obj)

    def _restore(self) -> None:
        self._reset_surface()
        self.ns.update(self.modules)
        self.ns.update({name: g.obj for name, g in self.given.items()})

    def _reset_surface(self) -> None:
        self.surface.restore()
        if sys.gettrace() is not self.trace:         # a tracer could jump over a test's asserts
            sys.settrace(self.trace)
        sys.setprofile(None)

    # ------------------------------------------------------------------ student functions
    def _checked(self, name: str, fn):
        guard = self

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            if guard.tampered:
                raise GradingError(guard.tampered)
            guard.depth += 1
            try:
                result = fn(*args, **kwargs)
            finally:
                guard.depth -= 1
                if guard.depth == 0:
                    guard._reset_surface()
                    guard.ns.update(guard.modules)
            if guard.depth == 0:
                guard._after_call(name)
            check_type(result, f"{name}(...)")
            return result
        checked._coursekit_checked = True
        return checked

    def _after_call(self, name: str) -> None:
        changed = [n for n, g in self.given.items() if not g.intact()]
        if changed:
            self.tampered = f"{name} changed {', '.join(f'`{n}`' for n in changed)}, which the notebook gives; work on a copy"
            raise GradingError(self.tampered)
        frames = sys._current_frames()
        left = [t for t in threading.enumerate() if t not in self.threads and t.is_alive()
                and self._student_frame(frames.get(t.ident))]
        if left:
            raise GradingError(f"{name} left a thread running ({left[0].name}); a graded function must finish its work")

    # ------------------------------------------------------------------ the references
    def _block(self, dotted: str, message: str) -> None:
        """Make `dotted` (a function, or a class's constructor) raise GradingError(message) whenever
        student code is running; blocked_names() decides what and says why."""
        owner, attr = _resolve(dotted)
        if owner is None:
            return
        original = getattr(owner, attr)
        guard = self

        def refuse():
            if guard.depth > 0 or guard._student_on_stack():
                raise GradingError(message)

        if isinstance(original, type):
            init = original.__init__
            if getattr(init, "_coursekit_reference", False):     # blocked already (a helper of two references)
                return

            @functools.wraps(init)
            def guarded_init(self, *args, **kwargs):
                refuse()
                return init(self, *args, **kwargs)
            del guarded_init.__wrapped__                     # inspect.unwrap must not hand back the original
            guarded_init._coursekit_reference = True
            original.__init__ = guarded_init
            return
        if getattr(original, "_coursekit_reference", False):
            return

        @functools.wraps(original)
        def guarded(*args, **kwargs):
            refuse()
            return original(*args, **kwargs)
        guarded._coursekit_reference = True
        del guarded.__wrapped__
        if not _is_coursekit_module(owner):
            setattr(owner, attr, guarded)                   # a library equivalent (LIBRARY_EQUIVALENTS)
        for module in _coursekit_modules():
            for key, value in list(vars(module).items()):      # the module's own name, and re-exports
                if value is original:                          # (`from .attacks import fgsm`)
                    setattr(module, key, guarded)

    def _student_on_stack(self) -> bool:
        return self._student_frame(sys._getframe(3))

    def _student_frame(self, frame) -> bool:
        """Whether `frame` or a frame it was called from runs a cell that is not the instructor's."""
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename in linecache.cache and not filename.startswith("<") and not os.path.exists(filename):
                if digest("".join(linecache.cache[filename][2])) not in self.trusted:
                    return True
            frame = frame.f_back
        return False

    def _owners(self) -> list:
        """What the surface snapshot covers, among the modules imported so far (the guard imports
        none itself: a notebook without torch should not pay for it)."""
        get = sys.modules.get
        owners = [builtins, math, operator, sys.modules]
        owners += [get(n) for n in ("torch", "torch.testing", "torch.nn.functional", "torch.linalg", "numpy",
                                    "numpy.testing", "numpy.linalg", "pandas", "pandas.testing") if get(n)]
        if get("torch"):
            owners += [get("torch").Tensor, get("torch").nn.Parameter]
            owners += [c for c in vars(get("torch").nn).values() if isinstance(c, type)]
        owners += _coursekit_modules()
        owners += [_Attrs(self.shell, _SHELL_HOOKS),
                   _Attrs(sys, ("excepthook", "displayhook", "breakpointhook", "stdout", "stderr"))]
        kernel = getattr(self.shell, "kernel", None)        # ipykernel: what turns an error into the reply
        owners += [c for c in [*type(self.shell).__mro__, *type(kernel).__mro__]
                   if c.__module__.split(".")[0] in ("IPython", "ipykernel")]
        if kernel is not None:
            owners += [_Attrs(kernel, ("do_execute", "execute_request", "send_response", "session")),
                       getattr(kernel, "shell_handlers", {})]
        owners += [self.shell.input_transformers_post, self.shell.input_transformers_cleanup,
                   self.shell.ast_transformers, self.shell.events.callbacks]
        owners += list(self.shell.events.callbacks.values())
        return owners


_SHELL_HOOKS = ("custom_exceptions", "CustomTB", "showtraceback", "_showtraceback", "showsyntaxerror",
                "run_cell", "run_cell_async", "should_run_async", "transform_cell", "run_ast_nodes", "run_code",
                "set_custom_exc", "excepthook", "displayhook", "display_pub", "events", "user_ns", "user_global_ns")


class _Attrs:
    """Named attributes of an object, seen as a module is (the rest of its __dict__ changes freely)."""

    def __init__(self, obj, names):
        self.obj, self.names = obj, [n for n in names if hasattr(obj, n)]

    def state(self) -> dict:
        return {n: getattr(self.obj, n) for n in self.names}


class _Surface:
    """A snapshot of attributes (module dicts, class dicts, an object's __dict__, lists, dicts)
    that restore() puts back: changed entries reset, entries added to classes and objects removed."""

    def __init__(self, owners):
        self.saved, self.keys, self.contents = [], set(), []
        self.extend(owners)

    def extend(self, owners) -> None:
        """Snapshot the owners not seen before (modules a given cell has just imported)."""
        for owner in owners:
            key = ("attrs", id(owner.obj)) if isinstance(owner, _Attrs) else id(owner)
            if key not in self.keys:
                self.keys.add(key)
                self.saved.append((owner, self._state(owner)))
                if _is_coursekit_module(owner):
                    self.contents += _constants(owner)

    @staticmethod
    def _state(owner):
        if isinstance(owner, list):
            return list(owner)
        if isinstance(owner, dict):
            return dict(owner)
        if isinstance(owner, _Attrs):
            return owner.state()
        return dict(vars(owner))

    def restore(self) -> None:
        for owner, saved in self.saved:
            if isinstance(owner, list):
                if owner != saved:
                    owner[:] = saved
                continue
            if isinstance(owner, dict):
                for key in [k for k in owner if k not in saved]:
                    if owner is not sys.modules:
                        del owner[key]
                owner.update({k: v for k, v in saved.items() if owner.get(k) is not v})
                continue
            target = owner.obj if isinstance(owner, _Attrs) else owner
            current = owner.state() if isinstance(owner, _Attrs) else vars(owner)
            for key, value in saved.items():
                if current.get(key, _MISSING) is not value:
                    try:
                        setattr(target, key, value)
                    except (AttributeError, TypeError):
                        pass
            if isinstance(owner, type):       # a class or the shell: added attributes go
                for key in [k for k in current if k not in saved]:
                    try:
                        delattr(owner, key)
                    except (AttributeError, TypeError):
                        pass
        # then the constants' contents (with the bindings and torch put back first, so a patched
        # Tensor.set_ cannot undo it), whether or not they look changed: an equality test could be
        # fooled by an element whose __eq__ always says yes (0.6 ms for all of coursekit's, measured)
        for value, kept in self.contents:
            _put_back(value, kept)


_MISSING = object()
_deepcopy = copy.deepcopy   # taken before any student code runs: a patched copy.deepcopy is not used


def _coursekit_modules() -> list:
    """The coursekit modules imported so far."""
    return [m for n, m in list(sys.modules.items()) if n.split(".")[0] == "coursekit" and m]


def _is_coursekit_module(obj) -> bool:
    return isinstance(obj, types.ModuleType) and obj.__name__.split(".")[0] == "coursekit"


def _constants(module) -> list:
    """(value, deep copy) of a coursekit module's constants (UPPER_CASE tensors, arrays, lists, dicts,
    sets): rebinding one is undone with the module's dict, but an in-place edit such as
    `data.PCA_EIGVAL.zero_()` would change what a hidden test computes its expected value from."""
    kinds = tuple(t for t in (list, dict, set, getattr(sys.modules.get("torch"), "Tensor", None),
                              getattr(sys.modules.get("numpy"), "ndarray", None)) if t)
    found = []
    for name, value in vars(module).items():
        if name.isupper() and not name.startswith("_") and isinstance(value, kinds):
            try:
                found.append((value, _deepcopy(value)))
            except Exception:   # a constant that cannot be copied keeps only the binding check
                pass
    return found


def _put_back(value, kept) -> None:
    """Make `value` equal to `kept` again, in place (other names may hold the same object)."""
    try:
        if isinstance(value, list):
            value[:] = _deepcopy(kept)
        elif isinstance(value, (dict, set)):
            value.clear()
            value.update(_deepcopy(kept))
        elif type(value).__module__.startswith("torch"):
            torch = sys.modules["torch"]
            with torch.no_grad():
                value.set_(kept.clone())
        else:                       # a numpy array of the same shape
            value[...] = kept
    except Exception:
        pass


def _read_once(path) -> str:
    """The text of a file the grader wrote for this kernel alone, deleted once read."""
    if not path or not os.path.exists(path):
        return ""
    with open(path) as f:
        text = f.read().strip()
    os.remove(path)
    return text


def _resolve(dotted: str):
    """'coursekit.attacks.fgsm' -> (the module coursekit.attacks, 'fgsm'); (None, None) if absent."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:-1]:
            owner = getattr(owner, part, None)
        return (owner, parts[-1]) if owner is not None and hasattr(owner, parts[-1]) else (None, None)
    return None, None


def blocked_names(references: dict, allowed=()) -> dict[str, str]:
    """{dotted name: the message a student gets} for everything the guard refuses to student code:

    - each reference (a coursekit callable the hidden tests call, or a library equivalent);
    - the private functions (`_name`) of its module that it calls, and theirs, recursively;
    - the public functions and classes of its module that it, or one of those private helpers,
      calls by name (04: attribution.window_starts and occluded_batch behind occlusion; 03:
      patches.strongest_per_channel and TopActivations behind mine), and their private helpers:
      a reference's public helpers can do most of the exercise, four lines of glue left to write;
    - except what the instructor's solution runs: `allowed` (the coursekit names its cells call)
      and every function and class of their modules that those call, recursively (02's solution
      calls hooks.get_layer, which calls hooks._split_call, also a helper of hooks.run), so the
      solution always scores full marks.
    A class reference is blocked at its constructor and not expanded (its methods are not what the
    hidden tests compare with)."""
    protected = set()
    for dotted in allowed:
        owner, attr = _resolve(dotted)
        if _is_coursekit_module(owner):
            protected |= {f"{owner.__name__}.{name}" for name in _reachable(owner, attr)}
    blocked = {}
    for dotted, exercise in references.items():
        blocked.setdefault(dotted, f"calling the reference {dotted} is not allowed in {exercise}: write it yourself")
    for dotted, exercise in references.items():
        owner, attr = _resolve(dotted)
        if not _is_coursekit_module(owner) or isinstance(getattr(owner, attr), type):
            continue
        for name in _helpers(owner, attr):
            helper = f"{owner.__name__}.{name}"
            if helper not in protected:
                blocked.setdefault(helper, f"calling {helper} is not allowed in {exercise}: it does part of the "
                                           f"reference {dotted}, which the exercise asks you to write; write that "
                                           "part yourself")
    return blocked


def _helpers(module, name: str) -> list[str]:
    """What blocked_names() blocks with the reference `name` of `module`: the private functions it
    calls (recursively), the public functions and classes it or they call, and their private
    functions (recursively); in the order found."""
    found, inner, todo = [], {name}, [name]        # inner: the reference and its private helpers
    while todo:
        current = todo.pop(0)
        for called in _calls_in_module(module, getattr(module, current)):
            private = called.startswith("_")
            if called in found or called == name or (not private and current not in inner):
                continue
            if private and not isinstance(vars(module)[called], types.FunctionType):
                continue                            # a private class (models._LRNFunction): internals
            found.append(called)
            todo.append(called)
            if private and current in inner:
                inner.add(called)
    return found


def _reachable(module, name: str) -> set[str]:
    """`name` and every function and class of `module` it calls, recursively (classes: their methods)."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in vars(module):
            continue
        seen.add(current)
        todo += _calls_in_module(module, vars(module)[current])
    return seen


def _calls_in_module(module, obj) -> list[str]:
    """The names in `obj`'s code (a function: its body and nested functions; a class: its methods)
    that are functions or classes defined in `module`, in order, without repeats. A decorated
    function is read through its __wrapped__ chain (04's occlusion is wrapped by reads_model)."""
    if isinstance(obj, type):
        functions = [getattr(v, "__func__", v) for v in vars(obj).values()]
    else:
        functions = [obj]
    codes = []
    for fn in functions:
        try:
            fn = inspect.unwrap(fn) if callable(fn) else fn
        except ValueError:                          # a __wrapped__ cycle
            continue
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType):
            codes.append(code)
    names = []
    while codes:
        code = codes.pop(0)
        names += code.co_names
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    found = []
    for name in names:
        value = vars(module).get(name)
        if (name not in found and isinstance(value, (types.FunctionType, type))
                and getattr(value, "__module__", None) == module.__name__
                and not getattr(value, "_coursekit_reference", False)):
            found.append(name)
    return found


def _givable(obj) -> bool:
    torch, numpy = sys.modules.get("torch"), sys.modules.get("numpy")
    return bool((torch and isinstance(obj, (torch.Tensor, torch.nn.Module)))
                or (numpy and isinstance(obj, numpy.ndarray)) or _is_pandas(obj))


def _is_pandas(obj) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, (pandas.Series, pandas.DataFrame))


def fingerprint(obj) -> str:
    """A hash of an object's values: a tensor's bytes, a model's parameters, buffers and hooks,
    a data frame's cells."""
    import numpy
    import torch
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(obj, torch.nn.Module):
        for name, tensor in [*obj.named_parameters(), *obj.named_buffers()]:
            digest.update(name.encode())
            digest.update(fingerprint(tensor).encode())
        for module in obj.modules():
            digest.update(repr((type(module).__qualname__, len(module._forward_hooks), len(module._forward_pre_hooks),
                                len(module._backward_hooks), "forward" in vars(module))).encode())
    elif isinstance(obj, torch.Tensor):
        data = obj.detach().cpu().contiguous()
        digest.update(repr((type(obj).__name__, data.dtype, tuple(data.shape))).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    elif isinstance(obj, numpy.ndarray):
        digest.update(repr((obj.dtype, obj.shape)).encode() + numpy.ascontiguousarray(obj).tobytes())
    elif _is_pandas(obj):
        digest.update(obj.to_json().encode())
    return digest.hexdigest()


class _Given:
    """An object a given cell made: its fingerprint, and a copy to put it back from (up to
    _COPY_LIMIT elements; a scratch cell that scaled `xb` in place must not cost the exercise)."""

    def __init__(self, obj):
        self.obj, self.fp, self.saved = obj, fingerprint(obj), _copy(obj)

    def intact(self) -> bool:
        return fingerprint(self.obj) == self.fp

    def put_back(self) -> bool:
        """Restore the values (and a model's hooks) from the copy; True if that made it intact."""
        torch = sys.modules.get("torch")
        if self.saved is None:
            return False
        try:
            with torch.no_grad() if torch else contextlib.nullcontext():
                if torch and isinstance(self.obj, torch.nn.Module):
                    values, hooks = self.saved
                    for key, tensor in self.obj.state_dict(keep_vars=True).items():
                        tensor.copy_(values[key])
                    for module, kept in zip(self.obj.modules(), hooks):
                        for hooks_of, keys in zip(_hook_dicts(module), kept[:3]):
                            for key in [k for k in hooks_of if k not in keys]:
                                del hooks_of[key]
                        if "forward" in vars(module) and not kept[3]:
                            del module.forward
                else:
                    self.obj[...] = self.saved
        except Exception:           # a different shape or a new layer: not ours to repair
            return False
        return self.intact()


_COPY_LIMIT = 20_000_000


def _hook_dicts(module) -> list:
    return [module._forward_hooks, module._forward_pre_hooks, module._backward_hooks]


def _copy(obj):
    import numpy
    import torch
    if isinstance(obj, torch.nn.Module):
        if sum(t.numel() for t in obj.state_dict().values()) > _COPY_LIMIT:
            return None
        return ({k: v.detach().clone() for k, v in obj.state_dict().items()},
                [(*[set(d) for d in _hook_dicts(m)], "forward" in vars(m)) for m in obj.modules()])
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone() if obj.numel() <= _COPY_LIMIT else None
    if isinstance(obj, numpy.ndarray):
        return obj.copy() if obj.size <= _COPY_LIMIT else None
    return None                     # a data frame: fingerprinted only


_EXACT = (int, float, bool, complex, str, bytes, type(None))


def check_type(value, where: str, depth: int = 0) -> None:
    """Raise GradingError unless `value` is made of exact built-in types (see the module docstring)."""
    torch, numpy = sys.modules.get("torch"), sys.modules.get("numpy")
    kind = type(value)
    if kind in _EXACT:
        return
    if torch and (kind in (torch.Tensor, torch.nn.Parameter, torch.dtype, torch.device)
                  or (isinstance(value, torch.nn.Module) and _library_class(kind))):
        return
    if numpy and (kind is numpy.ndarray or (isinstance(value, numpy.generic) and kind.__module__ == "numpy")):
        return
    if _is_pandas(value) and kind.__module__.startswith("pandas"):
        return
    if kind in (list, tuple, set, frozenset) and depth < 4:
        for item in value:
            check_type(item, where, depth + 1)
        return
    if kind is dict and depth < 4:
        for key, item in value.items():
            check_type(key, where, depth + 1)
            check_type(item, where, depth + 1)
        return
    raise GradingError(f"{where} returned a {kind.__module__}.{kind.__qualname__}; the tests need a plain "
                       "torch.Tensor, number, list, tuple or dict (not a subclass or an object of your own)")


def _library_class(kind) -> bool:
    """Module classes from torch, torchvision or coursekit (a student's own class could rig __eq__)."""
    return all(c.__module__.split(".")[0] in ("torch", "torchvision", "coursekit", "builtins")
               for c in kind.__mro__)


# ---------------------------------------------------------------------- the spec (built by the grader)

_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\(")
_EXERCISE = re.compile(r"^#+\s*(Exercise\s+\d+\w*)", re.IGNORECASE | re.MULTILINE)


# Library functions that compute what an exercise asks the student to write: blocked with the coursekit
# reference they equal (tests/test_crosscheck.py checks that they do), so `nn.LocalResponseNorm` cannot
# answer 01's LRN exercise nor torchattacks 08's PGD loop. One absent from the grading environment
# (captum, torchattacks: test extras) is skipped.
LIBRARY_EQUIVALENTS = {
    "coursekit.models.LocalResponseNorm": ["torch.nn.LocalResponseNorm", "torch.nn.functional.local_response_norm"],
    "coursekit.transforms.gaussian_blur": ["torchvision.transforms.functional.gaussian_blur",
                                           "torchvision.transforms.GaussianBlur"],
    "coursekit.attribution.saliency": ["captum.attr.Saliency"],
    "coursekit.attribution.occlusion": ["captum.attr.Occlusion"],
    "coursekit.hooks.relu_rule": ["captum.attr.Deconvolution", "captum.attr.GuidedBackprop"],
    "coursekit.attacks.fgsm": ["torchattacks.FGSM"],
    "coursekit.attacks.pgd": ["torchattacks.PGD"],
}


def build_spec(nb) -> dict:
    """The guard's spec for the graded part `nb` of an instructor notebook: which cells are the
    instructor's (trusted), which are test cells, which names the solution cells define, the
    references: coursekit callables the hidden tests call that the instructor's solution does not,
    and what the solution calls (allowed: never blocked, see blocked_names)."""
    from nbgrader import utils
    from .notebooks import grade_id, hidden_lines
    code = [c for c in nb.cells if c.cell_type == "code"]
    solutions = [c for c in code if utils.is_solution(c)]
    aliases = _coursekit_aliases([c.source for c in code if not utils.is_solution(c)])
    used_by_solution = {n for c in solutions for n in _coursekit_calls(c.source, aliases)}
    references, exercise = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and _EXERCISE.search(cell.source):
            exercise = _EXERCISE.search(cell.source)[1]
        if cell.cell_type == "code" and utils.is_grade(cell):
            hidden = "\n".join(line.strip() for line in hidden_lines(cell.source).values())
            label = f"{exercise} ({grade_id(cell)})" if exercise else grade_id(cell)
            for name in _coursekit_calls(hidden, {**aliases, **_coursekit_aliases(hidden.splitlines())}):
                if name not in used_by_solution:
                    references.setdefault(name, label)
                    for equivalent in LIBRARY_EQUIVALENTS.get(name, []):
                        references.setdefault(equivalent, label)
    return {"references": references,
            "allowed": sorted(used_by_solution),    # never blocked, nor what they call (blocked_names)
            "trusted": sorted({digest(c.source) for c in code if not utils.is_solution(c)}),
            "tests": sorted({digest(c.source) for c in code if utils.is_grade(c)}),
            "functions": sorted({n for c in solutions for n in _defined_names(c.source)})}


def _coursekit_aliases(sources) -> dict:
    """{name in the notebook: dotted coursekit name} from the import statements in `sources`."""
    import ast
    aliases = {}
    for source in sources:
        for line in source.splitlines():
            try:
                tree = ast.parse(line.strip())
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    aliases.update({(a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0])
                                    for a in node.names if a.name.split(".")[0] == "coursekit"})
                elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "coursekit":
                    aliases.update({(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names})
    return aliases


def _coursekit_calls(source: str, aliases: dict) -> set:
    """Dotted coursekit names called in `source` ('attacks.fgsm(' -> 'coursekit.attacks.fgsm')."""
    found = set()
    for chain in _CALL.findall(source):
        head, _, rest = chain.partition(".")
        if head in aliases:
            found.add(f"{aliases[head]}.{rest}" if rest else aliases[head])
    return {name for name in found if name.count(".") >= 2 or name.startswith("coursekit.")} - {"coursekit.setup"}


def _defined_names(source: str) -> set:
    import ast
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(re.findall(r"^def\s+(\w+)", source, re.MULTILINE))
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
