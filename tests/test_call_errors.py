"""Call-time errors of values that fusion does not compute in full (issue 11, found by the fuzzer, tests/fuzz/).

An integer raised to a negative integer power and an out-of-range `take` index are call-time
errors (LANGUAGE.md sections 6 and 7). NumPy computes every value of a program, so the error
is raised whatever happens to the failing value later: sliced away, read by an op that ignores
it (`isnan` of an integer), broadcast into an empty result, or the result of `take` empty.
Each family is one module per target; every case runs on the reference, c and both OpenCL
layouts, and is compared with NumPy's own behaviour (it raises, or gives the same value).
"""
from __future__ import annotations


import numpy as np
import pytest

import tdsl
import conftest
from conftest import REFERENCE, assert_same, compiled, compiled_variant, require_target
from tdsl.codegen.lower import lower_module
from tdsl.pipeline import check_source
from tdsl.rewrite import simplify_graph

VARIANTS = [REFERENCE, *conftest.VARIANTS]


build = compiled_variant


def numpy_outcome(fn):
    """NumPy's result of the same program, or the exception it raises."""
    with np.errstate(all="ignore"):
        try:
            return fn(), None
        except (ValueError, IndexError) as err:
            return None, err


def check(source: str, variant: str, name: str, args: tuple, oracle, contract_error: bool = False,
          error=tdsl.TdslRuntimeError):
    """The variant raises a located TdslRuntimeError exactly when NumPy does (or, with
    `contract_error`, where the contract asks for one that NumPy skips); otherwise it gives
    NumPy's value and the reference's."""
    expected, numpy_error = numpy_outcome(lambda: oracle(*args))
    fn = build(source, variant)[name]
    if numpy_error is not None or contract_error:
        with pytest.raises(error, match=r"<string>:\d+:\d+: error: "):
            fn(*args)
        return
    got = fn(*args)
    assert_same(got, expected)
    if variant != REFERENCE:   # the reference is checked against NumPy's value just above
        assert_same(got, compiled(source, REFERENCE)[name](*args))


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def i32(*values):
    return np.array(values, np.int32)


def i64(*values):
    return np.array(values, np.int64)


# -- an integer raised to a negative integer power -----------------------------------------------

POW = """
fn sliced(x: i32[m]) { return (x ** x)[:-2] }
fn unread(x: i64[m], y: i64[m]) { return sum(isnan(x ** y)) }
fn spread(x: i64[n], y: i64[n], z: i64[n, k]) { return (x ** y)[:, None] * z }
fn gathered(x: i64[n], y: i64[n], i: i64[k]) { return take(x ** y, i) }
fn summed(x: i64[n], y: i64[n]) { return sum((x ** y)[1:]) }
fn crossed(x: i64[n], y: i64[m]) { return x[:, None] ** y }
fn plain(x: i64[n], y: i64[n]) { return x ** y }
fn squared(x: i64[n]) { return (x ** 2)[1:] }
"""

POW_CASES = [
    ("sliced", (i32(-4, -3),), lambda x: np.power(x, x)[:-2]),
    ("sliced", (i32(2, 3, -1, 1),), lambda x: np.power(x, x)[:-2]),
    ("sliced", (i32(2, 3, 4),), lambda x: np.power(x, x)[:-2]),
    ("unread", (i64(2, 3), i64(1, -1)), lambda x, y: np.sum(np.isnan(np.power(x, y)))),
    ("unread", (i64(2, 3), i64(1, 2)), lambda x, y: np.sum(np.isnan(np.power(x, y)))),
    ("spread", (i64(2, 3), i64(1, -1), np.zeros((2, 0), np.int64)), lambda x, y, z: np.power(x, y)[:, None] * z),
    ("spread", (i64(2, 3), i64(1, 2), np.ones((2, 3), np.int64)), lambda x, y, z: np.power(x, y)[:, None] * z),
    ("gathered", (i64(2, 3), i64(1, -1), i64(0)), lambda x, y, i: np.take(np.power(x, y), i)),
    ("gathered", (i64(2, 3), i64(1, -1), i64()), lambda x, y, i: np.take(np.power(x, y), i)),
    ("gathered", (i64(2, 3), i64(1, 2), i64(1, 0, 1)), lambda x, y, i: np.take(np.power(x, y), i)),
    ("summed", (i64(2, 3), i64(-1, 2)), lambda x, y: np.sum(np.power(x, y)[1:])),
    ("summed", (i64(2, 3), i64(1, 2)), lambda x, y: np.sum(np.power(x, y)[1:])),
    # an empty result computes no power: NumPy does not fail, and neither does tdsl
    ("crossed", (i64(), i64(-1)), lambda x, y: np.power(x[:, None], y)),
    ("crossed", (i64(2), i64(-1)), lambda x, y: np.power(x[:, None], y)),
    ("crossed", (i64(2, 3), i64(0, 3)), lambda x, y: np.power(x[:, None], y)),
    ("plain", (i64(2, 3), i64(0, -3)), lambda x, y: np.power(x, y)),
    ("squared", (i64(2, 3, -4),), lambda x: np.power(x, 2)[1:]),
]


