"""Tests of autodiff: elementwise gradients against finite differences, subgradients, second
order, variables, the builder API, errors. Reductions, layout ops, matmul and check_grad itself
are in tests/test_autodiff_check_grad.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import tdsl
from conftest import assert_same, compiled
from tdsl.gradcheck import check_grad
from tdsl.graph import toposort

SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SIZES = st.integers(1, 4)
SEEDS = st.integers(0, 2**32 - 1)
TOL = 1e-5

# -- elementwise ops: one module holding f_OP (a scalar loss) and g_OP (its grad, in .tdsl) ------

# op -> the interval its inputs are drawn from (away from poles and the edges of domains)
UNARY = {
    "neg": (-2, 2), "abs": (0.1, 2), "sign": (0.1, 2), "square": (-2, 2), "reciprocal": (0.5, 2),
    "relu": (0.1, 2), "floor": (0.1, 0.4), "ceil": (0.1, 0.4), "round": (0.1, 0.4), "sqrt": (0.5, 2),
    "rsqrt": (0.5, 2), "exp": (-2, 2), "exp2": (-2, 2), "expm1": (-2, 2), "log": (0.5, 2),
    "log2": (0.5, 2), "log10": (0.5, 2), "log1p": (-0.5, 2), "sin": (-2, 2), "cos": (-2, 2),
    "tan": (-1, 1), "asin": (-0.8, 0.8), "acos": (-0.8, 0.8), "atan": (-2, 2), "sinh": (-2, 2),
    "cosh": (-2, 2), "tanh": (-2, 2), "sigmoid": (-3, 3), "softplus": (-3, 3), "erf": (-2, 2),
    "cbrt": (0.5, 2),
}
SIGNED = {"abs", "sign", "relu", "floor", "ceil", "round", "reciprocal", "cbrt"}  # sample both signs
BINARY = {
    "add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b", "floordiv": "a // b", "mod": "a % b",
    "pow": "a ** b", "maximum": "maximum(a, b)", "minimum": "minimum(a, b)", "atan2": "atan2(a, b)",
    "where": "where(c > 0.0, a, b)", "clip": "clip(a, b, 0.5)", "hypot": "hypot(a, b)",
    "logaddexp": "logaddexp(a, b)", "copysign": "copysign(a, b)",
}


def _call(op: str) -> str:
    return "(-x)" if op == "neg" else f"{op}(x)"


def _op_module_source() -> str:
    parts = []
    for op in UNARY:
        parts.append(f"fn f_{op}(x: f64[n, k], c: f64[n, k]) -> f64 {{ return sum({_call(op)} * c) }}\n"
                     f"fn g_{op}(x: f64[n, k], c: f64[n, k]) -> f64[n, k] {{ return grad(f_{op}(x, c), x) }}\n")
    for op, expr in BINARY.items():
        parts.append(f"fn f_{op}(a: f64[n, 1], b: f64[k], c: f64[n, k]) -> f64 {{ return sum(({expr}) * c) }}\n"
                     f"fn g_{op}(a: f64[n, 1], b: f64[k], c: f64[n, k]) -> (f64[n, 1], f64[k]) {{\n"
                     f"    return grad(f_{op}(a, b, c), a, b)\n}}\n")
    return "".join(parts)


OPS_SOURCE = _op_module_source()


def numeric_grad(f, args: list, i: int, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f with respect to args[i]."""
    x = np.asarray(args[i], dtype=np.float64)
    out = np.zeros(x.shape)
    for j in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[j] += h
        minus[j] -= h
        out[j] = (f(*args[:i], plus, *args[i + 1:]) - f(*args[:i], minus, *args[i + 1:])) / (2 * h)
    return out


def _uniform(rng, lo, hi, shape, signed=False):
    x = rng.uniform(lo, hi, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape) if signed else x


