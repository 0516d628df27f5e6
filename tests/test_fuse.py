"""Fused passes over shared loops (codegen/fuse.py), SIMD reductions and BLAS matmuls of the c target.

Every program runs against the reference at sizes above the parallel threshold, so
the threaded, chunked and vectorized paths are the ones checked.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import compiled, require_target, run_both
from test_c_backend import LOGISTIC
from tdsl.codegen.fuse import fuse_function
from tdsl.codegen.loops import kernel_loads
from tdsl.codegen.lower import lower_module
from tdsl.pipeline import check_source
from tdsl.rewrite import simplify_graph


def fused(source: str, name: str | None = None):
    graphs = [simplify_graph(g) for g in check_source(source)]
    fns = {fn.name: fn for fn in lower_module(graphs, "m").functions}
    return fuse_function(fns[name] if name else next(iter(fns.values())))


def rng():
    return np.random.default_rng(77)


# -- what fuses --------------------------------------------------------------------------------

def test_softmax_rows_are_one_pass_with_locals():
    fn = fused("fn f(x: f32[n, k]) -> f32[n, k] { return softmax(x, axis=1) }")
    (kernel,) = fn.kernels
    assert kernel.kind == "fused" and len(kernel.parts) == 4 and not kernel.sums
    assert len(kernel.locals) == 3 and not fn.temps        # max, its finite part, the sum: per row
    ((at, buf, _),) = kernel.stores                         # exp(x - m), summed, is stored for the division
    assert kernel.parts[at].op == "sum" and buf.role == "output"


def test_logistic_step_reads_x_once():
    fn = fused(LOGISTIC, "train_step")
    passes = [k for k in fn.kernels if k.kind == "fused"]
    assert len(passes) == 1 and len(passes[0].sums) == 2    # X.T @ g and sum(g) accumulate per row
    outside = [load for k in fn.kernels if k.kind != "fused" for load in kernel_loads(k)]
    assert not [load for load in outside if load.buffer.name == "x"]


def test_column_sums_walk_rows():
    (kernel,) = fused("fn f(x: f64[n, k]) -> f64[k] { return sum(x, 0) }").kernels
    assert kernel.kind == "fused" and kernel.sums == (0,)


def test_a_part_reading_another_row_does_not_fuse():
    fn = fused("fn f(x: f64[n, k]) -> f64[n, k] { m = max(x, 1, keepdims=true); return x - m[::-1] }")
    assert all(k.kind != "fused" for k in fn.kernels)


# -- against the reference, large enough for threads ---------------------------------------------

def test_fused_programs_match_the_reference(compiled_target):
    src = """
fn soft(x: f32[n, k]) -> f32[n, k] { return softmax(x, axis=1) }
fn cols(x: f64[n, k], w: f64[k]) { return sum(x * w, 0), mean(x, 0), sum(x, 1), max(x, 1) }
fn norm(x: f32[n, k]) -> f32[n, k] { m = mean(x, 1, keepdims=true); v = var(x, 1, keepdims=true); return (x - m) / sqrt(v + 1e-5) }
fn picks(x: f32[n, k], i: i64[m]) { return sum(take(x, i), 1), argmax(x, 1) }
"""
    x32 = rng().random((3000, 70), dtype=np.float32)
    x64 = rng().standard_normal((2500, 90))
    x32[5, 7] = np.nan
    run_both(src, "soft", compiled_target, x32)
    run_both(src, "cols", compiled_target, x64, rng().standard_normal(90))
    run_both(src, "norm", compiled_target, x32)
    run_both(src, "picks", compiled_target, x32, np.array([0, -1, 2999, 17]))


def test_a_stored_chain_and_its_scalar_sums_in_simd_lanes(compiled_target):
    """A pass that writes z and sums z * z and z runs its points in lanes of 8 (a sum each), then a
    tail: every length around the lanes and the blocks (TDSL_BLOCK = 128) matches the reference."""
    src = """
