"""Acceptance tests for section 12 of the contract (/work/shared/LANGUAGE.md), written from the
contract's text by an outside reviewer: every section-12 builtin on every target, against NumPy
itself (dtypes and shapes exactly), their gradients (against analytic NumPy gradients), the Python
builder's Var methods and constants, the errors the contract names, corner cases and shadowing.

One compiled source per family (several functions each), so each target compiles a few modules.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import tdsl
from conftest import assert_same, compiled, require_target, run

rng = np.random.default_rng(2026)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def expect_compile_error(src: str, needle: str, target: str = "numpy"):
    """Compiling `src` fails with a TdslTypeError (a TdslError) whose message holds the line:col
    of the first occurrence of `needle` (the call), 1-based as the contract's errors."""
    lines = src.split("\n")
    line_no = next(i for i, line in enumerate(lines) if needle in line) + 1
    col = lines[line_no - 1].index(needle) + 1
    with pytest.raises(tdsl.TdslError) as caught:
        tdsl.compile(src, target=target)
    assert isinstance(caught.value, (tdsl.TdslTypeError, tdsl.TdslSyntaxError)), type(caught.value)
    message = str(caught.value)
    assert f":{line_no}:{col}:" in message, message
    return message


# ---------------------------------------------------------------------------------------------
# consts inf, nan, pi, e and hypot, logaddexp, cbrt, copysign
# ---------------------------------------------------------------------------------------------

CONSTS = """
const BIG = inf
const LIMITS = [-inf, 0.0, inf]

fn consts(x: f32[n], i: i32[n]) {
    return x * inf, where(x > 0.0, x, -inf), nan + x, i * pi, pi * e, LIMITS * max(x), -BIG, e ** x
}

fn elem(a: f32[n], b: f32[n], c: f64[n], d: f64[n], i: i32[n]) {
    return hypot(a, b), logaddexp(a, b), cbrt(a), copysign(a, b), hypot(c, d), logaddexp(c, d), cbrt(c), copysign(c, d), hypot(i, i), cbrt(i), logaddexp(a, 1.0), copysign(i, a)
}

fn g_elem(a: f64[n], b: f64[n]) {
    ha, hb = grad(sum(hypot(a, b)), a, b)
    la, lb = grad(sum(logaddexp(a, b)), a, b)
    ca = grad(sum(cbrt(a)), a)
    sa, sb = grad(sum(copysign(a, b) * a), a, b)
    return ha, hb, la, lb, ca, sa, sb
}
"""


def test_consts(target):
    x = f32([0.5, -2.0, 3.0, 1.5])
    i = np.array([1, -2, 3, 0], np.int32)
    got = run(CONSTS, "consts", target, x, i)
    lim = f32([-np.inf, 0.0, np.inf])
    expected = (x * np.float32(np.inf), np.where(x > 0, x, f32(-np.inf)), f32(np.nan) + x, i * np.pi,
                np.float64(np.pi * np.e), lim * np.max(x), np.float64(-np.inf), np.power(f32(np.e), x))
    assert_same(got, expected)


def test_elementwise(target):
    a = f32([3.0, -1.5, 0.0, -0.0, 1e-3, -8.0, np.inf, np.nan])
    b = f32([4.0, 2.0, -0.0, -1.0, -5.0, 0.0, 1.0, 1.0])
    c, d = a.astype(np.float64) * 1.7, b.astype(np.float64) - 0.3
    i = np.array([3, -4, 0, 27, -8, 1, 2, -1], np.int32)
    got = run(CONSTS, "elem", target, a, b, c, d, i)
    expected = (np.hypot(a, b), np.logaddexp(a, b), np.cbrt(a), np.copysign(a, b), np.hypot(c, d),
                np.logaddexp(c, d), np.cbrt(c), np.copysign(c, d), np.hypot(i, i), np.cbrt(i),
                np.logaddexp(a, 1.0), np.copysign(i, a))
    assert_same(got, expected)
    # copysign of zeros: the sign bit is NumPy's
    assert np.array_equal(np.signbit(got[3]), np.signbit(expected[3]))


def test_logaddexp_infinities(target):
    a = np.array([-np.inf, np.inf, -np.inf, 800.0, -800.0])
    b = np.array([-np.inf, np.inf, 1.0, 800.0, -800.0])
    z = np.zeros(5)
    got = run(CONSTS, "elem", target, f32(a), f32(b), a, b, np.zeros(5, np.int32))
    assert_same(got[5], np.logaddexp(a, b))
    assert_same(got[1], np.logaddexp(f32(a), f32(b)))
    del z


def test_elementwise_grad(target):
    a = np.array([3.0, -1.5, 0.7, -8.0, 2.0])
    b = np.array([4.0, 2.0, -0.3, 0.5, -1.0])
    got = run(CONSTS, "g_elem", target, a, b)
    h = np.hypot(a, b)
    s = np.exp(a) + np.exp(b)
    expected = (a / h, b / h, np.exp(a) / s, np.exp(b) / s, 1 / (3 * np.cbrt(a) ** 2),
                # d/da (copysign(a, b) * a) = 2 |a| sign(b); d/db = 0
                2 * np.abs(a) * np.sign(b), np.zeros(5))
    assert_same(got, expected)


# ---------------------------------------------------------------------------------------------
# shadowing: new names never break a program
# ---------------------------------------------------------------------------------------------

SHADOW = """
fn shadow_e(x: f64[n]) {
    e = exp(x)
    return e + 1.0
}

fn diff(x: f64[n]) {
    return x * 2.0
}

fn uses_diff(x: f64[n]) {
    return diff(x)
}

fn param_pi(x: f64[n], pi: f64) {
    return x * pi
}

fn size_e(x: f64[e]) {
    return sum(x) / e
}

fn loop_nan(x: f64[n]) {
    s = 0.0
    for nan in range(n) {
        s = s + x[nan]
    }
    return s
}
"""

SHADOW_CONST = """
const inf = 3
fn f(x: i32[n]) {
    return x * inf
}
"""


def test_shadowing(target):
    x = np.array([0.5, 1.0, -2.0])
    assert_same(run(SHADOW, "shadow_e", target, x), np.exp(x) + 1.0)
    assert_same(run(SHADOW, "diff", target, x), x * 2.0)
    assert_same(run(SHADOW, "uses_diff", target, x), x * 2.0)
    assert_same(run(SHADOW, "param_pi", target, x, 3.0), x * 3.0)
    assert_same(run(SHADOW, "size_e", target, x), np.float64(np.sum(x) / 3))
    assert_same(run(SHADOW, "loop_nan", target, x), np.float64(np.sum(x)))
    i = np.array([1, 2], np.int32)
    assert_same(run(SHADOW_CONST, "f", target, i), i * 3)


# ---------------------------------------------------------------------------------------------
# cumsum, cumprod, diff
# ---------------------------------------------------------------------------------------------

CUM = """
fn cum(x: f32[n, k], i: i32[n, k], b: bool[n, k], y: f64[n, k]) {
    return cumsum(x, 1), cumsum(x), cumsum(x, -2), cumsum(i, 0), cumsum(b, 1), cumprod(y, 1), cumprod(i), cumprod(x, -1), cumsum(b), cumsum(y, axis=0), cumprod(b, 0)
}

fn diffs(x: f32[n, k], i: i32[n, k], b: bool[n, k]) {
    return diff(x), diff(x, 0), diff(x, n=2), diff(x, axis=-2), diff(i), diff(b, 1), diff(x, n=0), diff(i, 0, n=1)
}

fn g_cum(x: f64[n, k], w: f64[n, k]) {
    g1 = grad(sum(w * cumsum(x, 1)), x)
    g2 = grad(sum(w * cumprod(x, 1)), x)
    g3 = grad(sum(w[:, 1:] * diff(x)), x)
    g4 = grad(sum(w * reshape(cumsum(x), (n, k))), x)
    return g1, g2, g3, g4
}
"""


def _cum_inputs(shape):
    x = f32(rng.standard_normal(shape))
    i = rng.integers(-3, 4, shape).astype(np.int32)
    b = rng.integers(0, 2, shape).astype(bool)
    y = rng.uniform(0.5, 1.5, shape)
    return x, i, b, y


def _np_cum(x, i, b, y):
    return (np.cumsum(x, 1), np.cumsum(x), np.cumsum(x, -2), np.cumsum(i, 0), np.cumsum(b, 1),
            np.cumprod(y, 1), np.cumprod(i), np.cumprod(x, -1), np.cumsum(b), np.cumsum(y, axis=0),
            np.cumprod(b, 0))


@pytest.mark.parametrize("shape", [(3, 5), (2, 40), (0, 4), (3, 0)])
def test_cumulative(target, shape):
    args = _cum_inputs(shape)
    assert_same(run(CUM, "cum", target, *args), _np_cum(*args))


def test_cumulative_nan_noncontiguous(target):
    x, i, b, y = _cum_inputs((4, 12))
    x[1, 3] = np.nan
    y[2, 5] = np.inf
    y[0, 2] = 0.0
    args = (x[:, ::2], i.T.copy().T[:, ::2], np.asfortranarray(b)[:, ::2], y[::-1, ::2])
    assert not args[0].flags.c_contiguous
    assert_same(run(CUM, "cum", target, *args), _np_cum(*args))


def test_diff(target):
    x = f32(rng.standard_normal((4, 6)))
    i = np.array([[2**31 - 1, -(2**31), 5, 1, 0, -3]] * 4, np.int32)
    b = rng.integers(0, 2, (4, 6)).astype(bool)
    got = run(CUM, "diffs", target, x, i, b)
    expected = (np.diff(x), np.diff(x, axis=0), np.diff(x, n=2), np.diff(x, axis=-2), np.diff(i),
                np.diff(b, axis=1), np.diff(x, n=0), np.diff(i, axis=0, n=1))
    assert_same(got, expected)


def _cumprod_grad(x, w):
    g = np.zeros_like(x)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            for i in range(j, x.shape[1]):
                g[r, j] += w[r, i] * np.prod(np.delete(x[r, :i + 1], j))
    return g


def test_cumulative_grad(target):
    x = rng.uniform(-1.5, 1.5, (3, 5))
    x[1, 2] = 0.0            # cumprod's gradient is right at zeros
    x[2, 0] = 0.0
    x[2, 3] = 0.0
    w = rng.standard_normal((3, 5))
    got = run(CUM, "g_cum", target, x, w)
    g3 = np.zeros_like(x)
    g3[:, 1:] += w[:, 1:]
    g3[:, :-1] -= w[:, 1:]
    expected = (np.flip(np.cumsum(np.flip(w, 1), 1), 1), _cumprod_grad(x, w), g3,
                np.flip(np.cumsum(np.flip(w.ravel()))).reshape(3, 5))
    assert_same(got, expected)


