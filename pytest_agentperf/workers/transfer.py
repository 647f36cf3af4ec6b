"""Sending the agent and its inputs to a worker process, without pickle.

What can be sent (``encode``), and how the worker gets it back (``decode``):

- plain data: None, bool, int, float, complex, str, bytes, and lists, tuples, dicts, sets and
  frozensets of plain data: sent as they are;
- a module, or a function, class or other object reachable by name at module level of an
  importable module (``mymod.agent``, ``mymod.Agent``, ``mymod.chain``): sent as the module's
  name and file and the object's name; the worker imports the module (from its file when the
  name does not import, as pytest's test modules often do not) and looks the name up;
- a function defined inside another function (a closure built in the test): sent as where its
  code is (module, enclosing function, name, first line) plus the values it captured (its
  closure variables) and its defaults, each sent by these same rules; the worker imports the
  module, finds the code inside the enclosing function's and builds the function again;
- a bound method (``obj.method``) of an object that can be sent, and ``functools.partial``
  of sendable parts.

Anything else (a client object built in the test, a lock, an open file) cannot be sent:
``encode`` raises SettingsError naming the agent, the variable that holds it and its type.
The module's code runs again on the worker (importing it), so module-level objects are built
there anew; that is what makes a client at module level, or one made lazily inside the agent,
work.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

from ..errors import SettingsError

TAG = "__agentperf_ref__"
"""The key that marks an encoded reference (a dict with this key is never plain data)."""
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_MAX_DEPTH = 50
_LOCALS = ".<locals>."


class CannotSend(Exception):
    """``encode`` met a value it cannot send; ``where`` says whose, ``what`` what it is."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


def encode_agent(fn: Any) -> Any:
    """``fn`` as plain data a worker can ``decode``; SettingsError says what could not be sent."""
    try:
        return _Encoder(_home_module(fn)).encode(fn, "the agent", 0)
    except CannotSend as exc:
        raise SettingsError(
            f"workers: cannot send {_describe(fn)} to the worker processes: {exc.where} is "
            f"{exc.what}. A worker imports the test module and rebuilds the agent from plain "
            "data (None, numbers, str, bytes, lists, tuples, dicts, sets) and names defined at "
            "module level; create that object inside the agent (e.g. once per process, in a "
            "module-level cache) or at module level, or pass it as plain data",
            key="workers",
        ) from None


def encode_inputs(inputs: Any) -> Any:
    """The run's inputs (a list) as plain data; SettingsError names the input that is not."""
    try:
        return _Encoder(None).encode(list(inputs), "inputs", 0)
    except CannotSend as exc:
        raise SettingsError(
            f"workers: cannot send the inputs to the worker processes: {exc.where} is "
            f"{exc.what}; inputs must be plain data (None, numbers, str, bytes, lists, tuples, "
            "dicts, sets) or names defined at module level",
            key="workers",
        ) from None


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"the agent {module}.{name}"


def _home_module(fn: Any) -> types.ModuleType | None:
    """The module whose globals are searched for an object sent by name."""
    target = getattr(fn, "__func__", fn)
    name = getattr(target, "__module__", None) or type(target).__module__
    return sys.modules.get(name) if isinstance(name, str) else None


def _module_ref(module: types.ModuleType, where: str) -> dict[str, Any]:
    name = module.__name__
    if name == "__main__":
        raise CannotSend(where, "defined in __main__, which a worker cannot import")
    file = getattr(module, "__file__", None)
    return {"module": name, "file": os.path.realpath(file) if file else None}


