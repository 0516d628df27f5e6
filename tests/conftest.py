"""Shared test fixtures: `target` runs a test on every target, `compiled_target` on every compiled one.

The targets come from the registry (tdsl.targets). The reference ("numpy") is the oracle of
`run_both`, not one of its cases: a test comparing a target with the reference takes
`compiled_target`; a test checking values of its own (NumPy's, the contract's) takes `target`.
A target whose toolchain is missing is skipped with a reason; with CI=true every
implemented target must run, so a missing compiler or OpenCL platform fails instead.
"""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pytest

import tdsl
from tdsl import targets

TARGETS = list(targets.names())
COMPILED = list(targets.compiled())
REFERENCE = targets.REFERENCE
IN_CI = os.environ.get("CI", "").lower() == "true"
# OpenCL fixes its launch layout when it builds a program: tests that depend on the layout run
# each compiled target once, and OpenCL once per layout (`compiled_variant` builds them)
LAYOUTS = {"opencl": ("cpu", "gpu")}
VARIANTS = [f"{t}-{layout}" if layout else t for t in COMPILED for layout in LAYOUTS.get(t, (None,))]


@lru_cache(maxsize=None)
def target_status(target: str) -> tuple[bool, bool, str]:
    """(implemented, available, reason) for a target on this machine: the target says (Target.unavailable)."""
    if target not in targets.REGISTRY:
        return False, False, f"unknown target {target}"
    if importlib.util.find_spec(targets.REGISTRY[target]) is None:
        return False, False, f"the {target} target is not implemented yet"
    reason = targets.get(target).unavailable()
    return True, reason is None, reason or ""


def require_target(target: str) -> None:
    implemented, available, reason = target_status(target)
    if not implemented:
        pytest.skip(reason)
    if not available:
        if IN_CI:
            pytest.fail(f"target {target} must run in CI: {reason}")
        pytest.skip(reason)


def require_module(name: str):
    """The module `name` for a test module that needs an optional dependency: skipped with a
    reason where it is not installed, but in CI (the `test` extra installs it) the ImportError
    fails the run."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')", allow_module_level=True)


@pytest.fixture(params=TARGETS)
def target(request) -> str:
    """Each test using this fixture runs once per target."""
    require_target(request.param)
    return request.param


@pytest.fixture(params=COMPILED)
def compiled_target(request) -> str:
    """Each compiled target, for tests that compare it with the reference (`run_both`)."""
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
    """Run `fn` on a compiled `target` and on the reference; assert they agree and return the result."""
    if target == REFERENCE:  # the reference against itself would pass whatever it computes
        raise ValueError(f"run_both compares a compiled target with the reference, not {target!r} "
                         "with itself: take the compiled_target fixture, or `run` and check the result")
    got = getattr(compiled(source, target), fn)(*args, **kwargs)
    ref = getattr(compiled(source, REFERENCE), fn)(*args, **kwargs)
    assert_same(got, ref)
    return got


def run(source: str, fn: str, target: str, *args, **kwargs):
    """Run `fn` on any target (a compiled one also against the reference), for a test that checks
    the result against a value of its own (NumPy's): then the reference is a case too."""
    if target == REFERENCE:
        return getattr(compiled(source, target), fn)(*args, **kwargs)
    return run_both(source, fn, target, *args, **kwargs)


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
