"""The Python builder API (LANGUAGE.md section 8): symbolic values, tdsl.<builtin>,
tdsl.function, and the printed form of a graph, which parses back to the same graph."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import tdsl
from conftest import assert_same, require_target
from tdsl.builtins import BUILDERS
from tdsl.dims import Dim
from tdsl.pipeline import check_source
from tdsl.printer import to_tdsl

SECTION_7 = """abs sign sqrt rsqrt square reciprocal exp exp2 expm1 log log2 log10 log1p sin cos tan asin acos
atan sinh cosh tanh sigmoid relu softplus erf floor ceil round isnan isinf isfinite minimum maximum atan2
pow where clip f32 f64 i32 i64 bool sum mean prod max min argmax argmin any all var std logsumexp softmax
log_softmax matmul dot outer transpose reshape expand_dims squeeze broadcast_to concat stack flip zeros
ones full zeros_like ones_like arange eye one_hot take""".split()


def here() -> int:
    """The line number of the caller."""
    return sys._getframe(1).f_lineno


# -- symbolic values ---------------------------------------------------------------------------

def test_scalar_and_tensor():
    a = tdsl.scalar("a")
    assert a.dtype == "f64" and a.shape == () and a.ndim == 0
    assert "f64" in repr(a) and "()" in repr(a)
    x = tdsl.tensor("x", "f32", ("n", "k"))
    assert x.shape == ("n", "k") and x.dtype == "f32" and x.ndim == 2
    assert "f32" in repr(x) and "(n, k)" in repr(x)
    v = tdsl.tensor("v", "i32", ("n", 3))
    assert v.shape == ("n", 3)
    assert tdsl.tensor("w", "bool", "m").shape == ("m",)
    assert tdsl.scalar("s", "i64").dtype == "i64"
    assert tdsl.tensor("z", np.float32, (np.int64(2), "n")).shape == (2, "n")
    for bad in [("n * k",), (-1,), (True,), (1.5,)]:
        with pytest.raises(tdsl.TdslTypeError):
            tdsl.tensor("x", "f32", bad)
    assert tdsl.zeros((np.int64(2), "n")).shape == (2, "n")


def test_operators_infer_dtype_and_symbolic_shape():
    a, b = tdsl.scalar("a"), tdsl.scalar("b")
    c = a + b
    assert c.dtype == "f64" and c.shape == ()
    assert "f64, ()" in repr(c)
    x = tdsl.tensor("x", "f32", ("n", "k"))
    xi = tdsl.tensor("xi", "i32", ("n",))
    assert (x * 2.0).dtype == "f32"  # a Python float is weak
    assert (2 * x).dtype == "f32" and (1 - x).dtype == "f32"
    assert (x * np.float64(2.0)).dtype == "f64"  # a NumPy scalar is strong
    assert (x + np.ones(1)).dtype == "f64"
    assert (xi + 1).dtype == "i32" and (xi + 1.5).dtype == "f64" and (xi / xi).dtype == "f64"
    assert (xi // 2).dtype == "i32" and (xi % 3).dtype == "i32" and (xi ** 2).dtype == "i32"
    assert (x + a).dtype == "f64"  # a typed scalar parameter is strong
    assert (x > 0).dtype == "bool" and (x == x).dtype == "bool" and (x != 1).dtype == "bool"
    assert ((x > 0) & (x < 1)).dtype == "bool" and (~(x > 0) | (x < 1)).dtype == "bool"
    assert (-x).shape == ("n", "k") and abs(x).dtype == "f32"
    assert (x @ x.T).shape == ("n", "n")
    assert x.T.shape == ("k", "n")
    assert x[1:].shape == ("n - 1", "k")
    assert x[0].shape == ("k",) and x[:, None, 0].shape == ("n", 1)
    assert x[..., ::-1].shape == ("n", "k")
    assert x[xi].shape == ("n", "k")
    assert tdsl.reshape(x, (-1,)).shape == (str(Dim.of("n") * Dim.of("k")),)
    assert tdsl.concat((x, x[1:])).shape == ("2 * n - 1", "k")


def test_every_builtin_is_tdsl_dot_name():
    for name in SECTION_7:
        assert callable(getattr(tdsl, name)), name
        assert name in BUILDERS
    assert "grad" in dir(tdsl) or callable(tdsl.grad)
    with pytest.raises(AttributeError):
        tdsl.no_such_builtin  # noqa: B018


def test_builtins_build_vars():
    x = tdsl.tensor("x", "f32", ("n", "k"))
    labels = tdsl.tensor("labels", "i64", ("n",))
    assert tdsl.exp(x).dtype == "f32"
    assert tdsl.sum(x, axis=1).shape == ("n",)
    assert tdsl.mean(x, axis=(0, 1), keepdims=True).shape == (1, 1)
    assert tdsl.argmax(x, 1).dtype == "i64"
    assert tdsl.where(x > 0, x, 0.0).dtype == "f32"
    assert tdsl.clip(x, 0, 1).dtype == "f32"
    assert tdsl.f64(x).dtype == "f64"
    assert tdsl.zeros(("n", 3), dtype="f32").shape == ("n", 3)
    assert tdsl.zeros(4).dtype == "f64"
    assert tdsl.one_hot(labels, 5).shape == ("n", 5)
    assert tdsl.take(x, labels, axis=0).shape == ("n", "k")
    assert tdsl.stack((x, x), axis=-1).shape == ("n", "k", 2)
    assert tdsl.softmax(x).shape == ("n", "k")
    assert tdsl.matmul(x, tdsl.tensor("w", "f32", ("k",))).shape == ("n",)
    assert tdsl.exp([1.0, 2.0]).shape == (2,)
    assert tdsl.eye("n", dtype=np.float32).dtype == "f32"


def test_api_errors_point_at_the_users_line():
    x = tdsl.tensor("x", "f32", ("n",))
    y = tdsl.tensor("y", "f32", ("m",))
    with pytest.raises(tdsl.TdslTypeError) as err:
        line = here(); x + y  # noqa: B018, E702
    assert err.value.loc.file == __file__ and err.value.loc.line == line
    assert "n" in err.value.message and "m" in err.value.message
    with pytest.raises(tdsl.TdslTypeError) as err:
        line = here(); tdsl.sum(x, axis=3)  # noqa: E702
    assert err.value.loc.line == line
    with pytest.raises(tdsl.TdslTypeError, match="bool"):
        (x > 0) + 1
    with pytest.raises(tdsl.TdslError):
        bool(x > 0)
    with pytest.raises(tdsl.TdslTypeError):
        tdsl.tensor("x", "f16", ("n",))
    with pytest.raises(tdsl.TdslTypeError):
        tdsl.tensor("not a name", "f32", ())


# -- tdsl.function ------------------------------------------------------------------------------

def test_seed_workflow(target):
    a = tdsl.scalar("a")
    b = tdsl.scalar("b")
    f = tdsl.function([a, b], a + b, target=target)
    assert f(1, 2) == 3.0
    assert type(f(1, 2)) is np.float64
    assert f.signature == "f(a: f64, b: f64) -> f64"


def test_function_uses_the_c_target_by_default():
    require_target("c")
    a = tdsl.scalar("a")
    b = tdsl.scalar("b")
    f = tdsl.function([a, b], a + b)
    assert f.target == "c"
    assert f(1, 2) == 3.0


def test_function_runs_like_numpy(target):
    x = tdsl.tensor("x", "f32", ("n", "k"))
    w = tdsl.tensor("w", "f32", ("k",))
    lr = tdsl.scalar("lr", "f32")
    z = (x @ w).named("z")
    p = tdsl.sigmoid(z)
    f = tdsl.function([x, w, lr], (p, w - lr * tdsl.mean(x, axis=0)), target=target, name="step")
    assert f.signature == "step(x: f32[n, k], w: f32[k], lr: f32) -> (f32[n], f32[k])"
    xv = np.arange(6, dtype=np.float32).reshape(3, 2) / 6
    wv = np.array([0.5, -1.0], dtype=np.float32)
    got = f(xv, wv, 0.1)
    assert_same(got, (1 / (1 + np.exp(-(xv @ wv))), wv - np.float32(0.1) * np.mean(xv, axis=0)))
    with pytest.raises(tdsl.TdslArgumentError, match="k = 2 from x, but w has 3"):
        f(xv, np.ones(3, dtype=np.float32), 0.1)


def test_function_inputs_must_cover_the_graph():
    a, b = tdsl.scalar("a"), tdsl.scalar("b")
    with pytest.raises(tdsl.TdslTypeError, match="'b'"):
        tdsl.function([a], a + b, target="numpy")
    with pytest.raises(tdsl.TdslTypeError):
        tdsl.function([a, a], a, target="numpy")
    with pytest.raises(tdsl.TdslTypeError):
        tdsl.function([a + b], a, target="numpy")
    x = tdsl.tensor("x", "f32", ("n",))
    with pytest.raises(tdsl.TdslTypeError, match="'m'"):
        tdsl.function([x], tdsl.zeros("m", dtype="f32"), target="numpy")


def test_signature_explain_trace():
    x = tdsl.tensor("x", "f32", ("n", "k"))
    h = (x * 2).named("h")
    f = tdsl.function([x], tdsl.sum(h, axis=0), target="numpy", name="g")
    assert f.signature == "g(x: f32[n, k]) -> f32[k]"
    text = f.explain()
    assert text.splitlines()[0] == f.signature
    assert "h: f32[n, k]" in text and "x: f32[n, k]" in text and "f32[k]" in text
    xv = np.arange(4, dtype=np.float32).reshape(2, 2)
    t = f.trace(xv)
    assert set(t) == {"x", "h", "return"}
    assert_same(t["h"], xv * 2)
    assert_same(t["return"], np.sum(xv * 2, axis=0))


# -- to_tdsl parses back to the same graph ----------------------------------------------------------

def _graphs():
    x = tdsl.tensor("x", "f32", ("n", "k"))
    v = tdsl.tensor("v", "f32", ("k",))
    i = tdsl.tensor("i", "i32", ("m",))
    s = tdsl.scalar("s")
    b = tdsl.tensor("b", "bool", ("n",))
    yield [x, v], tdsl.sigmoid(x @ v + 1.0)
    yield [x], (x[1:], x[::-1, 0], x[-2:], x[None, :, 1], x[::2], x[0, 1:3])
    yield [x, s], (tdsl.sum(x * s, axis=1), tdsl.mean(x), tdsl.var(x, 0), tdsl.logsumexp(x, axis=1))
    yield [x], (tdsl.softmax(x), tdsl.log_softmax(x, axis=0), tdsl.argmax(x, 1), tdsl.max(x, keepdims=True))
    yield [x, i], (tdsl.take(x, i, axis=1), x[i], tdsl.one_hot(i, 4, dtype="f32"))
    yield [x, b], (tdsl.where(b[:, None], x, 0), tdsl.clip(x, -1, 2.5), tdsl.i32(x) // 2 % 3, ~b | b & b)
    yield [x], (tdsl.reshape(x, (-1,)), tdsl.transpose(x), x.T @ x, tdsl.expand_dims(x, 1),
                tdsl.concat((x, x), axis=1), tdsl.stack((x, x)), tdsl.flip(x, 0), tdsl.broadcast_to(x, (2, "n", "k")))
    yield [x], (tdsl.zeros(("n", 2)), tdsl.ones_like(x), tdsl.full("k", 7), tdsl.arange("n"), tdsl.eye("k"),
                tdsl.sum(x) / tdsl.f32(2) - x ** 2 * 3 + (-x) ** 0.5)
    yield [x], (tdsl.exp(x).named("fn") * x.named("None") + tdsl.sum(x).named("sum"), (x * 3).named("a b"))
    yield [v, s], (tdsl.outer(v, v), tdsl.dot(v, v), v * np.float64(2.0), tdsl.f64(v) + s, tdsl.isnan(v))


@pytest.mark.parametrize("case", range(10))
def test_to_tdsl_parses_back_to_an_equal_graph(case):
    inputs, outputs = list(_graphs())[case]
    f = tdsl.function(inputs, outputs, target="numpy", name="roundtrip")
    text = f.to_tdsl()
    (back,) = check_source(text, "printed.tdsl")
    assert back.signature == f.signature
    assert len(back.outputs) == len(f.graph.outputs)
    for got, want in zip(back.outputs, f.graph.outputs):
        assert got == want, f"{got} != {want} in\n{text}"


def test_to_tdsl_of_a_compiled_program_parses_back():
    src = ("fn f(x: f32[n], y: i32[n]) -> (f32[n - 1], f64) {\n    h = x[1:] * 2.0\n"
           "    return h, mean(y) + sum(x) / n\n}")
    f = tdsl.compile(src, target="numpy").f
    (back,) = check_source(f.to_tdsl())
    assert all(a == b for a, b in zip(back.outputs, f.graph.outputs))
    assert f.source == f.to_tdsl()  # the numpy target's source is the printed program


def test_printed_program_computes_the_same(target):
    x = tdsl.tensor("x", "f64", ("n",))
    f = tdsl.function([x], (x[::-1] * 0.1, tdsl.exp(x[1:]).named("e") + 1), target="numpy", name="p")
    again = tdsl.compile(f.to_tdsl(), target=target).p
    xv = np.array([0.5, 1.5, -2.0])
    assert_same(again(xv), f(xv))


PROGRAM = """\
const EPS = 1e-7
const W = [1.0, 2.0, 3.0]
const K = -3
const INF = 1e400
fn a1(x: f32[n, d], w: f32[d], b: f32) -> f32[n] { return sigmoid(x @ w + b) }
fn a2(x: f32[n, 3]) { return x * W + EPS }
fn a3(x: i32[n]) { y = x * K; z = y // 2 % 3; return z, sum(z), mean(z) }
fn a4(x: f64[n, m]) { return softmax(x), log_softmax(x, 0), logsumexp(x, axis=1), var(x), std(x, 0) }
fn a5(x: f32[n]) { return x[1:], x[::-1], x[-2:], x[None, :], x[::2] }
fn a6(x: f32[a, b, c]) { return transpose(x, (2, 0, 1)), x.T, reshape(x, (-1,)), reshape(x, (a * b, c)) }
fn a7(x: f32[n, m], i: i32[k]) { return take(x, i, axis=1), x[i], argmax(x, axis=1), argmin(x) }
fn a8(x: f32[n], y: f32[n]) { return concat((x, y)), stack((x, y), 1), outer(x, y), dot(x, y) }
fn a9(x: f32[n, 1]) { return squeeze(x), expand_dims(x, 0), broadcast_to(x, (n, 4)), flip(x) }
fn b1(x: f32[n]) { return zeros(n), ones((n, 2), dtype=i32), full(n, 2.5), zeros_like(x), arange(n), eye(n, dtype=f32) }
fn b2(l: i64[n]) { return one_hot(l, 4), one_hot(l, 2, dtype=f32) }
fn b3(x: f32[n]) { return where(x > 0, x, 0), clip(x, -1, 1.5), maximum(x, 0.0), minimum(x, 2) }
fn b4(x: f32[n]) { return isnan(x) or isinf(x), not isfinite(x) and x > 0, x != x, x ** 2, 2.0 ** x }
fn b5(x: f32[b, n, m], y: f32[m, k]) { return x @ y, matmul(y.T, x[0].T) }
fn b6(x: f32[n]) { return sum(x) / n, n, n - 1, x[0], f64(x) * i32(2) }
fn b7(x: f32[n, m]) { return sum(x, (0, 1), keepdims=true), prod(x, 1), max(x, 0), min(x), any(x > 0), all(x > 0, axis=0) }
fn b8(x: f32[n]) { return abs(x), sign(x), sqrt(x), rsqrt(x), square(x), reciprocal(x), exp(x), exp2(x), expm1(x), log(x), log2(x), log10(x), log1p(x) }
fn b9(x: f32[n]) { return sin(x), cos(x), tan(x), asin(x), acos(x), atan(x), sinh(x), cosh(x), tanh(x), sigmoid(x), relu(x), softplus(x), erf(x), floor(x), ceil(x), round(x), atan2(x, x), pow(x, 3) }
fn c1(x: f32[n]) { return -x, +x, -x ** 2, true, 1, 2.0, maximum(x, -INF), -0.0 * x }
"""


def test_every_function_of_a_program_prints_back_to_an_equal_graph():
    for g in check_source(PROGRAM):
        text = to_tdsl(g)
        (back,) = check_source(text)
        assert back.signature == g.signature, text
        assert all(a == b for a, b in zip(back.outputs, g.outputs)), text


def test_explain_keeps_the_line_of_a_value_equal_to_an_earlier_one():
    """After the rewrites merge `back` with `v`, explain() still shows where `back` was bound."""
    m = tdsl.compile("fn f(v: f64[n]) {\n    col = expand_dims(v, 1)\n    back = squeeze(col)\n"
                     "    return back * 2\n}", target="numpy")
    lines = m.f.explain().splitlines()
    assert "  value  back: f64[n]  (line 3)" in lines
    assert "  value  col: f64[n, 1]  (line 2)" in lines
