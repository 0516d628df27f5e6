"""Shared test fixtures: the `target` fixture runs a test on every target against the reference.

A target whose toolchain is missing is skipped with a reason; with CI=true every
implemented target must run, so a missing compiler or OpenCL platform fails instead.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pytest

import tdsl

TARGETS = ["numpy", "c", "opencl"]
IN_CI = os.environ.get("CI", "").lower() == "true"


@lru_cache(maxsize=None)
def target_status(target: str) -> tuple[bool, bool, str]:
    """(implemented, available, reason) for a target on this machine."""
    if target == "numpy":
        return True, True, ""
    if target == "c":
        if importlib.util.find_spec("tdsl.codegen.c_backend") is None:
            return False, False, "the c target is not implemented yet"
        cc = os.environ.get("TDSL_CC") or os.environ.get("CC") or "cc"
        if shutil.which(cc.split()[0]) is None:
            return True, False, f"no C compiler ({cc}) on this machine"
        return True, True, ""
    if target == "opencl":
        if importlib.util.find_spec("tdsl.codegen.opencl_backend") is None:
            return False, False, "the opencl target is not implemented yet"
        try:
            import pyopencl as cl
            if not cl.get_platforms():
                return True, False, "no OpenCL platform"
        except Exception as err:  # ImportError, or a LogicError from a broken ICD
            return True, False, f"OpenCL is unavailable: {err}"
        return True, True, ""
    return False, False, f"unknown target {target}"


def require_target(target: str) -> None:
    implemented, available, reason = target_status(target)
    if not implemented:
        pytest.skip(reason)
    if not available:
        if IN_CI:
            pytest.fail(f"target {target} must run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(params=TARGETS)
def target(request) -> str:
    """Each test using this fixture runs once per target."""
    require_target(request.param)
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests build into a private compile cache unless one is set explicitly."""
    if "TDSL_CACHE_DIR" not in os.environ:
        os.environ["TDSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("tdsl-cache"))
    yield


def assert_same(got, expected, rtol=1e-5, atol=1e-6):
    """Equal dtypes and shapes, values equal (NaN matching NaN) within tolerance for floats."""
    got_t = got if isinstance(got, tuple) else (got,)
    exp_t = expected if isinstance(expected, tuple) else (expected,)
    assert len(got_t) == len(exp_t)
    for g, e in zip(got_t, exp_t):
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == e.dtype, f"dtype {g.dtype} != {e.dtype}"
        assert g.shape == e.shape, f"shape {g.shape} != {e.shape}"
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, e)


_modules: dict = {}


def compiled(source: str, target: str):
    """Compile `source` for `target`, memoized per test session."""
    key = (source, target)
    if key not in _modules:
        _modules[key] = tdsl.compile(source, target=target)
    return _modules[key]


def run_both(source: str, fn: str, target: str, *args, **kwargs):
    """Run `fn` on `target` and on the reference; assert they agree and return the result."""
    got = getattr(compiled(source, target), fn)(*args, **kwargs)
    if target != "numpy":
        ref = getattr(compiled(source, "numpy"), fn)(*args, **kwargs)
        assert_same(got, ref)
    return got


@contextmanager
def opencl_layout(layout: str | None):
    """TDSL_OPENCL_LAYOUT set to `layout` (None: left as it is) while a module is built."""
    old = os.environ.get("TDSL_OPENCL_LAYOUT")
    if layout:
        os.environ["TDSL_OPENCL_LAYOUT"] = layout
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TDSL_OPENCL_LAYOUT", None)
        else:
            os.environ["TDSL_OPENCL_LAYOUT"] = old


def compiled_variant(source: str, variant: str):
    """`source` compiled for a variant: a target, or `opencl-cpu`/`opencl-gpu` (the launch layout
    is fixed when the program is built), memoized per test session like `compiled`."""
    target, _, layout = variant.partition("-")
    require_target(target)
    key = (source, variant)
    if key not in _modules:
        with opencl_layout(layout or None):
            _modules[key] = tdsl.compile(source, target=target)
    return _modules[key]


def require_asan() -> str:
    """The C compiler's AddressSanitizer runtime (for LD_PRELOAD). Missing, it skips the test with
    a reason, except in CI, where the sanitizer runs are part of what must pass."""
    require_target("c")
    from fuzz.runner import libasan
    found = libasan()
    if found is None:
        reason = "the C compiler has no AddressSanitizer runtime"
        if IN_CI:
            pytest.fail(f"the sanitizer tests must run in CI: {reason}")
        pytest.skip(reason)
    return found
