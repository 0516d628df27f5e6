"""Section 12: cumsum, cumprod, sort, argsort, top_k on every target, against NumPy itself.

Each family is one source with a function per dtype (compiled once per target); the
reference values are NumPy's (`np.cumsum`, `np.sort(kind="stable")`, ...) or, for top_k,
a Python ordering written here. Rows longer than 16 take the radix sort, shorter ones the
insertion sort: both are covered.
"""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import compiled, require_target, run

DTYPES = ("f32", "f64", "i32", "i64", "bool")
NP = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
rng = np.random.default_rng(12)


def fn(src: str, name: str, target: str):
    require_target(target)
    return getattr(compiled(src, target), name)


def sample(dtype: str, shape, special: bool = True, spread: int = 7) -> np.ndarray:
    """Values with ties; floats with NaN, +-0.0 and +-inf, integers with their extremes."""
    size = int(np.prod(shape))
    if dtype == "bool":
        return rng.integers(0, 2, size).astype(bool).reshape(shape)
    if dtype in ("i32", "i64"):
        info = np.iinfo(NP[dtype])
        x = rng.integers(-spread, spread, size).astype(NP[dtype])
        if special and size >= 4:
            x[rng.choice(size, 2, replace=False)] = [info.min, info.max]
        return x.reshape(shape)
    x = (rng.integers(-spread, spread, size) / 2).astype(NP[dtype])
    if special and size >= 8:
        picks = rng.choice(size, 6, replace=False)
        x[picks] = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, np.nan], NP[dtype])
    return x.reshape(shape)


