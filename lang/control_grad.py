"""Reverse mode through loops and branches (section 11): the adjoint of a Region is a Region.

- `if`: a backward `if` on the same condition, each branch the vector-Jacobian product of
  the forward branch (captured values in, their adjoints out).
- `for`: the forward loop is run again with one more carried array per carried value the
  backward pass reads, `history[h] = value at the start of iteration h` (T rows, T the trip
  count: the memory is T times those values' size); then a loop over the same indices in
  reverse order carries the adjoints of the carried values and sums those of the captured
  ones. Only carried values that the derivative of the body reads are stored (an output
  written row by row, `hs[i] = h`, is not).
- `while`: not differentiable (its trip count is not known before it runs): a compile error.
"""
from __future__ import annotations

import itertools

from . import builtins, infer
from .dims import Dim
from .dtypes import is_float
from .errors import Location, TdslTypeError
from .graph import FunctionGraph, Node, Param, Region, make_attrs, toposort
from .indexing import Sub

_TAGS = itertools.count(10**9)   # tags of the parameters made here (the front end counts from 1)


def _placeholder(name: str, dtype: str, shape, loc, weak: bool = False) -> Node:
    return Node("param", dtype, tuple(shape), (), make_attrs(name=name, block=next(_TAGS)), weak, loc, name)


def _zeros(shape, dtype: str, loc) -> Node:
    from .autodiff import _zeros as zeros
    return zeros(shape, dtype, loc)


def substitute(roots: list[Node], mapping: dict) -> list[Node]:
    """`roots` with every node of `mapping` replaced by its value (iteratively)."""
    memo = dict(mapping)
    for node in toposort(roots):
        if node in memo:
            continue
        inputs = [memo.get(i, i) for i in node.inputs]
        if all(a is b for a, b in zip(inputs, node.inputs)):
            memo[node] = node
        else:
            memo[node] = Node(node.op, node.dtype, node.shape, tuple(inputs), node.attrs, node.weak,
                              node.loc, node.name)
    return [memo[r] for r in roots]


def _unique(names: list[str], taken=()) -> list[str]:
    seen, out = set(taken), []
    for name in names:
        candidate, k = name, 1
        while candidate in seen:
            k += 1
            candidate = f"{name}_{k}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _renamed(node: Node, name: str) -> Node:
    return Node("param", node.dtype, node.shape, (), make_attrs(name=name, block=node.attr("block")),
                node.weak, node.loc, name)


def _graph(base: FunctionGraph, label: str, params: list[Node], outputs: list[Node],
           size_vars=None) -> tuple[FunctionGraph, list[Node]]:
    """A body graph: parameters renamed apart (the interpreter binds them by name)."""
    names = _unique([p.attr("name") for p in params], base.size_vars if size_vars is None else size_vars)
    renamed = [p if p.attr("name") == n else _renamed(p, n) for p, n in zip(params, names)]
    mapping = {p: r for p, r in zip(params, renamed) if p is not r}
    if mapping:
        outputs = substitute(outputs, mapping)
    graph = FunctionGraph(f"{base.name}:{label}", tuple(Param(n, p.dtype, p.shape, p.loc)
                                                        for n, p in zip(names, renamed)),
                          base.size_vars if size_vars is None else size_vars, tuple(outputs), (),
                          loc=base.loc, file=base.file)
    return graph, renamed


def _results(region: Region, inputs: list[Node], like: list[Node], loc) -> list[Node]:
    return [Node(region.kind, n.dtype, n.shape, tuple(inputs), make_attrs(region=region, result=k), False, loc)
            for k, n in enumerate(like)]


def region_vjp(node: Node, gs: dict, loc: Location | None, needed: list[bool] | None = None) -> list:
    """The adjoints of a region node's inputs (None where there is none), given the adjoints
    `gs` of its results; `needed[j]`: whether input j's adjoint is wanted at all."""
    needed = needed or [True] * len(node.inputs)
    region = node.attr("region")
    if region.kind == "while":
        raise TdslTypeError("grad cannot differentiate through a while loop (its number of iterations "
                            "is not known before it runs)", region.loc or loc,
                            hint="write the loop as for i in range(...) with a fixed count")
    if region.kind == "if":
        return _if_vjp(node, region, gs, loc, needed)
    return _for_vjp(node, region, gs, loc, needed)


