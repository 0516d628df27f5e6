"""The c target's speed-related code: NumPy's BLAS on tdsl's threads (codegen/blas.py,
`share_threads`; the callback in templates/c/prelude.c.j2), and fused passes that run their
per-row formulas in SIMD lanes across groups of rows.

The callback is process-wide, so each of its cases runs in a fresh Python process of its own,
which loads one small module (the same text in every case: one build, then the cache). The
grouped passes are one module, compared with the reference at several shapes.
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
from tdsl.pipeline import check_source
from tdsl.rewrite import simplify_graph

SCRIPT = textwrap.dedent("""
    import os, sys, threading, time
    import numpy as np
    import tdsl
    from tdsl.codegen import blas
    m = tdsl.compile("fn mm(a: f64[n, k], b: f64[k, m]) -> f64[n, m] { return a @ b }", target="c")
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((600, 500)), rng.standard_normal((500, 700))
    a32, b32 = a.astype(np.float32), b.astype(np.float32)

    mode = sys.argv[1]
    m.mm(a, b)   # loads the module: the callback is installed
    before = blas.shared_calls()
    got, got32 = a @ b, a32 @ b32
    used = blas.shared_calls() - before
    if mode == "opt-out":
        assert not blas._SHARED and used == 0, used
        sys.exit(0)
    assert blas._SHARED and used >= 2, used
    assert np.array_equal(m.mm(a, b), got)
    if mode == "same-bits":
        blas.unshare()   # back to OpenBLAS's own pool: the same jobs, so the same bits
        assert np.array_equal(a @ b, got) and np.array_equal(a32 @ b32, got32)
    elif mode == "threads":
        results = [None] * 4
        def work(i):
            results[i] = (a[:, :400] * (i + 1)) @ b[:400]
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        for i, r in enumerate(results):
            assert np.allclose(r, (a[:, :400] * (i + 1)) @ b[:400], rtol=1e-12), i
    elif mode == "asleep":   # the workers wait 100 us for the next call, then sleep: woken here
        for _ in range(3):
            time.sleep(0.02)
            assert np.array_equal(a @ b, got)
        assert blas.shared_calls() - before >= 5
    elif mode == "fork":
        pid = os.fork()
        if pid == 0:   # the child's BLAS runs on OpenBLAS's own pool
            ok = not blas._SHARED and np.allclose(a @ b, got, rtol=1e-12)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0, status
    print("ok", used)
""")


def run_case(mode: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, **env))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("mode", ["same-bits", "threads", "fork"])
def test_numpy_blas_runs_on_tdsl_threads(mode):
    """A loaded c module runs NumPy's threaded BLAS calls (the callback counts them), with the bits
    of OpenBLAS's own pool, from several Python threads at once, and not in a forked child."""
    require_target("c")
    run_case(mode, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")


def test_blas_threads_asleep_are_woken():
    require_target("c")
    run_case("asleep", OPENBLAS_NUM_THREADS="2")


def test_the_pool_can_be_left_to_openblas():
    require_target("c")
    run_case("opt-out", TDSL_SHARE_BLAS_THREADS="0", OPENBLAS_NUM_THREADS="2")


# -- fused passes in groups of rows (templates/c/kernels.c.j2 `row_groups`, render.row_groups) ----

GROUPED = LOGISTIC + """
fn rows64(x: f64[n, d], y: f64[n], w: f64[d]) -> (f64[d], f64, f64[n]) {
    z = x @ w
    p = exp(-z * z) / (1.0 + y * y)
    return x.T @ p, sum(p * y), p
}

fn columns(xt: f32[d, n], w: f32[d], b: f32) -> f32[n] {
    return sigmoid(xt.T @ w + b)
}

fn guarded_rows(x: i64[n, d], w: i64[d], k: i64[n]) -> i64[d] {
    return x.T @ ((x @ w) // k)
}
"""

# (n, d): groups with a tail, none at all, one column, rows beyond the group's work (one row a
# group), below and above the threads' threshold
SHAPES = [(1000, 100), (1003, 7), (0, 5), (517, 1), (37, 3000), (20011, 13)]


def test_grouped_passes_vectorize_the_per_row_formula():
    """The logistic step's fused pass runs its per-row formula in SIMD lanes across rows."""
    from tdsl.codegen.render import render_module
    from tdsl.codegen.c_backend import TARGET
    graphs = [simplify_graph(g) for g in check_source(LOGISTIC)]
    text = render_module(TARGET.lower([g for g in graphs if g.name == "train_step"], "m"))[0]
    assert "tdsl_g += tdsl_group" in text and "TDSL_ROW_GROUP" in text


@pytest.mark.parametrize("n,d", SHAPES)
def test_grouped_passes_agree_with_the_reference(n, d):
    require_target("c")
    rng = np.random.default_rng(n * 31 + d)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    w = (rng.standard_normal(d) * 0.1).astype(np.float32)
    run_both(GROUPED, "train_step", "c", x, y, w, np.float32(0.2), np.float32(0.1))
    run_both(GROUPED, "predict", "c", x[::-1], w, np.float32(0.2))   # a non-contiguous x
    run_both(GROUPED, "columns", "c", np.asfortranarray(x).T, w, np.float32(0.2))   # x read down columns
    x64 = x.astype(np.float64)
    run_both(GROUPED, "rows64", "c", x64, y.astype(np.float64) * 3, w.astype(np.float64))
    xi = rng.integers(-50, 50, (n, d))
    run_both(GROUPED, "guarded_rows", "c", xi, rng.integers(-5, 5, d), rng.integers(1, 9, n))

