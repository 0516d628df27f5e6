"""The builtins of LANGUAGE.md section 7 and the semantics of section 6, against NumPy itself.

Each topic is one program with several functions, compiled once per target; every
call goes through `run` (a compiled target also against the reference interpreter) and
the result is then compared with what NumPy computes, dtype and shape included: the
reference is a case of these tests too.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, run

F32, F64, I32, I64 = np.float32, np.float64, np.int32, np.int64

SPECIAL = [-2.5, -1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0, 2.5, 30.0, np.nan, np.inf, -np.inf]


def quiet(fn, *args):
    with np.errstate(all="ignore"):
        return fn(*args)


def check(src: str, fn: str, target: str, args: tuple, expected, **tol):
    got = run(src, fn, target, *args)
    assert_same(got, expected, **tol)
    return got


# -- elementwise, unary -----------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])

UNARY_FLOAT = {
    "abs": np.abs, "sign": np.sign, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "square": np.square, "reciprocal": np.reciprocal, "exp": np.exp, "exp2": np.exp2,
    "expm1": np.expm1, "log": np.log, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
    "softplus": lambda x: np.logaddexp(x.dtype.type(0), x), "erf": lambda x: _erf(x).astype(x.dtype),
    "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
}

UNARY_SRC = "\n".join(
    f"fn {name}_f32(x: f32[n]) {{ return {name}(x) }}\n"
    f"fn {name}_f64(x: f64[n]) {{ return {name}(x) }}\n"
    f"fn {name}_i32(x: i32[n]) {{ return {name}(x) }}"
    for name in UNARY_FLOAT)


@pytest.mark.parametrize("name", sorted(UNARY_FLOAT))
def test_unary_float_matches_numpy(target, name):
    for dtype in (F32, F64):
        x = np.array(SPECIAL, dtype=dtype)
        expected = quiet(UNARY_FLOAT[name], x)
        check(UNARY_SRC, f"{name}_{np.dtype(dtype).name.replace('float', 'f')}", target, (x,), expected)


@pytest.mark.parametrize("name", sorted(UNARY_FLOAT))
def test_unary_on_integers_matches_numpy(target, name):
    """Integer operands keep their dtype for arithmetic ops and become f64 for transcendental ones."""
    x = np.array([-7, -2, -1, 1, 2, 3, 100], dtype=I32)
    expected = quiet(UNARY_FLOAT[name], x)
    if name == "erf":
        expected = _erf(x)
    if name in ("rsqrt", "sigmoid", "softplus"):  # NumPy computes these in f64 from an int operand
        expected = quiet(UNARY_FLOAT[name], x.astype(F64))
    check(UNARY_SRC, f"{name}_i32", target, (x,), expected)


def test_integer_reciprocal_of_zero_is_zero(target):
    """Integer division by zero gives 0 (section 6); reciprocal is 1 // x."""
    x = np.array([0, 1, -1, 2, -5], dtype=I32)
    check(UNARY_SRC, "reciprocal_i32", target, (x,), np.array([0, 1, -1, 0, 0], dtype=I32))


def test_relu_of_nan_is_nan(target):
    got = run(UNARY_SRC, "relu_f32", target, np.array([np.nan, -1.0, 2.0], dtype=F32))
    assert np.isnan(got[0]) and got[1] == 0 and got[2] == 2


def test_round_is_half_to_even(target):
    values = [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 0.49999997, 1e300, -7.5]
    for dtype in (F32, F64):
        x = quiet(np.array, values, dtype)  # 1e300 overflows to inf in f32
        got = check(UNARY_SRC, f"round_{np.dtype(dtype).name.replace('float', 'f')}", target, (x,),
                    np.round(x), rtol=0, atol=0)
        assert list(got[:7]) == [0, 2, 2, 4, -0, -2, -2]


# -- elementwise, binary ------------------------------------------------------------------

BINARY_SRC = """
fn add(a: T[n], b: T[n]) { return a + b }
fn sub(a: T[n], b: T[n]) { return a - b }
fn mul(a: T[n], b: T[n]) { return a * b }
fn div(a: T[n], b: T[n]) { return a / b }
fn floordiv(a: T[n], b: T[n]) { return a // b }
fn mod(a: T[n], b: T[n]) { return a % b }
fn power(a: T[n], b: T[n]) { return a ** b }
fn pow_fn(a: T[n], b: T[n]) { return pow(a, b) }
fn maximum_fn(a: T[n], b: T[n]) { return maximum(a, b) }
fn minimum_fn(a: T[n], b: T[n]) { return minimum(a, b) }
fn atan2_fn(a: T[n], b: T[n]) { return atan2(a, b) }
fn eq(a: T[n], b: T[n]) { return a == b }
fn ne(a: T[n], b: T[n]) { return a != b }
fn lt(a: T[n], b: T[n]) { return a < b }
fn le(a: T[n], b: T[n]) { return a <= b }
fn gt(a: T[n], b: T[n]) { return a > b }
fn ge(a: T[n], b: T[n]) { return a >= b }
fn neg(a: T[n], b: T[n]) { return -a }
"""
BINARY_NUMPY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.mod, "power": np.power, "pow_fn": np.power,
    "maximum_fn": np.maximum, "minimum_fn": np.minimum, "atan2_fn": np.arctan2,
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal, "neg": lambda a, b: np.negative(a),
}
BINARY_OPERANDS = {
    "f32": ([-7.5, 7.0, -7.0, 7.0, 0.0, 1.0, -0.0, np.nan, np.inf, 2.0, 3.0],
            [2.0, -2.0, -2.0, 2.0, 0.0, 0.0, 3.0, 1.0, 2.0, np.nan, -np.inf]),
    "f64": ([-7.5, 7.0, -7.0, 7.0, 0.0, 1.0, -0.0, np.nan, np.inf, 2.0, 3.0],
            [2.0, -2.0, -2.0, 2.0, 0.0, 0.0, 3.0, 1.0, 2.0, np.nan, -np.inf]),
    "i32": ([-7, 7, -7, 7, -8, 0, 5, 2**31 - 1, -2**31, -2**31, 3],
            [2, -2, -2, 2, 3, 3, 0, 2, -1, 1, 0]),
    "i64": ([-7, 7, -7, 7, -8, 0, 5, 2**63 - 1, -2**63, -2**63, 3],
            [2, -2, -2, 2, 3, 3, 0, 2, -1, 1, 0]),
}


