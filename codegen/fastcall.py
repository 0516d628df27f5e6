"""The call fast path of compiled functions: arguments that need no conversion go straight to C.

Calling a `Function` calls it first. It accepts exact-dtype, aligned, C-contiguous
ndarrays and Python (or exact NumPy) scalars, checks their ranks and sizes, and
passes anything else, or a call whose checks fail, to the checked path
(`Binder.bind`), which converts the value or raises the error naming it.

It comes in two layers that accept exactly the same calls. The outer one is
`tdsl.codegen._callpath.FastCall` (codegen/_callpath.c), a C extension that calls
the function's packed entry; it declines what it does not take (such as `out=`)
to the inner one, Python source written for the signature that calls the C
function through ctypes. Where the extension was not built, the Python layer is
the fast path; the results are the same, each call about a microsecond slower.
"""
from __future__ import annotations

import ctypes
import os
import platform
from typing import Callable

import numpy as np

from tdsl.dims import Dim
from tdsl.dtypes import to_numpy
from tdsl.errors import TdslError, hide_internal_frames

from .host import REUSE_MIN_BYTES, Spare

SCALAR_TYPES = {"bool": ctypes.c_bool, "i32": ctypes.c_int32, "i64": ctypes.c_int64,
                "f32": ctypes.c_float, "f64": ctypes.c_double}


def _address_reader() -> Callable[[np.ndarray], int]:
    """How to read an ndarray's data pointer: `arr.ctypes.data` costs about 1 us a call.

    In CPython an ndarray's `data` field follows the object header (NumPy's
    PyArrayObject_fields), so reading it at `id(arr) + header size` is 5-10 times
    faster; it is used only when it gives the same answer as `ctypes.data` here.
    """
    def slow(arr: np.ndarray) -> int:
        return arr.ctypes.data
    if platform.python_implementation() != "CPython":
        return slow
    offset, read = object.__basicsize__, ctypes.c_void_p.from_address
    probes = [np.arange(3.0), np.empty((2, 0), np.int32), np.arange(12, dtype=np.float32)[4:]]
    if any(read(id(p) + offset).value != p.ctypes.data for p in probes):
        return slow

    def fast(arr: np.ndarray) -> int:
        return read(id(arr) + offset).value or 0
    return fast


data_address = _address_reader()


def _native_call_path():
    """The `_callpath` extension, if it was built and reads ndarrays as NumPy lays them out here."""
    if os.environ.get("TDSL_NATIVE_CALL", "") == "0":
        return None
    try:
        from . import _callpath
    except ImportError:
        return None
    probes = [np.arange(3.0), np.empty((2, 0), np.int32), np.arange(12, dtype=np.float32)[4:],
              np.ones((3, 4), np.bool_).T, np.zeros(5, np.int64)[::2]]
    for p in probes:
        data, ndim, shape, flags, dtype = _callpath.probe(p)
        c_contiguous, aligned = bool(flags & 0x1), bool(flags & 0x100)
        if (data != p.ctypes.data or ndim != p.ndim or shape != p.shape or dtype is not p.dtype
                or c_contiguous != p.flags.c_contiguous or aligned != p.flags.aligned):
            return None
    return _callpath


native = _native_call_path()
SCALAR_KINDS = {"bool": 0, "i32": 1, "i64": 2, "f32": 3, "f64": 4}   # SCALAR_* of _callpath.c
NUMPY_KINDS = {to_numpy(name): kind for name, kind in SCALAR_KINDS.items()}


