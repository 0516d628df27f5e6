"""Control flow from Python and in the inspection tools (LANGUAGE.md section 11):
tdsl.fori_loop / while_loop / cond and Var.at, Function.trace and explain() inside loops and
branches, and the printers (graph_text, graph_dot, to_tdsl) of graphs with regions.

Every check compares with NumPy. `CONTROL_TARGETS` lists the targets that run control flow;
add a compiled target there once it does.
"""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import tdsl
from conftest import TARGETS, require_target
from tdsl.printer import _dot_text, graph_dot, graph_text

CONTROL_TARGETS = TARGETS


@pytest.fixture(params=CONTROL_TARGETS)
def target(request) -> str:
    require_target(request.param)
    return request.param


def here() -> int:
    return sys._getframe(1).f_lineno


RNG = np.random.default_rng(7)


# -- fori_loop ---------------------------------------------------------------------------------

def test_fori_loop_sums_a_captured_array_and_a_weak_init_takes_its_dtype(target):
    x = tdsl.tensor("x", "f32", "n")
    k = tdsl.scalar("k", "i64")
    s = tdsl.fori_loop(0, k, lambda i, c: c + x[i] * 2.0, 0.0)
    assert s.dtype == "f32" and s.shape == ()
    f = tdsl.function([x, k], s, target=target)
    xv = RNG.random(5, dtype=np.float32)
    got = f(xv, 3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.sum(xv[:3] * np.float32(2)), rtol=1e-6)
    assert f(xv, 0) == 0.0   # zero iterations leave the init


def test_fori_loop_with_a_tuple_or_list_carry_returns_the_same_structure(target):
    k = tdsl.scalar("k", "i64")
    a0 = tdsl.scalar("a0", "i64")
    fib = tdsl.fori_loop(0, k, lambda i, c: (c[1], c[0] + c[1]), (a0, 1))
    assert isinstance(fib, tuple) and len(fib) == 2
    f = tdsl.function([k, a0], fib, target=target)
    assert [int(v) for v in f(10, 0)] == [55, 89]
    as_list = tdsl.fori_loop(0, k, lambda i, c: [c[0] + i, c[1] * 2], [a0, tdsl.f64(a0)])
    assert isinstance(as_list, list)
    g = tdsl.function([k, a0], tuple(as_list), target=target)
    got = g(4, 1)
    assert int(got[0]) == 1 + 0 + 1 + 2 + 3 and float(got[1]) == 16.0


def test_fori_loop_bounds_may_be_vars_and_the_index_counts_negatives_from_the_end(target):
    x = tdsl.tensor("x", "f64", "n")
    lo, hi = tdsl.scalar("lo", "i64"), tdsl.scalar("hi", "i64")
    s = tdsl.fori_loop(lo, hi, lambda i, c: c + x[i], tdsl.f64(0))
    f = tdsl.function([x, lo, hi], s, target=target)
    xv = RNG.random(6)
    np.testing.assert_allclose(f(xv, -2, 2), xv[-2] + xv[-1] + xv[0] + xv[1])
    assert f(xv, 4, 1) == 0.0
    with pytest.raises(tdsl.TdslRuntimeError):
        f(xv, 0, 7)   # x[6] is out of range


def test_nested_fori_loops_close_over_the_outer_index_and_carry(target):
    x = tdsl.tensor("x", "f32", "n")
    k = tdsl.scalar("k", "i64")

    def outer(i, acc):
        return tdsl.fori_loop(0, i + 1, lambda j, a: a + x[j] * tdsl.f32(i), acc)
    t = tdsl.fori_loop(0, k, outer, tdsl.zeros((), dtype="f32"))
    f = tdsl.function([x, k], t, target=target)
    xv = RNG.random(5, dtype=np.float32)
    want = sum(np.float32(i) * xv[:i + 1].sum() for i in range(4))
    np.testing.assert_allclose(f(xv, 4), want, rtol=1e-5)


def test_a_body_may_read_values_named_like_its_own_parameters(target):
    carry = tdsl.tensor("carry", "f64", "n")   # the names the builder gives its placeholders
    i = tdsl.scalar("i", "f64")
    out = tdsl.fori_loop(0, 3, lambda j, c: c + carry * i + tdsl.f64(j), tdsl.zeros("n"))
    f = tdsl.function([carry, i], out, target=target)
    cv = np.array([1.0, 2.0])
    np.testing.assert_allclose(f(cv, 0.5), 3 * cv * 0.5 + 3.0)