def _lookup(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _global_name(module: types.ModuleType, value: Any) -> str | None:
    """The global name ``value`` has in ``module``, or None."""
    try:
        items = list(vars(module).items())
    except TypeError:  # an odd object in sys.modules
        return None
    return next((name for name, obj in items if obj is value), None)


class _Encoder:
    def __init__(self, home: types.ModuleType | None) -> None:
        self.homes = [home] if home is not None else []
        self._active: set[int] = set()  # ids being encoded: a cycle cannot be sent

    def encode(self, value: Any, where: str, depth: int) -> Any:
        if type(value) in _PLAIN:
            return value
        if depth > _MAX_DEPTH:
            raise CannotSend(where, f"nested more than {_MAX_DEPTH} levels deep")
        if id(value) in self._active:
            raise CannotSend(where, "a value that contains itself")
        self._active.add(id(value))
        try:
            return self._compound(value, where, depth + 1)
        finally:
            self._active.discard(id(value))

    def _compound(self, value: Any, where: str, depth: int) -> Any:
        kind = type(value)
        if kind is list:
            return [self.encode(v, f"{where}[{i}]", depth) for i, v in enumerate(value)]
        if kind is tuple:
            return tuple(self.encode(v, f"{where}[{i}]", depth) for i, v in enumerate(value))
        if kind in (set, frozenset):
            items = [self.encode(v, f"{where} item", depth) for v in value]
            if not all(type(v) in _PLAIN for v in items):
                raise CannotSend(where, "a set holding something other than plain values")
            return kind(items)
        if kind is dict:
            if TAG in value:
                raise CannotSend(where, f"a dict with the reserved key {TAG!r}")
            out = {}
            for k, v in value.items():
                if type(k) not in _PLAIN:
                    raise CannotSend(where, f"a dict with a {type(k).__name__} key")
                out[k] = self.encode(v, f"{where}[{k!r}]", depth)
            return out
        return self._reference(value, where, depth)

    def _reference(self, value: Any, where: str, depth: int) -> dict[str, Any]:
        if isinstance(value, types.ModuleType):
            return {TAG: "module", **_module_ref(value, where)}
        named = self._by_name(value, where)
        if named is not None:
            return named
        if isinstance(value, types.MethodType):
            return {
                TAG: "method",
                "self": self.encode(value.__self__, f"{where} (its object)", depth),
                "name": value.__func__.__name__,
            }
        if isinstance(value, functools.partial):
            return {
                TAG: "partial",
                "func": self.encode(value.func, f"{where} (its function)", depth),
                "args": self.encode(list(value.args), f"{where} (its arguments)", depth),
                "keywords": self.encode(dict(value.keywords), f"{where} (its keywords)", depth),
            }
        if isinstance(value, types.FunctionType) and _LOCALS in value.__qualname__:
            return self._closure(value, where, depth)
        what = f"an object of type {type(value).__module__}.{type(value).__qualname__}"
        if isinstance(value, types.FunctionType):
            what = f"the function {value.__qualname__}, which cannot be found by name"
        raise CannotSend(where, what)

    def _by_name(self, value: Any, where: str) -> dict[str, Any] | None:
        """A reference to ``value`` by module and name, when it has one (else None)."""
        module_name = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None)
        if (
            isinstance(module_name, str)
            and isinstance(qualname, str)
            and _LOCALS not in qualname
            and isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType))
        ):
            module = sys.modules.get(module_name)
            if module is not None:
                try:
                    found = _lookup(module, qualname)
                except AttributeError:
                    found = None
                if found is value:
                    return {TAG: "name", "name": qualname, **_module_ref(module, where)}
        # an object (or a lambda) bound to a global name of the agent's or its class's module
        homes = list(self.homes)
        owner = sys.modules.get(getattr(type(value), "__module__", ""))
        if owner is not None:
            homes.append(owner)
        for module in homes:
            name = _global_name(module, value)
            if name is not None:
                return {TAG: "name", "name": name, **_module_ref(module, where)}
        # e.g. a chain built at module level of the test: its class's module is the library's
        for module in list(sys.modules.values()):
            if module is None or module in homes or module.__name__ == "__main__":
                continue
            name = _global_name(module, value)
            if name is not None:
                return {TAG: "name", "name": name, **_module_ref(module, where)}
        return None

    def _closure(self, fn: types.FunctionType, where: str, depth: int) -> dict[str, Any]:
        module = sys.modules.get(fn.__module__)
        if module is None:
            raise CannotSend(where, f"the function {fn.__qualname__} of an unknown module")
        outer = fn.__qualname__.split(_LOCALS, 1)[0]
        code = fn.__code__
        self.homes.append(module)
        cells = {}
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            try:
                content = cell.cell_contents
            except ValueError:  # not assigned yet
                raise CannotSend(f"{where}, its variable {name!r}", "not assigned") from None
            cells[name] = self.encode(content, f"{where}, its variable {name!r}", depth)
        return {
            TAG: "closure",
            **_module_ref(module, where),
            "outer": outer,
            "qualname": fn.__qualname__,
            "name": code.co_name,
            "line": code.co_firstlineno,
            "freevars": list(code.co_freevars),
            "cells": cells,
            "defaults": self.encode(list(fn.__defaults__ or ()), f"{where} (defaults)", depth),
            "kwdefaults": self.encode(dict(fn.__kwdefaults__ or {}), f"{where} (defaults)", depth),
        }


