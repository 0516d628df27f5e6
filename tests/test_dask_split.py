"""Dask calls beyond one chunked variable (docs/dask.md): blocks of two chunked size variables
(lang/chunked_blocks.py), loops over chunked values, OpenCL, and corner cases of the chunks;
each result compared with the unchunked call and with NumPy, on the threaded scheduler."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tdsl
from tests.conftest import require_module, require_target

dask = require_module("dask")
da = require_module("dask.array")

from tdsl import chunked_blocks
from tdsl.errors import TdslArgumentError, TdslWarning

SOURCE = """\
fn blockwise(x: f32[n, d], b: f32[d]) -> f32[n, d] {
    return exp(x) * 2.0 + b
}

fn reductions(x: f64[n, d]) -> (f64[d], f64[n], f64, f64[d], i64[n], f64[n], f64[n], i64[d]) {
    return sum(x, axis=0), max(x, axis=1), sum(x), var(x, axis=0), argmax(x, axis=1), mean(x, axis=1), min(x, axis=1), argmin(x, axis=0)
}

fn predict(x: f32[n, d], w: f32[d], v: f32[d, k]) -> (f32[n], f32[n, k]) {
    return x @ w, x @ v
}

fn rows(x: f64[n, d]) -> (f64[n, d], f64[n]) {
    return softmax(x, axis=1), logsumexp(x, axis=1)
}

fn standardize(x: f64[n, d]) -> f64[n, d] {
    mu = mean(x, axis=0)
    sd = std(x, axis=0)
    return (x - mu) / sd
}

fn pair(x: f64[n], y: f64[m]) -> (f64, f64[n], f64[m]) {
    return sum(x) * sum(y), x * sum(y), y - max(x)
}

fn columns(w: f64[d], x: f64[n, d, k]) -> (f64[n, k], f64[n, d, k], f64[d], f64[n, d]) {
    return sum(x * reshape(w, (1, d, 1)), axis=1), x * 2.0, sum(x, axis=(0, 2)) + w, max(x, axis=2)
}

fn running(x: f64[n, d]) -> f64[n, d] {
    return cumsum(x, axis=1)
}

fn halve(x: f64[n, d], k: i64) -> f64[n, d] {
    for t in range(k) {
        x = x * 0.5 + 1.0
    }
    return x
}

fn descent(x: f64[n, d], y: f64[n], w0: f64[d], steps: i64) -> f64[d] {
    w = w0
    for t in range(steps) {
        r = x @ w - y
        w = w - 0.1 * (r @ x) / n
    }
    return w
}

fn settle(x: f64[n, d], w: f64[d], k: i64) -> (f64[n, d], f64) {
    s = sum(x)
    h = x
    for t in range(k) {
        h = tanh(h * w + s)
    }
    i = 0
    while i < k {
        h = h + 1.0
        i = i + 1
    }
    if k > 2 {
        h = h * 2.0
    }
    return h, sum(h)
}

fn unrolled(x: f64[n, d], w: f64[d]) -> f64 {
    h = x
    for t in range(3) {
        h = tanh(h * w + 0.1)
    }
    return sum(h * h)
}

fn through(x: f64[n, d], w: f64[d]) -> f64[n, d] {
    return grad(unrolled(x, w), x)
}

fn weights(x: f64[n, d], w: f64[d]) -> f64[d] {
    return grad(unrolled(x, w), w)
}

fn toggle(x: f64[n]) -> f64[n] {
    if sum(x) > 0.0 {
        x = x * 2.0
    } else {
        x = x - 1.0
    }
    return x
}

fn doubled(x: f64[n], k: i64) -> (f64[n], i64) {
    i = 0
    while i < k {
        x = x * 2.0
        i = i + 1
    }
    return x, i
}

fn ramp(x: f64[n], k: i64) -> f64[n] {
    for t in range(k) {
        x = x + f64(arange(n))
    }
    return x
}

fn extremes(x: f64[n]) -> (f64, f64, i64, i64, f64, f64) {
    return max(x), min(x), argmax(x), argmin(x), mean(x), sum(x)
}

fn counts(k: i64[n], j: i32[n, 2]) -> (i64, i64, i64[2]) {
    return sum(k), prod(k), sum(j, axis=0)
}

