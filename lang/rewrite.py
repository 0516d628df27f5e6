"""Graph rewrites, as data: each rule is a pattern and a function returning a replacement or None.

One driver (`simplify_node`) applies the list `RULES` bottom-up to a fixpoint, in a
fixed order. Nodes are structural values, so the driver's memo also merges common
subexpressions, and rebuilding from the results leaves dead code behind. Every rule
keeps NumPy's results exactly (dtype and shape included) except the stabilizing
ones, which trade an overflow or a cancellation for the accurate value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

from . import builtins, infer
from .dtypes import can_cast_safe, kind
from .graph import REGION_OPS, FunctionGraph, Node, paused_gc, toposort
from .ops import RuntimeCheckFailed


@dataclass(frozen=True)
class Pat:
    """Matches a node: its op (None: any; a tuple: one of), its inputs, and binds it to `name`.

    A name bound twice must match equal nodes; `commute` lets two inputs match in either order.
    """

    op: str | tuple[str, ...] | None = None
    src: tuple["Pat", ...] | None = None
    name: str | None = None
    commute: bool = False

    def matches(self, node: Node, bound: dict) -> Iterator[dict]:
        """Every way `node` matches, as the names bound (a commuting pattern may match twice)."""
        if self.op is not None and node.op != self.op and not (isinstance(self.op, tuple) and node.op in self.op):
            return
        if self.name is not None:
            if self.name in bound and bound[self.name] != node:
                return
            bound = {**bound, self.name: node}
        if self.src is None:
            yield bound
            return
        if len(self.src) != len(node.inputs):
            return
        for inputs in [node.inputs] + ([node.inputs[::-1]] if self.commute else []):
            yield from _match_all(self.src, inputs, bound)


def _match_all(pats, nodes, bound: dict) -> Iterator[dict]:
    if not pats:
        yield bound
        return
    for first in pats[0].matches(nodes[0], bound):
        yield from _match_all(pats[1:], nodes[1:], first)


def P(op, *src: Pat, name: str | None = None, commute: bool = False) -> Pat:
    return Pat(op, src, name, commute)


def X(name: str) -> Pat:
    """Any node, bound to `name`."""
    return Pat(None, None, name)


def C(name: str) -> Pat:
    """A literal (or a literal broadcast to a shape, as zeros(n) is), bound to `name`."""
    return Pat(("const", "broadcast"), None, name)


@dataclass(frozen=True, eq=False)  # hashed by identity: the driver's per-op table is keyed by rule lists
class Rule:
    name: str
    pattern: Pat
    rewrite: Callable[..., Node | None]  # (node, **bound) -> replacement or None


# -- helpers the rules share ----------------------------------------------------------------

def _is(c: Node, value: float, negative_zero: bool | None = None) -> bool:
    """`c` is a literal whose every element equals `value` (and, for zeros, has the given sign)."""
    if c.op == "broadcast":
        c = c.inputs[0]
    if c.op != "const":
        return False
    arr = infer.const_value(c)
    if arr.size == 0 or not np.all(arr == value):
        return False
    return negative_zero is None or kind(c.dtype) != "float" or bool(np.all(np.signbit(arr) == negative_zero))


def _same_type(repl: Node, node: Node) -> Node | None:
    """`repl` with `node`'s shape (broadcast) and strength, or None if the dtypes differ."""
    if repl.dtype != node.dtype:
        return None
    if repl.shape != node.shape:
        repl = infer.broadcast_to(repl, node.shape, node.loc)
    if repl.weak and not node.weak:
        repl = builtins._strong(repl, node.loc)
    return repl if repl.weak == node.weak else None


def _zeros(node: Node) -> Node:
    zero = infer.const(0.0 if kind(node.dtype) == "float" else 0, node.dtype, (), node.weak, node.loc)
    return infer.broadcast_to(zero, node.shape, node.loc)


def _may_fail(node: Node) -> bool:
    """Whether computing `node` involves a call-time check or error, which must not be dropped."""
    from .limits import can_fail
    return any(can_fail(n) for n in toposort([node]))


# -- constant folding ------------------------------------------------------------------------

FOLD_LIMIT = 256  # larger results stay computed: a literal that size would bloat the source


