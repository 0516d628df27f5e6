"""The reference interpreter: runs a function graph with NumPy, op by op.

It is the `numpy` target and the oracle every other target is tested against.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .dims import Dim
from .dtypes import to_numpy
from .errors import TdslRuntimeError
from .graph import REGION_OPS, FunctionGraph, Node, in_place_results, toposort
from .limits import check_sizes, collect_checks, computed_roots, const_value, no_memory_message, value_sizes
from .nanguard import birth, guarded, in_iteration
from .ops import OPS, RuntimeCheckFailed, located


def _concrete(value, sizes: Mapping[str, int]):
    """Attribute values with every Dim replaced by its integer value."""
    if isinstance(value, Dim):
        return value.evaluate(sizes)
    if isinstance(value, tuple):
        return tuple(_concrete(v, sizes) for v in value)
    return value


def evaluate_node(node: Node, values: list, sizes: Mapping[str, int], args: Mapping[str, np.ndarray],
                  in_place: bool = False):
    """The value of one node given the values of its inputs (`in_place`: an update or scatter may
    write into its first input's array)."""
    op = OPS[node.op]
    attrs = {k: _concrete(v, sizes) for k, v in node.attrs if k != "checks"}
    dtype = to_numpy(node.dtype)
    if node.op == "param":
        return args[attrs["name"]]
    if node.op == "sizevar":
        return np.int64(sizes[attrs["name"]])
    if node.op == "const":
        return const_value(node)
    if node.op == "iota":
        return np.arange(node.shape[0].evaluate(sizes), dtype=np.int64)
    if node.op == "cast":
        with np.errstate(all="ignore"):
            return np.asarray(values[0]).astype(dtype)
    if op.kind == "reduce":
        return op.impl(values[0], attrs["axes"], attrs["keepdims"], dtype, attrs.get("empty_ok", False))
    if op.kind == "argreduce":
        return op.impl(values[0], attrs["axis"], attrs["keepdims"])
    if node.op == "slice":
        return op.impl(values[0], attrs["starts"], attrs["steps"], attrs["shape"])
    if in_place:
        attrs["in_place"] = True
    out = op.impl(*values, **attrs)
    return np.asarray(out).astype(dtype, copy=False)


def run_graph(graph: FunctionGraph, args: Mapping[str, np.ndarray], sizes: Mapping[str, int],
              keep: list[Node] | None = None, limits: list | None = None,
              roots: list[Node] | None = None, record: dict | None = None,
              mutable: frozenset = frozenset(), guard: bool = False) -> tuple[list, dict]:
    """Evaluate the outputs of `graph` (and any `keep` nodes); returns (outputs, values by node).

    Every value's size is checked first (`limits`: the graph's `value_sizes`, if known); `roots`
    are the graph's `computed_roots`, if known. `record`, when given, receives what each loop
    and branch bound by name (see `run_region`), keyed by the region's identity. `guard`: the NaN
    guard checks each float value as it is computed (tdsl/nanguard.py)."""
    roots = (computed_roots(graph) if roots is None else list(roots)) + list(keep or [])
    values: dict[Node, object] = {}
    regions: dict = {}
    check_sizes(value_sizes(graph) if limits is None else limits, sizes)
    for node in toposort(roots):
        if node in values:
            continue
        try:
            if node.op in REGION_OPS:
                key = (node.attr("region"), node.inputs)
                if key not in regions:
                    inner = None if record is None else record.setdefault(key, {})
                    regions[key] = run_region(node, [values[i] for i in node.inputs], sizes, inner, guard)
                values[node] = regions[key][node.attr("result")]
                continue
            if mutable and node.op in ("update", "scatter", "scatter_add") and node.inputs[0].op == "param" \
                    and node.inputs[0].attr("name") in mutable:
                # a loop's own copy of a carried value, which nothing else reads: updated in place
                values[node] = evaluate_node(node, [values[i] for i in node.inputs], sizes, args, in_place=True)
                continue
            values[node] = evaluate_node(node, [values[i] for i in node.inputs], sizes, args)
            if guard and guarded(node):
                born = birth(node, [values[i] for i in node.inputs], values[node])
                if born is not None:
                    raise born
        except RuntimeCheckFailed as err:
            raise located(err, node) from None
        except MemoryError:
            raise out_of_memory(node, sizes) from None
    return [values[o] for o in graph.outputs], values


class _Prepared:
    """What running one body needs, worked out once per body."""

    def __init__(self, graph: FunctionGraph):
        self.graph = graph
        self.checks = collect_checks(graph)
        self.limits = value_sizes(graph)
        self.roots = computed_roots(graph)
        self.names = [p.name for p in graph.params]
        self.named = [n for _, n in graph.named]


_PREPARED: dict[int, _Prepared] = {}


def _prepared(graph: FunctionGraph) -> _Prepared:
    found = _PREPARED.get(id(graph))
    if found is None or found.graph is not graph:
        found = _PREPARED[id(graph)] = _Prepared(graph)
    return found


def run_body(graph: FunctionGraph, arrays: list, sizes: Mapping[str, int], record: dict | None = None,
             mutable: frozenset = frozenset(), guard: bool = False) -> list:
    """One run of a loop or branch body: its call-time checks (an index out of range names
    the loop index's value), then its results."""
    p = _prepared(graph)
    for op, dim, message, loc in p.checks:
        value = dim.evaluate(sizes)
        if (op == ">=" and value < 0) or (op == "==" and value != 0):
            bound = ", ".join(f"{v} = {sizes[v]}" for v in dim.variables())
            raise TdslRuntimeError(f"{message}, but {bound}", loc)
    keep = p.named if record is not None else None
    inner = {} if record is not None else None
    outputs, values = run_graph(graph, dict(zip(p.names, arrays)), sizes, keep=keep, limits=p.limits,
                                roots=p.roots, record=inner, mutable=mutable, guard=guard)
    if record is not None:
        record["values"] = {name: values[node] for name, node in graph.named}
        record["regions"] = inner
    return outputs


def run_region(node: Node, inputs: list, sizes: Mapping[str, int], record: dict | None = None,
               guard: bool = False) -> list:
    """All results of the loop or branch `node` is a result of. With `record`, what its body
    bound by name: per iteration of a loop (a list of records), or the taken branch's."""
    region = node.attr("region")
    if region.kind == "if":
        pred, *captured = inputs
        graph = region.graphs[0] if bool(pred) else region.graphs[1]
        if record is not None:
            record["kind"], record["taken"] = "if", {}
        return run_body(graph, captured, sizes, None if record is None else record["taken"], guard=guard)
    lead = region.leading
    carried = list(inputs[lead:lead + region.carried])
    captured = list(inputs[lead + region.carried:])
    # carried values the body updates in place: copied once, here (not when tracing: every
    # iteration's value is kept)
    own = in_place_results(region) if record is None else {}
    for k in own:
        carried[k] = np.array(carried[k], copy=True)
    mutable = frozenset(own.values())
    steps = [] if record is not None else None
    if record is not None:
        record["kind"], record["steps"] = "loop", steps
    if region.kind == "while":
        cond, body = region.graphs
        count = 0
        try:
            while bool(run_body(cond, carried + captured, sizes, guard=guard)[0]):
                carried = run_body(body, carried + captured, sizes, _step(steps), mutable, guard)
                count += 1
        except TdslRuntimeError as err:
            raise in_iteration(err, None, count, region.loc) if err.nan_guard else err from None
        return carried
    body = region.graphs[0]
    start, stop = int(inputs[0]), int(inputs[1])
    for i in range(start, stop, region.step):
        try:
            if region.index_param:
                carried = run_body(body, [np.int64(i)] + carried + captured, sizes, _step(steps), mutable, guard)
            else:
                carried = run_body(body, carried + captured, {**sizes, region.index: i}, _step(steps), mutable,
                                   guard)
        except TdslRuntimeError as err:
            raise in_iteration(err, region.index, i, region.loc) if err.nan_guard else err from None
    return carried


def _step(steps: list | None) -> dict | None:
    if steps is None:
        return None
    steps.append({})
    return steps[-1]


def out_of_memory(node: Node, sizes: Mapping[str, int]) -> TdslRuntimeError:
    """The error of a value whose memory could not be allocated."""
    count = 1
    for d in node.shape:
        count *= d.evaluate(sizes)
    nbytes = count * to_numpy(node.dtype).itemsize
    return TdslRuntimeError(no_memory_message(node).replace("{extent}", str(nbytes)), node.loc)


def run(graph: FunctionGraph, arrays: list[np.ndarray], sizes: Mapping[str, int],
        limits: list | None = None, roots: list[Node] | None = None, guard: bool = False) -> list[np.ndarray]:
    """The numpy target's entry point: arrays in parameter order, results as new arrays (`guard`:
    the NaN guard's checks)."""
    args = {p.name: a for p, a in zip(graph.params, arrays)}
    outputs, _ = run_graph(graph, args, sizes, limits=limits, roots=roots, guard=guard)
    results = []
    for o, node in zip(outputs, graph.outputs):
        try:
            results.append(np.array(o, dtype=to_numpy(node.dtype), copy=True, order="C"))
        except MemoryError:
            raise out_of_memory(node, sizes) from None
    return results