fn means(x: f64[n, d]) -> (f64[n], f64[d]) {
    return mean(x, axis=1), mean(x, axis=0)
}

fn record(x: f64[n, d], s: f64) -> f64[4, n, d] {
    hs = zeros((4, n, d))
    h = x
    for t in range(4) {
        if s > 0.0 {
            h[:, 1] = s
        } else {
            h = -h
        }
        h = h * 0.5
        hs[t] = h
    }
    return hs
}

fn poke(x: f64[n]) -> f64[n] {
    x[2] = 0.0
    return x
}

fn lookup(x: f64[n, d], t: f64[k], i: i64[n, d]) -> f64[n, d] {
    return x * 2.0 + take(t, i)
}
"""

LINES = SOURCE.splitlines()
DESCENT_LOOP = LINES.index("fn descent(x: f64[n, d], y: f64[n], w0: f64[d], steps: i64) -> f64[d] {") + 3
RAMP_LOOP = LINES.index("fn ramp(x: f64[n], k: i64) -> f64[n] {") + 2
HALVE_LOOP = LINES.index("fn halve(x: f64[n, d], k: i64) -> f64[n, d] {") + 2
MU_LINE = LINES.index("    mu = mean(x, axis=0)") + 1


@pytest.fixture(scope="module")
def m():
    return tdsl.compile(SOURCE, target="numpy")


def lazy(x, chunks):
    return da.from_array(x, chunks=chunks)


def computed(got):
    """The Dask results as NumPy, on the threaded scheduler (a tuple)."""
    got = got if isinstance(got, tuple) else (got,)
    assert all(isinstance(g, da.Array) for g in got)
    return dask.compute(*got, scheduler="threads")


def check(got, *wants, exact=False, rtol=1e-12):
    """Each result equals each of `wants` (the unchunked call, NumPy): dtype, shape and values."""
    values = computed(got)
    for want in wants:
        want = want if isinstance(want, tuple) else (want,)
        assert len(values) == len(want)
        for g, w in zip(values, want):
            w = np.asarray(w)
            assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
            if exact or g.dtype.kind in "biu":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, equal_nan=True)
    return values


def blocks(f, *args):
    """The call of `f` with arguments chunked along two size variables (in blocks of them), with no
    warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return f(*args)


def unchunked(f, *args):
    return f(*[a.compute() if isinstance(a, da.Array) else a for a in args])


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- two chunked size variables: blocks of n x d -----------------------------------------------

def test_blocks_elementwise(m):
    x, b = data((10, 7)).astype(np.float32), data(7, 1).astype(np.float32)
    got = blocks(m.blockwise, lazy(x, (4, 3)), lazy(b, 2))   # b's chunks follow x's
    assert got.chunks == ((4, 4, 2), (3, 3, 1))
    check(got, m.blockwise(x, b), exact=True)
    check(got, np.exp(x) * np.float32(2) + b, rtol=1e-6)


@pytest.mark.parametrize("chunks", [(4, 3), (1, 1), ((3, 0, 8), (2, 0, 5))])
def test_blocks_reductions_over_one_or_both_axes(m, chunks):
    x = data((11, 7), 2)
    x[9, 4] = x[2, 4] = x.max() + 1    # a tie across chunks of n: the first index wins
    x[5, 6] = x[5, 0] = x.min() - 1    # a tie across chunks of d
    got = blocks(m.reductions, lazy(x, chunks))
    assert got[0].chunks[0] == tuple(c for c in got[0].chunks[0] if c) and len(got[1].chunks[0]) > 1
    numpy = (x.sum(0), x.max(1), x.sum(), x.var(0), x.argmax(1), x.mean(1), x.min(1), x.argmin(0))
    check(got, m.reductions(x), numpy)


def test_blocks_matmul_contracts_d_and_keeps_rows_of_n(m):
    x, w, v = (data(s, i).astype(np.float32) for i, s in enumerate([(12, 9), 9, (9, 2)]))
    got = blocks(m.predict, lazy(x, (5, 4)), w, lazy(v, (3, 2)))
    assert got[0].chunks == ((5, 5, 2),)
    check(got, m.predict(x, w, v), (x @ w, x @ v), rtol=1e-5)


