"""One value, one bit pattern: math that two places compute gives the same bits at both.

C SIMD loops call glibc's libmvec (other rounding than libm) in their vector body and
libm in their tail; OpenCL vector maps call floatN/doubleN builtins (other rounding than
the scalar ones, and PoCL 3.1's are wrong in every lane for some functions once one lane
is extreme). A value computed in two kernels, or at two indices of one loop, must still
compare equal to itself (`x == max(x)` in the gradient of max, argmax over a concat).
Every case runs on c and on opencl in both launch layouts, at lengths that reach the
vector body and the tail, against NumPy and the reference interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
import conftest
from conftest import assert_same, compiled, require_target
from tdsl.ops import OPS

PLACES = conftest.VARIANTS
LENGTHS = (1, 7, 8, 9, 17, 33, 1001, 4099)
DTYPES = {"f32": np.float32, "f64": np.float64}

SAME = """
fn grad_max(x: {T}[n]) -> {T}[n] {{ return grad(max(exp(x)), x) }}
fn grad_lse(x: {T}[n]) -> {T}[n] {{ return grad(logsumexp(exp(x)), x) }}
fn grad_log_softmax(x: {T}[n], w: {T}[n]) -> {T}[n] {{ return grad(sum(log_softmax(exp(x)) * w), x) }}
fn grad_softmax(x: {T}[n], w: {T}[n]) -> {T}[n] {{ return grad(sum(softmax(exp(x)) * w), x) }}
fn at_max(x: {T}[n]) -> f64 {{ return sum(where(exp(x) == max(exp(x)), 1.0, 0.0)) }}
fn argmax_twice(x: {T}[n]) -> (i64, i64) {{ return argmax(concat((exp(x), exp(x)))), argmax(exp(x)) }}
fn argmin_shifted(x: {T}[n]) -> i64 {{ return argmin(concat((expm1(x[1:]), expm1(x)))) }}
fn neighbours(x: {T}[n]) -> bool[n - 1] {{ return exp(x)[1:] == exp(x)[:-1] }}
"""


@pytest.fixture(params=PLACES)
def place(request, monkeypatch) -> str:
    """A compiled target: c, or opencl in its CPU or its GPU launch layout."""
    target, _, layout = request.param.partition("-")
    require_target(target)
    if layout:
        monkeypatch.setenv("TDSL_OPENCL_LAYOUT", layout)
    return request.param


def module(place: str, source: str):
    """The module of `source` on `place` (each OpenCL layout builds its own program)."""
    return compiled(source + f"\n# {place}\n", place.partition("-")[0])


def reference(source: str):
    return compiled(source, "numpy")


def inputs(rng, n: int, dtype) -> np.ndarray:
    """Distinct values (no ties) of moderate size: exp(exp(x)) stays finite."""
    return (rng.permutation(n) / max(n, 1) * 4 - 2 + rng.uniform(0, 0.5 / max(n, 1), n)).astype(dtype)


# -- gradients through max, logsumexp, softmax (item 4 of issue 11) ------------------------------

def test_grad_of_max_of_exp_from_the_issue(place):
    src = SAME.format(T="f64")
    x = np.array([0.3081821779926003, -1.8839408205022823])
    got = module(place, src).grad_max(x)
    np.testing.assert_allclose(got, [np.exp(x[0]), 0.0], rtol=1e-12)
    assert_same(got, reference(src).grad_max(x), rtol=1e-12)


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_gradients_through_max_and_softmax_of_exp(place, T):
    src, dtype = SAME.format(T=T), DTYPES[T]
    m, ref, rng = module(place, src), reference(src), np.random.default_rng(4)
    for n in LENGTHS:
        for _ in range(6 if n < 100 else 2):
            x, w = inputs(rng, n, dtype), rng.standard_normal(n).astype(dtype)
            got = m.grad_max(x)
            top = np.argmax(x)   # exp is increasing: NumPy's gradient is exp(x) there, 0 elsewhere
            assert np.count_nonzero(got) == 1 and got[top] == pytest.approx(np.exp(x[top]), rel=1e-5), (n, x)
            for fn, args in (("grad_lse", (x,)), ("grad_log_softmax", (x, w)), ("grad_softmax", (x, w))):
                out = getattr(m, fn)(*args)
                assert np.isfinite(out).all(), (fn, n, x)
                # sums of n terms: f32 gradients of softmax lose about eps * sum(|w|) to cancellation
                atol = 1e-9 if T == "f64" else 4 * np.finfo(dtype).eps * (1 + np.abs(w).sum())
                assert_same(out, getattr(ref, fn)(*args), rtol=1e-4, atol=atol)
            e = np.exp(x.astype(np.float64))
            np.testing.assert_allclose(m.grad_lse(x), np.exp(e - e.max()) / np.exp(e - e.max()).sum() * e,
                                       rtol=1e-4, atol=1e-6)


# -- equality of a value with itself --------------------------------------------------------------

@pytest.mark.parametrize("T", ["f32", "f64"])
def test_a_value_used_twice_compares_equal(place, T):
    src, dtype = SAME.format(T=T), DTYPES[T]
    m, rng = module(place, src), np.random.default_rng(5)
    for n in LENGTHS + (70001,):   # 70001: threads
        x = inputs(rng, n, dtype)
        assert m.at_max(x) == 1, n
        assert m.argmax_twice(x) == (np.argmax(np.exp(x)), np.argmax(np.exp(x))), n
        if n > 1:
            assert m.argmin_shifted(x) == (np.argmin(x[1:]) if np.argmin(x) > 0 else n - 1), n
            falling = np.sort(x)[::-1].copy()   # the minimum last: computed in a loop's tail, or not
            assert m.argmin_shifted(falling) == n - 2, n
            pairs = np.repeat(x[: (n + 1) // 2], 2)[:n]   # x[2i] == x[2i + 1]
            np.testing.assert_array_equal(m.neighbours(pairs)[::2], True)


UNARY = [name for name, op in OPS.items() if op.vector_math and op.arity == 1]
BINARY = [name for name, op in OPS.items() if op.vector_math and op.arity == 2]


def every_math_op(T: str) -> str:
    """For each op of the op table marked vector_math: op(x) alone (computed once: vector forms
    allowed), and -op(x) beside the maximum of op(x) (a map and a reduction compute op(x): one
    form, the same bits)."""
    lines = []
    for name in UNARY:
        lines.append(f"fn m_{name}(x: {T}[n]) -> {T}[n] {{ return {name}(x) }}")
        lines.append(f"fn p_{name}(x: {T}[n]) -> ({T}[n], {T}) {{ return -{name}(x), max({name}(x)) }}")
    for name in BINARY:
        lines.append(f"fn m_{name}(x: {T}[n], y: {T}[n]) -> {T}[n] {{ return {name}(x, y) }}")
        lines.append(f"fn p_{name}(x: {T}[n], y: {T}[n]) -> ({T}[n], {T}) "
                     f"{{ return -{name}(x, y), max({name}(x, y)) }}")
    return "\n".join(lines)


def numpy_of(name: str):
    return OPS[name].impl


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_every_math_op_stored_and_reduced_gives_the_same_bits(place, T):
    """A map stores -op(x) (a vector map on OpenCL, a SIMD loop in C) while max computes op(x)
    again: the maximum of the stored values is the reduced one, bit for bit, also where
    extreme lanes sit next to ordinary ones."""
    src = every_math_op(T)
    m, rng = module(place, src), np.random.default_rng(8)
    for n in LENGTHS:
        x, y = mixed(rng, n, T), mixed(rng, n, T)
        x[np.isnan(x)] = 0.5   # NaN would make every maximum NaN
        for name in UNARY + BINARY:
            negated, top = getattr(m, f"p_{name}")(*((x,) if name in UNARY else (x, y)))
            if not np.isnan(negated).any():
                assert top.tobytes() == (-negated).max().tobytes(), (name, n)


# -- extreme lanes next to ordinary ones (item 12 of issue 11: PoCL's vector sin of f32) -----------

EXTREMES = {"f32": [1e7, -1e7, 3e7, 1e20, 3e38, 1e-30, 1e-45, np.nan, np.inf, -np.inf, -0.0, 0.0, 88.7, -100.0],
            "f64": [1e7, -1e7, 3e7, 1e20, 1e300, 1e-300, 5e-324, np.nan, np.inf, -np.inf, -0.0, 0.0, 710.0, -745.0]}


def mixed(rng, n: int, T: str) -> np.ndarray:
    """Ordinary values with an extreme one in about every fourth lane."""
    x = rng.uniform(-3, 3, n)
    spots = rng.random(n) < 0.25
    x[spots] = rng.choice(EXTREMES[T], spots.sum())
    return x.astype(DTYPES[T])


def close(got, want, dtype, name):
    """Within a few ulps of NumPy (two libraries of a few ulps each); tiny results within the smallest normal.

    PoCL's f32 sin next to a huge lane was off by 1e11 ulps; libraries that differ by rounding pass."""
    tiny = np.finfo(dtype).tiny
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(got, want, rtol=32 * np.finfo(dtype).eps, atol=tiny, equal_nan=True,
                                   err_msg=name)


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_math_ops_with_extreme_lanes_match_numpy(place, T):
    src, dtype = every_math_op(T), DTYPES[T]
    m, rng = module(place, src), np.random.default_rng(7)
    for n in (9, 33, 1001):
        x, y = mixed(rng, n, T), mixed(rng, n, T)
        for name in UNARY:
            want = numpy_of(name)(x)
            for got in (getattr(m, f"m_{name}")(x), -getattr(m, f"p_{name}")(x)[0]):
                if name in ("sin", "cos", "tan"):   # beyond 1e7 the results differ between good libraries
                    got, want = got[np.abs(x) < 1e6], numpy_of(name)(x)[np.abs(x) < 1e6]
                close(got, want, dtype, name)
        for name in BINARY:
            z = np.abs(y) if name == "pow" else y
            for got in (getattr(m, f"m_{name}")(x, z), -getattr(m, f"p_{name}")(x, z)[0]):
                close(got, numpy_of(name)(x, z), dtype, name)


