"""The `c` target: lower -> fuse -> render -> build -> load; and the standalone C of `tdslc build -t c`.

    graphs --lower--> kernel IR --fuse--> fused kernel IR --render--> C text --build--> library --load--> runners

The pipeline (tdsl/pipeline.py) calls the stages of `TARGET`. A module loaded before
from the same text skips to the library (codegen/warm.py).
"""
from __future__ import annotations

import ctypes
import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np

from tdsl.dtypes import to_numpy
from tdsl.errors import TdslBuildError, TdslError, TdslRuntimeError
from tdsl.graph import FunctionGraph
from tdsl.callspec import CallSpec
from tdsl.runner import Runner as BaseRunner

from . import build, cache, warm
from .fastcall import SCALAR_TYPES, data_address

if TYPE_CHECKING:   # a warm load never lowers: the IR modules are imported where they are used
    from .kernels import ModuleIR


class CTarget:
    """The `c` target: lower -> fuse -> render -> build -> load, and OUT.c/OUT.h for `tdslc build`.

    A module built before from the same text loads its library without any stage (warm.py).
    """

    name = "c"
    standalone_suffixes = (".c", ".h")

    def __init__(self, debug: bool = False, profile: bool = False, guard: bool = False):
        self.debug = debug   # line-mapped C built with -g (docs/debugging.md)
        self.profile = profile   # functions that time their kernels (tdsl/profile.py)
        self.guard = guard   # the NaN guard's checks in the kernels (tdsl/nanguard.py)

    def debugging(self) -> CTarget:
        """The target building debug modules: C with `#line` directives naming the .tdsl lines,
        built with the debug flags (build.DEBUG_FLAGS), in cache entries of their own."""
        return DEBUG_TARGET

    def profiling(self) -> CTarget:
        """The target building profiling modules: each function times its calls and each of its
        kernels (`SYMBOL_profile` reads them); the usual flags, cache entries of their own (the
        C differs), no warm entries."""
        return PROFILE_TARGET

    def guarded(self) -> CTarget:
        """The target building guarded modules: each float op checks that it produces no NaN or
        infinity from finite operands (tdsl/nanguard.py); cache entries of their own (the C
        differs), no warm entries; a debug build stays one."""
        return DEBUG_GUARD_TARGET if self.debug else GUARD_TARGET

    def unavailable(self) -> str | None:
        try:
            cc = build.compiler()
        except TdslBuildError as err:   # TDSL_CC that cannot be read
            return err.message
        return None if cc and shutil.which(cc[0]) else f"no C compiler ({' '.join(cc)}) on this machine"

    def lower(self, graphs: list[FunctionGraph], prefix: str) -> ModuleIR:
        build.prefetch_features()   # a first load probes the compiler while it lowers and renders
        from .fuse import fuse_module
        from .lower import lower_module
        module = fuse_module(lower_module(graphs, symbol_prefix(prefix), guard=self.guard))
        from .cexpr import function_symbols
        from .kernels import with_symbols
        return with_symbols(module, function_symbols([g.name for g in graphs], module.prefix))

    def render(self, module: ModuleIR) -> str:
        from .render import generated_lines, render_module
        text = render_module(module, debug=self.debug, profile=self.profile)[0]
        if not self.debug:
            return text
        # the generated code's own lines are named by the file the cache keeps the C in
        return generated_lines(text, str(self._library(text, module).with_suffix(".c")))

    def build(self, module: ModuleIR, source: str) -> Built:
        if self.debug:   # keyed by the C before it names its own file (see `render`)
            from .render import render_module
            path = self._library(render_module(module, debug=True)[0], module)
        else:
            path = build.library_path(source, module.prefix)
        return Built(build.load_library(source, module.prefix, path), path, source)

    def _library(self, text: str, module: ModuleIR) -> Path:
        return build.library_path(text, module.prefix, debug=self.debug)

    def load(self, module: ModuleIR, built: Built) -> dict[str, Runner]:
        attach_blas(built.library, module.prefix)
        return {call.name: Runner(built.library, call, built.source, module.prefix) for call in module.calls}

    def remember(self, text: str, path: str, graphs: list, module: ModuleIR, built: Built) -> None:
        """Keep a warm entry for `text`; one that cannot be written (a full disk) only costs the next
        load its warm start. A debug or profiling build keeps none (a warm entry does not say it
        is one)."""
        if self.debug or self.profile or self.guard:
            return
        try:
            warm.remember(text, path, graphs, module.calls, built.path, module.prefix)
        except (OSError, TdslError):
            pass

    def recall(self, text: str, path: str) -> list | None:
        """[(graph, runner)] of a module this cache has built from `text` before, or None (a
        first load follows: the compiler's features are probed meanwhile, if not known). A debug
        build recalls nothing: its library is found in the cache after rendering."""
        loaded = None if self.debug or self.profile or self.guard else self._recall(text, path)
        if loaded is None:
            build.prefetch_features()
        return loaded

    def _recall(self, text: str, path: str) -> list | None:
        found = warm.recall(text, path)
        if found is None:
            return None
        graphs, calls, library_name, prefix = found
        library_path = cache.cache_dir() / library_name   # a plain file name (warm.valid_library_name)
        kept = cache.read_small(library_path.with_suffix(".c"), warm.LIMIT)
        try:
            source = None if kept is None else kept.decode("utf-8")
        except UnicodeDecodeError:
            return None
        library = None if source is None else build.load_built(library_path)
        if library is None:
            return None
        attach_blas(library, prefix)
        return [(g, Runner(library, call, source, prefix)) for g, call in zip(graphs, calls)]

    def emit(self, graphs: list[FunctionGraph], prefix: str) -> dict[str, str]:
        """OUT.c and OUT.h: plain C99 (libm, OpenMP when compiled with it) with no Python."""
        from .render import render_module
        c_text, h_text = render_module(self.lower(graphs, prefix), standalone_header=True)
        return {".c": c_text, ".h": h_text}


