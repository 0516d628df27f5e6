"""Section 12's composite builtins against NumPy itself, on every target: the consts inf, nan, pi
and e, einsum, norm, diff; their gradients; their errors; and NumPy's methods on tdsl.Var.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, run
from tdsl.gradcheck import check_grad

RNG = np.random.default_rng(12)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


# -- consts ------------------------------------------------------------------------------

CONSTS_SOURCE = """
const BIG = inf
const LIMITS = [-inf, 0.0, inf]
fn scaled(x: f32[n]) -> f32[n] { return x * inf }
fn masked(x: f32[n]) -> f32[n] { return where(x > 0.0, x, -inf) }
fn nan_plus(x: f32[n]) -> f32[n] { return nan + x }
fn top(x: f32[n]) -> f32 { return max(x, initial=-inf) }
fn numbers() -> f64 { return pi * e }
fn big(x: f32[n]) -> f32[n] { return minimum(x, BIG) }
fn limits(x: f32) -> f32[3] { return LIMITS * x }
fn ints(i: i32[n]) -> f64[n] { return i * pi }
"""


def test_consts(target):
    x = np.array([1.5, -2.0, 0.0], np.float32)
    with np.errstate(invalid="ignore"):
        assert_same(run(CONSTS_SOURCE, "scaled", target, x), x * np.inf)
    assert_same(run(CONSTS_SOURCE, "masked", target, x), np.where(x > 0.0, x, -np.inf))
    assert_same(run(CONSTS_SOURCE, "nan_plus", target, x), np.nan + x)
    assert_same(run(CONSTS_SOURCE, "top", target, x), x.max(initial=-np.inf))
    assert_same(run(CONSTS_SOURCE, "top", target, np.zeros(0, np.float32)), np.float32(-np.inf))
    assert_same(run(CONSTS_SOURCE, "numbers", target), np.float64(np.pi * np.e))
    assert_same(run(CONSTS_SOURCE, "big", target, x), np.minimum(x, np.inf))
    with np.errstate(invalid="ignore"):
        assert_same(run(CONSTS_SOURCE, "limits", target, np.float32(2)), np.array([-np.inf, 0.0, np.inf], np.float32))
    i = np.array([1, -3], np.int32)
    assert_same(run(CONSTS_SOURCE, "ints", target, i), i * np.pi)


SHADOW_SOURCE = """
const pi = 3
fn shadow(inf: f32, x: f32[n]) -> f32[n] {
    e = x * 2.0
    return e + inf + pi
}
fn sizes(x: f32[e]) -> i64 { return e }
fn loop_sum(x: f64[n]) -> f64 {
    s = 0.0
    for nan in range(n) { s = s + x[nan] }
    return s
}
"""


def test_user_names_shadow_the_consts(target):
    x = np.array([1.0, 2.0], np.float32)
    assert_same(run(SHADOW_SOURCE, "shadow", target, np.float32(0.5), x), x * 2 + np.float32(0.5) + 3)
    assert run(SHADOW_SOURCE, "sizes", target, x) == 2
    assert_same(run(SHADOW_SOURCE, "loop_sum", target, np.array([1.0, 2.0])), np.float64(3.0))


def test_python_consts():
    assert (tdsl.inf, tdsl.pi, tdsl.e) == (np.inf, np.pi, np.e)
    assert math.isnan(tdsl.nan) and all(type(v) is float for v in (tdsl.inf, tdsl.nan, tdsl.pi, tdsl.e))


# -- einsum -----------------------------------------------------------------------------

# (spec, the parameters' types): each becomes a function of the module below
EINSUM = [
    ("ij,jk->ik", "a: f32[n, k], b: f32[k, m]"),
    ("ij->ji", "a: f64[n, k]"),
    ("ij->", "a: i32[n, k]"),
    ("ij->j", "a: f64[n, k]"),
    ("ii->i", "a: f64[n, n]"),
    ("ii->", "a: i64[n, n]"),
    ("iij->ji", "a: f64[n, n, k]"),
    ("i,i->", "a: f64[n], b: f64[n]"),
    ("i,j->ij", "a: f32[n], b: f32[k]"),
    ("bij,bjk->bik", "a: f64[p, n, k], b: f64[p, k, m]"),
    ("ij,jk,kl->il", "a: f64[n, k], b: f64[k, m], c: f64[m, p]"),
    ("ijk->kji", "a: f64[n, k, m]"),
    ("ij,ij->ij", "a: f64[n, k], b: f64[n, k]"),
    ("ij,ij->", "a: f64[n, k], b: i32[n, k]"),
    ("i,i,i->i", "a: f64[n], b: f64[n], c: f64[n]"),
    ("bi,i->b", "a: f64[n, k], b: f64[k]"),
    ("ij,kj->ik", "a: i32[n, k], b: i32[m, k]"),
    ("ij,jk->", "a: f64[n, k], b: f64[k, m]"),
    ("ij,j->i", "a: f64[n, 1], b: f64[k]"),
    ("ij,ij->i", "a: f64[1, k], b: f64[n, k]"),
    (",i->i", "a: f64, b: f64[n]"),
    ("...ij,...jk->...ik", "a: f64[p, n, k], b: f64[k, m]"),
    ("i...->...", "a: f64[n, k, m]"),
    ("ijkl,ljmk->mi", "a: f64[n, k, m, p], b: f64[p, k, 3, m]"),
    ("ab,bc,cd,da->", "a: f64[n, k], b: f64[k, m], c: f64[m, p], d: f64[p, n]"),
    ("ij,jk->ik", "a: f64[n, 1], b: f64[3, m]"),
    ("bij,bjk->bik", "a: f64[1, n, k], b: f64[p, k, m]"),
    ("ij,jk,ik->i", "a: f64[1, k], b: f64[k, m], c: f64[n, 1]"),
]
PARAM = re.compile(r"(\w+): (\w+)(?:\[([^\]]*)\])?")
EINSUM_SOURCE = "".join(f'fn e{i}({params}) {{ return einsum("{spec}", {", ".join(n for n, _, _ in PARAM.findall(params))}) }}\n'
                        for i, (spec, params) in enumerate(EINSUM))
SIZES = {"n": 3, "k": 4, "m": 2, "p": 5}
DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64}


def _arguments(params: str, sizes: dict) -> list:
    args = []
    for _, dtype, dims in PARAM.findall(params):
        shape = [sizes[d] if d in sizes else int(d) for d in dims.split(", ")] if dims else []
        value = RNG.standard_normal(shape) * 3
        args.append(np.asarray(value).astype(DTYPES[dtype])[()] if shape else DTYPES[dtype](value))
    return args


@pytest.mark.parametrize("sizes", [SIZES, {"n": 0, "k": 2, "m": 3, "p": 1}, {"n": 1, "k": 1, "m": 1, "p": 1}],
                         ids=["sizes", "empty", "ones"])
def test_einsum_matches_numpy(target, sizes):
    for i, (spec, params) in enumerate(EINSUM):
        args = _arguments(params, sizes)
        got = run(EINSUM_SOURCE, f"e{i}", target, *args)
        assert_same(got, np.einsum(spec, *args), rtol=1e-4, atol=1e-5)


def test_einsum_non_contiguous_inputs(target):
    a = rand(6, 8)[::2, 1::2]         # f64[3, 4], strided
    b = np.asfortranarray(rand(4, 3))  # Fortran order
    c = rand(5, 3)[:, ::-1].copy()[:, ::-1]
    assert_same(run(EINSUM_SOURCE, "e10", target, a, b.astype(np.float64)[:, :2], c[:2, :]),
                np.einsum("ij,jk,kl->il", a, b[:, :2], c[:2, :]))
    assert_same(run(EINSUM_SOURCE, "e4", target, a[:, :3].T), np.einsum("ii->i", a[:, :3].T))


def test_einsum_nan_propagates_only_where_numpy_does(target):
    a = rand(3, 3)
    a[0, 1] = np.nan       # off the diagonal: "ii->i" never reads it
    assert_same(run(EINSUM_SOURCE, "e4", target, a), np.einsum("ii->i", a))
    b, c = rand(3), rand(3)
    b[1] = np.inf
    assert_same(run(EINSUM_SOURCE, "e7", target, b, c), np.einsum("i,i->", b, c))


def test_einsum_uses_matmul_for_a_contraction():
    m = tdsl.compile(EINSUM_SOURCE, target="numpy")
    ops = {n.op for n in _nodes(m.e0.graph.outputs)}
    assert "matmul" in ops and "sum" not in ops
    ops = {n.op for n in _nodes(m.e10.graph.outputs)}
    assert "matmul" in ops


def _nodes(roots):
    from tdsl.graph import toposort
    return toposort(list(roots))


EINSUM_GRAD_SOURCE = """
fn mm(a: f64[n, k], b: f64[k, m], c: f64[n, m]) -> f64 { return sum(einsum("ij,jk->ik", a, b) * c) }
fn diag(a: f64[n, n], c: f64[n]) -> f64 { return sum(einsum("ii->i", a) * c) }
fn chain(a: f64[n, k], b: f64[k, m], c: f64[m, n]) -> f64 { return einsum("ij,jk,ki->", a, b, c) }
fn batch(a: f64[p, n, k], b: f64[k, m], c: f64[p, m, n]) -> f64 { return sum(einsum("bij,jk->bki", a, b) * c) }
fn outer_product(a: f64[n], b: f64[k], c: f64[n, k]) -> f64 { return sum(einsum("i,j->ij", a, b) * c) }
fn trace(a: f64[n, n]) -> f64 { return einsum("ii->", a) }
"""


@pytest.mark.parametrize("fn", ["mm", "diag", "chain", "batch", "outer_product", "trace"])
def test_einsum_gradients(target, fn):
    m = compiled(EINSUM_GRAD_SOURCE, target)
    params = {p.name: p for p in getattr(m, fn).graph.params}
    args = [rand(*[SIZES[str(d)] for d in p.shape]) for p in params.values()]
    errors = check_grad(getattr(m, fn), *args)
    assert max(errors.values()) < 1e-5, errors


EINSUM_ERRORS = [
    ('einsum("ij,jk", a, b)', "explicit form with '->'"),
    ('einsum("i,i->ii", v, v)', "the output index 'i' is repeated"),
    ('einsum("ij->k", a)', "the output index 'k' appears in no operand"),
    ('einsum("ij,jk->ik", a)', "1 operand(s) are given"),
    ('einsum("ij,jk->ik", a, c)', "the index 'j' has two sizes, k and m"),
    ('einsum("ijk->i", a)', "has 3 indices but its operand is f64[n, k]"),
    ('einsum("i1->i", a)', "'1' in \"i1->i\" is not an index"),
    ('einsum("i...->i", a3)', "the output of \"i...->i\" has no '...'"),
    ('einsum("i->i", m)', "arithmetic on bool"),
    ('einsum("ii->i", a)', "the index 'i' has two sizes, n and k"),
    ('einsum(a, b)', "its spec, a string"),
    ('einsum("i->i")', "at least one operand"),
    ('einsum("i->->i", v)', "'->' twice"),
]


@pytest.mark.parametrize("call, message", EINSUM_ERRORS)
def test_einsum_errors(call, message):
    source = ("fn f(a: f64[n, k], b: f64[k, m], c: f64[m, k], v: f64[n], a3: f64[n, k, m], m: bool[n]) {\n"
              f"    return {call}\n}}")
    with pytest.raises(tdsl.TdslTypeError) as caught:
        tdsl.compile(source, target="numpy")
    assert message in caught.value.message
    assert (caught.value.loc.line, caught.value.loc.col) == (2, 12)


STRING_ERRORS = [
    ('fn f(x: f64[n]) {\n    s = "ij"\n    return x\n}', "expected an expression"),
    ('fn f(x: f64[n]) {\n    return x + "ij"\n}', "expected an expression"),
    ('fn f(x: f64[n]) {\n    return sum("ij")\n}', "cannot use 'ij' as a value"),
]


@pytest.mark.parametrize("source, message", STRING_ERRORS)
def test_strings_only_as_arguments(source, message):
    with pytest.raises(tdsl.TdslError) as caught:
        tdsl.compile(source, target="numpy")
    assert message in caught.value.message and caught.value.loc.line == 2


# -- norm ---------------------------------------------------------------------------------

NORM_SOURCE = """
fn two(x: f32[n]) -> f32 { return norm(x) }
fn one(x: f64[n, k]) -> f64[n] { return norm(x, 1, axis=1) }
fn top(x: f64[n, k]) -> f64[1, k] { return norm(x, inf, 0, keepdims=true) }
fn bottom(x: f64[n, k]) -> f64[n] { return norm(x, ord=-inf, axis=-1) }
fn two_axis(x: f32[n, k, m]) -> f32[n, m] { return norm(x, 2, axis=1) }
fn fro(x: f64[n, k]) -> f64 { return norm(x) }
fn fro_axes(x: f32[n, k, m]) -> f32[k] { return norm(x, axis=(0, 2)) }
fn fro_keep(x: f64[n, k]) -> f64[1, 1] { return norm(x, keepdims=true) }
fn all3(x: f64[n, k, m]) -> f64 { return norm(x) }
fn ints(i: i32[n]) -> f64 { return norm(i, 1) }
fn flags(b: bool[n]) -> f64 { return norm(b) }
fn vec_inf(x: f32[n]) -> f32 { return norm(x, inf) }
"""


def test_norm_matches_numpy(target):
    v, a, a3 = rand(5, dtype=np.float32), rand(3, 4), rand(3, 4, 2, dtype=np.float32)
    la = np.linalg
    assert_same(run(NORM_SOURCE, "two", target, v), la.norm(v))
    assert_same(run(NORM_SOURCE, "one", target, a), la.norm(a, 1, axis=1))
    assert_same(run(NORM_SOURCE, "top", target, a), la.norm(a, np.inf, 0, keepdims=True))
    assert_same(run(NORM_SOURCE, "bottom", target, a), la.norm(a, -np.inf, axis=-1))
    assert_same(run(NORM_SOURCE, "two_axis", target, a3), la.norm(a3, 2, axis=1))
    assert_same(run(NORM_SOURCE, "fro", target, a), la.norm(a))
    assert_same(run(NORM_SOURCE, "fro_axes", target, a3), la.norm(a3, axis=(0, 2)))
    assert_same(run(NORM_SOURCE, "fro_keep", target, a), la.norm(a, keepdims=True))
    assert_same(run(NORM_SOURCE, "all3", target, a3.astype(np.float64)), la.norm(a3.astype(np.float64)))
    i = np.array([3, -4, 2**31 - 1], np.int32)
    assert_same(run(NORM_SOURCE, "ints", target, i), la.norm(i, 1))
    b = np.array([True, False, True])
    assert_same(run(NORM_SOURCE, "flags", target, b), la.norm(b))
    assert_same(run(NORM_SOURCE, "vec_inf", target, v), la.norm(v, np.inf))


def test_norm_corner_cases(target):
    la = np.linalg
    empty = np.zeros(0, np.float32)
    assert_same(run(NORM_SOURCE, "two", target, empty), la.norm(empty))
    assert_same(run(NORM_SOURCE, "one", target, np.zeros((2, 0))), la.norm(np.zeros((2, 0)), 1, axis=1))
    with_nan = np.array([1.0, np.nan, 2.0], np.float32)
    assert_same(run(NORM_SOURCE, "two", target, with_nan), la.norm(with_nan))
    assert_same(run(NORM_SOURCE, "vec_inf", target, with_nan), la.norm(with_nan, np.inf))
    with_inf = np.array([[1.0, -np.inf], [0.0, 0.0]])
    assert_same(run(NORM_SOURCE, "one", target, with_inf), la.norm(with_inf, 1, axis=1))
    assert_same(run(NORM_SOURCE, "bottom", target, with_inf), la.norm(with_inf, -np.inf, axis=-1))
    strided = rand(4, 3)[::2, ::-1]
    assert_same(run(NORM_SOURCE, "fro", target, strided), la.norm(strided))


NORM_GRAD_SOURCE = """
fn g_two(x: f64[n], c: f64) -> f64 { return norm(x) * c }
fn g_one(x: f64[n, 3]) -> f64 { return sum(norm(x, 1, axis=0) * [1.0, 2.0, 3.0]) }
fn g_inf(x: f64[n, k]) -> f64 { return sum(norm(x, inf, axis=1)) + sum(norm(x, -inf, axis=1)) }
fn g_fro(x: f64[n, k]) -> f64 { return norm(x) }
fn at_zero(x: f64[n]) -> f64[n] { return grad(norm(x), x) }
fn at_zero_fro(x: f64[n, k]) -> f64[n, k] { return grad(norm(x, axis=(0, 1)), x) }
fn at_zero_one(x: f64[n]) -> f64[n] { return grad(norm(x, 1), x) }
"""


@pytest.mark.parametrize("fn", ["g_two", "g_one", "g_inf", "g_fro"])
def test_norm_gradients(target, fn):
    m = compiled(NORM_GRAD_SOURCE, target)
    x = np.array([[0.5, -1.5, 2.0], [1.0, 3.0, -0.25]])
    args = [x[0], 1.5] if fn == "g_two" else [x]
    errors = check_grad(getattr(m, fn), *args)
    assert max(errors.values()) < 1e-5, errors


def test_norm_subgradient_at_zero_is_zero(target):
    assert_same(run(NORM_GRAD_SOURCE, "at_zero", target, np.zeros(3)), np.zeros(3))
    assert_same(run(NORM_GRAD_SOURCE, "at_zero_fro", target, np.zeros((2, 2))), np.zeros((2, 2)))
    assert_same(run(NORM_GRAD_SOURCE, "at_zero_one", target, np.zeros(3)), np.zeros(3))
    x = np.array([3.0, -4.0, 0.0])
    assert_same(run(NORM_GRAD_SOURCE, "at_zero", target, x), x / 5.0)


NORM_ERRORS = [
    ("norm(a, 2)", "only the Frobenius norm: leave ord out"),
    ("norm(a, 1, axis=(0, 1))", "only the Frobenius norm"),
    ("norm(v, 3)", "ord must be 1, 2, inf or -inf"),
    ("norm(v, 0)", "ord must be 1, 2, inf or -inf"),
    ("norm(a3, 1)", "needs a 1-D or 2-D value"),
    ("norm(a3, axis=(0, 1, 2))", "not 3"),
    ("norm(a, axis=(1, 1))", "repeated axis"),
    ("norm(v, axis=1)", "axis 1 is out of range"),
    ("norm(v, keepdims=1)", "keepdims must be true or false"),
]


@pytest.mark.parametrize("call, message", NORM_ERRORS)
def test_norm_errors(call, message):
    source = f"fn f(a: f64[n, k], v: f64[n], a3: f64[n, k, m]) {{\n    return {call}\n}}"
    with pytest.raises(tdsl.TdslTypeError) as caught:
        tdsl.compile(source, target="numpy")
    assert message in caught.value.message
    assert (caught.value.loc.line, caught.value.loc.col) == (2, 12)


# -- diff ---------------------------------------------------------------------------------

DIFF_SOURCE = """
fn last(x: f64[n, k]) -> f64[n, k - 1] { return diff(x) }
fn first(x: f32[n, k]) -> f32[n - 1, k] { return diff(x, 0) }
fn twice(x: f64[n]) -> f64[n - 2] { return diff(x, n=2) }
fn none(x: f64[n]) -> f64[n] { return diff(x, n=0) }
fn flags(b: bool[n, k]) -> bool[n, k - 1] { return diff(b, axis=-1) }
fn ints(i: i32[n]) -> i32[n - 1] { return diff(i) }
fn fixed(x: f64[4]) -> f64[3] { return diff(x) }
fn g_diff(x: f64[n, k], c: f64[n - 1, k]) -> f64 { return sum(diff(x, axis=0) * c) }
fn g_twice(x: f64[n], c: f64[n - 2]) -> f64 { return sum(diff(x, n=2) * c) }
"""


def test_diff_matches_numpy(target):
    x = rand(3, 5)
    assert_same(run(DIFF_SOURCE, "last", target, x), np.diff(x))
    assert_same(run(DIFF_SOURCE, "first", target, x.astype(np.float32)), np.diff(x.astype(np.float32), axis=0))
    assert_same(run(DIFF_SOURCE, "twice", target, x[0]), np.diff(x[0], 2))
    assert_same(run(DIFF_SOURCE, "none", target, x[0]), np.diff(x[0], n=0))
    b = np.array([[True, False, False, True], [False, False, True, True]])
    assert_same(run(DIFF_SOURCE, "flags", target, b), np.diff(b, axis=-1))
    i = np.array([2**31 - 1, -2**31, 5, 5], np.int32)
    assert_same(run(DIFF_SOURCE, "ints", target, i), np.diff(i))
    assert_same(run(DIFF_SOURCE, "fixed", target, x[0, :4]), np.diff(x[0, :4]))
    assert_same(run(DIFF_SOURCE, "last", target, x[:, ::-2]), np.diff(x[:, ::-2]))
    with_nan = np.array([1.0, np.nan, np.inf, np.inf])
    with np.errstate(invalid="ignore"):
        assert_same(run(DIFF_SOURCE, "twice", target, with_nan), np.diff(with_nan, 2))


def test_diff_of_one_element_is_empty(target):
    assert_same(run(DIFF_SOURCE, "last", target, np.ones((2, 1))), np.diff(np.ones((2, 1))))


def test_diff_of_an_empty_axis_is_a_call_time_error(target):
    # NumPy gives an empty array; tdsl's shape k - 1 would be negative (a slice never clamps)
    with pytest.raises(tdsl.TdslError):
        compiled(DIFF_SOURCE, target).last(np.ones((2, 0)))


@pytest.mark.parametrize("fn", ["g_diff", "g_twice"])
def test_diff_gradients(target, fn):
    m = compiled(DIFF_SOURCE, target)
    x = rand(3, 4)
    args = [x, rand(2, 4)] if fn == "g_diff" else [x[0], rand(2)]
    errors = check_grad(getattr(m, fn), *args)
    assert max(errors.values()) < 1e-6, errors


DIFF_ERRORS = [
    ("diff(s)", "needs an array"),
    ("diff(v, n=-1)", "n must be zero or more"),
    ("diff(v, axis=1)", "axis 1 is out of range"),
    ("diff(w)", "needs a longer axis"),
    ("diff(v, prepend=0.0)", "has no argument 'prepend'"),
]


@pytest.mark.parametrize("call, message", DIFF_ERRORS)
def test_diff_errors(call, message):
    source = f"fn f(v: f64[n], s: f64, w: f64[0]) {{\n    return {call}\n}}"
    with pytest.raises(tdsl.TdslTypeError) as caught:
        tdsl.compile(source, target="numpy")
    assert message in caught.value.message
    assert caught.value.loc.line == 2


# -- NumPy's methods on tdsl.Var ----------------------------------------------------------

def _method_cases(x, mask):
    """The same expressions on a tdsl.Var and on a NumPy array."""
    return [x.sum(), x.sum(axis=0, keepdims=True), x.sum(1, dtype=np.float64), x.mean(1), x.mean(axis=(0, 1)),
            x.max(), x.max(axis=-1, keepdims=True), x.min(0), x.max(initial=-np.inf), x.prod(axis=0),
            x.argmax(), x.argmax(axis=1), x.argmin(axis=0, keepdims=True), x.argmin(),
            x.reshape(-1), x.reshape(4, 3), x.reshape((2, 6)), x.transpose(), x.transpose(1, 0),
            x.transpose((1, 0)), x.T, x.astype("float64") if isinstance(x, np.ndarray) else x.astype("f64"),
            x.astype(np.int32), x.std(), x.var(axis=0), mask.any(), mask.all(axis=1), mask.any(axis=0, keepdims=True)]


def test_var_methods_match_numpy(target):
    x = tdsl.tensor("x", "f32", (3, 4))
    mask = tdsl.tensor("mask", "bool", (3, 4))
    f = tdsl.function([x, mask], tuple(_method_cases(x, mask)), target=target)
    a = rand(3, 4, dtype=np.float32)
    m = a > 0
    for got, expected in zip(f(a, m), _method_cases(a, m)):
        assert_same(got, expected)


def test_var_properties():
    x = tdsl.tensor("x", "f32", ("n", 3))
    assert (x.shape, x.ndim, x.dtype) == (("n", 3), 2, "f32")
    assert x.T.shape == (3, "n") and x.sum(axis=0).shape == (3,)
    assert x.reshape(-1).shape == ("3*n",) or x.reshape(-1).ndim == 1
    assert x.reshape("n", 3, 1).shape == ("n", 3, 1)


def test_var_method_errors_name_the_users_line():
    x = tdsl.tensor("x", "f32", ("n", "k"))
    for bad in (lambda: x.sum(axis=2), lambda: x.reshape(1, -1, -1), lambda: x.transpose(0),
                lambda: x.astype("f16"), lambda: x.argmax(axis=(0, 1)), lambda: x.sum(out=x),
                lambda: x.var(ddof=1), lambda: x.max(keepdims=3), lambda: x.reshape((2, 3), order="F")):
        with pytest.raises(tdsl.TdslTypeError) as caught:
            bad()
        assert caught.value.loc.file == __file__, caught.value


def test_builder_einsum_norm_diff(target):
    a, b = tdsl.tensor("a", "f64", ("n", "k")), tdsl.tensor("b", "f64", ("k", "m"))
    f = tdsl.function([a, b], (tdsl.einsum("ij,jk->ik", a, b), tdsl.norm(a, axis=1), tdsl.diff(b, axis=0),
                               tdsl.einsum("ij,jk,kl->il", a, b, b.T)), target=target)
    x, y = rand(2, 3), rand(3, 4)
    expected = (x @ y, np.linalg.norm(x, axis=1), np.diff(y, axis=0), np.einsum("ij,jk,kl->il", x, y, y.T))
    for got, want in zip(f(x, y), expected):
        assert_same(got, want)


def test_cumsum_method_follows_the_builtin():
    from tdsl import builtins
    x = tdsl.tensor("x", "f64", ("n",))
    if "cumsum" in builtins.BUILDERS:
        f = tdsl.function([x], x.cumsum(), target="numpy")
        assert_same(f(np.array([1.0, 2.0, 3.0])), np.cumsum([1.0, 2.0, 3.0]))
    else:
        with pytest.raises(tdsl.TdslTypeError, match="cumsum is not a builtin"):
            x.cumsum()


def test_version2_names_can_be_shadowed():
    """New builtins and predefined consts never break a program (LANGUAGE.md section 2)."""
    src = """
