"""Tests of the rewrites: each rule fires, keeps NumPy's results (or stabilizes them), and the driver."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tdsl
from conftest import assert_same, compiled
from tdsl.bind import Binder
from tdsl.graph import toposort
from tdsl.interp import run
from tdsl.pipeline import check_source
from tdsl.printer import to_tdsl
from tdsl.rewrite import RULES, Pat, Rule, simplify_graph

SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e308, 5e-324])
INTS = np.array([0, 1, -1, 7, np.iinfo(np.int64).max, np.iinfo(np.int64).min])


def raw_graph(source: str, name: str = "f"):
    return next(g for g in check_source(source) if g.name == name)


def ops_after(source: str, name: str = "f") -> list[str]:
    """The ops of the rewritten graph's results, in order."""
    return [n.op for n in toposort(simplify_graph(raw_graph(source, name)).outputs)]


def reference(source: str, *args, name: str = "f"):
    """The unrewritten graph, run by the interpreter."""
    graph = raw_graph(source, name)
    arrays, sizes = Binder(graph).bind(args, {})
    out = [o[()] if o.ndim == 0 else o for o in run(graph, arrays, sizes)]
    return tuple(out) if graph.tuple_result else out[0]


def assert_identical(got, expected, rtol=0.0):
    """Same dtype, shape and values, NaN for NaN and the sign of zero included (a NaN's sign is noise).

    `rtol` admits the few ulps a vector math library may differ from NumPy's in a transcendental
    function (the contract's floating-point tolerance); signs still count exactly."""
    assert_same(got, expected, rtol=rtol, atol=0)
    for g, e in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
        g, e = np.asarray(g), np.asarray(e)
        if g.dtype.kind == "f":
            assert np.array_equal(np.signbit(g) & ~np.isnan(g), np.signbit(e) & ~np.isnan(e))


def test_rules_are_data():
    assert all(isinstance(r, Rule) and isinstance(r.pattern, Pat) and callable(r.rewrite) for r in RULES)
    assert len({r.name for r in RULES}) == len(RULES)


# -- algebraic rules: they fire, and results stay exactly NumPy's -------------------------------

EXACT = [
    # (body over x: f64[n], op that must be gone)
    ("x * 1.0", "mul"), ("1.0 * x", "mul"), ("x / 1.0", "div"), ("x ** 1.0", "pow"),
    ("x - 0.0", "sub"), ("x + -0.0", "add"), ("--x", "neg"), ("-(x * -1.0)", "mul"),
    ("transpose(transpose(reshape(x, (n, 1, 1)), (1, 2, 0)), (2, 1, 0))", "none"),
    ("reshape(reshape(x, (1, n)), (n, 1))", "none"), ("f64(f32(f64(x)))", "none"),
    ("broadcast_to(broadcast_to(x, (2, n)), (3, 2, n))", "none"),
]


@pytest.mark.parametrize("body,gone", EXACT)
def test_exact_float_rules(target, body, gone):
    source = f"fn f(x: f64[n]) {{ return {body} }}"
    if gone != "none":
        assert gone not in ops_after(source), ops_after(source)
    assert_identical(compiled(source, target).f(SPECIAL), reference(source, SPECIAL))


def test_layout_chains_collapse():
    assert ops_after("fn f(x: f64[n]) { return reshape(reshape(x, (1, n)), (n, 1)) }") == ["param", "reshape"]
    assert ops_after("fn f(x: f64[a, b]) { return transpose(x.T) }") == ["param"]
    assert ops_after("fn f(x: f32[n]) { return f32(f64(x)) }") == ["param"]
    assert "cast" in ops_after("fn f(x: f64[n]) { return f64(f32(x)) }")  # f32 loses digits: kept


@pytest.mark.parametrize("body", ["x + 0", "0 + x", "x - x", "x * 0", "x * 1 + x * -1", "x - x + zeros_like(x)"])
def test_integer_rules(target, body):
    source = f"fn f(x: i64[n]) {{ return {body} }}"
    assert "mul" not in ops_after(source) and "sub" not in ops_after(source)
    assert_identical(compiled(source, target).f(INTS), reference(source, INTS))


