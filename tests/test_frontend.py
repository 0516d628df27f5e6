"""The front end and type checker: every construct of the grammar, dtype and symbolic shape
inference, NEP 50 promotion with weak literals, and every compile error with its place."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import assert_same, run
from tdsl.dims import Dim
from tdsl.pipeline import check_source

n, m, k = Dim.of("n"), Dim.of("m"), Dim.of("k")


def graphs(src: str) -> dict:
    return {g.name: g for g in check_source(src)}


def result_types(src: str, fn: str = "f") -> list[str]:
    """The type of each result of `fn`, as the language writes it."""
    return [o.type_str for o in graphs(src)[fn].outputs]


def rtype(src: str, fn: str = "f") -> str:
    (only,) = result_types(src, fn)
    return only


def place(src: str, snippet: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the `occurrence`-th `snippet` in `src`."""
    pos = -1
    for _ in range(occurrence + 1):
        pos = src.index(snippet, pos + 1)
    line = src.count("\n", 0, pos) + 1
    return line, pos - (src.rfind("\n", 0, pos) + 1) + 1


def compile_error(src: str, kind=tdsl.TdslTypeError, at: str | None = None, occurrence: int = 0):
    """Check `src` fails with `kind`, located at the snippet `at`; returns the error."""
    with pytest.raises(kind) as info:
        check_source(src, "prog.tdsl")
    err = info.value
    assert err.loc is not None, f"no location on: {err}"
    assert err.loc.file == "prog.tdsl"
    if at is not None:
        assert (err.loc.line, err.loc.col) == place(src, at, occurrence), str(err)
    text = str(err)
    assert text.startswith(f"prog.tdsl:{err.loc.line}:{err.loc.col}: error: ")
    assert "^" in text  # the source line with a caret
    return err


# -- every construct of the grammar --------------------------------------------------------

EVERYTHING = """\
# a comment on its own line
const EPS = 1e-7          # float with exponent
const BIG = 1_000         # underscores
const HALF = .5
const EXP = 2.5E+4
const NEG = -3
const VEC = [1.0, 2.0, 3.0]
const MAT = [[1, 2], [3, 4]]
const YES = true

fn everything(x: f32[n, 3], y: f32[3], s: f64, b: bool[n], i: i32[k]) -> (f32[n], f64, bool[n], f32[k, 3]) {
    a = x @ y + EPS; c = a * HALF
    d, e = pair(a, s)
    big = (BIG + NEG) * EXP / 2 // 3 % 7
    t = (x
         + VEC)
    u = -x[0, 1:] ** 2 + +y[1:]
    v = sum(t, axis=1, keepdims=false) - u[0]
    w = not (a > 0 and b) or not YES
    r = x.T[::-1, None, ...]
    q = x[i]
    return v + d, e + big + f64(MAT[0, 1]) + r[0, 0, 0], w != (a == c), q
}

fn pair(a: f32[m], s: f64) -> (f32[m], f64) {
    return a, s * 2
}

fn zero_params() { return 1 }
"""


def test_every_construct_checks():
    g = graphs(EVERYTHING)
    assert g["everything"].signature == (
        "everything(x: f32[n, 3], y: f32[3], s: f64, b: bool[n], i: i32[k]) -> (f32[n], f64, bool[n], f32[k, 3])")
    assert g["pair"].signature == "pair(a: f32[m], s: f64) -> (f32[m], f64)"
    assert g["zero_params"].signature == "zero_params() -> i64"
    named = dict(g["everything"].named)
    assert named["a"].type_str == "f32[n]"
    assert named["big"].type_str == "f64"  # all weak: a weak f64 at its default width
    assert named["u"].type_str == "f32[2]"
    assert named["r"].type_str == "f32[3, 1, n]"
    assert named["q"].type_str == "f32[k, 3]"