def test_blocks_softmax_over_chunked_d_splits_as_logsumexp(m):
    x = data((9, 8), 3)
    x[:, 5] += 30.0   # the max of each row in one chunk of d
    got = blocks(m.rows, lazy(x, (4, 3)))
    assert got[0].chunks == ((4, 4, 1), (3, 3, 2))
    e = np.exp(x - x.max(1, keepdims=True))
    check(got, m.rows(x), (e / e.sum(1, keepdims=True), np.log(e.sum(1)) + x.max(1)))
    assert "(chunk0: 2 passes over d)" in chunked_blocks.explain_blocks(m.rows.graph, "n", "d")


def test_blocks_standardize_two_passes(m):
    x = data((10, 6), 4) + 100.0
    got = blocks(m.standardize, lazy(x, (3, 4)))
    check(got, m.standardize(x), (x - x.mean(0)) / x.std(0), rtol=1e-9)


def test_blocks_of_two_inputs_with_their_own_variables(m):
    x, y = data(10, 5), data(7, 6)
    got = blocks(m.pair, lazy(x, 3), lazy(y, 2))
    assert got[1].chunks == ((3, 3, 3, 1),) and got[2].chunks == ((2, 2, 2, 1),)
    check(got, m.pair(x, y), (x.sum() * y.sum(), x * y.sum(), y - x.max()))


def test_blocks_along_a_later_axis_and_a_third_variable(m):
    w, x = data(5, 18), data((6, 5, 4), 19)
    got = blocks(m.columns, w, lazy(x, (2, 2, 2)))   # d first in the signature: the split along d, then n
    assert got[1].chunks[:2] == ((2, 2, 2), (2, 2, 1)) and got[2].chunks == ((2, 2, 1),)
    numpy = ((x * w[None, :, None]).sum(1), x * 2.0, x.sum((0, 2)) + w, x.max(2))
    check(got, m.columns(w, x), numpy)
    assert "d and n chunked: blocks of d × n" in chunked_blocks.explain_blocks(m.columns.graph, "n", "d")


def test_blocks_fall_back_to_one_variable(m):
    x = data((10, 6), 7)
    assert isinstance(chunked_blocks.blocks_plan(m.running.graph, "n", "d"), chunked_blocks.Obstacle)
    got = blocks(m.running, lazy(x, (4, 2)))   # cumsum along d: split along n, d merged
    assert got.chunks == ((4, 4, 2), (6,))
    check(got, m.running(x), np.cumsum(x, axis=1))
    text = chunked_blocks.explain_blocks(m.running.graph, "d", "n")
    assert "n and d chunked: no blocks of n × d: <string>:" in text and "cumsum along d" in text


def test_blocks_explain_lines(m):
    assert chunked_blocks.explain_blocks(m.standardize.graph, "n", "d").splitlines() == [
        "standardize(x: f64[n, d]) -> f64[n, d]",
        "  n and d chunked: blocks of n × d; 2 passes over the chunks of n, each generated function split along d",
        "  (chunk0: 1 pass over d; combine0: 1 pass over d; finalize0: 1 pass over d; chunk1: 1 pass over d)",
        "  param  x: f64[n, d]           chunks along n (axis 0) | chunks along d (axis 1)",
        f"  value  mu: f64[d]  (line {MU_LINE})  global, from sum over n; after pass 0 | blockwise along d (axis 0), pass 0",
        f"  value  sd: f64[d]  (line {MU_LINE + 1})  global, from moments (var) over n; after pass 0 | "
        "blockwise along d (axis 0), pass 0",
        "  result 0: f64[n, d]           blockwise along n (axis 0), pass 1 | blockwise along d (axis 1), pass 0",
    ]