def test_a_scalar_power_of_one_half_is_numpys_square_root(target):
    """NumPy's float power with a scalar exponent 0.5 is sqrt: NaN at -inf, -0.0 at -0.0 (pow gives
    inf and +0.0); an array of exponents goes through pow, there as in NumPy."""
    source = "fn f(x: f64[n]) { return x ** 0.5, f32(x) ** 0.5 }\nfn g(x: f64[n], p: f64[n]) { return x ** p }"
    x = np.array([-np.inf, -0.0, 0.0, 4.0, 2.0, np.nan, -1.0])
    with np.errstate(invalid="ignore"):
        expected = (x ** 0.5, x.astype(np.float32) ** 0.5)
        array_exponents = np.power(x, np.full_like(x, 0.5))
    assert_identical(compiled(source, target).f(x), expected)
    got = compiled(source, target).g(x, np.full_like(x, 0.5))
    np.testing.assert_array_equal(got[:2], array_exponents[:2])   # inf and +0.0 by pow


@pytest.mark.parametrize("body", ["x - x", "x * 0.0", "x + 0.0", "atan2(x + 0.0, -1.0)"])
def test_float_rules_that_must_not_fire(target, body):
    """inf - inf and inf * 0 are NaN; -0.0 + 0.0 is +0.0 (atan2 tells them apart)."""
    source = f"fn f(x: f64[n]) {{ return {body} }}"
    ulps = 4e-16 if "atan2" in body else 0.0   # atan2 of +0.0 and -0.0 differ by pi, far past this
    assert_identical(compiled(source, target).f(SPECIAL), reference(source, SPECIAL), rtol=ulps)


def test_simplifying_keeps_shape_and_dtype_by_broadcasting(target):
    source = "fn f(x: f64, i: i32) -> (f64[3], i32[2, 2]) { return x * [1.0, 1.0, 1.0], i + [[0, 0], [0, 0]] }"
    assert ops_after(source) == ["param", "broadcast", "param", "broadcast"]
    assert_identical(compiled(source, target).f(2.5, 3), reference(source, 2.5, 3))


def test_dropping_a_subgraph_never_drops_a_call_time_error(target):
    source = "fn f(x: i64[n]) -> i64 { return max(x) * 0 }"
    assert "max" in ops_after(source)
    with pytest.raises(tdsl.TdslRuntimeError):
        compiled(source, target).f(np.zeros(0, np.int64))


# -- constant folding ---------------------------------------------------------------------------

def test_constant_folding(target):
    source = "const K = 2.0\nfn f(x: f64[n]) -> f64[n] { return x * (K * 3.0 - 1.0) + f64(7 // 0) }"
    assert ops_after(source) == ["param", "const", "mul", "const", "add"]
    assert_identical(compiled(source, target).f(SPECIAL), reference(source, SPECIAL))


def test_no_folding_of_size_variables_or_call_time_errors(target):
    assert "sizevar" in ops_after("fn f(x: f64[n]) -> i64 { return n * 2 }")
    source = "fn f(x: f64[n]) -> f64[1] { return take([1.0, 2.0], [5]) }"
    assert "take" in ops_after(source)
    with pytest.raises(tdsl.TdslRuntimeError):
        compiled(source, target).f(np.zeros(1))
    f = tdsl.function([], tdsl.max(np.zeros(0)), target=target)
    assert "max" in [n.op for n in toposort(f.graph.outputs)]
    with pytest.raises(tdsl.TdslRuntimeError):
        f()


# -- CSE, dead code, the named values -------------------------------------------------------------

def test_common_subexpressions_are_merged():
    ops = ops_after("fn f(x: f64[n]) -> f64 { u = exp(x); v = exp(x); return sum(u + v) + sum(exp(x)) }")
    assert ops.count("exp") == 1 and ops.count("sum") == 2


def test_dead_code_is_gone_but_named_values_stay_traceable(target):
    source = "fn f(x: f64[n]) -> f64[n] { unused = exp(x) * 2.0; y = x * 1.0; return y + x }"
    assert "exp" not in ops_after(source)
    fn = compiled(source, target).f
    assert [name for name, _ in fn.graph.named] == ["unused", "y"]
    x = np.array([1.0, -2.0])
    assert_same(fn.trace(x)["unused"], np.exp(x) * 2.0)
    assert_same(fn(x), 2 * x)


def test_rewriting_is_deterministic_and_a_fixpoint():
    source = "fn f(x: f64[n, k]) -> f64[n, k] { return log(softmax(x * 1.0, axis=1)) + log(1.0 + x) }"
    once = simplify_graph(raw_graph(source))
    again = simplify_graph(raw_graph(source))
    assert to_tdsl(once) == to_tdsl(again)
    assert simplify_graph(once).outputs == once.outputs


