"""The c target: lowering to fused kernels, the generated C, and programs run against the reference.

The programs in PROGRAMS run on every compiled target against the reference (the
`compiled_target` fixture) and are also
the representative set for the sanitizer run and the standalone build
(tests/test_standalone_c.py). To run them under AddressSanitizer and UBSan by hand:

    TDSL_SANITIZE=1 ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    LD_PRELOAD=$(cc -print-file-name=libasan.so) \
    .venv/bin/python -m pytest -q tests/test_c_backend.py -k programs

(the sanitized library needs the ASan runtime loaded first, hence LD_PRELOAD;
`test_programs_under_sanitizers` does exactly this in a subprocess).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, require_asan, require_target, run_both
from tdsl.dims import Dim
from tdsl.pipeline import check_source

LOGISTIC = """\
const EPS = 1e-7

fn predict(x: f32[n, d], w: f32[d], b: f32) -> f32[n] {
    return sigmoid(x @ w + b)
}

fn loss(x: f32[n, d], y: f32[n], w: f32[d], b: f32) -> f32 {
    p = predict(x, w, b)
    return -mean(y * log(p + EPS) + (1 - y) * log(1 - p + EPS))
}

fn train_step(x: f32[n, d], y: f32[n], w: f32[d], b: f32, lr: f32) -> (f32[d], f32) {
    gw, gb = grad(loss(x, y, w, b), w, b)
    return w - lr * gw, b - lr * gb
}
"""

INT_EDGES = [-2**31, -7, -2, -1, 0, 1, 2, 7, 2**31 - 1]


def _rng():
    return np.random.default_rng(20240531)


def _f32(*shape):
    return _rng().standard_normal(shape).astype(np.float32)


def _f64(*shape):
    return _rng().standard_normal(shape)


def _logistic_args():
    rng = _rng()
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (rng.random(40) > 0.5).astype(np.float32)
    return x, y, rng.standard_normal(3).astype(np.float32), np.float32(0.25), np.float32(0.1)


# name: (source, function, arguments)
PROGRAMS = {
    "logistic_train_step": (LOGISTIC, "train_step", _logistic_args),
    "logistic_loss": (LOGISTIC, "loss", lambda: _logistic_args()[:4]),
    "w1_fused": ("fn w1(x: f64[n], a: f64, b: f64, c: f64) -> f64[n] { return a * exp(-b * x) + c * sin(x) }",
                 "w1", lambda: (_f64(1000), 1.5, 0.5, -2.0)),
    "softmax_rows": ("fn f(x: f32[n, k]) -> (f32[n, k], f32[n, k], f32[n]) "
                     "{ return softmax(x), log_softmax(x, 0), logsumexp(x, 1) }", "f", lambda: (_f32(7, 5),)),
    "int_arithmetic": ("fn f(a: i32[n], b: i32[n]) { return a + b, a - b, a * b, a // b, a % b, -a, abs(a) }",
                       "f", lambda: (np.array(INT_EDGES, np.int32), np.array(INT_EDGES[::-1], np.int32))),
    "i64_wraps": ("fn f(a: i64[n], b: i64[n]) { return a * b + a, a // b, a % b, sum(a * b) }", "f",
                  lambda: (np.array([-2**63, 2**62, -5, 0, 9], np.int64), np.array([-1, 4, 2, 0, -4], np.int64))),
    "float_floordiv_mod": ("fn f(a: f64[n], b: f64[n]) { return a // b, a % b }", "f",
                           lambda: (np.array([7.5, -7.5, 1.0, -1.0, 0.0, np.inf, np.nan, 5.0]),
                                    np.array([2.0, 2.0, 0.0, 0.0, 0.0, 2.0, 1.0, -np.inf]))),
    "nan_semantics": ("fn f(x: f64[n], y: f64[n]) { return maximum(x, y), minimum(x, y), max(x), min(y), "
                      "argmax(x), argmin(x), sign(x), relu(x) }", "f",
                      lambda: (np.array([1.0, np.nan, 3.0, -0.5]), np.array([np.nan, 2.0, 1.0, -1.0]))),
    "casts": ("fn f(x: f32[n], i: i64[n]) { return i32(x), i64(x), bool(x), f64(x), i32(i), f32(i), bool(i) }",
              "f", lambda: (np.array([np.nan, np.inf, -np.inf, 3e9, -2.7, 0.0, 0.5], np.float32),
                            np.array([2**40 + 3, -1, 0, 7, -2**63, 5, 2**31], np.int64))),
    "round_half_even": ("fn f(x: f64[n]) -> f64[n] { return round(x) }", "f",
                        lambda: (np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999]),)),
    "layout": ("fn f(x: f32[n, k]) { t = x.T; return t[::-1, 1:] * 2.0, reshape(t, (n * k,)), "
               "concat((x, x[:, ::2]), 1), stack((x, -x), 2), flip(x) + broadcast_to(x[0], (n, k)) }",
               "f", lambda: (_f32(4, 6),)),
    "reshape_split_merge": ("fn f(x: f64[a, b, c]) { return reshape(x, (a * b, c)) + 1.0, "
                            "reshape(transpose(x, (2, 0, 1)), (c, a * b)), reshape(x, (b, a * c)) }",
                            "f", lambda: (_f64(2, 3, 4),)),
    "matmul": ("fn f(a: f64[n, k], b: f64[k, m], v: f64[k], c: f64[s, k, m]) "
               "{ return a @ b, a @ v, v @ b, a @ c, dot(v, v), outer(v, v), a.T.T @ (b * 2.0) }",
               "f", lambda: (_f64(3, 4), _f64(4, 5), _f64(4), _f64(2, 4, 5))),
    "int_matmul": ("fn f(a: i32[n, k], b: i32[k, m]) -> i32[n, m] { return a @ b }", "f",
                   lambda: (np.array([[2**30, 3], [-5, 7]], np.int32), np.array([[4, 1], [2, -9]], np.int32))),
    "reductions": ("fn f(x: f64[a, b, c]) { return sum(x, (0, 2)), prod(x, 1, keepdims=true), mean(x, 0), "
                   "var(x, (1, 2)), max(x, 2), argmin(x, 1, keepdims=true), argmax(x), any(x > 1.0, 0), "
                   "all(x > -3.0) }", "f", lambda: (_f64(3, 4, 5),)),
    "take": ("fn f(x: f32[n, k], i: i64[m], j: i32[p, q]) { return take(x, i), take(x, j, 1), "
             "sum(take(x, i), 1) }", "f",
             lambda: (_f32(5, 4), np.array([0, -1, 3, -5]), np.array([[0, 3], [-4, 2], [1, 1]], np.int32))),
    "creation": ("fn f(x: f32[n], labels: i64[n]) { return zeros(n), ones((2, n), dtype=f32), full(n, 3), "
                 "arange(n) * 2, eye(3), one_hot(labels, 4, dtype=f32), zeros_like(x) + x }", "f",
                 lambda: (_f32(5), np.array([0, 3, 4, -1, 2]))),
    "scalars": ("fn f(x: f64[n], s: f64, k: i32, flag: bool) { return sum(x) / n, s * 2.0, k + 1, not flag, "
                "n * 3 }", "f", lambda: (_f64(6), 1.25, np.int32(7), True)),
    "constants": ("const W = [[1.0, -2.0], [0.5, 4.0]]\nconst K = 3\n"
                  "fn f(x: f64[n, 2]) { return x @ W + K, [true, false] }", "f", lambda: (_f64(3, 2),)),
    "copies": ("fn f(x: f64[n], s: f64) { y = x * 2.0; return x, y, y, s, 1.5 }", "f", lambda: (_f64(3), 2.0)),
    "int_pow": ("fn f(a: i64[n], b: i64[n]) -> i64[n] { return a ** b }", "f",
                lambda: (np.array([2, -3, 0, 5, 7]), np.array([62, 3, 0, 0, 41]))),
    "bool_io": ("fn f(p: bool[n], q: bool[n]) { return p and q, p or not q, where(p, 1.0, 2.0), sum(p) }", "f",
                lambda: (np.array([True, False, True, False]), np.array([True, True, False, False]))),
    "transcendental_f32": ("fn f(x: f32[n]) { return exp(x), log1p(abs(x)), tanh(x), sigmoid(x), softplus(x), "
                           "erf(x), atan2(x, 1.5), sqrt(abs(x)), rsqrt(abs(x) + 1.0), x ** 2.5 }", "f",
                           lambda: (np.array([-3.0, -0.5, 0.0, 0.7, 2.0, 30.0], np.float32),)),
    "c_names": ("fn f(int: f64[n], double: f64, err: f64[n], i0: f64[n], NAN: f64, out0: f64, expf: f32[n], "
                "int64_t: f64, free: f64) -> f64[n] "
                "{ return int * double + err - i0 + NAN + out0 + exp(expf) + int64_t * free }", "f",
                lambda: (_f64(3), 2.0, _f64(3), _f64(3), 1.0, 3.0, _f32(3), 0.5, 4.0)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_programs(compiled_target, name):
    source, fn, args = PROGRAMS[name]
    run_both(source, fn, compiled_target, *args())


# -- runtime errors ------------------------------------------------------------------

ERRORS = """\
fn power(a: i32[n], b: i32[n]) -> i32[n] { return a ** b }
fn pick(x: f64[n], i: i64[k]) -> f64[k] { return take(x, i) * 2.0 }
fn top(x: f64[n]) -> f64 { return max(x) }
fn where_max(x: f64[n]) -> i64 { return argmax(x) }
"""


@pytest.mark.parametrize("fn, args, message", [
    ("power", (np.array([2, 3], np.int32), np.array([1, -1], np.int32)), "negative integer power"),
    ("pick", (np.arange(3.0), np.array([0, 3])), "index 3 is out of range for axis 0 of length 3"),
    ("pick", (np.arange(3.0), np.array([-4])), "out of range"),
    ("pick", (np.zeros(0), np.array([0])), "out of range"),
    ("top", (np.zeros(0),), "max over axis 0 of length 0 has no identity"),
    ("where_max", (np.zeros(0),), "empty"),
])
def test_runtime_errors_name_the_source_location(target, fn, args, message):
    with pytest.raises(tdsl.TdslRuntimeError, match=message) as info:
        getattr(compiled(ERRORS, target), fn)(*args)
    assert info.value.loc is not None and info.value.loc.line == 1 + [
        "power", "pick", "top", "where_max"].index(fn)


def test_errors_inside_parallel_loops(target):
    """A bad index among many elements (OpenMP threads) is still reported."""
    idx = np.zeros(200_000, dtype=np.int64)
    idx[123_457] = 5
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        compiled(ERRORS, target).pick(np.arange(3.0), idx)


# -- sizes that exercise the parallel and blocked paths ------------------------------------

def test_long_f32_sum_is_accurate(target):
    x = np.random.default_rng(5).random(2_000_000, dtype=np.float32)
    got = compiled("fn f(x: f32[n]) -> f32 { return sum(x) }", target).f(x)
    assert abs(float(got) - float(np.sum(x))) <= 1e-5 * abs(float(np.sum(x)))


def test_large_arrays_match_the_reference(compiled_target):
    src = ("fn f(x: f32[n, k], y: f32[k]) { return softmax(x * y), sum(x, 0), max(x.T, 1), "
           "argmax(x, 1), x @ y }")
    # positive data: f32 sums with cancellation differ (within their rounding) from NumPy's order
    x = np.random.default_rng(6).random((700, 300), dtype=np.float32)
    run_both(src, "f", compiled_target, x, x[0].copy())


def test_empty_arrays(compiled_target):
    src = "fn f(x: f64[n, k]) { return x * 2.0, sum(x, 1), x @ x.T, prod(x), concat((x, x), 0) }"
    run_both(src, "f", compiled_target, np.zeros((3, 0)))
    run_both(src, "f", compiled_target, np.zeros((0, 4)))


def test_a_long_chain_of_operations(compiled_target):
    body = "x" + "".join(f" * 1.001 + {i}.0" for i in range(250))
    run_both(f"fn f(x: f64[n]) -> f64[n] {{ return {body} }}", "f", compiled_target, np.arange(4.0))


# -- the kernel IR: fusion and index arithmetic ------------------------------------------

def lowered(source: str):
    from tdsl.codegen.lower import lower_module
    from tdsl.rewrite import simplify_graph
    graphs = [simplify_graph(g) for g in check_source(source)]
    return lower_module(graphs, "m").functions[0]


def test_w1_is_one_flat_loop_without_temporaries():
    fn = lowered(PROGRAMS["w1_fused"][0])
    assert all(t.is_scalar for t in fn.temps)     # -b: a local computed once, not an array
    (kernel,) = [k for k in fn.kernels if k.loops]
    assert kernel.kind == "map" and len(kernel.loops) == 1 and kernel.out.role == "output"


def test_contiguous_elementwise_kernel_is_one_flat_loop():
    fn = lowered("fn f(x: f32[n, d], y: f32[n, d]) -> f32[n, d] { return exp(x) * reshape(y.T.T, (n, d)) }")
    (kernel,) = fn.kernels
    assert [l.extent for l in kernel.loops] == [Dim.of("n") * Dim.of("d")]


def test_reduction_fuses_its_producer():
    fn = lowered("fn f(x: f64[n, k]) -> f64[n] { return sum(exp(x - max(x, 1, keepdims=true)), 1) }")
    assert [k.kind for k in fn.kernels] == ["reduce", "reduce"]
    assert len(fn.temps) == 1            # the max; exp(x - m) is never stored
    inner = fn.kernels[1].reduce_loops[-1]
    assert fn.kernels[1].value.args[0].args[0].offset.coef(inner.var) == 1   # contiguous inner loop


def test_layout_ops_are_index_arithmetic():
    fn = lowered("fn f(x: f64[n, k]) -> f64[k, n] { return x.T[::-1, :] + reshape(x, (k, n)) }")
    (kernel,) = fn.kernels
    assert not fn.temps and kernel.kind == "map"


def test_expensive_work_under_a_broadcast_gets_a_buffer():
    fn = lowered("fn f(a: f64[n], b: f64[m]) -> f64[n, m] { return outer(exp(a), b) }")
    assert len(fn.temps) == 1 and len(fn.kernels) == 2


# -- the generated source -------------------------------------------------------------------

def test_source_is_readable_c_pointing_at_the_tdsl_lines():
    require_target("c")
    m = tdsl.compile(LOGISTIC, target="c", filename="logistic.tdsl")
    source = m.loss.source
    assert "int logistic_loss(int64_t n, int64_t d, const float *restrict x" in source
    assert "logistic.tdsl:9: return -mean(y * log(p + EPS)" in source
    assert "tdsl_sigmoid_f32(" in source and "_p = " in source    # locals named after the source
    assert "#include <math.h>" in m.source and "#include" not in source


def test_repeated_calls_and_noncontiguous_inputs():
    require_target("c")
    m = compiled("fn f(x: f64[n, k]) -> f64[k] { return sum(x, 0) }", "c")
    x = np.arange(24.0).reshape(6, 4)
    for arg in (x, x[::2], np.asfortranarray(x), x[:, ::-1]):
        assert_same(m.f(arg), arg.sum(0))
    assert m.f(x).flags.c_contiguous


# -- sanitizers ------------------------------------------------------------------------------



@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TDSL_SANITIZE") not in (None, "", "0"), reason="already sanitizing")
def test_programs_under_sanitizers(tmp_path):
    """The representative programs, built with ASan and UBSan, in a process that preloads ASan."""
    libasan = require_asan()
    env = dict(os.environ, TDSL_SANITIZE="1", LD_PRELOAD=libasan, TDSL_CACHE_DIR=str(tmp_path / "cache"),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    # not opencl: with ASan preloaded, a C++ exception in pyopencl's extension aborts the process
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__)),
               "-k", "(programs or runtime_errors or empty_arrays) and not opencl"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