def fold_constants(node: Node) -> Node | None:
    """A node whose inputs are all literals becomes a literal, computed by the interpreter.

    Size variables and parameters are never literals, so nothing depending on them folds;
    a computation that fails (an empty max, a negative integer power) stays to fail at call time.
    """
    from .interp import evaluate_node
    if not node.inputs or node.op in ("broadcast",) + REGION_OPS or node.attr("checks"):
        return None
    if not all(i.op == "const" for i in node.inputs) or not all(d.is_const for d in node.shape):
        return None
    if math.prod(d.const for d in node.shape) > FOLD_LIMIT:
        return None
    try:
        value = evaluate_node(node, [infer.const_value(i) for i in node.inputs], {}, {})
    except RuntimeCheckFailed:
        return None
    value = np.asarray(value, dtype=infer.to_numpy(node.dtype))
    return infer.const(infer._to_python(value), node.dtype, value.shape, node.weak, node.loc)


# -- algebraic simplification -----------------------------------------------------------------

def _unit(node, x, c):
    return _same_type(x, node) if _is(c, 1) else None


def _square_root(node, x, c):
    """NumPy computes a float power with a scalar exponent of 0.5 as sqrt (its power loop's fast
    path), which differs from pow at -inf (NaN, not inf) and -0.0 (-0.0, not +0.0)."""
    scalar = c.inputs[0] if c.op == "broadcast" else c
    if scalar.ndim or kind(node.dtype) != "float" or not _is(c, 0.5):
        return None
    return _same_type(infer.elementwise("sqrt", [x], node.loc), node)


def _minus_one(node, x, c):
    return _same_type(infer.elementwise("neg", [x], node.loc), node) if _is(c, -1) else None


def _add_zero(node, x, c):
    # Floats: -0.0 + 0.0 is +0.0, so only adding -0.0 is the identity there.
    return _same_type(x, node) if _is(c, 0, negative_zero=True) else None


def _sub_zero(node, x, c):
    return _same_type(x, node) if _is(c, 0, negative_zero=False) else None


def _int_zeros(node, x, **_):
    # Floats: inf - inf and inf * 0 are NaN, so only integers simplify.
    return _zeros(node) if kind(node.dtype) == "int" and not _may_fail(x) else None


def _int_times_zero(node, x, c):
    return _int_zeros(node, x) if _is(c, 0) else None


def _double_transpose(node, inner, x):
    outer_perm, inner_perm = node.attr("perm"), inner.attr("perm")
    return infer.transpose(x, tuple(inner_perm[a] for a in outer_perm), node.loc)


def _double_reshape(node, inner, x):
    if node.attr("checks") or inner.attr("checks"):
        return None
    return infer.reshape(x, node.shape, node.loc)


def _double_broadcast(node, inner, x):
    return infer.broadcast_to(x, node.shape, node.loc)


def _cast_round_trip(node, inner, x):
    """f32 -> f64 -> f32 and the like give back x exactly: the middle dtype holds every value."""
    if node.dtype == x.dtype and can_cast_safe(x.dtype, inner.dtype) and node.weak == x.weak:
        return x
    return None


ALGEBRAIC = [
    Rule("x * 1", P("mul", X("x"), C("c"), commute=True), _unit),
    Rule("x / 1", P("div", X("x"), C("c")), _unit),
    Rule("x ** 1", P("pow", X("x"), C("c")), _unit),
    Rule("x ** 0.5 -> sqrt(x)", P("pow", X("x"), C("c")), _square_root),
    Rule("x + 0", P("add", X("x"), C("c"), commute=True), _add_zero),
    Rule("x - 0", P("sub", X("x"), C("c")), _sub_zero),
    Rule("x * -1", P("mul", X("x"), C("c"), commute=True), _minus_one),
    Rule("--x", P("neg", P("neg", X("x"))), lambda node, x: x),
    Rule("x - x (integers)", P("sub", X("x"), X("x")), _int_zeros),
    Rule("x * 0 (integers)", P("mul", X("x"), C("c"), commute=True), _int_times_zero),
    Rule("transpose of transpose", P("transpose", Pat("transpose", (X("x"),), "inner")), _double_transpose),
    Rule("reshape of reshape", P("reshape", Pat("reshape", (X("x"),), "inner")), _double_reshape),
    Rule("broadcast of broadcast", P("broadcast", Pat("broadcast", (X("x"),), "inner")), _double_broadcast),
    Rule("cast round trip", P("cast", Pat("cast", (X("x"),), "inner")), _cast_round_trip),
]