# -- stabilization ----------------------------------------------------------------------------------

STABLE = """
fn log_sig(x: f64[n]) -> f64[n] { return log(sigmoid(x)) }
fn log_one_minus_sig(x: f64[n]) -> f64[n] { return log(1.0 - sigmoid(x)) }
fn log_one_plus(x: f64[n]) -> f64[n] { return log(1.0 + x) }
fn exp_minus_one(x: f64[n]) -> f64[n] { return exp(x) - 1.0 }
fn log_softmax_of(x: f64[n, k]) -> f64[n, k] { return log(softmax(x, axis=1)) }
fn log_sum_exp(x: f64[n, k]) -> f64[n] { return log(sum(exp(x), axis=1)) }
fn log_sum_exp_all(x: f32[n, k]) -> f32[1, 1] { return log(sum(exp(x), keepdims=true)) }
fn log_one_plus_exp(x: f64[n]) -> f64[n] { return log(1.0 + exp(x)) }
fn log_sig32(x: f32) -> f32 { return log(sigmoid(x)) }
fn grad_log_sig(x: f32) -> f32 { return grad(log(sigmoid(x)), x) }
"""
NP_STABLE = {
    "log_sig": lambda x: -np.logaddexp(0, -x), "log_one_minus_sig": lambda x: -np.logaddexp(0, x),
    "log_one_plus": np.log1p, "exp_minus_one": np.expm1, "log_one_plus_exp": lambda x: np.logaddexp(0, x),
    "log_softmax_of": lambda x: x - np.log(np.sum(np.exp(x), axis=1, keepdims=True)),
    "log_sum_exp": lambda x: np.log(np.sum(np.exp(x), axis=1)),
}


@pytest.mark.parametrize("name", list(NP_STABLE))
def test_stabilization_keeps_moderate_results(target, name):
    shape = (3, 4) if "softmax" in name or "sum" in name else (7,)
    x = np.random.default_rng(0).uniform(-0.9, 3, size=shape)
    assert_same(getattr(compiled(STABLE, target), name)(x), NP_STABLE[name](x), rtol=1e-12, atol=1e-12)


def test_stabilization_gives_finite_right_answers_at_the_extremes(target):
    m = compiled(STABLE, target)
    assert_same(m.log_sig(np.array([-100.0, -1000.0])), np.array([-100.0, -1000.0]))
    assert_same(np.asarray(m.log_sig32(np.float32(-100))), np.asarray(np.float32(-100)))
    assert_same(m.log_one_minus_sig(np.array([100.0, 1000.0])), np.array([-100.0, -1000.0]))
    assert_same(m.log_one_plus(np.array([1e-20])), np.array([1e-20]), rtol=1e-12, atol=0)
    assert_same(m.exp_minus_one(np.array([1e-20])), np.array([1e-20]), rtol=1e-12, atol=0)
    assert_same(m.log_softmax_of(np.array([[1000.0, 0.0]])), np.array([[0.0, -1000.0]]))
    assert_same(m.log_sum_exp(np.array([[1000.0, 1000.0]])), np.array([1000.0 + np.log(2)]))
    big = np.full((2, 2), 100.0, np.float32)
    assert_same(m.log_sum_exp_all(big), np.array([[100 + np.log(4)]], np.float32))
    assert_same(m.log_one_plus_exp(np.array([1000.0])), np.array([1000.0]))
    assert_same(np.asarray(m.grad_log_sig(np.float32(-100))), np.asarray(np.float32(1.0)))


def test_stabilized_forms_are_what_the_graph_holds():
    assert "sigmoid" not in ops_after(STABLE, "log_sig")
    assert "log1p" in ops_after(STABLE, "log_one_plus")
    assert "expm1" in ops_after(STABLE, "exp_minus_one")
    assert "div" not in ops_after(STABLE, "log_softmax_of")
    assert "softplus" in ops_after(STABLE, "log_one_plus_exp")
    assert ops_after(STABLE, "log_sum_exp").count("max") == 1
    # the builtins are already stable: rewriting leaves their form alone
    assert ops_after("fn f(x: f64[n]) -> f64 { return logsumexp(x) }").count("max") == 1


# -- random programs: rewriting never changes a result ----------------------------------------------

