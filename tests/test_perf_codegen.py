"""The c target's speed-related code: NumPy's BLAS on tdsl's OpenMP threads (codegen/blas.py,
`share_threads`; the callback in templates/c/prelude.c.j2).

The callback is process-wide, so each case runs in a fresh Python process of its own, which
loads one small module (the same text in every case: one build, then the cache).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import require_target

SCRIPT = textwrap.dedent("""
    import os, sys, threading
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


def test_a_team_cut_short_runs_the_jobs_on_threads_of_their_own():
    """OpenBLAS's level-3 jobs wait for each other: with an OpenMP team of one (OMP_THREAD_LIMIT=1)
    they must still all run at once, or the call never returns."""
    require_target("c")
    run_case("same-bits", OMP_THREAD_LIMIT="1", OPENBLAS_NUM_THREADS="2")


def test_the_pool_can_be_left_to_openblas():
    require_target("c")
    run_case("opt-out", TDSL_SHARE_BLAS_THREADS="0", OPENBLAS_NUM_THREADS="2")