def test_every_construct_runs(target):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([1.0, -1.0, 0.5], dtype=np.float32)
    b, i, s = np.array([True, False]), np.array([1, 0, 1], dtype=np.int32), 1.5
    got = run(EVERYTHING, "everything", target, x, y, s, b, i)
    a = x @ y + np.float32(1e-7)
    c = a * np.float32(0.5)
    t = x + np.array([1.0, 2.0, 3.0], dtype=np.float32)
    u = -(x[0, 1:] ** 2) + y[1:]
    v = np.sum(t, axis=1) - u[0]
    big = (1000 + -3) * 25000.0 / 2 // 3 % 7
    r = x.T[::-1, None, ...]
    w = ~((a > 0) & b) | (not True)
    expected = (v + a, np.float64(s * 2 + big + 2.0 + r[0, 0, 0]), w != (a == c), x[i])
    assert_same(got, expected)


def test_semicolons_and_newlines_inside_brackets():
    src = "fn f(x: f64[n]) { a = x; b = (a +\n a); return [1.0,\n 2.0][0] * sum(\n b) }"
    assert rtype(src) == "f64"


PRECEDENCE = """
fn neg_pow(x: f64[n]) { return -x ** 2 }
fn right_assoc(x: f64[n]) { return x ** 2 ** 0.5 }
fn mul_before_add(x: f64[n]) { return 1 + x * 2 - x / 4 }
fn left_assoc(x: f64[n]) { return x - 1 - 1 }
fn floordiv_mod(x: i64[n]) { return x // 3 % 2 }
fn compare_after_add(x: f64[n]) { return x + 1 > 2 }
fn not_and_or(a: bool[n], b: bool[n]) { return not a and b or a }
fn matmul_level(a: f64[n, n]) { return a @ a * 2 }
fn pow_negative_exponent(x: f64[n]) { return 2 ** -x }
"""