LEAVES = ["x", "y", "0.0", "1.0", "-1.0", "-0.0", "2.0"]
FLOAT_OPS = ["{} + {}", "{} - {}", "{} * {}", "{} / {}", "-{}", "maximum({}, {})", "{} ** 1.0"]
INT_LEAVES = ["i", "j", "0", "1", "-1", "3"]
INT_OPS = ["{} + {}", "{} - {}", "{} * {}", "-{}", "{} // {}", "{} % {}"]


def _expression(leaves, ops):
    def extend(children):
        return st.tuples(st.sampled_from(ops), children, children).map(
            lambda t: "(" + t[0].format(*t[1:t[0].count("{}") + 1]) + ")")
    return st.recursive(st.sampled_from(leaves), extend, max_leaves=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fexpr=_expression(LEAVES, FLOAT_OPS), iexpr=_expression(INT_LEAVES, INT_OPS))
def test_random_programs_keep_their_results(target, fexpr, iexpr):
    source = (f"fn f(x: f64[n], y: f64[n], i: i64[n], j: i64[n]) -> (f64[n], i64[n]) {{\n"
              f"    return broadcast_to(f64({fexpr}), (n,)), broadcast_to(i64({iexpr}), (n,))\n}}")
    x = np.array([0.0, -0.0, 1.5, -2.0, np.inf, np.nan, 3.0])
    y = np.array([-0.0, 2.0, 0.0, np.inf, -1.0, 1.0, -3.0])
    i = np.array([0, 1, -1, 7, -7, 2**62, 5])
    j = np.array([3, 0, -1, 2, 5, -2, -(2**62)])
    got, expected = compiled(source, target).f(x, y, i, j), reference(source, x, y, i, j)
    # the sign of a zero is checked on the reference target, where only the rewrites differ
    (assert_identical if target == "numpy" else assert_same)(got, expected)


# -- every rule earns its place ----------------------------------------------------------------------

FIRES = {
    "constant folding": "fn f(x: f64) -> f64 { return x * (2.0 * 3.0) }",
    "x * 1": "fn f(x: f64) -> f64 { return x * 1.0 }",
    "x / 1": "fn f(x: f64) -> f64 { return x / 1.0 }",
    "x ** 1": "fn f(x: f64) -> f64 { return x ** 1.0 }",
    "x ** 0.5 -> sqrt(x)": "fn f(x: f64) -> f64 { return x ** 0.5 }",
    "x + 0": "fn f(x: i64) -> i64 { return x + 0 }",
    "x - 0": "fn f(x: f64) -> f64 { return x - 0.0 }",
    "x * -1": "fn f(x: f64) -> f64 { return x * -1.0 }",
    "--x": "fn f(x: f64) -> f64 { return --x }",
    "x - x (integers)": "fn f(x: i64) -> i64 { return x - x }",
    "x * 0 (integers)": "fn f(x: i64) -> i64 { return x * 0 }",
    "transpose of transpose": "fn f(x: f64[a, b]) -> f64[a, b] { return x.T.T }",
    "reshape of reshape": "fn f(x: f64[n]) -> f64[n] { return reshape(reshape(x, (1, n)), (n,)) }",
    "broadcast of broadcast": "fn f(x: f64) -> f64[2, 3] { return broadcast_to(broadcast_to(x, (3,)), (2, 3)) }",
    "cast round trip": "fn f(x: f32) -> f32 { return f32(f64(x)) }",
    "log(sigmoid(x)) -> -softplus(-x)": "fn f(x: f64) -> f64 { return log(sigmoid(x)) }",
    "log(1 - sigmoid(x)) -> -softplus(x)": "fn f(x: f64) -> f64 { return log(1.0 - sigmoid(x)) }",
    "log(1 + x) -> log1p(x)": "fn f(x: f64) -> f64 { return log(1.0 + x) }",
    "log1p(exp(x)) -> softplus(x)": "fn f(x: f64) -> f64 { return log1p(exp(x)) }",
    "exp(x) - 1 -> expm1(x)": "fn f(x: f64) -> f64 { return exp(x) - 1.0 }",
    "log(softmax(x)) -> log_softmax(x)": "fn f(x: f64[n]) -> f64[n] { return log(softmax(x)) }",
    "log(sum(exp(x))) -> logsumexp(x)": "fn f(x: f64[n]) -> f64 { return log(sum(exp(x))) }",
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_every_rule_changes_its_example(rule):
    graph = raw_graph(FIRES[rule.name])
    without = simplify_graph(graph, [r for r in RULES if r is not rule])
    assert simplify_graph(graph).outputs != without.outputs