@pytest.mark.parametrize("name, args, oracle", POW_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(POW_CASES)])
def test_negative_power_checked_everywhere(variant, name, args, oracle):
    check(POW, variant, name, args, oracle)


# -- take: an index out of range -----------------------------------------------------------------

TAKE = """
fn unread(x: i64[k]) {
    t = take(x, x, axis=0)
    return sum(isnan(t) == isnan(t))
}
fn flags(b: bool[n], i: i64[k]) { return isfinite(take(b, i, axis=0)) }
fn emptied(t: i64[n, m]) { return take(t, t, axis=0)[..., None, :][-1:, :0, -1:] }
fn columns(x: i64[m, 3], i: i64[n]) { return take(x, i, axis=-1) }
fn rows(x: f32[n, d], i: i64[k]) { return take(x, i) }
fn fixed(x: f32[n, 4], i: i64[k]) { return take(x, i) }
fn sliced(x: f32[n], i: i64[k]) { return take(x, i)[1:] }
fn spread(x: f32[n], i: i64[k], z: f32[k, p]) { return take(x, i)[:, None] * z }
fn literal(x: f32[n, 3]) { return take(x, [0, 2, -1], axis=1)[1:] }
"""

ALWAYS = True   # the contract's error where NumPy returns an empty result without checking

TAKE_CASES = [
    ("unread", (i64(5, 0),), lambda x: np.sum(np.isnan(np.take(x, x)) == np.isnan(np.take(x, x))), False),
    ("unread", (i64(1, 0),), lambda x: np.sum(np.isnan(np.take(x, x)) == np.isnan(np.take(x, x))), False),
    ("flags", (np.array([True, False]), i64(0, 2)), lambda b, i: np.isfinite(np.take(b, i, axis=0)), False),
    ("flags", (np.array([True, False]), i64(0, -2)), lambda b, i: np.isfinite(np.take(b, i, axis=0)), False),
    ("emptied", (np.array([[0, 1], [2, 3]], np.int64),),
     lambda t: np.take(t, t, axis=0)[..., None, :][-1:, :0, -1:], False),
    ("emptied", (np.array([[0, 1], [1, 0]], np.int64),),
     lambda t: np.take(t, t, axis=0)[..., None, :][-1:, :0, -1:], False),
    ("columns", (np.zeros((0, 3), np.int64), i64(1, 0, 0, -4)), lambda x, i: np.take(x, i, axis=-1), ALWAYS),
    ("columns", (np.zeros((0, 3), np.int64), i64(1, 0, 0, -3)), lambda x, i: np.take(x, i, axis=-1), False),
    ("columns", (np.ones((2, 3), np.int64), i64(1, 3)), lambda x, i: np.take(x, i, axis=-1), False),
    ("rows", (np.zeros((2, 0), np.float32), i64(1, 2)), lambda x, i: np.take(x, i, axis=0), ALWAYS),
    ("rows", (np.zeros((2, 0), np.float32), i64(1, -2)), lambda x, i: np.take(x, i, axis=0), False),
    ("rows", (np.arange(6, dtype=np.float32).reshape(2, 3), i64(1, -2)), lambda x, i: np.take(x, i, axis=0), False),
    ("rows", (np.arange(6, dtype=np.float32).reshape(2, 3), i64(1, 2)), lambda x, i: np.take(x, i, axis=0), False),
    ("fixed", (np.ones((2, 4), np.float32), i64(1, -3)), lambda x, i: np.take(x, i, axis=0), False),
    ("sliced", (np.ones(3, np.float32), i64(3, 0)), lambda x, i: np.take(x, i)[1:], False),
    ("sliced", (np.ones(3, np.float32), i64(2, 0)), lambda x, i: np.take(x, i)[1:], False),
    ("spread", (np.ones(3, np.float32), i64(1, 7), np.zeros((2, 0), np.float32)),
     lambda x, i, z: np.take(x, i)[:, None] * z, False),
    ("spread", (np.ones(3, np.float32), i64(1, 2), np.zeros((2, 0), np.float32)),
     lambda x, i, z: np.take(x, i)[:, None] * z, False),
    ("literal", (np.arange(6, dtype=np.float32).reshape(2, 3),), lambda x: np.take(x, [0, 2, -1], axis=1)[1:], False),
]


