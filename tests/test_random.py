"""Random numbers (section 12): rand is NumPy's Philox stream bit for bit on every target; randint,
bernoulli, randn and fold_in agree across targets and pass statistical sanity checks; the
builtins' argument errors name the call's line:col; results do not depend on the thread count."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tdsl
from conftest import VARIANTS, compiled, compiled_variant, require_target, run
from tdsl import philox

KEYS = [0, 1, 2**63 + 5, 123456789]


def as_i64(key: int) -> int:
    """A key in [0, 2**64) as the i64 argument that holds its bits."""
    return key - 2**64 if key >= 2**63 else key


def numpy_rand(key: int, shape, dtype=np.float64) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64))
    return np.random.Generator(np.random.Philox(key=key % 2**64)).random(size, dtype).reshape(shape)


UNIFORM = """
fn sized(key: i64, x: f64[n, d]) { return rand(key, (n, d)), rand(key, (n, d), dtype=f32) }
fn odd(key: i64) {
    a = rand(key, 7)
    b = rand(key, (3, 5), dtype=f32)
    return a, b, rand(key, 0), rand(key, (2, 0, 3), dtype=f32), rand(key, ()), rand(key, 13, dtype=f32)
}
fn literals() { return rand(0, 5), rand(1, (2, 3)), rand(9223372036854775813, 9, dtype=f32), rand(-1, 4) }
fn small_key(key: i32) { return rand(key, 6) }
fn dropout(key: i64, x: f64[n, d], p: f64) { return where(rand(key, (n, d)) < p, 0.0, x / (1 - p)) }
fn transposed(key: i64, x: f64[n, d]) { return transpose(rand(key, (d, n))) + x }
fn sliced(key: i64) { return rand(key, (6, 5))[1::2, ::-1] }
"""


@pytest.mark.parametrize("key", KEYS)
def test_rand_is_numpys_philox_stream_bit_for_bit(target, key):
    """Shapes from size variables (odd sizes, not multiples of 4 or 8, and empty ones), f64 and f32."""
    for n, d in [(3, 7), (1, 1), (0, 5), (5, 0), (9, 3)]:
        got64, got32 = run(UNIFORM, "sized", target, as_i64(key), np.zeros((n, d)))
        assert got64.dtype == np.float64 and got32.dtype == np.float32
        np.testing.assert_array_equal(got64, numpy_rand(key, (n, d)))
        np.testing.assert_array_equal(got32, numpy_rand(key, (n, d), np.float32))


@pytest.mark.parametrize("key", KEYS)
def test_fixed_shapes_scalars_and_empty_shapes(target, key):
    got = run(UNIFORM, "odd", target, as_i64(key))
    want = (numpy_rand(key, (7,)), numpy_rand(key, (3, 5), np.float32), numpy_rand(key, (0,)),
            numpy_rand(key, (2, 0, 3), np.float32), numpy_rand(key, ()), numpy_rand(key, (13,), np.float32))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_literal_keys_read_as_unsigned_64_bit(target):
    """2**63 + 5 as a literal is the key NumPy takes; -1 is 2**64 - 1; an i32 key widens as NumPy's int."""
    got = run(UNIFORM, "literals", target)
    want = (numpy_rand(0, (5,)), numpy_rand(1, (2, 3)), numpy_rand(2**63 + 5, (9,), np.float32),
            numpy_rand(2**64 - 1, (4,)))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(run(UNIFORM, "small_key", target, np.int32(-3)), numpy_rand(2**64 - 3, (6,)))


