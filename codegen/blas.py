"""Float matmuls through the BLAS NumPy uses: the C call of a matmul kernel, and finding the BLAS.

A tdsl build (not the standalone C) compiles with `TDSL_BLAS`: each module then
holds null `cblas_?gemm` pointers and exports `<prefix>_set_blas`, which the loader
calls with the ILP64 CBLAS of NumPy's OpenBLAS. A matmul kernel whose operands are
plain loads of row-major (or transposed) matrices calls it when the pointer is set
and the strides suit BLAS, and otherwise runs its loops: the results are then those
of `numpy.matmul` (the same routine), and the standalone C needs no BLAS.
"""
from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
GEMM = {"f32": ("tdsl_sgemm", "f"), "f64": ("tdsl_dgemm", "")}


def blas_call(k, names, index) -> SimpleNamespace | None:
    """The BLAS call computing matmul kernel `k` and the runtime condition for it, or None.

    `index` renders an index (the kernel's Body.index); the call goes inside the batch loops.
    """
    dtype = k.out.dtype
    if dtype not in GEMM or not all(_plain(x, dtype) for x in (k.lhs, k.rhs)):
        return None
    row, col, inner = k.loops[-1], k.col, k.inner
    lhs = _matrix(k.lhs.offset, row.var, inner.var)
    rhs = _matrix(k.rhs.offset, inner.var, col.var)
    out = _matrix(k.out_index, row.var, col.var)
    if lhs is None or rhs is None or out is None or out[1] != "":
        return None
    m, n, kk = (names.dim(l.extent) for l in (row, col, inner))
    dim = names.dim
    (a_trans, lda), (b_trans, ldb), c_major = _layout(*lhs), _layout(*rhs), out[0]
    if a_trans is None or b_trans is None or c_major == "":
        return None
    lda, ldb, ldc = dim(lda), dim(ldb), dim(c_major)
    a_cols, b_cols = (kk if a_trans == NO_TRANS else m), (n if b_trans == NO_TRANS else kk)
    function, suffix = GEMM[dtype]
    strides = [f"({ld}) >= ({cols})" for ld, cols in ((lda, a_cols), (ldb, b_cols), (ldc, n)) if ld != cols]
    cond = " && ".join([function, f"{m} > 0", f"{n} > 0", f"{kk} > 0"] + strides)
    base = lambda buf, aff, *vs: names.buffer(buf) + _base(aff, vs, index)  # noqa: E731
    call = (f"{function}({ROW_MAJOR}, {a_trans}, {b_trans}, {m}, {n}, {kk}, 1.0{suffix}, "
            f"{base(k.lhs.buffer, k.lhs.offset, row.var, inner.var)}, {lda}, "
            f"{base(k.rhs.buffer, k.rhs.offset, inner.var, col.var)}, {ldb}, 0.0{suffix}, "
            f"{base(k.out, k.out_index, row.var, col.var)}, {ldc});")
    return SimpleNamespace(cond=cond, call=call)


def _plain(x, dtype: str) -> bool:
    from .kernels import Gather, Load   # here: loading a module (gemm_pointers) needs no IR
    return isinstance(x, Load) and x.dtype == dtype and not x.buffer.is_scalar and \
        not any(isinstance(a, Gather) for a, _ in x.offset.terms)


def _layout(major, minor) -> tuple:
    """(transpose flag, leading dimension): NoTrans for unit stride along the second index."""
    if minor == "" and major != "":
        return NO_TRANS, major
    if major == "" and minor != "":
        return TRANS, minor
    return None, None


def _matrix(aff, first: str, second: str) -> tuple | None:
    """The strides along `first` and `second` ("" for a unit stride), None if not a strided matrix."""
    if not all(isinstance(atom, str) for atom, _ in aff.terms):
        return None
    strides = []
    for var in (first, second):
        coef = aff.coef(var)
        if coef == 0:
            return None
        strides.append("" if coef == 1 else coef)
    return tuple(strides)


def _base(aff, loop_vars, index) -> str:
    rest = aff
    for var in loop_vars:
        rest = rest.without(var)
    return "" if rest.is_zero else f" + ({index(rest)})"