def test_explain_of_two_chunked_variables_adds_the_blocks(m, tmp_path, capsys):
    blocks_section = chunked_blocks.explain_blocks(m.standardize.graph, "n", "d")
    text = m.standardize.explain(chunks={"n": 100_000, "d": 100})
    assert text == "\n\n".join([m.standardize.explain(chunks="n"), m.standardize.explain(chunks="d"), blocks_section])
    assert "n and d chunked: blocks of n × d; 2 passes over the chunks of n" in text
    assert m.standardize.explain(chunks="n").count("blocks of") == 0
    path = tmp_path / "split.tdsl"
    path.write_text(SOURCE)
    from tdsl import cli
    assert cli.main(["graph", str(path), "--fn", "standardize", "--chunks", "n,d"]) == 0
    assert capsys.readouterr().out == text + "\n"
    assert cli.main(["graph", str(path), "--chunks", "n,d"]) == 0   # one variable: no blocks
    printed = capsys.readouterr().out
    assert "n and d chunked: no blocks of n × d" in printed and "(blocks" not in printed
    assert "fn extremes" not in printed and "\nextremes(x: f64[n])" in printed


def test_an_error_in_a_block_names_the_users_line_and_the_block(m):
    i = np.zeros((6, 4), np.int64)
    i[5, 3] = 9   # chunk 2 of n, chunk 1 of d
    got = blocks(m.lookup, lazy(np.ones((6, 4)), (2, 2)), np.ones(3), lazy(i, (2, 2)))
    with pytest.raises(tdsl.TdslRuntimeError) as err:
        computed(got)
    line = LINES.index("    return x * 2.0 + take(t, i)") + 1
    assert (err.value.loc.file, err.value.loc.line, err.value.loc.col) == ("<string>", line, 22)
    assert str(err.value).splitlines()[0] == (
        f"<string>:{line}:22: error: index 9 is out of range for axis 0 of length 3 (t at <string>:{line}:22), "
        "in block (0, 1) of x (positions 2:4 along d) of the Dask call of chunk0(), "
        "for chunk 2 (positions 4:6 along n) of lookup()")


# -- loops over chunked values -------------------------------------------------------------------