@pytest.mark.parametrize("op", list(UNARY))
@SETTINGS
@given(n=SIZES, k=SIZES, seed=SEEDS)
def test_unary_gradient_matches_finite_differences(target, op, n, k, seed):
    rng = np.random.default_rng(seed)
    lo, hi = UNARY[op]
    x = _uniform(rng, lo, hi, (n, k), op in SIGNED)
    if op in ("floor", "ceil", "round"):
        x = x + rng.integers(-3, 3, size=(n, k))
    c = rng.normal(size=(n, k))
    m = compiled(OPS_SOURCE, target)
    got = getattr(m, f"g_{op}")(x, c)
    assert got.dtype == np.float64 and got.shape == (n, k)
    np.testing.assert_allclose(got, numeric_grad(getattr(m, f"f_{op}"), [x, c], 0), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("op", list(BINARY))
@SETTINGS
@given(n=SIZES, k=SIZES, seed=SEEDS)
def test_binary_gradient_matches_finite_differences(target, op, n, k, seed):
    """Both operands broadcast ([n, 1] against [k]), so the adjoints are summed back."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.5, 2, size=(n, 1)), rng.uniform(-2, 2, size=k)
    if op in ("div", "floordiv", "mod", "atan2"):
        b = _uniform(rng, 0.5, 2, k, signed=True)
        a = _uniform(rng, 0.1, 3, (n, 1), signed=True)
    if op in ("floordiv", "mod"):
        ratio = a / b
        assume(np.all(np.abs(ratio - np.round(ratio)) > 1e-3))
    c = rng.normal(size=(n, k))
    m = compiled(OPS_SOURCE, target)
    ga, gb = getattr(m, f"g_{op}")(a, b, c)
    f = getattr(m, f"f_{op}")
    np.testing.assert_allclose(ga, numeric_grad(f, [a, b, c], 0), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(gb, numeric_grad(f, [a, b, c], 1), rtol=TOL, atol=TOL)


# -- subgradients at kinks ------------------------------------------------------------------------

KINKS = """
fn g_relu(x: f64[n]) -> f64[n] { return grad(sum(relu(x)), x) }
fn g_abs(x: f64[n]) -> f64[n] { return grad(sum(abs(x)), x) }
fn g_max(x: f64[n]) -> f64[n] { return grad(max(x), x) }
fn g_min(x: f64[n]) -> f64[n] { return grad(2.0 * min(x), x) }
fn g_max_rows(x: f64[n, k]) -> f64[n, k] { return grad(sum(max(x, axis=1)), x) }
fn g_maximum(a: f64[n], b: f64[n]) -> (f64[n], f64[n]) { return grad(sum(maximum(a, b)), a, b) }
fn g_prod(x: f64[n]) -> f64[n] { return grad(prod(x), x) }
"""


def test_subgradient_conventions(target):
    m = compiled(KINKS, target)
    assert_same(m.g_relu(np.array([-1.0, 0.0, 2.0])), np.array([0.0, 0.0, 1.0]))
    assert_same(m.g_abs(np.array([-1.0, 0.0, 2.0])), np.array([-1.0, 0.0, 1.0]))
    assert_same(m.g_max(np.array([1.0, 3.0, 3.0])), np.array([0.0, 0.5, 0.5]))
    assert_same(m.g_min(np.array([1.0, 1.0, 1.0, 5.0])), np.array([2 / 3, 2 / 3, 2 / 3, 0.0]))
    assert_same(m.g_max_rows(np.array([[1.0, 1.0], [0.0, 2.0]])), np.array([[0.5, 0.5], [0.0, 1.0]]))
    assert_same(m.g_maximum(np.array([1.0, 2.0]), np.array([1.0, 0.0])),
                (np.array([0.5, 1.0]), np.array([0.5, 0.0])))


def test_prod_gradient_with_zeros(target):
    g = compiled(KINKS, target).g_prod
    assert_same(g(np.array([2.0, 3.0, 4.0])), np.array([12.0, 8.0, 6.0]))
    assert_same(g(np.array([2.0, 0.0, 4.0])), np.array([0.0, 8.0, 0.0]))
    assert_same(g(np.array([0.0, 0.0, 4.0])), np.array([0.0, 0.0, 0.0]))


# -- second order ---------------------------------------------------------------------------------

SECOND = """
fn f(x: f64[n], v: f64[n]) -> f64 { return sum(tanh(x) * sigmoid(x) * v) + logsumexp(x * v) }
fn g(x: f64[n], v: f64[n]) -> f64[n] { return grad(f(x, v), x) }
fn hv(x: f64[n], v: f64[n]) -> f64[n] { return grad(sum(g(x, v) * v), x) }
fn cube2(x: f64[n]) -> f64[n] {
    d1 = grad(sum(x * x * x), x)
    return grad(sum(d1), x)
}
fn gnorm(x: f64[n, k], w: f64[k]) -> f64 {
    gw = grad(sum(softmax(x @ w * w[0], axis=0) * x[:, 0]), w)
    return sum(gw * gw)
}
"""


@SETTINGS
@given(n=SIZES, seed=SEEDS)
def test_second_order(target, n, seed):
    m = compiled(SECOND, target)
    rng = np.random.default_rng(seed)
    x, v = rng.normal(size=n), rng.normal(size=n)
    g_of = lambda xx, vv: float(np.sum(m.g(xx, vv) * v))
    np.testing.assert_allclose(m.hv(x, v), numeric_grad(g_of, [x, v], 0), rtol=TOL, atol=TOL)
    assert_same(m.cube2(x), 6 * x)


def test_gradient_of_a_function_using_grad(target):
    rng = np.random.default_rng(1)
    errors = check_grad(compiled(SECOND, target).gnorm, rng.normal(size=(4, 3)), rng.normal(size=3))
    assert max(errors.values()) < TOL


# -- variables: parameters, bound names, dtypes -------------------------------------------------

BOUND = """
fn f(x: f64[n]) -> (f64[n], f64[n]) {
    h = x * 2.0
    y = sum(sin(h)) + sum(x)
    return grad(y, h, x)
}
fn g32(x: f32[n], s: f32, w: f64[2]) -> (f32[n], f32, f64[2]) {
    return grad(sum(x * s), x, s, w)
}
fn self_grad(x: f64) -> f64 { return grad(x, x) }
"""


def test_gradient_with_respect_to_a_bound_name(target):
    x = np.array([0.1, 0.5, -1.0])
    gh, gx = compiled(BOUND, target).f(x)
    assert_same(gh, np.cos(2 * x))
    assert_same(gx, 2 * np.cos(2 * x) + 1)


def test_gradients_have_their_variables_dtype_and_shape(target):
    m = compiled(BOUND, target)
    gx, gs, gw = m.g32(np.array([1.0, 2.0], np.float32), np.float32(3.0), np.zeros(2))
    assert_same(gx, np.array([3.0, 3.0], np.float32))
    assert_same(np.asarray(gs), np.asarray(np.float32(3.0)))
    assert_same(gw, np.zeros(2))  # the loss does not depend on w
    assert_same(np.asarray(m.self_grad(5.0)), np.asarray(1.0))


def test_gradient_nodes_carry_the_location_of_the_call():
    m = tdsl.compile(BOUND, target="numpy")
    graph = m.g32.graph
    for node in toposort(graph.outputs):
        if node.op not in ("param", "sizevar"):
            assert node.loc is not None and node.loc.line == 8, node


# -- the builder API ------------------------------------------------------------------------------

def test_builder_api_grad(target):
    x = tdsl.tensor("x", "f64", ("n",))
    w = tdsl.scalar("w")
    cost = tdsl.sum(tdsl.exp(x * w)) * 2.0
    gx, gw = tdsl.grad(cost, x, w)
    assert gx.shape == ("n",) and gw.shape == () and gx.dtype == "f64"
    f = tdsl.function([x, w], (gx, gw, tdsl.grad(cost, w)), target=target)
    xs = np.array([0.5, -1.0])
    got = f(xs, 0.3)
    expected_gw = np.float64(2 * np.sum(xs * np.exp(xs * 0.3)))
    assert_same(got, (2 * 0.3 * np.exp(xs * 0.3), expected_gw, expected_gw))


def test_builder_api_grad_error_points_at_the_caller():
    x = tdsl.tensor("x", "f64", ("n",))
    with pytest.raises(tdsl.TdslTypeError) as err:
        tdsl.grad(x * 2.0, x)
    assert err.value.loc.file == __file__
    assert "float scalar" in err.value.message


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,message", [
    ("return grad(x, x)", "float scalar to differentiate, not f64[n]"),
    ("return grad(sum(i), x)", "float scalar to differentiate, not i64"),
    ("return grad(sum(x), i)", "gradients need float variables"),
    ("return grad(sum(x), n)", "gradients need float variables"),
    ("return grad(sum(x))", "at least one variable"),
    ("return grad(sum(x), 1.5)", "literal"),
    ("return grad(sum(x), x, axis=0)", "no keyword arguments"),
    ("return grad(two(x), x)", "not a tuple"),
])
def test_grad_errors_are_located(body, message):
    source = ("fn two(x: f64[n]) -> (f64, f64) { return sum(x), sum(x) }\n"
              f"fn f(x: f64[n], i: i64[n]) {{\n    {body}\n}}\n")
    with pytest.raises(tdsl.TdslTypeError) as err:
        tdsl.compile(source, target="numpy", filename="bad.tdsl")
    assert message in err.value.message
    assert (err.value.loc.file, err.value.loc.line, err.value.loc.col) == ("bad.tdsl", 3, 12)