# ---------------------------------------------------------------------------------------------
# sort, argsort, top_k
# ---------------------------------------------------------------------------------------------

SORT = """
fn sorts(x: f32[n, k], i: i32[n, k], b: bool[n, k]) {
    return sort(x), sort(x, 0), argsort(x), argsort(x, 0), sort(i), argsort(i, -2), sort(b), argsort(b), sort(x, axis=-2), argsort(x, axis=1)
}

fn tops(x: f32[n, k], y: f32[m]) {
    v, j = top_k(x, 2)
    v0, j0 = top_k(x, 0)
    v1, j1 = top_k(x, k - 1)
    v2, j2 = top_k(x, 1, axis=0)
    v3, j3 = top_k(x, m)
    return v, j, v0, j0, v1, j1, v2, j2, v3, j3
}

fn tops_int(i: i32[n, k]) {
    v, j = top_k(i, 3)
    return v, j
}

fn g_sort(x: f64[n, k], w: f64[n, k], u: f64[n, 2]) {
    g1 = grad(sum(w * sort(x)), x)
    v, j = top_k(x, 2)
    g2 = grad(sum(u * v), x)
    g3 = grad(sum(w * sort(x, 0)), x)
    return g1, g2, g3
}
"""


def _top_k(x, k, axis=-1):
    """Largest first, ties to the lower index, NaN larger than every number (the docs)."""
    xm = np.moveaxis(x, axis, -1)
    vals = np.empty(xm.shape[:-1] + (k,), x.dtype)
    idx = np.empty(xm.shape[:-1] + (k,), np.int64)
    for pos in np.ndindex(xm.shape[:-1]):
        row = xm[pos]
        order = sorted(range(len(row)), key=lambda j: (0 if np.isnan(row[j]) else 1,
                                                       0 if np.isnan(row[j]) else -float(row[j]), j))
        idx[pos] = order[:k]
        vals[pos] = row[order[:k]]
    return np.moveaxis(vals, -1, axis), np.moveaxis(idx, -1, axis)


def _sort_inputs(shape):
    x = f32(rng.integers(-3, 4, shape))          # many ties
    flat = x.reshape(-1)
    if flat.size > 6:
        flat[[0, 3]] = np.nan
        flat[1] = -0.0
        flat[4] = np.inf
        flat[5] = -np.inf
    i = rng.integers(-5, 6, shape).astype(np.int32)
    b = rng.integers(0, 2, shape).astype(bool)
    return x, i, b


@pytest.mark.parametrize("shape", [(4, 7), (3, 40), (0, 5), (2, 0)])
def test_sort_argsort(target, shape):
    x, i, b = _sort_inputs(shape)
    got = run(SORT, "sorts", target, x, i, b)
    st = dict(kind="stable")
    expected = (np.sort(x, **st), np.sort(x, 0, **st), np.argsort(x, **st), np.argsort(x, 0, **st),
                np.sort(i, **st), np.argsort(i, -2, **st), np.sort(b, **st), np.argsort(b, **st),
                np.sort(x, axis=-2, **st), np.argsort(x, axis=1, **st))
    assert_same(got, expected)
    # NaN last, and the bits of the sorted values are NumPy's (-0.0 keeps its place)
    assert np.array_equal(np.signbit(got[0]), np.signbit(expected[0]))


def test_sort_noncontiguous(target):
    x, i, b = _sort_inputs((6, 30))
    args = (x[::2, ::-1], np.asfortranarray(i)[::2], b.T.copy().T[::2])
    got = run(SORT, "sorts", target, *args)
    assert_same(got[2], np.argsort(args[0], kind="stable"))
    assert_same(got[5], np.argsort(args[1], -2, kind="stable"))


@pytest.mark.parametrize("shape", [(4, 7), (3, 40)])
def test_top_k(target, shape):
    x, _, _ = _sort_inputs(shape)
    y = np.zeros(3, np.float32)
    got = run(SORT, "tops", target, x, y)
    k = shape[1]
    expected = (*_top_k(x, 2), *_top_k(x, 0), *_top_k(x, k - 1), *_top_k(x, 1, axis=0), *_top_k(x, 3))
    assert_same(got, expected)


def test_top_k_matches_argsort_without_nan(target):
    x = f32(rng.integers(-2, 3, (5, 20)))
    v, j = run(SORT, "tops", target, x, np.zeros(4, np.float32))[:2]
    order = np.argsort(-x, kind="stable")[..., :2]
    assert_same((v, j), (np.take_along_axis(x, order, -1), order))
    i = rng.integers(-4, 5, (3, 9)).astype(np.int32)
    order = np.argsort(-i, kind="stable")[..., :3]
    assert_same(run(SORT, "tops_int", target, i), (np.take_along_axis(i, order, -1), order))


def test_top_k_size_variable_too_large(target):
    x = f32(rng.standard_normal((2, 3)))
    with pytest.raises(tdsl.TdslError):
        getattr(compiled(SORT, target), "tops")(x, np.zeros(4, np.float32))


def test_sort_grad(target):
    x = rng.permutation(24).reshape(4, 6).astype(np.float64)
    x[0, 1] = x[0, 4]           # a tie: each gets its own position's adjoint
    w = rng.standard_normal((4, 6))
    u = rng.standard_normal((4, 2))
    got = run(SORT, "g_sort", target, x, w, u)
    perm = np.argsort(x, 1, kind="stable")
    g1 = np.zeros_like(x)
    np.put_along_axis(g1, perm, w, 1)
    g2 = np.zeros_like(x)
    _, idx = _top_k(x, 2)
    np.put_along_axis(g2, idx, u, 1)
    perm0 = np.argsort(x, 0, kind="stable")
    g3 = np.zeros_like(x)
    np.put_along_axis(g3, perm0, w, 0)
    assert_same(got, (g1, g2, g3))


# ---------------------------------------------------------------------------------------------
# einsum
# ---------------------------------------------------------------------------------------------

EINSUM = """
fn eins(a: f32[n, k], b: f32[k, m], t: f64[s, n, k], v: f32[k], i: i32[k], q: f32[n, n], c: i32[n, k]) {
    return einsum("ij,jk->ik", a, b), einsum("ij,jk->ki", a, b), einsum("sij,jk->sik", t, b), einsum("ij,jk,kl->il", a, b, b.T), einsum("ij,j->i", a, v), einsum("i,i->", v, i), einsum("...ij,...j->...i", t, v), einsum("ii->i", q), einsum("ii->", q), einsum("ij->ji", a), einsum("ij->", a), einsum("ij,ik->ijk", c, c), einsum("i,j->ij", v, v), einsum("i j , j k -> i k", a, b), einsum("ij,ij->i", c, c)
}

fn g_eins(a: f64[n, k], b: f64[k, m], w: f64[n, m], q: f64[n, n], u: f64[n]) {
    ga, gb = grad(sum(w * einsum("ij,jk->ik", a, b)), a, b)
    gq = grad(sum(u * einsum("ii->i", q)), q)
    gt = grad(einsum("ii->", q), q)
    g3 = grad(einsum("ij,jk,ik->", a, b, w), b)
    return ga, gb, gq, gt, g3
}
"""


def _np_eins(a, b, t, v, i, q, c):
    E = np.einsum
    return (E("ij,jk->ik", a, b), E("ij,jk->ki", a, b), E("sij,jk->sik", t, b),
            E("ij,jk,kl->il", a, b, b.T), E("ij,j->i", a, v), E("i,i->", v, i),
            E("...ij,...j->...i", t, v), E("ii->i", q), E("ii->", q), E("ij->ji", a), E("ij->", a),
            E("ij,ik->ijk", c, c), E("i,j->ij", v, v), E("ij,jk->ik", a, b), E("ij,ij->i", c, c))


@pytest.mark.parametrize("n,k,m,s", [(3, 4, 5, 2), (2, 0, 3, 1)])
def test_einsum(target, n, k, m, s):
    a = f32(rng.standard_normal((n, k)))
    b = f32(rng.standard_normal((k, m)))
    t = rng.standard_normal((s, n, k))
    v = f32(rng.standard_normal(k))
    i = rng.integers(-5, 5, k).astype(np.int32)
    q = f32(rng.standard_normal((n, n)))
    q[0, 1] = np.nan         # off the diagonal: does not leak into the diagonal or the trace
    c = rng.integers(-5, 5, (n, k)).astype(np.int32)
    got = run(EINSUM, "eins", target, a, b, t, v, i, q, c)
    assert_same(got, _np_eins(a, b, t, v, i, q, c), rtol=1e-4, atol=1e-5)


def test_einsum_noncontiguous(target):
    a = f32(rng.standard_normal((6, 8)))[::2, ::2]
    b = f32(rng.standard_normal((5, 4))).T
    t = rng.standard_normal((2, 3, 8))[:, :, ::2]
    v = f32(rng.standard_normal(8))[::-2]
    i = np.arange(4, dtype=np.int32)
    q = np.asfortranarray(f32(rng.standard_normal((3, 3))))
    c = rng.integers(-5, 5, (3, 8)).astype(np.int32)[:, 1::2]
    got = run(EINSUM, "eins", target, a, b, t, v, i, q, c)
    assert_same(got, _np_eins(a, b, t, v, i, q, c), rtol=1e-4, atol=1e-5)