def test_rand_fuses_with_its_consumers_and_any_layout(target):
    x = np.random.default_rng(0).normal(size=(40, 9))
    key = as_i64(2**63 + 5)
    u = numpy_rand(2**63 + 5, (40, 9))
    np.testing.assert_array_equal(run(UNIFORM, "dropout", target, key, x, 0.25), np.where(u < 0.25, 0.0, x / 0.75))
    np.testing.assert_array_equal(run(UNIFORM, "transposed", target, 7, x), numpy_rand(7, (9, 40)).T + x)
    np.testing.assert_array_equal(run(UNIFORM, "sliced", target, 7), numpy_rand(7, (6, 5))[1::2, ::-1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_launch_layout_gives_numpys_numbers(variant):
    """OpenCL's CPU and GPU layouts (work-group sizes, vector maps) and C's threads: positions
    alone decide the values."""
    m = compiled_variant(UNIFORM, variant)
    x = np.random.default_rng(1).normal(size=(300, 33))
    got64, got32 = m.sized(5, x)
    np.testing.assert_array_equal(got64, numpy_rand(5, x.shape))
    np.testing.assert_array_equal(got32, numpy_rand(5, x.shape, np.float32))
    np.testing.assert_array_equal(m.dropout(5, x, 0.5), np.where(numpy_rand(5, x.shape) < 0.5, 0.0, x / 0.5))


# -- fold_in and loops ---------------------------------------------------------------------------

LOOPS = """
fn per_step(key: i64, x: f64[t, k]) -> f64[t, k] {
    out = zeros((t, k))
    for i in range(0, t) {
        step = fold_in(key, i)
        out[i] = rand(step, k)
    }
    return out
}
fn keys(key: i64, x: f64[t, k]) { return fold_in(key, arange(t)), fold_in(key, 3), fold_in(arange(t), 3) }
fn small(key: i32, i: i32) { return fold_in(key, i) }
"""


def test_fold_in_gives_each_iteration_fresh_numbers(target):
    """Row i is NumPy's stream of the key fold_in(key, i); fold_in is elementwise over arrays."""
    key = as_i64(2**63 + 5)
    out = run(LOOPS, "per_step", target, key, np.zeros((6, 11)))
    folded, three, by_key = run(LOOPS, "keys", target, key, np.zeros((6, 11)))
    assert folded.dtype == np.int64 and folded.shape == (6,) and len(set(folded.tolist())) == 6
    assert three == folded[3]
    for i in range(6):
        np.testing.assert_array_equal(out[i], numpy_rand(int(folded[i]) % 2**64, (11,)))
    assert len({row.tobytes() for row in out}) == 6
    np.testing.assert_array_equal(by_key, [philox.fold_in(k, 3) for k in range(6)])
    assert run(LOOPS, "small", target, np.int32(-2), np.int32(9)) == philox.fold_in(-2, 9)


def test_fold_in_is_one_documented_philox_block():
    """Word 0 of Philox-4x64-10 with counter [i, 0, 0, 1] and key [key, 0] (a block no stream uses)."""
    key, i = 2**63 + 5, 7
    bitgen = np.random.Philox(key=key, counter=[i - 1, 0, 0, 1])   # NumPy adds 1 before a block
    assert int(bitgen.random_raw()) == int(philox.fold_in(as_i64(key), i)) % 2**64


# -- randint, bernoulli, randn -------------------------------------------------------------------

DRAWS = """
fn ints(key: i64, low: i64, high: i64, x: f64[n]) { return randint(key, low, high, n), randint(key, -3, 10, n, dtype=i32) }
fn wide(key: i64) { return randint(key, -9223372036854775808, 9223372036854775807, 1000) }
fn coins(key: i64, x: f64[n], p: f32[3]) { return bernoulli(key, 0.3, n), bernoulli(key, p, (n, 3)) }
fn normals(key: i64, x: f64[n]) { return randn(key, n), randn(key, (n // 2, 2), dtype=f32) }
fn masked(key: i64, x: f64[n, 3]) {
    keep = bernoulli(key, 0.5, (n, 3))
    return sum(x * f64(keep)) + sum(where(keep, x * x, 0.0)) + sum(x * rand(key, (n, 3)))
}
fn masked_grad(key: i64, x: f64[n, 3]) { return grad(masked(key, x), x) }
"""
N = 200_001


def test_randint_stays_in_range_and_is_uniform(target):
    ints, small = run(DRAWS, "ints", target, 11, -5, 7, np.zeros(N))
    assert ints.dtype == np.int64 and small.dtype == np.int32
    for values, low, high in ((ints, -5, 7), (small, -3, 10)):
        assert values.min() == low and values.max() == high - 1
        counts = np.bincount(values - low, minlength=high - low)
        expected = N / (high - low)
        assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected))
    wide = run(DRAWS, "wide", target, 3)
    assert wide.min() < -2**62 and wide.max() > 2**62   # the whole i64 range


def test_randint_needs_low_below_high_at_call_time(target):
    m = compiled(DRAWS, target)
    for low, high in ((5, 5), (6, 2)):
        with pytest.raises(tdsl.TdslRuntimeError, match="randint needs low < high") as info:
            m.ints(1, low, high, np.zeros(4))
        assert (info.value.loc.line, info.value.loc.col) == (2, 60)
    assert m.ints(1, 0, 1, np.zeros(0))[0].shape == (0,)