fn diff(x: f64[n]) -> f64[n] { return x * 2.0 }
const norm = 3.0
fn g(x: f64[n], e: f64) -> f64[n] {
    rand = x + e
    return diff(rand) + norm
}
"""
    m = tdsl.compile(src, target="numpy")
    np.testing.assert_array_equal(m.g(np.arange(3.0), 1.0), (np.arange(3.0) + 1.0) * 2.0 + 3.0)
    with pytest.raises(tdsl.TdslTypeError, match="name of a builtin"):
        tdsl.compile("fn exp(x: f64) -> f64 { return x }", target="numpy")


def test_syntax_error_in_an_argument_names_an_expression():
    with pytest.raises(tdsl.TdslSyntaxError, match=r"expected '\)' or an expression"):
        tdsl.compile("fn f(x: f64[n]) -> f64 { return sum(,) }", target="numpy")


def test_static_subscript_of_a_const_stays_weak(target):
    src = """
const L = [-inf, 0.0, inf]
const M = [[1, 2, 3], [4, 5, 6]]
fn f(x: f32[n]) -> f32[n] { return x + L[1] + L[0] * 0.0 }
fn g() -> i64[2] { return M[::-1, 1] }
fn h() -> i64[0] { return M[0, 3:] }
"""
    got = run(src, "f", target, np.ones(3, np.float32))
    assert got.dtype == np.float32 and np.isnan(got).all()
    np.testing.assert_array_equal(run(src, "g", target), [5, 2])
    assert run(src, "h", target).shape == (0,)


@pytest.mark.parametrize("family", ["extras", "nn", "ordering", "rng", "scatter"])
def test_a_builtin_family_imported_first_registers_its_builtins(family):
    import subprocess
    import sys
    code = (f"import tdsl.{family}, tdsl.builtins as b; "
            "assert {'einsum', 'conv2d', 'cumsum', 'rand', 'scatter_add'} <= set(b.BUILDERS) & b.VERSION2")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_const_name_bound_in_a_branch_is_not_the_const_after_it():
    src = "fn f(x: f64[n]) -> f64[n] {\n    if n > 2 { e = 1.0 }\n    return x * e\n}"
    with pytest.raises(tdsl.TdslTypeError, match=r"3:16: error: 'e' is local to the loop or branch"):
        tdsl.compile(src, target="numpy")