def test_einsum_grad(target):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    w, q, u = rng.standard_normal((3, 5)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    got = run(EINSUM, "g_eins", target, a, b, w, q, u)
    assert_same(got, (w @ b.T, a.T @ w, np.diag(u), np.eye(3), a.T @ w))


# ---------------------------------------------------------------------------------------------
# norm
# ---------------------------------------------------------------------------------------------

NORM = """
fn norms(x: f32[n, k], v: f64[k], i: i64[k], b: bool[k], z: f64[n, k, 2]) {
    return norm(x), norm(x, axis=1), norm(x, 1, axis=0), norm(x, inf, axis=1, keepdims=true), norm(x, -inf, axis=1), norm(i, 1), norm(v), norm(v, 1), norm(v, inf), norm(v, -inf), norm(v, 2), norm(x, axis=(0, 1)), norm(x, axis=(-1, -2), keepdims=true), norm(b), norm(x, axis=-1), norm(z), norm(z, 2, axis=0), norm(v, 2.0), norm(v, ord=1), norm(i), norm(z, axis=(0, 2))
}

fn norms_empty(v: f64[k], x: f64[n, k]) {
    return norm(v), norm(v, 1), norm(x, axis=1), norm(x)
}

fn norm_inf_empty(v: f64[k]) {
    return norm(v, inf)
}

fn g_norm(v: f64[k], x: f64[n, k]) {
    g2 = grad(norm(v), v)
    g1 = grad(norm(v, 1), v)
    gi = grad(norm(v, inf), v)
    gm = grad(norm(v, -inf), v)
    gf = grad(norm(x), x)
    ga = grad(sum(norm(x, axis=1)), x)
    return g2, g1, gi, gm, gf, ga
}
"""


def test_norm(target):
    x = f32(rng.standard_normal((3, 4)))
    v = rng.standard_normal(4)
    i = np.array([3, -4, 0, 12], np.int64)
    b = np.array([True, False, True, True])
    z = rng.standard_normal((3, 4, 2))
    got = run(NORM, "norms", target, x, v, i, b, z)
    N = np.linalg.norm
    expected = (N(x), N(x, axis=1), N(x, 1, axis=0), N(x, np.inf, axis=1, keepdims=True),
                N(x, -np.inf, axis=1), N(i, 1), N(v), N(v, 1), N(v, np.inf), N(v, -np.inf), N(v, 2),
                N(x, axis=(0, 1)), N(x, axis=(-1, -2), keepdims=True), N(b), N(x, axis=-1), N(z),
                N(z, 2, axis=0), N(v, 2.0), N(v, ord=1), N(i), N(z, axis=(0, 2)))
    assert_same(got, expected)


def test_norm_nan_and_no_overflow_guard(target):
    v = np.array([1e200, 1e200, 1.0, 2.0])
    x = np.zeros((3, 4), np.float32)
    x[1, 2] = np.nan
    got = run(NORM, "norms", target, x, v, np.zeros(4, np.int64), np.zeros(4, bool), np.zeros((3, 4, 2)))
    assert got[6] == np.inf          # sqrt(sum(x * x)), as the contract says
    assert_same(got[1], np.linalg.norm(x, axis=1))
    assert np.isnan(got[0])


def test_norm_empty(target):
    v, x = np.zeros(0), np.zeros((2, 0))
    got = run(NORM, "norms_empty", target, v, x)
    assert_same(got, (np.linalg.norm(v), np.linalg.norm(v, 1), np.linalg.norm(x, axis=1), np.linalg.norm(x)))
    with pytest.raises(tdsl.TdslError):
        getattr(compiled(NORM, target), "norm_inf_empty")(v)


def test_norm_grad(target):
    v = np.array([1.0, -3.0, 3.0, 0.5])
    x = rng.standard_normal((2, 4))
    got = run(NORM, "g_norm", target, v, x)
    expected = (v / np.linalg.norm(v), np.sign(v), np.array([0.0, -0.5, 0.5, 0.0]),
                np.array([0.0, 0.0, 0.0, 1.0]), x / np.linalg.norm(x),
                x / np.linalg.norm(x, axis=1, keepdims=True))
    assert_same(got, expected)


def test_norm_grad_at_zero(target):
    # the 2-norm's subgradient at 0 is 0 (docs), the 1-norm's sign(0) = 0
    got = run(NORM, "g_norm", target, np.zeros(3), np.zeros((2, 3)))
    assert_same(got[0], np.zeros(3))
    assert_same(got[1], np.zeros(3))
    assert_same(got[4], np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------
# scatter_add, take_along_axis, gradient of take and of integer-array indexing
# ---------------------------------------------------------------------------------------------

SCATTER = """
fn sc(x: f32[n, k], idx: i64[m], vals: f32[m, k], vcol: f32[n, m], ti: i64[n, j], tb: i64[1, j]) {
    return scatter_add(x, idx, vals), scatter_add(x, idx, vcol, 1), scatter_add(x, idx, 1.0), take_along_axis(x, ti, 1), scatter_add(x, idx, vcol, axis=-1), take_along_axis(x, ti, -1), take_along_axis(x, tb, 1)
}

fn sc_int(x: i32[n], idx: i32[p, q], vals: i32[p, q], y: f64[n, 2]) {
    return scatter_add(x, idx, vals), scatter_add(x, idx, 2), scatter_add(y, idx, 0.5), take_along_axis(x, reshape(idx, (p * q,)), 0)
}

fn g_sc(x: f64[n, k], idx: i64[m], vals: f64[m, k], w: f64[n, k], ti: i64[n, j], u: f64[n, j], e: f64[m, k]) {
    gx, gv = grad(sum(w * scatter_add(x, idx, vals)), x, vals)
    gt = grad(sum(u * take_along_axis(x, ti, 1)), x)
    gk = grad(sum(e * take(x, idx, 0)), x)
    gi = grad(sum(e * x[idx]), x)
    return gx, gv, gt, gk, gi
}

fn g_upd(x: f64[n], idx: i64[m], v: f64[m], w: f64[n]) {
    y = x
    y[idx] = v
    gv, gx = grad(sum(w * y), v, x)
    return y, gv, gx
}
"""


def _np_scatter(x, idx, vals, axis=0):
    out = x.copy()
    np.add.at(out, (slice(None),) * axis + (idx,), vals)
    return out


def test_scatter_take_along(target):
    n = k = 4
    x = f32(rng.standard_normal((n, k)))
    idx = np.array([0, 3, -1, 1, 3, -4], np.int64)     # repeats and negatives
    vals = f32(rng.standard_normal((6, k)))
    vcol = f32(rng.standard_normal((n, 6)))
    ti = np.array([[0, 3, -1], [1, 1, 2], [3, 0, 0], [-2, 2, 1]], np.int64)
    tb = np.array([[2, -1, 0]], np.int64)
    got = run(SCATTER, "sc", target, x, idx, vals, vcol, ti, tb)
    expected = (_np_scatter(x, idx, vals), _np_scatter(x, idx, vcol, 1),
                _np_scatter(x, idx, np.float32(1.0)), np.take_along_axis(x, ti, 1),
                _np_scatter(x, idx, vcol, 1), np.take_along_axis(x, ti, -1),
                np.take_along_axis(x, tb, 1))
    assert_same(got, expected)


def test_scatter_int_and_2d_index(target):
    x = np.array([1, 2, 3, 4, 5], np.int32)
    idx = np.array([[0, 4], [-1, 2], [0, 0]], np.int32)
    vals = np.array([[2**31 - 1, 1], [1, 7], [3, -2]], np.int32)
    y = np.ones((5, 2))
    got = run(SCATTER, "sc_int", target, x, idx, vals, y)
    expected = (_np_scatter(x, idx, vals), _np_scatter(x, idx, np.int32(2)),
                _np_scatter(y, idx, 0.5), np.take_along_axis(x, idx.reshape(-1), 0))
    assert_same(got, expected)


def test_scatter_empty_and_noncontiguous(target):
    x = f32(rng.standard_normal((4, 8)))[:, ::2]
    idx = np.zeros(0, np.int64)
    got = run(SCATTER, "sc", target, x, idx, np.zeros((0, 4), np.float32), np.zeros((4, 0), np.float32),
              np.zeros((4, 0), np.int64), np.zeros((1, 0), np.int64))
    assert_same(got[0], x)
    assert_same(got[1], x)
    assert_same(got[3], np.zeros((4, 0), np.float32))


def test_scatter_out_of_range(target):
    x = np.zeros((4, 4), np.float32)
    f = getattr(compiled(SCATTER, target), "sc")
    with pytest.raises(tdsl.TdslError):
        f(x, np.array([0, 4], np.int64), np.zeros((2, 4), np.float32), np.zeros((4, 2), np.float32),
          np.zeros((4, 1), np.int64), np.zeros((1, 1), np.int64))
    with pytest.raises(tdsl.TdslError):
        f(x, np.array([0, 1], np.int64), np.zeros((2, 4), np.float32), np.zeros((4, 2), np.float32),
          np.full((4, 1), -5, np.int64), np.zeros((1, 1), np.int64))


def test_scatter_grad(target):
    n, k = 5, 3
    x = rng.standard_normal((n, k))
    idx = np.array([1, 4, 1, -1, 0], np.int64)
    vals = rng.standard_normal((5, k))
    w = rng.standard_normal((n, k))
    ti = np.array([[0, 2], [1, 1], [2, 0], [-1, 0], [1, 2]], np.int64)
    u = rng.standard_normal((n, 2))
    e = rng.standard_normal((5, k))
    got = run(SCATTER, "g_sc", target, x, idx, vals, w, ti, u, e)
    gt = np.zeros_like(x)
    for r in range(n):
        for c in range(2):
            gt[r, ti[r, c]] += u[r, c]
    gk = np.zeros_like(x)
    np.add.at(gk, idx, e)
    assert_same(got, (w, w[idx], gt, gk, gk))


def test_scatter_write_grad_last_wins(target):
    x = rng.standard_normal(4)
    idx = np.array([2, 0, 2, -2], np.int64)         # -2 is 2 too: it wins
    v = np.array([10.0, 20.0, 30.0, 40.0])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    got = run(SCATTER, "g_upd", target, x, idx, v, w)
    y = x.copy()
    y[idx] = v
    assert_same(got, (y, np.array([0.0, 1.0, 0.0, 3.0]), np.array([0.0, 2.0, 0.0, 4.0])))


# ---------------------------------------------------------------------------------------------
# conv1d, conv2d, max_pool2d, avg_pool2d
# ---------------------------------------------------------------------------------------------

CONV = """
fn convs(x: f64[b, c, h, w], k: f64[o, c, 3, 3], k2: f64[o, c, 2, 2], s: f64[b, c, n], k1: f64[o, c, 5], k1e: f64[o, c, 4], xi: i32[b, c, h, w], ki: i32[o, c, 3, 3], x32: f32[b, c, h, w], k32: f32[o, c, 3, 3]) {
    return conv2d(x, k), conv2d(x, k, stride=2, padding=1), conv2d(x, k, padding="same"), conv2d(x, k2, padding="same"), conv1d(s, k1), conv1d(s, k1, stride=2, padding=2), conv1d(s, k1e, padding="same"), conv2d(xi, ki), conv2d(x, k2, stride=3), conv2d(x32, k32, 1, 1), conv2d(xi, k32), conv2d(x32, k), conv2d(x, k, padding="valid")
}

fn pools(x: f32[b, c, h, w], i: i32[b, c, h, w], m: bool[b, c, h, w], y: f64[b, c, h, w]) {
    return max_pool2d(x, 2), max_pool2d(x, 3, stride=1), avg_pool2d(x, 2), avg_pool2d(x, 3, 2), avg_pool2d(i, 2), max_pool2d(i, 2), max_pool2d(m, 2), avg_pool2d(m, 2), avg_pool2d(y, 2, stride=1), max_pool2d(y, 3, 2)
}

fn g_conv(x: f64[b, c, h, w], k: f64[o, c, 3, 3], u: f64[b, o, h, w], s: f64[b, c, n], k1: f64[o, c, 4], u1: f64[b, o, n]) {
    gx, gk = grad(sum(u * conv2d(x, k, padding="same")), x, k)
    gs, gk1 = grad(sum(u1 * conv1d(s, k1, padding="same")), s, k1)
    gx2, gk2 = grad(sum(square(conv2d(x, k, stride=2, padding=1))), x, k)
    return gx, gk, gs, gk1, gx2, gk2
}

fn g_pool(x: f64[b, c, h, w]) {
    g1 = grad(sum(square(max_pool2d(x, 2))), x)
    g2 = grad(sum(square(avg_pool2d(x, 2))), x)
    g3 = grad(sum(max_pool2d(x, 2, stride=1)), x)
    return g1, g2, g3
}
"""


def np_conv2d(x, w, stride=1, padding=0):
    """A direct loop: y[b, o, i, j] = sum_{c, di, dj} xp[b, c, i*s + di, j*s + dj] w[o, c, di, dj]."""
    kh, kw = w.shape[2:]
    if padding == "same":
        pads = [((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)]
    else:
        pads = [(padding, padding)] * 2
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    dtype = np.result_type(x.dtype, w.dtype)
    y = np.zeros((x.shape[0], w.shape[0], oh, ow), dtype)
    for bb in range(x.shape[0]):
        for o in range(w.shape[0]):
            for i in range(oh):
                for j in range(ow):
                    acc = dtype.type(0)
                    for c in range(x.shape[1]):
                        for di in range(kh):
                            for dj in range(kw):
                                acc += xp[bb, c, i * stride + di, j * stride + dj].astype(dtype) * w[o, c, di, dj].astype(dtype)
                    y[bb, o, i, j] = acc
    return y


def np_conv1d(x, w, stride=1, padding=0):
    y = np_conv2d(x[:, :, None, :], w[:, :, None, :], stride, padding if padding == "same" else 0) \
        if padding == "same" else None
    if padding == "same":
        # np_conv2d's "same" pads the height of 1 with kh - 1 = 0: the width as conv1d's
        return y[:, :, 0, :]
    xp = np.pad(x, [(0, 0), (0, 0), (padding, padding)])
    return np_conv2d(xp[:, :, None, :], w[:, :, None, :], stride, 0)[:, :, 0, :]


def np_pool(x, size, stride, reduce):
    win = sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
    return getattr(win, reduce)(axis=(4, 5))


def test_conv(target):
    b, c, h, w, o, n = 2, 2, 5, 6, 3, 9
    x = rng.standard_normal((b, c, h, w))
    k = rng.standard_normal((o, c, 3, 3))
    k2 = rng.standard_normal((o, c, 2, 2))
    s = rng.standard_normal((b, c, n))
    k1 = rng.standard_normal((o, c, 5))
    k1e = rng.standard_normal((o, c, 4))
    xi = rng.integers(-5, 6, (b, c, h, w)).astype(np.int32)
    ki = rng.integers(-3, 4, (o, c, 3, 3)).astype(np.int32)
    x32, k32 = f32(x), f32(k)
    got = run(CONV, "convs", target, x, k, k2, s, k1, k1e, xi, ki, x32, k32)
    expected = (np_conv2d(x, k), np_conv2d(x, k, 2, 1), np_conv2d(x, k, 1, "same"),
                np_conv2d(x, k2, 1, "same"), np_conv1d(s, k1), np_conv1d(s, k1, 2, 2),
                np_conv1d(s, k1e, 1, "same"), np_conv2d(xi, ki), np_conv2d(x, k2, 3),
                np_conv2d(x32, k32, 1, 1), np_conv2d(xi, k32), np_conv2d(x32, k), np_conv2d(x, k))
    assert_same(got, expected, rtol=1e-4, atol=1e-4)


def test_conv_nan_empty_noncontiguous(target):
    b, c, h, w, o, n = 1, 2, 5, 6, 3, 9
    x = rng.standard_normal((b, c, h, 2 * w))[..., ::2]
    x[0, 1, 2, 2] = np.nan
    k = np.asfortranarray(rng.standard_normal((o, c, 3, 3)))
    args = [x, k, rng.standard_normal((o, c, 2, 2)), rng.standard_normal((b, c, n)),
            rng.standard_normal((o, c, 5)), rng.standard_normal((o, c, 4)),
            np.zeros((b, c, h, w), np.int32), np.zeros((o, c, 3, 3), np.int32), f32(x), f32(k)]
    got = run(CONV, "convs", target, *args)
    assert_same(got[0], np_conv2d(x, k))
    assert_same(got[2], np_conv2d(x, k, 1, "same"))
    args = [np.zeros((0, c, h, w)), k, args[2], np.zeros((0, c, n)), *args[4:6],
            np.zeros((0, c, h, w), np.int32), args[7], np.zeros((0, c, h, w), np.float32), args[9]]
    got = run(CONV, "convs", target, *args)
    assert got[0].shape == (0, o, h - 2, w - 2)
    assert got[4].shape == (0, o, n - 4)


def test_pools(target):
    shape = (2, 3, 7, 6)
    x = f32(rng.integers(-4, 5, shape))        # ties
    x[0, 0, 0, 0] = np.nan
    i = rng.integers(-9, 10, shape).astype(np.int32)
    m = rng.integers(0, 2, shape).astype(bool)
    y = rng.standard_normal(shape)
    got = run(CONV, "pools", target, x, i, m, y)
    expected = (np_pool(x, 2, 2, "max"), np_pool(x, 3, 1, "max"), np_pool(x, 2, 2, "mean"),
                np_pool(x, 3, 2, "mean"), np_pool(i, 2, 2, "mean"), np_pool(i, 2, 2, "max"),
                np_pool(m, 2, 2, "max"), np_pool(m, 2, 2, "mean"), np_pool(y, 2, 1, "mean"),
                np_pool(y, 3, 2, "max"))
    assert_same(got, expected)


def _fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for pos in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[pos] += eps
        xm[pos] -= eps
        g[pos] = (f(xp) - f(xm)) / (2 * eps)
    return g


def test_conv_grad(target):
    b, c, h, w, o, n = 2, 2, 4, 5, 3, 6
    x = rng.standard_normal((b, c, h, w))
    k = rng.standard_normal((o, c, 3, 3))
    u = rng.standard_normal((b, o, h, w))
    s = rng.standard_normal((b, c, n))
    k1 = rng.standard_normal((o, c, 4))
    u1 = rng.standard_normal((b, o, n))
    got = run(CONV, "g_conv", target, x, k, u, s, k1, u1)
    # the convolution is linear in each operand: central differences are exact up to rounding
    expected = (_fd_grad(lambda z: np.sum(u * np_conv2d(z, k, 1, "same")), x),
                _fd_grad(lambda z: np.sum(u * np_conv2d(x, z, 1, "same")), k),
                _fd_grad(lambda z: np.sum(u1 * np_conv1d(z, k1, 1, "same")), s),
                _fd_grad(lambda z: np.sum(u1 * np_conv1d(s, z, 1, "same")), k1),
                _fd_grad(lambda z: np.sum(np_conv2d(z, k, 2, 1) ** 2), x),
                _fd_grad(lambda z: np.sum(np_conv2d(x, z, 2, 1) ** 2), k))
    assert_same(got, expected, rtol=1e-5, atol=1e-6)


def test_pool_grad(target):
    x = rng.standard_normal((1, 2, 5, 4))
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 9.0         # a tie in one window: shared equally
    got = run(CONV, "g_pool", target, x)
    g1 = np.zeros_like(x)
    g2 = np.zeros_like(x)
    g3 = np.zeros_like(x)
    for bb, c in np.ndindex(x.shape[:2]):
        for i in range(2):
            for j in range(2):
                win = x[bb, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                mx = win.max()
                ties = win == mx
                g1[bb, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2] += ties * 2 * mx / ties.sum()
                g2[bb, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2] += 2 * win.mean() / 4
        for i in range(4):
            for j in range(3):
                win = x[bb, c, i:i + 2, j:j + 2]
                ties = win == win.max()
                g3[bb, c, i:i + 2, j:j + 2] += ties / ties.sum()
    assert_same(got, (g1, g2, g3))


# ---------------------------------------------------------------------------------------------
# random numbers
# ---------------------------------------------------------------------------------------------

RANDOM = """
fn rnd(key: i64, x: f32[n, d], p: f64[d]) {
    return rand(key, (n, d)), rand(key, (n, d), dtype=f32), rand(key, ()), rand(key, (0, d)), bernoulli(key, 0.3, (n, d)), randint(key, 3, 10, (n, d)), randint(key, -5, 5, (n,), dtype=i32), randn(key, (n, d)), randn(key, (n, d), dtype=f32), rand(key, n), bernoulli(key, p, (n, d)), rand(7, (3,)), rand(key, (d, n), f32)
}

fn draws(key: i64, s: f64[t]) {
    out = zeros((t, 4))
    for i in range(t) {
        out[i] = rand(fold_in(key, i), 4)
    }
    return out, fold_in(key, 3), fold_in(key, arange(t))
}

fn keyed(key: i32) {
    return rand(key, 5)
}

fn g_rand(key: i64, x: f64[n]) {
    return grad(sum(x * randn(key, n) + where(bernoulli(key, 0.5, n), x, 0.0)), x), randn(key, n), bernoulli(key, 0.5, n)
}
"""


def _philox(key):
    return np.random.Generator(np.random.Philox(key=key % 2**64))


@pytest.mark.parametrize("key", [0, 12345, -1, 2**62 + 3])
def test_rand_bit_exact(target, key):
    n, d = 5, 7
    p = np.linspace(-0.1, 1.1, d)
    got = run(RANDOM, "rnd", target, key, np.zeros((n, d), np.float32), p)
    def gen():
        return _philox(key)
    assert_same(got[0], gen().random(n * d).reshape(n, d), rtol=0, atol=0)
    assert_same(got[1], gen().random(n * d, np.float32).reshape(n, d), rtol=0, atol=0)
    assert_same(got[2], np.float64(gen().random()), rtol=0, atol=0)
    assert_same(got[3], np.zeros((0, d)))
    assert_same(got[4], gen().random(n * d).reshape(n, d) < 0.3)
    assert_same(got[9], gen().random(n), rtol=0, atol=0)
    assert_same(got[10], gen().random(n * d).reshape(n, d) < p)
    assert_same(got[11], _philox(7).random(3), rtol=0, atol=0)
    assert_same(got[12], gen().random(n * d, np.float32).reshape(d, n), rtol=0, atol=0)
    # randint: dtype, range, the same on every target (run() compared with the reference)
    assert got[5].dtype == np.int64 and got[5].shape == (n, d)
    assert got[5].min() >= 3 and got[5].max() < 10
    assert got[6].dtype == np.int32 and got[6].shape == (n,)
    assert got[6].min() >= -5 and got[6].max() < 5
    assert got[7].dtype == np.float64 and got[8].dtype == np.float32


def test_rand_statistics(target):
    n, d = 200, 100
    got = run(RANDOM, "rnd", target, 99, np.zeros((n, d), np.float32), np.full(d, 0.5))
    normal = got[7]
    assert abs(normal.mean()) < 0.03 and abs(normal.std() - 1) < 0.03
    assert abs(got[8].astype(np.float64).mean()) < 0.03
    counts = np.bincount(got[5].ravel() - 3, minlength=7)
    assert counts.min() > 0.85 * n * d / 7 and counts.max() < 1.15 * n * d / 7
    assert abs(got[4].mean() - 0.3) < 0.02


def test_fold_in_loop(target):
    key, t = 42, 5
    out, k3, ks = run(RANDOM, "draws", target, key, np.zeros(t))
    assert out.shape == (t, 4) and out.dtype == np.float64
    assert len({tuple(row) for row in out}) == t            # fresh numbers each iteration
    assert k3.dtype == np.int64 and ks.dtype == np.int64 and ks.shape == (t,)
    assert ks[3] == k3
    for i in range(t):
        assert_same(out[i], _philox(int(ks[i])).random(4), rtol=0, atol=0)
    # the documented fold_in: word 0 of the Philox-4x64-10 block with counter [i, 0, 0, 1], key [key, 0]
    bits = np.random.Philox(key=key, counter=[2, 0, 0, 1]).random_raw(1)[0]
    assert int(k3) % 2**64 == int(bits)
    # the same on every target: compare with the reference exactly
    if target != "numpy":
        ref = getattr(compiled(RANDOM, "numpy"), "draws")(key, np.zeros(t))
        for g, r in zip((out, k3, ks), ref):
            assert np.array_equal(g, r)


def test_randn_same_everywhere(target):
    got = run(RANDOM, "rnd", target, 5, np.zeros((4, 6), np.float32), np.zeros(6))
    if target != "numpy":
        ref = getattr(compiled(RANDOM, "numpy"), "rnd")(5, np.zeros((4, 6), np.float32), np.zeros(6))
        for j in (0, 1, 4, 5, 6, 10):
            assert np.array_equal(got[j], ref[j])
        np.testing.assert_allclose(got[7], ref[7], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[8], ref[8], rtol=1e-5, atol=1e-6)


def test_rand_i32_key(target):
    assert_same(run(RANDOM, "keyed", target, np.int32(-3)), _philox(-3).random(5), rtol=0, atol=0)


def test_rand_grad_is_constant(target):
    x = np.arange(6.0)
    g, z, mask = run(RANDOM, "g_rand", target, 11, x)
    assert_same(g, z + mask)


# ---------------------------------------------------------------------------------------------
# the Python builder: Var methods and properties, tdsl.inf etc.
# ---------------------------------------------------------------------------------------------

def test_builder_constants():
    assert tdsl.inf == np.inf and isinstance(tdsl.inf, float)
    assert np.isnan(tdsl.nan) and isinstance(tdsl.nan, float)
    assert tdsl.pi == np.pi and tdsl.e == np.e


def test_builder_var_methods(target):
    require_target(target)
    v = tdsl.tensor("v", "f32", ("n", 3))
    assert v.shape == ("n", 3) and v.ndim == 2 and v.dtype == "f32"
    assert v.T.shape == (3, "n")
    assert v.sum().shape == () and v.sum(axis=0).shape == (3,)
    assert v.argmax(axis=1).dtype == "i64"
    assert v.astype("f64").dtype == "f64" and v.astype(np.float64).dtype == "f64"
    assert v.reshape(3, "n").shape == (3, "n")
    outs = (v.sum(), v.mean(), v.max(), v.min(), v.prod(), v.argmax(), v.argmin(), v.reshape(3, "n"),
            v.transpose(), v.astype("f64"), v.T, v.sum(axis=0), v.max(axis=1), v.argmax(axis=1),
            v.min(axis=-1, keepdims=True), v.mean(axis=0), v.reshape(-1), v.transpose(1, 0),
            v.max(initial=-tdsl.inf), v.reshape((3, "n")), v.argmin(axis=0), v.prod(axis=1))
    f = tdsl.function([v], outs, target=target)
    x = f32([[1.0, 5.0, 2.0], [0.5, -1.0, 4.0], [3.0, 3.0, -2.0], [1.0, 2.0, 0.5]])
    expected = (x.sum(), x.mean(), x.max(), x.min(), x.prod(), x.argmax(), x.argmin(), x.reshape(3, 4),
                x.transpose(), x.astype(np.float64), x.T, x.sum(axis=0), x.max(axis=1), x.argmax(axis=1),
                x.min(axis=-1, keepdims=True), x.mean(axis=0), x.reshape(-1), x.transpose(1, 0),
                x.max(initial=-np.inf), x.reshape((3, 4)), x.argmin(axis=0), x.prod(axis=1))
    assert_same(f(x), expected)
    assert_same(f(np.asfortranarray(x)), expected)


def test_builder_section12(target):
    require_target(target)
    x = tdsl.tensor("x", "f64", ("n", "k"))
    a = tdsl.tensor("a", "f64", ("k", "m"))
    outs = (tdsl.cumsum(x, 1), tdsl.sort(x), tdsl.argsort(x, 0), tdsl.einsum("ij,jk->ik", x, a),
            tdsl.norm(x, axis=1), tdsl.hypot(x, x * tdsl.pi), tdsl.diff(x), tdsl.cbrt(x),
            x * tdsl.inf, tdsl.rand(3, ("n", "k")), tdsl.grad(tdsl.norm(x), x))
    f = tdsl.function([x, a], outs, target=target)
    xv = rng.standard_normal((3, 4)) + 0.1
    av = rng.standard_normal((4, 2))
    expected = (np.cumsum(xv, 1), np.sort(xv), np.argsort(xv, 0, kind="stable"), xv @ av,
                np.linalg.norm(xv, axis=1), np.hypot(xv, xv * np.pi), np.diff(xv), np.cbrt(xv),
                xv * np.inf, _philox(3).random(12).reshape(3, 4), xv / np.linalg.norm(xv))
    assert_same(f(xv, av), expected)


# ---------------------------------------------------------------------------------------------
# errors the contract names, at the call's line:col
# ---------------------------------------------------------------------------------------------

ERRORS = [
    ("fn f(v: f32[n]) {\n    return einsum(\"i,i->ii\", v, v)\n}", "einsum"),
    ("fn f(a: f32[n, k]) -> f32 {\n    return norm(a, 2)\n}", "norm"),
    ("fn f(a: f32[n, k]) {\n    return norm(a, 1)\n}", "norm"),
    ("fn f(a: f32[n, k]) {\n    return norm(a, inf, axis=(0, 1))\n}", "norm"),
    ("fn f(v: f32[n]) {\n    return norm(v, 3)\n}", "norm"),
    ("fn f(a: f32[n, k], b: f32[m, k]) {\n    return einsum(\"ij,jk->ik\", a, b)\n}", "einsum"),
    ("fn f(a: f32[n, k], b: f32[k, m]) {\n    return einsum(\"ij,jk\", a, b)\n}", "einsum"),
    ("fn f(a: f32[n, k]) {\n    return einsum(\"ijk->i\", a)\n}", "einsum"),
    ("fn f(x: f32[b, 3, h, w], k: f32[16, 4, 3, 3]) {\n    return conv2d(x, k)\n}", "conv2d"),
    ("fn f(x: f32[b, 3, h, w], k: f32[16, 3, 3, 3]) {\n    return conv2d(x, k, stride=2, padding=\"same\")\n}", "conv2d"),
    ("fn f(x: f32[b, 3, w], k: f32[16, 3, 3, 3]) {\n    return conv2d(x, k)\n}", "conv2d"),
    ("fn f(x: f32[b, 3, h, w]) {\n    return max_pool2d(x, 0)\n}", "max_pool2d"),
    ("fn f(x: f32[n]) {\n    return rand(1.5, (n,))\n}", "rand"),
    ("fn f(x: f32[n]) {\n    return rand(true, (n,))\n}", "rand"),
    ("fn f(x: f32[n]) {\n    return randint(1, 5, 5, (n,))\n}", "randint"),
    ("fn f(x: f32[n]) {\n    return randint(1, 0, 5, (n,), dtype=f32)\n}", "randint"),
    ("fn f(x: f32[n]) {\n    return rand(1, (n,), dtype=i32)\n}", "rand"),
    ("fn f(x: bool[n], i: i64[m]) {\n    return scatter_add(x, i, true)\n}", "scatter_add"),
    ("fn f(x: i32[n], i: i64[m], v: f32[m]) {\n    return scatter_add(x, i, v)\n}", "scatter_add"),
    ("fn f(x: f32[n], i: f32[m]) {\n    return take_along_axis(x, i, 0)\n}", "take_along_axis"),
    ("fn f(x: f32[4]) {\n    v, i = top_k(x, 5)\n    return v\n}", "top_k"),
    ("fn f(x: f32) {\n    return sort(x)\n}", "sort"),
    ("fn f(x: f32) {\n    return diff(x)\n}", "diff"),
    ("fn f(x: f32) {\n    return cumsum(x, 0)\n}", "cumsum"),
    ("fn f(x: f32[n, k]) {\n    return cumsum(x, 2)\n}", "cumsum"),
    ("fn f(x: f32[n, k]) {\n    return sort(x, 1.5)\n}", "sort"),
    ("fn f(x: bool[n]) {\n    return einsum(\"i->\", x)\n}", "einsum"),
    ("fn f(x: f32[n]) {\n    return hypot(x)\n}", "hypot"),
    ("fn f(x: f32[n]) {\n    return diff(x, n=-1)\n}", "diff"),
    ("fn f(x: f32[b, 1, h, w], k: f32[1, 1, 3, 3]) {\n    return conv2d(x, k, padding=-1)\n}", "conv2d"),
    ("fn f(x: f32[b, 1, h, w], k: f32[1, 1, 3, 3]) {\n    return conv2d(x, k, stride=0)\n}", "conv2d"),
    ("fn f(x: f32[b, 1, h, w], k: f32[1, 1, 3, 3]) {\n    return conv2d(x, k, padding=\"full\")\n}", "conv2d"),
    ("fn f(x: f32[b, 1, h, w], k: f32[1, 1, 3]) {\n    return conv1d(x, k)\n}", "conv1d"),
    ("fn f(x: bool[b, 1, h, w], k: bool[1, 1, 3, 3]) {\n    return conv2d(x, k)\n}", "conv2d"),
    ("fn f(x: f32[1, 1, 2, 2], k: f32[1, 1, 3, 3]) {\n    return conv2d(x, k)\n}", "conv2d"),
    ("fn f(x: f32[1, 1, 2, 2]) {\n    return max_pool2d(x, 3)\n}", "max_pool2d"),
    ("fn f(v: f32[n]) {\n    return einsum(\"i->j\", v)\n}", "einsum"),
    ("fn f(v: f32[n]) {\n    return einsum(\"i,i->\", v)\n}", "einsum"),
    ("fn f(a: f32[n, m]) {\n    return einsum(\"ii->i\", a)\n}", "einsum"),
    ("fn f(a: f32[n, m, k]) {\n    return norm(a, axis=(0, 1, 2))\n}", "norm"),
    ("fn f(a: f32[n]) {\n    return norm(a, 0)\n}", "norm"),
    ("fn f(a: f32[n, m], i: i64[n]) {\n    return take_along_axis(a, i, 1)\n}", "take_along_axis"),
    ("fn f(a: f32[n, m], i: i64[p], v: f32[p, 3]) {\n    return scatter_add(a, i, v)\n}", "scatter_add"),
    ("fn f(a: f32[n], i: f32[p]) {\n    return scatter_add(a, i, 1.0)\n}", "scatter_add"),
    ("fn f() {\n    return randint(1, 0, 10000000000, 3, dtype=i32)\n}", "randint"),
    ("fn f(x: f64) {\n    return fold_in(1, x)\n}", "fold_in"),
    ("fn f(x: f32[n, 3]) {\n    return cumsum(x, (0, 1))\n}", "cumsum"),
    ("fn f(x: bool[n]) {\n    return hypot(x, x)\n}", "hypot"),
    ('fn f(x: f64[n]) {\n    s = "ij"\n    return x\n}', '"ij"'),
]


@pytest.mark.parametrize("src,needle", ERRORS, ids=[f"err{i}" for i in range(len(ERRORS))])
def test_errors(target, src, needle):
    require_target(target)
    expect_compile_error(src, needle, target)


def test_bernoulli_key_error_names_bernoulli():
    message = expect_compile_error("fn f(k: i64[n]) {\n    return bernoulli(k, 0.5, 3)\n}", "bernoulli")
    first_line = message.splitlines()[0]
    assert "bernoulli" in first_line and "rand" not in first_line.replace("bernoulli", ""), first_line


def test_top_k_call_time_error_at_the_call(target):
    require_target(target)
    f = getattr(compiled(CALL_ERRORS, target), "tk")
    with pytest.raises(tdsl.TdslError) as caught:
        f(np.zeros(2, np.float32), np.zeros(3, np.float32))
    assert ":19:12:" in str(caught.value), str(caught.value)


def test_builder_integer_methods(target):
    require_target(target)
    i = tdsl.tensor("i", "i32", ("n", 3))
    b = tdsl.tensor("b", "bool", ("n",))
    outs = (i.sum(), i.mean(), i.prod(), i.max(axis=0), i.argmin(), i.astype("bool"), i.transpose((1, 0)),
            b.sum(), b.prod(), b.mean(), b.T, b.max(), i.sum(axis=(0, 1), keepdims=True), i.reshape(-1, 1),
            i.argmax(axis=-1, keepdims=True))
    iv = np.array([[1, -2, 3], [4, 5, -6]], np.int32)
    bv = np.array([True, False])
    expected = (iv.sum(), iv.mean(), iv.prod(), iv.max(axis=0), iv.argmin(), iv.astype(bool), iv.transpose((1, 0)),
                bv.sum(), bv.prod(), bv.mean(), bv.T, bv.max(), iv.sum(axis=(0, 1), keepdims=True),
                iv.reshape(-1, 1), iv.argmax(axis=-1, keepdims=True))
    assert_same(tdsl.function([i, b], outs, target=target)(iv, bv), expected)


def test_einsum_string_elsewhere_is_an_error():
    with pytest.raises(tdsl.TdslError):
        tdsl.compile('fn f(x: f32[n]) {\n    return sum(x, "a")\n}', target="numpy")


# ---------------------------------------------------------------------------------------------
# more corner cases: long rows (radix sort), integer extremes, wrapping
# ---------------------------------------------------------------------------------------------

LONG = """
fn s(x: f64[n, k], i: i64[n, k], b: bool[n, k], j: i32[n, k]) {
    return sort(x), argsort(x), sort(i), argsort(i), argsort(b), argsort(x, 0), sort(j), argsort(j), sort(x, 0)
}

fn t(x: f64[n, k], i: i64[n, k]) {
    v, p = top_k(x, 5)
    w, q = top_k(i, 2, 0)
    return v, p, w, q
}

fn c(i: i64[n], j: i32[n], x: f32[n]) {
    return cumsum(i), cumprod(j), cumprod(i), cumsum(x), cumprod(x)
}
"""


def test_sort_long_rows_extremes(target):
    x = rng.integers(-3, 4, (3, 50)).astype(np.float64)
    x[0, [1, 7, 30]] = np.nan
    x[1, [2, 40]] = -0.0
    x[1, 3] = 0.0
    x[2, 5] = -np.inf
    i = rng.integers(-2**62, 2**62, (3, 50))
    i[0, :2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    b = rng.integers(0, 2, (3, 50)).astype(bool)
    j = rng.integers(-2**31, 2**31, (3, 50)).astype(np.int32)
    got = run(LONG, "s", target, x, i, b, j)
    st = dict(kind="stable")
    assert_same(got, (np.sort(x, **st), np.argsort(x, **st), np.sort(i, **st), np.argsort(i, **st),
                      np.argsort(b, **st), np.argsort(x, 0, **st), np.sort(j, **st), np.argsort(j, **st),
                      np.sort(x, 0, **st)))
    assert np.array_equal(np.signbit(got[0]), np.signbit(np.sort(x, **st)))
    assert_same(run(LONG, "t", target, x, i), (*_top_k(x, 5), *_top_k(i, 2, 0)))


def test_cumulative_wraps(target):
    i = np.array([2**62, 2**62, 2**62, 5], np.int64)
    j = np.array([2**16, 2**16, 3, -1], np.int32)
    x = np.array([1e30, 1e30, -0.0, np.nan], np.float32)
    with np.errstate(all="ignore"):
        expected = (np.cumsum(i), np.cumprod(j), np.cumprod(i), np.cumsum(x), np.cumprod(x))
    assert_same(run(LONG, "c", target, i, j, x), expected)


def test_extras_special_values(target):
    a = np.array([np.inf, np.nan, -0.0, 1e308, -np.inf, 1e-310, 3.0, 27.0])
    b = np.array([np.nan, np.inf, -1.0, 1e308, -np.inf, -1e-310, np.nan, -2.0])
    zi = np.zeros(8, np.int32)
    got = run(CONSTS, "elem", target, f32(a), f32(b), a, b, zi)
    with np.errstate(all="ignore"):
        assert_same(got[4:8], (np.hypot(a, b), np.logaddexp(a, b), np.cbrt(a), np.copysign(a, b)))
        assert_same(got[:3], (np.hypot(f32(a), f32(b)), np.logaddexp(f32(a), f32(b)), np.cbrt(f32(a))))


# ---------------------------------------------------------------------------------------------
# gradients of gradients ("Gradients of gradients are allowed", section 7)
# ---------------------------------------------------------------------------------------------

HESS = {
    "extras": "fn extras(a: f64[n], b: f64[n]) {\n    g = grad(sum(hypot(a, b) * logaddexp(a, b) + cbrt(a) * b), a)\n    return g, grad(sum(g * g), a)\n}",
    "cumsum": "fn cumsum_h(x: f64[n, k], w: f64[n, k]) {\n    g = grad(sum(w * cumsum(x, 1) * cumsum(x, 1)), x)\n    return g, grad(sum(g * g), x)\n}",
    "diff": "fn diff_h(x: f64[n, k], w: f64[n, k]) {\n    g = grad(sum(diff(x) ** 3), x)\n    return g, grad(sum(g * g), x)\n}",
    "norm": "fn norm_h(x: f64[n, k], w: f64[n, k]) {\n    g = grad(norm(x) + norm(x[0], 1) + norm(x[1], inf), x)\n    return g, grad(sum(g * g * x), x)\n}",
    "einsum": "fn einsum_h(x: f64[n, k], w: f64[k, m]) {\n    g = grad(sum(einsum(\"ij,jk->ik\", x, w) ** 2), x)\n    return g, grad(sum(g * g), w)\n}",
    "sort": "fn sort_h(x: f64[n, k], w: f64[n, k]) {\n    g = grad(sum(w * sort(x) * sort(x)), x)\n    return g, grad(sum(g * w), x)\n}",
    "top_k": "fn top_k_h(x: f64[n, k], w: f64[n, k]) {\n    v, i = top_k(x, 2)\n    g = grad(sum(v * v), x)\n    return g, grad(sum(g * w), x)\n}",
    "cumprod": "fn cumprod_h(x: f64[n, k], w: f64[n, k]) {\n    g = grad(sum(w * cumprod(x, 1)), x)\n    return g, grad(sum(g * g), x)\n}",
    "take_along_axis": "fn take_h(x: f64[n, k], w: f64[n, k]) {\n    g = grad(sum(take_along_axis(x, argsort(w), 1) ** 3 * w), x)\n    return g, grad(sum(g * g), x)\n}",
    "conv2d": "fn conv_h(x: f64[b, c, h, w], k: f64[o, c, 3, 3]) {\n    g = grad(sum(conv2d(x, k, padding=1) ** 2), k)\n    return g, grad(sum(g * g), x)\n}",
}


def _np_first(name, x, w):
    """The first gradient, analytically in NumPy (the second is a finite difference of it)."""
    if name == "extras":
        return (x / np.hypot(x, w)) * np.logaddexp(x, w) + np.hypot(x, w) * np.exp(x) / (np.exp(x) + np.exp(w)) \
            + w / (3 * np.cbrt(x) ** 2)
    if name == "cumsum":
        c = np.cumsum(x, 1)
        return np.flip(np.cumsum(np.flip(2 * w * c, 1), 1), 1)
    if name == "diff":
        d = 3 * np.diff(x) ** 2
        g = np.zeros_like(x)
        g[:, 1:] += d
        g[:, :-1] -= d
        return g
    if name == "norm":
        g = x / np.linalg.norm(x)
        g[0] += np.sign(x[0])
        m = np.abs(x[1]) == np.abs(x[1]).max()
        g[1] += m * np.sign(x[1]) / m.sum()
        return g
    if name == "einsum":
        return 2 * (x @ w) @ w.T
    if name == "sort":
        perm = np.argsort(x, 1, kind="stable")
        g = np.zeros_like(x)
        np.put_along_axis(g, perm, 2 * w * np.sort(x, 1, kind="stable"), 1)
        return g
    if name == "top_k":
        v, idx = _top_k(x, 2)
        g = np.zeros_like(x)
        np.put_along_axis(g, idx, 2 * v, 1)
        return g
    if name == "cumprod":
        return _cumprod_grad(x, w)
    if name == "take_along_axis":
        perm = np.argsort(w, 1, kind="stable")
        g = np.zeros_like(x)
        for r in range(x.shape[0]):
            for c in range(x.shape[1]):
                g[r, perm[r, c]] += 3 * x[r, perm[r, c]] ** 2 * w[r, c]
        return g
    raise AssertionError(name)


def _conv_k_grad(x, k):
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))
    y = np.einsum("bchwij,ocij->bohw", win, k)
    return 2 * np.einsum("bchwij,bohw->ocij", win, y)


HESS_BROKEN: dict[str, str] = {}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=HESS_BROKEN[n], strict=True)) if n in HESS_BROKEN else n
    for n in HESS])
