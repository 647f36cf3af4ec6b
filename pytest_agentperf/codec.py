"""JSON form of the result objects, both ways, in one place.

``to_jsonable`` turns a frozen dataclass (``PerfResult``, ``RunRecord``, ``Comparison``, ...)
into JSON-ready values; ``from_jsonable`` rebuilds the object from them, field by field, from the
dataclass's type hints. A new field therefore travels through the xdist boundary, the JSON
report and ``RunRecord.from_dict`` with no code of its own.

Conventions: floats that are not finite are written as None (and read back as NaN where the
field is a plain ``float``, so an infinite ratio comes back as NaN, still "not finite"); numpy
arrays (latency samples) are written as lists rounded to microseconds, cut to at most ``limit``
evenly spaced samples as arrays first, so only what is written becomes Python floats; an enum is
written as its value; a class may name properties to write beside its fields in
``JSON_PROPERTIES`` (they are ignored when reading).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from types import MappingProxyType
from typing import Any, TypeVar, Union

import numpy as np

T = TypeVar("T")

SAMPLE_DIGITS = 6
"""Samples are written rounded to microseconds."""


class DecodeError(ValueError):
    """A JSON value does not fit the field it is read into; the message names the field."""


def thin(samples: Any, limit: int | None) -> Any:
    """At most ``limit`` evenly spaced samples of the array ``samples`` (all of them when
    ``limit`` is None or not exceeded); sample ``i`` is ``samples[int(i * len / limit)]``."""
    if limit is None or len(samples) <= limit:
        return samples
    step = len(samples) / limit
    # float64 product then truncation: the same indices as int(i * step) in Python
    return samples[(np.arange(limit, dtype=np.float64) * step).astype(np.int64)]


def to_jsonable(value: Any, *, samples: bool = True, limit: int | None = None) -> Any:
    """``value`` as JSON-ready data; arrays only when ``samples``, at most ``limit`` each."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        whole = getattr(value, "JSON_WHOLE", False)  # a table: rows must stay aligned
        exact = getattr(value, "JSON_EXACT", ())
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if isinstance(item, np.ndarray):
                if whole:
                    out[f.name] = _array(item, f.name not in exact, None)
                elif samples:  # tolist() only for what is written
                    out[f.name] = _array(item, True, limit)
                continue
            out[f.name] = to_jsonable(item, samples=samples, limit=limit)
        for name in getattr(value, "JSON_PROPERTIES", ()):
            out[name] = to_jsonable(getattr(value, name), samples=samples, limit=limit)
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, samples=samples, limit=limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, samples=samples, limit=limit) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_jsonable(value.item(), samples=samples)
    return value


def _array(item: Any, rounded: bool, limit: int | None) -> list[Any]:
    """An array as a list: cut to ``limit``; floats rounded to microseconds when ``rounded``,
    NaN and infinities as None; integers as they are."""
    cut = thin(item, limit).tolist()
    if item.dtype.kind != "f":
        return list(cut)
    if rounded:
        return [round(x, SAMPLE_DIGITS) if math.isfinite(x) else None for x in cut]
    return [x if math.isfinite(x) else None for x in cut]


def _dtype_of(tp: Any) -> Any:
    """The numpy dtype an array field is annotated with (``NDArray[np.int64]``), else float64."""
    for arg in typing.get_args(tp):
        for inner in typing.get_args(arg):
            if isinstance(inner, type) and issubclass(inner, np.generic):
                return inner
    return np.float64


def from_jsonable(tp: type[T], data: Any, where: str = "record") -> T:
    """The object of type ``tp`` (a dataclass) that ``to_jsonable`` wrote as ``data``.

    Raises ``DecodeError`` naming the field (``where``) when ``data`` does not fit.
    """
    return typing.cast(T, _decode(tp, data, where))


@cache
def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules[cls.__module__]
    namespace = dict(vars(module))
    namespace.update(_late_names())
    return typing.get_type_hints(cls, globalns=namespace)


def _late_names() -> dict[str, Any]:
    """Types named only under ``TYPE_CHECKING`` where they are used (to avoid import cycles)."""
    from .baseline.comparison import Comparison

    return {"Comparison": Comparison}


def _decode(tp: Any, data: Any, where: str) -> Any:
    if tp is Any:
        return data
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _decode(rest[0], data, where)
        for arg in rest:  # e.g. int | float: the first that takes the value as it is
            if isinstance(arg, type) and isinstance(data, arg):
                return data
        raise DecodeError(f"{where}: {data!r} is none of {tp}")
    if origin is np.ndarray or tp is np.ndarray:
        if not isinstance(data, list):
            raise DecodeError(f"{where}: expected a list of numbers, got {type(data).__name__}")
        dtype = _dtype_of(tp)
        if dtype is np.float64:
            arr = np.asarray([math.nan if x is None else x for x in data], dtype=dtype)
        else:
            try:
                arr = np.asarray(data, dtype=dtype)
            except (TypeError, ValueError):
                raise DecodeError(f"{where}: expected a list of whole numbers") from None
        arr.flags.writeable = False
        return arr
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(data, (list, tuple)):
            raise DecodeError(f"{where}: expected a list, got {type(data).__name__}")
        item = args[0]  # result fields are tuple[X, ...]
        return tuple(_decode(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if origin in (Mapping, dict, typing.Mapping):
        _, value_type = typing.get_args(tp) or (str, Any)
        if not isinstance(data, Mapping):
            raise DecodeError(f"{where}: expected an object, got {type(data).__name__}")
        decoded = {str(k): _decode(value_type, v, f"{where}.{k}") for k, v in data.items()}
        return decoded if origin is dict else MappingProxyType(decoded)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            raise DecodeError(f"{where}: {data!r} is not a {tp.__name__}") from None
    return _scalar(tp, data, where)


def _dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise DecodeError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs = {
        f.name: _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        for f in dataclasses.fields(cls)
        if f.init and f.name in data
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise DecodeError(f"{where}: {exc}") from None


def _scalar(tp: Any, data: Any, where: str) -> Any:
    if tp is float:
        if data is None:  # written for a value that was not finite
            return math.nan
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif tp is bool or tp is str:
        if isinstance(data, tp):
            return data
    elif tp is type(None):
        if data is None:
            return None
    else:
        raise DecodeError(f"{where}: cannot read a field of type {tp}")
    raise DecodeError(f"{where}: expected {tp.__name__}, got {data!r}")