@pytest.mark.parametrize("dtype", sorted(BINARY_OPERANDS))
@pytest.mark.parametrize("name", sorted(BINARY_NUMPY))
def test_binary_matches_numpy(target, dtype, name):
    """Covers floor division and modulo of negatives, integer division by zero (0), wrapping
    overflow (including INT_MIN // -1) and NaN-propagating maximum/minimum."""
    src = BINARY_SRC.replace("T[", f"{dtype}[")
    np_dtype = {"f32": F32, "f64": F64, "i32": I32, "i64": I64}[dtype]
    a, b = (np.array(v, dtype=np_dtype) for v in BINARY_OPERANDS[dtype])
    if name in ("power", "pow_fn") and dtype.startswith("i"):
        b = np.abs(b % 5)  # a negative integer power is an error, tested below
    expected = quiet(BINARY_NUMPY[name], a, b)
    check(src, name, target, (a, b), expected)


def test_floor_division_and_modulo_follow_python(target):
    src = BINARY_SRC.replace("T[", "i64[")
    a, b = np.array([-7, 7, -7, 7, 5, 5]), np.array([2, -2, -2, 2, 0, -0])
    check(src, "floordiv", target, (a, b), np.array([-4, -4, 3, 3, 0, 0]))
    check(src, "mod", target, (a, b), np.array([1, -1, -1, 1, 0, 0]))


def test_nan_propagates_through_maximum_and_minimum(target):
    src = BINARY_SRC.replace("T[", "f64[")
    a, b = np.array([np.nan, 1.0, 2.0]), np.array([1.0, np.nan, 1.0])
    got = check(src, "maximum_fn", target, (a, b), np.maximum(a, b))
    assert np.isnan(got[:2]).all()
    got = check(src, "minimum_fn", target, (a, b), np.minimum(a, b))
    assert np.isnan(got[:2]).all()


def test_signed_zeros_in_maximum_minimum_and_relu_follow_numpy(target):
    """On ties maximum/minimum give the second operand, as NumPy does; relu(-0.0) is +0.0."""
    src = BINARY_SRC.replace("T[", "f64[")
    a, b = np.array([0.0, -0.0, 0.0, -0.0]), np.array([-0.0, 0.0, 0.0, -0.0])
    for fn, ref in (("maximum_fn", np.maximum), ("minimum_fn", np.minimum)):
        got = check(src, fn, target, (a, b), ref(a, b))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref(a, b)))
    got = run(UNARY_SRC, "relu_f32", target, np.array([-0.0, 0.0], dtype=F32))
    assert not np.signbit(got).any()


def test_integer_negative_power_is_a_call_time_error(target):
    src = BINARY_SRC.replace("T[", "i32[")
    fn = compiled(src, target).power
    with pytest.raises(tdsl.TdslRuntimeError):
        fn(np.array([2, 3], dtype=I32), np.array([1, -1], dtype=I32))


def test_integer_overflow_wraps(target):
    src = BINARY_SRC.replace("T[", "i32[")
    big = np.array([2**31 - 1, -2**31, 2**30], dtype=I32)
    check(src, "add", target, (big, big), quiet(np.add, big, big))
    check(src, "mul", target, (big, big), quiet(np.multiply, big, big))
    check(src, "neg", target, (big, big), quiet(np.negative, big))
    check(UNARY_SRC, "abs_i32", target, (big,), quiet(np.abs, big))
    check(src, "power", target, (np.array([3, 7], dtype=I32), np.array([40, 30], dtype=I32)),
          quiet(np.power, np.array([3, 7], dtype=I32), np.array([40, 30], dtype=I32)))


LOGIC_SRC = """
fn logic(a: bool[n], b: bool[n]) { return a and b, a or b, not a, a == b, a != b }
fn chained(x: f64[n]) { return x > 0 and x < 1 or isnan(x) }
fn sel(c: bool[n], a: f32[n], b: f32[n]) { return where(c, a, b) }
fn sel_weak(x: f32[n]) { return where(x > 0, x, 0) }
fn sel_mixed(x: i32[n], y: f64[n]) { return where(x > 0, x, y) }
fn sel_bcast(c: bool[n, 1], a: f32[m], b: f32) { return where(c, a, b) }
fn clipped(x: f32[n]) { return clip(x, -1, 1.5) }
fn clipped_int(x: i32[n]) { return clip(x, 0, 10) }
fn clipped_arr(x: f64[n], lo: f64[n], hi: f64) { return clip(x, lo, hi) }
fn clipped_promote(x: i32[n]) { return clip(x, 0, 2.5) }
"""


def test_logic_and_where(target):
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    check(LOGIC_SRC, "logic", target, (a, b), (a & b, a | b, ~a, a == b, a != b))
    x = np.array([-1.0, 0.5, 2.0, np.nan])
    check(LOGIC_SRC, "chained", target, (x,), quiet(lambda v: (v > 0) & (v < 1) | np.isnan(v), x))
    c = np.array([True, False, True])
    fa, fb = np.array([1, 2, 3], dtype=F32), np.array([-1, -2, -3], dtype=F32)
    check(LOGIC_SRC, "sel", target, (c, fa, fb), np.where(c, fa, fb))
    check(LOGIC_SRC, "sel_weak", target, (fb,), np.where(fb > 0, fb, 0))
    xi, y = np.array([-1, 2], dtype=I32), np.array([0.5, 0.25])
    check(LOGIC_SRC, "sel_mixed", target, (xi, y), np.where(xi > 0, xi, y))
    cb = np.array([[True], [False]])
    check(LOGIC_SRC, "sel_bcast", target, (cb, fa, F32(9)), np.where(cb, fa, F32(9)))