def native_fast_call(runner, binder, params, tuple_result: bool, fallback: Callable) -> Callable | None:
    """The C layer of the fast path (codegen/_callpath.c), or None where it does not apply.

    It applies when the extension is there, the library has the function's packed
    entry, the call needs no size checks beyond the parameters' own, and each result
    size is a literal or a size variable.
    """
    entry = runner.packed_entry
    if native is None or not entry or binder.checks:
        return None
    size_vars = list(runner.size_vars)
    outputs = []
    for (shape, dtype), name in zip(runner.outputs, runner.output_dtypes):
        dims = []
        for d in shape:
            if type(d) is int:
                dims.append(d)
            elif str(d) in size_vars and d == Dim.of(str(d)):
                dims.append(-1 - size_vars.index(str(d)))
            else:
                return None
        outputs.append((dtype, dtype.itemsize, tuple(dims), dtype.type, SCALAR_KINDS[name]))
    specs = []
    for p in params:
        if p.array:
            specs.append(("array", p.dtype, p.ndim, tuple((a, lit, var, int(first)) for a, lit, var, first in p.axes), None))
        else:
            specs.append(("scalar", NUMPY_KINDS[p.dtype], tuple(p.scalar_types), p.low, p.high))
    too_many = len(size_vars) + len(specs) + len(outputs) > 64   # MAX_SLOTS of _callpath.c
    if too_many or any(len(o[2]) > 32 for o in outputs) or any(p.ndim > 32 for p in params):   # MAX_RANK
        return None

    def raise_error(code: int, sizes: tuple) -> None:
        try:
            raise runner.error(code, dict(zip(size_vars, sizes)))
        except TdslError as err:   # the C layer adds no frame: the user's line is the next one up
            hide_internal_frames(err)
            raise
    return native.FastCall(entry, runner.library, len(size_vars), tuple(specs), tuple(outputs),
                           tuple_result, REUSE_MIN_BYTES if Spare.enabled else 0, fallback, raise_error)


def make_fast_call(runner, binder, tuple_result: bool, checked: Callable, takes_out: bool) -> Callable | None:
    """`call(*args, **kwargs)`: the compiled function's results, via `checked` for what it does not take.

    The function is Python source written for this signature (as `dataclasses` writes
    `__init__`): a call is then a handful of type and size tests and one ctypes call,
    about 1 us, where a generic loop over the parameters costs several. `out` buffers
    are used when they are exactly right and overlap no input. Anything else (another
    keyword, a value to convert, a size that does not match) goes to `checked`, the
    call path that converts or raises the error naming the argument.
    """
    params = binder.fast_params()
    if params is None:
        return None
    source, env = FastCallSource(params, runner, binder, tuple_result).source(takes_out)
    env["checked"] = checked
    namespace: dict = {}
    exec(compile(source, f"<tdsl fast call of {binder.call.name}>", "exec"), env, namespace)  # noqa: S102
    call = namespace["call"]
    call.source = source
    return native_fast_call(runner, binder, params, tuple_result, call) or call