def test_second_derivatives(target, name):
    src = HESS[name]
    fn_name = src.split("(")[0][3:]
    if name == "conv2d":
        x = rng.standard_normal((1, 2, 4, 4))
        k = rng.standard_normal((2, 2, 3, 3))
        got = run(src, fn_name, target, x, k)
        second = _fd_grad(lambda z: np.sum(_conv_k_grad(z, k) ** 2), x, 1e-5)
        assert_same(got, (_conv_k_grad(x, k), second), rtol=1e-4, atol=1e-4)
        return
    x = rng.uniform(0.5, 2.0, (3, 4)) * np.where(rng.random((3, 4)) < 0.5, -1, 1)
    w = rng.standard_normal((4, 3)) if name == "einsum" else rng.standard_normal((3, 4))
    if name == "extras":
        x, w = x[0], np.abs(w[0]) + 0.5
    got = run(src, fn_name, target, x, w)
    first = _np_first(name, x, w)
    if name == "norm":
        second = _fd_grad(lambda z: np.sum(_np_first(name, z, w) ** 2 * z), x, 1e-5)
    elif name in ("sort", "top_k"):
        second = _fd_grad(lambda z: np.sum(_np_first(name, z, w) * w), x, 1e-5)
    elif name == "einsum":
        second = _fd_grad(lambda z: np.sum(_np_first(name, x, z) ** 2), w, 1e-5)
    else:
        second = _fd_grad(lambda z: np.sum(_np_first(name, z, w) ** 2), x, 1e-5)
    assert_same(got, (first, second), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# to_tdsl: "the graph as .tdsl text, which parses back" (section 8), for section-12 builtins
# ---------------------------------------------------------------------------------------------

_X = ("x", "f64", ("n", "k"))
TO_TDSL = {
    "consts": lambda x, key: (x * tdsl.inf, x + tdsl.nan, x * -tdsl.inf, x * tdsl.pi + tdsl.e),
    "extras": lambda x, key: (tdsl.hypot(x, x), tdsl.logaddexp(x, -tdsl.inf), tdsl.cbrt(x), tdsl.copysign(x, -0.0)),
    "cumsum": lambda x, key: tdsl.cumsum(x, 1),
    "cumprod": lambda x, key: tdsl.cumprod(x, 1),
    "diff": lambda x, key: tdsl.diff(x),
    "sort": lambda x, key: tdsl.sort(x),
    "argsort": lambda x, key: tdsl.argsort(x),
    "top_k": lambda x, key: tdsl.top_k(x, 2),
    "einsum": lambda x, key: tdsl.einsum("ij,kj->ik", x, x),
    "norm": lambda x, key: (tdsl.norm(x), tdsl.norm(x, tdsl.inf, axis=1), tdsl.norm(x, 1, axis=0)),
    "scatter_add": lambda x, key: tdsl.scatter_add(x, tdsl.argmax(x, axis=0), 1.0),
    "take_along_axis": lambda x, key: tdsl.take_along_axis(x, tdsl.argmax(x, axis=1).reshape("n", 1), 1),
    "grad_of_take": lambda x, key: tdsl.grad(tdsl.sum(tdsl.take(x, tdsl.argmax(x, axis=0), 0) ** 2), x),
    "conv2d": lambda x, key: tdsl.conv2d(x.reshape(1, 1, "n", "k"), tdsl.ones((1, 1, 2, 2))),
    "pools": lambda x, key: (tdsl.max_pool2d(x.reshape(1, 1, "n", "k"), 2), tdsl.avg_pool2d(x.reshape(1, 1, "n", "k"), 2)),
    "random": lambda x, key: (tdsl.rand(key, ("n", "k")), tdsl.randn(key, 3), tdsl.randint(key, 0, 5, ("n",)),
                              tdsl.bernoulli(key, 0.5, ("k",)), tdsl.fold_in(key, 3)),
}
TO_TDSL_BROKEN: dict = {}   # sort, argsort, top_k, cumsum, cumprod, scatter_add, take_along_axis: fixed


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=TO_TDSL_BROKEN[n], strict=True)) if n in TO_TDSL_BROKEN else n
    for n in TO_TDSL])