def test_bernoulli_frequencies_and_broadcast_probabilities(target):
    p = np.array([0.0, 1.0, 0.5], dtype=np.float32)
    flat, grid = run(DRAWS, "coins", target, 5, np.zeros(N), p)
    assert flat.dtype == np.bool_ and grid.shape == (N, 3)
    assert abs(flat.mean() - 0.3) < 5 * np.sqrt(0.21 / N)
    assert not grid[:, 0].any() and grid[:, 1].all()
    assert abs(grid[:, 2].mean() - 0.5) < 5 * np.sqrt(0.25 / N)
    np.testing.assert_array_equal(flat, numpy_rand(5, (N,)) < 0.3)


def test_randn_moments(target):
    z64, z32 = run(DRAWS, "normals", target, 2**40, np.zeros(N))
    assert z64.dtype == np.float64 and z32.dtype == np.float32 and z32.shape == (N // 2, 2)
    for z in (z64, z32.ravel()):
        n = z.size
        assert abs(z.mean()) < 5 / np.sqrt(n)
        assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
        assert abs(np.mean(z ** 3)) < 5 * np.sqrt(15 / n)
        assert abs(np.mean(np.abs(z) < 1) - 0.6826894921) < 5 * np.sqrt(0.22 / n)


def test_randn_is_the_documented_box_muller(target):
    z = run(DRAWS, "normals", target, 9, np.zeros(10))[0]
    u = numpy_rand(9, (20,))
    np.testing.assert_allclose(z, np.sqrt(-2 * np.log(1 - u[0::2])) * np.cos(2 * np.pi * u[1::2]), rtol=1e-12)


def test_grad_treats_a_random_mask_as_a_constant(target):
    x = np.random.default_rng(2).normal(size=(50, 3))
    g = run(DRAWS, "masked_grad", target, 4, x)
    u = numpy_rand(4, (50, 3))
    np.testing.assert_allclose(g, (u < 0.5) * (1 + 2 * x) + u, rtol=1e-12)


# -- errors ---------------------------------------------------------------------------------------

BAD = [
    ("fn f() { return rand(1.5, 3) }", "the key of rand must be an integer", 17),
    ("fn f(k: i64[n]) { return rand(k, 3) }", "must be an integer scalar, not i64[n]", 26),
    ("fn f(k: bool) { return randn(k, 3) }", "the key of randn must be an integer", 24),
    ("fn f() { return rand(1, 3, dtype=i64) }", "dtype must be f32 or f64, not i64", 17),
    ("fn f() { return randint(1, 0, 5, 3, dtype=f32) }", "randint gives integers: its dtype must be i32 or i64", 17),
    ("fn f() { return randint(1, 5, 5, 3) }", "randint needs low < high", 17),
    ("fn f(lo: f64) { return randint(1, lo, 5, 3) }", "randint's low must be an integer scalar", 24),
    ("fn f() { return randint(1, 0, 3000000000, 3, dtype=i32) }", "does not fit i32", 17),
    ("fn f(p: f64[4]) { return bernoulli(1, p, 3) }", "do not broadcast", 26),
    ("fn f() { return bernoulli(1, true, 3) }", "bernoulli's p must be a number", 17),
    ("fn f(x: f64) { return fold_in(1, x) }", "fold_in's value must be an integer", 23),
    ("fn f() { return rand(1, 3, dtype=f16) }", "f16", 34),
]


@pytest.mark.parametrize("source, message, col", BAD)
def test_bad_arguments_are_errors_at_the_call(source, message, col):
    with pytest.raises(tdsl.TdslError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
        tdsl.compile(source, target="numpy")
    assert (info.value.loc.line, info.value.loc.col) == (1, col)


# -- printing and threads -------------------------------------------------------------------------

def test_random_programs_print_back_to_source_that_computes_the_same():
    """to_tdsl spells the ops by name (philox_bits, mulhi, randint_span, ...) and they parse back."""
    from tdsl.printer import to_tdsl
    m = compiled(DRAWS, "numpy")
    for name, args in (("ints", (3, 1, 9, np.zeros(6))), ("normals", (3, np.zeros(6))),
                       ("coins", (3, np.zeros(6), np.array([0.1, 0.5, 0.9], np.float32)))):
        again = tdsl.compile(to_tdsl(getattr(m, name).graph), target="numpy")
        for got, want in zip(getattr(again, name)(*args), getattr(m, name)(*args)):
            np.testing.assert_array_equal(got, want)


def test_results_do_not_depend_on_the_number_of_threads(tmp_path):
    require_target("c")
    code = textwrap.dedent("""
        import hashlib, numpy as np, tdsl
        m = tdsl.compile('''
        fn f(key: i64, x: f64[n]) {
            a = rand(key, n)
            b = rand(key, (n, 3), dtype=f32)
            return a, b, randn(key, n), randint(key, 0, 7, n), where(rand(key, n) < 0.5, x, 0.0)
        }''')
        out = m.f(99, np.arange(300_001.0))
        print(" ".join(hashlib.sha256(a.tobytes()).hexdigest() for a in out))
        """)
    outputs = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, TDSL_CACHE_DIR=str(tmp_path))
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True, timeout=600).stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("openmp", [False, True])
def test_the_emitted_c_compiles_cleanly_and_runs_without_python(tmp_path, openmp):
    """`tdslc build -t c`: the Philox helpers are plain C99 under -Wall -Wextra -Werror."""
    require_target("c")
    from test_standalone_c import STRICT, emit
    from test_standalone_c import run as run_command
    from tdsl.codegen import build
    cc = list(build.compiler())
    if openmp and not build.openmp_supported(tuple(cc)):
        pytest.skip("the C compiler has no OpenMP")
    c_text, h_text = emit(DRAWS + UNIFORM, "draws")
    (tmp_path / "draws.c").write_text(c_text)
    (tmp_path / "draws.h").write_text(h_text)
    (tmp_path / "main.c").write_text(textwrap.dedent("""
        #include <stdio.h>
        #include "draws.h"
        int main(void)
        {
            double u[7];
            float v[15], w[13];
            double none[1], scalar;
            float empty[1];
            if (draws_odd(-9223372036854775803LL, u, v, none, empty, &scalar, w)) return 1;
            for (int i = 0; i < 7; i++) printf("%.17g\\n", u[i]);
            return 0;
        }
        """))
    run_command(cc + STRICT + (["-fopenmp"] if openmp else []) + ["main.c", "draws.c", "-o", "main", "-lm"],
                tmp_path)
    printed = [float(line) for line in run_command([str(tmp_path / "main")], tmp_path).split()]
    np.testing.assert_array_equal(printed, numpy_rand(2**63 + 5, (7,)))


