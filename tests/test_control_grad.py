"""grad through loops, branches and indexed updates (section 11), on every target.

Each gradient is checked against central finite differences of the function itself
(tdsl.gradcheck.check_grad) and the values against a NumPy loop written here.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tdsl
from conftest import TARGETS, require_target
from tdsl.gradcheck import check_grad

SOURCE = """
fn recurrence(x: f64[n], w: f64) -> f64 {
    s = 0.0
    for i in range(n) {
        s = s * w + sin(x[i])
    }
    return s * s
}

fn rnn(xs: f64[t, b, d], h0: f64[b, k], w: f64[d, k], u: f64[k, k]) -> f64 {
    h = h0
    hs = zeros((t, b, k))
    for i in range(t) {
        h = tanh(xs[i] @ w + h @ u)
        hs[i] = h
    }
    return sum(hs * hs) + sum(h)
}

fn branch(x: f64[n], c: f64) -> f64 {
    if c > 0.0 {
        y = x * c
    } else {
        y = sin(x) * 2.0
    }
    return sum(y * y)
}

fn loop_in_branch(x: f64[n, m], a: f64) -> f64 {
    s = 0.0
    for i in range(n) {
        if x[i, 0] > 0.0 {
            for j in range(m) {
                s = s + a * x[i, j] * x[i, j]
            }
        } else {
            s = s - a * sum(x[i])
        }
    }
    return s
}

fn branch_with_loop(x: f64[n], a: f64) -> f64 {
    y = x * 1.0
    if a > 0.0 {
        for i in range(1, n) {
            y[i] = y[i - 1] * a + y[i]
        }
    }
    return sum(y * y)
}

fn reversed_updates(x: f64[n]) -> f64 {
    y = x * 1.0
    for i in range(n - 1, 0, -1) {
        y[i - 1] = y[i - 1] + y[i] * y[i]
    }
    return sum(y)
}

fn negative_indices(x: f64[n]) -> f64 {
    s = 0.0
    for i in range(-2, 2) {
        s = s + x[i] * s + x[i]
    }
    return s
}

fn updates(x: f64[n, m], v: f64[m], j: i64) -> f64 {
    y = x * 1.0
    y[j] = v
    y[-1] = v * 3.0
    y[0, 1:3] += v[0:2] * v[0:2]
    return sum(sin(y))
}

fn value_and_grad(x: f64[n], w: f64) -> (f64, f64) {
    l = recurrence(x, w)
    return l, grad(l, w)
}

fn nested_carried(x: f64[n, m]) -> f64 {
    total = 0.0
    for i in range(n) {
        row = 0.0
        for j in range(m) {
            row = row * 0.5 + cos(x[i, j])
        }
        total = total + row * row
    }
    return total
}
"""


@functools.cache
def module(target: str):
    return tdsl.compile(SOURCE, target=target)


@pytest.fixture(params=TARGETS)
def target(request) -> str:
    require_target(request.param)
    return request.param


RNG = np.random.default_rng(11)
CASES = {
    "recurrence": lambda: (RNG.standard_normal(5), 0.7),
    "rnn": lambda: (RNG.standard_normal((3, 2, 4)), RNG.standard_normal((2, 5)), RNG.standard_normal((4, 5)),
                    RNG.standard_normal((5, 5)) * 0.3),
    "branch": lambda: (RNG.standard_normal(4), 0.5),
    "loop_in_branch": lambda: (RNG.standard_normal((4, 3)), 0.3),
    "branch_with_loop": lambda: (RNG.standard_normal(5), 0.6),
    "reversed_updates": lambda: (RNG.standard_normal(4) * 0.5,),
    "negative_indices": lambda: (RNG.standard_normal(4) * 0.5,),
    "updates": lambda: (RNG.standard_normal((4, 3)), RNG.standard_normal(3), 1),
    "nested_carried": lambda: (RNG.standard_normal((3, 4)),),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(target, name):
    errors = check_grad(module(target)[name], *CASES[name]())
    assert errors and max(errors.values()) < 1e-6, errors


def test_the_other_branch_has_its_own_gradient(target):
    errors = check_grad(module(target).branch, RNG.standard_normal(4), -0.5)
    assert max(errors.values()) < 1e-6, errors
    errors = check_grad(module(target).branch_with_loop, RNG.standard_normal(5), -0.6)
    assert max(errors.values()) < 1e-6, errors


def test_a_loop_and_its_gradient_in_one_function_run_the_loop_once(target):
    """grad reruns the loop to store its carried values; the rewrite reads the function's own
    result from that rerun (once a wrong answer on the compiled targets: the result read a
    buffer no kernel wrote)."""
    from tdsl.graph import toposort
    m = module(target)
    x, w = RNG.standard_normal(6), 0.5
    value, gradient = m.value_and_grad(x, w)
    s = 0.0
    for v in x:
        s = s * w + np.sin(v)
    assert np.isclose(value, s * s)
    eps = 1e-6
    numeric = (m.recurrence(x, w + eps) - m.recurrence(x, w - eps)) / (2 * eps)
    assert np.isclose(gradient, numeric, rtol=1e-6, atol=1e-9)
    g = m.value_and_grad.graph
    loops = {(n.attr("region"), n.inputs) for n in toposort(list(g.outputs)) if n.op == "for"}
    assert len(loops) == 2   # the forward loop (storing) and the backward one


def test_the_rnn_matches_a_numpy_loop(target):
    xs, h0, w, u = CASES["rnn"]()
    h, total = h0, 0.0
    for i in range(xs.shape[0]):
        h = np.tanh(xs[i] @ w + h @ u)
        total += np.sum(h * h)
    assert np.isclose(module(target).rnn(xs, h0, w, u), total + np.sum(h))


def test_grad_through_while_is_a_compile_error_at_the_while():
    src = "fn f(x: f64) -> f64 {\n    y = x\n    while y > 1.0 { y = y / 2.0 }\n    return grad(y, x)\n}"
    with pytest.raises(tdsl.TdslTypeError) as info:
        tdsl.compile(src, target="numpy")
    assert (info.value.loc.line, info.value.loc.col) == (3, 5)
    assert "while" in info.value.message


def test_grad_through_a_loop_with_run_time_bounds_says_why_it_cannot():
    src = "fn f(x: f64[n], k: i64) -> f64[n] {\n    s = 0.0\n    for i in range(k) { s = s + sum(x) }\n" \
          "    return grad(s, x)\n}"
    with pytest.raises(tdsl.TdslTypeError) as info:
        tdsl.compile(src, target="numpy")
    assert info.value.loc.line == 3
    assert "bounds" in info.value.message
