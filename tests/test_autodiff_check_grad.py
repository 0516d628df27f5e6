"""Gradients through check_grad: reductions, layout ops and matmul against central differences,
check_grad's own behaviour, and the op table (every gradient rule has a test here or in
tests/test_autodiff.py).

Each family of cases is one module (and its gradients one more), built once per target: a
case picks its function from the family by name.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tdsl
from conftest import assert_same, compiled
from test_autodiff import BINARY, SEEDS, SETTINGS, SIZES, TOL, UNARY
from tdsl.gradcheck import check_grad, gradient_functions


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


# -- check_grad itself --------------------------------------------------------------------------

def test_check_grad_refuses_a_non_scalar_function():
    m = tdsl.compile("fn f(x: f64[n]) -> f64[n] { return x }", target="numpy")
    with pytest.raises(tdsl.TdslTypeError, match="one float scalar result"):
        check_grad(m.f, np.ones(2))


def test_check_grad_reports_every_float_parameter(target):
    m = compiled("fn f(x: f64[n], s: f64, i: i64) -> f64 { return sum(x * x) * s + f64(i) }", target)
    errors = check_grad(m.f, np.array([1.0, 2.0]), 3.0, 4)
    assert set(errors) == {"x", "s"} and max(errors.values()) < TOL


def test_check_grad_on_the_f32_logistic_example(target):
    from pathlib import Path
    m = tdsl.load(Path(__file__).resolve().parents[1] / "examples" / "logistic.tdsl", target=target)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = (rng.uniform(size=20) > 0.5).astype(np.float32)
    errors = check_grad(m.loss, x, y, rng.normal(size=3).astype(np.float32), np.float32(0.1))
    assert set(errors) == {"x", "y", "w", "b"} and max(errors.values()) < 1e-2, errors


# -- the op table: every op has a gradient rule or cannot carry one --------------------------------

NO_GRADIENT = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "isnan", "isinf", "isfinite",
               "any", "all", "argmax", "argmin",  # their results are bool or integer
               "argsort"}                          # section 12: an integer result too


def test_every_op_has_a_gradient_rule_and_a_test():
    from tdsl.ops import OPS, RANDOM
    tested = set(UNARY) | set(BINARY) | set(REDUCTIONS) | {"cast", "reshape", "transpose", "broadcast", "slice",
                                                            "concat", "take", "matmul", "update", "scatter"}
    # section 12: tests/test_scatter.py, tests/test_ordering.py
    tested |= {"scatter_add", "take_along_axis", "cumsum", "cumprod", "sort", "top_k",
               "unsort", "cumprod_grad"}   # second derivatives: tests/test_section12_acceptance.py
    tested |= {op.name for op in RANDOM}   # random numbers: constants, no adjoint (tests/test_random.py)
    for name, op in OPS.items():
        if op.kind in ("source", "region"):   # regions: tests/test_control_grad.py
            continue
        assert (op.grad is None) == (name in NO_GRADIENT), name
        if op.grad is not None:
            assert name in tested, f"{name} has a gradient rule but no finite-difference test"