def test_fori_loop_builds_per_step_outputs_with_at(target):
    xs = tdsl.tensor("xs", "f64", ("t", "b"))
    w = tdsl.tensor("w", "f64", ("b", "b"))
    h0 = tdsl.tensor("h0", "f64", "b")

    def step(i, carry):
        h, hs = carry
        h = tdsl.tanh(xs[i] + h @ w)
        return h, hs.at[i].set(h)
    h, hs = tdsl.fori_loop(0, xs.shape[0], step, (h0, tdsl.zeros(("t", "b"))))
    f = tdsl.function([xs, w, h0], (h, hs), target=target)
    xv, wv, hv = RNG.random((4, 3)), RNG.random((3, 3)), RNG.random(3)
    want, wants = hv, []
    for row in xv:
        want = np.tanh(row + want @ wv)
        wants.append(want)
    got_h, got_hs = f(xv, wv, hv)
    np.testing.assert_allclose(got_h, want)
    np.testing.assert_allclose(got_hs, np.stack(wants))


def test_grad_through_fori_loop(target):
    w = tdsl.scalar("w")
    x = tdsl.tensor("x", "f64", "n")
    y = tdsl.fori_loop(0, 3, lambda i, c: c * w + x, tdsl.zeros_like(x))
    cost = tdsl.sum(y * y)
    f = tdsl.function([w, x], (cost, tdsl.grad(cost, w)), target=target)
    xv, wv = RNG.random(4), 0.7
    value, g = f(wv, xv)
    # y = x (1 + w + w^2); dcost/dw = 2 sum(y * x (1 + 2w))
    yv = xv * (1 + wv + wv ** 2)
    np.testing.assert_allclose(value, np.sum(yv * yv))
    np.testing.assert_allclose(g, 2 * np.sum(yv * xv * (1 + 2 * wv)))


@pytest.mark.parametrize("bad, message", [
    (lambda x: tdsl.fori_loop(0, 3, lambda i, c: tdsl.f64(c), x), r"f32\[n\].*f64\[n\]"),
    (lambda x: tdsl.fori_loop(0, 3, lambda i, c: c[1:], x), r"f32\[n\].*f32\[n - 1\]"),
    (lambda x: tdsl.fori_loop(0.5, 3, lambda i, c: c, x), "integer scalar"),
    (lambda x: tdsl.fori_loop(0, x, lambda i, c: c, x), "integer scalar"),
    (lambda x: tdsl.fori_loop(0, 3, lambda i, c: (c, c), x), "returned 2 values"),
    (lambda x: tdsl.while_loop(lambda c: c, lambda c: c, x), "bool scalar"),
    (lambda x: tdsl.while_loop(lambda c: tdsl.sum(c) > 0, lambda c: c * 2, tdsl.sum(x)), None),
    (lambda x: tdsl.cond(x, lambda: 1.0, lambda: 2.0), "bool scalar"),
    (lambda x: tdsl.cond(tdsl.sum(x) > 0, lambda a: a, lambda a: tdsl.f64(a), x), r"f32\[n\].*f64\[n\]"),
    (lambda x: tdsl.cond(tdsl.sum(x) > 0, lambda a: (a, a), lambda a: a, x), "different structures"),
])
def test_type_rules(bad, message):
    x = tdsl.tensor("x", "f32", "n")
    if message is None:
        assert bad(x).dtype == "f32"   # a body that keeps the carried type is fine
        return
    with pytest.raises(tdsl.TdslTypeError, match=message):
        bad(x)


def test_a_type_error_in_a_loop_points_at_the_users_line():
    x = tdsl.tensor("x", "f32", "n")
    line = here() + 2
    with pytest.raises(tdsl.TdslTypeError) as caught:
        tdsl.fori_loop(0, 3, lambda i, c: tdsl.f64(c), x)
    assert caught.value.loc is not None and caught.value.loc.line == line


# -- while_loop and cond -------------------------------------------------------------------------