@pytest.mark.parametrize("name, args, oracle, contract", TAKE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TAKE_CASES)])
def test_take_range_checked_everywhere(variant, name, args, oracle, contract):
    check(TAKE, variant, name, args, oracle, contract_error=contract)


# -- the common case costs no extra pass -----------------------------------------------------------

def _check_passes(source: str) -> dict[str, int]:
    """Per function, the kernels the lowering adds only to check values ('check of ...')."""
    module = lower_module([simplify_graph(g) for g in check_source(source)], "m")
    return {fn.name: sum("check of " in k.origin.label for k in fn.kernels) for fn in module.functions}


def test_check_passes_only_where_values_go_unchecked():
    passes = _check_passes(TAKE + POW.replace("fn ", "fn pow_"))
    # every index and every power is computed by the program itself (a value read through a
    # broadcast is stored whole first): nothing to add
    # a literal that cannot fail needs no check at all
    for name in ("fixed", "spread", "literal", "pow_plain", "pow_gathered", "pow_spread", "pow_crossed",
                 "pow_squared"):
        assert passes[name] == 0, name
    # fusion skips values (sliced, unread, under a loop that may run zero times): one pass each
    for name in ("unread", "flags", "emptied", "columns", "rows", "sliced", "pow_sliced", "pow_unread",
                 "pow_summed"):
        assert passes[name] == 1, name


# -- statements no result reads: NumPy runs them, so their errors are raised -------------------------

UNREAD = """
fn power(x: i64[n]) {
    t = x ** x
    return x
}
fn index(x: i64[n]) {
    t = take(x, x)
    return x + 1
}
fn short(x: i64[n]) {
    t = x[3:]
    return x
}
fn extreme(x: i64[n]) {
    t = max(x[:0])
    u = argmin(x)
    return x
}
fn shifted(x: f64[n]) {
    t = softmax(x)
    u = logsumexp(x)
    return x
}
fn chained(x: i64[n], y: i64[n]) {
    t = take(x, y) ** x
    return sum(x)
}
"""

UNREAD_CASES = [
    ("power", (i64(3, -4),), lambda x: (np.power(x, x), x)[1]),
    ("power", (i64(3, 4),), lambda x: (np.power(x, x), x)[1]),
    ("index", (i64(1, 2),), lambda x: (np.take(x, x), x + 1)[1]),
    ("index", (i64(1, 0),), lambda x: (np.take(x, x), x + 1)[1]),
    ("short", (i64(1, 2),), None),   # the contract: a slice past the axis is an error (section 5)
    ("short", (i64(1, 2, 3),), lambda x: x),
    ("extreme", (i64(1, 2),), lambda x: (np.max(x[:0]), x)[1]),
    ("shifted", (np.zeros(0),), lambda x: x),   # softmax and logsumexp of nothing do not fail
    ("chained", (i64(0, 1), i64(1, 2)), lambda x, y: (np.power(np.take(x, y), x), np.sum(x))[1]),
    ("chained", (i64(2, 1), i64(1, -1)), lambda x, y: (np.power(np.take(x, y), x), np.sum(x))[1]),
    ("chained", (i64(2, 1), i64(1, 1)), lambda x, y: (np.power(np.take(x, y), x), np.sum(x))[1]),
]


@pytest.mark.parametrize("name, args, oracle", UNREAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(UNREAD_CASES)])
def test_unread_statements_still_fail(variant, name, args, oracle):
    if oracle is None:
        check(UNREAD, variant, name, args, lambda *a: None, contract_error=True, error=tdsl.TdslArgumentError)
    else:
        check(UNREAD, variant, name, args, oracle)


def test_unread_values_add_no_kernels_but_their_checks():
    """An unread statement that cannot fail costs nothing; one that can adds its check only."""
    source = UNREAD + "fn quiet(x: f64[n]) {\n    t = exp(x) @ x\n    return x\n}\n"
    module = lower_module([simplify_graph(g) for g in check_source(source)], "m")
    kernels = {fn.name: [k.origin.label for k in fn.kernels] for fn in module.functions}
    assert kernels["quiet"] == kernels["short"] == kernels["extreme"] == kernels["shifted"] == ["x = copy of param"]
    assert kernels["power"] == ["x = copy of param", "t = check of pow"]
