"""The `c` target: lower -> render -> build -> load; and the standalone C of `tdslc build -t c`.

    graphs --lower--> kernel IR --render--> C text --build--> shared library --load--> runners
"""
from __future__ import annotations

import ctypes
import re

import numpy as np

from tdsl.dtypes import to_numpy
from tdsl.errors import TdslRuntimeError
from tdsl.graph import FunctionGraph

from .build import load_library
from .kernels import ErrorInfo, FunctionIR
from .lower import lower_module
from .render import render_module

SCALAR_TYPES = {"bool": ctypes.c_bool, "i32": ctypes.c_int32, "i64": ctypes.c_int64,
                "f32": ctypes.c_float, "f64": ctypes.c_double}


def load(graphs: list[FunctionGraph], module_name: str) -> dict:
    """Compile a module's functions to one shared library: {name: (runner, C source)}."""
    prefix = symbol_prefix(module_name)
    module = lower_module(graphs, prefix)
    source, _ = render_module(module)
    library = load_library(source, prefix)
    return {fn.name: (Runner(library, fn, module.errors, prefix), source) for fn in module.functions}


def emit_standalone(graphs: list[FunctionGraph], prefix: str) -> tuple[str, str]:
    """OUT.c and OUT.h: plain C99 (libm, OpenMP when compiled with it) with no Python."""
    module = lower_module(graphs, symbol_prefix(prefix))
    return render_module(module, standalone_header=True)


def symbol_prefix(name: str) -> str:
    """A C identifier to start every exported symbol with."""
    prefix = re.sub(r"\W", "_", name, flags=re.ASCII) or "module"
    return "m_" + prefix if prefix[0].isdigit() else prefix


class Runner:
    """Calls one compiled function: arrays in parameter order and sizes in, new result arrays out."""

    def __init__(self, library: ctypes.CDLL, fn: FunctionIR, errors: tuple[ErrorInfo, ...], prefix: str):
        self.library = library            # keeps the library loaded
        self.cfunc = getattr(library, f"{prefix}_{fn.name}")
        self.cfunc.restype = ctypes.c_int
        self.cfunc.argtypes = ([ctypes.c_int64] * len(fn.size_vars)
                               + [SCALAR_TYPES[p.dtype] if p.is_scalar else ctypes.c_void_p for p in fn.params]
                               + [ctypes.c_void_p] * len(fn.outputs))
        self.size_vars = fn.size_vars
        self.scalar = [p.is_scalar for p in fn.params]
        self.outputs = [(tuple(d.const if d.is_const else d for d in o.shape), to_numpy(o.dtype))
                        for o in fn.outputs]
        self.errors = errors

    def __call__(self, arrays: list, sizes: dict) -> list[np.ndarray]:
        args = [sizes[v] for v in self.size_vars]
        for arr, scalar in zip(arrays, self.scalar):
            args.append(arr.item() if scalar else arr.__array_interface__["data"][0])
        outs = [np.empty(tuple(d if type(d) is int else d.evaluate(sizes) for d in shape), dtype)
                for shape, dtype in self.outputs]
        args.extend(o.__array_interface__["data"][0] for o in outs)
        code = self.cfunc(*args)
        if code:
            raise self.error(code, sizes)
        return outs

    def error(self, code: int, sizes: dict) -> TdslRuntimeError:
        if not 0 < code <= len(self.errors):
            return TdslRuntimeError(f"the compiled function failed with error code {code}")
        info = self.errors[code - 1]
        message = info.message
        if info.extent is not None:
            message = message.replace("{extent}", str(info.extent.evaluate(sizes)))
        return TdslRuntimeError(message, info.loc)