@dataclass(frozen=True)
class Built:
    """A built module: the loaded library, its file and the C it was built from."""

    library: ctypes.CDLL
    path: Path
    source: str


def attach_blas(library: ctypes.CDLL, prefix: str) -> None:
    """Hand the module NumPy's BLAS for its float matmuls (see codegen/blas.py)."""
    from .blas import gemm_pointers, share_threads
    pointers = gemm_pointers()
    setter = getattr(library, f"{prefix}_set_blas", None)
    if pointers is not None and setter is not None:
        setter.restype = None
        setter.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        setter(*pointers)
        share_threads(library, prefix)


def emit_standalone(graphs: list[FunctionGraph], prefix: str) -> tuple[str, str]:
    """OUT.c and OUT.h as a pair (what `TARGET.emit` writes)."""
    files = TARGET.emit(graphs, prefix)
    return files[".c"], files[".h"]


def symbol_prefix(name: str) -> str:
    """A C identifier to start every exported symbol with: `m_` goes before one that C reserves
    (`_x`), that starts with a digit, or that would make tdsl's own names (`tdsl_*`)."""
    prefix = re.sub(r"\W", "_", name, flags=re.ASCII) or "module"
    own = prefix[0].isdigit() or prefix[0] == "_" or prefix.lower() == "tdsl" or prefix.lower().startswith("tdsl_")
    return "m_" + prefix if own else prefix


# The comment lines templates/c/module.c.j2 writes around each function and each loop or
# branch body (a C symbol each), so that a function's own part of the module can be shown.
_PART = re.compile(r"^/\* tdsl:begin (\w+) \*/\n(.*?)^/\* tdsl:end \1 \*/$", re.MULTILINE | re.DOTALL)


def function_source(source: str, symbol: str) -> str:
    """The part of a module's C that is the function `symbol`'s own: its body and entry points,
    after the loop and branch bodies it calls (nested ones too), without the prelude the module's
    functions share. The whole source where it has no such part (C of an older tdsl)."""
    parts = {m.group(1): m.group(2).strip("\n") for m in _PART.finditer(source)}
    if symbol not in parts:
        return source
    wanted = {symbol}
    todo = [symbol]
    while todo:   # the bodies a part calls: `tdsl_region_N(` (names tdsl keeps for itself)
        text = parts[todo.pop()]
        for name in parts:
            if name not in wanted and name.startswith("tdsl_region_") and \
                    re.search(rf"\b{name}\(", text):
                wanted.add(name)
                todo.append(name)
    return "\n\n".join(text for name, text in parts.items() if name in wanted) + "\n"


