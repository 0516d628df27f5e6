"""Call-time argument binding and checks, shared by every target.

`Binder(call)` reads the function's description (tdsl/callspec.py) once;
`Binder.bind(args, kwargs)` turns the caller's values into C-contiguous arrays of the declared dtypes
and finds the size variables, raising `TdslArgumentError` that names the parameter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dims import Dim
from .dtypes import from_numpy, kind, to_numpy
from .errors import TdslArgumentError
from .callspec import CallSpec
from .graph import FunctionGraph


def _python_kind(value) -> str | None:
    """The kind of a Python scalar or list ('bool', 'int', 'float'), or None if not one."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return None


_KIND_RANK = {"bool": 0, "int": 1, "float": 2}


class Binder:
    """The checked call path: converts and checks a call's arguments as its CallSpec says."""

    def __init__(self, call: CallSpec | FunctionGraph, device_types: tuple = ()):
        self.call = call = CallSpec.of(call) if isinstance(call, FunctionGraph) else call
        self.device_types = device_types   # a target's device arrays (pyopencl's): used in place
        self.params = call.params
        self.names = [p.name for p in call.params]
        self.checks = call.checks
        self.first_seen = call.first_seen_at()   # size variable -> (param index, axis)

    def bind(self, args: tuple, kwargs: dict) -> tuple[list[np.ndarray], dict[str, int]]:
        values = self._order(args, kwargs)
        arrays = [self._convert(p, v) for p, v in zip(self.params, values)]
        sizes = self._sizes(arrays)
        self.run_checks(sizes)
        return arrays, sizes

    def _order(self, args: tuple, kwargs: dict) -> list:
        if len(args) > len(self.params):
            raise TdslArgumentError(f"{self.call.name}() takes {len(self.params)} argument(s), "
                                    f"got {len(args)}; the signature is {self.call.signature}")
        values = list(args)
        for name in self.names[len(args):]:
            if name not in kwargs:
                raise TdslArgumentError(f"{self.call.name}() is missing argument '{name}'; "
                                        f"the signature is {self.call.signature}")
            values.append(kwargs[name])
        extra = [k for k in kwargs if k not in self.names[len(args):]]
        if extra:
            raise TdslArgumentError(f"{self.call.name}() got an unexpected or repeated argument "
                                    f"'{extra[0]}'; the signature is {self.call.signature}")
        return values

    def _convert(self, param, value) -> np.ndarray:
        target = param.dtype
        where = f"argument '{param.name}' of {self.call.name}()"
        if isinstance(value, (np.ndarray, np.generic) + self.device_types):
            src = value.dtype
            if from_numpy(src) == target:
                arr = value
            elif np.can_cast(src, to_numpy(target), "safe"):
                device = isinstance(value, self.device_types)   # a device array is cast on its device
                arr = value.astype(to_numpy(target)) if device else _converted(value, to_numpy(target), where)
            else:
                raise TdslArgumentError(f"{where} is {src}, which cannot be cast safely to {target}",
                                        hint=f"convert it with .astype(numpy.{to_numpy(target)})")
        else:
            arr = self._from_python(value, target, where)
        if arr.ndim != len(param.shape):
            raise TdslArgumentError(f"{where} must have rank {len(param.shape)} ({param.type_str}), "
                                    f"got shape {arr.shape}")
        if isinstance(arr, self.device_types):
            return arr   # the target makes it contiguous on its device
        flags = arr.flags   # compiled loops read whole, naturally aligned elements
        return arr if flags.c_contiguous and flags.aligned else _converted(arr, arr.dtype, where)

    def _from_python(self, value, target: str, where: str) -> np.ndarray:
        if type(value) is int and not -2**63 <= value < 2**64:   # NumPy makes it an object array
            if kind(target) != "float":
                raise TdslArgumentError(f"{where} has values outside the range of {target}")
            try:
                value = float(value)   # as NumPy does with a Python int too big for int64: np.add(2**70, 1.0)
            except OverflowError:      # np.float32(10**400) raises too
                raise TdslArgumentError(f"{where} is an integer too large for {target}") from None
        try:
            arr = np.asarray(value)
        except ValueError:
            raise TdslArgumentError(f"{where} is not a rectangular array") from None
        except (TypeError, OverflowError) as err:
            raise TdslArgumentError(f"{where} cannot be read as an array ({err})") from None
        src_kind = {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(arr.dtype.kind)
        if src_kind is None:
            raise TdslArgumentError(f"{where} has values of dtype {arr.dtype}, expected {target}")
        if arr.size == 0:
            src_kind = "bool"
        if _KIND_RANK[src_kind] > _KIND_RANK[kind(target)]:
            raise TdslArgumentError(f"{where} holds {src_kind} values, but the parameter is {target}",
                                    hint=f"convert them explicitly for a {target} parameter")
        if src_kind == "int" and kind(target) == "int":
            info = np.iinfo(to_numpy(target))
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise TdslArgumentError(f"{where} has values outside the range of {target}")
        return _converted(arr, to_numpy(target), where)

    def _sizes_of(self, var: str):
        return self._last_sizes.get(var, "?")

    def _sizes(self, arrays: list[np.ndarray]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        self._last_sizes = sizes
        for var, (i, axis) in self.first_seen.items():
            sizes[var] = arrays[i].shape[axis]
        for i, (p, arr) in enumerate(zip(self.params, arrays)):
            for axis, d in enumerate(p.shape):
                expected = d.evaluate(sizes)
                if arr.shape[axis] != expected:
                    self._size_error(p, axis, d, expected, arr.shape[axis])
        return sizes

    def _size_error(self, p, axis, d, expected, got):
        if not d.is_const and str(d) not in self.first_seen:   # a dim expression, `f32[n + 1]`
            bound = ", ".join(f"{v} = {self._sizes_of(v)}" for v in d.variables())
            raise TdslArgumentError(f"argument '{p.name}' of {self.call.name}() must have size {d} = {expected} "
                                    f"on axis {axis} ({p.type_str}; {bound}), got {got}")
        if d.is_const:
            raise TdslArgumentError(f"argument '{p.name}' of {self.call.name}() must have size {expected} "
                                    f"on axis {axis} ({p.type_str}), got {got}")
        j, first_axis = self.first_seen[str(d)]
        first = self.params[j]
        raise TdslArgumentError(f"{d} = {expected} from {first.name}, but {p.name} has {got} "
                                f"(axis {axis} of {p.name}: {p.type_str}, axis {first_axis} of "
                                f"{first.name}: {first.type_str})")

    def run_checks(self, sizes: dict[str, int]) -> None:
        for op, dim, message, loc in self.checks:
            value = dim.evaluate(sizes)
            if (op == ">=" and value < 0) or (op == "==" and value != 0):
                bound = ", ".join(f"{v} = {sizes[v]} from {self.params[self.first_seen[v][0]].name}"
                                  for v in dim.variables())
                raise TdslArgumentError(f"{message}, but {bound}", loc)

    # -- what the compiled targets' fast call path needs ----------------------------
    def fast_params(self) -> list[FastParam] | None:
        """Per parameter, what a value must be to skip conversion; None if a shape needs arithmetic.

        An array must be an exact-dtype, aligned, C-contiguous ndarray of the right rank whose
        axes are literal sizes or size variables; a scalar, a Python (or exact NumPy) scalar of
        its kind within range. Anything else takes `bind`, which converts it or raises.
        """
        var_index = {v: k for k, v in enumerate(self.call.size_vars)}
        if set(var_index) != set(self.first_seen):
            return None
        spec = []
        for i, p in enumerate(self.params):
            dtype = to_numpy(p.dtype)
            if not p.shape:
                spec.append(FastParam(False, dtype, 0, (), _FAST_SCALARS[p.dtype], *_RANGE.get(p.dtype, (None, None))))
                continue
            axes = []
            for axis, d in enumerate(p.shape):
                if d.is_const:
                    axes.append((axis, d.const, -1, False))
                elif str(d) in var_index and d == Dim.of(str(d)):
                    axes.append((axis, -1, var_index[str(d)], self.first_seen[str(d)] == (i, axis)))
                else:
                    return None
            spec.append(FastParam(True, dtype, len(p.shape), tuple(axes), (), None, None))
        return spec

    def check_out(self, out, shapes: list[tuple[int, ...]], dtypes: list[str]) -> list[np.ndarray]:
        """The `out=` buffers of a call: exact dtype and shape, C-contiguous, aligned, writable."""
        name = self.call.name
        buffers = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(buffers) != len(shapes):
            raise TdslArgumentError(f"out= of {name}() must hold {len(shapes)} array(s), got {len(buffers)}")
        for k, (buf, shape, dtype) in enumerate(zip(buffers, shapes, dtypes)):
            where = f"out= buffer {k} of {name}()" if len(shapes) > 1 else f"out= of {name}()"
            if not isinstance(buf, np.ndarray):
                raise TdslArgumentError(f"{where} must be a NumPy array, got {type(buf).__name__}")
            if buf.dtype != to_numpy(dtype) or buf.shape != tuple(shape):
                raise TdslArgumentError(f"{where} must be {dtype} of shape {tuple(shape)}, "
                                        f"got {buf.dtype} of shape {buf.shape}")
            flags = buf.flags
            if not (flags.c_contiguous and flags.aligned and flags.writeable):
                raise TdslArgumentError(f"{where} must be a writable, aligned, C-contiguous array")
        return buffers


def _converted(arr: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    """A C-contiguous copy of `arr` as `dtype`; a copy NumPy cannot make is an argument error."""
    try:
        return np.array(arr, dtype=dtype, order="C")
    except ValueError as err:   # "array is too big": a zero-size array may have huge dims
        raise TdslArgumentError(f"{where} of shape {arr.shape} cannot be converted to {dtype} ({err})") from None
    except MemoryError:
        raise TdslArgumentError(f"{where} of shape {arr.shape} does not fit in memory as {dtype}") from None


@dataclass(frozen=True)
class FastParam:
    """What `Binder.fast_params` asks of one argument."""

    array: bool
    dtype: np.dtype
    ndim: int
    axes: tuple[tuple[int, int, int, bool], ...]   # (axis, literal size or -1, size variable or -1, first)
    scalar_types: tuple[type, ...]
    low: int | None
    high: int | None


_FAST_SCALARS = {"f64": (float, np.float64), "f32": (float, np.float32), "i64": (int, np.int64),
                 "i32": (int, np.int32), "bool": (bool, np.bool_)}
_RANGE = {"i64": (-2**63, 2**63 - 1), "i32": (-2**31, 2**31 - 1)}
