"""The call path of compiled functions: the fast path (codegen/fastcall.py and its C layer,
codegen/_callpath.c), `out=` buffers, and warm loads (codegen/warm.py) that skip parsing
and compiling in a fresh process.

The fast-path tests run once per layer: `native` (the C extension declining to the Python
layer) and `python` (the Python layer alone, as where the extension was not built).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import tdsl
from conftest import IN_CI, assert_same, compiled, require_target
from tdsl.codegen import fastcall

SRC = """
fn add(a: f64, b: f64) -> f64 { return a + b }
fn mixed(x: f32[n, 3], k: i32, s: f32, on: bool) -> (f32[n], i64, bool) { return sum(x, 1) * s + f32(k), argmax(x), not on }
fn tail(x: f64[n]) { return x[2:] * 2.0, zeros(n - 2) }
fn scale(x: f64[n], out: f64) -> f64[n] { return x * out }
fn pick(x: f64[n], i: i64[k]) -> f64[k] { return take(x, i) }
"""


_LAYERS: dict = {}


@pytest.fixture(autouse=True)
def _c():
    require_target("c")


@pytest.fixture(params=["native", "python"])
def layer(request, monkeypatch):
    """Compile with the C layer of the fast path (`native`) or without it (`python`)."""
    if request.param == "native" and fastcall.native is None:
        reason = "the _callpath extension is not built (pip install -e . builds it)"
        if IN_CI:
            pytest.fail(f"the native call path must run in CI: {reason}")
        pytest.skip(reason)
    if request.param == "python":
        monkeypatch.setattr(fastcall, "native", None)
    return request.param


def c_module(layer: str, source: str = SRC):
    key = (layer, source)
    if key not in _LAYERS:
        _LAYERS[key] = tdsl.compile(source, target="c")
    return _LAYERS[key]


def both(layer, name, *args, **kwargs):
    """The c target's answer on `layer`, checked against the reference."""
    got = getattr(c_module(layer), name)(*args, **kwargs)
    assert_same(got, getattr(compiled(SRC, "numpy"), name)(*args, **kwargs))
    return got


def test_the_fast_path_exists_and_gives_numpy_scalars(layer):
    f = c_module(layer).add
    assert f._call is not f._checked_call
    if layer == "native":
        assert type(f._call).__name__ == "FastCall"
    else:
        assert "cfunc(" in f._call.source
    assert type(both(layer, "add", 1.0, 2.0)) is np.float64
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    total, at, flag = both(layer, "mixed", x, 3, 0.5, True)
    assert type(total) is np.ndarray and type(at) is np.int64 and type(flag) is np.bool_
    assert type(both(layer, "add", np.float64(1.5), 2)) is np.float64


def test_the_native_layer_is_there_in_ci():
    if IN_CI:
        assert fastcall.native is not None, "pip install -e . must build tdsl.codegen._callpath"


def test_results_are_fresh_unless_the_caller_dropped_them(layer):
    f = c_module(layer, "fn twice(x: f64[n]) -> f64[n] { return x * 2.0 }").twice
    x = np.arange(200_000.0)                 # 1.6 MB results: recycled once dropped
    kept = f(x)
    again = f(x)
    assert again is not kept and again.base is None
    assert_same(kept, x * 2.0)
    kept[:] = -1.0                           # the caller owns it: the next call never touches it
    view = again[10:]                        # a view keeps `again` in use
    del again
    third = f(x + 1.0)
    assert_same(view, (x * 2.0)[10:]) and assert_same(third, (x + 1.0) * 2.0)
    assert (kept == -1.0).all()
    ident = id(third)
    del third
    assert id(f(x)) == ident                 # dropped: its buffer is the next result
    small = f(np.arange(3.0))
    assert f(np.arange(3.0)) is not small