def test_operator_precedence(target):
    x = np.array([1.0, 2.0, 3.0])
    assert_same(run(PRECEDENCE, "neg_pow", target, x), -(x ** 2))
    assert_same(run(PRECEDENCE, "right_assoc", target, x), x ** (2 ** 0.5))
    assert_same(run(PRECEDENCE, "mul_before_add", target, x), 1 + x * 2 - x / 4)
    assert_same(run(PRECEDENCE, "left_assoc", target, x), x - 2)
    xi = np.array([-7, 7, 10])
    assert_same(run(PRECEDENCE, "floordiv_mod", target, xi), xi // 3 % 2)
    assert_same(run(PRECEDENCE, "compare_after_add", target, x), x + 1 > 2)
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    assert_same(run(PRECEDENCE, "not_and_or", target, a, b), (~a & b) | a)
    sq = np.arange(4.0).reshape(2, 2)
    assert_same(run(PRECEDENCE, "matmul_level", target, sq), (sq @ sq) * 2)
    assert_same(run(PRECEDENCE, "pow_negative_exponent", target, x), 2 ** -x)


# -- dtype and symbolic shape inference ---------------------------------------------------------

@pytest.mark.parametrize("body,expected", [
    ("x[1:]", "f32[n - 1]"),
    ("x[:-2]", "f32[n - 2]"),
    ("x[1:3]", "f32[2]"),
    ("x[-3:]", "f32[3]"),
    ("x[::-1]", "f32[n]"),
    ("x[None, :, None]", "f32[1, n, 1]"),
    ("x[0]", "f32"),
    ("x[n:]" if False else "x[2:-1]", "f32[n - 3]"),
    ("concat((x, x[1:]))", "f32[2 * n - 1]"),
    ("stack((x, x))", "f32[2, n]"),
    ("sum(x) / n", "f32"),
    ("zeros(n + 1)", "f64[n + 1]"),
    ("arange(2 * n)", "i64[2 * n]"),
    ("x[::2]", "f32[(n + 1) // 2]"),
])
def test_symbolic_shapes_1d(body, expected):
    assert rtype(f"fn f(x: f32[n]) {{ return {body} }}") == expected


def test_symbolic_products_and_reshape():
    g = graphs("fn f(x: f32[n, k]) { return reshape(x, (n * k,)), reshape(x, (-1,)), reshape(x, (k, -1)),"
               " reshape(x, (k * n, 1)) }\n"
               "fn h(x: f32[n, k, m]) { return reshape(x, (n, -1)), reshape(x, (-1, m)) }")
    shapes = [o.shape for o in g["f"].outputs]
    assert shapes == [(n * k,), (n * k,), (k, n), (k * n, Dim.of(1))]
    assert shapes[0][0] == k * n  # products are normalized
    assert [o.shape for o in g["h"].outputs] == [(n, k * m), (n * k, m)]


def test_explain_prints_symbolic_shapes():
    fn = tdsl.compile("fn f(x: f32[n], w: f32[n, k]) {\n  h = x[1:]\n  z = reshape(w, (n * k,))\n"
                      "  return sum(h) + sum(z)\n}", target="numpy").f
    text = fn.explain()
    assert "h: f32[n - 1]  (line 2)" in text
    assert "f32[k * n]" in text or "f32[n * k]" in text
    assert fn.signature == "f(x: f32[n], w: f32[n, k]) -> f32"


@pytest.mark.parametrize("params,body,expected", [
    # NEP 50: weak literals take the dtype of the strong operand unless of a higher kind
    ("x: f32[n]", "x * 2.0", "f32[n]"),
    ("x: f32[n]", "x * 2", "f32[n]"),
    ("x: f32[n, 2]", "x * [1.0, 2.0]", "f32[n, 2]"),
    ("x: i32[n]", "x + 1", "i32[n]"),
    ("x: i32[n]", "x + 1.5", "f64[n]"),
    ("x: i32[n]", "x * [1, 2]" if False else "x - 7", "i32[n]"),
    ("x: i32[n], y: i32[n]", "x / y", "f64[n]"),
    ("x: i32[n]", "x / 2", "f64[n]"),
    ("x: f32[n]", "x / 2", "f32[n]"),
    ("x: f32[n], y: f64[n]", "x + y", "f64[n]"),
    ("x: f32[n], y: i32[n]", "x + y", "f64[n]"),
    ("x: f32[n], y: i64[n]", "x * y", "f64[n]"),
    ("x: i32[n], y: i64[n]", "x + y", "i64[n]"),
    ("x: bool[n], y: bool[n]", "x == y", "bool[n]"),
    # typed scalar parameters are strong, as NumPy scalars are
    ("x: f32[n], s: f64", "x + s", "f64[n]"),
    ("x: i32[n], s: i64", "x + s", "i64[n]"),
    ("x: f32[n], s: i32", "x * s", "f64[n]"),
    ("x: f32[n]", "x + i32(2)", "f64[n]"),
    ("x: f32[n]", "x * f64(2.0)", "f64[n]"),
    # alone, literals have NumPy's default dtypes
    ("", "1", "i64"),
    ("", "1.0", "f64"),
    ("", "true", "bool"),
    ("", "[1, 2]", "i64[2]"),
    ("", "[1, 2.5]", "f64[2]"),
    ("", "1 + 2.5", "f64"),
    ("", "7 // 2", "i64"),
    ("", "1 / 2", "f64"),
    # size variables are weak integers
    ("x: f32[n]", "sum(x) / n", "f32"),
    ("x: i32[n]", "x + n", "i32[n]"),
    ("x: i32[n]", "sum(x) / n", "f64"),
    ("x: f32[n]", "n", "i64"),
    ("x: f32[n]", "n * 1.5", "f64"),
    # builtins return strong NumPy scalars
    ("x: f32[n]", "x * exp(1.0)", "f64[n]"),
    ("x: f32[n]", "x * sum([1.0, 2.0])", "f64[n]"),
    # results of builtins
    ("x: f32[n]", "x + exp(x)", "f32[n]"),
    ("x: i32[n]", "exp(x)", "f64[n]"),
    ("x: i32[n]", "abs(x)", "i32[n]"),
    ("x: i32[n]", "x > 1.5", "bool[n]"),
    ("x: i32[n]", "x ** 2", "i32[n]"),
    ("x: i32[n]", "x ** 2.0", "f64[n]"),
    ("x: f32[n]", "2 ** x", "f32[n]"),
    ("x: i32[n]", "sum(x)", "i64"),
    ("x: bool[n]", "sum(x)", "i64"),
    ("x: i32[n]", "prod(x)", "i64"),
    ("x: i64[n]", "sum(x)", "i64"),
    ("x: f32[n]", "sum(x)", "f32"),
    ("x: i32[n]", "max(x)", "i32"),
    ("x: i32[n]", "mean(x)", "f64"),
    ("x: bool[n]", "mean(x)", "f64"),
    ("x: i32[n]", "var(x)", "f64"),
    ("x: f32[n]", "std(x)", "f32"),
    ("x: f32[n]", "argmax(x)", "i64"),
    ("x: i32[n]", "softmax(x)", "f64[n]"),
    ("x: f32[n]", "where(x > 0, x, 0)", "f32[n]"),
    ("x: i32[n]", "where(x > 0, x, 0.5)", "f64[n]"),
    ("x: i32[n]", "clip(x, 0, 1.5)", "f64[n]"),
    ("x: i32[n]", "minimum(x, 3)", "i32[n]"),
    ("x: f32[n]", "full(n, 2)", "i64[n]"),
    ("x: f32[n]", "full(n, 2.0)", "f64[n]"),
    ("x: f32[n]", "full(n, x[0])", "f32[n]"),
    ("x: f32[n], y: i32[m]", "concat((x, y))", "f64[m + n]"),
    ("x: i32[n], y: f32[n, m]", "one_hot(x, m)", "f64[n, m]"),
])
def test_dtype_inference(params, body, expected):
    assert rtype(f"fn f({params}) {{ return {body} }}") == expected


def test_consts_are_weak():
    src = "const C = 2.0\nconst V = [1, 2]\nconst N = -3\n"
    assert rtype(src + "fn f(x: f32[n]) { return x * C }") == "f32[n]"
    assert rtype(src + "fn f(x: f32[2]) { return x * V }") == "f32[2]"
    assert rtype(src + "fn f(x: i32[2]) { return x * V + N }") == "i32[2]"
    assert rtype(src + "fn f() { return C }") == "f64"
    assert rtype(src + "fn f() { return V }") == "i64[2]"


def test_consts_can_be_defined_after_use(target):
    src = "fn f(x: f64[n]) { return x * C }\nconst C = 3"
    assert_same(run(src, "f", target, np.array([1.0, 2.0])), np.array([3.0, 6.0]))


def test_a_one_element_tuple_result(target):
    src = "fn f(x: f32[n]) -> (f32[n],) { return x }\nfn g(x: f32[n]) -> (f32[n]) { return x }"
    g = graphs(src)
    assert g["f"].signature == "f(x: f32[n]) -> (f32[n],)" and g["f"].tuple_result
    assert g["g"].signature == "g(x: f32[n]) -> f32[n]" and not g["g"].tuple_result
    x = np.ones(2, dtype=np.float32)
    assert_same(run(src, "f", target, x), (x,))
    assert_same(run(src, "g", target, x), x)


def test_weak_result_takes_the_declared_dtype():
    assert rtype("fn f() -> f32 { return 1.5 }") == "f32"
    assert rtype("fn f() -> i32 { return 2 }") == "i32"
    assert rtype("fn f() -> f32 { return 2 }") == "f32"
    assert rtype("fn f(x: f32[n]) -> f32[n] { return x * 2.0 }") == "f32[n]"


def test_comparison_with_an_out_of_range_literal(target):
    src = "fn f(x: i32[n]) { return x == 3000000000, x < 3000000000 }"
    x = np.array([1, -5], dtype=np.int32)
    assert_same(run(src, "f", target, x), (x == 3000000000, x < 3000000000))


# -- tuples, destructuring, inlined calls --------------------------------------------------------

CALLS = """
fn inner(a: f32[n], b: f32[n]) -> (f32[n - 1], f32) { return a[1:] * b[1:], sum(a) }
fn outer_fn(x: f32[m], y: f32[m]) {
    p, q = inner(x, y)
    r, s = inner(b=y, a=x)
    return p + r, q * s
}
fn passes_on(x: f32[m]) { return inner(x, x) }
fn tuple_return(x: f32[m]) { return (x, -x) }
fn literal_args(x: f64[m]) { return scale(x, 2), scale(x, 0.5) }
fn scale(x: f64[n], s: f64) { return x * s }
fn swap(x: f64[m], y: f64[m]) { a, b = (y, x); return a - b }
fn chained(x: f64[m]) { return scale(scale(x, 2.0), 3.0) }
fn calls_later(x: f64[m]) -> f64[m - 2] { return trim(trim(x)) }
fn trim(v: f64[p]) -> f64[p - 1] { return v[1:] }
"""


def test_inlined_calls_and_destructuring(target):
    g = graphs(CALLS)
    assert g["outer_fn"].signature == "outer_fn(x: f32[m], y: f32[m]) -> (f32[m - 1], f32)"
    assert g["passes_on"].signature == "passes_on(x: f32[m]) -> (f32[m - 1], f32)"
    assert g["tuple_return"].signature == "tuple_return(x: f32[m]) -> (f32[m], f32[m])"
    assert g["calls_later"].signature == "calls_later(x: f64[m]) -> f64[m - 2]"
    x, y = np.array([1, 2, 3], dtype=np.float32), np.array([4, 5, 6], dtype=np.float32)
    p, q = x[1:] * y[1:], np.sum(x)
    assert_same(run(CALLS, "outer_fn", target, x, y), (p + p, q * q))
    assert_same(run(CALLS, "passes_on", target, x), (x[1:] * x[1:], np.sum(x)))
    assert_same(run(CALLS, "tuple_return", target, x), (x, -x))
    xd = x.astype(np.float64)
    assert_same(run(CALLS, "literal_args", target, xd), (xd * 2, xd * 0.5))
    assert_same(run(CALLS, "swap", target, xd, 2 * xd), xd)
    assert_same(run(CALLS, "chained", target, xd), xd * 6)
    assert_same(run(CALLS, "calls_later", target, xd), xd[2:])


# -- errors, each with its place ------------------------------------------------------------------

def test_syntax_error_has_line_and_column():
    src = "fn f(x: f32[n]) {\n    return x +\n}"
    err = compile_error(src, tdsl.TdslSyntaxError)
    assert (err.loc.line, err.loc.col) == (2, 15)
    src = "fn f(x: f32[n]) {\n    y = x $ 2\n    return y\n}"
    compile_error(src, tdsl.TdslSyntaxError, at="$")


def test_broadcasting_different_size_variables_names_both():
    src = "fn f(x: f32[n], y: f32[m]) {\n    z = x + y\n    return z\n}"
    err = compile_error(src, at="x + y")
    assert "n" in err.message and "m" in err.message and "broadcast" in err.message
    src = "fn f(x: f32[n, 3], y: f32[4]) {\n    return x * y\n}"
    err = compile_error(src, at="x * y")
    assert "3" in err.message and "4" in err.message


def test_literal_1_broadcasts_but_a_size_variable_does_not():
    assert rtype("fn f(x: f32[n, 1], y: f32[m]) { return x + y }") == "f32[n, m]"
    assert rtype("fn f(x: f32[1], y: f32[m]) { return x + y }") == "f32[m]"
    compile_error("fn f(x: f32[n], y: f32[1, m]) { return x + y }", at="x + y")


def test_bool_arithmetic_has_a_cast_hint():
    for body in ("x * 2", "x + x", "-x", "abs(x)", "sqrt(x)", "x @ x", "+x", "softmax(x)"):
        src = f"fn f(x: bool[n]) {{\n    return {body}\n}}"
        err = compile_error(src, at=body)
        assert "bool" in err.message
        assert err.hint and "i64(" in err.hint, body


def test_undefined_name():
    src = "fn f(x: f32[n]) {\n    y = x * 2\n    return x + yy\n}"
    err = compile_error(src, at="yy")
    assert "'yy'" in err.message and "did you mean 'y'" in err.hint


def test_recursion_is_an_error():
    src = "fn f(x: f32[n]) {\n    return g(x)\n}\nfn g(x: f32[n]) {\n    return f(x)\n}"
    err = compile_error(src, at="f(x)", occurrence=0)
    assert "recursion" in err.message and "f -> g -> f" in err.message
    compile_error("fn f(x: f32[n]) {\n    return 1 + f(x)\n}", at="f(x)")


def test_return_type_mismatch():
    src = "fn f(x: f32[n]) -> f64[n] {\n    return x\n}"
    err = compile_error(src, at="f64[n]")
    assert "f32[n]" in err.message and "f64[n]" in err.message and "f64(" in err.hint
    compile_error("fn f(x: f32[n]) -> f32[n - 1] { return x[2:] }", at="f32[n - 1]")
    compile_error("fn f(x: f32[n]) -> (f32[n], f32) { return x }", at="(f32[n], f32)")
    compile_error("fn f(x: f32) -> i32 { return 2.5 }", at="i32")
    compile_error("fn f(x: f32[n]) -> f32[m] { return x }", at="m")


def test_wrong_arity():
    err = compile_error("fn f(x: f32[n]) {\n    return exp(x, x)\n}", at="exp(x, x)")
    assert "exp" in err.message and "1" in err.message
    src = "fn g(a: f32[n]) { return a }\nfn f(x: f32[n]) {\n    return g(x, x)\n}"
    err = compile_error(src, at="g(x, x)")
    assert "g()" in err.message and "takes 1" in err.message
    compile_error("fn f(x: f32[n]) {\n    return where(x > 0, x)\n}", at="where")
    compile_error("fn f(x: f32[n]) {\n    return sum(x, axes=0)\n}", at="sum")
    compile_error("fn f(x: f32[n]) {\n    return sum(x, axis=0, axis=0)\n}", at="axis", occurrence=1)


def test_unknown_function():
    err = compile_error("fn f(x: f32[n]) {\n    return sofmax(x)\n}", at="sofmax")
    assert "'sofmax'" in err.message and "softmax" in err.hint


def test_slicing_a_too_short_known_axis():
    compile_error("fn f(x: f32[3]) {\n    return x[4:]\n}", at="x[4:]")
    compile_error("fn f(x: f32[3]) {\n    return x[3]\n}", at="x[3]")
    compile_error("fn f(x: f32[3]) {\n    return x[-4]\n}", at="x[-4]")
    compile_error("fn f(x: f32[3]) {\n    return x[:5]\n}", at="x[:5]")
    compile_error("fn f(x: f32[n, 2]) {\n    return x[:, 2]\n}", at="x[:, 2]")
    compile_error("fn f(x: f32[3]) {\n    return x[5::-1]\n}", at="x[5::-1]")
    assert rtype("fn f(x: f32[3]) { return x[3:] }") == "f32[0]"
    assert rtype("fn f(x: f32[3]) { return x[2:1] }") == "f32[0]"


@pytest.mark.parametrize("src,at,words", [
    ("fn f(x: f32[n, m], y: f32[k, m]) {\n    return x @ y\n}", "x @ y", "inner"),
    ("fn f(x: f32[n]) {\n    return x @ 2.0\n}", "x @ 2.0", "scalar"),
    ("fn f(x: f32[n]) {\n    return sum(x, axis=1)\n}", "sum", "axis 1"),
    ("fn f(x: f32[n, m]) {\n    return sum(x, axis=(0, 0))\n}", "sum", "repeated"),
    ("fn f(x: f32[n]) {\n    return argmax(x, (0,))\n}", "argmax", "one axis"),
    ("fn f(x: f32[n]) {\n    return where(x, x, x)\n}", "where", "bool"),
    ("fn f(x: f32[n]) {\n    return not x\n}", "not x", "bool"),
    ("fn f(x: f32[n]) {\n    return x > 0 and x\n}", "x > 0 and x", "bool"),
    ("fn f(x: f32[3, 4]) {\n    return reshape(x, (5, 2))\n}", "reshape", "12"),
    ("fn f(x: f32[n]) {\n    return reshape(x, (-1, -1))\n}", "reshape", "-1"),
    ("fn f(x: f32[n, 3]) {\n    return squeeze(x, 1)\n}", "squeeze", "squeeze"),
    ("fn f(x: f32[n]) {\n    return broadcast_to(x, (3,))\n}", "broadcast_to", "broadcast"),
    ("fn f(x: f32[n]) {\n    return transpose(x, (0, 0))\n}", "transpose", "axes"),
    ("fn f(x: f32[n]) {\n    return concat((x, x[None]))\n}", "concat", "rank"),
    ("fn f(x: f32[n]) {\n    return stack((x, x[1:]))\n}", "stack", "equal shapes"),
    ("fn f(x: f32[n]) {\n    return take(x, 1.5)\n}", "take", "integer"),
    ("fn f(x: f32[n]) {\n    return one_hot(x, 3)\n}", "one_hot", "integer"),
    ("fn f(x: f32[n]) {\n    return x[0, 0]\n}", "x[0, 0]", "too many"),
    ("fn f(x: f32[n]) {\n    return x[..., ...]\n}", "x[...", "'...'"),
    ("fn f(x: f32[n]) {\n    return x[::0]\n}", "x[::0]", "zero"),
    ("fn f(x: f32[n], i: i64) {\n    return x[i:]\n}", "i:]", "not a dim expression"),
    ("fn f(x: f32[n]) {\n    return x.X\n}", "X", ".X"),
    ("fn f(x: i32[n]) {\n    return x + 3000000000\n}", "x + 3000000000", "does not fit"),
    ("fn f() {\n    return 100000000000000000000\n}", "1000", "does not fit"),
    ("fn f(x: i32[n]) {\n    return x ** -1\n}", "x ** -1", "negative"),
    ("fn f(x: f32[n]) {\n    return [1, [2]]\n}", "[1, [2]]", "rectangular"),
    ("fn f(x: f32[n]) {\n    return [x, x]\n}", "x, x]", "numbers"),
    ("fn f(x: f32[n]) {\n    return exp\n}", "exp", "call it"),
    ("fn f(x: f32[n]) {\n    return f32\n}", "f32\n", "dtype"),
    ("fn f(x: f32[n]) {\n    return sum(x, keepdims=1)\n}", "sum", "keepdims"),
    ("fn f(x: f32[n]) {\n    return zeros(n, dtype=f16)\n}", "f16", "f16"),
    ("fn f(x: f16[n]) {\n    return x\n}", "f16", "f16"),
    ("fn f(x: f32[n]) -> f32[m] {\n    return x\n}", "m]", "'m'"),
    ("fn f(x: f32[n]) {\n    a, b = x\n    return a\n}", "a, b", "unpack"),
    ("fn f(x: f32[n]) {\n    a, b = g(x)\n    return a\n}\nfn g(x: f32[n]) { return x, x, x }", "a, b", "unpack"),
    ("fn f(x: f32[n]) {\n    return x\n    y = x\n}", "y = x", "last"),
    ("fn f(x: f32[n]) {\n    y = x\n}", "f(", "no return"),
    ("fn f(x: f32[n]) {\n    f32 = x\n    return x\n}", "f32 =", "f32"),
    ("fn f(x: f32[n]) {\n    return ()\n}", "return ()", "at least one"),
    ("fn f(x: f32[n], x: f32[n]) { return x }", "x: f32[n]) {", "'x'"),
    ("fn f(x: f32[n]) { return x }\nfn f(x: f32[n]) { return x }", ("f(", 1), "twice"),
    ("const C = 1\nconst C = 2\nfn f() { return C }", "C = 2", "twice"),
    ("fn sum(x: f32[n]) { return x }", "sum", "builtin"),
    ("const C = sqrt(2.0)\nfn f() { return C }", "sqrt", "const"),
    ("fn f(a: f64[n]) {\n    return g(a)\n}\nfn g(a: f32[n]) { return a }", "g(a)", "f32"),
    ("fn f(a: f32[n], b: f32[m]) {\n    return g(a, b)\n}\nfn g(a: f32[n], b: f32[n]) { return a + b }",
     "g(a, b)", "'b'"),
    ("fn f(a: f32[n]) {\n    return g(a)\n}\nfn g(a: f32[n, k]) { return a }", "g(a)", "rank"),
    ("fn f(x: f32[n]) {\n    return g(y=x)\n}\nfn g(a: f32[n]) { return a }", "g(y=x)", "'y'"),
    ("fn f(x: f32[n]) {\n    return g(x, a=x)\n}\nfn g(a: f32[n], b: f32[n]) { return a }", "g(x, a=x)", "twice"),
    ("fn f(x: f32[n]) {\n    return g(a=x)\n}\nfn g(a: f32[n], b: f32[n]) { return a }", "g(a=x)", "'b'"),
    ("fn f(x: f32[n]) {\n    return sum(axis=0, x)\n}", "x)", "positional"),
    ("fn f(x: f32[n]) {\n    return zeros((n, -1))\n}", "zeros", "negative"),
    ("fn f(x: f32[n]) {\n    return arange(-2)\n}", "arange", "negative"),
    ("fn f(x: f32[n]) {\n    return zeros(n, dtype=1)\n}", "zeros", "dtype"),
])
def test_type_errors_are_located(src, at, words):
    snippet, occurrence = at if isinstance(at, tuple) else (at, 0)
    err = compile_error(src, at=snippet, occurrence=occurrence)
    assert words in err.message, err.message


def test_every_error_is_a_tdsl_error():
    assert issubclass(tdsl.TdslSyntaxError, tdsl.TdslError)
    assert issubclass(tdsl.TdslTypeError, tdsl.TdslError)
    assert issubclass(tdsl.TdslArgumentError, tdsl.TdslError)
    assert issubclass(tdsl.TdslRuntimeError, tdsl.TdslError)
    assert issubclass(tdsl.TdslBuildError, tdsl.TdslError)


def test_parenthesized_dim_in_return_type():
    import numpy as np
    m = tdsl.compile("fn f(x: f64[n]) -> f64[(n + 1) // 2] { return x[::2] }", target="numpy")
    assert m.f.signature == "f(x: f64[n]) -> f64[(n + 1) // 2]"
    np.testing.assert_array_equal(m.f(np.arange(5.0)), np.arange(5.0)[::2])


@pytest.mark.parametrize("length", [1500])
def test_long_chains_compile(target, length):
    """A long chain of statements nests deeply; it must not hit Python's recursion limit."""
    body = "\n".join(f"    x = sin(x) + {i}.0" for i in range(length))
    source = "fn chain(x: f64[n]) -> f64[n] {\n" + body + "\n    return x\n}\n"
    x = np.arange(3.0)
    expected = x.copy()
    for i in range(length):
        expected = np.sin(expected) + i
    got = tdsl.compile(source, target=target).chain(x)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
