"""tdsl: a small tensor language compiled to C and OpenCL, with NumPy semantics."""
from __future__ import annotations

from pathlib import Path

from .api import Var, function, grad, scalar, tensor
from .errors import (TdslArgumentError, TdslBuildError, TdslError, TdslRuntimeError, TdslSyntaxError,
                     TdslTypeError)
from .compiled import Function, Module
from .gradcheck import check_grad

__version__ = "0.1.0"
__all__ = ["load", "compile", "opencl_queue", "function", "grad", "check_grad", "scalar", "tensor", "Var", "Function", "Module",
           "TdslError", "TdslSyntaxError", "TdslTypeError", "TdslArgumentError", "TdslRuntimeError",
           "TdslBuildError", "__version__"]


def load(path, target: str = "c") -> Module:
    """Compile the .tdsl file at `path` for `target` ("c", "numpy" or "opencl")."""
    from .pipeline import compile_source
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TdslError(f"cannot read {path}: {err.strerror}") from None
    return compile_source(text, str(path), target)


def compile(source: str, target: str = "c", filename: str = "<string>") -> Module:  # noqa: A001
    """Compile .tdsl source text for `target`."""
    from .pipeline import compile_source
    return compile_source(source, filename, target)


def opencl_queue():
    """The pyopencl command queue the `opencl` target runs on: make device arrays for it.

    `pyopencl.array.to_device(tdsl.opencl_queue(), x)` puts `x` on the device; functions
    given device arrays return device arrays without a round trip through the host.
    """
    from tdsl.codegen.opencl_backend import default_queue
    return default_queue()


def __getattr__(name: str):
    """`tdsl.exp`, `tdsl.sum`, ...: every builtin of the language."""
    from . import builtins as _builtins
    from .api import make_builtin
    if name in _builtins.BUILDERS:
        fn = make_builtin(name)
        globals()[name] = fn
        return fn
    raise AttributeError(f"module 'tdsl' has no attribute '{name}'")