def test_clip(target):
    x = np.array([-3.0, -1.0, 0.2, 1.5, 7.0, np.nan], dtype=F32)
    check(LOGIC_SRC, "clipped", target, (x,), np.clip(x, -1, 1.5))
    xi = np.array([-5, 3, 12], dtype=I32)
    check(LOGIC_SRC, "clipped_int", target, (xi,), np.clip(xi, 0, 10))
    check(LOGIC_SRC, "clipped_promote", target, (xi,), np.clip(xi, 0, 2.5))
    xd, lo = np.array([0.0, 5.0, -5.0]), np.array([1.0, -1.0, -2.0])
    check(LOGIC_SRC, "clipped_arr", target, (xd, lo, 3.0), np.clip(xd, lo, 3.0))


CAST_SRC = """
fn to_f32(x: f64[n]) { return f32(x) }
fn to_f64(x: i32[n]) { return f64(x) }
fn to_i32(x: f64[n]) { return i32(x) }
fn to_i64(x: f32[n]) { return i64(x) }
fn to_bool(x: f64[n]) { return bool(x) }
fn int_to_bool(x: i64[n]) { return bool(x) }
fn bool_to_f32(x: bool[n]) { return f32(x) }
fn i64_to_i32(x: i64[n]) { return i32(x) }
fn nan_to_int(x: f64[n]) { return i32(x), i64(x) }
"""


def test_casts(target):
    x = np.array([-2.7, -0.5, 0.0, 0.5, 1.9, 1e10, np.nan])
    check(CAST_SRC, "to_f32", target, (x,), x.astype(F32))
    check(CAST_SRC, "to_bool", target, (x,), x.astype(bool))
    xi = np.array([-3, 0, 5], dtype=I32)
    check(CAST_SRC, "to_f64", target, (xi,), xi.astype(F64))
    check(CAST_SRC, "int_to_bool", target, (xi.astype(I64),), xi.astype(bool))
    check(CAST_SRC, "bool_to_f32", target, (np.array([True, False]),), np.array([1, 0], dtype=F32))
    check(CAST_SRC, "i64_to_i32", target, (np.array([2**32 + 5, -1]),), np.array([2**32 + 5, -1]).astype(I32))
    finite = np.array([-2.7, -0.5, 0.0, 0.5, 1.9, 100.0])
    check(CAST_SRC, "to_i32", target, (finite,), finite.astype(I32))
    check(CAST_SRC, "to_i64", target, (finite.astype(F32),), finite.astype(F32).astype(I64))


def test_float_to_int_of_nan_and_inf_does_not_trap(target):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, 3.0])
    a, b = run_unchecked(CAST_SRC, "nan_to_int", target, x)
    assert a.dtype == I32 and b.dtype == I64 and a.shape == b.shape == (5,)
    assert a[4] == 3 and b[4] == 3


def run_unchecked(src, fn, target, *args):
    """The values are unspecified (section 6): only that it runs and gives the right types."""
    return getattr(compiled(src, target), fn)(*args)


# -- reductions ---------------------------------------------------------------------------

REDUCE_SRC = """
fn sum_all(x: f32[n, m]) { return sum(x) }
fn sum_axis(x: f32[n, m]) { return sum(x, axis=1) }
fn sum_neg_axis(x: f32[n, m]) { return sum(x, -2) }
fn sum_tuple(x: f64[a, b, c]) { return sum(x, axis=(0, 2), keepdims=true) }
fn sum_i32(x: i32[n]) { return sum(x) }
fn sum_i64(x: i64[n]) { return sum(x) }
fn sum_bool(x: bool[n, m]) { return sum(x, axis=0) }
fn prod_all(x: f64[n, m]) { return prod(x) }
fn prod_axis(x: f64[n, m]) { return prod(x, axis=0) }
fn prod_i32(x: i32[n]) { return prod(x) }
fn mean_all(x: f32[n, m]) { return mean(x) }
fn mean_axis(x: f64[n, m]) { return mean(x, axis=1, keepdims=true) }
fn mean_int(x: i32[n]) { return mean(x) }
fn max_all(x: f64[n, m]) { return max(x) }
fn max_axis(x: f64[n, m]) { return max(x, axis=1) }
fn min_axis(x: f64[n, m]) { return min(x, 0) }
fn max_int(x: i32[n]) { return max(x), min(x) }
fn argmax_all(x: f64[n, m]) { return argmax(x) }
fn argmax_axis(x: f64[n, m]) { return argmax(x, axis=1) }
fn argmin_axis(x: f64[n, m]) { return argmin(x, 0) }
fn argmax_keep(x: f64[n, m]) { return argmax(x, axis=0, keepdims=true), argmin(x, keepdims=true) }
fn any_all(x: bool[n, m]) { return any(x), all(x), any(x, axis=1), all(x, axis=0) }
fn any_float(x: f64[n]) { return any(x), all(x) }
fn var_all(x: f64[n, m]) { return var(x), std(x) }
fn var_axis(x: f32[n, m]) { return var(x, axis=0), std(x, axis=1, keepdims=true) }
fn var_int(x: i32[n]) { return var(x), std(x) }
fn lse(x: f64[n, m]) { return logsumexp(x), logsumexp(x, axis=1), logsumexp(x, 0, keepdims=true) }
fn lse32(x: f32[n]) { return logsumexp(x) }
fn smax(x: f64[n, m]) { return softmax(x), softmax(x, axis=0), log_softmax(x), log_softmax(x, 0) }
fn smax32(x: f32[n]) { return softmax(x), log_softmax(x) }
fn smax_int(x: i32[n]) { return softmax(x) }
fn mean_over_n(x: f32[n]) { return sum(x) / n }
"""


def _lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@pytest.fixture
def mat():
    return np.array([[1.5, -2.0, 3.25, 0.5], [4.0, 4.0, -1.0, 2.0], [0.0, 7.5, 7.5, -3.0]])