def same_bits(got, expected) -> None:
    """Equal dtype, shape and values, NaN matching NaN and the sign of every zero too."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)
    if got.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


# -- cumsum and cumprod ------------------------------------------------------------------

CUMULATIVE = "\n".join(f"""
fn cum_{t}(x: {t}[a, b, c]) {{
    return cumsum(x, 0), cumsum(x, 1), cumsum(x, -1), cumsum(x), cumprod(x, 0), cumprod(x, -2), cumprod(x, 2), cumprod(x)
}}""" for t in DTYPES) + """
fn fused(x: f64[n, m]) -> (f64[n, m], f64[n * m]) {
    return cumsum(x * 2.0 + 1.0, 0), cumprod(exp(x))
}
fn listed() -> i64[4] {
    return cumsum([1, 2, 3, 4])
}
fn of_scalar(x: f64, b: bool[n]) {
    return cumsum(x), cumprod(x * 2.0), cumsum(b), cumprod(b)
}
"""


def cumulative_expected(x):
    return tuple([np.cumsum(x, 0), np.cumsum(x, 1), np.cumsum(x, -1), np.cumsum(x),
                  np.cumprod(x, 0), np.cumprod(x, -2), np.cumprod(x, 2), np.cumprod(x)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 0, 3), (1, 1, 40)])
def test_cumulative_matches_numpy(target, dtype, shape):
    x = sample(dtype, shape, spread=3)
    got = run(CUMULATIVE, f"cum_{dtype}", target, x)
    for g, e in zip(got, cumulative_expected(x)):
        same_bits(g, e)   # serial accumulation in order: NumPy's bits


def test_cumulative_non_contiguous_and_fused(target):
    x = rng.normal(size=(6, 8, 4))[::2, :, ::-1].transpose(1, 0, 2)
    got = run(CUMULATIVE, "cum_f64", target, x)
    for g, e in zip(got, cumulative_expected(np.ascontiguousarray(x))):
        same_bits(g, e)
    y = rng.normal(size=(5, 7)) / 4
    got = run(CUMULATIVE, "fused", target, y)
    same_bits(got[0], np.cumsum(y * 2.0 + 1.0, 0))
    np.testing.assert_allclose(got[1], np.cumprod(np.exp(y)), rtol=1e-13)
    same_bits(run(CUMULATIVE, "listed", target), np.cumsum([1, 2, 3, 4]))
    b = np.array([True, False, True, True])
    got = run(CUMULATIVE, "of_scalar", target, -0.0, b)
    for g, e in zip(got, (np.cumsum(-0.0), np.cumprod(-0.0 * 2.0), np.cumsum(b), np.cumprod(b))):
        same_bits(g, e)


def test_cumulative_wraps_and_propagates_nan(target):
    big = np.array([[2**62, 2**62, 2**62, -5]], np.int64).reshape(1, 1, 4)
    for g, e in zip(run(CUMULATIVE, "cum_i64", target, big), cumulative_expected(big)):
        same_bits(g, e)   # integers wrap as NumPy's do
    x = np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0], np.float32).reshape(1, 2, 3)
    for g, e in zip(run(CUMULATIVE, "cum_f32", target, x), cumulative_expected(x)):
        same_bits(g, e)


# -- sort and argsort --------------------------------------------------------------------

SORTING = "\n".join(f"""
fn sorted_{t}(x: {t}[a, b, c]) {{
    return sort(x, 0), sort(x, 1), sort(x), sort(reshape(x, -1)), argsort(x, 0), argsort(x, -2), argsort(x), argsort(reshape(x, -1))
}}""" for t in DTYPES) + """
fn row_f32(x: f32[n]) -> (f32[n], i64[n]) {
    return sort(x), argsort(x)
}
fn of_sum(x: f64[n, m], y: f64[m]) -> (f64[n, m], i64[n, m]) {
    return sort(x + y, 0), argsort(-x)
}
"""


def sorting_expected(x):
    return (np.sort(x, 0, kind="stable"), np.sort(x, 1, kind="stable"), np.sort(x, kind="stable"),
            np.sort(x, axis=None, kind="stable"), np.argsort(x, 0, kind="stable"),
            np.argsort(x, -2, kind="stable"), np.argsort(x, kind="stable"),
            np.argsort(x, axis=None, kind="stable"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 0, 2), (2, 3, 40), (20, 3, 1)])
def test_sorting_matches_numpy(target, dtype, shape):
    x = sample(dtype, shape)
    for g, e in zip(run(SORTING, f"sorted_{dtype}", target, x), sorting_expected(x)):
        same_bits(g, e)


@pytest.mark.parametrize("n", [5, 17, 3000])
def test_sort_long_rows_zeros_nan_and_ties(target, n):
    """Radix and insertion sorts: NaN last, -0.0 and 0.0 in input order, ties stable."""
    x = rng.choice(np.array([-0.0, 0.0, 1.5, -2.0, np.nan, np.inf, -np.inf, 3e38, -1e-45], np.float32), n)
    values, order = run(SORTING, "row_f32", target, x)
    same_bits(values, np.sort(x, kind="stable"))
    same_bits(order, np.argsort(x, kind="stable"))


@pytest.mark.parametrize("dtype", ["i32", "i64", "f64"])
def test_sort_wide_values(target, dtype):
    x = sample(dtype, (2, 3, 500), spread=2**20)
    for g, e in zip(run(SORTING, f"sorted_{dtype}", target, x), sorting_expected(x)):
        same_bits(g, e)


def test_sort_non_contiguous_and_fused(target):
    x = rng.normal(size=(7, 10, 6))[:, ::3, ::-1]
    for g, e in zip(run(SORTING, "sorted_f64", target, x), sorting_expected(np.ascontiguousarray(x))):
        same_bits(g, e)
    a, b = rng.normal(size=(9, 4)), rng.normal(size=4)
    got = run(SORTING, "of_sum", target, a, b)
    same_bits(got[0], np.sort(a + b, 0, kind="stable"))
    same_bits(got[1], np.argsort(-a, kind="stable"))


# -- top_k ---------------------------------------------------------------------------------

TOP_K = "\n".join(f"""
fn top_{t}(x: {t}[a, b, c]) {{
    v1, i1 = top_k(x, c)
    v2, i2 = top_k(x, 0, 1)
    v3, i3 = top_k(x, 1, axis=0)
    v4, i4 = top_k(x, c - 1, -1)
    return v1, i1, v2, i2, v3, i3, v4, i4
}}""" for t in DTYPES) + """
fn top_of(x: f64[n], m: i64[k]) {
    return top_k(x, k)
}
fn top_flat(x: f32[n, m]) {
    v, i = top_k(reshape(x * 2.0, -1), 3)
    return v, i
}
"""


def top_k_expected(x: np.ndarray, k: int, axis: int):
    """The k largest along `axis`: largest first, ties to the lower index, NaN above everything."""
    moved = np.moveaxis(x, axis, -1)
    values, indices = np.zeros(moved.shape[:-1] + (k,), x.dtype), np.zeros(moved.shape[:-1] + (k,), np.int64)
    for at in np.ndindex(moved.shape[:-1]):
        row = moved[at]
        rank = [(0 if x.dtype.kind == "f" and np.isnan(v) else 1, -float(v) if x.dtype.kind == "f"
                 else -int(v), i) for i, v in enumerate(row)]
        order = [i for *_, i in sorted(rank, key=lambda t: (t[0], 0 if t[1] != t[1] else t[1], t[2]))][:k]
        indices[at] = order
        values[at] = row[order]
    return np.moveaxis(values, -1, axis), np.moveaxis(indices, -1, axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 33)])
def test_top_k_matches_ordering(target, dtype, shape):
    x = sample(dtype, shape)
    got = run(TOP_K, f"top_{dtype}", target, x)
    n = shape[-1]
    expected = [*top_k_expected(x, n, -1), *top_k_expected(x, 0, 1), *top_k_expected(x, 1, 0),
                *top_k_expected(x, n - 1, -1)]
    for g, e in zip(got, expected):
        same_bits(g, e)


def test_top_k_size_expression_and_flat(target):
    x = np.array([3.0, -0.0, np.nan, 3.0, 7.0, 0.0])
    values, indices = run(TOP_K, "top_of", target, x, np.zeros(4, np.int64))
    same_bits(values, np.array([np.nan, 7.0, 3.0, 3.0]))
    same_bits(indices, np.array([2, 4, 0, 3]))
    y = rng.normal(size=(4, 5)).astype(np.float32)
    values, indices = run(TOP_K, "top_flat", target, y)
    order = np.argsort(-(y * 2).ravel(), kind="stable")[:3]
    same_bits(indices, order)
    same_bits(values, (y * np.float32(2)).ravel()[order])


def test_top_k_larger_than_axis_fails_at_call_time(target):
    with pytest.raises(tdsl.TdslArgumentError, match=r"k \(k\) is larger than the axis length n, but k = 4"):
        fn(TOP_K, "top_of", target)(np.zeros(3), np.zeros(4, np.int64))


def test_top_k_errors_at_the_call():
    src = "fn f(x: f64[3, n]) {\n    v, i = top_k(x, 4, 0)\n    return v\n}\n"
    with pytest.raises(tdsl.TdslTypeError, match="larger than the axis length 3") as info:
        tdsl.compile(src, target="numpy")
    assert (info.value.loc.line, info.value.loc.col) == (2, 12)
    bad = {"fn f(x: f64[n]) {\n    return top_k(x, -1)\n}\n": "is negative",
           "fn f(x: f64[n]) {\n    return sort(x, 1)\n}\n": "axis 1 is out of range",
           "fn f(x: f64) {\n    return cumsum(x, 0)\n}\n": "needs an array",
           "fn f(x: f64[n, m]) {\n    return argsort(x, (0, 1))\n}\n": "one axis",
           "fn f(x: f64[n]) {\n    return top_k(x, 1.5)\n}\n": "k of top_k"}
    for src, message in bad.items():
        with pytest.raises(tdsl.TdslTypeError, match=message) as info:
            tdsl.compile(src, target="numpy")
        assert info.value.loc.line == 2


# -- inside loops ---------------------------------------------------------------------------

LOOPS = """
fn steps(x: f64[n, m], k: i64) -> (f64[n, m], i64[n, m]) {
    y = x
    order = argsort(x)
    for i in range(k) {
        y = sort(cumsum(y, 1) * 0.5, 0)
        order = argsort(y + order, 1)
    }
    return y, order
}
fn best(x: f32[n, m]) -> f32[n, 2] {
    acc = x[:, :2]
    for i in range(3) {
        v, j = top_k(x * f32(i), 2)
        acc = acc + v + f32(j)
    }
    return acc
}
"""


def test_in_loop_bodies(target):
    x = rng.normal(size=(5, 6))
    y, order = x, np.argsort(x, kind="stable")
    for _ in range(3):
        y = np.sort(np.cumsum(y, 1) * 0.5, 0, kind="stable")
        order = np.argsort(y + order, 1, kind="stable")
    got = run(LOOPS, "steps", target, x, 3)
    np.testing.assert_allclose(got[0], y, rtol=1e-12)
    same_bits(got[1], order)
    z = rng.normal(size=(4, 7)).astype(np.float32)
    acc = z[:, :2]
    for i in range(3):
        v, j = top_k_expected(z * np.float32(i), 2, -1)
        acc = acc + v + j.astype(np.float32)
    np.testing.assert_allclose(run(LOOPS, "best", target, z), acc, rtol=1e-6)


# -- gradients --------------------------------------------------------------------------------

GRADS = """
fn c_sum(x: f64[n, m], w: f64[n, m]) -> f64 {
    return sum(cumsum(x, 0) * w) + sum(cumsum(x * x) * 0.5)
}
fn c_prod(x: f64[n, m], w: f64[n, m]) -> f64 {
    return sum(cumprod(x, 1) * w)
}
fn c_sort(x: f64[n, m], w: f64[n, m]) -> f64 {
    return sum(sort(x, 0) * w) + sum(sort(x) * sort(x))
}
fn c_top(x: f64[n, m], w: f64[n, 2]) -> f64 {
    v, i = top_k(x, 2)
    return sum(v * w)
}
fn c_loop(x: f64[n, m], w: f64[n, m]) -> f64 {
    y = x
    for i in range(2) {
        y = sort(cumprod(y, 0) * 0.5, 1)
        v, j = top_k(y, 2)
        y = y + sum(v) * w
    }
    return sum(y * y)
}
fn g_prod(x: f64[n], w: f64[n]) -> f64[n] {
    return grad(sum(cumprod(x) * w), x)
}
fn g_f32(x: f32[n]) -> f32[n] {
    return grad(sum(cumsum(x) * sort(x)), x)
}
"""


def test_gradients_by_finite_differences(target):
    # a generator of its own: these values stay away from the kinks of sort and top_k (the shared
    # one gives each test values that depend on which tests ran before it in the process)
    local = np.random.default_rng(2024)
    x = local.normal(size=(4, 5))
    w = local.normal(size=(4, 5))
    for name, args in (("c_sum", (x, w)), ("c_prod", (x, w)), ("c_sort", (x, w)),
                       ("c_top", (x, w[:, :2])), ("c_loop", (x, w))):
        errors = tdsl.check_grad(fn(GRADS, name, target), *args)
        assert errors["x"] < 1e-6, (name, errors)


def test_cumprod_gradient_with_zeros(target):
    x = np.array([2.0, 0.0, 3.0, 0.0, -1.5, 4.0])
    w = rng.normal(size=6)
    expected = np.array([sum(w[j] * np.prod(np.delete(x[:j + 1], i)) for j in range(i, 6)) for i in range(6)])
    np.testing.assert_allclose(run(GRADS, "g_prod", target, x, w), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run(GRADS, "g_prod", target, x[:1], w[:1]), [w[0]])
    assert run(GRADS, "g_prod", target, x[:0], w[:0]).shape == (0,)


def test_gradient_f32_and_empty(target):
    x = np.array([3.0, -1.0, 2.0], np.float32)
    order = np.argsort(x, kind="stable")
    s, c = np.sort(x), np.cumsum(x)
    back = np.zeros(3, np.float32)
    back[order] = c
    expected = np.cumsum(s[::-1])[::-1] + back
    got = run(GRADS, "g_f32", target, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_top_k_through_the_python_builder_gives_two_vars():
    x = tdsl.tensor("x", "f32", ("n",))
    values, indices = tdsl.top_k(x, 2)
    f = tdsl.function([x], [values, indices], target="numpy")
    got_values, got_indices = f(np.array([3.0, 1.0, 5.0, 5.0], np.float32))
    np.testing.assert_array_equal(got_values, [5.0, 5.0])
    np.testing.assert_array_equal(got_indices, [2, 3])


def test_to_tdsl_of_section12_gradients_parses_back():
    """to_tdsl prints top_k as one statement and the adjoint nodes of sort, top_k, cumprod and
    take_along_axis through grad, so the text parses back to the same values."""
    src = """