def test_to_tdsl_parses_back(target, name):
    require_target(target)
    x = tdsl.tensor(*_X)
    key = tdsl.scalar("key", "i64")
    f = tdsl.function([x, key], TO_TDSL[name](x, key), target=target, name="f")
    text = f.to_tdsl()
    back = compiled(text, target).f
    xv = rng.standard_normal((4, 4))
    assert_same(back(xv, 5), f(xv, 5))


# ---------------------------------------------------------------------------------------------
# the documented transforms (docs/language.md "Random numbers"), checked against NumPy's Philox
# ---------------------------------------------------------------------------------------------

RANDOM_DOC = """
fn r(key: i64, x: f32[n]) {
    return randn(key, (n,)), randint(key, -7, 1000003, (n,)), randn(key, n, dtype=f32)
}

fn big() {
    return rand(9223372036854775813, 4), rand(-1, 4)
}

fn ri(key: i64, lo: i64, hi: i64, n: i64[m]) {
    return randint(key, lo, hi, (m,)), randint(key, lo, hi, (m,), dtype=i32)
}

fn fk(key: i64, i: i64[m]) {
    return fold_in(key, i)
}
"""


def test_random_documented_transforms(target):
    n, key = 1001, 77
    raw = np.random.Philox(key=key).random_raw(2 * n)
    u1 = (raw[0::2] >> np.uint64(11)) * 2.0**-53
    u2 = (raw[1::2] >> np.uint64(11)) * 2.0**-53
    normal = np.sqrt(-2 * np.log(1 - u1)) * np.cos(2 * np.pi * u2)
    raw1 = np.random.Philox(key=key).random_raw(n)
    ints = np.array([-7 + ((int(v) * (1000003 + 7)) >> 64) for v in raw1], np.int64)
    got = run(RANDOM_DOC, "r", target, key, np.zeros(n, np.float32))
    np.testing.assert_allclose(got[0], normal, rtol=1e-12, atol=1e-12)
    assert_same(got[1], ints)
    assert got[2].dtype == np.float32 and got[2].shape == (n,)
    assert_same(run(RANDOM_DOC, "big", target), (_philox(9223372036854775813).random(4), _philox(-1).random(4)),
                rtol=0, atol=0)
    lo_hi = run(RANDOM_DOC, "ri", target, 1, -3, 3, np.zeros(2000, np.int64))
    assert lo_hi[0].min() == -3 and lo_hi[0].max() == 2 and lo_hi[1].dtype == np.int32
    with pytest.raises(tdsl.TdslError, match="low < high"):
        getattr(compiled(RANDOM_DOC, target), "ri")(1, 5, 5, np.zeros(3, np.int64))
    idx = [0, 1, 3, -3, 2**62, -1]
    keys = run(RANDOM_DOC, "fk", target, 5, np.array(idx))
    for i, k in zip(idx, keys):
        counter = np.array([(i - 1) % 2**64, 0, 0, 1] if i else [2**64 - 1] * 3 + [0], np.uint64)
        assert int(k) % 2**64 == int(np.random.Philox(key=5, counter=counter).random_raw(1)[0])