def test_sin_of_f32_next_to_a_huge_lane(place):
    """The issue's case: PoCL's float8 sin was wrong in every lane when one lane had |x| >= 1e7."""
    src = "fn trig(x: f32[n]) -> (f32[n], f32[n], f32[n]) { return sin(x), cos(x), tan(x) }"
    m = module(place, src)
    for n in (8, 9, 16, 33, 1000):
        x = np.linspace(-3, 3, n).astype(np.float32)
        x[::5] = np.float32(1e7)
        for got, fn in zip(m.trig(x), (np.sin, np.cos, np.tan)):
            np.testing.assert_allclose(got, fn(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_maximum_and_minimum_of_a_signed_zero_literal(place, T):
    """NumPy gives b on ties: maximum(-0.0, 0.0) is 0.0. PoCL compiled a tie with a constant -0.0
    operand into the constant (found by test_rewrite's random programs); every side, every zero."""
    cases = [(fn, a, b) for fn in ("maximum", "minimum") for z in ("-0.0", "0.0") for a, b in ((z, "y"), ("y", z))]
    src = "\n".join(f"fn c{k}(y: {T}[n]) -> {T}[n] {{ return {fn}({a}, {b}) }}" for k, (fn, a, b) in enumerate(cases))
    y = np.array([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf], dtype=T.replace("f", "float"))
    m = module(place, src)
    for k, (fn, a, b) in enumerate(cases):
        zero = y.dtype.type(float(a if a != "y" else b))
        want = getattr(np, fn)(zero, y) if a != "y" else getattr(np, fn)(y, zero)
        got = getattr(m, f"c{k}")(y)
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want)), \
            f"{fn}({a}, {b}): {got} != {want}"


# -- the C rendering: only values computed twice leave the vector path ----------------------------

def test_c_keeps_vector_math_for_values_computed_once():
    require_target("c")
    w1 = compiled("fn w1(x: f64[n], a: f64, b: f64, c: f64) -> f64[n] { return a * exp(-b * x) + c * sin(x) }", "c")
    assert "= tdsl_scalar_" not in w1.w1.source   # no call
    softmax = compiled("fn sm(x: f32[n, k]) -> f32[n, k] { return softmax(x, axis=1) }", "c")
    assert "= tdsl_scalar_" not in softmax.sm.source   # the fused pass stores each exp once
    source = compiled(SAME.format(T="f64"), "c").grad_max.source
    body = source[source.index("grad_max(int64_t"):]
    body = body[:body.index("\n}\n")]   # the three kernels that compute exp(x)
    assert body.count("= tdsl_scalar_exp_f64(") == 4 and " exp(" not in body