# -- numerical stabilization ------------------------------------------------------------------

def _el(op: str, *xs: Node, loc) -> Node:
    return infer.elementwise(op, list(xs), loc)


def _log_sigmoid(node, x):
    return _el("neg", _el("softplus", _el("neg", x, loc=node.loc), loc=node.loc), loc=node.loc)


def _log_one_minus_sigmoid(node, one, x):
    if not _is(one, 1):
        return None
    return _same_type(_el("neg", _el("softplus", x, loc=node.loc), loc=node.loc), node)


def _log_one_plus(node, one, x):
    if not _is(one, 1) or kind(x.dtype) != "float":
        return None
    return _same_type(_el("log1p", x, loc=node.loc), node)


def _exp_minus_one(node, one, x):
    return _same_type(_el("expm1", x, loc=node.loc), node) if _is(one, 1) else None


def _log_softmax(node, a, e, total):
    """log(e / sum(e, keepdims)) with e = exp(a) is a - log(sum(e)): no underflow to log(0)."""
    if not total.attr("keepdims"):
        return None
    return _same_type(_el("sub", a, _el("log", total, loc=node.loc), loc=node.loc), node)


def _is_shifted(x: Node, axes) -> bool:
    """x is already `y - max(y)` (plain or as logsumexp/softmax shift it) over `axes`."""
    if x.op != "sub":
        return False
    y, m = x.inputs
    plain = infer.reduce("max", y, axes, True, x.loc)
    return m == plain or m == builtins._stable_max(y, axes, x.loc)


def _logsumexp(node, total, x):
    """log(sum(exp(x))) overflows for x > ~88 (f32); shift by the max first, as logsumexp does."""
    axes, keep = total.attr("axes"), total.attr("keepdims")
    if kind(x.dtype) != "float" or _is_shifted(x, axes):
        return None
    loc = node.loc
    m = builtins._stable_max(x, axes, loc)
    shifted_total = infer.reduce("sum", _el("exp", _el("sub", x, m, loc=loc), loc=loc), axes, True, loc)
    out = _el("add", _el("log", shifted_total, loc=loc), m, loc=loc)
    return _same_type(out if keep else infer.reshape(out, node.shape, loc), node)


STABILIZING = [
    Rule("log(sigmoid(x)) -> -softplus(-x)", P("log", P("sigmoid", X("x"))), _log_sigmoid),
    Rule("log(1 - sigmoid(x)) -> -softplus(x)", P("log", P("sub", C("one"), P("sigmoid", X("x")))),
         _log_one_minus_sigmoid),
    Rule("log(1 + x) -> log1p(x)", P("log", P("add", C("one"), X("x"), commute=True)), _log_one_plus),
    Rule("log1p(exp(x)) -> softplus(x)", P("log1p", P("exp", X("x"))),
         lambda node, x: _el("softplus", x, loc=node.loc)),
    Rule("exp(x) - 1 -> expm1(x)", P("sub", P("exp", X("x")), C("one")), _exp_minus_one),
    Rule("log(softmax(x)) -> log_softmax(x)",
         P("log", P("div", P("exp", X("a"), name="e"), P("sum", X("e"), name="total"))), _log_softmax),
    Rule("log(sum(exp(x))) -> logsumexp(x)", P("log", P("sum", P("exp", X("x")), name="total")), _logsumexp),
]

RULES: list[Rule] = [Rule("constant folding", Pat(), fold_constants)] + ALGEBRAIC + STABILIZING
FAITHFUL: list[Rule] = [rule for rule in RULES if rule not in STABILIZING]


def stabilizing() -> bool:
    """Whether the stabilizing rules apply: yes unless `TDSL_STABILIZE=0`, which gives results
    bit for bit as NumPy computes them (overflows and cancellations included)."""
    import os
    return os.environ.get("TDSL_STABILIZE", "").strip() not in ("0", "no", "false", "off")


