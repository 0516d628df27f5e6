"""Tests of autodiff: every op's gradient against finite differences, second order, errors.

Each family of cases is one module (and its gradients, for check_grad, one more), built once
per target: a case picks its function from the family by name.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import tdsl
from conftest import assert_same, compiled
from tdsl.gradcheck import check_grad, gradient_functions
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


# -- reductions, layout ops and matmul, through check_grad --------------------------------------

@lru_cache(maxsize=None)
def family(source: str, target: str):
    """The module of a family for `target`, with the gradients of all its functions built (as one
    module) before check_grad asks for them one at a time."""
    module = compiled(source, target)
    gradient_functions(list(module))
    return module


REDUCTIONS = ["sum", "prod", "max", "min", "mean", "var", "std", "logsumexp"]
AXES = [("", ""), (", axis=0", ""), (", axis=1", ""), (", axis=1", ", keepdims=true"), (", axis=(0, 1)", ", keepdims=true")]
# softmax and log_softmax take one axis and keep every dimension: no keepdims=, no tuple of axes
REDUCTION_CASES = [(op, axis, keep) for op in REDUCTIONS + ["softmax", "log_softmax"] for axis, keep in AXES
                   if op in REDUCTIONS or not (keep or "(" in axis)]


def _reduction_call(op: str, axis: str, keep: str) -> str:
    return f"{op}(x{axis or ', axis=0'})" if op in ("softmax", "log_softmax") else f"{op}(x{axis}{keep})"


def _reduction_loss(name: str, op: str, axis: str, keep: str) -> str:
    return f"fn {name}(x: f64[n, k]) -> f64 {{ return sum(sin(2.0 * {_reduction_call(op, axis, keep)} + 0.5)) }}\n"


# One family per axis variant, its functions named after their op: variants that compute the same
# (keepdims=true before the outer sum) then render the same OpenCL program, which PoCL builds
# and compiles once for both. Softmax and log_softmax make one more family.
AXIS_FAMILIES = {(axis, keep): "".join(_reduction_loss(f"r_{op}", op, axis, keep) for op in REDUCTIONS)
                 for axis, keep in AXES}
SOFTMAX_FAMILY = "".join(_reduction_loss(f"{op}_{i}", op, axis, keep) for i, (axis, keep) in enumerate(AXES)
                         for op in ("softmax", "log_softmax") if (op, axis, keep) in REDUCTION_CASES)


def reduction_function(target: str, op: str, axis: str, keep: str):
    if op in REDUCTIONS:
        return family(AXIS_FAMILIES[axis, keep], target)[f"r_{op}"]
    return family(SOFTMAX_FAMILY, target)[f"{op}_{AXES.index((axis, keep))}"]


# check_grad's central differences step about 1e-5 (the cube root of f64's epsilon, times |x|):
# across a kink they average the two one-sided slopes. max/min have one where the extreme ties
# with the next value, std where a group's values are all equal (std of [a, b] is |a - b| / 2).
# Random draws come that close about once in a few thousand cases (seed 6822: min over a row
# [1.4412520, 1.4412516]; seed 275: std over a column [1.2983140, 1.2983141]); the gradients
# there are right, and exact ties are tested on their own (test_ties_share_the_gradient).
KINK_MARGIN = 1e-3


def _kink_distance(x: np.ndarray, op: str, axis: str) -> float:
    """How far `x` is from the nearest kink of `op` over the reduced axes (inf: no kink)."""
    if op not in ("max", "min", "std"):
        return np.inf
    reduced = {", axis=0": [0], ", axis=1": [1]}.get(axis, [0, 1])
    kept = [a for a in range(x.ndim) if a not in reduced]
    size = int(np.prod([x.shape[a] for a in reduced]))
    groups = np.sort(np.transpose(x, kept + reduced).reshape(-1, size), axis=-1)
    if groups.shape[-1] < 2:
        return np.inf
    if op == "std":
        return float(np.min(groups[:, -1] - groups[:, 0]))
    gaps = groups[:, 1] - groups[:, 0] if op == "min" else groups[:, -1] - groups[:, -2]
    return float(np.min(gaps))


@pytest.mark.parametrize("op,axis,keep", REDUCTION_CASES)
@SETTINGS
@given(n=SIZES, k=SIZES, seed=SEEDS)
def test_reduction_gradient(target, op, axis, keep, n, k, seed):
    if op == "std":
        assume(n > 1 and k > 1)  # std of one element is sqrt at 0, a kink
    x = np.random.default_rng(seed).uniform(0.5, 1.5, size=(n, k))
    assume(_kink_distance(x, op, axis) > KINK_MARGIN)
    fn = reduction_function(target, op, axis, keep)
    errors = check_grad(fn, x)
    assert errors["x"] < TOL, (fn.signature, _reduction_call(op, axis, keep), errors)


TIES = """
fn gmin(x: f64[n, k]) { return grad(sum(min(x, axis=1)), x) }
fn gmax(x: f64[n, k]) { return grad(max(x), x) }
"""


def test_ties_share_the_gradient(target):
    """At a tie, max and min share the gradient equally among the tied elements (section 7)."""
    m = compiled(TIES, target)
    x = np.array([[1.0, 1.0, 2.0], [3.0, 0.5, 0.5], [4.0, 5.0, 6.0]])
    assert_same(m.gmin(x), np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [1, 0, 0]]), rtol=0, atol=0)
    y = np.array([[2.0, 2.0], [1.0, 2.0]])
    assert_same(m.gmax(y), np.array([[1, 1], [0, 1]]) / 3, rtol=0, atol=1e-16)


def test_kink_distance_finds_the_reported_near_ties():
    """The two cases reported failing (finite differences across a kink) are left out."""
    x = np.random.default_rng(6822).uniform(0.5, 1.5, size=(4, 2))
    assert _kink_distance(x, "min", ", axis=1") < KINK_MARGIN <= _kink_distance(x, "min", ", axis=0")
    x = np.random.default_rng(275).uniform(0.5, 1.5, size=(2, 4))
    assert _kink_distance(x, "std", ", axis=0") < KINK_MARGIN <= _kink_distance(x, "std", ", axis=1")


LAYOUT = [
    "x[1:]", "x[::2]", "x[::-1]", "x[1:, ::-2]", "x[-1]", "x[:, 0]", "x[0, 1]", "x[None, ...]",
    "x[1::2]", "x[1:, 1::2]", "x[-2::-2]", "x[:, -2::-1]", "x.T", "transpose(reshape(x, (n, k, 1)), (2, 0, 1))",
    "reshape(x, (n * k,))", "reshape(x, (-1,))", "broadcast_to(reshape(x, (n, 1, k)), (n, 3, k))",
    "expand_dims(x, 0)", "squeeze(reshape(x, (n, 1, k)), 1)", "concat((x, 2.0 * x), axis=1)",
    "concat((x, sin(x), x[1:]), axis=0)", "stack((x, x * x), axis=1)", "flip(x)", "flip(x, 1)",
    "take(x, [0, 0, 1], axis=1)", "take(x, [-1, 0, -1, 1], axis=0)", "x[[1, 0, 1]]",
    "take(x, reshape(arange(2), (1, 2)), axis=1)", "f64(f32(x))", "outer(x[0], x[1])",
    "dot(x[0], x[1])", "x @ x.T", "x.T @ x[:, 0]", "x[:, 0] @ x",
]
LAYOUT_SOURCE = "".join(f"fn case_{i}(x: f64[n, k]) -> f64 {{ return sum(sin(1.5 * {expr} + 0.25)) }}\n"
                        for i, expr in enumerate(LAYOUT))


@pytest.mark.parametrize("expr", LAYOUT)
@SETTINGS
@given(n=st.integers(2, 4), k=st.integers(2, 4), seed=SEEDS)
def test_layout_gradient(target, expr, n, k, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, k))
    rounds = "f32" in expr  # the f32 step quantizes x: finite differences need a wide step
    fn = family(LAYOUT_SOURCE, target)[f"case_{LAYOUT.index(expr)}"]
    errors = check_grad(fn, x, eps=1e-3 if rounds else None)
    tol = 1e-3 if rounds else TOL
    assert errors["x"] < tol, (expr, errors)


MATMUL = [
    ("f64[n, k]", "f64[k, m]"), ("f64[k]", "f64[k, m]"), ("f64[n, k]", "f64[k]"), ("f64[k]", "f64[k]"),
    ("f64[2, n, k]", "f64[k, m]"), ("f64[2, n, k]", "f64[1, k, m]"), ("f64[k]", "f64[3, k, m]"),
]
MATMUL_SOURCE = "".join(f"fn case_{i}(a: {ta}, b: {tb}) -> f64 {{ return sum(sin(a @ b)) }}\n"
                        for i, (ta, tb) in enumerate(MATMUL))


@pytest.mark.parametrize("ta,tb", MATMUL)
@SETTINGS
@given(n=SIZES, k=SIZES, m=SIZES, seed=SEEDS)
def test_matmul_gradient(target, ta, tb, n, k, m, seed):
    rng = np.random.default_rng(seed)
    shape = lambda t: tuple({"n": n, "k": k, "m": m}.get(d.strip(), None) or int(d) for d in t[4:-1].split(","))
    a, b = rng.normal(size=shape(ta)), rng.normal(size=shape(tb))
    errors = check_grad(family(MATMUL_SOURCE, target)[f"case_{MATMUL.index((ta, tb))}"], a, b)
    assert max(errors.values()) < TOL, errors


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


def test_check_grad_refuses_a_non_scalar_function():
    m = tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x }", target="numpy")
    with pytest.raises(tdsl.TdslTypeError, match="one float scalar result"):
        check_grad(m.f, np.ones(2))


def test_check_grad_reports_every_float_parameter(target):
    m = compiled("fn f(x: f64[n], s: f64, i: i64) -> f64 { return sum(x * x) * s + f64(i) }", target)
    errors = check_grad(m.f, np.array([1.0, 2.0]), 3.0, 4)
    assert set(errors) == {"x", "s"} and max(errors.values()) < TOL


# -- the op table: every op has a gradient rule or cannot carry one --------------------------------

NO_GRADIENT = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "isnan", "isinf", "isfinite",
               "any", "all", "argmax", "argmin"}  # their results are bool or integer


def test_every_op_has_a_gradient_rule_and_a_test():
    from tdsl.ops import OPS
    tested = set(UNARY) | set(BINARY) | set(REDUCTIONS) | {"cast", "reshape", "transpose", "broadcast", "slice",
                                                            "concat", "take", "matmul"}
    for name, op in OPS.items():
        if op.kind == "source":
            continue
        assert (op.grad is None) == (name in NO_GRADIENT), name
        if op.grad is not None:
            assert name in tested, f"{name} has a gradient rule but no finite-difference test"


def test_check_grad_on_the_f32_logistic_example(target):
    from pathlib import Path
    m = tdsl.load(Path(__file__).resolve().parents[1] / "examples" / "logistic.tdsl", target=target)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = (rng.uniform(size=20) > 0.5).astype(np.float32)
    errors = check_grad(m.loss, x, y, rng.normal(size=3).astype(np.float32), np.float32(0.1))
    assert set(errors) == {"x", "y", "w", "b"} and max(errors.values()) < 1e-2, errors
