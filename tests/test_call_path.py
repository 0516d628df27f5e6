"""The call path of compiled functions: the fast path (codegen/fastcall.py), `out=` buffers, and
warm loads (codegen/warm.py) that skip parsing and compiling in a fresh process.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled, require_target

SRC = """
fn add(a: f64, b: f64) -> f64 { return a + b }
fn mixed(x: f32[n, 3], k: i32, s: f32, on: bool) -> (f32[n], i64, bool) { return sum(x, 1) * s + f32(k), argmax(x), not on }
fn tail(x: f64[n]) { return x[2:] * 2.0, zeros(n - 2) }
fn scale(x: f64[n], out: f64) -> f64[n] { return x * out }
fn pick(x: f64[n], i: i64[k]) -> f64[k] { return take(x, i) }
"""


def both(name, *args, **kwargs):
    """The c target's answer, checked against the reference."""
    got = getattr(compiled(SRC, "c"), name)(*args, **kwargs)
    assert_same(got, getattr(compiled(SRC, "numpy"), name)(*args, **kwargs))
    return got


@pytest.fixture(autouse=True)
def _c():
    require_target("c")


def test_the_fast_path_exists_and_gives_numpy_scalars():
    f = compiled(SRC, "c").add
    assert f._call is not f._checked_call and "cfunc(" in f._call.source
    assert type(both("add", 1.0, 2.0)) is np.float64
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    total, at, flag = both("mixed", x, 3, 0.5, True)
    assert type(at) is np.int64 and type(flag) is np.bool_


def test_values_the_fast_path_declines_take_the_checked_path():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    both("mixed", x.astype(np.float16), 3, 0.5, True)       # a safe cast
    both("mixed", np.asfortranarray(x), np.int32(3), np.float32(0.5), np.bool_(True))
    both("mixed", x[::2], 3, 0.5, False)                     # not contiguous
    both("mixed", x.tolist(), 3, 1, True)                    # lists, an int for a float
    both("add", 1, True)
    with pytest.raises(tdsl.TdslArgumentError, match="'k'"):
        compiled(SRC, "c").mixed(x, 2**31, 0.5, True)        # out of i32's range
    with pytest.raises(tdsl.TdslArgumentError, match="'x'"):
        compiled(SRC, "c").mixed(np.ones((4, 2), np.float32), 1, 0.5, True)
    with pytest.raises(tdsl.TdslArgumentError, match="n = 1 from x"):
        compiled(SRC, "c").tail(np.ones(1))                  # a call-time slice check
    both("tail", np.arange(5.0))


def test_runtime_errors_on_the_fast_path():
    with pytest.raises(tdsl.TdslRuntimeError, match="length 3"):
        compiled(SRC, "c").pick(np.arange(3.0), np.array([0, 3]))


def test_out_receives_the_results():
    f = compiled(SRC, "c").tail
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


def test_a_parameter_named_out_is_a_parameter():
    assert_same(both("scale", np.arange(3.0), out=2.0), np.arange(3.0) * 2.0)


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
    for entry in tmp_path.glob("warm-*.pkl"):
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