def default_rules() -> list[Rule]:
    """The rules the pipeline and grad apply: RULES, or FAITHFUL under `TDSL_STABILIZE=0`."""
    return RULES if stabilizing() else FAITHFUL


# -- the driver ------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _rules_for(op: str, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The rules whose pattern can match a node of `op`, in list order."""
    def fits(pat: Pat) -> bool:
        return pat.op is None or pat.op == op or (isinstance(pat.op, tuple) and op in pat.op)
    return tuple(rule for rule in rules if fits(rule.pattern))


MAX_DEPTH = 64  # successive rewrites at one place; a longer chain means two rules undo each other


def _first_rewrite(node: Node, rules: tuple[Rule, ...]) -> Node | None:
    """The replacement given by the first rule (in list order) that matches `node` and accepts."""
    for rule in _rules_for(node.op, rules):
        for bound in rule.pattern.matches(node, {}):
            bound.pop(rule.pattern.name, None)
            repl = rule.rewrite(node, **bound)
            if repl is not None and repl != node:
                assert repl.dtype == node.dtype and repl.shape == node.shape, rule.name
                return repl
    return None


def _rebuild(node: Node, inputs: list[Node]) -> Node:
    if all(a is b for a, b in zip(inputs, node.inputs)):
        return node
    return Node(node.op, node.dtype, node.shape, tuple(inputs), node.attrs, node.weak, node.loc, node.name)


def simplify_node(root: Node, memo: dict | None = None, rules=None, depth: int = 0) -> Node:
    """`root` with `rules` (default: RULES) applied bottom-up to a fixpoint.

    `memo` maps each node seen to its result; sharing it between roots keeps them consistent.
    """
    memo = {} if memo is None else memo
    rules = tuple(default_rules() if rules is None else rules)
    stack = [root]
    while stack:
        node = stack[-1]
        if node in memo:
            stack.pop()
            continue
        pending = [i for i in node.inputs if i not in memo]
        if pending:
            stack.extend(reversed(pending))
            continue
        stack.pop()
        rebuilt = _rebuild(node, [memo[i] for i in node.inputs])
        if rebuilt.op in REGION_OPS:
            rebuilt = _with_simplified_bodies(rebuilt, memo, rules)
        result = memo.get(rebuilt)
        if result is None:
            repl = _first_rewrite(rebuilt, rules) if depth < MAX_DEPTH else None
            result = rebuilt if repl is None else simplify_node(repl, memo, rules, depth + 1)
        memo[node] = memo[rebuilt] = result
        memo.setdefault(result, result)
    return memo[root]


def _with_simplified_bodies(node: Node, memo: dict, rules) -> Node:
    """A loop or branch result whose bodies went through the rewrites too (once per region)."""
    region = node.attr("region")
    key = ("region", id(region))
    if key not in memo:
        graphs = tuple(simplify_graph(g, rules) for g in region.graphs)
        memo[key] = (region, replace(region, graphs=graphs))
    new = memo[key][1]
    if new == region:
        return node
    attrs = tuple((k, new if k == "region" else v) for k, v in node.attrs)
    return Node(node.op, node.dtype, node.shape, node.inputs, attrs, node.weak, node.loc, node.name)


def simplify_graph(graph: FunctionGraph, rules=None) -> FunctionGraph:
    """The graph after the rewrites (default: `default_rules()`); results and named values share one memo."""
    memo: dict = {}
    with paused_gc():
        outputs = tuple(simplify_node(o, memo, rules) for o in graph.outputs)
        # A named value keeps its own name and place even when it merged with an equal node.
        named = tuple((name, simplify_node(node, memo, rules).with_name(name, node.loc))
                      for name, node in graph.named)
        effects = tuple(simplify_node(node, memo, rules) for node in graph.effects)
        from .control_grad import merge_stored_loops
        merged = merge_stored_loops(list(outputs), [node for _, node in named])
        if merged is not None:
            outputs = tuple(merged[0])
            named = tuple((name, node.with_name(name, old.loc)) for (name, old), node in zip(named, merged[1]))
    return replace(graph, outputs=outputs, named=named, effects=effects)
