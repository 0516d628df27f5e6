"""The op table holds every property of an op: the ops added by one row each (hypot, logaddexp,
cbrt, copysign) against NumPy on every target, their gradients, and the lists that the rest of
the compiler derives from the table, pinned so that nothing drops out silently."""
from __future__ import annotations

import numpy as np
import pytest

import tdsl
from conftest import assert_same, compiled
from tdsl.ops import OPS, lanewise_ops, libmvec_functions, math_ops, operator_symbols

F32, F64, I32, I64 = np.float32, np.float64, np.int32, np.int64
NEW = {"hypot": np.hypot, "logaddexp": np.logaddexp, "copysign": np.copysign}

# -- values: one module per family -----------------------------------------------------------

VALUES_SRC = "\n".join(
    [f"fn {name}_{T}(a: {T}[n], b: {T}[n]) {{ return {name}(a, b) }}" for name in NEW for T in ("f32", "f64")]
    + [f"fn cbrt_{T}(a: {T}[n]) {{ return cbrt(a) }}" for T in ("f32", "f64")]
    + ["""
fn ints(i: i32[n], j: i64[n]) { return hypot(i, j), logaddexp(i, j), copysign(i, j), cbrt(i) }
fn mixed(x: f32[n], i: i32[n]) { return hypot(x, i), logaddexp(x, i), copysign(x, i), cbrt(i) }
fn weak(x: f32[n]) { return hypot(x, 2), logaddexp(x, 0.5), copysign(x, -1), copysign(3, x) }
fn spread(a: f64[n, 1], b: f32[k]) {
    return hypot(a, b), logaddexp(a, b), copysign(a, b), cbrt(a)
}
fn strided(a: f32[n, k]) {
    t = transpose(a)
    s = a[::2, ::-1]
    return hypot(t, 1.5), logaddexp(s, s), copysign(t, -0.0), cbrt(s)
}
"""])

CORNERS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.5, -2.25, -8.0, 27.0, 1e-30, 700.0, -745.0]