fn g(x: f64[n, 3], j: i64[n, 2]) -> f64[n, 3] {
    v, i = top_k(x * x, 2)
    return grad(sum(sort(x) * x) + sum(v) + sum(cumprod(x, 1) * x) + sum(take_along_axis(x, j, 1) * x[:, :2]), x)
}
fn h(x: f64[n]) -> f64[n] { return cumsum(x, 0) + f64(argsort(x, 0)) }
"""
    m = tdsl.compile(src, target="numpy")
    x = np.random.default_rng(0).standard_normal((4, 3))
    j = np.array([[0, 2], [1, 1], [2, 0], [1, 2]])
    again = tdsl.compile(m.g.to_tdsl() + "\n" + m.h.to_tdsl(), target="numpy")
    np.testing.assert_allclose(again.g(x, j), m.g(x, j))
    np.testing.assert_allclose(again.h(x[:, 0]), m.h(x[:, 0]))


def test_second_derivative_of_cumprod_with_zeros(target):
    """cumprod's adjoint node has a gradient (a cumprod of x with x_i replaced by 1), also when the
    adjoint fed in is x itself."""
    src = """
fn g1(x: f64[n, 4]) -> f64[n, 4] { return grad(sum(cumprod(x, 1) * x), x) }
fn h(x: f64[n, 4]) -> f64[n, 4] {
    g = grad(sum(cumprod(x, 1) * x), x)
    return grad(sum(g * g * x), x)
}
"""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    x[1, 2] = x[2, 0] = x[2, 3] = 0.0
    m = tdsl.compile(src, target="numpy")
    expected = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        a, b = x.copy(), x.copy()
        a[idx] += 1e-5
        b[idx] -= 1e-5
        expected[idx] = ((m.g1(a) ** 2 * a).sum() - (m.g1(b) ** 2 * b).sum()) / 2e-5
    np.testing.assert_allclose(run(src, "h", target, x), expected, rtol=1e-5, atol=1e-6)
