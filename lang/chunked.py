"""Splitting a function along a chunked size variable: the generated functions (docs/dask.md).

`split(graph, var)` turns the roles of lang/chunked_rules.py into one tdsl module: per pass a
per-chunk function, a function that combines two partial states and one that finalizes the
globals from the combined states. Passes are numbered: pass k computes, chunk by chunk, the
local values that need the globals of earlier passes, and the partial state of its reductions.
Inside a per-chunk function the size variable `var` is the chunk's length; its value (`mean`'s
division) is a parameter holding the whole length, and `arange(n)` adds the chunk's offset.
lang/chunked_explain.py prints the roles line by line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import infer
from .chunked_explain import explain_text
from .chunked_rules import (COMBINE, FUSED, INVARIANT, Obstacle, Role, analyse, fusion, live, pass_states,
                            roles_of_param)
from .dims import Dim
from .graph import FunctionGraph, Node, Param, make_attrs, toposort

__all__ = ["INVARIANT", "Obstacle", "Role", "Split", "analyse", "explain_text", "roles_of_param", "split"]

BOOL_COMBINE = {"max": "or", "min": "and"}   # max/min of bool values: `maximum` refuses bool


@dataclass
class Stage:
    """One generated function of a split: its name in the module, and what each parameter and
    result is: ("chunk", p) a chunk of parameter p, ("whole", p) all of it, ("row", p) its first
    position along the variable (it only binds the other sizes), ("global", g), ("size",) the
    variable's whole length, ("offset",) the chunk's start, ("state", j, part) a partial state of
    reduction j, ("left"/"right", j, part) in a combine, ("result", k) result k of the function."""

    name: str
    inputs: list[tuple]
    outputs: list[tuple]


@dataclass
class Pass:
    level: int
    chunk: Stage
    states: list[Node]          # the reductions whose partial states this pass makes
    combine: Stage | None       # two states -> one (None when the pass reduces nothing)
    finalize: Stage | None      # combined states -> the globals of this pass


@dataclass
class Split:
    """How a function runs chunk by chunk along `var`: its passes and the tdsl module of their
    functions; `results[k]` says where result k comes from: ("chunk", level, position),
    ("first", 0, position) (invariant: chunk 0's) or ("global", g)."""

    var: str
    graph: FunctionGraph
    roles: dict
    passes: list[Pass]
    globals: list[Node]
    results: list[tuple]
    text: str
    graphs: list[FunctionGraph] = field(default_factory=list)


PARTS = {"argmax": 2, "argmin": 2, "moments": 3, "sumexp": 2}   # parts of a partial state (else 1)


def state_parts(kind: str) -> int:
    """How many arrays the partial state of a reduction of this kind has; the last is its value."""
    return PARTS.get(kind, 1)


def _state_roots(st: Node, kind: str) -> list[Node]:
    """What a chunk function rebuilds to make the partial state of reduction `st`."""
    if kind in ("argmax", "argmin"):
        return [st.inputs[0], st]
    if kind in FUSED:
        return [fusion(st)[1]]
    return [st]


def _count(x: Node, axes, loc) -> Node:
    """The number of elements of a chunk of `x` over `axes`, in x's dtype (a chunk's `n` is its length)."""
    count = None
    for a in axes:
        d = x.shape[a]
        term = infer.const(d.const, "i64", (), True, loc) if d.is_const else \
            Node("sizevar", "i64", (), (), make_attrs(name=str(d)), True, loc)
        count = term if count is None else infer.elementwise("mul", [count, term], loc)
    return infer.cast(count, x.dtype, loc)


def _moments(st: Node, x: Node) -> list[Node]:
    """(count, mean, sum of squares about the mean) of a chunk: var's state."""
    axes, loc = st.attr("axes"), st.loc
    count = _count(x, axes, loc)
    mean = infer.elementwise("div", [infer.reduce("sum", x, axes, True, loc), count], loc)
    deviation = infer.elementwise("square", [infer.elementwise("sub", [x, mean], loc)], loc)
    return [count, mean, infer.reduce("sum", deviation, axes, st.attr("keepdims"), loc)]


def _finite_or_zero(m: Node, loc) -> Node:
    zero = infer.const(0, "i64", (), True, loc)
    return infer.elementwise("where", [infer.elementwise("isfinite", [m], loc), m, zero], loc)


def _sumexp(st: Node, x: Node) -> list[Node]:
    """(max, sum of exp(x - max)) of a chunk (the max 0 where it is not finite): logsumexp's state."""
    top = st.inputs[0].inputs[0].inputs[1].inputs[1]
    m = Node("max", x.dtype, top.shape, (x,), top.attrs, False, st.loc)
    shifted = infer.elementwise("sub", [x, _finite_or_zero(m, st.loc)], st.loc)
    return [m, infer.reduce("sum", infer.elementwise("exp", [shifted], st.loc), st.attr("axes"), True, st.loc)]


def split(graph: FunctionGraph, var: str, roles: dict | None = None) -> Split:
    """The passes and generated functions that compute `graph` chunk by chunk along `var`."""
    from .printer import to_tdsl
    roles = roles if roles is not None else analyse(graph, var)
    builder = _Builder(graph, var, roles)
    passes = [builder.make_pass(level) for level in range(builder.levels)]
    results = []
    for k, out in enumerate(graph.outputs):
        role = roles[out]
        if role.kind == "global":
            results.append(("global", builder.exported.index(out)))
        else:
            level = role.level if role.kind == "local" else 0
            stage = passes[level].chunk
            results.append(("chunk" if role.kind == "local" else "first", level, stage.outputs.index(("result", k))))
    text = "\n".join(to_tdsl(g) for g in builder.graphs)
    return Split(var, graph, roles, passes, builder.exported, results, text, builder.graphs)


class _Builder:
    def __init__(self, graph: FunctionGraph, var: str, roles: dict):
        self.graph, self.var, self.roles = graph, var, roles
        self.levels = 1 + max((r.level for r in roles.values() if r.kind != "invariant"), default=0)
        self.exported = _exported(graph, roles)
        # generated names (parameters, functions) differ from every name the function's text uses
        self.used = {p.name for p in graph.params} | set(graph.size_vars) | {graph.name}
        self.used |= {n.name for n in toposort(list(graph.outputs)) if n.name}
        self.total = self.param(f"{var}_total", "i64", ())
        self.offset = self.param(f"{var}_offset", "i64", ())
        self.gparams = {g: self.param(f"g{j}", g.dtype, g.shape) for j, g in enumerate(self.exported)}
        self.graphs: list[FunctionGraph] = []

    def name(self, base: str) -> str:
        """`base`, or with underscores appended until no other name of the module is the same."""
        while base in self.used:
            base += "_"
        self.used.add(base)
        return base

    def param(self, base: str, dtype: str, shape) -> Node:
        name = self.name(base)
        return Node("param", dtype, tuple(shape), (), make_attrs(name=name), False, None, name)

    def make_pass(self, level: int) -> Pass:
        roles, g = self.roles, self.graph
        exported = [n for n in self.exported if roles[n].level == level]
        states = pass_states(exported, roles, level)
        earlier = {n: p for n, p in self.gparams.items() if roles[n].level < level}
        outputs, roots = [], []
        for k, out in enumerate(g.outputs):
            role = roles[out]
            if (role.kind == "local" and role.level == level) or (role.kind == "invariant" and level == 0):
                outputs.append(("result", k))
                roots.append(out)
        for j, st in enumerate(states):
            outputs += [("state", j, part) for part in range(state_parts(roles[st].reduction))]
            roots += _state_roots(st, roles[st].reduction)
        before = earlier
        earlier = _reached(roots, earlier)
        built = iter(_rebuild(roots, earlier, self.var, self.total, self.offset))
        nodes = [next(built) for k in outputs if k[0] == "result"]
        types = []
        for st in states:
            parts = self.partials(st, built)
            types.append([(n.dtype, n.shape) for n in parts])
            nodes += parts
        params = [("chunk" if roles_of_param(p, self.var) else "whole", i, p) for i, p in enumerate(g.params)]
        inputs = [(kind, i) for kind, i, _ in params]
        plist = [Param(p.name, p.dtype, p.shape, p.loc) for p in g.params]
        for n, p in earlier.items():
            inputs.append(("global", self.exported.index(n)))
            plist.append(_param_of(p))
        inputs += [("size",), ("offset",)]
        plist += [_param_of(self.total), _param_of(self.offset)]
        chunk = Stage(self.name(f"chunk{level}"), inputs, outputs)
        self.graphs.append(_graph(chunk.name, plist, nodes, g))
        combine = finalize = None
        if states:
            combine = self.make_combine(level, states, types)
            finalize = self.make_finalize(level, states, exported, before)
        return Pass(level, chunk, states, combine, finalize)

    def partials(self, st: Node, built) -> list[Node]:
        """The partial state of reduction `st` over one chunk, from the rebuilt `_state_roots`."""
        kind = self.roles[st].reduction
        if kind in ("argmax", "argmin"):   # the extreme value and its index in the whole axis
            x, index = next(built), next(built)
            extreme = "max" if kind == "argmax" else "min"
            value = Node(extreme, x.dtype, st.shape, (x,),
                         make_attrs(axes=(st.attr("axis") or 0,), keepdims=st.attr("keepdims")), False, st.loc)
            return [value, infer.elementwise("add", [index, self.offset], st.loc)]
        if kind == "moments":
            return _moments(st, next(built))
        if kind == "sumexp":
            return _sumexp(st, next(built))
        return [next(built)]

    def make_combine(self, level: int, states: list[Node], types: list) -> Stage:
        plist, outs, inputs, outputs = [], [], [], []
        sides = {}
        dims: dict = {}   # a dim expression -> the size variable that names it here (nothing binds its own)
        for side in ("left", "right"):
            for j, s in enumerate(states):
                for part, (dtype, shape) in enumerate(types[j]):
                    node = Node("param", dtype, self.plain(shape, dims), (), make_attrs(name=f"{side}{j}_{part}"),
                                False, None, f"{side}{j}_{part}")
                    sides[side, j, part] = node
                    plist.append(_param_of(node))
                    inputs.append((side, j, part))
        for j, s in enumerate(states):
            parts = [(sides["left", j, p], sides["right", j, p]) for p in range(len(types[j]))]
            outs += _combined(s, self.roles[s].reduction, parts)
            outputs += [("state", j, p) for p in range(len(types[j]))]
        stage = Stage(self.name(f"combine{level}"), inputs, outputs)
        self.graphs.append(_graph(stage.name, plist, outs, self.graph))
        return stage

    def plain(self, shape, dims: dict) -> tuple:
        """`shape` with each dim expression (`(k + 1) // 2`) replaced by a size variable of its own."""
        out = []
        for d in shape:
            if not d.is_const and d != Dim.of(str(d)):
                if d not in dims:
                    dims[d] = self.param(f"dim{len(dims)}", "i64", ()).attr("name")
                d = Dim.of(dims[d])
            out.append(d)
        return tuple(out)

    def make_finalize(self, level: int, states: list[Node], exported: list[Node], earlier: dict) -> Stage:
        subst: dict = {}
        first, last = [], []   # (input, Param): what binds the sizes, then the states and globals
        for j, s in enumerate(states):
            node = self.param(f"s{level}_{j}", s.dtype, s.shape)
            subst[s] = node
            last.append((("state", j, state_parts(self.roles[s].reduction) - 1), _param_of(node)))   # its value
        earlier = _reached(exported, earlier)
        subst.update(earlier)
        nodes = _rebuild(exported, subst, self.var, self.total, self.offset)
        last += [(("global", self.exported.index(n)), _param_of(p)) for n, p in earlier.items()]
        last.append((("size",), _param_of(self.total)))
        first = [(("whole", i), p) for i, p in enumerate(self.graph.params) if not roles_of_param(p, self.var)]
        bound = {str(d) for _, p in first for d in p.shape if not d.is_const}
        needed = {v for n in toposort(nodes) for d in n.shape for v in d.variables()}
        needed |= {v for _, p in last for d in p.shape for v in d.variables()}
        needed |= {n.attr("name") for n in toposort(nodes) if n.op == "sizevar"}
        for i, p in enumerate(self.graph.params):   # sizes only a chunked parameter gives
            if roles_of_param(p, self.var) and (needed - bound) & {str(d) for d in p.shape}:
                first.append((("row", i), p))
                bound |= {str(d) for d in p.shape if not d.is_const}
        stage = Stage(self.name(f"finalize{level}"), [i for i, _ in first + last],
                      [("global", self.exported.index(n)) for n in exported])
        self.graphs.append(_graph(stage.name, [p for _, p in first + last], nodes, self.graph))
        return stage


def _param_of(node: Node) -> Param:
    return Param(node.attr("name"), node.dtype, node.shape, node.loc)


def _combined(s: Node, kind: str, parts: list) -> list[Node]:
    """The combined state of reduction `s` from a left and a right state (left: the earlier chunks)."""
    def op(name, *args):
        return infer.elementwise(name, list(args), s.loc)
    if kind == "moments":   # Chan, Golub and LeVeque's pairwise update
        (na, nb), (ma, mb), (qa, qb) = parts
        n = op("add", na, nb)
        delta = op("sub", mb, ma)
        extra = op("mul", op("square", delta), op("div", op("mul", na, nb), n))
        return [n, op("add", ma, op("mul", delta, op("div", nb, n))),
                op("add", op("add", qa, qb), infer.reshape(extra, qa.shape, s.loc))]
    if kind == "sumexp":    # both sums rescaled to the larger max
        (ma, mb), (sa, sb) = parts
        m = op("maximum", ma, mb)
        shift = _finite_or_zero(m, s.loc)
        scaled = [op("mul", part, op("exp", op("sub", _finite_or_zero(top, s.loc), shift)))
                  for part, top in ((sa, ma), (sb, mb))]
        return [m, op("add", *scaled)]
    if state_parts(kind) == 1:
        (a, b), = parts
        combine = BOOL_COMBINE.get(kind, COMBINE[kind]) if a.dtype == "bool" else COMBINE[kind]
        return [op(combine, a, b)]
    (av, bv), (ai, bi) = parts
    wins = op("gt" if kind == "argmax" else "lt", bv, av)
    if av.dtype.startswith("f"):   # a NaN wins, the first one
        wins = op("or", wins, op("and", op("isnan", bv), op("not", op("isnan", av))))
    return [op("where", wins, bv, av), op("where", wins, bi, ai)]


def _graph(name: str, params: list[Param], outputs: list[Node], like: FunctionGraph) -> FunctionGraph:
    size_vars: list[str] = []
    for p in params:
        for d in p.shape:
            if not d.is_const and str(d) not in size_vars:
                size_vars.append(str(d))
    return FunctionGraph(name, tuple(params), tuple(size_vars), tuple(outputs), (), tuple_result=True,
                         loc=like.loc, file=like.file)


def _exported(graph: FunctionGraph, roles: dict) -> list[Node]:
    """The globals read outside the finalize function of their pass: results, inputs of local
    values and of globals of later passes; in graph order."""
    order = live(graph, roles)
    wanted = {o for o in graph.outputs if roles[o].kind == "global"}
    for node in order:
        role = roles[node]
        if role.reduction in FUSED:
            continue
        for i in node.inputs:
            ri = roles[i]
            if ri.kind == "global" and (role.kind == "local" or (role.kind == "global" and ri.level < role.level)):
                wanted.add(i)
    return [n for n in order if n in wanted]


def _reached(roots: list[Node], subst: dict) -> dict:
    """The entries of `subst` that `roots` read (walking no further than them), in `subst`'s order."""
    seen = set(toposort(roots, leaf=lambda n: n in subst))
    return {n: p for n, p in subst.items() if n in seen}


def _rebuild(roots: list[Node], subst: dict, var: str, total: Node, offset: Node) -> list[Node]:
    """`roots` rebuilt with `subst` applied, inside a function where `var` is a chunk's length: its
    value is `total`, and `arange(var)` starts at `offset`."""
    memo: dict[Node, Node] = dict(subst)
    for node in toposort(roots, leaf=lambda n: n in subst):
        if node in memo:
            continue
        inputs = tuple(memo[i] for i in node.inputs)
        if node.op == "sizevar" and node.attr("name") == var:
            memo[node] = total
        elif node.op == "iota" and node.shape[0] == Dim.of(var):
            memo[node] = infer.elementwise("add", [node, offset], node.loc)
        else:
            memo[node] = Node(node.op, node.dtype, node.shape, inputs, node.attrs, node.weak, node.loc, node.name)
    return [memo[r] for r in roots]