# ---------------------------------------------------------------------------------------------
# shadowing across a module, call-time errors, the embedding gradient's memory
# ---------------------------------------------------------------------------------------------

SHADOW2 = """
const pi = 3

fn sort(x: f64[n]) {
    return x + 1.0
}

fn a(x: f64[n], inf: f64) {
    return sort(x) * inf, pi * x, hypot(x, e)
}

fn b(x: f64[n]) {
    e = 2.0
    return x * e, x * inf, cumsum(x)
}

fn c(x: i32[n]) {
    return x * pi
}

fn norm(x: f64[n], k: i64) {
    return x * f64(k)
}

fn f(x: f64[n]) {
    return norm(x, 2)
}
"""


def test_shadowing_module(target):
    x = np.array([1.0, -2.0, 3.0])
    assert_same(run(SHADOW2, "a", target, x, 2.0), ((x + 1) * 2.0, 3 * x, np.hypot(x, np.e)))
    assert_same(run(SHADOW2, "b", target, x), (x * 2.0, x * np.inf, np.cumsum(x)))
    assert_same(run(SHADOW2, "c", target, np.array([1, 2], np.int32)), np.array([3, 6], np.int32))
    assert_same(run(SHADOW2, "f", target, x), x * 2.0)


CALL_ERRORS = """
fn t(x: f32[n], i: i64[m]) {
    return take_along_axis(x, i, 0)
}

fn s(x: f32[n], i: i64[m]) {
    return scatter_add(x, i, 1.0)
}

fn c(x: f32[b, 1, h, w], k: f32[2, 1, 3, 3]) {
    return conv2d(x, k)
}

fn dd(x: f32[n]) {
    return diff(x)
}

fn tk(x: f32[n], y: f32[m]) {
    v, i = top_k(x, m)
    return v
}

fn gt(e: f32[n, d], i: i64[m], w: f32[m, d]) {
    return grad(sum(take(e, i) * w), e)
}
"""