def test_results_alive_at_once_are_each_recycled(layer):
    """Up to four dropped results are kept (the chunks of a Dask computation live at once); a
    result over 64 MiB keeps one; a dropped result of another shape is let go."""
    f = c_module(layer, "fn twice(x: f64[n]) -> f64[n] { return x * 2.0 }").twice
    x = np.arange(200_000.0)
    batch = [f(x + k) for k in range(6)]
    idents = {id(a) for a in batch[-4:]}      # the four latest are kept (the older were let go)
    del batch
    again = [f(x - k) for k in range(4)]
    assert {id(a) for a in again} == idents
    for k, a in enumerate(again):
        assert_same(a, (x - k) * 2.0)
    held = again[0]
    del again
    other = f(np.arange(100_000.0))           # another shape: no kept array fits (they are let go)
    assert_same(other, np.arange(100_000.0) * 2.0)
    assert_same(held, x * 2.0)
    assert f(x) is not held                    # the caller holds it: never handed out again
    big = np.zeros(9_000_000)                  # 72 MB results: one spare, never two
    first, second = f(big), f(big)
    alive = [weakref.ref(first), weakref.ref(second)]
    del first, second
    assert sum(r() is not None for r in alive) == 1   # one is kept, the other let go
    ident = next(id(r()) for r in alive if r() is not None)   # (alive in its slot: the id stays its own)
    assert id(f(big)) == ident


@pytest.mark.slow
def test_calls_from_threads_agree(layer):
    from concurrent.futures import ThreadPoolExecutor
    f = c_module(layer, "fn w(x: f64[n], s: f64) -> f64[n] { return exp(-x) * s }").w
    xs = [np.linspace(0, k, 300_000) for k in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: f(xs[k], float(k)), range(8)))
    for k, g in enumerate(got):
        assert_same(g, np.exp(-xs[k]) * k)


def test_values_the_fast_path_declines_take_the_checked_path(layer):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    m = c_module(layer)
    both(layer, "mixed", x.astype(np.float16), 3, 0.5, True)       # a safe cast
    both(layer, "mixed", np.asfortranarray(x), np.int32(3), np.float32(0.5), np.bool_(True))
    both(layer, "mixed", x[::2], 3, 0.5, False)                     # not contiguous
    both(layer, "mixed", x.tolist(), 3, 1, True)                    # lists, an int for a float
    both(layer, "mixed", x.view(x.dtype.newbyteorder()).byteswap(), 3, 0.5, True)   # big-endian
    both(layer, "mixed", np.ma.masked_array(x), 3, 0.5, True)       # an ndarray subclass
    both(layer, "mixed", x, k=3, s=0.5, on=True)                    # keywords
    both(layer, "add", 1, True)
    both(layer, "add", 2**70, 1.0)                                  # a big int for a float
    with pytest.raises(tdsl.TdslArgumentError, match="'k'"):
        m.mixed(x, 2**31, 0.5, True)                                # out of i32's range
    with pytest.raises(tdsl.TdslArgumentError, match="'k'"):
        m.mixed(x, -2**31 - 1, 0.5, True)
    with pytest.raises(tdsl.TdslArgumentError, match="argument 'k' of mixed.. has values outside the range"):
        m.mixed(x, 2**70, 0.5, True)                                # beyond i64: no NumPy integer holds it
    with pytest.raises(tdsl.TdslArgumentError, match="'x'"):
        m.mixed(np.ones((4, 2), np.float32), 1, 0.5, True)
    with pytest.raises(tdsl.TdslArgumentError, match="n = 1 from x"):
        m.tail(np.ones(1))                                          # a call-time slice check
    with pytest.raises(tdsl.TdslArgumentError):
        m.add(1.0)
    with pytest.raises(tdsl.TdslArgumentError):
        m.add(1.0, 2.0, 3.0)
    with pytest.raises(tdsl.TdslArgumentError):
        m.add(1.0, "2")
    both(layer, "tail", np.arange(5.0))
    assert_same(m.mixed(x, np.int32(-2**31), np.float32(0.5), True)[0], x.sum(1) * 0.5 + np.float32(-2**31))


def test_runtime_errors_on_the_fast_path(layer):
    m = c_module(layer)
    with pytest.raises(tdsl.TdslRuntimeError, match="length 3"):
        m.pick(np.arange(3.0), np.array([0, 3]))
    assert_same(m.pick(np.arange(3.0), np.array([2, -3])), np.array([2.0, 0.0]))
    f = c_module(layer, "fn top(x: f64[n]) -> f64 { return max(x) }").top
    with pytest.raises(tdsl.TdslRuntimeError, match="max over axis 0 of length 0 has no identity"):
        f(np.zeros(0))
    assert f(np.array([1.0, np.nan])) != f(np.array([1.0, np.nan]))