class Runner(BaseRunner):
    """Calls one compiled function: arrays in parameter order and sizes in, result arrays out."""

    writes_into = True   # __call__ takes `outs`, caller-checked buffers for the results

    def __init__(self, library: ctypes.CDLL, call: CallSpec, source: str, prefix: str = ""):
        self.library = library            # keeps the library loaded
        self.prefix = prefix
        self.failed_index = getattr(library, f"{prefix}_failed_index", None) if prefix else None
        self.noted_index = getattr(library, f"{prefix}_noted_index", None) if prefix else None
        for getter in (self.failed_index, self.noted_index):
            if getter is not None:
                getter.restype, getter.argtypes = ctypes.c_int64, []
        self.call = call
        self.module_source = source   # the whole module's C; `source` is this function's part
        self._source: str | None = None
        self.cfunc = getattr(library, call.symbol)
        self.cfunc.restype = ctypes.c_int
        self.cfunc.argtypes = ([ctypes.c_int64] * len(call.size_vars)
                               + [ctypes.c_void_p if p.shape else SCALAR_TYPES[p.dtype] for p in call.params]
                               + [ctypes.c_void_p] * len(call.outputs))
        self.size_vars = call.size_vars
        self.scalar = [not p.shape for p in call.params]
        # result shapes with literal sizes as ints: the fast paths test `type(d) is int`
        self.outputs = [(tuple(d.const if d.is_const else d for d in shape), to_numpy(dtype))
                        for shape, dtype in call.outputs]
        self.output_dtypes = [dtype for _, dtype in call.outputs]
        self.errors = call.errors
        packed = getattr(library, call.symbol + "_packed", None)   # absent from libraries of older tdsl builds
        self.packed_entry = ctypes.cast(packed, ctypes.c_void_p).value if packed is not None else None

    @property
    def source(self) -> str:
        """The function's own C (`function_source`), worked out on first use."""
        if self._source is None:
            self._source = function_source(self.module_source, self.call.symbol)
        return self._source

    def output_shapes(self, sizes: dict) -> list[tuple[int, ...]]:
        return [tuple(d if type(d) is int else d.evaluate(sizes) for d in shape) for shape, _ in self.outputs]

    def __call__(self, arrays: list, sizes: dict, outs: list | None = None) -> list[np.ndarray]:
        args = [sizes[v] for v in self.size_vars]
        for arr, scalar in zip(arrays, self.scalar):
            args.append(arr.item() if scalar else data_address(arr))
        if outs is None:
            outs = [np.empty(shape, dtype) for shape, (_, dtype) in zip(self.output_shapes(sizes), self.outputs)]
        args.extend(data_address(o) for o in outs)
        code = self.cfunc(*args)
        if code:
            raise self.error(code, sizes)
        return outs

    def fast_call(self, binder, tuple_result: bool, checked, takes_out: bool):
        """A call path for arguments that need no conversion (see `Binder.fast_params`), or None."""
        from .fastcall import make_fast_call
        return make_fast_call(self, binder, tuple_result, checked, takes_out)

    # -- a profiling build's tables (templates/c/module.c.j2, tdsl/profile.py) ------------------
    def _profile_table(self, fn, top: bool) -> tuple[list[int], list[int], int]:
        from .render import profile_getter, region_symbol
        symbol = self.call.symbol if top else region_symbol(fn)
        getter = getattr(self.library, profile_getter(self.prefix, symbol, top))
        getter.restype = ctypes.c_int64
        getter.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
        count = 2 * (len(fn.kernels) + 1)
        table = (ctypes.c_uint64 * count)()
        getter(table, count, 1)
        return list(table[2::2]), list(table[3::2]), table[0]

    def profile_read(self, fn) -> tuple[dict, int | None]:
        """The times a profiling build took since the last read (which zeroes them): {id of the
        function's or a loop or branch body's IR: (ns per kernel, calls per kernel)}, and the
        ns of the whole calls."""
        ns, calls, whole = self._profile_table(fn, True)
        tables = {id(fn): (ns, calls)}
        stack = [b for k in fn.kernels if k.kind == "region" for b in k.bodies]
        while stack:
            body = stack.pop()
            tables[id(body)] = self._profile_table(body, False)[:2]
            stack += [b for k in body.kernels if k.kind == "region" for b in k.bodies]
        return tables, whole

    def profile_finish(self) -> None:
        """A call returns when its work is done: nothing to wait for."""

    def error(self, code: int, sizes: dict) -> TdslRuntimeError:
        entry = self.errors[code - 1] if 0 < code <= len(self.errors) else None
        if entry is not None and entry.index is not None and self.failed_index is not None:
            sizes = {**sizes, entry.index: self.failed_index()}   # the loop index where it failed
        value = self.noted_index() if entry is not None and entry.value and self.noted_index else None
        return self.errors.error(code, sizes, value=value)


TARGET = CTarget()
DEBUG_TARGET = CTarget(debug=True)
PROFILE_TARGET = CTarget(profile=True)
GUARD_TARGET = CTarget(guard=True)
DEBUG_GUARD_TARGET = CTarget(debug=True, guard=True)