def test_blockwise_loop_stays_blockwise(m):
    x = data((11, 3), 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = m.halve(lazy(x, (4, 3)), 5)
    assert got.chunks == ((4, 4, 3), (3,))
    want = x.copy()
    for _ in range(5):
        want = want * 0.5 + 1.0
    check(got, m.halve(x, 5), want, exact=True)
    assert m.halve.explain(chunks="n").splitlines()[1:] == [
        "  n chunked: 1 pass over the chunks",
        "  param  x: f64[n, d]             chunks along n (axis 0)",
        "  param  k: i64                   whole, on every chunk",
        f"  value  x: f64[n, d]  (line {HALVE_LOOP})  blockwise along n (axis 0), pass 0",
        "  result 0: f64[n, d]             blockwise along n (axis 0), pass 0",
    ]
    check(blocks(m.halve, lazy(x, (4, 1)), 5), want, exact=True)   # and in blocks of n x d


def test_loop_reducing_every_step_rechunks_naming_the_loop(m):
    x, y, w0 = data((12, 3), 9), data(12, 10), np.zeros(3)
    with pytest.warns(TdslWarning, match=rf"descent\(\) cannot run chunk by chunk along n: <string>:{DESCENT_LOOP}: "
                                         r"a for whose body reduces over n .*rechunking n to one chunk"):
        got = m.descent(lazy(x, (5, 3)), lazy(y, 5), w0, 4)
    w = w0
    for _ in range(4):
        w = w - 0.1 * ((x @ w - y) @ x) / 12
    check(got, m.descent(x, y, w0, 4), w)
    with dask.config.set({"tdsl.strict": True}), pytest.raises(TdslArgumentError) as err:
        m.descent(lazy(x, (5, 3)), lazy(y, 5), w0, 4)
    assert (err.value.loc.line, err.value.loc.col) == (DESCENT_LOOP, 5) and "reduces over n" in str(err.value)


def test_loops_and_branches_reading_a_global(m):
    x, w = data((10, 4), 11), data(4, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = m.settle(lazy(x, (3, 4)), w, 3)
    assert got[0].chunks[0] == (3, 3, 3, 1) and "2 passes" in m.settle.explain(chunks="n")
    h = x
    for _ in range(3):
        h = np.tanh(h * w + x.sum())
    h = (h + 3.0) * 2.0
    check(got, m.settle(x, w, 3), (h, h.sum()))


def test_branch_on_a_global_takes_a_second_pass(m):
    for shift in (1.0, -1.0):
        x = data(10, 23) + shift
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = m.toggle(lazy(x, 3))
        assert got.chunks == ((3, 3, 3, 1),) and "2 passes" in m.toggle.explain(chunks="n")
        check(got, m.toggle(x), x * 2.0 if x.sum() > 0 else x - 1.0, exact=True)


def test_gradient_through_a_loop(m):
    x, w = data((10, 3), 20), data(3, 21)
    hs = [x]
    for _ in range(3):
        hs.append(np.tanh(hs[-1] * w + 0.1))
    g, gw = 2 * hs[-1], np.zeros(3)
    for before, h in zip(reversed(hs[:-1]), reversed(hs[1:])):
        g = g * (1 - h * h)
        gw += (g * before).sum(0)
        g = g * w
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # d/dx: the backward loop is blockwise along n too
        got = m.through(lazy(x, (4, 3)), w)
    assert got.chunks == ((4, 4, 2), (3,))
    check(got, m.through(x, w), exact=True)
    check(got, g)
    line = LINES.index("fn unrolled(x: f64[n, d], w: f64[d]) -> f64 {") + 3
    with pytest.warns(TdslWarning, match=rf"<string>:{line}: a for whose body reduces over n"):
        got = m.weights(lazy(x, (4, 3)), w)   # d/dw sums over n in each backward step
    check(got, m.weights(x, w), gw)


def test_loop_with_a_whole_result_rechunks(m):
    x = data(7, 22)
    line = LINES.index("fn doubled(x: f64[n], k: i64) -> (f64[n], i64) {") + 3
    with pytest.warns(TdslWarning, match=rf"<string>:{line}: a while whose result 1 is not blockwise along n"):
        got = m.doubled(lazy(x, 3), 3)   # its count is whole, but made in a loop over chunked values
    check(got, m.doubled(x, 3), (x * 8.0, 3), exact=True)


def test_loop_reading_positions_rechunks(m):
    x = data(9, 13)
    with pytest.warns(TdslWarning, match=rf"<string>:{RAMP_LOOP}: a for whose body reads the value or positions of n"):
        got = m.ramp(lazy(x, 4), 2)
    check(got, m.ramp(x, 2), exact=True)
    check(got, x + 2.0 * np.arange(9))


def test_per_step_outputs_and_branches_stay_blockwise(m):
    x = data((10, 3), 16)
    for s in (2.0, -1.0):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = m.record(lazy(x, (4, 3)), s)
        assert got.chunks == ((4,), (4, 4, 2), (3,))
        h, hs = x.copy(), []
        for _ in range(4):
            if s > 0:
                h[:, 1] = s
            else:
                h = -h
            h = h * 0.5
            hs.append(h.copy())   # the next `h[:, 1] = s` writes into h
        check(got, m.record(x, s), np.stack(hs), exact=True)


def test_update_of_part_of_the_chunked_axis_rechunks(m):
    x = data(9, 17)
    line = LINES.index("    x[2] = 0.0") + 1
    with pytest.warns(TdslWarning, match=rf"<string>:{line}: an indexed update of part of n"):
        got = m.poke(lazy(x, 4))
    check(got, m.poke(x), np.where(np.arange(9) == 2, 0.0, x), exact=True)


# -- corner cases of the chunks ------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [1, 7, ((0, 3, 0, 4),), ((2, 5, 0),)])
def test_chunks_of_one_whole_and_empty(m, chunks):
    x = np.array([1.0, 5.0, 2.0, 5.0, 3.0, -1.0, -1.0])   # ties: the first index wins
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = m.extremes(lazy(x, chunks))
    numpy = (x.max(), x.min(), x.argmax(), x.argmin(), x.mean(), x.sum())
    check(got, m.extremes(x), numpy)
    assert computed(got)[2:4] == (1, 5)


def test_nan_in_one_chunk_propagates_and_argmax_finds_the_first(m):
    x = np.array([1.0, 9.0, 2.0, np.nan, 3.0, np.nan, 9.0])
    got = check(m.extremes(lazy(x, 2)), m.extremes(x))
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == got[3] == np.argmax(x) == np.argmin(x) == 3
    x2 = data((6, 5), 14)
    x2[4, 3] = np.nan
    numpy = (x2.sum(0), x2.max(1), x2.sum(), x2.var(0), x2.argmax(1), x2.mean(1), x2.min(1), x2.argmin(0))
    check(blocks(m.reductions, lazy(x2, (2, 2))), m.reductions(x2), numpy)


def test_integer_sums_are_exact(m):
    k = np.array([2**53 + 1, 1, 2**53, 3, -7, 5], np.int64)   # a float sum would round
    j = np.array([[2**30, -3], [2**30, 4], [5, 2**30], [-1, 2**30], [7, 0], [1, 1]], np.int32)   # i32 sums are i64, exact
    with warnings.catch_warnings(), np.errstate(over="ignore"):
        warnings.simplefilter("error")
        got = check(m.counts(lazy(k, 2), lazy(j, (2, 2))), m.counts(k, j), (k.sum(), k.prod(), j.sum(0)))
    assert got[0] == 2**54 + 3


def test_mean_of_an_empty_axis(m):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's "Mean of empty slice"
        x = np.zeros((6, 0))
        check(m.means(lazy(x, (2, 1))), m.means(x), (x.mean(1), x.mean(0)))   # NaN rows, no columns
        y = np.zeros((0, 4))
        check(blocks(m.means, lazy(y, ((0, 0), (2, 2)))), m.means(y), (y.mean(1), y.mean(0)))   # NaN columns


def test_an_empty_chunked_axis_reads_no_row(m):
    """n = 0 in two empty chunks: the finalize's row of x (it binds d) is empty too."""
    f = tdsl.compile("fn f(x: f64[n, d]) -> f64[d] { return mean(x, axis=0) }", target="numpy").f
    x = np.zeros((0, 4))
    with warnings.catch_warnings(record=True) as whole:
        warnings.simplefilter("always")
        want = f(x)
    with warnings.catch_warnings(record=True) as chunked:
        warnings.simplefilter("always")
        got = computed(f(lazy(x, ((0, 0), (4,)))))[0]
    assert got.dtype == want.dtype and got.shape == want.shape == (4,) and np.isnan(got).all()
    assert [str(w.message) for w in chunked] == [str(w.message) for w in whole]   # NaN, as the unchunked call warns


# -- compiled targets ------------------------------------------------------------------------------

STEP = """\
fn step(x: f32[n, d], y: f32[n], w: f32[d], b: f32, lr: f32) -> (f32[n, d], f32[d], i64[d], f32[d], f32) {
    p = sigmoid(x @ w + b)
    loss = -mean(y * log(p + 1e-7) + (1 - y) * log(1 - p + 1e-7))
    gw, gb = grad(loss, w, b)
    return exp(x) * 2.0 + w, max(x, axis=0), argmax(x, axis=0), w - lr * gw, b - lr * gb
}
"""


def step_numpy(x, y, w, b, lr):
    """The gradient step in NumPy (float64), for the f32 results."""
    x, y, w = (a.astype(np.float64) for a in (x, y, w))
    p = 1 / (1 + np.exp(-(x @ w + b)))
    r = ((1 - y) / (1 - p + 1e-7) - y / (p + 1e-7)) * p * (1 - p) / len(y)
    return np.exp(x) * 2 + w, x.max(0), x.argmax(0), w - lr * (r @ x), b - lr * r.sum()


@pytest.mark.parametrize("target", ["c", "opencl"])
def test_compiled_targets_elementwise_reduction_gradient(target):
    require_target(target)
    f = tdsl.compile(STEP, target=target).step
    rng = np.random.default_rng(15)
    x, y = rng.standard_normal((13, 6)).astype(np.float32), (rng.random(13) > 0.5).astype(np.float32)
    w, b, lr = rng.standard_normal(6).astype(np.float32), np.float32(0.1), np.float32(0.5)
    want = f(x, y, w, b, lr)
    numpy = tuple(np.asarray(v).astype(np.asarray(u).dtype) for v, u in zip(step_numpy(x, y, w, b, lr), want))
    check(f(lazy(x, (4, 6)), lazy(y, 4), w, b, lr), want, numpy, rtol=1e-5)             # n chunked
    got = blocks(f, lazy(x, (4, 4)), lazy(y, 4), w, b, lr)                              # n x d blocks
    assert got[0].chunks == ((4, 4, 4, 1), (4, 2))
    check(got, want, numpy, rtol=1e-5)