def _if_vjp(node: Node, region: Region, gs: dict, loc, needed: list[bool]) -> list:
    from .autodiff import vjp
    pred, *captured = node.inputs
    keys = sorted(gs)
    wrt = [i for i, c in enumerate(captured) if is_float(c.dtype) and needed[1 + i]]
    graphs = []
    for g in region.graphs:
        holders = _param_nodes(g)
        cots = [_placeholder(f"d_out{k}", g.outputs[k].dtype, g.outputs[k].shape, loc) for k in keys]
        adj = vjp([g.outputs[k] for k in keys], cots, [holders[i] for i in wrt], loc)
        outs = [a if a is not None else _zeros(holders[i].shape, holders[i].dtype, loc) for a, i in zip(adj, wrt)]
        outs = [infer.cast(o, holders[i].dtype, loc) for o, i in zip(outs, wrt)]
        graph, _ = _graph(g, "grad", holders + cots, outs)
        graphs.append(graph)
    bwd = Region("if", tuple(graphs), 0, loc=region.loc)
    inputs = [pred] + list(captured) + [gs[k] for k in keys]
    results = _results(bwd, inputs, [captured[i] for i in wrt], loc)
    parts = [None] * len(node.inputs)
    for r, i in zip(results, wrt):
        parts[1 + i] = r
    return parts


def _param_nodes(g: FunctionGraph) -> list[Node]:
    """The parameter nodes of a body graph, in parameter order (a parameter no value reads gets
    a fresh node of its type)."""
    found = {}
    for n in toposort(list(g.outputs) + [x for _, x in g.named]):
        if n.op == "param":
            found.setdefault(n.attr("name"), n)
    return [found.get(p.name) or _placeholder(p.name, p.dtype, p.shape, p.loc) for p in g.params]


def _dim_of(node: Node, region: Region, loc) -> Dim:
    try:
        return builtins.static_dim(node, loc)
    except TdslTypeError:
        raise TdslTypeError("grad through a for loop needs range bounds that are sizes, consts or "
                            "literals (the values it stores per iteration need a size)",
                            region.loc or loc) from None