def test_while_loop_counts_collatz_steps(target):
    n0 = tdsl.scalar("n0", "i64")
    limit = tdsl.scalar("limit", "i64")

    def body(c):
        n, steps = c
        return tdsl.where(n % 2 == 0, n // 2, 3 * n + 1), steps + 1
    n, steps = tdsl.while_loop(lambda c: (c[0] != 1) & (c[1] < limit), body, (n0, tdsl.i64(0)))
    f = tdsl.function([n0, limit], (n, steps), target=target)

    def collatz(v, cap):
        count = 0
        while v != 1 and count < cap:
            v = v // 2 if v % 2 == 0 else 3 * v + 1
            count += 1
        return v, count
    for start, cap in [(27, 1000), (27, 10), (1, 5), (6, 100)]:
        assert tuple(int(v) for v in f(start, cap)) == collatz(start, cap)


def test_while_loop_with_an_array_carry(target):
    x = tdsl.tensor("x", "f64", "n")
    y = tdsl.while_loop(lambda c: tdsl.sum(c) < 100.0, lambda c: c * 2.0 + x, x)
    f = tdsl.function([x], y, target=target)
    xv = np.array([1.0, 0.5])
    want = xv.copy()
    while want.sum() < 100:
        want = want * 2 + xv
    np.testing.assert_allclose(f(xv), want)


def test_cond_runs_the_branch_the_predicate_picks(target):
    x = tdsl.tensor("x", "f32", "n")
    k = tdsl.scalar("k", "i64")
    out = tdsl.cond(k > 1, lambda a, b: (a * 2.0, b + 1), lambda a, b: (a - x, b * 3), x, k)
    assert isinstance(out, tuple) and out[0].dtype == "f32" and out[1].dtype == "i64"
    f = tdsl.function([x, k], out, target=target)
    xv = RNG.random(3, dtype=np.float32)
    a, b = f(xv, 2)
    np.testing.assert_allclose(a, xv * 2) and int(b) == 3
    a, b = f(xv, 0)
    np.testing.assert_allclose(a, 0 * xv)
    assert int(b) == 0
    single = tdsl.cond(k > 1, lambda: tdsl.sum(x), lambda: tdsl.max(x))
    g = tdsl.function([x, k], single, target=target)
    np.testing.assert_allclose(g(xv, 5), xv.sum(), rtol=1e-6)
    np.testing.assert_allclose(g(xv, 0), xv.max())


def test_only_the_taken_branch_runs(target):
    x = tdsl.tensor("x", "f64", "n")
    j = tdsl.scalar("j", "i64")
    # the false branch would read out of range; with j in range it never runs
    out = tdsl.cond(j < 3, lambda: x[j], lambda: x[j + 100])
    f = tdsl.function([x, j], out, target=target)
    assert f(np.arange(3.0), 2) == 2.0


def test_cond_inside_fori_loop(target):
    x = tdsl.tensor("x", "f64", "n")

    def body(i, c):
        return tdsl.cond(x[i] > 0, lambda a: a + x[i], lambda a: a * 0.5, c)
    f = tdsl.function([x], tdsl.fori_loop(0, x.shape[0], body, tdsl.f64(1.0)), target=target)
    xv = np.array([1.0, -2.0, 3.0, -1.0])
    want = 1.0
    for v in xv:
        want = want + v if v > 0 else want * 0.5
    np.testing.assert_allclose(f(xv), want)


# -- Var.at --------------------------------------------------------------------------------------

def test_at_updates_compare_with_numpy(target):
    x = tdsl.tensor("x", "f32", ("n", "k"))
    j = tdsl.scalar("j", "i64")
    idx = tdsl.tensor("idx", "i64", "m")
    outs = (x.at[0].set(1.0), x.at[:, 1:].add(2.0), x.at[j].set(x[0] * 2), x.at[idx].set(0.0),
            x.at[j, 1].multiply(3.0), x.at[::2].divide(4.0), x.at[1:, j].get(), x[j, 0])
    f = tdsl.function([x, j, idx], outs, target=target)
    xv = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = [xv.copy() for _ in range(6)]
    want[0][0] = 1
    want[1][:, 1:] += 2
    want[2][2] = xv[0] * 2
    want[3][[1, 3]] = 0
    want[4][2, 1] *= 3
    want[5][::2] /= 4
    got = f(xv, 2, np.array([1, 3]))
    for g, w in zip(got, want + [xv[1:, 2], xv[2, 0]]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(xv, np.arange(12, dtype=np.float32).reshape(4, 3))  # inputs unchanged


def test_at_refuses_an_unsafe_store_and_item_assignment_is_not_offered():
    x = tdsl.tensor("x", "i32", "n")
    with pytest.raises(tdsl.TdslTypeError, match="without a cast"):
        x.at[0].set(tdsl.scalar("s", "f64"))
    with pytest.raises(TypeError):
        x[0] = 1


# -- trace and explain inside loops and branches ------------------------------------------------

PROGRAM = """\
fn f(x: f64[n], m: i64) -> f64 {
    s = 0.0
    for i in range(m) {
        for j in range(n) {
            q = x[j] * 2.0
            s = s + q
        }
        if s > 3.0 {
            s = s - 1.0
            r = s
        } else {
            r = s * 2.0
        }
        s = r
    }
    after = s + 1.0
    return after
}

fn rnn(xs: f32[t, b], h0: f32[b], w: f32[b, b]) -> (f32[b], f32[t, b]) {
    h = h0
    hs = zeros((t, b), dtype=f32)
    for i in range(t) {
        z = xs[i] + h @ w
        h = tanh(z)
        hs[i] = h
    }
    return h, hs
}

fn ragged(x: f64[n]) -> f64 {
    s = 0.0
    for i in range(n) {
        head = x[:i]
        s = s + sum(head)
    }
    k = n
    while k < n + 3 {
        k = k + 1
    }
    s = s * 2.0
    return s + k
}
"""


def reference_f(xv, m):
    s, ss, qs, rs = 0.0, [], [], []
    for _ in range(m):
        q_row = []
        for v in xv:
            q = v * 2
            s = s + q
            q_row.append(q)
        if s > 3:
            s = s - 1
            r = s
        else:
            r = s * 2
        s = r
        qs.append(q_row)
        rs.append(r)
        ss.append(s)
    return np.array(ss), np.array(qs), np.array(rs), s + 1


@pytest.fixture(scope="module")
def program():
    return tdsl.compile(PROGRAM, target="numpy")


def test_trace_stacks_loop_values_per_iteration(program):
    xv = np.array([0.5, 1.0, 0.25])
    t = program.f.trace(xv, 3)
    ss, qs, rs, after = reference_f(xv, 3)
    assert list(t) == ["x", "m", "s", "q", "r", "after", "return"]
    # the key of a carried name holds its value at the end of each iteration
    np.testing.assert_allclose(t["s"], ss)
    # nested loops: one axis per loop level
    assert t["q"].shape == (3, 3)
    np.testing.assert_allclose(t["q"], qs)
    # bound inside both branches of an if: the taken branch's value
    np.testing.assert_allclose(t["r"], rs)
    np.testing.assert_allclose(t["after"], after)
    assert t["return"] == program.f(xv, 3)


def test_trace_of_a_loop_that_runs_zero_times(program):
    t = program.f.trace(np.array([0.5, 1.0]), 0)
    assert t["s"].shape == (0,) and t["s"].dtype == np.float64
    assert t["r"].shape == (0,)
    assert "q" not in t   # a nested loop's names: the length of its axis is not known
    assert t["return"] == 1.0


def test_trace_of_per_step_outputs(program):
    xv = RNG.random((4, 2), dtype=np.float32)
    hv, wv = RNG.random(2, dtype=np.float32), RNG.random((2, 2), dtype=np.float32)
    t = program.rnn.trace(xv, hv, wv)
    assert t["h"].shape == (4, 2) and t["h"].dtype == np.float32
    assert t["z"].shape == (4, 2)
    assert t["hs"].shape == (4, 4, 2)   # the whole buffer, once per iteration
    np.testing.assert_allclose(t["hs"][-1], t["return[1]"])
    np.testing.assert_allclose(t["h"][-1], t["return[0]"])
    np.testing.assert_allclose(t["h"], t["return[1]"])
    np.testing.assert_allclose(t["z"][0], xv[0] + hv @ wv, rtol=1e-6)


def test_trace_gives_a_list_where_shapes_differ_and_a_rebinding_after_the_loop_wins(program):
    xv = np.array([1.0, 2.0, 4.0])
    t = program.ragged.trace(xv)
    assert isinstance(t["head"], list) and len(t["head"]) == 3
    for i, head in enumerate(t["head"]):
        np.testing.assert_array_equal(head, xv[:i])
    np.testing.assert_array_equal(t["k"], [4, 5, 6])   # a while loop: per iteration too
    assert t["s"] == 2 * (0 + 1 + 3)                    # `s = s * 2.0` after the loop wins
    assert t["return"] == 2 * 4 + 6


def test_trace_of_builder_loops_with_named_values():
    x = tdsl.tensor("x", "f64", "n")

    def body(i, c):
        term = (x[i] * x[i]).named("term")
        return (c + term).named("acc")
    total = tdsl.fori_loop(0, x.shape[0], body, tdsl.f64(0.0)).named("total")
    f = tdsl.function([x], total, target="numpy")
    xv = np.array([1.0, 2.0, 3.0])
    t = f.trace(xv)
    np.testing.assert_array_equal(t["term"], xv * xv)
    np.testing.assert_array_equal(t["acc"], np.cumsum(xv * xv))
    assert t["total"] == 14.0 and t["return"] == 14.0
    text = f.explain()
    assert re.search(r"^  fori_loop  \(line \d+\)$", text, re.M), text
    assert re.search(r"^    value  term: f64  \(line \d+\)$", text, re.M), text


def test_explain_lists_names_under_their_loop_or_branch(program):
    lines = program.f.explain().splitlines()
    assert "  value  s: f64  (line 2)" in lines
    loop = lines.index("  for i in range(m)  (line 3)")
    inner = lines.index("    for j in range(n)  (line 4)")
    assert loop < inner
    assert lines[inner + 1] == "      value  q: f64  (line 5)"
    branch = lines.index("    if s > 3.0  (line 8)")
    assert lines[branch + 1] == "      value  s: f64  (line 9)"
    assert "    else" in lines[branch:]
    assert "      value  r: f64  (line 12)" in lines[branch:]
    assert "  value  after: f64  (line 16)" in lines
    rnn = program.rnn.explain().splitlines()
    assert "    value  z: f32[b]  (line 24)" in rnn
    assert "  while k < n + 3  (line 38)" in program.ragged.explain().splitlines()


# -- printers ------------------------------------------------------------------------------------

def test_graph_text_nests_region_bodies(program):
    text = graph_text(program.f.graph)
    assert "for: for i in range(m)  (line 3)" in text
    assert "for: for j in range(n)  (line 4)" in text
    assert "if: if s > 3.0  (line 8)" in text
    assert re.search(r"^ {6}body: .*\(s: f64, x: f64\[n\]\) -> \(f64\)$", text, re.M), text
    assert "then:" in text and "else:" in text and "Region(" not in text


def test_graph_dot_has_a_cluster_per_body(program):
    dot = graph_dot(program.f.graph)
    assert dot.count("subgraph cluster_") == 4   # for i, for j, then, else
    assert dot.count("{") == dot.count("}")
    assert "style=dashed" in dot
    assert _dot_text('say "hi" \\ bye') == 'say \\"hi\\" \\\\ bye'


@pytest.mark.parametrize("name", ["f", "rnn", "ragged"])
def test_to_tdsl_of_loops_parses_back_and_computes_the_same(program, name, target):
    fn = program[name]
    text = fn.to_tdsl()
    assert fn.source == text   # the numpy target's source is the printed program
    back = tdsl.compile(text, target=target)[name]
    assert back.signature == fn.signature
    args = {"f": (np.array([0.5, 1.0, 0.25]), 3),
            "rnn": (RNG.random((3, 2), dtype=np.float32), RNG.random(2, dtype=np.float32),
                    RNG.random((2, 2), dtype=np.float32)),
            "ragged": (np.array([1.0, 2.0, 4.0]),)}[name]
    want, got = fn(*args), back(*args)
    for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_to_tdsl_of_builder_control_flow_computes_the_same(target):
    x = tdsl.tensor("x", "f64", "n")
    k = tdsl.scalar("k", "i64")
    s = tdsl.fori_loop(-1, k, lambda i, c: c.at[i].add(1.0) * 0.5, x)
    w = tdsl.while_loop(lambda c: c[1] < k, lambda c: (c[0] + tdsl.sum(x), c[1] + 1), (tdsl.f64(0), tdsl.i64(0)))
    b = tdsl.cond(k > 1, lambda a: a, lambda a: -a, s)
    f = tdsl.function([x, k], (s, w[0], b, x.at[k].set(9.0)), target="numpy", name="built")
    back = tdsl.compile(f.to_tdsl(), target=target).built
    xv = np.array([1.0, 2.0, 3.0])
    for kv in (0, 2, 1):
        for g, want in zip(back(xv, kv), f(xv, kv)):
            np.testing.assert_allclose(g, want)


def test_a_body_captures_outer_values_instead_of_computing_them_again():
    x = tdsl.tensor("x", "f64", "n")
    y = (x * 2.0).named("y")
    first = tdsl.fori_loop(0, 3, lambda i, c: c + y, tdsl.zeros_like(x))
    second = tdsl.fori_loop(0, 2, lambda i, c: c * first + (x + 1.0).named("inner"), tdsl.ones_like(x))
    f = tdsl.function([x], second, target="numpy")
    body = second.node.attr("region").body
    assert [p.name for p in body.params] == ["i", "carry", "captured", "x"]
    assert not any(n.op == "for" for n in body.outputs[0].inputs)   # `first` runs once, outside
    assert [name for name, _ in body.named] == ["inner"]
    xv = np.array([1.0, 2.0])
    t = f.trace(xv)
    np.testing.assert_array_equal(t["y"], xv * 2)            # one value: bound outside the loops
    np.testing.assert_array_equal(t["inner"], [xv + 1, xv + 1])
    fv = 6 * xv
    np.testing.assert_allclose(t["return"], (1 * fv + xv + 1) * fv + xv + 1)


BRANCHY = """\
fn g(x: f64[n], a: i64) -> f64 {
    s = 0.0
    for i in range(n - 1, -1, -1) {
        if x[i] > 1.0 {
            s = s + x[i]
            big = x[i]
        } else if x[i] < 0.0 {
            s = s - 1.0
        } else {
            s = s * 2.0
        }
    }
    t = s
    for i in range(a, 2) {
        t = t + x[i]
    }
    k = a
    while k > 100 { k = k - 1 }
    return t + k
}
"""


def test_trace_and_explain_of_else_if_chains_and_branch_local_names():
    g = tdsl.compile(BRANCHY, target="numpy").g
    xv = np.array([2.0, -1.0, 0.5, 3.0])
    t = g.trace(xv, -2)
    np.testing.assert_array_equal(t["s"], [3.0, 6.0, 5.0, 7.0])     # i = 3, 2, 1, 0
    assert t["big"] == [3.0, None, None, 2.0]   # bound only when the first branch ran
    np.testing.assert_array_equal(t["t"], [7.5, 10.5, 12.5, 11.5])  # i = -2, -1, 0, 1
    assert t["k"].shape == (0,) and t["k"].dtype == np.int64
    assert t["return"] == g(xv, -2) == 11.5 - 2
    lines = g.explain().splitlines()
    at = lines.index("    if x[i] > 1.0  (line 4)")
    assert lines[at + 1:at + 6] == ["      value  s: f64  (line 5)", "      value  big: f64  (line 6)",
                                    "    else", "      if x[i] < 0.0  (line 7)", "        value  s: f64  (line 8)"]


def test_to_tdsl_of_negative_steps_index_parameters_and_while(target):
    g = tdsl.compile(BRANCHY, target="numpy").g
    back = tdsl.compile(g.to_tdsl(), target=target).g
    xv = np.array([2.0, -1.0, 0.5, 3.0])
    for a in (-2, 0, 5, 101):
        assert back(xv, a) == g(xv, a)


def test_grad_through_cond_and_not_through_while_loop(target):
    w = tdsl.scalar("w")
    x = tdsl.tensor("x", "f64", "n")
    cost = tdsl.sum(tdsl.cond(w > 0, lambda a: a * w * w, lambda a: a * w, x))
    f = tdsl.function([w, x], (cost, tdsl.grad(cost, w)), target=target)
    xv = np.array([1.0, 2.0])
    np.testing.assert_allclose(f(2.0, xv), (12.0, 12.0))    # the taken branch: 2 w sum(x)
    np.testing.assert_allclose(f(-2.0, xv), (-6.0, 3.0))    # sum(x)
    z = tdsl.while_loop(lambda v: v < 10.0, lambda v: v * w, w)
    with pytest.raises(tdsl.TdslTypeError, match="while loop"):
        tdsl.grad(z, w)