def pairs(dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of corner values (NaN of both signs among them), long enough for SIMD loops."""
    with np.errstate(over="ignore"):
        a = np.array([x for x in CORNERS for _ in CORNERS], dtype=dtype)
        b = np.array([y for _ in CORNERS for y in CORNERS], dtype=dtype)
    b[::5] = -b[::5]   # -NaN too
    return a, b


def same_signs(got, want):
    """Equal sign bits, NaN included (copysign and signed zeros)."""
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def quiet(fn, *args):
    with np.errstate(all="ignore"):
        return fn(*args)


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_new_binary_ops_match_numpy_on_corner_cases(target, T):
    """NaN, +-inf, +-0, negatives: hypot(inf, nan) is inf, logaddexp(x, x) is x + log(2)
    (-inf for -inf), copysign takes the sign bit of NaN and -0.0."""
    m = compiled(VALUES_SRC, target)
    a, b = pairs(F32 if T == "f32" else F64)
    for name, fn in NEW.items():
        got, want = getattr(m, f"{name}_{T}")(a, b), quiet(fn, a, b)
        assert_same(got, want)
        if name == "copysign":
            same_signs(got, want)
        if name != "logaddexp":   # exact cases: what NumPy gives bit for bit
            exact = np.isinf(a) | np.isinf(b) | np.isnan(a) | np.isnan(b) | (a == 0) | (b == 0)
            np.testing.assert_array_equal(got[exact], want[exact])
    special = np.isinf(a) & (a == b)
    np.testing.assert_array_equal(getattr(m, f"logaddexp_{T}")(a, b)[special], a[special])


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_logaddexp_where_its_sum_cancels(target, T):
    """Near logaddexp(x, y) = 0 an ulp of exp or log1p is many ulps of the result: C computes
    it as NumPy does (libm's scalar calls, also in SIMD loops), so its bits are NumPy's."""
    m, rng = compiled(VALUES_SRC, target), np.random.default_rng(5)
    dtype = F32 if T == "f32" else F64
    x = rng.uniform(-0.75, -0.6, 4001).astype(dtype)
    y = (np.log1p(-np.exp(x.astype(F64))) + rng.uniform(-1e-3, 1e-3, x.size)).astype(dtype)
    got, want = getattr(m, f"logaddexp_{T}")(x, y), np.logaddexp(x, y)
    if target == "c":
        np.testing.assert_array_equal(got, want)
    else:   # OpenCL's exp and log1p are within their own few ulps
        np.testing.assert_allclose(got, want, atol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize("T", ["f32", "f64"])
def test_cbrt_matches_numpy(target, T):
    """Negatives have real cube roots; the signs of zeros stay."""
    m = compiled(VALUES_SRC, target)
    x, _ = pairs(F32 if T == "f32" else F64)
    got, want = getattr(m, f"cbrt_{T}")(x), np.cbrt(x)
    assert_same(got, want)
    same_signs(got[~np.isnan(want)], want[~np.isnan(want)])
    np.testing.assert_allclose(getattr(m, f"cbrt_{T}")(np.array([-27.0, -8.0], dtype=x.dtype)), [-3.0, -2.0],
                               rtol=1e-6)


def test_integer_and_mixed_operands_follow_numpys_dtypes(target):
    """Integer operands become f64 (as for atan2); f32 with an i32 array is f64; weak scalars
    keep f32; all as NumPy computes them."""
    m = compiled(VALUES_SRC, target)
    i, j = np.array([-8, -3, 0, 1, 27, 5], dtype=I32), np.array([4, -7, 0, -1, 0, 12], dtype=I64)
    x = np.array([-1.5, 0.0, -0.0, 2.5, np.inf, np.nan], dtype=F32)
    assert_same(m.ints(i, j), (np.hypot(i, j), np.logaddexp(i, j), np.copysign(i, j), np.cbrt(i)))
    assert_same(m.mixed(x, i), quiet(lambda: (np.hypot(x, i), np.logaddexp(x, i), np.copysign(x, i),
                                              np.cbrt(i))))
    assert_same(m.weak(x), quiet(lambda: (np.hypot(x, 2), np.logaddexp(x, 0.5), np.copysign(x, -1),
                                          np.copysign(3, x).astype(F32))))


def test_broadcast_and_non_contiguous_operands(target):
    m = compiled(VALUES_SRC, target)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 1)) * 3, (rng.normal(size=5) * 3).astype(F32)
    assert_same(m.spread(a, b), (np.hypot(a, b), np.logaddexp(a, b), np.copysign(a, b), np.cbrt(a)))
    x = (rng.normal(size=(6, 5)) * 4).astype(F32)
    x[1, 2], x[2, 0] = np.nan, -np.inf
    t, s = x.T, x[::2, ::-1]
    want = quiet(lambda: (np.hypot(t, F32(1.5)), np.logaddexp(s, s), np.copysign(t, F32(-0.0)), np.cbrt(s)))
    assert_same(m.strided(x), want)
    assert_same(m.strided(np.asfortranarray(x)), want)


def test_new_ops_are_builtins_in_python():
    """The builtins come from the op table: `tdsl.hypot` and friends with no code of their own."""
    x, y = np.array([3.0, -1.0]), np.array([4.0, -0.0])
    a, b = tdsl.tensor("a", "f64", "n"), tdsl.tensor("b", "f64", "n")
    f = tdsl.function([a, b], [tdsl.hypot(a, b), tdsl.logaddexp(a, b), tdsl.copysign(a, b), tdsl.cbrt(a)],
                      target="numpy")
    assert_same(f(x, y), (np.hypot(x, y), np.logaddexp(x, y), np.copysign(x, y), np.cbrt(x)))


# -- gradients -------------------------------------------------------------------------------

GRAD_SRC = "\n".join(
    f"fn f_{name}(a: f64[n, 1], b: f64[k], c: f64[n, k]) -> f64 {{ return sum({name}(a, b) * c) }}\n"
    f"fn g_{name}(a: f64[n, 1], b: f64[k], c: f64[n, k]) -> (f64[n, 1], f64[k]) "
    f"{{ return grad(f_{name}(a, b, c), a, b) }}"
    for name in NEW) + """
fn f_cbrt(x: f64[n, k], c: f64[n, k]) -> f64 { return sum(cbrt(x) * c) }
fn g_cbrt(x: f64[n, k], c: f64[n, k]) -> f64[n, k] { return grad(f_cbrt(x, c), x) }
"""


def analytic(name: str, a, b):
    """d op / d a and d op / d b, elementwise, from the calculus (NumPy)."""
    if name == "hypot":
        h = np.hypot(a, b)
        return a / h, b / h
    if name == "logaddexp":
        out = np.logaddexp(a, b)
        return np.exp(a - out), np.exp(b - out)
    return np.sign(a) * np.copysign(1.0, b), np.zeros(np.broadcast(a, b).shape)   # copysign


@pytest.mark.parametrize("name", sorted(NEW))
def test_binary_gradients_match_calculus(target, name):
    """Both operands broadcast ([n, 1] against [k]): the adjoints are summed back."""
    m, rng = compiled(GRAD_SRC, target), np.random.default_rng(11)
    a, b = rng.uniform(0.3, 3, size=(3, 1)) * [[1], [-1], [1]], rng.uniform(-3, 3, size=4)
    c = rng.normal(size=(3, 4))
    da, db = analytic(name, a, b)
    ga, gb = getattr(m, f"g_{name}")(a, b, c)
    np.testing.assert_allclose(ga, (da * c).sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, (db * c).sum(axis=0), rtol=1e-12, atol=1e-12)
    if target == "numpy":   # and against finite differences
        errors = tdsl.check_grad(getattr(m, f"f_{name}"), a, b, c)
        assert max(errors[k] for k in ("a", "b")) < 1e-6, errors


def test_cbrt_gradient_matches_calculus(target):
    m, rng = compiled(GRAD_SRC, target), np.random.default_rng(12)
    x, c = rng.uniform(0.2, 4, size=(3, 4)) * rng.choice([-1.0, 1.0], size=(3, 4)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(m.g_cbrt(x, c), c / (3 * np.cbrt(x) ** 2), rtol=1e-12)
    assert m.g_cbrt(np.zeros((1, 1)), np.ones((1, 1)))[0, 0] == np.inf   # the tangent is vertical at 0


# -- the lists derived from the table: what they were before it held them, plus the new ops ---

def test_math_ops_are_the_ops_with_vector_forms():
    from tdsl.codegen.render import MATH_OPS
    before = {"pow", "atan2", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan",
              "asin", "acos", "atan", "sinh", "cosh", "tanh", "sigmoid", "softplus", "erf"}
    # philox_f64: Philox's block is costed as a math call (section 12's random numbers)
    assert MATH_OPS == math_ops() == before | {"hypot", "logaddexp", "cbrt", "philox_f64"}


def test_libmvec_declarations_are_the_prelude_list_that_ops_call():
    """The prelude declared more names than any op calls (acosh, asinh, atanh, erfc, exp10: no op
    calls them, so no declaration is lost); hypot is new, cbrt was declared before it was an op."""
    got = libmvec_functions()
    assert {(level, name) for level, name, _ in got} == {(1, n) for n in "sin cos exp log pow".split()} | {
        (2, n) for n in "acos asin atan cbrt cosh erf exp2 expm1 hypot log10 log1p log2 sinh tan tanh".split()}
    assert {name: arity for _, name, arity in got if arity != 1} == {"pow": 2, "hypot": 2}
    source = compiled("fn f(x: f64[n]) { return exp(x) }", "c").source if _has_c() else ""
    for level, name, arity in got if source else ():
        assert f"double {name}({', '.join(['double'] * arity)});" in source


def _has_c() -> bool:
    from conftest import target_status
    return target_status("c")[1]


def test_lanewise_ops_are_those_the_opencl_renderer_vectorized():
    """The OpenCL vector maps took these (decided before by a regular expression over the
    expressions); hypot, copysign and cbrt are builtins of OpenCL C with vector forms."""
    before = {"add", "sub", "mul", "div", "pow", "atan2", "neg", "abs", "square", "reciprocal", "floor", "ceil",
              "round", "sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos",
              "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "erf"}
    assert lanewise_ops() == before | {"hypot", "copysign", "cbrt"}
    for name in lanewise_ops():   # no helper of its own without a vector form: sin and cos have them
        template = OPS[name].c_template("float", "opencl")
        assert "?" not in template and ("tdsl_" not in template or name in ("sin", "cos")), name


def test_operator_symbols_and_builtins():
    from tdsl import builtins, infer, printer
    binary = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**",
              "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "and": "and", "or": "or"}
    assert printer.SYMBOLS == operator_symbols(2) == binary
    assert operator_symbols(1) == {"neg": "-", "not": "not"}
    assert infer.OPERATOR_OPS == set(binary) | {"neg", "not"}
    named = {name for name, op in OPS.items() if op.kind == "elementwise"} - (set(binary) - {"pow"}) - {"neg", "not"}
    assert named == {name for name in builtins.BUILDERS if name in OPS and OPS[name].kind == "elementwise"}
    assert {"hypot", "logaddexp", "cbrt", "copysign"} <= set(builtins.BUILDERS)


def test_ops_that_can_fail_at_call_time():
    failing = {name: (op.fails.on, op.fails.kinds, op.fails.domain) for name, op in OPS.items() if op.fails}
    everything = ("float", "int", "bool")
    assert failing == {"max": ("empty", everything, None), "min": ("empty", everything, None),
                       "argmax": ("empty", everything, None), "argmin": ("empty", everything, None),
                       "pow": ("values", ("int",), None), "take": ("values", everything, 1),
                       "scatter": ("values", everything, 1), "scatter_add": ("values", everything, 1),
                       "take_along_axis": ("values", everything, 1), "randint_span": ("values", ("int",), None)}


def test_helpers_are_in_both_preludes_once_per_float_dtype():
    from tdsl.codegen.templating import op_helpers
    for T, C in (("f32", "float"), ("f64", "double")):
        assert f"static TDSL_SCALAR_HELPER {C} tdsl_logaddexp_{T}({C} x, {C} y)" in op_helpers(T, C, "")
    assert "log1pf(expf(-d))" in op_helpers("f32", "float", "f")


def test_new_ops_print_back_to_source_that_computes_the_same():
    """The printer writes an op by its name (or its operator symbol, from the table)."""
    from tdsl.printer import to_tdsl
    m = compiled(VALUES_SRC, "numpy")
    text = to_tdsl(m.ints.graph)
    assert all(f"{name}(" in text for name in ("hypot", "logaddexp", "copysign", "cbrt"))
    again = tdsl.compile(text, target="numpy")
    i, j = np.array([-8, 3, 0], dtype=I32), np.array([2, -5, 0], dtype=I64)
    assert_same(again.ints(i, j), m.ints(i, j))