def _for_vjp(node: Node, region: Region, gs: dict, loc, needed: list[bool]) -> list:
    from .autodiff import vjp
    body = region.graphs[0]
    start, stop = node.inputs[:2]
    nc = region.carried
    inits = list(node.inputs[2:2 + nc])
    captured = list(node.inputs[2 + nc:])
    step = region.step
    d_start, d_stop = _dim_of(start, region, loc), _dim_of(stop, region, loc)
    trips = (d_stop - d_start + (step - 1)) // step if step > 0 else (d_start - d_stop + (-step - 1)) // (-step)

    holders = _param_nodes(body)
    lead = 1 if region.index_param else 0
    index_param = holders[0] if lead else None
    carried_ph = holders[lead:lead + nc]
    captured_ph = holders[lead + nc:]
    float_c = [k for k in range(nc) if is_float(carried_ph[k].dtype)]
    float_z = [j for j in range(len(captured_ph)) if is_float(captured_ph[j].dtype) and needed[2 + nc + j]]

    # the derivative of one iteration, with the carried values at its start as placeholders
    cot_c = {k: _placeholder(f"d_{carried_ph[k].attr('name')}", carried_ph[k].dtype, carried_ph[k].shape, loc)
             for k in float_c}
    adj = vjp([body.outputs[k] for k in float_c], [cot_c[k] for k in float_c],
              [carried_ph[k] for k in float_c] + [captured_ph[j] for j in float_z], loc)
    adj_c = dict(zip(float_c, adj[:len(float_c)]))
    adj_z = dict(zip(float_z, adj[len(float_c):]))
    live = [a for a in adj if a is not None]
    reached = set(toposort(live)) if live else set()
    # a carried value's history row h holds its value at the start of iteration h, row h + 1 its
    # value at the end: the backward pass reads both instead of computing the body again
    stored = [k for k in range(nc) if carried_ph[k] in reached or body.outputs[k] in reached]

    # the row of the history an iteration's values go to: (i - start) / step
    if region.index_param:
        i_node = index_param
        first = builtins.dim_node(d_start, loc)
        row_node = infer.elementwise("floordiv", [infer.elementwise("sub", [i_node, first], loc),
                                                  infer.const(step, "i64", (), True, loc)], loc)
        row = Sub("dyn", value=row_node)
        row_next = Sub("dyn", value=infer.elementwise("add", [row_node, infer.const(1, "i64", (), True, loc)], loc))
    else:
        i_dim = Dim.of(region.index)
        row = Sub("int", start=(i_dim - d_start) // step if step > 0 else (d_start - i_dim) // (-step))
        row_next = Sub("int", start=row.start + 1)

    # 1. the forward loop again, storing the carried values the backward pass reads
    from .updates import set_item
    from .indexing import index as index_of
    histories = {k: _placeholder(f"{carried_ph[k].attr('name')}_history", carried_ph[k].dtype,
                                 (trips + 1,) + carried_ph[k].shape, loc) for k in stored}
    if stored:
        writes = [set_item(histories[k], [row_next], body.outputs[k], loc) for k in stored]
        fwd_params = ([index_param] if lead else []) + carried_ph + [histories[k] for k in stored] + captured_ph
        fwd_graph, _ = _graph(body, "store", fwd_params, list(body.outputs) + writes)
        fwd = Region("for", (fwd_graph,), nc + len(stored), step, region.index, region.index_param, region.loc,
                     stores=region)
        empty = [set_item(_zeros((trips + 1,) + carried_ph[k].shape, carried_ph[k].dtype, loc),
                          [Sub("int", start=0)], inits[k], loc) for k in stored]
        fwd_inputs = [start, stop] + inits + empty + captured
        fwd_nodes = _results(fwd, fwd_inputs, list(body.outputs) + [histories[k] for k in stored], loc)
        history_values = fwd_nodes[nc:]
    else:
        history_values = []

    # 2. the backward loop: the same indices in reverse order
    reads = {carried_ph[k]: index_of(histories[k], [row], loc) for k in stored}
    reads.update({body.outputs[k]: index_of(histories[k], [row_next], loc) for k in stored
                  if body.outputs[k] is not carried_ph[k]})
    acc_z = {j: _placeholder(f"d_{captured_ph[j].attr('name')}", captured_ph[j].dtype, captured_ph[j].shape, loc)
             for j in float_z}
    new_c = [adj_c[k] if adj_c[k] is not None else _zeros(carried_ph[k].shape, carried_ph[k].dtype, loc)
             for k in float_c]
    new_z = [infer.elementwise("add", [acc_z[j], adj_z[j]], loc) if adj_z[j] is not None else acc_z[j]
             for j in float_z]
    outs = substitute(new_c + new_z, reads) if reads else new_c + new_z
    outs = [infer.cast(o, t.dtype, loc) for o, t in zip(outs, [carried_ph[k] for k in float_c] +
                                                         [captured_ph[j] for j in float_z])]
    bwd_params = ([index_param] if lead else []) + [cot_c[k] for k in float_c] + [acc_z[j] for j in float_z] + \
        [histories[k] for k in stored] + captured_ph
    bwd_graph, _ = _graph(body, "grad", bwd_params, outs)
    bwd = Region("for", (bwd_graph,), len(float_c) + len(float_z), -step, region.index, region.index_param,
                 region.loc)
    last = d_start + (trips - 1) * step
    b_start, b_stop = builtins.dim_node(last, loc), builtins.dim_node(d_start - step, loc)
    b_start, b_stop = infer.cast(b_start, "i64", loc), infer.cast(b_stop, "i64", loc)
    seeds = [infer.cast(gs[k], carried_ph[k].dtype, loc) if k in gs else
             _zeros(carried_ph[k].shape, carried_ph[k].dtype, loc) for k in float_c]
    zero_z = [_zeros(captured_ph[j].shape, captured_ph[j].dtype, loc) for j in float_z]
    bwd_inputs = [b_start, b_stop] + seeds + zero_z + history_values + captured
    bwd_nodes = _results(bwd, bwd_inputs, [carried_ph[k] for k in float_c] + [captured_ph[j] for j in float_z], loc)
    parts = [None] * len(node.inputs)
    for r, k in zip(bwd_nodes[:len(float_c)], float_c):
        parts[2 + k] = r
    for r, j in zip(bwd_nodes[len(float_c):], float_z):
        parts[2 + nc + j] = r
    return parts


def merge_stored_loops(outputs: list[Node], named: list[Node]) -> tuple[list[Node], list[Node]] | None:
    """Results of a loop that grad also reran to store its carried values, read from the rerun:
    the loop then runs once (the rerun computes the same carried values, and the history)."""
    roots = list(outputs) + list(named)
    mapping: dict = {}
    extended = {}
    for n in toposort(roots):
        region = n.attr("region") if n.op == "for" else None
        if region is None or region.stores is None:
            continue
        original = region.stores
        nc = original.carried
        key = (original, tuple(n.inputs[:2 + nc]) + tuple(n.inputs[2 + region.carried:]))
        extended.setdefault(key, (region, n.inputs))
    if not extended:
        return None
    for n in toposort(roots):
        if n.op != "for":
            continue
        key = (n.attr("region"), n.inputs)
        if key in extended:
            region, inputs = extended[key]
            k = n.attr("result")
            mapping[n] = Node("for", n.dtype, n.shape, inputs, make_attrs(region=region, result=k), n.weak,
                              n.loc, n.name)
    if not mapping:
        return None
    new = substitute(roots, mapping)
    return new[:len(outputs)], new[len(outputs):]