def test_out_receives_the_results(layer):
    f = c_module(layer).tail
    x = np.arange(6.0)
    a, b = np.full(4, 7.0), np.full(4, 7.0)
    got = f(x, out=(a, b))
    assert got[0] is a and got[1] is b
    assert_same(got, (x[2:] * 2.0, np.zeros(4)))
    with pytest.raises(tdsl.TdslArgumentError, match="out="):
        f(x, out=(a,))
    with pytest.raises(tdsl.TdslArgumentError, match="shape"):
        f(x, out=(a, np.zeros(3)))
    with pytest.raises(tdsl.TdslArgumentError, match="must be f64 of shape .4,., got float32"):
        f(x, out=(a, np.zeros(4, np.float32)))


def test_out_may_be_an_input():
    f = compiled("fn f(x: f64[n, n]) -> f64[n, n] { return x.T + 1.0 }", "c").f
    x = np.arange(9.0).reshape(3, 3)
    expected = x.T + 1.0
    assert f(x, out=x) is x
    assert_same(x, expected)


def test_a_parameter_named_out_is_a_parameter(layer):
    assert_same(both(layer, "scale", np.arange(3.0), out=2.0), np.arange(3.0) * 2.0)
    assert_same(both(layer, "scale", np.arange(3.0), 2.0), np.arange(3.0) * 2.0)


# -- warm loads ----------------------------------------------------------------------------------

def run(code: str, cache) -> str:
    env = dict(os.environ, TDSL_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, check=True, timeout=600).stdout


WARM = """
    import sys, numpy as np, tdsl
    m = tdsl.compile({src!r}, filename="warm.tdsl")
    print("lark" in sys.modules, "jinja2" in sys.modules)
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    print(m.mixed(x, 2, 0.5, True), m.add(1.0, 2.0), m.tail.source.count("tail"))
    """


def test_a_warm_load_skips_parsing_and_gives_the_same_functions(tmp_path):
    cold = run(WARM.format(src=SRC), tmp_path).splitlines()
    warm = run(WARM.format(src=SRC), tmp_path).splitlines()
    assert cold[0] == "True True" and warm[0] == "False False"
    assert cold[1:] == warm[1:]


def test_a_damaged_warm_entry_is_ignored(tmp_path):
    run(WARM.format(src=SRC), tmp_path)
    entries = list(tmp_path.glob("warm-*"))
    assert entries   # (whatever its format and suffix)
    for entry in entries:
        entry.write_bytes(b"garbage")
    assert run(WARM.format(src=SRC), tmp_path).splitlines()[0] == "True True"


def test_errors_after_a_warm_load_keep_their_locations(tmp_path):
    code = """
        import numpy as np, tdsl
        m = tdsl.compile({src!r}, filename="warm.tdsl")
        try:
            m.pick(np.arange(3.0), np.array([5]))
        except tdsl.TdslRuntimeError as err:
            print(err.loc.line, "length 3" in str(err))
        """.format(src=SRC)
    assert run(code, tmp_path) == run(code, tmp_path) == "6 True\n"


def test_signatures_beyond_the_native_limits_take_the_python_layer():
    """More than 64 arguments or a rank above 32: the Python layer, same results."""
    dims = ", ".join(f"d{i}" for i in range(33))
    m = tdsl.compile(f"fn f(x: f64[{dims}]) -> f64[{dims}] {{ return x + 1.0 }}\n"
                     f"fn g({', '.join(f'a{i}: f64' for i in range(70))}) -> f64 {{ return a0 + a69 }}")
    assert type(m.f._call).__name__ != "FastCall" and type(m.g._call).__name__ != "FastCall"
    x = np.arange(2.0).reshape((2,) + (1,) * 32)
    assert_same(m.f(x), x + 1.0)
    assert m.g(*[1.5] * 70) == 3.0


def test_a_dropped_module_is_collected(layer):
    """Function -> its fast call -> the Python layer's globals -> Function is a cycle: the collector frees it."""
    import gc
    import weakref
    m = tdsl.compile("fn twice(x: f64[n]) -> f64[n] { return x * 2.0 }\nfn add(a: f64, b: f64) -> f64 { return a + b }")
    assert_same(m.twice(np.arange(300_000.0)), np.arange(300_000.0) * 2.0)   # leaves a recycled result
    assert m.add(1.0, 2.0) == 3.0
    refs = [weakref.ref(m.twice), weakref.ref(m.add), weakref.ref(m)]
    del m
    gc.collect()
    assert all(r() is None for r in refs)