def test_sum_and_prod(target, mat):
    x32 = mat.astype(F32)
    check(REDUCE_SRC, "sum_all", target, (x32,), np.sum(x32))
    check(REDUCE_SRC, "sum_axis", target, (x32,), np.sum(x32, axis=1))
    check(REDUCE_SRC, "sum_neg_axis", target, (x32,), np.sum(x32, axis=-2))
    x3 = np.arange(24.0).reshape(2, 3, 4)
    check(REDUCE_SRC, "sum_tuple", target, (x3,), np.sum(x3, axis=(0, 2), keepdims=True))
    check(REDUCE_SRC, "prod_all", target, (mat,), np.prod(mat))
    check(REDUCE_SRC, "prod_axis", target, (mat,), np.prod(mat, axis=0))
    xi = np.array([3, -4, 5], dtype=I32)
    check(REDUCE_SRC, "prod_i32", target, (xi,), np.prod(xi))


def test_i32_and_bool_sums_give_i64(target):
    xi = np.array([2**31 - 1, 2**31 - 1, 5], dtype=I32)
    got = check(REDUCE_SRC, "sum_i32", target, (xi,), np.sum(xi))
    assert got.dtype == I64 and got == 2 * (2**31 - 1) + 5
    b = np.array([[True, False], [True, True]])
    check(REDUCE_SRC, "sum_bool", target, (b,), np.sum(b, axis=0))


def test_i64_sum_wraps(target):
    x = np.array([2**63 - 1, 1], dtype=I64)
    check(REDUCE_SRC, "sum_i64", target, (x,), np.sum(x))


def test_mean(target, mat):
    check(REDUCE_SRC, "mean_all", target, (mat.astype(F32),), np.mean(mat.astype(F32)))
    check(REDUCE_SRC, "mean_axis", target, (mat,), np.mean(mat, axis=1, keepdims=True))
    xi = np.array([1, 2, 4], dtype=I32)
    got = check(REDUCE_SRC, "mean_int", target, (xi,), np.mean(xi))
    assert got.dtype == F64
    check(REDUCE_SRC, "mean_over_n", target, (mat[0].astype(F32),), np.sum(mat[0].astype(F32)) / 4)


def test_max_min_argmax_argmin(target, mat):
    check(REDUCE_SRC, "max_all", target, (mat,), np.max(mat))
    check(REDUCE_SRC, "max_axis", target, (mat,), np.max(mat, axis=1))
    check(REDUCE_SRC, "min_axis", target, (mat,), np.min(mat, axis=0))
    xi = np.array([3, -9, 12, 0], dtype=I32)
    check(REDUCE_SRC, "max_int", target, (xi,), (np.max(xi), np.min(xi)))
    check(REDUCE_SRC, "argmax_all", target, (mat,), np.argmax(mat))
    check(REDUCE_SRC, "argmax_axis", target, (mat,), np.argmax(mat, axis=1))
    check(REDUCE_SRC, "argmin_axis", target, (mat,), np.argmin(mat, axis=0))
    check(REDUCE_SRC, "argmax_keep", target, (mat,),
          (np.argmax(mat, axis=0, keepdims=True), np.argmin(mat, keepdims=True)))


def test_argmax_gives_the_first_index(target):
    x = np.array([[1.0, 5.0, 5.0, 5.0], [2.0, 2.0, 0.0, 2.0]])
    got = check(REDUCE_SRC, "argmax_axis", target, (x,), np.array([1, 0]))
    assert got.dtype == I64
    check(REDUCE_SRC, "argmin_axis", target, (np.array([[1.0, 0.0], [1.0, 0.0]]),), np.array([0, 0]))
    check(REDUCE_SRC, "argmax_all", target, (np.full((2, 3), 4.0),), np.int64(0))


def test_nan_propagates_through_max_min_and_argmax(target):
    x = np.array([[1.0, np.nan, 3.0], [np.nan, 2.0, np.nan], [0.0, -1.0, 5.0]])
    check(REDUCE_SRC, "max_axis", target, (x,), np.max(x, axis=1))
    check(REDUCE_SRC, "min_axis", target, (x,), np.min(x, axis=0))
    check(REDUCE_SRC, "max_all", target, (x,), np.max(x))
    check(REDUCE_SRC, "argmax_axis", target, (x,), np.argmax(x, axis=1))
    check(REDUCE_SRC, "argmin_axis", target, (x,), np.argmin(x, axis=0))


def test_any_all(target):
    b = np.array([[True, False, True], [True, True, True]])
    check(REDUCE_SRC, "any_all", target, (b,), (np.any(b), np.all(b), np.any(b, axis=1), np.all(b, axis=0)))
    x = np.array([0.0, np.nan, -0.0])
    check(REDUCE_SRC, "any_float", target, (x,), (np.any(x), np.all(x)))


def test_reductions_over_zero_elements(target):
    empty = np.zeros((0, 3), dtype=F32)
    check(REDUCE_SRC, "sum_all", target, (empty,), np.float32(0))
    check(REDUCE_SRC, "sum_axis", target, (np.zeros((2, 0), dtype=F32),), np.zeros(2, dtype=F32))
    check(REDUCE_SRC, "prod_axis", target, (np.zeros((0, 2)),), np.ones(2))
    check(REDUCE_SRC, "prod_all", target, (np.zeros((0, 0)),), np.float64(1))
    got = check(REDUCE_SRC, "mean_all", target, (empty,), np.float32(np.nan))
    assert np.isnan(got)
    check(REDUCE_SRC, "mean_axis", target, (np.zeros((2, 0)),), np.full((2, 1), np.nan))
    check(REDUCE_SRC, "sum_i32", target, (np.zeros(0, dtype=I32),), np.int64(0))
    assert np.isnan(run(REDUCE_SRC, "mean_int", target, np.zeros(0, dtype=I32)))
    check(REDUCE_SRC, "any_all", target, (np.zeros((0, 2), dtype=bool),),
          (np.bool_(False), np.bool_(True), np.zeros(0, dtype=bool), np.ones(2, dtype=bool)))