fn chain(x: f64[n], a: f64) -> (f64[n], f64, f64) {
    z = a * exp(-x) + sin(x)
    return z, sum(z * z), sum(z)
}
fn chain32(x: f32[n]) -> (f32[n], f32) {
    z = exp(-x) * 2.0
    return z, sum(z)
}
"""
    if compiled_target == "c":   # the lanes, not a sum added in memory point by point
        import tdsl
        assert "tdsl_blk1_lane[8]" in tdsl.compile(src, target="c").chain.source
    for n in (0, 1, 7, 8, 9, 127, 128, 129, 135, 1000, 70001):
        x = rng().standard_normal(n)
        x[n // 2:n // 2 + 1] = np.nan
        run_both(src, "chain", compiled_target, x, 0.5)
        run_both(src, "chain32", compiled_target, x.astype(np.float32))


def test_logistic_step_matches_the_reference(compiled_target):
    x = rng().standard_normal((20000, 30)).astype(np.float32)
    y = (rng().random(20000) > 0.5).astype(np.float32)
    w = (rng().standard_normal(30) * 0.1).astype(np.float32)
    run_both(LOGISTIC, "train_step", compiled_target, x, y, w, np.float32(0.1), np.float32(0.5))


def test_an_error_inside_a_fused_pass_is_reported(target):
    import tdsl
    src = "fn f(x: f64[n, k], i: i64[n]) -> f64[n] { return sum(x, 1) + take(sum(x, 1), i) }"
    i = np.zeros(5000, dtype=np.int64)
    i[4321] = 5000
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        compiled(src, target).f(np.ones((5000, 8)), i)


@pytest.mark.slow
def test_sums_do_not_depend_on_the_number_of_threads(tmp_path):
    require_target("c")
    code = textwrap.dedent("""
        import numpy as np, tdsl
        m = tdsl.compile("fn f(x: f32[n, k]) -> f32[k] { return sum(x, 0) }")
        x = np.random.default_rng(1).standard_normal((100000, 7)).astype(np.float32)
        print(m.f(x).tobytes().hex())
        """)
    outputs = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, TDSL_CACHE_DIR=str(tmp_path))
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True, timeout=600).stdout)
    assert len(outputs) == 1


# -- SIMD reductions keep NumPy's NaN rules ------------------------------------------------------

def test_extremes_propagate_nan_from_any_lane(compiled_target):
    src = "fn f(x: f64[n]) { return max(x), min(x) }"
    for where in (0, 1, 6, 99_999):
        x = rng().standard_normal(100_000)
        x[where] = np.nan
        run_both(src, "f", compiled_target, x)
    run_both(src, "f", compiled_target, np.array([-np.inf, -np.inf]))


# -- BLAS ------------------------------------------------------------------------------------------

def test_float_matmuls_equal_numpys():
    require_target("c")
    src = """
fn mm(a: f32[n, k], b: f32[k, m]) -> f32[n, m] { return a @ b }
fn tt(a: f64[k, n], b: f64[m, k]) -> f64[n, m] { return a.T @ b.T }
fn batch(a: f32[s, n, k], b: f32[k, m]) -> f32[s, n, m] { return a @ b }
"""
    m = compiled(src, "c")
    a, b = rng().random((130, 70), dtype=np.float32), rng().random((70, 90), dtype=np.float32)
    assert np.array_equal(m.mm(a, b), a @ b)
    c, d = rng().random((70, 130)), rng().random((90, 70))
    assert np.array_equal(m.tt(c, d), c.T @ d.T)
    e = rng().random((3, 40, 70), dtype=np.float32)
    np.testing.assert_allclose(m.batch(e, b), e @ b, rtol=1e-5)


def test_matmul_without_blas_runs_its_own_loops(tmp_path):
    require_target("c")
    code = textwrap.dedent("""
        import numpy as np, tdsl
        m = tdsl.compile("fn f(a: f32[n, k], b: f32[k, m]) -> f32[n, m] { return a @ b }")
        a = np.random.default_rng(2).random((65, 33), dtype=np.float32)
        np.testing.assert_allclose(m.f(a, a.T), a @ a.T, rtol=1e-5)
        """)
    env = dict(os.environ, TDSL_BLAS="0", TDSL_CACHE_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600)


def test_a_matmul_of_merged_axes_reads_a_contiguous_copy(compiled_target):
    """A reshape that merges transposed axes is no strided matrix: the matmul reads a copy of it,
    so BLAS runs it (it ran its own loops, 20-40x slower, before)."""
    from tdsl.codegen.blas import _plain   # an operand BLAS can read: a plain load ...
    src = "fn f(a: f32[o, k], g: f32[b, k, l]) -> f32[o, b * l] { return a @ reshape(transpose(g, (1, 0, 2)), (k, b * l)) }"
    fn = fused(src)
    matmuls = [k for k in fn.kernels if k.kind == "matmul"]
    assert len(matmuls) == 1 and _plain(matmuls[0].lhs, "f32") and _plain(matmuls[0].rhs, "f32")
    # ... at a strided index (loop variables only, no digits of merged axes)
    assert all(isinstance(atom, str) for atom, _ in matmuls[0].rhs.offset.terms)
    a = rng().random((5, 6), dtype=np.float32)
    g = rng().random((3, 6, 4), dtype=np.float32)
    got = run_both(src, "f", compiled_target, a, g)
    np.testing.assert_allclose(got, a @ np.transpose(g, (1, 0, 2)).reshape(6, 12), rtol=1e-5)


def test_a_matmul_of_a_row_of_a_stack_reads_it_in_place():
    """xs[i] (a slice, then a reshape that only drops the axis of length 1) is a strided matrix
    already: no copy before the matmul (a loop would pay it every iteration)."""
    src = "fn f(xs: f32[t, b, d], w: f32[d, k]) -> f32[b, k] { return xs[1] @ w }"
    fn = fused(src)
    assert [k.kind for k in fn.kernels] == ["matmul"]
