"""Call-time argument checks and conversions (LANGUAGE.md section 8), on every target."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, run

SRC = """
fn add(x: f32[n], y: f32[n]) -> f32[n] { return x + y }
fn mat(x: f64[n, m]) { return x * 2.0 + 1.0 }
fn sq(x: f64[n, n]) { return x.T }
fn fixed(x: f32[3], y: i32[2, n]) { return sum(x), y }
fn scalars(a: f64, b: i64, c: f32, d: i32, e: bool) { return a + b, c * d, e }
fn ints(x: i32[n]) { return x }
fn longs(x: i64[n]) { return x + 1 }
fn flags(x: bool[n]) { return not x }
fn tail(x: f64[n]) { return x[2:] }
fn pair(x: f64[n], y: f64[m]) { return x[-1] + y[1:], y[0] }
fn identity(x: f64[n, m]) { return x }
fn views(x: f64[n, m]) { return x.T, reshape(x, (-1,)), broadcast_to(x[0], (3, m)), x[:, ::-1] }
fn reduced(x: f64[n]) { return sum(x), argmax(x), mean(x) > 0 }
fn consts() { return [1.0, 2.0], 3 }
fn sized(x: f64[n]) { return zeros(n - 2), arange(n - 2), eye(n - 2), one_hot(arange(2), n - 2) }
fn many(x: f64[n], w: f64[n, k]) { a = exp(x); b = a @ w; return b + 1.0, sort_of(b) }
fn sort_of(b: f64[k]) { return b[::-1] }
"""


def fn(name, target):
    return getattr(compiled(SRC, target), name)


F32 = np.float32


# -- argument count -------------------------------------------------------------------------

def test_argument_count_lists_the_signature(target):
    add = fn("add", target)
    x = np.ones(3, dtype=F32)
    with pytest.raises(tdsl.TdslArgumentError) as err:
        add(x)
    assert "'y'" in str(err.value) and "add(x: f32[n], y: f32[n]) -> f32[n]" in str(err.value)
    with pytest.raises(tdsl.TdslArgumentError) as err:
        add(x, x, x)
    assert "3" in str(err.value) and "add(x: f32[n], y: f32[n]) -> f32[n]" in str(err.value)
    with pytest.raises(tdsl.TdslArgumentError, match="signature"):
        add(x, z=x)
    with pytest.raises(tdsl.TdslArgumentError, match="'x'"):
        add(x, x, x=x)
    with pytest.raises(tdsl.TdslArgumentError, match="signature"):
        fn("consts", target)(1)


def test_keyword_arguments(target):
    x, y = np.array([1, 2], dtype=F32), np.array([10, 20], dtype=F32)
    assert_same(fn("add", target)(y=y, x=x), x + y)
    assert_same(fn("add", target)(x, y=y), x + y)


# -- dtypes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.uint32, np.complex64])
def test_unsafe_dtype_is_refused_with_an_astype_hint(target, dtype):
    x = np.ones(3, dtype=F32)
    with pytest.raises(tdsl.TdslArgumentError) as err:
        fn("add", target)(x, np.ones(3, dtype=dtype))
    e = err.value
    assert "'y'" in e.message and "f32" in e.message and np.dtype(dtype).name in e.message
    assert e.hint and ".astype(" in e.hint and "float32" in e.hint


@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.int16, np.uint8, np.uint16, np.bool_])
def test_safe_casts_are_accepted(target, dtype):
    y = np.array([1, 0, 1], dtype=dtype)
    x = np.array([0.5, 1.5, 2.5], dtype=F32)
    assert_same(run(SRC, "add", target, x, y), x + y.astype(F32))


def test_safe_casts_to_integers_and_wider_floats(target):
    assert_same(run(SRC, "ints", target, np.array([1, -2], dtype=np.int16)), np.array([1, -2], dtype=np.int32))
    assert_same(run(SRC, "longs", target, np.array([1, 2], dtype=np.uint32)), np.array([2, 3]))
    assert_same(run(SRC, "longs", target, np.array([True, False])), np.array([2, 1]))
    assert_same(run(SRC, "mat", target, np.ones((1, 2), dtype=F32)), np.full((1, 2), 3.0))
    assert_same(run(SRC, "mat", target, np.ones((1, 2), dtype=np.int32)), np.full((1, 2), 3.0))
    with pytest.raises(tdsl.TdslArgumentError, match="astype"):
        fn("ints", target)(np.array([1], dtype=np.int64))
    with pytest.raises(tdsl.TdslArgumentError, match="astype"):
        fn("longs", target)(np.array([1], dtype=np.uint64))
    with pytest.raises(tdsl.TdslArgumentError, match="astype"):
        fn("flags", target)(np.array([1], dtype=np.int8))


def test_numpy_scalars_are_strong(target):
    scalars = fn("scalars", target)
    got = scalars(np.float32(1.5), np.int32(2), np.float16(2.0), np.int8(3), np.bool_(True))
    assert_same(got, (np.float64(3.5), np.float64(6.0), np.bool_(True)))
    with pytest.raises(tdsl.TdslArgumentError, match="'c'"):
        scalars(1.0, 2, np.float64(2.0), 3, True)
    with pytest.raises(tdsl.TdslArgumentError, match="'b'"):
        scalars(1.0, np.float64(2.0), 2.0, 3, True)


# -- Python scalars and lists are weak --------------------------------------------------------

def test_python_scalars_are_weak(target):
    got = run(SRC, "scalars", target, 1.5, 2, 2.0, 3, True)
    assert_same(got, (np.float64(3.5), np.float64(6.0), np.bool_(True)))
    got = run(SRC, "scalars", target, 1, 2, 2, 3, False)  # ints go to float parameters
    assert_same(got, (np.float64(3.0), np.float64(6.0), np.bool_(False)))


def test_python_lists_are_weak(target):
    assert_same(run(SRC, "add", target, [1.0, 2.0], [1, 2]), np.array([2.0, 4.0], dtype=F32))
    assert_same(run(SRC, "mat", target, [[1, 2], [3, 4]]), np.array([[3.0, 5.0], [7.0, 9.0]]))
    assert_same(run(SRC, "ints", target, [1, -2, 2**31 - 1]), np.array([1, -2, 2**31 - 1], dtype=np.int32))
    assert_same(run(SRC, "flags", target, [True, False]), np.array([False, True]))
    assert_same(run(SRC, "ints", target, []), np.zeros(0, dtype=np.int32))


@pytest.mark.parametrize("name,args,param", [
    ("ints", ([1.5, 2.0],), "'x'"),
    ("scalars", (1.0, 2.5, 1.0, 1, True), "'b'"),
    ("scalars", (1.0, 2, 1.0, 1.0, True), "'d'"),
    ("scalars", (1.0, 2, 1.0, 1, 1), "'e'"),
    ("flags", ([0, 1],), "'x'"),
    ("ints", ([2**31],), "'x'"),
    ("ints", ([-2**31 - 1],), "'x'"),
    ("longs", ([2**64],), "'x'"),
    ("mat", ([[1.0], [2.0, 3.0]],), "'x'"),
    ("mat", ("text",), "'x'"),
    ("mat", (None,), "'x'"),
    ("mat", ({"a": 1},), "'x'"),
])
def test_python_values_that_do_not_fit_are_refused(target, name, args, param):
    with pytest.raises(tdsl.TdslArgumentError) as err:
        fn(name, target)(*args)
    assert param in err.value.message


# -- rank and size variables -------------------------------------------------------------------

def test_rank_is_checked(target):
    with pytest.raises(tdsl.TdslArgumentError) as err:
        fn("mat", target)(np.ones(3))
    assert "'x'" in err.value.message and "rank 2" in err.value.message
    with pytest.raises(tdsl.TdslArgumentError, match="'a'"):
        fn("scalars", target)(np.ones(2), 1, 1.0, 1, True)
    with pytest.raises(tdsl.TdslArgumentError, match="rank"):
        fn("add", target)(np.float32(1), np.float32(2))


def test_size_variable_consistency(target):
    with pytest.raises(tdsl.TdslArgumentError) as err:
        fn("add", target)(np.ones(5, dtype=F32), np.ones(4, dtype=F32))
    assert "n = 5 from x, but y has 4" in err.value.message
    with pytest.raises(tdsl.TdslArgumentError) as err:
        fn("sq", target)(np.ones((2, 3)))
    assert "n = 2 from x, but x has 3" in err.value.message


def test_literal_sizes_are_checked(target):
    fixed = fn("fixed", target)
    assert_same(fixed(np.ones(3, dtype=F32), np.ones((2, 4), dtype=np.int32)),
                (np.float32(3), np.ones((2, 4), dtype=np.int32)))
    with pytest.raises(tdsl.TdslArgumentError) as err:
        fixed(np.ones(4, dtype=F32), np.ones((2, 4), dtype=np.int32))
    assert "'x'" in err.value.message and "3" in err.value.message
    with pytest.raises(tdsl.TdslArgumentError, match="'y'"):
        fixed(np.ones(3, dtype=F32), np.ones((3, 4), dtype=np.int32))


def test_zero_sizes_are_fine(target):
    assert_same(run(SRC, "mat", target, np.zeros((0, 3))), np.zeros((0, 3)))
    assert_same(run(SRC, "add", target, np.zeros(0, dtype=F32), np.zeros(0, dtype=F32)), np.zeros(0, dtype=F32))


def test_call_time_slice_check_names_the_parameter(target):
    tail = fn("tail", target)
    assert_same(tail(np.arange(3.0)), np.array([2.0]))
    assert_same(tail(np.arange(2.0)), np.zeros(0))
    with pytest.raises(tdsl.TdslArgumentError) as err:
        tail(np.arange(1.0))
    e = err.value
    assert "n = 1 from x" in e.message
    assert e.loc is not None and e.loc.line == 10 and e.loc.source_line.strip().startswith("fn tail")
    assert_same(fn("pair", target)(np.ones(2), np.ones(1)), (np.zeros(0), np.float64(1)))
    with pytest.raises(tdsl.TdslArgumentError, match="m = 0 from y"):
        fn("pair", target)(np.ones(2), np.ones(0))
    with pytest.raises(tdsl.TdslArgumentError, match="n = 0 from x"):
        fn("pair", target)(np.ones(0), np.ones(3))


def test_sizes_computed_from_size_variables_must_not_be_negative(target):
    sized = fn("sized", target)
    assert_same(sized(np.ones(2)), (np.zeros(0), np.arange(0), np.eye(0), np.zeros((2, 0))))
    assert_same(sized(np.ones(4)), (np.zeros(2), np.arange(2), np.eye(2), np.eye(2)))
    with pytest.raises(tdsl.TdslArgumentError, match="n - 2.*n = 1 from x") as err:
        sized(np.ones(1))
    assert err.value.loc is not None


# -- layouts --------------------------------------------------------------------------------------

def test_non_contiguous_inputs_are_accepted(target):
    base = np.arange(24.0).reshape(4, 6)
    for x in (base.T, base[:, ::-1], base[::-1, ::2], base[1::2, 1:5], np.asfortranarray(base),
              np.broadcast_to(np.arange(3.0), (2, 3))):
        assert_same(run(SRC, "mat", target, x), x * 2.0 + 1.0)
        assert_same(run(SRC, "views", target, x),
                    (x.T, x.reshape(-1), np.broadcast_to(x[0], (3, x.shape[1])), x[:, ::-1]))
    strided = np.arange(10, dtype=F32)[::-3]
    assert_same(run(SRC, "add", target, strided, strided), strided * 2)


def test_misaligned_and_big_endian_inputs(target):
    raw = np.zeros(8 * 6 + 1, dtype=np.uint8)[1:].view(np.float64).reshape(2, 3)
    raw[...] = np.arange(6.0).reshape(2, 3)
    assert_same(run(SRC, "mat", target, raw), raw * 2.0 + 1.0)
    big = np.arange(6.0).reshape(2, 3).astype(">f8")
    assert_same(run(SRC, "mat", target, big), np.arange(6.0).reshape(2, 3) * 2.0 + 1.0)


def test_inputs_are_never_modified(target):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(4), rng.standard_normal((4, 3))
    saved = (x.copy(), w.copy())
    for name, args in (("many", (x, w)), ("identity", (w,)), ("views", (w,)), ("mat", (w,)),
                       ("reduced", (x,)), ("tail", (x,))):
        out = fn(name, target)(*args)
        for o in (out if isinstance(out, tuple) else (out,)):
            if isinstance(o, np.ndarray):
                o[...] = -1  # writing into a result must not reach the inputs
    np.testing.assert_array_equal(x, saved[0])
    np.testing.assert_array_equal(w, saved[1])
    readonly = np.arange(6.0).reshape(2, 3)
    readonly.flags.writeable = False
    assert_same(fn("mat", target)(readonly), readonly * 2.0 + 1.0)


# -- results -----------------------------------------------------------------------------------------

def test_rank_0_results_are_numpy_scalars(target):
    s, i, b = fn("reduced", target)(np.array([1.0, 3.0, 2.0]))
    assert type(s) is np.float64 and s == 6.0
    assert type(i) is np.int64 and i == 1
    assert type(b) is np.bool_ and b
    sc = fn("scalars", target)(1.0, 2, 2.0, 3, True)
    assert [type(v) for v in sc] == [np.float64, np.float64, np.bool_]  # f32 * i32 is f64
    _, three = fn("consts", target)()
    assert type(three) is np.int64 and three == 3


def test_array_results_are_new_c_contiguous_arrays(target):
    x = np.arange(6.0).reshape(2, 3)
    out = fn("identity", target)(x)
    assert out is not x and not np.shares_memory(out, x)
    assert out.flags.c_contiguous and out.flags.writeable
    for o in fn("views", target)(np.asfortranarray(x)):
        assert type(o) is np.ndarray and o.flags.c_contiguous and o.flags.writeable
        assert not np.shares_memory(o, x)
    first, _ = fn("consts", target)()
    first[0] = 99.0
    again, _ = fn("consts", target)()
    assert_same(again, np.array([1.0, 2.0]))


def test_argument_errors_are_tdsl_errors(target):
    with pytest.raises(tdsl.TdslError):
        fn("add", target)(np.ones(2), np.ones(2))
    with pytest.raises(tdsl.TdslError):
        fn("add", target)()


def test_trace_checks_arguments_like_a_call():
    f = compiled(SRC, "numpy").add
    with pytest.raises(tdsl.TdslArgumentError, match="n = 2 from x, but y has 3"):
        f.trace(np.ones(2, dtype=F32), np.ones(3, dtype=F32))
    t = f.trace([1.0, 2.0], np.array([3, 4], dtype=np.int16))
    assert_same(t["y"], np.array([3.0, 4.0], dtype=F32))
    assert_same(t["return"], np.array([4.0, 6.0], dtype=F32))