@pytest.mark.parametrize("fn,shape", [("max_all", (0, 3)), ("max_axis", (2, 0)), ("min_axis", (0, 2)),
                                      ("argmax_all", (0, 0)), ("argmax_axis", (3, 0)),
                                      ("argmin_axis", (0, 3)), ("max_int", (0,))])
def test_max_and_argmax_over_zero_elements_are_call_time_errors(target, fn, shape):
    dtype = I32 if fn == "max_int" else F64
    for t in {target, "numpy"}:
        with pytest.raises(tdsl.TdslRuntimeError):
            getattr(compiled(REDUCE_SRC, t), fn)(np.zeros(shape, dtype=dtype))


def test_max_keeps_an_empty_axis_that_is_not_reduced(target):
    """As NumPy: max over a non-empty axis of an array with another, empty axis is empty."""
    x = np.zeros((0, 3))
    check(REDUCE_SRC, "max_axis", target, (x,), np.max(x, axis=1))
    check(REDUCE_SRC, "argmax_axis", target, (x,), np.argmax(x, axis=1))
    check(REDUCE_SRC, "min_axis", target, (np.zeros((2, 0)),), np.min(np.zeros((2, 0)), axis=0))


def test_var_std(target, mat):
    check(REDUCE_SRC, "var_all", target, (mat,), (np.var(mat), np.std(mat)))
    x32 = mat.astype(F32)
    check(REDUCE_SRC, "var_axis", target, (x32,), (np.var(x32, axis=0), np.std(x32, axis=1, keepdims=True)))
    xi = np.array([1, 2, 4, 9], dtype=I32)
    check(REDUCE_SRC, "var_int", target, (xi,), (np.var(xi), np.std(xi)))


def test_logsumexp(target, mat):
    check(REDUCE_SRC, "lse", target, (mat,), (_lse(mat), _lse(mat, axis=1), _lse(mat, axis=0, keepdims=True)))
    big = np.array([[1000.0, 1000.0], [-np.inf, -np.inf]])
    got = check(REDUCE_SRC, "lse", target, (big,),
                (_lse(big), quiet(_lse, big, 1), quiet(_lse, big, 0, True)))
    assert got[1][0] == pytest.approx(1000 + math.log(2)) and got[1][1] == -np.inf
    x32 = np.array([0.5, -1.0, 88.0], dtype=F32)
    check(REDUCE_SRC, "lse32", target, (x32,), _lse(x32).astype(F32))


def test_softmax_and_log_softmax(target, mat):
    expected = (_softmax(mat), _softmax(mat, 0), np.log(_softmax(mat)), np.log(_softmax(mat, 0)))
    check(REDUCE_SRC, "smax", target, (mat,), expected)
    big = np.array([[1000.0, 0.0], [-1000.0, -1000.0]])
    got = check(REDUCE_SRC, "smax", target, (big,),
                (_softmax(big), _softmax(big, 0), big - _lse(big, 1, True), big - _lse(big, 0, True)))
    assert np.isfinite(got[2]).all()
    x32 = np.array([0.5, -1.0, 3.0], dtype=F32)
    check(REDUCE_SRC, "smax32", target, (x32,), (_softmax(x32), np.log(_softmax(x32))))
    xi = np.array([1, 2, 3], dtype=I32)
    check(REDUCE_SRC, "smax_int", target, (xi,), _softmax(xi.astype(F64)))


def test_softmax_and_logsumexp_over_an_empty_axis(target):
    """No elements to shift by: softmax is empty and logsumexp is log(0) = -inf, as NumPy's
    `np.log(np.sum(np.exp(x)))` and SciPy give; a max over the same axis still fails."""
    empty = np.zeros((0, 3))
    check(REDUCE_SRC, "smax", target, (empty,), (empty, empty, empty, empty))
    check(REDUCE_SRC, "lse", target, (empty,),
          (np.float64(-np.inf), np.zeros(0), np.full((1, 3), -np.inf)))
    check(REDUCE_SRC, "smax32", target, (np.zeros(0, F32),), (np.zeros(0, F32), np.zeros(0, F32)))
    with pytest.raises(tdsl.TdslRuntimeError, match="max over axis 0 of length 0 has no identity"):
        compiled(REDUCE_SRC, target).max_all(np.zeros((0, 3)))


INITIAL_SRC = """
fn f(x: f64[n, m]) { return max(x, axis=1, initial=-1e400), min(x, initial=2.5), max(x, 0, initial=0.5) }
fn g(x: i32[n]) { return max(x, initial=-2147483648), max(x, initial=3), min(x, initial=-1) }
"""


@pytest.mark.parametrize("x", [np.zeros((2, 0)), np.array([[1.0, 5.0], [-3.0, np.nan]]), np.zeros((0, 3))])
def test_max_and_min_take_numpys_initial(target, x):
    expected = (np.max(x, axis=1, initial=-np.inf), np.min(x, initial=2.5), np.max(x, 0, initial=0.5))
    check(INITIAL_SRC, "f", target, (x,), expected)


@pytest.mark.parametrize("x", [np.zeros(0, I32), np.array([1, 7, -4], I32)])
def test_max_and_min_of_integers_take_numpys_initial(target, x):
    expected = (np.max(x, initial=-2**31), np.max(x, initial=3), np.min(x, initial=-1))
    check(INITIAL_SRC, "g", target, (x,), tuple(np.asarray(e, I32) for e in expected))


def test_initial_must_be_a_number_literal():
    with pytest.raises(tdsl.TdslTypeError, match="initial= must be a number literal"):
        tdsl.compile("fn f(x: f64[n], b: f64) { return max(x, initial=b) }", target="numpy")