@pytest.mark.parametrize("fn_name,args,line,needle", [
    ("t", (np.zeros(5, np.float32), np.array([1, 7])), 3, "index 7 is out of range for axis 0 of length 5"),
    ("s", (np.zeros(5, np.float32), np.array([-6, 1])), 7, "index -6 is out of range for axis 0 of length 5"),
    ("c", (np.zeros((1, 1, 2, 5), np.float32), np.zeros((2, 1, 3, 3), np.float32)), 11, "h = 2"),
    ("dd", (np.zeros(0, np.float32),), 15, "n = 0"),
    ("tk", (np.zeros(2, np.float32), np.zeros(3, np.float32)), 19, "m = 3"),
])
def test_call_time_errors(target, fn_name, args, line, needle):
    require_target(target)
    f = getattr(compiled(CALL_ERRORS, target), fn_name)
    with pytest.raises(tdsl.TdslError) as caught:
        f(*args)
    assert f":{line}:" in str(caught.value) and needle in str(caught.value), str(caught.value)


def test_embedding_gradient_is_a_scatter(target):
    # 100,000 x 64 f32 with 4,096 indices: a one-hot product would need 1.6e9 elements
    table = np.ones((100_000, 64), np.float32)
    idx = rng.integers(-100_000, 100_000, 4096)
    w = f32(rng.standard_normal((4096, 64)))
    require_target(target)
    got = getattr(compiled(CALL_ERRORS, target), "gt")(table, idx, w)
    expected = np.zeros_like(table)
    np.add.at(expected, idx, w)
    assert_same(got, expected)


