"""Section 12's scatters and gathers along an axis (scatter_add, take_along_axis), the gradient of
take and of integer-array indexing (a scatter-add), and the section-11 scatter's gradient rule,
on every target, against NumPy itself."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from tdsl.errors import TdslRuntimeError, TdslTypeError

from conftest import REFERENCE, assert_same, compiled, run

SRC = """
fn sa0(x: f64[n, k], i: i64[m], v: f64[m, k]) -> f64[n, k] { return scatter_add(x, i, v) }
fn sa1(x: f64[n, k], i: i64[m], v: f64[n, m]) -> f64[n, k] { return scatter_add(x, i, v, axis=1) }
fn sa_last(x: f64[n, k], i: i64[m], v: f64[n, m]) -> f64[n, k] { return scatter_add(x, i, v, -1) }
fn sa_mid(x: f64[p, n, k], i: i64[m], v: f64[p, m, k]) -> f64[p, n, k] { return scatter_add(x, i, v, axis=1) }
fn sa2d(x: f32[n, k], i: i32[a, b], v: f32[a, b, k]) -> f32[n, k] { return scatter_add(x, i, v) }
fn sa2d_last(x: f32[n, k], i: i32[a, b], v: f32[n, a, b]) -> f32[n, k] { return scatter_add(x, i, v, axis=1) }
fn sa_scalar(x: f32[n, k], i: i64[m]) -> f32[n, k] { return scatter_add(x, i, 1.5) }
fn sa_row(x: f32[n, k], i: i64[m], r: f32[k]) -> f32[n, k] { return scatter_add(x, i, r) }
fn sa_col(x: f32[n, k], i: i64[m], c: f32[m, 1]) -> f32[n, k] { return scatter_add(x, i, c) }
fn sa_int(x: i32[n], i: i64[m], v: i32[m]) -> i32[n] { return scatter_add(x, i, v) }
fn sa_i64(x: i64[n, k], i: i32[m], v: i64[m, k]) -> i64[n, k] { return scatter_add(x, i, v) }
fn sa_cast(x: f64[n], i: i64[m], v: i32[m]) -> f64[n] { return scatter_add(x, i, v) }
fn sa_one(x: f64[n, k], v: f64[k], j: i64) -> f64[n, k] { return scatter_add(x, j, v) + scatter_add(x, -1, v) }
fn ta1(x: f64[n, k], i: i64[n, j]) -> f64[n, j] { return take_along_axis(x, i, 1) }
fn ta0(x: f64[n, k], i: i64[j, k]) -> f64[j, k] { return take_along_axis(x, i, axis=0) }
fn ta_last(x: f64[p, n, k], i: i64[p, n, j]) -> f64[p, n, j] { return take_along_axis(x, i, -1) }
fn ta_bidx(x: f64[n, k], i: i64[1, j]) -> f64[n, j] { return take_along_axis(x, i, 1) }
fn ta_bx(x: f64[1, k], i: i64[n, j]) -> f64[n, j] { return take_along_axis(x, i, 1) }
fn ta_int(x: i32[n, k], i: i32[n, j]) -> i32[n, j] { return take_along_axis(x, i, 1) }
fn ta_bool(x: bool[n, k], i: i64[n, j]) -> bool[n, j] { return take_along_axis(x, i, 1) }
fn ta_sum(x: f64[n, k], i: i64[n, j]) -> f64[n] { return sum(take_along_axis(x, i, 1) * 2.0, axis=1) }
fn ta_argsort_like(x: f64[n, k]) -> f64[n, 1] { return take_along_axis(x, reshape(argmax(x, axis=1), (n, 1)), 1) }
fn in_loop(x: f64[n], i: i64[t, m], v: f64[t, m]) -> f64[n] {
    for s in range(t) {
        x = scatter_add(x, i[s], v[s])
    }
    return x
}
fn set_then_add(x: f64[n], i: i64[m], v: f64[m]) -> f64[n] {
    x[i] = v
    return scatter_add(x, i, v)
}
"""

RNG = np.random.default_rng(12)


def add_at(x, idx, v, axis=0):
    out = np.array(x, copy=True)
    np.add.at(out, (slice(None),) * axis + (np.asarray(idx),), v)
    return out


def normal(*shape, dtype=np.float64):
    return RNG.normal(size=shape).astype(dtype)


REPEATED = np.array([0, 3, -1, 0, 3, 3, -5])   # on an axis of length 5: 0, 3, 4, 0, 3, 3, 0


def test_scatter_add_accumulates_repeated_and_negative_indices(target):
    x = normal(5, 3)
    v = normal(7, 3)
    assert_same(run(SRC, "sa0", target, x, REPEATED, v), add_at(x, REPEATED, v))
    v1 = normal(3, 7)
    x1 = normal(3, 5)
    assert_same(run(SRC, "sa1", target, x1, REPEATED, v1), add_at(x1, REPEATED, v1, 1))
    assert_same(run(SRC, "sa_last", target, x1, REPEATED, v1), add_at(x1, REPEATED, v1, 1))
    x3, v3 = normal(2, 5, 4), normal(2, 7, 4)
    assert_same(run(SRC, "sa_mid", target, x3, REPEATED, v3), add_at(x3, REPEATED, v3, 1))


def test_scatter_add_of_2d_indices(target):
    x, i = normal(5, 3, dtype=np.float32), np.array([[0, 1, 1], [-1, 0, 4]], dtype=np.int32)
    v = normal(2, 3, 3, dtype=np.float32)
    assert_same(run(SRC, "sa2d", target, x, i, v), add_at(x, i, v))
    x1, v1 = normal(3, 5, dtype=np.float32), normal(3, 2, 3, dtype=np.float32)
    assert_same(run(SRC, "sa2d_last", target, x1, i, v1), add_at(x1, i, v1, 1))


def test_scatter_add_broadcasts_its_values(target):
    x = normal(5, 3, dtype=np.float32)
    assert_same(run(SRC, "sa_scalar", target, x, REPEATED), add_at(x, REPEATED, np.float32(1.5)))
    r = normal(3, dtype=np.float32)
    assert_same(run(SRC, "sa_row", target, x, REPEATED, r), add_at(x, REPEATED, r))
    c = normal(7, 1, dtype=np.float32)
    assert_same(run(SRC, "sa_col", target, x, REPEATED, c), add_at(x, REPEATED, c))


def test_scatter_add_of_integers_wraps_and_casts_safely(target):
    x = np.array([2**31 - 1, 0, 5, -7, 1], dtype=np.int32)
    v = np.array([1, 2, 3, 4, 5, 6, 7], dtype=np.int32)
    assert_same(run(SRC, "sa_int", target, x, REPEATED, v), add_at(x, REPEATED, v))
    xi, vi = np.arange(15, dtype=np.int64).reshape(5, 3), np.arange(21, dtype=np.int64).reshape(7, 3)
    assert_same(run(SRC, "sa_i64", target, xi, REPEATED.astype(np.int32), vi), add_at(xi, REPEATED, vi))
    xf = normal(5)
    assert_same(run(SRC, "sa_cast", target, xf, REPEATED, v), add_at(xf, REPEATED, v.astype(np.float64)))


def test_scatter_add_of_one_index(target):
    x, v = normal(4, 3), normal(3)
    assert_same(run(SRC, "sa_one", target, x, v, -2), add_at(x, -2, v) + add_at(x, -1, v))


def test_scatter_add_of_no_indices_and_non_contiguous_inputs(target):
    x = normal(5, 3)
    none = np.zeros(0, dtype=np.int64)
    assert_same(run(SRC, "sa0", target, x, none, normal(0, 3)), x)
    xt = normal(3, 5).T           # non-contiguous
    v = normal(3, 14)[:, ::2].T   # non-contiguous, (7, 3)
    assert_same(run(SRC, "sa0", target, xt, REPEATED[::-1], v), add_at(xt, REPEATED[::-1], v))
    # an empty axis elsewhere: nothing to add
    assert_same(run(SRC, "sa1", target, normal(0, 5), REPEATED, normal(0, 7)), normal(0, 5))


def test_scatter_add_in_a_loop_body(target):
    x, i, v = normal(5), RNG.integers(-5, 5, size=(4, 6)), normal(4, 6)
    expected = x.copy()
    for s in range(4):
        expected = add_at(expected, i[s], v[s])
    assert_same(run(SRC, "in_loop", target, x, i, v), expected)


def test_an_assignment_then_a_scatter_add(target):
    x, v = normal(5), normal(7)
    expected = x.copy()
    expected[REPEATED] = v      # the last write wins
    assert_same(run(SRC, "set_then_add", target, x, REPEATED, v), add_at(expected, REPEATED, v))


def test_take_along_axis(target):
    x = normal(4, 5)
    i = RNG.integers(-5, 5, size=(4, 7))
    assert_same(run(SRC, "ta1", target, x, i), np.take_along_axis(x, i, 1))
    i0 = RNG.integers(-4, 4, size=(6, 5))
    assert_same(run(SRC, "ta0", target, x, i0), np.take_along_axis(x, i0, 0))
    x3, i3 = normal(2, 3, 4), RNG.integers(-4, 4, size=(2, 3, 2))
    assert_same(run(SRC, "ta_last", target, x3, i3), np.take_along_axis(x3, i3, -1))
    ib = RNG.integers(-5, 5, size=(1, 3))
    assert_same(run(SRC, "ta_bidx", target, x, ib), np.take_along_axis(x, ib, 1))
    xb = normal(1, 5)
    assert_same(run(SRC, "ta_bx", target, xb, i), np.take_along_axis(xb, i, 1))
    xi = RNG.integers(-9, 9, size=(4, 5)).astype(np.int32)
    assert_same(run(SRC, "ta_int", target, xi, i.astype(np.int32)), np.take_along_axis(xi, i, 1))
    assert_same(run(SRC, "ta_bool", target, xi > 0, i), np.take_along_axis(xi > 0, i, 1))
    assert_same(run(SRC, "ta_sum", target, x, i), (np.take_along_axis(x, i, 1) * 2.0).sum(axis=1))
    assert_same(run(SRC, "ta_argsort_like", target, x), x.max(axis=1, keepdims=True))
    assert_same(run(SRC, "ta1", target, x, np.zeros((4, 0), dtype=np.int64)), np.zeros((4, 0)))


@pytest.mark.parametrize("fn, args, bad", [
    ("sa0", lambda: (normal(5, 3), np.array([0, 5, 1]), normal(3, 3)), 5),
    ("sa1", lambda: (normal(3, 5), np.array([0, -6]), normal(3, 2)), -6),
    ("sa2d", lambda: (normal(5, 3, dtype=np.float32), np.array([[0], [9]], dtype=np.int32),
                      normal(2, 1, 3, dtype=np.float32)), 9),
    ("ta1", lambda: (normal(4, 5), np.array([[0], [1], [5], [2]])), 5),
    ("ta0", lambda: (normal(4, 5), np.full((1, 5), -5)), -5),
])
def test_an_index_out_of_range_is_a_call_time_error(target, fn, args, bad):
    with pytest.raises(TdslRuntimeError, match=f"index {bad} is out of range for axis [01] of length"):
        getattr(compiled(SRC, target), fn)(*args())


@pytest.mark.parametrize("fn, args", [
    ("sa0", lambda: (normal(0, 3), np.array([2]), normal(1, 3))),
    ("ta1", lambda: (normal(2, 0), np.array([[1], [0]]))),
])
def test_an_index_into_an_empty_axis_is_a_call_time_error(target, fn, args):
    """No position exists (a compiled scatter would write past its result's end): an error as
    NumPy's; the compiled targets know it from the sizes alone, so they name no index."""
    with pytest.raises(TdslRuntimeError, match="is out of range for axis [01] of length 0"):
        getattr(compiled(SRC, target), fn)(*args())


@pytest.mark.parametrize("source, message", [
    ("fn f(x: bool[n], i: i64[m]) { return scatter_add(x, i, true) }", "arithmetic on bool"),
    ("fn f(x: f32[n], i: f32[m]) { return scatter_add(x, i, 1.0) }", "integer indices"),
    ("fn f(x: f32[n], i: i64[m], v: f64[m]) { return scatter_add(x, i, v) }", "without a cast"),
    ("fn f(x: f32[n, k], i: i64[m], v: f32[k, m]) { return scatter_add(x, i, v) }", "do not broadcast"),
    ("fn f(x: f32[n], i: i64[m]) { return scatter_add(x, i, 1.0, axis=1) }", "axis 1 is out of range"),
    ("fn f(x: f32, i: i64[m]) { return scatter_add(x, i, 1.0) }", "not a scalar"),
    ("fn f(x: f32[n, k], i: i64[n]) { return take_along_axis(x, i, 1) }", "x's rank"),
    ("fn f(x: f32[n, k], i: f64[n, k]) { return take_along_axis(x, i, 1) }", "integer indices"),
    ("fn f(x: f32[n, k], i: i64[m, k]) { return take_along_axis(x, i, 1) }", "do not broadcast"),
    ("fn f(x: f32[n, k], i: i64[n, k]) { return take_along_axis(x, i) }", "missing argument 'axis'"),
])
def test_bad_arguments_are_type_errors_at_the_call(source, message):
    with pytest.raises(TdslTypeError, match=message) as err:
        tdsl.compile(source, target=REFERENCE)
    assert err.value.loc is not None and err.value.loc.line == 1


# -- gradients ----------------------------------------------------------------------------------

GRAD_SRC = """
fn g_sa(x: f64[n, k], v: f64[m, k], i: i64[m]) -> f64 { return sum(sin(scatter_add(x, i, v * 1.5))) }
fn g_sa1(x: f64[n, k], v: f64[m], i: i64[m]) -> f64 { return sum(sin(scatter_add(x, i, v, axis=1))) }
fn g_sa2d(x: f64[n, k], v: f64[k], i: i64[a, b]) -> f64 { return sum(sin(scatter_add(x, i, v))) }
fn g_ta(x: f64[n, k], i: i64[n, j]) -> f64 { return sum(sin(take_along_axis(x, i, 1))) }
fn g_ta0(x: f64[n, k], i: i64[1, k]) -> f64 { return sum(sin(take_along_axis(x, i, 0))) }
fn g_take(x: f64[n, k], i: i64[m]) -> f64 { return sum(sin(take(x, i))) }
fn g_take1(x: f64[n, k], i: i64[a, b]) -> f64 { return sum(sin(take(x, i, axis=1))) }
fn g_index(x: f64[n, k], i: i64[m]) -> f64 { return sum(sin(x[i, 1:])) }
fn g_one(x: f64[n, k], v: f64[k], j: i64) -> f64 { return sum(sin(scatter_add(x, j, v * 2.0) * x[j])) }
fn g_set(x: f64[n], v: f64[m], i: i64[m]) -> f64 {
    x[i] = v
    return sum(sin(x) * arange(n))
}
fn g_set_loop(x: f64[n], v: f64[t, m], i: i64[t, m]) -> f64 {
    for s in range(t) {
        x[i[s]] = v[s] * x[i[s]]
    }
    return sum(sin(x))
}
fn g_add_loop(x: f64[n], v: f64[t, m], i: i64[t, m]) -> f64 {
    for s in range(t) {
        x = scatter_add(x, i[s], v[s] * x[0])
    }
    return sum(sin(x))
}
"""


@pytest.mark.parametrize("fn, args", [
    ("g_sa", lambda: (normal(5, 3), normal(7, 3), REPEATED)),
    ("g_sa1", lambda: (normal(3, 5), normal(7), REPEATED)),
    ("g_sa2d", lambda: (normal(5, 3), normal(3), np.array([[0, 0], [-1, 2]]))),
    ("g_ta", lambda: (normal(4, 5), RNG.integers(-5, 5, size=(4, 8)))),
    ("g_ta0", lambda: (normal(4, 5), np.array([[0, -1, 3, 3, 0]]))),
    ("g_take", lambda: (normal(5, 3), REPEATED)),
    ("g_take1", lambda: (normal(2, 5), np.array([[0, -1, 0], [4, 4, 4]]))),
    ("g_index", lambda: (normal(5, 3), REPEATED)),
    ("g_one", lambda: (normal(5, 3), normal(3), np.int64(-2))),
    ("g_set", lambda: (normal(5), normal(7), REPEATED)),
    ("g_set_loop", lambda: (normal(5), normal(3, 4), np.array([[0, 0, 1, -1], [2, 2, 2, 2], [1, 4, 1, 3]]))),
    ("g_add_loop", lambda: (normal(5), normal(3, 4), np.array([[0, 0, 1, -1], [2, 2, 2, 2], [1, 4, 1, 3]]))),
])
def test_gradients_match_finite_differences(target, fn, args):
    errors = tdsl.check_grad(getattr(compiled(GRAD_SRC, target), fn), *args())
    assert max(errors.values()) < 1e-6, errors


WINNER_SRC = """
fn losers(x: f64[n], v: f64[m], i: i64[m]) -> f64[m] {
    x[i] = v
    return grad(sum(x * arange(n)), v)
}
fn embedding(t: f32[n, d], i: i64[m], u: f32[m, d]) -> f32[n, d] { return grad(sum(take(t, i) * u), t) }
fn embedding_index(t: f32[n, d], i: i64[m], u: f32[m, d]) -> f32[n, d] { return grad(sum(t[i] * u), t) }
"""


def test_only_the_winning_write_of_a_scatter_gets_gradient(target):
    """Section 11: through `x[i] = v` with repeated indices, only the last write of a position
    (the one NumPy keeps) gets its adjoint; the others get exactly zero."""
    got = run(WINNER_SRC, "losers", target, normal(5), normal(7), REPEATED)
    # REPEATED on length 5: 0, 3, 4, 0, 3, 3, 0 -> the last writes of 0, 3 and 4 are at 6, 5 and 2
    assert_same(got, np.array([0, 0, 4, 0, 0, 3, 0], dtype=np.float64))


def test_the_embedding_gradient_is_numpys_add_at(target):
    t, u = normal(50, 8, dtype=np.float32), normal(300, 8, dtype=np.float32)
    i = RNG.integers(-50, 50, size=300)
    expected = add_at(np.zeros_like(t), i, u)
    assert_same(run(WINNER_SRC, "embedding", target, t, i, u), expected, rtol=1e-5, atol=1e-5)
    assert_same(run(WINNER_SRC, "embedding_index", target, t, i, u), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", ["embedding", "embedding_index"])
def test_the_embedding_gradients_memory_is_the_tables(fn):
    """No buffer and no loop nest of the lowered gradient (the kernel IR every compiled target
    renders) is len(idx) x len(table): each buffer is the size of the table, of the indices or
    of the upstream adjoint."""
    from tdsl.codegen.lower import lower_module
    from tdsl.dims import Dim, shape_size
    from tdsl.pipeline import compile_module
    graphs = compile_module(REFERENCE, WINNER_SRC, until="check")
    ir = next(f for f in lower_module(graphs, "m").functions if f.name == fn)
    n, d, m = Dim.of("n"), Dim.of("d"), Dim.of("m")
    allowed = {shape_size((n, d)), shape_size((m, d)), m, Dim.of(1)}
    for buf in ir.temps:   # (none today: the zeros are written into the result, the rest fused)
        assert shape_size(buf.shape) in allowed, (buf.name, buf.shape)
    for limit in ir.limits:   # every value of the graph, as the limits check them before a call
        assert not {"n", "m"} <= set(shape_size(limit.shape).variables()), limit.shape
    for k in ir.kernels:
        extents = {str(l.extent) for l in tuple(k.loops) + tuple(getattr(k, "reduce_loops", ()))}
        assert not {"n", "m"} <= extents, (k.origin, extents)


BIG_SRC = """
fn assign(x: f64[n], i: i64[m], v: f64[m]) -> f64[n] {
    x[i] = v
    return x
}
fn add_rows(x: f64[n, k], i: i64[m], v: f64[m, k]) -> f64[n, k] { return scatter_add(x, i, v) }
fn add_cols(x: f64[k, n], i: i64[m], v: f64[k, m]) -> f64[k, n] { return scatter_add(x, i, v, axis=1) }
"""


def test_large_scatters_keep_numpys_order(target):
    """Past the threads' threshold (65,536 points) a scatter still runs its index in order: the
    last write wins, and additions happen in NumPy's order, so even float sums are NumPy's bit
    for bit (the free loops run in parallel, each element written by one thread)."""
    i = RNG.integers(-10, 10, size=200_000)
    v = RNG.normal(size=200_000)
    expected = np.zeros(10)
    expected[i] = v
    assert_same(run(BIG_SRC, "assign", target, np.zeros(10), i, v), expected, rtol=0, atol=0)
    rows, cols = RNG.normal(size=(20_000, 8)), RNG.normal(size=(8, 20_000))
    j = RNG.integers(-10, 10, size=20_000)
    assert_same(run(BIG_SRC, "add_rows", target, np.zeros((10, 8)), j, rows),
                add_at(np.zeros((10, 8)), j, rows), rtol=0, atol=0)
    assert_same(run(BIG_SRC, "add_cols", target, np.zeros((8, 10)), j, cols),
                add_at(np.zeros((8, 10)), j, cols, 1), rtol=0, atol=0)