def test_long_f32_sum_stays_accurate(target):
    """Pairwise or blocked summation: 2,000,000 f32 values within 1e-5 of NumPy's sum."""
    rng = np.random.default_rng(0)
    x = (rng.random((2_000_000, 1), dtype=F32) + F32(0.5))
    got = run(REDUCE_SRC, "sum_all", target, x)
    assert got.dtype == F32
    assert abs(float(got) - float(np.sum(x))) <= 1e-5 * abs(float(np.sum(x)))


# -- linear algebra -------------------------------------------------------------------------

LINALG_SRC = """
fn mm(a: f32[n, k], b: f32[k, m]) { return a @ b }
fn mm_fn(a: f64[n, k], b: f64[k, m]) { return matmul(a, b) }
fn mv(a: f64[n, k], v: f64[k]) { return a @ v }
fn vm(v: f64[k], a: f64[k, m]) { return v @ a }
fn vv(u: f64[k], v: f64[k]) { return u @ v }
fn batched(a: f64[b, n, k], c: f64[b, k, m]) { return a @ c }
fn batch_bcast(a: f64[b, 1, n, k], c: f64[e, k, m]) { return a @ c }
fn batch_2d(a: f64[b, n, k], c: f64[k, m]) { return a @ c }
fn batch_vec(a: f64[b, n, k], v: f64[k]) { return a @ v, v @ c_of(a) }
fn c_of(a: f64[b, n, k]) { return transpose(a, (0, 2, 1)) }
fn mm_mixed(a: i32[n, k], b: f32[k, m]) { return a @ b }
fn mm_int(a: i64[n, k], b: i64[k, m]) { return a @ b }
fn dots(u: f64[k], v: f64[k], a: f64[n, k], c: f64[k, m], s: f64) {
    return dot(u, v), dot(a, v), dot(u, c), dot(a, c), dot(u, s)
}
fn dot3(t: f64[b, n, k], v: f64[k]) { return dot(t, v) }
fn outers(u: f32[n], v: f64[m], a: f64[p, q]) { return outer(u, v), outer(a, v) }
fn transposes(x: f64[a, b, c], y: f64[n, m], v: f64[n]) {
    return transpose(x, (2, 0, 1)), transpose(x), x.T, y.T, transpose(y, (1, 0)), v.T
}
"""


def test_matmul_2d_1d(target):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    check(LINALG_SRC, "mm", target, (a.astype(F32), b.astype(F32)), a.astype(F32) @ b.astype(F32))
    check(LINALG_SRC, "mm_fn", target, (a, b), np.matmul(a, b))
    v, u = rng.standard_normal(4), rng.standard_normal(4)
    check(LINALG_SRC, "mv", target, (a, v), a @ v)
    check(LINALG_SRC, "vm", target, (v, b), v @ b)
    got = check(LINALG_SRC, "vv", target, (u, v), u @ v)
    assert np.ndim(got) == 0
    ai, bf = np.arange(6, dtype=I32).reshape(2, 3), np.ones((3, 2), dtype=F32)
    check(LINALG_SRC, "mm_mixed", target, (ai, bf), ai @ bf)
    check(LINALG_SRC, "mm_int", target, (ai.astype(I64), ai.T.astype(I64)), ai.astype(I64) @ ai.T.astype(I64))


def test_matmul_batched_with_broadcasting(target):
    rng = np.random.default_rng(2)
    a, c = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    check(LINALG_SRC, "batched", target, (a, c), a @ c)
    a4, c3 = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((6, 4, 5))
    got = check(LINALG_SRC, "batch_bcast", target, (a4, c3), a4 @ c3)
    assert got.shape == (2, 6, 3, 5)
    check(LINALG_SRC, "batch_2d", target, (a, c[0]), a @ c[0])
    v = rng.standard_normal(4)
    check(LINALG_SRC, "batch_vec", target, (a, v), (a @ v, v @ np.transpose(a, (0, 2, 1))))


def test_empty_inner_dimension_gives_zeros(target):
    a, b = np.zeros((2, 0), dtype=F32), np.zeros((0, 3), dtype=F32)
    check(LINALG_SRC, "mm", target, (a, b), np.zeros((2, 3), dtype=F32))


def test_dot_and_outer(target):
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(3), rng.standard_normal(3)
    a, c = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    check(LINALG_SRC, "dots", target, (u, v, a, c, 2.5),
          (np.dot(u, v), np.dot(a, v), np.dot(u, c), np.dot(a, c), np.dot(u, 2.5)))
    t = rng.standard_normal((2, 4, 3))
    check(LINALG_SRC, "dot3", target, (t, v), np.dot(t, v))
    u32, m = rng.standard_normal(2).astype(F32), rng.standard_normal((2, 2))
    check(LINALG_SRC, "outers", target, (u32, v, m), (np.outer(u32, v), np.outer(m, v)))


def test_transpose(target):
    x, y, v = np.arange(24.0).reshape(2, 3, 4), np.arange(6.0).reshape(2, 3), np.arange(2.0)
    check(LINALG_SRC, "transposes", target, (x, y, v),
          (np.transpose(x, (2, 0, 1)), np.transpose(x), x.T, y.T, y.T, v.T))


# -- shapes -----------------------------------------------------------------------------------

SHAPE_SRC = """
fn flat(x: f64[n, m]) { return reshape(x, (-1,)), reshape(x, (n * m,)), reshape(x, (m, n)) }
fn hole(x: f64[n, m]) { return reshape(x, (m, -1)), reshape(x, (-1, 1, m)) }
fn const_reshape(x: i32[2, 6]) { return reshape(x, (3, -1)), reshape(x, (4, 3)) }
fn to_scalar(x: f64[1, 1]) { return reshape(x, ()) }
fn halves(x: f64[n]) { return reshape(x, (-1, 2)) }
fn expand(x: f64[n, m]) { return expand_dims(x, 0), expand_dims(x, -1), expand_dims(x, axis=(0, 2)) }
fn squeezes(x: f64[n, 1, m, 1]) { return squeeze(x), squeeze(x, 1), squeeze(x, axis=-1), squeeze(x, (1, 3)) }
fn bcast(x: f64[m], y: f64[n, 1]) { return broadcast_to(x, (n, m)), broadcast_to(y, (2, n, 3)) }
fn bcast_scalar(s: f32) { return broadcast_to(s, (2, 3)) }
fn cat(a: f64[n, m], b: f64[k, m], c: f64[n, p]) { return concat((a, b)), concat((a, c), axis=1), concat((a, a, b), 0) }
fn cat_mixed(a: f32[n], b: i32[m]) { return concat((a, b)) }
fn cat_neg(a: f64[n, m], c: f64[n, p]) { return concat((a, c), -1) }
fn stk(a: f64[n, m], b: f64[n, m]) { return stack((a, b)), stack((a, b), axis=1), stack((a, b, a), -1) }
fn stk_scalars(s: f64, t: f64) { return stack((s, t)) }
fn flips(x: f64[n, m]) { return flip(x), flip(x, 0), flip(x, axis=1), flip(x, (0, 1)) }
"""