# -- the worker side ------------------------------------------------------------------------


def load_module(name: str, file: str | None) -> types.ModuleType:
    """The module ``name`` as the controller has it: imported by name when that gives the same
    file, else loaded from ``file`` (a test module pytest imported under a name of its own)."""
    module = sys.modules.get(name)
    if module is not None and _same_file(module, file):
        return module
    if file is None or not os.path.exists(file):
        return importlib.import_module(name)
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = None
    if module is not None and _same_file(module, file):
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load module {name!r} from {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _same_file(module: types.ModuleType, file: str | None) -> bool:
    own = getattr(module, "__file__", None)
    return file is None or (own is not None and os.path.realpath(own) == file)


def decode(value: Any) -> Any:
    """The value ``encode`` sent, rebuilt in this process."""
    kind = type(value)
    if kind is list:
        return [decode(v) for v in value]
    if kind is tuple:
        return tuple(decode(v) for v in value)
    if kind is dict:
        if TAG not in value:
            return {k: decode(v) for k, v in value.items()}
        return _decode_reference(value)
    return value


def _decode_reference(ref: dict[str, Any]) -> Any:
    tag = ref[TAG]
    if tag == "module":
        return load_module(ref["module"], ref["file"])
    if tag == "name":
        return _lookup(load_module(ref["module"], ref["file"]), ref["name"])
    if tag == "method":
        return getattr(decode(ref["self"]), ref["name"])
    if tag == "partial":
        return functools.partial(
            decode(ref["func"]), *decode(ref["args"]), **decode(ref["keywords"])
        )
    if tag == "closure":
        return _rebuild_closure(ref)
    raise ValueError(f"unknown reference kind {tag!r}")


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """Every code object nested in ``code``, depth first."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _codes(const)


def _rebuild_closure(ref: dict[str, Any]) -> types.FunctionType:
    module = load_module(ref["module"], ref["file"])
    outer = inspect.unwrap(_lookup(module, ref["outer"]))
    outer_code = getattr(outer, "__code__", None)
    if outer_code is None:
        raise LookupError(f"{ref['module']}.{ref['outer']} is not a function on this worker")
    matches = [
        code
        for code in _codes(outer_code)
        if code.co_name == ref["name"]
        and code.co_firstlineno == ref["line"]
        and list(code.co_freevars) == ref["freevars"]
        and getattr(code, "co_qualname", ref["qualname"]) == ref["qualname"]
    ]
    if len(matches) != 1:
        raise LookupError(
            f"{ref['qualname']} (line {ref['line']}) is not found once in "
            f"{ref['module']}.{ref['outer']} on the worker ({len(matches)} matches): is the "
            "worker's copy of the module the same as the controller's?"
        )
    code = matches[0]
    cells = decode(ref["cells"])
    closure = tuple(types.CellType(cells[name]) for name in code.co_freevars)
    fn = types.FunctionType(
        code, vars(module), code.co_name, tuple(decode(ref["defaults"])) or None, closure
    )
    fn.__kwdefaults__ = decode(ref["kwdefaults"]) or None
    fn.__qualname__ = ref["qualname"]
    return fn