@lru_cache(maxsize=None)
def _openblas() -> tuple[ctypes.CDLL, str] | None:
    """NumPy's OpenBLAS (already loaded by NumPy, so the same copy) and its symbols' prefix."""
    import numpy
    root = Path(numpy.__file__).parent
    candidates = sorted(glob.glob(str(root.parent / "numpy.libs" / "*openblas*")) +
                        glob.glob(str(root / ".dylibs" / "*openblas*")))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_cblas_", "cblas_"):
            if hasattr(lib, f"{prefix}sgemm64_") and hasattr(lib, f"{prefix}dgemm64_"):
                return lib, prefix
    return None


@lru_cache(maxsize=None)
def gemm_pointers() -> tuple[int, int] | None:
    """Addresses of the ILP64 `cblas_sgemm` and `cblas_dgemm` of NumPy's OpenBLAS, if it has them.

    `TDSL_BLAS=0` turns BLAS off (every matmul then runs tdsl's own loops).
    """
    if os.environ.get("TDSL_BLAS", "") == "0":
        return None
    found = _openblas()
    if found is None:
        return None
    lib, prefix = found
    s, d = getattr(lib, f"{prefix}sgemm64_"), getattr(lib, f"{prefix}dgemm64_")
    return ctypes.cast(s, ctypes.c_void_p).value, ctypes.cast(d, ctypes.c_void_p).value


# -- one pool of threads: OpenBLAS's parallel jobs on tdsl's OpenMP threads ---------------------
#
# After each threaded BLAS call, OpenBLAS's own threads spin for about 0.1 s (2^28 cycles: its
# THREAD_TIMEOUT, read once when NumPy loads it) and hold a core, so a tdsl kernel that runs next
# on two threads finds one of its cores shared: the logistic step took 6.5 ms right after NumPy's
# BLAS and 3.2 ms alone (docs/performance.md). OpenBLAS (0.3.27 and later) can hand its jobs to a
# callback instead of its pool; each module built with OpenMP exports one (`PREFIX_blas_threads`,
# templates/c/prelude.c.j2) that runs them on the module's OpenMP team, whose idle threads sleep.
# The first such module loaded installs it, for the whole process; a forked child goes back to
# OpenBLAS's pool (libgomp cannot run a team in a child forked after its team has run).
# TDSL_SHARE_BLAS_THREADS=0 leaves OpenBLAS's pool alone.

_SHARED: list = []   # [the module library whose callback is installed, its prefix, the setter]
_FORK_HOOK: list = []   # [True] once the fork handler is registered


def share_threads(library: ctypes.CDLL, prefix: str) -> bool:
    """Install `library`'s callback into NumPy's OpenBLAS, once per process; whether it is in."""
    if _SHARED:
        return True
    if os.environ.get("TDSL_SHARE_BLAS_THREADS", "") == "0" or os.environ.get("TDSL_BLAS", "") == "0":
        return False
    getter = getattr(library, f"{prefix}_blas_threads", None)
    found = _openblas()
    if getter is None or found is None:
        return False
    lib, blas_prefix = found
    name = "scipy_openblas_set_threads_callback_function64_" if blas_prefix.startswith("scipy") else \
        "openblas_set_threads_callback_function64_"
    setter = getattr(lib, name, None)
    if setter is None:
        return False
    getter.restype = ctypes.c_void_p
    getter.argtypes = []
    setter.restype = None
    setter.argtypes = [ctypes.c_void_p]
    setter(getter())
    _SHARED[:] = [library, prefix, setter]
    if hasattr(os, "register_at_fork") and not _FORK_HOOK:
        os.register_at_fork(after_in_child=_unshare_in_child)
        _FORK_HOOK.append(True)
    return True


def unshare() -> None:
    """Hand NumPy's BLAS back to OpenBLAS's own pool (a forked child; tests)."""
    if _SHARED:
        _SHARED[2](None)
        _SHARED.clear()


def _unshare_in_child() -> None:
    unshare()


def shared_calls() -> int:
    """How many BLAS calls have run on tdsl's threads in this process (0 when not shared)."""
    if not _SHARED:
        return 0
    library, prefix, _ = _SHARED
    getter = getattr(library, f"{prefix}_blas_calls")
    getter.restype = ctypes.c_int64
    return getter()