def test_reshape(target):
    x = np.arange(12.0).reshape(3, 4)
    check(SHAPE_SRC, "flat", target, (x,), (x.reshape(-1), x.reshape(12), x.reshape(4, 3)))
    check(SHAPE_SRC, "hole", target, (x,), (x.reshape(4, -1), x.reshape(-1, 1, 4)))
    xi = np.arange(12, dtype=I32).reshape(2, 6)
    check(SHAPE_SRC, "const_reshape", target, (xi,), (xi.reshape(3, -1), xi.reshape(4, 3)))
    got = check(SHAPE_SRC, "to_scalar", target, (np.array([[2.5]]),), np.float64(2.5))
    assert np.ndim(got) == 0
    check(SHAPE_SRC, "halves", target, (np.arange(6.0),), np.arange(6.0).reshape(-1, 2))


def test_reshape_with_a_size_that_does_not_divide_is_a_call_time_error(target):
    with pytest.raises(tdsl.TdslArgumentError, match="reshape"):
        compiled(SHAPE_SRC, target).halves(np.arange(5.0))


def test_expand_dims_and_squeeze(target):
    x = np.arange(6.0).reshape(2, 3)
    check(SHAPE_SRC, "expand", target, (x,), (np.expand_dims(x, 0), np.expand_dims(x, -1), np.expand_dims(x, (0, 2))))
    y = np.arange(6.0).reshape(2, 1, 3, 1)
    check(SHAPE_SRC, "squeezes", target, (y,),
          (np.squeeze(y), np.squeeze(y, 1), np.squeeze(y, -1), np.squeeze(y, (1, 3))))


def test_broadcast_to(target):
    x, y = np.arange(3.0), np.arange(2.0).reshape(2, 1)
    check(SHAPE_SRC, "bcast", target, (x, y), (np.broadcast_to(x, (2, 3)), np.broadcast_to(y, (2, 2, 3))))
    check(SHAPE_SRC, "bcast_scalar", target, (F32(1.5),), np.full((2, 3), 1.5, dtype=F32))


def test_concat_and_stack(target):
    a, b, c = np.arange(6.0).reshape(2, 3), np.arange(3.0).reshape(1, 3), np.arange(4.0).reshape(2, 2)
    check(SHAPE_SRC, "cat", target, (a, b, c),
          (np.concatenate((a, b)), np.concatenate((a, c), axis=1), np.concatenate((a, a, b), 0)))
    check(SHAPE_SRC, "cat_neg", target, (a, c), np.concatenate((a, c), -1))
    af, bi = np.array([1.5], dtype=F32), np.array([2, 3], dtype=I32)
    check(SHAPE_SRC, "cat_mixed", target, (af, bi), np.concatenate((af, bi)))
    check(SHAPE_SRC, "stk", target, (a, a + 10), (np.stack((a, a + 10)), np.stack((a, a + 10), axis=1),
                                                  np.stack((a, a + 10, a), -1)))
    check(SHAPE_SRC, "stk_scalars", target, (1.0, 2.0), np.array([1.0, 2.0]))


def test_flip(target):
    x = np.arange(6.0).reshape(2, 3)
    check(SHAPE_SRC, "flips", target, (x,), (np.flip(x), np.flip(x, 0), np.flip(x, axis=1), np.flip(x, (0, 1))))
    check(SHAPE_SRC, "flips", target, (np.zeros((0, 3)),), (np.zeros((0, 3)),) * 4)


# -- creation -------------------------------------------------------------------------------

CREATE_SRC = """
fn zs(x: f32[n]) { return zeros(n), zeros((n, 2)), zeros((2, n), dtype=f32), zeros(3, dtype=i32), zeros(n, dtype=bool) }
fn os(x: f32[n]) { return ones(n), ones((n, 2), dtype=i64), ones(2, dtype=f32) }
fn fulls(x: f32[n]) { return full(n, 2.5), full((2, n), 7), full(n, true), full(n, 3, dtype=f32), full(n, x[0]) }
fn likes(x: f32[n, m], y: i32[n]) {
    return zeros_like(x), ones_like(y), zeros_like(x, dtype=i64), ones_like(x, dtype=bool)
}
fn ar(x: f32[n]) { return arange(n), arange(4), arange(n + 1) }
fn eyes(x: f32[n]) { return eye(n), eye(3, dtype=f32), eye(n, dtype=i32), eye(2, dtype=bool) }
fn empty_creation() { return zeros(0), arange(0), eye(0) }
"""


def test_zeros_ones_full(target):
    x = np.array([4.5, 1.0, 2.0], dtype=F32)
    check(CREATE_SRC, "zs", target, (x,), (np.zeros(3), np.zeros((3, 2)), np.zeros((2, 3), dtype=F32),
                                           np.zeros(3, dtype=I32), np.zeros(3, dtype=bool)))
    check(CREATE_SRC, "os", target, (x,), (np.ones(3), np.ones((3, 2), dtype=I64), np.ones(2, dtype=F32)))
    check(CREATE_SRC, "fulls", target, (x,), (np.full(3, 2.5), np.full((2, 3), 7), np.full(3, True),
                                              np.full(3, 3, dtype=F32), np.full(3, x[0])))


