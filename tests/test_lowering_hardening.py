"""Lowering hardening: dim expressions printed into larger ones, `take`'s range check and gathers
through reshaped views, and sizes too large for memory (issue 11, items 1, 2, 5, 6 and size overflow).

Each family is one module, compiled once per target; the compiled targets run against the
reference interpreter and against NumPy itself, OpenCL in both launch layouts.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import tdsl
import conftest
from conftest import assert_same, compiled, compiled_variant, require_target

# c, and opencl in its CPU layout (runs and strips) and its GPU one (work-group trees, tiles)
VARIANTS = conftest.VARIANTS


build = compiled_variant


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def check(source: str, variant: str, fn: str, expected, *args):
    """`fn` on the variant equals the reference interpreter's result and NumPy's `expected`."""
    got = getattr(build(source, variant), fn)(*args)
    ref = getattr(compiled(source, "numpy"), fn)(*args)
    assert_same(got, ref)
    assert_same(ref, expected)


# -- items 1 and 2: shapes that are dim expressions, through every kernel kind ------------------

DIMS = """
fn slice_map(x: f64[n, m]) { return x[1:, 1:] * 2.0 }
fn slice_sum0(x: f64[n, m]) { return sum(x[1:], axis=0) }
fn slice_sum1(x: f64[n, m]) { return sum(x[1:, :-1], axis=1) }
fn slice_total(x: f64[n, m]) { return sum(sum(x[1:], axis=1)) }
fn slice_arg(x: f64[n, m]) { return argmax(x[1:, 1:], axis=0), argmin(x[:-1], axis=1), argmax(x[1:]) }
fn slice_matmul(x: f64[n, m]) { return x[1:, 1:] @ x[1:, 1:].T }
fn slice_fused(x: f64[n, m]) { y = x[1:]; return sum(y, axis=0), sum(y * y, axis=0), y - mean(y, axis=0) }
fn slice_take(x: f64[n, m], i: i64[k]) { return take(x[1:], i), take(x[:, 1:], i, axis=1) }
fn cat(x: f64[n, m], y: f64[k, m]) { c = concat((x, y), axis=0); return c * 2.0, sum(c, axis=0), sum(c, axis=1), c.T @ c }
fn flat(x: f64[n, m]) { r = reshape(x, (n * m,)); return r[1:] + 1.0, sum(r[1:]), argmax(r[:-1]) }
fn half(x: f64[n]) { h = reshape(x, (n // 2, 2)); return h[1:] * 3.0, sum(h[1:], axis=0), sum(h, axis=1), x[::2] - 1.0 }
fn ints(x: i64[n, m]) { return x[1:, 1:], sum(x[1:], axis=0), max(x[1:, 2:], axis=1) }
"""

# (rows, columns): small, and long enough for blocked sums, threads and fused chunks
SHAPES = [(3, 3), (3, 4), (2, 65), (130, 3), (2100, 7)]


@pytest.mark.parametrize("shape", SHAPES)
def test_dim_expressions_in_every_kernel_kind(variant, shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    x = rng.standard_normal(shape)
    n, m = shape
    check(DIMS, variant, "slice_map", x[1:, 1:] * 2, x)
    check(DIMS, variant, "slice_sum0", x[1:].sum(axis=0), x)
    check(DIMS, variant, "slice_sum1", x[1:, :-1].sum(axis=1), x)
    check(DIMS, variant, "slice_total", x[1:].sum(), x)
    check(DIMS, variant, "slice_arg", (x[1:, 1:].argmax(axis=0), x[:-1].argmin(axis=1), np.int64(x[1:].argmax())), x)
    check(DIMS, variant, "slice_matmul", x[1:, 1:] @ x[1:, 1:].T, x)
    y = x[1:]
    check(DIMS, variant, "slice_fused", (y.sum(axis=0), (y * y).sum(axis=0), y - y.mean(axis=0)), x)
    i = np.array([0, -1, min(1, m - 2), n - 2])
    i = i[i < min(n - 1, m - 1)]
    check(DIMS, variant, "slice_take", (x[1:][i], x[:, 1:][:, i]), x, i)
    z = rng.standard_normal((5, m))
    c = np.concatenate([x, z])
    check(DIMS, variant, "cat", (c * 2, c.sum(axis=0), c.sum(axis=1), c.T @ c), x, z)
    r = x.reshape(-1)
    check(DIMS, variant, "flat", (r[1:] + 1, r[1:].sum(), np.int64(r[:-1].argmax())), x)
    v = x.reshape(-1)[: (n * m) // 2 * 2]
    h = v.reshape(-1, 2)
    check(DIMS, variant, "half", (h[1:] * 3, h[1:].sum(axis=0), h.sum(axis=1), v[::2] - 1), v)
    a = rng.integers(-50, 50, shape)
    check(DIMS, variant, "ints", (a[1:, 1:], a[1:].sum(axis=0), a[1:, 2:].max(axis=1)), a)


def test_issue_examples_of_unparenthesised_dims(variant):
    x = np.arange(9.0).reshape(3, 3)
    check(DIMS, variant, "slice_sum0", np.array([9.0, 11.0, 13.0]), x)
    check(DIMS, variant, "slice_total", np.float64(33.0), x)
    a = np.arange(12).reshape(3, 4)
    got = build(DIMS, variant).ints(a)[0]
    assert_same(got, a[1:, 1:])


# -- item 5: take's range check whatever the taken-from value is --------------------------------

BROADCAST_TAKE = """
fn zeros3(i: i64[k]) { return take(zeros(3), i) }
fn lifted(x: f64[n], i: i64[k]) { return take(x[None], i) }
fn spread(x: f64[m], i: i64[k]) { return take(broadcast_to(x[0], (m,)), i) }
fn rows(x: f64[n, m], i: i64[k]) { return take(broadcast_to(x[:1], (n, m)), i) }
fn cols(x: f64[n, m], i: i64[k]) { return take(ones((n, 4)), i, axis=1) + x[:, :1] }
fn summed(x: f64[n], i: i64[k]) { return sum(take(full((n,), 2.0), i)) }
"""


def test_take_from_a_broadcast_value_checks_its_range(target):
    m = compiled(BROADCAST_TAKE, target)
    x = np.arange(3.0)
    x2 = np.arange(12.0).reshape(3, 4)
    good = np.array([0, 2, -3, -1])
    assert_same(m.zeros3(good), np.zeros(4))
    assert_same(m.lifted(x, np.array([0, -1])), x[None][[0, -1]])
    assert_same(m.spread(x, good), np.full(4, x[0]))
    assert_same(m.rows(x2, good), np.broadcast_to(x2[:1], (3, 4))[good])
    assert_same(m.cols(x2, np.array([3, -4])), np.ones((3, 2)) + x2[:, :1])
    assert_same(m.summed(x, good), np.float64(8.0))
    bad = [("zeros3", (np.array([7]),), 2), ("zeros3", (np.array([0, -4]),), 2), ("lifted", (x, np.array([1])), 3),
           ("spread", (x, np.array([3])), 4), ("rows", (x2, np.array([0, 3])), 5),
           ("cols", (x2, np.array([4])), 6), ("summed", (x, np.array([-4])), 7)]
    for fn, args, line in bad:
        with pytest.raises(tdsl.TdslRuntimeError, match="out of range") as err:
            getattr(m, fn)(*args)
        assert err.value.loc.line == line, fn


# -- item 6: gathers through reshapes of non-contiguous views -----------------------------------

GATHERS = """
fn g1(x: f32[n, m], i: i64[k, 2]) { return take(reshape(x[:, 1:], -1), i) }
fn g2(x: f32[n, m], i: i64[k]) { return take(reshape(x.T, -1), i) }
fn g3(x: f32[n, m], i: i64[k]) { return take(reshape(x[:, 1:], (m - 1, n)), i, axis=1) }
fn g4(x: f32[n, m], i: i64[k]) { return take(reshape(x[::2, :], -1), i) }
fn g5(x: f32[n, m], i: i64[k]) { return take(reshape(broadcast_to(x[:, None, :], (n, 2, m)), (2 * n, m)), i, axis=0) }
fn g6(x: f32[n, m], i: i64[k]) { return take(reshape(x[1:].T, (m, n - 1)), i, axis=0) * 2.0 }
fn g7(x: f32[n, m], i: i64[k, 2]) { return sum(take(reshape(x[:, 1:], -1), i), axis=1) }
fn g8(x: f32[n, m], i: i64[k]) { return take(reshape(x[:, ::-1], (n * m,)), i) + take(x, i % n, axis=0)[:, 0] }
fn g9(x: f32[n, m], i: i64[k]) { return take(reshape(x[:, 1:], -1), reshape(i, (k, 1)))[:, 0] }
"""


@pytest.mark.parametrize("shape", [(4, 5), (3, 2), (40, 70)])
def test_gathers_through_reshaped_views(variant, shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    n, m = shape
    flat_cut = x[:, 1:].reshape(-1)
    i2 = rng.integers(-flat_cut.size, flat_cut.size, (6, 2))
    check(GATHERS, variant, "g1", flat_cut[i2], x, i2)
    i = rng.integers(-x.size, x.size, 7)
    check(GATHERS, variant, "g2", x.T.reshape(-1)[i], x, i)
    j = rng.integers(-n, n, 5)
    check(GATHERS, variant, "g3", x[:, 1:].reshape(m - 1, n)[:, j], x, j)
    every_other = x[::2].reshape(-1)
    check(GATHERS, variant, "g4", every_other[i % every_other.size], x, i % every_other.size)
    rows = np.broadcast_to(x[:, None, :], (n, 2, m)).reshape(2 * n, m)
    r = rng.integers(-2 * n, 2 * n, 4)
    check(GATHERS, variant, "g5", rows[r], x, r)
    c = rng.integers(-m, m, 3)
    check(GATHERS, variant, "g6", x[1:].T.reshape(m, n - 1)[c] * np.float32(2), x, c)
    check(GATHERS, variant, "g7", flat_cut[i2].sum(axis=1), x, i2)
    check(GATHERS, variant, "g8", x[:, ::-1].reshape(-1)[i] + x[i % n][:, 0], x, i)
    check(GATHERS, variant, "g9", flat_cut[i2[:, 0]], x, i2[:, 0])
    with pytest.raises(tdsl.TdslRuntimeError, match="out of range"):
        build(GATHERS, variant).g1(x, np.array([[0, flat_cut.size]]))


# -- sizes too large for memory ------------------------------------------------------------

SIZES = """
fn eyesum(x: bool[a, n]) -> f32 { e = eye(n, dtype=f32); return sum(e @ e) }
fn resh(x: bool[a, n]) { return reshape(x, (a * n * 4,)) }
fn resh32(x: bool[a, n]) { return reshape(f32(x), (a * n * 4,)) }
fn wide(x: bool[a, n], y: bool[a, m]) { return concat((x, y), axis=1) }
fn prodsize(x: bool[a, n], y: bool[b, m]) { return zeros((n * m,), dtype=f32) }
fn mmsum(x: bool[n, a], y: bool[a, m]) { return sum(f32(x) @ f32(y)) }
fn rowsum(x: bool[a, n]) -> f32 { s = sum(ones((n, 2), dtype=f32), axis=1); return max(s) }
fn fill(x: bool[a, n]) -> f32[n, 4] { return zeros((n, 4), dtype=f32) }
fn transposed(x: bool[a, n]) { return i64(x.T) + 1 }
fn colsum(x: bool[a, n]) { return sum(x, axis=0) }
"""


def _sizes(*arrays, names) -> dict:
    sizes = {}
    for arr, axes in zip(arrays, names):
        sizes.update(zip(axes, arr.shape))
    return sizes


def _calls(module, fn: str, args: tuple, sizes: dict):
    """The call, and the target's own runner alone (its checks in generated code or the host plan).

    The C runner is handed empty result arrays: the generated function must refuse the sizes
    before it touches them."""
    function = getattr(module, fn)
    yield "call", lambda: function(*args)
    if module.target != "c":
        yield "runner", lambda: function._runner(list(args), dict(sizes))
    elif fn != "fill":   # fill's sizes fit: its result is allocated, by the caller, and fails there
        outs = [np.empty(0, np.float64) for _ in function.graph.outputs]
        yield "runner", lambda: function._runner(list(args), dict(sizes), outs)


# A preloaded AddressSanitizer (TDSL_SANITIZE runs) aborts on a huge malloc unless told to return NULL:
# the cases where an allocation must fail are then left out (ASAN_OPTIONS=allocator_may_return_null=1
# keeps them).
ASAN_ABORTS = "asan" in os.environ.get("LD_PRELOAD", "") and \
    "allocator_may_return_null=1" not in os.environ.get("ASAN_OPTIONS", "")

TOO_BIG = [  # (fn, arguments, size names per argument, line of the value named, words of the message)
    ("eyesum", (np.zeros((0, 2**32), bool),), ("an",), 2, "too large"),
    ("resh32", (np.zeros((0, 2**62), bool),), ("an",), 4, "too large"),
    ("wide", (np.zeros((0, 2**62), bool), np.zeros((0, 2**62), bool)), ("an", "am"), 5, "too large"),
    ("prodsize", (np.zeros((0, 2**32), bool), np.zeros((0, 2**32), bool)), ("an", "bm"), 6, "too large"),
    ("mmsum", (np.zeros((2**31, 0), bool), np.zeros((0, 2**31), bool)), ("na", "am"), 7, "too large"),
    ("rowsum", (np.zeros((0, 2**59), bool),), ("an",), 8, "cannot allocate 2305843009213693952 bytes"),
    ("fill", (np.zeros((0, 2**58), bool),), ("an",), 9, "cannot allocate 4611686018427387904 bytes"),
]
TOO_BIG = [case for case in TOO_BIG if not (ASAN_ABORTS and "allocate" in case[-1])]


@pytest.mark.parametrize("case", TOO_BIG, ids=[c[0] for c in TOO_BIG])
def test_sizes_too_large_for_memory_are_located_errors(target, case):
    fn, args, names, line, words = case
    module = compiled(SIZES, target)
    for how, call in _calls(module, fn, args, _sizes(*args, names=names)):
        with pytest.raises(tdsl.TdslRuntimeError, match=words) as err:
            call()
        assert err.value.loc is not None and err.value.loc.line == line, (how, str(err.value))


def test_huge_dims_of_zero_size_arrays_still_work(target):
    module = compiled(SIZES, target)
    assert_same(module.resh(np.zeros((0, 2**62), bool)), np.zeros(0, bool))
    assert_same(module.colsum(np.zeros((0, 2**10), bool)), np.zeros(2**10, np.int64))
    flipped = module.transposed(np.zeros((0, 2**40), bool))   # 2**40 rows of nothing: no time, no memory
    assert flipped.shape == (2**40, 0) and flipped.dtype == np.int64
    assert_same(module.mmsum(np.zeros((2**12, 0), bool), np.zeros((0, 2**12), bool)), np.float32(0))
    x = np.zeros((0, 2**61), bool)
    assert_same(module.wide(x, x), np.zeros((0, 2**62), bool))


RESULTS_TOO_LARGE = [(n, words) for n, words in ((2**62, "too large"), (2**58, "cannot allocate"))
                     if not (ASAN_ABORTS and words == "cannot allocate")]


@pytest.mark.parametrize("native", ["1", "0"])
@pytest.mark.parametrize("n, words", RESULTS_TOO_LARGE)
def test_the_fast_call_paths_report_results_too_large(target, monkeypatch, native, n, words):
    """A result NumPy cannot allocate: the C call paths (the native one, and the Python one used
    where the extension is not built) hand the call to the checked path, which names the value, as the
    other targets do."""
    if target == "c":
        from tdsl.codegen import fastcall
        if native == "0":
            monkeypatch.setattr(fastcall, "native", None)
        module = tdsl.compile(SIZES + f"\nfn unused_{native}() -> i64 {{ return 1 }}", target=target)
        assert (type(module.fill._call).__name__ == "FastCall") == (native == "1" and fastcall.native is not None)
    else:
        module = compiled(SIZES, target)
    with pytest.raises(tdsl.TdslRuntimeError, match=words) as err:
        module.fill(np.zeros((0, n), bool))
    assert err.value.loc.line == 9
    assert module.fill(np.zeros((0, 3), bool)).shape == (3, 4)


def test_generated_c_checks_sizes_before_allocating():
    require_target("c")
    source = compiled(SIZES, "c").eyesum.source
    body = source[source.index("_eyesum("):]
    assert body.index("tdsl_too_big(") < body.index("tdsl_alloc(")
    assert "tdsl_size_mul(" in compiled(SIZES, "c").prodsize.source


def test_an_argument_the_opencl_device_cannot_hold_is_a_located_error(monkeypatch):
    """A device with less memory than the host refuses a copy of an argument: a pyopencl error
    from the copy becomes the error naming the argument (forced here, PoCL shares host memory)."""
    require_target("opencl")
    import pyopencl as cl
    from tdsl.codegen import opencl_runtime

    def refuse(self, value, dtype, device):
        raise cl.MemoryError("clCreateBuffer failed: MEM_OBJECT_ALLOCATION_FAILURE")
    monkeypatch.setattr(opencl_runtime.FunctionRunner, "_input", refuse)
    with pytest.raises(tdsl.TdslRuntimeError, match="cannot allocate 24 bytes for the argument 'x'") as err:
        compiled(DIMS, "opencl").slice_sum0(np.zeros((3, 1)))
    assert err.value.loc.line == 3


SIZES_MAIN = r"""
#include <stdio.h>
#include "sizes.h"

int main(void)
{
    const int64_t huge = (int64_t)1 << 62;
    float total = 0;
    int code = sizes_eyesum(0, (int64_t)1 << 32, NULL, &total);
    printf("%d %s\n", code, sizes_error(code));
    code = sizes_wide(0, huge, huge, NULL, NULL, NULL);
    printf("%d %s\n", code, sizes_error(code));
    code = sizes_prodsize(0, (int64_t)1 << 32, 0, (int64_t)1 << 32, NULL, NULL, NULL);
    printf("%d %s\n", code, sizes_error(code));
    code = sizes_resh(0, huge, NULL, NULL);
    printf("%d %s\n", code, sizes_error(code));
    return 0;
}
"""


def test_standalone_c_refuses_sizes_too_large(tmp_path):
    """OUT.c checks the same limits at each function's entry (strict C99, no Python), with
    the size arithmetic itself overflow-checked (n * m of 2**32 each, n + m of 2**62 each)."""
    require_target("c")
    from tdsl.codegen import build as c_build
    from tdsl.codegen.c_backend import emit_standalone
    from tdsl.pipeline import check_source
    from tdsl.rewrite import simplify_graph
    graphs = [simplify_graph(g) for g in check_source(SIZES, "sizes.tdsl")]
    c_text, h_text = emit_standalone(graphs, "sizes")
    (tmp_path / "sizes.c").write_text(c_text)
    (tmp_path / "sizes.h").write_text(h_text)
    (tmp_path / "main.c").write_text(SIZES_MAIN)
    import subprocess
    command = list(c_build.compiler()) + ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                                          "main.c", "sizes.c", "-o", "main", "-lm"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, text=True, timeout=600)
    lines = subprocess.run([str(tmp_path / "main")], cwd=tmp_path, check=True, capture_output=True,
                           text=True, timeout=60).stdout.splitlines()
    for line, where in zip(lines[:3], ("sizes.tdsl:2:", "sizes.tdsl:5:", "sizes.tdsl:6:")):
        code, message = line.split(" ", 1)
        assert int(code) > 1 and message.startswith(where) and "too large" in message, line
    assert lines[3] == "0 success"


# -- the class of item 6: random chains of layout ops under a take ------------------------------

def _layout_chain(rng, depth: int):
    """(tdsl expression, NumPy function, shape of x[n, m] -> ..., symbolic dims) of random layout ops."""
    expr, ops, sym = "x", [], ["n", "m"]
    for _ in range(depth):
        op = rng.choice(["slice", "T", "flat", "bcast", "rev", "split", "step"])
        rank = len(sym)
        if op == "slice":
            expr, sym = f"{expr}[1:]", [f"({sym[0]} - 1)"] + sym[1:]
            ops.append(lambda a: a[1:])
        elif op == "T" and rank == 2:
            expr, sym = f"{expr}.T", sym[::-1]
            ops.append(lambda a: a.T)
        elif op == "flat" and rank == 2:
            expr, sym = f"reshape({expr}, -1)", [f"{sym[0]} * {sym[1]}"]
            ops.append(lambda a: a.reshape(-1))
        elif op == "bcast" and rank == 1:
            expr, sym = f"broadcast_to({expr}[None, :], (3, {sym[0]}))", ["3", sym[0]]
            ops.append(lambda a: np.broadcast_to(a[None, :], (3,) + a.shape))
        elif op == "rev":
            expr = f"{expr}[::-1]"
            ops.append(lambda a: a[::-1])
        elif op == "split" and rank == 1:
            expr, sym = f"reshape({expr}[:-1], (({sym[0]} - 1) // 2, 2))", [f"(({sym[0]} - 1) // 2)", "2"]
            ops.append(lambda a: a[:-1].reshape(-1, 2))
        elif op == "step":
            expr, sym = f"{expr}[::2]", [f"(({sym[0]} + 1) // 2)"] + sym[1:]
            ops.append(lambda a: a[::2])

    def apply(a):
        for f in ops:
            a = f(a)
        return a
    return expr, apply


def _random_gathers(seed: int, count: int):
    """A module of `count` takes from random layout chains, and NumPy's answer for each."""
    import random
    rng = random.Random(seed)
    fns, cases = [], []
    for k in range(count):
        expr, apply = _layout_chain(rng, rng.randint(1, 4))
        x = np.arange(35.0).reshape(5, 7) + 0.5
        view = apply(x)
        if view.size == 0:
            continue
        axis = rng.randrange(view.ndim)
        rank = rng.choice([1, 1, 2])
        i = np.array([rng.randrange(-view.shape[axis], view.shape[axis]) for _ in range(2 * rank)]).reshape(
            (2,) * rank)
        after = rng.choice(["", " * 2.0", "sum"])
        body = f"take({expr}, i, axis={axis})"
        expected = np.take(view, i, axis=axis)
        if after == "sum":
            body, expected = f"sum({body}, axis=0)", expected.sum(axis=0)
        elif after:
            body, expected = body + after, expected * 2.0
        itype = "i64[k]" if rank == 1 else "i64[k, j]"
        fns.append(f"fn take_{k}(x: f64[n, m], i: {itype}) {{ return {body} }}")
        cases.append((f"take_{k}", x, i, expected))
    return "\n".join(fns), cases


RANDOM_GATHERS = _random_gathers(11, 24)


def test_takes_through_random_layout_chains(variant):
    source, cases = RANDOM_GATHERS
    for fn, x, i, expected in cases:
        check(source, variant, fn, expected, x, i)
