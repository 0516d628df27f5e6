"""tdsl: a small tensor language compiled to C and OpenCL, with NumPy semantics."""
from __future__ import annotations

from math import e, inf, nan, pi
from pathlib import Path

from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING

from .errors import (TdslArgumentError, TdslBuildError, TdslError, TdslRuntimeError, TdslSyntaxError,
                     TdslTypeError, TdslWarning)
from .errors import public_entry as _public_entry
from .version import __version__

if TYPE_CHECKING:
    from .compiled import Module

# Loaded on first use, so that importing one part (`tdsl.codegen.cache`, `tdsl.errors`) does not
# load the front end, autodiff and the builder API with it.
_LAZY = {"Var": "api", "function": "api", "grad": "api", "scalar": "api", "tensor": "api",
         "Function": "compiled", "Module": "compiled", "check_grad": "gradcheck",
         "fori_loop": "api", "while_loop": "api", "cond": "api"}
__all__ = ["load", "compile", "opencl_queue", "function", "grad", "check_grad", "scalar", "tensor", "Var", "Function", "Module",
           "fori_loop", "while_loop", "cond",
           "TdslError", "TdslSyntaxError", "TdslTypeError", "TdslArgumentError", "TdslRuntimeError",
           "TdslBuildError", "TdslWarning", "__version__", "inf", "nan", "pi", "e"]


@_public_entry
def load(path, target: str = "c", debug: bool | None = None, nan_guard: bool | None = None) -> Module:
    """Compile the .tdsl file at `path` for `target` ("c", "numpy" or "opencl"). `debug=True`:
    line-mapped native code built for gdb and the sanitizers (None: TDSL_DEBUG); `nan_guard=True`:
    every call stops at the first value born NaN or infinite (None: TDSL_NAN_GUARD; docs/debugging.md)."""
    from .pipeline import compile_source
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TdslError(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise TdslError(f"cannot read {path}: not UTF-8 text (byte {err.start})") from None
    return compile_source(text, str(path), target, debug=debug, nan_guard=nan_guard)


@_public_entry
def compile(source: str, target: str = "c", filename: str = "<string>",  # noqa: A001
            debug: bool | None = None, nan_guard: bool | None = None) -> Module:
    """Compile .tdsl source text for `target` (`debug`, `nan_guard`: as for `load`)."""
    from .pipeline import compile_source
    return compile_source(source, filename, target, debug=debug, nan_guard=nan_guard)


def opencl_queue():
    """The pyopencl command queue the `opencl` target runs on: make device arrays for it.

    `pyopencl.array.to_device(tdsl.opencl_queue(), x)` puts `x` on the device; functions
    given device arrays return device arrays without a round trip through the host.
    """
    from tdsl.codegen.opencl_backend import default_queue
    return default_queue()


def load_ipython_extension(ip) -> None:
    """`%load_ext tdsl` in IPython or Jupyter: the `%%tdsl` cell magic (tdsl.ipython)."""
    from .ipython import load_ipython_extension as load
    load(ip)


def __getattr__(name: str):
    """The API's names on first use; `tdsl.exp`, `tdsl.sum`, ...: every builtin of the language."""
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if find_spec(f"{__name__}.{name}") is None:   # a submodule is imported, never looked up here
        builtins = import_module(".builtins", __name__)
        if name in builtins.BUILDERS:
            fn = import_module(".api", __name__).make_builtin(name)
            globals()[name] = fn
            return fn
    raise AttributeError(f"module 'tdsl' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