def test_like_arange_eye(target):
    x, y = np.ones((2, 3), dtype=F32), np.array([5, 6], dtype=I32)
    check(CREATE_SRC, "likes", target, (x, y), (np.zeros_like(x), np.ones_like(y), np.zeros_like(x, dtype=I64),
                                                np.ones_like(x, dtype=bool)))
    x = np.zeros(3, dtype=F32)
    check(CREATE_SRC, "ar", target, (x,), (np.arange(3), np.arange(4), np.arange(4)))
    check(CREATE_SRC, "eyes", target, (x,),
          (np.eye(3), np.eye(3, dtype=F32), np.eye(3, dtype=I32), np.eye(2, dtype=bool)))
    check(CREATE_SRC, "empty_creation", target, (), (np.zeros(0), np.arange(0), np.eye(0)))


# -- gathering ------------------------------------------------------------------------------

GATHER_SRC = """
fn tk(x: f64[n, m], i: i64[k]) { return take(x, i), take(x, i, axis=1), take(x, i, 1) }
fn tk32(x: f64[n], i: i32[a, b]) { return take(x, i) }
fn tk_index(x: f64[n, m], i: i32[k]) { return x[i] }
fn tk_scalar(x: f64[n, m]) { return take(x, -1, axis=1) }
fn oh(labels: i64[n]) { return one_hot(labels, 4), one_hot(labels, 3, dtype=f32) }
fn oh32(labels: i32[a, b], x: f32[k]) { return one_hot(labels, k, dtype=i32) }
"""


def test_take(target):
    x = np.arange(12.0).reshape(3, 4)
    i = np.array([0, -1, 2, -3])
    check(GATHER_SRC, "tk", target, (x, i[[0, 1, 2]]),
          (np.take(x, i[[0, 1, 2]], axis=0), np.take(x, i[[0, 1, 2]], axis=1), np.take(x, i[[0, 1, 2]], axis=1)))
    check(GATHER_SRC, "tk", target, (x, np.array([-3, 3], dtype=I64)[:1]),
          (np.take(x, [-3], 0), np.take(x, [-3], 1), np.take(x, [-3], 1)))
    idx = np.array([[0, -1], [2, 1]], dtype=I32)
    check(GATHER_SRC, "tk32", target, (np.arange(5.0), idx), np.take(np.arange(5.0), idx))
    check(GATHER_SRC, "tk_index", target, (x, np.array([2, -1, 0], dtype=I32)), x[[2, -1, 0]])
    check(GATHER_SRC, "tk_scalar", target, (x,), np.take(x, -1, axis=1))
    check(GATHER_SRC, "tk", target, (x, np.zeros(0, dtype=I64)), (np.zeros((0, 4)), np.zeros((3, 0)), np.zeros((3, 0))))


@pytest.mark.parametrize("bad", [3, -4, 100, -100])
def test_take_out_of_range_is_a_call_time_error(target, bad):
    x = np.arange(12.0).reshape(3, 4)
    fn = compiled(GATHER_SRC, target).tk_index
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        fn(x, np.array([0, bad], dtype=I32))


def test_one_hot_rows_of_zeros_out_of_range(target):
    labels = np.array([0, 3, 4, -1, 2])
    expected4 = (labels[:, None] == np.arange(4)).astype(F64)
    expected3 = (labels[:, None] == np.arange(3)).astype(F32)
    got = check(GATHER_SRC, "oh", target, (labels,), (expected4, expected3))
    assert not got[0][2].any() and not got[0][3].any()
    lab = np.array([[1, 5], [0, -2]], dtype=I32)
    check(GATHER_SRC, "oh32", target, (lab, np.zeros(2, dtype=F32)), (lab[..., None] == np.arange(2)).astype(I32))


# -- indexing ---------------------------------------------------------------------------------

INDEX_SRC = """
fn slices(x: f64[n]) { return x[1:], x[:-1], x[::2], x[::-1], x[-3:], x[1:3], x[-1], x[0] }
fn slices2(x: f64[n, m]) { return x[1:, ::-1], x[:, 0], x[-1], x[..., 1], x[None, 1:], x[:, None, 2:3] }
fn steps(x: f64[n]) { return x[1::3], x[-2::-2], x[5:1:-1], x[3:1] }
fn ell(x: f64[a, b, c]) { return x[..., 0], x[0, ...], x[1, ..., ::-1], x[:, None, ...] }
fn slice_2(x: f64[n]) { return x[2:] }
"""


def test_indexing_matches_numpy(target):
    x = np.arange(7.0)
    check(INDEX_SRC, "slices", target, (x,), (x[1:], x[:-1], x[::2], x[::-1], x[-3:], x[1:3], x[-1], x[0]))
    y = np.arange(12.0).reshape(3, 4)
    check(INDEX_SRC, "slices2", target, (y,), (y[1:, ::-1], y[:, 0], y[-1], y[..., 1], y[None, 1:], y[:, None, 2:3]))
    check(INDEX_SRC, "steps", target, (x,), (x[1::3], x[-2::-2], x[5:1:-1], x[3:1]))
    z = np.arange(24.0).reshape(2, 3, 4)
    check(INDEX_SRC, "ell", target, (z,), (z[..., 0], z[0, ...], z[1, ..., ::-1], z[:, None, ...]))


def test_slice_of_a_too_short_axis_is_a_call_time_error(target):
    fn = compiled(INDEX_SRC, target).slice_2
    assert_same(fn(np.arange(2.0)), np.zeros(0))
    with pytest.raises(tdsl.TdslArgumentError, match=r"n = 1 from x") as err:
        fn(np.arange(1.0))
    assert err.value.loc is not None and err.value.loc.line == 6
    with pytest.raises(tdsl.TdslArgumentError, match=r"n = 1 from x"):
        compiled(INDEX_SRC, target).slices(np.arange(1.0))