def test_rand_stays_right_in_a_process_that_loads_many_modules(tmp_path):
    """Each C module keeps its Philox block in thread-local storage. Once a process has loaded
    more modules than glibc's static TLS surplus holds, a thread's first read of a new module's
    block can go through glibc's slow path (growing the thread's DTV), which before glibc 2.40
    does not preserve the vector registers a -mtls-dialect=gnu2 caller keeps live across it: rand's
    2**-53 scale came back as a tiny integer's bits, values times about 1e-306 (seen once in a
    full test run; tdsl no longer builds with gnu2). The same library is loaded from 60 copies
    of the cache folder here."""
    require_target("c")
    code = textwrap.dedent("""
        import os, shutil
        import numpy as np, tdsl
        from tdsl.codegen import build
        SRC = "fn f(key: i64, x: f64[n, d]) { return rand(key, (n, d)) }"
        first = os.environ["TDSL_CACHE_DIR"]
        tdsl.compile(SRC, target="c")
        x = np.zeros((3, 12000))   # 36000 points: a loop on threads, the calling one among them
        want = tdsl.compile(SRC, target="numpy").f(5, x)
        wrong = []
        for i in range(60):
            shutil.copytree(first, f"{first}-{i}")
            os.environ["TDSL_CACHE_DIR"] = f"{first}-{i}"
            if not np.array_equal(tdsl.compile(SRC, target="c").f(5, x), want):
                wrong.append(i)
        print(len(wrong), int("-mtls-dialect=gnu2" in " ".join(build.flags(build.compiler()))))
        """)
    env = dict(os.environ, OMP_NUM_THREADS="3", TDSL_CACHE_DIR=str(tmp_path / "cache"))
    wrong, gnu2 = map(int, subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                          check=True, timeout=600).stdout.split())
    assert not gnu2, "C modules must not be built with -mtls-dialect=gnu2 (docs/decisions.md)"
    assert wrong == 0, f"rand was wrong in {wrong} of 60 loaded copies"