class FastCallSource:
    """The Python source of one function's fast call, and the names it uses."""

    def __init__(self, params, runner, binder, tuple_result: bool):
        self.params, self.runner, self.binder, self.tuple_result = params, runner, binder, tuple_result
        self.sizes = [f"s{k}" for k in range(len(runner.size_vars))]
        self.named = "{" + ", ".join(f"{v!r}: {s}" for v, s in zip(runner.size_vars, self.sizes)) + "}"
        self.env = dict(ndarray=np.ndarray, empty=np.empty, address=data_address, addressof=ctypes.addressof,
                        cfunc=runner.cfunc, error=runner.error, run_checks=binder.run_checks)
        self.arrays: list[str] = []   # the addresses of array arguments, for the overlap test

    def source(self, takes_out: bool) -> tuple[str, dict]:
        n = len(self.params)
        lines = ["def call(*args, **kwargs):", "    out = None", "    if kwargs:"]
        lines += ['        if len(kwargs) != 1 or "out" not in kwargs:', "            return None",
                  '        out = kwargs["out"]'] if takes_out else ["        return None"]
        lines += [f"    if len(args) != {n}:", "        return None"]
        if n:
            lines.append("    " + "".join(f"a{i}, " for i in range(n)) + "= args")
        cargs = []
        for i, p in enumerate(self.params):
            lines += self.scalar(i, p) if not p.array else self.array(i, p)
            cargs.append(f"a{i}" if not p.array else f"p{i}")
        if self.binder.checks:
            lines.append(f"    run_checks({self.named})")
        outs = [f"q{k}" for k in range(len(self.runner.outputs))]
        lines += ["    if out is None:"] + self.fresh_outputs() + ["    else:"] + self.given_outputs()
        lines += [f"    code = cfunc({', '.join(self.sizes + cargs + outs)})",
                  "    if code:",
                  f"        raise error(code, {self.named})"]
        arrays = [k for k, (shape, _) in enumerate(self.runner.outputs) if shape]
        if arrays:
            lines += ["    if out is None:"] + [f"        spare{k}.keep(o{k})" for k in arrays]
        lines.append(f"    return {self.results()}")
        # the text above declines with `return None`: the checked path takes over there
        lines = [line.replace("return None", "return checked(*args, **kwargs)") for line in lines]
        # A TdslError leaves with tdsl's frames cut (as from `tdsl.load`): only in the `except`
        # clause, so a call that succeeds pays nothing for it; the bare `raise` adds no frame.
        lines = lines[:1] + ["    try:"] + ["    " + line for line in lines[1:]] + [
            "    except TdslError as err:", "        hide(err)", "        raise"]
        self.env.update(TdslError=TdslError, hide=hide_internal_frames)
        return "\n".join(lines) + "\n", self.env

    def scalar(self, i: int, p) -> list[str]:
        self.env[f"T{i}"] = p.scalar_types
        bounds = f" or not {p.low} <= a{i} <= {p.high}" if p.low is not None else ""
        return [f"    if type(a{i}) not in T{i}{bounds}:", "        return None"]

    def array(self, i: int, p) -> list[str]:
        self.env[f"D{i}"] = p.dtype
        lines = [f"    if type(a{i}) is not ndarray or a{i}.dtype is not D{i} or a{i}.ndim != {p.ndim}:",
                 "        return None",
                 f"    flags = a{i}.flags",
                 "    if not (flags.c_contiguous and flags.aligned):",
                 "        return None"]
        if p.axes:
            lines.append(f"    shape = a{i}.shape")
        for axis, literal, var, first in p.axes:
            if first:
                lines.append(f"    s{var} = shape[{axis}]")
            else:
                lines += [f"    if shape[{axis}] != {literal if var < 0 else f's{var}'}:", "        return None"]
        self.arrays.append(i)
        return lines + [f"    p{i} = address(a{i})"]

    def shape(self, k: int, shape: tuple) -> str:
        """The Python expression of result k's shape."""
        size_vars = self.runner.size_vars
        dims = [str(d) if type(d) is int else self.sizes[size_vars.index(str(d))] if str(d) in size_vars else None
                for d in shape]
        if None not in dims:
            return "(" + ", ".join(dims) + ",)" if dims else "()"
        self.env[f"E{k}"] = shape   # a size computed from size variables
        return f"tuple(d if type(d) is int else d.evaluate({self.named}) for d in E{k})"

    def fresh_outputs(self) -> list[str]:
        lines = []
        for k, ((shape, dtype), name) in enumerate(zip(self.runner.outputs, self.runner.output_dtypes)):
            if shape:
                self.env[f"O{k}"], self.env[f"spare{k}"] = dtype, Spare()
                lines += ["        try:", f"            o{k} = spare{k}.take({self.shape(k, shape)}, O{k})",
                          "        except (ValueError, MemoryError):",   # the checked path names the value
                          "            return None", f"        q{k} = address(o{k})"]
            else:
                self.env[f"C{k}"], self.env[f"R{k}"] = SCALAR_TYPES[name], to_numpy(name).type
                lines += [f"        o{k} = C{k}()", f"        q{k} = addressof(o{k})"]
        return lines

    def given_outputs(self) -> list[str]:
        count = len(self.runner.outputs)
        if self.tuple_result:
            lines = [f"        if type(out) is not tuple or len(out) != {count}:", "            return None",
                     "        " + "".join(f"o{k}, " for k in range(count)) + "= out"]
        else:
            lines = ["        o0 = out"]
        for k, (shape, dtype) in enumerate(self.runner.outputs):
            self.env[f"O{k}"] = dtype
            lines += [f"        if type(o{k}) is not ndarray or o{k}.dtype is not O{k} or "
                      f"o{k}.shape != {self.shape(k, shape)}:",
                      "            return None",
                      f"        flags = o{k}.flags",
                      "        if not (flags.c_contiguous and flags.aligned and flags.writeable):",
                      "            return None",
                      f"        q{k} = address(o{k})"]
            others = [(f"p{i}", f"a{i}") for i in self.arrays] + [(f"q{j}", f"o{j}") for j in range(k)]
            for start, arr in others:   # contiguous buffers overlap when their byte ranges do
                lines += [f"        if q{k} < {start} + {arr}.nbytes and {start} < q{k} + o{k}.nbytes:",
                          "            return None"]
        return lines

    def results(self) -> str:
        scalars = [k for k, (shape, _) in enumerate(self.runner.outputs) if not shape]
        fresh = [f"R{k}(o{k}.value)" if k in scalars else f"o{k}" for k in range(len(self.runner.outputs))]
        if not scalars:
            return "(" + ", ".join(fresh) + ",)" if self.tuple_result else fresh[0]
        if self.tuple_result:
            return f"({', '.join(fresh)},) if out is None else out"
        return f"{fresh[0]} if out is None else out"