# ---------------------------------------------------------------------------------------------
# values stay immutable (section 11): a scatter_add of a loop's carried value seen through
# another name bound to it. lang/graph.py in_place_results counts the readers of a carried
# parameter among node inputs only, so `t = s` (a body result that is the parameter itself)
# is not seen and the update happens in place under t as well.
# ---------------------------------------------------------------------------------------------

ALIAS = {
    "scatter_add": "s = scatter_add(s, idx, 1.0)",
    "update": "s[idx] = 7.0",
    "update_slice": "s[1:3] = 7.0",
}
ALIAS_SRC = """
fn h(x: f64[n], idx: i64[m]) {{
    s = x
    t = x
    for i in range({iters}) {{
        t = s
        {stmt}
    }}
    return s, t
}}
"""


@pytest.mark.parametrize("kind", list(ALIAS))
def test_loop_update_does_not_alias(target, kind):
    x = np.array([1.0, 2.0, 3.0, 4.0])
    idx = np.array([0, 2, 2, -1])
    src = ALIAS_SRC.format(iters=1, stmt=ALIAS[kind])
    s, t = x.copy(), x.copy()
    for _ in range(1):
        t = s.copy()
        if kind == "scatter_add":
            np.add.at(s, idx, 1.0)
        elif kind == "update":
            s[idx] = 7.0
        else:
            s[1:3] = 7.0
    assert_same(run(src, "h", target, x, idx), (s, t))
    assert_same(x, np.array([1.0, 2.0, 3.0, 4.0]))      # the input is never modified


ALIAS_MORE = {
    "while": "fn h(x: f64[n], idx: i64[m]) {\n    s = x\n    t = x\n    i = 0\n    while i < 1 {\n        t = s\n"
             "        s = scatter_add(s, idx, 1.0)\n        i = i + 1\n    }\n    return s, t\n}",
    "nested_for": "fn h(x: f64[n], idx: i64[m]) {\n    s = x\n    t = x\n    for i in range(1) {\n        for j in range(1) {\n"
                  "            t = s\n            s = scatter_add(s, idx, 1.0)\n        }\n    }\n    return s, t\n}",
}


@pytest.mark.parametrize("kind", list(ALIAS_MORE))
def test_loop_update_does_not_alias_more(target, kind):
    x = np.array([1.0, 2.0, 3.0, 4.0])
    idx = np.array([0, 2])
    s = x.copy()
    np.add.at(s, idx, 1.0)
    assert_same(run(ALIAS_MORE[kind], "h", target, x, idx), (s, x))


# ---------------------------------------------------------------------------------------------
# einsum on generated specs (1-3 operands, diagonals, sums, a literal-1 axis, mixed dtypes)
# ---------------------------------------------------------------------------------------------

def _einsum_cases(count=20, seed=5):
    import random
    pick = random.Random(seed)
    sizes = dict(zip("abcde", [2, 3, 4, 1, 3]))
    dims = {c: ("1" if c == "d" else f"s{c}") for c in "abcde"}
    gen = np.random.default_rng(seed)
    np_dtypes = {"f64": np.float64, "f32": np.float32, "i32": np.int32, "i64": np.int64}
    fns, cases = [], []
    for t in range(count):
        terms = ["".join(pick.choice("abcde") for _ in range(pick.randint(0, 3))) for _ in range(pick.randint(1, 3))]
        letters = sorted(set("".join(terms)))
        out = "".join(pick.sample(letters, pick.randint(0, len(letters))))
        spec = ",".join(terms) + "->" + out
        dts = [pick.choice(list(np_dtypes)) for _ in terms]
        params = ", ".join(f"p{j}: {dt}[{', '.join(dims[c] for c in term)}]" if term else f"p{j}: {dt}"
                           for j, (term, dt) in enumerate(zip(terms, dts)))
        fns.append(f'fn e{t}({params}) {{\n    return einsum("{spec}", {", ".join(f"p{j}" for j in range(len(terms)))})\n}}')
        args = []
        for term, dt in zip(terms, dts):
            shape = tuple(sizes[c] for c in term)
            a = gen.integers(-3, 4, shape) if dt[0] == "i" else gen.standard_normal(shape)
            args.append(np.asarray(a, np_dtypes[dt]) if shape else np_dtypes[dt](a))
        cases.append((f"e{t}", spec, args))
    return "\n\n".join(fns), cases


EINSUM_GEN, EINSUM_CASES = _einsum_cases()


def test_einsum_generated(target):
    for name, spec, args in EINSUM_CASES:
        assert_same(run(EINSUM_GEN, name, target, *args), np.asarray(np.einsum(spec, *args)), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# every OpenCL launch layout and C: the documented bit-exact results (cumsum, scatter_add in
# order, rand) and the stable sorts
# ---------------------------------------------------------------------------------------------

LAYOUT_SRC = """
fn c(x: f32[n, k], idx: i64[m], v: f32[m, k], y: f32[p], key: i64) {
    return cumsum(x, 1), cumsum(x, 0), scatter_add(x, idx, v), cumsum(y), argsort(x, 0), sort(x), rand(key, (n, k), dtype=f32)
}
"""


@pytest.mark.parametrize("variant", ["c", "opencl-cpu", "opencl-gpu"])
def test_layouts_bit_exact(variant):
    from conftest import compiled_variant
    x = f32(rng.integers(-20, 20, (40, 300)) / 7)
    idx = rng.integers(-40, 40, 2000)
    v = f32(rng.standard_normal((2000, 300)))
    y = f32(rng.standard_normal(100_003))
    got = compiled_variant(LAYOUT_SRC, variant).c(x, idx, v, y, 3)
    sa = x.copy()
    np.add.at(sa, idx, v)
    expected = (np.cumsum(x, 1), np.cumsum(x, 0), sa, np.cumsum(y), np.argsort(x, 0, kind="stable"),
                np.sort(x, kind="stable"), _philox(3).random(40 * 300, np.float32).reshape(40, 300))
    assert_same(got, expected, rtol=0, atol=0)


def test_rand_key_from_loop_index(target):
    src = """
fn r(key: i64, n: i64[m]) {
    out = zeros((m, 3))
    for i in range(m) {
        out[i] = rand(i, 3) + rand(key * 2 + 1, 3)
    }
    return out
}
"""
    expected = np.stack([_philox(i).random(3) + _philox(-13).random(3) for i in range(4)])
    assert_same(run(src, "r", target, -7, np.zeros(4, np.int64)), expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# kinks: the 2-norm's gradient at 0 is 0 (docs, as abs'(0) = 0); hypot(a, b) is the 2-norm of
# (a, b) and hypot(x, 0) is abs(x), so by the same rule its gradient at the origin is 0, not NaN
# ---------------------------------------------------------------------------------------------

KINKS = """
fn norms0(x: f64[n, k]) {
    return grad(sum(norm(x, axis=1)), x), grad(norm(x), x), grad(norm(x[0], inf), x)
}

fn hypot0(a: f64[n], b: f64[n]) {
    ha, hb = grad(sum(hypot(a, b)), a, b)
    return ha, hb, grad(sum(abs(a)), a)
}
"""


def test_norm_gradient_zero_rows(target):
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    got = run(KINKS, "norms0", target, x)
    assert_same(got, (np.array([[0.0, 0.0], [0.6, 0.8]]), x / 5.0, np.zeros((2, 2))))


def test_hypot_gradient_at_origin(target):
    a = np.array([0.0, 3.0])
    b = np.array([0.0, 4.0])
    got = run(KINKS, "hypot0", target, a, b)
    assert_same(got, (np.array([0.0, 0.6]), np.array([0.0, 0.8]), np.array([0.0, 1.0])))


NEGNAN_SRC = """
fn s(x: f32[n, k], y: f64[n, k]) {
    v, i = top_k(x, 3)
    return sort(x), argsort(x), sort(y), argsort(y), i
}
"""


@pytest.mark.parametrize("k", [6, 40])   # the insertion sort and the radix sort
def test_sort_negative_nan_last(target, k):
    """A NaN with its sign bit set sorts last too, as NumPy's (not first, as its bits would)."""
    negnan32 = np.frombuffer(np.uint32(0xFFC00000).tobytes(), np.float32)[0]
    x = f32(rng.standard_normal((2, k)))
    x[:, 1] = negnan32
    x[:, 3] = np.nan
    x[0, 4] = -np.inf
    y = x.astype(np.float64)
    y[:, 1] = -np.float64(np.nan)
    assert np.signbit(x[0, 1]) and np.signbit(y[0, 1])
    got = run(NEGNAN_SRC, "s", target, x, y)
    st = dict(kind="stable")
    expected = (np.sort(x, **st), np.argsort(x, **st), np.sort(y, **st), np.argsort(y, **st), _top_k(x, 3)[1])
    assert_same(got, expected)


def test_builder_loop_random_and_grad(target):
    require_target(target)
    key = tdsl.scalar("key", "i64")
    x = tdsl.tensor("x", "f64", ("n",))
    acc = tdsl.fori_loop(0, 3, lambda i, a: a + tdsl.rand(tdsl.fold_in(key, i), ("n",)), x * 0.0)
    v, _ = tdsl.top_k(x, 2)
    g = tdsl.grad(tdsl.sum(v * v) + tdsl.sum(tdsl.cumsum(x) * x), x)
    f = tdsl.function([key, x], (acc, g), target=target)
    assert f.signature == "f(key: i64, x: f64[n]) -> (f64[n], f64[n])"
    xv = np.array([3.0, 1.0, 2.0])
    keys = getattr(compiled(RANDOM_DOC, "numpy"), "fk")(5, np.arange(3))
    expected_acc = sum(_philox(int(k)).random(3) for k in keys)
    expected_g = np.array([6.0, 0.0, 4.0]) + np.cumsum(xv) + np.flip(np.cumsum(np.flip(xv)))
    assert_same(f(5, xv), (expected_acc, expected_g), rtol=1e-12, atol=0)
